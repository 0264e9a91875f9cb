"""Suite-wide fixtures."""

from __future__ import annotations

import decimal
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_decimal_context() -> Iterator[None]:
    """Give every test the decimal context it started with.

    Third-party code (ccxt's decimal_to_precision) changes the caller's decimal context in place;
    tests that drive such code directly must not hand that change to the tests after them.
    """
    saved = decimal.getcontext().copy()
    yield
    decimal.setcontext(saved)
