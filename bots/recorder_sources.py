"""What `perpetua data record` records: the live connectors as recorder sources, and a config's set.

Each adapter has a `name` and a `stream()` (the `bots.recorder.RecordSource` shape) and starts its
stream with a snapshot, so a restart records the state it resumes from:

- `CcxtSource`: a REST quote and order book per instrument, then the public channels only
  (quotes, books, trades, funding; no API key needed: the recorder never reads our orders).
- `AlpacaSource`: the latest quote per symbol from REST, then the market-data websocket; Alpaca
  symbols are renamed to the config's instrument ids (`TSLA` -> `TSLA/USD`).
- `PoolSource`: the pool's whole state at the latest block, then a `PoolState` per Swap/Mint/Burn
  (v3) or Sync (v2) log. When the stream restarts inside one process the follower catches up from
  the last block it applied (no gap); a new process starts from the state at its start.
- `OracleSource`: the latest round, then each new round (`latestRoundData` polled).
- `MarketStatusSource`: the session in force, then each session change of the calendar.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.ccxt_exchange import CcxtExchange
from connectors.ccxt_stream import CcxtStream
from connectors.evm.chainlink import ChainlinkFeed
from connectors.evm.pool_logs import PoolLogFollower
from core.calendar import MarketCalendar
from core.errors import InvalidInput
from core.events import Event, Quote, Trade

log = logging.getLogger("perpetua.recorder")

NS = 1_000_000_000


class _PublicCcxtStream(CcxtStream):
    """`CcxtStream` with the public channels only: no orders, fills or reconciliation (no keys)."""

    def _channels(self) -> list[Awaitable[None]]:
        v = self.venue
        channels: list[Awaitable[None]] = []
        for instrument, symbol in v.markets.items():
            channels.append(self._quotes(instrument, symbol))
            channels.append(self._book(instrument, symbol))
            channels.append(self._trades(instrument, symbol))
            if v.exchange.market(symbol).get("swap"):
                channels.append(self._funding(instrument))
        return channels


class CcxtSource:
    """Public market data of a `CcxtExchange`: a REST snapshot, then websockets (or REST polling)."""

    def __init__(self, exchange: CcxtExchange, *, snapshot: bool = True) -> None:
        self.exchange = exchange
        self.name = exchange.name
        self.snapshot = snapshot

    async def stream(self) -> AsyncIterator[Event]:
        """REST quote and book per instrument (a failed one is logged), then the public channels."""
        ex = self.exchange
        if self.snapshot:
            for instrument in ex.markets:
                for fetch in (ex.fetch_quote, lambda i: ex.fetch_book(i, ex.book_depth)):
                    try:
                        yield await fetch(instrument)
                    except Exception as exc:  # the snapshot is a bonus: the stream follows anyway
                        what = type(exc).__name__
                        log.warning("recorder: %s snapshot of %s failed (%s)", self.name, instrument, what)
        stream = _PublicCcxtStream(
            ex,
            depth=ex.book_depth,
            reconcile_interval=ex.reconcile_interval,
            funding_interval=ex.funding_interval,
        )
        async for event in stream.events():
            yield event


class AlpacaSource:
    """An `AlpacaBroker`'s quotes and trades, renamed from Alpaca symbols to instrument ids.

    `instruments` maps Alpaca symbols to instrument ids (the inverse of a config's `symbols`); a
    symbol not in it keeps its Alpaca name.
    """

    def __init__(self, broker: Any, instruments: Mapping[str, str], *, snapshot: bool = True) -> None:
        self.broker = broker
        self.name: str = broker.name
        self.instruments = dict(instruments)
        self.snapshot = snapshot

    def _renamed(self, event: Quote | Trade) -> Quote | Trade:
        return event._replace(instrument=self.instruments.get(event.instrument, event.instrument))

    async def stream(self) -> AsyncIterator[Event]:
        """The latest quote per symbol (REST), then the market-data websocket's quotes and trades."""
        if self.snapshot:
            for symbol in self.broker.symbols:
                try:
                    yield self._renamed(await self.broker.latest_quote(symbol))
                except Exception as exc:
                    what = type(exc).__name__
                    log.warning("recorder: %s latest quote of %s failed (%s)", self.name, symbol, what)
        async for event in self.broker.stream():
            if type(event) is Quote or type(event) is Trade:
                yield self._renamed(event)


class PoolSource:
    """A Uniswap pool followed through its logs (`PoolLogFollower`), starting with its whole state."""

    def __init__(self, follower: PoolLogFollower) -> None:
        self.follower = follower
        self.name = f"{follower.venue}:{follower.pool_id}"

    async def stream(self) -> AsyncIterator[Event]:
        """The state at the latest block (first start only), then one `PoolState` per change."""
        pool = self.follower.pool
        if pool.block_number < 0:  # first start: later restarts catch up from the last block applied
            await pool.refresh()
            yield pool.to_pool_state_event(
                time.time_ns(), self.follower.venue, self.follower.pool_id, pool.block_number
            )
        async for event in self.follower.events():
            yield event


class OracleSource:
    """A Chainlink-style feed's rounds: the latest at start, then each new one."""

    def __init__(self, feed: ChainlinkFeed, poll_interval_s: float = 1.0) -> None:
        if not poll_interval_s > 0:
            raise InvalidInput("poll_interval_s", poll_interval_s, "must be > 0")
        self.feed = feed
        self.name = f"{feed.source}:{feed.instrument}"
        self.poll_interval_s = poll_interval_s

    async def stream(self) -> AsyncIterator[Event]:
        """`OraclePrice` per new round (staleness is the strategy's business, not the recorder's)."""
        async for price, _stale in self.feed.rounds(self.poll_interval_s):
            yield price


class MarketStatusSource:
    """The exchange calendar's sessions: the one in force at start, then each change on time."""

    def __init__(self, calendar: MarketCalendar, clock: Callable[[], int] = time.time_ns) -> None:
        self.calendar = calendar
        self.clock = clock
        self.name = f"calendar:{calendar.exchange}"

    async def stream(self) -> AsyncIterator[Event]:
        """`MarketStatus` now (stamped now), then one at each session change."""
        now = self.clock()
        (current,) = self.calendar.market_status_events(now, now + 1)
        yield current
        while True:
            change = current.next_change_ts
            await asyncio.sleep(max(0.0, (change - self.clock()) / NS))
            (current,) = self.calendar.market_status_events(change, change + 1)
            yield current


@dataclass
class ConfiguredSources:
    """The sources a config asks to record, and what to close when recording ends."""

    sources: list[Any]
    skipped: list[str] = field(default_factory=list)
    closers: AsyncExitStack = field(default_factory=AsyncExitStack)


def _env(name: str | None) -> str | None:
    return os.environ.get(name) if name else None


async def sources_from_config(cfg: Any, *, poll_interval_s: float = 1.0) -> ConfiguredSources:
    """Recorder sources for every venue of a validated `PerpetuaConfig` that streams market data.

    ccxt exchanges (public data, keys used if set), Alpaca (keys required), Uniswap v2/v3 pools
    (HTTP RPC, logs polled every `poll_interval_s`), Chainlink feeds, and the XNYS calendar.
    Simulated venues and issuers have no market data: they are listed in `skipped`.
    """
    import ccxt.pro as ccxt_pro
    from web3 import AsyncHTTPProvider, AsyncWeb3

    from connectors.brokers.alpaca import AlpacaBroker
    from connectors.evm.uniswap_v2 import UniswapV2Pair
    from connectors.evm.uniswap_v3 import UniswapV3Pool
    from core.clock import LiveClock
    from core.config import AlpacaVenue, CcxtVenue, ChainlinkVenue, UniswapV2Venue, UniswapV3Venue

    now = datetime.now(UTC)
    calendar = MarketCalendar(start=(now - timedelta(days=10)).date(), end=(now + timedelta(days=400)).date())
    out = ConfiguredSources([MarketStatusSource(calendar)])
    clock = LiveClock()
    for venue in cfg.venues:
        if isinstance(venue, CcxtVenue):
            params: dict[str, Any] = {"options": dict(venue.options), "enableRateLimit": True}
            for key, env in (
                ("apiKey", venue.api_key_env),
                ("secret", venue.secret_env),
                ("password", venue.password_env),
            ):
                value = _env(env)
                if value:
                    params[key] = value
            client = getattr(ccxt_pro, venue.exchange)(params)
            if venue.testnet:
                client.set_sandbox_mode(True)
            exchange = CcxtExchange(venue.name, client, venue.markets, clock, poll_interval=poll_interval_s)
            out.closers.push_async_callback(exchange.close)
            out.sources.append(CcxtSource(exchange))
        elif isinstance(venue, AlpacaVenue):
            broker = AlpacaBroker.from_env(
                venue.name,
                venue.api_key_env,
                venue.secret_key_env,
                venue.trading_url,
                calendar,
                clock,
                symbols=list(venue.symbols.values()),
                data_stream_url=f"wss://stream.data.alpaca.markets/v2/{venue.data_feed}",
            )
            out.closers.push_async_callback(broker.close)
            out.sources.append(AlpacaSource(broker, {s: i for i, s in venue.symbols.items()}))
        elif isinstance(venue, UniswapV2Venue | UniswapV3Venue | ChainlinkVenue):
            url = venue.rpc_url or _env(venue.rpc_url_env)
            if not url:
                raise InvalidInput(
                    f"venues.{venue.name}.rpc_url_env", venue.rpc_url_env, "environment variable not set"
                )
            w3 = AsyncWeb3(AsyncHTTPProvider(str(url)))
            out.closers.push_async_callback(w3.provider.disconnect)
            if isinstance(venue, ChainlinkVenue):
                for instrument, address in venue.feeds.items():
                    feed = ChainlinkFeed(w3, address, venue.name, instrument, max_age_ns=2**62)
                    out.sources.append(OracleSource(feed, poll_interval_s))
                continue
            for inst in cfg.instruments:
                if getattr(inst, "kind", None) != "pool" or inst.venue != venue.name:
                    continue
                pool: Any = (
                    UniswapV3Pool(w3, inst.address) if inst.version == 3 else UniswapV2Pair(w3, inst.address)
                )
                follower = PoolLogFollower(
                    pool, venue=venue.name, pool_id=inst.id, poll_interval_seconds=poll_interval_s
                )
                out.sources.append(PoolSource(follower))
        else:
            out.skipped.append(f"{venue.name} ({venue.kind}: no market data to record)")
    return out


async def record_from_config(
    cfg: Any,
    out_dir: Any,
    *,
    rotate_every_s: float = 3600,
    flush_interval_s: float = 1.0,
    duration_s: float | None = None,
    say: Callable[[str], None] = print,
) -> None:
    """`perpetua data record`: record a config's streams into `out_dir` until SIGINT/SIGTERM or
    `duration_s`; then seal the files, write the manifest and say one line per stream."""
    import contextlib
    import signal

    from bots.recorder import Recorder, describe

    configured = await sources_from_config(cfg)
    async with configured.closers:
        for line in configured.skipped:
            say(f"not recorded: {line}")
        recorder = Recorder(
            configured.sources, out_dir, rotate_every_s=rotate_every_s, flush_interval_s=flush_interval_s
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, recorder.stop)
        say(f"recording {', '.join(s.name for s in configured.sources)} into {out_dir} (stop with Ctrl-C)")
        try:
            await recorder.run(duration_s)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
        for line in describe(recorder):
            say(line)
        for name, errors in recorder.source_errors.items():
            if errors:
                # Error types only: a message may carry a URL, and hosted RPC URLs embed keys.
                say(f"{name}: {len(errors)} stream failures, last: {errors[-1].split(':')[0]}")
