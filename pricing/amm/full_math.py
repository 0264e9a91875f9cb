"""FullMath and UnsafeMath of Uniswap v3: 512-bit-exact multiply-then-divide on uint256 operands.

Python integers are unbounded, so `a * b // d` is already the exact floor; what the contract adds is
the uint256 domain (a result >= 2**256 reverts) and EVM division semantics, both reproduced here.
"""

from __future__ import annotations

from pricing.amm.errors import AmmError

MAX_UINT128 = (1 << 128) - 1
MAX_UINT160 = (1 << 160) - 1
MAX_UINT256 = (1 << 256) - 1
MAX_INT128 = (1 << 127) - 1
MIN_INT128 = -(1 << 127)
MAX_INT256 = (1 << 255) - 1
MIN_INT256 = -(1 << 255)
RESOLUTION = 96
Q96 = 1 << 96
Q128 = 1 << 128


def _check_uint256(field: str, value: int) -> None:
    """Raise `AmmError` unless 0 <= value < 2**256."""
    if not 0 <= value <= MAX_UINT256:
        raise AmmError(field, value, "not a uint256")


def mul_div(a: int, b: int, denominator: int) -> int:
    """floor(a * b / denominator) with full precision, as `FullMath.mulDiv`.

    All arguments and the result are uint256 (dimensionless integers); reverts, here `AmmError`, when
    `denominator` is 0 or the result does not fit in 256 bits.
    """
    _check_uint256("a", a)
    _check_uint256("b", b)
    _check_uint256("denominator", denominator)
    if denominator == 0:
        raise AmmError("denominator", denominator, "division by zero")
    result = a * b // denominator
    if result > MAX_UINT256:
        raise AmmError("result", result, "mulDiv result overflows uint256")
    return result


def mul_div_rounding_up(a: int, b: int, denominator: int) -> int:
    """ceil(a * b / denominator) with full precision, as `FullMath.mulDivRoundingUp` (uint256 in and out)."""
    _check_uint256("a", a)
    _check_uint256("b", b)
    _check_uint256("denominator", denominator)
    if denominator == 0:
        raise AmmError("denominator", denominator, "division by zero")
    result, remainder = divmod(a * b, denominator)
    if remainder:
        result += 1
    if result > MAX_UINT256:
        raise AmmError("result", result, "mulDivRoundingUp result overflows uint256")
    return result


def div_rounding_up(x: int, y: int) -> int:
    """ceil(x / y) for uint256 x, y, as `UnsafeMath.divRoundingUp`.

    EVM semantics: division by zero returns 0 instead of reverting (the contract relies on callers
    never passing y = 0; reproduced so that a wrong input gives the contract's answer, not ours).
    """
    _check_uint256("x", x)
    _check_uint256("y", y)
    if y == 0:
        return 0
    return -(-x // y)
