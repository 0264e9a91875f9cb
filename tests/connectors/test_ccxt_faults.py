"""Fault tests of `CcxtExchange` against the local Binance emulator (real ccxt and ccxt.pro).

Each asserts what the exchange received, and that afterwards the connector's view (snapshot:
balances, open orders; the fills and order states it streamed) equals the emulator's.
Book: bids 249 x 10, 248 x 20; asks 250 x 1.5, 251 x 2. Account: 10000 USDT, 5 TSLAX; fees 0.1%.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import pytest

from connectors.ccxt_exchange import CcxtExchange, RetryPolicy
from connectors.emulators.binance import BinanceEmulator, BinanceSymbol, Fault, point_ccxt_at
from core.clock import LiveClock
from core.enums import OrderStatus, OrderType, Side
from core.events import Event, Fill, OrderUpdate
from core.orders import OrderRequest

D = Decimal
API_KEY = "test-api-key-not-real"
API_SECRET = "test-api-secret-not-real"
SYMBOL_ID = "TSLAXUSDT"
INSTRUMENT = "TSLAX-USDT"
ORDER_PATH = "/api/v3/order"
FAST = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.05, seed=5)
OPTIONS = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False}


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a state the emulator or the stream will reach; a generous guard against hangs."""
    async with asyncio.timeout(20):
        while not condition():  # noqa: ASYNC110 - the states belong to the emulator and ccxt
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

    def fills(self) -> list[tuple[str, Decimal, Decimal, str]]:
        return [(f.client_order_id, f.price, f.quantity, f.trade_id) for f in self.events if type(f) is Fill]

    def updates(self) -> list[tuple[str, OrderStatus, Decimal]]:
        return [
            (u.client_order_id, u.status, u.filled_quantity) for u in self.events if type(u) is OrderUpdate
        ]

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@pytest.fixture
async def emulator() -> AsyncIterator[BinanceEmulator]:
    emu = BinanceEmulator(
        API_KEY,
        API_SECRET,
        [BinanceSymbol("TSLAX", "USDT")],
        balances={"USDT": D("10000"), "TSLAX": D("5")},
    )
    await emu.start()
    emu.set_book(
        SYMBOL_ID, [(D("249"), D("10")), (D("248"), D("20"))], [(D("250"), D("1.5")), (D("251"), D("2"))]
    )
    yield emu
    await emu.close()


def make_venue(emulator: BinanceEmulator, *, pro: bool, **kw: Any) -> CcxtExchange:
    module: Any = ccxt_pro if pro else ccxt_async
    client = point_ccxt_at(
        module.binance({"apiKey": API_KEY, "secret": API_SECRET, "options": dict(OPTIONS)}), emulator.base_url
    )
    return CcxtExchange("binance", client, {INSTRUMENT: "TSLAX/USDT"}, LiveClock(), retry=FAST, **kw)


def limit(coid: str, side: Side, qty: str, price: str) -> OrderRequest:
    return OrderRequest(coid, "binance", INSTRUMENT, side, D(qty), OrderType.LIMIT, D(price))


async def assert_view_equals_emulator(venue: CcxtExchange, emulator: BinanceEmulator) -> None:
    """Balances (free + locked) and open orders (id, filled) as the connector reads them."""
    state = await venue.snapshot()
    for asset in ("USDT", "TSLAX"):
        assert state.balances[asset] == sum(emulator.balance(asset)), asset
    ours = sorted((o.client_order_id, o.filled_quantity) for o in state.open_orders)
    theirs = sorted(
        (o.client_order_id, o.executed_qty)
        for o in emulator.orders.values()
        if o.status in ("NEW", "PARTIALLY_FILLED")
    )
    assert ours == theirs


def owed(venue: CcxtExchange) -> bool:
    """True while a reconnected private channel has yet to reconcile."""
    return venue.current_stream is None or bool(venue.current_stream.pending_reconciles)


def user_subscriptions(emulator: BinanceEmulator) -> int:
    return sum(
        1 for m in emulator.streams.received if m.get("method") == "userDataStream.subscribe.signature"
    )


async def test_429_storm_respects_retry_after_and_places_one_order(emulator: BinanceEmulator) -> None:
    venue = make_venue(emulator, pro=False)
    try:
        await venue._ensure_markets()
        emulator.inject(Fault("rate_limit", times=2, path=ORDER_PATH, method="POST", retry_after=1))
        update = await venue.submit(limit("s-1", Side.BUY, "2", "240"))
        assert update.status is OrderStatus.ACCEPTED and update.client_order_id == "s-1"
        posts = emulator.requests_to(ORDER_PATH, "POST")
        assert [r.status for r in posts] == [429, 429, 200]
        # Before each re-send the order was looked up by client order id (and not found).
        lookups = emulator.requests_to(ORDER_PATH, "GET")
        assert [(r.params["origClientOrderId"], r.status) for r in lookups] == [("s-1", 400), ("s-1", 400)]
        # Nothing reached the exchange within Retry-After (1 s) of a 429; the backoff alone is < 0.05 s.
        sent = [r for r in emulator.requests if r.path == ORDER_PATH]
        for answered, following in itertools.pairwise(sent):
            if answered.status == 429:
                assert following.received_at - answered.received_at >= 1.0
        assert [o.client_order_id for o in emulator.orders.values()] == ["s-1"]
        assert emulator.balance("USDT") == (D("9520"), D("480"))
        await assert_view_equals_emulator(venue, emulator)
    finally:
        await venue.close()


async def test_5xx_after_the_exchange_accepted_the_order_makes_no_duplicate(
    emulator: BinanceEmulator,
) -> None:
    venue = make_venue(emulator, pro=False)
    try:
        await venue._ensure_markets()
        # The exchange places the order, then the gateway answers 502: ccxt sees ExchangeNotAvailable.
        emulator.inject(Fault("lost_response", path=ORDER_PATH, method="POST", status=502))
        update = await venue.submit(limit("l-1", Side.SELL, "1", "260"))
        assert update.status is OrderStatus.ACCEPTED and update.venue_order_id == "1"
        assert [r.status for r in emulator.requests_to(ORDER_PATH, "POST")] == [502]
        (lookup,) = emulator.requests_to(ORDER_PATH, "GET")
        assert lookup.params["origClientOrderId"] == "l-1" and lookup.status == 200
        assert [(o.client_order_id, o.status) for o in emulator.orders.values()] == [("l-1", "NEW")]
        assert emulator.balance("TSLAX") == (D("4"), D("1"))
        await assert_view_equals_emulator(venue, emulator)
    finally:
        await venue.close()


async def test_dropped_websocket_reconnects_and_reports_the_missed_fill_once(
    emulator: BinanceEmulator,
) -> None:
    venue = make_venue(emulator, pro=True, reconcile_interval=3600.0)
    collector = Collector(venue)
    try:
        await until(lambda: user_subscriptions(emulator) == 1, "the user data stream")
        await venue.submit(limit("d-1", Side.BUY, "2", "249.5"))
        connections = emulator.streams.connections
        # The exchange drops every websocket and refuses new ones for a while.
        emulator.streams.refuse = True
        assert await emulator.streams.drop() == connections
        await until(lambda: emulator.streams.refused >= 2, "refused reconnects")
        # Meanwhile 0.5 of our bid fills (maker, at 249.5): nobody is connected to hear it.
        emulator.set_book(SYMBOL_ID, [(D("248"), D("20"))], [(D("249.4"), D("0.5")), (D("251"), D("2"))])
        emulator.streams.refuse = False
        await until(lambda: bool(collector.fills()), "the missed fill, from the reconciliation")
        assert collector.fills() == [("d-1", D("249.5"), D("0.5"), "1")]
        assert collector.updates() == [("d-1", OrderStatus.PARTIALLY_FILLED, D("0.5"))]
        # The rest fills after the reconnect: it arrives over the new websocket, once.
        await until(
            lambda: user_subscriptions(emulator) == 2 and not owed(venue), "re-subscribed, reconciled"
        )
        trades_polled = len(emulator.requests_to("/api/v3/myTrades"))
        emulator.set_book(SYMBOL_ID, [(D("248"), D("20"))], [(D("249"), D("3"))])
        await until(lambda: len(collector.updates()) == 2 and len(collector.fills()) == 2, "the rest")
        assert collector.fills() == [("d-1", D("249.5"), D("0.5"), "1"), ("d-1", D("249.5"), D("1.5"), "2")]
        assert collector.updates() == [
            ("d-1", OrderStatus.PARTIALLY_FILLED, D("0.5")),
            ("d-1", OrderStatus.FILLED, D("2")),
        ]
        assert len(emulator.requests_to("/api/v3/myTrades")) == trades_polled  # no REST for the second
        stream = venue.current_stream
        # Both private channels saw the drop, and reconnects were refused before one held.
        assert stream is not None and stream.reconnects["orders"] >= 1 and stream.reconnects["fills"] >= 1
        assert emulator.streams.refused >= 2
        # 2 TSLAX at 249.5 = 499 USDT paid; 0.1% maker fee in TSLAX: 2 - 0.002 received.
        assert emulator.balance("USDT") == (D("9501"), D("0"))
        assert emulator.balance("TSLAX") == (D("6.998"), D("0"))
        await assert_view_equals_emulator(venue, emulator)
    finally:
        await collector.close()
        await venue.close()


async def test_partial_fill_then_disconnect_reports_each_fill_once(emulator: BinanceEmulator) -> None:
    venue = make_venue(emulator, pro=True, reconcile_interval=3600.0)
    collector = Collector(venue)
    try:
        await until(lambda: user_subscriptions(emulator) == 1, "the user data stream")
        await venue.submit(limit("pd-1", Side.SELL, "3", "252"))
        # 1 of 3 fills while connected: reported over the websocket.
        emulator.set_book(SYMBOL_ID, [(D("252.5"), D("1"))], [(D("253"), D("2"))])
        await until(lambda: bool(collector.fills()) and bool(collector.updates()), "the first fill")
        assert collector.fills() == [("pd-1", D("252"), D("1"), "1")]
        # Then the connection drops; the other 2 fill before it is back.
        emulator.streams.refuse = True
        await emulator.streams.drop()
        await until(lambda: emulator.streams.refused >= 1, "a refused reconnect")
        emulator.set_book(SYMBOL_ID, [(D("253"), D("5"))], [(D("254"), D("2"))])
        emulator.streams.refuse = False
        await until(lambda: len(collector.updates()) == 2 and len(collector.fills()) == 2, "the rest")
        # The reconciliation read both trades from REST; only the missed one is new.
        assert collector.fills() == [("pd-1", D("252"), D("1"), "1"), ("pd-1", D("252"), D("2"), "2")]
        assert collector.updates() == [
            ("pd-1", OrderStatus.PARTIALLY_FILLED, D("1")),
            ("pd-1", OrderStatus.FILLED, D("3")),
        ]
        assert emulator.requests_to("/api/v3/myTrades")[-1].params["symbol"] == SYMBOL_ID
        # 3 TSLAX sold at 252 = 756 USDT less 0.1% = 755.244.
        assert emulator.balance("USDT") == (D("10755.244"), D("0"))
        assert emulator.balance("TSLAX") == (D("2"), D("0"))
        await assert_view_equals_emulator(venue, emulator)
    finally:
        await collector.close()
        await venue.close()
