"""An in-process emulator of Alpaca's trading REST API v2 (aiohttp, 127.0.0.1, port 0).

Enough of the real API for `connectors.brokers.alpaca.AlpacaBroker`: account, positions, orders
(market and limit; `time_in_force` day/gtc/ioc; `extended_hours`; fractional quantities when the
asset is `fractionable`), open orders, lookup by `client_order_id`, cancel. Every request must carry
the key headers `APCA-API-KEY-ID` / `APCA-API-SECRET-KEY` (403 `{"message": "forbidden."}`
otherwise); errors come back in Alpaca's format (`{"code": ..., "message": ...}`).

Market-hours rules are judged by a `MarketCalendar` at the emulator's clock (injectable, so a test
can stand at 05:00 New York time): market orders only in the regular session; outside it only
`limit` + `day` + `extended_hours=true` (422 otherwise); `extended_hours=true` needs a day limit
order at any time. Market orders fill at the configured quote (ask for buys, bid for sells); limit
orders fill at the quote when marketable, else rest (ioc: expire) and fill on a later `set_quote`.
Cash moves on fills; a buy needs buying power (cash less open buy notional). No shorting.

Fractional shares: `qty` with decimals or `notional` (dollars, market orders) only on a
`fractionable` asset and only with `time_in_force=day` (422 otherwise); a notional buy fills
`notional / price` shares rounded down to 9 decimals. `GET /v2/assets/{symbol}` tells the flags.

Streams (see `alpaca_streams`): every order event (`new`, `partial_fill`, `fill`, `canceled`,
`rejected`) is published on the trade-updates websocket; `execute` fills part of a resting order at
a price the test chooses, `reject` rejects an open one, `push_quote` / `push_trade` set the market
and publish it on the market-data websocket, where `GET /v2/stocks/{symbol}/quotes/latest` and
`.../trades/latest` read it back. Market data is served on the same host (Alpaca's is
`data.alpaca.markets`).

Tokenization (mint/redeem, see `alpaca_tokenization`) is served on the same app when a
`TokenizationDesk` is given.

Faults (`inject`) answer the next matching requests with a 429 or a 5xx, either before the
request is processed or after it (`after=True`: the order is taken but the answer is lost, the case
idempotent retries exist for); a `timeout` fault processes the request and answers only after
`hang_s` seconds, after the client gave up. Every request received is kept in `requests` (never
the secret).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

from connectors.emulators.alpaca_streams import AlpacaStreamHub
from connectors.emulators.server import serve_on_loopback
from core.calendar import MarketCalendar
from core.clock import Clock
from core.enums import Session

if TYPE_CHECKING:
    from connectors.emulators.alpaca_tokenization import TokenizationDesk

ZERO = Decimal(0)
FaultKind = Literal["rate_limit", "server_error", "timeout"]
Handler = Callable[[web.Request, dict[str, Any]], Awaitable[web.Response]]

FORBIDDEN = {"message": "forbidden."}
OPEN_STATUSES = ("new", "accepted", "partially_filled")


class AlpacaApiError(Exception):
    """An error answered in Alpaca's format."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def unprocessable(message: str) -> AlpacaApiError:
    return AlpacaApiError(422, 42210000, message)


@dataclass(frozen=True)
class AlpacaAsset:
    """A tradable US equity as `/v2/assets` describes it (only the flags the rules need)."""

    symbol: str
    fractionable: bool = True
    tradable: bool = True


@dataclass
class RecordedRequest:
    """What the broker received: method, path, query, JSON body, key id (the secret is never kept)."""

    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any] | None
    key_id: str | None
    status: int = 200
    idempotency_key: str | None = None
    answered: bool = False


@dataclass
class Fault:
    """Answer the next `times` matching requests with a 429 or a `status` 5xx.

    `path`/`method` narrow the match; `after=True` processes the request first, then loses the answer.
    """

    kind: FaultKind
    times: int = 1
    path: str | None = None
    method: str | None = None
    status: int = 500
    after: bool = False
    hang_s: float = 1.0


@dataclass
class Order:
    id: str
    client_order_id: str
    symbol: str
    side: str  # buy | sell
    type: str  # market | limit
    time_in_force: str
    qty: Decimal | None  # None for a notional order until it fills
    limit_price: Decimal | None
    extended_hours: bool
    created_at: str
    notional: Decimal | None = None
    status: str = "new"
    filled_qty: Decimal = ZERO
    filled_avg_price: Decimal | None = None
    filled_at: str | None = None
    canceled_at: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": self.created_at,
            "updated_at": self.filled_at or self.canceled_at or self.created_at,
            "submitted_at": self.created_at,
            "filled_at": self.filled_at,
            "canceled_at": self.canceled_at,
            "asset_class": "us_equity",
            "symbol": self.symbol,
            "qty": None if self.qty is None else str(self.qty),
            "notional": None if self.notional is None else str(self.notional),
            "filled_qty": str(self.filled_qty),
            "filled_avg_price": None if self.filled_avg_price is None else str(self.filled_avg_price),
            "order_class": "",
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "time_in_force": self.time_in_force,
            "limit_price": None if self.limit_price is None else str(self.limit_price),
            "stop_price": None,
            "status": self.status,
            "extended_hours": self.extended_hours,
        }


@dataclass
class Position:
    qty: Decimal = ZERO
    cost: Decimal = ZERO


@dataclass
class QuoteLevel:
    bid: Decimal
    ask: Decimal
    bid_size: Decimal = Decimal(100)
    ask_size: Decimal = Decimal(100)
    ts: int = 0


@dataclass
class LastTrade:
    price: Decimal
    size: Decimal
    ts: int
    trade_id: int


@dataclass
class _State:
    cash: Decimal
    positions: dict[str, Position] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)


def _iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")


def rfc3339_ns(ts_ns: int) -> str:
    """RFC 3339 UTC with all nine fractional digits, as Alpaca's market data prints it."""
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos:09d}Z"


class AlpacaEmulator:
    """Alpaca trading REST v2 on 127.0.0.1; `await start()` returns the base URL."""

    def __init__(
        self,
        key_id: str,
        secret: str,
        calendar: MarketCalendar,
        clock: Clock,
        assets: list[AlpacaAsset],
        cash: Decimal = Decimal("100000"),
        tokenization: TokenizationDesk | None = None,
    ) -> None:
        self._key_id = key_id
        self._secret = secret
        self.calendar = calendar
        self.clock = clock
        self.assets = {a.symbol: a for a in assets}
        self.quotes: dict[str, QuoteLevel] = {}
        self.state = _State(cash)
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.streams = AlpacaStreamHub(key_id, secret)
        self.trade_updates: list[dict[str, Any]] = []  # every order event published, in order
        self.last_trades: dict[str, LastTrade] = {}
        self._executions = itertools.count(1)
        self._publishing: set[asyncio.Task[int]] = set()
        self._seen = asyncio.Condition()  # notified on every request received
        self.tokenization = tokenization
        if tokenization is not None:
            tokenization.attach(self)

    def __repr__(self) -> str:
        return f"AlpacaEmulator(base_url={self.base_url!r})"

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/v2/account", self._account),
            ("GET", "/v2/positions", self._positions),
            ("POST", "/v2/orders", self._new_order),
            ("GET", "/v2/orders", self._list_orders),
            ("GET", "/v2/orders:by_client_order_id", self._by_client_order_id),
            ("GET", "/v2/orders/{order_id}", self._get_order),
            ("DELETE", "/v2/orders/{order_id}", self._cancel_order),
            ("GET", "/v2/assets/{symbol}", self._asset),
            ("GET", "/v2/stocks/{symbol}/quotes/latest", self._latest_quote),
            ("GET", "/v2/stocks/{symbol}/trades/latest", self._latest_trade),
        ]
        if self.tokenization is not None:
            routes += self.tokenization.routes()
        for method, path, handler in routes:
            app.router.add_route(method, path, self._wrap(handler))
        self.streams.add_routes(app)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner, self.base_url = await serve_on_loopback(app)
        return self.base_url

    @property
    def ws_url(self) -> str:
        """The websocket base (`ws://127.0.0.1:PORT`): `/stream` and `/v2/iex` hang off it."""
        return "ws" + self.base_url[len("http") :]

    async def close(self) -> None:
        await self.streams.close()
        if self._publishing:
            await asyncio.gather(*self._publishing, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- test controls ---------------------------------------------------------------------------

    def set_quote(
        self,
        symbol: str,
        bid: Decimal,
        ask: Decimal,
        bid_size: Decimal = Decimal(100),
        ask_size: Decimal = Decimal(100),
    ) -> QuoteLevel:
        """Set the NBBO of `symbol`; resting limit orders it makes marketable fill at the quote."""
        quote = QuoteLevel(bid, ask, bid_size, ask_size, self.clock.now_ns())
        self.quotes[symbol] = quote
        for order in list(self.state.orders.values()):
            if order.symbol == symbol and order.status in OPEN_STATUSES:
                self._try_fill(order)
        return quote

    async def push_quote(
        self,
        symbol: str,
        bid: Decimal,
        ask: Decimal,
        bid_size: Decimal = Decimal(100),
        ask_size: Decimal = Decimal(100),
    ) -> int:
        """`set_quote`, then publish it to the market-data subscribers; returns how many got it."""
        q = self.set_quote(symbol, bid, ask, bid_size, ask_size)
        message = {
            "T": "q",
            "S": symbol,
            "bx": "V",
            "bp": float(q.bid),
            "bs": float(q.bid_size),
            "ax": "V",
            "ap": float(q.ask),
            "as": float(q.ask_size),
            "t": rfc3339_ns(q.ts),
            "c": ["R"],
            "z": "C",
        }
        return await self.streams.publish_market_data(message)

    async def push_trade(self, symbol: str, price: Decimal, size: Decimal) -> int:
        """Print a public trade of `symbol` (the latest trade) and publish it to the subscribers."""
        trade = LastTrade(price, size, self.clock.now_ns(), next(self._ids))
        self.last_trades[symbol] = trade
        message = {
            "T": "t",
            "S": symbol,
            "i": trade.trade_id,
            "x": "V",
            "p": float(price),
            "s": float(size),
            "t": rfc3339_ns(trade.ts),
            "c": ["@"],
            "z": "C",
        }
        return await self.streams.publish_market_data(message)

    def order_by_client_id(self, client_order_id: str) -> Order:
        """The emulator's order with this client id (KeyError if none)."""
        for order in self.state.orders.values():
            if order.client_order_id == client_order_id:
                return order
        raise KeyError(client_order_id)

    def execute(self, client_order_id: str, qty: Decimal, price: Decimal) -> None:
        """Fill `qty` of a resting order at `price` (a partial fill unless it completes the order)."""
        order = self.order_by_client_id(client_order_id)
        if order.status not in OPEN_STATUSES or order.qty is None:
            raise ValueError(f"order {client_order_id} is {order.status}")
        if qty <= 0 or order.filled_qty + qty > order.qty:
            raise ValueError(f"qty {qty} does not fit order {client_order_id}")
        self._execute(order, qty, price)

    def reject(self, client_order_id: str, reason: str = "rejected by the exchange") -> None:
        """Reject an open order that has no fills (a late venue rejection)."""
        order = self.order_by_client_id(client_order_id)
        if order.status not in OPEN_STATUSES or order.filled_qty:
            raise ValueError(f"order {client_order_id} cannot be rejected now")
        order.status = "rejected"
        self._publish("rejected", order, reason=reason)

    async def drop_streams(self) -> None:
        """Close every websocket now (a dropped connection); events meanwhile reach nobody."""
        await self.streams.drop()

    async def flush(self) -> None:
        """Wait until every trade update published so far has been written to the sockets."""
        while self._publishing:
            await asyncio.gather(*list(self._publishing), return_exceptions=True)

    def _publish(self, event: str, order: Order, **extra: Any) -> None:
        data: dict[str, Any] = {
            "event": event,
            "timestamp": rfc3339_ns(self.clock.now_ns()),
            "order": order.as_json(),
        }
        data.update(extra)
        self.trade_updates.append(data)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # driven outside an event loop: nobody can be listening
            return
        # Published in order: tasks start FIFO, and each is created after the previous event.
        task = loop.create_task(self.streams.publish_trade_update(data))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    def inject(self, fault: Fault) -> None:
        self.faults.append(fault)

    async def wait_for_requests(self, path: str, count: int, method: str | None = None) -> None:
        """Wait until `count` requests to `path` (and `method`) have been answered."""
        async with self._seen:
            await self._seen.wait_for(
                lambda: len([r for r in self.requests_to(path, method) if r.answered]) >= count
            )

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    @property
    def cash(self) -> Decimal:
        return self.state.cash

    def position(self, symbol: str) -> Decimal:
        pos = self.state.positions.get(symbol)
        return ZERO if pos is None else pos.qty

    # -- plumbing --------------------------------------------------------------------------------

    def _take_fault(self, request: web.Request, after: bool) -> web.Response | Fault | None:
        for fault in self.faults:
            if (
                fault.times > 0
                and fault.after == after
                and (fault.path is None or fault.path == request.path)
                and (fault.method is None or fault.method == request.method)
            ):
                fault.times -= 1
                if fault.kind == "timeout":
                    return fault
                if fault.kind == "rate_limit":
                    return web.json_response({"message": "too many requests."}, status=429)
                return web.Response(status=fault.status, text="Internal Server Error")
        return None

    def _wrap(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def run(request: web.Request) -> web.Response:
            body: dict[str, Any] | None = None
            text = await request.text()
            record = RecordedRequest(
                request.method,
                request.path,
                dict(request.query),
                None,
                request.headers.get("APCA-API-KEY-ID"),
                idempotency_key=request.headers.get("Idempotency-Key"),
            )
            self.requests.append(record)
            early = self._take_fault(request, after=False)
            response = early if isinstance(early, web.Response) else None
            if isinstance(early, Fault):  # a timeout before processing: answer late, do nothing
                await asyncio.sleep(early.hang_s)
                response = web.json_response({"message": "gateway timeout"}, status=504)
            if response is None:
                try:
                    if (
                        request.headers.get("APCA-API-KEY-ID") != self._key_id
                        or request.headers.get("APCA-API-SECRET-KEY") != self._secret
                    ):
                        raise AlpacaApiError(403, 0, "forbidden.")
                    if text:
                        try:
                            loaded = json.loads(text)
                        except json.JSONDecodeError:
                            raise AlpacaApiError(400, 40010000, "request body format is invalid") from None
                        if not isinstance(loaded, dict):
                            raise AlpacaApiError(400, 40010000, "request body format is invalid")
                        body = loaded
                        record.body = body
                    response = await handler(request, body or {})
                except AlpacaApiError as err:
                    payload: dict[str, Any] = (
                        dict(FORBIDDEN) if err.code == 0 else {"code": err.code, "message": err.message}
                    )
                    response = web.json_response(payload, status=err.status)
                lost = self._take_fault(request, after=True)
                if isinstance(lost, Fault):  # processed; the answer comes after the client gave up
                    await asyncio.sleep(lost.hang_s)
                elif lost is not None:
                    response = lost
            record.status = response.status
            record.answered = True
            async with self._seen:
                self._seen.notify_all()
            return response

        return run

    async def _not_found(self, request: web.Request) -> web.Response:
        self.requests.append(
            RecordedRequest(request.method, request.path, dict(request.query), None, None, 404)
        )
        return web.json_response({"message": "Not Found"}, status=404)

    # -- endpoints -------------------------------------------------------------------------------

    def _buy_commitments(self) -> Decimal:
        return sum(
            (
                o.notional
                if o.qty is None and o.notional is not None
                else ((o.qty or ZERO) - o.filled_qty) * (o.limit_price or ZERO)
                for o in self.state.orders.values()
                if o.status in OPEN_STATUSES and o.side == "buy"
            ),
            ZERO,
        )

    async def _account(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        market_value = sum((p.qty * self._mark(s) for s, p in self.state.positions.items() if p.qty), ZERO)
        cash = self.state.cash
        return web.json_response(
            {
                "id": "emulator-account",
                "account_number": "PA0000000001",
                "status": "ACTIVE",
                "currency": "USD",
                "cash": str(cash),
                "buying_power": str(cash - self._buy_commitments()),
                "equity": str(cash + market_value),
                "portfolio_value": str(cash + market_value),
                "long_market_value": str(market_value),
                "pattern_day_trader": False,
                "trading_blocked": False,
                "account_blocked": False,
            }
        )

    def _mark(self, symbol: str) -> Decimal:
        q = self.quotes.get(symbol)
        return ZERO if q is None else (q.bid + q.ask) / 2

    async def _positions(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        out = []
        for symbol, p in sorted(self.state.positions.items()):
            if p.qty == 0:
                continue
            mark = self._mark(symbol)
            out.append(
                {
                    "asset_class": "us_equity",
                    "symbol": symbol,
                    "exchange": "NASDAQ",
                    "qty": str(p.qty),
                    "qty_available": str(p.qty),
                    "side": "long",
                    "avg_entry_price": str(p.cost / p.qty),
                    "cost_basis": str(p.cost),
                    "market_value": str(p.qty * mark),
                    "current_price": str(mark),
                }
            )
        return web.json_response(out)

    @staticmethod
    def _decimal(body: dict[str, Any], name: str) -> Decimal:
        raw = body.get(name)
        if raw is None:
            raise unprocessable(f"{name} is required")
        try:
            value = Decimal(str(raw))
        except InvalidOperation:
            raise AlpacaApiError(400, 40010001, f"invalid {name}") from None
        if not value.is_finite() or value <= 0:
            raise unprocessable(f"{name} must be > 0")
        return value

    async def _new_order(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        symbol = str(body.get("symbol", ""))
        asset = self.assets.get(symbol)
        if asset is None or not asset.tradable:
            raise unprocessable(f'asset "{symbol}" not found')
        side = body.get("side")
        if side not in ("buy", "sell"):
            raise unprocessable("invalid side")
        order_type = body.get("type")
        if order_type not in ("market", "limit"):
            raise unprocessable("invalid order type")
        tif = body.get("time_in_force")
        if tif not in ("day", "gtc", "ioc"):
            raise unprocessable("invalid time_in_force")
        if (body.get("qty") is None) == (body.get("notional") is None):
            raise unprocessable("qty or notional is required")
        qty = self._decimal(body, "qty") if body.get("qty") is not None else None
        notional = self._decimal(body, "notional") if body.get("notional") is not None else None
        fractional = notional is not None or (qty is not None and qty != qty.to_integral_value())
        if fractional and not asset.fractionable:
            raise unprocessable(f'asset "{symbol}" is not fractionable')
        if fractional and tif != "day":
            raise unprocessable("fractional orders must be DAY orders")
        if notional is not None and order_type != "market":
            raise unprocessable("notional orders must be market orders")
        limit_price = self._decimal(body, "limit_price") if order_type == "limit" else None
        extended = body.get("extended_hours", False) is True
        if extended and (order_type != "limit" or tif != "day"):
            raise unprocessable("extended hours order must be DAY limit orders")
        now = self.clock.now_ns()
        session = self.calendar.session_at(now)
        if session is not Session.REGULAR:
            if order_type == "market":
                raise unprocessable(
                    f"market orders are only accepted in regular trading hours (now {session.value})"
                )
            if not extended:
                raise unprocessable(
                    f"outside regular trading hours (now {session.value}) only DAY limit orders "
                    "with extended_hours=true are accepted"
                )
        client_order_id = str(body.get("client_order_id") or f"emu-{next(self._ids)}")
        if any(o.client_order_id == client_order_id for o in self.state.orders.values()):
            raise AlpacaApiError(422, 40010001, "client_order_id must be unique")
        quote = self.quotes.get(symbol)
        if side == "buy":
            price = limit_price if limit_price is not None else (quote.ask if quote else None)
            if price is None:
                raise unprocessable(f"no quote for {symbol}")
            cost = notional if notional is not None else (qty or ZERO) * price
            if cost > self.state.cash - self._buy_commitments():
                raise AlpacaApiError(403, 40310000, "insufficient buying power")
        else:
            held = self.position(symbol) - sum(
                (
                    (o.qty or ZERO) - o.filled_qty
                    for o in self.state.orders.values()
                    if o.status in OPEN_STATUSES and o.side == "sell" and o.symbol == symbol
                ),
                ZERO,
            )
            wanted = qty
            if notional is not None:
                wanted = _shares(notional, quote.bid) if quote is not None else None
            if wanted is None or wanted > held:
                raise AlpacaApiError(
                    403, 40310000, f"insufficient qty available for order (available: {held})"
                )
        order = Order(
            id=f"00000000-0000-4000-8000-{next(self._ids):012d}",
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            type=order_type,
            time_in_force=tif,
            qty=qty,
            limit_price=limit_price,
            extended_hours=extended,
            created_at=_iso(now),
            notional=notional,
        )
        self.state.orders[order.id] = order
        self._publish("new", order)
        self._try_fill(order)
        if order.status == "new" and order.time_in_force == "ioc":
            order.status = "expired"
            self._publish("expired", order)
        return web.json_response(order.as_json())

    def _try_fill(self, order: Order) -> None:
        quote = self.quotes.get(order.symbol)
        if quote is None:
            return
        price = quote.ask if order.side == "buy" else quote.bid
        if order.limit_price is not None and (
            price > order.limit_price if order.side == "buy" else price < order.limit_price
        ):
            return
        if order.qty is None:  # a notional order becomes a share quantity at its fill price
            assert order.notional is not None
            order.qty = _shares(order.notional, price)
        self._execute(order, order.qty - order.filled_qty, price)

    def _execute(self, order: Order, qty: Decimal, price: Decimal) -> None:
        """Book one execution: cash, position, the order's cumulative fill; publish the event."""
        assert order.qty is not None
        pos = self.state.positions.setdefault(order.symbol, Position())
        if order.side == "buy":
            self.state.cash -= qty * price
            pos.qty += qty
            pos.cost += qty * price
        else:
            avg = pos.cost / pos.qty if pos.qty else ZERO
            self.state.cash += qty * price
            pos.cost -= qty * avg
            pos.qty -= qty
        previous = (order.filled_avg_price or ZERO) * order.filled_qty
        order.filled_qty += qty
        order.filled_avg_price = (previous + qty * price) / order.filled_qty
        done = order.filled_qty == order.qty
        order.status = "filled" if done else "partially_filled"
        now = _iso(self.clock.now_ns())
        if done:
            order.filled_at = now
        self._publish(
            "fill" if done else "partial_fill",
            order,
            price=str(price),
            qty=str(qty),
            position_qty=str(pos.qty),
            execution_id=f"exec-{next(self._executions)}",
        )

    async def _list_orders(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        status = request.query.get("status", "open")
        orders = list(self.state.orders.values())
        if status == "open":
            orders = [o for o in orders if o.status in OPEN_STATUSES]
        elif status == "closed":
            orders = [o for o in orders if o.status not in OPEN_STATUSES]
        elif status != "all":
            raise unprocessable("invalid status")
        return web.json_response([o.as_json() for o in orders])

    def _find(self, order_id: str) -> Order:
        order = self.state.orders.get(order_id)
        if order is None:
            raise AlpacaApiError(404, 40410000, "order not found")
        return order

    async def _by_client_order_id(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        client_order_id = request.query.get("client_order_id", "")
        for order in self.state.orders.values():
            if order.client_order_id == client_order_id:
                return web.json_response(order.as_json())
        raise AlpacaApiError(404, 40410000, "order not found")

    async def _get_order(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        return web.json_response(self._find(request.match_info["order_id"]).as_json())

    async def _cancel_order(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        order = self._find(request.match_info["order_id"])
        if order.status not in OPEN_STATUSES:
            raise unprocessable(f'order is already in "{order.status}" state')
        order.status = "canceled"
        order.canceled_at = _iso(self.clock.now_ns())
        self._publish("canceled", order)
        return web.Response(status=204)

    async def _asset(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        symbol = request.match_info["symbol"]
        asset = self.assets.get(symbol)
        if asset is None:
            raise AlpacaApiError(404, 40410000, f"asset not found for {symbol}")
        return web.json_response(
            {
                "id": f"asset-{symbol}",
                "class": "us_equity",
                "exchange": "NASDAQ",
                "symbol": symbol,
                "name": symbol,
                "status": "active",
                "tradable": asset.tradable,
                "marginable": True,
                "shortable": False,
                "easy_to_borrow": False,
                "fractionable": asset.fractionable,
            }
        )

    async def _latest_quote(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        symbol = request.match_info["symbol"]
        q = self.quotes.get(symbol)
        if q is None:
            raise AlpacaApiError(404, 40410000, f"no quote found for {symbol}")
        quote = {
            "t": rfc3339_ns(q.ts),
            "ax": "V",
            "ap": float(q.ask),
            "as": float(q.ask_size),
            "bx": "V",
            "bp": float(q.bid),
            "bs": float(q.bid_size),
            "c": ["R"],
            "z": "C",
        }
        return web.json_response({"symbol": symbol, "quote": quote})

    async def _latest_trade(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        symbol = request.match_info["symbol"]
        t = self.last_trades.get(symbol)
        if t is None:
            raise AlpacaApiError(404, 40410000, f"no trade found for {symbol}")
        trade = {
            "t": rfc3339_ns(t.ts),
            "x": "V",
            "p": float(t.price),
            "s": float(t.size),
            "c": ["@"],
            "i": t.trade_id,
            "z": "C",
        }
        return web.json_response({"symbol": symbol, "trade": trade})


def _shares(notional: Decimal, price: Decimal) -> Decimal:
    """Shares a dollar amount buys at `price`, rounded down to Alpaca's 9 decimals."""
    return (notional / price).quantize(Decimal("1e-9"), rounding=ROUND_DOWN)
