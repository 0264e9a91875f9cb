"""Nonces of one sending account: consecutive under concurrency, resynced from the chain on error.

The manager hands out nonces under an `asyncio.Lock` held only while a transaction is signed and
handed to the node (not while it waits to be mined), so concurrent sends get n, n+1, ... in the
order they reach the node, and a send that fails before the node accepted it gives its nonce back.
It starts from `eth_getTransactionCount(address, "pending")`, so a restarted process continues
after the transactions its predecessor left in the mempool. It keeps the signed bytes of every
transaction in flight, which lets it repair the two ways an account gets stuck:

- a transaction of ours vanished from the node (dropped, lost in a node restart, reorged out):
  rebroadcast its exact signed bytes (same hash, so never a double spend);
- a gap: the node's pending nonce is below a nonce we sent and no transaction of ours holds the
  missing nonces (local state ran ahead of the chain): fill each missing nonce with a zero-value
  transfer to ourselves, so the queued transactions behind it can be mined as sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from eth_account.datastructures import SignedTransaction
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.exceptions import PersistentConnectionError, ProviderConnectionError, Web3RPCError

from core.errors import PerpetuaError

log = logging.getLogger(__name__)

# errors that mean "the node is unreachable right now", not "the request is wrong"
TRANSIENT = (OSError, aiohttp.ClientError, TimeoutError, ProviderConnectionError, PersistentConnectionError)
NONCE_TOO_LOW = ("nonce too low", "already known", "known transaction", "replacement transaction underpriced")
NONCE_TOO_HIGH = ("nonce too high", "nonce gap")

# builds and signs the transaction for a given nonce (wei fees filled by the caller)
SignForNonce = Callable[[int], SignedTransaction]
# builds and signs a zero-value self-transfer that fills a nonce gap
SignFiller = Callable[[int], Awaitable[SignedTransaction]]


class NonceError(PerpetuaError):
    """The account's nonces could not be brought back in line with the chain."""


class TransactionReplaced(PerpetuaError):
    """Our transaction's nonce was consumed on chain by a different transaction."""

    def __init__(self, tx_hash: str, nonce: int, chain_nonce: int) -> None:
        self.tx_hash = tx_hash
        self.nonce = nonce
        self.chain_nonce = chain_nonce
        super().__init__(
            f"transaction {tx_hash} (nonce {nonce}) was replaced: the chain's nonce is {chain_nonce} "
            "and it is not mined"
        )


@dataclass(frozen=True)
class Submitted:
    """A transaction the node accepted: its nonce, 0x hash and signed bytes."""

    nonce: int
    tx_hash: str
    raw: HexBytes


def error_text(error: BaseException) -> str:
    """The node's message inside a web3 RPC error, lower-cased (for classifying nonce errors)."""
    if isinstance(error, Web3RPCError) and error.rpc_response:
        inner = error.rpc_response.get("error")
        if isinstance(inner, dict):
            return str(inner.get("message", "")).lower()
    return str(error).lower()


def classify(error: BaseException) -> str | None:
    """ "low", "high" or None for an error of `eth_sendRawTransaction`."""
    text = error_text(error)
    if any(marker in text for marker in NONCE_TOO_LOW):
        return "low"
    if any(marker in text for marker in NONCE_TOO_HIGH):
        return "high"
    return None


class NonceManager:
    """Hands out the nonces of `address` on `w3` and repairs drops and gaps (see module doc)."""

    def __init__(self, w3: AsyncWeb3[Any], address: ChecksumAddress, max_resyncs: int = 5) -> None:
        self.w3 = w3
        self.address = address
        self.max_resyncs = max_resyncs
        self._lock = asyncio.Lock()
        self._next: int | None = None
        self._inflight: dict[int, Submitted] = {}
        self.resyncs = 0  # times the local nonce was reset from the chain
        self.rebroadcasts = 0  # times a vanished transaction's bytes were sent again
        self.fillers = 0  # gap-filling self-transfers sent

    @property
    def next_nonce(self) -> int | None:
        """The nonce the next send will use (None before `start`)."""
        return self._next

    @property
    def inflight(self) -> dict[int, Submitted]:
        """Nonce -> transaction sent and not yet confirmed (a copy)."""
        return dict(self._inflight)

    async def chain_nonce(self, block: str = "pending") -> int:
        """`eth_getTransactionCount(address, block)`: the next nonce the node would accept in order."""
        return int(await self.w3.eth.get_transaction_count(self.address, block))  # type: ignore[arg-type]

    async def start(self) -> int:
        """Set the next nonce from the node's pending count; returns it."""
        async with self._lock:
            self._next = await self.chain_nonce()
            return self._next

    async def _resync(self) -> None:
        """After "nonce too low": move past the chain's pending count and past our own in flight."""
        chain = await self.chain_nonce()
        held = [nonce for nonce in self._inflight if nonce >= chain]
        new = max([chain, *(nonce + 1 for nonce in held)])
        log.warning("nonce resync for %s: local %s -> %s (chain %s)", self.address, self._next, new, chain)
        self._next = new
        self.resyncs += 1

    async def _lower(self, refused: int, fill: SignFiller | None) -> None:
        """After "nonce too high" at `refused`: repair the gap below it, or step down to the chain's nonce."""
        chain = await self.chain_nonce()
        if any(chain <= nonce < refused for nonce in self._inflight) and fill is not None:
            await self._repair_locked(fill, refused)
            return
        log.warning("nonce resync for %s: local %s -> %s (none of ours below)", self.address, refused, chain)
        self._next = chain
        self.resyncs += 1

    async def submit(self, sign: SignForNonce, fill: SignFiller | None = None) -> Submitted:
        """Sign with the next nonce and send raw; resync and retry on nonce errors.

        A nonce is consumed only once the node accepted the transaction; any other error gives it
        back (re-raised unchanged). `fill` signs gap fillers if the node refuses a nonce as too high.
        """
        async with self._lock:
            if self._next is None:
                self._next = await self.chain_nonce()
            for _ in range(self.max_resyncs + 1):
                nonce = self._next
                signed = sign(nonce)
                try:
                    tx_hash = await self.w3.eth.send_raw_transaction(signed.raw_transaction)
                except TRANSIENT as error:
                    # the node may have it: keep the nonce and the bytes, the waiter rebroadcasts them
                    log.warning("sending nonce %s of %s: %s; treated as sent", nonce, self.address, error)
                    tx_hash = signed.hash
                except Web3RPCError as error:
                    kind = classify(error)
                    if kind is None:
                        raise
                    log.warning("nonce %s of %s refused (%s)", nonce, self.address, error_text(error))
                    if kind == "low":
                        await self._resync()
                    else:
                        await self._lower(nonce, fill)
                    continue
                submitted = Submitted(nonce, HexBytes(tx_hash).to_0x_hex(), HexBytes(signed.raw_transaction))
                self._inflight[nonce] = submitted
                self._next = nonce + 1
                return submitted
            raise NonceError(f"no nonce accepted for {self.address} after {self.max_resyncs} resyncs")

    def finish(self, nonce: int) -> None:
        """Forget the in-flight transaction at `nonce` (confirmed, replaced or given up)."""
        self._inflight.pop(nonce, None)

    async def rebroadcast(self, submitted: Submitted) -> bool:
        """Send the exact signed bytes again (the node lost them); False if the node already had them."""
        try:
            await self.w3.eth.send_raw_transaction(submitted.raw)
        except Web3RPCError as error:
            if classify(error) != "low":
                raise
            return False
        self.rebroadcasts += 1
        log.warning("rebroadcast %s (nonce %s)", submitted.tx_hash, submitted.nonce)
        return True

    async def repair(self, fill: SignFiller) -> None:
        """Make every nonce from the chain's pending count up to our highest in flight mineable.

        Vanished transactions of ours are rebroadcast; nonces nobody of ours holds are filled with
        zero-value self-transfers signed by `fill`.
        """
        async with self._lock:
            await self._repair_locked(fill, max(self._inflight, default=-1))

    async def _repair_locked(self, fill: SignFiller, below: int) -> None:
        """`repair` for nonces from the chain's pending count up to (not including) `below`."""
        chain = await self.chain_nonce()
        for nonce in range(chain, below):
            known = self._inflight.get(nonce)
            if known is not None:
                if not await self.is_known(known.tx_hash):
                    await self.rebroadcast(known)
                continue
            signed = await fill(nonce)
            await self.w3.eth.send_raw_transaction(signed.raw_transaction)
            self.fillers += 1
            log.warning("filled nonce gap at %s for %s", nonce, self.address)

    async def is_known(self, tx_hash: str) -> bool:
        """Whether the node knows transaction `tx_hash` (in its mempool or on chain)."""
        reply = await self.w3.provider.make_request("eth_getTransactionByHash", [tx_hash])
        return reply.get("result") is not None
