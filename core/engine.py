"""The trading engine: the one kernel that backtests, paper trading and live bots share.

It keeps the market state that events carry (quotes, books, pool states, oracle prices, the
market session), applies our fills and order updates to orders and the portfolio, routes each
event to the strategies that subscribe to its type, fires timers in time order, and sends
strategies' requests through the risk checks to the venues.

It does no I/O and owns no loop: a driver feeds it. The backtester's replay driver feeds recorded
events on a simulated clock; the live runner feeds connector streams on the wall clock.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, cast

from core.calendar import MarketCalendar
from core.clock import Clock
from core.enums import OrderStatus, Session
from core.errors import IllegalTransition, InvalidInput
from core.events import (
    BookUpdate,
    Event,
    Fill,
    FundingPayment,
    FundingRate,
    MarketStatus,
    OraclePrice,
    OrderUpdate,
    PoolState,
    Quote,
    Trade,
)
from core.instruments import InstrumentRegistry, TokenizedStock
from core.orders import TRANSITIONS, ClientOrderIds, Order, OrderRegistry, OrderRequest, Request
from core.portfolio import Portfolio
from core.venue import Venue
from core.wake import WakeFilter


class RiskCheck(Protocol):
    """A pre-trade check: returns None to pass, or the reason to refuse."""

    def check(self, request: Request, engine: TradingEngine) -> str | None:
        """Judge one request against the engine's current state."""
        ...


class EngineObserver(Protocol):
    """Watches the engine from outside without the engine importing it (metrics, kill switch, journal).

    `on_event` is awaited for every event after it was applied to the state and before any strategy
    sees it (market events as the driver feeds them, our `OrderUpdate`s and `Fill`s, risk refusals);
    in a backtest it must not wait on anything but the engine. `on_request` is called once per new
    request after the risk checks judged it: `reason` None means it is about to go to its venue.
    """

    async def on_event(self, event: Event, engine: TradingEngine) -> None:
        """One event, already applied to `engine`'s state."""
        ...

    def on_request(self, request: Request, reason: str | None, engine: TradingEngine) -> None:
        """A new request, judged: None to be sent now, else the refusal reason."""
        ...


class StrategyLike(Protocol):
    """What the engine needs of a strategy (see `strategies.base.Strategy`)."""

    name: str

    def subscriptions(self) -> frozenset[type]:
        """Event types that wake the strategy."""
        ...

    async def on_start(self, ctx: Any, **kwargs: Any) -> None:
        """Called once before the first event."""
        ...

    async def on_stop(self, ctx: Any, **kwargs: Any) -> None:
        """Called once after the last event."""
        ...

    async def on_timer(self, ctx: Any, name: str, **kwargs: Any) -> None:
        """A scheduled timer fired."""
        ...

    def handler(self, event_type: type) -> Handler:
        """The coroutine function to call as `handler(ctx, event)` for events of `event_type`."""
        ...


Handler = Callable[[Any, Any], Coroutine[Any, Any, None]]

_EVENT_TYPES = (
    Quote,
    Trade,
    BookUpdate,
    PoolState,
    OraclePrice,
    FundingRate,
    MarketStatus,
    OrderUpdate,
    Fill,
    FundingPayment,
)


@dataclass(frozen=True, slots=True)
class ReferenceSource:
    """Where the real stock's price comes from: a quote's mid on a venue, or an oracle."""

    underlying: str
    venue: str
    instrument: str
    max_age_ns: int
    from_oracle: bool = False


@dataclass(slots=True)
class _Book:
    """Aggregated L2 book, price -> size per side."""

    bids: dict[float, float] = field(default_factory=dict)
    asks: dict[float, float] = field(default_factory=dict)
    ts: int = 0

    def snapshot(self, venue: str, instrument: str) -> BookUpdate:
        bids = tuple(sorted(self.bids.items(), reverse=True))
        asks = tuple(sorted(self.asks.items()))
        return BookUpdate(self.ts, venue, instrument, bids, asks, True)


class StrategyContext:
    """The context one strategy sees (`core.context.Context`), bound to the shared engine."""

    def __init__(self, engine: TradingEngine, strategy: StrategyLike, index: int) -> None:
        self._engine = engine
        self._index = index
        self.strategy = strategy
        self.mode = engine.mode
        self.instruments = engine.instruments
        self.portfolio = engine.portfolio
        self.calendar = engine.calendar
        self.pricing = engine.pricing
        self.log = logging.getLogger(f"perpetua.strategy.{strategy.name}")
        self._ids = ClientOrderIds(f"{engine.order_id_prefix}{strategy.name}")

    @property
    def now(self) -> int:
        """Current time, ns since the epoch, UTC."""
        return self._engine.clock.now_ns()

    @property
    def session(self) -> Session:
        """The US equity session in force now."""
        return self._engine.session

    def quote(self, venue: str, instrument: str) -> Quote | None:
        """Latest top of book for `instrument` on `venue`."""
        return self._engine.quotes.get((venue, instrument))

    def book(self, venue: str, instrument: str) -> BookUpdate | None:
        """Current order book as a full snapshot, best level first."""
        return self._engine.book(venue, instrument)

    def pool(self, venue: str, pool: str) -> PoolState | None:
        """Latest state of an AMM pool."""
        return self._engine.pools.get((venue, pool))

    def oracle(self, source: str, instrument: str) -> OraclePrice | None:
        """Latest oracle price."""
        return self._engine.oracles.get((source, instrument))

    def reference_price(self, underlying: str) -> float | None:
        """Fresh price of the real stock, or None."""
        return self._engine.reference_price(underlying)

    def fair_value(self, token: str) -> float | None:
        """Reference price x multiplier of `token` now, or None without a fresh reference."""
        return self._engine.fair_value(token)

    def open_orders(self, venue: str | None = None) -> list[Order]:
        """This strategy's unfinished orders."""
        return self._engine.open_orders(self._index, venue)

    def new_client_order_id(self) -> str:
        """A fresh deterministic client order id."""
        return self._ids.next()

    async def submit(self, request: Request) -> Order:
        """Send `request` through the risk checks to its venue."""
        return await self._engine.submit(request, self._index)

    async def cancel(self, client_order_id: str) -> None:
        """Cancel one of this strategy's open orders; another strategy's order is refused."""
        if self._engine.owner_of(client_order_id) != self._index:
            raise InvalidInput("client_order_id", client_order_id, "is not an order of this strategy")
        await self._engine.cancel(client_order_id)

    def schedule(self, at_ns: int, name: str) -> None:
        """Call `on_timer(ctx, name)` at `at_ns`."""
        self._engine.schedule(at_ns, self._index, name)

    def balance(self, venue: str, asset: str) -> Decimal:
        """Our balance of `asset` on `venue`."""
        return self.portfolio.balance(venue, asset)

    def venue_view(self, venue: str) -> Any:
        """The venue's public read-only state (its `public_view()`, e.g. an options pool's), or None."""
        public_view = getattr(self._engine.venues.get(venue), "public_view", None)
        return None if public_view is None else public_view()


class TradingEngine:
    """Market state, orders, portfolio, timers and strategy dispatch. See the module docstring."""

    def __init__(
        self,
        *,
        clock: Clock,
        instruments: InstrumentRegistry,
        portfolio: Portfolio,
        calendar: MarketCalendar,
        venues: Mapping[str, Venue],
        strategies: Iterable[StrategyLike] = (),
        risk_checks: Iterable[RiskCheck] = (),
        references: Iterable[ReferenceSource] = (),
        pricing: Any = None,
        mode: str = "backtest",
        order_id_prefix: str = "",
        observers: Iterable[EngineObserver] = (),
    ) -> None:
        self.clock = clock
        self.instruments = instruments
        self.portfolio = portfolio
        self.calendar = calendar
        self.venues = dict(venues)
        self.risk_checks = list(risk_checks)
        self.pricing = pricing
        self.mode = mode
        self.order_id_prefix = order_id_prefix
        self.log = logging.getLogger("perpetua.engine")
        self.quotes: dict[tuple[str, str], Quote] = {}
        self.trades: dict[tuple[str, str], Trade] = {}
        self.pools: dict[tuple[str, str], PoolState] = {}
        self.oracles: dict[tuple[str, str], OraclePrice] = {}
        self.funding: dict[tuple[str, str], FundingRate] = {}
        self._books: dict[tuple[str, str], _Book] = {}
        self.session: Session = Session.CLOSED
        self.orders = OrderRegistry()
        self._owner: dict[str, int] = {}
        self.references = list(references)
        self._references = {ref.underlying: ref for ref in self.references}
        # (at_ns, seq, strategy index or -1 for a driver hook, timer name or hook)
        self.timer_heap: list[tuple[int, int, int, Any]] = []
        self._timer_seq = 0
        self.strategies: list[StrategyLike] = []
        self.contexts: list[StrategyContext] = []
        self._routes: dict[type, list[tuple[Handler, StrategyContext]]] = {t: [] for t in _EVENT_TYPES}
        self._own_routes: list[dict[type, Handler]] = []
        # (venue, instrument) -> strategies whose quotes there pass a wake filter: (raw handler, ctx, filter)
        self._wake: dict[tuple[str, str], list[tuple[Handler, StrategyContext, WakeFilter]]] = {}
        self._update: dict[type, Callable[[Any], None]] = {
            Quote: self._on_quote,
            Trade: self._on_trade,
            BookUpdate: self._on_book,
            PoolState: self._on_pool,
            OraclePrice: self._on_oracle,
            FundingRate: self._on_funding,
            MarketStatus: self._on_market_status,
            OrderUpdate: self._on_order_update,
            Fill: self._on_fill,
            FundingPayment: self._on_funding_payment,
        }
        self.fills: list[Fill] = []
        self.rejections: list[OrderUpdate] = []
        self.observers: list[EngineObserver] = []
        for observer in observers:
            self.add_observer(observer)
        for strategy in strategies:
            self.add_strategy(strategy)

    # -- composition -------------------------------------------------------------------------

    def add_strategy(self, strategy: StrategyLike) -> StrategyContext:
        """Register a strategy; its subscriptions decide which events wake it."""
        index = len(self.strategies)
        ctx = StrategyContext(self, strategy, index)
        self.strategies.append(strategy)
        self.contexts.append(ctx)
        subscribed = strategy.subscriptions()
        filters = _wake_filters(strategy, subscribed)
        self._own_routes.append({t: strategy.handler(t) for t in (OrderUpdate, Fill) if t in subscribed})
        for event_type in subscribed - {OrderUpdate, Fill}:  # our order events go to their owner only
            handler = strategy.handler(event_type)
            if event_type is Quote and filters:
                for key, wake_filter in filters.items():
                    self._wake.setdefault(key, []).append((handler, ctx, wake_filter))
                handler = _filtered(handler, filters)
            self._routes[event_type].append((handler, ctx))
        return ctx

    def add_observer(self, observer: EngineObserver) -> None:
        """Register an observer: it sees every event before the strategies, and every new request.

        Its handler goes first in every event route (so the sparse quote path, which needs every
        quote subscriber to filter, turns dense: an observer sees every quote).
        """
        position = len(self.observers)
        self.observers.append(observer)

        async def on_event(_ctx: Any, event: Any, **kwargs: Any) -> None:
            await observer.on_event(event, self)

        # Observers take no strategy context; drivers only pass this slot back to the handler.
        route = (on_event, cast(StrategyContext, None))
        for event_type in _EVENT_TYPES:
            self._routes[event_type].insert(position, route)

    def sparse_quotes(
        self, venue: str, instrument: str
    ) -> list[tuple[Handler, StrategyContext, WakeFilter]] | None:
        """The strategies quotes of (venue, instrument) can wake, when every quote subscriber filters them.

        Each entry is (unfiltered handler, ctx, filter): a driver that runs the filters itself over
        column arrays calls the handler for the rows they mark. None when some subscriber takes
        every quote there, so each one must be delivered.
        """
        woken = self._wake.get((venue, instrument), [])
        return list(woken) if len(woken) == len(self._routes[Quote]) else None

    async def start(self) -> None:
        """Call every strategy's `on_start`."""
        for strategy, ctx in zip(self.strategies, self.contexts, strict=True):
            await strategy.on_start(ctx)

    async def stop(self) -> None:
        """Call every strategy's `on_stop`."""
        for strategy, ctx in zip(self.strategies, self.contexts, strict=True):
            await strategy.on_stop(ctx)

    # -- events ------------------------------------------------------------------------------

    def apply(self, event: Event) -> Sequence[tuple[Handler, StrategyContext]]:
        """Apply one event to the state; return the `(handler, ctx)` pairs that must see it.

        Our own `Fill`s and `OrderUpdate`s go to the strategy that sent the order, market events to
        every strategy subscribed to their type. Drivers that run coroutines themselves (the
        backtester) call this and then each handler; others call `process`.
        """
        event_type = type(event)
        try:
            update = self._update[event_type]
        except KeyError:
            raise InvalidInput("event", event_type.__name__, "unknown event type") from None
        update(event)
        if event_type is Fill or event_type is OrderUpdate:
            owner = self._owner.get(event.client_order_id)  # type: ignore[union-attr]
            own = None if owner is None else self._own_routes[owner].get(event_type)
            observed = self._routes[event_type]  # observers only: a strategy sees its own orders' events
            if own is None:
                return observed
            return [*observed, (own, self.contexts[owner])]  # type: ignore[index]
        return self._routes[event_type]

    def market_dispatch(
        self,
    ) -> dict[type, tuple[Callable[[Any], None], list[tuple[Handler, StrategyContext]]]]:
        """Per market-event type: the state update and the subscribed handlers (for fast drivers).

        The lists are live: strategies added later appear in them. Our own `Fill`s and
        `OrderUpdate`s are not market events and must go through `apply`.
        """
        return {t: (self._update[t], self._routes[t]) for t in _EVENT_TYPES if t not in (Fill, OrderUpdate)}

    def latest_store(self, event_type: type) -> dict[Any, Any] | None:
        """The dict holding the latest event of `event_type` per (venue, instrument) key (fast drivers).

        Latest-value state (quotes, trades, pool states, oracle prices, funding rates) is updated
        by one store under the event's fields 1-2; None for types with any other update.
        """
        by_type: dict[type, dict[Any, Any]] = {
            Quote: self.quotes,
            Trade: self.trades,
            PoolState: self.pools,
            OraclePrice: self.oracles,
            FundingRate: self.funding,
        }
        return by_type.get(event_type)

    async def process(self, event: Event) -> None:
        """Apply one event to the state, then await every handler that must see it."""
        for handler, ctx in self.apply(event):
            await handler(ctx, event)

    def _on_quote(self, event: Quote) -> None:
        self.quotes[(event.venue, event.instrument)] = event

    def _on_trade(self, event: Trade) -> None:
        self.trades[(event.venue, event.instrument)] = event

    def _on_book(self, event: BookUpdate) -> None:
        key = (event.venue, event.instrument)
        book = self._books.get(key)
        if book is None or event.is_snapshot:
            book = self._books[key] = _Book()
        for side, levels in ((book.bids, event.bids), (book.asks, event.asks)):
            for price, size in levels:
                if size > 0.0:
                    side[price] = size
                else:
                    side.pop(price, None)
        book.ts = event.ts
        if book.bids and book.asks:
            bid = max(book.bids)
            ask = min(book.asks)
            self.quotes[key] = Quote(
                event.ts, event.venue, event.instrument, bid, ask, book.bids[bid], book.asks[ask]
            )

    def _on_pool(self, event: PoolState) -> None:
        self.pools[(event.venue, event.pool)] = event

    def _on_oracle(self, event: OraclePrice) -> None:
        self.oracles[(event.source, event.instrument)] = event

    def _on_funding(self, event: FundingRate) -> None:
        self.funding[(event.venue, event.instrument)] = event

    def _on_market_status(self, event: MarketStatus) -> None:
        self.session = event.session

    def _on_order_update(self, event: OrderUpdate) -> None:
        order = self.orders.get(event.client_order_id)
        if event.venue_order_id:
            order.venue_order_id = event.venue_order_id
        # Fills move the filled quantity; an update only moves the status. A late acknowledgement of
        # an order already done (its venue answered the cancel before the ack went out) moves nothing.
        moves = (
            event.status not in (OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED)
            and event.status is not order.status
            and not (order.status.is_terminal and event.status in (OrderStatus.NEW, OrderStatus.ACCEPTED))
        )
        if event.fee:
            # A fee without a fill (gas of a reverted swap): check the move first, so all or nothing applies.
            if moves and event.status not in TRANSITIONS[order.status]:
                raise IllegalTransition(order.client_order_id, order.status.value, event.status.value)
            self.portfolio.apply_fee(event.ts, event.venue, event.fee_asset, event.fee)
        if not moves:
            return
        order.transition(event.status, event.reason)
        if event.status is OrderStatus.REJECTED:
            self.rejections.append(event)

    def _on_fill(self, event: Fill) -> None:
        if not event.client_order_id:
            # Venue-initiated (a liquidation): moves the portfolio, belongs to no order (ids are never empty).
            self.portfolio.apply_fill(event)
            self.fills.append(event)
            return
        order = self.orders.get(event.client_order_id)
        total = _request_quantity(order.request, event)
        self.portfolio.apply_fill(event)
        order.apply_fill(event.quantity, event.price, total)
        self.fills.append(event)

    def _on_funding_payment(self, event: FundingPayment) -> None:
        self.portfolio.apply_funding(event.ts, event.venue, event.instrument, event.amount)

    # -- state queries -----------------------------------------------------------------------

    def book(self, venue: str, instrument: str) -> BookUpdate | None:
        """The current book of `instrument` on `venue` as a full snapshot."""
        book = self._books.get((venue, instrument))
        return None if book is None else book.snapshot(venue, instrument)

    def reference_price(self, underlying: str, max_age_ns: int | None = None) -> float | None:
        """Price of the real stock from its configured source, or None when absent or older than
        `max_age_ns` (default: the source's own limit; valuation passes a large one)."""
        ref = self._references.get(underlying)
        if ref is None:
            return None
        limit = ref.max_age_ns if max_age_ns is None else max_age_ns
        now = self.clock.now_ns()
        if ref.from_oracle:
            oracle = self.oracles.get((ref.venue, ref.instrument))
            if oracle is None or now - oracle.publish_ts > limit:
                return None
            return oracle.price
        quote = self.quotes.get((ref.venue, ref.instrument))
        if quote is None or now - quote.ts > limit:
            return None
        return 0.5 * (quote.bid + quote.ask)

    def fair_value(self, token: str, max_age_ns: int | None = None) -> float | None:
        """Reference price of the token's underlying x its multiplier now, or None."""
        instrument = self.instruments[token]
        if not isinstance(instrument, TokenizedStock):
            raise InvalidInput("token", token, "is not a tokenized stock")
        price = self.reference_price(instrument.underlying, max_age_ns)
        if price is None:
            return None
        return price * float(instrument.multiplier.at(self.clock.now_ns()))

    def open_orders(self, owner: int | None = None, venue: str | None = None) -> list[Order]:
        """Unfinished orders, optionally of one strategy and one venue."""
        return [
            o
            for o in self.orders.open_orders()
            if (owner is None or self._owner.get(o.client_order_id) == owner)
            and (venue is None or o.request.venue == venue)
        ]

    # -- requests ----------------------------------------------------------------------------

    async def submit(self, request: Request, owner: int) -> Order:
        """Register, risk-check and send a request; a refusal comes back as a REJECTED order."""
        order, created = self.orders.register(request)
        if not created:
            return order  # an idempotent retry: never send twice
        self._owner[request.client_order_id] = owner
        venue = self.venues.get(request.venue)
        reason = None if venue is not None else f"unknown venue {request.venue!r}"
        for check in self.risk_checks:
            if reason is not None:
                break
            reason = check.check(request, self)
        for observer in self.observers:
            observer.on_request(request, reason, self)
        if reason is not None:
            self.log.warning(
                "refused %s: %s",
                request.client_order_id,
                reason,
                extra={"client_order_id": request.client_order_id, "venue": request.venue, "reason": reason},
            )
            await self.process(
                OrderUpdate(
                    self.clock.now_ns(),
                    request.venue,
                    request.client_order_id,
                    OrderStatus.REJECTED,
                    "",
                    Decimal(0),
                    None,
                    reason,
                )
            )
            return order
        assert venue is not None
        ack = await venue.submit(request)
        if ack.status is not order.status:
            await self.process(ack)
        return order

    async def cancel(self, client_order_id: str) -> None:
        """Ask the order's venue to cancel it; the venue's update moves the order."""
        order = self.orders.get(client_order_id)
        if order.status.is_terminal:
            return
        update = await self.venues[order.request.venue].cancel(client_order_id)
        if update.status is not order.status:
            await self.process(update)

    # -- timers ------------------------------------------------------------------------------

    def schedule(self, at_ns: int, owner: int, name: str) -> None:
        """Queue `on_timer(name)` of strategy `owner` at `at_ns` (ns); ties fire in schedule order."""
        if at_ns < self.clock.now_ns():
            raise InvalidInput("at_ns", at_ns, f"is in the past (now {self.clock.now_ns()})")
        heapq.heappush(self.timer_heap, (at_ns, self._timer_seq, owner, name))
        self._timer_seq += 1

    def schedule_hook(self, at_ns: int, hook: Callable[[int], None]) -> None:
        """Call `hook(now_ns)` at `at_ns`, in time order with timers (drivers' own sampling)."""
        heapq.heappush(self.timer_heap, (at_ns, self._timer_seq, -1, hook))
        self._timer_seq += 1

    def owner_of(self, client_order_id: str) -> int | None:
        """Index of the strategy that sent an order, or None."""
        return self._owner.get(client_order_id)

    def next_timer_ns(self) -> int | None:
        """When the next timer is due, or None."""
        return self.timer_heap[0][0] if self.timer_heap else None

    async def fire_timer(self) -> int:
        """Fire the earliest timer (the driver has set the clock to its time); returns that time."""
        at_ns, _, owner, payload = heapq.heappop(self.timer_heap)
        if owner < 0:
            payload(self.clock.now_ns())
        else:
            await self.strategies[owner].on_timer(self.contexts[owner], payload)
        return at_ns


def _wake_filters(strategy: StrategyLike, subscribed: frozenset[type]) -> dict[tuple[str, str], WakeFilter]:
    """The strategy's wake filters by (venue, instrument); one per instrument, only with `on_quote`."""
    declared = getattr(strategy, "wake_filters", None)
    field = f"{strategy.name}.wake_filters"
    filters: dict[tuple[str, str], WakeFilter] = {}
    for wake_filter in declared() if declared is not None else ():
        if not isinstance(wake_filter, WakeFilter):
            raise InvalidInput(field, repr(wake_filter), "must be WakeFilter objects")
        if wake_filter.key in filters:
            raise InvalidInput(field, wake_filter.key, "has two filters for one instrument")
        filters[wake_filter.key] = wake_filter
    if filters and Quote not in subscribed:
        raise InvalidInput(field, sorted(filters), "filters quotes, but the strategy has no quote handler")
    return filters


def _filtered(handler: Handler, filters: Mapping[tuple[str, str], WakeFilter]) -> Handler:
    """`handler` for quotes that pass their instrument's filter (quotes of other instruments all pass)."""

    async def on_quote(ctx: Any, event: Quote, **kwargs: Any) -> None:
        wake_filter = filters.get((event.venue, event.instrument))
        if wake_filter is None or wake_filter.wakes(event):
            await handler(ctx, event, **kwargs)

    return on_quote


def _request_quantity(request: Request, fill: Fill) -> Decimal:
    """The quantity a fill counts against: an order's size; a swap or issuer request fills once."""
    if isinstance(request, OrderRequest):
        return request.quantity
    quantity = getattr(request, "quantity", None)
    return quantity if isinstance(quantity, Decimal) else fill.quantity
