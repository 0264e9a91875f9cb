"""Loading errors name the config path, the file and the cause; builtins are looked up lazily."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from strategies.base import API_VERSION
from strategies.loader import BUILTINS, StrategyLoadError, available, resolve
from strategies.pool_underwriter import PoolUnderwriter

PATH = "strategies[0].strategy"
GOOD = """
from strategies.base import Strategy, StrategyParams


class Params(StrategyParams):
    size: int = 1


class Mine(Strategy):
    Params = Params
"""


def message(reference: str) -> str:
    with pytest.raises(StrategyLoadError) as caught:
        resolve(reference, PATH)
    (issue,) = caught.value.issues
    assert issue.path == PATH and issue.value == reference
    return issue.message


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    text = "from strategies.base import Strategy\n\nclass Mine(Strategy)\n    pass\n"
    bad = write(tmp_path, "broken.py", text)
    assert message(f"{bad}:Mine") == f"{bad}: syntax error in {bad}, line 3: expected ':'"


def test_exception_while_importing_names_the_raise_site(tmp_path: Path) -> None:
    bad = write(tmp_path, "raises.py", "x = 1\nraise RuntimeError('no config here')\n")
    assert message(str(bad)) == f"{bad}: RuntimeError: no config here ({bad}, line 2)"


def test_missing_file(tmp_path: Path) -> None:
    assert message(f"{tmp_path}/nowhere.py:Mine") == f"{tmp_path}/nowhere.py: file not found"


def test_missing_class_lists_what_the_file_defines(tmp_path: Path) -> None:
    good = write(tmp_path, "good.py", GOOD)
    assert message(f"{good}:Other") == f"{good}: no class Other (Strategy subclasses defined there: Mine)"


def test_not_a_strategy_subclass(tmp_path: Path) -> None:
    good = write(tmp_path, "good2.py", GOOD)
    assert message(f"{good}:Params") == (
        f"{good}: Params is a class, not a subclass of strategies.base.Strategy"
    )
    both = write(tmp_path, "values.py", GOOD + "\nthing = 3\n")
    assert message(f"{both}:thing") == f"{both}: thing is a int, not a subclass of strategies.base.Strategy"


def test_file_alone_needs_exactly_one_strategy(tmp_path: Path) -> None:
    two = write(tmp_path, "two.py", GOOD + "\n\nclass Other(Mine):\n    pass\n")
    assert message(str(two)) == (
        f"{two}: name the class (file.py:ClassName): it defines 2 Strategy subclasses (Mine, Other)"
    )
    one = write(tmp_path, "one.py", GOOD)
    assert resolve(str(one)).__name__ == "Mine"


def test_api_major_too_new(tmp_path: Path) -> None:
    future = write(tmp_path, "future.py", GOOD + f"\n    api_version = ({API_VERSION[0] + 1}, 0)\n")
    assert message(f"{future}:Mine") == (
        f"{future}: Mine was written for strategy API {API_VERSION[0] + 1}.0, "
        f"this is {API_VERSION[0]}.{API_VERSION[1]} (major versions differ)"
    )
    older_minor = write(tmp_path, "older.py", GOOD + f"\n    api_version = ({API_VERSION[0]}, 0)\n")
    assert resolve(f"{older_minor}:Mine").__name__ == "Mine"


def test_module_routes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert message("no_such_pkg_xyz.mod:Thing") == (
        "cannot import no_such_pkg_xyz.mod: no module named no_such_pkg_xyz"
    )
    package = tmp_path / "plugpkg_err"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "bad.py").write_text("import json\n\n\ndef f(:\n    pass\n")
    (package / "inner.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert message("plugpkg_err.bad:X") == (
            f"cannot import plugpkg_err.bad: syntax error in {package / 'bad.py'}, line 4: invalid syntax"
        )
        assert message("plugpkg_err.inner:X") == (
            "cannot import plugpkg_err.inner: ModuleNotFoundError: No module named 'no_such_dependency_xyz' "
            f"({package / 'inner.py'}, line 1)"
        )
        assert message("strategies.base:API_VERSION") == (
            f"{sys.modules['strategies.base'].__file__}: API_VERSION is a tuple, "
            "not a subclass of strategies.base.Strategy"
        )
    finally:
        for name in [m for m in sys.modules if m.startswith("plugpkg_err")]:
            del sys.modules[name]


def test_builtins_by_short_name() -> None:
    assert resolve("pool_underwriter") is PoolUnderwriter
    assert resolve("fair_value_taker").__name__ == "FairValueTaker"
    assert {"depeg_arb", "cross_venue_arb", "perp_options_mm", "pool_underwriter", "fair_value_taker"} <= set(
        BUILTINS
    )
    assert [a.name for a in available() if a.source == "builtin"] == list(BUILTINS)


def test_unknown_name_lists_what_is_known() -> None:
    text = message("no_such_strategy")
    assert text.startswith("no builtin strategy or perpetua.strategies entry point of that name (known: ")
    assert "pool_underwriter" in text


def test_load_errors_are_all_reported_at_once(tmp_path: Path) -> None:
    from core.config import parse_config
    from strategies.loader import load_strategies
    from tests.strategies.test_loader_routes import config_text

    text = config_text("missing_one_a").replace(
        "strategies:\n",
        "strategies:\n  - {name: second, strategy: missing_one_b}\n",
    )
    with pytest.raises(StrategyLoadError) as caught:
        load_strategies(parse_config(text))
    assert [(i.path, i.value) for i in caught.value.issues] == [
        ("strategies[0].strategy", "missing_one_b"),
        ("strategies[1].strategy", "missing_one_a"),
    ]
