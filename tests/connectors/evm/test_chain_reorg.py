"""Reorgs of unconfirmed transactions on a real anvil: `anvil_reorg`, and `evm_snapshot`/`evm_revert`
followed by new blocks. The session must notice that the block holding its receipt left the chain,
get the same transaction mined again, and return only a receipt that is canonical and deep enough."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from web3 import AsyncWeb3
from web3.types import RPCEndpoint, TxReceipt

from connectors.evm.chain import ChainSession, FeePolicy
from connectors.evm.keys import LocalSigner

pytestmark = pytest.mark.asyncio(loop_scope="session")

RECIPIENT = AsyncWeb3.to_checksum_address("0x" + "44" * 20)


async def rpc(w3: AsyncWeb3[Any], method: str, *params: Any) -> Any:
    """A raw JSON-RPC call; its result (fails the test on an error)."""
    reply = await w3.provider.make_request(RPCEndpoint(method), list(params))
    assert "error" not in reply, reply
    return reply["result"]


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `check` until true (fails after 2000 polls: a hang, not a timing assertion)."""
    for _ in range(2000):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def mine_until_done(w3: AsyncWeb3[Any], task: asyncio.Future[TxReceipt]) -> TxReceipt:
    """Mine a block every few polls until `task` (a send) returns."""
    for _ in range(500):
        if task.done():
            return task.result()
        await rpc(w3, "evm_mine")
        await asyncio.sleep(0.05)
    raise AssertionError("send never returned")


async def sent_receipt(w3: AsyncWeb3[Any], session: ChainSession) -> TxReceipt:
    """The receipt of the session's only in-flight transaction, once mined."""
    holder: list[TxReceipt] = []

    async def mined() -> bool:
        for submitted in session.nonces.inflight.values():
            reply = await w3.provider.make_request(
                RPCEndpoint("eth_getTransactionReceipt"), [submitted.tx_hash]
            )
            if reply.get("result"):
                holder.append(await w3.eth.get_transaction_receipt(submitted.tx_hash))  # type: ignore[arg-type]
                return True
        return False

    await eventually(mined, "the transaction mined")
    return holder[0]


async def assert_canonical(w3: AsyncWeb3[Any], receipt: TxReceipt, depth: int) -> None:
    """`receipt`'s block is the chain's block at its height, at least `depth` deep."""
    block = await w3.eth.get_block(receipt["blockNumber"])
    assert block["hash"] == receipt["blockHash"]
    assert await w3.eth.block_number - receipt["blockNumber"] + 1 >= depth


@pytest.mark.parametrize("how", ["anvil_reorg", "evm_revert"])
async def test_reorged_out_transaction_is_mined_again(
    how: str, clean_chain: AsyncWeb3[Any], funded_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="connectors.evm.chain")
    signer = LocalSigner.from_hex(funded_key, "test key")
    session = ChainSession(
        clean_chain, signer, 31337, FeePolicy(Decimal(100)), confirmations=3, poll_interval_s=0.02
    )
    await session.start()
    snapshot = await rpc(clean_chain, "evm_snapshot")
    task = asyncio.ensure_future(session.send({"to": RECIPIENT, "value": 77}))
    first = await sent_receipt(clean_chain, session)

    async def seen_by_session() -> bool:  # the session saw the receipt at depth 1 (it needs 3)
        return f"receipt of {first['transactionHash'].to_0x_hex()} seen in block" in caplog.text

    await eventually(seen_by_session, "the session saw the receipt")
    assert not task.done()
    if how == "anvil_reorg":
        await rpc(clean_chain, "anvil_reorg", 1, [])  # replaces the block that held it
    else:
        await rpc(clean_chain, "evm_revert", snapshot)  # the chain forgets the block
        await rpc(clean_chain, "evm_mine")  # and grows another one at that height
    replaced = await clean_chain.eth.get_block(first["blockNumber"])
    assert replaced["hash"] != first["blockHash"]

    receipt = await mine_until_done(clean_chain, task)
    assert receipt["transactionHash"] == first["transactionHash"]  # the same signed transaction
    assert receipt["blockHash"] != first["blockHash"]
    await assert_canonical(clean_chain, receipt, 3)
    assert session.reorgs >= 1
    assert await clean_chain.eth.get_balance(RECIPIENT) == 77  # once
    assert await clean_chain.eth.get_transaction_count(session.address) == 1 == session.nonces.next_nonce
