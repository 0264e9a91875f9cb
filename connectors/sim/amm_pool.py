"""The pools a simulated AMM venue holds: Uniswap v2 reserves and v3 states, moved by exact integer math.

A pool model knows its current state, prices a swap on it exactly as the contract would
(`pricing.amm`), applies a swap it was asked to commit, and takes recorded `PoolState` events.
Amounts are token base units (integers), v3 prices Q64.96 sqrt prices, liquidity in
sqrt(token0 x token1) base units.

Recorded states and our impact
------------------------------
The recorded market is the truth: a recorded `PoolState` replaces the pool's price and liquidity
(v2: both reserves; v3: sqrt price, tick and in-range liquidity), so the impact of our own swaps
lasts only until the next recorded state (`impact_persists=False`, the default). The alternative,
`impact_persists=True`, carries our cumulative net flow over to every later record, as if the rest
of the market had traded exactly as recorded on top of our trades (it ignores that arbitrageurs
would have traded differently against a pool we moved):

- v2: the recorded reserves plus our cumulative reserve deltas (amount in added, amount out
  subtracted, fee included), exactly;
- v3: the recorded state, then our cumulative net token0 flow swapped into it once more through
  `v3_swap` (exact input of token0 when we paid token0 in on balance, exact output of token0 when
  we took it out), with the pool's fee. Token1 follows from the curve, so it matches our net token1
  flow only approximately.

A record the model cannot use (a non-positive reserve, a price outside the tick range, a tick
outside the liquidity profile) raises `AmmError` naming the field, and the pool keeps its state.

v3 liquidity beyond the current price
-------------------------------------
A recorded v3 state carries only the in-range liquidity. The ticks beyond come from the pool's
`LiquidityProfile`: positions `(tick_lower, tick_upper, weight)` that give the *shape* of the
liquidity, while the record gives its *scale*. Between consecutive position boundaries the
profile's liquidity is the sum of the weights of the positions spanning that segment; each segment
gets `recorded liquidity x segment weight // weight of the segment holding the recorded tick`
(floor), so the segment holding the price has exactly the recorded liquidity, and the initialized
ticks are the boundaries, each with `liquidity_net` = the step in segment liquidity there. A
profile given in absolute liquidity (a snapshot of the pool's ticks) is returned unchanged when
the record matches it. The default profile is one full-range position: constant liquidity over
the whole price range, which makes a v3 pool behave like a v2 pair with virtual reserves
L / sqrt(P) and L x sqrt(P). Beyond the outermost boundary there is no liquidity: a swap that gets
there uses up what it can (exact input) or reverts (exact output).
"""

from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import NamedTuple

from core.errors import InvalidInput
from core.events import PoolState
from core.instruments import Pool
from pricing.amm import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    AmmError,
    V3PoolState,
    quote_exact_input,
    quote_exact_output,
    v2_amount_in,
    v2_amount_out,
    v3_swap,
)

MAX_UINT112 = (1 << 112) - 1
"""Largest reserve a v2 pair stores (`UniswapV2: OVERFLOW` beyond)."""

_CACHE_MAX = 64  # tick tables kept per v3 pool, keyed by (segment, liquidity)


class V2Reserves(NamedTuple):
    """A v2 pair's reserves (token base units)."""

    reserve0: int
    reserve1: int


class SwapOutcome(NamedTuple):
    """What a swap would do to a pool, computed before it is committed.

    - `amount_in`, `amount_out`: base units of the input token paid in (fee included) and of the
      output token paid out.
    - `ticks_crossed`: initialized ticks crossed (QuoterV2's count; 0 on v2), for the gas.
    - `partial`: an exact-input v3 swap ran out of liquidity and used less than asked.
    - `after`: the pool state once the swap is committed.
    """

    amount_in: int
    amount_out: int
    ticks_crossed: int
    partial: bool
    after: V2Reserves | V3PoolState


@dataclass(frozen=True, slots=True)
class LiquidityProfile:
    """The shape of a v3 pool's liquidity: positions `(tick_lower, tick_upper, weight)`.

    Ticks are multiples of the pool's tick spacing with `tick_lower < tick_upper`; weights are
    integers > 0 (liquidity units when the profile is a snapshot of the pool, any scale
    otherwise). Empty (the default) means one full-range position. See the module docstring.
    """

    positions: tuple[tuple[int, int, int], ...] = ()

    def segments(self, tick_spacing: int) -> tuple[list[int], list[int]]:
        """(boundaries, weights): the sorted position boundaries and the weight between each pair.

        `weights[i]` is the profile's liquidity on `[boundaries[i], boundaries[i + 1])`. Raises
        `InvalidInput` naming a bad position.
        """
        positions = self.positions or ((_full_range_lower(tick_spacing), _full_range_upper(tick_spacing), 1),)
        for i, position in enumerate(positions):
            lower, upper, weight = position
            if not (
                isinstance(lower, int)
                and isinstance(upper, int)
                and lower % tick_spacing == 0
                and upper % tick_spacing == 0
                and -MAX_TICK <= lower < upper <= MAX_TICK
            ):
                raise InvalidInput(
                    f"profile.positions[{i}]",
                    position,
                    f"ticks must be multiples of tick_spacing={tick_spacing} with "
                    f"{-MAX_TICK} <= tick_lower < tick_upper <= {MAX_TICK}",
                )
            if not isinstance(weight, int) or isinstance(weight, bool) or weight <= 0:
                raise InvalidInput(f"profile.positions[{i}].weight", weight, "must be an integer > 0")
        boundaries = sorted({tick for lower, upper, _ in positions for tick in (lower, upper)})
        weights = [
            sum(w for lower, upper, w in positions if lower <= boundaries[k] and upper >= boundaries[k + 1])
            for k in range(len(boundaries) - 1)
        ]
        return boundaries, weights


def _full_range_lower(tick_spacing: int) -> int:
    """The lowest usable tick: MIN_TICK rounded up to the spacing."""
    return -(MAX_TICK // tick_spacing) * tick_spacing


def _full_range_upper(tick_spacing: int) -> int:
    """The highest usable tick: MAX_TICK rounded down to the spacing."""
    return (MAX_TICK // tick_spacing) * tick_spacing


class PoolModel(ABC):
    """A pool held by a simulated venue: its state, swap pricing, commits and recorded states.

    Args:
        pool: the pool instrument (tokens, fee in hundredths of a bip, version, tick spacing).
        impact_persists: carry our cumulative impact over recorded states (module docstring).
    """

    def __init__(self, pool: Pool, impact_persists: bool) -> None:
        self.pool = pool
        self.impact_persists = impact_persists
        self.net0 = 0  # our cumulative token0 flow into the pool (base units; < 0: out of it)
        self.net1 = 0  # the same for token1

    @property
    @abstractmethod
    def has_state(self) -> bool:
        """Whether a state is known (from the initial state or a record)."""

    @abstractmethod
    def swap(self, zero_for_one: bool, exact_input: bool, amount: int) -> SwapOutcome:
        """Price a swap of `amount` base units (input if `exact_input`, else output) without moving the pool.

        `zero_for_one`: token0 in, token1 out. Raises `AmmError` where the contract reverts.
        """

    def commit(self, outcome: SwapOutcome, zero_for_one: bool) -> None:
        """Move the pool as `outcome` (from `swap` on the current state) says."""
        signed_in, signed_out = outcome.amount_in, -outcome.amount_out
        self.net0 += signed_in if zero_for_one else signed_out
        self.net1 += signed_out if zero_for_one else signed_in
        self._set(outcome.after)

    @abstractmethod
    def _set(self, after: V2Reserves | V3PoolState) -> None:
        """Replace the state by a committed swap's `after`."""

    @abstractmethod
    def reset(self, record: PoolState) -> None:
        """Take a recorded state (see the module docstring); `AmmError` leaves the pool unchanged."""

    @abstractmethod
    def event(self, ts: int, venue: str, block_number: int) -> PoolState:
        """The current state as a `PoolState` event stamped `ts` (ns) and `block_number`."""


class V2Pool(PoolModel):
    """A Uniswap v2 pair: reserves, `getAmountOut` / `getAmountIn` with the pool's fee.

    The fee is `pool.fee` in hundredths of a bip (3000 = 0.30%, the canonical 997/1000) and must
    be a whole number of basis points.
    """

    def __init__(self, pool: Pool, impact_persists: bool = False) -> None:
        super().__init__(pool, impact_persists)
        if pool.fee % 100:
            raise InvalidInput(f"{pool.id}.fee", pool.fee, "a v2 fee must be a whole number of bps (x100)")
        self.fee_bps = pool.fee // 100
        self.reserves: V2Reserves | None = None

    @property
    def has_state(self) -> bool:
        """Whether reserves are known."""
        return self.reserves is not None

    def swap(self, zero_for_one: bool, exact_input: bool, amount: int) -> SwapOutcome:
        """The router's single-hop swap on the current reserves (see `PoolModel.swap`)."""
        if self.reserves is None:
            raise AmmError("pool", self.pool.id, "no state yet")
        r0, r1 = self.reserves
        reserve_in, reserve_out = (r0, r1) if zero_for_one else (r1, r0)
        if exact_input:
            amount_in = amount
            amount_out = v2_amount_out(amount, reserve_in, reserve_out, self.fee_bps)
            if amount_out == 0:
                raise AmmError("amount_out", 0, "UniswapV2: INSUFFICIENT_OUTPUT_AMOUNT")
        else:
            amount_out = amount
            amount_in = v2_amount_in(amount, reserve_in, reserve_out, self.fee_bps)
        new_in, new_out = reserve_in + amount_in, reserve_out - amount_out
        if new_in > MAX_UINT112:
            raise AmmError("reserve_in", new_in, "UniswapV2: OVERFLOW (reserves are uint112)")
        after = V2Reserves(new_in, new_out) if zero_for_one else V2Reserves(new_out, new_in)
        return SwapOutcome(amount_in, amount_out, 0, False, after)

    def _set(self, after: V2Reserves | V3PoolState) -> None:
        assert isinstance(after, V2Reserves)
        self.reserves = after

    def reset(self, record: PoolState) -> None:
        """Recorded reserves (plus our cumulative deltas when the impact persists)."""
        r0, r1 = record.reserve0, record.reserve1
        if self.impact_persists:
            r0, r1 = r0 + self.net0, r1 + self.net1
        for name, value in (("reserve0", r0), ("reserve1", r1)):
            if not 0 < value <= MAX_UINT112:
                raise AmmError(name, value, f"must be in [1, 2**112 - 1] (record at ts {record.ts})")
        self.reserves = V2Reserves(r0, r1)

    def event(self, ts: int, venue: str, block_number: int) -> PoolState:
        """Reserves as a `PoolState` (v3 fields 0)."""
        if self.reserves is None:
            raise AmmError("pool", self.pool.id, "no state yet")
        return PoolState(
            ts, venue, self.pool.id, block_number, self.reserves.reserve0, self.reserves.reserve1
        )


class V3Pool(PoolModel):
    """A Uniswap v3 pool: price, tick, in-range liquidity, and ticks from a `LiquidityProfile`.

    Swaps go through QuoterV2's semantics on the state (`pricing.amm.quote_exact_input` /
    `quote_exact_output`), which equal `UniswapV3Pool.swap` with no price limit, as the router
    calls it.
    """

    def __init__(
        self, pool: Pool, profile: LiquidityProfile | None = None, impact_persists: bool = False
    ) -> None:
        super().__init__(pool, impact_persists)
        self.profile = profile if profile is not None else LiquidityProfile()
        self._boundaries, self._weights = self.profile.segments(pool.tick_spacing)
        self._tables: dict[tuple[int, int], tuple[tuple[int, int], ...]] = {}
        self.state: V3PoolState | None = None

    @property
    def has_state(self) -> bool:
        """Whether a price and liquidity are known."""
        return self.state is not None

    def ticks_for(self, tick: int, liquidity: int) -> tuple[tuple[int, int], ...]:
        """The initialized ticks `(tick, liquidity_net)` for a recorded `tick` and in-range `liquidity`.

        The profile scaled so that the segment holding `tick` has exactly `liquidity` (module
        docstring); `AmmError` when `tick` lies outside the profile.
        """
        boundaries, weights = self._boundaries, self._weights
        segment = bisect.bisect_right(boundaries, tick) - 1
        if not 0 <= segment < len(weights) or weights[segment] == 0:
            raise AmmError(
                "tick", tick, f"outside the liquidity profile [{boundaries[0]}, {boundaries[-1]}) or in a gap"
            )
        key = (segment, liquidity)
        table = self._tables.get(key)
        if table is None:
            current = weights[segment]
            scaled = [liquidity * w // current for w in weights]
            below = [0, *scaled]  # liquidity just below each boundary
            above = [*scaled, 0]  # and just above it
            table = tuple((b, above[k] - below[k]) for k, b in enumerate(boundaries))
            if len(self._tables) >= _CACHE_MAX:
                self._tables.clear()
            self._tables[key] = table  # the same tuple object lets pricing.amm reuse its tick table
        return table

    def swap(self, zero_for_one: bool, exact_input: bool, amount: int) -> SwapOutcome:
        """The router's single-pool swap with no price limit (see `PoolModel.swap`)."""
        state = self.state
        if state is None:
            raise AmmError("pool", self.pool.id, "no state yet")
        if exact_input:
            result = quote_exact_input(state, amount, zero_for_one)
        else:
            result = quote_exact_output(state, amount, zero_for_one)
        if result.amount_out == 0:
            raise AmmError("amount_out", 0, "the swap pays nothing out (refused: a fill needs a quantity)")
        return SwapOutcome(
            result.amount_in,
            result.amount_out,
            result.initialized_ticks_crossed,
            result.partial,
            state.after(result),
        )

    def _set(self, after: V2Reserves | V3PoolState) -> None:
        assert isinstance(after, V3PoolState)
        self.state = after

    def reset(self, record: PoolState) -> None:
        """Recorded price, tick and liquidity over the profile's ticks (and our net flow if it persists)."""
        state = V3PoolState(
            record.sqrt_price_x96,
            record.tick,
            record.liquidity,
            self.pool.fee,
            self.pool.tick_spacing,
            self.ticks_for(record.tick, record.liquidity),
        )
        if self.impact_persists and self.net0 != 0:
            # > 0: exact input of token0 (zero for one); < 0: exact output of token0 (one for zero)
            zero_for_one = self.net0 > 0
            limit = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
            state = state.after(v3_swap(state, zero_for_one, self.net0, limit))
        self.state = state

    def event(self, ts: int, venue: str, block_number: int) -> PoolState:
        """Price, tick and liquidity as a `PoolState` (reserves 0)."""
        state = self.state
        if state is None:
            raise AmmError("pool", self.pool.id, "no state yet")
        return PoolState(
            ts, venue, self.pool.id, block_number, 0, 0, state.sqrt_price_x96, state.tick, state.liquidity
        )
