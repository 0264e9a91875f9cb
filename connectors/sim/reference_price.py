"""Where a simulated venue reads a reference price (the real stock's price for an issuer).

A price source is a callable returning the latest `PricePoint` (exact `Decimal` price, and the ns
time it was valid at its source) or None. Two implementations:

- `LastPrice`: a venue feeds it the market events it is given (`observe`), keeping the latest of
  one `(venue, instrument)` stream: a `Quote` mid, a `Trade` price or an `OraclePrice`.
- `engine_price`: reads the latest event of one `(venue, instrument)` from the trading engine's
  market state (`TradingEngine.quotes` / `trades` / `oracles`). The replay driver hands each event
  only to the venue named in its field 1, so a venue that prices off another venue's stream (an
  issuer pricing off the broker's quotes) reads it here; the engine holds the same state in a
  backtest, on paper and live, so nothing depends on routing.

Float market-data prices become `Decimal` through their shortest repr (`250.1` -> `Decimal('250.1')`,
not the binary expansion), and a quote's mid is computed in `Decimal`, so it is exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Literal, NamedTuple, Protocol

from core.events import Event, OraclePrice, Quote, Trade

PriceKind = Literal["mid", "last", "oracle"]
"""`mid`: a `Quote`'s (bid + ask) / 2; `last`: a `Trade`'s price; `oracle`: an `OraclePrice`."""


class PricePoint(NamedTuple):
    """A price (quote currency per unit, exact) and `ts`, when it was valid at its source (ns UTC).

    For oracles `ts` is the oracle's `publish_ts`, the time staleness is judged on.
    """

    price: Decimal
    ts: int


PriceSource = Callable[[], PricePoint | None]
"""Returns the latest reference price, or None when there has been none."""


def to_decimal(value: float) -> Decimal | None:
    """A float price as the `Decimal` of its shortest repr; None unless finite and > 0."""
    if not math.isfinite(value) or value <= 0.0:
        return None
    return Decimal(repr(value))


def price_of(event: Event, kind: PriceKind) -> PricePoint | None:
    """The reference price an event carries for `kind`, or None (wrong type, or a bad/crossed price)."""
    if kind == "mid" and type(event) is Quote:
        bid, ask = to_decimal(event.bid), to_decimal(event.ask)
        if bid is None or ask is None or ask < bid:
            return None
        return PricePoint((bid + ask) / 2, event.ts)
    if kind == "last" and type(event) is Trade:
        price = to_decimal(event.price)
        return None if price is None else PricePoint(price, event.ts)
    if kind == "oracle" and type(event) is OraclePrice:
        price = to_decimal(event.price)
        return None if price is None else PricePoint(price, event.publish_ts)
    return None


class LastPrice:
    """The latest price of one `(venue, instrument)` stream among the events it observes.

    Args:
        venue: field 1 of the events to keep (a quote's or trade's venue, an oracle's source).
        instrument: the events' instrument id.
        kind: which event type carries the price (see `PriceKind`).
    """

    def __init__(self, venue: str, instrument: str, kind: PriceKind = "mid") -> None:
        self.venue = venue
        self.instrument = instrument
        self.kind: PriceKind = kind
        self._last: PricePoint | None = None

    def observe(self, event: Event) -> bool:
        """Keep `event`'s price if it belongs to this stream and is valid; True if it was kept."""
        if event[1] != self.venue or getattr(event, "instrument", None) != self.instrument:
            return False
        point = price_of(event, self.kind)
        if point is None:
            return False
        self._last = point
        return True

    def __call__(self) -> PricePoint | None:
        """The latest kept price, or None before the first."""
        return self._last


class MarketState(Protocol):
    """The market state a trading engine keeps (`core.engine.TradingEngine` has these)."""

    @property
    def quotes(self) -> Mapping[tuple[str, str], Quote]:
        """Latest quote per `(venue, instrument)`."""
        ...

    @property
    def trades(self) -> Mapping[tuple[str, str], Trade]:
        """Latest public trade per `(venue, instrument)`."""
        ...

    @property
    def oracles(self) -> Mapping[tuple[str, str], OraclePrice]:
        """Latest oracle price per `(source, instrument)`."""
        ...


def engine_price(state: MarketState, venue: str, instrument: str, kind: PriceKind = "mid") -> PriceSource:
    """A price source reading the latest `(venue, instrument)` event of `kind` from an engine's state."""
    key = (venue, instrument)

    def read() -> PricePoint | None:
        event: Event | None
        if kind == "mid":
            event = state.quotes.get(key)
        elif kind == "last":
            event = state.trades.get(key)
        else:
            event = state.oracles.get(key)
        return None if event is None else price_of(event, kind)

    return read
