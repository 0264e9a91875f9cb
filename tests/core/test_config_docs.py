"""docs/config.md documents every key of the config models: a key added to a model fails here until
the reference mentions it (as `key`, in backticks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.config import PerpetuaConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def _walk(node: Any, found: set[str], kinds: set[str]) -> None:
    """Every property name (and every `kind` tag) of every model in a JSON schema."""
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict):
            found.update(properties)
            kind = properties.get("kind")
            if isinstance(kind, dict) and "const" in kind:
                kinds.add(str(kind["const"]))
        for value in node.values():
            _walk(value, found, kinds)
    elif isinstance(node, list):
        for value in node:
            _walk(value, found, kinds)


def _schema_names() -> tuple[set[str], set[str]]:
    found: set[str] = set()
    kinds: set[str] = set()
    _walk(PerpetuaConfig.model_json_schema(), found, kinds)
    return found, kinds


def test_schema_walk_sees_nested_models() -> None:
    keys, kinds = _schema_names()
    # One key from each depth: top level, venue, instrument, multiplier change, risk override.
    assert {"venues", "swap_router", "token0", "effective", "orders_per_second"} <= keys
    assert {"ccxt", "sim_options_pool", "pool"} <= kinds


def test_every_config_key_is_documented() -> None:
    doc = DOC.read_text(encoding="utf-8")
    keys, _ = _schema_names()
    missing = sorted(key for key in keys if f"`{key}`" not in doc)
    assert not missing, f"keys of the config models not mentioned in {DOC.name}: {missing}"


def test_every_kind_is_documented() -> None:
    doc = DOC.read_text(encoding="utf-8")
    _, kinds = _schema_names()
    missing = sorted(kind for kind in kinds if f"`{kind}`" not in doc)
    assert not missing, f"venue and instrument kinds not mentioned in {DOC.name}: {missing}"
