"""CrossVenueArb through the real TradingEngine + ReplayDriver + simulated book exchange and AMM.

The pool: Uniswap v3 TSLAx/USDC (TSLAx token0, 18 decimals; USDC token1, 6 decimals), fee 0.3%,
one full-range position of liquidity L = 10**17 at price 100 USDC per TSLAx, i.e. virtual reserves
x = L / sqrtP = 10,000 TSLAx and y = L x sqrtP = 1,000,000 USDC. As a constant-product pair, buying q
tokens costs y q / (x - q) / (1 - 0.003) USDC: 5 tokens cost 1e6 x 5 / 9995 / 0.997 = 501.7563 USDC
(100.35 a token), and selling q tokens pays y q / (x + q) x 0.997 (5 tokens: 498.2508).

The book: TSLAx/USDT, taker fee 10 bps, 10 ms order latency; sizes on a 0.001 grid. The strategy's
costs: book fee 10 bps, gas 0.5 USDT a swap, safety margin 5 bps of the book notional, minimum
profit 1 USDT; USDC and USDT at par. Numbers worked by hand in each test.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import Any

from backtest.replay import ListStream, ReplayDriver
from connectors.sim.amm import AmmConfig, AmmPoolSpec, SimAmm
from connectors.sim.book_exchange import BookExchange, BookExchangeConfig
from connectors.sim.fees import FeeSchedule
from connectors.sim.latency import LatencyModel
from core.clock import SimulatedClock
from core.engine import TradingEngine
from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.events import BookUpdate, Event, PoolState, Quote
from core.instruments import InstrumentRegistry, Pool, Spot, TokenizedStock
from core.orders import OrderRequest, Request, SwapRequest
from core.portfolio import Portfolio
from pricing.amm.tick_math import get_tick_at_sqrt_ratio
from strategies.cross_venue_arb import CrossVenueArb, CrossVenueArbParams
from tests.connectors.sim.venue_harness import calendar

D = Decimal
SEC = 1_000_000_000
MS = 1_000_000
T0 = 1_000 * 12 * SEC  # on a block boundary (blocks every 12 s from 0)
BOOK, AMM = "bx", "uni"
PAIR = "TSLAx/USDT"
POOL = Pool("TSLAx/USDC", AMM, 1, "0x" + "11" * 20, "TSLAx", "USDC", 3000)
POOL_PAIR = Spot("TSLAx/USDC@uni", "TSLAx", "USDC")
REGISTRY = InstrumentRegistry(
    [
        TokenizedStock("TSLAx", "TSLA", "xstocks", 1, "0x" + "22" * 20, 18),
        Spot(PAIR, "TSLAx", "USDT", price_increment=D("0.01"), size_increment=D("0.001")),
        POOL,
        POOL_PAIR,
    ]
)
L = 10**17
OTHER = Quote(T0 + 3600 * SEC, "elsewhere", "X/Y", 1.0, 1.1, 1.0, 1.0)  # keeps the replay running


def pool_state(ts: int, price: int, block: int = 1000) -> PoolState:
    """The pool at `price` USDC per TSLAx: sqrtP = floor(sqrt(price x 10^6 / 10^18) x 2^96)."""
    sqrt_price = math.isqrt(price * 2**192 // 10**12)
    return PoolState(ts, AMM, POOL.id, block, 0, 0, sqrt_price, get_tick_at_sqrt_ratio(sqrt_price), L)


class RecordingBook(BookExchange):
    """The book exchange, remembering when each request was sent."""

    sent: list[tuple[int, Request]]

    async def submit(self, request: Request) -> Any:
        self.sent.append((self.clock.now_ns(), request))
        return await super().submit(request)


class RecordingAmm(SimAmm):
    """The AMM, remembering when each swap was sent."""

    sent: list[tuple[int, Request]]

    async def submit(self, request: Request) -> Any:
        self.sent.append((self.clock.now_ns(), request))
        return await super().submit(request)


def run(
    events: list[Event], **params: Any
) -> tuple[TradingEngine, CrossVenueArb, RecordingBook, RecordingAmm]:
    clock = SimulatedClock(T0 - SEC)
    book_start = {"TSLAx": D(10), "USDT": D(10_000)}
    amm_start = {"TSLAx": D(10), "USDC": D(10_000), "ETH": D(1)}
    config = BookExchangeConfig(fees=FeeSchedule(D(2), D(10)), order_latency=LatencyModel.constant(10 * MS))
    book = RecordingBook(BOOK, clock, REGISTRY, [PAIR], book_start, config)
    book.sent = []
    amm = RecordingAmm(
        AMM, clock, [AmmPoolSpec(POOL, POOL_PAIR)], {"TSLAx": 18, "USDC": 6}, AmmConfig(), amm_start
    )
    amm.sent = []
    portfolio = Portfolio(REGISTRY)
    for venue, start in ((BOOK, book_start), (AMM, amm_start)):
        for asset, amount in start.items():
            portfolio.deposit(venue, asset, amount)
    values: dict[str, Any] = {
        "pool_venue": AMM,
        "pool": POOL.id,
        "book_venue": BOOK,
        "book_instrument": PAIR,
        "gas_cost": D("0.5"),
        "min_profit": D(1),
    }
    values.update(params)
    strategy = CrossVenueArb("arb", CrossVenueArbParams(**values))
    engine = TradingEngine(
        clock=clock,
        instruments=REGISTRY,
        portfolio=portfolio,
        calendar=calendar(),
        venues={BOOK: book, AMM: amm},
        strategies=[strategy],
    )
    ReplayDriver(engine, clock, [book, amm]).run([ListStream([*events, OTHER], "recorded")])
    return engine, strategy, book, amm


def cp_buy_cost(q: Fraction) -> Fraction:
    """Constant-product cost of q tokens out of the virtual reserves, fee 0.3% on the input (USDC)."""
    x, y = Fraction(10_000), Fraction(1_000_000)
    return y * q / (x - q) / Fraction(997, 1000)


# -- no trade inside the costs --------------------------------------------------------------------


def test_no_trade_when_the_gap_is_inside_the_costs() -> None:
    # Book bid 100.60 x 5: selling a token there nets 100.60 x 0.999 = 100.4994; buying it on the
    # pool costs ~100.35 (5 tokens: 501.7563). Gross 5 x 100.4994 - 501.7563 = 0.7407, less gas 0.5
    # and safety 503 x 5 bps = 0.2515: -0.01, below the 1 USDT minimum (and every smaller size does
    # worse). The other way: buy at the ask 100.70 x 1.001, sell on the pool at 99.7: a loss.
    events: list[Event] = [
        pool_state(T0, 100),
        Quote(T0 + SEC, BOOK, PAIR, 100.60, 100.70, 5, 5),
        Quote(T0 + 61 * SEC, BOOK, PAIR, 100.60, 100.70, 5, 5),
    ]
    _engine, strategy, book, amm = run(events)
    assert book.sent == [] and amm.sent == []
    assert strategy.trades == [] and strategy.state == "idle"


def test_the_same_gap_trades_once_it_beats_every_cost() -> None:
    # Bid 100.90: 504.5 - 0.5045 fee - 0.25225 safety - 0.5 gas - 501.75539 (pool cost) = 1.48786 > 1.
    events: list[Event] = [pool_state(T0, 100), Quote(T0 + SEC, BOOK, PAIR, 100.90, 101.0, 5, 5)]
    _engine, strategy, _book, _amm = run(events)
    [trade] = strategy.trades
    assert trade.plan.quantity == D(5)
    expected = Fraction(D("504.5") - D("0.5045") - D("0.25225") - D("0.5")) - cp_buy_cost(Fraction(5))
    assert abs(Fraction(trade.plan.profit) - expected) < Fraction(1, 10**5)


# -- direction and size ---------------------------------------------------------------------------


def test_buys_on_the_cheap_pool_and_sells_the_profitable_book_levels_after_the_swap_fills() -> None:
    # L2 bids 102 x 2, 101.5 x 3, 100.2 x 10. Net of the 10 bps fee and 5 bps safety a token sells
    # at 101.847 / 101.348 / 100.05 on those levels; the pool's marginal cost rises from 100.30 to
    # 100.40 over the first 5 tokens, so levels 1-2 pay and level 3 does not: size 5, IOC limit 101.5.
    levels = BookUpdate(T0 + SEC, BOOK, PAIR, ((102.0, 2.0), (101.5, 3.0), (100.2, 10.0)), ((102.5, 10.0),))
    engine, strategy, book, amm = run([pool_state(T0, 100), levels])
    [(swap_ts, swap)] = amm.sent
    assert isinstance(swap, SwapRequest)
    assert (swap.token_in, swap.token_out, swap.amount_out) == ("USDC", "TSLAx", 5 * 10**18)
    [swap_fill, *book_fills] = engine.fills
    assert swap_fill.client_order_id == swap.client_order_id and swap_fill.quantity == D(5)
    # The pool did not move between plan and block: the bound is the quoted cost + 10 bps, floored.
    assert swap_fill.notional is not None
    assert swap.max_amount_in == math.floor(swap_fill.notional * D("1.001") * 10**6)
    # Independent check of the exact cost against the constant-product reference (within 1e-5).
    assert abs(Fraction(swap_fill.notional) - cp_buy_cost(Fraction(5))) < Fraction(1, 10**5)
    # The second leg went out only after the swap filled (12 s block later), for the same 5 tokens.
    [(book_ts, order)] = book.sent
    assert swap_ts == T0 + SEC and book_ts == swap_fill.ts == T0 + 12 * SEC
    assert order == OrderRequest(
        order.client_order_id, BOOK, PAIR, Side.SELL, D(5), OrderType.LIMIT, D("101.5"), TimeInForce.IOC
    )
    assert [(f.price, f.quantity) for f in book_fills] == [(D(102), D(2)), (D("101.5"), D(3))]
    # Round trip: +508.5 - 0.5085 fee USDT on the book, -cost USDC on the pool, tokens back to 10/10.
    assert engine.portfolio.balance(BOOK, "USDT") == D(10_000) + D("508.5") - D("0.5085")
    assert engine.portfolio.balance(BOOK, "TSLAx") == D(5)
    assert engine.portfolio.balance(AMM, "TSLAx") == D(15)
    assert engine.portfolio.balance(AMM, "USDC") == D(10_000) - swap_fill.notional
    assert strategy.state == "idle" and strategy.stranded == 0


def test_sells_on_the_rich_pool_and_buys_the_book_when_the_pool_is_dear() -> None:
    # Pool at 103: selling 5 tokens there pays ~103 x 0.997 = 102.69 each; the book asks 101.5 x 4:
    # buying costs 101.5 x (1.001 + 0.0005) = 101.65 a token. Profit ~1 USDT a token, ask depth 4:
    # size 4 (the whole level). The pool leg goes first (a sell, exact input of 4 TSLAx).
    events: list[Event] = [pool_state(T0, 103), Quote(T0 + SEC, BOOK, PAIR, 101.0, 101.5, 4, 4)]
    _engine, _strategy, book, amm = run(events)
    [(_, swap)] = amm.sent
    assert isinstance(swap, SwapRequest)
    assert (swap.token_in, swap.token_out, swap.amount_in) == ("TSLAx", "USDC", 4 * 10**18)
    [(_, order)] = book.sent
    assert isinstance(order, OrderRequest)
    assert (order.side, order.quantity, order.price) == (Side.BUY, D(4), D("101.5"))


# -- leg risk -------------------------------------------------------------------------------------


def test_a_reverted_first_leg_sends_no_second_leg() -> None:
    # The plan of the test above (buy 5 on the pool, bound ~502.26 USDC); before the block a recorded
    # swap moves the pool to 101.6, where 5 tokens cost ~509.8 > the bound: the swap reverts
    # ("Too much requested"), nothing filled, so nothing is sent to the book and nothing is unwound.
    levels = BookUpdate(T0 + SEC, BOOK, PAIR, ((102.0, 2.0), (101.5, 3.0)), ((102.5, 10.0),))
    engine, strategy, book, amm = run([pool_state(T0, 100), levels, pool_state(T0 + 5 * SEC, 101)])
    [(_, swap)] = amm.sent
    order = engine.orders.get(swap.client_order_id)
    assert order.status is OrderStatus.REJECTED and "Too much requested" in order.reason
    assert book.sent == [] and engine.fills == []
    assert strategy.state == "idle" and strategy.trades[0].exposure == 0 and strategy.stranded == 0


def test_a_partially_filled_first_leg_is_hedged_for_the_filled_part_only() -> None:
    # Book first. The quote bids 102 x 5: plan sell 5 @ 102 (IOC, 10 ms latency). 5 ms later the bid
    # shrinks to 102 x 2: the order fills 2 and the rest is cancelled. 2 tokens still pay on the pool
    # (204 x 0.9985 - 2 x 100.32 - 0.5 gas = ~2.5 > 1), so the pool leg buys exactly 2 TSLAx.
    events: list[Event] = [
        pool_state(T0, 100),
        Quote(T0 + SEC, BOOK, PAIR, 102.0, 102.4, 5, 10),
        Quote(T0 + SEC + 5 * MS, BOOK, PAIR, 102.0, 102.4, 2, 10),
    ]
    engine, strategy, book, amm = run(events, first_leg="book")
    [(_, first)] = book.sent
    assert isinstance(first, OrderRequest) and (first.side, first.quantity, first.price) == (
        Side.SELL,
        D(5),
        D(102),
    )
    assert engine.orders.get(first.client_order_id).status is OrderStatus.CANCELLED
    [(swap_ts, swap)] = amm.sent
    assert isinstance(swap, SwapRequest)
    assert (swap.token_out, swap.amount_out) == ("TSLAx", 2 * 10**18)
    assert swap_ts == T0 + SEC + 10 * MS  # sent when the IOC's remainder was cancelled
    assert strategy.state == "idle" and strategy.stranded == 0
    assert engine.portfolio.balance(BOOK, "TSLAx") + engine.portfolio.balance(AMM, "TSLAx") == D(20)


def test_a_failed_second_leg_is_unwound_within_the_price_bound() -> None:
    # Book first: sell 5 @ 102 fills. The pool buy of 5 (bound ~502.26) reverts: a recorded swap moved
    # the pool to 101 before the block. We are short 5 on the book: buy them back with an IOC limit
    # at 102 x (1 + 50 bps) = 102.51; the ask 102.4 x 10 fills it. Net loss 5 x 0.4 + fees.
    events: list[Event] = [
        pool_state(T0, 100),
        Quote(T0 + SEC, BOOK, PAIR, 102.0, 102.4, 5, 10),
        pool_state(T0 + 5 * SEC, 101),
    ]
    engine, strategy, book, amm = run(events, first_leg="book")
    [(_, first), (unwind_ts, unwind)] = book.sent
    [(_, swap)] = amm.sent
    assert engine.orders.get(swap.client_order_id).status is OrderStatus.REJECTED
    assert unwind_ts == T0 + 12 * SEC  # at the block where the swap reverted
    assert isinstance(unwind, OrderRequest)
    assert (unwind.side, unwind.quantity, unwind.price, unwind.time_in_force) == (
        Side.BUY,
        D(5),
        D("102.51"),
        TimeInForce.IOC,
    )
    fills = [(f.client_order_id, f.side, f.price, f.quantity) for f in engine.fills]
    assert fills == [
        (first.client_order_id, Side.SELL, D(102), D(5)),
        (unwind.client_order_id, Side.BUY, D("102.4"), D(5)),
    ]
    # +510 - 0.51 fee - 512 - 0.512 fee on the book; tokens flat again.
    assert engine.portfolio.balance(BOOK, "USDT") == D(10_000) + D(510) - D("0.51") - D(512) - D("0.512")
    assert engine.portfolio.balance(BOOK, "TSLAx") == D(10)
    assert strategy.state == "idle" and strategy.stranded == 0
    # The tally: the same cash (the reverted swap's gas was paid in ETH, not counted), tokens flat.
    assert strategy.cash_flow == D(510) - D("0.51") - D(512) - D("0.512")
    assert strategy.token_flow == 0


def test_an_unwind_that_cannot_fill_inside_the_bound_stops_at_the_deadline() -> None:
    # As above, but the ask is 103 (beyond the 102.51 bound) from the revert on. An IOC at 102.51 is
    # sent at the revert (12 s) and again on each book quote (every 60 s) until the 180 s deadline
    # (12 s + 180 s = 192 s): quotes at 61 s and 121 s and 181 s get retries; 241 s is too late. The
    # 5 tokens short stay as inventory (stranded = -5); nothing is ever priced beyond the bound.
    events: list[Event] = [
        pool_state(T0, 100),
        Quote(T0 + SEC, BOOK, PAIR, 102.0, 102.4, 5, 10),
        pool_state(T0 + 5 * SEC, 101),
        Quote(T0 + 6 * SEC, BOOK, PAIR, 101.0, 103.0, 5, 10),
        *(Quote(T0 + s * SEC, BOOK, PAIR, 101.0, 103.0, 5, 10) for s in (61, 121, 181, 241)),
    ]
    engine, strategy, book, _amm = run(events, first_leg="book", unwind_timeout_ms=180_000)
    _first, *unwinds = [r for _, r in book.sent]
    assert [ts for ts, _ in book.sent[1:]] == [T0 + s * SEC for s in (12, 61, 121, 181)]
    for unwind in unwinds:
        assert isinstance(unwind, OrderRequest)
        assert (unwind.side, unwind.quantity, unwind.price) == (Side.BUY, D(5), D("102.51"))
    assert len(engine.fills) == 1  # only the first leg
    assert strategy.stranded == D(-5) and strategy.state == "idle"
