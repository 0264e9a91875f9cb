"""`pool.swap` through the real routers on anvil: executed amounts equal the local quote to the wei;
the slippage bound and the deadline make the real routers revert with their own reasons.

The sender is anvil's unlocked dev account through eth_sendTransaction (`UnlockedAccountSender`).
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest
from web3.contract import AsyncContract

from connectors.evm.tx_sender import TransactionReverted, UnlockedAccountSender
from connectors.evm.uniswap_v2 import UniswapV2Pair
from connectors.evm.uniswap_v3 import UniswapV3Pool, slippage_bounds
from tests.connectors.evm.conftest import V2Deployment, V3Deployment

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _latest_timestamp(w3: Any) -> int:
    return int((await w3.eth.get_block("latest"))["timestamp"])


async def test_slippage_bounds_round_against_the_trader() -> None:
    assert slippage_bounds(1000, Decimal("0.005"), True) == 995
    assert slippage_bounds(999, Decimal("0.005"), True) == 994  # 994.005 floored
    assert slippage_bounds(999, Decimal("0.005"), False) == 1004  # 1003.995 ceiled
    assert slippage_bounds(10**18, Decimal(0), True) == 10**18
    for bad in (Decimal(1), Decimal("-0.1"), Decimal("NaN"), 0.01):
        with pytest.raises(ValueError, match="slippage"):
            slippage_bounds(1000, bad, True)  # type: ignore[arg-type]


async def test_v3_swaps_execute_the_local_quote_to_the_wei(v3: V3Deployment) -> None:
    sender = UnlockedAccountSender(v3.w3, v3.deployer)
    pool = UniswapV3Pool(v3.w3, v3.pool.address)
    await pool.refresh()
    rng = random.Random(11)
    for exact_input, zero_for_one in [(True, True), (False, False), (True, False), (False, True)] * 2:
        amount = rng.randrange(10**17, 10**22)
        quote = (pool.quote_exact_input if exact_input else pool.quote_exact_output)(amount, zero_for_one)
        before = await v3.balances()
        executed = await pool.swap(
            sender, v3.router.address, amount, zero_for_one, exact_input=exact_input, slippage=Decimal(0)
        )
        after = await v3.balances()
        # the Swap log, the balances and the local quote agree to the wei
        assert (executed.amount0, executed.amount1) == (quote.amount0, quote.amount1)
        assert (after[0] - before[0], after[1] - before[1]) == (-quote.amount0, -quote.amount1)
        assert (executed.amount_in, executed.amount_out) == (quote.amount_in, quote.amount_out)
        assert executed.quoted == (quote.amount_out if exact_input else quote.amount_in)
        assert (executed.sqrt_price_x96, executed.tick, executed.liquidity) == (
            quote.sqrt_price_x96,
            quote.tick,
            quote.liquidity,
        )
        assert executed.block_number == await v3.w3.eth.block_number and executed.gas_used > 21_000
        assert await v3.read_slot0() == (quote.sqrt_price_x96, quote.tick, quote.liquidity)
        pool.state = pool.state.after(quote)


async def test_v3_swap_past_the_slippage_bound_reverts(v3: V3Deployment) -> None:
    sender = UnlockedAccountSender(v3.w3, v3.deployer)
    stale = UniswapV3Pool(v3.w3, v3.pool.address)
    await stale.refresh()
    # someone else's swap in the same direction moves the price after our quote was taken
    front_runner = UniswapV3Pool(v3.w3, v3.pool.address)
    await front_runner.refresh()
    await front_runner.swap(sender, v3.router.address, 10**20, True)
    balances = await v3.balances()
    with pytest.raises(TransactionReverted, match="Too little received") as raised:
        await stale.swap(sender, v3.router.address, 10**19, True, slippage=Decimal(0))
    assert raised.value.reason == "Too little received"
    with pytest.raises(TransactionReverted, match="Too much requested"):
        await stale.swap(sender, v3.router.address, 10**19, True, exact_input=False, slippage=Decimal(0))
    assert await v3.balances() == balances  # nothing moved
    # a wide enough bound lets it through, with less than quoted
    executed = await stale.swap(sender, v3.router.address, 10**19, True, slippage=Decimal("0.5"))
    assert slippage_bounds(executed.quoted, Decimal("0.5"), True) <= executed.amount_out < executed.quoted


async def test_v3_swap_past_its_deadline_reverts(v3: V3Deployment) -> None:
    sender = UnlockedAccountSender(v3.w3, v3.deployer)
    pool = UniswapV3Pool(v3.w3, v3.pool.address)
    await pool.refresh()
    expired = await _latest_timestamp(v3.w3) - 1
    with pytest.raises(TransactionReverted, match="Transaction too old"):
        await pool.swap(sender, v3.router.address, 10**18, False, deadline=expired)
    with pytest.raises(ValueError, match="amount"):
        await pool.swap(sender, v3.router.address, 0, False)


async def test_v2_swaps_execute_the_local_quote_to_the_wei(
    v2_router: AsyncContract, v2: V2Deployment
) -> None:
    sender = UnlockedAccountSender(v2.w3, v2.deployer)
    pair = UniswapV2Pair(v2.w3, v2.pair.address)
    await pair.refresh()
    rng = random.Random(5)
    for exact_input, zero_for_one in [(True, True), (False, False), (True, False), (False, True)] * 2:
        reserve_out = pair.reserve1 if zero_for_one else pair.reserve0
        amount = rng.randrange(10**12, reserve_out // 3)
        quoted = (pair.quote_exact_input if exact_input else pair.quote_exact_output)(amount, zero_for_one)
        executed = await pair.swap(
            sender, v2_router.address, amount, zero_for_one, exact_input=exact_input, slippage=Decimal(0)
        )
        amount_in, amount_out = (amount, quoted) if exact_input else (quoted, amount)
        assert (executed.amount_in, executed.amount_out, executed.quoted) == (amount_in, amount_out, quoted)
        signed_in, signed_out = (amount_in, -amount_out)
        assert (executed.amount0, executed.amount1) == (
            (signed_in, signed_out) if zero_for_one else (signed_out, signed_in)
        )
        reserves = await pair.refresh()
        assert (executed.reserve0, executed.reserve1) == reserves


async def test_v2_swap_past_the_bound_or_the_deadline_reverts(
    v2_router: AsyncContract, v2: V2Deployment
) -> None:
    sender = UnlockedAccountSender(v2.w3, v2.deployer)
    stale = UniswapV2Pair(v2.w3, v2.pair.address)
    await stale.refresh()
    mover = UniswapV2Pair(v2.w3, v2.pair.address)
    await mover.refresh()
    await mover.swap(sender, v2_router.address, 10**20, False)  # token1 in: token0 gets dearer
    with pytest.raises(TransactionReverted, match="UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT"):
        await stale.swap(sender, v2_router.address, 10**20, False, slippage=Decimal(0))
    with pytest.raises(TransactionReverted, match="UniswapV2Router: EXCESSIVE_INPUT_AMOUNT"):
        await stale.swap(sender, v2_router.address, 10**16, False, exact_input=False, slippage=Decimal(0))
    expired = await _latest_timestamp(v2.w3) - 1
    await stale.refresh()
    with pytest.raises(TransactionReverted, match="UniswapV2Router: EXPIRED"):
        await stale.swap(sender, v2_router.address, 10**18, True, deadline=expired)


async def test_sender_reads_the_reason_of_a_revert_mined_on_chain(v3: V3Deployment) -> None:
    sender = UnlockedAccountSender(v3.w3, v3.deployer)
    expired = await _latest_timestamp(v3.w3) - 1
    params = (v3.token1.address, v3.token0.address, v3.fee, v3.deployer, expired, 10**18, 0, 0)
    call = v3.router.functions.exactInputSingle(params)
    block = await v3.w3.eth.block_number
    # with the gas given the node skips estimation: the transaction is mined, reverted (status 0)
    with pytest.raises(TransactionReverted, match="Transaction too old") as raised:
        await sender.send({"to": v3.router.address, "data": call._encode_transaction_data(), "gas": 300_000})
    assert raised.value.tx_hash is not None and await v3.w3.eth.block_number == block + 1
