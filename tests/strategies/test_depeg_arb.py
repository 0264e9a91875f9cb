"""DepegArb through the real TradingEngine + ReplayDriver + simulated AMM, broker and perp exchange.

The pool: a Uniswap v2 pair TOKx/USDC, both 6 decimals, fee 0.30%, 1000 TOKx against 100 x P
USDC (price P USDC per TOKx before the fee). The stock TSL trades at the broker at mid 100 (bid
99.99, ask 100.01); the token's multiplier is 1, so fair value = 100. Costs the strategy assumes:
broker spread 2 + fee 1 bps, redeem and mint fee 10 bps, safety margin 10 bps; gas 110,000 units x
2 gwei x 3000 USDC = 0.66 USDC a swap. So a token is worth v_buy = 100 x (1 - 0.0023) = 99.77 to a
buyer in regular hours, and the pool's marginal price of a buy is P / 0.997: buying pays only
when P < 99.77 x 0.997 = 99.470 (a gap of 53 bps). Selling pays when P x 0.997 > 100.23, P > 100.532.

The optimum against the pair (closed form): a* = (sqrt(R_in R_out 0.997 v) - R_in) / 0.997 USDC in.
Times are New York: Tuesday 2025-07-08 10:00 is regular hours, 22:00 overnight; Saturday
2025-07-12 is the weekend; Monday 2025-07-14 09:30 the open after it.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import Any

from backtest.replay import ListStream, ReplayDriver
from connectors.sim.amm import AmmConfig, AmmPoolSpec, SimAmm
from connectors.sim.amm_gas import GasModel
from connectors.sim.base import SimVenue
from connectors.sim.book_exchange import BookExchange, BookExchangeConfig
from connectors.sim.broker import BrokerAsset, BrokerConfig, SimBroker
from connectors.sim.fees import FeeSchedule
from connectors.sim.latency import LatencyModel
from core.clock import SimulatedClock
from core.engine import ReferenceSource, TradingEngine
from core.enums import Session, Side
from core.events import Event, MarketStatus, OraclePrice, PoolState, Quote
from core.instruments import InstrumentRegistry, Pool, Spot, StockPerp, TokenizedStock
from core.orders import OrderRequest, SwapRequest
from core.portfolio import Portfolio
from pricing.amm import v2_amount_out
from strategies.depeg_arb import DepegArb, DepegArbParams
from tests.connectors.sim.venue_harness import MINUTE, MS, SECOND, calendar, et

D = Decimal
TOKEN = TokenizedStock("TOKx", "TSL", "issuer", 1, "0x" + "33" * 20, 6)
POOL = Pool("TOKx/USDC", "uni", 1, "0x" + "11" * 20, "TOKx", "USDC", 3000, version=2)
POOL_PAIR = Spot("TOKx/USDC@uni", "TOKx", "USDC")
STOCK = Spot("TSL/USD", "TSL", "USD", price_increment=D("0.01"), size_increment=D("0.000000001"))
PERP = StockPerp("TSL-PERP", "TSL", "USDT", min_size=D("0.01"))
BOOK = Spot("TOKx/USDT", "TOKx", "USDT", price_increment=D("0.01"), size_increment=D("0.001"))
GAS = Fraction(110_000 * 2 * 3000, 10**9)  # USDC per swap
BASE = {
    "token": "TOKx",
    "pools": [{"venue": "uni", "pool": "TOKx/USDC", "gas_units": 110_000, "gas_price_gwei": 2}],
    "broker_venue": "broker",
    "stock_instrument": "TSL/USD",
    "broker_spread_bps": 2,
    "broker_fee_bps": 1,
    "redeem_fee_bps": 10,
    "mint_fee_bps": 10,
    "safety_margin_bps": 10,
    "hold_cost_bps": 30,
    "max_trade_tokens": 50,
    "max_unhedged_shares": 5,
    "check_interval_s": 3600,
    "multiplier_blackout_ms": 0,
}


def params(**overrides: Any) -> DepegArbParams:
    return DepegArbParams.model_validate({**BASE, **overrides})


def v2_state(ts: int, price: int) -> PoolState:
    """The pair at `price` USDC per TOKx: 1000 TOKx and 1000 x price USDC (base units, 6 decimals)."""
    return PoolState(ts, "uni", POOL.id, 0, 1000 * 10**6, 1000 * price * 10**6)


def stock(ts: int, mid: float = 100.0) -> Quote:
    return Quote(ts, "broker", "TSL/USD", mid - 0.01, mid + 0.01, 500.0, 500.0)


def status(ts: int, session: Session) -> MarketStatus:
    return MarketStatus(ts, "XNYS", session, ts + 3600 * SECOND)


def run(
    p: DepegArbParams,
    events: list[Event],
    perp: bool = False,
    reference: bool = True,
    book: bool = False,
    risk_checks: tuple[Any, ...] = (),
) -> tuple[TradingEngine, DepegArb]:
    events = sorted(events, key=lambda e: e.ts)
    clock = SimulatedClock(events[0].ts - SECOND)
    instruments: list[Any] = [TOKEN, POOL, POOL_PAIR, STOCK]
    instruments += ([PERP] if perp else []) + ([BOOK] if book else [])
    registry = InstrumentRegistry(instruments)
    portfolio = Portfolio(registry)
    balances = {
        "uni": {"USDC": D(100_000), "TOKx": D(100)},
        "broker": {"USD": D(100_000), "TSL": D(100)},
        "perpx": {"USDT": D(100_000)},
        "bx": {"USDT": D(100_000), "TOKx": D(100)},
    }
    for venue, assets in balances.items():
        for asset, amount in assets.items():
            portfolio.deposit(venue, asset, amount)
    amm = SimAmm(
        "uni",
        clock,
        [AmmPoolSpec(POOL, POOL_PAIR)],
        {"TOKx": 6, "USDC": 6},
        AmmConfig(gas=GasModel(price_gwei=D(2)), gas_fee_in="quote"),
        balances["uni"],
        D(3000),
    )
    broker = SimBroker(
        "broker", clock, calendar(), [BrokerAsset(STOCK)], BrokerConfig(latency_ns=0), balances["broker"]
    )
    venues: list[SimVenue] = [amm, broker]
    if perp:
        config = BookExchangeConfig(fees=FeeSchedule(D(2), D(5)), size_step=D("0.01"))
        venues.append(BookExchange("perpx", clock, registry, [PERP.id], balances["perpx"], config))
    if book:
        config = BookExchangeConfig(fees=FeeSchedule(D(0), D(10)), order_latency=LatencyModel(50 * MS))
        venues.append(BookExchange("bx", clock, registry, [BOOK.id], balances["bx"], config))
    strategy = DepegArb("arb", p)
    engine = TradingEngine(
        clock=clock,
        instruments=registry,
        portfolio=portfolio,
        calendar=calendar(),
        venues={v.name: v for v in venues},
        strategies=[strategy],
        references=[ReferenceSource("TSL", "broker", "TSL/USD", 90 * SECOND)] if reference else [],
        risk_checks=risk_checks,
    )
    ReplayDriver(engine, clock, venues).run([ListStream(events, "recorded")])
    return engine, strategy


def requests(engine: TradingEngine, kind: type) -> list[Any]:
    return [o.request for o in engine.orders if isinstance(o.request, kind)]


def best_v2_input(price: int, value: Fraction) -> int:
    """Hand formula: floor of the continuous optimum a* (USDC base units)."""
    r_in, r_out = 1000 * price * 10**6, 1000 * 10**6
    root = math.isqrt(int(Fraction(r_in * r_out * 997, 1000) * value * 10**12)) / 10**6
    return int((root - r_in) * 1000 / 997)


def brute_force_profit(price: int, value: Fraction, candidates: range) -> Fraction:
    """Best profit (USDC base units, net of gas) over `candidates` on the exact pair math."""
    r_in, r_out = 1000 * price * 10**6, 1000 * 10**6
    gas = GAS * 10**6
    return max(v2_amount_out(a, r_in, r_out, 30) * value - a - gas for a in candidates)


REGULAR = et(2025, 7, 8, 10)


def regular(*pool: PoolState) -> list[Event]:
    return [status(REGULAR - MINUTE, Session.REGULAR), stock(REGULAR), *pool, stock(REGULAR + MINUTE)]


def test_no_trade_when_the_gap_is_below_the_costs() -> None:
    # 99 < 99.47 < P = 99.5 would buy at a 50 bps gap: below the 53 bps of costs, nothing happens
    engine, strategy = run(
        params(), regular(PoolState(REGULAR + SECOND, "uni", POOL.id, 0, 10**9, 99_500 * 10**6))
    )
    assert requests(engine, SwapRequest) == [] and strategy.decisions == []


def test_buys_the_cheap_pool_with_the_profit_maximising_size_then_hedges_on_the_broker() -> None:
    engine, strategy = run(params(), regular(v2_state(REGULAR + SECOND, 98)))
    (swap,) = requests(engine, SwapRequest)
    assert (swap.token_in, swap.token_out) == ("USDC", "TOKx")  # the cheap side: buy the token
    value = Fraction(9977, 100)  # v_buy, USDC per TOKx (both 6 decimals: the same in base units)
    # a* = (sqrt(98e9 x 1e9 x 0.997 x 99.77) - 98e9) / 0.997 = 734.8... USDC
    expected = best_v2_input(98, value)
    assert 734_000_000 < expected < 735_000_000
    # the pair floors its output (1 TOKx unit ~ 100 USDC units) and the profit is flat at a*: the
    # integer optimum sits on a plateau around it; the brute force below decides optimality
    assert abs(swap.amount_in - expected) <= expected // 100_000
    r_in, r_out = 98_000 * 10**6, 1000 * 10**6
    ours = v2_amount_out(swap.amount_in, r_in, r_out, 30) * value - swap.amount_in - GAS * 10**6
    # independent brute force: a grid over [0, 3a*] and every unit within 500 of ours
    grid = brute_force_profit(98, value, range(1, 3 * expected, 3 * expected // 20_000))
    near = brute_force_profit(98, value, range(swap.amount_in - 500, swap.amount_in + 501))
    assert ours >= grid and ours >= near
    # the fill is hedged at once in regular hours: sell the shares the tokens bought, at the broker
    bought = D(v2_amount_out(swap.amount_in, r_in, r_out, 30)).scaleb(-6)
    hedges = requests(engine, OrderRequest)
    assert [(h.venue, h.side, h.quantity) for h in hedges] == [("broker", Side.SELL, bought)]
    assert strategy.token_delta == bought


class RefuseBrokerOrders:
    """A risk check that refuses every order to the broker (a limit reached, say)."""

    def check(self, request: Any, engine: TradingEngine) -> str | None:
        return "max_position reached" if request.venue == "broker" else None


def test_a_refused_hedge_waits_before_the_next_instead_of_one_per_quote() -> None:
    # The swap sent at +1 s fills with its block at +12 s and leaves a delta; broker quotes every
    # 100 ms from +12.1 s to +15 s would each re-send the hedge (32 refusals with the minute's quote).
    # With hedge_retry_ms 1000: at the fill (+12 s), then +13, +14, +15 s, and the quote at +60 s.
    quotes = [stock(REGULAR + 12 * SECOND + k * 100 * MS) for k in range(1, 31)]
    events = [*regular(v2_state(REGULAR + SECOND, 98)), *quotes]
    engine, _ = run(params(), events, risk_checks=(RefuseBrokerOrders(),))
    assert [f.ts - REGULAR for f in engine.fills] == [12 * SECOND]
    refused = [u.ts - REGULAR for u in engine.rejections if u.venue == "broker"]
    assert refused == [12 * SECOND, 13 * SECOND, 14 * SECOND, 15 * SECOND, 60 * SECOND]


def test_sells_the_rich_pool() -> None:
    engine, _ = run(params(), regular(v2_state(REGULAR + SECOND, 102)))
    (swap,) = requests(engine, SwapRequest)
    assert (swap.token_in, swap.token_out) == ("TOKx", "USDC")
    # v_sell = 100.23; selling q tokens pays 102000 q 0.997 / (1000 + 0.997 q): optimum q* =
    # (sqrt(1000 x 102000 x 0.997 / 100.23) - 1000) / 0.997 = 7.24 tokens, within a unit plateau
    q_star = (math.sqrt(1000 * 102_000 * 0.997 / 100.23) - 1000) / 0.997
    assert abs(swap.amount_in / 1e6 - q_star) < 1e-3
    (hedge,) = requests(engine, OrderRequest)
    assert (hedge.venue, hedge.side) == ("broker", Side.BUY)


def test_a_gap_seen_while_the_reference_is_stale_is_traded_when_a_fresh_price_comes() -> None:
    # The broker's last price is 5 minutes old (the reference lasts 90 s) when the pool shows 98:
    # no fair value, no trade; the broker's next quote at +30 s makes it one, and the gap is traded.
    events = [
        status(REGULAR - 10 * MINUTE, Session.REGULAR),
        stock(REGULAR - 5 * MINUTE),
        v2_state(REGULAR + SECOND, 98),
        stock(REGULAR + 30 * SECOND),
    ]
    engine, strategy = run(params(), events)
    (swap,) = requests(engine, SwapRequest)
    assert (swap.token_in, swap.token_out) == ("USDC", "TOKx")
    assert [d[:3] for d in strategy.decisions] == [(REGULAR + 30 * SECOND, "uni", "buy")]
    # the same size as when the price was fresh at the pool's move (the test above)
    assert abs(swap.amount_in - best_v2_input(98, Fraction(9977, 100))) <= 7_348


def test_a_stock_move_under_a_still_pool_is_traded() -> None:
    # The pool rests at 99.5, 50 bps under a fair value of 100: below the costs. The stock then
    # trades at 101: v_buy = 101 x 0.9977 = 100.77 > 99.5 / 0.997 = 99.80, so buying pays now.
    events = [
        status(REGULAR - MINUTE, Session.REGULAR),
        stock(REGULAR),
        PoolState(REGULAR + SECOND, "uni", POOL.id, 0, 10**9, 99_500 * 10**6),
        stock(REGULAR + 20 * SECOND, mid=101.0),
    ]
    engine, strategy = run(params(), events)
    (swap,) = requests(engine, SwapRequest)
    assert (swap.token_in, swap.token_out) == ("USDC", "TOKx")
    assert [d[:3] for d in strategy.decisions] == [(REGULAR + 20 * SECOND, "uni", "buy")]


def test_a_reference_move_does_not_retake_liquidity_the_book_has_not_shown_again() -> None:
    # The book's bid 102 x 3 is rich (v_sell = 100.23 plus a 10 bps taker fee): the strategy sells
    # 3 into it; the order reaches the exchange 50 ms later and fills. The broker's quotes at +20 s
    # and +40 s re-examine the book, whose last quote still shows the 3 we took: nothing more is
    # sent until the book shows itself again at +50 s.
    bid = Quote(REGULAR + SECOND, "bx", BOOK.id, 102.0, 103.0, 3.0, 5.0)
    events = [
        status(REGULAR - MINUTE, Session.REGULAR),
        stock(REGULAR),
        bid,
        stock(REGULAR + 20 * SECOND),
        stock(REGULAR + 40 * SECOND),
        bid._replace(ts=REGULAR + 50 * SECOND),
    ]
    p = params(pools=[], books=[{"venue": "bx", "instrument": BOOK.id, "taker_fee_bps": 10}])
    engine, strategy = run(p, events, book=True)
    fills = [(f.ts - REGULAR, f.side, f.quantity) for f in engine.fills if f.venue == "bx"]
    assert fills[0] == (SECOND + 50 * MS, Side.SELL, D(3))
    assert [d[:3] for d in strategy.decisions] == [
        (REGULAR + SECOND, "bx", "sell"),
        (REGULAR + 50 * SECOND, "bx", "sell"),
    ]


OVERNIGHT = et(2025, 7, 8, 22)


def test_overnight_without_a_perp_holds_within_the_limit_and_hedges_at_the_open() -> None:
    open_ns = et(2025, 7, 9, 9, 30)
    events: list[Event] = [
        status(OVERNIGHT - MINUTE, Session.OVERNIGHT),
        stock(OVERNIGHT),
        v2_state(OVERNIGHT + SECOND, 98),
        stock(OVERNIGHT + MINUTE),
        status(open_ns, Session.REGULAR),
        stock(open_ns),
        stock(open_ns + MINUTE),
    ]
    engine, strategy = run(params(), events)
    (swap,) = requests(engine, SwapRequest)
    # v_buy = 100 x (1 - (30 hold + 10 redeem + 10 safety) / 1e4) = 99.5 still beats 98 / 0.997, but
    # the size is capped by max_unhedged_shares = 5 tokens (exact output of 5 TOKx: the cap)
    assert strategy.token_delta == D(5)
    hedges = requests(engine, OrderRequest)
    # nothing on the broker overnight; at the open the 5 shares are sold
    assert [(h.venue, h.side, h.quantity) for h in hedges] == [("broker", Side.SELL, D(5))]
    assert engine.orders.get(hedges[0].client_order_id).request is hedges[0]
    assert swap.token_out == "TOKx"


def test_overnight_with_a_perp_hedges_on_the_perp() -> None:
    events: list[Event] = [
        status(OVERNIGHT - MINUTE, Session.OVERNIGHT),
        stock(OVERNIGHT),
        Quote(OVERNIGHT, "perpx", PERP.id, 99.9, 100.1, 100.0, 100.0),
        v2_state(OVERNIGHT + SECOND, 98),
        stock(OVERNIGHT + MINUTE),
        Quote(OVERNIGHT + MINUTE, "perpx", PERP.id, 99.9, 100.1, 100.0, 100.0),
    ]
    p = params(perp_venue="perpx", perp_instrument=PERP.id, perp_fee_bps=5, perp_spread_bps=10)
    engine, strategy = run(p, events, perp=True)
    (swap,) = requests(engine, SwapRequest)
    # hedgeable: no 5-share cap; v_buy = 100 x (1 - (15 + 10 + 10) / 1e4) = 99.65; a* from the formula
    expected = best_v2_input(98, Fraction(9965, 100))
    assert abs(swap.amount_in - expected) <= expected // 100_000
    (hedge,) = requests(engine, OrderRequest)
    tokens = strategy.token_delta
    # the perp order is the token delta rounded down to the perp's 0.01 size step, sold
    assert (hedge.venue, hedge.side) == ("perpx", Side.SELL)
    assert hedge.quantity == tokens.quantize(D("0.01"), rounding="ROUND_DOWN")


WEEKEND = et(2025, 7, 12, 12)


def oracle(ts: int, publish_ts: int, session: Session | None) -> OraclePrice:
    return OraclePrice(ts, "feed", "TSL/USD", 100.0, publish_ts, 1, session)


def test_weekend_frozen_oracle_never_trades_a_fresh_24_7_feed_holds_within_the_limit() -> None:
    base: list[Event] = [status(WEEKEND - MINUTE, Session.WEEKEND)]
    p = params(oracle_source="feed", oracle_instrument="TSL/USD", oracle_max_age_ms=60_000)
    # Chainlink's weekend `price`: publish time fresh but market status WEEKEND: frozen, no trade
    frozen = [oracle(WEEKEND, WEEKEND, Session.WEEKEND), v2_state(WEEKEND + SECOND, 98)]
    engine, _ = run(p, base + frozen, reference=False)
    assert requests(engine, SwapRequest) == []
    # a 24/7 feed (no market status): trade, no hedge venue open on a weekend, so held within 5 shares
    live = [
        oracle(WEEKEND, WEEKEND, None),
        v2_state(WEEKEND + SECOND, 98),
        oracle(WEEKEND + MINUTE, WEEKEND, None),
    ]
    engine, strategy = run(p, base + live, reference=False)
    assert len(requests(engine, SwapRequest)) == 1 and strategy.token_delta == D(5)
    assert requests(engine, OrderRequest) == []


def test_stale_oracle_means_no_trade() -> None:
    p = params(oracle_source="feed", oracle_instrument="TSL/USD", oracle_max_age_ms=60_000)
    start = [status(REGULAR - MINUTE, Session.REGULAR)]
    # no broker reference; the oracle was published 61 s before the pool moved: stale
    stale = [oracle(REGULAR, REGULAR - 60 * SECOND, Session.REGULAR), v2_state(REGULAR + SECOND, 98)]
    engine, _ = run(p, start + stale, reference=False)
    assert requests(engine, SwapRequest) == []
    # published 59 s before: fresh, the same gap trades
    fresh = [oracle(REGULAR, REGULAR - 58 * SECOND, Session.REGULAR), v2_state(REGULAR + SECOND, 98)]
    engine, _ = run(p, start + fresh, reference=False)
    assert len(requests(engine, SwapRequest)) == 1


def test_a_fresh_oracle_that_disagrees_with_the_reference_vetoes() -> None:
    p = params(oracle_source="feed", oracle_instrument="TSL/USD", max_reference_divergence_bps=100)
    far = OraclePrice(REGULAR, "feed", "TSL/USD", 102.0, REGULAR, 1, Session.REGULAR)  # 196 bps away
    engine, _ = run(p, [*regular(v2_state(REGULAR + SECOND, 98)), far])
    assert requests(engine, SwapRequest) == []


MONDAY_OPEN = et(2025, 7, 14, 9, 30)


def test_monday_open_pauses_then_widens_the_threshold() -> None:
    # A pair 100 times deeper (100,000 TOKx), so small gaps pay more than the 1 USDC minimum.
    # Normally a buy needs P < 99.47; in the wide window P < 100 x (1 - 0.0048) x 0.997 = 99.221:
    # 99.0 passes both, 99.3 only the normal one (its optimum: 85.8 TOKx for 6.69 USDC of profit).
    def pool_at(minutes: int, price_cents: int) -> list[Event]:
        ts = MONDAY_OPEN + minutes * MINUTE
        return [stock(ts), PoolState(ts + SECOND, "uni", POOL.id, 0, 10**11, price_cents * 10**9)]

    weekend: list[Event] = [status(WEEKEND, Session.WEEKEND), status(MONDAY_OPEN, Session.REGULAR)]
    engine, _ = run(params(), weekend + pool_at(2, 9900))  # 2 minutes in: paused
    assert requests(engine, SwapRequest) == []
    engine, _ = run(params(), weekend + pool_at(10, 9930))  # 10 minutes: 99.3 is not enough
    assert requests(engine, SwapRequest) == []
    engine, _ = run(params(), weekend + pool_at(10, 9900))  # 99.0 is
    assert len(requests(engine, SwapRequest)) == 1
    engine, _ = run(params(), weekend + pool_at(40, 9930))  # after 35 minutes the normal threshold
    assert len(requests(engine, SwapRequest)) == 1
    # an ordinary (Tuesday) open is not special: 2 minutes after it, 99.0 trades
    tuesday = et(2025, 7, 15, 9, 30)
    ordinary: list[Event] = [
        status(tuesday - 3600 * SECOND, Session.PRE_MARKET),
        status(tuesday, Session.REGULAR),
        stock(tuesday + 2 * MINUTE),
        PoolState(tuesday + 2 * MINUTE + SECOND, "uni", POOL.id, 0, 10**11, 9900 * 10**9),
    ]
    engine, _ = run(params(), ordinary)
    assert len(requests(engine, SwapRequest)) == 1
