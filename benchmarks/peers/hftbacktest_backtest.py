"""hftbacktest peer for `benchmarks/backtest.py`: the same quotes through its numba/Rust backtester.

Each quote becomes two BBO depth events (bid and ask) at the same timestamps; the strategy is a
numba loop over `wait_next_feed`. Runs inside `.venv-peers`; prints one JSON line of quotes per
second for (a) no-op and (b) a market order every 1,000 quotes.
Usage: `.venv-peers/bin/python benchmarks/peers/hftbacktest_backtest.py N SEED`.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from hftbacktest import (
    BUY_EVENT,
    DEPTH_BBO_EVENT,
    EXCH_EVENT,
    GTC,
    LOCAL_EVENT,
    MARKET,
    SELL_EVENT,
    BacktestAsset,
    HashMapMarketDepthBacktest,
    event_dtype,
)
from numba import njit


def make_data(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mid = np.round(50_000 + np.cumsum(rng.normal(0, 5, n)), 1)
    ts = np.arange(n, dtype=np.int64) * 1_000_000 + 1_750_000_000_000_000_000
    data = np.zeros(2 * n, dtype=event_dtype)
    data["ev"][0::2] = EXCH_EVENT | LOCAL_EVENT | BUY_EVENT | DEPTH_BBO_EVENT
    data["ev"][1::2] = EXCH_EVENT | LOCAL_EVENT | SELL_EVENT | DEPTH_BBO_EVENT
    data["exch_ts"][0::2] = ts
    data["exch_ts"][1::2] = ts
    data["local_ts"] = data["exch_ts"]
    data["px"][0::2] = mid
    data["px"][1::2] = mid + 0.1
    data["qty"] = 1.0
    return data


@njit
def strategy(hbt, every):  # type: ignore[no-untyped-def]
    count = 0
    order_id = 1
    while hbt.wait_next_feed(False, 1_000_000_000_000) == 2:
        count += 1
        # Two depth rows make one quote.
        if every > 0 and count % (2 * every) == 0:
            depth = hbt.depth(0)
            if order_id % 2 == 1:
                hbt.submit_buy_order(0, order_id, depth.best_ask, 0.01, GTC, MARKET, False)
            else:
                hbt.submit_sell_order(0, order_id, depth.best_bid, 0.01, GTC, MARKET, False)
            order_id += 1
            hbt.clear_inactive_orders(0)
    return count


def run(n: int, seed: int, every: int) -> float:
    data = make_data(n, seed)  # keep a reference: the Rust side reads this buffer without owning it
    asset = (
        BacktestAsset()
        .data([data])
        .linear_asset(1.0)
        .constant_order_latency(0, 0)
        .risk_adverse_queue_model()
        .no_partial_fill_exchange()
        .trading_value_fee_model(0.0, 0.0)
        .tick_size(0.1)
        .lot_size(0.001)
    )
    hbt = HashMapMarketDepthBacktest([asset])
    start = time.perf_counter()
    strategy(hbt, every)
    elapsed = time.perf_counter() - start
    hbt.close()
    del data
    return n / elapsed


if __name__ == "__main__":
    count, seed = int(sys.argv[1]), int(sys.argv[2])
    run(1_000, seed, 1000)  # compile the numba strategy outside the timing
    print(json.dumps({"noop": run(count, seed, 0), "orders": run(count, seed, 1000)}))
