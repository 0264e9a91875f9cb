"""Coin-margined greeks (against finite differences of V/S) and cross options (against Monte Carlo).

The cross-option reference is a seeded Monte Carlo of the two correlated assets in USD (BTC = a,
TSLA token = b) under the USD risk-neutral measure, independent of the cross-rate algebra: each
path's payoff is valued in USD, discounted at the USD rate and converted at today's price of the
margin token. The closed form must fall within 4 standard errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing.black_scholes import bs_greeks, bs_price
from pricing.coin_margined import CoinGreeks, coin_margined
from pricing.cross import cross_rate, cross_vol
from pricing.everlasting import everlasting_greeks, everlasting_price

Floats = npt.NDArray[np.float64]
WEEK = 7.0 / 365.0


def central(fn: Callable[[float], float], x: float, h: float) -> float:
    """Fourth-order central difference."""
    return (-fn(x + 2 * h) + 8 * fn(x + h) - 8 * fn(x - h) + fn(x - 2 * h)) / (12 * h)


def second(fn: Callable[[float], float], x: float, h: float) -> float:
    """Fourth-order central second difference."""
    return (-fn(x + 2 * h) + 16 * fn(x + h) - 30 * fn(x) + 16 * fn(x - h) - fn(x - 2 * h)) / (12 * h * h)


# ---------------------------------------------------------------- coin-margined greeks


@pytest.mark.parametrize("S", [30_000.0, 58_000.0, 60_000.0, 75_000.0])
@pytest.mark.parametrize("is_call", [True, False])
@pytest.mark.parametrize("kind", ["vanilla", "everlasting"])
def test_coin_greeks_against_finite_differences(S: float, is_call: bool, kind: str) -> None:
    K, sigma, T, r, q = 60_000.0, 0.7, 0.25, 0.03, 0.0

    def value(s: float, v: float = sigma) -> float:
        if kind == "vanilla":
            return float(bs_price(s, K, T, r, q, v, is_call))
        return float(everlasting_price(s, K, v, WEEK, r, q, is_call))

    g = (
        bs_greeks(S, K, T, r, q, sigma, is_call)
        if kind == "vanilla"
        else everlasting_greeks(S, K, sigma, WEEK, r, q, is_call)
    )
    coin = coin_margined(g.price, g.delta, g.gamma, g.vega, S)
    assert isinstance(coin, CoinGreeks)
    in_coins = lambda s: value(s) / s  # noqa: E731
    h = 1e-3 * S
    assert coin.price == pytest.approx(value(S) / S, rel=1e-14)
    assert coin.delta == pytest.approx(central(in_coins, S, h), rel=1e-7, abs=1e-16)
    assert coin.price_adjusted_delta == pytest.approx(S * coin.delta, rel=1e-14, abs=1e-17)
    # everlasting gamma has a jump in its derivative at K: test d2(V/S)/dS2 off the strike there
    if not (kind == "everlasting" and abs(S - K) < 3 * h):
        assert coin.gamma == pytest.approx(second(in_coins, S, h), rel=1e-5, abs=1e-15)
    assert coin.vega == pytest.approx(central(lambda v: value(S, v) / S, sigma, 1e-4), rel=1e-7)


@settings(max_examples=200, deadline=None)
@given(
    price=st.floats(0.0, 1e5),
    delta=st.floats(-1.0, 1.0),
    gamma=st.floats(0.0, 1.0),
    vega=st.floats(0.0, 1e4),
    S=st.floats(1e-3, 1e6),
)
def test_coin_formulas(price: float, delta: float, gamma: float, vega: float, S: float) -> None:
    # W = V/S, dW/dS = Delta/S - V/S^2, d2W/dS2 = Gamma/S - 2 Delta/S^2 + 2 V/S^3 (expanded form);
    # the 1e-300 absolute slack covers subnormal inputs, whose relative rounding is coarser
    c = coin_margined(price, delta, gamma, vega, S)
    assert c.price == pytest.approx(price / S, rel=1e-15, abs=1e-300)
    slack = 1e-12 * (abs(delta) / S + price / S**2) + 1e-300
    assert c.delta == pytest.approx(delta / S - price / S**2, rel=1e-12, abs=slack)
    expanded = [gamma / S, -2 * delta / S**2, 2 * price / S**3]
    assert c.gamma == pytest.approx(
        sum(expanded), rel=1e-12, abs=1e-12 * sum(abs(t) for t in expanded) + 1e-300
    )
    assert c.vega == pytest.approx(vega / S, rel=1e-15, abs=1e-300)


def test_coin_margined_broadcast_and_nan() -> None:
    S = np.array([[50.0, 100.0], [200.0, 0.0]])
    c = coin_margined(10.0, 0.5, 0.01, 20.0, S)
    assert all(isinstance(v, np.ndarray) and v.shape == (2, 2) for v in c)
    assert np.asarray(c.price)[0, 1] == 0.1 and all(math.isnan(np.asarray(v)[1, 1]) for v in c)
    assert all(isinstance(v, float) for v in coin_margined(10.0, 0.5, 0.01, 20.0, 100.0))


# ---------------------------------------------------------------- cross rate and vol


def test_cross_rate_and_vol_values() -> None:
    assert cross_rate(60_000.0, 250.0) == 240.0
    np.testing.assert_array_equal(cross_rate(np.array([10.0, 20.0]), 4.0), [2.5, 5.0])
    assert math.isnan(cross_rate(1.0, 0.0)) and math.isnan(cross_rate(-1.0, 1.0))
    assert cross_vol(0.6, 0.8, 0.0) == pytest.approx(1.0, rel=1e-15)
    assert cross_vol(0.5, 0.5, 1.0) == 0.0  # perfectly correlated, equal vols: the ratio is fixed
    assert cross_vol(0.3, 0.5, 1.0) == pytest.approx(0.2, rel=1e-14)
    assert cross_vol(0.3, 0.5, -1.0) == pytest.approx(0.8, rel=1e-15)
    # scaled like hypot: no underflow or overflow in the squares
    assert cross_vol(3e-200, 4e-200, 0.0) == pytest.approx(5e-200, rel=1e-15)
    assert cross_vol(3e200, 4e200, 0.0) == pytest.approx(5e200, rel=1e-15)
    assert math.isnan(cross_vol(0.3, 0.5, 1.5)) and math.isnan(cross_vol(-0.3, 0.5, 0.0))
    assert np.asarray(cross_vol(np.array([0.1, 0.2, 0.3]), 0.4, np.array([[0.0], [0.5]]))).shape == (2, 3)


vols = st.one_of(st.just(0.0), st.floats(1e-6, 3.0))  # tiny and huge scales: test_cross_rate_and_vol_values


@settings(max_examples=200, deadline=None)
@given(sa=vols, sb=vols, rho=st.floats(-1.0, 1.0))
def test_cross_vol_is_the_std_of_the_log_ratio(sa: float, sb: float, rho: float) -> None:
    # Var(sa Wa - sb Wb) per year, with the covariance matrix's own algebra; and |sa - sb| <= v <= sa + sb
    cov = np.array([[sa * sa, rho * sa * sb], [rho * sa * sb, sb * sb]])
    w = np.array([1.0, -1.0])
    v = float(cross_vol(sa, sb, rho))
    assert v * v == pytest.approx(float(w @ cov @ w), abs=1e-12 * (sa + sb) ** 2)
    assert abs(sa - sb) * (1 - 1e-12) - 1e-12 <= v <= (sa + sb) * (1 + 1e-12)


# ---------------------------------------------------------------- cross options against Monte Carlo

# BTC in USD (a), TSLA token in USD (b); USD rate r, yields (lending rates) q_a, q_b
S_A, S_B = 60_000.0, 250.0
SIG_A, SIG_B, RHO = 0.60, 0.50, 0.30
R_USD, Q_A, Q_B = 0.05, 0.0, 0.08  # yields far apart: a wrong drift shows up as many SEs


def simulate(tau: Floats, z_a: Floats, z_b: Floats) -> tuple[Floats, Floats]:
    """S_a(tau), S_b(tau) under the USD risk-neutral measure (drifts r - q_i), correlated RHO."""
    w_b = RHO * z_a + math.sqrt(1.0 - RHO * RHO) * z_b
    sa = S_A * np.exp((R_USD - Q_A - 0.5 * SIG_A**2) * tau + SIG_A * np.sqrt(tau) * z_a)
    sb = S_B * np.exp((R_USD - Q_B - 0.5 * SIG_B**2) * tau + SIG_B * np.sqrt(tau) * w_b)
    return sa, sb


def within_4_se(samples: Floats, value: float) -> None:
    mean = float(samples.mean())
    se = float(samples.std(ddof=1)) / math.sqrt(samples.size)
    assert abs(mean - value) <= 4.0 * se, (mean, value, se)
    assert se < 5e-3 * value  # the test has power: the MC is tight enough to catch a wrong drift


@pytest.mark.parametrize("is_call", [True, False])
@pytest.mark.parametrize("moneyness", [0.9, 1.0, 1.15])
def test_cross_option_in_margin_tokens_matches_monte_carlo(is_call: bool, moneyness: float) -> None:
    # An option on BTC whose premium, strike and payoff are TSLA tokens: payoff max(phi (X_T - K), 0)
    # TSLA tokens, X = S_a/S_b. Closed form: BSM in TSLA tokens with S = X, sigma = cross vol,
    # r = q_b, q = q_a (module doc of pricing.cross). The MC values the payoff in USD instead.
    T, n = 0.25, 400_000
    X = float(cross_rate(S_A, S_B))
    K = X * moneyness
    sigma_x = float(cross_vol(SIG_A, SIG_B, RHO))
    closed = float(bs_price(X, K, T, Q_B, Q_A, sigma_x, is_call))
    rng = np.random.default_rng(20260501 + int(is_call) + int(100 * moneyness))
    sa, sb = simulate(np.full(n, T), rng.standard_normal(n), rng.standard_normal(n))
    phi = 1.0 if is_call else -1.0
    payoff_tsla = np.maximum(phi * (sa / sb - K), 0.0)
    usd_pv_in_tsla = (
        math.exp(-R_USD * T) * sb * payoff_tsla / S_B
    )  # USD value at T, discounted, in today's TSLA
    within_4_se(usd_pv_in_tsla, closed)


@pytest.mark.parametrize("is_call", [True, False])
def test_cross_option_margined_in_the_underlying_coin(is_call: bool) -> None:
    # The same option settled in BTC (payoff / X_T coins): coin_margined(...).price with S = X.
    T, n = 0.5, 400_000
    X = float(cross_rate(S_A, S_B))
    K = X * 1.05
    sigma_x = float(cross_vol(SIG_A, SIG_B, RHO))
    g = bs_greeks(X, K, T, Q_B, Q_A, sigma_x, is_call)
    in_btc = coin_margined(g.price, g.delta, g.gamma, g.vega, X).price
    rng = np.random.default_rng(777 + int(is_call))
    sa, sb = simulate(np.full(n, T), rng.standard_normal(n), rng.standard_normal(n))
    phi = 1.0 if is_call else -1.0
    x_t = sa / sb
    payoff_btc = np.maximum(phi * (x_t - K), 0.0) / x_t
    within_4_se(math.exp(-R_USD * T) * sa * payoff_btc / S_A, float(in_btc))


@pytest.mark.parametrize("is_call", [True, False])
def test_cross_everlasting_option_matches_monte_carlo(is_call: bool) -> None:
    # Everlasting: value = E[BSM(tau)] with tau ~ Exponential(mean T); sample tau per path.
    T, n = 0.1, 400_000
    X = float(cross_rate(S_A, S_B))
    K = X * 1.02
    sigma_x = float(cross_vol(SIG_A, SIG_B, RHO))
    closed = float(everlasting_price(X, K, sigma_x, T, Q_B, Q_A, is_call))
    rng = np.random.default_rng(99 + int(is_call))
    tau = rng.exponential(T, n)
    sa, sb = simulate(tau, rng.standard_normal(n), rng.standard_normal(n))
    phi = 1.0 if is_call else -1.0
    payoff_tsla = np.maximum(phi * (sa / sb - K), 0.0)
    within_4_se(np.exp(-R_USD * tau) * sb * payoff_tsla / S_B, closed)
