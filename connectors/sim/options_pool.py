"""The simulated perpetual-options pool: it sells everlasting options and is every trader's counterparty.

Capital. A main pool and an insurance pool (tranches), funded by liquidity providers who deposit
the pool asset (a stock token, e.g. TSLAx) for LP shares ("POOL-MAIN-LP", "POOL-INS-LP"). Shares
are minted and burned at the tranche's NAV per share, marked to market (`options_pool_ledger`):
NAV(main) = tokens held - L, NAV(insurance) = tokens held, with L the value of every open position
at its mark (premiums, fees and funding the pool received are in its tokens). An empty tranche
mints one share per token (and any value it already holds goes to those shares).

Prices. Options are marked with `everlasting_price` on the cross rate of underlying and strike
currency, converted into the pool asset (`options_pool_market`). The pool quotes mark +- spread
(ask rounded up, bid down, to `price_quantum`) and charges `fee_bps` of the premium (rounded up
to `token_quantum`). The main pool earns the spread and the fee; `insurance_fraction` of them
(rounded down) passes at once to the insurance pool. Prices and vols come from the `Quote` /
`OraclePrice` events of the configured feeds, delivered to `on_market`. Routing: the replay
driver hands an event only to the venue named in its field 1, so either the feeds are stamped
with the pool's own name (the pool's index oracle, e.g. `OraclePrice(source="options_pool",
instrument="BTC/USD")`) or the runner also delivers the events whose `(venue, instrument)` is in
`price_keys()` to `on_market`.

Funding (exact, left-point rule). The long pays (mark - payoff) per funding period, accrued
continuously: at every accrual time t_k (each relevant market event, each wake-up, each request
processed, and at least every `accrual_interval_ns` while positions are open) each position pays,
for [t_(k-1), t_k], at the marks in force during that interval (marks only change at events, so
this is the exact integral of the piecewise-constant rate):

    amount = q * contract_size * (mark - payoff) * (t_k - t_(k-1)) / funding_period_ns

rounded half-even to `token_quantum`, moved from the account to the main pool (a negative amount
is paid by the pool: shorts receive, and longs receive when the mark is below the payoff). The
same rounded amount leaves one party and reaches the other, so funding conserves tokens exactly.
Funding may drive a balance below zero: a debt that liquidation settles.

Margin (`core.margin` rules, valued in `valuation_asset`): equity = balance x S_m x (1 - haircut)
(a negative balance counts in full) + sum q x contract_size x mark x S_m; requirements from
`MarginCalculator.requirement` (short options: mark + rate x S; longs need none). A trade must
leave the balance >= 0 and, unless it only reduces positions, equity >= initial. After every
market move and funding accrual an account with equity < maintenance (strictly: equality is safe)
is liquidated whole: every position is closed at its mark (no spread, no fee) against the main
pool; if the balance is then negative the deficit is covered by the insurance pool up to its
tokens, then by the main pool (socialised to main LPs); otherwise a penalty of
`liquidation_penalty` x sum |q| x contract_size x (underlying price in pool-asset units), rounded
down and capped at the balance left, goes to the insurance pool.

Capacity. A trade that raises the pool's own requirement (initial margin of its net short
positions, the same rule) is refused if that requirement would exceed `max_utilization` x
(NAV(main) + NAV(insurance)) x S_m; an LP withdrawal is refused if it would, and if the tranche
does not hold the tokens to pay.

Requests (our account, `own_account`, default "self"):

- `OrderRequest(instrument=<option id>, side, quantity=contracts, MARKET | LIMIT price=premium
  limit per unit in the pool asset)`, time in force GTC (a non-marketable limit rests and fills
  when the quote reaches it), IOC or FOK (expire when not marketable on arrival); `reduce_only`
  honoured; `post_only` and DAY refused. Fills are all-or-nothing (the pool quotes any size).
- `MintRequest(token=<LP share id>, quantity=shares, pay_asset=<pool asset>)`: costs
  shares x NAV/share rounded up; `RedeemRequest(token=<LP share id>, quantity=shares,
  receive_asset=<pool asset>)`: pays shares x NAV/share rounded down, after
  `withdrawal_delay_ns` at the NAV of that time (the shares are locked meanwhile).

Order life: `submit` checks the request's form and returns NEW (or REJECTED with the field and
value named); the request arrives `latency_ns` later (at once, inside `submit`, only when the
latency is 0 and `same_event_fills` is set), where it is REJECTED (no price, margin, balance,
capacity) or ACCEPTED and then filled by a `Fill`, left resting, EXPIRED (IOC/FOK not
marketable) or CANCELLED (a resting order no longer fundable, a withdrawal that cannot be paid).

Events for our account: `Fill` (options: price = premium per unit in the pool asset, fee in the
pool asset; LP shares: a spot fill of shares at NAV/share with `notional` = tokens), and
`FundingPayment` per accrual (amount > 0 paid by us). A liquidation of our account emits, per
position closed, a `Fill` with an empty `client_order_id` (venue-initiated) at the mark; its last
fill's `fee` is the penalty minus the deficit the pools covered (a negative fee is that cover).
Run the engine's portfolio with `allow_negative=True` if our account can carry a funding debt.

Other accounts are driven through the Python API (`deposit`, `trade`, `add_liquidity`, ...) to
model the rest of the market; they emit no events. The conservation identity is `conservation()`.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, localcontext

from connectors.sim.base import SimVenue
from connectors.sim.options_pool_ledger import Account, Conservation, Flow, Ledger, MarkMap, Tranche
from connectors.sim.options_pool_market import BPS, OptionMark, PoolMarket, PriceFeed
from connectors.sim.options_pool_view import options_pool_view
from core.clock import Clock
from core.enums import Liquidity, OrderStatus, OrderType, Side, TimeInForce
from core.errors import InvalidInput, PerpetuaError
from core.events import Event, Fill, FundingPayment, OraclePrice, OrderUpdate, Quote
from core.instruments import PerpetualOption, Spot
from core.margin import MarginCalculator, MarginPolicy
from core.money import MONEY
from core.options_pool_view import OptionsPoolView
from core.orders import MintRequest, OrderRequest, RedeemRequest, Request
from core.venue import VenueState

_ZERO = Decimal(0)
_ONE = Decimal(1)
HOUR_NS = 3600 * 1_000_000_000


class PoolRefused(PerpetuaError):
    """The pool refused a Python-API operation; the message names the field and the value."""


def _fmt(value: object) -> str:
    """A Decimal without exponent or trailing zeros (36250.000 -> 36250) for messages; others as str."""
    if not isinstance(value, Decimal) or not value.is_finite():
        return str(value)
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _decimal(name: str, value: object, low: Decimal, high: Decimal | None = None) -> Decimal:
    # Config typos (a float, a percentage written as 20) must fail at construction.
    if (
        not isinstance(value, Decimal)
        or not value.is_finite()
        or value < low
        or (high is not None and value > high)
    ):
        bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise InvalidInput(name, value, f"must be a finite Decimal in {bounds}")
    return value


def _nonneg_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInput(name, value, "must be an integer >= 0 (ns)")
    return value


@dataclass(frozen=True, slots=True, eq=False)
class OptionsPoolConfig:
    """Settings of one options pool. Money in `pool_asset`, prices in `valuation_asset`, times in ns.

    Args:
        pool_asset: the stock token of LP capital, margin, premiums and funding (e.g. "TSLAx");
            every option's `margin_asset` must be it.
        options: the perpetual options the pool sells.
        price_feeds: a feed per asset the options need (underlying, strike currency, pool asset).
        margin: haircuts (one for `pool_asset`) and option margin rates (`core.margin.MarginPolicy`).
        vols: starting vol per asset, per sqrt(year); `vol_feeds` (OraclePrice) update them.
        correlations: rho of log returns per pair of assets (default 0).
        rates: continuously compounded yield per year per asset (r of the strike currency, q of
            the underlying; default 0).
        spread_bps: half-spread of the quote around the mark, bps of the mark.
        fee_bps: fee in bps of the premium (rounded up to `token_quantum`).
        insurance_fraction: share of the spread and fees the main pool earns that goes to the
            insurance pool, in [0, 1].
        liquidation_penalty: fraction of the liquidated underlying notional (pool-asset units).
        max_utilization: the pool's margin requirement may reach this multiple of its capital.
        withdrawal_delay_ns: delay of LP withdrawals (redeem requests).
        latency_ns: delay between `submit` and the request's arrival.
        same_event_fills: with zero latency, process requests inside `submit`.
        accrual_interval_ns: longest time between funding accruals while positions are open
            (None: accrue only at events and requests).
        max_price_age_ns: refuse trades on a price older than this (None: no limit).
        price_quantum: rounding step of marks and quotes (pool-asset units per unit of underlying).
        size_increment: contracts are a multiple of this.
        token_quantum: rounding step of token amounts (the token's smallest unit).
        share_quantum: rounding step of LP shares.
        own_account: the account our requests trade for.
        main_share, insurance_share: LP share ids of the two tranches.
    """

    pool_asset: str
    options: tuple[PerpetualOption, ...]
    price_feeds: tuple[PriceFeed, ...]
    margin: MarginPolicy
    vols: Mapping[str, Decimal] = field(default_factory=dict)
    vol_feeds: tuple[PriceFeed, ...] = ()
    correlations: Mapping[tuple[str, str], Decimal] = field(default_factory=dict)
    rates: Mapping[str, Decimal] = field(default_factory=dict)
    valuation_asset: str = "USD"
    spread_bps: Decimal = _ZERO
    fee_bps: Decimal = _ZERO
    insurance_fraction: Decimal = Decimal("0.1")
    liquidation_penalty: Decimal = Decimal("0.01")
    max_utilization: Decimal = _ONE
    withdrawal_delay_ns: int = 0
    latency_ns: int = 0
    same_event_fills: bool = False
    accrual_interval_ns: int | None = HOUR_NS
    max_price_age_ns: int | None = None
    price_quantum: Decimal = Decimal("1e-8")
    size_increment: Decimal = Decimal("1e-4")
    token_quantum: Decimal = Decimal("1e-18")
    share_quantum: Decimal = Decimal("1e-18")
    own_account: str = "self"
    main_share: str = "POOL-MAIN-LP"
    insurance_share: str = "POOL-INS-LP"

    def __post_init__(self) -> None:
        if not self.options:
            raise InvalidInput("options", self.options, "the pool must sell at least one option")
        for option in self.options:
            if option.margin_asset != self.pool_asset:
                raise InvalidInput(
                    f"{option.id}.margin_asset", option.margin_asset, f"must be {self.pool_asset}"
                )
        self.margin.haircut(self.pool_asset)  # raises when none is configured
        _decimal("spread_bps", self.spread_bps, _ZERO, Decimal(10_000))
        _decimal("fee_bps", self.fee_bps, _ZERO, Decimal(10_000))
        _decimal("insurance_fraction", self.insurance_fraction, _ZERO, _ONE)
        _decimal("liquidation_penalty", self.liquidation_penalty, _ZERO, _ONE)
        _decimal("max_utilization", self.max_utilization, _ZERO)
        for name in ("price_quantum", "size_increment", "token_quantum", "share_quantum"):
            if _decimal(name, getattr(self, name), _ZERO) == 0:
                raise InvalidInput(name, getattr(self, name), "must be > 0")
        _nonneg_int("withdrawal_delay_ns", self.withdrawal_delay_ns)
        _nonneg_int("latency_ns", self.latency_ns)
        if (
            self.accrual_interval_ns is not None
            and _nonneg_int("accrual_interval_ns", self.accrual_interval_ns) == 0
        ):
            raise InvalidInput("accrual_interval_ns", 0, "must be > 0 (or None)")
        if self.max_price_age_ns is not None:
            _nonneg_int("max_price_age_ns", self.max_price_age_ns)
        # A premium q x price x contract_size must be a whole number of token quanta, so both
        # sides of a trade (the pool and our portfolio) move the same exact amount.
        for option in self.options:
            step = self.size_increment * self.price_quantum * option.contract_size
            if step.as_tuple().exponent < self.token_quantum.as_tuple().exponent:  # type: ignore[operator]
                raise InvalidInput(
                    "token_quantum",
                    self.token_quantum,
                    f"is coarser than a premium step {_fmt(step)} of {option.id}",
                )
        if self.main_share == self.insurance_share:
            raise InvalidInput("insurance_share", self.insurance_share, "must differ from main_share")


@dataclass(frozen=True, slots=True)
class TradeResult:
    """One executed trade. `premium` is paid by the account (negative: received), `fee` by the account,
    `insurance_share` from the main to the insurance pool; pool-asset units. `price` and `mark` per
    unit of underlying; `position` the account's contracts afterwards."""

    ts: int
    account: str
    option: str
    side: Side
    quantity: Decimal
    price: Decimal
    mark: Decimal
    premium: Decimal
    fee: Decimal
    insurance_share: Decimal
    position: Decimal


@dataclass(frozen=True, slots=True)
class Liquidation:
    """A liquidated account: positions closed `(option, contracts, mark)`, the penalty it paid and the
    deficit covered by the insurance and the main pool (pool-asset units)."""

    ts: int
    account: str
    closed: tuple[tuple[str, Decimal, Decimal], ...]
    penalty: Decimal
    covered_by_insurance: Decimal
    covered_by_main: Decimal


@dataclass(frozen=True, slots=True)
class AccountMargin:
    """Margin of one account in the valuation currency (`balance` in the pool asset).

    `equity` = `collateral` (haircut balance) + `positions_value`; liquidation when equity < maintenance.
    """

    balance: Decimal
    collateral: Decimal
    positions_value: Decimal
    equity: Decimal
    initial: Decimal
    maintenance: Decimal

    @property
    def liquidatable(self) -> bool:
        """True when equity is strictly below the maintenance requirement."""
        return self.equity < self.maintenance


@dataclass(slots=True)
class _Plan:
    """A trade that passed every check, ready to execute."""

    account: Account
    mark: OptionMark
    side: Side
    quantity: Decimal
    price: Decimal
    premium: Decimal
    fee: Decimal
    insurance_share: Decimal


@dataclass(slots=True)
class _Refusal:
    reason: str
    marketable: bool = True  # False: only the limit price stood in the way


@dataclass(slots=True)
class _Pending:
    """Work due later: our request arriving, or an LP withdrawal maturing."""

    due: int
    account: str
    client_order_id: str = ""
    request: Request | None = None
    share_id: str = ""
    shares: Decimal = _ZERO
    cancelled: bool = False


class OptionsPool(SimVenue):
    """A perpetual-options pool venue; see the module docstring for every rule.

    Args:
        name: venue name (requests and events carry it).
        clock: the engine's clock (simulated in a backtest, wall clock on paper).
        config: `OptionsPoolConfig`.
    """

    def __init__(self, name: str, clock: Clock, config: OptionsPoolConfig) -> None:
        super().__init__(name, clock)
        self.config = config
        self.asset = config.pool_asset
        self.options = {o.id: o for o in config.options}
        self.market = PoolMarket(
            config.options,
            config.price_feeds,
            config.vols,
            config.vol_feeds,
            config.correlations,
            config.rates,
            config.valuation_asset,
            config.spread_bps,
            config.price_quantum,
        )
        self.ledger = Ledger(config.main_share, config.insurance_share)
        self.margin = MarginCalculator(config.margin, config.valuation_asset)
        self.trades: list[TradeResult] = []
        self.liquidations: list[Liquidation] = []
        self.log = logging.getLogger(f"perpetua.sim.options_pool.{name}")
        self._keys = self.market.keys()
        self._last_accrual = clock.now_ns()
        self._queue: list[tuple[int, int, _Pending]] = []
        self._seq = 0
        self._by_order: dict[str, _Pending] = {}
        self._resting: dict[str, OrderRequest] = {}
        self._final: dict[str, OrderStatus] = {}
        self._fill_count = 0
        self._tick_at: int | None = None

    # -- composition --------------------------------------------------------------------------

    def share_instruments(self) -> tuple[Spot, Spot]:
        """The LP shares as spot instruments (base = share id, quote = pool asset) for the registry."""
        main, insurance = self.config.main_share, self.config.insurance_share
        return Spot(main, main, self.asset), Spot(insurance, insurance, self.asset)

    def watched_sources(self) -> frozenset[str]:
        """The sources of the price and vol feeds (the driver routes their events here too)."""
        return frozenset(source for source, _ in self._keys)

    def price_keys(self) -> frozenset[tuple[str, str]]:
        """`(venue or oracle source, instrument)` of the events `on_market` must receive."""
        return self._keys

    # -- driver hooks -------------------------------------------------------------------------

    def on_market(self, event: Event) -> None:
        """A price or vol from a feed: accrue funding to now, re-mark, liquidate, match resting orders."""
        if type(event) is not Quote and type(event) is not OraclePrice:
            return
        if (event[1], event[2]) not in self._keys:
            return
        now = self._advance()
        if self.market.observe(event):
            self._liquidate_all(now)
            self._match_resting(now)
        else:
            self.log.warning("ignored a bad market-data value: %r", event)
        self._arm(now)

    def on_time(self, now_ns: int) -> None:
        """Accrue funding, liquidate, and process the requests and withdrawals due by now."""
        now = self._advance()
        while self._queue and self._queue[0][0] <= now:
            item = heapq.heappop(self._queue)[2]
            if item.cancelled:
                continue
            if item.request is not None:
                self._arrive(item.request, now)
            else:
                self._mature(item, now)
        self._arm(now)

    # -- venue port ---------------------------------------------------------------------------

    async def submit(self, request: Request) -> OrderUpdate:
        """Check the request's form; NEW (it arrives after the latency) or REJECTED with the reason."""
        reason = self._form_error(request)
        if reason is not None:
            self._final.setdefault(request.client_order_id, OrderStatus.REJECTED)
            return self.reject(request, reason)
        now = self.clock.now_ns()
        if self.config.latency_ns == 0 and self.config.same_event_fills:
            self._final[request.client_order_id] = OrderStatus.NEW
            self._advance()
            self._arrive(request, now)
            self._arm(now)
        else:
            item = _Pending(
                now + self.config.latency_ns, self.config.own_account, request.client_order_id, request
            )
            self._by_order[request.client_order_id] = item
            self._final[request.client_order_id] = OrderStatus.NEW
            self._push(item)
        return self.update(request.client_order_id, OrderStatus.NEW)

    async def cancel(self, client_order_id: str) -> OrderUpdate:
        """Cancel a resting order, a request still in flight, or a withdrawal waiting for its delay."""
        if client_order_id in self._resting:
            del self._resting[client_order_id]
            return self._finish(client_order_id, OrderStatus.CANCELLED, "cancelled on request")
        item = self._by_order.pop(client_order_id, None)
        if item is not None and not item.cancelled:
            item.cancelled = True
            if item.request is None:
                self._unlock(self.ledger.account(item.account), item.share_id, item.shares)
            return self._finish(client_order_id, OrderStatus.CANCELLED, "cancelled on request")
        status = self._final.get(client_order_id)
        if status is None:
            return self.update(
                client_order_id, OrderStatus.REJECTED, f"client_order_id: unknown order {client_order_id!r}"
            )
        return self.update(client_order_id, status, f"not open: already {status.value}")

    async def snapshot(self) -> VenueState:
        """Our balance (pool asset), our LP shares (free + locked), and our open orders."""
        own = self.ledger.account(self.config.own_account)
        balances = {self.asset: own.balance}
        for share_id in self.ledger.tranches:
            held = own.shares.get(share_id, _ZERO) + own.locked.get(share_id, _ZERO)
            if held:
                balances[share_id] = held
        opened = tuple(self.update(cid, OrderStatus.ACCEPTED) for cid in self._resting) + tuple(
            # Requests still in flight are NEW; withdrawals waiting for their delay were ACCEPTED.
            self.update(cid, OrderStatus.NEW if p.request is not None else OrderStatus.ACCEPTED)
            for cid, p in self._by_order.items()
            if not p.cancelled
        )
        return VenueState(self.name, self.clock.now_ns(), balances, opened)

    # -- Python API: the rest of the market -----------------------------------------------------

    def deposit(self, account: str, amount: Decimal) -> None:
        """Bring `amount` tokens from outside into `account` (for ours, credit the portfolio too)."""
        self._check_amount("amount", amount, self.config.token_quantum)
        now = self._advance()
        self.ledger.deposit(self.ledger.account(account), amount)
        self._arm(now)

    def withdraw(self, account: str, amount: Decimal) -> None:
        """Take `amount` tokens out of another account; the balance and initial margin must allow it."""
        self._check_other(account)
        self._check_amount("amount", amount, self.config.token_quantum)
        now = self._advance()
        acct = self.ledger.account(account)
        if amount > acct.balance:
            raise PoolRefused(
                f"amount: {_fmt(amount)} exceeds the balance {_fmt(acct.balance)} {self.asset} of {account}"
            )
        if acct.positions:
            with localcontext(MONEY):
                state = self._margin_state(acct.balance - amount, acct.positions)
            if state.equity < state.initial:
                raise PoolRefused(
                    f"amount: {_fmt(amount)} would leave equity {_fmt(state.equity)} "
                    f"below the initial requirement {_fmt(state.initial)}"
                )
        self.ledger.withdraw(acct, amount)
        self._arm(now)

    def trade(
        self,
        account: str,
        option: str,
        side: Side,
        quantity: Decimal,
        limit: Decimal | None = None,
        reduce_only: bool = False,
    ) -> TradeResult:
        """Trade `quantity` contracts of `option` for another account at the pool's quote now.

        `limit` bounds the premium per unit (pool asset). Raises `PoolRefused` (the reason names the
        field and value) and changes nothing when any check fails.
        """
        self._check_other(account)
        if option not in self.options:
            raise PoolRefused(f"instrument: {option!r} is not sold by {self.name}")
        self._check_amount("quantity", quantity, self.config.size_increment)
        now = self._advance()
        plan = self._plan(self.ledger.account(account), option, side, quantity, limit, reduce_only, now)
        if isinstance(plan, _Refusal):
            self._arm(now)
            raise PoolRefused(plan.reason)
        result = self._execute(plan, now)
        self._arm(now)
        return result

    def close_position(self, account: str, option: str) -> TradeResult:
        """Close another account's whole position in `option` at the pool's quote."""
        position = self.ledger.account(account).positions.get(option, _ZERO)
        if position == 0:
            raise PoolRefused(f"instrument: {account} has no position in {option}")
        return self.trade(
            account, option, Side.SELL if position > 0 else Side.BUY, abs(position), reduce_only=True
        )

    def add_liquidity(self, account: str, share_id: str, amount: Decimal) -> Decimal:
        """Deposit `amount` tokens of another account into a tranche; returns the shares minted (floor)."""
        self._check_other(account)
        self._check_amount("amount", amount, self.config.token_quantum)
        tranche = self._tranche(share_id)
        now = self._advance()
        acct = self.ledger.account(account)
        if amount > acct.balance:
            raise PoolRefused(
                f"amount: {_fmt(amount)} exceeds the balance {_fmt(acct.balance)} {self.asset} of {account}"
            )
        nav = self.ledger.nav(tranche, self.marks())
        if tranche.shares == 0:
            if nav < 0:
                raise PoolRefused(f"token: {share_id} is insolvent (NAV {_fmt(nav)}), it takes no deposit")
            shares = amount.quantize(self.config.share_quantum, rounding=ROUND_FLOOR)
        elif nav <= 0:
            raise PoolRefused(f"token: {share_id} is insolvent (NAV {_fmt(nav)}), it takes no deposit")
        else:
            with localcontext(MONEY):
                shares = (amount * tranche.shares / nav).quantize(
                    self.config.share_quantum, rounding=ROUND_FLOOR
                )
        if shares == 0:
            raise PoolRefused(f"amount: {_fmt(amount)} buys no share of {share_id} at NAV {_fmt(nav)}")
        self._mint(acct, tranche, shares, amount)
        self._arm(now)
        return shares

    def remove_liquidity(self, account: str, share_id: str, shares: Decimal) -> Decimal | None:
        """Redeem another account's LP shares: the tokens paid now, or None when the withdrawal delay applies.

        A delayed withdrawal locks the shares and pays at the NAV when it matures (or unlocks them
        if it cannot be paid then).
        """
        self._check_other(account)
        self._check_amount("quantity", shares, self.config.share_quantum)
        tranche = self._tranche(share_id)
        now = self._advance()
        acct = self.ledger.account(account)
        reason = self._lock(acct, share_id, shares)
        if reason is not None:
            raise PoolRefused(reason)
        item = _Pending(now + self.config.withdrawal_delay_ns, account, share_id=share_id, shares=shares)
        if self.config.withdrawal_delay_ns:
            self._push(item)
            self._arm(now)
            return None
        paid = self._pay_withdrawal(acct, tranche, shares)
        if isinstance(paid, str):
            self._unlock(acct, share_id, shares)
            raise PoolRefused(paid)
        self._arm(now)
        return paid

    # -- views --------------------------------------------------------------------------------

    def account(self, account: str) -> Account:
        """The ledger record of an account (opened empty on first use)."""
        return self.ledger.account(account)

    def account_margin(self, account: str) -> AccountMargin:
        """Margin of an account now, in the valuation currency."""
        acct = self.ledger.account(account)
        return self._margin_state(acct.balance, acct.positions)

    def nav(self, share_id: str) -> Decimal:
        """NAV of a tranche now (pool-asset units)."""
        return self.ledger.nav(self._tranche(share_id), self.marks())

    def nav_per_share(self, share_id: str) -> Decimal | None:
        """NAV per LP share of a tranche (60 significant digits), None while it has no shares."""
        tranche = self._tranche(share_id)
        if tranche.shares == 0:
            return None
        with localcontext(MONEY):
            return self.nav(share_id) / tranche.shares

    def share_value(self, account: str, share_id: str) -> Decimal:
        """An account's part of a tranche's NAV (free and locked shares), rounded down to a token quantum."""
        tranche = self._tranche(share_id)
        return self.ledger.share_value(
            self.ledger.account(account), tranche, self.nav(share_id), self.config.token_quantum
        )

    def conservation(self) -> Conservation:
        """The conservation identity now (see `options_pool_ledger`)."""
        return self.ledger.conservation(self.marks())

    def public_view(self) -> OptionsPoolView:
        """What anyone can read of the pool now: tranches, open interest, greeks, our stake.

        Strategies read it through `ctx.venue_view(name)` (see `core.options_pool_view`).
        """
        return options_pool_view(self)

    # -- time, funding, liquidation ---------------------------------------------------------------

    def _advance(self) -> int:
        """Accrue funding up to now, then liquidate what it left under-margined; returns now (ns)."""
        now = self.clock.now_ns()
        if now > self._last_accrual:
            self._accrue(now)
            self._liquidate_all(now)
        return now

    def _accrue(self, now: int) -> None:
        dt = now - self._last_accrual
        self._last_accrual = now
        own = self.config.own_account
        quantum = self.config.token_quantum
        for acct in self.ledger.open_accounts():
            for option_id, quantity in acct.positions.items():
                m = self._mark(option_id)
                o = m.option
                with localcontext(MONEY):
                    exact = quantity * o.contract_size * (m.mark - m.payoff) * dt / o.funding_period_ns
                    amount = exact.quantize(quantum, rounding=ROUND_HALF_EVEN)
                if amount == 0:
                    continue
                self.ledger.transfer(acct, self.ledger.main, amount, Flow.FUNDING)
                if acct.name == own:
                    self.emit(FundingPayment(now, self.name, option_id, amount, self.asset))

    def _liquidate_all(self, now: int) -> None:
        for acct in self.ledger.open_accounts():
            if self._margin_state(acct.balance, acct.positions).liquidatable:
                self._liquidate(acct, now)

    def _liquidate(self, acct: Account, now: int) -> None:
        ledger = self.ledger
        closed: list[tuple[str, Decimal, Decimal]] = []
        with localcontext(MONEY):
            notional = _ZERO
            for option_id, quantity in list(acct.positions.items()):
                m = self._mark(option_id)
                cs = m.option.contract_size
                # Closed at the mark: a long receives its value from the main pool, a short pays it.
                ledger.transfer(ledger.main, acct, quantity * cs * m.mark, Flow.PREMIUM)
                ledger.move_position(acct, option_id, -quantity)
                notional += abs(quantity) * cs * m.underlying_in_margin
                closed.append((option_id, quantity, m.mark))
            from_insurance = from_main = penalty = _ZERO
            if acct.balance < 0:
                deficit = -acct.balance
                from_insurance = min(deficit, max(ledger.insurance.balance, _ZERO))
                from_main = deficit - from_insurance
                ledger.transfer(ledger.insurance, acct, from_insurance, Flow.BAD_DEBT)
                ledger.transfer(ledger.main, acct, from_main, Flow.BAD_DEBT)
            else:
                nominal = (notional * self.config.liquidation_penalty).quantize(
                    self.config.token_quantum, rounding=ROUND_FLOOR
                )
                penalty = min(nominal, acct.balance)
                ledger.transfer(acct, ledger.insurance, penalty, Flow.PENALTY)
            net_fee = penalty - from_insurance - from_main
        record = Liquidation(now, acct.name, tuple(closed), penalty, from_insurance, from_main)
        self.liquidations.append(record)
        self.log.info("liquidated %s: %s", acct.name, record)
        if acct.name == self.config.own_account:
            for i, (option_id, quantity, mark) in enumerate(closed):
                self._fill_count += 1
                self.emit(
                    Fill(
                        now,
                        self.name,
                        option_id,
                        "",
                        Side.SELL if quantity > 0 else Side.BUY,
                        mark,
                        abs(quantity),
                        net_fee if i == len(closed) - 1 else _ZERO,
                        self.asset,
                        Liquidity.TAKER,
                        f"{self.name}-liq-{self._fill_count}",
                    )
                )

    def _arm(self, now: int) -> None:
        """Keep a periodic accrual wake-up pending while positions are open."""
        interval = self.config.accrual_interval_ns
        if interval is None or (self._tick_at is not None and self._tick_at > now):
            return
        if self.ledger.open_accounts():
            self._tick_at = now + interval
            self.wake_at(self._tick_at)

    def _push(self, item: _Pending) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (item.due, self._seq, item))
        self.wake_at(item.due)

    # -- trading --------------------------------------------------------------------------------

    def _plan(
        self,
        acct: Account,
        option_id: str,
        side: Side,
        quantity: Decimal,
        limit: Decimal | None,
        reduce_only: bool,
        now: int,
    ) -> _Plan | _Refusal:
        """Price and check a trade without changing anything."""
        c = self.config
        m = self.market.mark(option_id)
        if m is None:
            return _Refusal(f"price: {option_id} has no mark ({self.market.missing(option_id)})")
        if c.max_price_age_ns is not None and now - m.price_ts > c.max_price_age_ns:
            return _Refusal(f"price: stale, the oldest input of {option_id} is from {m.price_ts}, now {now}")
        price = m.ask if side is Side.BUY else m.bid
        if limit is not None and (price > limit if side is Side.BUY else price < limit):
            which = "ask" if side is Side.BUY else "bid"
            return _Refusal(
                f"price: the pool's {which} {_fmt(price)} is beyond the limit {_fmt(limit)}", marketable=False
            )
        before = acct.positions.get(option_id, _ZERO)
        cs = m.option.contract_size
        with localcontext(MONEY):
            signed = side.sign * quantity
            after = before + signed
            reduces = after == 0 or (before != 0 and abs(after) < abs(before) and (after > 0) == (before > 0))
            if reduce_only and not reduces:
                return _Refusal(
                    f"reduce_only: {side.value} {_fmt(quantity)} would not reduce the position {_fmt(before)}"
                )
            premium = signed * price * cs
            fee = (abs(premium) * c.fee_bps / BPS).quantize(c.token_quantum, rounding=ROUND_CEILING)
            earned = quantity * cs * abs(price - m.mark) + fee
            insurance_share = (earned * c.insurance_fraction).quantize(c.token_quantum, rounding=ROUND_FLOOR)
            balance_after = acct.balance - premium - fee
            if balance_after < 0:
                return _Refusal(
                    f"balance: the trade needs {_fmt(premium + fee)} {self.asset}, "
                    f"{acct.name} has {_fmt(acct.balance)}"
                )
            positions_after = dict(acct.positions)
            positions_after[option_id] = after
            if not reduces:
                state = self._margin_state(balance_after, positions_after)
                if state.equity < state.initial:
                    return _Refusal(
                        f"margin: equity {_fmt(state.equity)} {c.valuation_asset} would be below the initial "
                        f"requirement {_fmt(state.initial)}"
                    )
            ledger = self.ledger
            main_after = ledger.main.balance + premium + fee - insurance_share
            if premium < 0 and main_after < 0:
                return _Refusal(
                    f"pool: the main pool holds {_fmt(ledger.main.balance)} {self.asset}, "
                    f"it cannot pay {_fmt(-premium)}"
                )
            oi_after = dict(ledger.open_interest)
            oi_after[option_id] = oi_after.get(option_id, _ZERO) + signed
            need_before = self._pool_requirement(ledger.open_interest)
            need_after = self._pool_requirement(oi_after)
            if need_after > need_before:
                capital = (
                    main_after
                    - ledger.liability(self.marks())
                    - signed * cs * m.mark
                    + ledger.insurance.balance
                    + insurance_share
                )
                reason = self._over_capacity(need_after, capital)
                if reason is not None:
                    return _Refusal(reason)
        return _Plan(acct, m, side, quantity, price, premium, fee, insurance_share)

    def _execute(self, plan: _Plan, now: int) -> TradeResult:
        ledger = self.ledger
        option_id = plan.mark.option.id
        ledger.transfer(plan.account, ledger.main, plan.premium, Flow.PREMIUM)
        ledger.transfer(plan.account, ledger.main, plan.fee, Flow.FEE)
        ledger.transfer(ledger.main, ledger.insurance, plan.insurance_share, Flow.INSURANCE_SHARE)
        position = ledger.move_position(plan.account, option_id, plan.side.sign * plan.quantity)
        result = TradeResult(
            now,
            plan.account.name,
            option_id,
            plan.side,
            plan.quantity,
            plan.price,
            plan.mark.mark,
            plan.premium,
            plan.fee,
            plan.insurance_share,
            position,
        )
        self.trades.append(result)
        return result

    def _margin_state(self, balance: Decimal, positions: Mapping[str, Decimal]) -> AccountMargin:
        with localcontext(MONEY):
            s_m = self.market.price(self.asset) if (positions or balance) else _ONE
            if s_m is None:
                s_m = _ZERO  # no price of the pool asset yet: collateral counts for nothing
            haircut = self.config.margin.haircut(self.asset)
            collateral = balance * s_m * (_ONE - haircut) if balance > 0 else balance * s_m
            value = initial = maintenance = _ZERO
            for option_id, quantity in positions.items():
                if quantity == 0:
                    continue
                m = self._mark(option_id)
                value += quantity * m.option.contract_size * m.mark * s_m
                need = self.margin.requirement(m.option, quantity, m.prices)
                initial += need.initial
                maintenance += need.maintenance
            return AccountMargin(balance, collateral, value, collateral + value, initial, maintenance)

    def _pool_requirement(self, open_interest: Mapping[str, Decimal]) -> Decimal:
        """Initial margin of the pool's net short positions (traders net long), valuation currency."""
        total = _ZERO
        with localcontext(MONEY):
            for option_id, net in open_interest.items():
                if net > 0:
                    m = self._mark(option_id)
                    total += self.margin.requirement(m.option, -net, m.prices).initial
        return total

    def _over_capacity(self, requirement: Decimal, capital_tokens: Decimal) -> str | None:
        s_m = self.market.price(self.asset) or _ZERO
        with localcontext(MONEY):
            capital = capital_tokens * s_m
            if requirement > self.config.max_utilization * capital:
                return (
                    f"capacity: the pool's requirement {_fmt(requirement)} {self.config.valuation_asset} "
                    f"would exceed {_fmt(self.config.max_utilization)} x its capital {_fmt(capital)}"
                )
        return None

    # -- our requests -----------------------------------------------------------------------------

    def _form_error(self, request: Request) -> str | None:
        """What is wrong with the request itself (checked at submit), or None."""
        c = self.config
        if request.venue != self.name:
            return f"venue: {request.venue!r} is not {self.name!r}"
        if request.client_order_id in self._final:
            return f"client_order_id: {request.client_order_id!r} was already used"
        if isinstance(request, OrderRequest):
            if request.instrument not in self.options:
                return f"instrument: {request.instrument!r} is not sold by {self.name}"
            if request.post_only:
                return "post_only: the pool is the only quote, every trade takes it"
            if request.time_in_force is TimeInForce.DAY:
                return "time_in_force: day, the pool trades around the clock (use gtc, ioc or fok)"
            if request.quantity % c.size_increment != 0:
                step = _fmt(c.size_increment)
                return f"quantity: {_fmt(request.quantity)} is not a multiple of {step} contracts"
            return None
        if isinstance(request, MintRequest | RedeemRequest):
            if request.token not in self.ledger.tranches:
                shares = ", ".join(self.ledger.tranches)
                return f"token: {request.token!r} is not an LP share of {self.name} ({shares})"
            asset = request.pay_asset if isinstance(request, MintRequest) else request.receive_asset
            name = "pay_asset" if isinstance(request, MintRequest) else "receive_asset"
            if asset != self.asset:
                return f"{name}: {asset!r}, the pool settles in {self.asset}"
            if request.quantity % c.share_quantum != 0:
                return (
                    f"quantity: {_fmt(request.quantity)} is not a multiple of {_fmt(c.share_quantum)} shares"
                )
            return None
        return f"request: {type(request).__name__} is not taken by an options pool (orders, mints, redeems)"

    def _arrive(self, request: Request, now: int) -> None:
        """Our request reaches the pool: reject it, or accept it and fill, rest, expire or start a delay."""
        cid = request.client_order_id
        self._by_order.pop(cid, None)
        own = self.ledger.account(self.config.own_account)
        if isinstance(request, OrderRequest):
            limit = request.price if request.order_type is OrderType.LIMIT else None
            plan = self._plan(
                own, request.instrument, request.side, request.quantity, limit, request.reduce_only, now
            )
            if isinstance(plan, _Refusal) and plan.marketable:
                self._emit_status(cid, OrderStatus.REJECTED, plan.reason)
                return
            self._emit_status(cid, OrderStatus.ACCEPTED)
            if isinstance(plan, _Plan):
                self._fill(cid, plan, now)
            elif request.time_in_force is TimeInForce.GTC:
                self._resting[cid] = request
            else:
                self._emit_status(cid, OrderStatus.EXPIRED, plan.reason)
            return
        if isinstance(request, MintRequest):
            tranche = self.ledger.tranche(request.token)
            cost = self._mint_cost(tranche, request.quantity)
            if isinstance(cost, str) or cost > own.balance:
                reason = (
                    cost
                    if isinstance(cost, str)
                    else f"balance: minting costs {_fmt(cost)} {self.asset}, have {_fmt(own.balance)}"
                )
                self._emit_status(cid, OrderStatus.REJECTED, reason)
                return
            self._emit_status(cid, OrderStatus.ACCEPTED)
            self._mint(own, tranche, request.quantity, cost)
            self._emit_lp_fill(cid, request.token, Side.BUY, request.quantity, cost, now)
            return
        assert isinstance(request, RedeemRequest)
        locked = self._lock(own, request.token, request.quantity)
        if locked is not None:
            self._emit_status(cid, OrderStatus.REJECTED, locked)
            return
        item = _Pending(
            now + self.config.withdrawal_delay_ns, own.name, cid, None, request.token, request.quantity
        )
        if self.config.withdrawal_delay_ns:
            self._emit_status(cid, OrderStatus.ACCEPTED)
            self._by_order[cid] = item
            self._push(item)
            return
        paid = self._pay_withdrawal(own, self.ledger.tranche(request.token), request.quantity)
        if isinstance(paid, str):
            self._unlock(own, request.token, request.quantity)
            self._emit_status(cid, OrderStatus.REJECTED, paid)
            return
        self._emit_status(cid, OrderStatus.ACCEPTED)
        self._emit_lp_fill(cid, request.token, Side.SELL, request.quantity, paid, now)

    def _mature(self, item: _Pending, now: int) -> None:
        """A delayed withdrawal is due: pay it at today's NAV, or unlock the shares."""
        acct = self.ledger.account(item.account)
        if item.client_order_id:
            self._by_order.pop(item.client_order_id, None)
        paid = self._pay_withdrawal(acct, self.ledger.tranche(item.share_id), item.shares)
        if isinstance(paid, str):
            self._unlock(acct, item.share_id, item.shares)
            if item.client_order_id:
                self._emit_status(item.client_order_id, OrderStatus.CANCELLED, paid)
            return
        if item.client_order_id:
            self._emit_lp_fill(item.client_order_id, item.share_id, Side.SELL, item.shares, paid, now)

    def _match_resting(self, now: int) -> None:
        own = self.ledger.account(self.config.own_account)
        for cid, request in list(self._resting.items()):
            plan = self._plan(
                own,
                request.instrument,
                request.side,
                request.quantity,
                request.price,
                request.reduce_only,
                now,
            )
            if isinstance(plan, _Plan):
                del self._resting[cid]
                self._fill(cid, plan, now)
            elif plan.marketable:
                del self._resting[cid]
                self._emit_status(cid, OrderStatus.CANCELLED, plan.reason)

    def _fill(self, cid: str, plan: _Plan, now: int) -> None:
        result = self._execute(plan, now)
        self._fill_count += 1
        self._final[cid] = OrderStatus.FILLED
        self.emit(
            Fill(
                now,
                self.name,
                result.option,
                cid,
                result.side,
                result.price,
                result.quantity,
                result.fee,
                self.asset,
                Liquidity.TAKER,
                f"{self.name}-{self._fill_count}",
            )
        )

    # -- LP shares --------------------------------------------------------------------------------

    def _mint_cost(self, tranche: Tranche, shares: Decimal) -> Decimal | str:
        """Tokens for `shares` new shares: shares x NAV / outstanding, rounded up (1:1 when empty)."""
        nav = self.ledger.nav(tranche, self.marks())
        if tranche.shares == 0:
            if nav < 0:
                return f"token: {tranche.name} is insolvent (NAV {_fmt(nav)}), it takes no deposit"
            return shares.quantize(self.config.token_quantum, rounding=ROUND_CEILING)
        if nav <= 0:
            return f"token: {tranche.name} is insolvent (NAV {_fmt(nav)}), it takes no deposit"
        with localcontext(MONEY):
            return (shares * nav / tranche.shares).quantize(self.config.token_quantum, rounding=ROUND_CEILING)

    def _mint(self, acct: Account, tranche: Tranche, shares: Decimal, cost: Decimal) -> None:
        self.ledger.transfer(acct, tranche, cost, Flow.LP)
        with localcontext(MONEY):
            acct.shares[tranche.name] = acct.shares.get(tranche.name, _ZERO) + shares
            tranche.shares += shares

    def _lock(self, acct: Account, share_id: str, shares: Decimal) -> str | None:
        held = acct.shares.get(share_id, _ZERO)
        if shares > held:
            return f"quantity: {_fmt(shares)} {share_id} exceeds the {_fmt(held)} free shares of {acct.name}"
        with localcontext(MONEY):
            acct.shares[share_id] = held - shares
            acct.locked[share_id] = acct.locked.get(share_id, _ZERO) + shares
        return None

    def _unlock(self, acct: Account, share_id: str, shares: Decimal) -> None:
        with localcontext(MONEY):
            acct.locked[share_id] -= shares
            acct.shares[share_id] = acct.shares.get(share_id, _ZERO) + shares

    def _pay_withdrawal(self, acct: Account, tranche: Tranche, shares: Decimal) -> Decimal | str:
        """Burn locked shares for shares x NAV / outstanding tokens (rounded down), or say why not."""
        nav = self.ledger.nav(tranche, self.marks())
        if nav <= 0:
            return f"token: {tranche.name} NAV is {_fmt(nav)}, nothing to pay"
        with localcontext(MONEY):
            paid = (shares * nav / tranche.shares).quantize(self.config.token_quantum, rounding=ROUND_FLOOR)
            if paid == 0:
                return f"quantity: {_fmt(shares)} shares of {tranche.name} pay nothing at NAV {_fmt(nav)}"
            if paid > tranche.balance:
                held = _fmt(tranche.balance)
                return f"pool: {tranche.name} holds {held} {self.asset}, the withdrawal needs {_fmt(paid)}"
            need = self._pool_requirement(self.ledger.open_interest)
            if need > 0:
                capital = (
                    self.ledger.nav(self.ledger.main, self.marks()) + self.ledger.insurance.balance - paid
                )
                reason = self._over_capacity(need, capital)
                if reason is not None:
                    return reason
            self.ledger.transfer(tranche, acct, paid, Flow.LP)
            acct.locked[tranche.name] -= shares
            tranche.shares -= shares
        return paid

    # -- helpers ------------------------------------------------------------------------------------

    def marks(self) -> MarkMap:
        """Option id -> (mark, contract size) of every option with a mark: what the ledger values with."""
        marks: dict[str, tuple[Decimal, Decimal]] = {}
        for option_id, option in self.options.items():
            m = self.market.mark(option_id)
            if m is not None:
                marks[option_id] = (m.mark, option.contract_size)
        return marks

    def _mark(self, option_id: str) -> OptionMark:
        m = self.market.mark(option_id)
        if m is None:  # an open position always has a mark: its prices never disappear
            raise InvalidInput("option", option_id, "has no mark: " + self.market.missing(option_id))
        return m

    def _tranche(self, share_id: str) -> Tranche:
        try:
            return self.ledger.tranche(share_id)
        except InvalidInput as error:
            raise PoolRefused(str(error)) from None

    def _check_other(self, account: str) -> None:
        if account == self.config.own_account:
            raise PoolRefused(
                f"account: {account!r} is ours, it trades through submit() so the portfolio sees it"
            )
        if not isinstance(account, str) or not account:
            raise PoolRefused(f"account: {account!r} must be a non-empty string")

    @staticmethod
    def _check_amount(name: str, value: object, step: Decimal) -> None:
        if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
            raise PoolRefused(f"{name}: {value!r} must be a finite Decimal > 0")
        if value % step != 0:
            raise PoolRefused(f"{name}: {_fmt(value)} is not a multiple of {_fmt(step)}")

    def _emit_status(self, cid: str, status: OrderStatus, reason: str = "") -> None:
        self._final[cid] = status
        self.emit(
            OrderUpdate(
                self.clock.now_ns(), self.name, cid, status, f"{self.name}-{cid}", _ZERO, None, reason
            )
        )

    def _finish(self, cid: str, status: OrderStatus, reason: str) -> OrderUpdate:
        self._final[cid] = status
        return self.update(cid, status, reason)

    def _emit_lp_fill(
        self, cid: str, share_id: str, side: Side, shares: Decimal, tokens: Decimal, now: int
    ) -> None:
        self._fill_count += 1
        self._final[cid] = OrderStatus.FILLED
        with localcontext(MONEY):
            price = tokens / shares
        self.emit(
            Fill(
                now,
                self.name,
                share_id,
                cid,
                side,
                price,
                shares,
                _ZERO,
                self.asset,
                Liquidity.TAKER,
                f"{self.name}-{self._fill_count}",
                tokens,
            )
        )
