"""What one exchange spells differently from ccxt's unified API, keyed by ccxt's exchange id.

`CcxtExchange` reads these instead of branching on the exchange's name: a new exchange with a
quirk gets an entry here (or a `Capabilities` passed to the connector), never an `if` in the code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Capabilities:
    """How one exchange spells what ccxt does not unify, and the defaults it does not report.

    `funding_interval_h` is used when the exchange does not say a perpetual's funding interval
    (hours); `stream_reconnect_max_delay` caps the reconnect backoff of a dropped websocket (s).
    """

    client_order_id_param: str = "clientOrderId"
    post_only_params: Mapping[str, Any] = field(default_factory=lambda: {"postOnly": True})
    time_in_force_param: str = "timeInForce"
    reduce_only_param: str = "reduceOnly"
    funding_interval_h: float = 8.0
    stream_reconnect_max_delay: float = 5.0


_BINANCE = Capabilities(client_order_id_param="newClientOrderId")

CAPABILITIES: dict[str, Capabilities] = {
    "binance": _BINANCE,
    # USD-M futures: ccxt maps postOnly to timeInForce GTX and reduceOnly to the order parameter.
    "binanceusdm": _BINANCE,
}
"""Per-exchange quirks by ccxt exchange id; others get `Capabilities()` (ccxt's unified names)."""


def capabilities_for(exchange_id: str) -> Capabilities:
    """The quirks of the exchange with this ccxt id (ccxt's unified names when none are known)."""
    return CAPABILITIES.get(exchange_id, Capabilities())
