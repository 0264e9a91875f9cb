"""Chainlink-style feeds as a market-data stream: an `OraclePrice` on every new round, staleness kept.

`ChainlinkStream(feeds)` polls `latestRoundData` of every `ChainlinkFeed` every `poll_interval_s`
and yields an `OraclePrice` the first time it sees a round (the first poll yields each feed's
latest round). Between rounds the latest round ages: at every poll `stale(instrument)` is brought
up to date (`ChainlinkFeed`'s rule: older than its `max_age_ns` by the feed's clock), and a feed
turning stale or fresh again is logged once. A round that is already stale when first seen (a feed
that stopped for a while) is still yielded, and `stale()` says so: the consumer decides whether to
trade on it. A feed without any round yet, or a poll the node fails, is logged and tried again on
the next poll; it never ends the stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable

from web3.exceptions import Web3Exception

from connectors.evm.chainlink import ChainlinkFeed
from core.errors import InvalidInput
from core.events import OraclePrice

log = logging.getLogger(__name__)


class ChainlinkStream:
    """Polls several feeds (one per instrument) and yields their new rounds as `OraclePrice`s."""

    def __init__(self, feeds: Iterable[ChainlinkFeed], poll_interval_s: float = 1.0) -> None:
        if poll_interval_s <= 0:
            raise InvalidInput("poll_interval_s", poll_interval_s, "must be > 0 s")
        self.feeds: dict[str, ChainlinkFeed] = {}
        for feed in feeds:
            if feed.instrument in self.feeds:
                raise InvalidInput("feeds", feed.instrument, "two feeds for one instrument")
            self.feeds[feed.instrument] = feed
        self.poll_interval_s = poll_interval_s
        self.latest: dict[str, OraclePrice] = {}  # instrument -> the latest round seen
        self._stale: dict[str, bool] = {}
        self.errors = 0  # polls that failed (node errors, a feed without rounds)

    def stale(self, instrument: str) -> bool:
        """Whether the instrument's latest round is older than its feed's max age (True before one)."""
        if instrument not in self.feeds:
            raise InvalidInput("instrument", instrument, f"no feed (feeds {sorted(self.feeds)})")
        return self._stale.get(instrument, True)

    async def poll_once(self) -> list[OraclePrice]:
        """Read every feed once; the new rounds, in feed order. Updates `stale()` for every feed."""
        new: list[OraclePrice] = []
        for instrument, feed in self.feeds.items():
            try:
                price, stale = await feed.read()
            except (Web3Exception, OSError, TimeoutError) as error:
                self.errors += 1
                log.warning("feed %s (%s): read failed: %s", instrument, feed.source, error)
                continue
            if self._stale.get(instrument) is not stale and instrument in self._stale:
                log.warning(
                    "feed %s (%s) is %s", instrument, feed.source, "stale" if stale else "fresh again"
                )
            self._stale[instrument] = stale
            last = self.latest.get(instrument)
            if last is None or last.round_id != price.round_id:
                self.latest[instrument] = price
                new.append(price)
        return new

    async def stream(self) -> AsyncIterator[OraclePrice]:
        """Each feed's new rounds as they appear, for as long as it is iterated."""
        while True:
            for price in await self.poll_once():
                yield price
            await asyncio.sleep(self.poll_interval_s)
