"""Prometheus metrics of a running bot and the aiohttp server for `/metrics` and `/health`.

`EngineMetrics` is an engine observer (`core.engine.EngineObserver`): the engine hands it every
event and every judged request, and it keeps these series in its own `CollectorRegistry` (never
the process-global one, so two bots or two tests never share counts):

| metric                                   | type      | labels                      |
|------------------------------------------|-----------|-----------------------------|
| `perpetua_events_total`                  | counter   | `type` (Quote, Fill, ...)   |
| `perpetua_decisions_total`               | counter   | `strategy`, `kind`          |
| `perpetua_orders_total`                  | counter   | `venue`, `status`           |
| `perpetua_fills_total`                   | counter   | `venue`, `instrument`, `side` |
| `perpetua_filled_quantity_total`         | counter   | `venue`, `instrument`, `side` |
| `perpetua_event_to_order_seconds`        | histogram | (none)                      |
| `perpetua_pnl`                           | gauge     | `currency`                  |
| `perpetua_equity`                        | gauge     | `currency`                  |
| `perpetua_position`                      | gauge     | `venue`, `instrument`       |
| `perpetua_fair_value`                    | gauge     | `token`                     |
| `perpetua_premium_bps`                   | gauge     | `venue`, `instrument`       |
| `perpetua_kill_switch_tripped`           | gauge     | (none)                      |

- A decision is a request a strategy submitted (`kind`: order, swap, mint, redeem), refused or not.
- `orders_total` counts each order each time it enters a status (new, accepted, partially_filled
  per partial fill, filled, cancelled, rejected, expired), risk refusals included.
- Event-to-order latency: from the moment the engine hands an event to the observers (after its
  state update, before the strategies) to the moment a request that passed the risk checks is
  about to go to its venue, on a monotonic clock (`time.perf_counter_ns`). A request sent from a
  timer counts from the latest event before it.
- PnL is equity (`core.valuation` prices, in the risk currency) minus the equity at the first
  valuation; `refresh()` recomputes it, equity and the kill switch state; the server calls it
  before each scrape. Positions move on our fills; the premium and fair value on quotes of a
  tokenized stock's pairs: `(mid / fair value - 1) x 10000`.

`MetricsServer` serves `/metrics` (Prometheus text format) and `/health` (JSON; 200 when every
check passes, 503 otherwise) on 127.0.0.1 by default. `data_freshness` is the standard health
check: every reference price fresh (quote `ts`, oracle `publish_ts` within the limit).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from core.engine import TradingEngine
from core.errors import InvalidInput
from core.events import Event, Fill, Quote
from core.instruments import Spot, TokenizedStock
from core.kill_switch import KillSwitch
from core.orders import MintRequest, OrderRequest, RedeemRequest, Request, SwapRequest
from core.valuation import engine_prices

LATENCY_BUCKETS = (
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)
"""Histogram buckets of event-to-order latency, seconds (50 us to 1 s)."""

_KINDS: dict[type, str] = {
    OrderRequest: "order",
    SwapRequest: "swap",
    MintRequest: "mint",
    RedeemRequest: "redeem",
}

_UNSEEN: Any = object()

HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]
"""A named part of `/health`: (healthy, JSON-ready details)."""


class EngineMetrics:
    """The bot's Prometheus series, moved by the engine as an observer (see the module docstring).

    Args:
        registry: where the series live (default: a new, private `CollectorRegistry`).
        currency: the risk currency equity and PnL are valued in.
        kill_switch: reported as `perpetua_kill_switch_tripped` when given.
        clock_ns: monotonic ns for latency (a test passes its own to get exact buckets).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        currency: str = "USD",
        kill_switch: KillSwitch | None = None,
        clock_ns: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.currency = currency
        self.kill_switch = kill_switch
        self._clock_ns = clock_ns
        self.engine: TradingEngine | None = None
        self._event_ns: int | None = None
        self._statuses_seen: dict[str, int] = {}
        self._initial_equity: Decimal | None = None
        self._event_counters: dict[type, Any] = {}
        self._premium_targets: dict[tuple[str, str], Any] = {}
        r = self.registry
        self.events = Counter("perpetua_events", "Events the engine applied, by type.", ["type"], registry=r)
        self.decisions = Counter(
            "perpetua_decisions",
            "Requests strategies submitted, by strategy and kind.",
            ["strategy", "kind"],
            registry=r,
        )
        self.orders = Counter(
            "perpetua_orders", "Orders entering each status, by venue.", ["venue", "status"], registry=r
        )
        self.fills = Counter(
            "perpetua_fills",
            "Our fills, by venue, instrument and side.",
            ["venue", "instrument", "side"],
            registry=r,
        )
        self.filled_quantity = Counter(
            "perpetua_filled_quantity",
            "Quantity filled, instrument size units.",
            ["venue", "instrument", "side"],
            registry=r,
        )
        self.latency = Histogram(
            "perpetua_event_to_order_seconds",
            "From an event reaching the strategies to a request leaving for its venue, seconds.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.pnl = Gauge("perpetua_pnl", "Equity change since the first valuation.", ["currency"], registry=r)
        self.equity = Gauge("perpetua_equity", "Portfolio equity.", ["currency"], registry=r)
        self.position = Gauge(
            "perpetua_position",
            "Signed position, instrument size units.",
            ["venue", "instrument"],
            registry=r,
        )
        self.fair_value = Gauge("perpetua_fair_value", "Tokenized stock fair value.", ["token"], registry=r)
        self.premium = Gauge(
            "perpetua_premium_bps", "Token pair mid vs fair value, bps.", ["venue", "instrument"], registry=r
        )
        self.tripped = Gauge("perpetua_kill_switch_tripped", "1 while the kill switch holds.", registry=r)

    def attach(self, engine: TradingEngine) -> EngineMetrics:
        """Observe `engine` (its events, requests and portfolio); returns self."""
        self.engine = engine
        engine.add_observer(self)
        return self

    # -- observer ----------------------------------------------------------------------------

    async def on_event(self, event: Event, engine: TradingEngine) -> None:
        """Count the event; follow order statuses, fills, positions and premiums it moved."""
        self._event_ns = self._clock_ns()
        event_type = type(event)
        counter = self._event_counters.get(event_type)
        if counter is None:  # labels() costs a lock and a dict lookup per call: keep the child
            counter = self._event_counters[event_type] = self.events.labels(event_type.__name__)
        counter.inc()
        if event_type is Quote:
            self._premium(event, engine)  # type: ignore[arg-type]
            return
        client_order_id = getattr(event, "client_order_id", None)
        if event_type is Fill:
            fill: Fill = event  # type: ignore[assignment]
            side = fill.side.value
            self.fills.labels(fill.venue, fill.instrument, side).inc()
            self.filled_quantity.labels(fill.venue, fill.instrument, side).inc(float(fill.quantity))
            position = engine.portfolio.position(fill.venue, fill.instrument)
            self.position.labels(fill.venue, fill.instrument).set(float(position.quantity))
        if client_order_id:
            self._statuses(client_order_id, engine)

    def on_request(self, request: Request, reason: str | None, engine: TradingEngine) -> None:
        """Count the decision, its NEW order and (when it is being sent) its latency."""
        owner = engine.owner_of(request.client_order_id)
        strategy = engine.strategies[owner].name if owner is not None and owner >= 0 else ""
        self.decisions.labels(strategy, _KINDS.get(type(request), type(request).__name__)).inc()
        self._statuses(request.client_order_id, engine)
        if reason is None and self._event_ns is not None:
            self.latency.observe((self._clock_ns() - self._event_ns) / 1e9)

    # -- gauges ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Recompute equity, PnL and the kill switch gauge from the engine's state now."""
        if self.kill_switch is not None:
            self.tripped.set(1 if self.kill_switch.tripped is not None else 0)
        engine = self.engine
        if engine is None:
            return
        try:
            equity = engine.portfolio.equity(engine_prices(engine, self.currency), self.currency)
        except InvalidInput:
            return  # a held asset has no price yet: keep the last values
        if self._initial_equity is None:
            self._initial_equity = equity
        self.equity.labels(self.currency).set(float(equity))
        self.pnl.labels(self.currency).set(float(equity - self._initial_equity))

    def _statuses(self, client_order_id: str, engine: TradingEngine) -> None:
        order = engine.orders.get(client_order_id)
        seen = self._statuses_seen.get(client_order_id, 0)
        for status in order.history[seen:]:
            self.orders.labels(order.request.venue, status.value).inc()
        # Kept after the order ends (as the engine keeps the order): a venue's late report of a
        # finished order must not count its statuses again.
        self._statuses_seen[client_order_id] = len(order.history)

    def _premium(self, quote: Quote, engine: TradingEngine) -> None:
        key = (quote.venue, quote.instrument)
        target = self._premium_targets.get(key, _UNSEEN)
        if target is _UNSEEN:  # resolve each (venue, instrument) once: a token pair or not
            target = None
            pair = engine.instruments.get(quote.instrument)
            token = engine.instruments.get(pair.base) if isinstance(pair, Spot) else None
            if isinstance(token, TokenizedStock):
                target = (token.id, self.fair_value.labels(token.id), self.premium.labels(*key))
            self._premium_targets[key] = target
        if target is None:
            return
        token_id, fair_gauge, premium_gauge = target
        fair = engine.fair_value(token_id)
        if not fair:
            return
        fair_gauge.set(fair)
        premium_gauge.set((0.5 * (quote.bid + quote.ask) / fair - 1) * 1e4)


def data_freshness(engine: TradingEngine, max_age_ns: int) -> HealthCheck:
    """A health check: healthy while every reference price of `engine` is at most `max_age_ns` old."""

    def check() -> tuple[bool, dict[str, Any]]:
        now = engine.clock.now_ns()
        stale: list[str] = []
        ages: dict[str, float | None] = {}
        for ref in engine.references:
            if ref.from_oracle:
                oracle = engine.oracles.get((ref.venue, ref.instrument))
                seen = None if oracle is None else oracle.publish_ts
            else:
                quote = engine.quotes.get((ref.venue, ref.instrument))
                seen = None if quote is None else quote.ts
            ages[ref.underlying] = None if seen is None else (now - seen) / 1e9
            if seen is None or now - seen > max_age_ns:
                stale.append(ref.underlying)
        return not stale, {"stale": stale, "age_seconds": ages, "max_age_seconds": max_age_ns / 1e9}

    return check


def kill_switch_check(kill_switch: KillSwitch) -> HealthCheck:
    """A health check: unhealthy while the kill switch holds (details: its `status()`)."""
    return lambda: (kill_switch.tripped is None, kill_switch.status())


class MetricsServer:
    """`/metrics` and `/health` over aiohttp. `start()` binds (port 0: a free one), `stop()` closes.

    Args:
        metrics: the series to serve (`refresh()` runs before each scrape).
        checks: the parts of `/health`, by name.
        host: the address to bind; loopback by default (metrics are not for the open internet).
        port: TCP port; 0 picks a free one (see `port` after `start`).
    """

    def __init__(
        self,
        metrics: EngineMetrics,
        checks: Mapping[str, HealthCheck] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise InvalidInput("port", port, "must be an integer in 0..65535")
        self.metrics = metrics
        self.checks = dict(checks or {})
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self.app = web.Application()
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/health", self._health)

    @property
    def url(self) -> str:
        """Base URL, e.g. `http://127.0.0.1:9464`."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind and serve; `port` holds the bound port afterwards."""
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        if self.port == 0:
            for address in runner.addresses:
                self.port = int(address[1])
                break

    async def stop(self) -> None:
        """Stop serving and release the port."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        self.metrics.refresh()
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, request: web.Request) -> web.Response:
        results: dict[str, Any] = {}
        healthy = True
        for name, check in self.checks.items():
            ok, details = check()
            healthy = healthy and ok
            results[name] = {"ok": ok, **details}
        body = {"status": "ok" if healthy else "unhealthy", "checks": results}
        return web.json_response(body, status=200 if healthy else 503)
