"""Gas of simulated swaps: units per swap, the gas price over time, the cost in the chain's native coin.

cost (native coin, e.g. ETH) = gas units x gas price (gwei) x 1e-9, exact in `Decimal`: a gas price
is a whole number of wei (at most 9 decimals in gwei), so the cost is a whole number of wei too.

Units (defaults are round figures of mainnet measurements, unverified; set them per chain):

- a Uniswap v2 swap through the router: `v2_swap_units` (~110k);
- a Uniswap v3 swap: `v3_swap_units` (~130k) plus `v3_tick_units` per initialized tick crossed
  (QuoterV2's `initializedTicksCrossed`; crossing a tick writes its storage, ~20k);
- a reverted swap (slippage bound, deadline, failed transfer): `revert_units`, whatever the
  version; a revert still pays for the gas it burnt, as on chain.

The gas price is `price_gwei`, or, when `price_series` is given, the last `(ts, gwei)` point at or
before the block's time (before the first point: `price_gwei`). It is read at the block a swap is
included in, like an EIP-1559 base fee (plus tip) of that block.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from decimal import Decimal, localcontext

from core.errors import InvalidInput
from core.money import MONEY

GWEI_DECIMALS = 9
"""Decimal places of one gwei in the native coin (1 gwei = 1e-9 ETH), and of one wei in gwei."""


def _check_units(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInput(f"gas.{name}", value, "must be an integer >= 0 (gas units)")


def _check_gwei(name: str, value: object) -> Decimal:
    """`value` if a finite Decimal >= 0 that is a whole number of wei; else `InvalidInput`."""
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise InvalidInput(name, value, "must be a finite Decimal >= 0 (gwei)")
    with localcontext(MONEY):
        wei = value.scaleb(GWEI_DECIMALS)
    if wei != wei.to_integral_value():
        raise InvalidInput(name, value, "finer than 1 wei (at most 9 decimals in gwei)")
    return value


@dataclass(frozen=True, slots=True)
class GasModel:
    """Gas units per swap and the gas price; see the module docstring.

    Args:
        v2_swap_units: units of a successful v2 swap.
        v3_swap_units: units of a successful v3 swap that crosses no initialized tick.
        v3_tick_units: extra units per initialized tick a v3 swap crosses.
        revert_units: units burnt by a reverted swap.
        price_gwei: gas price in gwei (whole wei), used before the series' first point or alone.
        price_series: `(ts ns, gwei)` points, ts strictly increasing; the price is a step function.
    """

    v2_swap_units: int = 110_000
    v3_swap_units: int = 130_000
    v3_tick_units: int = 20_000
    revert_units: int = 50_000
    price_gwei: Decimal = Decimal(1)
    price_series: tuple[tuple[int, Decimal], ...] = ()

    def __post_init__(self) -> None:
        for name in ("v2_swap_units", "v3_swap_units", "v3_tick_units", "revert_units"):
            _check_units(name, getattr(self, name))
        _check_gwei("gas.price_gwei", self.price_gwei)
        previous: int | None = None
        for i, point in enumerate(self.price_series):
            ts, gwei = point
            if not isinstance(ts, int) or isinstance(ts, bool) or (previous is not None and ts <= previous):
                raise InvalidInput(f"gas.price_series[{i}].ts", ts, "must be integer ns, strictly increasing")
            _check_gwei(f"gas.price_series[{i}].gwei", gwei)
            previous = ts

    def swap_units(self, version: int, ticks_crossed: int = 0) -> int:
        """Units of a successful swap on a pool of `version` (2 or 3) crossing `ticks_crossed` ticks."""
        if version == 2:
            return self.v2_swap_units
        return self.v3_swap_units + self.v3_tick_units * ticks_crossed

    def price_at(self, ts: int) -> Decimal:
        """Gas price in gwei in force at `ts` (ns)."""
        series = self.price_series
        if not series:
            return self.price_gwei
        i = bisect.bisect_right(series, ts, key=lambda point: point[0])
        return self.price_gwei if i == 0 else series[i - 1][1]

    def cost(self, units: int, ts: int) -> Decimal:
        """Native coin paid for `units` of gas at the price in force at `ts`: exact, whole wei."""
        with localcontext(MONEY):
            cost = (Decimal(units) * self.price_at(ts)).scaleb(-GWEI_DECIMALS).normalize()
            # no trailing zeros (0.00022, not 0.000220000), and no exponent form for whole coins (2, not 2E+0)
            exponent = cost.as_tuple().exponent
            return cost.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else cost
