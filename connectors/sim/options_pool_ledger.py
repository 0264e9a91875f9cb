"""The options pool's books: accounts, the main and insurance tranches, and every token transfer.

Everything is in one asset, the pool asset (a stock token such as TSLAx), as exact `Decimal`s.

Parties:

- `Account` (a trader, a liquidity provider, or both; ours is "self"): `balance` is the tokens it
  holds at the venue (the collateral of its positions and the wallet LP deposits come from),
  `positions` its signed contracts per option (long > 0), `shares` its LP shares per tranche and
  `locked` the shares waiting in a delayed withdrawal (still outstanding, still its own).
- `Tranche` (main pool, insurance pool): `balance` is the tokens it holds, `shares` the LP shares
  outstanding. The main pool is the counterparty of every position; the insurance pool only holds
  capital that absorbs losses first.

Tokens move only through `transfer(src, dst, amount, flow)`, which debits and credits the same
`Decimal`, or enter and leave the venue through `deposit`/`withdraw`. Each party counts, per
`Flow`, the net amount it received. Hence token conservation by construction:
sum of all balances == net external deposits.

Valuation, with `marks[option] = (mark, contract_size)`, mark in pool-asset units per unit of
underlying:

    value(account)  = sum_o q_o * contract_size_o * mark_o          (long > 0, short < 0)
    L               = sum over accounts of value = sum_o OI_o * cs_o * mark_o    (open interest OI)
    NAV(main)       = main.balance - L        (the pool is short what traders are long)
    NAV(insurance)  = insurance.balance

PnL (each side's own view):

    trading PnL(account) = balance - flows[DEPOSIT] - flows[LP] + value(account)
                         = flows[PREMIUM] + flows[FUNDING] + flows[FEE] + flows[PENALTY]
                           + flows[BAD_DEBT] + value(account)
    PnL(tranche)         = NAV(tranche) - flows[LP]         (flows[LP] = net LP contributions)

Conservation identity (exact, see `Conservation`): with P, F, Fee, Pen the net premiums, funding,
fees and liquidation penalties traders paid to the pools, BD the losses beyond traders' margin the
pools absorbed (insurance first, then main), and L the mark value of open positions,

    LP PnL (main + insurance)  =  P + F + Fee + Pen - BD - L
    trader PnL (all accounts)  = -(P + F + Fee + Pen - BD) + L
    LP PnL + trader PnL        =  0

An LP's own value is its pro-rata part of its tranches' NAV (`share_value`, rounded down to the
token quantum, so the LPs of a tranche hold at most NAV and the dust stays with the tranche).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal, localcontext
from enum import StrEnum

from core.errors import InvalidInput
from core.money import MONEY

_ZERO = Decimal(0)


class Flow(StrEnum):
    """Why tokens moved; each party counts the net amount it received per flow."""

    DEPOSIT = "deposit"  # from outside the venue (negative: withdrawn to outside)
    LP = "lp"  # between an account and a tranche: LP deposits and withdrawals
    PREMIUM = "premium"  # option premiums at trades and liquidation closes
    FEE = "fee"  # trading fees, paid to the main pool
    INSURANCE_SHARE = "insurance_share"  # the insurance pool's cut of the main pool's spread and fees
    FUNDING = "funding"  # everlasting-option funding between positions and the main pool
    PENALTY = "penalty"  # liquidation penalties, paid to the insurance pool
    BAD_DEBT = "bad_debt"  # losses beyond a liquidated account's margin, paid by the pools


@dataclass(slots=True)
class Party:
    """Something that holds pool tokens at the venue: `balance` and the net received per `Flow`."""

    name: str
    balance: Decimal = _ZERO
    flows: dict[Flow, Decimal] = field(default_factory=dict)

    def received(self, flow: Flow) -> Decimal:
        """Net amount received through `flow` (negative: paid), pool-asset units."""
        return self.flows.get(flow, _ZERO)


@dataclass(slots=True)
class Account(Party):
    """A trader and/or LP: balance, signed contracts per option, LP shares (free and locked) per tranche."""

    positions: dict[str, Decimal] = field(default_factory=dict)
    shares: dict[str, Decimal] = field(default_factory=dict)
    locked: dict[str, Decimal] = field(default_factory=dict)


@dataclass(slots=True)
class Tranche(Party):
    """An LP tranche (main or insurance pool): tokens held and LP shares outstanding."""

    shares: Decimal = _ZERO


MarkMap = Mapping[str, tuple[Decimal, Decimal]]
"""Option id -> (mark in pool-asset units per unit of underlying, contract size)."""


@dataclass(frozen=True, slots=True)
class Conservation:
    """The conservation identity at one instant, every amount in pool-asset units.

    `tokens` (sum of all balances) equals `external` (net deposits from outside). `premiums`,
    `fees`, `funding`, `penalties` are what traders paid the pools, net; `bad_debt` what the pools
    paid to cover liquidated accounts; `liability` the mark value of open positions (L).
    `trader_pnl` and `lp_pnl` are computed from balances and NAVs, independently of the flows.
    """

    external: Decimal
    tokens: Decimal
    premiums: Decimal
    fees: Decimal
    funding: Decimal
    penalties: Decimal
    bad_debt: Decimal
    liability: Decimal
    trader_pnl: Decimal
    main_pnl: Decimal
    insurance_pnl: Decimal

    @property
    def lp_pnl(self) -> Decimal:
        """PnL of both tranches together."""
        with localcontext(MONEY):
            return self.main_pnl + self.insurance_pnl

    @property
    def pool_income(self) -> Decimal:
        """P + F + Fee + Pen - BD: what traders paid the pools, net of the losses the pools covered."""
        with localcontext(MONEY):
            return self.premiums + self.fees + self.funding + self.penalties - self.bad_debt

    @property
    def residual(self) -> Decimal:
        """LP PnL + trader PnL: exactly 0 when value is conserved."""
        with localcontext(MONEY):
            return self.lp_pnl + self.trader_pnl


class Ledger:
    """Accounts and tranches of one pool, with exact transfers and valuation (module docstring).

    Args:
        main_share: id of the main tranche's LP share (e.g. "POOL-MAIN-LP").
        insurance_share: id of the insurance tranche's LP share (e.g. "POOL-INS-LP").
    """

    def __init__(self, main_share: str, insurance_share: str) -> None:
        if main_share == insurance_share:
            raise InvalidInput("insurance_share", insurance_share, "must differ from main_share")
        self.main = Tranche(main_share)
        self.insurance = Tranche(insurance_share)
        self.tranches = {main_share: self.main, insurance_share: self.insurance}
        self.accounts: dict[str, Account] = {}
        self.open_interest: dict[str, Decimal] = {}
        self.external = _ZERO

    # -- parties ------------------------------------------------------------------------------

    def account(self, account_id: str) -> Account:
        """The account `account_id`, opened empty on first use."""
        found = self.accounts.get(account_id)
        if found is None:
            if not isinstance(account_id, str) or not account_id:
                raise InvalidInput("account", account_id, "must be a non-empty string")
            found = self.accounts[account_id] = Account(account_id)
        return found

    def tranche(self, share_id: str) -> Tranche:
        """The tranche whose LP share is `share_id`."""
        try:
            return self.tranches[share_id]
        except KeyError:
            raise InvalidInput(
                "token", share_id, f"is not an LP share of this pool ({', '.join(self.tranches)})"
            ) from None

    def open_accounts(self) -> list[Account]:
        """Accounts with an open position, in the order they were opened (deterministic)."""
        return [a for a in self.accounts.values() if a.positions]

    # -- moves --------------------------------------------------------------------------------

    def transfer(self, src: Party, dst: Party, amount: Decimal, flow: Flow) -> None:
        """Move `amount` tokens from `src` to `dst` (a negative amount moves them the other way)."""
        if amount == 0:
            return
        with localcontext(MONEY):
            src.balance -= amount
            dst.balance += amount
            src.flows[flow] = src.received(flow) - amount
            dst.flows[flow] = dst.received(flow) + amount

    def deposit(self, account: Account, amount: Decimal) -> None:
        """Tokens enter the venue from outside into `account`."""
        with localcontext(MONEY):
            account.balance += amount
            account.flows[Flow.DEPOSIT] = account.received(Flow.DEPOSIT) + amount
            self.external += amount

    def withdraw(self, account: Account, amount: Decimal) -> None:
        """Tokens leave the venue from `account`."""
        self.deposit(account, -amount)

    def move_position(self, account: Account, option_id: str, delta: Decimal) -> Decimal:
        """Add `delta` contracts to the account's position and the open interest; returns the new position."""
        with localcontext(MONEY):
            new = account.positions.get(option_id, _ZERO) + delta
            oi = self.open_interest.get(option_id, _ZERO) + delta
        if new == 0:
            account.positions.pop(option_id, None)
        else:
            account.positions[option_id] = new
        self.open_interest[option_id] = oi
        return new

    # -- valuation ----------------------------------------------------------------------------

    @staticmethod
    def positions_value(positions: Mapping[str, Decimal], marks: MarkMap) -> Decimal:
        """Mark value of signed positions, pool-asset units."""
        with localcontext(MONEY):
            total = _ZERO
            for option_id, quantity in positions.items():
                if quantity == 0:
                    continue  # a closed option (zero open interest) needs no mark
                mark, contract_size = marks[option_id]
                total += quantity * contract_size * mark
            return total

    def liability(self, marks: MarkMap) -> Decimal:
        """L: the mark value of every open position, what the main pool owes (pool-asset units)."""
        return self.positions_value(self.open_interest, marks)

    def nav(self, tranche: Tranche, marks: MarkMap) -> Decimal:
        """Net asset value of a tranche: its tokens, less L for the main pool (pool-asset units)."""
        if tranche is self.main:
            with localcontext(MONEY):
                return tranche.balance - self.liability(marks)
        return tranche.balance

    def share_value(self, account: Account, tranche: Tranche, nav: Decimal, quantum: Decimal) -> Decimal:
        """The account's pro-rata part of `nav` (free and locked shares), rounded down to `quantum`."""
        held = account.shares.get(tranche.name, _ZERO) + account.locked.get(tranche.name, _ZERO)
        if held == 0 or tranche.shares == 0:
            return _ZERO
        with localcontext(MONEY):
            return (held * nav / tranche.shares).quantize(quantum, rounding=ROUND_FLOOR)

    def trading_pnl(self, account: Account, marks: MarkMap) -> Decimal:
        """balance - external deposits - LP contributions + position value (pool-asset units)."""
        with localcontext(MONEY):
            return (
                account.balance
                - account.received(Flow.DEPOSIT)
                - account.received(Flow.LP)
                + self.positions_value(account.positions, marks)
            )

    def conservation(self, marks: MarkMap) -> Conservation:
        """The identity of the module docstring, every term computed now."""
        pools: Iterable[Tranche] = (self.main, self.insurance)
        with localcontext(MONEY):

            def paid_to_pools(flow: Flow) -> Decimal:
                return sum((t.received(flow) for t in pools), _ZERO)

            liability = self.liability(marks)
            return Conservation(
                external=self.external,
                tokens=sum((p.balance for p in self.accounts.values()), _ZERO)
                + self.main.balance
                + self.insurance.balance,
                premiums=paid_to_pools(Flow.PREMIUM),
                fees=paid_to_pools(Flow.FEE),
                funding=paid_to_pools(Flow.FUNDING),
                penalties=paid_to_pools(Flow.PENALTY),
                bad_debt=-paid_to_pools(Flow.BAD_DEBT),
                liability=liability,
                trader_pnl=sum((self.trading_pnl(a, marks) for a in self.accounts.values()), _ZERO),
                main_pnl=self.main.balance - liability - self.main.received(Flow.LP),
                insurance_pnl=self.insurance.balance - self.insurance.received(Flow.LP),
            )
