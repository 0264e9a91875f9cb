"""A simulated stock broker (Alpaca-like) for the real shares: session rules, spread, commissions.

Orders are `OrderRequest`s on `Spot` instruments (`Spot("TSLA/USD", "TSLA", "USD")`). The broker
fills them against the recorded market it is given (`on_market`): a `Quote`'s bid/ask, or with
`price_from="trade"` a `Trade`'s price as both bid and ask. Each order goes through these steps:

1. `submit` checks the order itself: an `OrderRequest` for this venue and a listed instrument; no
   `post_only` or `reduce_only` (the broker has neither); `extended_hours` only on a limit order
   with `time_in_force` DAY; a whole number of shares unless the asset is `fractionable`, and a
   multiple of the instrument's `size_increment` and at least its `min_size`; a limit price on the
   `price_increment` grid. A bad order returns REJECTED naming the field and the value.
2. Arrival, a constant `latency_ns` after submission (inside `submit` when 0). The session comes
   from the market calendar (honouring recorded `MarketStatus` events, see
   `connectors.sim.market_hours`), as at Alpaca: REGULAR takes market and limit orders; PRE_MARKET,
   POST_MARKET and OVERNIGHT take only limit orders with `extended_hours=True` (DAY), OVERNIGHT only
   for assets with `overnight_tradable`; WEEKEND, HOLIDAY and CLOSED take nothing. Anything else is
   REJECTED naming the session and the order type. The account must hold what the order may spend:
   a buy reserves `notional + fees` at its limit (a market buy: at the current ask plus spread),
   a sell reserves its shares (no short selling). Then ACCEPTED.
3. Matching. At its first look at the market (at arrival, against the latest recorded price) a
   market order fills at the taker price: ask x (1 + spread_bps / 10000) for a buy,
   bid x (1 - spread_bps / 10000) for a sell. A limit order that is marketable at that taker price
   fills there too (never worse than its limit); otherwise it rests (IOC/FOK orders are CANCELLED
   instead). A resting limit fills in full, at its limit price, on the first later recorded price
   that crosses it: ask <= limit for a buy, bid >= limit for a sell (no queue or size model: stock
   liquidity is deep next to a bot's order). Orders trade only while their session is on: regular
   hours, plus the extended sessions for `extended_hours` orders; a first look that would fall
   outside them waits for the next price inside (IOC/FOK orders are CANCELLED).
   No look-ahead: the first look may use the latest price only if it was recorded before the
   order arrived, or with `same_event_fills`; with zero latency the price that triggered the
   order is not yet usable, and the order looks at the next recorded price instead.
4. Expiry. DAY orders (and market orders) expire at the end of the session they arrived in
   (`MarketCalendar.next_transition`): a 05:00 ET pre-market order expires at 09:30 ET. GTC
   orders rest until filled or cancelled.

Fill amounts: `notional` = price x quantity rounded half-even to `cash_quantum`; the fee, in the
quote currency, is commission (`commission_per_share` x shares + `commission_bps` of notional,
at least `min_commission`) plus, on sells, regulatory fees (SEC fee `sec_fee_rate` x notional and
FINRA TAF `taf_per_share` x shares, capped at `taf_max`), each part rounded up to `fee_quantum`.
A buy pays `notional + fee`, a sell receives `notional - fee`. Prices are exact (`Decimal`), not
rounded to the tick.

Acknowledgements: `submit` returns REJECTED, or (zero latency) the arrival's ACCEPTED/REJECTED, or
NEW with ACCEPTED/REJECTED emitted at arrival. Fills come as a `Fill` then an `OrderUpdate`
FILLED; expiry as EXPIRED. `cancel` takes effect at once (an order still in flight never arrives)
and returns CANCELLED, or the order's final status if it already finished.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Literal, NamedTuple

from connectors.sim.base import SimVenue
from connectors.sim.market_hours import MarketHours
from connectors.sim.reference_price import to_decimal
from connectors.sim.venue_ledger import BPS, Ledger, check_decimal, round_half_even, round_up
from core.calendar import MarketCalendar
from core.clock import Clock
from core.enums import Liquidity, OrderStatus, OrderType, Session, Side, TimeInForce
from core.errors import InvalidInput
from core.events import Event, Fill, MarketStatus, OrderUpdate, Quote, Trade
from core.instruments import Spot
from core.money import MONEY
from core.orders import OrderRequest, Request
from core.venue import VenueState

_ZERO = Decimal(0)
_ONE = Decimal(1)

EXTENDED_SESSIONS = frozenset({Session.PRE_MARKET, Session.POST_MARKET, Session.OVERNIGHT})
"""Sessions outside regular hours in which `extended_hours` limit orders trade."""


@dataclass(frozen=True, slots=True)
class BrokerAsset:
    """A stock the broker trades, with its flags.

    Args:
        instrument: the spot instrument (`base` the share, `quote` the cash; its `price_increment`,
            `size_increment` and `min_size` are enforced).
        fractionable: fractional share quantities are accepted.
        overnight_tradable: extended-hours limit orders are accepted in the OVERNIGHT session.
    """

    instrument: Spot
    fractionable: bool = True
    overnight_tradable: bool = True


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Costs, latency and pricing of the broker; amounts exact, times in ns.

    Args:
        latency_ns: constant time from `submit` to the order's arrival (>= 0).
        price_from: "quote" (fill against bid/ask) or "trade" (against the last trade price).
        spread_bps: extra spread a taker pays over the recorded price, in bps of it.
        commission_per_share: commission per share, quote currency.
        commission_bps: commission in bps of notional.
        min_commission: smallest commission per fill, quote currency.
        sec_fee_rate: SEC fee as a fraction of sell notional (e.g. 0.0000278; sells only).
        taf_per_share: FINRA trading activity fee per share sold (e.g. 0.000166; sells only).
        taf_max: cap on the TAF per fill (None: no cap).
        fee_quantum: each fee part is rounded up to this; None: exact.
        cash_quantum: notional is rounded half-even to this; None: exact.
        same_event_fills: let an order's first look use the price recorded at its arrival instant
            (with zero latency: the event that triggered it).
    """

    latency_ns: int = 50_000_000
    price_from: Literal["quote", "trade"] = "quote"
    spread_bps: Decimal = _ZERO
    commission_per_share: Decimal = _ZERO
    commission_bps: Decimal = _ZERO
    min_commission: Decimal = _ZERO
    sec_fee_rate: Decimal = _ZERO
    taf_per_share: Decimal = _ZERO
    taf_max: Decimal | None = None
    fee_quantum: Decimal | None = Decimal("0.01")
    cash_quantum: Decimal | None = Decimal("0.01")
    same_event_fills: bool = False

    def __post_init__(self) -> None:
        for name in (
            "spread_bps",
            "commission_per_share",
            "commission_bps",
            "min_commission",
            "sec_fee_rate",
            "taf_per_share",
        ):
            check_decimal(name, getattr(self, name))
        if self.taf_max is not None:
            check_decimal("taf_max", self.taf_max)
        for name in ("fee_quantum", "cash_quantum"):
            if getattr(self, name) is not None:
                check_decimal(name, getattr(self, name), allow_zero=False)
        if self.spread_bps >= BPS:
            raise InvalidInput("spread_bps", self.spread_bps, "must be < 10000")
        if not isinstance(self.latency_ns, int) or self.latency_ns < 0:
            raise InvalidInput("latency_ns", self.latency_ns, "must be an integer >= 0 (ns)")
        if self.price_from not in ("quote", "trade"):
            raise InvalidInput("price_from", self.price_from, "must be 'quote' or 'trade'")


class _Top(NamedTuple):
    """Latest recorded prices of one instrument (exact) and when they were recorded (ns)."""

    bid: Decimal
    ask: Decimal
    ts: int


@dataclass(slots=True, eq=False)
class _Order:
    """The broker's record of one order."""

    request: OrderRequest
    asset: BrokerAsset
    arrival_ns: int
    status: OrderStatus = OrderStatus.NEW
    session: Session | None = None  # session in force at arrival
    expires_ns: int | None = None
    looked: bool = False  # the first look at the market (taker matching) is done
    reserved: dict[str, Decimal] = field(default_factory=dict)


class SimBroker(SimVenue):
    """A stock broker; see the module docstring for the model.

    Args:
        name: venue name (orders' `venue`; the recorded quotes and trades it fills against carry it).
        clock: the engine's clock.
        calendar: the US equity market calendar.
        assets: the stocks it trades.
        config: costs, latency, pricing.
        balances: what the account holds at the broker at the start, asset -> amount.
    """

    def __init__(
        self,
        name: str,
        clock: Clock,
        calendar: MarketCalendar,
        assets: Iterable[BrokerAsset],
        config: BrokerConfig | None = None,
        balances: Mapping[str, Decimal] | None = None,
    ) -> None:
        super().__init__(name, clock)
        self.config = config if config is not None else BrokerConfig()
        self.hours = MarketHours(calendar)
        self.ledger = Ledger(balances)
        self.assets: dict[str, BrokerAsset] = {}
        for asset in assets:
            if asset.instrument.id in self.assets:
                raise InvalidInput("assets", asset.instrument.id, "listed twice")
            self.assets[asset.instrument.id] = asset
        self._tops: dict[str, _Top] = {}
        self._orders: dict[str, _Order] = {}
        self._book: dict[str, list[_Order]] = {i: [] for i in self.assets}  # live orders, arrival order
        self._due: list[tuple[int, int, str]] = []  # (due ns, seq, client order id): arrival or expiry
        self._seq = 0
        self._trades = 0

    # -- driver hooks ------------------------------------------------------------------------

    def on_market(self, event: Event) -> None:
        """Record a quote or trade of a listed instrument and match the orders on it."""
        if isinstance(event, MarketStatus):
            self.hours.observe(event)
            return
        if self.config.price_from == "quote" and isinstance(event, Quote):
            bid, ask = to_decimal(event.bid), to_decimal(event.ask)
        elif self.config.price_from == "trade" and isinstance(event, Trade):
            bid = ask = to_decimal(event.price)
        else:
            return
        instrument = event.instrument
        if (
            event.venue != self.name
            or instrument not in self.assets
            or bid is None
            or ask is None
            or ask < bid
        ):
            return  # not ours, or a bad or crossed print: skipped
        self._tops[instrument] = _Top(bid, ask, event.ts)
        self._match(instrument)

    def on_time(self, now_ns: int) -> None:
        """Process arrivals and DAY expiries due at or before `now_ns`, in time order."""
        while self._due and self._due[0][0] <= now_ns:
            due_ns, _, client_order_id = heapq.heappop(self._due)
            order = self._orders[client_order_id]
            if order.status is OrderStatus.NEW and due_ns == order.arrival_ns:
                ack = self._arrive(order)
                self.emit(ack)
                if ack.status is OrderStatus.ACCEPTED:
                    self._first_look(order)
            elif order.status is OrderStatus.ACCEPTED and due_ns == order.expires_ns:
                self._expire(order)

    # -- venue port --------------------------------------------------------------------------

    async def submit(self, request: Request) -> OrderUpdate:
        """Check an order; return REJECTED, the arrival verdict (zero latency) or NEW (arrives later)."""
        reason = self._check(request)
        if reason is not None:
            return self.reject(request, reason)
        assert isinstance(request, OrderRequest)
        now = self.clock.now_ns()
        order = _Order(request, self.assets[request.instrument], now + self.config.latency_ns)
        self._orders[request.client_order_id] = order
        if self.config.latency_ns == 0:
            ack = self._arrive(order)
            if ack.status is OrderStatus.ACCEPTED:
                self._first_look(order)  # a fill goes to the outbox, after this acknowledgement
            return ack
        self._schedule(order.arrival_ns, order)
        return self.update(request.client_order_id, OrderStatus.NEW)

    async def cancel(self, client_order_id: str) -> OrderUpdate:
        """Cancel at once (in flight or resting); a finished order answers with its final status."""
        order = self._orders.get(client_order_id)
        if order is None:
            return self.update(
                client_order_id, OrderStatus.REJECTED, f"client_order_id: {client_order_id!r} unknown"
            )
        if order.status.is_terminal:
            return self.update(client_order_id, order.status, f"cancel: order already {order.status.value}")
        self._finish(order, OrderStatus.CANCELLED)
        return self.update(client_order_id, OrderStatus.CANCELLED, "cancel: cancelled on request")

    async def snapshot(self) -> VenueState:
        """Balances at the broker and the orders in flight or resting."""
        open_orders = tuple(
            self.update(cid, o.status) for cid, o in self._orders.items() if not o.status.is_terminal
        )
        return VenueState(self.name, self.clock.now_ns(), self.ledger.balances(), open_orders)

    def deposit(self, asset: str, amount: Decimal) -> None:
        """Credit `amount` (> 0) of `asset` to the account at the broker (mirror it in the portfolio)."""
        self.ledger.deposit(asset, amount)

    # -- costs -------------------------------------------------------------------------------

    def fee(self, side: Side, quantity: Decimal, notional: Decimal) -> Decimal:
        """Commission plus (sells) SEC fee and FINRA TAF for one fill, quote currency (see module doc)."""
        cfg = self.config
        q = cfg.fee_quantum
        with localcontext(MONEY):
            commission = round_up(
                cfg.commission_per_share * quantity + notional * cfg.commission_bps / BPS, q
            )
            fee = max(commission, cfg.min_commission)
            if side is Side.SELL:
                taf = round_up(cfg.taf_per_share * quantity, q)
                if cfg.taf_max is not None:
                    taf = min(taf, cfg.taf_max)
                fee += round_up(notional * cfg.sec_fee_rate, q) + taf
        return fee

    def taker_price(self, instrument: str, side: Side) -> Decimal | None:
        """What a market order would pay (buy) or get (sell) now, spread included, or None without a price."""
        top = self._tops.get(instrument)
        if top is None:
            return None
        with localcontext(MONEY):
            if side is Side.BUY:
                return top.ask * (_ONE + self.config.spread_bps / BPS)
            return top.bid * (_ONE - self.config.spread_bps / BPS)

    def _amounts(self, order: _Order, price: Decimal) -> tuple[Decimal, Decimal, dict[str, Decimal]]:
        """`(notional, fee, balance deltas)` of filling `order` in full at `price`."""
        request = order.request
        spot = order.asset.instrument
        with localcontext(MONEY):
            notional = round_half_even(price * request.quantity, self.config.cash_quantum)
            fee = self.fee(request.side, request.quantity, notional)
            if request.side is Side.BUY:
                deltas = {spot.quote: -(notional + fee), spot.base: request.quantity}
            else:
                deltas = {spot.base: -request.quantity, spot.quote: notional - fee}
        return notional, fee, deltas

    # -- order life --------------------------------------------------------------------------

    def _check(self, request: Request) -> str | None:
        """Why the order itself is unacceptable (independent of time), or None."""
        if not isinstance(request, OrderRequest):
            return f"request: {self.name} takes OrderRequest, got {type(request).__name__}"
        if request.venue != self.name:
            return f"venue: order for {request.venue!r} sent to {self.name!r}"
        if request.client_order_id in self._orders:
            return f"client_order_id: {request.client_order_id!r} already used"
        asset = self.assets.get(request.instrument)
        if asset is None:
            listed = sorted(self.assets)
            return f"instrument: {request.instrument!r} is not traded at {self.name} (trades {listed})"
        if request.post_only:
            return f"post_only: True is not supported by {self.name}"
        if request.reduce_only:
            return f"reduce_only: True is not supported by {self.name}"
        if request.extended_hours and (
            request.order_type is not OrderType.LIMIT or request.time_in_force is not TimeInForce.DAY
        ):
            return (
                f"extended_hours: True needs a limit order with time_in_force day, "
                f"got {request.order_type.value} {request.time_in_force.value}"
            )
        spot = asset.instrument
        quantity = request.quantity
        if quantity != quantity.to_integral_value() and not asset.fractionable:
            return f"quantity: {quantity} is fractional; {spot.id} is not fractionable"
        if quantity % spot.size_increment != 0:
            return f"quantity: {quantity} is not a multiple of {spot.size_increment}"
        if quantity < spot.min_size:
            return f"quantity: {quantity} below the minimum {spot.min_size}"
        if request.price is not None and request.price % spot.price_increment != 0:
            return f"price: {request.price} is not a multiple of {spot.price_increment}"
        return None

    def _arrive(self, order: _Order) -> OrderUpdate:
        """The order reaches the broker now: session rules and funds decide ACCEPTED or REJECTED."""
        now = self.clock.now_ns()
        request = order.request
        try:
            session = self.hours.session_at(now)
            session_end = self.hours.session_end(now)
        except InvalidInput as exc:
            return self._refuse(order, f"ts: {exc}")
        kind = f"{request.order_type.value} order"
        if session is not Session.REGULAR:
            if session not in EXTENDED_SESSIONS:
                return self._refuse(order, f"session: {session.value}, the broker takes no {kind}")
            if request.order_type is OrderType.MARKET:
                return self._refuse(
                    order, f"session: {session.value}, a {kind} is accepted only in the regular session"
                )
            if not request.extended_hours:
                return self._refuse(
                    order, f"session: {session.value}, a {kind} needs extended_hours=True (time_in_force day)"
                )
            if session is Session.OVERNIGHT and not order.asset.overnight_tradable:
                return self._refuse(
                    order, f"session: overnight, {order.asset.instrument.id} is not overnight tradable"
                )
        estimate = (
            request.price if request.price is not None else self.taker_price(request.instrument, request.side)
        )
        if estimate is None:
            return self._refuse(order, f"price: no market price of {request.instrument} yet for a {kind}")
        _, _, deltas = self._amounts(order, estimate)
        spend = {asset: -delta for asset, delta in deltas.items() if delta < 0}
        short = self.ledger.reserve_all(spend)
        if short is not None:
            return self._refuse(
                order, f"{short} to {request.side.value} {request.quantity} {request.instrument}"
            )
        order.reserved = spend
        order.status = OrderStatus.ACCEPTED
        order.session = session
        self._book[request.instrument].append(order)
        if request.order_type is OrderType.MARKET or request.time_in_force is TimeInForce.DAY:
            order.expires_ns = session_end
            self._schedule(session_end, order)
        return self.update(request.client_order_id, OrderStatus.ACCEPTED)

    def _first_look(self, order: _Order) -> None:
        """At arrival: take liquidity now if the latest price may be used, else wait for the next."""
        top = self._tops.get(order.request.instrument)
        if top is not None and (top.ts < order.arrival_ns or self.config.same_event_fills):
            self._look(order)

    def _match(self, instrument: str) -> None:
        """A new price of `instrument`: expire, then match, the live orders in arrival order."""
        now = self.clock.now_ns()
        for order in list(self._book[instrument]):
            if order.status is not OrderStatus.ACCEPTED:
                continue
            if order.expires_ns is not None and now >= order.expires_ns:
                self._expire(order)
            else:
                self._look(order)

    def _look(self, order: _Order) -> None:
        """Match one live order against the latest price (see the module docstring, step 3)."""
        request = order.request
        first = not order.looked
        try:
            session = self.hours.session_at(self.clock.now_ns())
        except InvalidInput:
            return
        trading = session is Session.REGULAR or (
            request.extended_hours
            and session in EXTENDED_SESSIONS
            and (session is not Session.OVERNIGHT or order.asset.overnight_tradable)
        )
        immediate = request.time_in_force in (TimeInForce.IOC, TimeInForce.FOK)
        if not trading:
            if first and immediate:
                self._close(
                    order,
                    OrderStatus.CANCELLED,
                    f"time_in_force: {request.time_in_force.value}, market in the {session.value} session",
                )
            return  # the first look waits for the order's session to be on
        order.looked = True
        top = self._tops[request.instrument]
        limit = request.price
        if first:
            taker = self.taker_price(request.instrument, request.side)
            assert taker is not None
            if limit is None or (taker <= limit if request.side is Side.BUY else taker >= limit):
                self._fill(order, taker, Liquidity.TAKER)
            elif immediate:
                self._close(
                    order,
                    OrderStatus.CANCELLED,
                    f"time_in_force: {request.time_in_force.value}, limit {limit} not marketable at {taker}",
                )
            return
        assert limit is not None  # a market order fills at its first look
        if (top.ask <= limit) if request.side is Side.BUY else (top.bid >= limit):
            self._fill(order, limit, Liquidity.MAKER)

    def _fill(self, order: _Order, price: Decimal, liquidity: Liquidity) -> None:
        """Fill `order` in full at `price` now, or cancel it if the account cannot settle it."""
        request = order.request
        notional, fee, deltas = self._amounts(order, price)
        short = "notional: rounds to 0" if notional <= 0 else self.ledger.settle(deltas, order.reserved)
        if short is not None:
            self._close(order, OrderStatus.CANCELLED, f"{short} at fill")
            return
        order.reserved = {}  # settled together with the fill
        self._finish(order, OrderStatus.FILLED)
        now = self.clock.now_ns()
        self._trades += 1
        self.emit(
            Fill(
                now,
                self.name,
                request.instrument,
                request.client_order_id,
                request.side,
                price,
                request.quantity,
                fee,
                order.asset.instrument.quote,
                liquidity,
                f"{self.name}-{self._trades}",
                notional,
            )
        )
        self.emit(
            OrderUpdate(
                now, self.name, request.client_order_id, OrderStatus.FILLED, "", request.quantity, price
            )
        )

    def _expire(self, order: _Order) -> None:
        session = order.session.value if order.session is not None else "?"
        self._close(
            order,
            OrderStatus.EXPIRED,
            f"time_in_force: {order.request.time_in_force.value}, expired at the end of {session}",
        )

    def _finish(self, order: _Order, status: OrderStatus) -> None:
        """Move a live order to a final status, take it off the book and return its reservation."""
        self.ledger.release(order.reserved)
        order.reserved = {}
        order.status = status
        book = self._book[order.request.instrument]
        book[:] = [o for o in book if o is not order]

    def _close(self, order: _Order, status: OrderStatus, reason: str) -> None:
        """`_finish` the order and emit the update that tells why."""
        self._finish(order, status)
        self.emit(self.update(order.request.client_order_id, status, reason))

    def _refuse(self, order: _Order, reason: str) -> OrderUpdate:
        order.status = OrderStatus.REJECTED
        return self.reject(order.request, reason)

    def _schedule(self, at_ns: int, order: _Order) -> None:
        heapq.heappush(self._due, (at_ns, self._seq, order.request.client_order_id))
        self._seq += 1
        self.wake_at(at_ns)
