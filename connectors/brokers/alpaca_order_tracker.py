"""Exactly-once fills from Alpaca order snapshots, whichever way they arrive.

Alpaca reports an order's progress as cumulative state (`filled_qty`, `filled_avg_price`,
`status`) on every REST answer and every trade-updates message. The tracker keeps, per client
order id, the cumulative fill it has already turned into `Fill` events; a snapshot that carries
more filled quantity yields one `Fill` for the difference, and a snapshot that carries no more
(a replayed message, a REST answer after the websocket already told us, an older message that
arrives late) yields none. So a fill that happened while the socket was down is recovered from the
REST reconcile, once, and a fill seen on both paths counts once.

Price of a recovered fill: when the snapshot came with the execution's own `qty` and `price`
(a `fill`/`partial_fill` message whose `qty` equals the missing quantity) those are used;
otherwise the price is implied by the averages: `(avg_new * filled_new - avg_old * filled_old) /
(filled_new - filled_old)`, which is exact for the executions it merges (their quantity-weighted
mean).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from core.enums import Liquidity, OrderStatus, Side
from core.errors import InvalidInput
from core.events import Fill, OrderUpdate
from core.money import MONEY

ZERO = Decimal(0)

STATUS_MAP: dict[str, OrderStatus] = {
    "new": OrderStatus.ACCEPTED,
    "accepted": OrderStatus.ACCEPTED,
    "pending_new": OrderStatus.ACCEPTED,
    "accepted_for_bidding": OrderStatus.ACCEPTED,
    "pending_cancel": OrderStatus.ACCEPTED,
    "pending_replace": OrderStatus.ACCEPTED,
    "replaced": OrderStatus.ACCEPTED,
    "held": OrderStatus.ACCEPTED,
    "calculated": OrderStatus.ACCEPTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "done_for_day": OrderStatus.EXPIRED,
    "expired": OrderStatus.EXPIRED,
    "canceled": OrderStatus.CANCELLED,
    "stopped": OrderStatus.ACCEPTED,
    "rejected": OrderStatus.REJECTED,
    "suspended": OrderStatus.ACCEPTED,
}
"""Alpaca order status -> the project's status."""


def parse_rfc3339_ns(text: str) -> int:
    """`2021-02-22T15:51:45.335689322Z` (or with `+00:00`) -> integer ns since the epoch, exact."""
    if not isinstance(text, str) or "T" not in text:
        raise InvalidInput("timestamp", text, "not an RFC 3339 time")
    body, offset = text, "+00:00"
    if body.endswith("Z"):
        body = body[:-1]
    elif len(body) > 6 and body[-6] in "+-" and body[-3] == ":":
        body, offset = body[:-6], body[-6:]
    whole, _, frac = body.partition(".")
    if len(frac) > 9 or (frac and not frac.isdigit()):
        raise InvalidInput("timestamp", text, "fraction must be up to 9 digits")
    try:
        dt = datetime.fromisoformat(whole + offset)
    except ValueError:
        raise InvalidInput("timestamp", text, "not an RFC 3339 time") from None
    seconds = int((dt - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    return seconds * 1_000_000_000 + int(frac.ljust(9, "0") or 0)


def _decimal(body: dict[str, Any], name: str) -> Decimal | None:
    raw = body.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise InvalidInput(name, raw, "not a decimal number") from None
    if not value.is_finite():
        raise InvalidInput(name, raw, "must be finite")
    return value


@dataclass(slots=True)
class _Known:
    symbol: str
    side: Side
    venue_order_id: str
    filled: Decimal = ZERO
    average: Decimal | None = None
    status: OrderStatus = OrderStatus.NEW


class OrderTracker:
    """Turns Alpaca order snapshots into the `OrderUpdate` and `Fill` events not yet reported."""

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self._known: dict[str, _Known] = {}

    def open_orders(self) -> dict[str, str]:
        """Client order id -> Alpaca order id of every order not yet in a terminal state."""
        return {cid: k.venue_order_id for cid, k in self._known.items() if not k.status.is_terminal}

    def adopt(
        self,
        client_order_id: str,
        symbol: str,
        side: Side,
        venue_order_id: str,
        filled: Decimal,
        average: Decimal | None,
        status: OrderStatus,
    ) -> None:
        """Know an order from before a restart with what was already reported of it (from the journal).

        Without this a restarted connector would report the order's whole filled quantity again.
        """
        if filled < 0 or (filled > 0 and average is None):
            raise InvalidInput("filled", str(filled), "must be >= 0, with an average price when > 0")
        self._known[client_order_id] = _Known(symbol, side, venue_order_id, filled, average, status)

    def filled(self, client_order_id: str) -> Decimal:
        """Cumulative quantity already reported as fills for this order (0 if unknown)."""
        known = self._known.get(client_order_id)
        return ZERO if known is None else known.filled

    def apply(
        self,
        order: dict[str, Any],
        ts: int,
        *,
        execution: tuple[Decimal, Decimal] | None = None,
        reason: str = "",
    ) -> list[Fill | OrderUpdate]:
        """Events for the news in `order` (an Alpaca order JSON) at `ts` ns.

        `execution` is `(qty, price)` of the message's own execution, when it has one. Raises
        `InvalidInput` naming the field on a malformed snapshot (nothing is changed then).
        """
        cid = str(order.get("client_order_id") or "")
        if not cid:
            raise InvalidInput("order.client_order_id", order.get("client_order_id"), "missing")
        status = STATUS_MAP.get(str(order.get("status")))
        if status is None:
            raise InvalidInput("order.status", order.get("status"), "unknown Alpaca order status")
        filled = _decimal(order, "filled_qty") or ZERO
        average = _decimal(order, "filled_avg_price")
        known = self._known.get(cid)
        if known is None:
            side_raw = order.get("side")
            if side_raw not in ("buy", "sell"):
                raise InvalidInput("order.side", side_raw, "must be buy or sell")
            known = _Known(str(order.get("symbol", "")), Side(side_raw), str(order.get("id", "")))
            self._known[cid] = known
        events: list[Fill | OrderUpdate] = []
        if filled > known.filled:
            if average is None:
                raise InvalidInput("order.filled_avg_price", None, f"missing with filled_qty {filled}")
            delta = filled - known.filled
            with localcontext(MONEY):
                if execution is not None and execution[0] == delta:
                    price = execution[1]
                else:
                    price = (average * filled - (known.average or ZERO) * known.filled) / delta
            events.append(
                Fill(
                    ts,
                    self.venue,
                    known.symbol,
                    cid,
                    known.side,
                    price,
                    delta,
                    ZERO,  # Alpaca charges no commission on US equities
                    "USD",
                    Liquidity.TAKER,
                    # Named by the cumulative quantity it brings the order to: the same id after a restart.
                    f"{known.venue_order_id}@{filled.normalize():f}",
                )
            )
            known.filled, known.average = filled, average
        elif filled < known.filled:
            return []  # an older snapshot arriving late: it tells nothing new
        # Status only moves forward: a late "new" after "partially_filled" is ignored.
        if status is not known.status and not known.status.is_terminal:
            if not (status is OrderStatus.ACCEPTED and known.status is OrderStatus.PARTIALLY_FILLED):
                known.status = status
                events.append(
                    OrderUpdate(
                        ts,
                        self.venue,
                        cid,
                        status,
                        known.venue_order_id,
                        known.filled,
                        known.average,
                        reason,
                    )
                )
        elif events:
            events.append(
                OrderUpdate(
                    ts, self.venue, cid, known.status, known.venue_order_id, known.filled, known.average
                )
            )
        return events
