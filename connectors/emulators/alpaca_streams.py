"""The websockets of the Alpaca emulator: trade updates (`/stream`) and market data (`/v2/{feed}`).

Message formats follow Alpaca's documentation:

- Trade updates (`wss://paper-api.alpaca.markets/stream`): the client authenticates with
  `{"action": "auth", "key": ..., "secret": ...}` (the older
  `{"action": "authenticate", "data": {"key_id": ..., "secret_key": ...}}` is accepted too) and is
  answered `{"stream": "authorization", "data": {"action": "authenticate", "status": "authorized"}}`
  (or `"unauthorized"`, then the socket closes); it listens with
  `{"action": "listen", "data": {"streams": ["trade_updates"]}}`, answered on the `listening`
  stream; then every order event arrives as
  `{"stream": "trade_updates", "data": {"event": "fill", "order": {...}, "timestamp": ..., ...}}`
  with `price`, `qty` and `position_qty` on fills. Alpaca sends these as binary frames; so does
  the emulator.
- Market data v2 (`wss://stream.data.alpaca.markets/v2/iex`): `[{"T": "success", "msg":
  "connected"}]` on connect; `{"action": "auth", "key", "secret"}` -> `[{"T": "success", "msg":
  "authenticated"}]` or `[{"T": "error", "code": 402, "msg": "auth failed"}]`;
  `{"action": "subscribe", "trades": [...], "quotes": [...]}` -> `[{"T": "subscription", ...}]`;
  then arrays of `{"T": "q", "S", "bp", "bs", "ap", "as", "t", ...}` and
  `{"T": "t", "S", "i", "p", "s", "t", ...}` messages, text frames.

`drop()` closes every socket at once (the fault the reconnect logic exists for); what is
published while no client listens is lost, as at Alpaca. `auth_keys` records the key ids that
authenticated (never the secret).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web


@dataclass
class _DataClient:
    ws: web.WebSocketResponse
    authenticated: bool = False
    trades: set[str] = field(default_factory=set)
    quotes: set[str] = field(default_factory=set)


class AlpacaStreamHub:
    """Serves the two websockets; `publish_*` push messages to the clients that asked for them."""

    def __init__(self, key_id: str, secret: str) -> None:
        self._key_id = key_id
        self._secret = secret
        self._trade_clients: list[web.WebSocketResponse] = []
        self._data_clients: list[_DataClient] = []
        self.auth_keys: list[str] = []
        self.listens = 0
        self.subscriptions = 0
        self.changed = asyncio.Condition()

    def add_routes(self, app: web.Application) -> None:
        """Register `/stream` and `/v2/{feed}` (iex, sip, test) on the emulator's app."""
        app.router.add_get("/stream", self._trade_stream)
        app.router.add_get("/v2/{feed:(iex|sip|test)}", self._data_stream)

    async def _bump(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def wait_for(self, *, listens: int = 0, subscriptions: int = 0) -> None:
        """Wait until that many listens / subscriptions have been acknowledged in total."""
        async with self.changed:
            await self.changed.wait_for(
                lambda: self.listens >= listens and self.subscriptions >= subscriptions
            )

    # -- trade updates ---------------------------------------------------------------------------

    def _authorized(self, key: Any, secret: Any) -> bool:
        return bool(key == self._key_id and secret == self._secret)

    async def _trade_stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        authorized = False
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
            try:
                body = json.loads(msg.data)
            except (ValueError, TypeError):
                await ws.send_bytes(_dump({"stream": "error", "data": {"error": "invalid json"}}))
                continue
            action = body.get("action") if isinstance(body, dict) else None
            if action in ("auth", "authenticate"):
                data = body.get("data") or {}
                key = body.get("key", data.get("key_id"))
                secret = body.get("secret", data.get("secret_key"))
                authorized = self._authorized(key, secret)
                status = "authorized" if authorized else "unauthorized"
                await ws.send_bytes(
                    _dump({"stream": "authorization", "data": {"action": "authenticate", "status": status}})
                )
                if not authorized:
                    await ws.close()
                    break
                self.auth_keys.append(str(key))
            elif action == "listen":
                if not authorized:
                    await ws.send_bytes(
                        _dump(
                            {
                                "stream": "authorization",
                                "data": {"action": "listen", "status": "unauthorized"},
                            }
                        )
                    )
                    continue
                streams = [s for s in (body.get("data") or {}).get("streams", []) if s == "trade_updates"]
                if streams and ws not in self._trade_clients:
                    self._trade_clients.append(ws)
                elif not streams and ws in self._trade_clients:
                    self._trade_clients.remove(ws)
                await ws.send_bytes(_dump({"stream": "listening", "data": {"streams": streams}}))
                self.listens += 1
                await self._bump()
        if ws in self._trade_clients:
            self._trade_clients.remove(ws)
        return ws

    async def publish_trade_update(self, data: dict[str, Any]) -> int:
        """Send one trade update to every listening client; returns how many received it."""
        frame = _dump({"stream": "trade_updates", "data": data})
        sent = 0
        for ws in list(self._trade_clients):
            if ws.closed:
                continue
            await ws.send_bytes(frame)
            sent += 1
        return sent

    # -- market data -----------------------------------------------------------------------------

    async def _data_stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        client = _DataClient(ws)
        self._data_clients.append(client)
        await ws.send_str(json.dumps([{"T": "success", "msg": "connected"}]))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    break
                try:
                    body = json.loads(msg.data)
                except ValueError:
                    await ws.send_str(json.dumps([{"T": "error", "code": 400, "msg": "invalid syntax"}]))
                    continue
                action = body.get("action") if isinstance(body, dict) else None
                if action == "auth":
                    if not self._authorized(body.get("key"), body.get("secret")):
                        await ws.send_str(json.dumps([{"T": "error", "code": 402, "msg": "auth failed"}]))
                        await ws.close()
                        break
                    client.authenticated = True
                    self.auth_keys.append(str(body.get("key")))
                    await ws.send_str(json.dumps([{"T": "success", "msg": "authenticated"}]))
                elif action in ("subscribe", "unsubscribe"):
                    if not client.authenticated:
                        await ws.send_str(
                            json.dumps([{"T": "error", "code": 401, "msg": "not authenticated"}])
                        )
                        continue
                    for name in ("trades", "quotes"):
                        symbols = set(body.get(name) or [])
                        target = client.trades if name == "trades" else client.quotes
                        if action == "subscribe":
                            target |= symbols
                        else:
                            target -= symbols
                    await ws.send_str(
                        json.dumps(
                            [
                                {
                                    "T": "subscription",
                                    "trades": sorted(client.trades),
                                    "quotes": sorted(client.quotes),
                                    "bars": [],
                                }
                            ]
                        )
                    )
                    self.subscriptions += 1
                    await self._bump()
                else:
                    await ws.send_str(json.dumps([{"T": "error", "code": 400, "msg": "invalid syntax"}]))
        finally:
            self._data_clients.remove(client)
        return ws

    async def publish_market_data(self, message: dict[str, Any]) -> int:
        """Send a `{"T": "q"|"t", "S": symbol, ...}` message to the subscribed clients."""
        kind, symbol = message.get("T"), message.get("S")
        sent = 0
        for client in list(self._data_clients):
            wanted = client.quotes if kind == "q" else client.trades
            if client.ws.closed or not client.authenticated or symbol not in wanted:
                continue
            await client.ws.send_str(json.dumps([message]))
            sent += 1
        return sent

    async def publish_raw(self, text: str) -> None:
        """Send a raw text frame to every authenticated data client (for malformed-message tests)."""
        for client in list(self._data_clients):
            if client.authenticated and not client.ws.closed:
                await client.ws.send_str(text)

    # -- faults ----------------------------------------------------------------------------------

    async def drop(self) -> None:
        """Close every socket now; later publishes reach nobody until clients reconnect."""
        sockets = list(self._trade_clients) + [c.ws for c in self._data_clients]
        self._trade_clients.clear()
        for client in self._data_clients:
            client.authenticated = False  # nothing more reaches a dropped client
        for ws in sockets:
            await ws.close(code=1011, message=b"emulator dropped the connection")

    async def close(self) -> None:
        """Close all sockets (emulator shutdown)."""
        await self.drop()


def _dump(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()
