"""Recorded market data on disk: the schema, loaders for Parquet and CSV, writers, validation, datasets.

One file holds one stream: events of one type from one source (one venue and instrument, one oracle
feed, one pool, one market's calendar). The schema is documented in `docs/data.md`; in short:

- Columns: `ts` first (int64 nanoseconds since the epoch, UTC), then the event's varying fields,
  named as the event's fields (`bid`, `ask`, `bid_size`, `ask_size` for a `Quote`). Optional
  columns (fields with a default, e.g. `Trade.trade_id`, `OraclePrice.round_id`) may be left out.
- The fields that never change within a stream (`venue`, `instrument`, `pool`, `source`,
  `market`) are not columns: a dataset's `manifest.yaml` names them for each file, and a Parquet
  file also carries them in its key-value metadata under `perpetua` (the two must agree).
- Integers beyond 64 bits (`PoolState.sqrt_price_x96`, `liquidity`, reserves) are decimal strings.

Loading converts each column to a numpy array (or, for Python-object fields, a list) once, then
hands the arrays to `backtest.replay.ColumnStream`, which builds the event tuples chunk by chunk
as the merge reaches them. `ParquetStream` reads a Parquet file lazily, one record batch at a
time, so memory stays flat in the file's length (bounded by the batch size and the row group).

Every problem with user data raises `DataError`, whose message names the file, the column, the
row (0-based data row: the header of a CSV is not a row) and the offending value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from backtest.replay import Chunk, ColumnStream, EventStream, ListStream
from core.enums import Session, Side
from core.errors import InvalidInput
from core.events import BookUpdate, Event, FundingRate, MarketStatus, OraclePrice, PoolState, Quote, Trade

SCHEMA_VERSION: Final = 1
"""Version of the file schema and manifest format described here."""
METADATA_KEY: Final = b"perpetua"
"""Parquet key-value metadata key holding `{"format", "version", "event", "constants"}` as JSON."""
MANIFEST_NAME: Final = "manifest.yaml"
"""File name of a dataset's manifest inside the dataset directory."""
MANIFEST_FORMAT: Final = "perpetua-dataset"
"""Value of the manifest's `format` key."""
DEFAULT_CHUNK_SIZE: Final = 65_536
"""Events per chunk handed to the merge (and rows per Parquet batch when reading lazily)."""
DEFAULT_ROW_GROUP_SIZE: Final = 131_072
"""Rows per Parquet row group when writing: the unit a lazy reader decompresses at once."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class _Required:
    """Marker for a column without a default."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Final = _Required()


class _NoValue:
    def __repr__(self) -> str:
        return "NO_VALUE"


_NO_VALUE: Final = _NoValue()


class DataError(InvalidInput):
    """Bad recorded data or a bad manifest: the message names the file, column, row and value.

    Attributes: `file` (path as given), `column` (or None for file-level problems), `row` (0-based
    data row, or None), `value` (the offending value, or None), `reason`.
    """

    def __init__(
        self,
        file: str | Path,
        reason: str,
        *,
        column: str | None = None,
        row: int | None = None,
        value: Any = _NO_VALUE,
    ) -> None:
        where = str(file)
        if column is not None:
            where += f": column {column!r}"
        if row is not None:
            where += f", row {row}"
        self.file = str(file)
        self.column = column
        self.row = row
        self.value = None if value is _NO_VALUE else value
        self.reason = reason
        self.field = where
        message = f"{where}: {reason}"
        if value is not _NO_VALUE:
            message += f", got {value!r}"
        Exception.__init__(self, message)  # InvalidInput's own format has no room for file/column/row


class ColumnKind(StrEnum):
    """Logical type of a column: which Arrow types are accepted and which values are valid."""

    TIME = "time"
    """int64 ns since the epoch, UTC (a timezone-aware timestamp column is accepted and converted)."""
    PRICE = "price"
    """float64, finite and > 0 (integer columns are accepted and converted)."""
    OPTIONAL_PRICE = "optional_price"
    """float64, NaN (or null) for "not given", otherwise finite and > 0."""
    SIZE = "size"
    """float64, finite and >= 0."""
    FLOAT = "float"
    """float64, finite (any sign)."""
    INT = "int"
    """int64."""
    BIG_UINT = "big_uint"
    """Unsigned integer of any size: decimal digit strings (or an integer / scale-0 decimal column)."""
    SIDE = "side"
    """'buy', 'sell', or null / '' for unknown."""
    SESSION = "session"
    """A `core.enums.Session` value ('regular', 'weekend', ...)."""
    TEXT = "text"
    """A string."""
    BOOL = "bool"
    """true / false."""
    LEVELS = "levels"
    """Book levels, best first, flattened `[price0, size0, price1, size1, ...]`: a list<double> column
    in Parquet, space-separated numbers in CSV."""


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One stored column: its name (= the event field), logical kind, and default when left out."""

    name: str
    kind: ColumnKind
    default: Any = REQUIRED

    @property
    def required(self) -> bool:
        """True if files must carry this column."""
        return self.default is REQUIRED


@dataclass(frozen=True, slots=True)
class EventSchema:
    """How one event type is stored: constant fields (from the manifest / metadata) and columns."""

    event_type: type[tuple[Any, ...]]
    constants: tuple[str, ...]
    columns: tuple[ColumnSpec, ...]

    @property
    def name(self) -> str:
        """Event type name, as written in manifests and metadata (`Quote`)."""
        return self.event_type.__name__

    @property
    def column_names(self) -> tuple[str, ...]:
        """All column names in file order: `ts` first."""
        return ("ts", *(c.name for c in self.columns))


K = ColumnKind
SCHEMAS: Final[dict[str, EventSchema]] = {
    s.name: s
    for s in (
        EventSchema(
            Quote,
            ("venue", "instrument"),
            (
                ColumnSpec("bid", K.PRICE),
                ColumnSpec("ask", K.PRICE),
                ColumnSpec("bid_size", K.SIZE),
                ColumnSpec("ask_size", K.SIZE),
            ),
        ),
        EventSchema(
            Trade,
            ("venue", "instrument"),
            (
                ColumnSpec("price", K.PRICE),
                ColumnSpec("size", K.SIZE),
                ColumnSpec("aggressor", K.SIDE, None),
                ColumnSpec("trade_id", K.TEXT, ""),
            ),
        ),
        EventSchema(
            BookUpdate,
            ("venue", "instrument"),
            (
                ColumnSpec("bids", K.LEVELS),
                ColumnSpec("asks", K.LEVELS),
                ColumnSpec("is_snapshot", K.BOOL, True),
            ),
        ),
        EventSchema(
            PoolState,
            ("venue", "pool"),
            (
                ColumnSpec("block_number", K.INT),
                ColumnSpec("reserve0", K.BIG_UINT, 0),
                ColumnSpec("reserve1", K.BIG_UINT, 0),
                ColumnSpec("sqrt_price_x96", K.BIG_UINT, 0),
                ColumnSpec("tick", K.INT, 0),
                ColumnSpec("liquidity", K.BIG_UINT, 0),
            ),
        ),
        EventSchema(
            OraclePrice,
            ("source", "instrument"),
            (
                ColumnSpec("price", K.PRICE),
                ColumnSpec("publish_ts", K.TIME),
                ColumnSpec("round_id", K.INT, 0),
                ColumnSpec("market_status", K.SESSION, None),
            ),
        ),
        EventSchema(
            FundingRate,
            ("venue", "instrument"),
            (
                ColumnSpec("rate", K.FLOAT),
                ColumnSpec("interval_ns", K.INT),
                ColumnSpec("next_funding_ts", K.TIME),
                ColumnSpec("mark_price", K.OPTIONAL_PRICE, float("nan")),
                ColumnSpec("index_price", K.OPTIONAL_PRICE, float("nan")),
            ),
        ),
        EventSchema(
            MarketStatus,
            ("market",),
            (ColumnSpec("session", K.SESSION), ColumnSpec("next_change_ts", K.TIME)),
        ),
    )
}
"""Storage schema of every market-data event type, by event type name. (`Fill`, `OrderUpdate` and
`FundingPayment` are our own execution events, produced by venues, never recorded market data.)"""

_LIST_STREAM_EVENTS: Final = frozenset({"MarketStatus"})  # small streams: built once into a ListStream
_FLOAT_KINDS: Final = frozenset({K.PRICE, K.OPTIONAL_PRICE, K.SIZE, K.FLOAT})
_STRING_KINDS: Final = frozenset({K.BIG_UINT, K.SIDE, K.SESSION, K.TEXT, K.LEVELS})
_SIDES: Final[dict[str, Side | None]] = {"buy": Side.BUY, "sell": Side.SELL, "": None}
_SESSIONS: Final[dict[str, Session]] = {s.value: s for s in Session}


def schema_for(event: str | type[tuple[Any, ...]]) -> EventSchema:
    """The storage schema of an event type, by class or name; `InvalidInput` for unknown types."""
    name = event if isinstance(event, str) else event.__name__
    try:
        return SCHEMAS[name]
    except KeyError:
        raise InvalidInput("event", name, f"not a stored event type; one of {sorted(SCHEMAS)}") from None


# --------------------------------------------------------------------------------------------
# Arrow -> numpy conversion and validation


def _is_stringish(t: Any) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t)) or (
        pa.types.is_dictionary(t)
        and bool(pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type))
    )


def _accepts(kind: ColumnKind, t: Any) -> bool:
    """True if an Arrow column of type `t` can hold a column of `kind`."""
    if kind is K.TIME:
        return bool(pa.types.is_integer(t) or pa.types.is_timestamp(t))
    if kind in _FLOAT_KINDS:
        return bool(pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t))
    if kind is K.INT:
        return bool(pa.types.is_integer(t))
    if kind is K.BIG_UINT:
        return bool(pa.types.is_integer(t) or _is_stringish(t) or (pa.types.is_decimal(t) and t.scale == 0))
    if kind in (K.SIDE, K.SESSION, K.TEXT):
        return _is_stringish(t)
    if kind is K.BOOL:
        return bool(pa.types.is_boolean(t))
    if kind is K.LEVELS:
        return _is_stringish(t) or (
            bool(pa.types.is_list(t) or pa.types.is_large_list(t))
            and bool(pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type))
        )
    raise AssertionError(kind)


_EXPECTED: Final[dict[ColumnKind, str]] = {
    K.TIME: "int64 nanoseconds since the epoch UTC (or a timezone-aware timestamp)",
    K.PRICE: "a float column",
    K.OPTIONAL_PRICE: "a float column",
    K.SIZE: "a float column",
    K.FLOAT: "a float column",
    K.INT: "an integer column",
    K.BIG_UINT: "decimal digit strings or an integer column",
    K.SIDE: "a string column ('buy', 'sell' or empty)",
    K.SESSION: f"a string column (one of {', '.join(_SESSIONS)})",
    K.TEXT: "a string column",
    K.BOOL: "a boolean column (true/false)",
    K.LEVELS: "a list<double> column (price, size pairs), or space-separated numbers in CSV",
}


def check_arrow_schema(arrow_schema: Any, schema: EventSchema, file: str | Path) -> None:
    """Refuse a file whose columns do not fit `schema`: missing, unknown or wrongly typed columns.

    `arrow_schema` is the file's `pyarrow.Schema` (Parquet) or the parsed CSV table's schema.
    """
    names = list(arrow_schema.names)
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(file, "duplicate column", column=name)
        seen.add(name)
    expected = schema.column_names
    specs = {"ts": ColumnSpec("ts", K.TIME), **{c.name: c for c in schema.columns}}
    for spec in specs.values():
        if spec.required and spec.name not in seen:
            raise DataError(
                file, f"missing column ({schema.name} files need {', '.join(expected)})", column=spec.name
            )
    for name in names:
        spec_or_none = specs.get(name)
        if spec_or_none is None:
            constant = " (a constant: give it in the manifest)" if name in schema.constants else ""
            raise DataError(
                file,
                f"unknown column for {schema.name}{constant}; columns are {', '.join(expected)}",
                column=name,
            )
        arrow_type = arrow_schema.field(name).type
        if pa.types.is_null(arrow_type):  # an all-empty CSV column
            if spec_or_none.required:
                raise DataError(file, "column is empty (all values missing)", column=name)
            continue
        if not _accepts(spec_or_none.kind, arrow_type):
            raise DataError(
                file,
                f"wrong dtype: expected {_EXPECTED[spec_or_none.kind]}",
                column=name,
                value=str(arrow_type),
            )
        if spec_or_none.kind is K.TIME and pa.types.is_timestamp(arrow_type) and arrow_type.tz is None:
            raise DataError(
                file,
                "timestamp without a time zone: give int64 ns UTC or timestamps with an offset (...Z)",
                column=name,
                value=str(arrow_type),
            )


def _first(mask: npt.NDArray[np.bool_]) -> int:
    return int(np.argmax(mask))


def _null_mask(array: Any) -> npt.NDArray[np.bool_]:
    mask: npt.NDArray[np.bool_] = np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=np.bool_)
    return mask


def _column_values(array: Any, spec: ColumnSpec, file: str | Path, row0: int) -> npt.NDArray[Any] | list[Any]:
    """Validate one column (an Arrow array of a batch starting at data row `row0`) and convert it.

    Returns a numpy array (float64, int64, bool, object for enums) or a list (big ints, strings,
    book levels): the form `ColumnStream` turns into event fields.
    """
    kind = spec.kind
    name = spec.name
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    n = len(array)
    if pa.types.is_null(array.type):  # an all-empty optional column: every row takes the default
        return _filled(spec, n)
    nulls = array.null_count
    if nulls and spec.required:
        row = _first(_null_mask(array))
        what = "missing or NaN value" if kind in _FLOAT_KINDS else "missing value"
        raise DataError(file, what, column=name, row=row0 + row, value=None)
    if kind in _FLOAT_KINDS:
        fill = float("nan") if nulls else None
        values = _to_float(array, fill)
        _check_floats(values, spec, file, row0)
        return values
    if kind in (K.INT, K.TIME):
        if nulls:
            array = pc.fill_null(array, int(spec.default))
        return _to_int64(array, spec, file, row0)
    if kind is K.BIG_UINT:
        return _to_big_uints(array, spec, file, row0)
    if kind is K.BOOL:
        if nulls:
            array = pc.fill_null(array, bool(spec.default))
        return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.bool_)
    if kind is K.LEVELS:
        return _to_levels(array, spec, file, row0)
    if kind is K.TEXT:
        default = "" if spec.required else spec.default
        return [default if v is None else v for v in array.to_pylist()]
    return _to_enums(array, spec, file, row0)


def _to_enums(array: Any, spec: ColumnSpec, file: str | Path, row0: int) -> npt.NDArray[Any]:
    """Map a string column to `Side` / `Session` members (object array) through its distinct values.

    Only the distinct values are looked up in Python; the rows are mapped with one numpy take.
    Null, and '' (CSV's null) in an optional column, take the default; '' is an unknown side.
    """
    table: Mapping[str, Any] = _SIDES if spec.kind is K.SIDE else _SESSIONS
    encoded = pc.dictionary_encode(array)
    distinct: list[str] = encoded.dictionary.to_pylist()
    lookup = np.empty(len(distinct) + 1, dtype=object)
    for j, value in enumerate(distinct):
        if value == "" and not spec.required:
            lookup[j] = spec.default
        elif value in table:
            lookup[j] = table[value]
        else:
            row = int(pc.index(array, value).as_py())
            choices = ", ".join(repr(k) for k in table)
            raise DataError(file, f"not one of {choices}", column=spec.name, row=row0 + row, value=value)
    lookup[-1] = spec.default  # nulls (a required column with nulls was refused already)
    indices = pc.fill_null(encoded.indices, len(distinct)).to_numpy(zero_copy_only=False)
    mapped: npt.NDArray[Any] = lookup[indices]
    return mapped


def _filled(spec: ColumnSpec, n: int) -> npt.NDArray[Any] | list[Any]:
    """A column of `n` copies of the spec's default, in the form `_column_values` returns."""
    if spec.kind in _FLOAT_KINDS:
        return np.full(n, spec.default, dtype=np.float64)
    if spec.kind in (K.INT, K.TIME):
        return np.full(n, spec.default, dtype=np.int64)
    if spec.kind is K.BOOL:
        return np.full(n, spec.default, dtype=np.bool_)
    if spec.kind in (K.SIDE, K.SESSION):
        out = np.empty(n, dtype=object)
        out[:] = spec.default  # None
        return out
    return [spec.default] * n


def _to_float(array: Any, fill: float | None) -> FloatArray:
    if fill is not None:
        array = pc.fill_null(pc.cast(array, pa.float64()), fill)
    values: FloatArray = np.asarray(
        pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
    )
    return values


def _check_floats(values: FloatArray, spec: ColumnSpec, file: str | Path, row0: int) -> None:
    kind = spec.kind
    finite = np.isfinite(values)
    if kind is K.OPTIONAL_PRICE:
        bad = (~finite & ~np.isnan(values)) | (values <= 0)
    elif kind is K.PRICE:
        bad = ~finite | (values <= 0)
    elif kind is K.SIZE:
        bad = ~finite | (values < 0)
    else:
        bad = ~finite
    if not bool(bad.any()):
        return
    i = _first(bad)
    v = float(values[i])
    noun = "price" if kind in (K.PRICE, K.OPTIONAL_PRICE) else "size" if kind is K.SIZE else "value"
    if math.isnan(v):
        reason = f"NaN {noun}"
    elif math.isinf(v):
        reason = f"infinite {noun}"
    elif kind is K.SIZE:
        reason = "negative size"
    else:
        reason = "price must be > 0"
    raise DataError(file, reason, column=spec.name, row=row0 + i, value=v)


def _to_int64(array: Any, spec: ColumnSpec, file: str | Path, row0: int) -> IntArray:
    t = array.type
    if pa.types.is_timestamp(t):
        ns = pc.cast(array, pa.timestamp("ns", tz=t.tz))
        values: IntArray = np.asarray(ns.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
        return values
    if pa.types.is_unsigned_integer(t) and len(array):
        top = pc.max(array).as_py()
        if top is not None and top > np.iinfo(np.int64).max:
            row = _first(np.asarray(pc.greater(array, np.iinfo(np.int64).max).to_numpy(zero_copy_only=False)))
            raise DataError(file, "does not fit int64", column=spec.name, row=row0 + row, value=top)
    values = np.asarray(pc.cast(array, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    return values


def _to_big_uints(array: Any, spec: ColumnSpec, file: str | Path, row0: int) -> list[int]:
    raw = array.to_pylist()
    out: list[int] = []
    default = 0 if spec.required else int(spec.default)
    for i, v in enumerate(raw):
        if v is None:
            out.append(default)
            continue
        try:
            number = int(v) if not isinstance(v, str) else int(v.strip(), 10)
        except (ValueError, ArithmeticError):
            raise DataError(
                file, "not a non-negative integer (decimal digits)", column=spec.name, row=row0 + i, value=v
            ) from None
        if not isinstance(v, str | int) and number != v:  # a Decimal with a fraction
            raise DataError(file, "not an integer", column=spec.name, row=row0 + i, value=v)
        if number < 0:
            raise DataError(file, "must be >= 0", column=spec.name, row=row0 + i, value=number)
        out.append(number)
    return out


def _to_levels(
    array: Any, spec: ColumnSpec, file: str | Path, row0: int
) -> list[tuple[tuple[float, float], ...]]:
    raw = array.to_pylist()
    out: list[tuple[tuple[float, float], ...]] = []
    for i, v in enumerate(raw):
        if v is None:
            raise DataError(file, "missing value", column=spec.name, row=row0 + i, value=None)
        try:
            numbers = [float(x) for x in v.split()] if isinstance(v, str) else [float(x) for x in v]
        except (TypeError, ValueError):
            raise DataError(
                file, "levels must be numbers 'price size ...'", column=spec.name, row=row0 + i, value=v
            ) from None
        if len(numbers) % 2:
            raise DataError(
                file,
                "levels need an even count of numbers (price, size pairs)",
                column=spec.name,
                row=row0 + i,
                value=v,
            )
        levels = tuple(zip(numbers[0::2], numbers[1::2], strict=True))
        for price, size in levels:
            if not (math.isfinite(price) and price > 0):
                raise DataError(
                    file, "level price must be finite and > 0", column=spec.name, row=row0 + i, value=price
                )
            if not (math.isfinite(size) and size >= 0):
                raise DataError(
                    file, "level size must be finite and >= 0", column=spec.name, row=row0 + i, value=size
                )
        out.append(levels)
    return out


def _check_ts(ts: IntArray, file: str | Path, row0: int, previous: int | None) -> None:
    """Refuse decreasing timestamps, within the batch and against the previous batch's last."""
    if previous is not None and len(ts) and int(ts[0]) < previous:
        raise DataError(
            file,
            f"timestamps must not decrease: row {row0 - 1} has {previous}",
            column="ts",
            row=row0,
            value=int(ts[0]),
        )
    if len(ts) > 1:
        back = np.diff(ts) < 0
        if bool(back.any()):
            i = _first(back) + 1
            raise DataError(
                file,
                f"timestamps must not decrease: row {row0 + i - 1} has {int(ts[i - 1])}",
                column="ts",
                row=row0 + i,
                value=int(ts[i]),
            )


@dataclass(slots=True)
class _Columns:
    """Validated, converted columns of one table or batch: ts and the event's varying fields."""

    ts: IntArray
    columns: list[npt.NDArray[Any] | list[Any]]


def _convert(
    table: Any, schema: EventSchema, file: str | Path, row0: int, previous_ts: int | None
) -> _Columns:
    """Validate and convert a pyarrow Table or RecordBatch whose schema passed `check_arrow_schema`."""
    names = set(table.schema.names)
    n = table.num_rows
    ts = _column_values(table.column("ts"), ColumnSpec("ts", K.TIME), file, row0)
    assert isinstance(ts, np.ndarray)
    _check_ts(ts, file, row0, previous_ts)
    columns: list[npt.NDArray[Any] | list[Any]] = []
    for spec in schema.columns:
        if spec.name in names:
            columns.append(_column_values(table.column(spec.name), spec, file, row0))
        else:
            columns.append(_filled(spec, n))
    return _Columns(ts, columns)


def _slice(cols: _Columns, start_ns: int | None, end_ns: int | None) -> _Columns:
    """Rows with start_ns <= ts < end_ns (ts is sorted)."""
    lo = 0 if start_ns is None else int(np.searchsorted(cols.ts, start_ns, side="left"))
    hi = len(cols.ts) if end_ns is None else int(np.searchsorted(cols.ts, end_ns, side="left"))
    if lo == 0 and hi == len(cols.ts):
        return cols
    return _Columns(cols.ts[lo:hi], [c[lo:hi] for c in cols.columns])


def _stream(
    schema: EventSchema,
    constants: Sequence[Any],
    cols: _Columns,
    chunk_size: int,
    name: str,
) -> EventStream:
    column_stream = ColumnStream(schema.event_type, cols.ts, constants, cols.columns, chunk_size, name)
    if schema.name in _LIST_STREAM_EVENTS:
        return ListStream([e for chunk in column_stream.chunks() for e in chunk.events], name=name)
    return column_stream


# --------------------------------------------------------------------------------------------
# Stream identity: event type and constants, from arguments, Parquet metadata or the manifest


def _resolve_identity(
    file: str | Path,
    event: str | type[tuple[Any, ...]] | None,
    constants: Mapping[str, str] | None,
    metadata: Mapping[bytes, bytes] | None,
) -> tuple[EventSchema, tuple[str, ...]]:
    """The stream's schema and constant values; arguments and Parquet metadata must agree."""
    stored: dict[str, Any] = {}
    if metadata and METADATA_KEY in metadata:
        try:
            stored = json.loads(metadata[METADATA_KEY])
        except ValueError:
            raise DataError(file, "unreadable 'perpetua' metadata (not JSON)") from None
        if not isinstance(stored, dict):
            raise DataError(file, "unreadable 'perpetua' metadata (not a JSON object)")
    event_name = event if isinstance(event, str) or event is None else event.__name__
    stored_event = stored.get("event")
    if event_name is None:
        event_name = stored_event
    elif stored_event is not None and stored_event != event_name:
        raise DataError(file, f"the file's metadata says event {stored_event!r}", value=event_name)
    if event_name is None:
        raise DataError(file, "no event type: pass event= or load it through a dataset manifest")
    if event_name not in SCHEMAS:
        raise DataError(file, f"unknown event type; one of {', '.join(SCHEMAS)}", value=event_name)
    schema = SCHEMAS[event_name]
    stored_constants = stored.get("constants") or {}
    values: list[str] = []
    for key in schema.constants:
        given = None if constants is None else constants.get(key)
        kept = stored_constants.get(key)
        if given is not None and kept is not None and given != kept:
            raise DataError(file, f"{key}: the file's metadata says {kept!r}", value=given)
        value = given if given is not None else kept
        if not isinstance(value, str) or not value:
            raise DataError(
                file, f"{schema.name} streams need {key!r} (in the manifest or metadata)", value=value
            )
        values.append(value)
    if constants is not None:
        extra = sorted(set(constants) - set(schema.constants))
        if extra:
            raise DataError(
                file, f"not a constant field of {schema.name} ({', '.join(schema.constants)})", value=extra[0]
            )
    return schema, tuple(values)


# --------------------------------------------------------------------------------------------
# Readers


def _check_window(start_ns: int | None, end_ns: int | None) -> None:
    if start_ns is not None and end_ns is not None and end_ns < start_ns:
        raise InvalidInput("end_ns", end_ns, f"must be >= start_ns {start_ns}")


def read_parquet(
    path: str | Path,
    event: str | type[tuple[Any, ...]] | None = None,
    constants: Mapping[str, str] | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    start_ns: int | None = None,
    end_ns: int | None = None,
    name: str = "",
) -> EventStream:
    """Load a whole Parquet stream into numpy arrays at once; a `ColumnStream` (a `ListStream` for
    `MarketStatus`). Rows outside [start_ns, end_ns) are dropped after validation."""
    _check_window(start_ns, end_ns)
    path = Path(path)
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(path, f"cannot read Parquet file: {exc}") from None
    schema, values = _resolve_identity(path, event, constants, pf.schema_arrow.metadata)
    check_arrow_schema(pf.schema_arrow, schema, path)
    table = pf.read()
    cols = _slice(_convert(table, schema, path, 0, None), start_ns, end_ns)
    return _stream(schema, values, cols, chunk_size, name or path.stem)


def _csv_table(path: Path, schema: EventSchema) -> Any:
    """Parse a CSV file; columns whose values are text (big ints, enums, ids, levels) stay strings."""
    try:
        header = pacsv.read_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16)).schema.names
    except (OSError, pa.ArrowException) as exc:
        raise DataError(path, f"cannot read CSV file: {exc}") from None
    kinds = {c.name: c.kind for c in schema.columns}
    types = {n: pa.string() for n in header if kinds.get(n) in _STRING_KINDS}
    convert = pacsv.ConvertOptions(column_types=types, strings_can_be_null=False)
    try:
        return pacsv.read_csv(path, convert_options=convert)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(path, f"cannot read CSV file: {exc}") from None


def _explain_csv_type(table: Any, schema: EventSchema, path: Path) -> None:
    """For numeric columns that parsed as text, name the first value that is not a number."""
    kinds = {"ts": K.TIME, **{c.name: c.kind for c in schema.columns}}
    for name in table.schema.names:
        kind = kinds.get(name)
        t = table.schema.field(name).type
        if kind in (*_FLOAT_KINDS, K.INT, K.TIME) and _is_stringish(t):
            for i, v in enumerate(table.column(name).to_pylist()):
                try:
                    float(v) if kind in _FLOAT_KINDS else int(v)
                except (TypeError, ValueError):
                    raise DataError(
                        path,
                        f"wrong dtype: expected {_EXPECTED[kind]}; not a number",
                        column=name,
                        row=i,
                        value=v,
                    ) from None
        if kind is K.INT and pa.types.is_floating(t):
            values = table.column(name).to_numpy()
            bad = np.flatnonzero(values != np.floor(values))  # NaN compares unequal too
            if len(bad):
                row = int(bad[0])
                raise DataError(
                    path,
                    f"wrong dtype: expected {_EXPECTED[kind]}",
                    column=name,
                    row=row,
                    value=float(values[row]),
                )


def read_csv(
    path: str | Path,
    event: str | type[tuple[Any, ...]],
    constants: Mapping[str, str],
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    start_ns: int | None = None,
    end_ns: int | None = None,
    name: str = "",
) -> EventStream:
    """Load a CSV stream (same columns as Parquet; `.csv.gz` works) into numpy arrays at once.

    CSV has no metadata, so `event` and `constants` are required (a manifest supplies them).
    `ts` may be integer ns or ISO 8601 timestamps with an offset (`2025-07-01T13:30:00Z`).
    """
    _check_window(start_ns, end_ns)
    path = Path(path)
    schema, values = _resolve_identity(path, event, constants, None)
    table = _csv_table(path, schema)
    _explain_csv_type(table, schema, path)
    check_arrow_schema(table.schema, schema, path)
    cols = _slice(_convert(table, schema, path, 0, None), start_ns, end_ns)
    return _stream(schema, values, cols, chunk_size, name or path.name.split(".")[0])


class ParquetStream(EventStream):
    """A Parquet stream read lazily: one record batch at a time, validated and converted per batch.

    Memory stays flat in the file's length: about one row group of compressed column data plus
    one batch of arrays and events. Row groups entirely outside [start_ns, end_ns) are skipped
    using the file's `ts` statistics. The file's columns and types are checked when the stream is
    created; values are checked as batches are read (an error names the file-wide row number).
    """

    def __init__(
        self,
        path: str | Path,
        event: str | type[tuple[Any, ...]] | None = None,
        constants: Mapping[str, str] | None = None,
        *,
        batch_size: int = DEFAULT_CHUNK_SIZE,
        start_ns: int | None = None,
        end_ns: int | None = None,
        name: str = "",
    ) -> None:
        _check_window(start_ns, end_ns)
        if batch_size <= 0:
            raise InvalidInput("batch_size", batch_size, "must be > 0")
        self.path = Path(path)
        try:
            pf = pq.ParquetFile(self.path)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(self.path, f"cannot read Parquet file: {exc}") from None
        self.schema, self.constants = _resolve_identity(self.path, event, constants, pf.schema_arrow.metadata)
        check_arrow_schema(pf.schema_arrow, self.schema, self.path)
        self._columns = list(pf.schema_arrow.names)
        self.batch_size = batch_size
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.name = name or self.path.stem
        self.num_rows: int = pf.metadata.num_rows

    def kind(self) -> tuple[type[tuple[Any, ...]], tuple[Any, ...]]:
        """(event type, constants)."""
        return self.schema.event_type, self.constants

    def _row_groups(self, pf: Any) -> list[tuple[int, int]]:
        """(row group index, first data row) of the groups that may hold rows in the window."""
        meta = pf.metadata
        ts_index = pf.schema_arrow.get_field_index("ts")
        out: list[tuple[int, int]] = []
        row = 0
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            stats = group.column(ts_index).statistics
            keep = True
            if stats is not None and stats.has_min_max and isinstance(stats.min, int):
                # Skipping is safe only if ts stays sorted, which every read batch re-checks.
                if self.start_ns is not None and stats.max < self.start_ns:
                    keep = False
                if self.end_ns is not None and stats.min >= self.end_ns:
                    keep = False
            if keep:
                out.append((g, row))
            row += group.num_rows
        return out

    def chunks(self) -> Iterator[Chunk]:
        """Chunks of at most `batch_size` events, in file order."""
        pf = pq.ParquetFile(self.path)
        previous: int | None = None
        for group, first_row in self._row_groups(pf):
            row0 = first_row
            for batch in pf.iter_batches(
                batch_size=self.batch_size, row_groups=[group], columns=self._columns
            ):
                # Skipped groups break row continuity, so only compare against the previous group kept.
                cols = _convert(batch, self.schema, self.path, row0, previous)
                row0 += batch.num_rows
                if len(cols.ts):
                    previous = int(cols.ts[-1])
                cols = _slice(cols, self.start_ns, self.end_ns)
                if len(cols.ts):
                    stream = ColumnStream(
                        self.schema.event_type, cols.ts, self.constants, cols.columns, len(cols.ts), self.name
                    )
                    yield from stream.chunks()
                if self.end_ns is not None and previous is not None and previous >= self.end_ns:
                    return

    def validate(self) -> int:
        """Read and check every row without building events; returns the row count."""
        pf = pq.ParquetFile(self.path)
        previous: int | None = None
        row0 = 0
        for batch in pf.iter_batches(batch_size=self.batch_size, columns=self._columns):
            cols = _convert(batch, self.schema, self.path, row0, previous)
            row0 += batch.num_rows
            if len(cols.ts):
                previous = int(cols.ts[-1])
        return row0


def read_stream(
    path: str | Path,
    event: str | type[tuple[Any, ...]] | None = None,
    constants: Mapping[str, str] | None = None,
    *,
    lazy: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    start_ns: int | None = None,
    end_ns: int | None = None,
    name: str = "",
) -> EventStream:
    """Load one stream file by its suffix: `.parquet` (whole, or `lazy` in batches), `.csv`, `.csv.gz`."""
    path = Path(path)
    suffixes = "".join(path.suffixes[-2:]).lower()
    if path.suffix.lower() in (".parquet", ".pq"):
        if lazy:
            return ParquetStream(
                path, event, constants, batch_size=chunk_size, start_ns=start_ns, end_ns=end_ns, name=name
            )
        return read_parquet(
            path, event, constants, chunk_size=chunk_size, start_ns=start_ns, end_ns=end_ns, name=name
        )
    if path.suffix.lower() == ".csv" or suffixes.endswith((".csv.gz", ".csv.bz2")):
        if lazy:
            raise DataError(path, "lazy (batched) reading needs Parquet; load CSV whole or convert it")
        if event is None or constants is None:
            raise DataError(path, "a CSV file carries no metadata: pass event= and constants=")
        return read_csv(
            path, event, constants, chunk_size=chunk_size, start_ns=start_ns, end_ns=end_ns, name=name
        )
    raise DataError(path, "unknown file type: expected .parquet, .csv or .csv.gz")


# --------------------------------------------------------------------------------------------
# Writers


def _arrow_column(spec: ColumnSpec, values: Any, n: int) -> Any:
    """An Arrow array for a column of `kind` from numpy arrays or Python sequences."""
    kind = spec.kind
    if kind in _FLOAT_KINDS:
        return pa.array(np.asarray(values, dtype=np.float64), type=pa.float64())
    if kind in (K.INT, K.TIME):
        return pa.array(np.asarray(values, dtype=np.int64), type=pa.int64())
    if kind is K.BOOL:
        return pa.array(np.asarray(values, dtype=np.bool_), type=pa.bool_())
    if kind is K.BIG_UINT:
        return pa.array([str(int(v)) for v in values], type=pa.string())
    if kind in (K.SIDE, K.SESSION):
        return pa.array(
            [None if v is None else str(getattr(v, "value", v)) for v in values], type=pa.string()
        )
    if kind is K.TEXT:
        return pa.array([str(v) for v in values], type=pa.string())
    if kind is K.LEVELS:
        return pa.array([[x for level in v for x in level] for v in values], type=pa.list_(pa.float64()))
    raise AssertionError(kind)


def columns_table(
    event: str | type[tuple[Any, ...]],
    ts: npt.ArrayLike,
    columns: Mapping[str, Any],
) -> Any:
    """A pyarrow Table in the stored layout from column values (`ts` ns UTC, then the named columns).

    Optional columns may be left out of `columns`; unknown names are refused.
    """
    schema = schema_for(event)
    ts_array = np.asarray(ts, dtype=np.int64)
    known = {c.name for c in schema.columns}
    unknown = sorted(set(columns) - known)
    if unknown:
        raise InvalidInput("columns", unknown[0], f"not a column of {schema.name}; one of {sorted(known)}")
    arrays = [pa.array(ts_array, type=pa.int64())]
    names = ["ts"]
    for spec in schema.columns:
        if spec.name not in columns:
            if spec.required:
                raise InvalidInput("columns", spec.name, f"required column of {schema.name} missing")
            continue
        values = columns[spec.name]
        if len(values) != len(ts_array):
            raise InvalidInput(
                f"columns[{spec.name!r}]", len(values), f"length differs from ts ({len(ts_array)})"
            )
        arrays.append(_arrow_column(spec, values, len(ts_array)))
        names.append(spec.name)
    return pa.Table.from_arrays(arrays, names=names)


def _events_columns(
    events: Sequence[Event],
) -> tuple[EventSchema, dict[str, str], IntArray, dict[str, list[Any]]]:
    if not events:
        raise InvalidInput("events", 0, "need at least one event to infer the type and constants")
    schema = schema_for(type(events[0]))
    constants = {k: getattr(events[0], k) for k in schema.constants}
    for i, e in enumerate(events):
        if type(e) is not schema.event_type:
            raise InvalidInput(
                f"events[{i}]", type(e).__name__, f"a stream holds one event type ({schema.name})"
            )
        for k, v in constants.items():
            if getattr(e, k) != v:
                raise InvalidInput(f"events[{i}].{k}", getattr(e, k), f"a stream keeps {k} constant ({v!r})")
    ts = np.fromiter((e.ts for e in events), dtype=np.int64, count=len(events))
    columns = {c.name: [getattr(e, c.name) for e in events] for c in schema.columns}
    return schema, constants, ts, columns


def write_parquet(
    path: str | Path,
    event: str | type[tuple[Any, ...]],
    constants: Mapping[str, str],
    ts: npt.ArrayLike,
    columns: Mapping[str, Any],
    *,
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
    compression: str = "zstd",
    compression_level: int | None = 9,
) -> Path:
    """Write one stream as Parquet in the documented layout, with its identity in the metadata.

    The data is validated exactly as the readers validate it before anything is written.
    Encodings: timestamps and integers delta-encoded, floats byte-stream-split, all zstd
    compressed; strings (enums) dictionary-encoded. Returns the path.
    """
    table = columns_table(event, ts, columns)
    return write_table(
        path,
        event,
        constants,
        table,
        row_group_size=row_group_size,
        compression=compression,
        compression_level=compression_level,
    )


def check_table(
    file: str | Path, event: str | type[tuple[Any, ...]], table: Any, previous_ts: int | None = None
) -> None:
    """Validate a pyarrow Table or RecordBatch in the stored layout exactly as the readers do.

    `previous_ts` (ns) is the last timestamp before the table's first row, if any; raises `DataError`.
    """
    schema = schema_for(event)
    check_arrow_schema(table.schema, schema, file)
    _convert(table, schema, file, 0, previous_ts)


def write_table(
    path: str | Path,
    event: str | type[tuple[Any, ...]],
    constants: Mapping[str, str],
    table: Any,
    *,
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
    compression: str = "zstd",
    compression_level: int | None = 9,
) -> Path:
    """Write a pyarrow Table in the stored layout (see `columns_table`) as a Parquet stream.

    Validated as `write_parquet` validates; same encodings and metadata. Returns the path.
    """
    path = Path(path)
    schema = schema_for(event)
    identity_schema, values = _resolve_identity(path, schema.name, constants, None)
    check_arrow_schema(table.schema, schema, path)
    _convert(table, schema, path, 0, None)  # refuse to write what could not be read back
    meta: dict[str, Any] = {"format": "perpetua-stream", "version": SCHEMA_VERSION, "event": schema.name}
    meta["constants"] = dict(zip(identity_schema.constants, values, strict=True))
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta, sort_keys=True).encode()})
    kinds = {"ts": K.TIME, **{c.name: c.kind for c in schema.columns}}
    encoding: dict[str, str] = {}
    dictionary: list[str] = []
    for name in table.schema.names:
        kind = kinds[name]
        if kind in (K.TIME, K.INT):
            encoding[name] = "DELTA_BINARY_PACKED"
        elif kind in _FLOAT_KINDS:
            encoding[name] = "BYTE_STREAM_SPLIT"
        elif kind in (K.SIDE, K.SESSION, K.TEXT):
            dictionary.append(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        table,
        path,
        row_group_size=row_group_size,
        compression=compression,
        compression_level=compression_level,
        use_dictionary=dictionary or False,
        column_encoding=encoding or None,
        write_statistics=["ts"],
    )
    return path


def write_events(path: str | Path, events: Sequence[Event], **kwargs: Any) -> Path:
    """Write events of one type and one source (same constants) to `path` (`.parquet` or `.csv`)."""
    schema, constants, ts, columns = _events_columns(events)
    path = Path(path)
    if path.suffix.lower() == ".csv" or path.name.lower().endswith(".csv.gz"):
        return write_csv(path, schema.name, ts, columns)
    return write_parquet(path, schema.name, constants, ts, columns, **kwargs)


def write_csv(
    path: str | Path, event: str | type[tuple[Any, ...]], ts: npt.ArrayLike, columns: Mapping[str, Any]
) -> Path:
    """Write one stream as CSV with the same columns (constants go in the manifest, not the file).

    Floats are written in Arrow's shortest round-trip form (reading back gives the same float64);
    book levels as space-separated numbers (Python's repr, also round-trip); big integers as digits.
    """
    path = Path(path)
    schema = schema_for(event)
    table = columns_table(schema.name, ts, columns)
    _convert(table, schema, path, 0, None)
    kinds = {c.name: c.kind for c in schema.columns}
    out: list[Any] = []
    for name in table.schema.names:
        column = table.column(name)
        kind = kinds.get(name)
        if kind is K.LEVELS:
            column = pa.array(
                [" ".join(repr(float(x)) for x in v) for v in column.to_pylist()], type=pa.string()
            )
        elif kind in (K.SIDE, K.SESSION):
            column = pc.fill_null(column, "")
        out.append(column)
    path.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(
        pa.Table.from_arrays(out, names=table.schema.names),
        path,
        write_options=pacsv.WriteOptions(quoting_style="needed"),
    )
    return path


def market_status_columns(events: Iterable[MarketStatus]) -> tuple[str, IntArray, dict[str, list[Any]]]:
    """(market, ts, columns) of calendar `MarketStatus` events, ready for `write_parquet`."""
    items = list(events)
    markets = {e.market for e in items}
    if len(markets) != 1:
        raise InvalidInput("events.market", sorted(markets), "a stream holds one market")
    ts = np.fromiter((e.ts for e in items), dtype=np.int64, count=len(items))
    return (
        markets.pop(),
        ts,
        {"session": [e.session for e in items], "next_change_ts": [e.next_change_ts for e in items]},
    )


# --------------------------------------------------------------------------------------------
# Datasets: a directory with a manifest naming its stream files


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One stream of a dataset: its name, file (relative to the manifest), event type, constants.

    A stream stored in several files in time order (a recording rotated hourly) lists them all in
    `files`; `file` is then the first of them.
    """

    name: str
    file: str
    event: str
    constants: Mapping[str, str]
    info: Mapping[str, Any] = field(default_factory=dict)
    files: tuple[str, ...] = ()

    @property
    def paths(self) -> tuple[str, ...]:
        """Every file of the stream in time order, relative to the manifest."""
        return self.files or (self.file,)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A dataset's `manifest.yaml`: its streams, a description, and free-form generator notes."""

    path: Path
    streams: tuple[StreamEntry, ...]
    description: str = ""
    generator: Mapping[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        """Directory the stream files are relative to."""
        return self.path.parent

    def entry(self, name: str) -> StreamEntry:
        """The stream called `name`."""
        for e in self.streams:
            if e.name == name:
                return e
        raise InvalidInput(
            "stream", name, f"not in {self.path}; streams are {[e.name for e in self.streams]}"
        )


_MANIFEST_KEYS: Final = frozenset({"format", "version", "description", "streams", "generator"})
_STREAM_KEYS: Final = frozenset({"name", "file", "files", "event", "info"})


def _manifest_path(path: str | Path) -> Path:
    p = Path(path)
    return p / MANIFEST_NAME if p.is_dir() else p


def load_manifest(path: str | Path) -> Manifest:
    """Read and check a dataset manifest (a directory holding `manifest.yaml`, or the file itself).

    Unknown keys, unknown event types, missing constants, duplicate names and missing files are
    refused with the manifest path and the key (`streams[2].event`).
    """
    mpath = _manifest_path(path)
    try:
        text = mpath.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(mpath, f"cannot read manifest: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DataError(mpath, f"not valid YAML: {exc}") from None

    def bad(key: str, reason: str, value: Any = _NO_VALUE) -> DataError:
        return DataError(f"{mpath}: {key}", reason, value=value)

    if not isinstance(raw, dict):
        raise DataError(mpath, "a manifest is a mapping with format, version and streams")
    for key in raw:
        if key not in _MANIFEST_KEYS:
            raise bad(str(key), f"unknown key; keys are {sorted(_MANIFEST_KEYS)}")
    if raw.get("format") != MANIFEST_FORMAT:
        raise bad("format", f"must be {MANIFEST_FORMAT!r}", raw.get("format"))
    if raw.get("version") != SCHEMA_VERSION:
        raise bad("version", f"this reader knows version {SCHEMA_VERSION}", raw.get("version"))
    streams_raw = raw.get("streams")
    if not isinstance(streams_raw, list) or not streams_raw:
        raise bad("streams", "must be a non-empty list", streams_raw)
    entries: list[StreamEntry] = []
    names: set[str] = set()
    for i, item in enumerate(streams_raw):
        where = f"streams[{i}]"
        if not isinstance(item, dict):
            raise bad(where, "must be a mapping", item)
        event = item.get("event")
        if event not in SCHEMAS:
            raise bad(f"{where}.event", f"unknown event type; one of {', '.join(SCHEMAS)}", event)
        schema = SCHEMAS[event]
        allowed = _STREAM_KEYS | set(schema.constants)
        for key in item:
            if key not in allowed:
                raise bad(f"{where}.{key}", f"unknown key for a {event} stream; keys are {sorted(allowed)}")
        files: tuple[str, ...] = ()
        if "files" in item:
            # One stream in several files, in time order (e.g. a recording rotated hourly).
            listed = item["files"]
            if "file" in item:
                raise bad(f"{where}.files", "give either file or files, not both", listed)
            if not isinstance(listed, list) or not listed:
                raise bad(f"{where}.files", "must be a non-empty list of file names", listed)
            for j, one in enumerate(listed):
                if not isinstance(one, str) or not one:
                    raise bad(f"{where}.files[{j}]", "must be a file name relative to the manifest", one)
                if not (mpath.parent / one).is_file():
                    raise bad(f"{where}.files[{j}]", "no such file next to the manifest", one)
            files = tuple(listed)
            file = files[0]
        else:
            given = item.get("file")
            if not isinstance(given, str) or not given:
                raise bad(f"{where}.file", "must be a file name relative to the manifest", given)
            file = given
            if not (mpath.parent / file).is_file():
                raise bad(f"{where}.file", "no such file next to the manifest", file)
        constants: dict[str, str] = {}
        for key in schema.constants:
            value = item.get(key)
            if not isinstance(value, str) or not value:
                raise bad(f"{where}.{key}", f"{event} streams need a non-empty {key}", value)
            constants[key] = value
        name = item.get("name", Path(file).name.split(".")[0])
        if not isinstance(name, str) or not name:
            raise bad(f"{where}.name", "must be a non-empty string", name)
        if name in names:
            raise bad(f"{where}.name", "duplicate stream name", name)
        names.add(name)
        info = item.get("info", {})
        if not isinstance(info, dict):
            raise bad(f"{where}.info", "must be a mapping", info)
        entries.append(StreamEntry(name, file, event, constants, info, files))
    description = raw.get("description", "")
    generator = raw.get("generator", {})
    if not isinstance(generator, dict):
        raise bad("generator", "must be a mapping", generator)
    return Manifest(mpath, tuple(entries), str(description), generator)


@dataclass(frozen=True, slots=True)
class Dataset:
    """A loaded dataset: its manifest and one event stream per entry, in manifest order."""

    manifest: Manifest
    streams: tuple[EventStream, ...]

    def stream(self, name: str) -> EventStream:
        """The stream called `name`."""
        for entry, stream in zip(self.manifest.streams, self.streams, strict=True):
            if entry.name == name:
                return stream
        raise InvalidInput(
            "stream", name, f"not loaded; streams are {[e.name for e in self.manifest.streams]}"
        )


def load_dataset(
    path: str | Path,
    *,
    lazy: bool = False,
    streams: Sequence[str] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> Dataset:
    """Load a dataset directory (or its manifest file): every stream, or the named ones.

    `lazy` reads Parquet files in batches as the replay consumes them (memory flat in the data's
    length); otherwise each file is loaded into arrays at once. CSV files always load whole.
    `start_ns`/`end_ns` keep rows with start_ns <= ts < end_ns (ns UTC).
    """
    manifest = load_manifest(path)
    wanted = manifest.streams if streams is None else tuple(manifest.entry(n) for n in streams)
    loaded: list[EventStream] = []
    for entry in wanted:
        parts: list[EventStream] = []
        for relative in entry.paths:
            file = manifest.root / relative
            lazy_here = lazy and file.suffix.lower() in (".parquet", ".pq")
            parts.append(
                read_stream(
                    file,
                    entry.event,
                    entry.constants,
                    lazy=lazy_here,
                    chunk_size=chunk_size,
                    start_ns=start_ns,
                    end_ns=end_ns,
                    name=entry.name,
                )
            )
        loaded.append(parts[0] if len(parts) == 1 else ConcatStream(parts, entry.paths, entry.name))
    if streams is not None:
        manifest = Manifest(manifest.path, wanted, manifest.description, manifest.generator)
    return Dataset(manifest, tuple(loaded))


class ConcatStream(EventStream):
    """One stream stored in several files: their chunks one file after the other.

    Each file is checked as it is read; across files, timestamps must not decrease either (a
    `DataError` names the later file, its first row and the value).
    """

    def __init__(self, parts: Sequence[EventStream], files: Sequence[str | Path], name: str) -> None:
        if not parts or len(parts) != len(files):
            raise InvalidInput("parts", len(parts), f"need one stream per file ({len(files)} files)")
        self.parts = list(parts)
        self.files = [str(f) for f in files]
        self.name = name

    def kind(self) -> tuple[type[tuple[Any, ...]], tuple[Any, ...]] | None:
        """The first file's (event type, constants): every file of a manifest entry shares them."""
        return self.parts[0].kind()

    def chunks(self) -> Iterator[Chunk]:
        """Every file's chunks in file order."""
        previous: int | None = None
        for part, file in zip(self.parts, self.files, strict=True):
            first = True
            for chunk in part.chunks():
                if first and previous is not None and len(chunk.ts) and int(chunk.ts[0]) < previous:
                    raise DataError(
                        file,
                        f"timestamps must not decrease across files: the previous file ends at {previous}",
                        column="ts",
                        value=int(chunk.ts[0]),
                    )
                first = False
                if len(chunk.ts):
                    previous = int(chunk.ts[-1])
                yield chunk


def stream_arrays(stream: EventStream) -> tuple[IntArray, list[Event]]:
    """All of a stream's timestamps and events (materialised: for tests and small streams)."""
    ts_parts: list[IntArray] = []
    events: list[Event] = []
    for chunk in stream.chunks():
        ts_parts.append(chunk.ts)
        events.extend(chunk.events)
    ts = np.concatenate(ts_parts) if ts_parts else np.empty(0, dtype=np.int64)
    return ts, events
