"""Errors of the exact AMM math: a computation the contract would revert on, or an invalid argument."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pricing.amm.v3_swap import V3SwapResult


class AmmError(ValueError):
    """An argument out of its domain, or an operation the Uniswap contract reverts on.

    `field` names the argument or intermediate quantity at fault, `value` is its value and `reason`
    says why (for a contract revert, the revert string where the contract has one, e.g. 'SPL').
    """

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"{field}={value!r}: {reason}")
        self.field = field
        self.value = value
        self.reason = reason


class InsufficientLiquidityError(AmmError):
    """The pool cannot deliver the requested amount.

    Raised by `v2_amount_in` when the output would drain the reserve, and by the v3 quotes where
    QuoterV2 reverts (an exact-output quote the pool cannot fill, or a swap that moves no tokens).
    `result` carries the swap the pool would have executed, when one was computed.
    """

    def __init__(self, field: str, value: object, reason: str, result: V3SwapResult | None = None) -> None:
        super().__init__(field, value, reason)
        self.result = result


class PriceLimitError(AmmError):
    """`sqrt_price_limit_x96` is on the wrong side of the current price or outside the tick range ('SPL')."""
