"""The stock market's session as a simulated venue sees it: the calendar, corrected by status events.

The `MarketCalendar` is the source of truth, so a venue knows the session at any instant (also
between events, and in paper trading where nobody replays `MarketStatus`). A `MarketStatus` event
for the calendar's exchange is accepted too: it overrides the calendar from its `ts` until its
`next_change_ts`, so a recorded unscheduled closure (a halt, a national day of mourning missing
from the calendar) is honoured. Status events for other markets are ignored.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.calendar import MARKET_TZ, MarketCalendar
from core.enums import Session
from core.events import MarketStatus

_NY = ZoneInfo(MARKET_TZ)
_EPOCH_NY = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))
_ONE_US = timedelta(microseconds=1)


class MarketHours:
    """Session in force at an instant (ns UTC): the calendar's, unless a status event overrides it.

    Args:
        calendar: the exchange calendar (its range must cover every instant asked about; outside
            it the calendar raises `core.errors.InvalidInput`, which venues turn into rejections).
    """

    def __init__(self, calendar: MarketCalendar) -> None:
        self.calendar = calendar
        self._override: MarketStatus | None = None

    def observe(self, event: MarketStatus) -> None:
        """Take a recorded session change of the calendar's exchange as in force until its next change."""
        if event.market == self.calendar.exchange:
            self._override = event

    def _override_at(self, ts_ns: int) -> MarketStatus | None:
        status = self._override
        if status is not None and status.ts <= ts_ns < status.next_change_ts:
            return status
        return None

    def session_at(self, ts_ns: int) -> Session:
        """Session in force at `ts_ns` (ns UTC)."""
        status = self._override_at(ts_ns)
        return status.session if status is not None else self.calendar.session_at(ts_ns)

    def session_end(self, ts_ns: int) -> int:
        """End (ns UTC, exclusive) of the session span in force at `ts_ns`: when it next changes."""
        status = self._override_at(ts_ns)
        return status.next_change_ts if status is not None else self.calendar.next_transition(ts_ns)[0]

    def next_trading_day_at(self, ts_ns: int, at: time) -> int:
        """Local time `at` (America/New_York) on the first trading day after the local day of `ts_ns`.

        Returns ns UTC. Raises `InvalidInput` when the search leaves the calendar's range.
        """
        day: date = self.calendar.local_date(ts_ns) + timedelta(days=1)
        while not self.calendar.is_trading_day(day):
            day += timedelta(days=1)
        return (datetime.combine(day, at, tzinfo=_NY) - _EPOCH_NY) // _ONE_US * 1000
