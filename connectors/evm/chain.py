"""One account's session on one EVM chain: chain id check, EIP-1559 fees under a cap, local signing,
managed nonces, confirmations, reorg handling and readable reverts.

`ChainSession.send(tx)` is the only way the connectors put a transaction on chain:

1. estimate gas (a revert here raises `TransactionReverted` with the decoded reason, nothing sent);
2. price it: max priority fee from `eth_maxPriorityFeePerGas` (optionally capped), max fee =
   latest base fee x multiplier + priority fee, clamped to the configured cap; if even
   `base fee + priority fee` is above the cap the send is refused (`FeeCapExceeded`, nothing sent);
3. take a nonce, sign locally, send raw (`connectors.evm.nonce.NonceManager`);
4. wait until the receipt's block is `confirmations` deep and still canonical. While waiting, a
   receipt whose block hash is no longer the chain's at that height is a reorg: the transaction
   is waited for again, and rebroadcast from its signed bytes if the node lost it. A vanished
   transaction is rebroadcast, a nonce gap below it repaired, a nonce consumed by another
   transaction raises `TransactionReplaced`;
5. a mined revert (status 0) raises `TransactionReverted`, its reason decoded from an `eth_call`
   replay against the state the block started from (exact when the transaction is the block's
   first, as on an automining node; with earlier transactions in the block the replay may differ).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

from eth_account.datastructures import SignedTransaction
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import AsyncHTTPProvider, AsyncWeb3, WebSocketProvider
from web3.exceptions import (
    ContractLogicError,
    TransactionNotFound,
)
from web3.types import TxReceipt

from connectors.evm.http_provider import cancel_safe
from connectors.evm.keys import LocalSigner
from connectors.evm.nonce import TRANSIENT, NonceManager, Submitted, TransactionReplaced
from connectors.evm.revert import (
    RevertReason,
    TransactionReverted,
    decode_revert,
    revert_data_from_rpc_error,
)
from core.errors import InvalidInput, PerpetuaError

log = logging.getLogger(__name__)

WEI_PER_GWEI = 10**9
TRANSFER_GAS = 21_000  # gas of a plain value transfer (the gap filler)

__all__ = [
    "ChainIdMismatch",
    "ChainSession",
    "FeeCapExceeded",
    "FeePolicy",
    "Fees",
    "TransactionReplaced",
    "TransactionReverted",
    "TransactionTimeout",
    "web3_for_url",
]


class ChainIdMismatch(PerpetuaError):
    """The node serves a different chain than the one configured."""

    def __init__(self, expected: int, actual: int, url: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"chain id mismatch at {url}: expected {expected}, node reports {actual}")


class FeeCapExceeded(PerpetuaError):
    """The fee needed now (base fee + priority fee, wei per gas) is above the configured cap."""

    def __init__(self, needed_wei: int, cap_wei: int, base_fee_wei: int, priority_fee_wei: int) -> None:
        self.needed_wei = needed_wei
        self.cap_wei = cap_wei
        super().__init__(
            f"fee needed {Decimal(needed_wei) / WEI_PER_GWEI} gwei (base fee {base_fee_wei} wei + priority "
            f"fee {priority_fee_wei} wei) exceeds max_fee_gwei {Decimal(cap_wei) / WEI_PER_GWEI}; not sent"
        )


class TransactionTimeout(PerpetuaError):
    """No confirmed receipt within the session's receipt timeout; the transaction may still mine."""

    def __init__(self, tx_hash: str, nonce: int, seconds: float) -> None:
        self.tx_hash = tx_hash
        self.nonce = nonce
        super().__init__(f"transaction {tx_hash} (nonce {nonce}) not confirmed within {seconds} s")


def _gwei_to_wei(field: str, gwei: Decimal) -> int:
    wei = gwei * WEI_PER_GWEI
    if wei != wei.to_integral_value() or wei < 0:
        raise InvalidInput(field, gwei, "must be a non-negative whole number of wei (<= 9 decimals of gwei)")
    return int(wei)


@dataclass(frozen=True)
class FeePolicy:
    """How a session prices EIP-1559 transactions (gwei = 10**9 wei per gas)."""

    max_fee_gwei: Decimal  # cap on maxFeePerGas; a send needing more is refused
    base_fee_multiplier: Decimal = Decimal(2)  # headroom for base fee rises while the tx waits
    max_priority_fee_gwei: Decimal | None = None  # cap on the node's suggested tip (None: no cap)
    gas_multiplier: Decimal = Decimal("1.2")  # gas limit = estimate x this, rounded up

    def __post_init__(self) -> None:
        _gwei_to_wei("max_fee_gwei", self.max_fee_gwei)
        if self.max_fee_gwei <= 0:
            raise InvalidInput("max_fee_gwei", self.max_fee_gwei, "must be > 0")
        if self.max_priority_fee_gwei is not None:
            _gwei_to_wei("max_priority_fee_gwei", self.max_priority_fee_gwei)
        if self.base_fee_multiplier < 1:
            raise InvalidInput("base_fee_multiplier", self.base_fee_multiplier, "must be >= 1")
        if self.gas_multiplier < 1:
            raise InvalidInput("gas_multiplier", self.gas_multiplier, "must be >= 1")

    @property
    def cap_wei(self) -> int:
        """`max_fee_gwei` in wei per gas."""
        return _gwei_to_wei("max_fee_gwei", self.max_fee_gwei)


@dataclass(frozen=True)
class Fees:
    """The EIP-1559 fields of one send, in wei per gas."""

    base_fee: int  # of the latest block
    max_priority_fee_per_gas: int
    max_fee_per_gas: int


def web3_for_url(url: str) -> AsyncWeb3[Any]:
    """An `AsyncWeb3` for `url`: http(s) -> HTTP provider, ws(s) -> websocket provider (connect it)."""
    scheme = urlparse(url).scheme.lower()
    if scheme in ("http", "https"):
        return AsyncWeb3(cancel_safe(AsyncHTTPProvider(url)))
    if scheme in ("ws", "wss"):
        return AsyncWeb3(WebSocketProvider(url))
    raise InvalidInput("url", url, "scheme must be http, https, ws or wss")


class ChainSession:
    """Sends transactions from `signer` on the chain behind `w3` (see the module doc).

    `confirmations` = 1 means "mined"; `poll_interval_s` is the receipt polling period and
    `receipt_timeout_s` how long `send` waits for a confirmed receipt. Call `start()` (or use
    `async with`) before sending.
    """

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        signer: LocalSigner,
        expected_chain_id: int,
        fee_policy: FeePolicy,
        *,
        confirmations: int = 1,
        poll_interval_s: float = 0.05,
        receipt_timeout_s: float = 120.0,
        stall_polls: int = 2,
        url: str | None = None,
    ) -> None:
        if confirmations < 1:
            raise InvalidInput("confirmations", confirmations, "must be >= 1")
        if poll_interval_s <= 0:
            raise InvalidInput("poll_interval_s", poll_interval_s, "must be > 0")
        if receipt_timeout_s <= 0:
            raise InvalidInput("receipt_timeout_s", receipt_timeout_s, "must be > 0")
        if stall_polls < 1:
            raise InvalidInput("stall_polls", stall_polls, "must be >= 1")
        if isinstance(w3.provider, AsyncHTTPProvider):
            cancel_safe(w3.provider)  # a cancelled send must not wedge every HTTP provider (web3 #3867)
        self.w3 = w3
        self.signer = signer
        self.expected_chain_id = expected_chain_id
        self.fee_policy = fee_policy
        self.confirmations = confirmations
        self.poll_interval_s = poll_interval_s
        self.receipt_timeout_s = receipt_timeout_s
        self.stall_polls = stall_polls  # polls a stuck state must persist before it is repaired
        self.url = url or str(getattr(w3.provider, "endpoint_uri", "") or "the node")
        self.nonces = NonceManager(w3, signer.address)
        self.reorgs = 0  # receipts seen in a block that later left the canonical chain
        self._started = False

    def __repr__(self) -> str:
        return f"ChainSession(chain_id={self.expected_chain_id}, address={self.address}, url={self.url})"

    @property
    def address(self) -> ChecksumAddress:
        """The sending account."""
        return self.signer.address

    @classmethod
    async def connect(
        cls, url: str, signer: LocalSigner, expected_chain_id: int, fee_policy: FeePolicy, **options: Any
    ) -> ChainSession:
        """A started session on `url` (http(s) or ws(s)); `options` go to the constructor."""
        w3 = web3_for_url(url)
        if isinstance(w3.provider, WebSocketProvider):
            await w3.provider.connect()
        session = cls(w3, signer, expected_chain_id, fee_policy, url=url, **options)
        try:
            await session.start()
        except BaseException:
            await w3.provider.disconnect()
            raise
        return session

    async def start(self) -> None:
        """Check the chain id (`ChainIdMismatch` naming both) and load the nonce from the node."""
        actual = int(await self.w3.eth.chain_id)
        if actual != self.expected_chain_id:
            raise ChainIdMismatch(self.expected_chain_id, actual, self.url)
        nonce = await self.nonces.start()
        self._started = True
        log.info("chain session %s on chain %s at %s, next nonce %s", self.address, actual, self.url, nonce)

    async def close(self) -> None:
        """Disconnect the provider."""
        await self.w3.provider.disconnect()

    async def __aenter__(self) -> ChainSession:
        if not self._started:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def fees(self) -> Fees:
        """The EIP-1559 fees a send would use now; `FeeCapExceeded` if base + tip is above the cap."""
        block, tip = await asyncio.gather(self.w3.eth.get_block("latest"), self.w3.eth.max_priority_fee)
        base = int(block.get("baseFeePerGas", 0))
        priority = int(tip)
        if self.fee_policy.max_priority_fee_gwei is not None:
            priority = min(
                priority, _gwei_to_wei("max_priority_fee_gwei", self.fee_policy.max_priority_fee_gwei)
            )
        cap = self.fee_policy.cap_wei
        if base + priority > cap:
            raise FeeCapExceeded(base + priority, cap, base, priority)
        wanted = int(Decimal(base) * self.fee_policy.base_fee_multiplier) + priority
        return Fees(base, priority, min(wanted, cap))

    def _validated(self, tx: Mapping[str, Any]) -> dict[str, Any]:
        if "nonce" in tx:
            raise InvalidInput("tx.nonce", tx["nonce"], "the session manages nonces; leave it out")
        sender = tx.get("from")
        if sender is not None and AsyncWeb3.to_checksum_address(sender) != self.address:
            raise InvalidInput("tx.from", sender, f"the session signs for {self.address} only")
        value = int(tx.get("value", 0))
        if value < 0:
            raise InvalidInput("tx.value", value, "must be >= 0 wei")
        call: dict[str, Any] = {"from": self.address, "value": value, "data": tx.get("data", b"")}
        if tx.get("to") is not None:
            call["to"] = AsyncWeb3.to_checksum_address(tx["to"])
        if "gas" in tx:
            call["gas"] = int(tx["gas"])
        return call

    async def _estimate(self, call: dict[str, Any], abi: Sequence[Mapping[str, Any]] | None) -> int:
        try:
            estimate = int(await self.w3.eth.estimate_gas(call))  # type: ignore[arg-type]
        except ContractLogicError as error:
            data = revert_data_from_rpc_error({"data": error.data, "message": error.message or ""})
            raise TransactionReverted(decode_revert(data or b"", abi)) from None
        return int(
            (Decimal(estimate) * self.fee_policy.gas_multiplier).to_integral_value(rounding="ROUND_CEILING")
        )

    def _sign(self, call: Mapping[str, Any], fees: Fees, nonce: int) -> SignedTransaction:
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": self.expected_chain_id,
            "nonce": nonce,
            "gas": call["gas"],
            "maxFeePerGas": fees.max_fee_per_gas,
            "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
            "value": call["value"],
            "data": call["data"],
        }
        if "to" in call:
            tx["to"] = call["to"]
        return self.signer.sign_transaction(tx)

    async def _fill(self, nonce: int) -> SignedTransaction:
        """A zero-value self-transfer at `nonce`: fills a gap nobody of ours holds."""
        call = {"to": self.address, "value": 0, "data": b"", "gas": TRANSFER_GAS}
        return self._sign(call, await self.fees(), nonce)

    async def send(
        self,
        tx: Mapping[str, Any],
        *,
        abi: Sequence[Mapping[str, Any]] | None = None,
        confirmations: int | None = None,
        on_submitted: Callable[[Submitted], None] | None = None,
    ) -> TxReceipt:
        """Fill, sign, send `tx` (`to`, `data`, `value` in wei, optional `gas`) and wait for its receipt.

        Returns the receipt once `confirmations` (default: the session's) blocks deep on the canonical
        chain. Raises `TransactionReverted` (reason decoded; custom errors need the contract `abi`),
        `FeeCapExceeded`, `TransactionReplaced` or `TransactionTimeout`. `on_submitted` is called with
        the nonce and hash as soon as the node took the transaction (before it is mined).
        """
        if not self._started:
            raise PerpetuaError("ChainSession.start() was not called")
        depth = self.confirmations if confirmations is None else confirmations
        if depth < 1:
            raise InvalidInput("confirmations", depth, "must be >= 1")
        call = self._validated(tx)
        if "gas" not in call:
            call["gas"] = await self._estimate(call, abi)
        fees = await self.fees()
        submitted = await self.nonces.submit(lambda nonce: self._sign(call, fees, nonce), self._fill)
        if on_submitted is not None:
            on_submitted(submitted)
        log.info(
            "sent %s nonce %s gas %s max fee %s wei tip %s wei",
            submitted.tx_hash,
            submitted.nonce,
            call["gas"],
            fees.max_fee_per_gas,
            fees.max_priority_fee_per_gas,
        )
        try:
            receipt = await self._wait(submitted, depth)
        finally:
            self.nonces.finish(submitted.nonce)
        if receipt["status"] != 1:
            reason = await self.replay_revert(call, receipt, abi)
            raise TransactionReverted(
                reason, submitted.tx_hash, int(receipt["blockNumber"]), int(receipt["gasUsed"])
            )
        return receipt

    async def replace_with_noop(self, nonce: int, bump: Decimal = Decimal("1.125")) -> str:
        """Cancel our pending transaction at `nonce`: a zero-value self-transfer at the same nonce, its
        fees (wei per gas) at least `bump` x the pending one's (nodes want >= +10%) and today's fees.

        Returns the replacement's 0x hash; the original's `send` then raises `TransactionReplaced` once
        the replacement is mined (or returns its receipt if the original was mined first). Raises
        `InvalidInput` if no transaction of ours is in flight at `nonce`, `FeeCapExceeded` above the cap.
        """
        pending = self.nonces.inflight.get(nonce)
        if pending is None:
            raise InvalidInput("nonce", nonce, f"no transaction of {self.address} in flight at it")
        original = await self.w3.eth.get_transaction(pending.tx_hash)  # type: ignore[arg-type]
        now = await self.fees()
        ratio = bump.as_integer_ratio()

        def bumped(wei: int) -> int:
            return -(-wei * ratio[0] // ratio[1])  # rounded up: the node compares whole wei

        priority = max(bumped(int(original.get("maxPriorityFeePerGas", 0))), now.max_priority_fee_per_gas)
        max_fee = max(bumped(int(original.get("maxFeePerGas", 0))), now.max_fee_per_gas, priority)
        if max_fee > self.fee_policy.cap_wei:
            raise FeeCapExceeded(max_fee, self.fee_policy.cap_wei, now.base_fee, priority)
        call = {"to": self.address, "value": 0, "data": b"", "gas": TRANSFER_GAS}
        signed = self._sign(call, Fees(now.base_fee, priority, max_fee), nonce)
        tx_hash = HexBytes(await self.w3.eth.send_raw_transaction(signed.raw_transaction)).to_0x_hex()
        log.info("replacing %s (nonce %s) by no-op %s, fee %s wei", pending.tx_hash, nonce, tx_hash, max_fee)
        return tx_hash

    async def _receipt(self, tx_hash: str) -> TxReceipt | None:
        try:
            return await self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None

    async def _wait(self, submitted: Submitted, depth: int) -> TxReceipt:
        """Poll until `submitted` is `depth` blocks deep on the canonical chain (see module doc)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.receipt_timeout_s
        seen: tuple[int, bytes] | None = None  # (block number, block hash) of the last receipt seen
        stalled = 0
        while True:
            try:
                receipt = await self._receipt(submitted.tx_hash)
                if receipt is None:
                    if seen is not None:
                        self._reorged(submitted, seen)
                        seen = None
                    stalled += 1
                    if stalled >= self.stall_polls:
                        stalled = 0
                        await self._unmined(submitted)
                else:
                    stalled = 0
                    number, block_hash = int(receipt["blockNumber"]), bytes(receipt["blockHash"])
                    if seen is not None and seen != (number, block_hash):
                        self._reorged(submitted, seen)
                    canonical = await self.w3.eth.get_block(number)
                    if bytes(canonical["hash"]) != block_hash:
                        self._reorged(submitted, (number, block_hash))
                        seen = None
                    else:
                        if seen != (number, block_hash):
                            log.debug("receipt of %s seen in block %s", submitted.tx_hash, number)
                        seen = (number, block_hash)
                        head = int(await self.w3.eth.block_number)
                        if head - number + 1 >= depth:
                            return receipt
            except TRANSIENT as error:
                log.warning("node unreachable waiting for %s: %s", submitted.tx_hash, type(error).__name__)
            if loop.time() > deadline:
                raise TransactionTimeout(submitted.tx_hash, submitted.nonce, self.receipt_timeout_s)
            await asyncio.sleep(self.poll_interval_s)

    def _reorged(self, submitted: Submitted, seen: tuple[int, bytes]) -> None:
        self.reorgs += 1
        log.warning(
            "reorg: %s was in block %s (0x%s), no longer canonical; waiting again",
            submitted.tx_hash,
            seen[0],
            seen[1].hex(),
        )

    async def _unmined(self, submitted: Submitted) -> None:
        """Not mined after `stall_polls` polls: rebroadcast, repair a gap, or detect a replacement."""
        if not await self.nonces.is_known(submitted.tx_hash):
            mined = await self.nonces.chain_nonce("latest")
            if mined > submitted.nonce:
                if await self._receipt(submitted.tx_hash) is not None:
                    return  # mined between the two reads
                raise TransactionReplaced(submitted.tx_hash, submitted.nonce, mined)
            await self.nonces.rebroadcast(submitted)
            return
        if await self.nonces.chain_nonce("pending") < submitted.nonce:
            try:
                await self.nonces.repair(self._fill)
            except FeeCapExceeded as error:  # fillers cannot be priced now: keep waiting, retry later
                log.warning("nonce gap below %s not filled yet: %s", submitted.tx_hash, error)

    async def replay_revert(
        self, call: Mapping[str, Any], receipt: TxReceipt, abi: Sequence[Mapping[str, Any]] | None = None
    ) -> RevertReason:
        """Why the mined `call` reverted: an `eth_call` replay at the state its block started from."""
        number = int(receipt["blockNumber"])
        replay = {key: call[key] for key in ("from", "to", "value", "data", "gas") if key in call}
        try:
            await self.w3.eth.call(replay, block_identifier=max(number - 1, 0))  # type: ignore[arg-type]
        except ContractLogicError as error:
            data = revert_data_from_rpc_error({"data": error.data, "message": error.message or ""})
            return decode_revert(data or b"", abi)
        used, limit = int(receipt["gasUsed"]), int(call.get("gas", 0))
        hint = " (all gas used: out of gas)" if used >= limit else ""
        return RevertReason(
            "unknown", f"replay at block {number - 1} did not revert; gas used {used} of {limit}{hint}"
        )
