"""The real ccxt async binance client against the local Binance spot emulator.

Every entry of `urls['api']` is pointed at the emulator (paths kept), markets are limited to spot
and currencies are not fetched (that is a `/sapi` call). Numbers are worked out by hand below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from connectors.emulators import BinanceEmulator, BinanceSymbol, Fault

D = Decimal
API_KEY = "test-api-key-not-real"
API_SECRET = "test-api-secret-not-real"
WRONG_SECRET = "test-wrong-secret"
SYMBOL = "TSLAX/USDT"
SYMBOL_ID = "TSLAXUSDT"
BIDS = [(D("249.00"), D("10")), (D("248.00"), D("20"))]
ASKS = [(D("250.00"), D("1.5")), (D("251.00"), D("2"))]


def point_at(client: Any, base_url: str) -> None:
    """Rewrite every `urls['api']` entry to the emulator, keeping the path."""
    for name, url in client.urls["api"].items():
        if isinstance(url, str):
            client.urls["api"][name] = base_url + urlsplit(url).path


def make_client(base_url: str, secret: str = API_SECRET, **extra: Any) -> Any:
    client = ccxt_async.binance(
        {
            "apiKey": API_KEY,
            "secret": secret,
            "options": {
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
            },
            **extra,
        }
    )
    point_at(client, base_url)
    return client


@pytest.fixture
async def emulator() -> AsyncIterator[BinanceEmulator]:
    emu = BinanceEmulator(
        API_KEY,
        API_SECRET,
        [BinanceSymbol("TSLAX", "USDT"), BinanceSymbol("BTC", "USDT")],
        balances={"USDT": D("10000"), "TSLAX": D("0")},
        maker_fee=D("0.001"),
        taker_fee=D("0.001"),
    )
    await emu.start()
    emu.set_book(SYMBOL_ID, BIDS, ASKS)
    yield emu
    await emu.close()


@pytest.fixture
async def client(emulator: BinanceEmulator) -> AsyncIterator[Any]:
    c = make_client(emulator.base_url)
    yield c
    await c.close()


async def test_load_markets_lists_tsla_x(client: Any, emulator: BinanceEmulator) -> None:
    markets = await client.load_markets()
    assert SYMBOL in markets
    m = markets[SYMBOL]
    assert (m["id"], m["base"], m["quote"], m["spot"]) == (SYMBOL_ID, "TSLAX", "USDT", True)
    assert m["precision"]["price"] == 0.01 and m["precision"]["amount"] == 0.001
    assert [r.path for r in emulator.requests] == ["/api/v3/exchangeInfo"]
    assert emulator.base_url.startswith("http://127.0.0.1:")


async def test_default_margin_lookup_is_answered(emulator: BinanceEmulator) -> None:
    c = make_client(emulator.base_url)
    c.options["fetchMargins"] = True
    try:
        markets = await c.load_markets()
    finally:
        await c.close()
    assert SYMBOL in markets
    paths = sorted(r.path for r in emulator.requests)
    assert paths == ["/api/v3/exchangeInfo", "/sapi/v1/margin/allPairs", "/sapi/v1/margin/isolated/allPairs"]
    assert all(r.status == 200 for r in emulator.requests)


async def test_order_book_and_ticker_are_the_configured_levels(client: Any) -> None:
    book = await client.fetch_order_book(SYMBOL)
    assert book["bids"] == [[249.0, 10.0], [248.0, 20.0]]
    assert book["asks"] == [[250.0, 1.5], [251.0, 2.0]]
    ticker = await client.fetch_ticker(SYMBOL)
    assert (ticker["bid"], ticker["ask"]) == (249.0, 250.0)


async def test_limit_order_rests_then_is_cancelled(client: Any, emulator: BinanceEmulator) -> None:
    order = await client.create_order(SYMBOL, "limit", "buy", 2, 240)
    assert order["status"] == "open" and order["filled"] == 0.0
    # 2 x 240 = 480 USDT locked, and the order shows in the book and in the open orders.
    balance = await client.fetch_balance()
    assert balance["USDT"]["free"] == 9520.0 and balance["USDT"]["used"] == 480.0
    book = await client.fetch_order_book(SYMBOL)
    assert [240.0, 2.0] in book["bids"]
    open_orders = await client.fetch_open_orders(SYMBOL)
    assert [o["id"] for o in open_orders] == [order["id"]]

    cancelled = await client.cancel_order(order["id"], SYMBOL)
    assert cancelled["status"] == "canceled"
    assert await client.fetch_open_orders(SYMBOL) == []
    assert emulator.balance("USDT") == (D("10000"), D("0"))
    (delete,) = emulator.requests_to("/api/v3/order", "DELETE")
    assert delete.params["orderId"] == order["id"] and delete.params["symbol"] == SYMBOL_ID


async def test_market_buy_walks_two_levels(client: Any, emulator: BinanceEmulator) -> None:
    order = await client.create_order(SYMBOL, "market", "buy", 3)
    # 1.5 @ 250 + 1.5 @ 251 = 375 + 376.5 = 751.5 USDT; average 250.5; fee 0.1% of 3 TSLAX = 0.003.
    assert order["status"] == "closed"
    assert order["filled"] == 3.0 and order["cost"] == 751.5 and order["average"] == 250.5
    assert len(order["trades"]) == 2
    assert emulator.balance("USDT") == (D("9248.5"), D("0"))
    assert emulator.balance("TSLAX") == (D("2.997"), D("0"))
    balance = await client.fetch_balance()
    assert balance["USDT"]["free"] == 9248.5 and balance["TSLAX"]["free"] == 2.997
    # The first level is gone, the second has 0.5 left.
    book = await client.fetch_order_book(SYMBOL)
    assert book["asks"] == [[251.0, 0.5]]
    trades = await client.fetch_my_trades(SYMBOL)
    assert [(t["price"], t["amount"], t["fee"]["cost"]) for t in trades] == [
        (250.0, 1.5, 0.0015),
        (251.0, 1.5, 0.0015),
    ]


async def test_marketable_ioc_limit_fills_what_crosses_and_expires_the_rest(client: Any) -> None:
    order = await client.create_order(SYMBOL, "limit", "buy", 2, 250, {"timeInForce": "IOC"})
    assert order["filled"] == 1.5 and order["remaining"] == 0.5 and order["status"] == "expired"
    assert await client.fetch_open_orders(SYMBOL) == []


async def test_signed_requests_are_recorded(client: Any, emulator: BinanceEmulator) -> None:
    await client.create_order(SYMBOL, "limit", "buy", 1, 240)
    (post,) = emulator.requests_to("/api/v3/order", "POST")
    assert post.signed and post.api_key == API_KEY and post.status == 200
    p = post.params
    assert (p["symbol"], p["side"], p["type"], p["timeInForce"]) == (SYMBOL_ID, "BUY", "LIMIT", "GTC")
    assert (p["quantity"], p["price"]) == ("1", "240")
    assert len(p["signature"]) == 64 and "timestamp" in p
    # No /sapi call: currencies are not fetched, markets are spot only.
    assert not [r for r in emulator.requests if not r.path.startswith("/api/v3/")]


async def test_insufficient_balance_is_insufficient_funds(client: Any) -> None:
    with pytest.raises(ccxt.InsufficientFunds):
        await client.create_order(SYMBOL, "limit", "sell", 1, 260)


async def test_wrong_secret_raises_authentication_error(emulator: BinanceEmulator) -> None:
    bad = make_client(emulator.base_url, secret=WRONG_SECRET)
    try:
        with pytest.raises(ccxt.AuthenticationError, match="-1022"):
            await bad.fetch_balance()
    finally:
        await bad.close()
    (account,) = emulator.requests_to("/api/v3/account")
    assert account.status == 400


async def test_unknown_api_key_raises_authentication_error(emulator: BinanceEmulator) -> None:
    bad = make_client(emulator.base_url)
    bad.apiKey = "test-unknown-key"
    try:
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await bad.fetch_balance()
    finally:
        await bad.close()
    (account,) = emulator.requests_to("/api/v3/account")
    assert account.status == 401 and account.api_key == "test-unknown-key"


async def test_injected_429_raises_ddos_protection(client: Any, emulator: BinanceEmulator) -> None:
    await client.load_markets()
    emulator.inject(Fault("rate_limit", path="/api/v3/depth"))
    with pytest.raises(ccxt.DDoSProtection) as info:
        await client.fetch_order_book(SYMBOL)
    # binance's handle_errors raises DDoSProtection itself on 418/429 (not its RateLimitExceeded subclass).
    assert type(info.value) is ccxt.DDoSProtection
    assert emulator.requests[-1].status == 429
    assert (await client.fetch_order_book(SYMBOL))["asks"][0] == [250.0, 1.5]


async def test_injected_503_raises_exchange_not_available(client: Any, emulator: BinanceEmulator) -> None:
    await client.load_markets()
    emulator.inject(Fault("server_error", status=503, path="/api/v3/depth"))
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await client.fetch_order_book(SYMBOL)


async def test_injected_delay_raises_request_timeout(emulator: BinanceEmulator) -> None:
    c = make_client(emulator.base_url, timeout=100)
    try:
        await c.load_markets()
        emulator.inject(Fault("delay", delay=0.3, path="/api/v3/depth"))
        with pytest.raises(ccxt.RequestTimeout):
            await c.fetch_order_book(SYMBOL)
    finally:
        await c.close()


async def test_resting_order_fills_as_maker_when_the_book_crosses_it(
    client: Any, emulator: BinanceEmulator
) -> None:
    order = await client.create_order(SYMBOL, "limit", "buy", 2, 245)
    # The market drops: asks at 244 cross the resting 245 bid, which fills at its own price, maker fee.
    emulator.set_book(SYMBOL_ID, [(D("243"), D("5"))], [(D("244"), D("1")), (D("244.5"), D("5"))])
    (filled,) = [o for o in await client.fetch_closed_orders(SYMBOL) if o["id"] == order["id"]]
    assert filled["filled"] == 2.0 and filled["average"] == 245.0
    trades = await client.fetch_my_trades(SYMBOL)
    assert [(t["price"], t["amount"], t["takerOrMaker"]) for t in trades] == [
        (245.0, 1.0, "maker"),
        (245.0, 1.0, "maker"),
    ]
    # 490 USDT paid, 2 - 0.002 TSLAX received, nothing left locked.
    assert emulator.balance("USDT") == (D("9510"), D("0"))
    assert emulator.balance("TSLAX") == (D("1.998"), D("0"))


async def test_post_only_that_would_take_is_rejected(client: Any, emulator: BinanceEmulator) -> None:
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        await client.create_order(SYMBOL, "limit", "buy", 1, 250, {"postOnly": True})
    (post,) = emulator.requests_to("/api/v3/order", "POST")
    assert post.params["type"] == "LIMIT_MAKER" and post.status == 400
    assert emulator.balance("USDT") == (D("10000"), D("0"))
