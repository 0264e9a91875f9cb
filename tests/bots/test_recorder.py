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
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import pyarrow.parquet as pq
import pytest
from web3 import AsyncHTTPProvider, AsyncWeb3

from backtest.data import load_dataset, load_manifest, stream_arrays
from backtest.runner import build_backtest
from bots.recorder import Recorder, StreamId, _table, _Wal, read_wal, seal, sealed_files
from bots.recorder_sources import AlpacaSource, CcxtSource, MarketStatusSource, OracleSource, PoolSource
from connectors.brokers.alpaca import AlpacaBroker
from connectors.ccxt_exchange import CcxtExchange, RetryPolicy
from connectors.emulators.alpaca import AlpacaAsset, AlpacaEmulator
from connectors.emulators.binance import BinanceEmulator, BinanceSymbol, point_ccxt_at
from connectors.evm.anvil import start_anvil
from connectors.evm.chainlink import ChainlinkFeed, load_contract_artifact
from connectors.evm.pool_logs import PoolLogFollower
from connectors.evm.uniswap_artifacts import deploy
from connectors.evm.uniswap_v2 import UniswapV2Pair
from core.calendar import MarketCalendar
from core.clock import LiveClock
from core.config import load_config
from core.enums import OrderStatus, Side
from core.events import BookUpdate, OrderUpdate, Quote, Trade
from tests.connectors.evm.conftest import deploy_v2

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


def subscriptions(emulator: BinanceEmulator, stream: str) -> int:
    """How many times `stream` was subscribed to (each recorder run subscribes once)."""
    received = emulator.streams.received
    return sum(stream in (m.get("params") or []) for m in received if m.get("method") == "SUBSCRIBE")


WS_READY = {"tslaxusdt@bookTicker", "tslaxusdt@depth@100ms", "tslaxusdt@trade"}


class FakeClock:
    """The recorder's wall clock, moved by the test: periods change only when the test says so."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def files_under(root: Path, pattern: str) -> list[Path]:
    return sorted(root.glob(pattern))


def manifest_paths(root: Path, name: str) -> tuple[str, ...]:
    """The files the manifest lists for stream `name` (none before the first seal)."""
    if not (root / "manifest.yaml").exists():
        return ()
    return load_manifest(root).entry(name).paths


def logged_rows(directory: Path) -> int:
    """Rows in the write-ahead logs of one stream directory."""
    tables = [read_wal(p) for p in files_under(directory, "*.wal")]
    return sum(t.num_rows for t in tables if t is not None)


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
        sealed_07 = (f"{quotes}/20261203T07.parquet",)
        await until(lambda: manifest_paths(tmp_path, quotes) == sealed_07, "the manifest names it")
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
        await until(lambda: subscriptions(emulator, "tslaxusdt@bookTicker") == 2, "subscribed again")
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


# --------------------------------------------------------------------------------------------
# Alpaca, a Uniswap v2 pair and a Chainlink mock on anvil, the calendar; a restart; a backtest


SNAPSHOTS = ("quotes", "pool", "oracle", "status", "btc")  # streams whose source starts with a snapshot


class StepClock:
    """The Alpaca emulator's clock: the test moves it 1 ms per published quote or trade."""

    def __init__(self, now: int) -> None:
        self.now = now

    def now_ns(self) -> int:
        return self.now


async def _send(w3: Any, call: Any, sender: str) -> int:
    """Send a contract call from `sender`; the block number it was mined in."""
    tx_hash = await call.transact({"from": sender})
    receipt = await w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt["status"] == 1
    return int(receipt["blockNumber"])


async def test_all_sources_resume_then_backtest_the_default_config(
    emulator: BinanceEmulator, tmp_path: Path
) -> None:
    node = await start_anvil()
    w3 = AsyncWeb3(AsyncHTTPProvider(node.url))
    now = time.time_ns()
    day = datetime.fromtimestamp(now // 10**9, tz=UTC).date()
    calendar = MarketCalendar(start=day - timedelta(days=10), end=day + timedelta(days=30))
    alpaca_clock = StepClock(now)
    emu = AlpacaEmulator(KEY, SECRET, calendar, alpaca_clock, [AlpacaAsset("TSLA")], cash=D(10_000))
    await emu.start()
    http = aiohttp.ClientSession()
    try:
        v2 = await deploy_v2(w3, 1_000 * 10**18, 250_000 * 10**18)
        deployer = v2.deployer
        aggregator = await deploy(w3, load_contract_artifact("MockAggregator"), 8, "TSLA / USD")
        # The default config's options pool prices BTC: its feed is recorded too.
        btc_aggregator = await deploy(w3, load_contract_artifact("MockAggregator"), 8, "BTC / USD")
        t_s = now // 10**9
        await _send(w3, btc_aggregator.functions.updateAnswer(93_381 * 10**8, t_s - 60), deployer)
        await _send(w3, aggregator.functions.updateAnswer(250_10_000_000, t_s - 30), deployer)
        emu.set_quote("TSLA", D("250.05"), D("250.15"), D(3), D(4))

        exchanges: list[CcxtExchange] = []

        def sources() -> list[Any]:
            exchanges.append(public_venue(emulator))
            broker = AlpacaBroker(
                "alpaca", emu.base_url, KEY, SECRET, calendar, alpaca_clock, http,
                backoff_s=0.001, data_url=emu.base_url, data_stream_url=emu.ws_url + "/v2/iex",
                symbols=("TSLA",), reconnect_backoff_s=0.001,
            )  # fmt: skip
            pair = UniswapV2Pair(w3, v2.pair.address)
            follower = PoolLogFollower(
                pair, venue="uniswap_v2_test", pool_id="T0/T1", poll_interval_seconds=0.02
            )
            feed = ChainlinkFeed(w3, aggregator.address, "chainlink_local", "TSLA/USD", max_age_ns=10**18)
            btc = ChainlinkFeed(w3, btc_aggregator.address, "chainlink_local", "BTC/USD", max_age_ns=10**18)
            return [
                CcxtSource(exchanges[-1]),  # the token's exchange quotes: the options pool prices TSLAx
                AlpacaSource(broker, {"TSLA": "TSLA/USD"}),
                PoolSource(follower),
                OracleSource(feed, poll_interval_s=0.02),
                OracleSource(btc, poll_interval_s=0.02),
                MarketStatusSource(calendar),
            ]

        names = {
            "quotes": "quote.alpaca.TSLA-USD",
            "trades": "trade.alpaca.TSLA-USD",
            "pool": "poolstate.uniswap_v2_test.T0-T1",
            "oracle": "oracleprice.chainlink_local.TSLA-USD",
            "status": "marketstatus.XNYS",
            "btc": "oracleprice.chainlink_local.BTC-USD",
        }
        expected_pool: list[tuple[int, int, int]] = []  # (block, reserve0, reserve1) from getReserves
        expected_rounds = [(1, 250.1, (t_s - 30) * 10**9)]

        async def reserves(block: int) -> None:
            r0, r1, _ = await v2.pair.functions.getReserves().call()
            expected_pool.append((block, int(r0), int(r1)))

        async def swap(amount_in: int) -> None:
            """Sell `amount_in` token0 into the pair for the constant-product output (0.3% fee)."""
            r0, r1, _ = await v2.pair.functions.getReserves().call()
            out = amount_in * 997 * r1 // (r0 * 1000 + amount_in * 997)
            await _send(w3, v2.token0.functions.transfer(v2.pair.address, amount_in), deployer)
            block = await _send(w3, v2.pair.functions.swap(0, out, deployer, b""), deployer)
            await reserves(block)

        def written(rec: Recorder, key: str) -> int:
            stream = rec.streams.get(names[key])
            return 0 if stream is None else stream.stats.written

        # Session 1
        recorder = Recorder(sources(), tmp_path, flush_interval_s=0.02)
        run = asyncio.create_task(recorder.run())
        try:
            await until(
                lambda: all(written(recorder, k) == 1 for k in ("quotes", "pool", "oracle", "status")),
                "snapshots",
            )
            await reserves(await w3.eth.block_number)
            for n, amount in enumerate((10**18, 5 * 10**18, 3 * 10**17), start=2):
                await swap(amount)
                await until(lambda n=n: written(recorder, "pool") == n, f"swap {n - 1}")  # type: ignore[misc]
            for rnd, answer in ((2, 250_20_000_000), (3, 249_95_000_000)):
                publish_s = t_s - 30 + rnd
                await _send(w3, aggregator.functions.updateAnswer(answer, publish_s), deployer)
                expected_rounds.append((rnd, answer / 10**8, publish_s * 10**9))
                await until(lambda rnd=rnd: written(recorder, "oracle") == rnd, f"round {rnd}")  # type: ignore[misc]
            await emu.streams.wait_for(subscriptions=1)
            for n, (bid, ask) in enumerate((("250.10", "250.20"), ("250.30", "250.35")), start=2):
                alpaca_clock.now += 10**6
                await emu.push_quote("TSLA", D(bid), D(ask), D(n), D(n + 1))
                await until(lambda n=n: written(recorder, "quotes") == n, f"quote {n}")  # type: ignore[misc]
            for n, price in enumerate(("250.31", "250.33"), start=1):
                alpaca_clock.now += 10**6
                await emu.push_trade("TSLA", D(price), D(n))
                await until(lambda n=n: written(recorder, "trades") == n, f"trade {n}")  # type: ignore[misc]
        finally:
            recorder.stop()
            await run

        # Session 2: fresh connectors; their start-up snapshots repeat what is on disk and are skipped.
        recorder = Recorder(sources(), tmp_path, flush_interval_s=0.02)
        run = asyncio.create_task(recorder.run())
        try:
            dup = lambda k: recorder.streams[names[k]].stats.duplicates if names[k] in recorder.streams else 0  # noqa: E731
            await until(lambda: all(dup(k) == 1 for k in SNAPSHOTS), "skipped snapshots")
            binance_quotes = lambda: recorder.streams.get("quote.binance.TSLAx-USDT")  # noqa: E731
            await until(lambda: (q := binance_quotes()) is not None and q.stats.written == 1, "REST quote")
            await swap(2 * 10**18)
            await until(lambda: written(recorder, "pool") == 1, "the swap after the restart")
            await _send(w3, aggregator.functions.updateAnswer(251_00_000_000, t_s - 20), deployer)
            expected_rounds.append((4, 251.0, (t_s - 20) * 10**9))
            await until(lambda: written(recorder, "oracle") == 1, "round 4")
        finally:
            recorder.stop()
            await run
    finally:
        for exchange in exchanges:
            await exchange.close()
        await http.close()
        await emu.close()
        await w3.provider.disconnect()
        await node.stop()

    ds = load_dataset(tmp_path)
    rows = {entry.name: stream_arrays(s)[1] for entry, s in zip(ds.manifest.streams, ds.streams, strict=True)}
    binance = {"quote.binance.TSLAx-USDT", "bookupdate.binance.TSLAx-USDT"}
    assert set(rows) == set(names.values()) | binance
    # The exchange: its REST snapshot at each start (no trade, no new top of book meanwhile).
    assert [(q.bid, q.ask) for q in rows["quote.binance.TSLAx-USDT"]] == [(99.5, 100.5), (99.5, 100.5)]
    pool = rows[names["pool"]]
    assert [(e.block_number, e.reserve0, e.reserve1) for e in pool] == expected_pool
    assert all(
        (e.venue, e.pool, e.sqrt_price_x96, e.liquidity) == ("uniswap_v2_test", "T0/T1", 0, 0) for e in pool
    )
    assert [(e.round_id, e.price, e.publish_ts) for e in rows[names["oracle"]]] == expected_rounds
    assert [(q.instrument, q.bid, q.ask, q.bid_size, q.ask_size) for q in rows[names["quotes"]]] == [
        ("TSLA/USD", 250.05, 250.15, 3.0, 4.0),
        ("TSLA/USD", 250.10, 250.20, 2.0, 3.0),
        ("TSLA/USD", 250.30, 250.35, 3.0, 4.0),
    ]
    assert [(t.price, t.size) for t in rows[names["trades"]]] == [(250.31, 1.0), (250.33, 2.0)]
    assert len({t.trade_id for t in rows[names["trades"]]}) == 2
    (btc,) = rows[names["btc"]]
    assert (btc.instrument, btc.price, btc.round_id, btc.publish_ts) == (
        "BTC/USD",
        93_381.0,
        1,
        (t_s - 60) * 10**9,
    )
    (status,) = rows[names["status"]]
    assert status.session is calendar.session_at(status.ts)
    for events in rows.values():
        assert len(set(events)) == len(events)  # no duplicate rows

    # A backtest of the default config on the recorded directory, unchanged.
    start = min(int(e.ts) for events in rows.values() for e in events)
    end = max(int(e.ts) for events in rows.values() for e in events) + 1
    bt = build_backtest(load_config(ROOT / "config.yaml"), data_dir=tmp_path, start_ns=start, end_ns=end)
    result = bt.run()
    assert result.events == sum(len(events) for events in rows.values())


# --------------------------------------------------------------------------------------------
# Crash windows, without a network: a torn log, a crash between rename and delete, bad events


class ListSource:
    """Yields given events, then waits (a live stream that went quiet)."""

    def __init__(self, name: str, events: list[Any]) -> None:
        self.name = name
        self.events = events
        self.exhausted = False

    async def stream(self) -> AsyncIterator[Any]:
        for event in self.events:
            yield event
        self.exhausted = True  # each event was recorded before the next was asked for
        await asyncio.Event().wait()


def q(ts: int, bid: float) -> Quote:
    return Quote(ts, "binance", INSTRUMENT, bid, bid + 1, 1.0, 2.0)


async def _record(tmp_path: Path, events: list[Any], **kw: Any) -> Recorder:
    source = ListSource("list", events)
    recorder = Recorder([source], tmp_path, flush_interval_s=0.01, **kw)
    run = asyncio.create_task(recorder.run())
    await until(lambda: source.exhausted, "every event recorded")
    recorder.stop()
    await run
    return recorder


def _torn_log(tmp_path: Path) -> Path:
    """A log of three one-row batches (ts 1, 2, 3) whose last batch lost its final 40 bytes, as a
    crash in the middle of a write leaves it."""
    sid = StreamId("Quote", ("binance", INSTRUMENT))
    directory = tmp_path / sid.slug()
    directory.mkdir(parents=True)
    meta = {"format": "perpetua-stream", "version": 1, "event": "Quote", "constants": sid.constants_map()}
    schema = _table(sid, [q(1, 10.0)]).schema.with_metadata({b"perpetua": json.dumps(meta).encode()})
    wal = _Wal(directory / "20261203T07.wal", schema)
    for event in (q(1, 10.0), q(2, 11.0)):
        wal.append(_table(sid, [event]))
    intact = wal.path.stat().st_size
    wal.append(_table(sid, [q(3, 12.0)]))
    wal.close()
    with wal.path.open("r+b") as f:
        f.truncate(wal.path.stat().st_size - 40)
    assert wal.path.stat().st_size > intact
    return wal.path


def test_a_torn_log_keeps_its_complete_batches_and_is_sealed_on_start(tmp_path: Path) -> None:
    path = _torn_log(tmp_path)
    assert read_wal(path).num_rows == 2
    asyncio.run(_record(tmp_path, [q(2, 11.0), q(4, 13.0)]))  # ts 2 is on disk already
    files = sealed_files(path.parent)
    assert len(files) == 2 and files[0].name == "20261203T07.parquet"  # recovered, then this run's hour
    recorded = quotes_of(tmp_path, path.parent.name)
    assert [(e.ts, e.bid) for e in recorded] == [(1, 10.0), (2, 11.0), (4, 13.0)]
    assert leftovers(tmp_path) == []


def test_a_crash_between_rename_and_delete_leaves_no_duplicate(tmp_path: Path) -> None:
    path = _torn_log(tmp_path)
    sid = StreamId("Quote", ("binance", INSTRUMENT))
    final = seal(path, sid)
    assert final is not None and not path.exists()
    # As if the process died after the rename: the log is back beside its sealed file (its content
    # is not even read), and a half-written tmp file of another seal lies around.
    path.write_bytes(b"not even a schema")
    (path.parent / "20261203T08.parquet.tmp").write_bytes(b"half a file")
    asyncio.run(_record(tmp_path, []))
    assert [(e.ts, e.bid) for e in quotes_of(tmp_path, sid.slug())] == [(1, 10.0), (2, 11.0)]
    assert leftovers(tmp_path) == []


def test_bad_events_are_skipped_and_time_never_goes_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    nan = float("nan")
    events: list[Any] = [
        q(10, 100.0),
        Quote(11, "binance", INSTRUMENT, nan, 101.0, 1.0, 2.0),  # an empty bid side
        q(9, 100.5),  # the exchange's clock went back: recorded at 10
        q(10, 100.0),  # an exact repeat
        Trade(12, "binance", INSTRUMENT, 100.2, 0.5, Side.SELL, "77"),
        Trade(13, "binance", INSTRUMENT, 100.2, 0.5, Side.SELL, "77"),  # the same trade id again
        OrderUpdate(14, "binance", "c-1", OrderStatus.ACCEPTED),  # our own execution: not market data
    ]
    recorder = asyncio.run(_record(tmp_path, events))
    stats = recorder.streams["quote.binance.TSLAx-USDT"].stats
    assert (stats.received, stats.written, stats.invalid, stats.duplicates, stats.clamped) == (4, 2, 1, 1, 1)
    recorded = quotes_of(tmp_path, "quote.binance.TSLAx-USDT")
    assert [(e.ts, e.bid) for e in recorded] == [(10, 100.0), (10, 100.5)]
    assert sorted(recorder.streams) == ["quote.binance.TSLAx-USDT", "trade.binance.TSLAx-USDT"]
    assert recorder.streams["trade.binance.TSLAx-USDT"].stats.duplicates == 1
    assert "bid: not a valid price, got nan" in caplog.text


# --------------------------------------------------------------------------------------------
# The command line


CLI_CONFIG = """
name: recorder-cli
mode: sandbox
venues:
  - {{name: chainlink_local, kind: chainlink, chain_id: 31337, rpc_url: "{rpc}",
      feeds: {{TSLA/USD: "{feed}"}}}}
  - {{name: uniswap_v2_test, kind: uniswap_v2, chain_id: 31337, rpc_url: "{rpc}",
      factory: "{factory}", router: "{factory}"}}
  - {{name: xstocks, kind: issuer, issuer: xstocks, tokens: [TSLAx], mint_fee_bps: 10, redeem_fee_bps: 10,
      min_notional: 1000, settlement: 1d}}
tokens:
  - {{id: TKA, chain_id: 31337, address: "{token0}", decimals: 18}}
  - {{id: TKB, chain_id: 31337, address: "{token1}", decimals: 18}}
instruments:
  - {{id: TKA/TKB, kind: pool, venue: uniswap_v2_test, chain_id: 31337, address: "{pair}",
      token0: TKA, token1: TKB, fee: 3000, version: 2}}
  - {{id: TSLAx, kind: tokenized_stock, underlying: TSLA, issuer: xstocks, chain_id: 31337,
      address: "0x5FbDB2315678afecb367f032d93F642f64180aa3", decimals: 18, multiplier: {{initial: 1.0}}}}
  - {{id: TSLA/USD, kind: spot, base: TSLA, quote: USD, price_increment: 0.01, size_increment: 1}}
risk:
  currency: USD
  max_position: 100
  max_notional: 25000
  max_order_rate: {{orders_per_second: 5, window_ms: 1000}}
  max_daily_loss: 1000
  max_data_staleness_ms: 90000
  price_band_bps: 200
  max_gas_price_gwei: 50
"""


async def test_cli_data_record_until_sigterm(tmp_path: Path) -> None:
    node = await start_anvil()
    w3 = AsyncWeb3(AsyncHTTPProvider(node.url))
    try:
        owner = (await w3.eth.accounts)[0]
        aggregator = await deploy(w3, load_contract_artifact("MockAggregator"), 8, "TSLA / USD")
        await _send(w3, aggregator.functions.updateAnswer(24_990_000_000, 1_767_225_600), owner)
        config = tmp_path / "record.yaml"
        v2 = await deploy_v2(w3, 10**21, 3 * 10**21)
        config.write_text(
            CLI_CONFIG.format(
                rpc=node.url,
                feed=aggregator.address,
                factory=v2.factory.address,
                token0=v2.token0.address,
                token1=v2.token1.address,
                pair=v2.pair.address,
            )
        )
        out_dir = tmp_path / "rec"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bots", "data", "record", str(config),
            "--out", str(out_dir), "--flush", "0.05",
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            oracle_dir = out_dir / "oracleprice.chainlink_local.TSLA-USD"
            pool_dir = out_dir / "poolstate.uniswap_v2_test.TKA-TKB"
            await until(lambda: logged_rows(oracle_dir) == 1 == logged_rows(pool_dir), "round and pool")
            proc.send_signal(signal.SIGTERM)
            stdout, stderr = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    finally:
        await w3.provider.disconnect()
        await node.stop()
    assert proc.returncode == 0, stderr.decode()
    text = stdout.decode()
    assert "not recorded: xstocks (issuer: no market data to record)" in text
    assert "oracleprice.chainlink_local.TSLA-USD: 1 rows, 0 duplicates skipped" in text
    assert leftovers(out_dir) == []
    ds = load_dataset(out_dir)
    assert [e.name for e in ds.manifest.streams] == [
        "marketstatus.XNYS",
        "oracleprice.chainlink_local.TSLA-USD",
        "poolstate.uniswap_v2_test.TKA-TKB",
    ]
    (state,) = stream_arrays(ds.stream("poolstate.uniswap_v2_test.TKA-TKB"))[1]
    assert (state.pool, state.reserve0, state.reserve1) == ("TKA/TKB", 10**21, 3 * 10**21)
    (price,) = stream_arrays(ds.stream("oracleprice.chainlink_local.TSLA-USD"))[1]
    assert (price.price, price.publish_ts, price.round_id) == (249.9, 1_767_225_600 * 10**9, 1)


def test_cli_data_record_refuses_bad_options(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bots.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["data", "record", str(ROOT / "config.yaml"), "--rotate", "0"])
    assert result.exit_code == 2 and "must be >= 1, got 0" in result.output
    result = runner.invoke(app, ["data", "record", str(tmp_path / "missing.yaml"), "--out", str(tmp_path)])
    assert result.exit_code == 2
