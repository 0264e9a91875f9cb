"""What pool execution needs from whoever signs and sends transactions: an address and `send`.

`UniswapV3Pool.swap` and `UniswapV2Pair.swap` build the router call and hand it to a
`TransactionSender`; they do not sign, price gas or count nonces. A chain session that does those
(EIP-1559 fees, a nonce manager, confirmations) plugs in by having `address` and
`async send(tx) -> TxReceipt` and raising on a revert with the decoded reason in the message.
`UnlockedAccountSender` is the simplest real sender: a node-side unlocked account (anvil's dev
accounts) through eth_sendTransaction.
"""

from __future__ import annotations

from typing import Any, Protocol

from eth_typing import ChecksumAddress
from web3 import AsyncWeb3
from web3.exceptions import ContractLogicError
from web3.types import TxParams, TxReceipt


class TransactionReverted(RuntimeError):
    """A transaction reverted (in gas estimation or on chain); `reason` is the decoded revert string."""

    def __init__(self, reason: str, tx_hash: str | None = None) -> None:
        where = f" (tx {tx_hash})" if tx_hash else ""
        super().__init__(f"transaction reverted: {reason}{where}")
        self.reason = reason
        self.tx_hash = tx_hash


class TransactionSender(Protocol):
    """Sends a transaction from `address` and returns its receipt once mined.

    `send` fills what `tx` leaves out (nonce, gas, fees, chain id), waits for the receipt, and raises
    (with the revert reason in the message) when the transaction reverts; it never returns a receipt
    of status 0.
    """

    @property
    def address(self) -> ChecksumAddress:
        """The account that pays and signs."""
        ...

    async def send(self, tx: TxParams) -> TxReceipt:
        """Send `tx` (to, data, value; from is `address`) and return its receipt (status 1)."""
        ...


class UnlockedAccountSender:
    """A `TransactionSender` for an account the node itself holds unlocked (eth_sendTransaction).

    Meant for local nodes (anvil's dev accounts); production keys belong in a signing chain session.
    """

    def __init__(self, w3: AsyncWeb3[Any], address: str, receipt_timeout_seconds: float = 30.0) -> None:
        self.w3 = w3
        self._address = AsyncWeb3.to_checksum_address(address)
        self.receipt_timeout_seconds = receipt_timeout_seconds

    @property
    def address(self) -> ChecksumAddress:
        """The unlocked account."""
        return self._address

    async def send(self, tx: TxParams) -> TxReceipt:
        """Send `tx` from the unlocked account; the receipt, or `TransactionReverted` with the reason.

        Without a `gas` field the node estimates gas first, and a call that would revert fails there
        with its reason; with one, a reverted receipt is replayed as eth_call at its block to read it.
        """
        full: TxParams = {**tx, "from": self._address}
        try:
            tx_hash = await self.w3.eth.send_transaction(full)
        except ContractLogicError as error:
            raise TransactionReverted(_reason(error)) from None
        receipt = await self.w3.eth.wait_for_transaction_receipt(tx_hash, self.receipt_timeout_seconds)
        if receipt["status"] != 1:
            reason = "unknown reason"
            try:
                await self.w3.eth.call(full, receipt["blockNumber"] - 1)
            except ContractLogicError as error:
                reason = _reason(error)
            raise TransactionReverted(reason, tx_hash.to_0x_hex())
        return receipt


def _reason(error: ContractLogicError) -> str:
    """The revert string of `error` ('Too little received'), without web3's prefix."""
    message = str(error.message or error)
    return message.removeprefix("execution reverted: ").strip()
