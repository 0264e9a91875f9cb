"""The `adapter` fixture: one parameter per venue family, each built fresh for every test.

Emulators and simulated venues are cheap to build per test; the anvil chain with the Uniswap
deployment is made once per module and reverted to its snapshot after each test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from tests.connectors.contract.adapter import VenueAdapter
from tests.connectors.contract.live_venues import make_alpaca_broker, make_alpaca_tokenization, make_ccxt
from tests.connectors.contract.sim_venues import (
    BookExchangeAdapter,
    SimAmmAdapter,
    SimBrokerAdapter,
    SimIssuerAdapter,
)
from tests.connectors.contract.uniswap_venues import LazyChain, UniswapAdapter

SIM: dict[str, Callable[[], VenueAdapter]] = {
    "sim-book-exchange": BookExchangeAdapter,
    "sim-broker": SimBrokerAdapter,
    "sim-issuer": SimIssuerAdapter,
    "sim-amm": SimAmmAdapter,
}
LIVE: dict[str, Callable[[], Awaitable[VenueAdapter]]] = {
    "ccxt-binance-spot": make_ccxt,
    "alpaca-broker": make_alpaca_broker,
    "alpaca-tokenization": make_alpaca_tokenization,
}
FAMILIES = [*SIM, *LIVE, "uniswap-v3-anvil"]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def uniswap_chain() -> AsyncIterator[LazyChain]:
    """One anvil with the v3 deployment per module, started by the first Uniswap test."""
    lazy = LazyChain()
    try:
        yield lazy
    finally:
        await lazy.stop()


@pytest_asyncio.fixture(loop_scope="module", params=FAMILIES)
async def adapter(request: pytest.FixtureRequest, uniswap_chain: LazyChain) -> AsyncIterator[VenueAdapter]:
    family = request.param
    if family in SIM:
        made = SIM[family]()
    elif family in LIVE:
        made = await LIVE[family]()
    else:
        made = await UniswapAdapter.make(await uniswap_chain.get())
    for test, reason in made.known_gaps.items():
        if request.node.name.startswith(test + "["):
            request.applymarker(pytest.mark.xfail(strict=True, reason=reason))
    try:
        yield made
    finally:
        await made.close()
