"""The kill switch through the real TradingEngine + ReplayDriver + simulated BookExchange.

Every trip time and amount is worked out by hand in the comments. Setup: 10000 USDT on the book
venue `ex`, taker fee 25 bps, TSLAx (multiplier 1) valued at fair value = the broker's TSLA mid.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest

from backtest.replay import ListStream, ReplayDriver
from connectors.sim.book_exchange import BookExchange, BookExchangeConfig
from connectors.sim.fees import FeeSchedule
from core.calendar import MarketCalendar
from core.clock import SimulatedClock
from core.engine import ReferenceSource, TradingEngine
from core.enums import OrderStatus, OrderType, Side
from core.errors import InvalidInput
from core.events import Event, Fill, Quote
from core.instruments import InstrumentRegistry, Spot, TokenizedStock
from core.kill_switch import KillSwitch, Trip, TripCause
from core.orders import OrderRequest
from core.portfolio import Portfolio
from core.risk import RiskLimits
from strategies.base import Strategy

D = Decimal
SEC = 1_000_000_000
MS = 1_000_000
T0 = 1_767_268_800 * SEC  # 2026-01-01 12:00 UTC
SPOT = "TSLAx/USDT"
REGISTRY = InstrumentRegistry(
    [
        TokenizedStock("TSLAx", "TSLA", "xstocks", 1, "0x" + "11" * 20),
        Spot(SPOT, "TSLAx", "USDT", price_increment=D("0.01"), size_increment=D("0.001")),
        Spot("TSLA/USD", "TSLA", "USD"),
    ]
)


@pytest.fixture(scope="module")
def calendar() -> MarketCalendar:
    return MarketCalendar(start="2025-12-01", end="2026-02-28")


def broker(ts: int, mid: float) -> Quote:
    """A reference quote 1 wide around `mid` (mids here are exact in binary)."""
    return Quote(ts, "broker", "TSLA/USD", mid - 0.5, mid + 0.5, 100.0, 100.0)


def ex(ts: int, bid: float = 399.0, ask: float = 400.0) -> Quote:
    return Quote(ts, "ex", SPOT, bid, ask, 100.0, 100.0)


class Trader(Strategy):
    """First token quote: market buy 10 and a resting buy 5 @ 350; every later one: a resting buy 1 @ 300.

    With `bad_size`, every order is 0.0001 (off the venue's 0.001 grid): the venue rejects it.
    """

    def __init__(self, bad_size: bool = False) -> None:
        super().__init__("trader")
        self.n = 0
        self.bad_size = bad_size

    async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
        if event.venue != "ex":
            return
        if self.bad_size:
            await self._send(ctx, D("0.0001"), D(300))
        elif self.n == 0:
            await self._send(ctx, D(10), None)
            await self._send(ctx, D(5), D(350))
        else:
            await self._send(ctx, D(1), D(300))

    async def _send(self, ctx: Any, quantity: Decimal, price: Decimal | None) -> None:
        self.n += 1
        kind = OrderType.MARKET if price is None else OrderType.LIMIT
        await ctx.submit(OrderRequest(f"o{self.n}", "ex", SPOT, Side.BUY, quantity, kind, price))


def run(
    calendar: MarketCalendar,
    events: list[Event],
    switch: KillSwitch,
    strategy: Trader,
    reset_at: int | None = None,
) -> TradingEngine:
    clock = SimulatedClock(T0 - SEC)
    balances = {"USDT": D(10000)}
    config = BookExchangeConfig(fees=FeeSchedule(maker_bps=D(0), taker_bps=D(25)), same_event_fills=True)
    venue = BookExchange("ex", clock, REGISTRY, [SPOT], balances, config)
    portfolio = Portfolio(REGISTRY)
    portfolio.deposit("ex", "USDT", D(10000))
    engine = TradingEngine(
        clock=clock,
        instruments=REGISTRY,
        portfolio=portfolio,
        calendar=calendar,
        venues={"ex": venue},
        strategies=[strategy],
        references=[ReferenceSource("TSLA", "broker", "TSLA/USD", 90 * SEC)],
    )
    switch.attach(engine)
    if reset_at is not None:
        engine.schedule_hook(reset_at, lambda _now: switch.reset(by="operator"))
    ReplayDriver(engine, clock, [venue]).run([ListStream(events, "recorded")])
    return engine


def switch(**kwargs: Any) -> KillSwitch:
    settings: dict[str, Any] = {"max_daily_loss": D(100), "max_data_staleness_ns": 600 * SEC}
    settings.update(kwargs)
    return KillSwitch(**settings)


def status(engine: TradingEngine) -> dict[str, OrderStatus]:
    return {order.client_order_id: order.status for order in engine.orders}


def test_daily_loss_trips_at_the_event_that_reaches_it_cancels_refuses_and_resets(
    calendar: MarketCalendar, caplog: pytest.LogCaptureFixture
) -> None:
    # Baseline at the first event: 10000 USDT, nothing else -> equity 10000.
    # T0+1s: o1 market buy 10 takes the 400 ask: 4000 + fee 25 bps = 10 -> 5990 USDT, 10 TSLAx.
    # Equity = 5990 + 10 x mid: loss = 10000 - 5990 - 10 x mid = 10 + 10 x (400 - mid).
    # mid 395 -> loss 60; 391.5 -> 95; 391 -> 100 = max_daily_loss: trips at T0+180s, not before.
    events: list[Event] = [
        broker(T0, 400.0),
        ex(T0 + SEC),  # o1 (fills), o2 rests @ 350
        broker(T0 + 60 * SEC, 395.0),
        ex(T0 + 61 * SEC, 394.0, 395.0),  # o3 rests @ 300
        broker(T0 + 120 * SEC, 391.5),
        ex(T0 + 121 * SEC, 390.0, 391.0),  # o4 rests @ 300
        broker(T0 + 180 * SEC, 391.0),  # trip: o2, o3, o4 cancelled
        ex(T0 + 181 * SEC, 390.0, 391.0),  # o5 refused
        # reset at T0+200s: loss counted from equity 9900 again
        broker(T0 + 240 * SEC, 391.0),
        ex(T0 + 241 * SEC, 390.0, 391.0),  # o6 accepted, rests
    ]
    ks = switch()
    with caplog.at_level(logging.INFO):
        engine = run(calendar, events, ks, Trader(), reset_at=T0 + 200 * SEC)
    detail = "daily loss 100.0 USD (equity 9900.0 from 10000) reached max_daily_loss 100"
    assert ks.trips == [Trip(TripCause.DAILY_LOSS, detail, T0 + 180 * SEC)]
    assert ks.tripped is None
    assert status(engine) == {
        "o1": OrderStatus.FILLED,
        "o2": OrderStatus.CANCELLED,
        "o3": OrderStatus.CANCELLED,
        "o4": OrderStatus.CANCELLED,
        "o5": OrderStatus.REJECTED,
        "o6": OrderStatus.ACCEPTED,
    }
    refusal = (
        "kill switch (daily_loss): daily loss 100.0 USD (equity 9900.0 from 10000) reached "
        "max_daily_loss 100; refusing new orders until reset"
    )
    assert engine.orders.get("o5").reason == refusal
    assert engine.portfolio.balance("ex", "USDT") == D(5990)
    assert engine.portfolio.balance("ex", "TSLAx") == D(10)
    assert ks.daily_pnl == D(0)  # after the reset, measured from 9900 at an unchanged mid
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert (
        "ERROR",
        "kill switch tripped (daily_loss): daily loss 100.0 USD (equity 9900.0 from 10000) reached "
        "max_daily_loss 100; cancelling 3 open orders",
    ) in messages
    assert ("WARNING", f"refused o5: {refusal}") in messages
    resets = [m for level, m in messages if m.startswith("kill switch reset by operator")]
    assert resets == [
        "kill switch reset by operator (was daily_loss: daily loss 100.0 USD (equity 9900.0 from 10000) "
        "reached max_daily_loss 100); daily loss now measured from equity 9900.0 USD"
    ]


def test_one_unit_short_of_the_limit_does_not_trip(calendar: MarketCalendar) -> None:
    # mid 391.5 -> loss 95 < 100: nothing trips, every order is live.
    events: list[Event] = [broker(T0, 400.0), ex(T0 + SEC), broker(T0 + 60 * SEC, 391.5), ex(T0 + 61 * SEC)]
    ks = switch()
    engine = run(calendar, events, ks, Trader())
    assert ks.trips == []
    assert ks.daily_pnl == D(-95)
    assert status(engine) == {
        "o1": OrderStatus.FILLED,
        "o2": OrderStatus.ACCEPTED,
        "o3": OrderStatus.ACCEPTED,
    }


def test_repeated_venue_rejects_trip_inside_the_window_only(calendar: MarketCalendar) -> None:
    # Each token quote sends a 0.0001 order the venue rejects (size grid 0.001): 3 within 10 s trip.
    events: list[Event] = [
        broker(T0, 400.0),
        ex(T0 + SEC),
        ex(T0 + 5 * SEC),
        ex(T0 + 9 * SEC),
        ex(T0 + 10 * SEC),
    ]
    ks = switch(max_rejects=3, reject_window_ns=10 * SEC)
    engine = run(calendar, events, ks, Trader(bad_size=True))
    assert [(t.cause, t.ts) for t in ks.trips] == [(TripCause.REJECTS, T0 + 9 * SEC)]
    assert ks.trips[0].detail == "3 rejects within 10000 ms, max_rejects 3"
    assert engine.orders.get("o4").reason.startswith("kill switch (rejects): 3 rejects within 10000 ms")
    # Spaced 6 s apart, the 10 s window never holds 3: at T0+13s it holds T0+7s and T0+13s only.
    events = [broker(T0, 400.0), ex(T0 + SEC), ex(T0 + 7 * SEC), ex(T0 + 13 * SEC)]
    ks = switch(max_rejects=3, reject_window_ns=10 * SEC)
    run(calendar, events, ks, Trader(bad_size=True))
    assert ks.trips == []


def test_stale_reference_with_a_position_open_trips_after_the_limit(calendar: MarketCalendar) -> None:
    # The broker's last quote is at T0; o1 buys at T0+1s. Limit 90 s: an age of 90 s is still fresh,
    # 90.001 s is not -> the token quote at T0+90.001s trips it and o2 (resting) is cancelled.
    events: list[Event] = [
        broker(T0, 400.0),
        ex(T0 + SEC),
        ex(T0 + 90 * SEC),
        ex(T0 + 90 * SEC + MS),
        ex(T0 + 91 * SEC),
    ]
    ks = switch(max_data_staleness_ns=90 * SEC)
    engine = run(calendar, events, ks, Trader())
    assert [(t.cause, t.ts) for t in ks.trips] == [(TripCause.STALE_DATA, T0 + 90 * SEC + MS)]
    assert ks.trips[0].detail == (
        "no fresh TSLA reference price (broker TSLA/USD) for 90001 ms with positions open, "
        "max_data_staleness_ms 90000"
    )
    # o3 (at T0+90s) went out before the trip; o4 came with the tripping quote; o5 after it.
    assert status(engine) == {
        "o1": OrderStatus.FILLED,
        "o2": OrderStatus.CANCELLED,
        "o3": OrderStatus.CANCELLED,
        "o4": OrderStatus.REJECTED,
        "o5": OrderStatus.REJECTED,
    }


def test_stale_data_without_positions_does_not_trip(calendar: MarketCalendar) -> None:
    class Idle(Trader):
        async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
            return

    ks = switch(max_data_staleness_ns=90 * SEC)
    run(calendar, [broker(T0, 400.0), ex(T0 + 3600 * SEC)], ks, Idle())
    assert ks.trips == []


async def test_watchdog_evaluate_trips_without_an_event_and_halt_by_hand(calendar: MarketCalendar) -> None:
    clock = SimulatedClock(T0)
    portfolio = Portfolio(REGISTRY)
    portfolio.deposit("ex", "USDT", D(10000))
    engine = TradingEngine(
        clock=clock,
        instruments=REGISTRY,
        portfolio=portfolio,
        calendar=calendar,
        venues={},
        references=[ReferenceSource("TSLA", "broker", "TSLA/USD", 90 * SEC)],
    )
    ks = KillSwitch.from_limits(
        RiskLimits.model_validate(
            {
                "max_notional": 1000,
                "max_order_rate": {"orders_per_second": 5},
                "max_daily_loss": 100,
                "max_data_staleness_ms": 90000,
                "price_band_bps": 200,
                "max_gas_price_gwei": 50,
            }
        )
    ).attach(engine)
    assert engine.risk_checks == [ks] and engine.observers == [ks]
    await engine.process(broker(T0, 400.0))
    portfolio.apply_fill(Fill(T0, "ex", SPOT, "", Side.BUY, D(400), D(1), D(0), "USDT"))
    clock.advance_to(T0 + 90 * SEC)
    assert await ks.evaluate(engine) is None
    clock.advance_to(T0 + 91 * SEC)
    trip = await ks.evaluate(engine)
    assert trip is not None and trip.cause is TripCause.STALE_DATA and trip.ts == T0 + 91 * SEC
    ks.reset(by="alice")
    assert ks.tripped is None
    halted = await ks.halt(engine, by="bob")
    assert halted.reason == "kill switch (halt): halted by bob; refusing new orders until reset"
    with pytest.raises(InvalidInput, match="by"):
        ks.reset(by="")


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(InvalidInput, match="max_daily_loss"):
        KillSwitch(max_daily_loss=D(-1), max_data_staleness_ns=1)
    with pytest.raises(InvalidInput, match="max_rejects"):
        KillSwitch(max_daily_loss=D(1), max_data_staleness_ns=1, max_rejects=0)


async def test_daily_loss_counts_from_midnight_utc(calendar: MarketCalendar) -> None:
    # 10 TSLAx held, nothing else: equity = 10 x mid. 23:59:00 mid 400 (equity 4000, the baseline);
    # 23:59:30 mid 392 -> loss 80 < 100. After midnight the baseline is the equity at 00:00 (3920,
    # nothing moved since 23:59:30): 00:00:30 mid 390 -> loss 20, not 100 -> no trip.
    midnight = 1_767_312_000 * SEC  # 2026-01-02 00:00 UTC
    clock = SimulatedClock(midnight - 60 * SEC)
    portfolio = Portfolio(REGISTRY)
    portfolio.deposit("ex", "TSLAx", D(10))
    engine = TradingEngine(
        clock=clock,
        instruments=REGISTRY,
        portfolio=portfolio,
        calendar=calendar,
        venues={},
        references=[ReferenceSource("TSLA", "broker", "TSLA/USD", 90 * SEC)],
    )
    ks = switch().attach(engine)
    for ts, mid, pnl in (
        (midnight - 60 * SEC, 400.0, D(0)),
        (midnight - 30 * SEC, 392.0, D(-80)),
        (midnight + 30 * SEC, 390.0, D(-20)),
        (midnight + 40 * SEC, 382.0, D(-100)),  # 3820 vs 3920: trips
    ):
        clock.advance_to(ts)
        await engine.process(broker(ts, mid))
        assert ks.daily_pnl == pnl
    assert [(t.cause, t.ts) for t in ks.trips] == [(TripCause.DAILY_LOSS, midnight + 40 * SEC)]
