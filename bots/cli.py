"""The `perpetua` command line: check a config, run a bot, backtest, report; more commands to come.

Exit codes: 0 ok, 1 not implemented yet, 2 bad input (a config that does not validate, a bad
option). Problems go to stderr, everything else to stdout. Secrets are never printed: the CLI only
knows environment variable *names* and says whether each is set, and it shows RPC and API URLs
by scheme and host only (hosted RPC URLs carry their API key in the path).
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Annotated, Final
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.table import Table

from bots.log_setup import configure_logging
from core.config import (
    AlpacaVenue,
    AnyInstrument,
    AnyVenue,
    CcxtVenue,
    ChainlinkVenue,
    ConfigError,
    IssuerVenue,
    PerpetuaConfig,
    PerpetualOptionConfig,
    PoolConfig,
    SimAmmVenue,
    SimBookVenue,
    SimOptionsPoolVenue,
    SpotConfig,
    StockPerpConfig,
    TokenConfig,
    TokenizedStockConfig,
    UniswapV2Venue,
    UniswapV3Venue,
    format_duration,
    load_config,
)

EXIT_OK: Final = 0
EXIT_NOT_IMPLEMENTED: Final = 1
EXIT_BAD_INPUT: Final = 2
_JSON_LOGS = {"on": False}  # set by the global --json-logs, read by `run`

app = typer.Typer(
    name="perpetua",
    help="Arbitrage and market-making bots for tokenized US stocks and perpetual options.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigPath = Annotated[Path, typer.Argument(metavar="PATH", help="Config file (YAML).", show_default=True)]
_PLACEHOLDER_SETTINGS: Final = {"allow_extra_args": True, "ignore_unknown_options": True}


def _out() -> Console:
    # Built per call, so output follows whatever sys.stdout is now (CliRunner swaps it).
    return Console(highlight=False)


def _err() -> Console:
    return Console(stderr=True, highlight=False)


def _version(value: bool) -> None:
    if value:
        try:
            version = metadata.version("perpetua")
        except metadata.PackageNotFoundError:
            version = "unknown"
        _out().print(f"perpetua {version}", markup=False)
        raise typer.Exit(EXIT_OK)


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    json_logs: Annotated[
        bool, typer.Option("--json-logs", help="Logs as one JSON object per line on stderr (for servers).")
    ] = False,
) -> None:
    """Arbitrage and market-making bots for tokenized US stocks and perpetual options.

    Exit codes: 0 ok, 1 not implemented yet, 2 bad input.
    """
    # Secrets are redacted in both modes; plain text keeps Python's default WARNING threshold.
    configure_logging(json_logs=json_logs, level=logging.INFO if json_logs else logging.WARNING)
    _JSON_LOGS["on"] = json_logs


# --------------------------------------------------------------------------------------------
# Commands


@app.command("check-config")
def check_config(path: ConfigPath = Path("config.yaml")) -> None:
    """Validate a config file: print a summary of it, or every problem found (exit code 2)."""
    config = _load_or_exit(path)
    out = _out()
    out.print(
        f"[green]OK[/green] {_escape(str(path))} is valid: {config.mode.value} mode, "
        f"{_count(len(config.venues), 'venue')}, {_count(len(config.instruments), 'instrument')}, "
        f"{_count(len(config.tokens), 'token')}, {_count(len(config.strategies), 'strategy', 'strategies')}.",
        soft_wrap=True,
    )
    _print_summary(out, config)
    _print_env_warnings(config)


@app.command()
def run(
    path: ConfigPath = Path("config.yaml"),
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration", metavar="SECONDS", help="Stop after this many seconds (default: run until stopped)."
        ),
    ] = None,
    json_logs: Annotated[
        bool, typer.Option("--json-logs", help="Logs as JSON lines on stderr, no status view (for servers).")
    ] = False,
    metrics_port: Annotated[
        int,
        typer.Option(
            "--metrics-port", metavar="PORT", help="/metrics and /health on 127.0.0.1 (0: a free port)."
        ),
    ] = 9464,
    no_metrics: Annotated[bool, typer.Option("--no-metrics", help="Serve no metrics endpoint.")] = False,
    db: Annotated[
        str | None, typer.Option("--db", metavar="URL", help="Journal database (default: storage.url).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and show what would run; start nothing.")
    ] = False,
) -> None:
    """Run the bot a config describes until SIGINT/SIGTERM or --duration (live, paper or sandbox).

    Shows a live status table on a terminal (off with --json-logs or when stdout is not a
    terminal: then a summary line every 5 s). Exit code 2 when it cannot start: a bad config, a
    missing secret (the config key and the variable are named, never a value).
    """
    if duration is not None and not duration > 0:
        raise typer.BadParameter(f"must be > 0, got {duration}", param_hint="--duration")
    if not 0 <= metrics_port <= 65535:
        raise typer.BadParameter(f"must be in 0..65535, got {metrics_port}", param_hint="--metrics-port")
    config = _load_or_exit(path)
    out = _out()
    how_long = f"for {duration:g} s" if duration is not None else "until stopped"
    if dry_run:
        out.print(
            f"Would run bot [bold]{_escape(config.name)}[/bold] in [bold]{config.mode.value}[/bold] mode "
            f"{how_long}, from {_escape(str(path))}:",
            soft_wrap=True,
        )
        _print_summary(out, config)
        _print_env_warnings(config)
        out.print(
            "[yellow]Nothing was started[/yellow] (--dry-run): no connection was opened, no order sent."
        )
        return
    if json_logs:
        configure_logging(json_logs=True, level=logging.INFO)
        _JSON_LOGS["on"] = True
    import asyncio

    from bots.bot_command import run_bot

    try:
        code = asyncio.run(
            run_bot(
                config,
                duration_s=duration,
                json_logs=_JSON_LOGS["on"],
                metrics_port=None if no_metrics else metrics_port,
                storage_url=db,
                out=out,
                err=_err(),
            )
        )
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        code = EXIT_OK
    raise typer.Exit(code)


@app.command()
def backtest(
    path: ConfigPath = Path("config.yaml"),
    start: Annotated[
        str | None,
        typer.Option(
            "--from", metavar="TIME", help="Start (ISO date or time with zone; default: backtest.start)."
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--to", metavar="TIME", help="End, exclusive (default: backtest.end)."),
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="Where report.html and metrics.json are written.")
    ] = Path("reports/backtest"),
    data_dir: Annotated[
        Path | None,
        typer.Option("--data", metavar="DIR", help="Dataset directory (default: backtest.data_dir)."),
    ] = None,
    sweep: Annotated[
        Path | None,
        typer.Option(
            "--sweep", metavar="FILE", help="Run a parameter sweep (grid or optuna, docs/sweeps.md)."
        ),
    ] = None,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask", metavar="ADDRESS", help="Run the sweep on this Dask scheduler (tcp://host:8786)."
        ),
    ] = None,
) -> None:
    """Replay recorded data through simulated venues with the config's strategies; write a report.

    With `--sweep FILE`, run every parameter set of the sweep instead and rank them (`--out` gets
    sweep.csv and sweep.json).
    """
    if sweep is not None:
        _sweep(path, sweep, dask, data_dir, _time_option(start, "--from"), _time_option(end, "--to"), out_dir)
        return
    if dask is not None:
        raise typer.BadParameter("only with --sweep", param_hint="--dask")
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from backtest.metrics import compute_metrics
    from backtest.report import write_report
    from backtest.runner import build_backtest
    from core.errors import PerpetuaError

    config = _load_or_exit(path)
    start_ns = _time_option(start, "--from")
    end_ns = _time_option(end, "--to")
    try:
        bt = build_backtest(config, data_dir=data_dir, start_ns=start_ns, end_ns=end_ns)
    except ConfigError as exc:
        _print_issues(path, exc)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except PerpetuaError as exc:
        _err().print(f"perpetua backtest: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    out = _out()
    columns = (
        TextColumn("replaying"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=out, transient=True) as progress:
        task = progress.add_task("replay", total=1.0)
        result = bt.run(progress=lambda done: progress.update(task, completed=done))
    metrics = compute_metrics(result)
    table = Table(
        title=f"Backtest of {_escape(str(path))}: {result.events:,} events in {result.wall_seconds:.1f} s"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for label, value in metrics.table_rows():
        table.add_row(_escape(label), _escape(value))
    out.print(table)
    report, metrics_json = write_report(result, metrics, out_dir)
    out.print(f"Report: {_escape(str(report))}\nMetrics: {_escape(str(metrics_json))}", soft_wrap=True)


def _sweep(
    path: Path,
    sweep: Path,
    dask: str | None,
    data_dir: Path | None,
    start_ns: int | None,
    end_ns: int | None,
    out_dir: Path,
) -> None:
    """`perpetua backtest --sweep`: run, rank, print and save a parameter sweep."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from backtest.sweep import run_sweep
    from core.errors import PerpetuaError

    out = _out()
    columns = (TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=out, transient=True) as progress:
            task = progress.add_task("sweep", total=None)
            result = run_sweep(
                path,
                sweep,
                dask_address=dask,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
                data_dir=data_dir,
                start_ns=start_ns,
                end_ns=end_ns,
            )
    except ConfigError as exc:
        _print_issues(sweep, exc)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except (PerpetuaError, OSError, TimeoutError) as exc:
        _err().print(f"perpetua backtest --sweep: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    out.print(result.to_table())
    csv_path, json_path = result.save(out_dir)
    out.print(f"Sweep: {_escape(str(csv_path))}\n       {_escape(str(json_path))}", soft_wrap=True)


def _time_option(value: str | None, option: str) -> int | None:
    """An ISO date (00:00 UTC) or an aware ISO time as ns since the epoch; exit 2 when bad."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"must be an ISO date or time, got {value!r}", param_hint=option) from None
    if parsed.tzinfo is None:
        if len(value) > 10:
            raise typer.BadParameter(f"a time needs a zone (e.g. Z), got {value!r}", param_hint=option)
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp()) * 1_000_000_000 + parsed.microsecond * 1_000


strategies_app = typer.Typer(help="Strategies a config can name.", no_args_is_help=True)
app.add_typer(strategies_app, name="strategies")


@strategies_app.command("list")
def strategies_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Builtin strategies and installed `perpetua.strategies` entry points, with their parameters."""
    import json

    from strategies.strategy_catalog import catalog

    entries = catalog()
    if as_json:
        _out().print_json(json.dumps(entries))
        return
    out = _out()
    for entry in entries:
        where = entry["source"] + (f" ({entry['distribution']})" if entry["distribution"] else "")
        title = f"{entry['name']}: {entry['reference']} [{where}]"
        if entry["error"]:
            out.print(f"[bold]{_escape(title)}[/bold]\n  [red]unavailable:[/red] {_escape(entry['error'])}")
            continue
        table = Table(title=_escape(title), title_justify="left", caption=_escape(entry["summary"]))
        for column in ("parameter", "type", "default", "description"):
            table.add_column(column)
        for param in entry["params"]:
            default = "(required)" if param["required"] else str(param["default"])
            table.add_row(
                *(_escape(str(v)) for v in (param["name"], param["type"], default, param["description"]))
            )
        out.print(table)


@app.command(context_settings=_PLACEHOLDER_SETTINGS)
def price(ctx: typer.Context) -> None:
    """(not implemented yet) Price perpetual options and tokenized stocks from the command line."""
    _not_implemented("price", "price perpetual options and tokenized stocks")


data_app = typer.Typer(help="Market data for backtests: record live streams.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("record")
def data_record(
    path: ConfigPath = Path("config.yaml"),
    out_dir: Annotated[
        Path,
        typer.Option("--out", metavar="DIR", help="Dataset directory (created, or resumed)."),
    ] = Path("data/recorded"),
    rotate: Annotated[
        int, typer.Option("--rotate", metavar="SECONDS", help="Start new files every this many seconds.")
    ] = 3600,
    flush: Annotated[
        float, typer.Option("--flush", metavar="SECONDS", help="Make buffered rows durable this often.")
    ] = 1.0,
    duration: Annotated[
        float | None, typer.Option("--duration", metavar="SECONDS", help="Stop after this many seconds.")
    ] = None,
) -> None:
    """Record the config's live market data into DIR in the backtester's format (docs/recording.md).

    Hourly files, a write-ahead log flushed every second, resumable after a crash; stop with Ctrl-C.
    """
    import asyncio

    from bots.recorder_sources import record_from_config
    from core.errors import PerpetuaError

    if rotate < 1:
        raise typer.BadParameter(f"must be >= 1, got {rotate}", param_hint="--rotate")
    if not flush > 0:
        raise typer.BadParameter(f"must be > 0, got {flush}", param_hint="--flush")
    if duration is not None and not duration > 0:
        raise typer.BadParameter(f"must be > 0, got {duration}", param_hint="--duration")
    config = _load_or_exit(path)
    out = _out()
    try:
        asyncio.run(
            record_from_config(
                config,
                out_dir,
                rotate_every_s=rotate,
                flush_interval_s=flush,
                duration_s=duration,
                say=lambda line: out.print(line, markup=False, soft_wrap=True),
            )
        )
    except (PerpetuaError, ValueError) as exc:  # InvalidInput / DataError name the field and value
        _err().print(f"perpetua data record: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None


JournalUrl = Annotated[
    str, typer.Option("--db", metavar="URL", help="Journal database (async SQLAlchemy URL).")
]


@app.command()
def report(
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
    db: JournalUrl = "sqlite+aiosqlite:///perpetua.sqlite",
) -> None:
    """Summarise a journal: orders, fills, volume, fees, realized PnL per strategy and venue."""
    import asyncio

    from bots.report import report_command

    try:
        asyncio.run(report_command(db, as_json, _out()))
    except ValueError as exc:  # InvalidInput names the field; never the URL's password
        _err().print(f"perpetua report: {exc}", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="Directory for the CSV files.")],
    db: JournalUrl = "sqlite+aiosqlite:///perpetua.sqlite",
) -> None:
    """Write every journal table as a CSV file into DIR."""
    import asyncio

    from bots.report import export_command

    try:
        asyncio.run(export_command(db, out, _out()))
    except ValueError as exc:
        _err().print(f"perpetua export: {exc}", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def main() -> None:
    """Console-script entry point (`perpetua`, `python -m bots`)."""
    app(prog_name="perpetua")


# --------------------------------------------------------------------------------------------
# Helpers


def _not_implemented(command: str, what: str) -> None:
    message = f"perpetua {command}: not implemented yet; in a later release it will {what}."
    _err().print(message, markup=False, soft_wrap=True)
    raise typer.Exit(EXIT_NOT_IMPLEMENTED)


def _load_or_exit(path: Path) -> PerpetuaConfig:
    """The validated config, or every problem printed to stderr and exit code 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        _print_issues(path, exc)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def _print_issues(path: Path, exc: ConfigError) -> None:
    err = _err()
    count = _count(len(exc.issues), "problem")
    err.print(f"[red]Invalid config[/red] {_escape(str(path))} ({count}):")
    for issue in exc.issues:
        # soft_wrap: one problem per line whatever the terminal width; markup off: paths hold [0].
        err.print(f"  {issue}", markup=False, soft_wrap=True)


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


def _count(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def _host(url: str) -> str:
    """`scheme://host:port` of a URL: paths and queries may carry API keys."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def _env_status(name: str) -> str:
    # Only presence is checked: the value is never read into anything that is printed.
    return f"{name} (set)" if os.environ.get(name) else f"{name} (NOT SET)"


def _num(value: Decimal) -> str:
    # Plain notation: 0.000000001, never 1E-9.
    return f"{value:f}"


def _short(address: str) -> str:
    return f"{address[:6]}...{address[-4:]}"


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _venue_details(venue: AnyVenue) -> str:
    """One line on what a venue connects to, with no secret in it."""
    if isinstance(venue, UniswapV2Venue | UniswapV3Venue | ChainlinkVenue):
        rpc = _host(venue.rpc_url) if venue.rpc_url else f"${venue.rpc_url_env}"
        text = f"chain {venue.chain_id} via {rpc}"
        if isinstance(venue, ChainlinkVenue):
            return f"{text}; feeds: {', '.join(venue.feeds)}"
        if venue.keystore is not None:
            exists = "found" if venue.keystore.is_file() else "NOT FOUND"
            text += f"; keystore {venue.keystore} ({exists})"
        else:
            text += "; no keystore (read only)"
        return text
    if isinstance(venue, CcxtVenue):
        markets = ", ".join(f"{k} = {v}" for k, v in venue.markets.items()) or "none mapped"
        return f"{venue.exchange}{' testnet' if venue.testnet else ''}; markets: {markets}"
    if isinstance(venue, AlpacaVenue):
        account = "paper" if venue.paper else "LIVE"
        symbols = ", ".join(f"{k} = {v}" for k, v in venue.symbols.items()) or "none mapped"
        return f"{account} at {_host(venue.trading_url)}, {venue.data_feed} feed; symbols: {symbols}"
    if isinstance(venue, IssuerVenue):
        route = f" via {venue.broker}" if venue.broker else ""
        return (
            f"{venue.issuer}{route}: mint {venue.mint_fee_bps} / redeem {venue.redeem_fee_bps} bps, "
            f"min {venue.min_notional} USD, settles in {format_duration(venue.settlement)}; "
            f"tokens: {', '.join(venue.tokens)}"
        )
    if isinstance(venue, SimBookVenue):
        return (
            f"simulated book: maker {venue.maker_fee_bps} / taker {venue.taker_fee_bps} bps, "
            f"latency {format_duration(venue.latency)}; markets: {', '.join(venue.markets)}"
        )
    if isinstance(venue, SimAmmVenue):
        gas = f"{venue.gas_per_swap} gas/swap at {venue.gas_price_gwei} gwei"
        blocks = f"blocks every {format_duration(venue.block_time)}"
        return f"simulated AMM on chain {venue.chain_id}: {gas}, {blocks}"
    if isinstance(venue, SimOptionsPoolVenue):
        haircuts = ", ".join(f"{k} {v}" for k, v in venue.margin_haircuts.items()) or "none"
        return (
            f"simulated options pool: fee {venue.fee_bps} bps, insurance {venue.insurance_fraction}, "
            f"haircuts: {haircuts}; options: {', '.join(venue.options)}"
        )
    return ""


def _instrument_details(instrument: AnyInstrument | TokenConfig) -> str:
    """One line on an instrument or token, in its own units."""
    if isinstance(instrument, TokenConfig):
        return f"chain {instrument.chain_id} {_short(instrument.address)}, {instrument.decimals} decimals"
    if isinstance(instrument, TokenizedStockConfig):
        schedule = instrument.multiplier
        multiplier = str(schedule.initial) + "".join(
            f" -> {c.multiplier} at {_when(c.effective)}" for c in schedule.changes
        )
        return (
            f"{instrument.underlying} x {multiplier}; {instrument.issuer} on chain {instrument.chain_id} "
            f"{_short(instrument.address)}, {instrument.decimals} decimals"
        )
    if isinstance(instrument, SpotConfig):
        return (
            f"{instrument.base} in {instrument.quote}; tick {_num(instrument.price_increment)}, "
            f"size step {_num(instrument.size_increment)}, min {_num(instrument.min_size)}"
        )
    if isinstance(instrument, StockPerpConfig):
        return (
            f"{instrument.underlying} in {instrument.quote}, up to {_num(instrument.max_leverage)}x, "
            f"funding every {format_duration(instrument.funding_interval)}, min {_num(instrument.min_size)}"
        )
    if isinstance(instrument, PerpetualOptionConfig):
        margin = "coin-margined in" if instrument.coin_margined else "margin"
        strike = f"strike {_num(instrument.strike)} {instrument.quote}"
        return (
            f"{instrument.underlying} {instrument.option_type} {strike}, "
            f"funding every {format_duration(instrument.funding_period)}; {margin} {instrument.margin_asset}"
        )
    if isinstance(instrument, PoolConfig):
        fee_pct = _num(Decimal(instrument.fee) / 10_000)
        spacing = instrument.effective_tick_spacing
        return (
            f"{instrument.token0}/{instrument.token1} on {instrument.venue} (v{instrument.version}), "
            f"fee {fee_pct}%, tick spacing {spacing}, {_short(instrument.address)}"
        )
    return ""


def _print_summary(out: Console, config: PerpetuaConfig) -> None:
    """Tables of venues, instruments, strategies and risk limits, then storage and backtest lines."""
    venues = Table(title="Venues", title_justify="left")
    for column in ("name", "kind", "details", "credentials (env vars)"):
        venues.add_column(column, overflow="fold")
    for venue in config.venues:
        env = ", ".join(_env_status(name) for name in venue.env_vars().values()) or "-"
        venues.add_row(venue.name, venue.kind, _venue_details(venue), env, style=None)
    out.print(venues)

    instruments = Table(title="Instruments and tokens", title_justify="left")
    for column in ("id", "kind", "details"):
        instruments.add_column(column, overflow="fold")
    for token in config.tokens:
        instruments.add_row(token.id, "token", _instrument_details(token))
    for instrument in config.instruments:
        instruments.add_row(instrument.id, instrument.kind, _instrument_details(instrument))
    out.print(instruments)

    strategies = Table(title="Strategies", title_justify="left")
    for column in ("name", "strategy", "venues", "instruments", "params"):
        strategies.add_column(column, overflow="fold")
    for strategy in config.strategies:
        params = ", ".join(f"{k}={v}" for k, v in strategy.params.items()) or "-"
        name = strategy.name if strategy.enabled else f"{strategy.name} (disabled)"
        strategies.add_row(
            name, strategy.strategy, ", ".join(strategy.venues), ", ".join(strategy.instruments), params
        )
    if not config.strategies:
        strategies.add_row("-", "no strategy configured", "", "", "")
    out.print(strategies)

    risk = Table(title="Risk limits", title_justify="left")
    for column in ("limit", "value", "unit"):
        risk.add_column(column, overflow="fold")
    for row in config.risk.summary():
        risk.add_row(*row)
    out.print(risk)

    storage = config.storage
    password = f", password from {_env_status(storage.password_env)}" if storage.password_env else ""
    out.print(f"Storage: {_escape(storage.url)}{password}", soft_wrap=True)
    if config.backtest is not None:
        bt = config.backtest
        out.print(
            f"Backtest: {_when(bt.start)} to {_when(bt.end)}, data in {_escape(str(bt.data_dir))}, "
            f"balances on {_count(len(bt.initial_balances), 'venue')}",
            soft_wrap=True,
        )


def _print_env_warnings(config: PerpetuaConfig) -> None:
    """A warning for each referenced environment variable that is not set (never its value)."""
    missing = [(where, name) for where, name in config.env_vars() if not os.environ.get(name)]
    if not missing:
        return
    err = _err()
    for where, name in missing:
        err.print(
            f"warning: environment variable {name} ({where}) is not set; export it before trading",
            markup=False,
            soft_wrap=True,
        )
