"""Revert data decoded to a readable reason: `Error(string)`, `Panic(uint256)` and custom errors.

A contract that reverts returns ABI-encoded data: `Error(string)` for `require(cond, "msg")` and
`revert("msg")`, `Panic(uint256)` for failed asserts, arithmetic overflow, division by zero and the
like (Solidity >= 0.8), or a custom error `Name(args)` whose 4-byte selector only the contract's ABI
can name. Nodes carry it in the JSON-RPC error of `eth_call` / `eth_estimateGas` (`error.data`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils.abi import abi_to_signature, function_signature_to_4byte_selector, get_abi_input_types

from connectors.evm.tx_sender import TransactionReverted as SenderTransactionReverted
from core.errors import PerpetuaError

ERROR_SELECTOR = bytes.fromhex("08c379a0")  # keccak("Error(string)")[:4]
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # keccak("Panic(uint256)")[:4]

# Solidity's panic codes (docs: "Panic via assert and Error via require")
PANIC_CODES: dict[int, str] = {
    0x00: "generic compiler panic",
    0x01: "assert(false)",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "conversion to an enum out of range",
    0x22: "incorrectly encoded storage byte array",
    0x31: "pop() on an empty array",
    0x32: "array index out of bounds",
    0x41: "too much memory allocated",
    0x51: "call to a zero-initialized internal function",
}

RevertKind = Literal["error", "panic", "custom", "empty", "unknown"]


@dataclass(frozen=True)
class RevertReason:
    """A decoded revert: `kind`, a readable `message`, the raw `data`, and the error's name and args."""

    kind: RevertKind
    message: str
    data: bytes = b""
    name: str | None = None
    args: tuple[Any, ...] = field(default=())
    panic_code: int | None = None

    def __str__(self) -> str:
        return self.message


class TransactionReverted(PerpetuaError, SenderTransactionReverted):
    """A transaction (or its pre-flight gas estimate) reverted; `revert` says why, `reason` in words.

    A `connectors.evm.tx_sender.TransactionReverted`, so pool code catching that catches this.
    `tx_hash` is the 0x hash when the transaction was mined (None when refused before sending),
    `block_number` the block it was mined in.
    """

    def __init__(
        self,
        revert: RevertReason,
        tx_hash: str | None = None,
        block_number: int | None = None,
        gas_used: int | None = None,
    ) -> None:
        self.revert = revert
        self.reason = revert.message
        self.tx_hash = tx_hash
        self.block_number = block_number
        self.gas_used = gas_used
        where = f"transaction {tx_hash} in block {block_number}" if tx_hash else "transaction (not sent)"
        Exception.__init__(self, f"{where} reverted: {revert.message}")


def custom_error_selectors(abi: Sequence[Mapping[str, Any]]) -> dict[bytes, Mapping[str, Any]]:
    """4-byte selector -> ABI entry of every `type: error` entry of `abi`."""
    selectors: dict[bytes, Mapping[str, Any]] = {}
    for entry in abi:
        if entry.get("type") == "error":
            signature = abi_to_signature(entry)  # type: ignore[arg-type]
            selectors[function_signature_to_4byte_selector(signature)] = entry
    return selectors


def _describe_panic(code: int) -> str:
    meaning = PANIC_CODES.get(code, "unknown panic code")
    return f"Panic(0x{code:02x}): {meaning}"


def decode_revert(data: bytes, abi: Sequence[Mapping[str, Any]] | None = None) -> RevertReason:
    """Decode revert `data` (the bytes a reverting call returned); custom errors need `abi`.

    Never raises on malformed data: it comes back as kind "unknown" with the data in hex.
    """
    if not data:
        return RevertReason("empty", "reverted without data (require without message, or out of gas)")
    selector, body = data[:4], data[4:]
    try:
        if selector == ERROR_SELECTOR:
            (text,) = decode(["string"], body)
            return RevertReason("error", str(text), data, "Error", (text,))
        if selector == PANIC_SELECTOR:
            (code,) = decode(["uint256"], body)
            return RevertReason("panic", _describe_panic(int(code)), data, "Panic", (code,), int(code))
        entry = custom_error_selectors(abi or ()).get(selector)
        if entry is not None:
            values = tuple(decode(get_abi_input_types(entry), body))  # type: ignore[arg-type]
            names = [str(item.get("name") or f"arg{i}") for i, item in enumerate(entry.get("inputs", ()))]
            shown = ", ".join(f"{name}={value!r}" for name, value in zip(names, values, strict=True))
            return RevertReason("custom", f"{entry['name']}({shown})", data, str(entry["name"]), values)
    except (DecodingError, ValueError, TypeError):
        pass
    return RevertReason("unknown", f"unrecognised revert data 0x{data.hex()}", data)


def revert_data_from_rpc_error(error: Mapping[str, Any] | None) -> bytes | None:
    """The revert data inside a JSON-RPC `error` object, or None if it carries none.

    anvil and geth put it in `error.data` as a 0x string; some providers nest it one level deeper
    (`error.data.data`) or embed it in the message after "reverted with data: ".
    """
    if not error:
        return None
    data: Any = error.get("data")
    if isinstance(data, Mapping):
        data = data.get("data") or data.get("result")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    message = str(error.get("message", ""))
    marker = "data: 0x"
    if marker in message:
        candidate = message[message.index(marker) + len(marker) :].split()[0].rstrip(".,'\")")
        try:
            return bytes.fromhex(candidate)
        except ValueError:
            return None
    if "revert" in message.lower():
        return b""
    return None
