"""Margin of one venue account: haircut collateral, initial and maintenance requirements, liquidation.

Everything is valued in one valuation currency (e.g. USD). `prices` is the mapping
`Portfolio.equity` takes: `prices[asset]` in valuation units per unit of the asset (the valuation
asset is worth 1), `prices[instrument id]` a derivative's mark in its own price units (perp: quote
per unit; option: premium in margin asset per unit), and for options `prices[underlying]` in
valuation units. Rules:

- Collateral value = sum over the venue's balances of `balance * price * (1 - haircut)`. A
  negative balance is a debt and counts in full (a haircut must never shrink a debt). Every asset
  with a non-zero balance needs a configured haircut: an unknown one raises `InvalidInput`.
- Margin equity = collateral value + perps' unrealized PnL + options' signed market value (a long
  option is worth its mark, a short one is a liability of its mark; premiums already went through
  cash), the last two at full value.
- Perp (`StockPerp`): notional = `|qty| * mark * contract_size` (in quote, then valued); initial =
  notional / `max_leverage`; maintenance = initial * `perp_maintenance_fraction`.
- Short perpetual option, per unit of underlying (the rule Deribit publishes for option sellers):
  initial = mark premium + max(`option_initial_rate` * S - OTM, `option_floor_rate` * S),
  maintenance = mark premium + `option_maintenance_rate` * S, times `|qty| * contract_size`, with S
  the underlying price and OTM = max(K - S, 0) for a call, max(S - K, 0) for a put. A long option
  needs no margin: its premium was paid in full.
- Free margin = equity - initial; margin ratio = maintenance / equity (1 or more means
  liquidation); the account is liquidatable when equity < maintenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import (
    Decimal,
    localcontext,
)
from types import MappingProxyType

from core.enums import Side
from core.errors import InsufficientFunds, InvalidInput
from core.events import Fill
from core.instruments import PerpetualOption, StockPerp, Tradable
from core.money import MONEY
from core.portfolio import Portfolio

# Margin values are estimates, not settled money, but keep the portfolio's precision and traps.
_CTX = MONEY

_ZERO = Decimal(0)
_ONE = Decimal(1)


def _rate(field_name: str, value: object, low: Decimal, high: Decimal, include_low: bool = True) -> None:
    # Config typos (a float, a percentage written as 20) must fail at start, not misprice margin.
    if not isinstance(value, Decimal) or not value.is_finite():
        raise InvalidInput(field_name, value, "must be a finite Decimal")
    above_low = value >= low if include_low else value > low
    if not (above_low and value <= high):
        bracket = "[" if include_low else "("
        raise InvalidInput(field_name, value, f"must be in {bracket}{low}, {high}]")


@dataclass(frozen=True, slots=True)
class MarginPolicy:
    """Haircuts and margin rates of a venue (plain dataclass; config builds it).

    `haircuts[asset]` is the fraction of an asset's value that does not count as collateral, in
    [0, 1] (USDC 0, BTC 0.10, TSLAx 0.20 means 80% of a TSLAx balance counts). Rates are fractions
    of notional or of the underlying price; see the module docstring for how each is used.
    """

    haircuts: Mapping[str, Decimal]
    perp_maintenance_fraction: Decimal = Decimal("0.5")
    option_initial_rate: Decimal = Decimal("0.15")
    option_floor_rate: Decimal = Decimal("0.10")
    option_maintenance_rate: Decimal = Decimal("0.075")
    _frozen_haircuts: Mapping[str, Decimal] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for asset, haircut in self.haircuts.items():
            if not isinstance(asset, str) or not asset:
                raise InvalidInput("haircuts", asset, "asset must be a non-empty string")
            _rate(f"haircuts[{asset!r}]", haircut, _ZERO, _ONE)
        _rate("perp_maintenance_fraction", self.perp_maintenance_fraction, _ZERO, _ONE, include_low=False)
        _rate("option_initial_rate", self.option_initial_rate, _ZERO, _ONE, include_low=False)
        _rate("option_floor_rate", self.option_floor_rate, _ZERO, _ONE, include_low=False)
        _rate("option_maintenance_rate", self.option_maintenance_rate, _ZERO, _ONE, include_low=False)
        # Keeps initial >= maintenance for every short option, whatever the strike.
        if self.option_maintenance_rate > self.option_floor_rate:
            raise InvalidInput(
                "option_maintenance_rate", self.option_maintenance_rate, "must be <= option_floor_rate"
            )
        if self.option_floor_rate > self.option_initial_rate:
            raise InvalidInput("option_floor_rate", self.option_floor_rate, "must be <= option_initial_rate")
        # A private read-only copy: the caller's dict may change later, the policy must not.
        object.__setattr__(self, "_frozen_haircuts", MappingProxyType(dict(self.haircuts)))

    def haircut(self, asset: str) -> Decimal:
        """Haircut of `asset` (fraction in [0, 1]); `InvalidInput` if none is configured."""
        try:
            return self._frozen_haircuts[asset]
        except KeyError:
            raise InvalidInput("haircuts", asset, "no haircut configured for this asset") from None


@dataclass(frozen=True, slots=True)
class MarginRequirement:
    """Initial and maintenance margin of one position, in the valuation currency."""

    initial: Decimal
    maintenance: Decimal


@dataclass(frozen=True, slots=True)
class MarginState:
    """Margin of one venue account, every amount in `valuation_asset`.

    `margin_ratio` = maintenance / equity (0 with no requirement, `Decimal('Infinity')` when a
    requirement meets equity <= 0); `liquidation` is True when equity < maintenance.
    """

    venue: str
    valuation_asset: str
    collateral_value: Decimal
    unrealized_pnl: Decimal
    options_value: Decimal
    equity: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    free_margin: Decimal
    margin_ratio: Decimal
    liquidation: bool


class MarginCalculator:
    """Applies a `MarginPolicy` to a portfolio's venue account, valuing in `valuation_asset`."""

    def __init__(self, policy: MarginPolicy, valuation_asset: str = "USD") -> None:
        if not valuation_asset:
            raise InvalidInput("valuation_asset", valuation_asset, "must be a non-empty string")
        self.policy = policy
        self.valuation_asset = valuation_asset

    def collateral_value(self, portfolio: Portfolio, venue: str, prices: Mapping[str, Decimal]) -> Decimal:
        """Haircut value of the venue's balances, in the valuation currency."""
        with localcontext(_CTX):
            total = _ZERO
            for (_, asset), amount in portfolio.balances(venue).items():
                if amount == 0:
                    continue
                # Checked before the price so an unconfigured asset is named even without a price.
                haircut = self.policy.haircut(asset)
                value = amount * self._price(prices, asset)
                total += value * (_ONE - haircut) if amount > 0 else value
            return total

    def requirement(
        self, instrument: Tradable, quantity: Decimal, prices: Mapping[str, Decimal]
    ) -> MarginRequirement:
        """Initial and maintenance margin of a signed `quantity` of `instrument`, in the valuation currency.

        Spot and long options need none; perps and short options follow the module docstring.
        """
        with localcontext(_CTX):
            if quantity == 0:
                return MarginRequirement(_ZERO, _ZERO)
            if isinstance(instrument, StockPerp):
                mark = self._price(prices, instrument.id)
                notional = (
                    abs(quantity) * mark * instrument.contract_size * self._price(prices, instrument.quote)
                )
                initial = notional / instrument.max_leverage
                return MarginRequirement(initial, initial * self.policy.perp_maintenance_fraction)
            if isinstance(instrument, PerpetualOption) and quantity < 0:
                return self._short_option(instrument, quantity, prices)
            return MarginRequirement(_ZERO, _ZERO)

    def state(self, portfolio: Portfolio, venue: str, prices: Mapping[str, Decimal]) -> MarginState:
        """Full margin picture of one venue account (see `MarginState`)."""
        with localcontext(_CTX):
            collateral = self.collateral_value(portfolio, venue, prices)
            unrealized = options_value = initial = maintenance = _ZERO
            for position in portfolio.positions(venue, open_only=True).values():
                instrument = portfolio.registry.tradable(position.instrument)
                if isinstance(instrument, StockPerp):
                    to_valuation = self._price(prices, instrument.quote)
                    unrealized += position.unrealized_pnl(self._price(prices, instrument.id)) * to_valuation
                elif isinstance(instrument, PerpetualOption):
                    to_valuation = self._price(prices, instrument.margin_asset)
                    options_value += position.market_value(self._price(prices, instrument.id)) * to_valuation
                else:
                    # Spot holdings are balances, already counted as collateral.
                    continue
                need = self.requirement(instrument, position.quantity, prices)
                initial += need.initial
                maintenance += need.maintenance
            equity = collateral + unrealized + options_value
            if maintenance == 0:
                ratio = _ZERO
            elif equity <= 0:
                ratio = Decimal("Infinity")
            else:
                ratio = maintenance / equity
            return MarginState(
                venue=venue,
                valuation_asset=self.valuation_asset,
                collateral_value=collateral,
                unrealized_pnl=unrealized,
                options_value=options_value,
                equity=equity,
                initial_margin=initial,
                maintenance_margin=maintenance,
                free_margin=equity - initial,
                margin_ratio=ratio,
                liquidation=equity < maintenance,
            )

    def can_open(
        self,
        portfolio: Portfolio,
        venue: str,
        instrument: str,
        side: Side,
        quantity: Decimal,
        price: Decimal,
        prices: Mapping[str, Decimal],
        fee: Decimal = _ZERO,
        fee_asset: str = "",
    ) -> bool:
        """Whether a trade of `quantity` at `price` (instrument price units) fits the account's margin.

        The trade is applied to a copy of the portfolio. It fits when afterwards free margin is >= 0,
        or when it lowers the initial requirement (reducing risk is always allowed). A trade the
        portfolio would refuse for lack of funds does not fit; bad input still raises `InvalidInput`.
        `prices` must hold a mark for `instrument`.
        """
        before = self.state(portfolio, venue, prices)
        trial = portfolio.copy()
        try:
            trial.apply_fill(
                Fill(
                    ts=portfolio.ts,
                    venue=venue,
                    instrument=instrument,
                    client_order_id="margin-check",
                    side=side,
                    price=price,
                    quantity=quantity,
                    fee=fee,
                    fee_asset=fee_asset,
                )
            )
        except InsufficientFunds:
            return False
        after = self.state(trial, venue, prices)
        return after.free_margin >= 0 or after.initial_margin < before.initial_margin

    def _short_option(
        self, option: PerpetualOption, quantity: Decimal, prices: Mapping[str, Decimal]
    ) -> MarginRequirement:
        premium = self._price(prices, option.id) * self._price(prices, option.margin_asset)
        spot = self._price(prices, option.underlying)
        strike = option.strike * self._price(prices, option.quote)
        out_of_money = max(strike - spot, _ZERO) if option.is_call else max(spot - strike, _ZERO)
        per_unit_initial = premium + max(
            self.policy.option_initial_rate * spot - out_of_money, self.policy.option_floor_rate * spot
        )
        per_unit_maintenance = premium + self.policy.option_maintenance_rate * spot
        units = abs(quantity) * option.contract_size
        return MarginRequirement(per_unit_initial * units, per_unit_maintenance * units)

    def _price(self, prices: Mapping[str, Decimal], key: str) -> Decimal:
        if key == self.valuation_asset:
            return _ONE
        if key not in prices:
            raise InvalidInput("prices", key, "no price given")
        value = prices[key]
        if not isinstance(value, Decimal) or not value.is_finite():
            raise InvalidInput(f"prices[{key!r}]", value, "must be a finite Decimal")
        return value
