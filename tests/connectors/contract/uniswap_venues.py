"""The adapter of `UniswapVenue` on anvil with the real Uniswap v3 contracts.

One anvil and one deployment (`tests.connectors.evm.conftest.deploy_v3`: factory, a 0.05% pool with
liquidity in many ranges, SwapRouter, QuoterV2) per test module; each test gets a fresh account
(100 ETH and tokens from the deployer) and the chain is reverted after it. Anvil mines every
transaction at once, so time passes as a turn of the loop.
"""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from typing import Any, ClassVar

from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.types import RPCEndpoint

from connectors.evm.anvil import AnvilNode, start_anvil
from connectors.evm.chain import ChainSession, FeePolicy
from connectors.evm.keys import LocalSigner
from connectors.evm.uniswap_venue import UniswapPoolSpec, UniswapVenue
from core.instruments import Pool, Spot
from core.orders import Request, SwapRequest
from tests.connectors.contract.adapter import StreamCollector
from tests.connectors.contract.live_venues import LiveAdapter
from tests.connectors.evm.conftest import SEED, V3Deployment, deploy_v3

FUNDS = 10_000 * 10**18


async def rpc(w3: AsyncWeb3[Any], method: str, *params: Any) -> Any:
    reply = await w3.provider.make_request(RPCEndpoint(method), list(params))
    assert "error" not in reply, reply
    return reply["result"]


class Chain:
    """The module's anvil, its web3 and the v3 deployment."""

    def __init__(self, node: AnvilNode, w3: AsyncWeb3[Any], v3: V3Deployment) -> None:
        self.node = node
        self.w3 = w3
        self.v3 = v3


class LazyChain:
    """The module's chain, started on first use (families without anvil never start it)."""

    def __init__(self) -> None:
        self._chain: Chain | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Chain:
        """Start anvil and deploy v3 the first time; the same chain afterwards."""
        async with self._lock:
            if self._chain is None:
                node = await start_anvil("--disable-code-size-limit")
                w3 = AsyncWeb3(AsyncHTTPProvider(node.url))
                self._chain = Chain(node, w3, await deploy_v3(w3, random.Random(SEED)))
            return self._chain

    async def stop(self) -> None:
        """Stop anvil by its pid, if it was started."""
        if self._chain is not None:
            await self._chain.w3.provider.disconnect()
            await self._chain.node.stop()


class UniswapAdapter(LiveAdapter):
    family = "uniswap-v3-anvil"
    tracked = frozenset({"A", "B", "ETH"})
    pairs: ClassVar[dict[str, tuple[str, str]]] = {"A/B": ("A", "B")}

    @classmethod
    async def make(cls, chain: Chain) -> UniswapAdapter:
        self = cls()
        self.chain = chain
        w3, v3 = chain.w3, chain.v3
        self.snapshot_id = await rpc(w3, "evm_snapshot")
        account = Account.create()
        await rpc(w3, "anvil_setBalance", account.address, hex(100 * 10**18))
        for token in (v3.token0, v3.token1):
            tx = await token.functions.transfer(account.address, FUNDS).transact({"from": v3.deployer})
            await w3.eth.wait_for_transaction_receipt(tx)
        signer = LocalSigner.from_hex(account.key.to_0x_hex(), "contract test key")
        session = ChainSession(w3, signer, 31337, FeePolicy(Decimal(100)), poll_interval_s=0.01)
        await session.start()
        pool = Pool("A/B-v3", "uni", 31337, v3.pool.address, "A", "B", v3.fee, 3, v3.tick_spacing)
        spec = UniswapPoolSpec(pool, Spot("A/B", "A", "B"), v3.router.address)
        tokens = {"A": v3.token0.address, "B": v3.token1.address}
        self.venue = UniswapVenue("uni", session, [spec], tokens, poll_interval_s=0.02)
        await self.venue.start()
        self.collector = StreamCollector(self.venue)
        return self

    def valid_request(self, client_order_id: str) -> Request:
        return SwapRequest(client_order_id, "uni", "A/B-v3", "B", "A", amount_in=25 * 10**18 + 7)

    def invalid_request(self, client_order_id: str) -> tuple[Request, str]:
        return SwapRequest(client_order_id, "uni", "A/B-v3", "B", "A", amount_in=FUNDS + 1), "amount_in"

    async def close(self) -> None:
        await self.collector.close()
        await self.venue.close()
        await asyncio.sleep(0)
        assert await rpc(self.chain.w3, "evm_revert", self.snapshot_id) is True
