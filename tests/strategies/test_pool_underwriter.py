"""PoolUnderwriter through the real TradingEngine, ReplayDriver and simulated options pool.

Setting (as tests/backtest/test_options_pool_replay.py): BTC 75000 USD and TSLAx 250 USD give the
cross rate X = 300 TSLAx per BTC; the cross vol is sqrt(0.8^2 + 0.6^2) = 1 and the funding period
1 year, so with r = q = 0 the everlasting call struck at K = 300 TSLAx is worth, with u =
sqrt(1 + 8 / (sigma^2 T)) = 3: V = K/u (X/K)^2 below K and X - K + K/u (K/X) above it. At the money
V = 100 TSLAx. The pool quotes mark +- 50 bps (ask 100.5) and passes 10% of what it earns (the 0.5
spread) to insurance: 0.05 per call.

Another LP holds 1000 main shares (1000 tokens). We deposit 500 tokens, main_fraction 0.8:
400 main shares at NAV/share 1, and 100 insurance shares into the empty insurance tranche (1:1).
Our main fraction is then 400 / 1400 = 2/7.

Short call margin (core.margin, per call, USD): mark x S_TSLAx + max(0.15 S_BTC - OTM, 0.10 S_BTC);
at the money 100 x 250 + 0.15 x 75000 = 36250.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal, localcontext

import pytest

from backtest.replay import ListStream, ReplayDriver
from connectors.sim.options_pool import OptionsPool, OptionsPoolConfig
from connectors.sim.options_pool_ledger import Flow
from connectors.sim.options_pool_market import PriceFeed
from core.clock import SimulatedClock
from core.engine import TradingEngine
from core.enums import Side
from core.events import Event, OraclePrice
from core.instruments import NS_PER_YEAR, InstrumentRegistry, PerpetualOption
from core.margin import MarginPolicy
from core.money import MONEY
from core.portfolio import Portfolio
from strategies.pool_underwriter import PoolUnderwriter, PoolUnderwriterParams
from tests.connectors.sim.venue_harness import SECOND, calendar

D = Decimal
POOL = "options_pool"
MAIN, INS = "POOL-MAIN-LP", "POOL-INS-LP"
T0 = 1_750_000_000 * 1_000_000_000
CALL = PerpetualOption("BTC-300-C/TSLAx", "BTC", D(300), True, NS_PER_YEAR, "TSLAx", "TSLAx")
Q = D("1e-18")


def params(**overrides: object) -> PoolUnderwriterParams:
    base: dict[str, object] = {
        "venue": POOL,
        "deposit": 500,
        "main_fraction": "0.8",
        "check_interval_ms": 1000,
        "max_utilization": "0.25",
        "resume_utilization": "0.05",
        "max_delta_1pct": 100,
        "max_vega_1pt": 100,
        "max_drawdown": "0.5",
        "nav_buffer_bps": 0,
    }
    base.update(overrides)
    return PoolUnderwriterParams.model_validate(base)


def run(
    strategy: PoolUnderwriter, prices: list[tuple[int, float, float]], trades: list[tuple[int, int]]
) -> tuple[TradingEngine, OptionsPool]:
    """`prices`: (ts, BTC, TSLAx) index prints; `trades`: (ts, calls) another trader buys at the ask."""
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
            spread_bps=D(50),
            accrual_interval_ns=None,
        ),
    )
    registry = InstrumentRegistry([CALL, *pool.share_instruments()])
    portfolio = Portfolio(registry)
    portfolio.deposit(POOL, "TSLAx", D(1000))
    pool.deposit("self", D(1000))
    pool.deposit("lp", D(1000))
    pool.add_liquidity("lp", MAIN, D(1000))
    pool.deposit("trader", D(100_000))
    engine = TradingEngine(
        clock=clock,
        instruments=registry,
        portfolio=portfolio,
        calendar=calendar(),
        venues={POOL: pool},
        strategies=[strategy],
    )
    for ts, calls in trades:
        engine.schedule_hook(ts, lambda now, n=calls: pool.trade("trader", CALL.id, Side.BUY, D(n)))
    events: list[Event] = []
    for ts, btc, tsla in prices:
        events += [OraclePrice(ts, POOL, "BTC/USD", btc, ts), OraclePrice(ts, POOL, "TSLAx/USD", tsla, ts)]
    ReplayDriver(engine, clock, [pool]).run([ListStream(events, "index")])
    return engine, pool


def lp_fills(engine: TradingEngine) -> list[tuple[str, Side, Decimal, Decimal | None]]:
    return [(f.instrument, f.side, f.quantity, f.notional) for f in engine.fills]


def test_deposit_splits_by_main_fraction() -> None:
    strategy = PoolUnderwriter("uw", params())
    engine, pool = run(strategy, [(T0, 75000.0, 250.0), (T0 + 3 * SECOND, 75000.0, 250.0)], [])
    # the first look (T0 - 1 ns) has no price of TSLAx yet; the one at T0 - 1 + 1 s deposits
    assert lp_fills(engine) == [(MAIN, Side.BUY, D(400), D(400)), (INS, Side.BUY, D(100), D(100))]
    assert engine.portfolio.balance(POOL, "TSLAx") == D(500) == pool.account("self").balance
    assert engine.portfolio.balance(POOL, MAIN) == D(400) and engine.portfolio.balance(POOL, INS) == D(100)
    assert strategy.invested == D(500) and strategy.state == "invested"
    assert strategy.share.total == 0  # nothing traded: nothing earned or lost


def test_tracked_share_equals_the_pool_ledger() -> None:
    day = 86_400 * SECOND  # one look a day: the run spans a tenth of a year
    strategy = PoolUnderwriter(
        "uw", params(max_utilization="0.9", resume_utilization="0.01", check_interval_ms=86_400_000)
    )
    t1 = T0 + NS_PER_YEAR // 10  # a tenth of a funding period later
    prices = [(T0, 75000.0, 250.0), (T0 + 2 * day, 75000.0, 250.0), (t1, 75000.0, 250.0)]
    engine, pool = run(strategy, prices, [(T0 + 2 * day, 1)])
    main = pool.ledger.main
    with localcontext(MONEY):
        f = D(400) / D(1400)
        # premium 100.5 paid at the ask; the pool's cut to insurance 0.05
        assert main.received(Flow.PREMIUM) == D("100.5") and main.received(Flow.INSURANCE_SHARE) == D("-0.05")
        assert strategy.share.flows["premium"] == f * D("100.5")
        # insurance: we hold all 100 of its shares
        assert strategy.share.flows["insurance_share"] == f * D("-0.05") + D("0.05")
        # the long pays (mark - payoff) = 100 per year from the trade (day 2) to t1 (day 36.5)
        funding = main.received(Flow.FUNDING)
        assert abs(funding - D(100) * (NS_PER_YEAR // 10 - 2 * day) / NS_PER_YEAR) <= 2 * Q
        assert strategy.share.flows["funding"] == f * funding
        # the call is still worth 100: our part of its liability
        assert strategy.share.mark_to_market == -f * D(100)
        # the sum of what is booked is our stake's value less what we put in (to the share rounding)
        value = pool.share_value("self", MAIN) + pool.share_value("self", INS)
        assert abs(strategy.share.total - (value - D(500))) <= 2 * Q
    assert strategy.state == "invested" and len(engine.fills) == 2  # within bounds: no move
    view = strategy.last_view
    assert view is not None and view.requirement == D(36250)  # one short call at the money
    assert view.main.our_shares == D(400) and view.main.shares == D(1400)


def test_utilization_over_the_bound_moves_main_to_insurance() -> None:
    strategy = PoolUnderwriter("uw", params())
    prices = [(T0, 75000.0, 250.0), (T0 + 5 * SECOND, 75000.0, 250.0)]
    engine, pool = run(strategy, prices, [(T0 + 2 * SECOND, 3)])
    # After 3 calls: requirement 3 x 36250 = 108750 USD; main NAV 1400 + 3 x (100.5 - 0.05) - 300
    # = 1401.35, insurance 100.15; capital 1501.5 x 250 = 375375; utilization 0.2897 > 0.25.
    # (funding over the seconds since the trade is below 1e-5 tokens: read the NAV from the pool)
    decisions = [d.action for d in strategy.decisions]
    assert decisions[:2] == [f"deposit 400 {MAIN}", f"deposit 100 {INS}"]
    assert decisions[2] == f"withdraw 400 {MAIN}"
    assert strategy.decisions[2].reason.startswith("move to POOL-INS-LP: utilization 0.289")
    (_, _, redeem, mint) = engine.fills
    assert (redeem.instrument, redeem.side, redeem.quantity) == (MAIN, Side.SELL, D(400))
    assert (mint.instrument, mint.side) == (INS, Side.BUY)
    # paid 400 x 1401.35 / 1400 = 400.3857142857 (less 2/7 of a few micro-tokens of funding)
    assert D("400.3856") < redeem.notional < D("400.3858")
    with localcontext(MONEY):
        # deposited at the insurance NAV/share 100.15 / 100 (insurance earns no funding)
        assert mint.quantity == (redeem.notional / D("1.0015")).quantize(Q, ROUND_FLOOR)
        assert pool.ledger.insurance.shares == D(100) + mint.quantity
    assert engine.portfolio.balance(POOL, MAIN) == 0
    assert strategy.state == "invested"


def test_loss_beyond_max_drawdown_withdraws_everything() -> None:
    strategy = PoolUnderwriter(
        "uw", params(max_utilization="0.9", resume_utilization="0.01", max_drawdown="0.02")
    )
    # BTC jumps to 90000: X = 360 >= K, V = 60 + 100 x 300/360 = 143.33333333 (rounded to 1e-8)
    prices = [(T0, 75000.0, 250.0), (T0 + 3 * SECOND, 90000.0, 250.0), (T0 + 6 * SECOND, 90000.0, 250.0)]
    engine, pool = run(strategy, prices, [(T0 + 2 * SECOND, 1)])
    assert pool.marks()[CALL.id][0] == D("143.33333333")
    # main: 1400 + 100.5 - 0.05 - 143.33333333 = 1357.11666667 (less a few micro-tokens of funding
    # received); our 2/7 of it 387.7476..., insurance 100.05: PnL = -12.2024, drawdown 2.44% > 2%
    exits = [d for d in strategy.decisions if d.reason.startswith("exit: drawdown")]
    assert [d.action for d in exits] == [f"withdraw 400 {MAIN}", f"withdraw 100 {INS}"]
    assert exits[0].reason.startswith("exit: drawdown 0.0244")
    assert strategy.state == "withdrawn"
    assert engine.portfolio.balance(POOL, MAIN) == 0 and engine.portfolio.balance(POOL, INS) == 0
    # every token we hold at the pool is back in our account there, equal on both books
    assert engine.portfolio.balance(POOL, "TSLAx") == pool.account("self").balance
    loss = D(1000) - pool.account("self").balance
    assert D("12.2023") < loss < D("12.2025")


def test_params_are_checked() -> None:
    with pytest.raises(ValueError, match="resume_utilization 0.5 must be below max_utilization 0.5"):
        params(resume_utilization="0.5", max_utilization="0.5")
    with pytest.raises(ValueError, match="main_fraction"):
        params(main_fraction="1.5")
