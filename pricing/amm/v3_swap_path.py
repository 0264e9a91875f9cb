"""Prefix sums of a v3 swap's whole steps between tick boundaries, to cross many ranges in one bisection.

The pool's swap loop stops at every initialized tick and at every edge of a 256-position bitmap word
(`v3_swap`). A step that starts on such a boundary and reaches the next one ("whole step") has amounts
that depend only on the two boundary prices, the range's liquidity and the fee: the fee-inclusive
input `need = amountIn + feeAmount` (which is ceil(amountIn * 1e6 / (1e6 - fee)) because the fee of
a whole step is ceil(amountIn * fee / (1e6 - fee))), the output, the protocol's share and the fee
growth. The loop takes a whole step exactly when what remains covers it (exact input:
floor(remaining * (1e6 - fee) / 1e6) >= amountIn, i.e. remaining >= need; exact output: the wanted
output >= the step's output), so from boundary k the loop takes whole steps k..m-1 where m is the
largest index with prefix[m] - prefix[k] <= remaining: one `bisect_right` on the prefix sums, and the
sums of the skipped steps are differences of prefix sums. The loop then goes on step by step from
boundary m (the step that does not fit, a price limit, a liquidity that would leave uint128), so the
result is the loop's own, to the wei.

The boundaries a swap meets, going down: every initialized tick and every word start
(256 * w * spacing, clamped to MIN_TICK); going up: every initialized tick and every word end
((256 * w + 255) * spacing, clamped to MAX_TICK). They do not depend on the price, and the liquidity
of each range is the sum of the nets below it plus a constant (0 for a real pool), so one path per
direction, fee, protocol fee and liquidity offset serves every state sharing a tick map. Paths are
built lazily: in chunks of `CHUNK_WORDS` bitmap words as swaps first reach them, and within a chunk
only as far as swaps have needed, so the first swaps after a tick-map change cost about what the
step-by-step loop costs.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from pricing.amm.full_math import MAX_UINT128, MAX_UINT256, Q128
from pricing.amm.swap_math import FEE_PIPS_DENOMINATOR
from pricing.amm.tick_math import _SQRT_RATIO_CACHE, MAX_TICK, MIN_TICK, sqrt_ratio_at_tick_cached

CHUNK_WORDS = 8  # bitmap words per chunk: a jump crosses a chunk per bisection
_CHUNK_BITS = 8 + CHUNK_WORDS.bit_length() - 1  # compressed tick positions per chunk, as a shift
_EXTEND_MIN = 16  # whole steps computed at least per extension of a chunk


class PathChunk:
    """The boundaries of one chunk in swap order, and the prefix sums of the whole steps between them.

    Index i is boundary i (`ticks[i]`, `liquidity[i]` the in-range liquidity once it is crossed,
    `sqrt[i]` its Q64.96 price once computed); the prefix lists hold the sums over steps 0..i-1 (base
    units of the input token for `need` (amountIn + fee), `fees` and `protocol`; of the output token
    for `out`; Q128.128 per unit of liquidity for `growth`) for i in 0..`last`: a jump may end at
    those boundaries. `complete`: no step after `last` will be computed (the end, or the loop
    reverts there). `keys` is the sqrt price going up and its negation going down (increasing).
    """

    __slots__ = (
        "complete",
        "fees",
        "growth",
        "index",
        "keys",
        "last",
        "liquidity",
        "need",
        "out",
        "protocol",
        "sqrt",
        "ticks",
    )

    def __init__(self, ticks: list[int], first_liquidity: int, first_sqrt: int, zero_for_one: bool) -> None:
        self.ticks = ticks
        # boundary tick -> index, for all but the last boundary (which starts the next chunk)
        self.index = dict(zip(ticks[:-1], range(len(ticks) - 1), strict=True))
        self.liquidity = [first_liquidity]
        self.sqrt = [first_sqrt]
        self.keys = [-first_sqrt if zero_for_one else first_sqrt]
        self.need = [0]
        self.out = [0]
        self.fees = [0]
        self.protocol = [0]
        self.growth = [0]
        self.last = 0
        # crossing into a chunk whose first range leaves uint128 reverts: no jump starts or ends there
        self.complete = len(ticks) < 2 or not 0 <= first_liquidity <= MAX_UINT128


class SwapPath:
    """The whole steps of swaps in one direction over one tick map (see the module docstring).

    `ticks`/`cumulative_nets` are the table's sorted initialized ticks and the running sums of their
    liquidity nets (`cumulative_nets[k]` = sum of the first k nets), `nets` tick -> liquidityNet;
    `offset` is what the liquidity
    of every range adds to those sums; `fee` in pips and `fee_protocol` the direction's denominator
    (0: none).
    """

    __slots__ = (
        "chunks",
        "cumulative_nets",
        "entries",
        "fee",
        "fee_protocol",
        "nets",
        "offset",
        "spacing",
        "ticks",
        "zero_for_one",
    )

    def __init__(
        self,
        zero_for_one: bool,
        ticks: list[int],
        cumulative_nets: list[int],
        nets: dict[int, int],
        spacing: int,
        offset: int,
        fee: int,
        fee_protocol: int,
    ) -> None:
        self.zero_for_one = zero_for_one
        self.ticks = ticks
        self.cumulative_nets = cumulative_nets
        self.nets = nets
        self.spacing = spacing
        self.offset = offset
        self.fee = fee
        self.fee_protocol = fee_protocol
        self.chunks: dict[int, PathChunk] = {}
        # boundary tick -> (chunk, index) where a jump from it starts, for the boundaries met so far
        self.entries: dict[int, tuple[PathChunk, int]] = {}

    def locate(self, tick: int, create: bool = True) -> tuple[PathChunk, int] | None:
        """(chunk, index) of the whole steps from boundary `tick`, None if not one (or, unless `create`,
        if its chunk is not set up yet)."""
        found = self.entries.get(tick)
        if found is None:
            compressed = tick // self.spacing
            number = (compressed - 1 if self.zero_for_one else compressed + 1) >> _CHUNK_BITS
            chunk = self.chunks.get(number)
            if chunk is None:
                if not create:
                    return None
                chunk = self.chunks[number] = self._chunk(number)
            index = chunk.index.get(tick)
            if index is not None:
                found = self.entries[tick] = (chunk, index)
        return found

    def _boundaries(self, number: int) -> list[int]:
        """The chunk's boundary ticks in swap order, starting with the one shared with the chunk before."""
        spacing = self.spacing
        low = (number << _CHUNK_BITS) * spacing
        high = ((number + 1) << _CHUNK_BITS) * spacing
        ticks = self.ticks
        inside = ticks[bisect_left(ticks, low) : bisect_left(ticks, high)]
        if self.zero_for_one:
            # entering from the chunk above at its lowest word start, then down to this chunk's first
            candidates = sorted({high, *inside, *range(low, high, 256 * spacing)}, reverse=True)
            end = MIN_TICK
        else:
            word_ends = range(low + 255 * spacing, high, 256 * spacing)
            candidates = sorted({low - spacing, *inside, *word_ends})
            end = MAX_TICK
        if min(candidates[0], candidates[-1]) >= MIN_TICK and max(candidates[0], candidates[-1]) <= MAX_TICK:
            return candidates
        boundaries: list[int] = []  # a chunk at an end of the tick range: clamp as the loop does
        for tick in candidates:
            tick = max(min(tick, MAX_TICK), MIN_TICK)
            if not boundaries or boundaries[-1] != tick:
                boundaries.append(tick)
            if tick == end:
                break  # the swap loop never goes past the end of the tick range
        return boundaries

    def _chunk(self, number: int) -> PathChunk:
        """Chunk `number` (compressed positions [number << 11, (number + 1) << 11)), no step computed yet."""
        boundaries = self._boundaries(number)
        ticks, cumulative, offset = self.ticks, self.cumulative_nets, self.offset
        # liquidity once the first boundary is crossed: the nets below it going down, at or below it up
        position = (bisect_left if self.zero_for_one else bisect_right)(ticks, boundaries[0])
        liquidity = cumulative[position] + offset
        first = _SQRT_RATIO_CACHE.get(boundaries[0]) or sqrt_ratio_at_tick_cached(boundaries[0])
        return PathChunk(boundaries, liquidity, first, self.zero_for_one)

    def extend(self, chunk: PathChunk, upto: int) -> None:
        """Compute the chunk's whole steps up to boundary `upto` at least (fewer where the loop reverts)."""
        zero_for_one = self.zero_for_one
        fee, fee_protocol = self.fee, self.fee_protocol
        fee_complement = FEE_PIPS_DENOMINATOR - fee
        ticks, liquidity, sqrt, keys, nets = chunk.ticks, chunk.liquidity, chunk.sqrt, chunk.keys, self.nets
        needs, outs, fee_sums, protocol_sums, growths = (
            chunk.need,
            chunk.out,
            chunk.fees,
            chunk.protocol,
            chunk.growth,
        )
        step = chunk.last
        need, out, fees, protocol, growth = (
            needs[step],
            outs[step],
            fee_sums[step],
            protocol_sums[step],
            growths[step],
        )
        stop = min(max(upto, step + _EXTEND_MIN), len(ticks) - 1)
        price = sqrt[step]
        while step < stop:
            range_liquidity = liquidity[step]
            target = _SQRT_RATIO_CACHE.get(ticks[step + 1]) or sqrt_ratio_at_tick_cached(ticks[step + 1])
            # SwapMath.computeSwapStep reaching its target, as `swap_step` computes it then
            if zero_for_one:
                amount_in = -(-(range_liquidity << 96) * (price - target) // (price * target))
                amount_out = range_liquidity * (price - target) >> 96
            else:
                amount_in = -(-range_liquidity * (target - price) >> 96)
                amount_out = (range_liquidity << 96) * (target - price) // (target * price)
            fee_amount = -(-amount_in * fee // fee_complement)
            share = fee_amount // fee_protocol if fee_protocol else 0
            step_growth = (fee_amount - share) * Q128 // range_liquidity if range_liquidity else 0
            # crossing the next boundary: liquidityNet subtracted going down, added going up
            net = nets.get(ticks[step + 1], 0)
            crossed = range_liquidity - net if zero_for_one else range_liquidity + net
            if step_growth > MAX_UINT256 or not 0 <= crossed <= MAX_UINT128:
                chunk.complete = True  # the loop reverts on this step or crossing: leave it to the loop
                break
            need += amount_in + fee_amount
            out += amount_out
            fees += fee_amount
            protocol += share
            growth += step_growth
            needs.append(need)
            outs.append(out)
            fee_sums.append(fees)
            protocol_sums.append(protocol)
            growths.append(growth)
            sqrt.append(target)
            liquidity.append(crossed)
            keys.append(-target if zero_for_one else target)
            price = target
            step += 1
        chunk.last = step
        if step == len(ticks) - 1:
            chunk.complete = True


# (boundary tick, sqrt price, liquidity, need, out, fees, protocol fee, fee growth) after a jump
Jump = tuple[int, int, int, int, int, int, int, int]


def jump(
    path: SwapPath, chunk: PathChunk, start: int, budget: int, exact_input: bool, limit_key: int
) -> Jump | None:
    """Take every whole step from boundary `start` of `chunk` that `budget` covers; None when not one.

    The boundary is the one the swap loop has just crossed (`SwapPath.locate`); `budget` what remains
    of the specified amount (exact input: input tokens, fee included; exact output: output tokens;
    base units, > 0); `limit_key` the price limit as a path key (the sqrt limit going up, its
    negation going down): a jump never ends beyond it. Returns the boundary reached, its price, the
    liquidity once crossed and the sums over the steps taken (see `Jump`).
    """
    tick = chunk.ticks[start]
    need = out = fees = protocol = growth = 0
    while True:
        prefix = chunk.need if exact_input else chunk.out
        while True:  # bisect the steps computed so far; compute more while they all fit
            end = chunk.last
            keys = chunk.keys
            limited = keys[end] > limit_key
            if limited:
                end = bisect_right(keys, limit_key, start, end + 1) - 1
            reach = bisect_right(prefix, budget + prefix[start], start, end + 1) - 1 if end > start else start
            if reach < chunk.last or limited or chunk.complete:
                break
            path.extend(chunk, 2 * chunk.last)
        if reach > start:
            base = prefix[start]
            if prefix[reach] - base == budget:
                # used up exactly: the loop stops at the first boundary where that happens
                reach = bisect_left(prefix, prefix[reach], start, reach)
            budget -= prefix[reach] - base
            need += chunk.need[reach] - chunk.need[start]
            out += chunk.out[reach] - chunk.out[start]
            fees += chunk.fees[reach] - chunk.fees[start]
            protocol += chunk.protocol[reach] - chunk.protocol[start]
            growth += chunk.growth[reach] - chunk.growth[start]
        if reach < len(chunk.ticks) - 1 or budget == 0:
            break
        # the whole chunk was taken: go on from the same boundary at the start of the next one
        following = path.locate(chunk.ticks[reach])
        if following is None:
            break
        chunk, start = following
    if need == 0 and out == 0 and chunk.ticks[reach] == tick:
        return None
    return chunk.ticks[reach], chunk.sqrt[reach], chunk.liquidity[reach], need, out, fees, protocol, growth
