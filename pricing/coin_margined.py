"""Options quoted in units of the underlying coin (coin-margined): V/S and its sensitivities.

A coin-margined option pays its quote-currency payoff converted at the spot of expiry, so its value
in coins is W = V/S (V quote currency, S quote currency per coin). From V's greeks:

    W       = V / S                                   coins per option
    dW/dS   = (Delta - V/S) / S                        coins per (quote currency per coin)
    Delta - V/S                                        coins: the "price-adjusted" delta, the coins to
                                                       hold against one option once the premium's own
                                                       coin exposure (V/S coins) is counted
    d2W/dS2 = (Gamma - 2 (Delta - V/S) / S) / S        coins per (quote currency per coin)^2
    dW/dsigma = vega / S                               coins per 1.00 of sigma (sigma per sqrt(year))

(d2W/dS2 = Gamma/S - 2 Delta/S^2 + 2 V/S^3: differentiate V/S twice.) For a cross option (an
option on BTC whose premium and margin are TSLA tokens) pass S = the cross rate and the price and
greeks computed with it; see `pricing.cross`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from pricing.broadcast import FloatArray, as_columns, shape_result
from pricing.greeks import FloatOrArray


class CoinGreeks(NamedTuple):
    """Price and sensitivities of an option in units of its underlying coin (see the module doc).

    `price` coins per option (V/S); `delta` d(V/S)/dS in coins per unit of S (quote currency per
    coin); `price_adjusted_delta` Delta - V/S in coins (the coin hedge of one option); `gamma`
    d2(V/S)/dS2 in coins per unit of S squared; `vega` d(V/S)/dsigma in coins per 1.00 of sigma.
    """

    price: FloatOrArray
    delta: FloatOrArray
    price_adjusted_delta: FloatOrArray
    gamma: FloatOrArray
    vega: FloatOrArray


@njit(cache=True, error_model="numpy", forceinline=True)
def coin_margined_scalar(
    price: float, delta: float, gamma: float, vega: float, S: float
) -> tuple[float, float, float, float, float]:
    """(coin price, coin delta, price-adjusted delta, coin gamma, coin vega); NaN unless S > 0."""
    if not S > 0.0:  # also catches NaN
        return np.nan, np.nan, np.nan, np.nan, np.nan
    inv_s = 1.0 / S
    w = price * inv_s
    adjusted = delta - w
    return w, adjusted * inv_s, adjusted, (gamma - 2.0 * adjusted * inv_s) * inv_s, vega * inv_s


@njit(parallel=True, cache=True, error_model="numpy")
def _coin_kernel(
    price: FloatArray,
    delta: FloatArray,
    gamma: FloatArray,
    vega: FloatArray,
    S: FloatArray,
    o_price: FloatArray,
    o_delta: FloatArray,
    o_adj: FloatArray,
    o_gamma: FloatArray,
    o_vega: FloatArray,
) -> None:
    for i in prange(S.size):
        w, d, adj, g, v = coin_margined_scalar(price[i], delta[i], gamma[i], vega[i], S[i])
        o_price[i] = w
        o_delta[i] = d
        o_adj[i] = adj
        o_gamma[i] = g
        o_vega[i] = v


def coin_margined(
    price: FloatOrArray, delta: FloatOrArray, gamma: FloatOrArray, vega: FloatOrArray, S: FloatOrArray
) -> CoinGreeks:
    """The option of (price, delta, gamma, vega) quoted in coins of its underlying: `CoinGreeks`.

    price in quote currency, delta dV/dS, gamma d2V/dS2, vega per 1.00 of sigma (as from
    `bs_greeks` / `everlasting_greeks`), S spot in quote currency per coin. Returns V/S,
    (Delta - V/S)/S, Delta - V/S, d2(V/S)/dS2 and vega/S (units in `CoinGreeks`); floats for scalar
    inputs, else arrays of the broadcast shape; NaN where S <= 0.
    """
    columns, _, shape, scalar = as_columns((price, delta, gamma, vega, S))
    if scalar:
        values = coin_margined_scalar(*(float(c[0]) for c in columns))
        return CoinGreeks(*(float(v) for v in values))
    outs = [np.empty(columns[0].size) for _ in range(5)]
    _coin_kernel(columns[0], columns[1], columns[2], columns[3], columns[4], *outs)
    return CoinGreeks(*(shape_result(o, shape, scalar) for o in outs))
