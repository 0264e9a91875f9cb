"""Revert data decoding against encodings made independently with eth-abi (the Solidity ABI spec)."""

from __future__ import annotations

from eth_abi.abi import encode
from web3 import AsyncWeb3

from connectors.evm.revert import decode_revert, revert_data_from_rpc_error

ERROR = bytes.fromhex("08c379a0")
PANIC = bytes.fromhex("4e487b71")
ABI = [
    {
        "type": "error",
        "name": "TooLittleReceived",
        "inputs": [{"name": "minimum", "type": "uint256"}, {"name": "pool", "type": "address"}],
    },
    {"type": "error", "name": "Paused", "inputs": []},
    {"type": "function", "name": "swap", "inputs": [], "outputs": []},
]
POOL = AsyncWeb3.to_checksum_address("0x" + "61" * 20)


def selector(signature: str) -> bytes:
    """keccak256(signature)[:4]."""
    return bytes(AsyncWeb3.keccak(text=signature)[:4])


def test_error_string() -> None:
    reason = decode_revert(ERROR + encode(["string"], ["Too little received"]))
    assert (reason.kind, reason.message, reason.name) == ("error", "Too little received", "Error")


def test_panic_codes() -> None:
    cases = {
        0x01: "assert(false)",
        0x11: "arithmetic overflow or underflow",
        0x12: "division or modulo by zero",
    }
    for code, meaning in cases.items():
        reason = decode_revert(PANIC + encode(["uint256"], [code]))
        assert (reason.kind, reason.panic_code, reason.message) == (
            "panic",
            code,
            f"Panic(0x{code:02x}): {meaning}",
        )
    assert decode_revert(PANIC + encode(["uint256"], [0x99])).message == "Panic(0x99): unknown panic code"


def test_custom_errors_with_and_without_args() -> None:
    data = selector("TooLittleReceived(uint256,address)") + encode(["uint256", "address"], [12345, POOL])
    reason = decode_revert(data, ABI)
    assert reason.kind == "custom"
    assert reason.message == f"TooLittleReceived(minimum=12345, pool='{POOL}')"
    assert reason.args == (12345, POOL)
    assert decode_revert(selector("Paused()"), ABI).message == "Paused()"
    unknown = decode_revert(data)  # no ABI
    assert (unknown.kind, unknown.message) == ("unknown", f"unrecognised revert data 0x{data.hex()}")


def test_empty_and_malformed_data() -> None:
    assert decode_revert(b"").kind == "empty"
    truncated = ERROR + encode(["string"], ["abc"])[:40]
    assert decode_revert(truncated).kind == "unknown"


def test_revert_data_in_rpc_errors() -> None:
    data = ERROR + encode(["string"], ["x"])
    assert (
        revert_data_from_rpc_error({"code": 3, "message": "execution reverted: x", "data": "0x" + data.hex()})
        == data
    )
    assert revert_data_from_rpc_error({"message": "reverted", "data": {"data": "0x" + data.hex()}}) == data
    assert (
        revert_data_from_rpc_error({"message": f"VM Exception: reverted with data: 0x{data.hex()}"}) == data
    )
    assert revert_data_from_rpc_error({"message": "execution reverted"}) == b""
    assert revert_data_from_rpc_error({"message": "insufficient funds for gas"}) is None
    assert revert_data_from_rpc_error(None) is None
