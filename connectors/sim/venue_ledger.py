"""Our account at one simulated venue: exact balances, and the part that open requests have reserved.

A venue reserves what an accepted request may spend (cash for a buy or a mint, tokens or shares
for a sell or a redeem) so that two open requests cannot spend the same money, and settles a fill
atomically: the reservation is released and the fill's deltas applied together, or, if any
balance would fall below what other requests still reserve, nothing changes and the reason is
returned. The ledger mirrors what the account holds at the venue; a backtest deposits the same
starting amounts into the venue and into the engine's `Portfolio`, the way a live venue's
`snapshot` is reconciled with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import (
    ROUND_CEILING,
    ROUND_HALF_EVEN,
    Decimal,
    localcontext,
)

from core.errors import InvalidInput
from core.money import MONEY

"""Decimal context for venue arithmetic: 60 digits, so products of prices, multipliers and sizes
never round; errors trap instead of passing as NaN."""

_ZERO = Decimal(0)
BPS = Decimal(10_000)
"""Basis points per unit."""


def round_half_even(amount: Decimal, quantum: Decimal | None) -> Decimal:
    """`amount` rounded half-to-even to a multiple of `quantum` (unchanged when `quantum` is None)."""
    if quantum is None:
        return amount
    with localcontext(MONEY):
        return amount.quantize(quantum, rounding=ROUND_HALF_EVEN)


def round_up(amount: Decimal, quantum: Decimal | None) -> Decimal:
    """`amount` rounded up (toward +infinity) to a multiple of `quantum`: how venues round fees."""
    if quantum is None:
        return amount
    with localcontext(MONEY):
        return amount.quantize(quantum, rounding=ROUND_CEILING)


def check_decimal(field: str, value: object, allow_zero: bool = True) -> Decimal:
    """`value` if a finite Decimal >= 0 (> 0 unless `allow_zero`); else `InvalidInput` naming `field`."""
    if (
        not isinstance(value, Decimal)
        or not value.is_finite()
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        raise InvalidInput(field, value, "must be a finite Decimal " + (">= 0" if allow_zero else "> 0"))
    return value


class Ledger:
    """Balances per asset (display units, exact) and the amounts reserved by open requests.

    Args:
        balances: starting balances, asset -> amount (each >= 0).
    """

    def __init__(self, balances: Mapping[str, Decimal] | None = None) -> None:
        self._balances: dict[str, Decimal] = {}
        self._reserved: dict[str, Decimal] = {}
        for asset, amount in (balances or {}).items():
            check_decimal(f"balances[{asset!r}]", amount)
            self._balances[asset] = amount

    def deposit(self, asset: str, amount: Decimal) -> None:
        """Credit `amount` (> 0, units of `asset`)."""
        check_decimal("amount", amount, allow_zero=False)
        with localcontext(MONEY):
            self._balances[asset] = self.balance(asset) + amount

    def balance(self, asset: str) -> Decimal:
        """Everything held of `asset`, reserved or not."""
        return self._balances.get(asset, _ZERO)

    def reserved(self, asset: str) -> Decimal:
        """The part of `asset` reserved by open requests."""
        return self._reserved.get(asset, _ZERO)

    def free(self, asset: str) -> Decimal:
        """What a new request may still spend of `asset`."""
        with localcontext(MONEY):
            return self.balance(asset) - self.reserved(asset)

    def balances(self) -> dict[str, Decimal]:
        """Copy of the balances, asset -> amount."""
        return dict(self._balances)

    def reserve(self, asset: str, amount: Decimal) -> str | None:
        """Reserve `amount` of `asset`; returns the reason and reserves nothing if too little is free."""
        free = self.free(asset)
        if amount > free:
            return f"balance[{asset!r}]: needs {amount}, free {free}"
        if amount > 0:
            with localcontext(MONEY):
                self._reserved[asset] = self.reserved(asset) + amount
        return None

    def reserve_all(self, amounts: Mapping[str, Decimal]) -> str | None:
        """Reserve every `asset -> amount`, or none of them and return the first shortfall."""
        done: dict[str, Decimal] = {}
        for asset, amount in amounts.items():
            short = self.reserve(asset, amount)
            if short is not None:
                self.release(done)
                return short
            done[asset] = amount
        return None

    def release(self, releases: Mapping[str, Decimal]) -> None:
        """Give back reservations, asset -> amount (each at most what is reserved)."""
        with localcontext(MONEY):
            for asset, amount in releases.items():
                if amount:
                    self._reserved[asset] = self.reserved(asset) - amount

    def settle(self, deltas: Mapping[str, Decimal], releases: Mapping[str, Decimal]) -> str | None:
        """Release `releases` and apply `deltas` (asset -> signed amount) together, or change nothing.

        Returns None on success, or the reason: a lowered balance would fall below what other
        requests still reserve.
        """
        with localcontext(MONEY):
            reserved = {a: self.reserved(a) - releases.get(a, _ZERO) for a in set(deltas) | set(releases)}
            new: dict[str, Decimal] = {}
            for asset, delta in deltas.items():
                value = self.balance(asset) + delta
                if delta < 0 and value < reserved[asset]:
                    return f"balance[{asset!r}]: needs {-delta}, free {self.balance(asset) - reserved[asset]}"
                new[asset] = value
        self._reserved.update(reserved)
        self._balances.update(new)
        return None
