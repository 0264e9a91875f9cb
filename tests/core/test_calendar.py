"""US equity market calendar, checked against the published NYSE schedule.

Expected instants are written by hand in UTC from the NYSE hours (04:00 / 09:30 / 16:00 / 20:00
New York time, 13:00 early closes) and the offsets of the day: EST = UTC-5, EDT = UTC-4
(DST 2025-03-09..2025-11-02, 2026-03-08..2026-11-01). Holidays and early closes for 2025-2026 are
copied from nyse.com's "Holidays & Trading Hours", not from exchange_calendars.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.calendar import NS_PER_HOUR, SESSIONS, MarketCalendar
from core.enums import Session
from core.errors import InvalidInput
from core.events import MarketStatus

OVERNIGHT = Session.OVERNIGHT
PRE = Session.PRE_MARKET
REGULAR = Session.REGULAR
POST = Session.POST_MARKET
WEEKEND = Session.WEEKEND
HOLIDAY = Session.HOLIDAY
CLOSED = Session.CLOSED

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NY = ZoneInfo("America/New_York")

# nyse.com, Holidays & Trading Hours (2025-01-09: National Day of Mourning for President Carter)
NYSE_HOLIDAYS = {
    date(2025, 1, 1), date(2025, 1, 9), date(2025, 1, 20), date(2025, 2, 17), date(2025, 4, 18),
    date(2025, 5, 26), date(2025, 6, 19), date(2025, 7, 4), date(2025, 9, 1), date(2025, 11, 27),
    date(2025, 12, 25),
    date(2026, 1, 1), date(2026, 1, 19), date(2026, 2, 16), date(2026, 4, 3), date(2026, 5, 25),
    date(2026, 6, 19), date(2026, 7, 3), date(2026, 9, 7), date(2026, 11, 26), date(2026, 12, 25),
    date(2027, 1, 1),
}  # fmt: skip
NYSE_EARLY_CLOSES = {
    date(2025, 7, 3),
    date(2025, 11, 28),
    date(2025, 12, 24),
    date(2026, 11, 27),
    date(2026, 12, 24),
}


def utc(text: str) -> int:
    """Hand-written UTC instant 'YYYY-MM-DDTHH:MM' -> ns since the epoch."""
    return (datetime.fromisoformat(text).replace(tzinfo=UTC) - EPOCH) // timedelta(microseconds=1) * 1000


@pytest.fixture(scope="module")
def cal() -> MarketCalendar:
    return MarketCalendar()


def assert_boundary(cal: MarketCalendar, ts: int, before: Session, after: Session) -> None:
    assert cal.session_at(ts - 1) is before
    assert cal.session_at(ts) is after
    assert cal.next_transition(ts - 1) == (ts, after)


# Tuesday 2025-11-25 (EST) and Tuesday 2025-07-15 (EDT): every boundary of an ordinary day.
@pytest.mark.parametrize(
    ("instant", "before", "after"),
    [
        ("2025-11-25T09:00", OVERNIGHT, PRE),
        ("2025-11-25T14:30", PRE, REGULAR),
        ("2025-11-25T21:00", REGULAR, POST),
        ("2025-11-26T01:00", POST, OVERNIGHT),
        ("2025-07-15T08:00", OVERNIGHT, PRE),
        ("2025-07-15T13:30", PRE, REGULAR),
        ("2025-07-15T20:00", REGULAR, POST),
        ("2025-07-16T00:00", POST, OVERNIGHT),
    ],
)
def test_regular_day_boundaries(cal: MarketCalendar, instant: str, before: Session, after: Session) -> None:
    assert_boundary(cal, utc(instant), before, after)


def test_regular_day_helpers(cal: MarketCalendar) -> None:
    assert cal.is_trading_day("2025-11-25")
    assert cal.is_trading_day(date(2025, 11, 25))
    assert not cal.is_early_close("2025-11-25")
    assert cal.regular_open_close("2025-11-25") == (utc("2025-11-25T14:30"), utc("2025-11-25T21:00"))
    assert cal.regular_open_close("2025-07-15") == (utc("2025-07-15T13:30"), utc("2025-07-15T20:00"))
    assert not cal.is_regular_open(utc("2025-11-25T14:30") - 1)
    assert cal.is_regular_open(utc("2025-11-25T14:30"))
    assert cal.is_regular_open(utc("2025-11-25T21:00") - 1)
    assert not cal.is_regular_open(utc("2025-11-25T21:00"))
    assert cal.session_span(utc("2025-11-25T18:00")) == (
        utc("2025-11-25T14:30"),
        utc("2025-11-25T21:00"),
        REGULAR,
    )
    assert cal.next_regular_open(utc("2025-11-25T14:30")) == utc("2025-11-26T14:30")
    assert cal.next_regular_open(utc("2025-11-25T14:30") - 1) == utc("2025-11-25T14:30")
    assert cal.next_regular_close(utc("2025-11-25T12:00")) == utc("2025-11-25T21:00")
    # 2025-11-26 00:30 UTC is still Tuesday evening in New York
    assert cal.local_date(utc("2025-11-26T00:30")) == date(2025, 11, 25)
    assert cal.local_date(utc("2025-11-26T05:00")) == date(2025, 11, 26)


# Friday 2025-11-28 (EST): regular until 13:00 ET, post-market 13:00-17:00, closed, weekend at 20:00.
@pytest.mark.parametrize(
    ("instant", "before", "after"),
    [
        ("2025-11-28T09:00", OVERNIGHT, PRE),
        ("2025-11-28T14:30", PRE, REGULAR),
        ("2025-11-28T18:00", REGULAR, POST),
        ("2025-11-28T22:00", POST, CLOSED),
        ("2025-11-29T01:00", CLOSED, WEEKEND),
        # Wednesday 2025-12-24: 13:00 close, then no overnight before Christmas
        ("2025-12-24T18:00", REGULAR, POST),
        ("2025-12-24T22:00", POST, CLOSED),
        ("2025-12-25T05:00", CLOSED, HOLIDAY),
        ("2025-12-26T01:00", HOLIDAY, OVERNIGHT),
        ("2026-11-27T18:00", REGULAR, POST),
        ("2026-12-24T18:00", REGULAR, POST),
    ],
)
def test_early_close_boundaries(cal: MarketCalendar, instant: str, before: Session, after: Session) -> None:
    assert_boundary(cal, utc(instant), before, after)


def test_early_close_helpers_and_parameter(cal: MarketCalendar) -> None:
    assert cal.is_early_close("2025-11-28")
    assert cal.regular_open_close("2025-11-28") == (utc("2025-11-28T14:30"), utc("2025-11-28T18:00"))
    assert cal.session_at(utc("2025-11-28T21:00")) is POST  # 16:00 ET, when post-market would normally start
    short = MarketCalendar(start="2025-11-01", end="2025-12-31", early_close_post_market_ns=2 * NS_PER_HOUR)
    assert_boundary(short, utc("2025-11-28T20:00"), POST, CLOSED)
    none = MarketCalendar(start="2025-11-01", end="2025-12-31", early_close_post_market_ns=0)
    assert_boundary(none, utc("2025-11-28T18:00"), REGULAR, CLOSED)
    assert none.session_at(utc("2025-11-25T21:00")) is POST  # normal days keep their 16:00-20:00 post-market
    with pytest.raises(InvalidInput, match="early_close_post_market_ns: must be in") as err:
        MarketCalendar(early_close_post_market_ns=8 * NS_PER_HOUR)
    assert err.value.value == 8 * NS_PER_HOUR


# Good Friday 2026-04-03 (EDT): no overnight Thursday evening, holiday all day, weekend from Saturday.
@pytest.mark.parametrize(
    ("instant", "before", "after"),
    [
        ("2026-04-02T20:00", REGULAR, POST),
        ("2026-04-03T00:00", POST, CLOSED),
        ("2026-04-03T04:00", CLOSED, HOLIDAY),
        ("2026-04-04T04:00", HOLIDAY, WEEKEND),
        ("2026-04-06T00:00", WEEKEND, OVERNIGHT),
        # Christmas Thursday 2025-12-25 (EST): holiday until 20:00 ET, then overnight into Friday
        ("2025-12-26T01:00", HOLIDAY, OVERNIGHT),
        ("2025-12-26T09:00", OVERNIGHT, PRE),
        # Martin Luther King Day, Monday 2026-01-19: the weekend runs into the holiday
        ("2026-01-19T05:00", WEEKEND, HOLIDAY),
        ("2026-01-20T01:00", HOLIDAY, OVERNIGHT),
        # Juneteenth, Friday 2026-06-19 (EDT)
        ("2026-06-19T00:00", POST, CLOSED),
        ("2026-06-19T04:00", CLOSED, HOLIDAY),
        ("2026-06-20T04:00", HOLIDAY, WEEKEND),
    ],
)
def test_holiday_boundaries(cal: MarketCalendar, instant: str, before: Session, after: Session) -> None:
    assert_boundary(cal, utc(instant), before, after)


def test_holiday_helpers(cal: MarketCalendar) -> None:
    assert cal.session_at(utc("2026-04-03T16:00")) is HOLIDAY
    assert cal.session_at(utc("2025-12-25T17:00")) is HOLIDAY
    assert cal.session_at(utc("2026-01-19T01:00")) is WEEKEND  # Sunday 20:00 ET: no overnight into MLK day
    assert not cal.is_trading_day("2026-04-03")
    assert not cal.is_trading_day(date(2025, 12, 25))
    assert not cal.is_early_close("2025-12-25")
    with pytest.raises(InvalidInput, match="day: not a trading day of XNYS, got '2026-04-03'"):
        cal.regular_open_close("2026-04-03")


def test_holidays_and_early_closes_match_the_published_schedule(cal: MarketCalendar) -> None:
    day = date(2025, 1, 1)
    while day <= date(2026, 12, 31):
        expected = day.weekday() < 5 and day not in NYSE_HOLIDAYS
        assert cal.is_trading_day(day) is expected, day
        assert cal.is_early_close(day) is (day in NYSE_EARLY_CLOSES), day
        day += timedelta(days=1)


def test_weekend(cal: MarketCalendar) -> None:
    assert cal.session_at(utc("2025-11-29T17:00")) is WEEKEND  # Saturday noon ET
    assert cal.session_at(utc("2025-11-30T17:00")) is WEEKEND  # Sunday noon ET
    assert_boundary(cal, utc("2025-12-01T01:00"), WEEKEND, OVERNIGHT)  # Sunday 20:00 ET
    assert_boundary(cal, utc("2025-12-06T01:00"), POST, WEEKEND)  # Friday 20:00 ET
    assert not cal.is_trading_day("2025-11-29")


# DST: US clocks spring forward Sunday 2025-03-09 and fall back Sunday 2025-11-02 (02:00 local).
@pytest.mark.parametrize(
    ("instant", "before", "after"),
    [
        ("2025-03-08T01:00", POST, WEEKEND),  # Friday 20:00 EST
        ("2025-03-10T00:00", WEEKEND, OVERNIGHT),  # Sunday 2025-03-09 20:00 EDT
        ("2025-03-10T08:00", OVERNIGHT, PRE),
        ("2025-03-10T13:30", PRE, REGULAR),
        ("2025-03-10T20:00", REGULAR, POST),
        ("2025-11-01T00:00", POST, WEEKEND),  # Friday 2025-10-31 20:00 EDT
        ("2025-11-03T01:00", WEEKEND, OVERNIGHT),  # Sunday 2025-11-02 20:00 EST
        ("2025-11-03T09:00", OVERNIGHT, PRE),
        ("2025-11-03T14:30", PRE, REGULAR),
        ("2025-11-03T21:00", REGULAR, POST),
        ("2026-03-09T00:00", WEEKEND, OVERNIGHT),  # Sunday 2026-03-08 20:00 EDT
        ("2026-11-02T01:00", WEEKEND, OVERNIGHT),  # Sunday 2026-11-01 20:00 EST
    ],
)
def test_dst_change_days(cal: MarketCalendar, instant: str, before: Session, after: Session) -> None:
    assert_boundary(cal, utc(instant), before, after)


@pytest.mark.parametrize(
    ("day", "open_utc", "close_utc"),
    [
        ("2025-03-07", "2025-03-07T14:30", "2025-03-07T21:00"),  # last Friday of EST
        ("2025-03-10", "2025-03-10T13:30", "2025-03-10T20:00"),  # first Monday of EDT
        ("2025-10-31", "2025-10-31T13:30", "2025-10-31T20:00"),
        ("2025-11-03", "2025-11-03T14:30", "2025-11-03T21:00"),
        ("2026-03-06", "2026-03-06T14:30", "2026-03-06T21:00"),
        ("2026-03-09", "2026-03-09T13:30", "2026-03-09T20:00"),
        ("2026-10-30", "2026-10-30T13:30", "2026-10-30T20:00"),
        ("2026-11-02", "2026-11-02T14:30", "2026-11-02T21:00"),
    ],
)
def test_dst_regular_hours(cal: MarketCalendar, day: str, open_utc: str, close_utc: str) -> None:
    assert cal.regular_open_close(day) == (utc(open_utc), utc(close_utc))
    assert_boundary(cal, utc(open_utc), PRE, REGULAR)


def test_dst_sundays_are_not_trading_days(cal: MarketCalendar) -> None:
    for day in ("2025-03-09", "2025-11-02", "2026-03-08", "2026-11-01"):
        assert not cal.is_trading_day(day)
    assert cal.session_at(utc("2025-03-09T12:00")) is WEEKEND


def walk(cal: MarketCalendar, start: int, end: int) -> list[tuple[int, Session]]:
    """Transitions in (start, end] found by chaining next_transition."""
    chain = []
    ts, session = cal.next_transition(start)
    while ts <= end:
        chain.append((ts, session))
        ts, session = cal.next_transition(ts)
    return chain


def test_transition_chain_over_thanksgiving_week(cal: MarketCalendar) -> None:
    # Sunday 2025-11-23 noon ET to Sunday 2025-11-30 noon ET: Thanksgiving Thursday, early close Friday
    expected = []
    for day in ("24", "25", "26"):
        expected += [
            (f"2025-11-{day}T01:00", OVERNIGHT),
            (f"2025-11-{day}T09:00", PRE),
            (f"2025-11-{day}T14:30", REGULAR),
            (f"2025-11-{day}T21:00", POST),
        ]
    expected += [
        ("2025-11-27T01:00", CLOSED),
        ("2025-11-27T05:00", HOLIDAY),
        ("2025-11-28T01:00", OVERNIGHT),
        ("2025-11-28T09:00", PRE),
        ("2025-11-28T14:30", REGULAR),
        ("2025-11-28T18:00", POST),
        ("2025-11-28T22:00", CLOSED),
        ("2025-11-29T01:00", WEEKEND),
    ]
    chain = walk(cal, utc("2025-11-23T17:00"), utc("2025-11-30T17:00"))
    assert chain == [(utc(t), s) for t, s in expected]
    sessions = [WEEKEND] + [s for _, s in chain]
    assert all(a is not b for a, b in itertools.pairwise(sessions))


def test_transition_chain_over_ordinary_summer_week(cal: MarketCalendar) -> None:
    expected = [(utc("2025-07-14T00:00"), OVERNIGHT)]  # Sunday 20:00 EDT
    for day in range(14, 19):
        expected += [
            (utc(f"2025-07-{day}T08:00"), PRE),
            (utc(f"2025-07-{day}T13:30"), REGULAR),
            (utc(f"2025-07-{day}T20:00"), POST),
            (utc(f"2025-07-{day + 1}T00:00"), WEEKEND if day == 18 else OVERNIGHT),
        ]
    assert walk(cal, utc("2025-07-13T16:00"), utc("2025-07-20T16:00")) == expected


def test_sessions_between_and_market_status_events(cal: MarketCalendar) -> None:
    start, end = utc("2025-11-27T12:00"), utc("2025-11-28T19:00")  # Thanksgiving 07:00 ET .. Friday 14:00 ET
    spans = list(cal.sessions_between(start, end))
    assert spans == [
        (start, utc("2025-11-28T01:00"), HOLIDAY),
        (utc("2025-11-28T01:00"), utc("2025-11-28T09:00"), OVERNIGHT),
        (utc("2025-11-28T09:00"), utc("2025-11-28T14:30"), PRE),
        (utc("2025-11-28T14:30"), utc("2025-11-28T18:00"), REGULAR),
        (utc("2025-11-28T18:00"), end, POST),
    ]
    assert list(cal.sessions_between(start, start)) == []
    events = cal.market_status_events(start, end)
    assert events[0] == MarketStatus(start, "XNYS", HOLIDAY, utc("2025-11-28T01:00"))
    assert events[-1] == MarketStatus(utc("2025-11-28T18:00"), "XNYS", POST, utc("2025-11-28T22:00"))
    assert [(e.ts, e.session) for e in events] == [(a, s) for a, _, s in spans]
    assert all(type(e) is MarketStatus and e.market == "XNYS" for e in events)
    assert cal.market_status_events(start, start) == []


def test_vectorised_codes_match_scalar(cal: MarketCalendar) -> None:
    ts = np.arange(
        utc("2025-11-20T00:00"), utc("2025-12-05T00:00"), 7 * 60 * 1_000_000_000 + 1, dtype=np.int64
    )
    codes = cal.session_codes_at(ts)
    assert codes.dtype == np.int8
    assert [SESSIONS[c] for c in codes] == [cal.session_at(int(t)) for t in ts]


def test_out_of_range_raises_naming_field_and_value() -> None:
    small = MarketCalendar(start="2025-01-01", end="2025-12-31")
    first, past = utc("2025-01-01T05:00"), utc("2026-01-01T05:00")  # local midnights (EST)
    assert small.session_at(first) is HOLIDAY
    assert small.session_at(past - 1) is CLOSED  # Wed 2025-12-31 23:59 ET, New Year's Day next
    assert small.next_transition(past - 1) == (past, HOLIDAY)  # the transition out of the range is known
    for bad in (first - 1, past):
        with pytest.raises(InvalidInput, match=f"ts_ns: outside the calendar range .*, got {bad}") as err:
            small.session_at(bad)
        assert (err.value.field, err.value.value) == ("ts_ns", bad)
        with pytest.raises(InvalidInput, match="ts_ns"):
            small.next_transition(bad)
        with pytest.raises(InvalidInput, match="ts_ns"):
            small.session_codes_at([first, bad])
    with pytest.raises(InvalidInput, match="start_ns"):
        small.sessions_between(first - 1, first)
    with pytest.raises(InvalidInput, match="end_ns"):
        small.market_status_events(first, past + 1)
    with pytest.raises(
        InvalidInput, match=r"day: outside the calendar range 2025-01-01\.\.2025-12-31, got '2026-01-02'"
    ):
        small.is_trading_day("2026-01-02")
    with pytest.raises(InvalidInput, match=r"day: pass a datetime\.date"):
        small.is_trading_day(datetime(2025, 6, 2, 12))
    with pytest.raises(InvalidInput, match="day: not an ISO date"):
        small.regular_open_close("June 2nd")


def test_bad_construction_arguments() -> None:
    with pytest.raises(InvalidInput, match="exchange: not an exchange_calendars calendar name, got 'NOPE'"):
        MarketCalendar("NOPE")
    with pytest.raises(InvalidInput, match="exchange: session rules are for America/New_York"):
        MarketCalendar("XLON", start="2025-01-01", end="2025-01-31")
    with pytest.raises(InvalidInput, match="end: must be on or after start 2025-02-01, got '2025-01-01'"):
        MarketCalendar(start="2025-02-01", end="2025-01-01")
    with pytest.raises(InvalidInput, match="start: not an ISO date"):
        MarketCalendar(start="2025-13-01")


# ---- properties -------------------------------------------------------------------------------

LO, HI = utc("2025-01-01T05:00"), utc("2027-01-01T05:00")  # local 2025-01-01 00:00 .. 2027-01-01 00:00
WEEK = 7 * 24 * NS_PER_HOUR


def trades(day: date) -> bool:
    return day.weekday() < 5 and day not in NYSE_HOLIDAYS


def reference_session(ts: int) -> Session:
    """The documented rules applied point by point to the local wall clock (independent of the
    calendar's precomputed boundaries and of exchange_calendars)."""
    local = (EPOCH + timedelta(microseconds=ts // 1000)).astimezone(NY)
    day, now = local.date(), local.time()
    next_trades = trades(day + timedelta(days=1))
    if trades(day):
        early = day in NYSE_EARLY_CLOSES
        for until, session in (
            (time(4), OVERNIGHT),
            (time(9, 30), PRE),
            (time(13) if early else time(16), REGULAR),
            (time(17) if early else time(20), POST),
            (time(20), CLOSED),
        ):
            if now < until:
                return session
        return OVERNIGHT if next_trades else WEEKEND if day.weekday() == 4 else CLOSED
    evening_overnight = now >= time(20) and next_trades
    if evening_overnight:
        return OVERNIGHT
    return WEEKEND if day.weekday() >= 5 else HOLIDAY


def local_ns(day: date, at: time) -> int:
    return (datetime.combine(day, at, tzinfo=NY) - EPOCH) // timedelta(microseconds=1) * 1000


near_boundaries = st.builds(
    lambda day, at, offset: local_ns(day, at) + offset,
    st.dates(date(2025, 1, 2), date(2026, 12, 30)),
    st.sampled_from([time(0), time(4), time(9, 30), time(13), time(16), time(17), time(20)]),
    st.integers(-2, 2),
)
instants = st.one_of(st.integers(LO, HI - 1), near_boundaries)


@settings(max_examples=400, deadline=None)
@given(ts=instants)
def test_session_at_matches_the_rules_applied_pointwise(cal: MarketCalendar, ts: int) -> None:
    assert cal.session_at(ts) is reference_session(ts)


@settings(max_examples=200, deadline=None)
@given(t0=st.integers(LO, HI - WEEK - 1), delta=st.integers(0, WEEK), t_near=near_boundaries)
def test_session_at_is_the_last_transition_at_or_before(
    cal: MarketCalendar, t0: int, delta: int, t_near: int
) -> None:
    for start, t in ((t0, t0 + delta), (t_near - delta // 7 - 1, t_near)):
        session = cal.session_at(start)
        ts, nxt = cal.next_transition(start)
        while ts <= t:
            assert nxt is not session  # every transition is a real change
            assert cal.session_at(ts - 1) is session
            session = nxt
            ts, nxt = cal.next_transition(ts)
        assert cal.session_at(t) is session
        assert cal.session_span(t)[2] is session


def test_every_boundary_of_2025_and_2026_matches_the_rules(cal: MarketCalendar) -> None:
    # both sides of every local time a rule can switch at, on every day, and of every computed transition
    candidates = [
        local_ns(date(2025, 1, 1) + timedelta(days=n), at) + offset
        for n in range(730)
        for at in (time(0), time(4), time(9, 30), time(13), time(16), time(17), time(20))
        for offset in (-1, 0)
    ]
    ts, _ = cal.next_transition(LO)
    while ts < HI:
        candidates += [ts - 1, ts]
        ts, _ = cal.next_transition(ts)
    mismatches = [t for t in candidates if LO <= t < HI and cal.session_at(t) is not reference_session(t)]
    assert mismatches == []
