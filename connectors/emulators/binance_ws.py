"""Binance's websockets for the local emulators: market streams, user data streams, the WS API.

The real ccxt.pro client runs unchanged against these once its `urls['api']['ws']` entries point at
`ws://127.0.0.1:PORT` with their paths kept:

- market streams: `/ws/<n>` (spot) and `/public/ws/<n>`, `/market/ws/<n>` (USD-M futures); the
  client sends `{"method": "SUBSCRIBE", "params": ["tslaxusdt@bookTicker", ...], "id": N}` and the
  server answers `{"result": null, "id": N}`, then pushes the raw payloads of those streams;
- user data by listen key: `/ws/<listenKey>` (spot, the documented REST listen key) and
  `/private/ws?listenKey=<key>` (futures): the account's events, unwrapped;
- the WS API `/ws-api/v3` (spot): `userDataStream.subscribe.signature` (HMAC-SHA256 over the sorted
  parameters, checked like a signed REST call) subscribes the connection to the account's events,
  which then arrive as `{"subscriptionId": 0, "event": {...}}`; that is how ccxt's spot
  watch_orders / watch_my_trades / watch_balance authenticate.

`drop()` closes every open connection (the "dropped websocket" fault); while `refuse` is set, new
connections are answered 503 at the upgrade. `connections` counts the upgrades accepted.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import WSMsgType, web


@dataclass(eq=False)
class _Conn:
    """One websocket: its market stream names, or the user stream it carries (and how to wrap it)."""

    ws: web.WebSocketResponse
    kind: str  # "market" | "user" | "api"
    streams: set[str] = field(default_factory=set)
    user: bool = False
    subscription_id: int | None = None  # WS API user-stream subscriptions wrap events
    outbox: asyncio.Queue[str] = field(default_factory=asyncio.Queue)  # keeps pushes in order


class BinanceStreams:
    """The websocket side of one emulator; the emulator calls `publish` and `publish_user`."""

    def __init__(self, api_key: str, api_secret: str, is_listen_key: Callable[[str], bool]) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.is_listen_key = is_listen_key
        self.refuse = False
        self.connections = 0
        self.refused = 0  # upgrades answered 503 while `refuse` was set
        self.received: list[dict[str, Any]] = []  # every client message, parsed
        self._conns: set[_Conn] = set()
        self._subscription_ids = 0

    def add_routes(self, app: web.Application) -> None:
        """Register the websocket paths on the emulator's app (before its catch-all route)."""
        app.router.add_get("/ws-api/v3", self._ws_api)
        app.router.add_get("/ws", self._market)
        app.router.add_get("/ws/{tail}", self._market)
        app.router.add_get("/public/ws", self._market)
        app.router.add_get("/public/ws/{tail}", self._market)
        app.router.add_get("/market/ws", self._market)
        app.router.add_get("/market/ws/{tail}", self._market)
        app.router.add_get("/private/ws", self._private)

    # -- publishing ------------------------------------------------------------------------------

    def publish(self, stream_prefix: str, payload: dict[str, Any]) -> None:
        """Send `payload` to every market connection subscribed to a stream starting with the prefix."""
        text = json.dumps(payload)
        for conn in list(self._conns):
            if conn.kind == "market" and any(s.startswith(stream_prefix) for s in conn.streams):
                self._send(conn, text)

    def publish_user(self, payload: dict[str, Any]) -> None:
        """Send an account event to every user-data connection, wrapped as each one expects."""
        for conn in list(self._conns):
            if not conn.user:
                continue
            body: dict[str, Any] = payload
            if conn.subscription_id is not None:
                body = {"subscriptionId": conn.subscription_id, "event": payload}
            self._send(conn, json.dumps(body))

    @staticmethod
    def _send(conn: _Conn, text: str) -> None:
        # Queued, not awaited: publishers run synchronously inside the emulator's state changes.
        if not conn.ws.closed:
            conn.outbox.put_nowait(text)

    async def drop(self) -> int:
        """Close every open websocket from the server side; returns how many were closed."""
        conns = [c for c in self._conns if not c.ws.closed]
        for conn in conns:
            await conn.ws.close(code=1006, message=b"emulator dropped the connection")
        self._conns.clear()
        return len(conns)

    @property
    def open_user_streams(self) -> int:
        """Connections that currently receive the account's events."""
        return sum(1 for c in self._conns if c.user and not c.ws.closed)

    # -- handlers --------------------------------------------------------------------------------

    async def _accept(self, request: web.Request, kind: str, *, user: bool = False) -> _Conn | web.Response:
        if self.refuse:
            self.refused += 1
            return web.Response(status=503, text="emulator refuses websocket connections")
        ws = web.WebSocketResponse(autoping=True, heartbeat=None)
        conn = _Conn(ws, kind, user=user)
        # Registered before the handshake completes: pushes queue up from the moment the client is in.
        self._conns.add(conn)
        await ws.prepare(request)
        self.connections += 1
        return conn

    async def _market(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info.get("tail", "")
        is_user = bool(tail) and self.is_listen_key(tail)
        if tail and not is_user and not tail.isdigit():
            return web.Response(status=400, text="unknown stream or listen key")
        conn = await self._accept(request, "user" if is_user else "market", user=is_user)
        if isinstance(conn, web.Response):
            return conn
        return await self._serve(conn, self._on_market_message)

    async def _private(self, request: web.Request) -> web.StreamResponse:
        if not self.is_listen_key(request.query.get("listenKey", "")):
            return web.Response(status=400, text="invalid listenKey")
        conn = await self._accept(request, "user", user=True)
        if isinstance(conn, web.Response):
            return conn
        return await self._serve(conn, self._on_market_message)

    async def _ws_api(self, request: web.Request) -> web.StreamResponse:
        conn = await self._accept(request, "api")
        if isinstance(conn, web.Response):
            return conn
        return await self._serve(conn, self._on_api_message)

    async def _serve(
        self, conn: _Conn, on_message: Callable[[_Conn, dict[str, Any]], dict[str, Any] | None]
    ) -> web.WebSocketResponse:
        writer = asyncio.get_running_loop().create_task(_write(conn))
        try:
            async for msg in conn.ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    conn.outbox.put_nowait(json.dumps({"error": {"code": -1, "msg": "invalid JSON"}}))
                    continue
                self.received.append(data)
                reply = on_message(conn, data)
                if reply is not None:
                    conn.outbox.put_nowait(json.dumps(reply))
        finally:
            self._conns.discard(conn)
            writer.cancel()
        return conn.ws

    def _on_market_message(self, conn: _Conn, data: dict[str, Any]) -> dict[str, Any] | None:
        method, request_id = data.get("method"), data.get("id")
        params = [str(p) for p in data.get("params") or []]
        if method == "SUBSCRIBE":
            conn.streams.update(params)
            return {"result": None, "id": request_id}
        if method == "UNSUBSCRIBE":
            conn.streams.difference_update(params)
            return {"result": None, "id": request_id}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": sorted(conn.streams), "id": request_id}
        return {"error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"}, "id": request_id}

    def _on_api_message(self, conn: _Conn, data: dict[str, Any]) -> dict[str, Any] | None:
        method, request_id = data.get("method"), data.get("id")
        params = dict(data.get("params") or {})
        if method == "ping":
            return {"id": request_id, "status": 200, "result": {}}
        if method == "userDataStream.subscribe.signature":
            error = self._check_signature(params)
            if error is not None:
                return {"id": request_id, "status": 400, "error": {"code": error[0], "msg": error[1]}}
            conn.user = True
            conn.subscription_id = self._subscription_ids
            self._subscription_ids += 1
            return {"id": request_id, "status": 200, "result": {"subscriptionId": conn.subscription_id}}
        return {
            "id": request_id,
            "status": 400,
            "error": {"code": -1100, "msg": f"Illegal characters found in parameter 'method': {method}"},
        }

    def _check_signature(self, params: dict[str, Any]) -> tuple[int, str] | None:
        """Binance's WS API signature: HMAC-SHA256 of the other parameters, sorted, url-encoded."""
        if params.get("apiKey") != self.api_key:
            return (-2015, "Invalid API-key, IP, or permissions for action.")
        signature = str(params.pop("signature", ""))
        payload = urlencode(sorted((k, str(v)) for k, v in params.items()))
        expected = hmac.new(self.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return (-1022, "Signature for this request is not valid.")
        return None


async def _write(conn: _Conn) -> None:
    """Send the connection's queued messages in order until it closes."""
    while True:
        text = await conn.outbox.get()
        try:
            await conn.ws.send_str(text)
        except (ConnectionError, RuntimeError):  # closed under us: the reader loop ends too
            return
