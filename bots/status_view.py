"""The terminal status view of a running bot: a rich Live table refreshed while it trades.

`StatusView(console)` is a `Bot.run(on_tick=...)` callback. Each tick it renders, from the engine's
state only (no I/O): the streams (events, age of the last one, restarts, stale), the prices (the
stock's reference, each token's fair value, the token's price on every book and pool and its
premium vs fair value in bps), positions and balance changes since the start, PnL (equity in the
risk currency now minus at the first valuation), the kill switch, and the open orders.

It is off with `--json-logs` and when stdout is not a terminal (`perpetua run` decides); then a
log line every `summary_every_s` says the same in short.
"""

from __future__ import annotations

import math
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from core.errors import InvalidInput
from core.instruments import Pool, Spot, TokenizedStock
from core.valuation import engine_prices

if TYPE_CHECKING:
    from bots.assembly import Bot

NS = 1_000_000_000


def pool_price(sqrt_price_x96: int, decimals0: int, decimals1: int) -> float:
    """token1 per token0 in display units from a v3 sqrt price (Q64.96)."""
    return float((sqrt_price_x96 / 2**96) ** 2 * 10 ** (decimals0 - decimals1))


def token_prices(bot: Bot) -> list[tuple[str, str, str, float]]:
    """(token, venue, instrument, price in quote per token) of every token quote and pool seen."""
    engine = bot.engine
    instruments = engine.instruments
    decimals = {t.id: t.decimals for t in bot.config.tokens}
    decimals.update({i.id: i.decimals for i in instruments if isinstance(i, TokenizedStock)})
    rows: list[tuple[str, str, str, float]] = []
    for (venue, instrument_id), quote in sorted(engine.quotes.items()):
        pair = instruments.get(instrument_id)
        if not math.isfinite(quote.bid + quote.ask):  # a side of the book is empty
            continue
        if isinstance(pair, Spot) and isinstance(instruments.get(pair.base), TokenizedStock):
            rows.append((pair.base, venue, instrument_id, 0.5 * (quote.bid + quote.ask)))
    for (venue, pool_id), state in sorted(engine.pools.items()):
        pool = instruments.get(pool_id)
        if not isinstance(pool, Pool) or state.sqrt_price_x96 == 0:
            continue
        d0, d1 = decimals.get(pool.token0), decimals.get(pool.token1)
        if d0 is None or d1 is None:
            continue
        price = pool_price(state.sqrt_price_x96, d0, d1)
        if isinstance(instruments.get(pool.token0), TokenizedStock):
            rows.append((pool.token0, venue, pool_id, price))
        elif isinstance(instruments.get(pool.token1), TokenizedStock) and price > 0:
            rows.append((pool.token1, venue, pool_id, 1 / price))
    return rows


def equity(bot: Bot) -> Decimal | None:
    """Equity in the risk currency now, or None while a held asset has no price."""
    currency = bot.config.risk.currency
    try:
        return bot.engine.portfolio.equity(engine_prices(bot.engine, currency), currency)
    except InvalidInput:
        return None


class StatusView:
    """A rich Live display of a bot (module docstring). Use as `bot.run(on_tick=view)`."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.live: Live | None = None
        self.initial_equity: Decimal | None = None

    def __call__(self, bot: Bot) -> None:
        """Render the bot's state now (starts the Live display on the first call)."""
        value = equity(bot)
        if self.initial_equity is None and value is not None:
            self.initial_equity = value
        renderable = self.render(bot, value)
        if self.live is None:
            self.live = Live(renderable, console=self.console, refresh_per_second=4, transient=False)
            self.live.start()
        else:
            self.live.update(renderable)

    def stop(self) -> None:
        """Leave the last frame on screen and stop refreshing."""
        if self.live is not None:
            self.live.stop()
            self.live = None

    def render(self, bot: Bot, value: Decimal | None) -> Group:
        """The whole frame: a header line and the tables."""
        engine = bot.engine
        now = time.time_ns()
        currency = bot.config.risk.currency
        pnl = (
            "n/a" if value is None or self.initial_equity is None else f"{value - self.initial_equity:+,.2f}"
        )
        switch = bot.kill_switch.tripped
        header = Text.assemble(
            (f"{bot.config.name}", "bold"),
            f"  {bot.mode.value} mode, run {bot.run_id}, up {(now - bot.started_ns) / NS:,.0f} s, "
            f"{bot.driver.events_in:,} events, session {engine.session.value}  ",
            ("PnL ", "bold"),
            (f"{pnl} {currency}", "green" if not pnl.startswith("-") else "red"),
            "  kill switch ",
            ("TRIPPED: " + switch.detail, "bold red") if switch else ("armed", "green"),
        )
        parts: list[Any] = [header, self._streams(bot, now), self._prices(bot), self._positions(bot)]
        parts.append(self._orders(bot, now))
        if bot.metrics_server is not None:
            parts.append(
                Text(f"metrics {bot.metrics_server.url}/metrics  health {bot.metrics_server.url}/health")
            )
        return Group(*parts)

    def _streams(self, bot: Bot, now: int) -> Table:
        table = Table(title="Venues and feeds", title_justify="left", expand=False)
        for column in ("source", "last event", "restarts", "state"):
            table.add_column(column)
        for health in bot.driver.health:
            age = "-" if not health.last_event_ns else f"{(now - health.last_event_ns) / NS:,.1f} s ago"
            state = Text("stale", "red") if health.stale else Text("ok", "green")
            table.add_row(health.venue, age, str(health.restarts), state)
        return table

    def _prices(self, bot: Bot) -> Table:
        engine = bot.engine
        table = Table(title="Prices", title_justify="left")
        for column in ("token", "venue", "instrument", "price", "fair value", "premium bps"):
            table.add_column(
                column, justify="right" if column in ("price", "fair value", "premium bps") else "left"
            )
        for ref in engine.references:
            price = engine.reference_price(ref.underlying)
            shown = "stale" if price is None else f"{price:,.2f}"
            table.add_row(ref.underlying, ref.venue, ref.instrument, shown, "(reference)", "")
        for token, venue, instrument, price in token_prices(bot):
            fair = engine.fair_value(token)
            premium = "" if not fair else f"{(price / fair - 1) * 1e4:+.1f}"
            table.add_row(
                token, venue, instrument, f"{price:,.2f}", "-" if not fair else f"{fair:,.2f}", premium
            )
        return table

    def _positions(self, bot: Bot) -> Table:
        portfolio = bot.engine.portfolio
        table = Table(title="Positions and balances (change since start)", title_justify="left")
        for column in ("venue", "asset or instrument", "now", "change"):
            table.add_column(
                column, justify="left" if column in ("venue", "asset or instrument") else "right"
            )
        for (venue, instrument), position in sorted(portfolio.positions(open_only=True).items()):
            table.add_row(venue, instrument, f"{position.quantity:,.6f}", "position")
        for (venue, asset), amount in sorted(portfolio.balances().items()):
            start = bot.initial_balances.get((venue, asset), Decimal(0))
            change = amount - start
            table.add_row(venue, asset, f"{amount:,.6f}", "" if not change else f"{change:+,.6f}")
        return table

    def _orders(self, bot: Bot, now: int) -> Table:
        orders = bot.engine.open_orders()
        table = Table(
            title=f"Open orders ({len(orders)}), fills so far: {len(bot.engine.fills)}", title_justify="left"
        )
        for column in ("client order id", "venue", "request", "status"):
            table.add_column(column)
        for order in orders[-10:]:
            request = order.request
            what = getattr(request, "instrument", None) or getattr(request, "pool", "")
            table.add_row(
                order.client_order_id, request.venue, f"{type(request).__name__} {what}", order.status.value
            )
        return table


def summary(bot: Bot) -> str:
    """One log line of the bot's state (the status view's short form for logs)."""
    value = equity(bot)
    prices = ", ".join(
        f"{venue} {instrument} {price:,.2f}"
        + (f" ({(price / fair - 1) * 1e4:+.0f} bps)" if (fair := bot.engine.fair_value(token)) else "")
        for token, venue, instrument, price in token_prices(bot)
    )
    switch = "TRIPPED" if bot.kill_switch.tripped else "armed"
    shown = "n/a" if value is None else f"{value:,.2f}"
    return (
        f"{bot.driver.events_in} events, {len(bot.engine.fills)} fills, "
        f"{len(bot.engine.open_orders())} open orders, "
        f"equity {shown} {bot.config.risk.currency}, kill switch {switch}; {prices}"
    )
