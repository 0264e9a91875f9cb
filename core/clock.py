"""Clocks: one interface, a live clock for bots and a simulated clock for backtests.

Time is integer nanoseconds since the epoch, UTC. The simulated clock only moves forward, so a
replay can never hand a strategy a time earlier than one it has already seen.
"""

from __future__ import annotations

import time
from typing import Protocol

from core.errors import InvalidInput


class Clock(Protocol):
    """What the engine and strategies read time from."""

    def now_ns(self) -> int:
        """Current time, ns since the epoch, UTC."""
        ...


class LiveClock:
    """Wall-clock time from the operating system."""

    def now_ns(self) -> int:
        """Current wall-clock time, ns since the epoch, UTC."""
        return time.time_ns()


class SimulatedClock:
    """Time set by the replay driver; monotonic non-decreasing."""

    def __init__(self, start_ns: int = 0) -> None:
        if start_ns < 0:
            raise InvalidInput("start_ns", start_ns, "must be >= 0")
        self._now = start_ns

    def now_ns(self) -> int:
        """Simulated current time, ns since the epoch, UTC."""
        return self._now

    def advance_to(self, ts_ns: int) -> None:
        """Move time to `ts_ns`; moving backwards raises (it would mean look-ahead or bad data)."""
        if ts_ns < self._now:
            raise InvalidInput("ts_ns", ts_ns, f"is before the clock's current time {self._now}")
        self._now = ts_ns
