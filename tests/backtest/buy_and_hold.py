"""A strategy for tests: buy a fixed quantity of one instrument on its first quote, then hold."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from core.enums import OrderType, Side
from core.events import Quote
from core.orders import OrderRequest
from strategies.base import Strategy, StrategyParams


class BuyAndHoldParams(StrategyParams):
    venue: str
    instrument: str
    quantity: Decimal


class BuyAndHold(Strategy):
    """Market-buys `quantity` on the first quote of `instrument` that the venue will fill."""

    Params = BuyAndHoldParams
    params: BuyAndHoldParams

    async def on_quote(self, ctx: Any, event: Quote, **kwargs: Any) -> None:
        p = self.params
        if event.venue != p.venue or event.instrument != p.instrument or ctx.session.value != "regular":
            return
        if any(o.status.value != "rejected" for o in ctx.open_orders()) or ctx.balance(p.venue, "TSLA") > 0:
            return
        request = OrderRequest(
            ctx.new_client_order_id(), p.venue, p.instrument, Side.BUY, p.quantity, OrderType.MARKET
        )
        await ctx.submit(request)
