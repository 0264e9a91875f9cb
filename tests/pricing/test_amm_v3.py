"""Uniswap v3 exact math against Uniswap's own test values, exact rational arithmetic and a slow reference.

References, none of them this code's own output:
- TickMath / SqrtPriceMath / SwapMath values from v3-core's test specs and snapshots;
- the pool swaps of v3-core's UniswapV3Pool.swaps.spec.ts snapshot (`uniswap_v3_swaps_snapshot.py`);
- `fractions.Fraction` arithmetic rounded the way the contract rounds, a high-precision `Decimal`
  sqrt(1.0001)**tick, a binary search for getTickAtSqrtRatio's definition, a bitmap port of QuoterV2's
  PoolTicksCounter, and a slow swap loop (`reference_swap`) built on them.
The real QuoterV2 comparison (anvil) lives with the EVM connectors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pricing.amm import (
    MAX_INT256,
    MAX_SQRT_RATIO,
    MAX_TICK,
    MAX_UINT128,
    MAX_UINT160,
    MAX_UINT256,
    MIN_SQRT_RATIO,
    MIN_TICK,
    Q96,
    AmmError,
    InsufficientLiquidityError,
    PriceLimitError,
    V3PoolState,
    V3SwapResult,
    add_delta,
    compute_swap_step,
    count_initialized_ticks_crossed,
    div_rounding_up,
    get_amount0_delta,
    get_amount0_delta_signed,
    get_amount1_delta,
    get_amount1_delta_signed,
    get_next_sqrt_price_from_amount0_rounding_up,
    get_next_sqrt_price_from_amount1_rounding_down,
    get_next_sqrt_price_from_input,
    get_next_sqrt_price_from_output,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
    get_tick_at_sqrt_ratio_fast,
    mul_div,
    mul_div_rounding_up,
    quote_exact_input,
    quote_exact_output,
    v3_swap,
)
from tests.pricing.uniswap_v3_swaps_snapshot import CASES, POOLS, SPL

E18 = 10**18
FEE_DENOMINATOR = 1_000_000

# ---------------------------------------------------------------------------------------------------
# helpers: the v3-core test utilities, exact rounding, the pool built from positions
# ---------------------------------------------------------------------------------------------------


def encode_price_sqrt(reserve1: int, reserve0: int) -> int:
    """v3-core's encodePriceSqrt: bignumber.js with DECIMAL_PLACES 40 (half-up), times 2**96, floored."""
    with localcontext() as ctx:
        ctx.prec = 300
        quantum = Decimal(1).scaleb(-40)
        ratio = (Decimal(reserve1) / Decimal(reserve0)).quantize(quantum, rounding=ROUND_HALF_UP)
        root = ratio.sqrt().quantize(quantum, rounding=ROUND_HALF_UP)
        return int((root * Decimal(2**96)).to_integral_value(rounding=ROUND_FLOOR))


def min_tick(spacing: int) -> int:
    """v3-core's getMinTick: the lowest usable tick for a spacing."""
    return -(887272 // spacing) * spacing


def max_tick(spacing: int) -> int:
    """v3-core's getMaxTick."""
    return (887272 // spacing) * spacing


def max_liquidity_per_tick(spacing: int) -> int:
    """v3-core's getMaxLiquidityPerTick."""
    return MAX_UINT128 // ((max_tick(spacing) - min_tick(spacing)) // spacing + 1)


def ceil_fraction(value: Fraction) -> int:
    """The ceiling of a rational."""
    return -(-value.numerator // value.denominator)


def floor_fraction(value: Fraction) -> int:
    """The floor of a rational."""
    return value.numerator // value.denominator


Position = tuple[int, int, int]  # (tick_lower, tick_upper, liquidity)


def pool_from_positions(
    price: int, fee: int, spacing: int, positions: list[Position], fee_protocol: int = 0
) -> V3PoolState:
    """The state after initialize(price) and mint of every position, as the pool keeps it."""
    tick = get_tick_at_sqrt_ratio(price)
    nets: dict[int, int] = {}
    liquidity = 0
    for lower, upper, amount in positions:
        nets[lower] = nets.get(lower, 0) + amount
        nets[upper] = nets.get(upper, 0) - amount
        if lower <= tick < upper:
            liquidity += amount
    ticks = tuple(sorted(nets.items()))  # a tick whose net cancels out stays initialized
    return V3PoolState(price, tick, liquidity, fee, spacing, ticks, fee_protocol)


def mint_amounts(price: int, tick: int, positions: list[Position]) -> tuple[int, int]:
    """Token amounts the pool asks for to mint the positions (UniswapV3Pool._modifyPosition)."""
    amount0 = amount1 = 0
    for lower, upper, amount in positions:
        sqrt_lower, sqrt_upper = get_sqrt_ratio_at_tick(lower), get_sqrt_ratio_at_tick(upper)
        if tick < lower:
            amount0 += get_amount0_delta_signed(sqrt_lower, sqrt_upper, amount)
        elif tick < upper:
            amount0 += get_amount0_delta_signed(price, sqrt_upper, amount)
            amount1 += get_amount1_delta_signed(sqrt_lower, price, amount)
        else:
            amount1 += get_amount1_delta_signed(sqrt_lower, sqrt_upper, amount)
    return amount0, amount1


def tick_by_definition(sqrt_price: int) -> int:
    """The greatest tick whose sqrt ratio is <= sqrt_price, by binary search over getSqrtRatioAtTick."""
    low, high = MIN_TICK, MAX_TICK
    while low < high:
        middle = (low + high + 1) // 2
        if get_sqrt_ratio_at_tick(middle) <= sqrt_price:
            low = middle
        else:
            high = middle - 1
    return low


# ---------------------------------------------------------------------------------------------------
# TickMath
# ---------------------------------------------------------------------------------------------------

# v3-core test/__snapshots__/TickMath.spec.ts.snap: getSqrtRatioAtTick results
SQRT_RATIO_SNAPSHOT = {
    -50: 79030349367926598376800521322,
    -100: 78833030112140176575862854579,
    -250: 78244023372248365697264290337,
    -500: 77272108795590369356373805297,
    -1000: 75364347830767020784054125655,
    -2500: 69919044979842180277688105136,
    -3000: 68192822843687888778582228483,
    -4000: 64867181785621769311890333195,
    -5000: 61703726247759831737814779831,
    -50000: 6504256538020985011912221507,
    -150000: 43836292794701720435367485,
    -250000: 295440463448801648376846,
    -500000: 1101692437043807371,
    -738203: 7409801140451,
    50: 79426470787362580746886972461,
    100: 79625275426524748796330556128,
    250: 80224679980005306637834519095,
    500: 81233731461783161732293370115,
    1000: 83290069058676223003182343270,
    2500: 89776708723587163891445672585,
    3000: 92049301871182272007977902845,
    4000: 96768528593268422080558758223,
    5000: 101729702841318637793976746270,
    50000: 965075977353221155028623082916,
    150000: 143194173941309278083010301478497,
    250000: 21246587762933397357449903968194344,
    500000: 5697689776495288729098254600827762987878,
    738203: 847134979253254120489401328389043031315994541,
}
# getTickAtSqrtRatio results from the same snapshot
TICK_SNAPSHOT = {
    4295128739: -887272,
    79228162514264337593543: -276325,
    79228162514264337593543950: -138163,
    9903520314283042199192993792: -41591,
    28011385487393069959365969113: -20796,
    56022770974786139918731938227: -6932,
    79228162514264337593543950336: 0,
    112045541949572279837463876454: 6931,
    224091083899144559674927752909: 20795,
    633825300114114700748351602688: 41590,
    79228162514264337593543950336000: 138162,
    79228162514264337593543950336000000: 276324,
    1461446703485210103287273052203988822378723970341: 887271,
}


def test_tick_math_published_constants() -> None:
    assert MIN_SQRT_RATIO == 4295128739
    assert MAX_SQRT_RATIO == 1461446703485210103287273052203988822378723970342
    assert get_sqrt_ratio_at_tick(MIN_TICK) == MIN_SQRT_RATIO
    assert get_sqrt_ratio_at_tick(MAX_TICK) == MAX_SQRT_RATIO
    assert get_sqrt_ratio_at_tick(0) == 2**96
    assert get_tick_at_sqrt_ratio(MIN_SQRT_RATIO) == MIN_TICK
    assert get_tick_at_sqrt_ratio(MAX_SQRT_RATIO - 1) == MAX_TICK - 1


@pytest.mark.parametrize(("tick", "expected"), sorted(SQRT_RATIO_SNAPSHOT.items()))
def test_sqrt_ratio_at_tick_matches_v3_core_snapshot(tick: int, expected: int) -> None:
    assert get_sqrt_ratio_at_tick(tick) == expected


@pytest.mark.parametrize(("sqrt_price", "expected"), sorted(TICK_SNAPSHOT.items()))
def test_tick_at_sqrt_ratio_matches_v3_core_snapshot(sqrt_price: int, expected: int) -> None:
    assert get_tick_at_sqrt_ratio(sqrt_price) == expected
    assert get_tick_at_sqrt_ratio_fast(sqrt_price) == expected


@pytest.mark.parametrize("tick", [MIN_TICK - 1, MAX_TICK + 1, -(2**23)])
def test_sqrt_ratio_at_tick_rejects_ticks_out_of_range(tick: int) -> None:
    with pytest.raises(AmmError) as caught:
        get_sqrt_ratio_at_tick(tick)
    assert caught.value.field == "tick" and caught.value.value == tick


@pytest.mark.parametrize("sqrt_price", [0, MIN_SQRT_RATIO - 1, MAX_SQRT_RATIO, MAX_UINT160])
@pytest.mark.parametrize("function", [get_tick_at_sqrt_ratio, get_tick_at_sqrt_ratio_fast])
def test_tick_at_sqrt_ratio_rejects_prices_out_of_range(
    function: Callable[[int], int], sqrt_price: int
) -> None:
    with pytest.raises(AmmError) as caught:
        function(sqrt_price)
    assert caught.value.field == "sqrt_price_x96" and caught.value.value == sqrt_price


ticks = st.integers(MIN_TICK, MAX_TICK)
sqrt_prices = st.integers(MIN_SQRT_RATIO, MAX_SQRT_RATIO - 1)


@given(ticks)
def test_sqrt_ratio_round_trips_through_tick(tick: int) -> None:
    ratio = get_sqrt_ratio_at_tick(tick)
    if tick < MAX_TICK:
        assert get_tick_at_sqrt_ratio(ratio) == tick
        assert get_sqrt_ratio_at_tick(tick + 1) > ratio  # strictly increasing
    if tick > MIN_TICK:
        assert get_tick_at_sqrt_ratio(ratio - 1) == tick - 1


@given(sqrt_prices)
def test_tick_at_sqrt_ratio_is_the_greatest_tick_not_above_the_price(sqrt_price: int) -> None:
    tick = get_tick_at_sqrt_ratio(sqrt_price)
    assert get_sqrt_ratio_at_tick(tick) <= sqrt_price < get_sqrt_ratio_at_tick(tick + 1)
    assert get_tick_at_sqrt_ratio_fast(sqrt_price) == tick


@given(ticks, st.integers(-3, 3))
def test_fast_tick_equals_solidity_port_next_to_tick_boundaries(tick: int, offset: int) -> None:
    sqrt_price = get_sqrt_ratio_at_tick(tick) + offset
    assume(MIN_SQRT_RATIO <= sqrt_price < MAX_SQRT_RATIO)
    assert get_tick_at_sqrt_ratio_fast(sqrt_price) == get_tick_at_sqrt_ratio(sqrt_price)


def test_tick_math_sweep_over_the_whole_range() -> None:
    # deterministic companion of the hypothesis tests: every 997th tick and its neighbours
    previous = 0
    for tick in [*range(MIN_TICK, MAX_TICK, 997), MAX_TICK - 1]:
        ratio = get_sqrt_ratio_at_tick(tick)
        assert ratio > previous
        previous = ratio
        assert get_tick_at_sqrt_ratio_fast(ratio) == tick
        if tick > MIN_TICK:
            assert get_tick_at_sqrt_ratio_fast(ratio - 1) == tick - 1


@given(ticks)
def test_sqrt_ratio_is_the_real_value_rounded_up(tick: int) -> None:
    # sqrt(1.0001)**tick * 2**96 at 120 digits; the Q128.128 intermediate keeps > 64 bits, so the
    # contract's value is the real one to 1e-19 relative, plus its final round-up of one unit.
    with localcontext() as ctx:
        ctx.prec = 120
        exact = Decimal("1.0001").sqrt() ** tick * Decimal(2**96)
        ratio = Decimal(get_sqrt_ratio_at_tick(tick))
        assert ratio >= exact * (1 - Decimal("1e-30"))
        assert ratio - 1 <= exact * (1 + Decimal("1e-19"))


# ---------------------------------------------------------------------------------------------------
# FullMath, UnsafeMath, LiquidityMath
# ---------------------------------------------------------------------------------------------------

uint256s = st.one_of(
    st.integers(0, MAX_UINT256), st.integers(0, 2**128), st.sampled_from([0, 1, MAX_UINT256])
)


@given(uint256s, uint256s, uint256s.filter(lambda d: d > 0))
def test_mul_div_is_the_exact_floor_and_ceiling(a: int, b: int, denominator: int) -> None:
    exact = Fraction(a * b, denominator)
    if floor_fraction(exact) > MAX_UINT256:
        with pytest.raises(AmmError):
            mul_div(a, b, denominator)
    else:
        assert mul_div(a, b, denominator) == floor_fraction(exact)
    if ceil_fraction(exact) > MAX_UINT256:
        with pytest.raises(AmmError):
            mul_div_rounding_up(a, b, denominator)
    else:
        assert mul_div_rounding_up(a, b, denominator) == ceil_fraction(exact)


def test_full_math_matches_v3_core_spec() -> None:
    # v3-core test/FullMath.spec.ts
    q128 = 2**128
    for function in (mul_div, mul_div_rounding_up):
        with pytest.raises(AmmError, match="denominator"):
            function(q128, 5, 0)
        with pytest.raises(AmmError, match="denominator"):
            function(q128, q128, 0)
        with pytest.raises(AmmError):
            function(q128, q128, 1)  # the result overflows uint256
        with pytest.raises(AmmError):
            function(MAX_UINT256, MAX_UINT256, MAX_UINT256 - 1)
        assert function(MAX_UINT256, MAX_UINT256, MAX_UINT256) == MAX_UINT256
        assert function(q128, 35 * q128, 8 * q128) == 4375 * q128 // 1000
    assert mul_div(q128, 50 * q128 // 100, 150 * q128 // 100) == q128 // 3
    assert mul_div(q128, 1000 * q128, 3000 * q128) == q128 // 3
    assert mul_div_rounding_up(q128, 50 * q128 // 100, 150 * q128 // 100) == q128 // 3 + 1
    assert mul_div_rounding_up(q128, 1000 * q128, 3000 * q128) == q128 // 3 + 1
    with pytest.raises(AmmError):  # overflows only after rounding up
        mul_div_rounding_up(
            535006138814359, 432862656469423142931042426214547535783388063929571229938474969, 2
        )
    with pytest.raises(AmmError):
        mul_div_rounding_up(
            115792089237316195423570985008687907853269984659341747863450311749907997002549,
            115792089237316195423570985008687907853269984659341747863450311749907997002550,
            115792089237316195423570985008687907853269984653042931687443039491902864365164,
        )
    with pytest.raises(AmmError) as caught:
        mul_div(-1, 1, 1)
    assert caught.value.field == "a"


@given(uint256s, uint256s)
def test_div_rounding_up_follows_evm_semantics(x: int, y: int) -> None:
    assert div_rounding_up(x, y) == (0 if y == 0 else ceil_fraction(Fraction(x, y)))


@given(st.integers(0, MAX_UINT128), st.integers(-(2**127) + 1, 2**127 - 1))
def test_add_delta_adds_or_reverts(liquidity: int, delta: int) -> None:
    total = liquidity + delta
    if 0 <= total <= MAX_UINT128:
        assert add_delta(liquidity, delta) == total
    else:
        with pytest.raises(AmmError, match="LS" if total < 0 else "LA"):
            add_delta(liquidity, delta)


def test_add_delta_examples() -> None:
    # v3-core LiquidityMath.spec.ts
    assert add_delta(1, 0) == 1
    assert add_delta(1, -1) == 0
    assert add_delta(1, 1) == 2
    with pytest.raises(AmmError, match="LA"):
        add_delta(2**128 - 15, 15)
    with pytest.raises(AmmError, match="LS"):
        add_delta(0, -1)
    with pytest.raises(AmmError, match="LS"):
        add_delta(3, -4)


# ---------------------------------------------------------------------------------------------------
# SqrtPriceMath
# ---------------------------------------------------------------------------------------------------


def test_sqrt_price_math_matches_v3_core_spec() -> None:
    # v3-core test/SqrtPriceMath.spec.ts
    one = encode_price_sqrt(1, 1)
    assert one == 2**96
    assert get_next_sqrt_price_from_input(one, E18, E18 // 10, False) == 87150978765690771352898345369
    assert get_next_sqrt_price_from_input(one, E18, E18 // 10, True) == 72025602285694852357767227579
    assert get_next_sqrt_price_from_input(one, 10 * E18, 2**100, True) == 624999999995069620
    assert get_next_sqrt_price_from_input(one, 1, MAX_UINT256 // 2, True) == 1  # overflow fallback
    assert get_next_sqrt_price_from_input(1, 1, 2**255, True) == 1
    assert get_next_sqrt_price_from_input(one, E18 // 10, 0, True) == one
    assert get_next_sqrt_price_from_input(one, E18 // 10, 0, False) == one
    assert get_next_sqrt_price_from_output(one, E18, E18 // 10, False) == 88031291682515930659493278152
    assert get_next_sqrt_price_from_output(one, E18, E18 // 10, True) == 71305346262837903834189555302
    assert get_next_sqrt_price_from_output(one, E18 // 10, 0, True) == one
    assert get_amount0_delta(encode_price_sqrt(121, 100), one, E18, True) == 90909090909090910
    assert get_amount0_delta(encode_price_sqrt(121, 100), one, E18, False) == 90909090909090909
    assert get_amount1_delta(one, encode_price_sqrt(121, 100), E18, True) == 100000000000000000
    assert get_amount1_delta(one, encode_price_sqrt(121, 100), E18, False) == 99999999999999999
    assert get_amount0_delta(encode_price_sqrt(2, 1), one, 0, True) == 0
    assert get_amount0_delta(one, one, E18, True) == 0
    big_up = get_amount0_delta(encode_price_sqrt(2**96, 1), encode_price_sqrt(2**90, 1), E18, True)
    big_down = get_amount0_delta(encode_price_sqrt(2**96, 1), encode_price_sqrt(2**90, 1), E18, False)
    assert big_up == big_down + 1
    # "sqrtP * sqrtQ overflows"
    sqrt_p = 1025574284609383690408304870162715216695788925244
    liquidity = 50015962439936049619261659728067971248
    sqrt_q = get_next_sqrt_price_from_input(sqrt_p, liquidity, 406, True)
    assert sqrt_q == 1025574284609383582644711336373707553698163132913
    assert get_amount0_delta(sqrt_p, sqrt_q, liquidity, True) == 406


def test_sqrt_price_math_reverts_like_the_contract() -> None:
    price = 20282409603651670423947251286016  # 2**104: virtual reserves 4 token0, 262144 token1
    with pytest.raises(AmmError):
        get_next_sqrt_price_from_input(0, 0, E18 // 10, False)
    with pytest.raises(AmmError, match="liquidity"):
        get_next_sqrt_price_from_input(1, 0, E18 // 10, True)
    with pytest.raises(AmmError):
        get_next_sqrt_price_from_input(MAX_UINT160, 1024, 1024, False)  # price overflows uint160
    with pytest.raises(AmmError):
        get_next_sqrt_price_from_output(price, 1024, 4, False)  # exactly the token0 reserve
    with pytest.raises(AmmError):
        get_next_sqrt_price_from_output(price, 1024, 5, False)
    with pytest.raises(AmmError):
        get_next_sqrt_price_from_output(price, 1024, 262144, True)  # require(sqrtPX96 > quotient)
    with pytest.raises(AmmError):
        get_next_sqrt_price_from_output(2**96, 1, MAX_UINT256, True)
    with pytest.raises(AmmError):
        get_next_sqrt_price_from_output(2**96, 1, MAX_UINT256, False)
    with pytest.raises(AmmError) as caught:
        get_amount0_delta(0, 2**96, 1, True)
    assert caught.value.field == "sqrt_ratio_a_x96"
    with pytest.raises(AmmError) as caught:
        get_amount1_delta(2**96, 2**96, MAX_UINT128 + 1, True)
    assert caught.value.field == "liquidity"
    with pytest.raises(AmmError):
        get_amount0_delta_signed(2**96, 2**97, -(2**127) - 1)


prices = st.integers(MIN_SQRT_RATIO, MAX_SQRT_RATIO - 1)
liquidities = st.one_of(st.integers(1, MAX_UINT128), st.integers(1, 2**80))
amounts = st.one_of(st.integers(0, 2**90), st.integers(0, 2**40))


@given(prices, prices, st.integers(0, MAX_UINT128), st.booleans())
def test_amount_deltas_are_ceil_and_floor_of_the_exact_value(
    price_a: int, price_b: int, liquidity: int, round_up: bool
) -> None:
    low, high = sorted((price_a, price_b))
    exact0 = Fraction(liquidity * Q96 * (high - low), low * high)
    exact1 = Fraction(liquidity * (high - low), Q96)
    rounding = ceil_fraction if round_up else floor_fraction
    assert get_amount0_delta(price_a, price_b, liquidity, round_up) == rounding(exact0)
    assert get_amount1_delta(price_a, price_b, liquidity, round_up) == rounding(exact1)
    signed = min(liquidity, 2**127 - 1)
    assert get_amount0_delta_signed(price_a, price_b, signed) == ceil_fraction(
        exact0 * signed / max(liquidity, 1)
    )
    assert get_amount1_delta_signed(price_a, price_b, -signed) == -floor_fraction(
        exact1 * signed / max(liquidity, 1)
    )


@given(prices, liquidities, amounts)
def test_next_price_from_input_rounds_towards_the_start(sqrt_price: int, liquidity: int, amount: int) -> None:
    # token0 in: price falls to L*P/(L + A*P) in real terms, rounded up (the swap stops short)
    exact0 = Fraction(liquidity * Q96 * sqrt_price, liquidity * Q96 + amount * sqrt_price)
    next0 = get_next_sqrt_price_from_input(sqrt_price, liquidity, amount, True)
    assert next0 == (sqrt_price if amount == 0 else ceil_fraction(exact0))
    assert get_amount0_delta(next0, sqrt_price, liquidity, True) <= amount or amount == 0
    # token1 in: price rises by A / L, rounded down
    exact1 = sqrt_price + Fraction(amount * Q96, liquidity)
    if floor_fraction(exact1) > MAX_UINT160:
        with pytest.raises(AmmError):
            get_next_sqrt_price_from_input(sqrt_price, liquidity, amount, False)
    else:
        next1 = get_next_sqrt_price_from_input(sqrt_price, liquidity, amount, False)
        assert next1 == floor_fraction(exact1)
        assert get_amount1_delta(sqrt_price, next1, liquidity, True) <= amount


@given(prices, liquidities, amounts)
def test_next_price_from_output_rounds_away_from_the_start(
    sqrt_price: int, liquidity: int, amount: int
) -> None:
    # token1 out: price falls by A / L, rounded down (far enough to pay the output)
    exact1 = sqrt_price - Fraction(amount * Q96, liquidity)
    if exact1 <= 0 or floor_fraction(exact1) == 0:
        with pytest.raises(AmmError):
            get_next_sqrt_price_from_output(sqrt_price, liquidity, amount, True)
    else:
        next1 = get_next_sqrt_price_from_output(sqrt_price, liquidity, amount, True)
        assert next1 == floor_fraction(exact1)
        assert get_amount1_delta(next1, sqrt_price, liquidity, False) >= amount
    # token0 out: price rises to L*P/(L - A*P), rounded up
    if amount * sqrt_price >= liquidity * Q96:
        with pytest.raises(AmmError):
            get_next_sqrt_price_from_output(sqrt_price, liquidity, amount, False)
        return
    exact0 = Fraction(liquidity * Q96 * sqrt_price, liquidity * Q96 - amount * sqrt_price)
    if ceil_fraction(exact0) > MAX_UINT160:
        with pytest.raises(AmmError):
            get_next_sqrt_price_from_output(sqrt_price, liquidity, amount, False)
    else:
        next0 = get_next_sqrt_price_from_output(sqrt_price, liquidity, amount, False)
        assert next0 == (sqrt_price if amount == 0 else ceil_fraction(exact0))
        assert get_amount0_delta(sqrt_price, next0, liquidity, False) >= amount


@given(st.integers(1, MAX_UINT160), st.integers(1, MAX_UINT128), st.integers(1, MAX_UINT256))
def test_amount0_overflow_fallback(sqrt_price: int, liquidity: int, amount: int) -> None:
    # when amount * P or L * 2**96 + amount * P overflow uint256 the contract switches formulas
    numerator = liquidity << 96
    if amount * sqrt_price <= MAX_UINT256 and numerator + amount * sqrt_price <= MAX_UINT256:
        expected = ceil_fraction(Fraction(numerator * sqrt_price, numerator + amount * sqrt_price))
    elif numerator // sqrt_price + amount <= MAX_UINT256:
        expected = ceil_fraction(Fraction(numerator, numerator // sqrt_price + amount))
    else:
        with pytest.raises(AmmError):  # LowGasSafeMath.add reverts
            get_next_sqrt_price_from_amount0_rounding_up(sqrt_price, liquidity, amount, True)
        return
    result = get_next_sqrt_price_from_amount0_rounding_up(sqrt_price, liquidity, amount, True)
    assert result == expected
    # both formulas round up: never below the exact price
    assert result >= Fraction(numerator * sqrt_price, numerator + amount * sqrt_price)
    assert get_next_sqrt_price_from_amount1_rounding_down(sqrt_price, liquidity, 0, True) == sqrt_price


# ---------------------------------------------------------------------------------------------------
# SwapMath
# ---------------------------------------------------------------------------------------------------


def test_compute_swap_step_matches_v3_core_spec() -> None:
    # v3-core test/SwapMath.spec.ts
    one, target = encode_price_sqrt(1, 1), encode_price_sqrt(101, 100)
    step = compute_swap_step(one, target, 2 * E18, E18, 600)
    assert step == (target, 9975124224178055, 9925619580021728, 5988667735148)
    assert step.amount_in + step.fee_amount < E18
    step = compute_swap_step(one, target, 2 * E18, -E18, 600)
    assert step == (target, 9975124224178055, 9925619580021728, 5988667735148)
    step = compute_swap_step(one, encode_price_sqrt(1000, 100), 2 * E18, E18, 600)
    assert (step.amount_in, step.fee_amount, step.amount_out) == (
        999400000000000000,
        600000000000000,
        666399946655997866,
    )
    assert step.sqrt_ratio_next_x96 == get_next_sqrt_price_from_input(
        one, 2 * E18, E18 - step.fee_amount, False
    )
    step = compute_swap_step(one, encode_price_sqrt(10000, 100), 2 * E18, -E18, 600)
    assert (step.amount_in, step.fee_amount, step.amount_out) == (2 * E18, 1200720432259356, E18)
    assert step.sqrt_ratio_next_x96 == get_next_sqrt_price_from_output(one, 2 * E18, E18, False)
    step = compute_swap_step(
        417332158212080721273783715441582, 1452870262520218020823638996, 159344665391607089467575320103, -1, 1
    )
    assert step == (417332158212080721273783715441581, 1, 1, 1)  # output capped at the amount asked
    step = compute_swap_step(2, 1, 1, 3915081100057732413702495386755767, 1)
    assert step == (1, 39614081257132168796771975168, 0, 39614120871253040049813)
    assert compute_swap_step(2413, 79887613182836312, 1985041575832132834610021537970, 10, 1872) == (
        2413,
        0,
        0,
        10,
    )
    price = 20282409603651670423947251286016
    assert compute_swap_step(price, price * 11 // 10, 1024, -4, 3000) == (price * 11 // 10, 26215, 0, 79)
    assert compute_swap_step(price, price * 9 // 10, 1024, -263000, 3000) == (price * 9 // 10, 1, 26214, 1)


def test_compute_swap_step_validates_its_arguments() -> None:
    for args, field in [
        ((0, 2**96, 1, 1, 3000), "sqrt_ratio_current_x96"),
        ((2**96, MAX_UINT160 + 1, 1, 1, 3000), "sqrt_ratio_target_x96"),
        ((2**96, 2**95, -1, 1, 3000), "liquidity"),
        ((2**96, 2**95, 1, 2**255, 3000), "amount_remaining"),
        ((2**96, 2**95, 1, 1, 1_000_000), "fee_pips"),
    ]:
        with pytest.raises(AmmError) as caught:
            compute_swap_step(*args)
        assert caught.value.field == field


fees = st.one_of(st.sampled_from([0, 100, 500, 3000, 10000]), st.integers(0, FEE_DENOMINATOR - 1))


@given(prices, prices, liquidities, st.integers(-(2**90), 2**90).filter(bool), fees)
def test_compute_swap_step_invariants(
    current: int, target: int, liquidity: int, remaining: int, fee: int
) -> None:
    # the echidna properties of v3-core's SwapMathEchidnaTest, plus exact-value bounds
    step = compute_swap_step(current, target, liquidity, remaining, fee)
    next_price = step.sqrt_ratio_next_x96
    zero_for_one = current >= target
    if zero_for_one:
        assert target <= next_price <= current  # moved down, never past the target
    else:
        assert current <= next_price <= target
    if remaining > 0:
        assert step.amount_in + step.fee_amount <= remaining
        if next_price != target:
            assert step.amount_in + step.fee_amount == remaining  # the whole input is used
    else:
        assert step.amount_out <= -remaining
        if next_price != target:
            assert step.amount_out == -remaining
    low, high = sorted((current, next_price))
    exact0 = Fraction(liquidity * Q96 * (high - low), low * high)
    exact1 = Fraction(liquidity * (high - low), Q96)
    exact_in, exact_out = (exact0, exact1) if zero_for_one else (exact1, exact0)
    assert step.amount_in == ceil_fraction(exact_in)
    assert step.amount_out <= exact_out
    if step.amount_in and (next_price == target or remaining < 0):
        # the fee is the input's share of fee / (1e6 - fee), rounded up
        assert step.fee_amount == ceil_fraction(Fraction(step.amount_in * fee, FEE_DENOMINATOR - fee))


# ---------------------------------------------------------------------------------------------------
# the pool swap against v3-core's own swap snapshot
# ---------------------------------------------------------------------------------------------------


def snapshot_pool(name: str) -> tuple[V3PoolState, list[Position], dict[str, Any]]:
    """The pool of one v3-core swap test case, built from its positions."""
    case = POOLS[name]
    spacing = int(case["spacing"])  # type: ignore[call-overload]
    price_spec = case["price"]
    assert isinstance(price_spec, tuple)
    price = encode_price_sqrt(price_spec[1], price_spec[2]) if price_spec[0] == "enc" else price_spec[1]
    positions: list[Position] = []
    for lower, upper, amount in case["positions"]:  # type: ignore[attr-defined]
        positions.append(
            (
                min_tick(spacing) if lower == "min" else lower,
                max_tick(spacing) if upper == "max" else upper,
                max_liquidity_per_tick(spacing) if amount == "maxPerTick" else amount,
            )
        )
    return pool_from_positions(price, int(case["fee"]), spacing, positions), positions, case  # type: ignore[call-overload]


@pytest.mark.parametrize("name", sorted(POOLS))
def test_mint_amounts_match_v3_core_snapshot(name: str) -> None:
    state, positions, case = snapshot_pool(name)
    assert mint_amounts(state.sqrt_price_x96, state.tick, positions) == case["balances"]


SNAPSHOT_SWAPS = [
    (name, index, description) for name in sorted(POOLS) for index, (description, *_rest) in enumerate(CASES)
]


@pytest.mark.parametrize(("name", "index", "description"), SNAPSHOT_SWAPS)
def test_swap_matches_v3_core_snapshot(name: str, index: int, description: str) -> None:
    state, _, case = snapshot_pool(name)
    _, zero_for_one, amount, limit_spec = CASES[index]
    amount_specified = MAX_INT256 if amount == "max" else int(amount)
    if limit_spec is None:
        limit = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
    else:
        limit = encode_price_sqrt(limit_spec[1], limit_spec[2])
    expected = case["results"][index]
    if expected == SPL:
        with pytest.raises(PriceLimitError):
            v3_swap(state, zero_for_one, amount_specified, limit)
        return
    result = v3_swap(state, zero_for_one, amount_specified, limit)
    amount0, amount1, tick_after, growth0, growth1 = expected
    assert (result.amount0, result.amount1, result.tick) == (amount0, amount1, tick_after)
    assert result.fee_growth_global_x128_delta == (growth0 if zero_for_one else growth1)
    assert (growth1 if zero_for_one else growth0) == 0
    # the liquidity after is the sum of the positions around the final tick
    _, positions, _ = snapshot_pool(name)
    assert result.liquidity == sum(size for lower, upper, size in positions if lower <= result.tick < upper)
    assert get_tick_at_sqrt_ratio(result.sqrt_price_x96) in (result.tick, result.tick + 1)


# ---------------------------------------------------------------------------------------------------
# a slow, independent swap loop: exact rationals, linear tick search, the tick by definition
# ---------------------------------------------------------------------------------------------------


def reference_step(
    price: int, target: int, liquidity: int, remaining: int, fee: int
) -> tuple[int, int, int, int]:
    """One step from the real formulas, rounded where the contract rounds (no overflow fallback)."""
    zero_for_one = price >= target
    lq = liquidity * Q96

    def amount0(a: int, b: int) -> Fraction:
        low, high = sorted((a, b))
        return Fraction(lq * (high - low), low * high)

    def amount1(a: int, b: int) -> Fraction:
        return Fraction(liquidity * abs(b - a), Q96)

    amount_in_of, amount_out_of = (amount0, amount1) if zero_for_one else (amount1, amount0)
    if remaining >= 0:
        less_fee = floor_fraction(Fraction(remaining * (FEE_DENOMINATOR - fee), FEE_DENOMINATOR))
        if less_fee >= ceil_fraction(amount_in_of(price, target)):
            next_price = target
        elif zero_for_one:  # token0 in: 1/sqrtQ = 1/sqrtP + A / L, rounded up
            next_price = ceil_fraction(Fraction(lq * price, lq + less_fee * price))
        else:  # token1 in: sqrtQ = sqrtP + A / L, rounded down
            next_price = floor_fraction(price + Fraction(less_fee * Q96, liquidity))
    else:
        wanted = -remaining
        if wanted >= floor_fraction(amount_out_of(price, target)):
            next_price = target
        elif zero_for_one:  # token1 out: sqrtQ = sqrtP - A / L, rounded down
            next_price = floor_fraction(price - Fraction(wanted * Q96, liquidity))
        else:  # token0 out: 1/sqrtQ = 1/sqrtP - A / L, rounded up
            next_price = ceil_fraction(Fraction(lq * price, lq - wanted * price))
    amount_in = ceil_fraction(amount_in_of(price, next_price))
    amount_out = floor_fraction(amount_out_of(price, next_price))
    if remaining < 0:
        amount_out = min(amount_out, -remaining)
    if remaining >= 0 and next_price != target:
        fee_amount = remaining - amount_in
    else:
        fee_amount = ceil_fraction(Fraction(amount_in * fee, FEE_DENOMINATOR - fee))
    return next_price, amount_in, amount_out, fee_amount


def reference_swap(
    state: V3PoolState, zero_for_one: bool, amount_specified: int, limit: int
) -> tuple[tuple[int, int, int, int, int, int], int]:
    """(amount0, amount1, sqrt price, tick, liquidity, fee growth) after the swap, and the step count."""
    nets = dict(state.ticks)
    spacing = state.tick_spacing
    price, tick, liquidity = state.sqrt_price_x96, state.tick, state.liquidity
    remaining, calculated, growth, steps = amount_specified, 0, 0, 0
    while remaining != 0 and price != limit:
        steps += 1
        compressed = math.floor(Fraction(tick, spacing))
        if zero_for_one:  # initialized ticks at or below the tick, within its 256-position word
            word_low = (compressed // 256) * 256 * spacing
            found = [t for t in nets if word_low <= t <= compressed * spacing]
            tick_next = max(max(found) if found else word_low, MIN_TICK)
        else:
            word_high = ((compressed + 1) // 256 * 256 + 255) * spacing
            found = [t for t in nets if (compressed + 1) * spacing <= t <= word_high]
            tick_next = min(min(found) if found else word_high, MAX_TICK)
        price_next = get_sqrt_ratio_at_tick(tick_next)
        beyond = price_next < limit if zero_for_one else price_next > limit
        start = price
        price, amount_in, amount_out, fee_amount = reference_step(
            price, limit if beyond else price_next, liquidity, remaining, state.fee
        )
        if amount_specified > 0:
            remaining -= amount_in + fee_amount
            calculated -= amount_out
        else:
            remaining += amount_out
            calculated += amount_in + fee_amount
        if liquidity:
            growth += fee_amount * 2**128 // liquidity
        if price == price_next:
            if found:
                liquidity += -nets[tick_next] if zero_for_one else nets[tick_next]
            tick = tick_next - 1 if zero_for_one else tick_next
        elif price != start:
            tick = tick_by_definition(price)
    used = amount_specified - remaining
    amount0, amount1 = (used, calculated) if zero_for_one == (amount_specified > 0) else (calculated, used)
    return (amount0, amount1, price, tick, liquidity, growth), steps


def bitmap_ticks_counter(state: V3PoolState, tick_before: int, tick_after: int) -> int:
    """QuoterV2's PoolTicksCounter.countInitializedTicksCrossed, line by line on a real tick bitmap."""
    spacing = state.tick_spacing
    bitmap: dict[int, int] = {}
    for tick, _ in state.ticks:  # TickBitmap.flipTick
        compressed = tick // spacing
        bitmap[compressed >> 8] = bitmap.get(compressed >> 8, 0) | (1 << (compressed & 255))

    def sol_div(a: int, b: int) -> int:  # Solidity int division truncates towards zero
        return abs(a) // b * (1 if a >= 0 else -1)

    def sol_mod(a: int, b: int) -> int:  # Solidity % takes the sign of the dividend
        return abs(a) % b * (1 if a >= 0 else -1)

    word_pos = sol_div(tick_before, spacing) >> 8
    bit_pos = sol_mod(sol_div(tick_before, spacing), 256) & 0xFF  # uint8(...)
    word_after = sol_div(tick_after, spacing) >> 8
    bit_after = sol_mod(sol_div(tick_after, spacing), 256) & 0xFF
    after_initialized = (
        bitmap.get(word_after, 0) & (1 << bit_after) > 0
        and sol_mod(tick_after, spacing) == 0
        and tick_before > tick_after
    )
    before_initialized = (
        bitmap.get(word_pos, 0) & (1 << bit_pos) > 0
        and sol_mod(tick_before, spacing) == 0
        and tick_before < tick_after
    )
    if word_pos < word_after or (word_pos == word_after and bit_pos <= bit_after):
        word_low, bit_low, word_high, bit_high = word_pos, bit_pos, word_after, bit_after
    else:
        word_low, bit_low, word_high, bit_high = word_after, bit_after, word_pos, bit_pos
    count = 0
    mask = (MAX_UINT256 << bit_low) & MAX_UINT256
    while word_low <= word_high:
        if word_low == word_high:
            mask &= MAX_UINT256 >> (255 - bit_high)
        count += bin(bitmap.get(word_low, 0) & mask).count("1")
        word_low += 1
        mask = MAX_UINT256
    return count - after_initialized - before_initialized


@st.composite
def pools(draw: st.DrawFn, max_positions: int = 5) -> tuple[V3PoolState, list[Position]]:
    """A pool with a few overlapping positions around a random price."""
    spacing = draw(st.sampled_from([1, 10, 60, 200]))
    fee = draw(fees)
    centre = draw(st.integers(-400_000, 400_000)) // spacing * spacing
    span = draw(st.sampled_from([4, 50, 600, 5000])) * spacing
    positions: list[Position] = []
    for _ in range(draw(st.integers(1, max_positions))):
        lower = draw(st.integers(centre - span, centre + span)) // spacing * spacing
        upper = lower + draw(st.integers(1, 2 * span // spacing + 1)) * spacing
        lower, upper = max(lower, min_tick(spacing)), min(upper, max_tick(spacing))
        assume(lower < upper)
        positions.append((lower, upper, draw(st.one_of(st.integers(1, 2**100), st.integers(10**15, 10**22)))))
    price_tick = draw(st.integers(centre - span - spacing, centre + span + spacing))
    price_tick = min(max(price_tick, MIN_TICK), MAX_TICK - 1)
    low, high = get_sqrt_ratio_at_tick(price_tick), get_sqrt_ratio_at_tick(price_tick + 1)
    price = draw(st.sampled_from([low, high - 1, (low + high) // 2]) | st.integers(low, high - 1))
    fee_protocol = draw(st.sampled_from([0, 0, 4 + (6 << 4), 10 + (10 << 4)]))
    return pool_from_positions(price, fee, spacing, positions, fee_protocol), positions


@st.composite
def swaps(draw: st.DrawFn, state: V3PoolState) -> tuple[bool, int, int]:
    """(zero_for_one, amount_specified, limit) valid for the state."""
    zero_for_one = draw(st.booleans())
    magnitude = draw(st.one_of(st.integers(1, 2**90), st.integers(1, 10**6), st.integers(10**17, 10**22)))
    amount = magnitude if draw(st.booleans()) else -magnitude
    price = state.sqrt_price_x96
    if zero_for_one:
        assume(price > MIN_SQRT_RATIO + 1)
        default = MIN_SQRT_RATIO + 1
        ticks_away = draw(st.integers(1, 20_000))
        other = max(get_sqrt_ratio_at_tick(max(state.tick - ticks_away, MIN_TICK)), MIN_SQRT_RATIO + 1)
        limit = draw(st.sampled_from([default, other, price - 1]))
        assume(MIN_SQRT_RATIO < limit < price)
    else:
        assume(price < MAX_SQRT_RATIO - 1)
        default = MAX_SQRT_RATIO - 1
        ticks_away = draw(st.integers(1, 20_000))
        other = min(get_sqrt_ratio_at_tick(min(state.tick + ticks_away, MAX_TICK)), MAX_SQRT_RATIO - 1)
        limit = draw(st.sampled_from([default, other, price + 1]))
        assume(price < limit < MAX_SQRT_RATIO)
    return zero_for_one, amount, limit


SLOW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(st.data())
def test_swap_equals_the_rational_reference(data: st.DataObject) -> None:
    state, _ = data.draw(pools())
    zero_for_one, amount, limit = data.draw(swaps(state))
    result = v3_swap(state, zero_for_one, amount, limit)
    expected, _ = reference_swap(state, zero_for_one, amount, limit)
    got = (result.amount0, result.amount1, result.sqrt_price_x96, result.tick, result.liquidity)
    assert got == expected[:5]
    if state.fee_protocol == 0:
        assert result.fee_growth_global_x128_delta == expected[5]
    assert result.initialized_ticks_crossed == bitmap_ticks_counter(state, state.tick, result.tick)


@SLOW
@given(st.data())
def test_single_range_swap_equals_the_rational_reference(data: st.DataObject) -> None:
    state, _ = data.draw(pools(max_positions=1))
    zero_for_one, amount, limit = data.draw(swaps(state))
    result = v3_swap(state, zero_for_one, amount, limit)
    expected, _ = reference_swap(state, zero_for_one, amount, limit)
    assert (result.amount0, result.amount1, result.sqrt_price_x96, result.tick, result.liquidity) == expected[
        :5
    ]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_repeated_swaps_on_a_warm_state_equal_the_reference(data: st.DataObject) -> None:
    # steps between tick prices are memoised per tick map: later swaps over the same ranges, in either
    # mode and for any amount, must still give the reference's results
    state, _ = data.draw(pools(max_positions=6))
    for _ in range(4):
        zero_for_one, amount, limit = data.draw(swaps(state))
        for _ in range(2):
            result = v3_swap(state, zero_for_one, amount, limit)
            expected, _ = reference_swap(state, zero_for_one, amount, limit)
            got = (result.amount0, result.amount1, result.sqrt_price_x96, result.tick, result.liquidity)
            assert got == expected[:5]
            if state.fee_protocol == 0:
                assert result.fee_growth_global_x128_delta == expected[5]
            amount = -result.amount_out if amount > 0 and result.amount_out else amount


def real_reserves(sqrt_price: int, positions: list[Position]) -> tuple[Fraction, Fraction]:
    """Exact token amounts the positions hold at a sqrt price (the real curve, no rounding)."""
    reserve0 = reserve1 = Fraction(0)
    for lower, upper, liquidity in positions:
        sqrt_lower, sqrt_upper = get_sqrt_ratio_at_tick(lower), get_sqrt_ratio_at_tick(upper)
        clamped = min(max(sqrt_price, sqrt_lower), sqrt_upper)
        reserve0 += Fraction(liquidity * Q96 * (sqrt_upper - clamped), clamped * sqrt_upper)
        reserve1 += Fraction(liquidity * (clamped - sqrt_lower), Q96)
    return reserve0, reserve1


@SLOW
@given(st.data())
def test_swap_conserves_tokens_with_rounding_in_the_pools_favour(data: st.DataObject) -> None:
    state, positions = data.draw(pools())
    zero_for_one, amount, limit = data.draw(swaps(state))
    result = v3_swap(state, zero_for_one, amount, limit)
    _, steps = reference_swap(state, zero_for_one, amount, limit)
    before0, before1 = real_reserves(state.sqrt_price_x96, positions)
    after0, after1 = real_reserves(result.sqrt_price_x96, positions)
    gained_in = (after0 - before0) if zero_for_one else (after1 - before1)
    lost_out = (before1 - after1) if zero_for_one else (before0 - after0)
    net_in = result.amount_in - result.fee_amount
    assert 0 <= net_in - gained_in < steps  # each step rounds its input up by less than one unit
    assert result.amount_out <= lost_out  # the pool never pays more than its curve gives up
    if amount > 0:
        assert lost_out - result.amount_out < steps
        assert result.amount_in <= amount
        assert result.partial == (result.amount_in < amount)
    else:
        assert result.amount_out <= -amount
        assert result.partial == (result.amount_out < -amount)
    if zero_for_one:
        assert limit <= result.sqrt_price_x96 <= state.sqrt_price_x96
    else:
        assert state.sqrt_price_x96 <= result.sqrt_price_x96 <= limit
    assert 0 <= result.protocol_fee <= result.fee_amount
    assert result.liquidity == sum(size for lower, upper, size in positions if lower <= result.tick < upper)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_ticks_crossed_counts_like_pool_ticks_counter(data: st.DataObject) -> None:
    state, _ = data.draw(pools(max_positions=6))
    known = [tick for tick, _ in state.ticks]
    pick = st.one_of(st.sampled_from(known), st.integers(min(known) - 600, max(known) + 600))
    before, after = data.draw(pick), data.draw(pick)
    before, after = (min(max(t, MIN_TICK), MAX_TICK) for t in (before, after))
    assert count_initialized_ticks_crossed(state, before, after) == bitmap_ticks_counter(state, before, after)


def many_range_pool() -> tuple[V3PoolState, list[Position]]:
    """80 overlapping positions on spacing 10 around tick 0: a swap crosses dozens of ticks."""
    positions = [
        (-4000 + 90 * i, -4000 + 90 * i + 10 * (5 + 37 * i % 400), 10**18 + 7919 * i) for i in range(80)
    ]
    positions += [(-40, 40, 3 * 10**19), (min_tick(10), max_tick(10), 10**17), (-3000, 3000, 12345)]
    return pool_from_positions(encode_price_sqrt(1, 1) + 12345, 500, 10, positions), positions


@pytest.mark.parametrize("zero_for_one", [True, False])
@pytest.mark.parametrize("amount", [10**20, 10**21, -(10**20), -(10**21)])
def test_swap_across_many_initialized_ticks(zero_for_one: bool, amount: int) -> None:
    state, positions = many_range_pool()
    limit = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
    result = v3_swap(state, zero_for_one, amount, limit)
    expected, _ = reference_swap(state, zero_for_one, amount, limit)
    assert (result.amount0, result.amount1, result.sqrt_price_x96, result.tick, result.liquidity) == expected[
        :5
    ]
    assert result.fee_growth_global_x128_delta == expected[5]
    assert result.initialized_ticks_crossed == bitmap_ticks_counter(state, state.tick, result.tick)
    assert result.initialized_ticks_crossed >= 20
    assert result.liquidity == sum(size for lower, upper, size in positions if lower <= result.tick < upper)
    # continuing from the state after the swap is the same pool as the contract leaves it
    back = v3_swap(
        state.after(result),
        not zero_for_one,
        10**18,
        MAX_SQRT_RATIO - 1 if zero_for_one else MIN_SQRT_RATIO + 1,
    )
    expected_back, _ = reference_swap(
        state.after(result),
        not zero_for_one,
        10**18,
        MAX_SQRT_RATIO - 1 if zero_for_one else MIN_SQRT_RATIO + 1,
    )
    assert (back.amount0, back.amount1, back.sqrt_price_x96, back.tick, back.liquidity) == expected_back[:5]


def test_swap_ending_on_an_initialized_tick_boundary() -> None:
    state, positions = many_range_pool()
    boundary = -40  # initialized: the (-40, 40) position starts here
    assert boundary in dict(state.ticks)
    # the limit on the boundary: the step still reaches the next tick's price, so the tick is crossed
    on = v3_swap(state, True, MAX_INT256, get_sqrt_ratio_at_tick(boundary))
    assert on.sqrt_price_x96 == get_sqrt_ratio_at_tick(boundary)
    assert on.tick == boundary - 1  # tick = tickNext - 1 when moving left
    assert on.liquidity == sum(size for lower, upper, size in positions if lower <= boundary - 1 < upper)
    assert on.partial
    # one unit above it: the price stops inside the range and the tick is recomputed from the price
    above = v3_swap(state, True, MAX_INT256, get_sqrt_ratio_at_tick(boundary) + 1)
    assert above.tick == boundary
    assert above.liquidity == sum(size for lower, upper, size in positions if lower <= boundary < upper)
    # moving right onto the boundary from below: tick = tickNext
    below = state.after(on)
    up = v3_swap(below, False, MAX_INT256, get_sqrt_ratio_at_tick(boundary) + 1)
    assert up.tick == boundary
    for result, (zero_for_one, limit) in [
        (on, (True, get_sqrt_ratio_at_tick(boundary))),
        (above, (True, get_sqrt_ratio_at_tick(boundary) + 1)),
    ]:
        expected, _ = reference_swap(state, zero_for_one, MAX_INT256, limit)
        assert (
            result.amount0,
            result.amount1,
            result.sqrt_price_x96,
            result.tick,
            result.liquidity,
        ) == expected[:5]


# ---------------------------------------------------------------------------------------------------
# errors, state, quotes
# ---------------------------------------------------------------------------------------------------


def test_swap_rejects_what_the_pool_rejects() -> None:
    state, _ = many_range_pool()
    with pytest.raises(AmmError, match="AS") as caught:
        v3_swap(state, True, 0, MIN_SQRT_RATIO + 1)
    assert caught.value.field == "amount_specified"
    for zero_for_one, limit in [
        (True, state.sqrt_price_x96),
        (True, MIN_SQRT_RATIO),
        (False, state.sqrt_price_x96),
        (False, MAX_SQRT_RATIO),
        (True, state.sqrt_price_x96 + 1),
    ]:
        with pytest.raises(PriceLimitError) as limit_error:
            v3_swap(state, zero_for_one, 10**18, limit)
        assert limit_error.value.field == "sqrt_price_limit_x96" and limit_error.value.value == limit
    with pytest.raises(AmmError):
        v3_swap(state, True, 2**255, MIN_SQRT_RATIO + 1)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sqrt_price_x96": MIN_SQRT_RATIO - 1}, "sqrt_price_x96"),
        ({"tick": MAX_TICK + 1}, "tick"),
        ({"liquidity": -1}, "liquidity"),
        ({"fee": 1_000_000}, "fee"),
        ({"tick_spacing": 0}, "tick_spacing"),
        ({"fee_protocol": 256}, "fee_protocol"),
        ({"ticks": ((60, 5), (0, -5))}, "ticks"),
        ({"ticks": ((-60, 5), (30, -5))}, "ticks"),
        ({"ticks": ((-60, -(2**127)), (60, 2**127))}, "liquidity_net"),
    ],
)
def test_pool_state_validation_names_the_field(changes: dict[str, Any], field: str) -> None:
    fields: dict[str, Any] = {
        "sqrt_price_x96": 2**96,
        "tick": 0,
        "liquidity": 10,
        "fee": 3000,
        "tick_spacing": 60,
        "ticks": ((-60, 10), (60, -10)),
    }
    fields.update(changes)
    with pytest.raises(AmmError) as caught:
        V3PoolState(**fields)
    assert caught.value.field == field


def drained_pool() -> tuple[V3PoolState, list[Position]]:
    """A pool whose only liquidity is one narrow range: large swaps run out of it."""
    positions = [(-600, 600, 10**18)]
    return pool_from_positions(encode_price_sqrt(1, 1), 3000, 60, positions), positions


@pytest.mark.parametrize("zero_for_one", [True, False])
def test_quote_exact_input_returns_the_partial_output_when_liquidity_runs_out(zero_for_one: bool) -> None:
    state, positions = drained_pool()
    reserve0, reserve1 = mint_amounts(state.sqrt_price_x96, state.tick, positions)
    quote = quote_exact_input(state, 10**24, zero_for_one)
    assert quote.partial
    assert quote.sqrt_price_x96 == (MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1)
    assert quote.amount_in < 10**24
    # all of the output token the range held, less the rounding kept by the pool (< 1 unit per step)
    held = reserve1 if zero_for_one else reserve0
    assert held - 100 < quote.amount_out <= held
    assert quote == v3_swap(state, zero_for_one, 10**24, quote.sqrt_price_x96)
    assert quote.initialized_ticks_crossed == 1


def test_quote_exact_input_with_a_price_limit() -> None:
    state, _ = drained_pool()
    limit = get_sqrt_ratio_at_tick(-120)
    quote = quote_exact_input(state, 10**24, True, limit)
    assert quote.partial and quote.sqrt_price_x96 == limit
    full = quote_exact_input(state, 10**15, True, limit)
    assert not full.partial and full.amount_in == 10**15


def test_quotes_raise_where_quoter_v2_reverts() -> None:
    state, _ = drained_pool()
    with pytest.raises(InsufficientLiquidityError) as caught:
        quote_exact_output(state, 10**24, True)
    assert caught.value.field == "amount_out" and caught.value.value == 10**24
    partial = caught.value.result
    assert isinstance(partial, V3SwapResult) and partial.partial and partial.amount_out < 10**24
    # with an explicit limit QuoterV2 returns what the pool can do
    limited = quote_exact_output(state, 10**24, True, MIN_SQRT_RATIO + 1)
    assert limited == partial
    # a swap that moves no tokens at all (no liquidity below the price)
    empty = pool_from_positions(2**96, 3000, 60, [(0, 6000, 10**18)])
    with pytest.raises(InsufficientLiquidityError):
        quote_exact_input(empty, 1000, True)
    with pytest.raises(AmmError):
        quote_exact_input(empty, 0, True)
    with pytest.raises(AmmError):
        quote_exact_output(empty, 2**255, False)


def test_quote_exact_output_delivers_exactly() -> None:
    state, _ = many_range_pool()
    for zero_for_one in (True, False):
        quote = quote_exact_output(state, 2 * 10**18, zero_for_one)
        assert quote.amount_out == 2 * 10**18 and not quote.partial
        assert quote.initialized_ticks_crossed == bitmap_ticks_counter(state, state.tick, quote.tick)
        # QuoterV2's amountIn buys at least the output back as an exact input
        assert quote_exact_input(state, quote.amount_in, zero_for_one).amount_out >= 2 * 10**18


def test_protocol_fee_changes_fee_growth_only() -> None:
    base, positions = many_range_pool()
    with_protocol = pool_from_positions(
        base.sqrt_price_x96, base.fee, base.tick_spacing, positions, 4 + (6 << 4)
    )
    for zero_for_one, denominator in ((True, 4), (False, 6)):
        plain = v3_swap(
            base, zero_for_one, 10**20, MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
        )
        taxed = v3_swap(
            with_protocol, zero_for_one, 10**20, MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
        )
        assert plain[:7] == taxed[:7] and plain.fee_amount == taxed.fee_amount
        assert plain.protocol_fee == 0
        _, steps = reference_swap(
            base, zero_for_one, 10**20, MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
        )
        # the pool takes floor(fee / denominator) at every step
        assert (
            taxed.fee_amount // denominator - steps <= taxed.protocol_fee <= taxed.fee_amount // denominator
        )
        assert taxed.fee_growth_global_x128_delta < plain.fee_growth_global_x128_delta
