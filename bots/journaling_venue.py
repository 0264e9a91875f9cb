"""A venue wrapper that journals: intent before every send, the answer after, every event as it arrives.

`JournalingVenue(venue, journal)` implements the venue port itself, so the engine (or the runner)
uses it in place of the venue it wraps. It adds no behaviour of its own except one guard: a
request whose client order id the journal already holds as sent (not an intent) is not sent again;
the journaled state is returned instead. That makes a retry after a crash or a timeout safe even
when the venue itself does not deduplicate client order ids.

Venues without a stream of their own (the simulated venues, whose events a driver drains) hand
their events to `record(event)`; `stream()` does the same for venues that stream.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

from bots.journal import Journal
from core.enums import OrderStatus
from core.events import Event, OrderUpdate
from core.orders import Request
from core.venue import Venue, VenueState


class JournalingVenue:
    """`venue` with every order, answer, fill, update and balance snapshot written to `journal`.

    Args:
        venue: any venue-port implementation (live connector or simulated venue).
        journal: where to write.
        strategy_of: names the strategy that owns a client order id (for reports); None leaves
            the strategy column empty.
        now_ns: the clock stamping intents and cancels (ns since the epoch); wall clock by default.
    """

    def __init__(
        self,
        venue: Venue,
        journal: Journal,
        *,
        strategy_of: Callable[[str], str | None] | None = None,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.inner = venue
        self.journal = journal
        self.name = venue.name
        self._strategy_of = strategy_of
        self._now_ns = now_ns

    def __repr__(self) -> str:
        return f"JournalingVenue({self.name!r})"

    async def submit(self, request: Request) -> OrderUpdate:
        """Journal the intent, send, journal the answer; a send that raises is journaled and re-raised.

        An id the journal already holds as sent is not sent again: its journaled state comes back.
        """
        strategy = self._strategy_of(request.client_order_id) if self._strategy_of else None
        journaled = await self.journal.record_intent(request, strategy=strategy, ts=self._now_ns())
        if not journaled.is_intent:
            return journaled.as_update()
        try:
            update = await self.inner.submit(request)
        except BaseException as err:  # the outcome is unknown: reconciliation settles it
            await self.journal.record_send_error(request.client_order_id, err, ts=self._now_ns())
            raise
        await self.journal.record_update(update, source="submit")
        return update

    async def cancel(self, client_order_id: str) -> OrderUpdate:
        """Journal the cancel request, send it, journal the venue's answer (a refusal in the history only)."""
        await self.journal.record_cancel(client_order_id, ts=self._now_ns())
        update = await self.inner.cancel(client_order_id)
        if update.status is OrderStatus.REJECTED:
            # A refused cancel (unknown, or already finished) says nothing about the order itself.
            await self.journal.record_cancel(
                client_order_id, source="cancel_refused", reason=update.reason, ts=update.ts
            )
        else:
            await self.journal.record_update(update, source="cancel")
        return update

    async def snapshot(self) -> VenueState:
        """The venue's snapshot, with its balances journaled."""
        state = await self.inner.snapshot()
        await self.journal.record_balances(state)
        return state

    async def record(self, event: Event) -> bool:
        """Journal one event from this venue (fills, order updates, funding); True if it was new."""
        return await self.journal.record_event(event)

    async def stream(self) -> AsyncIterator[Event]:
        """The venue's events, each journaled before it is passed on (a replay is journaled once)."""
        async for event in self.inner.stream():
            await self.journal.record_event(event)
            yield event
