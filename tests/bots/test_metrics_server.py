"""Metrics and health over HTTP: a known run through the real engine, scraped with aiohttp and parsed
by prometheus_client's own text parser. Every count is worked out by hand in the comments."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from backtest.replay import ListStream, ReplayDriver
from bots.metrics import EngineMetrics, MetricsServer, data_freshness, kill_switch_check
from connectors.sim.book_exchange import BookExchange, BookExchangeConfig
from core.calendar import MarketCalendar
from core.clock import SimulatedClock
from core.engine import ReferenceSource, TradingEngine
from core.enums import OrderType, Side
from core.events import Event, Quote
from core.instruments import InstrumentRegistry, Spot, TokenizedStock
from core.kill_switch import KillSwitch
from core.orders import OrderRequest
from core.portfolio import Portfolio
from core.risk import RiskLimits
from core.risk_checks import LimitChecks
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
LIMITS = RiskLimits.model_validate(
    {
        "max_position": 5,
        "max_notional": 100000,
        "max_order_rate": {"orders_per_second": 100},
        "max_daily_loss": 1000,
        "max_data_staleness_ms": 90000,
        "price_band_bps": 10000,
        "max_gas_price_gwei": 50,
    }
)


class Maker(Strategy):
    """1st token quote: o1 market buy 2, o2 buy 1 @ 350 (rests). 2nd: cancel o2, o3 size 0.0001
    (off the venue's grid: the venue rejects it), o4 buy 10 (over max_position 5: refused)."""

    def __init__(self) -> None:
        super().__init__("mm")
        self.quotes = 0

    async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
        if event.venue != "ex":
            return
        self.quotes += 1
        if self.quotes == 1:
            await ctx.submit(OrderRequest("o1", "ex", SPOT, Side.BUY, D(2), OrderType.MARKET))
            await ctx.submit(OrderRequest("o2", "ex", SPOT, Side.BUY, D(1), OrderType.LIMIT, D(350)))
        elif self.quotes == 2:
            await ctx.cancel("o2")
            await ctx.submit(OrderRequest("o3", "ex", SPOT, Side.BUY, D("0.0001"), OrderType.LIMIT, D(350)))
            await ctx.submit(OrderRequest("o4", "ex", SPOT, Side.BUY, D(10), OrderType.LIMIT, D(350)))


class StepClock:
    """A monotonic clock that moves 1 ms per reading: latencies count readings between event and order."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        self.now += MS
        return self.now


def build() -> tuple[TradingEngine, SimulatedClock, BookExchange, EngineMetrics]:
    clock = SimulatedClock(T0 - SEC)
    venue = BookExchange(
        "ex", clock, REGISTRY, [SPOT], {"USDT": D(10000)}, BookExchangeConfig(same_event_fills=True)
    )
    portfolio = Portfolio(REGISTRY)
    portfolio.deposit("ex", "USDT", D(10000))
    engine = TradingEngine(
        clock=clock,
        instruments=REGISTRY,
        portfolio=portfolio,
        calendar=MarketCalendar(start="2025-12-01", end="2026-02-28"),
        venues={"ex": venue},
        strategies=[Maker()],
        references=[ReferenceSource("TSLA", "broker", "TSLA/USD", 90 * SEC)],
        risk_checks=[LimitChecks(LIMITS)],
    )
    metrics = EngineMetrics(currency="USD", clock_ns=StepClock()).attach(engine)
    return engine, clock, venue, metrics


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape by (name, labels), `_created` timestamps left out."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def at(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


async def test_metrics_after_a_known_run(session: aiohttp.ClientSession) -> None:
    engine, clock, venue, metrics = build()
    metrics.refresh()  # first valuation: 10000 USDT -> equity 10000
    events: list[Event] = [
        Quote(T0, "broker", "TSLA/USD", 399.5, 400.5, 1.0, 1.0),  # fair value 400
        Quote(T0 + SEC, "ex", SPOT, 399.0, 400.0, 100.0, 100.0),  # o1 fills 2 @ 400, o2 rests
        Quote(T0 + 2 * SEC, "ex", SPOT, 401.0, 403.0, 100.0, 100.0),  # o2 cancelled, o3 and o4 rejected
        Quote(T0 + 3 * SEC, "broker", "TSLA/USD", 389.5, 390.5, 1.0, 1.0),  # fair value 390
    ]
    ReplayDriver(engine, clock, [venue]).run([ListStream(events, "recorded")])
    server = MetricsServer(metrics, {"data": data_freshness(engine, 90 * SEC)})
    await server.start()
    try:
        assert server.port > 0
        async with session.get(f"{server.url}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            found = samples(await response.text())
    finally:
        await server.stop()
    # Events: 4 quotes; our order updates: o1 ACCEPTED + FILLED, o2 ACCEPTED + CANCELLED, o3 REJECTED
    # (venue), o4 REJECTED (risk) = 6; one fill (o1). o1's NEW ack equals its state: not re-applied.
    assert at(found, "perpetua_events_total", type="Quote") == 4
    assert at(found, "perpetua_events_total", type="OrderUpdate") == 6
    assert at(found, "perpetua_events_total", type="Fill") == 1
    assert ("perpetua_events_total", frozenset({("type", "Trade")})) not in found
    assert at(found, "perpetua_decisions_total", strategy="mm", kind="order") == 4
    expected_orders = {"new": 4, "accepted": 2, "filled": 1, "cancelled": 1, "rejected": 2}
    for status, count in expected_orders.items():
        assert at(found, "perpetua_orders_total", venue="ex", status=status) == count, status
    assert at(found, "perpetua_fills_total", venue="ex", instrument=SPOT, side="buy") == 1
    assert at(found, "perpetua_filled_quantity_total", venue="ex", instrument=SPOT, side="buy") == 2
    assert at(found, "perpetua_position", venue="ex", instrument=SPOT) == 2
    # Latency, in clock readings of 1 ms: the 2nd token quote is reading 2; o1 reads 3 (1 ms), o2
    # reads 4 (2 ms). o1's and o2's acknowledgements and fill are read after the handler returns; the
    # 3rd quote is read next and o3 right after it (1 ms). o4 was refused: no latency.
    assert at(found, "perpetua_event_to_order_seconds_count") == 3
    assert at(found, "perpetua_event_to_order_seconds_sum") == pytest.approx(0.004, abs=1e-12)
    assert at(found, "perpetua_event_to_order_seconds_bucket", le="0.0005") == 0
    assert at(found, "perpetua_event_to_order_seconds_bucket", le="0.001") == 2
    assert at(found, "perpetua_event_to_order_seconds_bucket", le="0.0025") == 3
    # Premium of the last token quote: mid 402 vs fair value 400 -> +50 bps.
    assert at(found, "perpetua_fair_value", token="TSLAx") == 400
    assert at(found, "perpetua_premium_bps", venue="ex", instrument=SPOT) == pytest.approx(50, abs=1e-9)
    # Equity: 10000 - 2 x 400 = 9200 USDT + 2 TSLAx at 390 = 9980 -> PnL -20.
    assert at(found, "perpetua_equity", currency="USD") == 9980
    assert at(found, "perpetua_pnl", currency="USD") == -20


async def test_health_reports_stale_data_and_a_tripped_kill_switch(session: aiohttp.ClientSession) -> None:
    engine, clock, _, metrics = build()
    switch = KillSwitch.from_limits(LIMITS)
    metrics.kill_switch = switch
    checks = {"data": data_freshness(engine, 90 * SEC), "kill_switch": kill_switch_check(switch)}
    server = MetricsServer(metrics, checks)
    await server.start()
    try:
        clock.advance_to(T0)
        async with session.get(f"{server.url}/health") as response:
            # No reference price yet: stale.
            assert response.status == 503
            body = await response.json()
        assert body["status"] == "unhealthy"
        assert body["checks"]["data"] == {
            "ok": False,
            "stale": ["TSLA"],
            "age_seconds": {"TSLA": None},
            "max_age_seconds": 90.0,
        }
        await engine.process(Quote(T0, "broker", "TSLA/USD", 399.5, 400.5, 1.0, 1.0))
        clock.advance_to(T0 + 90 * SEC)  # 90 s old: still fresh
        async with session.get(f"{server.url}/health") as response:
            assert response.status == 200
            body = await response.json()
        assert body["status"] == "ok"
        assert body["checks"]["data"]["age_seconds"] == {"TSLA": 90.0}
        assert body["checks"]["kill_switch"]["ok"] is True
        clock.advance_to(T0 + 90 * SEC + MS)
        async with session.get(f"{server.url}/health") as response:
            assert response.status == 503
            body = await response.json()
        assert body["checks"]["data"]["stale"] == ["TSLA"]
        assert body["checks"]["data"]["age_seconds"] == {"TSLA": 90.001}
        await engine.process(Quote(T0 + 90 * SEC + MS, "broker", "TSLA/USD", 399.5, 400.5, 1.0, 1.0))
        await switch.halt(engine, by="ops")
        async with session.get(f"{server.url}/health") as response:
            assert response.status == 503
            body = await response.json()
        assert body["checks"]["data"]["ok"] is True
        assert body["checks"]["kill_switch"]["ok"] is False
        assert body["checks"]["kill_switch"]["cause"] == "halt"
        async with session.get(f"{server.url}/metrics") as response:
            found = samples(await response.text())
        assert at(found, "perpetua_kill_switch_tripped") == 1
    finally:
        await server.stop()


def test_each_bot_has_its_own_registry() -> None:
    # Two sets of the same series in one process: no "Duplicated timeseries" clash, no shared counts.
    first, second = EngineMetrics(), EngineMetrics()
    first.events.labels("Quote").inc()
    assert first.registry.get_sample_value("perpetua_events_total", {"type": "Quote"}) == 1
    assert second.registry.get_sample_value("perpetua_events_total", {"type": "Quote"}) is None


def test_bad_port_is_named() -> None:
    with pytest.raises(Exception, match="port"):
        MetricsServer(EngineMetrics(), port=70000)
