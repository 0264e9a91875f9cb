"""The composition root of a running bot: config.yaml -> connectors, engine, journal, risk, metrics.

`build_bot(cfg)` returns a `Bot` ready to `run()`; what it builds depends on `cfg.mode`:

- `live`: every venue's real connector (`uniswap_v2/v3` -> `UniswapVenue` over a `ChainSession`
  signing with the venue's keystore; `ccxt` -> `CcxtExchange` on ccxt.pro; `alpaca` ->
  `AlpacaBroker`; `issuer` with `broker: <alpaca venue>` -> `AlpacaTokenization`; `chainlink` ->
  a `ChainlinkStream` feed), secrets read from the environment variables the config names. A
  variable that is not set refuses the start (`StartupError`, naming the config key and the
  variable, never a value).
- `paper`: the same venues' public market data (`bots.recorder_sources`) as feeds, and the
  backtester's simulated venue of the same name for execution (`backtest.runner.sim_venue`),
  funded with `backtest.initial_balances`.
- `sandbox`: starts `bots.sandbox.Sandbox` (anvil with the real Uniswap contracts, the Binance and
  Alpaca emulators, the market driver in the background), points the config's venues at its
  endpoints and addresses, hands the generated secrets to the connectors under the config's
  variable names (never through `os.environ`), then builds as live.

Every execution venue is wrapped in a `JournalingVenue` (intent before every send, the answer and
every fill after it) and reconciled against the journal before the first event (`reconcile_venue`;
an intent the venue never saw is failed, not resent: the market it was meant for is gone); the
venues' balances then seed the portfolio. The kill switch (`core.kill_switch`) is the first risk
check, the `LimitChecks` of `risk:` the second; `EngineMetrics` observe the engine and a
`MetricsServer` serves `/metrics` and `/health` on 127.0.0.1. Client order ids start with a run id
(base 36 of the start second) so a restart never reuses one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pricing
from backtest.runner import DOLLARS, amm_pair_id, reference_sources, sim_settings, sim_venue
from bots.journal import Journal
from bots.journaling_venue import JournalingVenue
from bots.metrics import EngineMetrics, MetricsServer, data_freshness, kill_switch_check
from bots.reconcile import (
    AlpacaOrderLookup,
    CcxtOrderLookup,
    OrderLookup,
    ReconcileReport,
    ResendPolicy,
    reconcile_venue,
)
from bots.runner import LiveDriver
from connectors.sim.base import SimVenue
from core.calendar import MarketCalendar
from core.clock import LiveClock
from core.config import (
    AlpacaVenue,
    CcxtVenue,
    ChainlinkVenue,
    ConfigError,
    ConfigIssue,
    IssuerVenue,
    Mode,
    PerpetuaConfig,
    PoolConfig,
    SimAmmVenue,
    SimBookVenue,
    SimOptionsPoolVenue,
    StockPerpConfig,
    TokenizedStockConfig,
    UniswapV2Venue,
    UniswapV3Venue,
)
from core.engine import TradingEngine
from core.errors import PerpetuaError
from core.events import Event, Fill, FundingPayment, OrderUpdate
from core.instruments import InstrumentRegistry, Pool, Spot
from core.kill_switch import KillSwitch
from core.orders import OrderRequest, Request
from core.portfolio import Portfolio
from core.risk_checks import LimitChecks
from core.venue import Venue, VenueState

log = logging.getLogger("perpetua.assembly")

MS = 1_000_000
NS = 1_000_000_000
DEFAULT_METRICS_PORT = 9464
"""Prometheus' customary exporter port range; `--metrics-port 0` picks a free one."""
NATIVE_PRICE = Decimal(3000)
"""USD per ETH used to book gas in a pool's quote token (an assumption: no ETH price feed yet)."""
ALPACA_DATA_STREAM = "wss://stream.data.alpaca.markets/v2/{feed}"


class StartupError(ConfigError):
    """The bot refuses to start: every problem, each naming its config key (never a secret value)."""


# --------------------------------------------------------------------------------------------
# Venue adapters


class RenamedVenue:
    """A venue whose instrument symbols or asset codes differ from the config's ids.

    `instruments` maps our instrument id -> the venue's symbol (Alpaca's `TSLA/USD` -> `TSLA`),
    `assets` our asset -> the venue's code (our `TSLAx` is Binance's `TSLAX`). Requests go out
    renamed; events, fee assets and snapshot balances come back under our ids.
    """

    def __init__(
        self,
        inner: Any,
        instruments: Mapping[str, str] | None = None,
        assets: Mapping[str, str] | None = None,
    ) -> None:
        self.inner = inner
        self.name: str = inner.name
        self.to_venue = dict(instruments or {})
        self.from_venue = {v: k for k, v in self.to_venue.items()}
        self.asset_out = dict(assets or {})
        self.asset_in = {v: k for k, v in self.asset_out.items()}

    def __repr__(self) -> str:
        return f"RenamedVenue({self.inner!r})"

    def _ours(self, event: Any) -> Any:
        instrument = getattr(event, "instrument", None)
        if instrument is not None and instrument in self.from_venue:
            event = event._replace(instrument=self.from_venue[instrument])
        fee_asset = getattr(event, "fee_asset", None)
        if fee_asset and fee_asset in self.asset_in:
            event = event._replace(fee_asset=self.asset_in[fee_asset])
        return event

    async def submit(self, request: Request) -> OrderUpdate:
        """Send `request` with the venue's symbol; the answer in our ids."""
        if isinstance(request, OrderRequest) and request.instrument in self.to_venue:
            request = dataclasses.replace(request, instrument=self.to_venue[request.instrument])
        update: OrderUpdate = await self.inner.submit(request)
        return self._ours(update)  # type: ignore[no-any-return]

    async def cancel(self, client_order_id: str) -> OrderUpdate:
        """Cancel by client order id (ids need no renaming)."""
        return self._ours(await self.inner.cancel(client_order_id))  # type: ignore[no-any-return]

    async def snapshot(self) -> VenueState:
        """The venue's snapshot with balances under our asset ids."""
        state: VenueState = await self.inner.snapshot()
        balances = {self.asset_in.get(a, a): amount for a, amount in state.balances.items()}
        orders = tuple(self._ours(o) for o in state.open_orders)
        return VenueState(state.venue, state.ts, balances, orders, state.pending_transactions)

    async def stream(self) -> AsyncIterator[Event]:
        """The venue's events in our ids."""
        async for event in self.inner.stream():
            yield self._ours(event)

    async def close(self) -> None:
        """Close the wrapped connector."""
        closer = getattr(self.inner, "close", None)
        if closer is not None:
            await closer()


class FeedVenue:
    """A market-data-only source (an oracle, a session feed, a read-only pool) as a venue."""

    def __init__(self, name: str, source: Callable[[], AsyncIterator[Event]]) -> None:
        self.name = name
        self._source = source

    def stream(self) -> AsyncIterator[Event]:
        """The source's events."""
        return self._source()

    async def submit(self, request: Request) -> OrderUpdate:
        """A feed takes no orders."""
        raise PerpetuaError(f"{self.name} is a market-data feed; it takes no orders")

    async def cancel(self, client_order_id: str) -> OrderUpdate:
        """A feed has no orders."""
        raise PerpetuaError(f"{self.name} is a market-data feed; it has no orders")

    async def snapshot(self) -> VenueState:
        """Nothing is held at a feed."""
        return VenueState(self.name, time.time_ns())


class JournalObserver:
    """Journals what simulated venues (paper mode) hand the engine directly: fills, updates, funding."""

    def __init__(self, journal: Journal, venues: Iterable[str]) -> None:
        self.journal = journal
        self.venues = frozenset(venues)

    async def on_event(self, event: Event, engine: TradingEngine) -> None:
        """Journal our fills, order updates and funding payments of the simulated venues."""
        if type(event) in (Fill, OrderUpdate, FundingPayment) and event[1] in self.venues:
            await self.journal.record_event(event)

    def on_request(self, request: Request, reason: str | None, engine: TradingEngine) -> None:
        """Requests are journaled by `JournalingVenue`."""


class DecisionJournal:
    """Journals every strategy request as a decision: what was asked, by whom, and the risk verdict.

    Written in the background (the engine's observer hook is synchronous); `flush()` awaits the
    writes, and the bot calls it before the journal closes.
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._writes: set[asyncio.Task[None]] = set()

    async def on_event(self, event: Event, engine: TradingEngine) -> None:
        """Market and order events are journaled elsewhere."""

    def on_request(self, request: Request, reason: str | None, engine: TradingEngine) -> None:
        """Queue the decision's record: the request's fields, `sent` or `refused` and the reason."""
        owner = engine.owner_of(request.client_order_id)
        strategy = engine.strategies[owner].name if owner is not None else "unknown"
        fields = {f.name: getattr(request, f.name) for f in dataclasses.fields(request)}
        payload = {"request": type(request).__name__, **fields, "verdict": "refused" if reason else "sent"}
        if reason:
            payload["reason"] = reason
        write = asyncio.get_running_loop().create_task(
            self.journal.record_decision(strategy, payload, engine.clock.now_ns())
        )
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)

    async def flush(self) -> None:
        """Wait for the decisions still being written."""
        await asyncio.gather(*self._writes)


# --------------------------------------------------------------------------------------------
# The bot


@dataclass
class Bot:
    """A bot built from a config: engine, driver, journal, risk, metrics and what to close."""

    config: PerpetuaConfig
    mode: Mode
    engine: TradingEngine
    driver: LiveDriver
    journal: Journal
    kill_switch: KillSwitch
    metrics: EngineMetrics
    metrics_server: MetricsServer | None
    venues: dict[str, Venue]
    reconciled: list[ReconcileReport]
    run_id: str
    closers: AsyncExitStack
    sandbox: Any = None
    started_ns: int = field(default_factory=time.time_ns)
    initial_balances: dict[tuple[str, str], Decimal] = field(default_factory=dict)

    async def run(
        self,
        duration_s: float | None = None,
        *,
        install_signals: bool = True,
        on_tick: Callable[[Bot], None] | None = None,
        tick_s: float = 0.5,
    ) -> None:
        """Run until a signal, `stop()` or `duration_s`; then shut down gracefully and close all.

        `on_tick(bot)` (a status view) is called every `tick_s` seconds while running.
        """
        tasks = [asyncio.create_task(self._watch_kill_switch(), name="kill-switch")]
        if on_tick is not None:
            tasks.append(asyncio.create_task(self._ticks(on_tick, tick_s), name="status"))
        try:
            await self.driver.run(duration_s, install_signals=install_signals)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.close()

    def stop(self) -> None:
        """Ask the bot to shut down gracefully."""
        self.driver.stop()

    async def close(self) -> None:
        """Close connectors, the journal, the metrics server and the sandbox (reverse order of start)."""
        await self.closers.aclose()

    async def _watch_kill_switch(self) -> None:
        """Judge the kill switch every second, so stale data trips it even when no event comes."""
        while True:
            await asyncio.sleep(1.0)
            async with self.driver.engine_lock:  # serialised with event handling, as the driver's own work
                await self.kill_switch.evaluate(self.engine)

    async def _ticks(self, on_tick: Callable[[Bot], None], tick_s: float) -> None:
        while True:
            try:
                on_tick(self)
            except Exception:  # a display problem must never stop the bot
                log.exception("status view failed")
            await asyncio.sleep(tick_s)


# --------------------------------------------------------------------------------------------
# Secrets


def missing_secrets(cfg: PerpetuaConfig, environ: Mapping[str, str], mode: Mode) -> list[ConfigIssue]:
    """Every environment variable the config needs in `mode` that is not set, by config key.

    Live needs every key the venues name; paper only those that read market data (Alpaca's keys,
    `rpc_url_env`); the sandbox generates its own keys. `storage.password_env` is always needed.
    """
    wanted: list[tuple[str, str]] = []
    for i, venue in enumerate(cfg.venues):
        for key, var in venue.env_vars().items():
            if mode is Mode.SANDBOX:
                continue
            if mode is Mode.PAPER and not (isinstance(venue, AlpacaVenue) or key == "rpc_url_env"):
                continue
            wanted.append((f"venues[{i}].{key}", var))
    if cfg.storage.password_env:
        wanted.append(("storage.password_env", cfg.storage.password_env))
    return [
        ConfigIssue(path, f"environment variable {var} is not set; export it before starting the bot")
        for path, var in wanted
        if not environ.get(var)
    ]


def _env(environ: Mapping[str, str], var: str | None) -> str | None:
    return environ.get(var) if var else None


# --------------------------------------------------------------------------------------------
# Sandbox wiring


@dataclass
class _Wiring:
    """What the sandbox (or nothing, live) overrides: signers per EVM venue, calendar, extra feeds."""

    environ: dict[str, str]
    signers: dict[str, Any] = field(default_factory=dict)
    calendar: MarketCalendar | None = None
    feeds: list[Any] = field(default_factory=list)
    poll_interval_s: float = 1.0


def sandbox_config(cfg: PerpetuaConfig, info: Any, sample_ns: int | None = None) -> PerpetuaConfig:
    """`cfg` pointed at a running sandbox (`SandboxInfo`): RPC, addresses, emulator URLs.

    The Binance emulator serves spot only: a ccxt venue keeps its spot markets there (a perpetual
    needs the separate futures emulator, not wired yet: its markets are dropped with a warning).
    The sandbox replays a past market whose token has no multiplier change: a tokenized stock keeps
    the multiplier in force at `sample_ns` (ns), without the changes scheduled in wall time.
    """
    venues: list[Any] = []
    for venue in cfg.venues:
        if isinstance(venue, UniswapV3Venue):
            venue = venue.model_copy(
                update={
                    "rpc_url": info.rpc_url,
                    "rpc_url_env": None,
                    "factory": info.factory,
                    "swap_router": info.router,
                    "quoter": info.quoter,
                    "keystore": None,
                    "keystore_password_env": None,
                    "chain_id": info.chain_id,
                }
            )
        elif isinstance(venue, UniswapV2Venue | ChainlinkVenue):
            update: dict[str, Any] = {"rpc_url": info.rpc_url, "rpc_url_env": None, "chain_id": info.chain_id}
            if isinstance(venue, ChainlinkVenue):
                update["feeds"] = {instrument: info.aggregator for instrument in venue.feeds}
            venue = venue.model_copy(update=update)
        elif isinstance(venue, CcxtVenue):
            spot = {
                i: s for i, s in venue.markets.items() if not isinstance(cfg.instrument(i), StockPerpConfig)
            }
            dropped = sorted(set(venue.markets) - set(spot))
            if dropped:
                log.warning(
                    "sandbox: %s markets %s not wired (no futures emulator route)", venue.name, dropped
                )
            options = {
                **venue.options,
                "defaultType": "spot",
                "fetchCurrencies": False,
                "fetchMargins": False,
            }
            options["fetchMarkets"] = {"types": ["spot"]}
            venue = venue.model_copy(
                update={"base_url": info.binance_url, "testnet": False, "markets": spot, "options": options}
            )
        elif isinstance(venue, AlpacaVenue):
            venue = venue.model_copy(update={"base_url": info.alpaca_url, "data_feed": "iex"})
        venues.append(venue)
    instruments: list[Any] = []
    for inst in cfg.instruments:
        if isinstance(inst, TokenizedStockConfig):
            update = {"address": info.token, "chain_id": info.chain_id}
            if sample_ns is not None and inst.multiplier.changes:
                at_sample = inst.multiplier.build().at(sample_ns)
                update["multiplier"] = inst.multiplier.model_copy(
                    update={"initial": at_sample, "changes": []}
                )
                log.info("sandbox: %s multiplier %s (as at the sample's time)", inst.id, at_sample)
            inst = inst.model_copy(update=update)
        elif isinstance(inst, PoolConfig):
            inst = inst.model_copy(update={"address": info.pool, "chain_id": info.chain_id})
        instruments.append(inst)
    tokens = [
        t.model_copy(update={"address": info.usdc, "chain_id": info.chain_id}) if t.id == "USDC" else t
        for t in cfg.tokens
    ]
    return cfg.model_copy(update={"venues": venues, "instruments": instruments, "tokens": tokens})


def sandbox_environ(
    cfg: PerpetuaConfig, secrets: Mapping[str, str], base: Mapping[str, str]
) -> dict[str, str]:
    """`base` plus the sandbox's secrets under the variable names `cfg` uses for them."""
    from bots.sandbox import ALPACA_KEY_ENV, ALPACA_SECRET_ENV, BINANCE_KEY_ENV, BINANCE_SECRET_ENV

    environ = dict(base)
    for venue in cfg.venues:
        if isinstance(venue, CcxtVenue):
            pairs = ((venue.api_key_env, BINANCE_KEY_ENV), (venue.secret_env, BINANCE_SECRET_ENV))
        elif isinstance(venue, AlpacaVenue):
            pairs = ((venue.api_key_env, ALPACA_KEY_ENV), (venue.secret_key_env, ALPACA_SECRET_ENV))
        else:
            continue
        for ours, theirs in pairs:
            if ours:
                environ[ours] = secrets[theirs]
    return environ


# --------------------------------------------------------------------------------------------
# Building


def _calendar() -> MarketCalendar:
    now = datetime.now(UTC)
    return MarketCalendar(start=(now - timedelta(days=10)).date(), end=(now + timedelta(days=400)).date())


def _used_venues(cfg: PerpetuaConfig) -> set[str]:
    return {v for s in cfg.strategies if s.enabled for v in s.venues}


def _token_addresses(cfg: PerpetuaConfig, chain_id: int) -> dict[str, str]:
    found = {t.id: t.address for t in cfg.tokens if t.chain_id == chain_id}
    found.update(
        {
            i.id: i.address
            for i in cfg.instruments
            if isinstance(i, TokenizedStockConfig) and i.chain_id == chain_id
        }
    )
    return found


def _ccxt_assets(registry: InstrumentRegistry, markets: Mapping[str, str]) -> dict[str, str]:
    """Our asset -> the exchange's code, where they differ only in case (`TSLAx` -> `TSLAX`)."""
    renames: dict[str, str] = {}
    for instrument_id, symbol in markets.items():
        pair = registry[instrument_id]
        if not isinstance(pair, Spot):
            continue
        base, _, rest = symbol.partition("/")
        quote = rest.split(":")[0]
        for ours, theirs in ((pair.base, base), (pair.quote, quote)):
            if ours != theirs and ours.upper() == theirs.upper():
                renames[ours] = theirs
    return renames


async def _ccxt_venue(venue: CcxtVenue, environ: Mapping[str, str], clock: LiveClock, registry: Any) -> Any:
    import ccxt.pro as ccxt_pro

    from connectors.ccxt_exchange import CcxtExchange
    from connectors.emulators.binance import point_ccxt_at

    params: dict[str, Any] = {"options": dict(venue.options), "enableRateLimit": True}
    for key, var in (
        ("apiKey", venue.api_key_env),
        ("secret", venue.secret_env),
        ("password", venue.password_env),
    ):
        value = _env(environ, var)
        if value:
            params[key] = value
    client = getattr(ccxt_pro, venue.exchange)(params)
    if venue.testnet:
        client.set_sandbox_mode(True)
    if venue.base_url:
        point_ccxt_at(client, venue.base_url)
    exchange = CcxtExchange(venue.name, client, venue.markets, clock, reconcile_interval=5.0)
    renames = _ccxt_assets(registry, venue.markets)
    return exchange, (RenamedVenue(exchange, assets=renames) if renames else exchange)


def _alpaca(
    venue: AlpacaVenue, environ: Mapping[str, str], calendar: MarketCalendar, clock: LiveClock
) -> Any:
    from connectors.brokers.alpaca import AlpacaBroker

    key, secret = _env(environ, venue.api_key_env), _env(environ, venue.secret_key_env)
    assert key and secret  # checked by missing_secrets
    kwargs: dict[str, Any] = {"symbols": list(venue.symbols.values())}
    if venue.base_url:
        ws = "ws" + venue.base_url.rstrip("/")[len("http") :]
        kwargs |= {
            "data_url": venue.base_url,
            "stream_url": ws + "/stream",
            "data_stream_url": f"{ws}/v2/{venue.data_feed}",
        }
    else:
        kwargs["data_stream_url"] = ALPACA_DATA_STREAM.format(feed=venue.data_feed)
    return AlpacaBroker(venue.name, venue.trading_url, key, secret, calendar, clock, **kwargs)


async def _signer(venue: UniswapV2Venue | UniswapV3Venue, wiring: _Wiring) -> Any:
    from connectors.evm.keys import LocalSigner

    if venue.name in wiring.signers:
        return wiring.signers[venue.name]
    if venue.keystore is None:
        return None
    return await LocalSigner.from_keystore(
        venue.keystore, passphrase_env=venue.keystore_password_env, environ=wiring.environ
    )


async def _uniswap(
    cfg: PerpetuaConfig,
    venue: UniswapV2Venue | UniswapV3Venue,
    registry: InstrumentRegistry,
    wiring: _Wiring,
    stack: AsyncExitStack,
) -> tuple[Any, list[Any]]:
    """(execution venue or None, feeds): a `UniswapVenue` when the venue can sign, else pool feeds."""
    from bots.recorder_sources import PoolSource
    from connectors.evm.chain import ChainSession, FeePolicy
    from connectors.evm.pool_logs import PoolLogFollower
    from connectors.evm.uniswap_v2 import UniswapV2Pair
    from connectors.evm.uniswap_v3 import UniswapV3Pool
    from connectors.evm.uniswap_venue import UniswapPoolSpec, UniswapVenue

    url = venue.rpc_url or _env(wiring.environ, venue.rpc_url_env)
    assert url  # checked by missing_secrets
    pools = [i for i in registry if isinstance(i, Pool) and i.venue == venue.name]
    router = venue.swap_router if isinstance(venue, UniswapV3Venue) else venue.router
    signer = await _signer(venue, wiring)
    if signer is None:  # read only: the pools' states as feeds
        from web3 import AsyncHTTPProvider, AsyncWeb3

        w3 = AsyncWeb3(AsyncHTTPProvider(url))
        stack.push_async_callback(w3.provider.disconnect)
        feeds = []
        for pool in pools:
            chain_pool: Any = (
                UniswapV3Pool(w3, pool.address) if pool.version == 3 else UniswapV2Pair(w3, pool.address)
            )
            follower = PoolLogFollower(
                chain_pool, venue=venue.name, pool_id=pool.id, poll_interval_seconds=wiring.poll_interval_s
            )
            source = PoolSource(follower)
            feeds.append(FeedVenue(source.name, source.stream))
        return None, feeds
    fee_policy = FeePolicy(max_fee_gwei=Decimal(cfg.risk.max_gas_price_gwei))
    session = await ChainSession.connect(url, signer, venue.chain_id, fee_policy)
    stack.push_async_callback(session.close)
    specs = []
    for pool in pools:
        pair_id = amm_pair_id(pool)
        if pair_id not in registry:
            base, quote = (pool.token1, pool.token0) if pool.token0 in DOLLARS else (pool.token0, pool.token1)
            registry.add(Spot(pair_id, base, quote))
        pair = registry[pair_id]
        assert isinstance(pair, Spot)
        specs.append(UniswapPoolSpec(pool, pair, router))
    uniswap = UniswapVenue(
        venue.name,
        session,
        specs,
        _token_addresses(cfg, venue.chain_id),
        native_price=NATIVE_PRICE,
        poll_interval_s=wiring.poll_interval_s,
    )
    await uniswap.start()
    stack.push_async_callback(uniswap.close)
    return PoolsPrimed(uniswap, pools), []


class PoolsPrimed:
    """A pool venue whose stream starts with every pool's state at the latest block.

    `UniswapVenue` streams a pool's state after each of its logs: a quiet pool would stay unknown
    to the strategies until someone trades it. Each (re)start of the stream reads them first.
    """

    def __init__(self, inner: Any, pools: Iterable[Pool]) -> None:
        self.inner = inner
        self.name: str = inner.name
        self.native_asset: str = inner.native_asset
        self.session: Any = inner.session
        self.pools = list(pools)

    def __repr__(self) -> str:
        return f"PoolsPrimed({self.inner!r})"

    async def stream(self) -> AsyncIterator[Event]:
        """The pools' states now, then the venue's own stream."""
        from connectors.evm.uniswap_v2 import UniswapV2Pair
        from connectors.evm.uniswap_v3 import UniswapV3Pool

        w3 = self.session.w3
        for pool in self.pools:
            chain: Any = (
                UniswapV3Pool(w3, pool.address) if pool.version == 3 else UniswapV2Pair(w3, pool.address)
            )
            await chain.refresh()
            yield chain.to_pool_state_event(time.time_ns(), self.name, pool.id, chain.block_number)
        async for event in self.inner.stream():
            yield event

    async def submit(self, request: Request) -> OrderUpdate:
        """The venue's submit."""
        update: OrderUpdate = await self.inner.submit(request)
        return update

    async def cancel(self, client_order_id: str) -> OrderUpdate:
        """The venue's cancel."""
        update: OrderUpdate = await self.inner.cancel(client_order_id)
        return update

    async def snapshot(self) -> VenueState:
        """The venue's snapshot."""
        state: VenueState = await self.inner.snapshot()
        return state


def _chainlink(venue: ChainlinkVenue, wiring: _Wiring, max_age_ns: int, stack: AsyncExitStack) -> FeedVenue:
    from web3 import AsyncHTTPProvider, AsyncWeb3

    from connectors.evm.chainlink import ChainlinkFeed
    from connectors.evm.chainlink_stream import ChainlinkStream

    url = venue.rpc_url or _env(wiring.environ, venue.rpc_url_env)
    assert url
    w3 = AsyncWeb3(AsyncHTTPProvider(url))
    stack.push_async_callback(w3.provider.disconnect)
    feeds = [
        ChainlinkFeed(w3, address, venue.name, instrument, max_age_ns)
        for instrument, address in venue.feeds.items()
    ]
    stream = ChainlinkStream(feeds, poll_interval_s=wiring.poll_interval_s)
    return FeedVenue(venue.name, stream.stream)


def _refuse_simulated(cfg: PerpetuaConfig, mode: Mode) -> list[ConfigIssue]:
    """Simulated-only venues a strategy uses cannot run live."""
    used = _used_venues(cfg)
    return [
        ConfigIssue(
            f"venues[{i}].kind",
            f"{venue.kind} is simulated only; a strategy uses {venue.name!r}: no {mode.value} counterpart",
            venue.kind,
        )
        for i, venue in enumerate(cfg.venues)
        if isinstance(venue, SimBookVenue | SimAmmVenue | SimOptionsPoolVenue) and venue.name in used
    ]


async def _live_venues(
    cfg: PerpetuaConfig,
    registry: InstrumentRegistry,
    wiring: _Wiring,
    calendar: MarketCalendar,
    clock: LiveClock,
    stack: AsyncExitStack,
) -> tuple[dict[str, Venue], list[Any], dict[str, OrderLookup]]:
    """Execution venues (bare, in our ids), feeds, and each venue's order lookup for reconciliation."""
    venues: dict[str, Venue] = {}
    feeds: list[Any] = []
    lookups: dict[str, OrderLookup] = {}
    brokers: dict[str, Any] = {}
    max_age_ns = cfg.risk.max_data_staleness_ms * MS
    for venue in cfg.venues:
        if isinstance(venue, UniswapV2Venue | UniswapV3Venue):
            uniswap, pool_feeds = await _uniswap(cfg, venue, registry, wiring, stack)
            feeds += pool_feeds
            if uniswap is not None:
                venues[venue.name] = uniswap
        elif isinstance(venue, CcxtVenue):
            exchange, wrapped = await _ccxt_venue(venue, wiring.environ, clock, registry)
            stack.push_async_callback(exchange.close)
            venues[venue.name] = wrapped
            lookups[venue.name] = CcxtOrderLookup(exchange)
        elif isinstance(venue, AlpacaVenue):
            broker = _alpaca(venue, wiring.environ, calendar, clock)
            stack.push_async_callback(broker.close)
            brokers[venue.name] = broker
            venues[venue.name] = RenamedVenue(broker, instruments=venue.symbols)
            lookups[venue.name] = AlpacaOrderLookup(broker)
        elif isinstance(venue, ChainlinkVenue):
            feeds.append(_chainlink(venue, wiring, max_age_ns, stack))
    for venue in cfg.venues:
        if isinstance(venue, IssuerVenue):
            desk = _issuer(cfg, venue, registry, brokers, venues)
            if desk is not None:
                venues[venue.name] = desk
    return venues, feeds, lookups


async def _paper_feeds(
    cfg: PerpetuaConfig,
    registry: InstrumentRegistry,
    wiring: _Wiring,
    calendar: MarketCalendar,
    clock: LiveClock,
    stack: AsyncExitStack,
) -> list[Any]:
    """Public market data of every venue (no orders, no signing): what the simulated venues trade on."""
    from bots.recorder_sources import AlpacaSource, CcxtSource, MarketStatusSource

    feeds: list[Any] = [MarketStatusSource(calendar)]
    paper = _Wiring(environ=wiring.environ, poll_interval_s=wiring.poll_interval_s)  # no signer: read only
    for venue in cfg.venues:
        if isinstance(venue, UniswapV2Venue | UniswapV3Venue):
            _, pool_feeds = await _uniswap(
                cfg, venue.model_copy(update={"keystore": None}), registry, paper, stack
            )
            feeds += pool_feeds
        elif isinstance(venue, CcxtVenue):
            exchange, _ = await _ccxt_venue(venue, wiring.environ, clock, registry)
            stack.push_async_callback(exchange.close)
            feeds.append(CcxtSource(exchange))
        elif isinstance(venue, AlpacaVenue):
            broker = _alpaca(venue, wiring.environ, calendar, clock)
            stack.push_async_callback(broker.close)
            feeds.append(AlpacaSource(broker, {s: i for i, s in venue.symbols.items()}))
        elif isinstance(venue, ChainlinkVenue):
            feeds.append(_chainlink(venue, wiring, cfg.risk.max_data_staleness_ms * MS, stack))
    return [f if isinstance(f, FeedVenue) else FeedVenue(f.name, f.stream) for f in feeds]


def _issuer(
    cfg: PerpetuaConfig,
    venue: IssuerVenue,
    registry: InstrumentRegistry,
    brokers: Mapping[str, Any],
    venues: Mapping[str, Venue],
) -> Any:
    """Alpaca's tokenization desk for an issuer routed through an Alpaca venue (tokens to our wallet)."""
    from connectors.issuers.alpaca_tokenization import AlpacaTokenization, TokenListing

    broker = brokers.get(venue.broker or "")
    if broker is None:
        log.warning("issuer %s: no Alpaca broker venue to route through; not built", venue.name)
        return None
    listings = []
    for token_id in venue.tokens:
        token = cfg.instrument(token_id)
        assert isinstance(token, TokenizedStockConfig)
        sessions = [getattr(v, "session", None) for v in venues.values()]
        wallet = next(
            (s.address for s in sessions if s is not None and s.expected_chain_id == token.chain_id), None
        )
        if wallet is None:
            log.warning(
                "issuer %s: no wallet on chain %s for %s; not built", venue.name, token.chain_id, token_id
            )
            return None
        listing = TokenListing(token_id, token.underlying, "ethereum", wallet, venue.issuer)
        if listing.pair not in registry:
            registry.add(Spot(listing.pair, token_id, token.underlying))
        listings.append(listing)
    return AlpacaTokenization(venue.name, broker, listings)


async def _reconcile(
    journal: Journal, venues: Mapping[str, Venue], lookups: Mapping[str, OrderLookup]
) -> list[ReconcileReport]:
    """Reconcile every execution venue; orders the previous run left open are cancelled."""
    reports = []
    for name, venue in venues.items():
        report = await reconcile_venue(journal, venue, lookup=lookups.get(name), policy=ResendPolicy.FAIL)
        reports.append(report)
        for order in await journal.orders(venue=name, open_only=True):
            if order.is_intent:
                continue
            try:  # a previous run's order: its strategy state is gone, so nothing would manage it
                update = await venue.cancel(order.client_order_id)
                await journal.record_update(update, source="cancel")
            except Exception as exc:
                log.warning("start: cancel of %s at %s failed: %s", order.client_order_id, name, exc)
        for resolution in report.resolutions:
            log.info(
                "reconcile %s: %s %s %s",
                name,
                resolution.client_order_id,
                resolution.action.value,
                resolution.detail,
            )
    return reports


def _seed(
    portfolio: Portfolio, reports: Iterable[ReconcileReport], skip: frozenset[tuple[str, str]] = frozenset()
) -> dict[tuple[str, str], Decimal]:
    """Put each venue's balances into the portfolio (the venue is the truth at start).

    `skip` (venue, asset): gas coins, which the pool venues book in the quote token instead (the
    portfolio holds only what can be valued), and what an issuer desk reports of the broker account
    it shares (counted once, at the broker).
    """
    seeded: dict[tuple[str, str], Decimal] = {}
    for report in reports:
        for asset, amount in report.balances.items():
            if amount > 0 and (report.venue, asset) not in skip:
                portfolio.deposit(report.venue, asset, amount)
                seeded[(report.venue, asset)] = amount
    return seeded


def run_id(now_ns: int | None = None) -> str:
    """A short id unique per start second: base 36 of the Unix second (e.g. `tb8xq1`)."""
    seconds = (time.time_ns() if now_ns is None else now_ns) // NS
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while seconds:
        seconds, rest = divmod(seconds, 36)
        out = digits[rest] + out
    return out or "0"


async def build_bot(
    cfg: PerpetuaConfig,
    *,
    environ: Mapping[str, str] | None = None,
    metrics_port: int | None = DEFAULT_METRICS_PORT,
    sandbox_params: Any = None,
    sandbox: Any = None,
    storage_url: str | None = None,
) -> Bot:
    """Build everything `cfg` describes (module docstring); `StartupError` when it cannot start.

    `environ` (default `os.environ`) is where secrets are read; `metrics_port` None serves no
    metrics (0: a free port); `sandbox_params` (a `SandboxParams`) tunes the sandbox the bot
    starts, or `sandbox` is a started `Sandbox` to trade on (the caller closes it: tests share
    one); `storage_url` overrides `storage.url`.
    """
    from strategies.loader import load_strategies

    mode = cfg.mode
    if mode is Mode.BACKTEST:
        raise StartupError([ConfigIssue("mode", "backtest configs run with `perpetua backtest`", "backtest")])
    base_env = dict(os.environ if environ is None else environ)
    issues = missing_secrets(cfg, base_env, mode) + _refuse_simulated(cfg, mode)
    if issues:
        raise StartupError(issues)
    strategies = load_strategies(cfg)  # a bad strategy reference or parameter refuses the start here
    stack = AsyncExitStack()
    try:
        return await _build(
            cfg, mode, base_env, strategies, stack, metrics_port, sandbox_params, sandbox, storage_url
        )
    except BaseException:
        await stack.aclose()
        raise


async def _build(
    cfg: PerpetuaConfig,
    mode: Mode,
    base_env: dict[str, str],
    strategies: list[Any],
    stack: AsyncExitStack,
    metrics_port: int | None,
    sandbox_params: Any,
    sandbox: Any,
    storage_url: str | None,
) -> Bot:
    clock = LiveClock()
    wiring = _Wiring(environ=base_env)
    if mode is Mode.SANDBOX:
        from bots.sandbox import PRIVATE_KEY_ENV, Sandbox
        from connectors.evm.keys import LocalSigner

        if sandbox is None:
            sandbox = Sandbox(sandbox_params)
            await sandbox.start()
            stack.push_async_callback(sandbox.close)
        secrets = sandbox.secrets.env()
        cfg = sandbox_config(cfg, sandbox.info, sandbox.time.sample_ns)
        wiring.environ = sandbox_environ(cfg, secrets, base_env)
        signer = LocalSigner.from_hex(secrets[PRIVATE_KEY_ENV], f"sandbox {PRIVATE_KEY_ENV}")
        wiring.signers = {
            v.name: signer for v in cfg.venues if isinstance(v, UniswapV2Venue | UniswapV3Venue)
        }
        wiring.calendar = sandbox.calendar
        wiring.feeds = [sandbox.sessions]
        wiring.poll_interval_s = 0.1  # the sandbox's market moves a minute per 0.2 s
    calendar = wiring.calendar or _calendar()
    registry = cfg.instrument_registry()
    portfolio = Portfolio(registry, allow_negative=True)  # the venues are the truth: never refuse a fill
    staleness_ns = cfg.risk.max_data_staleness_ms * MS
    rid = run_id()
    engine = TradingEngine(
        clock=clock,
        instruments=registry,
        portfolio=portfolio,
        calendar=calendar,
        venues={},
        strategies=strategies,
        references=reference_sources(cfg, registry, staleness_ns),
        risk_checks=[LimitChecks(cfg.risk)],
        pricing=pricing,
        mode=mode.value,
        order_id_prefix=f"{rid}-",
    )
    password = _env(wiring.environ, cfg.storage.password_env)
    journal = await Journal.open(storage_url or cfg.storage.url, password=password)
    stack.push_async_callback(journal.close)
    decisions = DecisionJournal(journal)
    engine.add_observer(decisions)
    stack.push_async_callback(decisions.flush)  # runs before the journal closes (last in, first out)

    def strategy_of(client_order_id: str) -> str | None:
        owner = engine.owner_of(client_order_id)
        return None if owner is None else engine.strategies[owner].name

    sims: list[SimVenue] = []
    if mode is Mode.PAPER:
        feeds = await _paper_feeds(cfg, registry, wiring, calendar, clock, stack)
        settings = sim_settings(cfg)
        initial = cfg.backtest.initial_balances if cfg.backtest is not None else {}
        seeded: dict[tuple[str, str], Decimal] = {}
        for venue_cfg in cfg.venues:
            balances = {a: x for a, x in initial.get(venue_cfg.name, {}).items() if x > 0}
            built = sim_venue(
                cfg, venue_cfg, settings[venue_cfg.name], engine, registry, calendar, clock, balances
            )
            if built is None:
                continue
            sims.append(built)
            for asset, amount in balances.items():
                portfolio.deposit(venue_cfg.name, asset, amount)
                seeded[(venue_cfg.name, asset)] = amount
        bare: dict[str, Venue] = {v.name: v for v in sims}
        engine.add_observer(JournalObserver(journal, bare))
        reports: list[ReconcileReport] = []
        driver_venues: Mapping[str, Venue] = bare
    else:
        bare, feeds, lookups = await _live_venues(cfg, registry, wiring, calendar, clock, stack)
        from bots.swap_lookup import SwapLookup

        for name, venue in bare.items():
            if isinstance(venue, PoolsPrimed):  # swaps in flight at a crash: the chain tells how they ended
                lookups[name] = SwapLookup(venue.inner, journal)
        if mode is Mode.LIVE:
            from bots.recorder_sources import MarketStatusSource

            status = MarketStatusSource(calendar)
            feeds.append(FeedVenue(status.name, status.stream))
        feeds += wiring.feeds
        reports = await _reconcile(journal, bare, lookups)
        gas_coins = {(n, v.native_asset) for n, v in bare.items() if hasattr(v, "native_asset")}
        # An issuer desk on a broker reports that broker's account: its balances are the broker's.
        shared = {(r.venue, a) for r in reports if hasattr(bare[r.venue], "listings") for a in r.balances}
        seeded = _seed(portfolio, reports, frozenset(gas_coins | shared))
        driver_venues = {}
    journaled = {name: JournalingVenue(v, journal, strategy_of=strategy_of) for name, v in bare.items()}
    engine.venues.update(journaled)
    if mode is not Mode.PAPER:
        driver_venues = journaled
    kill_switch = KillSwitch.from_limits(cfg.risk).attach(engine)
    metrics = EngineMetrics(currency=cfg.risk.currency, kill_switch=kill_switch).attach(engine)
    server = None
    if metrics_port is not None:
        checks = {"data": data_freshness(engine, staleness_ns), "kill_switch": kill_switch_check(kill_switch)}
        server = MetricsServer(metrics, checks, host="127.0.0.1", port=metrics_port)
        await server.start()
        stack.push_async_callback(server.stop)
    driver = LiveDriver(
        engine,
        driver_venues,
        feeds=feeds,
        sim_venues=sims,
        stale_after_ns=staleness_ns,
    )
    if server is not None:
        log.info("metrics on %s/metrics, health on %s/health", server.url, server.url)
    log.info(
        "bot %s (%s mode, run %s): venues %s, feeds %s, strategies %s",
        cfg.name,
        mode.value,
        rid,
        sorted(journaled),
        [f.name for f in feeds],
        [s.name for s in strategies],
    )
    return Bot(
        config=cfg,
        mode=mode,
        engine=engine,
        driver=driver,
        journal=journal,
        kill_switch=kill_switch,
        metrics=metrics,
        metrics_server=server,
        venues=dict(journaled),
        reconciled=reports,
        run_id=rid,
        closers=stack,
        sandbox=sandbox,
        initial_balances=seeded,
    )
