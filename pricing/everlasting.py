"""Everlasting (perpetual) options: closed form with continuous funding, greeks, discrete funding.

An everlasting option never expires; instead its holder pays funding (mark - payoff) per funding
period T, accrued continuously (or f times per period). Its fair value is an exponentially weighted
strip of European options,

    V(S) = (1/T) * integral_0^inf exp(-tau/T) * BSM(S, K, tau, r, q, sigma) dtau,

which solves 1/2 sigma^2 S^2 V'' + (r-q) S V' - r V - (V - payoff)/T = 0. With a = sigma^2/2,
b = r - q, R = r + 1/T, g_q = 1 + qT, g_r = 1 + rT and the roots p+ > 1 > 0 > p- of
a p (p-1) + b p - R = 0, the closed form (derivation in docs/pricing/everlasting.md) is

    V = K c_s x^p_s + e F,   x = S/K,   F = S/g_q - K/g_r  (the everlasting forward, C - P = F),
    S >= K: p_s = p-, c_s = k a p+(p+-1)/D;   S < K: p_s = p+, c_s = k a p-(p--1)/D,
    k = T/(g_q g_r), D = p+ - p-,  e = 1{S>=K} for a call, -1{S<K} for a put.

For r = q = 0 this is the textbook u = sqrt(1 + 8/(sigma^2 T)), time value (K/u) x^((1-u)/2) above
the strike and (K/u) x^((1+u)/2) below it, the same for calls and puts.

Units: S, K in quote currency; funding_period T in years; r, q continuously compounded per year;
sigma per sqrt(year). Greeks as `pricing.greeks.Greeks`: delta dV/dS, gamma d2V/dS2, vega per 1.00
of sigma, rho per 1.00 of r, and theta (a perpetual has no expiry, so see below).

Theta convention. At fixed S, sigma, r, q and funding period the everlasting price does not change
with calendar time (dV/dt = 0): a literal calendar theta would always be zero and useless. What a
long holder does lose per year is the funding it pays, (V - payoff)/T. We report

    theta = -(V - payoff)/T   (quote currency per year; <= 0 for a long whenever V >= payoff),

the carry term that closes the pricing equation exactly as the BSM theta does:
theta + 1/2 sigma^2 S^2 gamma + (r-q) S delta - r V = 0. So a delta-hedged long's P&L per year is
1/2 sigma^2 S^2 gamma (realised - implied variance) exactly as for a vanilla, with theta paid as
funding instead of decay. (theta = -everlasting_funding_rate(V, S, K, T, is_call).)

Domain and edge cases (no exceptions, ever):

* NaN in any input gives NaN in every output.
* S <= 0, K <= 0, funding_period <= 0, sigma < 0, 1 + rT <= 0 or 1 + qT <= 0 give NaN (the defining
  integral diverges or is outside the model).
* sigma == 0 is the deterministic limit, in closed form: price and delta exact; gamma, vega and rho
  are the sigma -> 0+ limits of the closed-form greeks. The limit is used for every sigma < 1e-60
  (`SIGMA_MIN`), where the closed form's roots would overflow (difference O(sigma K sqrt(T))).
  Where the forward never moves (r == q) and S == K those limits are: delta +-1/(2 g_q) (call /
  put), gamma 0 (its limit is infinite: a Dirac mass; `bs_greeks` does the same), vega
  S sqrt(T) / (2 sqrt(2) g_q^1.5), rho +-K T/(2 g_r^2).
* The price is floored at max(phi F, 0) (phi = +1 call, -1 put), which the exact value never
  undercuts (it is the integral of BSM's own forward-intrinsic floor); rounding cannot go below it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit, prange

from pricing.black_scholes import bs_price_scalar
from pricing.broadcast import BoolArray, FloatArray, as_columns, shape_result
from pricing.greeks import FloatOrArray, Greeks
from pricing.vector_math import exp, log

NAN = math.nan
INV_2_SQRT_2 = 0.35355339059327376220  # 1 / (2 sqrt 2)
# Below this sigma (per sqrt(year)) the sigma -> 0 limit is used: the closed form's roots (~1/sigma^2)
# would overflow, and the limit differs from the exact value by O(sigma K sqrt(T)) < 1e-59 K sqrt(T).
SIGMA_MIN = 1e-60


@njit(cache=True, error_model="numpy", forceinline=True)
def _valid(S: float, K: float, sigma: float, T: float, r: float, q: float) -> bool:
    """Inside the model: every comparison is false for NaN, so NaN inputs are invalid too."""
    return S > 0.0 and K > 0.0 and T > 0.0 and sigma >= 0.0 and 1.0 + r * T > 0.0 and 1.0 + q * T > 0.0


@njit(cache=True, error_model="numpy", forceinline=True)
def _roots(a: float, b: float, rr: float) -> tuple[float, float, float]:
    """(p+, p-, disc) of a p^2 + (b - a) p - rr = 0, disc = sqrt((a-b)^2 + 4 a rr) = a (p+ - p-).

    Cancellation-free: the large root from m = disc + |a - b|, the other from p+ p- = -rr/a.
    """
    h = a - b
    disc = math.sqrt(h * h + 4.0 * a * rr)
    m = disc + abs(h)
    m_safe = m if m > 0.0 else 1.0  # m = 0 only outside the model (rr <= 0): keep it finite
    big = m / (2.0 * a)
    small = 2.0 * rr / m_safe
    p_plus = big if h >= 0.0 else small
    p_minus = -small if h >= 0.0 else -big
    return p_plus, p_minus, disc


@njit(cache=True, error_model="numpy", forceinline=True)
def everlasting_price_scalar(
    S: float, K: float, sigma: float, T: float, r: float, q: float, is_call: bool
) -> float:
    """Everlasting option price in quote currency (funding period T in years); see the module doc."""
    phi = 1.0 if is_call else -1.0
    tiny = not sigma >= SIGMA_MIN  # the sigma -> 0 limit below (NaN: invalid anyway)
    sig = 1.0 if tiny else sigma  # keeps the closed form finite where its result is discarded
    a = 0.5 * sig * sig
    b = r - q
    rr = r + 1.0 / T
    g_q = 1.0 + q * T
    g_r = 1.0 + r * T
    k = T / (g_q * g_r)
    above = S >= K
    p_plus, p_minus, disc = _roots(a, b, rr)
    p_s = p_minus if above else p_plus  # the root that stays bounded on S's side of the strike
    p_o = p_plus if above else p_minus
    disc_safe = disc if disc > 0.0 else 1.0
    pp_o = p_o * (p_o - 1.0)
    c = k * a * a * pp_o / disc_safe  # k a P_o / D with D = disc / a; no cancellation
    lx = log(S / K)
    vh = K * c * exp(p_s * lx)
    fwd = S / g_q - K / g_r  # everlasting forward: C - P
    e = (1.0 if above else 0.0) if is_call else (0.0 if above else -1.0)
    # sigma = 0: the forward S e^{(r-q) tau} crosses K at most once; closed-form limit of the above
    pi_ = rr / (b if b != 0.0 else 1.0)
    active = (b > 0.0 and not above) or (b < 0.0 and above)
    vh0 = K * k * abs(b) * exp(pi_ * lx) if active else 0.0
    vh = vh0 if tiny else vh
    price = vh + e * fwd
    floor = max(phi * fwd, 0.0)
    price = floor if price < floor else price
    return price if _valid(S, K, sigma, T, r, q) else NAN


@njit(cache=True, error_model="numpy", forceinline=True)
def everlasting_greeks_scalar(
    S: float, K: float, sigma: float, T: float, r: float, q: float, is_call: bool
) -> tuple[float, float, float, float, float, float]:
    """(price, delta, gamma, vega, theta, rho) of one everlasting option; units as the module doc."""
    phi = 1.0 if is_call else -1.0
    tiny = not sigma >= SIGMA_MIN
    sig = 1.0 if tiny else sigma
    a = 0.5 * sig * sig
    b = r - q
    rr = r + 1.0 / T
    g_q = 1.0 + q * T
    g_r = 1.0 + r * T
    k = T / (g_q * g_r)
    above = S >= K
    p_plus, p_minus, disc = _roots(a, b, rr)
    p_s = p_minus if above else p_plus
    p_o = p_plus if above else p_minus
    sgn = -1.0 if above else 1.0  # dg/dp at p_s is sgn * disc (g = a p (p-1) + b p - rr)
    disc_safe = disc if disc > 0.0 else 1.0
    inv_disc = 1.0 / disc_safe
    pp_s = p_s * (p_s - 1.0)
    pp_o = p_o * (p_o - 1.0)
    c = k * a * a * pp_o / disc_safe  # same expression as everlasting_price_scalar: same price bits
    lx = log(S / K)
    vh = K * c * exp(p_s * lx)
    fwd = S / g_q - K / g_r
    e = (1.0 if above else 0.0) if is_call else (0.0 if above else -1.0)
    inv_s = 1.0 / S
    payoff = max(phi * (S - K), 0.0)
    # d ln(c_s x^p_s)/d theta = d ln k + 2 d ln a + d ln P_o - d ln disc + ln x dp_s/d theta,
    # with dp/d theta = -(dg/d theta)/(dg/dp) at each root.
    h = a - b
    d_sigma = (
        4.0 / sig
        + (2.0 * p_o - 1.0) * sig * sgn * inv_disc
        - sig * (h + 2.0 * rr) * inv_disc * inv_disc
        - lx * sig * pp_s * sgn * inv_disc
    )
    d_r = (
        -T / g_r
        + (2.0 * p_o - 1.0) * sgn * inv_disc / p_o  # (2p-1) dp/P with dp = (p-1) sgn/disc
        - (2.0 * a - h) * inv_disc * inv_disc
        - lx * (p_s - 1.0) * sgn * inv_disc
    )
    delta = p_s * vh * inv_s + e / g_q
    gamma = pp_s * vh * inv_s * inv_s
    vega = vh * d_sigma
    rho = vh * d_r + e * K * T / (g_r * g_r)
    if tiny:  # sigma -> 0: limits of the above (module doc); selects once vectorised
        b_safe = b if b != 0.0 else 1.0
        pi_ = rr / b_safe
        active = (b > 0.0 and not above) or (b < 0.0 and above)
        vh_active = K * k * abs(b) * exp(pi_ * lx)
        vh = vh_active if active else 0.0
        atm = b == 0.0 and S == K  # forward pinned at the strike: the kink never leaves
        delta = 0.5 * phi / g_q if atm else pi_ * vh * inv_s + e / g_q
        # gamma is continuous at K for sigma > 0: at S == K its limit is the active side's
        gamma_side = active or (b > 0.0 and S == K)
        gamma = pi_ * (pi_ - 1.0) * vh_active * inv_s * inv_s if gamma_side else 0.0
        vega = S * math.sqrt(T) * INV_2_SQRT_2 / (g_q * math.sqrt(g_q)) if atm else 0.0
        rho_atm = 0.5 * phi * K * T / (g_r * g_r)
        rho_fwd = vh * (g_q / (g_r * b_safe) - lx * g_q / (T * b_safe * b_safe)) + e * K * T / (g_r * g_r)
        rho = rho_atm if atm else rho_fwd
    price = vh + e * fwd
    floor = max(phi * fwd, 0.0)
    price = floor if price < floor else price
    theta = -(price - payoff) / T  # funding paid by a long per year (module doc: theta convention)
    if not _valid(S, K, sigma, T, r, q):
        return NAN, NAN, NAN, NAN, NAN, NAN
    return price, delta, gamma, vega, theta, rho


@njit(cache=True, error_model="numpy", forceinline=True)
def everlasting_price_discrete_scalar(
    S: float, K: float, sigma: float, T: float, f: float, r: float, q: float, is_call: bool, tol: float
) -> float:
    """Discrete-funding everlasting price (quote currency): the truncated series of the public doc."""
    if not (_valid(S, K, sigma, T, r, q) and f > 0.0 and tol > 0.0):
        return NAN
    rho_w = f / (f + 1.0)  # weight ratio between consecutive payments
    dt = T / f  # years between payments
    y = q if is_call else r
    ratio = rho_w * math.exp(-y * dt)  # ratio of the geometric bound on the terms
    if not ratio < 1.0:
        return NAN  # the bound (and the series itself) diverges: e^{-y tau} outgrows the weights
    gamma_ = math.exp(-y * dt)
    # tail after n terms <= M gamma ratio^n / ((f+1)(1-ratio)); smallest n with tail <= tol * M
    n_f = math.log(tol * (f + 1.0) * (1.0 - ratio) / gamma_) / math.log(ratio)
    n = max(1, math.ceil(n_f))
    total = 0.0
    w = 1.0 / (f + 1.0)
    for i in range(1, n + 1):
        total += w * bs_price_scalar(S, K, i * dt, r, q, sigma, is_call)
        w *= rho_w
    return total


@njit(parallel=True, cache=True, error_model="numpy")
def _price_kernel(
    S: FloatArray,
    K: FloatArray,
    sigma: FloatArray,
    T: FloatArray,
    r: FloatArray,
    q: FloatArray,
    is_call: BoolArray,
    price: FloatArray,
) -> None:
    for i in prange(S.size):
        price[i] = everlasting_price_scalar(S[i], K[i], sigma[i], T[i], r[i], q[i], is_call[i])


@njit(parallel=True, cache=True, error_model="numpy")
def _greeks_kernel(
    S: FloatArray,
    K: FloatArray,
    sigma: FloatArray,
    T: FloatArray,
    r: FloatArray,
    q: FloatArray,
    is_call: BoolArray,
    price: FloatArray,
    delta: FloatArray,
    gamma: FloatArray,
    vega: FloatArray,
    theta: FloatArray,
    rho: FloatArray,
) -> None:
    for i in prange(S.size):
        p, d, g, v, th, rh = everlasting_greeks_scalar(S[i], K[i], sigma[i], T[i], r[i], q[i], is_call[i])
        price[i] = p
        delta[i] = d
        gamma[i] = g
        vega[i] = v
        theta[i] = th
        rho[i] = rh


@njit(parallel=True, cache=True, error_model="numpy")
def _discrete_kernel(
    S: FloatArray,
    K: FloatArray,
    sigma: FloatArray,
    T: FloatArray,
    f: FloatArray,
    r: FloatArray,
    q: FloatArray,
    is_call: BoolArray,
    tol: float,
    price: FloatArray,
) -> None:
    for i in prange(S.size):
        price[i] = everlasting_price_discrete_scalar(
            S[i], K[i], sigma[i], T[i], f[i], r[i], q[i], is_call[i], tol
        )


def everlasting_price(
    S: FloatOrArray,
    K: FloatOrArray,
    sigma: FloatOrArray,
    funding_period: FloatOrArray,
    r: FloatOrArray,
    q: FloatOrArray,
    is_call: Any,
) -> FloatOrArray:
    """Everlasting option price (quote currency) with continuous funding; floats or arrays, broadcast.

    S spot and K strike in quote currency, sigma per sqrt(year), funding_period T in years (e.g.
    7/365 for weekly funding), r and q continuously compounded per year, is_call bool or bool array.
    Value = (1/T) * integral_0^inf exp(-tau/T) BSM(tau) dtau, in closed form (module doc). Returns a
    float when every input is a scalar, else an array of the broadcast shape; NaN outside the model.
    """
    columns, calls, shape, scalar = as_columns((S, K, sigma, funding_period, r, q), is_call)
    assert calls is not None
    if scalar:
        s, k, v, t, rr, qq = (float(c[0]) for c in columns)
        return float(everlasting_price_scalar(s, k, v, t, rr, qq, bool(calls[0])))
    out = np.empty(calls.size)
    _price_kernel(columns[0], columns[1], columns[2], columns[3], columns[4], columns[5], calls, out)
    return shape_result(out, shape, scalar)


def everlasting_greeks(
    S: FloatOrArray,
    K: FloatOrArray,
    sigma: FloatOrArray,
    funding_period: FloatOrArray,
    r: FloatOrArray,
    q: FloatOrArray,
    is_call: Any,
) -> Greeks:
    """Price and analytic greeks of an everlasting option; arguments as `everlasting_price`.

    Units: price quote currency; delta dV/dS; gamma d2V/dS2 per quote currency; vega dV/dsigma per
    1.00 of sigma (sigma per sqrt(year)); theta = -(V - payoff)/T, the funding a long pays, in quote
    currency per year (a perpetual's price does not decay in calendar time: see the module doc);
    rho dV/dr per 1.00 of r (per year, continuously compounded). Floats for scalar inputs, else
    arrays of the broadcast shape.
    """
    columns, calls, shape, scalar = as_columns((S, K, sigma, funding_period, r, q), is_call)
    assert calls is not None
    if scalar:
        s, k, v, t, rr, qq = (float(c[0]) for c in columns)
        values = everlasting_greeks_scalar(s, k, v, t, rr, qq, bool(calls[0]))
        return Greeks(*(float(x) for x in values))
    outs = [np.empty(calls.size) for _ in range(6)]
    _greeks_kernel(
        columns[0], columns[1], columns[2], columns[3], columns[4], columns[5], calls,
        outs[0], outs[1], outs[2], outs[3], outs[4], outs[5],
    )  # fmt: skip
    return Greeks(*(shape_result(o, shape, scalar) for o in outs))


def everlasting_price_discrete(
    S: FloatOrArray,
    K: FloatOrArray,
    sigma: FloatOrArray,
    funding_period: FloatOrArray,
    payments_per_period: FloatOrArray,
    r: FloatOrArray,
    q: FloatOrArray,
    is_call: Any,
    tol: float = 1e-12,
) -> FloatOrArray:
    """Everlasting option price (quote currency) when funding is paid f times per funding period.

    V_f = sum_{i>=1} (1/(f+1)) (f/(f+1))^(i-1) BSM(S, K, i T/f, r, q, sigma), with T = funding_period
    in years, f = payments_per_period (> 0, need not be an integer), sigma per sqrt(year), r and q
    continuously compounded per year. It tends to `everlasting_price` as f grows (error O(1/f)).

    Truncation, with a proven bound: the sum stops after the first n terms, n the smallest integer
    with tail bound <= tol * M. Every term is 0 <= BSM(tau) <= M e^{-y tau} (M = S, y = q for a call:
    a call is worth less than the share it delivers; M = K, y = r for a put: less than the strike),
    so with rho = f/(f+1), g = e^{-y T/f} and rho g < 1 the omitted tail lies in
    [0, M g (rho g)^n / ((f+1)(1 - rho g))]: the result undercuts the series by at most tol * M,
    never overshoots. If rho g >= 1 (y <= -(f) ln(1 + 1/f)/T, an extreme negative rate) the series
    diverges and the result is NaN; NaN also outside the model of `everlasting_price` and for f <= 0.
    Cost: n ~ f ln(1/tol) vanilla prices per option (about 28 f at the default tol = 1e-12).
    """
    columns, calls, shape, scalar = as_columns(
        (S, K, sigma, funding_period, payments_per_period, r, q), is_call
    )
    assert calls is not None
    tol_f = float(tol)
    if scalar:
        s, k, v, t, f, rr, qq = (float(c[0]) for c in columns)
        return float(everlasting_price_discrete_scalar(s, k, v, t, f, rr, qq, bool(calls[0]), tol_f))
    out = np.empty(calls.size)
    _discrete_kernel(
        columns[0], columns[1], columns[2], columns[3], columns[4], columns[5], columns[6], calls, tol_f, out
    )
    return shape_result(out, shape, scalar)
