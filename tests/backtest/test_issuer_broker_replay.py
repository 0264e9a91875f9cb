"""End to end: the simulated broker and issuer inside TradingEngine + ReplayDriver, driven by a strategy.

The issuer prices TSLAx off the broker's recorded TSLA quotes through the engine's market state
(`engine_price`), since the driver hands each quote only to the venue it is stamped with.
Amounts are worked out by hand in the comments; Monday 2025-06-02 is EDT (UTC-4).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from backtest.replay import ListStream, ReplayDriver
from connectors.sim.broker import BrokerAsset, BrokerConfig, SimBroker
from connectors.sim.issuer import IssuedToken, IssuerConfig, SimIssuer
from connectors.sim.reference_price import engine_price
from core.clock import SimulatedClock
from core.engine import TradingEngine
from core.enums import OrderStatus, OrderType, Session, Side
from core.events import Fill, OrderUpdate, Quote
from core.instruments import InstrumentRegistry, MultiplierSchedule, Spot, TokenizedStock
from core.orders import MintRequest, OrderRequest
from core.portfolio import Portfolio
from strategies.base import Strategy
from tests.connectors.sim.venue_harness import MINUTE, MS, calendar, et

D = Decimal
TSLA = Spot("TSLA/USD", "TSLA", "USD", price_increment=D("0.01"))
TSLAX = TokenizedStock(
    "TSLAx", "TSLA", "xstocks", 1, "0x" + "22" * 20, decimals=8, multiplier=MultiplierSchedule(D("1.02"))
)
TSLAX_USD = Spot("TSLAx/USD", "TSLAx", "USD")


class MintAndHedge(Strategy):
    """On the first quote it sees, mints 4 TSLAx at the issuer and buys 2 TSLA at the broker."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.sent = False
        self.updates: list[OrderUpdate] = []
        self.fills: list[Fill] = []

    async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
        if self.sent:
            return
        self.sent = True
        await ctx.submit(MintRequest(ctx.new_client_order_id(), "xstocks", "TSLAx", D(4)))
        await ctx.submit(
            OrderRequest(ctx.new_client_order_id(), "alpaca", "TSLA/USD", Side.BUY, D(2), OrderType.MARKET)
        )

    async def on_order_update(self, ctx: Any, event: OrderUpdate, **kwargs: Any) -> None:
        self.updates.append(event)

    async def on_fill(self, ctx: Any, event: Fill, **kwargs: Any) -> None:
        self.fills.append(event)


def run(quotes: list[Quote], start: int) -> tuple[TradingEngine, MintAndHedge]:
    clock = SimulatedClock(start)
    registry = InstrumentRegistry([TSLA, TSLAX, TSLAX_USD])
    portfolio = Portfolio(registry)
    portfolio.deposit("alpaca", "USD", D(10_000))
    portfolio.deposit("xstocks", "USD", D(5_000))
    cal = calendar()
    broker = SimBroker(
        "alpaca",
        clock,
        cal,
        [BrokerAsset(TSLA)],
        BrokerConfig(latency_ns=50 * MS, spread_bps=D(5), commission_per_share=D("0.005")),
        {"USD": D(10_000)},
    )
    strategy = MintAndHedge("mh")
    engine = TradingEngine(
        clock=clock,
        instruments=registry,
        portfolio=portfolio,
        calendar=cal,
        venues={"alpaca": broker},
        strategies=[strategy],
    )
    # The issuer reads the broker's quotes from the engine, so it is added once the engine exists.
    issuer = SimIssuer(
        "xstocks",
        clock,
        cal,
        [IssuedToken(TSLAX, TSLAX_USD, engine_price(engine, "alpaca", "TSLA/USD"))],
        IssuerConfig(mint_fee_bps=D(10), delay_ns=30 * MINUTE),
        {"USD": D(5_000)},
    )
    engine.venues["xstocks"] = issuer
    status = ListStream(cal.market_status_events(start, quotes[-1].ts + 1), "status")
    ReplayDriver(engine, clock, [broker, issuer]).run([status, ListStream(quotes, "quotes")])
    return engine, strategy


def q(ts: int, bid: str, ask: str) -> Quote:
    return Quote(ts, "alpaca", "TSLA/USD", float(bid), float(ask), 100.0, 100.0)


def test_mint_and_broker_buy_through_the_engine() -> None:
    quotes = [
        q(et(2025, 6, 2, 9, 31), "250.00", "250.10"),
        q(et(2025, 6, 2, 9, 45), "251.00", "251.20"),
        q(et(2025, 6, 2, 10, 0), "252.00", "252.10"),  # the latest quote when the mint settles at 10:01
        q(et(2025, 6, 2, 10, 31), "253.00", "253.20"),
    ]
    engine, strategy = run(quotes, et(2025, 6, 2, 9))
    mint_id, buy_id = "mh-1", "mh-2"
    assert engine.orders.get(mint_id).status is OrderStatus.FILLED
    assert engine.orders.get(buy_id).status is OrderStatus.FILLED
    by_id = {f.client_order_id: f for f in engine.fills}
    # Broker: arrives 09:31:00.050 and fills at the 09:31 ask 250.10 x (1 + 5/10000) = 250.22505;
    # notional 2 x 250.22505 = 500.4501 -> 500.45; commission 2 x 0.005 = 0.01
    buy = by_id[buy_id]
    assert (buy.ts, buy.price, buy.notional, buy.fee) == (
        et(2025, 6, 2, 9, 31) + 50 * MS,
        D("250.22505"),
        D("500.45"),
        D("0.01"),
    )
    # Issuer: requested 09:31, settles 30 minutes later at 10:01 at the 10:00 mid
    # (252.00 + 252.10) / 2 = 252.05, x multiplier 1.02 = 257.091; notional 4 x 257.091 = 1028.364
    # -> 1028.36; fee 1028.36 x 10 / 10000 = 1.028364 -> 1.03
    mint = by_id[mint_id]
    assert (mint.ts, mint.price, mint.notional, mint.fee) == (
        et(2025, 6, 2, 10, 1),
        D("257.091"),
        D("1028.36"),
        D("1.03"),
    )
    p = engine.portfolio
    # alpaca: 10000 - 500.45 - 0.01 = 9499.54 USD, 2 TSLA; xstocks: 5000 - 1028.36 - 1.03 = 3970.61 USD
    assert (p.balance("alpaca", "USD"), p.balance("alpaca", "TSLA")) == (D("9499.54"), D(2))
    assert (p.balance("xstocks", "USD"), p.balance("xstocks", "TSLAx")) == (D("3970.61"), D(4))
    # The venues' own ledgers agree with the portfolio.
    assert engine.venues["xstocks"].ledger.balances() == {"USD": D("3970.61"), "TSLAx": D(4)}  # type: ignore[attr-defined]
    assert engine.venues["alpaca"].ledger.balances() == {"USD": D("9499.54"), "TSLA": D(2)}  # type: ignore[attr-defined]
    # The strategy saw its own fills, and the broker's ACCEPTED (the issuer's came back from submit).
    assert {f.client_order_id for f in strategy.fills} == {mint_id, buy_id}
    assert (buy_id, OrderStatus.ACCEPTED) in {(u.client_order_id, u.status) for u in strategy.updates}
    assert engine.orders.get(mint_id).history == [OrderStatus.NEW, OrderStatus.ACCEPTED, OrderStatus.FILLED]


def test_saturday_requests_are_rejected_and_nothing_moves() -> None:
    quotes = [q(et(2025, 6, 7, 12), "250.00", "250.10"), q(et(2025, 6, 7, 13), "250.00", "250.10")]
    engine, _ = run(quotes, et(2025, 6, 7, 11))
    assert engine.session is Session.WEEKEND
    rejected = {u.client_order_id: u.reason for u in engine.rejections}
    assert rejected == {
        "mh-1": "session: mint requests are accepted only in post_market, pre_market, regular; now weekend",
        "mh-2": "session: weekend, the broker takes no market order",
    }
    assert engine.fills == []
    p = engine.portfolio
    assert p.balances() == {("alpaca", "USD"): D(10_000), ("xstocks", "USD"): D(5_000)}
