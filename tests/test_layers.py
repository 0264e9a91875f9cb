"""Dependencies point one way: bots -> backtest -> strategies, connectors -> core, pricing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = {
    "core": {"core"},
    "pricing": {"pricing"},
    "connectors": {"connectors", "core", "pricing"},
    "strategies": {"strategies", "core", "pricing"},
    "backtest": {"backtest", "strategies", "connectors", "core", "pricing"},
    "bots": {"bots", "backtest", "strategies", "connectors", "core", "pricing"},
}


def imported_layers(path: Path) -> set[str]:
    """Top-level project packages a module imports (absolute imports only; relative stay inside)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found.update(name.split(".")[0] for name in names if name.split(".")[0] in ALLOWED)
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(bad)
        for path in (ROOT / layer).rglob("*.py")
        if (bad := imported_layers(path) - ALLOWED[layer])
    }
    assert offenders == {}


def test_checker_sees_a_wrong_way_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import numpy\nfrom bots.cli import main\nfrom .x import y\n")
    assert imported_layers(module) == {"bots"}
