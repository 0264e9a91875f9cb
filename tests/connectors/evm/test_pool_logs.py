"""Pool state kept current from Swap/Mint/Burn (v3) and Sync (v2) logs, against the real pools on anvil.

The property test runs hundreds of random swaps, mints and burns (full and partial, so ticks get
initialized and cleared) on the pool with many overlapping ranges. After every operation the
log-followed state must be exact: each swap is sent with a zero slippage bound against the
followed state's quote, so the real router reverts if it is off by one wei. At the end the followed
state equals a fresh bitmap `refresh()` and a load from Mint/Burn logs, and its quotes equal QuoterV2.
"""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from typing import Any

import pytest
from web3 import AsyncWeb3, WebSocketProvider
from web3.contract import AsyncContract

from connectors.evm.anvil import AnvilNode
from connectors.evm.pool_logs import PoolLogFollower
from connectors.evm.tx_sender import UnlockedAccountSender
from connectors.evm.uniswap_events import (
    LogDecodeError,
    V3Initialize,
    V3LiquidityChange,
    V3Swap,
    decode_log,
)
from connectors.evm.uniswap_v2 import UniswapV2Pair
from connectors.evm.uniswap_v3 import UniswapV3Pool
from core.events import PoolState
from tests.connectors.evm.conftest import DEADLINE, POSITIONS, V2Deployment, V3Deployment
from tests.connectors.evm.test_uniswap_v3_quoter import _chain_quote, _local_quote

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Operations:
    """Random swaps, mints and burns on the v3 pool, through the real router and position manager."""

    def __init__(self, v3: V3Deployment, pool: UniswapV3Pool, rng: random.Random) -> None:
        self.v3 = v3
        self.pool = pool
        self.rng = rng
        self.sender = UnlockedAccountSender(v3.w3, v3.deployer)
        self.live = list(range(1, POSITIONS + 1))  # position manager token ids
        self.next_id = POSITIONS + 1
        self.counts = {"swap": 0, "mint": 0, "burn": 0, "burn_all": 0}

    async def _send(self, call: Any) -> None:
        receipt = await self.sender.send({"to": call.address, "data": call._encode_transaction_data()})
        assert receipt["status"] == 1

    async def mint(self) -> None:
        rng = self.rng
        spacing = self.v3.tick_spacing
        if rng.random() < 0.3 and self.pool.tick_liquidity:
            lower = rng.choice(sorted(self.pool.tick_liquidity))  # share a tick with another range
        else:
            lower = rng.randrange(-8_000, 8_000) // spacing * spacing
        upper = lower + rng.randrange(1, 600) * spacing
        params = (
            self.v3.token0.address,
            self.v3.token1.address,
            self.v3.fee,
            lower,
            upper,
            rng.randrange(10**15, 10**21),
            rng.randrange(10**15, 10**21),
            0,
            0,
            self.v3.deployer,
            DEADLINE,
        )
        await self._send(self.v3.position_manager.functions.mint(params))
        self.live.append(self.next_id)
        self.next_id += 1
        self.counts["mint"] += 1

    async def burn(self) -> None:
        rng = self.rng
        token_id = rng.choice(self.live)
        liquidity = int((await self.v3.position_manager.functions.positions(token_id).call())[7])
        everything = rng.random() < 0.5
        amount = liquidity if everything else rng.randrange(1, liquidity)
        if everything:
            self.live.remove(token_id)
            self.counts["burn_all"] += 1
        params = (token_id, amount, 0, 0, DEADLINE)
        await self._send(self.v3.position_manager.functions.decreaseLiquidity(params))
        self.counts["burn"] += 1

    async def swap(self) -> None:
        rng = self.rng
        zero_for_one = rng.random() < 0.5
        exact_input = rng.random() < 0.5
        depth = self.pool.quote_exact_input(2**200, zero_for_one)
        fraction = 10 ** rng.uniform(-6, -0.3)
        amount = max(1, int((depth.amount_in if exact_input else depth.amount_out) * fraction))
        # zero slippage against the followed state: the router reverts unless it is exact
        executed = await self.pool.swap(
            self.sender,
            self.v3.router.address,
            amount,
            zero_for_one,
            exact_input=exact_input,
            slippage=Decimal(0),
        )
        assert (
            executed.amount_out == executed.quoted if exact_input else executed.amount_in == executed.quoted
        )
        self.counts["swap"] += 1

    async def random(self) -> None:
        draw = self.rng.random()
        if draw < 0.5:
            await self.swap()
        elif draw < 0.75 or len(self.live) < 10:
            await self.mint()
        else:
            await self.burn()


async def test_followed_state_equals_the_chain_after_random_swaps_mints_burns(v3: V3Deployment) -> None:
    pool = UniswapV3Pool(v3.w3, v3.pool.address)
    follower = PoolLogFollower(pool, venue="uniswap_v3", pool_id="T0/T1-500")
    assert await follower.poll_once() == []  # loads the pool; nothing new yet
    ops = Operations(v3, pool, random.Random(2024))
    events: list[PoolState] = []
    for _ in range(300):
        await ops.random()
        new = await follower.poll_once()
        assert len(new) == 1  # one Swap, Mint or a non-zero Burn per operation
        events.extend(new)
    assert ops.counts["swap"] >= 100 and ops.counts["mint"] >= 50 and ops.counts["burn_all"] >= 20
    assert follower.applied == 300 and [e.block_number for e in events] == sorted(
        e.block_number for e in events
    )
    followed = pool.state
    assert events[-1] == PoolState(
        events[-1].ts,
        "uniswap_v3",
        "T0/T1-500",
        await v3.w3.eth.block_number,
        sqrt_price_x96=followed.sqrt_price_x96,
        tick=followed.tick,
        liquidity=followed.liquidity,
    )

    fresh = UniswapV3Pool(v3.w3, v3.pool.address)
    assert await fresh.refresh() == followed
    assert fresh.tick_liquidity == pool.tick_liquidity  # gross and net of every initialized tick
    from_logs = UniswapV3Pool(v3.w3, v3.pool.address)
    assert await from_logs.refresh_from_logs() == followed
    assert from_logs.tick_liquidity == pool.tick_liquidity

    rng = random.Random(99)
    cases = []
    for _ in range(80):
        exact_input, zero_for_one = rng.random() < 0.5, rng.random() < 0.5
        depth = pool.quote_exact_input(2**200, zero_for_one)
        amount = max(
            1, int((depth.amount_in if exact_input else depth.amount_out) * 10 ** rng.uniform(-8, 0.2))
        )
        cases.append((exact_input, zero_for_one, amount, 0))
    chain = await asyncio.gather(*(_chain_quote(v3, *case) for case in cases))
    local = [_local_quote(pool, *case) for case in cases]
    assert local == chain
    assert sum(quote is not None for quote in chain) >= 70


async def test_websocket_subscription_follows_the_pool(v3: V3Deployment, anvil: AnvilNode) -> None:
    pool_http = UniswapV3Pool(v3.w3, v3.pool.address)
    http_follower = PoolLogFollower(pool_http, venue="uniswap_v3", pool_id="p")
    await http_follower.poll_once()
    ops = Operations(v3, pool_http, random.Random(8))
    async with AsyncWeb3(WebSocketProvider(anvil.ws_url)) as ws:
        pool = UniswapV3Pool(ws, v3.pool.address)
        await pool.refresh()
        # one operation before the follower starts: the catch-up through eth_getLogs must apply it
        await ops.mint()
        await http_follower.poll_once()
        follower = PoolLogFollower(pool, venue="uniswap_v3", pool_id="p")
        stream = follower.events()
        received: list[PoolState] = []

        async def consume(count: int) -> None:
            async for event in stream:
                received.append(event)
                if len(received) == count:
                    return

        first = asyncio.create_task(consume(1))
        await asyncio.wait_for(first, 30)
        for _ in range(40):
            await ops.random()  # quoted on the HTTP-polled copy, which must be exact too
            await http_follower.poll_once()
        await asyncio.wait_for(consume(41), 60)
        await stream.aclose()
    fresh = UniswapV3Pool(v3.w3, v3.pool.address)
    assert await fresh.refresh() == pool.state == pool_http.state
    assert pool.tick_liquidity == fresh.tick_liquidity
    assert received[-1].block_number == await v3.w3.eth.block_number
    assert (received[-1].sqrt_price_x96, received[-1].tick, received[-1].liquidity) == await v3.read_slot0()


async def test_decoded_logs_equal_web3_abi_decoding(v3: V3Deployment) -> None:
    sender = UnlockedAccountSender(v3.w3, v3.deployer)
    pool = UniswapV3Pool(v3.w3, v3.pool.address)
    await pool.refresh()
    await pool.swap(sender, v3.router.address, 10**21, True)  # price goes down: negative ticks
    logs = await v3.w3.eth.get_logs({"address": v3.pool.address, "fromBlock": 0, "toBlock": "latest"})
    seen = set()
    for raw in logs:
        decoded = decode_log(raw)
        for name in ("Swap", "Mint", "Burn", "Initialize"):
            try:
                reference = getattr(v3.pool.events, name)().process_log(raw)["args"]
            except Exception:
                continue
            seen.add(name)
            if name == "Swap":
                assert isinstance(decoded, V3Swap)
                assert decoded[1:] == (
                    reference["amount0"],
                    reference["amount1"],
                    reference["sqrtPriceX96"],
                    reference["liquidity"],
                    reference["tick"],
                )
            elif name == "Initialize":
                assert isinstance(decoded, V3Initialize)
                assert decoded == V3Initialize(decoded.position, reference["sqrtPriceX96"], reference["tick"])
            else:
                assert isinstance(decoded, V3LiquidityChange)
                sign = 1 if name == "Mint" else -1
                assert decoded[1:] == (
                    reference["tickLower"],
                    reference["tickUpper"],
                    sign * reference["amount"],
                    reference["amount0"],
                    reference["amount1"],
                )
    assert {"Swap", "Mint", "Initialize"} <= seen
    with pytest.raises(LogDecodeError, match="v3 Swap"):
        decode_log({**logs[-1], "data": b"\x00" * 64})
    assert decode_log({**logs[-1], "topics": [b"\x01" * 32]}) is None  # another event


async def test_v2_reserves_follow_sync_logs(v2_router: AsyncContract, v2: V2Deployment) -> None:
    sender = UnlockedAccountSender(v2.w3, v2.deployer)
    pair = UniswapV2Pair(v2.w3, v2.pair.address)
    follower = PoolLogFollower(pair, venue="uniswap_v2", pool_id="T0/T1")
    await follower.poll_once()
    trader = UniswapV2Pair(v2.w3, v2.pair.address)
    rng = random.Random(3)
    for _ in range(12):
        await trader.refresh()
        await trader.swap(sender, v2_router.address, rng.randrange(10**15, 10**21), rng.random() < 0.5)
        (event,) = await follower.poll_once()
        reserves = await trader.refresh()
        assert (event.reserve0, event.reserve1) == reserves == (pair.reserve0, pair.reserve1)
    # liquidity added straight to the pair (mint) also moves the reserves through Sync
    await v2.send(v2.token0.functions.transfer(v2.pair.address, 10**18))
    await v2.send(v2.pair.functions.sync())
    (event,) = await follower.poll_once()
    assert (event.reserve0, event.reserve1) == await trader.refresh()
