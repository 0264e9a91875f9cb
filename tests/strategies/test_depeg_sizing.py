"""Trade sizing on the exact pool math, checked against brute-force searches over sizes.

The v3 pool: token0 / token1 both 6 decimals, price 100 token1 per token0 (tick 46054), fee 0.3%,
tick spacing 60, liquidity from two positions: a full-range one (L = 10**12) and a narrow one
adding 4 x 10**12 on [46020, 46140], so a large swap crosses initialised ticks and the depth
changes on the way. The reference sizes come from scanning exact-input quotes
(`pricing.amm.quote_exact_input`, the contract's own arithmetic), independently of the search.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

from pricing.amm import V3PoolState, get_tick_at_sqrt_ratio, quote_exact_input
from strategies.depeg_sizing import book_best_trade, v3_best_trade

FULL, NARROW = 10**12, 4 * 10**12
SQRT_100 = math.isqrt(100 * 2**192)  # price 100 token1 per token0 (same decimals)
TICKS = ((-887220, FULL), (46020, NARROW), (46140, -NARROW), (887220, -FULL))
STATE = V3PoolState(SQRT_100, get_tick_at_sqrt_ratio(SQRT_100), FULL + NARROW, 3000, 60, TICKS)


def profit(
    amount_in: int, zero_for_one: bool, value: Fraction, gas: Fraction, gas_tick: Fraction
) -> Fraction:
    q = quote_exact_input(STATE, amount_in, zero_for_one)
    return q.amount_out * value - q.amount_in - gas - gas_tick * q.initialized_ticks_crossed


def brute_force(zero_for_one: bool, value: Fraction, gas: Fraction, gas_tick: Fraction, top: int) -> Fraction:
    """Best profit over 4001 evenly spaced sizes in (0, top], then every 1/4000 around the best."""
    step = top // 4000
    best_a = max(range(step, top + 1, step), key=lambda a: profit(a, zero_for_one, value, gas, gas_tick))
    fine = range(max(1, best_a - step), best_a + step, max(1, step // 4000))
    return max(profit(a, zero_for_one, value, gas, gas_tick) for a in fine)


def test_v3_buy_crossing_ticks_matches_brute_force() -> None:
    # buy token0 with token1 (one-for-zero) while it is worth 103 token1: the price must rise
    # from 100 to 103 x 0.997 = 102.69, through the narrow position's upper tick 46140 (~100.77)
    value = Fraction(103)  # worth of one output (token0) unit in input (token1) units
    trade = v3_best_trade(STATE, False, value, Fraction(0), Fraction(0))
    assert trade is not None
    after = quote_exact_input(STATE, trade.amount_in, False).sqrt_price_x96
    assert get_tick_at_sqrt_ratio(after) > 46140  # it went through the narrow range's upper tick
    ours = profit(trade.amount_in, False, value, Fraction(0), Fraction(0))
    assert ours == trade.profit
    # the limit-price optimum is the integer maximum up to the pool's flooring of its output: within
    # one output unit's value plus one input unit (the plateau of the integer profit)
    assert ours >= brute_force(False, value, Fraction(0), Fraction(0), 3 * trade.amount_in) - (value + 1)


def test_v3_sell_with_gas_per_tick_stops_before_a_tick_that_does_not_pay() -> None:
    # sell token0 for token1 (zero-for-one) while token0 is worth 99.5 token1 (value: one token1
    # unit in token0 units): the price falls to 99.5 / 0.997 = 99.80, above the narrow range's
    # lower tick 46020 (~99.66): no initialised tick on the way
    value = Fraction(10, 995)
    trade = v3_best_trade(STATE, True, value, Fraction(5), Fraction(0))
    assert trade is not None
    assert get_tick_at_sqrt_ratio(quote_exact_input(STATE, trade.amount_in, True).sqrt_price_x96) > 46020
    assert trade.profit >= brute_force(True, value, Fraction(5), Fraction(0), 3 * trade.amount_in) - (
        value + 1
    )
    # worth only 1/98: the optimum goes through tick 46020. A huge per-tick gas makes stopping
    # just before it the better trade; the brute force over every size agrees.
    value = Fraction(1, 98)
    crossing = v3_best_trade(STATE, True, value, Fraction(0), Fraction(0))
    assert crossing is not None
    assert get_tick_at_sqrt_ratio(quote_exact_input(STATE, crossing.amount_in, True).sqrt_price_x96) < 46020
    # QuoterV2 also counts tick 46020 for swaps that start in its word slot (PoolTicksCounter's
    # quirk, which the gas model follows): a per-tick gas of half the best profit makes the deeper
    # crossing compete with stopping before the tick
    gas_tick = crossing.profit / 2
    stopped = v3_best_trade(STATE, True, value, Fraction(0), gas_tick)
    assert stopped is not None
    assert stopped.profit >= brute_force(True, value, Fraction(0), gas_tick, 3 * crossing.amount_in) - (
        value + 1
    )


def test_no_pool_trade_when_the_gap_is_inside_the_fee() -> None:
    # worth 100.2 < 100 / 0.997 = 100.30: buying never pays; worth 99.8 > 99.7: selling never pays
    assert v3_best_trade(STATE, False, Fraction(1002, 10), Fraction(0), Fraction(0)) is None
    assert v3_best_trade(STATE, True, Fraction(10, 998), Fraction(0), Fraction(0)) is None


def test_book_takes_every_level_with_a_positive_edge_and_no_more() -> None:
    asks = [(99.0, 2.0), (99.5, 3.0), (99.9, 10.0)]
    # worth 100, fee 10 bps: edges 100 - 99.099 = 0.901, 100 - 99.5995 = 0.4005, 100 - 99.9999 > 0
    trade = book_best_trade(asks, True, 100.0, 10.0, Decimal("0.001"), Decimal(100))
    assert trade is not None
    assert trade.quantity == Decimal(15) and trade.limit_price == 99.9
    assert math.isclose(trade.profit, 2 * 0.901 + 3 * 0.4005 + 10 * (100 - 99.9 * 1.001))
    # worth 99.7: only the first two levels pay (99.9 x 1.001 = 99.9999 > 99.7)
    trade = book_best_trade(asks, True, 99.7, 10.0, Decimal("0.001"), Decimal(100))
    assert trade is not None and trade.quantity == Decimal(5) and trade.limit_price == 99.5
    # capped: 3.5 tokens at most, on the 0.001 grid
    trade = book_best_trade(asks, True, 100.0, 10.0, Decimal("0.001"), Decimal("3.5"))
    assert trade is not None and trade.quantity == Decimal("3.5")
    # sells: bids 101 x 0.999 = 100.899 > 100.5 pays; 100.6 x 0.999 = 100.4994 does not
    trade = book_best_trade([(101.0, 1.0), (100.6, 5.0)], False, 100.5, 10.0, Decimal("0.001"), Decimal(9))
    assert trade is not None and trade.quantity == Decimal(1) and trade.limit_price == 101.0
