"""The fast v3 swap (whole steps jumped by prefix sums, `pricing.amm.v3_swap_path`) against the stepwise loop.

The reference is `tests/pricing/v3_swap_reference.stepwise_swap`: the swap loop as it was before the
jumps, one step per initialized tick or bitmap-word edge (itself checked against v3-core's swap
snapshot, exact rationals and QuoterV2). Every field of the result must be equal, errors included
(same type and field), on thousands of random pools and swaps, on amounts that end exactly on a
boundary (where the loop stops although whole steps of zero amount follow), across chunk edges, on
states that follow each other, and on pools drained to the end of the tick range.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from pricing.amm import (
    MAX_INT256,
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    AmmError,
    V3PoolState,
    V3SwapResult,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
    quote_exact_input,
    v3_swap,
)
from tests.pricing.v3_swap_reference import stepwise_swap

Position = tuple[int, int, int]
Swap = tuple[bool, int, int]
Outcome = V3SwapResult | tuple[str, str, str]


def outcome(state: V3PoolState, zero_for_one: bool, amount: int, limit: int, fast: bool) -> Outcome:
    """The swap's result, or ('error', class name, field) where it reverts."""
    try:
        return (v3_swap if fast else stepwise_swap)(state, zero_for_one, amount, limit)
    except AmmError as error:
        return ("error", type(error).__name__, error.field)


def assert_same(state: V3PoolState, zero_for_one: bool, amount: int, limit: int) -> Outcome:
    """Fast == stepwise, every field; returns the outcome."""
    expected = outcome(state, zero_for_one, amount, limit, fast=False)
    got = outcome(state, zero_for_one, amount, limit, fast=True)
    assert got == expected, (state, zero_for_one, amount, limit)
    return got


def state_from_positions(
    price: int, fee: int, spacing: int, positions: list[Position], fee_protocol: int = 0, skew: int = 0
) -> V3PoolState:
    """A pool with `positions` at `price`; `skew` is added to the in-range liquidity (a synthetic state)."""
    nets: dict[int, int] = {}
    for lower, upper, liquidity in positions:
        nets[lower] = nets.get(lower, 0) + liquidity
        nets[upper] = nets.get(upper, 0) - liquidity
    tick = get_tick_at_sqrt_ratio(price)
    liquidity = sum(size for lower, upper, size in positions if lower <= tick < upper) + skew
    ticks = tuple(sorted((t, net) for t, net in nets.items()))
    return V3PoolState(price, tick, liquidity, fee, spacing, ticks, fee_protocol)


def random_state(rng: random.Random) -> V3PoolState | None:
    """A random pool: few or many ranges, tiny to huge liquidity, any spacing, fee and protocol fee."""
    spacing = rng.choice([1, 10, 60, 200])
    fee = rng.choice([0, 100, 500, 3000, 10_000, 999_999])
    centre = rng.randint(-400_000, 400_000) // spacing * spacing
    span = rng.choice([4, 50, 600, 5000, 40_000]) * spacing
    lowest, highest = -(MAX_TICK // spacing) * spacing, (MAX_TICK // spacing) * spacing
    positions: list[Position] = []
    for _ in range(rng.randint(1, 12)):
        lower = max(rng.randint(centre - span, centre + span) // spacing * spacing, lowest)
        upper = min(lower + rng.randint(1, 2 * span // spacing + 1) * spacing, highest)
        size = rng.choice(
            [rng.randint(1, 2**100), rng.randint(10**15, 10**22), rng.randint(1, 10), rng.randint(1, 1000)]
        )
        if lower < upper:
            positions.append((lower, upper, size))
    if not positions:
        return None
    price_tick = min(
        max(rng.randint(centre - span - spacing, centre + span + spacing), MIN_TICK), MAX_TICK - 1
    )
    low, high = get_sqrt_ratio_at_tick(price_tick), get_sqrt_ratio_at_tick(price_tick + 1)
    price = rng.choice([low, high - 1, (low + high) // 2, rng.randint(low, high - 1)])
    fee_protocol = rng.choice([0, 0, 4 + (6 << 4), 10 + (10 << 4)])
    # now and then a liquidity that disagrees with the nets: ranges far away may then go negative
    skew = rng.randint(-(10**18), 10**18) if rng.random() < 0.1 else 0
    try:
        return state_from_positions(price, fee, spacing, positions, fee_protocol, skew)
    except AmmError:
        return None  # a net or the skewed liquidity out of range


def random_swap(rng: random.Random, state: V3PoolState) -> Swap | None:
    """(zero_for_one, amount_specified, limit) valid for the state, or None."""
    zero_for_one = rng.random() < 0.5
    magnitude = rng.choice(
        [
            rng.randint(1, 10),
            rng.randint(1, 10**6),
            rng.randint(1, 2**90),
            rng.randint(10**17, 10**22),
            rng.randint(1, 2**200),
            MAX_INT256,
        ]
    )
    amount = magnitude if rng.random() < 0.5 else -magnitude
    price = state.sqrt_price_x96
    away = rng.randint(1, 20_000)
    # a limit exactly on an initialized tick's price, one unit either side, or anywhere
    beyond = [t for t, _ in state.ticks if (t <= state.tick if zero_for_one else t > state.tick)] or [0]
    on_tick = get_sqrt_ratio_at_tick(rng.choice(beyond)) + rng.choice([-1, 0, 0, 1])
    if zero_for_one:
        other = max(get_sqrt_ratio_at_tick(max(state.tick - away, MIN_TICK)), MIN_SQRT_RATIO + 1)
        limit = rng.choice([MIN_SQRT_RATIO + 1, other, price - 1, on_tick])
        valid = MIN_SQRT_RATIO < limit < price
    else:
        other = min(get_sqrt_ratio_at_tick(min(state.tick + away, MAX_TICK)), MAX_SQRT_RATIO - 1)
        limit = rng.choice([MAX_SQRT_RATIO - 1, other, price + 1, on_tick])
        valid = price < limit < MAX_SQRT_RATIO
    return (zero_for_one, amount, limit) if valid else None


def boundary_amount(rng: random.Random, state: V3PoolState, swap: Swap) -> Swap:
    """The same swap with the amount that ends exactly on a random boundary (initialized tick or word
    edge) in its direction: what the stepwise swap limited at that boundary's price uses."""
    zero_for_one, amount, limit = swap
    spacing = state.tick_spacing
    word = state.tick // spacing >> 8
    edges = [(w * 256 + (0 if zero_for_one else 255)) * spacing for w in range(word - 2, word + 3)]
    candidates = [
        tick
        for tick in [*(t for t, _ in state.ticks), *edges]
        if MIN_TICK < tick < MAX_TICK and (tick <= state.tick if zero_for_one else tick > state.tick)
    ]
    if not candidates:
        return swap
    price = get_sqrt_ratio_at_tick(rng.choice(candidates))
    inside = MIN_SQRT_RATIO < price < state.sqrt_price_x96 if zero_for_one else state.sqrt_price_x96 < price
    if not inside or price >= MAX_SQRT_RATIO:
        return swap
    try:
        stopped = stepwise_swap(state, zero_for_one, amount, price)
    except AmmError:
        return swap
    if amount > 0 and stopped.amount_in > 0:
        return zero_for_one, stopped.amount_in, limit
    if amount < 0 and stopped.amount_out > 0:
        return zero_for_one, -stopped.amount_out, limit
    return swap


@pytest.mark.parametrize("seed", range(8))
def test_fast_swap_equals_the_stepwise_loop_on_random_pools(seed: int) -> None:
    rng = random.Random(seed)
    compared = 0
    for _ in range(250):
        state = random_state(rng)
        if state is None:
            continue
        for _ in range(4):  # a few swaps in a row: each from the state the previous one left
            swap = random_swap(rng, state)
            if swap is None:
                continue
            if rng.random() < 0.4:
                swap = boundary_amount(rng, state, swap)
            result = assert_same(state, *swap)
            compared += 1
            if isinstance(result, V3SwapResult) and rng.random() < 0.6:
                state = state.after(result)
    assert compared > 500


@pytest.mark.parametrize("seed", range(3))
def test_many_sizes_on_one_state_in_any_order(seed: int) -> None:
    # a sizing search quotes one state many times: the memoised first step and the paths built by
    # earlier quotes must give every later quote, of any kind and size, the loop's result
    rng = random.Random(100 + seed)
    compared = 0
    for _ in range(60):
        state = random_state(rng)
        if state is None:
            continue
        for _ in range(25):
            swap = random_swap(rng, state)
            if swap is None:
                continue
            if rng.random() < 0.5:
                swap = boundary_amount(rng, state, swap)
                if rng.random() < 0.3:  # one unit either side of the amount that ends on the boundary
                    zero_for_one, amount, limit = swap
                    swap = zero_for_one, amount + rng.choice([-1, 1]), limit
            if swap[1] == 0 or abs(swap[1]) > MAX_INT256:
                continue
            assert_same(state, *swap)
            compared += 1
    assert compared > 500


def test_a_swap_that_ends_on_a_boundary_stops_there() -> None:
    # the exact output of 1 is delivered by the range up to tick 98; the ranges above hold no
    # liquidity (whole steps of zero amount), but the loop stops where the amount ran out
    state = V3PoolState(2**96, 0, 237, 0, 1, ((0, 237), (1, -5), (98, -232)))
    result = assert_same(state, False, -1, MAX_SQRT_RATIO - 1)
    assert isinstance(result, V3SwapResult)
    assert result.tick == 98 and result.sqrt_price_x96 == get_sqrt_ratio_at_tick(98)
    assert (result.amount0, result.amount1) == (-1, 3)


def test_an_exact_output_capped_on_the_first_boundary_is_not_memoised() -> None:
    # found by the random test: this exact output lands exactly on the first boundary (92160) with
    # its output capped to the amount asked, less than the whole step's output; remembering it as
    # the state's first step would give the exact input after it one unit less output
    ticks = (
        (-272700, 43), (-269460, 5153552139792513691591), (-266640, 7), (-219300, 2175238511254771632561),
        (-190920, -2175238511254771632561), (-179040, 7030255118044912579686),
        (-152220, 677727071201009873557861578184), (-88440, -43), (-27780, 1174410892212986033895791821321),
        (37140, -1174410892212986033895791821321), (46260, 4923526975830570180479),
        (80940, -5153552139792513691591), (105720, 9), (149700, -9), (181200, -7),
        (310800, -7030255118044912579686), (314580, -677727071201009873557861578184),
        (641040, -4923526975830570180479),
    )  # fmt: skip
    state = V3PoolState(
        9259855949275632894869253473338, 95226, 677727083154791967433344338356, 100, 60, ticks, 170
    )
    capped = assert_same(state, True, -11260796349266833293226005736607, MIN_SQRT_RATIO + 1)
    assert isinstance(capped, V3SwapResult) and capped.sqrt_price_x96 == get_sqrt_ratio_at_tick(92160)
    assert capped.amount_out == 11260796349266833293226005736607
    after = assert_same(state, True, 60943824251886794006589751185415, 5462272342068324912198305848729)
    assert isinstance(after, V3SwapResult) and after.amount1 == -32484979828803745567529849372568


@pytest.mark.parametrize("spacing", [1, 60])
def test_swaps_across_chunk_edges(spacing: int) -> None:
    # ranges with ends on and next to the edges of 2048-position chunks (8 bitmap words), both signs
    chunk = 2048 * spacing
    edges = [k * chunk + d * spacing for k in (-2, -1, 0, 1, 2) for d in (-1, 0, 1)]
    positions = [
        (low, high, 10**18 + 977 * i) for i, (low, high) in enumerate(zip(edges, edges[3:], strict=False))
    ]
    positions.append((-3 * chunk, 3 * chunk, 10**17))
    rng = random.Random(spacing)
    for price_tick in (-chunk - spacing, -1, 0, chunk - 1, chunk, 2 * chunk + spacing):
        state = state_from_positions(get_sqrt_ratio_at_tick(price_tick) + 1, 3000, spacing, positions)
        for zero_for_one in (True, False):
            limit = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
            for magnitude in (10**15, 10**17, 10**18, 10**19, 10**20, 10**21, MAX_INT256):
                assert_same(state, zero_for_one, magnitude, limit)
                assert_same(state, zero_for_one, -magnitude, limit)
            for _ in range(20):
                assert_same(state, *boundary_amount(rng, state, (zero_for_one, 10**22, limit)))
                assert_same(state, *boundary_amount(rng, state, (zero_for_one, -(10**22), limit)))


@pytest.mark.parametrize("spacing", [1, 10, 200])
def test_draining_swaps_walk_to_the_end_of_the_tick_range(spacing: int) -> None:
    # past the last range the liquidity is zero: the loop walks every bitmap word to MIN/MAX_TICK
    positions = [(-50 * spacing, 70 * spacing, 10**18), (-10 * spacing, 10 * spacing, 10**20)]
    state = state_from_positions(2**96 + 1, 500, spacing, positions)
    for zero_for_one in (True, False):
        limit = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
        for amount in (10**30, -(10**30), MAX_INT256):
            result = assert_same(state, zero_for_one, amount, limit)
            assert isinstance(result, V3SwapResult) and result.partial and result.sqrt_price_x96 == limit
        # a limit exactly on a word edge far beyond the liquidity, and one next to it
        words = (MAX_TICK // spacing >> 8) // 2
        edge = (-(256 * words) if zero_for_one else 256 * words + 255) * spacing
        for price in (
            get_sqrt_ratio_at_tick(edge),
            get_sqrt_ratio_at_tick(edge) + (1 if zero_for_one else -1),
        ):
            assert_same(state, zero_for_one, 10**30, price)
            assert_same(state, zero_for_one, -(10**30), price)


def test_states_sharing_a_tick_map_with_other_fees_get_their_own_paths() -> None:
    positions = [(-6000 + 120 * i, 600 * i % 5400 - 3000 + 6120, 10**18 + i) for i in range(40)]
    state = state_from_positions(2**96 + 12345, 500, 60, positions)
    for fee, fee_protocol in ((500, 0), (3000, 0), (500, 4 + (6 << 4)), (0, 0), (999_999, 10 + (10 << 4))):
        other = replace(state, fee=fee, fee_protocol=fee_protocol)
        assert other.ticks is state.ticks
        for zero_for_one in (True, False):
            limit = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
            for amount in (10**19, 10**21, -(10**19), -(10**21)):
                assert_same(other, zero_for_one, amount, limit)


def test_liquidity_leaving_uint128_reverts_like_the_loop() -> None:
    # a synthetic state whose liquidity is below what the nets say: crossing down far enough takes it
    # below zero (LS), which the loop raises and a jump must not skip over
    positions = [(-600, 600, 10**18), (-1200, -60, 5 * 10**17), (-3000, 3000, 10**16)]
    short = state_from_positions(2**96, 3000, 60, positions, skew=-(10**18))
    for amount in (10**16, 10**18, 10**22, -(10**16), -(10**22)):
        assert_same(short, True, amount, MIN_SQRT_RATIO + 1)
        assert_same(short, False, amount, MAX_SQRT_RATIO - 1)
    assert outcome(short, True, 10**22, MIN_SQRT_RATIO + 1, fast=True) == (
        "error",
        "AmmError",
        "liquidity_net",
    )


def test_quotes_on_a_pool_with_hundreds_of_ranges_equal_the_loop() -> None:
    # the shape of benchmarks/connectors.py's pool: 6 wide ranges and 294 narrow ones around tick 0
    rng = random.Random(1)
    positions: list[Position] = []
    for index in range(300):
        if index < 6:
            lower = -rng.randrange(20_000, 400_000) // 10 * 10
            upper = -lower
        else:
            lower = rng.randrange(-30_000, 30_000) // 10 * 10
            upper = lower + rng.randrange(1, 1_500) * 10
        positions.append((lower, upper, rng.randrange(10**18, 10**22)))
    state = state_from_positions(get_sqrt_ratio_at_tick(0) + 12345, 500, 10, positions)
    assert len(state.ticks) > 500
    crossed = []
    for index in range(600):
        amount, zero_for_one = int(10 ** rng.uniform(18.0, 25.0)), index % 2 == 0
        expected = stepwise_swap(
            state, zero_for_one, amount, MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
        )
        assert quote_exact_input(state, amount, zero_for_one) == expected
        crossed.append(expected.initialized_ticks_crossed)
        if index % 3 == 0:
            state = state.after(expected)
    assert max(crossed) > 100
