"""Local Uniswap v3 quotes (pricing.amm) against the real QuoterV2 and real swaps on anvil, to the wei.

The pool (see conftest) has liquidity in many overlapping ranges plus a few wide ones, so quotes cross
many initialized ticks and empty bitmap words; sizes run from 1 wei to twice what drains the pool.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from web3.exceptions import ContractLogicError

from connectors.evm.uniswap_v3 import PoolNotLoadedError, UniswapV3Pool
from core.events import PoolState
from pricing.amm import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    AmmError,
    V3PoolState,
    V3SwapResult,
    get_sqrt_ratio_at_tick,
    quote_exact_input,
)
from tests.connectors.evm.conftest import DEADLINE, V3Deployment

pytestmark = pytest.mark.asyncio(loop_scope="session")

# (amount or amountIn/amountOut, sqrtPriceX96After, initializedTicksCrossed), or None for a revert
Quote = tuple[int, int, int] | None


async def test_pool_state_read_from_chain_matches_what_was_minted(v3: V3Deployment) -> None:
    pool = UniswapV3Pool(v3.w3, v3.pool.address.lower())
    with pytest.raises(PoolNotLoadedError):
        pool.quote_exact_input(10**18, True)
    state = await pool.refresh()
    assert pool.state is state and pool.block_number == await v3.w3.eth.block_number
    assert (pool.token0, pool.token1) == (v3.token0.address, v3.token1.address)
    assert (pool.fee, pool.tick_spacing) == (state.fee, state.tick_spacing) == (500, 10)
    assert len(state.ticks) >= 60  # 48 positions, boundaries sometimes shared
    # every position adds +L at its lower tick and -L at its upper: the nets sum to zero, and the
    # liquidity in range is the sum of the nets at or below the current tick
    assert sum(net for _, net in state.ticks) == 0
    assert state.liquidity == sum(net for tick, net in state.ticks if tick <= state.tick) > 0
    event = pool.to_pool_state_event(ts=123, venue="uniswap_v3", pool_id="T0/T1-500", block_number=7)
    assert event == PoolState(
        ts=123,
        venue="uniswap_v3",
        pool="T0/T1-500",
        block_number=7,
        sqrt_price_x96=state.sqrt_price_x96,
        tick=state.tick,
        liquidity=state.liquidity,
    )


async def test_refresh_is_pinned_to_one_block(v3: V3Deployment) -> None:
    pool = UniswapV3Pool(v3.w3, v3.pool.address)
    before = await pool.refresh()
    block_before = pool.block_number
    amount = pool.quote_exact_input(10**21, True).amount_in
    await _swap_and_compare(v3, pool, True, True, amount)
    assert (await pool.refresh()) != before and pool.block_number > block_before
    # an older block reads the state of that block, not a mix with the latest
    assert await pool.refresh(block_before) == before and pool.block_number == block_before


def _local_quote(
    pool: UniswapV3Pool, exact_input: bool, zero_for_one: bool, amount: int, limit: int
) -> Quote:
    """The pool's local (pricing.amm) QuoterV2 result, None where QuoterV2 reverts."""
    try:
        if exact_input:
            result = pool.quote_exact_input(amount, zero_for_one, limit)
            return result.amount_out, result.sqrt_price_x96, result.initialized_ticks_crossed
        result = pool.quote_exact_output(amount, zero_for_one, limit)
        return result.amount_in, result.sqrt_price_x96, result.initialized_ticks_crossed
    except AmmError:
        return None


async def _chain_quote(
    v3: V3Deployment, exact_input: bool, zero_for_one: bool, amount: int, limit: int
) -> Quote:
    """QuoterV2.quoteExact{Input,Output}Single through eth_call, None if it reverts."""
    token_in, token_out = (v3.token0, v3.token1) if zero_for_one else (v3.token1, v3.token0)
    params = {
        "tokenIn": token_in.address,
        "tokenOut": token_out.address,
        "amountIn" if exact_input else "amount": amount,
        "fee": v3.fee,
        "sqrtPriceLimitX96": limit,
    }
    quoter = v3.quoter.functions
    call = quoter.quoteExactInputSingle(params) if exact_input else quoter.quoteExactOutputSingle(params)
    try:
        amount_quoted, sqrt_after, crossed, _gas = await call.call()
    except ContractLogicError:
        return None
    return int(amount_quoted), int(sqrt_after), int(crossed)


def _random_limit(rng: random.Random, state: V3PoolState, zero_for_one: bool) -> int:
    """A price limit (Q64.96) up to 60 000 ticks away in the swap's direction, mid-tick; 0 = none."""
    if rng.random() < 0.7:
        return 0
    if zero_for_one:
        tick = max(MIN_TICK, state.tick - rng.randrange(0, 60_000))
        limit = get_sqrt_ratio_at_tick(tick) + rng.randrange(0, 2**64)
        return limit if MIN_SQRT_RATIO < limit < state.sqrt_price_x96 else 0
    tick = min(MAX_TICK - 1, state.tick + rng.randrange(1, 60_000))
    limit = get_sqrt_ratio_at_tick(tick) + rng.randrange(0, 2**64)
    return limit if state.sqrt_price_x96 < limit < MAX_SQRT_RATIO else 0


def _drain(state: V3PoolState, zero_for_one: bool) -> V3SwapResult:
    """The swap that takes every unit of the output token the pool can give (exact input, partial)."""
    return quote_exact_input(state, 2**200, zero_for_one)


def _random_amount(rng: random.Random, state: V3PoolState, exact_input: bool, zero_for_one: bool) -> int:
    """From 1 wei up to twice the pool's depth in that direction (base units), mostly log-uniform."""
    if rng.random() < 0.08:
        return rng.randrange(1, 1000)
    try:
        drain = _drain(state, zero_for_one)
        depth = drain.amount_in if exact_input else drain.amount_out
    except AmmError:
        depth = 10**24  # nothing left in this direction: any size must revert on both sides
    if rng.random() < 0.15:
        # around the depth: the swaps that run out of liquidity (or just do not)
        return max(1, int(depth * rng.uniform(0.5, 2.0)))
    return max(1, int(depth * 10 ** rng.uniform(-16, 0)))


async def _compare_quotes(
    v3: V3Deployment, pool: UniswapV3Pool, rng: random.Random, count: int
) -> tuple[int, int, int]:
    """`count` random quotes local vs QuoterV2; (quotes that returned, exact-input drains, reverts)."""
    state = pool.state
    cases = []
    for _ in range(count):
        exact_input = rng.random() < 0.5
        zero_for_one = rng.random() < 0.5
        amount = _random_amount(rng, state, exact_input, zero_for_one)
        cases.append((exact_input, zero_for_one, amount, _random_limit(rng, state, zero_for_one)))
    chain = await asyncio.gather(*(_chain_quote(v3, *case) for case in cases))
    returned = drains = reverts = 0
    for case, on_chain in zip(cases, chain, strict=True):
        local = _local_quote(pool, *case)
        assert local == on_chain, f"case (exact_input, zero_for_one, amount, limit) = {case}"
        if on_chain is None:
            reverts += 1
            continue
        returned += 1
        exact_input, zero_for_one, amount, limit = case
        if exact_input and limit == 0 and pool.quote_exact_input(amount, zero_for_one).partial:
            drains += 1
    return returned, drains, reverts


async def _swap_and_compare(
    v3: V3Deployment, pool: UniswapV3Pool, exact_input: bool, zero_for_one: bool, amount: int
) -> V3PoolState:
    """Swap for real through SwapRouter; assert the chain's slot0, liquidity and balances equal the
    local result; return the local state after the swap (the pool's state is not changed)."""
    state = pool.state
    local = (pool.quote_exact_input if exact_input else pool.quote_exact_output)(amount, zero_for_one)
    token_in, token_out = (v3.token0, v3.token1) if zero_for_one else (v3.token1, v3.token0)
    params = {
        "tokenIn": token_in.address,
        "tokenOut": token_out.address,
        "fee": v3.fee,
        "recipient": v3.deployer,
        "deadline": DEADLINE,
        "sqrtPriceLimitX96": 0,
    }
    if exact_input:
        # the local output as the slippage bound: the swap reverts if the chain gives one wei less
        call = v3.router.functions.exactInputSingle(
            params | {"amountIn": amount, "amountOutMinimum": local.amount_out}
        )
    else:
        call = v3.router.functions.exactOutputSingle(
            params | {"amountOut": amount, "amountInMaximum": local.amount_in}
        )
    before = await v3.balances()
    tx_hash = await call.transact({"from": v3.deployer})
    receipt = await v3.w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt["status"] == 1
    after = await v3.balances()
    assert (after[0] - before[0], after[1] - before[1]) == (-local.amount0, -local.amount1)
    state_after = state.after(local)
    assert await v3.read_slot0() == (state_after.sqrt_price_x96, state_after.tick, state_after.liquidity)
    return state_after


async def test_local_quotes_and_swaps_equal_quoter_v2_and_chain(v3: V3Deployment) -> None:
    rng = random.Random(7)
    started = time.perf_counter()
    pool = UniswapV3Pool(v3.w3, v3.pool.address)
    state = await pool.refresh()
    returned = drains = reverts = swaps = crossed_max = 0
    # rounds of random quotes, each followed by a real swap; round 7 drains token1 out of the pool
    plan: list[tuple[bool, bool, float | None]] = [
        (True, True, None),
        (False, False, None),
        (True, False, None),
        (False, True, None),
        (True, True, None),
        (True, False, None),
        (False, True, None),
        (True, True, 2.0),  # exact input of twice the depth: partial, price ends at MIN_SQRT_RATIO + 1
        (False, False, None),
    ]
    for exact_input, zero_for_one, depth_multiple in plan:
        round_returned, round_drains, round_reverts = await _compare_quotes(v3, pool, rng, 36)
        returned, drains, reverts = returned + round_returned, drains + round_drains, reverts + round_reverts
        drain = _drain(state, zero_for_one)
        depth = drain.amount_in if exact_input else drain.amount_out
        fraction = depth_multiple if depth_multiple is not None else 10 ** rng.uniform(-5, -0.1)
        amount = max(1, int(depth * fraction))
        local = (pool.quote_exact_input if exact_input else pool.quote_exact_output)(amount, zero_for_one)
        crossed_max = max(crossed_max, local.initialized_ticks_crossed)
        # the local state follows the swap (not re-read), so later quotes test the evolved tick map
        state = pool.state = await _swap_and_compare(v3, pool, exact_input, zero_for_one, amount)
        swaps += 1
    round_returned, round_drains, round_reverts = await _compare_quotes(v3, pool, rng, 36)
    returned, drains, reverts = returned + round_returned, drains + round_drains, reverts + round_reverts

    # the tick map and the evolved local state still equal a fresh read of the chain
    assert await UniswapV3Pool(v3.w3, v3.pool.address).refresh() == state
    assert await pool.refresh() == state
    elapsed = time.perf_counter() - started
    print(
        f"\n{returned} quotes equal, {drains} partial drains, {reverts} reverts on both sides, "
        f"{swaps} swaps, max {crossed_max} ticks crossed by a swap, {elapsed:.1f} s"
    )
    # the comparison is not vacuous: most quotes return, some drain, swaps cross many ticks
    assert returned >= 250 and drains >= 5 and crossed_max >= 10
