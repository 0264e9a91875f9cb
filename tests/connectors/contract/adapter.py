"""What the shared venue contract needs of each venue family: a `VenueAdapter`.

An adapter owns one venue and its counterpart (a simulated venue and its clock, or a live connector
and its local emulator or anvil). It knows how to make a valid request (one that fills in full
once time passes) and an invalid one (with the request field its refusal must name), how to let
time pass for the venue (move a simulated clock, or give a live connector's loop a turn), how the
venue delivers fills (`events`: the venue's outbox, or its `stream()` drained in the background),
and which assets its `snapshot()` balances track.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from decimal import Decimal, localcontext
from typing import Any, ClassVar

from core.enums import Side
from core.events import Event, Fill
from core.money import MONEY
from core.orders import Request
from core.venue import Venue

WAIT_S = 30.0  # a guard against a hang, never a timing assertion


class StreamCollector:
    """Drains a live venue's `stream()` in the background into `events`."""

    def __init__(self, venue: Any) -> None:
        self.events: list[Event] = []
        self._stream = venue.stream()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self._stream:
            self.events.append(event)

    async def close(self) -> None:
        """Stop draining and close the stream."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


class VenueAdapter(ABC):
    """One venue under the contract (see the module docstring).

    `tracked` are the assets `snapshot().balances` reports that a fill of the valid request moves;
    `pairs` maps a fill's instrument to its (base, quote) assets.
    """

    family: str = ""
    venue: Venue
    tracked: frozenset[str] = frozenset()
    pairs: ClassVar[dict[str, tuple[str, str]]] = {}
    known_gaps: ClassVar[dict[str, str]] = {}  # test name -> why this venue fails it today (strict xfail)

    @abstractmethod
    def valid_request(self, client_order_id: str) -> Request:
        """A request the venue accepts and fills in full once time passes."""

    @abstractmethod
    def invalid_request(self, client_order_id: str) -> tuple[Request, str]:
        """A request the venue must refuse, and the request field its reason must name."""

    @abstractmethod
    async def pass_time(self) -> None:
        """Let the venue make progress: one step of a simulated clock, or a turn of a live loop."""

    @abstractmethod
    def events(self) -> list[Event]:
        """Every event the venue produced so far (fills, updates, market data), in order."""

    async def close(self) -> None:
        """Stop whatever the adapter started."""
        return None

    async def settle(self, condition: Callable[[list[Event]], bool], what: str) -> list[Event]:
        """Let time pass until `condition(events())` holds (a guard fails the test on a hang)."""
        async with asyncio.timeout(WAIT_S):
            while not condition(self.events()):
                await self.pass_time()
        return self.events()

    def balance_change(self, fill: Fill) -> dict[str, Decimal]:
        """What `fill` moves in the tracked balances: base +/- quantity, quote -/+ notional, fee out."""
        base, quote = self.pairs[fill.instrument]
        sign = 1 if fill.side is Side.BUY else -1
        with localcontext(MONEY):
            notional = fill.notional if fill.notional is not None else fill.quantity * fill.price
            change = {base: sign * fill.quantity, quote: -sign * notional}
            change[fill.fee_asset] = change.get(fill.fee_asset, Decimal(0)) - fill.fee
        return {asset: amount for asset, amount in change.items() if asset in self.tracked}
