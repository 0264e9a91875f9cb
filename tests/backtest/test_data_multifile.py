"""A dataset stream stored in several files (`files:` in the manifest), as the recorder writes it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from backtest.data import ConcatStream, DataError, load_dataset, stream_arrays, write_events
from core.enums import Session, Side
from core.events import MarketStatus, Quote, Trade


def _quotes(start: int, n: int) -> list[Quote]:
    return [Quote(start + i, "binance", "TSLAx/USDT", 100.0 + i, 101.0 + i, 1.0, 2.0) for i in range(n)]


def _manifest(root: Path, streams: list[dict[str, object]]) -> None:
    doc = {"format": "perpetua-dataset", "version": 1, "streams": streams}
    (root / "manifest.yaml").write_text(yaml.safe_dump(doc))


@pytest.mark.parametrize("lazy", [False, True])
def test_files_load_as_one_stream_in_order(tmp_path: Path, lazy: bool) -> None:
    first, second, third = _quotes(10, 3), _quotes(13, 2), _quotes(15, 4)
    write_events(tmp_path / "q" / "a.parquet", first)
    write_events(tmp_path / "q" / "b.parquet", second)
    write_events(tmp_path / "q" / "c.parquet", third)
    trades = [Trade(12, "binance", "TSLAx/USDT", 100.5, 0.1, Side.BUY, "7")]
    write_events(tmp_path / "t.parquet", trades)
    _manifest(
        tmp_path,
        [
            {
                "name": "quotes",
                "files": ["q/a.parquet", "q/b.parquet", "q/c.parquet"],
                "event": "Quote",
                "venue": "binance",
                "instrument": "TSLAx/USDT",
            },
            {
                "name": "trades",
                "file": "t.parquet",
                "event": "Trade",
                "venue": "binance",
                "instrument": "TSLAx/USDT",
            },
        ],
    )
    ds = load_dataset(tmp_path, lazy=lazy, chunk_size=2)
    quotes = ds.stream("quotes")
    assert isinstance(quotes, ConcatStream)
    assert quotes.kind() == (Quote, ("binance", "TSLAx/USDT"))
    ts, events = stream_arrays(quotes)
    assert events == first + second + third
    assert ts.tolist() == list(range(10, 19))
    assert ds.manifest.streams[0].paths == ("q/a.parquet", "q/b.parquet", "q/c.parquet")
    assert ds.manifest.streams[1].paths == ("t.parquet",)
    # a window cuts across the files
    window = load_dataset(tmp_path, lazy=lazy, streams=["quotes"], start_ns=12, end_ns=16)
    assert [e.ts for e in stream_arrays(window.streams[0])[1]] == [12, 13, 14, 15]


def test_market_status_files_concatenate(tmp_path: Path) -> None:
    a = [MarketStatus(1, "XNYS", Session.PRE_MARKET, 5)]
    b = [MarketStatus(5, "XNYS", Session.REGULAR, 9)]
    write_events(tmp_path / "a.parquet", a)
    write_events(tmp_path / "b.parquet", b)
    _manifest(tmp_path, [{"files": ["a.parquet", "b.parquet"], "event": "MarketStatus", "market": "XNYS"}])
    ds = load_dataset(tmp_path)
    assert ds.manifest.streams[0].name == "a"
    assert stream_arrays(ds.streams[0])[1] == a + b


def test_files_out_of_order_are_refused_naming_the_later_file(tmp_path: Path) -> None:
    write_events(tmp_path / "a.parquet", _quotes(10, 3))
    write_events(tmp_path / "b.parquet", _quotes(11, 2))
    _manifest(
        tmp_path,
        [
            {
                "files": ["a.parquet", "b.parquet"],
                "event": "Quote",
                "venue": "binance",
                "instrument": "TSLAx/USDT",
            }
        ],
    )
    with pytest.raises(DataError) as err:
        stream_arrays(load_dataset(tmp_path).streams[0])
    assert str(err.value) == (
        "b.parquet: column 'ts': timestamps must not decrease across files: "
        "the previous file ends at 12, got 11"
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"files": [], "file": None}, "streams[0].files: give either file or files, not both, got []"),
        ({"files": []}, "streams[0].files: must be a non-empty list of file names, got []"),
        ({"files": "a.parquet"}, "streams[0].files: must be a non-empty list of file names, got 'a.parquet'"),
        (
            {"files": ["a.parquet", 3]},
            "streams[0].files[1]: must be a file name relative to the manifest, got 3",
        ),
        (
            {"files": ["a.parquet", "nope.parquet"]},
            "streams[0].files[1]: no such file next to the manifest, got 'nope.parquet'",
        ),
    ],
)
def test_bad_files_key_is_refused(tmp_path: Path, entry: dict[str, object], message: str) -> None:
    write_events(tmp_path / "a.parquet", _quotes(10, 1))
    _manifest(tmp_path, [{**entry, "event": "Quote", "venue": "binance", "instrument": "TSLAx/USDT"}])
    with pytest.raises(DataError) as err:
        load_dataset(tmp_path)
    assert str(err.value) == f"{tmp_path / 'manifest.yaml'}: {message}"
