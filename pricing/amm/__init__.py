"""Exact integer math of Uniswap v2 pairs and v3 pools, equal to the contracts' results to the last unit.

Python integers throughout: nearly every quantity (reserves products, Q64.96 prices, liquidity times
prices) overflows 64 bits, so numba's machine integers cannot hold them; the few 64-bit-safe pieces
(tick indices, bitmap positions) are too small for a compiled call to pay for its dispatch.

- v2: `v2_amount_out`, `v2_amount_in`, `v2_optimal_arbitrage`, `v2_arbitrage_profit`.
- v3: TickMath, FullMath, SqrtPriceMath, SwapMath, LiquidityMath (see `pricing.amm.uniswap_v3`),
  the pool swap `v3_swap` on a `V3PoolState`, and QuoterV2's `quote_exact_input` / `quote_exact_output`.
- Errors: `AmmError` (a ValueError with `field` and `value`), `InsufficientLiquidityError`,
  `PriceLimitError`.
"""

from __future__ import annotations

from pricing.amm.errors import AmmError, InsufficientLiquidityError, PriceLimitError
from pricing.amm.uniswap_v2 import v2_amount_in, v2_amount_out, v2_arbitrage_profit, v2_optimal_arbitrage
from pricing.amm.uniswap_v3 import *  # noqa: F403 - the v3 namespace is defined by its __all__
from pricing.amm.uniswap_v3 import __all__ as _v3_all

__all__ = [
    "AmmError",
    "InsufficientLiquidityError",
    "PriceLimitError",
    "v2_amount_in",
    "v2_amount_out",
    "v2_arbitrage_profit",
    "v2_optimal_arbitrage",
    *_v3_all,
]
