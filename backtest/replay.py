"""The replay driver: recorded streams, merged in time order, through simulated venues to strategies.

Streams are columnar: numpy arrays per column, read in chunks, turned into event objects one at a
time only as the merge reaches them, so memory stays flat in the number of events. The merge is
a chunked k-way merge: each round takes, from every stream, the rows up to the earliest chunk end
among them (no stream can still hold an earlier row), orders them by (ts, stream, row) with one
stable argsort, and replays them. Ties on ts keep the order in which the streams were given,
so identical inputs give bit-identical outputs.

Per event, in this order: timers and venue wake-ups due before it fire (in time order, venues
first at equal times); the clock moves to the event's ts; the venues it concerns see it and match
what rests; what they produced (our fills, order updates) goes to the engine; then the strategies
see the event. A strategy therefore sees only events with ts <= now, and an order it sends while
handling an event reaches its venue after that event: it can fill on a later event, or, at zero
latency with `same_event_fills` on, against the state the triggering event left.
"""

from __future__ import annotations

import functools
import gc
import heapq
import itertools
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from connectors.sim.base import SimVenue
from core.clock import SimulatedClock
from core.engine import TradingEngine
from core.events import Event, MarketStatus

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Chunk:
    """A block of one stream: timestamps (ns, non-decreasing) and the events they belong to."""

    ts: IntArray
    events: Sequence[Event]


class EventStream:
    """A time-ordered source of events, read in chunks. Subclasses implement `chunks()`."""

    name: str = "stream"

    def chunks(self) -> Iterator[Chunk]:
        """Successive chunks, each non-decreasing in ts and not earlier than the previous."""
        raise NotImplementedError


def _check_sorted(ts: IntArray, name: str) -> None:
    if len(ts) > 1:
        back = np.diff(ts) < 0
        if bool(back.any()):
            bad = int(np.argmax(back)) + 1
            raise ValueError(f"{name}[{bad}].ts: must not decrease, got {ts[bad]} after {ts[bad - 1]}")


class ColumnStream(EventStream):
    """Events of one NamedTuple type from column arrays: `event_type(ts[i], *constants, *columns[i])`.

    `constants` are the leading fields that do not change (venue, instrument); `columns` the
    remaining fields in the event's field order. A chunk's events are built in one C-level pass
    (`tuple.__new__` over zipped Python lists), several times cheaper than one call per event.
    """

    def __init__(
        self,
        event_type: type[tuple[Any, ...]],
        ts: npt.ArrayLike,
        constants: Sequence[Any],
        columns: Sequence[npt.ArrayLike | Sequence[Any]],
        chunk_size: int = 65_536,
        name: str = "",
    ) -> None:
        self.name = name or event_type.__name__
        fields = getattr(event_type, "_fields", None)
        if fields is None:
            raise TypeError(f"event_type: must be a NamedTuple event type, got {event_type!r}")
        if 1 + len(constants) + len(columns) != len(fields):
            raise ValueError(
                f"{self.name}: {event_type.__name__} has {len(fields)} fields, "
                f"got ts + {len(constants)} constants + {len(columns)} columns"
            )
        self.event_type = event_type
        self.ts = np.ascontiguousarray(ts, dtype=np.int64)
        if self.ts.ndim != 1:
            raise ValueError(f"{self.name}.ts: must be one-dimensional, got shape {self.ts.shape}")
        _check_sorted(self.ts, self.name)
        self.constants = tuple(constants)
        self.columns = [c if isinstance(c, list) else np.asarray(c) for c in columns]
        for i, column in enumerate(self.columns):
            if len(column) != len(self.ts):
                raise ValueError(
                    f"{self.name}.columns[{i}] ({fields[1 + len(constants) + i]}): "
                    f"length {len(column)} differs from ts length {len(self.ts)}"
                )
        if chunk_size <= 0:
            raise ValueError(f"chunk_size: must be > 0, got {chunk_size}")
        self.chunk_size = chunk_size

    def chunks(self) -> Iterator[Chunk]:
        """Chunks of `chunk_size` events."""
        # tuple.__new__ builds the NamedTuple in C, skipping its Python-level __new__.
        new: Callable[[tuple[Any, ...]], Event] = functools.partial(tuple.__new__, self.event_type)  # type: ignore[assignment]
        for start in range(0, len(self.ts), self.chunk_size):
            stop = start + self.chunk_size
            ts = self.ts[start:stop]
            parts: list[Iterable[Any]] = [ts.tolist()]
            parts.extend(itertools.repeat(c) for c in self.constants)
            parts.extend(_as_list(c[start:stop]) for c in self.columns)
            yield Chunk(ts, list(map(new, zip(*parts, strict=False))))  # constants repeat forever


def _as_list(column: Any) -> list[Any]:
    return column.tolist() if isinstance(column, np.ndarray) else list(column)


class ListStream(EventStream):
    """Events already built (small streams: market status, funding, multiplier changes)."""

    def __init__(self, events: Sequence[Event], name: str = "list") -> None:
        self.events = list(events)
        self._ts = np.fromiter((e.ts for e in self.events), dtype=np.int64, count=len(self.events))
        _check_sorted(self._ts, name)
        self.name = name

    def chunks(self) -> Iterator[Chunk]:
        """One chunk with every event."""
        if self.events:
            yield Chunk(self._ts, self.events)


def merge(streams: Sequence[EventStream]) -> Iterator[Event]:
    """All events of `streams` in (ts, stream order, row) order, memory bounded by the chunk sizes."""
    iterators = [s.chunks() for s in streams]
    current: list[Chunk | None] = [next(it, None) for it in iterators]
    offsets = [0] * len(streams)
    while True:
        live = [k for k, chunk in enumerate(current) if chunk is not None]
        if not live:
            return
        if len(live) == 1:  # one stream left: its rows are already in order
            k = live[0]
            chunk = current[k]
            assert chunk is not None
            yield from chunk.events[offsets[k] :] if offsets[k] else chunk.events
            current[k] = chunk = None  # drop the spent chunk before reading the next
            current[k] = next(iterators[k], None)
            offsets[k] = 0
            continue
        # Rows up to the earliest chunk end are final: every stream's later chunks start after it.
        cut = min(int(c.ts[-1]) for c in current if c is not None)
        parts_ts: list[IntArray] = []
        parts_src: list[IntArray] = []
        parts_row: list[IntArray] = []
        for k in live:
            chunk = current[k]
            assert chunk is not None
            start = offsets[k]
            stop = int(np.searchsorted(chunk.ts, cut, side="right"))
            if stop > start:
                parts_ts.append(chunk.ts[start:stop])
                parts_src.append(np.full(stop - start, k, dtype=np.int64))
                parts_row.append(np.arange(start, stop, dtype=np.int64))
            offsets[k] = stop
        # A stable sort on ts over parts laid out in stream order keeps (stream, row) order on ties.
        order = np.argsort(np.concatenate(parts_ts), kind="stable")
        lists = [c.events if c is not None else () for c in current]
        src = np.concatenate(parts_src)[order].tolist()
        row = np.concatenate(parts_row)[order].tolist()
        yield from map(lambda s, r: lists[s][r], src, row)
        for k in live:
            chunk = current[k]
            assert chunk is not None
            if offsets[k] >= len(chunk.ts):
                current[k] = next(iterators[k], None)
                offsets[k] = 0


def drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends, without an event loop (the backtest's hot path).

    Inside a backtest every await completes at once (simulated venues answer immediately); a
    coroutine that suspends is waiting for real I/O, which a backtest must not do.
    """
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError(SUSPENDED)


GC_EVERY = 1 << 20
"""Events between two collections of the young generations while the cyclic GC is held."""

SUSPENDED = "a strategy awaited real I/O inside a backtest; use ctx.schedule for delays"


class ReplayDriver:
    """Feeds merged recorded streams through simulated venues into the engine on a simulated clock."""

    def __init__(
        self,
        engine: TradingEngine,
        clock: SimulatedClock,
        venues: Iterable[SimVenue],
        on_step: Callable[[int], None] | None = None,
        step_every: int = 65_536,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.venues = {v.name: v for v in venues}
        self.on_step = on_step
        self.step_every = step_every
        self.events_processed = 0
        self._outbox: list[Event] = []
        self._wakeups: list[tuple[int, int, SimVenue]] = []
        self._wake_seq = 0
        self._watchers: dict[str, list[SimVenue]] = {}
        for venue in self.venues.values():
            venue.attach(self._outbox, self._wake)
            for source in venue.watched_sources():
                if source != venue.name:
                    self._watchers.setdefault(source, []).append(venue)

    def _wake(self, at_ns: int, venue: SimVenue) -> None:
        heapq.heappush(self._wakeups, (at_ns, self._wake_seq, venue))
        self._wake_seq += 1

    def run(self, streams: Sequence[EventStream], until_ns: int | None = None) -> int:
        """Replay every event (up to `until_ns`), then fire what is due by the last event's time.

        Returns the number of market events replayed.
        """
        # Events are acyclic and freed by reference counting; the cyclic collector would only rescan
        # millions of young objects. Collect young generations once per step instead.
        gc_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._run(streams, until_ns)
        finally:
            if gc_enabled:
                gc.enable()

    def _run(self, streams: Sequence[EventStream], until_ns: int | None) -> int:
        engine = self.engine
        apply = engine.apply
        dispatch = engine.market_dispatch()
        venues = self.venues
        venue_list = list(venues.values())
        watchers = self._watchers
        clock = self.clock
        timers = engine.timer_heap
        wakeups = self._wakeups
        outbox = self._outbox
        on_step = self.on_step
        step_every = self.step_every
        count = 0
        next_step = step_every
        next_gc = GC_EVERY
        drive(engine.start())
        self._flush()
        until = until_ns if until_ns is not None else 2**63
        for event in merge(streams):
            ts = event[0]
            if ts > until:
                break
            if (timers and timers[0][0] <= ts) or (wakeups and wakeups[0][0] <= ts):
                self._fire_due(ts)
            # merge() yields non-decreasing times, so the clock's own check is redundant here.
            clock._now = ts
            event_type = type(event)
            if event_type is MarketStatus:
                for venue in venue_list:
                    venue.on_market(event)
            elif venues:
                # Every event type keeps its venue (or oracle source) in field 1.
                target = venues.get(event[1])
                if target is not None:
                    target.on_market(event)
                if watchers:
                    for watcher in watchers.get(event[1], ()):
                        watcher.on_market(event)
            if outbox:
                self._flush()
            entry = dispatch.get(event_type)
            if entry is None:
                routes = apply(event)  # our own fills and order updates, or an unknown type
            else:
                entry[0](event)
                routes = entry[1]
            for handler, ctx in routes:
                coro = handler(ctx, event)
                try:
                    coro.send(None)
                except StopIteration:
                    pass
                else:
                    coro.close()
                    raise RuntimeError(SUSPENDED)
            if outbox:
                self._flush()
            count += 1
            if count == next_step:
                next_step += step_every
                if on_step is not None:
                    on_step(ts)
                if count >= next_gc:
                    next_gc += GC_EVERY
                    gc.collect(1)
        self._fire_due(clock._now)
        drive(engine.stop())
        self._flush()
        self.events_processed += count
        return count

    def _flush(self) -> None:
        """Hand the venues' events to the engine; a strategy reacting may produce more: repeat."""
        outbox = self._outbox
        while outbox:
            batch = outbox[:]
            outbox.clear()
            for event in batch:
                drive(self.engine.process(event))

    def _fire_due(self, until_ns: int) -> None:
        """Fire venue wake-ups and strategy timers due at or before `until_ns`, in time order.

        At equal times venues go first, so a strategy's timer sees the fills due by then.
        """
        timers = self.engine.timer_heap
        wakeups = self._wakeups
        while True:
            venue_ns = wakeups[0][0] if wakeups else None
            timer_ns = timers[0][0] if timers else None
            if venue_ns is not None and venue_ns <= until_ns and (timer_ns is None or venue_ns <= timer_ns):
                _, _, venue = heapq.heappop(wakeups)
                self.clock.advance_to(max(venue_ns, self.clock.now_ns()))
                venue.on_time(self.clock.now_ns())
                self._flush()
            elif timer_ns is not None and timer_ns <= until_ns:
                self.clock.advance_to(max(timer_ns, self.clock.now_ns()))
                drive(self.engine.fire_timer())
                self._flush()
            else:
                return
