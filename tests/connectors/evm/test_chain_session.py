"""ChainSession on a real anvil: chain id check, EIP-1559 fees and their cap, sends over HTTP and
websocket, confirmations, and reverts decoded from the real contracts' revert data."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from eth_account import Account
from web3 import AsyncWeb3
from web3.types import RPCEndpoint

from connectors.evm.anvil import AnvilNode
from connectors.evm.chain import ChainIdMismatch, ChainSession, FeeCapExceeded, FeePolicy, web3_for_url
from connectors.evm.chainlink import load_contract_artifact
from connectors.evm.keys import LocalSigner
from connectors.evm.revert import TransactionReverted
from connectors.evm.tx_sender import TransactionReverted as SenderTransactionReverted
from connectors.evm.tx_sender import TransactionSender
from connectors.evm.uniswap_artifacts import load_artifact
from core.errors import InvalidInput

pytestmark = pytest.mark.asyncio(loop_scope="session")

GWEI = 10**9
RECIPIENT = AsyncWeb3.to_checksum_address("0x" + "42" * 20)


async def rpc(w3: AsyncWeb3[Any], method: str, *params: Any) -> Any:
    """A raw JSON-RPC call; its result (fails the test on an error)."""
    reply = await w3.provider.make_request(RPCEndpoint(method), list(params))
    assert "error" not in reply, reply
    return reply["result"]


async def session_for(w3: AsyncWeb3[Any], key: str, **options: Any) -> ChainSession:
    """A started session of `key` on `w3` (cap 100 gwei unless `fee_policy` is given)."""
    policy = options.pop("fee_policy", FeePolicy(Decimal(100)))
    session = ChainSession(
        w3, LocalSigner.from_hex(key, "test key"), 31337, policy, poll_interval_s=0.02, **options
    )
    await session.start()
    return session


async def deploy_stock_token(session: ChainSession) -> Any:
    """StockToken deployed through `session` (so its account is the issuer); the contract handle."""
    artifact = load_contract_artifact("StockToken")
    factory = session.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    data = factory.constructor("Tesla xStock", "TSLAx").data_in_transaction
    receipt = await session.send({"data": data, "value": 0})
    return session.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)


@pytest_asyncio.fixture(loop_scope="session")
async def base_fee_restored(clean_chain: AsyncWeb3[Any]) -> AsyncIterator[AsyncWeb3[Any]]:
    """The chain, with anvil's next-block base fee put back after the test (evm_revert keeps it)."""
    history = await clean_chain.eth.fee_history(1, "latest")
    try:
        yield clean_chain
    finally:
        await rpc(clean_chain, "anvil_setNextBlockBaseFeePerGas", hex(history["baseFeePerGas"][-1]))


async def test_refuses_a_node_of_another_chain(w3: AsyncWeb3[Any], funded_key: str) -> None:
    session = ChainSession(w3, LocalSigner.from_hex(funded_key, "k"), 1, FeePolicy(Decimal(100)))
    with pytest.raises(ChainIdMismatch, match="expected 1, node reports 31337"):
        await session.start()


async def test_bad_settings_name_the_field() -> None:
    with pytest.raises(InvalidInput, match="max_fee_gwei"):
        FeePolicy(Decimal("0.0000000001"))
    with pytest.raises(InvalidInput, match="base_fee_multiplier"):
        FeePolicy(Decimal(10), base_fee_multiplier=Decimal("0.5"))
    with pytest.raises(InvalidInput, match="url: scheme must be"):
        web3_for_url("ftp://127.0.0.1:1")


async def test_transfer_over_http_pays_exactly_value_plus_gas(
    clean_chain: AsyncWeb3[Any], funded_key: str
) -> None:
    session = await session_for(clean_chain, funded_key)
    sender: TransactionSender = session  # the pool code's sender protocol
    before = await clean_chain.eth.get_balance(session.address)
    receipt = await sender.send({"to": RECIPIENT, "value": 12_345})
    assert receipt["status"] == 1
    assert await clean_chain.eth.get_balance(RECIPIENT) == 12_345
    paid = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert await clean_chain.eth.get_balance(session.address) == before - 12_345 - paid
    assert session.nonces.next_nonce == await clean_chain.eth.get_transaction_count(session.address) == 1


async def test_websocket_session(anvil: AnvilNode, clean_chain: AsyncWeb3[Any], funded_key: str) -> None:
    signer = LocalSigner.from_hex(funded_key, "k")
    session = await ChainSession.connect(
        anvil.ws_url, signer, 31337, FeePolicy(Decimal(100)), poll_interval_s=0.02
    )
    try:
        receipt = await session.send({"to": RECIPIENT, "value": 7})
    finally:
        await session.close()
    assert receipt["status"] == 1
    assert await clean_chain.eth.get_balance(RECIPIENT) == 7


async def test_fees_from_base_fee_and_node_tip(base_fee_restored: AsyncWeb3[Any], funded_key: str) -> None:
    clean_chain = base_fee_restored
    await rpc(clean_chain, "anvil_setNextBlockBaseFeePerGas", hex(7 * GWEI))
    await rpc(clean_chain, "evm_mine")
    session = await session_for(clean_chain, funded_key, fee_policy=FeePolicy(Decimal(100), Decimal(3)))
    base = (await clean_chain.eth.get_block("latest"))["baseFeePerGas"]
    tip = int(await rpc(clean_chain, "eth_maxPriorityFeePerGas"), 16)
    assert base == 7 * GWEI
    receipt = await session.send({"to": RECIPIENT, "value": 1})
    sent = await clean_chain.eth.get_transaction(receipt["transactionHash"])
    assert sent["maxPriorityFeePerGas"] == tip
    assert sent["maxFeePerGas"] == 3 * base + tip
    assert sent["type"] == 2


async def test_max_fee_clamped_to_the_cap(base_fee_restored: AsyncWeb3[Any], funded_key: str) -> None:
    clean_chain = base_fee_restored
    await rpc(clean_chain, "anvil_setNextBlockBaseFeePerGas", hex(10 * GWEI))
    await rpc(clean_chain, "evm_mine")
    session = await session_for(clean_chain, funded_key, fee_policy=FeePolicy(Decimal(15)))
    receipt = await session.send({"to": RECIPIENT, "value": 1})
    sent = await clean_chain.eth.get_transaction(receipt["transactionHash"])
    assert sent["maxFeePerGas"] == 15 * GWEI  # 2 x 10 gwei + tip, clamped


async def test_fee_above_the_cap_is_refused_and_nothing_sent(
    base_fee_restored: AsyncWeb3[Any], funded_key: str
) -> None:
    clean_chain = base_fee_restored
    await rpc(clean_chain, "anvil_setNextBlockBaseFeePerGas", hex(50 * GWEI))
    await rpc(clean_chain, "evm_mine")
    session = await session_for(clean_chain, funded_key, fee_policy=FeePolicy(Decimal(20)))
    head = await clean_chain.eth.block_number
    with pytest.raises(FeeCapExceeded, match=r"fee needed 51 gwei .* exceeds max_fee_gwei 20; not sent"):
        await session.send({"to": RECIPIENT, "value": 1})
    assert await clean_chain.eth.get_transaction_count(session.address, "pending") == 0
    assert await clean_chain.eth.block_number == head
    assert session.nonces.next_nonce == 0


async def test_confirmations_wait_for_depth(clean_chain: AsyncWeb3[Any], funded_key: str) -> None:
    session = await session_for(clean_chain, funded_key, confirmations=3)
    task = asyncio.ensure_future(session.send({"to": RECIPIENT, "value": 5}))
    for _ in range(1000):  # until the node mined it (automine)
        if await clean_chain.eth.get_transaction_count(session.address) == 1:
            break
        await asyncio.sleep(0.01)
    mined_in = await clean_chain.eth.block_number
    for _ in range(2):
        await asyncio.sleep(0.2)  # ten polls: not done while fewer than 3 blocks deep
        assert not task.done()
        await rpc(clean_chain, "evm_mine")
    receipt = await task
    assert receipt["blockNumber"] == mined_in
    assert await clean_chain.eth.block_number == mined_in + 2


async def test_revert_string_from_a_mined_transaction(clean_chain: AsyncWeb3[Any], funded_key: str) -> None:
    session = await session_for(clean_chain, funded_key)
    artifact = load_artifact("ERC20")  # v2-core test token: SafeMath require strings
    factory = clean_chain.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    created = await session.send({"data": factory.constructor(1000).data_in_transaction})
    token = clean_chain.eth.contract(address=created["contractAddress"], abi=artifact.abi)
    data = token.encode_abi("transfer", args=[RECIPIENT, 1001])
    with pytest.raises(TransactionReverted) as mined:
        await session.send({"to": token.address, "data": data, "gas": 100_000})
    error = mined.value
    assert isinstance(error, SenderTransactionReverted)  # caught by code written against the protocol
    assert error.revert.kind == "error"
    assert error.reason == "ds-math-sub-underflow"
    assert error.tx_hash is not None
    on_chain = await clean_chain.eth.get_transaction_receipt(error.tx_hash)  # type: ignore[arg-type]
    assert on_chain["status"] == 0
    assert on_chain["blockNumber"] == error.block_number
    assert "reverted: ds-math-sub-underflow" in str(error)
    # without a gas limit the estimate reverts first: nothing is sent, the nonce is not used
    sent_before = await clean_chain.eth.get_transaction_count(session.address)
    with pytest.raises(
        TransactionReverted, match=r"transaction \(not sent\) reverted: ds-math-sub-underflow"
    ):
        await session.send({"to": token.address, "data": data})
    assert await clean_chain.eth.get_transaction_count(session.address, "pending") == sent_before
    assert session.nonces.next_nonce == sent_before


async def test_panic_and_custom_errors(clean_chain: AsyncWeb3[Any], funded_key: str) -> None:
    issuer = await session_for(clean_chain, funded_key)
    token = await deploy_stock_token(issuer)
    mint_max = token.encode_abi("mint", args=[issuer.address, 2**256 - 1])
    await issuer.send({"to": token.address, "data": mint_max})
    with pytest.raises(TransactionReverted) as overflow:
        await issuer.send({"to": token.address, "data": token.encode_abi("mint", args=[issuer.address, 1])})
    assert overflow.value.revert.kind == "panic"
    assert overflow.value.revert.panic_code == 0x11
    assert overflow.value.reason == "Panic(0x11): arithmetic overflow or underflow"

    stranger_key = Account.create().key.to_0x_hex()
    await rpc(clean_chain, "anvil_setBalance", Account.from_key(stranger_key).address, hex(10**18))
    stranger = await session_for(clean_chain, stranger_key)
    call = {"to": token.address, "data": token.encode_abi("mint", args=[stranger.address, 1]), "gas": 80_000}
    with pytest.raises(TransactionReverted) as custom:
        await stranger.send(call, abi=token.abi)
    assert custom.value.revert.kind == "custom"
    assert custom.value.reason == "NotIssuer()"
    assert custom.value.tx_hash is not None
    with pytest.raises(TransactionReverted) as unnamed:
        await stranger.send(call)  # no ABI: the selector alone
    selector = AsyncWeb3.keccak(text="NotIssuer()")[:4].hex()
    assert unnamed.value.reason == f"unrecognised revert data 0x{selector}"


async def test_tx_fields_the_session_owns_are_refused(clean_chain: AsyncWeb3[Any], funded_key: str) -> None:
    session = await session_for(clean_chain, funded_key)
    with pytest.raises(InvalidInput, match="tx.nonce"):
        await session.send({"to": RECIPIENT, "nonce": 3})
    with pytest.raises(InvalidInput, match="tx.from"):
        await session.send({"to": RECIPIENT, "from": RECIPIENT})
    with pytest.raises(InvalidInput, match="confirmations"):
        await session.send({"to": RECIPIENT}, confirmations=0)


async def test_priority_fee_cap(base_fee_restored: AsyncWeb3[Any], funded_key: str) -> None:
    policy = FeePolicy(Decimal(100), max_priority_fee_gwei=Decimal("0.25"))
    session = await session_for(base_fee_restored, funded_key, fee_policy=policy)
    tip = int(await rpc(base_fee_restored, "eth_maxPriorityFeePerGas"), 16)
    assert tip > GWEI // 4  # the node suggests more than the cap
    receipt = await session.send({"to": RECIPIENT, "value": 1})
    sent = await base_fee_restored.eth.get_transaction(receipt["transactionHash"])
    block = await base_fee_restored.eth.get_block(receipt["blockNumber"] - 1)
    assert sent["maxPriorityFeePerGas"] == GWEI // 4
    assert sent["maxFeePerGas"] == 2 * block["baseFeePerGas"] + GWEI // 4
