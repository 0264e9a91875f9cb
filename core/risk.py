"""Risk limits: the numbers the risk checks enforce before any request reaches a venue.

This module holds the limits *model* (validated from the `risk:` section of config.yaml). They
are enforced by `core.risk_checks.LimitChecks` (position, notional, order rate, price band, gas
price: every request, before it reaches a venue) and `core.kill_switch.KillSwitch` (daily loss,
repeated rejects, stale data: stops all trading until reset); see docs/risk-and-observability.md.
It also holds the few validation primitives that
`core.config` shares (`StrictModel`, the positive-number types, `FieldProblem`): `core.config`
imports this module, so they live here to keep the import graph one-way.

Units: positions in the instrument's own size units (shares, tokens, contracts); notionals and
losses in `RiskLimits.currency` (USD by default; stablecoins count at par); rates in orders per
second; staleness in milliseconds; price bands in basis points (1 bp = 0.01%) of fair value; gas
price in gwei (1e-9 of the chain's native coin per unit of gas).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, model_validator

NO_VALUE: Final = object()
"""A `FieldProblem.value` meaning: there is no offending value to show (a missing key)."""

USE_INPUT: Final = object()
"""A `FieldProblem.value` meaning: show the value pydantic was validating (the default)."""


class FieldProblem(ValueError):
    """A validation failure raised by our own validators, richer than a plain `ValueError`.

    `key` is a path relative to the failing model (so a model-level check can point at the field it
    is about), `value` the offending value (`NO_VALUE`: none to show; `USE_INPUT`: pydantic's input),
    and `redact` hides the value from every message (it may be a secret pasted in the wrong place).
    """

    def __init__(
        self,
        message: str,
        *,
        key: tuple[str | int, ...] = (),
        value: object = USE_INPUT,
        redact: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.key = key
        self.value = value
        self.redact = redact


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors and a loaded config never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/\-]{0,63}")


def _check_instrument_id(value: str) -> str:
    if not _ID_RE.fullmatch(value):
        raise FieldProblem("must be 1..64 characters: letters, digits and . _ - / : (starting alphanumeric)")
    return value


InstrumentId = Annotated[str, AfterValidator(_check_instrument_id)]
"""An instrument or token id such as `TSLAx/USDC`, `TSLA-PERP` or `BTC-100000-C-7D/TSLAx`."""

PositiveInt = Annotated[int, Strict(), Field(gt=0)]
"""A whole number > 0; YAML `5.0` or `"5"` are refused (a config states integers as integers)."""

PositiveDecimal = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
"""An exact number > 0; YAML numbers and strings (`"0.25"`) both parse exactly to `Decimal`."""

NonNegativeDecimal = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
"""An exact number >= 0."""

Bps = Annotated[Decimal, Field(gt=0, le=10_000, allow_inf_nan=False)]
"""Basis points of a price, > 0 and <= 10000 (100%)."""


class InstrumentLimits(StrictModel):
    """Limits of one instrument; in overrides, an unset field falls back to the global default.

    `max_position`: largest absolute position, in the instrument's size units.
    `max_notional`: largest absolute position value, in `RiskLimits.currency`.
    `price_band_bps`: how far (bps) an order's price may sit from fair value.
    """

    max_position: PositiveDecimal | None = None
    max_notional: PositiveDecimal | None = None
    price_band_bps: Bps | None = None


class OrderRateLimit(StrictModel):
    """At most `orders_per_second` on average over a sliding window of `window_ms` milliseconds.

    A longer window allows bursts: 2 orders/s over 5000 ms admits 10 orders at once, then waits.
    """

    orders_per_second: PositiveDecimal
    window_ms: PositiveInt = 1000

    @model_validator(mode="after")
    def _admits_one_order(self) -> OrderRateLimit:
        # A window that admits no whole order would silently block all trading.
        if self.max_orders_per_window < 1:
            raise FieldProblem(
                f"admits no order in a {self.window_ms} ms window; raise orders_per_second or window_ms",
                key=("orders_per_second",),
                value=self.orders_per_second,
            )
        return self

    @property
    def max_orders_per_window(self) -> int:
        """Whole orders admitted per window (rounded down)."""
        return int(self.orders_per_second * self.window_ms // 1000)


class RiskLimits(StrictModel):
    """Limits checked before every request and on every fill; see the module docstring for units.

    `max_position`, `max_notional` and `price_band_bps` apply to each instrument separately (a
    default), and `overrides` tightens or loosens them per instrument id. `max_daily_loss` is the
    kill switch: realised plus unrealised loss since 00:00 UTC reaching it cancels every open order
    and refuses new ones until an operator resets it. A market-data price older than
    `max_data_staleness_ms` (by its publish time) is not traded on. An on-chain transaction is not
    sent while the chain's gas price exceeds `max_gas_price_gwei`.
    """

    currency: str = Field(default="USD", min_length=1, max_length=16)
    max_position: PositiveDecimal | None = None
    max_notional: PositiveDecimal
    max_order_rate: OrderRateLimit
    max_daily_loss: PositiveDecimal
    max_data_staleness_ms: PositiveInt
    price_band_bps: Bps
    max_gas_price_gwei: PositiveDecimal
    overrides: dict[InstrumentId, InstrumentLimits] = Field(default_factory=dict)

    def for_instrument(self, instrument_id: str) -> InstrumentLimits:
        """Effective limits of one instrument: its override where set, else the global default."""
        override = self.overrides.get(instrument_id)
        if override is None:
            return InstrumentLimits(
                max_position=self.max_position,
                max_notional=self.max_notional,
                price_band_bps=self.price_band_bps,
            )
        return InstrumentLimits(
            max_position=override.max_position if override.max_position is not None else self.max_position,
            max_notional=override.max_notional if override.max_notional is not None else self.max_notional,
            price_band_bps=(
                override.price_band_bps if override.price_band_bps is not None else self.price_band_bps
            ),
        )

    def summary(self) -> list[tuple[str, str, str]]:
        """`(limit, value, unit)` rows for display, global limits first, then overrides."""
        cur = self.currency
        rate = self.max_order_rate
        rows: list[tuple[str, str, str]] = [
            ("max_position", _show(self.max_position, "no cap"), "size units, per instrument"),
            ("max_notional", _show(self.max_notional), f"{cur}, per instrument"),
            ("max_order_rate", f"{rate.orders_per_second}/s over {rate.window_ms} ms", "orders"),
            ("max_daily_loss", _show(self.max_daily_loss), f"{cur}, trips the kill switch"),
            ("max_data_staleness_ms", str(self.max_data_staleness_ms), "ms"),
            ("price_band_bps", _show(self.price_band_bps), "bps from fair value"),
            ("max_gas_price_gwei", _show(self.max_gas_price_gwei), "gwei"),
        ]
        for instrument_id, override in self.overrides.items():
            for field_name in ("max_position", "max_notional", "price_band_bps"):
                value = getattr(override, field_name)
                if value is not None:
                    rows.append((f"{instrument_id}: {field_name}", _show(value), "override"))
        return rows


def _show(value: Decimal | None, none: str = "-") -> str:
    return none if value is None else str(value)
