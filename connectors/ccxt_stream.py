"""The event stream of a `CcxtExchange`: ccxt.pro websockets where the exchange has them, REST
polling otherwise, and reconciliation against REST after every reconnect.

Channels, each an asyncio task feeding one queue:

- per instrument: quotes (`watchBidsAsks`, else `watchTicker`, else `fetch_ticker` polled),
  the order book (`watchOrderBook`, else `fetch_order_book` polled), public trades
  (`watchTrades`, else `fetch_trades` polled), and for perpetuals the funding rate
  (`fetch_funding_rate` polled every `funding_interval` s: it changes once per interval);
- our orders and fills (`watchOrders` + `watchMyTrades`, else a REST reconciliation every
  `poll_interval` s).

Which path a channel takes is read from ccxt's `has` dict. A websocket that drops raises
`ccxt.NetworkError` in the pending `watch_*` call: the channel waits a jittered, capped backoff
and watches again (ccxt dials a new connection and subscribes again). After a private channel
reconnects (the new connection held `settle` s), `reconcile()` reads fills, open orders and
balances from REST and emits what the stream missed; every fill and order state passes through
the connector's exactly-once filter (trade id; client order id + status + filled), so nothing is
reported twice. A reconciliation also
runs every `reconcile_interval` s, which covers a change that slipped between the REST read and
the re-subscription.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

import ccxt

from core.events import Event, Fill, OrderUpdate
from core.venue import VenueState

if TYPE_CHECKING:
    from connectors.ccxt_exchange import CcxtExchange

STREAM_RETRYABLE: tuple[type[Exception], ...] = (ccxt.NetworkError, ccxt.InvalidNonce)
"""Errors after which a channel backs off and watches again (InvalidNonce: an order-book gap)."""


class _Failure(NamedTuple):
    error: BaseException


class CcxtStream:
    """One run of `CcxtExchange.stream()`: its channel tasks, its queue, its reconnect counters."""

    def __init__(
        self,
        venue: CcxtExchange,
        *,
        depth: int,
        reconcile_interval: float,
        funding_interval: float,
        settle: float = 0.2,
    ) -> None:
        """`settle` (s): how long a reconnected websocket must hold before the reconciliation."""
        self.venue = venue
        self.settle = settle
        self.depth = depth
        self.reconcile_interval = reconcile_interval
        self.funding_interval = funding_interval
        self.reconnects: dict[str, int] = {}  # channel -> reconnects after an error
        self.reconciliations = 0  # finished
        self.pending_reconciles: set[str] = set()  # channels that reconnected and owe one
        self._started = 0  # reconciliations started
        self._queue: asyncio.Queue[Event | _Failure] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._since_ns = venue.clock.now_ns() - venue.fills_lookback_ns

    def _has(self, feature: str) -> bool:
        return bool(self.venue.exchange.has.get(feature))

    async def events(self) -> AsyncIterator[Event]:
        """Every channel's events as they come; a channel's unexpected error is raised here."""
        await self.venue._ensure_markets()
        tasks = [asyncio.create_task(self._guard(c)) for c in self._channels()]
        try:
            while True:
                item = await self._queue.get()
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _guard(self, channel: Awaitable[None]) -> None:
        try:
            await channel
        except asyncio.CancelledError:
            raise
        except Exception as err:  # surfaced to the consumer instead of dying silently
            self._queue.put_nowait(_Failure(err))

    def _put(self, events: Iterable[Event]) -> None:
        for event in events:
            self._queue.put_nowait(event)

    # -- channels --------------------------------------------------------------------------------

    def _channels(self) -> list[Awaitable[None]]:
        v = self.venue
        channels: list[Awaitable[None]] = []
        for instrument, symbol in v.markets.items():
            channels.append(self._quotes(instrument, symbol))
            channels.append(self._book(instrument, symbol))
            channels.append(self._trades(instrument, symbol))
            if v.exchange.market(symbol).get("swap"):
                channels.append(self._funding(instrument))
        if self._has("watchOrders") and self._has("watchMyTrades"):
            channels.append(self._watch("orders", v.exchange.watch_orders, self._on_orders, private=True))
            channels.append(self._watch("fills", v.exchange.watch_my_trades, self._on_fills, private=True))
            channels.append(self._poll("reconcile", self.reconcile, self.reconcile_interval))
        else:
            channels.append(self._poll("reconcile", self.reconcile, v.poll_interval))
        return channels

    def _quotes(self, instrument: str, symbol: str) -> Awaitable[None]:
        ex = self.venue.exchange

        def from_tickers(tickers: dict[str, Any]) -> list[Event]:
            return [self.venue._quote(instrument, t) for s, t in tickers.items() if s == symbol]

        if self._has("watchBidsAsks"):
            return self._watch(f"quotes {symbol}", lambda: ex.watch_bids_asks([symbol]), from_tickers)
        if self._has("watchTicker"):
            return self._watch(
                f"quotes {symbol}",
                lambda: ex.watch_ticker(symbol),
                lambda t: [self.venue._quote(instrument, t)],
            )
        return self._poll(
            f"quotes {symbol}",
            lambda: self._as_events(self.venue.fetch_quote(instrument)),
            self.venue.poll_interval,
        )

    def _book(self, instrument: str, symbol: str) -> Awaitable[None]:
        ex = self.venue.exchange
        if self._has("watchOrderBook"):
            return self._watch(
                f"book {symbol}",
                lambda: ex.watch_order_book(symbol),
                lambda book: [self.venue._book(instrument, book, self.depth)],
            )
        return self._poll(
            f"book {symbol}",
            lambda: self._as_events(self.venue.fetch_book(instrument, self.depth)),
            self.venue.poll_interval,
        )

    def _trades(self, instrument: str, symbol: str) -> Awaitable[None]:
        ex = self.venue.exchange
        seen: set[str] = set()

        def new_trades(trades: list[dict[str, Any]]) -> list[Event]:
            out: list[Event] = []
            for t in trades:
                trade_id = str(t.get("id") or "")
                if trade_id and trade_id in seen:
                    continue
                seen.add(trade_id)
                out.append(self.venue._public_trade(instrument, t))
            return out

        if self._has("watchTrades"):
            return self._watch(f"trades {symbol}", lambda: ex.watch_trades(symbol), new_trades)

        async def poll() -> list[Event]:
            trades = await self.venue._retrying("fetch_trades", lambda: ex.fetch_trades(symbol))
            return new_trades(trades)

        return self._poll(f"trades {symbol}", poll, self.venue.poll_interval)

    def _funding(self, instrument: str) -> Awaitable[None]:
        last: list[tuple[float, int]] = []

        async def poll() -> list[Event]:
            rate = await self.venue.fetch_funding_rate(instrument)
            key = (rate.rate, rate.next_funding_ts)
            if last and last[0] == key:
                return []
            last[:] = [key]
            return [rate]

        return self._poll(f"funding {instrument}", poll, self.funding_interval)

    # -- private ---------------------------------------------------------------------------------

    def _on_orders(self, orders: list[dict[str, Any]]) -> list[Event]:
        v = self.venue
        out: list[Event] = []
        for order in orders:
            if order.get("symbol") not in v._instruments:
                continue
            update = v._update(order)
            if v._note_update(update):
                out.append(update)
        return out

    def _on_fills(self, trades: list[dict[str, Any]]) -> list[Event]:
        v = self.venue
        out: list[Event] = []
        for trade in trades:
            instrument = v._instruments.get(str(trade.get("symbol")))
            if instrument is None:
                continue
            fill = v._fill(instrument, trade)
            if v._note_fill(fill):
                out.append(fill)
        return out

    async def reconcile(self, unless_started_after: int | None = None) -> list[Event]:
        """Fills, then order states, that REST shows and the stream has not reported; balances and
        open orders become `venue.last_state`. Skipped (no events) when `unless_started_after` is
        given and another reconciliation started after that mark: it already covers the caller."""
        v = self.venue
        async with self._lock:
            if unless_started_after is not None and self._started > unless_started_after:
                return []
            self._started += 1
            events: list[Event] = []
            fills: list[Fill] = await v.fills_since(self._since_ns)
            events.extend(f for f in fills if v._note_fill(f))
            state: VenueState = await v.snapshot()
            open_ids = {o.client_order_id for o in state.open_orders}
            updates: list[OrderUpdate] = list(state.open_orders)
            for coid in v._unfinished_orders():
                if coid not in open_ids:
                    found = await v.fetch_order_update(coid)
                    if found is not None:
                        updates.append(found)
            events.extend(u for u in updates if v._note_update(u))
            v.last_state = state
            self.reconciliations += 1
            return events

    # -- loops -----------------------------------------------------------------------------------

    async def _as_events(self, event: Awaitable[Event]) -> list[Event]:
        return [await event]

    async def _watch(
        self,
        name: str,
        watch: Callable[[], Awaitable[Any]],
        handle: Callable[[Any], list[Event]],
        *,
        private: bool = False,
    ) -> None:
        """Watch forever; after a dropped connection back off and watch again. A private channel
        reconciles once the new connection holds (`settle` s without an error, or a first message),
        so what happened while it was down, or while it reconnected, is read from REST."""
        attempt = 0
        reconcile_pending = False
        while True:
            task: asyncio.Future[Any] = asyncio.ensure_future(watch())
            try:
                if reconcile_pending:
                    done, _ = await asyncio.wait({task}, timeout=self.settle)
                    if not done or task.exception() is None:
                        reconcile_pending = False
                        self._put(await self.reconcile(unless_started_after=self._started))
                        self.pending_reconciles.discard(name)
                result = await task
            except STREAM_RETRYABLE:
                attempt += 1
                self.reconnects[name] = self.reconnects.get(name, 0) + 1
                await asyncio.sleep(self.venue.reconnect_delay(attempt))
                reconcile_pending = private
                if private:
                    self.pending_reconciles.add(name)
                continue
            finally:
                if not task.done():
                    task.cancel()
            attempt = 0
            self._put(handle(result))

    async def _poll(self, name: str, fetch: Callable[[], Awaitable[list[Event]]], interval: float) -> None:
        """Fetch every `interval` s; a call that fails after its retries is tried at the next tick."""
        from connectors.ccxt_exchange import VenueUnavailable

        retryable: tuple[type[Exception], ...] = (VenueUnavailable, *STREAM_RETRYABLE)
        while True:
            try:
                self._put(await fetch())
            except retryable:
                self.reconnects[name] = self.reconnects.get(name, 0) + 1
            await asyncio.sleep(interval)
