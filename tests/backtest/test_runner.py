"""The backtest runner on the bundled sample: a buy-and-hold equals its hand computation."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from backtest.metrics import compute_metrics
from backtest.runner import build_backtest
from core.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]
START = 1_751_846_400_000_000_000  # 2025-07-07 00:00 UTC (a Monday)
END = START + 5 * 24 * 3600 * 10**9


def config_with(tmp_path: Path, strategy: str, sim: str = "") -> Path:
    """The default config with its strategy replaced and only the broker funded."""
    text = (REPO / "config.yaml").read_text()
    head, _, rest = text.partition("strategies:\n")
    _, _, tail = rest.partition("# ----")
    text = head + "strategies:\n" + strategy + "\n# ----" + tail
    text = text.replace("data_dir: data/sample/", f"data_dir: {REPO / 'data' / 'sample'}/")
    text = text.replace(
        "    uniswap_local: {USDC: 100000, TSLAx: 100}\n    binance: {USDT: 50000, TSLAx: 20}\n", ""
    )
    text += sim
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


BUY_AND_HOLD = """  - name: hold
    strategy: tests.backtest.buy_and_hold:BuyAndHold
    venues: [alpaca]
    params: {venue: alpaca, instrument: TSLA/USD, quantity: 10}
"""


def test_buy_and_hold_on_the_sample_equals_the_hand_computation(tmp_path: Path) -> None:
    sim = "  sim:\n    alpaca: {latency_ms: 0, spread_bps: 0, commission_per_share: 0.005}\n"
    cfg = load_config(config_with(tmp_path, BUY_AND_HOLD, sim))
    result = build_backtest(cfg, start_ns=START, end_ns=END).run()
    # Independently, straight from the Parquet file: the first regular-session quote (09:30 ET =
    # 13:30 UTC on Monday 2025-07-07) triggers the buy; with zero latency it fills on the next quote
    # (no fill on the triggering event) at that quote's ask; equity at the end marks the 10 shares at
    # the last mid before END.
    table = pq.read_table(REPO / "data/sample/tsla_usd_alpaca_quotes.parquet").to_pydict()
    rows = [i for i, ts in enumerate(table["ts"]) if START <= ts < END]
    open_ns = START + (13 * 60 + 30) * 60 * 10**9
    first = next(i for i in rows if table["ts"][i] >= open_ns)
    fill_row = first + 1
    ask = Decimal(repr(table["ask"][fill_row]))
    last = rows[-1]
    mid = (Decimal(repr(table["bid"][last])) + Decimal(repr(table["ask"][last]))) / 2
    cost = (10 * ask).quantize(Decimal("0.01"))
    commission = Decimal("0.05")
    [fill] = result.fills
    assert fill.ts == table["ts"][fill_row]
    assert fill.price == ask and fill.notional == cost and fill.fee == commission
    assert result.portfolio.balances[("alpaca", "TSLA")] == 10
    assert result.portfolio.balances[("alpaca", "USD")] == Decimal(100_000) - cost - commission
    # Initial equity: the broker's 100,000 USD (the only funded venue); final: cash + 10 x last mid.
    assert result.initial_equity == Decimal(100_000)
    assert result.final_equity == Decimal(100_000) - cost - commission + 10 * mid
    metrics = compute_metrics(result)
    assert metrics.total_return == pytest.approx(float((10 * mid - cost - commission) / 100_000))


def test_unknown_sim_venue_and_bad_values_are_named(tmp_path: Path) -> None:
    sim = "  sim:\n    alpacca: {latency_ms: 0}\n    alpaca: {spread_bps: -1, colour: red}\n"
    cfg = load_config(config_with(tmp_path, BUY_AND_HOLD, sim))
    with pytest.raises(ConfigError) as err:
        build_backtest(cfg, start_ns=START, end_ns=END)
    lines = str(err.value).splitlines()
    assert "backtest.sim.alpacca: unknown venue, got 'alpacca'" in lines
    assert any(line.startswith("backtest.sim.alpaca.spread_bps: must be >= 0") for line in lines)
    assert any(line.startswith("backtest.sim.alpaca.colour: unknown key") for line in lines)


def test_the_default_config_backtests_deterministically() -> None:
    cfg = load_config(REPO / "config.yaml")
    a = build_backtest(cfg, start_ns=START, end_ns=END).run()
    b = build_backtest(cfg, start_ns=START, end_ns=END).run()
    assert len(a.fills) > 0
    assert a.fills == b.fills
    assert (a.equity.values == b.equity.values).all() and (a.equity.ts == b.equity.ts).all()


OPTION_BUYER = """  - name: options
    strategy: tests.backtest.buy_and_hold:OptionBuyer
    venues: [options_pool]
    params: {pool: options_pool, option: BTC-100000-C-7D/TSLAx, quantity: 0.1}
"""


def test_the_options_pool_prices_off_the_dataset_and_charges_funding(tmp_path: Path) -> None:
    text = config_with(tmp_path, OPTION_BUYER).read_text()
    text = text.replace(
        "    alpaca: {USD: 100000}", "    alpaca: {USD: 100000}\n    options_pool: {TSLAx: 50}"
    )
    text += (
        "  sim:\n    options_pool: {main_pool_capital: 5000, insurance_pool_capital: 500, vols: {BTC: 0.9}}\n"
    )
    path = tmp_path / "options.yaml"
    path.write_text(text)
    cfg = load_config(path)
    bt = build_backtest(cfg, start_ns=START, end_ns=START + 2 * 24 * 3600 * 10**9)
    result = bt.run()
    [fill] = [f for f in result.fills if f.venue == "options_pool"]
    assert fill.side.value == "buy" and fill.quantity == Decimal("0.1") and fill.price > 0
    position = result.portfolio.positions[("options_pool", "BTC-100000-C-7D/TSLAx")]
    assert position.quantity == Decimal("0.1")
    # The long pays funding (mark above payoff out of the money): 50 - premium - fee - funding.
    funding = result.portfolio.funding[("options_pool", "BTC-100000-C-7D/TSLAx")]
    assert funding > 0
    premium = fill.price * fill.quantity
    balance = result.portfolio.balances[("options_pool", "TSLAx")]
    assert balance == Decimal(50) - premium - fill.fee - funding
    pool = bt.engine.venues["options_pool"]
    # The equity curve kept sampling with an option position open (marked at the pool's mark).
    assert result.equity.ts[-1] >= START + 2 * 24 * 3600 * 10**9 - 5 * 60 * 10**9
    book = pool.conservation()  # type: ignore[attr-defined]
    # Value is conserved: every token is accounted for, and what the LPs made the traders lost.
    assert book.tokens == book.external
    assert book.lp_pnl + book.trader_pnl == 0
    assert (
        book.lp_pnl
        == book.premiums + book.fees + book.funding + book.penalties - book.bad_debt - book.liability
    )
