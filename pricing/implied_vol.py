"""Black-Scholes-Merton implied volatility: `implied_vol(price, S, K, T, r, q, is_call)`.

Method: Jaeckel's "Let's be rational" on the normalised problem (see `pricing.lets_be_rational`). The
price is first reduced to the out-of-the-money time value by put-call parity, in discounted units so
that the no-arbitrage bounds checked here are exactly the ones the solver sees:

    lower bound  max(S e^{-qT} - K e^{-rT}, 0) for a call, max(K e^{-rT} - S e^{-qT}, 0) for a put
    upper bound  S e^{-qT} for a call, K e^{-rT} for a put

then divided by sqrt(S e^{-qT} K e^{-rT}) = e^{-rT} sqrt(F K), with x = ln(F/K) = ln(S/K) + (r - q) T.

Results: NaN for a price below the lower bound or at/above the upper bound (no finite volatility
reproduces it) and for invalid input (T <= 0, S <= 0, K <= 0, any NaN or infinity); 0.0 for a price
at the lower bound (sigma = 0 attains it) - "at" including prices below it by no more than the
rounding of the bound itself, 4 ulp of S e^{-qT} + K e^{-rT}. Never an exception.

Speed: the array kernel works in blocks of BLOCK options and runs each stage (reduction, guess nodes,
guess interpolation, first step, second step) over the whole block before the next, which gives the
CPU independent work to overlap (about 10-15% on one core, measured); blocks are spread over numba's
threads. Results are bitwise those of `implied_vol_scalar` (tested). Numba's cache does not notice
edits to `pricing/lets_be_rational.py` (only to this file): touch this file after changing that one.

Units: prices, S, K in quote currency; T in years; r, q continuously compounded per year; the result
sigma per sqrt(year).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit, prange

from pricing.broadcast import BoolArray, FloatArray, as_columns, shape_result
from pricing.greeks import FloatOrArray
from pricing.lets_be_rational import (
    DBL_EPSILON,
    MIDDLE,
    SETTLED,
    guess_from_nodes,
    guess_nodes,
    householder_step,
    needs_step,
    normalised_vol,
    rebracket,
)

# Two Householder(3) steps from the rational guess reach the attainable accuracy (paper, section 5).
MAX_ITERATIONS = 2
# Options per block of the array kernel: its scratch columns (~40 KB) stay in L1/L2.
BLOCK = 512
# Below this many options the thread pool's start-up costs more than it saves.
PARALLEL_THRESHOLD = 4096
# Prices this many ulps of S e^{-qT} + K e^{-rT} below the lower bound are the bound, rounded.
BOUND_ROUNDING_ULPS = 4.0

# Every kernel: cached, no ZeroDivisionError checks (IEEE results instead), FMA contraction allowed.
kernel = njit(cache=True, error_model="numpy", fastmath={"contract"})


@kernel
def reduce_to_normalised(
    price: float, S: float, K: float, T: float, r: float, q: float, is_call: bool
) -> tuple[bool, float, float, float, float, float]:
    """(valid, otm, gap, norm, x, b_max) of one option: the normalised problem of `normalised_vol`.

    otm: out-of-the-money time value (the option, or its parity partner when in the money), quote
    currency; gap: distance of the price below its upper bound, quote currency; norm =
    sqrt(S e^{-qT} K e^{-rT}), quote currency; x = -|ln(F/K)|; b_max = exp(x/2). valid is False for
    invalid inputs and prices outside the bounds (the result is then NaN).
    """
    if not (
        math.isfinite(price)
        and math.isfinite(S)
        and math.isfinite(K)
        and math.isfinite(T)
        and math.isfinite(r)
        and math.isfinite(q)
        and S > 0.0
        and K > 0.0
        and T > 0.0
    ):
        return False, 0.0, 0.0, 1.0, 0.0, 1.0
    fwd_s = S * math.exp(-q * T) if q != 0.0 else S  # discounted forward S e^{-qT}
    disc_k = K * math.exp(-r * T) if r != 0.0 else K  # discounted strike K e^{-rT}
    if not (fwd_s > 0.0 and disc_k > 0.0 and fwd_s < math.inf and disc_k < math.inf):
        return False, 0.0, 0.0, 1.0, 0.0, 1.0  # rates so extreme the discounted values left the range
    upper = fwd_s if is_call else disc_k
    intrinsic = max(fwd_s - disc_k if is_call else disc_k - fwd_s, 0.0)
    otm = price - intrinsic
    if not price < upper or otm < -BOUND_ROUNDING_ULPS * DBL_EPSILON * (fwd_s + disc_k):
        return False, 0.0, 0.0, 1.0, 0.0, 1.0
    x = -abs(math.log(S / K) + (r - q) * T)
    root_s = math.sqrt(fwd_s)
    root_k = math.sqrt(disc_k)
    # b_max = exp(x/2) = sqrt(min/max) of the two discounted values, without an exponential
    b_max = root_s / root_k if root_s < root_k else root_k / root_s
    # the gap comes straight from the caller's price: b_max - beta without cancellation
    return True, max(otm, 0.0), upper - price, root_s * root_k, x, b_max


@kernel
def implied_vol_scalar(
    price: float, S: float, K: float, T: float, r: float, q: float, is_call: bool
) -> float:
    """Implied volatility, per sqrt(year), of one European option; NaN/0.0 as in the module docstring."""
    valid, otm, gap, norm, x, b_max = reduce_to_normalised(price, S, K, T, r, q, is_call)
    if not valid:
        return math.nan
    return normalised_vol(otm, gap, norm, x, b_max, MAX_ITERATIONS) / math.sqrt(T)


@kernel
def _solve_block(
    price: FloatArray,
    S: FloatArray,
    K: FloatArray,
    T: FloatArray,
    r: FloatArray,
    q: FloatArray,
    is_call: BoolArray,
    out: FloatArray,
    lo: int,
    hi: int,
) -> None:
    """Implied vols of options lo..hi-1 into `out`, stage by stage (the scalar function's arithmetic)."""
    m = hi - lo
    otms = np.empty(m)
    gaps = np.empty(m)
    norms = np.empty(m)
    xs = np.empty(m)
    b_maxs = np.empty(m)
    nodes = np.empty((m, 6))
    lowers = np.empty(m, dtype=np.bool_)
    ss = np.empty(m)
    lefts = np.empty(m)
    rights = np.empty(m)
    targets = np.empty(m)
    steps = np.empty(m)
    objectives = np.empty(m, dtype=np.int64)
    for j in range(m):  # reduction, and the settled cases
        i = lo + j
        valid, otms[j], gaps[j], norms[j], xs[j], b_maxs[j] = reduce_to_normalised(
            price[i], S[i], K[i], T[i], r[i], q[i], is_call[i]
        )
        objectives[j] = MIDDLE
        if not valid:
            ss[j], objectives[j] = math.nan, SETTLED
        elif not otms[j] > 0.0:
            ss[j], objectives[j] = 0.0, SETTLED
    for j in range(m):  # guess: the nodes
        if objectives[j] != SETTLED:
            lowers[j], nodes[j, 0], nodes[j, 1], nodes[j, 2], nodes[j, 3], nodes[j, 4], nodes[j, 5] = (
                guess_nodes(otms[j] / norms[j], xs[j], b_maxs[j])
            )
    for j in range(m):  # guess: interpolation
        if objectives[j] != SETTLED:
            n = nodes[j]
            ss[j], lefts[j], rights[j], objectives[j], targets[j] = guess_from_nodes(
                otms[j], gaps[j], norms[j], xs[j], b_maxs[j], lowers[j], n[0], n[1], n[2], n[3], n[4], n[5]
            )
    for iteration in range(MAX_ITERATIONS):
        for j in range(m):
            if objectives[j] == SETTLED:
                continue
            if not needs_step(iteration, ss[j], steps[j]):
                objectives[j] = SETTLED  # converged: like the scalar loop's break
                continue
            s = rebracket(ss[j], lefts[j], rights[j]) if iteration > 0 else ss[j]
            ds, lefts[j], rights[j] = householder_step(
                xs[j], b_maxs[j], s, objectives[j], targets[j], lefts[j], rights[j]
            )
            ss[j] = s + ds
            steps[j] = ds
    for j in range(m):
        out[lo + j] = ss[j] / math.sqrt(T[lo + j])


@kernel
def _serial_kernel(
    price: FloatArray,
    S: FloatArray,
    K: FloatArray,
    T: FloatArray,
    r: FloatArray,
    q: FloatArray,
    is_call: BoolArray,
    out: FloatArray,
) -> None:
    """Fill `out` with implied vols on the calling thread."""
    n = out.shape[0]
    for lo in range(0, n, BLOCK):
        _solve_block(price, S, K, T, r, q, is_call, out, lo, min(n, lo + BLOCK))


@njit(cache=True, error_model="numpy", fastmath={"contract"}, parallel=True)
def _parallel_kernel(
    price: FloatArray,
    S: FloatArray,
    K: FloatArray,
    T: FloatArray,
    r: FloatArray,
    q: FloatArray,
    is_call: BoolArray,
    out: FloatArray,
) -> None:
    """Fill `out` with implied vols, blocks spread over numba's threads (`numba.set_num_threads`)."""
    n = out.shape[0]
    for block in prange((n + BLOCK - 1) // BLOCK):
        lo = block * BLOCK
        _solve_block(price, S, K, T, r, q, is_call, out, lo, min(n, lo + BLOCK))


def implied_vol(price: Any, S: Any, K: Any, T: Any, r: Any, q: Any, is_call: Any) -> FloatOrArray:
    """Black-Scholes-Merton implied volatility, broadcasting over floats and arrays.

    price: option premium in quote currency; S: spot (quote currency); K: strike (quote currency);
    T: time to expiry in years; r: risk-free rate, q: dividend/carry yield, both continuously
    compounded per year; is_call: bool or bool array. Returns sigma per sqrt(year) - a float when every
    input is a scalar, else an array of the broadcast shape - with NaN where the price is outside the
    no-arbitrage bounds or an input is invalid, and 0.0 where the price equals the lower bound.
    """
    (p, s, k, t, rr, qq), calls, shape, scalar = as_columns((price, S, K, T, r, q), is_call)
    assert calls is not None  # as_columns returns the bool column whenever is_call is given
    out = np.empty(p.shape[0], dtype=np.float64)
    # scalars go through the serial kernel too: one compiled path, so a first call compiles less
    if out.shape[0] >= PARALLEL_THRESHOLD:
        _parallel_kernel(p, s, k, t, rr, qq, calls, out)
    else:
        _serial_kernel(p, s, k, t, rr, qq, calls, out)
    return shape_result(out, shape, scalar)
