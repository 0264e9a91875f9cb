"""ChainlinkFeed against the project's own MockAggregator (the committed artifact) on a real anvil.

Also the committed StockToken artifact: issuer-only mint/burn and the scheduled UI multiplier.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from eth_typing import ChecksumAddress
from web3 import AsyncWeb3
from web3.contract import AsyncContract
from web3.exceptions import ContractLogicError
from web3.types import RPCEndpoint

from connectors.evm.chainlink import NS_PER_S, ChainlinkFeed, Round, load_contract_artifact
from connectors.evm.uniswap_artifacts import deploy

pytestmark = pytest.mark.asyncio(loop_scope="session")

DECIMALS = 8
MAX_AGE_NS = 3_600 * NS_PER_S
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z, unix seconds


async def _send(w3: AsyncWeb3[Any], call: Any, sender: ChecksumAddress) -> None:
    tx_hash = await call.transact({"from": sender})
    receipt = await w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt["status"] == 1, f"transaction {tx_hash.to_0x_hex()} reverted"


@pytest_asyncio.fixture(loop_scope="session", autouse=True)
async def _reverted(w3: AsyncWeb3[Any]) -> AsyncIterator[None]:
    """Each test between an `evm_snapshot` and an `evm_revert`, so chain time and state do not leak."""
    snapshot = (await w3.provider.make_request(RPCEndpoint("evm_snapshot"), []))["result"]
    try:
        yield
    finally:
        reverted = await w3.provider.make_request(RPCEndpoint("evm_revert"), [snapshot])
        assert reverted["result"] is True


@pytest_asyncio.fixture(loop_scope="session")
async def aggregator(w3: AsyncWeb3[Any]) -> AsyncContract:
    """A fresh MockAggregator (8 decimals) per test, owned by anvil's first account."""
    return await deploy(w3, load_contract_artifact("MockAggregator"), DECIMALS, "TSLA / USD")


class Clock:
    """An injected clock (ns) the test moves by hand."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


async def test_metadata(w3: AsyncWeb3[Any], aggregator: AsyncContract) -> None:
    assert await aggregator.functions.decimals().call() == DECIMALS
    assert await aggregator.functions.description().call() == "TSLA / USD"
    assert await aggregator.functions.version().call() == 4
    with pytest.raises(ContractLogicError):
        await aggregator.functions.latestRoundData().call()  # no round yet


async def test_read_back_exactly(w3: AsyncWeb3[Any], aggregator: AsyncContract) -> None:
    owner = (await w3.eth.accounts)[0]
    clock = Clock(T0 * NS_PER_S)
    feed = ChainlinkFeed(w3, aggregator.address, "chainlink", "TSLA", MAX_AGE_NS, clock=clock)
    for index, answer in enumerate((423_187_654_321, 1, -5_000_000_000, 2**255 - 1)):
        await _send(w3, aggregator.functions.updateAnswer(answer, T0 + index), owner)
        round_ = await feed.latest_round()
        assert round_.round_id == round_.answered_in_round == index + 1
        assert round_.answer == answer
        assert round_.updated_at == T0 + index
        price, stale = await feed.read()
        assert price.price == answer / 10**DECIMALS
        assert price.publish_ts == (T0 + index) * NS_PER_S
        assert price.round_id == index + 1
        assert (price.ts, price.source, price.instrument) == (T0 * NS_PER_S, "chainlink", "TSLA")
        assert price.market_status is None
        assert stale is False
    assert (await feed.read())[0].price == pytest.approx(2**255 / 1e8)


async def test_staleness_flips_exactly_at_max_age(w3: AsyncWeb3[Any], aggregator: AsyncContract) -> None:
    owner = (await w3.eth.accounts)[0]
    await _send(w3, aggregator.functions.updateAnswer(25_000_000_000, T0), owner)
    clock = Clock(T0 * NS_PER_S)
    feed = ChainlinkFeed(w3, aggregator.address, "chainlink", "TSLA", MAX_AGE_NS, clock=clock)
    for offset, expected in (
        (0, False),
        (MAX_AGE_NS - 1, False),
        (MAX_AGE_NS, False),
        (MAX_AGE_NS + 1, True),
    ):
        clock.now = T0 * NS_PER_S + offset
        price, stale = await feed.read()
        assert stale is expected, offset
        assert price.ts == clock.now
    # a new round makes it fresh again
    await _send(w3, aggregator.functions.updateAnswer(25_100_000_000, T0 + 3_600), owner)
    assert (await feed.read())[1] is False
    # zero max age: fresh only at the publish instant itself
    exact = ChainlinkFeed(w3, aggregator.address, "chainlink", "TSLA", 0, clock=clock)
    clock.now = (T0 + 3_600) * NS_PER_S
    assert (await exact.read())[1] is False
    clock.now += 1
    assert (await exact.read())[1] is True
    with pytest.raises(ValueError, match="max_age_ns"):
        ChainlinkFeed(w3, aggregator.address, "chainlink", "TSLA", -1)


async def test_get_round_data_history(w3: AsyncWeb3[Any], aggregator: AsyncContract) -> None:
    owner = (await w3.eth.accounts)[0]
    answers = [10_000_000_000 + 12_345 * index for index in range(5)]
    for index, answer in enumerate(answers):
        await _send(w3, aggregator.functions.updateAnswer(answer, T0 + 60 * index), owner)
    feed = ChainlinkFeed(w3, aggregator.address, "chainlink", "TSLA", MAX_AGE_NS)
    block = await w3.eth.get_block("latest")
    for index, answer in enumerate(answers):
        round_ = await feed.round(index + 1)
        assert (round_.round_id, round_.answer, round_.updated_at, round_.answered_in_round) == (
            index + 1,
            answer,
            T0 + 60 * index,
            index + 1,
        )
        assert 0 < round_.started_at <= block["timestamp"]  # the block time of the update
    assert await feed.latest_round() == await feed.round(len(answers))
    for missing in (0, len(answers) + 1):
        with pytest.raises(ContractLogicError):
            await feed.round(missing)


async def test_only_owner_updates(w3: AsyncWeb3[Any], aggregator: AsyncContract) -> None:
    other = (await w3.eth.accounts)[1]
    with pytest.raises(ContractLogicError):
        await aggregator.functions.updateAnswer(1, T0).transact({"from": other})
    assert await aggregator.functions.latestRound().call() == 0


async def test_rounds_yields_each_new_round(w3: AsyncWeb3[Any], aggregator: AsyncContract) -> None:
    owner = (await w3.eth.accounts)[0]
    await _send(w3, aggregator.functions.updateAnswer(100_00000000, T0), owner)
    feed = ChainlinkFeed(w3, aggregator.address, "chainlink", "TSLA", MAX_AGE_NS, clock=Clock(T0 * NS_PER_S))
    stream = feed.rounds(poll_interval_s=0.01)
    try:
        first, _ = await asyncio.wait_for(anext(stream), 5)
        assert (first.round_id, first.price) == (1, 100.0)
        await _send(w3, aggregator.functions.updateAnswer(101_50000000, T0 + 1), owner)
        second, stale = await asyncio.wait_for(anext(stream), 5)
        assert (second.round_id, second.price, second.publish_ts, stale) == (
            2,
            101.5,
            (T0 + 1) * NS_PER_S,
            False,
        )
        # no new round: nothing is yielded
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(stream), 0.2)  # cancels the pending poll, closing it
    finally:
        await stream.aclose()


async def test_round_from_call() -> None:
    assert Round.from_call((3, -7, 1, 2, 3)) == Round(3, -7, 1, 2, 3)


async def _mine_at(w3: AsyncWeb3[Any], timestamp: int) -> None:
    await w3.provider.make_request(RPCEndpoint("evm_mine"), [timestamp])


async def test_stock_token(w3: AsyncWeb3[Any]) -> None:
    issuer, holder = (await w3.eth.accounts)[:2]
    token = await deploy(w3, load_contract_artifact("StockToken"), "Tesla Stock Token", "TSLAx")
    assert await token.functions.decimals().call() == 18
    assert await token.functions.issuer().call() == issuer
    assert await token.functions.uiMultiplier().call() == 10**18

    await _send(w3, token.functions.mint(holder, 5 * 10**18), issuer)
    for call in (token.functions.mint(holder, 1), token.functions.burn(holder, 1)):
        with pytest.raises(ContractLogicError):
            await call.transact({"from": holder})
    await _send(w3, token.functions.burn(holder, 2 * 10**18), issuer)
    assert await token.functions.balanceOf(holder).call() == 3 * 10**18
    assert await token.functions.totalSupply().call() == 3 * 10**18
    await _send(w3, token.functions.transfer(issuer, 10**18), holder)
    assert await token.functions.balanceOf(issuer).call() == 10**18

    # a 3-for-1 split scheduled for `effective`: the old multiplier until then, the new one from it
    now = int((await w3.eth.get_block("latest"))["timestamp"])
    effective = now + 1_000
    await _send(w3, token.functions.setUIMultiplier(3 * 10**18, effective), issuer)
    assert await token.functions.newUIMultiplier().call() == 3 * 10**18
    assert await token.functions.effectiveAt().call() == effective
    await _mine_at(w3, effective - 1)
    assert await token.functions.uiMultiplier().call() == 10**18
    await _mine_at(w3, effective)
    assert await token.functions.uiMultiplier().call() == 3 * 10**18
    with pytest.raises(ContractLogicError):
        await token.functions.setUIMultiplier(2 * 10**18, effective).transact({"from": holder})
