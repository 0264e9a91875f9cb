"""The simulated perpetual-options pool: pricing, premiums, funding, margin, liquidation, LP shares.

Every expected number is worked out by hand in the comments. The setting makes the everlasting
price a textbook number: with r = q = 0 an everlasting option with funding period T and vol sigma
is worth, with u = sqrt(1 + 8 / (sigma^2 T)) and x = S/K,

    call, S >= K:  (K/u) x^((1-u)/2) + (S - K)        put, S < K:  (K/u) x^((1+u)/2) + (K - S)

Here T = 1 year and the cross vol of BTC (0.8) against TSLAx (0.6), uncorrelated, is
sqrt(0.64 + 0.36) = 1, so u = sqrt(1 + 8) = 3. The strike is 300 TSLAx per BTC; BTC = 75000 USD
and TSLAx = 250 USD put the cross rate at X = 300, where a call is worth K/u = 100 TSLAx.
Margin rules (core.margin defaults): short option initial = mark + max(0.15 S - OTM, 0.10 S),
maintenance = mark + 0.075 S, S = BTC in USD; the TSLAx haircut is 20%.
"""

from __future__ import annotations

import math
import random
from decimal import Decimal
from typing import Any

import pytest

from backtest.replay import drive
from connectors.sim.options_pool import OptionsPool, OptionsPoolConfig, PoolRefused
from connectors.sim.options_pool_ledger import Flow
from connectors.sim.options_pool_market import PriceFeed
from core.clock import SimulatedClock
from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.errors import InvalidInput
from core.events import Event, Fill, FundingPayment, OraclePrice, OrderUpdate, Quote
from core.instruments import NS_PER_YEAR, PerpetualOption
from core.margin import MarginPolicy
from core.orders import MintRequest, OrderRequest, RedeemRequest, SwapRequest
from pricing.cross import cross_rate, cross_vol
from pricing.everlasting import everlasting_price
from tests.connectors.sim.venue_harness import HOUR, MS, Harness

D = Decimal
YEAR = NS_PER_YEAR
DAY = 24 * HOUR
T0 = 1_750_000_000 * 1_000_000_000  # 2025-06-15 15:06:40 UTC
POOL = "options_pool"
MAIN, INS = "POOL-MAIN-LP", "POOL-INS-LP"
CALL = PerpetualOption("BTC-300-C/TSLAx", "BTC", D(300), True, YEAR, "TSLAx", "TSLAx")
PUT = PerpetualOption("BTC-300-P/TSLAx", "BTC", D(300), False, YEAR, "TSLAx", "TSLAx")
USD_CALL = PerpetualOption(
    "BTC-75000-C/TSLAx", "BTC", D(75000), True, YEAR, "USD", "TSLAx", coin_margined=True
)
FEEDS = (PriceFeed(POOL, "BTC/USD", "BTC"), PriceFeed(POOL, "TSLAx/USD", "TSLAx"))
QUANTUM = D("1e-18")


def config(**overrides: Any) -> OptionsPoolConfig:
    settings: dict[str, Any] = {
        "pool_asset": "TSLAx",
        "options": (CALL, PUT, USD_CALL),
        "price_feeds": FEEDS,
        "margin": MarginPolicy({"TSLAx": D("0.2")}),
        "vols": {"BTC": D("0.8"), "TSLAx": D("0.6")},
        "accrual_interval_ns": None,
    }
    settings.update(overrides)
    return OptionsPoolConfig(**settings)


def prices(ts: int, btc: float | None = None, tsla: float | None = None) -> list[OraclePrice]:
    out = []
    if btc is not None:
        out.append(OraclePrice(ts, POOL, "BTC/USD", btc, ts))
    if tsla is not None:
        out.append(OraclePrice(ts, POOL, "TSLAx/USD", tsla, ts))
    return out


def make(**overrides: Any) -> tuple[OptionsPool, Harness]:
    """A pool at T0 with BTC = 75000 USD and TSLAx = 250 USD (X = 300)."""
    clock = SimulatedClock(T0)
    pool = OptionsPool(POOL, clock, config(**overrides))
    harness = Harness(pool, clock)
    feed(harness, prices(T0, 75000.0, 250.0))
    return pool, harness


def feed(harness: Harness, events: list[OraclePrice]) -> None:
    for event in events:
        harness.feed(event)


def fund_lp(pool: OptionsPool, account: str, share: str, amount: str) -> None:
    pool.deposit(account, D(amount))
    pool.add_liquidity(account, share, D(amount))


def submit(pool: OptionsPool, request: Any) -> OrderUpdate:
    update: OrderUpdate = drive(pool.submit(request))
    return update


def statuses(events: list[Event]) -> list[tuple[str, OrderStatus, str]]:
    return [(e.client_order_id, e.status, e.reason) for e in events if type(e) is OrderUpdate]


def fills(events: list[Event]) -> list[Fill]:
    return [e for e in events if type(e) is Fill]


def check_identity(pool: OptionsPool) -> None:
    """Every form of the conservation law, exactly."""
    c = pool.conservation()
    assert c.tokens == c.external
    assert c.residual == 0
    assert c.lp_pnl == c.pool_income - c.liability
    assert c.trader_pnl == c.liability - c.pool_income
    marks = pool.marks()
    for acct in pool.ledger.accounts.values():
        flows = sum(
            (acct.received(f) for f in (Flow.PREMIUM, Flow.FUNDING, Flow.FEE, Flow.PENALTY, Flow.BAD_DEBT)),
            D(0),
        )
        assert pool.ledger.trading_pnl(acct, marks) == flows + pool.ledger.positions_value(
            acct.positions, marks
        )
    # Every account's whole PnL (trading + LP shares at NAV) plus what no LP owns (rounding dust, an
    # empty tranche's value) sums to zero exactly.
    total = D(0)
    for share in (MAIN, INS):
        nav = pool.nav(share)
        allocated = sum((pool.share_value(a, share) for a in pool.ledger.accounts), D(0))
        assert D(0) <= nav - allocated or pool.ledger.tranche(share).shares == 0
        if pool.ledger.tranche(share).shares:
            assert nav - allocated <= len(pool.ledger.accounts) * QUANTUM
        total += nav - allocated
    for name, acct in pool.ledger.accounts.items():
        lp_value = pool.share_value(name, MAIN) + pool.share_value(name, INS)
        total += pool.ledger.trading_pnl(acct, marks) + acct.received(Flow.LP) + lp_value
    assert total == 0


# --------------------------------------------------------------------------------------------- pricing


def test_a_cross_option_is_priced_on_the_cross_rate_with_the_cross_vol() -> None:
    pool, harness = make()
    call = pool.market.mark(CALL.id)
    assert call is not None
    # X = 75000 / 250 = 300 TSLAx per BTC; sigma = sqrt(0.8^2 + 0.6^2) = 1; at the money V = K/3 = 100
    assert (call.spot, call.sigma, call.mark, call.payoff) == (D(300), 1.0, D(100), D(0))
    # The same numbers straight from the pricing library with the hand-derived inputs:
    assert cross_rate(75000.0, 250.0) == 300.0 and cross_vol(0.8, 0.6, 0.0) == 1.0
    assert everlasting_price(300.0, 300.0, 1.0, 1.0, 0.0, 0.0, True) == pytest.approx(100.0, rel=1e-14)
    # BTC's own vol (0.8) would give u = sqrt(1 + 8/0.64) = sqrt(13.5) and V = 300/sqrt(13.5) = 81.65:
    assert abs(float(call.mark) - 300 / math.sqrt(13.5)) > 18
    # BTC 100000 -> X = 400: call = 100 x (300/400) + (400 - 300) = 75 + 100 = 175
    feed(harness, prices(T0, btc=100000.0))
    assert pool.market.mark(CALL.id).mark == D(175)  # type: ignore[union-attr]
    # BTC 50000 -> X = 200: put = 100 x (200/300)^2 + (300 - 200) = 44.444... + 100 -> 144.44444444 (1e-8)
    feed(harness, prices(T0, btc=50000.0))
    put = pool.market.mark(PUT.id)
    assert put is not None and (put.spot, put.mark, put.payoff) == (D(200), D("144.44444444"), D(100))


def test_a_usd_struck_option_is_priced_in_usd_and_converted_at_the_margin_token_price() -> None:
    pool, harness = make(vols={"BTC": D(1), "TSLAx": D("0.6")})
    usd_call = pool.market.mark(USD_CALL.id)
    assert usd_call is not None
    # Priced on S = 75000 USD with BTC's vol 1 (USD has none): V = 75000/3 = 25000 USD = 25000/250 = 100 TSLAx
    assert (usd_call.spot, usd_call.sigma, usd_call.mark) == (D(75000), 1.0, D(100))
    # TSLAx falls to 200 USD: the USD value is unchanged, 25000/200 = 125 TSLAx
    feed(harness, prices(T0, tsla=200.0))
    assert pool.market.mark(USD_CALL.id).mark == D(125)  # type: ignore[union-attr]


def test_quote_spread_funding_rate_and_greeks() -> None:
    pool, _ = make(spread_bps=D(50))
    call = pool.market.mark(CALL.id)
    assert call is not None
    # mark 100 +- 50 bps: ask 100.5, bid 99.5
    assert (call.bid, call.ask) == (D("99.5"), D("100.5"))
    # funding a long pays per year: (mark - payoff)/T = (100 - 0)/1 = 100 TSLAx
    assert pool.market.funding_rate(CALL.id) == pytest.approx(100.0, rel=1e-12)
    # delta above the strike: p- x (time value)/S + 1 = -1 x 100/300 + 1 = 2/3 (p- = -1 when u = 3)
    greeks = pool.market.greeks(CALL.id)
    assert greeks.delta == pytest.approx(2 / 3, rel=1e-12)
    assert greeks.theta == pytest.approx(-100.0, rel=1e-12)


def test_an_inverse_option_reports_coin_margined_value_and_delta() -> None:
    inverse = PerpetualOption("TSLAx-250-C", "TSLAx", D(250), True, YEAR, "USD", "TSLAx", coin_margined=True)
    pool, _ = make(options=(inverse,), vols={"TSLAx": D(1)})
    # S = K = 250 USD, sigma 1, T 1: V = 250/3 USD; in TSLAx V/S = 1/3 -> 0.33333333 (1e-8)
    assert pool.market.mark(inverse.id).mark == D("0.33333333")  # type: ignore[union-attr]
    # d(V/S)/dS = (delta - V/S)/S = (2/3 - 1/3)/250 = 1/750 TSLAx per USD
    greeks = pool.market.greeks(inverse.id)
    assert greeks.price == pytest.approx(1 / 3, rel=1e-12)
    assert greeks.delta == pytest.approx(1 / 750, rel=1e-12)


# --------------------------------------------------------------------------- premiums, funding, LP NAV


def test_one_long_call_for_one_funding_period() -> None:
    pool, harness = make(spread_bps=D(50), fee_bps=D(5))
    fund_lp(pool, "lp1", MAIN, "1000")  # empty tranche: 1000 shares for 1000 TSLAx
    assert pool.account("lp1").shares[MAIN] == D(1000)
    pool.deposit("alice", D(300))
    trade = pool.trade("alice", CALL.id, Side.BUY, D(1))
    # ask 100.5; fee 100.5 x 5/10000 = 0.05025; the pool earns spread 0.5 + fee 0.05025 = 0.55025,
    # of which 10% = 0.055025 goes to the insurance pool
    assert (trade.price, trade.premium, trade.fee, trade.insurance_share) == (
        D("100.5"),
        D("100.5"),
        D("0.05025"),
        D("0.055025"),
    )
    # alice 300 - 100.5 - 0.05025 = 199.44975; main 1000 + 100.5 + 0.05025 - 0.055025 = 1100.495225
    assert pool.account("alice").balance == D("199.44975")
    assert (pool.ledger.main.balance, pool.ledger.insurance.balance) == (D("1100.495225"), D("0.055025"))
    # NAV(main) = 1100.495225 - liability 100 = 1000.495225: up by what it kept of the spread and fee
    assert pool.nav(MAIN) == D("1000.495225")
    # One funding period later (same prices): the long pays 1 x (100 - 0) x T/T = 100
    feed(harness, prices(T0 + YEAR, btc=75000.0))
    assert pool.account("alice").balance == D("99.44975")
    assert pool.nav(MAIN) == D("1100.495225")
    c = pool.conservation()
    # LP PnL = P + F + Fee + Pen - BD - L = 100.5 + 100 + 0.05025 + 0 - 0 - 100 = 100.55025
    assert (c.premiums, c.funding, c.fees, c.liability) == (D("100.5"), D(100), D("0.05025"), D(100))
    assert (c.main_pnl, c.insurance_pnl, c.lp_pnl) == (D("100.495225"), D("0.055025"), D("100.55025"))
    # alice: -100.5 premium - 0.05025 fee - 100 funding + 100 option value = -100.55025
    assert c.trader_pnl == D("-100.55025") and c.residual == 0
    check_identity(pool)


def test_funding_accrued_every_two_days_rounds_each_step_half_even() -> None:
    pool, harness = make(accrual_interval_ns=2 * DAY)
    fund_lp(pool, "lp1", MAIN, "1000")
    pool.deposit("alice", D(300))
    pool.trade("alice", CALL.id, Side.BUY, D(1))  # mark 100, no spread: alice 200
    feed(harness, prices(T0 + YEAR, btc=75000.0))
    # 182 wake-ups two days apart (the last at day 364), each 100 x 2/365 = 0.547945205479452054|79...
    # -> 0.547945205479452055 (half-even rounds this one up), 182 x that = 99.726027397260274010;
    # then the price event at day 365 adds 100 x 1/365 = 0.273972602739726027|39... -> ...027 (down):
    # 99.726027397260274010 + 0.273972602739726027 = 100.000000000000000037
    assert pool.account("alice").received(Flow.FUNDING) == D("-100.000000000000000037")
    assert pool.ledger.main.received(Flow.FUNDING) == D("100.000000000000000037")
    check_identity(pool)


def test_lp_share_nav_after_premiums_mints_and_burns_at_nav() -> None:
    pool, _ = make(spread_bps=D(50), fee_bps=D(5))
    fund_lp(pool, "lp1", MAIN, "1000")
    pool.deposit("alice", D(300))
    pool.trade("alice", CALL.id, Side.BUY, D(1))
    # NAV 1000.495225 over 1000 shares (previous test): 1.000495225 per share
    assert pool.nav_per_share(MAIN) == D("1.000495225")
    pool.deposit("lp2", D(500))
    minted = pool.add_liquidity("lp2", MAIN, D(500))
    # 500 x 1000 / 1000.495225 = 499.752510... rounded down to 1e-18
    expected = (D(500) * D(1000) / D("1000.495225")).quantize(QUANTUM, rounding="ROUND_FLOOR")
    assert minted == expected and str(minted).startswith("499.75251")
    # The new LP's deposit does not move the NAV per share (up to the rounding in the pool's favour).
    assert pool.nav(MAIN) == D("1500.495225")
    assert pool.share_value("lp2", MAIN) <= D(500)
    assert D(500) - pool.share_value("lp2", MAIN) < D("1e-15")
    # lp1 leaves: 1000 shares x 1500.495225 / (1000 + minted), rounded down
    total = D(1000) + minted
    paid = pool.remove_liquidity("lp1", MAIN, D(1000))
    assert paid == (D(1000) * D("1500.495225") / total).quantize(QUANTUM, rounding="ROUND_FLOOR")
    assert paid is not None and D("1000.495224") < paid <= D("1000.495225")
    assert pool.account("lp1").balance == paid and pool.account("lp1").shares[MAIN] == 0
    check_identity(pool)


# ------------------------------------------------------------------------------ margin and liquidation


def test_haircut_margin_decides_whether_a_short_may_open() -> None:
    pool, _ = make()
    fund_lp(pool, "lp1", MAIN, "1000")
    # Short 1 call at 100: initial = (100 x 250) + max(0.15 x 75000 - 0, 0.10 x 75000) = 25000 + 11250
    # = 36250 USD. Equity = balance x 250 x (1 - 0.2) - 100 x 250 >= 36250 needs balance >= 306.25,
    # i.e. a deposit of 306.25 - 100 (the premium received) = 206.25.
    pool.deposit("alice", D("206.25"))
    pool.deposit("bob", D("206.25") - QUANTUM)
    pool.trade("alice", CALL.id, Side.SELL, D(1))
    margin = pool.account_margin("alice")
    # 306.25 x 200 = 61250 collateral, -25000 option value: equity 36250 = initial
    assert (margin.collateral, margin.positions_value, margin.equity, margin.initial) == (
        D(61250),
        D(-25000),
        D(36250),
        D(36250),
    )
    # maintenance = 25000 + 0.075 x 75000 = 30625
    assert margin.maintenance == D(30625)
    # bob has 1e-18 less: equity 36250 - 1e-18 x 200 = 36249.9999999999999998 < 36250
    with pytest.raises(PoolRefused, match=r"^margin: equity 36249.9999999999999998 USD would be below"):
        pool.trade("bob", CALL.id, Side.SELL, D(1))
    assert pool.account("bob").positions == {}
    # Without a haircut 245 TSLAx of balance would do (245 x 250 - 25000 = 36250): 145 deposited
    no_haircut, _ = make(margin=MarginPolicy({"TSLAx": D(0)}))
    fund_lp(no_haircut, "lp1", MAIN, "1000")
    no_haircut.deposit("carol", D(145))
    no_haircut.trade("carol", CALL.id, Side.SELL, D(1))
    assert no_haircut.account_margin("carol").equity == D(36250)


def test_liquidation_triggers_only_strictly_below_the_maintenance_boundary() -> None:
    pool, harness = make()
    fund_lp(pool, "lp1", MAIN, "1000")
    pool.deposit("alice", D(375))
    pool.deposit("bob", D(375) - QUANTUM)
    for trader in ("alice", "bob"):
        pool.trade(trader, CALL.id, Side.SELL, D(1))  # +100: alice 475, bob 475 - 1e-18
    # BTC to 100000 at the same instant (no funding): X = 400, call 175. alice:
    # equity = 475 x 250 x 0.8 - 175 x 250 = 95000 - 43750 = 51250
    # maintenance = 175 x 250 + 0.075 x 100000 = 43750 + 7500 = 51250 -> equal: safe
    # bob's equity is 1e-18 x 200 lower: 1 quantum below the boundary, liquidated.
    feed(harness, prices(T0, btc=100000.0))
    margin = pool.account_margin("alice")
    assert (margin.equity, margin.maintenance, margin.liquidatable) == (D(51250), D(51250), False)
    assert pool.account("alice").positions == {CALL.id: D(-1)}
    assert pool.account("bob").positions == {}
    [liquidation] = pool.liquidations
    # bob buys back at the mark 175: 475 - 1e-18 - 175 = 300 - 1e-18; penalty 1% x 1 x 400 = 4
    assert (liquidation.account, liquidation.closed, liquidation.penalty) == (
        "bob",
        ((CALL.id, D(-1), D(175)),),
        D(4),
    )
    assert (liquidation.covered_by_insurance, liquidation.covered_by_main) == (D(0), D(0))
    assert pool.account("bob").balance == D("295.999999999999999999")
    assert pool.ledger.insurance.balance == D(4)
    check_identity(pool)


def test_the_liquidation_penalty_is_capped_at_what_the_account_has_left() -> None:
    pool, harness = make(liquidation_penalty=D(1))
    fund_lp(pool, "lp1", MAIN, "1000")
    pool.deposit("bob", D(375) - QUANTUM)
    pool.trade("bob", CALL.id, Side.SELL, D(1))
    feed(harness, prices(T0, btc=100000.0))  # liquidated as in the boundary test
    # buying back at 175 leaves 300 - 1e-18; the nominal penalty 1 x 400 = 400 is capped at that
    [liquidation] = pool.liquidations
    assert liquidation.penalty == D("299.999999999999999999")
    assert pool.account("bob").balance == 0 and pool.nav(INS) == D("299.999999999999999999")
    check_identity(pool)


def test_a_liquidation_that_exhausts_the_margin_hits_insurance_then_main() -> None:
    pool, harness = make()
    fund_lp(pool, "lp1", MAIN, "1000")
    fund_lp(pool, "ins1", INS, "100")
    pool.deposit("alice", D(375))
    pool.trade("alice", CALL.id, Side.SELL, D(1))  # alice 475; main 1000 - 100 = 900, L = -100
    assert pool.nav(MAIN) == D(1000)
    # BTC to 250000: X = 1000, call = 100 x 300/1000 + 700 = 730. Closing costs alice 730:
    # 475 - 730 = -255. Insurance pays all it has, 100; main pays the other 155. No penalty.
    feed(harness, prices(T0, btc=250000.0))
    [liquidation] = pool.liquidations
    assert (liquidation.penalty, liquidation.covered_by_insurance, liquidation.covered_by_main) == (
        D(0),
        D(100),
        D(155),
    )
    assert pool.account("alice").balance == 0 and pool.account("alice").positions == {}
    # main: 900 + 730 - 155 = 1475, nothing open; insurance 0
    assert (pool.nav(MAIN), pool.nav(INS)) == (D(1475), D(0))
    assert (pool.share_value("lp1", MAIN), pool.share_value("ins1", INS)) == (D(1475), D(0))
    c = pool.conservation()
    # premiums 730 - 100 = 630 received, bad debt 255: LPs +475 (main) - 100 (insurance) = +375,
    # alice deposited 375 and has 0: -375
    assert (c.premiums, c.bad_debt, c.main_pnl, c.insurance_pnl, c.trader_pnl) == (
        D(630),
        D(255),
        D(475),
        D(-100),
        D(-375),
    )
    check_identity(pool)


def test_funding_drains_a_long_until_equity_goes_negative_and_insurance_covers_the_rest() -> None:
    pool, harness = make()
    fund_lp(pool, "lp1", MAIN, "1000")
    fund_lp(pool, "ins1", INS, "10")
    pool.deposit("alice", D(150))
    pool.trade("alice", CALL.id, Side.BUY, D(1))  # alice 50, long worth 100
    # After 1.6 years at the same prices funding is 160: alice 50 - 160 = -110, equity (-110 + 100)
    # x 250 < 0 = maintenance: the long is sold at 100, -10 left; insurance covers the 10.
    feed(harness, prices(T0 + YEAR * 16 // 10, btc=75000.0))
    [liquidation] = pool.liquidations
    assert (liquidation.covered_by_insurance, liquidation.covered_by_main) == (D(10), D(0))
    assert pool.account("alice").balance == 0 and pool.nav(INS) == 0
    check_identity(pool)


def test_the_pool_refuses_to_sell_beyond_its_capacity() -> None:
    pool, _ = make()
    fund_lp(pool, "lp1", MAIN, "100")
    pool.deposit("alice", D(1000))
    # Selling 1 call to alice: the pool's requirement (short 1) = 25000 + 11250 = 36250 USD against
    # capital (100 + 100.0 premium - 100 liability) x 250 = 25000 USD: refused.
    with pytest.raises(PoolRefused, match=r"^capacity: the pool's requirement 36250 USD would exceed 1 x"):
        pool.trade("alice", CALL.id, Side.BUY, D(1))
    fund_lp(pool, "lp2", INS, "50")  # capital (100 + 50) x 250 = 37500 >= 36250: allowed
    pool.trade("alice", CALL.id, Side.BUY, D(1))
    # An LP may not leave if the rest could not carry the open short.
    with pytest.raises(PoolRefused, match=r"^capacity:"):
        pool.remove_liquidity("lp2", INS, D(50))


# ------------------------------------------------------------------------------ requests (our account)


def test_market_order_arrives_after_latency_and_fills_at_the_ask() -> None:
    pool, harness = make(spread_bps=D(50), fee_bps=D(5), latency_ns=10 * MS)
    fund_lp(pool, "lp1", MAIN, "1000")
    pool.deposit("self", D(300))
    order = OrderRequest("s-1", POOL, CALL.id, Side.BUY, D("0.5"), OrderType.MARKET)
    assert submit(pool, order).status is OrderStatus.NEW
    assert harness.drain() == []  # nothing before the order arrives
    harness.run_until(T0 + 10 * MS)
    events = harness.drain()
    assert statuses(events) == [("s-1", OrderStatus.ACCEPTED, "")]
    [fill] = fills(events)
    # 0.5 x 100.5 = 50.25 premium; fee 50.25 x 5/10000 = 0.025125
    assert (fill.ts, fill.side, fill.price, fill.quantity, fill.fee, fill.fee_asset) == (
        T0 + 10 * MS,
        Side.BUY,
        D("100.5"),
        D("0.5"),
        D("0.025125"),
        "TSLAx",
    )
    assert pool.account("self").balance == D("249.724875")  # 300 - 50.25 - 0.025125
    state = drive(pool.snapshot())
    assert state.balances == {"TSLAx": D("249.724875")}


def test_limit_orders_rest_fill_when_marketable_or_expire() -> None:
    pool, harness = make()
    fund_lp(pool, "lp1", MAIN, "1000")
    pool.deposit("self", D(300))
    submit(pool, OrderRequest("s-1", POOL, CALL.id, Side.BUY, D(1), OrderType.LIMIT, D(90)))
    submit(pool, OrderRequest("s-2", POOL, CALL.id, Side.BUY, D(1), OrderType.LIMIT, D(90), TimeInForce.IOC))
    harness.run_until(T0)
    assert statuses(harness.drain()) == [
        ("s-1", OrderStatus.ACCEPTED, ""),
        ("s-2", OrderStatus.ACCEPTED, ""),
        ("s-2", OrderStatus.EXPIRED, "price: the pool's ask 100 is beyond the limit 90"),
    ]
    # BTC 67500: X = 270, call = 100 x (270/300)^2 = 81 <= 90: the resting buy fills at the ask 81
    feed(harness, prices(T0 + HOUR, btc=67500.0))
    events = harness.drain()
    [fill] = fills(events)
    assert (fill.client_order_id, fill.price, fill.quantity) == ("s-1", D(81), D(1))
    assert pool.account("self").balance == D(219)
    assert [e for e in events if type(e) is FundingPayment] == []  # nothing open before the fill


def test_bad_requests_are_rejected_naming_the_field_and_nothing_moves() -> None:
    pool, harness = make()
    fund_lp(pool, "lp1", MAIN, "1000")
    pool.deposit("self", D(10))

    def reason(request: Any) -> str:
        update = submit(pool, request)
        assert update.status is OrderStatus.REJECTED
        return update.reason

    assert reason(OrderRequest("r-1", POOL, "ETH-C", Side.BUY, D(1), OrderType.MARKET)) == (
        "instrument: 'ETH-C' is not sold by options_pool"
    )
    assert reason(OrderRequest("r-2", POOL, CALL.id, Side.BUY, D("0.00001"), OrderType.MARKET)) == (
        "quantity: 0.00001 is not a multiple of 0.0001 contracts"
    )
    day = OrderRequest("r-3", POOL, CALL.id, Side.BUY, D(1), OrderType.LIMIT, D(1), TimeInForce.DAY)
    assert reason(day).startswith("time_in_force: day")
    assert reason(MintRequest("r-4", POOL, MAIN, D(1))) == "pay_asset: 'USD', the pool settles in TSLAx"
    assert reason(RedeemRequest("r-5", POOL, "LP", D(1), "TSLAx")).startswith(
        "token: 'LP' is not an LP share"
    )
    assert reason(SwapRequest("r-6", POOL, "p", "A", "B", amount_in=1)).startswith("request: SwapRequest")
    # Well-formed but unfundable: rejected on arrival, from NEW (never ACCEPTED).
    assert submit(pool, OrderRequest("r-7", POOL, CALL.id, Side.SELL, D(1), OrderType.MARKET)).status is (
        OrderStatus.NEW
    )
    submit(pool, OrderRequest("r-8", POOL, CALL.id, Side.BUY, D(1), OrderType.MARKET))
    submit(pool, RedeemRequest("r-9", POOL, MAIN, D(1), "TSLAx"))
    harness.run_until(T0)
    # r-7: balance 10 + 100 premium = 110: equity 110 x 200 - 25000 = -3000 USD < initial 36250
    assert statuses(harness.drain()) == [
        (
            "r-7",
            OrderStatus.REJECTED,
            "margin: equity -3000 USD would be below the initial requirement 36250",
        ),
        ("r-8", OrderStatus.REJECTED, "balance: the trade needs 100 TSLAx, self has 10"),
        ("r-9", OrderStatus.REJECTED, "quantity: 1 POOL-MAIN-LP exceeds the 0 free shares of self"),
    ]
    assert pool.account("self").balance == D(10) and pool.account("self").positions == {}
    check_identity(pool)


def test_our_lp_shares_mint_and_redeem_after_the_withdrawal_delay() -> None:
    pool, harness = make(spread_bps=D(100), withdrawal_delay_ns=DAY)
    pool.deposit("self", D(1000))
    submit(pool, MintRequest("m-1", POOL, MAIN, D(400), "TSLAx"))
    harness.run_until(T0)
    [mint] = fills(harness.drain())
    # empty tranche: 400 shares for 400 TSLAx
    assert (mint.instrument, mint.side, mint.quantity, mint.price, mint.notional) == (
        MAIN,
        Side.BUY,
        D(400),
        D(1),
        D(400),
    )
    pool.deposit("alice", D(500))
    pool.trade("alice", CALL.id, Side.BUY, D(1))  # ask 101: main keeps 1 x 0.9 = 0.9 -> NAV 400.9
    submit(pool, RedeemRequest("m-2", POOL, MAIN, D(100), "TSLAx"))
    harness.run_until(T0)
    assert statuses(harness.drain()) == [("m-2", OrderStatus.ACCEPTED, "")]
    assert pool.account("self").locked[MAIN] == D(100)
    # One day later alice has paid 100 x 1/365 = 0.27397260273972602739... -> 0.273972602739726027;
    # NAV = 400.9 + 0.273972602739726027 = 401.173972602739726027; 100 of 400 shares pay a quarter:
    # 100.29349315068493150675 -> 100.293493150684931506 (rounded down)
    harness.run_until(T0 + DAY)
    [redeem] = fills(harness.drain())
    assert (redeem.side, redeem.quantity, redeem.notional) == (Side.SELL, D(100), D("100.293493150684931506"))
    assert pool.account("self").balance == D(600) + D("100.293493150684931506")
    assert pool.account("self").shares[MAIN] == D(300) and pool.ledger.main.shares == D(300)
    check_identity(pool)


def test_cancel_a_resting_order_and_a_pending_withdrawal() -> None:
    pool, harness = make(withdrawal_delay_ns=DAY)
    pool.deposit("self", D(500))
    submit(pool, MintRequest("m-1", POOL, MAIN, D(400), "TSLAx"))
    submit(pool, OrderRequest("o-1", POOL, CALL.id, Side.BUY, D(1), OrderType.LIMIT, D(50)))
    submit(pool, RedeemRequest("m-2", POOL, MAIN, D(400), "TSLAx"))
    harness.run_until(T0)
    harness.drain()
    open_orders = drive(pool.snapshot()).open_orders
    assert [(u.client_order_id, u.status) for u in open_orders] == [
        ("o-1", OrderStatus.ACCEPTED),
        ("m-2", OrderStatus.ACCEPTED),
    ]
    assert drive(pool.cancel("o-1")).status is OrderStatus.CANCELLED
    assert drive(pool.cancel("m-2")).status is OrderStatus.CANCELLED
    assert pool.account("self").shares[MAIN] == D(400) and pool.account("self").locked[MAIN] == 0
    harness.run_until(T0 + 2 * DAY)
    assert harness.drain() == []  # the cancelled withdrawal never pays
    update = drive(pool.cancel("m-1"))  # already filled: the venue says so
    assert (update.status, update.reason) == (OrderStatus.FILLED, "not open: already filled")


def test_our_short_receives_funding_as_a_negative_payment() -> None:
    pool, harness = make()
    fund_lp(pool, "lp1", MAIN, "1000")
    pool.deposit("self", D(400))
    submit(pool, OrderRequest("s-1", POOL, CALL.id, Side.SELL, D(1), OrderType.MARKET))
    harness.run_until(T0)
    harness.drain()
    # a tenth of a funding period: the long side owes 100 x 0.1 = 10, so our short receives 10
    feed(harness, prices(T0 + YEAR // 10, btc=75000.0))
    [payment] = [e for e in harness.drain() if type(e) is FundingPayment]
    assert payment == FundingPayment(T0 + YEAR // 10, POOL, CALL.id, D(-10), "TSLAx")
    assert pool.account("self").balance == D(510)  # 400 + 100 premium + 10


def test_stale_prices_and_foreign_events() -> None:
    pool, harness = make(max_price_age_ns=HOUR)
    fund_lp(pool, "lp1", MAIN, "1000")
    pool.deposit("alice", D(500))
    harness.run_until(T0 + 2 * HOUR)
    with pytest.raises(PoolRefused, match=r"^price: stale"):
        pool.trade("alice", CALL.id, Side.BUY, D(1))
    # Events of other feeds and bad values move nothing.
    pool.on_market(Quote(T0 + 2 * HOUR, "binance", "BTC/USD", 1.0, 2.0, 1.0, 1.0))
    pool.on_market(OraclePrice(T0 + 2 * HOUR, POOL, "BTC/USD", float("nan"), T0 + 2 * HOUR))
    assert pool.market.mark(CALL.id).spot == D(300)  # type: ignore[union-attr]
    assert pool.price_keys() == {(POOL, "BTC/USD"), (POOL, "TSLAx/USD")}


def test_config_mistakes_are_refused_by_name() -> None:
    with pytest.raises(InvalidInput, match=r"BTC-X.margin_asset: must be TSLAx"):
        config(options=(PerpetualOption("BTC-X", "BTC", D(1), True, YEAR, "USD", "AAPLx"),))
    with pytest.raises(InvalidInput, match=r"haircuts: no haircut configured"):
        config(margin=MarginPolicy({"USDC": D(0)}))
    with pytest.raises(InvalidInput, match=r"fee_bps: must be a finite Decimal"):
        config(fee_bps=5.0)
    with pytest.raises(InvalidInput, match=r"price_feeds: no feed prices 'BTC'"):
        OptionsPool(POOL, SimulatedClock(T0), config(price_feeds=FEEDS[1:]))
    with pytest.raises(InvalidInput, match=r"vols: no vol for 'BTC'"):
        OptionsPool(POOL, SimulatedClock(T0), config(vols={"TSLAx": D("0.6")}))


# ---------------------------------------------------------------------------------------- conservation


def test_value_is_conserved_exactly_over_a_seeded_random_run() -> None:
    rng = random.Random(20250615)
    pool, harness = make(
        spread_bps=D(30),
        fee_bps=D(5),
        insurance_fraction=D("0.2"),
        liquidation_penalty=D("0.02"),
        accrual_interval_ns=6 * HOUR,
        withdrawal_delay_ns=DAY,
    )
    traders = [f"t{i}" for i in range(6)]
    lps = ["lp1", "lp2", "lp3"]
    fund_lp(pool, "lp1", MAIN, "4000")
    fund_lp(pool, "lp2", MAIN, "2000")
    fund_lp(pool, "lp3", INS, "300")
    for trader in traders:
        pool.deposit(trader, D(rng.randrange(150, 1500)))
    ts, btc, tsla = T0, 75000.0, 250.0
    done = refused = 0
    for _ in range(500):
        action = rng.random()
        try:
            if action < 0.45:
                option = rng.choice((CALL, PUT, USD_CALL)).id
                side = rng.choice((Side.BUY, Side.SELL))
                pool.trade(rng.choice(traders), option, side, D(rng.choice(("0.1", "0.5", "1", "2"))))
            elif action < 0.55:
                trader = rng.choice(traders)
                open_positions = list(pool.account(trader).positions)
                if open_positions:
                    pool.close_position(trader, rng.choice(open_positions))
            elif action < 0.63:
                lp, share = rng.choice(lps), rng.choice((MAIN, INS))
                if rng.random() < 0.5:
                    pool.deposit(lp, D(rng.randrange(10, 500)))
                    pool.add_liquidity(lp, share, pool.account(lp).balance)
                elif pool.account(lp).shares.get(share):
                    half = (pool.account(lp).shares[share] / 2).quantize(QUANTUM, "ROUND_FLOOR")
                    pool.remove_liquidity(lp, share, half)
            elif action < 0.68:
                trader = rng.choice(traders)
                if rng.random() < 0.5:
                    pool.deposit(trader, D(rng.randrange(10, 400)))
                else:
                    pool.withdraw(trader, (pool.account(trader).balance / 3).quantize(QUANTUM, "ROUND_FLOOR"))
            else:
                ts += rng.randrange(HOUR, 3 * DAY)
                jump = rng.choice((1.0,) * 9 + (2.0, 0.5))
                btc = round(btc * math.exp(rng.gauss(0.0, 0.06)) * jump, 2)
                tsla = round(tsla * math.exp(rng.gauss(0.0, 0.02)), 2)
                feed(harness, prices(ts, btc, tsla))
            done += 1
        except PoolRefused:
            refused += 1
        check_identity(pool)
    c = pool.conservation()
    # The run exercised what it must: trades, funding both ways, liquidations with and without bad debt.
    assert len(pool.trades) > 100 and done > 300
    assert len(pool.liquidations) >= 3 and c.bad_debt > 0 and c.penalties > 0
    assert c.funding != 0 and any(a.received(Flow.FUNDING) > 0 for a in pool.ledger.accounts.values())
    assert c.residual == 0 and c.tokens == c.external
