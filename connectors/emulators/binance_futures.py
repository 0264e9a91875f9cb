"""An in-process emulator of Binance USD-M futures (fapi), for the real `ccxt.binanceusdm`.

It reuses the spot emulator's plumbing (signature checks, faults, recorded requests, the matching
of orders against the configured outside levels, websockets) and changes what futures change:

- one-way mode positions (`positionSide` BOTH) per symbol: signed amount and entry price; fills
  move the position, realize PnL into the wallet on the reducing part, and charge the fee in the
  margin asset (USDT);
- margin instead of locked balances: an order needs `notional / leverage` of available balance
  (wallet + unrealized PnL - position margin - open-order margin), else -2019;
- `reduceOnly` orders must shrink the position (-2022 otherwise) and skip the notional minimum;
  post-only is `timeInForce=GTX`, refused with -5022 when it would take;
- the minimum notional is refused with -4164, as on Binance;
- mark price, index price and funding (`premiumIndex`, `fundingInfo` with the funding cap and
  interval, the `markPrice` stream); `settle_funding()` charges longs `amount * mark * rate`;
- user data by listen key (`/fapi/v1/listenKey`, `/private/ws?listenKey=`): ORDER_TRADE_UPDATE and
  ACCOUNT_UPDATE events.

Defaults follow Binance's TSLAUSDT (DOMAIN.md): tick 0.01, step and minimum 0.01 TSLA, 5 USDT
minimum notional, at most 5x leverage, funding every 4 h capped at +-2%.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiohttp import web

from connectors.emulators.binance import (
    ZERO,
    BinanceEmulator,
    BinanceError,
    BinanceSymbol,
    Handler,
    Order,
    fmt,
)

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class FuturesSymbol(BinanceSymbol):
    """A USD-M perpetual as `fapi/v1/exchangeInfo` lists it (id like `TSLAUSDT`)."""

    tick_size: Decimal = Decimal("0.01")
    step_size: Decimal = Decimal("0.01")
    min_qty: Decimal = Decimal("0.01")
    min_notional: Decimal = Decimal("5")
    max_leverage: int = 5
    funding_interval_h: int = 4
    funding_cap: Decimal = Decimal("0.02")
    maint_margin_rate: Decimal = Decimal("0.025")


@dataclass
class Position:
    """One-way mode position: signed amount (base units) and average entry price (USDT)."""

    amount: Decimal = ZERO
    entry_price: Decimal = ZERO


class BinanceFuturesEmulator(BinanceEmulator):
    """Binance USD-M futures REST + websockets on 127.0.0.1; the margin asset's wallet is `free`."""

    ORDER_TYPES = ("LIMIT", "MARKET")
    TIME_IN_FORCE = ("GTC", "IOC", "FOK", "GTX")

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        symbols: list[FuturesSymbol],
        balances: dict[str, Decimal] | None = None,
        maker_fee: Decimal = Decimal("0.0002"),
        taker_fee: Decimal = Decimal("0.0005"),
        recv_window_ms: int = 5000,
    ) -> None:
        super().__init__(api_key, api_secret, list(symbols), balances, maker_fee, taker_fee, recv_window_ms)
        self.futures: dict[str, FuturesSymbol] = {s.id: s for s in symbols}
        self.positions: dict[str, Position] = {s.id: Position() for s in symbols}
        self.leverage: dict[str, int] = {s.id: s.max_leverage for s in symbols}
        self.marks: dict[str, Decimal] = {}
        self.index_prices: dict[str, Decimal] = {}
        self.funding_rates: dict[str, Decimal] = {s.id: Decimal("0.0001") for s in symbols}
        self.next_funding_ms: dict[str, int] = {s.id: self._next_funding(s) for s in symbols}
        self.reduce_only: dict[int, bool] = {}  # order id -> reduceOnly
        self.realized: dict[int, Decimal] = {}  # trade id -> realized PnL
        self._last_realized = ZERO

    def _next_funding(self, s: FuturesSymbol) -> int:
        interval = s.funding_interval_h * HOUR_MS
        return (self._now() // interval + 1) * interval

    async def start(self) -> str:
        """Serve fapi REST and the futures websockets; returns `base_url`."""
        routes: list[tuple[str, str, Handler, bool]] = [
            ("GET", "/fapi/v1/ping", self._ping, False),
            ("GET", "/fapi/v1/time", self._time, False),
            ("GET", "/fapi/v1/exchangeInfo", self._exchange_info, False),
            ("GET", "/fapi/v1/depth", self._depth, False),
            ("GET", "/fapi/v1/ticker/24hr", self._ticker_24hr, False),
            ("GET", "/fapi/v1/ticker/bookTicker", self._book_ticker, False),
            ("GET", "/fapi/v1/premiumIndex", self._premium_index, False),
            ("GET", "/fapi/v1/fundingInfo", self._funding_info, False),
            ("GET", "/fapi/v1/leverageBracket", self._leverage_bracket, True),
            ("POST", "/fapi/v1/leverage", self._set_leverage, True),
            ("GET", "/fapi/v2/account", self._futures_account, True),
            ("GET", "/fapi/v3/account", self._futures_account, True),
            ("GET", "/fapi/v2/balance", self._futures_balance, True),
            ("GET", "/fapi/v3/balance", self._futures_balance, True),
            ("GET", "/fapi/v2/positionRisk", self._position_risk, True),
            ("GET", "/fapi/v3/positionRisk", self._position_risk, True),
            ("POST", "/fapi/v1/order", self._new_order, True),
            ("DELETE", "/fapi/v1/order", self._cancel_order, True),
            ("GET", "/fapi/v1/order", self._query_order, True),
            ("GET", "/fapi/v1/openOrders", self._open_orders, True),
            ("GET", "/fapi/v1/allOrders", self._all_orders, True),
            ("GET", "/fapi/v1/userTrades", self._my_trades, True),
            ("POST", "/fapi/v1/listenKey", self._new_listen_key, False),
            ("PUT", "/fapi/v1/listenKey", self._keep_listen_key, False),
            ("DELETE", "/fapi/v1/listenKey", self._close_listen_key, False),
        ]
        return await self._serve(routes)

    # -- test controls ---------------------------------------------------------------------------

    def set_mark(
        self,
        symbol_id: str,
        mark: Decimal,
        index: Decimal | None = None,
        funding_rate: Decimal | None = None,
    ) -> None:
        """Set the mark (and index) price and the current funding rate (clamped to the cap)."""
        s = self.futures[symbol_id]
        self.marks[symbol_id] = mark
        self.index_prices[symbol_id] = index if index is not None else mark
        if funding_rate is not None:
            self.funding_rates[symbol_id] = max(-s.funding_cap, min(s.funding_cap, funding_rate))
        self.streams.publish(f"{symbol_id.lower()}@markPrice", self._mark_event(symbol_id))

    def settle_funding(self, symbol_id: str) -> Decimal:
        """Charge this interval's funding: longs pay `amount * mark * rate` (negative: receive)."""
        position = self.positions[symbol_id]
        s = self.futures[symbol_id]
        payment = position.amount * self.mark(symbol_id) * self.funding_rates[symbol_id]
        self.free[s.quote] = self.free.get(s.quote, ZERO) - payment
        self.next_funding_ms[symbol_id] += s.funding_interval_h * HOUR_MS
        return payment

    def mark(self, symbol_id: str) -> Decimal:
        """The mark price: set by the test, else the mid of the visible book, else the last trade."""
        if symbol_id in self.marks:
            return self.marks[symbol_id]
        bids, asks = self._levels(symbol_id)
        if bids and asks:
            return (Decimal(bids[0][0]) + Decimal(asks[0][0])) / 2
        last = [t for t in self.trades if t["symbol"] == symbol_id]
        return Decimal(last[-1]["price"]) if last else ZERO

    def unrealized(self, symbol_id: str) -> Decimal:
        p = self.positions[symbol_id]
        return (self.mark(symbol_id) - p.entry_price) * p.amount if p.amount else ZERO

    def wallet(self, asset: str = "USDT") -> Decimal:
        return self.free.get(asset, ZERO)

    def margin_balance(self, asset: str = "USDT") -> Decimal:
        """Wallet plus unrealized PnL of the positions margined in `asset`."""
        return self.wallet(asset) + sum(
            (self.unrealized(s.id) for s in self.futures.values() if s.quote == asset), ZERO
        )

    def _position_margin(self, symbol_id: str) -> Decimal:
        p = self.positions[symbol_id]
        return abs(p.amount) * self.mark(symbol_id) / self.leverage[symbol_id]

    def _order_margin(self, order: Order) -> Decimal:
        if self.reduce_only.get(order.order_id) or order.status not in ("NEW", "PARTIALLY_FILLED"):
            return ZERO
        return order.remaining * order.price / self.leverage[order.symbol]

    def available(self, asset: str = "USDT") -> Decimal:
        """Margin balance less the initial margin of positions and open orders."""
        used = sum((self._position_margin(s.id) for s in self.futures.values() if s.quote == asset), ZERO)
        used += sum((self._order_margin(o) for o in self.orders.values()), ZERO)
        return self.margin_balance(asset) - used

    # -- order hooks -----------------------------------------------------------------------------

    def _is_post_only(self, order_type: str, tif: str | None) -> bool:
        return tif == "GTX"

    def _post_only_error(self) -> BinanceError:
        return BinanceError(
            -5022, "Due to the order could not be executed as maker, the Post Only order will be rejected."
        )

    def _notional_error(self, s: BinanceSymbol) -> BinanceError:
        return BinanceError(
            -4164,
            f"Order's notional must be no smaller than {s.min_notional} (unless you choose reduce only).",
        )

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
        if params.get("reduceOnly", "false").lower() == "true":
            amount = self.positions[s.id].amount
            if amount == 0 or (amount > 0) == (side == "BUY") or qty > abs(amount):
                raise BinanceError(-2022, "ReduceOnly Order is rejected.")
            return
        notional = cost if order_type == "MARKET" else qty * price
        if notional / self.leverage[s.id] > self.available(s.quote):
            raise BinanceError(-2019, "Margin is insufficient.")

    def _min_notional(self, s: BinanceSymbol, params: dict[str, str]) -> Decimal:
        """Reduce-only orders are exempt from the minimum notional."""
        return ZERO if params.get("reduceOnly", "false").lower() == "true" else s.min_notional

    def _new_order_extra(self, order: Order, params: dict[str, str]) -> None:
        self.reduce_only[order.order_id] = params.get("reduceOnly", "false").lower() == "true"

    def _lock(self, order: Order) -> None:
        """Futures reserve margin, computed from the open orders, not locked balances."""

    def _release(self, order: Order) -> None:
        """Nothing locked to release (see `_lock`)."""

    def _settle(
        self, order: Order, take: Decimal, fill_price: Decimal, fee_rate: Decimal
    ) -> tuple[Decimal, str]:
        s = self.futures[order.symbol]
        position = self.positions[order.symbol]
        signed = take if order.side == "BUY" else -take
        realized = ZERO
        if position.amount == 0 or (position.amount > 0) == (signed > 0):
            total = position.amount + signed
            position.entry_price = (position.entry_price * abs(position.amount) + fill_price * take) / abs(
                total
            )
            position.amount = total
        else:
            closed = min(abs(position.amount), take)
            direction = 1 if position.amount > 0 else -1
            realized = (fill_price - position.entry_price) * closed * direction
            position.amount += signed
            if position.amount == 0:
                position.entry_price = ZERO
            elif (position.amount > 0) != (direction > 0):  # flipped: the rest opens at the fill price
                position.entry_price = fill_price
        commission = take * fill_price * fee_rate
        self.free[s.quote] = self.free.get(s.quote, ZERO) + realized - commission
        self._last_realized = realized
        return commission, s.quote

    # -- formats ---------------------------------------------------------------------------------

    def _order_json(self, order: Order, *, with_fills: bool = False) -> dict[str, Any]:
        average = order.cum_quote / order.executed_qty if order.executed_qty else ZERO
        return {
            "orderId": order.order_id,
            "symbol": order.symbol,
            "status": order.status,
            "clientOrderId": order.client_order_id,
            "price": fmt(order.price),
            "avgPrice": fmt(average),
            "origQty": fmt(order.orig_qty),
            "executedQty": fmt(order.executed_qty),
            "cumQty": fmt(order.executed_qty),
            "cumQuote": fmt(order.cum_quote),
            "timeInForce": order.time_in_force or "GTC",
            "type": order.type,
            "reduceOnly": self.reduce_only.get(order.order_id, False),
            "closePosition": False,
            "side": order.side,
            "positionSide": "BOTH",
            "stopPrice": fmt(ZERO),
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": order.type,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
            "time": order.time_ms,
            "updateTime": self._now(),
        }

    def _trade_json(self, order: Order, trade: dict[str, Any]) -> dict[str, Any]:
        self.realized[int(trade["id"])] = self._last_realized
        return {
            "buyer": trade["isBuyer"],
            "commission": trade["commission"],
            "commissionAsset": trade["commissionAsset"],
            "id": trade["id"],
            "maker": trade["isMaker"],
            "orderId": trade["orderId"],
            "price": trade["price"],
            "qty": trade["qty"],
            "quoteQty": trade["quoteQty"],
            "realizedPnl": fmt(self._last_realized),
            "side": order.side,
            "positionSide": "BOTH",
            "symbol": trade["symbol"],
            "time": trade["time"],
        }

    def _depth_extra(self, version: int, now: int) -> dict[str, Any]:
        return {"T": now, "pu": version - 1}

    def _book_ticker_extra(self, now: int) -> dict[str, Any]:
        return {"e": "bookTicker", "E": now, "T": now}

    def _report(self, order: Order, execution: str, fill: dict[str, Any] | None = None) -> None:
        now = self._now()
        fill = fill or {}
        average = order.cum_quote / order.executed_qty if order.executed_qty else ZERO
        self.streams.publish_user(
            {
                "e": "ORDER_TRADE_UPDATE",
                "E": now,
                "T": now,
                "o": {
                    "s": order.symbol,
                    "c": order.client_order_id,
                    "S": order.side,
                    "o": order.type,
                    "f": order.time_in_force or "GTC",
                    "q": fmt(order.orig_qty),
                    "p": fmt(order.price),
                    "ap": fmt(average),
                    "sp": fmt(ZERO),
                    "x": execution,
                    "X": order.status,
                    "i": order.order_id,
                    "l": fill.get("qty", fmt(ZERO)),
                    "z": fmt(order.executed_qty),
                    "L": fill.get("price", fmt(ZERO)),
                    "N": fill.get("commissionAsset", "USDT"),
                    "n": fill.get("commission", fmt(ZERO)),
                    "T": fill.get("time", now),
                    "t": fill.get("tradeId", 0),
                    "b": fmt(ZERO),
                    "a": fmt(ZERO),
                    "m": bool(fill.get("maker", False)),
                    "R": self.reduce_only.get(order.order_id, False),
                    "wt": "CONTRACT_PRICE",
                    "ot": order.type,
                    "ps": "BOTH",
                    "cp": False,
                    "rp": fmt(self._last_realized if fill else ZERO),
                    "pP": False,
                    "si": 0,
                    "ss": 0,
                    "V": "EXPIRE_MAKER",
                    "pm": "NONE",
                    "gtd": 0,
                },
            }
        )
        if execution == "TRADE":
            p = self.positions[order.symbol]
            s = self.futures[order.symbol]
            self.streams.publish_user(
                {
                    "e": "ACCOUNT_UPDATE",
                    "E": now,
                    "T": now,
                    "a": {
                        "m": "ORDER",
                        "B": [
                            {
                                "a": s.quote,
                                "wb": fmt(self.wallet(s.quote)),
                                "cw": fmt(self.wallet(s.quote)),
                                "bc": "0",
                            }
                        ],
                        "P": [
                            {
                                "s": order.symbol,
                                "pa": fmt(p.amount),
                                "ep": fmt(p.entry_price),
                                "bep": fmt(p.entry_price),
                                "cr": "0",
                                "up": fmt(self.unrealized(order.symbol)),
                                "mt": "cross",
                                "iw": "0",
                                "ps": "BOTH",
                            }
                        ],
                    },
                }
            )

    def _mark_event(self, symbol_id: str) -> dict[str, Any]:
        now = self._now()
        return {
            "e": "markPriceUpdate",
            "E": now,
            "s": symbol_id,
            "p": fmt(self.mark(symbol_id)),
            "ap": fmt(self.mark(symbol_id)),
            "P": fmt(self.index_prices.get(symbol_id, self.mark(symbol_id))),
            "i": fmt(self.index_prices.get(symbol_id, self.mark(symbol_id))),
            "r": fmt(self.funding_rates[symbol_id]),
            "T": self.next_funding_ms[symbol_id],
        }

    # -- endpoints -------------------------------------------------------------------------------

    async def _depth(self, request: web.Request, params: dict[str, str]) -> web.Response:
        s = self._symbol(params)
        limit = int(params.get("limit", "100"))
        bids, asks = self._levels(s.id)
        now = self._now()
        version = self._versions[s.id]
        return web.json_response(
            {"lastUpdateId": version, "E": now, "T": now, "bids": bids[:limit], "asks": asks[:limit]}
        )

    async def _exchange_info(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": self._now(),
                "futuresType": "U_MARGINED",
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": 2400,
                    },
                    {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                ],
                "exchangeFilters": [],
                "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
                "symbols": [self._futures_info(s) for s in self.futures.values()],
            }
        )

    @staticmethod
    def _futures_info(s: FuturesSymbol) -> dict[str, Any]:
        def places(step: Decimal) -> int:
            return max(0, -int(step.normalize().as_tuple().exponent))

        return {
            "symbol": s.id,
            "pair": s.id,
            "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000,
            "status": "TRADING",
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "baseAsset": s.base,
            "quoteAsset": s.quote,
            "marginAsset": s.quote,
            "pricePrecision": places(s.tick_size),
            "quantityPrecision": places(s.step_size),
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "underlyingSubType": ["TradFi"],
            "triggerProtect": "0.0500",
            "liquidationFee": "0.012500",
            "marketTakeBound": "0.05",
            "maxMoveOrderLimit": 10000,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": fmt(s.tick_size),
                    "maxPrice": "1000000",
                    "tickSize": fmt(s.tick_size),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": fmt(s.min_qty),
                    "maxQty": "100000",
                    "stepSize": fmt(s.step_size),
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": fmt(s.min_qty),
                    "maxQty": "10000",
                    "stepSize": fmt(s.step_size),
                },
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MIN_NOTIONAL", "notional": fmt(s.min_notional)},
                {
                    "filterType": "PERCENT_PRICE",
                    "multiplierUp": "1.0500",
                    "multiplierDown": "0.9500",
                    "multiplierDecimal": "4",
                },
            ],
            "orderTypes": ["LIMIT", "MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
            "permissionSets": ["GRID", "COPY"],
        }

    async def _premium_index(self, request: web.Request, params: dict[str, str]) -> web.Response:
        def make(s: BinanceSymbol) -> dict[str, Any]:
            mark = self.mark(s.id)
            return {
                "symbol": s.id,
                "markPrice": fmt(mark),
                "indexPrice": fmt(self.index_prices.get(s.id, mark)),
                "estimatedSettlePrice": fmt(mark),
                "lastFundingRate": fmt(self.funding_rates[s.id]),
                "interestRate": "0.00010000",
                "nextFundingTime": self.next_funding_ms[s.id],
                "time": self._now(),
            }

        return web.json_response(self._per_symbol(params, make))

    async def _funding_info(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return web.json_response(
            [
                {
                    "symbol": s.id,
                    "adjustedFundingRateCap": fmt(s.funding_cap),
                    "adjustedFundingRateFloor": fmt(-s.funding_cap),
                    "fundingIntervalHours": s.funding_interval_h,
                    "disclaimer": False,
                }
                for s in self.futures.values()
            ]
        )

    async def _leverage_bracket(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return web.json_response(
            [
                {
                    "symbol": s.id,
                    "brackets": [
                        {
                            "bracket": 1,
                            "initialLeverage": s.max_leverage,
                            "notionalCap": 1_000_000,
                            "notionalFloor": 0,
                            "maintMarginRatio": float(s.maint_margin_rate),
                            "cum": 0.0,
                        }
                    ],
                }
                for s in self.futures.values()
            ]
        )

    async def _set_leverage(self, request: web.Request, params: dict[str, str]) -> web.Response:
        s = self.futures[self._symbol(params).id]
        leverage = int(self._require(params, "leverage"))
        if not 1 <= leverage <= s.max_leverage:
            raise BinanceError(-4028, f"Leverage {leverage} is not valid")
        self.leverage[s.id] = leverage
        return web.json_response({"leverage": leverage, "maxNotionalValue": "1000000", "symbol": s.id})

    def _asset_row(self, asset: str) -> dict[str, Any]:
        used = self.margin_balance(asset) - self.available(asset)
        return {
            "asset": asset,
            "walletBalance": fmt(self.wallet(asset)),
            "unrealizedProfit": fmt(self.margin_balance(asset) - self.wallet(asset)),
            "marginBalance": fmt(self.margin_balance(asset)),
            "maintMargin": fmt(ZERO),
            "initialMargin": fmt(used),
            "positionInitialMargin": fmt(sum((self._position_margin(s) for s in self.futures), ZERO)),
            "openOrderInitialMargin": fmt(sum((self._order_margin(o) for o in self.orders.values()), ZERO)),
            "crossWalletBalance": fmt(self.wallet(asset)),
            "crossUnPnl": fmt(self.margin_balance(asset) - self.wallet(asset)),
            "availableBalance": fmt(self.available(asset)),
            "maxWithdrawAmount": fmt(self.available(asset)),
            "updateTime": self._now(),
        }

    async def _futures_account(self, request: web.Request, params: dict[str, str]) -> web.Response:
        assets = [self._asset_row(a) for a in sorted(self.free)]
        return web.json_response(
            {
                "totalWalletBalance": fmt(self.wallet()),
                "totalUnrealizedProfit": fmt(self.margin_balance() - self.wallet()),
                "totalMarginBalance": fmt(self.margin_balance()),
                "availableBalance": fmt(self.available()),
                "maxWithdrawAmount": fmt(self.available()),
                "assets": assets,
                "positions": [self._position_row(s) for s in self.futures],
            }
        )

    async def _futures_balance(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return web.json_response(
            [
                {
                    "accountAlias": "emulator",
                    "asset": a,
                    "balance": fmt(self.wallet(a)),
                    "crossWalletBalance": fmt(self.wallet(a)),
                    "crossUnPnl": fmt(self.margin_balance(a) - self.wallet(a)),
                    "availableBalance": fmt(self.available(a)),
                    "maxWithdrawAmount": fmt(self.available(a)),
                    "marginAvailable": True,
                    "updateTime": self._now(),
                }
                for a in sorted(self.free)
            ]
        )

    def _position_row(self, symbol_id: str) -> dict[str, Any]:
        p = self.positions[symbol_id]
        mark = self.mark(symbol_id)
        return {
            "symbol": symbol_id,
            "positionSide": "BOTH",
            "positionAmt": fmt(p.amount),
            "entryPrice": fmt(p.entry_price),
            "breakEvenPrice": fmt(p.entry_price),
            "markPrice": fmt(mark),
            "unRealizedProfit": fmt(self.unrealized(symbol_id)),
            "unrealizedProfit": fmt(self.unrealized(symbol_id)),
            "liquidationPrice": "0",
            "isolatedMargin": "0",
            "notional": fmt(p.amount * mark),
            "marginAsset": self.futures[symbol_id].quote,
            "isolatedWallet": "0",
            "initialMargin": fmt(self._position_margin(symbol_id)),
            "maintMargin": fmt(abs(p.amount) * mark * self.futures[symbol_id].maint_margin_rate),
            "positionInitialMargin": fmt(self._position_margin(symbol_id)),
            "openOrderInitialMargin": "0",
            "adl": 0,
            "bidNotional": "0",
            "askNotional": "0",
            "leverage": str(self.leverage[symbol_id]),
            "marginType": "cross",
            "updateTime": self._now(),
        }

    async def _position_risk(self, request: web.Request, params: dict[str, str]) -> web.Response:
        ids = [self._symbol(params).id] if "symbol" in params else list(self.futures)
        return web.json_response([self._position_row(i) for i in ids])
