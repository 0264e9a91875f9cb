"""Run every benchmark: `make bench` or `.venv/bin/python -m benchmarks [NAME ...]`.

Each module compares Perpetua against named peers measured in the same run and prints ratios.
"""

from __future__ import annotations

import importlib
import sys

MODULES = [
    "events",
    "pricing",
    "implied_vol",
    "everlasting",
    "amm",
    "connectors",
    "backtest",
    "recorder",
    "latency",
]

for name in sys.argv[1:] or MODULES:
    print(f"\n== benchmarks.{name}", flush=True)
    importlib.import_module(f"benchmarks.{name}").main()
