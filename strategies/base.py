"""The strategy contract: async callbacks that see the world only through a context.

A strategy is a class deriving from `Strategy` with a pydantic parameter model `Params`. The
engine calls its callbacks; the strategy acts only through `ctx` (see `core.context.Context`), so
the same class runs in a backtest, on paper and live without a line changed.

Callbacks (all async, all take `**kwargs` so that later versions can pass more without breaking
your code):

- `on_start(ctx)`, once before the first event; `on_stop(ctx)`, once after the last.
- `on_event(ctx, event)`: every event the strategy subscribes to. The default implementation
  calls the typed handler for the event's type: `on_quote`, `on_trade`, `on_book`,
  `on_pool_state`, `on_oracle`, `on_funding`, `on_market_status`, `on_order_update`, `on_fill`,
  `on_funding_payment` (funding we paid or received, already applied to the portfolio).
- `on_timer(ctx, name)`: a timer set with `ctx.schedule(at_ns, name)` fired.

Which events wake a strategy: `subscriptions()` returns the event types it wants. By default these
are the types whose handler the class overrides (all types when it overrides `on_event`), so the
engine never builds a coroutine for an event nobody handles.

The fast path: `wake_filters()` returns compiled filters (`core.wake.WakeFilter`) that decide, per
instrument, which quotes wake `on_quote`. A backtest then runs them over whole chunks of recorded
columns and builds events only for the rows that matter (see `core/wake.py` and
docs/writing-a-strategy.md); live and on paper the engine applies the same filters to each quote.

`API_VERSION` is the contract's version: it grows by a minor step when something is added, by a
major step when something is removed or changes meaning. A strategy may set `api_version` to the
version it was written for; the loader refuses one written for a newer major version.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from core.context import Context
from core.events import (
    BookUpdate,
    Event,
    Fill,
    FundingPayment,
    FundingRate,
    MarketStatus,
    OraclePrice,
    OrderUpdate,
    PoolState,
    Quote,
    Trade,
)
from core.wake import WakeFilter

API_VERSION = (1, 3)
"""(major, minor) of the strategy contract."""


class StrategyParams(BaseModel):
    """Base of strategy parameter models: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


HANDLERS: dict[type, str] = {
    Quote: "on_quote",
    Trade: "on_trade",
    BookUpdate: "on_book",
    PoolState: "on_pool_state",
    OraclePrice: "on_oracle",
    FundingRate: "on_funding",
    MarketStatus: "on_market_status",
    OrderUpdate: "on_order_update",
    Fill: "on_fill",
    FundingPayment: "on_funding_payment",
}
"""Typed handler name for each event type."""


class Strategy:
    """Base class of every strategy. Override the callbacks you need; all are no-ops here."""

    Params: ClassVar[type[StrategyParams]] = StrategyParams
    api_version: ClassVar[tuple[int, int]] = API_VERSION

    def __init__(self, name: str, params: StrategyParams | None = None) -> None:
        self.name = name
        self.params = params if params is not None else self.Params()

    def subscriptions(self) -> frozenset[type]:
        """Event types that wake this strategy: those whose handler (or `on_event`) it overrides."""
        cls = type(self)
        if cls.on_event is not Strategy.on_event:
            return frozenset(HANDLERS)
        return frozenset(
            t for t, name in HANDLERS.items() if getattr(cls, name) is not getattr(Strategy, name)
        )

    def wake_filters(self) -> Sequence[WakeFilter]:
        """Compiled filters of the quotes that wake `on_quote` (one per instrument at most); none here."""
        return ()

    def handler(self, event_type: type) -> Callable[[Any, Any], Coroutine[Any, Any, None]]:
        """What the engine calls for `event_type`: `on_event` if overridden, else the typed handler."""
        if type(self).on_event is not Strategy.on_event:
            return self.on_event
        handler: Callable[[Any, Any], Coroutine[Any, Any, None]] = getattr(self, HANDLERS[event_type])
        return handler

    async def on_start(self, ctx: Context, **kwargs: Any) -> None:
        """Called once before the first event."""

    async def on_stop(self, ctx: Context, **kwargs: Any) -> None:
        """Called once after the last event (and on shutdown of a live bot)."""

    async def on_timer(self, ctx: Context, name: str, **kwargs: Any) -> None:
        """A timer scheduled with `ctx.schedule(at_ns, name)` fired at `ctx.now` (ns)."""

    async def on_event(self, ctx: Context, event: Event, **kwargs: Any) -> None:
        """Every subscribed event; by default dispatches to the typed handler."""
        await getattr(self, HANDLERS[type(event)])(ctx, event, **kwargs)

    async def on_quote(self, ctx: Context, event: Quote, **kwargs: Any) -> None:
        """Top of book changed on a venue."""

    async def on_trade(self, ctx: Context, event: Trade, **kwargs: Any) -> None:
        """A public trade printed."""

    async def on_book(self, ctx: Context, event: BookUpdate, **kwargs: Any) -> None:
        """Order-book levels changed."""

    async def on_pool_state(self, ctx: Context, event: PoolState, **kwargs: Any) -> None:
        """An AMM pool's state changed."""

    async def on_oracle(self, ctx: Context, event: OraclePrice, **kwargs: Any) -> None:
        """An oracle published a price."""

    async def on_funding(self, ctx: Context, event: FundingRate, **kwargs: Any) -> None:
        """A perpetual's funding rate was published."""

    async def on_market_status(self, ctx: Context, event: MarketStatus, **kwargs: Any) -> None:
        """The stock market changed session (pre-market, regular, post-market, overnight, ...)."""

    async def on_order_update(self, ctx: Context, event: OrderUpdate, **kwargs: Any) -> None:
        """One of our orders changed state."""

    async def on_fill(self, ctx: Context, event: Fill, **kwargs: Any) -> None:
        """One of our orders (or swaps, mints, redeems) executed, already applied to the portfolio."""

    async def on_funding_payment(self, ctx: Context, event: FundingPayment, **kwargs: Any) -> None:
        """A venue charged (amount > 0) or paid us (amount < 0) funding, already applied to the portfolio."""
