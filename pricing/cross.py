"""Cross pairs: an option on asset a (BTC, ETH) whose premium and margin are asset b (a stock token).

Both assets are quoted in the same currency (USD): S_a, S_b. The cross rate X = S_a/S_b is the price
of one a in units of b. If S_a, S_b follow correlated geometric Brownian motions with vols sigma_a,
sigma_b and correlation rho, ln X has variance rate sigma_a^2 + sigma_b^2 - 2 rho sigma_a sigma_b,
so X is again lognormal with the cross vol of `cross_vol`.

Measure: with b as numeraire (prices in b tokens), X drifts at q_b - q_a, where q_a, q_b are the
assets' continuous yields (lending rates, dividends reinvested): the margin token b plays the role
of the domestic currency and a of the foreign one. So every pricing function prices the cross
option in b tokens with S = X, sigma = cross_vol, r = q_b and q = q_a; the USD rate drops out
(Margrabe's exchange option: max(S_a - K S_b, 0) = S_b max(X - K, 0)). `coin_margined` (with S = X)
turns that price into units of a when the option is margined in a instead.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from pricing.broadcast import FloatArray, as_columns, shape_result
from pricing.greeks import FloatOrArray


@njit(cache=True, error_model="numpy", forceinline=True)
def cross_rate_scalar(S_a: float, S_b: float) -> float:
    """S_a / S_b: units of b per unit of a; NaN unless both prices are > 0."""
    return S_a / S_b if (S_a > 0.0 and S_b > 0.0) else math.nan


@njit(cache=True, error_model="numpy", forceinline=True)
def cross_vol_scalar(sigma_a: float, sigma_b: float, rho: float) -> float:
    """sqrt(sigma_a^2 + sigma_b^2 - 2 rho sigma_a sigma_b); NaN for sigma < 0 or |rho| > 1."""
    if not (sigma_a >= 0.0 and sigma_b >= 0.0 and -1.0 <= rho <= 1.0):
        return math.nan
    scale = max(sigma_a, sigma_b)  # scaled like hypot: no underflow or overflow in the squares
    if scale == 0.0 or scale == math.inf:
        return scale
    a = sigma_a / scale
    b = sigma_b / scale
    variance = a * a + b * b - 2.0 * rho * a * b
    return scale * math.sqrt(max(variance, 0.0))  # rounding at rho = 1, sigma_a = sigma_b may dip below 0


@njit(parallel=True, cache=True, error_model="numpy")
def _rate_kernel(S_a: FloatArray, S_b: FloatArray, out: FloatArray) -> None:
    for i in prange(S_a.size):
        out[i] = cross_rate_scalar(S_a[i], S_b[i])


@njit(parallel=True, cache=True, error_model="numpy")
def _vol_kernel(sigma_a: FloatArray, sigma_b: FloatArray, rho: FloatArray, out: FloatArray) -> None:
    for i in prange(sigma_a.size):
        out[i] = cross_vol_scalar(sigma_a[i], sigma_b[i], rho[i])


def cross_rate(S_a: FloatOrArray, S_b: FloatOrArray) -> FloatOrArray:
    """The cross rate S_a / S_b (units of b per unit of a) from two prices in the same currency.

    S_a, S_b in quote currency (e.g. USD per BTC and USD per TSLA token); floats or arrays,
    broadcast; NaN unless both are > 0.
    """
    columns, _, shape, scalar = as_columns((S_a, S_b))
    if scalar:
        return float(cross_rate_scalar(float(columns[0][0]), float(columns[1][0])))
    out = np.empty(columns[0].size)
    _rate_kernel(columns[0], columns[1], out)
    return shape_result(out, shape, scalar)


def cross_vol(sigma_a: FloatOrArray, sigma_b: FloatOrArray, rho: FloatOrArray) -> FloatOrArray:
    """Volatility of S_a/S_b per sqrt(year): sqrt(sigma_a^2 + sigma_b^2 - 2 rho sigma_a sigma_b).

    sigma_a, sigma_b per sqrt(year) (of S_a and S_b in a common currency), rho their correlation
    (of log returns, in [-1, 1]); floats or arrays, broadcast; NaN outside those ranges.
    """
    columns, _, shape, scalar = as_columns((sigma_a, sigma_b, rho))
    if scalar:
        return float(cross_vol_scalar(float(columns[0][0]), float(columns[1][0]), float(columns[2][0])))
    out = np.empty(columns[0].size)
    _vol_kernel(columns[0], columns[1], columns[2], out)
    return shape_result(out, shape, scalar)
