"""Perpetual-options market maker: Avellaneda-Stoikov quotes around the everlasting price, greek
limits, a delta hedge, margin in stock tokens, funding accounted.

Every `tick_ms` the strategy samples the underlying's price (for the realised-vol estimate) and,
every `requote_ticks` ticks or right after one of its option fills (on a timer at the fill's own
time, so that the market event behind the fill is applied first), re-quotes:

1. Value the option (`strategies.option_quoting.option_value`): prices of the underlying, the
   strike currency and the margin asset from `PriceSource`s (an oracle, a venue's quote mid, a
   token's fair value, or 1 for the valuation currency), none older than `max_price_age_ms`; the
   vol from `vol_source`: `fixed` (`fixed_vol`), `realised` (from the sampled underlying prices,
   `fixed_vol` until `realised_min_samples` returns are in) or `implied` (an oracle publishing the
   vol, e.g. a DVOL index / 100). Cross pairs (a BTC option struck in TSLA tokens) use the cross
   rate and cross vol with `quote_vol` and `correlation`. A missing or stale input cancels both
   quotes.
2. Quote: `avellaneda_stoikov` around the option's price with the inventory q = our position x
   contract size: reservation price s - q gamma sigma_p^2 tau, half spread widened by inventory
   and by vol (sigma_p grows with it). Bid rounded down and ask rounded up to `price_quantum`.
3. Greek limits: a side is quoted only if one more fill of `quote_size` keeps |delta| (options +
   hedge, units of the underlying) <= `max_delta`, |gamma| <= `max_gamma` and |vega| <=
   `max_vega` (`OptionValue` units, times position). A short (the ask) is also quoted only while
   the margin a short of the new size needs, mark + `short_margin_rate` x underlying (margin
   units, the pool's initial rule without the OTM relief), stays within `max_margin_use` of the
   margin posted: our balance of the margin asset at the venue (stock tokens) after `margin_haircut`.
4. Orders: one GTC limit per side on the options venue; a quote is replaced (cancel, then send)
   when its price moves more than `requote_tolerance_bps`, or cancelled when its side is off.
5. Hedge: after every fill and re-quote, the target hedge is -(options delta) x
   `hedge_units_per_underlying` (e.g. 1 / multiplier for a token of the stock); a difference of at
   least `hedge_min_size` is sent as an IOC limit at the touch +- `hedge_slippage_bps` on
   `hedge_venue` / `hedge_instrument` (a perp or a spot pair), rounded down to its size grid.
6. Funding: every `FundingPayment` of the option is added to `funding_paid` (> 0 paid, < 0
   received), beside the premiums and fees of our fills (`premium_flow`, margin units).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, Literal

from pydantic import Field, field_validator

from core.context import Context
from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.events import Fill, FundingPayment, OrderUpdate
from core.instruments import PerpetualOption, Spot, StockPerp
from core.orders import Order, OrderRequest
from strategies.base import Strategy, StrategyParams
from strategies.option_quoting import AsQuote, OptionValue, RealisedVol, avellaneda_stoikov, option_value

MS = 1_000_000
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class PriceSource:
    """Where a price comes from: `oracle:<source>:<instrument>`, `quote:<venue>:<instrument>` (mid),
    `fair_value:<token>`, or `one` (the valuation currency itself)."""

    kind: Literal["oracle", "quote", "fair_value", "one"]
    venue: str = ""
    instrument: str = ""

    @classmethod
    def parse(cls, text: str) -> PriceSource:
        """Parse the config form; raises ValueError naming the text."""
        parts = text.split(":")
        if parts == ["one"]:
            return cls("one")
        if len(parts) == 2 and parts[0] == "fair_value" and parts[1]:
            return cls("fair_value", "", parts[1])
        if len(parts) == 3 and parts[0] in ("oracle", "quote") and parts[1] and parts[2]:
            return cls(parts[0], parts[1], parts[2])  # type: ignore[arg-type]
        raise ValueError(
            f"{text!r} is not 'one', 'fair_value:<token>', 'oracle:<source>:<instrument>' "
            "or 'quote:<venue>:<instrument>'"
        )

    def read(self, ctx: Context, max_age_ns: int) -> float | None:
        """The price now, or None when missing or older than `max_age_ns`."""
        if self.kind == "one":
            return 1.0
        if self.kind == "fair_value":
            return ctx.fair_value(self.instrument)
        if self.kind == "oracle":
            oracle = ctx.oracle(self.venue, self.instrument)
            if oracle is None or ctx.now - oracle.publish_ts > max_age_ns:
                return None
            return oracle.price
        quote = ctx.quote(self.venue, self.instrument)
        if quote is None or ctx.now - quote.ts > max_age_ns or not 0 < quote.bid <= quote.ask:
            return None
        return 0.5 * (quote.bid + quote.ask)


def _source(value: str) -> str:
    PriceSource.parse(value)
    return value


class PerpOptionsMMParams(StrategyParams):
    """Parameters. Prices of assets in the valuation currency (USD); option prices, premiums and
    margin in the option's margin asset; sizes in contracts; times in ms; vols per sqrt(year)."""

    venue: str = Field(description="the perpetual-options venue (the options pool)")
    option: str = Field(description="the perpetual option quoted")
    underlying_price: str = Field(description="price source of the underlying (see PriceSource)")
    quote_price: str = Field(default="one", description="price source of the strike currency")
    margin_price: str = Field(description="price source of the margin asset (a stock token)")
    max_price_age_ms: int = Field(default=120_000, gt=0, description="older prices stop the quotes")
    vol_source: Literal["fixed", "realised", "implied"] = Field(default="realised")
    fixed_vol: Decimal = Field(default=Decimal("0.6"), gt=0, description="vol of `fixed` (and the fallback)")
    implied_vol_feed: str | None = Field(default=None, description="`implied`: oracle:<source>:<instrument>")
    realised_window: int = Field(default=1440, gt=1, description="returns in the realised-vol window")
    realised_min_samples: int = Field(default=60, gt=1, description="returns before the estimate is used")
    quote_vol: Decimal = Field(
        default=Decimal(0), ge=0, description="vol of the strike currency (cross pairs)"
    )
    correlation: Decimal = Field(
        default=Decimal(0), ge=-1, le=1, description="rho(underlying, strike currency)"
    )
    risk_aversion: Decimal = Field(default=Decimal("0.1"), gt=0, description="A-S gamma, per margin unit")
    kappa: Decimal = Field(default=Decimal(2), gt=0, description="A-S order-arrival decay, per margin unit")
    horizon_hours: Decimal = Field(default=Decimal(24), gt=0, description="A-S horizon tau")
    inventory_widening: Decimal = Field(default=Decimal(1), ge=0, description="half spread x (1 + w |q|/max)")
    min_half_spread_bps: Decimal = Field(default=Decimal(20), ge=0, description="of the option's price")
    quote_size: Decimal = Field(gt=0, description="contracts per quote")
    max_inventory: Decimal = Field(gt=0, description="largest position either way, contracts")
    max_delta: Decimal = Field(default=Decimal(1), gt=0, description="units of the underlying")
    max_gamma: Decimal = Field(default=Decimal(1), gt=0, description="delta change per 1% move")
    max_vega: Decimal = Field(default=Decimal(100), gt=0, description="margin units per vol point")
    short_margin_rate: Decimal = Field(
        default=Decimal("0.15"), ge=0, description="x underlying, margin units"
    )
    margin_haircut: Decimal = Field(default=Decimal("0.2"), ge=0, lt=1, description="of the posted tokens")
    max_margin_use: Decimal = Field(default=Decimal("0.5"), gt=0, le=1, description="of posted margin")
    price_quantum: Decimal = Field(default=Decimal("1e-8"), gt=0, description="grid of quote prices")
    requote_tolerance_bps: Decimal = Field(default=Decimal(10), ge=0, description="replace beyond this move")
    tick_ms: int = Field(default=60_000, gt=0, description="price sampling interval")
    requote_ticks: int = Field(default=5, gt=0, description="re-quote every this many ticks")
    hedge_venue: str | None = Field(default=None, description="where the delta is hedged (None: no hedge)")
    hedge_instrument: str | None = Field(default=None, description="a perp or spot pair on the underlying")
    hedge_units_per_underlying: Decimal = Field(
        default=Decimal(1), gt=0, description="1/multiplier for a token"
    )
    hedge_min_size: Decimal = Field(default=Decimal("0.01"), gt=0, description="smaller differences wait")
    hedge_slippage_bps: Decimal = Field(default=Decimal(20), ge=0, description="IOC limit beyond the touch")

    @field_validator("underlying_price", "quote_price", "margin_price")
    @classmethod
    def _check_source(cls, value: str) -> str:
        return _source(value)

    @field_validator("implied_vol_feed")
    @classmethod
    def _check_feed(cls, value: str | None) -> str | None:
        if value is not None and PriceSource.parse(value).kind != "oracle":
            raise ValueError(f"{value!r} must be oracle:<source>:<instrument>")
        return value


class PerpOptionsMM(Strategy):
    """Quotes one perpetual option on the options venue (module docstring)."""

    Params = PerpOptionsMMParams
    params: PerpOptionsMMParams

    def __init__(self, name: str, params: StrategyParams | None = None) -> None:
        super().__init__(name, params)
        p = self.params
        if p.vol_source == "implied" and p.implied_vol_feed is None:
            raise ValueError(f"{name}.params.implied_vol_feed: required with vol_source implied, got None")
        if (p.hedge_venue is None) != (p.hedge_instrument is None):
            raise ValueError(
                f"{name}.params.hedge_instrument: give it with hedge_venue, got {p.hedge_instrument!r}"
            )
        self.sources = (
            PriceSource.parse(p.underlying_price),
            PriceSource.parse(p.quote_price),
            PriceSource.parse(p.margin_price),
        )
        self.vol = RealisedVol(p.tick_ms * MS, p.realised_window, p.realised_min_samples)
        self.bid: Order | None = None
        self.ask: Order | None = None
        self.hedge: Order | None = None
        self.hedge_position = _ZERO
        self.funding_paid = _ZERO
        self.premium_flow = _ZERO
        """Premiums received minus paid, and fees, of our option fills (margin units)."""
        self.last_value: OptionValue | None = None
        self.last_quote: AsQuote | None = None
        self._ticks = 0
        self._requote_due = False

    # -- callbacks -------------------------------------------------------------------------------

    async def on_start(self, ctx: Context, **kwargs: Any) -> None:
        """Start the sampling timer."""
        ctx.schedule(ctx.now + self.params.tick_ms * MS, "tick")

    async def on_timer(self, ctx: Context, name: str, **kwargs: Any) -> None:
        """Sample the underlying; re-quote every `requote_ticks` ticks."""
        if name == "requote":
            self._requote_due = False
            await self.requote(ctx)
            return
        if name != "tick":
            return
        p = self.params
        ctx.schedule(ctx.now + p.tick_ms * MS, "tick")
        price = self.sources[0].read(ctx, p.max_price_age_ms * MS)
        if price is not None:
            self.vol.add(price)
        self._ticks += 1
        if self._ticks % p.requote_ticks == 0:
            await self.requote(ctx)

    async def on_fill(self, ctx: Context, event: Fill, **kwargs: Any) -> None:
        """Book the premium (option) or the hedge; after an option fill, re-quote and re-hedge at once."""
        p = self.params
        signed = event.quantity if event.side is Side.BUY else -event.quantity
        if event.instrument == p.option:
            option = self.option(ctx)
            self.premium_flow -= signed * event.price * option.contract_size
            if event.fee_asset == option.margin_asset:
                self.premium_flow -= event.fee
            if not self._requote_due:
                # Re-quote once the event that filled us is applied: a venue reports a fill before the
                # engine sees the price move that caused it, so quoting now would use the old price.
                self._requote_due = True
                ctx.schedule(ctx.now, "requote")
        elif event.instrument == p.hedge_instrument:
            self.hedge_position += signed

    async def on_order_update(self, ctx: Context, event: OrderUpdate, **kwargs: Any) -> None:
        """Log refusals (a margin or capacity refusal of the pool names its reason)."""
        if event.reason and event.status.is_terminal and event.filled_quantity == 0:
            ctx.log.debug("order %s %s: %s", event.client_order_id, event.status.value, event.reason)

    async def on_funding_payment(self, ctx: Context, event: FundingPayment, **kwargs: Any) -> None:
        """Funding of our option position: > 0 we paid, < 0 we received (already in the portfolio)."""
        if event.venue == self.params.venue and event.instrument == self.params.option:
            self.funding_paid += event.amount

    async def on_stop(self, ctx: Context, **kwargs: Any) -> None:
        """Log the tally."""
        ctx.log.info(
            "position %s, premium flow %s, funding paid %s, hedge %s",
            self.position(ctx),
            self.premium_flow,
            self.funding_paid,
            self.hedge_position,
        )

    # -- state -----------------------------------------------------------------------------------

    def option(self, ctx: Context) -> PerpetualOption:
        """The option quoted."""
        option = ctx.instruments[self.params.option]
        if not isinstance(option, PerpetualOption):
            raise ValueError(f"{self.name}.params.option: not a perpetual option, got {self.params.option!r}")
        return option

    def position(self, ctx: Context) -> Decimal:
        """Our option position, contracts (> 0 long)."""
        return ctx.portfolio.position(self.params.venue, self.params.option).quantity

    def sigma(self, ctx: Context) -> float | None:
        """The underlying's vol per sqrt(year) from `vol_source`."""
        p = self.params
        if p.vol_source == "fixed":
            return float(p.fixed_vol)
        if p.vol_source == "realised":
            estimate = self.vol.value()
            return float(p.fixed_vol) if estimate is None else estimate
        assert p.implied_vol_feed is not None
        return PriceSource.parse(p.implied_vol_feed).read(ctx, p.max_price_age_ms * MS)

    def value(self, ctx: Context) -> OptionValue | None:
        """The option's value and greeks now, or None when an input is missing or stale."""
        p = self.params
        age = p.max_price_age_ms * MS
        prices = [source.read(ctx, age) for source in self.sources]
        sigma = self.sigma(ctx)
        if any(x is None for x in prices) or sigma is None or ctx.pricing is None:
            return None
        s_u, s_q, s_m = (float(x) for x in prices if x is not None)
        return option_value(
            ctx.pricing, self.option(ctx), s_u, s_q, s_m, sigma, float(p.quote_vol), float(p.correlation)
        )

    def quote(self, ctx: Context, value: OptionValue) -> AsQuote:
        """The Avellaneda-Stoikov quote for the current inventory."""
        p = self.params
        cs = self.option(ctx).contract_size
        return avellaneda_stoikov(
            value.price,
            float(self.position(ctx) * cs),
            value.price_vol,
            float(p.risk_aversion),
            float(p.kappa),
            float(p.horizon_hours) / (365 * 24),
            float(p.inventory_widening),
            float(p.max_inventory * cs),
            float(p.min_half_spread_bps),
        )

    def side_allowed(self, ctx: Context, value: OptionValue, side: Side) -> bool:
        """Whether one more fill of `quote_size` on `side` keeps every limit (module docstring, 3)."""
        p = self.params
        option = self.option(ctx)
        cs = float(option.contract_size)
        after = float(self.position(ctx) + (p.quote_size if side is Side.BUY else -p.quote_size))
        if abs(after) > float(p.max_inventory):
            return False
        hedge = float(self.hedge_position / p.hedge_units_per_underlying)
        if abs(after * cs * value.delta + hedge) > float(p.max_delta):
            return False
        if abs(after * cs * value.gamma) > float(p.max_gamma) or abs(after * cs * value.vega) > float(
            p.max_vega
        ):
            return False
        if side is Side.SELL and after < 0:
            need = (
                -after
                * cs
                * (value.price + float(p.short_margin_rate) * self._underlying_in_margin(ctx, value))
            )
            posted = float(ctx.balance(p.venue, option.margin_asset)) * (1 - float(p.margin_haircut))
            if need > float(p.max_margin_use) * posted:
                return False
        return True

    def _underlying_in_margin(self, ctx: Context, value: OptionValue) -> float:
        """The underlying's price in margin units: X x S_quote / S_margin."""
        age = self.params.max_price_age_ms * MS
        s_q = self.sources[1].read(ctx, age) or 0.0
        s_m = self.sources[2].read(ctx, age) or 0.0
        return value.spot * s_q / s_m if s_m > 0 else float("inf")

    # -- actions ---------------------------------------------------------------------------------

    async def requote(self, ctx: Context) -> None:
        """Re-value, re-quote both sides and re-hedge (module docstring, 1-5)."""
        value = self.value(ctx)
        self.last_value = value
        if value is None:
            await self._set(ctx, Side.BUY, None)
            await self._set(ctx, Side.SELL, None)
            return
        quote = self.quote(ctx, value)
        self.last_quote = quote
        q = self.params.price_quantum
        bid = (Decimal(repr(quote.bid)) / q).to_integral_value(ROUND_FLOOR) * q
        ask = (Decimal(repr(quote.ask)) / q).to_integral_value(ROUND_CEILING) * q
        await self._set(ctx, Side.BUY, bid if bid > 0 and self.side_allowed(ctx, value, Side.BUY) else None)
        await self._set(ctx, Side.SELL, ask if self.side_allowed(ctx, value, Side.SELL) else None)
        await self.rehedge(ctx, value)

    async def _set(self, ctx: Context, side: Side, price: Decimal | None) -> None:
        """Keep, replace or cancel the working quote of `side` so that it rests at `price` (None: none)."""
        p = self.params
        current = self.bid if side is Side.BUY else self.ask
        if current is not None and current.status.is_terminal:
            current = None
        if current is not None:
            request = current.request
            assert isinstance(request, OrderRequest) and request.price is not None
            if price is not None and abs(request.price - price) <= price * p.requote_tolerance_bps / 10_000:
                return
            if current.status is OrderStatus.NEW:
                # Not acknowledged yet: its ACCEPTED may still be queued behind the event we handle, and a
                # cancel answered at once would then be followed by it. Re-quote it at the next tick.
                return
            await ctx.cancel(current.client_order_id)
            if not current.status.is_terminal:
                return  # the cancel is on its way: send the new quote at the next re-quote
        order = None
        if price is not None:
            request = OrderRequest(
                ctx.new_client_order_id(),
                p.venue,
                p.option,
                side,
                p.quote_size,
                OrderType.LIMIT,
                price,
                TimeInForce.GTC,
            )
            order = await ctx.submit(request)
        if side is Side.BUY:
            self.bid = order
        else:
            self.ask = order

    def hedge_target(self, ctx: Context, value: OptionValue) -> Decimal:
        """Hedge position wanted: -(options delta) x hedge units per underlying, hedge units."""
        cs = self.option(ctx).contract_size
        delta = self.position(ctx) * cs * Decimal(repr(value.delta))
        return -delta * self.params.hedge_units_per_underlying

    async def rehedge(self, ctx: Context, value: OptionValue) -> None:
        """Send an IOC for the difference between the target and the hedge held (module docstring, 5)."""
        p = self.params
        if p.hedge_venue is None or p.hedge_instrument is None:
            return
        if self.hedge is not None and not self.hedge.status.is_terminal:
            return
        instrument = ctx.instruments[p.hedge_instrument]
        if isinstance(instrument, StockPerp):
            step = instrument.min_size
        elif isinstance(instrument, Spot):
            step = instrument.size_increment
        else:
            return
        diff = self.hedge_target(ctx, value) - self.hedge_position
        quantity = (abs(diff) / step).to_integral_value(ROUND_FLOOR) * step
        if quantity < p.hedge_min_size or quantity <= 0:
            return
        quote = ctx.quote(p.hedge_venue, p.hedge_instrument)
        if quote is None or ctx.now - quote.ts > p.max_price_age_ms * MS:
            return
        side = Side.BUY if diff > 0 else Side.SELL
        slip = p.hedge_slippage_bps / 10_000
        grid = instrument.price_increment if isinstance(instrument, Spot) else Decimal("0.01")
        if side is Side.BUY:
            limit = (Decimal(repr(quote.ask)) * (1 + slip) / grid).to_integral_value(ROUND_FLOOR) * grid
        else:
            limit = (Decimal(repr(quote.bid)) * (1 - slip) / grid).to_integral_value(ROUND_CEILING) * grid
        request = OrderRequest(
            ctx.new_client_order_id(),
            p.hedge_venue,
            p.hedge_instrument,
            side,
            quantity,
            OrderType.LIMIT,
            limit,
            TimeInForce.IOC,
        )
        self.hedge = await ctx.submit(request)
