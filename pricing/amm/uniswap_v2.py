"""Exact Uniswap v2 pair math: UniswapV2Library.getAmountOut / getAmountIn and the optimal arbitrage.

Amounts and reserves are token base units (uint256 integers, reserves uint112 on chain); the fee is
in basis points of the input (30 = the canonical 0.30%, i.e. the library's 997/1000). Results equal
the library's to the unit: integer floor division, and the +1 of getAmountIn.
"""

from __future__ import annotations

import math
from fractions import Fraction

from pricing.amm.errors import AmmError, InsufficientLiquidityError
from pricing.amm.full_math import MAX_UINT256

BPS = 10_000
# Candidates tried on each side of the continuous optimum: plenty for the plateau of a small pool,
# cheap on a deep one (whose plateau is far wider and whose candidates differ by < 1 unit of profit).
MAX_SEARCH_STEPS = 32


def _check_fee(fee_bps: int) -> int:
    """The fee multiplier 10000 - fee_bps (the library's 997 scaled to basis points)."""
    if not 0 <= fee_bps < BPS:
        raise AmmError("fee_bps", fee_bps, "fee in basis points must be in [0, 10000)")
    return BPS - fee_bps


def _fee_ratio(fee_bps: int) -> tuple[int, int]:
    """(10000 - fee_bps, 10000) in lowest terms: 997/1000 for 30 bps, the library's own factors.

    Same quotients either way; the lowest terms also give the library's uint256 overflow bounds.
    """
    g = _check_fee(fee_bps)
    divisor = math.gcd(g, BPS)
    return g // divisor, BPS // divisor


def _check_reserves(reserve_in: int, reserve_out: int) -> None:
    """Raise `InsufficientLiquidityError` unless both reserves are positive uint256."""
    if reserve_in <= 0:
        raise InsufficientLiquidityError("reserve_in", reserve_in, "INSUFFICIENT_LIQUIDITY")
    if reserve_out <= 0:
        raise InsufficientLiquidityError("reserve_out", reserve_out, "INSUFFICIENT_LIQUIDITY")
    if reserve_in > MAX_UINT256:
        raise AmmError("reserve_in", reserve_in, "not a uint256")
    if reserve_out > MAX_UINT256:
        raise AmmError("reserve_out", reserve_out, "not a uint256")


def v2_amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee_bps: int = 30) -> int:
    """Output (base units) for `amount_in` (base units) into a pair with the given reserves.

    amount_out = floor(amount_in * g * reserve_out / (reserve_in * 10000 + amount_in * g)) with
    g = 10000 - fee_bps; for fee_bps = 30 exactly UniswapV2Library.getAmountOut (997/1000).
    Raises `AmmError` for a non-positive input and `InsufficientLiquidityError` for an empty reserve.
    """
    g, scale = _fee_ratio(fee_bps)
    if amount_in <= 0:
        raise AmmError("amount_in", amount_in, "INSUFFICIENT_INPUT_AMOUNT")
    _check_reserves(reserve_in, reserve_out)
    amount_in_with_fee = amount_in * g
    numerator = amount_in_with_fee * reserve_out
    denominator = reserve_in * scale + amount_in_with_fee
    if numerator > MAX_UINT256 or denominator > MAX_UINT256:
        raise AmmError("amount_in", amount_in, "amount_in * fee * reserve_out overflows uint256 (SafeMath)")
    return numerator // denominator


def v2_amount_in(amount_out: int, reserve_in: int, reserve_out: int, fee_bps: int = 30) -> int:
    """Input (base units) the library asks for to receive `amount_out` (base units).

    amount_in = floor(reserve_in * amount_out * 10000 / ((reserve_out - amount_out) * g)) + 1 with
    g = 10000 - fee_bps; for fee_bps = 30 exactly UniswapV2Library.getAmountIn. Raises
    `InsufficientLiquidityError` when `amount_out` >= `reserve_out`.
    """
    g, scale = _fee_ratio(fee_bps)
    if amount_out <= 0:
        raise AmmError("amount_out", amount_out, "INSUFFICIENT_OUTPUT_AMOUNT")
    _check_reserves(reserve_in, reserve_out)
    if amount_out >= reserve_out:
        raise InsufficientLiquidityError("amount_out", amount_out, f"must be below reserve_out={reserve_out}")
    numerator = reserve_in * amount_out * scale
    denominator = (reserve_out - amount_out) * g
    if numerator > MAX_UINT256 or denominator > MAX_UINT256:
        raise AmmError("amount_out", amount_out, "reserve_in * amount_out overflows uint256 (SafeMath)")
    return numerator // denominator + 1


def _as_fraction(price: Fraction | int | float, field: str) -> Fraction:
    """The exact rational value of a price (a float is taken at its exact binary value)."""
    if isinstance(price, float) and not math.isfinite(price):
        raise AmmError(field, price, "price must be finite")
    value = Fraction(price)
    if value <= 0:
        raise AmmError(field, price, "price must be positive")
    return value


def v2_arbitrage_profit(
    amount_in: int, reserve_in: int, reserve_out: int, price: Fraction | int | float, fee_bps: int = 30
) -> Fraction:
    """Profit in input-token base units of selling `amount_in` into the pair and the output outside.

    `price` is the external value of one base unit of the output token in base units of the input
    token (a Fraction for an exact ratio). profit = v2_amount_out(amount_in) * price - amount_in,
    exact; 0 for amount_in = 0.
    """
    p = _as_fraction(price, "price")
    if amount_in == 0:
        return Fraction(0)
    return v2_amount_out(amount_in, reserve_in, reserve_out, fee_bps) * p - amount_in


def v2_optimal_arbitrage(
    reserve_in: int,
    reserve_out: int,
    price: Fraction | int | float,
    fee_bps: int = 30,
    max_steps: int = MAX_SEARCH_STEPS,
) -> int:
    """The integer input (base units) maximising `v2_arbitrage_profit`; 0 when no trade is profitable.

    `price` is the external value of one base unit of the output token in input-token base units (a
    Fraction for an exact ratio; a float is taken at its exact binary value). With gamma = 1 - fee the
    continuous optimum is a* = (sqrt(R_in R_out gamma p) - R_in) / gamma, computed here exactly to the
    unit with `math.isqrt`. Because the pool floors its output, the integer optimum is the cheapest
    input of some output amount near a*: the search walks those candidates outwards from a* (the
    neighbours first) and stops on each side as soon as the real curve amount_out(a) * p - a, an upper
    bound of the profit that falls away from a*, drops below the best profit found. Ties go to the
    smaller input. The result is the true integer argmax whenever both walks stop within `max_steps`
    candidates (always on small pools); on deep pools, whose profit plateau is wider, it is the best
    candidate found, within one output unit's value plus one input unit of the maximum profit.
    """
    g = _check_fee(fee_bps)
    _check_reserves(reserve_in, reserve_out)
    p = _as_fraction(price, "price")
    num, den = p.numerator, p.denominator
    base = reserve_in * BPS
    g_out = g * reserve_out
    # a* = (sqrt(BPS * g * num * den * R_in * R_out) - R_in * BPS * den) / (g * den), floored
    root = math.isqrt(BPS * g * num * den * reserve_in * reserve_out)
    start = max(0, (root - base * den) // (g * den))
    # Profits are compared scaled by den (integers): den * profit(a) = out(a) * num - a * den.
    out = start * g_out // (base + start * g)
    first = -(-out * base // (g * (reserve_out - out))) if out else 0  # cheapest input for `out`
    best_input, best = first, out * num - first * den
    # upwards: the next candidate is the cheapest input of the next output amount
    k = out
    for _ in range(max_steps):
        k += 1
        if k >= reserve_out:
            break
        a = -(-k * base // (g * (reserve_out - k)))
        ga = g * a
        if num * ga * reserve_out < (best + a * den) * (base + ga):
            break  # the real curve is below the best profit from here on
        k = ga * reserve_out // (base + ga)
        value = k * num - a * den
        if value > best:
            best_input, best = a, value
    # downwards: the cheapest input of the output one unit of input below the current candidate
    a = first
    for _ in range(max_steps):
        if a == 0:
            break
        k = (a - 1) * g_out // (base + (a - 1) * g)
        a = -(-k * base // (g * (reserve_out - k))) if k else 0
        ga = g * a
        if a and num * ga * reserve_out < (best + a * den) * (base + ga):
            break
        value = k * num - a * den
        if value >= best:
            best_input, best = a, value
    return best_input if best > 0 else 0  # not trading (profit 0) beats a loss and wins a tie
