"""`perpetua run`: build the bot a config describes, show it while it runs, stop it cleanly.

Kept apart from `bots.cli` so the CLI module stays light (`perpetua check-config` imports no
connector). Exit codes: 0 after a clean stop (signal or `--duration`), 2 when the bot cannot start
(a bad strategy reference or parameter, a missing secret, an unreadable keystore).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from rich.console import Console

from core.config import ConfigError, PerpetuaConfig
from core.errors import PerpetuaError

log = logging.getLogger("perpetua.run")

EXIT_OK = 0
EXIT_BAD_INPUT = 2
SUMMARY_EVERY_S = 5.0


class _Summaries:
    """The status view's short form: a line every `every_s` (stdout, or the log with JSON logs)."""

    def __init__(self, out: Console, json_logs: bool, every_s: float = SUMMARY_EVERY_S) -> None:
        self.out = out
        self.json_logs = json_logs
        self.every_s = every_s
        self.last = 0.0
        self.first_fill_shown = False

    def __call__(self, bot: Any) -> None:
        from bots.status_view import summary

        now = time.monotonic()
        first_fill = bool(bot.engine.fills) and not self.first_fill_shown
        if not first_fill and now - self.last < self.every_s:
            return
        self.last = now
        self.first_fill_shown = self.first_fill_shown or first_fill
        line = summary(bot)
        if self.json_logs:
            log.info(
                "status: %s", line, extra={"fills": len(bot.engine.fills), "events": bot.driver.events_in}
            )
        else:
            stamp = time.strftime("%H:%M:%S")
            self.out.print(f"{stamp} {line}", markup=False, highlight=False, soft_wrap=True)


async def run_bot(
    config: PerpetuaConfig,
    *,
    duration_s: float | None,
    json_logs: bool,
    metrics_port: int | None,
    storage_url: str | None,
    out: Console,
    err: Console,
) -> int:
    """Build and run the bot; the exit code. Problems that refuse the start go to `err`."""
    from bots.assembly import build_bot
    from bots.status_view import StatusView

    began = time.monotonic()
    if not json_logs:
        out.print(f"Starting {config.name} in {config.mode.value} mode...", markup=False, highlight=False)
    try:
        bot = await build_bot(config, metrics_port=metrics_port, storage_url=storage_url)
    except ConfigError as exc:
        err.print(f"perpetua run: cannot start {config.name} ({len(exc.issues)} problem(s)):", markup=False)
        for issue in exc.issues:
            err.print(f"  {issue}", markup=False, soft_wrap=True)
        return EXIT_BAD_INPUT
    except (PerpetuaError, OSError) as exc:  # key loading, chain id, an unreachable venue at start
        err.print(f"perpetua run: cannot start {config.name}: {exc}", markup=False, soft_wrap=True)
        return EXIT_BAD_INPUT
    started = time.monotonic() - began
    if not json_logs:
        server = bot.metrics_server
        where = f"; metrics on {server.url}/metrics" if server is not None else ""
        out.print(
            f"{config.name} up in {started:.1f} s (run {bot.run_id}){where}. Ctrl-C stops it.",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    interactive = not json_logs and out.is_terminal and sys.stdout.isatty()
    view: Any = StatusView(out) if interactive else _Summaries(out, json_logs)
    try:
        await bot.run(duration_s, on_tick=view, tick_s=0.5 if interactive else 0.2)
    finally:
        if isinstance(view, StatusView):
            view.stop()
    engine = bot.engine
    line = (
        f"stopped after {time.monotonic() - began:.0f} s: {len(engine.fills)} fills, "
        f"{len(list(engine.orders))} orders, kill switch {'TRIPPED' if bot.kill_switch.tripped else 'armed'}"
    )
    if json_logs:
        log.info(line)
    else:
        out.print(line, markup=False, highlight=False)
    return EXIT_OK


__all__ = ["run_bot"]
