"""Nonces on a real anvil: concurrent sends, a session restarted mid-stream, a dropped transaction,
a nonce gap, a nonce taken by another sender, and the node itself restarted mid-transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.types import RPCEndpoint, TxReceipt

from connectors.evm.anvil import AnvilNode, find_anvil, free_port
from connectors.evm.chain import ChainSession, FeePolicy
from connectors.evm.keys import LocalSigner

pytestmark = pytest.mark.asyncio(loop_scope="session")

RECIPIENT = AsyncWeb3.to_checksum_address("0x" + "43" * 20)


async def rpc(w3: AsyncWeb3[Any], method: str, *params: Any) -> Any:
    """A raw JSON-RPC call; its result (fails the test on an error)."""
    reply = await w3.provider.make_request(RPCEndpoint(method), list(params))
    assert "error" not in reply, reply
    return reply["result"]


async def session_for(w3: AsyncWeb3[Any], key: str, **options: Any) -> ChainSession:
    """A started session of `key` on `w3`, polling every 20 ms."""
    signer = LocalSigner.from_hex(key, "test key")
    session = ChainSession(w3, signer, 31337, FeePolicy(Decimal(100)), poll_interval_s=0.02, **options)
    await session.start()
    return session


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `check` until true (fails after 2000 polls: a hang, not a timing assertion)."""
    for _ in range(2000):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def mined_nonces(w3: AsyncWeb3[Any], receipts: list[TxReceipt]) -> list[int]:
    """The nonce each receipt's transaction carries on chain."""
    sent = [await w3.eth.get_transaction(receipt["transactionHash"]) for receipt in receipts]
    return [int(tx["nonce"]) for tx in sent]


async def test_twenty_concurrent_sends_get_consecutive_nonces(
    clean_chain: AsyncWeb3[Any], funded_key: str
) -> None:
    session = await session_for(clean_chain, funded_key)
    start = await clean_chain.eth.get_transaction_count(session.address)
    receipts = await asyncio.gather(*(session.send({"to": RECIPIENT, "value": i + 1}) for i in range(20)))
    assert all(receipt["status"] == 1 for receipt in receipts)
    assert sorted(await mined_nonces(clean_chain, receipts)) == list(range(start, start + 20))
    assert await clean_chain.eth.get_balance(RECIPIENT) == sum(range(1, 21))
    assert (
        session.nonces.next_nonce
        == await clean_chain.eth.get_transaction_count(session.address)
        == start + 20
    )
    assert session.nonces.inflight == {}


async def test_session_restarted_mid_stream(clean_chain: AsyncWeb3[Any], funded_key: str) -> None:
    await rpc(clean_chain, "evm_setAutomine", False)
    try:
        first = await session_for(clean_chain, funded_key)
        waiting = [asyncio.ensure_future(first.send({"to": RECIPIENT, "value": 1})) for _ in range(10)]

        async def all_in_pool() -> bool:
            return await clean_chain.eth.get_transaction_count(first.address, "pending") == 10

        await eventually(all_in_pool, "10 transactions in the mempool")
        for task in waiting:  # the process stops: nobody waits for those ten any more
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)

        second = await session_for(clean_chain, funded_key)  # a fresh process
        assert second.nonces.next_nonce == 10
        later = asyncio.gather(*(second.send({"to": RECIPIENT, "value": 100}) for _ in range(5)))

        async def fifteen_in_pool() -> bool:
            return await clean_chain.eth.get_transaction_count(first.address, "pending") == 15

        await eventually(fifteen_in_pool, "15 transactions in the mempool")
        await rpc(clean_chain, "evm_mine")
        receipts = await later
    finally:
        await rpc(clean_chain, "evm_setAutomine", True)
    assert sorted(await mined_nonces(clean_chain, receipts)) == [10, 11, 12, 13, 14]
    assert await clean_chain.eth.get_transaction_count(second.address) == 15 == second.nonces.next_nonce
    assert await clean_chain.eth.get_balance(RECIPIENT) == 10 * 1 + 5 * 100


async def test_dropped_transaction_is_rebroadcast(clean_chain: AsyncWeb3[Any], funded_key: str) -> None:
    await rpc(clean_chain, "evm_setAutomine", False)
    try:
        session = await session_for(clean_chain, funded_key)
        sends = [asyncio.ensure_future(session.send({"to": RECIPIENT, "value": 10**i})) for i in range(3)]

        async def three_sent() -> bool:
            return len(session.nonces.inflight) == 3

        await eventually(three_sent, "3 transactions sent")
        sent = {nonce: submitted.tx_hash for nonce, submitted in session.nonces.inflight.items()}
        middle = session.nonces.inflight[1]
        await rpc(clean_chain, "anvil_dropTransaction", middle.tx_hash)  # evicted from the mempool
        assert await clean_chain.eth.get_transaction_count(session.address, "pending") == 1  # a gap at 1
        await rpc(clean_chain, "evm_setAutomine", True)
        await rpc(clean_chain, "evm_mine")  # mines nonce 0; nonce 2 waits behind the gap
        receipts = await asyncio.gather(*sends)
    finally:
        await rpc(clean_chain, "evm_setAutomine", True)
    # the same signed transactions were mined: no re-signing, so no double spend
    mined = dict(zip(await mined_nonces(clean_chain, list(receipts)), receipts, strict=True))
    assert {nonce: receipt["transactionHash"].to_0x_hex() for nonce, receipt in mined.items()} == sent
    assert await clean_chain.eth.get_balance(RECIPIENT) == 1 + 10 + 100  # each exactly once
    assert session.nonces.rebroadcasts >= 1  # anvil drops the transactions queued behind it as well
    assert session.nonces.fillers == 0


async def test_nonce_gap_is_filled(clean_chain: AsyncWeb3[Any], funded_key: str) -> None:
    session = await session_for(clean_chain, funded_key)
    first = await session.send({"to": RECIPIENT, "value": 1})
    # the local nonce runs two ahead of the chain (state restored from a stale store, say)
    session.nonces._next = 3
    receipt = await session.send({"to": RECIPIENT, "value": 2})
    assert await mined_nonces(clean_chain, [receipt]) == [3]
    assert session.nonces.fillers == 2
    assert await clean_chain.eth.get_transaction_count(session.address) == 4 == session.nonces.next_nonce
    assert await clean_chain.eth.get_balance(RECIPIENT) == 3  # the fillers sent nothing to anyone else
    ours: dict[int, Any] = {}
    for number in range(first["blockNumber"], receipt["blockNumber"] + 1):
        block = await clean_chain.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            if tx["from"] == session.address:  # type: ignore[index]
                ours[int(tx["nonce"])] = tx  # type: ignore[index]
    for nonce in (1, 2):  # the fillers: nothing to anyone, gas paid by us
        assert (ours[nonce]["to"], ours[nonce]["value"]) == (session.address, 0)


async def test_nonce_taken_by_another_sender_resyncs(clean_chain: AsyncWeb3[Any], funded_key: str) -> None:
    session = await session_for(clean_chain, funded_key)
    # another process with the same key sends nonce 0 behind the session's back
    other = Account.from_key(funded_key).sign_transaction(
        {
            "chainId": 31337,
            "nonce": 0,
            "to": RECIPIENT,
            "value": 5,
            "gas": 21_000,
            "maxFeePerGas": 10**10,
            "maxPriorityFeePerGas": 1,
        }
    )
    await clean_chain.eth.send_raw_transaction(other.raw_transaction)
    receipt = await session.send({"to": RECIPIENT, "value": 7})
    assert await mined_nonces(clean_chain, [receipt]) == [1]
    assert session.nonces.resyncs == 1
    assert await clean_chain.eth.get_balance(RECIPIENT) == 12


async def start_anvil_on(port: int, state: Path) -> AnvilNode:
    """anvil on a given 127.0.0.1 `port`, loading and dumping its state at `state`."""
    args = ("--host", "127.0.0.1", "--port", str(port), "--state", str(state))
    process = await asyncio.create_subprocess_exec(
        str(find_anvil()), *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    node = AnvilNode(process, "127.0.0.1", port, 31337, args)
    probe = AsyncWeb3(AsyncHTTPProvider(node.url))
    try:
        await eventually(probe.is_connected, f"anvil answering on {port}")
    finally:
        await probe.provider.disconnect()
    return node


async def test_node_restart_mid_transaction(tmp_path: Path) -> None:
    state = tmp_path / "anvil-state.json"
    port = free_port()
    node = await start_anvil_on(port, state)
    key = Account.create().key.to_0x_hex()
    w3 = AsyncWeb3(AsyncHTTPProvider(node.url))
    try:
        await rpc(w3, "anvil_setBalance", Account.from_key(key).address, hex(10**19))
        session = await session_for(w3, key)
        await session.send({"to": RECIPIENT, "value": 1})  # mined before the restart: kept in the state
        await rpc(w3, "evm_setAutomine", False)
        pending = asyncio.ensure_future(session.send({"to": RECIPIENT, "value": 20}))

        async def in_pool() -> bool:
            return await w3.eth.get_transaction_count(session.address, "pending") == 2

        await eventually(in_pool, "the second transaction in the mempool")
        await node.stop()  # SIGTERM: anvil dumps blocks and accounts, not its mempool
        node = await start_anvil_on(port, state)  # automining again
        receipt = await pending
        assert receipt["status"] == 1
        assert session.nonces.rebroadcasts == 1
        assert await mined_nonces(w3, [receipt]) == [1]
        assert (
            session.nonces.next_nonce == await w3.eth.get_transaction_count(session.address, "pending") == 2
        )
        assert await w3.eth.get_balance(RECIPIENT) == 21
    finally:
        await w3.provider.disconnect()
        await node.stop()
