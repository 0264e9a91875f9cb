"""The simulated stock broker: session rules per order type, spread, commissions, expiry, balances.

Every expected amount is worked out by hand in the comments. Monday 2025-06-02 is a normal trading
day (EDT, UTC-4): overnight until 04:00, pre-market 04:00-09:30, regular 09:30-16:00, post-market
16:00-20:00, then overnight again.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from connectors.sim.broker import BrokerAsset, BrokerConfig, SimBroker
from core.clock import SimulatedClock
from core.enums import Liquidity, OrderStatus, OrderType, Session, Side, TimeInForce
from core.errors import InvalidInput
from core.events import Fill, MarketStatus, OrderUpdate, Quote, Trade
from core.instruments import InstrumentRegistry, Spot
from core.orders import MintRequest, OrderRequest
from core.portfolio import Portfolio
from tests.connectors.sim.venue_harness import HOUR, MINUTE, MS, Harness, calendar, et, fills, updates

D = Decimal
TSLA = Spot("TSLA/USD", "TSLA", "USD", price_increment=D("0.01"), size_increment=D("0.000000001"))
LATENCY = 50 * MS


def make(
    config: BrokerConfig | None = None,
    fractionable: bool = True,
    overnight_tradable: bool = True,
    balances: dict[str, Decimal] | None = None,
    start: int = et(2025, 6, 2, 0),
) -> tuple[SimBroker, Harness]:
    clock = SimulatedClock(start)
    broker = SimBroker(
        "alpaca",
        clock,
        calendar(),
        [BrokerAsset(TSLA, fractionable, overnight_tradable)],
        config if config is not None else BrokerConfig(latency_ns=LATENCY),
        balances if balances is not None else {"USD": D(10_000), "TSLA": D(10)},
    )
    return broker, Harness(broker, clock)


def quote(ts: int, bid: str, ask: str) -> Quote:
    return Quote(ts, "alpaca", "TSLA/USD", float(bid), float(ask), 100.0, 100.0)


def market(cid: str, side: Side, quantity: str) -> OrderRequest:
    return OrderRequest(cid, "alpaca", "TSLA/USD", side, D(quantity), OrderType.MARKET)


def limit(
    cid: str,
    side: Side,
    quantity: str,
    price: str,
    extended: bool = False,
    tif: TimeInForce = TimeInForce.DAY,
) -> OrderRequest:
    return OrderRequest(
        cid, "alpaca", "TSLA/USD", side, D(quantity), OrderType.LIMIT, D(price), tif, extended_hours=extended
    )


async def test_market_order_at_3am_is_rejected_naming_session_and_type() -> None:
    broker, h = make()
    h.feed(quote(et(2025, 6, 2, 2, 59), "250.00", "250.10"))
    h.run_until(et(2025, 6, 2, 3))
    assert (await broker.submit(market("m1", Side.BUY, "1"))).status is OrderStatus.NEW
    h.run_until(et(2025, 6, 2, 3) + LATENCY)
    [update] = updates(events := h.drain())
    assert len(events) == 1
    assert update == OrderUpdate(
        et(2025, 6, 2, 3) + LATENCY,
        "alpaca",
        "m1",
        OrderStatus.REJECTED,
        reason="session: overnight, a market order is accepted only in the regular session",
    )
    assert broker.ledger.reserved("USD") == 0


async def test_extended_hours_limit_at_5am_rests_then_fills_at_its_limit_when_crossed() -> None:
    config = BrokerConfig(latency_ns=LATENCY, spread_bps=D(10), commission_per_share=D("0.005"))
    broker, h = make(config)
    h.feed(quote(et(2025, 6, 2, 4, 59), "249.90", "250.10"))
    h.run_until(et(2025, 6, 2, 5))
    await broker.submit(limit("l1", Side.BUY, "2", "249.50", extended=True))
    h.run_until(et(2025, 6, 2, 5) + LATENCY)
    # first look: taker price 250.10 x 1.001 = 250.3501 > 249.50: rests
    assert [u.status for u in updates(h.drain())] == [OrderStatus.ACCEPTED]
    # reserved: 2 x 249.50 = 499.00 + commission 2 x 0.005 = 0.01
    assert broker.ledger.reserved("USD") == D("499.01")
    h.feed(quote(et(2025, 6, 2, 5, 10), "249.40", "249.60"))  # ask 249.60 > 249.50: no fill
    assert h.drain() == []
    h.feed(quote(et(2025, 6, 2, 5, 20), "249.30", "249.50"))  # ask reaches the limit
    events = h.drain()
    [fill] = fills(events)
    # at the limit 249.50: notional 2 x 249.50 = 499.00; commission 0.01
    assert fill == Fill(
        et(2025, 6, 2, 5, 20),
        "alpaca",
        "TSLA/USD",
        "l1",
        Side.BUY,
        D("249.50"),
        D(2),
        D("0.01"),
        "USD",
        Liquidity.MAKER,
        "alpaca-1",
        D("499.00"),
    )
    # USD 10000 - 499.00 - 0.01 = 9500.99; TSLA 10 + 2 = 12
    assert broker.ledger.balances() == {"USD": D("9500.99"), "TSLA": D(12)}
    assert broker.ledger.reserved("USD") == 0


async def test_market_buy_and_sell_spread_commission_and_regulatory_fees_exact() -> None:
    config = BrokerConfig(
        latency_ns=LATENCY,
        spread_bps=D(5),
        commission_per_share=D("0.004"),
        commission_bps=D(1),
        sec_fee_rate=D("0.0000278"),
        taf_per_share=D("0.000166"),
        taf_max=D("8.30"),
    )
    broker, h = make(config, balances={"USD": D(10_000)})
    h.feed(quote(et(2025, 6, 2, 10), "100.00", "100.20"))
    await broker.submit(market("b1", Side.BUY, "10"))
    h.run_until(et(2025, 6, 2, 10) + LATENCY)
    [buy] = fills(h.drain())
    # price 100.20 x (1 + 5/10000) = 100.2501; notional 10 x 100.2501 = 1002.501 -> 1002.50
    # commission 10 x 0.004 + 1002.50 x 1/10000 = 0.04 + 0.10025 = 0.14025 -> 0.15; buys pay no SEC/TAF
    assert (buy.price, buy.notional, buy.fee) == (D("100.2501"), D("1002.50"), D("0.15"))
    h.run_until(et(2025, 6, 2, 10, 1))
    await broker.submit(market("s1", Side.SELL, "10"))
    h.run_until(et(2025, 6, 2, 10, 1) + LATENCY)
    [sell] = fills(h.drain())
    # price 100.00 x (1 - 5/10000) = 99.95; notional 999.50
    # commission 0.04 + 999.50 / 10000 = 0.04 + 0.09995 = 0.13995 -> 0.14
    # SEC 999.50 x 0.0000278 = 0.0277861 -> 0.03; TAF 10 x 0.000166 = 0.00166 -> 0.01; fee 0.18
    assert (sell.price, sell.notional, sell.fee) == (D("99.95"), D("999.50"), D("0.18"))
    # USD 10000 - 1002.50 - 0.15 + 999.50 - 0.18 = 9996.67
    assert broker.ledger.balances() == {"USD": D("9996.67"), "TSLA": D(0)}
    portfolio = Portfolio(InstrumentRegistry([TSLA]))
    portfolio.deposit("alpaca", "USD", D(10_000))
    portfolio.apply_fill(buy)
    portfolio.apply_fill(sell)
    assert portfolio.balance("alpaca", "USD") == D("9996.67")
    assert portfolio.fees_paid("alpaca", "USD") == D("0.33")


async def test_min_commission_and_taf_cap() -> None:
    broker, _ = make(
        BrokerConfig(latency_ns=0, min_commission=D(1), taf_per_share=D("0.000166"), taf_max=D("8.30")),
        balances={"USD": D(0), "TSLA": D(100_000)},
    )
    assert broker.fee(Side.BUY, D(10), D(1000)) == D(1)  # no per-share or bps commission: the minimum 1.00
    # TAF 100000 x 0.000166 = 16.60, capped at 8.30; plus the minimum commission 1.00
    assert broker.fee(Side.SELL, D(100_000), D(1000)) == D("9.30")


async def test_fractional_quantity_only_when_fractionable() -> None:
    broker, h = make(fractionable=False)
    h.run_until(et(2025, 6, 2, 10))
    ack = await broker.submit(market("m1", Side.BUY, "0.5"))
    assert ack.status is OrderStatus.REJECTED
    assert ack.reason == "quantity: 0.5 is fractional; TSLA/USD is not fractionable"
    broker, h = make(fractionable=True)
    h.feed(quote(et(2025, 6, 2, 10), "100.00", "100.00"))
    assert (await broker.submit(market("m1", Side.BUY, "0.5"))).status is OrderStatus.NEW
    h.run_until(et(2025, 6, 2, 10) + LATENCY)
    [fill] = fills(h.drain())
    assert (fill.quantity, fill.notional) == (D("0.5"), D("50.00"))


async def test_day_order_expires_at_the_end_of_its_session() -> None:
    broker, h = make()
    h.feed(quote(et(2025, 6, 2, 4, 59), "249.90", "250.10"))
    h.run_until(et(2025, 6, 2, 5))
    await broker.submit(limit("l1", Side.BUY, "1", "200.00", extended=True))
    h.run_until(et(2025, 6, 2, 5) + LATENCY)
    h.drain()
    assert broker.ledger.reserved("USD") == D("200.00")
    h.run_until(et(2025, 6, 2, 9, 30) - 1)  # still pre-market: alive
    assert h.drain() == []
    h.run_until(et(2025, 6, 2, 9, 30))  # pre-market ends at 09:30 ET
    [update] = updates(events := h.drain())
    assert len(events) == 1
    assert update == OrderUpdate(
        et(2025, 6, 2, 9, 30),
        "alpaca",
        "l1",
        OrderStatus.EXPIRED,
        reason="time_in_force: day, expired at the end of pre_market",
    )
    assert broker.ledger.reserved("USD") == 0
    # a later crossing price does not fill it
    h.feed(quote(et(2025, 6, 2, 9, 31), "199.00", "199.50"))
    assert h.drain() == []


async def test_regular_day_limit_expires_at_16h_and_gtc_waits_for_the_next_regular_session() -> None:
    broker, h = make()
    h.feed(quote(et(2025, 6, 2, 15), "250.00", "250.10"))
    await broker.submit(limit("day", Side.BUY, "1", "240.00"))
    await broker.submit(limit("gtc", Side.BUY, "1", "240.00", tif=TimeInForce.GTC))
    h.run_until(et(2025, 6, 2, 16))
    assert [(u.client_order_id, u.status) for u in updates(h.drain())] == [
        ("day", OrderStatus.ACCEPTED),
        ("gtc", OrderStatus.ACCEPTED),
        ("day", OrderStatus.EXPIRED),
    ]
    h.feed(quote(et(2025, 6, 2, 17), "239.00", "239.50"))  # crosses, but post-market: a GTC order waits
    assert h.drain() == []
    h.feed(quote(et(2025, 6, 3, 9, 31), "239.00", "239.80"))  # regular on Tuesday
    [fill] = fills(h.drain())
    assert (fill.client_order_id, fill.price, fill.ts) == ("gtc", D("240.00"), et(2025, 6, 3, 9, 31))


@pytest.mark.parametrize(
    ("ts", "order", "reason"),
    [
        (
            et(2025, 6, 2, 5),
            limit("x", Side.BUY, "1", "250.00"),
            "session: pre_market, a limit order needs extended_hours=True (time_in_force day)",
        ),
        (
            et(2025, 6, 7, 12),
            limit("x", Side.BUY, "1", "250.00", extended=True),
            "session: weekend, the broker takes no limit order",
        ),
        (
            et(2025, 7, 4, 12),
            market("x", Side.BUY, "1"),
            "session: holiday, the broker takes no market order",
        ),
        (
            et(2025, 6, 2, 17),
            market("x", Side.BUY, "1"),
            "session: post_market, a market order is accepted only in the regular session",
        ),
    ],
)
async def test_session_rules_per_order_type(ts: int, order: OrderRequest, reason: str) -> None:
    broker, h = make(start=ts - HOUR)
    h.feed(quote(ts - MINUTE, "250.00", "250.00"))
    h.run_until(ts)
    await broker.submit(order)
    h.run_until(ts + LATENCY)
    [update] = updates(events := h.drain())
    assert len(events) == 1
    assert (update.status, update.reason) == (OrderStatus.REJECTED, reason)


async def test_overnight_needs_an_overnight_tradable_asset() -> None:
    ts = et(2025, 6, 2, 22)  # Monday 22:00 ET: overnight into Tuesday
    for tradable, status in ((True, OrderStatus.ACCEPTED), (False, OrderStatus.REJECTED)):
        broker, h = make(overnight_tradable=tradable, start=ts - HOUR)
        h.feed(quote(ts - MINUTE, "250.00", "250.20"))
        h.run_until(ts)
        await broker.submit(limit("l1", Side.SELL, "1", "260.00", extended=True))
        h.run_until(ts + LATENCY)
        [update] = updates(events := h.drain())
        assert len(events) == 1
        assert update.status is status
    assert update.reason == "session: overnight, TSLA/USD is not overnight tradable"


async def test_bad_orders_are_rejected_at_submit_naming_the_field() -> None:
    broker, h = make()
    h.run_until(et(2025, 6, 2, 10))
    cases = [
        (
            OrderRequest("a", "alpaca", "TSLA/USD", Side.BUY, D(1), OrderType.MARKET, extended_hours=True),
            "extended_hours: True needs a limit order with time_in_force day, got market gtc",
        ),
        (limit("b", Side.BUY, "1", "250.001"), "price: 250.001 is not a multiple of 0.01"),
        (
            OrderRequest("c", "alpaca", "AAPL/USD", Side.BUY, D(1), OrderType.MARKET),
            "instrument: 'AAPL/USD' is not traded at alpaca (trades ['TSLA/USD'])",
        ),
        (
            OrderRequest("d", "alpaca", "TSLA/USD", Side.BUY, D(1), price=D(1), post_only=True),
            "post_only: True is not supported by alpaca",
        ),
        (MintRequest("e", "alpaca", "TSLAx", D(1)), "request: alpaca takes OrderRequest, got MintRequest"),
    ]
    for request, reason in cases:
        assert isinstance(request, OrderRequest | MintRequest)
        ack = await broker.submit(request)
        assert (ack.status, ack.reason) == (OrderStatus.REJECTED, reason)
    assert h.wakeups == []


async def test_buy_without_cash_and_sell_without_shares_are_rejected() -> None:
    broker, h = make(balances={"USD": D(100), "TSLA": D(1)})
    h.feed(quote(et(2025, 6, 2, 10), "250.00", "250.10"))
    await broker.submit(market("b1", Side.BUY, "1"))
    await broker.submit(market("s1", Side.SELL, "2"))
    h.run_until(et(2025, 6, 2, 10) + LATENCY)
    reasons = [u.reason for u in updates(h.drain())]
    assert reasons == [
        "balance['USD']: needs 250.10, free 100 to buy 1 TSLA/USD",
        "balance['TSLA']: needs 2, free 1 to sell 2 TSLA/USD",
    ]
    assert broker.ledger.balances() == {"USD": D(100), "TSLA": D(1)}


async def test_zero_latency_does_not_fill_on_the_triggering_event_unless_configured() -> None:
    t0 = et(2025, 6, 2, 10)
    for same_event, expected_ts, expected_price in ((False, t0 + 1, D("251.00")), (True, t0, D("250.10"))):
        broker, h = make(BrokerConfig(latency_ns=0, same_event_fills=same_event))
        h.feed(quote(t0, "250.00", "250.10"))  # the strategy reacts to this quote at t0
        assert (await broker.submit(market("m1", Side.BUY, "1"))).status is OrderStatus.ACCEPTED
        h.feed(quote(t0 + 1, "250.90", "251.00"))
        [fill] = fills(h.drain())
        assert (fill.ts, fill.price) == (expected_ts, expected_price)


async def test_marketable_limit_fills_at_the_taker_price_and_ioc_cancels_otherwise() -> None:
    broker, h = make(BrokerConfig(latency_ns=LATENCY, spread_bps=D(10)))
    h.feed(quote(et(2025, 6, 2, 10), "250.00", "250.10"))
    await broker.submit(limit("l1", Side.BUY, "1", "251.00"))  # 250.10 x 1.001 = 250.3501 <= 251
    await broker.submit(limit("i1", Side.BUY, "1", "250.20", tif=TimeInForce.IOC))  # 250.3501 > 250.20
    h.run_until(et(2025, 6, 2, 10) + LATENCY)
    events = h.drain()
    [fill] = fills(events)
    assert (fill.client_order_id, fill.price, fill.liquidity) == ("l1", D("250.3501"), Liquidity.TAKER)
    assert [(u.client_order_id, u.status) for u in updates(events)] == [
        ("l1", OrderStatus.ACCEPTED),
        ("l1", OrderStatus.FILLED),
        ("i1", OrderStatus.ACCEPTED),
        ("i1", OrderStatus.CANCELLED),
    ]
    assert broker.ledger.reserved("USD") == 0


async def test_cancel_releases_the_reservation_and_trade_prices_work() -> None:
    broker, h = make(BrokerConfig(latency_ns=LATENCY, price_from="trade"))
    h.feed(Trade(et(2025, 6, 2, 10), "alpaca", "TSLA/USD", 250.0, 5.0, None))
    await broker.submit(limit("l1", Side.BUY, "2", "245.00"))
    h.run_until(et(2025, 6, 2, 10) + LATENCY)
    assert broker.ledger.reserved("USD") == D("490.00")
    state = await broker.snapshot()
    assert [u.client_order_id for u in state.open_orders] == ["l1"]
    ack = await broker.cancel("l1")
    assert ack.status is OrderStatus.CANCELLED
    assert broker.ledger.reserved("USD") == 0
    h.feed(Trade(et(2025, 6, 2, 10, 5), "alpaca", "TSLA/USD", 244.0, 5.0, None))
    assert fills(h.drain()) == []
    assert (await broker.cancel("l1")).status is OrderStatus.CANCELLED  # already final: says so
    # a trade at or through the limit fills a resting order at the limit
    await broker.submit(limit("l2", Side.BUY, "2", "245.00"))
    h.run_until(et(2025, 6, 2, 10, 5) + LATENCY)  # first look: 244.00 <= 245: taker fill at 244.00
    [fill] = fills(h.drain())
    assert fill.price == D("244.0")


async def test_market_status_event_is_honoured() -> None:
    broker, h = make()
    t0 = et(2025, 6, 2, 10)
    h.feed(MarketStatus(t0 - MINUTE, "XNYS", Session.HOLIDAY, t0 + HOUR))  # recorded unscheduled closure
    h.feed(quote(t0, "250.00", "250.10"))
    await broker.submit(market("m1", Side.BUY, "1"))
    h.run_until(t0 + LATENCY)
    [update] = updates(events := h.drain())
    assert len(events) == 1
    assert update.reason == "session: holiday, the broker takes no market order"
    h.feed(MarketStatus(t0 + MINUTE, "OTHER", Session.REGULAR, t0 + HOUR))  # another market: ignored
    assert broker.hours.session_at(t0 + MINUTE) is Session.HOLIDAY


def test_config_refuses_bad_values() -> None:
    with pytest.raises(InvalidInput, match="spread_bps"):
        BrokerConfig(spread_bps=D(-1))
    with pytest.raises(InvalidInput, match="latency_ns"):
        BrokerConfig(latency_ns=-5)
    with pytest.raises(InvalidInput, match="price_from"):
        BrokerConfig(price_from="mid")  # type: ignore[arg-type]


async def test_first_look_outside_the_session_waits_for_the_next_regular_price() -> None:
    broker, h = make(BrokerConfig(latency_ns=0))
    t0 = et(2025, 6, 2, 15, 59, 59)
    h.feed(quote(t0, "250.00", "250.10"))  # triggers the order: not usable at zero latency
    await broker.submit(limit("g1", Side.BUY, "1", "251.00", tif=TimeInForce.GTC))
    h.feed(quote(et(2025, 6, 2, 16, 0, 1), "250.00", "250.10"))  # post-market: a GTC order cannot trade
    assert h.drain() == []
    h.feed(quote(et(2025, 6, 3, 9, 30, 1), "250.40", "250.50"))  # Tuesday open: marketable, taker fill
    [fill] = fills(h.drain())
    assert (fill.price, fill.liquidity, fill.ts) == (D("250.50"), Liquidity.TAKER, et(2025, 6, 3, 9, 30, 1))
