"""Local Uniswap v2 quotes (UniswapV2Pair, pricing.amm) against real swaps on the real pair, to the wei.

For each swap the input is transferred to the pair first (as the router does); then the largest
output the pair's K check accepts must be exactly the local quote: `swap(quote)` succeeds and
`swap(quote + 1)` reverts with 'UniswapV2: K'.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from web3.exceptions import ContractLogicError

from connectors.evm.uniswap_v2 import UniswapV2Pair
from connectors.evm.uniswap_v3 import PoolNotLoadedError
from core.events import PoolState
from pricing.amm import AmmError, InsufficientLiquidityError
from tests.connectors.evm.conftest import V2Deployment

pytestmark = pytest.mark.asyncio(loop_scope="session")

MINIMUM_LIQUIDITY = 1000  # locked by the pair's first mint


async def test_refresh_reads_tokens_and_reserves(v2: V2Deployment) -> None:
    pair = UniswapV2Pair(v2.w3, v2.pair.address.lower())
    with pytest.raises(PoolNotLoadedError):
        pair.quote_exact_input(1, True)
    reserves = await pair.refresh()
    assert reserves == (pair.reserve0, pair.reserve1) == (1_234_500_000_000_000_000_000, 3_456_789 * 10**18)
    assert (pair.token0, pair.token1) == (v2.token0.address, v2.token1.address)
    assert pair.block_number == await v2.w3.eth.block_number
    assert pair.to_pool_state_event(5, "uniswap_v2", "T0/T1", 9) == PoolState(
        5, "uniswap_v2", "T0/T1", 9, reserve0=reserves[0], reserve1=reserves[1]
    )
    with pytest.raises(AmmError):
        pair.quote_exact_input(0, True)
    with pytest.raises(InsufficientLiquidityError):
        pair.quote_exact_output(reserves[1], True)


async def _swap_max_output(v2: V2Deployment, amount_in: int, zero_for_one: bool, quote: int) -> None:
    """Transfer `amount_in` to the pair; assert output `quote` is accepted and `quote + 1` is not; swap."""
    token_in, token_out = (v2.token0, v2.token1) if zero_for_one else (v2.token1, v2.token0)
    await v2.send(token_in.functions.transfer(v2.pair.address, amount_in))

    def swap(amount_out: int) -> Any:
        outs = (0, amount_out) if zero_for_one else (amount_out, 0)
        return v2.pair.functions.swap(*outs, v2.deployer, b"")

    with pytest.raises(ContractLogicError, match="UniswapV2: K"):
        await swap(quote + 1).call({"from": v2.deployer})
    if quote == 0:
        # a zero output is refused by the pair itself (INSUFFICIENT_OUTPUT_AMOUNT); sync() takes the
        # input into the reserves, so it does not count as input of the next swap
        await v2.send(v2.pair.functions.sync())
        return
    await swap(quote).call({"from": v2.deployer})
    before = int(await token_out.functions.balanceOf(v2.deployer).call())
    await v2.send(swap(quote))
    assert int(await token_out.functions.balanceOf(v2.deployer).call()) - before == quote


async def test_local_quotes_equal_the_largest_output_the_pair_accepts(v2: V2Deployment) -> None:
    rng = random.Random(11)
    pair = UniswapV2Pair(v2.w3, v2.pair.address)
    await pair.refresh()
    swaps = 0
    for index in range(24):
        zero_for_one = index % 2 == 0
        reserve_in = pair.reserve0 if zero_for_one else pair.reserve1
        # 1 wei up to ~3x the input reserve (base units), log-uniform
        amount_in = (
            rng.randrange(1, 4) if index < 2 else max(1, int(reserve_in * 10 ** rng.uniform(-20, 0.5)))
        )
        quote = pair.quote_exact_input(amount_in, zero_for_one)
        await _swap_max_output(v2, amount_in, zero_for_one, quote)
        reserves_before = pair.reserve0, pair.reserve1
        await pair.refresh()
        if not quote:
            assert (pair.reserve0, pair.reserve1) == (
                (reserves_before[0] + amount_in, reserves_before[1])
                if zero_for_one
                else (reserves_before[0], reserves_before[1] + amount_in)
            )
        else:
            swaps += 1
            delta_in, delta_out = (amount_in, -quote)
            expected = (
                (reserves_before[0] + delta_in, reserves_before[1] + delta_out)
                if zero_for_one
                else (reserves_before[0] + delta_out, reserves_before[1] + delta_in)
            )
            assert (pair.reserve0, pair.reserve1) == expected
        # exact output: the input it asks for is the least that buys that output
        amount_out = max(1, quote // 2)
        needed = pair.quote_exact_output(amount_out, zero_for_one)
        assert pair.quote_exact_input(needed, zero_for_one) >= amount_out
        assert needed == 1 or pair.quote_exact_input(needed - 1, zero_for_one) < amount_out
    assert swaps >= 20
