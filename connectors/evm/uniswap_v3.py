"""A Uniswap v3 pool read from the chain and quoted locally with `pricing.amm`, to the wei of QuoterV2.

`UniswapV3Pool(w3, address)` holds the pool's swap state (`pricing.amm.V3PoolState`): `await
pool.refresh()` reads slot0, the in-range liquidity and every initialized tick (found through the
tick bitmap), all pinned to one block; the quotes then run locally without touching the node.
Amounts are token base units, prices Q64.96 sqrt prices (token1 per token0), fees in pips.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_typing import ChecksumAddress
from web3 import AsyncWeb3
from web3.contract import AsyncContract

from connectors.evm.uniswap_artifacts import contract_at
from core.events import PoolState
from pricing.amm import MAX_TICK, MIN_TICK, V3PoolState, V3SwapResult, quote_exact_input, quote_exact_output


class PoolNotLoadedError(RuntimeError):
    """The pool was used before its first `await refresh()`."""


async def batch_calls(w3: AsyncWeb3[Any], calls: Sequence[Any], block_number: int) -> list[Any]:
    """The results of contract-function `calls` (eth_call at `block_number`), as one JSON-RPC batch."""
    if not calls:
        return []
    async with w3.batch_requests() as batch:
        for call in calls:
            batch.add(call.call(block_identifier=block_number))
        return list(await batch.async_execute())


def bitmap_words(tick_spacing: int) -> range:
    """Every tickBitmap word position a pool with `tick_spacing` can use.

    The pool compresses a tick to tick // spacing (floor) and keys the word by compressed >> 8, so
    the words run from that of MIN_TICK to that of MAX_TICK.
    """
    return range((MIN_TICK // tick_spacing) >> 8, ((MAX_TICK // tick_spacing) >> 8) + 1)


class UniswapV3Pool:
    """A Uniswap v3 pool at `address`, read through the `AsyncWeb3` `w3` and quoted locally.

    Call `await refresh()` before anything else (and again to follow the chain). After it:
    `token0`, `token1` (checksum addresses, token0 < token1), `fee` (pips: 500 = 0.05%),
    `tick_spacing`, `state` (the `V3PoolState`) and `block_number` (the block it was read at).
    """

    def __init__(self, w3: AsyncWeb3[Any], address: str) -> None:
        self.w3 = w3
        self.address: ChecksumAddress = AsyncWeb3.to_checksum_address(address)
        self.contract: AsyncContract = contract_at(w3, "UniswapV3Pool", self.address)
        self._token0: ChecksumAddress | None = None
        self._token1: ChecksumAddress | None = None
        self._fee = 0
        self._tick_spacing = 0
        self._state: V3PoolState | None = None
        self.block_number = -1

    async def refresh(self, block_number: int | None = None) -> V3PoolState:
        """Read the pool's full swap state at `block_number` (default: the latest block) and keep it.

        The immutables (tokens, fee, spacing) are read once. Then slot0, liquidity and every
        tickBitmap word the spacing allows go in one JSON-RPC batch, and `ticks(t).liquidityNet`
        of each set bit in a second one; every call is pinned to the same block, so the state is
        consistent even while blocks are being mined. Returns the new `state`.
        """
        block = await self.w3.eth.block_number if block_number is None else block_number
        pool = self.contract.functions
        if self._token0 is None:
            token0, token1, fee, spacing = await batch_calls(
                self.w3, [pool.token0(), pool.token1(), pool.fee(), pool.tickSpacing()], block
            )
            self._token0 = AsyncWeb3.to_checksum_address(token0)
            self._token1 = AsyncWeb3.to_checksum_address(token1)
            self._fee, self._tick_spacing = int(fee), int(spacing)
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
        self._state = V3PoolState(
            sqrt_price_x96=int(slot0[0]),
            tick=int(slot0[1]),
            liquidity=int(liquidity),
            fee=self._fee,
            tick_spacing=spacing,
            ticks=tuple((tick, int(info[1])) for tick, info in zip(ticks, infos, strict=True)),
            fee_protocol=int(slot0[5]),
        )
        self.block_number = block
        return self._state

    @property
    def state(self) -> V3PoolState:
        """The swap state read by the last `refresh()` (raises `PoolNotLoadedError` before one)."""
        if self._state is None:
            raise PoolNotLoadedError(f"pool {self.address}: call `await refresh()` first")
        return self._state

    @state.setter
    def state(self, state: V3PoolState) -> None:
        """Replace the state (e.g. with `state.after(result)` once a swap is known to have happened)."""
        self._state = state

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
