"""Latency of the exact AMM math: v2 formulas, v3 TickMath, and v3 quotes on a pool with a loaded tick map.

Median of single calls (perf_counter_ns around each call), after a warm-up that fills the tick-price
cache, on a pool with 1,000 initialized ticks (spacing 60) and swaps crossing 0 to ~50 of them.
The peer numbers of issue 5 (degenbot, QuoterV2 through web3) are measured by the connectors'
benchmark on the same anvil pool. Run: `.venv/bin/python -m benchmarks.amm`.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from fractions import Fraction

from pricing.amm import (
    MIN_SQRT_RATIO,
    V3PoolState,
    compute_swap_step,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
    get_tick_at_sqrt_ratio_fast,
    quote_exact_input,
    quote_exact_output,
    v2_amount_in,
    v2_amount_out,
    v2_optimal_arbitrage,
)


def _median_us(call: Callable[[], object], n: int) -> float:
    """Median wall time of one call in microseconds."""
    for _ in range(min(n, 200)):
        call()  # warm-up
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1e3


def bench_pool(seed: int = 7, positions: int = 500) -> V3PoolState:
    """A pool with ~1,000 initialized ticks around tick 0, liquidity 1e15..1e19 per position."""
    rng = random.Random(seed)
    spacing = 60
    nets: dict[int, int] = {}
    for _ in range(positions):
        lower = rng.randint(-3000, 2999) * spacing
        upper = lower + rng.randint(1, 200) * spacing
        amount = rng.randint(10**15, 10**19)
        nets[lower] = nets.get(lower, 0) + amount
        nets[upper] = nets.get(upper, 0) - amount
    price = get_sqrt_ratio_at_tick(17) + 123_456_789
    tick = get_tick_at_sqrt_ratio(price)
    liquidity = sum(net for t, net in nets.items() if t <= tick)
    return V3PoolState(price, tick, liquidity, 3000, spacing, tuple(sorted(nets.items())))


def main(n: int = 20_000) -> list[tuple[str, float, str]]:
    """Print and return (operation, median microseconds, detail) rows."""
    rows: list[tuple[str, float, str]] = []
    reserve = 10**24
    rows.append(("v2_amount_out", _median_us(lambda: v2_amount_out(10**18, reserve, 2 * reserve), n), ""))
    rows.append(("v2_amount_in", _median_us(lambda: v2_amount_in(10**18, reserve, 2 * reserve), n), ""))
    price = Fraction(11, 20)
    rows.append(
        (
            "v2_optimal_arbitrage",
            _median_us(lambda: v2_optimal_arbitrage(reserve, 2 * reserve, price), n // 10),
            "deep pool",
        )
    )
    rows.append(("get_sqrt_ratio_at_tick", _median_us(lambda: get_sqrt_ratio_at_tick(-123_457), n), ""))
    sqrt_price = get_sqrt_ratio_at_tick(-123_457) + 10**20
    rows.append(("get_tick_at_sqrt_ratio", _median_us(lambda: get_tick_at_sqrt_ratio(sqrt_price), n), "port"))
    rows.append(
        ("get_tick_at_sqrt_ratio_fast", _median_us(lambda: get_tick_at_sqrt_ratio_fast(sqrt_price), n), "")
    )
    one = 2**96
    rows.append(
        (
            "compute_swap_step",
            _median_us(lambda: compute_swap_step(one, one * 9 // 10, 10**21, 10**18, 3000), n),
            "",
        )
    )
    pool = bench_pool()
    for amount in (10**15, 10**18, 10**19, 10**20):
        quote = quote_exact_input(pool, amount, True)
        rows.append(
            (
                "quote_exact_input",
                _median_us(lambda amount=amount: quote_exact_input(pool, amount, True), n // 4),  # type: ignore[misc]
                f"{amount:.0e} in, {quote.initialized_ticks_crossed} ticks crossed",
            )
        )
    wanted = quote_exact_input(pool, 10**18, True).amount_out
    rows.append(
        ("quote_exact_output", _median_us(lambda: quote_exact_output(pool, wanted, True), n // 4), "")
    )
    drained = quote_exact_input(pool, 10**30, True)
    assert drained.partial and drained.sqrt_price_x96 == MIN_SQRT_RATIO + 1
    rows.append(
        (
            "quote_exact_input",
            _median_us(lambda: quote_exact_input(pool, 10**30, True), 50),
            f"drains the pool, {drained.initialized_ticks_crossed} ticks crossed",
        )
    )
    print(f"exact AMM math, median of single calls ({len(pool.ticks)} initialized ticks in the v3 pool)")
    print(f"{'operation':<30} {'median us':>10}  detail")
    for name, micros, detail in rows:
        print(f"{name:<30} {micros:>10.2f}  {detail}")
    return rows


if __name__ == "__main__":
    main()
