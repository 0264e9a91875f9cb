"""The portfolio: balances, positions, realized PnL, fees and funding, moved only by facts.

Accounting rules (all amounts `Decimal`, never float):

- Balances are kept per `(venue, asset)`, in display units of the asset.
- Spot fill of signed quantity `s` (+ buy, - sell) at `price`: `base += s`, `quote -= s * price`.
- Perp fill (`StockPerp`): no cash changes hands at the fill; the position changes and any PnL it
  realizes is credited to (or debited from) the `quote` balance at once (realized-PnL accounting).
- Perpetual-option fill: `price` is the premium per unit of underlying in the option's
  `margin_asset` (a connector converts a coin-margined quote into that unit before the fill).
  The premium is cash at the fill, like a spot purchase of the contract: a buyer pays
  `quantity * price * contract_size` of `margin_asset`, a seller receives it (premium cash-flow
  accounting). Its realized PnL is therefore informational: the cash already moved.
- Every fill's `fee` is debited from the `fee_asset` balance on the fill's venue; a negative fee
  is a rebate and is credited. Fees are tracked separately and never folded into realized PnL.
- Funding (`apply_funding`) moves the settlement asset balance (perp: `quote`, option:
  `margin_asset`) and is accumulated per `(venue, instrument)`.
- Positions (spot included) use the average-cost method on a signed quantity. Each position keeps
  its exact signed cost basis `cost = sum(signed qty * price)` of the open quantity, so
  `average_price = cost / quantity`. A trade against the position first closes
  `min(|s|, |quantity|)`, releasing a pro-rata share of the cost (rounded to `COST_QUANTUM`; a
  full close releases all of it, so a round trip realizes exactly its cash flows) and realizing
  `closed * (price - average_price) * contract_size * sign(quantity)`; whatever is left of the
  fill opens a new position at the fill price (a flip through zero is close-then-open).
- A spot position is the net quantity traded by fills on that (venue, instrument), not the
  balance: deposits carry no cost basis, so selling deposited tokens opens a negative spot
  position at the sale price. Spot realized PnL is informational (the cash already moved).

A fill or funding either applies completely or not at all: every change is computed and checked
first, then committed with plain dict assignments that cannot fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import (
    Decimal,
    localcontext,
)
from types import MappingProxyType
from typing import Any

from core.enums import Side
from core.errors import InsufficientFunds, InvalidInput
from core.events import Fill
from core.instruments import InstrumentKind, InstrumentRegistry, PerpetualOption, Spot, StockPerp, Tradable
from core.money import MONEY

COST_QUANTUM = Decimal("1e-18")
"""Rounding step of the cost released by a partial close: the finest on-chain unit (18 decimals)."""

# 60 digits so sums of amounts with 18 decimals never round below 1e40; errors trap, never pass.
_CTX = MONEY

_ZERO = Decimal(0)

Key = tuple[str, str]
"""`(venue, asset)` for balances and fees, `(venue, instrument id)` for positions and funding."""


def _require_decimal(field: str, value: Any) -> Decimal:
    # A float here would bring binary rounding into money; NaN/inf would poison every sum.
    if not isinstance(value, Decimal) or not value.is_finite():
        raise InvalidInput(field, value, "must be a finite Decimal")
    return value


def _require_positive(field: str, value: Any) -> Decimal:
    amount = _require_decimal(field, value)
    if not amount > 0:
        raise InvalidInput(field, value, "must be > 0")
    return amount


def _require_name(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(field, value, "must be a non-empty string")
    return value


def settlement_asset(instrument: Tradable) -> str:
    """Asset that pays the instrument's PnL, premium and funding: quote, or an option's margin asset."""
    if isinstance(instrument, PerpetualOption):
        return instrument.margin_asset
    return instrument.quote


@dataclass(frozen=True, slots=True)
class Position:
    """A signed position on one (venue, instrument), average-cost method.

    `quantity` is in units of the underlying (spot: base units; derivatives: contracts, each
    `contract_size` units). `cost` is the signed cost basis of the open quantity in price units
    (`sum(signed qty * price)`), `realized_pnl` the cumulative realized PnL in `settlement_asset`
    (already multiplied by `contract_size`, gross of fees and funding).
    """

    venue: str
    instrument: str
    kind: InstrumentKind
    settlement_asset: str
    contract_size: Decimal = Decimal(1)
    quantity: Decimal = _ZERO
    cost: Decimal = _ZERO
    realized_pnl: Decimal = _ZERO

    @property
    def is_flat(self) -> bool:
        """True when no quantity is open."""
        return self.quantity == 0

    @property
    def average_price(self) -> Decimal:
        """Average entry price of the open quantity (price units), 0 when flat."""
        if self.quantity == 0:
            return _ZERO
        with localcontext(_CTX):
            return self.cost / self.quantity

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        """PnL of the open quantity at `mark` (price units), in `settlement_asset`."""
        with localcontext(_CTX):
            return (self.quantity * mark - self.cost) * self.contract_size

    def market_value(self, mark: Decimal) -> Decimal:
        """Signed value of the open quantity at `mark`, in `settlement_asset` (negative when short)."""
        with localcontext(_CTX):
            return self.quantity * mark * self.contract_size


def _trade(position: Position, signed_quantity: Decimal, price: Decimal) -> tuple[Position, Decimal]:
    """Average-cost update by a trade of `signed_quantity` at `price`.

    Returns the new position and the PnL this trade realized (settlement asset). Call inside `_CTX`.
    """
    quantity, cost, realized = position.quantity, position.cost, _ZERO
    remaining = signed_quantity
    if quantity != 0 and (quantity > 0) != (remaining > 0):
        direction = 1 if quantity > 0 else -1
        closed = min(abs(remaining), abs(quantity))
        # A full close releases the whole cost, so a round trip realizes exactly its cash flows.
        released = cost if closed == abs(quantity) else (cost * closed / abs(quantity)).quantize(COST_QUANTUM)
        realized = (direction * closed * price - released) * position.contract_size
        quantity -= direction * closed
        cost -= released
        remaining += direction * closed
    if remaining != 0:
        # Whatever is left of the fill opens (or adds to) a position at the fill price.
        quantity += remaining
        cost += remaining * price
    new = replace(position, quantity=quantity, cost=cost, realized_pnl=position.realized_pnl + realized)
    return new, realized


@dataclass(frozen=True, slots=True)
class PortfolioSnapshot:
    """An immutable copy of the portfolio for reports and the journal.

    `ts` is the time (ns) of the last fill or funding applied (0 before any). Mappings are
    read-only copies: later fills do not change a snapshot taken earlier.
    """

    ts: int
    balances: Mapping[Key, Decimal]
    positions: Mapping[Key, Position]
    fees: Mapping[Key, Decimal]
    funding: Mapping[Key, Decimal]


class Portfolio:
    """Balances, positions, fees and funding across venues, moved by fills and funding.

    With `allow_negative=False` (the default) a fill, funding or withdrawal that would leave any
    balance it lowers below zero raises `InsufficientFunds` and changes nothing. Set it to True
    where a venue lends (margin accounts) or where every venue fact must be recorded as it comes.
    """

    def __init__(self, registry: InstrumentRegistry, allow_negative: bool = False) -> None:
        self.registry = registry
        self.allow_negative = allow_negative
        self._balances: dict[Key, Decimal] = {}
        self._positions: dict[Key, Position] = {}
        self._fees: dict[Key, Decimal] = {}
        self._funding: dict[Key, Decimal] = {}
        self._ts = 0

    # ----------------------------------------------------------------------------------- changes

    def deposit(self, venue: str, asset: str, amount: Decimal) -> None:
        """Credit `amount` (> 0, units of `asset`) to a venue balance; it carries no cost basis."""
        _require_name("venue", venue)
        _require_name("asset", asset)
        _require_positive("amount", amount)
        with localcontext(_CTX):
            new = self._new_balances(venue, {asset: amount}, "deposit")
        self._balances.update(new)

    def withdraw(self, venue: str, asset: str, amount: Decimal) -> None:
        """Debit `amount` (> 0, units of `asset`) from a venue balance; see `allow_negative`."""
        _require_name("venue", venue)
        _require_name("asset", asset)
        _require_positive("amount", amount)
        with localcontext(_CTX):
            new = self._new_balances(venue, {asset: -amount}, "withdrawal")
        self._balances.update(new)

    def apply_fill(self, fill: Fill) -> Position:
        """Apply one fill (see the module docstring for the rules) and return the updated position.

        Raises `InvalidInput` (unknown instrument, non-positive quantity or price, non-Decimal or
        non-finite amounts, missing fee asset) or `InsufficientFunds`; either leaves the portfolio
        exactly unchanged.
        """
        instrument = self._validate_fill(fill)
        key = (fill.venue, fill.instrument)
        with localcontext(_CTX):
            signed = fill.side.sign * fill.quantity
            position, realized = _trade(self._position_or_flat(key, instrument), signed, fill.price)
            deltas: dict[str, Decimal] = {}
            if isinstance(instrument, Spot):
                _add(deltas, instrument.base, signed)
                value = fill.quantity * fill.price if fill.notional is None else fill.notional
                _add(deltas, instrument.quote, -fill.side.sign * value)
            elif isinstance(instrument, StockPerp):
                # Realized-PnL accounting: only what the fill closed moves cash.
                _add(deltas, instrument.quote, realized)
            else:
                # Premium cash-flow accounting: the long pays the premium, the short receives it.
                _add(deltas, instrument.margin_asset, -signed * fill.price * instrument.contract_size)
            if fill.fee != 0:
                _add(deltas, fill.fee_asset, -fill.fee)
            new_balances = self._new_balances(fill.venue, deltas, f"fill {fill.client_order_id!r}")
            fee_key = (fill.venue, fill.fee_asset)
            new_fee = self._fees.get(fee_key, _ZERO) + fill.fee
        # Commit: plain assignments, nothing below can raise.
        self._balances.update(new_balances)
        self._positions[key] = position
        if fill.fee != 0:
            self._fees[fee_key] = new_fee
        self._ts = fill.ts
        return position

    def apply_funding(self, ts: int, venue: str, instrument: str, amount: Decimal) -> None:
        """Record funding on a derivative: `amount` paid by us in its settlement asset (negative = received).

        The settlement balance (perp: quote, option: margin asset) moves by `-amount` and the
        cumulative funding of `(venue, instrument)` by `+amount`. Atomic like `apply_fill`.
        """
        if not isinstance(ts, int) or isinstance(ts, bool):
            raise InvalidInput("funding.ts", ts, "must be integer nanoseconds")
        _require_name("funding.venue", venue)
        tradable = self.registry.tradable(instrument)
        if not tradable.is_derivative:
            raise InvalidInput("funding.instrument", instrument, "funding applies to derivatives only")
        _require_decimal("funding.amount", amount)
        key = (venue, instrument)
        with localcontext(_CTX):
            new_balances = self._new_balances(venue, {settlement_asset(tradable): -amount}, "funding")
            new_funding = self._funding.get(key, _ZERO) + amount
        self._balances.update(new_balances)
        self._funding[key] = new_funding
        self._ts = ts

    def apply_fee(self, ts: int, venue: str, asset: str, amount: Decimal) -> None:
        """Debit a fee charged without a fill (the gas of a reverted swap): `amount` of `asset` on `venue`.

        Counted in `fees_paid` like a fill's fee (a negative amount is a rebate). Atomic like `apply_fill`.
        """
        if not isinstance(ts, int) or isinstance(ts, bool):
            raise InvalidInput("fee.ts", ts, "must be integer nanoseconds")
        _require_name("fee.venue", venue)
        _require_name("fee.asset", asset)
        _require_decimal("fee.amount", amount)
        key = (venue, asset)
        with localcontext(_CTX):
            new_balances = self._new_balances(venue, {asset: -amount}, "fee")
            new_fee = self._fees.get(key, _ZERO) + amount
        self._balances.update(new_balances)
        self._fees[key] = new_fee
        self._ts = ts

    # ----------------------------------------------------------------------------------- queries

    @property
    def ts(self) -> int:
        """Time (ns) of the last fill or funding applied, 0 before any."""
        return self._ts

    def balance(self, venue: str, asset: str) -> Decimal:
        """Balance of `asset` on `venue` (units of the asset), 0 if never touched."""
        return self._balances.get((venue, asset), _ZERO)

    def balances(self, venue: str | None = None) -> dict[Key, Decimal]:
        """Copy of the balances, `(venue, asset) -> amount`, optionally of one venue."""
        return {k: v for k, v in self._balances.items() if venue is None or k[0] == venue}

    def position(self, venue: str, instrument: str) -> Position:
        """Position on `(venue, instrument)`; a flat one if never traded."""
        return self._position_or_flat((venue, instrument), self.registry.tradable(instrument))

    def positions(self, venue: str | None = None, open_only: bool = False) -> dict[Key, Position]:
        """Copy of the positions (spot included), `(venue, instrument) -> Position`."""
        return {
            k: p
            for k, p in self._positions.items()
            if (venue is None or k[0] == venue) and not (open_only and p.is_flat)
        }

    def fees_paid(self, venue: str, asset: str) -> Decimal:
        """Cumulative fees paid on `venue` in `asset` (rebates net off), units of the asset."""
        return self._fees.get((venue, asset), _ZERO)

    def fees(self) -> dict[Key, Decimal]:
        """Copy of the cumulative fees, `(venue, asset) -> amount`."""
        return dict(self._fees)

    def funding_paid(self, venue: str, instrument: str) -> Decimal:
        """Cumulative funding paid on `(venue, instrument)` in its settlement asset (negative = received)."""
        return self._funding.get((venue, instrument), _ZERO)

    def funding(self) -> dict[Key, Decimal]:
        """Copy of the cumulative funding, `(venue, instrument) -> amount paid`."""
        return dict(self._funding)

    def unrealized_pnl(self, marks: Mapping[str, Decimal], venue: str | None = None) -> dict[Key, Decimal]:
        """Unrealized PnL of every open position, in its settlement asset.

        `marks[instrument id]` is the mark price in the instrument's price units (spot, perp: quote
        per unit; option: premium in margin asset per unit). A missing mark raises `InvalidInput`.
        """
        result: dict[Key, Decimal] = {}
        for key, position in self.positions(venue, open_only=True).items():
            result[key] = position.unrealized_pnl(_price(marks, position.instrument))
        return result

    def equity(
        self, prices: Mapping[str, Decimal], valuation_asset: str, venue: str | None = None
    ) -> Decimal:
        """Net worth in `valuation_asset`: balances, plus perp unrealized PnL, plus options' market value.

        `prices[asset]` is the asset's price in `valuation_asset` (which is worth 1 by definition);
        `prices[instrument id]` is a derivative's mark in its own price units (see `unrealized_pnl`).
        Spot positions are not added: their tokens are already in the balances.
        """
        with localcontext(_CTX):
            total = _ZERO
            for (_, asset), amount in self.balances(venue).items():
                if amount != 0:
                    total += amount * _price(prices, asset, valuation_asset)
            for position in self.positions(venue, open_only=True).values():
                if position.kind is InstrumentKind.SPOT:
                    continue
                mark = _price(prices, position.instrument)
                to_valuation = _price(prices, position.settlement_asset, valuation_asset)
                if position.kind is InstrumentKind.STOCK_PERP:
                    total += position.unrealized_pnl(mark) * to_valuation
                else:
                    # The premium went through cash, so the contract itself is worth its mark.
                    total += position.market_value(mark) * to_valuation
            return total

    def snapshot(self) -> PortfolioSnapshot:
        """An immutable copy of balances, positions, fees and funding for reporting and journaling."""
        return PortfolioSnapshot(
            ts=self._ts,
            balances=MappingProxyType(dict(self._balances)),
            positions=MappingProxyType(dict(self._positions)),
            fees=MappingProxyType(dict(self._fees)),
            funding=MappingProxyType(dict(self._funding)),
        )

    def copy(self) -> Portfolio:
        """An independent copy (same registry), for what-if checks such as `MarginCalculator.can_open`."""
        other = Portfolio(self.registry, self.allow_negative)
        # Positions are frozen, so copying the dicts is a full copy.
        other._balances = dict(self._balances)
        other._positions = dict(self._positions)
        other._fees = dict(self._fees)
        other._funding = dict(self._funding)
        other._ts = self._ts
        return other

    # ----------------------------------------------------------------------------------- helpers

    def _validate_fill(self, fill: Fill) -> Tradable:
        if not isinstance(fill.ts, int) or isinstance(fill.ts, bool):
            raise InvalidInput("fill.ts", fill.ts, "must be integer nanoseconds")
        _require_name("fill.venue", fill.venue)
        instrument = self.registry.tradable(fill.instrument)
        if not isinstance(fill.side, Side):
            raise InvalidInput("fill.side", fill.side, "must be a Side")
        _require_positive("fill.quantity", fill.quantity)
        _require_positive("fill.price", fill.price)
        _require_decimal("fill.fee", fill.fee)
        if fill.fee != 0:
            _require_name("fill.fee_asset", fill.fee_asset)
        if fill.notional is not None:
            _require_positive("fill.notional", fill.notional)
            if not isinstance(instrument, Spot):
                raise InvalidInput("fill.notional", fill.notional, "only spot fills (swaps) carry a notional")
        return instrument

    def _position_or_flat(self, key: Key, instrument: Tradable) -> Position:
        existing = self._positions.get(key)
        if existing is not None:
            return existing
        contract_size = Decimal(1) if isinstance(instrument, Spot) else instrument.contract_size
        return Position(key[0], key[1], instrument.kind, settlement_asset(instrument), contract_size)

    def _new_balances(self, venue: str, deltas: Mapping[str, Decimal], what: str) -> dict[Key, Decimal]:
        """New values of the balances `deltas` touches; raises before anything is committed."""
        new: dict[Key, Decimal] = {}
        for asset, delta in deltas.items():
            if delta == 0:
                continue
            old = self.balance(venue, asset)
            value = old + delta
            if value < 0 and delta < 0 and not self.allow_negative:
                raise InsufficientFunds(
                    f"balance[{venue!r}, {asset!r}]: {what} needs {-delta}, have {old} (would be {value})"
                )
            new[(venue, asset)] = value
        return new


def _add(deltas: dict[str, Decimal], asset: str, amount: Decimal) -> None:
    # One asset may be hit twice (a fee paid in the quote or base asset).
    deltas[asset] = deltas.get(asset, _ZERO) + amount


def _price(prices: Mapping[str, Decimal], key: str, valuation_asset: str | None = None) -> Decimal:
    """Price of `key` from `prices`; the valuation asset is worth 1 by definition."""
    if key == valuation_asset:
        return Decimal(1)
    if key not in prices:
        raise InvalidInput("prices", key, "no price given")
    return _require_decimal(f"prices[{key!r}]", prices[key])
