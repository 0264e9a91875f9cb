"""The public view of the simulated options pool (`core.options_pool_view.OptionsPoolView`).

What a strategy may read of the pool through `ctx.venue_view(name)`: the tranches with their flows
and our stake, the open interest with each option's greeks, the pool's own greeks and its margin
utilisation. Numbers are the ledger's own (`options_pool_ledger`), so a strategy that tracks its
share of premium, funding and losses can be checked against them exactly.
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import TYPE_CHECKING

from connectors.sim.options_pool_ledger import Tranche
from core.money import MONEY
from core.options_pool_view import OptionExposure, OptionsPoolView, PoolGreeks, TrancheView

if TYPE_CHECKING:
    from connectors.sim.options_pool import OptionsPool

_ZERO = Decimal(0)


def options_pool_view(pool: OptionsPool) -> OptionsPoolView:
    """A snapshot of `pool` now (pool-asset units; requirement and capital in the valuation asset)."""
    ledger = pool.ledger
    marks = pool.marks()
    own = ledger.account(pool.config.own_account)

    def tranche(t: Tranche) -> TrancheView:
        nav = ledger.nav(t, marks)
        held = own.shares.get(t.name, _ZERO) + own.locked.get(t.name, _ZERO)
        value = ledger.share_value(own, t, nav, pool.config.token_quantum)
        flows = {str(flow): amount for flow, amount in t.flows.items()}
        return TrancheView(t.name, t.balance, nav, t.shares, flows, held, value)

    exposures = []
    delta = gamma = vega = funding = 0.0
    for option_id, oi in ledger.open_interest.items():
        m = pool.market.mark(option_id)
        if m is None or oi == 0:
            continue
        g = pool.market.greeks(option_id)
        o = m.option
        exposures.append(
            OptionExposure(
                option_id,
                oi,
                o.contract_size,
                m.mark,
                m.payoff,
                m.spot,
                g.delta,
                g.gamma,
                g.vega,
                o.funding_period_years,
            )
        )
        short = -float(oi * o.contract_size)  # the pool is short what traders are long
        step = float(m.spot) * 0.01
        delta += short * g.delta * step
        gamma += short * g.gamma * step * step
        vega += short * g.vega * 0.01
        funding += -short * float(m.mark - m.payoff) / o.funding_period_years
    price = pool.market.price(pool.asset)
    with localcontext(MONEY):
        # The same requirement the pool's capacity check uses (initial margin of its net shorts).
        requirement = pool._pool_requirement(ledger.open_interest)
        capital = (ledger.nav(ledger.main, marks) + ledger.nav(ledger.insurance, marks)) * (price or _ZERO)
    return OptionsPoolView(
        ts=pool.clock.now_ns(),
        venue=pool.name,
        pool_asset=pool.asset,
        valuation_asset=pool.config.valuation_asset,
        asset_price=price,
        main=tranche(ledger.main),
        insurance=tranche(ledger.insurance),
        liability=ledger.liability(marks),
        requirement=requirement,
        capital=capital,
        max_utilization=pool.config.max_utilization,
        options=tuple(exposures),
        greeks=PoolGreeks(delta, gamma, vega, funding),
        withdrawal_delay_ns=pool.config.withdrawal_delay_ns,
        share_quantum=pool.config.share_quantum,
        token_quantum=pool.config.token_quantum,
    )
