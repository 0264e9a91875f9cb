"""The real `AlpacaBroker` against the local Alpaca emulator (aiohttp on 127.0.0.1, port 0)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import aiohttp
import pytest

from connectors.brokers.alpaca import AlpacaAuthError, AlpacaBroker
from connectors.emulators.alpaca import AlpacaAsset, AlpacaEmulator, Fault
from core.calendar import MarketCalendar
from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.errors import InvalidInput
from core.orders import OrderRequest

D = Decimal
KEY_ID = "test-key-id-not-real"
SECRET = "test-secret-VALUE-not-real-9f8e7d"
# Tuesday 2025-06-10, New York on EDT (UTC-4)
REGULAR_NS = int(datetime(2025, 6, 10, 14, 0, tzinfo=UTC).timestamp()) * 10**9  # 10:00 ET
PRE_MARKET_NS = int(datetime(2025, 6, 10, 9, 0, tzinfo=UTC).timestamp()) * 10**9  # 05:00 ET


class SetClock:
    """A clock the test sets freely (backwards too): the emulator's and the connector's time."""

    def __init__(self, now: int) -> None:
        self.now = now

    def now_ns(self) -> int:
        return self.now

    def advance_to(self, ts_ns: int) -> None:
        self.now = ts_ns


@pytest.fixture(scope="module")
def calendar() -> MarketCalendar:
    return MarketCalendar(start="2025-06-01", end="2025-06-30")


@pytest.fixture
def clock() -> SetClock:
    return SetClock(REGULAR_NS)


@pytest.fixture
async def emulator(calendar: MarketCalendar, clock: SetClock) -> AsyncIterator[AlpacaEmulator]:
    emu = AlpacaEmulator(
        KEY_ID,
        SECRET,
        calendar,
        clock,
        [AlpacaAsset("TSLA"), AlpacaAsset("BRK.A", fractionable=False)],
        cash=D("10000"),
    )
    await emu.start()
    emu.set_quote("TSLA", D("249.50"), D("250.25"))
    emu.set_quote("BRK.A", D("700000"), D("700100"))
    yield emu
    await emu.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def broker(
    emulator: AlpacaEmulator, calendar: MarketCalendar, clock: SetClock, http: aiohttp.ClientSession
) -> AlpacaBroker:
    return AlpacaBroker("alpaca", emulator.base_url, KEY_ID, SECRET, calendar, clock, http, backoff_s=0.001)


def order(cid: str, **kw: object) -> OrderRequest:
    fields: dict[str, object] = {
        "client_order_id": cid,
        "venue": "alpaca",
        "instrument": "TSLA",
        "side": Side.BUY,
        "quantity": D("2"),
        "order_type": OrderType.MARKET,
        "time_in_force": TimeInForce.DAY,
    }
    fields.update(kw)
    return OrderRequest(**fields)  # type: ignore[arg-type]


async def test_regular_hours_market_buy_fills_at_the_ask(
    broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    before = await broker.snapshot()
    update = await broker.submit(order("m-1", quantity=D("1.5")))
    assert update.status is OrderStatus.FILLED
    assert update.average_price == D("250.25")
    assert update.filled_quantity == D("1.5")
    after = await broker.snapshot()
    assert before.balances == {"USD": D("10000")}
    assert after.balances["USD"] == D("10000") - D("1.5") * D("250.25") == D("9624.625")
    assert after.balances["TSLA"] == D("1.5")
    assert after.open_orders == ()
    [post] = emulator.requests_to("/v2/orders", "POST")
    assert post.body == {
        "symbol": "TSLA",
        "qty": "1.5",
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "client_order_id": "m-1",
    }
    account = await broker.account()
    assert account.cash == D("9624.625")


async def test_pre_market_limit_with_extended_hours_is_accepted(
    broker: AlpacaBroker, emulator: AlpacaEmulator, clock: SetClock
) -> None:
    clock.advance_to(PRE_MARKET_NS)
    update = await broker.submit(
        order("x-1", order_type=OrderType.LIMIT, price=D("240"), extended_hours=True)
    )
    assert update.status is OrderStatus.ACCEPTED
    assert update.venue_order_id
    [post] = emulator.requests_to("/v2/orders", "POST")
    assert post.body is not None and post.body["extended_hours"] is True
    assert post.body["limit_price"] == "240"
    state = await broker.snapshot()
    assert [u.client_order_id for u in state.open_orders] == ["x-1"]
    cancelled = await broker.cancel("x-1")
    assert cancelled.status is OrderStatus.CANCELLED
    assert (await broker.snapshot()).open_orders == ()


async def test_pre_market_market_order_is_rejected_locally(
    broker: AlpacaBroker, emulator: AlpacaEmulator, clock: SetClock
) -> None:
    clock.advance_to(PRE_MARKET_NS)
    update = await broker.submit(order("m-pre"))
    assert update.status is OrderStatus.REJECTED
    assert "regular hours" in update.reason and "pre_market" in update.reason
    assert emulator.requests_to("/v2/orders", "POST") == []
    # a limit without extended_hours is refused locally too
    limit = await broker.submit(order("l-pre", order_type=OrderType.LIMIT, price=D("240")))
    assert limit.status is OrderStatus.REJECTED
    assert emulator.requests_to("/v2/orders", "POST") == []


async def test_emulator_enforces_hours_itself(
    emulator: AlpacaEmulator, clock: SetClock, http: aiohttp.ClientSession
) -> None:
    clock.advance_to(PRE_MARKET_NS)
    headers = {"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET}
    body = {"symbol": "TSLA", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"}
    async with http.post(emulator.base_url + "/v2/orders", json=body, headers=headers) as resp:
        assert resp.status == 422
        payload = await resp.json()
    assert payload["code"] == 42210000
    assert "regular trading hours" in payload["message"]


async def test_fractional_qty_on_non_fractionable_asset_is_rejected(
    broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    update = await broker.submit(order("f-1", instrument="BRK.A", quantity=D("0.01")))
    assert update.status is OrderStatus.REJECTED
    assert update.reason == "quantity: 0.01 is fractional but BRK.A is not fractionable at Alpaca"
    assert emulator.requests_to("/v2/orders", "POST") == []  # refused locally from /v2/assets
    assert [r.status for r in emulator.requests_to("/v2/assets/BRK.A")] == [200]
    # fractional on a fractionable asset needs a day order
    gtc = await broker.submit(order("f-2", quantity=D("0.5"), time_in_force=TimeInForce.GTC))
    assert gtc.reason == "time_in_force: gtc, fractional orders must be day orders (quantity: 0.5)"
    assert emulator.requests_to("/v2/orders", "POST") == []


async def test_emulator_refuses_fractional_itself(
    emulator: AlpacaEmulator, http: aiohttp.ClientSession
) -> None:
    headers = {"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET}
    body = {"symbol": "BRK.A", "qty": "0.01", "side": "buy", "type": "market", "time_in_force": "day"}
    async with http.post(emulator.base_url + "/v2/orders", json=body, headers=headers) as resp:
        assert resp.status == 422
        assert await resp.json() == {"code": 42210000, "message": 'asset "BRK.A" is not fractionable'}


async def test_lost_answer_after_500_is_not_sent_twice(
    broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    emulator.inject(Fault("server_error", path="/v2/orders", method="POST", after=True))
    update = await broker.submit(order("dup-1"))
    assert update.status is OrderStatus.FILLED
    posts = emulator.requests_to("/v2/orders", "POST")
    assert [p.status for p in posts] == [500]
    assert len(emulator.requests_to("/v2/orders:by_client_order_id")) == 1
    assert emulator.position("TSLA") == D("2")
    # a resubmission of the same id is answered by Alpaca's duplicate error, not a second order
    again = await broker.submit(order("dup-1"))
    assert again.status is OrderStatus.REJECTED
    assert "client_order_id must be unique" in again.reason
    assert emulator.position("TSLA") == D("2")


async def test_500_and_429_before_processing_are_retried(
    broker: AlpacaBroker, emulator: AlpacaEmulator
) -> None:
    emulator.inject(Fault("server_error", path="/v2/orders", method="POST", status=503))
    emulator.inject(Fault("rate_limit", path="/v2/orders", method="POST"))
    update = await broker.submit(order("r-1"))
    assert update.status is OrderStatus.FILLED
    assert [p.status for p in emulator.requests_to("/v2/orders", "POST")] == [503, 429, 200]
    assert emulator.position("TSLA") == D("2")


async def test_wrong_key_is_a_clear_error(
    emulator: AlpacaEmulator, calendar: MarketCalendar, clock: SetClock, http: aiohttp.ClientSession
) -> None:
    bad = AlpacaBroker("alpaca", emulator.base_url, KEY_ID, "wrong-secret", calendar, clock, http)
    with pytest.raises(AlpacaAuthError, match="API keys refused"):
        await bad.account()
    assert emulator.requests[-1].status == 403


async def test_secret_never_in_logs_or_errors(
    emulator: AlpacaEmulator,
    calendar: MarketCalendar,
    clock: SetClock,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TEST_APCA_KEY", KEY_ID)
    monkeypatch.setenv("TEST_APCA_SECRET", SECRET)
    broker = AlpacaBroker.from_env(
        "alpaca",
        "TEST_APCA_KEY",
        "TEST_APCA_SECRET",
        emulator.base_url,
        calendar,
        clock,
        http,
        backoff_s=0.001,
    )
    texts = [repr(broker), str(broker)]
    emulator.inject(Fault("server_error", times=2))
    emulator.inject(Fault("rate_limit"))
    assert (await broker.submit(order("s-1"))).status is OrderStatus.FILLED
    emulator.inject(Fault("server_error", times=4))
    with pytest.raises(Exception) as unavailable:
        await broker.account()
    texts += [str(unavailable.value), repr(unavailable.value)]
    monkeypatch.setenv("TEST_APCA_SECRET", "another-" + SECRET)
    wrong = AlpacaBroker.from_env(
        "alpaca", "TEST_APCA_KEY", "TEST_APCA_SECRET", emulator.base_url, calendar, clock, http
    )
    with pytest.raises(AlpacaAuthError) as refused:
        await wrong.snapshot()
    texts += [str(refused.value), repr(refused.value), repr(refused.value.__cause__)]
    monkeypatch.delenv("TEST_APCA_SECRET")
    with pytest.raises(InvalidInput) as missing:
        AlpacaBroker.from_env(
            "alpaca", "TEST_APCA_KEY", "TEST_APCA_SECRET", emulator.base_url, calendar, clock
        )
    texts.append(str(missing.value))
    assert any("alpaca" in r.name for r in caplog.records)  # the retries were logged
    texts += [r.getMessage() for r in caplog.records] + [caplog.text]
    assert all(SECRET not in t for t in texts)
