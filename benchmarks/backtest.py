"""Backtest throughput: 1,000,000 quote events, against nautilus_trader, hftbacktest and backtrader.

Workloads, the same for every engine: (a) a strategy called on every quote that does nothing; (b)
the same strategy sending a market order every 1,000 quotes (alternating buy and sell) to a
simulated exchange with fees. Perpetua runs an ordinary async strategy through the trading engine
and the replay driver with the simulated order-book exchange attached; its "fast path" rows run a
strategy that declares, through a compiled filter, which quotes wake it (here: one in 1,000).

Peers run in `.venv-peers` (nautilus_trader pins older numpy and pandas); a missing peer is
reported, not fatal. Peak memory: tracemalloc peak of the Perpetua run streamed from Parquet in
chunks, for 1x and 4x the events (flat when streaming works).
Run: `make bench` or `.venv/bin/python -m benchmarks.backtest [N]`.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from backtest.replay import ColumnStream, EventStream, ReplayDriver
from benchmarks.table import Row, print_table, ratios
from connectors.sim.book_exchange import BookExchange, BookExchangeConfig
from connectors.sim.fees import FeeSchedule
from core.calendar import MarketCalendar
from core.clock import SimulatedClock
from core.engine import TradingEngine
from core.enums import OrderType, Side
from core.events import Quote
from core.instruments import InstrumentRegistry, Spot
from core.orders import OrderRequest
from core.portfolio import Portfolio
from core.wake import WakeFilter
from strategies.base import Strategy
from strategies.wake_filters import every_nth

ROOT = Path(__file__).resolve().parent.parent
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
T0 = 1_750_000_000_000_000_000
PAIR = Spot("BTC/USDT", "BTC", "USDT", price_increment=Decimal("0.01"), size_increment=Decimal("0.001"))
CALENDAR = MarketCalendar(start="2025-01-01", end="2026-12-31")


class Bench(Strategy):
    """Called on every quote; every `every` quotes sends a market order (0: never)."""

    def __init__(self, name: str, every: int) -> None:
        super().__init__(name)
        self.every = every
        self.count = 0

    async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
        self.count += 1
        if self.every and self.count % self.every == 0:
            await self.order(ctx)

    async def order(self, ctx: Any) -> None:
        """A market order of 0.01, buying and selling in turn."""
        side = Side.BUY if (self.count // self.every) % 2 else Side.SELL
        await ctx.submit(
            OrderRequest(ctx.new_client_order_id(), "bench", PAIR.id, side, Decimal("0.01"), OrderType.MARKET)
        )


class FastBench(Bench):
    """The fast path: a compiled filter wakes it on every 1,000th quote; it orders then if `every`."""

    def wake_filters(self) -> list[WakeFilter]:
        return [every_nth("bench", PAIR.id, FAST_EVERY)]

    async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
        self.count += FAST_EVERY
        if self.every:
            await self.order(ctx)


FAST_EVERY = 1000


def quotes(n: int, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The benchmark's quotes: a 1 ms grid, a random-walk mid, 0.01 spread, size 1."""
    rng = np.random.default_rng(seed)
    mid = np.round(50_000 + np.cumsum(rng.normal(0, 5, n)), 2)
    ts = T0 + np.arange(n, dtype=np.int64) * 1_000_000
    return ts, [mid, mid + 0.01, np.ones(n), np.ones(n)]


def perpetua_run(stream: EventStream, every: int, fast: bool = False) -> tuple[float, int]:
    """Events per second of one Perpetua run, and the number of fills."""
    clock = SimulatedClock(T0 - 1)
    registry = InstrumentRegistry([PAIR])
    portfolio = Portfolio(registry)
    balances = {"USDT": Decimal(10_000_000), "BTC": Decimal(1_000)}
    for asset, amount in balances.items():
        portfolio.deposit("bench", asset, amount)
    config = BookExchangeConfig(fees=FeeSchedule(Decimal(0), Decimal(10)))
    exchange = BookExchange("bench", clock, registry, [PAIR.id], balances, config)
    engine = TradingEngine(
        clock=clock,
        instruments=registry,
        portfolio=portfolio,
        calendar=CALENDAR,
        venues={"bench": exchange},
        strategies=[(FastBench if fast else Bench)("bench", every)],
    )
    driver = ReplayDriver(engine, clock, [exchange])
    gc.collect()
    start = time.perf_counter()
    count = driver.run([stream])
    elapsed = time.perf_counter() - start
    return count / elapsed, len(engine.fills)


def column_stream(n: int, seed: int) -> ColumnStream:
    ts, columns = quotes(n, seed)
    return ColumnStream(Quote, ts, ("bench", PAIR.id), columns)


def peer(script: str, n: int, seed: int) -> dict[str, float] | str:
    """Run a peer script in the peers' virtualenv; its JSON line, or why it could not run."""
    if not PEERS_PYTHON.exists():
        return "no .venv-peers (run `make bench`)"
    done = subprocess.run(
        [str(PEERS_PYTHON), str(ROOT / "benchmarks" / "peers" / script), str(n), str(seed)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        return f"failed: {done.stderr.strip().splitlines()[-1:]}"
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def peak_memory(n: int, seed: int, directory: Path) -> float:
    """tracemalloc peak (MiB) of a no-op run over `n` quotes streamed from a Parquet file."""
    from backtest.data import ParquetStream

    ts, columns = quotes(n, seed)
    table = pa.table(
        {
            "ts": ts,
            "bid": columns[0],
            "ask": columns[1],
            "bid_size": columns[2],
            "ask_size": columns[3],
        }
    )
    path = directory / f"quotes_{n}.parquet"
    pq.write_table(table, path, row_group_size=65_536)
    del table, ts, columns
    gc.collect()
    tracemalloc.start()
    perpetua_run(ParquetStream(path, "Quote", {"venue": "bench", "instrument": PAIR.id}), 0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main(n: int = 1_000_000, seed: int = 1) -> list[Row]:
    """Measure every engine on both workloads and print the table."""
    stream = column_stream(n, seed)
    perpetua_run(column_stream(10_000, seed), 1000)  # warm imports and caches outside the timing
    perpetua_run(column_stream(10_000, seed), 1000, fast=True)
    ours = {"noop": perpetua_run(stream, 0)[0], "orders": perpetua_run(stream, 1000)[0]}
    fast = {"noop": perpetua_run(stream, 0, True)[0], "orders": perpetua_run(stream, 1000, True)[0]}
    peers = {
        "nautilus_trader": peer("nautilus_backtest.py", n, seed),
        "hftbacktest": peer("hftbacktest_backtest.py", n, seed),
        "backtrader (bar per quote)": peer("backtrader_backtest.py", max(n // 20, 10_000), seed),
    }
    rows: list[Row] = []
    for key, task in (("noop", "a) no-op strategy"), ("orders", "b) market order every 1,000")):
        peer_rows = [Row(task, name, m[key], "peer") for name, m in peers.items() if not isinstance(m, str)]
        rows.append(
            Row(
                task,
                "perpetua: async strategy on every event",
                ours[key],
                "1 thread",
                ratios(ours[key], peer_rows),
            )
        )
        rows.append(
            Row(
                task,
                "perpetua fast path: compiled wake filter (1 in 1,000)",
                fast[key],
                "1 thread",
                ratios(fast[key], peer_rows),
            )
        )
        rows.extend(peer_rows)
    print_table(f"backtest throughput, {n:,} quote events (events/s)", rows)
    for name, m in peers.items():
        if isinstance(m, str):
            print(f"{name}: {m}")
    with tempfile.TemporaryDirectory() as tmp:
        small = peak_memory(n // 4, seed, Path(tmp))
        large = peak_memory(n, seed, Path(tmp))
    print(
        f"peak memory streamed from Parquet: {small:.1f} MiB for {n // 4:,} events, {large:.1f} MiB for {n:,}"
    )
    return rows


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
