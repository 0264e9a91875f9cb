"""End to end: the options pool inside TradingEngine + ReplayDriver, driven by a strategy.

The pool reads its index prices from oracle events stamped with its own name, so the driver hands
them to it before the engine and the strategies see them. Setting as in
tests/connectors/sim/test_options_pool.py: BTC 75000 USD and TSLAx 250 USD give the cross rate
X = 300 TSLAx per BTC, the cross vol is sqrt(0.8^2 + 0.6^2) = 1 and the funding period 1 year, so
the at-the-money call (strike 300 TSLAx) is worth K/3 = 100 TSLAx; r = q = 0.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from backtest.replay import ListStream, ReplayDriver
from connectors.sim.options_pool import OptionsPool, OptionsPoolConfig
from connectors.sim.options_pool_market import PriceFeed
from core.clock import SimulatedClock
from core.engine import TradingEngine
from core.enums import OrderStatus, OrderType, Side
from core.events import Fill, FundingPayment, OraclePrice
from core.instruments import NS_PER_YEAR, InstrumentRegistry, PerpetualOption
from core.margin import MarginPolicy
from core.orders import MintRequest, OrderRequest, RedeemRequest
from core.portfolio import Portfolio
from strategies.base import Strategy
from tests.connectors.sim.venue_harness import calendar

D = Decimal
POOL = "options_pool"
MAIN = "POOL-MAIN-LP"
T0 = 1_750_000_000 * 1_000_000_000
CALL = PerpetualOption("BTC-300-C/TSLAx", "BTC", D(300), True, NS_PER_YEAR, "TSLAx", "TSLAx")


class Scripted(Strategy):
    """At the n-th oracle price it sees, sends the requests scripted for n (1-based)."""

    def __init__(self, name: str, script: dict[int, list[Any]]) -> None:
        super().__init__(name)
        self.script = script
        self.seen = 0
        self.payments: list[FundingPayment] = []
        self.fills: list[Fill] = []

    async def on_oracle(self, ctx: Any, event: OraclePrice, **kwargs: Any) -> None:
        self.seen += 1
        for make in self.script.get(self.seen, []):
            await ctx.submit(make(ctx.new_client_order_id()))

    async def on_funding_payment(self, ctx: Any, event: FundingPayment, **kwargs: Any) -> None:
        self.payments.append(event)

    async def on_fill(self, ctx: Any, event: Fill, **kwargs: Any) -> None:
        self.fills.append(event)


def run(
    strategy: Scripted,
    oracle: list[tuple[int, str, float]],
    deposit: Decimal,
    spread_bps: Decimal,
    lp: Decimal | None = None,
) -> tuple[TradingEngine, OptionsPool]:
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
            spread_bps=spread_bps,
            accrual_interval_ns=None,
        ),
    )
    registry = InstrumentRegistry([CALL, *pool.share_instruments()])
    portfolio = Portfolio(registry)
    # Our collateral sits at the pool: the same amount in the pool's ledger and in the portfolio.
    portfolio.deposit(POOL, "TSLAx", deposit)
    pool.deposit("self", deposit)
    if lp:
        pool.deposit("lp", lp)
        pool.add_liquidity("lp", MAIN, lp)
    engine = TradingEngine(
        clock=clock,
        instruments=registry,
        portfolio=portfolio,
        calendar=calendar(),
        venues={POOL: pool},
        strategies=[strategy],
    )
    events = [OraclePrice(ts, POOL, instrument, price, ts) for ts, instrument, price in oracle]
    ReplayDriver(engine, clock, [pool]).run([ListStream(events, "index")])
    return engine, pool


def test_lp_and_trader_round_trip_through_the_engine() -> None:
    t1 = T0 + NS_PER_YEAR // 10  # a tenth of a funding period later
    strategy = Scripted(
        "s",
        {
            # once both prices are known: become an LP with 500 shares, then buy one call
            2: [
                lambda cid: MintRequest(cid, POOL, MAIN, D(500), "TSLAx"),
                lambda cid: OrderRequest(cid, POOL, CALL.id, Side.BUY, D(1), OrderType.MARKET),
            ],
            # at t1: sell the call back and redeem every share
            4: [
                lambda cid: OrderRequest(cid, POOL, CALL.id, Side.SELL, D(1), OrderType.MARKET),
                lambda cid: RedeemRequest(cid, POOL, MAIN, D(500), "TSLAx"),
            ],
        },
    )
    oracle = [
        (T0, "BTC/USD", 75000.0),
        (T0, "TSLAx/USD", 250.0),
        (t1, "BTC/USD", 75000.0),
        (t1, "TSLAx/USD", 250.0),
    ]
    engine, pool = run(strategy, oracle, D(1000), D(50))
    assert [engine.orders.get(f"s-{i}").status for i in range(1, 5)] == [OrderStatus.FILLED] * 4
    assert engine.orders.get("s-1").history == [OrderStatus.NEW, OrderStatus.ACCEPTED, OrderStatus.FILLED]
    by_id = {f.client_order_id: f for f in engine.fills}
    # mint into the empty tranche: 500 shares for 500 TSLAx
    assert (by_id["s-1"].price, by_id["s-1"].notional) == (D(1), D(500))
    # buy at the ask 100 x 1.005 = 100.5; main keeps 0.5 less 10% to insurance: 500 + 100.5 - 0.05 = 600.45
    assert (by_id["s-2"].ts, by_id["s-2"].price) == (T0, D("100.5"))
    # at t1 the long pays 100 x 0.1 = 10 funding (main 610.45), then sells at the bid 99.5:
    # main 610.45 - 99.5 - 0.05 = 510.9, nothing open, so NAV 510.9 = 500 shares x 1.0218
    assert (by_id["s-3"].ts, by_id["s-3"].price) == (t1, D("99.5"))
    assert (by_id["s-4"].price, by_id["s-4"].notional) == (D("1.0218"), D("510.9"))
    assert strategy.payments == [FundingPayment(t1, POOL, CALL.id, D(10), "TSLAx")]
    # 1000 - 500 - 100.5 - 10 + 99.5 + 510.9 = 999.9: the 0.1 the insurance pool kept is our loss
    p = engine.portfolio
    assert p.balance(POOL, "TSLAx") == D("999.9") == pool.account("self").balance
    assert p.balance(POOL, MAIN) == 0 and p.position(POOL, CALL.id).is_flat
    assert p.funding_paid(POOL, CALL.id) == D(10)
    c = pool.conservation()
    assert (c.trader_pnl, c.main_pnl, c.insurance_pnl, c.residual) == (D(-11), D("10.9"), D("0.1"), D(0))


def test_our_short_is_liquidated_and_the_portfolio_follows() -> None:
    t1 = T0 + NS_PER_YEAR // 100
    strategy = Scripted(
        "s", {2: [lambda cid: OrderRequest(cid, POOL, CALL.id, Side.SELL, D(1), OrderType.MARKET)]}
    )
    # BTC jumps to 250000 at t1: X = 1000, the call is worth 100 x 300/1000 + 700 = 730
    oracle = [(T0, "BTC/USD", 75000.0), (T0, "TSLAx/USD", 250.0), (t1, "BTC/USD", 250000.0)]
    engine, pool = run(strategy, oracle, D(375), D(0), lp=D(1000))
    # sold at 100: 475; at t1 first the short receives 100 x 0.01 = 1 funding (476), then the jump:
    # buying back at 730 leaves 476 - 730 = -254; the insurance pool is empty, the main pool covers 254
    [liquidation] = pool.liquidations
    assert (liquidation.account, liquidation.covered_by_insurance, liquidation.covered_by_main) == (
        "self",
        D(0),
        D(254),
    )
    fill = engine.fills[-1]
    assert (fill.client_order_id, fill.side, fill.price, fill.quantity, fill.fee) == (
        "",
        Side.BUY,
        D(730),
        D(1),
        D(-254),
    )
    assert strategy.payments == [FundingPayment(t1, POOL, CALL.id, D(-1), "TSLAx")]
    p = engine.portfolio
    assert p.position(POOL, CALL.id).is_flat
    assert p.balance(POOL, "TSLAx") == 0 == pool.account("self").balance
    # main: 1000 - 100 premium - 1 funding + 730 buy-back - 254 cover = 1375 (the LP gained our 375)
    assert pool.nav(MAIN) == D(1375) and pool.conservation().residual == 0
