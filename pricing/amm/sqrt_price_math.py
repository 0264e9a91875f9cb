"""SqrtPriceMath of Uniswap v3: next sqrt price after an amount, and the amounts between two prices.

Prices are Q64.96 sqrt prices (uint160); liquidity is a uint128 in sqrt(token0 * token1) base units;
amounts are token base units (uint256). Every function reproduces the contract's rounding and its
uint256 overflow behaviour (including the overflow fallback of the token0 formula), and raises
`AmmError` where the contract reverts.
"""

from __future__ import annotations

from pricing.amm.errors import AmmError
from pricing.amm.full_math import (
    MAX_INT128,
    MAX_INT256,
    MAX_UINT128,
    MAX_UINT160,
    MAX_UINT256,
    MIN_INT128,
    Q96,
    RESOLUTION,
)


def _check(field: str, value: int, maximum: int) -> None:
    """Raise `AmmError` unless 0 <= value <= maximum (the Solidity unsigned type of the argument)."""
    if not 0 <= value <= maximum:
        raise AmmError(field, value, f"outside [0, {maximum}]")


def get_next_sqrt_price_from_amount0_rounding_up(
    sqrt_px96: int, liquidity: int, amount: int, add: bool
) -> int:
    """Sqrt price (Q64.96) after adding (`add`) or removing `amount` of token0, rounded up.

    As `SqrtPriceMath.getNextSqrtPriceFromAmount0RoundingUp`: liquidity * sqrtP / (liquidity +- amount *
    sqrtP), falling back to liquidity / (liquidity / sqrtP + amount) when the product overflows uint256.
    """
    _check("sqrt_px96", sqrt_px96, MAX_UINT160)
    _check("liquidity", liquidity, MAX_UINT128)
    _check("amount", amount, MAX_UINT256)
    return _next_from_amount0(sqrt_px96, liquidity, amount, add)


def _next_from_amount0(sqrt_px96: int, liquidity: int, amount: int, add: bool) -> int:
    """Unchecked core of `get_next_sqrt_price_from_amount0_rounding_up` (arguments already in range)."""
    if amount == 0:
        return sqrt_px96  # short circuit: the formula would not return the input price exactly
    numerator1 = liquidity << RESOLUTION
    product = amount * sqrt_px96
    if add:
        # The contract detects overflow of amount * sqrtP and of numerator1 + product by wrap-around.
        if product <= MAX_UINT256:
            denominator = numerator1 + product
            if denominator <= MAX_UINT256:
                if denominator == 0:
                    raise AmmError("liquidity", liquidity, "division by zero")
                return -(-numerator1 * sqrt_px96 // denominator)
        if sqrt_px96 == 0:
            raise AmmError("sqrt_px96", sqrt_px96, "division by zero")
        divisor = numerator1 // sqrt_px96 + amount
        if divisor > MAX_UINT256:
            raise AmmError("amount", amount, "liquidity / sqrtP + amount overflows uint256")
        return -(-numerator1 // divisor)
    # removing token0: the product must fit and stay below liquidity * 2**96 (else the price would be <= 0)
    if product > MAX_UINT256 or numerator1 <= product:
        raise AmmError("amount", amount, "removes at least the virtual token0 reserve")
    result = -(-numerator1 * sqrt_px96 // (numerator1 - product))
    if result > MAX_UINT160:
        raise AmmError("result", result, "next sqrt price overflows uint160")
    return result


def get_next_sqrt_price_from_amount1_rounding_down(
    sqrt_px96: int, liquidity: int, amount: int, add: bool
) -> int:
    """Sqrt price (Q64.96) after adding (`add`) or removing `amount` of token1, rounded down.

    As `SqrtPriceMath.getNextSqrtPriceFromAmount1RoundingDown`: sqrtP +- amount * 2**96 / liquidity,
    the quotient rounded down when adding and up when removing.
    """
    _check("sqrt_px96", sqrt_px96, MAX_UINT160)
    _check("liquidity", liquidity, MAX_UINT128)
    _check("amount", amount, MAX_UINT256)
    return _next_from_amount1(sqrt_px96, liquidity, amount, add)


def _next_from_amount1(sqrt_px96: int, liquidity: int, amount: int, add: bool) -> int:
    """Unchecked core of `get_next_sqrt_price_from_amount1_rounding_down` (arguments already in range)."""
    if add:
        if liquidity == 0:
            raise AmmError("liquidity", liquidity, "division by zero")
        # Both contract branches (shift or mulDiv) compute floor(amount * 2**96 / liquidity).
        quotient = amount * Q96 // liquidity
        if quotient > MAX_UINT256:
            raise AmmError("amount", amount, "amount * 2**96 / liquidity overflows uint256")
        result = sqrt_px96 + quotient
        if result > MAX_UINT160:
            raise AmmError("amount", amount, "next sqrt price overflows uint160")
        return result
    if liquidity == 0:
        # UnsafeMath.divRoundingUp returns 0 on division by zero (shift branch); mulDiv reverts.
        if amount > MAX_UINT160:
            raise AmmError("liquidity", liquidity, "division by zero")
        quotient = 0
    else:
        quotient = -(-amount * Q96 // liquidity)
        if quotient > MAX_UINT256:
            raise AmmError("amount", amount, "amount * 2**96 / liquidity overflows uint256")
    if sqrt_px96 <= quotient:
        raise AmmError("amount", amount, "removes at least the virtual token1 reserve")
    return sqrt_px96 - quotient


def get_next_sqrt_price_from_input(sqrt_px96: int, liquidity: int, amount_in: int, zero_for_one: bool) -> int:
    """Sqrt price (Q64.96) after `amount_in` (base units) of token0 (`zero_for_one`) or token1 goes in.

    Rounds so as not to pass the target price: up for token0 in, down for token1 in. Reverts when the
    price or liquidity is 0 or the price leaves uint160.
    """
    _check("sqrt_px96", sqrt_px96, MAX_UINT160)
    _check("liquidity", liquidity, MAX_UINT128)
    _check("amount_in", amount_in, MAX_UINT256)
    if sqrt_px96 == 0:
        raise AmmError("sqrt_px96", sqrt_px96, "price must be positive")
    if liquidity == 0:
        raise AmmError("liquidity", liquidity, "liquidity must be positive")
    if zero_for_one:
        return _next_from_amount0(sqrt_px96, liquidity, amount_in, True)
    return _next_from_amount1(sqrt_px96, liquidity, amount_in, True)


def get_next_sqrt_price_from_output(
    sqrt_px96: int, liquidity: int, amount_out: int, zero_for_one: bool
) -> int:
    """Sqrt price (Q64.96) after `amount_out` (base units) of token1 (`zero_for_one`) or token0 goes out.

    Rounds so as to pass the target price: down for token1 out, up for token0 out. Reverts when the
    price or liquidity is 0 or the output reaches the virtual reserve.
    """
    _check("sqrt_px96", sqrt_px96, MAX_UINT160)
    _check("liquidity", liquidity, MAX_UINT128)
    _check("amount_out", amount_out, MAX_UINT256)
    if sqrt_px96 == 0:
        raise AmmError("sqrt_px96", sqrt_px96, "price must be positive")
    if liquidity == 0:
        raise AmmError("liquidity", liquidity, "liquidity must be positive")
    if zero_for_one:
        return _next_from_amount1(sqrt_px96, liquidity, amount_out, False)
    return _next_from_amount0(sqrt_px96, liquidity, amount_out, False)


def get_amount0_delta(sqrt_ratio_a_x96: int, sqrt_ratio_b_x96: int, liquidity: int, round_up: bool) -> int:
    """Token0 (base units) between two Q64.96 sqrt prices for `liquidity`: L * 2**96 * (b - a) / (a * b).

    As `SqrtPriceMath.getAmount0Delta(uint160, uint160, uint128, bool)`: exactly the ceiling
    (`round_up`) or floor of the rational value; the prices may come in either order, the lower must
    be positive.
    """
    _check("sqrt_ratio_a_x96", sqrt_ratio_a_x96, MAX_UINT160)
    _check("sqrt_ratio_b_x96", sqrt_ratio_b_x96, MAX_UINT160)
    _check("liquidity", liquidity, MAX_UINT128)
    if sqrt_ratio_a_x96 > sqrt_ratio_b_x96:
        sqrt_ratio_a_x96, sqrt_ratio_b_x96 = sqrt_ratio_b_x96, sqrt_ratio_a_x96
    if sqrt_ratio_a_x96 == 0:
        raise AmmError("sqrt_ratio_a_x96", sqrt_ratio_a_x96, "lower price must be positive")
    # Nested ceilings (floors) by positive integers equal the single ceiling (floor) of the quotient.
    numerator = (liquidity << RESOLUTION) * (sqrt_ratio_b_x96 - sqrt_ratio_a_x96)
    denominator = sqrt_ratio_b_x96 * sqrt_ratio_a_x96
    return -(-numerator // denominator) if round_up else numerator // denominator


def get_amount1_delta(sqrt_ratio_a_x96: int, sqrt_ratio_b_x96: int, liquidity: int, round_up: bool) -> int:
    """Token1 (base units) between two Q64.96 sqrt prices for `liquidity`: L * (b - a) / 2**96.

    As `SqrtPriceMath.getAmount1Delta(uint160, uint160, uint128, bool)`: the ceiling (`round_up`) or
    floor of the rational value; the prices may come in either order.
    """
    _check("sqrt_ratio_a_x96", sqrt_ratio_a_x96, MAX_UINT160)
    _check("sqrt_ratio_b_x96", sqrt_ratio_b_x96, MAX_UINT160)
    _check("liquidity", liquidity, MAX_UINT128)
    numerator = liquidity * abs(sqrt_ratio_b_x96 - sqrt_ratio_a_x96)
    return -(-numerator >> RESOLUTION) if round_up else numerator >> RESOLUTION


def get_amount0_delta_signed(sqrt_ratio_a_x96: int, sqrt_ratio_b_x96: int, liquidity_delta: int) -> int:
    """Signed token0 (base units) for a liquidity change `liquidity_delta` (int128) between two prices.

    As `SqrtPriceMath.getAmount0Delta(uint160, uint160, int128)`: rounded up (owed to the pool) for a
    positive delta, down and negated (paid by the pool) for a negative one.
    """
    if not MIN_INT128 <= liquidity_delta <= MAX_INT128:
        raise AmmError("liquidity_delta", liquidity_delta, "not an int128")
    if liquidity_delta < 0:
        amount = get_amount0_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, -liquidity_delta, False)
        sign = -1
    else:
        amount = get_amount0_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity_delta, True)
        sign = 1
    if amount > MAX_INT256:
        raise AmmError("amount0", amount, "does not fit in int256")
    return sign * amount


def get_amount1_delta_signed(sqrt_ratio_a_x96: int, sqrt_ratio_b_x96: int, liquidity_delta: int) -> int:
    """Signed token1 (base units) for a liquidity change `liquidity_delta` (int128) between two prices.

    As `SqrtPriceMath.getAmount1Delta(uint160, uint160, int128)`: rounded up for a positive delta,
    down and negated for a negative one.
    """
    if not MIN_INT128 <= liquidity_delta <= MAX_INT128:
        raise AmmError("liquidity_delta", liquidity_delta, "not an int128")
    if liquidity_delta < 0:
        amount = get_amount1_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, -liquidity_delta, False)
        sign = -1
    else:
        amount = get_amount1_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity_delta, True)
        sign = 1
    if amount > MAX_INT256:
        raise AmmError("amount1", amount, "does not fit in int256")
    return sign * amount
