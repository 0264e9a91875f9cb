"""Instruments: what can be held or traded, described once and shared by every layer.

Identifiers are plain strings (`"TSLAx/USDC"`, `"TSLA-PERP"`, `"BTC-100000-C-7D/TSLAx"`): cheap to
carry on millions of events, and looked up in an `InstrumentRegistry` where details are needed.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from core.errors import InvalidInput

NS_PER_YEAR = 365 * 24 * 3600 * 1_000_000_000
"""Nanoseconds per (365-day) year: the unit conversion between event time and pricing time."""


def _positive(field_name: str, value: Decimal) -> None:
    if not value > 0:
        raise InvalidInput(field_name, value, "must be > 0")


@dataclass(frozen=True, slots=True)
class MultiplierChange:
    """A token's multiplier becomes `multiplier` at `effective_ts` (ns, UTC)."""

    effective_ts: int
    multiplier: Decimal


@dataclass(frozen=True, slots=True)
class MultiplierSchedule:
    """Shares of the underlying per token over time: dividends reinvested grow it, splits jump it.

    `initial` holds before the first change; changes are announced ahead and apply at their
    activation time, which may fall while the stock market is shut.
    """

    initial: Decimal = Decimal(1)
    changes: tuple[MultiplierChange, ...] = ()

    def __post_init__(self) -> None:
        _positive("multiplier.initial", self.initial)
        previous = None
        for i, change in enumerate(self.changes):
            _positive(f"multiplier.changes[{i}].multiplier", change.multiplier)
            if previous is not None and change.effective_ts <= previous:
                raise InvalidInput(
                    f"multiplier.changes[{i}].effective_ts", change.effective_ts, "must be increasing"
                )
            previous = change.effective_ts

    def at(self, ts: int) -> Decimal:
        """Multiplier in force at `ts` (ns): the last change with effective_ts <= ts."""
        i = bisect.bisect_right([c.effective_ts for c in self.changes], ts)
        return self.initial if i == 0 else self.changes[i - 1].multiplier

    def next_change(self, ts: int) -> MultiplierChange | None:
        """The first change strictly after `ts`, if one is scheduled."""
        for change in self.changes:
            if change.effective_ts > ts:
                return change
        return None


class InstrumentKind(StrEnum):
    """Broad family of an instrument, which decides how a fill moves the portfolio."""

    SPOT = "spot"
    TOKENIZED_STOCK = "tokenized_stock"
    STOCK_PERP = "stock_perp"
    PERPETUAL_OPTION = "perpetual_option"
    POOL = "pool"


@dataclass(frozen=True, slots=True)
class Spot:
    """A spot pair: buying `quantity` of `base` costs `quantity * price` of `quote`.

    Also used for the real stock at a broker (`base="TSLA"`, `quote="USD"`).
    """

    id: str
    base: str
    quote: str
    price_increment: Decimal = Decimal("0.00000001")
    size_increment: Decimal = Decimal("0.00000001")
    min_size: Decimal = Decimal(0)
    kind: InstrumentKind = field(default=InstrumentKind.SPOT, init=False)

    @property
    def is_derivative(self) -> bool:
        """Spot fills move balances of both assets."""
        return False


@dataclass(frozen=True, slots=True)
class TokenizedStock:
    """An on-chain token that tracks a US stock: fair value = stock price x multiplier.

    `decimals` converts between base units (integers on chain) and display amounts. `rebasing`
    tokens (e.g. ERC-8056 `uiMultiplier`) show balances multiplied; wrapped ones do not.
    """

    id: str
    underlying: str
    issuer: str
    chain_id: int
    address: str
    decimals: int = 18
    multiplier: MultiplierSchedule = MultiplierSchedule()
    rebasing: bool = False
    kind: InstrumentKind = field(default=InstrumentKind.TOKENIZED_STOCK, init=False)

    def __post_init__(self) -> None:
        if not 0 <= self.decimals <= 36:
            raise InvalidInput(f"{self.id}.decimals", self.decimals, "must be in 0..36")
        if self.chain_id <= 0:
            raise InvalidInput(f"{self.id}.chain_id", self.chain_id, "must be > 0")

    def to_base_units(self, amount: Decimal) -> int:
        """Display amount -> integer base units; refuses amounts finer than one base unit."""
        scaled = amount.scaleb(self.decimals)
        if scaled != scaled.to_integral_value():
            raise InvalidInput(f"{self.id}.amount", amount, f"finer than 1e-{self.decimals}")
        return int(scaled)

    def from_base_units(self, units: int) -> Decimal:
        """Integer base units -> exact display amount."""
        return Decimal(units).scaleb(-self.decimals)

    def fair_value(self, stock_price: Decimal, ts: int) -> Decimal:
        """Fair value of one token at `ts` (ns): stock price x multiplier in force then."""
        return stock_price * self.multiplier.at(ts)


@dataclass(frozen=True, slots=True)
class StockPerp:
    """A linear perpetual future on a stock (e.g. Binance TSLAUSDT), settled in `quote`."""

    id: str
    underlying: str
    quote: str
    contract_size: Decimal = Decimal(1)
    max_leverage: Decimal = Decimal(5)
    funding_interval_ns: int = 4 * 3600 * 1_000_000_000
    min_size: Decimal = Decimal("0.01")
    kind: InstrumentKind = field(default=InstrumentKind.STOCK_PERP, init=False)

    @property
    def is_derivative(self) -> bool:
        """Perp fills open positions; only PnL, fees and funding move cash."""
        return True

    @property
    def base(self) -> str:
        """The underlying, for symmetry with `Spot`."""
        return self.underlying


@dataclass(frozen=True, slots=True)
class PerpetualOption:
    """An everlasting option: the long pays (mark - payoff) per funding period, accrued continuously.

    `funding_period_ns` is the period (8 hours to 7 days on live venues). A coin-margined option's
    premium, margin and PnL are in `margin_asset` (e.g. BTC options margined in TSLA tokens); its
    price in quote currency is divided by the margin asset's price.
    """

    id: str
    underlying: str
    strike: Decimal
    is_call: bool
    funding_period_ns: int
    quote: str
    margin_asset: str
    coin_margined: bool = False
    contract_size: Decimal = Decimal(1)
    kind: InstrumentKind = field(default=InstrumentKind.PERPETUAL_OPTION, init=False)

    def __post_init__(self) -> None:
        _positive(f"{self.id}.strike", self.strike)
        if self.funding_period_ns <= 0:
            raise InvalidInput(f"{self.id}.funding_period_ns", self.funding_period_ns, "must be > 0")

    @property
    def is_derivative(self) -> bool:
        """Option fills open positions; premium is cash paid or received in the margin asset."""
        return True

    @property
    def base(self) -> str:
        """The underlying, for symmetry with `Spot`."""
        return self.underlying

    @property
    def funding_period_years(self) -> float:
        """Funding period in years, the unit the pricing kernels take."""
        return self.funding_period_ns / NS_PER_YEAR


@dataclass(frozen=True, slots=True)
class Pool:
    """An AMM pool: `token0`/`token1` sorted as on chain; `fee` in hundredths of a bip (3000 = 0.3%)."""

    id: str
    venue: str
    chain_id: int
    address: str
    token0: str
    token1: str
    fee: int
    version: int = 3
    tick_spacing: int = 60
    kind: InstrumentKind = field(default=InstrumentKind.POOL, init=False)

    def __post_init__(self) -> None:
        if self.version not in (2, 3):
            raise InvalidInput(f"{self.id}.version", self.version, "must be 2 or 3")
        if not 0 <= self.fee < 1_000_000:
            raise InvalidInput(f"{self.id}.fee", self.fee, "must be in 0..999999 (hundredths of a bip)")


Instrument = Spot | TokenizedStock | StockPerp | PerpetualOption | Pool
"""Every instrument type."""

Tradable = Spot | StockPerp | PerpetualOption
"""Instruments that fills refer to by id."""


class InstrumentRegistry:
    """Instruments by id; refuses duplicates and names unknown ids."""

    def __init__(self, instruments: Iterable[Instrument] = ()) -> None:
        self._by_id: dict[str, Instrument] = {}
        for instrument in instruments:
            self.add(instrument)

    def add(self, instrument: Instrument) -> None:
        """Register an instrument; its id must be new."""
        if instrument.id in self._by_id:
            raise InvalidInput("instrument.id", instrument.id, "already registered")
        self._by_id[instrument.id] = instrument

    def __getitem__(self, instrument_id: str) -> Instrument:
        try:
            return self._by_id[instrument_id]
        except KeyError:
            raise InvalidInput("instrument", instrument_id, "unknown instrument") from None

    def get(self, instrument_id: str) -> Instrument | None:
        """The instrument with this id, or None."""
        return self._by_id.get(instrument_id)

    def tradable(self, instrument_id: str) -> Tradable:
        """The instrument a fill or an order names; refuses tokens and pools."""
        instrument = self[instrument_id]
        if not isinstance(instrument, Spot | StockPerp | PerpetualOption):
            raise InvalidInput("instrument", instrument_id, f"is a {instrument.kind.value}, not tradable")
        return instrument

    def __contains__(self, instrument_id: object) -> bool:
        return instrument_id in self._by_id

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)
