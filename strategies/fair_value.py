"""The simplest strategy of the contract: buy the token below fair value, sell it above.

Fair value = real stock price x the token's multiplier (`ctx.fair_value`). On an order-book venue
it watches the token's quotes and sends IOC limit orders at the touch; on an AMM pool it watches
the pool's state and swaps exact input with a slippage bound. It holds at most `max_position`
tokens either way and trades only while the reference price is fresh (`ctx.fair_value` is None
otherwise), so a frozen weekend price never triggers a trade.

It is the default strategy of config.yaml until the strategies of issue 6 land, and the reference
for writing your own (see docs/writing-a-strategy.md).
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Any

from pydantic import Field

from core.context import Context
from core.enums import OrderType, Side, TimeInForce
from core.events import PoolState, Quote
from core.instruments import Pool
from core.orders import OrderRequest, SwapRequest
from strategies.base import Strategy, StrategyParams

Q96 = 2**96


class FairValueTakerParams(StrategyParams):
    """Parameters; sizes in tokens, thresholds in basis points of fair value."""

    token: str = Field(default="TSLAx", description="tokenized stock whose fair value is tracked")
    venue: str = Field(description="venue to trade on (an exchange or an AMM venue)")
    instrument: str = Field(description="spot pair id on an exchange, or pool id on an AMM venue")
    max_premium_bps: Decimal = Field(gt=0, description="trade when the price is this far from fair value")
    order_size: Decimal = Field(gt=0, description="tokens per trade")
    max_position: Decimal = Field(default=Decimal(10), gt=0, description="largest long or short, tokens")
    max_slippage_bps: Decimal = Field(
        default=Decimal(30), ge=0, description="pool swaps: output bound beyond the pool's fee"
    )
    quote_decimals: int = Field(default=6, ge=0, le=36, description="pool swaps: decimals of the quote token")
    cooldown_ms: int = Field(default=1000, ge=0, description="minimum time between two orders")
    hedge_instrument: str | None = Field(default=None, description="reserved for the hedging strategies")


class FairValueTaker(Strategy):
    """Takes liquidity when the token trades more than `max_premium_bps` away from fair value."""

    Params = FairValueTakerParams
    params: FairValueTakerParams

    def __init__(self, name: str, params: StrategyParams | None = None) -> None:
        super().__init__(name, params)
        self.position = Decimal(0)
        self._last_order_ns = -(10**30)

    async def on_quote(self, ctx: Context, event: Quote, **kwargs: Any) -> None:
        """Trade at the touch when the book is through fair value by more than the threshold."""
        p = self.params
        if event.venue != p.venue or event.instrument != p.instrument or not self._ready(ctx):
            return
        fair = ctx.fair_value(p.token)
        if fair is None:
            return
        band = float(p.max_premium_bps) / 10_000
        size = p.order_size
        if event.ask < fair * (1 - band) and self.position + size <= p.max_position:
            await self._order(ctx, Side.BUY, size, event.ask)
        elif event.bid > fair * (1 + band) and self.position - size >= -p.max_position:
            await self._order(ctx, Side.SELL, size, event.bid)

    async def on_pool_state(self, ctx: Context, event: PoolState, **kwargs: Any) -> None:
        """Swap when the pool's price is through fair value by more than the threshold."""
        p = self.params
        if event.venue != p.venue or event.pool != p.instrument or not self._ready(ctx):
            return
        fair = ctx.fair_value(p.token)
        pool = ctx.instruments[p.instrument]
        if fair is None or not isinstance(pool, Pool) or event.sqrt_price_x96 == 0:
            return
        token_decimals = getattr(ctx.instruments[p.token], "decimals", 18)
        price = self._pool_price(event, pool, token_decimals)
        band = float(p.max_premium_bps) / 10_000
        if price < fair * (1 - band) and self.position + p.order_size <= p.max_position:
            await self._swap(ctx, pool, Side.BUY, price, token_decimals)
        elif price > fair * (1 + band) and self.position - p.order_size >= -p.max_position:
            await self._swap(ctx, pool, Side.SELL, price, token_decimals)

    async def on_fill(self, ctx: Context, event: Any, **kwargs: Any) -> None:
        """Track our token position from our own fills."""
        self.position += event.quantity if event.side is Side.BUY else -event.quantity

    def _ready(self, ctx: Context) -> bool:
        return ctx.now - self._last_order_ns >= self.params.cooldown_ms * 1_000_000

    def _pool_price(self, event: PoolState, pool: Pool, token_decimals: int) -> float:
        """Quote per token from the pool's sqrt price (token0 per token1 inverted when needed)."""
        raw = (event.sqrt_price_x96 / Q96) ** 2  # token1 base units per token0 base unit
        if pool.token0 == self.params.token:
            return raw * 10.0 ** (token_decimals - self.params.quote_decimals)
        return 10.0 ** (token_decimals - self.params.quote_decimals) / raw

    async def _order(self, ctx: Context, side: Side, size: Decimal, price: float) -> None:
        self._last_order_ns = ctx.now
        request = OrderRequest(
            ctx.new_client_order_id(),
            self.params.venue,
            self.params.instrument,
            side,
            size,
            OrderType.LIMIT,
            Decimal(repr(price)),
            TimeInForce.IOC,
        )
        await ctx.submit(request)

    async def _swap(self, ctx: Context, pool: Pool, side: Side, price: float, token_decimals: int) -> None:
        p = self.params
        self._last_order_ns = ctx.now
        quote_token = pool.token1 if pool.token0 == p.token else pool.token0
        # The pool's fee comes off the output before any slippage: bound the output net of both.
        keep = 1 - pool.fee / 1_000_000 - float(p.max_slippage_bps) / 10_000
        size_units = int(p.order_size.scaleb(token_decimals).to_integral_value(ROUND_DOWN))
        quote_units = int(float(p.order_size) * price * 10**p.quote_decimals)
        if side is Side.BUY:
            token_in, token_out, amount_in, min_out = (
                quote_token,
                p.token,
                quote_units,
                int(size_units * keep),
            )
        else:
            token_in, token_out, amount_in, min_out = (
                p.token,
                quote_token,
                size_units,
                int(quote_units * keep),
            )
        request = SwapRequest(
            ctx.new_client_order_id(),
            p.venue,
            pool.id,
            token_in,
            token_out,
            amount_in=amount_in,
            min_amount_out=min_out,
        )
        await ctx.submit(request)
