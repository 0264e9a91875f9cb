"""A Uniswap v2 pair read from the chain and quoted locally with `pricing.amm`'s v2 formulas.

`UniswapV2Pair(w3, address)`: `await pair.refresh()` reads getReserves (and token0/token1 once),
pinned to one block; the quotes are UniswapV2Library.getAmountOut / getAmountIn (0.30% fee) on those
reserves, to the wei. Amounts and reserves are token base units.
"""

from __future__ import annotations

from typing import Any

from eth_typing import ChecksumAddress
from web3 import AsyncWeb3
from web3.contract import AsyncContract

from connectors.evm.uniswap_artifacts import contract_at
from connectors.evm.uniswap_v3 import PoolNotLoadedError, batch_calls
from core.events import PoolState
from pricing.amm import v2_amount_in, v2_amount_out

FEE_BPS = 30  # the pair's 0.30% fee on the input (997/1000)


class UniswapV2Pair:
    """A Uniswap v2 pair at `address`, read through the `AsyncWeb3` `w3` and quoted locally.

    Call `await refresh()` first; then `token0`, `token1` (checksum addresses), `reserve0`,
    `reserve1` (base units), `block_timestamp_last` and `block_number` are set.
    """

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

    def to_pool_state_event(self, ts: int, venue: str, pool_id: str, block_number: int) -> PoolState:
        """The reserves as a `core.events.PoolState` (reserve0, reserve1 in base units)."""
        reserve0, reserve1 = self._loaded()
        return PoolState(
            ts=ts, venue=venue, pool=pool_id, block_number=block_number, reserve0=reserve0, reserve1=reserve1
        )
