"""Generator of the bundled sample dataset (`data/sample/`): real daily prices refined to minutes,
the token on a DEX pool and an exchange book from a premium/depeg model, an oracle, a BTC path and
the market calendar. The model and the measured statistics are documented in `docs/data.md`.

Regenerate (needs `bokeh_sampledata` and `backtesting`, only here: the dataset itself is committed):

    python -m backtest.sample_data --out data/sample
    python -m backtest.sample_data --out data/sample --stocks-csv PATH/stocks.csv.gz --btc-csv PATH/BTCUSD.csv

Reproducibility: every random draw comes from a generator seeded with `(seed, component, index)`,
where the index is a trading day, an overnight gap or a 1440-minute block counted from the
dataset's start, and each block draws a fixed number of values. Generating a prefix of the period
(`generate(spec, until_ns=...)`) therefore gives exactly the same values as the full run over that
prefix; the discrete plan (which weekend gaps persist, when spikes happen) is drawn once for the
whole period and recorded in the manifest together with the source prices, so the sample can be
regenerated from the manifest alone, without the source packages.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import yaml

from backtest.data import MANIFEST_FORMAT, MANIFEST_NAME, SCHEMA_VERSION, market_status_columns, write_parquet
from core.calendar import MARKET_TZ, NS_PER_MINUTE, SESSIONS, MarketCalendar
from core.enums import Session, Side
from pricing.amm import compute_swap_step, get_tick_at_sqrt_ratio

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

NS_PER_SECOND: Final = 1_000_000_000
DEFAULT_SEED: Final = 20250701
GAP_CLOSED_BPS: Final = 50.0  # a gap counts as closed when the token trades this close to the stock
MINUTES_PER_BLOCK: Final = 1440  # random draws are made per 1440-minute block of the dataset
MINUTES_PER_YEAR: Final = 365 * 24 * 60
Q192: Final = 1 << 192
FULL_RANGE_TICKS: Final = (-887220, 887220)  # widest range on tick spacing 60
_SHUT: Final = frozenset({Session.WEEKEND, Session.HOLIDAY, Session.CLOSED})
_CODE: Final = {s: i for i, s in enumerate(SESSIONS)}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_COMPONENTS: Final = {
    "day": 1,
    "gap": 2,
    "broker": 3,
    "oracle": 4,
    "ou_cex": 5,
    "ou_dex": 6,
    "weekend": 7,
    "dex_weekend": 8,
    "cex_quotes": 9,
    "cex_trades": 10,
    "pool": 11,
    "btc": 12,
    "plan": 13,
}


# --------------------------------------------------------------------------------------------
# Parameters


@dataclass(frozen=True, slots=True)
class SampleParams:
    """Every knob of the generator, with the defaults the bundled sample uses (units in the names).

    Session weights scale the variance per minute of the hidden stock path relative to a regular
    minute; `*_bps` are basis points of the fair value; half-lives are in minutes unless named.
    """

    seed: int = DEFAULT_SEED
    start: str = "2025-07-01"  # first local (New York) day
    end: str = "2025-09-30"  # last local day, inclusive
    exchange: str = "XNYS"
    source_ticker: str = "AAPL"
    source_first_day: str = "2012-09-04"  # source day mapped onto the first trading day
    # names, matching the default config.yaml
    stock_instrument: str = "TSLA/USD"
    broker_venue: str = "alpaca"
    oracle_source: str = "chainlink_local"
    cex_venue: str = "binance"
    cex_instrument: str = "TSLAx/USDT"
    pool_venue: str = "uniswap_local"
    pool_id: str = "TSLAx/USDC"
    btc_source: str = "btc_index"
    btc_instrument: str = "BTC/USD"
    # hidden stock path: variance weight per minute by session (regular = 1)
    weight_pre_post: float = 0.25
    weight_overnight: float = 0.08
    weight_shut: float = 0.02
    # broker quotes (the real stock)
    pre_post_every_min: int = 2
    overnight_every_min: int = 5
    # oracle (Chainlink-like): updates with the broker quotes; a heartbeat while the market is shut
    oracle_shut_heartbeat_min: int = 30
    oracle_delay_ms: tuple[int, int] = (200, 1500)
    # token premium model
    cex_noise_sd_bps: float = 5.0
    cex_noise_half_life_min: float = 10.0
    dex_base_premium_bps: float = 10.0
    dex_noise_sd_bps: float = 10.0
    dex_noise_half_life_min: float = 20.0
    dex_swap_noise_bps: float = 8.0
    weekend_sd_bps_per_sqrt_hour: float = 20.0
    weekend_half_life_hours: float = 24.0
    weekend_t_df: float = 4.0
    weekend_clip_bps: float = 300.0
    dex_weekend_extra_sd_bps: float = 15.0
    gap_close_half_life_min: float = 2.0
    gap_close_share: float = 0.9
    persist_bps: tuple[float, float] = (90.0, 160.0)
    persist_half_life_min: float = 180.0
    spikes: tuple[tuple[str, str, float, float, float], ...] = (
        # (venue, where, min amplitude, max amplitude, half-life min)
        ("dex", "shut", 0.12, 0.16, 4.0),
        ("dex", "overnight", 0.105, 0.12, 4.0),
        ("cex", "shut", 0.11, 0.13, 1.5),
    )
    # exchange book and trades
    cex_half_spread_bps: float = 2.0
    cex_half_spread_shut_bps: float = 6.0
    cex_size_median: float = 25.0
    cex_size_median_shut: float = 6.0
    cex_trades_per_min: float = 0.4
    cex_trades_per_min_shut: float = 0.08
    cex_trade_size_median: float = 0.8
    # Uniswap v3 pool TSLAx (token0, 18 decimals) / USDC (token1, 6 decimals), one full-range position
    pool_fee_pips: int = 3000
    pool_depth_usdc: int = 1_000_000
    token0_decimals: int = 18
    token1_decimals: int = 6
    block_time_s: int = 12
    first_block: int = 22_820_000
    swaps_per_min: float = 0.5
    swaps_per_min_shut: float = 0.08
    swaps_per_min_spike: float = 2.5
    # BTC Merton jump-diffusion (the total variance matches the BTCUSD series' vol)
    btc_jumps_per_year: float = 12.0
    btc_jump_mean: float = -0.01
    btc_jump_sd: float = 0.04

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-able values (tuples become lists)."""
        plain: dict[str, Any] = _plain(asdict(self))
        return plain

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SampleParams:
        """Inverse of `to_dict`."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in data:
                value = data[f.name]
                kwargs[f.name] = _tuples(value) if isinstance(value, list) else value
        return cls(**kwargs)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


@dataclass(frozen=True, slots=True)
class DailyBar:
    """One real daily bar (source date, unadjusted OHLC in USD) and the trading day it is placed on."""

    source_date: str
    target_date: str
    open: float
    high: float
    low: float
    close: float


@dataclass(frozen=True, slots=True)
class Spike:
    """A premium spike: at `ts` (ns UTC) the venue's price jumps to (1 + amplitude) x fair value,
    then decays with `half_life_min` minutes."""

    venue: str
    ts: int
    amplitude: float
    half_life_min: float


@dataclass(frozen=True, slots=True)
class PersistentGap:
    """A weekend gap that does not close at the reopening: from `reopen_ts` (ns UTC) the venue keeps
    a premium of `level_bps` (signed) decaying with the persistence half-life."""

    venue: str
    reopen_ts: int
    level_bps: float


@dataclass(frozen=True, slots=True)
class SampleSpec:
    """Everything `generate` needs: parameters, the real prices, derived numbers and the plan."""

    params: SampleParams
    bars: tuple[DailyBar, ...]  # day -1 (previous close), the trading days, then the next day (open)
    sigma_regular_per_min: float  # log-price sd per regular minute (Parkinson, from the bars)
    btc_annual_vol: float  # annualised vol of backtesting.test.BTCUSD (monthly log returns)
    btc_start_price: float  # last close of that series, USD
    persistent_gaps: tuple[PersistentGap, ...]
    spikes: tuple[Spike, ...]
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's `generator` section (YAML-able)."""
        return {
            "script": "backtest/sample_data.py",
            "command": "python -m backtest.sample_data --out data/sample",
            "params": self.params.to_dict(),
            "derived": {
                "sigma_regular_per_min": self.sigma_regular_per_min,
                "btc_annual_vol": self.btc_annual_vol,
                "btc_start_price": self.btc_start_price,
            },
            "plan": {
                "persistent_gaps": [_plain(asdict(g)) for g in self.persistent_gaps],
                "spikes": [_plain(asdict(s)) for s in self.spikes],
            },
            "sources": dict(self.provenance),
            "bars": [[b.source_date, b.target_date, b.open, b.high, b.low, b.close] for b in self.bars],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SampleSpec:
        """Rebuild the spec from a manifest's `generator` section."""
        derived = data["derived"]
        plan = data["plan"]
        return cls(
            params=SampleParams.from_dict(data["params"]),
            bars=tuple(DailyBar(str(r[0]), str(r[1]), *map(float, r[2:6])) for r in data["bars"]),
            sigma_regular_per_min=float(derived["sigma_regular_per_min"]),
            btc_annual_vol=float(derived["btc_annual_vol"]),
            btc_start_price=float(derived["btc_start_price"]),
            persistent_gaps=tuple(PersistentGap(**g) for g in plan["persistent_gaps"]),
            spikes=tuple(Spike(**s) for s in plan["spikes"]),
            provenance=dict(data.get("sources", {})),
        )


# --------------------------------------------------------------------------------------------
# Sources: real daily prices and the BTC series


@dataclass(frozen=True, slots=True)
class Sources:
    """Real inputs: daily OHLC rows by ticker (date, o, h, l, c) and monthly BTC closes."""

    stocks: Mapping[str, list[tuple[str, float, float, float, float]]]
    btc_closes: list[float]
    provenance: Mapping[str, Any]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _package_file(package: str, *parts: str) -> Path:
    """A data file shipped inside an installed package (found without importing the package)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            f"package {package!r} not installed: `pip install {package.replace('_', '-')}` "
            "or pass the file path explicitly (see --help)"
        )
    return Path(next(iter(spec.submodule_search_locations)), *parts)


def read_sources(stocks_csv: Path | None = None, btc_csv: Path | None = None) -> Sources:
    """Read the daily stock prices (bokeh_sampledata's stocks.csv.gz: Quandl WIKI, public domain)
    and the monthly BTCUSD series shipped with backtesting.py (backtesting/test/BTCUSD.csv)."""
    stocks_path = stocks_csv or _package_file("bokeh_sampledata", "_data", "stocks.csv.gz")
    btc_path = btc_csv or _package_file("backtesting", "test", "BTCUSD.csv")
    stocks_bytes = stocks_path.read_bytes()
    text = gzip.decompress(stocks_bytes).decode() if stocks_path.suffix == ".gz" else stocks_bytes.decode()
    stocks: dict[str, list[tuple[str, float, float, float, float]]] = {}
    reader = csv.reader(io.StringIO(text))
    next(reader)  # Ticker,Date,Open,High,Low,Close,Volume,Adj Close
    for row in reader:
        stocks.setdefault(row[0], []).append(
            (row[1], float(row[2]), float(row[3]), float(row[4]), float(row[5]))
        )
    btc_bytes = btc_path.read_bytes()
    btc_reader = csv.reader(io.StringIO(btc_bytes.decode()))
    header = next(btc_reader)
    close_col = header.index("Close")
    btc = [float(r[close_col]) for r in btc_reader if r]
    provenance = {
        "stocks": {
            "package": "bokeh_sampledata",
            "file": "bokeh_sampledata/_data/stocks.csv.gz",
            "origin": "Quandl WIKI prices (public domain), unadjusted daily OHLC",
            "sha256": _sha256(stocks_bytes),
        },
        "btc": {
            "package": "backtesting",
            "file": "backtesting/test/BTCUSD.csv",
            "origin": "monthly BTCUSD OHLC shipped with backtesting.py",
            "sha256": _sha256(btc_bytes),
            "months": len(btc),
        },
    }
    return Sources(stocks, btc, provenance)


def annualised_vol_monthly(closes: Sequence[float]) -> float:
    """Annualised volatility of monthly closes: sample sd of log returns x sqrt(12)."""
    r = np.diff(np.log(np.asarray(closes, dtype=np.float64)))
    return float(np.std(r, ddof=1) * math.sqrt(12.0))


# --------------------------------------------------------------------------------------------
# Calendar helpers


def _local_midnight_ns(day: date) -> int:
    return (
        (datetime.combine(day, time(0), tzinfo=ZoneInfo(MARKET_TZ)) - _EPOCH)
        // timedelta(microseconds=1)
        * 1000
    )


def window_ns(params: SampleParams) -> tuple[int, int]:
    """[start, end) of the dataset in ns UTC: local midnight of `start` to midnight after `end`."""
    first = date.fromisoformat(params.start)
    last = date.fromisoformat(params.end)
    return _local_midnight_ns(first), _local_midnight_ns(last + timedelta(days=1))


def _calendar(params: SampleParams) -> MarketCalendar:
    first = date.fromisoformat(params.start) - timedelta(days=10)
    last = date.fromisoformat(params.end) + timedelta(days=10)
    return MarketCalendar(params.exchange, first, last)


def _trading_days(cal: MarketCalendar, first: date, last: date) -> list[date]:
    days = []
    d = first
    while d <= last:
        if cal.is_trading_day(d):
            days.append(d)
        d += timedelta(days=1)
    return days


@dataclass(frozen=True, slots=True)
class Episode:
    """A span with the stock market shut (weekend, holiday, closed) and the regular open ending it.

    `start`/`reopen` are minute indices from the dataset start (`reopen` may lie past the end)."""

    start: int
    reopen: int


def _episodes(shut: BoolArray, cal: MarketCalendar, start_ns: int) -> list[Episode]:
    """Maximal runs of shut minutes, each with the first regular-session minute after it."""
    edges = np.flatnonzero(np.diff(np.concatenate(([False], shut)).astype(np.int8)) == 1)
    out = []
    for s in edges.tolist():
        reopen_ns = cal.next_regular_open(start_ns + s * NS_PER_MINUTE)
        out.append(Episode(int(s), (reopen_ns - start_ns) // NS_PER_MINUTE))
    return out


# --------------------------------------------------------------------------------------------
# Building the spec (real prices placed on trading days, derived numbers, the plan)


def build_spec(sources: Sources, params: SampleParams | None = None) -> SampleSpec:
    """Place the real daily bars on the target trading days and draw the discrete plan."""
    params = params or SampleParams()
    cal = _calendar(params)
    first = date.fromisoformat(params.start)
    last = date.fromisoformat(params.end)
    days = _trading_days(cal, first, last)
    before = _trading_days(cal, first - timedelta(days=10), first - timedelta(days=1))[-1]
    after = _trading_days(cal, last + timedelta(days=1), last + timedelta(days=10))[0]
    rows = sources.stocks[params.source_ticker]
    dates = [r[0] for r in rows]
    i0 = dates.index(params.source_first_day)
    picked = rows[i0 - 1 : i0 + len(days) + 1]
    if len(picked) != len(days) + 2:
        raise ValueError(f"{params.source_ticker}: not enough daily rows after {params.source_first_day}")
    targets = [before, *days, after]
    bars = tuple(
        DailyBar(r[0], t.isoformat(), r[1], r[2], r[3], r[4]) for r, t in zip(picked, targets, strict=True)
    )
    # Parkinson: E[ln(H/L)^2] = 4 ln2 sigma_day^2; a regular session has 390 minutes.
    hl = np.array([math.log(b.high / b.low) for b in bars[1:-1]])
    sigma_day = math.sqrt(float(np.mean(hl**2)) / (4.0 * math.log(2.0)))
    sigma_min = sigma_day / math.sqrt(390.0)
    btc_vol = annualised_vol_monthly(sources.btc_closes)
    spec = SampleSpec(
        params=params,
        bars=bars,
        sigma_regular_per_min=sigma_min,
        btc_annual_vol=btc_vol,
        btc_start_price=float(sources.btc_closes[-1]),
        persistent_gaps=(),
        spikes=(),
        provenance=sources.provenance,
    )
    gaps, spikes = _draw_plan(spec, cal)
    return replace(spec, persistent_gaps=gaps, spikes=spikes)


def _draw_plan(spec: SampleSpec, cal: MarketCalendar) -> tuple[tuple[PersistentGap, ...], tuple[Spike, ...]]:
    """Which weekend gaps persist past the reopening (so that the closing share is `gap_close_share`
    of all (weekend, venue) gaps), and when the spikes happen (away from every reopening)."""
    p = spec.params
    start_ns, end_ns = window_ns(p)
    n = (end_ns - start_ns) // NS_PER_MINUTE
    codes = cal.session_codes_at(start_ns + np.arange(n, dtype=np.int64) * NS_PER_MINUTE)
    shut = np.isin(codes, [_CODE[s] for s in _SHUT])
    episodes = [e for e in _episodes(shut, cal, start_ns) if e.reopen + 60 < n]
    rng = _rng(p.seed, "plan", 0)
    pairs = [(e, v) for e in episodes for v in ("dex", "cex")]
    n_persist = len(pairs) - round(p.gap_close_share * len(pairs))
    chosen = sorted(rng.choice(len(pairs), size=n_persist, replace=False).tolist())
    gaps = []
    for k in chosen:
        episode, venue = pairs[k]
        level = float(rng.uniform(*p.persist_bps)) * (1.0 if rng.random() < 0.5 else -1.0)
        gaps.append(PersistentGap(venue, start_ns + episode.reopen * NS_PER_MINUTE, round(level, 2)))
    # Spikes stay clear of every reopening (12 h before to 8 h after) so gap measurements see none.
    quiet = np.zeros(n, dtype=np.bool_)
    for e in _episodes(shut, cal, start_ns):
        quiet[max(0, e.reopen - 720) : max(0, min(n, e.reopen + 480))] = True
    quiet[: 2 * 1440] = True  # and clear of the first two days
    spikes = []
    for venue, where, low, high, half_life in p.spikes:
        mask = shut if where == "shut" else codes == _CODE[Session.OVERNIGHT]
        candidates = np.flatnonzero(mask & ~quiet)
        m = int(rng.choice(candidates))
        quiet[max(0, m - 1440) : m + 1440] = True  # spikes a day apart at least
        spikes.append(
            Spike(venue, start_ns + m * NS_PER_MINUTE, round(float(rng.uniform(low, high)), 4), half_life)
        )
    return tuple(gaps), tuple(sorted(spikes, key=lambda s: s.ts))


# --------------------------------------------------------------------------------------------
# Random numbers


def _rng(seed: int, component: str, index: int) -> np.random.Generator:
    """Independent generator for (component, index): a day, a gap segment or a minute block."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(_COMPONENTS[component], index)))
    )


def _per_block(
    seed: int, component: str, n_minutes: int, draw: Callable[[np.random.Generator], npt.NDArray[Any]]
) -> npt.NDArray[Any]:
    """Concatenate `draw(rng)` (MINUTES_PER_BLOCK rows each) over the blocks covering n_minutes.

    Each block's draws depend only on its own generator, so a shorter run is an exact prefix."""
    blocks = -(-n_minutes // MINUTES_PER_BLOCK)
    parts = [draw(_rng(seed, component, b)) for b in range(blocks)]
    return np.concatenate(parts)[:n_minutes] if parts else np.empty(0)


def _ar1(a: FloatArray, shock: FloatArray, clip: float = math.inf) -> FloatArray:
    """x[i] = clip(a[i] * x[i-1] + shock[i]), x[-1] = 0: time-varying AR(1), one pass."""
    out = [0.0] * len(a)
    x = 0.0
    for i, (ai, si) in enumerate(zip(a.tolist(), shock.tolist(), strict=True)):
        x = ai * x + si
        x = clip if x > clip else -clip if x < -clip else x
        out[i] = x
    return np.asarray(out, dtype=np.float64)


def _ou(z: FloatArray, half_life_min: float, sd: float) -> FloatArray:
    """Stationary-sd `sd` Ornstein-Uhlenbeck sampled per minute (exact discretisation), from 0."""
    a = 0.5 ** (1.0 / half_life_min)
    return _ar1(np.full(len(z), a), z * sd * math.sqrt(1.0 - a * a))


# --------------------------------------------------------------------------------------------
# Pool price conversions (exact integers)


def price_to_sqrt_price_x96(price: Fraction | str, decimals0: int, decimals1: int) -> int:
    """floor(sqrt(price x 10^(decimals1 - decimals0)) x 2^96): Q64.96 sqrt price of a v3 pool.

    `price` is token1 per token0 in display units (USDC per TSLAx), exact (a Fraction or decimal
    string); the raw pool price is in base units, hence the decimals shift.
    """
    p = Fraction(price)
    raw = p * Fraction(10**decimals1, 10**decimals0)
    return math.isqrt(raw.numerator * Q192 // raw.denominator)


def sqrt_price_x96_to_price(sqrt_price_x96: int, decimals0: int, decimals1: int) -> Fraction:
    """Exact display price (token1 per token0) of a Q64.96 sqrt price: s^2 / 2^192 x 10^(d0 - d1)."""
    return Fraction(sqrt_price_x96 * sqrt_price_x96 * 10**decimals0, Q192 * 10**decimals1)


# --------------------------------------------------------------------------------------------
# The hidden stock path: Brownian bridges through the daily open/high/low/close


def _bridge(x0: float, x1: float, var: FloatArray, z: FloatArray) -> FloatArray:
    """Brownian bridge in variance time from x0 to x1: len(var) steps with variances var (log units).

    Returns len(var) + 1 points, exactly x0 and x1 at the ends.
    """
    s = np.concatenate(([0.0], np.cumsum(np.sqrt(var) * z)))
    v = np.concatenate(([0.0], np.cumsum(var)))
    total = v[-1]
    frac = v / total if total > 0 else np.linspace(0.0, 1.0, len(v))
    path: FloatArray = x0 + (x1 - x0) * frac + (s - s[-1] * frac)
    path[0], path[-1] = x0, x1
    return path


def _bounded(path: FloatArray, low: float, high: float) -> FloatArray:
    """Shrink the bridge part of `path` (its deviation from the chord) so it stays in [low, high]."""
    chord = np.linspace(path[0], path[-1], len(path))
    dev = path - chord
    with np.errstate(divide="ignore", invalid="ignore"):
        up = np.where(dev > 0, (high - chord) / dev, np.inf)
        down = np.where(dev < 0, (low - chord) / dev, np.inf)
    scale = min(1.0, float(np.min(up)), float(np.min(down)))
    out = chord + max(scale, 0.0) * dev
    return np.clip(out, low, high)


def _day_path(bar: DailyBar, n: int, sigma: float, rng: np.random.Generator) -> FloatArray:
    """Regular-session minute prices (n points) with first = open, last = close, max = high, min = low.

    The high and the low are placed at random interior minutes; between the anchors, Brownian
    bridges in log price, each shrunk towards its chord just enough to stay inside [low, high].
    """
    lo, hi = math.log(bar.low), math.log(bar.high)
    anchors: dict[int, float] = {0: math.log(bar.open), n - 1: math.log(bar.close)}
    t_high, t_low = (int(t) for t in rng.choice(np.arange(1, n - 1), size=2, replace=False))
    if bar.high not in (bar.open, bar.close):
        anchors[t_high] = hi
    if bar.low not in (bar.open, bar.close):
        anchors[t_low] = lo
    z = rng.standard_normal(n)
    times = sorted(anchors)
    out = np.empty(n)
    for a, b in itertools.pairwise(times):
        seg = _bridge(anchors[a], anchors[b], np.full(b - a, sigma * sigma), z[a + 1 : b + 1])
        out[a : b + 1] = _bounded(seg, lo, hi)
    prices = np.round(np.exp(out), 4)
    prices[0], prices[-1] = bar.open, bar.close
    for t, x in anchors.items():  # exact source values at the anchors
        prices[t] = {hi: bar.high, lo: bar.low}.get(x, prices[t])
    return np.clip(prices, bar.low, bar.high)


def _stock_path(spec: SampleSpec, cal: MarketCalendar, g0: int, n_grid: int, days: int) -> FloatArray:
    """Stock price (USD, 4 decimals) per minute from g0 (ns) for n_grid minutes.

    Regular sessions follow `_day_path`; every close -> next open is a bridge in variance time
    whose per-minute weights depend on the session (pre/post, overnight, shut).
    """
    p = spec.params
    sigma = spec.sigma_regular_per_min
    codes = cal.session_codes_at(g0 + np.arange(n_grid, dtype=np.int64) * NS_PER_MINUTE)
    weights = np.ones(len(SESSIONS))
    for s in (Session.PRE_MARKET, Session.POST_MARKET):
        weights[_CODE[s]] = p.weight_pre_post
    weights[_CODE[Session.OVERNIGHT]] = p.weight_overnight
    for s in _SHUT:
        weights[_CODE[s]] = p.weight_shut
    var = weights[codes] * sigma * sigma
    out = np.full(n_grid, np.nan)
    prev_close_at = 0  # minute index of the previous close anchor
    prev_close = math.log(spec.bars[0].close)
    out[0] = spec.bars[0].close
    for i in range(days + 1):
        bar = spec.bars[i + 1]
        open_ns, close_ns = cal.regular_open_close(bar.target_date)
        o = (open_ns - g0) // NS_PER_MINUTE
        # gap segment: previous close -> this open
        steps = o - prev_close_at
        z = _rng(p.seed, "gap", i).standard_normal(steps)
        seg = _bridge(prev_close, math.log(bar.open), var[prev_close_at:o], z)
        out[prev_close_at + 1 : o] = np.round(np.exp(seg[1:-1]), 4)
        out[o] = bar.open
        if i == days:
            break
        n = (close_ns - open_ns) // NS_PER_MINUTE
        out[o : o + n] = _day_path(bar, n, sigma, _rng(p.seed, "day", i))
        prev_close_at = o + n - 1
        prev_close = math.log(bar.close)
    return out


# --------------------------------------------------------------------------------------------
# Generation


@dataclass(slots=True)
class StreamData:
    """One generated stream: event type, constants, timestamps (ns UTC) and columns."""

    name: str
    file: str
    event: str
    constants: dict[str, str]
    ts: IntArray
    columns: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Generated:
    """Generated streams plus the minute-level model arrays (for statistics and docs)."""

    params: SampleParams
    streams: dict[str, StreamData]
    start_ns: int
    end_ns: int
    stock: FloatArray  # per minute of the window, USD
    codes: npt.NDArray[np.int8]
    premium_cex: FloatArray  # log premium per minute
    premium_dex: FloatArray


def generate(spec: SampleSpec, until_ns: int | None = None) -> Generated:
    """Generate every stream over the dataset window, or its prefix [start, until_ns).

    `until_ns` must be a local midnight (a day boundary) for the prefix to match the full run.
    """
    p = spec.params
    cal = _calendar(p)
    start_ns, end_ns = window_ns(p)
    if until_ns is not None:
        end_ns = min(end_ns, until_ns)
    n = (end_ns - start_ns) // NS_PER_MINUTE
    minutes_ns = start_ns + np.arange(n, dtype=np.int64) * NS_PER_MINUTE
    n_blocks_min = -(-n // MINUTES_PER_BLOCK) * MINUTES_PER_BLOCK  # whole blocks: draws never depend on n
    block_ns = start_ns + np.arange(n_blocks_min, dtype=np.int64) * NS_PER_MINUTE
    codes_full = cal.session_codes_at(block_ns)
    codes = codes_full[:n]
    shut_full = np.isin(codes_full, [_CODE[s] for s in _SHUT])
    shut = shut_full[:n]

    # hidden stock path over the previous close .. the open after the window
    days = sum(1 for b in spec.bars[1:-1] if cal.regular_open_close(b.target_date)[0] < end_ns)
    g0 = cal.regular_open_close(spec.bars[0].target_date)[1] - NS_PER_MINUTE
    g1 = cal.regular_open_close(spec.bars[days + 1].target_date)[0]
    grid = _stock_path(spec, cal, g0, (g1 - g0) // NS_PER_MINUTE + 1, days)
    off = (start_ns - g0) // NS_PER_MINUTE
    stock = grid[off : off + n]

    premium_cex, premium_dex = _premiums(spec, cal, start_ns, n, shut)
    streams: dict[str, StreamData] = {}
    for s in (
        _broker(spec, minutes_ns, codes, stock),
        _oracle(spec, minutes_ns, codes, shut, stock),
        *_cex(spec, minutes_ns, shut_full, stock, premium_cex, n),
        *_pool(spec, start_ns, n, shut_full, stock, premium_dex),
        _btc(spec, minutes_ns),
        _market_status(spec, cal, start_ns, end_ns),
    ):
        streams[s.name] = s
    return Generated(p, streams, start_ns, end_ns, stock, codes, premium_cex, premium_dex)


def _premiums(
    spec: SampleSpec, cal: MarketCalendar, start_ns: int, n: int, shut: BoolArray
) -> tuple[FloatArray, FloatArray]:
    """Log premium of the token over fair value per minute, on the exchange and on the pool.

    premium_cex = noise_cex + W + persist_cex   (then spikes)
    premium_dex = base + noise_dex + W + W_dex + persist_dex   (then spikes)
    W is the weekend premium shared by both venues: from the start of each shut span until the next
    regular open an AR(1) (half-life `weekend_half_life_hours`) driven by Student-t shocks, clipped;
    from the open on it decays with `gap_close_half_life_min` (the gap closes). W_dex is extra
    pool-only noise over the same span. A persistent gap adds a slowly decaying premium from the
    reopening instead. A spike sets the premium to log(1 + amplitude) at its minute and lets the
    excess decay with the spike's half-life.
    """
    p = spec.params
    bps = 1e-4
    std_t = math.sqrt((p.weekend_t_df - 2.0) / p.weekend_t_df)  # Student-t scaled to unit variance
    z_cex = _per_block(p.seed, "ou_cex", n, lambda g: g.standard_normal(MINUTES_PER_BLOCK))
    z_dex = _per_block(p.seed, "ou_dex", n, lambda g: g.standard_normal(MINUTES_PER_BLOCK))
    z_w = _per_block(p.seed, "weekend", n, lambda g: g.standard_t(p.weekend_t_df, MINUTES_PER_BLOCK) * std_t)
    z_wd = _per_block(p.seed, "dex_weekend", n, lambda g: g.standard_normal(MINUTES_PER_BLOCK))
    noise_cex = _ou(z_cex, p.cex_noise_half_life_min, p.cex_noise_sd_bps * bps)
    noise_dex = _ou(z_dex, p.dex_noise_half_life_min, p.dex_noise_sd_bps * bps)

    a_w = 0.5 ** (1.0 / (p.weekend_half_life_hours * 60.0))
    a_close = 0.5 ** (1.0 / p.gap_close_half_life_min)
    a_wd = 0.5 ** (1.0 / p.dex_noise_half_life_min)
    coef_w = np.zeros(n)
    shock_w = np.zeros(n)
    coef_wd = np.zeros(n)
    shock_wd = np.zeros(n)
    sd_w = p.weekend_sd_bps_per_sqrt_hour * bps / math.sqrt(60.0)
    sd_wd = p.dex_weekend_extra_sd_bps * bps * math.sqrt(1.0 - a_wd * a_wd)
    episodes = _episodes(shut, cal, start_ns)
    for k, e in enumerate(episodes):
        active = slice(e.start, min(e.reopen, n))
        coef_w[active] = a_w
        shock_w[active] = sd_w * z_w[active]
        coef_wd[active] = a_wd
        shock_wd[active] = sd_wd * z_wd[active]
        coef_w[e.start] = 0.0  # each span starts from zero premium
        coef_wd[e.start] = 0.0
        nxt = episodes[k + 1].start if k + 1 < len(episodes) else n
        decay = slice(min(e.reopen, n), min(nxt, n))
        coef_w[decay] = a_close
        coef_wd[decay] = a_close
    clip = p.weekend_clip_bps * bps
    w = _ar1(coef_w, shock_w, clip)
    wd = _ar1(coef_wd, shock_wd, clip)

    minutes = np.arange(n, dtype=np.float64)

    def persistent(venue: str) -> FloatArray:
        out = np.zeros(n)
        for g in spec.persistent_gaps:
            m = (g.reopen_ts - start_ns) // NS_PER_MINUTE
            if g.venue == venue and m < n:
                out[m:] += g.level_bps * bps * 0.5 ** ((minutes[m:] - m) / p.persist_half_life_min)
        return out

    def spiked(venue: str, premium: FloatArray) -> FloatArray:
        # At the spike the price is exactly (1 + amplitude) x fair; the excess then decays.
        out = premium.copy()
        for s in spec.spikes:
            m = (s.ts - start_ns) // NS_PER_MINUTE
            if s.venue == venue and m < n:
                excess = math.log1p(s.amplitude) - float(premium[m])
                out[m:] += excess * 0.5 ** ((minutes[m:] - m) / s.half_life_min)
        return out

    premium_cex = spiked("cex", noise_cex + w + persistent("cex"))
    premium_dex = spiked("dex", p.dex_base_premium_bps * bps + noise_dex + w + wd + persistent("dex"))
    return premium_cex, premium_dex


def _live_minutes(p: SampleParams, minutes_ns: IntArray, codes: npt.NDArray[np.int8]) -> BoolArray:
    """Minutes with a broker quote / oracle update: every regular minute, every few extended ones."""
    minute_of_epoch = minutes_ns // NS_PER_MINUTE
    regular = codes == _CODE[Session.REGULAR]
    pre_post = (codes == _CODE[Session.PRE_MARKET]) | (codes == _CODE[Session.POST_MARKET])
    overnight = codes == _CODE[Session.OVERNIGHT]
    live: BoolArray = (
        regular
        | (pre_post & (minute_of_epoch % p.pre_post_every_min == 0))
        | (overnight & (minute_of_epoch % p.overnight_every_min == 0))
    )
    return live


def _broker(
    spec: SampleSpec, minutes_ns: IntArray, codes: npt.NDArray[np.int8], stock: FloatArray
) -> StreamData:
    """Broker NBBO of the real stock: tight and deep in regular hours, thinner outside."""
    p = spec.params
    n = len(minutes_ns)
    u = _per_block(p.seed, "broker", n, lambda g: g.random((MINUTES_PER_BLOCK, 3)))
    live = _live_minutes(p, minutes_ns, codes)
    regular = codes == _CODE[Session.REGULAR]
    overnight = codes == _CODE[Session.OVERNIGHT]
    # half-spread in cents: 1-3 regular, 5-14 pre/post, 10-39 overnight
    cents = np.where(
        regular,
        1 + (u[:, 0] * 3).astype(np.int64),
        np.where(overnight, 10 + (u[:, 0] * 30).astype(np.int64), 5 + (u[:, 0] * 10).astype(np.int64)),
    )
    # shares at the touch: 100-800 regular, 1-200 pre/post, 1-50 overnight
    uu = u[:, 1:]
    depth = np.where(
        regular[:, None],
        100.0 * (1 + np.floor(uu * 8)),
        np.where(overnight[:, None], 1 + np.floor(uu * 50), 1 + np.floor(uu * 200)),
    )
    idx = np.flatnonzero(live)
    half = cents[idx] / 100.0
    mid = stock[idx]
    return StreamData(
        "stock_quotes",
        "tsla_usd_alpaca_quotes.parquet",
        "Quote",
        {"venue": p.broker_venue, "instrument": p.stock_instrument},
        minutes_ns[idx],
        {
            "bid": np.round(mid - half, 4),
            "ask": np.round(mid + half, 4),
            "bid_size": depth[idx, 0],
            "ask_size": depth[idx, 1],
        },
        {"description": "the real stock at the broker: mid = the refined daily bars; sizes in shares"},
    )


def _oracle(
    spec: SampleSpec, minutes_ns: IntArray, codes: npt.NDArray[np.int8], shut: BoolArray, stock: FloatArray
) -> StreamData:
    """Chainlink-like stock price: live with the market, frozen (price, publish time, round) while shut."""
    p = spec.params
    n = len(minutes_ns)
    delay_ms = _per_block(
        p.seed, "oracle", n, lambda g: g.integers(*p.oracle_delay_ms, size=MINUTES_PER_BLOCK, endpoint=True)
    )
    live = _live_minutes(p, minutes_ns, codes)
    heartbeat = shut & ((minutes_ns // NS_PER_MINUTE) % p.oracle_shut_heartbeat_min == 0)
    idx = np.flatnonzero(live | heartbeat)
    is_live = live[idx]
    # round ids count live updates; a heartbeat repeats the last live round
    rounds = np.cumsum(is_live)
    last_live = np.maximum.accumulate(np.where(is_live, np.arange(len(idx)), -1))
    if len(idx) and last_live[0] < 0:
        raise ValueError("the dataset must not start while the market is shut (no price to freeze)")
    src = idx[last_live]
    publish = minutes_ns[src] - delay_ms[src] * 1_000_000
    sessions = [SESSIONS[c] for c in codes[idx].tolist()]
    return StreamData(
        "stock_oracle",
        "tsla_usd_chainlink.parquet",
        "OraclePrice",
        {"source": p.oracle_source, "instrument": p.stock_instrument},
        minutes_ns[idx],
        {
            "price": stock[src],
            "publish_ts": publish,
            "round_id": rounds.astype(np.int64),
            "market_status": sessions,
        },
        {"description": "stock price feed; frozen while the market is shut (publish_ts stays)"},
    )


def _cex(
    spec: SampleSpec,
    minutes_ns: IntArray,
    shut_full: BoolArray,
    stock: FloatArray,
    premium: FloatArray,
    n: int,
) -> tuple[StreamData, StreamData]:
    """Exchange book (top of book every minute, 24/7) and its public trades."""
    p = spec.params
    shut = shut_full[:n]
    draws = _per_block(
        p.seed,
        "cex_quotes",
        n,
        lambda g: np.column_stack((g.random(MINUTES_PER_BLOCK), g.standard_normal((MINUTES_PER_BLOCK, 2)))),
    )
    u, z = draws[:, 0], draws[:, 1:]
    mid = np.round(stock * np.exp(premium), 2)
    hs_bps = np.where(shut, p.cex_half_spread_shut_bps, p.cex_half_spread_bps) * (0.75 + 0.5 * u)
    half = np.maximum(0.01, np.round(mid * hs_bps * 1e-4, 2))
    bid = np.round(mid - half, 2)
    ask = np.round(mid + half, 2)
    median = np.where(shut, p.cex_size_median_shut, p.cex_size_median)
    sizes = np.maximum(0.01, np.round(median[:, None] * np.exp(0.5 * z), 2))
    quotes = StreamData(
        "token_cex_quotes",
        "tslax_usdt_binance_quotes.parquet",
        "Quote",
        {"venue": p.cex_venue, "instrument": p.cex_instrument},
        minutes_ns,
        {"bid": bid, "ask": ask, "bid_size": sizes[:, 0], "ask_size": sizes[:, 1]},
        {"description": "token top of book, every minute 24/7; sizes in tokens"},
    )

    # trades: Poisson count per minute, uniform times within it, at the minute's bid or ask
    rate = np.where(shut_full, p.cex_trades_per_min_shut, p.cex_trades_per_min)
    ts_parts: list[IntArray] = []
    side_parts: list[BoolArray] = []
    size_parts: list[FloatArray] = []
    minute_parts: list[IntArray] = []
    for b in range(len(shut_full) // MINUTES_PER_BLOCK):
        g = _rng(p.seed, "cex_trades", b)
        lam = rate[b * MINUTES_PER_BLOCK : (b + 1) * MINUTES_PER_BLOCK]
        counts = g.poisson(lam)
        k = int(counts.sum())
        minute = np.repeat(np.arange(b * MINUTES_PER_BLOCK, (b + 1) * MINUTES_PER_BLOCK), counts)
        offset_ms = np.sort(g.integers(0, 60_000, size=k))  # re-sorted per minute below
        buy = g.random(k) < 0.5
        size = np.maximum(0.001, np.round(p.cex_trade_size_median * np.exp(g.standard_normal(k)), 3))
        order = np.lexsort((offset_ms, minute))
        ts_parts.append(minute[order] * NS_PER_MINUTE + offset_ms[order] * 1_000_000)
        minute_parts.append(minute[order])
        side_parts.append(buy[order])
        size_parts.append(size[order])
    minute_all = np.concatenate(minute_parts)
    keep = minute_all < n
    m = minute_all[keep]
    buy_all = np.concatenate(side_parts)[keep]
    trades = StreamData(
        "token_cex_trades",
        "tslax_usdt_binance_trades.parquet",
        "Trade",
        {"venue": p.cex_venue, "instrument": p.cex_instrument},
        minutes_ns[0] + np.concatenate(ts_parts)[keep],
        {
            "price": np.where(buy_all, ask[m], bid[m]),
            "size": np.concatenate(size_parts)[keep],
            "aggressor": [Side.BUY if x else Side.SELL for x in buy_all.tolist()],
        },
        {"description": "public trades on the token's book; price = the minute's ask (buy) or bid (sell)"},
    )
    return quotes, trades


def _pool(
    spec: SampleSpec, start_ns: int, n: int, shut_full: BoolArray, stock: FloatArray, premium: FloatArray
) -> tuple[StreamData, StreamData]:
    """Uniswap v3 pool states and swaps: each swap moves the pool exactly (SwapMath) to its target.

    Swaps arrive per block (12 s) with a probability set by the session (and high during a
    spike's arbitrage); each targets fair value x premium x a swap-noise factor. The sqrt price is
    the exact floor of the target price's square root in Q64.96; amounts come from
    `compute_swap_step` with the pool's single full-range liquidity, fees included.
    """
    p = spec.params
    d0, d1 = p.token0_decimals, p.token1_decimals
    per_min = 60 // p.block_time_s
    blocks_per_day = MINUTES_PER_BLOCK * per_min
    prob = np.where(shut_full, p.swaps_per_min_shut, p.swaps_per_min) / per_min
    minutes = np.arange(len(shut_full))
    forced = np.zeros(len(shut_full), dtype=np.bool_)
    for s in spec.spikes:
        if s.venue != "dex":
            continue
        m = (s.ts - start_ns) // NS_PER_MINUTE
        if m >= len(shut_full):
            continue
        window = (minutes >= m) & (minutes < m + 6 * s.half_life_min)
        prob = np.where(window, p.swaps_per_min_spike / per_min, prob)
        forced[m] = True
    sqrt_open = price_to_sqrt_price_x96(f"{spec.bars[1].open:.6f}", d0, d1)
    # full range: y = L * sqrt(P), so L = depth (USDC base units) * 2^96 / sqrtPriceX96 at the first open
    liquidity = p.pool_depth_usdc * 10**d1 * (1 << 96) // sqrt_open

    def target_sqrt(minute: int, noise: float) -> int:
        price = stock[minute] * math.exp(premium[minute] + noise)
        return price_to_sqrt_price_x96(f"{price:.6f}", d0, d1)

    sqrt_price = target_sqrt(0, 0.0)
    ts_s = [start_ns]
    blocks = [p.first_block]
    sqrts = [sqrt_price]
    ticks = [get_tick_at_sqrt_ratio(sqrt_price)]
    t_ts: list[int] = []
    t_price: list[float] = []
    t_size: list[float] = []
    t_side: list[Side] = []
    huge = 1 << 200  # exact-input amount large enough that the price limit (the target) binds
    for b in range(len(shut_full) // MINUTES_PER_BLOCK):
        g = _rng(p.seed, "pool", b)
        u = g.random(blocks_per_day)
        eps = g.standard_normal(blocks_per_day) * p.dex_swap_noise_bps * 1e-4
        base = b * blocks_per_day
        swaps = np.flatnonzero(
            u < np.repeat(prob[b * MINUTES_PER_BLOCK : (b + 1) * MINUTES_PER_BLOCK], per_min)
        )
        spike_blocks = np.flatnonzero(
            np.repeat(forced[b * MINUTES_PER_BLOCK : (b + 1) * MINUTES_PER_BLOCK], per_min)
        )
        spike_set = set(spike_blocks[spike_blocks % per_min == 0].tolist())  # first block of the minute
        for j in np.union1d(swaps, sorted(spike_set)).astype(np.int64).tolist():
            block = base + j
            minute = block // per_min
            if minute >= n:
                break
            noise = 0.0 if j in spike_set else float(eps[j])
            target = target_sqrt(minute, noise)
            if target == sqrt_price:
                continue
            step = compute_swap_step(sqrt_price, target, liquidity, huge, p.pool_fee_pips)
            paid = step.amount_in + step.fee_amount
            ts = start_ns + block * p.block_time_s * NS_PER_SECOND
            if target < sqrt_price:  # token0 (TSLAx) in: the trader sells TSLAx for USDC
                size, usdc, side = paid, step.amount_out, Side.SELL
            else:  # USDC in: the trader buys TSLAx
                size, usdc, side = step.amount_out, paid, Side.BUY
            sqrt_price = step.sqrt_ratio_next_x96
            ts_s.append(ts)
            blocks.append(p.first_block + block)
            sqrts.append(sqrt_price)
            ticks.append(get_tick_at_sqrt_ratio(sqrt_price))
            t_ts.append(ts)
            t_price.append(float(Fraction(usdc * 10**d0, size * 10**d1)))
            t_size.append(float(Fraction(size, 10**d0)))
            t_side.append(side)
    pool_info = {
        "description": "Uniswap v3 pool states after each swap (and one at the start), exact integers",
        "token0": "TSLAx",
        "token0_decimals": d0,
        "token1": "USDC",
        "token1_decimals": d1,
        "fee_pips": p.pool_fee_pips,
        "tick_spacing": 60,
        "position": {
            "tick_lower": FULL_RANGE_TICKS[0],
            "tick_upper": FULL_RANGE_TICKS[1],
            "liquidity": str(liquidity),
        },
        "price": "USDC per TSLAx = sqrt_price_x96**2 / 2**192 * 10**(18 - 6)",
        "block_time_s": p.block_time_s,
    }
    states = StreamData(
        "token_pool",
        "tslax_usdc_uniswap_pool.parquet",
        "PoolState",
        {"venue": p.pool_venue, "pool": p.pool_id},
        np.asarray(ts_s, dtype=np.int64),
        {
            "block_number": np.asarray(blocks, dtype=np.int64),
            "sqrt_price_x96": sqrts,
            "tick": np.asarray(ticks, dtype=np.int64),
            "liquidity": [liquidity] * len(sqrts),
        },
        pool_info,
    )
    swaps_stream = StreamData(
        "token_pool_swaps",
        "tslax_usdc_uniswap_swaps.parquet",
        "Trade",
        {"venue": p.pool_venue, "instrument": p.pool_id},
        np.asarray(t_ts, dtype=np.int64),
        {"price": np.asarray(t_price), "size": np.asarray(t_size), "aggressor": t_side},
        {"description": "pool swaps: size in TSLAx (paid or received), price = USDC per TSLAx incl. fee"},
    )
    return states, swaps_stream


def _btc(spec: SampleSpec, minutes_ns: IntArray) -> StreamData:
    """BTC index per minute: Merton jump-diffusion, a martingale in price.

    Per minute (dt = 1/525600 year): log return = mu dt + sigma_d sqrt(dt) Z + sum of N jumps,
    N ~ Poisson(lambda dt), each jump ~ Normal(jump_mean, jump_sd). sigma_d^2 = vol^2 -
    lambda (jump_mean^2 + jump_sd^2), so the total variance matches the BTCUSD series' vol;
    mu = -sigma_d^2/2 - lambda (exp(jump_mean + jump_sd^2/2) - 1) removes the drift.
    """
    p = spec.params
    n = len(minutes_ns)
    dt = 1.0 / MINUTES_PER_YEAR
    lam = p.btc_jumps_per_year
    jump_var = p.btc_jump_mean**2 + p.btc_jump_sd**2
    sigma_d = math.sqrt(spec.btc_annual_vol**2 - lam * jump_var)
    mu = -0.5 * sigma_d**2 - lam * (math.exp(p.btc_jump_mean + 0.5 * p.btc_jump_sd**2) - 1.0)

    def draw(g: np.random.Generator) -> FloatArray:
        z = g.standard_normal(MINUTES_PER_BLOCK)
        k = g.poisson(lam * dt, MINUTES_PER_BLOCK)
        zj = g.standard_normal(MINUTES_PER_BLOCK)
        jumps = k * p.btc_jump_mean + np.sqrt(k) * p.btc_jump_sd * zj
        step: FloatArray = mu * dt + sigma_d * math.sqrt(dt) * z + jumps
        return step

    steps = _per_block(p.seed, "btc", n, draw)
    steps[0] = 0.0  # the first minute prints the start price
    price = np.round(spec.btc_start_price * np.exp(np.cumsum(steps)), 2)
    return StreamData(
        "btc_index",
        "btc_usd_index.parquet",
        "OraclePrice",
        {"source": p.btc_source, "instrument": p.btc_instrument},
        minutes_ns,
        {"price": price, "publish_ts": minutes_ns},
        {
            "description": "BTC/USD index for the options pool: Merton jump-diffusion, every minute 24/7",
            "annual_vol": spec.btc_annual_vol,
        },
    )


def _market_status(spec: SampleSpec, cal: MarketCalendar, start_ns: int, end_ns: int) -> StreamData:
    """Session changes of the exchange from the market calendar."""
    market, ts, columns = market_status_columns(cal.market_status_events(start_ns, end_ns))
    return StreamData(
        "market_status",
        "xnys_market_status.parquet",
        "MarketStatus",
        {"market": market},
        ts,
        columns,
        {"description": "US equity sessions (core.calendar.MarketCalendar)"},
    )


# --------------------------------------------------------------------------------------------
# Statistics of the generated model (the tests recompute them independently from the files)


def statistics(gen: Generated) -> dict[str, Any]:
    """Weekend tracking error, gap closing share, largest premium, weekend/weekday volume, BTC vol.

    Definitions (also in docs/data.md), on a one-minute grid, token prices forward-filled:
    - weekend tracking error: mean over shut minutes of |token / frozen oracle price - 1|;
    - a gap (one shut span, one venue) closes at the reopening if the median |token / broker mid - 1|
      over minutes [open + 5, open + 35) is below 50 bps (the pool fee band is 30 bps);
    - max premium: largest token / reference - 1 (reference: broker mid, or the frozen oracle price);
    - weekend volume ratio: traded size per shut hour / traded size per other hour.
    """
    s = gen.streams
    start, n = gen.start_ns, len(gen.stock)
    grid = start + np.arange(n, dtype=np.int64) * NS_PER_MINUTE
    shut = np.isin(gen.codes, [_CODE[x] for x in _SHUT])

    def ffill(ts: IntArray, values: FloatArray) -> FloatArray:
        i = np.searchsorted(ts, grid, side="right") - 1
        out = np.where(i >= 0, values[np.maximum(i, 0)], np.nan)
        return out

    q = s["stock_quotes"]
    broker_mid = ffill(q.ts, (q.columns["bid"] + q.columns["ask"]) / 2)
    o = s["stock_oracle"]
    oracle = ffill(o.ts, np.asarray(o.columns["price"]))
    c = s["token_cex_quotes"]
    cex = ffill(c.ts, (c.columns["bid"] + c.columns["ask"]) / 2)
    ps = s["token_pool"]
    d0, d1 = gen.params.token0_decimals, gen.params.token1_decimals
    pool_px = np.array([float(sqrt_price_x96_to_price(x, d0, d1)) for x in ps.columns["sqrt_price_x96"]])
    dex = ffill(ps.ts, pool_px)
    reference = np.where(shut, oracle, broker_mid)
    out: dict[str, Any] = {}
    codes = gen.codes
    regular = codes == _CODE[Session.REGULAR]
    starts = np.flatnonzero(regular & ~np.concatenate(([False], regular[:-1])))
    reopen = [
        m for m in starts.tolist() if m > 0 and shut[:m].any() and _after_shut(shut, codes, m) and m + 35 < n
    ]
    for venue, token in (("cex", cex), ("dex", dex)):
        te = np.abs(token[shut] / oracle[shut] - 1.0)
        closes = [
            float(np.median(np.abs(token[m + 5 : m + 35] / broker_mid[m + 5 : m + 35] - 1.0)))
            < GAP_CLOSED_BPS * 1e-4
            for m in reopen
        ]
        premium = token / reference - 1.0
        out[venue] = {
            "weekend_tracking_error_bps": round(float(np.nanmean(te)) * 1e4, 2),
            "gaps": len(closes),
            "gaps_closed": int(sum(closes)),
            "max_premium": round(float(np.nanmax(premium)), 4),
            "min_premium": round(float(np.nanmin(premium)), 4),
        }
    for name, key in (("cex", "token_cex_trades"), ("dex", "token_pool_swaps")):
        t = s[key]
        minute = (t.ts - start) // NS_PER_MINUTE
        in_shut = shut[minute]
        size = np.asarray(t.columns["size"])
        per_hour_shut = size[in_shut].sum() / (shut.sum() / 60)
        per_hour_open = size[~in_shut].sum() / ((~shut).sum() / 60)
        out[name]["weekend_volume_ratio"] = round(float(per_hour_shut / per_hour_open), 3)
    total = out["cex"]["gaps"] + out["dex"]["gaps"]
    closed = out["cex"]["gaps_closed"] + out["dex"]["gaps_closed"]
    out["gap_close_share"] = round(closed / total, 4) if total else None
    btc = np.asarray(s["btc_index"].columns["price"])
    out["btc_realised_vol"] = round(
        float(np.std(np.diff(np.log(btc)), ddof=1) * math.sqrt(MINUTES_PER_YEAR)), 4
    )
    return out


def _after_shut(shut: BoolArray, codes: npt.NDArray[np.int8], m: int) -> bool:
    """True if the regular open at minute m is the first since a shut span (a Monday-like open)."""
    last_shut = int(np.flatnonzero(shut[:m])[-1])
    return not bool((codes[last_shut:m] == _CODE[Session.REGULAR]).any())


# --------------------------------------------------------------------------------------------
# Writing


def write_dataset(out: Path, spec: SampleSpec, gen: Generated) -> dict[str, Any]:
    """Write every stream as Parquet and the manifest (with the spec and the statistics)."""
    p = spec.params
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for sd in gen.streams.values():
        write_parquet(out / sd.file, sd.event, sd.constants, sd.ts, sd.columns)
        entries.append(
            {"name": sd.name, "file": sd.file, "event": sd.event, **sd.constants, "info": _plain(sd.info)}
        )
    stats = statistics(gen)
    generator = spec.to_dict()
    generator["statistics"] = stats
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": SCHEMA_VERSION,
        "description": (
            f"Perpetua sample dataset: real daily prices ({p.source_ticker} "
            f"{spec.bars[1].source_date}..{spec.bars[-2].source_date}, unadjusted) refined to minutes and "
            f"placed on the {p.exchange} sessions of {p.start}..{p.end} as a stand-in for "
            f"{p.stock_instrument}; the token on an exchange book and a Uniswap v3 pool from a "
            "premium/depeg model; a Chainlink-like oracle frozen while the market is shut; a BTC "
            "jump-diffusion; session changes. Synthetic except the daily bars: see docs/data.md."
        ),
        "streams": entries,
        "generator": generator,
    }
    text = yaml.safe_dump(manifest, sort_keys=False, width=110, default_flow_style=None)
    (out / MANIFEST_NAME).write_text(text, encoding="utf-8")
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: generate the sample dataset into --out."""
    parser = argparse.ArgumentParser(
        prog="python -m backtest.sample_data", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, default=Path("data/sample"), help="output directory")
    parser.add_argument(
        "--stocks-csv", type=Path, help="bokeh_sampledata's _data/stocks.csv.gz (default: installed)"
    )
    parser.add_argument("--btc-csv", type=Path, help="backtesting.py's test/BTCUSD.csv (default: installed)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    args = parser.parse_args(argv)
    sources = read_sources(args.stocks_csv, args.btc_csv)
    spec = build_spec(sources, SampleParams(seed=args.seed))
    gen = generate(spec)
    stats = write_dataset(args.out, spec, gen)
    total = sum(f.stat().st_size for f in args.out.iterdir() if f.is_file())
    print(yaml.safe_dump(stats, sort_keys=False), end="")
    print(f"wrote {len(gen.streams)} streams to {args.out} ({total / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
