"""SwapMath of Uniswap v3: one swap step inside a single liquidity range."""

from __future__ import annotations

from typing import NamedTuple

from pricing.amm.errors import AmmError
from pricing.amm.full_math import MAX_INT256, MAX_UINT128, MAX_UINT160, MIN_INT256
from pricing.amm.sqrt_price_math import _next_from_amount0, _next_from_amount1

FEE_PIPS_DENOMINATOR = 1_000_000  # fees are in pips: hundredths of a basis point


class SwapStep(NamedTuple):
    """Result of `compute_swap_step`.

    `sqrt_ratio_next_x96` is the Q64.96 sqrt price after the step; `amount_in`, `amount_out` and
    `fee_amount` are token base units (input token for `amount_in` and `fee_amount`).
    """

    sqrt_ratio_next_x96: int
    amount_in: int
    amount_out: int
    fee_amount: int


def compute_swap_step(
    sqrt_ratio_current_x96: int,
    sqrt_ratio_target_x96: int,
    liquidity: int,
    amount_remaining: int,
    fee_pips: int,
) -> SwapStep:
    """One step of a swap towards `sqrt_ratio_target_x96`, as `SwapMath.computeSwapStep`.

    Prices are Q64.96 sqrt prices (uint160), `liquidity` a uint128, `amount_remaining` an int256 in
    base units (> 0 exact input remaining, < 0 exact output remaining), `fee_pips` the pool fee in
    hundredths of a bip (uint24, < 1e6). The direction is zero-for-one when the target is not above
    the current price. For exact input, amount_in + fee_amount never exceeds `amount_remaining`.
    Prices must be positive (with a zero price the contract's getAmount0Delta reverts).
    """
    for field, value, minimum, maximum in (
        ("sqrt_ratio_current_x96", sqrt_ratio_current_x96, 1, MAX_UINT160),
        ("sqrt_ratio_target_x96", sqrt_ratio_target_x96, 1, MAX_UINT160),
        ("liquidity", liquidity, 0, MAX_UINT128),
        ("fee_pips", fee_pips, 0, FEE_PIPS_DENOMINATOR - 1),
    ):
        if not minimum <= value <= maximum:
            raise AmmError(field, value, f"outside [{minimum}, {maximum}]")
    if not MIN_INT256 <= amount_remaining <= MAX_INT256:
        raise AmmError("amount_remaining", amount_remaining, "not an int256")
    return SwapStep(
        *swap_step(sqrt_ratio_current_x96, sqrt_ratio_target_x96, liquidity, amount_remaining, fee_pips)
    )


def swap_step(
    sqrt_current: int, sqrt_target: int, liquidity: int, amount_remaining: int, fee_pips: int
) -> tuple[int, int, int, int]:
    """Unchecked `compute_swap_step` returning a plain tuple (the swap loop's hot path).

    Same units and result as `compute_swap_step`; the caller guarantees the argument ranges.
    """
    zero_for_one = sqrt_current >= sqrt_target
    exact_in = amount_remaining >= 0
    # getAmount0Delta / getAmount1Delta inlined: exactly the ceiling (input) or floor (output) of
    # L * 2**96 * (b - a) / (a * b) for token0 and L * (b - a) / 2**96 for token1.
    amount_in = amount_out = 0
    if exact_in:
        remaining_less_fee = amount_remaining * (FEE_PIPS_DENOMINATOR - fee_pips) // FEE_PIPS_DENOMINATOR
        if zero_for_one:
            amount_in = -(-(liquidity << 96) * (sqrt_current - sqrt_target) // (sqrt_current * sqrt_target))
        else:
            amount_in = -(-liquidity * (sqrt_target - sqrt_current) >> 96)
        if remaining_less_fee >= amount_in:
            sqrt_next = sqrt_target
        elif zero_for_one:
            sqrt_next = _next_from_amount0(sqrt_current, liquidity, remaining_less_fee, True)
        else:
            sqrt_next = _next_from_amount1(sqrt_current, liquidity, remaining_less_fee, True)
    else:
        if zero_for_one:
            amount_out = liquidity * (sqrt_current - sqrt_target) >> 96
        else:
            amount_out = (liquidity << 96) * (sqrt_target - sqrt_current) // (sqrt_current * sqrt_target)
        if -amount_remaining >= amount_out:
            sqrt_next = sqrt_target
        elif zero_for_one:
            sqrt_next = _next_from_amount1(sqrt_current, liquidity, -amount_remaining, False)
        else:
            sqrt_next = _next_from_amount0(sqrt_current, liquidity, -amount_remaining, False)

    reached_target = sqrt_target == sqrt_next
    # get the input/output amounts of the step actually taken (reusing the full-range ones at the target)
    if zero_for_one:
        if not (reached_target and exact_in):
            amount_in = -(-(liquidity << 96) * (sqrt_current - sqrt_next) // (sqrt_current * sqrt_next))
        if not (reached_target and not exact_in):
            amount_out = liquidity * (sqrt_current - sqrt_next) >> 96
    else:
        if not (reached_target and exact_in):
            amount_in = -(-liquidity * (sqrt_next - sqrt_current) >> 96)
        if not (reached_target and not exact_in):
            amount_out = (liquidity << 96) * (sqrt_next - sqrt_current) // (sqrt_next * sqrt_current)

    # cap the output amount to not exceed the remaining output amount
    if not exact_in and amount_out > -amount_remaining:
        amount_out = -amount_remaining

    if exact_in and sqrt_next != sqrt_target:
        fee_amount = amount_remaining - amount_in  # target not reached: the rest of the input is fee
    else:
        fee_amount = -(-amount_in * fee_pips // (FEE_PIPS_DENOMINATOR - fee_pips))
    return sqrt_next, amount_in, amount_out, fee_amount
