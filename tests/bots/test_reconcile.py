"""Restart and reconcile against the local Binance spot emulator, through the real ccxt client.

The `kill -9 mid-trade` case is real: a child Python process journals through `JournalingVenue`
and sends through `CcxtExchange` to the emulator running in this test's event loop, and SIGKILLs
itself at a chosen point (after the intent write and before the send, or after the send and before
the answer is journaled). A new journal and connector then reconcile. The emulator's request log
is the independent witness: one POST per client order id, and the journal's orders and fills
equal the emulator's orders and trades.

Book: bids 249 x 10, 248 x 20; asks 250 x 1.5, 251 x 2. Account: 10000 USDT; fees 0.1%, charged
by Binance in the asset received.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt_async
import pytest

from bots.journal import INTENT, Journal
from bots.journaling_venue import JournalingVenue
from bots.reconcile import NEVER_SENT, Action, CcxtOrderLookup, ResendPolicy, reconcile_venue
from connectors.ccxt_exchange import CcxtExchange, RetryPolicy, VenueUnavailable
from connectors.emulators import BinanceEmulator, BinanceSymbol, Fault
from core.clock import LiveClock
from core.enums import OrderType, Side
from core.orders import OrderRequest

D = Decimal
API_KEY = "journal-test-key-7f3a"
API_SECRET = "journal-test-secret-c0ffee-5e1f-9d2b"
SYMBOL_ID = "TSLAXUSDT"
INSTRUMENT = "TSLAX-USDT"
ORDER_PATH = "/api/v3/order"
FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02, seed=3)
ROOT = Path(__file__).resolve().parents[2]
EMU_STATUS = {"NEW": "accepted", "PARTIALLY_FILLED": "partially_filled", "FILLED": "filled"}
EMU_STATUS |= {"CANCELED": "cancelled", "EXPIRED": "expired"}

REST = OrderRequest("r-1", "binance", INSTRUMENT, Side.BUY, D("1"), OrderType.LIMIT, D("240"))
"""Rests below the book; fills later as maker at 240 when the asks come down."""
TAKE = OrderRequest("k-1", "binance", INSTRUMENT, Side.BUY, D("2"), OrderType.LIMIT, D("251"))
"""Takes 1.5 at 250 and 0.5 at 251 at once."""


def make_client(base_url: str) -> Any:
    client = ccxt_async.binance(
        {
            "apiKey": os.environ.get("PERPETUA_TEST_BINANCE_KEY", API_KEY),
            "secret": os.environ.get("PERPETUA_TEST_BINANCE_SECRET", API_SECRET),
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False},
        }
    )
    for name, url in client.urls["api"].items():
        if isinstance(url, str):
            client.urls["api"][name] = base_url + urlsplit(url).path
    return client


def make_venue(base_url: str, retry: RetryPolicy = FAST) -> CcxtExchange:
    return CcxtExchange(
        "binance", make_client(base_url), {INSTRUMENT: "TSLAX/USDT"}, LiveClock(), retry=retry
    )


# The child process: journals and sends, and SIGKILLs itself at KILL_POINT when sending KILL_ID.
CHILD = """
import asyncio, os, signal, sys
from bots.journal import Journal
from bots.journaling_venue import JournalingVenue
from tests.bots.test_reconcile import REST, TAKE, make_venue

class KillAt:
    def __init__(self, inner, point, coid):
        self.inner, self.point, self.coid, self.name = inner, point, coid, inner.name
    async def submit(self, request):
        if request.client_order_id == self.coid and self.point == "before_send":
            os.kill(os.getpid(), signal.SIGKILL)
        update = await self.inner.submit(request)
        if request.client_order_id == self.coid and self.point == "after_send":
            os.kill(os.getpid(), signal.SIGKILL)
        return update
    async def cancel(self, coid):
        return await self.inner.cancel(coid)
    async def snapshot(self):
        return await self.inner.snapshot()
    def stream(self):
        return self.inner.stream()

async def main(db, base_url, point):
    journal = await Journal.open(db)
    venue = make_venue(base_url)
    jv = JournalingVenue(KillAt(venue, point, TAKE.client_order_id), journal, strategy_of=lambda c: "arb")
    await jv.submit(REST)
    await jv.submit(TAKE)
    sys.exit(3)  # not reached: killed above

asyncio.run(main(*sys.argv[1:4]))
"""


@pytest.fixture
async def emulator() -> AsyncIterator[BinanceEmulator]:
    emu = BinanceEmulator(
        API_KEY, API_SECRET, [BinanceSymbol("TSLAX", "USDT")], balances={"USDT": D("10000"), "TSLAX": D("0")}
    )
    await emu.start()
    emu.set_book(
        SYMBOL_ID, [(D("249"), D("10")), (D("248"), D("20"))], [(D("250"), D("1.5")), (D("251"), D("2"))]
    )
    yield emu
    await emu.close()


def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'journal.sqlite'}"


async def run_child_until_killed(tmp_path: Path, emulator: BinanceEmulator, point: str) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PERPETUA_TEST_BINANCE_KEY": API_KEY,
        "PERPETUA_TEST_BINANCE_SECRET": API_SECRET,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        db_url(tmp_path),
        emulator.base_url,
        point,
        cwd=str(ROOT),
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await proc.communicate()
    assert proc.returncode == -signal.SIGKILL, stderr.decode()


def posts_for(emulator: BinanceEmulator, coid: str) -> int:
    return sum(
        1 for r in emulator.requests_to(ORDER_PATH, "POST") if r.params.get("newClientOrderId") == coid
    )


async def assert_journal_equals_venue(journal: Journal, emulator: BinanceEmulator) -> None:
    """Every emulator order is journaled with its status, fill and id (and nothing else is, but the
    intents failed as never sent); every trade is a journaled fill."""
    journaled = {
        o.client_order_id: o for o in await journal.orders(venue="binance") if o.reason != NEVER_SENT
    }
    at_venue = {o.client_order_id: o for o in emulator.orders.values()}
    assert set(journaled) == set(at_venue)
    for coid, order in at_venue.items():
        j = journaled[coid]
        assert (j.status, j.filled_quantity, j.venue_order_id) == (
            EMU_STATUS[order.status],
            order.executed_qty,
            str(order.order_id),
        ), coid
    coids = {o.order_id: o.client_order_id for o in emulator.orders.values()}
    trades = sorted(
        (
            str(t["id"]),
            coids[t["orderId"]],
            D(t["price"]),
            D(t["qty"]),
            D(t["commission"]),
            t["commissionAsset"],
        )
        for t in emulator.trades
    )
    fills = sorted(
        (f.trade_id, f.client_order_id, f.price, f.quantity, f.fee, f.fee_asset)
        for f in await journal.fills()
    )
    assert fills == trades


async def restart_and_reconcile(
    tmp_path: Path, emulator: BinanceEmulator, policy: ResendPolicy = ResendPolicy.RESEND
) -> tuple[Journal, CcxtExchange, Any]:
    journal = await Journal.open(db_url(tmp_path))
    venue = make_venue(emulator.base_url)
    report = await reconcile_venue(journal, venue, lookup=CcxtOrderLookup(venue), policy=policy)
    return journal, venue, report


async def test_killed_after_the_intent_before_the_send_resends_once_with_the_same_id(
    tmp_path: Path, emulator: BinanceEmulator
) -> None:
    await run_child_until_killed(tmp_path, emulator, "before_send")
    assert (posts_for(emulator, "r-1"), posts_for(emulator, "k-1")) == (1, 0)
    # While the bot is down, the asks come down to 239.5: the resting bid fills as maker at 240.
    emulator.set_book(
        SYMBOL_ID, [(D("238"), D("5"))], [(D("239.5"), D("1")), (D("250"), D("1.5")), (D("251"), D("2"))]
    )

    journal, venue, report = await restart_and_reconcile(tmp_path, emulator)
    try:
        assert report.ids(Action.UPDATED) == ["r-1"] and report.ids(Action.RESENT) == ["k-1"]
        assert (posts_for(emulator, "r-1"), posts_for(emulator, "k-1")) == (1, 1)
        # k-1 took 1.5 at 250 and 0.5 at 251 once resent; r-1 filled as maker while we were away.
        assert report.fills_recorded == 3
        k1 = await journal.order("k-1")
        assert k1 is not None and (k1.status, k1.filled_quantity, k1.strategy) == ("filled", D("2"), "arb")
        assert [(f.price, f.quantity, f.fee) for f in await journal.fills(client_order_id="r-1")] == [
            (D("240"), D("1"), D("0.001"))  # maker at its limit; fee 0.1% of 1 TSLAX
        ]
        again = await reconcile_venue(journal, venue, lookup=CcxtOrderLookup(venue))
        assert again.ids(Action.RESENT) == [] and posts_for(emulator, "k-1") == 1
        assert again.fills_recorded == 0
        await assert_journal_equals_venue(journal, emulator)
        # Balances journaled from each reconciliation's snapshot: 10000 - 240, then - 375 - 125.5.
        assert report.balances["USDT"] == D("9760")
        assert (await journal.latest_balances("binance"))["USDT"] == D("9259.5")
        assert emulator.balance("USDT") == (D("9259.5"), D("0"))
    finally:
        await venue.close()
        await journal.close()


async def test_killed_after_the_send_before_the_answer_records_fills_without_resending(
    tmp_path: Path, emulator: BinanceEmulator
) -> None:
    await run_child_until_killed(tmp_path, emulator, "after_send")
    assert (posts_for(emulator, "r-1"), posts_for(emulator, "k-1")) == (1, 1)
    journal = await Journal.open(db_url(tmp_path))
    k1 = await journal.order("k-1")
    assert k1 is not None and k1.status == INTENT  # the answer was never journaled
    await journal.close()

    journal, venue, report = await restart_and_reconcile(tmp_path, emulator)
    try:
        assert report.ids(Action.UPDATED) == ["k-1"] and report.ids(Action.UNCHANGED) == ["r-1"]
        assert report.ids(Action.RESENT) == [] and posts_for(emulator, "k-1") == 1
        assert report.fills_recorded == 2
        # 1.5 at 250 and 0.5 at 251; fees 0.1% of the TSLAX received.
        assert sorted((f.price, f.quantity, f.fee, f.fee_asset) for f in await journal.fills()) == [
            (D("250"), D("1.5"), D("0.0015"), "TSLAX"),
            (D("251"), D("0.5"), D("0.0005"), "TSLAX"),
        ]
        await assert_journal_equals_venue(journal, emulator)
        # The stream of the restarted connector may report the same trades again: ignored.
        for fill in await venue.fills_since(0):
            assert not await journal.record_fill(fill)
        history = [h.source for h in await journal.history("k-1")]
        assert history == ["intent", "reconcile"]
    finally:
        await venue.close()
        await journal.close()


async def test_fail_policy_marks_an_unsent_intent_rejected_and_sends_nothing(
    tmp_path: Path, emulator: BinanceEmulator
) -> None:
    await run_child_until_killed(tmp_path, emulator, "before_send")
    journal, venue, report = await restart_and_reconcile(tmp_path, emulator, ResendPolicy.FAIL)
    try:
        assert report.ids(Action.FAILED) == ["k-1"] and posts_for(emulator, "k-1") == 0
        k1 = await journal.order("k-1")
        assert k1 is not None and (k1.status, k1.reason) == ("rejected", NEVER_SENT)
        await assert_journal_equals_venue(journal, emulator)  # k-1 is not at the emulator: only r-1
    finally:
        await venue.close()
        await journal.close()


async def test_a_lost_response_is_settled_by_lookup_not_by_a_second_order(
    tmp_path: Path, emulator: BinanceEmulator
) -> None:
    # The exchange places the order and the answer is lost; the connector gives up at once.
    journal = await Journal.open(db_url(tmp_path))
    venue = make_venue(emulator.base_url, RetryPolicy(max_attempts=1, base_delay=0.01, max_delay=0.01))
    emulator.inject(Fault("lost_response", path=ORDER_PATH, method="POST", status=502))
    try:
        with pytest.raises(VenueUnavailable):
            await JournalingVenue(venue, journal).submit(REST)
        order = await journal.order("r-1")
        assert order is not None and order.is_intent and order.reason == "send error: VenueUnavailable"
    finally:
        await venue.close()
        await journal.close()

    journal, venue, report = await restart_and_reconcile(tmp_path, emulator)
    try:
        assert report.ids(Action.UPDATED) == ["r-1"] and posts_for(emulator, "r-1") == 1
        await assert_journal_equals_venue(journal, emulator)
        # The connector learnt the order's symbol from the lookup: it can cancel it after the restart.
        cancelled = await JournalingVenue(venue, journal).cancel("r-1")
        assert cancelled.status.value == "cancelled"
        await assert_journal_equals_venue(journal, emulator)
    finally:
        await venue.close()
        await journal.close()


async def test_an_order_placed_elsewhere_is_reported_as_external(
    tmp_path: Path, emulator: BinanceEmulator
) -> None:
    other = make_venue(emulator.base_url)
    try:
        await other.submit(
            OrderRequest("manual-1", "binance", INSTRUMENT, Side.BUY, D("1"), OrderType.LIMIT, D("230"))
        )
    finally:
        await other.close()
    journal, venue, report = await restart_and_reconcile(tmp_path, emulator)
    try:
        assert report.ids(Action.EXTERNAL) == ["manual-1"]
        row = await journal.order("manual-1")
        assert row is not None and (row.kind, row.status, row.request) == ("external", "accepted", None)
        again = await reconcile_venue(journal, venue, lookup=CcxtOrderLookup(venue))
        assert again.resolutions == []  # known now; nothing else to do
    finally:
        await venue.close()
        await journal.close()


async def test_the_journal_file_never_holds_the_api_secret(tmp_path: Path, emulator: BinanceEmulator) -> None:
    await run_child_until_killed(tmp_path, emulator, "after_send")
    journal, venue, _ = await restart_and_reconcile(tmp_path, emulator)
    try:
        jv = JournalingVenue(venue, journal)
        await jv.cancel("r-1")
        await jv.snapshot()
        await journal.record_decision("arb", {"note": "done"})
    finally:
        await venue.close()
    await journal.close()
    contents = await asyncio.to_thread(journal_files, tmp_path)
    assert contents and sum(len(data) for data in contents.values()) > 0
    for name, data in contents.items():
        assert API_SECRET.encode() not in data and API_KEY.encode() not in data, name


def journal_files(directory: Path) -> dict[str, bytes]:
    """The bytes of the journal database and its WAL and shared-memory files."""
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.name.startswith("journal.sqlite")}
