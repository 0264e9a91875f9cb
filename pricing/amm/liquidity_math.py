"""LiquidityMath of Uniswap v3: adding a signed int128 delta to a uint128 liquidity."""

from __future__ import annotations

from pricing.amm.errors import AmmError
from pricing.amm.full_math import MAX_INT128, MAX_UINT128, MIN_INT128


def add_delta(liquidity: int, delta: int) -> int:
    """liquidity + delta, as `LiquidityMath.addDelta`.

    `liquidity` is a uint128 and `delta` an int128 (both in liquidity units, sqrt(token0 * token1)
    base units); reverts 'LS' when the sum is negative and 'LA' when it exceeds 2**128 - 1.
    """
    if not 0 <= liquidity <= MAX_UINT128:
        raise AmmError("liquidity", liquidity, "not a uint128")
    if not MIN_INT128 <= delta <= MAX_INT128:
        raise AmmError("delta", delta, "not an int128")
    total = liquidity + delta
    if total < 0:
        raise AmmError("delta", delta, "LS: liquidity underflow")
    if total > MAX_UINT128:
        raise AmmError("delta", delta, "LA: liquidity overflow")
    return total
