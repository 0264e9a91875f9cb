"""Profit-maximising trade sizes against a v2 pair, a v3 pool and an order book: pure functions.

The depeg arbitrage (`strategies.depeg_arb`) values the token at a price `v` outside the venue
(fair value adjusted for every cost of getting out again, see there) and asks: how much should I
swap, or take from the book, to make the most of the gap? Everything here is exact on the venue's
own arithmetic:

- v2 pair: the closed-form optimum `pricing.amm.v2_optimal_arbitrage` (integer, to the unit).
- v3 pool: the profit of an exact-input swap, `out(a) * v - a`, is concave in the input `a`
  (each extra unit of input buys at a worse marginal price), so its maximum is where the marginal
  output per unit of input, after the fee, falls to `1 / v`. That point is a *price*: the swap that
  stops exactly at `P* = 1 / (v (1 - fee))` (zero-for-one) or `P* = v (1 - fee)` (one-for-zero).
  `pricing.amm.v3_swap` with that price as the limit walks the initialised ticks (liquidity
  changes included) and returns the exact integer input that gets there. Gas adds a fixed cost
  per swap and per tick crossed, which makes the net profit step down at every initialised tick;
  the candidates are therefore the optimum itself and the swaps that stop just before each
  initialised tick on the way (so no crossing is paid for that does not pay for itself), each
  priced on the exact integer quotes (an exact input that would round one unit onto a tick is
  backed off). The best of them is the answer: the integer maximum up to the pool's flooring of
  its output, i.e. within one output unit's value plus one input unit (tested by brute force).
- order book: per level the edge is linear (price and fee fixed), so the optimum takes every level
  whose per-unit edge is positive, best first, and nothing more.

Units: amounts in integer base units on pools; prices as `Fraction`s of base units (value of one
output base unit in input base units); book prices and sizes in display units (floats from the
market data, `Decimal` sizes on the instrument's grid).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_DOWN, Decimal
from fractions import Fraction
from typing import NamedTuple

from pricing.amm import (
    FEE_PIPS_DENOMINATOR,
    MAX_SQRT_RATIO,
    MIN_SQRT_RATIO,
    AmmError,
    V3PoolState,
    get_sqrt_ratio_at_tick,
    quote_exact_input,
    quote_exact_output,
    v2_amount_in,
    v2_amount_out,
    v2_optimal_arbitrage,
    v3_swap,
)

Q192 = 2**192


class PoolTrade(NamedTuple):
    """A swap to send: exact input `amount_in` (input base units) expected to give `amount_out`.

    `profit` is in input base units, net of the gas passed in: `amount_out * v - amount_in - gas`.
    `ticks_crossed` is QuoterV2's count of initialised ticks crossed (0 on v2).
    """

    amount_in: int
    amount_out: int
    profit: Fraction
    ticks_crossed: int


class BookTrade(NamedTuple):
    """Take `quantity` (tokens) from the book up to `limit_price`; `profit` in quote currency."""

    quantity: Decimal
    limit_price: float
    profit: float


def v2_best_trade(
    reserve_in: int,
    reserve_out: int,
    fee_pips: int,
    value: Fraction,
    gas_in: Fraction,
    max_in: int | None = None,
    max_out: int | None = None,
) -> PoolTrade | None:
    """The most profitable exact-input swap into a v2 pair, or None when none beats its gas.

    `value`: worth of one output base unit in input base units. `gas_in`: cost of the swap in input
    base units. `max_in` / `max_out` cap the input and the output (base units); the profit is
    concave in the input, so a capped optimum is the cap itself.
    """
    if fee_pips % 100:
        raise AmmError("fee_pips", fee_pips, "a v2 fee must be whole bps (100 pips)")
    fee_bps = fee_pips // 100
    amount_in = v2_optimal_arbitrage(reserve_in, reserve_out, value, fee_bps)
    if amount_in == 0:
        return None
    if max_in is not None:
        amount_in = min(amount_in, max_in)
    if amount_in <= 0:
        return None
    amount_out = v2_amount_out(amount_in, reserve_in, reserve_out, fee_bps)
    if max_out is not None and amount_out > max_out:
        if max_out <= 0:
            return None
        amount_in = v2_amount_in(max_out, reserve_in, reserve_out, fee_bps)
        amount_out = v2_amount_out(amount_in, reserve_in, reserve_out, fee_bps)
    profit = amount_out * value - amount_in - gas_in
    return PoolTrade(amount_in, amount_out, profit, 0) if profit > 0 else None


def v3_target_sqrt_price(state: V3PoolState, zero_for_one: bool, value: Fraction) -> int | None:
    """Q64.96 sqrt price at which the marginal swap stops paying, or None if it already does not.

    Zero-for-one (token0 in, token1 out) at price P = token1/token0 gives P (1 - fee) per unit:
    it pays while P (1 - fee) value > 1, down to P* = 1 / (value (1 - fee)). One-for-zero gives
    (1 - fee) / P per unit: it pays up to P* = value (1 - fee).
    """
    keep = Fraction(FEE_PIPS_DENOMINATOR - state.fee, FEE_PIPS_DENOMINATOR)
    target = 1 / (value * keep) if zero_for_one else value * keep
    # floor(sqrt(target) * 2**96), exactly; one below or above so the limit stays on the paying side
    sqrt_target = math.isqrt(target.numerator * Q192 // target.denominator)
    if zero_for_one:
        sqrt_target += 1  # the pool must not go below P*
        if sqrt_target >= state.sqrt_price_x96:
            return None
        return max(sqrt_target, MIN_SQRT_RATIO + 1)
    if sqrt_target <= state.sqrt_price_x96:
        return None
    return min(sqrt_target, MAX_SQRT_RATIO - 1)


def v3_best_trade(
    state: V3PoolState,
    zero_for_one: bool,
    value: Fraction,
    gas_per_swap_in: Fraction,
    gas_per_tick_in: Fraction,
    max_in: int | None = None,
    max_out: int | None = None,
) -> PoolTrade | None:
    """The most profitable exact-input swap on a v3 pool, or None when none beats its gas.

    `value`: worth of one output base unit in input base units; `gas_per_swap_in` and
    `gas_per_tick_in`: gas of the swap and of each initialised tick it crosses, in input base
    units. See the module docstring for why the candidates below contain the optimum.
    """
    limit = v3_target_sqrt_price(state, zero_for_one, value)
    if limit is None:
        return None
    big = 2**200  # "as much as it takes": the price limit stops the swap
    limits = [limit]
    # Each initialised tick strictly between the current price and the limit: stop just before it.
    low, high = sorted((state.sqrt_price_x96, limit))
    for tick, _ in state.ticks:
        sqrt_tick = get_sqrt_ratio_at_tick(tick)
        if low < sqrt_tick < high:
            limits.append(sqrt_tick + 1 if zero_for_one else sqrt_tick - 1)
    best: PoolTrade | None = None
    for sqrt_limit in limits:
        if not (sqrt_limit < state.sqrt_price_x96 if zero_for_one else sqrt_limit > state.sqrt_price_x96):
            continue
        result = v3_swap(state, zero_for_one, big, sqrt_limit)
        amount_in = result.amount_in
        if amount_in <= 0:
            continue
        if max_in is not None and amount_in > max_in:
            amount_in = max_in
        if max_out is not None and result.amount_out > max_out:
            if max_out <= 0:
                return None
            amount_in = min(amount_in, quote_exact_output(state, max_out, zero_for_one).amount_in)
        if amount_in <= 0:
            continue
        quote = quote_exact_input(state, amount_in, zero_for_one)
        step = 1
        while quote.initialized_ticks_crossed > result.initialized_ticks_crossed and amount_in > step:
            # the exact input rounds one unit past the limit onto the tick: back off until it stops short
            amount_in -= step
            step *= 2
            quote = quote_exact_input(state, amount_in, zero_for_one)
        gas = gas_per_swap_in + gas_per_tick_in * quote.initialized_ticks_crossed
        profit = quote.amount_out * value - quote.amount_in - gas
        if best is None or profit > best.profit:
            best = PoolTrade(quote.amount_in, quote.amount_out, profit, quote.initialized_ticks_crossed)
    return best if best is not None and best.profit > 0 else None


def book_best_trade(
    levels: Sequence[tuple[float, float]],
    buy: bool,
    value: float,
    taker_fee_bps: float,
    size_step: Decimal,
    max_quantity: Decimal,
) -> BookTrade | None:
    """Take every level (best first) whose per-unit edge after the taker fee is positive.

    `levels`: asks for a buy, bids for a sell, `(price, size)` in quote currency and tokens, best
    first. `value`: what a token is worth to us (quote currency). Edge per token: `value -
    price (1 + fee)` for a buy, `price (1 - fee) - value` for a sell. The quantity is rounded down
    to `size_step` and capped at `max_quantity`; the limit price is the worst level taken.
    """
    fee = taker_fee_bps / 10_000
    quantity = Decimal(0)
    profit = 0.0
    limit = 0.0
    for price, size in levels:
        edge = value - price * (1 + fee) if buy else price * (1 - fee) - value
        if edge <= 0 or size <= 0:
            break
        take = min(Decimal(repr(size)), max_quantity - quantity)
        take = (take / size_step).to_integral_value(ROUND_DOWN) * size_step
        if take <= 0:
            break
        quantity += take
        profit += float(take) * edge
        limit = price
    if quantity <= 0:
        return None
    return BookTrade(quantity, limit, profit)
