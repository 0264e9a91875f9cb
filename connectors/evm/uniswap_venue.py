"""Uniswap v2/v3 pools on one EVM chain as a `Venue`: our swaps, their exact fills, the pools' states.

`UniswapVenue(name, session, pools, tokens)` trades the pools of `pools` (each a `UniswapPoolSpec`:
the `core.instruments.Pool`, the spot pair fills are booked on, and its router: SwapRouter for v3,
UniswapV2Router02 for v2) from the account of `session` (a `ChainSession`: EIP-1559 fees under a
cap, managed nonces, local signing, confirmations, decoded reverts). `tokens` maps our token ids to
their addresses. Call `await venue.start()` first: it reads decimals and every pool's state and
checks each pool's tokens against the chain.

Life of a swap (every status move is legal in `core.orders.TRANSITIONS`)
-------------------------------------------------------------------------
1. `submit(SwapRequest)` is the pre-flight: the venue, an unused client order id, a known pool,
   `token_in`/`token_out` its tokens, integer base units, `max_amount_in` only on exact output and
   `min_amount_out` only on exact input, a `deadline_ns` not in the past. The pool is brought up to
   the latest block from its logs and the swap quoted locally (`pricing.amm`, to the wei of the
   contracts): a swap the pool cannot fill in full is refused. The slippage bound is the request's
   (`min_amount_out` / `max_amount_in`) or, when it gives none (0 / None), the quote x (1 -/+
   `default_slippage`); a bound looser than `max_slippage` from the quote is refused (a sandwich
   invitation). The wallet must hold what the swap may spend. A failure returns REJECTED naming
   the field and value; nothing is sent, nothing is paid.
2. Sending: the router is approved for exactly what the swap may spend when the allowance is short
   (that approval is mined first: `submit` waits for it), then the swap is sent with the bound and
   the deadline (`deadline_ns`, default now + 120 s). `submit` returns NEW with the swap's tx hash as
   `venue_order_id` once the node took it. A swap refused in gas estimation (the router's revert
   reason, e.g. 'Too little received') is REJECTED at once with the reason; its fee is the gas of
   the approval sent for it, if any.
3. Mined: one `Fill` on the pair (paying the quote token is a BUY of the base token; `quantity` the
   base amount, `notional` the exact quote amount the receipt's Swap log moved, `price` = notional /
   quantity to 18 significant digits) then `OrderUpdate(FILLED)`, through `stream()`; the pool's
   `PoolState` of that block comes from its Swap log, before or after our fill (whichever the venue
   sees first: the log poller and the receipt wait run side by side). A mined revert gives REJECTED
   with the decoded reason. The fee of either is all the gas this swap burnt (its approval
   included), gasUsed x effectiveGasPrice, in the native coin (`native_asset`, exact in wei); with
   a `native_price` it is converted into the pair's quote token, rounded up to its base unit.
4. `cancel`: an unknown id is REJECTED. A swap not yet sent (still approving) is never sent and ends
   CANCELLED. A pending swap is replaced by a zero-value self-transfer at its nonce with higher fees;
   the answer keeps the status NEW and says so, and CANCELLED (fee: the gas of what was mined) or the
   fill follows, whichever the chain mines. A mined swap cannot be cancelled: the answer carries its
   final status and says so (never REJECTED: the engine would move a mined order to it).

`stream()` yields our fills and updates and every pool's `PoolState` after each Swap/Mint/Burn
(v3) or Sync (v2) log, polled every `poll_interval_s` (`PoolLogFollower.poll_once`). `snapshot()`
gives the wallet's balances of every token and of the native coin (display units, exact), the
swaps not yet final and their pending transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from eth_typing import ChecksumAddress
from web3 import AsyncWeb3
from web3.exceptions import Web3Exception
from web3.types import TxParams, TxReceipt

from connectors.base import EventQueue, order_update, rejected, swap_request_problem
from connectors.evm.chain import ChainSession, FeeCapExceeded, TransactionTimeout
from connectors.evm.erc20 import ERC20, from_base_units
from connectors.evm.nonce import Submitted, TransactionReplaced
from connectors.evm.pool_logs import PoolLogFollower
from connectors.evm.revert import TransactionReverted
from connectors.evm.uniswap_v2 import UniswapV2Pair
from connectors.evm.uniswap_v3 import DEFAULT_SLIPPAGE, ExecutedSwap, UniswapV3Pool, slippage_bounds
from core.clock import Clock, LiveClock
from core.enums import Liquidity, OrderStatus, Side
from core.errors import InvalidInput, PerpetuaError
from core.events import Fill, OrderUpdate
from core.instruments import Pool, Spot
from core.orders import Request, SwapRequest
from core.venue import PendingTransaction, VenueState
from pricing.amm import AmmError

log = logging.getLogger(__name__)

PRICE_DIGITS = 18
"""Significant digits of a fill's `price` (quote per base), as the simulated AMM; `notional` is exact."""
_PRICE = Context(prec=PRICE_DIGITS, rounding=ROUND_HALF_EVEN)
_EXACT = Context(prec=120, rounding=ROUND_CEILING)  # products of wei and a price, exact before rounding
NS_PER_S = 1_000_000_000
DEFAULT_MAX_SLIPPAGE = Decimal("0.05")


@dataclass(frozen=True, slots=True)
class UniswapPoolSpec:
    """One pool the venue trades: the pool, the pair its fills are booked on, and its router's address.

    `pool.token0`/`token1` are our token ids (keys of the venue's `tokens`), in the chain's order;
    `{pair.base, pair.quote}` must be those two tokens; `router` is a SwapRouter (v3) or a
    UniswapV2Router02 (v2) on the pool's factory.
    """

    pool: Pool
    pair: Spot
    router: str

    def __post_init__(self) -> None:
        if {self.pair.base, self.pair.quote} != {self.pool.token0, self.pool.token1}:
            raise InvalidInput(
                "pair",
                self.pair.id,
                f"base and quote must be the tokens of pool {self.pool.id!r} ({self.pool.token0}, "
                f"{self.pool.token1})",
            )
        if not AsyncWeb3.is_address(self.router):
            raise InvalidInput(f"{self.pool.id}.router", self.router, "must be a 20-byte 0x address")


@dataclass(slots=True)
class _Swap:
    """The venue's record of one swap."""

    request: SwapRequest
    spec: UniswapPoolSpec
    zero_for_one: bool
    spend: int  # the most the swap may take of token_in (base units): what is approved
    bound: int  # amountOutMinimum (exact input) or amountInMaximum (exact output), base units
    deadline_s: int | None
    status: OrderStatus = OrderStatus.NEW
    submitted: Submitted | None = None
    replacement: str | None = None  # hash of the no-op sent to cancel it
    cancel_requested: bool = False
    acked: bool = False  # submit has returned: later events go to the stream
    early: list[Fill | OrderUpdate] = field(default_factory=list)  # events made before the ack
    sent: asyncio.Future[Submitted] | None = None
    task: asyncio.Task[None] | None = None

    @property
    def tx_hash(self) -> str:
        """The swap transaction's 0x hash ("" before it is sent)."""
        return self.submitted.tx_hash if self.submitted is not None else ""


class _RecordingSender:
    """The `TransactionSender` a pool swap goes through: the session, reporting the submitted tx."""

    def __init__(self, session: ChainSession, record: _Swap, gas_limit: int | None) -> None:
        self.session = session
        self.record = record
        self.gas_limit = gas_limit
        self.receipt: TxReceipt | None = None

    @property
    def address(self) -> ChecksumAddress:
        """The session's account."""
        return self.session.address

    def _on_submitted(self, submitted: Submitted) -> None:
        self.record.submitted = submitted
        if self.record.sent is not None and not self.record.sent.done():
            self.record.sent.set_result(submitted)

    async def send(self, tx: TxParams) -> TxReceipt:
        """Send through the session (a fixed gas limit skips estimation); keep the receipt."""
        call: dict[str, Any] = dict(tx)
        if self.gas_limit is not None:
            call["gas"] = self.gas_limit
        self.receipt = await self.session.send(call, on_submitted=self._on_submitted)
        return self.receipt


def gas_wei(receipt: Mapping[str, Any]) -> int:
    """Wei a mined transaction paid for gas: gasUsed x effectiveGasPrice."""
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


class UniswapVenue:
    """Uniswap pools on one chain behind the venue port; see the module docstring.

    Args:
        name: venue name (requests' `venue`, events' `venue`; each `pool.venue` must equal it).
        session: the signing account's chain session (started).
        pools: the pools traded.
        tokens: token id -> ERC-20 address, for every pool token.
        clock: stamps updates and snapshots (ns); fills carry their block's time.
        native_asset: the chain's coin that pays gas.
        native_price: the native coin's price in the pairs' quote token (a Decimal or a callable giving
            one, or None when unknown): when given, fees are charged in the quote token.
        default_slippage: fraction of the quote allowed when a request gives no bound.
        max_slippage: the loosest bound a request may give, as a fraction of the quote.
        swap_gas_limit: a fixed gas limit for swaps (skips estimation, so a swap that would revert
            is mined and pays its gas); None estimates.
        poll_interval_s: how often `stream()` polls the pools' logs.
    """

    def __init__(
        self,
        name: str,
        session: ChainSession,
        pools: Iterable[UniswapPoolSpec],
        tokens: Mapping[str, str],
        *,
        clock: Clock | None = None,
        native_asset: str = "ETH",
        native_price: Decimal | Callable[[], Decimal | None] | None = None,
        default_slippage: Decimal = DEFAULT_SLIPPAGE,
        max_slippage: Decimal = DEFAULT_MAX_SLIPPAGE,
        swap_gas_limit: int | None = None,
        poll_interval_s: float = 1.0,
    ) -> None:
        for label, fraction in (("default_slippage", default_slippage), ("max_slippage", max_slippage)):
            if not isinstance(fraction, Decimal) or not fraction.is_finite() or not 0 <= fraction < 1:
                raise InvalidInput(label, fraction, "must be a Decimal fraction in [0, 1)")
        if default_slippage > max_slippage:
            raise InvalidInput("default_slippage", default_slippage, f"exceeds max_slippage {max_slippage}")
        if swap_gas_limit is not None and swap_gas_limit < 21_000:
            raise InvalidInput("swap_gas_limit", swap_gas_limit, "must be >= 21000 gas or None")
        if poll_interval_s <= 0:
            raise InvalidInput("poll_interval_s", poll_interval_s, "must be > 0 s")
        if isinstance(native_price, Decimal) and (not native_price.is_finite() or native_price <= 0):
            raise InvalidInput("native_price", native_price, "must be a finite Decimal > 0")
        self.name = name
        self.session = session
        self.clock: Clock = clock if clock is not None else LiveClock()
        self.native_asset = native_asset
        self.native_price = native_price
        self.default_slippage = default_slippage
        self.max_slippage = max_slippage
        self.swap_gas_limit = swap_gas_limit
        self.poll_interval_s = poll_interval_s
        w3 = session.w3
        self.tokens: dict[str, ERC20] = {
            token: ERC20(w3, address, session=session) for token, address in tokens.items()
        }
        self.pools: dict[str, UniswapPoolSpec] = {}
        self._chain_pools: dict[str, UniswapV3Pool | UniswapV2Pair] = {}
        self._followers: dict[str, PoolLogFollower] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        for spec in pools:
            pool = spec.pool
            if pool.id in self.pools:
                raise InvalidInput("pools", pool.id, "listed twice")
            if pool.venue != name:
                raise InvalidInput(f"{pool.id}.venue", pool.venue, f"must be this venue, {name!r}")
            for token in (pool.token0, pool.token1):
                if token not in self.tokens:
                    raise InvalidInput("tokens", token, f"no address for a token of pool {pool.id!r}")
            chain_pool = (UniswapV3Pool if pool.version == 3 else UniswapV2Pair)(w3, pool.address)
            self.pools[pool.id] = spec
            self._chain_pools[pool.id] = chain_pool
            self._followers[pool.id] = PoolLogFollower(chain_pool, venue=name, pool_id=pool.id)
            self._locks[pool.id] = asyncio.Lock()
        self.decimals: dict[str, int] = {native_asset: 18}
        self._swaps: dict[str, _Swap] = {}
        self._events = EventQueue()
        self._started = False

    def __repr__(self) -> str:
        return f"UniswapVenue(name={self.name!r}, account={self.session.address}, pools={sorted(self.pools)})"

    # -- set-up ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Read token decimals and every pool's state; check each pool's tokens against the chain."""
        for token_id, token in self.tokens.items():
            self.decimals[token_id] = await token.decimals()
        for pool_id, spec in self.pools.items():
            chain_pool = self._chain_pools[pool_id]
            await chain_pool.refresh()
            expected = (self.tokens[spec.pool.token0].address, self.tokens[spec.pool.token1].address)
            if (chain_pool.token0, chain_pool.token1) != expected:
                raise InvalidInput(
                    f"{pool_id}.tokens",
                    (spec.pool.token0, spec.pool.token1),
                    f"pool {chain_pool.address} holds {chain_pool.token0}, {chain_pool.token1} on chain",
                )
        self._started = True

    async def close(self) -> None:
        """Stop waiting for swaps in flight (they may still be mined: `snapshot` after a restart)."""
        tasks = [r.task for r in self._swaps.values() if r.task is not None and not r.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_idle(self) -> None:
        """Wait until every swap sent is final (mined, reverted or replaced)."""
        tasks = [r.task for r in self._swaps.values() if r.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- market data -----------------------------------------------------------------------------

    async def _catch_up(self, pool_id: str) -> None:
        """Apply the pool's new logs up to the latest block; their PoolStates go to the stream."""
        async with self._locks[pool_id]:
            for event in await self._followers[pool_id].poll_once():
                self._events.put(event)

    async def _poll_pools(self) -> None:
        while True:
            for pool_id in self.pools:
                await self._catch_up(pool_id)
            await asyncio.sleep(self.poll_interval_s)

    def stream(self) -> AsyncIterator[Any]:
        """Our fills and order updates, and each pool's `PoolState` after every state-changing log.

        One consumer at a time; the pool polling stops when the iteration stops.
        """
        return self._events.stream([asyncio.ensure_future(self._poll_pools())])

    # -- execution -------------------------------------------------------------------------------

    def _reject(self, request: Request, reason: str) -> OrderUpdate:
        return rejected(self.clock.now_ns(), self.name, request.client_order_id, reason)

    def _check(self, request: Request) -> str | None:
        """Why the request cannot be sent, judged without the chain (field and value named), or None."""
        if not isinstance(request, SwapRequest):
            return f"request: {self.name} takes SwapRequest, got {type(request).__name__}"
        if request.venue != self.name:
            return f"venue: request for {request.venue!r} sent to {self.name!r}"
        if request.client_order_id in self._swaps:
            return f"client_order_id: {request.client_order_id!r} already used"
        spec = self.pools.get(request.pool)
        if spec is None:
            return f"pool: {request.pool!r} is not traded here (pools {sorted(self.pools)})"
        problem = swap_request_problem(request, spec.pool)
        if problem is not None:
            return problem
        if request.deadline_ns is not None and request.deadline_ns <= self.clock.now_ns():
            return f"deadline_ns: {request.deadline_ns} is not after now ({self.clock.now_ns()})"
        return None

    def _quote(self, request: SwapRequest, zero_for_one: bool) -> int | str:
        """The local quote (amount out for exact input, in for exact output, base units) or why none."""
        chain_pool = self._chain_pools[request.pool]
        exact_input = request.amount_in is not None
        amount = request.amount_in if exact_input else request.amount_out
        assert amount is not None
        name = "amount_in" if exact_input else "amount_out"
        try:
            if isinstance(chain_pool, UniswapV2Pair):
                if exact_input:
                    return chain_pool.quote_exact_input(amount, zero_for_one)
                return chain_pool.quote_exact_output(amount, zero_for_one)
            result = (chain_pool.quote_exact_input if exact_input else chain_pool.quote_exact_output)(
                amount, zero_for_one
            )
        except AmmError as exc:
            return f"{name}: {amount} cannot be swapped in pool {request.pool!r}: {exc}"
        if result.partial:
            return f"{name}: {amount} exceeds what pool {request.pool!r} can fill (its liquidity runs out)"
        return int(result.amount_out if exact_input else result.amount_in)

    def _bound(self, request: SwapRequest, quoted: int) -> int | str:
        """The router bound (base units) for a quote, or why the request's own bound is refused."""
        loosest = slippage_bounds(quoted, self.max_slippage, request.amount_in is not None)
        if request.amount_in is not None:
            if not request.min_amount_out:
                return slippage_bounds(quoted, self.default_slippage, True)
            if request.min_amount_out < loosest:
                return (
                    f"min_amount_out: {request.min_amount_out} is below the quote {quoted} by more than "
                    f"max_slippage {self.max_slippage} (at least {loosest})"
                )
            return request.min_amount_out
        if request.max_amount_in is None:
            return slippage_bounds(quoted, self.default_slippage, False)
        if request.max_amount_in > loosest:
            return (
                f"max_amount_in: {request.max_amount_in} is above the quote {quoted} by more than "
                f"max_slippage {self.max_slippage} (at most {loosest})"
            )
        return request.max_amount_in

    async def submit(self, request: Request) -> OrderUpdate:
        """Pre-flight, approve if needed, send the swap; NEW with its tx hash, or REJECTED with why."""
        if not self._started:
            raise PerpetuaError(f"{self!r}: call `await start()` first")
        problem = self._check(request)
        if problem is not None:
            return self._reject(request, problem)
        assert isinstance(request, SwapRequest)
        spec = self.pools[request.pool]
        zero_for_one = request.token_in == spec.pool.token0
        await self._catch_up(request.pool)
        quoted = self._quote(request, zero_for_one)
        if isinstance(quoted, str):
            return self._reject(request, quoted)
        bound = self._bound(request, quoted)
        if isinstance(bound, str):
            return self._reject(request, bound)
        exact_input = request.amount_in is not None
        spend = request.amount_in if request.amount_in is not None else bound
        held = await self.tokens[request.token_in].balance_of()
        if held < spend:
            field_name = "amount_in" if exact_input else "max_amount_in"
            return self._reject(
                request,
                f"{field_name}: the swap may spend {spend} base units of {request.token_in}, "
                f"the wallet holds {held}",
            )
        deadline = None if request.deadline_ns is None else request.deadline_ns // NS_PER_S
        record = _Swap(request, spec, zero_for_one, spend, bound, deadline)
        record.sent = asyncio.get_running_loop().create_future()
        self._swaps[request.client_order_id] = record
        record.task = asyncio.create_task(self._run(record), name=f"{self.name}-{request.client_order_id}")
        waiting: list[asyncio.Future[Any]] = [record.sent, record.task]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        record.acked = True
        if record.sent.done():
            for event in record.early:  # mined before this coroutine resumed: stream it after the ack
                self._events.put(event)
            return order_update(
                self.clock.now_ns(), self.name, request.client_order_id, OrderStatus.NEW,
                f"sent at nonce {record.sent.result().nonce}", venue_order_id=record.tx_hash,
            )  # fmt: skip
        record.sent.cancel()
        if not record.early:
            record.task.result()  # an error nobody expected: raise it here
            raise PerpetuaError(f"{self.name}: swap {request.client_order_id} ended without an outcome")
        final = record.early[-1]  # refused before sending: the one final update, returned, not streamed
        assert isinstance(final, OrderUpdate)
        return final

    def _emit(self, record: _Swap, event: Fill | OrderUpdate) -> None:
        if record.acked:
            self._events.put(event)
        else:
            record.early.append(event)

    def gas_fee(self, wei: int, quote: str) -> tuple[Decimal, str]:
        """Gas of `wei` as (fee, asset): native coin, or the `quote` token at `native_price`."""
        native = from_base_units(wei, 18)
        source = self.native_price
        price = source() if callable(source) else source
        if price is None:
            return native, self.native_asset
        step = Decimal(1).scaleb(-self.decimals[quote])
        return _EXACT.multiply(native, price).quantize(step, rounding=ROUND_CEILING), quote

    def _final(self, record: _Swap, status: OrderStatus, reason: str, wei: int, tx_hash: str = "") -> None:
        record.status = status
        fee, asset = self.gas_fee(wei, record.spec.pair.quote) if wei else (Decimal(0), "")
        cid = record.request.client_order_id
        update = order_update(
            self.clock.now_ns(), self.name, cid, status, reason,
            venue_order_id=tx_hash or record.tx_hash, fee=fee, fee_asset=asset,
        )  # fmt: skip
        self._emit(record, update)

    async def _run(self, record: _Swap) -> None:
        """Approve, swap, wait; emit the fill or the final update (see the module docstring)."""
        request = record.request
        spec = record.spec
        wei = 0
        try:
            approval = await self.tokens[request.token_in].approve(spec.router, record.spend)
            if approval is not None:
                wei += gas_wei(approval)
            if record.cancel_requested:
                self._final(record, OrderStatus.CANCELLED, "cancel: cancelled before the swap was sent", wei)
                return
            sender = _RecordingSender(self.session, record, self.swap_gas_limit)
            exact_input = request.amount_in is not None
            amount = request.amount_in if request.amount_in is not None else request.amount_out
            assert amount is not None
            executed = await self._chain_pools[request.pool].swap(
                sender, spec.router, amount, record.zero_for_one,
                exact_input=exact_input, deadline=record.deadline_s, amount_bound=record.bound,
            )  # fmt: skip
            assert sender.receipt is not None
            wei += gas_wei(sender.receipt)
            await self._filled(record, executed, wei)
        except TransactionReverted as exc:
            if exc.tx_hash is not None:
                receipt = await self.session.w3.eth.get_transaction_receipt(exc.tx_hash)  # type: ignore[arg-type]
                wei += gas_wei(receipt)
                where = f"reverted in block {exc.block_number}, gas paid"
            else:
                where = "refused in gas estimation, nothing sent"
            self._final(
                record, OrderStatus.REJECTED, f"{self._revert_field(exc.reason)}: {exc.reason} ({where})", wei
            )
        except TransactionReplaced:
            if record.replacement is not None:
                receipt = await self.session.w3.eth.get_transaction_receipt(record.replacement)  # type: ignore[arg-type]
                wei += gas_wei(receipt)
            reason = f"cancel: replaced at nonce {record.submitted.nonce if record.submitted else '?'}"
            self._final(record, OrderStatus.CANCELLED, reason, wei, record.replacement or "")
        except (TransactionTimeout, FeeCapExceeded, PerpetuaError, Web3Exception, ValueError) as exc:
            if record.submitted is not None:  # sent, may still be mined: pending in `snapshot` until settled
                log.warning("%s: waiting for %s failed: %s", self.name, request.client_order_id, exc)
                return
            self._final(record, OrderStatus.REJECTED, f"send: {exc}", wei)

    @staticmethod
    def _revert_field(reason: str) -> str:
        """The request field a router revert is about ('Too little received' -> min_amount_out)."""
        text = reason.lower()
        if "too little" in text or "insufficient_output" in text:
            return "min_amount_out"
        if "too much" in text or "excessive_input" in text:
            return "max_amount_in"
        if "too old" in text or "expired" in text:
            return "deadline_ns"
        return "swap"

    async def _filled(self, record: _Swap, executed: ExecutedSwap, wei: int) -> None:
        """Emit the Fill and FILLED of a mined swap, then catch the pool up (its PoolState follows)."""
        request = record.request
        fill = await self.swap_fill(request, executed, wei)
        record.status = OrderStatus.FILLED
        self._emit(record, fill)
        self._emit(
            record,
            OrderUpdate(fill.ts, self.name, fill.client_order_id, OrderStatus.FILLED, executed.tx_hash,
                        fill.quantity, fill.price),
        )  # fmt: skip
        with contextlib.suppress(Web3Exception, OSError):  # the poller catches up later anyway
            await self._catch_up(request.pool)

    def executed_swap(self, request: SwapRequest, receipt: Any) -> ExecutedSwap:
        """The swap of `request` as its pool executed it, from a mined receipt (RuntimeError: no Swap log)."""
        zero_for_one = request.token_in == self.pools[request.pool].pool.token0
        return self._chain_pools[request.pool]._executed(receipt, 0, zero_for_one)

    async def swap_fill(self, request: SwapRequest, executed: ExecutedSwap, wei: int) -> Fill:
        """The `Fill` of a mined swap: at its block's time, price = notional / quantity, gas as the fee."""
        pair = self.pools[request.pool].pair
        block = await self.session.w3.eth.get_block(executed.block_number)
        ts = int(block["timestamp"]) * NS_PER_S
        paid = from_base_units(executed.amount_in, self.decimals[request.token_in])
        received = from_base_units(executed.amount_out, self.decimals[request.token_out])
        buy = request.token_in == pair.quote
        quantity, notional = (received, paid) if buy else (paid, received)
        price = _PRICE.divide(notional, quantity)
        fee, fee_asset = self.gas_fee(wei, pair.quote)
        return Fill(ts, self.name, pair.id, request.client_order_id, Side.BUY if buy else Side.SELL, price,
                    quantity, fee, fee_asset, Liquidity.TAKER, executed.tx_hash, notional)  # fmt: skip

    async def cancel(self, client_order_id: str) -> OrderUpdate:
        """Cancel a swap not yet mined (see the module docstring); REJECTED for an unknown id."""
        now = self.clock.now_ns()
        record = self._swaps.get(client_order_id)
        if record is None:
            return rejected(now, self.name, client_order_id, f"client_order_id: {client_order_id!r} unknown")
        if record.status.is_terminal:
            reason = f"cancel: too late, the swap is final ({record.status.value})"
            return order_update(
                now, self.name, client_order_id, record.status, reason, venue_order_id=record.tx_hash
            )
        if record.submitted is None:
            record.cancel_requested = True
            reason = "cancel: the swap will not be sent"
            return order_update(now, self.name, client_order_id, record.status, reason)
        try:
            record.replacement = await self.session.replace_with_noop(record.submitted.nonce)
        except (PerpetuaError, Web3Exception, ValueError) as exc:
            reason = f"cancel: could not replace tx {record.tx_hash}: {exc}"
            return order_update(
                now, self.name, client_order_id, record.status, reason, venue_order_id=record.tx_hash
            )
        reason = (
            f"cancel: no-op {record.replacement} sent at nonce {record.submitted.nonce}; CANCELLED follows "
            "if it is mined before the swap"
        )
        return order_update(
            now, self.name, client_order_id, record.status, reason, venue_order_id=record.tx_hash
        )

    async def snapshot(self) -> VenueState:
        """The wallet's token and native balances (display units), swaps not final, their pending txs."""
        address = self.session.address
        balances: dict[str, Decimal] = {}
        for token_id, token in self.tokens.items():
            balances[token_id] = from_base_units(await token.balance_of(address), self.decimals[token_id])
        native = int(await self.session.w3.eth.get_balance(address))
        balances[self.native_asset] = from_base_units(native, 18)
        open_swaps = [r for r in self._swaps.values() if not r.status.is_terminal]
        now = self.clock.now_ns()
        return VenueState(
            self.name,
            now,
            balances,
            tuple(
                order_update(now, self.name, r.request.client_order_id, r.status, venue_order_id=r.tx_hash)
                for r in open_swaps
            ),
            tuple(
                PendingTransaction(r.submitted.tx_hash, r.submitted.nonce, r.request.client_order_id)
                for r in open_swaps
                if r.submitted is not None
            ),
        )
