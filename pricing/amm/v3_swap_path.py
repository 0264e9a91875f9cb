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
built lazily in chunks of `CHUNK_WORDS` bitmap words, as swaps first reach them.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from pricing.amm.full_math import MAX_INT256, MAX_UINT128, MAX_UINT256, Q128
from pricing.amm.swap_math import swap_step
from pricing.amm.tick_math import MAX_TICK, MIN_TICK, get_sqrt_ratio_at_tick

CHUNK_WORDS = 8  # bitmap words per chunk: small enough to build lazily, big enough to jump far
_CHUNK_BITS = 8 + CHUNK_WORDS.bit_length() - 1  # compressed tick positions per chunk, as a shift


class PathChunk:
    """The boundaries of one chunk in swap order, and the prefix sums of the whole steps between them.

    Index i is boundary i (`ticks[i]`, its sqrt price `sqrt[i]` Q64.96, `liquidity[i]` the in-range
    liquidity once it is crossed); the prefix lists hold the sums over steps 0..i-1 (base units of
    the input token for `need` (amountIn + fee), `fees` and `protocol`; of the output token for
    `out`; Q128.128 per unit of liquidity for `growth`). A jump may end at boundaries 0..`last`.
    `keys` is the sqrt price going up and its negation going down (increasing along the path).
    """

    __slots__ = (
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

    def __init__(self, ticks: list[int], sqrt: list[int], liquidity: list[int], zero_for_one: bool) -> None:
        self.ticks = ticks
        self.index = {tick: position for position, tick in enumerate(ticks)}
        self.sqrt = sqrt
        self.keys = [-price for price in sqrt] if zero_for_one else sqrt
        self.liquidity = liquidity
        self.need = [0]
        self.out = [0]
        self.fees = [0]
        self.protocol = [0]
        self.growth = [0]
        self.last = 0


class SwapPath:
    """The whole steps of swaps in one direction over one tick map (see the module docstring).

    `ticks`/`cumulative_nets` are the table's sorted initialized ticks and the running sums of their
    liquidity nets (`cumulative_nets[k]` = sum of the first k nets); `offset` is what the liquidity
    of every range adds to those sums; `fee` in pips and `fee_protocol` the direction's denominator
    (0: none).
    """

    __slots__ = (
        "chunks",
        "cumulative_nets",
        "entries",
        "fee",
        "fee_protocol",
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
        spacing: int,
        offset: int,
        fee: int,
        fee_protocol: int,
    ) -> None:
        self.zero_for_one = zero_for_one
        self.ticks = ticks
        self.cumulative_nets = cumulative_nets
        self.spacing = spacing
        self.offset = offset
        self.fee = fee
        self.fee_protocol = fee_protocol
        self.chunks: dict[int, PathChunk] = {}
        # boundary tick -> (chunk, index) where a jump from it starts, for every built chunk
        self.entries: dict[int, tuple[PathChunk, int]] = {}

    def locate(self, tick: int) -> tuple[PathChunk, int] | None:
        """(chunk, index) of the whole steps from boundary `tick` (building the chunk), None if not one."""
        found = self.entries.get(tick)
        if found is None:
            compressed = tick // self.spacing
            self.chunk((compressed - 1 if self.zero_for_one else compressed + 1) >> _CHUNK_BITS)
            found = self.entries.get(tick)
        return found

    def chunk(self, number: int) -> PathChunk:
        """Chunk `number` (compressed positions [number << 11, (number + 1) << 11)), built on first use."""
        found = self.chunks.get(number)
        if found is None:
            found = self.chunks[number] = self._build(number)
            for position, tick in enumerate(found.ticks[:-1]):  # the last one starts the next chunk
                self.entries[tick] = (found, position)
        return found

    def _boundaries(self, number: int) -> list[int]:
        """The chunk's boundary ticks in swap order, starting with the one shared with the chunk before."""
        spacing = self.spacing
        low = (number << _CHUNK_BITS) * spacing
        high = ((number + 1) << _CHUNK_BITS) * spacing
        ticks = self.ticks
        inside = ticks[bisect_left(ticks, low) : bisect_left(ticks, high)]
        words = range(low, high, 256 * spacing)
        if self.zero_for_one:
            # entering from the chunk above at its lowest word start, then down to this chunk's first
            candidates = sorted({high, *inside, *words}, reverse=True)
            clamped = [max(min(tick, MAX_TICK), MIN_TICK) for tick in candidates]
            end = MIN_TICK
        else:
            word_ends = range(low + 255 * spacing, high, 256 * spacing)
            candidates = sorted({low - spacing, *inside, *word_ends})
            clamped = [max(min(tick, MAX_TICK), MIN_TICK) for tick in candidates]
            end = MAX_TICK
        boundaries: list[int] = []
        for tick in clamped:
            if not boundaries or boundaries[-1] != tick:
                boundaries.append(tick)
            if tick == end:
                break  # the swap loop never goes past the end of the tick range
        return boundaries

    def _build(self, number: int) -> PathChunk:
        """Compute a chunk: prices, liquidity per range, whole steps, and where jumps must stop."""
        zero_for_one = self.zero_for_one
        boundaries = self._boundaries(number)
        ticks, cumulative, offset = self.ticks, self.cumulative_nets, self.offset
        # liquidity once a boundary is crossed: the nets below it going down, at or below it going up
        position = bisect_left if zero_for_one else bisect_right
        liquidity = [cumulative[position(ticks, tick)] + offset for tick in boundaries]
        chunk = PathChunk(
            boundaries, [get_sqrt_ratio_at_tick(tick) for tick in boundaries], liquidity, zero_for_one
        )
        sqrt = chunk.sqrt
        fee, fee_protocol = self.fee, self.fee_protocol
        need = out = fees = protocol = growth = 0
        if not 0 <= liquidity[0] <= MAX_UINT128:
            return chunk  # crossing into this chunk reverts: no jump may start or end here
        for step in range(len(boundaries) - 1):
            range_liquidity = liquidity[step]
            _, amount_in, amount_out, fee_amount = swap_step(
                sqrt[step], sqrt[step + 1], range_liquidity, MAX_INT256, fee
            )
            share = fee_amount // fee_protocol if fee_protocol else 0
            step_growth = (fee_amount - share) * Q128 // range_liquidity if range_liquidity else 0
            if step_growth > MAX_UINT256 or not 0 <= liquidity[step + 1] <= MAX_UINT128:
                break  # the loop reverts on this step or crossing: leave it to the loop
            need += amount_in + fee_amount
            out += amount_out
            fees += fee_amount
            protocol += share
            growth += step_growth
            chunk.need.append(need)
            chunk.out.append(out)
            chunk.fees.append(fees)
            chunk.protocol.append(protocol)
            chunk.growth.append(growth)
            chunk.last = step + 1
        return chunk


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
        end = chunk.last
        keys = chunk.keys
        if keys[end] > limit_key:
            end = bisect_right(keys, limit_key, start, end + 1) - 1
        prefix = chunk.need if exact_input else chunk.out
        if end > start:
            base = prefix[start]
            reach = bisect_right(prefix, budget + base, start, end + 1) - 1
            if prefix[reach] - base == budget:
                # used up exactly: the loop stops at the first boundary where that happens
                reach = bisect_left(prefix, prefix[reach], start, reach)
        else:
            reach = start
        if reach > start:
            taken = prefix[reach] - prefix[start]
            budget -= taken
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
