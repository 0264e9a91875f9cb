"""`perpetua report` and `perpetua export` on a journal whose every number is worked out here.

Strategy `arb` on venue `bx`, TSLAx/USDT: buy 2 @ 100, buy 1 @ 103 (average 101, long 3); sell 4
@ 105 realizes (105 - 101) x 3 = 12 and leaves short 1 at 105; buy 1 @ 104 realizes
(105 - 104) x 1 = 1. Realized 13, flat; volume 200 + 103 + 420 + 104 = 827; fees 0.1 % in USDT on
the first three (0.2 + 0.103 + 0.42 = 0.723) and 0.001 TSLAx on the last.
Strategy `mm` on `binance`: sell 0.000000000000000001 @ 250 (short, nothing realized), one resting
order never filled. Funding on bx TSLA-PERP: 0.25 paid, then 0.05 received: 0.2 paid.
"""

from __future__ import annotations

import asyncio
import csv
import json
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from bots.cli import app
from bots.journal import Journal
from bots.report import Line, summarize
from core.enums import OrderStatus, OrderType, Side
from core.events import Fill, FundingPayment, OrderUpdate
from core.orders import OrderRequest

D = Decimal
SPOT = "TSLAx/USDT"
TINY = D("0.000000000000000001")


async def build(url: str) -> None:
    journal = await Journal.open(url)
    trades = [
        ("a-1", Side.BUY, "2", "100", "0.2", "USDT"),
        ("a-2", Side.BUY, "1", "103", "0.103", "USDT"),
        ("a-3", Side.SELL, "4", "105", "0.42", "USDT"),
        ("a-4", Side.BUY, "1", "104", "0.001", "TSLAx"),
    ]
    for n, (coid, side, qty, price, fee, asset) in enumerate(trades):
        request = OrderRequest(coid, "bx", SPOT, side, D(qty), OrderType.LIMIT, D(price))
        await journal.record_intent(request, strategy="arb", ts=10 * n)
        await journal.record_update(
            OrderUpdate(10 * n + 1, "bx", coid, OrderStatus.FILLED, f"v{n}", D(qty), D(price))
        )
        fill = Fill(10 * n + 1, "bx", SPOT, coid, side, D(price), D(qty), D(fee), asset, trade_id=f"t{n}")
        await journal.record_fill(fill)
        await journal.record_fill(fill)  # replayed: counted once
    mm_sell = OrderRequest("m-1", "binance", SPOT, Side.SELL, TINY, OrderType.LIMIT, D("250"))
    await journal.record_intent(mm_sell, strategy="mm", ts=100)
    await journal.record_fill(
        Fill(101, "binance", SPOT, "m-1", Side.SELL, D("250"), TINY, D(0), "USDT", trade_id="b1")
    )
    mm_rest = OrderRequest("m-2", "binance", SPOT, Side.BUY, D("1"), OrderType.LIMIT, D("200"))
    await journal.record_intent(mm_rest, strategy="mm", ts=102)
    await journal.record_update(OrderUpdate(103, "binance", "m-2", OrderStatus.ACCEPTED, "b2"))
    await journal.record_funding(FundingPayment(200, "bx", "TSLA-PERP", D("0.25"), "USDT"))
    await journal.record_funding(FundingPayment(300, "bx", "TSLA-PERP", D("-0.05"), "USDT"))
    await journal.record_transaction("0x01", venue="uni", client_order_id="s-1", nonce=1)
    await journal.record_decision("arb", {"edge": D("0.5")}, ts=5)
    await journal.close()


def make(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'j.sqlite'}"
    asyncio.run(build(url))
    return url


def test_summary_numbers(tmp_path: Path) -> None:
    url = make(tmp_path)

    async def read() -> list[Line]:
        journal = await Journal.open(url)
        try:
            return (await summarize(journal)).lines
        finally:
            await journal.close()

    arb, mm = asyncio.run(read())
    assert (arb.strategy, arb.venue, arb.instrument) == ("arb", "bx", SPOT)
    assert (arb.orders, arb.fills, arb.volume, arb.realized_pnl) == (4, 4, D("827"), D("13"))
    assert (arb.bought, arb.sold, arb.position, arb.average_cost) == (D("4"), D("4"), D("0"), None)
    assert arb.fees == {"USDT": D("0.723"), "TSLAx": D("0.001")}
    assert (mm.strategy, mm.venue, mm.orders, mm.fills) == ("mm", "binance", 2, 1)
    assert mm.orders_by_status == {"intent": 1, "accepted": 1}
    assert (mm.position, mm.average_cost, mm.volume) == (-TINY, D("250"), D("2.50E-16"))


def test_flip_realizes_only_the_closed_part() -> None:
    line = Line("s", "v", "i")
    line.apply_fill(Side.SELL, D("2"), D("10"), D("20"))  # short 2 @ 10
    line.apply_fill(Side.BUY, D("3"), D("8"), D("24"))  # closes 2 (+4), long 1 @ 8
    assert (line.realized_pnl, line.position, line.average_cost) == (D("4"), D("1"), D("8"))
    line.apply_fill(Side.BUY, D("1"), D("9"), D("9"))  # long 2 @ 8.5
    line.apply_fill(Side.SELL, D("1"), D("8"), D("8"))  # closes 1 (-0.5)
    assert (line.realized_pnl, line.position, line.average_cost) == (D("3.5"), D("1"), D("8.5"))


def test_report_json_and_table(tmp_path: Path) -> None:
    url = make(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["report", "--json", "--db", url])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    arb = data["lines"][0]
    assert (arb["strategy"], arb["realized_pnl"], arb["volume"], arb["fees"]) == (
        "arb",
        "13",
        "827",
        {"TSLAx": "0.001", "USDT": "0.723"},
    )
    assert data["lines"][1]["position"] == "-1E-18"
    assert data["funding"] == [{"venue": "bx", "instrument": "TSLA-PERP", "asset": "USDT", "paid": "0.20"}]
    assert data["transactions_by_status"] == {"pending": 1} and data["decisions_by_strategy"] == {"arb": 1}

    table = runner.invoke(app, ["report", "--db", url], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "827" in table.output and "13" in table.output and "-0.000000000000000001" in table.output
    assert "funding bx TSLA-PERP: 0.2 USDT paid" in table.output


def test_export_writes_one_exact_csv_per_table(tmp_path: Path) -> None:
    url = make(tmp_path)
    out = tmp_path / "csv"
    result = CliRunner().invoke(app, ["export", "--out", str(out), "--db", url])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "balance_snapshots.csv",
        "decisions.csv",
        "fills.csv",
        "funding_payments.csv",
        "order_events.csv",
        "orders.csv",
        "transactions.csv",
    ]
    with (out / "fills.csv").open() as handle:
        fills = list(csv.DictReader(handle))
    assert [(f["client_order_id"], f["quantity"], f["fee"], f["strategy"]) for f in fills] == [
        ("a-1", "2", "0.2", "arb"),
        ("a-2", "1", "0.103", "arb"),
        ("a-3", "4", "0.42", "arb"),
        ("a-4", "1", "0.001", "arb"),
        ("m-1", "1E-18", "0", "mm"),
    ]
    with (out / "orders.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 6


def test_a_missing_journal_is_refused_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.sqlite"
    result = CliRunner().invoke(app, ["report", "--db", f"sqlite+aiosqlite:///{missing}"])
    assert result.exit_code == 2 and "--db" in result.output and "no journal file" in result.output
    assert not missing.exists()
    bad = CliRunner().invoke(
        app, ["export", "--out", str(tmp_path), "--db", "postgresql+asyncpg://u:pw-s3cret@h/db"]
    )
    assert bad.exit_code == 2 and "pw-s3cret" not in bad.output and "storage.url" in bad.output
