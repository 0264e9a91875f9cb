"""`CcxtExchange` on a perpetual: the real ccxt `binanceusdm` (and ccxt.pro) against the local USD-M
futures emulator, TSLAUSDT as Binance lists it (DOMAIN.md: 0.01 TSLA minimum, 5 USDT minimum
notional, 5x, funding every 4 h capped at +-2%).

Book: bids 249.9 x 10, 249.8 x 10; asks 250.1 x 10, 250.2 x 10 (mark = mid = 250 unless set).
Account: 1000 USDT; leverage 5; maker 0.02%, taker 0.05% in USDT.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import pytest

from connectors.ccxt_exchange import CcxtExchange, PerpPosition, RetryPolicy
from connectors.emulators.binance import point_ccxt_at
from connectors.emulators.binance_futures import BinanceFuturesEmulator, FuturesSymbol
from core.clock import LiveClock
from core.enums import OrderStatus, OrderType, Side
from core.events import Event, Fill, FundingRate, OrderUpdate, Quote
from core.orders import OrderRequest

D = Decimal
API_KEY = "test-api-key-not-real"
API_SECRET = "test-api-secret-not-real"
SYMBOL_ID = "TSLAUSDT"
INSTRUMENT = "TSLA-PERP"
SYMBOL = "TSLA/USDT:USDT"
ORDER_PATH = "/fapi/v1/order"
FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, seed=3)
OPTIONS = {"fetchMarkets": {"types": ["linear"]}, "fetchCurrencies": False}
HOUR_NS = 3_600_000_000_000


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a state the emulator or the stream will reach; a generous guard against hangs."""
    async with asyncio.timeout(20):
        while not condition():  # noqa: ASYNC110 - the states belong to the emulator and ccxt
            await asyncio.sleep(0.005)
    assert condition(), what


@pytest.fixture
async def emulator() -> AsyncIterator[BinanceFuturesEmulator]:
    emu = BinanceFuturesEmulator(
        API_KEY, API_SECRET, [FuturesSymbol("TSLA", "USDT")], balances={"USDT": D("1000")}
    )
    await emu.start()
    emu.set_book(
        SYMBOL_ID,
        [(D("249.9"), D("10")), (D("249.8"), D("10"))],
        [(D("250.1"), D("10")), (D("250.2"), D("10"))],
    )
    yield emu
    await emu.close()


def make_venue(emulator: BinanceFuturesEmulator, *, pro: bool = False, **kw: Any) -> CcxtExchange:
    module: Any = ccxt_pro if pro else ccxt_async
    client = point_ccxt_at(
        module.binanceusdm({"apiKey": API_KEY, "secret": API_SECRET, "options": dict(OPTIONS)}),
        emulator.base_url,
    )
    return CcxtExchange("binanceusdm", client, {INSTRUMENT: SYMBOL}, LiveClock(), retry=FAST, **kw)


@pytest.fixture
async def venue(emulator: BinanceFuturesEmulator) -> AsyncIterator[CcxtExchange]:
    v = make_venue(emulator)
    yield v
    await v.close()


def order(coid: str, side: Side, qty: str, price: str | None = None, **kw: Any) -> OrderRequest:
    kind = OrderType.LIMIT if price is not None else OrderType.MARKET
    return OrderRequest(
        coid, "binanceusdm", INSTRUMENT, side, D(qty), kind, D(price) if price else None, **kw
    )


def last_post(emulator: BinanceFuturesEmulator) -> dict[str, str]:
    return emulator.requests_to(ORDER_PATH, "POST")[-1].params


async def test_market_buy_opens_a_position_and_the_views_agree(
    venue: CcxtExchange, emulator: BinanceFuturesEmulator
) -> None:
    update = await venue.submit(order("f-1", Side.BUY, "1"))
    assert update.status is OrderStatus.FILLED and update.average_price == D("250.1")
    assert last_post(emulator)["newClientOrderId"] == "f-1"
    positions = await venue.positions()
    # Long 1 at 250.1, marked at the mid 250: -0.1 USDT unrealized.
    assert positions == {
        INSTRUMENT: PerpPosition(INSTRUMENT, D("1"), D("250.1"), D("250"), D("-0.1"), D("5"))
    }
    (fill,) = await venue.fills_since(0)
    # Taker fee 0.05% of 250.1 USDT.
    assert (fill.price, fill.quantity, fill.fee, fill.fee_asset) == (D("250.1"), D("1"), D("0.12505"), "USDT")
    state = await venue.snapshot()
    # Margin balance = 1000 - 0.12505 fee - 0.1 unrealized.
    assert state.balances["USDT"] == emulator.margin_balance() == D("999.77495")


async def test_reduce_only_post_only_and_minimums_are_mapped(
    venue: CcxtExchange, emulator: BinanceFuturesEmulator
) -> None:
    # No position yet: a reduce-only order is refused by the exchange (-2022).
    refused = await venue.submit(order("r-0", Side.SELL, "1", "251", reduce_only=True))
    assert refused.status is OrderStatus.REJECTED and "ReduceOnly Order is rejected" in refused.reason
    assert last_post(emulator)["reduceOnly"] == "true"
    await venue.submit(order("f-2", Side.BUY, "2"))
    # Reduce-only sell of 1 rests; it needs no margin.
    reduce = await venue.submit(order("r-1", Side.SELL, "1", "251", reduce_only=True))
    assert reduce.status is OrderStatus.ACCEPTED and last_post(emulator)["reduceOnly"] == "true"
    # Below the 5 USDT minimum notional: refused (-4164), unless reduce-only (exempt).
    small = await venue.submit(order("m-1", Side.BUY, "0.01", "249"))
    assert small.status is OrderStatus.REJECTED and "notional must be no smaller than 5" in small.reason
    small_reduce = await venue.submit(order("m-2", Side.SELL, "0.01", "252", reduce_only=True))
    assert small_reduce.status is OrderStatus.ACCEPTED
    # Post-only is timeInForce GTX on USD-M: refused (-5022) when it would take, rests otherwise.
    taking = await venue.submit(order("p-1", Side.BUY, "1", "250.1", post_only=True))
    assert taking.status is OrderStatus.REJECTED and "Post Only order will be rejected" in taking.reason
    assert last_post(emulator)["timeInForce"] == "GTX"
    resting = await venue.submit(order("p-2", Side.BUY, "1", "249", post_only=True))
    assert resting.status is OrderStatus.ACCEPTED and last_post(emulator)["timeInForce"] == "GTX"
    # A bid at 251.5 lifts the 251 reduce-only offer (maker), not the 252 one: realizes (251 - 250.1).
    emulator.set_book(SYMBOL_ID, [(D("251.5"), D("5"))], [(D("252.5"), D("5"))])
    positions = await venue.positions()
    assert positions[INSTRUMENT].quantity == D("1") and positions[INSTRUMENT].entry_price == D("250.1")
    (trade,) = [t for t in emulator.trades if t["orderId"] == 2]
    assert D(trade["realizedPnl"]) == D("0.9")  # (251 - 250.1) x 1
    state = await venue.snapshot()
    assert state.balances["USDT"] == emulator.margin_balance()
    assert sorted(o.client_order_id for o in state.open_orders) == ["m-2", "p-2"]


async def test_funding_rate_is_capped_and_settles_on_the_position(
    venue: CcxtExchange, emulator: BinanceFuturesEmulator
) -> None:
    await venue.submit(order("f-3", Side.BUY, "2"))
    emulator.set_mark(SYMBOL_ID, D("250"), index=D("249.5"), funding_rate=D("0.05"))
    rate = await venue.fetch_funding_rate(INSTRUMENT)
    # 5% asked, +-2% is TSLAUSDT's cap; the 4 h interval comes from /fapi/v1/fundingInfo.
    assert (rate.rate, rate.interval_ns, rate.mark_price, rate.index_price) == (
        0.02,
        4 * HOUR_NS,
        250.0,
        249.5,
    )
    assert rate.next_funding_ts == emulator.next_funding_ms[SYMBOL_ID] * 1_000_000
    assert rate.next_funding_ts % (4 * HOUR_NS) == 0
    before = (await venue.snapshot()).balances["USDT"]
    # Longs pay 2 x 250 x 2% = 10 USDT.
    assert emulator.settle_funding(SYMBOL_ID) == D("10")
    after = (await venue.snapshot()).balances["USDT"]
    assert before - after == D("10") and after == emulator.margin_balance()


async def test_websocket_stream_on_the_perpetual(emulator: BinanceFuturesEmulator) -> None:
    venue = make_venue(emulator, pro=True, reconcile_interval=3600.0, funding_interval=3600.0)
    events: list[Event] = []

    async def drain() -> None:
        async for event in venue.stream():
            events.append(event)

    def of(kind: type[Any]) -> list[Any]:
        return [e for e in events if type(e) is kind]

    task = asyncio.create_task(drain())
    try:
        # The user stream is a listen key from REST, then /private/ws?listenKey=...
        await until(lambda: bool(emulator.requests_to("/fapi/v1/listenKey", "POST")), "a listen key")
        await until(lambda: emulator.streams.open_user_streams == 1, "the user stream")
        await until(lambda: bool(of(FundingRate)), "the first funding rate")
        assert of(FundingRate)[0].rate == 0.0001 and of(FundingRate)[0].interval_ns == 4 * HOUR_NS
        await until(
            lambda: (
                {"tslausdt@bookTicker", "tslausdt@depth@100ms", "tslausdt@trade"}
                <= {p for m in emulator.streams.received for p in m.get("params") or []}
            ),
            "market subscriptions",
        )
        await venue.submit(order("w-1", Side.SELL, "3", "250.5"))
        await until(lambda: any(q.ask == 250.1 and q.bid == 249.9 for q in of(Quote)), "a quote")
        emulator.set_book(SYMBOL_ID, [(D("250.6"), D("2")), (D("250"), D("5"))], [(D("251"), D("5"))])
        await until(lambda: bool(of(Fill)) and bool(of(OrderUpdate)), "the fill over the websocket")
        (fill,) = of(Fill)
        # 2 of 3 sold as maker at 250.5: maker fee 0.02% of 501 USDT.
        assert (fill.client_order_id, fill.side, fill.price, fill.quantity, fill.fee) == (
            "w-1",
            Side.SELL,
            D("250.5"),
            D("2"),
            D("0.1002"),
        )
        assert [(u.client_order_id, u.status, u.filled_quantity) for u in of(OrderUpdate)] == [
            ("w-1", OrderStatus.PARTIALLY_FILLED, D("2"))
        ]
        assert len(emulator.requests_to("/fapi/v1/userTrades")) == 1  # the start-up reconciliation
        positions = await venue.positions()
        assert positions[INSTRUMENT].quantity == D("-2") and positions[INSTRUMENT].entry_price == D("250.5")
        state = await venue.snapshot()
        assert state.balances["USDT"] == emulator.margin_balance()
        assert [(o.client_order_id, o.filled_quantity) for o in state.open_orders] == [("w-1", D("2"))]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await venue.close()


async def test_dropped_user_stream_on_the_perpetual_is_reconciled_once(
    emulator: BinanceFuturesEmulator,
) -> None:
    venue = make_venue(emulator, pro=True, reconcile_interval=3600.0, funding_interval=3600.0)
    events: list[Event] = []

    async def drain() -> None:
        async for event in venue.stream():
            events.append(event)

    def fills() -> list[tuple[str, Decimal, Decimal]]:
        return [(f.client_order_id, f.price, f.quantity) for f in events if type(f) is Fill]

    task = asyncio.create_task(drain())
    try:
        await until(lambda: emulator.streams.open_user_streams == 1, "the user stream")
        await venue.submit(order("d-1", Side.BUY, "4", "249.95"))
        emulator.streams.refuse = True
        await emulator.streams.drop()
        await until(lambda: emulator.streams.refused >= 1, "a refused reconnect")
        # While nobody listens, 1.5 of the bid fills at 249.95 (maker).
        emulator.set_book(SYMBOL_ID, [(D("249.8"), D("10"))], [(D("249.9"), D("1.5")), (D("250.2"), D("10"))])
        emulator.streams.refuse = False
        await until(lambda: bool(fills()), "the missed fill")
        await until(lambda: emulator.streams.open_user_streams == 1, "the user stream again")
        stream = venue.current_stream
        await until(lambda: stream is not None and not stream.pending_reconciles, "reconciled")
        # The rest fills over the new connection (same listen key: it is still valid).
        emulator.set_book(SYMBOL_ID, [(D("249.8"), D("10"))], [(D("249.9"), D("5"))])
        await until(lambda: len(fills()) == 2, "the second fill")
        await until(
            lambda: any(type(u) is OrderUpdate and u.status is OrderStatus.FILLED for u in events), "filled"
        )
        assert fills() == [("d-1", D("249.95"), D("1.5")), ("d-1", D("249.95"), D("2.5"))]
        updates = [(u.client_order_id, u.status, u.filled_quantity) for u in events if type(u) is OrderUpdate]
        assert updates == [
            ("d-1", OrderStatus.PARTIALLY_FILLED, D("1.5")),
            ("d-1", OrderStatus.FILLED, D("4")),
        ]
        assert len(emulator.requests_to("/fapi/v1/listenKey", "POST")) == 1
        positions = await venue.positions()
        assert positions[INSTRUMENT].quantity == D("4") and positions[INSTRUMENT].entry_price == D("249.95")
        state = await venue.snapshot()
        # 1000 less the maker fee 0.02% of 999.8 USDT, plus the unrealized PnL at the mid.
        assert emulator.wallet() == D("1000") - D("999.8") * D("0.0002")
        assert state.balances["USDT"] == emulator.margin_balance() and state.open_orders == ()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await venue.close()
