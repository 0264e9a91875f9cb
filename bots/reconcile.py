"""Reconciliation on restart: make the journal agree with what each venue holds, without sending twice.

For every order the journal holds as not finished on a venue, the venue is asked what it knows of
that client order id (its order lookup where it has one, otherwise its snapshot's open orders):

- journaled as an intent and unknown to the venue (the process died between the intent write and
  the send, or the send never arrived): `ResendPolicy.RESEND` sends it again under the SAME
  client order id, `ResendPolicy.FAIL` marks it REJECTED ("reconcile: never reached the venue");
- known to the venue: fills the journal lacks are recorded (trade by trade where the venue lists
  our trades; otherwise one fill for the missing cumulative quantity at the price that makes the
  venue's average price exact), then the venue's state is recorded (an order the journal had
  open and the venue finished is updated);
- journaled as sent but unknown to the venue, or absent from the open orders of a venue that has
  no lookup (it finished while we were away and we cannot tell how): reported as unresolved.

Orders open at the venue that the journal never saw are recorded as `external` and reported.
Journaled pending transactions are checked against the venue's pending list (and its receipt
lookup, if it has one). The venue's balances are journaled. Reconciliation is idempotent: a second
run changes nothing and sends nothing.

Lookups are adapters (`OrderLookup`): `CcxtOrderLookup` and `AlpacaOrderLookup` for the live
connectors; the simulated venues live in memory, so after a restart they are new and the snapshot
is all there is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from enum import StrEnum
from typing import TYPE_CHECKING, Final, Protocol

import ccxt

from bots.journal import (
    TX_CONFIRMED,
    TX_DROPPED,
    TX_FAILED,
    TX_PENDING,
    Journal,
    JournaledOrder,
)
from core.enums import Liquidity, OrderStatus, Side
from core.events import Fill, OrderUpdate
from core.money import MONEY
from core.orders import OrderRequest, Request
from core.venue import Venue

if TYPE_CHECKING:
    from connectors.brokers.alpaca import AlpacaBroker
    from connectors.ccxt_exchange import CcxtExchange

FILLS_LOOKBACK_NS: Final = 60_000_000_000
"""How long before an order's intent (ns) its fills are looked for: covers clock skew to the venue."""

NEVER_SENT: Final = "reconcile: never reached the venue"


class ResendPolicy(StrEnum):
    """What to do with an intent the venue never saw."""

    RESEND = "resend"
    FAIL = "fail"


class Action(StrEnum):
    """What reconciliation did with one order or transaction."""

    RESENT = "resent"
    FAILED = "failed"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    UNRESOLVED = "unresolved"
    EXTERNAL = "external"


class OrderLookup(Protocol):
    """A venue's answers about one of our orders, by client order id."""

    async def lookup(self, request: Request) -> OrderUpdate | None:
        """The venue's current state of the order, or None if the venue never received it."""
        ...

    async def fills(self, request: Request, since_ns: int) -> Sequence[Fill] | None:
        """Our executions of this order since `since_ns` (ns); None if the venue cannot list them."""
        ...


class TransactionLookup(Protocol):
    """Where an on-chain transaction stands (receipt lookup)."""

    async def transaction_status(self, tx_hash: str) -> tuple[str, int | None]:
        """`(status, block_number)`: status one of pending, confirmed, failed, dropped."""
        ...


@dataclass(frozen=True, slots=True)
class Resolution:
    """What happened to one order (or transaction, `tx:<hash>`) and why."""

    client_order_id: str
    action: Action
    detail: str = ""


@dataclass(slots=True)
class ReconcileReport:
    """The outcome of reconciling one venue."""

    venue: str
    resolutions: list[Resolution] = field(default_factory=list)
    fills_recorded: int = 0
    balances: dict[str, Decimal] = field(default_factory=dict)

    def ids(self, action: Action) -> list[str]:
        """Client order ids that got `action`, in the order they were handled."""
        return [r.client_order_id for r in self.resolutions if r.action is action]


async def reconcile_venue(
    journal: Journal,
    venue: Venue,
    *,
    lookup: OrderLookup | None = None,
    transactions: TransactionLookup | None = None,
    policy: ResendPolicy = ResendPolicy.RESEND,
    now_ns: Callable[[], int] = time.time_ns,
) -> ReconcileReport:
    """Bring the journal in line with `venue` (the bare venue, not a `JournalingVenue`).

    Sends only in one case: an intent the venue never saw, under `ResendPolicy.RESEND`, with its
    original client order id. See the module docstring for every other case.
    """
    report = ReconcileReport(venue.name)
    state = await venue.snapshot()
    await journal.record_balances(state)
    report.balances = dict(state.balances)
    open_at_venue = {o.client_order_id: o for o in state.open_orders if o.client_order_id}

    journaled = await journal.orders(venue=venue.name, open_only=True)
    known_ids = {o.client_order_id for o in await journal.orders(venue=venue.name)}
    for order in journaled:
        if order.request is None:  # an external order: only the venue's open list speaks of it
            found = open_at_venue.get(order.client_order_id)
            if found is not None:
                await journal.record_update(found, source="reconcile")
            continue
        resolution = await _reconcile_order(
            journal, venue, order, order.request, lookup, open_at_venue, policy, now_ns, report
        )
        report.resolutions.append(resolution)

    for coid, found in open_at_venue.items():
        if coid not in known_ids:
            await journal.record_update(found, source="reconcile")
            report.resolutions.append(Resolution(coid, Action.EXTERNAL, "open at the venue, not ours"))

    pending_at_venue = {t.tx_hash for t in state.pending_transactions}
    for tx in await journal.transactions(pending_only=True):
        if tx.venue != venue.name or tx.tx_hash in pending_at_venue:
            continue
        key = f"tx:{tx.tx_hash}"
        if transactions is None:
            report.resolutions.append(
                Resolution(key, Action.UNRESOLVED, "no longer pending; no receipt lookup")
            )
            continue
        status, block = await transactions.transaction_status(tx.tx_hash)
        if status == TX_PENDING:
            report.resolutions.append(Resolution(key, Action.UNCHANGED, "still pending"))
            continue
        await journal.record_transaction(
            tx.tx_hash,
            venue=tx.venue,
            client_order_id=tx.client_order_id,
            nonce=tx.nonce,
            status=status if status in (TX_CONFIRMED, TX_FAILED, TX_DROPPED) else TX_DROPPED,
            block_number=block,
            ts=now_ns(),
        )
        report.resolutions.append(Resolution(key, Action.UPDATED, status))
    return report


async def _reconcile_order(
    journal: Journal,
    venue: Venue,
    order: JournaledOrder,
    request: Request,
    lookup: OrderLookup | None,
    open_at_venue: dict[str, OrderUpdate],
    policy: ResendPolicy,
    now_ns: Callable[[], int],
    report: ReconcileReport,
) -> Resolution:
    coid = order.client_order_id
    found = await lookup.lookup(request) if lookup is not None else open_at_venue.get(coid)
    if found is None:
        if not order.is_intent:
            why = "the venue does not know it" if lookup else "no longer open; the venue has no order lookup"
            return Resolution(coid, Action.UNRESOLVED, why)
        if policy is ResendPolicy.FAIL:
            await journal.record_update(
                OrderUpdate(now_ns(), venue.name, coid, OrderStatus.REJECTED, reason=NEVER_SENT),
                source="reconcile",
            )
            return Resolution(coid, Action.FAILED, NEVER_SENT)
        update = await venue.submit(request)
        await journal.record_update(update, source="reconcile-resend")
        # An order that filled on arrival: its fills are recorded now, not left to the stream.
        if update.filled_quantity > 0:
            report.fills_recorded += await _record_missing_fills(journal, lookup, order, request, update)
        return Resolution(coid, Action.RESENT, update.status.value)

    new_fills = await _record_missing_fills(journal, lookup, order, request, found)
    report.fills_recorded += new_fills
    changed = await journal.record_update(found, source="reconcile")
    if changed or new_fills:
        return Resolution(coid, Action.UPDATED, f"{found.status.value}, {new_fills} fill(s) recorded")
    return Resolution(coid, Action.UNCHANGED, found.status.value)


async def _record_missing_fills(
    journal: Journal,
    lookup: OrderLookup | None,
    order: JournaledOrder,
    request: Request,
    found: OrderUpdate,
) -> int:
    """Record the order's fills the journal lacks (listed trades, else the cumulative gap)."""
    coid = order.client_order_id
    new_fills = 0
    listed = await lookup.fills(request, order.created_ns - FILLS_LOOKBACK_NS) if lookup is not None else None
    if listed is not None:
        for fill in listed:
            if fill.client_order_id == coid:
                new_fills += await journal.record_fill(fill, source="reconcile")
    else:
        missing = await _cumulative_fill(journal, request, found)
        if missing is not None:
            new_fills += await journal.record_fill(missing, source="reconcile-cumulative")
    return new_fills


async def _cumulative_fill(journal: Journal, request: Request, found: OrderUpdate) -> Fill | None:
    """One fill for what the venue reports filled beyond the journal's fills, priced so that the
    journal's average equals the venue's; None when nothing is missing or the venue gives no price."""
    if not isinstance(request, OrderRequest) or found.average_price is None:
        return None
    fills = await journal.fills(client_order_id=request.client_order_id)
    with localcontext(MONEY):
        have = sum((f.quantity for f in fills), Decimal(0))
        missing = found.filled_quantity - have
        if missing <= 0:
            return None
        cost = sum((f.price * f.quantity for f in fills), Decimal(0))
        price = (found.average_price * found.filled_quantity - cost) / missing
    return Fill(
        ts=found.ts,
        venue=found.venue,
        instrument=request.instrument,
        client_order_id=request.client_order_id,
        side=request.side,
        price=price,
        quantity=missing,
        fee=Decimal(0),  # the venue did not say; a later stream fill with its trade id is distinct
        fee_asset="",
        liquidity=Liquidity.TAKER,
        trade_id=f"reconcile:{request.client_order_id}:{found.filled_quantity}",
    )


# -- lookups of the live connectors -------------------------------------------------------------


class CcxtOrderLookup:
    """Order lookup by client order id and our trades, through a `CcxtExchange`'s ccxt client."""

    def __init__(self, exchange: CcxtExchange) -> None:
        self.exchange = exchange

    async def lookup(self, request: Request) -> OrderUpdate | None:
        """The exchange's order with this client order id (queried by it), or None."""
        if not isinstance(request, OrderRequest) or request.instrument not in self.exchange.markets:
            return None
        await self.exchange._ensure_markets()
        symbol = self.exchange.markets[request.instrument]
        # Remember the symbol, so the connector can cancel the order after the restart too.
        self.exchange._order_symbols.setdefault(request.client_order_id, symbol)
        order = await self.exchange._retrying(
            f"lookup {request.client_order_id}",
            lambda: self.exchange._lookup(symbol, request.client_order_id),
        )
        return None if order is None else self.exchange._update(order, request.client_order_id)

    async def fills(self, request: Request, since_ns: int) -> Sequence[Fill] | None:
        """Our trades of the order's instrument since `since_ns`, this order's only."""
        if not isinstance(request, OrderRequest):
            return None
        try:
            fills = await self.exchange.fills_since(since_ns)
        except ccxt.NotSupported:
            return None
        return [f for f in fills if f.client_order_id == request.client_order_id]


class AlpacaOrderLookup:
    """Order lookup by client order id through an `AlpacaBroker` (`/v2/orders:by_client_order_id`).

    Alpaca lists no trades per order here, so missing fills are derived from the cumulative state.
    """

    def __init__(self, broker: AlpacaBroker) -> None:
        self.broker = broker

    async def lookup(self, request: Request) -> OrderUpdate | None:
        """Alpaca's order with this client order id, or None if it never took it."""
        body = await self.broker._lookup(request.client_order_id)
        if body is None:
            return None
        found = self.broker._update(body)
        if not found.status.is_terminal:
            # The reconcile brings the journal to this state: the restarted broker takes the order
            # over from there, so its stream reports only the fills after it.
            self.broker.adopt_order(
                request.client_order_id,
                str(body.get("symbol", "")),
                Side(str(body.get("side"))),
                found.venue_order_id,
                found.filled_quantity,
                found.average_price,
                found.status,
            )
        return found

    async def fills(self, request: Request, since_ns: int) -> Sequence[Fill] | None:
        """None: fills come from the cumulative filled quantity and average price."""
        return None
