"""The decimal context for money: one definition shared by the portfolio, margin and the venues.

60 significant digits, so sums of amounts with 18 decimals never round below 1e40; invalid
operations, division by zero and overflow raise instead of passing silently as NaN or Infinity.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, DivisionByZero, InvalidOperation, Overflow

MONEY = Context(prec=60, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow])
"""Use as `with localcontext(MONEY): ...` around exact money arithmetic."""
