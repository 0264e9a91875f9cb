"""Reconciliation's order lookup for pool swaps: what the chain says of a swap the journal sent.

`UniswapVenue` keeps its swaps in memory, so after a crash only the chain knows how a swap ended.
The journal holds each sent swap's transaction hash (`venue_order_id`, from the venue's NEW answer);
`SwapLookup` asks the node about it:

- no hash journaled, or a hash the node has never seen: None (never reached the venue);
- in the node's pool but not mined: NEW (still pending: reported, not settled);
- mined and reverted: REJECTED, the swap's gas as the fee;
- mined: FILLED, with the `Fill` the venue would have streamed (the pair, side, quantity and exact
  notional from this pool's Swap log, price = notional / quantity to 18 digits, ts = the block's
  time, fee = the swap's gas at the venue's native price, trade id = the hash). The gas of an
  approval sent for the swap is not known after a restart and is not counted.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from web3 import AsyncWeb3
from web3.exceptions import TransactionNotFound

from bots.journal import Journal
from connectors.evm.erc20 import from_base_units
from connectors.evm.uniswap_events import V2Swap, V3Swap, decode_log
from connectors.evm.uniswap_venue import PRICE_DIGITS
from core.enums import Liquidity, OrderStatus, Side
from core.events import Fill, OrderUpdate
from core.orders import Request, SwapRequest

NS_PER_S = 1_000_000_000
_PRICE = Context(prec=PRICE_DIGITS, rounding=ROUND_HALF_EVEN)  # the venue's own rounding of a fill's price


class SwapLookup:
    """`bots.reconcile.OrderLookup` for a `UniswapVenue` (see the module docstring)."""

    def __init__(self, venue: Any, journal: Journal) -> None:
        self.venue = venue  # a started UniswapVenue: its pools, decimals, native price
        self.journal = journal
        self.w3: AsyncWeb3[Any] = venue.session.w3

    async def _receipt(self, request: Request) -> tuple[str, Any] | None:
        """(tx hash, receipt or None while pending), or None when the chain has no such swap."""
        journaled = await self.journal.order(request.client_order_id)
        tx_hash = journaled.venue_order_id if journaled is not None else ""
        if not tx_hash:
            return None
        try:
            return tx_hash, await self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            pass
        try:
            await self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        return tx_hash, None

    def _gas(self, receipt: Any, quote: str) -> tuple[Decimal, str]:
        """The swap's gas as (fee, asset), as the venue books it."""
        wei = int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
        native = from_base_units(wei, 18)
        price = self.venue.native_price
        price = price() if callable(price) else price
        if price is None:
            return native, self.venue.native_asset
        step = Decimal(1).scaleb(-self.venue.decimals[quote])
        return (native * price).quantize(step, rounding=ROUND_CEILING), quote

    async def _fill(self, request: SwapRequest, tx_hash: str, receipt: Any) -> Fill | None:
        spec = self.venue.pools[request.pool]
        pool, pair = spec.pool, spec.pair
        for log in receipt["logs"]:
            if AsyncWeb3.to_checksum_address(log["address"]) != AsyncWeb3.to_checksum_address(pool.address):
                continue
            event = decode_log(log)
            if isinstance(event, V3Swap):
                deltas = (event.amount0, event.amount1)
            elif isinstance(event, V2Swap):
                deltas = (event.amount0_in - event.amount0_out, event.amount1_in - event.amount1_out)
            else:
                continue
            zero_for_one = request.token_in == pool.token0
            amount_in, amount_out = (deltas[0], -deltas[1]) if zero_for_one else (deltas[1], -deltas[0])
            paid = from_base_units(amount_in, self.venue.decimals[request.token_in])
            received = from_base_units(amount_out, self.venue.decimals[request.token_out])
            buy = request.token_in == pair.quote
            quantity, notional = (received, paid) if buy else (paid, received)
            price = _PRICE.divide(notional, quantity)
            block = await self.w3.eth.get_block(int(receipt["blockNumber"]))
            fee, fee_asset = self._gas(receipt, pair.quote)
            side = Side.BUY if buy else Side.SELL
            return Fill(
                int(block["timestamp"]) * NS_PER_S, self.venue.name, pair.id, request.client_order_id, side,
                price, quantity, fee, fee_asset, Liquidity.TAKER, tx_hash, notional,
            )  # fmt: skip
        return None

    async def lookup(self, request: Request) -> OrderUpdate | None:
        """The swap's state as the chain tells it, or None if it never reached the node."""
        if not isinstance(request, SwapRequest):
            return None
        found = await self._receipt(request)
        if found is None:
            return None
        tx_hash, receipt = found
        cid = request.client_order_id
        if receipt is None:
            return OrderUpdate(0, self.venue.name, cid, OrderStatus.NEW, tx_hash, Decimal(0), None, "pending")
        ts = int((await self.w3.eth.get_block(int(receipt["blockNumber"])))["timestamp"]) * NS_PER_S
        if int(receipt["status"]) != 1:
            fee, asset = self._gas(receipt, self.venue.pools[request.pool].pair.quote)
            return OrderUpdate(
                ts,
                self.venue.name,
                cid,
                OrderStatus.REJECTED,
                tx_hash,
                Decimal(0),
                None,
                "reverted",
                fee,
                asset,
            )
        fill = await self._fill(request, tx_hash, receipt)
        if fill is None:
            return None
        return OrderUpdate(ts, self.venue.name, cid, OrderStatus.FILLED, tx_hash, fill.quantity, fill.price)

    async def fills(self, request: Request, since_ns: int) -> list[Fill] | None:
        """The swap's one fill once mined, else none."""
        if not isinstance(request, SwapRequest):
            return None
        found = await self._receipt(request)
        if found is None or found[1] is None or int(found[1]["status"]) != 1:
            return []
        fill = await self._fill(request, found[0], found[1])
        return [] if fill is None else [fill]
