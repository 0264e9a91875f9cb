"""What a backtest returns: every order and fill, the equity curve, and the inputs to the metrics.

Money that settled (fills, fees, funding, final balances) stays exact (`Decimal`); the equity
curve is sampled as floats for metrics and charts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from core.events import Fill, OrderUpdate
from core.orders import Order
from core.portfolio import PortfolioSnapshot


@dataclass(frozen=True, slots=True)
class Series:
    """A sampled time series for reports: `ts` in ns UTC, `values` float."""

    ts: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]


@dataclass(slots=True)
class BacktestResult:
    """Outcome of one backtest run.

    `equity` is sampled every `sample_interval_ns` of simulated time and after every fill, valued
    in `valuation_asset`. `strategy_of_order` maps client order ids to strategy names, `venue_pnl`
    and `strategy_pnl` are realized PnL plus fees, gas and funding attributed to each, in the
    valuation asset. `series` carries extra curves for reports (e.g. `premium_bps` of a token).
    """

    start_ns: int
    end_ns: int
    valuation_asset: str
    events: int
    orders: list[Order]
    fills: list[Fill]
    rejections: list[OrderUpdate]
    equity: Series
    initial_equity: Decimal
    final_equity: Decimal
    portfolio: PortfolioSnapshot
    fees: dict[str, Decimal] = field(default_factory=dict)
    """Fees paid per asset (native units)."""
    gas: Decimal = Decimal(0)
    """Gas paid, in the valuation asset."""
    funding: Decimal = Decimal(0)
    """Funding paid (negative: received), in the valuation asset."""
    strategy_of_order: dict[str, str] = field(default_factory=dict)
    venue_pnl: dict[str, Decimal] = field(default_factory=dict)
    strategy_pnl: dict[str, Decimal] = field(default_factory=dict)
    series: dict[str, Series] = field(default_factory=dict)
    wall_seconds: float = 0.0
    par_assets: frozenset[str] = frozenset()
    """Assets worth exactly one unit of `valuation_asset` (USDC and USDT in a USD valuation)."""
