"""`CcxtExchange` with the real ccxt async binance client against the local Binance spot emulator.

Book: bids 249 x 10, 248 x 20; asks 250 x 1.5, 251 x 2. Account: 10000 USDT, 0 TSLAX; fees 0.1%.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt_async
import pytest

from connectors.ccxt_exchange import CcxtExchange, RetryPolicy, VenueUnavailable
from connectors.emulators import BinanceEmulator, BinanceSymbol, Fault
from core.clock import LiveClock
from core.enums import Liquidity, OrderStatus, OrderType, Side, TimeInForce
from core.orders import OrderRequest

D = Decimal
API_KEY = "test-api-key-not-real"
API_SECRET = "test-api-secret-not-real"
SYMBOL_ID = "TSLAXUSDT"
INSTRUMENT = "TSLAX-USDT"
ORDER_PATH = "/api/v3/order"
FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, seed=7)


def make_client(base_url: str, **extra: Any) -> Any:
    client = ccxt_async.binance(
        {
            "apiKey": API_KEY,
            "secret": API_SECRET,
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False},
            **extra,
        }
    )
    for name, url in client.urls["api"].items():
        if isinstance(url, str):
            client.urls["api"][name] = base_url + urlsplit(url).path
    return client


@pytest.fixture
async def emulator() -> AsyncIterator[BinanceEmulator]:
    emu = BinanceEmulator(
        API_KEY,
        API_SECRET,
        [BinanceSymbol("TSLAX", "USDT")],
        balances={"USDT": D("10000"), "TSLAX": D("0")},
    )
    await emu.start()
    emu.set_book(
        SYMBOL_ID, [(D("249"), D("10")), (D("248"), D("20"))], [(D("250"), D("1.5")), (D("251"), D("2"))]
    )
    yield emu
    await emu.close()


async def _venue(emulator: BinanceEmulator, retry: RetryPolicy = FAST, **extra: Any) -> CcxtExchange:
    venue = CcxtExchange(
        "binance",
        make_client(emulator.base_url, **extra),
        {INSTRUMENT: "TSLAX/USDT"},
        LiveClock(),
        retry=retry,
    )
    await venue._ensure_markets()
    return venue


@pytest.fixture
async def venue(emulator: BinanceEmulator) -> AsyncIterator[CcxtExchange]:
    v = await _venue(emulator)
    yield v
    await v.close()


def limit(coid: str, side: Side, qty: str, price: str, **kw: Any) -> OrderRequest:
    return OrderRequest(coid, "binance", INSTRUMENT, side, D(qty), OrderType.LIMIT, D(price), **kw)


def posts(emulator: BinanceEmulator) -> list[int]:
    return [r.status for r in emulator.requests_to(ORDER_PATH, "POST")]


async def test_limit_order_rests_then_is_cancelled(venue: CcxtExchange, emulator: BinanceEmulator) -> None:
    update = await venue.submit(limit("c-1", Side.BUY, "2", "240"))
    assert update.status is OrderStatus.ACCEPTED and update.client_order_id == "c-1"
    assert update.filled_quantity == 0 and update.venue_order_id == "1"
    (post,) = emulator.requests_to(ORDER_PATH, "POST")
    assert (post.params["newClientOrderId"], post.params["type"], post.params["timeInForce"]) == (
        "c-1",
        "LIMIT",
        "GTC",
    )
    state = await venue.snapshot()
    assert [(o.client_order_id, o.status) for o in state.open_orders] == [("c-1", OrderStatus.ACCEPTED)]
    assert emulator.balance("USDT") == (D("9520"), D("480"))

    cancelled = await venue.cancel("c-1")
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.venue_order_id == "1"
    (delete,) = emulator.requests_to(ORDER_PATH, "DELETE")
    assert delete.params["origClientOrderId"] == "c-1"
    assert emulator.balance("USDT") == (D("10000"), D("0"))
    assert (await venue.snapshot()).open_orders == ()
    # Cancelling again: the exchange no longer knows it as open.
    again = await venue.cancel("c-1")
    assert again.status is OrderStatus.REJECTED and "Unknown order" in again.reason
    unknown = await venue.cancel("never-sent")
    assert unknown.status is OrderStatus.REJECTED and "unknown order" in unknown.reason


async def test_market_buy_fills_with_exact_decimal_fills(
    venue: CcxtExchange, emulator: BinanceEmulator
) -> None:
    request = OrderRequest("m-1", "binance", INSTRUMENT, Side.BUY, D("3"), OrderType.MARKET)
    update = await venue.submit(request)
    # 1.5 @ 250 + 1.5 @ 251 = 751.5 USDT for 3 TSLAX: average 250.5.
    assert update.status is OrderStatus.FILLED
    assert update.filled_quantity == D("3") and update.average_price == D("250.5")
    fills = await venue.fills_since(0)
    # Taker fee 0.1% of the TSLAX received: 0.0015 on each 1.5.
    assert [(f.price, f.quantity, f.fee, f.fee_asset) for f in fills] == [
        (D("250"), D("1.5"), D("0.0015"), "TSLAX"),
        (D("251"), D("1.5"), D("0.0015"), "TSLAX"),
    ]
    assert all(f.client_order_id == "m-1" and f.side is Side.BUY for f in fills)
    assert all(f.liquidity is Liquidity.TAKER and f.instrument == INSTRUMENT for f in fills)
    assert [f.trade_id for f in fills] == ["1", "2"]
    assert await venue.fills_since(fills[-1].ts + 1) == []
    # Fill totals match what the exchange moved.
    assert sum(f.quantity - f.fee for f in fills) == emulator.balance("TSLAX")[0] == D("2.997")
    assert D(10000) - sum(f.price * f.quantity for f in fills) == emulator.balance("USDT")[0]


async def test_insufficient_funds_is_rejected_and_nothing_changes(
    venue: CcxtExchange, emulator: BinanceEmulator
) -> None:
    before = await venue.snapshot()
    update = await venue.submit(limit("s-1", Side.SELL, "1", "260"))
    assert update.status is OrderStatus.REJECTED
    assert "insufficient balance" in update.reason
    assert emulator.orders == {} and emulator.trades == []
    assert posts(emulator) == [400]
    after = await venue.snapshot()
    assert after.balances == before.balances and after.open_orders == ()


async def test_post_only_that_would_take_is_rejected(venue: CcxtExchange, emulator: BinanceEmulator) -> None:
    update = await venue.submit(limit("p-1", Side.BUY, "1", "250", post_only=True))
    assert update.status is OrderStatus.REJECTED and "immediately match" in update.reason
    (post,) = emulator.requests_to(ORDER_PATH, "POST")
    assert post.params["type"] == "LIMIT_MAKER"
    assert emulator.balance("USDT") == (D("10000"), D("0"))


async def test_ioc_fills_what_crosses_and_expires(venue: CcxtExchange, emulator: BinanceEmulator) -> None:
    update = await venue.submit(limit("i-1", Side.BUY, "2", "250", time_in_force=TimeInForce.IOC))
    assert update.status is OrderStatus.EXPIRED and update.filled_quantity == D("1.5")
    (post,) = emulator.requests_to(ORDER_PATH, "POST")
    assert post.params["timeInForce"] == "IOC"


async def test_reduce_only_on_spot_is_rejected_without_sending(
    venue: CcxtExchange, emulator: BinanceEmulator
) -> None:
    update = await venue.submit(limit("r-1", Side.SELL, "1", "260", reduce_only=True))
    assert update.status is OrderStatus.REJECTED and "not a derivatives market" in update.reason
    assert posts(emulator) == []


async def test_429_then_success_places_exactly_one_order(
    venue: CcxtExchange, emulator: BinanceEmulator
) -> None:
    emulator.inject(Fault("rate_limit", path=ORDER_PATH))
    update = await venue.submit(limit("q-1", Side.BUY, "1", "240"))
    assert update.status is OrderStatus.ACCEPTED
    # The 429'd POST was not processed; the lookup by client order id found nothing; one re-send.
    assert posts(emulator) == [429, 200]
    (lookup,) = emulator.requests_to(ORDER_PATH, "GET")
    assert lookup.params["origClientOrderId"] == "q-1" and lookup.status == 400
    assert [o.client_order_id for o in emulator.orders.values()] == ["q-1"]


async def test_timeout_after_accept_is_found_not_duplicated(emulator: BinanceEmulator) -> None:
    # ccxt gives up after 100 ms; the exchange holds the request 300 ms, then accepts it. The
    # first backoff (0.5 to 1 s) outlasts the hold, so the lookup by client order id finds it.
    venue = await _venue(emulator, RetryPolicy(max_attempts=3, base_delay=1.0, seed=1), timeout=100)
    try:
        emulator.inject(Fault("delay", delay=0.3, path=ORDER_PATH))
        update = await venue.submit(limit("t-1", Side.BUY, "2", "240"))
    finally:
        await venue.close()
    assert update.status is OrderStatus.ACCEPTED and update.client_order_id == "t-1"
    assert len(emulator.requests_to(ORDER_PATH, "POST")) == 1
    (lookup,) = emulator.requests_to(ORDER_PATH, "GET")
    assert lookup.params["origClientOrderId"] == "t-1" and lookup.status == 200
    assert [o.client_order_id for o in emulator.orders.values()] == ["t-1"]
    assert update.venue_order_id == "1"


async def test_exhausted_retries_raise_venue_unavailable(
    venue: CcxtExchange, emulator: BinanceEmulator
) -> None:
    emulator.inject(Fault("server_error", times=100, status=503, path=ORDER_PATH))
    with pytest.raises(VenueUnavailable) as info:
        await venue.submit(limit("u-1", Side.BUY, "1", "240"))
    assert info.value.attempts == FAST.max_attempts and info.value.operation == "submit u-1"
    assert emulator.orders == {}
    # One POST, then each retry looks the order up first; every request was answered 503.
    assert [r.method for r in emulator.requests_to(ORDER_PATH)] == ["POST"] + ["GET"] * (
        FAST.max_attempts - 1
    )
    assert all(r.status == 503 for r in emulator.requests_to(ORDER_PATH))


async def test_snapshot_balances_equal_the_emulators(venue: CcxtExchange, emulator: BinanceEmulator) -> None:
    await venue.submit(OrderRequest("m-2", "binance", INSTRUMENT, Side.BUY, D("1"), OrderType.MARKET))
    await venue.submit(limit("c-2", Side.BUY, "0.5", "245"))
    state = await venue.snapshot()
    expected = {asset: sum(emulator.balance(asset)) for asset in ("USDT", "TSLAX")}
    assert state.balances == expected
    assert expected == {"USDT": D("9750"), "TSLAX": D("0.999")}
    assert [o.client_order_id for o in state.open_orders] == ["c-2"]


async def test_quote_and_book_are_the_emulators_levels(venue: CcxtExchange) -> None:
    quote = await venue.fetch_quote(INSTRUMENT)
    assert (quote.bid, quote.ask, quote.bid_size, quote.ask_size) == (249.0, 250.0, 10.0, 1.5)
    assert quote.venue == "binance" and quote.instrument == INSTRUMENT
    book = await venue.fetch_book(INSTRUMENT, 5)
    assert book.bids == ((249.0, 10.0), (248.0, 20.0)) and book.asks == ((250.0, 1.5), (251.0, 2.0))
    assert book.is_snapshot


def test_backoff_is_exponential_jittered_and_seeded() -> None:
    def delays(seed: int) -> list[float]:
        v = CcxtExchange(
            "x",
            ccxt_async.binance(),
            {},
            LiveClock(),
            retry=RetryPolicy(base_delay=0.1, max_delay=1.0, seed=seed),
        )
        return [v.backoff(n) for n in range(1, 7)]

    a = delays(3)
    assert a == delays(3) and a != delays(4)
    for n, d in enumerate(a, start=1):
        ceiling = min(1.0, 0.1 * 2 ** (n - 1))
        assert ceiling / 2 <= d <= ceiling


async def test_ccxt_leaves_the_callers_decimal_context_alone(venue: CcxtExchange) -> None:
    import decimal

    # ccxt's decimal_to_precision traps Underflow and rounds half-up on the current context;
    # through the connector it only ever touches a private copy.
    before = decimal.getcontext()
    saved = (before.rounding, before.traps[decimal.Underflow], before.prec)
    await venue.submit(OrderRequest("ctx-1", "binance", INSTRUMENT, Side.BUY, D("1.5"), OrderType.MARKET))
    await venue.snapshot()
    after = decimal.getcontext()
    assert (
        (after.rounding, after.traps[decimal.Underflow], after.prec)
        == saved
        == (
            decimal.ROUND_HALF_EVEN,
            False,
            28,
        )
    )
