"""Funding rates: everlasting options (per year) and Binance-style perpetual futures (per interval)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing.everlasting import everlasting_greeks
from pricing.funding import everlasting_funding_rate, perp_funding_rate

WEEK = 7.0 / 365.0


def test_everlasting_funding_values() -> None:
    # mark 12, call payoff 10, weekly funding: the long pays 2 per week = 2 * 365/7 per year
    assert everlasting_funding_rate(12.0, 110.0, 100.0, WEEK, True) == pytest.approx(
        2.0 * 365.0 / 7.0, rel=1e-15
    )
    assert everlasting_funding_rate(3.0, 110.0, 100.0, WEEK, False) == pytest.approx(
        3.0 * 365.0 / 7.0, rel=1e-15
    )
    # a mark below the payoff: the short pays
    assert everlasting_funding_rate(9.0, 110.0, 100.0, 1.0, True) == -1.0
    assert math.isnan(everlasting_funding_rate(1.0, 100.0, 100.0, 0.0, True))


def test_everlasting_funding_over_one_period_is_mark_minus_payoff() -> None:
    T = 8.0 / (24 * 365)  # 8-hour funding period
    rate = float(everlasting_funding_rate(5.0, 95.0, 100.0, T, False))
    assert rate * T == pytest.approx(5.0 - 5.0, abs=1e-15)
    rate = float(everlasting_funding_rate(7.5, 95.0, 100.0, T, False))
    assert rate * T == pytest.approx(2.5, rel=1e-15)


@pytest.mark.parametrize("S", [80.0, 100.0, 125.0])
def test_fair_mark_funding_is_minus_theta(S: float) -> None:
    for is_call in (True, False):
        g = everlasting_greeks(S, 100.0, 0.8, WEEK, 0.03, 0.01, is_call)
        assert everlasting_funding_rate(g.price, S, 100.0, WEEK, is_call) == -g.theta


def test_everlasting_funding_broadcasts() -> None:
    out = everlasting_funding_rate(
        np.array([1.0, 2.0]), np.array([[90.0], [110.0]]), 100.0, 1.0, [False, True]
    )
    np.testing.assert_allclose(out, [[1.0 - 10.0, 2.0], [1.0, 2.0 - 10.0]], rtol=1e-15)


# Binance: F = P + clamp(I - P, -0.05%, +0.05%), P = premium index, I = 0.01% per 8 h interval
INTEREST, CLAMP = 0.0001, 0.0005


@pytest.mark.parametrize(
    ("mark", "expected"),
    [
        (100.0, 0.0001),  # no premium: the interest rate
        (100.03, 0.0001),  # |I - P| = 0.02% < clamp: F = I exactly
        (99.97, 0.0001),
        (100.10, 0.0010 - 0.0005),  # P = 0.10%: I - P = -0.09% clamped to -0.05%
        (99.90, -0.0010 + 0.0005),  # P = -0.10%: I - P = 0.11% clamped to +0.05%
        (100.06, 0.0001),  # I - P = -0.05%: on the clamp
    ],
)
def test_perp_funding_binance_formula(mark: float, expected: float) -> None:
    assert perp_funding_rate(mark, 100.0, INTEREST, CLAMP) == pytest.approx(expected, abs=1e-15)


@settings(max_examples=300, deadline=None)
@given(
    mark=st.floats(1.0, 1e5),
    index=st.floats(1.0, 1e5),
    interest=st.floats(-1e-3, 1e-3),
    clamp=st.floats(0.0, 1e-2),
)
def test_perp_funding_properties(mark: float, index: float, interest: float, clamp: float) -> None:
    f = float(perp_funding_rate(mark, index, interest, clamp))
    premium = (mark - index) / index
    # within the clamp of the premium; equal to the interest rate when that is within the clamp
    assert premium - clamp - 1e-15 <= f <= premium + clamp + 1e-15
    if abs(interest - premium) <= clamp:
        assert f == pytest.approx(interest, abs=1e-15 * max(1.0, abs(premium)))


def test_perp_funding_nan_and_broadcast() -> None:
    assert math.isnan(perp_funding_rate(100.0, 0.0, INTEREST, CLAMP))
    assert math.isnan(perp_funding_rate(100.0, 100.0, INTEREST, -1.0))
    out = perp_funding_rate(np.array([100.0, 100.1]), 100.0, INTEREST, CLAMP)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, [0.0001, 0.0005], atol=1e-15)
