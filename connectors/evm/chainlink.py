"""Chainlink-style price feed reader: `latestRoundData` of an AggregatorV3Interface as `OraclePrice`.

Works against any AggregatorV3Interface (a Chainlink proxy on a real chain, or the project's own
`contracts/MockAggregator.sol` on anvil): the ABI it needs is embedded here. The project's own
contracts are compiled by `node contracts/build.mjs` into `contracts/artifacts/<Name>.json`, which are
committed; `load_contract_artifact` reads them (nothing is compiled at run or test time).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_typing import ChecksumAddress, HexStr
from web3 import AsyncWeb3

from connectors.evm.anvil import PROJECT_ROOT
from connectors.evm.uniswap_artifacts import Artifact, ArtifactError
from core.events import OraclePrice

CONTRACT_ARTIFACTS = PROJECT_ROOT / "contracts" / "artifacts"

_ROUND_OUTPUTS = [
    {"name": "roundId", "type": "uint80"},
    {"name": "answer", "type": "int256"},
    {"name": "startedAt", "type": "uint256"},
    {"name": "updatedAt", "type": "uint256"},
    {"name": "answeredInRound", "type": "uint80"},
]
AGGREGATOR_V3_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "decimals",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint8"}],
    },
    {
        "type": "function",
        "name": "description",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "string"}],
    },
    {
        "type": "function",
        "name": "version",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {
        "type": "function",
        "name": "latestRoundData",
        "stateMutability": "view",
        "inputs": [],
        "outputs": _ROUND_OUTPUTS,
    },
    {
        "type": "function",
        "name": "getRoundData",
        "stateMutability": "view",
        "inputs": [{"name": "_roundId", "type": "uint80"}],
        "outputs": _ROUND_OUTPUTS,
    },
]

NS_PER_S = 1_000_000_000


@cache
def load_contract_artifact(name: str, directory: Path = CONTRACT_ARTIFACTS) -> Artifact:
    """The committed artifact `contracts/artifacts/<name>.json` of one of the project's own contracts.

    Raises `ArtifactError` if it is missing (run `node contracts/build.mjs`) or has no bytecode.
    """
    path = directory / f"{name}.json"
    if not path.is_file():
        raise ArtifactError(f"{path} missing: run `node contracts/build.mjs` in {PROJECT_ROOT}")
    data = json.loads(path.read_text())
    code = str(data.get("bytecode", ""))
    if not code.startswith("0x") or len(code) <= 2 or "__" in code:
        raise ArtifactError(f"{path}: no usable bytecode")
    return Artifact(name, data["abi"], HexStr(code))


@dataclass(frozen=True)
class Round:
    """One round of an aggregator, exactly as the contract returns it (`answer` in 10**-decimals)."""

    round_id: int
    answer: int
    started_at: int  # unix seconds
    updated_at: int  # unix seconds
    answered_in_round: int

    @classmethod
    def from_call(cls, values: Any) -> Round:
        """From the 5-tuple of `latestRoundData` / `getRoundData`."""
        round_id, answer, started_at, updated_at, answered_in_round = values
        return cls(int(round_id), int(answer), int(started_at), int(updated_at), int(answered_in_round))


class ChainlinkFeed:
    """Reads one AggregatorV3Interface feed at `address` and publishes `OraclePrice` events.

    `price` is `answer / 10**decimals` (the exact integer answer is in `Round.answer`), `publish_ts` is
    the round's `updatedAt` in ns, `ts` is `clock()` (ns) at the read. A price is stale when
    `ts - publish_ts > max_age_ns` (a round exactly `max_age_ns` old is still fresh).
    """

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        address: ChecksumAddress | str,
        source: str,
        instrument: str,
        max_age_ns: int,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if max_age_ns < 0:
            raise ValueError(f"max_age_ns must be >= 0, got {max_age_ns}")
        self.contract = w3.eth.contract(address=AsyncWeb3.to_checksum_address(address), abi=AGGREGATOR_V3_ABI)
        self.source = source
        self.instrument = instrument
        self.max_age_ns = max_age_ns
        self.clock = clock
        self._decimals: int | None = None

    async def decimals(self) -> int:
        """The feed's `decimals()`, read once and cached (it never changes for a feed)."""
        if self._decimals is None:
            self._decimals = int(await self.contract.functions.decimals().call())
        return self._decimals

    async def latest_round(self) -> Round:
        """`latestRoundData()` as a `Round`."""
        return Round.from_call(await self.contract.functions.latestRoundData().call())

    async def round(self, round_id: int) -> Round:
        """`getRoundData(round_id)` as a `Round` (the contract reverts for an unknown round)."""
        return Round.from_call(await self.contract.functions.getRoundData(round_id).call())

    async def to_price(self, round_: Round) -> tuple[OraclePrice, bool]:
        """`round_` as an `OraclePrice` stamped `clock()`, and whether it is stale."""
        decimals = await self.decimals()
        now = self.clock()
        publish_ts = round_.updated_at * NS_PER_S
        price = OraclePrice(
            ts=now,
            source=self.source,
            instrument=self.instrument,
            price=round_.answer / 10**decimals,
            publish_ts=publish_ts,
            round_id=round_.round_id,
        )
        return price, now - publish_ts > self.max_age_ns

    async def read(self) -> tuple[OraclePrice, bool]:
        """The latest round as an `OraclePrice`, and whether it is stale."""
        return await self.to_price(await self.latest_round())

    async def rounds(self, poll_interval_s: float = 1.0) -> AsyncIterator[tuple[OraclePrice, bool]]:
        """Poll `latestRoundData` every `poll_interval_s`; yield the latest round when it is new.

        The first poll always yields. Rounds published between two polls are not backfilled (round
        ids of Chainlink proxies are phase-encoded, not contiguous): read them with `round()`.
        """
        last: int | None = None
        while True:
            round_ = await self.latest_round()
            if round_.round_id != last:
                last = round_.round_id
                yield await self.to_price(round_)
            await asyncio.sleep(poll_interval_s)
