"""Rows and a plain-text table shared by the benchmark modules (pricing, implied vol, everlasting).

A benchmark module builds `Row`s (ours and its peers, all measured in the same run) and calls
`print_table`; `python -m benchmarks` can concatenate the rows of several modules into one table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple


class Row(NamedTuple):
    """One measured implementation of one task.

    `per_second` is items (options) per second; `vs` holds (peer label, our rate / peer rate) for
    rows that are ours, empty for peer rows; `note` says how it was measured (threads, extrapolation).
    """

    task: str
    implementation: str
    per_second: float
    note: str = ""
    vs: tuple[tuple[str, float], ...] = ()


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time in seconds of `repeat` calls: the least disturbed by other load on the machine."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def interleaved_best(fns: Sequence[Callable[[], object]], repeats: Sequence[int], rounds: int) -> list[float]:
    """Best wall time of each fn, measured in `rounds` interleaved rounds of `repeats[k]` calls each.

    On a shared machine the load changes from second to second; interleaving lets every
    implementation meet the same quiet moments, so that the ratios are fair even when the rates move.
    """
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for k, fn in enumerate(fns):
            best[k] = min(best[k], best_of(fn, repeats[k]))
    return best


def ratios(ours: float, peers: Sequence[Row]) -> tuple[tuple[str, float], ...]:
    """(peer implementation, ours / peer) for each peer row."""
    return tuple((peer.implementation, ours / peer.per_second) for peer in peers)


def _rate(per_second: float) -> str:
    if per_second >= 1e6:
        return f"{per_second / 1e6:8.2f} M/s"
    return f"{per_second / 1e3:8.1f} k/s"


def format_table(title: str, rows: Sequence[Row]) -> str:
    """Fixed-width table: task, implementation, rate, note; under each of ours, one line per peer ratio."""
    width_task = max([len("task"), *(len(r.task) for r in rows)])
    width_impl = max([len("implementation"), *(len(r.implementation) for r in rows)])
    lines = [title, f"{'task':<{width_task}}  {'implementation':<{width_impl}}  {'rate':>12}  note"]
    lines.append("-" * len(lines[1]))
    for row in rows:
        rate = _rate(row.per_second)
        lines.append(
            f"{row.task:<{width_task}}  {row.implementation:<{width_impl}}  {rate:>12}  {row.note}".rstrip()
        )
        for peer, ratio in row.vs:
            shown = f"{ratio:8.2f}" if ratio < 1 else f"{ratio:8.1f}"  # slower than a peer: keep the digits
            lines.append(f"{'':<{width_task}}    {shown}x  vs {peer}")
    return "\n".join(lines)


def print_table(title: str, rows: Sequence[Row]) -> None:
    """Print `format_table(title, rows)`."""
    print(format_table(title, rows))


def first_call_times(script: str) -> dict[str, Any]:
    """Run `script` (which prints one JSON line of timings) in fresh processes sharing an empty
    numba cache: first with it empty (cold compile), then filled (warm). Returns {state: timings}."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as cache:
        env = os.environ | {"NUMBA_CACHE_DIR": cache, "PYTHONPATH": root}
        for label in ("cold cache", "warm cache"):
            done = subprocess.run(
                [sys.executable, "-c", script], env=env, cwd=root, capture_output=True, text=True, check=True
            )
            out[label] = json.loads(done.stdout.strip().splitlines()[-1])
    return out
