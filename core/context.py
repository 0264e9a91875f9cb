"""What a strategy sees: the context the trading engine hands to every callback.

A strategy touches the world only through this protocol; `core.engine.TradingEngine` implements it
for backtests, paper trading and live bots alike, so a strategy cannot tell which it runs in.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any, Protocol

from core.calendar import MarketCalendar
from core.enums import Session
from core.events import BookUpdate, OraclePrice, PoolState, Quote
from core.instruments import InstrumentRegistry
from core.orders import Order, Request
from core.portfolio import Portfolio


class Context(Protocol):
    """The strategy's window on the engine. Times are ns since the epoch, UTC."""

    mode: str
    """"backtest", "paper", "live" or "sandbox": for logging only; never branch trading logic on it."""
    instruments: InstrumentRegistry
    portfolio: Portfolio
    calendar: MarketCalendar
    pricing: Any
    """The `pricing` package (Black-Scholes, everlasting options, AMM math), handed in by the runner."""
    log: logging.Logger

    @property
    def now(self) -> int:
        """Current time (simulated in a backtest), ns."""
        ...

    @property
    def session(self) -> Session:
        """The US equity session in force now."""
        ...

    def quote(self, venue: str, instrument: str) -> Quote | None:
        """Latest top of book seen for `instrument` on `venue`, or None before the first."""
        ...

    def book(self, venue: str, instrument: str) -> BookUpdate | None:
        """Current order book (a snapshot with every level, best first), or None."""
        ...

    def pool(self, venue: str, pool: str) -> PoolState | None:
        """Latest state of an AMM pool, or None."""
        ...

    def oracle(self, source: str, instrument: str) -> OraclePrice | None:
        """Latest oracle price, or None."""
        ...

    def reference_price(self, underlying: str) -> float | None:
        """Latest price of the real stock (broker mid or oracle), or None when none is fresh."""
        ...

    def fair_value(self, token: str) -> float | None:
        """Fair value of a tokenized stock now: reference price x multiplier in force, or None."""
        ...

    def open_orders(self, venue: str | None = None) -> list[Order]:
        """Our orders not yet finished, in submission order."""
        ...

    def new_client_order_id(self) -> str:
        """A fresh, deterministic client order id."""
        ...

    async def submit(self, request: Request) -> Order:
        """Send a request through the risk checks to its venue; returns the engine's order record.

        A refused request comes back REJECTED with the reason; it never raises for a risk refusal.
        """
        ...

    async def cancel(self, client_order_id: str) -> None:
        """Ask the venue to cancel an open order."""
        ...

    def schedule(self, at_ns: int, name: str) -> None:
        """Call the strategy's `on_timer(ctx, name)` at `at_ns` (in time order with events)."""
        ...

    def balance(self, venue: str, asset: str) -> Decimal:
        """Our balance of `asset` on `venue`, in display units."""
        ...

    def venue_view(self, venue: str) -> Any:
        """A venue's public read-only state, or None when it publishes none.

        An options pool gives a `core.options_pool_view.OptionsPoolView` (tranches, open interest,
        greeks, our stake). Read it when deciding; it is a snapshot, not kept up to date.
        """
        ...
