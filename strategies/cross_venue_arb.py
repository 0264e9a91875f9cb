"""Cross-venue token arbitrage: the same token on an AMM pool and an exchange book.

When the pool is cheaper than the book's bids (or dearer than its asks) by more than every cost,
buy where it is cheap and sell where it is rich, sized against both depth curves: the pool's exact
integer curve (`pricing.amm`, see `strategies.arb_sizing`) and the book's visible levels (an L2
book when the venue sends `BookUpdate`s, else the top level of its `Quote`). Costs: the pool fee
and price impact (in the curve), the book taker fee, gas per swap, a safety margin in bps of
notional and a minimum profit.

Leg risk. The two legs are never sent together:

1. Leg 1 goes to `first_leg` ("pool": an exact-output/exact-input swap with a slippage bound;
   "book": an IOC limit at the worst level the plan takes).
2. Leg 2 is sent only once leg 1 is final (filled, or cancelled/expired/rejected), for exactly the
   quantity leg 1 filled (rounded down to the book's size grid when leg 2 is the book). A leg 1 that
   filled nothing ends the trade: no exposure, nothing else is sent. A partial leg 1 is hedged by
   a leg 2 of the filled part when that part alone is still worth more than `min_profit` at the
   market then; otherwise it is unwound (below).
3. Whatever leg 2 leaves open (rejected, reverted, partly filled) is unwound on leg 1's venue,
   the reverse of leg 1, bounded in price and time: every unwind order is priced no worse than
   leg 1's average price -/+ `unwind_max_loss_bps` (book: an IOC limit at that bound; pool: a swap
   whose min-out / max-in is that bound), and is retried on each market event of that venue until
   `unwind_timeout_ms` after the unwind began. What is still open then is kept as inventory
   (`stranded` counts it, a warning is logged) and trading resumes.

Inventory: each direction moves tokens from one venue to the other; sizes are capped by what
each venue holds (quote to pay, tokens to sell), so the strategy stops in a direction once a
side runs dry. Rebalancing between venues (withdrawals, bridges) is outside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from typing import Any, Literal

from pydantic import Field

from core.context import Context
from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.events import BookUpdate, Fill, OrderUpdate, PoolState, Quote
from core.instruments import Pool, Spot, TokenizedStock
from core.money import MONEY
from core.orders import Order, OrderRequest, Request, SwapRequest
from strategies.arb_sizing import (
    BPS,
    ArbCosts,
    ArbPlan,
    BookSide,
    Direction,
    PoolCurve,
    best_arbitrage,
    book_side,
    may_pay,
    round_to,
)
from strategies.base import Strategy, StrategyParams

MS = 1_000_000
_ZERO = Decimal(0)


class CrossVenueArbParams(StrategyParams):
    """Parameters: sizes in tokens, money in the quote currency (USDC and USDT at par), times in ms."""

    token: str = Field(default="TSLAx", description="the token traded on both venues")
    pool_venue: str = Field(description="AMM venue of the pool")
    pool: str = Field(description="pool id (a `pool` instrument) holding the token and a stablecoin")
    book_venue: str = Field(description="order-book venue")
    book_instrument: str = Field(description="the token's spot pair on the book venue")
    quote_decimals: int = Field(default=6, ge=0, le=36, description="decimals of the pool's quote token")
    first_leg: Literal["pool", "book"] = Field(default="pool", description="which leg is sent first")
    book_fee_bps: Decimal = Field(default=Decimal(10), ge=0, description="book taker fee, bps of notional")
    gas_cost: Decimal = Field(default=Decimal("0.5"), ge=0, description="cost of one swap's gas, quote units")
    safety_margin_bps: Decimal = Field(
        default=Decimal(5), ge=0, description="extra edge required, bps of notional"
    )
    min_profit: Decimal = Field(
        default=Decimal(1), ge=0, description="smallest expected profit worth a trade"
    )
    max_trade_size: Decimal = Field(default=Decimal(10), gt=0, description="largest arbitrage, tokens")
    pool_slippage_bps: Decimal = Field(
        default=Decimal(10), ge=0, description="swap bound beyond the quoted amount, bps"
    )
    swap_deadline_ms: int = Field(default=60_000, gt=0, description="a swap not mined by then reverts")
    unwind_max_loss_bps: Decimal = Field(
        default=Decimal(50), ge=0, description="unwind no worse than leg 1's price by this much"
    )
    unwind_timeout_ms: int = Field(default=300_000, gt=0, description="stop unwinding after this long")
    cooldown_ms: int = Field(default=60_000, ge=0, description="pause after a trade ends")
    max_book_age_ms: int = Field(default=90_000, gt=0, description="ignore a book quote older than this")


@dataclass
class ArbTrade:
    """One arbitrage in flight: its plan, its legs' orders and what they filled (signed tokens)."""

    plan: ArbPlan
    leg1_venue: str
    leg1_side: Side
    leg1: Order | None = None
    leg1_id: str = ""
    leg1_qty: Decimal = _ZERO
    leg1_notional: Decimal = _ZERO
    leg2: Order | None = None
    leg2_id: str = ""
    leg2_qty: Decimal = _ZERO
    unwind: Order | None = None
    unwind_ids: list[str] = field(default_factory=list)
    unwind_qty: Decimal = _ZERO
    unwind_deadline: int = 0
    unwind_round: int = 0

    @property
    def exposure(self) -> Decimal:
        """Signed tokens still open: leg 1 + leg 2 + unwinds (buys > 0)."""
        return self.leg1_qty + self.leg2_qty + self.unwind_qty

    @property
    def leg1_price(self) -> Decimal:
        """Average price of leg 1, quote per token."""
        with localcontext(MONEY):
            return self.leg1_notional / abs(self.leg1_qty)


class CrossVenueArb(Strategy):
    """Arbitrage between a pool and a book with the legs sent one after the other (module docstring)."""

    Params = CrossVenueArbParams
    params: CrossVenueArbParams

    def __init__(self, name: str, params: StrategyParams | None = None) -> None:
        super().__init__(name, params)
        self.state: Literal["idle", "leg1", "leg2", "unwind"] = "idle"
        self.trade: ArbTrade | None = None
        self.trades: list[ArbTrade] = []
        self.stranded = _ZERO
        self.cash_flow = _ZERO
        """Quote received minus paid by our fills, with fees and gas paid in a quote asset (at par)."""
        self.token_flow = _ZERO
        """Tokens bought minus sold: what the cash flow bought (0 after clean round trips)."""
        self._ready_at = 0

    # -- market events ---------------------------------------------------------------------------

    async def on_quote(self, ctx: Context, event: Quote, **kwargs: Any) -> None:
        """A book quote: look for an arbitrage, or retry an unwind on the book."""
        p = self.params
        if event.venue == p.book_venue and event.instrument == p.book_instrument:
            await self._on_market(ctx, p.book_venue)

    async def on_book(self, ctx: Context, event: BookUpdate, **kwargs: Any) -> None:
        """Book levels changed: as a quote."""
        p = self.params
        if event.venue == p.book_venue and event.instrument == p.book_instrument:
            await self._on_market(ctx, p.book_venue)

    async def on_pool_state(self, ctx: Context, event: PoolState, **kwargs: Any) -> None:
        """The pool moved: look for an arbitrage, or retry an unwind on the pool."""
        p = self.params
        if event.venue == p.pool_venue and event.pool == p.pool:
            await self._on_market(ctx, p.pool_venue)

    async def _on_market(self, ctx: Context, venue: str) -> None:
        if self.state == "idle" and ctx.now >= self._ready_at:
            await self._look(ctx)
        elif self.state == "unwind" and self.trade is not None and self.trade.leg1_venue == venue:
            await self._unwind_step(ctx)

    # -- own events ------------------------------------------------------------------------------

    async def on_fill(self, ctx: Context, event: Fill, **kwargs: Any) -> None:
        """Count the fill against its leg, then move the trade on."""
        t = self.trade
        if t is None:
            return
        signed = event.quantity if event.side is Side.BUY else -event.quantity
        cid = event.client_order_id
        notional = event.notional if event.notional is not None else event.price * event.quantity
        self.token_flow += signed
        self.cash_flow -= notional if event.side is Side.BUY else -notional
        if event.fee_asset in self._cash_assets(ctx):
            self.cash_flow -= event.fee
        if cid == t.leg1_id:
            t.leg1_qty += signed
            t.leg1_notional += notional
        elif cid == t.leg2_id:
            t.leg2_qty += signed
        elif cid in t.unwind_ids:
            t.unwind_qty += signed
        await self._advance(ctx)

    async def on_order_update(self, ctx: Context, event: OrderUpdate, **kwargs: Any) -> None:
        """A leg changed state (rejected, cancelled, expired): move the trade on."""
        if event.status is OrderStatus.REJECTED:
            ctx.log.info("order %s refused: %s", event.client_order_id, event.reason)
        if event.fee and event.fee_asset in self._cash_assets(ctx):
            self.cash_flow -= event.fee  # gas of a reverted swap
        await self._advance(ctx)

    async def on_stop(self, ctx: Context, **kwargs: Any) -> None:
        """Log the tally: trades, cash flow, tokens bought minus sold, inventory left by unwinds."""
        ctx.log.info(
            "%d arbitrages, cash flow %s, token flow %s, stranded %s",
            len(self.trades),
            self.cash_flow,
            self.token_flow,
            self.stranded,
        )

    async def on_timer(self, ctx: Context, name: str, **kwargs: Any) -> None:
        """The unwind deadline of a trade: keep what is left as inventory."""
        t = self.trade
        if self.state != "unwind" or t is None or name != f"unwind-deadline-{len(self.trades)}":
            return
        if t.unwind is not None and not t.unwind.status.is_terminal:
            return  # the last attempt is in flight; its result ends the trade (deadline passed)
        self._finish(ctx, stranded=True)

    # -- the trade's life ------------------------------------------------------------------------

    def _costs(self) -> ArbCosts:
        p = self.params
        return ArbCosts(p.book_fee_bps, p.gas_cost, p.safety_margin_bps, p.min_profit)

    def _curve(self, ctx: Context) -> PoolCurve | None:
        p = self.params
        state = ctx.pool(p.pool_venue, p.pool)
        pool = ctx.instruments[p.pool]
        if state is None or not isinstance(pool, Pool):
            return None
        if pool.version == 3 and (state.sqrt_price_x96 == 0 or state.liquidity == 0):
            return None
        token = ctx.instruments[p.token]
        decimals = token.decimals if isinstance(token, TokenizedStock) else 18
        return PoolCurve(pool, state, p.token, decimals, p.quote_decimals)

    def _book(self, ctx: Context) -> tuple[BookSide, BookSide] | None:
        """(bids, asks) of the book, from L2 levels or the top of book; None when absent or stale."""
        p = self.params
        book = ctx.book(p.book_venue, p.book_instrument)
        if book is not None:
            if ctx.now - book.ts > p.max_book_age_ms * MS:
                return None
            return book_side(book.bids), book_side(book.asks)
        quote = ctx.quote(p.book_venue, p.book_instrument)
        if quote is None or ctx.now - quote.ts > p.max_book_age_ms * MS:
            return None
        return book_side(((quote.bid, quote.bid_size),)), book_side(((quote.ask, quote.ask_size),))

    def _pair(self, ctx: Context) -> Spot:
        pair = ctx.instruments[self.params.book_instrument]
        assert isinstance(pair, Spot)
        return pair

    def _caps(self, ctx: Context, curve: PoolCurve, direction: Direction, book: BookSide) -> Decimal:
        """Largest size the balances allow in `direction`, tokens (before the search's own checks)."""
        p = self.params
        pair = self._pair(ctx)
        pool = curve.pool
        quote_token = pool.token1 if curve.token_is_0 else pool.token0
        slip = 1 + p.pool_slippage_bps / BPS
        fee = 1 + p.book_fee_bps / BPS
        if direction is Direction.BUY_POOL_SELL_BOOK:
            cap = min(p.max_trade_size, ctx.balance(p.book_venue, pair.base))
            cash = ctx.balance(p.pool_venue, quote_token) / slip
            # Shrink until the pool cost fits the cash (the cost grows with size).
            while cap > 0:
                cost = curve.buy_cost(cap)
                if cost is not None and cost <= cash:
                    break
                cap = round_to(cap / 2, pair.size_increment, up=False)
            return cap
        cap = min(p.max_trade_size, ctx.balance(p.pool_venue, p.token))
        cash = ctx.balance(p.book_venue, pair.quote) / fee
        top = book.levels[-1][0] if book.levels else _ZERO
        if top > 0:
            cap = min(cap, round_to(cash / top, pair.size_increment, up=False))
        return cap

    async def _look(self, ctx: Context) -> None:
        """Size the best arbitrage now and send its first leg."""
        curve = self._curve(ctx)
        sides = self._book(ctx)
        if curve is None or sides is None:
            return
        bids, asks = sides
        pair = self._pair(ctx)
        best: ArbPlan | None = None
        for direction, side in ((Direction.BUY_POOL_SELL_BOOK, bids), (Direction.BUY_BOOK_SELL_POOL, asks)):
            if not may_pay(direction, curve, side, self._costs()):
                continue
            cap = self._caps(ctx, curve, direction, side)
            if cap <= 0:
                continue
            plan = best_arbitrage(direction, curve, side, self._costs(), pair.size_increment, cap)
            if plan is not None and (best is None or plan.profit > best.profit):
                best = plan
        if best is not None:
            await self._start(ctx, best, curve)

    async def _start(self, ctx: Context, plan: ArbPlan, curve: PoolCurve) -> None:
        p = self.params
        buy_on_pool = plan.direction is Direction.BUY_POOL_SELL_BOOK
        if p.first_leg == "pool":
            side = Side.BUY if buy_on_pool else Side.SELL
            trade = ArbTrade(plan, p.pool_venue, side)
            bound = self._bound_units(side, plan.pool_amount, p.pool_slippage_bps)
            request: Request = self._swap(ctx, curve, side, plan.quantity, bound)
        else:
            side = Side.SELL if buy_on_pool else Side.BUY
            trade = ArbTrade(plan, p.book_venue, side)
            request = self._book_order(ctx, side, plan.quantity, plan.book_limit)
        ctx.log.info(
            "arbitrage %s %s tokens, expected profit %s", plan.direction.value, plan.quantity, plan.profit
        )
        self.trade = trade
        self.trades.append(trade)
        self.state = "leg1"
        trade.leg1_id = request.client_order_id
        trade.leg1 = await ctx.submit(request)
        await self._advance(ctx)

    def _swap(self, ctx: Context, curve: PoolCurve, side: Side, quantity: Decimal, bound: int) -> SwapRequest:
        """An exact swap of `quantity` tokens: a buy pays at most `bound`, a sell receives at least it
        (quote base units)."""
        p = self.params
        pool = curve.pool
        quote_token = pool.token1 if curve.token_is_0 else pool.token0
        units = curve.token_units(quantity)
        deadline = ctx.now + p.swap_deadline_ms * MS
        cid = ctx.new_client_order_id()
        if side is Side.BUY:
            return SwapRequest(
                cid, p.pool_venue, pool.id, quote_token, p.token,
                amount_out=units, max_amount_in=bound, deadline_ns=deadline,
            )  # fmt: skip
        return SwapRequest(
            cid, p.pool_venue, pool.id, p.token, quote_token,
            amount_in=units, min_amount_out=bound, deadline_ns=deadline,
        )  # fmt: skip

    def _bound_units(self, side: Side, amount: Decimal, allowance_bps: Decimal) -> int:
        """Quote base units of `amount` widened by `allowance_bps` against us: up for a buy's most
        paid (rounded down), down for a sell's least received (rounded up), so never past the bound."""
        p = self.params
        with localcontext(MONEY):
            if side is Side.BUY:
                return int(
                    (amount * (1 + allowance_bps / BPS))
                    .scaleb(p.quote_decimals)
                    .to_integral_value(ROUND_FLOOR)
                )
            return int(
                (amount * (1 - allowance_bps / BPS)).scaleb(p.quote_decimals).to_integral_value(ROUND_CEILING)
            )

    def _book_order(self, ctx: Context, side: Side, quantity: Decimal, limit: Decimal) -> OrderRequest:
        p = self.params
        return OrderRequest(
            ctx.new_client_order_id(),
            p.book_venue,
            p.book_instrument,
            side,
            quantity,
            OrderType.LIMIT,
            limit,
            TimeInForce.IOC,
        )

    async def _advance(self, ctx: Context) -> None:
        """Move the trade on once its working order is final (idempotent: called on every own event)."""
        t = self.trade
        if t is None:
            return
        if self.state == "leg1":
            if t.leg1 is None or not t.leg1.status.is_terminal:
                return
            if t.leg1_qty == 0:
                self._finish(ctx)
                return
            await self._send_leg2(ctx)
        elif self.state == "leg2":
            if t.leg2 is None or not t.leg2.status.is_terminal:
                return
            if t.exposure == 0 or self._dust(ctx, t.exposure):
                self._finish(ctx)
                return
            self._begin_unwind(ctx)
            await self._unwind_step(ctx)
        elif self.state == "unwind":
            if t.unwind is None or not t.unwind.status.is_terminal:
                return
            if t.exposure == 0 or self._dust(ctx, t.exposure):
                self._finish(ctx)
            elif ctx.now >= t.unwind_deadline:
                self._finish(ctx, stranded=True)

    def _cash_assets(self, ctx: Context) -> tuple[str, str]:
        """The quote assets of the book pair and of the pool (counted at par in the tally)."""
        pool = ctx.instruments[self.params.pool]
        assert isinstance(pool, Pool)
        return self._pair(ctx).quote, pool.token1 if pool.token0 == self.params.token else pool.token0

    def _dust(self, ctx: Context, exposure: Decimal) -> bool:
        """Less than one step of the book's size grid: left as inventory (a pool fill has 18 decimals)."""
        return abs(exposure) < self._pair(ctx).size_increment

    async def _send_leg2(self, ctx: Context) -> None:
        """Hedge what leg 1 filled on the other venue, or unwind it when a partial fill no longer pays."""
        t = self.trade
        assert t is not None
        p = self.params
        pair = self._pair(ctx)
        filled = abs(t.leg1_qty)
        partial = filled < t.plan.quantity
        side = Side.SELL if t.leg1_side is Side.BUY else Side.BUY
        request: Request | None = None
        if t.leg1_venue == p.pool_venue:
            quantity = round_to(filled, pair.size_increment, up=False)
            if quantity > 0:
                request = self._book_order(ctx, side, quantity, t.plan.book_limit)
        else:
            curve = self._curve(ctx)
            if curve is not None:
                quoted = curve.buy_cost(filled) if side is Side.BUY else curve.sell_proceeds(filled)
                if quoted is not None and (not partial or self._still_pays(t, side, filled, quoted)):
                    request = self._swap(
                        ctx, curve, side, filled, self._bound_units(side, quoted, p.pool_slippage_bps)
                    )
        self.state = "leg2"
        if request is None:
            self._begin_unwind(ctx)
            await self._unwind_step(ctx)
            return
        t.leg2_id = request.client_order_id
        t.leg2 = await ctx.submit(request)
        await self._advance(ctx)

    def _still_pays(self, t: ArbTrade, side: Side, filled: Decimal, quoted: Decimal) -> bool:
        """Whether the pool leg for a partial book fill still beats every cost and the minimum profit."""
        p = self.params
        with localcontext(MONEY):
            book = t.leg1_notional
            fee = book * (p.book_fee_bps + p.safety_margin_bps) / BPS
            gross = book - quoted if side is Side.BUY else quoted - book
            return gross - fee - p.gas_cost > p.min_profit

    def _begin_unwind(self, ctx: Context) -> None:
        t = self.trade
        assert t is not None
        self.state = "unwind"
        t.unwind_deadline = ctx.now + self.params.unwind_timeout_ms * MS
        ctx.schedule(t.unwind_deadline, f"unwind-deadline-{len(self.trades)}")
        ctx.log.warning("unwinding %s tokens on %s", t.exposure, t.leg1_venue)

    async def _unwind_step(self, ctx: Context) -> None:
        """Send one bounded unwind order for the open exposure unless one is working or time is up."""
        t = self.trade
        assert t is not None
        if t.unwind is not None and not t.unwind.status.is_terminal:
            return
        if ctx.now >= t.unwind_deadline:
            self._finish(ctx, stranded=True)
            return
        p = self.params
        exposure = t.exposure
        side = Side.SELL if exposure > 0 else Side.BUY
        quantity = abs(exposure)
        loss = p.unwind_max_loss_bps / BPS
        with localcontext(MONEY):
            # Selling back: no lower than entry x (1 - loss); buying back: no higher than entry x (1 + loss).
            bound = t.leg1_price * (1 - loss if side is Side.SELL else 1 + loss)
        request: Request
        if t.leg1_venue == p.book_venue:
            pair = self._pair(ctx)
            quantity = round_to(quantity, pair.size_increment, up=False)
            if quantity <= 0:
                self._finish(ctx)
                return
            limit = round_to(bound, pair.price_increment, up=side is Side.SELL)
            request = self._book_order(ctx, side, quantity, limit)
        else:
            curve = self._curve(ctx)
            if curve is None:
                return
            # The bound is the price limit itself: no slippage allowance on top of it.
            request = self._swap(ctx, curve, side, quantity, self._bound_units(side, quantity * bound, _ZERO))
        t.unwind_round += 1
        t.unwind_ids.append(request.client_order_id)
        t.unwind = await ctx.submit(request)
        await self._advance(ctx)

    def _finish(self, ctx: Context, stranded: bool = False) -> None:
        t = self.trade
        if t is not None and stranded and t.exposure != 0:
            self.stranded += t.exposure
            ctx.log.warning("unwind bound reached: %s tokens kept as inventory", t.exposure)
        self.trade = None
        self.state = "idle"
        self._ready_at = ctx.now + self.params.cooldown_ms * MS
