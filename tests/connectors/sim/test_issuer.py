"""The simulated issuer: mint/redeem pricing, fees, windows, minimums, balances and delays.

Every expected amount is worked out by hand in the comments. Dates: Monday 2025-06-02 is a normal
trading day (EDT, UTC-4); Saturday 2025-06-07 is a weekend; Thursday 2025-07-03 closes early and
Friday 2025-07-04 is a holiday.
"""

from __future__ import annotations

from datetime import time
from decimal import Decimal

import pytest

from connectors.sim.issuer import IssuedToken, IssuerConfig, SimIssuer
from connectors.sim.reference_price import LastPrice
from core.clock import SimulatedClock
from core.enums import Liquidity, OrderStatus, Session, Side
from core.errors import InvalidInput
from core.events import Fill, MarketStatus, OraclePrice, OrderUpdate, Quote
from core.instruments import (
    InstrumentRegistry,
    MultiplierChange,
    MultiplierSchedule,
    Spot,
    TokenizedStock,
)
from core.orders import MintRequest, OrderRequest, RedeemRequest, Request
from core.portfolio import Portfolio
from tests.connectors.sim.venue_harness import HOUR, MINUTE, Harness, calendar, et, fills, updates

D = Decimal
PAIR = Spot("TSLAx/USD", "TSLAx", "USD")
MON_10 = et(2025, 6, 2, 10)  # Monday 10:00 ET, regular session


def token(schedule: MultiplierSchedule) -> TokenizedStock:
    return TokenizedStock("TSLAx", "TSLA", "xstocks", 1, "0x" + "11" * 20, decimals=8, multiplier=schedule)


DEFAULT_MULTIPLIER = MultiplierSchedule(D("1.02"))


def make(
    config: IssuerConfig,
    multiplier: MultiplierSchedule = DEFAULT_MULTIPLIER,
    balances: dict[str, Decimal] | None = None,
    start: int = MON_10 - HOUR,
) -> tuple[SimIssuer, Harness, LastPrice]:
    """An issuer 'xstocks' pricing TSLAx off the TSLA quotes it is fed (stamped 'ref')."""
    clock = SimulatedClock(start)
    price = LastPrice("ref", "TSLA")
    issuer = SimIssuer(
        "xstocks",
        clock,
        calendar(),
        [IssuedToken(token(multiplier), PAIR, price)],
        config,
        balances if balances is not None else {"USD": D(5000)},
    )
    return issuer, Harness(issuer, clock), price


def quote(ts: int, bid: float, ask: float) -> Quote:
    return Quote(ts, "ref", "TSLA", bid, ask, 100.0, 100.0)


def mint(cid: str, quantity: str, pay: str = "USD") -> MintRequest:
    return MintRequest(cid, "xstocks", "TSLAx", D(quantity), pay)


def redeem(cid: str, quantity: str) -> RedeemRequest:
    return RedeemRequest(cid, "xstocks", "TSLAx", D(quantity))


async def test_mint_pays_price_times_multiplier_times_quantity_plus_fee() -> None:
    issuer, h, _ = make(IssuerConfig(mint_fee_bps=D(10), delay_ns=30 * MINUTE))
    h.feed(quote(MON_10 - MINUTE, 250.00, 250.10))  # mid (250.00 + 250.10) / 2 = 250.05
    h.run_until(MON_10)
    ack = await issuer.submit(mint("m1", "4"))
    assert ack.status is OrderStatus.ACCEPTED
    h.run_until(MON_10 + 30 * MINUTE)
    events = h.drain()
    [fill] = fills(events)
    # token price = 250.05 x 1.02 = 255.051; notional = 4 x 255.051 = 1020.204 -> 1020.20 (cents)
    # fee = 1020.20 x 10 / 10000 = 1.0202 -> rounded up to the cent: 1.03
    assert fill == Fill(
        MON_10 + 30 * MINUTE,
        "xstocks",
        "TSLAx/USD",
        "m1",
        Side.BUY,
        D("255.051"),
        D(4),
        D("1.03"),
        "USD",
        Liquidity.TAKER,
        "xstocks-1",
        D("1020.20"),
    )
    assert updates(events)[0].status is OrderStatus.FILLED
    # USD: 5000 - 1020.20 - 1.03 = 3978.77; tokens: 4
    assert issuer.ledger.balances() == {"USD": D("3978.77"), "TSLAx": D(4)}
    assert issuer.ledger.reserved("USD") == 0
    # The portfolio moves by the same exact amounts.
    portfolio = Portfolio(InstrumentRegistry([PAIR]))
    portfolio.deposit("xstocks", "USD", D(5000))
    portfolio.apply_fill(fill)
    assert portfolio.balance("xstocks", "USD") == D("3978.77")
    assert portfolio.balance("xstocks", "TSLAx") == D(4)


async def test_minimum_fee_applies() -> None:
    issuer, h, _ = make(IssuerConfig(mint_fee_bps=D(10), min_fee=D(5)))
    h.feed(quote(MON_10 - MINUTE, 250.00, 250.10))
    h.run_until(MON_10)
    await issuer.submit(mint("m1", "4"))
    h.run_until(MON_10)
    [fill] = fills(h.drain())
    # 10 bps of 1020.20 is 1.03, below the 5.00 minimum
    assert fill.fee == D(5)
    assert issuer.ledger.balance("USD") == D(5000) - D("1020.20") - D(5)


@pytest.mark.parametrize(
    ("price_at", "price", "notional", "fee"),
    [
        # settlement: 10:30 price 210 x new multiplier 1.005 = 211.05; x 10 = 2110.50;
        # fee 2110.50 x 10 / 10000 = 2.1105 -> 2.12
        ("settlement", D("211.05"), D("2110.50"), D("2.12")),
        # request: 10:00 price 200 x multiplier then 1.00 = 200; x 10 = 2000.00; fee 2.00
        ("request", D("200.00"), D("2000.00"), D("2.00")),
    ],
)
async def test_multiplier_change_between_request_and_settlement(
    price_at: str, price: Decimal, notional: Decimal, fee: Decimal
) -> None:
    schedule = MultiplierSchedule(D("1.00"), (MultiplierChange(MON_10 + 15 * MINUTE, D("1.005")),))
    config = IssuerConfig(mint_fee_bps=D(10), delay_ns=30 * MINUTE, price_at=price_at)  # type: ignore[arg-type]
    issuer, h, _ = make(config, schedule)
    h.feed(quote(MON_10 - MINUTE, 200.00, 200.00))
    h.run_until(MON_10)
    assert (await issuer.submit(mint("m1", "10"))).status is OrderStatus.ACCEPTED
    h.feed(quote(MON_10 + 20 * MINUTE, 210.00, 210.00))  # after the change, before settlement
    h.run_until(MON_10 + 30 * MINUTE)
    [fill] = fills(h.drain())
    assert (fill.ts, fill.price, fill.notional, fill.fee) == (MON_10 + 30 * MINUTE, price, notional, fee)
    assert issuer.ledger.balance("USD") == D(5000) - notional - fee


@pytest.mark.parametrize(
    ("ts", "session"),
    [
        (et(2025, 6, 7, 12), "weekend"),  # Saturday noon
        (et(2025, 6, 2, 3), "overnight"),  # Monday 03:00, before pre-market
        (et(2025, 7, 4, 11), "holiday"),  # Independence Day
    ],
)
async def test_request_outside_the_window_is_rejected_naming_the_session(ts: int, session: str) -> None:
    issuer, h, _ = make(IssuerConfig(), start=ts - HOUR)
    h.feed(quote(ts - MINUTE, 250.0, 250.0))
    h.run_until(ts)
    ack = await issuer.submit(mint("m1", "4"))
    assert ack.status is OrderStatus.REJECTED
    assert ack.reason == (
        f"session: mint requests are accepted only in post_market, pre_market, regular; now {session}"
    )
    assert issuer.ledger.balances() == {"USD": D(5000)}
    assert issuer.ledger.reserved("USD") == 0
    assert h.wakeups == []


async def test_window_is_configurable() -> None:
    issuer, h, _ = make(IssuerConfig(sessions=frozenset({Session.REGULAR})), start=et(2025, 6, 2, 4))
    h.feed(quote(et(2025, 6, 2, 4, 30), 250.0, 250.0))
    h.run_until(et(2025, 6, 2, 5))  # pre-market
    ack = await issuer.submit(mint("m1", "4"))
    assert ack.reason == "session: mint requests are accepted only in regular; now pre_market"


async def test_market_status_event_overrides_the_calendar() -> None:
    # An unscheduled closure recorded as a MarketStatus: the issuer treats Monday 10:00 as closed.
    issuer, h, _ = make(IssuerConfig())
    h.feed(MarketStatus(MON_10 - 30 * MINUTE, "XNYS", Session.CLOSED, MON_10 + HOUR))
    h.feed(quote(MON_10 - MINUTE, 250.0, 250.0))
    h.run_until(MON_10)
    ack = await issuer.submit(mint("m1", "4"))
    assert ack.status is OrderStatus.REJECTED and ack.reason.endswith("now closed")
    h.run_until(MON_10 + HOUR)  # the override ends; the calendar says regular again
    assert (await issuer.submit(mint("m2", "4"))).status is OrderStatus.ACCEPTED


async def test_below_minimum_quantity_or_notional_is_rejected() -> None:
    issuer, h, _ = make(IssuerConfig(min_quantity=D(1), min_notional=D(1000)))
    h.feed(quote(MON_10 - MINUTE, 250.00, 250.10))
    h.run_until(MON_10)
    small = await issuer.submit(mint("m1", "0.5"))
    assert small.status is OrderStatus.REJECTED
    assert small.reason == "quantity: 0.5 below the minimum 1 TSLAx"
    # 3 x 250.05 x 1.02 = 765.153 -> 765.15 < 1000
    cheap = await issuer.submit(mint("m2", "3"))
    assert cheap.reason == "notional: 765.15 USD below the minimum 1000 USD"
    # 4 x 255.051 = 1020.20 >= 1000
    assert (await issuer.submit(mint("m3", "4"))).status is OrderStatus.ACCEPTED


async def test_bad_requests_are_rejected_naming_the_field() -> None:
    issuer, h, _ = make(IssuerConfig())
    h.feed(quote(MON_10 - MINUTE, 250.0, 250.0))
    h.run_until(MON_10)
    cases: dict[str, tuple[Request, str]] = {
        "usdc": (mint("a", "1", pay="USDC"), "pay_asset: 'USDC', but TSLAx settles in 'USD'"),
        "fine": (mint("b", "0.123456789"), "quantity: 0.123456789 is finer than 1e-8 TSLAx"),
        "token": (MintRequest("c", "xstocks", "AAPLx", D(1)), "token: 'AAPLx' is not issued by xstocks"),
        "venue": (MintRequest("d", "other", "TSLAx", D(1)), "venue: request for 'other' sent to 'xstocks'"),
        "order": (OrderRequest("e", "xstocks", "TSLAx/USD", Side.BUY, D(1), price=D(1)), "request: xstocks"),
    }
    for request, reason in cases.values():
        ack = await issuer.submit(request)
        assert ack.status is OrderStatus.REJECTED
        assert ack.reason.startswith(reason)
    assert issuer.ledger.balances() == {"USD": D(5000)}


async def test_no_or_stale_price_is_rejected() -> None:
    issuer, h, _ = make(IssuerConfig(max_price_age_ns=5 * MINUTE))
    h.run_until(MON_10)
    assert (await issuer.submit(mint("m1", "1"))).reason == "price: no reference price of TSLA yet"
    h.feed(quote(MON_10 + MINUTE, 250.0, 250.0))
    h.run_until(MON_10 + 7 * MINUTE)  # 6 minutes old
    ack = await issuer.submit(mint("m2", "1"))
    assert ack.reason == f"price: reference price of TSLA is {6 * MINUTE} ns old, max {5 * MINUTE}"


async def test_redeem_receives_notional_minus_fee_and_over_redeem_is_rejected() -> None:
    issuer, h, _ = make(
        IssuerConfig(redeem_fee_bps=D(10), delay_ns=HOUR), balances={"USD": D(0), "TSLAx": D(5)}
    )
    h.feed(quote(MON_10 - MINUTE, 250.00, 250.10))
    h.run_until(MON_10)
    assert (await issuer.submit(redeem("r1", "3"))).status is OrderStatus.ACCEPTED
    # 3 of the 5 tokens are reserved: 2 remain free, so redeeming 3 more is refused
    over = await issuer.submit(redeem("r2", "3"))
    assert over.status is OrderStatus.REJECTED
    assert over.reason == "balance['TSLAx']: needs 3, free 2 to redeem 3 TSLAx"
    h.run_until(MON_10 + HOUR)
    [fill] = fills(h.drain())
    # 3 x 255.051 = 765.153 -> 765.15; fee 0.765153... of 765.15 = 0.76515 -> 0.77; cash 765.15 - 0.77
    assert (fill.side, fill.price, fill.notional, fill.fee) == (
        Side.SELL,
        D("255.051"),
        D("765.15"),
        D("0.77"),
    )
    assert issuer.ledger.balances() == {"USD": D("764.38"), "TSLAx": D(2)}
    portfolio = Portfolio(InstrumentRegistry([PAIR]))
    portfolio.deposit("xstocks", "TSLAx", D(5))
    portfolio.apply_fill(fill)
    assert portfolio.balance("xstocks", "USD") == D("764.38")
    assert portfolio.balance("xstocks", "TSLAx") == D(2)


async def test_mint_without_the_cash_is_rejected() -> None:
    issuer, h, _ = make(IssuerConfig(mint_fee_bps=D(10)), balances={"USD": D(1000)})
    h.feed(quote(MON_10 - MINUTE, 250.00, 250.10))
    h.run_until(MON_10)
    ack = await issuer.submit(mint("m1", "4"))  # costs 1020.20 + 1.03 = 1021.23
    assert ack.reason == "balance['USD']: needs 1021.23, free 1000 to mint 4 TSLAx"


async def test_settlement_delay_is_respected() -> None:
    delay = 2 * HOUR + 17 * MINUTE
    issuer, h, _ = make(IssuerConfig(delay_ns=delay))
    h.feed(quote(MON_10 - MINUTE, 250.0, 250.0))
    h.run_until(MON_10)
    await issuer.submit(mint("m1", "1"))
    assert h.wakeups == [MON_10 + delay]
    h.run_until(MON_10 + delay - 1)  # one ns early: nothing yet
    assert h.drain() == []
    assert issuer.ledger.balance("TSLAx") == 0
    h.run_until(MON_10 + delay)
    [fill] = fills(h.drain())
    assert fill.ts == MON_10 + delay


async def test_next_business_day_settlement_skips_weekend_and_holiday() -> None:
    config = IssuerConfig(delay_ns=0, next_business_day_at=time(10, 0))
    # Friday 2025-06-06 15:00 -> Monday 2025-06-09 10:00 ET
    issuer, h, _ = make(config, start=et(2025, 6, 6, 14))
    h.feed(quote(et(2025, 6, 6, 14, 59), 250.0, 250.0))
    h.run_until(et(2025, 6, 6, 15))
    await issuer.submit(mint("m1", "1"))
    assert h.wakeups == [et(2025, 6, 9, 10)]
    # Thursday 2025-07-03 11:00 (early close) -> Friday 07-04 is a holiday -> Monday 2025-07-07 10:00 ET
    issuer, h, _ = make(config, start=et(2025, 7, 3, 10))
    h.feed(quote(et(2025, 7, 3, 10, 59), 250.0, 250.0))
    h.run_until(et(2025, 7, 3, 11))
    await issuer.submit(mint("m1", "1"))
    assert h.wakeups == [et(2025, 7, 7, 10)]
    h.run_until(et(2025, 7, 7, 10))
    [fill] = fills(h.drain())
    assert fill.ts == et(2025, 7, 7, 10)


async def test_mint_that_cannot_be_paid_at_settlement_is_cancelled() -> None:
    issuer, h, _ = make(
        IssuerConfig(mint_fee_bps=D(10), delay_ns=HOUR), MultiplierSchedule(), {"USD": D(1010)}
    )
    h.feed(quote(MON_10 - MINUTE, 200.0, 200.0))
    h.run_until(MON_10)
    # estimate 5 x 200 = 1000.00 + fee 1.00 = 1001.00 <= 1010: accepted, 1001.00 reserved
    assert (await issuer.submit(mint("m1", "5"))).status is OrderStatus.ACCEPTED
    assert issuer.ledger.reserved("USD") == D("1001.00")
    h.feed(quote(MON_10 + 30 * MINUTE, 210.0, 210.0))
    h.run_until(MON_10 + HOUR)
    # at settlement 5 x 210 = 1050.00 + fee 1.05 = 1051.05 > 1010
    events = h.drain()
    assert len(events) == 1
    assert events[0] == OrderUpdate(
        MON_10 + HOUR,
        "xstocks",
        "m1",
        OrderStatus.CANCELLED,
        reason="balance['USD']: needs 1051.05, free 1010.00 at settlement",
    )
    assert issuer.ledger.balances() == {"USD": D(1010)}
    assert issuer.ledger.reserved("USD") == 0


async def test_latency_acknowledges_new_then_accepts_at_arrival() -> None:
    issuer, h, _ = make(IssuerConfig(latency_ns=200 * 1_000_000, delay_ns=MINUTE))
    h.feed(quote(MON_10 - MINUTE, 250.0, 250.0))
    h.run_until(MON_10)
    assert (await issuer.submit(mint("m1", "1"))).status is OrderStatus.NEW
    h.run_until(MON_10 + 200 * 1_000_000)
    assert [u.status for u in updates(h.drain())] == [OrderStatus.ACCEPTED]
    h.run_until(MON_10 + 200 * 1_000_000 + MINUTE)  # settles a delay after arrival
    assert [type(e) for e in h.drain()] == [Fill, OrderUpdate]


async def test_oracle_price_source_and_cancel_and_snapshot() -> None:
    clock = SimulatedClock(MON_10 - HOUR)
    oracle = LastPrice("chainlink", "TSLA", kind="oracle")
    issued = IssuedToken(token(MultiplierSchedule(D(2))), Spot("TSLAx/USDC", "TSLAx", "USDC"), oracle)
    issuer = SimIssuer("xstocks", clock, calendar(), [issued], IssuerConfig(mint_fee_bps=D(0), delay_ns=HOUR))
    h = Harness(issuer, clock)
    issuer.deposit("USDC", D(1000))
    h.feed(OraclePrice(MON_10 - MINUTE, "chainlink", "TSLA", 123.45, MON_10 - 2 * MINUTE))
    h.run_until(MON_10)
    assert (await issuer.submit(mint("m1", "2", pay="USDC"))).status is OrderStatus.ACCEPTED
    # 2 x 123.45 x 2 = 493.80 reserved
    state = await issuer.snapshot()
    assert state.balances == {"USDC": D(1000)}
    assert [u.status for u in state.open_orders] == [OrderStatus.ACCEPTED]
    refused = await issuer.cancel("m1")
    assert refused.status is OrderStatus.ACCEPTED and "cannot cancel" in refused.reason
    h.run_until(MON_10 + HOUR)
    [fill] = fills(h.drain())
    assert (fill.instrument, fill.price, fill.notional, fill.fee) == (
        "TSLAx/USDC",
        D("246.90"),
        D("493.80"),
        D(0),
    )
    assert issuer.ledger.balances() == {"USDC": D("506.20"), "TSLAx": D(2)}


def test_config_refuses_bad_values() -> None:
    with pytest.raises(InvalidInput, match="mint_fee_bps"):
        IssuerConfig(mint_fee_bps=D(-1))
    with pytest.raises(InvalidInput, match="delay_ns"):
        IssuerConfig(delay_ns=-1)
    with pytest.raises(InvalidInput, match="pair.base"):
        IssuedToken(token(MultiplierSchedule()), Spot("AAPLx/USD", "AAPLx", "USD"), LastPrice("r", "TSLA"))


async def test_refused_redeem_reserves_nothing() -> None:
    # A 300 minimum fee exceeds the redeem's notional: the account would have to pay cash it lacks.
    issuer, h, _ = make(IssuerConfig(min_fee=D(300)), balances={"TSLAx": D(1)})
    h.feed(quote(MON_10 - MINUTE, 250.00, 250.10))
    h.run_until(MON_10)
    ack = await issuer.submit(redeem("r1", "1"))
    # notional 255.051 -> 255.05; fee max(0.26, 300) = 300; cash 255.05 - 300 = -44.95
    assert ack.reason == "balance['USD']: needs 44.95, free 0 to redeem 1 TSLAx"
    assert issuer.ledger.reserved("TSLAx") == 0  # the token reservation made first was given back
