"""Black-Scholes-Merton prices and greeks against independent references.

* Haug (1998), "The complete guide to option pricing formulas", as encoded in QuantLib's
  test-suite/europeanoption.cpp (testValues, testGreekValues): published to 4 decimals.
* QuantLib (BlackCalculator with T given directly, and AnalyticEuropeanEngine with flat curves and
  Actual365Fixed dates chosen so that T = days/365 exactly) on 10,000 random options, every output.
* 40-digit `decimal` prices (tests/pricing/highprec.py) for deep out-of-the-money options, where
  QuantLib itself is only good to ~1e-8 relative.
* Identities: put-call parity, finite differences, bounds; broadcasting and edge cases.
"""

from __future__ import annotations

import math
import platform
import re
from decimal import Decimal

import numpy as np
import numpy.typing as npt
import pytest
import QuantLib as ql
from numba import njit

from pricing.black_scholes import bs_greeks, bs_greeks_scalar, bs_price, bs_price_scalar
from pricing.greeks import Greeks
from tests.pricing import highprec

FloatArray = npt.NDArray[np.float64]


def price1(S: float, K: float, T: float, r: float, q: float, sigma: float, is_call: bool) -> float:
    """bs_price of one option, as a float (asserts the scalar return)."""
    value = bs_price(S, K, T, r, q, sigma, is_call)
    assert type(value) is float
    return value


def greeks1(
    S: float, K: float, T: float, r: float, q: float, sigma: float, is_call: bool
) -> tuple[float, ...]:
    """bs_greeks of one option as a tuple of floats: price, delta, gamma, vega, theta, rho."""
    values = tuple(bs_greeks(S, K, T, r, q, sigma, is_call))
    assert all(type(v) is float for v in values)
    return values  # type: ignore[return-value]


def row(arrays: tuple[FloatArray, ...], i: int) -> tuple[float, float, float, float, float, float]:
    """(S, K, T, r, q, sigma) of option i."""
    S, K, T, r, q, sigma = (float(a[i]) for a in arrays)
    return S, K, T, r, q, sigma


# (is_call, K, S, q, r, T, sigma, value): Haug pp. 2-8, 24, 27 via europeanoption.cpp testValues
HAUG_VALUES = [
    (True, 65.0, 60.0, 0.00, 0.08, 0.25, 0.30, 2.1334),
    (False, 95.0, 100.0, 0.05, 0.10, 0.50, 0.20, 2.4648),
    (False, 19.0, 19.0, 0.10, 0.10, 0.75, 0.28, 1.7011),
    (True, 19.0, 19.0, 0.10, 0.10, 0.75, 0.28, 1.7011),
    (True, 1.60, 1.56, 0.08, 0.06, 0.50, 0.12, 0.0291),
    (False, 70.0, 75.0, 0.05, 0.10, 0.50, 0.35, 4.0870),
    (True, 100.0, 90.0, 0.10, 0.10, 0.10, 0.15, 0.0205),
    (True, 100.0, 100.0, 0.10, 0.10, 0.10, 0.15, 1.8734),
    (True, 100.0, 110.0, 0.10, 0.10, 0.10, 0.15, 9.9413),
    (True, 100.0, 90.0, 0.10, 0.10, 0.10, 0.25, 0.3150),
    (True, 100.0, 100.0, 0.10, 0.10, 0.10, 0.25, 3.1217),
    (True, 100.0, 110.0, 0.10, 0.10, 0.10, 0.25, 10.3556),
    (True, 100.0, 90.0, 0.10, 0.10, 0.10, 0.35, 0.9474),
    (True, 100.0, 100.0, 0.10, 0.10, 0.10, 0.35, 4.3693),
    (True, 100.0, 110.0, 0.10, 0.10, 0.10, 0.35, 11.1381),
    (True, 100.0, 90.0, 0.10, 0.10, 0.50, 0.15, 0.8069),
    (True, 100.0, 100.0, 0.10, 0.10, 0.50, 0.15, 4.0232),
    (True, 100.0, 110.0, 0.10, 0.10, 0.50, 0.15, 10.5769),
    (True, 100.0, 90.0, 0.10, 0.10, 0.50, 0.25, 2.7026),
    (True, 100.0, 100.0, 0.10, 0.10, 0.50, 0.25, 6.6997),
    (True, 100.0, 110.0, 0.10, 0.10, 0.50, 0.25, 12.7857),
    (True, 100.0, 90.0, 0.10, 0.10, 0.50, 0.35, 4.9329),
    (True, 100.0, 100.0, 0.10, 0.10, 0.50, 0.35, 9.3679),
    (True, 100.0, 110.0, 0.10, 0.10, 0.50, 0.35, 15.3086),
    (False, 100.0, 90.0, 0.10, 0.10, 0.10, 0.15, 9.9210),
    (False, 100.0, 100.0, 0.10, 0.10, 0.10, 0.15, 1.8734),
    (False, 100.0, 110.0, 0.10, 0.10, 0.10, 0.15, 0.0408),
    (False, 100.0, 90.0, 0.10, 0.10, 0.10, 0.25, 10.2155),
    (False, 100.0, 100.0, 0.10, 0.10, 0.10, 0.25, 3.1217),
    (False, 100.0, 110.0, 0.10, 0.10, 0.10, 0.25, 0.4551),
    (False, 100.0, 90.0, 0.10, 0.10, 0.10, 0.35, 10.8479),
    (False, 100.0, 100.0, 0.10, 0.10, 0.10, 0.35, 4.3693),
    (False, 100.0, 110.0, 0.10, 0.10, 0.10, 0.35, 1.2376),
    (False, 100.0, 90.0, 0.10, 0.10, 0.50, 0.15, 10.3192),
    (False, 100.0, 100.0, 0.10, 0.10, 0.50, 0.15, 4.0232),
    (False, 100.0, 110.0, 0.10, 0.10, 0.50, 0.15, 1.0646),
    (False, 100.0, 90.0, 0.10, 0.10, 0.50, 0.25, 12.2149),
    (False, 100.0, 100.0, 0.10, 0.10, 0.50, 0.25, 6.6997),
    (False, 100.0, 110.0, 0.10, 0.10, 0.50, 0.25, 3.2734),
    (False, 100.0, 90.0, 0.10, 0.10, 0.50, 0.35, 14.4452),
    (False, 100.0, 100.0, 0.10, 0.10, 0.50, 0.35, 9.3679),
    (False, 100.0, 110.0, 0.10, 0.10, 0.50, 0.35, 5.7963),
    (True, 40.0, 42.0, 0.08, 0.04, 0.75, 0.35, 5.0975),
]

# (greek, is_call, K, S, q, r, T, sigma, value): Haug pp. 11-16 via europeanoption.cpp testGreekValues
HAUG_GREEKS = [
    ("delta", True, 100.0, 105.0, 0.10, 0.10, 0.5, 0.36, 0.5946),
    ("delta", False, 100.0, 105.0, 0.10, 0.10, 0.5, 0.36, -0.3566),
    ("elasticity", False, 100.0, 105.0, 0.10, 0.10, 0.5, 0.36, -4.8775),
    ("gamma", True, 60.0, 55.0, 0.00, 0.10, 0.75, 0.30, 0.0278),
    ("gamma", False, 60.0, 55.0, 0.00, 0.10, 0.75, 0.30, 0.0278),
    ("vega", True, 60.0, 55.0, 0.00, 0.10, 0.75, 0.30, 18.9358),
    ("vega", False, 60.0, 55.0, 0.00, 0.10, 0.75, 0.30, 18.9358),
    ("theta", False, 405.0, 430.0, 0.05, 0.07, 1.0 / 12.0, 0.20, -31.1924),
    ("theta_per_day", False, 405.0, 430.0, 0.05, 0.07, 1.0 / 12.0, 0.20, -0.0855),
    ("rho", True, 75.0, 72.0, 0.00, 0.09, 1.0, 0.19, 38.7325),
]
HAUG_TOL = 1e-4  # the table is published to 4 decimals; QuantLib's own test uses the same tolerance


@pytest.mark.parametrize("row", HAUG_VALUES)
def test_haug_prices(row: tuple[bool, float, float, float, float, float, float, float]) -> None:
    is_call, K, S, q, r, T, sigma, expected = row
    assert abs(price1(S, K, T, r, q, sigma, is_call) - expected) <= HAUG_TOL
    assert abs(greeks1(S, K, T, r, q, sigma, is_call)[0] - expected) <= HAUG_TOL


@pytest.mark.parametrize("row", HAUG_GREEKS, ids=[f"{r[0]}-{i}" for i, r in enumerate(HAUG_GREEKS)])
def test_haug_greeks(row: tuple[str, bool, float, float, float, float, float, float, float]) -> None:
    name, is_call, K, S, q, r, T, sigma, expected = row
    g = bs_greeks(S, K, T, r, q, sigma, is_call)
    values = g._asdict()
    values["elasticity"] = g.delta * S / g.price
    values["theta_per_day"] = g.theta / 365.0  # QuantLib's thetaPerDay
    assert abs(values[name] - expected) <= HAUG_TOL


# ---------------------------------------------------------------- QuantLib, 10,000 random options


def _random_options(
    n: int, seed: int
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    rng = np.random.default_rng(seed)
    S = 100.0 * np.exp(rng.uniform(-3.0, 3.0, n))
    K = S * np.exp(rng.uniform(-1.0, 1.0, n))
    T = np.exp(rng.uniform(math.log(1.0 / 365.0), math.log(10.0), n))
    r = rng.uniform(-0.02, 0.15, n)
    q = rng.uniform(-0.02, 0.10, n)
    sigma = np.exp(rng.uniform(math.log(0.02), math.log(3.0), n))
    is_call = rng.random(n) < 0.5
    return S, K, T, r, q, sigma, is_call


def _quantlib_black_calculator(
    S: float, K: float, T: float, r: float, q: float, sigma: float, is_call: bool
) -> tuple[float, ...]:
    option_type = ql.Option.Call if is_call else ql.Option.Put
    forward = S * math.exp((r - q) * T)
    calc = ql.BlackCalculator(
        ql.PlainVanillaPayoff(option_type, K), forward, sigma * math.sqrt(T), math.exp(-r * T)
    )
    # QuantLib units: vega per 1.00 of sigma, theta per year (dV/dt), rho per 1.00 of r: same as ours
    return calc.value(), calc.delta(S), calc.gamma(S), calc.vega(T), calc.theta(S, T), calc.rho(T)


REL_TOL = 1e-10


def _floors(S: FloatArray, K: FloatArray, T: FloatArray) -> dict[str, FloatArray]:
    """Absolute floors, one per output, in its own units.

    Near-zero values (deep out-of-the-money prices, theta where it changes sign) are differences of
    terms of size ~S + K computed by both libraries with ~1e-16 relative rounding, and QuantLib's
    N(x) has only ~1e-16 *absolute* accuracy in the tails (deep OTM prices good to ~1e-8 relative:
    see the decimal test below). Relative 1e-10 is meaningless there; these floors sit ~10^3-10^4
    above that noise and far below a price tick.
    """
    scale = S + K
    return {
        "price": 1e-13 * scale,
        "delta": np.full_like(S, 1e-13),
        "gamma": 1e-13 / S,
        "vega": 1e-13 * scale * np.sqrt(T),
        "theta": 1e-13 * scale,
        "rho": 1e-13 * scale * T,
    }


def test_quantlib_black_calculator_10000_random_options() -> None:
    S, K, T, r, q, sigma, is_call = _random_options(10_000, seed=11)
    ours = bs_greeks(S, K, T, r, q, sigma, is_call)
    ref = np.array(
        [_quantlib_black_calculator(*row((S, K, T, r, q, sigma), i), bool(is_call[i])) for i in range(S.size)]
    )
    floors = _floors(S, K, T)
    d1, d2 = _d1_d2(S, K, T, r, q, sigma)
    central = np.maximum(np.abs(d1), np.abs(d2)) <= 3.0
    for j, name in enumerate(Greeks._fields):
        got = np.asarray(getattr(ours, name))
        err = np.abs(got - ref[:, j])
        bound = np.maximum(REL_TOL * np.abs(ref[:, j]), floors[name])
        bad = np.flatnonzero(~(err <= bound))
        assert bad.size == 0, (
            f"{name}: {bad.size} mismatches, first at {bad[0]}: {got[bad[0]]} vs {ref[bad[0], j]}"
        )
        # relative 1e-10 alone wherever QuantLib's N(x) is itself relatively accurate (|d| <= 3)
        assert (err[central] <= REL_TOL * np.abs(ref[central, j])).all(), name
    assert central.sum() > 4000


def _d1_d2(
    S: FloatArray, K: FloatArray, T: FloatArray, r: FloatArray, q: FloatArray, sigma: FloatArray
) -> tuple[FloatArray, FloatArray]:
    v = sigma * np.sqrt(T)
    d1 = (np.log(S / K) + (r - q) * T) / v + 0.5 * v
    return d1, d1 - v


def test_tails_of_the_random_options_against_40_digits() -> None:
    """Where QuantLib's tails are off (|d| > 5: ~1e-8 relative), the 40-digit closed forms decide."""
    S, K, T, r, q, sigma, is_call = _random_options(10_000, seed=11)
    d1, d2 = _d1_d2(S, K, T, r, q, sigma)
    tail = np.flatnonzero(np.maximum(np.abs(d1), np.abs(d2)) > 5.0)[:250]
    ours = bs_greeks(S[tail], K[tail], T[tail], r[tail], q[tail], sigma[tail], is_call[tail])
    for n, i in enumerate(tail):
        exact = highprec.bs_greeks_decimal(*row((S, K, T, r, q, sigma), i), bool(is_call[i]))
        # price (and theta, which contains it) deep OTM is a difference of two terms |d1|/v times
        # larger than itself: the conditioning bound is ~|d1|/v ulp
        amplification = 1.0 + abs(d1[i]) / (sigma[i] * math.sqrt(T[i]))
        for j, name in enumerate(Greeks._fields):
            got = float(np.asarray(getattr(ours, name))[n])
            if abs(exact[j]) < Decimal("1e-290"):  # underflows to (sub)normal range in double
                assert abs(got) < 1e-280
                continue
            bound = 1e-12 * amplification if name in ("price", "theta") else 1e-12
            assert abs(Decimal(got) / exact[j] - 1) < Decimal(bound), (name, i)


def _quantlib_engine_greeks(
    S: float, K: float, days: int, r: float, q: float, sigma: float, is_call: bool
) -> tuple[float, ...]:
    today = ql.Date(15, ql.January, 2024)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()  # T = days / 365 exactly, no calendar adjustment
    curve_r = ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(ql.SimpleQuote(r)), dc))
    curve_q = ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(ql.SimpleQuote(q)), dc))
    vol = ql.BlackVolTermStructureHandle(
        ql.BlackConstantVol(today, ql.NullCalendar(), ql.QuoteHandle(ql.SimpleQuote(sigma)), dc)
    )
    process = ql.BlackScholesMertonProcess(ql.QuoteHandle(ql.SimpleQuote(S)), curve_q, curve_r, vol)
    option_type = ql.Option.Call if is_call else ql.Option.Put
    option = ql.VanillaOption(ql.PlainVanillaPayoff(option_type, K), ql.EuropeanExercise(today + days))
    option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    return option.NPV(), option.delta(), option.gamma(), option.vega(), option.theta(), option.rho()


def test_quantlib_analytic_european_engine() -> None:
    rng = np.random.default_rng(12)
    n = 300
    S, K, _, r, q, sigma, is_call = _random_options(n, seed=13)
    days = rng.integers(1, 3650, n)
    T = days / 365.0
    ours = bs_greeks(S, K, T, r, q, sigma, is_call)
    ref = np.array(
        [
            _quantlib_engine_greeks(
                float(S[i]),
                float(K[i]),
                int(days[i]),
                float(r[i]),
                float(q[i]),
                float(sigma[i]),
                bool(is_call[i]),
            )
            for i in range(n)
        ]
    )
    floors = _floors(S, K, T)
    for j, name in enumerate(Greeks._fields):
        got = np.asarray(getattr(ours, name))
        # the engine goes through discount curves (exp of rate * time in its own arithmetic): 1e-10 still
        assert (np.abs(got - ref[:, j]) <= np.maximum(REL_TOL * np.abs(ref[:, j]), floors[name])).all(), name


# ---------------------------------------------------------------- deep out of the money, 40 digits

DEEP_OTM = [
    (100.0, 200.0, 0.25, 0.05, 0.0, 0.2, True),  # d1 = -6.8, price 1e-11
    (100.0, 130.0, 0.1, 0.02, 0.0, 0.15, True),
    (100.0, 40.0, 0.5, 0.03, 0.01, 0.25, False),
    (100.0, 500.0, 1.0, 0.0, 0.0, 0.2, True),  # d1 = -8, price 1e-15
    (100.0, 20.0, 1.0, 0.05, 0.0, 0.3, False),  # d ~ +5.5
    (100.0, 300.0, 0.02, 0.0, 0.0, 0.5, True),  # d1 = -15.5, price ~1e-53
    (50.0, 200.0, 0.5, 0.01, 0.02, 0.1, True),  # d1 = -19.6, price ~1e-86
]


@pytest.mark.parametrize("case", DEEP_OTM)
def test_deep_out_of_the_money_against_40_digits(
    case: tuple[float, float, float, float, float, float, bool],
) -> None:
    S, K, T, r, q, sigma, is_call = case
    exact = highprec.bs_price_decimal(S, K, T, r, q, sigma, is_call)
    got = price1(S, K, T, r, q, sigma, is_call)
    # C = S e^-qT N(d1) - K e^-rT N(d2) cancels: the bound is |d1|/(sigma sqrt T) amplification of ~1 ulp
    assert abs(Decimal(got) / exact - 1) < Decimal("1e-12")
    assert abs(Decimal(greeks1(S, K, T, r, q, sigma, is_call)[0]) / exact - 1) < Decimal("1e-12")
    # the textbook N(x) = (1 + erf(x/sqrt2))/2 is far off here (or returns a negative or zero price)
    v = sigma * math.sqrt(T)
    d1 = (math.log(S / K) + (r - q) * T) / v + 0.5 * v
    d2 = d1 - v

    def textbook_n(x: float) -> float:
        return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))

    phi = 1.0 if is_call else -1.0
    textbook = phi * (
        S * math.exp(-q * T) * textbook_n(phi * d1) - K * math.exp(-r * T) * textbook_n(phi * d2)
    )
    assert abs(Decimal(textbook) / exact - 1) > Decimal("1e-9")  # 1e-9 .. 1 (wrong sign at d1 = -8)


# ---------------------------------------------------------------- identities


def test_put_call_parity_and_greek_parities() -> None:
    S, K, T, r, q, sigma, _ = _random_options(200_000, seed=21)
    call = bs_greeks(S, K, T, r, q, sigma, True)
    put = bs_greeks(S, K, T, r, q, sigma, False)
    df_q, df_r = np.exp(-q * T), np.exp(-r * T)
    scale = S + K
    np.testing.assert_allclose(
        np.asarray(call.price) - np.asarray(put.price), S * df_q - K * df_r, rtol=0, atol=1e-14 * scale.max()
    )
    assert (np.abs(np.asarray(call.price) - put.price - (S * df_q - K * df_r)) <= 4e-15 * scale).all()
    assert (np.abs(np.asarray(call.delta) - put.delta - df_q) <= 2e-15).all()
    np.testing.assert_array_equal(call.gamma, put.gamma)
    np.testing.assert_array_equal(call.vega, put.vega)
    assert (np.abs(np.asarray(call.rho) - put.rho - K * T * df_r) <= 4e-15 * scale * T).all()
    theta_parity = q * S * df_q - r * K * df_r  # d/dt of S e^-qT - K e^-rT
    assert (np.abs(np.asarray(call.theta) - put.theta - theta_parity) <= 4e-15 * scale).all()


def test_greeks_match_finite_differences() -> None:
    S, K, T, r, q, sigma, is_call = 100.0, 95.0, 0.75, 0.03, 0.01, 0.35, False
    value, delta, gamma, vega, theta, rho = greeks1(S, K, T, r, q, sigma, is_call)

    def price(**kw: float) -> float:
        a = {"S": S, "K": K, "T": T, "r": r, "q": q, "sigma": sigma} | kw
        return price1(a["S"], a["K"], a["T"], a["r"], a["q"], a["sigma"], is_call)

    h = 1e-4
    assert abs((price(S=S + h) - price(S=S - h)) / (2 * h) - delta) < 1e-8
    assert abs((price(S=S + h) - 2 * value + price(S=S - h)) / h**2 - gamma) < 1e-5
    assert abs((price(sigma=sigma + h) - price(sigma=sigma - h)) / (2 * h) - vega) < 1e-6
    assert abs((price(r=r + h) - price(r=r - h)) / (2 * h) - rho) < 1e-6
    # theta is dV/dt with t calendar time: expiry is fixed, so T shrinks as t grows
    assert abs(-(price(T=T + h) - price(T=T - h)) / (2 * h) - theta) < 1e-6
    assert theta < 0


def test_price_bounds_on_random_arrays() -> None:
    S, K, T, r, q, sigma, is_call = _random_options(200_000, seed=31)
    price = np.asarray(bs_price(S, K, T, r, q, sigma, is_call))
    phi = np.where(is_call, 1.0, -1.0)
    intrinsic = np.maximum(phi * (S * np.exp(-q * T) - K * np.exp(-r * T)), 0.0)
    upper = np.where(is_call, S * np.exp(-q * T), K * np.exp(-r * T))
    # numpy's exp and ours may differ by an ulp in each term of the intrinsic value
    assert (price >= intrinsic - 4e-16 * (S * np.exp(-q * T) + K * np.exp(-r * T))).all()
    assert (price <= upper * (1 + 1e-15)).all()


# ---------------------------------------------------------------- broadcasting and scalars


def test_scalar_inputs_return_floats() -> None:
    price = bs_price(100.0, 100.0, 1.0, 0.05, 0.0, 0.2, True)
    assert type(price) is float
    g = bs_greeks(100, 100, 1, 0.05, 0, 0.2, False)  # ints accepted
    assert all(type(v) is float for v in g)
    assert type(bs_price(np.float64(100.0), np.array(100.0), 1.0, 0.05, 0.0, 0.2, np.bool_(True))) is float


def test_broadcasting_shapes_and_values() -> None:
    S = np.array([[90.0], [100.0], [110.0]])  # (3, 1)
    K = np.array([80.0, 95.0, 100.0, 120.0])  # (4,)
    is_call = np.array([True, False, True, False])
    price = bs_price(S, K, 0.5, 0.02, 0.01, 0.3, is_call)
    assert isinstance(price, np.ndarray) and price.shape == (3, 4)
    g = bs_greeks(S, K, 0.5, 0.02, 0.01, 0.3, is_call)
    for field in g:
        assert isinstance(field, np.ndarray) and field.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            one = bs_greeks(float(S[i, 0]), float(K[j]), 0.5, 0.02, 0.01, 0.3, bool(is_call[j]))
            assert price[i, j] == one.price
            assert tuple(np.asarray(f)[i, j] for f in g) == tuple(one)
    assert bs_price([100.0, 101.0], 100.0, 1.0, 0.0, 0.0, 0.2, True).shape == (2,)  # type: ignore[union-attr]
    assert bs_price(np.ones((2, 0)), 1.0, 1.0, 0.0, 0.0, 0.2, True).shape == (2, 0)  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        bs_price(np.ones(3), np.ones(4), 1.0, 0.0, 0.0, 0.2, True)


def test_non_contiguous_and_other_dtypes() -> None:
    S = np.linspace(50.0, 150.0, 20)[::2]
    K = np.full(10, 100, dtype=np.int64)
    sigma = np.full(10, 0.25, dtype=np.float32)
    got = bs_price(S, K, 1.0, 0.01, 0.0, sigma, True)
    want = [bs_price(float(s), 100.0, 1.0, 0.01, 0.0, float(np.float32(0.25)), True) for s in S]
    np.testing.assert_array_equal(got, want)


def test_scalar_kernels_callable_from_numba() -> None:
    @njit(cache=False)
    def both(S: float) -> tuple[float, float]:
        return bs_price_scalar(S, 100.0, 1.0, 0.05, 0.0, 0.2, True), bs_greeks_scalar(
            S, 100.0, 1.0, 0.05, 0.0, 0.2, True
        )[1]

    price, delta = both(100.0)
    assert abs(price - 10.450583572185565) < 1e-12
    assert abs(delta - 0.6368306511756191) < 1e-12


# ---------------------------------------------------------------- edge cases


def test_expiry_and_zero_vol_limits() -> None:
    # T = 0: intrinsic value, delta 1/0 (1/2 at the money), no gamma/vega/rho
    g = bs_greeks(np.array([110.0, 90.0, 100.0]), 100.0, 0.0, 0.05, 0.02, 0.3, True)
    np.testing.assert_array_equal(g.price, [10.0, 0.0, 0.0])
    np.testing.assert_array_equal(g.delta, [1.0, 0.0, 0.5])
    np.testing.assert_array_equal(g.gamma, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(g.vega, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(g.rho, [0.0, 0.0, 0.0])
    np.testing.assert_allclose(g.theta, [0.02 * 110 - 0.05 * 100, 0.0, 0.5 * (0.02 * 100 - 0.05 * 100)])
    put = greeks1(90.0, 100.0, 0.0, 0.05, 0.0, 0.3, False)
    assert put[:2] == (10.0, -1.0)
    # sigma = 0, T > 0: discounted forward intrinsic, and the limit of a tiny sigma
    S, K, T, r, q = 100.0, 95.0, 1.0, 0.05, 0.01
    g0 = greeks1(S, K, T, r, q, 0.0, True)
    fwd_intrinsic = S * math.exp(-q * T) - K * math.exp(-r * T)
    assert abs(g0[0] - fwd_intrinsic) < 1e-13
    tiny = greeks1(S, K, T, r, q, 1e-6, True)
    for a, b in zip(g0, tiny, strict=True):
        assert abs(a - b) < 1e-9
    # zero vol exactly at the money forward: vega is the sigma -> 0+ limit
    K_atm = S * math.exp((r - q) * T)
    g_atm = greeks1(S, K_atm, T, r, q, 0.0, True)
    assert g_atm[0] < 1e-12
    assert abs(g_atm[3] - greeks1(S, K_atm, T, r, q, 1e-9, True)[3]) < 1e-6


def test_deep_in_and_out_of_the_money_extremes() -> None:
    # no exception, no NaN, bounds respected for moneyness and vol far outside any market
    S = np.array([1e-10, 1e-3, 1.0, 1e3, 1e8, 1e12])
    for sigma in (1e-8, 0.2, 10.0):
        for is_call in (True, False):
            g = bs_greeks(S, 1.0, 2.0, 0.05, 0.01, sigma, is_call)
            for field in g:
                assert np.isfinite(field).all()
            assert (np.asarray(g.price) >= 0).all()
    assert bs_price(1e12, 1.0, 1.0, 0.0, 0.0, 0.2, False) == 0.0
    assert bs_price(1e-12, 1.0, 1.0, 0.0, 0.0, 0.2, True) == 0.0
    assert bs_price(1e12, 1.0, 1.0, 0.0, 0.0, 0.2, True) == 1e12 - 1.0


@pytest.mark.parametrize("position", range(6))
def test_nan_in_any_input_propagates(position: int) -> None:
    values = [100.0, 100.0, 1.0, 0.05, 0.01, 0.2]
    values[position] = math.nan
    S, K, T, r, q, sigma = values
    assert math.isnan(price1(S, K, T, r, q, sigma, True))
    assert all(math.isnan(v) for v in greeks1(S, K, T, r, q, sigma, False))
    a_S, a_K, a_T, a_r, a_q, a_sigma = (np.full(5, v) for v in values)
    assert np.isnan(bs_price(a_S, a_K, a_T, a_r, a_q, a_sigma, np.ones(5, dtype=bool))).all()
    greeks = bs_greeks(a_S, a_K, a_T, a_r, a_q, a_sigma, np.zeros(5, dtype=bool))
    assert all(np.isnan(np.asarray(v)).all() for v in greeks)
    # T = 0 and sigma = 0 take the degenerate path: NaN must survive it too
    if position != 2:
        assert all(math.isnan(v) for v in greeks1(S, K, 0.0, r, q, sigma, True))
    if position != 5:
        assert all(math.isnan(v) for v in greeks1(S, K, T, r, q, 0.0, False))


@pytest.mark.parametrize(
    "bad",
    [
        (0.0, 100.0, 1.0, 0.2),
        (-1.0, 100.0, 1.0, 0.2),
        (100.0, 0.0, 1.0, 0.2),
        (100.0, -5.0, 1.0, 0.2),
        (100.0, 100.0, -1.0, 0.2),
        (100.0, 100.0, 1.0, -0.2),
    ],
)
def test_outside_the_domain_is_nan(bad: tuple[float, float, float, float]) -> None:
    S, K, T, sigma = bad
    assert math.isnan(bs_price(S, K, T, 0.05, 0.0, sigma, True))
    assert all(math.isnan(v) for v in bs_greeks(S, K, T, 0.05, 0.0, sigma, False))
    assert np.isnan(bs_price(np.array([S, S]), K, T, 0.05, 0.0, sigma, True)).all()


# ---------------------------------------------------------------- SIMD


@njit(cache=False, error_model="numpy")
def _sum_of_greeks(
    S: FloatArray,
    K: FloatArray,
    T: FloatArray,
    r: FloatArray,
    q: FloatArray,
    sigma: FloatArray,
    is_call: npt.NDArray[np.bool_],
    out: FloatArray,
) -> None:
    for i in range(S.size):
        p, d, g, v, th, rh = bs_greeks_scalar(S[i], K[i], T[i], r[i], q[i], sigma[i], is_call[i])
        out[i] = p + d + g + v + th + rh + bs_price_scalar(S[i], K[i], T[i], r[i], q[i], sigma[i], is_call[i])


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 assembly check")
def test_llvm_vectorises_the_scalar_kernels_in_a_loop() -> None:
    """Inlined into a loop, bs_greeks_scalar / bs_price_scalar become packed SIMD code, no libm calls."""
    a = np.ones(8)
    _sum_of_greeks(a, a, a, a, a, a, a > 0, np.empty(8))
    asm = _sum_of_greeks.inspect_asm(_sum_of_greeks.signatures[0])
    assert len(re.findall(r"\bv?(?:fmadd\d*|mul|div)pd\b", asm)) >= 50
    assert not re.search(r"call\w*\s+.*\b(exp|log|erfc)\b", asm)
