"""A real anvil node with the real Uniswap v3 contracts, for the EVM connector tests.

Session-scoped: one anvil, one deployment (factory, two ERC-20s, a 0.05% pool with liquidity in many
overlapping ranges, NonfungiblePositionManager, SwapRouter, QuoterV2); each test runs between an
`evm_snapshot` and an `evm_revert`, so the chain is the same at the start of every test.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest_asyncio
from eth_account import Account
from eth_typing import ChecksumAddress
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.contract import AsyncContract
from web3.types import RPCEndpoint

from connectors.evm.anvil import AnvilNode, start_anvil
from connectors.evm.uniswap_artifacts import contract_at, deploy, load_artifact
from pricing.amm import get_sqrt_ratio_at_tick

FEE = 500  # pips: the 0.05% tier, tick spacing 10, so a bitmap word spans 2560 ticks
TOKEN_SUPPLY = 10**30  # base units of each test token (18 decimals), all minted to the deployer
POSITIONS = 48  # liquidity ranges minted through the position manager
SEED = 20240605
DEADLINE = 2**32  # far-future deadline (seconds) for periphery calls
UNUSED = AsyncWeb3.to_checksum_address("0x" + "11" * 20)  # WETH9 / token descriptor: never called here


@dataclass
class V3Deployment:
    """Addresses and contract handles of the deployed v3 set; token0 < token1 by address."""

    w3: AsyncWeb3[Any]
    deployer: ChecksumAddress
    factory: AsyncContract
    token0: AsyncContract
    token1: AsyncContract
    pool: AsyncContract
    position_manager: AsyncContract
    router: AsyncContract
    quoter: AsyncContract
    fee: int
    tick_spacing: int

    async def read_slot0(self) -> tuple[int, int, int]:
        """(sqrtPriceX96 in Q64.96, tick, in-range liquidity) as the pool holds them now."""
        slot0, liquidity = await asyncio.gather(
            self.pool.functions.slot0().call(), self.pool.functions.liquidity().call()
        )
        return int(slot0[0]), int(slot0[1]), int(liquidity)

    async def balances(self) -> tuple[int, int]:
        """The deployer's (token0, token1) balances in base units."""
        b0, b1 = await asyncio.gather(
            self.token0.functions.balanceOf(self.deployer).call(),
            self.token1.functions.balanceOf(self.deployer).call(),
        )
        return int(b0), int(b1)


async def _send(w3: AsyncWeb3[Any], call: Any, sender: ChecksumAddress) -> None:
    """Send a contract call as a transaction from `sender`; fail loudly if it reverts."""
    tx_hash = await call.transact({"from": sender})
    receipt = await w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt["status"] == 1, f"transaction {tx_hash.to_0x_hex()} reverted"


async def deploy_v3(w3: AsyncWeb3[Any], rng: random.Random) -> V3Deployment:
    """Deploy the v3 set and a pool with `POSITIONS` random overlapping liquidity ranges around tick ~0."""
    deployer = (await w3.eth.accounts)[0]
    factory = await deploy(w3, load_artifact("UniswapV3Factory"))
    token_a = await deploy(w3, load_artifact("ERC20"), TOKEN_SUPPLY)
    token_b = await deploy(w3, load_artifact("ERC20"), TOKEN_SUPPLY)
    token0, token1 = sorted((token_a, token_b), key=lambda token: int(token.address, 16))
    position_manager = await deploy(
        w3, load_artifact("NonfungiblePositionManager"), factory.address, UNUSED, UNUSED
    )
    router = await deploy(w3, load_artifact("SwapRouter"), factory.address, UNUSED)
    quoter = await deploy(w3, load_artifact("QuoterV2"), factory.address, UNUSED)

    await _send(w3, factory.functions.createPool(token0.address, token1.address, FEE), deployer)
    pool_address = await factory.functions.getPool(token0.address, token1.address, FEE).call()
    pool = contract_at(w3, "UniswapV3Pool", pool_address)
    spacing = int(await pool.functions.tickSpacing().call())
    # a price strictly inside a tick (not on a boundary), so the first step starts mid-tick
    start = get_sqrt_ratio_at_tick(37) + rng.randrange(1, 2**80)
    await _send(w3, pool.functions.initialize(start), deployer)

    for token in (token0, token1):
        for spender in (position_manager.address, router.address):
            await _send(w3, token.functions.approve(spender, 2**256 - 1), deployer)
    for index in range(POSITIONS):
        if index < 4:
            # a few wide ranges, so swaps walk many empty bitmap words between initialized ticks
            half = rng.randrange(20_000, 200_000) // spacing * spacing
            lower, upper = -half, half
        else:
            lower = rng.randrange(-6_000, 5_000) // spacing * spacing
            upper = lower + rng.randrange(1, 800) * spacing
        params = {
            "token0": token0.address,
            "token1": token1.address,
            "fee": FEE,
            "tickLower": lower,
            "tickUpper": upper,
            "amount0Desired": rng.randrange(10**18, 10**22),
            "amount1Desired": rng.randrange(10**18, 10**22),
            "amount0Min": 0,
            "amount1Min": 0,
            "recipient": deployer,
            "deadline": DEADLINE,
        }
        await _send(w3, position_manager.functions.mint(params), deployer)
    return V3Deployment(
        w3, deployer, factory, token0, token1, pool, position_manager, router, quoter, FEE, spacing
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def anvil() -> AsyncIterator[AnvilNode]:
    """A fresh anvil on a free 127.0.0.1 port for the session, killed by pid at the end."""
    node = await start_anvil("--disable-code-size-limit")
    try:
        yield node
    finally:
        await node.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def w3(anvil: AnvilNode) -> AsyncIterator[AsyncWeb3[Any]]:
    """An AsyncWeb3 on the session's anvil over HTTP."""
    web3 = AsyncWeb3(AsyncHTTPProvider(anvil.url))
    try:
        yield web3
    finally:
        await web3.provider.disconnect()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def v3_deployed(w3: AsyncWeb3[Any]) -> V3Deployment:
    """The v3 deployment, made once per session."""
    return await deploy_v3(w3, random.Random(SEED))


@pytest_asyncio.fixture(loop_scope="session")
async def v3(v3_deployed: V3Deployment) -> AsyncIterator[V3Deployment]:
    """The v3 deployment, with the chain reverted to its state before the test afterwards."""
    w3 = v3_deployed.w3
    snapshot = (await w3.provider.make_request(RPCEndpoint("evm_snapshot"), []))["result"]
    try:
        yield v3_deployed
    finally:
        reverted = await w3.provider.make_request(RPCEndpoint("evm_revert"), [snapshot])
        assert reverted["result"] is True


@dataclass
class V2Deployment:
    """A Uniswap v2 factory and one pair of two test ERC-20s with liquidity; token0 < token1."""

    w3: AsyncWeb3[Any]
    deployer: ChecksumAddress
    factory: AsyncContract
    token0: AsyncContract
    token1: AsyncContract
    pair: AsyncContract

    async def send(self, call: Any) -> None:
        """Send a contract call from the deployer as a transaction; fail loudly if it reverts."""
        await _send(self.w3, call, self.deployer)


async def deploy_v2(w3: AsyncWeb3[Any], reserve0: int, reserve1: int) -> V2Deployment:
    """Deploy UniswapV2Factory, two ERC-20s and their pair, minted with (reserve0, reserve1) base units."""
    deployer = (await w3.eth.accounts)[0]
    factory = await deploy(w3, load_artifact("UniswapV2Factory"), deployer)
    token_a = await deploy(w3, load_artifact("ERC20"), TOKEN_SUPPLY)
    token_b = await deploy(w3, load_artifact("ERC20"), TOKEN_SUPPLY)
    token0, token1 = sorted((token_a, token_b), key=lambda token: int(token.address, 16))
    await _send(w3, factory.functions.createPair(token0.address, token1.address), deployer)
    pair = contract_at(
        w3, "UniswapV2Pair", await factory.functions.getPair(token0.address, token1.address).call()
    )
    # liquidity the way the router adds it: tokens transferred to the pair, then mint(to)
    await _send(w3, token0.functions.transfer(pair.address, reserve0), deployer)
    await _send(w3, token1.functions.transfer(pair.address, reserve1), deployer)
    await _send(w3, pair.functions.mint(deployer), deployer)
    return V2Deployment(w3, deployer, factory, token0, token1, pair)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def v2_deployed(w3: AsyncWeb3[Any]) -> V2Deployment:
    """The v2 deployment, made once per session: a pair of 1 234.5 token0 and 3 456 789 token1 (18 dp)."""
    return await deploy_v2(w3, 1_234_500_000_000_000_000_000, 3_456_789 * 10**18)


@pytest_asyncio.fixture(loop_scope="session")
async def v2(v2_deployed: V2Deployment) -> AsyncIterator[V2Deployment]:
    """The v2 deployment, with the chain reverted to its state before the test afterwards."""
    w3 = v2_deployed.w3
    snapshot = (await w3.provider.make_request(RPCEndpoint("evm_snapshot"), []))["result"]
    try:
        yield v2_deployed
    finally:
        reverted = await w3.provider.make_request(RPCEndpoint("evm_revert"), [snapshot])
        assert reverted["result"] is True


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def v2_router(v2_deployed: V2Deployment) -> AsyncContract:
    """UniswapV2Router02 (with a WETH9) on the v2 factory; the deployer approved it for both tokens."""
    w3 = v2_deployed.w3
    weth = await deploy(w3, load_artifact("WETH9"))
    router = await deploy(w3, load_artifact("UniswapV2Router02"), v2_deployed.factory.address, weth.address)
    for token in (v2_deployed.token0, v2_deployed.token1):
        await v2_deployed.send(token.functions.approve(router.address, 2**256 - 1))
    return router


@pytest_asyncio.fixture(loop_scope="session")
async def clean_chain(w3: AsyncWeb3[Any]) -> AsyncIterator[AsyncWeb3[Any]]:
    """The session's anvil, reverted after the test to its state before it (evm_snapshot/evm_revert)."""
    snapshot = (await w3.provider.make_request(RPCEndpoint("evm_snapshot"), []))["result"]
    try:
        yield w3
    finally:
        reverted = await w3.provider.make_request(RPCEndpoint("evm_revert"), [snapshot])
        assert reverted["result"] is True


@pytest_asyncio.fixture(loop_scope="session")
async def funded_key(clean_chain: AsyncWeb3[Any]) -> str:
    """A fresh random private key (0x hex) whose account holds 100 ETH on the session's anvil."""
    account = Account.create()
    funding = [account.address, hex(100 * 10**18)]
    await clean_chain.provider.make_request(RPCEndpoint("anvil_setBalance"), funding)
    return str(account.key.to_0x_hex())
