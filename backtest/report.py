"""Self-contained HTML report and JSON metrics of a backtest.

`write_report(result, metrics, out_dir)` writes `out_dir/report.html` (plotly.js inlined, so it
opens offline) and `out_dir/metrics.json` (`metrics.to_dict()`). The HTML has these sections, in
order, each under an `<h2>` of the title in `SECTIONS`: the metrics table, the equity curve, the
drawdown, premium vs fair value, positions over time, fills on the price, and any other series.
A section without data says so instead of drawing an empty chart.

Naming convention of `result.series` keys: `<kind>` or `<kind>:<subject>`, where `subject` is an
instrument id (`token_price:TSLAx/USDC`) or `<venue>:<instrument>` (`price:uniswap:TSLAx/USDC`);
the kind is what precedes the first colon.

- `token_price`, `fair_value`, `stock_price` [quote currency]: the upper panel of
  "Premium vs fair value"; `premium_bps` [basis points, token over fair value]: its lower panel.
- `price` [quote currency]: the market price drawn under a `(venue, instrument)`'s fills, looked
  up as `price:<venue>:<instrument>`, then `price:<instrument>`, then `token_price:<instrument>`,
  then a bare `price` or `token_price` when only one `(venue, instrument)` has fills. Fills are
  always marked at their own execution price (buys: up triangles, sells: down triangles), with
  or without a price line.
- Any other key is drawn, one chart per key, under "Other series".

Lines with more than `MAX_POINTS` samples are thinned for the browser by keeping the minimum and
maximum of each bucket (so peaks and troughs survive); fills are never thinned.
"""

from __future__ import annotations

import html
import itertools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from backtest.metrics import Key, Metrics, drawdown_curve, replay_fills
from backtest.result import BacktestResult, Series
from core.enums import Side
from core.events import Fill

SECTIONS = (
    "Metrics",
    "Equity",
    "Drawdown",
    "Premium vs fair value",
    "Positions",
    "Fills on price",
    "Other series",
)
"""Section titles of the HTML report, in order."""

PRICE_KINDS = ("token_price", "fair_value", "stock_price")
"""Series kinds drawn in the upper (price) panel of "Premium vs fair value"."""
PREMIUM_KIND = "premium_bps"
"""Series kind drawn in the lower (premium, bps) panel."""
MARKET_PRICE_KIND = "price"
"""Series kind drawn under fills."""

MAX_POINTS = 20_000
"""Most points drawn per line; longer lines keep each bucket's minimum and maximum."""
_WEBGL_MARKERS = 20_000  # above this many fill markers, WebGL keeps the browser responsive

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2em; }
.subtitle { color: #666; margin-top: 0; }
section { margin-top: 2em; }
table.metrics { border-collapse: collapse; }
table.metrics td { padding: 0.2em 1em; border-bottom: 1px solid #eee; }
table.metrics td.value { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #888; font-style: italic; }
"""


def kind_of(key: str) -> tuple[str, str]:
    """`(kind, subject)` of a series key; subject is "" for a bare kind."""
    kind, _, subject = key.partition(":")
    return kind, subject


def _times(ts: npt.NDArray[np.int64]) -> npt.NDArray[np.datetime64]:
    """ns since the epoch, UTC -> datetime64 for plotly's date axis."""
    return np.asarray(ts, dtype=np.int64).astype("datetime64[ns]")


def thin(series: Series, max_points: int = MAX_POINTS) -> Series:
    """At most ~`max_points` samples: first, last, and each bucket's min and max, in time order."""
    n = int(series.ts.size)
    if n <= max_points:
        return series
    buckets = max(1, (max_points - 2) // 2)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    keep = [0, n - 1]
    for lo, hi in itertools.pairwise(edges.tolist()):
        if hi > lo:
            chunk = series.values[lo:hi]
            keep += [int(lo + np.argmin(chunk)), int(lo + np.argmax(chunk))]
    index = np.unique(np.asarray(keep, dtype=np.int64))
    return Series(series.ts[index], series.values[index])


def _line(series: Series, name: str, **kwargs: Any) -> go.Scatter:
    shown = thin(series)
    return go.Scatter(x=_times(shown.ts), y=shown.values, mode="lines", name=name, **kwargs)


def _layout(fig: go.Figure, y_title: str, height: int = 420) -> go.Figure:
    fig.update_layout(
        height=height,
        margin={"l": 60, "r": 20, "t": 30, "b": 40},
        yaxis_title=y_title,
        hovermode="x unified",
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


# ----------------------------------------------------------------------------------- figures


def equity_figure(result: BacktestResult, metrics: Metrics) -> go.Figure:
    """Equity curve [valuation asset], with the deepest drawdown's peak and trough marked."""
    fig = go.Figure(_line(result.equity, "equity"))
    marks = [
        (metrics.max_drawdown_peak_ns, "drawdown peak"),
        (metrics.max_drawdown_trough_ns, "drawdown trough"),
    ]
    ts, values = result.equity.ts, result.equity.values
    for at, label in marks:
        if at is not None and ts.size:
            i = int(np.searchsorted(ts, at, side="right") - 1)
            fig.add_trace(
                go.Scatter(
                    x=_times(ts[i : i + 1]),
                    y=values[i : i + 1],
                    mode="markers",
                    name=label,
                    marker={"size": 10},
                )
            )
    return _layout(fig, f"equity [{result.valuation_asset}]")


def drawdown_figure(result: BacktestResult) -> go.Figure:
    """Drawdown below the running peak [%, drawn negative]."""
    dd = drawdown_curve(result.equity)
    fig = go.Figure(_line(Series(dd.ts, -100.0 * dd.values), "drawdown", fill="tozeroy"))
    return _layout(fig, "drawdown [%]", height=300)


def premium_figure(series: dict[str, Series]) -> go.Figure | None:
    """Token price and fair value [quote currency] over the premium [bps]; None without such series."""
    prices = {k: s for k, s in series.items() if kind_of(k)[0] in PRICE_KINDS}
    premiums = {k: s for k, s in series.items() if kind_of(k)[0] == PREMIUM_KIND}
    if not prices and not premiums:
        return None
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4], vertical_spacing=0.05)
    for key, s in prices.items():
        fig.add_trace(_line(s, key), row=1, col=1)
    for key, s in premiums.items():
        fig.add_trace(_line(s, key), row=2, col=1)
    fig.update_yaxes(title_text="price [quote]", row=1, col=1)
    fig.update_yaxes(title_text="premium [bps]", row=2, col=1)
    return _layout(fig, "price [quote]", height=560)


def position_paths(result: BacktestResult) -> dict[Key, Series]:
    """Net position per `(venue, instrument)` [units; contracts for derivatives] after every fill,
    from `start_ns` (flat) to `end_ns` (the last quantity), as a step series."""
    paths: dict[Key, Series] = {}
    for key, (ts_list, q_list) in replay_fills(result.fills).positions.items():
        ts = [result.start_ns, *ts_list, max(result.end_ns, ts_list[-1])]
        qs = [0.0, *(float(q) for q in q_list), float(q_list[-1])]
        paths[key] = Series(np.asarray(ts, dtype=np.int64), np.asarray(qs, dtype=np.float64))
    return paths


def positions_figure(result: BacktestResult) -> go.Figure | None:
    """Signed positions over time (step lines); None without fills."""
    paths = position_paths(result)
    if not paths:
        return None
    fig = go.Figure(
        [_line(s, f"{venue} {instrument}", line_shape="hv") for (venue, instrument), s in paths.items()]
    )
    return _layout(fig, "position [units]")


def price_series_for(series: dict[str, Series], key: Key, only_key: bool) -> tuple[str, Series] | None:
    """The market price series drawn under `key`'s fills (see the module docstring), if any."""
    venue, instrument = key
    candidates = [
        f"{MARKET_PRICE_KIND}:{venue}:{instrument}",
        f"{MARKET_PRICE_KIND}:{instrument}",
        f"token_price:{instrument}",
    ]
    if only_key:
        candidates += [MARKET_PRICE_KIND, "token_price"]
    for name in candidates:
        if name in series:
            return name, series[name]
    return None


def _fills_by_key(fills: Sequence[Fill]) -> dict[Key, list[Fill]]:
    grouped: dict[Key, list[Fill]] = {}
    for f in sorted(fills, key=lambda f: f.ts):
        grouped.setdefault((f.venue, f.instrument), []).append(f)
    return grouped


def fill_figures(result: BacktestResult) -> Iterator[tuple[Key, go.Figure]]:
    """Per `(venue, instrument)`: its price line if one exists, buys and sells at their fill price."""
    grouped = _fills_by_key(result.fills)
    for key, fills in grouped.items():
        fig = go.Figure()
        found = price_series_for(result.series, key, only_key=len(grouped) == 1)
        if found is not None:
            fig.add_trace(_line(found[1], found[0], line={"color": "#888"}))
        for side, symbol, color in (
            (Side.BUY, "triangle-up", "#2ca02c"),
            (Side.SELL, "triangle-down", "#d62728"),
        ):
            chosen = [f for f in fills if f.side is side]
            if not chosen:
                continue
            scatter = go.Scattergl if len(chosen) > _WEBGL_MARKERS else go.Scatter
            fig.add_trace(
                scatter(
                    x=_times(np.asarray([f.ts for f in chosen], dtype=np.int64)),
                    y=[float(f.price) for f in chosen],
                    mode="markers",
                    name=f"{side.value} ({len(chosen)})",
                    marker={"symbol": symbol, "color": color, "size": 9},
                    text=[f"{f.quantity} @ {f.price} ({f.client_order_id})" for f in chosen],
                    hoverinfo="x+text",
                )
            )
        yield key, _layout(fig, "price [quote]")


def other_series(series: dict[str, Series]) -> dict[str, Series]:
    """Series not drawn by any other section."""
    drawn = {*PRICE_KINDS, PREMIUM_KIND, MARKET_PRICE_KIND}
    return {k: s for k, s in series.items() if kind_of(k)[0] not in drawn}


# ------------------------------------------------------------------------------------ output


class _Html:
    """Collects the page; the first figure inlines plotly.js, later ones reuse it."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self._figures = 0

    def add(self, text: str) -> None:
        self.parts.append(text)

    def section(self, title: str) -> None:
        anchor = title.lower().replace(" ", "-")
        self.parts.append(f'<section id="{anchor}"><h2>{html.escape(title)}</h2>')

    def end_section(self) -> None:
        self.parts.append("</section>")

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')

    def figure(self, fig: go.Figure, subtitle: str | None = None) -> None:
        if subtitle:
            self.parts.append(f"<h3>{html.escape(subtitle)}</h3>")
        first = self._figures == 0
        self._figures += 1
        # Fixed div ids keep the page identical for identical results (plotly defaults to uuids).
        self.parts.append(
            fig.to_html(full_html=False, include_plotlyjs=first, div_id=f"figure-{self._figures}")
        )


def _metrics_table(metrics: Metrics) -> str:
    rows = "".join(
        f'<tr><td>{html.escape(label)}</td><td class="value">{html.escape(value)}</td></tr>'
        for label, value in metrics.table_rows()
    )
    return f'<table class="metrics">{rows}</table>'


def render_html(result: BacktestResult, metrics: Metrics) -> str:
    """The report page as one string (see the module docstring)."""
    page = _Html()
    page.section("Metrics")
    page.add(_metrics_table(metrics))
    page.end_section()

    page.section("Equity")
    page.figure(equity_figure(result, metrics))
    page.end_section()

    page.section("Drawdown")
    page.figure(drawdown_figure(result))
    page.end_section()

    page.section("Premium vs fair value")
    premium = premium_figure(result.series)
    if premium is None:
        page.note(f"No {', '.join(PRICE_KINDS)} or {PREMIUM_KIND} series in this result.")
    else:
        page.figure(premium)
    page.end_section()

    page.section("Positions")
    positions = positions_figure(result)
    if positions is None:
        page.note("No fills: no positions were taken.")
    else:
        page.figure(positions)
    page.end_section()

    page.section("Fills on price")
    count = 0
    for (venue, instrument), fig in fill_figures(result):
        page.figure(fig, f"{venue} {instrument}")
        count += 1
    if count == 0:
        page.note("No fills.")
    page.end_section()

    page.section("Other series")
    others = other_series(result.series)
    for key, s in others.items():
        page.figure(_layout(go.Figure(_line(s, key)), key, height=300), key)
    if not others:
        page.note("No other series.")
    page.end_section()

    start = np.datetime_as_string(np.datetime64(result.start_ns, "ns"), unit="s")
    end = np.datetime_as_string(np.datetime64(result.end_ns, "ns"), unit="s")
    subtitle = (
        f"{start} to {end} UTC · valued in {result.valuation_asset} · {result.events:,} events · "
        f"{len(result.fills):,} fills"
    )
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Perpetua backtest report</title><style>{_CSS}</style></head><body>"
        f'<h1>Backtest report</h1><p class="subtitle">{html.escape(subtitle)}</p>'
    )
    return head + "\n".join(page.parts) + "</body></html>\n"


def write_report(result: BacktestResult, metrics: Metrics, out_dir: Path) -> tuple[Path, Path]:
    """Write `out_dir/report.html` and `out_dir/metrics.json`; return their paths `(html, json)`.

    Creates `out_dir` if needed and overwrites earlier files. The JSON is strict (no NaN: undefined
    metrics are null, see `Metrics.to_dict`).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / "report.html"
    json_path = out_dir / "metrics.json"
    html_path.write_text(render_html(result, metrics), encoding="utf-8")
    payload = json.dumps(metrics.to_dict(), indent=2, allow_nan=False)
    json_path.write_text(payload + "\n", encoding="utf-8")
    return html_path, json_path
