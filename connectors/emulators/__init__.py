"""Local emulators of real venues' APIs, started in-process by tests so real clients run unchanged."""

from connectors.emulators.binance import (
    BinanceEmulator,
    BinanceSymbol,
    Fault,
    RecordedRequest,
)

__all__ = ["BinanceEmulator", "BinanceSymbol", "Fault", "RecordedRequest"]
