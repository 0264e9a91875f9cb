"""Black-Scholes-Merton speed: `bs_greeks` and `bs_price` against peers measured in the same run.

Peers: numpy + scipy.special.ndtr (vectorised, the same outputs), QuantLib's AnalyticEuropeanEngine
(one VanillaOption per option) and BlackCalculator / blackFormula (extrapolated from 20,000 options),
py_vollib_vectorized (price + all greeks). Ours on one thread and on two (numba.set_num_threads).
Also the first-call compile time in a fresh process, with a cold and with a warm numba cache.

Run: `.venv/bin/python -m benchmarks.pricing` (needs the `bench` extra for scipy / py_vollib).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
import py_vollib_vectorized as pv  # type: ignore[import-untyped]
import QuantLib as ql
from scipy.special import ndtr  # type: ignore[import-untyped]

from benchmarks.table import Row, first_call_times, interleaved_best, print_table, ratios
from pricing.black_scholes import bs_greeks, bs_price

FloatArray = npt.NDArray[np.float64]
Options = tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, npt.NDArray[np.bool_]]
N_OPTIONS = 1_000_000
N_QUANTLIB = 20_000
MAX_THREADS: int = numba.get_num_threads()  # all cores numba may use (2 here)
GREEKS = "bs_greeks: price + 5 greeks"
PRICE = "bs_price: price"


def random_options(n: int, seed: int = 7) -> Options:
    """n random options around the money: S, K, T (years), r, q, sigma, is_call."""
    rng = np.random.default_rng(seed)
    S = rng.uniform(50.0, 150.0, n)
    K = S * np.exp(rng.uniform(-0.5, 0.5, n))
    T = rng.uniform(1.0 / 365.0, 2.0, n)
    r = rng.uniform(0.0, 0.08, n)
    q = rng.uniform(0.0, 0.04, n)
    sigma = rng.uniform(0.05, 1.5, n)
    is_call = rng.random(n) < 0.5
    return S, K, T, r, q, sigma, is_call


def head(options: Options, n: int) -> Options:
    """The first n options."""
    S, K, T, r, q, sigma, is_call = options
    return S[:n], K[:n], T[:n], r[:n], q[:n], sigma[:n], is_call[:n]


# ---------------------------------------------------------------- peers


def numpy_greeks(
    S: FloatArray,
    K: FloatArray,
    T: FloatArray,
    r: FloatArray,
    q: FloatArray,
    sigma: FloatArray,
    is_call: npt.NDArray[np.bool_],
) -> tuple[FloatArray, ...]:
    """Vectorised numpy + scipy.special.ndtr: price, delta, gamma, vega, theta, rho."""
    sqrt_t = np.sqrt(T)
    v = sigma * sqrt_t
    d1 = (np.log(S / K) + (r - q) * T) / v + 0.5 * v
    d2 = d1 - v
    phi = np.where(is_call, 1.0, -1.0)
    fwd_s = S * np.exp(-q * T)
    fwd_k = K * np.exp(-r * T)
    n1 = ndtr(phi * d1)
    n2 = ndtr(phi * d2)
    pdf_s = fwd_s * np.exp(-0.5 * d1 * d1) * (1.0 / math.sqrt(2.0 * math.pi))
    price = phi * (fwd_s * n1 - fwd_k * n2)
    delta = phi * np.exp(-q * T) * n1
    gamma = pdf_s / (S * S * v)
    vega = pdf_s * sqrt_t
    theta = -0.5 * pdf_s * sigma / sqrt_t + phi * (q * fwd_s * n1 - r * fwd_k * n2)
    rho = phi * T * fwd_k * n2
    return price, delta, gamma, vega, theta, rho


def numpy_price(
    S: FloatArray,
    K: FloatArray,
    T: FloatArray,
    r: FloatArray,
    q: FloatArray,
    sigma: FloatArray,
    is_call: npt.NDArray[np.bool_],
) -> FloatArray:
    """Vectorised numpy + scipy.special.ndtr price."""
    v = sigma * np.sqrt(T)
    d1 = (np.log(S / K) + (r - q) * T) / v + 0.5 * v
    phi = np.where(is_call, 1.0, -1.0)
    result: FloatArray = phi * (
        S * np.exp(-q * T) * ndtr(phi * d1) - K * np.exp(-r * T) * ndtr(phi * (d1 - v))
    )
    return result


def quantlib_engine(options: Options) -> None:
    """One VanillaOption with AnalyticEuropeanEngine per option: NPV and the five greeks."""
    today = ql.Date(15, ql.January, 2024)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    spot, rate, div, vol = (
        ql.SimpleQuote(100.0),
        ql.SimpleQuote(0.0),
        ql.SimpleQuote(0.0),
        ql.SimpleQuote(0.2),
    )
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(spot),
        ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(div), dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(rate), dc)),
        ql.BlackVolTermStructureHandle(
            ql.BlackConstantVol(today, ql.NullCalendar(), ql.QuoteHandle(vol), dc)
        ),
    )
    engine = ql.AnalyticEuropeanEngine(process)
    S, K, T, r, q, sigma, is_call = options
    for i in range(S.size):
        spot.setValue(float(S[i]))
        rate.setValue(float(r[i]))
        div.setValue(float(q[i]))
        vol.setValue(float(sigma[i]))
        payoff = ql.PlainVanillaPayoff(ql.Option.Call if is_call[i] else ql.Option.Put, float(K[i]))
        option = ql.VanillaOption(payoff, ql.EuropeanExercise(today + max(1, round(float(T[i]) * 365.0))))
        option.setPricingEngine(engine)
        option.NPV(), option.delta(), option.gamma(), option.vega(), option.theta(), option.rho()


def quantlib_black_calculator(options: Options) -> None:
    """ql.BlackCalculator per option (T given directly): value and the five greeks."""
    S, K, T, r, q, sigma, is_call = options
    for i in range(S.size):
        s, t = float(S[i]), float(T[i])
        payoff = ql.PlainVanillaPayoff(ql.Option.Call if is_call[i] else ql.Option.Put, float(K[i]))
        calc = ql.BlackCalculator(
            payoff, s * math.exp((r[i] - q[i]) * t), float(sigma[i]) * math.sqrt(t), math.exp(-r[i] * t)
        )
        calc.value(), calc.delta(s), calc.gamma(s), calc.vega(t), calc.theta(s, t), calc.rho(t)


def quantlib_black_formula(options: Options) -> None:
    """ql.blackFormula per option: price only."""
    S, K, T, r, q, sigma, is_call = options
    call, put = ql.Option.Call, ql.Option.Put
    for i in range(S.size):
        t = float(T[i])
        ql.blackFormula(
            call if is_call[i] else put,
            float(K[i]),
            float(S[i]) * math.exp((r[i] - q[i]) * t),
            float(sigma[i]) * math.sqrt(t),
            math.exp(-r[i] * t),
        )


def py_vollib_greeks(options: Options, with_price: bool = True) -> None:
    """py_vollib_vectorized: vectorized_black_scholes_merton price and get_all_greeks."""
    S, K, T, r, q, sigma, is_call = options
    flag = np.where(is_call, "c", "p")
    if with_price:
        pv.vectorized_black_scholes_merton(flag, S, K, T, r, sigma, q, return_as="numpy")
    pv.get_all_greeks(flag, S, K, T, r, sigma, q, model="black_scholes_merton", return_as="dict")


def py_vollib_price(options: Options) -> None:
    S, K, T, r, q, sigma, is_call = options
    pv.vectorized_black_scholes_merton(np.where(is_call, "c", "p"), S, K, T, r, sigma, q, return_as="numpy")


# ---------------------------------------------------------------- rows


def _with_threads(threads: int, fn: Any, options: Options) -> Callable[[], object]:
    def run() -> object:
        numba.set_num_threads(threads)
        return fn(*options)

    return run


def _measure(
    task: str,
    ours: Any,
    options: Options,
    peers: list[tuple[str, Callable[[], object], int, int, str]],
    rounds: int = 3,
) -> list[Row]:
    """Rows for ours (1 thread, all threads) and the peers, timed in interleaved rounds.

    `peers` holds (implementation, fn, options per call, calls per round, note).
    """
    ours(*options)  # compile or load from the cache outside the timing
    thread_counts = (1, MAX_THREADS)
    fns = [_with_threads(t, ours, options) for t in thread_counts] + [p[1] for p in peers]
    repeats = [5] * len(thread_counts) + [p[3] for p in peers]
    best = interleaved_best(fns, repeats, rounds)
    numba.set_num_threads(MAX_THREADS)
    n = options[0].size
    peer_rows = [
        Row(task, name, per_call / t, note)
        for (name, _, per_call, _, note), t in zip(peers, best[2:], strict=True)
    ]
    our_rows = [
        Row(task, f"perpetua numba, {th} thread{'s' if th > 1 else ''}", n / t, "", ratios(n / t, peer_rows))
        for th, t in zip(thread_counts, best[:2], strict=True)
    ]
    return our_rows + peer_rows


def greeks_rows(n: int = N_OPTIONS, n_quantlib: int = N_QUANTLIB) -> list[Row]:
    """bs_greeks (price + 5 greeks) against numpy+ndtr, QuantLib engine / BlackCalculator, py_vollib."""
    options = random_options(n)
    small = head(options, n_quantlib)
    py_vollib_greeks(small)  # its numba compile, outside the timing
    per_option = f"per option, from {n_quantlib:,}"
    peers: list[tuple[str, Callable[[], object], int, int, str]] = [
        ("numpy + scipy ndtr", lambda: numpy_greeks(*options), n, 2, "vectorised, 1 thread"),
        ("QuantLib AnalyticEuropeanEngine", lambda: quantlib_engine(small), n_quantlib, 1, per_option),
        ("QuantLib BlackCalculator", lambda: quantlib_black_calculator(small), n_quantlib, 1, per_option),
        ("py_vollib_vectorized", lambda: py_vollib_greeks(options), n, 1, "price + get_all_greeks"),
    ]
    return _measure(GREEKS, bs_greeks, options, peers)


def price_rows(n: int = N_OPTIONS, n_quantlib: int = N_QUANTLIB) -> list[Row]:
    """bs_price against numpy+ndtr, QuantLib blackFormula, py_vollib_vectorized."""
    options = random_options(n, seed=8)
    small = head(options, n_quantlib)
    py_vollib_price(small)
    peers: list[tuple[str, Callable[[], object], int, int, str]] = [
        ("numpy + scipy ndtr", lambda: numpy_price(*options), n, 2, "vectorised, 1 thread"),
        (
            "QuantLib blackFormula",
            lambda: quantlib_black_formula(small),
            n_quantlib,
            1,
            f"per option, from {n_quantlib:,}",
        ),
        ("py_vollib_vectorized", lambda: py_vollib_price(options), n, 1, ""),
    ]
    return _measure(PRICE, bs_price, options, peers)


_FIRST_CALL = """
import json, time
marks = [(time.perf_counter(), time.process_time())]
import numpy as np
from pricing.black_scholes import bs_greeks, bs_price
marks.append((time.perf_counter(), time.process_time()))
a = np.full(16, 1.0)
bs_greeks(a * 100, a * 100, a, a * 0.01, a * 0.0, a * 0.2, a > 0)
marks.append((time.perf_counter(), time.process_time()))
bs_price(a * 100, a * 100, a, a * 0.01, a * 0.0, a * 0.2, a > 0)
marks.append((time.perf_counter(), time.process_time()))
bs_greeks(100.0, 100.0, 1.0, 0.01, 0.0, 0.2, True)
marks.append((time.perf_counter(), time.process_time()))
names = ["import", "bs_greeks array", "bs_price array", "bs_greeks scalar"]
steps = zip(names, marks, marks[1:])
print(json.dumps({name: [b[0] - a[0], b[1] - a[1]] for name, a, b in steps}))
"""


def compile_times() -> dict[str, dict[str, list[float]]]:
    """First calls in fresh processes, empty numba cache (cold compile) then filled: [wall, CPU] seconds.

    CPU time is the compile work itself; wall time also counts waiting for a core when the machine
    is shared.
    """
    return first_call_times(_FIRST_CALL)


def print_compile_times(times: dict[str, dict[str, list[float]]]) -> None:
    """One line per cache state: wall (CPU) seconds for the import and each first call."""
    print("first call in a fresh process, seconds wall (CPU)")
    for label, parts in times.items():
        print(f"  {label:<11}" + "  ".join(f"{k} {w:5.2f} ({c:5.2f})" for k, (w, c) in parts.items()))


def main() -> list[Row]:
    """Print and return the rows (greeks, then price) and print the compile times."""
    warnings.filterwarnings("ignore")  # py_vollib_vectorized / numba deprecation chatter
    times = compile_times()
    rows = greeks_rows() + price_rows()
    print_table(
        f"Black-Scholes-Merton, {N_OPTIONS:,} random options, best of 3 interleaved rounds, "
        f"{MAX_THREADS} cores available",
        rows,
    )
    print()
    print_compile_times(times)
    return rows


if __name__ == "__main__":
    main()
