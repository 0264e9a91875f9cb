"""Pre-trade checks from the `risk:` limits: every request passes them before it reaches a venue.

The engine calls `check(request, engine)` for each request; a reason refuses it (the order comes
back REJECTED with that reason, nothing is sent). The kill switch (daily loss, repeated rejects,
stale data) and reset-by-command belong to the bots' risk engine; these are the per-request
limits shared by backtests, paper and live:

- position: |position after the order| <= max_position (derivatives: the venue's position; spot:
  the base balance on that venue), in the instrument's size units;
- notional: quantity x price <= max_notional (limit price, else the venue's last mid);
- price band: a limit order on a tokenized stock's pair may not be priced further than
  `price_band_bps` from fair value (skipped while fair value is unknown);
- order rate: at most `max_order_rate.max_orders_per_window` requests per window (a refused
  request does not use up the window);
- gas price: a swap is refused while its chain's gas price exceeds `max_gas_price_gwei`. The price
  is the request's own `gas_price_wei` when it carries one, else what the `gas_price` provider
  (venue name -> wei, the live runner keeps it current from the chain) returns; a provider that
  knows no price refuses the swap (an unknown cost is not a small one). Without a provider
  (backtests price gas in the simulated venue) swaps are not gas-checked.
Swaps, mints and redeems pass the order-rate check; their size limits are the strategies' own.
Every refusal is logged by the engine with its reason.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from core.enums import OrderType
from core.instruments import Spot, TokenizedStock
from core.orders import OrderRequest, Request, SwapRequest
from core.risk import RiskLimits

if TYPE_CHECKING:
    from core.engine import TradingEngine

MS = 1_000_000
GWEI = 10**9
"""Wei per gwei."""

GasPriceProvider = Callable[[str], int | None]
"""Venue name -> the chain's current gas price in wei (None: unknown)."""


class LimitChecks:
    """The per-request limits of a `RiskLimits` (see the module docstring)."""

    def __init__(self, limits: RiskLimits, gas_price: GasPriceProvider | None = None) -> None:
        self.limits = limits
        self.gas_price = gas_price
        self._sent: deque[int] = deque()
        self._window_ns = limits.max_order_rate.window_ms * MS
        self._per_window = limits.max_order_rate.max_orders_per_window

    def check(self, request: Request, engine: TradingEngine) -> str | None:
        """None to pass `request`, or the reason it is refused."""
        now = engine.clock.now_ns()
        while self._sent and self._sent[0] <= now - self._window_ns:
            self._sent.popleft()
        if len(self._sent) >= self._per_window:
            return (
                f"max_order_rate: {len(self._sent)} requests in the last "
                f"{self.limits.max_order_rate.window_ms} ms, limit {self._per_window}"
            )
        reason: str | None = None
        if isinstance(request, OrderRequest):
            reason = self._order(request, engine)
        elif isinstance(request, SwapRequest):
            reason = self._gas(request)
        if reason is not None:
            return reason
        self._sent.append(now)
        return None

    def _order(self, request: OrderRequest, engine: TradingEngine) -> str | None:
        limits = self.limits.for_instrument(request.instrument)
        instrument = engine.instruments.tradable(request.instrument)
        signed = request.side.sign * request.quantity
        if isinstance(instrument, Spot):
            held = engine.portfolio.balance(request.venue, instrument.base)
        else:
            held = engine.portfolio.position(request.venue, request.instrument).quantity
        after = held + signed
        if limits.max_position is not None and abs(after) > limits.max_position and abs(after) > abs(held):
            return f"max_position: {request.instrument} would be {after}, limit {limits.max_position}"
        price = request.price if request.order_type is OrderType.LIMIT else self._mid(request, engine)
        if price is not None and limits.max_notional is not None:
            notional = request.quantity * price
            if notional > limits.max_notional:
                return f"max_notional: {notional} {self.limits.currency}, limit {limits.max_notional}"
        if request.price is not None and isinstance(instrument, Spot) and limits.price_band_bps is not None:
            token = engine.instruments.get(instrument.base)
            fair = engine.fair_value(token.id) if isinstance(token, TokenizedStock) else None
            if fair:
                # Decimal, so an order exactly at the band passes.
                off_bps = abs(request.price / Decimal(repr(fair)) - 1) * 10_000
                if off_bps > limits.price_band_bps:
                    return (
                        f"price_band_bps: price {request.price} is {off_bps:.0f} bps from fair value "
                        f"{fair:.6g}, limit {limits.price_band_bps}"
                    )
        return None

    def _gas(self, request: SwapRequest) -> str | None:
        limit = self.limits.max_gas_price_gwei
        wei: int | None = getattr(request, "gas_price_wei", None)  # a request may pin the price it pays
        if wei is None:
            if self.gas_price is None:
                return None
            wei = self.gas_price(request.venue)
        if wei is None:
            return f"max_gas_price_gwei: gas price on {request.venue!r} unknown, limit {limit}"
        gwei = Decimal(wei) / GWEI
        if gwei > limit:
            return f"max_gas_price_gwei: gas price {gwei} gwei on {request.venue!r}, limit {limit}"
        return None

    @staticmethod
    def _mid(request: OrderRequest, engine: TradingEngine) -> Decimal | None:
        quote = engine.quotes.get((request.venue, request.instrument))
        return None if quote is None else Decimal(repr(0.5 * (quote.bid + quote.ask)))
