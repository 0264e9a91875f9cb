"""The journal on a real SQLite file, and `JournalingVenue` around the simulated order-book exchange.

Every expected number is worked out in the test; raw column text is read back with the standard
library's `sqlite3`, independently of the journal's own reading code.
"""

from __future__ import annotations

import asyncio
import heapq
import sqlite3
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from bots.journal import INTENT, Base, Journal, request_from_json, request_to_json
from bots.journaling_venue import JournalingVenue
from connectors.sim.book_exchange import BookExchange, BookExchangeConfig
from connectors.sim.fees import FeeSchedule
from core.clock import SimulatedClock
from core.enums import Liquidity, OrderStatus, OrderType, Side, TimeInForce
from core.errors import DuplicateOrderId, InvalidInput
from core.events import Event, Fill, FundingPayment, OrderUpdate, Quote
from core.instruments import InstrumentRegistry, Spot
from core.orders import MintRequest, OrderRequest, RedeemRequest, Request, SwapRequest
from core.venue import VenueState

D = Decimal
S = OrderStatus
T0 = 1_767_225_600_000_000_000  # 2026-01-01 00:00:00 UTC, ns
SPOT = "TSLAx/USDT"


def url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    j = await Journal.open(url(tmp_path / "j.sqlite"))
    yield j
    await j.close()


def limit(
    coid: str, side: Side = Side.BUY, qty: str = "2", price: str = "101", venue: str = "bx"
) -> OrderRequest:
    return OrderRequest(coid, venue, SPOT, side, D(qty), OrderType.LIMIT, D(price))


# -- storage ---------------------------------------------------------------------------------------


async def test_18_decimal_amounts_and_256_bit_integers_come_back_exactly(tmp_path: Path) -> None:
    path = tmp_path / "exact.sqlite"
    qty = D("123456789.123456789012345678")  # 27 significant digits: a float keeps 17
    price = D("0.000000000000000001")
    fee = D("-0.000000000000000007")  # a rebate
    funding = D("-1.000000000000000001")
    big = 2**255 + 1  # a uint256 swap amount
    j = await Journal.open(url(path))
    await j.record_intent(OrderRequest("x-1", "v", "TOK/ETH", Side.SELL, qty, OrderType.LIMIT, price), ts=1)
    await j.record_intent(
        SwapRequest("x-2", "uni", "pool", "A", "B", amount_in=big, min_amount_out=big - 5), ts=2
    )
    fill = Fill(
        3, "v", "TOK/ETH", "x-1", Side.SELL, price, qty, fee, "ETH", Liquidity.MAKER, "t-1", qty * price
    )
    assert await j.record_fill(fill)
    assert await j.record_funding(FundingPayment(4, "v", "TOK-PERP", funding, "USDT"))
    await j.close()

    j = await Journal.open(url(path))  # a fresh process would see the same
    try:
        (read,) = await j.fills()
        assert read == fill and read.quantity == qty and read.fee == fee
        assert read.notional == D("0.000000000123456789123456789012345678")
        order = await j.order("x-1")
        assert order is not None and order.request == OrderRequest(
            "x-1", "v", "TOK/ETH", Side.SELL, qty, OrderType.LIMIT, price
        )
        swap = await j.order("x-2")
        assert swap is not None and isinstance(swap.request, SwapRequest)
        assert swap.request.amount_in == big and swap.request.min_amount_out == big - 5
        assert [p.amount for p in await j.funding_payments()] == [funding]
    finally:
        await j.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("select quantity, price, fee from fills").fetchone() == (
            "123456789.123456789012345678",
            "1E-18",  # Decimal's own exact text
            "-7E-18",
        )
        assert raw.execute("select quantity from orders where client_order_id='x-2'").fetchone() == (
            str(big),
        )


async def test_sqlite_runs_in_wal_mode_with_normal_sync(tmp_path: Path, journal: Journal) -> None:
    async with journal.engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == 1  # NORMAL
        assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
    with sqlite3.connect(tmp_path / "j.sqlite") as raw:  # WAL is a property of the file
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_journals_opened_at_once_on_a_new_file_all_open(tmp_path: Path) -> None:
    # A bot starting while `perpetua report` (or a test) opens the same new file: each creates the
    # tables; a check-then-create schema loses that race with "table ... already exists".
    for attempt in range(10):
        path = tmp_path / f"race-{attempt}.sqlite"
        journals = await asyncio.gather(*(Journal.open(url(path)) for _ in range(6)))
        try:
            await journals[0].record_intent(limit("r-1"))
            assert [o.client_order_id for o in await journals[-1].orders()] == ["r-1"]
        finally:
            for j in journals:
                await j.close()
    with sqlite3.connect(path) as raw:  # every table and index the models declare, nothing else
        rows = raw.execute("select name from sqlite_master where name not like 'sqlite_%'").fetchall()
    declared = [t.name for t in Base.metadata.sorted_tables]
    declared += [str(i.name) for t in Base.metadata.sorted_tables for i in t.indexes]
    assert sorted(name for (name,) in rows) == sorted(declared)
    assert {"orders", "order_events", "fills"} <= set(declared)


def test_every_request_kind_round_trips_through_json() -> None:
    requests: list[Request] = [
        OrderRequest("a", "v", SPOT, Side.BUY, D("1.5"), OrderType.MARKET, time_in_force=TimeInForce.IOC),
        OrderRequest("b", "v", SPOT, Side.SELL, D("2"), OrderType.LIMIT, D("3.25"), post_only=True),
        SwapRequest("c", "u", "p", "A", "B", amount_out=10, max_amount_in=12, deadline_ns=5),
        MintRequest("d", "issuer", "TSLAx", D("0.000001"), "USDC"),
        RedeemRequest("e", "issuer", "TSLAx", D("3"), "TSLA"),
    ]
    for request in requests:
        assert request_from_json(request_to_json(request)) == request


async def test_a_url_with_a_password_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="storage.url") as err:
        await Journal.open("postgresql+asyncpg://bot:hunter2-secret@127.0.0.1/db")
    assert "hunter2" not in str(err.value)
    with pytest.raises(InvalidInput, match="sqlite\\+aiosqlite"):
        await Journal.open(f"sqlite:///{tmp_path / 'sync.sqlite'}")
    with pytest.raises(InvalidInput, match="mysql"):
        await Journal.open("mysql+aiomysql://127.0.0.1/db")


# -- orders, fills, idempotence -------------------------------------------------------------------


async def test_a_replayed_fill_update_or_funding_payment_is_ignored(journal: Journal) -> None:
    await journal.record_intent(limit("o-1"), strategy="arb", ts=1)
    with_id = Fill(5, "bx", SPOT, "o-1", Side.BUY, D("100.5"), D("1"), D("0.1"), "USDT", trade_id="bx-t1")
    no_id = Fill(6, "bx", SPOT, "o-1", Side.BUY, D("100.5"), D("1"), D("0.1"), "USDT")
    assert [await journal.record_fill(f) for f in (with_id, no_id, with_id, no_id)] == [
        True,
        True,
        False,
        False,
    ]
    # The same trade id on another venue is another fill.
    assert await journal.record_fill(with_id._replace(venue="other"))
    payment = FundingPayment(7, "bx", "TSLA-PERP", D("0.25"), "USDT")
    assert [await journal.record_funding(payment) for _ in range(2)] == [True, False]
    filled = OrderUpdate(8, "bx", "o-1", S.FILLED, "9", D("2"), D("100.5"))
    assert [await journal.record_update(filled) for _ in range(2)] == [True, False]
    assert [(h.source, h.status) for h in await journal.history("o-1")] == [
        ("intent", INTENT),
        ("stream", "filled"),
    ]
    assert len(await journal.fills(venue="bx")) == 2
    assert {f.trade_id for f in await journal.fills(client_order_id="o-1")} == {"bx-t1", ""}


async def test_the_order_state_never_moves_back(journal: Journal) -> None:
    await journal.record_intent(limit("o-2", qty="3"), ts=1)
    assert await journal.record_update(OrderUpdate(2, "bx", "o-2", S.ACCEPTED, "v2"))
    assert await journal.record_update(
        OrderUpdate(4, "bx", "o-2", S.PARTIALLY_FILLED, "v2", D("2"), D("101"))
    )
    # A REST read taken before the last push arrives late: kept in the history, not applied.
    assert not await journal.record_update(
        OrderUpdate(3, "bx", "o-2", S.PARTIALLY_FILLED, "v2", D("1"), D("101"))
    )
    assert not await journal.record_update(OrderUpdate(3, "bx", "o-2", S.ACCEPTED, "v2"))
    order = await journal.order("o-2")
    assert order is not None and (order.status, order.filled_quantity) == ("partially_filled", D("2"))
    assert await journal.record_update(OrderUpdate(5, "bx", "o-2", S.CANCELLED, "v2", D("2"), D("101")))
    assert not await journal.record_update(OrderUpdate(6, "bx", "o-2", S.FILLED, "v2", D("3"), D("101")))
    order = await journal.order("o-2")
    assert order is not None and (order.status, order.filled_quantity, order.updated_ns) == (
        "cancelled",
        D("2"),
        5,
    )
    assert [h.status for h in await journal.history("o-2")] == [
        INTENT,
        "accepted",
        "partially_filled",
        "partially_filled",
        "accepted",
        "cancelled",
        "filled",
    ]
    assert await journal.orders(open_only=True) == []


async def test_an_id_reused_for_another_request_is_refused(journal: Journal) -> None:
    first = await journal.record_intent(limit("o-3"), ts=1)
    again = await journal.record_intent(limit("o-3"), ts=2)
    assert again == first and again.created_ns == 1
    with pytest.raises(DuplicateOrderId):
        await journal.record_intent(limit("o-3", price="102"), ts=3)


async def test_decisions_transactions_and_balances(journal: Journal) -> None:
    await journal.record_decision("fair_value", {"edge_bps": D("12.5"), "side": "buy", "n": 3}, ts=20)
    await journal.record_decision("mm", {"skew": D("-0.1")}, ts=10)
    assert [(d.strategy, d.ts, d.payload) for d in await journal.decisions()] == [
        ("mm", 10, {"skew": "-0.1"}),
        ("fair_value", 20, {"edge_bps": "12.5", "n": 3, "side": "buy"}),
    ]
    with pytest.raises(InvalidInput, match="strategy"):
        await journal.record_decision("", {})
    await journal.record_transaction("0xabc", venue="uni", client_order_id="s-1", nonce=7, ts=1)
    assert [t.status for t in await journal.transactions(pending_only=True)] == ["pending"]
    await journal.record_transaction(
        "0xabc", venue="uni", client_order_id="s-1", nonce=7, status="confirmed", block_number=12
    )
    (tx,) = await journal.transactions()
    assert (tx.status, tx.block_number, tx.nonce) == ("confirmed", 12, 7)
    with pytest.raises(InvalidInput, match="status"):
        await journal.record_transaction("0xdef", venue="uni", client_order_id="s-2", nonce=8, status="mined")
    state = VenueState("bx", 50, {"USDT": D("9798.799"), "TSLAx": D("2")})
    assert await journal.record_balances(state) == 2
    assert await journal.record_balances(state) == 0  # the same snapshot twice
    await journal.record_balances(VenueState("bx", 60, {"USDT": D("1")}))
    assert await journal.latest_balances("bx") == {"USDT": D("1")}


# -- JournalingVenue around the simulated exchange --------------------------------------------------


class Probe:
    """The simulated exchange, which also looks into the journal the moment a request reaches it."""

    def __init__(self, inner: BookExchange, journal: Journal) -> None:
        self.inner = inner
        self.journal = journal
        self.name = inner.name
        self.seen_at_send: list[str | None] = []
        self.fail_next: Exception | None = None

    async def submit(self, request: Request) -> OrderUpdate:
        order = await self.journal.order(request.client_order_id)
        self.seen_at_send.append(None if order is None else order.status)
        if self.fail_next is not None:
            err, self.fail_next = self.fail_next, None
            raise err
        return await self.inner.submit(request)

    async def cancel(self, client_order_id: str) -> OrderUpdate:
        return await self.inner.cancel(client_order_id)

    async def snapshot(self) -> VenueState:
        return await self.inner.snapshot()

    def stream(self) -> AsyncIterator[Event]:
        return self.inner.stream()


class Rig:
    """BookExchange with taker 10 bps, zero latency, matched on arrival; wake-ups fired in time order."""

    def __init__(self) -> None:
        self.clock = SimulatedClock(T0)
        registry = InstrumentRegistry([Spot(SPOT, "TSLAx", "USDT", D("0.01"), D("0.001"))])
        config = BookExchangeConfig(fees=FeeSchedule(maker_bps=D(0), taker_bps=D(10)), same_event_fills=True)
        self.bx = BookExchange("bx", self.clock, registry, [SPOT], {"USDT": D(10_000)}, config)
        self.outbox: list[Event] = []
        self.wakeups: list[int] = []
        self.bx.attach(self.outbox, lambda at_ns, _v: heapq.heappush(self.wakeups, at_ns))

    def run(self) -> list[Event]:
        while self.wakeups:
            self.clock.advance_to(max(heapq.heappop(self.wakeups), self.clock.now_ns()))
            self.bx.on_time(self.clock.now_ns())
        out = list(self.outbox)
        self.outbox.clear()
        return out


async def test_journaling_venue_writes_intent_before_the_send_and_every_event_once(journal: Journal) -> None:
    rig = Rig()
    probe = Probe(rig.bx, journal)
    jv = JournalingVenue(probe, journal, strategy_of=lambda coid: "arb", now_ns=rig.clock.now_ns)
    rig.bx.on_market(Quote(T0, "bx", SPOT, 99.5, 100.5, 5.0, 1.5))

    first = await jv.submit(limit("j-1", qty="2", price="101"))
    assert first.status is S.NEW and probe.seen_at_send == [INTENT]
    events = rig.run()
    # 1.5 at 100.5 from the ask, the rest (0.5) rests at 101; taker fee 10 bps of 150.75.
    fills = [e for e in events if isinstance(e, Fill)]
    assert [(f.price, f.quantity, f.fee) for f in fills] == [(D("100.5"), D("1.5"), D("0.15075"))]
    for event in events + events:  # every event delivered twice (a replay after reconnect)
        await jv.record(event)
    (journaled_fill,) = await journal.fills()
    assert journaled_fill == fills[0]
    order = await journal.order("j-1")
    assert order is not None and (order.status, order.filled_quantity, order.strategy) == (
        "partially_filled",
        D("1.5"),
        "arb",
    )
    # The same id again: the journal has it as sent, the venue is not asked twice.
    again = await jv.submit(limit("j-1", qty="2", price="101"))
    assert again.status is S.PARTIALLY_FILLED and len(probe.seen_at_send) == 1

    cancel_answer = await jv.cancel("j-1")
    assert cancel_answer.status is S.PARTIALLY_FILLED  # the sim answers with the current status
    for event in rig.run():
        await jv.record(event)
    order = await journal.order("j-1")
    assert order is not None and (order.status, order.filled_quantity) == ("cancelled", D("1.5"))
    # A refused cancel (already finished) is history only.
    refused = await jv.cancel("nope")
    assert refused.status is S.REJECTED and await journal.order("nope") is None
    sources = [h.source for h in await journal.history("j-1")]
    assert sources[0] == "intent" and sources[1] == "submit" and "cancel_intent" in sources

    state = await jv.snapshot()
    assert await journal.latest_balances("bx") == state.balances
    # 10000 - 1.5 * 100.5 - 0.15075 fee
    assert state.balances["USDT"] == D("9849.09925")


async def test_a_send_that_raises_leaves_an_intent_with_the_error_type(journal: Journal) -> None:
    rig = Rig()
    probe = Probe(rig.bx, journal)
    jv = JournalingVenue(probe, journal, now_ns=rig.clock.now_ns)
    probe.fail_next = TimeoutError("read timed out; headers: X-MBX-APIKEY=abc")
    with pytest.raises(TimeoutError):
        await jv.submit(limit("j-2"))
    order = await journal.order("j-2")
    assert order is not None and order.is_intent and order.reason == "send error: TimeoutError"
    assert "abc" not in str(await journal.history("j-2"))
    # The caller retries with the same id: the intent is still open, so it is sent now.
    update = await jv.submit(limit("j-2"))
    assert update.status is S.NEW and probe.seen_at_send == [INTENT, INTENT]
