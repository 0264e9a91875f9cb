"""The trading engine and the replay driver: dispatch, ownership, idempotency, risk refusals,
timers, books, fair value, determinism and no look-ahead.

The venue is the real simulated broker (`connectors/sim/broker.py`); Monday 2025-06-02 is EDT.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

import numpy as np
import pytest

from backtest.replay import LAZY_ROWS, ColumnStream, ListStream, ReplayDriver, drive, merge
from connectors.sim.broker import BrokerAsset, BrokerConfig, SimBroker
from core.clock import SimulatedClock
from core.engine import ReferenceSource, TradingEngine
from core.enums import OrderStatus, OrderType, Side
from core.errors import InvalidInput
from core.events import BookUpdate, Event, Fill, OraclePrice, OrderUpdate, Quote, Trade
from core.instruments import InstrumentRegistry, MultiplierChange, MultiplierSchedule, Spot, TokenizedStock
from core.orders import OrderRequest, Request
from core.portfolio import Portfolio
from strategies.base import Strategy
from tests.connectors.sim.venue_harness import MS, SECOND, calendar, et

D = Decimal
TSLA = Spot("TSLA/USD", "TSLA", "USD", price_increment=D("0.01"))
OPEN = et(2025, 6, 2, 10)  # regular session
CAL = calendar()


def quote(ts: int, bid: float, ask: float) -> Quote:
    return Quote(ts, "alpaca", "TSLA/USD", bid, ask, 100.0, 100.0)


def market_buy(ctx: Any, qty: str = "1") -> OrderRequest:
    return OrderRequest(ctx.new_client_order_id(), "alpaca", "TSLA/USD", Side.BUY, D(qty), OrderType.MARKET)


def build(
    strategies: list[Strategy], latency_ns: int = 50 * MS, risk_checks: tuple[Any, ...] = (), **kwargs: Any
) -> tuple[TradingEngine, SimulatedClock, SimBroker]:
    clock = SimulatedClock(OPEN - SECOND)
    registry = InstrumentRegistry([TSLA, *kwargs.pop("instruments", [])])
    portfolio = Portfolio(registry)
    portfolio.deposit("alpaca", "USD", D(100_000))
    broker = SimBroker(
        "alpaca", clock, CAL, [BrokerAsset(TSLA)], BrokerConfig(latency_ns=latency_ns), {"USD": D(100_000)}
    )
    engine = TradingEngine(
        clock=clock,
        instruments=registry,
        portfolio=portfolio,
        calendar=CAL,
        venues={"alpaca": broker},
        strategies=strategies,
        risk_checks=risk_checks,
        **kwargs,
    )
    return engine, clock, broker


def replay(engine: TradingEngine, clock: SimulatedClock, broker: SimBroker, events: list[Event]) -> None:
    ReplayDriver(engine, clock, [broker]).run([ListStream(events, "events")])


class Recorder(Strategy):
    """Records what it sees; buys once on the first quote."""

    def __init__(self, name: str, buy: bool = True) -> None:
        super().__init__(name)
        self.buy = buy
        self.seen: list[Event] = []
        self.timers: list[tuple[int, str]] = []

    async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
        self.seen.append(event)
        if self.buy:
            self.buy = False
            await ctx.submit(market_buy(ctx))

    async def on_fill(self, ctx: Any, event: Fill, **kwargs: Any) -> None:
        self.seen.append(event)

    async def on_order_update(self, ctx: Any, event: OrderUpdate, **kwargs: Any) -> None:
        self.seen.append(event)

    async def on_timer(self, ctx: Any, name: str, **kwargs: Any) -> None:
        self.timers.append((ctx.now, name))


class Everything(Strategy):
    """Overrides on_event: receives every type."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.types: list[type] = []

    async def on_event(self, ctx: Any, event: Event, **kwargs: Any) -> None:
        self.types.append(type(event))


def test_subscriptions_follow_overridden_handlers() -> None:
    quiet = Recorder("quiet", buy=False)
    everything = Everything("all")
    assert quiet.subscriptions() == {Quote, Fill, OrderUpdate}
    engine, clock, broker = build([quiet, everything])
    events: list[Event] = [quote(OPEN, 100, 101), Trade(OPEN + 1, "alpaca", "TSLA/USD", 100.5, 3.0, Side.BUY)]
    replay(engine, clock, broker, events)
    assert [type(e) for e in quiet.seen] == [Quote]  # no trade: it does not handle trades
    assert everything.types == [Quote, Trade]


def test_own_fills_go_to_the_owner_only_and_move_the_portfolio() -> None:
    buyer, bystander = Recorder("buyer"), Recorder("bystander", buy=False)
    engine, clock, broker = build([buyer, bystander])
    # Buyer submits at OPEN; the order arrives 50 ms later and fills at the ask then in force (101).
    replay(engine, clock, broker, [quote(OPEN, 100, 101), quote(OPEN + SECOND, 102, 103)])
    fills = [e for e in buyer.seen if isinstance(e, Fill)]
    assert len(fills) == 1 and fills[0].price == D(101) and fills[0].ts == OPEN + 50 * MS
    assert not [e for e in bystander.seen if isinstance(e, Fill | OrderUpdate)]
    assert engine.portfolio.balance("alpaca", "TSLA") == D(1)
    assert engine.portfolio.balance("alpaca", "USD") == D(100_000) - fills[0].notional - fills[0].fee  # type: ignore[operator]
    assert engine.orders.get("buyer-1").status is OrderStatus.FILLED


def test_same_request_twice_sends_one_order() -> None:
    class Twice(Strategy):
        async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
            if not ctx.open_orders() and not engine.orders:
                request = market_buy(ctx)
                first = await ctx.submit(request)
                second = await ctx.submit(request)
                assert first is second

    engine, clock, broker = build([Twice("t")])
    replay(engine, clock, broker, [quote(OPEN, 100, 101), quote(OPEN + SECOND, 100, 101)])
    assert len(engine.orders) == 1
    assert len(engine.fills) == 1
    assert engine.portfolio.balance("alpaca", "TSLA") == D(1)


class RefuseAbove:
    """A risk check: refuse orders bigger than `limit`."""

    def __init__(self, limit: Decimal) -> None:
        self.limit = limit

    def check(self, request: Request, engine: TradingEngine) -> str | None:
        quantity = getattr(request, "quantity", D(0))
        return f"quantity {quantity} above {self.limit}" if quantity > self.limit else None


def test_risk_refusal_rejects_without_reaching_the_venue() -> None:
    class Big(Strategy):
        updates: ClassVar[list[OrderUpdate]] = []

        async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
            if not engine.orders:
                await ctx.submit(market_buy(ctx, "5"))

        async def on_order_update(self, ctx: Any, event: OrderUpdate, **kwargs: Any) -> None:
            self.updates.append(event)

    strategy = Big("big")
    engine, clock, broker = build([strategy], risk_checks=(RefuseAbove(D(2)),))
    replay(engine, clock, broker, [quote(OPEN, 100, 101), quote(OPEN + SECOND, 100, 101)])
    order = engine.orders.get("big-1")
    assert order.status is OrderStatus.REJECTED and order.reason == "quantity 5 above 2"
    assert [u.status for u in strategy.updates] == [OrderStatus.REJECTED]
    assert engine.fills == [] and broker.ledger.balances() == {"USD": D(100_000)}
    assert engine.portfolio.balance("alpaca", "USD") == D(100_000)


def test_unknown_venue_is_rejected_with_its_name() -> None:
    class Lost(Strategy):
        async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
            if not engine.orders:
                await ctx.submit(OrderRequest("x-1", "nowhere", "TSLA/USD", Side.BUY, D(1), OrderType.MARKET))

    engine, clock, broker = build([Lost("l")])
    replay(engine, clock, broker, [quote(OPEN, 100, 101)])
    assert engine.orders.get("x-1").reason == "unknown venue 'nowhere'"


def test_timers_fire_in_time_order_between_events() -> None:
    class Timed(Recorder):
        async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
            self.seen.append(event)
            if len(self.seen) == 1:
                ctx.schedule(OPEN + 3 * SECOND, "late")
                ctx.schedule(OPEN + SECOND, "early")
                ctx.schedule(OPEN + SECOND, "early-second")
                with pytest.raises(InvalidInput, match="at_ns: is in the past"):
                    ctx.schedule(OPEN - 1, "past")

    strategy = Timed("t", buy=False)
    engine, clock, broker = build([strategy])
    replay(engine, clock, broker, [quote(OPEN, 100, 101), quote(OPEN + 2 * SECOND, 100, 101)])
    # The 3 s timer is after the last event: the run ends at the last event's time, so it stays queued.
    assert strategy.timers == [(OPEN + SECOND, "early"), (OPEN + SECOND, "early-second")]
    assert engine.next_timer_ns() == OPEN + 3 * SECOND


def test_book_updates_aggregate_into_a_book_and_a_quote() -> None:
    engine, clock, _ = build([])
    snapshot = BookUpdate(
        OPEN, "alpaca", "TSLA/USD", ((100.0, 2.0), (99.5, 4.0)), ((101.0, 1.0), (102.0, 3.0))
    )
    delta = BookUpdate(OPEN + 1, "alpaca", "TSLA/USD", ((100.0, 0.0), (100.5, 1.5)), (), False)
    clock.advance_to(OPEN + 1)
    for event in (snapshot, delta):
        drive(engine.process(event))
    book = engine.book("alpaca", "TSLA/USD")
    assert book is not None
    assert book.bids == ((100.5, 1.5), (99.5, 4.0)) and book.asks == ((101.0, 1.0), (102.0, 3.0))
    assert engine.quotes[("alpaca", "TSLA/USD")] == Quote(
        OPEN + 1, "alpaca", "TSLA/USD", 100.5, 101.0, 1.5, 1.0
    )


def test_fair_value_needs_a_fresh_reference_and_applies_the_multiplier_schedule() -> None:
    token = TokenizedStock(
        "TSLAx",
        "TSLA",
        "xstocks",
        1,
        "0x" + "33" * 20,
        multiplier=MultiplierSchedule(D(1), (MultiplierChange(OPEN + 10 * SECOND, D("1.5")),)),
    )
    refs = [ReferenceSource("TSLA", "chainlink", "TSLA/USD", 5 * SECOND, from_oracle=True)]
    engine, clock, _ = build([], instruments=[token], references=refs)
    clock.advance_to(OPEN)
    assert engine.fair_value("TSLAx") is None  # no price yet
    drive(engine.process(OraclePrice(OPEN, "chainlink", "TSLA/USD", 200.0, OPEN - SECOND)))
    assert engine.fair_value("TSLAx") == 200.0
    clock.advance_to(OPEN + 4 * SECOND)
    assert engine.fair_value("TSLAx") == 200.0  # published 5 s ago: still fresh
    clock.advance_to(OPEN + 4 * SECOND + 1)
    assert engine.fair_value("TSLAx") is None  # 1 ns past the allowed age
    drive(engine.process(OraclePrice(OPEN + 11 * SECOND, "chainlink", "TSLA/USD", 210.0, OPEN + 11 * SECOND)))
    clock.advance_to(OPEN + 11 * SECOND)
    assert engine.fair_value("TSLAx") == 315.0  # 210 x 1.5 after the multiplier change
    with pytest.raises(InvalidInput, match="token: is not a tokenized stock, got 'TSLA/USD'"):
        engine.fair_value("TSLA/USD")


def test_a_strategy_awaiting_real_io_fails_loudly() -> None:
    class Suspend:
        """What awaiting a socket does: hand control back to an event loop."""

        def __await__(self) -> Any:
            yield

    class Sleeper(Strategy):
        async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
            await Suspend()

    engine, clock, broker = build([Sleeper("s")])
    with pytest.raises(RuntimeError, match="awaited real I/O inside a backtest"):
        replay(engine, clock, broker, [quote(OPEN, 100, 101)])


class Peeker(Strategy):
    """Buys whenever it sees a quote, and checks that nothing it can see is from the future."""

    async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
        assert event.ts <= ctx.now
        visible = ctx.quote("alpaca", "TSLA/USD")
        assert visible is not None and visible.ts <= ctx.now
        if len(ctx.open_orders()) == 0:
            await ctx.submit(market_buy(ctx))


def random_quotes(n: int, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    ts = OPEN + np.cumsum(rng.integers(1, 200, n)) * MS
    mid = np.round(100 + np.cumsum(rng.normal(0, 0.05, n)), 2)
    return ts, [mid - 0.01, mid + 0.01, np.full(n, 50.0), np.full(n, 50.0)]


def run_random(seed: int) -> TradingEngine:
    engine, clock, broker = build([Peeker("p")], latency_ns=30 * MS)
    ts, columns = random_quotes(2_000, seed)
    stream = ColumnStream(Quote, ts, ("alpaca", "TSLA/USD"), columns, chunk_size=300)
    ReplayDriver(engine, clock, [broker]).run([stream])
    return engine


def test_identical_inputs_give_identical_outputs() -> None:
    a, b = run_random(7), run_random(7)
    assert len(a.fills) > 50
    assert a.fills == b.fills
    assert a.portfolio.snapshot() == b.portfolio.snapshot()
    assert run_random(8).fills != a.fills


def test_orders_fill_at_the_price_after_their_latency_not_the_trigger() -> None:
    engine = run_random(3)
    ts, columns = random_quotes(2_000, 3)
    asks = columns[1]
    moved = 0
    for fill in engine.fills:
        # Orders arrive 30 ms after their trigger (fill.ts) and take the ask in force just before
        # it: a quote stamped at the arrival instant is replayed after the arrival.
        i = int(np.searchsorted(ts, fill.ts, side="left")) - 1
        trigger = int(np.searchsorted(ts, fill.ts - 30 * MS, side="left"))
        assert ts[trigger] == fill.ts - 30 * MS
        assert fill.price == D(repr(float(asks[i])))
        moved += i != trigger and asks[i] != asks[trigger]
    assert moved > 10  # the price moved during the latency in many of them, and the fill followed


def test_merge_orders_streams_by_time_then_stream_order() -> None:
    a = ListStream([quote(1, 1, 2), quote(3, 1, 2), quote(3, 5, 6)], "a")
    b = ColumnStream(
        Quote, [2, 3, 4], ("alpaca", "TSLA/USD"), [[7.0] * 3, [8.0] * 3, [1.0] * 3, [1.0] * 3], chunk_size=2
    )
    merged = list(merge([a, b]))
    assert [(e.ts, e.bid) for e in merged] == [(1, 1), (2, 7), (3, 1), (3, 5), (3, 7), (4, 7)]  # type: ignore[union-attr]
    with pytest.raises(ValueError, match=r"q\[2\].ts: must not decrease, got 1 after 5"):
        ListStream([quote(3, 1, 2), quote(5, 1, 2), quote(1, 1, 2)], "q")
    with pytest.raises(ValueError, match="Quote has 7 fields, got ts \\+ 2 constants \\+ 3 columns"):
        ColumnStream(Quote, [1], ("alpaca", "TSLA/USD"), [[1.0], [1.0], [1.0]])


def test_chunk_rows_equal_events_built_one_by_one_for_any_run() -> None:
    # Long runs are built lazily from the columns, short ones sliced from the chunk's list: both
    # must give exactly the events of a direct construction, ints and floats as Python objects.
    n = 3 * LAZY_ROWS + 7
    ts = np.arange(n, dtype=np.int64) * 1000 + 5
    bid = np.linspace(100.0, 101.0, n)
    columns = [bid, bid + 0.5, np.full(n, 2.0), np.arange(n, dtype=np.float64)]
    expected = [Quote(int(ts[i]), "v", "X", *(float(c[i]) for c in columns)) for i in range(n)]
    for start, stop in ((0, n), (3, n), (LAZY_ROWS, 2 * LAZY_ROWS + 1), (10, 12), (n - 1, n), (5, 5)):
        (chunk,) = ColumnStream(Quote, ts, ("v", "X"), columns, chunk_size=n).chunks()
        rows = list(chunk.rows(start, stop))
        assert rows == expected[start:stop]
        assert all(type(e) is Quote and type(e.ts) is int and type(e.bid) is float for e in rows)
        assert list(chunk.rows(0, n)) == expected  # after either route, the whole chunk again


def test_a_late_acknowledgement_of_a_cancelled_order_moves_nothing() -> None:
    """Live venues answer a cancel over REST before the order's ack arrives by websocket."""
    engine, _, _ = build([Recorder("r", buy=False)])
    ctx = engine.contexts[0]
    order = drive(ctx.submit(market_buy(ctx)))
    drive(engine.process(OrderUpdate(OPEN, "alpaca", order.client_order_id, OrderStatus.CANCELLED)))
    drive(engine.process(OrderUpdate(OPEN, "alpaca", order.client_order_id, OrderStatus.ACCEPTED, "v-1")))
    assert order.status is OrderStatus.CANCELLED
    assert order.history == [OrderStatus.NEW, OrderStatus.CANCELLED]
    assert order.venue_order_id == "v-1"  # what the late ack says about the order is still kept
