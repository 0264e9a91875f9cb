"""web3's async HTTP provider made safe to cancel.

web3.py 8's `HTTPSessionManager` takes a process-wide `threading.Lock` (a class attribute) on every
async request, through `run_in_executor(lock.acquire)`. A request cancelled while it waits for that
lock leaves the executor thread to acquire it later with nobody to release it, and from then on
every `AsyncHTTPProvider` in the process hangs (web3.py issue #3867, fix proposed in PR #3872).
A bot cancels requests routinely (shutdown, `asyncio.wait_for`, a send abandoned on restart), so the
chain session swaps in `CancelSafeSessionManager`: the cached session is returned without any lock
(one event loop owns it), and a new one is created under an `asyncio.Lock`, which cancellation
releases cleanly.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector
from eth_typing import URI
from web3 import AsyncHTTPProvider
from web3._utils.caching.caching_utils import generate_cache_key
from web3._utils.http_session_manager import HTTPSessionManager


class CancelSafeSessionManager(HTTPSessionManager):
    """An `HTTPSessionManager` whose async session lookup never touches the process-wide thread lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_lock = asyncio.Lock()

    @staticmethod
    def _usable(session: ClientSession) -> bool:
        return not session.closed and not session._loop.is_closed()

    async def async_cache_and_return_session(
        self,
        endpoint_uri: URI,
        session: ClientSession | None = None,
        request_timeout: ClientTimeout | None = None,
    ) -> ClientSession:
        """The cached aiohttp session for `endpoint_uri` on this event loop, created on first use."""
        key = generate_cache_key(f"{id(asyncio.get_running_loop())}:{endpoint_uri}")
        if key in self.session_cache:
            cached = self.session_cache.get_cache_entry(key)
            if cached is not None and self._usable(cached):
                return cached  # type: ignore[no-any-return]
        async with self._create_lock:
            if key in self.session_cache:
                cached = self.session_cache.get_cache_entry(key)
                if cached is not None and self._usable(cached):
                    return cached  # type: ignore[no-any-return]
                self.session_cache._data.pop(key)
                if cached is not None and not cached.closed:
                    await cached.close()
            fresh = session or ClientSession(
                raise_for_status=True, connector=TCPConnector(force_close=True, enable_cleanup_closed=True)
            )
            stored, evicted = self.session_cache.cache(key, fresh)
            for old in (evicted or {}).values():
                await old.close()
            result: ClientSession = stored
            return result


def cancel_safe(provider: AsyncHTTPProvider) -> AsyncHTTPProvider:
    """Give `provider` a `CancelSafeSessionManager` (keeping its cached sessions); returns it."""
    current = provider._request_session_manager
    if not isinstance(current, CancelSafeSessionManager):
        replacement = CancelSafeSessionManager()
        replacement.session_cache = current.session_cache
        provider._request_session_manager = replacement
    return provider
