"""`AlpacaBroker.stream()` against the emulator's websockets (127.0.0.1): trade updates, market data,
reconnect + REST reconcile with fills counted exactly once; latest quote/trade; notional orders."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

import aiohttp
import pytest

from connectors.brokers.alpaca import AlpacaAuthError, AlpacaBroker
from connectors.emulators.alpaca import AlpacaAsset, AlpacaEmulator
from core.calendar import MarketCalendar
from core.enums import Liquidity, OrderStatus, OrderType, Side, TimeInForce
from core.events import Event, Fill, OrderUpdate, Quote, Trade
from core.orders import OrderRequest

D = Decimal
KEY_ID = "stream-key-id-not-real"
SECRET = "stream-SECRET-value-not-real-5a4b3c"
# Tuesday 2025-06-10 10:00:00.123456789 New York (EDT): the nanoseconds check exact timestamps
REGULAR_NS = int(datetime(2025, 6, 10, 14, 0, tzinfo=UTC).timestamp()) * 10**9 + 123_456_789
T = TypeVar("T")
WAIT_S = 10.0  # a safety net against a hang, never a timing assertion


class SetClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def now_ns(self) -> int:
        return self.now


class Collector:
    """Runs `broker.stream()` in a task and lets the test wait for a condition on what came out."""

    def __init__(self, broker: AlpacaBroker) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._run(broker))
        self.error: BaseException | None = None

    async def _run(self, broker: AlpacaBroker) -> None:
        try:
            async for event in broker.stream():
                async with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()
        except Exception as exc:
            async with self._changed:
                self.error = exc
                self._changed.notify_all()

    async def wait(self, predicate: Callable[[list[Event]], bool]) -> list[Event]:
        async with asyncio.timeout(WAIT_S), self._changed:
            await self._changed.wait_for(lambda: self.error is not None or predicate(self.events))
        if self.error is not None:
            raise self.error
        return self.events

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def of(self, kind: type[T], cid: str | None = None) -> list[T]:
        return [
            e
            for e in self.events
            if isinstance(e, kind) and (cid is None or getattr(e, "client_order_id", None) == cid)
        ]


@pytest.fixture(scope="module")
def calendar() -> MarketCalendar:
    return MarketCalendar(start="2025-06-01", end="2025-06-30")


@pytest.fixture
def clock() -> SetClock:
    return SetClock(REGULAR_NS)


@pytest.fixture
async def emulator(calendar: MarketCalendar, clock: SetClock) -> AsyncIterator[AlpacaEmulator]:
    emu = AlpacaEmulator(
        KEY_ID,
        SECRET,
        calendar,
        clock,
        [AlpacaAsset("TSLA"), AlpacaAsset("BRK.A", fractionable=False)],
        cash=D("10000"),
    )
    await emu.start()
    emu.set_quote("TSLA", D("249.50"), D("250.25"))
    yield emu
    await emu.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def make_broker(
    emulator: AlpacaEmulator,
    calendar: MarketCalendar,
    clock: SetClock,
    http: aiohttp.ClientSession,
    secret: str = SECRET,
    symbols: tuple[str, ...] = (),
) -> AlpacaBroker:
    return AlpacaBroker(
        "alpaca",
        emulator.base_url,
        KEY_ID,
        secret,
        calendar,
        clock,
        http,
        backoff_s=0.001,
        data_url=emulator.base_url,
        data_stream_url=emulator.ws_url + "/v2/iex",
        symbols=symbols,
        reconnect_backoff_s=0.001,
    )


@pytest.fixture
def broker(
    emulator: AlpacaEmulator, calendar: MarketCalendar, clock: SetClock, http: aiohttp.ClientSession
) -> AlpacaBroker:
    return make_broker(emulator, calendar, clock, http)


def limit_buy(cid: str, qty: str, price: str) -> OrderRequest:
    return OrderRequest(cid, "alpaca", "TSLA", Side.BUY, D(qty), OrderType.LIMIT, D(price), TimeInForce.DAY)


def status_of(cid: str, status: OrderStatus) -> Callable[[list[Event]], bool]:
    return lambda evs: any(
        type(e) is OrderUpdate and e.client_order_id == cid and e.status is status for e in evs
    )


async def test_partial_fill_then_drop_then_final_fill_is_recovered_once(
    broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    collector = Collector(broker)
    try:
        await emulator.streams.wait_for(listens=1)
        ack = await broker.submit(limit_buy("p-1", "4", "250"))
        assert ack.status is OrderStatus.ACCEPTED
        await collector.wait(status_of("p-1", OrderStatus.ACCEPTED))

        emulator.execute("p-1", D("1.5"), D("249.90"))
        await collector.wait(status_of("p-1", OrderStatus.PARTIALLY_FILLED))

        await emulator.drop_streams()
        emulator.execute("p-1", D("2.5"), D("249.80"))  # while nobody listens
        await emulator.flush()
        assert emulator.trade_updates[-1]["event"] == "fill"

        await collector.wait(status_of("p-1", OrderStatus.FILLED))
        fills = collector.of(Fill, "p-1")
        order_id = emulator.order_by_client_id("p-1").id
        assert fills == [
            Fill(REGULAR_NS, "alpaca", "TSLA", "p-1", Side.BUY, D("249.90"), D("1.5"), D(0), "USD",
                 Liquidity.TAKER, f"{order_id}@1.5"),
            Fill(REGULAR_NS, "alpaca", "TSLA", "p-1", Side.BUY, D("249.8"), D("2.5"), D(0), "USD",
                 Liquidity.TAKER, f"{order_id}@4"),
        ]  # fmt: skip
        assert sum(f.quantity for f in fills) == D(4) == emulator.position("TSLA")
        assert broker.connects == 2
        assert emulator.streams.auth_keys == [KEY_ID, KEY_ID]
        # the final fill came from the reconcile after the reconnect: one GET of the order by id
        assert len(emulator.requests_to(f"/v2/orders/{order_id}", "GET")) == 1

        # a replayed fill message adds nothing: the next event is the sentinel order's fill
        before = len(collector.events)
        await emulator.streams.publish_trade_update(emulator.trade_updates[-1])
        await broker.submit(limit_buy("s-2", "1", "240"))
        emulator.execute("s-2", D("1"), D("240"))
        await collector.wait(lambda evs: any(type(e) is Fill and e.client_order_id == "s-2" for e in evs))
        assert not [e for e in collector.events[before:] if getattr(e, "client_order_id", "") == "p-1"]
        assert len(collector.of(Fill, "p-1")) == 2
    finally:
        await collector.close()


async def test_order_events_cancel_and_reject(broker: AlpacaBroker, emulator: AlpacaEmulator) -> None:
    collector = Collector(broker)
    try:
        await emulator.streams.wait_for(listens=1)
        await broker.submit(limit_buy("c-1", "1", "200"))
        await broker.submit(limit_buy("r-1", "1", "200"))
        cancelled = await broker.cancel("c-1")
        assert cancelled.status is OrderStatus.CANCELLED
        emulator.reject("r-1", "exchange halted")
        await collector.wait(status_of("r-1", OrderStatus.REJECTED))
        updates = [(e.client_order_id, e.status) for e in collector.of(OrderUpdate)]
        assert updates == [
            ("c-1", OrderStatus.ACCEPTED),
            ("r-1", OrderStatus.ACCEPTED),
            ("c-1", OrderStatus.CANCELLED),
            ("r-1", OrderStatus.REJECTED),
        ]
        [rejected] = [e for e in collector.of(OrderUpdate, "r-1") if e.status is OrderStatus.REJECTED]
        assert rejected.reason == "rejected"
        assert [u["event"] for u in emulator.trade_updates] == ["new", "new", "canceled", "rejected"]
        assert collector.of(Fill) == []
    finally:
        await collector.close()


async def test_market_data_stream_quotes_trades_and_reconnect(
    emulator: AlpacaEmulator,
    calendar: MarketCalendar,
    clock: SetClock,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    broker = make_broker(emulator, calendar, clock, http, symbols=("TSLA",))
    collector = Collector(broker)
    try:
        await emulator.streams.wait_for(listens=1, subscriptions=1)
        assert await emulator.push_quote("TSLA", D("250.10"), D("250.30"), D(3), D(7)) == 1
        assert await emulator.push_trade("TSLA", D("250.20"), D(5)) == 1
        await collector.wait(lambda evs: any(type(e) is Trade for e in evs))
        [quote] = collector.of(Quote)
        [trade] = collector.of(Trade)
        assert quote == Quote(REGULAR_NS, "alpaca", "TSLA", 250.10, 250.30, 3.0, 7.0)
        assert trade.ts == REGULAR_NS and (trade.price, trade.size) == (250.20, 5.0)
        assert trade.aggressor is None and trade.trade_id

        # a malformed message is skipped and logged; the next good one still arrives
        await emulator.streams.publish_raw('[{"T": "q", "S": "TSLA", "bp": "x"}]')
        await emulator.push_quote("TSLA", D("251"), D("252"))
        await collector.wait(lambda evs: len([e for e in evs if type(e) is Quote]) == 2)
        assert collector.of(Quote)[-1].bid == 251.0
        assert any("quote of TSLA skipped" in r.getMessage() for r in caplog.records)

        # dropped: reconnects, authenticates and subscribes again
        await emulator.drop_streams()
        await emulator.streams.wait_for(listens=2, subscriptions=2)
        await emulator.push_quote("TSLA", D("253"), D("254"))
        await collector.wait(lambda evs: len([e for e in evs if type(e) is Quote]) == 3)
        assert collector.of(Quote)[-1].ask == 254.0
        assert emulator.streams.auth_keys.count(KEY_ID) == 4  # 2 trade-updates + 2 market-data
        assert all(SECRET not in r.getMessage() for r in caplog.records)
        assert SECRET not in caplog.text
    finally:
        await collector.close()


async def test_latest_quote_and_trade(broker: AlpacaBroker, emulator: AlpacaEmulator) -> None:
    emulator.set_quote("TSLA", D("249.75"), D("250.05"), D(2), D(9))
    await emulator.push_trade("TSLA", D("249.90"), D("0.5"))
    quote = await broker.latest_quote("TSLA")
    trade = await broker.latest_trade("TSLA")
    assert quote == Quote(REGULAR_NS, "alpaca", "TSLA", 249.75, 250.05, 2.0, 9.0)
    assert (trade.ts, trade.price, trade.size) == (REGULAR_NS, 249.90, 0.5)
    assert [r.path for r in emulator.requests[-2:]] == [
        "/v2/stocks/TSLA/quotes/latest",
        "/v2/stocks/TSLA/trades/latest",
    ]


async def test_notional_and_fractional_orders(broker: AlpacaBroker, emulator: AlpacaEmulator) -> None:
    update = await broker.submit_notional("n-1", "TSLA", Side.BUY, D("1000"))
    assert update.status is OrderStatus.FILLED
    # Alpaca fills a $1000 notional buy at the 250.25 ask: 1000 / 250.25 to 9 decimals, rounded down
    assert update.filled_quantity == D("3.996003996")
    [post] = emulator.requests_to("/v2/orders", "POST")
    assert post.body == {
        "symbol": "TSLA",
        "notional": "1000",
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "client_order_id": "n-1",
    }
    assert emulator.cash == D("9000.00000000100")
    fractional = await broker.submit(
        OrderRequest("q-1", "alpaca", "TSLA", Side.SELL, D("0.996003996"), OrderType.MARKET,
                     time_in_force=TimeInForce.DAY)
    )  # fmt: skip
    assert fractional.status is OrderStatus.FILLED
    assert emulator.position("TSLA") == D("3")
    refused = await broker.submit_notional("n-2", "BRK.A", Side.BUY, D("50"))
    assert refused.status is OrderStatus.REJECTED
    assert refused.reason == "notional is fractional but BRK.A is not fractionable at Alpaca"
    assert len(emulator.requests_to("/v2/orders", "POST")) == 2
    # the fills were queued for the stream even before it ran
    collector = Collector(broker)
    try:
        events = await collector.wait(lambda evs: len([e for e in evs if type(e) is Fill]) == 2)
        fills = [e for e in events if type(e) is Fill]
        assert [(f.client_order_id, f.side, f.quantity, f.price) for f in fills] == [
            ("n-1", Side.BUY, D("3.996003996"), D("250.25")),
            ("q-1", Side.SELL, D("0.996003996"), D("249.50")),
        ]
    finally:
        await collector.close()


async def test_refused_stream_keys_fail_clearly_without_the_secret(
    emulator: AlpacaEmulator,
    calendar: MarketCalendar,
    clock: SetClock,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + SECRET
    broker = make_broker(emulator, calendar, clock, http, secret=wrong)
    collector = Collector(broker)
    with pytest.raises(AlpacaAuthError) as refused:
        await collector.wait(lambda evs: False)
    await collector.close()
    texts = [str(refused.value), repr(refused.value), repr(broker), caplog.text]
    assert "refused the API keys" in str(refused.value)
    assert all(wrong not in t and SECRET not in t for t in texts)
    assert emulator.streams.auth_keys == []


async def test_a_restarted_broker_reports_only_the_fills_after_what_it_adopted(
    emulator: AlpacaEmulator, calendar: MarketCalendar, clock: SetClock, http: aiohttp.ClientSession
) -> None:
    """The journal knew 1.5 filled at 249.90; 2.5 more filled while the bot was down."""
    first = make_broker(emulator, calendar, clock, http)
    await first.submit(limit_buy("r-1", "4", "250"))
    emulator.execute("r-1", D("1.5"), D("249.90"))
    emulator.execute("r-1", D("2.5"), D("249.80"))
    order_id = emulator.order_by_client_id("r-1").id
    restarted = make_broker(emulator, calendar, clock, http)
    restarted.adopt_order(
        "r-1", "TSLA", Side.BUY, order_id, D("1.5"), D("249.90"), OrderStatus.PARTIALLY_FILLED
    )
    collector = Collector(restarted)
    try:
        await collector.wait(status_of("r-1", OrderStatus.FILLED))
        # Only the rest, priced so the averages agree: (4 x 249.84 - 1.5 x 249.90) / 2.5 = 249.80.
        assert [(f.quantity, f.price, f.trade_id) for f in collector.of(Fill, "r-1")] == [
            (D("2.5"), D("249.8"), f"{order_id}@4")
        ]
    finally:
        await collector.close()
