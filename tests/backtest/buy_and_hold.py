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


class OptionBuyerParams(StrategyParams):
    pool: str
    option: str
    quantity: Decimal


class OptionBuyer(Strategy):
    """Buys `quantity` of a perpetual option from the pool on the first BTC price, then holds it."""

    Params = OptionBuyerParams
    params: OptionBuyerParams

    def __init__(self, name: str, params: StrategyParams | None = None) -> None:
        super().__init__(name, params)
        self.funding: list[Any] = []
        self.sent = False

    async def on_oracle(self, ctx: Any, event: Any, **kwargs: Any) -> None:
        p = self.params
        if event.instrument == "BTC/USD" and not self.sent:
            self.sent = True
            request = OrderRequest(
                ctx.new_client_order_id(), p.pool, p.option, Side.BUY, p.quantity, OrderType.MARKET
            )
            await ctx.submit(request)

    async def on_funding_payment(self, ctx: Any, event: Any, **kwargs: Any) -> None:
        self.funding.append(event)
