"""Find the strategy classes named in config.yaml and build them with validated parameters.

A `strategy:` value is one of (tried in this order):

1. a path to a Python file: `path/to/file.py:ClassName`, or `path/to/file.py` alone when the file
   defines exactly one `Strategy` subclass (relative paths are relative to the working directory,
   like `backtest.data_dir`);
2. a class path `package.module:ClassName` (any importable module);
3. a name: a builtin strategy of this package (`BUILTINS`), else a name registered by an installed
   distribution in the entry-point group `perpetua.strategies`
   (`[project.entry-points."perpetua.strategies"] my_strategy = "mypkg.mod:MyClass"`).
   A builtin shadows an entry point of the same name.

Nothing is imported until a strategy is asked for: builtins are `module` or `module:Class` strings,
so a builtin whose module is missing fails only when a config uses it.

A loading error is a `StrategyLoadError` (a `ConfigError`) whose message names the config path, the
file and the cause: a syntax error with its line, an exception raised while importing (file and
line of the raise), a missing class (with the Strategy subclasses the file does define), a class
that is not a `Strategy` subclass, or one written for a newer major version of the strategy API.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType

from core.config import ConfigError, ConfigIssue, PerpetuaConfig, validate_strategy_params
from strategies.base import API_VERSION, Strategy, StrategyParams

ENTRY_POINT_GROUP = "perpetua.strategies"
"""The entry-point group installed packages register their strategies in."""

BUILTINS: dict[str, str] = {
    "fair_value_taker": "strategies.fair_value:FairValueTaker",
    "depeg_arb": "strategies.depeg_arb",
    "cross_venue_arb": "strategies.cross_venue_arb",
    "perp_options_mm": "strategies.perp_options_mm",
    "pool_underwriter": "strategies.pool_underwriter:PoolUnderwriter",
}
"""Builtin short name -> `module:Class`, or `module` alone for the module's only Strategy subclass."""

_FILE_REF = re.compile(r"(?P<file>.+\.py)(?::(?P<cls>[A-Za-z_]\w*))?")
_PLUGIN_PREFIX = "perpetua_plugin_"
"""Prefix of the module names strategy files are imported under (`sys.modules` keys), one per path."""


class StrategyLoadError(ConfigError):
    """A strategy class could not be found, imported or accepted."""


@dataclass(frozen=True, slots=True)
class Available:
    """A strategy that can be named in config: where it comes from and what it refers to.

    `source` is "builtin" or "entry point"; `reference` the `module:Class` (or `module`) it loads;
    `distribution` the installed package that registered an entry point; `shadowed` is True for an
    entry point hidden by a builtin of the same name.
    """

    name: str
    source: str
    reference: str
    distribution: str | None = None
    shadowed: bool = False


def _fail(path: str, reference: str, message: str) -> StrategyLoadError:
    return StrategyLoadError([ConfigIssue(path, message, reference)])


def _raise_site(exc: BaseException) -> str:
    """`file, line N` of a SyntaxError, else of the innermost frame of the exception's traceback."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}, line {exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    # importlib's own frames say nothing to the user: show the last frame of their code.
    user = [f for f in frames if "importlib" not in f.filename]
    chosen = user or frames
    return f"{chosen[-1].filename}, line {chosen[-1].lineno}" if chosen else ""


def _import_cause(exc: BaseException) -> str:
    """What went wrong while importing a module, with the file and line where it happened."""
    if isinstance(exc, SyntaxError):
        return f"syntax error in {_raise_site(exc)}: {exc.msg}"
    site = _raise_site(exc)
    where = f" ({site})" if site else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _module_file(module: ModuleType) -> str:
    return str(getattr(module, "__file__", None) or module.__name__)


def _strategy_classes(module: ModuleType) -> list[type[Strategy]]:
    """Strategy subclasses defined in `module` itself (not those it imports), in source order."""
    found = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, Strategy)
        and obj is not Strategy
        and obj.__module__ == module.__name__
    ]
    return sorted(found, key=lambda cls: _source_line(cls))


def _source_line(cls: type) -> int:
    try:
        return inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        return 0


def _pick(module: ModuleType, class_name: str | None, path: str, reference: str) -> type[Strategy]:
    """The class `class_name` of `module` (its only Strategy subclass when None), checked."""
    where = _module_file(module)
    if class_name is None:
        classes = _strategy_classes(module)
        if len(classes) != 1:
            names = ", ".join(c.__name__ for c in classes) or "none"
            raise _fail(
                path,
                reference,
                f"{where}: name the class (file.py:ClassName): it defines {len(classes)} "
                f"Strategy subclasses ({names})",
            )
        return _check_api(classes[0], where, path, reference)
    cls = getattr(module, class_name, None)
    if cls is None:
        names = ", ".join(c.__name__ for c in _strategy_classes(module)) or "none"
        raise _fail(
            path, reference, f"{where}: no class {class_name} (Strategy subclasses defined there: {names})"
        )
    if not isinstance(cls, type) or not issubclass(cls, Strategy):
        kind = "a class" if isinstance(cls, type) else f"a {type(cls).__name__}"
        raise _fail(
            path,
            reference,
            f"{where}: {class_name} is {kind}, not a subclass of strategies.base.Strategy",
        )
    return _check_api(cls, where, path, reference)


def _check_api(cls: type[Strategy], where: str, path: str, reference: str) -> type[Strategy]:
    version = cls.api_version
    if version[0] > API_VERSION[0]:
        raise _fail(
            path,
            reference,
            f"{where}: {cls.__name__} was written for strategy API {version[0]}.{version[1]}, "
            f"this is {API_VERSION[0]}.{API_VERSION[1]} (major versions differ)",
        )
    return cls


def _import_module(module_name: str, path: str, reference: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # any import failure is the user's to see, with its cause
        missing_name = exc.name if isinstance(exc, ModuleNotFoundError) else None
        if missing_name and (module_name == missing_name or module_name.startswith(missing_name + ".")):
            missing = f"cannot import {module_name}: no module named {missing_name}"
            raise _fail(path, reference, missing) from exc
        raise _fail(path, reference, f"cannot import {module_name}: {_import_cause(exc)}") from exc


def _load_file(file: Path, path: str, reference: str) -> ModuleType:
    """Import a `.py` file once per resolved path (re-importing would make a second, different class)."""
    if not file.is_file():
        why = "is a directory" if file.is_dir() else "file not found"
        raise _fail(path, reference, f"{file}: {why}")
    resolved = file.resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    stem = re.sub(r"\W", "_", resolved.stem)
    name = f"{_PLUGIN_PREFIX}{stem}_{digest}"
    found = sys.modules.get(name)
    if found is not None:
        return found
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise _fail(path, reference, f"{file}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic and dataclasses look their module up while it executes
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a user file may raise anything; report it with file and line
        del sys.modules[name]
        raise _fail(path, reference, f"{file}: {_import_cause(exc)}") from exc
    return module


def _load_entry_point(name: str, path: str, reference: str) -> type[Strategy] | None:
    """The class an installed distribution registered as `name`, or None when none did."""
    matches = list(metadata.entry_points(group=ENTRY_POINT_GROUP, name=name))
    if not matches:
        return None
    if len({ep.value for ep in matches}) > 1:
        owners = ", ".join(f"{_dist_name(ep)} ({ep.value})" for ep in matches)
        raise _fail(path, reference, f"entry point {name} is registered twice: {owners}")
    ep = matches[0]
    owner = f"entry point {name} of {_dist_name(ep)} -> {ep.value}"
    try:
        module = importlib.import_module(ep.module)
    except Exception as exc:
        raise _fail(path, reference, f"{owner}: cannot import {ep.module}: {_import_cause(exc)}") from exc
    return _pick(module, ep.attr or None, path, reference)


def _dist_name(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return str(dist.name) if dist is not None else "an unknown distribution"


def resolve(reference: str, path: str = "strategy") -> type[Strategy]:
    """The class `reference` names (file path, `module:Class`, builtin or entry point; see module doc).

    `path` is the config path for error messages (`strategies[0].strategy`).
    """
    if not isinstance(reference, str) or not reference.strip():
        raise _fail(path, str(reference), "must be a file.py[:Class], a module:Class or a strategy name")
    file_ref = _FILE_REF.fullmatch(reference)
    if file_ref is not None:
        module = _load_file(Path(file_ref["file"]), path, reference)
        return _pick(module, file_ref["cls"], path, reference)
    if ":" in reference:
        module_name, _, class_name = reference.partition(":")
        if not module_name or not class_name:
            raise _fail(path, reference, "must be module:Class")
        return _pick(_import_module(module_name, path, reference), class_name, path, reference)
    builtin = BUILTINS.get(reference)
    if builtin is not None:
        module_name, _, class_name = builtin.partition(":")
        module = _import_module(module_name, path, reference)
        return _pick(module, class_name or None, path, reference)
    cls = _load_entry_point(reference, path, reference)
    if cls is None:
        known = ", ".join(sorted({a.name for a in available()}))
        raise _fail(
            path,
            reference,
            f"no builtin strategy or {ENTRY_POINT_GROUP} entry point of that name (known: {known}); "
            "a class is named module:Class or path/file.py:Class",
        )
    return cls


def available() -> Iterator[Available]:
    """Every strategy nameable by a short name: the builtins, then installed entry points by name."""
    for name, reference in BUILTINS.items():
        yield Available(name, "builtin", reference)
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
        yield Available(ep.name, "entry point", ep.value, _dist_name(ep), shadowed=ep.name in BUILTINS)


def load_strategies(cfg: PerpetuaConfig) -> list[Strategy]:
    """Every enabled strategy of `cfg`, constructed with its validated parameters.

    Every reference is resolved before any is refused, so one run reports every loading error.
    """
    classes: dict[str, type[Strategy]] = {}
    issues: list[ConfigIssue] = []
    for i, entry in enumerate(cfg.strategies):
        if not entry.enabled or entry.strategy in classes:
            continue
        try:
            classes[entry.strategy] = resolve(entry.strategy, f"strategies[{i}].strategy")
        except StrategyLoadError as exc:
            issues.extend(exc.issues)
    if issues:
        raise StrategyLoadError(issues)
    params = validate_strategy_params(cfg, {ref: cls.Params for ref, cls in classes.items()})
    built = []
    for entry in cfg.strategies:
        if entry.enabled:
            chosen = params[entry.name]
            assert isinstance(chosen, StrategyParams)
            built.append(classes[entry.strategy](entry.name, chosen))
    return built
