"""Implied volatility speed: `pricing.implied_vol` against peers measured in the same run.

Two workloads of N_OPTIONS random options each, priced with `pricing.black_scholes.bs_price_scalar`:
"market" (K/S 0.7..1.4, T 1 day..2 years, sigma 0.1..1) and "wide" (the accuracy grid's ranges:
K/S 0.2..5, T 1 day..10 years, sigma 0.01..5, log-uniform; a third of these prices round to their
lower bound and return at once, for every implementation). r in -1%..8%, q in 0..5%, half calls.

Peers: py_vollib_vectorized.vectorized_implied_volatility (numba-compiled LetsBeRational, one thread)
and py_lets_be_rational (pure Python, extrapolated from N_PURE options). Ours on one thread and on
all cores (`numba.set_num_threads`). Accuracy in the same run: N_EXACT options of each workload are
priced exactly (40-digit decimal, tests/pricing/test_implied_vol.py) and each row's note gives the
largest |vol - sigma| where the vol is conditioned to 1e-12 (kappa <= 1e-12, defined in that test
module). Also the first-call compile time in a fresh process, with a cold and a warm numba cache.

Run: `.venv/bin/python -m benchmarks.implied_vol` (needs the `bench` extra for py_vollib_vectorized).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import NamedTuple

import numba
import numpy as np
import numpy.typing as npt
import py_lets_be_rational as lbr  # type: ignore[import-untyped]
import py_vollib_vectorized as pv  # type: ignore[import-untyped]
from numba import njit, prange

from benchmarks.table import Row, best_of, first_call_times, print_table, ratios
from pricing.black_scholes import bs_price_scalar
from pricing.implied_vol import implied_vol
from tests.pricing.test_implied_vol import ExactSet

FloatArray = npt.NDArray[np.float64]
N_OPTIONS = 1_000_000
N_PURE = 5_000
N_EXACT = 2_000
MAX_THREADS: int = numba.get_num_threads()  # all cores numba may use (2 here)
REPEAT = 3  # timed calls per round
ROUNDS = 3


class Workload(NamedTuple):
    """Inputs of `implied_vol` plus the sigma that priced them and the conditioning of each vol."""

    name: str
    price: FloatArray
    S: FloatArray
    K: FloatArray
    T: FloatArray
    r: FloatArray
    q: FloatArray
    is_call: npt.NDArray[np.bool_]
    sigma: FloatArray
    conditioned: npt.NDArray[np.bool_]


@njit(cache=True, parallel=True)
def _prices(
    S: FloatArray,
    K: FloatArray,
    T: FloatArray,
    r: FloatArray,
    q: FloatArray,
    sigma: FloatArray,
    is_call: npt.NDArray[np.bool_],
    out: FloatArray,
) -> None:
    """Black-Scholes-Merton prices (quote currency) into `out`."""
    for i in prange(out.shape[0]):
        out[i] = bs_price_scalar(S[i], K[i], T[i], r[i], q[i], sigma[i], is_call[i])


def _norm_cdf(z: FloatArray) -> FloatArray:
    """N(z) for arrays (float conditioning estimate only)."""
    return np.asarray(0.5 * np.vectorize(math.erfc)(-z / math.sqrt(2.0)), dtype=np.float64)


def workload(name: str, n: int = N_OPTIONS, seed: int = 7) -> Workload:
    """n random options of the named workload ("market" or "wide"), priced, with their conditioning."""
    rng = np.random.default_rng(seed)
    S = np.full(n, 100.0)
    if name == "market":
        K = 100.0 * np.exp(rng.uniform(np.log(0.7), np.log(1.4), n))
        T = np.exp(rng.uniform(np.log(1 / 365), np.log(2.0), n))
        sigma = rng.uniform(0.1, 1.0, n)
    else:
        K = 100.0 * np.exp(rng.uniform(np.log(0.2), np.log(5.0), n))
        T = np.exp(rng.uniform(np.log(1 / 365), np.log(10.0), n))
        sigma = np.exp(rng.uniform(np.log(0.01), np.log(5.0), n))
    r = rng.uniform(-0.01, 0.08, n)
    q = rng.uniform(0.0, 0.05, n)
    is_call = rng.random(n) < 0.5
    price = np.empty(n)
    _prices(S, K, T, r, q, sigma, is_call, price)
    # kappa = (ulp(P) + |dP/dS| ulp(S) + |dP/dK| ulp(K)) / vega
    total = sigma * np.sqrt(T)
    d1 = (np.log(S / K) + (r - q) * T) / total + 0.5 * total
    sign = np.where(is_call, 1.0, -1.0)
    with np.errstate(all="ignore"):
        vega = S * np.exp(-q * T - 0.5 * d1 * d1) / math.sqrt(2.0 * math.pi) * np.sqrt(T)
        moved = (
            np.spacing(price)
            + np.exp(-q * T) * _norm_cdf(sign * d1) * np.spacing(S)
            + np.exp(-r * T) * _norm_cdf(sign * (d1 - total)) * np.spacing(K)
        )
        conditioned = moved / vega <= 1e-12
    return Workload(name, price, S, K, T, r, q, is_call, sigma, conditioned)


def exact_sample(w: Workload, n: int = N_EXACT) -> ExactSet:
    """The first n options of the workload, priced exactly, with their conditioning."""
    columns = [
        (
            float(w.S[i]),
            float(w.K[i]),
            float(w.T[i]),
            float(w.r[i]),
            float(w.q[i]),
            float(w.sigma[i]),
            bool(w.is_call[i]),
        )
        for i in range(n)
    ]
    return ExactSet(columns)


def _max_error(exact: ExactSet, vol: FloatArray) -> str:
    """Largest |vol - sigma| over the exactly priced options whose vol is conditioned, and NaN count."""
    error = np.abs(vol - exact.sigma)[exact.conditioned]
    return f"max err {np.nanmax(error):.1e} ({int(np.isnan(error).sum())} NaN)"


def _ours_seconds(w: Workload, threads: int, repeat: int) -> float:
    """Best seconds of `implied_vol` over the workload on `threads` threads."""
    numba.set_num_threads(threads)
    try:
        return best_of(lambda: implied_vol(w.price, w.S, w.K, w.T, w.r, w.q, w.is_call), repeat)
    finally:
        numba.set_num_threads(MAX_THREADS)


def _vollib_vectorized(
    price: FloatArray,
    S: FloatArray,
    K: FloatArray,
    T: FloatArray,
    r: FloatArray,
    q: FloatArray,
    is_call: npt.NDArray[np.bool_],
) -> FloatArray:
    """py_vollib_vectorized's implied vols (Black-Scholes-Merton model, numpy output, errors ignored)."""
    return np.asarray(
        pv.vectorized_implied_volatility(
            price,
            S,
            K,
            T,
            r,
            np.where(is_call, "c", "p"),
            q=q,
            model="black_scholes_merton",
            return_as="numpy",
            on_error="ignore",
        )
    )


def _pure_python(w: Workload) -> float:
    """Options per second of py_lets_be_rational (Black form: F = S e^{(r-q)T}, undiscounted price)."""
    n = min(N_PURE, w.price.size)
    forward = w.S * np.exp((w.r - w.q) * w.T)
    undiscounted = w.price * np.exp(w.r * w.T)
    flags = np.where(w.is_call, 1.0, -1.0)

    def run() -> None:
        for i in range(n):
            with contextlib.suppress(
                lbr.exceptions.BelowIntrinsicException, lbr.exceptions.AboveMaximumException
            ):
                lbr.implied_volatility_from_a_transformed_rational_guess(
                    undiscounted[i], forward[i], w.K[i], w.T[i], flags[i]
                )

    return n / best_of(run, 2)


def workload_rows(name: str) -> list[Row]:
    """Rows of one workload: ours on 1 and on all threads (with ratios to the peers), then the peers.

    The timings run in ROUNDS interleaved rounds and keep each one's best, so that a burst of other
    load on the (shared) machine spoils at most a round, and it spoils ours and the peer alike.
    """
    w = workload(name)
    x = exact_sample(w)
    exact_args = (x.price, x.S, x.K, x.T, x.r, x.q, x.is_call)
    thread_counts = sorted({1, MAX_THREADS})
    ours = dict.fromkeys(thread_counts, math.inf)
    pv_seconds = math.inf
    for _ in range(ROUNDS):
        for threads in thread_counts:
            ours[threads] = min(ours[threads], _ours_seconds(w, threads, REPEAT))
        pv_seconds = min(
            pv_seconds, best_of(lambda: _vollib_vectorized(w.price, w.S, w.K, w.T, w.r, w.q, w.is_call), 1)
        )
    task = f"implied_vol, {name}"
    pv_note = f"1 thread, {_max_error(x, _vollib_vectorized(*exact_args))}"
    peers = [
        Row(task, "py_vollib_vectorized", w.price.size / pv_seconds, pv_note),
        Row(task, "py_lets_be_rational (pure Python)", _pure_python(w), f"from {N_PURE:,} options"),
    ]
    accuracy = _max_error(x, np.asarray(implied_vol(*exact_args)))
    out: list[Row] = []
    for threads in thread_counts:
        rate = w.price.size / ours[threads]
        label = "1 thread" if threads == 1 else f"{threads} threads"
        out.append(
            Row(task, "ours (Let's be rational, numba)", rate, f"{label}, {accuracy}", ratios(rate, peers))
        )
    return out + peers


def rows() -> list[Row]:
    """Measured rows of both workloads (see `workload_rows`)."""
    warnings.filterwarnings("ignore")  # py_vollib_vectorized / numba deprecation chatter
    return workload_rows("market") + workload_rows("wide")


_FIRST_CALL = """
import json, time
t0 = time.perf_counter()
from pricing.implied_vol import implied_vol
t1 = time.perf_counter()
implied_vol(10.0, 100.0, 100.0, 1.0, 0.0, 0.0, True)
t2 = time.perf_counter()
import numpy as np
n = 10_000
implied_vol(np.full(n, 10.0), 100.0, 100.0, 1.0, 0.0, 0.0, True)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "scalar call": t2 - t1, "array call": t3 - t2}))
"""


def compile_times() -> dict[str, dict[str, float]]:
    """First calls in fresh processes: with an empty numba cache (cold compile), then with it filled."""
    return first_call_times(_FIRST_CALL)


def main() -> list[Row]:
    """Print and return the rows, then the first-call compile times."""
    times = compile_times()
    measured = rows()
    title = f"implied_vol, {N_OPTIONS:,} random options per workload, best of {REPEAT * ROUNDS}"
    print_table(f"{title}, {MAX_THREADS} cores available; max err over {N_EXACT:,} exact prices", measured)
    print()
    print("first call in a fresh process (seconds)")
    for label, parts in times.items():
        print(f"  {label:<11}" + "  ".join(f"{k} {v:6.2f}" for k, v in parts.items()))
    return measured


if __name__ == "__main__":
    main()
