"""Alpaca's trading REST API v2 as a `Venue` (aiohttp): orders, cancel, account, positions.

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

Not here yet: the trade-updates websocket and market data; `stream()` yields the order updates
this connector itself produced (acknowledgements, rejections, cancels).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp

from core.calendar import MarketCalendar
from core.clock import Clock
from core.enums import OrderStatus, OrderType, Session, TimeInForce
from core.errors import InvalidInput, PerpetuaError
from core.events import Event, OrderUpdate
from core.orders import OrderRequest, Request
from core.venue import VenueState

log = logging.getLogger(__name__)

PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
ZERO = Decimal(0)

STATUS_MAP: dict[str, OrderStatus] = {
    "new": OrderStatus.ACCEPTED,
    "accepted": OrderStatus.ACCEPTED,
    "pending_new": OrderStatus.ACCEPTED,
    "accepted_for_bidding": OrderStatus.ACCEPTED,
    "pending_cancel": OrderStatus.ACCEPTED,
    "pending_replace": OrderStatus.ACCEPTED,
    "replaced": OrderStatus.ACCEPTED,
    "held": OrderStatus.ACCEPTED,
    "calculated": OrderStatus.ACCEPTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "done_for_day": OrderStatus.EXPIRED,
    "expired": OrderStatus.EXPIRED,
    "canceled": OrderStatus.CANCELLED,
    "stopped": OrderStatus.ACCEPTED,
    "rejected": OrderStatus.REJECTED,
    "suspended": OrderStatus.ACCEPTED,
}
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
        self._updates: asyncio.Queue[OrderUpdate] = asyncio.Queue()

    def __repr__(self) -> str:
        return f"AlpacaBroker(name={self.name!r}, base_url={self.base_url!r})"

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
        self, method: str, path: str, params: dict[str, str] | None, body: dict[str, Any] | None
    ) -> _Response:
        async with self._http().request(
            method,
            self.base_url + path,
            params=params,
            json=body,
            headers=self._headers,
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
    ) -> _Response:
        """Send with retries; with `client_order_id`, look the order up before any resend."""
        last = ""
        for attempt in range(self.max_attempts):
            if attempt:
                await asyncio.sleep(min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s))
                if client_order_id is not None:
                    found = await self._lookup(client_order_id)
                    if found is not None:
                        log.info("alpaca %s: %s already taken, not resent", self.name, client_order_id)
                        return _Response(200, found)
            try:
                resp = await self._once(method, path, params, body)
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

    async def _lookup(self, client_order_id: str) -> dict[str, Any] | None:
        """The order with this client id, or None if Alpaca never took it (raises if it cannot tell)."""
        for attempt in range(self.max_attempts):
            if attempt:
                await asyncio.sleep(min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s))
            try:
                resp = await self._once(
                    "GET", "/v2/orders:by_client_order_id", {"client_order_id": client_order_id}, None
                )
            except (aiohttp.ClientError, TimeoutError):
                continue
            if resp.status == 404:
                return None
            if resp.status == 200 and isinstance(resp.body, dict):
                return resp.body
            if resp.status == 429 or resp.status >= 500:
                continue
            raise AlpacaError(resp.status, _message(resp.body))
        raise AlpacaUnavailable(0, f"lookup of {client_order_id}: gave up after {self.max_attempts} attempts")

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
        self._updates.put_nowait(update)
        return update

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
        """Order updates produced by this connector (no websocket yet)."""
        while True:
            yield await self._updates.get()

    async def submit(self, request: Request) -> OrderUpdate:
        """Send an order; the update is Alpaca's acknowledgement, or REJECTED (locally or by Alpaca)."""
        if not isinstance(request, OrderRequest):
            return self._reject(request.client_order_id, f"{type(request).__name__} is not an Alpaca order")
        if request.post_only or request.reduce_only:
            return self._reject(request.client_order_id, "Alpaca has no post_only / reduce_only")
        if request.time_in_force not in _TIF:
            return self._reject(request.client_order_id, "Alpaca takes time_in_force day, gtc or ioc")
        reason = self.check_hours(request)
        if reason is not None:
            return self._reject(request.client_order_id, reason)
        resp = await self._request(
            "POST", "/v2/orders", body=self.order_json(request), client_order_id=request.client_order_id
        )
        if resp.status != 200 or not isinstance(resp.body, dict):
            return self._reject(request.client_order_id, f"alpaca {resp.status}: {_message(resp.body)}")
        update = self._update(resp.body)
        self._updates.put_nowait(update)
        return update

    async def cancel(self, client_order_id: str) -> OrderUpdate:
        """Cancel by client id; a finished or unknown order answers with its status / REJECTED."""
        found = await self._lookup(client_order_id)
        if found is None:
            return self._reject(client_order_id, f"client_order_id {client_order_id!r} unknown at alpaca")
        resp = await self._request("DELETE", f"/v2/orders/{found['id']}")
        if resp.status not in (200, 204):
            update = self._update(found, reason=f"cancel: {_message(resp.body)}")
        else:
            after = await self._request("GET", f"/v2/orders/{found['id']}")
            body = after.body if after.status == 200 and isinstance(after.body, dict) else found
            update = self._update(body, reason="cancel: cancelled on request")
        self._updates.put_nowait(update)
        return update

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
