"""The Binance emulator's websockets with the real ccxt.pro client and the real aiohttp client.

Book: bids 249 x 10, 248 x 20; asks 250 x 1.5, 251 x 2. Account: 10000 USDT, 5 TSLAX.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt
import ccxt.pro as ccxt_pro
import pytest

from connectors.emulators.binance import BinanceEmulator, BinanceSymbol, point_ccxt_at

D = Decimal
API_KEY = "test-api-key-not-real"
API_SECRET = "test-api-secret-not-real"
SYMBOL = "TSLAX/USDT"
SYMBOL_ID = "TSLAXUSDT"
OPTIONS = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False}


@pytest.fixture
async def emulator() -> AsyncIterator[BinanceEmulator]:
    emu = BinanceEmulator(
        API_KEY, API_SECRET, [BinanceSymbol("TSLAX", "USDT")], balances={"USDT": D("10000"), "TSLAX": D("5")}
    )
    await emu.start()
    emu.set_book(
        SYMBOL_ID, [(D("249"), D("10")), (D("248"), D("20"))], [(D("250"), D("1.5")), (D("251"), D("2"))]
    )
    yield emu
    await emu.close()


def pro_client(emulator: BinanceEmulator, secret: str = API_SECRET) -> Any:
    client = ccxt_pro.binance({"apiKey": API_KEY, "secret": secret, "options": dict(OPTIONS)})
    return point_ccxt_at(client, emulator.base_url)


async def test_order_book_follows_depth_diffs_in_sequence(emulator: BinanceEmulator) -> None:
    client = pro_client(emulator)
    try:
        book = await client.watch_order_book(SYMBOL)
        assert book["bids"][:2] == [[249.0, 10.0], [248.0, 20.0]] and book["asks"][:2] == [
            [250.0, 1.5],
            [251.0, 2.0],
        ]
        # Our order adds a level; a market change removes one; a cancel removes ours again.
        order = await client.create_order(SYMBOL, "limit", "buy", 2, 249.5)
        book = await client.watch_order_book(SYMBOL)
        assert book["bids"][0] == [249.5, 2.0]
        emulator.set_book(SYMBOL_ID, [(D("248"), D("20"))], [(D("250"), D("1.5")), (D("251"), D("2"))])
        book = await client.watch_order_book(SYMBOL)
        assert book["bids"][:2] == [[249.5, 2.0], [248.0, 20.0]]
        await client.cancel_order(order["id"], SYMBOL)
        book = await client.watch_order_book(SYMBOL)
        assert book["bids"] == [[248.0, 20.0]] and book["asks"] == [[250.0, 1.5], [251.0, 2.0]]
        # Each push was the next update id: the REST snapshot's lastUpdateId + 1, + 2, + 3.
        assert book["nonce"] == emulator._versions[SYMBOL_ID]
        (sub,) = [m for m in emulator.streams.received if m.get("method") == "SUBSCRIBE"]
        assert sub["params"] == ["tslaxusdt@depth@100ms"]
    finally:
        await client.close()


async def test_user_stream_subscription_checks_the_signature(emulator: BinanceEmulator) -> None:
    client = pro_client(emulator, secret="test-wrong-secret")
    try:
        # ccxt 4.5.90 raises AuthenticationError, then trips over its own clean-up (a KeyError
        # chained to it): look for the exchange's answer anywhere in the chain.
        with pytest.raises(Exception) as info:
            await asyncio.wait_for(client.watch_orders(), 10)
        chain: list[BaseException] = []
        error: BaseException | None = info.value
        while error is not None:
            chain.append(error)
            error = error.__cause__ or error.__context__
        assert any(isinstance(e, ccxt.AuthenticationError) and "-1022" in str(e) for e in chain)
    finally:
        await client.close()
    (request,) = [
        m for m in emulator.streams.received if m.get("method") == "userDataStream.subscribe.signature"
    ]
    assert request["params"]["apiKey"] == API_KEY and len(request["params"]["signature"]) == 64
    assert emulator.streams.open_user_streams == 0


async def test_listen_key_stream_carries_execution_reports(emulator: BinanceEmulator) -> None:
    headers = {"X-MBX-APIKEY": API_KEY}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{emulator.base_url}/api/v3/userDataStream", headers=headers) as response:
            key = (await response.json())["listenKey"]
        async with session.ws_connect(f"{emulator.ws_url}/ws/{key}") as ws:
            client = pro_client(emulator)
            try:
                await client.create_order(SYMBOL, "market", "buy", 2)
            finally:
                await client.close()
            messages = [json.loads((await ws.receive()).data) for _ in range(6)]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{emulator.ws_url}/ws/not-a-key")
    assert refused.value.status == 400
    reports = [(m["x"], m["X"], m["l"], m["L"]) for m in messages if m["e"] == "executionReport"]
    # NEW, then 1.5 @ 250 and 0.5 @ 251.
    assert reports == [
        ("NEW", "NEW", "0.00000000", "0.00000000"),
        ("TRADE", "PARTIALLY_FILLED", "1.50000000", "250.00000000"),
        ("TRADE", "FILLED", "0.50000000", "251.00000000"),
    ]
    balances = [m["B"] for m in messages if m["e"] == "outboundAccountPosition"][-1]
    # 2 TSLAX less 0.1% fee; 1.5 x 250 + 0.5 x 251 = 500.5 USDT paid.
    assert balances == [
        {"a": "TSLAX", "f": "6.99800000", "l": "0.00000000"},
        {"a": "USDT", "f": "9499.50000000", "l": "0.00000000"},
    ]
