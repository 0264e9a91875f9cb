"""Test helpers for simulated venues driven by hand: New York wall-clock instants and a mini driver.

`et(...)` turns a New York local time into ns UTC (EDT = UTC-4 in June 2025, so 09:30 ET is
13:30 UTC). `Harness` plays the replay driver's part for one venue: it fires the venue's wake-ups in
time order before moving the clock on, and hands it market events.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from connectors.sim.base import SimVenue
from core.calendar import MarketCalendar
from core.clock import SimulatedClock
from core.events import Event, Fill, OrderUpdate

NY = ZoneInfo("America/New_York")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
MS = 1_000_000


def et(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> int:
    """ns UTC of a New York wall-clock time."""
    local = datetime(year, month, day, hour, minute, second, tzinfo=NY)
    return (local - EPOCH) // datetime.resolution * 1000


@functools.cache
def calendar() -> MarketCalendar:
    """The NYSE calendar for 2025-2026 (built once per test session)."""
    return MarketCalendar(start="2025-01-01", end="2026-12-31")


class Harness:
    """Drives one venue by hand: wake-ups fire in time order, the clock only moves forward."""

    def __init__(self, venue: SimVenue, clock: SimulatedClock) -> None:
        self.venue = venue
        self.clock = clock
        self.outbox: list[Event] = []
        self.wakeups: list[int] = []
        venue.attach(self.outbox, self._wake)

    def _wake(self, at_ns: int, venue: SimVenue) -> None:
        heapq.heappush(self.wakeups, at_ns)

    def run_until(self, ts_ns: int) -> None:
        """Fire the wake-ups due at or before `ts_ns`, then set the clock to `ts_ns`."""
        while self.wakeups and self.wakeups[0] <= ts_ns:
            at_ns = heapq.heappop(self.wakeups)
            self.clock.advance_to(max(at_ns, self.clock.now_ns()))
            self.venue.on_time(self.clock.now_ns())
        self.clock.advance_to(ts_ns)

    def feed(self, event: Event) -> None:
        """Deliver a market event at its ts (wake-ups due by then fire first, as in the driver)."""
        self.run_until(event[0])
        self.venue.on_market(event)

    def drain(self) -> list[Event]:
        """Events the venue emitted since the last drain."""
        out = list(self.outbox)
        self.outbox.clear()
        return out


def fills(events: Sequence[Event]) -> list[Fill]:
    """The `Fill`s among `events`, in order."""
    return [e for e in events if isinstance(e, Fill)]


def updates(events: Sequence[Event]) -> list[OrderUpdate]:
    """The `OrderUpdate`s among `events`, in order."""
    return [e for e in events if isinstance(e, OrderUpdate)]
