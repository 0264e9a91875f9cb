"""Adapters of the live connectors on their local emulators: ccxt on the Binance spot emulator, the
Alpaca broker and Alpaca tokenization on the Alpaca emulator (all aiohttp on 127.0.0.1, port 0).

Fills come through each connector's `stream()`, drained in the background; time passes by giving
the event loop a turn (and, for the tokenization desk, by moving the emulator's clock past its
processing delay).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import ClassVar

import aiohttp
import ccxt.async_support as ccxt_async

from connectors.brokers.alpaca import AlpacaBroker
from connectors.ccxt_exchange import CcxtExchange, RetryPolicy
from connectors.emulators.alpaca import AlpacaAsset, AlpacaEmulator, Position
from connectors.emulators.alpaca_tokenization import TokenizationDesk
from connectors.emulators.binance import BinanceEmulator, BinanceSymbol, point_ccxt_at
from connectors.issuers.alpaca_tokenization import AlpacaTokenization, IssuerTerms, TokenListing
from core.calendar import MarketCalendar
from core.clock import LiveClock
from core.enums import OrderType, Side, TimeInForce
from core.events import Event
from core.orders import MintRequest, OrderRequest, Request
from tests.connectors.contract.adapter import StreamCollector, VenueAdapter

D = Decimal
KEY = "contract-key-not-real"
SECRET = "contract-secret-not-real"
REGULAR_NS = int(datetime(2025, 6, 10, 14, 0, tzinfo=UTC).timestamp()) * 10**9  # Tue 10:00 New York
DESK_DELAY_NS = 600 * 10**9


class SetClock:
    """The emulator's and the connector's clock, moved by the adapter."""

    def __init__(self, now: int) -> None:
        self.now = now

    def now_ns(self) -> int:
        return self.now


class LiveAdapter(VenueAdapter):
    """Common part: the stream drained in the background, time passing as a turn of the loop."""

    collector: StreamCollector

    def events(self) -> list[Event]:
        return self.collector.events

    async def pass_time(self) -> None:
        await asyncio.sleep(0.005)


class CcxtBinanceAdapter(LiveAdapter):
    family = "ccxt-binance-spot"
    tracked = frozenset({"USDT", "TSLAX"})
    pairs: ClassVar[dict[str, tuple[str, str]]] = {"TSLAX-USDT": ("TSLAX", "USDT")}

    @classmethod
    async def make(cls) -> CcxtBinanceAdapter:
        self = cls()
        self.emulator = BinanceEmulator(
            KEY, SECRET, [BinanceSymbol("TSLAX", "USDT")], balances={"USDT": D(100_000), "TSLAX": D(5)}
        )
        await self.emulator.start()
        self.emulator.set_book("TSLAXUSDT", [(D("249"), D("100"))], [(D("250"), D("100"))])
        options = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False}
        client = point_ccxt_at(
            ccxt_async.binance({"apiKey": KEY, "secret": SECRET, "options": options}), self.emulator.base_url
        )
        retry = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, seed=3)
        self.venue = CcxtExchange(
            "binance", client, {"TSLAX-USDT": "TSLAX/USDT"}, LiveClock(), retry=retry, poll_interval=0.01
        )
        self.collector = StreamCollector(self.venue)
        return self

    def valid_request(self, client_order_id: str) -> Request:
        return OrderRequest(client_order_id, "binance", "TSLAX-USDT", Side.BUY, D(1), OrderType.MARKET)

    def invalid_request(self, client_order_id: str) -> tuple[Request, str]:
        return OrderRequest(
            client_order_id, "binance", "NOPE-USDT", Side.BUY, D(1), OrderType.MARKET
        ), "instrument"

    async def close(self) -> None:
        await self.collector.close()
        await self.venue.close()
        await self.emulator.close()


class AlpacaBrokerAdapter(LiveAdapter):
    family = "alpaca-broker"
    tracked = frozenset({"USD", "TSLA"})
    pairs: ClassVar[dict[str, tuple[str, str]]] = {"TSLA": ("TSLA", "USD")}

    @classmethod
    async def make(cls, tokenization: TokenizationDesk | None = None) -> AlpacaBrokerAdapter:
        self = cls()
        self.clock = SetClock(REGULAR_NS)
        calendar = MarketCalendar(start="2025-06-01", end="2025-06-30")
        assets = [AlpacaAsset("TSLA"), AlpacaAsset("BRK.A", fractionable=False)]
        self.emulator = AlpacaEmulator(KEY, SECRET, calendar, self.clock, assets, D("10000"), tokenization)
        self.emulator.state.positions["TSLA"] = Position(D(10), D(2500))
        await self.emulator.start()
        self.emulator.set_quote("TSLA", D("249.50"), D("250.25"))
        self.http = aiohttp.ClientSession()
        self.broker = AlpacaBroker(
            "alpaca", self.emulator.base_url, KEY, SECRET, calendar, self.clock, self.http, backoff_s=0.001
        )
        self.venue = self.broker
        return self

    def start_stream(self) -> None:
        self.collector = StreamCollector(self.venue)

    def valid_request(self, client_order_id: str) -> Request:
        return OrderRequest(
            client_order_id, "alpaca", "TSLA", Side.BUY, D(2), OrderType.MARKET, time_in_force=TimeInForce.DAY
        )

    def invalid_request(self, client_order_id: str) -> tuple[Request, str]:
        request = OrderRequest(
            client_order_id,
            "alpaca",
            "BRK.A",
            Side.BUY,
            D("0.5"),
            OrderType.MARKET,
            time_in_force=TimeInForce.DAY,
        )
        return request, "quantity"

    async def close(self) -> None:
        await self.collector.close()
        await self.http.close()
        await self.emulator.close()


class AlpacaTokenizationAdapter(AlpacaBrokerAdapter):
    family = "alpaca-tokenization"
    tracked = frozenset({"USD", "TSLA"})  # the tokens land in an on-chain wallet, not in the account
    pairs: ClassVar[dict[str, tuple[str, str]]] = {"TSLAx/TSLA": ("TSLAx", "TSLA")}

    @classmethod
    async def make_desk(cls) -> AlpacaTokenizationAdapter:
        desk = TokenizationDesk({"TSLA": "TSLAx"}, min_qty=D(1), fee=D(5), delay_ns=DESK_DELAY_NS)
        self = await cls.make(desk)
        assert isinstance(self, AlpacaTokenizationAdapter)
        listing = TokenListing("TSLAx", "TSLA", "solana", "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU")
        self.venue = AlpacaTokenization(
            "alpaca-itn",
            self.broker,
            [listing],
            IssuerTerms(min_qty=D(1), fee=D(5)),
            poll_s=0.001,
            max_poll_s=0.01,
        )
        return self

    async def pass_time(self) -> None:
        self.clock.now += DESK_DELAY_NS // 4  # the desk completes a request DESK_DELAY_NS after it
        await asyncio.sleep(0.005)

    def valid_request(self, client_order_id: str) -> Request:
        return MintRequest(client_order_id, "alpaca-itn", "TSLAx", D(2), pay_asset="TSLA")

    def invalid_request(self, client_order_id: str) -> tuple[Request, str]:
        return MintRequest(client_order_id, "alpaca-itn", "TSLAx", D("0.5"), pay_asset="TSLA"), "quantity"


async def make_ccxt() -> VenueAdapter:
    return await CcxtBinanceAdapter.make()


async def make_alpaca_broker() -> VenueAdapter:
    adapter = await AlpacaBrokerAdapter.make()
    adapter.start_stream()
    return adapter


async def make_alpaca_tokenization() -> VenueAdapter:
    adapter = await AlpacaTokenizationAdapter.make_desk()
    adapter.start_stream()
    return adapter
