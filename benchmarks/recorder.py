"""Recorder throughput: synthetic quotes through `bots.recorder.Recorder` into a temporary dataset.

Measures events accepted per second with the writer flushing (Arrow IPC + fsync) alongside, the
time to seal and write the manifest, and a resume (reading the newest files back for dedup keys).
Peer: a plain pyarrow `ParquetWriter` fed by the same stream, one `write_table` per 0.1 s batch, no
write-ahead log, fsync, dedup or rotation: the floor of what recording to Parquet costs.
Run: `.venv/bin/python -m benchmarks.recorder`.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bots.recorder import Recorder
from core.events import Event, Quote

N = 200_000
T0 = 1_764_745_200_000_000_000  # 2025-12-03T07:00Z, ns


class _Synthetic:
    """A random-walk top of book every millisecond, yielding to the loop every 1000 events."""

    name = "synthetic"

    def __init__(self, n: int) -> None:
        self.n = n
        self.done = asyncio.Event()

    async def stream(self) -> AsyncIterator[Event]:
        rng = random.Random(7)
        mid = 250.0
        for i in range(self.n):
            mid = round(mid + rng.choice((-0.01, 0.0, 0.01)), 2)
            yield Quote(T0 + i * 1_000_000, "binance", "TSLAx/USDT", mid - 0.05, mid + 0.05, 3.0, 2.0)
            if i % 1000 == 999:
                await asyncio.sleep(0)
        self.done.set()
        await asyncio.Event().wait()


def _parquet_bytes(out: Path) -> int:
    return sum(p.stat().st_size for p in out.glob("**/*.parquet"))


async def _run(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        source = _Synthetic(n)
        recorder = Recorder([source], out, flush_interval_s=0.1)
        started = time.perf_counter()
        run = asyncio.create_task(recorder.run())
        await source.done.wait()
        accepted = time.perf_counter() - started
        recorder.stop()
        await run
        sealed = time.perf_counter() - started
        size = _parquet_bytes(out)
        started = time.perf_counter()
        await Recorder([], out).open()
        resumed = time.perf_counter() - started
    peer = await _plain_parquet(n)
    print(
        f"{n:,} quotes accepted in {accepted:.2f} s: {n / accepted:,.0f} quotes/s (flushing every 0.1 s); "
        f"{(n / accepted) / peer:.2f}x plain pyarrow ParquetWriter ({peer:,.0f} quotes/s)"
    )
    print(f"sealed, manifest written at {sealed:.2f} s; Parquet {size / 1e6:.2f} MB, {size / n:.1f} B/quote")
    print(f"resume (newest files read back, {n:,} dedup keys): {resumed:.2f} s")


async def _plain_parquet(n: int) -> float:
    """Quotes per second of the peer: the same stream into one ParquetWriter, a table per 0.1 s."""
    source = _Synthetic(n)
    names = ["ts", "bid", "ask", "bid_size", "ask_size"]
    with tempfile.TemporaryDirectory() as tmp:
        writer = pq.ParquetWriter(Path(tmp) / "quotes.parquet", pa.schema([(c, pa.float64()) for c in names]))
        rows: list[tuple[float, ...]] = []
        started = last = time.perf_counter()
        stream = source.stream()
        async for event in stream:
            assert isinstance(event, Quote)
            rows.append((float(event.ts), event.bid, event.ask, event.bid_size, event.ask_size))
            final = event.ts == T0 + (n - 1) * 1_000_000
            if final or time.perf_counter() - last >= 0.1:
                columns = map(list, zip(*rows, strict=True))
                writer.write_table(pa.table(dict(zip(names, columns, strict=True))))
                rows.clear()
                last = time.perf_counter()
            if final:
                break
        elapsed = time.perf_counter() - started
        writer.close()
        await stream.aclose()  # type: ignore[attr-defined]
    return n / elapsed


def main() -> None:
    """Print the figures."""
    asyncio.run(_run(N))


if __name__ == "__main__":
    main()
