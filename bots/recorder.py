"""Record live market data into the backtester's dataset format, crash-safe and resumable.

`Recorder(sources, out_dir)` consumes every source's `stream()` concurrently (a `core.venue.Venue`
or anything with a `name` and a `stream()`; see `bots.recorder_sources` for the live connectors)
and writes each market-data stream (event type + constants: venue and instrument, pool, oracle
feed, market) in exactly the schema `backtest.data` reads (docs/data.md). Layout:

```
out_dir/manifest.yaml                      every sealed file, one entry per stream (`files:`)
out_dir/<stream>/<YYYYmmddTHH>.parquet     one file per stream per rotation period (sealed)
out_dir/<stream>/<YYYYmmddTHH>.wal         the open period: a write-ahead log (Arrow IPC stream)
```

Durability: events are buffered and flushed every `flush_interval_s` (or `flush_rows`) as one
record batch appended to the period's write-ahead log and fsynced, so a crash (SIGKILL) loses at
most the unflushed batch. A torn last batch is cut off on recovery: an IPC message is length
prefixed, a truncated one does not read back. At the end of a period (wall clock) and at a
graceful stop the log is sealed: written as Parquet to `<file>.tmp`, fsynced, renamed over the
final name (atomic), the directory fsynced, then the log deleted; then the manifest is rewritten
the same way (tmp + rename). So a reader never sees a half-written Parquet file or manifest.

Resume: on start the recorder deletes `*.tmp` leftovers, seals every write-ahead log a crash left
(deleting it instead if its Parquet file exists: the crash came between the rename and the
delete), rebuilds the manifest from the files on disk, and reads each stream's last timestamp and
recent dedup keys from its newest files. A restart in the same period opens a new segment
(`<period>-1.parquet`). Events already on disk are skipped (trade id for trades, round id for
oracle rounds, the exact row otherwise; a pool or market state equal to the last one recorded),
so the dataset holds no duplicate rows; what happened while the recorder was down is a gap,
except what the sources' start-up snapshots (REST quotes and books, the pool's state, the latest
round) record at restart.

Timestamps within a stream never decrease (the loaders require it): an event stamped earlier
than the stream's last row (exchange clocks, REST snapshots) is recorded at that last timestamp
and counted in `StreamStats.clamped`. An event the schema would refuse (a NaN price when a book
side is empty) is logged and skipped. Our own executions (`Fill`, `OrderUpdate`) are not market
data and are never recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import os
import random
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from backtest.data import (
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    METADATA_KEY,
    SCHEMA_VERSION,
    SCHEMAS,
    ColumnKind,
    EventSchema,
    check_table,
    columns_table,
    read_stream,
    stream_arrays,
    write_table,
)
from core.enums import Session, Side
from core.errors import InvalidInput
from core.events import Event, MarketStatus, OraclePrice, PoolState, Trade

log = logging.getLogger("perpetua.recorder")

NS: Final = 1_000_000_000
HOUR_NS: Final = 3600 * NS
WAL_SUFFIX: Final = ".wal"
PARQUET_SUFFIX: Final = ".parquet"
TMP_SUFFIX: Final = ".tmp"
RECENT_KEYS: Final = 200_000
"""Dedup keys kept per stream (the newest rows): enough for any re-delivery after a restart."""
_INT64_MAX: Final = 2**63 - 1
_NAME_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.-]+")
_WARN_LIMIT: Final = 5  # invalid events logged per stream before only counting them
T = TypeVar("T")


class RecordSource(Protocol):
    """What the recorder consumes: a name (for logs) and a market-data stream. Every `Venue` is one."""

    name: str

    def stream(self) -> AsyncIterator[Event]:
        """Events as they come; restarted by the recorder (with backoff) when it fails or ends."""
        ...


@dataclass(frozen=True, slots=True)
class StreamId:
    """A stream's identity: the event type name and its constant fields in schema order."""

    event: str
    constants: tuple[str, ...]

    @property
    def schema(self) -> EventSchema:
        """The stored schema of the event type."""
        return SCHEMAS[self.event]

    def constants_map(self) -> dict[str, str]:
        """`{venue: ..., instrument: ...}` (the schema's constant names to values)."""
        return dict(zip(self.schema.constants, self.constants, strict=True))

    def slug(self) -> str:
        """A directory name: `quote.binance.TSLAx-USDT` (unsafe characters become `-`)."""
        parts = [self.event.lower(), *self.constants]
        return ".".join(_NAME_UNSAFE.sub("-", p).strip("-") or "_" for p in parts)


@dataclass(slots=True)
class StreamStats:
    """Counters of one stream since the recorder started."""

    received: int = 0
    written: int = 0  # durable: fsynced in a write-ahead log or a sealed file
    duplicates: int = 0
    invalid: int = 0
    clamped: int = 0
    files_sealed: int = 0


def stream_id_of(event: Event) -> StreamId | None:
    """The stream an event belongs to, or None if it is not recorded market data."""
    schema = SCHEMAS.get(type(event).__name__)
    if schema is None or type(event) is not schema.event_type:
        return None
    return StreamId(schema.name, tuple(str(getattr(event, c)) for c in schema.constants))


def dedup_key(event: Event) -> Hashable:
    """What makes an event a duplicate of one already recorded: the trade id of a trade, the round
    id of an oracle round, the exact row otherwise (see also `state_key`)."""
    if type(event) is Trade and event.trade_id:
        return ("trade_id", event.trade_id)
    if type(event) is OraclePrice and event.round_id:
        return ("round_id", event.round_id)
    return tuple(event)


def state_key(event: Event) -> Hashable | None:
    """For state streams (pools, market sessions): the state itself, without when it was seen. An
    event whose state equals the stream's last recorded one (a restart's snapshot of an unchanged
    pool, at a later block) is no news and skipped; None for other events."""
    if type(event) is PoolState:
        return (event.venue, event.pool, *event[4:])  # reserves, price, tick, liquidity
    if type(event) is MarketStatus:
        return event[1:]
    return None


def invalid_reason(event: Event, schema: EventSchema) -> str | None:
    """Why the stored schema would refuse `event` (naming the field and value), or None if valid."""
    ts = event.ts
    if not isinstance(ts, int) or not 0 <= ts <= _INT64_MAX:
        return f"ts: not int64 ns, got {ts!r}"
    for spec in schema.columns:
        value = getattr(event, spec.name)
        kind = spec.kind
        bad = False
        if kind is ColumnKind.PRICE:
            bad = not (isinstance(value, int | float) and math.isfinite(value) and value > 0)
        elif kind is ColumnKind.OPTIONAL_PRICE:
            bad = not (
                isinstance(value, int | float) and (math.isnan(value) or (math.isfinite(value) and value > 0))
            )
        elif kind is ColumnKind.SIZE:
            bad = not (isinstance(value, int | float) and math.isfinite(value) and value >= 0)
        elif kind is ColumnKind.FLOAT:
            bad = not (isinstance(value, int | float) and math.isfinite(value))
        elif kind in (ColumnKind.INT, ColumnKind.TIME):
            bad = not (isinstance(value, int) and -_INT64_MAX - 1 <= value <= _INT64_MAX)
        elif kind is ColumnKind.BIG_UINT:
            bad = not (isinstance(value, int) and value >= 0)
        elif kind is ColumnKind.SIDE:
            bad = not (value is None or isinstance(value, Side))
        elif kind is ColumnKind.SESSION:
            bad = not ((value is None and not spec.required) or isinstance(value, Session))
        elif kind is ColumnKind.TEXT:
            bad = not isinstance(value, str)
        elif kind is ColumnKind.BOOL:
            bad = not isinstance(value, bool)
        elif kind is ColumnKind.LEVELS:
            bad = not all(
                len(level) == 2
                and math.isfinite(level[0])
                and level[0] > 0
                and math.isfinite(level[1])
                and level[1] >= 0
                for level in value
            )
        if bad:
            return f"{spec.name}: not a valid {kind.value}, got {value!r}"
    return None


# --------------------------------------------------------------------------------------------
# Files: periods, segments, the write-ahead log


def period_label(period_start_ns: int, rotate_ns: int) -> str:
    """The file stem of a period starting at `period_start_ns` (ns UTC): `20261203T07` for hourly
    periods, `20261203T070500` for periods that are not whole hours."""
    when = datetime.fromtimestamp(period_start_ns // NS, tz=UTC)
    return when.strftime("%Y%m%dT%H" if rotate_ns % HOUR_NS == 0 else "%Y%m%dT%H%M%S")


def _file_order(path: Path) -> tuple[datetime, int]:
    """Sort key of a segment file `<label>[-<k>].<suffix>`: the period's start, then the segment."""
    stem = path.name.split(".", 1)[0]
    label, _, seg = stem.partition("-")
    for fmt in ("%Y%m%dT%H%M%S", "%Y%m%dT%H"):
        try:
            return datetime.strptime(label, fmt), int(seg or 0)
        except ValueError:
            continue
    raise InvalidInput("file", str(path), "not a recorder file name (<YYYYmmddTHH>[-<k>].parquet)")


def sealed_files(stream_dir: Path) -> list[Path]:
    """The sealed Parquet files of one stream directory, in time order."""
    return sorted(stream_dir.glob("*" + PARQUET_SUFFIX), key=_file_order)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def read_wal(path: Path) -> Any:
    """Every complete record batch of a write-ahead log as one pyarrow Table (None if none).

    A batch torn by a crash (or a log cut before its schema) ends the read: what follows it was
    never acknowledged as flushed.
    """
    batches: list[Any] = []
    schema = None
    try:
        with pa.OSFile(str(path), "rb") as source:
            reader = pa.ipc.open_stream(source)
            schema = reader.schema
            while True:
                try:
                    batches.append(reader.read_next_batch())
                except StopIteration:
                    break
    except (pa.ArrowInvalid, OSError, EOFError):
        pass  # a truncated tail: keep the complete batches read so far
    if schema is None or not batches:
        return None
    return pa.Table.from_batches(batches, schema=schema)


class _Wal:
    """An open write-ahead log: an Arrow IPC stream appended batch by batch, fsynced each time."""

    def __init__(self, path: Path, schema: Any) -> None:
        self.path = path
        self.schema = schema
        self._file = path.open("wb")
        self._writer = pa.ipc.new_stream(self._file, schema)
        self.rows = 0

    def append(self, table: Any) -> None:
        self._writer.write_table(table)
        self._file.flush()
        os.fsync(self._file.fileno())
        self.rows += table.num_rows

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()
        self._file.close()


def seal(wal_path: Path, stream: StreamId) -> Path | None:
    """Turn a write-ahead log into its Parquet file (tmp, fsync, atomic rename, dir fsync), then
    delete the log. Returns the Parquet path, or None when the log held no complete batch."""
    final = wal_path.with_suffix(PARQUET_SUFFIX)
    if final.exists():  # sealed already: a crash came between the rename and the delete
        wal_path.unlink()
        return final
    table = read_wal(wal_path)
    if table is None or table.num_rows == 0:
        wal_path.unlink()
        return None
    tmp = final.with_name(final.name + TMP_SUFFIX)
    write_table(tmp, stream.event, stream.constants_map(), table)
    _fsync_file(tmp)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    wal_path.unlink()
    return final


def _stream_identity(path: Path) -> StreamId:
    """A sealed file's stream identity, from the Parquet metadata the recorder writes."""
    meta = pq.ParquetFile(path).schema_arrow.metadata or {}
    raw = json.loads(meta[METADATA_KEY])
    schema = SCHEMAS[raw["event"]]
    return StreamId(schema.name, tuple(raw["constants"][c] for c in schema.constants))


def write_manifest(out_dir: Path, streams: dict[str, StreamId], description: str = "") -> Path | None:
    """Rewrite `out_dir/manifest.yaml` from the sealed files on disk (tmp + atomic rename).

    One entry per stream directory that holds sealed files, named like its directory; None (and no
    manifest) while nothing is sealed. `streams` maps directory names to identities.
    """
    entries: list[dict[str, Any]] = []
    for name in sorted(streams):
        files = sealed_files(out_dir / name)
        if not files:
            continue
        sid = streams[name]
        relative = [f"{name}/{f.name}" for f in files]
        entry: dict[str, Any] = {"name": name}
        if len(relative) == 1:
            entry["file"] = relative[0]
        else:
            entry["files"] = relative
        entry["event"] = sid.event
        entry.update(sid.constants_map())
        entries.append(entry)
    if not entries:
        return None
    doc = {
        "format": MANIFEST_FORMAT,
        "version": SCHEMA_VERSION,
        "description": description or "recorded by perpetua data record",
        "streams": entries,
    }
    path = out_dir / MANIFEST_NAME
    tmp = path.with_name(path.name + TMP_SUFFIX)
    with tmp.open("w", encoding="utf-8") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(out_dir)
    return path


# --------------------------------------------------------------------------------------------
# One stream's writer


class _RecentKeys:
    """The newest `limit` dedup keys of a stream: a set for lookups, a deque for eviction."""

    def __init__(self, limit: int = RECENT_KEYS) -> None:
        self.limit = limit
        self._set: set[Hashable] = set()
        self._order: deque[Hashable] = deque()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._set

    def add(self, key: Hashable) -> None:
        if key in self._set:
            return
        self._set.add(key)
        self._order.append(key)
        if len(self._order) > self.limit:
            self._set.discard(self._order.popleft())


@dataclass(slots=True)
class _Stream:
    sid: StreamId
    directory: Path
    stats: StreamStats = field(default_factory=StreamStats)
    last_ts: int | None = None
    recent: _RecentKeys = field(default_factory=_RecentKeys)
    last_state: Hashable | None = None
    buffer: list[Event] = field(default_factory=list)
    wal: _Wal | None = None
    wal_period: int | None = None


def _table(sid: StreamId, events: Sequence[Event]) -> Any:
    """The stored-layout Arrow table of buffered events (every column, optional ones included)."""
    schema = sid.schema
    ts = [e.ts for e in events]
    columns = {c.name: [getattr(e, c.name) for e in events] for c in schema.columns}
    return columns_table(schema.name, ts, columns)


# --------------------------------------------------------------------------------------------
# The recorder


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """Delays before restarting a failed source stream: `initial_s` doubling up to `max_s`, jittered."""

    initial_s: float = 0.5
    max_s: float = 30.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds before restart number `attempt` (0-based)."""
        return min(self.max_s, self.initial_s * 2.0**attempt) * (0.8 + 0.2 * rng.random())


class Recorder:
    """Records `sources` into `out_dir`; see the module docstring.

    Args:
        sources: market-data sources (venues, or the adapters of `bots.recorder_sources`).
        out_dir: the dataset directory (created if missing; resumed if it holds a recording).
        rotate_every_s: length of a file's period in seconds (default 3600; whole seconds, >= 1).
        flush_interval_s: how often buffered rows are flushed to the write-ahead logs (the most a
            crash can lose); `flush_rows` flushes a stream early when its buffer reaches that size.
        clock: wall clock in ns UTC (periods follow it).
        on_flush: called after each durable flush with (stream name, rows written in total).
    """

    def __init__(
        self,
        sources: Sequence[RecordSource],
        out_dir: str | Path,
        *,
        rotate_every_s: float = 3600,
        flush_interval_s: float = 1.0,
        flush_rows: int = 10_000,
        restart: RestartPolicy = RestartPolicy(),
        clock: Callable[[], int] = time.time_ns,
        on_flush: Callable[[str, int], None] | None = None,
        seed: int = 0,
    ) -> None:
        if not rotate_every_s >= 1 or rotate_every_s != int(rotate_every_s):
            raise InvalidInput("rotate_every_s", rotate_every_s, "must be a whole number of seconds >= 1")
        if not flush_interval_s > 0:
            raise InvalidInput("flush_interval_s", flush_interval_s, "must be > 0")
        if flush_rows < 1:
            raise InvalidInput("flush_rows", flush_rows, "must be >= 1")
        names = [s.name for s in sources]
        self.sources = list(sources)
        self.out_dir = Path(out_dir)
        self.rotate_ns = int(rotate_every_s) * NS
        self.flush_interval_s = flush_interval_s
        self.flush_rows = flush_rows
        self.restart = restart
        self.clock = clock
        self.on_flush = on_flush
        self.streams: dict[str, _Stream] = {}
        self.source_errors: dict[str, list[str]] = {n: [] for n in names}
        self.source_restarts: dict[str, int] = dict.fromkeys(names, 0)
        self._by_id: dict[StreamId, _Stream] = {}
        self._rng = random.Random(seed)
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recorder-io")
        self._stopping = asyncio.Event()
        self._flush_now = asyncio.Event()
        self._opened = False
        self._manifest_stale = False  # a file was sealed since the manifest was last written

    # -- disk work runs on one thread, in order ---------------------------------------------------

    async def _disk(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    # -- start: recovery and resume state --------------------------------------------------------

    async def open(self) -> None:
        """Recover what a crash left and load each stream's resume state (idempotent)."""
        if self._opened:
            return
        recovered = await self._disk(self._recover)
        for name, (sid, last_ts, recent) in recovered.items():
            stream = self._add(name, sid)
            stream.last_ts = last_ts
            for event in recent:
                stream.recent.add(dedup_key(event))
            if recent:
                stream.last_state = state_key(recent[-1])
        self._opened = True

    def _recover(self) -> dict[str, tuple[StreamId, int | None, list[Event]]]:
        """(On the I/O thread.) Delete tmp files, seal leftover logs, rewrite the manifest; per
        stream directory: its identity, last timestamp and the events of its newest files."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for tmp in self.out_dir.glob("**/*" + TMP_SUFFIX):
            tmp.unlink()
        found: dict[str, tuple[StreamId, int | None, list[Event]]] = {}
        for directory in sorted(p for p in self.out_dir.iterdir() if p.is_dir()):
            for wal in sorted(directory.glob("*" + WAL_SUFFIX)):
                sid = self._wal_identity(wal, directory)
                if sid is None:
                    log.warning("recorder: %s has no readable batch; removed", wal)
                    wal.unlink()
                    continue
                sealed = seal(wal, sid)
                log.info("recorder: recovered %s -> %s", wal, sealed)
            files = sealed_files(directory)
            if not files:
                continue
            sid = _stream_identity(files[-1])
            recent: list[Event] = []
            last_ts: int | None = None
            for path in files[-2:]:  # the newest two periods: whatever a restart may re-deliver
                ts, events = stream_arrays(read_stream(path))
                recent.extend(events)
                if len(ts):
                    last_ts = int(ts[-1])
            found[directory.name] = (sid, last_ts, recent[-RECENT_KEYS:])
        write_manifest(self.out_dir, {n: v[0] for n, v in found.items()})
        return found

    @staticmethod
    def _wal_identity(wal: Path, directory: Path) -> StreamId | None:
        """A log's stream identity from its schema metadata (written when it was opened)."""
        try:
            with pa.OSFile(str(wal), "rb") as source:
                meta = pa.ipc.open_stream(source).schema.metadata or {}
        except (pa.ArrowInvalid, OSError):
            return None
        if METADATA_KEY not in meta:
            return None
        raw = json.loads(meta[METADATA_KEY])
        schema = SCHEMAS[raw["event"]]
        return StreamId(schema.name, tuple(raw["constants"][c] for c in schema.constants))

    def _add(self, name: str, sid: StreamId) -> _Stream:
        stream = _Stream(sid, self.out_dir / name)
        self.streams[name] = stream
        self._by_id[sid] = stream
        return stream

    def _stream_for(self, sid: StreamId) -> _Stream:
        stream = self._by_id.get(sid)
        if stream is not None:
            return stream
        name = sid.slug()
        if name in self.streams:  # two identities with the same safe name: keep them apart
            name += "-" + hashlib.sha256(repr(sid).encode()).hexdigest()[:8]
        return self._add(name, sid)

    # -- accepting events ------------------------------------------------------------------------

    def record(self, event: Event) -> bool:
        """Buffer one event for its stream; False if it is skipped (not market data, a duplicate,
        or invalid). Call from the event loop; the flush makes it durable."""
        sid = stream_id_of(event)
        if sid is None:
            return False
        stream = self._stream_for(sid)
        stats = stream.stats
        stats.received += 1
        key = dedup_key(event)
        state = state_key(event)
        if key in stream.recent or (state is not None and state == stream.last_state):
            stats.duplicates += 1
            return False
        reason = invalid_reason(event, sid.schema)
        if reason is not None:
            stats.invalid += 1
            if stats.invalid <= _WARN_LIMIT:
                log.warning("recorder: %s event skipped: %s", sid.slug(), reason)
            return False
        stream.recent.add(key)
        stream.last_state = state
        if stream.last_ts is not None and event.ts < stream.last_ts:
            event = event._replace(ts=stream.last_ts)
            stats.clamped += 1
        stream.last_ts = event.ts
        stream.buffer.append(event)
        if len(stream.buffer) >= self.flush_rows:
            self._flush_now.set()
        return True

    # -- flushing and rotation -------------------------------------------------------------------

    def _period(self, now_ns: int) -> int:
        return now_ns // self.rotate_ns

    def _open_wal(self, stream: _Stream, period: int, schema: Any) -> _Wal:
        """(I/O thread.) A new log for `period`, as the first free segment of that period."""
        stream.directory.mkdir(parents=True, exist_ok=True)
        label = period_label(period * self.rotate_ns, self.rotate_ns)
        k = 0
        while True:
            stem = label if k == 0 else f"{label}-{k}"
            path = stream.directory / (stem + WAL_SUFFIX)
            if not path.exists() and not path.with_suffix(PARQUET_SUFFIX).exists():
                break
            k += 1
        wal = _Wal(path, schema)
        _fsync_dir(stream.directory)
        return wal

    def _write(self, stream: _Stream, events: list[Event], period: int) -> int:
        """(I/O thread.) Append `events` to the stream's log for `period` (sealing an older one)."""
        table = _table(stream.sid, events)
        check_table(stream.directory, stream.sid.event, table)  # never log what the loader refuses
        if stream.wal is not None and stream.wal_period != period:
            self._seal_stream(stream)
        if stream.wal is None:
            meta = {
                "format": "perpetua-stream",
                "version": SCHEMA_VERSION,
                "event": stream.sid.event,
                "constants": stream.sid.constants_map(),
            }
            schema = table.schema.with_metadata({METADATA_KEY: json.dumps(meta, sort_keys=True).encode()})
            stream.wal = self._open_wal(stream, period, schema)
            stream.wal_period = period
        stream.wal.append(table.replace_schema_metadata(stream.wal.schema.metadata))
        return stream.wal.rows

    def _seal_stream(self, stream: _Stream) -> Path | None:
        """(I/O thread.) Close and seal the stream's open log."""
        if stream.wal is None:
            return None
        stream.wal.close()
        path = stream.wal.path
        stream.wal = None
        stream.wal_period = None
        sealed = seal(path, stream.sid)
        if sealed is not None:
            stream.stats.files_sealed += 1
            self._manifest_stale = True
        return sealed

    async def flush(self) -> None:
        """Make every buffered event durable in its stream's write-ahead log."""
        period = self._period(self.clock())
        for name, stream in list(self.streams.items()):
            if not stream.buffer:
                continue
            events, stream.buffer = stream.buffer, []
            await self._disk(self._write, stream, events, period)
            stream.stats.written += len(events)
            if self.on_flush is not None:
                self.on_flush(name, stream.stats.written)

    async def rotate(self) -> None:
        """Flush, then seal every log of a period that has ended, and rewrite the manifest."""
        await self.flush()
        period = self._period(self.clock())
        ended = [s for s in self.streams.values() if s.wal is not None and s.wal_period != period]
        for stream in ended:
            await self._disk(self._seal_stream, stream)
        if self._manifest_stale:  # streams with new rows were sealed by the flush itself
            await self._disk(self._write_manifest)

    async def seal_all(self) -> None:
        """Flush and seal every open log, and rewrite the manifest (a graceful stop does this)."""
        await self.flush()
        for stream in self.streams.values():
            await self._disk(self._seal_stream, stream)
        await self._disk(self._write_manifest)

    def _write_manifest(self) -> Path | None:
        self._manifest_stale = False
        return write_manifest(self.out_dir, {n: s.sid for n, s in self.streams.items()})

    # -- running ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask `run` to stop gracefully (safe from a signal handler)."""
        self._stopping.set()
        self._flush_now.set()  # wake the writer so it finishes its flush and leaves

    async def run(self, duration_s: float | None = None) -> None:
        """Record until `stop()` or `duration_s` seconds; then flush, seal and write the manifest."""
        await self.open()
        pumps = [asyncio.create_task(self._pump(s), name=f"record:{s.name}") for s in self.sources]
        writer = asyncio.create_task(self._writer_loop(), name="record:writer")
        try:
            if duration_s is None:
                await self._stopping.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), duration_s)
        finally:
            self.stop()
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            # The writer is never cancelled: a flush cut at its await would drop the batch it took.
            failure: BaseException | None = None
            try:
                await writer
            except Exception as exc:
                failure = exc
            try:
                await self.seal_all()
            finally:
                self._io.shutdown(wait=True)
            if failure is not None:
                raise failure

    async def _pump(self, source: RecordSource) -> None:
        """Record one source's stream; restart it with backoff when it fails or ends."""
        attempt = 0
        while not self._stopping.is_set():
            try:
                async for event in source.stream():
                    attempt = 0
                    self.record(event)
                log.warning("recorder: stream %s ended; restarting", source.name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one source's failure must not stop the others
                self.source_errors[source.name].append(f"{type(exc).__name__}: {exc}")
                log.warning("recorder: stream %s failed (%s); restarting", source.name, type(exc).__name__)
            self.source_restarts[source.name] += 1
            delay = self.restart.delay(attempt, self._rng)
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _writer_loop(self) -> None:
        """Flush every `flush_interval_s` (or when a buffer fills); rotate at each period's end."""
        while not self._stopping.is_set():
            now = self.clock()
            next_period_ns = (self._period(now) + 1) * self.rotate_ns
            wait_s = min(self.flush_interval_s, max(0.0, (next_period_ns - now) / NS))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), wait_s)
            self._flush_now.clear()
            try:
                await self.rotate()
            except Exception:
                # Without its writer the recording would silently stop being durable: stop it all.
                log.exception("recorder: writing failed; stopping")
                self.stop()
                raise


def describe(recorder: Recorder) -> Iterable[str]:
    """One line per stream: rows written, duplicates and invalid events skipped, files sealed."""
    for name, s in sorted(recorder.streams.items()):
        st = s.stats
        yield (
            f"{name}: {st.written} rows, {st.duplicates} duplicates skipped, {st.invalid} invalid, "
            f"{st.clamped} re-stamped, {st.files_sealed} files sealed"
        )
