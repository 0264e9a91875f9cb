"""`CcxtExchange.stream()` against the local Binance emulator: the real ccxt.pro client over
websockets, and the real REST-only ccxt client by polling.

Book: bids 249 x 10, 248 x 20; asks 250 x 1.5, 251 x 2. Account: 10000 USDT, 5 TSLAX; fees 0.1%.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import pytest

from connectors.ccxt_exchange import CcxtExchange, RetryPolicy
from connectors.emulators.binance import BinanceEmulator, BinanceSymbol, point_ccxt_at
from core.clock import LiveClock
from core.enums import Liquidity, OrderStatus, OrderType, Side
from core.events import BookUpdate, Event, Fill, OrderUpdate, Quote, Trade
from core.orders import OrderRequest

D = Decimal
API_KEY = "test-api-key-not-real"
API_SECRET = "test-api-secret-not-real"
SYMBOL_ID = "TSLAXUSDT"
INSTRUMENT = "TSLAX-USDT"
FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, seed=11)
OPTIONS = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False}
BIDS = [(D("249"), D("10")), (D("248"), D("20"))]
ASKS = [(D("250"), D("1.5")), (D("251"), D("2"))]


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a state the emulator or the stream will reach; a generous guard against hangs."""
    async with asyncio.timeout(20):
        while not condition():  # noqa: ASYNC110 - the states belong to the emulator and ccxt, no event to wait on
            await asyncio.sleep(0.005)
    assert condition(), what


class Collector:
    """Drains `venue.stream()` in the background into `events`."""

    def __init__(self, venue: CcxtExchange) -> None:
        self.events: list[Event] = []
        self._stream = venue.stream()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self._stream:
            self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if type(e) is kind]

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._stream.aclose()  # type: ignore[attr-defined]


@pytest.fixture
async def emulator() -> AsyncIterator[BinanceEmulator]:
    emu = BinanceEmulator(
        API_KEY,
        API_SECRET,
        [BinanceSymbol("TSLAX", "USDT")],
        balances={"USDT": D("10000"), "TSLAX": D("5")},
    )
    await emu.start()
    emu.set_book(SYMBOL_ID, BIDS, ASKS)
    yield emu
    await emu.close()


def ws_venue(emulator: BinanceEmulator, **kw: Any) -> CcxtExchange:
    client = point_ccxt_at(
        ccxt_pro.binance({"apiKey": API_KEY, "secret": API_SECRET, "options": dict(OPTIONS)}),
        emulator.base_url,
    )
    return CcxtExchange("binance", client, {INSTRUMENT: "TSLAX/USDT"}, LiveClock(), retry=FAST, **kw)


def rest_venue(emulator: BinanceEmulator, **kw: Any) -> CcxtExchange:
    client = point_ccxt_at(
        ccxt_async.binance({"apiKey": API_KEY, "secret": API_SECRET, "options": dict(OPTIONS)}),
        emulator.base_url,
    )
    return CcxtExchange("binance", client, {INSTRUMENT: "TSLAX/USDT"}, LiveClock(), retry=FAST, **kw)


def subscribed(emulator: BinanceEmulator) -> set[str]:
    """Stream names and WS API methods the emulator has received."""
    names: set[str] = set()
    for msg in emulator.streams.received:
        names.update(msg.get("params") or []) if msg.get("method") == "SUBSCRIBE" else names.add(
            str(msg.get("method"))
        )
    return names


def reconciled(venue: CcxtExchange) -> int:
    return venue.current_stream.reconciliations if venue.current_stream is not None else 0


WS_READY = {
    "tslaxusdt@bookTicker",
    "tslaxusdt@depth@100ms",
    "tslaxusdt@trade",
    "userDataStream.subscribe.signature",
}


async def test_websocket_stream_yields_quotes_book_trades_orders_and_fills(emulator: BinanceEmulator) -> None:
    venue = ws_venue(emulator, reconcile_interval=3600.0)
    collector = Collector(venue)
    try:
        await until(lambda: subscribed(emulator) >= WS_READY, "websocket subscriptions")
        await until(lambda: reconciled(venue) == 1, "the start-up reconciliation")
        await until(lambda: bool(collector.of(BookUpdate)), "the first book")
        # The first book is the REST snapshot ccxt.pro takes when it subscribes to the depth diffs.
        first = collector.of(BookUpdate)[0]
        assert first.bids == ((249.0, 10.0), (248.0, 20.0)) and first.asks == ((250.0, 1.5), (251.0, 2.0))

        update = await venue.submit(
            OrderRequest("w-1", "binance", INSTRUMENT, Side.BUY, D("2"), OrderType.LIMIT, D("249.5"))
        )
        assert update.status is OrderStatus.ACCEPTED
        # Our resting bid becomes the best bid: a bookTicker push and a depth diff.
        await until(lambda: any(q.bid == 249.5 for q in collector.of(Quote)), "the new best bid")
        quote = next(q for q in collector.of(Quote) if q.bid == 249.5)
        assert (quote.bid, quote.bid_size, quote.ask, quote.ask_size) == (249.5, 2.0, 250.0, 1.5)
        await until(lambda: collector.of(BookUpdate)[-1].bids[0] == (249.5, 2.0), "the diffed book")

        # The market drops: an ask of 0.5 at 249.4 crosses our bid, which fills 0.5 as maker at 249.5.
        emulator.set_book(SYMBOL_ID, [(D("248"), D("20"))], [(D("249.4"), D("0.5")), (D("251"), D("2"))])
        await until(lambda: bool(collector.of(Fill)) and bool(collector.of(OrderUpdate)), "fill and update")
        (fill,) = collector.of(Fill)
        assert (fill.client_order_id, fill.side, fill.price, fill.quantity) == (
            "w-1",
            Side.BUY,
            D("249.5"),
            D("0.5"),
        )
        assert (fill.fee, fill.fee_asset, fill.liquidity, fill.trade_id) == (
            D("0.0005"),
            "TSLAX",
            Liquidity.MAKER,
            "1",
        )
        (order_update,) = collector.of(OrderUpdate)
        assert (order_update.client_order_id, order_update.status, order_update.filled_quantity) == (
            "w-1",
            OrderStatus.PARTIALLY_FILLED,
            D("0.5"),
        )
        await until(lambda: bool(collector.of(Trade)), "the public trade")
        (trade,) = collector.of(Trade)
        assert (trade.price, trade.size, trade.trade_id) == (249.5, 0.5, "1")
        # All of it came over the websockets: REST saw the start-up reconciliation only.
        assert len(emulator.requests_to("/api/v3/myTrades")) == 1
        assert len(emulator.requests_to("/api/v3/openOrders")) == 1
        # ccxt.pro spreads subscriptions over /ws/0, /ws/1, /ws/2; the user stream is on the WS API.
        assert emulator.streams.connections == 4
    finally:
        await collector.close()
        await venue.close()


async def test_rest_polling_when_the_client_has_no_websockets(emulator: BinanceEmulator) -> None:
    venue = rest_venue(emulator, poll_interval=0.02)
    assert not venue.exchange.has.get("watchOrders") and not venue.exchange.has.get("watchBidsAsks")
    await venue.submit(
        OrderRequest("p-1", "binance", INSTRUMENT, Side.SELL, D("1"), OrderType.LIMIT, D("252"))
    )
    collector = Collector(venue)
    try:
        await until(lambda: bool(collector.of(Quote)) and bool(collector.of(BookUpdate)), "quote and book")
        quote = collector.of(Quote)[0]
        assert (quote.bid, quote.ask, quote.bid_size, quote.ask_size) == (249.0, 250.0, 10.0, 1.5)
        assert collector.of(BookUpdate)[0].asks == ((250.0, 1.5), (251.0, 2.0), (252.0, 1.0))
        # Someone takes the outside asks and our 252 offer: 1 @ 252 to us as maker.
        emulator.set_book(SYMBOL_ID, [(D("253"), D("3"))], [(D("254"), D("1"))])
        await until(lambda: any(u.status is OrderStatus.FILLED for u in collector.of(OrderUpdate)), "filled")
        (fill,) = collector.of(Fill)
        assert (fill.client_order_id, fill.side, fill.price, fill.quantity, fill.fee, fill.fee_asset) == (
            "p-1",
            Side.SELL,
            D("252"),
            D("1"),
            D("0.252"),
            "USDT",
        )
        statuses = [(u.client_order_id, u.status) for u in collector.of(OrderUpdate)]
        assert statuses == [("p-1", OrderStatus.FILLED)]  # ACCEPTED was submit's own answer
        await until(lambda: len(emulator.requests_to("/api/v3/myTrades")) >= 3, "more polls")
        assert len(collector.of(Fill)) == 1  # polled again, reported once
        assert emulator.streams.connections == 0
    finally:
        await collector.close()
        await venue.close()
