"""Uniswap v2 pair math against the pair contract's own checks, its published test values and brute force.

References: UniswapV2Pair.sol's K check (node_modules/@uniswap/v2-core), the getInputPrice cases of
v2-core's UniswapV2Pair.spec.ts (and of a fee-parameterised fork's spec for other fees), exhaustive
search over integer inputs for the optimal arbitrage on small pools and a float optimiser on large ones.
"""

from __future__ import annotations

import math
import sys
from fractions import Fraction

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pricing.amm import (
    AmmError,
    InsufficientLiquidityError,
    v2_amount_in,
    v2_amount_out,
    v2_arbitrage_profit,
    v2_optimal_arbitrage,
)

E18 = 10**18
BPS = 10_000

# v2-core test/UniswapV2Pair.spec.ts getInputPrice: (swap amount, reserve in, reserve out, output) at
# 0.30%; the same table at 0.15% and 2% from a fork whose pair takes the fee as a parameter
# (fee unit 1/100000 there: '300', '150', '2000').
INPUT_PRICE_CASES = [
    (30, 1, 5, 10, 1662497915624478906),
    (30, 1, 10, 5, 453305446940074565),
    (30, 2, 5, 10, 2851015155847869602),
    (30, 2, 10, 5, 831248957812239453),
    (30, 1, 10, 10, 906610893880149131),
    (30, 1, 100, 100, 987158034397061298),
    (30, 1, 1000, 1000, 996006981039903216),
    (15, 1, 5, 10, 1664582812369759106),
    (15, 1, 10, 5, 453925535300268218),
    (15, 2, 5, 10, 2854080320137201657),
    (15, 2, 10, 5, 832291406184879553),
    (15, 1, 10, 10, 907851070600536436),
    (15, 1, 100, 100, 988628543988277053),
    (15, 1, 1000, 1000, 997503992263724670),
    (200, 1, 5, 10, 1638795986622073578),
    (200, 1, 10, 5, 446265938069216757),
    (200, 2, 5, 10, 2816091954022988505),
    (200, 2, 10, 5, 819397993311036789),
    (200, 1, 10, 10, 892531876138433515),
    (200, 1, 100, 100, 970489205783323430),
    (200, 1, 1000, 1000, 979040540270534875),
]


@pytest.mark.parametrize(("fee_bps", "amount", "reserve_in", "reserve_out", "expected"), INPUT_PRICE_CASES)
def test_amount_out_matches_published_pair_tests(
    fee_bps: int, amount: int, reserve_in: int, reserve_out: int, expected: int
) -> None:
    assert v2_amount_out(amount * E18, reserve_in * E18, reserve_out * E18, fee_bps) == expected


def pair_accepts(amount_in: int, amount_out: int, reserve_in: int, reserve_out: int, fee_bps: int) -> bool:
    """UniswapV2Pair.swap's K check (balance adjusted by the fee on the input), generalised to bps."""
    balance_in_adjusted = (reserve_in + amount_in) * BPS - amount_in * fee_bps
    balance_out_adjusted = (reserve_out - amount_out) * BPS
    return (
        amount_out < reserve_out
        and balance_in_adjusted * balance_out_adjusted >= reserve_in * reserve_out * BPS**2
    )


reserves = st.one_of(st.integers(1, 2**112 - 1), st.integers(1, 10**6), st.integers(10**15, 10**30))
v2_fees = st.one_of(st.sampled_from([30, 25, 5, 100, 0]), st.integers(0, BPS - 1))


@given(st.integers(1, 2**100), reserves, reserves, v2_fees)
def test_amount_out_is_the_largest_output_the_pair_accepts(
    amount_in: int, reserve_in: int, reserve_out: int, fee_bps: int
) -> None:
    out = v2_amount_out(amount_in, reserve_in, reserve_out, fee_bps)
    assert 0 <= out < reserve_out
    assert pair_accepts(amount_in, out, reserve_in, reserve_out, fee_bps)
    assert not pair_accepts(amount_in, out + 1, reserve_in, reserve_out, fee_bps)


def test_default_fee_is_the_librarys_997_over_1000() -> None:
    for amount, reserve_in, reserve_out in [
        (1, 1, 1),
        (10**18, 5 * 10**18, 10**19),
        (12345, 678910, 11121314),
    ]:
        library = amount * 997 * reserve_out // (reserve_in * 1000 + amount * 997)
        assert v2_amount_out(amount, reserve_in, reserve_out) == library
        if amount < reserve_out:
            assert v2_amount_in(amount, reserve_in, reserve_out) == (
                reserve_in * amount * 1000 // ((reserve_out - amount) * 997) + 1
            )
    # SafeMath reverts exactly where amountIn * 997 * reserveOut leaves uint256
    reserve_out = 2**112 - 1
    largest = (2**256 - 1) // (997 * reserve_out)
    assert v2_amount_out(largest, 2**112 - 1, reserve_out) >= 0
    with pytest.raises(AmmError):
        v2_amount_out(largest + 1, 2**112 - 1, reserve_out)


@given(st.data(), reserves, reserves, v2_fees)
def test_amount_in_buys_the_output_and_is_at_most_one_unit_more_than_needed(
    data: st.DataObject, reserve_in: int, reserve_out: int, fee_bps: int
) -> None:
    if reserve_out < 2:
        return
    amount_out = data.draw(st.integers(1, reserve_out - 1))
    amount_in = v2_amount_in(amount_out, reserve_in, reserve_out, fee_bps)
    assert pair_accepts(amount_in, amount_out, reserve_in, reserve_out, fee_bps)
    assert v2_amount_out(amount_in, reserve_in, reserve_out, fee_bps) >= amount_out
    numerator, denominator = reserve_in * amount_out * BPS, (reserve_out - amount_out) * (BPS - fee_bps)
    if amount_in > 1 and numerator % denominator:
        # the library's +1 is exactly the ceiling here: one unit less does not buy the output
        assert not pair_accepts(amount_in - 1, amount_out, reserve_in, reserve_out, fee_bps)


def test_errors_name_the_argument_and_value() -> None:
    cases: list[tuple[tuple[int, int, int, int], str, int, type[AmmError]]] = [
        ((0, 10, 10, 30), "amount_in", 0, AmmError),
        ((-5, 10, 10, 30), "amount_in", -5, AmmError),
        ((5, 0, 10, 30), "reserve_in", 0, InsufficientLiquidityError),
        ((5, 10, 0, 30), "reserve_out", 0, InsufficientLiquidityError),
        ((5, 10, 10, 10_000), "fee_bps", 10_000, AmmError),
        ((5, 10, 10, -1), "fee_bps", -1, AmmError),
        ((2**250, 10, 2**112, 30), "amount_in", 2**250, AmmError),
    ]
    for (amount, reserve_in, reserve_out, fee), field, value, kind in cases:
        with pytest.raises(kind) as caught:
            v2_amount_out(amount, reserve_in, reserve_out, fee)
        assert caught.value.field == field and caught.value.value == value
        assert isinstance(caught.value, ValueError)
    with pytest.raises(AmmError) as caught:
        v2_amount_in(0, 10, 10)
    assert caught.value.field == "amount_out"
    for amount_out in (10, 11):
        with pytest.raises(InsufficientLiquidityError) as liquidity:
            v2_amount_in(amount_out, 10, 10)
        assert liquidity.value.field == "amount_out" and liquidity.value.value == amount_out


# ---------------------------------------------------------------------------------------------------
# optimal arbitrage
# ---------------------------------------------------------------------------------------------------


def brute_force_optimum(reserve_in: int, reserve_out: int, price: Fraction, fee_bps: int) -> int:
    """The smallest integer input with the greatest profit, by trying every input that can profit."""
    best_input, best_profit = 0, Fraction(0)
    for amount in range(1, math.ceil(price * reserve_out) + 2):  # beyond p * R_out every trade loses
        profit = v2_amount_out(amount, reserve_in, reserve_out, fee_bps) * price - amount
        if profit > best_profit:
            best_input, best_profit = amount, profit
    return best_input


small_reserves = st.one_of(st.integers(1, 5), st.integers(1, 400))
small_prices = st.builds(Fraction, st.integers(1, 40), st.integers(1, 40))


@settings(max_examples=300, deadline=None)
@given(small_reserves, small_reserves, small_prices, st.sampled_from([0, 5, 30, 100, 1000, 5000]))
def test_optimal_arbitrage_equals_brute_force_on_small_pools(
    reserve_in: int, reserve_out: int, price: Fraction, fee_bps: int
) -> None:
    expected = brute_force_optimum(reserve_in, reserve_out, price, fee_bps)
    assert v2_optimal_arbitrage(reserve_in, reserve_out, price, fee_bps) == expected


def float_optimum(reserve_in: int, reserve_out: int, price: float, fee_bps: int) -> tuple[float, float]:
    """(argmax, max) of the real profit p * out(a) - a by golden-section search in floats."""
    gamma = (BPS - fee_bps) / BPS

    def profit(a: float) -> float:
        return price * gamma * a * reserve_out / (reserve_in + gamma * a) - a

    low, high = 0.0, price * reserve_out
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(400):
        left, right = high - ratio * (high - low), low + ratio * (high - low)
        if profit(left) < profit(right):
            low = left
        else:
            high = right
    return (low + high) / 2.0, profit((low + high) / 2.0)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(10**15, 10**27),
    st.integers(10**15, 10**27),
    st.floats(0.8, 1.25),
    st.sampled_from([5, 30, 100]),
)
# A flat optimum: the float argmax is off by about 3e4 units here, the exact one is right.
@example(10**15, 1_151_100_018_338_458, 1.0005213269645599, 5)
def test_optimal_arbitrage_agrees_with_a_float_optimiser_on_large_pools(
    reserve_in: int, reserve_out: int, mispricing: float, fee_bps: int
) -> None:
    # external price around the pool's marginal price so that the optimum is interior when it exists
    price = Fraction(reserve_in, reserve_out) * Fraction(mispricing)
    amount = v2_optimal_arbitrage(reserve_in, reserve_out, price, fee_bps)
    best_float_input, best_float_profit = float_optimum(reserve_in, reserve_out, float(price), fee_bps)
    profit = v2_arbitrage_profit(amount, reserve_in, reserve_out, price, fee_bps)
    # integer output loses at most one output unit (worth `price`) against the real curve
    tolerance = float(price) + 1.0 + 1e-9 * abs(best_float_profit)
    assert float(profit) >= best_float_profit - tolerance
    if best_float_profit <= 0.0:
        assert amount == 0
    elif amount:
        assert profit > 0
        # The float argmax is only as sharp as the curve is curved: profit rounding of about
        # eps * a hides moves of sqrt(2 * rounding / |profit''|) around the optimum.
        gamma = (BPS - fee_bps) / BPS
        curvature = (
            2 * float(price) * gamma**2 * reserve_out * reserve_in / (reserve_in + gamma * amount) ** 3
        )
        slack = math.sqrt(2 * 8 * sys.float_info.epsilon * best_float_input / curvature)
        assert abs(amount - best_float_input) <= 1e-9 * best_float_input + slack + 2.0


def test_optimal_arbitrage_closed_form_examples() -> None:
    # R_in = R_out = 10**24, no fee, price 4: a* = (sqrt(4) - 1) * 10**24 = 10**24 exactly
    reserve = 10**24
    amount = v2_optimal_arbitrage(reserve, reserve, 4, 0)
    assert abs(amount - reserve) <= 2
    # at the pool's price net of fee (p = R_in / (gamma R_out)) nothing is worth trading
    assert (
        v2_optimal_arbitrage(997 * reserve, 1000 * reserve, Fraction(1000, 997) * Fraction(997, 1000), 30)
        == 0
    )
    assert v2_optimal_arbitrage(reserve, reserve, Fraction(1000, 997), 30) == 0
    assert v2_optimal_arbitrage(reserve, reserve, Fraction(1, 2)) == 0
    # a* = 0.73 < 1, yet one unit of input already pays: 1 unit out (worth 1.5) for 1 unit in
    assert v2_optimal_arbitrage(1, 2, Fraction(3, 2), 0) == 1
    # deep pool: the walk is capped; what it returns is still a candidate at least as good as a*'s
    deep = v2_optimal_arbitrage(10**30, 10**30, Fraction(11, 10), 30, max_steps=1)
    continuous = (math.isqrt(10**60 * 9970 * 11 * 10 * 10_000) - 10**30 * 10_000 * 10) // (9970 * 10)
    assert v2_arbitrage_profit(deep, 10**30, 10**30, Fraction(11, 10)) >= v2_arbitrage_profit(
        continuous, 10**30, 10**30, Fraction(11, 10)
    )
    # float and Fraction prices agree (the float is taken at its exact binary value)
    assert v2_optimal_arbitrage(reserve, 2 * reserve, 0.75) == v2_optimal_arbitrage(
        reserve, 2 * reserve, Fraction(3, 4)
    )
    assert v2_optimal_arbitrage(reserve, reserve, 2) == v2_optimal_arbitrage(reserve, reserve, Fraction(2))


def test_optimal_arbitrage_rejects_bad_prices_and_pools() -> None:
    for price in (0, -1, float("nan"), float("inf")):
        with pytest.raises(AmmError) as caught:
            v2_optimal_arbitrage(10, 10, price)
        assert caught.value.field == "price"
    with pytest.raises(InsufficientLiquidityError):
        v2_optimal_arbitrage(0, 10, 1)
    assert v2_arbitrage_profit(0, 10, 10, 3) == 0
    assert v2_arbitrage_profit(4, 10, 10, 3) == v2_amount_out(4, 10, 10) * 3 - 4
