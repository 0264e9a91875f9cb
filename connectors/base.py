"""What live venue connectors share: stamped order updates, and a stream fed by a queue.

A live connector learns about our orders in two places: in `submit`/`cancel` (the venue's answer)
and in background work (a websocket, a status poller, a transaction waiting to be mined). The
second kind goes into an `EventQueue`; `stream()` yields the queue in order, side by side with the
background tasks that fill it, and ends with the error of a task that failed. `order_update` and
`rejected` build the `OrderUpdate`s every connector sends, so a refusal always carries the field
and the value in `reason` and never an exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

from core.enums import OrderStatus
from core.events import Event, OrderUpdate

ZERO = Decimal(0)


def order_update(
    ts: int,
    venue: str,
    client_order_id: str,
    status: OrderStatus,
    reason: str = "",
    *,
    venue_order_id: str = "",
    fee: Decimal = ZERO,
    fee_asset: str = "",
) -> OrderUpdate:
    """An `OrderUpdate` without execution (no filled quantity); `fee` is a charge such as burnt gas."""
    return OrderUpdate(ts, venue, client_order_id, status, venue_order_id, ZERO, None, reason, fee, fee_asset)


def rejected(
    ts: int,
    venue: str,
    client_order_id: str,
    reason: str,
    *,
    venue_order_id: str = "",
    fee: Decimal = ZERO,
    fee_asset: str = "",
) -> OrderUpdate:
    """A REJECTED update; `reason` names the field and value ("pool: 'X' is not traded here")."""
    return order_update(
        ts,
        venue,
        client_order_id,
        OrderStatus.REJECTED,
        reason,
        venue_order_id=venue_order_id,
        fee=fee,
        fee_asset=fee_asset,
    )


class EventQueue:
    """Events produced outside `stream()`, handed to it in the order they were put."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue()

    def put(self, event: Event) -> None:
        """Queue one event for the stream."""
        self._queue.put_nowait(event)

    def __len__(self) -> int:
        return self._queue.qsize()

    async def stream(self, tasks: Sequence[asyncio.Task[None]] = ()) -> AsyncIterator[Event]:
        """Yield queued events forever while `tasks` run; re-raise the first task error.

        The tasks are cancelled when the iteration stops (the consumer closes the generator).
        """
        getter: asyncio.Future[Event] | None = None
        try:
            while True:
                getter = asyncio.ensure_future(self._queue.get())
                done, _ = await asyncio.wait([getter, *tasks], return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                    continue
                for task in tasks:
                    if task.done() and not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
                tasks = [task for task in tasks if not task.done()]
                getter.cancel()
        finally:
            pending: list[asyncio.Future[Any]] = list(tasks)
            if getter is not None and not getter.done():
                pending.append(getter)
            for future in pending:
                future.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
