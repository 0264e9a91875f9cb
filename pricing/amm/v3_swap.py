"""A full Uniswap v3 swap over a pool's initialized ticks, and QuoterV2-style quotes.

`v3_swap` is the loop of `UniswapV3Pool.swap` step for step: the same tick-bitmap word boundaries
(every step stops at the edge of a 256-tick-spacing word even where no tick is initialized, which
changes the rounding), the same price-limit and tick-crossing rules, the same fees. Amounts are token
base units, prices Q64.96 sqrt prices, fees in pips (hundredths of a bip), liquidity in
sqrt(token0 * token1) base units.

Two shortcuts give the loop's own result faster, both exact because a step that reaches its next
boundary has amounts that depend only on its two prices, the liquidity and the fee, and the loop
takes it exactly when what remains covers it: every run of such whole steps from a boundary is one
bisection of prefix sums (`pricing.amm.v3_swap_path`, built per tick map as swaps need it), and the
step from a state's price to its first boundary is memoised per state (quotes of many sizes on one
state). A swap of any size then costs a few steps; the stepwise loop without them is kept as the
reference of tests/pricing/test_amm_v3_fast.py.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, replace
from typing import NamedTuple

from pricing.amm.errors import AmmError, InsufficientLiquidityError, PriceLimitError
from pricing.amm.full_math import MAX_INT128, MAX_INT256, MAX_UINT128, MAX_UINT256, MIN_INT128, Q128
from pricing.amm.swap_math import FEE_PIPS_DENOMINATOR, swap_step
from pricing.amm.tick_math import (
    _SQRT_RATIO_CACHE,
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    get_tick_at_sqrt_ratio_fast,
    sqrt_ratio_at_tick_cached,
)
from pricing.amm.v3_swap_path import SwapPath, jump

MAX_TICK_SPACING = 16384  # the factory's bound on tick spacing


class _TickTable:
    """The initialized ticks of a pool as parallel sorted lists, for bisection in the swap loop.

    Also the running sums of the liquidity nets (`cumulative_nets[k]` = sum of the first k nets: the
    liquidity of a real pool at a tick) and the `SwapPath`s built over these ticks, per direction,
    liquidity offset, fee and protocol fee.
    """

    __slots__ = ("cumulative_nets", "first_steps", "net_of", "nets", "paths", "spacing", "ticks")

    def __init__(self, ticks: tuple[tuple[int, int], ...], spacing: int) -> None:
        self.ticks = [tick for tick, _ in ticks]
        self.nets = [net for _, net in ticks]
        self.net_of = dict(ticks)
        self.spacing = spacing
        self.paths: dict[tuple[bool, int, int, int], SwapPath] = {}
        # (direction, price, tick, liquidity, fee, protocol fee) of a state -> its first whole step:
        # (boundary tick, its price, amountIn + fee, amountOut, fee, protocol share, growth, liquidity after)
        self.first_steps: dict[
            tuple[bool, int, int, int, int, int], tuple[int, int, int, int, int, int, int, int]
        ] = {}
        previous = MIN_TICK - 1
        total = 0
        self.cumulative_nets = [0]
        for tick, net in ticks:
            if tick <= previous:
                raise AmmError("ticks", tick, "ticks must be strictly increasing")
            if not MIN_TICK <= tick <= MAX_TICK or tick % spacing:
                raise AmmError("ticks", tick, f"not a multiple of tick_spacing={spacing} in the tick range")
            if not MIN_INT128 < net <= MAX_INT128:
                raise AmmError("liquidity_net", net, "not an int128 (type(int128).min excluded)")
            previous = tick
            total += net
            self.cumulative_nets.append(total)

    def path(self, zero_for_one: bool, fee: int, fee_protocol: int, offset: int) -> SwapPath:
        """The `SwapPath` in this direction whose range liquidities are the nets' sums plus `offset`."""
        key = (zero_for_one, fee, fee_protocol, offset)
        path = self.paths.get(key)
        if path is None:
            if len(self.paths) >= _PATHS_MAX:
                self.paths.pop(next(iter(self.paths)))  # evict the oldest
            path = self.paths[key] = SwapPath(
                zero_for_one,
                self.ticks,
                self.cumulative_nets,
                self.net_of,
                self.spacing,
                offset,
                fee,
                fee_protocol,
            )
        return path


# Tables keyed by the id of the ticks tuple (kept alive in the entry, so the id is not reused): a new
# state built with dataclasses.replace after a swap shares the tuple and skips validation.
_TABLES: dict[int, tuple[tuple[tuple[int, int], ...], int, _TickTable]] = {}
_TABLES_MAX = 256
_FIRST_STEPS_MAX = 4096  # per table: states quoted since the last tick-map change
_PATHS_MAX = 16  # per table: two directions of a real pool, a few more for synthetic states


def _tick_table(ticks: tuple[tuple[int, int], ...], spacing: int) -> _TickTable:
    """The validated `_TickTable` of `ticks`, built once per tuple object."""
    entry = _TABLES.get(id(ticks))
    if entry is not None and entry[0] is ticks and entry[1] == spacing:
        return entry[2]
    table = _TickTable(ticks, spacing)
    if len(_TABLES) >= _TABLES_MAX:
        _TABLES.pop(next(iter(_TABLES)))  # evict the oldest entry
    _TABLES[id(ticks)] = (ticks, spacing, table)
    return table


@dataclass(frozen=True, slots=True)
class V3PoolState:
    """The state of a Uniswap v3 pool that a swap reads.

    - `sqrt_price_x96`: slot0.sqrtPriceX96, Q64.96 sqrt price (token1 per token0, base units).
    - `tick`: slot0.tick (it may be one below the tick of the price after a swap ended on a boundary).
    - `liquidity`: the pool's in-range liquidity (uint128).
    - `fee`: the pool fee in pips (hundredths of a bip: 3000 = 0.30%).
    - `tick_spacing`: the pool's tick spacing.
    - `ticks`: every initialized tick (liquidityGross > 0, i.e. every set bit of the tick bitmap,
      including ticks whose liquidity_net is 0) as (tick, liquidity_net) sorted by tick.
    - `fee_protocol`: slot0.feeProtocol (token0 share in the low 4 bits, token1 in the high 4 bits);
      it changes only the fee-growth and protocol-fee outputs, never the swap amounts.
    """

    sqrt_price_x96: int
    tick: int
    liquidity: int
    fee: int
    tick_spacing: int
    ticks: tuple[tuple[int, int], ...]
    fee_protocol: int = 0

    def __post_init__(self) -> None:
        """Validate the fields (raises `AmmError` naming the field)."""
        if not MIN_SQRT_RATIO <= self.sqrt_price_x96 < MAX_SQRT_RATIO:
            raise AmmError("sqrt_price_x96", self.sqrt_price_x96, "outside [MIN_SQRT_RATIO, MAX_SQRT_RATIO)")
        if not MIN_TICK <= self.tick <= MAX_TICK:
            raise AmmError("tick", self.tick, "outside [MIN_TICK, MAX_TICK]")
        if not 0 <= self.liquidity <= MAX_UINT128:
            raise AmmError("liquidity", self.liquidity, "not a uint128")
        if not 0 <= self.fee < FEE_PIPS_DENOMINATOR:
            raise AmmError("fee", self.fee, "fee in pips must be in [0, 1e6)")
        if not 0 < self.tick_spacing <= MAX_TICK_SPACING:
            raise AmmError("tick_spacing", self.tick_spacing, f"outside [1, {MAX_TICK_SPACING}]")
        if not 0 <= self.fee_protocol <= 0xFF:
            raise AmmError("fee_protocol", self.fee_protocol, "not a uint8")
        _tick_table(self.ticks, self.tick_spacing)

    def after(self, result: V3SwapResult) -> V3PoolState:
        """The state after `result` was executed on this pool (price, tick and liquidity replaced)."""
        return replace(
            self, sqrt_price_x96=result.sqrt_price_x96, tick=result.tick, liquidity=result.liquidity
        )


class V3SwapResult(NamedTuple):
    """Outcome of a v3 swap, as the pool computes it.

    - `amount0`, `amount1`: the pool's signed deltas in base units (> 0 paid into the pool, < 0 paid out).
    - `sqrt_price_x96`, `tick`, `liquidity`: slot0 price (Q64.96), tick and in-range liquidity after.
    - `initialized_ticks_crossed`: QuoterV2's count (PoolTicksCounter, with its quirks).
    - `partial`: the specified amount was not used up (exact input: input left over because the price
      limit or the end of the liquidity was reached; exact output: less output than asked).
    - `fee_amount`: total fee paid in the input token (base units), protocol share included.
    - `protocol_fee`: the protocol's share of it.
    - `fee_growth_global_x128_delta`: what the swap adds to feeGrowthGlobal of the input token (Q128.128
      per unit of liquidity; the pool adds it modulo 2**256).
    - `zero_for_one`: the swap direction (token0 in, token1 out).
    """

    amount0: int
    amount1: int
    sqrt_price_x96: int
    tick: int
    liquidity: int
    initialized_ticks_crossed: int
    partial: bool
    fee_amount: int
    protocol_fee: int
    fee_growth_global_x128_delta: int
    zero_for_one: bool

    @property
    def amount_in(self) -> int:
        """Input token paid into the pool (base units, fee included)."""
        return self.amount0 if self.zero_for_one else self.amount1

    @property
    def amount_out(self) -> int:
        """Output token paid out by the pool (base units, >= 0)."""
        return -self.amount1 if self.zero_for_one else -self.amount0


def count_initialized_ticks_crossed(state: V3PoolState, tick_before: int, tick_after: int) -> int:
    """Initialized ticks crossed between two slot0 ticks, as QuoterV2's `PoolTicksCounter` counts them.

    Reproduces the library exactly, quirks included: tick positions are compressed with Solidity's
    truncating division (so for a negative tick that is not a multiple of the spacing the position is
    the tick above), every set bitmap bit between the two positions counts, and an initialized end
    tick is left out only when the swap moved away from it (tick_before when going up, tick_after when
    going down).
    """
    return _count_crossed(_tick_table(state.ticks, state.tick_spacing), tick_before, tick_after)


def _count_crossed(table: _TickTable, tick_before: int, tick_after: int) -> int:
    """`count_initialized_ticks_crossed` on a tick table."""
    spacing = table.spacing
    ticks = table.ticks
    # Solidity's division truncates towards zero
    position_before = -(-tick_before // spacing) if tick_before < 0 else tick_before // spacing
    position_after = -(-tick_after // spacing) if tick_after < 0 else tick_after // spacing
    if position_before <= position_after:
        low, high = position_before, position_after
    else:
        low, high = position_after, position_before
    count = bisect_right(ticks, high * spacing) - bisect_right(ticks, low * spacing - 1)
    if tick_before > tick_after:
        if tick_after in table.net_of:
            count -= 1
    elif tick_before < tick_after and tick_before in table.net_of:
        count -= 1
    return count


def v3_swap(
    state: V3PoolState, zero_for_one: bool, amount_specified: int, sqrt_price_limit_x96: int
) -> V3SwapResult:
    """Simulate `UniswapV3Pool.swap` on `state`.

    `amount_specified` (int256, base units) > 0 is an exact input of the input token, < 0 an exact
    output of the output token; `zero_for_one` swaps token0 for token1; `sqrt_price_limit_x96` (Q64.96)
    is the price the swap may not pass, strictly between MIN_SQRT_RATIO and the current price when
    zero_for_one, between the current price and MAX_SQRT_RATIO otherwise (`PriceLimitError`, 'SPL').
    Raises `AmmError` where the pool reverts ('AS' for a zero amount, liquidity under/overflow, math
    overflow). Returns the pool's signed amounts and the state after, see `V3SwapResult`.
    """
    if amount_specified == 0:
        raise AmmError("amount_specified", amount_specified, "AS: amount must be non-zero")
    if not -MAX_INT256 - 1 <= amount_specified <= MAX_INT256:
        raise AmmError("amount_specified", amount_specified, "not an int256")
    sqrt_price = state.sqrt_price_x96
    if zero_for_one:
        if not MIN_SQRT_RATIO < sqrt_price_limit_x96 < sqrt_price:
            raise PriceLimitError(
                "sqrt_price_limit_x96", sqrt_price_limit_x96, "SPL: must be in (MIN_SQRT_RATIO, price)"
            )
    elif not sqrt_price < sqrt_price_limit_x96 < MAX_SQRT_RATIO:
        raise PriceLimitError(
            "sqrt_price_limit_x96", sqrt_price_limit_x96, "SPL: must be in (price, MAX_SQRT_RATIO)"
        )

    table = _tick_table(state.ticks, state.tick_spacing)
    ticks = table.ticks
    nets = table.nets
    spacing = table.spacing
    n_ticks = len(ticks)
    fee = state.fee
    fee_protocol = state.fee_protocol % 16 if zero_for_one else state.fee_protocol >> 4
    exact_input = amount_specified > 0
    remaining = amount_specified
    calculated = 0
    tick = state.tick
    liquidity = state.liquidity
    fee_total = protocol_fee = fee_growth = 0
    sqrt_cache = _SQRT_RATIO_CACHE
    path: SwapPath | None = None
    limit_key = -sqrt_price_limit_x96 if zero_for_one else sqrt_price_limit_x96
    at_boundary = False  # whether the loop stands on a boundary it has just crossed
    whole = False  # whether the last step went from one boundary to the next
    # the step from the state's price to the first boundary, memoised per state: quotes of many sizes
    # on one state (a sizing search) repeat it; taken when what remains covers it, like any whole step
    state_key = (zero_for_one, sqrt_price, tick, liquidity, fee, fee_protocol)
    first_key: tuple[bool, int, int, int, int, int] | None = state_key  # None after the first step
    first = table.first_steps.get(state_key)
    if first is not None:
        tick_next, sqrt_next, need, out, fees, protocol, growth, crossed = first
        if (remaining >= need if exact_input else -remaining >= out) and (
            sqrt_next >= sqrt_price_limit_x96 if zero_for_one else sqrt_next <= sqrt_price_limit_x96
        ):
            if exact_input:
                remaining -= need
                calculated -= out
            else:
                remaining += out
                calculated += need
            fee_total, protocol_fee, fee_growth = fees, protocol, growth
            sqrt_price, liquidity = sqrt_next, crossed
            tick = tick_next - 1 if zero_for_one else tick_next
            at_boundary = True
        first_key = None

    while remaining != 0 and sqrt_price != sqrt_price_limit_x96:
        if at_boundary and (remaining > 0) == exact_input:
            # every whole step from here that the remaining amount covers, in one bisection
            if path is None:
                path = table.path(zero_for_one, fee, fee_protocol, 0)
            boundary = tick + 1 if zero_for_one else tick  # the tick of the price the loop stands on
            # a chunk is set up once a swap takes a whole step (small swaps pay nothing for it)
            found = path.entries.get(boundary) or path.locate(boundary, whole)
            if found is not None:
                chunk, start = found
                if start >= chunk.last and not chunk.complete:
                    path.extend(chunk, start + 1)
                if start <= chunk.last and chunk.liquidity[start] != liquidity:
                    # a state whose liquidity is not the sum of the nets (synthetic): its own path
                    offset = path.offset + liquidity - chunk.liquidity[start]
                    path = table.path(zero_for_one, fee, fee_protocol, offset)
                    found = path.locate(boundary)
                    if found is not None:
                        chunk, start = found
                        if start >= chunk.last and not chunk.complete:
                            path.extend(chunk, start + 1)
            budget = remaining if exact_input else -remaining
            if found is not None:
                prefix = chunk.need if exact_input else chunk.out
                # cheap test first: most swaps that reach a boundary end in the next range
                if start < chunk.last and prefix[start + 1] - prefix[start] <= budget:
                    taken = jump(path, chunk, start, budget, exact_input, limit_key)
                    if taken is not None:
                        tick_reached, sqrt_price, liquidity, need, out, fees, protocol, growth = taken
                        if exact_input:
                            remaining -= need
                            calculated -= out
                        else:
                            remaining += out
                            calculated += need
                        fee_total += fees
                        protocol_fee += protocol
                        fee_growth += growth
                        tick = tick_reached - 1 if zero_for_one else tick_reached
                        if remaining == 0 or sqrt_price == sqrt_price_limit_x96:
                            break
        sqrt_start = sqrt_price
        # TickBitmap.nextInitializedTickWithinOneWord: the next initialized tick in the direction of
        # the swap, but never beyond the edge of the current 256-bit bitmap word.
        compressed = tick // spacing
        if zero_for_one:
            word_edge = (compressed - (compressed & 255)) * spacing
            index = bisect_right(ticks, compressed * spacing) - 1
            initialized = index >= 0 and ticks[index] >= word_edge
            tick_next = ticks[index] if initialized else word_edge
            if tick_next < MIN_TICK:
                tick_next = MIN_TICK
        else:
            compressed += 1
            word_edge = (compressed + 255 - (compressed & 255)) * spacing
            index = bisect_right(ticks, (compressed - 1) * spacing)
            initialized = index < n_ticks and ticks[index] <= word_edge
            tick_next = ticks[index] if initialized else word_edge
            if tick_next > MAX_TICK:
                tick_next = MAX_TICK
        sqrt_next = sqrt_cache.get(tick_next) or sqrt_ratio_at_tick_cached(tick_next)

        if zero_for_one:
            target = sqrt_price_limit_x96 if sqrt_next < sqrt_price_limit_x96 else sqrt_next
        else:
            target = sqrt_price_limit_x96 if sqrt_next > sqrt_price_limit_x96 else sqrt_next
        remaining_before = remaining
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
        step_fee = fee_amount
        delta = step_growth = 0
        if fee_protocol:
            delta = fee_amount // fee_protocol
            fee_amount -= delta
            protocol_fee += delta
        if liquidity:
            step_growth = fee_amount * Q128 // liquidity
            if step_growth > MAX_UINT256:
                raise AmmError("fee_amount", fee_amount, "fee growth mulDiv overflows uint256")
            fee_growth += step_growth

        whole = at_boundary and sqrt_price == sqrt_next
        at_boundary = sqrt_price == sqrt_next
        if at_boundary:
            if initialized:
                # LiquidityMath.addDelta; crossing leftward flips the sign of liquidityNet
                liquidity += -nets[index] if zero_for_one else nets[index]
                if not 0 <= liquidity <= MAX_UINT128:
                    raise AmmError("liquidity_net", nets[index], "LS/LA: liquidity out of uint128")
            tick = tick_next - 1 if zero_for_one else tick_next
            if first_key is not None and (
                remaining_before >= amount_in + step_fee if exact_input else -remaining_before > amount_out
            ):
                # reached because the amount covered it: the same amounts for any amount that does (an
                # exact output equal to amount_out may be the cap of a larger step that only landed here)
                if len(table.first_steps) >= _FIRST_STEPS_MAX:
                    table.first_steps.clear()
                table.first_steps[first_key] = (
                    tick_next,
                    sqrt_next,
                    amount_in + step_fee,
                    amount_out,
                    step_fee,
                    delta,
                    step_growth,
                    liquidity,
                )
        elif sqrt_price != sqrt_start:
            # recompute unless we are on a lower tick boundary (already transitioned) and have not moved
            tick = get_tick_at_sqrt_ratio_fast(sqrt_price)
        first_key = None

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
        _count_crossed(table, state.tick, tick),
        remaining != 0,
        fee_total,
        protocol_fee,
        fee_growth,
        zero_for_one,
    )


def _quote_limit(zero_for_one: bool, sqrt_price_limit_x96: int) -> int:
    """QuoterV2's price limit: 0 means the extreme the pool accepts."""
    if sqrt_price_limit_x96:
        return sqrt_price_limit_x96
    return MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1


def quote_exact_input(
    state: V3PoolState, amount_in: int, zero_for_one: bool, sqrt_price_limit_x96: int = 0
) -> V3SwapResult:
    """QuoterV2.quoteExactInputSingle on `state`: swap exactly `amount_in` (base units) of the input token.

    `sqrt_price_limit_x96` (Q64.96) 0 means no limit (MIN_SQRT_RATIO + 1 or MAX_SQRT_RATIO - 1). Like
    QuoterV2, a swap that runs out of liquidity (or reaches the limit) returns the partial output
    (`result.partial` is True and `result.amount_in` < `amount_in`). QuoterV2 reverts, and this raises
    `InsufficientLiquidityError` with the result attached, when the swap moves no tokens at all.
    QuoterV2's `amountOut` is `result.amount_out`, `sqrtPriceX96After` is `result.sqrt_price_x96` and
    `initializedTicksCrossed` is `result.initialized_ticks_crossed`.
    """
    if not 0 < amount_in <= MAX_INT256:
        raise AmmError("amount_in", amount_in, "must be in (0, 2**255)")
    result = v3_swap(state, zero_for_one, amount_in, _quote_limit(zero_for_one, sqrt_price_limit_x96))
    if result.amount0 <= 0 and result.amount1 <= 0:
        raise InsufficientLiquidityError("amount_in", amount_in, "the swap moves no tokens", result)
    return result


def quote_exact_output(
    state: V3PoolState, amount_out: int, zero_for_one: bool, sqrt_price_limit_x96: int = 0
) -> V3SwapResult:
    """QuoterV2.quoteExactOutputSingle on `state`: receive exactly `amount_out` (base units) of output.

    QuoterV2's `amountIn` is `result.amount_in`. With `sqrt_price_limit_x96` 0 (no limit) QuoterV2
    reverts when the pool cannot deliver the whole output; this raises `InsufficientLiquidityError`
    carrying the partial result. With an explicit limit the partial result is returned (`partial`).
    """
    if not 0 < amount_out <= MAX_INT256:
        raise AmmError("amount_out", amount_out, "must be in (0, 2**255)")
    result = v3_swap(state, zero_for_one, -amount_out, _quote_limit(zero_for_one, sqrt_price_limit_x96))
    if result.amount0 <= 0 and result.amount1 <= 0:
        raise InsufficientLiquidityError("amount_out", amount_out, "the swap moves no tokens", result)
    if sqrt_price_limit_x96 == 0 and result.amount_out != amount_out:
        raise InsufficientLiquidityError(
            "amount_out", amount_out, f"the pool can deliver only {result.amount_out}", result
        )
    return result
