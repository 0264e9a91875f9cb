"""Uniswap v3 exact math in one namespace: TickMath, FullMath, SqrtPriceMath, SwapMath, LiquidityMath, swaps.

The implementation is split one file per contract library (`tick_math`, `full_math`,
`sqrt_price_math`, `swap_math`, `liquidity_math`) plus `v3_swap` for the pool's swap loop and the
QuoterV2 quotes; this module re-exports them.
"""

from __future__ import annotations

from pricing.amm.full_math import (
    MAX_INT128,
    MAX_INT256,
    MAX_UINT128,
    MAX_UINT160,
    MAX_UINT256,
    MIN_INT128,
    MIN_INT256,
    Q96,
    Q128,
    div_rounding_up,
    mul_div,
    mul_div_rounding_up,
)
from pricing.amm.liquidity_math import add_delta
from pricing.amm.sqrt_price_math import (
    get_amount0_delta,
    get_amount0_delta_signed,
    get_amount1_delta,
    get_amount1_delta_signed,
    get_next_sqrt_price_from_amount0_rounding_up,
    get_next_sqrt_price_from_amount1_rounding_down,
    get_next_sqrt_price_from_input,
    get_next_sqrt_price_from_output,
)
from pricing.amm.swap_math import FEE_PIPS_DENOMINATOR, SwapStep, compute_swap_step
from pricing.amm.tick_math import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
    get_tick_at_sqrt_ratio_fast,
    sqrt_ratio_at_tick_cached,
)
from pricing.amm.v3_swap import (
    V3PoolState,
    V3SwapResult,
    count_initialized_ticks_crossed,
    quote_exact_input,
    quote_exact_output,
    v3_swap,
)

__all__ = [
    "FEE_PIPS_DENOMINATOR",
    "MAX_INT128",
    "MAX_INT256",
    "MAX_SQRT_RATIO",
    "MAX_TICK",
    "MAX_UINT128",
    "MAX_UINT160",
    "MAX_UINT256",
    "MIN_INT128",
    "MIN_INT256",
    "MIN_SQRT_RATIO",
    "MIN_TICK",
    "Q96",
    "Q128",
    "SwapStep",
    "V3PoolState",
    "V3SwapResult",
    "add_delta",
    "compute_swap_step",
    "count_initialized_ticks_crossed",
    "div_rounding_up",
    "get_amount0_delta",
    "get_amount0_delta_signed",
    "get_amount1_delta",
    "get_amount1_delta_signed",
    "get_next_sqrt_price_from_amount0_rounding_up",
    "get_next_sqrt_price_from_amount1_rounding_down",
    "get_next_sqrt_price_from_input",
    "get_next_sqrt_price_from_output",
    "get_sqrt_ratio_at_tick",
    "get_tick_at_sqrt_ratio",
    "get_tick_at_sqrt_ratio_fast",
    "mul_div",
    "mul_div_rounding_up",
    "quote_exact_input",
    "quote_exact_output",
    "sqrt_ratio_at_tick_cached",
    "v3_swap",
]
