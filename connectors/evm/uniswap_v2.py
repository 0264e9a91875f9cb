"""A Uniswap v2 pair read from the chain and quoted locally with `pricing.amm`'s v2 formulas.

`UniswapV2Pair(w3, address)`: `await pair.refresh()` reads getReserves (and token0/token1 once),
pinned to one block; the quotes are UniswapV2Library.getAmountOut / getAmountIn (0.30% fee) on those
reserves, to the wei. Amounts and reserves are token base units.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from eth_typing import ChecksumAddress
from web3 import AsyncWeb3
from web3.contract import AsyncContract
from web3.types import Wei

from connectors.evm.tx_sender import TransactionSender
from connectors.evm.uniswap_artifacts import contract_at
from connectors.evm.uniswap_events import V2_STATE_TOPICS, PoolEvent, V2Swap, V2Sync, decode_log
from connectors.evm.uniswap_v3 import (
    DEFAULT_SLIPPAGE,
    ExecutedSwap,
    PoolNotLoadedError,
    batch_calls,
    default_deadline,
    slippage_bounds,
)
from core.events import PoolState
from pricing.amm import v2_amount_in, v2_amount_out

FEE_BPS = 30  # the pair's 0.30% fee on the input (997/1000)


class UniswapV2Pair:
    """A Uniswap v2 pair at `address`, read through the `AsyncWeb3` `w3` and quoted locally.

    Call `await refresh()` first; then `token0`, `token1` (checksum addresses), `reserve0`,
    `reserve1` (base units), `block_timestamp_last` and `block_number` are set. `apply_event` moves
    the reserves by a Sync log, `swap` executes through UniswapV2Router02.
    """

    STATE_TOPICS = V2_STATE_TOPICS  # Sync carries the reserves after every change

    def __init__(self, w3: AsyncWeb3[Any], address: str) -> None:
        self.w3 = w3
        self.address: ChecksumAddress = AsyncWeb3.to_checksum_address(address)
        self.contract: AsyncContract = contract_at(w3, "UniswapV2Pair", self.address)
        self._token0: ChecksumAddress | None = None
        self._token1: ChecksumAddress | None = None
        self._reserves: tuple[int, int] | None = None
        self.block_timestamp_last = 0
        self.block_number = -1

    async def refresh(self, block_number: int | None = None) -> tuple[int, int]:
        """Read getReserves (and, the first time, token0/token1) at `block_number` (default: latest).

        Returns (reserve0, reserve1) in base units.
        """
        block = await self.w3.eth.block_number if block_number is None else block_number
        pair = self.contract.functions
        if self._token0 is None:
            token0, token1, reserves = await batch_calls(
                self.w3, [pair.token0(), pair.token1(), pair.getReserves()], block
            )
            self._token0 = AsyncWeb3.to_checksum_address(token0)
            self._token1 = AsyncWeb3.to_checksum_address(token1)
        else:
            (reserves,) = await batch_calls(self.w3, [pair.getReserves()], block)
        self._reserves = int(reserves[0]), int(reserves[1])
        self.block_timestamp_last = int(reserves[2])
        self.block_number = block
        return self._reserves

    def _loaded(self) -> tuple[int, int]:
        if self._reserves is None:
            raise PoolNotLoadedError(f"pair {self.address}: call `await refresh()` first")
        return self._reserves

    @property
    def reserve0(self) -> int:
        """Reserve of token0 (base units) at the last refresh."""
        return self._loaded()[0]

    @property
    def reserve1(self) -> int:
        """Reserve of token1 (base units) at the last refresh."""
        return self._loaded()[1]

    @property
    def token0(self) -> ChecksumAddress:
        """The pair's token0 (the lower address)."""
        if self._token0 is None:
            raise PoolNotLoadedError(f"pair {self.address}: call `await refresh()` first")
        return self._token0

    @property
    def token1(self) -> ChecksumAddress:
        """The pair's token1 (the higher address)."""
        if self._token1 is None:
            raise PoolNotLoadedError(f"pair {self.address}: call `await refresh()` first")
        return self._token1

    def _in_out(self, zero_for_one: bool) -> tuple[int, int]:
        reserve0, reserve1 = self._loaded()
        return (reserve0, reserve1) if zero_for_one else (reserve1, reserve0)

    def quote_exact_input(self, amount_in: int, zero_for_one: bool) -> int:
        """Output (base units) for `amount_in` (base units) of token0 (`zero_for_one`) or token1.

        UniswapV2Library.getAmountOut: the largest output the pair's K check accepts. Raises
        `pricing.amm.AmmError` for a non-positive input, `InsufficientLiquidityError` for an empty pair.
        """
        reserve_in, reserve_out = self._in_out(zero_for_one)
        return v2_amount_out(amount_in, reserve_in, reserve_out, FEE_BPS)

    def quote_exact_output(self, amount_out: int, zero_for_one: bool) -> int:
        """Input (base units) UniswapV2Library.getAmountIn asks for to receive `amount_out` (base units).

        Raises `pricing.amm.InsufficientLiquidityError` when `amount_out` >= the output reserve.
        """
        reserve_in, reserve_out = self._in_out(zero_for_one)
        return v2_amount_in(amount_out, reserve_in, reserve_out, FEE_BPS)

    def apply_event(self, event: PoolEvent) -> bool:
        """Set the reserves from a Sync log (base units); True if it was one. Other events are ignored."""
        if not isinstance(event, V2Sync):
            return False
        self._loaded()
        self._reserves = event.reserve0, event.reserve1
        self.block_number = event.position.block_number
        return True

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
    ) -> ExecutedSwap:
        """Swap through the UniswapV2Router02 at `router`, bounded by `slippage` against the local quote.

        `amount` (base units) is the exact input (swapExactTokensForTokens, amountOutMin = quote *
        (1 - slippage)) or exact output (swapTokensForExactTokens, amountInMax = quote * (1 +
        slippage)); `zero_for_one` pays token0 for token1. `deadline` is unix seconds (default now +
        120 s); `recipient` defaults to the sender, who must have approved the router for the input
        token. Past the bound the router reverts 'UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT' /
        'EXCESSIVE_INPUT_AMOUNT', past the deadline 'UniswapV2Router: EXPIRED'; the sender raises
        those. `amount_bound` (base units), when given, is amountOutMin / amountInMax itself instead
        of the slippage bound. The reserves are not changed here. Returns the amounts of the receipt's
        Swap log and the reserves of its Sync log.
        """
        if amount <= 0:
            raise ValueError(f"amount must be > 0 base units, got {amount}")
        quoted = (self.quote_exact_input if exact_input else self.quote_exact_output)(amount, zero_for_one)
        bound = slippage_bounds(quoted, slippage, exact_input) if amount_bound is None else amount_bound
        path = [self.token0, self.token1] if zero_for_one else [self.token1, self.token0]
        to = AsyncWeb3.to_checksum_address(recipient or sender.address)
        contract = contract_at(self.w3, "UniswapV2Router02", AsyncWeb3.to_checksum_address(router))
        functions = contract.functions
        when = default_deadline(deadline)
        if exact_input:
            call = functions.swapExactTokensForTokens(amount, bound, path, to, when)
        else:
            call = functions.swapTokensForExactTokens(amount, bound, path, to, when)
        receipt = await sender.send(
            {"to": contract.address, "data": call._encode_transaction_data(), "value": Wei(0)}
        )
        return self._executed(receipt, quoted, zero_for_one)

    def _executed(self, receipt: Any, quoted: int, zero_for_one: bool) -> ExecutedSwap:
        """The ExecutedSwap of this pair's Swap and Sync logs in `receipt` (RuntimeError if it has none)."""
        swap: V2Swap | None = None
        sync: V2Sync | None = None
        for log in receipt["logs"]:
            if AsyncWeb3.to_checksum_address(log["address"]) != self.address:
                continue
            event = decode_log(log)
            if isinstance(event, V2Swap):
                swap = event
            elif isinstance(event, V2Sync):
                sync = event
        if swap is None or sync is None:
            raise RuntimeError(
                f"receipt {receipt['transactionHash'].to_0x_hex()} has no Swap/Sync of {self.address}"
            )
        amount0 = swap.amount0_in - swap.amount0_out
        amount1 = swap.amount1_in - swap.amount1_out
        return ExecutedSwap(
            receipt["transactionHash"].to_0x_hex(),
            int(receipt["blockNumber"]),
            amount0 if zero_for_one else amount1,
            -amount1 if zero_for_one else -amount0,
            amount0,
            amount1,
            quoted,
            int(receipt["gasUsed"]),
            reserve0=sync.reserve0,
            reserve1=sync.reserve1,
        )

    def to_pool_state_event(self, ts: int, venue: str, pool_id: str, block_number: int) -> PoolState:
        """The reserves as a `core.events.PoolState` (reserve0, reserve1 in base units)."""
        reserve0, reserve1 = self._loaded()
        return PoolState(
            ts=ts, venue=venue, pool=pool_id, block_number=block_number, reserve0=reserve0, reserve1=reserve1
        )
