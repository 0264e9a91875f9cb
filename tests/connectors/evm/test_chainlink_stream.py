"""`ChainlinkStream` over two of the project's MockAggregators on a real anvil."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from web3 import AsyncWeb3
from web3.contract import AsyncContract
from web3.types import RPCEndpoint

from connectors.evm.chainlink import NS_PER_S, ChainlinkFeed, load_contract_artifact
from connectors.evm.chainlink_stream import ChainlinkStream
from connectors.evm.uniswap_artifacts import deploy
from core.errors import InvalidInput

pytestmark = pytest.mark.asyncio(loop_scope="session")

MAX_AGE_NS = 3_600 * NS_PER_S
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z, unix seconds


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest_asyncio.fixture(loop_scope="session", autouse=True)
async def _reverted(w3: AsyncWeb3[Any]) -> AsyncIterator[None]:
    snapshot = (await w3.provider.make_request(RPCEndpoint("evm_snapshot"), []))["result"]
    try:
        yield
    finally:
        assert (await w3.provider.make_request(RPCEndpoint("evm_revert"), [snapshot]))["result"] is True


async def update(w3: AsyncWeb3[Any], aggregator: AsyncContract, answer: int, updated_at: int) -> None:
    tx = await aggregator.functions.updateAnswer(answer, updated_at).transact(
        {"from": (await w3.eth.accounts)[0]}
    )
    assert (await w3.eth.wait_for_transaction_receipt(tx))["status"] == 1


async def feeds(w3: AsyncWeb3[Any], clock: Clock) -> tuple[AsyncContract, AsyncContract, ChainlinkStream]:
    tsla = await deploy(w3, load_contract_artifact("MockAggregator"), 8, "TSLA / USD")
    nvda = await deploy(w3, load_contract_artifact("MockAggregator"), 8, "NVDA / USD")
    stream = ChainlinkStream(
        [
            ChainlinkFeed(w3, tsla.address, "chainlink", "TSLA", MAX_AGE_NS, clock=clock),
            ChainlinkFeed(w3, nvda.address, "chainlink", "NVDA", MAX_AGE_NS, clock=clock),
        ],
        poll_interval_s=0.01,
    )
    return tsla, nvda, stream


async def test_each_new_round_once_and_staleness_at_every_poll(w3: AsyncWeb3[Any]) -> None:
    clock = Clock(T0 * NS_PER_S)
    tsla, nvda, stream = await feeds(w3, clock)
    await update(w3, tsla, 250_12345678, T0)
    # NVDA has no round yet: its read fails, it counts as stale, the stream goes on
    [first] = await stream.poll_once()
    assert (first.instrument, first.price, first.round_id, first.publish_ts) == (
        "TSLA",
        250.12345678,
        1,
        T0 * NS_PER_S,
    )
    assert (stream.stale("TSLA"), stream.stale("NVDA"), stream.errors) == (False, True, 1)
    await update(w3, nvda, 120_00000000, T0 - 2 * 3_600)  # a round already two hours old
    [nv] = await stream.poll_once()
    assert (nv.instrument, nv.round_id, nv.price) == ("NVDA", 1, 120.0)
    assert stream.stale("NVDA") is True  # yielded, and flagged
    assert await stream.poll_once() == []  # no new round
    clock.now = T0 * NS_PER_S + MAX_AGE_NS + 1  # TSLA's round ages past the max age
    assert await stream.poll_once() == [] and stream.stale("TSLA") is True
    await update(w3, tsla, 251_00000000, T0 + 3_600)
    [fresh] = await stream.poll_once()
    assert (fresh.round_id, fresh.price, fresh.ts) == (2, 251.0, clock.now)
    assert stream.stale("TSLA") is False
    with pytest.raises(InvalidInput, match="instrument"):
        stream.stale("AAPL")


async def test_stream_yields_rounds_as_they_appear(w3: AsyncWeb3[Any]) -> None:
    clock = Clock(T0 * NS_PER_S)
    tsla, nvda, stream = await feeds(w3, clock)
    await update(w3, tsla, 100_00000000, T0)
    await update(w3, nvda, 200_00000000, T0)
    prices = stream.stream()
    try:
        async with asyncio.timeout(10):  # a guard against a hang
            got = [await anext(prices), await anext(prices)]
            assert [(p.instrument, p.price) for p in got] == [("TSLA", 100.0), ("NVDA", 200.0)]
            await update(w3, nvda, 201_00000000, T0 + 1)
            nxt = await anext(prices)
        assert (nxt.instrument, nxt.round_id, nxt.price) == ("NVDA", 2, 201.0)
    finally:
        await prices.aclose()  # type: ignore[attr-defined]
    with pytest.raises(InvalidInput, match="poll_interval_s"):
        ChainlinkStream([], poll_interval_s=0)
