"""Depeg arbitrage: trade a tokenized stock back towards fair value, then flatten the exposure.

Fair value of the token = real stock price x the token's multiplier in force now (`ctx.fair_value`,
which applies the multiplier schedule at its activation time). An oracle (`oracle_source`) is used
only when its publish time is fresh and its market status is not a shut session: as a fallback
when the engine has no fresh reference, and as a cross-check that vetoes trading when it disagrees
with the reference by more than `max_reference_divergence_bps`.

Deciding (on every state change of a watched pool or book, and of the reference price):

1. The value of a token to us is fair value moved by every proportional cost of getting flat
   again: buying the token, we must hedge (sell the stock) and later redeem the token; selling
   it, we hedge (buy the stock) and later mint a replacement. So
   `v_buy = fair x (1 - hedge - redeem_fee - safety)` and `v_sell = fair x (1 + hedge + mint_fee
   + safety)` (bps/1e4 each), where `hedge` depends on the session: broker spread + fee in regular
   hours, perp fee + spread outside them when a perp is configured, else `hold_cost_bps` (a charge
   for carrying the exposure to the open).
2. Against that value the trade size maximising profit comes from `strategies.depeg_sizing`:
   closed form on a v2 pair, exact search over the ticks of a v3 pool (pool fee and price impact are
   in the exact swap math; gas, priced in the quote currency, is a fixed cost per swap and per tick
   crossed), every profitable level of a book (net of the taker fee). Sizes are capped by
   `max_trade_tokens`, the wallet, and, when the exposure cannot be hedged now, by
   `max_unhedged_shares`. A trade is sent when its expected profit exceeds `min_profit` (quote).
3. Flattening, after every fill and on a timer (`check_interval_s`): in regular hours the net
   delta (token x multiplier + shares + perp, in shares) is hedged on the broker with a market
   order and any perp hedge is closed; outside them it is hedged on the stock perpetual if one is
   configured, else held (within `max_unhedged_shares`) and hedged on the broker at the open. In
   regular hours, when the token inventory (all token venues plus the issuer account) leaves
   `inventory_target +- inventory_band`, a `MintRequest` or `RedeemRequest` brings it back.

The Monday open: after a session in which the market was shut for the weekend or a holiday, the
first `open_pause_minutes` of regular hours take no new position and the next
`open_wide_minutes` need `open_extra_bps` more edge. Weekend gaps close there (88-92% of them at
the open, DOMAIN.md; in the sample with a 2-minute half-life): the gap a venue shows in those
minutes is mostly the token catching up with a reference that is itself still finding its price
from wide opening quotes, and a position taken into it is unwound into the same convergence.
Hedging the exposure carried over the weekend is not delayed: that risk is already there.

All cost parameters follow a naming rule (`*_fee_bps`, `*_spread_bps`, `*_cost_bps`,
`gas_price_gwei`) so `backtest.breakeven` can scale them with the venues' own costs.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from fractions import Fraction
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.context import Context
from core.enums import OrderStatus, OrderType, Session, Side, TimeInForce
from core.events import BookUpdate, Fill, MarketStatus, OrderUpdate, PoolState, Quote
from core.instruments import Pool, Spot, StockPerp, TokenizedStock
from core.orders import MintRequest, OrderRequest, RedeemRequest, SwapRequest
from pricing.amm import MAX_TICK, MIN_TICK, AmmError, V3PoolState
from strategies.base import Strategy, StrategyParams
from strategies.depeg_sizing import book_best_trade, v2_best_trade, v3_best_trade

MS = 1_000_000
SECOND = 1000 * MS
MINUTE = 60 * SECOND
BPS = Decimal(10_000)
SHUT_SESSIONS = frozenset({Session.WEEKEND, Session.HOLIDAY})
"""Sessions whose end makes the next regular open a 'Monday open'."""
ORACLE_SHUT = frozenset({Session.WEEKEND, Session.HOLIDAY, Session.CLOSED})
"""Oracle market statuses in which its price is frozen: never traded on."""


class _Leg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PoolLeg(_Leg):
    """A pool the token trades in; gas in units, priced at `gas_price_gwei` x `native_price` (quote)."""

    venue: str = Field(description="AMM venue name")
    pool: str = Field(description="pool instrument id")
    gas_units: int = Field(default=130_000, ge=0, description="gas units of one swap")
    gas_tick_units: int = Field(
        default=20_000, ge=0, description="extra gas units per initialised tick crossed"
    )
    gas_price_gwei: Decimal = Field(default=Decimal(1), ge=0, description="gas price, gwei")
    native_price: Decimal = Field(
        default=Decimal(3000), gt=0, description="native coin (ETH) price, quote currency"
    )
    ticks: tuple[tuple[int, int], ...] = Field(
        default=(),
        description="v3: initialised (tick, liquidity_net); empty = full range at the recorded liquidity",
    )
    slippage_bps: Decimal = Field(default=Decimal(20), ge=0, description="min output below the quote, bps")
    quote_decimals: int = Field(default=6, ge=0, le=36, description="decimals of the pool's quote token")


class BookLeg(_Leg):
    """An order-book venue the token trades on (taker IOC orders)."""

    venue: str = Field(description="exchange venue name")
    instrument: str = Field(description="the token's spot pair there")
    taker_fee_bps: Decimal = Field(default=Decimal(10), ge=0, description="taker fee, bps of notional")


class DepegArbParams(StrategyParams):
    """Parameters; bps are 1e-4 of fair value, sizes in tokens or shares, money in quote currency."""

    token: str = Field(description="the tokenized stock")
    pools: tuple[PoolLeg, ...] = ()
    books: tuple[BookLeg, ...] = ()
    # reference
    oracle_source: str | None = Field(default=None, description="oracle source of the stock price")
    oracle_instrument: str | None = Field(default=None, description="its instrument id (e.g. TSLA/USD)")
    oracle_max_age_ms: int = Field(default=60_000, gt=0, description="oracle fresh while publish age <= this")
    max_reference_divergence_bps: Decimal = Field(default=Decimal(100), gt=0)
    # hedging
    broker_venue: str = Field(description="stock broker venue")
    stock_instrument: str = Field(description="the stock's pair at the broker (e.g. TSLA/USD)")
    broker_spread_bps: Decimal = Field(default=Decimal(2), ge=0, description="spread paid over mid, bps")
    broker_fee_bps: Decimal = Field(default=Decimal(1), ge=0, description="commission + regulatory fees, bps")
    perp_venue: str | None = Field(default=None, description="stock perpetual venue (off-hours hedge)")
    perp_instrument: str | None = None
    perp_fee_bps: Decimal = Field(default=Decimal(5), ge=0, description="perp taker fee, bps")
    perp_spread_bps: Decimal = Field(default=Decimal(5), ge=0, description="perp spread + basis paid, bps")
    hold_cost_bps: Decimal = Field(
        default=Decimal(30), ge=0, description="charge for holding exposure unhedged until the open, bps"
    )
    max_unhedged_shares: Decimal = Field(
        default=Decimal(10), ge=0, description="largest unhedged delta, shares"
    )
    min_hedge_shares: Decimal = Field(default=Decimal("0.01"), gt=0, description="smaller deltas are left")
    max_hedge_shares: Decimal = Field(default=Decimal(20), gt=0, description="largest hedge order, shares")
    # issuer
    issuer_venue: str | None = Field(default=None, description="mint/redeem venue")
    mint_fee_bps: Decimal = Field(default=Decimal(10), ge=0)
    redeem_fee_bps: Decimal = Field(default=Decimal(10), ge=0)
    min_issuer_notional: Decimal = Field(default=Decimal(1000), ge=0, description="issuer minimum, quote")
    inventory_target: Decimal = Field(
        default=Decimal(0), ge=0, description="token inventory aimed at, tokens"
    )
    inventory_band: Decimal = Field(
        default=Decimal(20), gt=0, description="mint/redeem outside target +- band"
    )
    # sizing and safety
    safety_margin_bps: Decimal = Field(default=Decimal(10), ge=0)
    max_trade_tokens: Decimal = Field(default=Decimal(20), gt=0)
    min_profit: Decimal = Field(default=Decimal(1), ge=0, description="smallest expected profit, quote")
    cooldown_ms: int = Field(default=0, ge=0, description="minimum time between two arbitrage trades")
    hedge_retry_ms: int = Field(
        default=1000, ge=0, description="after a refused hedge, no new one to that venue for this long"
    )
    multiplier_blackout_ms: int = Field(
        default=600_000, ge=0, description="no new position this close to a multiplier change"
    )
    # the Monday open
    open_pause_minutes: int = Field(default=5, ge=0, description="no new position after a long-shut open")
    open_wide_minutes: int = Field(default=30, ge=0, description="then this long with a wider threshold")
    open_extra_bps: Decimal = Field(default=Decimal(25), ge=0, description="extra edge needed then")
    check_interval_s: int = Field(default=60, gt=0, description="hedge / inventory check period")


class DepegArb(Strategy):
    """See the module docstring."""

    Params = DepegArbParams
    params: DepegArbParams

    def __init__(self, name: str, params: StrategyParams | None = None) -> None:
        super().__init__(name, params)
        self.token_delta = Decimal(0)  # tokens bought minus sold, since the start
        self.stock_delta = Decimal(0)  # shares
        self.perp_delta = Decimal(0)  # perp contracts x contract size, shares
        self.open_ns: int | None = None  # start of the last regular session after a weekend/holiday
        self._shut_seen = False
        self._last_trade_ns = -(10**30)
        self._hedge_paused_until: dict[str | None, int] = {}  # venue -> ns
        # (venue, pool or instrument) -> the state we last filled against: it still holds what we took
        self._taken: dict[tuple[str, str], object] = {}
        self.decisions: list[tuple[int, str, str, Decimal, float]] = []
        """(ts, venue, side, tokens, expected profit) of each arbitrage trade sent."""

    # -- callbacks ---------------------------------------------------------------------------

    async def on_start(self, ctx: Context, **kwargs: Any) -> None:
        """Start the hedge/inventory timer; a start inside a shut session counts as one."""
        self._shut_seen = ctx.session in SHUT_SESSIONS
        ctx.schedule(ctx.now + self.params.check_interval_s * SECOND, "check")

    async def on_timer(self, ctx: Context, name: str, **kwargs: Any) -> None:
        """Periodic flatten and inventory check."""
        if name == "check":
            await self._flatten(ctx)
            await self._rebalance(ctx)
            ctx.schedule(ctx.now + self.params.check_interval_s * SECOND, "check")

    async def on_market_status(self, ctx: Context, event: MarketStatus, **kwargs: Any) -> None:
        """Track weekend/holiday closures to know a Monday open; hedge at the open."""
        if event.session in SHUT_SESSIONS:
            self._shut_seen = True
        elif event.session is Session.REGULAR:
            if self._shut_seen:
                self.open_ns = event.ts
            self._shut_seen = False
            await self._flatten(ctx)

    async def on_pool_state(self, ctx: Context, event: PoolState, **kwargs: Any) -> None:
        """A watched pool moved: look for a gap there."""
        for leg in self.params.pools:
            if leg.venue == event.venue and leg.pool == event.pool:
                await self._arb_pool(ctx, leg, event)

    async def on_quote(self, ctx: Context, event: Quote, **kwargs: Any) -> None:
        """A watched book's top moved (L1 data): look for a gap there; a broker quote may let us hedge."""
        p = self.params
        if event.venue == p.broker_venue and event.instrument == p.stock_instrument:
            if abs(self.net_delta(ctx)) >= p.min_hedge_shares:
                await self._flatten(ctx)  # e.g. the first price after the open
            await self._rescan(ctx)
            return
        for leg in self.params.books:
            if leg.venue == event.venue and leg.instrument == event.instrument:
                await self._arb_book(ctx, leg, ctx.book(leg.venue, leg.instrument) or _l1_book(event))

    async def _rescan(self, ctx: Context) -> None:
        """The reference moved: every watched pool and book against the new fair value.

        A gap that opened while the reference was stale, or that a stock move opened under a
        still pool, would otherwise wait for the pool or book to move again. A pool or book not
        seen since our last fill there is skipped: it still shows the liquidity we took.
        """
        for leg in self.params.pools:
            state = ctx.pool(leg.venue, leg.pool)
            if state is not None and state is not self._taken.get((leg.venue, leg.pool)):
                await self._arb_pool(ctx, leg, state)
        for book_leg in self.params.books:
            book = self._book_state(ctx, book_leg)
            if book is not None and book is not self._taken.get((book_leg.venue, book_leg.instrument)):
                await self._arb_book(ctx, book_leg, _l1_book(book) if isinstance(book, Quote) else book)

    @staticmethod
    def _book_state(ctx: Context, leg: BookLeg) -> BookUpdate | Quote | None:
        """The latest book of a leg's market, or its latest quote where the venue sends L1 only."""
        return ctx.book(leg.venue, leg.instrument) or ctx.quote(leg.venue, leg.instrument)

    async def on_book(self, ctx: Context, event: BookUpdate, **kwargs: Any) -> None:
        """A watched book changed (L2 data)."""
        for leg in self.params.books:
            if leg.venue == event.venue and leg.instrument == event.instrument:
                book = ctx.book(leg.venue, leg.instrument)
                if book is not None:
                    await self._arb_book(ctx, leg, book)

    async def on_fill(self, ctx: Context, event: Fill, **kwargs: Any) -> None:
        """Book the fill into the deltas, then flatten what it exposed."""
        p = self.params
        for leg in p.pools:
            if leg.venue == event.venue:
                self._taken[(leg.venue, leg.pool)] = ctx.pool(leg.venue, leg.pool)
        for book_leg in p.books:
            if book_leg.venue == event.venue:
                self._taken[(book_leg.venue, book_leg.instrument)] = self._book_state(ctx, book_leg)
        signed = event.quantity if event.side is Side.BUY else -event.quantity
        if event.instrument == p.stock_instrument:
            self.stock_delta += signed
        elif p.perp_instrument is not None and event.instrument == p.perp_instrument:
            perp = ctx.instruments[p.perp_instrument]
            size = perp.contract_size if isinstance(perp, StockPerp) else Decimal(1)
            self.perp_delta += signed * size
        else:
            pair = ctx.instruments[event.instrument]
            if isinstance(pair, Spot) and pair.base == p.token:
                self.token_delta += signed
        await self._flatten(ctx)

    async def on_order_update(self, ctx: Context, event: OrderUpdate, **kwargs: Any) -> None:
        """Log refusals (they carry the reason); a refused hedge waits `hedge_retry_ms` before the next.

        Without the pause a refused hedge would be re-sent on every quote, and the refusals alone
        would trip a kill switch counting them.
        """
        if event.status is OrderStatus.REJECTED:
            ctx.log.info("%s refused: %s", event.client_order_id, event.reason)
            if event.venue in (self.params.broker_venue, self.params.perp_venue):
                self._hedge_paused_until[event.venue] = ctx.now + self.params.hedge_retry_ms * MS

    # -- fair value, thresholds ---------------------------------------------------------------

    def multiplier(self, ctx: Context) -> Decimal:
        """Shares per token in force now."""
        token = ctx.instruments[self.params.token]
        assert isinstance(token, TokenizedStock)
        return token.multiplier.at(ctx.now)

    def fair_value(self, ctx: Context) -> float | None:
        """Fair value (quote per token) from the fresh reference, the fresh oracle, or None."""
        p = self.params
        reference = ctx.fair_value(p.token)
        oracle_fair = None
        if p.oracle_source is not None and p.oracle_instrument is not None:
            oracle = ctx.oracle(p.oracle_source, p.oracle_instrument)
            if (
                oracle is not None
                and ctx.now - oracle.publish_ts <= p.oracle_max_age_ms * MS
                and oracle.market_status not in ORACLE_SHUT
            ):
                oracle_fair = oracle.price * float(self.multiplier(ctx))
        if reference is None:
            return oracle_fair
        if oracle_fair is not None and abs(reference / oracle_fair - 1) * 10_000 > float(
            p.max_reference_divergence_bps
        ):
            return None  # two fresh prices disagree: one of them is wrong
        return reference

    def hedge_mode(self, ctx: Context) -> str:
        """'broker' in regular hours, 'perp' outside them when configured, else 'hold'."""
        if ctx.session is Session.REGULAR:
            return "broker"
        return "perp" if self.params.perp_venue and self.params.perp_instrument else "hold"

    def hedge_cost_bps(self, mode: str) -> Decimal:
        """Proportional cost of the hedge leg in `mode`, bps."""
        p = self.params
        if mode == "broker":
            return p.broker_spread_bps + p.broker_fee_bps
        if mode == "perp":
            return p.perp_fee_bps + p.perp_spread_bps
        return p.hold_cost_bps

    def open_extra_bps(self, ctx: Context) -> Decimal | None:
        """Extra edge needed now for the Monday-open rule; None while new positions are paused."""
        p = self.params
        if self.open_ns is None or ctx.session is not Session.REGULAR:
            return Decimal(0)
        since = ctx.now - self.open_ns
        if since < p.open_pause_minutes * MINUTE:
            return None
        if since < (p.open_pause_minutes + p.open_wide_minutes) * MINUTE:
            return p.open_extra_bps
        return Decimal(0)

    def values(self, ctx: Context) -> tuple[float, float, str] | None:
        """(v_buy, v_sell, hedge mode): a token's worth to us when buying and selling it, or None."""
        p = self.params
        if ctx.now - self._last_trade_ns < p.cooldown_ms * MS:
            return None
        fair = self.fair_value(ctx)
        if fair is None:
            return None
        token = ctx.instruments[p.token]
        assert isinstance(token, TokenizedStock)
        change = token.multiplier.next_change(ctx.now)
        if change is not None and change.effective_ts - ctx.now <= p.multiplier_blackout_ms * MS:
            return None  # venues may not have repriced yet, or reprice early
        extra = self.open_extra_bps(ctx)
        if extra is None:
            return None
        mode = self.hedge_mode(ctx)
        common = self.hedge_cost_bps(mode) + p.safety_margin_bps + extra
        v_buy = fair * (1 - float(common + p.redeem_fee_bps) / 10_000)
        v_sell = fair * (1 + float(common + p.mint_fee_bps) / 10_000)
        return v_buy, v_sell, mode

    def net_delta(self, ctx: Context) -> Decimal:
        """Our exposure to the stock since the start, shares (token x multiplier + shares + perp)."""
        return self.token_delta * self.multiplier(ctx) + self.stock_delta + self.perp_delta

    def room(self, ctx: Context, mode: str, buy: bool) -> Decimal:
        """Most tokens a trade may add in its direction, given the limits and how it can be hedged.

        After the hedge the exposure must stay within `max_unhedged_shares`: a perp hedges any
        size; the broker cannot sell short, so a buy of tokens is hedged only by the shares held
        (pending sales cancel out: they lower the shares held and the delta alike); held exposure
        has no hedge at all.
        """
        p = self.params
        m = self.multiplier(ctx)
        delta = self.net_delta(ctx)
        if mode == "perp":
            free_shares = None
        elif buy:
            hedge = ctx.balance(p.broker_venue, self._stock_asset(ctx)) if mode == "broker" else Decimal(0)
            free_shares = p.max_unhedged_shares + hedge - delta
        else:
            free_shares = None if mode == "broker" else p.max_unhedged_shares + delta
        if free_shares is None:
            return p.max_trade_tokens
        return min(p.max_trade_tokens, max(Decimal(0), free_shares / m))

    # -- arbitrage legs ----------------------------------------------------------------------

    def _busy(self, ctx: Context, venue: str) -> bool:
        return bool(ctx.open_orders(venue))

    async def _arb_pool(self, ctx: Context, leg: PoolLeg, state: PoolState) -> None:
        p = self.params
        if self._busy(ctx, leg.venue):
            return  # a swap of ours is pending: the state we see is not the one it will meet
        values = self.values(ctx)
        if values is None:
            return
        v_buy, v_sell, mode = values
        pool = ctx.instruments[leg.pool]
        if not isinstance(pool, Pool):
            return
        token_is_0 = pool.token0 == p.token
        quote_asset = pool.token1 if token_is_0 else pool.token0
        token = ctx.instruments[p.token]
        assert isinstance(token, TokenizedStock)
        token_dec = token.decimals
        quote_dec = leg.quote_decimals
        scale = Fraction(10**quote_dec, 10**token_dec)  # quote base units per token base unit, per unit price
        gas_quote = Fraction(leg.gas_price_gwei) * Fraction(leg.native_price) / 10**9 * 10**quote_dec
        plans = []
        for buy, value in ((True, v_buy), (False, v_sell)):
            room = self.room(ctx, mode, buy)
            if room <= 0:
                continue
            room_units = int(room.scaleb(token_dec).to_integral_value(ROUND_DOWN))
            price = Fraction(value) * scale  # quote base units per token base unit
            if buy:  # pay quote, receive token; value of one token unit in quote units
                v = price
                gas = gas_quote
                max_in = int(ctx.balance(leg.venue, quote_asset).scaleb(quote_dec) * Decimal("0.99"))
                max_out: int | None = room_units
            else:  # pay token, receive quote; value of one quote unit in token units
                v = 1 / price
                gas = gas_quote / price
                held = int(ctx.balance(leg.venue, p.token).scaleb(token_dec))
                max_in, max_out = min(held, room_units), None
            if max_in <= 0:
                continue
            zero_for_one = token_is_0 != buy  # token0 in when selling token0 or buying token1
            try:
                trade = self._pool_trade(leg, pool, state, zero_for_one, v, gas, max_in, max_out)
            except AmmError as exc:
                ctx.log.info("pool %s: no quote (%s)", leg.pool, exc)
                continue
            if trade is None:
                continue
            profit_quote = float(trade.profit * (1 if buy else price)) / 10**quote_dec
            plans.append((profit_quote, buy, trade))
        if not plans:
            return
        profit, buy, trade = max(plans, key=lambda plan: plan[0])
        if profit < float(p.min_profit):
            return
        keep = 1 - leg.slippage_bps / BPS
        token_in, token_out = (quote_asset, p.token) if buy else (p.token, quote_asset)
        request = SwapRequest(
            ctx.new_client_order_id(),
            leg.venue,
            leg.pool,
            token_in,
            token_out,
            amount_in=trade.amount_in,
            min_amount_out=int(Decimal(trade.amount_out) * keep),
        )
        tokens = Decimal(trade.amount_out if buy else trade.amount_in).scaleb(-token_dec)
        self._sent(ctx, leg.venue, Side.BUY if buy else Side.SELL, tokens, profit)
        await ctx.submit(request)

    @staticmethod
    def _pool_trade(
        leg: PoolLeg,
        pool: Pool,
        state: PoolState,
        zero_for_one: bool,
        v: Fraction,
        gas: Fraction,
        max_in: int,
        max_out: int | None,
    ) -> Any:
        if pool.version == 2:
            reserve_in, reserve_out = (
                (state.reserve0, state.reserve1) if zero_for_one else (state.reserve1, state.reserve0)
            )
            return v2_best_trade(reserve_in, reserve_out, pool.fee, v, gas * leg.gas_units, max_in, max_out)
        if state.sqrt_price_x96 == 0:
            return None
        ticks = leg.ticks or _full_range(pool.tick_spacing, state.liquidity)
        v3 = V3PoolState(
            state.sqrt_price_x96, state.tick, state.liquidity, pool.fee, pool.tick_spacing, ticks
        )
        per_swap, per_tick = gas * leg.gas_units, gas * leg.gas_tick_units
        return v3_best_trade(v3, zero_for_one, v, per_swap, per_tick, max_in, max_out)

    async def _arb_book(self, ctx: Context, leg: BookLeg, book: BookUpdate) -> None:
        p = self.params
        if self._busy(ctx, leg.venue):
            return
        values = self.values(ctx)
        if values is None:
            return
        v_buy, v_sell, mode = values
        pair = ctx.instruments[leg.instrument]
        if not isinstance(pair, Spot):
            return
        step = pair.size_increment
        plans = []
        buy_cash = ctx.balance(leg.venue, pair.quote)
        if book.asks:
            cap = self.room(ctx, mode, True)
            cap = min(cap, buy_cash / Decimal(repr(book.asks[0][0])) * Decimal("0.98"))
            trade = book_best_trade(book.asks, True, v_buy, float(leg.taker_fee_bps), step, cap)
            if trade is not None:
                plans.append((trade, Side.BUY))
        if book.bids:
            cap = min(self.room(ctx, mode, False), ctx.balance(leg.venue, pair.base))
            trade = book_best_trade(book.bids, False, v_sell, float(leg.taker_fee_bps), step, cap)
            if trade is not None:
                plans.append((trade, Side.SELL))
        if not plans:
            return
        trade, side = max(plans, key=lambda plan: plan[0].profit)
        if trade.profit < float(p.min_profit) or trade.quantity < pair.min_size:
            return
        price = Decimal(repr(trade.limit_price))
        request = OrderRequest(
            ctx.new_client_order_id(),
            leg.venue,
            leg.instrument,
            side,
            trade.quantity,
            OrderType.LIMIT,
            price,
            TimeInForce.IOC,
        )
        self._sent(ctx, leg.venue, side, trade.quantity, trade.profit)
        await ctx.submit(request)

    def _sent(self, ctx: Context, venue: str, side: Side, tokens: Decimal, profit: float) -> None:
        self._last_trade_ns = ctx.now
        self.decisions.append((ctx.now, venue, side.value, tokens, profit))

    # -- flattening and inventory -------------------------------------------------------------

    async def _flatten(self, ctx: Context) -> None:
        """Hedge the net delta where the session allows (see the module docstring)."""
        p = self.params
        mode = self.hedge_mode(ctx)
        if mode == "hold":
            return
        token_shares = self.token_delta * self.multiplier(ctx)
        if mode == "broker":
            perp_open = p.perp_venue is not None and abs(self.perp_delta) >= p.min_hedge_shares
            if perp_open and p.perp_venue is not None and not ctx.open_orders(p.perp_venue):
                await self._perp_order(ctx, -self.perp_delta)
            if ctx.open_orders(p.broker_venue):
                return
            # the perp is being closed: the stock must carry the whole hedge
            need = -(token_shares + self.stock_delta)
            await self._broker_order(ctx, need)
            return
        if p.perp_venue is None or ctx.open_orders(p.perp_venue):
            return
        await self._perp_order(ctx, -(token_shares + self.stock_delta + self.perp_delta))

    async def _broker_order(self, ctx: Context, shares: Decimal) -> None:
        p = self.params
        if ctx.now < self._hedge_paused_until.get(p.broker_venue, 0):
            return
        pair = ctx.instruments[p.stock_instrument]
        assert isinstance(pair, Spot)
        if shares < 0:  # sell at most what we hold
            shares = -min(-shares, ctx.balance(p.broker_venue, pair.base))
        shares = max(-p.max_hedge_shares, min(p.max_hedge_shares, shares))  # the rest at the next check
        quantity = (abs(shares) / pair.size_increment).to_integral_value(ROUND_DOWN) * pair.size_increment
        if quantity < max(p.min_hedge_shares, pair.min_size) or ctx.reference_price(pair.base) is None:
            return
        request = OrderRequest(
            ctx.new_client_order_id(),
            p.broker_venue,
            p.stock_instrument,
            Side.BUY if shares > 0 else Side.SELL,
            quantity,
            OrderType.MARKET,
            None,
            TimeInForce.DAY,
        )
        await ctx.submit(request)

    async def _perp_order(self, ctx: Context, shares: Decimal) -> None:
        p = self.params
        assert p.perp_venue is not None and p.perp_instrument is not None
        if ctx.now < self._hedge_paused_until.get(p.perp_venue, 0):
            return
        perp = ctx.instruments[p.perp_instrument]
        assert isinstance(perp, StockPerp)
        step = perp.min_size
        shares = max(-p.max_hedge_shares, min(p.max_hedge_shares, shares))
        contracts = (abs(shares) / perp.contract_size / step).to_integral_value(ROUND_DOWN) * step
        if contracts <= 0 or contracts * perp.contract_size < p.min_hedge_shares:
            return
        request = OrderRequest(
            ctx.new_client_order_id(),
            p.perp_venue,
            p.perp_instrument,
            Side.BUY if shares > 0 else Side.SELL,
            contracts,
            OrderType.MARKET,
            None,
            TimeInForce.IOC,
        )
        await ctx.submit(request)

    def token_inventory(self, ctx: Context) -> Decimal:
        """Tokens held on every token venue and at the issuer."""
        p = self.params
        venues = {leg.venue for leg in p.pools} | {leg.venue for leg in p.books}
        if p.issuer_venue:
            venues.add(p.issuer_venue)
        return sum((ctx.balance(v, p.token) for v in sorted(venues)), Decimal(0))

    async def _rebalance(self, ctx: Context) -> None:
        """Mint or redeem when the token inventory leaves its band (regular hours only)."""
        p = self.params
        if p.issuer_venue is None or ctx.session is not Session.REGULAR or ctx.open_orders(p.issuer_venue):
            return
        fair = ctx.fair_value(p.token)
        if fair is None:
            return
        inventory = self.token_inventory(ctx)
        token = ctx.instruments[p.token]
        assert isinstance(token, TokenizedStock)
        unit = Decimal(1).scaleb(-min(token.decimals, 8))
        fair_d = Decimal(repr(fair))
        if inventory > p.inventory_target + p.inventory_band:
            quantity = min(inventory - p.inventory_target, ctx.balance(p.issuer_venue, p.token))
            quantity = (quantity / unit).to_integral_value(ROUND_DOWN) * unit
            if quantity > 0 and quantity * fair_d >= p.min_issuer_notional:
                await ctx.submit(RedeemRequest(ctx.new_client_order_id(), p.issuer_venue, p.token, quantity))
        elif inventory < p.inventory_target - p.inventory_band:
            cash = ctx.balance(p.issuer_venue, "USD")
            cost = fair_d * (1 + p.mint_fee_bps / BPS) * Decimal("1.01")
            quantity = min(p.inventory_target - inventory, cash / cost)
            quantity = (quantity / unit).to_integral_value(ROUND_DOWN) * unit
            if quantity > 0 and quantity * fair_d >= p.min_issuer_notional:
                await ctx.submit(MintRequest(ctx.new_client_order_id(), p.issuer_venue, p.token, quantity))

    # -- small helpers -----------------------------------------------------------------------

    def _stock_asset(self, ctx: Context) -> str:
        pair = ctx.instruments[self.params.stock_instrument]
        assert isinstance(pair, Spot)
        return pair.base


def _full_range(tick_spacing: int, liquidity: int) -> tuple[tuple[int, int], ...]:
    """Initialised ticks of one full-range position holding `liquidity`."""
    lower = -(-MIN_TICK // tick_spacing) * tick_spacing
    upper = (MAX_TICK // tick_spacing) * tick_spacing
    return ((lower, liquidity), (upper, -liquidity))


def _l1_book(quote: Quote) -> BookUpdate:
    """An L1 quote as a one-level book (venues with L1 data only: the top level is the book)."""
    bids = ((quote.bid, quote.bid_size),)
    asks = ((quote.ask, quote.ask_size),)
    return BookUpdate(quote.ts, quote.venue, quote.instrument, bids, asks)
