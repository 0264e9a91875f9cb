"""Everlasting-option speed: `everlasting_greeks` against `bs_greeks` and numerical integration.

1,000,000 random everlasting options (funding periods 1 hour to 7 days, S/K 0.5..2, sigma 0.1..2,
r and q 0..10%, calls and puts). Peers measured in the same run: `bs_greeks` on the same arrays
(the goal is everlasting_greeks within 2x of it, i.e. a ratio >= 0.5) and what an everlasting
pricer is otherwise checked against, scipy.integrate.quad of (1/T) exp(-tau/T) BSM(tau) per option
(extrapolated from a sample). Ours and bs_greeks on two threads and on one. Also the first-call
time in a fresh process with a cold and with a warm numba cache.

Run: `.venv/bin/python -m benchmarks.everlasting` (scipy comes with the `bench` extra; without it
the quad row is left out).
"""

from __future__ import annotations

import importlib
import math
import time
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from benchmarks.table import Row, first_call_times, interleaved_best, print_table, ratios
from pricing.black_scholes import bs_greeks
from pricing.everlasting import everlasting_greeks, everlasting_price

FloatArray = npt.NDArray[np.float64]
N_OPTIONS = 1_000_000
N_QUAD = 300
MAX_THREADS: int = numba.get_num_threads()  # all cores numba may use
TASK = "everlasting: price + 5 greeks"


def random_options(n: int, seed: int = 7) -> dict[str, Any]:
    """n random everlasting options: S, K, sigma, T (funding period, years), r, q, is_call."""
    rng = np.random.default_rng(seed)
    K = np.full(n, 100.0)
    return {
        "S": K * np.exp(rng.uniform(math.log(0.5), math.log(2.0), n)),
        "K": K,
        "sigma": rng.uniform(0.1, 2.0, n),
        "T": rng.uniform(1.0 / (365 * 24), 7.0 / 365.0, n),
        "r": rng.uniform(0.0, 0.1, n),
        "q": rng.uniform(0.0, 0.1, n),
        "is_call": rng.random(n) < 0.5,
    }


def quad_per_second(x: dict[str, Any], sample: int) -> float | None:
    """Options per second of scipy quad on the definition, one option at a time (None without scipy)."""
    try:  # scipy has no type stubs here: keep its two functions as Any
        quad: Any = importlib.import_module("scipy.integrate").quad
        ndtr: Any = importlib.import_module("scipy.special").ndtr
    except ImportError:
        return None

    def one(S: float, K: float, sigma: float, T: float, r: float, q: float, is_call: bool) -> float:
        phi = 1.0 if is_call else -1.0

        def integrand(tau: float) -> float:
            if tau <= 0.0:
                return 0.0
            v = sigma * math.sqrt(tau)
            d1 = (math.log(S / K) + (r - q) * tau) / v + 0.5 * v
            bsm = phi * (
                S * math.exp(-q * tau) * ndtr(phi * d1) - K * math.exp(-r * tau) * ndtr(phi * (d1 - v))
            )
            return float(math.exp(-tau / T) * bsm / T)

        return float(quad(integrand, 0.0, math.inf, limit=200)[0])

    start = time.perf_counter()
    for i in range(sample):
        S, K, sigma, T, r, q = (float(x[k][i]) for k in ("S", "K", "sigma", "T", "r", "q"))
        one(S, K, sigma, T, r, q, bool(x["is_call"][i]))
    return sample / (time.perf_counter() - start)


def rows(n: int = N_OPTIONS, rounds: int = 3) -> list[Row]:
    """Measure ours and the peers; returns table rows (peers first, then ours with ratios)."""
    x = random_options(n)
    args = (x["S"], x["K"], x["sigma"], x["T"], x["r"], x["q"], x["is_call"])
    bs_args = (x["S"], x["K"], x["T"], x["r"], x["q"], x["sigma"], x["is_call"])
    everlasting_greeks(*(a[:8] for a in args))  # compile (or load from the cache) outside the timing
    everlasting_price(*(a[:8] for a in args))
    bs_greeks(*(a[:8] for a in bs_args))

    quad_rate = quad_per_second(x, N_QUAD)
    quad_row = (
        [Row(TASK, "scipy quad of the definition", quad_rate, f"1 thread, from {N_QUAD} options")]
        if quad_rate is not None
        else []
    )
    peers: list[Row] = []
    ours: list[Row] = []
    for threads in sorted({MAX_THREADS, 1}, reverse=True):
        numba.set_num_threads(threads)
        note = f"{threads} thread{'s' if threads > 1 else ''}"
        t_bs, t_greeks, t_price = interleaved_best(
            [
                lambda: bs_greeks(*bs_args),
                lambda: everlasting_greeks(*args),
                lambda: everlasting_price(*args),
            ],
            [2, 2, 2],
            rounds,
        )
        bs_row = Row(TASK, "bs_greeks (vanilla, same arrays)", n / t_bs, note)
        peers.append(bs_row)
        ours.append(
            Row(
                TASK,
                "everlasting_greeks (ours)",
                n / t_greeks,
                note,
                ratios(n / t_greeks, [bs_row, *quad_row]),
            )
        )
        ours.append(
            Row(
                "everlasting: price",
                "everlasting_price (ours)",
                n / t_price,
                note,
                ratios(n / t_price, [bs_row]),
            )
        )
    numba.set_num_threads(MAX_THREADS)
    return peers + quad_row + ours


_FIRST_CALL = """
import json, time
t0 = time.perf_counter()
import numpy as np
from pricing.everlasting import everlasting_greeks, everlasting_price
t1 = time.perf_counter()
S = np.full(4, 100.0)
everlasting_greeks(S, 100.0, 0.5, 7 / 365, 0.01, 0.0, True)
t2 = time.perf_counter()
everlasting_price(S, 100.0, 0.5, 7 / 365, 0.01, 0.0, True)
t3 = time.perf_counter()
everlasting_greeks(100.0, 100.0, 0.5, 7 / 365, 0.01, 0.0, True)
t4 = time.perf_counter()
times = {"import": t1 - t0, "greeks array": t2 - t1, "price array": t3 - t2, "greeks scalar": t4 - t3}
print(json.dumps(times))
"""


def compile_times() -> dict[str, dict[str, float]]:
    """First calls in fresh processes: with an empty numba cache (cold compile), then with it filled."""
    return first_call_times(_FIRST_CALL)


def main() -> list[Row]:
    """Print and return the rows, then the first-call times."""
    times = compile_times()
    measured = rows()
    print_table(
        f"Everlasting options, {N_OPTIONS:,} random options, best of 3 interleaved rounds, "
        f"{MAX_THREADS} cores available (goal: >= 0.5x bs_greeks)",
        measured,
    )
    print()
    print("first call in a fresh process (seconds)")
    for label, parts in times.items():
        print(f"  {label:<11}" + "  ".join(f"{k} {v:6.2f}" for k, v in parts.items()))
    return measured


if __name__ == "__main__":
    main()
