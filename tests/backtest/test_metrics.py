"""Backtest metrics against values worked out by hand (arithmetic in the comments) and against an
independent second computation (plain loops, and pandas where installed) on a random curve."""

from __future__ import annotations

import itertools
import json
import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import replace as dataclasses_replace
from decimal import Decimal

import numpy as np
import pytest

from backtest.metrics import (
    NS_PER_DAY,
    NS_PER_HOUR,
    NS_PER_MINUTE,
    UNATTRIBUTED,
    Metrics,
    choose_period_ns,
    compute_metrics,
    drawdown_curve,
    format_duration,
    max_drawdown,
    period_returns,
    replay_fills,
    resample,
    sharpe_ratio,
    sortino_ratio,
    time_weighted_mean,
)
from backtest.result import BacktestResult, Series
from core.enums import Side
from core.events import Fill
from core.instruments import NS_PER_YEAR, InstrumentKind
from core.portfolio import PortfolioSnapshot, Position

D = Decimal
H = NS_PER_HOUR
T0 = 1_750_000_000_000_000_000
BUY, SELL = Side.BUY, Side.SELL


def curve(ts: Sequence[int], values: Sequence[float]) -> Series:
    return Series(np.asarray(ts, dtype=np.int64), np.asarray(values, dtype=np.float64))


def make_result(
    ts: Sequence[int],
    values: Sequence[float],
    *,
    start_ns: int | None = None,
    end_ns: int | None = None,
    initial: Decimal | None = None,
    final: Decimal | None = None,
    fills: Sequence[Fill] = (),
    positions: dict[tuple[str, str], Position] | None = None,
    fees: dict[str, Decimal] | None = None,
    strategy_of_order: dict[str, str] | None = None,
    venue_pnl: dict[str, Decimal] | None = None,
    strategy_pnl: dict[str, Decimal] | None = None,
    valuation_asset: str = "USDC",
) -> BacktestResult:
    snapshot = PortfolioSnapshot(ts=0, balances={}, positions=positions or {}, fees={}, funding={})
    return BacktestResult(
        start_ns=ts[0] if start_ns is None else start_ns,
        end_ns=ts[-1] if end_ns is None else end_ns,
        valuation_asset=valuation_asset,
        events=0,
        orders=[],
        fills=list(fills),
        rejections=[],
        equity=curve(ts, values),
        initial_equity=D(str(values[0])) if initial is None else initial,
        final_equity=D(str(values[-1])) if final is None else final,
        portfolio=snapshot,
        fees=fees or {},
        strategy_of_order=strategy_of_order or {},
        venue_pnl=venue_pnl or {},
        strategy_pnl=strategy_pnl or {},
    )


def fill(
    ts: int,
    side: Side,
    qty: str,
    price: str,
    *,
    venue: str = "dex",
    instrument: str = "TSLAx/USDC",
    coid: str = "o",
    fee: str = "0",
    fee_asset: str = "USDC",
    notional: str | None = None,
) -> Fill:
    return Fill(
        ts,
        venue,
        instrument,
        coid,
        side,
        D(price),
        D(qty),
        D(fee),
        fee_asset,
        notional=None if notional is None else D(notional),
    )


# ------------------------------------------------------------------------- returns and CAGR


def test_total_and_annualised_return() -> None:
    # 100 -> 121 over exactly two 365-day years: total 21/100 = 0.21, CAGR sqrt(1.21) - 1 = 0.1.
    result = make_result([T0, T0 + 2 * NS_PER_YEAR], [100.0, 121.0])
    m = compute_metrics(result)
    assert m.total_return == pytest.approx(0.21, abs=1e-15)
    assert m.annualised_return == pytest.approx(0.1, abs=1e-12)
    assert m.years == 2.0
    assert m.pnl == D(21)


def test_annualised_return_edges() -> None:
    # Zero span: no year to annualise over -> NaN; final equity 0 -> -100% a year; half a year at
    # +10%: 1.1 ** 2 - 1 = 0.21.
    assert math.isnan(compute_metrics(make_result([T0, T0], [100.0, 110.0])).annualised_return)
    wiped = compute_metrics(make_result([T0, T0 + NS_PER_YEAR], [100.0, 0.0]))
    assert wiped.annualised_return == -1.0
    assert wiped.total_return == -1.0
    half = compute_metrics(make_result([T0, T0 + NS_PER_YEAR // 2], [100.0, 110.0]))
    assert half.annualised_return == pytest.approx(0.21, abs=1e-12)
    # +100% in one second: 2 ** 31,536,000 - 1 overflows floats -> +inf, None in JSON.
    rocket = compute_metrics(make_result([T0, T0 + 10**9], [1.0, 2.0]))
    assert rocket.annualised_return == math.inf
    assert rocket.to_dict()["annualised_return"] is None


def test_choose_period() -> None:
    # >= 30 whole days -> daily; else >= 30 whole hours -> hourly; else minutely.
    assert choose_period_ns(30 * NS_PER_DAY) == NS_PER_DAY
    assert choose_period_ns(30 * NS_PER_DAY - 1) == NS_PER_HOUR  # 29 whole days, 719 hours
    assert choose_period_ns(30 * H) == NS_PER_HOUR
    assert choose_period_ns(30 * H - 1) == NS_PER_MINUTE
    assert choose_period_ns(0) == NS_PER_MINUTE


def test_resample_holds_the_last_known_value() -> None:
    # Samples at 0, 0.5d, 1d, 2.7d; daily grid 0, 1d, 2d (2.7d is not a whole period past 2d).
    # 0 -> 100; 1d -> the sample stamped exactly 1d (105), not the 90 of 0.5d; 2d -> still 105.
    d = NS_PER_DAY
    equity = curve([T0, T0 + d // 2, T0 + d, T0 + 27 * d // 10], [100.0, 90.0, 105.0, 120.0])
    assert resample(equity, d).tolist() == [100.0, 105.0, 105.0]
    # Returns: 105/100 - 1 = 0.05, 105/105 - 1 = 0.
    assert period_returns(resample(equity, d)) == pytest.approx([0.05, 0.0])


def test_sharpe_and_sortino_by_hand() -> None:
    # Daily equity 100, 110, 99, 108.9, 108.9 -> returns 0.1, -0.1, 0.1, 0.
    # mean = 0.1 / 4 = 0.025; deviations 0.075, -0.125, 0.075, -0.025;
    # squares 0.005625 + 0.015625 + 0.005625 + 0.000625 = 0.0275; sample variance 0.0275 / 3.
    # Sharpe = 0.025 / sqrt(0.0275 / 3) * sqrt(365) = 0.261116 * 19.104973 = 4.98862.
    # Downside: min(r, 0) = 0, -0.1, 0, 0 -> mean square 0.01 / 4 = 0.0025 -> deviation 0.05.
    # Sortino = 0.025 / 0.05 * sqrt(365) = 9.552487.
    # Volatility = sqrt(0.0275 / 3) * sqrt(365) = 0.0957427 * 19.104973 = 1.829162.
    d = NS_PER_DAY
    result = make_result([T0 + k * d for k in range(5)], [100.0, 110.0, 99.0, 108.9, 108.9])
    m = compute_metrics(result, periods_per_year=365)
    assert m.return_period_ns == d
    assert m.return_period == "1d"
    assert m.return_count == 4
    assert m.sharpe == pytest.approx(0.025 / math.sqrt(0.0275 / 3) * math.sqrt(365), rel=1e-12)
    assert m.sharpe == pytest.approx(4.98862, abs=1e-5)
    assert m.sortino == pytest.approx(9.552487, abs=1e-6)
    assert m.annualised_volatility == pytest.approx(1.829162, abs=1e-6)
    # The automatic period on a 4-day span is hourly (96 whole hours): the held values give 96
    # returns, of which 3 are non-zero (+0.1, -0.1, +0.1): mean 0.1/96, same numerator sign.
    auto = compute_metrics(result)
    assert auto.return_period_ns == H
    assert auto.periods_per_year == 8760
    assert auto.return_count == 96


def test_sharpe_with_risk_free() -> None:
    # rf 5% a year -> per day (1.05 ** (1/365) - 1) = 0.000133681; excess = r - that; the
    # standard deviation is unchanged by a constant shift.
    returns = np.array([0.1, -0.1, 0.1, 0.0])
    rf_day = 1.05 ** (1 / 365) - 1
    assert rf_day == pytest.approx(0.000133681, abs=1e-9)
    expected = (0.025 - rf_day) / math.sqrt(0.0275 / 3) * math.sqrt(365)
    assert sharpe_ratio(returns, 365, 0.05) == pytest.approx(expected, rel=1e-12)
    # Downside with target rf_day: every period below it counts; here 0.0 and -0.1 are.
    downside = math.sqrt(((-0.1 - rf_day) ** 2 + (0.0 - rf_day) ** 2) / 4)
    assert sortino_ratio(returns, 365, 0.05) == pytest.approx(
        (0.025 - rf_day) / downside * math.sqrt(365), rel=1e-12
    )


def test_flat_equity() -> None:
    # Flat: every return 0, std 0, mean 0 -> Sharpe 0 and Sortino 0 (nothing happened), no drawdown.
    result = make_result([T0 + k * H for k in range(48)], [1000.0] * 48)
    m = compute_metrics(result)
    assert (m.sharpe, m.sortino, m.max_drawdown, m.annualised_volatility) == (0.0, 0.0, 0.0, 0.0)
    assert m.total_return == 0.0
    assert m.max_drawdown_duration_ns == 0
    assert m.max_drawdown_peak_ns is None
    # With a positive risk-free rate the excess is a negative constant over zero risk: unbounded -> NaN.
    assert math.isnan(compute_metrics(result, risk_free=0.05).sharpe)


def test_constant_growth_has_no_defined_sharpe() -> None:
    # 100, 110, 121, 133.1: returns all 0.1 up to float noise: std ~ 1e-17 -> NaN, not 1e16.
    returns = period_returns(np.array([100.0, 110.0, 121.0, 133.1]))
    assert math.isnan(sharpe_ratio(returns, 365))
    assert math.isnan(sortino_ratio(returns, 365))  # no losing period, positive mean


def test_single_sample() -> None:
    # One sample: no return at all -> Sharpe, Sortino, volatility NaN; drawdown 0; average = the sample.
    m = compute_metrics(make_result([T0], [500.0], end_ns=T0 + H))
    assert m.return_count == 0
    assert math.isnan(m.sharpe) and math.isnan(m.sortino) and math.isnan(m.annualised_volatility)
    assert m.max_drawdown == 0.0
    assert m.average_equity == 500.0
    json.dumps(m.to_dict(), allow_nan=False)


def test_empty_equity_curve() -> None:
    result = make_result([T0], [100.0], end_ns=T0 + H)
    result.equity = curve([], [])
    m = compute_metrics(result)
    # No samples: the average falls back to the initial equity; no drawdown; ratios undefined.
    assert m.average_equity == 100.0
    assert m.max_drawdown == 0.0
    assert math.isnan(m.sharpe)


def test_zero_equity() -> None:
    # 100 -> 0 -> 0 hourly: first return -1, the next starts at 0 (undefined) -> Sharpe NaN;
    # drawdown 1 - 0/100 = 100%, never recovered: lasts from the peak (t0) to end_ns (t0 + 5h).
    m = compute_metrics(make_result([T0, T0 + H, T0 + 2 * H], [100.0, 0.0, 0.0], end_ns=T0 + 5 * H))
    assert math.isnan(m.sharpe) and math.isnan(m.sortino)
    assert m.max_drawdown == 1.0
    assert m.max_drawdown_duration_ns == 5 * H
    assert m.max_drawdown_recovery_ns is None
    assert m.total_return == -1.0
    # Zero initial equity: returns undefined, turnover undefined only if something traded.
    zero = compute_metrics(make_result([T0, T0 + H], [0.0, 0.0]))
    assert math.isnan(zero.total_return) and math.isnan(zero.annualised_return)
    assert zero.turnover == 0.0
    assert zero.max_drawdown == 0.0  # peak 0: a fraction of nothing is not a drawdown


# --------------------------------------------------------------------------------- drawdown


def test_max_drawdown_and_duration() -> None:
    # Hourly 100, 120, 90, 110, 130, 117. Peaks 100, 120, 120, 120, 130, 130.
    # Drawdowns 0, 0, 1 - 90/120 = 0.25, 1 - 110/120 = 0.0833, 0, 1 - 117/130 = 0.1.
    # Max 0.25: peak at 1h, trough at 2h, back to >= 120 at 4h -> duration 3h.
    ts = [T0 + k * H for k in range(6)]
    equity = curve(ts, [100.0, 120.0, 90.0, 110.0, 130.0, 117.0])
    dd = max_drawdown(equity)
    assert dd.depth == pytest.approx(0.25)
    assert (dd.peak_ns, dd.trough_ns, dd.recovery_ns, dd.duration_ns) == (
        T0 + H,
        T0 + 2 * H,
        T0 + 4 * H,
        3 * H,
    )
    assert drawdown_curve(equity).values == pytest.approx([0, 0, 0.25, 1 / 12, 0, 0.1])
    m = compute_metrics(make_result(ts, [100.0, 120.0, 90.0, 110.0, 130.0, 117.0]))
    assert m.max_drawdown_duration == "3h"


def test_drawdown_peak_is_the_last_sample_at_the_high() -> None:
    # 100, 120, 120, 90, 120: the high is held at 1h and 2h; the fall starts at 2h. Back at 120
    # (equal counts as recovered) at 4h -> duration 2h.
    dd = max_drawdown(curve([T0 + k * H for k in range(5)], [100.0, 120.0, 120.0, 90.0, 120.0]))
    assert (dd.peak_ns, dd.recovery_ns, dd.duration_ns) == (T0 + 2 * H, T0 + 4 * H, 2 * H)


def test_unrecovered_drawdown_lasts_to_the_end() -> None:
    # 100, 80, 90 at 0, 1h, 2h; simulation ends at 10h: depth 0.2, duration 10h - 0 = 10h.
    dd = max_drawdown(curve([T0, T0 + H, T0 + 2 * H], [100.0, 80.0, 90.0]), end_ns=T0 + 10 * H)
    assert dd.depth == pytest.approx(0.2)
    assert dd.duration_ns == 10 * H
    assert format_duration(dd.duration_ns) == "10h"


# ------------------------------------------------------------------------------------ fills


PERP = Position("cex", "AAPL-PERP", InstrumentKind.STOCK_PERP, "USDC", contract_size=D("0.1"))


def book_fills() -> list[Fill]:
    """A dex spot history (times in hours) and a cex perp round trip; see the arithmetic below."""
    return [
        fill(T0 + 1 * H, BUY, "10", "100", coid="d1", fee="1"),
        fill(T0 + 2 * H, BUY, "10", "110", coid="d2", fee="1"),
        fill(T0 + 3 * H, SELL, "5", "120", coid="d3", fee="1"),
        fill(T0 + 4 * H, SELL, "15", "100", coid="d4", fee="1"),
        fill(T0 + 6 * H, SELL, "4", "50", coid="d5", fee="1"),
        fill(T0 + 7 * H, BUY, "6", "45", coid="d6", fee="1"),
        fill(
            T0 + 3 * H,
            BUY,
            "100",
            "200",
            venue="cex",
            instrument="AAPL-PERP",
            coid="c1",
            fee="0.5",
            fee_asset="USDT",
        ),
        fill(
            T0 + 5 * H,
            SELL,
            "100",
            "190",
            venue="cex",
            instrument="AAPL-PERP",
            coid="c2",
            fee="0.5",
            fee_asset="USDT",
        ),
    ]


def test_replay_realized_pnl_per_closing_fill() -> None:
    # dex: buy 10 @ 100, buy 10 @ 110 -> q 20, cost 2100 (average 105).
    # sell 5 @ 120: releases 2100 * 5/20 = 525, realizes 5 * 120 - 525 = +75; q 15, cost 1575.
    # sell 15 @ 100: releases 1575, realizes 1500 - 1575 = -75; flat -> round trip 1 PnL 0.
    # sell 4 @ 50: opens short, q -4, cost -200.
    # buy 6 @ 45: closes 4, releases -200, realizes -4 * 45 + 200 = +20 -> trip 2 PnL +20;
    #   the other 2 open a long at 45 (trip 3, still open).
    # cex (contract 0.1): buy 100 @ 200, sell 100 @ 190: (19000 - 20000) * 0.1 = -100 -> trip -100.
    replay = replay_fills(book_fills(), {("cex", "AAPL-PERP"): D("0.1")})
    assert [(c.fill.client_order_id, c.closed_quantity, c.realized_pnl) for c in replay.closing] == [
        ("d3", D(5), D(75)),  # 3h
        ("d4", D(15), D(-75)),  # 4h
        ("c2", D(100), D(-100)),  # 5h
        ("d6", D(4), D(20)),  # 7h
    ]
    assert [(t.venue, t.open_ns, t.close_ns, t.pnl) for t in replay.round_trips] == [
        ("dex", T0 + 1 * H, T0 + 4 * H, D(0)),
        ("cex", T0 + 3 * H, T0 + 5 * H, D(-100)),
        ("dex", T0 + 6 * H, T0 + 7 * H, D(20)),
    ]
    assert replay.positions[("dex", "TSLAx/USDC")][1] == [D(10), D(20), D(15), D(0), D(-4), D(2)]
    # Indexes point into the list as given (d4 is the 4th fill, c2 the 8th).
    assert [c.index for c in replay.closing] == [2, 3, 7, 5]


def test_fill_metrics_by_hand() -> None:
    fills = book_fills()
    result = make_result(
        [T0, T0 + H, T0 + 3 * H],
        [1000.0, 1200.0, 1100.0],
        end_ns=T0 + 10 * H,
        fills=fills,
        positions={("cex", "AAPL-PERP"): PERP},
        fees={"USDC": D(6), "USDT": D(1)},
        strategy_of_order={
            "d1": "arb",
            "d2": "arb",
            "d3": "arb",
            "d4": "arb",
            "d5": "arb",
            "c1": "mm",
            "c2": "mm",
        },
    )
    m = compute_metrics(result)
    assert m.trades == 8
    # Round trips -100 (cex), 0 (dex, break-even: not a win), +20 (dex): 1 win of 3.
    assert (m.round_trips, m.winning_round_trips) == (3, 1)
    assert m.win_rate == pytest.approx(1 / 3)
    # Notional: dex 1000 + 1100 + 600 + 1500 + 200 + 270 = 4670; cex 100*200*0.1 + 100*190*0.1 = 3900.
    assert m.traded_notional == {"USDC": D(8570)}
    # Time-weighted equity over 3h: (1000 * 1h + 1200 * 2h) / 3h = 1133.33; turnover 8570 / that.
    assert m.average_equity == pytest.approx(3400 / 3)
    assert m.turnover == pytest.approx(8570 / (3400 / 3))
    # Fees as given; two assets -> no total in USDC.
    assert m.fees == {"USDC": D(6), "USDT": D(1)}
    assert m.fees_total is None
    # Recomputed PnL, USDC: realized minus USDC fees (USDT fees cannot be converted):
    # dex 75 - 75 + 20 - 6 * 1 = 14; cex -100.
    assert m.venue_pnl == {"dex": D(14), "cex": D(-100)}
    assert m.venue_pnl_source == "fills"
    # arb: d1..d5 realize 75 - 75 = 0, fees 5 -> -5; d6 has no strategy: 20 - 1 = 19; mm: -100.
    assert m.strategy_pnl == {"arb": D(-5), UNATTRIBUTED: D(19), "mm": D(-100)}
    assert m.strategy_pnl_source == "fills"
    # Exposure: dex open [1h, 4h] and [6h, 10h) (the flip at 7h stays open); cex [3h, 5h].
    # Union [1h, 5h] + [6h, 10h] = 8h of the 10h span.
    assert m.exposure_ns == 8 * H
    assert m.exposure == pytest.approx(0.8)
    json.dumps(m.to_dict(), allow_nan=False)


def test_pnl_from_result_and_other_settlement_assets() -> None:
    # The result's own attribution is kept as is; fees in USDC only -> total 6.
    perp_usdt = Position("cex", "AAPL-PERP", InstrumentKind.STOCK_PERP, "USDT", contract_size=D("0.1"))
    result = make_result(
        [T0, T0 + 10 * H],
        [1000.0, 1000.0],
        fills=book_fills(),
        positions={("cex", "AAPL-PERP"): perp_usdt},
        fees={"USDC": D(6)},
        venue_pnl={"dex": D("1.5")},
        strategy_pnl={"arb": D("2.5")},
    )
    m = compute_metrics(result)
    assert (m.venue_pnl, m.venue_pnl_source) == ({"dex": D("1.5")}, "result")
    assert (m.strategy_pnl, m.strategy_pnl_source) == ({"arb": D("2.5")}, "result")
    assert m.fees_total == D(6)
    # The perp settles in USDT: its 3900 stays out of turnover (no USDT price in the result).
    assert m.traded_notional == {"USDC": D(4670), "USDT": D(3900)}
    assert m.turnover == pytest.approx(4670 / 1000)
    # Recomputed attribution skips the USDT realized PnL: cex -> 0 (its fees are USDT too).
    recomputed = compute_metrics(
        make_result(
            [T0, T0 + 10 * H],
            [1000.0, 1000.0],
            fills=book_fills(),
            positions={("cex", "AAPL-PERP"): perp_usdt},
        )
    )
    assert recomputed.venue_pnl == {"dex": D(14), "cex": D(0)}


def test_swap_notional_and_unsorted_fills() -> None:
    # A swap carries its exact notional (1001.7), which wins over quantity * price (10 * 100).
    # Fills given out of time order are replayed by time: sell at 2h closes the buy at 1h.
    fills = [
        fill(T0 + 2 * H, SELL, "10", "101", coid="s2"),
        fill(T0 + 1 * H, BUY, "10", "100", coid="s1", notional="1001.7"),
    ]
    m = compute_metrics(make_result([T0, T0 + 4 * H], [5000.0, 5010.0], fills=fills))
    assert m.traded_notional == {"USDC": D("2011.7")}  # 1001.7 + 10 * 101
    # Realized at the fill price (as core.portfolio does): 10 * (101 - 100) = +10 -> a win.
    assert (m.round_trips, m.winning_round_trips, m.win_rate) == (1, 1, 1.0)
    assert m.exposure_ns == H and m.exposure == pytest.approx(0.25)


def test_no_fills() -> None:
    m = compute_metrics(make_result([T0, T0 + H], [100.0, 100.0]))
    assert (m.trades, m.round_trips, m.exposure_ns, m.turnover) == (0, 0, 0, 0.0)
    assert math.isnan(m.win_rate)
    assert m.venue_pnl == {} and m.strategy_pnl == {}
    assert m.fees_total == D(0)
    assert m.to_dict()["win_rate"] is None


# ------------------------------------------------------------------------------- formatting


def test_format_duration() -> None:
    assert format_duration(0) == "0s"
    assert format_duration(NS_PER_DAY + 2 * H + 3 * NS_PER_MINUTE + 4_500_000_000) == "1d 2h 3m 4.5s"
    assert format_duration(3 * H) == "3h"
    assert format_duration(1) == "0.000000001s"


def test_to_dict_is_json_safe() -> None:
    m = compute_metrics(make_result([T0, T0 + H], [100.0, 105.5]), periods_per_year=8760)
    d = m.to_dict()
    assert d["initial_equity"] == "100.0" and d["final_equity"] == "105.5" and d["pnl"] == "5.5"
    assert d["sharpe"] is None  # one hourly return: undefined
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert set(d) == {f for f in Metrics.__dataclass_fields__}
    labels = [label for label, _ in m.table_rows()]
    assert "Max drawdown" in labels and "Win rate" in labels


def test_time_weighted_mean_and_bad_period() -> None:
    # 10 for 1h, 20 for 3h (the last sample carries no weight): (10 + 60) / 4 = 17.5.
    assert time_weighted_mean(curve([0, H, 4 * H, 4 * H], [10.0, 20.0, 20.0, 99.0])) == 17.5
    # All samples at one instant: the plain mean.
    assert time_weighted_mean(curve([5, 5], [1.0, 3.0])) == 2.0
    with pytest.raises(ValueError, match="periods_per_year"):
        compute_metrics(make_result([T0, T0 + H], [1.0, 1.0]), periods_per_year=0)


# ----------------------------------------------------------------- independent recomputation


def random_curve(seed: int, n: int = 3000) -> tuple[list[int], list[float]]:
    """Irregular timestamps (1 s .. 3 h apart, some repeated) and a geometric random walk."""
    rng = random.Random(seed)
    ts, values = [T0], [10_000.0]
    for _ in range(n - 1):
        ts.append(ts[-1] + rng.choice([0, rng.randrange(10**9, 3 * H)]))
        values.append(values[-1] * math.exp(rng.gauss(0.0, 0.01)))
    return ts, values


def loop_metrics(ts: list[int], values: list[float], period: int, ppy: float) -> tuple[float, float, float]:
    """Sharpe, Sortino, max drawdown with plain loops, no numpy."""
    grid_values = []
    t, i = ts[0], 0
    while t <= ts[-1]:
        while i + 1 < len(ts) and ts[i + 1] <= t:
            i += 1
        grid_values.append(values[i])
        t += period
    returns = [b / a - 1 for a, b in itertools.pairwise(grid_values)]
    mean = statistics.fmean(returns)
    sharpe = mean / statistics.stdev(returns) * math.sqrt(ppy)
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / len(returns))
    sortino = mean / downside * math.sqrt(ppy)
    peak, worst = -math.inf, 0.0
    for v in values:
        peak = max(peak, v)
        worst = max(worst, 1 - v / peak)
    return sharpe, sortino, worst


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_curve_against_a_loop(seed: int) -> None:
    ts, values = random_curve(seed)
    m = compute_metrics(make_result(ts, values))
    assert m.return_period_ns == NS_PER_DAY  # ~2,250 h: ~94 whole days
    sharpe, sortino, worst = loop_metrics(ts, values, NS_PER_DAY, 365.0)
    assert m.sharpe == pytest.approx(sharpe, rel=1e-9)
    assert m.sortino == pytest.approx(sortino, rel=1e-9)
    assert m.max_drawdown == pytest.approx(worst, rel=1e-12)
    hourly = compute_metrics(make_result(ts, values), periods_per_year=8760)
    h_sharpe, h_sortino, _ = loop_metrics(ts, values, H, 8760.0)
    assert hourly.sharpe == pytest.approx(h_sharpe, rel=1e-9)
    assert hourly.sortino == pytest.approx(h_sortino, rel=1e-9)


def test_random_curve_against_pandas() -> None:
    pd = pytest.importorskip("pandas")
    ts, values = random_curve(7)
    # Keep the last of equal timestamps, as the previous-value hold does.
    s = pd.Series(values, index=pd.to_datetime(ts)).groupby(level=0).last()
    grid = pd.date_range(s.index[0], s.index[-1], freq="1D")
    returns = s.asof(grid).pct_change().dropna()
    sharpe = returns.mean() / returns.std(ddof=1) * math.sqrt(365)
    sortino = returns.mean() / math.sqrt((returns.clip(upper=0) ** 2).mean()) * math.sqrt(365)
    # Drawdown on every raw sample, same-timestamp ones included (each was a real state).
    raw = pd.Series(values)
    drawdown = -(raw / raw.cummax() - 1).min()
    m = compute_metrics(make_result(ts, values))
    assert m.sharpe == pytest.approx(sharpe, rel=1e-9)
    assert m.sortino == pytest.approx(sortino, rel=1e-9)
    assert m.max_drawdown == pytest.approx(drawdown, rel=1e-12)
    # Duration of the deepest drawdown, by a loop: last sample at the high before it -> recovery.
    peak_i, trough_i, peak = 0, 0, -math.inf
    best, peak_at = 0.0, 0
    for i, v in enumerate(values):
        if v >= peak:
            peak, peak_at = v, i
        if 1 - v / peak > best:
            best, peak_i, trough_i = 1 - v / peak, peak_at, i
    recovery = next((ts[j] for j in range(trough_i + 1, len(ts)) if values[j] >= values[peak_i]), ts[-1])
    assert m.max_drawdown_duration_ns == recovery - ts[peak_i]


def test_stablecoins_at_par_count_in_the_valuation_asset() -> None:
    spot = Position("dex", "TSLAx/USDC", InstrumentKind.SPOT, "USDC")
    fills = [
        fill(10, Side.BUY, "2", "100", fee="0.5"),  # cost 200 USDC, fee 0.5 USDC
        fill(20, Side.SELL, "2", "110", fee="0.5"),  # proceeds 220: realized +20, fee 0.5
    ]
    args = {"fills": fills, "positions": {("dex", "TSLAx/USDC"): spot}, "fees": {"USDC": D(1)}}
    in_usd = make_result([0, 30], [1000.0, 1019.0], valuation_asset="USD", **args)  # type: ignore[arg-type]
    plain = compute_metrics(in_usd)
    assert plain.fees_total is None and plain.venue_pnl == {"dex": D(0)}  # USDC is not USD here
    at_par = compute_metrics(dataclasses_replace(in_usd, par_assets=frozenset({"USDC"})))
    # With USDC at par: 20 realized - 1 of fees = 19 USD; traded notional 200 + 220 = 420 USD.
    assert at_par.fees_total == D(1)
    assert at_par.venue_pnl == {"dex": D(19)}
    assert at_par.traded_notional == {"USD": D(420)}
