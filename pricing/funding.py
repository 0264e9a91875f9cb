"""Funding rates: everlasting options (per year) and exchange-style perpetual futures (per interval).

Sign convention for both: positive means the long pays the short.

* `everlasting_funding_rate`: the holder of an everlasting option pays (mark - payoff) per funding
  period T, accrued continuously: (mark - payoff)/T quote currency per year per option.
* `perp_funding_rate`: the Binance-style perpetual futures rate per funding interval, a fraction of
  the position's notional: F = P + clamp(I - P, -c, +c), with the premium index P = (mark - index)
  / index and I the interest rate per funding interval (Binance: 0.01% per 8 hours, i.e. 0.03% a
  day, 0 on some contracts), c the clamp (Binance: 0.05%). Binance measures P from the impact
  bid/ask prices and averages it over the interval; pass that average (or any mark) as `mark`. Its
  extra cap on F (e.g. +-2% per 4 h on stock perps, or the maintenance margin ratio) is a venue
  parameter applied outside. Funding paid = notional x F.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit, prange

from pricing.broadcast import BoolArray, FloatArray, as_columns, shape_result
from pricing.greeks import FloatOrArray


@njit(cache=True, error_model="numpy", forceinline=True)
def everlasting_funding_rate_scalar(mark: float, S: float, K: float, T: float, is_call: bool) -> float:
    """(mark - payoff)/T: quote currency per year owed by the long; NaN unless T > 0."""
    payoff = max(S - K, 0.0) if is_call else max(K - S, 0.0)
    return (mark - payoff) / T if T > 0.0 else math.nan


@njit(cache=True, error_model="numpy", forceinline=True)
def perp_funding_rate_scalar(mark: float, index: float, interest: float, clamp: float) -> float:
    """P + clamp(I - P, -c, c), P = (mark - index)/index; per funding interval; NaN if index <= 0."""
    if not (index > 0.0 and clamp >= 0.0):
        return math.nan
    premium = (mark - index) / index
    spread = interest - premium
    return premium + min(max(spread, -clamp), clamp)


@njit(parallel=True, cache=True, error_model="numpy")
def _everlasting_kernel(
    mark: FloatArray, S: FloatArray, K: FloatArray, T: FloatArray, is_call: BoolArray, out: FloatArray
) -> None:
    for i in prange(S.size):
        out[i] = everlasting_funding_rate_scalar(mark[i], S[i], K[i], T[i], is_call[i])


@njit(parallel=True, cache=True, error_model="numpy")
def _perp_kernel(
    mark: FloatArray, index: FloatArray, interest: FloatArray, clamp: FloatArray, out: FloatArray
) -> None:
    for i in prange(mark.size):
        out[i] = perp_funding_rate_scalar(mark[i], index[i], interest[i], clamp[i])


def everlasting_funding_rate(
    mark: FloatOrArray, S: FloatOrArray, K: FloatOrArray, funding_period: FloatOrArray, is_call: Any
) -> FloatOrArray:
    """Funding owed by the long of one everlasting option, quote currency per year.

    (mark - payoff)/funding_period, with mark the option's mark price and payoff max(S-K, 0) (call)
    or max(K-S, 0) (put) in quote currency, funding_period in years; negative when the mark trades
    below the payoff (the short pays). Over dt years the long pays rate * dt. Floats or arrays,
    broadcast; NaN unless funding_period > 0.
    """
    columns, calls, shape, scalar = as_columns((mark, S, K, funding_period), is_call)
    assert calls is not None
    if scalar:
        m, s, k, t = (float(c[0]) for c in columns)
        return float(everlasting_funding_rate_scalar(m, s, k, t, bool(calls[0])))
    out = np.empty(calls.size)
    _everlasting_kernel(columns[0], columns[1], columns[2], columns[3], calls, out)
    return shape_result(out, shape, scalar)


def perp_funding_rate(
    mark: FloatOrArray, index: FloatOrArray, interest: FloatOrArray, clamp: FloatOrArray
) -> FloatOrArray:
    """Perpetual futures funding rate per funding interval (fraction of notional; long pays if > 0).

    F = P + clamp(interest - P, -clamp, +clamp), P = (mark - index)/index the premium index; mark
    and index in quote currency, interest the interest rate per funding interval (e.g. 0.0001 per
    8 h on Binance), clamp >= 0 per funding interval (Binance: 0.0005). Floats or arrays,
    broadcast; NaN if index <= 0 or clamp < 0. The venue's own cap on F is applied by the caller.
    """
    columns, _, shape, scalar = as_columns((mark, index, interest, clamp))
    if scalar:
        m, i, r, c = (float(col[0]) for col in columns)
        return float(perp_funding_rate_scalar(m, i, r, c))
    out = np.empty(columns[0].size)
    _perp_kernel(columns[0], columns[1], columns[2], columns[3], out)
    return shape_result(out, shape, scalar)
