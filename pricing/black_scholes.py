"""Black-Scholes-Merton kernels (European options on an asset with continuous yield q).

Scalar `njit` kernels used by every other kernel in `pricing/`; the public broadcasting
functions `bs_price` and `bs_greeks` are built on them. Units: S, K in quote currency; T in
years; r, q continuously compounded per year; sigma per sqrt(year).
"""

from __future__ import annotations

import math

from numba import njit

from pricing.normal import norm_cdf, norm_pdf


@njit(cache=True)
def bs_price_scalar(S: float, K: float, T: float, r: float, q: float, sigma: float, is_call: bool) -> float:
    """Black-Scholes-Merton price of one option; at T <= 0 or sigma <= 0 the discounted intrinsic."""
    df_r = math.exp(-r * T) if T > 0.0 else 1.0
    df_q = math.exp(-q * T) if T > 0.0 else 1.0
    if T <= 0.0 or sigma <= 0.0:
        forward_intrinsic = S * df_q - K * df_r
        return max(forward_intrinsic, 0.0) if is_call else max(-forward_intrinsic, 0.0)
    sqrt_t = math.sqrt(T)
    d1 = (math.log(S / K) + (r - q + 0.5 * sigma * sigma) * T) / (sigma * sqrt_t)
    d2 = d1 - sigma * sqrt_t
    if is_call:
        return S * df_q * norm_cdf(d1) - K * df_r * norm_cdf(d2)
    return K * df_r * norm_cdf(-d2) - S * df_q * norm_cdf(-d1)


@njit(cache=True)
def bs_greeks_scalar(
    S: float, K: float, T: float, r: float, q: float, sigma: float, is_call: bool
) -> tuple[float, float, float, float, float, float]:
    """(price, delta, gamma, vega, theta, rho) of one option; units as in `pricing.greeks.Greeks`."""
    price = bs_price_scalar(S, K, T, r, q, sigma, is_call)
    if T <= 0.0 or sigma <= 0.0:
        itm = (S > K) if is_call else (S < K)
        delta = (1.0 if is_call else -1.0) if itm else 0.0
        return price, delta, 0.0, 0.0, 0.0, 0.0
    sqrt_t = math.sqrt(T)
    df_r = math.exp(-r * T)
    df_q = math.exp(-q * T)
    d1 = (math.log(S / K) + (r - q + 0.5 * sigma * sigma) * T) / (sigma * sqrt_t)
    d2 = d1 - sigma * sqrt_t
    pdf = norm_pdf(d1)
    gamma = df_q * pdf / (S * sigma * sqrt_t)
    vega = S * df_q * pdf * sqrt_t
    decay = -S * df_q * pdf * sigma / (2.0 * sqrt_t)
    if is_call:
        delta = df_q * norm_cdf(d1)
        theta = decay - r * K * df_r * norm_cdf(d2) + q * S * df_q * norm_cdf(d1)
        rho = K * T * df_r * norm_cdf(d2)
    else:
        delta = -df_q * norm_cdf(-d1)
        theta = decay + r * K * df_r * norm_cdf(-d2) - q * S * df_q * norm_cdf(-d1)
        rho = -K * T * df_r * norm_cdf(-d2)
    return price, delta, gamma, vega, theta, rho
