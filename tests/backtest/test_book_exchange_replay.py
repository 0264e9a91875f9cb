"""The simulated order-book exchange the way a backtest uses it: TradingEngine + ReplayDriver + a Strategy.

Expected numbers are worked out by hand in the comments.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from backtest.replay import ColumnStream, ListStream, ReplayDriver
from connectors.sim.book_exchange import BookExchange, BookExchangeConfig
from connectors.sim.fees import FeeSchedule
from connectors.sim.latency import LatencyModel
from core.calendar import MarketCalendar
from core.clock import SimulatedClock
from core.engine import TradingEngine
from core.enums import Liquidity, OrderStatus, OrderType, Side, TimeInForce
from core.events import Event, Fill, Quote, Trade
from core.instruments import InstrumentRegistry, Spot
from core.orders import OrderRequest
from core.portfolio import Portfolio
from strategies.base import Strategy

D = Decimal
V = "bx"
SPOT = "TSLAx/USDT"
T0 = 1_767_225_600_000_000_000  # 2026-01-01 00:00 UTC, ns
MS = 1_000_000
SEC = 1_000_000_000
REGISTRY = InstrumentRegistry(
    [Spot(SPOT, "TSLAx", "USDT", price_increment=D("0.01"), size_increment=D("0.001"))]
)


@pytest.fixture(scope="module")
def calendar() -> MarketCalendar:
    return MarketCalendar(start="2025-01-01", end="2026-12-31")


def backtest(
    calendar: MarketCalendar,
    strategy: Strategy,
    events: list[Event] | ColumnStream,
    config: BookExchangeConfig,
    balances: dict[str, Decimal],
) -> tuple[TradingEngine, BookExchange]:
    """Run `strategy` over `events` on one BookExchange; the engine and the venue get the same deposits."""
    clock = SimulatedClock(T0 - SEC)
    venue = BookExchange(V, clock, REGISTRY, [SPOT], balances, config)
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
    stream = events if isinstance(events, ColumnStream) else ListStream(events, "recorded")
    ReplayDriver(engine, clock, [venue]).run([stream])
    return engine, venue


class BuyOnFirstQuote(Strategy):
    """Sends one market buy of 1 while handling the first quote it sees."""

    sent = False

    async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
        if not self.sent:
            self.sent = True
            await ctx.submit(OrderRequest("buy-1", V, SPOT, Side.BUY, D(1), OrderType.MARKET))


@pytest.mark.parametrize(
    ("latency_ns", "same_event_fills", "price", "ts"),
    [
        # Zero latency, default: the order may not fill on the quote that triggered it -> next ask.
        (0, False, D("100.1"), T0 + SEC),
        # Zero latency with same_event_fills: it fills against the book the triggering quote left.
        (0, True, D(100), T0),
        # 500 ms: it arrives before the next quote, the first ask still stands.
        (500 * MS, False, D(100), T0 + 500 * MS),
        # 1.5 s: it arrives after the second quote.
        (1500 * MS, False, D("100.1"), T0 + 1500 * MS),
    ],
)
def test_order_fills_on_the_event_its_latency_allows(
    calendar: MarketCalendar, latency_ns: int, same_event_fills: bool, price: Decimal, ts: int
) -> None:
    quotes: list[Event] = [
        Quote(T0, V, SPOT, 99.9, 100.0, 1, 1),
        Quote(T0 + SEC, V, SPOT, 100.0, 100.1, 1, 1),
        Quote(T0 + 2 * SEC, V, SPOT, 100.1, 100.2, 1, 1),
    ]
    config = BookExchangeConfig(
        order_latency=LatencyModel.constant(latency_ns), same_event_fills=same_event_fills
    )
    engine, venue = backtest(calendar, BuyOnFirstQuote("b"), quotes, config, {"USDT": D(1000)})
    assert [(f.price, f.quantity, f.ts) for f in engine.fills] == [(price, D(1), ts)]
    order = engine.orders.get("buy-1")
    assert order.status is OrderStatus.FILLED
    assert order.history == [OrderStatus.NEW, OrderStatus.ACCEPTED, OrderStatus.FILLED]
    # 1000 - 1 x price in both ledgers.
    assert engine.portfolio.balance(V, "USDT") == D(1000) - price
    assert venue.balance("USDT") == D(1000) - price


class MakerRoundTrip(Strategy):
    """Bids 2 @ 100 behind the queue, then sells what it bought with a market order on a better bid."""

    bid_sent = False
    exit_sent = False

    async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
        if not self.bid_sent:
            self.bid_sent = True
            await ctx.submit(OrderRequest("bid", V, SPOT, Side.BUY, D(2), price=D(100)))
        elif not self.exit_sent and event.bid >= 100.5 and ctx.balance(V, "TSLAx") == 2:
            self.exit_sent = True
            await ctx.submit(
                OrderRequest(
                    "exit", V, SPOT, Side.SELL, D(2), OrderType.MARKET, time_in_force=TimeInForce.IOC
                )
            )


def test_maker_round_trip_through_engine_and_driver(calendar: MarketCalendar) -> None:
    events: list[Event] = [
        Quote(T0, V, SPOT, 100.0, 101.0, 5, 5),  # we bid 2 @ 100 behind the 5 recorded there
        Trade(T0 + SEC, V, SPOT, 100.0, 6, Side.SELL),  # 5 to the queue ahead, 1 fills us
        Trade(T0 + 2 * SEC, V, SPOT, 100.0, 3, Side.SELL),  # fills our last 1
        Quote(T0 + 3 * SEC, V, SPOT, 100.5, 101.0, 5, 5),  # a better bid: we sell 2 at market
        Quote(T0 + 4 * SEC, V, SPOT, 100.4, 101.0, 5, 5),
    ]
    fees = FeeSchedule(maker_bps=D(-1), taker_bps=D(5))
    config = BookExchangeConfig(fees=fees, order_latency=LatencyModel.constant(10 * MS))
    engine, venue = backtest(calendar, MakerRoundTrip("mm"), events, config, {"USDT": D(10_000)})
    assert [(f.client_order_id, f.price, f.quantity, f.fee, f.liquidity, f.ts) for f in engine.fills] == [
        # Maker rebate 1 x 100 x (-1) / 10000 = -0.01 per unit.
        ("bid", D(100), D(1), D("-0.01"), Liquidity.MAKER, T0 + SEC),
        ("bid", D(100), D(1), D("-0.01"), Liquidity.MAKER, T0 + 2 * SEC),
        # Taker 2 x 100.5 x 5 / 10000 = 0.1005; it arrives 10 ms after the quote that triggered it.
        ("exit", D("100.5"), D(2), D("0.1005"), Liquidity.TAKER, T0 + 3 * SEC + 10 * MS),
    ]
    # 10000 - 200 + 0.02 + 201 - 0.1005 = 10000.9195 USDT, 0 TSLAx, in both ledgers.
    assert engine.portfolio.balance(V, "USDT") == D("10000.9195")
    assert engine.portfolio.balance(V, "TSLAx") == 0
    assert venue.balance("USDT") == D("10000.9195")
    assert engine.orders.get("bid").status is OrderStatus.FILLED
    assert engine.orders.get("exit").history == [OrderStatus.NEW, OrderStatus.ACCEPTED, OrderStatus.FILLED]
    assert engine.portfolio.fees_paid(V, "USDT") == D("0.0805")


class Oversized(Strategy):
    """Asks for more than it can pay."""

    sent = False

    async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
        if not self.sent:
            self.sent = True
            await ctx.submit(OrderRequest("big", V, SPOT, Side.BUY, D(20), price=D(100)))


def test_rejection_reaches_the_engine_and_changes_nothing(calendar: MarketCalendar) -> None:
    events: list[Event] = [
        Quote(T0, V, SPOT, 99.0, 100.0, 50, 50),
        Quote(T0 + SEC, V, SPOT, 99.0, 100.0, 50, 50),
    ]
    engine, venue = backtest(calendar, Oversized("o"), events, BookExchangeConfig(), {"USDT": D(1000)})
    order = engine.orders.get("big")
    # 20 x 100 = 2000 USDT needed, 1000 there.
    assert order.status is OrderStatus.REJECTED
    assert order.reason == "insufficient USDT: needs 2000, available 1000"
    assert [u.client_order_id for u in engine.rejections] == ["big"]
    assert engine.fills == []
    assert engine.portfolio.balances() == {(V, "USDT"): D(1000)}
    assert venue.balance("USDT") == D(1000)


class Alternating(Strategy):
    """A market order every 50 quotes, alternating buy and sell, for the determinism check."""

    count = 0

    async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
        self.count += 1
        if self.count % 50 == 0:
            side = Side.BUY if (self.count // 50) % 2 else Side.SELL
            await ctx.submit(
                OrderRequest(ctx.new_client_order_id(), V, SPOT, side, D("0.5"), OrderType.MARKET)
            )


def _random_quotes(n: int) -> ColumnStream:
    rng = np.random.default_rng(3)
    mid = 100 + np.cumsum(rng.normal(0, 0.05, n)).round(2)
    ts = T0 + np.arange(n, dtype=np.int64) * 10 * MS
    sizes = rng.integers(1, 4, n).astype(float)
    return ColumnStream(Quote, ts, (V, SPOT), [mid - 0.01, mid + 0.01, sizes, sizes])


def _run_jittery(calendar: MarketCalendar, seed: int) -> list[tuple[Any, ...]]:
    config = BookExchangeConfig(
        fees=FeeSchedule(taker_bps=D(7)),
        order_latency=LatencyModel(2 * MS, 30 * MS, seed=seed),
        market_data_latency=LatencyModel(1 * MS, 5 * MS, "exponential", seed=seed + 1),
    )
    engine, venue = backtest(
        calendar, Alternating("alt"), _random_quotes(2000), config, {"USDT": D(100_000), "TSLAx": D(100)}
    )
    assert len(engine.fills) >= 30  # 40 orders; the last may arrive after the data ends
    assert engine.portfolio.balance(V, "USDT") == venue.balance("USDT")
    return [tuple(f) for f in engine.fills] + [
        (o.client_order_id, tuple(o.history)) for o in engine.orders._orders.values()
    ]


def test_two_identical_runs_give_identical_fills(calendar: MarketCalendar) -> None:
    first = _run_jittery(calendar, seed=11)
    assert first == _run_jittery(calendar, seed=11)
    # The seed matters: other jitter draws move the arrival times, hence the fill timestamps.
    assert [r[0] for r in first if len(r) > 2] != [
        r[0] for r in _run_jittery(calendar, seed=12) if len(r) > 2
    ]


def test_fill_events_reach_the_strategy_in_order(calendar: MarketCalendar) -> None:
    seen: list[tuple[str, str]] = []

    class Watcher(BuyOnFirstQuote):
        async def on_fill(self, ctx: Any, event: Fill, **kwargs: Any) -> None:
            seen.append(("fill", str(event.price)))

        async def on_order_update(self, ctx: Any, event: Any, **kwargs: Any) -> None:
            seen.append(("update", event.status.value))

    quotes: list[Event] = [
        Quote(T0, V, SPOT, 99.9, 100.0, 1, 1),
        Quote(T0 + SEC, V, SPOT, 100.0, 100.1, 1, 1),
    ]
    backtest(calendar, Watcher("w"), quotes, BookExchangeConfig(), {"USDT": D(1000)})
    assert seen == [("update", "accepted"), ("fill", "100.1"), ("update", "filled")]
