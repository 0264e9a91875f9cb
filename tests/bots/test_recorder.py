"""The recorder against real sources: the Binance emulator through ccxt.pro, the Alpaca emulator's
streams, a Uniswap v2 pair and a MockAggregator on anvil; rotation, a SIGKILLed recording
subprocess resumed without duplicates, and a backtest on the recorded directory.

Expected rows come from what the test itself published to the emulators or sent to the chain
(and the chain's own `getReserves`), never from the recorder's earlier output.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import pyarrow.parquet as pq
import pytest

from backtest.data import load_dataset, load_manifest, stream_arrays
from bots.recorder import Recorder, read_wal, sealed_files
from bots.recorder_sources import CcxtSource
from connectors.ccxt_exchange import CcxtExchange, RetryPolicy
from connectors.emulators.binance import BinanceEmulator, BinanceSymbol, point_ccxt_at
from core.clock import LiveClock
from core.enums import Side
from core.events import BookUpdate, Quote, Trade

D = Decimal
KEY, SECRET = "recorder-key-not-real", "recorder-secret-not-real"
SYMBOL_ID = "TSLAXUSDT"
INSTRUMENT = "TSLAx/USDT"
OPTIONS = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False}
FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, seed=5)
ROOT = Path(__file__).resolve().parents[2]
T0 = int(datetime(2026, 12, 3, 7, 0, tzinfo=UTC).timestamp()) * 10**9  # a fake wall clock's start
WAIT_S = 30.0  # a guard against hangs, never a timing assertion


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a state the emulator, the chain or the recorder will reach."""
    try:
        async with asyncio.timeout(WAIT_S):
            while not condition():  # noqa: ASYNC110 - states of other processes and tasks
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"never reached: {what}") from None


def bid_of(k: int) -> D:
    """The k-th published best bid: 100.01, 100.02, ... (exact in binary-free Decimal, then float)."""
    return D(100) + D(k) / 100


def publish(emulator: BinanceEmulator, k: int) -> None:
    """Move the top of book: bid k, ask k + 1 tick above 101."""
    emulator.set_book(SYMBOL_ID, [(bid_of(k), D(3))], [(D(101) + D(k) / 100, D(2))])


@pytest.fixture
async def emulator() -> AsyncIterator[BinanceEmulator]:
    emu = BinanceEmulator(
        KEY, SECRET, [BinanceSymbol("TSLAX", "USDT")], balances={"USDT": D(100_000), "TSLAX": D(50)}
    )
    await emu.start()
    emu.set_book(SYMBOL_ID, [(D("99.5"), D(10))], [(D("100.5"), D(4)), (D(101), D(6))])
    yield emu
    await emu.close()


def public_venue(emulator: BinanceEmulator) -> CcxtExchange:
    """A ccxt.pro binance client with no keys, pointed at the emulator (the recorder needs none)."""
    client = point_ccxt_at(ccxt_pro.binance({"options": dict(OPTIONS)}), emulator.base_url)
    return CcxtExchange("binance", client, {INSTRUMENT: "TSLAX/USDT"}, LiveClock(), retry=FAST)


def subscribed(emulator: BinanceEmulator) -> set[str]:
    names: set[str] = set()
    for msg in emulator.streams.received:
        if msg.get("method") == "SUBSCRIBE":
            names.update(msg.get("params") or [])
    return names


WS_READY = {"tslaxusdt@bookTicker", "tslaxusdt@depth@100ms", "tslaxusdt@trade"}


class FakeClock:
    """The recorder's wall clock, moved by the test: periods change only when the test says so."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def files_under(root: Path, pattern: str) -> list[Path]:
    return sorted(root.glob(pattern))


def leftovers(root: Path) -> list[Path]:
    """Write-ahead logs and tmp files under `root` (none after a graceful stop)."""
    return files_under(root, "**/*.wal") + files_under(root, "**/*.tmp")


def quotes_of(path: Path, name: str) -> list[Quote]:
    ds = load_dataset(path, streams=[name])
    return stream_arrays(ds.streams[0])[1]  # type: ignore[return-value]


async def test_binance_streams_rotate_hourly_into_the_backtest_schema(
    emulator: BinanceEmulator, tmp_path: Path
) -> None:
    venue = public_venue(emulator)
    trader = point_ccxt_at(
        ccxt_async.binance({"apiKey": KEY, "secret": SECRET, "options": dict(OPTIONS)}), emulator.base_url
    )
    clock = FakeClock(T0 + 59 * 60 * 10**9)  # 07:59
    recorder = Recorder([CcxtSource(venue)], tmp_path, flush_interval_s=0.02, clock=clock)
    run = asyncio.create_task(recorder.run())
    quotes = "quote.binance.TSLAx-USDT"
    try:
        await until(lambda: subscribed(emulator) >= WS_READY, "subscriptions")
        stats = lambda: recorder.streams[quotes].stats  # noqa: E731
        await until(lambda: quotes in recorder.streams and stats().written >= 1, "the REST snapshot quote")
        for k in range(1, 6):
            publish(emulator, k)
            await until(lambda k=k: stats().written == 1 + k, f"quote {k} flushed")  # type: ignore[misc]
        # A taker buy of 1.5 takes the 101.05 ask: a public trade on the tape.
        await trader.load_markets()
        await trader.create_order("TSLAX/USDT", "market", "buy", 1.5)
        await until(lambda: "trade.binance.TSLAx-USDT" in recorder.streams, "the trade")
        trades = recorder.streams["trade.binance.TSLAx-USDT"]
        await until(lambda: trades.stats.written == 1, "the trade flushed")
        await until(lambda: stats().written == 7, "the top of book after the trade")
        # The hour turns: the 07 logs are sealed, 08 starts with the next quotes.
        clock.now = T0 + 60 * 60 * 10**9
        await until(lambda: stats().files_sealed == 1, "the 07 period sealed")
        for k in range(6, 9):
            publish(emulator, k)
            await until(lambda k=k: stats().written == k + 2, f"quote {k} flushed")  # type: ignore[misc]
    finally:
        recorder.stop()
        await run
        await venue.close()
        await trader.close()

    quote_dir = tmp_path / quotes
    assert [p.name for p in sealed_files(quote_dir)] == ["20261203T07.parquet", "20261203T08.parquet"]
    assert leftovers(tmp_path) == []
    manifest = load_manifest(tmp_path)
    entry = manifest.entry(quotes)
    assert entry.files == (f"{quotes}/20261203T07.parquet", f"{quotes}/20261203T08.parquet")
    assert (entry.event, dict(entry.constants)) == ("Quote", {"venue": "binance", "instrument": INSTRUMENT})

    recorded = quotes_of(tmp_path, quotes)
    # The snapshot (REST ticker), then every published top of book once, in order.
    expected = [(99.5, 100.5, 10.0, 4.0)]
    expected += [(float(bid_of(k)), float(D(101) + D(k) / 100), 3.0, 2.0) for k in range(1, 6)]
    expected += [(float(bid_of(5)), float(D(101) + D(5) / 100), 3.0, 0.5)]  # 1.5 of the 2 taken
    expected += [(float(bid_of(k)), float(D(101) + D(k) / 100), 3.0, 2.0) for k in range(6, 9)]
    assert [(q.bid, q.ask, q.bid_size, q.ask_size) for q in recorded] == expected
    assert all(q.venue == "binance" and q.instrument == INSTRUMENT for q in recorded)
    ts = [q.ts for q in recorded]
    assert ts == sorted(ts)
    # The first file holds what was flushed before 08:00 on the recorder's clock, the second the rest.
    first = pq.read_table(quote_dir / "20261203T07.parquet")
    assert first.num_rows == 7 and first.column_names == ["ts", "bid", "ask", "bid_size", "ask_size"]

    (trade,) = stream_arrays(load_dataset(tmp_path, streams=["trade.binance.TSLAx-USDT"]).streams[0])[1]
    assert isinstance(trade, Trade)
    assert (trade.price, trade.size, trade.aggressor, trade.trade_id) == (101.05, 1.5, Side.BUY, "1")

    books = stream_arrays(load_dataset(tmp_path, streams=["bookupdate.binance.TSLAx-USDT"]).streams[0])[1]
    assert isinstance(books[0], BookUpdate)
    assert books[0].bids == ((99.5, 10.0),) and books[0].asks == ((100.5, 4.0), (101.0, 6.0))
    assert books[-1].bids == ((float(bid_of(8)), 3.0),) and books[-1].asks == ((101.08, 2.0),)


RECORD_SCRIPT = """
import asyncio, json, sys
import ccxt.pro as ccxt_pro
from bots.recorder import Recorder
from bots.recorder_sources import CcxtSource
from connectors.ccxt_exchange import CcxtExchange, RetryPolicy
from connectors.emulators.binance import point_ccxt_at
from core.clock import LiveClock

base_url, out_dir = sys.argv[1], sys.argv[2]
options = json.loads(sys.argv[3])

def report(stream, written):
    print(json.dumps({"stream": stream, "written": written}), flush=True)

async def main():
    client = point_ccxt_at(ccxt_pro.binance({"options": options}), base_url)
    venue = CcxtExchange("binance", client, {"TSLAx/USDT": "TSLAX/USDT"}, LiveClock(),
                         retry=RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, seed=1))
    await Recorder([CcxtSource(venue)], out_dir, flush_interval_s=0.05, on_flush=report).run()

asyncio.run(main())
"""


async def test_sigkill_mid_stream_then_resume_no_duplicates_nothing_flushed_lost(
    emulator: BinanceEmulator, tmp_path: Path
) -> None:
    quotes = "quote.binance.TSLAx-USDT"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        RECORD_SCRIPT,
        emulator.base_url,
        str(tmp_path),
        json.dumps(OPTIONS),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    reported: dict[str, int] = {}

    async def read_reports() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            item = json.loads(line)
            reported[item["stream"]] = item["written"]

    reader = asyncio.create_task(read_reports())
    published = 0
    stop_publishing = asyncio.Event()

    async def publisher() -> None:
        nonlocal published
        while not stop_publishing.is_set():
            published += 1
            publish(emulator, published)
            await asyncio.sleep(0.005)  # pace, not a timing assertion: keeps batches small

    try:
        await until(lambda: subscribed(emulator) >= WS_READY and reported.get(quotes, 0) >= 1, "recording")
        pump = asyncio.create_task(publisher())
        await until(lambda: reported.get(quotes, 0) >= 40, "40 quotes flushed")
        proc.send_signal(signal.SIGKILL)  # mid-stream: the publisher is still running
        await proc.wait()
        stop_publishing.set()
        await pump
        await reader
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    last_reported = reported[quotes]

    # Nothing corrupt: the log reads back to its last complete batch, no Parquet file is half-written.
    quote_dir = tmp_path / quotes
    (wal,) = leftovers(quote_dir)
    for path in files_under(tmp_path, "**/*.parquet"):
        pq.read_table(path)
    logged = read_wal(wal)
    survived = logged.num_rows
    assert survived >= last_reported  # everything flushed before the kill is there
    logged_rows = list(zip(*(logged.column(c).to_pylist() for c in logged.column_names), strict=True))

    # One more top of book while the recorder is down, then resume in this process.
    published += 1
    publish(emulator, published)
    down_to = published
    venue = public_venue(emulator)
    recorder = Recorder([CcxtSource(venue)], tmp_path, flush_interval_s=0.02)
    run = asyncio.create_task(recorder.run())
    try:
        await until(lambda: subscribed(emulator) >= WS_READY, "subscriptions")
        written = lambda: recorder.streams[quotes].stats.written if quotes in recorder.streams else 0  # noqa: E731
        await until(lambda: written() == 1, "the snapshot at restart")
        for n in range(1, 6):
            published += 1
            publish(emulator, published)
            await until(lambda n=n: written() == 1 + n, f"new quote {n}")  # type: ignore[misc]
    finally:
        recorder.stop()
        await run
        await venue.close()

    assert leftovers(tmp_path) == []
    files = sealed_files(quote_dir)
    assert len(files) == 2  # the recovered log, then the resumed segment
    recorded = quotes_of(tmp_path, quotes)
    # The recovered rows are in the dataset exactly as they were logged before the kill.
    assert [tuple(q[:1]) + tuple(q[3:]) for q in recorded[:survived]] == logged_rows
    bids = [q.bid for q in recorded]
    assert bids[0] == 99.5  # the REST snapshot at the first start
    # ccxt keeps only the newest ticker, so under a fast tape some tops are never seen: what was
    # seen is a strictly increasing subsequence of what was published (no row twice).
    assert all(a < b for a, b in itertools.pairwise(bids))
    assert set(bids[1:survived]) <= {float(bid_of(k)) for k in range(1, down_to)}
    # Resumed: the REST snapshot of the top published while down (the gap), then the 5 new ones.
    assert bids[survived:] == [float(bid_of(k)) for k in range(down_to, published + 1)]
    assert [q.ts for q in recorded] == sorted(q.ts for q in recorded)
