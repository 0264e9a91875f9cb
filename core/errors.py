"""Errors of the domain kernel: each names the field and the value that caused it."""

from __future__ import annotations

from typing import Any


class PerpetuaError(Exception):
    """Base class of every error Perpetua raises on purpose."""


class InvalidInput(PerpetuaError, ValueError):
    """A user call, a config entry or a market-data message carried a bad value."""

    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}: {reason}, got {value!r}")


class IllegalTransition(PerpetuaError):
    """An order was asked to move to a state its current state cannot reach."""

    def __init__(self, client_order_id: str, current: object, target: object) -> None:
        self.client_order_id = client_order_id
        self.current = current
        self.target = target
        super().__init__(f"order {client_order_id}: illegal transition {current} -> {target}")


class DuplicateOrderId(PerpetuaError):
    """A client order id was reused for a different request."""

    def __init__(self, client_order_id: str) -> None:
        self.client_order_id = client_order_id
        super().__init__(f"client_order_id {client_order_id!r} already used for a different request")


class InsufficientFunds(PerpetuaError):
    """A balance or margin check failed; nothing was changed."""
