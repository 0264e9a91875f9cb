"""Build and run a backtest from a validated config: the same strategies, simulated venues.

Every venue of the config is replaced by the simulated venue that stands for it in a backtest:

| config kind           | simulated by                                  |
|-----------------------|-----------------------------------------------|
| `ccxt`, `sim_book`    | `connectors.sim.book_exchange.BookExchange`   |
| `alpaca`              | `connectors.sim.broker.SimBroker`             |
| `issuer`              | `connectors.sim.issuer.SimIssuer`             |
| `uniswap_v2/v3`, `sim_amm` | `connectors.sim.amm.SimAmm`             |
| `sim_options_pool`    | `connectors.sim.options_pool.OptionsPool`     |
| `chainlink`           | none: oracle rounds go straight to the engine |

Their costs come from the venue entry where it has them (`sim_book` fees and latency, `issuer`
fees and minimums) and from `backtest.sim.<venue>` otherwise (see `SimSettings`). The recorded
data comes from the dataset in `backtest.data_dir` (see docs/data.md); its venue names must be
the config's venue names.

Valuation: equity is in `risk.currency`; dollar stablecoins (USD, USDC, USDT, DAI) count at 1, a
stock at its reference price, a tokenized stock at fair value (reference x multiplier: what the
issuer redeems it for), any other asset at its latest oracle price `<ASSET>/USD`. Equity is sampled
every `sample_interval` of simulated time; strategies cannot see the sampler.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import pricing
from backtest.data import Dataset, load_dataset
from backtest.replay import EventStream, ReplayDriver
from backtest.result import BacktestResult, Series
from connectors.sim.amm import AmmConfig, AmmPoolSpec, SimAmm
from connectors.sim.amm_gas import GasModel
from connectors.sim.base import SimVenue
from connectors.sim.book_exchange import BookExchange, BookExchangeConfig
from connectors.sim.broker import BrokerAsset, BrokerConfig, SimBroker
from connectors.sim.fees import FeeSchedule
from connectors.sim.issuer import IssuedToken, IssuerConfig, SimIssuer
from connectors.sim.latency import LatencyModel
from connectors.sim.options_pool import OptionsPool, OptionsPoolConfig
from connectors.sim.options_pool_market import PriceFeed
from connectors.sim.reference_price import engine_price
from core.calendar import MarketCalendar
from core.clock import Clock, SimulatedClock
from core.config import (
    AlpacaVenue,
    CcxtVenue,
    ChainlinkVenue,
    ConfigError,
    ConfigIssue,
    IssuerVenue,
    PerpetuaConfig,
    SimAmmVenue,
    SimBookVenue,
    SimOptionsPoolVenue,
    UniswapV2Venue,
    UniswapV3Venue,
    issues_from_validation_error,
)
from core.engine import ReferenceSource, TradingEngine
from core.instruments import InstrumentRegistry, PerpetualOption, Pool, Spot, StockPerp, TokenizedStock
from core.margin import MarginPolicy
from core.portfolio import Portfolio
from core.risk_checks import LimitChecks
from strategies.base import Strategy
from strategies.loader import load_strategies

DOLLARS = frozenset({"USD", "USDC", "USDT", "DAI"})
"""Assets valued at 1 in a USD valuation."""

MS = 1_000_000
ANY_AGE = 2**62
"""Valuation marks to the last price seen, however old (trading decisions use the staleness limit)."""
MINUTE = 60_000 * MS


class SimSettings(BaseModel):
    """`backtest.sim.<venue>`: costs of the simulated venue standing in for a live venue.

    Units: fees and spreads in basis points of notional; latencies in milliseconds; commission
    per share in the quote currency.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    taker_fee_bps: Decimal = Field(default=Decimal(10), ge=-100, le=1000)
    maker_fee_bps: Decimal = Field(default=Decimal(2), ge=-100, le=1000)
    latency_ms: int = Field(default=50, ge=0)
    spread_bps: Decimal = Field(default=Decimal(2), ge=0, le=1000)
    commission_per_share: Decimal = Field(default=Decimal(0), ge=0)
    block_time_ms: int = Field(default=12_000, gt=0, description="AMM venues: time between blocks")
    gas_price_gwei: Decimal = Field(default=Decimal(1), ge=0, description="AMM venues: constant gas price")
    native_price: Decimal = Field(
        default=Decimal(3000), gt=0, description="AMM venues: price of the chain's native coin (ETH) in USD"
    )
    vols: dict[str, Decimal] = Field(
        default_factory=dict, description="options pools: vol per asset, per sqrt(year) (0.6 = 60%)"
    )
    main_pool_capital: Decimal = Field(
        default=Decimal(0), ge=0, description="options pools: other LPs' tokens in the main pool at the start"
    )
    insurance_pool_capital: Decimal = Field(
        default=Decimal(0), ge=0, description="options pools: other LPs' tokens in the insurance pool"
    )


@dataclass
class Backtest:
    """A backtest ready to run: engine, simulated venues, recorded streams, strategies."""

    config: PerpetuaConfig
    engine: TradingEngine
    clock: SimulatedClock
    venues: list[SimVenue]
    streams: list[EventStream]
    strategies: list[Strategy]
    start_ns: int
    end_ns: int
    sample_interval_ns: int
    initial_balances: dict[tuple[str, str], Decimal]

    def run(self, progress: Callable[[float], None] | None = None) -> BacktestResult:
        """Replay the data; `progress(fraction_done)` is called as simulated time advances."""
        span = max(self.end_ns - self.start_ns, 1)
        sampler = _EquitySampler(self)
        on_step = None if progress is None else (lambda ts: progress(min(1.0, (ts - self.start_ns) / span)))
        driver = ReplayDriver(self.engine, self.clock, self.venues, on_step=on_step, step_every=8192)
        sampler.schedule_next(self.start_ns)
        started = time.perf_counter()
        events = driver.run(self.streams, until_ns=self.end_ns - 1)
        wall = time.perf_counter() - started
        sampler.sample(self.clock.now_ns())
        if progress is not None:
            progress(1.0)
        return sampler.result(events, wall)


def sim_settings(cfg: PerpetuaConfig) -> dict[str, SimSettings]:
    """`backtest.sim.<venue>` of every venue (defaults where absent); `ConfigError` naming bad keys."""
    raw: dict[str, Any] = dict(getattr(cfg.backtest, "sim", None) or {})
    issues: list[ConfigIssue] = []
    settings: dict[str, SimSettings] = {}
    names = {v.name for v in cfg.venues}
    for name, values in raw.items():
        if name not in names:
            issues.append(ConfigIssue(f"backtest.sim.{name}", "unknown venue", name))
            continue
        try:
            settings[name] = SimSettings.model_validate(values)
        except ValidationError as exc:
            issues += issues_from_validation_error(exc, SimSettings, prefix=("backtest", "sim", name))
    if issues:
        raise ConfigError(issues)
    return {v.name: settings.get(v.name, SimSettings()) for v in cfg.venues}


def build_backtest(
    cfg: PerpetuaConfig,
    *,
    data_dir: Path | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    sample_interval_ns: int = 5 * MINUTE,
    lazy: bool = True,
) -> Backtest:
    """Assemble a backtest from `cfg` (its `backtest` section unless overridden here)."""
    section = cfg.backtest
    if section is None and (data_dir is None or start_ns is None or end_ns is None):
        raise ConfigError([ConfigIssue("backtest", "required to run a backtest (data_dir, start, end)")])
    data_dir = data_dir if data_dir is not None else section.data_dir  # type: ignore[union-attr]
    start_ns = start_ns if start_ns is not None else section.start_ns  # type: ignore[union-attr]
    end_ns = end_ns if end_ns is not None else section.end_ns  # type: ignore[union-attr]
    if end_ns <= start_ns:
        raise ConfigError([ConfigIssue("backtest.end", "must be later than start", end_ns)])
    sim = sim_settings(cfg)
    registry = cfg.instrument_registry()
    calendar = MarketCalendar(
        start=_date(start_ns - 7 * 24 * 3600 * 10**9), end=_date(end_ns + 14 * 24 * 3600 * 10**9)
    )
    clock = SimulatedClock(start_ns)
    portfolio = Portfolio(registry, allow_negative=False)
    balances: dict[tuple[str, str], Decimal] = {}
    for venue_name, assets in (section.initial_balances if section is not None else {}).items():
        for asset, amount in assets.items():
            if amount > 0:
                portfolio.deposit(venue_name, asset, amount)
                balances[(venue_name, asset)] = amount
    staleness = cfg.risk.max_data_staleness_ms * MS
    references = reference_sources(cfg, registry, staleness)
    strategies = load_strategies(cfg)
    engine = TradingEngine(
        clock=clock,
        instruments=registry,
        portfolio=portfolio,
        calendar=calendar,
        venues={},
        strategies=strategies,
        references=references,
        risk_checks=[LimitChecks(cfg.risk)],
        pricing=pricing,
        mode="backtest",
        order_id_prefix="bt-",
    )
    dataset = load_dataset(data_dir, lazy=lazy, start_ns=start_ns, end_ns=end_ns)
    venues: list[SimVenue] = []
    for venue_cfg in cfg.venues:
        venue_balances = {a: amt for (v, a), amt in balances.items() if v == venue_cfg.name}
        venue: SimVenue | None
        if isinstance(venue_cfg, SimOptionsPoolVenue):
            pool = _options_pool(venue_cfg, sim[venue_cfg.name], registry, clock, dataset)
            # Our collateral at the pool: what the config deposits there (the portfolio has it too).
            for amount in venue_balances.values():
                pool.deposit(pool.config.own_account, amount)
            venue = pool
        else:
            venue = sim_venue(
                cfg, venue_cfg, sim[venue_cfg.name], engine, registry, calendar, clock, venue_balances
            )
        if venue is not None:
            engine.venues[venue.name] = venue
            venues.append(venue)
    # Ties on ts replay in stream order: session changes first, so an event stamped at the open
    # already sees the new session (as a live bot would, its calendar flipping on time).
    kinds = [entry.event for entry in dataset.manifest.streams]
    streams = [s for s, k in zip(dataset.streams, kinds, strict=True) if k == "MarketStatus"]
    streams += [s for s, k in zip(dataset.streams, kinds, strict=True) if k != "MarketStatus"]
    return Backtest(
        cfg,
        engine,
        clock,
        venues,
        streams,
        strategies,
        start_ns,
        end_ns,
        sample_interval_ns,
        balances,
    )


def _date(ns: int) -> str:
    return str(np.datetime64(ns, "ns").astype("datetime64[D]"))


def reference_sources(
    cfg: PerpetuaConfig, registry: InstrumentRegistry, max_age_ns: int
) -> list[ReferenceSource]:
    """The real stock's price source for every underlying: a broker's quotes, else an oracle feed."""
    brokers = [v for v in cfg.venues if isinstance(v, AlpacaVenue)]
    oracles = [v for v in cfg.venues if isinstance(v, ChainlinkVenue)]
    found: list[ReferenceSource] = []
    for underlying in sorted({i.underlying for i in registry if isinstance(i, TokenizedStock)}):
        pair = next((i for i in registry if isinstance(i, Spot) and i.base == underlying), None)
        if pair is None:
            continue
        broker = next((b for b in brokers if pair.id in b.symbols), None)
        if broker is not None:
            found.append(ReferenceSource(underlying, broker.name, pair.id, max_age_ns))
            continue
        oracle = next((o for o in oracles if pair.id in o.feeds), None)
        if oracle is not None:
            found.append(ReferenceSource(underlying, oracle.name, pair.id, max_age_ns, from_oracle=True))
    return found


def sim_venue(
    cfg: PerpetuaConfig,
    venue_cfg: Any,
    settings: SimSettings,
    engine: TradingEngine,
    registry: InstrumentRegistry,
    calendar: MarketCalendar,
    clock: Clock,
    balances: dict[str, Decimal],
) -> SimVenue | None:
    """The simulated venue standing for one config entry (None: no venue needed in a backtest)."""
    name = venue_cfg.name
    if isinstance(venue_cfg, CcxtVenue | SimBookVenue):
        if isinstance(venue_cfg, SimBookVenue):
            fees = FeeSchedule(venue_cfg.maker_fee_bps, venue_cfg.taker_fee_bps)
            latency_ns = int(venue_cfg.latency.total_seconds() * 1e9)
            markets = list(venue_cfg.markets)
        else:
            fees = FeeSchedule(settings.maker_fee_bps, settings.taker_fee_bps)
            latency_ns = settings.latency_ms * MS
            markets = [m for m in venue_cfg.markets if isinstance(registry[m], Spot | StockPerp)]
        config = BookExchangeConfig(fees=fees, order_latency=LatencyModel(latency_ns))
        return BookExchange(name, clock, registry, markets, balances, config)
    if isinstance(venue_cfg, AlpacaVenue):
        assets = [BrokerAsset(i) for s in venue_cfg.symbols if isinstance(i := registry[s], Spot)]
        broker_config = BrokerConfig(
            latency_ns=settings.latency_ms * MS,
            spread_bps=settings.spread_bps,
            commission_per_share=settings.commission_per_share,
        )
        return SimBroker(name, clock, calendar, assets, broker_config, balances)
    if isinstance(venue_cfg, IssuerVenue):
        tokens = []
        for token_id in venue_cfg.tokens:
            token = registry[token_id]
            assert isinstance(token, TokenizedStock)
            cash = "USD"
            pair_id = f"{token_id}/{cash}"
            if pair_id not in registry:
                registry.add(Spot(pair_id, token_id, cash))
            reference = next((r for r in engine.references if r.underlying == token.underlying), None)
            if reference is None:
                continue
            price = engine_price(
                engine, reference.venue, reference.instrument, "oracle" if reference.from_oracle else "mid"
            )
            pair = registry.tradable(pair_id)
            assert isinstance(pair, Spot)
            tokens.append(IssuedToken(token, pair, price))
        issuer_config = IssuerConfig(
            mint_fee_bps=venue_cfg.mint_fee_bps,
            redeem_fee_bps=venue_cfg.redeem_fee_bps,
            min_notional=venue_cfg.min_notional,
            delay_ns=int(venue_cfg.settlement.total_seconds() * 1e9),
        )
        return SimIssuer(name, clock, calendar, tokens, issuer_config, balances)
    return _amm_or_pool_venue(venue_cfg, settings, cfg, registry, clock, balances)


def _amm_or_pool_venue(
    venue_cfg: Any,
    settings: SimSettings,
    cfg: PerpetuaConfig,
    registry: InstrumentRegistry,
    clock: Clock,
    balances: dict[str, Decimal],
) -> SimVenue | None:
    """AMM venues; None for kinds a backtest does not simulate (oracles, options pools for now)."""
    if not isinstance(venue_cfg, UniswapV2Venue | UniswapV3Venue | SimAmmVenue):
        return None
    name = venue_cfg.name
    pools = [i for i in registry if isinstance(i, Pool) and i.venue == name]
    decimals = {t.id: t.decimals for t in cfg.tokens}
    decimals.update({i.id: i.decimals for i in registry if isinstance(i, TokenizedStock)})
    specs = []
    for pool in pools:
        # Swaps are booked on a spot pair of the pool's tokens at this venue: token/stablecoin.
        base, quote = (pool.token1, pool.token0) if pool.token0 in DOLLARS else (pool.token0, pool.token1)
        pair_id = amm_pair_id(pool)
        if pair_id not in registry:
            registry.add(Spot(pair_id, base, quote))
        pair = registry[pair_id]
        assert isinstance(pair, Spot)
        specs.append(AmmPoolSpec(pool, pair))
    if isinstance(venue_cfg, SimAmmVenue):
        block_ns = int(venue_cfg.block_time.total_seconds() * 1e9)
        gas = GasModel(v2_swap_units=venue_cfg.gas_per_swap, v3_swap_units=venue_cfg.gas_per_swap)
        gas = replace(gas, price_gwei=venue_cfg.gas_price_gwei)
    else:
        block_ns = settings.block_time_ms * MS
        gas = GasModel(price_gwei=settings.gas_price_gwei)
    config = AmmConfig(
        block_time_ns=block_ns, latency_ns=settings.latency_ms * MS, gas=gas, gas_fee_in="quote"
    )
    return SimAmm(name, clock, specs, decimals, config, balances, settings.native_price)


def _options_pool(
    venue_cfg: SimOptionsPoolVenue,
    settings: SimSettings,
    registry: InstrumentRegistry,
    clock: SimulatedClock,
    dataset: Dataset,
) -> OptionsPool:
    """The options pool of a config entry; each asset it needs is priced off a dataset stream.

    An asset `A` is priced by the first stream (oracle or quotes) of instrument `A/USD`, `A/USDT`
    or `A/USDC`; its vol comes from `backtest.sim.<pool>.vols` (default 0.6).
    """
    options = tuple(o for o in (registry[i] for i in venue_cfg.options) if isinstance(o, PerpetualOption))
    pool_asset = options[0].margin_asset
    assets = sorted({o.underlying for o in options} | {pool_asset})
    feeds = []
    for asset in assets:
        entry = next(
            (
                e
                for quote in ("USD", "USDT", "USDC")
                for e in dataset.manifest.streams
                if e.event in ("OraclePrice", "Quote") and e.constants.get("instrument") == f"{asset}/{quote}"
            ),
            None,
        )
        if entry is None:
            raise ConfigError(
                [
                    ConfigIssue(
                        f"venues.{venue_cfg.name}", f"no price stream for {asset} in the dataset", asset
                    )
                ]
            )
        source = entry.constants.get("source") or entry.constants["venue"]
        feeds.append(PriceFeed(source, entry.constants["instrument"], asset))
    haircuts = dict(venue_cfg.margin_haircuts)
    haircuts.setdefault(pool_asset, Decimal("0.2"))
    config = OptionsPoolConfig(
        pool_asset=pool_asset,
        options=options,
        price_feeds=tuple(feeds),
        margin=MarginPolicy(haircuts),
        vols={a: settings.vols.get(a, Decimal("0.6")) for a in assets},
        fee_bps=venue_cfg.fee_bps,
        insurance_fraction=venue_cfg.insurance_fraction,
        latency_ns=settings.latency_ms * MS,
    )
    pool = OptionsPool(venue_cfg.name, clock, config)
    for share in pool.share_instruments():
        if share.id not in registry:
            registry.add(share)
    # The rest of the market's liquidity providers, so the pool has capital to sell against.
    for share_id, amount in (
        (config.main_share, settings.main_pool_capital),
        (config.insurance_share, settings.insurance_pool_capital),
    ):
        if amount > 0:
            pool.deposit("market-lp", amount)
            pool.add_liquidity("market-lp", share_id, amount)
    return pool


def amm_pair_id(pool: Pool) -> str:
    """Id of the spot pair a pool's swaps are booked on: `<token>/<stablecoin>@<venue>`."""
    base, quote = (pool.token1, pool.token0) if pool.token0 in DOLLARS else (pool.token0, pool.token1)
    return f"{base}/{quote}@{pool.venue}"


class _EquitySampler:
    """Samples equity and the token premium on a fixed simulated-time grid (invisible to strategies)."""

    def __init__(self, backtest: Backtest) -> None:
        self.bt = backtest
        self.ts: list[int] = []
        self.equity: list[float] = []
        self.series: dict[str, tuple[list[int], list[float]]] = {}
        self.initial: Decimal | None = None
        self.last_equity: Decimal | None = None
        self.last_prices: dict[str, Decimal] = {}
        self._next = 0

    def schedule_next(self, at_ns: int) -> None:
        """Wake at `at_ns` through a venue-free timer of the driver."""
        self._next = at_ns
        self.bt.engine.schedule_hook(at_ns, self._on_time)

    def _on_time(self, now_ns: int) -> None:
        self.sample(now_ns)
        self.schedule_next(now_ns + self.bt.sample_interval_ns)

    def prices(self) -> dict[str, Decimal]:
        """Latest price of every asset and derivative held, in the valuation currency."""
        engine = self.bt.engine
        prices = dict(self.last_prices)
        for asset in DOLLARS:
            prices[asset] = Decimal(1)
        for instrument in engine.instruments:
            value: float | None = None
            if isinstance(instrument, TokenizedStock):
                value = engine.fair_value(instrument.id, ANY_AGE)
                price = engine.reference_price(instrument.underlying, ANY_AGE)
                if price is not None:
                    prices[instrument.underlying] = Decimal(repr(price))
            elif isinstance(instrument, StockPerp):
                value = engine.reference_price(instrument.underlying, ANY_AGE)
            if value is not None:
                prices[instrument.id] = Decimal(repr(value))
        for (_, instrument_id), oracle in engine.oracles.items():
            base, _, quote = instrument_id.partition("/")
            if quote in DOLLARS and base not in prices:
                prices[base] = Decimal(repr(oracle.price))
        for venue in self.bt.venues:
            if isinstance(venue, OptionsPool):
                # Options at the pool's mark (margin units); LP shares at NAV per share x the token's price.
                for option_id, (mark, _) in venue.marks().items():
                    prices[option_id] = mark
                token_price = prices.get(venue.config.pool_asset)
                for share in (venue.config.main_share, venue.config.insurance_share):
                    per_share = venue.nav_per_share(share)
                    if per_share is not None and token_price is not None:
                        prices[share] = per_share * token_price
        self.last_prices = prices
        return prices

    def sample(self, now_ns: int) -> None:
        """Record equity (and each token's price vs fair value) at `now_ns`."""
        portfolio = self.bt.engine.portfolio
        prices = self.prices()
        try:
            equity = portfolio.equity(prices, self.bt.config.risk.currency)
        except Exception:  # a held asset has no price yet: skip this sample rather than guess
            return
        if self.initial is None:
            self.initial = equity
        self.ts.append(now_ns)
        self.equity.append(float(equity))
        self.last_equity = equity
        engine = self.bt.engine
        for (venue, instrument_id), quote in engine.quotes.items():
            token = self._token_of(instrument_id)
            if token is None:
                continue
            mid = 0.5 * (quote.bid + quote.ask)
            self._point(f"token_price:{venue}:{instrument_id}", now_ns, mid)
            fair = engine.fair_value(token, ANY_AGE)
            if fair:
                self._point(f"fair_value:{token}", now_ns, fair)
                self._point(f"premium_bps:{venue}:{instrument_id}", now_ns, (mid / fair - 1) * 1e4)

    def _token_of(self, instrument_id: str) -> str | None:
        """The tokenized stock a spot pair trades, if it is one."""
        instruments = self.bt.engine.instruments
        if instrument_id not in instruments:
            return None
        pair = instruments[instrument_id]
        if not isinstance(pair, Spot) or pair.base not in instruments:
            return None
        return pair.base if isinstance(instruments[pair.base], TokenizedStock) else None

    def _point(self, key: str, ts: int, value: float) -> None:
        times, values = self.series.setdefault(key, ([], []))
        if times and times[-1] == ts:
            return
        times.append(ts)
        values.append(value)

    def result(self, events: int, wall: float) -> BacktestResult:
        """The finished run as a `BacktestResult`."""
        engine = self.bt.engine
        portfolio = engine.portfolio
        fees: dict[str, Decimal] = {}
        for (_, asset), amount in portfolio.fees().items():
            fees[asset] = fees.get(asset, Decimal(0)) + amount
        funding = sum(portfolio.funding().values(), Decimal(0))
        amm_venues = {v.name for v in self.bt.venues if isinstance(v, SimAmm)}
        gas = sum((f.fee for f in engine.fills if f.venue in amm_venues), Decimal(0))
        gas += sum((u.fee for u in engine.rejections if u.venue in amm_venues), Decimal(0))
        owner = {
            order.client_order_id: engine.strategies[idx].name
            for order in engine.orders
            if (idx := engine.owner_of(order.client_order_id)) is not None
        }
        initial = self.initial if self.initial is not None else Decimal(0)
        final = self.last_equity if self.last_equity is not None else initial
        return BacktestResult(
            start_ns=self.bt.start_ns,
            end_ns=self.bt.end_ns,
            valuation_asset=self.bt.config.risk.currency,
            events=events,
            orders=list(engine.orders),
            fills=list(engine.fills),
            rejections=list(engine.rejections),
            equity=Series(np.asarray(self.ts, dtype=np.int64), np.asarray(self.equity, dtype=np.float64)),
            initial_equity=initial,
            final_equity=final,
            portfolio=portfolio.snapshot(),
            fees=fees,
            gas=gas,
            funding=funding,
            strategy_of_order=owner,
            series={
                key: Series(np.asarray(t, dtype=np.int64), np.asarray(v, dtype=np.float64))
                for key, (t, v) in self.series.items()
            },
            wall_seconds=wall,
            par_assets=DOLLARS if self.bt.config.risk.currency == "USD" else frozenset(),
        )
