"""A strategy written outside the framework: buy a tokenized stock cheap, sell it back near fair value.

This file is the plugin example of docs/strategies/plugins.md. Nothing in Perpetua names it; a
config does, by any of three routes:

    strategy: examples/custom_strategy.py:TokenMeanReversion     # a file path (or the file alone:
                                                                   # it defines one Strategy class)
    strategy: mypkg.custom_strategy:TokenMeanReversion           # an importable module
    strategy: token_mean_reversion                                # an entry point an installed
                                                                   # package registers:
    # pyproject.toml of that package:
    # [project.entry-points."perpetua.strategies"]
    # token_mean_reversion = "mypkg.custom_strategy:TokenMeanReversion"

`perpetua strategies list` shows it (with the fields of `TokenMeanReversionParams`) once the
package is installed; `perpetua backtest examples/custom_strategy.yaml --out DIR` runs it on the
bundled sample.

The rule. Fair value is the real stock's price x the token's multiplier (`ctx.fair_value`). When
the token's best ask on `venue` is more than `entry_bps` below fair value, buy `order_size` tokens
with an IOC limit at that ask (up to `max_position`). When the best bid comes back to within
`exit_bps` of fair value (or above it), sell the whole position with an IOC limit at the bid. It
never sells short. Without a fresh reference price (`ctx.fair_value` is None) it does nothing.

It reads only `ctx` and events, so it runs unchanged in a backtest, on paper and live.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

from pydantic import Field

from core.context import Context
from core.enums import OrderType, Side, TimeInForce
from core.events import Fill, Quote
from core.orders import OrderRequest
from strategies.base import Strategy, StrategyParams

BPS = Decimal(10_000)


class TokenMeanReversionParams(StrategyParams):
    """Parameters: thresholds in basis points of fair value, sizes in tokens, prices in the quote currency."""

    token: str = Field(default="TSLAx", description="tokenized stock whose fair value is tracked")
    venue: str = Field(description="order-book venue the token trades on")
    instrument: str = Field(description="the token's spot pair on that venue, e.g. TSLAx/USDT")
    entry_bps: Decimal = Field(gt=0, description="buy when the ask is this far below fair value (bps)")
    exit_bps: Decimal = Field(
        default=Decimal(0), ge=0, description="sell when the bid is within this of fair value (bps)"
    )
    order_size: Decimal = Field(gt=0, description="tokens per buy")
    max_position: Decimal = Field(default=Decimal(10), gt=0, description="largest long position, tokens")
    tick: Decimal = Field(default=Decimal("0.01"), gt=0, description="price grid of the pair")


class TokenMeanReversion(Strategy):
    """Buys the token `entry_bps` under fair value and sells it back within `exit_bps` of it."""

    Params = TokenMeanReversionParams
    params: TokenMeanReversionParams
    api_version = (1, 2)  # written against strategy API 1.2; a newer minor version keeps working

    def __init__(self, name: str, params: StrategyParams | None = None) -> None:
        super().__init__(name, params)
        self.position = Decimal(0)  # tokens held, from our own fills

    async def on_quote(self, ctx: Context, event: Quote, **kwargs: Any) -> None:
        """Decide on every top-of-book change of our pair; at most one order in flight."""
        p = self.params
        if event.venue != p.venue or event.instrument != p.instrument or ctx.open_orders(p.venue):
            return
        fair = ctx.fair_value(p.token)
        if fair is None:
            return
        fair_d = Decimal(repr(fair))
        ask, bid = Decimal(repr(event.ask)), Decimal(repr(event.bid))
        if self.position > 0 and bid >= fair_d * (1 - p.exit_bps / BPS):
            await self._send(ctx, Side.SELL, self.position, bid)
        elif ask < fair_d * (1 - p.entry_bps / BPS) and self.position + p.order_size <= p.max_position:
            await self._send(ctx, Side.BUY, p.order_size, ask)

    async def on_fill(self, ctx: Context, event: Fill, **kwargs: Any) -> None:
        """Our position moves only with our own fills."""
        self.position += event.quantity if event.side is Side.BUY else -event.quantity

    async def _send(self, ctx: Context, side: Side, quantity: Decimal, price: Decimal) -> None:
        # On the pair's grid: a buy rounds its limit up (never below the ask), a sell down.
        steps = (price / self.params.tick).to_integral_value(ROUND_UP if side is Side.BUY else ROUND_DOWN)
        request = OrderRequest(
            ctx.new_client_order_id(),
            self.params.venue,
            self.params.instrument,
            side,
            quantity,
            OrderType.LIMIT,
            steps * self.params.tick,
            TimeInForce.IOC,
        )
        order = await ctx.submit(request)
        if order.reason:
            ctx.log.info("%s %s: %s", side.value, quantity, order.reason)
