"""Find strategy classes named in config.yaml and build them with validated parameters.

A `strategy` value is `package.module:ClassName` (any importable module). Issue 6 extends this
with `.py` file paths, the `perpetua.strategies` entry-point group and builtin names. A loading
error names the config path, the reference and the cause.
"""

from __future__ import annotations

import importlib

from core.config import ConfigError, ConfigIssue, PerpetuaConfig, validate_strategy_params
from strategies.base import API_VERSION, Strategy, StrategyParams


class StrategyLoadError(ConfigError):
    """A strategy class could not be found, imported or accepted."""


def resolve(reference: str, path: str = "strategy") -> type[Strategy]:
    """The class a `module:Class` reference names; `path` is the config path for error messages."""
    module_name, _, class_name = reference.partition(":")
    if not module_name or not class_name:
        raise StrategyLoadError([ConfigIssue(path, "must be module:Class", reference)])
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure is the user's to see, with its cause
        raise StrategyLoadError(
            [ConfigIssue(path, f"cannot import {module_name}: {exc}", reference)]
        ) from exc
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, Strategy):
        raise StrategyLoadError(
            [ConfigIssue(path, f"{module_name} has no Strategy subclass {class_name}", reference)]
        )
    if cls.api_version[0] > API_VERSION[0]:
        raise StrategyLoadError(
            [
                ConfigIssue(
                    path, f"written for strategy API {cls.api_version}, this is {API_VERSION}", reference
                )
            ]
        )
    return cls


def load_strategies(cfg: PerpetuaConfig) -> list[Strategy]:
    """Every enabled strategy of `cfg`, constructed with its validated parameters."""
    classes = {
        entry.strategy: resolve(entry.strategy, f"strategies[{i}].strategy")
        for i, entry in enumerate(cfg.strategies)
        if entry.enabled
    }
    params = validate_strategy_params(cfg, {ref: cls.Params for ref, cls in classes.items()})
    built = []
    for entry in cfg.strategies:
        if entry.enabled:
            chosen = params[entry.name]
            assert isinstance(chosen, StrategyParams)
            built.append(classes[entry.strategy](entry.name, chosen))
    return built
