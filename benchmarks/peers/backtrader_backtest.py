"""backtrader peer for `benchmarks/backtest.py`: one bar per quote (close = mid) through Cerebro.

backtrader has no quote events; a bar per quote is the nearest same workload. Runs inside
`.venv-peers`; prints one JSON line of bars per second for (a) no-op and (b) a market order every
1,000 bars. Usage: `.venv-peers/bin/python benchmarks/peers/backtrader_backtest.py N SEED`.
"""

from __future__ import annotations

import json
import sys
import time

import backtrader as bt
import numpy as np
import pandas as pd


class Bench(bt.Strategy):  # type: ignore[misc]
    params = (("every", 0),)

    def __init__(self) -> None:
        self.count = 0

    def next(self) -> None:
        self.count += 1
        if self.p.every and self.count % self.p.every == 0:
            if (self.count // self.p.every) % 2:
                self.buy(size=0.01)
            else:
                self.sell(size=0.01)


def run(n: int, seed: int, every: int) -> float:
    rng = np.random.default_rng(seed)
    mid = 50_000 + np.cumsum(rng.normal(0, 5, n))
    index = pd.to_datetime(np.arange(n, dtype=np.int64) * 1_000_000_000 + 1_750_000_000_000_000_000)
    frame = pd.DataFrame({"open": mid, "high": mid, "low": mid, "close": mid, "volume": 1.0}, index=index)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame))
    cerebro.addstrategy(Bench, every=every)
    cerebro.broker.setcash(10_000_000)
    start = time.perf_counter()
    cerebro.run()
    return n / (time.perf_counter() - start)


if __name__ == "__main__":
    count, seed = int(sys.argv[1]), int(sys.argv[2])
    print(json.dumps({"noop": run(count, seed, 0), "orders": run(count, seed, 1000)}))
