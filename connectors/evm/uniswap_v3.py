"""A Uniswap v3 pool read from the chain and quoted locally with `pricing.amm`, to the wei of QuoterV2.

`UniswapV3Pool(w3, address)` holds the pool's swap state (`pricing.amm.V3PoolState`): `await
pool.refresh()` reads slot0, the in-range liquidity and every initialized tick (found through the
tick bitmap), all pinned to one block; the quotes then run locally without touching the node.
Amounts are token base units, prices Q64.96 sqrt prices (token1 per token0), fees in pips.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any, NamedTuple

from eth_typing import ChecksumAddress
from web3 import AsyncWeb3
from web3.contract import AsyncContract
from web3.types import Wei

from connectors.evm.tx_sender import TransactionSender
from connectors.evm.uniswap_artifacts import contract_at
from connectors.evm.uniswap_events import (
    V3_BURN_TOPIC,
    V3_MINT_TOPIC,
    V3_STATE_TOPICS,
    PoolEvent,
    V3LiquidityChange,
    V3Swap,
    decode_log,
    fetch_logs,
)
from core.events import PoolState
from pricing.amm import MAX_TICK, MIN_TICK, V3PoolState, V3SwapResult, quote_exact_input, quote_exact_output


class PoolNotLoadedError(RuntimeError):
    """The pool was used before its first `await refresh()`."""


BATCH_SIZE = 250  # calls per JSON-RPC batch: web3's websocket provider mixes up replies past ~500


async def batch_calls(
    w3: AsyncWeb3[Any], calls: Sequence[Any], block_number: int, batch_size: int = BATCH_SIZE
) -> list[Any]:
    """The results of contract-function `calls` (eth_call at `block_number`), in JSON-RPC batches of
    at most `batch_size` calls sent one after the other."""
    results: list[Any] = []
    for start in range(0, len(calls), batch_size):
        async with w3.batch_requests() as batch:
            for call in calls[start : start + batch_size]:
                batch.add(call.call(block_identifier=block_number))
            results.extend(await batch.async_execute())
    return results


def bitmap_words(tick_spacing: int) -> range:
    """Every tickBitmap word position a pool with `tick_spacing` can use.

    The pool compresses a tick to tick // spacing (floor) and keys the word by compressed >> 8, so
    the words run from that of MIN_TICK to that of MAX_TICK.
    """
    return range((MIN_TICK // tick_spacing) >> 8, ((MAX_TICK // tick_spacing) >> 8) + 1)


DEFAULT_DEADLINE_SECONDS = 120  # a swap not mined within this many seconds of its sending reverts
DEFAULT_SLIPPAGE = Decimal("0.005")  # 0.5%: the bound against the local quote, as a fraction


class ExecutedSwap(NamedTuple):
    """A swap as the pool executed it, read from the receipt's Swap log (base units throughout).

    - `amount_in`, `amount_out`: tokens paid in (fee included) and out.
    - `amount0`, `amount1`: the pool's signed deltas (> 0 paid into the pool).
    - `quoted`: the local quote the slippage bound was taken from (amount out for exact input, in
      for exact output), so `quoted - amount_out` is the slippage suffered.
    - `sqrt_price_x96`, `tick`, `liquidity` (v3) or `reserve0`, `reserve1` (v2): the pool after it.
    """

    tx_hash: str
    block_number: int
    amount_in: int
    amount_out: int
    amount0: int
    amount1: int
    quoted: int
    gas_used: int
    sqrt_price_x96: int = 0
    tick: int = 0
    liquidity: int = 0
    reserve0: int = 0
    reserve1: int = 0


def slippage_bounds(quoted: int, slippage: Decimal, exact_input: bool) -> int:
    """The router bound for a local quote: amountOutMinimum = floor(quoted * (1 - slippage)) for an
    exact input, amountInMaximum = ceil(quoted * (1 + slippage)) for an exact output (base units).

    `slippage` is a fraction in [0, 1) (Decimal("0.005") = 0.5%); raises ValueError naming it otherwise.
    """
    if not isinstance(slippage, Decimal) or not slippage.is_finite() or not 0 <= slippage < 1:
        raise ValueError(f"slippage must be a Decimal fraction in [0, 1), got {slippage!r}")
    numerator, denominator = slippage.as_integer_ratio()
    if exact_input:
        return quoted * (denominator - numerator) // denominator
    return -(-quoted * (denominator + numerator) // denominator)


def default_deadline(deadline: int | None) -> int:
    """`deadline` (unix seconds) if given, else now + DEFAULT_DEADLINE_SECONDS."""
    if deadline is None:
        return int(time.time()) + DEFAULT_DEADLINE_SECONDS
    if deadline < 0:
        raise ValueError(f"deadline must be unix seconds >= 0, got {deadline}")
    return deadline


class UniswapV3Pool:
    """A Uniswap v3 pool at `address`, read through the `AsyncWeb3` `w3` and quoted locally.

    Call `await refresh()` (bitmap scan) or `await refresh_from_logs()` (Mint/Burn history) before
    anything else. After it: `token0`, `token1` (checksum addresses, token0 < token1), `fee` (pips:
    500 = 0.05%), `tick_spacing`, `state` (the `V3PoolState`) and `block_number` (the last block
    whose changes the state holds). `apply_event` moves the state by one Swap/Mint/Burn log
    (`connectors.evm.pool_logs.PoolLogFollower` feeds it), `swap` executes through SwapRouter.
    """

    STATE_TOPICS = V3_STATE_TOPICS  # topic 0 of the logs that change the swap state

    def __init__(self, w3: AsyncWeb3[Any], address: str) -> None:
        self.w3 = w3
        self.address: ChecksumAddress = AsyncWeb3.to_checksum_address(address)
        self.contract: AsyncContract = contract_at(w3, "UniswapV3Pool", self.address)
        self._token0: ChecksumAddress | None = None
        self._token1: ChecksumAddress | None = None
        self._fee = 0
        self._tick_spacing = 0
        self._state: V3PoolState | None = None
        # tick -> (liquidityGross, liquidityNet): the gross says when a Burn uninitializes a tick
        self._tick_liquidity: dict[int, tuple[int, int]] = {}
        self.block_number = -1

    async def _read_immutables(self, block: int) -> None:
        """Read token0, token1, fee and tickSpacing once."""
        if self._token0 is not None:
            return
        pool = self.contract.functions
        token0, token1, fee, spacing = await batch_calls(
            self.w3, [pool.token0(), pool.token1(), pool.fee(), pool.tickSpacing()], block
        )
        self._token0 = AsyncWeb3.to_checksum_address(token0)
        self._token1 = AsyncWeb3.to_checksum_address(token1)
        self._fee, self._tick_spacing = int(fee), int(spacing)

    def _load(
        self, slot0: Sequence[Any], liquidity: int, tick_liquidity: dict[int, tuple[int, int]], block: int
    ) -> V3PoolState:
        """Keep the state made of slot0, the in-range liquidity and the tick map, as of `block`."""
        self._tick_liquidity = tick_liquidity
        self._state = V3PoolState(
            sqrt_price_x96=int(slot0[0]),
            tick=int(slot0[1]),
            liquidity=int(liquidity),
            fee=self._fee,
            tick_spacing=self._tick_spacing,
            ticks=_ticks_tuple(tick_liquidity),
            fee_protocol=int(slot0[5]),
        )
        self.block_number = block
        return self._state

    async def refresh(self, block_number: int | None = None) -> V3PoolState:
        """Read the pool's full swap state at `block_number` (default: the latest block) and keep it.

        The immutables (tokens, fee, spacing) are read once. Then slot0, liquidity and every
        tickBitmap word the spacing allows go in one JSON-RPC batch, and `ticks(t)` (liquidityGross,
        liquidityNet) of each set bit in a second one; every call is pinned to the same block, so the
        state is consistent even while blocks are being mined. Returns the new `state`.
        """
        block = await self.w3.eth.block_number if block_number is None else block_number
        await self._read_immutables(block)
        pool = self.contract.functions
        spacing = self._tick_spacing
        words = bitmap_words(spacing)
        slot0, liquidity, *bitmaps = await batch_calls(
            self.w3, [pool.slot0(), pool.liquidity(), *(pool.tickBitmap(word) for word in words)], block
        )
        ticks = [
            (word * 256 + bit) * spacing
            for word, bitmap in zip(words, bitmaps, strict=True)
            if bitmap
            for bit in range(256)
            if bitmap >> bit & 1
        ]
        infos = await batch_calls(self.w3, [pool.ticks(tick) for tick in ticks], block)
        tick_liquidity = {tick: (int(info[0]), int(info[1])) for tick, info in zip(ticks, infos, strict=True)}
        return self._load(slot0, liquidity, tick_liquidity, block)

    async def refresh_from_logs(
        self, from_block: int = 0, block_number: int | None = None, max_block_range: int = 100_000
    ) -> V3PoolState:
        """Load the full state at `block_number` (default: latest) with the tick map rebuilt from logs.

        Every Mint and Burn of the pool from `from_block` (its deployment block or earlier: 0 scans
        the whole chain) adds its liquidity to its two ticks, which is the tick map exactly; slot0
        and liquidity are then read at the same block. One eth_getLogs per `max_block_range` blocks
        instead of hundreds of bitmap and tick reads. Returns the new `state`.
        """
        block = await self.w3.eth.block_number if block_number is None else block_number
        await self._read_immutables(block)
        logs = await fetch_logs(
            self.w3, self.address, (V3_MINT_TOPIC, V3_BURN_TOPIC), from_block, block, max_block_range
        )
        tick_liquidity: dict[int, tuple[int, int]] = {}
        for log in logs:
            event = decode_log(log)
            if isinstance(event, V3LiquidityChange):
                _add_range(tick_liquidity, event.tick_lower, event.tick_upper, event.delta)
        pool = self.contract.functions
        slot0, liquidity = await batch_calls(self.w3, [pool.slot0(), pool.liquidity()], block)
        return self._load(slot0, liquidity, tick_liquidity, block)

    def apply_event(self, event: PoolEvent) -> bool:
        """Move the state by one decoded pool log, exactly as the pool moved; True if it changed.

        A Swap sets price, tick and in-range liquidity to the values it logs. A Mint/Burn adds its
        signed liquidity to the gross and net of its two ticks (a tick whose gross falls to zero is
        uninitialized, as the pool clears it) and to the in-range liquidity when lower <= tick < upper.
        Logs must come in chain order; other events are ignored. Sets `block_number` to the log's block.
        """
        state = self.state
        if isinstance(event, V3Swap):
            self._state = replace(
                state, sqrt_price_x96=event.sqrt_price_x96, tick=event.tick, liquidity=event.liquidity
            )
        elif isinstance(event, V3LiquidityChange):
            if event.delta == 0:  # a Burn of 0 only pokes the position's fees
                return False
            _add_range(self._tick_liquidity, event.tick_lower, event.tick_upper, event.delta)
            in_range = event.tick_lower <= state.tick < event.tick_upper
            self._state = replace(
                state,
                ticks=_ticks_tuple(self._tick_liquidity),
                liquidity=state.liquidity + event.delta if in_range else state.liquidity,
            )
        else:
            return False
        self.block_number = event.position.block_number
        return True

    @property
    def state(self) -> V3PoolState:
        """The swap state read by the last `refresh()` (raises `PoolNotLoadedError` before one)."""
        if self._state is None:
            raise PoolNotLoadedError(f"pool {self.address}: call `await refresh()` first")
        return self._state

    @state.setter
    def state(self, state: V3PoolState) -> None:
        """Replace price, tick and liquidity (e.g. with `state.after(result)` once a swap is known to
        have happened); the tick map must be the current one (ValueError otherwise)."""
        if state.ticks != self.state.ticks:
            raise ValueError("state.ticks differs from the pool's tick map: use refresh() or apply_event()")
        self._state = state

    @property
    def tick_liquidity(self) -> Mapping[int, tuple[int, int]]:
        """tick -> (liquidityGross, liquidityNet) of every initialized tick, as the pool's `ticks(t)`."""
        return self._tick_liquidity

    @property
    def token0(self) -> ChecksumAddress:
        """The pool's token0 (the lower address): the base of the price."""
        if self._token0 is None:
            raise PoolNotLoadedError(f"pool {self.address}: call `await refresh()` first")
        return self._token0

    @property
    def token1(self) -> ChecksumAddress:
        """The pool's token1 (the higher address): the quote of the price."""
        if self._token1 is None:
            raise PoolNotLoadedError(f"pool {self.address}: call `await refresh()` first")
        return self._token1

    @property
    def fee(self) -> int:
        """The pool fee in pips (hundredths of a bip: 3000 = 0.30%)."""
        return self.state.fee

    @property
    def tick_spacing(self) -> int:
        """The pool's tick spacing."""
        return self.state.tick_spacing

    def quote_exact_input(
        self, amount_in: int, zero_for_one: bool, sqrt_price_limit_x96: int = 0
    ) -> V3SwapResult:
        """QuoterV2.quoteExactInputSingle, computed locally on `state`.

        `amount_in` in base units of the input token (token0 if `zero_for_one`); the limit is a
        Q64.96 sqrt price, 0 for none. QuoterV2's amountOut is `result.amount_out` (base units),
        sqrtPriceX96After `result.sqrt_price_x96`, initializedTicksCrossed
        `result.initialized_ticks_crossed`. A swap that drains the liquidity returns the partial
        output (`result.partial`), as QuoterV2 does; one that moves nothing raises
        `pricing.amm.InsufficientLiquidityError`.
        """
        return quote_exact_input(self.state, amount_in, zero_for_one, sqrt_price_limit_x96)

    def quote_exact_output(
        self, amount_out: int, zero_for_one: bool, sqrt_price_limit_x96: int = 0
    ) -> V3SwapResult:
        """QuoterV2.quoteExactOutputSingle, computed locally on `state`.

        `amount_out` in base units of the output token; QuoterV2's amountIn is `result.amount_in`.
        Without a limit (0), an output the pool cannot deliver raises
        `pricing.amm.InsufficientLiquidityError` carrying the partial result, where QuoterV2 reverts.
        """
        return quote_exact_output(self.state, amount_out, zero_for_one, sqrt_price_limit_x96)

    async def swap(
        self,
        sender: TransactionSender,
        router: str,
        amount: int,
        zero_for_one: bool,
        *,
        exact_input: bool = True,
        slippage: Decimal = DEFAULT_SLIPPAGE,
        deadline: int | None = None,
        recipient: str | None = None,
        amount_bound: int | None = None,
        sqrt_price_limit_x96: int = 0,
    ) -> ExecutedSwap:
        """Swap through the SwapRouter at `router`, bounded by `slippage` against the local quote.

        `amount` (base units) is the exact input (`exact_input`, exactInputSingle with
        amountOutMinimum = quote * (1 - slippage)) or the exact output (exactOutputSingle with
        amountInMaximum = quote * (1 + slippage)); `zero_for_one` pays token0 for token1.
        `deadline` is unix seconds (default: now + 120 s); `recipient` defaults to the sender. The
        sender must have approved the router for the input token. The router reverts with 'Too
        little received' / 'Too much requested' past the bound and 'Transaction too old' past the
        deadline; the sender raises those. The local state is not changed (a follower applies the
        Swap log). `amount_bound` (base units), when given, is the amountOutMinimum / amountInMaximum
        itself instead of the slippage bound. Returns the amounts of the receipt's Swap log.
        """
        if amount <= 0:
            raise ValueError(f"amount must be > 0 base units, got {amount}")
        quote = (self.quote_exact_input if exact_input else self.quote_exact_output)(
            amount, zero_for_one, sqrt_price_limit_x96
        )
        quoted = quote.amount_out if exact_input else quote.amount_in
        bound = slippage_bounds(quoted, slippage, exact_input) if amount_bound is None else amount_bound
        token_in, token_out = (self.token0, self.token1) if zero_for_one else (self.token1, self.token0)
        # ExactInputSingleParams / ExactOutputSingleParams, in their ABI order
        params = (
            token_in,
            token_out,
            self.fee,
            AsyncWeb3.to_checksum_address(recipient or sender.address),
            default_deadline(deadline),
            amount,
            bound,
            sqrt_price_limit_x96,
        )
        contract = contract_at(self.w3, "SwapRouter", AsyncWeb3.to_checksum_address(router))
        functions = contract.functions
        call = functions.exactInputSingle(params) if exact_input else functions.exactOutputSingle(params)
        data = call._encode_transaction_data()
        receipt = await sender.send({"to": contract.address, "data": data, "value": Wei(0)})
        return self._executed(receipt, quoted, zero_for_one)

    def _executed(self, receipt: Any, quoted: int, zero_for_one: bool) -> ExecutedSwap:
        """The ExecutedSwap of this pool's Swap log in `receipt` (RuntimeError if it has none)."""
        for log in _logs_of(receipt, self.address):
            event = decode_log(log)
            if isinstance(event, V3Swap):
                amount_in, amount_out = (
                    (event.amount0, -event.amount1) if zero_for_one else (event.amount1, -event.amount0)
                )
                return ExecutedSwap(
                    receipt["transactionHash"].to_0x_hex(),
                    int(receipt["blockNumber"]),
                    amount_in,
                    amount_out,
                    event.amount0,
                    event.amount1,
                    quoted,
                    int(receipt["gasUsed"]),
                    sqrt_price_x96=event.sqrt_price_x96,
                    tick=event.tick,
                    liquidity=event.liquidity,
                )
        raise RuntimeError(
            f"receipt {receipt['transactionHash'].to_0x_hex()} has no Swap log of {self.address}"
        )

    def to_pool_state_event(self, ts: int, venue: str, pool_id: str, block_number: int) -> PoolState:
        """The current state as a `core.events.PoolState` (sqrt price Q64.96, tick, liquidity)."""
        state = self.state
        return PoolState(
            ts=ts,
            venue=venue,
            pool=pool_id,
            block_number=block_number,
            sqrt_price_x96=state.sqrt_price_x96,
            tick=state.tick,
            liquidity=state.liquidity,
        )


def _logs_of(receipt: Any, address: ChecksumAddress) -> Iterable[Any]:
    """The logs in `receipt` emitted by `address`."""
    return (log for log in receipt["logs"] if AsyncWeb3.to_checksum_address(log["address"]) == address)


def _add_range(tick_liquidity: dict[int, tuple[int, int]], lower: int, upper: int, delta: int) -> None:
    """Add `delta` liquidity to the range [lower, upper): gross of both ticks, +net at lower, -net at upper.

    A tick whose gross reaches 0 is removed, as the pool clears it (Tick.clear on a flipped tick).
    """
    for tick, net_delta in ((lower, delta), (upper, -delta)):
        gross, net = tick_liquidity.get(tick, (0, 0))
        gross += delta
        if gross < 0:
            raise ValueError(f"Burn of {-delta} at tick {tick} exceeds its liquidityGross {gross - delta}")
        if gross == 0:
            tick_liquidity.pop(tick, None)
        else:
            tick_liquidity[tick] = (gross, net + net_delta)


def _ticks_tuple(tick_liquidity: Mapping[int, tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """(tick, liquidityNet) of every initialized tick, sorted: the `V3PoolState.ticks` form."""
    return tuple(sorted((tick, net) for tick, (_, net) in tick_liquidity.items()))
