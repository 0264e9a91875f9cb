"""ERC-20 on a real anvil against the real tokens: v2-core's test ERC20 (SafeMath, require strings)
and the project's StockToken (issuer-only mint/burn, scheduled UI multiplier, custom errors)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st
from web3 import AsyncWeb3
from web3.types import RPCEndpoint

from connectors.evm.chain import ChainSession, FeePolicy
from connectors.evm.chainlink import load_contract_artifact
from connectors.evm.erc20 import (
    ERC20,
    MAX_UINT256,
    StockToken,
    displayed_amount,
    from_base_units,
    to_base_units,
)
from connectors.evm.keys import LocalSigner
from connectors.evm.revert import TransactionReverted
from connectors.evm.uniswap_artifacts import load_artifact
from core.errors import InvalidInput

SUPPLY = 10**24  # base units of the test token minted to the deployer
SPENDER = AsyncWeb3.to_checksum_address("0x" + "51" * 20)
OTHER = AsyncWeb3.to_checksum_address("0x" + "52" * 20)
ONE = 10**18  # UI multiplier 1x


async def rpc(w3: AsyncWeb3[Any], method: str, *params: Any) -> Any:
    """A raw JSON-RPC call; its result (fails the test on an error)."""
    reply = await w3.provider.make_request(RPCEndpoint(method), list(params))
    assert "error" not in reply, reply
    return reply["result"]


async def session_for(w3: AsyncWeb3[Any], key: str) -> ChainSession:
    """A started session of `key` on `w3`."""
    signer = LocalSigner.from_hex(key, "test key")
    session = ChainSession(w3, signer, 31337, FeePolicy(Decimal(100)), poll_interval_s=0.02)
    await session.start()
    return session


async def funded_session(w3: AsyncWeb3[Any]) -> ChainSession:
    """A session of a fresh account holding 10 ETH."""
    key = Account.create().key.to_0x_hex()
    await rpc(w3, "anvil_setBalance", Account.from_key(key).address, hex(10 * 10**18))
    return await session_for(w3, key)


async def deploy_with(session: ChainSession, abi: Any, bytecode: str, *args: Any) -> str:
    """Deploy through `session` (its account becomes the deployer); the contract address."""
    factory = session.w3.eth.contract(abi=abi, bytecode=bytecode)
    receipt = await session.send({"data": factory.constructor(*args).data_in_transaction})
    return str(receipt["contractAddress"])


async def v2_test_token(session: ChainSession, **options: Any) -> ERC20:
    """v2-core's test ERC20 with `SUPPLY` minted to the session's account."""
    artifact = load_artifact("ERC20")
    address = await deploy_with(session, artifact.abi, artifact.bytecode, SUPPLY)
    return ERC20(session.w3, address, session=session, **options)


async def stock_token(session: ChainSession) -> StockToken:
    """The project's StockToken, issued by the session's account."""
    artifact = load_contract_artifact("StockToken")
    address = await deploy_with(session, artifact.abi, artifact.bytecode, "Tesla xStock", "TSLAx")
    return StockToken(session.w3, address, session=session)


def test_unit_conversions_are_exact() -> None:
    assert to_base_units(Decimal("1.5"), 18) == 1_500_000_000_000_000_000
    assert to_base_units(Decimal("0.000001"), 6) == 1
    assert to_base_units(Decimal("12E3"), 6) == 12_000_000_000
    assert to_base_units(Decimal("2.500"), 1) == 25  # trailing zeros are not extra decimals
    assert from_base_units(1, 18) == Decimal("1E-18")
    assert from_base_units(MAX_UINT256, 18) == Decimal(
        "115792089237316195423570985008687907853269984665640564039457.584007913129639935"
    )
    with pytest.raises(InvalidInput, match=r"amount: has more than 6 decimals"):
        to_base_units(Decimal("0.0000001"), 6)
    with pytest.raises(InvalidInput, match="amount: must be a finite Decimal"):
        to_base_units(Decimal("NaN"), 6)
    with pytest.raises(InvalidInput, match="size: must be a finite Decimal"):
        to_base_units(1.5, 6, "size")  # type: ignore[arg-type]
    # shares = raw x multiplier / 1e18, in display units: 3e18 + 7 base units at 1.5x
    assert displayed_amount(3 * 10**18 + 7, 15 * 10**17, 18) == Decimal("4.5000000000000000105")


@given(st.integers(min_value=0, max_value=MAX_UINT256), st.integers(min_value=0, max_value=36))
def test_units_round_trip(raw: int, decimals: int) -> None:
    assert to_base_units(from_base_units(raw, decimals), decimals) == raw


@pytest.mark.asyncio(loop_scope="session")
async def test_v2_test_token_reads_and_transfers(clean_chain: AsyncWeb3[Any]) -> None:
    session = await funded_session(clean_chain)
    token = await v2_test_token(session)
    # UniswapV2ERC20's constants, from the v2-core source
    assert (await token.symbol(), await token.decimals()) == ("UNI-V2", 18)
    assert await token.total_supply() == SUPPLY == await token.balance_of()
    receipt = await token.transfer(OTHER, 123_456_789)
    transfers = token.contract.events.Transfer().process_receipt(receipt)
    assert [(log["args"]["from"], log["args"]["to"], log["args"]["value"]) for log in transfers] == [
        (session.address, OTHER, 123_456_789)
    ]
    assert await token.contract.functions.balanceOf(OTHER).call() == 123_456_789
    assert await token.balance_of() == SUPPLY - 123_456_789
    assert await token.from_units(await token.balance_of(OTHER)) == Decimal("1.23456789E-10")
    with pytest.raises(TransactionReverted, match="ds-math-sub-underflow"):
        await token.transfer(OTHER, SUPPLY)
    with pytest.raises(InvalidInput, match="amount: must be an int of base units"):
        await token.transfer(OTHER, Decimal(1))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"amount: must be within 0 \.\. 2\*\*256 - 1"):
        await token.transfer(OTHER, -1)


@pytest.mark.asyncio(loop_scope="session")
async def test_approvals_are_exact_and_skipped_when_enough(clean_chain: AsyncWeb3[Any]) -> None:
    owner = await funded_session(clean_chain)
    token = await v2_test_token(owner)
    assert await token.approve(SPENDER, 1_000) is not None
    assert await token.contract.functions.allowance(owner.address, SPENDER).call() == 1_000
    sent = await clean_chain.eth.get_transaction_count(owner.address)
    assert await token.approve(SPENDER, 999) is None  # already enough: nothing sent
    assert await token.approve(SPENDER, 1_000) is None
    assert await clean_chain.eth.get_transaction_count(owner.address) == sent
    await token.approve(SPENDER, 1_001)
    assert await token.allowance(SPENDER) == 1_001  # raised to exactly what is needed, never unlimited

    # the spender can move exactly the allowance and not one base unit more
    spender = await funded_session(clean_chain)
    await token.approve(spender.address, 500)
    pull = token.contract.encode_abi("transferFrom", args=[owner.address, OTHER, 501])
    with pytest.raises(TransactionReverted, match="ds-math-sub-underflow"):
        await spender.send({"to": token.address, "data": pull})
    pull = token.contract.encode_abi("transferFrom", args=[owner.address, OTHER, 500])
    await spender.send({"to": token.address, "data": pull})
    assert await token.balance_of(OTHER) == 500
    assert await token.allowance(spender.address) == 0
    assert await token.revoke(SPENDER) is not None
    assert await token.allowance(SPENDER) == 0
    assert await token.revoke(SPENDER) is None


@pytest.mark.asyncio(loop_scope="session")
async def test_unlimited_only_when_configured_and_reset_first(clean_chain: AsyncWeb3[Any]) -> None:
    owner = await funded_session(clean_chain)
    unlimited = await v2_test_token(owner, unlimited_approvals=True)
    await unlimited.approve(SPENDER, 10)
    assert await unlimited.allowance(SPENDER) == MAX_UINT256

    resetting = await v2_test_token(owner, reset_before_approve=True)
    first = await resetting.approve(SPENDER, 5)
    last = await resetting.approve(SPENDER, 10)
    assert first is not None and last is not None
    approvals = await resetting.contract.events.Approval().get_logs(
        from_block=first["blockNumber"], to_block=last["blockNumber"]
    )
    assert [log["args"]["value"] for log in approvals] == [5, 0, 10]


@pytest.mark.asyncio(loop_scope="session")
async def test_stock_token_multiplier_kept_apart_from_raw(clean_chain: AsyncWeb3[Any]) -> None:
    issuer = await funded_session(clean_chain)
    token = await stock_token(issuer)
    assert (await token.symbol(), await token.decimals(), await token.issuer()) == (
        "TSLAx",
        18,
        issuer.address,
    )
    raw = 3 * 10**18 + 7
    await token.mint(OTHER, raw)
    assert await token.multiplier() == ONE
    assert await token.displayed_balance(OTHER) == (raw, Decimal("3.000000000000000007"))

    now = (await clean_chain.eth.get_block("latest"))["timestamp"]
    split_at = now + 1_000
    await token.set_multiplier(15 * 10**17, split_at)  # a 3-for-2 split, announced ahead
    schedule = await token.schedule()
    assert (schedule.in_force, schedule.scheduled, schedule.effective_at) == (ONE, 15 * 10**17, split_at)
    assert schedule.at(split_at - 1) == ONE and schedule.at(split_at) == 15 * 10**17
    assert await token.displayed_balance(OTHER) == (raw, Decimal("3.000000000000000007"))

    await rpc(clean_chain, "evm_setNextBlockTimestamp", split_at)
    await rpc(clean_chain, "evm_mine")
    # the contract's own view, read directly: uiMultiplier() switched; balances did not move
    assert await token.contract.functions.uiMultiplier().call() == 15 * 10**17
    assert await token.contract.functions.balanceOf(OTHER).call() == raw
    assert await token.displayed_balance(OTHER) == (raw, Decimal("4.5000000000000000105"))
    after = await token.schedule()
    assert after.in_force == after.scheduled == 15 * 10**17
    with pytest.raises(InvalidInput, match="ts: before the change"):
        after.at(split_at - 1)

    stranger = StockToken(clean_chain, token.address, session=await funded_session(clean_chain))
    with pytest.raises(TransactionReverted, match=r"reverted: NotIssuer\(\)"):
        await stranger.mint(stranger.session.address, 1)  # type: ignore[union-attr]
    with pytest.raises(InvalidInput, match="multiplier: must be > 0"):
        await token.set_multiplier(0, split_at)
    await token.burn(OTHER, 7)
    assert await token.balance_of(OTHER) == 3 * 10**18
