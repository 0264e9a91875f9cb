"""degenbot 0.3.0 on the connectors benchmark's anvil pool; run by benchmarks/connectors.py in .venv-peers.

Reads a JSON job from stdin: {"url", "pool", "block", "repeat", "classes": {name: {"cases":
[[amount_in, zero_for_one], ...], "expected": [amount_out, ...]}}}. Prints one JSON line: the median
quote latency (ns) of each size class, the time of a full tick-map load by bitmap scan and from
Mint/Burn logs (s), the initialized ticks each found, and how many quotes differ from `expected`
(QuoterV2's outputs, checked by the caller). degenbot uses web3 7 (synchronous), hence its own
virtualenv.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import statistics
import sys
import tempfile
import time
from typing import Any


def main() -> None:
    """Run the job on stdin, print the timings as one JSON line."""
    job: dict[str, Any] = json.load(sys.stdin)
    logging.disable(logging.CRITICAL)  # degenbot logs every pool it builds
    from degenbot.config import set_web3
    from degenbot.registry.all_pools import pool_registry
    from degenbot.uniswap.v3_functions import get_tick_word_and_bit_position
    from degenbot.uniswap.v3_libraries.tick_math import MAX_TICK, MIN_TICK
    from degenbot.uniswap.v3_liquidity_pool import UniswapV3Pool
    from degenbot.uniswap.v3_snapshot import UniswapV3LiquiditySnapshot
    from web3 import HTTPProvider, Web3

    w3 = Web3(HTTPProvider(job["url"]))
    set_web3(w3)
    block = int(job["block"])
    out: dict[str, Any] = {}

    # full tick map by bitmap scan: every word the spacing allows, as degenbot fetches a word
    start = time.perf_counter()
    scanned = UniswapV3Pool(job["pool"], state_block=block, silent=True)
    low, _ = get_tick_word_and_bit_position(MIN_TICK, scanned.tick_spacing)
    high, _ = get_tick_word_and_bit_position(MAX_TICK, scanned.tick_spacing)
    for word in range(low, high + 1):
        if word not in scanned.tick_bitmap:
            scanned._fetch_tick_data_at_word(word, block_number=block)
    scanned.sparse_liquidity_map = False
    out["bitmap_scan_s"] = time.perf_counter() - start
    out["bitmap_scan_ticks"] = sum(1 for info in scanned.tick_data.values() if info.liquidity_gross)
    pool_registry.remove(scanned.address, w3.eth.chain_id)  # the log-built pool takes its place

    # full tick map from Mint/Burn logs: the snapshot + external updates, as degenbot's pool manager does
    with tempfile.NamedTemporaryFile("w", suffix=".json") as empty:
        json.dump({"snapshot_block": 0}, empty)
        empty.flush()
        start = time.perf_counter()
        snapshot = UniswapV3LiquiditySnapshot(empty.name)
        snapshot.fetch_new_liquidity_events(to_block=block, span=block + 1)
        pool = UniswapV3Pool(job["pool"], state_block=block, silent=True, tick_bitmap={}, tick_data={})
        for index, update in enumerate(snapshot.get_new_liquidity_updates(pool.address)):
            if index == 0:
                pool._update_block = update.block_number
            pool.external_update(update)
        pool.auto_update(block_number=block)
        out["logs_s"] = time.perf_counter() - start
    out["logs_ticks"] = sum(1 for info in pool.tick_data.values() if info.liquidity_gross)

    def quote(amount: int, zero_for_one: bool) -> int:
        token_in = pool.token0 if zero_for_one else pool.token1
        return int(pool.calculate_tokens_out_from_tokens_in(token_in, amount))

    out["mismatches"] = 0
    out["quote_median_ns"] = {}
    for name, size_class in job["classes"].items():
        cases = [(int(amount), bool(zero_for_one)) for amount, zero_for_one in size_class["cases"]]
        out["mismatches"] += sum(
            quote(*case) != int(expected)
            for case, expected in zip(cases, size_class["expected"], strict=True)
        )
        samples = []
        for _ in range(int(job["repeat"])):
            for case in cases:
                begin = time.perf_counter_ns()
                quote(*case)
                samples.append(time.perf_counter_ns() - begin)
        out["quote_median_ns"][name] = statistics.median(samples)
    out["version"] = importlib.metadata.version("degenbot")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
