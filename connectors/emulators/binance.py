"""An in-process emulator of Binance's spot REST API (aiohttp, 127.0.0.1, port 0).

It speaks enough of the real API for the real ccxt client (`ccxt.async_support.binance`) to run
unchanged once every entry of `exchange.urls['api']` points at `base_url`: exchange info, time,
depth, tickers, account, orders (LIMIT GTC/IOC/FOK, LIMIT_MAKER, MARKET), cancel, open and all
orders, trades, and the empty margin-pair lists ccxt asks for at load_markets when it has keys.
Signed endpoints check the API key header and the HMAC-SHA256 signature over the query string (or
form body), and errors come back in Binance's format (`{"code": ..., "msg": ...}`).

The book is configured by the test (`set_book`): these levels are the outside market. Market and
marketable limit orders take from them (levels shrink), the rest of a GTC limit order rests and is
shown in the depth; a later `set_book` fills resting orders that the new levels cross (as maker).
One account, the emulator's; the taker fee is charged in the asset received, like Binance's default.

Faults (`inject`) answer the next matching requests with a 429 carrying Binance's rate-limit body,
a 5xx, or hold them for a delay (a client timeout). Every request received is kept in `requests`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from connectors.emulators.binance_ws import BinanceStreams
from connectors.emulators.server import serve_on_loopback

Handler = Callable[[web.Request, dict[str, str]], Awaitable[web.Response]]
FaultKind = Literal["rate_limit", "server_error", "delay", "lost_response"]

ZERO = Decimal(0)

RATE_LIMIT_BODY = {
    "code": -1003,
    "msg": "Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute. "
    "Please use the websocket for live updates to avoid polling the API.",
}
BAD_SIGNATURE = (-1022, "Signature for this request is not valid.")
BAD_API_KEY = (-2015, "Invalid API-key, IP, or permissions for action.")
INSUFFICIENT_BALANCE = (-2010, "Account has insufficient balance for requested action.")


def point_ccxt_at(client: Any, base_url: str) -> Any:
    """Point a ccxt binance client (REST and, for ccxt.pro, websockets) at a local emulator.

    Every `urls['api']` entry becomes `base_url` + its path, and every websocket url
    `ws://...` + its path, so ccxt's own path building stays untouched. Returns the client.
    """
    ws_url = "ws" + base_url[len("http") :]

    def rewrite(urls: dict[str, Any], base: str) -> None:
        for name, url in urls.items():
            if isinstance(url, str):
                urls[name] = base + urlsplit(url).path
            elif isinstance(url, dict):
                rewrite(url, ws_url if name == "ws" else base)

    rewrite(client.urls["api"], base_url)
    return client


def fmt(value: Decimal) -> str:
    """Binance's decimal strings: eight places."""
    return f"{value:.8f}"


def missing(name: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


class BinanceError(Exception):
    """An error answered in Binance's format."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


@dataclass(frozen=True)
class BinanceSymbol:
    """A spot symbol as `exchangeInfo` lists it (id like `TSLAXUSDT`)."""

    base: str
    quote: str
    tick_size: Decimal = Decimal("0.01")
    step_size: Decimal = Decimal("0.001")
    min_qty: Decimal = Decimal("0.001")
    min_notional: Decimal = Decimal("1")

    @property
    def id(self) -> str:
        return self.base + self.quote


@dataclass
class RecordedRequest:
    """What the exchange received: method, path, all parameters, the API key, signed or not."""

    method: str
    path: str
    params: dict[str, str]
    api_key: str | None
    signed: bool
    status: int = 200
    received_at: float = 0.0  # time.monotonic() on arrival, s


@dataclass
class Fault:
    """Answer the next `times` requests (whose path contains `path` and whose method is `method`,
    if set) with this fault.

    `rate_limit` answers 429 with `Retry-After: retry_after` (s) and does nothing; `server_error`
    answers `status` and does nothing; `delay` holds the request `delay` s, then serves it;
    `lost_response` serves the request (the order is placed) and then answers `status` anyway.
    """

    kind: FaultKind
    times: int = 1
    path: str | None = None
    status: int = 503
    delay: float = 5.0
    retry_after: int = 1
    method: str | None = None


@dataclass
class Order:
    order_id: int
    client_order_id: str
    symbol: str
    side: str  # BUY | SELL
    type: str  # LIMIT | LIMIT_MAKER | MARKET
    time_in_force: str | None
    price: Decimal
    orig_qty: Decimal
    time_ms: int
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    status: str = "NEW"
    fills: list[dict[str, Any]] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    def as_json(self, *, with_fills: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "transactTime": self.time_ms,
            "time": self.time_ms,
            "updateTime": self.time_ms,
            "workingTime": self.time_ms,
            "price": fmt(self.price),
            "origQty": fmt(self.orig_qty),
            "executedQty": fmt(self.executed_qty),
            "cummulativeQuoteQty": fmt(self.cum_quote),
            "status": self.status,
            "timeInForce": self.time_in_force or "GTC",
            "type": self.type,
            "side": self.side,
            "stopPrice": fmt(ZERO),
            "icebergQty": fmt(ZERO),
            "isWorking": True,
            "origQuoteOrderQty": fmt(ZERO),
            "selfTradePreventionMode": "NONE",
        }
        if with_fills:
            out["fills"] = list(self.fills)
        return out


@dataclass
class Level:
    price: Decimal
    qty: Decimal


class BinanceEmulator:
    """Binance spot REST on 127.0.0.1; `await start()` returns the base URL (`http://127.0.0.1:PORT`)."""

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        symbols: list[BinanceSymbol],
        balances: dict[str, Decimal] | None = None,
        maker_fee: Decimal = Decimal("0.001"),
        taker_fee: Decimal = Decimal("0.001"),
        recv_window_ms: int = 5000,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.symbols = {s.id: s for s in symbols}
        self.free: dict[str, Decimal] = dict(balances or {})
        self.locked: dict[str, Decimal] = {}
        self.maker_fee = maker_fee
        self.taker_fee = taker_fee
        self.recv_window_ms = recv_window_ms
        self.bids: dict[str, list[Level]] = {s: [] for s in self.symbols}
        self.asks: dict[str, list[Level]] = {s: [] for s in self.symbols}
        self.orders: dict[int, Order] = {}
        self.trades: list[dict[str, Any]] = []
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._versions = {s: 1 for s in self.symbols}  # per-symbol book update id (depth U/u)
        self._published: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
        self._listen_keys: set[str] = set()
        self.streams = BinanceStreams(api_key, api_secret, self._listen_keys.__contains__)
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.ws_url = ""

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> str:
        """Serve REST and websockets on 127.0.0.1; returns `base_url` (`ws_url` is the same for ws)."""
        routes: list[tuple[str, str, Handler, bool]] = [
            ("GET", "/api/v3/ping", self._ping, False),
            ("GET", "/api/v3/time", self._time, False),
            ("GET", "/api/v3/exchangeInfo", self._exchange_info, False),
            ("GET", "/api/v3/depth", self._depth, False),
            ("GET", "/api/v3/ticker/24hr", self._ticker_24hr, False),
            ("GET", "/api/v3/ticker", self._ticker_24hr, False),
            ("GET", "/api/v3/ticker/bookTicker", self._book_ticker, False),
            ("GET", "/api/v3/ticker/price", self._ticker_price, False),
            ("GET", "/api/v3/account", self._account, True),
            ("POST", "/api/v3/order", self._new_order, True),
            ("DELETE", "/api/v3/order", self._cancel_order, True),
            ("GET", "/api/v3/order", self._query_order, True),
            ("GET", "/api/v3/openOrders", self._open_orders, True),
            ("GET", "/api/v3/allOrders", self._all_orders, True),
            ("GET", "/api/v3/myTrades", self._my_trades, True),
            ("GET", "/sapi/v1/system/status", self._system_status, False),
            ("GET", "/sapi/v1/margin/allPairs", self._margin_pairs, True),
            ("GET", "/sapi/v1/margin/isolated/allPairs", self._margin_pairs, True),
            ("POST", "/api/v3/userDataStream", self._new_listen_key, False),
            ("PUT", "/api/v3/userDataStream", self._keep_listen_key, False),
            ("DELETE", "/api/v3/userDataStream", self._close_listen_key, False),
        ]
        return await self._serve(routes)

    async def _serve(self, routes: list[tuple[str, str, Handler, bool]]) -> str:
        app = web.Application()
        self.streams.add_routes(app)
        for method, path, handler, signed in routes:
            app.router.add_route(method, path, self._wrap(handler, signed))
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner, self.base_url = await serve_on_loopback(app)
        self.ws_url = "ws" + self.base_url[len("http") :]
        return self.base_url

    async def close(self) -> None:
        await self.streams.drop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- test controls ---------------------------------------------------------------------------

    def set_book(
        self,
        symbol_id: str,
        bids: list[tuple[Decimal, Decimal]],
        asks: list[tuple[Decimal, Decimal]],
    ) -> None:
        """Replace the outside market's levels; resting orders the new levels cross fill as maker."""
        self.bids[symbol_id] = sorted((Level(p, q) for p, q in bids), key=lambda lv: -lv.price)
        self.asks[symbol_id] = sorted((Level(p, q) for p, q in asks), key=lambda lv: lv.price)
        for order in sorted(self.orders.values(), key=lambda o: o.order_id):
            if order.symbol == symbol_id and order.status in ("NEW", "PARTIALLY_FILLED"):
                self._match(order, maker=True)
        self._book_changed(symbol_id)

    def inject(self, fault: Fault) -> None:
        self.faults.append(fault)

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    def balance(self, asset: str) -> tuple[Decimal, Decimal]:
        return self.free.get(asset, ZERO), self.locked.get(asset, ZERO)

    # -- plumbing --------------------------------------------------------------------------------

    def _wrap(self, handler: Handler, signed: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def run(request: web.Request) -> web.Response:
            body = await request.text()
            raw_query = request.rel_url.raw_query_string
            params = dict(parse_qsl(raw_query, keep_blank_values=True))
            if body and request.content_type == "application/x-www-form-urlencoded":
                params.update(parse_qsl(body, keep_blank_values=True))
            record = RecordedRequest(
                request.method,
                request.path,
                params,
                request.headers.get("X-MBX-APIKEY"),
                signed,
                received_at=time.monotonic(),
            )
            self.requests.append(record)
            fault = self._take_fault(request.method, request.path)
            response = await self._fault_response(fault)
            if response is None:
                try:
                    if signed:
                        self._check_signature(request, raw_query, body, params)
                    response = await handler(request, params)
                except BinanceError as err:
                    response = web.json_response({"code": err.code, "msg": err.msg}, status=err.status)
                if fault is not None and fault.kind == "lost_response":
                    response = web.Response(status=fault.status, text="<html>Bad Gateway</html>")
            record.status = response.status
            return response

        return run

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if (
                fault.times > 0
                and (fault.path is None or fault.path in path)
                and (fault.method is None or fault.method == method)
            ):
                fault.times -= 1
                return fault
        return None

    async def _fault_response(self, fault: Fault | None) -> web.Response | None:
        """The response that replaces the real one, or None to serve the request."""
        if fault is None or fault.kind == "lost_response":
            return None
        if fault.kind == "rate_limit":
            headers = {"Retry-After": str(fault.retry_after)}
            return web.json_response(RATE_LIMIT_BODY, status=429, headers=headers)
        if fault.kind == "server_error":
            return web.Response(status=fault.status, text="<html>Service Unavailable</html>")
        await asyncio.sleep(fault.delay)
        return None

    def _check_signature(
        self, request: web.Request, raw_query: str, body: str, params: dict[str, str]
    ) -> None:
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            raise BinanceError(*BAD_API_KEY, status=401)
        payload = raw_query if request.method in ("GET", "DELETE") else body
        head, sep, signature = payload.rpartition("&signature=")
        if not sep:
            if payload.startswith("signature="):
                head, signature = "", payload[len("signature=") :]
            else:
                raise missing("signature")
        expected = hmac.new(self.api_secret.encode(), head.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise BinanceError(*BAD_SIGNATURE)
        timestamp = int(params.get("timestamp", "0"))
        recv_window = int(params.get("recvWindow", str(self.recv_window_ms)))
        now = self._now()
        if timestamp > now + 1000 or now - timestamp > recv_window:
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")

    @staticmethod
    def _now() -> int:
        return int(time.time() * 1000)

    def _symbol(self, params: dict[str, str]) -> BinanceSymbol:
        symbol_id = params.get("symbol")
        if symbol_id is None:
            raise missing("symbol")
        if symbol_id not in self.symbols:
            raise BinanceError(-1121, "Invalid symbol.")
        return self.symbols[symbol_id]

    # -- public endpoints ------------------------------------------------------------------------

    async def _not_found(self, request: web.Request) -> web.Response:
        record = RecordedRequest(request.method, request.path, dict(request.query), None, False, 404)
        self.requests.append(record)
        return web.Response(status=404, text="<html><body><h1>404 Not Found</h1></body></html>")

    async def _ping(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return web.json_response({})

    async def _time(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return web.json_response({"serverTime": self._now()})

    async def _system_status(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return web.json_response({"status": 0, "msg": "normal"})

    async def _margin_pairs(self, request: web.Request, params: dict[str, str]) -> web.Response:
        """No margin here: ccxt asks for the margin pairs at load_markets when it has keys."""
        return web.json_response([])

    async def _exchange_info(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbols = [self._symbol_info(s) for s in self.symbols.values()]
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": self._now(),
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": 6000,
                    },
                    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                ],
                "exchangeFilters": [],
                "symbols": symbols,
            }
        )

    @staticmethod
    def _symbol_info(s: BinanceSymbol) -> dict[str, Any]:
        return {
            "symbol": s.id,
            "status": "TRADING",
            "baseAsset": s.base,
            "baseAssetPrecision": 8,
            "quoteAsset": s.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
            "icebergAllowed": False,
            "ocoAllowed": False,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": fmt(s.tick_size),
                    "maxPrice": "1000000.00000000",
                    "tickSize": fmt(s.tick_size),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": fmt(s.min_qty),
                    "maxQty": "9000000.00000000",
                    "stepSize": fmt(s.step_size),
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": fmt(s.min_notional),
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }

    def _levels(self, symbol_id: str) -> tuple[list[list[str]], list[list[str]]]:
        """The outside levels merged with resting orders, best first."""
        bids: dict[Decimal, Decimal] = {}
        asks: dict[Decimal, Decimal] = {}
        for lv in self.bids[symbol_id]:
            bids[lv.price] = bids.get(lv.price, ZERO) + lv.qty
        for lv in self.asks[symbol_id]:
            asks[lv.price] = asks.get(lv.price, ZERO) + lv.qty
        for o in self.orders.values():
            if o.symbol == symbol_id and o.status in ("NEW", "PARTIALLY_FILLED"):
                side = bids if o.side == "BUY" else asks
                side[o.price] = side.get(o.price, ZERO) + o.remaining
        bid_rows = [[fmt(p), fmt(q)] for p, q in sorted(bids.items(), reverse=True) if q > 0]
        ask_rows = [[fmt(p), fmt(q)] for p, q in sorted(asks.items()) if q > 0]
        return bid_rows, ask_rows

    async def _depth(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = self._symbol(params)
        limit = int(params.get("limit", "100"))
        bids, asks = self._levels(symbol.id)
        depth = {"lastUpdateId": self._versions[symbol.id], "bids": bids[:limit], "asks": asks[:limit]}
        return web.json_response(depth)

    def _ticker(self, s: BinanceSymbol) -> dict[str, Any]:
        bids, asks = self._levels(s.id)
        bid = bids[0] if bids else [fmt(ZERO), fmt(ZERO)]
        ask = asks[0] if asks else [fmt(ZERO), fmt(ZERO)]
        last = [t for t in self.trades if t["symbol"] == s.id]
        last_price = last[-1]["price"] if last else fmt((Decimal(bid[0]) + Decimal(ask[0])) / 2)
        volume = sum((Decimal(t["qty"]) for t in last), ZERO)
        quote_volume = sum((Decimal(t["quoteQty"]) for t in last), ZERO)
        now = self._now()
        return {
            "symbol": s.id,
            "priceChange": fmt(ZERO),
            "priceChangePercent": "0.000",
            "weightedAvgPrice": last_price,
            "prevClosePrice": last_price,
            "lastPrice": last_price,
            "lastQty": last[-1]["qty"] if last else fmt(ZERO),
            "bidPrice": bid[0],
            "bidQty": bid[1],
            "askPrice": ask[0],
            "askQty": ask[1],
            "openPrice": last_price,
            "highPrice": last_price,
            "lowPrice": last_price,
            "volume": fmt(volume),
            "quoteVolume": fmt(quote_volume),
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": last[0]["id"] if last else -1,
            "lastId": last[-1]["id"] if last else -1,
            "count": len(last),
        }

    def _per_symbol(self, params: dict[str, str], make: Callable[[BinanceSymbol], dict[str, Any]]) -> Any:
        if "symbol" in params:
            return make(self._symbol(params))
        if "symbols" in params:
            ids = json.loads(params["symbols"])
            return [make(self._symbol({"symbol": i})) for i in ids]
        return [make(s) for s in self.symbols.values()]

    async def _ticker_24hr(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return web.json_response(self._per_symbol(params, self._ticker))

    async def _book_ticker(self, request: web.Request, params: dict[str, str]) -> web.Response:
        def make(s: BinanceSymbol) -> dict[str, Any]:
            t = self._ticker(s)
            return {k: t[k] for k in ("symbol", "bidPrice", "bidQty", "askPrice", "askQty")}

        return web.json_response(self._per_symbol(params, make))

    async def _ticker_price(self, request: web.Request, params: dict[str, str]) -> web.Response:
        def make(s: BinanceSymbol) -> dict[str, Any]:
            return {"symbol": s.id, "price": self._ticker(s)["lastPrice"]}

        return web.json_response(self._per_symbol(params, make))

    # -- signed endpoints ------------------------------------------------------------------------

    async def _account(self, request: web.Request, params: dict[str, str]) -> web.Response:
        assets = sorted(set(self.free) | set(self.locked))
        return web.json_response(
            {
                "makerCommission": int(self.maker_fee * 10_000),
                "takerCommission": int(self.taker_fee * 10_000),
                "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {
                    "maker": fmt(self.maker_fee),
                    "taker": fmt(self.taker_fee),
                    "buyer": fmt(ZERO),
                    "seller": fmt(ZERO),
                },
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": self._now(),
                "accountType": "SPOT",
                "balances": [
                    {"asset": a, "free": fmt(self.free.get(a, ZERO)), "locked": fmt(self.locked.get(a, ZERO))}
                    for a in assets
                ],
                "permissions": ["SPOT"],
                "uid": 1,
            }
        )

    def _require(self, params: dict[str, str], name: str) -> str:
        value = params.get(name)
        if not value:
            raise missing(name)
        return value

    # Hooks a derivatives emulator overrides: order types, funds, settlement, formats, events.
    ORDER_TYPES: tuple[str, ...] = ("LIMIT", "LIMIT_MAKER", "MARKET")
    TIME_IN_FORCE: tuple[str, ...] = ("GTC", "IOC", "FOK")

    def _is_post_only(self, order_type: str, tif: str | None) -> bool:
        return order_type == "LIMIT_MAKER"

    def _post_only_error(self) -> BinanceError:
        return BinanceError(-2010, "Order would immediately match and take.")

    def _check_funds(
        self,
        s: BinanceSymbol,
        side: str,
        order_type: str,
        qty: Decimal,
        price: Decimal,
        cost: Decimal,
        params: dict[str, str],
    ) -> None:
        """Raise if the account cannot pay for the order (spot: the free balance of what is paid)."""
        needed, asset = self._needed(s, side, order_type, qty, price, cost)
        if self.free.get(asset, ZERO) < needed:
            raise BinanceError(*INSUFFICIENT_BALANCE)

    @staticmethod
    def _needed(
        s: BinanceSymbol, side: str, order_type: str, qty: Decimal, price: Decimal, cost: Decimal
    ) -> tuple[Decimal, str]:
        if side == "BUY":
            return (cost if order_type == "MARKET" else qty * price), s.quote
        return qty, s.base

    def _lock(self, order: Order) -> None:
        """Reserve what a resting order needs (spot: lock its quote or base in the balance)."""
        if order.type != "MARKET":
            s = self.symbols[order.symbol]
            amount, asset = self._needed(s, order.side, order.type, order.orig_qty, order.price, ZERO)
            self._move(asset, amount, lock=True)

    def _new_order_extra(self, order: Order, params: dict[str, str]) -> None:
        """Parameters the derivatives emulator reads (reduceOnly)."""

    async def _new_order(self, request: web.Request, params: dict[str, str]) -> web.Response:
        s = self._symbol(params)
        side = self._require(params, "side").upper()
        order_type = self._require(params, "type").upper()
        if side not in ("BUY", "SELL"):
            raise BinanceError(-1117, "Invalid side.")
        if order_type not in self.ORDER_TYPES:
            raise BinanceError(-1116, "Invalid orderType.")
        qty = Decimal(self._require(params, "quantity"))
        if qty < s.min_qty or qty % s.step_size != 0:
            raise BinanceError(-1013, "Filter failure: LOT_SIZE")
        tif: str | None = None
        price = ZERO
        if order_type != "MARKET":
            price = Decimal(self._require(params, "price"))
            if price <= 0 or price % s.tick_size != 0:
                raise BinanceError(-1013, "Filter failure: PRICE_FILTER")
            if order_type == "LIMIT":
                tif = self._require(params, "timeInForce").upper()
                if tif not in self.TIME_IN_FORCE:
                    raise BinanceError(-1115, "Invalid timeInForce.")
        book = self.asks[s.id] if side == "BUY" else self.bids[s.id]

        def crosses(level_price: Decimal) -> bool:
            if order_type == "MARKET":
                return True
            return level_price <= price if side == "BUY" else level_price >= price

        # What would fill now, to check the balance, FOK and post-only before touching anything.
        fillable, cost, left = ZERO, ZERO, qty
        for lv in book:
            if left <= 0 or not crosses(lv.price):
                break
            take = min(lv.qty, left)
            fillable, cost, left = fillable + take, cost + take * lv.price, left - take
        if self._is_post_only(order_type, tif) and fillable > 0:
            raise self._post_only_error()
        if order_type == "MARKET" and fillable == 0:
            raise BinanceError(-2010, "Market is closed.")
        notional = cost if order_type == "MARKET" else qty * price
        if notional < self._min_notional(s, params):
            raise self._notional_error(s)
        self._check_funds(s, side, order_type, qty, price, cost, params)
        now = self._now()
        order = Order(
            order_id=next(self._ids),
            client_order_id=params.get("newClientOrderId") or f"emu{now}{len(self.orders)}",
            symbol=s.id,
            side=side,
            type=order_type,
            time_in_force=tif,
            price=price,
            orig_qty=qty,
            time_ms=now,
        )
        self._new_order_extra(order, params)
        if tif == "FOK" and fillable < qty:
            order.status = "EXPIRED"
            self.orders[order.order_id] = order
            self._report(order, "EXPIRED")
            return web.json_response(self._order_json(order, with_fills=True))
        # Lock what a resting order needs, then take from the book.
        self.orders[order.order_id] = order
        self._lock(order)
        self._report(order, "NEW")
        self._match(order, maker=False)
        if order.remaining > 0 and (order_type == "MARKET" or tif == "IOC"):
            order.status = "EXPIRED"
            self._release(order)
            self._report(order, "EXPIRED")
        self._book_changed(s.id)
        return web.json_response(self._order_json(order, with_fills=True))

    def _min_notional(self, s: BinanceSymbol, params: dict[str, str]) -> Decimal:
        return s.min_notional

    def _notional_error(self, s: BinanceSymbol) -> BinanceError:
        return BinanceError(-1013, "Filter failure: NOTIONAL")

    def _move(self, asset: str, amount: Decimal, *, lock: bool) -> None:
        src, dst = (self.free, self.locked) if lock else (self.locked, self.free)
        src[asset] = src.get(asset, ZERO) - amount
        dst[asset] = dst.get(asset, ZERO) + amount

    def _release(self, order: Order) -> None:
        """Unlock what is still locked for the order's unfilled part."""
        if order.type == "MARKET":
            return
        s = self.symbols[order.symbol]
        if order.side == "BUY":
            self._move(s.quote, order.remaining * order.price, lock=False)
        else:
            self._move(s.base, order.remaining, lock=False)

    def _settle(
        self, order: Order, take: Decimal, fill_price: Decimal, fee_rate: Decimal
    ) -> tuple[Decimal, str]:
        """Move the balances for one execution; returns the commission and its asset."""
        s = self.symbols[order.symbol]
        quote_qty = take * fill_price
        resting = order.type != "MARKET"
        if order.side == "BUY":
            commission, commission_asset = take * fee_rate, s.base
            if resting:
                self.locked[s.quote] -= take * order.price
                self.free[s.quote] = self.free.get(s.quote, ZERO) + take * order.price - quote_qty
            else:
                self.free[s.quote] = self.free.get(s.quote, ZERO) - quote_qty
            self.free[s.base] = self.free.get(s.base, ZERO) + take - commission
        else:
            commission, commission_asset = quote_qty * fee_rate, s.quote
            if resting:
                self.locked[s.base] -= take
            else:
                self.free[s.base] = self.free.get(s.base, ZERO) - take
            self.free[s.quote] = self.free.get(s.quote, ZERO) + quote_qty - commission
        return commission, commission_asset

    def _match(self, order: Order, *, maker: bool) -> None:
        """Fill `order` against the outside levels it crosses; balances and trades move."""
        s = self.symbols[order.symbol]
        book = self.asks[s.id] if order.side == "BUY" else self.bids[s.id]
        fee_rate = self.maker_fee if maker else self.taker_fee
        while book and order.remaining > 0:
            lv = book[0]
            if order.type != "MARKET" and (
                lv.price > order.price if order.side == "BUY" else lv.price < order.price
            ):
                break
            take = min(lv.qty, order.remaining)
            fill_price = order.price if maker else lv.price
            quote_qty = take * fill_price
            lv.qty -= take
            if lv.qty <= 0:
                book.pop(0)
            commission, commission_asset = self._settle(order, take, fill_price, fee_rate)
            order.executed_qty += take
            order.cum_quote += quote_qty
            order.status = "FILLED" if order.remaining == 0 else "PARTIALLY_FILLED"
            trade_id = len(self.trades) + 1
            now = self._now()
            fill = {
                "price": fmt(fill_price),
                "qty": fmt(take),
                "commission": fmt(commission),
                "commissionAsset": commission_asset,
                "tradeId": trade_id,
            }
            order.fills.append(fill)
            trade = {
                "symbol": s.id,
                "id": trade_id,
                "orderId": order.order_id,
                "orderListId": -1,
                "price": fmt(fill_price),
                "qty": fmt(take),
                "quoteQty": fmt(quote_qty),
                "commission": fmt(commission),
                "commissionAsset": commission_asset,
                "time": now,
                "isBuyer": order.side == "BUY",
                "isMaker": maker,
                "isBestMatch": True,
            }
            self.trades.append(self._trade_json(order, trade))
            # The public tape: the buyer is the maker when we bought as maker or sold as taker.
            self.streams.publish(
                f"{s.id.lower()}@trade",
                {
                    "e": "trade",
                    "E": now,
                    "s": s.id,
                    "t": trade_id,
                    "p": fmt(fill_price),
                    "q": fmt(take),
                    "T": now,
                    "m": (order.side == "BUY") == maker,
                    "M": True,
                },
            )
            self._report(order, "TRADE", fill | {"maker": maker, "time": now})

    def _trade_json(self, order: Order, trade: dict[str, Any]) -> dict[str, Any]:
        """A `myTrades` row (the futures emulator adds its fields)."""
        return trade

    def _order_json(self, order: Order, *, with_fills: bool = False) -> dict[str, Any]:
        return order.as_json(with_fills=with_fills)

    # -- websocket events ------------------------------------------------------------------------

    def _book_changed(self, symbol_id: str) -> None:
        """Publish what changed in the visible book since the last publication (depth diff, top)."""
        bid_rows, ask_rows = self._levels(symbol_id)
        bids = {p: q for p, q in bid_rows}
        asks = {p: q for p, q in ask_rows}
        old_bids, old_asks = self._published.get(symbol_id, ({}, {}))
        if (bids, asks) == (old_bids, old_asks):
            return
        self._published[symbol_id] = (bids, asks)
        self._versions[symbol_id] += 1
        version = self._versions[symbol_id]

        def diff(new: dict[str, str], old: dict[str, str]) -> list[list[str]]:
            rows = [[p, q] for p, q in new.items() if old.get(p) != q]
            return rows + [[p, fmt(ZERO)] for p in old if p not in new]

        stream = symbol_id.lower()
        now = self._now()
        self.streams.publish(
            f"{stream}@depth",
            {
                "e": "depthUpdate",
                "E": now,
                "s": symbol_id,
                "U": version,
                "u": version,
                "b": diff(bids, old_bids),
                "a": diff(asks, old_asks),
            }
            | self._depth_extra(version, now),
        )
        zero = [fmt(ZERO), fmt(ZERO)]
        top_bid, top_ask = (bid_rows or [zero])[0], (ask_rows or [zero])[0]
        self.streams.publish(
            f"{stream}@bookTicker",
            {"u": version, "s": symbol_id, "b": top_bid[0], "B": top_bid[1], "a": top_ask[0], "A": top_ask[1]}
            | self._book_ticker_extra(now),
        )

    def _depth_extra(self, version: int, now: int) -> dict[str, Any]:
        return {}

    def _book_ticker_extra(self, now: int) -> dict[str, Any]:
        return {}

    def _report(self, order: Order, execution: str, fill: dict[str, Any] | None = None) -> None:
        """An `executionReport` and an `outboundAccountPosition` on the user data streams."""
        now = self._now()
        fill = fill or {}
        last_qty = Decimal(fill.get("qty", "0"))
        last_price = Decimal(fill.get("price", "0"))
        self.streams.publish_user(
            {
                "e": "executionReport",
                "E": now,
                "s": order.symbol,
                "c": order.client_order_id,
                "S": order.side,
                "o": order.type,
                "f": order.time_in_force or "GTC",
                "q": fmt(order.orig_qty),
                "p": fmt(order.price),
                "P": fmt(ZERO),
                "F": fmt(ZERO),
                "g": -1,
                "C": order.client_order_id if execution == "CANCELED" else "",
                "x": execution,
                "X": order.status,
                "r": "NONE",
                "i": order.order_id,
                "l": fmt(last_qty),
                "z": fmt(order.executed_qty),
                "L": fmt(last_price),
                "n": fill.get("commission", "0"),
                "N": fill.get("commissionAsset"),
                "T": fill.get("time", now),
                "t": fill.get("tradeId", -1),
                "I": next(self._ids) + 10**9,
                "w": order.status in ("NEW", "PARTIALLY_FILLED"),
                "m": bool(fill.get("maker", False)),
                "M": False,
                "O": order.time_ms,
                "Z": fmt(order.cum_quote),
                "Y": fmt(last_qty * last_price),
                "Q": fmt(ZERO),
                "W": order.time_ms,
                "V": "NONE",
            }
        )
        s = self.symbols[order.symbol]
        self.streams.publish_user(
            {
                "e": "outboundAccountPosition",
                "E": now,
                "u": now,
                "B": [
                    {"a": a, "f": fmt(self.free.get(a, ZERO)), "l": fmt(self.locked.get(a, ZERO))}
                    for a in (s.base, s.quote)
                ],
            }
        )

    # -- listen keys -----------------------------------------------------------------------------

    def _check_api_key(self, request: web.Request) -> None:
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            raise BinanceError(*BAD_API_KEY, status=401)

    async def _new_listen_key(self, request: web.Request, params: dict[str, str]) -> web.Response:
        self._check_api_key(request)
        key = hashlib.sha256(f"{self.api_key}{len(self._listen_keys)}{time.time_ns()}".encode()).hexdigest()
        self._listen_keys.add(key)
        return web.json_response({"listenKey": key})

    async def _keep_listen_key(self, request: web.Request, params: dict[str, str]) -> web.Response:
        self._check_api_key(request)
        key = params.get("listenKey")
        if key is not None and key not in self._listen_keys:
            raise BinanceError(-1125, "This listenKey does not exist.")
        return web.json_response({} if key is not None else {"listenKey": next(iter(self._listen_keys), "")})

    async def _close_listen_key(self, request: web.Request, params: dict[str, str]) -> web.Response:
        self._check_api_key(request)
        self._listen_keys.discard(params.get("listenKey", ""))
        return web.json_response({})

    def _find_order(self, params: dict[str, str]) -> Order:
        s = self._symbol(params)
        order_id = params.get("orderId")
        client_id = params.get("origClientOrderId")
        for o in self.orders.values():
            if o.symbol == s.id and (
                (order_id is not None and str(o.order_id) == order_id)
                or (order_id is None and client_id is not None and o.client_order_id == client_id)
            ):
                return o
        raise BinanceError(-2013, "Order does not exist.")

    async def _cancel_order(self, request: web.Request, params: dict[str, str]) -> web.Response:
        try:
            order = self._find_order(params)
        except BinanceError as err:
            raise BinanceError(-2011, "Unknown order sent.") from err
        if order.status not in ("NEW", "PARTIALLY_FILLED"):
            raise BinanceError(-2011, "Unknown order sent.")
        self._release(order)
        order.status = "CANCELED"
        self._report(order, "CANCELED")
        self._book_changed(order.symbol)
        return web.json_response(self._order_json(order))

    async def _query_order(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return web.json_response(self._order_json(self._find_order(params)))

    async def _open_orders(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol_id = self._symbol(params).id if "symbol" in params else None
        return web.json_response(
            [
                self._order_json(o)
                for o in self.orders.values()
                if o.status in ("NEW", "PARTIALLY_FILLED") and (symbol_id is None or o.symbol == symbol_id)
            ]
        )

    async def _all_orders(self, request: web.Request, params: dict[str, str]) -> web.Response:
        s = self._symbol(params)
        orders = [self._order_json(o) for o in self.orders.values() if o.symbol == s.id]
        return web.json_response(orders[-int(params.get("limit", "500")) :])

    async def _my_trades(self, request: web.Request, params: dict[str, str]) -> web.Response:
        s = self._symbol(params)
        trades = [t for t in self.trades if t["symbol"] == s.id]
        if "orderId" in params:
            trades = [t for t in trades if str(t["orderId"]) == params["orderId"]]
        if "fromId" in params:
            trades = [t for t in trades if t["id"] >= int(params["fromId"])]
        limit = int(params.get("limit", "500"))
        return web.json_response(trades[-limit:])
