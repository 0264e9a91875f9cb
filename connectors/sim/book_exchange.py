"""A simulated order-book exchange: our orders matched against the recorded book (L1 or L2).

The same class backs backtests (replay driver, simulated clock) and paper trading (live data, wall
clock): it reads time only from `self.clock`, and the driver feeds it market events through
`on_market` and wakes it through `on_time` (see `connectors.sim.base`).

Order life cycle (what the engine sees; every step is legal in `core.orders.TRANSITIONS`)
--------------------------------------------------------------------------------------------
- `submit(request)` checks the request at once and returns `OrderUpdate(NEW)` (sent on its way)
  or `OrderUpdate(REJECTED, reason)` (nothing reserved, nothing changed). Checks: an
  `OrderRequest` for this venue and a listed market; price and quantity on the instrument's grid
  and at least `min_size`; reduce-only only on derivatives and only when it reduces; enough
  available balance (see Balances).
- The order reaches the matching engine after its latency (see Latency). There it is either
  `REJECTED` (post-only that would take; reduce-only with nothing left to reduce), or `ACCEPTED`
  and then, in this order: taker `Fill`s level by level, one `OrderUpdate(PARTIALLY_FILLED |
  FILLED)` with the cumulative quantity and average price (the engine moves fill state from the
  `Fill`s and ignores this update; strategies may read it), then for what is left: IOC and market
  orders `CANCELLED` (a market order never rests), FOK `CANCELLED` without any fill unless it can
  fill completely, GTC and DAY limits rest.
- Resting orders fill as makers at their limit price (see Queue position); DAY orders are
  `EXPIRED` at the first `day_end_ns` (time of day, ns after 00:00 UTC; default midnight UTC)
  strictly after they were accepted.
- `cancel(id)` returns the venue's current status of the order (the engine then changes nothing
  it has not already been told) and the cancel reaches the venue after the cancel latency; then
  the order is `CANCELLED`, or, if it finished meanwhile, an update with its final status and the
  reason "cancel: too late" is emitted.

Matching the recorded book
--------------------------
- L1 (`Quote`) replaces the book by the best bid and ask with their sizes; L2 (`BookUpdate`)
  snapshots replace it, deltas replace the listed levels (size 0 deletes). Once an instrument has
  had a `BookUpdate`, its `Quote`s are ignored (L2 is the richer source). Float prices and sizes
  become `Decimal` through their shortest repr (`100.1` -> `Decimal("100.1")`).
- A marketable order takes visible levels best first, at each level at most its visible size,
  at the level's price (taker). A limit stops at its price; a market order walks the whole book.
- Consumption (no double counting): what we take at a level is remembered with the recorded
  size the level had then; the level's visible size for us is `recorded - taken`. The memory of a
  level is dropped at the next update that changes the level's recorded size (or removes the
  level); an update that restates the same size (an L1 quote repeats the side that did not move)
  keeps it. Public trades do not reset it.
- Our own orders never match each other (no self-trade model).

Queue position (resting orders)
-------------------------------
- When an order starts resting at price P, `ahead` = the recorded size at P on its side: the
  level's size when P is in the book, 0 when P is inside the known book but empty (e.g. inside the
  spread), unknown when P lies beyond the known depth (deeper than an L1 quote's best level, or
  than the deepest L2 level). Unknown becomes the level's size as soon as the level is seen.
- Public `Trade`s at P with the aggressor on the other side (or unknown) advance the queue: the
  volume goes first to what is ahead, then fills us ("behind 5, a trade of 7 fills 2"). With several
  of our orders at P, the volume flows through the queue in order (public ahead of the first,
  the first, public between, the second, ...).
- A trade through P (a sell at a price below our bid, a buy above our ask) fills us at P for
  `min(remaining, trade size)`, better-priced orders first, and empties the queue ahead.
- The market moving through P (recorded best ask at or below our bid, best bid at or above our
  ask) fills us at P as maker, up to the visible size of the crossing levels, which we then
  consume; nothing is ahead of us any more.
- Level-size decreases: `QueueModel.TRADES_ONLY` (default, conservative) lets only trades advance
  the queue; `QueueModel.PROPORTIONAL` also advances it by the part of each decrease of the level
  not explained by trades printed there since the last update, in proportion to the share ahead
  (`ahead -= decrease x ahead / size before`, rounded up to the size step). Under both models
  `ahead` never exceeds the level's recorded size: whatever is ahead of us is in the level.

Fees, balances, positions
-------------------------
- Fees: `FeeSchedule` bps of notional (`quantity x contract size x price`), in the instrument's
  quote currency, exact; a negative maker rate is a rebate (negative fee).
- The venue keeps its own `Portfolio` (deposits passed in, moved by its own fills, same rules as
  the engine's), so balances, positions and reduce-only decisions come from its own fills.
- Available = balance - reservations of open orders (in flight or resting) - margin of open
  perp positions. Reservations: a spot buy `remaining x price x (1 + max fee rate)` of quote
  (market orders: the worst price of the visible levels it would walk at submit); a spot sell
  `remaining` of base; a perp order `remaining x price x contract size x (1 / max leverage + max
  fee rate)` of quote (reduce-only: the fee part only). Open perp positions use `|cost| x contract
  size / max leverage`. This is an initial-margin check only: no maintenance margin, no
  liquidation (the engine's risk checks own those), and the venue records a loss beyond the
  balance rather than refusing the fact.
- A fill is also capped by what is available when it happens (a market buy walking a book dearer
  than its estimate stops where the money ends, and the rest is cancelled with the reason naming
  the asset, the amount needed and the amount available).

Latency (all in ns, `LatencyModel`: constant + optional seeded jitter)
--------------------------------------------------------------------
- Order latency: submit -> arrival at the matching engine; cancel latency likewise for cancels.
  Requests travel one ordered connection: each arrives no earlier than the request sent before it.
- Market-data latency is modelled as a shift of the strategy's frame: the venue matches on the
  true recorded book at recorded times, the strategy sees each event at its recorded time, and
  every request we send arrives `market-data latency + order (or cancel) latency` after it was
  sent. For a constant delay this is exact: in real time the strategy sees event E at
  `E.ts + md`, its order arrives at `E.ts + md + order latency`, and our fills reach it `md`
  after they happen, which in the strategy's (shifted) frame is the fill's own timestamp. Only
  `ctx.now` and timers run in the shifted frame. Our own execution reports are assumed to travel
  with the same delay as market data.
- Same-event fills: a request with zero total latency arrives in the instant it was sent, i.e.
  on the event that triggered it. With `same_event_fills=False` (default) it is treated as
  arriving just after the next market event of its instrument on this venue (it is accepted,
  then matched against the book that event left); with `same_event_fills=True` it is matched at
  once against the book the triggering event left. With a positive latency the order meets
  whatever book stands when it arrives: the one the triggering event left if nothing changed in
  between (that liquidity was still there), else the later one.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import (
    ROUND_CEILING,
    ROUND_FLOOR,
    Decimal,
    localcontext,
)
from enum import StrEnum
from functools import lru_cache

from connectors.sim.base import SimVenue
from connectors.sim.fees import BPS, FeeSchedule
from connectors.sim.latency import LatencyModel, LatencySampler
from core.clock import Clock
from core.enums import Liquidity, OrderStatus, OrderType, Side, TimeInForce
from core.errors import InvalidInput
from core.events import BookUpdate, Event, Fill, OrderUpdate, Quote, Trade
from core.instruments import InstrumentRegistry, Spot, StockPerp
from core.money import MONEY
from core.orders import OrderRequest, Request
from core.portfolio import Portfolio
from core.venue import VenueState

NS_PER_DAY = 86_400 * 1_000_000_000
"""Nanoseconds per day (UTC days have no leap seconds in epoch time)."""

_ZERO = Decimal(0)
_ONE = Decimal(1)
# 60 digits so products of 18-decimal prices and sizes never round; errors trap, never pass.
_CTX = MONEY


class QueueModel(StrEnum):
    """What advances the queue ahead of a resting order (see the module docstring)."""

    TRADES_ONLY = "trades_only"
    PROPORTIONAL = "proportional"


class PostOnlyMode(StrEnum):
    """What a post-only order that would take does: be rejected, or slide one price step away."""

    REJECT = "reject"
    SLIDE = "slide"


def _check_step(name: str, value: object) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or not value > 0:
        raise InvalidInput(name, value, "must be a finite Decimal > 0")


@dataclass(frozen=True, slots=True)
class BookExchangeConfig:
    """Settings of a `BookExchange`; immutable, so one config can back many venues and runs.

    `day_end_ns`: time of day (ns after 00:00 UTC) at which DAY orders expire. `price_step` and
    `size_step`: the grid used for instruments that carry none of their own (`Spot` carries
    `price_increment` and `size_increment`): a post-only slide moves one `price_step`; queue
    estimates and budget-capped quantities are rounded to `size_step`.
    """

    fees: FeeSchedule = field(default_factory=FeeSchedule)
    order_latency: LatencyModel = field(default_factory=LatencyModel)
    cancel_latency: LatencyModel = field(default_factory=LatencyModel)
    market_data_latency: LatencyModel = field(default_factory=LatencyModel)
    queue_model: QueueModel = QueueModel.TRADES_ONLY
    post_only: PostOnlyMode = PostOnlyMode.REJECT
    same_event_fills: bool = False
    day_end_ns: int = 0
    price_step: Decimal = Decimal("0.01")
    size_step: Decimal = Decimal("0.00000001")

    def __post_init__(self) -> None:
        if not isinstance(self.day_end_ns, int) or not 0 <= self.day_end_ns < NS_PER_DAY:
            raise InvalidInput("day_end_ns", self.day_end_ns, f"must be an integer in [0, {NS_PER_DAY}) ns")
        _check_step("price_step", self.price_step)
        _check_step("size_step", self.size_step)
        QueueModel(self.queue_model)
        PostOnlyMode(self.post_only)


@lru_cache(maxsize=1 << 16)
def _dec(value: float) -> Decimal:
    """A recorded float as the Decimal of its shortest repr (`100.1` -> `Decimal("100.1")`)."""
    return Decimal(repr(float(value)))


def _fmt(value: Decimal) -> str:
    """A Decimal without trailing zeros or exponent, for reasons (`200.2000` -> `200.2`)."""
    return format(value.normalize(), "f") if value else "0"


def _usable(price: float, size: float) -> bool:
    """A recorded level counts only with a positive finite price and size (NaN fails both)."""
    return 0.0 < price < float("inf") and 0.0 < size < float("inf")


def _opposite(side: Side) -> Side:
    """The other side."""
    return Side.SELL if side is Side.BUY else Side.BUY


@dataclass(slots=True)
class _Order:
    """The venue's record of one of our orders."""

    request: OrderRequest
    seq: int
    venue_order_id: str
    sent_ns: int
    price: Decimal | None  # working limit price (a post-only slide may move it); None = market
    ref_price: Decimal  # price the reservation is computed at
    remaining: Decimal
    status: OrderStatus = OrderStatus.NEW
    filled: Decimal = _ZERO
    cost: Decimal = _ZERO  # sum of quantity x price of the fills
    ahead: Decimal | None = None  # public volume ahead in the queue; None = unknown
    seen_size: Decimal | None = None  # recorded size of our level when last looked at
    traded_since: Decimal = _ZERO  # public volume printed at our price since seen_size was taken

    @property
    def side(self) -> Side:
        return self.request.side

    def average_price(self) -> Decimal | None:
        with localcontext(_CTX):
            return None if self.filled == 0 else self.cost / self.filled


class _Market:
    """One instrument on the venue: the recorded book, our consumption of it, our orders on it."""

    __slots__ = ("asks", "bids", "consumed", "has_l2", "held", "pending", "resting", "seen")

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}  # recorded price -> size
        self.asks: dict[float, float] = {}
        self.pending: Quote | None = None  # latest L1 quote not yet unpacked into levels
        self.has_l2 = False
        self.seen = False
        # (side of the book as a resting order's side, price) -> (recorded size when taken, taken)
        self.consumed: dict[tuple[Side, Decimal], tuple[Decimal, Decimal]] = {}
        self.resting: list[_Order] = []  # arrival order
        self.held: list[_Order] = []  # zero-latency orders waiting for the next market event

    # -- recorded book -----------------------------------------------------------------------

    def unpack(self) -> None:
        """Turn the latest L1 quote into levels (deferred so idle instruments cost almost nothing)."""
        quote = self.pending
        if quote is None:
            return
        self.pending = None
        self.bids = {quote.bid: quote.bid_size} if _usable(quote.bid, quote.bid_size) else {}
        self.asks = {quote.ask: quote.ask_size} if _usable(quote.ask, quote.ask_size) else {}

    def apply(self, event: Quote | BookUpdate) -> None:
        """Apply one recorded book event."""
        if type(event) is Quote:
            if not self.has_l2:
                self.pending = event
                self.seen = True
            return
        assert type(event) is BookUpdate
        self.pending = None
        self.has_l2 = True
        self.seen = True
        if event.is_snapshot:
            self.bids = {p: s for p, s in event.bids if _usable(p, s)}
            self.asks = {p: s for p, s in event.asks if _usable(p, s)}
            return
        for levels, updates in ((self.bids, event.bids), (self.asks, event.asks)):
            for price, size in updates:
                if _usable(price, size):
                    levels[price] = size
                else:
                    levels.pop(price, None)

    def levels(self, side: Side) -> dict[float, float]:
        """The recorded levels on which resting orders of `side` sit (bids for BUY)."""
        return self.bids if side is Side.BUY else self.asks

    def recorded(self, side: Side, price: Decimal) -> Decimal:
        """Recorded size at exactly `price` on `side`'s levels, 0 when absent."""
        key = float(price)
        size = self.levels(side).get(key)
        return _dec(size) if size is not None and _dec(key) == price else _ZERO

    def level_size(self, side: Side, price: Decimal) -> Decimal | None:
        """Recorded size at `price` on `side`'s levels; 0 if known empty, None beyond the known depth."""
        if not self.seen:
            return None
        levels = self.levels(side)
        size = self.recorded(side, price)
        if size > 0 or not levels:
            return size
        # Known depth runs from the best level to the deepest recorded one.
        if side is Side.BUY:
            return _ZERO if price > _dec(min(levels)) else None
        return _ZERO if price < _dec(max(levels)) else None

    def crossing(self, side: Side, limit: Decimal | None) -> list[tuple[Decimal, Decimal]]:
        """Levels an order of `side` at `limit` (None: any price) would take, best first.

        Each entry is `(price, visible size)`; levels we have consumed entirely are left out.
        """
        book_side = _opposite(side)
        if side is Side.BUY:
            found = [(_dec(p), _dec(s)) for p, s in self.asks.items() if limit is None or _dec(p) <= limit]
            found.sort()
        else:
            found = [(_dec(p), _dec(s)) for p, s in self.bids.items() if limit is None or _dec(p) >= limit]
            found.sort(reverse=True)
        out: list[tuple[Decimal, Decimal]] = []
        for price, size in found:
            taken = self.consumed.get((book_side, price))
            visible = size if taken is None else size - taken[1]
            if visible > 0:
                out.append((price, visible))
        return out

    def consume(self, book_side: Side, price: Decimal, quantity: Decimal) -> None:
        """Remember that we took `quantity` at `price` on `book_side`'s levels."""
        key = (book_side, price)
        entry = self.consumed.get(key)
        if entry is None:
            self.consumed[key] = (self.recorded(book_side, price), quantity)
        else:
            self.consumed[key] = (entry[0], entry[1] + quantity)

    def reset_consumption(self) -> None:
        """Forget consumption at every level whose recorded size changed since we took from it."""
        for key, (size_then, _) in list(self.consumed.items()):
            if self.recorded(key[0], key[1]) != size_then:
                del self.consumed[key]


class BookExchange(SimVenue):
    """A simulated order-book exchange for `Spot` and `StockPerp` markets (see the module docstring).

    `markets`: instrument ids listed here (each a `Spot` or `StockPerp` in `instruments`);
    `balances`: initial deposits, asset -> amount (units of the asset).
    """

    def __init__(
        self,
        name: str,
        clock: Clock,
        instruments: InstrumentRegistry,
        markets: Iterable[str],
        balances: Mapping[str, Decimal] | None = None,
        config: BookExchangeConfig | None = None,
    ) -> None:
        super().__init__(name, clock)
        self.config = config if config is not None else BookExchangeConfig()
        self.instruments = instruments
        self._markets: dict[str, _Market] = {}
        self._specs: dict[str, Spot | StockPerp] = {}
        for market in markets:
            instrument = instruments[market]
            if not isinstance(instrument, Spot | StockPerp):
                raise InvalidInput(
                    "markets", market, f"is a {instrument.kind.value}; a book venue lists spot and perps"
                )
            if market in self._markets:
                raise InvalidInput("markets", market, "listed twice")
            self._markets[market] = _Market()
            self._specs[market] = instrument
        if not self._markets:
            raise InvalidInput("markets", [], "a book venue needs at least one market")
        self.portfolio = Portfolio(instruments, allow_negative=True)
        for asset, amount in (balances or {}).items():
            if amount != 0:
                self.portfolio.deposit(name, asset, amount)
        self._order_latency: LatencySampler = self.config.order_latency.sampler()
        self._cancel_latency: LatencySampler = self.config.cancel_latency.sampler()
        self._md_latency: LatencySampler = self.config.market_data_latency.sampler()
        self._orders: dict[str, _Order] = {}
        self._open: dict[str, _Order] = {}
        self._pending: list[tuple[int, int, str, str]] = []  # (at_ns, seq, action, client_order_id)
        self._seq = itertools.count(1)
        self._order_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._last_arrival_ns = 0

    # -- queries -----------------------------------------------------------------------------

    def balance(self, asset: str) -> Decimal:
        """Our balance of `asset` on this venue (units of the asset)."""
        return self.portfolio.balance(self.name, asset)

    def available(self, asset: str) -> Decimal:
        """Balance of `asset` less open orders' reservations and perp margin in use (units of `asset`)."""
        with localcontext(_CTX):
            return self._available(asset, None)

    def position(self, instrument: str) -> Decimal:
        """Our signed position on `instrument` from this venue's own fills (contracts or base units)."""
        return self.portfolio.position(self.name, instrument).quantity

    def queue_ahead(self, client_order_id: str) -> Decimal | None:
        """Public volume ahead of a resting order in its price level (None: unknown), for tests."""
        return self._orders[client_order_id].ahead

    # -- venue port --------------------------------------------------------------------------

    async def submit(self, request: Request) -> OrderUpdate:
        """Check `request` and send it towards the matching engine.

        Returns `OrderUpdate(NEW)` when sent, `OrderUpdate(REJECTED, reason)` when refused (then
        nothing is reserved or changed). Everything else comes later through the outbox.
        """
        with localcontext(_CTX):
            reason = self._check(request)
            if reason is not None:
                return self.reject(request, reason)
            assert isinstance(request, OrderRequest)
            now = self.clock.now_ns()
            seq = next(self._seq)
            order = _Order(
                request=request,
                seq=seq,
                venue_order_id=f"{self.name}-{next(self._order_ids)}",
                sent_ns=now,
                price=request.price,
                ref_price=request.price if request.price is not None else self._market_estimate(request),
                remaining=request.quantity,
            )
            need_asset, need = self._reservation(order)
            available = self._available(need_asset, None)
            if need > available:
                return self.reject(
                    request, f"insufficient {need_asset}: needs {_fmt(need)}, available {_fmt(available)}"
                )
            self._orders[request.client_order_id] = order
            self._open[request.client_order_id] = order
            latency = self._md_latency.sample() + self._order_latency.sample()
            self._schedule(now + latency, "arrive", request.client_order_id)
            return OrderUpdate(now, self.name, request.client_order_id, OrderStatus.NEW)

    async def cancel(self, client_order_id: str) -> OrderUpdate:
        """Send a cancel; returns the order's current status here (the CANCELLED update follows).

        An unknown id is answered with REJECTED and a reason; nothing changes.
        """
        now = self.clock.now_ns()
        order = self._orders.get(client_order_id)
        if order is None:
            return OrderUpdate(
                now,
                self.name,
                client_order_id,
                OrderStatus.REJECTED,
                reason=f"client_order_id: unknown order {client_order_id!r}",
            )
        if not order.status.is_terminal:
            latency = self._md_latency.sample() + self._cancel_latency.sample()
            self._schedule(now + latency, "cancel", client_order_id)
        return self._state(order)

    async def snapshot(self) -> VenueState:
        """Balances (asset -> amount) and open orders (as OrderUpdates, in submission order) now."""
        balances = {asset: amount for (_, asset), amount in self.portfolio.balances(self.name).items()}
        return VenueState(
            venue=self.name,
            ts=self.clock.now_ns(),
            balances=balances,
            open_orders=tuple(self._state(order) for order in self._open.values()),
        )

    # -- driver hooks ------------------------------------------------------------------------

    def on_market(self, event: Event) -> None:
        """A recorded market event of this venue: update the book, then match what rests on it."""
        # The hot path of a backtest: an idle instrument only stores the event (no Decimal work).
        event_type = type(event)
        if event_type is Quote or event_type is BookUpdate or event_type is Trade:
            market = self._markets.get(event.instrument)  # type: ignore[union-attr]
            if market is None:
                return
            ts: int = event.ts
            if self._pending and self._pending[0][0] <= ts:
                self.on_time(ts)  # a driver that did not wake us first: arrivals come before the event
            if not (market.consumed or market.resting or market.held):
                if event_type is Quote:
                    if not market.has_l2:
                        market.pending = event  # type: ignore[assignment]
                        market.seen = True
                elif event_type is BookUpdate:
                    market.apply(event)  # type: ignore[arg-type]
                return
            self._on_active_market(market, event)  # type: ignore[arg-type]

    def market_handler(self, event_type: type, instrument: str) -> Callable[[Event], None]:
        """For L1 quotes of a listed instrument: `on_market` without the per-event dispatch."""
        market = self._markets.get(instrument)
        if event_type is not Quote or market is None:
            return self.on_market
        pending = self._pending

        def on_quote(event: Quote) -> None:
            if pending and pending[0][0] <= event[0]:
                self.on_time(event[0])  # a driver that did not wake us first: arrivals come before the event
            if market.consumed or market.resting or market.held or market.has_l2:
                self._on_active_market(market, event)
            else:
                market.pending = event
                market.seen = True

        return on_quote  # type: ignore[return-value]

    def quiet(self, instrument: str) -> bool:
        """Idle L1 instruments keep only their latest quote, so a run of quotes is its last one."""
        market = self._markets.get(instrument)
        return market is None or not (market.has_l2 or market.consumed or market.resting or market.held)

    def _on_active_market(self, market: _Market, event: Quote | BookUpdate | Trade) -> None:
        """A market event for an instrument where we rest, hold or have consumed liquidity."""
        with localcontext(_CTX):
            market.unpack()
            if isinstance(event, Trade):
                self._on_trade(market, event)
            else:
                market.apply(event)
                market.unpack()
                market.reset_consumption()
                for order in market.resting:
                    self._update_queue(market, order)
                self._match_crossed(market)
            self._release_held(market)

    def on_time(self, now_ns: int) -> None:
        """Process arrivals, cancels and expiries due at or before `now_ns` (ns), in time order."""
        pending = self._pending
        with localcontext(_CTX):
            while pending and pending[0][0] <= now_ns:
                at_ns, _, action, client_order_id = heapq.heappop(pending)
                order = self._orders[client_order_id]
                if action == "arrive":
                    self._arrive(order, at_ns)
                elif action == "cancel":
                    self._cancel_arrives(order)
                else:
                    self._expire(order)

    # -- requests ----------------------------------------------------------------------------

    def _schedule(self, at_ns: int, action: str, client_order_id: str) -> None:
        """Queue a timed action; requests keep their sending order (one ordered connection)."""
        if action != "expire":
            at_ns = max(at_ns, self._last_arrival_ns)
            self._last_arrival_ns = at_ns
        heapq.heappush(self._pending, (at_ns, next(self._seq), action, client_order_id))
        self.wake_at(at_ns)

    def _check(self, request: Request) -> str | None:
        """Why `request` cannot be sent, or None."""
        if not isinstance(request, OrderRequest):
            return f"request: {type(request).__name__} is not supported by the order-book venue {self.name!r}"
        if request.venue != self.name:
            return f"venue: {request.venue!r} is not this venue {self.name!r}"
        instrument = self._specs.get(request.instrument)
        if instrument is None:
            return f"instrument: {request.instrument!r} is not listed on {self.name!r}"
        if request.client_order_id in self._orders:
            return f"client_order_id: {request.client_order_id!r} already used on {self.name!r}"
        quantity = request.quantity
        if isinstance(instrument, Spot):
            if quantity % instrument.size_increment != 0:
                step = _fmt(instrument.size_increment)
                return f"quantity: {_fmt(quantity)} is not a multiple of size_increment {step}"
            if request.price is not None and request.price % instrument.price_increment != 0:
                step = _fmt(instrument.price_increment)
                return f"price: {_fmt(request.price)} is not a multiple of price_increment {step}"
        if quantity < instrument.min_size:
            return f"quantity: {_fmt(quantity)} is below min_size {_fmt(instrument.min_size)}"
        if request.reduce_only:
            if isinstance(instrument, Spot):
                return f"reduce_only: {request.instrument!r} is spot; reduce-only applies to derivatives"
            position = self.position(request.instrument)
            if position * request.side.sign >= 0 or quantity > abs(position):
                return (
                    f"reduce_only: a {request.side.value} of {_fmt(quantity)} would increase the position "
                    f"{_fmt(position)} on {request.instrument!r}"
                )
        if request.order_type is OrderType.MARKET:
            market = self._markets[request.instrument]
            market.unpack()
            if not market.crossing(request.side, None):
                other = "ask" if request.side is Side.BUY else "bid"
                return f"order_type: market order with no {other} on the book of {request.instrument!r}"
        return None

    def _market_estimate(self, request: OrderRequest) -> Decimal:
        """Worst price of the visible levels a market order of `request.quantity` would walk now."""
        levels = self._markets[request.instrument].crossing(request.side, None)
        left = request.quantity
        worst = levels[0][0]
        for price, size in levels:
            worst = price
            left -= size
            if left <= 0:
                break
        return worst

    # -- balances ----------------------------------------------------------------------------

    def _funding_asset(self, order: _Order) -> str:
        """The asset an order draws on: quote for buys and perps, base for spot sells."""
        instrument = self._specs[order.request.instrument]
        if isinstance(instrument, Spot) and order.side is Side.SELL:
            return instrument.base
        return instrument.quote

    def _unit_cost(self, order: _Order, price: Decimal, fee_rate: Decimal) -> Decimal:
        """Amount of the funding asset one unit of fill at `price` draws (fee rate as a fraction)."""
        instrument = self._specs[order.request.instrument]
        if isinstance(instrument, Spot):
            return _ONE if order.side is Side.SELL else price * (_ONE + fee_rate)
        margin = _ZERO if order.request.reduce_only else _ONE / instrument.max_leverage
        return price * instrument.contract_size * (margin + max(fee_rate, _ZERO))

    def _reservation(self, order: _Order) -> tuple[str, Decimal]:
        """What an open order holds back: (asset, amount) at its reference price and the max fee rate."""
        unit = self._unit_cost(order, order.ref_price, self.config.fees.max_rate)
        return self._funding_asset(order), order.remaining * unit

    def _available(self, asset: str, exclude: _Order | None) -> Decimal:
        """Balance of `asset` less other open orders' reservations and perp margin in use."""
        total = self.balance(asset)
        for order in self._open.values():
            if order is not exclude:
                reserved_asset, amount = self._reservation(order)
                if reserved_asset == asset:
                    total -= amount
        for position in self.portfolio.positions(self.name, open_only=True).values():
            instrument = self._specs.get(position.instrument)
            if isinstance(instrument, StockPerp) and instrument.quote == asset:
                total -= abs(position.cost) * instrument.contract_size / instrument.max_leverage
        return total

    def _reduce_cap(self, order: _Order) -> Decimal | None:
        """How much a reduce-only order may still fill (None: not reduce-only)."""
        if not order.request.reduce_only:
            return None
        position = self.position(order.request.instrument)
        return abs(position) if position * order.side.sign < 0 else _ZERO

    def _plan(
        self,
        order: _Order,
        offers: list[tuple[Decimal, Decimal]],
        liquidity: Liquidity,
        fill_price: Decimal | None,
    ) -> tuple[list[tuple[Decimal, Decimal]], str]:
        """How much of each offer `(level price, size)` the order can fill, and why it stops short.

        Fills happen at the level price (`fill_price` None) or at `fill_price` (a maker's limit).
        The plan is capped by the remaining quantity, the reduce-only room and the money
        available; the reason is "" when only the offers or the quantity ran out.
        """
        remaining = order.remaining
        cap = self._reduce_cap(order)
        asset = self._funding_asset(order)
        budget = self._available(asset, order)
        rate = self.config.fees.rate_bps(liquidity) / BPS
        step = self._size_step(order)
        spent = _ZERO
        plan: list[tuple[Decimal, Decimal]] = []
        reason = ""
        for level_price, offered in offers:
            if remaining <= 0:
                break
            want = min(offered, remaining)
            quantity = want
            if cap is not None and quantity > cap:
                quantity = cap
                position = self.position(order.request.instrument)
                reason = f"reduce_only: position {_fmt(position)} leaves {_fmt(cap)} to reduce"
            unit = self._unit_cost(order, fill_price if fill_price is not None else level_price, rate)
            if unit > 0 and spent + quantity * unit > budget:
                affordable = ((budget - spent) / unit).quantize(step, rounding=ROUND_FLOOR)
                quantity = max(min(quantity, affordable), _ZERO)
                reason = f"insufficient {asset}: needs {_fmt(spent + want * unit)}, available {_fmt(budget)}"
            if quantity > 0:
                plan.append((level_price, quantity))
                spent += quantity * unit
                remaining -= quantity
                if cap is not None:
                    cap -= quantity
            if reason:
                break
        return plan, reason

    def _size_step(self, order: _Order) -> Decimal:
        instrument = self._specs[order.request.instrument]
        return instrument.size_increment if isinstance(instrument, Spot) else self.config.size_step

    def _price_step(self, order: _Order) -> Decimal:
        instrument = self._specs[order.request.instrument]
        return instrument.price_increment if isinstance(instrument, Spot) else self.config.price_step

    # -- order events ------------------------------------------------------------------------

    def _state(self, order: _Order, reason: str = "") -> OrderUpdate:
        """An update reporting the order's status and fill state now."""
        return OrderUpdate(
            self.clock.now_ns(),
            self.name,
            order.request.client_order_id,
            order.status,
            order.venue_order_id if order.status is not OrderStatus.NEW else "",
            order.filled,
            order.average_price(),
            reason,
        )

    def _finish(self, order: _Order, status: OrderStatus, reason: str) -> None:
        """End an order as CANCELLED, EXPIRED or REJECTED and report it."""
        order.status = status
        self._close(order)
        self.emit(self._state(order, reason))

    def _close(self, order: _Order) -> None:
        """Take a finished order out of the book and out of the reservations."""
        self._open.pop(order.request.client_order_id, None)
        market = self._markets[order.request.instrument]
        if order in market.resting:
            market.resting.remove(order)
        if order in market.held:
            market.held.remove(order)

    def _fill(self, order: _Order, price: Decimal, quantity: Decimal, liquidity: Liquidity) -> None:
        """One execution: emit the Fill, apply it to the venue's own portfolio, update the order."""
        request = order.request
        instrument = self._specs[request.instrument]
        contract_size = instrument.contract_size if isinstance(instrument, StockPerp) else _ONE
        fee = self.config.fees.fee(quantity * contract_size * price, liquidity)
        fill = Fill(
            self.clock.now_ns(),
            self.name,
            request.instrument,
            request.client_order_id,
            request.side,
            price,
            quantity,
            fee,
            instrument.quote,
            liquidity,
            f"{self.name}-t{next(self._trade_ids)}",
        )
        self.portfolio.apply_fill(fill)
        order.remaining -= quantity
        order.filled += quantity
        order.cost += quantity * price
        order.status = OrderStatus.FILLED if order.remaining == 0 else OrderStatus.PARTIALLY_FILLED
        self.emit(fill)

    def _execute(
        self,
        market: _Market,
        order: _Order,
        plan: list[tuple[Decimal, Decimal]],
        liquidity: Liquidity,
        fill_price: Decimal | None,
        consume: bool,
    ) -> None:
        """Carry out a plan: fills (one per level, or one at `fill_price`), consumption, the report."""
        if not plan:
            return
        if fill_price is None:
            for level_price, quantity in plan:
                self._fill(order, level_price, quantity, liquidity)
        else:
            self._fill(order, fill_price, sum((q for _, q in plan), _ZERO), liquidity)
        if consume:
            book_side = _opposite(order.side)
            for level_price, quantity in plan:
                market.consume(book_side, level_price, quantity)
        if order.status is OrderStatus.FILLED:
            self._close(order)
        self.emit(self._state(order))

    def _maker_fill(
        self, market: _Market, order: _Order, offers: list[tuple[Decimal, Decimal]], consume: bool
    ) -> Decimal:
        """Fill a resting order at its limit from `offers`; cancel it if money or reduce room ran out.

        Returns the quantity filled.
        """
        assert order.price is not None
        plan, reason = self._plan(order, offers, Liquidity.MAKER, order.price)
        before = order.filled
        self._execute(market, order, plan, Liquidity.MAKER, order.price, consume)
        if reason and not order.status.is_terminal:
            self._finish(order, OrderStatus.CANCELLED, reason)
        return order.filled - before

    # -- arrival -----------------------------------------------------------------------------

    def _arrive(self, order: _Order, at_ns: int) -> None:
        """An order reaches the matching engine at `at_ns` (ns), after its latency."""
        if order.status.is_terminal:
            return
        market = self._markets[order.request.instrument]
        if at_ns == order.sent_ns and not self.config.same_event_fills:
            market.held.append(order)  # zero latency: it may not fill on the event that triggered it
            return
        market.unpack()
        self._process_arrival(market, order)

    def _release_held(self, market: _Market) -> None:
        """Zero-latency orders waiting for a market event: they arrive now, after it."""
        while market.held:
            order = market.held.pop(0)
            self._process_arrival(market, order)

    def _process_arrival(self, market: _Market, order: _Order) -> None:
        """Checks at the matching engine, acceptance, taking, then rest or cancel the remainder."""
        request = order.request
        cap = self._reduce_cap(order)
        if cap is not None and cap == 0:
            position = self.position(request.instrument)
            self._finish(
                order,
                OrderStatus.REJECTED,
                f"reduce_only: position {_fmt(position)} on {request.instrument!r} has nothing to reduce",
            )
            return
        note = ""
        if request.post_only:
            assert order.price is not None
            would_take = market.crossing(order.side, order.price)
            if would_take:
                best = would_take[0][0]
                other = "ask" if order.side is Side.BUY else "bid"
                if self.config.post_only is PostOnlyMode.REJECT:
                    self._finish(
                        order,
                        OrderStatus.REJECTED,
                        f"post_only: price {_fmt(order.price)} would take the best {other} {_fmt(best)}",
                    )
                    return
                step = self._price_step(order)
                slid = best - step if order.side is Side.BUY else best + step
                if slid <= 0:
                    self._finish(
                        order, OrderStatus.REJECTED, f"post_only: no price below the best ask {_fmt(best)}"
                    )
                    return
                note = f"post_only: slid from {_fmt(order.price)} to {_fmt(slid)}"
                order.price = slid
        order.status = OrderStatus.ACCEPTED
        self.emit(self._state(order, note))
        if request.time_in_force is TimeInForce.DAY:
            self._schedule(self._day_end(self.clock.now_ns()), "expire", request.client_order_id)
        offers = [] if request.post_only else market.crossing(order.side, order.price)
        plan, reason = self._plan(order, offers, Liquidity.TAKER, None)
        if request.time_in_force is TimeInForce.FOK:
            planned = sum((q for _, q in plan), _ZERO)
            if planned < order.remaining:
                why = reason or (
                    f"FOK: only {_fmt(planned)} of {_fmt(order.remaining)} available"
                    + ("" if order.price is None else f" at {_fmt(order.price)} or better")
                )
                self._finish(order, OrderStatus.CANCELLED, why)
                return
        self._execute(market, order, plan, Liquidity.TAKER, None, consume=True)
        if order.status is OrderStatus.FILLED:
            return
        if reason:
            self._finish(order, OrderStatus.CANCELLED, reason)
        elif request.order_type is OrderType.MARKET:
            self._finish(
                order,
                OrderStatus.CANCELLED,
                f"market order: book exhausted, {_fmt(order.remaining)} of {_fmt(request.quantity)} unfilled",
            )
        elif request.time_in_force is TimeInForce.IOC:
            self._finish(
                order,
                OrderStatus.CANCELLED,
                f"IOC: {_fmt(order.remaining)} of {_fmt(request.quantity)} unfilled "
                f"at {_fmt(order.price or _ZERO)} or better",
            )
        else:
            assert order.price is not None
            order.ahead = market.level_size(order.side, order.price)
            order.seen_size = order.ahead
            order.traded_since = _ZERO
            market.resting.append(order)

    def _day_end(self, now_ns: int) -> int:
        """The first `day_end_ns` time of day strictly after `now_ns` (ns)."""
        cutoff = self.config.day_end_ns
        return cutoff + ((now_ns - cutoff) // NS_PER_DAY + 1) * NS_PER_DAY

    def _cancel_arrives(self, order: _Order) -> None:
        """A cancel reaches the matching engine."""
        if order.status.is_terminal:
            self.emit(self._state(order, f"cancel: too late, the order is {order.status.value}"))
            return
        self._finish(order, OrderStatus.CANCELLED, "cancelled on request")

    def _expire(self, order: _Order) -> None:
        """A DAY order's day ended."""
        if not order.status.is_terminal:
            self._finish(order, OrderStatus.EXPIRED, f"DAY: expired at {self.clock.now_ns()} ns")

    # -- resting orders ----------------------------------------------------------------------

    def _update_queue(self, market: _Market, order: _Order) -> None:
        """After a book update: advance the queue ahead of `order` by the model, cap it by the level."""
        assert order.price is not None
        new = market.level_size(order.side, order.price)
        old = order.seen_size
        ahead = order.ahead
        if (
            self.config.queue_model is QueueModel.PROPORTIONAL
            and ahead is not None
            and ahead > 0
            and new is not None
            and old is not None
            and new < old
        ):
            cancelled = old - new - order.traded_since  # trades printed here already advanced us
            if cancelled > 0:
                left = ahead - cancelled * ahead / old
                ahead = max(left.quantize(self._size_step(order), rounding=ROUND_CEILING), _ZERO)
        if new is not None and (ahead is None or ahead > new):
            ahead = new  # whatever is ahead of us is in the level
        order.ahead = ahead
        if new != old:
            order.seen_size = new
            order.traded_since = _ZERO

    def _match_crossed(self, market: _Market) -> None:
        """Resting orders the recorded book now crosses fill at their limit, best price first."""
        for order in sorted(market.resting, key=_priority):
            if order.status.is_terminal:
                continue
            offers = market.crossing(order.side, order.price)
            if offers:
                order.ahead = _ZERO  # the market went through our price: nothing is ahead any more
                self._maker_fill(market, order, offers, consume=True)

    def _on_trade(self, market: _Market, trade: Trade) -> None:
        """A public trade: fill what it went through, advance the queues at its price."""
        if not _usable(trade.price, trade.size):
            return
        price, size = _dec(trade.price), _dec(trade.size)
        if trade.aggressor is not Side.BUY:  # a seller hit the bids: our buys
            self._trade_hits(market, Side.BUY, price, size)
        if trade.aggressor is not Side.SELL:  # a buyer lifted the asks: our sells
            self._trade_hits(market, Side.SELL, price, size)

    def _trade_hits(self, market: _Market, side: Side, price: Decimal, size: Decimal) -> None:
        """Allocate a trade of `size` at `price` to our resting orders of `side`, in queue order."""
        orders = sorted((o for o in market.resting if o.side is side), key=_priority)
        left = size
        at_price: list[_Order] = []
        for order in orders:
            assert order.price is not None
            through = order.price > price if side is Side.BUY else order.price < price
            if through:
                order.ahead = _ZERO  # the trade printed beyond our price: our level was emptied
                if left > 0:
                    left -= self._maker_fill(market, order, [(price, left)], consume=False)
            elif order.price == price:
                at_price.append(order)
        # The rest of the print went through the queue at `price`: public ahead, ours, public between, ...
        ours_before = _ZERO  # remaining of our earlier orders at this price, before this trade
        filled_before = _ZERO
        blocked = False
        for order in at_price:
            order.traded_since += size  # the recorded level shrinks by the whole print
            remaining = order.remaining
            if order.ahead is None or blocked:
                blocked = True  # unknown queue: neither it nor those behind it can fill on this print
                continue
            start = order.ahead + ours_before
            public_consumed = max(min(left, start) - filled_before, _ZERO)
            order.ahead = max(order.ahead - public_consumed, _ZERO)
            reach = min(max(left - start, _ZERO), remaining)
            if reach > 0:
                filled_before += self._maker_fill(market, order, [(price, reach)], consume=False)
            ours_before += remaining


def _priority(order: _Order) -> tuple[Decimal, int]:
    """Price-time priority of our resting orders: best price first, then arrival."""
    assert order.price is not None
    return (-order.price if order.side is Side.BUY else order.price, order.seq)
