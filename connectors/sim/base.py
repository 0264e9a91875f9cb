"""What every simulated venue shares: the clock it reads, its outbox, its wake-ups.

A simulated venue implements the venue port (`core.venue.Venue`: `submit`, `cancel`,
`snapshot`) plus three hooks the drivers call:

- `on_market(event)`: a recorded market event for this venue arrives (the venue sees it before any
  strategy does); the venue updates its view of the market and matches what rests against it.
- `wake_at(at_ns)` / `on_time(now_ns)`: a venue asks to be woken for work due without market data
  (an order arriving after its latency, a mint settling after its delay, funding accruing); the
  driver calls `on_time` at that time (a venue must tolerate a wake-up with nothing left to do).
- `emit(event)`: the events the venue produces (our `Fill`s and `OrderUpdate`s, and market events
  its own state changes cause, such as a `PoolState` after our swap) go to an outbox, in order;
  the driver shares one outbox among its venues (`attach`) and hands its events to the engine.

Time comes from the engine's clock, so the same venue runs on a simulated clock in a backtest
and on the wall clock in paper trading. Money inside venues is exact: `Decimal` on books, integer
base units in pools.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

from core.clock import Clock
from core.enums import OrderStatus
from core.events import Event, OrderUpdate
from core.orders import Request
from core.venue import VenueState


class SimVenue(ABC):
    """Base of simulated venues; see the module docstring for the driver protocol."""

    def __init__(self, name: str, clock: Clock) -> None:
        self.name = name
        self.clock = clock
        self._outbox: list[Event] = []
        self._wakeups: list[int] = []
        self._wake: Callable[[int, SimVenue], None] | None = None

    def attach(self, outbox: list[Event], wake: Callable[[int, SimVenue], None]) -> None:
        """Let a driver collect this venue's events into `outbox` and its wake-ups through `wake`."""
        outbox.extend(self._outbox)
        self._outbox = outbox
        for at_ns in self._wakeups:
            wake(at_ns, self)
        self._wakeups.clear()
        self._wake = wake

    # -- driver hooks ------------------------------------------------------------------------

    @abstractmethod
    def on_market(self, event: Event) -> None:
        """A recorded market event of this venue: update the market view, match resting orders."""

    def market_handler(self, event_type: type, instrument: str) -> Callable[[Event], None]:
        """What the driver calls for every `event_type` event of `instrument` stamped with this venue.

        A stream of one kind can be routed once: a venue may return a handler specialised to it.
        The default is `on_market`.
        """
        return self.on_market

    def watched_sources(self) -> frozenset[str]:
        """Other venues or oracle sources (event field 1) whose market events this venue also needs.

        The driver hands a venue the events stamped with its own name; a venue that prices off
        another stream (an options pool off an index feed) names those sources here.
        """
        return frozenset()

    def quiet(self, instrument: str) -> bool:
        """Whether quotes of `instrument` may be skipped but the last of a run (the replay fast path).

        True only when the venue's state after a run of quotes depends on the last one alone:
        nothing of ours rests, waits or has taken liquidity there. Venues that do not override
        this always get every quote.
        """
        return False

    def wake_at(self, at_ns: int) -> None:
        """Ask the driver to call `on_time` at `at_ns` (ns)."""
        if self._wake is None:
            self._wakeups.append(at_ns)
        else:
            self._wake(at_ns, self)

    def pending_wakeups(self) -> list[int]:
        """Wake-ups asked for before a driver attached (for drivers and tests)."""
        return sorted(self._wakeups)

    def on_time(self, now_ns: int) -> None:
        """Do the work due at or before `now_ns` (the driver set the clock to it)."""
        return None  # venues without timed work have nothing to do

    def drain(self) -> list[Event]:
        """Events produced since the last drain, in order; the outbox is emptied."""
        out = list(self._outbox)
        self._outbox.clear()
        return out

    def emit(self, event: Event) -> None:
        """Queue an event for the driver."""
        self._outbox.append(event)

    # -- venue port --------------------------------------------------------------------------

    @abstractmethod
    async def submit(self, request: Request) -> OrderUpdate:
        """Accept (or reject) a request; fills come later through the outbox."""

    @abstractmethod
    async def cancel(self, client_order_id: str) -> OrderUpdate:
        """Cancel a resting order (the reply after the order latency is modelled by the venue)."""

    @abstractmethod
    async def snapshot(self) -> VenueState:
        """Balances, open orders and pending work as the venue sees them now."""

    async def stream(self) -> AsyncIterator[Event]:
        """Simulated venues get market data from the driver, not from a stream of their own."""
        return
        yield  # pragma: no cover - makes this an async generator

    # -- helpers for subclasses --------------------------------------------------------------

    def reject(self, request: Request, reason: str) -> OrderUpdate:
        """A REJECTED update for `request`, stamped now."""
        return OrderUpdate(
            self.clock.now_ns(),
            self.name,
            request.client_order_id,
            OrderStatus.REJECTED,
            "",
            Decimal(0),
            None,
            reason,
        )

    def update(self, client_order_id: str, status: OrderStatus, reason: str = "") -> OrderUpdate:
        """An update of `status` for one of our orders, stamped now."""
        return OrderUpdate(
            self.clock.now_ns(), self.name, client_order_id, status, "", Decimal(0), None, reason
        )
