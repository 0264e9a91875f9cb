"""Depth curves of a token on an AMM pool and an order book, and the arbitrage size between them.

Pure functions, no context: the cross-venue arbitrage (`strategies.cross_venue_arb`) builds a
`PoolCurve` from the pool's latest `PoolState` and a `BookSide` from the book's levels, and asks
`best_arbitrage` for the size that maximises the profit after every cost.

Units: token quantities are display units (`Decimal`, e.g. 1.5 TSLAx), pool amounts are integer base
units inside `PoolCurve` and display units at its surface; money is the quote currency of both
venues (USDC on the pool and USDT on the book are taken at par, 1:1).

The pool side is exact: a v3 pool is priced with `pricing.amm.quote_exact_output` /
`quote_exact_input` (the QuoterV2 semantics the simulated venue and the router use), a v2 pair with
`v2_amount_in` / `v2_amount_out`. A recorded v3 state carries only the in-range liquidity; the
ticks beyond it are taken from one full-range position (the same default shape the simulated AMM
uses, `connectors.sim.amm_pool.LiquidityProfile`), which is exact for the bundled sample's pool.

Search. profit(q) = revenue(q) - cost(q) - gas - safety_bps x q x reference price is concave on the
grid q = k x step (book revenue is piecewise linear with falling prices, pool cost convex, fees
proportional), so the optimum is the last k whose marginal profit profit(k) - profit(k-1) is
positive: a binary search over k in [0, N] with about 2 log2(N) exact pool quotes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from enum import StrEnum

from core.errors import InvalidInput
from core.events import PoolState
from core.instruments import Pool
from core.money import MONEY
from pricing.amm import (
    MAX_TICK,
    AmmError,
    V3PoolState,
    quote_exact_input,
    quote_exact_output,
    v2_amount_in,
    v2_amount_out,
)

BPS = Decimal(10_000)
_ZERO = Decimal(0)
NO_TRADE = Decimal("-1e30")
"""Profit of an infeasible size: below any real profit, so the search never picks it."""


class Direction(StrEnum):
    """Which venue buys the token: buy on the pool and sell on the book, or the reverse."""

    BUY_POOL_SELL_BOOK = "buy_pool_sell_book"
    BUY_BOOK_SELL_POOL = "buy_book_sell_pool"


def full_range_ticks(liquidity: int, tick_spacing: int) -> tuple[tuple[int, int], ...]:
    """Initialized ticks `(tick, liquidity_net)` of one full-range position of `liquidity`."""
    upper = (MAX_TICK // tick_spacing) * tick_spacing
    return ((-upper, liquidity), (upper, -liquidity))


@dataclass(frozen=True, slots=True)
class PoolCurve:
    """The token's exact price curve on one pool, for the quantities the search asks about.

    Args:
        pool: the pool instrument (tokens as on chain, fee in pips, version, tick spacing).
        state: its latest `PoolState` (v2 reserves, or v3 price, tick and in-range liquidity).
        token: the token traded (one of the pool's tokens); the other is the quote.
        token_decimals, quote_decimals: base units per display unit are 10**decimals.
    """

    pool: Pool
    state: PoolState
    token: str
    token_decimals: int
    quote_decimals: int

    def __post_init__(self) -> None:
        if self.token not in (self.pool.token0, self.pool.token1):
            raise InvalidInput("token", self.token, f"is not a token of pool {self.pool.id}")

    @property
    def token_is_0(self) -> bool:
        """Whether the token is the pool's token0."""
        return self.token == self.pool.token0

    def _v3(self) -> V3PoolState:
        s = self.state
        ticks = full_range_ticks(s.liquidity, self.pool.tick_spacing)
        return V3PoolState(
            s.sqrt_price_x96, s.tick, s.liquidity, self.pool.fee, self.pool.tick_spacing, ticks
        )

    def spot_price(self) -> float:
        """Marginal price now, quote per token (display units, before the fee); 0 when unknown."""
        s = self.state
        if self.pool.version == 2:
            if s.reserve0 == 0 or s.reserve1 == 0:
                return 0.0
            raw = s.reserve1 / s.reserve0  # token1 base units per token0 base unit
        else:
            raw = (s.sqrt_price_x96 / 2**96) ** 2
        d0, d1 = (
            (self.token_decimals, self.quote_decimals)
            if self.token_is_0
            else (self.quote_decimals, self.token_decimals)
        )
        price = raw * 10.0 ** (d0 - d1)  # token1 per token0, display units
        return price if self.token_is_0 else (1.0 / price if price > 0 else 0.0)

    def token_units(self, quantity: Decimal) -> int:
        """Display tokens -> base units (exact for any quantity on a coarser grid)."""
        return int(quantity.scaleb(self.token_decimals).to_integral_value(ROUND_FLOOR))

    def buy_cost_units(self, quantity: Decimal) -> int | None:
        """Quote base units paid in for exactly `quantity` tokens out (fee included), None if impossible."""
        out = self.token_units(quantity)
        if out <= 0:
            return 0
        try:
            if self.pool.version == 2:
                s = self.state
                reserve_in, reserve_out = (
                    (s.reserve1, s.reserve0) if self.token_is_0 else (s.reserve0, s.reserve1)
                )
                return v2_amount_in(out, reserve_in, reserve_out, self.pool.fee // 100)
            # Buying token0 pays token1 in: one for zero.
            return quote_exact_output(self._v3(), out, not self.token_is_0).amount_in
        except AmmError:
            return None

    def sell_proceeds_units(self, quantity: Decimal) -> int | None:
        """Quote base units paid out for exactly `quantity` tokens in (fee included), None if impossible."""
        amount = self.token_units(quantity)
        if amount <= 0:
            return 0
        try:
            if self.pool.version == 2:
                s = self.state
                reserve_in, reserve_out = (
                    (s.reserve0, s.reserve1) if self.token_is_0 else (s.reserve1, s.reserve0)
                )
                return v2_amount_out(amount, reserve_in, reserve_out, self.pool.fee // 100)
            result = quote_exact_input(self._v3(), amount, self.token_is_0)
            return None if result.partial else result.amount_out
        except AmmError:
            return None

    def buy_cost(self, quantity: Decimal) -> Decimal | None:
        """Quote paid for `quantity` tokens, display units."""
        units = self.buy_cost_units(quantity)
        return None if units is None else Decimal(units).scaleb(-self.quote_decimals)

    def sell_proceeds(self, quantity: Decimal) -> Decimal | None:
        """Quote received for `quantity` tokens, display units."""
        units = self.sell_proceeds_units(quantity)
        return None if units is None else Decimal(units).scaleb(-self.quote_decimals)


@dataclass(frozen=True, slots=True)
class BookSide:
    """One side of a book, best level first: `(price, size)` in quote per token and tokens."""

    levels: tuple[tuple[Decimal, Decimal], ...]

    @property
    def depth(self) -> Decimal:
        """Total visible size, tokens."""
        return sum((size for _, size in self.levels), _ZERO)

    def walk(self, quantity: Decimal) -> tuple[Decimal, Decimal] | None:
        """(notional, worst price) of taking `quantity` tokens level by level; None beyond the depth."""
        left = quantity
        notional = _ZERO
        worst = self.levels[0][0] if self.levels else _ZERO
        with localcontext(MONEY):
            for price, size in self.levels:
                if left <= 0:
                    break
                take = min(left, size)
                notional += take * price
                worst = price
                left -= take
        return None if left > 0 else (notional, worst)


def book_side(levels: Sequence[tuple[float, float]]) -> BookSide:
    """A `BookSide` from market-data levels (floats become `Decimal` through their shortest repr)."""
    return BookSide(tuple((Decimal(repr(p)), Decimal(repr(s))) for p, s in levels if s > 0 and p > 0))


@dataclass(frozen=True, slots=True)
class ArbCosts:
    """Costs beyond the pool's fee (which is inside the curve): book taker fee and safety margin in
    bps of notional, gas per swap and the minimum profit in quote units."""

    book_fee_bps: Decimal
    gas: Decimal
    safety_bps: Decimal
    min_profit: Decimal


@dataclass(frozen=True, slots=True)
class ArbPlan:
    """The best trade: direction, tokens, expected profit (quote), the book's worst level price (the
    IOC limit), the pool's quote amount (display units: cost of a buy, proceeds of a sell) and the
    book notional before fees."""

    direction: Direction
    quantity: Decimal
    profit: Decimal
    book_limit: Decimal
    pool_amount: Decimal
    book_notional: Decimal


def arbitrage_profit(
    direction: Direction, quantity: Decimal, pool: PoolCurve, book: BookSide, costs: ArbCosts
) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """(profit, book worst price, pool amount, book notional) of `quantity` tokens in `direction`.

    profit = revenue - cost - book fee - gas - safety margin (quote units); `NO_TRADE` when a venue
    cannot take the quantity. 0 tokens give 0 profit (no gas is spent without a trade).
    """
    if quantity <= 0:
        return _ZERO, _ZERO, _ZERO, _ZERO
    walked = book.walk(quantity)
    if walked is None:
        return NO_TRADE, _ZERO, _ZERO, _ZERO
    notional, worst = walked
    pool_amount = (
        pool.buy_cost(quantity) if direction is Direction.BUY_POOL_SELL_BOOK else pool.sell_proceeds(quantity)
    )
    if pool_amount is None:
        return NO_TRADE, worst, _ZERO, notional
    with localcontext(MONEY):
        fee = notional * costs.book_fee_bps / BPS
        safety = notional * costs.safety_bps / BPS
        if direction is Direction.BUY_POOL_SELL_BOOK:
            gross = notional - pool_amount
        else:
            gross = pool_amount - notional
        return gross - fee - costs.gas - safety, worst, pool_amount, notional


def may_pay(direction: Direction, pool: PoolCurve, book: BookSide, costs: ArbCosts) -> bool:
    """Whether the first unit can make money at all: the best book price against the pool's marginal
    price, each side net of its fee and the safety margin (a cheap float test before the search)."""
    if not book.levels:
        return False
    spot = pool.spot_price()
    if spot <= 0:
        return False
    keep = 1.0 - pool.pool.fee / 1_000_000
    edge = float((costs.book_fee_bps + costs.safety_bps) / BPS)
    best = float(book.levels[0][0])
    if direction is Direction.BUY_POOL_SELL_BOOK:
        return best * (1.0 - edge) > spot / keep
    return spot * keep > best * (1.0 + edge)


def best_arbitrage(
    direction: Direction,
    pool: PoolCurve,
    book: BookSide,
    costs: ArbCosts,
    step: Decimal,
    max_quantity: Decimal,
) -> ArbPlan | None:
    """The profit-maximising multiple of `step` tokens up to `max_quantity` in `direction`, or None.

    None when no size makes more than `costs.min_profit` (see the module docstring for the search).
    `book` is the side we take: bids when selling on the book, asks when buying there.
    """
    if step <= 0:
        raise InvalidInput("step", step, "must be > 0")
    limit = min(max_quantity, book.depth)
    n = int((limit / step).to_integral_value(ROUND_FLOOR)) if limit > 0 else 0
    cache: dict[int, tuple[Decimal, Decimal, Decimal, Decimal]] = {}

    def at(k: int) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        if k not in cache:
            cache[k] = arbitrage_profit(direction, step * k, pool, book, costs)
        return cache[k]

    # The fixed gas cost makes profit(0) -> profit(1) jump down; compare marginals without it.
    def marginal(k: int) -> Decimal:
        before = at(k - 1)[0] if k > 1 else -costs.gas
        return at(k)[0] - before

    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if marginal(mid) > 0:
            lo = mid
        else:
            hi = mid - 1
    if lo == 0:
        return None
    profit, worst, pool_amount, notional = at(lo)
    if profit <= costs.min_profit:
        return None
    return ArbPlan(direction, step * lo, profit, worst, pool_amount, notional)


def round_to(value: Decimal, step: Decimal, up: bool) -> Decimal:
    """`value` on the grid of `step`, rounded up or down."""
    with localcontext(MONEY):
        k = (value / step).to_integral_value(ROUND_CEILING if up else ROUND_FLOOR)
        return k * step
