"""Performance metrics of a backtest, computed from a `BacktestResult` alone.

Definitions (units in brackets; "year" is 365 days of 24 hours, because tokenized stocks, their
AMM pools and the crypto venues trade around the clock):

- **Total return** [fraction]: `final_equity / initial_equity - 1`; NaN when initial equity <= 0.
- **Annualised return** [fraction per year]: CAGR over the simulated span,
  `(final / initial) ** (1 / years) - 1` with `years = (end_ns - start_ns) / NS_PER_YEAR`. NaN for
  a zero span, non-positive initial equity or negative final equity; -1 when final equity is 0;
  +inf when it overflows a float (a large gain over a short span).
- **Return period**: the equity curve is resampled to a fixed period before Sharpe and Sortino
  (raw samples are irregular: every `sample_interval_ns` and after every fill). With
  `periods_per_year` given, the period is `NS_PER_YEAR / periods_per_year`; otherwise it is daily
  when the span holds at least `MIN_RETURNS` whole days, else hourly when it holds that many
  hours, else minutely. The grid starts at the first equity sample and keeps whole periods only;
  the value at a grid point is the last sample at or before it (previous-value hold).
  The annualisation factor is `periods_per_year = NS_PER_YEAR / period_ns` (365, 8,760, 525,600).
- **Sharpe** [1/sqrt(year)]: `mean(excess) / std(excess, ddof=1) * sqrt(periods_per_year)`, where
  `excess = r - rf_p` and `rf_p = (1 + risk_free) ** (1 / periods_per_year) - 1` is the per-period
  rate of the annual `risk_free`. **Sortino**: the same mean over the target downside deviation
  `sqrt(mean(min(excess, 0) ** 2))` (all periods in the mean, Sortino & Price). Degenerate cases:
  fewer than 2 returns, or any period starting at equity <= 0 (a return is undefined there), give
  NaN; a zero denominator (flat equity; no losing period for Sortino) gives 0.0 when the mean
  excess is also 0 (nothing happened) and NaN otherwise (the ratio is unbounded).
- **Max drawdown** [fraction]: `max(1 - equity / running_peak)` over the raw samples (not the
  resampled grid, so an intra-period dip counts); samples with a running peak <= 0 contribute 0.
  Its **duration** [ns] runs from the peak (the last sample at the high-water mark before the
  trough) to the first later sample back at or above that peak, or to the end of the simulation
  when equity never recovered.
- **Turnover** [1/span]: traded notional in the valuation asset divided by the time-weighted
  average equity (each sample holds until the next). A fill's notional is `fill.notional` when set
  (swaps), else `quantity * price * contract_size`, in the instrument's settlement asset (taken
  from the final portfolio's positions; the valuation asset when unknown). Notional in other
  assets is reported per asset in `traded_notional` but left out of turnover (the result carries
  no conversion prices).
- **Fees** [native units per asset]: `result.fees` as is; `fees_total` is their sum when every
  non-zero fee is in the valuation asset, else None. **Gas** and **funding** [valuation asset]:
  copied from the result (funding positive = paid).
- **Trades**: the number of fills. **Win rate** [fraction]: winning round trips / closed round
  trips. Fills are replayed per `(venue, instrument)` with the average-cost method (independently
  of `core.portfolio`): a closing fill realizes `closed * (price - average_price) * sign(position)
  * contract_size`. A round trip starts when the position leaves zero and ends when it returns to
  zero (a flip through zero ends one and starts the next); its PnL is the sum of its closing fills'
  realized PnL, gross of fees (fees may be in another asset). It wins when that PnL is > 0
  (break-even counts as not winning); trips still open at the end are not counted.
- **PnL per venue / strategy** [valuation asset]: `result.venue_pnl` / `result.strategy_pnl` when
  non-empty (`*_pnl_source == "result"`). Otherwise recomputed from the fills
  (`"fills"`): realized PnL of closing fills settled in the valuation asset, minus fees paid in the
  valuation asset; gas and funding are not attributed (the result has no per-fill breakdown). A
  fill's strategy is `result.strategy_of_order[client_order_id]`, else `UNATTRIBUTED`.
- **Exposure** [ns, fraction]: time within `[start_ns, end_ns]` during which any `(venue,
  instrument)` had a non-zero net position reconstructed from the fills, and its share of the span.
  As in `core.portfolio`, a spot position is the net quantity traded, so selling deposited tokens
  counts as a (short) exposure.

`to_dict()` is JSON-safe: Decimals become strings, NaN and infinities become None.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from decimal import Decimal, localcontext
from typing import Any

import numpy as np
import numpy.typing as npt

from backtest.result import BacktestResult, Series
from core.enums import Side
from core.events import Fill
from core.instruments import NS_PER_YEAR

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Key = tuple[str, str]
"""`(venue, instrument)`."""

NS_PER_SECOND = 1_000_000_000
NS_PER_MINUTE = 60 * NS_PER_SECOND
NS_PER_HOUR = 60 * NS_PER_MINUTE
NS_PER_DAY = 24 * NS_PER_HOUR

MIN_RETURNS = 30
"""Fewest whole periods for the automatic return period to pick daily (else hourly, else minutely)."""

UNATTRIBUTED = "unattributed"
"""Strategy name of fills whose client order id is missing from `result.strategy_of_order`."""

_DEGENERATE = 1e-12
# Below this a standard deviation is rounding noise (returns that are constant up to float error).

_ONE = Decimal(1)
_ZERO = Decimal(0)
_PREC = 60  # Decimal digits for the fill replay, as in core.portfolio: sums of 18-decimal amounts stay exact.


# ------------------------------------------------------------------------------------ formatting


def format_duration(ns: int) -> str:
    """`ns` nanoseconds as e.g. `"2d 3h 4m 5s"` (zero units dropped, fractional seconds kept)."""
    if ns <= 0:
        return "0s"
    days, rest = divmod(ns, NS_PER_DAY)
    hours, rest = divmod(rest, NS_PER_HOUR)
    minutes, rest = divmod(rest, NS_PER_MINUTE)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m")) if v]
    if rest:
        seconds = rest / NS_PER_SECOND
        parts.append(f"{seconds:.9f}".rstrip("0").rstrip(".") + "s")
    return " ".join(parts)


def _json_safe(value: Any) -> Any:
    """Decimals -> str, non-finite floats -> None, containers recursively; JSON cannot carry either."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


# -------------------------------------------------------------------------------- equity curves


def _sorted_curve(equity: Series) -> tuple[IntArray, FloatArray]:
    """Samples in time order (stable, so of equal timestamps the last recorded stays last)."""
    ts = np.asarray(equity.ts, dtype=np.int64)
    values = np.asarray(equity.values, dtype=np.float64)
    if ts.shape != values.shape or ts.ndim != 1:
        raise ValueError(
            f"equity ts and values must be 1-d of equal length, got {ts.shape} and {values.shape}"
        )
    if ts.size > 1 and np.any(np.diff(ts) < 0):
        order = np.argsort(ts, kind="stable")
        ts, values = ts[order], values[order]
    return ts, values


def choose_period_ns(span_ns: int) -> int:
    """Return period (ns): the longest of a day, an hour, a minute with `MIN_RETURNS` in `span_ns`."""
    for period in (NS_PER_DAY, NS_PER_HOUR):
        if span_ns // period >= MIN_RETURNS:
            return period
    return NS_PER_MINUTE


def resample(equity: Series, period_ns: int) -> FloatArray:
    """Equity at `ts[0] + k * period_ns` for every whole period, by previous-value hold [valuation asset]."""
    if period_ns <= 0:
        raise ValueError(f"period_ns must be > 0, got {period_ns}")
    ts, values = _sorted_curve(equity)
    if ts.size == 0:
        return np.empty(0, dtype=np.float64)
    count = int((ts[-1] - ts[0]) // period_ns) + 1
    grid = ts[0] + np.arange(count, dtype=np.int64) * np.int64(period_ns)
    # side="right": a sample stamped exactly on a grid point is already known there.
    index = np.searchsorted(ts, grid, side="right") - 1
    held: FloatArray = values[index]
    return held


def period_returns(grid_values: FloatArray) -> FloatArray:
    """Simple returns `v[k] / v[k-1] - 1` [fraction]; NaN where `v[k-1] <= 0` (undefined)."""
    previous, current = grid_values[:-1], grid_values[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = np.where(previous > 0, current / previous - 1.0, np.nan)
    return returns.astype(np.float64)


def _per_period_rate(risk_free: float, periods_per_year: float) -> float:
    """Annual rate -> the compounding-equivalent rate of one period."""
    return float((1.0 + risk_free) ** (1.0 / periods_per_year) - 1.0)


def _ratio(mean: float, denominator: float) -> float:
    """`mean / denominator` with the degenerate cases of the module docstring."""
    if not (math.isfinite(mean) and math.isfinite(denominator)):
        return math.nan
    if denominator <= _DEGENERATE:
        return 0.0 if abs(mean) <= _DEGENERATE else math.nan
    return mean / denominator


def sharpe_ratio(returns: FloatArray, periods_per_year: float, risk_free: float = 0.0) -> float:
    """Annualised Sharpe ratio of per-period `returns` (see the module docstring)."""
    if returns.size < 2 or np.any(np.isnan(returns)):
        return math.nan
    excess = returns - _per_period_rate(risk_free, periods_per_year)
    return _ratio(float(np.mean(excess)), float(np.std(excess, ddof=1))) * math.sqrt(periods_per_year)


def sortino_ratio(returns: FloatArray, periods_per_year: float, risk_free: float = 0.0) -> float:
    """Annualised Sortino ratio of per-period `returns`, target = the risk-free rate."""
    if returns.size < 2 or np.any(np.isnan(returns)):
        return math.nan
    excess = returns - _per_period_rate(risk_free, periods_per_year)
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    return _ratio(float(np.mean(excess)), downside) * math.sqrt(periods_per_year)


def drawdown_curve(equity: Series) -> Series:
    """Drawdown below the running peak at every sample [fraction, >= 0]; 0 where the peak is <= 0."""
    ts, values = _sorted_curve(equity)
    peak = np.maximum.accumulate(values) if values.size else values
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, 1.0 - values / peak, 0.0)
    return Series(ts=ts, values=dd.astype(np.float64))


@dataclass(frozen=True, slots=True)
class Drawdown:
    """The deepest drawdown: depth [fraction], its peak, trough and recovery times [ns], duration [ns]."""

    depth: float
    peak_ns: int | None
    trough_ns: int | None
    recovery_ns: int | None
    duration_ns: int


def max_drawdown(equity: Series, end_ns: int | None = None) -> Drawdown:
    """Deepest drawdown of `equity`; an unrecovered one lasts until `max(end_ns, last sample)`."""
    dd = drawdown_curve(equity)
    ts, values = _sorted_curve(equity)
    if ts.size == 0 or not np.any(dd.values > 0):
        return Drawdown(0.0, None, None, None, 0)
    trough = int(np.argmax(dd.values))  # first of equal depths
    peak_value = float(np.maximum.accumulate(values)[trough])
    # The peak: the last sample at the high-water mark before the trough.
    peak = int(np.flatnonzero(values[: trough + 1] >= peak_value)[-1])
    later = np.flatnonzero(values[trough + 1 :] >= peak_value)
    if later.size:
        recovery_ns: int | None = int(ts[trough + 1 + later[0]])
        until = int(ts[trough + 1 + later[0]])
    else:
        recovery_ns = None
        until = max(int(ts[-1]), end_ns if end_ns is not None else int(ts[-1]))
    return Drawdown(
        float(dd.values[trough]), int(ts[peak]), int(ts[trough]), recovery_ns, until - int(ts[peak])
    )


def time_weighted_mean(equity: Series) -> float:
    """Mean of the step function through the samples over `[ts[0], ts[-1]]` [valuation asset].

    NaN for no samples; the plain mean when all samples share one timestamp.
    """
    ts, values = _sorted_curve(equity)
    if ts.size == 0:
        return math.nan
    span = int(ts[-1] - ts[0])
    if span == 0:
        return float(np.mean(values))
    weights = np.diff(ts).astype(np.float64)
    return float(np.dot(values[:-1], weights) / span)


# ----------------------------------------------------------------------------------- fill replay


@dataclass(frozen=True, slots=True)
class ClosingFill:
    """A fill that reduced a position: quantity closed and the PnL it realized [settlement asset].

    `index` is the fill's position in the sequence given to `replay_fills`.
    """

    index: int
    fill: Fill
    closed_quantity: Decimal
    realized_pnl: Decimal


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """A position's life from leaving zero to returning to it; `pnl` [settlement asset], gross of fees."""

    venue: str
    instrument: str
    open_ns: int
    close_ns: int
    pnl: Decimal


@dataclass(frozen=True, slots=True)
class FillReplay:
    """What average-cost replay of the fills yields.

    `positions[key]` is `(ts, signed quantity after each fill)` in fill order (contracts for
    derivatives); `closing` lists closing fills in fill order; `round_trips` closed trips in order
    of closing; `exposed` the `(from_ns, to_ns)` intervals during which any position was open
    (`to_ns` None: still open after the last fill).
    """

    closing: tuple[ClosingFill, ...]
    round_trips: tuple[RoundTrip, ...]
    positions: dict[Key, tuple[list[int], list[Decimal]]]
    exposed: tuple[tuple[int, int | None], ...]


def _ordered(fills: Sequence[Fill]) -> list[tuple[int, Fill]]:
    """`(index, fill)` by time; stable, so same-timestamp fills keep the order the engine applied them in."""
    return sorted(enumerate(fills), key=lambda item: item[1].ts)


def replay_fills(fills: Sequence[Fill], contract_sizes: Mapping[Key, Decimal] | None = None) -> FillReplay:
    """Replay `fills` per `(venue, instrument)` with the average-cost method (module docstring).

    `contract_sizes[key]` scales realized PnL of derivatives (default 1).
    """
    sizes = contract_sizes or {}
    quantity: dict[Key, Decimal] = {}
    cost: dict[Key, Decimal] = {}  # signed cost basis of the open quantity, price units
    trip_pnl: dict[Key, Decimal] = {}
    trip_open: dict[Key, int] = {}
    closing: list[ClosingFill] = []
    trips: list[RoundTrip] = []
    paths: dict[Key, tuple[list[int], list[Decimal]]] = {}
    open_keys: set[Key] = set()
    exposed: list[tuple[int, int | None]] = []
    since: int | None = None
    with localcontext() as ctx:
        ctx.prec = _PREC
        for index, fill in _ordered(fills):
            key = (fill.venue, fill.instrument)
            q, c = quantity.get(key, _ZERO), cost.get(key, _ZERO)
            sign = 1 if fill.side is Side.BUY else -1
            remaining = fill.quantity
            if q != 0 and (q > 0) != (sign > 0):
                closed = min(remaining, abs(q))
                direction = 1 if q > 0 else -1
                # Pro-rata share of the basis; a full close releases all of it, so trips are exact.
                released = c if closed == abs(q) else c * closed / abs(q)
                realized = (direction * closed * fill.price - released) * sizes.get(key, _ONE)
                q -= direction * closed
                c -= released
                remaining -= closed
                closing.append(ClosingFill(index, fill, closed, realized))
                trip_pnl[key] = trip_pnl.get(key, _ZERO) + realized
                if q == 0:
                    trips.append(RoundTrip(key[0], key[1], trip_open[key], fill.ts, trip_pnl.pop(key)))
            if remaining > 0:
                if q == 0:
                    trip_open[key] = fill.ts
                q += sign * remaining
                c += sign * remaining * fill.price
            quantity[key], cost[key] = q, c
            ts_list, q_list = paths.setdefault(key, ([], []))
            ts_list.append(fill.ts)
            q_list.append(q)
            # Exposure: the union of open positions, tracked while the fills are in time order.
            if q != 0:
                open_keys.add(key)
                if since is None:
                    since = fill.ts
            else:
                open_keys.discard(key)
                if not open_keys and since is not None:
                    exposed.append((since, fill.ts))
                    since = None
    if since is not None:
        exposed.append((since, None))
    return FillReplay(tuple(closing), tuple(trips), paths, tuple(exposed))


def exposure_ns(replay: FillReplay, start_ns: int, end_ns: int) -> int:
    """Nanoseconds within `[start_ns, end_ns]` during which any replayed position was non-zero."""
    total = 0
    for since, until in replay.exposed:
        # A position still open after the last fill stays open to the end.
        total += _overlap(since, end_ns if until is None else until, start_ns, end_ns)
    return total


def _overlap(a: int, b: int, start_ns: int, end_ns: int) -> int:
    return max(0, min(b, end_ns) - max(a, start_ns))


# --------------------------------------------------------------------------------------- metrics


@dataclass(frozen=True, slots=True)
class Metrics:
    """Performance of one backtest; see the module docstring for every definition.

    Money is `Decimal` in the valuation asset unless stated; ratios are floats (NaN = undefined).
    """

    valuation_asset: str
    start_ns: int
    end_ns: int
    span_ns: int
    years: float
    """Span in 365-day years."""
    initial_equity: Decimal
    final_equity: Decimal
    pnl: Decimal
    """`final_equity - initial_equity`."""
    total_return: float
    annualised_return: float
    return_period_ns: int
    return_period: str
    periods_per_year: float
    return_count: int
    """Number of whole-period returns behind Sharpe and Sortino."""
    risk_free: float
    """Annual risk-free rate [fraction per year]."""
    annualised_volatility: float
    """`std(returns, ddof=1) * sqrt(periods_per_year)` [fraction per sqrt(year)]."""
    sharpe: float
    sortino: float
    max_drawdown: float
    max_drawdown_peak_ns: int | None
    max_drawdown_trough_ns: int | None
    max_drawdown_recovery_ns: int | None
    """None when equity had not recovered by the end."""
    max_drawdown_duration_ns: int
    max_drawdown_duration: str
    average_equity: float
    """Time-weighted average of the equity curve [valuation asset]."""
    traded_notional: dict[str, Decimal]
    """Sum of fill notionals per settlement asset [units of that asset]."""
    turnover: float
    fees: dict[str, Decimal]
    fees_total: Decimal | None
    gas: Decimal
    funding: Decimal
    orders: int
    trades: int
    rejections: int
    round_trips: int
    winning_round_trips: int
    win_rate: float
    venue_pnl: dict[str, Decimal]
    venue_pnl_source: str
    """"result" or "fills"."""
    strategy_pnl: dict[str, Decimal]
    strategy_pnl_source: str
    exposure_ns: int
    exposure: float
    """Share of the span with any open position [fraction]."""

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-safe: Decimals as strings, NaN/inf as None."""
        return {f.name: _json_safe(getattr(self, f.name)) for f in fields(self)}

    def table_rows(self) -> list[tuple[str, str]]:
        """`(label, formatted value)` pairs for a terminal or HTML metrics table."""
        a = self.valuation_asset
        rows = [
            ("Period", f"{format_duration(self.span_ns)} ({self.years:.4f} y)"),
            ("Initial equity", f"{_money(self.initial_equity)} {a}"),
            ("Final equity", f"{_money(self.final_equity)} {a}"),
            ("PnL", f"{_money(self.pnl)} {a}"),
            ("Total return", _pct(self.total_return)),
            ("Annualised return (CAGR)", _pct(self.annualised_return)),
            ("Annualised volatility", _pct(self.annualised_volatility)),
            (f"Sharpe ({self.return_period} returns, n={self.return_count})", _num(self.sharpe)),
            ("Sortino", _num(self.sortino)),
            ("Max drawdown", _pct(self.max_drawdown)),
            ("Max drawdown duration", self.max_drawdown_duration),
            ("Turnover", _num(self.turnover) + "x"),
            ("Fees", _assets(self.fees) or "0"),
            (
                "Fees total",
                "n/a (several assets)" if self.fees_total is None else f"{_money(self.fees_total)} {a}",
            ),
            ("Gas", f"{_money(self.gas)} {a}"),
            ("Funding (paid)", f"{_money(self.funding)} {a}"),
            ("Orders / trades / rejections", f"{self.orders} / {self.trades} / {self.rejections}"),
            (
                "Win rate",
                f"{_pct(self.win_rate)} ({self.winning_round_trips}/{self.round_trips} round trips)",
            ),
            ("Exposure", f"{_pct(self.exposure)} ({format_duration(self.exposure_ns)})"),
        ]
        rows += [(f"PnL venue {k}", f"{_money(v)} {a}") for k, v in self.venue_pnl.items()]
        rows += [(f"PnL strategy {k}", f"{_money(v)} {a}") for k, v in self.strategy_pnl.items()]
        return rows


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x * 100:.2f}%"


def _num(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.3f}"


def _money(x: Decimal) -> str:
    return f"{x:,.2f}"


def _assets(amounts: Mapping[str, Decimal]) -> str:
    return ", ".join(f"{_money(v)} {k}" for k, v in amounts.items())


def _total_return(initial: Decimal, final: Decimal) -> float:
    if initial <= 0:
        return math.nan
    return float(final / initial - 1)


def _cagr(initial: Decimal, final: Decimal, years: float) -> float:
    if initial <= 0 or years <= 0 or final < 0:
        return math.nan
    if final == 0:
        return -1.0
    exponent = math.log(float(final / initial)) / years
    # exp overflows floats beyond ~709: a huge gain over a tiny span is reported as +inf.
    return math.inf if exponent > 709.0 else math.expm1(exponent)


def _sum_by(items: Iterable[tuple[str, Decimal]]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for name, amount in items:
        out[name] = out.get(name, _ZERO) + amount
    return out


def compute_metrics(
    result: BacktestResult, periods_per_year: float | None = None, risk_free: float = 0.0
) -> Metrics:
    """All metrics of `result`; `periods_per_year` fixes the return period, `risk_free` is annual.

    Never raises on degenerate inputs (no samples, one sample, flat or zero equity, no fills):
    the affected ratios are NaN as documented above.
    """
    if periods_per_year is not None and not (periods_per_year > 0 and math.isfinite(periods_per_year)):
        raise ValueError(f"periods_per_year must be a positive number, got {periods_per_year}")
    asset = result.valuation_asset
    span_ns = max(0, result.end_ns - result.start_ns)
    years = span_ns / NS_PER_YEAR
    equity = result.equity
    ts, _ = _sorted_curve(equity)

    # Returns on a fixed grid (module docstring).
    curve_span = int(ts[-1] - ts[0]) if ts.size else 0
    if periods_per_year is None:
        period_ns = choose_period_ns(curve_span)
    else:
        period_ns = max(1, round(NS_PER_YEAR / periods_per_year))
    ppy = NS_PER_YEAR / period_ns
    returns = period_returns(resample(equity, period_ns)) if ts.size else np.empty(0, dtype=np.float64)
    volatility = (
        float(np.std(returns, ddof=1)) * math.sqrt(ppy)
        if returns.size >= 2 and not np.any(np.isnan(returns))
        else math.nan
    )
    drawdown = max_drawdown(equity, result.end_ns)

    # Fills: contract sizes and settlement assets come from the final portfolio's positions.
    positions = result.portfolio.positions
    sizes = {key: p.contract_size for key, p in positions.items()}
    # Stablecoins at par settle in the valuation asset for every money metric.
    par = {asset, *result.par_assets}
    settle = {key: asset if p.settlement_asset in par else p.settlement_asset for key, p in positions.items()}
    replay = replay_fills(result.fills, sizes)
    with localcontext() as ctx:
        ctx.prec = _PREC
        traded = _sum_by(
            (
                settle.get((f.venue, f.instrument), asset),
                f.notional
                if f.notional is not None
                else f.quantity * f.price * sizes.get((f.venue, f.instrument), _ONE),
            )
            for f in result.fills
        )
        nonzero_fee_assets = {k for k, v in result.fees.items() if v != 0}
        fees_total = sum(result.fees.values(), _ZERO) if nonzero_fee_assets <= par else None
        venue_pnl, venue_source = dict(result.venue_pnl), "result"
        strategy_pnl, strategy_source = dict(result.strategy_pnl), "result"
        if not venue_pnl or not strategy_pnl:
            by_fill = _fill_pnl(result, replay, settle)
            if not venue_pnl:
                venue_pnl, venue_source = _sum_by((f.venue, v) for f, v in by_fill), "fills"
            if not strategy_pnl:
                strategy_pnl = _sum_by(
                    (result.strategy_of_order.get(f.client_order_id, UNATTRIBUTED), v) for f, v in by_fill
                )
                strategy_source = "fills"

    average = time_weighted_mean(equity) if ts.size else float(result.initial_equity)
    turnover_notional = float(traded.get(asset, _ZERO))
    turnover = turnover_notional / average if average > 0 else (0.0 if turnover_notional == 0 else math.nan)
    wins = sum(1 for t in replay.round_trips if t.pnl > 0)
    trips = len(replay.round_trips)
    exposed = exposure_ns(replay, result.start_ns, result.end_ns)
    return Metrics(
        valuation_asset=asset,
        start_ns=result.start_ns,
        end_ns=result.end_ns,
        span_ns=span_ns,
        years=years,
        initial_equity=result.initial_equity,
        final_equity=result.final_equity,
        pnl=result.final_equity - result.initial_equity,
        total_return=_total_return(result.initial_equity, result.final_equity),
        annualised_return=_cagr(result.initial_equity, result.final_equity, years),
        return_period_ns=period_ns,
        return_period=format_duration(period_ns),
        periods_per_year=ppy,
        return_count=int(returns.size),
        risk_free=risk_free,
        annualised_volatility=volatility,
        sharpe=sharpe_ratio(returns, ppy, risk_free),
        sortino=sortino_ratio(returns, ppy, risk_free),
        max_drawdown=drawdown.depth,
        max_drawdown_peak_ns=drawdown.peak_ns,
        max_drawdown_trough_ns=drawdown.trough_ns,
        max_drawdown_recovery_ns=drawdown.recovery_ns,
        max_drawdown_duration_ns=drawdown.duration_ns,
        max_drawdown_duration=format_duration(drawdown.duration_ns),
        average_equity=average,
        traded_notional=traded,
        turnover=turnover,
        fees=dict(result.fees),
        fees_total=fees_total,
        gas=result.gas,
        funding=result.funding,
        orders=len(result.orders),
        trades=len(result.fills),
        rejections=len(result.rejections),
        round_trips=trips,
        winning_round_trips=wins,
        win_rate=wins / trips if trips else math.nan,
        venue_pnl=venue_pnl,
        venue_pnl_source=venue_source,
        strategy_pnl=strategy_pnl,
        strategy_pnl_source=strategy_source,
        exposure_ns=exposed,
        exposure=exposed / span_ns if span_ns else math.nan,
    )


def _fill_pnl(
    result: BacktestResult, replay: FillReplay, settle: Mapping[Key, str]
) -> list[tuple[Fill, Decimal]]:
    """Per fill: realized PnL settled in the valuation asset minus fees paid in it [valuation asset]."""
    asset = result.valuation_asset
    par = {asset, *result.par_assets}
    realized: dict[int, Decimal] = {}
    for c in replay.closing:
        if settle.get((c.fill.venue, c.fill.instrument), asset) == asset:
            realized[c.index] = c.realized_pnl
    out: list[tuple[Fill, Decimal]] = []
    for index, fill in enumerate(result.fills):
        fee = fill.fee if fill.fee_asset in par else _ZERO
        out.append((fill, realized.get(index, _ZERO) - fee))
    return out
