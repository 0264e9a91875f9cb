"""Keep a Uniswap pool's local state current from its logs, and emit each change as a `PoolState`.

`PoolLogFollower(pool, venue=..., pool_id=...)` follows a `UniswapV3Pool` (Swap, Mint, Burn) or a
`UniswapV2Pair` (Sync). `events()` is an async iterator of `core.events.PoolState`, one per log that
changed the state, in chain order. Over a websocket provider it subscribes (eth_subscribe "logs")
and catches up with eth_getLogs from the pool's last block, skipping what the catch-up already
applied; over HTTP it polls eth_getLogs from the next block every `poll_interval_seconds`. A log
that a reorg removed (`removed: true`) makes it re-read the whole state at the latest block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, Protocol

from eth_typing import ChecksumAddress
from web3 import AsyncWeb3
from web3.exceptions import ProviderConnectionError
from web3.providers.persistent import PersistentConnectionProvider

from connectors.evm.uniswap_events import LogDecodeError, PoolEvent, decode_log, fetch_logs
from core.events import PoolState

log = logging.getLogger(__name__)


class FollowablePool(Protocol):
    """What the follower needs of a pool: `UniswapV3Pool` and `UniswapV2Pair` have it."""

    STATE_TOPICS: tuple[bytes, ...]
    w3: AsyncWeb3[Any]
    address: ChecksumAddress
    block_number: int

    async def refresh(self, block_number: int | None = None) -> Any:
        """Read the whole state at `block_number` (default latest)."""
        ...

    def apply_event(self, event: PoolEvent) -> bool:
        """Apply one decoded log; True if the state changed."""
        ...

    def to_pool_state_event(self, ts: int, venue: str, pool_id: str, block_number: int) -> PoolState:
        """The current state as a PoolState event."""
        ...


class PoolLogFollower:
    """Applies `pool`'s logs to its local state and yields a `PoolState` after each change.

    `venue` and `pool_id` label the events; `poll_interval_seconds` paces HTTP polling;
    `max_block_range` caps one eth_getLogs. The pool is refreshed first if it was never loaded.
    `applied` counts the logs applied, `resyncs` the full re-reads after a reorg.
    """

    def __init__(
        self,
        pool: FollowablePool,
        *,
        venue: str,
        pool_id: str,
        poll_interval_seconds: float = 0.5,
        max_block_range: int = 10_000,
    ) -> None:
        if poll_interval_seconds <= 0:
            raise ValueError(f"poll_interval_seconds must be > 0, got {poll_interval_seconds}")
        self.pool = pool
        self.venue = venue
        self.pool_id = pool_id
        self.poll_interval_seconds = poll_interval_seconds
        self.max_block_range = max_block_range
        self.applied = 0
        self.resyncs = 0
        # (block, log index) of the last log in the state: later copies of it are skipped
        self._through: tuple[int, int] = (-1, -1)
        self._started = False
        self.needs_resync = False  # a reorg removed a log we applied: re-read the state

    def _event(self, block_number: int) -> PoolState:
        return self.pool.to_pool_state_event(time.time_ns(), self.venue, self.pool_id, block_number)

    async def _start(self) -> None:
        """Load the pool if needed; everything up to its block counts as applied."""
        if self.pool.block_number < 0:
            await self.pool.refresh()
        self._through = (self.pool.block_number, 1 << 62)
        self._started = True

    def apply(self, raw: Mapping[str, Any]) -> PoolState | None:
        """Apply one log (raw JSON-RPC or web3-formatted) if it is new; the PoolState if it changed
        the state. A removed log returns None and sets `needs_resync`; a malformed one is logged and
        skipped."""
        try:
            event = decode_log(raw)
        except LogDecodeError as error:
            log.warning("pool %s: skipped a malformed log: %s", self.pool.address, error)
            return None
        if event is None:
            return None
        position = event.position
        if position.removed:
            self.needs_resync = True
            return None
        key = (position.block_number, position.log_index)
        if key <= self._through:
            return None
        self._through = key
        if not self.pool.apply_event(event):
            return None
        self.applied += 1
        return self._event(position.block_number)

    async def _resync(self) -> PoolState:
        """Re-read the whole state at the latest block (after a reorg removed logs we applied)."""
        await self.pool.refresh()
        self._through = (self.pool.block_number, 1 << 62)
        self.needs_resync = False
        self.resyncs += 1
        return self._event(self.pool.block_number)

    async def _catch_up(self) -> AsyncIterator[PoolState]:
        """Apply the logs from the block after the last applied one to the latest block."""
        latest = await self.pool.w3.eth.block_number
        start = self._through[0] + 1 if self._through[1] >= 1 << 62 else self._through[0]
        if latest < start:
            return
        logs = await fetch_logs(
            self.pool.w3, self.pool.address, self.pool.STATE_TOPICS, start, latest, self.max_block_range
        )
        for raw in logs:
            event = self.apply(raw)
            if event is not None:
                yield event
        self._through = max(self._through, (latest, 1 << 62))
        self.pool.block_number = max(self.pool.block_number, latest)

    async def events(self) -> AsyncGenerator[PoolState, None]:
        """The pool's `PoolState` after every log that changed it, for as long as it is iterated.

        Subscribes when the provider is a persistent (websocket) connection, polls otherwise.
        """
        if not self._started:
            await self._start()
        provider = self.pool.w3.provider
        if isinstance(provider, PersistentConnectionProvider):
            async for event in self._subscribed():
                yield event
        else:
            async for event in self._polled():
                yield event

    async def poll_once(self) -> list[PoolState]:
        """One polling round: apply every new log up to the latest block; the PoolStates it made.

        Loads the pool first if it never was. `events()` over HTTP is this in a loop.
        """
        if not self._started:
            await self._start()
        return [event async for event in self._catch_up()]

    async def _polled(self) -> AsyncIterator[PoolState]:
        while True:
            for event in await self.poll_once():
                yield event
            await asyncio.sleep(self.poll_interval_seconds)

    async def _subscribed(self) -> AsyncIterator[PoolState]:
        w3 = self.pool.w3
        topics = [["0x" + topic.hex() for topic in self.pool.STATE_TOPICS]]
        subscription = await w3.eth.subscribe("logs", {"address": self.pool.address, "topics": topics})
        try:
            # logs mined between the pool's load and the subscription come from eth_getLogs
            async for event in self._catch_up():
                yield event
            async for message in w3.socket.process_subscriptions():
                if message.get("subscription") != subscription:
                    continue
                changed = self.apply(message["result"])
                if self.needs_resync:
                    yield await self._resync()
                elif changed is not None:
                    yield changed
        finally:
            with contextlib.suppress(ProviderConnectionError):  # a closed connection took it along
                await w3.eth.unsubscribe(subscription)
