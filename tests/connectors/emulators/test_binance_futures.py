"""The Binance USD-M futures emulator with the real ccxt `binanceusdm` client.

TSLAUSDT as DOMAIN.md has it (0.01 TSLA minimum, 5 USDT minimum notional, 5x, 4 h funding capped
at +-2%). Book: bids 249.9 x 10; asks 250.1 x 10. Account: 1000 USDT; taker fee 0.05%.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from connectors.emulators.binance import point_ccxt_at
from connectors.emulators.binance_futures import BinanceFuturesEmulator, FuturesSymbol

D = Decimal
API_KEY = "test-api-key-not-real"
API_SECRET = "test-api-secret-not-real"
SYMBOL = "TSLA/USDT:USDT"
SYMBOL_ID = "TSLAUSDT"


@pytest.fixture
async def emulator() -> AsyncIterator[BinanceFuturesEmulator]:
    emu = BinanceFuturesEmulator(
        API_KEY, API_SECRET, [FuturesSymbol("TSLA", "USDT")], balances={"USDT": D("1000")}
    )
    await emu.start()
    emu.set_book(SYMBOL_ID, [(D("249.9"), D("10"))], [(D("250.1"), D("10"))])
    yield emu
    await emu.close()


@pytest.fixture
async def client(emulator: BinanceFuturesEmulator) -> AsyncIterator[Any]:
    options = {"fetchMarkets": {"types": ["linear"]}, "fetchCurrencies": False}
    c = point_ccxt_at(
        ccxt_async.binanceusdm({"apiKey": API_KEY, "secret": API_SECRET, "options": options}),
        emulator.base_url,
    )
    yield c
    await c.close()


async def test_markets_list_tslausdt_with_its_filters(client: Any, emulator: BinanceFuturesEmulator) -> None:
    markets = await client.load_markets()
    m = markets[SYMBOL]
    assert (m["id"], m["swap"], m["linear"], m["settle"]) == (SYMBOL_ID, True, True, "USDT")
    assert m["limits"]["amount"]["min"] == 0.01 and m["limits"]["cost"]["min"] == 5.0
    assert m["precision"]["price"] == 0.01 and m["precision"]["amount"] == 0.01
    intervals = await client.fetch_funding_intervals()
    assert intervals[SYMBOL]["interval"] == "4h"
    assert [r.path for r in emulator.requests] == ["/fapi/v1/exchangeInfo", "/fapi/v1/fundingInfo"]


async def test_a_position_flips_with_exact_realized_pnl(
    client: Any, emulator: BinanceFuturesEmulator
) -> None:
    await client.create_order(SYMBOL, "market", "buy", 1)  # long 1 @ 250.1
    emulator.set_book(SYMBOL_ID, [(D("252"), D("10"))], [(D("252.2"), D("10"))])
    await client.create_order(SYMBOL, "market", "sell", 3)  # sells 3 @ 252: closes 1, opens short 2
    position = emulator.positions[SYMBOL_ID]
    assert (position.amount, position.entry_price) == (D("-2"), D("252"))
    # Realized (252 - 250.1) x 1 = 1.9; fees 0.05% of 250.1 and of 756.
    assert emulator.wallet() == D("1000") + D("1.9") - D("0.12505") - D("0.378")
    (row,) = await client.fetch_positions([SYMBOL])
    assert (row["side"], row["contracts"], row["entryPrice"]) == ("short", 2.0, 252.0)
    trades = await client.fetch_my_trades(SYMBOL)
    assert [t["info"]["realizedPnl"] for t in trades] == ["0.00000000", "1.90000000"]


async def test_margin_and_leverage_bound_the_order_size(
    client: Any, emulator: BinanceFuturesEmulator
) -> None:
    # 5x on 1000 USDT: 21 TSLA at 250 needs 1050 USDT of margin; refused with -2019.
    with pytest.raises(ccxt.ExchangeError, match="-2019"):
        await client.create_order(SYMBOL, "limit", "buy", 21, 249)
    await client.create_order(SYMBOL, "limit", "buy", 20, 249)  # 996 USDT of margin
    balance = await client.fetch_balance()
    assert balance["USDT"]["used"] == 996.0 and balance["USDT"]["free"] == 4.0
    with pytest.raises(ccxt.BadRequest):
        await client.set_leverage(10, SYMBOL)  # TSLAUSDT allows at most 5x
    (post,) = emulator.requests_to("/fapi/v1/leverage", "POST")
    assert post.params["leverage"] == "10" and post.status == 400


async def test_funding_rate_is_capped_at_two_percent(client: Any, emulator: BinanceFuturesEmulator) -> None:
    emulator.set_mark(SYMBOL_ID, D("250"), funding_rate=D("-0.035"))
    rate = await client.fetch_funding_rate(SYMBOL)
    assert rate["fundingRate"] == -0.02 and rate["markPrice"] == 250.0
    await client.create_order(SYMBOL, "market", "sell", 2)  # short 2
    # Longs pay amount x mark x rate: at -2% the short 2 pays 2 x 250 x 2% = 10 USDT.
    wallet = emulator.wallet()
    assert emulator.settle_funding(SYMBOL_ID) == D("10")
    assert emulator.wallet() == wallet - D("10")
