"""What live venue connectors share: stamped order updates, and a stream fed by a queue.

A live connector learns about our orders in two places: in `submit`/`cancel` (the venue's answer)
and in background work (a websocket, a status poller, a transaction waiting to be mined). The
second kind goes into an `EventQueue`; `stream()` yields the queue in order, side by side with the
background tasks that fill it, and ends with the error of a task that failed. `order_update` and
`rejected` build the `OrderUpdate`s every connector sends, so a refusal always carries the field
and the value in `reason` and never an exception. `swap_request_problem` is the pre-flight check of a
swap's shape that the chain venue and the simulated AMM share.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

from core.enums import OrderStatus
from core.events import Event, OrderUpdate
from core.instruments import Pool
from core.orders import SwapRequest

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


def swap_request_problem(request: SwapRequest, pool: Pool) -> str | None:
    """Why `request` is not a well-formed swap on `pool` (field, value), or None.

    Tokens must be the pool's; amounts integers in base units; the bound must match the kind of
    swap (min out for exact input, max in for exact output).
    """
    tokens = (pool.token0, pool.token1)
    if request.token_in not in tokens:
        return f"token_in: {request.token_in!r} is not a token of pool {pool.id!r} {tokens}"
    if request.token_out not in tokens:
        return f"token_out: {request.token_out!r} is not a token of pool {pool.id!r} {tokens}"
    for name in ("amount_in", "amount_out", "min_amount_out", "max_amount_in"):
        value = getattr(request, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            return f"{name}: {value!r} must be an integer number of base units"
    if request.amount_in is not None and request.max_amount_in is not None:
        return f"max_amount_in: {request.max_amount_in} applies to exact output only (use min_amount_out)"
    if request.amount_out is not None and request.min_amount_out:
        return f"min_amount_out: {request.min_amount_out} applies to exact input only (use max_amount_in)"
    if request.max_amount_in is not None and request.max_amount_in <= 0:
        return f"max_amount_in: {request.max_amount_in} must be > 0"
    return None
