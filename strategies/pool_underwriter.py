"""Options-pool underwriter: an LP of the perpetual-options pool that keeps its risk inside bounds.

It deposits stock tokens (the pool asset, e.g. TSLAx) into the pool's main tranche (which sells
the options and earns premium, fees and funding, and carries their mark-to-market) and its
insurance tranche (which earns a cut of spread and fees and the liquidation penalties, and covers
bad debt first). Every `check_interval_ms` it reads the pool (`ctx.venue_view(venue)`, an
`OptionsPoolView`), books its share of what the pool earned and lost since the last look, and acts:

In this order:

1. Not invested yet (and the pool prices its asset): deposit `deposit` tokens, `main_fraction` of
   them into main and the rest into insurance (all into insurance while main is out of bounds).
2. Drawdown = -PnL / invested > `max_drawdown`: withdraw everything and stop.
3. After `min_history_ms` invested, PnL / invested per year < `min_yield`: withdraw everything, stop.
4. Main out of bounds (utilisation > `max_utilization`; |delta_1pct| / main NAV > `max_delta_1pct`;
   |vega_1pt| / main NAV > `max_vega_1pt`; main NAV <= 0): move all our main shares to insurance.
5. Utilisation < `resume_utilization` and main within bounds, while main holds less than
   `main_fraction` of our stake: move insurance shares back to main, up to `main_fraction`.

A move is a withdrawal (`RedeemRequest` of LP shares) followed, when it is paid, by a deposit of
the tokens received (`MintRequest`) into the other tranche. One request at a time: while one is
open (or a withdrawal waits for the pool's delay) it only books. A refused request (the pool
refuses a withdrawal that would push its utilisation over its own limit) is retried at the next
check.

Units: utilisation is the pool's initial margin requirement / its capital (both tranches' NAV),
both in the valuation currency, a fraction; `delta_1pct` is the pool's NAV change (pool-asset
tokens) for a +1% move of the underlying and `vega_1pt` for +1 vol point, so the bounds are
fractions of the main tranche's NAV per 1% move / per vol point; drawdown and yield are fractions
of the tokens invested (yield per year).

What it tracks (`self.share`, pool-asset tokens): its part of each flow the tranches received,
booked as (our fraction of the tranche's shares at the previous look) x (the flow's change since
then) per tranche, and for the main tranche its part of the change in the liability of open
positions (`mark_to_market`, negative when options the pool sold gained value). The sum equals
(our stake's value - tokens invested) as long as nobody else deposits or withdraws between two
looks (their deposits change our fraction; it is read at every look and after each of our fills).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal, localcontext
from typing import Any

from pydantic import Field, model_validator

from core.context import Context
from core.enums import OrderStatus, Side
from core.events import Fill, OrderUpdate
from core.instruments import NS_PER_YEAR
from core.money import MONEY
from core.options_pool_view import OptionsPoolView, TrancheView
from core.orders import MintRequest, RedeemRequest
from strategies.base import Strategy, StrategyParams

BPS = Decimal(10_000)
MS = 1_000_000
_ZERO = Decimal(0)
BOOKED_FLOWS = ("premium", "fee", "insurance_share", "funding", "penalty", "bad_debt")
"""Ledger flows that are income or loss of a tranche (`lp` flows are deposits and withdrawals)."""


def _show(value: Decimal) -> str:
    """A Decimal without exponent or trailing zeros (400.000 -> 400), for decisions and logs."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


class PoolUnderwriterParams(StrategyParams):
    """Parameters: amounts in pool-asset tokens, bounds as fractions (0.1 = 10%), times in ms."""

    venue: str = Field(default="options_pool", description="the options pool venue")
    pool_asset: str = Field(default="TSLAx", description="the token the pool takes (its LP capital)")
    main_share: str = Field(default="POOL-MAIN-LP", description="LP share id of the main tranche")
    insurance_share: str = Field(default="POOL-INS-LP", description="LP share id of the insurance tranche")
    deposit: Decimal = Field(gt=0, description="tokens to deposit (at most our balance at the pool)")
    main_fraction: Decimal = Field(
        default=Decimal("0.8"), ge=0, le=1, description="share of our stake kept in the main tranche"
    )
    check_interval_ms: int = Field(default=3_600_000, gt=0, description="time between two looks at the pool")
    max_utilization: Decimal = Field(
        default=Decimal("0.5"), gt=0, description="leave main above this requirement / capital"
    )
    resume_utilization: Decimal = Field(
        default=Decimal("0.25"), ge=0, description="return to main below this requirement / capital"
    )
    max_delta_1pct: Decimal = Field(
        default=Decimal("0.01"), gt=0, description="leave main above this |NAV change per 1% move| / main NAV"
    )
    max_vega_1pt: Decimal = Field(
        default=Decimal("0.01"),
        gt=0,
        description="leave main above this |NAV change per vol point| / main NAV",
    )
    max_drawdown: Decimal = Field(
        default=Decimal("0.1"), gt=0, le=1, description="withdraw all when the loss exceeds this of invested"
    )
    min_yield: Decimal | None = Field(
        default=None, description="withdraw all when PnL / invested per year falls below this (None: never)"
    )
    min_history_ms: int = Field(
        default=7 * 24 * 3_600_000, ge=0, description="judge the yield only after this long invested"
    )
    nav_buffer_bps: Decimal = Field(
        default=Decimal(10),
        ge=0,
        lt=BPS,
        description="deposit this much less than the tokens at hand (NAV moves)",
    )

    @model_validator(mode="after")
    def _hysteresis(self) -> PoolUnderwriterParams:
        if self.resume_utilization >= self.max_utilization:
            raise ValueError(
                f"resume_utilization {self.resume_utilization} must be below "
                f"max_utilization {self.max_utilization}"
            )
        if self.main_share == self.insurance_share:
            raise ValueError(f"insurance_share {self.insurance_share!r} must differ from main_share")
        return self


@dataclass(slots=True)
class ShareLedger:
    """Our booked part of each tranche's income and losses (pool-asset tokens), see the module doc."""

    flows: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(BOOKED_FLOWS, _ZERO))
    mark_to_market: Decimal = _ZERO

    @property
    def income(self) -> Decimal:
        """Premium, fees (net of the insurance cut for main), funding and penalties booked."""
        return sum((self.flows[k] for k in BOOKED_FLOWS if k != "bad_debt"), _ZERO)

    @property
    def losses(self) -> Decimal:
        """Bad debt covered plus the mark-to-market of open positions (negative = a loss)."""
        return self.flows["bad_debt"] + self.mark_to_market

    @property
    def total(self) -> Decimal:
        """income + losses: our PnL as booked."""
        return self.income + self.losses


@dataclass(frozen=True, slots=True)
class Decision:
    """One action taken (or refused): `ts` ns, `action`, and why."""

    ts: int
    action: str
    reason: str


class PoolUnderwriter(Strategy):
    """Deposits into the options pool's tranches and moves or withdraws capital on configured bounds."""

    Params = PoolUnderwriterParams
    params: PoolUnderwriterParams

    def __init__(self, name: str, params: StrategyParams | None = None) -> None:
        super().__init__(name, params)
        self.state = "idle"  # idle -> invested -> withdrawing -> withdrawn
        self.share = ShareLedger()
        self.invested = _ZERO  # tokens deposited less tokens withdrawn (net LP contributions)
        self.first_deposit_ns: int | None = None
        self.decisions: list[Decision] = []
        self.last_view: OptionsPoolView | None = None
        self._seen: dict[str, tuple[dict[str, Decimal], Decimal, Decimal]] = {}  # flows, fraction, liability
        self._pending_mints: list[tuple[str, Decimal]] = []  # (share id, tokens) to deposit next
        self._warned = False

    # -- callbacks ---------------------------------------------------------------------------

    async def on_start(self, ctx: Context, **kwargs: Any) -> None:
        """Look at the pool at once, then every `check_interval_ms`."""
        ctx.schedule(ctx.now, "check")

    async def on_timer(self, ctx: Context, name: str, **kwargs: Any) -> None:
        """Book what the pool earned and lost, then decide."""
        if name != "check":
            return
        ctx.schedule(ctx.now + self.params.check_interval_ms * MS, "check")
        view = self._look(ctx)
        if view is None or ctx.open_orders(self.params.venue):
            return
        await self._decide(ctx, view)

    async def on_fill(self, ctx: Context, event: Fill, **kwargs: Any) -> None:
        """Our LP deposit or withdrawal was executed: book it, then send the next leg of a move."""
        p = self.params
        if event.venue != p.venue or event.instrument not in (p.main_share, p.insurance_share):
            return
        tokens = event.notional if event.notional is not None else event.price * event.quantity
        with localcontext(MONEY):
            self.invested += tokens if event.side is Side.BUY else -tokens
        if event.side is Side.BUY and self.first_deposit_ns is None:
            self.first_deposit_ns = event.ts
        self._look(ctx)  # our fraction changed: book up to here at the old one
        if self.state == "withdrawing":
            if not self._our_shares(ctx):
                self.state = "withdrawn"
            return
        if self._pending_mints and event.side is Side.SELL:
            share_id, _ = self._pending_mints.pop(0)
            await self._mint(ctx, share_id, tokens, "the other leg of a move")

    async def on_order_update(self, ctx: Context, event: OrderUpdate, **kwargs: Any) -> None:
        """A refused or cancelled request is logged; the next check decides again."""
        if event.status in (OrderStatus.REJECTED, OrderStatus.CANCELLED):
            self.decisions.append(Decision(event.ts, f"refused {event.client_order_id}", event.reason))
            ctx.log.warning("%s %s: %s", event.client_order_id, event.status.value, event.reason)
            self._pending_mints.clear()

    async def on_stop(self, ctx: Context, **kwargs: Any) -> None:
        """Book up to the end."""
        self._look(ctx)

    # -- risk measures -----------------------------------------------------------------------

    def breaches(self, view: OptionsPoolView) -> list[str]:
        """Which bounds of the main tranche the pool is outside of now (empty: within bounds)."""
        p = self.params
        found = []
        util = view.utilization
        if util is not None and util > p.max_utilization:
            found.append(f"utilization {util:.4f} > {p.max_utilization}")
        nav = view.main.nav
        if view.main.shares > 0 and nav <= 0:
            found.append(f"main NAV {nav} <= 0")
        elif nav > 0:
            delta = abs(Decimal(repr(view.greeks.delta_1pct))) / nav
            vega = abs(Decimal(repr(view.greeks.vega_1pt))) / nav
            if delta > p.max_delta_1pct:
                found.append(f"|delta per 1%| / NAV {delta:.4f} > {p.max_delta_1pct}")
            if vega > p.max_vega_1pt:
                found.append(f"|vega per vol point| / NAV {vega:.4f} > {p.max_vega_1pt}")
        return found

    def pnl(self, view: OptionsPoolView) -> Decimal:
        """Our stake's value in both tranches less the tokens invested (pool-asset tokens)."""
        with localcontext(MONEY):
            return view.main.our_value + view.insurance.our_value - self.invested

    # -- internals ---------------------------------------------------------------------------

    def _look(self, ctx: Context) -> OptionsPoolView | None:
        """Read the pool and book our part of what changed since the last look."""
        view = ctx.venue_view(self.params.venue)
        if not isinstance(view, OptionsPoolView):
            if not self._warned:
                ctx.log.warning("venue %s publishes no options-pool view", self.params.venue)
                self._warned = True
            return None
        with localcontext(MONEY):
            for tranche in (view.main, view.insurance):
                self._book(tranche, view.liability if tranche.share_id == view.main.share_id else _ZERO)
        self.last_view = view
        return view

    def _book(self, tranche: TrancheView, liability: Decimal) -> None:
        seen = self._seen.get(tranche.share_id)
        if seen is not None:
            flows, fraction, last_liability = seen
            if fraction:
                for k in BOOKED_FLOWS:
                    moved = tranche.flows.get(k, _ZERO) - flows.get(k, _ZERO)
                    self.share.flows[k] += fraction * moved
                self.share.mark_to_market -= fraction * (liability - last_liability)
        fraction = tranche.our_shares / tranche.shares if tranche.shares else _ZERO
        self._seen[tranche.share_id] = (dict(tranche.flows), fraction, liability)

    def _our_shares(self, ctx: Context) -> bool:
        p = self.params
        return any(ctx.balance(p.venue, s) > 0 for s in (p.main_share, p.insurance_share))

    async def _decide(self, ctx: Context, view: OptionsPoolView) -> None:
        p = self.params
        if self.state in ("withdrawing", "withdrawn"):
            return
        if view.asset_price is None:
            return  # NAV per share is not yet meaningful: the pool has no price of its asset
        breaches = self.breaches(view)
        if self.state == "idle":
            await self._enter(ctx, view, breaches)
            return
        pnl = self.pnl(view)
        if self.invested > 0:
            drawdown = -pnl / self.invested
            if drawdown > p.max_drawdown:
                await self._withdraw_all(ctx, f"drawdown {drawdown:.4f} > {p.max_drawdown}")
                return
            held_ns = ctx.now - (self.first_deposit_ns or ctx.now)
            if p.min_yield is not None and held_ns >= p.min_history_ms * MS and held_ns > 0:
                annual = pnl / self.invested * NS_PER_YEAR / held_ns
                if annual < p.min_yield:
                    await self._withdraw_all(ctx, f"yield {annual:.4f}/year < {p.min_yield}")
                    return
        main_shares = ctx.balance(p.venue, p.main_share)
        if breaches and main_shares > 0:
            await self._move(ctx, p.main_share, p.insurance_share, main_shares, "; ".join(breaches))
            return
        util = view.utilization
        ours = view.main.our_value + view.insurance.our_value
        if breaches or ours <= 0 or (util is not None and util >= p.resume_utilization):
            return
        shortfall = p.main_fraction * ours - view.main.our_value
        per_share = view.insurance.nav_per_share
        ins_shares = ctx.balance(p.venue, p.insurance_share)
        if shortfall <= 0 or per_share is None or per_share <= 0 or ins_shares <= 0:
            return
        with localcontext(MONEY):
            shares = min(
                ins_shares, (shortfall / per_share).quantize(view.share_quantum, rounding=ROUND_FLOOR)
            )
        # Only a real rebalance (a tenth of a percent of the stake or more), not rounding dust.
        if shares > 0 and shares * per_share >= ours / 1000:
            reason = f"utilization {util if util is not None else 0:.4f} < {p.resume_utilization}"
            await self._move(ctx, p.insurance_share, p.main_share, shares, reason)

    async def _enter(self, ctx: Context, view: OptionsPoolView, breaches: list[str]) -> None:
        p = self.params
        tokens = min(p.deposit, ctx.balance(p.venue, p.pool_asset))
        if tokens <= 0:
            return
        fraction = _ZERO if breaches else p.main_fraction
        main_tokens = (tokens * fraction).quantize(view.token_quantum, ROUND_FLOOR)
        why = "enter: " + ("; ".join(breaches) or f"main_fraction {p.main_fraction}")
        self.state = "invested"
        if main_tokens > 0:
            await self._mint(ctx, p.main_share, main_tokens, why, view)
        if tokens - main_tokens > 0:
            await self._mint(ctx, p.insurance_share, tokens - main_tokens, why, view)

    async def _mint(
        self, ctx: Context, share_id: str, tokens: Decimal, reason: str, view: OptionsPoolView | None = None
    ) -> None:
        p = self.params
        view = view if view is not None else self._look(ctx)
        if view is None:
            return
        tranche = view.tranche(share_id)
        tokens = min(tokens, ctx.balance(p.venue, p.pool_asset))
        with localcontext(MONEY):
            per_share = tranche.nav_per_share if tranche.shares else Decimal(1)
            if per_share is None or per_share <= 0:
                self.decisions.append(Decision(ctx.now, f"skip deposit {share_id}", f"NAV/share {per_share}"))
                return
            budget = tokens * (1 - p.nav_buffer_bps / BPS)
            shares = (budget / per_share).quantize(view.share_quantum, rounding=ROUND_FLOOR)
        if shares <= 0:
            return
        self.decisions.append(Decision(ctx.now, f"deposit {_show(shares)} {share_id}", reason))
        await ctx.submit(MintRequest(ctx.new_client_order_id(), p.venue, share_id, shares, p.pool_asset))

    async def _redeem(self, ctx: Context, share_id: str, shares: Decimal, reason: str) -> None:
        p = self.params
        self.decisions.append(Decision(ctx.now, f"withdraw {_show(shares)} {share_id}", reason))
        await ctx.submit(RedeemRequest(ctx.new_client_order_id(), p.venue, share_id, shares, p.pool_asset))

    async def _move(self, ctx: Context, src: str, dst: str, shares: Decimal, reason: str) -> None:
        self._pending_mints = [(dst, _ZERO)]
        await self._redeem(ctx, src, shares, f"move to {dst}: {reason}")

    async def _withdraw_all(self, ctx: Context, reason: str) -> None:
        p = self.params
        self.state = "withdrawing"
        self._pending_mints.clear()
        for share_id in (p.main_share, p.insurance_share):
            shares = ctx.balance(p.venue, share_id)
            if shares > 0:
                await self._redeem(ctx, share_id, shares, f"exit: {reason}")
