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

from decimal import Decimal
from typing import Any

from web3 import AsyncWeb3
from web3.exceptions import TransactionNotFound

from bots.journal import Journal
from connectors.evm.uniswap_venue import UniswapVenue, gas_wei
from core.enums import OrderStatus
from core.events import Fill, OrderUpdate
from core.orders import Request, SwapRequest

NS_PER_S = 1_000_000_000


class SwapLookup:
    """`bots.reconcile.OrderLookup` for a `UniswapVenue` (see the module docstring)."""

    def __init__(self, venue: UniswapVenue, journal: Journal) -> None:
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

    async def _fill(self, request: SwapRequest, receipt: Any) -> Fill | None:
        """The venue's own `Fill` of a mined swap, or None if the receipt holds no swap of its pool."""
        try:
            executed = self.venue.executed_swap(request, receipt)
        except RuntimeError:
            return None
        return await self.venue.swap_fill(request, executed, gas_wei(receipt))

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
        if int(receipt["status"]) != 1:
            ts = int((await self.w3.eth.get_block(int(receipt["blockNumber"])))["timestamp"]) * NS_PER_S
            fee, asset = self.venue.gas_fee(gas_wei(receipt), self.venue.pools[request.pool].pair.quote)
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
        fill = await self._fill(request, receipt)
        if fill is None:
            return None
        return OrderUpdate(
            fill.ts, self.venue.name, cid, OrderStatus.FILLED, tx_hash, fill.quantity, fill.price
        )

    async def fills(self, request: Request, since_ns: int) -> list[Fill] | None:
        """The swap's one fill once mined, else none."""
        if not isinstance(request, SwapRequest):
            return None
        found = await self._receipt(request)
        if found is None or found[1] is None or int(found[1]["status"]) != 1:
            return []
        fill = await self._fill(request, found[1])
        return [] if fill is None else [fill]
