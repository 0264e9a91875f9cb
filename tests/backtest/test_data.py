"""Recorded data: schema round trips, CSV, lazy Parquet reading, validation errors, the sample dataset.

The sample's statistics are recomputed here from the loaded events alone (sessions from its
MarketStatus stream, prices from its quotes, pool states and oracle), not from the generator's code.
"""

from __future__ import annotations

import gzip
import json
import math
import tracemalloc
from dataclasses import replace
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from backtest import data as d
from backtest import sample_data as sd
from backtest.replay import ColumnStream, EventStream, ListStream, merge
from core.calendar import MarketCalendar
from core.enums import Session, Side
from core.events import BookUpdate, Event, FundingRate, MarketStatus, OraclePrice, PoolState, Quote, Trade
from pricing.amm import (
    FEE_PIPS_DENOMINATOR,
    get_amount0_delta,
    get_amount1_delta,
    get_sqrt_ratio_at_tick,
    mul_div_rounding_up,
)

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
NS_MIN = 60_000_000_000
SHUT = {Session.WEEKEND, Session.HOLIDAY, Session.CLOSED}
# 2025-07-08 00:00 New York (EDT, UTC-4): a week through the 4 July long weekend and its Monday
JULY_8 = int(datetime(2025, 7, 8, 4, tzinfo=UTC).timestamp()) * 10**9

EXAMPLES: dict[str, list[Event]] = {
    "Quote": [
        Quote(1, "binance", "TSLAx/USDT", 300.1, 300.3, 2.5, 0.0),
        Quote(1, "binance", "TSLAx/USDT", 0.1 + 0.2, 1e300, 1e-9, 7.0),
    ],
    "Trade": [
        Trade(5, "pool", "TSLAx/USDC", 301.25, 0.5, Side.BUY, "0xabc-1"),
        Trade(6, "pool", "TSLAx/USDC", 301.0, 0.0, None, ""),
        Trade(6, "pool", "TSLAx/USDC", 300.5, 1.0, Side.SELL),
    ],
    "BookUpdate": [
        BookUpdate(1, "binance", "TSLAx/USDT", ((300.0, 1.0), (299.5, 2.0)), ((300.5, 3.0),)),
        BookUpdate(2, "binance", "TSLAx/USDT", (), ((300.6, 0.0),), False),
    ],
    "PoolState": [
        PoolState(
            10,
            "uniswap",
            "TSLAx/USDC",
            22_000_000,
            sqrt_price_x96=2**160 - 1,
            tick=-887272,
            liquidity=2**128 - 1,
        ),
        PoolState(11, "uniswap", "TSLAx/USDC", 22_000_001, reserve0=10**40, reserve1=3),
    ],
    "OraclePrice": [
        OraclePrice(100, "chainlink", "TSLA/USD", 301.5, 90, 7, Session.REGULAR),
        OraclePrice(200, "chainlink", "TSLA/USD", 301.5, 90, 7, None),
    ],
    "FundingRate": [
        FundingRate(1, "binance", "TSLA-PERP", -0.0001, 4 * 3600 * 10**9, 14_400 * 10**9),
        FundingRate(2, "binance", "TSLA-PERP", 0.02, 4 * 3600 * 10**9, 14_400 * 10**9, 301.0, 300.9),
    ],
    "MarketStatus": [
        MarketStatus(0, "XNYS", Session.WEEKEND, 50),
        MarketStatus(50, "XNYS", Session.OVERNIGHT, 90),
    ],
}


def events_of(stream: Any) -> list[Any]:
    return [e for chunk in stream.chunks() for e in chunk.events]


def same_value(x: Any, y: Any) -> bool:
    """Equal and of the same type; NaN equals NaN (an unset FundingRate.mark_price)."""
    if type(x) is not type(y):
        return False
    if isinstance(x, float) and math.isnan(x):
        return math.isnan(y)
    return bool(x == y)


def same(a: list[Event], b: list[Event]) -> bool:
    """Same events field by field, types included (NamedTuples of different types compare equal)."""
    return len(a) == len(b) and all(
        type(x) is type(y) and all(same_value(u, v) for u, v in zip(x, y, strict=True))
        for x, y in zip(a, b, strict=True)
    )


def constants_of(event: Event) -> dict[str, str]:
    return {k: getattr(event, k) for k in d.schema_for(type(event)).constants}


# --------------------------------------------------------------------------------------------
# Schema


def test_schema_columns_are_the_event_fields_in_order() -> None:
    for name, schema in d.SCHEMAS.items():
        fields = schema.event_type._fields  # type: ignore[attr-defined]
        assert fields == ("ts", *schema.constants, *(c.name for c in schema.columns)), name
        defaults = schema.event_type._field_defaults  # type: ignore[attr-defined]
        for c in schema.columns:
            if c.name in defaults:  # a field with a default: its column may be left out
                assert not c.required, (name, c.name)
                assert same_value(c.default, defaults[c.name]), (name, c.name)
            else:  # required, except Optional fields whose column may be left out (Trade.aggressor)
                assert c.required or c.default is None, (name, c.name)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
@pytest.mark.parametrize("lazy", [False, True])
def test_parquet_round_trip_gives_identical_events(tmp_path: Path, name: str, lazy: bool) -> None:
    events = EXAMPLES[name]
    path = d.write_events(tmp_path / f"{name}.parquet", events)
    stream = d.read_stream(path, lazy=lazy)
    loaded = events_of(stream)
    assert same(loaded, events)
    assert isinstance(stream, ListStream if name == "MarketStatus" and not lazy else EventStream)
    meta = json.loads(pq.ParquetFile(path).schema_arrow.metadata[d.METADATA_KEY])
    assert meta == {
        "format": "perpetua-stream",
        "version": 1,
        "event": name,
        "constants": constants_of(events[0]),
    }
    assert pq.ParquetFile(path).schema_arrow.names[0] == "ts"


def test_whole_read_returns_column_streams_and_list_stream_for_market_status(tmp_path: Path) -> None:
    q = d.write_events(tmp_path / "q.parquet", EXAMPLES["Quote"])
    m = d.write_events(tmp_path / "m.parquet", EXAMPLES["MarketStatus"])
    assert isinstance(d.read_stream(q), ColumnStream)
    assert isinstance(d.read_stream(m), ListStream)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_csv_round_trip_gives_identical_events(tmp_path: Path, name: str) -> None:
    events = EXAMPLES[name]
    path = d.write_events(tmp_path / f"{name}.csv", events)
    assert "venue" not in path.read_text().splitlines()[0]  # constants live in the manifest
    loaded = events_of(d.read_stream(path, name, constants_of(events[0])))
    assert same(loaded, events)


def test_csv_loader_reads_hand_written_files(tmp_path: Path) -> None:
    text = (
        "ts,price,publish_ts,market_status\n"
        "2025-07-01T13:30:00Z,301.5,2025-07-01T13:29:59.5Z,regular\n"
        "2025-07-01T09:31:00-04:00,301.75,2025-07-01T13:30:59Z,\n"
    )
    path = tmp_path / "oracle.csv"
    path.write_text(text)
    events = events_of(d.read_csv(path, OraclePrice, {"source": "chainlink", "instrument": "TSLA/USD"}))
    t0 = 1_751_376_600_000_000_000  # 2025-07-01 13:30 UTC
    assert events == [
        OraclePrice(t0, "chainlink", "TSLA/USD", 301.5, t0 - 500_000_000, 0, Session.REGULAR),
        OraclePrice(t0 + NS_MIN, "chainlink", "TSLA/USD", 301.75, t0 + 59 * 10**9, 0, None),
    ]
    pool = tmp_path / "pool.csv.gz"
    big = 2**150 + 12345
    pool.write_bytes(
        gzip.compress(f"ts,block_number,sqrt_price_x96,tick,liquidity\n5,7,{big},-3,{2**100}\n".encode())
    )
    (state,) = events_of(d.read_stream(pool, "PoolState", {"venue": "u", "pool": "P"}))
    assert state == PoolState(5, "u", "P", 7, 0, 0, big, -3, 2**100)
    assert type(state.sqrt_price_x96) is int


def test_time_window_whole_and_lazy(tmp_path: Path) -> None:
    ts = np.arange(1000, dtype=np.int64) * 10
    path = d.write_parquet(
        tmp_path / "q.parquet",
        "Quote",
        {"venue": "v", "instrument": "i"},
        ts,
        {
            "bid": np.full(1000, 1.0),
            "ask": np.full(1000, 2.0),
            "bid_size": np.ones(1000),
            "ask_size": np.ones(1000),
        },
        row_group_size=100,
    )
    whole = events_of(d.read_stream(path, start_ns=2000, end_ns=5005))
    lazy_stream = d.ParquetStream(path, start_ns=2000, end_ns=5005, batch_size=30)
    lazy = events_of(lazy_stream)
    assert [e.ts for e in whole] == list(range(2000, 5010, 10))
    assert same(lazy, whole)
    assert [g for g, _ in lazy_stream._row_groups(pq.ParquetFile(path))] == [2, 3, 4, 5]  # others skipped


# --------------------------------------------------------------------------------------------
# Lazy (chunked) reading


def _big_quotes(path: Path, n: int) -> Path:
    rng = np.random.default_rng(7)
    mid = 300.0 + np.cumsum(rng.standard_normal(n)) * 0.01
    return d.write_parquet(
        path,
        "Quote",
        {"venue": "binance", "instrument": "TSLAx/USDT"},
        np.arange(n, dtype=np.int64) * 1_000_000,
        {"bid": mid - 0.01, "ask": mid + 0.01, "bid_size": rng.random(n), "ask_size": rng.random(n)},
        row_group_size=32_768,
    )


def test_chunked_reading_gives_the_same_events_as_whole_reading(tmp_path: Path) -> None:
    path = _big_quotes(tmp_path / "q.parquet", 100_003)
    lazy = d.ParquetStream(path, batch_size=4096)
    whole = d.read_parquet(path)
    lazy_chunks = list(lazy.chunks())
    assert max(len(c.events) for c in lazy_chunks) <= 4096
    assert same([e for c in lazy_chunks for e in c.events], events_of(whole))
    assert np.array_equal(np.concatenate([c.ts for c in lazy_chunks]), whole.ts)  # type: ignore[attr-defined]
    # and it merges like any stream
    assert sum(1 for _ in merge([d.ParquetStream(path, batch_size=1000), d.read_parquet(path)])) == 200_006


def _lazy_peaks(path: Path) -> tuple[int, float, float]:
    """(events, Python heap peak, Arrow pool peak) while consuming a lazy stream, bytes."""
    count = 0
    arrow_base = pa.total_allocated_bytes()
    arrow_peak = 0
    tracemalloc.start()
    try:
        for chunk in d.ParquetStream(path, batch_size=8192).chunks():
            count += len(chunk.events)
            arrow_peak = max(arrow_peak, pa.total_allocated_bytes() - arrow_base)
        _, heap_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return count, heap_peak, arrow_peak


def test_chunked_reading_memory_is_flat_in_the_file_length(tmp_path: Path) -> None:
    small = _big_quotes(tmp_path / "small.parquet", 40_000)
    big = _big_quotes(tmp_path / "big.parquet", 160_000)
    n_small, heap_small, arrow_small = _lazy_peaks(small)
    n_big, heap_big, arrow_big = _lazy_peaks(big)
    assert (n_small, n_big) == (40_000, 160_000)
    # Four times the rows, the same peaks: one batch of events, one row group of Arrow buffers.
    assert heap_big < 1.25 * heap_small + 1e6
    assert arrow_big < 1.25 * arrow_small + 1e6
    assert heap_big < 16e6 and arrow_big < 16e6
    # A whole read holds every column at once: its Arrow memory grows with the file.
    base = pa.total_allocated_bytes()
    whole = d.read_parquet(big)
    held = pa.total_allocated_bytes() - base
    assert held >= 5 * 8 * n_big  # five 8-byte columns, every row
    assert arrow_big < held / 2
    del whole


# --------------------------------------------------------------------------------------------
# Validation errors: file, column, row and value named


def _table(**columns: Any) -> pa.Table:
    return pa.table(columns)


def _write(
    path: Path, table: pa.Table, event: str = "Quote", constants: dict[str, str] | None = None
) -> Path:
    meta = {
        "format": "perpetua-stream",
        "version": 1,
        "event": event,
        "constants": constants or {"venue": "v", "instrument": "i"},
    }
    pq.write_table(table.replace_schema_metadata({d.METADATA_KEY: json.dumps(meta).encode()}), path)
    return path


def _quote_table(n: int = 5, **override: Any) -> pa.Table:
    cols: dict[str, Any] = {
        "ts": np.arange(n, dtype=np.int64),
        "bid": np.full(n, 1.0),
        "ask": np.full(n, 1.1),
        "bid_size": np.ones(n),
        "ask_size": np.ones(n),
    }
    cols.update(override)
    return pa.table({k: v for k, v in cols.items() if v is not None})


def _error(path: Path, **kwargs: Any) -> d.DataError:
    with pytest.raises(d.DataError) as info:
        events_of(d.read_stream(path, **kwargs))
    return info.value


def test_missing_column(tmp_path: Path) -> None:
    err = _error(_write(tmp_path / "q.parquet", _quote_table(ask=None)))
    assert err.column == "ask"
    assert str(err).startswith(f"{tmp_path / 'q.parquet'}: column 'ask': missing column")
    assert "ts, bid, ask, bid_size, ask_size" in str(err)


def test_wrong_dtype(tmp_path: Path) -> None:
    err = _error(_write(tmp_path / "q.parquet", _quote_table(bid=["1.0"] * 5)))
    assert (err.column, err.value) == ("bid", "string")
    assert "column 'bid': wrong dtype: expected a float column, got 'string'" in str(err)
    table = pa.table({"ts": np.arange(3, dtype=np.int64), "block_number": np.array([1.0, 2.0, 3.0])})
    err = _error(_write(tmp_path / "p.parquet", table, "PoolState", {"venue": "u", "pool": "P"}))
    assert "column 'block_number': wrong dtype: expected an integer column, got 'double'" in str(err)


def test_naive_timestamps_are_refused(tmp_path: Path) -> None:
    table = _quote_table(ts=pa.array(np.arange(5).astype("datetime64[ns]")))
    err = _error(_write(tmp_path / "q.parquet", table))
    assert err.column == "ts" and "timestamp without a time zone" in str(err)


def test_decreasing_ts(tmp_path: Path) -> None:
    path = _write(tmp_path / "q.parquet", _quote_table(ts=np.array([0, 5, 9, 7, 10], dtype=np.int64)))
    err = _error(path)
    assert (err.column, err.row, err.value) == ("ts", 3, 7)
    assert str(err) == f"{path}: column 'ts', row 3: timestamps must not decrease: row 2 has 9, got 7"


def test_decreasing_ts_across_lazy_batches_names_the_file_row(tmp_path: Path) -> None:
    ts = np.arange(100, dtype=np.int64)
    ts[60] = 3
    path = _write(tmp_path / "q.parquet", _quote_table(100, ts=ts))
    err = _error(path, lazy=True, chunk_size=60)  # row 60 is the first of the second batch
    assert (err.row, err.value) == (60, 3)
    assert "row 59 has 59" in str(err)


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("bid", float("nan"), "NaN price"),
        ("ask", float("inf"), "infinite price"),
        ("bid", 0.0, "price must be > 0"),
        ("ask", -2.0, "price must be > 0"),
        ("bid_size", -1.5, "negative size"),
        ("ask_size", float("nan"), "NaN size"),
    ],
)
def test_bad_prices_and_sizes(tmp_path: Path, column: str, value: float, reason: str) -> None:
    values = np.ones(5)
    values[2] = value
    path = _write(tmp_path / "q.parquet", _quote_table(5, **{column: values}))
    for lazy in (False, True):
        err = _error(path, lazy=lazy)
        assert (err.column, err.row) == (column, 2)
        assert str(err) == f"{path}: column {column!r}, row 2: {reason}, got {value!r}"


def test_nulls_unknown_columns_and_bad_values(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.parquet", _quote_table(bid=pa.array([1.0, None, 1.0, 1.0, 1.0])))
    assert "column 'bid', row 1: missing or NaN value, got None" in str(_error(path))
    path = _write(tmp_path / "b.parquet", _quote_table(venue=["v"] * 5))
    assert "column 'venue': unknown column for Quote (a constant: give it in the manifest)" in str(
        _error(path)
    )
    trades = pa.table({"ts": [1, 2], "price": [1.0, 1.0], "size": [1.0, 1.0], "aggressor": ["buy", "long"]})
    path = _write(tmp_path / "t.parquet", trades, "Trade")
    assert "column 'aggressor', row 1: not one of 'buy', 'sell', '', got 'long'" in str(_error(path))
    pool = pa.table({"ts": [1, 2, 3], "block_number": [1, 2, 3], "sqrt_price_x96": ["12", "-5", "7"]})
    path = _write(tmp_path / "p.parquet", pool, "PoolState", {"venue": "u", "pool": "P"})
    assert "column 'sqrt_price_x96', row 1: must be >= 0, got -5" in str(_error(path))
    pool = pa.table({"ts": [1, 2, 3], "block_number": [1, 2, 3], "liquidity": ["12", "1e5", "7"]})
    path = _write(tmp_path / "p2.parquet", pool, "PoolState", {"venue": "u", "pool": "P"})
    assert "column 'liquidity', row 1: not a non-negative integer (decimal digits), got '1e5'" in str(
        _error(path)
    )
    status = pa.table({"ts": [1, 2], "session": ["regular", "lunch"], "next_change_ts": [2, 3]})
    path = _write(tmp_path / "m.parquet", status, "MarketStatus", {"market": "XNYS"})
    assert "column 'session', row 1: not one of 'pre_market'" in str(_error(path))


def test_csv_errors_name_the_row_and_value(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text("ts,bid,ask,bid_size,ask_size\n1,1.0,1.1,1,1\n2,abc,1.1,1,1\n")
    err = _error(path, event="Quote", constants={"venue": "v", "instrument": "i"})
    assert (
        str(err)
        == f"{path}: column 'bid', row 1: wrong dtype: expected a float column; not a number, got 'abc'"
    )
    path.write_text("ts,bid,ask,bid_size,ask_size\n1,1.0,1.1,1,1\n2,1.0,1.1,-3,1\n")
    err = _error(path, event="Quote", constants={"venue": "v", "instrument": "i"})
    assert str(err) == f"{path}: column 'bid_size', row 1: negative size, got -3.0"
    path.write_text("ts,bid,ask,bid_size,ask_size\n2025-07-01 13:30:00,1.0,1.1,1,1\n")
    assert "timestamp without a time zone" in str(
        _error(path, event="Quote", constants={"venue": "v", "instrument": "i"})
    )
    path.write_text("ts,bid,ask,bid_size,ask_size\n1,1.0,1.1,1,1\n")
    with pytest.raises(d.DataError, match="a CSV file carries no metadata"):
        d.read_stream(path)
    with pytest.raises(d.DataError, match="lazy .batched. reading needs Parquet"):
        d.read_stream(path, "Quote", {"venue": "v", "instrument": "i"}, lazy=True)


def test_identity_errors(tmp_path: Path) -> None:
    path = d.write_events(tmp_path / "q.parquet", EXAMPLES["Quote"])
    with pytest.raises(d.DataError, match="the file's metadata says event 'Quote', got 'Trade'"):
        d.read_stream(path, "Trade")
    with pytest.raises(d.DataError, match="venue: the file's metadata says 'binance', got 'kraken'"):
        d.read_stream(path, "Quote", {"venue": "kraken"})
    bare = tmp_path / "bare.parquet"
    pq.write_table(_quote_table(), bare)
    with pytest.raises(d.DataError, match="no event type: pass event="):
        d.read_stream(bare)
    with pytest.raises(d.DataError, match="Quote streams need 'instrument'"):
        d.read_stream(bare, "Quote", {"venue": "v"})
    assert len(events_of(d.read_stream(bare, "Quote", {"venue": "v", "instrument": "i"}))) == 5
    with pytest.raises(d.DataError, match="unknown file type"):
        d.read_stream(tmp_path / "x.json")


def test_writers_refuse_bad_data(tmp_path: Path) -> None:
    with pytest.raises(d.DataError, match="column 'bid', row 0: NaN price"):
        d.write_parquet(
            tmp_path / "q.parquet",
            "Quote",
            {"venue": "v", "instrument": "i"},
            [1],
            {"bid": [math.nan], "ask": [1.0], "bid_size": [1.0], "ask_size": [1.0]},
        )
    first = Quote(1, "binance", "TSLAx/USDT", 1.0, 2.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="a stream keeps venue constant"):
        d.write_events(tmp_path / "q.parquet", [first, first._replace(venue="x")])
    assert not (tmp_path / "q.parquet").exists()


# --------------------------------------------------------------------------------------------
# Manifests


def _dataset(tmp_path: Path, manifest: dict[str, Any]) -> Path:
    d.write_events(tmp_path / "q.parquet", EXAMPLES["Quote"])
    d.write_events(tmp_path / "q.csv", EXAMPLES["Quote"])
    (tmp_path / d.MANIFEST_NAME).write_text(yaml.safe_dump(manifest))
    return tmp_path


def _manifest(**stream: Any) -> dict[str, Any]:
    entry = {
        "name": "q",
        "file": "q.parquet",
        "event": "Quote",
        "venue": "binance",
        "instrument": "TSLAx/USDT",
    }
    entry.update(stream)
    return {
        "format": "perpetua-dataset",
        "version": 1,
        "streams": [{k: v for k, v in entry.items() if v is not None}],
    }


def test_dataset_loads_parquet_and_csv_streams(tmp_path: Path) -> None:
    manifest = _manifest()
    manifest["streams"].append(
        {"name": "q_csv", "file": "q.csv", "event": "Quote", "venue": "binance", "instrument": "TSLAx/USDT"}
    )
    root = _dataset(tmp_path, manifest)
    for lazy in (False, True):
        ds = d.load_dataset(root, lazy=lazy)
        assert [s.name for s in ds.streams] == ["q", "q_csv"]
        assert same(events_of(ds.stream("q")), EXAMPLES["Quote"])
        assert same(events_of(ds.stream("q_csv")), EXAMPLES["Quote"])
    assert isinstance(d.load_dataset(root, lazy=True).stream("q"), d.ParquetStream)
    only = d.load_dataset(root / d.MANIFEST_NAME, streams=["q_csv"])
    assert [e.name for e in only.manifest.streams] == ["q_csv"]


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({**_manifest(), "extra": 1}, "extra: unknown key"),
        ({**_manifest(), "format": "csv"}, "format: must be 'perpetua-dataset', got 'csv'"),
        ({**_manifest(), "version": 2}, "version: this reader knows version 1, got 2"),
        ({**_manifest(), "streams": []}, "streams: must be a non-empty list"),
        (_manifest(event="Quot"), "streams[0].event: unknown event type; one of Quote, Trade"),
        (
            _manifest(instrument=None),
            "streams[0].instrument: Quote streams need a non-empty instrument, got None",
        ),
        (_manifest(pool="P"), "streams[0].pool: unknown key for a Quote stream"),
        (
            _manifest(file="missing.parquet"),
            "streams[0].file: no such file next to the manifest, got 'missing.parquet'",
        ),
        (_manifest(venue="kraken"), "q.parquet: venue: the file's metadata says 'binance', got 'kraken'"),
    ],
)
def test_manifest_errors(tmp_path: Path, manifest: dict[str, Any], message: str) -> None:
    root = _dataset(tmp_path, manifest)
    with pytest.raises(d.DataError) as info:
        d.load_dataset(root)
    assert message in str(info.value)
    assert str(root) in str(info.value)


def test_manifest_duplicate_names(tmp_path: Path) -> None:
    manifest = _manifest()
    manifest["streams"].append(dict(manifest["streams"][0]))
    with pytest.raises(d.DataError, match=r"streams\[1\].name: duplicate stream name, got 'q'"):
        d.load_manifest(_dataset(tmp_path, manifest))


# --------------------------------------------------------------------------------------------
# Pool price conversions


@pytest.mark.parametrize("price", ["0.000001", "1", "301.234567", "123456789.5", "1e-12"])
def test_price_to_sqrt_price_is_the_exact_floor(price: str) -> None:
    s = sd.price_to_sqrt_price_x96(price, 18, 6)
    raw = Fraction(price) * Fraction(10**6, 10**18) * 2**192
    assert s * s <= raw < (s + 1) * (s + 1)
    back = sd.sqrt_price_x96_to_price(s, 18, 6)
    assert back <= Fraction(price) and (Fraction(price) - back) / Fraction(price) < Fraction(1, 10**10)


# --------------------------------------------------------------------------------------------
# The bundled sample dataset


@pytest.fixture(scope="module")
def sample() -> d.Dataset:
    return d.load_dataset(SAMPLE)


def arrays(stream: Any) -> tuple[npt.NDArray[np.int64], list[Any]]:
    events = events_of(stream)
    return np.array([e.ts for e in events], dtype=np.int64), events


class Minutes:
    """The sample on a one-minute grid: sessions from its MarketStatus stream, prices forward-filled."""

    def __init__(self, ds: d.Dataset) -> None:
        status = events_of(ds.stream("market_status"))
        self.start = status[0].ts
        self.end = status[-1].next_change_ts
        self.grid = np.arange(self.start, self.end, NS_MIN, dtype=np.int64)
        # the window ends at the last local midnight the status stream covers
        self.grid = self.grid[self.grid < self.start + (self.end - self.start) // NS_MIN * NS_MIN]
        status_ts = np.array([e.ts for e in status])
        sessions = [e.session for e in status]
        idx = np.searchsorted(status_ts, self.grid, side="right") - 1
        self.session = [sessions[i] for i in idx.tolist()]
        self.shut = np.array([s in SHUT for s in self.session])
        self.status = status

    def ffill(self, ts: npt.NDArray[np.int64], values: npt.ArrayLike) -> npt.NDArray[np.float64]:
        i = np.searchsorted(ts, self.grid, side="right") - 1
        v = np.asarray(values, dtype=np.float64)
        return np.where(i >= 0, v[np.maximum(i, 0)], np.nan)

    def reopenings(self) -> list[int]:
        """Grid indices of regular opens that end a shut span (Monday-like opens)."""
        out = []
        seen_shut = False
        for e in self.status:
            if e.session in SHUT:
                seen_shut = True
            elif e.session is Session.REGULAR:
                if seen_shut and e.ts + 35 * NS_MIN < self.grid[-1]:
                    out.append(int((e.ts - self.start) // NS_MIN))
                seen_shut = False
        return out


@pytest.fixture(scope="module")
def minutes(sample: d.Dataset) -> Minutes:
    return Minutes(sample)


@pytest.fixture(scope="module")
def prices(sample: d.Dataset, minutes: Minutes) -> dict[str, npt.NDArray[np.float64]]:
    ts, q = arrays(sample.stream("stock_quotes"))
    broker = minutes.ffill(ts, [(e.bid + e.ask) / 2 for e in q])
    ts, o = arrays(sample.stream("stock_oracle"))
    oracle = minutes.ffill(ts, [e.price for e in o])
    ts, c = arrays(sample.stream("token_cex_quotes"))
    cex = minutes.ffill(ts, [(e.bid + e.ask) / 2 for e in c])
    ts, p = arrays(sample.stream("token_pool"))
    # USDC per TSLAx: token1/token0 in base units = s^2 / 2^192, times 10^(18 - 6) for the decimals
    dex = minutes.ffill(ts, [float(Fraction(e.sqrt_price_x96**2 * 10**12, 2**192)) for e in p])
    return {"broker": broker, "oracle": oracle, "cex": cex, "dex": dex}


def test_sample_is_small_and_loads_whole_and_lazily(sample: d.Dataset) -> None:
    size = sum(f.stat().st_size for f in SAMPLE.iterdir())
    assert size < 20e6
    names = [e.name for e in sample.manifest.streams]
    assert names == [
        "stock_quotes",
        "stock_oracle",
        "token_cex_quotes",
        "token_cex_trades",
        "token_pool",
        "token_pool_swaps",
        "btc_index",
        "market_status",
    ]
    by_name = {e.name: e for e in sample.manifest.streams}
    assert by_name["token_pool"].constants == {"venue": "uniswap_local", "pool": "TSLAx/USDC"}
    assert by_name["token_cex_quotes"].constants == {"venue": "binance", "instrument": "TSLAx/USDT"}
    lazy = d.load_dataset(SAMPLE, lazy=True, chunk_size=20_000)
    counts = [sum(len(c.events) for c in s.chunks()) for s in lazy.streams]
    assert counts == [sum(len(c.events) for c in s.chunks()) for s in sample.streams]
    assert sum(counts) > 400_000
    week = d.load_dataset(SAMPLE, lazy=True, end_ns=JULY_8)
    assert sum(1 for _ in merge(list(week.streams))) == sum(
        sum(len(c.events) for c in s.chunks()) for s in week.streams
    )


def test_sample_broker_minutes_reproduce_the_real_daily_bars(sample: d.Dataset) -> None:
    bars = sample.manifest.generator["bars"]
    assert bars[1][:6] == ["2012-09-04", "2025-07-01", 665.76, 675.14, 664.5, 674.97]  # AAPL, Quandl WIKI
    cal = MarketCalendar("XNYS", "2025-06-20", "2025-10-10")
    ts, quotes = arrays(sample.stream("stock_quotes"))
    mid = np.array([(q.bid + q.ask) / 2 for q in quotes])
    for _, target, o, h, low, c in bars[1:-1]:
        open_ns, close_ns = cal.regular_open_close(target)
        day = mid[(ts >= open_ns) & (ts < close_ns)]
        assert len(day) == (close_ns - open_ns) // NS_MIN  # one quote per regular minute
        assert day[0] == pytest.approx(o, abs=1e-9) and day[-1] == pytest.approx(c, abs=1e-9), target
        assert day.max() == pytest.approx(h, abs=1e-9) and day.min() == pytest.approx(low, abs=1e-9), target


def test_sample_extended_hours_quotes_are_thinner(sample: d.Dataset, minutes: Minutes) -> None:
    ts, quotes = arrays(sample.stream("stock_quotes"))
    session = [minutes.session[i] for i in ((ts - minutes.start) // NS_MIN).tolist()]
    per_hour: dict[Session, float] = {}
    spread: dict[Session, float] = {}
    for s in (Session.REGULAR, Session.PRE_MARKET, Session.OVERNIGHT):
        rows = [q for q, x in zip(quotes, session, strict=True) if x is s]
        per_hour[s] = len(rows) / (sum(1 for x in minutes.session if x is s) / 60)
        spread[s] = float(np.mean([q.ask - q.bid for q in rows]))
    assert per_hour[Session.REGULAR] == 60
    assert per_hour[Session.REGULAR] > per_hour[Session.PRE_MARKET] > per_hour[Session.OVERNIGHT]
    assert spread[Session.REGULAR] < spread[Session.PRE_MARKET] < spread[Session.OVERNIGHT]
    assert not any(s in SHUT for s in session)


def test_sample_weekend_tracking_error_is_50_to_95_bps(prices: dict[str, Any], minutes: Minutes) -> None:
    oracle = prices["oracle"][minutes.shut]
    for venue in ("cex", "dex"):
        te = float(np.mean(np.abs(prices[venue][minutes.shut] / oracle - 1.0))) * 1e4
        assert 50.0 <= te <= 95.0, (venue, te)


def test_sample_weekend_gaps_mostly_close_at_the_monday_open(
    prices: dict[str, Any], minutes: Minutes
) -> None:
    reopen = minutes.reopenings()
    assert len(reopen) == 13  # the weekends of 2025-07..09 (with 4 July and Labor Day)
    closed = []
    broker = prices["broker"]
    for venue in ("cex", "dex"):
        for m in reopen:
            window = slice(m + 5, m + 35)
            closed.append(float(np.median(np.abs(prices[venue][window] / broker[window] - 1.0))) < 0.005)
    share = sum(closed) / len(closed)
    assert 0.88 <= share <= 0.92, share
    assert share == pytest.approx(sample_stat("gap_close_share"), abs=1e-4)


def sample_stat(key: str) -> Any:
    manifest = d.load_manifest(SAMPLE)
    return manifest.generator["statistics"][key]


def test_sample_has_rare_10_percent_spikes(prices: dict[str, Any], minutes: Minutes) -> None:
    reference = np.where(minutes.shut, prices["oracle"], prices["broker"])
    worst = {}
    for venue in ("cex", "dex"):
        premium = prices[venue] / reference - 1.0
        worst[venue] = float(np.nanmax(premium))
        spike_minutes = int(np.sum(premium >= 0.10))
        assert spike_minutes < 10  # rare: a few minutes in three months
    assert max(worst.values()) >= 0.10
    assert min(float(np.nanmin(prices[v] / reference - 1.0)) for v in ("cex", "dex")) > -0.05


def test_sample_weekend_volume_is_thinner(sample: d.Dataset, minutes: Minutes) -> None:
    shut_hours = minutes.shut.sum() / 60
    open_hours = (~minutes.shut).sum() / 60
    for name in ("token_cex_trades", "token_pool_swaps"):
        ts, trades = arrays(sample.stream(name))
        in_shut = minutes.shut[(ts - minutes.start) // NS_MIN]
        size = np.array([t.size for t in trades])
        ratio = (size[in_shut].sum() / shut_hours) / (size[~in_shut].sum() / open_hours)
        assert ratio <= 0.30, (name, ratio)


def test_sample_oracle_is_frozen_while_the_market_is_shut(sample: d.Dataset, minutes: Minutes) -> None:
    _, events = arrays(sample.stream("stock_oracle"))
    last_live: OraclePrice | None = None
    frozen = 0
    for e in events:
        session = minutes.session[(e.ts - minutes.start) // NS_MIN]
        assert e.market_status is session
        assert e.publish_ts <= e.ts
        if session in SHUT:
            assert last_live is not None
            assert (e.price, e.publish_ts, e.round_id) == (
                last_live.price,
                last_live.publish_ts,
                last_live.round_id,
            )
            frozen += 1
        else:
            assert last_live is None or e.round_id == last_live.round_id + 1
            last_live = e
    assert frozen > 1000


def test_sample_pool_states_are_exact_v3_states_and_swaps(sample: d.Dataset) -> None:
    _, states = arrays(sample.stream("token_pool"))
    _, swaps = arrays(sample.stream("token_pool_swaps"))
    info = sample.manifest.entry("token_pool").info
    liquidity = int(info["position"]["liquidity"])
    fee = info["fee_pips"]
    assert len(swaps) == len(states) - 1
    for e in states:
        assert e.liquidity == liquidity and e.reserve0 == 0 and e.reserve1 == 0
        assert get_sqrt_ratio_at_tick(e.tick) <= e.sqrt_price_x96 < get_sqrt_ratio_at_tick(e.tick + 1)
    # Each swap is what the pool's math moves between consecutive states (exact input, fee on top).
    for before, after, swap in list(zip(states, states[1:], swaps, strict=False))[:2000]:
        s0, s1 = before.sqrt_price_x96, after.sqrt_price_x96
        assert swap.ts == after.ts and after.block_number >= before.block_number
        if s1 < s0:  # TSLAx in
            amount_in = get_amount0_delta(s1, s0, liquidity, True)
            paid = amount_in + mul_div_rounding_up(amount_in, fee, FEE_PIPS_DENOMINATOR - fee)
            assert swap.aggressor is Side.SELL and swap.size == float(Fraction(paid, 10**18))
        else:  # USDC in
            amount_in = get_amount1_delta(s0, s1, liquidity, True)
            out = get_amount0_delta(s0, s1, liquidity, False)
            assert swap.aggressor is Side.BUY and swap.size == float(Fraction(out, 10**18))
            paid = amount_in + mul_div_rounding_up(amount_in, fee, FEE_PIPS_DENOMINATOR - fee)
            assert swap.price == float(Fraction(paid * 10**12, out))


def test_sample_btc_vol_matches_the_backtesting_series(sample: d.Dataset) -> None:
    vol = sample.manifest.generator["derived"]["btc_annual_vol"]
    assert vol == pytest.approx(0.9026, abs=1e-4)  # backtesting.test.BTCUSD, documented in docs/data.md
    ts, events = arrays(sample.stream("btc_index"))
    assert np.all(np.diff(ts) == NS_MIN)
    r = np.diff(np.log([e.price for e in events]))
    realised = float(np.std(r, ddof=1) * math.sqrt(365 * 24 * 60))
    assert realised == pytest.approx(vol, rel=0.05)


def test_sample_market_status_is_the_calendar(sample: d.Dataset, minutes: Minutes) -> None:
    cal = MarketCalendar("XNYS", "2025-06-20", "2025-10-10")
    end = minutes.grid[-1] + NS_MIN
    assert events_of(sample.stream("market_status")) == cal.market_status_events(minutes.start, int(end))


# --------------------------------------------------------------------------------------------
# Reproducibility of the generator


def test_regenerating_a_slice_from_the_manifest_gives_identical_arrays(sample: d.Dataset) -> None:
    spec = sd.SampleSpec.from_dict(sample.manifest.generator)
    until = JULY_8
    gen = sd.generate(spec, until_ns=until)
    loaded = d.load_dataset(SAMPLE, end_ns=until)
    for entry, stream in zip(loaded.manifest.streams, loaded.streams, strict=True):
        ts, events = arrays(stream)
        fresh = gen.streams[entry.name]
        assert len(ts) > 10, entry.name
        assert np.array_equal(ts, fresh.ts), entry.name
        for column, values in fresh.columns.items():
            expected = values.tolist() if isinstance(values, np.ndarray) else list(values)
            assert [getattr(e, column) for e in events] == expected, (entry.name, column)
    again = sd.generate(spec, until_ns=until)
    for name, s in gen.streams.items():
        assert np.array_equal(s.ts, again.streams[name].ts)
        for column, values in s.columns.items():
            assert list(values) == list(again.streams[name].columns[column]), (name, column)


def test_spec_round_trips_through_the_manifest(sample: d.Dataset) -> None:
    spec = sd.SampleSpec.from_dict(sample.manifest.generator)
    assert sd.SampleSpec.from_dict(spec.to_dict()) == spec
    assert spec.params == sd.SampleParams()  # the committed sample uses the documented defaults
    assert replace(spec.params, seed=1) != spec.params


def test_spec_from_the_source_packages_matches_the_manifest(sample: d.Dataset) -> None:
    try:
        sources = sd.read_sources()
    except SystemExit:
        pytest.skip("bokeh_sampledata / backtesting not installed (only the generator needs them)")
    assert sd.build_spec(sources) == sd.SampleSpec.from_dict(sample.manifest.generator)
