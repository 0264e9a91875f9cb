"""The step-by-step Uniswap v3 swap loop as `pricing.amm.v3_swap` was before it learnt to jump ranges.

Kept frozen as the reference for the fast swap: one `swap_step` per step, the bitmap-word walk by
bisection, `get_tick_at_sqrt_ratio` (the line-by-line Solidity port) after a partial step, no
memoisation. It was checked against v3-core's swap snapshot, the rational `reference_swap` of
test_amm_v3.py and QuoterV2 on anvil before it was frozen here.
"""

from __future__ import annotations

from bisect import bisect_right

from pricing.amm import (
    MAX_INT256,
    MAX_SQRT_RATIO,
    MAX_TICK,
    MAX_UINT128,
    MAX_UINT256,
    MIN_SQRT_RATIO,
    MIN_TICK,
    AmmError,
    PriceLimitError,
    V3PoolState,
    V3SwapResult,
    count_initialized_ticks_crossed,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
)
from pricing.amm.swap_math import swap_step

Q128 = 1 << 128


def stepwise_swap(
    state: V3PoolState, zero_for_one: bool, amount_specified: int, sqrt_price_limit_x96: int
) -> V3SwapResult:
    """`UniswapV3Pool.swap` on `state`, one step per initialized tick or bitmap-word edge."""
    if amount_specified == 0:
        raise AmmError("amount_specified", amount_specified, "AS: amount must be non-zero")
    if not -MAX_INT256 - 1 <= amount_specified <= MAX_INT256:
        raise AmmError("amount_specified", amount_specified, "not an int256")
    sqrt_price = state.sqrt_price_x96
    if zero_for_one:
        if not MIN_SQRT_RATIO < sqrt_price_limit_x96 < sqrt_price:
            raise PriceLimitError("sqrt_price_limit_x96", sqrt_price_limit_x96, "SPL")
    elif not sqrt_price < sqrt_price_limit_x96 < MAX_SQRT_RATIO:
        raise PriceLimitError("sqrt_price_limit_x96", sqrt_price_limit_x96, "SPL")
    ticks = [tick for tick, _ in state.ticks]
    nets = [net for _, net in state.ticks]
    spacing = state.tick_spacing
    fee = state.fee
    fee_protocol = state.fee_protocol % 16 if zero_for_one else state.fee_protocol >> 4
    exact_input = amount_specified > 0
    remaining = amount_specified
    calculated = 0
    tick = state.tick
    liquidity = state.liquidity
    fee_total = protocol_fee = fee_growth = 0
    while remaining != 0 and sqrt_price != sqrt_price_limit_x96:
        sqrt_start = sqrt_price
        compressed = tick // spacing
        if zero_for_one:
            word_edge = (compressed - (compressed & 255)) * spacing
            index = bisect_right(ticks, compressed * spacing) - 1
            initialized = index >= 0 and ticks[index] >= word_edge
            tick_next = max(ticks[index] if initialized else word_edge, MIN_TICK)
        else:
            compressed += 1
            word_edge = (compressed + 255 - (compressed & 255)) * spacing
            index = bisect_right(ticks, (compressed - 1) * spacing)
            initialized = index < len(ticks) and ticks[index] <= word_edge
            tick_next = min(ticks[index] if initialized else word_edge, MAX_TICK)
        sqrt_next = get_sqrt_ratio_at_tick(tick_next)
        if zero_for_one:
            target = sqrt_price_limit_x96 if sqrt_next < sqrt_price_limit_x96 else sqrt_next
        else:
            target = sqrt_price_limit_x96 if sqrt_next > sqrt_price_limit_x96 else sqrt_next
        sqrt_price, amount_in, amount_out, fee_amount = swap_step(
            sqrt_price, target, liquidity, remaining, fee
        )
        if exact_input:
            remaining -= amount_in + fee_amount
            calculated -= amount_out
        else:
            remaining += amount_out
            calculated += amount_in + fee_amount
        fee_total += fee_amount
        if fee_protocol:
            delta = fee_amount // fee_protocol
            fee_amount -= delta
            protocol_fee += delta
        if liquidity:
            step_growth = fee_amount * Q128 // liquidity
            if step_growth > MAX_UINT256:
                raise AmmError("fee_amount", fee_amount, "fee growth mulDiv overflows uint256")
            fee_growth += step_growth
        if sqrt_price == sqrt_next:
            if initialized:
                liquidity += -nets[index] if zero_for_one else nets[index]
                if not 0 <= liquidity <= MAX_UINT128:
                    raise AmmError("liquidity_net", nets[index], "LS/LA: liquidity out of uint128")
            tick = tick_next - 1 if zero_for_one else tick_next
        elif sqrt_price != sqrt_start:
            tick = get_tick_at_sqrt_ratio(sqrt_price)
    if not -MAX_INT256 - 1 <= calculated <= MAX_INT256:
        raise AmmError("amount_calculated", calculated, "not an int256")
    if zero_for_one == exact_input:
        amount0, amount1 = amount_specified - remaining, calculated
    else:
        amount0, amount1 = calculated, amount_specified - remaining
    return V3SwapResult(
        amount0,
        amount1,
        sqrt_price,
        tick,
        liquidity,
        count_initialized_ticks_crossed(state, state.tick, tick),
        remaining != 0,
        fee_total,
        protocol_fee,
        fee_growth,
        zero_for_one,
    )
