"""What anyone can read of a perpetual-options pool: its tranches, open interest, greeks and our stake.

A strategy gets it with `ctx.venue_view(<pool venue>)`; the venue builds it (the simulated pool in
`connectors/sim/options_pool_view.py`; a live pool connector from the pool contract's public state).
Every amount is in the pool asset (a stock token such as TSLAx) unless it says otherwise; times in
ns. The pool is the counterparty of every position, so its book is short the open interest:
`PoolGreeks` are the pool's own sensitivities (a pool short calls has negative delta).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import NamedTuple


class TrancheView(NamedTuple):
    """One LP tranche (main or insurance pool).

    `balance` tokens held; `nav` = balance less the mark value of open positions for the main pool,
    = balance for the insurance pool; `shares` LP shares outstanding; `flows` the net tokens the
    tranche received per flow (`premium`, `fee`, `insurance_share`, `funding`, `penalty`,
    `bad_debt`, `lp`; negative = paid), cumulative since the pool opened. `our_shares` are the
    shares of our account (free + locked in a pending withdrawal), `our_value` their part of the
    NAV (rounded down to the token quantum).
    """

    share_id: str
    balance: Decimal
    nav: Decimal
    shares: Decimal
    flows: Mapping[str, Decimal]
    our_shares: Decimal
    our_value: Decimal

    @property
    def nav_per_share(self) -> Decimal | None:
        """NAV per LP share, None while no share is outstanding (a deposit then mints 1 share per token)."""
        return None if self.shares == 0 else self.nav / self.shares

    @property
    def our_fraction(self) -> Decimal:
        """Our shares / shares outstanding (0 when none are outstanding)."""
        return Decimal(0) if self.shares == 0 else self.our_shares / self.shares


class OptionExposure(NamedTuple):
    """One option the pool sells: open interest (traders' net contracts, long > 0) and its risk.

    `mark` and `payoff` in pool-asset units per unit of underlying; `spot` the underlying in its
    strike currency; `delta` pool-asset units per strike-currency unit of the underlying, `gamma`
    per unit squared, `vega` per 1.00 of vol (per unit of underlying, the buyer's side).
    """

    option: str
    open_interest: Decimal
    contract_size: Decimal
    mark: Decimal
    payoff: Decimal
    spot: Decimal
    delta: float
    gamma: float
    vega: float
    funding_period_years: float


class PoolGreeks(NamedTuple):
    """The pool's own exposure (short the open interest), pool-asset units.

    `delta_1pct`: NAV change for a +1% move of every underlying (sum of -OI x cs x delta x spot x
    0.01); `gamma_1pct`: the change of `delta_1pct` for a further +1% move; `vega_1pt`: NAV change
    for +1 vol point (0.01); `funding_per_year`: the funding the pool earns per year at today's
    marks (sum of OI x cs x (mark - payoff) / funding period in years).
    """

    delta_1pct: float
    gamma_1pct: float
    vega_1pt: float
    funding_per_year: float


class OptionsPoolView(NamedTuple):
    """A snapshot of an options pool at `ts` (see the module docstring for units).

    `liability` is the mark value of every open position (what the main pool owes); `requirement`
    the initial margin of the pool's net short positions and `capital` the two tranches' NAV,
    both in `valuation_asset`; the pool refuses trades and withdrawals that would take
    `requirement / capital` above `max_utilization`. `asset_price` is the pool asset's price in
    `valuation_asset` (None before the first). `withdrawal_delay_ns` delays LP withdrawals;
    `share_quantum` and `token_quantum` are the rounding steps of shares and tokens.
    """

    ts: int
    venue: str
    pool_asset: str
    valuation_asset: str
    asset_price: Decimal | None
    main: TrancheView
    insurance: TrancheView
    liability: Decimal
    requirement: Decimal
    capital: Decimal
    max_utilization: Decimal
    options: tuple[OptionExposure, ...]
    greeks: PoolGreeks
    withdrawal_delay_ns: int
    share_quantum: Decimal
    token_quantum: Decimal

    @property
    def utilization(self) -> Decimal | None:
        """requirement / capital, None while the pool has no capital."""
        return None if self.capital <= 0 else self.requirement / self.capital

    def tranche(self, share_id: str) -> TrancheView:
        """The tranche whose LP share is `share_id`."""
        for tranche in (self.main, self.insurance):
            if tranche.share_id == share_id:
                return tranche
        raise KeyError(share_id)
