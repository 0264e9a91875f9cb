"""End to end: the simulated AMM inside TradingEngine + ReplayDriver, driven by a buy-the-dip strategy.

A v2 TSLAx/USDC pool (TSLAx token0, 8 decimals; USDC token1, 6 decimals) on a 12 s chain with gas
at 1 gwei. Recorded states, one per block (block k at 12k s):

- 1200 s, block 100: 1000 TSLAx / 250,000 USDC, price 250;
- 1212 s, block 101: 1000 TSLAx / 240,000 USDC, price 240 < 245: the strategy buys 1000 USDC of TSLAx,
  the swap lands in block 102 at 1224 s;
- 1236 s, block 103: 1000 TSLAx / 250,000 USDC again (the record resets our impact).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from backtest.replay import ListStream, ReplayDriver
from connectors.sim.amm import AmmConfig, AmmPoolSpec, SimAmm
from core.clock import SimulatedClock
from core.engine import TradingEngine
from core.enums import OrderStatus, Side
from core.events import Fill, OrderUpdate, PoolState
from core.instruments import InstrumentRegistry, Pool, Spot
from core.orders import SwapRequest
from core.portfolio import Portfolio
from strategies.base import Strategy
from tests.connectors.sim.venue_harness import SECOND, calendar

D = Decimal
S = SECOND
POOL = Pool("TSLAx/USDC-v2", "uni", 1, "0x" + "44" * 20, "TSLAx", "USDC", 3000, version=2)
PAIR = Spot("TSLAx/USDC", "TSLAx", "USDC")
TSLAX_UNITS, USDC_UNITS = 10**8, 10**6


class BuyTheDip(Strategy):
    """Once, when the pool's price falls below `threshold` USDC, swaps 1000 USDC for TSLAx."""

    def __init__(self, name: str, threshold: Decimal, min_amount_out: int) -> None:
        super().__init__(name)
        self.threshold = threshold
        self.min_amount_out = min_amount_out
        self.sent = False
        self.seen: list[tuple[int, int, int]] = []
        self.updates: list[OrderUpdate] = []
        self.fills: list[Fill] = []

    async def on_pool_state(self, ctx: Any, event: PoolState, **kwargs: Any) -> None:
        self.seen.append((event.ts, event.reserve0, event.reserve1))
        # price in USDC per TSLAx from the reserves' display amounts
        price = (D(event.reserve1) / USDC_UNITS) / (D(event.reserve0) / TSLAX_UNITS)
        if self.sent or price >= self.threshold:
            return
        self.sent = True
        request = SwapRequest(
            ctx.new_client_order_id(),
            "uni",
            POOL.id,
            "USDC",
            "TSLAx",
            amount_in=1000 * USDC_UNITS,
            min_amount_out=self.min_amount_out,
            deadline_ns=ctx.now + 60 * S,
        )
        await ctx.submit(request)

    async def on_order_update(self, ctx: Any, event: OrderUpdate, **kwargs: Any) -> None:
        self.updates.append(event)

    async def on_fill(self, ctx: Any, event: Fill, **kwargs: Any) -> None:
        self.fills.append(event)


def record(block: int, tslax: int, usdc: int) -> PoolState:
    return PoolState(block * 12 * S, "uni", POOL.id, block, tslax * TSLAX_UNITS, usdc * USDC_UNITS)


def run(min_amount_out: int) -> tuple[TradingEngine, BuyTheDip, SimAmm]:
    clock = SimulatedClock(1000 * S)
    registry = InstrumentRegistry([PAIR, POOL])
    portfolio = Portfolio(registry)
    start = {"USDC": D(10_000), "ETH": D(1)}
    for asset, amount in start.items():
        portfolio.deposit("uni", asset, amount)
    venue = SimAmm("uni", clock, [AmmPoolSpec(POOL, PAIR)], {"TSLAx": 8, "USDC": 6}, AmmConfig(), start)
    strategy = BuyTheDip("dip", D(245), min_amount_out)
    engine = TradingEngine(
        clock=clock,
        instruments=registry,
        portfolio=portfolio,
        calendar=calendar(),
        venues={"uni": venue},
        strategies=[strategy],
    )
    records = [record(100, 1000, 250_000), record(101, 1000, 240_000), record(103, 1000, 250_000)]
    ReplayDriver(engine, clock, [venue]).run([ListStream(records, "pool")])
    return engine, strategy, venue


def test_strategy_buys_the_dip_through_the_engine() -> None:
    engine, strategy, venue = run(min_amount_out=4 * TSLAX_UNITS)
    order = engine.orders.get("dip-1")
    assert order.status is OrderStatus.FILLED
    (fill,) = engine.fills
    # getAmountOut(1000e6, 240,000e6, 1000e8) = floor(1e9 * 997 * 1e11 / (2.4e11 * 1000 + 1e9 * 997))
    #   = floor(99,700,000,000,000,000,000,000 / 240,997,000,000,000) = floor(413,698,095.83) = 413,698,095
    #   -> 4.13698095 TSLAx; price 1000 / 4.13698095 = 241.722166982664013 (18 digits)
    # gas 110,000 x 1 gwei = 0.00011 ETH; the swap lands at the first block after 1212 s: 1224 s
    assert (fill.ts, fill.side, fill.quantity, fill.notional) == (
        1224 * S,
        Side.BUY,
        D("4.13698095"),
        D(1000),
    )
    assert (fill.price, fill.fee, fill.fee_asset) == (D("241.722166982664013"), D("0.00011"), "ETH")
    assert strategy.fills == [fill]
    # The strategy saw the records and, between them, our swap's state:
    # TSLAx 1e11 - 413,698,095 = 99,586,301,905; USDC 240,000e6 + 1000e6 = 241,000e6
    assert strategy.seen == [
        (1200 * S, 1000 * TSLAX_UNITS, 250_000 * USDC_UNITS),
        (1212 * S, 1000 * TSLAX_UNITS, 240_000 * USDC_UNITS),
        (1224 * S, 99_586_301_905, 241_000 * USDC_UNITS),
        (1236 * S, 1000 * TSLAX_UNITS, 250_000 * USDC_UNITS),
    ]
    assert engine.pools[("uni", POOL.id)] == record(103, 1000, 250_000)
    p = engine.portfolio
    # USDC 10,000 - 1000 = 9000; TSLAx 4.13698095; ETH 1 - 0.00011 = 0.99989
    expected = {"USDC": D(9000), "TSLAx": D("4.13698095"), "ETH": D("0.99989")}
    assert {asset: p.balance("uni", asset) for asset in expected} == expected
    assert p.fees_paid("uni", "ETH") == D("0.00011")
    assert p.position("uni", PAIR.id).quantity == D("4.13698095")
    assert venue.ledger.balances() == expected  # the venue's wallet agrees with the portfolio


def test_a_reverted_swap_costs_gas_in_the_portfolio_and_leaves_the_rest() -> None:
    # asks for at least 5 TSLAx: the pool gives 4.13698095, so the swap reverts in block 102
    engine, strategy, venue = run(min_amount_out=5 * TSLAX_UNITS)
    order = engine.orders.get("dip-1")
    assert order.status is OrderStatus.REJECTED
    assert order.reason.startswith("min_amount_out: 500000000, but the pool would give 413698095 TSLAx")
    assert engine.fills == [] and [u.status for u in strategy.updates] == [OrderStatus.REJECTED]
    p = engine.portfolio
    # gas of the revert: 50,000 x 1 gwei = 0.00005 ETH; ETH 1 - 0.00005 = 0.99995; USDC untouched
    assert (p.balance("uni", "ETH"), p.balance("uni", "USDC")) == (D("0.99995"), D(10_000))
    assert p.fees_paid("uni", "ETH") == D("0.00005")
    assert venue.ledger.balances() == {"USDC": D(10_000), "ETH": D("0.99995")}
    assert [ts for ts, _, _ in strategy.seen] == [1200 * S, 1212 * S, 1236 * S]  # no state of ours


def test_two_runs_are_identical() -> None:
    first, _, _ = run(min_amount_out=0)
    second, _, _ = run(min_amount_out=0)
    assert first.fills == second.fills
    assert first.portfolio.balances() == second.portfolio.balances()
