"""What a journal says: orders, fills, volume, fees and PnL per strategy and venue; CSV export.

PnL here is *realized* PnL from the journaled fills, by the average-cost method, per strategy,
venue and instrument, in the instrument's quote currency: a sell against a long (or a buy against
a short) realizes `(exit price - average entry price) x quantity`; fees are not in it (they are
listed per asset, since a venue may charge them in the base asset) and neither is any mark-to-market
of the open position (the journal holds no prices), which is reported with its average cost.
Funding payments are summed per venue, instrument and asset (positive: paid by us).
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

from bots.journal import TABLES, Journal, sqlite_files
from core.enums import Side
from core.errors import InvalidInput
from core.money import MONEY

ZERO = Decimal(0)
NO_STRATEGY = "-"
"""The strategy column of orders placed without a strategy name (or outside the bot)."""


@dataclass(slots=True)
class Line:
    """One strategy's activity on one instrument at one venue."""

    strategy: str
    venue: str
    instrument: str
    orders: int = 0
    orders_by_status: dict[str, int] = field(default_factory=dict)
    fills: int = 0
    bought: Decimal = ZERO  # quantity, units of the instrument
    sold: Decimal = ZERO
    volume: Decimal = ZERO  # quote currency traded, both sides
    fees: dict[str, Decimal] = field(default_factory=dict)  # asset -> amount (negative: rebates)
    realized_pnl: Decimal = ZERO  # quote currency, before fees
    position: Decimal = ZERO  # signed, units of the instrument
    average_cost: Decimal | None = None  # quote per unit of the open position

    def apply_fill(self, side: Side, quantity: Decimal, price: Decimal, notional: Decimal) -> None:
        """Add one fill: volume, and realized PnL by average cost (a fill may flip the position)."""
        self.fills += 1
        self.volume += notional
        if side is Side.BUY:
            self.bought += quantity
        else:
            self.sold += quantity
        signed = quantity * side.sign
        if self.position == 0 or (self.position > 0) == (signed > 0):  # opening or adding
            cost = (self.average_cost or ZERO) * abs(self.position) + price * quantity
            self.position += signed
            self.average_cost = cost / abs(self.position)
            return
        closing = min(quantity, abs(self.position))
        entry = self.average_cost or ZERO
        direction = 1 if self.position > 0 else -1  # a long gains when price rises
        self.realized_pnl += (price - entry) * closing * direction
        self.position += signed
        if self.position == 0:
            self.average_cost = None
        elif (self.position > 0) != (direction > 0):  # flipped: the rest opens at this price
            self.average_cost = price

    def as_json(self) -> dict[str, Any]:
        """This line with Decimals as exact strings."""
        return {
            "strategy": self.strategy,
            "venue": self.venue,
            "instrument": self.instrument,
            "orders": self.orders,
            "orders_by_status": dict(sorted(self.orders_by_status.items())),
            "fills": self.fills,
            "bought": str(self.bought),
            "sold": str(self.sold),
            "volume": str(self.volume),
            "fees": {asset: str(v) for asset, v in sorted(self.fees.items())},
            "realized_pnl": str(self.realized_pnl),
            "position": str(self.position),
            "average_cost": None if self.average_cost is None else str(self.average_cost),
        }


@dataclass(slots=True)
class JournalSummary:
    """Every line of a journal, plus funding per venue and counts of what else it holds."""

    lines: list[Line]
    funding: dict[tuple[str, str, str], Decimal]  # (venue, instrument, asset) -> paid
    transactions_by_status: dict[str, int]
    decisions_by_strategy: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        """The summary as JSON-ready data (Decimals as exact strings)."""
        return {
            "lines": [line.as_json() for line in self.lines],
            "funding": [
                {"venue": v, "instrument": i, "asset": a, "paid": str(amount)}
                for (v, i, a), amount in sorted(self.funding.items())
            ],
            "transactions_by_status": dict(sorted(self.transactions_by_status.items())),
            "decisions_by_strategy": dict(sorted(self.decisions_by_strategy.items())),
        }


async def summarize(journal: Journal) -> JournalSummary:
    """Summarise a journal; fills are taken in journal order (the order they were recorded)."""
    lines: dict[tuple[str, str, str], Line] = {}
    strategy_of: dict[str, str] = {}

    def line(strategy: str, venue: str, instrument: str) -> Line:
        key = (strategy, venue, instrument)
        if key not in lines:
            lines[key] = Line(strategy, venue, instrument)
        return lines[key]

    with localcontext(MONEY):
        for order in await journal.orders():
            strategy = order.strategy or NO_STRATEGY
            strategy_of[order.client_order_id] = strategy
            instrument = _instrument(order.request) if order.request is not None else "?"
            entry = line(strategy, order.venue, instrument)
            entry.orders += 1
            entry.orders_by_status[order.status] = entry.orders_by_status.get(order.status, 0) + 1
        for fill in await journal.fills():
            entry = line(strategy_of.get(fill.client_order_id, NO_STRATEGY), fill.venue, fill.instrument)
            notional = fill.notional if fill.notional is not None else fill.price * fill.quantity
            entry.apply_fill(fill.side, fill.quantity, fill.price, notional)
            entry.fees[fill.fee_asset] = entry.fees.get(fill.fee_asset, ZERO) + fill.fee
        funding: dict[tuple[str, str, str], Decimal] = defaultdict(lambda: ZERO)
        for payment in await journal.funding_payments():
            funding[(payment.venue, payment.instrument, payment.asset)] += payment.amount
    transactions: dict[str, int] = defaultdict(int)
    for tx in await journal.transactions():
        transactions[tx.status] += 1
    decisions: dict[str, int] = defaultdict(int)
    for decision in await journal.decisions():
        decisions[decision.strategy] += 1
    return JournalSummary(
        lines=[lines[k] for k in sorted(lines)],
        funding=dict(funding),
        transactions_by_status=dict(transactions),
        decisions_by_strategy=dict(decisions),
    )


def _instrument(request: Any) -> str:
    for name in ("instrument", "pool", "token"):
        value = getattr(request, name, None)
        if isinstance(value, str):
            return value
    return "?"


# -- CSV ------------------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    """CSV text of a value: Decimals exact, None empty."""
    if value is None:
        return ""
    return str(value) if isinstance(value, Decimal) else value


async def export_csv(journal: Journal, out_dir: Path) -> dict[str, Path]:
    """Write one CSV per journal table into `out_dir` (created); returns `{table: path}`.

    Money columns are the journal's exact Decimal text; the files are written off the event loop.
    """
    written: dict[str, Path] = {}
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    for table in TABLES:
        name = table.__tablename__
        columns, rows = await journal.table_rows(table)
        path = out_dir / f"{name}.csv"
        await asyncio.to_thread(_write_csv, path, columns, rows)
        written[name] = path
    return written


def _write_csv(path: Path, columns: list[str], rows: list[Any]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows([[_cell(v) for v in row] for row in rows])


# -- the commands behind `perpetua report` and `perpetua export` ---------------------------------


class MissingJournal(InvalidInput):
    """A SQLite journal file that does not exist (reading must not create an empty one)."""


async def open_existing(url: str, password: str | None = None) -> Journal:
    """Open a journal that must already exist (a SQLite URL naming a missing file is refused)."""
    for path in sqlite_files(url)[:1]:
        if not await asyncio.to_thread(Path(path).is_file):
            raise MissingJournal("--db", path, "no journal file there")
    return await Journal.open(url, password=password)


def _fmt(value: Decimal) -> str:
    """Fixed-point text without trailing zeros (`1E-18` reads as 0.000000000000000001)."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def summary_table(summary: JournalSummary) -> Table:
    """A rich table: one row per strategy, venue and instrument."""
    table = Table(title="Journal: realized PnL (average cost, quote currency, before fees)")
    for name in (
        "strategy",
        "venue",
        "instrument",
        "orders",
        "fills",
        "volume",
        "fees",
        "realized PnL",
        "position",
    ):
        # Fold, never truncate: a cut-off amount would read as a different number.
        justify: Literal["left", "right"] = "left" if name in ("strategy", "venue", "instrument") else "right"
        table.add_column(name, justify=justify, overflow="fold")
    for line in summary.lines:
        fees = ", ".join(f"{_fmt(v)} {a or '?'}" for a, v in sorted(line.fees.items())) or "0"
        table.add_row(
            line.strategy,
            line.venue,
            line.instrument,
            str(line.orders),
            str(line.fills),
            _fmt(line.volume),
            fees,
            _fmt(line.realized_pnl),
            _fmt(line.position),
        )
    return table


async def report_command(url: str, as_json: bool, out: Console) -> None:
    """Print the summary of the journal at `url` (a rich table, or JSON)."""
    journal = await open_existing(url)
    try:
        summary = await summarize(journal)
    finally:
        await journal.close()
    if as_json:
        out.print_json(json.dumps(summary.as_json()))
        return
    out.print(summary_table(summary))
    for (venue, instrument, asset), paid in sorted(summary.funding.items()):
        out.print(f"funding {venue} {instrument}: {_fmt(paid)} {asset} paid", markup=False)
    if summary.transactions_by_status:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.transactions_by_status.items()))
        out.print(f"transactions: {counts}", markup=False)


async def export_command(url: str, out_dir: Path, out: Console) -> None:
    """Write one CSV per table of the journal at `url` into `out_dir` and list them."""
    journal = await open_existing(url)
    try:
        written = await export_csv(journal, out_dir)
    finally:
        await journal.close()
    for name, path in written.items():
        out.print(f"{name}: {path}", markup=False)
