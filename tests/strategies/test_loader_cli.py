"""`perpetua strategies list`: builtins and installed entry points with their parameter models."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from bots.cli import app
from strategies.loader import BUILTINS
from strategies.strategy_catalog import type_name
from tests.strategies.test_loader_routes import EP_NAME, installed_plugin  # noqa: F401 (fixture)


def test_json_lists_builtins_and_the_installed_entry_point(installed_plugin: Path) -> None:  # noqa: F811
    result = CliRunner().invoke(app, ["strategies", "list", "--json"])
    assert result.exit_code == 0, result.output
    entries = {e["name"]: e for e in json.loads(result.stdout)}
    assert set(BUILTINS) <= set(entries)
    uw = entries["pool_underwriter"]
    assert (uw["source"], uw["class"], uw["error"]) == (
        "builtin",
        "strategies.pool_underwriter:PoolUnderwriter",
        None,
    )
    deposit = next(p for p in uw["params"] if p["name"] == "deposit")
    assert deposit == {
        "name": "deposit",
        "type": "Decimal",
        "required": True,
        "default": None,
        "description": "tokens to deposit (at most our balance at the pool)",
    }
    min_yield = next(p for p in uw["params"] if p["name"] == "min_yield")
    assert (min_yield["type"], min_yield["default"]) == ("Decimal | None", None)
    plugin = entries[EP_NAME]
    assert (plugin["source"], plugin["distribution"]) == ("entry point", "perpetua-example-plugin")
    assert plugin["class"] == "perpetua_example_plugin.custom_strategy:TokenMeanReversion"
    assert [p["name"] for p in plugin["params"]][:3] == ["token", "venue", "instrument"]
    entry_bps = next(p for p in plugin["params"] if p["name"] == "entry_bps")
    assert entry_bps["required"] and entry_bps["type"] == "Decimal"


def test_table_shows_fields_types_defaults_and_descriptions() -> None:
    result = CliRunner().invoke(app, ["strategies", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "pool_underwriter: strategies.pool_underwriter:PoolUnderwriter [builtin]" in text
    row = next(line for line in text.splitlines() if "check_interval_ms" in line)
    assert "int" in row and "3600000" in row and "time between two looks at the pool" in row


def test_type_names() -> None:
    assert type_name(int | None) == "int | None"
    assert type_name(tuple[str, ...]) == "tuple[str, ...]"
    assert type_name(dict[str, list[int]]) == "dict[str, list[int]]"
