"""Everlasting options: published values, the defining integral, greeks, identities, discrete funding.

References are independent of `pricing.everlasting`: the published numbers of the issue (Deri's
worked example), the textbook r = q = 0 formula, and numerical integration of the definition
V = (1/T) * integral_0^inf exp(-tau/T) BSM(tau) dtau with a Black-Scholes written here from
`math.erfc` (two quadratures: composite Gauss-Legendre in numpy, and scipy's `quad` when scipy is
installed).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing.black_scholes import bs_price
from pricing.everlasting import everlasting_greeks, everlasting_price, everlasting_price_discrete
from pricing.funding import everlasting_funding_rate
from pricing.greeks import Greeks

WEEK = 7.0 / 365.0  # a weekly funding period, in years
Floats = npt.NDArray[np.float64]


def bsm_ref(S: float, K: float, tau: float, r: float, q: float, sigma: float, is_call: bool) -> float:
    """Black-Scholes-Merton from math.erfc (independent of the code under test)."""
    phi = 1.0 if is_call else -1.0
    fs, fk = S * math.exp(-q * tau), K * math.exp(-r * tau)
    if tau <= 0.0 or sigma == 0.0:
        return max(phi * (fs - fk), 0.0)
    v = sigma * math.sqrt(tau)
    d1 = (math.log(S / K) + (r - q) * tau) / v + 0.5 * v
    d2 = d1 - v
    return phi * (fs * _cdf(phi * d1) - fk * _cdf(phi * d2))


def _cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def integral_gauss(S: float, K: float, sigma: float, T: float, r: float, q: float, is_call: bool) -> float:
    """(1/T) int_0^inf e^{-tau/T} BSM(tau) dtau by tau = T t^2 and composite Gauss-Legendre on t.

    The substitution turns the weight into 2 t e^{-t^2} and removes BSM's sqrt(tau) kink at 0; t in
    [0, 9] leaves out e^{-81} of the (at most exponentially growing) integrand.
    """
    nodes, weights = np.polynomial.legendre.leggauss(24)
    edges = np.linspace(0.0, 9.0, 181)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        t = 0.5 * (hi - lo) * nodes + 0.5 * (hi + lo)
        f = [2.0 * ti * math.exp(-ti * ti) * bsm_ref(S, K, T * ti * ti, r, q, sigma, is_call) for ti in t]
        total += 0.5 * (hi - lo) * float(np.dot(weights, f))
    return total


def integral_quad(S: float, K: float, sigma: float, T: float, r: float, q: float, is_call: bool) -> float:
    """The same integral by scipy.integrate.quad (adaptive Gauss-Kronrod on [0, inf))."""
    integrate = pytest.importorskip("scipy.integrate")

    def f(tau: float) -> float:
        return math.exp(-tau / T) * bsm_ref(S, K, tau, r, q, sigma, is_call) / T

    value, _ = integrate.quad(f, 0.0, math.inf, limit=400, epsabs=1e-13, epsrel=1e-12)
    return float(value)


# (S, K, sigma, T, r, q): both sides of K, at K, rates of both signs, short and long funding periods
CASES = [
    (90.0, 100.0, 0.5, WEEK, 0.0, 0.0),
    (110.0, 100.0, 0.5, WEEK, 0.05, 0.02),
    (100.0, 100.0, 1.2, 1.0 / 12.0, 0.10, 0.0),
    (70.0, 100.0, 0.8, 1.0, 0.03, 0.10),
    (150.0, 100.0, 0.2, 2.0, 0.0, 0.05),
    (95.0, 100.0, 0.3, 0.5, -0.02, 0.08),
    (120.0, 100.0, 0.15, 8.0 / (24 * 365), 0.04, 0.01),
    (50_000.0, 52_000.0, 1.0, WEEK, 0.05, 0.0),
    (2.0, 1.0, 2.5, 0.25, 0.0, 0.3),
]


# ---------------------------------------------------------------- published and textbook values


def test_published_values() -> None:
    # the reference values (Deri's worked example for the at-the-money call)
    assert everlasting_price(90.0, 100.0, 0.5, WEEK, 0.0, 0.0, True) == pytest.approx(
        0.269764196964, rel=1e-11
    )
    assert everlasting_price(90.0, 100.0, 0.5, WEEK, 0.0, 0.0, False) == pytest.approx(
        10.269764197, rel=1e-11
    )
    assert everlasting_price(50_000.0, 50_000.0, 1.0, WEEK, 0.0, 0.0, True) == pytest.approx(
        2445.16214233, rel=1e-11
    )


@pytest.mark.parametrize("S", [20.0, 80.0, 99.9, 100.0, 100.1, 130.0, 900.0])
@pytest.mark.parametrize("sigma", [0.05, 0.5, 3.0])
@pytest.mark.parametrize("T", [1.0 / 365.0, WEEK, 1.0])
def test_zero_rates_textbook_formula(S: float, sigma: float, T: float) -> None:
    K = 100.0
    u = math.sqrt(1.0 + 8.0 / (sigma * sigma * T))
    x = S / K
    power = (1.0 - u) / 2.0 if S >= K else (1.0 + u) / 2.0
    time_value = K / u * x**power
    # x^p = e^{p ln x}: a relative error eps in p ln x becomes eps |p ln x| in the value
    rel = 1e-14 * (1.0 + abs(power * math.log(x)))
    for is_call, payoff in ((True, max(S - K, 0.0)), (False, max(K - S, 0.0))):
        got = everlasting_price(S, K, sigma, T, 0.0, 0.0, is_call)
        assert got == pytest.approx(payoff + time_value, rel=rel, abs=1e-300)


# ---------------------------------------------------------------- the defining integral


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("is_call", [True, False])
def test_closed_form_equals_gauss_integral(case: tuple[float, ...], is_call: bool) -> None:
    S, K, sigma, T, r, q = case
    expected = integral_gauss(S, K, sigma, T, r, q, is_call)
    got = everlasting_price(S, K, sigma, T, r, q, is_call)
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-12 * K)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("is_call", [True, False])
def test_closed_form_equals_scipy_quad(case: tuple[float, ...], is_call: bool) -> None:
    S, K, sigma, T, r, q = case
    expected = integral_quad(S, K, sigma, T, r, q, is_call)
    got = everlasting_price(S, K, sigma, T, r, q, is_call)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-11 * K)


@pytest.mark.parametrize(
    "case",
    [
        (90.0, 100.0, WEEK, 0.05, 0.0),  # forward drifts up through K
        (110.0, 100.0, WEEK, 0.0, 0.05),  # forward drifts down through K
        (110.0, 100.0, 0.5, 0.05, 0.0),
        (100.0, 100.0, 0.5, 0.03, 0.03),  # forward pinned at K
        (100.0, 100.0, 0.5, 0.05, 0.0),
        (80.0, 100.0, 0.5, 0.02, 0.02),
    ],
)
@pytest.mark.parametrize("is_call", [True, False])
def test_zero_vol_is_the_deterministic_integral(case: tuple[float, ...], is_call: bool) -> None:
    S, K, T, r, q = case
    expected = integral_gauss(S, K, 0.0, T, r, q, is_call)
    assert everlasting_price(S, K, 0.0, T, r, q, is_call) == pytest.approx(expected, rel=1e-9, abs=1e-12 * K)
    g0 = everlasting_greeks(S, K, 0.0, T, r, q, is_call)
    assert g0.price == pytest.approx(expected, rel=1e-9, abs=1e-12 * K)
    # greeks at sigma = 0 are the sigma -> 0+ limits (gamma excepted where that limit is infinite)
    g = everlasting_greeks(S, K, 1e-7, T, r, q, is_call)
    pinned = r == q and S == K
    # absolute slack per greek: the pinned time value is O(sigma K) = 1e-5 here
    slack = {"price": 1e-6 * K, "delta": 1e-6, "gamma": 1e-6 / K, "vega": 1e-6 * K, "theta": 1e-6 * K / T}
    for name in ("price", "delta", "gamma", "vega", "theta", "rho"):
        if name == "gamma" and pinned:
            assert g0.gamma == 0.0 and g.gamma > 1e3
            continue
        expected = getattr(g, name)
        assert getattr(g0, name) == pytest.approx(expected, rel=1e-5, abs=slack.get(name, 1e-6 * K)), name


# ---------------------------------------------------------------- greeks


def central(fn: Callable[[float], float], x: float, h: float) -> float:
    """Fourth-order central difference."""
    return (-fn(x + 2 * h) + 8 * fn(x + h) - 8 * fn(x - h) + fn(x - 2 * h)) / (12 * h)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("is_call", [True, False])
def test_greeks_against_finite_differences(case: tuple[float, ...], is_call: bool) -> None:
    S, K, sigma, T, r, q = case
    g = everlasting_greeks(S, K, sigma, T, r, q, is_call)
    assert g.price == everlasting_price(S, K, sigma, T, r, q, is_call)
    scale = max(float(g.price), 1e-3 * K)

    def price_at(s: float = S, v: float = sigma, rr: float = r) -> float:
        return float(everlasting_price(s, K, v, T, rr, q, is_call))

    hs = 1e-3 * S
    assert g.delta == pytest.approx(central(lambda s: price_at(s=s), S, hs), abs=1e-8 * scale / hs + 1e-10)
    delta_at = lambda s: float(everlasting_greeks(s, K, sigma, T, r, q, is_call).delta)  # noqa: E731
    # gamma is continuous at K but its derivative jumps there: a one-sided stencil keeps 4th order
    h_g = 1e-3 * S
    fd_gamma = central(delta_at, S + 2.5 * h_g, h_g) if S == K else central(delta_at, S, h_g)
    gamma_at_shift = (
        everlasting_greeks(S + 2.5 * h_g, K, sigma, T, r, q, is_call).gamma if S == K else g.gamma
    )
    assert gamma_at_shift == pytest.approx(fd_gamma, rel=1e-6, abs=1e-10)
    assert g.vega == pytest.approx(
        central(lambda v: price_at(v=v), sigma, 1e-4 * sigma), rel=1e-7, abs=1e-9 * K
    )
    assert g.rho == pytest.approx(central(lambda rr: price_at(rr=rr), r, 1e-4), rel=1e-7, abs=1e-9 * K)


@pytest.mark.parametrize("S", [40.0, 95.0, 100.0, 105.0, 300.0])
@pytest.mark.parametrize("sigma", [0.2, 0.8])
@pytest.mark.parametrize("T", [1.0 / 365.0, WEEK, 0.5])
def test_gamma_identity_at_zero_rates(S: float, sigma: float, T: float) -> None:
    # r = q = 0: 1/2 sigma^2 S^2 Gamma = time value / T (the funding pays for the gamma)
    K = 100.0
    for is_call in (True, False):
        g = everlasting_greeks(S, K, sigma, T, 0.0, 0.0, is_call)
        payoff = max(S - K, 0.0) if is_call else max(K - S, 0.0)
        assert 0.5 * sigma**2 * S**2 * g.gamma == pytest.approx((g.price - payoff) / T, rel=1e-12)
        assert g.theta == pytest.approx(-(g.price - payoff) / T, rel=1e-15)


rates = st.floats(-0.05, 0.2)
positive_price = st.floats(1e-2, 1e4)


@settings(max_examples=300, deadline=None)
@given(
    S=positive_price,
    moneyness=st.floats(0.2, 5.0),
    sigma=st.floats(0.02, 3.0),
    T=st.floats(1.0 / 365 / 24, 2.0),
    r=rates,
    q=rates,
    is_call=st.booleans(),
)
def test_pricing_equation_and_theta(
    S: float, moneyness: float, sigma: float, T: float, r: float, q: float, is_call: bool
) -> None:
    # theta + 1/2 sigma^2 S^2 Gamma + (r - q) S Delta - r V = 0, with theta = -(V - payoff)/T
    K = S * moneyness
    price, delta, gamma, vega, theta, _ = (
        float(v) for v in everlasting_greeks(S, K, sigma, T, r, q, is_call)
    )
    terms = [theta, 0.5 * sigma**2 * S**2 * gamma, (r - q) * S * delta, -r * price]
    # theta = -(V - payoff)/T carries the rounding of V - payoff, up to eps (V + payoff) / T
    scale = max([1.0, *(abs(t) for t in terms), (price + S + K) / T])
    assert abs(sum(terms)) <= 1e-12 * scale
    assert theta == -everlasting_funding_rate(price, S, K, T, is_call)
    assert gamma >= 0.0 and vega >= 0.0


@settings(max_examples=300, deadline=None)
@given(
    S=positive_price,
    moneyness=st.floats(0.2, 5.0),
    sigma=st.floats(0.0, 3.0),
    T=st.floats(1.0 / 365 / 24, 2.0),
    r=rates,
    q=rates,
)
def test_put_call_relation_and_bounds(
    S: float, moneyness: float, sigma: float, T: float, r: float, q: float
) -> None:
    # C - P = (1/T) int e^{-tau/T} (S e^{-q tau} - K e^{-r tau}) dtau = S/(1+qT) - K/(1+rT)
    K = S * moneyness
    call = float(everlasting_price(S, K, sigma, T, r, q, True))
    put = float(everlasting_price(S, K, sigma, T, r, q, False))
    forward = S / (1.0 + q * T) - K / (1.0 + r * T)
    assert call - put == pytest.approx(forward, abs=1e-12 * (S + K))
    # the integral of BSM's bounds: max(+-F, 0) <= V <= S/(1+qT) (call), K/(1+rT) (put)
    assert max(forward, 0.0) <= call <= S / (1.0 + q * T) * (1 + 1e-14)
    assert max(-forward, 0.0) <= put <= K / (1.0 + r * T) * (1 + 1e-14)


@settings(max_examples=200, deadline=None)
@given(
    S=st.floats(50.0, 200.0),
    sigma=st.floats(0.05, 2.0),
    T=st.floats(1.0 / 365, 1.0),
    r=st.floats(0.0, 0.1),
    q=st.floats(0.0, 0.1),
    is_call=st.booleans(),
)
def test_price_monotone_in_sigma_and_spot(
    S: float, sigma: float, T: float, r: float, q: float, is_call: bool
) -> None:
    K = 100.0
    base = float(everlasting_price(S, K, sigma, T, r, q, is_call))
    assert float(everlasting_price(S, K, sigma * 1.01, T, r, q, is_call)) >= base
    up = float(everlasting_price(S * 1.01, K, sigma, T, r, q, is_call))
    assert up >= base if is_call else up <= base


# ---------------------------------------------------------------- discrete funding


def discrete_direct(
    S: float, K: float, sigma: float, T: float, f: int, r: float, q: float, is_call: bool
) -> float:
    """The series summed far past any truncation (weights below 1e-30), with `bsm_ref`."""
    rho = f / (f + 1.0)
    n = int(math.log(1e-30) / math.log(rho)) + 1
    return sum(
        rho ** (i - 1) / (f + 1.0) * bsm_ref(S, K, i * T / f, r, q, sigma, is_call) for i in range(1, n + 1)
    )


@pytest.mark.parametrize("case", CASES[:6])
@pytest.mark.parametrize("f", [1, 3, 8])
@pytest.mark.parametrize("is_call", [True, False])
def test_discrete_series_and_its_truncation_bound(case: tuple[float, ...], f: int, is_call: bool) -> None:
    S, K, sigma, T, r, q = case
    exact = discrete_direct(S, K, sigma, T, f, r, q, is_call)
    M = S if is_call else K
    for tol in (1e-4, 1e-8, 1e-12):
        got = float(everlasting_price_discrete(S, K, sigma, T, f, r, q, is_call, tol=tol))
        # the truncated tail is >= 0 and <= tol * M: the result never overshoots
        assert exact - tol * M - 1e-12 * M <= got <= exact + 1e-12 * M


@pytest.mark.parametrize("case", CASES[:5])
@pytest.mark.parametrize("is_call", [True, False])
def test_discrete_converges_to_continuous(case: tuple[float, ...], is_call: bool) -> None:
    S, K, sigma, T, r, q = case
    limit = float(everlasting_price(S, K, sigma, T, r, q, is_call))
    f = np.array([10.0, 100.0, 1000.0])
    errors = np.abs(
        np.asarray(everlasting_price_discrete(S, K, sigma, T, f, r, q, is_call, tol=1e-13)) - limit
    )
    scale = max(limit, 1e-3 * K)
    assert errors[-1] < 2e-3 * scale
    assert np.all(errors[1:] < errors[:-1] / 5.0)  # first order in 1/f (tenfold f, ~tenfold less error)


def test_discrete_one_payment_per_period_matches_vanilla_weights() -> None:
    # f = 1: V = sum 2^-i BSM(i T), a direct check on a few vanilla prices from bs_price
    S, K, sigma, T = 100.0, 100.0, 0.6, 0.25
    expected = sum(0.5**i * float(bs_price(S, K, i * T, 0.01, 0.0, sigma, True)) for i in range(1, 80))
    got = everlasting_price_discrete(S, K, sigma, T, 1, 0.01, 0.0, True, tol=1e-15)
    assert got == pytest.approx(expected, rel=1e-13)


# ---------------------------------------------------------------- domain, broadcasting


def test_nan_outside_the_model() -> None:
    bad = [
        (float("nan"), 100.0, 0.5, WEEK, 0.0, 0.0),
        (0.0, 100.0, 0.5, WEEK, 0.0, 0.0),
        (100.0, -1.0, 0.5, WEEK, 0.0, 0.0),
        (100.0, 100.0, -0.1, WEEK, 0.0, 0.0),
        (100.0, 100.0, 0.5, 0.0, 0.0, 0.0),
        (100.0, 100.0, 0.5, 1.0, -1.5, 0.0),  # 1 + rT <= 0: the put's integral diverges
        (100.0, 100.0, 0.5, 1.0, 0.0, -1.0),  # 1 + qT <= 0: the call's integral diverges
    ]
    for case in bad:
        for is_call in (True, False):
            assert math.isnan(everlasting_price(*case, is_call))
            assert all(math.isnan(float(v)) for v in everlasting_greeks(*case, is_call))
            assert math.isnan(
                everlasting_price_discrete(case[0], case[1], case[2], case[3], 4, *case[4:], is_call)
            )
    assert math.isnan(everlasting_price_discrete(100.0, 100.0, 0.5, WEEK, 0.0, 0.0, 0.0, True))


def test_broadcasting_and_scalar_types() -> None:
    S = np.linspace(60.0, 140.0, 12).reshape(3, 4)
    is_call = np.array([True, False, True, False])
    prices = everlasting_price(S, 100.0, 0.5, WEEK, 0.01, 0.0, is_call)
    assert isinstance(prices, np.ndarray) and prices.shape == (3, 4)
    for idx in np.ndindex(3, 4):
        assert prices[idx] == everlasting_price(
            float(S[idx]), 100.0, 0.5, WEEK, 0.01, 0.0, bool(is_call[idx[1]])
        )
    g = everlasting_greeks(S, 100.0, 0.5, WEEK, 0.01, 0.0, is_call)
    assert isinstance(g, Greeks) and all(np.shape(v) == (3, 4) for v in g)
    np.testing.assert_array_equal(g.price, prices)
    assert isinstance(everlasting_price(100.0, 100.0, 0.5, WEEK, 0.0, 0.0, True), float)
    assert all(isinstance(v, float) for v in everlasting_greeks(100.0, 100.0, 0.5, WEEK, 0.0, 0.0, True))
    discrete = everlasting_price_discrete(S, 100.0, 0.5, WEEK, 4, 0.01, 0.0, is_call)
    assert isinstance(discrete, np.ndarray) and discrete.shape == (3, 4)
    assert discrete[1, 2] == everlasting_price_discrete(float(S[1, 2]), 100.0, 0.5, WEEK, 4, 0.01, 0.0, True)


def test_extreme_but_valid_inputs_stay_finite() -> None:
    S = np.array([1e-6, 1e-3, 1.0, 1e3, 1e6]) * 100.0
    for sigma in (1e-4, 0.01, 1.0, 20.0):
        for T in (1.0 / (365 * 24 * 60), 1.0 / 365, 10.0):
            g = everlasting_greeks(S, 100.0, sigma, T, 0.05, 0.02, np.array([True, False, True, False, True]))
            for name, values in zip(Greeks._fields, g, strict=True):
                assert np.all(np.isfinite(values)), (name, sigma, T)
            assert np.all(np.asarray(g.price) >= 0.0)
