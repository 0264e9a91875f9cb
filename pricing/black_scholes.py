"""Black-Scholes-Merton prices and greeks of European options on an asset with a continuous yield q.

Units: S, K in quote currency; T in years; r, q continuously compounded per year; sigma per
sqrt(year). Greeks as in `pricing.greeks.Greeks`: vega per 1.00 of sigma, theta = dV/dt per year of
calendar time, rho per 1.00 of r.

Layout: `bs_price_scalar` / `bs_greeks_scalar` are branch-free numba kernels for one option (other
kernels call them); `bs_price` / `bs_greeks` are the public broadcasting functions, which run a
`prange` loop over the scalar kernels. Because the kernels use the SIMD-friendly `exp`, `log`,
`gaussian` and `tail_ratio` of `pricing.vector_math`, selects instead of branches, and
`forceinline` (LLVM inlines them into the parallel loop, whose arrays numba marks noalias), LLVM
vectorises that loop: 4 options per AVX2 instruction. The scalar kernels are usable from other
`njit` code (and vectorise in its loops too); calling them from Python also works.

Accuracy: N(d1) and N(d2) share one exponential (see `_bs_terms`), so prices keep ~|d1|/v ulp of
relative error even deep out of the money (v = sigma sqrt T), which is the conditioning of the
formula itself: ~1e-12 relative at d1 = -35 against 40-digit references (QuantLib's BlackCalculator
is up to ~6e-6 off at d1 = -5.5). Delta, gamma, vega and rho stay within ~5e-13 relative.

Domain and edge cases (no exceptions, ever):

* NaN in any input gives NaN in every output.
* S <= 0, K <= 0, T < 0 or sigma < 0 give NaN (outside the model).
* T == 0 or sigma == 0 (the deterministic limit): price = max(phi (S e^-qT - K e^-rT), 0) with
  phi = +1 for a call, -1 for a put; delta = phi e^-qT w and rho = phi K T e^-rT w, theta =
  phi w (q S e^-qT - r K e^-rT), with w = 1 in the money (forward), 0 out of it and 1/2 exactly at
  the money (the T -> 0+ limit of N(d)); gamma = 0 (its limit is a Dirac mass at the money); vega =
  the sigma -> 0+ limit, S e^-qT sqrt(T)/sqrt(2 pi) exactly at the money forward, 0 elsewhere.
* The price is floored at the forward intrinsic value max(phi (S e^-qT - K e^-rT), 0), which the
  exact price never undercuts: rounding in the difference of the two terms cannot make it negative.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit, prange

from pricing.broadcast import BoolArray, FloatArray, as_columns, shape_result
from pricing.greeks import FloatOrArray, Greeks
from pricing.vector_math import exp, gaussian, log, tail_ratio

NAN = math.nan
INV_SQRT_2PI = 0.3989422804014326779


@njit(cache=True, error_model="numpy", forceinline=True)
def _bs_terms(
    S: float, K: float, T: float, r: float, q: float, sigma: float, is_call: bool
) -> tuple[float, float, float, float, float, float, float, float, float, float, float, bool]:
    """Shared part of the kernels.

    Returns (phi, sqrt_t, inv_v, df_q, fwd_s, fwd_k, g1, cdf1, x1, x2, intrinsic, degenerate) with
    phi = +-1, inv_v = 1/(sigma sqrt T), df_q = e^-qT, fwd_s = S e^-qT, fwd_k = K e^-rT,
    g1 = exp(-d1^2/2), cdf1 = N(phi d1), x1 = fwd_s N(phi d1), x2 = fwd_k N(phi d2),
    intrinsic = phi (fwd_s - fwd_k), degenerate = (sigma sqrt T == 0).

    With e = fwd_s exp(-d1^2/2) = fwd_k exp(-d2^2/2) (the same number, by the definition of d1 and
    d2), fwd_s N(-|d1|) = e tail_ratio(|d1|) and fwd_k N(-|d2|) = e tail_ratio(|d2|): one exponential
    for both, and the rounding of d2 = d1 - v (an error ~|d2| ulp, ~5e-15 at |d2| = 30) stays out of
    it. Deep out of the money, where the price is the small difference of the two terms, this keeps
    the relative error near |d1|/v ulp (the conditioning of the problem) instead of |d1|^3/v ulp.
    """
    phi = 1.0 if is_call else -1.0
    sqrt_t = math.sqrt(T)
    v = sigma * sqrt_t  # total volatility to expiry
    degenerate = v == 0.0
    v_safe = 1.0 if degenerate else v  # keeps the normal path finite; its results are discarded
    inv_v = 1.0 / v_safe
    df_q = exp(-q * T)
    fwd_s = S * df_q
    fwd_k = K * exp(-r * T)
    d1 = (log(S / K) + (r - q) * T) * inv_v + 0.5 * v_safe
    d2 = d1 - v_safe
    g1 = gaussian(d1)
    tail1 = g1 * tail_ratio(abs(d1))  # N(-|d1|)
    e = fwd_s * g1
    tail_s = fwd_s * tail1  # fwd_s N(-|d1|)
    tail_k = e * tail_ratio(abs(d2))  # fwd_k N(-|d2|)
    up1 = phi * d1 > 0.0
    cdf1 = 1.0 - tail1 if up1 else tail1
    x1 = fwd_s - tail_s if up1 else tail_s
    x2 = fwd_k - tail_k if phi * d2 > 0.0 else tail_k
    intrinsic = phi * (fwd_s - fwd_k)
    return phi, sqrt_t, inv_v, df_q, fwd_s, fwd_k, g1, cdf1, x1, x2, intrinsic, degenerate


@njit(cache=True, error_model="numpy", forceinline=True)
def _in_domain(S: float, K: float, T: float, sigma: float) -> bool:
    """S, K > 0 and T, sigma >= 0; false for NaN."""
    return S > 0.0 and K > 0.0 and T >= 0.0 and sigma >= 0.0


@njit(cache=True, error_model="numpy", forceinline=True)
def bs_price_scalar(S: float, K: float, T: float, r: float, q: float, sigma: float, is_call: bool) -> float:
    """Black-Scholes-Merton price of one option (quote currency); edge cases as in the module doc."""
    phi, _, _, _, _, _, _, _, x1, x2, intrinsic, degenerate = _bs_terms(S, K, T, r, q, sigma, is_call)
    floor = intrinsic if intrinsic > 0.0 else (0.0 if intrinsic <= 0.0 else NAN)
    price = phi * (x1 - x2)
    price = floor if price < floor else price  # NaN passes
    price = floor if degenerate else price
    return price if _in_domain(S, K, T, sigma) else NAN


@njit(cache=True, error_model="numpy", forceinline=True)
def bs_greeks_scalar(
    S: float, K: float, T: float, r: float, q: float, sigma: float, is_call: bool
) -> tuple[float, float, float, float, float, float]:
    """(price, delta, gamma, vega, theta, rho) of one option; units as in `pricing.greeks.Greeks`."""
    phi, sqrt_t, inv_v, df_q, fwd_s, fwd_k, g1, cdf1, x1, x2, intrinsic, degenerate = _bs_terms(
        S, K, T, r, q, sigma, is_call
    )
    floor = intrinsic if intrinsic > 0.0 else (0.0 if intrinsic <= 0.0 else NAN)
    price = phi * (x1 - x2)
    price = floor if price < floor else price
    pdf_s = fwd_s * g1 * INV_SQRT_2PI  # S e^-qT n(d1)
    delta = phi * df_q * cdf1
    gamma = pdf_s * inv_v / (S * S)
    vega = pdf_s * sqrt_t
    theta = -0.5 * pdf_s * sigma * sigma * inv_v + phi * (q * x1 - r * x2)  # sigma/(2 sqrt T) = sigma^2/(2v)
    rho = phi * T * x2
    if degenerate:  # a select per output once vectorised: both sides are already computed
        w = 1.0 if intrinsic > 0.0 else (0.5 if intrinsic == 0.0 else (0.0 if intrinsic < 0.0 else NAN))
        price = floor
        delta = phi * df_q * w
        gamma = 0.0 * w
        vega = fwd_s * sqrt_t * INV_SQRT_2PI if intrinsic == 0.0 else 0.0 * w
        theta = phi * w * (q * fwd_s - r * fwd_k)
        rho = phi * fwd_k * T * w
    if not _in_domain(S, K, T, sigma):
        return NAN, NAN, NAN, NAN, NAN, NAN
    return price, delta, gamma, vega, theta, rho


@njit(parallel=True, cache=True, error_model="numpy")
def _bs_price_kernel(
    S: FloatArray,
    K: FloatArray,
    T: FloatArray,
    r: FloatArray,
    q: FloatArray,
    sigma: FloatArray,
    is_call: BoolArray,
    price: FloatArray,
) -> None:
    for i in prange(S.size):
        price[i] = bs_price_scalar(S[i], K[i], T[i], r[i], q[i], sigma[i], is_call[i])


@njit(parallel=True, cache=True, error_model="numpy")
def _bs_greeks_kernel(
    S: FloatArray,
    K: FloatArray,
    T: FloatArray,
    r: FloatArray,
    q: FloatArray,
    sigma: FloatArray,
    is_call: BoolArray,
    price: FloatArray,
    delta: FloatArray,
    gamma: FloatArray,
    vega: FloatArray,
    theta: FloatArray,
    rho: FloatArray,
) -> None:
    for i in prange(S.size):
        p, d, g, v, th, rh = bs_greeks_scalar(S[i], K[i], T[i], r[i], q[i], sigma[i], is_call[i])
        price[i] = p
        delta[i] = d
        gamma[i] = g
        vega[i] = v
        theta[i] = th
        rho[i] = rh


def bs_price(
    S: npt.ArrayLike,
    K: npt.ArrayLike,
    T: npt.ArrayLike,
    r: npt.ArrayLike,
    q: npt.ArrayLike,
    sigma: npt.ArrayLike,
    is_call: npt.ArrayLike,
) -> FloatOrArray:
    """Black-Scholes-Merton price in quote currency; floats or arrays, broadcast together.

    S spot and K strike in quote currency, T years to expiry, r and q continuously compounded per
    year, sigma per sqrt(year), is_call bool or bool array. Returns a float when every input is a
    scalar, else an array of the broadcast shape. Edge cases: see the module docstring.
    """
    (s, k, t, rr, qq, sg), calls, shape, scalar = as_columns((S, K, T, r, q, sigma), is_call)
    assert calls is not None
    if scalar:  # one option: the scalar kernel directly, no thread pool
        return float(bs_price_scalar(s[0], k[0], t[0], rr[0], qq[0], sg[0], bool(calls[0])))
    out = np.empty(calls.size)
    _bs_price_kernel(s, k, t, rr, qq, sg, calls, out)
    return shape_result(out, shape, scalar)


def bs_greeks(
    S: npt.ArrayLike,
    K: npt.ArrayLike,
    T: npt.ArrayLike,
    r: npt.ArrayLike,
    q: npt.ArrayLike,
    sigma: npt.ArrayLike,
    is_call: npt.ArrayLike,
) -> Greeks:
    """Price and greeks (`Greeks`: price, delta, gamma, vega, theta, rho); arguments as `bs_price`.

    Units: price quote currency; delta dV/dS; gamma d2V/dS2 per quote currency; vega per 1.00 of
    sigma; theta dV/dt per year of calendar time (negative for a long option's decay); rho per 1.00
    of r. Floats for scalar inputs, else arrays of the broadcast shape.
    """
    (s, k, t, rr, qq, sg), calls, shape, scalar = as_columns((S, K, T, r, q, sigma), is_call)
    assert calls is not None
    if scalar:
        values = bs_greeks_scalar(s[0], k[0], t[0], rr[0], qq[0], sg[0], bool(calls[0]))
        return Greeks(*(float(v) for v in values))
    price, delta, gamma, vega, theta, rho = (np.empty(calls.size) for _ in range(6))
    _bs_greeks_kernel(s, k, t, rr, qq, sg, calls, price, delta, gamma, vega, theta, rho)
    return Greeks(*(shape_result(o, shape, scalar) for o in (price, delta, gamma, vega, theta, rho)))
