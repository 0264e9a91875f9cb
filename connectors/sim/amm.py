"""A simulated AMM venue: our swaps on Uniswap v2 and v3 pools, exact to the base unit, in blocks, with gas.

One `SimAmm` is one chain's pools as our wallet sees them. Each pool is a `connectors.sim.amm_pool`
model (v2 reserves or a v3 state with a liquidity profile) moved by `pricing.amm`'s exact integer
math, so a simulated swap moves the pool exactly as the contract would. The same class backs
backtests (replay driver, simulated clock) and paper trading (wall clock): time comes only from
`self.clock`.

Life of a swap (every status move is legal in `core.orders.TRANSITIONS`)
-------------------------------------------------------------------------
1. `submit(request)` is the wallet's pre-flight, before anything is sent: a `SwapRequest` for this
   venue, a known pool with a known state, `token_in`/`token_out` the pool's two tokens, integer
   amounts (`max_amount_in` only on exact output, `min_amount_out` only on exact input), a
   `deadline_ns` not before the swap can reach the chain (`now + latency_ns`), and a wallet that
   holds what the swap may spend: the input (`amount_in`, or `max_amount_in` when set) and the gas
   of a successful swap at the current gas price are reserved in the venue's `Ledger`. A failure
   returns REJECTED naming the field and value; nothing is sent, nothing is paid. Otherwise it
   returns NEW: the transaction is pending (there is no ACCEPTED: a pending transaction is either
   mined or not, and a revert after an ACCEPTED would be an illegal ACCEPTED -> REJECTED).
2. Inclusion: the swap executes at the first block boundary strictly after `now + latency_ns`
   (blocks every `block_time_ns` from `genesis_ns`, numbered from `genesis_block`), in submission
   order within a block, against the pool state at that time: recorded states stamped before the
   block apply first. Our transaction is first in its block (top of block): a recorded state stamped
   exactly at the block time is the state after that block's other transactions and applies after
   our swap (the driver also wakes venues before delivering events of the same time).
3. Execution, in the contract's order: the deadline (`deadline_ns` < block time reverts), the pool
   math (`AmmError`, e.g. no liquidity, reverts), the slippage bound (`amount_out <
   min_amount_out` or `amount_in > max_amount_in` reverts, the reason naming the bound and what
   the pool would give or take), then the transfers (a wallet that cannot pay the input reverts).
   - Success: one `Fill`, an `OrderUpdate(FILLED)` (the engine moves fill state from the Fill and
     ignores this update), then a `PoolState` of the pool after our swap, stamped at the block, so
     the engine's pool map and the strategies (`on_pool_state`) see our impact. An exact input on
     v3 may use less than `amount_in` when the pool runs out of liquidity (as the router does).
   - Revert: `OrderUpdate(REJECTED)` whose reason names the cause, with the gas burnt
     (`revert_units`) in `fee`/`fee_asset`: gas is paid for a reverted swap as on chain (the engine
     debits an update's fee from the portfolio). The pool does not move.
   - Not included: a wallet that cannot even pay the gas (or, with gas paid in the quote asset, no
     native-coin price) gives REJECTED without a fee, as a node drops such a transaction.
4. `cancel` cannot recall a sent transaction: it answers with the swap's current status and says so.

Recorded states
---------------
A recorded `PoolState` of one of our pools (stamped with this venue's name) replaces the pool's
state: the recorded market is the truth, and our impact lasts until the next record. With
`impact_persists=True` our cumulative net flow is carried over to each record instead (the rule,
per version, is in `connectors.sim.amm_pool`), and the venue re-emits the adjusted state right after
the record (a wake-up at the record's time), so the engine's pool map ends on the state swaps
execute against. How v3 ticks beyond the recorded price are modelled (a `LiquidityProfile`, by
default constant liquidity over the full range) is described there too. A record the pool cannot
use is logged and skipped.

Fills
-----
A swap is booked as a spot trade on the pool's pair (`AmmPoolSpec.pair`, e.g. `Spot("TSLAx/USDC",
base="TSLAx", quote="USDC")`): paying the quote token in is a BUY of the base token, paying the base
token in a SELL. `quantity` is the base amount and `notional` the exact quote amount the pool moved
(display units: base units / 10**decimals, exact), `price` = notional / quantity rounded half-even
to `PRICE_DIGITS` (18) significant digits (informational: the portfolio moves the quote balance by
`notional`, and the cost basis by `price`). The pool's LP fee is inside the swap math, not a fee.

Gas (`connectors.sim.amm_gas.GasModel`): units per swap (v2, v3 plus per tick crossed, revert) x the
gas price at the block. With `gas_fee_in="native"` (default, what the chain does) the fee is that
amount of the native coin (`native_asset`, e.g. ETH), exact in wei, and the wallet must hold it.
With `gas_fee_in="quote"` it is converted at the native coin's price in the pair's quote asset
(`native_price`: a constant or a price source, e.g. `LastPrice` fed with this venue's market events
or `engine_price`), rounded up to the quote token's base unit, and charged in the quote asset: a
simplification for a wallet whose ETH is not tracked.

Balances: the venue's `Ledger` holds the wallet in display units (`Decimal`, like the portfolio):
reserved at submit, settled atomically at execution. A backtest deposits the same starting amounts
into the venue and into the engine's `Portfolio`.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Literal

from connectors.base import swap_request_problem
from connectors.sim.amm_gas import GasModel
from connectors.sim.amm_pool import LiquidityProfile, PoolModel, SwapOutcome, V2Pool, V3Pool
from connectors.sim.base import SimVenue
from connectors.sim.reference_price import LastPrice, PriceSource
from connectors.sim.venue_ledger import Ledger, round_up
from core.clock import Clock
from core.enums import Liquidity, OrderStatus, Side
from core.errors import InvalidInput
from core.events import Event, Fill, OrderUpdate, PoolState
from core.instruments import Pool, Spot
from core.money import MONEY
from core.orders import Request, SwapRequest
from core.venue import PendingTransaction, VenueState
from pricing.amm import AmmError

SECOND = 1_000_000_000
PRICE_DIGITS = 18
"""Significant digits of a swap fill's `price` (quote per base); `notional` is exact."""
_PRICE = Context(prec=PRICE_DIGITS, rounding=ROUND_HALF_EVEN)
_ZERO = Decimal(0)

_REVERTS = {  # (version, what) -> the router's revert string
    (2, "min_out"): "UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT",
    (2, "max_in"): "UniswapV2Router: EXCESSIVE_INPUT_AMOUNT",
    (2, "deadline"): "UniswapV2Router: EXPIRED",
    (3, "min_out"): "Too little received",
    (3, "max_in"): "Too much requested",
    (3, "deadline"): "Transaction too old",
}

log = logging.getLogger("perpetua.sim.amm")


@dataclass(frozen=True, slots=True)
class AmmPoolSpec:
    """One pool the venue trades.

    Args:
        pool: the pool instrument (`token0`/`token1` ids as on chain, `fee` in hundredths of a bip,
            `version` 2 or 3, `tick_spacing`); its `venue` must be the venue's name.
        pair: the spot instrument fills are booked on; `{pair.base, pair.quote}` are the pool's tokens.
        initial: the pool's state at the start (a `PoolState` like a record; None: wait for one).
        profile: v3 only, the liquidity shape beyond the current price (see `amm_pool`).
    """

    pool: Pool
    pair: Spot
    initial: PoolState | None = None
    profile: LiquidityProfile = field(default_factory=LiquidityProfile)

    def __post_init__(self) -> None:
        if {self.pair.base, self.pair.quote} != {self.pool.token0, self.pool.token1}:
            raise InvalidInput(
                "pair",
                self.pair.id,
                f"base and quote must be the tokens of pool {self.pool.id!r} "
                f"({self.pool.token0}, {self.pool.token1})",
            )


@dataclass(frozen=True, slots=True)
class AmmConfig:
    """Chain timing, gas and the record rule; times in ns. See the module docstring.

    Args:
        block_time_ns: time between blocks (> 0): 12 s on Ethereum mainnet, ~2 s on L2s.
        genesis_ns: time of block `genesis_block`; blocks fall at `genesis_ns + k * block_time_ns`.
        genesis_block: number of the block at `genesis_ns`.
        latency_ns: from `submit` to the transaction reaching the chain's mempool (>= 0).
        impact_persists: carry our cumulative impact over recorded states (see `amm_pool`).
        gas: gas units and price.
        gas_fee_in: "native" (fee in `native_asset`) or "quote" (converted to the pair's quote asset).
        native_asset: the chain's native coin, the gas asset.
    """

    block_time_ns: int = 12 * SECOND
    genesis_ns: int = 0
    genesis_block: int = 0
    latency_ns: int = 0
    impact_persists: bool = False
    gas: GasModel = field(default_factory=GasModel)
    gas_fee_in: Literal["native", "quote"] = "native"
    native_asset: str = "ETH"

    def __post_init__(self) -> None:
        for name, low in (("block_time_ns", 1), ("genesis_ns", 0), ("genesis_block", 0), ("latency_ns", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InvalidInput(name, value, f"must be an integer >= {low}")
        if self.gas_fee_in not in ("native", "quote"):
            raise InvalidInput("gas_fee_in", self.gas_fee_in, "must be 'native' or 'quote'")
        if not self.native_asset:
            raise InvalidInput("native_asset", self.native_asset, "must be a non-empty asset id")


@dataclass(slots=True)
class _Pool:
    """A pool the venue trades: its spec and its model."""

    spec: AmmPoolSpec
    model: PoolModel
    dirty_block: int | None = None  # a record (of this block) was adjusted by our persisting impact: re-emit


@dataclass(slots=True)
class _Swap:
    """The venue's record of one swap transaction."""

    request: SwapRequest
    pool: _Pool
    zero_for_one: bool
    block_ts: int
    block_number: int
    nonce: int
    status: OrderStatus = OrderStatus.NEW
    reserved: dict[str, Decimal] = field(default_factory=dict)

    @property
    def tx_hash(self) -> str:
        """A deterministic stand-in for the transaction hash."""
        return f"0x{self.nonce:064x}"


class SimAmm(SimVenue):
    """Simulated Uniswap v2/v3 pools on one chain; see the module docstring for the model.

    Args:
        name: venue name (requests' `venue`, events' `venue`).
        clock: the engine's clock (simulated in backtests, wall clock on paper).
        pools: the pools traded.
        decimals: token id -> decimals (base units per display unit = 10**decimals), for every
            pool token; the native coin defaults to 18.
        config: chain timing, gas, record rule.
        balances: the wallet at the start, asset -> amount (display units).
        native_price: price of the native coin in the pairs' quote asset (constant or source);
            required with `gas_fee_in="quote"`.
    """

    def __init__(
        self,
        name: str,
        clock: Clock,
        pools: Iterable[AmmPoolSpec],
        decimals: Mapping[str, int],
        config: AmmConfig | None = None,
        balances: Mapping[str, Decimal] | None = None,
        native_price: Decimal | PriceSource | None = None,
    ) -> None:
        super().__init__(name, clock)
        self.config = config if config is not None else AmmConfig()
        self.ledger = Ledger(balances)
        self.decimals = dict(decimals)
        self.decimals.setdefault(self.config.native_asset, 18)
        for token, value in self.decimals.items():
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 36:
                raise InvalidInput(f"decimals[{token!r}]", value, "must be an integer in 0..36")
        if isinstance(native_price, Decimal) and (not native_price.is_finite() or native_price <= 0):
            raise InvalidInput("native_price", native_price, "must be a finite Decimal > 0")
        if self.config.gas_fee_in == "quote" and native_price is None:
            raise InvalidInput("native_price", None, "gas_fee_in='quote' needs the native coin's price")
        self.native_price = native_price
        self._feeds = [native_price] if isinstance(native_price, LastPrice) else []
        self.pools: dict[str, _Pool] = {}
        for spec in pools:
            self._add_pool(spec)
        self._swaps: dict[str, _Swap] = {}
        self._due: list[tuple[int, int, str]] = []  # (block ts, nonce, client order id)
        self._nonce = 0

    def _add_pool(self, spec: AmmPoolSpec) -> None:
        pool = spec.pool
        if pool.id in self.pools:
            raise InvalidInput("pools", pool.id, "listed twice")
        if pool.venue != self.name:
            raise InvalidInput(f"{pool.id}.venue", pool.venue, f"must be this venue, {self.name!r}")
        for token in (pool.token0, pool.token1):
            if token not in self.decimals:
                raise InvalidInput("decimals", token, f"missing for a token of pool {pool.id!r}")
        persists = self.config.impact_persists
        model: PoolModel = (
            V2Pool(pool, persists) if pool.version == 2 else V3Pool(pool, spec.profile, persists)
        )
        if spec.initial is not None:
            try:
                model.reset(spec.initial)
            except AmmError as exc:
                raise InvalidInput(f"{pool.id}.initial", spec.initial, str(exc)) from None
        self.pools[pool.id] = _Pool(spec, model)

    # -- driver hooks ------------------------------------------------------------------------

    def on_market(self, event: Event) -> None:
        """Recorded `PoolState`s of our pools replace their state; other events feed the native price."""
        if type(event) is PoolState:
            entry = self.pools.get(event.pool)
            if entry is None:
                return
            try:
                entry.model.reset(event)
            except AmmError as exc:
                log.warning(
                    "%s: skipped recorded state of %s at %d: %s", self.name, event.pool, event.ts, exc
                )
                return
            if entry.model.impact_persists and (entry.model.net0 or entry.model.net1):
                # The engine sees the record; re-emit the state our impact adjusted, right after it.
                entry.dirty_block = event.block_number
                self.wake_at(self.clock.now_ns())
            return
        for feed in self._feeds:
            feed.observe(event)

    def on_time(self, now_ns: int) -> None:
        """Emit adjusted pool states, then execute the swaps of every block due by `now_ns`."""
        for entry in self.pools.values():
            if entry.dirty_block is not None:
                self.emit(entry.model.event(now_ns, self.name, entry.dirty_block))
                entry.dirty_block = None
        while self._due and self._due[0][0] <= now_ns:
            _, _, client_order_id = heapq.heappop(self._due)
            self._execute(self._swaps[client_order_id])

    # -- venue port --------------------------------------------------------------------------

    async def submit(self, request: Request) -> OrderUpdate:
        """Pre-flight a swap; REJECTED (nothing sent) or NEW (pending until its block)."""
        if not isinstance(request, SwapRequest):
            return self.reject(
                request, f"request: {self.name} takes SwapRequest, got {type(request).__name__}"
            )
        if request.venue != self.name:
            return self.reject(request, f"venue: request for {request.venue!r} sent to {self.name!r}")
        if request.client_order_id in self._swaps:
            return self.reject(request, f"client_order_id: {request.client_order_id!r} already used")
        entry = self.pools.get(request.pool)
        if entry is None:
            return self.reject(
                request, f"pool: {request.pool!r} is not traded here (pools {sorted(self.pools)})"
            )
        problem = self._check_request(request, entry)
        if problem is not None:
            return self.reject(request, problem)
        now = self.clock.now_ns()
        arrival = now + self.config.latency_ns
        if request.deadline_ns is not None and request.deadline_ns < arrival:
            return self.reject(
                request,
                f"deadline_ns: {request.deadline_ns} is before the swap reaches the chain at {arrival}",
            )
        pool = entry.spec.pool
        gas_asset = self._gas_asset(entry)
        gas = self._gas_fee(gas_asset, self.config.gas.swap_units(pool.version), now)
        if isinstance(gas, str):
            return self.reject(request, gas)
        spend = {gas_asset: gas}
        limit = request.amount_in if request.amount_in is not None else request.max_amount_in
        if limit is not None:
            spend[request.token_in] = spend.get(request.token_in, _ZERO) + self._display(
                request.token_in, limit
            )
        short = self.ledger.reserve_all(spend)
        if short is not None:
            return self.reject(
                request, f"{short} to swap {request.token_in} for {request.token_out} with gas"
            )
        block_ts, block_number = self.block_at(arrival)
        record = _Swap(request, entry, request.token_in == pool.token0, block_ts, block_number, self._nonce)
        record.reserved = spend
        self._nonce += 1
        self._swaps[request.client_order_id] = record
        heapq.heappush(self._due, (block_ts, record.nonce, request.client_order_id))
        self.wake_at(block_ts)
        return OrderUpdate(now, self.name, request.client_order_id, OrderStatus.NEW, record.tx_hash)

    async def cancel(self, client_order_id: str) -> OrderUpdate:
        """A sent transaction cannot be recalled: answers with the swap's current status and why."""
        record = self._swaps.get(client_order_id)
        if record is None:
            return self.update(
                client_order_id, OrderStatus.REJECTED, f"client_order_id: {client_order_id!r} unknown"
            )
        return self.update(client_order_id, record.status, f"cancel: {self.name} cannot recall a sent swap")

    async def snapshot(self) -> VenueState:
        """The wallet's balances, the pending swaps and their transactions."""
        pending = [r for r in self._swaps.values() if not r.status.is_terminal]
        return VenueState(
            self.name,
            self.clock.now_ns(),
            self.ledger.balances(),
            tuple(self.update(r.request.client_order_id, r.status) for r in pending),
            tuple(PendingTransaction(r.tx_hash, r.nonce, r.request.client_order_id) for r in pending),
        )

    def deposit(self, asset: str, amount: Decimal) -> None:
        """Credit `amount` (> 0, display units) of `asset` to the wallet (mirror it in the portfolio)."""
        self.ledger.deposit(asset, amount)

    # -- model -------------------------------------------------------------------------------

    def block_at(self, ts: int) -> tuple[int, int]:
        """(time ns, number) of the first block strictly after `ts`."""
        config = self.config
        k = (ts - config.genesis_ns) // config.block_time_ns + 1
        return config.genesis_ns + k * config.block_time_ns, config.genesis_block + k

    def pool_state(self, pool_id: str) -> PoolState:
        """The venue's current state of a pool as a `PoolState` (stamped now; block number 0)."""
        return self.pools[pool_id].model.event(self.clock.now_ns(), self.name, 0)

    def _display(self, token: str, units: int) -> Decimal:
        """Integer base units of `token` -> exact display amount."""
        with localcontext(MONEY):
            return Decimal(units).scaleb(-self.decimals[token])

    def _gas_asset(self, entry: _Pool) -> str:
        return self.config.native_asset if self.config.gas_fee_in == "native" else entry.spec.pair.quote

    def _gas_fee(self, asset: str, units: int, ts: int) -> Decimal | str:
        """Gas fee of `units` at `ts` in `asset` (display units), or why it cannot be priced."""
        native = self.config.gas.cost(units, ts)
        if asset == self.config.native_asset:
            return self._to_base_unit(asset, native)
        source = self.native_price
        point = source if isinstance(source, Decimal) or source is None else source()
        price = point if isinstance(point, Decimal) or point is None else point.price
        if price is None:
            return f"native_price: no price of {self.config.native_asset} in {asset} yet to pay gas"
        with localcontext(MONEY):
            return self._to_base_unit(asset, native * price)

    def _to_base_unit(self, asset: str, amount: Decimal) -> Decimal:
        """`amount` rounded up to a whole base unit of `asset` (kept as is when it already is one)."""
        decimals = self.decimals.get(asset, 18)
        exponent = amount.as_tuple().exponent
        if isinstance(exponent, int) and exponent >= -decimals:
            return amount  # no padding with zeros: 0.00022 stays 0.00022
        return round_up(amount, Decimal(1).scaleb(-decimals))

    def _check_request(self, request: SwapRequest, entry: _Pool) -> str | None:
        """Why a swap request cannot be sent, or None."""
        pool = entry.spec.pool
        problem = swap_request_problem(request, pool)
        if problem is not None:
            return problem
        if not entry.model.has_state:
            return f"pool: no state of {pool.id!r} recorded yet"
        return None

    def _execute(self, record: _Swap) -> None:
        """Include one swap in its block: FILLED with its Fill and the new pool state, or reverted."""
        request = record.request
        entry = record.pool
        pool = entry.spec.pool
        ts = record.block_ts
        exact_input = request.amount_in is not None
        if request.deadline_ns is not None and request.deadline_ns < ts:
            self._revert(
                record,
                f"deadline_ns: {request.deadline_ns} passed at block time {ts} "
                f"({_REVERTS[pool.version, 'deadline']!r})",
            )
            return
        amount = request.amount_in if request.amount_in is not None else request.amount_out
        assert amount is not None
        try:
            outcome = entry.model.swap(record.zero_for_one, exact_input, amount)
        except AmmError as exc:
            self._revert(record, f"pool {pool.id}: {exc}")
            return
        if exact_input and outcome.amount_out < request.min_amount_out:
            self._revert(
                record,
                f"min_amount_out: {request.min_amount_out}, but the pool would give {outcome.amount_out} "
                f"{request.token_out} ({_REVERTS[pool.version, 'min_out']!r})",
            )
            return
        if (
            not exact_input
            and request.max_amount_in is not None
            and outcome.amount_in > request.max_amount_in
        ):
            self._revert(
                record,
                f"max_amount_in: {request.max_amount_in}, but the pool would take {outcome.amount_in} "
                f"{request.token_in} ({_REVERTS[pool.version, 'max_in']!r})",
            )
            return
        gas_asset = self._gas_asset(entry)
        units = self.config.gas.swap_units(pool.version, outcome.ticks_crossed)
        gas = self._gas_fee(gas_asset, units, ts)
        if isinstance(gas, str):
            self._drop(record, gas)
            return
        paid = self._display(request.token_in, outcome.amount_in)
        received = self._display(request.token_out, outcome.amount_out)
        deltas = {request.token_in: -paid, request.token_out: received}
        deltas[gas_asset] = deltas.get(gas_asset, _ZERO) - gas
        short = self.ledger.settle(deltas, record.reserved)
        if short is not None:
            self._revert(record, f"{short} for the swap and its gas (transfer failed)")
            return
        entry.model.commit(outcome, record.zero_for_one)
        record.status = OrderStatus.FILLED
        self._emit_fill(record, outcome, paid, received, gas, gas_asset)

    def _emit_fill(
        self,
        record: _Swap,
        outcome: SwapOutcome,
        paid: Decimal,
        received: Decimal,
        gas: Decimal,
        gas_asset: str,
    ) -> None:
        """The Fill on the pair, the FILLED update and the pool's new state."""
        request = record.request
        entry = record.pool
        pair = entry.spec.pair
        ts = record.block_ts
        buy = request.token_in == pair.quote
        quantity, notional = (received, paid) if buy else (paid, received)
        price = _PRICE.divide(notional, quantity)
        cid = request.client_order_id
        self.emit(
            Fill(
                ts,
                self.name,
                pair.id,
                cid,
                Side.BUY if buy else Side.SELL,
                price,
                quantity,
                gas,
                gas_asset,
                Liquidity.TAKER,
                record.tx_hash,
                notional,
            )
        )
        self.emit(OrderUpdate(ts, self.name, cid, OrderStatus.FILLED, record.tx_hash, quantity, price))
        self.emit(entry.model.event(ts, self.name, record.block_number))

    def _revert(self, record: _Swap, reason: str) -> None:
        """The swap reverts in its block: REJECTED, the gas burnt paid, the pool unchanged."""
        ts = record.block_ts
        gas_asset = self._gas_asset(record.pool)
        units = self.config.gas.revert_units
        gas = self._gas_fee(gas_asset, units, ts)
        if isinstance(gas, str):
            self._drop(record, gas)
            return
        short = self.ledger.settle({gas_asset: -gas} if gas else {}, record.reserved)
        if short is not None:
            self._drop(record, f"{short} to pay the gas of a swap that would revert: {reason}")
            return
        record.status = OrderStatus.REJECTED
        gwei = self.config.gas.price_at(ts)
        self.emit(
            OrderUpdate(
                ts,
                self.name,
                record.request.client_order_id,
                OrderStatus.REJECTED,
                record.tx_hash,
                _ZERO,
                None,
                f"{reason}; reverted in block {record.block_number}, gas {units} x {gwei} gwei paid",
                gas,
                gas_asset,
            )
        )

    def _drop(self, record: _Swap, reason: str) -> None:
        """The transaction is not included (it cannot pay its gas): REJECTED, nothing paid."""
        self.ledger.release(record.reserved)
        record.status = OrderStatus.REJECTED
        self.emit(
            OrderUpdate(
                record.block_ts,
                self.name,
                record.request.client_order_id,
                OrderStatus.REJECTED,
                record.tx_hash,
                _ZERO,
                None,
                f"{reason}; not included in block {record.block_number}, nothing paid",
            )
        )
