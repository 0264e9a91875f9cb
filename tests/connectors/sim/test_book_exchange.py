"""The simulated order-book exchange, driven by hand: every expected number is worked out here.

The venue is fed market events with `on_market` and woken with `on_time` the way the replay driver
does it (clock first, then the hook); `tests/backtest/test_book_exchange_replay.py` runs it through
the real engine and driver.
"""

from __future__ import annotations

import heapq
from decimal import Decimal

import pytest

from connectors.sim.book_exchange import (
    BookExchange,
    BookExchangeConfig,
    PostOnlyMode,
    QueueModel,
)
from connectors.sim.fees import FeeSchedule
from connectors.sim.latency import LatencyModel
from core.clock import SimulatedClock
from core.enums import Liquidity, OrderStatus, OrderType, Side, TimeInForce
from core.errors import InvalidInput
from core.events import BookUpdate, Event, Fill, OrderUpdate, Quote, Trade
from core.instruments import InstrumentRegistry, Spot, StockPerp
from core.orders import OrderRequest, SwapRequest

D = Decimal
V = "bx"
SPOT = "TSLAx/USDT"
PERP = "TSLA-PERP"
T0 = 1_767_225_600_000_000_000  # 2026-01-01 00:00:00 UTC, ns
MS = 1_000_000
S = OrderStatus

REGISTRY = InstrumentRegistry(
    [
        Spot(SPOT, "TSLAx", "USDT", price_increment=D("0.01"), size_increment=D("0.001")),
        StockPerp(PERP, "TSLA", "USDT", max_leverage=D(5), min_size=D("0.01")),
    ]
)


class Rig:
    """The venue, its clock and a minimal driver: wake-ups fire in time order, the clock set to each."""

    def __init__(self, config: BookExchangeConfig | None, balances: dict[str, Decimal]) -> None:
        self.clock = SimulatedClock(T0)
        self.bx = BookExchange(V, self.clock, REGISTRY, [SPOT, PERP], balances, config)
        self.outbox: list[Event] = []
        self.wakeups: list[int] = []
        self.bx.attach(self.outbox, lambda at_ns, _venue: heapq.heappush(self.wakeups, at_ns))

    def run_until(self, ts: int) -> None:
        while self.wakeups and self.wakeups[0] <= ts:
            at_ns = heapq.heappop(self.wakeups)
            self.clock.advance_to(max(at_ns, self.clock.now_ns()))
            self.bx.on_time(self.clock.now_ns())

    def take(self) -> list[Event]:
        out = list(self.outbox)
        self.outbox.clear()
        return out


def venue(
    config: BookExchangeConfig | None = None,
    balances: dict[str, Decimal] | None = None,
) -> tuple[BookExchange, Rig]:
    rig = Rig(config, {"USDT": D(10_000), "TSLAx": D(10)} if balances is None else balances)
    return rig.bx, rig


def lat(ms: int) -> BookExchangeConfig:
    """Constant order and cancel latency of `ms` milliseconds, nothing else."""
    return BookExchangeConfig(
        order_latency=LatencyModel.constant(ms * MS), cancel_latency=LatencyModel.constant(ms * MS)
    )


def quote(ts: int, bid: float, ask: float, bid_size: float, ask_size: float, inst: str = SPOT) -> Quote:
    return Quote(ts, V, inst, bid, ask, bid_size, ask_size)


def book(
    ts: int, bids: list[tuple[float, float]], asks: list[tuple[float, float]], snapshot: bool = True
) -> BookUpdate:
    return BookUpdate(ts, V, SPOT, tuple(bids), tuple(asks), snapshot)


def trade(ts: int, price: float, size: float, aggressor: Side | None = Side.SELL) -> Trade:
    return Trade(ts, V, SPOT, price, size, aggressor)


def feed(rig: Rig, event: Event) -> list[Event]:
    """Deliver a market event as the driver does (wake-ups due first); return what the venue emitted."""
    rig.run_until(event.ts)
    rig.clock.advance_to(event.ts)
    rig.bx.on_market(event)
    return rig.take()


def wake(rig: Rig, ts: int) -> list[Event]:
    """Fire the wake-ups due by `ts` and move the clock there; return what the venue emitted."""
    rig.run_until(ts)
    rig.clock.advance_to(ts)
    return rig.take()


def order(
    cid: str,
    side: Side,
    qty: str,
    price: str | None = None,
    tif: TimeInForce = TimeInForce.GTC,
    inst: str = SPOT,
    **kw: bool,
) -> OrderRequest:
    kind = OrderType.MARKET if price is None else OrderType.LIMIT
    return OrderRequest(cid, V, inst, side, D(qty), kind, None if price is None else D(price), tif, **kw)


def fills(events: list[Event]) -> list[tuple[str, Decimal, Decimal, Liquidity]]:
    return [(e.client_order_id, e.price, e.quantity, e.liquidity) for e in events if isinstance(e, Fill)]


def statuses(events: list[Event]) -> list[tuple[str, OrderStatus]]:
    return [(e.client_order_id, e.status) for e in events if isinstance(e, OrderUpdate)]


def last_update(events: list[Event], cid: str) -> OrderUpdate:
    return [e for e in events if isinstance(e, OrderUpdate) and e.client_order_id == cid][-1]


# ------------------------------------------------------------------------------ taking liquidity


async def test_ioc_partial_fill_against_thin_l1_level_cancels_the_rest() -> None:
    bx, rig = venue(lat(1))
    feed(rig, quote(T0, 99.5, 100.5, 4, 3))
    ack = await bx.submit(order("a", Side.BUY, "5", "101", TimeInForce.IOC))
    assert ack.status is S.NEW and ack.reason == ""
    events = wake(rig, T0 + MS)
    # Only 3 are offered at 100.5 (the book's one ask level) -> fill 3, the other 2 are cancelled.
    assert fills(events) == [("a", D("100.5"), D(3), Liquidity.TAKER)]
    assert statuses(events) == [("a", S.ACCEPTED), ("a", S.PARTIALLY_FILLED), ("a", S.CANCELLED)]
    assert last_update(events, "a").reason == "IOC: 2 of 5 unfilled at 101 or better"
    # 10000 - 3 x 100.5 = 9698.5 USDT; 10 + 3 = 13 TSLAx.
    assert bx.balance("USDT") == D("9698.5")
    assert bx.balance("TSLAx") == D(13)


async def test_market_order_walks_l2_levels_and_reports_the_average() -> None:
    bx, rig = venue(lat(1))
    feed(rig, book(T0, [(99, 4)], [(100, 2), (101, 3), (102, 5)]))
    await bx.submit(order("m", Side.BUY, "6"))
    events = wake(rig, T0 + MS)
    # 6 = 2 @ 100 + 3 @ 101 + 1 @ 102.
    assert fills(events) == [
        ("m", D(100), D(2), Liquidity.TAKER),
        ("m", D(101), D(3), Liquidity.TAKER),
        ("m", D(102), D(1), Liquidity.TAKER),
    ]
    done = last_update(events, "m")
    assert done.status is S.FILLED and done.filled_quantity == 6
    # Average = (200 + 303 + 102) / 6 = 605 / 6 = 100.8333...
    assert done.average_price is not None
    assert abs(done.average_price - D(605) / D(6)) < D("1e-25")
    assert bx.balance("USDT") == D(10_000) - D(605)


async def test_market_order_remainder_is_cancelled_never_rested() -> None:
    bx, rig = venue(lat(1))
    feed(rig, book(T0, [(99, 4)], [(100, 2)]))
    await bx.submit(order("m", Side.BUY, "3"))
    events = wake(rig, T0 + MS)
    assert fills(events) == [("m", D(100), D(2), Liquidity.TAKER)]
    assert last_update(events, "m").status is S.CANCELLED
    assert last_update(events, "m").reason == "market order: book exhausted, 1 of 3 unfilled"
    assert (await bx.snapshot()).open_orders == ()


async def test_gtc_limit_takes_what_crosses_and_rests_the_rest() -> None:
    bx, rig = venue(lat(1))
    feed(rig, book(T0, [(99, 4)], [(100, 2), (101, 1), (102, 5)]))
    await bx.submit(order("g", Side.BUY, "5", "101"))
    events = wake(rig, T0 + MS)
    # Takes 2 @ 100 and 1 @ 101 (102 is above the limit); 2 rest at 101.
    assert fills(events) == [("g", D(100), D(2), Liquidity.TAKER), ("g", D(101), D(1), Liquidity.TAKER)]
    assert statuses(events)[-1] == ("g", S.PARTIALLY_FILLED)
    # 101 is inside the spread (best bid 99): nothing recorded is ahead of us.
    assert bx.queue_ahead("g") == 0
    snap = await bx.snapshot()
    assert [(u.client_order_id, u.status, u.filled_quantity) for u in snap.open_orders] == [
        ("g", S.PARTIALLY_FILLED, D(3))
    ]


async def test_taken_liquidity_is_not_counted_twice_until_the_level_changes() -> None:
    bx, rig = venue(lat(1))
    feed(rig, quote(T0, 99.5, 100.5, 4, 3))
    await bx.submit(order("a", Side.BUY, "2", "100.5", TimeInForce.IOC))
    assert fills(wake(rig, T0 + MS)) == [("a", D("100.5"), D(2), Liquidity.TAKER)]
    # The bid moves, the ask is restated unchanged (3 @ 100.5): we already took 2 of those 3.
    feed(rig, quote(T0 + 2 * MS, 99.6, 100.5, 4, 3))
    await bx.submit(order("b", Side.BUY, "2", "100.5", TimeInForce.IOC))
    assert fills(wake(rig, T0 + 3 * MS)) == [("b", D("100.5"), D(1), Liquidity.TAKER)]
    # A new recorded size at 100.5 (4) is news: consumption there is forgotten, all 4 are visible.
    feed(rig, quote(T0 + 4 * MS, 99.6, 100.5, 4, 4))
    await bx.submit(order("c", Side.BUY, "2", "100.5", TimeInForce.IOC))
    assert fills(wake(rig, T0 + 5 * MS)) == [("c", D("100.5"), D(2), Liquidity.TAKER)]


async def test_fok_fills_all_or_nothing() -> None:
    bx, rig = venue(lat(1))
    feed(rig, book(T0, [(99, 4)], [(100, 2), (101, 1), (102, 5)]))
    await bx.submit(order("f1", Side.BUY, "4", "101", TimeInForce.FOK))
    events = wake(rig, T0 + MS)
    # Only 2 + 1 = 3 at 101 or better: no fill at all.
    assert fills(events) == []
    assert statuses(events) == [("f1", S.ACCEPTED), ("f1", S.CANCELLED)]
    assert last_update(events, "f1").reason == "FOK: only 3 of 4 available at 101 or better"
    assert bx.balance("USDT") == D(10_000) and bx.available("USDT") == D(10_000)
    await bx.submit(order("f2", Side.BUY, "3", "101", TimeInForce.FOK))
    events = wake(rig, T0 + 2 * MS)
    assert fills(events) == [("f2", D(100), D(2), Liquidity.TAKER), ("f2", D(101), D(1), Liquidity.TAKER)]
    assert last_update(events, "f2").status is S.FILLED


# ------------------------------------------------------------------------------------------- fees


async def test_fees_change_pnl_by_exactly_the_fee_amounts() -> None:
    fees = FeeSchedule(maker_bps=D(-2), taker_bps=D(10))
    results = {}
    for label, config in (
        ("free", lat(1)),
        ("fees", BookExchangeConfig(fees=fees, order_latency=LatencyModel.constant(MS))),
    ):
        bx, rig = venue(config)
        feed(rig, quote(T0, 99, 100, 5, 5))
        await bx.submit(order("buy", Side.BUY, "2", "100", TimeInForce.IOC))  # taker at 100
        await bx.submit(order("sell", Side.SELL, "2", "101"))  # rests at 101 (best ask 100 is below)
        first = wake(rig, T0 + MS)
        # The bid jumps to 101.5: the market went through our ask, we are filled at 101 as maker.
        second = feed(rig, quote(T0 + 2 * MS, 101.5, 102, 5, 5))
        results[label] = (bx, [e for e in first + second if isinstance(e, Fill)])
    bx_free, fills_free = results["free"]
    bx_fees, fills_fees = results["fees"]
    assert [f.fee for f in fills_free] == [0, 0]
    # Taker: 2 x 100 x 10 / 10000 = 0.2 USDT. Maker rebate: 2 x 101 x (-2) / 10000 = -0.0404 USDT.
    assert [(f.fee, f.fee_asset, f.liquidity) for f in fills_fees] == [
        (D("0.2"), "USDT", Liquidity.TAKER),
        (D("-0.0404"), "USDT", Liquidity.MAKER),
    ]
    # Without fees: 10000 - 200 + 202 = 10002. With: 10002 - 0.2 + 0.0404 = 10001.8404.
    assert bx_free.balance("USDT") == D(10_002)
    assert bx_fees.balance("USDT") == D("10001.8404")
    assert bx_free.balance("USDT") - bx_fees.balance("USDT") == D("0.1596")
    assert bx_fees.balance("TSLAx") == bx_free.balance("TSLAx") == D(10)


# ---------------------------------------------------------------------------------------- latency


async def test_latency_fills_at_the_book_standing_when_the_order_arrives() -> None:
    """The ask moves 100 -> 100.05 at +20 ms; where a market buy fills depends on when it arrives."""

    async def fill_price(config: BookExchangeConfig) -> tuple[Decimal, int]:
        bx, rig = venue(config)
        feed(rig, quote(T0, 99.9, 100, 5, 5))
        await bx.submit(order("m", Side.BUY, "1"))
        events = wake(rig, T0 + 10 * MS)  # wake-ups due by +10 ms
        events += feed(rig, quote(T0 + 20 * MS, 99.95, 100.05, 5, 5))
        events += wake(rig, T0 + 100 * MS)
        (fill,) = [e for e in events if isinstance(e, Fill)]
        return fill.price, fill.ts

    instant = BookExchangeConfig(same_event_fills=True)
    assert await fill_price(instant) == (D(100), T0)
    # 50 ms order latency: arrives at +50 ms, after the move: pays 0.05 more per unit.
    assert await fill_price(lat(50)) == (D("100.05"), T0 + 50 * MS)
    # Market-data latency adds to the order latency: 30 + 20 = 50 ms, the same arrival.
    md = BookExchangeConfig(
        market_data_latency=LatencyModel.constant(30 * MS), order_latency=LatencyModel.constant(20 * MS)
    )
    assert await fill_price(md) == (D("100.05"), T0 + 50 * MS)
    # 10 + 5 = 15 ms arrives before the move: 100.
    fast = BookExchangeConfig(
        market_data_latency=LatencyModel.constant(10 * MS), order_latency=LatencyModel.constant(5 * MS)
    )
    assert await fill_price(fast) == (D(100), T0 + 15 * MS)


async def test_zero_latency_order_waits_for_the_next_event_unless_same_event_fills() -> None:
    bx, rig = venue()  # zero latency, same_event_fills=False
    feed(rig, quote(T0, 99.9, 100, 5, 5))
    await bx.submit(order("m", Side.BUY, "1"))
    # It arrives at T0 (zero latency) but may not fill on the event that triggered it.
    assert wake(rig, T0) == []
    events = feed(rig, quote(T0 + MS, 100.0, 100.1, 5, 5))
    assert statuses(events)[0] == ("m", S.ACCEPTED)
    assert fills(events) == [("m", D("100.1"), D(1), Liquidity.TAKER)]
    assert events[1].ts == T0 + MS

    bx, rig = venue(BookExchangeConfig(same_event_fills=True))
    feed(rig, quote(T0, 99.9, 100, 5, 5))
    await bx.submit(order("m", Side.BUY, "1"))
    assert fills(wake(rig, T0)) == [("m", D(100), D(1), Liquidity.TAKER)]


async def test_requests_arrive_in_sending_order_even_with_jitter() -> None:
    # Order latency 0..100 ms (uniform, seeded); cancel latency 0: the cancel still arrives after the order.
    config = BookExchangeConfig(order_latency=LatencyModel(0, 100 * MS, seed=7))
    bx, rig = venue(config)
    feed(rig, quote(T0, 99, 101, 5, 5))
    await bx.submit(order("g", Side.BUY, "1", "100"))
    await bx.cancel("g")
    events = wake(rig, T0 + 200 * MS)
    assert statuses(events) == [("g", S.ACCEPTED), ("g", S.CANCELLED)]
    assert events[0].ts == events[1].ts  # the cancel was queued behind the order


def test_latency_models_are_seeded_and_refuse_unseeded_jitter() -> None:
    model = LatencyModel(constant_ns=1000, jitter_ns=500, seed=42)
    a = _draws(model, 50)
    assert a == _draws(model, 50)
    assert all(1000 <= x <= 1500 for x in a)
    assert len(set(a)) > 1
    with pytest.raises(InvalidInput, match="latency.seed"):
        LatencyModel(jitter_ns=10)
    with pytest.raises(InvalidInput, match="latency.constant_ns"):
        LatencyModel(constant_ns=-1)


def _draws(model: LatencyModel, n: int) -> list[int]:
    sampler = model.sampler()
    return [sampler.sample() for _ in range(n)]


# -------------------------------------------------------------------------------- queue position


async def test_queue_fills_only_after_the_volume_ahead_has_traded() -> None:
    bx, rig = venue(lat(1))
    feed(rig, quote(T0, 100, 101, 5, 3))
    await bx.submit(order("q", Side.BUY, "3", "100"))
    wake(rig, T0 + MS)
    assert bx.queue_ahead("q") == 5  # behind the 5 recorded at 100
    # A buyer lifting the asks at 100 is not a seller hitting our bid: no change.
    assert feed(rig, trade(T0 + 2 * MS, 100, 4, Side.BUY)) == []
    assert bx.queue_ahead("q") == 5
    # Sells of 3 at 100: 5 - 3 = 2 still ahead, no fill.
    assert feed(rig, trade(T0 + 3 * MS, 100, 3)) == []
    assert bx.queue_ahead("q") == 2
    # Sells of 4 at 100: 2 go to the queue ahead, 4 - 2 = 2 fill us at 100 (maker).
    events = feed(rig, trade(T0 + 4 * MS, 100, 4))
    assert fills(events) == [("q", D(100), D(2), Liquidity.MAKER)]
    assert bx.queue_ahead("q") == 0
    # Sells of 10 at 100 (aggressor unknown): we are first, 1 left to fill.
    events = feed(rig, trade(T0 + 5 * MS, 100, 10, None))
    assert fills(events) == [("q", D(100), D(1), Liquidity.MAKER)]
    assert last_update(events, "q").status is S.FILLED


async def test_two_of_our_orders_share_one_queue_in_time_order() -> None:
    bx, rig = venue(lat(1))
    feed(rig, quote(T0, 100, 101, 2, 3))
    await bx.submit(order("first", Side.BUY, "1", "100"))
    wake(rig, T0 + MS)
    feed(rig, quote(T0 + 2 * MS, 100, 101, 4, 3))  # 2 more join behind "first"
    await bx.submit(order("second", Side.BUY, "1", "100"))
    wake(rig, T0 + 3 * MS)
    assert (bx.queue_ahead("first"), bx.queue_ahead("second")) == (D(2), D(4))
    # Queue: 2 public | first (1) | 2 public | second (1). A sell of 4 fills "first" and stops
    # two units short of "second" (positions 0..3: public, public, first, public).
    events = feed(rig, trade(T0 + 4 * MS, 100, 4))
    assert fills(events) == [("first", D(100), D(1), Liquidity.MAKER)]
    assert bx.queue_ahead("second") == 1
    events = feed(rig, trade(T0 + 5 * MS, 100, 2))
    assert fills(events) == [("second", D(100), D(1), Liquidity.MAKER)]


async def test_trade_through_our_price_fills_us_by_the_trade_size() -> None:
    bx, rig = venue(lat(1))
    feed(rig, quote(T0, 100, 101, 5, 3))
    await bx.submit(order("q", Side.BUY, "3", "100"))
    wake(rig, T0 + MS)
    # A sell of 2 printed at 99.5, below our bid: that seller would have hit us first.
    events = feed(rig, trade(T0 + 2 * MS, 99.5, 2))
    assert fills(events) == [("q", D(100), D(2), Liquidity.MAKER)]
    assert bx.queue_ahead("q") == 0


async def test_market_moving_through_our_price_fills_at_our_limit_up_to_the_crossing_size() -> None:
    bx, rig = venue(lat(1))
    feed(rig, quote(T0, 100, 101, 5, 3))
    await bx.submit(order("q", Side.BUY, "3", "100"))
    wake(rig, T0 + MS)
    # The ask drops to 99.8 (size 1): a seller crossed our bid; we fill 1 at our 100.
    events = feed(rig, quote(T0 + 2 * MS, 99, 99.8, 1, 1))
    assert fills(events) == [("q", D(100), D(1), Liquidity.MAKER)]
    # The same quote again: that 1 is consumed, no second fill.
    assert feed(rig, quote(T0 + 3 * MS, 99, 99.8, 1, 1)) == []
    # The ask at 99.8 grows to 4: news; we take the 2 we still need at 100.
    events = feed(rig, quote(T0 + 4 * MS, 99, 99.8, 1, 4))
    assert fills(events) == [("q", D(100), D(2), Liquidity.MAKER)]
    assert last_update(events, "q").status is S.FILLED


@pytest.mark.parametrize(
    ("model", "ahead_after_cancels", "fill_on_6"),
    [
        # 10 ahead, 4 behind (level 14); 7 cancelled: trades-only keeps 10, capped by the level: 7.
        # A sell of 2 leaves 5; the level then shrinks 7 -> 5 (the 2 traded: no cancel); a sell
        # of 6 leaves... 5 - 6 < 0: we fill 1.
        (QueueModel.TRADES_ONLY, D(7), D(1)),
        # Proportional: 10 - 7 x 10 / 14 = 5; a sell of 2 leaves 3; the level 7 -> 5 is the trade
        # (no cancel); a sell of 6: 3 to the queue, 6 - 3 = 3 would fill, we have 2.
        (QueueModel.PROPORTIONAL, D(5), D(2)),
    ],
)
async def test_size_decreases_advance_the_queue_only_in_the_proportional_model(
    model: QueueModel, ahead_after_cancels: Decimal, fill_on_6: Decimal
) -> None:
    bx, rig = venue(BookExchangeConfig(queue_model=model, order_latency=LatencyModel.constant(MS)))
    feed(rig, book(T0, [(100, 10)], [(101, 3)]))
    await bx.submit(order("q", Side.BUY, "2", "100"))
    wake(rig, T0 + MS)
    assert bx.queue_ahead("q") == 10
    feed(rig, book(T0 + 2 * MS, [(100, 14)], [], snapshot=False))  # 4 join behind us
    assert bx.queue_ahead("q") == 10
    feed(rig, book(T0 + 3 * MS, [(100, 7)], [], snapshot=False))  # 7 leave, no trade
    assert bx.queue_ahead("q") == ahead_after_cancels
    feed(rig, trade(T0 + 4 * MS, 100, 2))
    assert bx.queue_ahead("q") == ahead_after_cancels - 2
    feed(rig, book(T0 + 5 * MS, [(100, 5)], [], snapshot=False))  # the 2 traded, seen in the book
    assert bx.queue_ahead("q") == ahead_after_cancels - 2
    events = feed(rig, trade(T0 + 6 * MS, 100, 6))
    assert fills(events) == [("q", D(100), fill_on_6, Liquidity.MAKER)]


async def test_unknown_queue_behind_an_l1_best_becomes_the_level_size_once_seen() -> None:
    bx, rig = venue(lat(1))
    feed(rig, quote(T0, 100, 101, 5, 3))
    await bx.submit(order("q", Side.BUY, "1", "99"))  # below the best bid: depth unknown on L1
    wake(rig, T0 + MS)
    assert bx.queue_ahead("q") is None
    assert feed(rig, trade(T0 + 2 * MS, 99, 50)) == []  # unknown queue: no fill on a print at 99
    feed(rig, quote(T0 + 3 * MS, 99, 100, 6, 3))  # 99 is now the best bid, size 6
    assert bx.queue_ahead("q") == 6


# --------------------------------------------------------------------------------------- post-only


async def test_post_only_that_would_take_is_rejected_by_default() -> None:
    bx, rig = venue(lat(1))
    feed(rig, quote(T0, 100, 101, 5, 3))
    await bx.submit(order("p", Side.BUY, "1", "101", post_only=True))
    assert bx.available("USDT") == D(10_000) - D(101)  # reserved while in flight
    events = wake(rig, T0 + MS)
    assert statuses(events) == [("p", S.REJECTED)]
    assert last_update(events, "p").reason == "post_only: price 101 would take the best ask 101"
    assert fills(events) == []
    assert bx.balance("USDT") == bx.available("USDT") == D(10_000)


async def test_post_only_slide_moves_one_tick_inside() -> None:
    config = BookExchangeConfig(post_only=PostOnlyMode.SLIDE, order_latency=LatencyModel.constant(MS))
    bx, rig = venue(config)
    feed(rig, quote(T0, 100, 101, 5, 3))
    await bx.submit(order("p", Side.BUY, "1", "101.5", post_only=True))
    events = wake(rig, T0 + MS)
    # Best ask 101, price step 0.01: the bid rests at 100.99 instead of taking.
    assert statuses(events) == [("p", S.ACCEPTED)]
    assert last_update(events, "p").reason == "post_only: slid from 101.5 to 100.99"
    # The ask comes down to 100.99: we fill there as maker.
    events = feed(rig, quote(T0 + 2 * MS, 100, 100.99, 5, 3))
    assert fills(events) == [("p", D("100.99"), D(1), Liquidity.MAKER)]


# ------------------------------------------------------------------------------------ reduce-only


async def test_reduce_only_refuses_to_grow_the_position_and_stops_at_flat() -> None:
    bx, rig = venue(lat(1))
    feed(rig, quote(T0, 99, 100, 10, 10, PERP))
    flat = await bx.submit(order("r0", Side.SELL, "1", "99", inst=PERP, reduce_only=True))
    assert flat.status is S.REJECTED
    assert flat.reason == "reduce_only: a sell of 1 would increase the position 0 on 'TSLA-PERP'"
    await bx.submit(order("open", Side.BUY, "2", inst=PERP))
    wake(rig, T0 + MS)
    assert bx.position(PERP) == 2
    flip = await bx.submit(order("r1", Side.SELL, "3", inst=PERP, reduce_only=True))
    assert flip.status is S.REJECTED and "would increase the position 2" in flip.reason
    # A reduce-only sell of 2 rests at 101; then a plain market sell closes the position first.
    assert (await bx.submit(order("r2", Side.SELL, "2", "101", inst=PERP, reduce_only=True))).status is S.NEW
    await bx.submit(order("close", Side.SELL, "2", inst=PERP))
    wake(rig, T0 + 2 * MS)
    assert bx.position(PERP) == 0
    # The bid rises through 101: the reduce-only order has nothing left to reduce and is cancelled.
    events = feed(rig, quote(T0 + 3 * MS, 101.5, 102, 10, 10, PERP))
    assert fills(events) == []
    assert statuses(events) == [("r2", S.CANCELLED)]
    assert last_update(events, "r2").reason == "reduce_only: position 0 leaves 0 to reduce"
    # Perp cash: bought 2 @ 100, sold 2 @ 99 -> realized -2 USDT.
    assert bx.balance("USDT") == D(9_998)


async def test_reduce_only_is_refused_on_spot() -> None:
    bx, _ = venue()
    ack = await bx.submit(order("r", Side.SELL, "1", "100", reduce_only=True))
    assert ack.status is S.REJECTED
    assert ack.reason == "reduce_only: 'TSLAx/USDT' is spot; reduce-only applies to derivatives"


# --------------------------------------------------------------------------------------- balances


async def test_insufficient_balance_is_rejected_and_leaves_everything_unchanged() -> None:
    fees = FeeSchedule(taker_bps=D(10))
    bx, rig = venue(BookExchangeConfig(fees=fees), {"USDT": D(150), "TSLAx": D(10)})
    feed(rig, quote(T0, 99, 100, 5, 5))
    before = await bx.snapshot()
    # 2 x 100 x (1 + 10 / 10000) = 200.2 USDT needed, 150 there.
    ack = await bx.submit(order("big", Side.BUY, "2", "100"))
    assert ack.status is S.REJECTED
    assert ack.reason == "insufficient USDT: needs 200.2, available 150"
    assert await bx.snapshot() == before
    assert rig.wakeups == [] and rig.take() == []
    # Selling more tokens than held: 11 needed, 10 there.
    ack = await bx.submit(order("oversell", Side.SELL, "11", "100"))
    assert ack.reason == "insufficient TSLAx: needs 11, available 10"


async def test_open_orders_reserve_their_money() -> None:
    fees = FeeSchedule(taker_bps=D(10))
    bx, rig = venue(BookExchangeConfig(fees=fees, order_latency=LatencyModel.constant(MS)), {"USDT": D(150)})
    feed(rig, quote(T0, 98, 101, 5, 5))
    # A resting bid of 1 @ 100 reserves 100 x 1.001 = 100.1; 150 - 100.1 = 49.9 remain.
    assert (await bx.submit(order("one", Side.BUY, "1", "100"))).status is S.NEW
    wake(rig, T0 + MS)
    assert bx.available("USDT") == D("49.9")
    ack = await bx.submit(order("two", Side.BUY, "1", "100"))
    assert ack.reason == "insufficient USDT: needs 100.1, available 49.9"
    # Cancelling the first releases its reservation.
    await bx.cancel("one")
    events = wake(rig, T0 + 2 * MS)
    assert statuses(events) == [("one", S.CANCELLED)]
    assert bx.available("USDT") == D(150)


async def test_market_buy_stops_where_the_money_ends() -> None:
    bx, rig = venue(lat(1), {"USDT": D(250)})
    feed(rig, book(T0, [(99, 1)], [(100, 2)]))
    # Priced at submit: 2 x 100 = 200 <= 250.
    assert (await bx.submit(order("m", Side.BUY, "2"))).status is S.NEW
    # Before it arrives the book thins: 1 @ 100, then 1 @ 200.
    feed(rig, book(T0 + MS // 2, [(99, 1)], [(100, 1), (200, 1)]))
    events = wake(rig, T0 + MS)
    # 1 @ 100 costs 100; the next unit would cost 200 more (300 > 250): (250 - 100) / 200 = 0.75.
    assert fills(events) == [("m", D(100), D(1), Liquidity.TAKER), ("m", D(200), D("0.75"), Liquidity.TAKER)]
    assert last_update(events, "m").reason == "insufficient USDT: needs 300, available 250"
    assert bx.balance("USDT") == 0
    assert bx.balance("TSLAx") == D("1.75")


async def test_perp_orders_need_initial_margin() -> None:
    bx, rig = venue(lat(1), {"USDT": D(30)})
    feed(rig, quote(T0, 99, 100, 10, 10, PERP))
    # 2 x 100 / 5 (max leverage) = 40 USDT of margin, 30 there.
    ack = await bx.submit(order("p", Side.BUY, "2", "100", inst=PERP))
    assert ack.reason == "insufficient USDT: needs 40, available 30"
    assert (await bx.submit(order("p1", Side.BUY, "1", "100", inst=PERP))).status is S.NEW
    wake(rig, T0 + MS)
    # The open long of 1 @ 100 uses 20 of margin.
    assert bx.position(PERP) == 1 and bx.available("USDT") == D(10)


# ------------------------------------------------------------------------------ requests, cancels


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (
            SwapRequest("s", V, "pool", "USDT", "TSLAx", amount_in=1),
            "request: SwapRequest is not supported by the order-book venue 'bx'",
        ),
        (
            OrderRequest("w", "other", SPOT, Side.BUY, D(1), price=D(100)),
            "venue: 'other' is not this venue 'bx'",
        ),
        (
            OrderRequest("u", V, "AAPLx/USDT", Side.BUY, D(1), price=D(100)),
            "instrument: 'AAPLx/USDT' is not listed on 'bx'",
        ),
        (
            OrderRequest("t", V, SPOT, Side.BUY, D(1), price=D("100.005")),
            "price: 100.005 is not a multiple of price_increment 0.01",
        ),
        (
            OrderRequest("z", V, SPOT, Side.BUY, D("0.0005"), price=D(100)),
            "quantity: 0.0005 is not a multiple of size_increment 0.001",
        ),
        (
            OrderRequest("m", V, PERP, Side.BUY, D("0.005"), price=D(100)),
            "quantity: 0.005 is below min_size 0.01",
        ),
        (
            OrderRequest("k", V, SPOT, Side.BUY, D(1), OrderType.MARKET),
            "order_type: market order with no ask on the book of 'TSLAx/USDT'",
        ),
    ],
)
async def test_bad_requests_are_rejected_with_the_field_and_value(request_: object, reason: str) -> None:
    bx, rig = venue()
    before = await bx.snapshot()
    ack = await bx.submit(request_)  # type: ignore[arg-type]
    assert ack.status is S.REJECTED and ack.reason == reason
    assert await bx.snapshot() == before and rig.wakeups == []


async def test_duplicate_client_order_id_is_rejected() -> None:
    bx, _ = venue()
    assert (await bx.submit(order("a", Side.BUY, "1", "90"))).status is S.NEW
    ack = await bx.submit(order("a", Side.BUY, "1", "90"))
    assert ack.reason == "client_order_id: 'a' already used on 'bx'"


async def test_cancel_arriving_after_the_fill_is_too_late() -> None:
    bx, rig = venue(lat(10))
    feed(rig, quote(T0, 100, 101, 5, 3))
    await bx.submit(order("q", Side.BUY, "1", "100"))
    wake(rig, T0 + 10 * MS)
    assert (await bx.cancel("q")).status is S.ACCEPTED  # sent at +10 ms, arrives at +20 ms
    events = feed(rig, quote(T0 + 15 * MS, 99, 99.5, 5, 3))  # the market goes through 100
    assert fills(events) == [("q", D(100), D(1), Liquidity.MAKER)]
    events = wake(rig, T0 + 20 * MS)
    assert statuses(events) == [("q", S.FILLED)]
    assert last_update(events, "q").reason == "cancel: too late, the order is filled"
    unknown = await bx.cancel("nope")
    assert unknown.status is S.REJECTED and unknown.reason == "client_order_id: unknown order 'nope'"


async def test_day_orders_expire_at_midnight_utc_or_the_configured_time() -> None:
    bx, rig = venue(lat(1))
    rig.clock.advance_to(T0 + 23 * 3600 * 10**9)  # 2026-01-01 23:00 UTC
    feed(rig, quote(rig.clock.now_ns(), 100, 101, 5, 3))
    await bx.submit(order("d", Side.BUY, "1", "99", TimeInForce.DAY))
    wake(rig, rig.clock.now_ns() + MS)
    midnight = T0 + 24 * 3600 * 10**9
    assert wake(rig, midnight - 1) == []
    events = wake(rig, midnight)
    assert statuses(events) == [("d", S.EXPIRED)] and events[0].ts == midnight

    # Configured end of day 20:00 UTC: a DAY order accepted at 19:00 expires at 20:00 the same day.
    config = BookExchangeConfig(day_end_ns=20 * 3600 * 10**9, order_latency=LatencyModel.constant(MS))
    bx, rig = venue(config)
    rig.clock.advance_to(T0 + 19 * 3600 * 10**9)
    feed(rig, quote(rig.clock.now_ns(), 100, 101, 5, 3))
    await bx.submit(order("d", Side.BUY, "1", "99", TimeInForce.DAY))
    wake(rig, rig.clock.now_ns() + MS)
    assert rig.wakeups == [T0 + 20 * 3600 * 10**9]
    events = wake(rig, T0 + 20 * 3600 * 10**9)
    assert statuses(events) == [("d", S.EXPIRED)]


async def test_snapshot_reports_balances_and_open_orders() -> None:
    bx, rig = venue(lat(1))
    feed(rig, quote(T0, 100, 101, 5, 3))
    await bx.submit(order("a", Side.BUY, "1", "99"))
    await bx.submit(order("b", Side.SELL, "2", "102"))
    in_flight = await bx.snapshot()
    assert [(u.client_order_id, u.status, u.venue_order_id) for u in in_flight.open_orders] == [
        ("a", S.NEW, ""),
        ("b", S.NEW, ""),
    ]
    wake(rig, T0 + MS)
    snap = await bx.snapshot()
    assert snap.venue == V and snap.ts == T0 + MS
    assert snap.balances == {"USDT": D(10_000), "TSLAx": D(10)}
    assert [(u.client_order_id, u.status, u.venue_order_id) for u in snap.open_orders] == [
        ("a", S.ACCEPTED, "bx-1"),
        ("b", S.ACCEPTED, "bx-2"),
    ]


def test_config_and_markets_are_validated() -> None:
    with pytest.raises(InvalidInput, match="day_end_ns"):
        BookExchangeConfig(day_end_ns=86_400 * 10**9)
    with pytest.raises(InvalidInput, match="fees.taker_bps"):
        FeeSchedule(taker_bps=D(-1))
    with pytest.raises(InvalidInput, match="markets"):
        BookExchange(V, SimulatedClock(0), REGISTRY, [])
