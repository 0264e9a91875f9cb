"""HTML report and metrics.json: files, inlined plotly bundle, sections, series lookup, no fills."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import plotly.offline
import pytest

from backtest.metrics import NS_PER_HOUR, compute_metrics
from backtest.report import (
    MAX_POINTS,
    SECTIONS,
    kind_of,
    other_series,
    position_paths,
    price_series_for,
    render_html,
    thin,
    write_report,
)
from backtest.result import BacktestResult, Series
from core.enums import Side
from core.events import Fill
from core.portfolio import PortfolioSnapshot

D = Decimal
H = NS_PER_HOUR
T0 = 1_750_000_000_000_000_000  # 2025-06-15T15:06:40Z
TOKEN = "TSLAx/USDC"


def series(values: list[float], step: int = H) -> Series:
    return Series(np.arange(len(values), dtype=np.int64) * step + T0, np.asarray(values, dtype=np.float64))


def fill(
    ts: int, side: Side, qty: str, price: str, coid: str, venue: str = "dex", instrument: str = TOKEN
) -> Fill:
    return Fill(ts, venue, instrument, coid, side, D(price), D(qty), D("0.1"), "USDC")


def make_result(fills: list[Fill], extra: dict[str, Series] | None = None) -> BacktestResult:
    return BacktestResult(
        start_ns=T0,
        end_ns=T0 + 5 * H,
        valuation_asset="USDC",
        events=1234,
        orders=[],
        fills=fills,
        rejections=[],
        equity=series([1000.0, 1010.0, 990.0, 1020.0, 1015.0, 1030.0]),
        initial_equity=D(1000),
        final_equity=D(1030),
        portfolio=PortfolioSnapshot(ts=0, balances={}, positions={}, fees={}, funding={}),
        fees={"USDC": D("0.3")},
        series=extra if extra is not None else {},
    )


def in_json(name: str) -> str:
    """`name` as plotly writes it into the page's JSON (it escapes "/" as \\u002f)."""
    return name.replace("/", "\\u002f")


FILLS = [
    fill(T0 + H, Side.BUY, "2", "250.5", "a-1"),
    fill(T0 + 2 * H, Side.BUY, "1", "249", "a-2"),
    fill(T0 + 3 * H, Side.SELL, "3", "252", "a-3"),
]
SERIES = {
    f"token_price:{TOKEN}": series([250.0, 250.5, 249.0, 251.0, 252.0, 253.0]),
    f"fair_value:{TOKEN}": series([250.2, 250.1, 250.0, 250.9, 251.5, 252.8]),
    f"premium_bps:{TOKEN}": series([-8.0, 16.0, -40.0, 4.0, 20.0, 8.0]),
    "funding_rate:TSLA-PERP": series([0.0001, 0.0001, 0.0002, 0.0, -0.0001, 0.0]),
}


def test_writes_html_and_json(tmp_path: Path) -> None:
    result = make_result(FILLS, SERIES)
    metrics = compute_metrics(result)
    out = tmp_path / "nested" / "run"
    html_path, json_path = write_report(result, metrics, out)
    assert (html_path, json_path) == (out / "report.html", out / "metrics.json")
    page = html_path.read_text(encoding="utf-8")
    # plotly.js is inlined once, and nothing is fetched from the network.
    bundle_head = plotly.offline.get_plotlyjs()[:300]
    assert page.count(bundle_head) == 1
    # The bundle's only URL is the default topojson base of geo maps, unused here.
    assert "<script src=" not in page
    assert page.count("cdn.plot.ly") == plotly.offline.get_plotlyjs().count("cdn.plot.ly")
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in page
    # Sections in the documented order.
    positions = [page.index(f"<h2>{title}</h2>") for title in SECTIONS]
    assert positions == sorted(positions)
    assert json.loads(json_path.read_text()) == metrics.to_dict()


def test_sections_show_the_data(tmp_path: Path) -> None:
    result = make_result(FILLS, SERIES)
    page = render_html(result, compute_metrics(result))
    # Every series key appears as a trace name; the odd one under "Other series".
    for key in SERIES:
        assert in_json(key) in page
    other = page[page.index("<h2>Other series</h2>") :]
    assert "funding_rate:TSLA-PERP" in other
    # Fills: 2 buys and 1 sell on the token's price line (found as token_price:<instrument>).
    fills_part = page[page.index("<h2>Fills on price</h2>") : page.index("<h2>Other series</h2>")]
    assert "buy (2)" in fills_part and "sell (1)" in fills_part
    assert in_json(f"token_price:{TOKEN}") in fills_part
    # Metrics table rows and the date axis (ns converted to dates, not raw integers).
    assert "Max drawdown" in page and "Sharpe" in page
    assert "2025-06-15" in page
    assert "No fills" not in page


def test_empty_fills_and_no_series(tmp_path: Path) -> None:
    result = make_result([])
    metrics = compute_metrics(result)
    html_path, json_path = write_report(result, metrics, tmp_path)
    page = html_path.read_text(encoding="utf-8")
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in page
    assert "No fills: no positions were taken." in page
    assert "No fills." in page
    assert "premium_bps series in this result" in page
    assert "No other series." in page
    # The bundle still comes with the first chart (equity).
    assert plotly.offline.get_plotlyjs()[:300] in page
    assert json.loads(json_path.read_text()) == metrics.to_dict()
    assert json.loads(json_path.read_text())["win_rate"] is None


def test_report_is_deterministic(tmp_path: Path) -> None:
    result = make_result(FILLS, SERIES)
    metrics = compute_metrics(result)
    assert render_html(result, metrics) == render_html(result, metrics)


def test_position_paths() -> None:
    # Flat at start, +2 at 1h, +3 at 2h, 0 at 3h, held to the end (5h).
    path = position_paths(make_result(FILLS))[("dex", TOKEN)]
    assert path.ts.tolist() == [T0, T0 + H, T0 + 2 * H, T0 + 3 * H, T0 + 5 * H]
    assert path.values.tolist() == [0.0, 2.0, 3.0, 0.0, 0.0]


def test_price_series_lookup_order() -> None:
    s = series([1.0])
    key = ("dex", TOKEN)
    both = {f"price:dex:{TOKEN}": s, f"price:{TOKEN}": s, f"token_price:{TOKEN}": s, "price": s}
    assert price_series_for(both, key, only_key=True) == (f"price:dex:{TOKEN}", s)
    assert price_series_for({f"price:{TOKEN}": s, "price": s}, key, only_key=False) == (f"price:{TOKEN}", s)
    # A bare `price` only serves when a single (venue, instrument) has fills.
    assert price_series_for({"price": s}, key, only_key=False) is None
    assert price_series_for({"price": s}, key, only_key=True) == ("price", s)
    assert price_series_for({"price:cex:X": s}, key, only_key=True) is None


def test_series_kinds() -> None:
    assert kind_of("price:uniswap:TSLAx/USDC") == ("price", "uniswap:TSLAx/USDC")
    assert kind_of("premium_bps") == ("premium_bps", "")
    s = series([1.0])
    assert set(other_series({"premium_bps": s, "fair_value:X": s, "price": s, "basis": s})) == {"basis"}


@pytest.mark.parametrize("n", [10, MAX_POINTS, 3 * MAX_POINTS + 7])
def test_thin_keeps_extremes(n: int) -> None:
    rng = np.random.default_rng(n)
    values = np.cumsum(rng.normal(size=n))
    s = Series(np.arange(n, dtype=np.int64), values)
    shown = thin(s)
    assert shown.ts.size <= MAX_POINTS
    assert shown.ts[0] == 0 and shown.ts[-1] == n - 1
    assert shown.values.min() == values.min() and shown.values.max() == values.max()
    assert np.all(np.diff(shown.ts) > 0)
    assert np.array_equal(s.values[shown.ts], shown.values)  # only real samples, no interpolation
