"""Parameter sweeps on one week of the bundled sample: grid, optuna, Dask, spec errors, saving.

Each trial is a one-week backtest (~0.5 s); the grid sweep on local processes runs once per module
and is the reference the other tests compare against.
"""

from __future__ import annotations

import csv
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import Field, model_validator

from backtest import sweep
from backtest.metrics import Metrics, compute_metrics
from backtest.runner import build_backtest
from backtest.sweep import (
    OBJECTIVES,
    SweepResult,
    SweepSpec,
    TrialResult,
    _Job,
    _Outcome,
    _rank,
    _run_optuna,
    _run_trial,
    check_sweep,
    load_sweep_spec,
    parse_sweep_spec,
    run_sweep,
)
from core.config import ConfigError, PerpetuaConfig, load_config
from core.risk import FieldProblem
from strategies.base import Strategy, StrategyParams

REPO = Path(__file__).resolve().parents[2]
START = 1_751_846_400_000_000_000  # 2025-07-07 00:00 UTC (a Monday)
END = START + 7 * 24 * 3600 * 10**9
WINDOW = "start: 2025-07-07\nend: 2025-07-14\nworkers: 2\n"
KEPT = ("sharpe", "total_return", "pnl", "max_drawdown", "trades", "fees_total")
GRID = f"""strategy: fair_value_taker
grid:
  max_premium_bps: [25, 100]
objective: sharpe
metrics: [total_return, pnl, max_drawdown, trades, fees_total]
{WINDOW}"""


def config_text(max_premium_bps: str = "50") -> str:
    """The default config.yaml with an absolute data_dir and the strategy's threshold replaced."""
    text = (REPO / "config.yaml").read_text()
    text = text.replace("data_dir: data/sample/", f"data_dir: {REPO / 'data' / 'sample'}/")
    old = "max_premium_bps: 50 "
    assert old in text
    return text.replace(old, f"max_premium_bps: {max_premium_bps} ")


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sweep") / "config.yaml"
    path.write_text(config_text())
    return path


@pytest.fixture(scope="module")
def cfg(config_path: Path) -> PerpetuaConfig:
    return load_config(config_path)


@pytest.fixture(scope="module")
def grid_sweep(config_path: Path) -> SweepResult:
    """The reference: a 2-point grid on local processes."""
    seen: list[tuple[int, int]] = []
    result = run_sweep(
        config_path, parse_sweep_spec(GRID), progress=lambda done, total: seen.append((done, total))
    )
    assert seen == [(0, 2), (1, 2), (2, 2)]
    return result


def test_grid_on_processes_equals_the_backtests_run_directly(grid_sweep: SweepResult, tmp_path: Path) -> None:
    assert grid_sweep.method == "grid" and grid_sweep.executor == "2 local processes"
    assert grid_sweep.metrics == KEPT and grid_sweep.params == ("max_premium_bps",)
    assert (grid_sweep.start_ns, grid_sweep.end_ns) == (START, END)
    by_number = {t.number: t for t in grid_sweep.trials}
    assert [by_number[n].params for n in (0, 1)] == [{"max_premium_bps": 25}, {"max_premium_bps": 100}]
    for number, bps in ((0, "25"), (1, "100")):
        # Independently: the config file edited by hand, built and measured in this process.
        path = tmp_path / f"config_{bps}.yaml"
        path.write_text(config_text(bps))
        metrics = compute_metrics(build_backtest(load_config(path), start_ns=START, end_ns=END).run())
        expected = metrics.to_dict()
        trial = by_number[number]
        assert trial.error is None
        assert trial.metrics == {name: expected[name] for name in KEPT}
        assert trial.objective == metrics.sharpe
    # The two thresholds really trade differently, and the better Sharpe ranks first.
    first, second = grid_sweep.trials
    assert first.metrics["trades"] != second.metrics["trades"]
    assert first.objective is not None and second.objective is not None
    assert first.objective > second.objective
    assert grid_sweep.best == first


def test_the_same_sweep_on_a_dask_local_cluster_gives_identical_results(
    grid_sweep: SweepResult, config_path: Path
) -> None:
    # Must run in CI (not skipped, not marked slow): this is issue 4's "runs on a Dask LocalCluster".
    result = run_sweep(config_path, parse_sweep_spec(GRID), local_cluster=True)
    assert result.executor == "dask LocalCluster (2 processes)"
    assert result.trials == grid_sweep.trials
    assert dataclasses.replace(result, executor="", wall_seconds=0.0) == dataclasses.replace(
        grid_sweep, executor="", wall_seconds=0.0
    )


OPTUNA = f"""strategy: fair_value_taker
optuna:
  trials: 3
  seed: 11
  params:
    max_premium_bps: {{type: int, low: 20, high: 200, step: 20}}
    order_size: {{type: decimal, low: 0.5, high: 3, step: 0.25}}
objective: total_return
{WINDOW}"""


def test_optuna_with_a_seed_runs_and_ranks(config_path: Path) -> None:
    result = run_sweep(config_path, parse_sweep_spec(OPTUNA))
    assert result.method == "optuna" and result.direction == "maximize" and result.workers == 2
    assert result.space == {"max_premium_bps": "int", "order_size": "decimal"}
    assert sorted(t.number for t in result.trials) == [0, 1, 2]
    objectives = [t.objective for t in result.trials]
    assert all(isinstance(v, float) for v in objectives)
    assert objectives == sorted(objectives, reverse=True)  # type: ignore[type-var]
    for trial in result.trials:
        bps, size = trial.params["max_premium_bps"], trial.params["order_size"]
        assert isinstance(bps, int) and 20 <= bps <= 200 and bps % 20 == 0
        # Decimals on the exact grid 0.5 + k * 0.25, written to the step's places.
        assert isinstance(size, Decimal) and Decimal("0.5") <= size <= 3 and size % Decimal("0.25") == 0
        assert size.as_tuple().exponent == -2
        assert trial.error is None and trial.metrics["total_return"] == trial.objective


def test_optuna_batches_are_deterministic_and_repeats_reuse_results(
    cfg: PerpetuaConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ask/tell loop alone: trials scored by a stand-in in threads that finish in any order.
    spec = parse_sweep_spec(
        S + "optuna:\n  trials: 12\n  seed: 5\n  params:\n"
        "    max_premium_bps: {type: categorical, choices: [25, 50, 100]}\n"
        "    order_size: {type: decimal, low: 1, high: 2, step: 0.5}\n"
    )
    search_spec = spec.optuna
    assert search_spec is not None
    plan = check_sweep(cfg, spec)
    ran: list[int] = []

    def score(job: _Job) -> _Outcome:
        ran.append(job.number)
        value = float(job.params["max_premium_bps"]) - float(job.params["order_size"])
        return _Outcome(job.number, value, {"pnl": str(value)}, None)

    monkeypatch.setattr(sweep, "_run_trial", score)

    def search() -> list[TrialResult]:
        def job(number: int, params: dict[str, object]) -> _Job:
            return _Job(number, cfg, plan.index, params, None, START, END, "pnl", ("pnl",))

        with ThreadPoolExecutor(2) as pool:
            return _run_optuna(search_spec, "maximize", plan, pool, job, 2, 12, None)

    first = search()
    assert search() == first
    assert [t.number for t in first] == list(range(12))
    # 3 x 3 = 9 distinct points in 12 trials: repeats reuse the earlier result instead of running.
    repeats = [t for t in first if t.repeat_of is not None]
    assert len(repeats) >= 3 and len(ran) == 2 * (12 - len(repeats))
    for trial in repeats:
        assert trial.repeat_of is not None
        earlier = first[trial.repeat_of]
        assert earlier.repeat_of is None and earlier.number < trial.number
        assert (earlier.params, earlier.objective, earlier.metrics) == (
            trial.params,
            trial.objective,
            trial.metrics,
        )


def test_save_writes_csv_and_json_that_load_back(grid_sweep: SweepResult, tmp_path: Path) -> None:
    csv_path, json_path = grid_sweep.save(tmp_path / "out")
    assert (csv_path.name, json_path.name) == ("sweep.csv", "sweep.json")
    assert SweepResult.load(json_path) == grid_sweep
    assert SweepResult.load(tmp_path / "out") == grid_sweep
    rows = list(csv.DictReader(csv_path.open()))
    assert [row["rank"] for row in rows] == ["1", "2"]
    assert [row["trial"] for row in rows] == [str(t.number) for t in grid_sweep.trials]
    assert rows[0]["params.max_premium_bps"] == str(grid_sweep.trials[0].params["max_premium_bps"])
    assert float(rows[0]["sharpe"]) == grid_sweep.trials[0].objective
    assert list(rows[0]) == ["rank", "trial", "params.max_premium_bps", *KEPT, "repeat_of", "error"]


def test_decimal_and_float_parameters_survive_the_round_trip(tmp_path: Path) -> None:
    trial = TrialResult(0, {"a": Decimal("1.25"), "b": 0.1, "c": "x", "d": 7, "e": None}, 1.5, {"pnl": "1.5"})
    odd = TrialResult(
        1, {"a": Decimal("0.1234567890123456789"), "b": 2.5, "c": "y", "d": 8, "e": True}, None, {}
    )
    result = SweepResult(
        "config.yaml",
        "s",
        "optuna",
        "pnl",
        "maximize",
        ("a", "b", "c", "d", "e"),
        {"a": "decimal", "b": "float", "c": "categorical", "d": "int", "e": "categorical"},
        ("pnl",),
        START,
        END,
        2,
        "2 local processes",
        (trial, odd),
        1.0,
    )
    result.save(tmp_path)
    loaded = SweepResult.load(tmp_path)
    assert loaded == result
    # Exact types: a decimal no float can hold, a float, and no string where a number was.
    assert loaded.trials[1].params["a"] == Decimal("0.1234567890123456789")
    assert [type(loaded.trials[0].params[k]) for k in "abcde"] == [Decimal, float, str, int, type(None)]
    assert '"a": 0.1234567890123456789,' in (tmp_path / "sweep.json").read_text()


def test_table_rows_and_rich_table(grid_sweep: SweepResult) -> None:
    assert grid_sweep.table_columns() == ("#", "trial", "max_premium_bps", *KEPT)
    rows = grid_sweep.table_rows()
    assert [row[0] for row in rows] == ["1", "2"]
    best = grid_sweep.trials[0]
    assert rows[0][2] == str(best.params["max_premium_bps"])
    assert rows[0][3] == f"{best.objective:.3f}"
    assert rows[0][4].endswith("%")
    table = grid_sweep.to_table(limit=1)
    assert table.row_count == 1 and len(table.columns) == 2 + 1 + len(KEPT)


def test_ranking_is_by_objective_then_trial_number_with_undefined_last() -> None:
    def t(number: int, objective: float | None) -> TrialResult:
        return TrialResult(number, {}, objective, {})

    trials = [t(0, 1.0), t(1, None), t(2, 3.0), t(3, 1.0), t(4, -2.0)]
    assert [x.number for x in _rank(trials, "maximize")] == [2, 0, 3, 4, 1]
    assert [x.number for x in _rank(trials, "minimize")] == [4, 0, 3, 2, 1]


def test_every_objective_is_a_numeric_metrics_field() -> None:
    kinds = {f.name: f.type for f in dataclasses.fields(Metrics)}
    assert all(kinds[name] in ("float", "int", "Decimal", "Decimal | None") for name in OBJECTIVES)
    assert (
        parse_sweep_spec("strategy: s\ngrid: {a: [1]}\nobjective: max_drawdown\n").resolved_direction
        == "minimize"
    )
    assert parse_sweep_spec("strategy: s\ngrid: {a: [1]}\n").resolved_direction == "maximize"


def test_a_failing_trial_is_reported_in_its_row_not_raised(cfg: PerpetuaConfig, tmp_path: Path) -> None:
    job = _Job(0, cfg, 0, {"order_size": 2}, tmp_path / "missing", START, END, "sharpe", ("sharpe",))
    outcome = _run_trial(job)
    assert outcome.objective is None and outcome.metrics == {}
    assert outcome.error is not None and "missing" in outcome.error


def errors(cfg: PerpetuaConfig, text: str) -> list[str]:
    """The lines of the ConfigError that parsing and checking `text` raise."""
    with pytest.raises(ConfigError) as err:
        check_sweep(cfg, parse_sweep_spec(text, "sweep.yaml"))
    return str(err.value).splitlines()


S = "strategy: fair_value_taker\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            S + "gird: {max_premium_bps: [25]}\n",
            ["sweep.gird: unknown key (did you mean grid?), got {'max_premium_bps': [25]}"],
        ),
        (
            "strategy: fair_value_takr\ngrid: {max_premium_bps: [25]}\n",
            ["sweep.strategy: unknown strategy (did you mean 'fair_value_taker'?), got 'fair_value_takr'"],
        ),
        (
            S + "grid: {max_premium: [25, 50]}\n",
            [
                "sweep.grid.max_premium: unknown parameter of strategy fair_value_taker "
                "(did you mean max_premium_bps?), got [25, 50]"
            ],
        ),
        (
            S + "grid: {max_premium_bps: [25, 50, -5], order_size: [1, 0]}\n",
            [
                "sweep.grid.max_premium_bps[2]: must be > 0, got -5",
                "sweep.grid.order_size[1]: must be > 0, got 0",
            ],
        ),
        (S + "grid: {}\n", ["sweep.grid: must name at least one parameter, got {}"]),
        (
            S + "grid: {max_premium_bps: []}\n",
            ["sweep.grid.max_premium_bps: must list at least one value, got []"],
        ),
        (
            S + "grid: {max_premium_bps: [25, 50, 25]}\n",
            ["sweep.grid.max_premium_bps[2]: duplicate of [0], got 25"],
        ),
        (S, ["sweep: needs a grid or an optuna search (see docs/sweeps.md)"]),
        (
            S + "grid: {order_size: [1]}\n"
            "optuna: {trials: 2, params: {order_size: {type: int, low: 1, high: 2}}}\n",
            ["sweep.optuna: give either grid or optuna, not both"],
        ),
        (
            S + "optuna:\n  trials: 2\n  params:\n"
            "    max_premium_bps: {type: int, low: 0, high: 100, step: 10}\n"
            "    order_size: {type: categorical, choices: [1, 0.5, -1]}\n",
            [
                "sweep.optuna.params.max_premium_bps.low: must be > 0, got 0",
                "sweep.optuna.params.order_size.choices[2]: must be > 0, got -1",
            ],
        ),
        (
            S + "optuna: {trials: 2, params: {max_premium_bps: {type: int, low: 10, high: 105, step: 10}}}\n",
            [
                "sweep.optuna.params.max_premium_bps.high: "
                "must be low plus a whole number of steps (10), got 105"
            ],
        ),
        (
            S + "optuna: {trials: 2, params: {max_premium_bps: {type: int, low: 1.5, high: 9}}}\n",
            ["sweep.optuna.params.max_premium_bps.low: must be an integer for type int, got 1.5"],
        ),
        (
            S + "grid: {max_premium_bps: [25]}\nobjective: sharp\nworkers: 0\n",
            [
                "sweep.objective: must be one of " + ", ".join(OBJECTIVES) + ", got 'sharp'",
                "sweep.workers: must be > 0, got 0",
            ],
        ),
        (
            S + "grid: {max_premium_bps: [25]}\nstart: 2025-07-14\nend: 2025-07-07\n",
            [
                "sweep.end: must be later than start (2025-07-14T00:00:00+00:00), "
                "got 2025-07-07T00:00:00+00:00"
            ],
        ),
        (
            S + "grid: {max_premium_bps: [25]}\ngrid: {}\n",
            ["sweep.yaml:3:1: invalid YAML: duplicate key 'grid' (first at line 2)"],
        ),
    ],
    ids=[
        "unknown-key",
        "unknown-strategy",
        "unknown-param",
        "bad-values",
        "empty-grid",
        "empty-values",
        "duplicate-value",
        "no-search",
        "both-searches",
        "optuna-bounds",
        "optuna-step",
        "optuna-int",
        "objective-workers",
        "window",
        "yaml",
    ],
)
def test_spec_errors_name_their_path_and_value(cfg: PerpetuaConfig, text: str, expected: list[str]) -> None:
    assert errors(cfg, text) == expected


def test_a_window_outside_the_config_is_refused_before_any_trial(config_path: Path) -> None:
    spec = parse_sweep_spec(S + "grid: {max_premium_bps: [25]}\nstart: 2026-01-01\n")
    with pytest.raises(ConfigError) as err:
        run_sweep(config_path, spec)
    assert str(err.value) == (
        "sweep.start: leaves an empty window (2026-01-01T00:00:00+00:00 to 2025-10-01T00:00:00+00:00), "
        "got 2026-01-01T00:00:00+00:00"
    )


def test_the_example_sweep_file_is_valid(cfg: PerpetuaConfig) -> None:
    spec = load_sweep_spec(REPO / "examples" / "sweep.yaml")
    check_sweep(cfg, spec)
    assert isinstance(spec, SweepSpec) and spec.method == "grid"


class CappedParams(StrategyParams):
    size: Decimal = Field(gt=0)
    cap: Decimal = Decimal(20)

    @model_validator(mode="after")
    def _within_cap(self) -> CappedParams:
        if self.size > self.cap:
            raise FieldProblem(f"must be <= cap ({self.cap})", key=("size",), value=self.size)
        return self


class Capped(Strategy):
    """A do-nothing strategy whose params have a cross-field check."""

    Params = CappedParams


def test_a_grid_combination_refused_by_a_cross_field_check_is_named(cfg: PerpetuaConfig) -> None:
    entry = cfg.strategies[0].model_copy(
        update={"strategy": "tests.backtest.test_sweep:Capped", "params": {"size": 1}}
    )
    capped = cfg.model_copy(update={"strategies": [entry]})
    # Each value passes with the config's other params (cap 20); one combination does not.
    assert errors(capped, S + "grid: {size: [1, 10], cap: [20, 5]}\n") == [
        "sweep.grid: the combination {'size': 10, 'cap': 5} is refused: size: must be <= cap (5), got 10"
    ]
    assert errors(capped, S + "grid: {size: [1, 30]}\n") == [
        "sweep.grid.size[1]: must be <= cap (20), got 30"
    ]
