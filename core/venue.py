"""The venue port: the one contract live connectors and simulated venues both implement.

Market data comes out of `stream()`; execution goes in through `submit`/`cancel`; `snapshot()`
returns what the venue holds for us so the engine can reconcile after a restart or reconnect.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol, runtime_checkable

from core.events import Event, OrderUpdate
from core.orders import Request


@dataclass(frozen=True, slots=True)
class PendingTransaction:
    """An on-chain transaction sent but not yet final."""

    tx_hash: str
    nonce: int
    client_order_id: str


@dataclass(frozen=True, slots=True)
class VenueState:
    """What a venue holds for us: balances per asset, open orders, pending transactions."""

    venue: str
    ts: int
    balances: dict[str, Decimal] = field(default_factory=dict)
    open_orders: tuple[OrderUpdate, ...] = ()
    pending_transactions: tuple[PendingTransaction, ...] = ()


@runtime_checkable
class Venue(Protocol):
    """A market-data source and execution endpoint (live connector or simulated venue)."""

    name: str

    def stream(self) -> AsyncIterator[Event]:
        """Market-data and execution events from this venue, in the order they occurred."""
        ...

    async def submit(self, request: Request) -> OrderUpdate:
        """Send a request; the returned update is the venue's first acknowledgement (or rejection)."""
        ...

    async def cancel(self, client_order_id: str) -> OrderUpdate:
        """Cancel an open order by client order id."""
        ...

    async def snapshot(self) -> VenueState:
        """Balances, open orders and pending transactions as the venue sees them now."""
        ...
