"""Immutable market and execution events.

Events are NamedTuples: immutable and the cheapest Python object to create that keeps named
fields (backtests create millions; `benchmarks/events.py` measures the cost against frozen
slotted dataclasses and pydantic models). Every event carries `ts`, integer nanoseconds since
the epoch, UTC: the time the event happened at its source (or, for replayed data, was recorded).

Market-data prices are floats (they feed float pricing kernels); anything that settles money
(fills, order quantities) is `Decimal`; on-chain state stays in integers (base units, Q64.96).
Dispatch on `type(event)`, never on equality: two NamedTuples of different types with equal
fields compare equal as tuples.
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from core.enums import Liquidity, OrderStatus, Session, Side


class Quote(NamedTuple):
    """Top of book (or a broker's NBBO) for one instrument on one venue; prices in quote currency."""

    ts: int
    venue: str
    instrument: str
    bid: float
    ask: float
    bid_size: float
    ask_size: float


class Trade(NamedTuple):
    """A public trade printed on a venue (not ours: ours arrive as `Fill`)."""

    ts: int
    venue: str
    instrument: str
    price: float
    size: float
    aggressor: Side | None
    trade_id: str = ""


class BookUpdate(NamedTuple):
    """Order-book levels, best first, each `(price, size)`; a snapshot replaces the book, else the
    listed levels replace theirs and size 0 deletes a level."""

    ts: int
    venue: str
    instrument: str
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]
    is_snapshot: bool = True


class PoolState(NamedTuple):
    """State of an AMM pool after a block or a swap, in the pool's own integer units.

    v2 pools fill `reserve0`/`reserve1` (token base units); v3 pools fill `sqrt_price_x96`
    (Q64.96), `tick` and `liquidity`. Unused fields are 0.
    """

    ts: int
    venue: str
    pool: str
    block_number: int
    reserve0: int = 0
    reserve1: int = 0
    sqrt_price_x96: int = 0
    tick: int = 0
    liquidity: int = 0


class OraclePrice(NamedTuple):
    """A price published by an oracle (Chainlink round, Pyth update, broker last).

    `publish_ts` is the oracle's own publish time (ns), which lags `ts` (when we saw it);
    staleness is judged on `publish_ts`.
    """

    ts: int
    source: str
    instrument: str
    price: float
    publish_ts: int
    round_id: int = 0
    market_status: Session | None = None


class FundingRate(NamedTuple):
    """Funding of a perpetual: `rate` is the fraction of notional paid by longs per interval."""

    ts: int
    venue: str
    instrument: str
    rate: float
    interval_ns: int
    next_funding_ts: int
    mark_price: float = float("nan")
    index_price: float = float("nan")


class MarketStatus(NamedTuple):
    """A trading-session change of a market (e.g. `XNYS` enters `Session.REGULAR`)."""

    ts: int
    market: str
    session: Session
    next_change_ts: int


class OrderUpdate(NamedTuple):
    """A venue's report of an order's state; quantities in the instrument's size units.

    `fee` (in `fee_asset`) is a charge that came without any execution, such as the gas burnt by a
    reverted on-chain swap; the engine debits it like a fill's fee. 0 otherwise.
    """

    ts: int
    venue: str
    client_order_id: str
    status: OrderStatus
    venue_order_id: str = ""
    filled_quantity: Decimal = Decimal(0)
    average_price: Decimal | None = None
    reason: str = ""
    fee: Decimal = Decimal(0)
    fee_asset: str = ""


class Fill(NamedTuple):
    """One execution of one of our orders (or swaps, mints, redeems): the event that moves money.

    `price` is in quote currency per unit of `quantity`; `fee` is in `fee_asset` (a rebate is a
    negative fee). `notional`, when set, is the exact quote amount that changed hands (swaps: the
    integer amounts the pool moved), which `quantity * price` may only approximate.
    """

    ts: int
    venue: str
    instrument: str
    client_order_id: str
    side: Side
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: Liquidity = Liquidity.TAKER
    trade_id: str = ""
    notional: Decimal | None = None


class FundingPayment(NamedTuple):
    """Funding we paid on one derivative position at a venue (a venue's report, like a `Fill`).

    `amount` is in the settlement `asset` (perp: quote, option: margin asset), paid by us when
    positive, received when negative; the engine applies it with `Portfolio.apply_funding`.
    """

    ts: int
    venue: str
    instrument: str
    amount: Decimal
    asset: str


Event = (
    Quote
    | Trade
    | BookUpdate
    | PoolState
    | OraclePrice
    | FundingRate
    | MarketStatus
    | OrderUpdate
    | Fill
    | FundingPayment
)
"""Every event type the engine routes."""
