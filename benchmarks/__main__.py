"""Run every benchmark: `make bench` or `.venv/bin/python -m benchmarks`."""

from __future__ import annotations

import importlib

MODULES = ["benchmarks.events"]

for name in MODULES:
    print(f"\n== {name}")
    importlib.import_module(name).main()
