"""TickMath of Uniswap v3: tick <-> sqrt price, bit-exact with the Solidity library.

A tick t stands for the price 1.0001**t (token1 per token0, in base units); prices are carried as
sqrt(price) in Q64.96 fixed point (an integer equal to sqrt(price) * 2**96, uint160).
"""

from __future__ import annotations

import math

from pricing.amm.errors import AmmError
from pricing.amm.full_math import MAX_UINT256

MIN_TICK = -887272
MAX_TICK = 887272
MIN_SQRT_RATIO = 4295128739
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342

# (bit of |tick|, Q128.128 value of 1 / sqrt(1.0001) ** bit), the constants of getSqrtRatioAtTick.
_FACTORS: tuple[tuple[int, int], ...] = (
    (0x2, 0xFFF97272373D413259A46990580E213A),
    (0x4, 0xFFF2E50F5F656932EF12357CF3C7FDCC),
    (0x8, 0xFFE5CACA7E10E4E61C3624EAA0941CD0),
    (0x10, 0xFFCB9843D60F6159C9DB58835C926644),
    (0x20, 0xFF973B41FA98C081472E6896DFB254C0),
    (0x40, 0xFF2EA16466C96A3843EC78B326B52861),
    (0x80, 0xFE5DEE046A99A2A811C461F1969C3053),
    (0x100, 0xFCBE86C7900A88AEDCFFC83B479AA3A4),
    (0x200, 0xF987A7253AC413176F2B074CF7815E54),
    (0x400, 0xF3392B0822B70005940C7A398E4B70F3),
    (0x800, 0xE7159475A2C29B7443B29C7FA6E889D9),
    (0x1000, 0xD097F3BDFD2022B8845AD8F792AA5825),
    (0x2000, 0xA9F746462D870FDF8A65DC1F90E061E5),
    (0x4000, 0x70D869A156D2A1B890BB3DF62BAF32F7),
    (0x8000, 0x31BE135F97D08FD981231505542FCFA6),
    (0x10000, 0x9AA508B5B7A84E1C677DE54F3E99BC9),
    (0x20000, 0x5D6AF8DEDB81196699C329225EE604),
    (0x40000, 0x2216E584F5FA1EA926041BEDFE98),
    (0x80000, 0x48A170391F7DC42444E8FA2),
)
_ODD_FACTOR = 0xFFFCB933BD6FAD37AA2D162D1A594001
_LOG_SQRT10001 = 255738958999603826347141  # 2**64 * 2 / log2(1.0001), Q64.64 scale
_TICK_LOW_ERROR = 3402992956809132418596140100660247210
_TICK_HIGH_ERROR = 291339464771989622907027621153398088495


def get_sqrt_ratio_at_tick(tick: int) -> int:
    """sqrt(1.0001**tick) * 2**96 as `TickMath.getSqrtRatioAtTick` (Q64.96, uint160), rounded up.

    `tick` must lie in [MIN_TICK, MAX_TICK] ('T' otherwise).
    """
    abs_tick = -tick if tick < 0 else tick
    if abs_tick > MAX_TICK:
        raise AmmError("tick", tick, "T: |tick| > MAX_TICK")
    ratio = _ODD_FACTOR if abs_tick & 1 else 1 << 128
    for bit, factor in _FACTORS:
        if bit > abs_tick:
            break  # the remaining bits are all zero: skipping them changes nothing
        if abs_tick & bit:
            ratio = (ratio * factor) >> 128
    if tick > 0:
        ratio = MAX_UINT256 // ratio
    # Q128.128 -> Q64.96 rounding up, so that getTickAtSqrtRatio of the result is the tick itself.
    return (ratio >> 32) + (1 if ratio & 0xFFFFFFFF else 0)


def get_tick_at_sqrt_ratio(sqrt_price_x96: int) -> int:
    """Greatest tick t with getSqrtRatioAtTick(t) <= sqrt_price_x96, as `TickMath.getTickAtSqrtRatio`.

    `sqrt_price_x96` is a Q64.96 sqrt price in [MIN_SQRT_RATIO, MAX_SQRT_RATIO) ('R' otherwise).
    A line-by-line port of the Solidity log2 approximation, including its final tickLow/tickHi test.
    """
    if not MIN_SQRT_RATIO <= sqrt_price_x96 < MAX_SQRT_RATIO:
        raise AmmError("sqrt_price_x96", sqrt_price_x96, "R: outside [MIN_SQRT_RATIO, MAX_SQRT_RATIO)")
    ratio = sqrt_price_x96 << 32
    msb = ratio.bit_length() - 1  # the assembly binary search computes exactly floor(log2(ratio))
    r = ratio >> (msb - 127) if msb >= 128 else ratio << (127 - msb)
    log_2 = (msb - 128) << 64
    for shift in range(63, 49, -1):
        r = (r * r) >> 127
        f = r >> 128
        log_2 |= f << shift  # two's complement OR: Python's | on negative ints matches int256
        r >>= f
    log_sqrt10001 = log_2 * _LOG_SQRT10001
    tick_low = (log_sqrt10001 - _TICK_LOW_ERROR) >> 128
    tick_high = (log_sqrt10001 + _TICK_HIGH_ERROR) >> 128
    if tick_low == tick_high:
        return tick_low
    return tick_high if get_sqrt_ratio_at_tick(tick_high) <= sqrt_price_x96 else tick_low


# ln(sqrt(1.0001)): a tick is this much of ln(sqrt price).
_LN_SQRT_TICK = 0.5 * math.log(1.0001)
_LN_Q96 = 96.0 * math.log(2.0)
# A float estimate of the tick is within 1e-9 of the real log; the contract's ratios sit within
# 5e-6 tick of the real boundaries (Q128 truncation: < 1e-19 relative; the round-up of one Q96 unit:
# 2.3e-10 relative at MIN_SQRT_RATIO). Where the estimate is more than 1e-4 from an integer its floor
# is exact; closer than that, the neighbouring ratios decide.
_TICK_GUARD = 1e-4
_SQRT_RATIO_CACHE: dict[int, int] = {}
_SQRT_RATIO_CACHE_MAX = 1 << 16


def sqrt_ratio_at_tick_cached(tick: int) -> int:
    """`get_sqrt_ratio_at_tick` memoised (Q64.96): swaps revisit the same initialized ticks and word edges."""
    ratio = _SQRT_RATIO_CACHE.get(tick)
    if ratio is None:
        ratio = get_sqrt_ratio_at_tick(tick)
        if len(_SQRT_RATIO_CACHE) >= _SQRT_RATIO_CACHE_MAX:
            _SQRT_RATIO_CACHE.clear()  # bounded memory; the hot ticks come back on the next swaps
        _SQRT_RATIO_CACHE[tick] = ratio
    return ratio


def get_tick_at_sqrt_ratio_fast(sqrt_price_x96: int) -> int:
    """Same result as `get_tick_at_sqrt_ratio` (Q64.96 in, tick out), about ten times faster.

    A float logarithm gives the tick to within 1e-9; when that is more than 1e-4 from an integer its
    floor is the answer, otherwise exact comparisons with `get_sqrt_ratio_at_tick` settle it.
    """
    if not MIN_SQRT_RATIO <= sqrt_price_x96 < MAX_SQRT_RATIO:
        raise AmmError("sqrt_price_x96", sqrt_price_x96, "R: outside [MIN_SQRT_RATIO, MAX_SQRT_RATIO)")
    estimate = (math.log(sqrt_price_x96) - _LN_Q96) / _LN_SQRT_TICK
    tick = math.floor(estimate)
    fraction = estimate - tick
    if _TICK_GUARD < fraction < 1.0 - _TICK_GUARD and MIN_TICK <= tick < MAX_TICK:
        return tick
    tick = min(max(tick, MIN_TICK), MAX_TICK - 1)
    while tick > MIN_TICK and get_sqrt_ratio_at_tick(tick) > sqrt_price_x96:
        tick -= 1
    while tick < MAX_TICK - 1 and get_sqrt_ratio_at_tick(tick + 1) <= sqrt_price_x96:
        tick += 1
    return tick
