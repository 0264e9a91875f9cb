"""The Uniswap pool events that move a pool's state, decoded from raw logs without web3's ABI machinery.

v3: Swap (price, tick and in-range liquidity after the swap), Mint and Burn (a range's liquidity),
Initialize. v2: Swap (amounts in and out) and Sync (the reserves after any change). Every field is
a fixed 32-byte word, so decoding is slicing and `int.from_bytes`: a few microseconds a log, where
web3's event processing takes a hundred. Amounts are token base units, prices Q64.96.

`decode_log` accepts a log as web3 returns it (HexBytes topics and data, int block number) or as the
raw JSON-RPC result (hex strings), so the same code serves eth_getLogs, eth_subscribe and receipts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from eth_typing import ChecksumAddress
from web3 import AsyncWeb3
from web3.types import RPCEndpoint

# keccak256 of each event signature: topic 0 of its logs
V3_SWAP_TOPIC = bytes.fromhex("c42079f94a6350d7e6235f29174924f928cc2ac818eb64fed8004e115fbcca67")
V3_MINT_TOPIC = bytes.fromhex("7a53080ba414158be7ec69b987b5fb7d07dee101fe85488f0853ae16239d0bde")
V3_BURN_TOPIC = bytes.fromhex("0c396cd989a39f4459b5fa1aed6a9a8dcdbc45908acfd67e028cd568da98982c")
V3_INITIALIZE_TOPIC = bytes.fromhex("98636036cb66a9c19a37435efc1e90142190214e8abeb821bdba3f2990dd4c95")
V2_SWAP_TOPIC = bytes.fromhex("d78ad95fa46c994b6551d0da85fc275fe613ce37657fb8d5e3d130840159d822")
V2_SYNC_TOPIC = bytes.fromhex("1c411e9a96e071241c2f21f7726b17ae89e3cab4c78be50e062b03a9fffbbad1")

V3_STATE_TOPICS: tuple[bytes, ...] = (V3_SWAP_TOPIC, V3_MINT_TOPIC, V3_BURN_TOPIC)
V2_STATE_TOPICS: tuple[bytes, ...] = (V2_SYNC_TOPIC,)


class LogDecodeError(ValueError):
    """A log that does not have the layout of the event its first topic names."""


class LogPosition(NamedTuple):
    """Where a log sits in the chain: block number, index in the block, and whether a reorg removed it."""

    block_number: int
    log_index: int
    removed: bool


class V3Swap(NamedTuple):
    """UniswapV3Pool Swap: the pool's signed deltas (base units, > 0 into the pool) and its state after."""

    position: LogPosition
    amount0: int
    amount1: int
    sqrt_price_x96: int
    liquidity: int
    tick: int


class V3LiquidityChange(NamedTuple):
    """UniswapV3Pool Mint (`delta` > 0) or Burn (`delta` <= 0) of `abs(delta)` liquidity in [lower, upper)."""

    position: LogPosition
    tick_lower: int
    tick_upper: int
    delta: int
    amount0: int
    amount1: int


class V3Initialize(NamedTuple):
    """UniswapV3Pool Initialize: the first price (Q64.96) and its tick."""

    position: LogPosition
    sqrt_price_x96: int
    tick: int


class V2Swap(NamedTuple):
    """UniswapV2Pair Swap: amounts in and out of each token (base units)."""

    position: LogPosition
    amount0_in: int
    amount1_in: int
    amount0_out: int
    amount1_out: int


class V2Sync(NamedTuple):
    """UniswapV2Pair Sync: the reserves (base units) after a mint, burn, swap or sync."""

    position: LogPosition
    reserve0: int
    reserve1: int


PoolEvent = V3Swap | V3LiquidityChange | V3Initialize | V2Swap | V2Sync


def _to_bytes(value: Any) -> bytes:
    """bytes of a HexBytes/bytes value or a 0x-prefixed hex string."""
    if isinstance(value, bytes):
        return value
    return bytes.fromhex(value[2:] if value.startswith("0x") else value)


def _to_int(value: Any) -> int:
    """An int from an int or a 0x-prefixed hex quantity."""
    return value if isinstance(value, int) else int(value, 16)


def _signed(word: bytes) -> int:
    """A 32-byte two's complement word (int24/int256 are sign-extended to 256 bits in logs)."""
    return int.from_bytes(word, "big", signed=True)


def log_address(log: Mapping[str, Any]) -> ChecksumAddress:
    """The checksum address of the contract that emitted `log`."""
    return AsyncWeb3.to_checksum_address(log["address"])


def decode_log(log: Mapping[str, Any]) -> PoolEvent | None:
    """The decoded pool event of `log`, or None for a log of another event (Transfer, Collect, ...).

    Raises `LogDecodeError` naming the event when the topics or data do not have its layout.
    """
    topics = log["topics"]
    if not topics:
        return None
    topic0 = _to_bytes(topics[0])
    data = _to_bytes(log["data"])
    position = LogPosition(
        _to_int(log["blockNumber"]), _to_int(log["logIndex"]), bool(log.get("removed", False))
    )
    try:
        if topic0 == V3_SWAP_TOPIC:
            _need(data, 5, topics, 3, "v3 Swap")
            return V3Swap(
                position,
                _signed(data[0:32]),
                _signed(data[32:64]),
                int.from_bytes(data[64:96], "big"),
                int.from_bytes(data[96:128], "big"),
                _signed(data[128:160]),
            )
        if topic0 == V3_MINT_TOPIC:
            _need(data, 4, topics, 4, "v3 Mint")
            return V3LiquidityChange(
                position,
                _signed(_to_bytes(topics[2])),
                _signed(_to_bytes(topics[3])),
                int.from_bytes(data[32:64], "big"),
                int.from_bytes(data[64:96], "big"),
                int.from_bytes(data[96:128], "big"),
            )
        if topic0 == V3_BURN_TOPIC:
            _need(data, 3, topics, 4, "v3 Burn")
            return V3LiquidityChange(
                position,
                _signed(_to_bytes(topics[2])),
                _signed(_to_bytes(topics[3])),
                -int.from_bytes(data[0:32], "big"),
                int.from_bytes(data[32:64], "big"),
                int.from_bytes(data[64:96], "big"),
            )
        if topic0 == V3_INITIALIZE_TOPIC:
            _need(data, 2, topics, 1, "v3 Initialize")
            return V3Initialize(position, int.from_bytes(data[0:32], "big"), _signed(data[32:64]))
        if topic0 == V2_SYNC_TOPIC:
            _need(data, 2, topics, 1, "v2 Sync")
            return V2Sync(position, int.from_bytes(data[0:32], "big"), int.from_bytes(data[32:64], "big"))
        if topic0 == V2_SWAP_TOPIC:
            _need(data, 4, topics, 3, "v2 Swap")
            words = [int.from_bytes(data[i : i + 32], "big") for i in range(0, 128, 32)]
            return V2Swap(position, *words)
    except ValueError as error:
        if isinstance(error, LogDecodeError):
            raise
        raise LogDecodeError(f"log at {position}: {error}") from error
    return None


def _need(data: bytes, words: int, topics: Any, n_topics: int, event: str) -> None:
    """Raise `LogDecodeError` unless the log has `words` data words and `n_topics` topics."""
    if len(data) != 32 * words or len(topics) != n_topics:
        raise LogDecodeError(
            f"{event}: expected {words} data words and {n_topics} topics, "
            f"got data of {len(data)} bytes and {len(topics)} topics"
        )


async def fetch_logs(
    w3: AsyncWeb3[Any],
    address: str,
    topics: tuple[bytes, ...],
    from_block: int,
    to_block: int,
    max_block_range: int = 10_000,
) -> list[dict[str, Any]]:
    """Raw eth_getLogs results of `address` whose topic 0 is one of `topics`, blocks [from, to] inclusive.

    Asks in windows of at most `max_block_range` blocks (providers cap the range) and returns the
    raw JSON-RPC logs (hex strings) in chain order; skipping web3's result formatters keeps a
    load of thousands of logs fast. Raises `RuntimeError` with the node's message on an RPC error.
    """
    if max_block_range < 1:
        raise ValueError(f"max_block_range must be >= 1, got {max_block_range}")
    topic_filter = [["0x" + topic.hex() for topic in topics]]
    logs: list[dict[str, Any]] = []
    start = max(0, from_block)
    while start <= to_block:
        end = min(to_block, start + max_block_range - 1)
        params = {"address": address, "topics": topic_filter, "fromBlock": hex(start), "toBlock": hex(end)}
        reply = await w3.provider.make_request(RPCEndpoint("eth_getLogs"), [params])
        if "error" in reply:
            raise RuntimeError(f"eth_getLogs [{start}, {end}] of {address}: {reply['error']}")
        logs.extend(reply["result"])
        start = end + 1
    return logs
