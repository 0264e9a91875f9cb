"""Order requests, the order state machine and idempotent client order ids.

Requests are what a strategy hands to `ctx.submit`; they are immutable and validated on creation,
so a bad request fails in the strategy's own call with the field and value named. An `Order` is
the engine's mutable record of one request's life; it moves only along `TRANSITIONS`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.errors import DuplicateOrderId, IllegalTransition, InvalidInput

_S = OrderStatus
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    _S.NEW: frozenset({_S.ACCEPTED, _S.REJECTED, _S.CANCELLED, _S.EXPIRED, _S.PARTIALLY_FILLED, _S.FILLED}),
    _S.ACCEPTED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED, _S.EXPIRED}),
    _S.PARTIALLY_FILLED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED, _S.EXPIRED}),
    _S.FILLED: frozenset(),
    _S.CANCELLED: frozenset(),
    _S.REJECTED: frozenset(),
    _S.EXPIRED: frozenset(),
}
"""Legal moves. NEW may fill directly (an IOC or a swap can fill before any acknowledgement)."""


def _require_positive(name: str, value: Decimal | int) -> None:
    if not value > 0:
        raise InvalidInput(name, value, "must be > 0")


def _require_id(name: str, value: str) -> None:
    if not value or not value.isprintable() or len(value) > 64:
        raise InvalidInput(name, value, "must be 1..64 printable characters")


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order on a book venue (exchange or broker); quantity in base units of the instrument."""

    client_order_id: str
    venue: str
    instrument: str
    side: Side
    quantity: Decimal
    order_type: OrderType = OrderType.LIMIT
    price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    reduce_only: bool = False
    extended_hours: bool = False

    def __post_init__(self) -> None:
        _require_id("client_order_id", self.client_order_id)
        _require_positive("quantity", self.quantity)
        if self.order_type is OrderType.LIMIT:
            if self.price is None:
                raise InvalidInput("price", None, "a limit order needs a price")
            _require_positive("price", self.price)
        elif self.price is not None:
            raise InvalidInput("price", self.price, "a market order takes no price")
        if self.post_only and (
            self.order_type is OrderType.MARKET or self.time_in_force is not TimeInForce.GTC
        ):
            raise InvalidInput("post_only", True, "needs a GTC limit order")


@dataclass(frozen=True, slots=True)
class SwapRequest:
    """A swap on an AMM pool, amounts in integer base units of the tokens.

    Exact input when `amount_in` is set (then `min_amount_out` bounds slippage); exact output when
    `amount_out` is set (then `max_amount_in` does). `deadline_ns` is absolute time.
    """

    client_order_id: str
    venue: str
    pool: str
    token_in: str
    token_out: str
    amount_in: int | None = None
    amount_out: int | None = None
    min_amount_out: int = 0
    max_amount_in: int | None = None
    deadline_ns: int | None = None

    def __post_init__(self) -> None:
        _require_id("client_order_id", self.client_order_id)
        if (self.amount_in is None) == (self.amount_out is None):
            raise InvalidInput("amount_in", self.amount_in, "set exactly one of amount_in and amount_out")
        if self.amount_in is not None:
            _require_positive("amount_in", self.amount_in)
        if self.amount_out is not None:
            _require_positive("amount_out", self.amount_out)
        if self.min_amount_out < 0:
            raise InvalidInput("min_amount_out", self.min_amount_out, "must be >= 0")
        if self.token_in == self.token_out:
            raise InvalidInput("token_out", self.token_out, "must differ from token_in")


@dataclass(frozen=True, slots=True)
class MintRequest:
    """Ask the issuer to mint `quantity` tokens, paying `pay_asset` (cash or the share)."""

    client_order_id: str
    venue: str
    token: str
    quantity: Decimal
    pay_asset: str = "USD"

    def __post_init__(self) -> None:
        _require_id("client_order_id", self.client_order_id)
        _require_positive("quantity", self.quantity)


@dataclass(frozen=True, slots=True)
class RedeemRequest:
    """Ask the issuer to redeem `quantity` tokens for `receive_asset`."""

    client_order_id: str
    venue: str
    token: str
    quantity: Decimal
    receive_asset: str = "USD"

    def __post_init__(self) -> None:
        _require_id("client_order_id", self.client_order_id)
        _require_positive("quantity", self.quantity)


Request = OrderRequest | SwapRequest | MintRequest | RedeemRequest
"""Anything a strategy may submit."""


@dataclass(slots=True)
class Order:
    """The engine's record of one request: status, filled quantity and average price."""

    request: Request
    status: OrderStatus = OrderStatus.NEW
    filled_quantity: Decimal = Decimal(0)
    average_price: Decimal | None = None
    venue_order_id: str = ""
    reason: str = ""
    history: list[OrderStatus] = field(default_factory=lambda: [OrderStatus.NEW])

    @property
    def client_order_id(self) -> str:
        """The id the request was submitted under."""
        return self.request.client_order_id

    def transition(self, target: OrderStatus, reason: str = "") -> None:
        """Move to `target`, or raise `IllegalTransition` and leave the order unchanged."""
        if target not in TRANSITIONS[self.status]:
            raise IllegalTransition(self.client_order_id, self.status.value, target.value)
        self.status = target
        self.history.append(target)
        if reason:
            self.reason = reason

    def apply_fill(self, quantity: Decimal, price: Decimal, total_quantity: Decimal) -> None:
        """Add a fill of `quantity` at `price` out of an order of `total_quantity`.

        Refuses overfills and fills on a finished order, leaving the order unchanged.
        """
        _require_positive("fill.quantity", quantity)
        new_filled = self.filled_quantity + quantity
        if new_filled > total_quantity:
            raise InvalidInput("fill.quantity", quantity, f"overfills order {self.client_order_id}")
        target = OrderStatus.FILLED if new_filled == total_quantity else OrderStatus.PARTIALLY_FILLED
        self.transition(target)
        previous_cost = (self.average_price or Decimal(0)) * self.filled_quantity
        self.filled_quantity = new_filled
        self.average_price = (previous_cost + price * quantity) / new_filled


class ClientOrderIds:
    """Deterministic client order ids `<prefix>-<n>`: reproducible in backtests, unique per prefix.

    A live bot passes a prefix that includes its start time so ids never repeat across restarts.
    """

    def __init__(self, prefix: str, start: int = 1) -> None:
        _require_id("prefix", prefix)
        self._prefix = prefix
        self._counter = itertools.count(start)

    def next(self) -> str:
        """The next unused id."""
        return f"{self._prefix}-{next(self._counter)}"


class OrderRegistry:
    """Orders by client order id, with idempotent submission.

    Submitting the same request twice returns the existing order (a retry after a timeout must not
    send a second order); reusing an id for a different request raises `DuplicateOrderId`.
    """

    def __init__(self) -> None:
        self._orders: dict[str, Order] = {}

    def register(self, request: Request) -> tuple[Order, bool]:
        """Return `(order, created)`: `created` is False when this exact request was seen before."""
        existing = self._orders.get(request.client_order_id)
        if existing is not None:
            if existing.request != request:
                raise DuplicateOrderId(request.client_order_id)
            return existing, False
        order = Order(request)
        self._orders[request.client_order_id] = order
        return order, True

    def get(self, client_order_id: str) -> Order:
        """The order with this id; `InvalidInput` names an unknown id."""
        try:
            return self._orders[client_order_id]
        except KeyError:
            raise InvalidInput("client_order_id", client_order_id, "unknown order") from None

    def open_orders(self) -> list[Order]:
        """Orders not yet in a terminal state, in submission order."""
        return [o for o in self._orders.values() if not o.status.is_terminal]

    def __len__(self) -> int:
        return len(self._orders)

    def __iter__(self) -> Iterator[Order]:
        return iter(self._orders.values())
