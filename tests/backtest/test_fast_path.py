"""The replay fast path: quotes filtered by compiled wake filters give the same backtest as dense replay.

The reference is a strategy without filters that applies the same rule in Python on every quote:
orders, fills, balances and everything the strategy saw must be identical, while the fast path
builds events only for a small part of the rows.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from backtest.replay import ColumnStream, ReplayDriver
from connectors.sim.book_exchange import BookExchange, BookExchangeConfig
from connectors.sim.fees import FeeSchedule
from connectors.sim.latency import LatencyModel
from core.calendar import MarketCalendar
from core.clock import SimulatedClock
from core.engine import TradingEngine
from core.enums import OrderType, Side
from core.errors import InvalidInput
from core.events import Fill, OrderUpdate, Quote
from core.instruments import InstrumentRegistry, Spot
from core.orders import OrderRequest
from core.portfolio import Portfolio
from core.wake import WakeFilter
from strategies.base import Strategy
from strategies.wake_filters import _mid_move, every_nth, mid_move

D = Decimal
V = "bx"
A = "TSLAx/USDT"
B = "ETH/USDT"
T0 = 1_767_225_600_000_000_000  # 2026-01-01 00:00 UTC, ns
MS = 1_000_000
REGISTRY = InstrumentRegistry(
    [
        Spot(A, "TSLAx", "USDT", price_increment=D("0.01"), size_increment=D("0.001")),
        Spot(B, "ETH", "USDT", price_increment=D("0.01"), size_increment=D("0.001")),
    ]
)
N = 20_000
EVERY = 250


@pytest.fixture(scope="module")
def calendar() -> MarketCalendar:
    return MarketCalendar(start="2025-01-01", end="2026-12-31")


def streams(seed: int = 7) -> list[ColumnStream]:
    """A busy quote stream of A (1-40 ms apart) and a sparse one of B (about one a second)."""
    rng = np.random.default_rng(seed)
    ts_a = T0 + np.cumsum(rng.integers(1, 40, N)) * MS
    mid_a = np.round(250 + np.cumsum(rng.normal(0, 0.05, N)), 2)
    size_a = rng.integers(1, 20, N).astype(float)
    ts_b = np.arange(T0, int(ts_a[-1]), 997 * MS)
    mid_b = np.round(3000 + np.cumsum(rng.normal(0, 1, len(ts_b))), 2)
    one = np.ones(len(ts_b))
    return [
        ColumnStream(
            Quote, ts_a, (V, A), [mid_a - 0.01, mid_a + 0.01, size_a, size_a[::-1]], chunk_size=4096
        ),
        ColumnStream(Quote, ts_b, (V, B), [mid_b - 0.5, mid_b + 0.5, one, one], chunk_size=1000),
    ]


class Reactor(Strategy):
    """On every EVERY-th quote of A: a market order or a resting limit bid cancelled by a timer.

    Everything it sees is logged: each callback's time and event, and the quote of A it reads.
    """

    def __init__(self, name: str, filtered: bool) -> None:
        super().__init__(name)
        self.filtered = filtered
        self.seen_a = 0
        self.wakes = 0
        self.log: list[tuple[Any, ...]] = []

    def wake_filters(self) -> list[WakeFilter]:
        return [every_nth(V, A, EVERY)] if self.filtered else []

    async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
        if event.instrument == A and not self.filtered:  # the reference: the same rule in Python
            self.seen_a += 1
            if self.seen_a % EVERY:
                return
        self.log.append(("quote", ctx.now, event, ctx.quote(V, A)))
        if event.instrument != A:
            return
        self.wakes += 1
        side = Side.BUY if self.wakes % 4 < 2 else Side.SELL
        if self.wakes % 2:
            await ctx.submit(OrderRequest(ctx.new_client_order_id(), V, A, side, D("0.5"), OrderType.MARKET))
            return
        order_id = ctx.new_client_order_id()
        price = D(str(event.bid)) if side is Side.BUY else D(str(event.ask))
        await ctx.submit(OrderRequest(order_id, V, A, side, D(3), OrderType.LIMIT, price))
        ctx.schedule(ctx.now + 150 * MS, order_id)

    async def on_timer(self, ctx: Any, name: str, **kwargs: Any) -> None:
        self.log.append(("timer", ctx.now, name, ctx.quote(V, A), ctx.quote(V, B)))
        if name in {o.client_order_id for o in ctx.open_orders()}:
            await ctx.cancel(name)

    async def on_fill(self, ctx: Any, event: Fill, **kwargs: Any) -> None:
        self.log.append(("fill", ctx.now, event))

    async def on_order_update(self, ctx: Any, event: OrderUpdate, **kwargs: Any) -> None:
        self.log.append(("update", ctx.now, event))


def run(calendar: MarketCalendar, strategy: Strategy, fast_path: bool) -> tuple[TradingEngine, ReplayDriver]:
    clock = SimulatedClock(T0 - 1)
    balances = {"USDT": D(1_000_000), "TSLAx": D(1_000), "ETH": D(10)}
    config = BookExchangeConfig(
        fees=FeeSchedule(D(2), D(5)),
        order_latency=LatencyModel.constant(3 * MS),
    )
    venue = BookExchange(V, clock, REGISTRY, [A, B], balances, config)
    portfolio = Portfolio(REGISTRY)
    for asset, amount in balances.items():
        portfolio.deposit(V, asset, amount)
    engine = TradingEngine(
        clock=clock,
        instruments=REGISTRY,
        portfolio=portfolio,
        calendar=calendar,
        venues={V: venue},
        strategies=[strategy],
    )
    driver = ReplayDriver(engine, clock, [venue], fast_path=fast_path)
    driver.run(streams())
    return engine, driver


def outcome(engine: TradingEngine, strategy: Reactor) -> tuple[Any, ...]:
    orders = [(o.client_order_id, o.history, o.filled_quantity) for o in engine.orders]
    balances = {a: engine.portfolio.balance(V, a) for a in ("USDT", "TSLAx", "ETH")}
    return engine.fills, orders, balances, strategy.log


def test_fast_path_equals_dense_replay_and_the_python_reference(calendar: MarketCalendar) -> None:
    fast, reference, dense = Reactor("s", True), Reactor("s", False), Reactor("s", True)
    fast_engine, fast_driver = run(calendar, fast, fast_path=True)
    ref_engine, ref_driver = run(calendar, reference, fast_path=True)  # no filter: dense anyway
    dense_engine, dense_driver = run(calendar, dense, fast_path=False)  # filter run per quote
    assert fast.wakes == N // EVERY == reference.wakes == dense.wakes
    assert len(fast_engine.fills) >= N // EVERY // 2  # the market orders at least
    assert any(e[0] == "timer" for e in fast.log)
    assert outcome(fast_engine, fast) == outcome(ref_engine, reference) == outcome(dense_engine, dense)
    total = N + len(streams()[1].ts)
    assert (
        fast_driver.events_processed == ref_driver.events_processed == dense_driver.events_processed == total
    )
    # The fast path really ran: most quotes of A were never built as events.
    assert fast_driver.events_skipped > N // 2
    assert ref_driver.events_skipped == dense_driver.events_skipped == 0


def test_every_quote_is_delivered_while_the_venue_works(calendar: MarketCalendar) -> None:
    """A resting order needs each quote (queue position): none of A's is skipped while one rests."""
    fast = Reactor("s", True)
    _, driver = run(calendar, fast, fast_path=True)
    engine_resting_ns = [
        (e[1], e[1] + 150 * MS) for e in fast.log if e[0] == "update" and e[2].status.value == "accepted"
    ]
    assert engine_resting_ns  # limit orders did rest
    # Skipped rows < rows of A outside the resting windows: rows inside them were all delivered.
    ts_a = streams()[0].ts
    inside = sum(int(((ts_a > a) & (ts_a <= b)).sum()) for a, b in engine_resting_ns)
    assert driver.events_skipped <= N - inside


def test_mid_move_kernel_against_python() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    mid = 100 + np.cumsum(rng.normal(0, 0.02, n))
    mid[17] = np.nan
    bid, ask = mid - 0.01, mid + 0.01
    state = np.array([0.0, 5e-4])
    got = np.concatenate(
        [
            _mid_move(np.arange(a, b), bid[a:b], ask[a:b], bid[a:b], ask[a:b], state)
            for a, b in ((0, 1000), (1000, 1001), (1001, n))  # chunking must not matter
        ]
    )
    expected = []
    anchor = 0.0
    for b, a in zip(bid, ask, strict=True):
        m = 0.5 * (b + a)
        wake = bool(m > 0) and (anchor == 0.0 or abs(m - anchor) >= 5e-4 * anchor)
        expected.append(wake)
        if wake:
            anchor = m
    assert got.tolist() == expected
    assert 20 < sum(expected) < n // 2


async def test_live_engine_applies_the_filter_to_each_quote(calendar: MarketCalendar) -> None:
    """Without a replay driver (live, paper) the engine runs the kernel on each quote as it comes."""
    seen: list[float] = []

    class Mover(Strategy):
        def wake_filters(self) -> list[WakeFilter]:
            return [mid_move(V, A, 10)]

        async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
            seen.append(event.bid)

    clock = SimulatedClock(T0)
    engine = TradingEngine(
        clock=clock,
        instruments=REGISTRY,
        portfolio=Portfolio(REGISTRY),
        calendar=calendar,
        venues={},
        strategies=[Mover("m")],
    )
    # mids 100, 100.05 (5 bps), 100.11 (11 bps: wakes), then B (unfiltered: always wakes)
    for bid in (100.0, 100.05, 100.11):
        await engine.process(Quote(T0, V, A, bid, bid, 1.0, 1.0))
    await engine.process(Quote(T0, V, B, 7.0, 7.0, 1.0, 1.0))
    assert seen == [100.0, 100.11, 7.0]
    assert engine.quotes[(V, A)].bid == 100.11  # the state sees every quote


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ([every_nth(V, A, 2), every_nth(V, A, 3)], "has two filters for one instrument"),
        (["every 2"], "must be WakeFilter objects"),
    ],
)
def test_bad_filters_are_refused(calendar: MarketCalendar, filters: list[Any], message: str) -> None:
    class Bad(Strategy):
        def wake_filters(self) -> list[Any]:
            return filters

        async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
            pass

    with pytest.raises(InvalidInput, match=f"bad.wake_filters.*{message}"):
        TradingEngine(
            clock=SimulatedClock(T0),
            instruments=REGISTRY,
            portfolio=Portfolio(REGISTRY),
            calendar=calendar,
            venues={},
            strategies=[Bad("bad")],
        )


def test_a_filter_needs_a_quote_handler_and_a_sane_kernel(calendar: MarketCalendar) -> None:
    class NoHandler(Strategy):
        def wake_filters(self) -> list[WakeFilter]:
            return [every_nth(V, A, 2)]

    with pytest.raises(InvalidInput, match="no quote handler"):
        TradingEngine(
            clock=SimulatedClock(T0),
            instruments=REGISTRY,
            portfolio=Portfolio(REGISTRY),
            calendar=calendar,
            venues={},
            strategies=[NoHandler("x")],
        )
    with pytest.raises(InvalidInput, match="state.*float64"):
        WakeFilter(V, A, _mid_move, np.zeros(2, dtype=np.int64))
    with pytest.raises(InvalidInput, match="n.*must be >= 1"):
        every_nth(V, A, 0)
