"""PerpOptionsMM through the real TradingEngine + ReplayDriver + options pool (+ a book for the hedge).

The option: an everlasting BTC call struck at 300 TSLAx, premium and margin in TSLAx (the cross
pair), funding period 1 year. BTC 75000 USD and TSLAx 250 USD give X = 300 TSLAx per BTC; the pool
and the strategy use vols 0.8 (BTC) and 0.6 (TSLAx), rho 0: cross vol 1. With r = q = 0 the
closed form (pricing/everlasting.py) is, with u = sqrt(1 + 8 / sigma^2), x = X / K:
  X >= K: V = X - K + (K/u) x^((1-u)/2),  delta = 1 + (1-u)/(2u) x^(-(1+u)/2)
  X <  K: V = (K/u) x^((1+u)/2),          delta = (1+u)/(2u) x^((u-1)/2), gamma = (1+u)(u-1)/(4uK) x^((u-3)/2)
so at X = 300 (u = 3): V = 100, delta = 2/3; at X = 280: V = 100 (28/30)^2 = 87.111, delta = 0.62222.
The test recomputes these and the Avellaneda-Stoikov quote independently of the strategy's code.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import pricing
from backtest.replay import ListStream, ReplayDriver
from connectors.sim.book_exchange import BookExchange, BookExchangeConfig
from connectors.sim.latency import LatencyModel
from connectors.sim.options_pool import OptionsPool, OptionsPoolConfig
from connectors.sim.options_pool_market import PriceFeed
from core.clock import SimulatedClock
from core.engine import TradingEngine
from core.enums import OrderStatus, Side, TimeInForce
from core.events import Event, OraclePrice, Quote
from core.instruments import NS_PER_YEAR, InstrumentRegistry, PerpetualOption, Spot
from core.margin import MarginPolicy
from core.orders import OrderRequest
from core.portfolio import Portfolio
from strategies.perp_options_mm import PerpOptionsMM, PerpOptionsMMParams
from tests.connectors.sim.venue_harness import calendar

D = Decimal
POOL, BOOK = "options_pool", "bx"
SEC = 1_000_000_000
T0 = 1_750_000_000 * SEC
CALL = PerpetualOption("BTC-300-C/TSLAx", "BTC", D(300), True, NS_PER_YEAR, "TSLAx", "TSLAx")
HEDGE = Spot("BTC/USDT", "BTC", "USDT", price_increment=D("0.01"), size_increment=D("0.001"))
QUANTUM = D("1e-8")
GAMMA, KAPPA, TAU = 0.01, 1.0, 1 / 365  # risk aversion, order-arrival decay, 24 h in years


def closed_form(x_rate: float, sigma: float, k: float = 300.0) -> tuple[float, float, float]:
    """(V, delta, gamma) of the call above, r = q = 0, funding period 1 year."""
    u = math.sqrt(1 + 8 / sigma**2)
    x = x_rate / k
    if x_rate >= k:
        return (
            x_rate - k + (k / u) * x ** ((1 - u) / 2),
            1 + (1 - u) / (2 * u) * x ** (-(1 + u) / 2),
            math.nan,
        )
    value = (k / u) * x ** ((1 + u) / 2)
    delta = (1 + u) / (2 * u) * x ** ((u - 1) / 2)
    gamma = (1 + u) * (u - 1) / (4 * u * k) * x ** ((u - 3) / 2)
    return value, delta, gamma


def as_quote(value: float, delta: float, x_rate: float, sigma: float, q: float) -> tuple[Decimal, Decimal]:
    """Avellaneda-Stoikov bid and ask on the price grid: r = s - q g sp^2 tau, half widened by |q|/2."""
    sp = delta * x_rate * sigma  # the option price's vol (TSLAx per sqrt(year))
    reservation = value - q * GAMMA * sp**2 * TAU
    half = (GAMMA * sp**2 * TAU / 2 + math.log(1 + GAMMA / KAPPA) / GAMMA) * (1 + abs(q) / 2)
    bid = (D(repr(reservation - half)) / QUANTUM).to_integral_value(ROUND_FLOOR) * QUANTUM
    ask = (D(repr(reservation + half)) / QUANTUM).to_integral_value(ROUND_CEILING) * QUANTUM
    return bid, ask


def run(events: list[Event], **params: Any) -> tuple[TradingEngine, PerpOptionsMM, OptionsPool]:
    clock = SimulatedClock(T0 - 1)
    pool = OptionsPool(
        POOL,
        clock,
        OptionsPoolConfig(
            pool_asset="TSLAx",
            options=(CALL,),
            price_feeds=(PriceFeed(POOL, "BTC/USD", "BTC"), PriceFeed(POOL, "TSLAx/USD", "TSLAx")),
            margin=MarginPolicy({"TSLAx": D("0.2")}),
            vols={"BTC": D("0.8"), "TSLAx": D("0.6")},
        ),
    )
    book = BookExchange(
        BOOK,
        clock,
        InstrumentRegistry([HEDGE]),
        [HEDGE.id],
        {"BTC": D(1), "USDT": D(100_000)},
        BookExchangeConfig(order_latency=LatencyModel.constant(10_000_000)),
    )
    registry = InstrumentRegistry([CALL, HEDGE, *pool.share_instruments()])
    portfolio = Portfolio(registry)
    portfolio.deposit(POOL, "TSLAx", D(1000))
    pool.deposit("self", D(1000))
    pool.deposit("lp", D(5000))
    pool.add_liquidity("lp", "POOL-MAIN-LP", D(5000))
    portfolio.deposit(BOOK, "BTC", D(1))
    portfolio.deposit(BOOK, "USDT", D(100_000))
    values: dict[str, Any] = {
        "venue": POOL,
        "option": CALL.id,
        "underlying_price": f"oracle:{POOL}:BTC/USD",
        "quote_price": f"oracle:{POOL}:TSLAx/USD",
        "margin_price": f"oracle:{POOL}:TSLAx/USD",
        "max_price_age_ms": 3_600_000,
        "vol_source": "fixed",
        "fixed_vol": D("0.8"),
        "quote_vol": D("0.6"),
        "risk_aversion": D("0.01"),
        "kappa": D(1),
        "horizon_hours": D(24),
        "inventory_widening": D(1),
        "min_half_spread_bps": D(0),
        "quote_size": D(1),
        "max_inventory": D(2),
        "max_delta": D(10),
        "max_gamma": D(10),
        "max_vega": D(1000),
        "requote_tolerance_bps": D(0),
        "requote_ticks": 1,
    }
    values.update(params)
    strategy = PerpOptionsMM("mm", PerpOptionsMMParams(**values))
    engine = TradingEngine(
        clock=clock,
        instruments=registry,
        portfolio=portfolio,
        calendar=calendar(),
        venues={POOL: pool, BOOK: book},
        strategies=[strategy],
        pricing=pricing,
    )
    ReplayDriver(engine, clock, [pool, book]).run([ListStream(events, "recorded")])
    return engine, strategy, pool


def oracle(ts: int, instrument: str, price: float, source: str = POOL) -> OraclePrice:
    return OraclePrice(ts, source, instrument, price, ts)


def skew_events() -> list[Event]:
    """Quotes at X = 300 (tick at 60 s); BTC falls to 70000 at 90 s (the pool's ask reaches our bid);
    the tick at 120 s re-quotes at X = 280 with one contract long."""
    return [
        oracle(T0, "BTC/USD", 75000.0),
        oracle(T0, "TSLAx/USD", 250.0),
        oracle(T0 + 90 * SEC, "BTC/USD", 70000.0),
        oracle(T0 + 150 * SEC, "TSLAx/USD", 250.0),
    ]


def quotes_sent(engine: TradingEngine) -> list[OrderRequest]:
    return [
        o.request for o in engine.orders if isinstance(o.request, OrderRequest) and o.request.venue == POOL
    ]


def test_quotes_centre_on_the_everlasting_price_and_skew_against_inventory() -> None:
    engine, strategy, _ = run(skew_events())
    first_bid, first_ask = quotes_sent(engine)[:2]
    # Flat at X = 300: centred on V = 100 (ATM), half spread from sigma_p = 2/3 x 300 x 1 = 200.
    v0, d0, _ = closed_form(300.0, 1.0)
    assert abs(v0 - 100) < 1e-9 and abs(d0 - 2 / 3) < 1e-12
    assert (first_bid.side, first_ask.side) == (Side.BUY, Side.SELL)
    assert (first_bid.price, first_ask.price) == as_quote(v0, d0, 300.0, 1.0, 0.0)
    # The pool's ask fell to V(280) = 87.111111111 (its mark, half-even to 1e-8; no spread) under our
    # bid 98.46: we bought one at that ask.
    [fill] = engine.fills
    assert (fill.side, fill.quantity, fill.price) == (Side.BUY, D(1), D("87.11111111"))
    # Long one: the reservation moves down by q g sp^2 tau (sp = 0.6222 x 280 = 174.2), the spread widens.
    v1, d1, _ = closed_form(280.0, 1.0)
    assert strategy.bid is not None and strategy.ask is not None
    bid, ask = strategy.bid.request, strategy.ask.request
    assert isinstance(bid, OrderRequest) and isinstance(ask, OrderRequest)
    assert (bid.price, ask.price) == as_quote(v1, d1, 280.0, 1.0, 1.0)
    assert bid.price is not None and ask.price is not None
    centre = float(bid.price + ask.price) / 2
    shift = GAMMA * (d1 * 280.0) ** 2 * TAU  # 0.8316
    assert abs(centre - (v1 - shift)) < 1e-7 and centre < v1
    assert not strategy.bid.status.is_terminal and not strategy.ask.status.is_terminal


def test_the_spread_widens_with_implied_vol() -> None:
    # Vol from an implied-vol feed: 0.8 at the first tick, 1.6 at the second (cross vols 1 and
    # sqrt(1.6^2 + 0.6^2) = 1.7088); flat inventory, X = 300 throughout.
    events: list[Event] = [
        oracle(T0, "BTC/USD", 75000.0),
        oracle(T0, "TSLAx/USD", 250.0),
        oracle(T0, "BTC-IV", 0.8, source="deribit"),
        oracle(T0 + 90 * SEC, "BTC-IV", 1.6, source="deribit"),
        oracle(T0 + 150 * SEC, "TSLAx/USD", 250.0),
    ]
    engine, _, _ = run(events, vol_source="implied", implied_vol_feed="oracle:deribit:BTC-IV")
    sent = quotes_sent(engine)
    low = [r for r in sent[:2]]
    high = [r for r in sent[2:4]]
    s_high = math.sqrt(1.6**2 + 0.6**2)
    v_low, d_low, _ = closed_form(300.0, 1.0)
    v_high, d_high, _ = closed_form(300.0, s_high)
    assert (low[0].price, low[1].price) == as_quote(v_low, d_low, 300.0, 1.0, 0.0)
    assert (high[0].price, high[1].price) == as_quote(v_high, d_high, 300.0, s_high, 0.0)
    assert low[0].price is not None and low[1].price is not None
    assert high[0].price is not None and high[1].price is not None
    assert high[1].price - high[0].price > low[1].price - low[0].price


def test_quoting_stops_on_the_side_that_would_breach_the_delta_limit() -> None:
    # Long one call at X = 280: delta 0.622. Another buy would make 1.244 > 1: no bid; a sale
    # brings it to 0: the ask stays. (Flat at X = 300 both sides passed: 2/3 <= 1.)
    engine, strategy, _ = run(skew_events(), max_delta=D(1))
    assert [r.side for r in quotes_sent(engine)[:2]] == [Side.BUY, Side.SELL]
    assert strategy.bid is None or strategy.bid.status.is_terminal
    assert strategy.ask is not None and not strategy.ask.status.is_terminal


def test_quoting_stops_on_the_side_that_would_breach_the_gamma_limit() -> None:
    # gamma per 1% move of one call at X = 280: 2/900 x 280 / 100 = 0.006222; two calls 0.01244 > 0.01.
    _, _, g = closed_form(280.0, 1.0)
    assert abs(g * 280 / 100 - 0.0062222) < 1e-6
    _engine, strategy, _ = run(skew_events(), max_gamma=D("0.01"))
    assert strategy.bid is None or strategy.bid.status.is_terminal
    assert strategy.ask is not None and not strategy.ask.status.is_terminal


def test_the_hedge_order_is_the_computed_delta_and_funding_is_accounted() -> None:
    # Our vol for BTC is 2.0 (cross vol sqrt(4 + 0.36) = 2.088) while the pool prices at 1: our bid
    # (~174) is above the pool's ask (100), so it fills on arrival. Long one call, the hedge sells
    # delta BTC: u = sqrt(1 + 8 / 4.36) = 1.6837, delta = 1 + (1 - u) / (2u) = 0.79697 -> 0.796 on
    # the 0.001 grid, an IOC at the bid 74990 less 20 bps = 74840.02.
    events: list[Event] = [
        oracle(T0, "BTC/USD", 75000.0),
        oracle(T0, "TSLAx/USD", 250.0),
        Quote(T0, BOOK, HEDGE.id, 74990.0, 75010.0, 5.0, 5.0),
        *(oracle(T0 + h * 3600 * SEC, "BTC/USD", 75000.0) for h in (1, 2, 3)),
    ]
    engine, strategy, _pool = run(
        events,
        fixed_vol=D(2),
        max_inventory=D(1),
        hedge_venue=BOOK,
        hedge_instrument=HEDGE.id,
        hedge_min_size=D("0.001"),
    )
    _, delta, _ = closed_form(300.0, math.sqrt(4.36))
    assert abs(delta - 0.79697) < 1e-5
    hedges = [o.request for o in engine.orders if o.request.venue == BOOK]
    [hedge] = hedges
    assert isinstance(hedge, OrderRequest)
    expected = (D(repr(delta)) / D("0.001")).to_integral_value(ROUND_FLOOR) * D("0.001")
    assert (hedge.side, hedge.quantity, hedge.price, hedge.time_in_force) == (
        Side.SELL,
        expected,
        D("74840.02"),
        TimeInForce.IOC,
    )
    assert engine.orders.get(hedge.client_order_id).status is OrderStatus.FILLED
    assert strategy.hedge_position == -expected
    # Funding: the long paid (mark 100 > payoff 0) every hour; the strategy's tally is the portfolio's.
    assert strategy.funding_paid > 0
    assert strategy.funding_paid == engine.portfolio.funding_paid(POOL, CALL.id)
    assert strategy.premium_flow == -D(100)  # bought one at the pool's ask 100 (no fee)
