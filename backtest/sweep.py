"""Parameter sweeps: backtest one strategy over a grid or an optuna search, trials in parallel.

A sweep file (YAML, see docs/sweeps.md and examples/sweep.yaml) names a strategy of the config
(`strategy:` its `name`), the parameters to vary and how (`grid:` a cartesian product, or
`optuna:` a seeded search), the metric to optimise (`objective`, `direction`), the metrics to
keep, and optionally a shorter window (`start`, `end`) and the number of parallel trials
(`workers`). `load_sweep_spec` validates it into a frozen `SweepSpec`; every problem is reported
at once in the config's format, `sweep.grid.max_premium_bps[2]: must be > 0, got -5`.

A trial overrides the strategy's `params` with its values, builds and runs the backtest
(`backtest.runner`), computes the metrics (`backtest.metrics`) and returns the chosen ones. Values
are checked in the parent against the strategy's own `Params` model before anything runs.

Where trials run (`run_sweep`):

- local processes by default: a `ProcessPoolExecutor` of `workers` processes forked from a
  forkserver that imported the backtester once, so each process pays the imports once and then
  runs many trials;
- a Dask cluster when `dask_address` is given (`distributed.Client(address)`), or a
  `distributed.LocalCluster` of `workers` single-threaded processes when `local_cluster` is set.
  Both go through `Client.get_executor()`, the same `concurrent.futures` interface as the local
  pool, so the three share one code path.

Determinism: backtests are deterministic; grid trials are numbered in cartesian-product order
(keys and values in file order); optuna trials are asked in batches of `workers` from a seeded
sampler and told in trial order once their batch is done; results are ranked by objective, then
trial number. So the same spec gives the same `SweepResult.trials` on processes or on Dask. For
optuna the batch size matters: trials of a batch are sampled without seeing each other's results,
so changing `workers` changes which parameters TPE proposes (set `workers` in the spec to
reproduce a search on another machine).
"""

from __future__ import annotations

import csv
import difflib
import itertools
import json
import math
import multiprocessing
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, get_args

import yaml
from pydantic import AfterValidator, BaseModel, Field, Strict, ValidationError, model_validator

from backtest.metrics import compute_metrics
from backtest.runner import build_backtest
from core.config import (
    ConfigError,
    ConfigIssue,
    Flag,
    Int,
    Name,
    PerpetuaConfig,
    UtcDatetime,
    _yaml_issue,
    format_path,
    issues_from_validation_error,
    load_config,
    show_value,
    to_ns,
    validate_strategy_params,
)

# Shared on purpose: a sweep file follows config.yaml's YAML rules (exact decimals, no duplicate keys).
from core.config import _Loader as _YamlLoader
from core.risk import NO_VALUE, FieldProblem, PositiveInt, StrictModel
from strategies.loader import resolve

if TYPE_CHECKING:
    import optuna
    from rich.table import Table

__all__ = [
    "DEFAULT_METRICS",
    "OBJECTIVES",
    "Objective",
    "OptunaParam",
    "OptunaSearch",
    "SweepPlan",
    "SweepResult",
    "SweepSpec",
    "TrialResult",
    "check_sweep",
    "load_sweep_spec",
    "parse_sweep_spec",
    "run_sweep",
]

Objective = Literal[
    "sharpe",
    "sortino",
    "total_return",
    "annualised_return",
    "pnl",
    "final_equity",
    "win_rate",
    "max_drawdown",
    "max_drawdown_duration_ns",
    "annualised_volatility",
    "fees_total",
    "gas",
    "funding",
    "turnover",
    "exposure",
    "average_equity",
    "trades",
    "orders",
    "round_trips",
    "rejections",
]
"""A numeric `backtest.metrics.Metrics` field a sweep can optimise or keep."""

OBJECTIVES: Final[tuple[str, ...]] = get_args(Objective)

MINIMIZED: Final = frozenset(
    {
        "max_drawdown",
        "max_drawdown_duration_ns",
        "annualised_volatility",
        "fees_total",
        "gas",
        "funding",
        "rejections",
    }
)
"""Objectives whose default `direction` is `minimize` (all others: `maximize`)."""

DEFAULT_METRICS: Final[tuple[Objective, ...]] = (
    "total_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "pnl",
    "trades",
    "win_rate",
    "fees_total",
)
"""Metrics kept per trial when the spec does not list its own (the objective is always kept)."""

_PERCENT: Final = frozenset(
    {"total_return", "annualised_return", "win_rate", "max_drawdown", "annualised_volatility", "exposure"}
)
"""Fractions shown as percentages in the table."""

_PREFIX: Final = ("sweep",)
"""Every spec problem is reported under `sweep.`, like config problems under their section."""

Method = Literal["grid", "optuna"]
Direction = Literal["maximize", "minimize"]
Progress = Callable[[int, int], None]
"""`progress(trials_done, trials_total)`, called in the calling thread as trials finish."""


# --------------------------------------------------------------------------------------------
# The spec

_SpecInt = Annotated[int, Strict()]
_SpecDecimal = Annotated[Decimal, Field(allow_inf_nan=False)]
Number = _SpecInt | _SpecDecimal
"""An integer stays `int`; `0.5` or `"0.5"` is an exact `Decimal`."""


def _first_repeat(values: Sequence[Any]) -> tuple[int, int] | None:
    """`(earlier, later)` indices of the first value equal to an earlier one, or None."""
    for i, value in enumerate(values):
        for j in range(i):
            if values[j] == value:
                return j, i
    return None


class OptunaParam(StrictModel):
    """How optuna draws one parameter.

    `int`: whole numbers in `[low, high]` (`step` default 1); `float`: binary floats in
    `[low, high]`; `decimal`: exact decimals in `[low, high]` (on the `low + k * step` grid when
    `step` is given), for the `Decimal` parameters most strategies take; `categorical`: one of
    `choices`. `log: true` draws on a log scale (needs `low > 0`, no `step`). Units: the
    parameter's own.
    """

    type: Literal["int", "float", "decimal", "categorical"]
    low: Number | None = None
    high: Number | None = None
    step: Number | None = None
    log: Flag = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> OptunaParam:
        if self.type == "categorical":
            for key in ("low", "high", "step"):
                if getattr(self, key) is not None:
                    raise FieldProblem(
                        "only for types int, float and decimal", key=(key,), value=getattr(self, key)
                    )
            if self.log:
                raise FieldProblem("only for types int, float and decimal", key=("log",), value=self.log)
            if not self.choices:
                raise FieldProblem(
                    "must list at least one value for type categorical",
                    key=("choices",),
                    value=NO_VALUE if self.choices is None else self.choices,
                )
            repeat = _first_repeat(self.choices)
            if repeat is not None:
                raise FieldProblem(
                    f"duplicate of choices[{repeat[0]}]",
                    key=("choices", repeat[1]),
                    value=self.choices[repeat[1]],
                )
            return self
        if self.choices is not None:
            raise FieldProblem("only for type categorical", key=("choices",), value=self.choices)
        for key in ("low", "high"):
            if getattr(self, key) is None:
                raise FieldProblem(f"required for type {self.type}", key=(key,), value=NO_VALUE)
        low, high, step = self.low, self.high, self.step
        assert low is not None and high is not None  # checked just above
        if self.type == "int":
            for key, value in (("low", low), ("high", high), ("step", step)):
                if value is not None and not isinstance(value, int):
                    raise FieldProblem("must be an integer for type int", key=(key,), value=value)
        if high < low:
            raise FieldProblem(f"must be >= low ({low})", key=("high",), value=high)
        if self.log and low <= 0:
            raise FieldProblem("must be > 0 with log: true", key=("low",), value=low)
        if step is not None:
            if step <= 0:
                raise FieldProblem("must be > 0", key=("step",), value=step)
            if self.log:
                raise FieldProblem("cannot be combined with log: true", key=("step",), value=step)
            if (Decimal(high) - Decimal(low)) % Decimal(step) != 0:
                raise FieldProblem(
                    f"must be low plus a whole number of steps ({step})", key=("high",), value=high
                )
        return self

    def endpoints(self) -> list[tuple[tuple[str | int, ...], Any]]:
        """`(key path, value as a trial would pass it)` of every value to check up front."""
        if self.type == "categorical":
            return [(("choices", i), choice) for i, choice in enumerate(self.choices or [])]
        return [((key,), self.convert(getattr(self, key))) for key in ("low", "high")]

    def convert(self, value: Any) -> Any:
        """A range value in the Python type trials of this parameter get."""
        if self.type == "int":
            return int(value)
        if self.type == "float":
            return float(value)
        if self.type == "decimal":
            return Decimal(value)
        return value


def _check_named(value: dict[str, Any]) -> dict[str, Any]:
    if not value:
        raise FieldProblem("must name at least one parameter")
    return value


def _check_grid(grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
    _check_named(grid)
    for name, values in grid.items():
        if not values:
            raise FieldProblem("must list at least one value", key=(name,), value=values)
        repeat = _first_repeat(values)
        if repeat is not None:
            raise FieldProblem(f"duplicate of [{repeat[0]}]", key=(name, repeat[1]), value=values[repeat[1]])
    return grid


class OptunaSearch(StrictModel):
    """`trials` suggestions from a seeded optuna sampler (`tpe` or `random`) over `params`."""

    params: Annotated[dict[str, OptunaParam], AfterValidator(_check_named)]
    trials: PositiveInt
    seed: Int = 0
    sampler: Literal["tpe", "random"] = "tpe"


class SweepSpec(StrictModel):
    """A validated sweep file. `start`/`end` (aware times; a date = 00:00 UTC) narrow the config's
    backtest window; `workers` is the number of trials run at once (default: the CPU count, or the
    Dask cluster's threads) and, for optuna, the batch size."""

    strategy: Name
    grid: Annotated[dict[str, list[Any]], AfterValidator(_check_grid)] | None = None
    optuna: OptunaSearch | None = None
    objective: Objective = "sharpe"
    direction: Direction | None = None
    metrics: list[Objective] = Field(default_factory=lambda: list(DEFAULT_METRICS))
    start: UtcDatetime | None = None
    end: UtcDatetime | None = None
    workers: PositiveInt | None = None

    @model_validator(mode="after")
    def _one_search(self) -> SweepSpec:
        if self.grid is None and self.optuna is None:
            raise FieldProblem("needs a grid or an optuna search (see docs/sweeps.md)", value=NO_VALUE)
        if self.grid is not None and self.optuna is not None:
            raise FieldProblem("give either grid or optuna, not both", key=("optuna",), value=NO_VALUE)
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise FieldProblem(
                f"must be later than start ({self.start.isoformat()})", key=("end",), value=self.end
            )
        return self

    @property
    def method(self) -> Method:
        """`grid` or `optuna`."""
        return "grid" if self.grid is not None else "optuna"

    @property
    def resolved_direction(self) -> Direction:
        """`direction`, else minimize for cost-like objectives (`MINIMIZED`) and maximize otherwise."""
        if self.direction is not None:
            return self.direction
        return "minimize" if self.objective in MINIMIZED else "maximize"

    @property
    def param_names(self) -> tuple[str, ...]:
        """The swept parameters, in file order."""
        if self.grid is not None:
            return tuple(self.grid)
        assert self.optuna is not None  # one of the two, by validation
        return tuple(self.optuna.params)

    @property
    def kept_metrics(self) -> tuple[str, ...]:
        """The objective, then the other listed metrics, each once."""
        return tuple(dict.fromkeys([self.objective, *self.metrics]))

    def space(self) -> dict[str, str]:
        """How each parameter is swept: `grid`, or the optuna type (`int`, `float`, ...)."""
        if self.grid is not None:
            return dict.fromkeys(self.grid, "grid")
        assert self.optuna is not None
        return {name: p.type for name, p in self.optuna.params.items()}


def parse_sweep_spec(text: str, source: str = "<sweep>") -> SweepSpec:
    """Validate sweep-file text; `source` names it in file-level messages. Raises `ConfigError`."""
    try:
        data = yaml.load(text, Loader=_YamlLoader)  # a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_issue(source, exc)]) from None
    if data is None:
        raise ConfigError([ConfigIssue(source, "file is empty")])
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigIssue(source, "must be a mapping (strategy, grid or optuna, objective, ...)", data)]
        )
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(issues_from_validation_error(exc, SweepSpec, prefix=_PREFIX)) from None


def load_sweep_spec(path: str | os.PathLike[str]) -> SweepSpec:
    """Read and validate a sweep file. Raises `ConfigError` listing every problem, one per line."""
    source = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(source, "file not found")]) from None
    except IsADirectoryError:
        raise ConfigError([ConfigIssue(source, "is a directory, not a sweep file")]) from None
    except (PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(source, f"cannot be read: {exc}")]) from None
    return parse_sweep_spec(text, source)


# --------------------------------------------------------------------------------------------
# Checking a spec against a config


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """What a checked spec sweeps (from `check_sweep`): the strategy entry and its params model."""

    index: int
    """Position of the strategy in `cfg.strategies`."""
    name: str
    model: type[BaseModel]
    base: dict[str, Any]
    """The config's params of the strategy, which a trial's values override."""

    def problems(self, params: Mapping[str, Any]) -> list[ConfigIssue]:
        """Issues of the base params overridden by `params` (paths relative to the params)."""
        try:
            self.model.model_validate({**self.base, **params})
        except ValidationError as exc:
            return issues_from_validation_error(exc, self.model)
        return []


def _unknown_param(name: str, strategy: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"allowed: {', '.join(known)}"
    return f"unknown parameter of strategy {strategy} ({hint})"


def _rebase(issue: ConfigIssue, name: str, where: tuple[str | int, ...]) -> ConfigIssue:
    """Move a params issue about parameter `name` to the spec entry `where` that gave the value."""
    here = format_path(where)
    if issue.path == name or issue.path.startswith((f"{name}.", f"{name}[")):
        return ConfigIssue(here + issue.path[len(name) :], issue.message, issue.value, issue.redact)
    # A cross-field check of the params model failed: name the field it is about.
    return ConfigIssue(
        here, f"refused by the params model: {issue.path}: {issue.message}", issue.value, issue.redact
    )


def check_sweep(cfg: PerpetuaConfig, spec: SweepSpec) -> SweepPlan:
    """Check `spec` against `cfg`: the strategy exists and is enabled, every swept parameter is one
    of its `Params` model and every value (grid values, optuna bounds and choices, and each grid
    combination) passes that model. Raises `ConfigError` with every problem."""
    names = [entry.name for entry in cfg.strategies]
    if spec.strategy not in names:
        close = difflib.get_close_matches(spec.strategy, names, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"declared: {', '.join(names) or 'none'}"
        raise ConfigError([ConfigIssue("sweep.strategy", f"unknown strategy ({hint})", spec.strategy)])
    index = names.index(spec.strategy)
    entry = cfg.strategies[index]
    if not entry.enabled:
        message = f"is disabled in the config (strategies[{index}].enabled is false)"
        raise ConfigError([ConfigIssue("sweep.strategy", message, spec.strategy)])
    model = resolve(entry.strategy, f"strategies[{index}].strategy").Params
    validate_strategy_params(cfg, {entry.strategy: model})  # the config's own params first
    plan = SweepPlan(index, entry.name, model, dict(entry.params))
    known = list(model.model_fields)
    issues: list[ConfigIssue] = []
    candidates: list[tuple[str, tuple[str | int, ...], Any]] = []  # parameter, where, value
    if spec.grid is not None:
        for name, values in spec.grid.items():
            candidates += [(name, ("grid", name, i), v) for i, v in enumerate(values)]
    else:
        assert spec.optuna is not None
        for name, p in spec.optuna.params.items():
            candidates += [(name, ("optuna", "params", name, *key), v) for key, v in p.endpoints()]
    unknown: dict[str, ConfigIssue] = {}
    for name in spec.param_names:
        if name not in model.model_fields:
            shown = spec.grid[name] if spec.grid is not None else NO_VALUE
            place: tuple[str, ...] = ("grid", name) if spec.grid is not None else ("optuna", "params", name)
            unknown[name] = ConfigIssue(
                format_path(_PREFIX + place), _unknown_param(name, entry.name, known), shown
            )
    issues += unknown.values()
    for name, where, value in candidates:
        if name not in unknown:
            issues += [_rebase(i, name, _PREFIX + where) for i in plan.problems({name: value})]
    if issues:
        raise ConfigError(issues)
    if spec.grid is not None:
        issues += _combination_issues(plan, spec.grid)
    if issues:
        raise ConfigError(issues)
    return plan


def _combination_issues(
    plan: SweepPlan, grid: Mapping[str, Sequence[Any]], limit: int = 5
) -> list[ConfigIssue]:
    """Grid points refused by a cross-field check of the params model (each value alone passed)."""
    issues: list[ConfigIssue] = []
    for params in _grid_points(grid):
        for problem in plan.problems(params):
            issues.append(
                ConfigIssue("sweep.grid", f"the combination {show_value(params)} is refused: {problem}")
            )
        if len(issues) >= limit:  # one cause usually repeats across the grid: show a few
            break
    return issues


def _grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The cartesian product, last key varying fastest, values in file order."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


# --------------------------------------------------------------------------------------------
# One trial (runs in a worker process)


@dataclass(frozen=True, slots=True)
class _Job:
    """Everything a worker needs; the config travels with it, so workers need no config file."""

    number: int
    config: PerpetuaConfig
    strategy_index: int
    params: dict[str, Any]
    data_dir: Path | None
    start_ns: int
    end_ns: int
    objective: str
    metrics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Outcome:
    number: int
    objective: float | None
    metrics: dict[str, Any]
    error: str | None


def _with_params(cfg: PerpetuaConfig, index: int, params: Mapping[str, Any]) -> PerpetuaConfig:
    """`cfg` with `params` overriding those of `cfg.strategies[index]` (validated by the loader)."""
    entry = cfg.strategies[index]
    strategies = list(cfg.strategies)
    strategies[index] = entry.model_copy(update={"params": {**entry.params, **params}})
    return cfg.model_copy(update={"strategies": strategies})


def _objective_value(value: Any) -> float | None:
    """A metric as a finite float, or None when undefined (NaN, or None like `fees_total`)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _run_trial(job: _Job) -> _Outcome:
    """Build, run and measure one backtest. Errors are returned, not raised: one bad trial is
    reported in its row instead of sinking the sweep."""
    try:
        cfg = _with_params(job.config, job.strategy_index, job.params)
        bt = build_backtest(cfg, data_dir=job.data_dir, start_ns=job.start_ns, end_ns=job.end_ns)
        metrics = compute_metrics(bt.run())
    except Exception as exc:  # any failure is the trial's result, shown to the user with its cause
        return _Outcome(job.number, None, {}, f"{type(exc).__name__}: {exc}")
    values = metrics.to_dict()
    kept = {name: values[name] for name in job.metrics}
    return _Outcome(job.number, _objective_value(getattr(metrics, job.objective)), kept, None)


# --------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class TrialResult:
    """One trial: its parameter values, its objective (None: undefined or failed), the kept metrics
    (JSON-safe, as `Metrics.to_dict`: money as decimal strings, NaN as None) and its error, if any.
    `repeat_of` is the earlier optuna trial with the same values, whose result it reuses."""

    number: int
    params: dict[str, Any]
    objective: float | None
    metrics: dict[str, Any]
    error: str | None = None
    repeat_of: int | None = None


def _rank(trials: Iterable[TrialResult], direction: Direction) -> tuple[TrialResult, ...]:
    """Best first; undefined objectives and failures last; ties by trial number."""
    sign = -1.0 if direction == "maximize" else 1.0
    return tuple(
        sorted(
            trials,
            key=lambda t: (t.objective is None, 0.0 if t.objective is None else sign * t.objective, t.number),
        )
    )


def _jsonable(value: Any, decimals: list[str]) -> Any:
    """`value` for `json.dumps`: datetimes as ISO text, paths as text, and each finite Decimal as a
    placeholder for its exact text, collected in `decimals` (see `_dumps`)."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        decimals.append(str(value))
        return f"\x00{len(decimals) - 1}\x00"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, decimals) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, decimals) for v in value]
    return value


_PLACEHOLDER: Final = re.compile(r'"\\u0000(\d+)\\u0000"')


def _dumps(value: Any) -> str:
    """JSON text with every Decimal written as an exact JSON number (`1.25`, not `"1.25"` and not
    the float nearest to it), so that `json.loads(text, parse_float=Decimal)` gives it back."""
    decimals: list[str] = []
    text = json.dumps(_jsonable(value, decimals), indent=2, allow_nan=False)
    return _PLACEHOLDER.sub(lambda m: decimals[int(m[1])], text)


def _cell(value: Any) -> str:
    """A parameter value as text: exact decimals, short floats, YAML-style booleans and nulls."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _metric_text(name: str, value: Any) -> str:
    """A kept metric for the table: percentages, ratios to 3 places, money to the cent."""
    if value is None:
        return "n/a"
    if isinstance(value, str):  # a Decimal from Metrics.to_dict
        return f"{Decimal(value):,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value * 100:.2f}%" if name in _PERCENT else f"{value:.3f}"
    return str(value)


@dataclass(frozen=True)
class SweepResult:
    """A finished sweep: `trials` ranked best first (by objective, then trial number).

    `params` are the swept parameter names and `space` how each was swept (`grid` or the optuna
    type); `metrics` the kept metric names, objective first; `start_ns`/`end_ns` the backtest
    window [ns since the epoch]; `workers` the trials run at once; `executor` where they ran;
    `wall_seconds` the sweep's duration [s] (the only field that differs between equal runs).
    """

    config_path: str
    strategy: str
    method: Method
    objective: str
    direction: Direction
    params: tuple[str, ...]
    space: dict[str, str]
    metrics: tuple[str, ...]
    start_ns: int
    end_ns: int
    workers: int
    executor: str
    trials: tuple[TrialResult, ...]
    wall_seconds: float
    spec: dict[str, Any] = field(default_factory=dict, compare=False)
    """The spec as JSON (for the record in sweep.json)."""

    @property
    def best(self) -> TrialResult | None:
        """The best trial with a defined objective, or None when there is none."""
        return self.trials[0] if self.trials and self.trials[0].objective is not None else None

    def table_columns(self) -> tuple[str, ...]:
        """Column headings of `table_rows`: rank, trial, parameters, metrics, and error if any failed."""
        failed = ("error",) if any(t.error for t in self.trials) else ()
        return ("#", "trial", *self.params, *self.metrics, *failed)

    def table_rows(self, limit: int | None = None) -> list[tuple[str, ...]]:
        """The best `limit` trials (all when None) as text cells matching `table_columns`."""
        failed = any(t.error for t in self.trials)
        rows: list[tuple[str, ...]] = []
        for rank, trial in enumerate(self.trials[:limit], start=1):
            number = f"{trial.number}" + ("" if trial.repeat_of is None else f" (= {trial.repeat_of})")
            cells = [str(rank), number]
            cells += [_cell(trial.params.get(name)) for name in self.params]
            cells += [_metric_text(name, trial.metrics.get(name)) for name in self.metrics]
            if failed:
                cells.append(trial.error or "")
            rows.append(tuple(cells))
        return rows

    def to_table(self, limit: int | None = 20) -> Table:
        """A rich table of the best `limit` trials (all when None); cells are plain text, no markup."""
        from rich.table import Table  # imported here: workers never draw tables
        from rich.text import Text

        shown = len(self.trials) if limit is None else min(limit, len(self.trials))
        title = (
            f"Sweep of {self.strategy}: {len(self.trials)} trials ({self.method}), "
            f"ranked by {self.objective} ({self.direction})"
            + (f", best {shown}" if shown < len(self.trials) else "")
        )
        table = Table(title=Text(title))
        for column in self.table_columns():
            is_number = column not in ("error", *self.params)
            style = "bold" if column == self.objective else None
            table.add_column(Text(column), justify="right" if is_number else "left", style=style)
        for row in self.table_rows(limit):
            table.add_row(*(Text(cell) for cell in row))
        return table

    def to_dict(self) -> dict[str, Any]:
        """What `save` writes to sweep.json; parameter values keep their types (Decimals are written
        as exact JSON numbers)."""
        return {
            "config": self.config_path,
            "strategy": self.strategy,
            "method": self.method,
            "objective": self.objective,
            "direction": self.direction,
            "params": list(self.params),
            "space": self.space,
            "metrics": list(self.metrics),
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "start": _iso(self.start_ns),
            "end": _iso(self.end_ns),
            "workers": self.workers,
            "executor": self.executor,
            "wall_seconds": self.wall_seconds,
            "spec": self.spec,
            "trials": [
                {
                    "rank": rank,
                    "number": t.number,
                    "params": t.params,
                    "objective": t.objective,
                    "metrics": t.metrics,
                    "error": t.error,
                    "repeat_of": t.repeat_of,
                }
                for rank, t in enumerate(self.trials, start=1)
            ],
        }

    def save(self, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write `out_dir/sweep.csv` (one row per trial, ranked; parameters as `params.<name>`)
        and `out_dir/sweep.json` (everything, loadable with `SweepResult.load`). Returns both paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        csv_path, json_path = out / "sweep.csv", out / "sweep.json"
        with csv_path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(
                ["rank", "trial", *(f"params.{p}" for p in self.params), *self.metrics, "repeat_of", "error"]
            )
            for rank, t in enumerate(self.trials, start=1):
                writer.writerow(
                    [
                        rank,
                        t.number,
                        *(_cell(t.params.get(p)) for p in self.params),
                        *("" if t.metrics.get(m) is None else t.metrics[m] for m in self.metrics),
                        "" if t.repeat_of is None else t.repeat_of,
                        t.error or "",
                    ]
                )
        json_path.write_text(_dumps(self.to_dict()) + "\n", encoding="utf-8")
        return csv_path, json_path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SweepResult:
        """Read a `sweep.json` written by `save` (or the directory holding it)."""
        source = Path(path)
        if source.is_dir():
            source = source / "sweep.json"
        text = source.read_text(encoding="utf-8")
        data = json.loads(text)
        # Parameters read back exactly: a number with a decimal point is a Decimal, as in the spec.
        exact = json.loads(text, parse_float=Decimal)
        space: dict[str, str] = data["space"]
        trials = []
        for raw, raw_exact in zip(data["trials"], exact["trials"], strict=True):
            params = {
                k: float(v) if space.get(k) == "float" and isinstance(v, Decimal) else v
                for k, v in raw_exact["params"].items()
            }
            trials.append(
                TrialResult(
                    raw["number"], params, raw["objective"], raw["metrics"], raw["error"], raw["repeat_of"]
                )
            )
        return cls(
            config_path=data["config"],
            strategy=data["strategy"],
            method=data["method"],
            objective=data["objective"],
            direction=data["direction"],
            params=tuple(data["params"]),
            space=space,
            metrics=tuple(data["metrics"]),
            start_ns=data["start_ns"],
            end_ns=data["end_ns"],
            workers=data["workers"],
            executor=data["executor"],
            trials=tuple(trials),
            wall_seconds=data["wall_seconds"],
            spec=exact.get("spec", {}),
        )


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat()


# --------------------------------------------------------------------------------------------
# Running


def _process_context() -> multiprocessing.context.BaseContext:
    """A forkserver that imported the backtester once (workers fork from it, imports paid), or
    spawn where there is no forkserver. Never plain fork: the caller may run threads (rich, dask)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    return multiprocessing.get_context("spawn")


def _open_executor(
    stack: ExitStack, dask_address: str | None, local_cluster: bool, workers: int | None, jobs: int
) -> tuple[Executor, str, int]:
    """`(executor, description, trials at once)`; whatever is opened is closed by `stack`."""
    if dask_address is not None or local_cluster:
        from distributed import Client, LocalCluster  # imported here: only Dask sweeps need it

        if dask_address is not None:
            client = stack.enter_context(Client(dask_address))  # type: ignore[no-untyped-call]
            where = f"dask {dask_address}"
        else:
            n = workers or os.cpu_count() or 1
            cluster = stack.enter_context(
                LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
                )
            )
            client = stack.enter_context(Client(cluster))  # type: ignore[no-untyped-call]
            where = f"dask LocalCluster ({n} processes)"
        if workers is None:
            # By default as many trials at once as the cluster has threads.
            workers = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()) or 1
        return client.get_executor(pure=False), where, workers
    workers = workers or os.cpu_count() or 1
    pool = ProcessPoolExecutor(max_workers=max(1, min(workers, jobs)), mp_context=_process_context())
    stack.callback(pool.shutdown, wait=True, cancel_futures=True)
    return pool, f"{min(workers, jobs)} local processes", workers


def _evaluate(
    executor: Executor, jobs: Sequence[_Job], done: list[int], total: int, progress: Progress | None
) -> dict[int, _Outcome]:
    """Run `jobs`, reporting progress as they finish; outcomes by trial number."""
    futures = [executor.submit(_run_trial, job) for job in jobs]
    outcomes: dict[int, _Outcome] = {}
    for future in as_completed(futures):
        outcome = future.result()
        outcomes[outcome.number] = outcome
        done[0] += 1
        if progress is not None:
            progress(done[0], total)
    return outcomes


def run_sweep(
    config_path: str | os.PathLike[str],
    spec: SweepSpec | str | os.PathLike[str],
    *,
    dask_address: str | None = None,
    local_cluster: bool = False,
    progress: Progress | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> SweepResult:
    """Run the sweep `spec` (a `SweepSpec` or the path of a sweep file) over the config at
    `config_path`; trials run in local processes, on the Dask scheduler at `dask_address`
    (`tcp://host:8786`), or on a fresh `LocalCluster` when `local_cluster` is set.

    `data_dir`, `start_ns` and `end_ns` [ns since the epoch] override the spec's and the config's
    (for the CLI's `--data`, `--from`, `--to`). `progress(done, total)` is called as trials finish.
    Raises `ConfigError` for any problem in the config, the spec or the window before any trial runs.
    """
    started = time.perf_counter()
    cfg = load_config(config_path)
    if not isinstance(spec, SweepSpec):
        spec = load_sweep_spec(spec)
    plan = check_sweep(cfg, spec)
    start = start_ns if start_ns is not None else (to_ns(spec.start) if spec.start else None)
    end = end_ns if end_ns is not None else (to_ns(spec.end) if spec.end else None)
    start = start if start is not None else (cfg.backtest.start_ns if cfg.backtest else None)
    end = end if end is not None else (cfg.backtest.end_ns if cfg.backtest else None)
    if start is not None and end is not None and end <= start:
        key = "sweep.end" if spec.end is not None else "sweep.start"
        message = f"leaves an empty window ({_iso(start)} to {_iso(end)})"
        raise ConfigError([ConfigIssue(key, message, spec.end if spec.end is not None else spec.start)])
    data = Path(data_dir) if data_dir is not None else (cfg.backtest.data_dir if cfg.backtest else None)
    # Workers may run elsewhere (Dask): give them an absolute data path, as seen from here.
    data = data.resolve() if data is not None else None
    # Fail here, not in every worker, on a config the backtester refuses (data, sim settings, window).
    preflight = build_backtest(cfg, data_dir=data, start_ns=start, end_ns=end)
    start, end = preflight.start_ns, preflight.end_ns
    del preflight

    def job(number: int, params: dict[str, Any]) -> _Job:
        return _Job(number, cfg, plan.index, params, data, start, end, spec.objective, spec.kept_metrics)

    direction = spec.resolved_direction
    points = _grid_points(spec.grid) if spec.grid is not None else []
    total = len(points) if spec.optuna is None else spec.optuna.trials
    if progress is not None:
        progress(0, total)
    with ExitStack() as stack:
        executor, where, workers = _open_executor(stack, dask_address, local_cluster, spec.workers, total)
        if spec.optuna is None:
            outcomes = _evaluate(executor, [job(i, p) for i, p in enumerate(points)], [0], total, progress)
            trials = [_trial(i, p, outcomes[i]) for i, p in enumerate(points)]
        else:
            trials = _run_optuna(spec.optuna, direction, plan, executor, job, workers, total, progress)
    return SweepResult(
        config_path=os.fspath(config_path),
        strategy=plan.name,
        method=spec.method,
        objective=spec.objective,
        direction=direction,
        params=spec.param_names,
        space=spec.space(),
        metrics=spec.kept_metrics,
        start_ns=start,
        end_ns=end,
        workers=workers,
        executor=where,
        trials=_rank(trials, direction),
        wall_seconds=time.perf_counter() - started,
        spec=spec.model_dump(exclude_none=True),
    )


def _trial(
    number: int, params: dict[str, Any], outcome: _Outcome, repeat_of: int | None = None
) -> TrialResult:
    return TrialResult(number, params, outcome.objective, outcome.metrics, outcome.error, repeat_of)


def _suggest(trial: optuna.Trial, name: str, p: OptunaParam) -> Any:
    """The value optuna proposes for `name`, in the type the strategy gets (see `OptunaParam`)."""
    if p.type == "categorical":
        choices = p.choices or []
        # Choices may be Decimals, which optuna does not store: it picks among their texts.
        labels = [repr(choice) for choice in choices]
        return choices[labels.index(trial.suggest_categorical(name, labels))]
    assert p.low is not None and p.high is not None  # validated for every non-categorical type
    if p.type == "int":
        return trial.suggest_int(name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    float_step = None if p.step is None else float(p.step)
    x = trial.suggest_float(name, float(p.low), float(p.high), step=float_step, log=p.log)
    if p.type == "float":
        return x
    low, high, value = Decimal(p.low), Decimal(p.high), Decimal(repr(x))
    if p.step is not None:
        # Back onto the exact decimal grid low + k * step (optuna computed it in binary floats),
        # every value written with the same number of decimal places.
        step = Decimal(p.step)
        value = low + ((value - low) / step).to_integral_value() * step
        places = min(int(d.as_tuple().exponent) for d in (low, high, step))
        value = value.quantize(Decimal(1).scaleb(places))
    return min(max(value, low), high)


def _run_optuna(
    search: OptunaSearch,
    direction: Direction,
    plan: SweepPlan,
    executor: Executor,
    job: Callable[[int, dict[str, Any]], _Job],
    workers: int,
    total: int,
    progress: Progress | None,
) -> list[TrialResult]:
    """Ask/tell in batches of `workers`: a batch is asked, run in parallel, then told in trial order."""
    import optuna  # imported here: grid sweeps and workers never need it
    from optuna.trial import TrialState

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one INFO line per trial otherwise
    try:
        sampler: optuna.samplers.BaseSampler = (
            optuna.samplers.TPESampler(seed=search.seed)
            if search.sampler == "tpe"
            else optuna.samplers.RandomSampler(seed=search.seed)
        )
        study = optuna.create_study(direction=direction, sampler=sampler)
        results: list[TrialResult] = []
        seen: dict[str, TrialResult] = {}  # same values -> same backtest: run each once
        done = [0]
        while len(results) < search.trials:
            batch = [study.ask() for _ in range(min(workers, search.trials - len(results)))]
            proposed = [(t, {n: _suggest(t, n, p) for n, p in search.params.items()}) for t in batch]
            to_run: dict[str, _Job] = {}  # by repr of the values: the first trial proposing them
            refused: dict[int, str] = {}
            for t, params in proposed:
                problems = plan.problems(params)
                if problems:
                    refused[t.number] = "invalid parameters: " + "; ".join(str(p) for p in problems)
                elif repr(params) not in seen and repr(params) not in to_run:
                    to_run[repr(params)] = job(t.number, params)
            outcomes = _evaluate(executor, list(to_run.values()), done, total, progress)
            for t, params in proposed:
                key = repr(params)
                if t.number in refused:
                    result = TrialResult(t.number, params, None, {}, refused[t.number])
                elif t.number in outcomes:
                    result = _trial(t.number, params, outcomes[t.number])
                    seen.setdefault(key, result)
                else:
                    earlier = seen.get(key)
                    if earlier is None:  # a repeat of a trial of this very batch
                        first = to_run[key].number
                        earlier = _trial(first, params, outcomes[first])
                    result = TrialResult(
                        t.number, params, earlier.objective, earlier.metrics, earlier.error, earlier.number
                    )
                if t.number not in outcomes:
                    done[0] += 1
                    if progress is not None:
                        progress(done[0], total)
                if result.objective is None:
                    study.tell(t, state=TrialState.FAIL)
                else:
                    study.tell(t, result.objective)
                results.append(result)
        return results
    finally:
        optuna.logging.set_verbosity(verbosity)
