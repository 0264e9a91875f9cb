"""The live driver: the trading engine on live streams, under a supervisor.

Live and paper runs use the real ccxt.pro client against the local Binance emulator (quotes over
its websocket). Book: bids 249 x 10; asks 250 x 1.5, 251 x 2; account 10000 USDT, 5 TSLAX; fees 0.1%.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import ccxt.pro as ccxt_pro
import pytest

from bots.runner import Backoff, LiveDriver
from connectors.ccxt_exchange import CcxtExchange, RetryPolicy
from connectors.emulators.binance import BinanceEmulator, BinanceSymbol, point_ccxt_at
from connectors.sim.book_exchange import BookExchange, BookExchangeConfig
from connectors.sim.fees import FeeSchedule
from core.calendar import MarketCalendar
from core.clock import LiveClock
from core.engine import TradingEngine
from core.enums import OrderStatus, OrderType, Side
from core.events import Event, Fill, Quote
from core.instruments import InstrumentRegistry, Spot
from core.orders import OrderRequest
from core.portfolio import Portfolio
from core.venue import VenueState
from strategies.base import Strategy

D = Decimal
KEY, SECRET = "runner-key-not-real", "runner-secret-not-real"
PAIR = "TSLAX-USDT"
REGISTRY = InstrumentRegistry(
    [Spot(PAIR, "TSLAX", "USDT", price_increment=D("0.01"), size_increment=D("0.001"))]
)
OPTIONS = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False}
BALANCES = {"USDT": D("10000"), "TSLAX": D("5")}


@pytest.fixture(scope="module")
def calendar() -> MarketCalendar:
    return MarketCalendar(start="2026-01-01", end="2027-12-31")


@pytest.fixture
async def emulator() -> AsyncIterator[BinanceEmulator]:
    emu = BinanceEmulator(KEY, SECRET, [BinanceSymbol("TSLAX", "USDT")], balances=dict(BALANCES))
    await emu.start()
    emu.set_book("TSLAXUSDT", [(D("249"), D("10"))], [(D("250"), D("1.5")), (D("251"), D("2"))])
    yield emu
    await emu.close()


def live_venue(emulator: BinanceEmulator) -> CcxtExchange:
    client = point_ccxt_at(
        ccxt_pro.binance({"apiKey": KEY, "secret": SECRET, "options": dict(OPTIONS)}), emulator.base_url
    )
    retry = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, seed=3)
    return CcxtExchange("binance", client, {PAIR: "TSLAX/USDT"}, LiveClock(), retry=retry)


def engine_for(calendar: MarketCalendar, venues: dict[str, Any], strategy: Strategy) -> TradingEngine:
    portfolio = Portfolio(REGISTRY)
    for asset, amount in BALANCES.items():
        portfolio.deposit("binance", asset, amount)
    return TradingEngine(
        clock=LiveClock(),
        instruments=REGISTRY,
        portfolio=portfolio,
        calendar=calendar,
        venues=venues,
        strategies=[strategy],
        mode="live",
    )


class BuyThenRest(Strategy):
    """On the first quote: a limit buy of 1 at the ask (fills at once) and a bid of 2 at 240 that rests.

    Stops the driver once the fill has been applied.
    """

    def __init__(self, name: str, stop: Callable[[], None]) -> None:
        super().__init__(name)
        self.stop = stop
        self.sent = False
        self.quotes: list[Quote] = []

    async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
        self.quotes.append(event)
        if not self.sent and event.ask == 250.0:
            self.sent = True
            await ctx.submit(OrderRequest("take-1", "binance", PAIR, Side.BUY, D(1), OrderType.LIMIT, D(250)))
            await ctx.submit(OrderRequest("rest-1", "binance", PAIR, Side.BUY, D(2), OrderType.LIMIT, D(240)))

    async def on_fill(self, ctx: Any, event: Fill, **kwargs: Any) -> None:
        self.stop()


async def ticking(emulator: BinanceEmulator, strategy: BuyThenRest) -> None:
    """Move the bid size every 50 ms (each change is a bookTicker push) until the strategy has sent."""
    size = 10
    while not strategy.sent:
        size = 21 - size
        emulator.set_book("TSLAXUSDT", [(D("249"), D(size))], [(D("250"), D("1.5")), (D("251"), D("2"))])
        await asyncio.sleep(0.05)


async def run_with_ticks(
    driver: LiveDriver, emulator: BinanceEmulator, strategy: BuyThenRest, **kw: Any
) -> None:
    ticks = asyncio.create_task(ticking(emulator, strategy))
    try:
        async with asyncio.timeout(30):
            await driver.run(duration_s=25, **kw)
    finally:
        ticks.cancel()


def order_posts(emulator: BinanceEmulator) -> list[Any]:
    return [r for r in emulator.requests if r.method == "POST" and r.path == "/api/v3/order"]


async def test_live_mode_trades_through_the_real_client_and_cancels_at_shutdown(
    emulator: BinanceEmulator, calendar: MarketCalendar
) -> None:
    venue = live_venue(emulator)
    holder: list[LiveDriver] = []
    strategy = BuyThenRest("s", lambda: holder[0].stop())
    engine = engine_for(calendar, {"binance": venue}, strategy)
    driver = LiveDriver(engine, {"binance": venue})
    holder.append(driver)
    await run_with_ticks(driver, emulator, strategy, install_signals=False)
    await venue.close()
    assert len(order_posts(emulator)) == 2  # each order sent once
    # 1 TSLAX at 250, fee 0.1% of the base: the engine's fill is the exchange's trade.
    (fill,) = [f for f in engine.fills if f.client_order_id == "take-1"]
    assert (fill.price, fill.quantity, fill.fee, fill.fee_asset) == (D(250), D(1), D("0.001"), "TSLAX")
    assert engine.portfolio.balance("binance", "USDT") == D(10000) - D(250)
    assert engine.portfolio.balance("binance", "TSLAX") == D(5) + D(1) - D("0.001")
    # Graceful shutdown cancelled the resting bid, at the exchange and in the engine.
    assert engine.orders.get("rest-1").status is OrderStatus.CANCELLED
    state: VenueState = await live_venue(emulator).snapshot()
    assert state.open_orders == ()
    assert driver.events_in > 0


async def test_paper_mode_uses_live_quotes_and_simulated_execution(
    emulator: BinanceEmulator, calendar: MarketCalendar
) -> None:
    feed = live_venue(emulator)
    sim = BookExchange(
        "binance",
        LiveClock(),
        REGISTRY,
        [PAIR],
        dict(BALANCES),
        BookExchangeConfig(fees=FeeSchedule(D(0), D(10))),
    )
    holder: list[LiveDriver] = []
    strategy = BuyThenRest("s", lambda: holder[0].stop())
    engine = engine_for(calendar, {"binance": sim}, strategy)
    driver = LiveDriver(engine, {"binance": sim}, feeds=[feed], sim_venues=[sim])
    holder.append(driver)
    await run_with_ticks(driver, emulator, strategy, install_signals=False)
    await feed.close()
    assert order_posts(emulator) == []  # paper: nothing reached the exchange
    # Filled by the simulator against the live ask 250 x 1.5, taker fee 10 bps of the quote.
    (fill,) = [f for f in engine.fills if f.client_order_id == "take-1"]
    assert (fill.price, fill.quantity, fill.fee) == (D(250), D(1), D("0.25"))
    assert sim.balance("USDT") == engine.portfolio.balance("binance", "USDT") == D(10000) - D(250) - D("0.25")
    assert engine.orders.get("rest-1").status is OrderStatus.CANCELLED


class FlakyFeed:
    """A market-data source that crashes on its first two connections, then streams quotes."""

    name = "flaky"

    def __init__(self) -> None:
        self.connections = 0

    async def stream(self) -> AsyncIterator[Event]:
        self.connections += 1
        if self.connections <= 2:
            raise ConnectionError(f"connection {self.connections} refused")
        for i in range(3):
            yield Quote(LiveClock().now_ns(), "flaky", PAIR, 100.0 + i, 101.0 + i, 1.0, 1.0)
        await asyncio.sleep(3600)  # then silence: the watchdog notices


class Recorder(Strategy):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.quotes: list[Quote] = []
        self.timers: list[tuple[str, int]] = []

    async def on_start(self, ctx: Any, **kwargs: Any) -> None:
        self.start_ns = ctx.now
        ctx.schedule(ctx.now + 50_000_000, "t50")

    async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
        self.quotes.append(event)

    async def on_timer(self, ctx: Any, name: str, **kwargs: Any) -> None:
        self.timers.append((name, ctx.now))


async def test_a_crashed_stream_restarts_with_backoff_and_silence_is_flagged(
    calendar: MarketCalendar,
) -> None:
    feed = FlakyFeed()
    strategy = Recorder("r")
    engine = engine_for(calendar, {}, strategy)
    stale: list[str] = []
    driver = LiveDriver(
        engine,
        {},
        feeds=[feed],
        backoff=Backoff(initial_s=0.01, max_s=0.05),
        stale_after_ns=200_000_000,
        watchdog_every_s=0.05,
        on_stale=lambda h: stale.append(h.venue),
    )
    async with asyncio.timeout(10):
        await driver.run(duration_s=1.0, install_signals=False)
    assert feed.connections == 3
    (health,) = driver.health
    assert health.restarts == 2 and health.errors == [
        "ConnectionError: connection 1 refused",
        "ConnectionError: connection 2 refused",
    ]
    assert [q.bid for q in strategy.quotes] == [100.0, 101.0, 102.0]
    assert stale == ["flaky"] and health.stale
    # The timer fired once, not before its time.
    ((name, at),) = strategy.timers
    assert name == "t50" and at - strategy.start_ns >= 50_000_000


async def test_sigterm_shuts_down_gracefully(emulator: BinanceEmulator, calendar: MarketCalendar) -> None:
    venue = live_venue(emulator)

    class RestThenWait(BuyThenRest):
        async def on_fill(self, ctx: Any, event: Fill, **kwargs: Any) -> None:
            os.kill(os.getpid(), signal.SIGTERM)  # what `kill <pid>` does to a running bot

    strategy = RestThenWait("s", lambda: None)
    engine = engine_for(calendar, {"binance": venue}, strategy)
    driver = LiveDriver(engine, {"binance": venue})
    await run_with_ticks(driver, emulator, strategy)
    await venue.close()
    assert engine.orders.get("rest-1").status is OrderStatus.CANCELLED
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers removed after the run


class SlowRecorder(Strategy):
    """Takes 300 ms over each quote (a journal write, say), stopping the driver in the middle of the first."""

    def __init__(self, name: str, driver: list[LiveDriver]) -> None:
        super().__init__(name)
        self.driver = driver
        self.started: list[float] = []
        self.finished: list[float] = []

    async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
        self.started.append(event.bid)
        self.driver[0].stop()
        await asyncio.sleep(0.3)
        self.finished.append(event.bid)


async def test_a_stop_lets_the_event_being_applied_finish(calendar: MarketCalendar) -> None:
    feed = FlakyFeed()
    feed.connections = 2  # no crashes: three quotes, then silence
    slots: list[LiveDriver] = []
    strategy = SlowRecorder("slow", slots)
    engine = engine_for(calendar, {}, strategy)
    driver = LiveDriver(engine, {}, feeds=[feed])
    slots.append(driver)
    async with asyncio.timeout(10):
        await driver.run(install_signals=False)
    # The first quote's handler ran to its end though stop() came in its middle; no other began.
    assert strategy.started == strategy.finished == [100.0]
    assert engine.quotes[("flaky", PAIR)].bid == 100.0


async def test_a_stop_cancels_an_event_stuck_past_the_grace(calendar: MarketCalendar) -> None:
    feed = FlakyFeed()
    feed.connections = 2
    slots: list[LiveDriver] = []
    strategy = SlowRecorder("slow", slots)
    driver = LiveDriver(engine_for(calendar, {}, strategy), {}, feeds=[feed], shutdown_grace_s=0.05)
    slots.append(driver)
    async with asyncio.timeout(10):
        await driver.run(install_signals=False)
    assert strategy.started == [100.0] and strategy.finished == []  # cancelled after 50 ms, not 300


class StubbornFeed:
    """A market-data client that swallows its first cancellation (some websocket clients do)."""

    name = "stubborn"

    async def stream(self) -> AsyncIterator[Event]:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(3600)  # ignores the cancel: the task never ends by itself
        yield Quote(0, "stubborn", PAIR, 1.0, 2.0, 1.0, 1.0)


async def test_a_stream_that_ignores_its_cancel_does_not_hold_the_shutdown(
    calendar: MarketCalendar, caplog: pytest.LogCaptureFixture
) -> None:
    driver = LiveDriver(
        engine_for(calendar, {}, Recorder("r")), {}, feeds=[StubbornFeed()], shutdown_grace_s=0.2
    )
    async with asyncio.timeout(10):
        await driver.run(duration_s=0.3, install_signals=False)
    assert "tasks ['stream:stubborn'] did not end 0.2 s after cancel" in caplog.text
