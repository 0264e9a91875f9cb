"""One venue connector for any ccxt exchange (`ccxt.async_support`, or `ccxt.pro` for websockets).

`CcxtExchange` implements the venue port (`core.venue.Venue`): `submit`/`cancel` send orders,
`snapshot` reads balances and open orders, `fetch_quote`/`fetch_book`/`fills_since` read market
data and our executions, `fetch_funding_rate`/`positions` cover perpetuals, and `stream()` yields
quotes, books, trades, funding, our order updates and fills (websockets where ccxt has them, REST
polling otherwise; see `connectors.ccxt_stream`). Per-exchange quirks (the name of the client
order id parameter, how post-only is spelled) live in `connectors.exchange_capabilities`.

Errors: an order the exchange refuses (funds, filters, post-only that would take) comes back as a
REJECTED `OrderUpdate` carrying the exchange's message. Network trouble (timeouts, 429, 5xx) is
retried with exponential backoff and jitter (at least the `Retry-After` of a 429); an order is
re-sent only after looking it up by its client order id, so a timeout or a 5xx after the exchange
accepted it never makes a second order. When the attempts run out, `VenueUnavailable` is raised.

Exactly once: every fill (by trade id) and every order state (client order id, status, filled
quantity) is reported once, whether it arrives from `submit`, the websocket or a reconciliation.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any, TypeVar

import ccxt
import ccxt.async_support as ccxt_async

from connectors.ccxt_stream import CcxtStream
from connectors.exchange_capabilities import CAPABILITIES, Capabilities, capabilities_for
from core.clock import Clock
from core.enums import Liquidity, OrderStatus, OrderType, Side, TimeInForce
from core.errors import PerpetuaError
from core.events import BookUpdate, Event, Fill, FundingRate, OrderUpdate, Quote, Trade
from core.orders import OrderRequest, Request
from core.venue import VenueState

T = TypeVar("T")

__all__ = [
    "CAPABILITIES",
    "Capabilities",
    "CcxtExchange",
    "DecimalIsolated",
    "PerpPosition",
    "RetryPolicy",
    "VenueUnavailable",
]

HOUR_NS = 3_600_000_000_000

RETRYABLE: tuple[type[Exception], ...] = (
    ccxt.NetworkError,  # RequestTimeout, DDoSProtection (429), ExchangeNotAvailable (5xx) are subclasses
)
"""ccxt errors worth another attempt: the request may not have been processed."""

REJECTIONS: tuple[type[Exception], ...] = (ccxt.ExchangeError,)
"""ccxt errors meaning the exchange answered and refused the order: funds, filters, post-only that
would take (an InvalidOrder), and codes ccxt maps to no finer class (binanceusdm's -2022
reduce-only refusal is a bare ExchangeError). Credentials errors are raised, not rejected."""

RAISED: tuple[type[Exception], ...] = (ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.AccountSuspended)
"""Refusals that say nothing about the order and everything about the account: raised."""

_STATUS = {
    "canceled": OrderStatus.CANCELLED,
    "cancelled": OrderStatus.CANCELLED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
    "closed": OrderStatus.FILLED,
}


class VenueUnavailable(PerpetuaError):
    """The exchange could not be reached (network errors, rate limits, 5xx) after every retry."""

    def __init__(self, venue: str, operation: str, attempts: int, last_error: Exception) -> None:
        self.venue = venue
        self.operation = operation
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(f"{venue}: {operation} failed after {attempts} attempts: {last_error}")


@dataclass(frozen=True, slots=True)
class PerpPosition:
    """An open derivatives position: `quantity` signed (+ long, - short) in contracts' base units,
    prices in quote currency, `unrealized_pnl` in the settlement asset."""

    instrument: str
    quantity: Decimal
    entry_price: Decimal
    mark_price: Decimal
    unrealized_pnl: Decimal
    leverage: Decimal | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits between half and all of base * 2**(n-1)."""

    max_attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 5.0
    seed: int | None = None


def _dec(value: Any) -> Decimal:
    """A ccxt number (float, str or None) as an exact Decimal of its shortest repr."""
    if value is None:
        return Decimal(0)
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def _ms_to_ns(ms: Any, default: int) -> int:
    return int(ms) * 1_000_000 if ms is not None else default


class DecimalIsolated:
    """A ccxt exchange whose calls run in a private decimal context.

    ccxt's `decimal_to_precision` sets `traps[Underflow]` and `ROUND_HALF_UP` on the caller's
    *current* decimal context, which every later Decimal computation of the process would then
    inherit. Each method call (sync or async) of the wrapped exchange gets a fresh copy instead.
    """

    def __init__(self, exchange: Any) -> None:
        self._exchange = exchange

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._exchange, name)
        if inspect.iscoroutinefunction(attr):

            async def isolated_async(*args: Any, **kwargs: Any) -> Any:
                with localcontext():
                    return await attr(*args, **kwargs)

            return isolated_async
        if callable(attr) and not isinstance(attr, type):

            def isolated(*args: Any, **kwargs: Any) -> Any:
                with localcontext():
                    return attr(*args, **kwargs)

            return isolated
        return attr


class CcxtExchange:
    """A ccxt async exchange behind the venue port; `markets` maps our instrument ids to ccxt symbols."""

    def __init__(
        self,
        name: str,
        exchange: ccxt_async.Exchange,
        markets: Mapping[str, str],
        clock: Clock,
        *,
        retry: RetryPolicy | None = None,
        capabilities: Capabilities | None = None,
        poll_interval: float = 1.0,
        reconcile_interval: float = 30.0,
        funding_interval: float = 60.0,
        book_depth: int = 20,
        fills_lookback_ns: int = 0,
    ) -> None:
        """`poll_interval` (s): REST polling when there are no websockets; `reconcile_interval` (s):
        REST reconciliation beside websockets; `funding_interval` (s): funding-rate polling;
        `fills_lookback_ns`: how far before `stream()` starts the reconciliation looks for fills."""
        self.name = name
        self.exchange: Any = DecimalIsolated(exchange)
        self.markets = dict(markets)
        self.clock = clock
        self.retry = retry or RetryPolicy()
        self.capabilities = capabilities or capabilities_for(str(exchange.id))
        self.poll_interval = poll_interval
        self.reconcile_interval = reconcile_interval
        self.funding_interval = funding_interval
        self.book_depth = book_depth
        self.fills_lookback_ns = fills_lookback_ns
        self.last_state: VenueState | None = None  # the latest snapshot a reconciliation read
        self._order_states: dict[str, tuple[OrderStatus, Decimal]] = {}  # reported, per client id
        self._seen_fills: set[tuple[str, str]] = set()  # (instrument, trade id) reported
        self._funding_intervals: dict[str, float] | None = None  # ccxt symbol -> hours
        self.current_stream: CcxtStream | None = None  # the latest `stream()`, for its counters
        self._random = random.Random(self.retry.seed)
        self._instruments = {symbol: inst for inst, symbol in self.markets.items()}
        self._order_symbols: dict[str, str] = {}  # client order id -> ccxt symbol
        self._order_ids: dict[str, str] = {}  # venue order id -> client order id
        self._markets_loaded = False

    # -- retries ---------------------------------------------------------------------------------

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based)."""
        ceiling = min(self.retry.max_delay, self.retry.base_delay * 2 ** (attempt - 1))
        return float(ceiling / 2 + self._random.uniform(0, ceiling / 2))

    def reconnect_delay(self, attempt: int) -> float:
        """Seconds before reconnecting a dropped websocket, after `attempt` failures in a row."""
        return min(self.backoff(attempt), self.capabilities.stream_reconnect_max_delay)

    def retry_after(self, err: Exception) -> float:
        """The `Retry-After` (s) of the response that raised a rate-limit error, else 0."""
        if not isinstance(err, ccxt.DDoSProtection):
            return 0.0
        headers = getattr(self.exchange, "last_response_headers", None) or {}
        for key, value in headers.items():
            if str(key).lower() == "retry-after":
                try:
                    return max(0.0, float(value))
                except ValueError:  # an HTTP date: fall back to the backoff
                    return 0.0
        return 0.0

    def _delay(self, attempt: int, err: Exception) -> float:
        return max(self.backoff(attempt), self.retry_after(err))

    async def _retrying(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run an idempotent call, retrying network errors; `VenueUnavailable` when exhausted."""
        attempt = 0
        while True:
            try:
                return await call()
            except RETRYABLE as err:
                attempt += 1
                if attempt >= self.retry.max_attempts:
                    raise VenueUnavailable(self.name, operation, attempt, err) from err
                await asyncio.sleep(self._delay(attempt, err))

    async def _ensure_markets(self) -> None:
        if not self._markets_loaded:
            await self._retrying("load_markets", self.exchange.load_markets)
            self._markets_loaded = True

    def _symbol(self, instrument: str) -> str:
        try:
            return self.markets[instrument]
        except KeyError:
            raise PerpetuaError(f"{self.name}: unknown instrument {instrument!r}") from None

    # -- conversions -----------------------------------------------------------------------------

    def _update(self, order: Mapping[str, Any], client_order_id: str | None = None) -> OrderUpdate:
        coid = client_order_id or str(order.get("clientOrderId") or "")
        venue_id = str(order.get("id") or "")
        if venue_id and coid:
            self._order_ids[venue_id] = coid
        filled = _dec(order.get("filled"))
        status = _STATUS.get(str(order.get("status")))
        if status is None:  # open (or unknown): resting
            status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED
        average = order.get("average")
        return OrderUpdate(
            ts=_ms_to_ns(order.get("timestamp"), self.clock.now_ns()),
            venue=self.name,
            client_order_id=coid,
            status=status,
            venue_order_id=venue_id,
            filled_quantity=filled,
            average_price=_dec(average) if average is not None and filled > 0 else None,
        )

    def _rejected(self, client_order_id: str, reason: str) -> OrderUpdate:
        return OrderUpdate(
            self.clock.now_ns(), self.name, client_order_id, OrderStatus.REJECTED, reason=reason
        )

    def _params(self, request: OrderRequest) -> dict[str, Any]:
        caps = self.capabilities
        params: dict[str, Any] = {caps.client_order_id_param: request.client_order_id}
        if request.post_only:
            params.update(caps.post_only_params)
        elif request.order_type is OrderType.LIMIT and request.time_in_force is not TimeInForce.GTC:
            params[caps.time_in_force_param] = request.time_in_force.value.upper()
        if request.reduce_only:
            params[caps.reduce_only_param] = True
        return params

    # -- execution -------------------------------------------------------------------------------

    async def _lookup(self, symbol: str, client_order_id: str) -> dict[str, Any] | None:
        """The order with this client order id on the exchange, or None if it never arrived."""
        try:
            order: dict[str, Any] = await self.exchange.fetch_order(
                None, symbol, {"clientOrderId": client_order_id}
            )
        except ccxt.OrderNotFound:
            return None
        except ccxt.NotSupported:
            opened = await self.exchange.fetch_open_orders(symbol)
            found = [o for o in opened if o.get("clientOrderId") == client_order_id]
            return found[0] if found else None
        return order

    async def submit(self, request: Request) -> OrderUpdate:
        """Send an order; the exchange's acknowledgement, or REJECTED with the exchange's reason."""
        if not isinstance(request, OrderRequest):
            return self._rejected(request.client_order_id, f"{self.name}: only OrderRequest is supported")
        coid = request.client_order_id
        if request.instrument not in self.markets:
            return self._rejected(coid, f"instrument: unknown instrument {request.instrument!r}")
        symbol = self.markets[request.instrument]
        await self._ensure_markets()
        if request.reduce_only and not self.exchange.market(symbol).get("contract"):
            return self._rejected(coid, f"reduce_only: {symbol} is not a derivatives market")
        # An id sent before (a retry by the caller) is looked up first: exchanges accept a client
        # order id again once its first order is closed, which would trade twice.
        sent = coid in self._order_symbols
        self._order_symbols[coid] = symbol
        params = self._params(request)
        price = float(request.price) if request.price is not None else None
        attempt = 0
        while True:
            try:
                if sent:
                    existing = await self._lookup(symbol, coid)
                    if existing is not None:
                        update = self._update(existing, coid)
                        self._note_update(update)
                        return update
                sent = True
                order = await self.exchange.create_order(
                    symbol,
                    request.order_type.value,
                    request.side.value,
                    float(request.quantity),
                    price,
                    dict(params),
                )
                update = self._update(order, coid)
                self._note_update(update)
                return update
            except RAISED:
                raise
            except REJECTIONS as err:
                return self._rejected(coid, str(err))
            except RETRYABLE as err:
                attempt += 1
                if attempt >= self.retry.max_attempts:
                    raise VenueUnavailable(self.name, f"submit {coid}", attempt, err) from err
                await asyncio.sleep(self._delay(attempt, err))

    async def cancel(self, client_order_id: str) -> OrderUpdate:
        """Cancel by client order id; an id we never sent, or an order already gone, is REJECTED."""
        symbol = self._order_symbols.get(client_order_id)
        if symbol is None:
            return self._rejected(client_order_id, f"client_order_id: unknown order {client_order_id!r}")
        params = {"clientOrderId": client_order_id}
        try:
            order = await self._retrying(
                f"cancel {client_order_id}", lambda: self.exchange.cancel_order(None, symbol, dict(params))
            )
        except (ccxt.OrderNotFound, ccxt.InvalidOrder, ccxt.OperationRejected) as err:
            return self._rejected(client_order_id, str(err))
        update = self._update(order, client_order_id)
        if update.status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
            update = update._replace(status=OrderStatus.CANCELLED)
        self._note_update(update)
        return update

    async def fetch_order_update(self, client_order_id: str) -> OrderUpdate | None:
        """The exchange's current state of one of our orders, or None if it does not know it."""
        symbol = self._order_symbols.get(client_order_id)
        if symbol is None:
            return None
        order = await self._retrying(
            f"fetch_order {client_order_id}", lambda: self._lookup(symbol, client_order_id)
        )
        return self._update(order, client_order_id) if order is not None else None

    # -- exactly once ----------------------------------------------------------------------------

    def _note_update(self, update: OrderUpdate) -> bool:
        """Record an order state; True if it was not reported before (then it is to be emitted)."""
        if update.status is OrderStatus.REJECTED or not update.client_order_id:
            return True
        key = (update.status, update.filled_quantity)
        previous = self._order_states.get(update.client_order_id)
        if previous == key or (previous is not None and previous[0].is_terminal):
            return False
        if previous is not None and previous[1] > update.filled_quantity:
            return False  # an older state arriving late (REST read before a websocket push)
        self._order_states[update.client_order_id] = key
        return True

    def _note_fill(self, fill: Fill) -> bool:
        """Record a fill; True the first time its trade id is seen."""
        key = (fill.instrument, fill.trade_id)
        if not fill.trade_id:
            return True
        if key in self._seen_fills:
            return False
        self._seen_fills.add(key)
        return True

    def _unfinished_orders(self) -> list[str]:
        """Client order ids last reported open (accepted or partially filled)."""
        return [coid for coid, (status, _) in self._order_states.items() if not status.is_terminal]

    async def snapshot(self) -> VenueState:
        """Total balances per asset and the open orders of our instruments, as the exchange reports."""
        await self._ensure_markets()
        balance = await self._retrying("fetch_balance", self.exchange.fetch_balance)
        totals = balance.get("total") or {}
        balances = {str(asset): _dec(amount) for asset, amount in totals.items() if amount is not None}
        open_orders: list[OrderUpdate] = []
        for symbol in self.markets.values():
            orders = await self._retrying(
                "fetch_open_orders",
                lambda s=symbol: self.exchange.fetch_open_orders(s),  # type: ignore[misc]
            )
            for order in orders:
                update = self._update(order)
                self._order_symbols.setdefault(update.client_order_id, symbol)
                open_orders.append(update)
        return VenueState(self.name, self.clock.now_ns(), balances, tuple(open_orders))

    # -- market data and fills -------------------------------------------------------------------

    async def fetch_quote(self, instrument: str) -> Quote:
        """Top of book from the ticker endpoint."""
        symbol = self._symbol(instrument)
        await self._ensure_markets()
        t = await self._retrying("fetch_ticker", lambda: self.exchange.fetch_ticker(symbol))
        return self._quote(instrument, t)

    def _quote(self, instrument: str, t: Mapping[str, Any]) -> Quote:
        """A ccxt ticker (or bids/asks entry) as a `Quote`; missing sides are NaN."""
        nan = float("nan")

        def num(key: str) -> float:
            value = t.get(key)
            return float(value) if value is not None else nan

        return Quote(
            _ms_to_ns(t.get("timestamp"), self.clock.now_ns()),
            self.name,
            instrument,
            num("bid"),
            num("ask"),
            num("bidVolume"),
            num("askVolume"),
        )

    async def fetch_book(self, instrument: str, depth: int = 20) -> BookUpdate:
        """An order-book snapshot, best `depth` levels a side."""
        symbol = self._symbol(instrument)
        await self._ensure_markets()
        book = await self._retrying("fetch_order_book", lambda: self.exchange.fetch_order_book(symbol, depth))
        return self._book(instrument, book, depth)

    def _book(self, instrument: str, book: Mapping[str, Any], depth: int) -> BookUpdate:
        """A ccxt order book as a `BookUpdate` snapshot of the best `depth` levels a side."""

        def levels(side: str) -> tuple[tuple[float, float], ...]:
            return tuple((float(lv[0]), float(lv[1])) for lv in book.get(side, [])[:depth])

        return BookUpdate(
            _ms_to_ns(book.get("timestamp"), self.clock.now_ns()),
            self.name,
            instrument,
            levels("bids"),
            levels("asks"),
        )

    def _fill(self, instrument: str, trade: Mapping[str, Any]) -> Fill:
        fee = trade.get("fee") or {}
        order_id = str(trade.get("order") or "")
        return Fill(
            ts=_ms_to_ns(trade.get("timestamp"), self.clock.now_ns()),
            venue=self.name,
            instrument=instrument,
            client_order_id=str(trade.get("clientOrderId") or self._order_ids.get(order_id, order_id)),
            side=Side(str(trade["side"])),
            price=_dec(trade.get("price")),
            quantity=_dec(trade.get("amount")),
            fee=_dec(fee.get("cost")),
            fee_asset=str(fee.get("currency") or ""),
            liquidity=Liquidity.MAKER if trade.get("takerOrMaker") == "maker" else Liquidity.TAKER,
            trade_id=str(trade.get("id") or ""),
        )

    async def fills_since(self, ts: int) -> list[Fill]:
        """Our executions at or after `ts` (ns) on every instrument, oldest first."""
        await self._ensure_markets()
        since_ms = ts // 1_000_000
        fills: list[Fill] = []
        for instrument, symbol in self.markets.items():
            trades = await self._retrying(
                "fetch_my_trades",
                lambda s=symbol: self.exchange.fetch_my_trades(s, since_ms),  # type: ignore[misc]
            )
            fills.extend(self._fill(instrument, t) for t in trades)
        fills = [f for f in fills if f.ts >= ts]
        fills.sort(key=lambda f: f.ts)
        return fills

    def _public_trade(self, instrument: str, trade: Mapping[str, Any]) -> Trade:
        side = trade.get("side")
        return Trade(
            ts=_ms_to_ns(trade.get("timestamp"), self.clock.now_ns()),
            venue=self.name,
            instrument=instrument,
            price=float(trade["price"]),
            size=float(trade["amount"]),
            aggressor=Side(str(side)) if side in ("buy", "sell") else None,
            trade_id=str(trade.get("id") or ""),
        )

    # -- perpetuals ------------------------------------------------------------------------------

    async def _funding_interval_h(self, symbol: str) -> float:
        """The funding interval of a perpetual (h): the exchange's when it lists one, else the default."""
        if self._funding_intervals is None:
            intervals: dict[str, float] = {}
            if self.exchange.has.get("fetchFundingIntervals"):
                rows = await self._retrying(
                    "fetch_funding_intervals", lambda: self.exchange.fetch_funding_intervals()
                )
                for row in rows.values() if isinstance(rows, dict) else rows:
                    interval = str(row.get("interval") or "")
                    if interval.endswith("h"):
                        intervals[str(row.get("symbol"))] = float(interval[:-1])
            self._funding_intervals = intervals
        return self._funding_intervals.get(symbol, self.capabilities.funding_interval_h)

    async def fetch_funding_rate(self, instrument: str) -> FundingRate:
        """The current funding rate of a perpetual: fraction of notional longs pay per interval."""
        symbol = self._symbol(instrument)
        await self._ensure_markets()
        r = await self._retrying("fetch_funding_rate", lambda: self.exchange.fetch_funding_rate(symbol))
        interval = str(r.get("interval") or "")
        hours = float(interval[:-1]) if interval.endswith("h") else await self._funding_interval_h(symbol)
        nan = float("nan")

        def num(key: str) -> float:
            value = r.get(key)
            return float(value) if value is not None else nan

        return FundingRate(
            ts=_ms_to_ns(r.get("timestamp"), self.clock.now_ns()),
            venue=self.name,
            instrument=instrument,
            rate=float(r["fundingRate"]),
            interval_ns=int(hours * HOUR_NS),
            next_funding_ts=_ms_to_ns(r.get("fundingTimestamp") or r.get("nextFundingTimestamp"), 0),
            mark_price=num("markPrice"),
            index_price=num("indexPrice"),
        )

    async def positions(self) -> dict[str, PerpPosition]:
        """Open derivatives positions of our instruments (flat ones left out), as the exchange reports."""
        await self._ensure_markets()
        symbols = [s for s in self.markets.values() if self.exchange.market(s).get("contract")]
        if not symbols:
            return {}
        rows = await self._retrying("fetch_positions", lambda: self.exchange.fetch_positions(symbols))
        out: dict[str, PerpPosition] = {}
        for row in rows:
            instrument = self._instruments.get(str(row.get("symbol")))
            contracts = _dec(row.get("contracts"))
            if instrument is None or contracts == 0:
                continue
            size = contracts * _dec(row.get("contractSize") or 1)
            leverage = row.get("leverage")
            out[instrument] = PerpPosition(
                instrument=instrument,
                quantity=size if row.get("side") != "short" else -size,
                entry_price=_dec(row.get("entryPrice")),
                mark_price=_dec(row.get("markPrice")),
                unrealized_pnl=_dec(row.get("unrealizedPnl")),
                leverage=_dec(leverage) if leverage is not None else None,
            )
        return out

    # -- the stream ------------------------------------------------------------------------------

    def stream(self) -> AsyncIterator[Event]:
        """Quotes, books, public trades, funding, our order updates and fills of every instrument.

        Websockets (ccxt.pro `watch_*`) where the exchange has them, REST polling otherwise; a
        dropped websocket is reconnected with backoff and reconciled against REST, and every fill
        and order state is yielded exactly once (see `connectors.ccxt_stream`).
        """
        self.current_stream = CcxtStream(
            self,
            depth=self.book_depth,
            reconcile_interval=self.reconcile_interval,
            funding_interval=self.funding_interval,
        )
        return self.current_stream.events()

    async def close(self) -> None:
        """Close the ccxt client's HTTP session."""
        await self.exchange.close()
