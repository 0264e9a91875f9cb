"""A simulated token issuer's mint/redeem desk (xStocks, Dinari, Ondo style).

A `MintRequest` buys newly minted tokens from the issuer for cash (USD or USDC); a `RedeemRequest`
sells tokens back for cash. The issuer prices them at fair value, the real stock's price times the
token's multiplier, and charges a fee. Each request goes through these steps:

1. `submit` checks the request itself: a mint or redeem for this venue, a token it issues, the
   cash asset the token's pair settles in (`pay_asset` / `receive_asset`), a quantity that is a
   whole number of the token's base units and not below `min_quantity`. A bad request returns
   REJECTED, naming the field and the value.
2. Arrival, `latency_ns` after submission (at once, inside `submit`, when it is 0): the request
   must fall in one of the issuer's `sessions` of the market calendar (by default pre-market,
   regular and post-market of trading days: a Saturday request is REJECTED naming the session),
   a reference price must be known (and not older than `max_price_age_ns`), the notional must
   reach `min_notional`, and the account at the issuer must hold what the request spends: a mint
   reserves its estimated cost (notional + fee at the arrival price), a redeem reserves its
   tokens, so an over-redeem is REJECTED. Then the request is ACCEPTED and settles later.
3. Settlement, at `arrival + delay_ns`, or, with `next_business_day_at` set (e.g. 10:00), at that
   New York time on the first trading day after the arrival's local day, whichever is later. The
   issuer emits one `Fill` on the token's pair (`TSLAx/USD`): a mint is a BUY, a redeem a SELL,
   `quantity` tokens at `price` = stock price x multiplier, `notional` = price x quantity rounded
   half-even to `cash_quantum`, and `fee` in the cash asset (see `fee`); then an `OrderUpdate`
   FILLED. If the account can no longer pay (a settlement-priced mint whose price rose) or no
   price is known, the request is CANCELLED with the reason instead, and nothing moves.

Pricing (`price_at`): with "settlement" (the default, like an issuer that buys or sells the shares
when it processes the request) the stock price *and* the multiplier are those in force at
settlement, so a mint requested before a scheduled multiplier change and settled after it uses
the new multiplier. With "request" both are locked at arrival (an attested quote, Ondo style): a
locked share price must go with the multiplier of the same instant, or a split in between would
count twice. Minimums are judged at arrival.

Money: `notional + fee` leaves the cash balance on a mint; `notional - fee` arrives on a redeem.
Both the venue's own `Ledger` (what the account holds at the issuer) and the engine's portfolio
(through the `Fill`) move by exactly these amounts.

Where the stock price comes from: each `IssuedToken` has a `price` source (see
`connectors.sim.reference_price`). In a `ReplayDriver` backtest the driver gives a venue only the
events stamped with its own name, so pass `engine_price(engine, "alpaca", "TSLA/USD")`: it reads
the broker's latest quote from the engine's market state, exactly as a paper or live engine would
(build the engine first, then the issuer, and add it to `engine.venues` and the driver's venues).
A `LastPrice` source is fed by this venue's `on_market` instead (for a price stream stamped with
the issuer's name, or a venue driven by hand). `MarketStatus` events are honoured as well (see
`connectors.sim.market_hours`).

Acknowledgements: `submit` returns REJECTED, or ACCEPTED (zero latency), or NEW with ACCEPTED or
REJECTED emitted at arrival. Accepted requests cannot be cancelled (`cancel` answers with the
current status and says so), as at real issuers once a request is in processing.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal, localcontext
from typing import Literal

from connectors.sim.base import SimVenue
from connectors.sim.market_hours import MarketHours
from connectors.sim.reference_price import LastPrice, PriceSource
from connectors.sim.venue_ledger import BPS, Ledger, check_decimal, round_half_even, round_up
from core.calendar import MarketCalendar
from core.clock import Clock
from core.enums import Liquidity, OrderStatus, Session, Side
from core.errors import InvalidInput
from core.events import Event, Fill, MarketStatus, OrderUpdate
from core.instruments import Spot, TokenizedStock
from core.money import MONEY
from core.orders import MintRequest, RedeemRequest, Request
from core.venue import VenueState

_ZERO = Decimal(0)

DEFAULT_SESSIONS = frozenset({Session.PRE_MARKET, Session.REGULAR, Session.POST_MARKET})
"""Sessions in which the issuer takes requests by default: the trading day's 04:00-20:00 ET."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token the issuer mints and redeems.

    Args:
        token: the token (its `multiplier` schedule and `decimals` are used).
        pair: the spot instrument the fills are booked on: `base` is the token id, `quote` the cash
            asset paid on a mint and received on a redeem (e.g. `Spot("TSLAx/USD", "TSLAx", "USD")`).
        price: source of the real stock's price, in `pair.quote` per share.
    """

    token: TokenizedStock
    pair: Spot
    price: PriceSource

    def __post_init__(self) -> None:
        if self.pair.base != self.token.id:
            raise InvalidInput("pair.base", self.pair.base, f"must be the token id {self.token.id!r}")


@dataclass(frozen=True, slots=True)
class IssuerConfig:
    """How the issuer behaves; amounts exact, times in ns. See the module docstring for the rules.

    Args:
        mint_fee_bps, redeem_fee_bps: fee in basis points of the notional (>= 0).
        min_fee: smallest fee per request, in the cash asset.
        min_quantity: smallest request, in tokens.
        min_notional: smallest request, in the cash asset (judged at the arrival price).
        delay_ns: processing delay from arrival to settlement (>= 0).
        next_business_day_at: if set, settle no earlier than this New York time on the first
            trading day after the arrival's local day ("T+1 at 10:00 ET").
        sessions: market sessions (`core.enums.Session`) in which requests are accepted.
        price_at: "settlement" or "request": when the stock price and multiplier are taken.
        max_price_age_ns: a reference price older than this is refused (None: any age).
        cash_quantum: cash amounts are rounded to this (notional half-even, fees up); None: exact.
        latency_ns: from `submit` to the request's arrival at the issuer (>= 0).
    """

    mint_fee_bps: Decimal = Decimal(10)
    redeem_fee_bps: Decimal = Decimal(10)
    min_fee: Decimal = _ZERO
    min_quantity: Decimal = _ZERO
    min_notional: Decimal = _ZERO
    delay_ns: int = 0
    next_business_day_at: time | None = None
    sessions: frozenset[Session] = DEFAULT_SESSIONS
    price_at: Literal["settlement", "request"] = "settlement"
    max_price_age_ns: int | None = None
    cash_quantum: Decimal | None = Decimal("0.01")
    latency_ns: int = 0

    def __post_init__(self) -> None:
        for name in ("mint_fee_bps", "redeem_fee_bps", "min_fee", "min_quantity", "min_notional"):
            check_decimal(name, getattr(self, name))
        if self.cash_quantum is not None:
            check_decimal("cash_quantum", self.cash_quantum, allow_zero=False)
        for name in ("delay_ns", "latency_ns"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise InvalidInput(name, value, "must be an integer >= 0 (ns)")
        if self.max_price_age_ns is not None and self.max_price_age_ns < 0:
            raise InvalidInput("max_price_age_ns", self.max_price_age_ns, "must be >= 0 or None")
        if self.price_at not in ("settlement", "request"):
            raise InvalidInput("price_at", self.price_at, "must be 'settlement' or 'request'")
        if not self.sessions or not all(isinstance(s, Session) for s in self.sessions):
            raise InvalidInput("sessions", self.sessions, "must be a non-empty set of Session values")


@dataclass(slots=True)
class _Request:
    """The issuer's record of one mint or redeem."""

    request: MintRequest | RedeemRequest
    issued: IssuedToken
    side: Side
    status: OrderStatus = OrderStatus.NEW
    settle_ns: int = 0
    locked_price: Decimal | None = None  # token price fixed at arrival when price_at="request"
    reserved: dict[str, Decimal] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "mint" if self.side is Side.BUY else "redeem"


class SimIssuer(SimVenue):
    """A token issuer's mint/redeem desk; see the module docstring for the model.

    Args:
        name: venue name (requests' `venue`, fills' `venue`).
        clock: the engine's clock (simulated in backtests, wall clock on paper).
        calendar: the US equity market calendar that decides the issuer's windows.
        tokens: the tokens it issues.
        config: fees, minimums, delays, windows, pricing.
        balances: what the account holds at the issuer at the start, asset -> amount.
    """

    def __init__(
        self,
        name: str,
        clock: Clock,
        calendar: MarketCalendar,
        tokens: Iterable[IssuedToken],
        config: IssuerConfig | None = None,
        balances: Mapping[str, Decimal] | None = None,
    ) -> None:
        super().__init__(name, clock)
        self.config = config if config is not None else IssuerConfig()
        self.hours = MarketHours(calendar)
        self.ledger = Ledger(balances)
        self.tokens: dict[str, IssuedToken] = {}
        for issued in tokens:
            if issued.token.id in self.tokens:
                raise InvalidInput("tokens", issued.token.id, "listed twice")
            self.tokens[issued.token.id] = issued
        self._feeds = [t.price for t in self.tokens.values() if isinstance(t.price, LastPrice)]
        self._requests: dict[str, _Request] = {}
        self._due: list[tuple[int, int, str]] = []  # (due ns, seq, client order id): arrivals, settlements
        self._seq = 0
        self._trades = 0

    # -- driver hooks ------------------------------------------------------------------------

    def on_market(self, event: Event) -> None:
        """Session changes go to the market hours; reference prices to the `LastPrice` sources."""
        if type(event) is MarketStatus:
            self.hours.observe(event)
            return
        for feed in self._feeds:
            feed.observe(event)

    def on_time(self, now_ns: int) -> None:
        """Process arrivals and settlements due at or before `now_ns`, in time order."""
        while self._due and self._due[0][0] <= now_ns:
            _, _, client_order_id = heapq.heappop(self._due)
            record = self._requests[client_order_id]
            if record.status is OrderStatus.NEW:
                self.emit(self._arrive(record))
            elif record.status is OrderStatus.ACCEPTED:
                self._settle(record)

    # -- venue port --------------------------------------------------------------------------

    async def submit(self, request: Request) -> OrderUpdate:
        """Check a mint or redeem; return REJECTED, ACCEPTED (zero latency) or NEW (arrives later)."""
        if not isinstance(request, MintRequest | RedeemRequest):
            return self.reject(
                request,
                f"request: {self.name} takes MintRequest or RedeemRequest, got {type(request).__name__}",
            )
        if request.venue != self.name:
            return self.reject(request, f"venue: request for {request.venue!r} sent to {self.name!r}")
        if request.client_order_id in self._requests:
            return self.reject(request, f"client_order_id: {request.client_order_id!r} already used")
        issued = self.tokens.get(request.token)
        if issued is None:
            return self.reject(
                request,
                f"token: {request.token!r} is not issued by {self.name} (issues {sorted(self.tokens)})",
            )
        is_mint = isinstance(request, MintRequest)
        if isinstance(request, MintRequest):
            cash_field, cash = "pay_asset", request.pay_asset
        else:
            cash_field, cash = "receive_asset", request.receive_asset
        if cash != issued.pair.quote:
            return self.reject(
                request, f"{cash_field}: {cash!r}, but {issued.token.id} settles in {issued.pair.quote!r}"
            )
        try:
            issued.token.to_base_units(request.quantity)
        except InvalidInput:
            return self.reject(
                request,
                f"quantity: {request.quantity} is finer than 1e-{issued.token.decimals} {issued.token.id}",
            )
        if request.quantity < self.config.min_quantity:
            return self.reject(
                request,
                f"quantity: {request.quantity} below the minimum {self.config.min_quantity} {request.token}",
            )
        record = _Request(request, issued, Side.BUY if is_mint else Side.SELL)
        self._requests[request.client_order_id] = record
        if self.config.latency_ns == 0:
            return self._arrive(record)
        self._schedule(self.clock.now_ns() + self.config.latency_ns, record)
        return self.update(request.client_order_id, OrderStatus.NEW)

    async def cancel(self, client_order_id: str) -> OrderUpdate:
        """Issuer requests cannot be cancelled: answers with the request's current status and why."""
        record = self._requests.get(client_order_id)
        if record is None:
            return self.update(
                client_order_id, OrderStatus.REJECTED, f"client_order_id: {client_order_id!r} unknown"
            )
        return self.update(
            client_order_id, record.status, f"cancel: {self.name} cannot cancel a {record.kind} request"
        )

    async def snapshot(self) -> VenueState:
        """Balances at the issuer and the requests not yet settled."""
        open_orders = tuple(
            self.update(cid, r.status) for cid, r in self._requests.items() if not r.status.is_terminal
        )
        return VenueState(self.name, self.clock.now_ns(), self.ledger.balances(), open_orders)

    def deposit(self, asset: str, amount: Decimal) -> None:
        """Credit `amount` (> 0) of `asset` to the account at the issuer (mirror it in the portfolio)."""
        self.ledger.deposit(asset, amount)

    # -- model -------------------------------------------------------------------------------

    def fee(self, notional: Decimal, side: Side) -> Decimal:
        """Fee in the cash asset: `notional x bps / 10000` rounded up to `cash_quantum`, >= `min_fee`."""
        bps = self.config.mint_fee_bps if side is Side.BUY else self.config.redeem_fee_bps
        with localcontext(MONEY):
            return max(round_up(notional * bps / BPS, self.config.cash_quantum), self.config.min_fee)

    def _token_price(self, issued: IssuedToken, now: int) -> Decimal | str:
        """Stock price x multiplier in force at `now`, or why there is none."""
        point = issued.price()
        underlying = issued.token.underlying
        if point is None:
            return f"price: no reference price of {underlying} yet"
        age = now - point.ts
        if self.config.max_price_age_ns is not None and age > self.config.max_price_age_ns:
            return (
                f"price: reference price of {underlying} is {age} ns old, max {self.config.max_price_age_ns}"
            )
        with localcontext(MONEY):
            return point.price * issued.token.multiplier.at(now)

    def _amounts(self, record: _Request, price: Decimal) -> tuple[Decimal, Decimal, dict[str, Decimal]]:
        """`(notional, fee, balance deltas)` of settling `record` at token `price`."""
        quantity = record.request.quantity
        token, cash = record.issued.token.id, record.issued.pair.quote
        with localcontext(MONEY):
            notional = round_half_even(price * quantity, self.config.cash_quantum)
            fee = self.fee(notional, record.side)
            if record.side is Side.BUY:
                deltas = {cash: -(notional + fee), token: quantity}
            else:
                deltas = {token: -quantity, cash: notional - fee}
        return notional, fee, deltas

    def _arrive(self, record: _Request) -> OrderUpdate:
        """The request reaches the issuer now: window, price, minimums, funds; ACCEPTED or REJECTED."""
        now = self.clock.now_ns()
        request = record.request
        try:
            session = self.hours.session_at(now)
            settle_ns = now + self.config.delay_ns
            if self.config.next_business_day_at is not None:
                settle_ns = max(
                    settle_ns, self.hours.next_trading_day_at(now, self.config.next_business_day_at)
                )
        except InvalidInput as exc:
            return self._refuse(record, f"ts: {exc}")
        if session not in self.config.sessions:
            allowed = ", ".join(sorted(s.value for s in self.config.sessions))
            return self._refuse(
                record, f"session: {record.kind} requests are accepted only in {allowed}; now {session.value}"
            )
        price = self._token_price(record.issued, now)
        if isinstance(price, str):
            return self._refuse(record, price)
        notional, _, deltas = self._amounts(record, price)
        cash = record.issued.pair.quote
        if notional <= 0 or notional < self.config.min_notional:
            return self._refuse(
                record, f"notional: {notional} {cash} below the minimum {self.config.min_notional} {cash}"
            )
        # Reserve what settlement will take: the mint's estimated cost, the redeem's tokens.
        spend = {asset: -delta for asset, delta in deltas.items() if delta < 0}
        short = self.ledger.reserve_all(spend)
        if short is not None:
            return self._refuse(record, f"{short} to {record.kind} {request.quantity} {request.token}")
        record.reserved = spend
        if self.config.price_at == "request":
            record.locked_price = price
        record.status = OrderStatus.ACCEPTED
        record.settle_ns = settle_ns
        self._schedule(settle_ns, record)
        return self.update(request.client_order_id, OrderStatus.ACCEPTED)

    def _settle(self, record: _Request) -> None:
        """Settle an accepted request now: one Fill and a FILLED update, or CANCELLED with the reason."""
        now = self.clock.now_ns()
        request = record.request
        price = (
            record.locked_price if record.locked_price is not None else self._token_price(record.issued, now)
        )
        if isinstance(price, str):
            self._give_up(record, f"{price} at settlement")
            return
        notional, fee, deltas = self._amounts(record, price)
        short = "notional: rounds to 0" if notional <= 0 else self.ledger.settle(deltas, record.reserved)
        if short is not None:
            self._give_up(record, f"{short} at settlement")
            return
        record.status = OrderStatus.FILLED
        self._trades += 1
        cash = record.issued.pair.quote
        self.emit(
            Fill(
                now,
                self.name,
                record.issued.pair.id,
                request.client_order_id,
                record.side,
                price,
                request.quantity,
                fee,
                cash,
                Liquidity.TAKER,
                f"{self.name}-{self._trades}",
                notional,
            )
        )
        self.emit(
            OrderUpdate(
                now, self.name, request.client_order_id, OrderStatus.FILLED, "", request.quantity, price
            )
        )

    def _refuse(self, record: _Request, reason: str) -> OrderUpdate:
        record.status = OrderStatus.REJECTED
        return self.reject(record.request, reason)

    def _give_up(self, record: _Request, reason: str) -> None:
        """Cancel an accepted request that cannot settle; its reservation is returned."""
        self.ledger.release(record.reserved)
        record.status = OrderStatus.CANCELLED
        self.emit(self.update(record.request.client_order_id, OrderStatus.CANCELLED, reason))

    def _schedule(self, at_ns: int, record: _Request) -> None:
        heapq.heappush(self._due, (at_ns, self._seq, record.request.client_order_id))
        self._seq += 1
        self.wake_at(at_ns)
