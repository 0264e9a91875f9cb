"""Reconcile against the local Alpaca emulator through the real `AlpacaBroker`.

Alpaca's REST answers list no executions, only the cumulative filled quantity and average price,
so fills the journal missed are derived from them: priced so that the journal's average equals
Alpaca's. The emulator's executions are the independent reference (cash moves by qty x price).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

from bots.journal import Journal
from bots.journaling_venue import JournalingVenue
from bots.reconcile import Action, AlpacaOrderLookup, reconcile_venue
from connectors.brokers.alpaca import AlpacaBroker
from connectors.emulators.alpaca import AlpacaAsset, AlpacaEmulator
from core.calendar import MarketCalendar
from core.enums import OrderType, Side, TimeInForce
from core.events import Fill
from core.orders import OrderRequest

D = Decimal
KEY_ID = "journal-alpaca-key"
SECRET = "journal-alpaca-SECRET-4b1d-77"
REGULAR_NS = int(datetime(2025, 6, 10, 14, 0, tzinfo=UTC).timestamp()) * 10**9  # Tue 10:00 New York


class FixedClock:
    def now_ns(self) -> int:
        return REGULAR_NS


@pytest.fixture(scope="module")
def calendar() -> MarketCalendar:
    return MarketCalendar(start="2025-06-01", end="2025-06-30")


@pytest.fixture
async def emulator(calendar: MarketCalendar) -> AsyncIterator[AlpacaEmulator]:
    emu = AlpacaEmulator(KEY_ID, SECRET, calendar, FixedClock(), [AlpacaAsset("TSLA")], cash=D("10000"))
    await emu.start()
    emu.set_quote("TSLA", D("249.50"), D("250.25"))
    yield emu
    await emu.close()


@pytest.fixture
async def broker(emulator: AlpacaEmulator, calendar: MarketCalendar) -> AsyncIterator[AlpacaBroker]:
    async with aiohttp.ClientSession() as http:
        yield AlpacaBroker(
            "alpaca", emulator.base_url, KEY_ID, SECRET, calendar, FixedClock(), http, backoff_s=0.001
        )


def bid(coid: str) -> OrderRequest:
    return OrderRequest(coid, "alpaca", "TSLA", Side.BUY, D("10"), OrderType.LIMIT, D("240"), TimeInForce.DAY)


async def test_missed_fills_are_derived_from_the_cumulative_state(
    tmp_path: Path, emulator: AlpacaEmulator, broker: AlpacaBroker
) -> None:
    journal = await Journal.open(f"sqlite+aiosqlite:///{tmp_path / 'j.sqlite'}")
    try:
        first = await JournalingVenue(broker, journal, strategy_of=lambda _: "hedge").submit(bid("a-1"))
        assert first.status.value == "accepted"
        # The bot is down: 4 fill at 239.5 and 4 at 239 (Alpaca: filled 8, average 239.25).
        emulator.execute("a-1", D("4"), D("239.5"))
        emulator.execute("a-1", D("4"), D("239"))
        report = await reconcile_venue(journal, broker, lookup=AlpacaOrderLookup(broker))
        assert report.ids(Action.UPDATED) == ["a-1"] and report.fills_recorded == 1
        (fill,) = await journal.fills()
        assert (fill.quantity, fill.price, fill.side, fill.instrument) == (
            D("8"),
            D("239.25"),
            Side.BUY,
            "TSLA",
        )
        assert D("10000") - fill.quantity * fill.price == emulator.cash  # 8086
        order = await journal.order("a-1")
        assert order is not None and (order.status, order.filled_quantity) == ("partially_filled", D("8"))

        # Down again: the last 2 fill at 238.5 (average 239.1). The derived fill's price is exact.
        emulator.execute("a-1", D("2"), D("238.5"))
        again = await reconcile_venue(journal, broker, lookup=AlpacaOrderLookup(broker))
        assert again.fills_recorded == 1
        assert [(f.quantity, f.price) for f in await journal.fills()] == [
            (D("8"), D("239.25")),
            (D("2"), D("238.5")),
        ]
        order = await journal.order("a-1")
        assert order is not None and (order.status, order.filled_quantity) == ("filled", D("10"))
        assert D("10000") - sum(f.quantity * f.price for f in await journal.fills()) == emulator.cash
        # Nothing more to find: a third pass records nothing and sends nothing.
        third = await reconcile_venue(journal, broker, lookup=AlpacaOrderLookup(broker))
        assert third.fills_recorded == 0 and third.resolutions == []
        assert len(emulator.requests_to("/v2/orders", "POST")) == 1
    finally:
        await journal.close()


async def test_an_unsent_intent_is_sent_once_under_its_own_id(
    tmp_path: Path, emulator: AlpacaEmulator, broker: AlpacaBroker
) -> None:
    journal = await Journal.open(f"sqlite+aiosqlite:///{tmp_path / 'j.sqlite'}")
    try:
        await journal.record_intent(bid("a-2"), strategy="hedge")  # then the process died
        report = await reconcile_venue(journal, broker, lookup=AlpacaOrderLookup(broker))
        assert report.ids(Action.RESENT) == ["a-2"]
        again = await reconcile_venue(journal, broker, lookup=AlpacaOrderLookup(broker))
        assert again.ids(Action.UNCHANGED) == ["a-2"]
        posts = emulator.requests_to("/v2/orders", "POST")
        assert [p.body["client_order_id"] for p in posts if p.body] == ["a-2"]
        assert emulator.order_by_client_id("a-2").status == "new"
        order = await journal.order("a-2")
        assert order is not None and order.status == "accepted"
    finally:
        await journal.close()


async def test_after_a_reconcile_the_restarted_broker_streams_only_later_fills(
    tmp_path: Path, emulator: AlpacaEmulator, calendar: MarketCalendar
) -> None:
    journal = await Journal.open(f"sqlite+aiosqlite:///{tmp_path / 'j.sqlite'}")
    async with aiohttp.ClientSession() as http:

        def broker() -> AlpacaBroker:
            return AlpacaBroker(
                "alpaca",
                emulator.base_url,
                KEY_ID,
                SECRET,
                calendar,
                FixedClock(),
                http,
                backoff_s=0.001,
                data_url=emulator.base_url,
                data_stream_url=emulator.ws_url + "/v2/iex",
                reconnect_backoff_s=0.001,
            )

        try:
            await JournalingVenue(broker(), journal, strategy_of=lambda _: "hedge").submit(bid("a-2"))
            emulator.execute("a-2", D("8"), D("239.25"))  # while the bot is down
            restarted = broker()
            await reconcile_venue(journal, restarted, lookup=AlpacaOrderLookup(restarted))
            emulator.execute("a-2", D("2"), D("238.5"))  # after the restart, before the stream connects
            stream = restarted.stream()
            async with asyncio.timeout(10):  # a guard against a hang, not a timing assertion
                fill = await anext(e async for e in stream if type(e) is Fill)
            await stream.aclose()  # type: ignore[attr-defined]
            # Without the hand-over it would be all 10 again, counted twice with the journal's 8.
            assert (fill.quantity, fill.price) == (D("2"), D("238.5"))
        finally:
            await journal.close()
