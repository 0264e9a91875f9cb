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
from core.engine import Handler, StrategyContext, TradingEngine
from core.events import Event, MarketStatus, Quote
from core.wake import WakeFilter

IntArray = npt.NDArray[np.int64]


LAZY_ROWS = 256
"""Runs at least this long are built row by row as replayed; shorter ones are sliced from the chunk's list."""


class Chunk:
    """A block of one stream: timestamps (ns, non-decreasing) and its events.

    A chunk of a `ColumnStream` keeps its columns and builds event objects only when asked: as
    they are replayed (`rows`), all at once (`events`), or one row (`event(i)`) on the fast path.
    """

    __slots__ = ("_events", "_lists", "columns", "constants", "event_type", "ts")

    def __init__(
        self,
        ts: IntArray,
        events: Sequence[Event] | None = None,
        *,
        event_type: type[tuple[Any, ...]] | None = None,
        constants: tuple[Any, ...] = (),
        columns: Sequence[npt.NDArray[Any] | list[Any]] = (),
    ) -> None:
        if events is None and event_type is None:
            raise ValueError("Chunk: give its events, or the event type and columns to build them from")
        self.ts = ts
        self._events = events
        self._lists: list[list[Any]] | None = None
        self.event_type = event_type
        self.constants = constants
        self.columns = columns

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def events(self) -> Sequence[Event]:
        """Every event of the chunk, built once on first use."""
        if self._events is None:
            self._events = list(self._build(0, len(self.ts)))
        return self._events

    def rows(self, start: int, stop: int) -> Iterator[Event]:
        """The events of rows [start, stop), each built as it is taken (the dense replay's source).

        Built one at a time, an event is freed as soon as it has been handled and the next reuses
        its memory, which is cheaper than building the chunk's list first.
        """
        if self._events is not None or stop - start < LAZY_ROWS:  # short runs of interleaved streams
            events = self.events
            return iter(events if start == 0 and stop >= len(events) else events[start:stop])
        return self._build(start, stop)

    def _build(self, start: int, stop: int) -> Iterator[Event]:
        if self._lists is None:
            self._lists = [self.ts.tolist(), *(_as_list(c) for c in self.columns)]
        whole = start == 0 and stop >= len(self.ts)
        ts, *columns = self._lists if whole else [c[start:stop] for c in self._lists]
        # tuple.__new__ builds the NamedTuple in C, skipping its Python-level __new__.
        new: Callable[[tuple[Any, ...]], Event] = functools.partial(tuple.__new__, self.event_type)  # type: ignore[arg-type,assignment]
        constants = [itertools.repeat(c) for c in self.constants]  # zip stops at the shortest column
        return map(new, zip(ts, *constants, *columns, strict=False))

    def event(self, i: int) -> Event:
        """The event of row `i`, built alone when the chunk's events are not built."""
        if self._events is not None:
            return self._events[i]
        values = [c[i].item() if isinstance(c, np.ndarray) else c[i] for c in self.columns]
        return tuple.__new__(self.event_type, (int(self.ts[i]), *self.constants, *values))  # type: ignore[arg-type,return-value]


class EventStream:
    """A time-ordered source of events, read in chunks. Subclasses implement `chunks()`."""

    name: str = "stream"

    def chunks(self) -> Iterator[Chunk]:
        """Successive chunks, each non-decreasing in ts and not earlier than the previous."""
        raise NotImplementedError

    def kind(self) -> tuple[type[tuple[Any, ...]], tuple[Any, ...]] | None:
        """(event type, leading constant fields) when every event shares them, else None."""
        return None


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

    def kind(self) -> tuple[type[tuple[Any, ...]], tuple[Any, ...]] | None:
        """(event type, constants)."""
        return self.event_type, self.constants

    def chunks(self) -> Iterator[Chunk]:
        """Chunks of `chunk_size` events, built lazily from column slices."""
        for start in range(0, len(self.ts), self.chunk_size):
            stop = start + self.chunk_size
            yield Chunk(
                self.ts[start:stop],
                event_type=self.event_type,
                constants=self.constants,
                columns=[c[start:stop] for c in self.columns],
            )


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


def merge_runs(streams: Sequence[EventStream]) -> Iterator[tuple[int, Chunk, int, int]]:
    """The merged order of `streams` as runs `(stream index, chunk, start, stop)` of consecutive rows.

    Rows come in (ts, stream order, row) order; memory is bounded by the chunk sizes.
    """
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
            yield k, chunk, offsets[k], len(chunk)
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
        src = np.concatenate(parts_src)[order]
        row = np.concatenate(parts_row)[order]
        # Consecutive rows of one stream are consecutive in it too: cut the order where the stream changes.
        bounds = (np.flatnonzero(src[1:] != src[:-1]) + 1).tolist()
        firsts = [0, *bounds]
        lasts = [*bounds, len(src)]
        src_list = src.tolist()
        row_list = row.tolist()
        for a, b in zip(firsts, lasts, strict=True):
            k = src_list[a]
            chunk = current[k]
            assert chunk is not None
            yield k, chunk, row_list[a], row_list[b - 1] + 1
        for k in live:
            chunk = current[k]
            assert chunk is not None
            if offsets[k] >= len(chunk):
                current[k] = next(iterators[k], None)
                offsets[k] = 0


def merge(streams: Sequence[EventStream]) -> Iterator[Event]:
    """All events of `streams` in (ts, stream order, row) order, memory bounded by the chunk sizes."""
    for _, chunk, start, stop in merge_runs(streams):
        yield from chunk.rows(start, stop)


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


@dataclass(frozen=True, slots=True)
class _Route:
    """Where one kind of market event goes: the venues that see it, the engine's update, the handlers.

    `store` and `key` are set for a stream of latest-value events sharing one key: the engine's
    update is then `store[key] = event`, done inline.
    """

    venue_calls: tuple[Callable[[Event], None], ...]
    update: Callable[[Any], None]
    handlers: list[tuple[Handler, StrategyContext]]  # live: strategies added later appear
    store: dict[Any, Any] | None = None
    key: tuple[str, str] = ("", "")


class _Sparse:
    """A quote stream on the fast path: its wake filters and the venues that must be quiet to skip rows."""

    __slots__ = ("_chunk", "_filters", "_selected", "instrument", "route", "venues", "woken")

    def __init__(
        self,
        route: _Route,
        venues: list[SimVenue],
        instrument: str,
        woken: list[tuple[Handler, StrategyContext, WakeFilter]],
    ) -> None:
        self.route = route
        self.venues = venues
        self.instrument = instrument
        self.woken: list[tuple[Handler, StrategyContext, npt.NDArray[np.bool_]]] = []
        self._chunk: Chunk | None = None
        self._selected: IntArray = np.empty(0, dtype=np.int64)
        self._filters = woken

    def quiet(self) -> bool:
        """Whether every venue that sees these quotes needs only the last of a run."""
        return all(venue.quiet(self.instrument) for venue in self.venues)

    def selected(self, chunk: Chunk) -> IntArray:
        """Rows of `chunk` that wake some strategy; each filter runs once per chunk, in time order."""
        if chunk is not self._chunk:
            bid, ask, bid_size, ask_size = (np.ascontiguousarray(c, dtype=np.float64) for c in chunk.columns)
            masks = [f.mask(chunk.ts, bid, ask, bid_size, ask_size) for _, _, f in self._filters]
            self.woken = [(h, ctx, m) for (h, ctx, _), m in zip(self._filters, masks, strict=True)]
            union = functools.reduce(np.logical_or, masks) if masks else np.zeros(len(chunk), dtype=np.bool_)
            self._selected = np.flatnonzero(union)
            self._chunk = chunk
        return self._selected


class ReplayDriver:
    """Feeds merged recorded streams through simulated venues into the engine on a simulated clock.

    With `fast_path` (the default), a quote stream whose every subscriber declares a wake filter
    (`core.wake`) is replayed sparsely: rows nobody is woken by are skipped except the last before
    anything can look at the market, and every row is delivered while a venue there has work.
    Results are identical to the dense replay (tested); `fast_path=False` forces the dense one.
    """

    def __init__(
        self,
        engine: TradingEngine,
        clock: SimulatedClock,
        venues: Iterable[SimVenue],
        on_step: Callable[[int], None] | None = None,
        step_every: int = 65_536,
        fast_path: bool = True,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.venues = {v.name: v for v in venues}
        self.on_step = on_step
        self.step_every = step_every
        self.fast_path = fast_path
        self.events_processed = 0
        self.events_skipped = 0
        self._outbox: list[Event] = []
        self._wakeups: list[tuple[int, int, SimVenue]] = []
        self._wake_seq = 0
        self._watchers: dict[str, list[SimVenue]] = {}
        self._routes: dict[tuple[type, Any], _Route] = {}
        for venue in self.venues.values():
            venue.attach(self._outbox, self._wake)
            for source in venue.watched_sources():
                if source != venue.name:
                    self._watchers.setdefault(source, []).append(venue)

    def _wake(self, at_ns: int, venue: SimVenue) -> None:
        heapq.heappush(self._wakeups, (at_ns, self._wake_seq, venue))
        self._wake_seq += 1

    def _receivers(self, event_type: type, source: Any) -> list[SimVenue]:
        """The venues that see a market event of `event_type` stamped with `source` (field 1)."""
        if event_type is MarketStatus:
            return list(self.venues.values())
        target = self.venues.get(source)
        return ([target] if target is not None else []) + self._watchers.get(source, [])

    def _route(self, event_type: type, source: Any) -> _Route:
        key = (event_type, source)
        route = self._routes.get(key)
        if route is None:
            calls = tuple(v.on_market for v in self._receivers(event_type, source))
            entry = self.engine.market_dispatch().get(event_type)
            # Our own fills and order updates, or an unknown type: the engine decides who sees them.
            route = _Route(calls, self._apply, []) if entry is None else _Route(calls, entry[0], entry[1])
            self._routes[key] = route
        return route

    def _stream_route(self, event_type: type, constants: tuple[Any, ...]) -> _Route:
        """The route of a stream whose events all share `constants`: specialised handlers where offered."""
        route = self._route(event_type, constants[0])
        if len(constants) < 2 or route.update == self._apply:
            return route
        key = (constants[0], constants[1])
        target = self.venues.get(constants[0])
        watchers = self._watchers.get(constants[0], [])
        calls = [target.market_handler(event_type, constants[1])] if target is not None else []
        calls.extend(w.on_market for w in watchers)
        store = self.engine.latest_store(event_type)
        if store is None:
            return _Route(tuple(calls), route.update, route.handlers)
        return _Route(tuple(calls), functools.partial(store.__setitem__, key), route.handlers, store, key)

    def _apply(self, event: Event) -> None:
        for handler, ctx in self.engine.apply(event):
            _call(handler, ctx, event)

    def _plan(self, stream: EventStream, unique: bool) -> _Route | _Sparse | None:
        """A fixed route for a stream of one kind, the fast path for a filtered quote stream, or None."""
        kind = stream.kind()
        if kind is None or not kind[1]:
            return None
        event_type, constants = kind
        if event_type is MarketStatus:
            return self._route(event_type, constants[0])
        route = self._stream_route(event_type, constants)
        if not (self.fast_path and unique and event_type is Quote and len(constants) == 2):
            return route
        woken = self.engine.sparse_quotes(constants[0], constants[1])
        receivers = self._receivers(Quote, constants[0])
        if woken is None or any(type(v).quiet is SimVenue.quiet for v in receivers):
            return route
        return _Sparse(route, receivers, constants[1], woken)

    def run(self, streams: Sequence[EventStream], until_ns: int | None = None) -> int:
        """Replay every event (up to `until_ns`), then fire what is due by the last event's time.

        Returns the number of market events replayed (skipped rows of the fast path included).
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
        # A quote stream can go sparse only if no other stream carries quotes of its instrument.
        keys = [None if kind is None else (kind[0], kind[1][:2]) for kind in (s.kind() for s in streams)]
        plans = [self._plan(s, keys.count(key) == 1) for s, key in zip(streams, keys, strict=True)]
        on_step = self.on_step
        step_every = self.step_every
        count = 0
        next_step = step_every
        next_gc = GC_EVERY
        drive(self.engine.start())
        self._flush()
        for k, chunk, start, stop in merge_runs(streams):
            end = stop
            if until_ns is not None and int(chunk.ts[stop - 1]) > until_ns:
                end = start + int(np.searchsorted(chunk.ts[start:stop], until_ns, side="right"))
            plan = plans[k]
            if type(plan) is _Sparse:
                self._replay_sparse(plan, chunk, start, end)
            elif start < end:
                run = chunk.rows(start, end)
                if plan is None:  # a stream of mixed kinds (market status, funding...): few events
                    for event in run:
                        _run_to_end(self._replay((event,), self._route(type(event), event[1])))
                else:
                    _run_to_end(self._replay(run, plan))  # type: ignore[arg-type]
            count += end - start
            if end < stop:
                break
            if count >= next_step:
                next_step = (count // step_every + 1) * step_every
                if on_step is not None:
                    on_step(self.clock._now)
                if count >= next_gc:
                    next_gc += GC_EVERY
                    gc.collect(1)
        self._fire_due(self.clock._now)
        drive(self.engine.stop())
        self._flush()
        self.events_processed += count
        return count

    async def _replay(self, events: Iterable[Event], route: _Route) -> None:
        """The dense hot path: every event to its venues, the engine, then the strategies.

        A coroutine so that each handler is awaited inline, the cheapest way CPython runs one; it
        never suspends (see `drive`). With one venue and one handler, the handler is read once per
        run of events: a strategy added by a handler sees the stream from the next run.
        """
        clock = self.clock
        timers = self.engine.timer_heap
        wakeups = self._wakeups
        outbox = self._outbox
        calls = route.venue_calls
        update = route.update
        handlers = route.handlers
        store = route.store
        if store is not None and len(calls) == 1 and len(handlers) == 1:
            # The common case (one venue, one strategy, latest-value events) without the inner loops.
            key = route.key
            call = calls[0]
            ((handler, ctx),) = handlers
            for event in events:
                ts = event[0]
                if (timers and timers[0][0] <= ts) or (wakeups and wakeups[0][0] <= ts):
                    self._fire_due(ts)
                clock._now = ts
                call(event)
                if outbox:
                    self._flush()
                store[key] = event
                await handler(ctx, event)
                if outbox:
                    self._flush()
            return
        for event in events:
            ts = event[0]
            if (timers and timers[0][0] <= ts) or (wakeups and wakeups[0][0] <= ts):
                self._fire_due(ts)
            # merge() yields non-decreasing times, so the clock's own check is redundant here.
            clock._now = ts
            for call in calls:
                call(event)
            if outbox:
                self._flush()
            update(event)
            for handler, ctx in handlers:
                await handler(ctx, event)
            if outbox:
                self._flush()

    def _replay_sparse(self, sparse: _Sparse, chunk: Chunk, start: int, stop: int) -> None:
        """The fast path over rows [start, stop) of a filtered quote stream (see the class docstring)."""
        selected = sparse.selected(chunk)
        ts = chunk.ts
        lo, hi = np.searchsorted(selected, (start, stop)).tolist()
        cursor = start
        skipped = 0
        for row in (*selected[lo:hi].tolist(), stop):  # stop: the run's end, not a row to deliver
            while cursor < row:
                if not sparse.quiet():  # a venue works on this instrument: it needs every quote
                    self._deliver(sparse, chunk, cursor, wake=False)
                    cursor += 1
                    continue
                due = self._next_due()
                # Rows before the next timer or wake-up: only the last can be seen, just before it.
                first = row if due is None else cursor + int(np.searchsorted(ts[cursor:row], due, "left"))
                if first > cursor:
                    self._deliver(sparse, chunk, first - 1, wake=False)
                    skipped += first - 1 - cursor
                    cursor = first
                if first < row:
                    self._fire_due(int(ts[first]))
            if row < stop:
                self._deliver(sparse, chunk, row, wake=True)
                cursor = row + 1
        self.events_skipped += skipped

    def _deliver(self, sparse: _Sparse, chunk: Chunk, row: int, wake: bool) -> None:
        """One row of a sparse stream, as the dense path would deliver it; strategies only if `wake`."""
        event = chunk.event(row)
        ts = event[0]
        due = self._next_due()
        if due is not None and due <= ts:
            self._fire_due(ts)
        self.clock._now = ts
        route = sparse.route
        for call in route.venue_calls:
            call(event)
        if self._outbox:
            self._flush()
        route.update(event)
        if wake:
            for handler, ctx, mask in sparse.woken:
                if mask[row]:
                    _call(handler, ctx, event)
            if self._outbox:
                self._flush()

    def _next_due(self) -> int | None:
        """When the next venue wake-up or strategy timer is due (ns), or None."""
        timers = self.engine.timer_heap
        wakeups = self._wakeups
        if timers and wakeups:
            return min(timers[0][0], wakeups[0][0])
        if timers:
            return timers[0][0]
        return wakeups[0][0] if wakeups else None

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


def _call(handler: Handler, ctx: StrategyContext, event: Event) -> None:
    """Run `handler(ctx, event)` to its end; it must not wait for anything."""
    _run_to_end(handler(ctx, event))


def _run_to_end(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never suspends; iterating its awaitable raises no StopIteration at the end."""
    for _ in coro.__await__():
        coro.close()
        raise RuntimeError(SUSPENDED)
