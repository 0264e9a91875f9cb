"""Maker/taker fee schedules of simulated book venues, in basis points of notional, exact in Decimal.

fee = quantity x contract size x price x bps / 10,000, in the fee asset (the instrument's quote
currency on book venues). A negative maker rate is a rebate: the fee is negative and credits the
account. Fees are exact (no rounding): the product of finite Decimals at 60 digits of precision,
and the division by 10,000 only moves the decimal point.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import (
    Decimal,
    localcontext,
)

from core.enums import Liquidity
from core.errors import InvalidInput
from core.money import MONEY

BPS = Decimal(10_000)
"""Basis points per unit."""

_LIMIT = Decimal(10_000)

# 60 digits: products of prices and sizes with 18 decimals stay exact; errors trap, never pass.
_CTX = MONEY


def _check_bps(name: str, value: object, low: Decimal) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or not low <= value <= _LIMIT:
        raise InvalidInput(f"fees.{name}", value, f"must be a finite Decimal in [{low}, {_LIMIT}] (bps)")


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Maker and taker fee rates in bps of notional; `maker_bps < 0` is a rebate."""

    maker_bps: Decimal = Decimal(0)
    taker_bps: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        _check_bps("maker_bps", self.maker_bps, -_LIMIT)
        _check_bps("taker_bps", self.taker_bps, Decimal(0))

    def rate_bps(self, liquidity: Liquidity) -> Decimal:
        """The rate (bps) that applies to a fill that added (maker) or took (taker) liquidity."""
        return self.maker_bps if liquidity is Liquidity.MAKER else self.taker_bps

    def fee(self, notional: Decimal, liquidity: Liquidity) -> Decimal:
        """Fee on `notional` (quote currency) for a fill of this `liquidity`; negative = rebate."""
        with localcontext(_CTX):
            return notional * self.rate_bps(liquidity) / BPS

    @property
    def max_rate(self) -> Decimal:
        """The larger of the two rates as a fraction (>= 0): what a balance check must provision."""
        return max(self.maker_bps, self.taker_bps, Decimal(0)) / BPS
