"""Alpaca's trading API v2 as a `Venue` (aiohttp): orders, cancel, account, positions, streams.

Keys come from the caller (`from_env` reads them from the environment variables a config names);
they travel only in the `APCA-API-KEY-ID` / `APCA-API-SECRET-KEY` headers and are never logged,
kept in a repr or put in an exception.

The extended-hours rule is enforced locally by the `MarketCalendar` at the connector's clock before
anything is sent: outside the regular session only `limit` + `day` + `extended_hours=true` orders
go out, and `extended_hours` needs a day limit order at any time; anything else comes back
REJECTED without a request.

Retries: a 429, a 5xx or a connection error is retried with exponential backoff. Before a POST of
an order is resent, the order is looked up by its `client_order_id`: if Alpaca already took it
(the answer was lost), that order is returned and nothing is sent twice.

Fractional shares: a quantity with decimals is sent only for an asset whose `/v2/assets` entry is
`fractionable` and only as a `day` order (Alpaca's rule); otherwise it comes back REJECTED naming
the field and value, without an order request. `submit_notional` sends a dollar amount (market,
day) instead of a quantity.

Streams: `stream()` runs the trade-updates websocket (`/stream`, auth, listen `trade_updates`) and,
when `symbols` are given, the market-data websocket (v2 stocks: auth, subscribe quotes and trades),
and yields `Quote`, `Trade`, `OrderUpdate` and `Fill` events. Every order snapshot, from a REST
answer or a websocket message, goes through one `OrderTracker`, which reports each filled quantity
exactly once. After a dropped socket the connector reconnects with backoff, listens again, then
reconciles every order it still considers open through REST (`GET /v2/orders/{id}`), so a fill
that happened while it was deaf is recovered once and never counted twice. A malformed message is
logged and skipped. The auth messages carry the secret: their content is never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp

from connectors.base import EventQueue
from connectors.brokers.alpaca_order_tracker import STATUS_MAP, OrderTracker, parse_rfc3339_ns
from core.calendar import MarketCalendar
from core.clock import Clock
from core.enums import OrderStatus, OrderType, Session, Side, TimeInForce
from core.errors import InvalidInput, PerpetuaError
from core.events import Event, OrderUpdate, Quote, Trade
from core.orders import OrderRequest, Request
from core.venue import VenueState

log = logging.getLogger(__name__)

PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
ZERO = Decimal(0)

DATA_URL = "https://data.alpaca.markets"
DATA_STREAM_URL = "wss://stream.data.alpaca.markets/v2/iex"
_TIF = {TimeInForce.DAY: "day", TimeInForce.GTC: "gtc", TimeInForce.IOC: "ioc"}


class AlpacaError(PerpetuaError):
    """Alpaca answered with an error the connector cannot turn into an order update."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"alpaca HTTP {status}: {message}")


class AlpacaAuthError(AlpacaError):
    """The keys were refused (401, or 403 `forbidden.`): check the key id and secret in use."""


class AlpacaUnavailable(AlpacaError):
    """Retries ran out on 429/5xx/connection errors."""


@dataclass(frozen=True, slots=True)
class AlpacaAccount:
    """The parts of `/v2/account` a bot uses, as Decimals."""

    account_number: str
    status: str
    currency: str
    cash: Decimal
    buying_power: Decimal
    equity: Decimal


@dataclass(frozen=True, slots=True)
class AlpacaAssetInfo:
    """The flags of `/v2/assets/{symbol}` the order rules use."""

    symbol: str
    tradable: bool
    fractionable: bool


class _StreamDropped(Exception):
    """The websocket closed or failed; the loop reconnects."""


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    body: Any


def _message(body: Any) -> str:
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])
    return str(body)[:200]


class AlpacaBroker:
    """A live (or paper) Alpaca account.

    Args:
        name: venue name used in events.
        base_url: `PAPER_URL`, `LIVE_URL` or an emulator's URL.
        key_id, secret: the API keys (literals in tests; see `from_env`).
        calendar: sessions for the extended-hours rule; clock: the time it is judged at.
        session: an aiohttp session to use (not closed here); None makes and owns one.
        max_attempts, backoff_s, max_backoff_s: retry policy for 429/5xx/connection errors.
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        key_id: str,
        secret: str,
        calendar: MarketCalendar,
        clock: Clock,
        session: aiohttp.ClientSession | None = None,
        *,
        max_attempts: int = 4,
        backoff_s: float = 0.05,
        max_backoff_s: float = 2.0,
        timeout_s: float = 10.0,
        data_url: str = DATA_URL,
        stream_url: str | None = None,
        data_stream_url: str = DATA_STREAM_URL,
        symbols: Sequence[str] = (),
        reconnect_backoff_s: float = 0.5,
        max_reconnect_backoff_s: float = 30.0,
    ) -> None:
        if not key_id or not secret:
            raise InvalidInput("key_id/secret", "<hidden>", "both API keys are required")
        if max_attempts < 1:
            raise InvalidInput("max_attempts", max_attempts, "must be >= 1")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._headers = {"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret}
        self.calendar = calendar
        self.clock = clock
        self._session = session
        self._owns_session = session is None
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.data_url = data_url.rstrip("/")
        if stream_url is None:
            scheme, _, rest = self.base_url.partition("://")
            stream_url = ("wss" if scheme == "https" else "ws") + "://" + rest + "/stream"
        self.stream_url = stream_url
        self.data_stream_url = data_stream_url
        self.symbols = tuple(symbols)
        self.reconnect_backoff_s = reconnect_backoff_s
        self.max_reconnect_backoff_s = max_reconnect_backoff_s
        self._events = EventQueue()
        self._tracker = OrderTracker(name)
        self._assets: dict[str, AlpacaAssetInfo] = {}
        self.connects = 0  # trade-updates connections made (1 + reconnects)

    def __repr__(self) -> str:
        return f"AlpacaBroker(name={self.name!r}, base_url={self.base_url!r})"

    def _emit(self, events: Sequence[Event]) -> None:
        for event in events:
            self._events.put(event)

    def _apply(
        self,
        order: dict[str, Any],
        ts: int | None = None,
        *,
        execution: tuple[Decimal, Decimal] | None = None,
        reason: str = "",
    ) -> None:
        """Feed one order snapshot to the tracker and queue what it reports; a bad one is logged."""
        try:
            events = self._tracker.apply(
                order, self.clock.now_ns() if ts is None else ts, execution=execution, reason=reason
            )
        except InvalidInput as exc:
            log.warning("alpaca %s: order snapshot skipped: %s", self.name, exc)
            return
        self._emit(events)

    def adopt_order(
        self,
        client_order_id: str,
        instrument: str,
        side: Side,
        venue_order_id: str,
        filled: Decimal,
        average: Decimal | None,
        status: OrderStatus,
    ) -> None:
        """Take over an order sent before a restart, with what was already reported of it (the journal's
        cumulative filled quantity, shares, and average price, USD): its later fills are only the rest,
        and the reconnect reconciliation reads it back."""
        self._tracker.adopt(client_order_id, instrument, side, venue_order_id, filled, average, status)

    @classmethod
    def from_env(
        cls,
        name: str,
        key_env: str,
        secret_env: str,
        base_url: str,
        calendar: MarketCalendar,
        clock: Clock,
        session: aiohttp.ClientSession | None = None,
        **kwargs: Any,
    ) -> AlpacaBroker:
        """Read the keys from the environment variables `key_env` / `secret_env` (values never logged)."""
        missing = [v for v in (key_env, secret_env) if not os.environ.get(v)]
        if missing:
            raise InvalidInput("env", missing, "environment variable(s) not set or empty")
        log.info("alpaca %s: keys read from $%s / $%s", name, key_env, secret_env)
        return cls(
            name, base_url, os.environ[key_env], os.environ[secret_env], calendar, clock, session, **kwargs
        )

    async def close(self) -> None:
        """Close the aiohttp session if this connector made it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AlpacaBroker:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- HTTP ------------------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _once(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        body: dict[str, Any] | None,
        base: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> _Response:
        async with self._http().request(
            method,
            (self.base_url if base is None else base) + path,
            params=params,
            json=body,
            headers=self._headers if headers is None else {**headers, **self._headers},
            timeout=self._timeout,
        ) as resp:
            text = await resp.text()
            try:
                parsed: Any = await resp.json(content_type=None) if text else None
            except ValueError:
                parsed = text
            return _Response(resp.status, parsed)

    async def _request(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        *,
        client_order_id: str | None = None,
        base: str | None = None,
        lookup: tuple[str, dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> _Response:
        """Send with retries; before any resend, look the request up (`lookup`: GET path and query,
        404 = never taken; `client_order_id` = the order lookup) and return it if it was taken."""
        if client_order_id is not None:
            lookup = ("/v2/orders:by_client_order_id", {"client_order_id": client_order_id})
        last = ""
        for attempt in range(self.max_attempts):
            if attempt:
                await asyncio.sleep(min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s))
                if lookup is not None:
                    found = await self.find(*lookup)
                    if found is not None:
                        log.info("alpaca %s: %s already taken, not resent", self.name, path)
                        return _Response(200, found)
            try:
                resp = await self._once(method, path, params, body, base, headers)
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = f"{type(exc).__name__}"
                log.warning(
                    "alpaca %s: %s %s failed (%s), attempt %d", self.name, method, path, last, attempt + 1
                )
                continue
            if resp.status == 429 or resp.status >= 500:
                last = f"HTTP {resp.status}"
                log.warning("alpaca %s: %s %s -> %s, attempt %d", self.name, method, path, last, attempt + 1)
                continue
            if resp.status == 401 or (resp.status == 403 and _message(resp.body) == "forbidden."):
                raise AlpacaAuthError(
                    resp.status, f"API keys refused ({_message(resp.body)}): check key id and secret"
                )
            return resp
        raise AlpacaUnavailable(0, f"{method} {path}: gave up after {self.max_attempts} attempts ({last})")

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        *,
        lookup: tuple[str, dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """`(HTTP status, parsed JSON)` of a signed request to the trading API, with the retry policy.

        `lookup` (a GET path and query answering 404 until the request exists) makes a POST
        idempotent: it is checked before every resend. Raises `AlpacaAuthError` / `AlpacaUnavailable`.
        """
        resp = await self._request(method, path, params, body, lookup=lookup, headers=headers)
        return resp.status, resp.body

    async def _lookup(self, client_order_id: str) -> dict[str, Any] | None:
        """The order with this client id, or None if Alpaca never took it (raises if it cannot tell)."""
        return await self.find("/v2/orders:by_client_order_id", {"client_order_id": client_order_id})

    async def find(self, path: str, params: dict[str, str]) -> dict[str, Any] | None:
        """GET `path`: the object, or None on 404 (retried on 429/5xx; raises if it cannot tell)."""
        for attempt in range(self.max_attempts):
            if attempt:
                await asyncio.sleep(min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s))
            try:
                resp = await self._once("GET", path, params, None)
            except (aiohttp.ClientError, TimeoutError):
                continue
            if resp.status == 404:
                return None
            if resp.status == 200 and isinstance(resp.body, dict):
                return resp.body
            if resp.status == 429 or resp.status >= 500:
                continue
            raise AlpacaError(resp.status, _message(resp.body))
        raise AlpacaUnavailable(0, f"lookup {path}: gave up after {self.max_attempts} attempts")

    # -- mapping ---------------------------------------------------------------------------------

    def _update(self, body: dict[str, Any], reason: str = "") -> OrderUpdate:
        status = STATUS_MAP.get(str(body.get("status")), OrderStatus.ACCEPTED)
        avg = body.get("filled_avg_price")
        return OrderUpdate(
            ts=self.clock.now_ns(),
            venue=self.name,
            client_order_id=str(body.get("client_order_id", "")),
            status=status,
            venue_order_id=str(body.get("id", "")),
            filled_quantity=Decimal(str(body.get("filled_qty") or "0")),
            average_price=None if avg is None else Decimal(str(avg)),
            reason=reason,
        )

    def _reject(self, client_order_id: str, reason: str) -> OrderUpdate:
        update = OrderUpdate(
            self.clock.now_ns(), self.name, client_order_id, OrderStatus.REJECTED, reason=reason
        )
        self._events.put(update)
        return update

    async def asset(self, symbol: str) -> AlpacaAssetInfo:
        """`/v2/assets/{symbol}` (cached per connector): tradable and fractionable flags."""
        cached = self._assets.get(symbol)
        if cached is not None:
            return cached
        resp = await self._request("GET", f"/v2/assets/{symbol}")
        if resp.status != 200 or not isinstance(resp.body, dict):
            raise AlpacaError(resp.status, _message(resp.body))
        info = AlpacaAssetInfo(symbol, bool(resp.body.get("tradable")), bool(resp.body.get("fractionable")))
        self._assets[symbol] = info
        return info

    async def check_fractional(self, symbol: str, quantity: Decimal | None, tif: TimeInForce) -> str | None:
        """Why a fractional `quantity` (None: a notional order) of `symbol` cannot go out, or None."""
        if quantity is not None and quantity == quantity.to_integral_value():
            return None
        what = "notional" if quantity is None else f"quantity: {quantity}"
        info = await self.asset(symbol)
        if not info.fractionable:
            return f"{what} is fractional but {symbol} is not fractionable at Alpaca"
        if tif is not TimeInForce.DAY:
            return f"time_in_force: {tif.value}, fractional orders must be day orders ({what})"
        return None

    def check_hours(self, request: OrderRequest) -> str | None:
        """Why the extended-hours rule refuses `request` now, or None if it may be sent."""
        is_day_limit = request.order_type is OrderType.LIMIT and request.time_in_force is TimeInForce.DAY
        if request.extended_hours and not is_day_limit:
            return "extended_hours needs a limit order with time_in_force=day"
        session = self.calendar.session_at(self.clock.now_ns())
        if session is Session.REGULAR:
            return None
        if request.order_type is OrderType.MARKET:
            return f"market orders only in regular hours (now {session.value}); use a day limit order"
        if not (is_day_limit and request.extended_hours):
            return f"outside regular hours (now {session.value}) only day limit orders with extended_hours"
        return None

    @staticmethod
    def order_json(request: OrderRequest) -> dict[str, Any]:
        """Alpaca's POST /v2/orders body for `request` (quantities and prices as strings)."""
        tif = _TIF.get(request.time_in_force)
        if tif is None:
            raise InvalidInput("time_in_force", request.time_in_force, "Alpaca takes day, gtc or ioc")
        body: dict[str, Any] = {
            "symbol": request.instrument,
            "qty": str(request.quantity),
            "side": request.side.value,
            "type": request.order_type.value,
            "time_in_force": tif,
            "client_order_id": request.client_order_id,
        }
        if request.price is not None:
            body["limit_price"] = str(request.price)
        if request.extended_hours:
            body["extended_hours"] = True
        return body

    # -- venue port ------------------------------------------------------------------------------

    async def stream(self) -> AsyncIterator[Event]:
        """Order updates, fills, quotes and trades (see the module docstring); runs the websockets.

        One consumer at a time; the websockets close when the iteration stops. Raises
        `AlpacaAuthError` if a stream refuses the keys (the message names no key).
        """
        tasks = [asyncio.create_task(self._trade_updates_loop(), name=f"{self.name}-trade-updates")]
        if self.symbols:
            tasks.append(asyncio.create_task(self._market_data_loop(), name=f"{self.name}-market-data"))
        async for event in self._events.stream(tasks):
            yield event

    async def submit(self, request: Request) -> OrderUpdate:
        """Send an order; the update is Alpaca's acknowledgement, or REJECTED (locally or by Alpaca)."""
        if not isinstance(request, OrderRequest):
            return self._reject(request.client_order_id, f"{type(request).__name__} is not an Alpaca order")
        if request.post_only or request.reduce_only:
            return self._reject(request.client_order_id, "Alpaca has no post_only / reduce_only")
        if request.time_in_force not in _TIF:
            return self._reject(request.client_order_id, "Alpaca takes time_in_force day, gtc or ioc")
        reason = self.check_hours(request)
        if reason is None:
            reason = await self.check_fractional(request.instrument, request.quantity, request.time_in_force)
        if reason is not None:
            return self._reject(request.client_order_id, reason)
        return await self._send_order(self.order_json(request), request.client_order_id)

    async def submit_notional(
        self, client_order_id: str, symbol: str, side: Side, notional: Decimal
    ) -> OrderUpdate:
        """A market day order for `notional` dollars of a fractionable `symbol` (regular hours only)."""
        if not (isinstance(notional, Decimal) and notional.is_finite() and notional > 0):
            raise InvalidInput("notional", notional, "must be a Decimal > 0 (USD)")
        session = self.calendar.session_at(self.clock.now_ns())
        if session is not Session.REGULAR:
            return self._reject(
                client_order_id, f"notional: market orders only in regular hours (now {session.value})"
            )
        reason = await self.check_fractional(symbol, None, TimeInForce.DAY)
        if reason is not None:
            return self._reject(client_order_id, reason)
        body = {
            "symbol": symbol,
            "notional": str(notional),
            "side": side.value,
            "type": "market",
            "time_in_force": "day",
            "client_order_id": client_order_id,
        }
        return await self._send_order(body, client_order_id)

    async def _send_order(self, body: dict[str, Any], client_order_id: str) -> OrderUpdate:
        resp = await self._request("POST", "/v2/orders", body=body, client_order_id=client_order_id)
        if resp.status != 200 or not isinstance(resp.body, dict):
            return self._reject(client_order_id, f"alpaca {resp.status}: {_message(resp.body)}")
        self._apply(resp.body)
        return self._update(resp.body)

    async def cancel(self, client_order_id: str) -> OrderUpdate:
        """Cancel by client id; a finished or unknown order answers with its status / REJECTED."""
        found = await self._lookup(client_order_id)
        if found is None:
            return self._reject(client_order_id, f"client_order_id {client_order_id!r} unknown at alpaca")
        resp = await self._request("DELETE", f"/v2/orders/{found['id']}")
        if resp.status not in (200, 204):  # already finished: the tracker reports only news
            self._apply(found, reason=f"cancel: {_message(resp.body)}")
            return self._update(found, reason=f"cancel: {_message(resp.body)}")
        after = await self._request("GET", f"/v2/orders/{found['id']}")
        body = after.body if after.status == 200 and isinstance(after.body, dict) else found
        self._apply(body, reason="cancel: cancelled on request")
        return self._update(body, reason="cancel: cancelled on request")

    async def account(self) -> AlpacaAccount:
        """`/v2/account`: cash, buying power and equity as Decimals."""
        resp = await self._request("GET", "/v2/account")
        if resp.status != 200 or not isinstance(resp.body, dict):
            raise AlpacaError(resp.status, _message(resp.body))
        b = resp.body
        return AlpacaAccount(
            account_number=str(b.get("account_number", "")),
            status=str(b.get("status", "")),
            currency=str(b.get("currency", "USD")),
            cash=Decimal(str(b["cash"])),
            buying_power=Decimal(str(b.get("buying_power", "0"))),
            equity=Decimal(str(b.get("equity", "0"))),
        )

    async def positions(self) -> dict[str, Decimal]:
        """Quantity held per symbol (`/v2/positions`; shorts negative)."""
        resp = await self._request("GET", "/v2/positions")
        if resp.status != 200 or not isinstance(resp.body, list):
            raise AlpacaError(resp.status, _message(resp.body))
        return {str(p["symbol"]): Decimal(str(p["qty"])) for p in resp.body}

    async def open_orders(self) -> tuple[OrderUpdate, ...]:
        """Open orders (`/v2/orders?status=open`) as updates."""
        resp = await self._request("GET", "/v2/orders", params={"status": "open"})
        if resp.status != 200 or not isinstance(resp.body, list):
            raise AlpacaError(resp.status, _message(resp.body))
        return tuple(self._update(o) for o in resp.body)

    async def snapshot(self) -> VenueState:
        """Cash (under the account currency) and positions as Decimals, and the open orders."""
        account = await self.account()
        balances = {account.currency: account.cash}
        balances.update(await self.positions())
        return VenueState(self.name, self.clock.now_ns(), balances, await self.open_orders())

    # -- market data REST ------------------------------------------------------------------------

    async def _data_get(self, path: str) -> dict[str, Any]:
        resp = await self._request("GET", path, base=self.data_url)
        if resp.status != 200 or not isinstance(resp.body, dict):
            raise AlpacaError(resp.status, _message(resp.body))
        return resp.body

    async def latest_quote(self, symbol: str) -> Quote:
        """`GET /v2/stocks/{symbol}/quotes/latest` as a `Quote` (prices in USD, sizes in shares)."""
        body = await self._data_get(f"/v2/stocks/{symbol}/quotes/latest")
        quote = self._quote(symbol, body.get("quote"))
        if quote is None:
            raise AlpacaError(200, f"malformed latest quote of {symbol}")
        return quote

    async def latest_trade(self, symbol: str) -> Trade:
        """`GET /v2/stocks/{symbol}/trades/latest` as a `Trade` (aggressor unknown: None)."""
        body = await self._data_get(f"/v2/stocks/{symbol}/trades/latest")
        trade = self._trade(symbol, body.get("trade"))
        if trade is None:
            raise AlpacaError(200, f"malformed latest trade of {symbol}")
        return trade

    def _quote(self, symbol: str, q: Any) -> Quote | None:
        try:
            return Quote(
                parse_rfc3339_ns(q["t"]),
                self.name,
                symbol,
                float(q["bp"]),
                float(q["ap"]),
                float(q["bs"]),
                float(q["as"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("alpaca %s: quote of %s skipped (%s)", self.name, symbol, type(exc).__name__)
            return None

    def _trade(self, symbol: str, t: Any) -> Trade | None:
        try:
            return Trade(
                parse_rfc3339_ns(t["t"]),
                self.name,
                symbol,
                float(t["p"]),
                float(t["s"]),
                None,
                str(t.get("i", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("alpaca %s: trade of %s skipped (%s)", self.name, symbol, type(exc).__name__)
            return None

    # -- websockets ------------------------------------------------------------------------------

    async def _reconnect_pause(self, attempt: int) -> None:
        await asyncio.sleep(min(self.reconnect_backoff_s * 2**attempt, self.max_reconnect_backoff_s))

    async def _trade_updates_loop(self) -> None:
        """Connect, listen, reconcile, read; on any drop, back off and do it again."""
        failures = 0
        while True:
            try:
                async with self._http().ws_connect(self.stream_url) as ws:
                    await ws.send_str(
                        json.dumps(
                            {
                                "action": "auth",
                                "key": self._headers["APCA-API-KEY-ID"],
                                "secret": self._headers["APCA-API-SECRET-KEY"],
                            }
                        )
                    )
                    reply = await self._ws_json(ws)
                    status = reply.get("data", {}).get("status") if isinstance(reply, dict) else None
                    if status != "authorized":
                        raise AlpacaAuthError(401, "trade-updates stream refused the API keys")
                    await ws.send_str(
                        json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}})
                    )
                    reply = await self._ws_json(ws)
                    if not (isinstance(reply, dict) and reply.get("stream") == "listening"):
                        raise _StreamDropped("no listening acknowledgement")
                    self.connects += 1
                    log.info("alpaca %s: trade updates connected (%d)", self.name, self.connects)
                    # Listening first, then REST: whatever happened before is in the REST answer,
                    # whatever happens after arrives on the socket; the tracker drops overlaps.
                    await self.reconcile()
                    failures = 0
                    while True:
                        self._on_trade_update(await self._ws_json(ws))
            except (aiohttp.ClientError, TimeoutError, _StreamDropped, AlpacaUnavailable) as exc:
                log.warning(
                    "alpaca %s: trade updates dropped (%s), reconnecting", self.name, type(exc).__name__
                )
                await self._reconnect_pause(failures)
                failures += 1

    async def _ws_json(self, ws: aiohttp.ClientWebSocketResponse) -> Any:
        """The next text or binary frame as JSON (`_StreamDropped` when the socket ends)."""
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                try:
                    return json.loads(msg.data)
                except ValueError:
                    log.warning("alpaca %s: non-JSON websocket frame skipped", self.name)
                    continue
            raise _StreamDropped(f"websocket {msg.type.name}")

    def _on_trade_update(self, message: Any) -> None:
        if not (isinstance(message, dict) and message.get("stream") == "trade_updates"):
            return
        data = message.get("data")
        order = data.get("order") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(order, dict):
            log.warning("alpaca %s: trade update without an order skipped", self.name)
            return
        try:
            ts = parse_rfc3339_ns(data["timestamp"]) if data.get("timestamp") else self.clock.now_ns()
            execution = None
            if data.get("event") in ("fill", "partial_fill") and data.get("qty") and data.get("price"):
                execution = (Decimal(str(data["qty"])), Decimal(str(data["price"])))
        except (InvalidInput, ArithmeticError) as exc:
            log.warning("alpaca %s: trade update skipped: %s", self.name, exc)
            return
        event = str(data.get("event", ""))
        self._apply(
            order, ts, execution=execution, reason="" if event in ("new", "fill", "partial_fill") else event
        )

    async def reconcile(self) -> None:
        """Fetch every order the tracker still has open and report what changed (fills included)."""
        for cid, order_id in self._tracker.open_orders().items():
            path = f"/v2/orders/{order_id}" if order_id else "/v2/orders:by_client_order_id"
            params = None if order_id else {"client_order_id": cid}
            resp = await self._request("GET", path, params=params)
            if resp.status == 200 and isinstance(resp.body, dict):
                self._apply(resp.body, reason="reconciled")
            else:
                log.warning("alpaca %s: reconcile of %s -> HTTP %d", self.name, cid, resp.status)

    async def _market_data_loop(self) -> None:
        failures = 0
        while True:
            try:
                async with self._http().ws_connect(self.data_stream_url) as ws:
                    await self._ws_json(ws)  # [{"T": "success", "msg": "connected"}]
                    await ws.send_str(
                        json.dumps(
                            {
                                "action": "auth",
                                "key": self._headers["APCA-API-KEY-ID"],
                                "secret": self._headers["APCA-API-SECRET-KEY"],
                            }
                        )
                    )
                    reply = await self._ws_json(ws)
                    if not (isinstance(reply, list) and reply and reply[0].get("msg") == "authenticated"):
                        raise AlpacaAuthError(402, "market-data stream refused the API keys")
                    symbols = list(self.symbols)
                    await ws.send_str(
                        json.dumps({"action": "subscribe", "quotes": symbols, "trades": symbols})
                    )
                    failures = 0
                    while True:
                        batch = await self._ws_json(ws)
                        for item in batch if isinstance(batch, list) else [batch]:
                            self._on_market_data(item)
            except (aiohttp.ClientError, TimeoutError, _StreamDropped) as exc:
                log.warning(
                    "alpaca %s: market data dropped (%s), reconnecting", self.name, type(exc).__name__
                )
                await self._reconnect_pause(failures)
                failures += 1

    def _on_market_data(self, item: Any) -> None:
        if not isinstance(item, dict):
            log.warning("alpaca %s: market-data message skipped (not an object)", self.name)
            return
        kind = item.get("T")
        if kind == "q":
            quote = self._quote(str(item.get("S")), item)
            if quote is not None:
                self._events.put(quote)
        elif kind == "t":
            trade = self._trade(str(item.get("S")), item)
            if trade is not None:
                self._events.put(trade)
        elif kind == "error":
            log.warning("alpaca %s: market-data error %s: %s", self.name, item.get("code"), item.get("msg"))
