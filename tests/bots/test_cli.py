"""The `perpetua` command line, in process (typer's CliRunner) and as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from bots.cli import app

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "config.yaml"
SECRET = "sk-live-Zq81xNvP0c7TQYwM4kJr"
SECRET_ENV = {
    "BINANCE_API_KEY": SECRET,
    "BINANCE_API_SECRET": SECRET + "-secret",
    "APCA_API_KEY_ID": SECRET + "-alpaca",
    "APCA_API_SECRET_KEY": SECRET + "-alpaca-secret",
    "PERPETUA_KEYSTORE_PASSWORD": SECRET + "-keystore",
}


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run the CLI in process with a wide terminal, so table cells are not folded."""
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250", **(env or {})})


def bad_config(tmp_path: Path) -> Path:
    """The default config with three mistakes in it."""
    text = DEFAULT_CONFIG.read_text()
    text = text.replace("mode: sandbox", "mode: papr")
    text = text.replace("max_daily_loss: 1000 ", "max_daily_loss: -5 ")
    text = text.replace("venues: [uniswap_local, alpaca]", "venues: [uniswap_local, binanse]")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


BAD_LINES = [
    "mode: must be one of backtest, paper, live, sandbox, got 'papr'",
    "risk.max_daily_loss: must be > 0, got -5",
    "strategies[0].venues[1]: unknown venue (did you mean 'binance'?), got 'binanse'",
]


def test_help_lists_the_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("check-config", "run", "backtest", "price", "data"):
        assert command in result.stdout


def test_no_arguments_shows_help() -> None:
    result = invoke()
    assert "check-config" in result.output


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("perpetua ")


def test_check_config_prints_a_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = invoke("check-config")
    assert result.exit_code == 0, result.output
    assert (
        "config.yaml is valid: sandbox mode, 6 venues, 6 instruments, 1 token, 1 strategy." in result.stdout
    )
    for text in (
        "uniswap_local",
        "binance testnet; markets: TSLAx/USDT = TSLAX/USDT, TSLA-PERP = TSLA/USDT:USDT",
        "TSLA x 1.0 -> 1.0042 at 2026-06-15T13:30:00Z",
        "BTC-100000-C-7D/TSLAx",
        "fee 0.3%, tick spacing 60",
        "strategies.fair_value:FairValueTaker",
        "max_daily_loss",
        "5/s over 1000 ms",
        "Storage: sqlite+aiosqlite:///perpetua.sqlite",
    ):
        assert text in result.stdout, text
    assert result.stderr.count("warning: environment variable") == 5


def test_check_config_reports_every_problem_and_exits_2(tmp_path: Path) -> None:
    path = bad_config(tmp_path)
    result = invoke("check-config", str(path))
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == f"Invalid config {path} (3 problems):"
    assert [line.strip() for line in lines[1:]] == BAD_LINES


def test_check_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    result = invoke("check-config", str(path))
    assert result.exit_code == 2
    assert f"{path}: file not found" in result.stderr


def test_check_config_bad_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("mode: [paper\n")
    result = invoke("check-config", str(path))
    assert result.exit_code == 2
    assert f"{path}:2:1: invalid YAML: expected ',' or ']', but got '<stream end>'" in result.stderr


def test_run_dry_run_shows_the_bot_it_would_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # A real run is tested end to end in tests/bots/test_sandbox_e2e.py.
    monkeypatch.chdir(REPO)
    result = invoke("run", "--duration", "30", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Would run bot perpetua-sandbox in sandbox mode for 30 s, from config.yaml:" in result.stdout
    assert "fair_value_taker" in result.stdout
    assert "Nothing was started (--dry-run)" in result.stdout


def test_run_without_duration_runs_until_stopped() -> None:
    result = invoke("run", str(DEFAULT_CONFIG), "--dry-run")
    assert result.exit_code == 0
    assert "mode until stopped" in result.stdout


def test_run_refuses_a_bad_config(tmp_path: Path) -> None:
    result = invoke("run", str(bad_config(tmp_path)))
    assert result.exit_code == 2
    assert [line.strip() for line in result.stderr.splitlines()[1:]] == BAD_LINES


@pytest.mark.parametrize("duration", ["0", "-1", "soon"])
def test_run_refuses_a_bad_duration(duration: str) -> None:
    result = invoke("run", str(DEFAULT_CONFIG), "--duration", duration)
    assert result.exit_code == 2


@pytest.mark.parametrize("command", ["price"])  # `data` is a command group now (data record)
def test_placeholders_say_not_implemented_and_exit_1(command: str) -> None:
    result = invoke(command, "config.yaml", "--some-option")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"perpetua {command}: not implemented yet;")


def test_secret_values_never_reach_the_output() -> None:
    for args in (["check-config", str(DEFAULT_CONFIG)], ["run", str(DEFAULT_CONFIG), "--dry-run"]):
        result = invoke(*args, env=SECRET_ENV)
        assert result.exit_code == 0
        assert SECRET not in result.output
        assert "BINANCE_API_KEY (set)" in result.stdout
        assert "warning" not in result.stderr


def test_literal_secret_in_the_config_is_refused_and_not_printed(tmp_path: Path) -> None:
    path = tmp_path / "leaky.yaml"
    text = DEFAULT_CONFIG.read_text().replace("    api_key_env: BINANCE_API_KEY", f"    api_key: {SECRET}")
    path.write_text(text)
    result = invoke("check-config", str(path))
    assert result.exit_code == 2
    assert (
        "venues[1].api_key: literal secrets are not allowed in the config; use the *_env form"
        in result.stderr
    )
    assert SECRET not in result.output


def test_rpc_url_path_is_never_shown(tmp_path: Path) -> None:
    path = tmp_path / "hosted.yaml"
    hosted = "https://eth-mainnet.example.com/v2/" + SECRET
    path.write_text(
        DEFAULT_CONFIG.read_text().replace("rpc_url: http://127.0.0.1:8545   #", f"rpc_url: {hosted} #")
    )
    result = invoke("check-config", str(path))
    assert result.exit_code == 0, result.output
    assert "via https://eth-mainnet.example.com;" in result.stdout
    assert SECRET not in result.output


# --------------------------------------------------------------------------------------------
# A real process: `python -m bots`


def python_m_bots(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`<venv python> -m bots ARGS` from the repo root."""
    return subprocess.run(
        [sys.executable, "-m", "bots", *args],
        cwd=REPO,
        env={**os.environ, "COLUMNS": "250", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_subprocess_check_config_ok() -> None:
    done = python_m_bots("check-config", env=SECRET_ENV)
    assert done.returncode == 0, done.stderr
    assert "config.yaml is valid" in done.stdout
    assert SECRET not in done.stdout + done.stderr


def test_subprocess_check_config_bad_exits_2(tmp_path: Path) -> None:
    path = bad_config(tmp_path)
    done = python_m_bots("check-config", str(path))
    assert done.returncode == 2
    assert done.stdout == ""
    assert [line.strip() for line in done.stderr.splitlines()[1:]] == BAD_LINES


def test_subprocess_help_names_the_program() -> None:
    done = python_m_bots("--help")
    assert done.returncode == 0
    assert "Usage: perpetua" in done.stdout


def test_backtest_prints_metrics_and_writes_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    monkeypatch.chdir(REPO)
    out = tmp_path / "report"
    result = invoke(
        "backtest", "config.yaml", "--from", "2025-07-07", "--to", "2025-07-09", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert "Sharpe" in result.stdout and "Max drawdown" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    html = (out / "report.html").read_text()
    assert "Equity" in html and "Drawdown" in html
    # Two days of the sample: start and end of the equity curve bracket the window.
    assert metrics["start_ns"] == 1_751_846_400_000_000_000
    assert metrics["end_ns"] == 1_752_019_200_000_000_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "yesterday"], "must be an ISO date or time, got 'yesterday'"),
        (["--from", "2025-07-07T10:00"], "a time needs a zone (e.g. Z), got '2025-07-07T10:00'"),
        (["--from", "2025-07-09", "--to", "2025-07-07"], "backtest.end: must be later than start"),
        (["--data", "/nonexistent"], "nonexistent"),
    ],
)
def test_backtest_refuses_bad_options(args: list[str], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = invoke("backtest", "config.yaml", *args)
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())


def test_backtest_sweep_ranks_and_saves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.chdir(REPO)
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        "strategy: fair_value_taker\ngrid:\n  max_premium_bps: [25, 100]\nobjective: total_return\n"
        "start: 2025-07-07\nend: 2025-07-08\nworkers: 1\n"
    )
    result = invoke("backtest", "config.yaml", "--sweep", str(spec), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    trials = json.loads((tmp_path / "out" / "sweep.json").read_text())["trials"]
    assert sorted(t["params"]["max_premium_bps"] for t in trials) == [25, 100]
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategy: nope\ngrid: {max_premium_bps: [1]}\n")
    result = invoke("backtest", "config.yaml", "--sweep", str(bad))
    assert result.exit_code == 2
    assert "sweep.strategy: unknown strategy" in result.stderr
    assert invoke("backtest", "config.yaml", "--dask", "tcp://127.0.0.1:1").exit_code == 2
