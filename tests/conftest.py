"""Suite-wide fixtures."""

from __future__ import annotations

import decimal
import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

# The suite is a gate: property tests draw the same examples on every run (seeded by each test), so a
# red CI always names a reproducible case. `HYPOTHESIS_PROFILE=explore` searches fresh examples.
settings.register_profile("gate", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "gate"))


@pytest.fixture(autouse=True)
def _restore_decimal_context() -> Iterator[None]:
    """Give every test the decimal context it started with.

    Third-party code (ccxt's decimal_to_precision) changes the caller's decimal context in place;
    tests that drive such code directly must not hand that change to the tests after them.
    """
    saved = decimal.getcontext().copy()
    yield
    decimal.setcontext(saved)
