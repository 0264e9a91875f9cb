"""Cancelling in-flight requests of the cancel-safe HTTP provider never wedges later requests
(web3.py 8's own session manager can deadlock process-wide there: web3.py issue #3867)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from web3 import AsyncHTTPProvider, AsyncWeb3

from connectors.evm.anvil import AnvilNode
from connectors.evm.chain import web3_for_url
from connectors.evm.http_provider import CancelSafeSessionManager, cancel_safe

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_cancelled_requests_leave_the_provider_working(anvil: AnvilNode) -> None:
    w3 = web3_for_url(anvil.url)
    assert isinstance(w3.provider, AsyncHTTPProvider)
    assert isinstance(w3.provider._request_session_manager, CancelSafeSessionManager)
    rng = random.Random(7)
    try:
        for _ in range(40):
            calls: list[asyncio.Future[Any]] = [asyncio.ensure_future(w3.eth.block_number) for _ in range(20)]
            for _ in range(rng.randrange(0, 4)):  # cancel at varying points of the requests
                await asyncio.sleep(0)
            for call in calls:
                call.cancel()
            await asyncio.gather(*calls, return_exceptions=True)
            # a hang guard, not a timing assertion: the bug hangs forever
            assert await asyncio.wait_for(w3.eth.chain_id, 30) == 31337
    finally:
        await w3.provider.disconnect()


async def test_cancel_safe_keeps_the_cached_sessions(anvil: AnvilNode) -> None:
    provider = AsyncHTTPProvider(anvil.url)
    w3 = AsyncWeb3(provider)
    try:
        assert await w3.eth.chain_id == 31337
        before = dict(provider._request_session_manager.session_cache.items())
        assert cancel_safe(provider) is provider
        assert cancel_safe(provider) is provider  # idempotent
        assert dict(provider._request_session_manager.session_cache.items()) == before
        assert await w3.eth.chain_id == 31337
        assert dict(provider._request_session_manager.session_cache.items()) == before  # reused, not new
    finally:
        await provider.disconnect()
