"""`AlpacaTokenization` (mint/redeem venue) against the emulator's tokenization desk on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal

import aiohttp
import pytest

from connectors.brokers.alpaca import AlpacaBroker
from connectors.emulators.alpaca import AlpacaAsset, AlpacaEmulator, Fault, Position
from connectors.emulators.alpaca_tokenization import TokenizationDesk
from connectors.issuers.alpaca_tokenization import AlpacaTokenization, IssuerTerms, TokenListing
from core.calendar import MarketCalendar
from core.enums import Liquidity, OrderStatus, Session, Side
from core.events import Event, Fill, OrderUpdate
from core.orders import MintRequest, OrderRequest, RedeemRequest
from core.venue import Venue

D = Decimal
KEY_ID = "itn-key-id-not-real"
SECRET = "itn-SECRET-value-not-real-0c9d8e"
WALLET = "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"
VENUE = "alpaca-itn"
DELAY_NS = 600 * 10**9  # the desk's processing delay: 10 minutes
# Tuesday 2025-06-10 10:00 New York (EDT); Saturday 2025-06-14 11:00 New York
REGULAR_NS = int(datetime(2025, 6, 10, 14, 0, tzinfo=UTC).timestamp()) * 10**9
SATURDAY_NS = int(datetime(2025, 6, 14, 15, 0, tzinfo=UTC).timestamp()) * 10**9
WAIT_S = 10.0  # a safety net against a hang, never a timing assertion


class SetClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def now_ns(self) -> int:
        return self.now


@pytest.fixture(scope="module")
def calendar() -> MarketCalendar:
    return MarketCalendar(start="2025-06-01", end="2025-06-30")


@pytest.fixture
def clock() -> SetClock:
    return SetClock(REGULAR_NS)


@pytest.fixture
def desk() -> TokenizationDesk:
    return TokenizationDesk({"TSLA": "TSLAx"}, min_qty=D(1), fee=D(5), delay_ns=DELAY_NS)


@pytest.fixture
async def emulator(
    calendar: MarketCalendar, clock: SetClock, desk: TokenizationDesk
) -> AsyncIterator[AlpacaEmulator]:
    emu = AlpacaEmulator(KEY_ID, SECRET, calendar, clock, [AlpacaAsset("TSLA")], D("10000"), desk)
    emu.state.positions["TSLA"] = Position(D(10), D(2500))
    await emu.start()
    yield emu
    await emu.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def make_itn(
    emulator: AlpacaEmulator,
    calendar: MarketCalendar,
    clock: SetClock,
    http: aiohttp.ClientSession,
    terms: IssuerTerms | None = None,
    timeout_s: float = 10.0,
) -> AlpacaTokenization:
    broker = AlpacaBroker(
        "alpaca",
        emulator.base_url,
        KEY_ID,
        SECRET,
        calendar,
        clock,
        http,
        backoff_s=0.001,
        timeout_s=timeout_s,
    )
    listing = TokenListing("TSLAx", "TSLA", "solana", WALLET)
    terms = terms if terms is not None else IssuerTerms(min_qty=D(1), fee=D(5))
    return AlpacaTokenization(VENUE, broker, [listing], terms, poll_s=0.001, max_poll_s=0.02)


@pytest.fixture
def itn(
    emulator: AlpacaEmulator, calendar: MarketCalendar, clock: SetClock, http: aiohttp.ClientSession
) -> AlpacaTokenization:
    return make_itn(emulator, calendar, clock, http)


class Collector:
    def __init__(self, venue: AlpacaTokenization) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._run(venue))

    async def _run(self, venue: AlpacaTokenization) -> None:
        async for event in venue.stream():
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    async def wait(self, predicate: Callable[[list[Event]], bool]) -> list[Event]:
        async with asyncio.timeout(WAIT_S), self._changed:
            await self._changed.wait_for(lambda: predicate(self.events))
        return self.events

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def has_status(cid: str, status: OrderStatus) -> Callable[[list[Event]], bool]:
    return lambda evs: any(
        type(e) is OrderUpdate and e.client_order_id == cid and e.status is status for e in evs
    )


def mint(cid: str, qty: str, pay: str = "TSLA") -> MintRequest:
    return MintRequest(cid, VENUE, "TSLAx", D(qty), pay_asset=pay)


async def test_mint_is_pending_then_completes_with_one_fill(
    itn: AlpacaTokenization, emulator: AlpacaEmulator, desk: TokenizationDesk, clock: SetClock
) -> None:
    assert isinstance(itn, Venue) and isinstance(itn.broker, Venue)
    ack = await itn.submit(mint("m-1", "2.5"))
    assert ack.status is OrderStatus.ACCEPTED
    [post] = emulator.requests_to("/v2/tokenization/mint", "POST")
    assert post.body == {
        "underlying_symbol": "TSLA",
        "qty": "2.5",
        "issuer": "xstocks",
        "network": "solana",
        "wallet_address": WALLET,
        "client_request_id": "m-1",
    }
    assert post.idempotency_key == "m-1"
    [record] = desk.requests.values()
    assert ack.venue_order_id == record.id and record.status == "pending"
    assert emulator.position("TSLA") == D("7.5")  # journaled out at once

    collector = Collector(itn)
    try:
        await collector.wait(has_status("m-1", OrderStatus.ACCEPTED))
        polled = f"/v2/tokenization/requests/{record.id}"
        async with asyncio.timeout(WAIT_S):  # the poller saw it pending twice
            await emulator.wait_for_requests(polled, 2)
        assert [r.status for r in emulator.requests_to(polled)][:2] == [200, 200]
        assert not [e for e in collector.events if type(e) is Fill]  # still pending before the delay
        clock.now = REGULAR_NS + DELAY_NS
        events = await collector.wait(has_status("m-1", OrderStatus.FILLED))
        fills = [e for e in events if type(e) is Fill]
        assert fills == [
            Fill(REGULAR_NS + DELAY_NS, VENUE, "TSLAx/TSLA", "m-1", Side.BUY, D(1), D("2.5"), D(5), "USD",
                 Liquidity.TAKER, record.id, D("2.5")),
        ]  # fmt: skip
        assert [type(e) for e in events] == [OrderUpdate, Fill, OrderUpdate]
    finally:
        await collector.close()
    assert desk.wallet("solana", WALLET, "TSLAx") == D("2.5")
    assert emulator.cash == D("9995")
    assert emulator.position("TSLA") == D("7.5")


async def test_redeem_returns_shares(
    itn: AlpacaTokenization, emulator: AlpacaEmulator, desk: TokenizationDesk, clock: SetClock
) -> None:
    desk.credit_wallet("solana", WALLET, "TSLAx", D(3))
    ack = await itn.submit(RedeemRequest("r-1", VENUE, "TSLAx", D(3), receive_asset="TSLA"))
    assert ack.status is OrderStatus.ACCEPTED
    assert emulator.requests_to("/v2/tokenization/redeem", "POST")[0].body == {
        "underlying_symbol": "TSLA",
        "qty": "3",
        "issuer": "xstocks",
        "network": "solana",
        "wallet_address": WALLET,
        "client_request_id": "r-1",
    }
    assert desk.wallet("solana", WALLET, "TSLAx") == 0
    clock.now = REGULAR_NS + DELAY_NS
    collector = Collector(itn)
    try:
        events = await collector.wait(has_status("r-1", OrderStatus.FILLED))
    finally:
        await collector.close()
    [fill] = [e for e in events if type(e) is Fill]
    assert (fill.side, fill.quantity, fill.price, fill.fee, fill.instrument) == (
        Side.SELL, D(3), D(1), D(5), "TSLAx/TSLA",
    )  # fmt: skip
    assert emulator.position("TSLA") == D(13)
    assert emulator.cash == D("9995")


async def test_local_checks_refuse_before_sending(
    itn: AlpacaTokenization, emulator: AlpacaEmulator, clock: SetClock
) -> None:
    async def reason(request: MintRequest | RedeemRequest | OrderRequest) -> str:
        update = await itn.submit(request)
        assert update.status is OrderStatus.REJECTED
        return update.reason

    assert await reason(mint("a", "0.5")) == "quantity: 0.5 below the issuer's minimum 1 TSLAx"
    assert await reason(mint("b", "2", pay="USD")) == (
        "pay_asset: 'USD', but Alpaca converts TSLAx in kind against 'TSLA'"
    )
    assert await reason(mint("c", "20")) == "quantity: 20 TSLA to mint exceeds the 10 held at Alpaca"
    assert await reason(MintRequest("d", VENUE, "AAPLx", D(1), "AAPL")) == (
        "token: 'AAPLx' not listed (lists ['TSLAx'])"
    )
    assert await reason(MintRequest("e", "other", "TSLAx", D(1), "TSLA")) == (
        "venue: request for 'other' sent to 'alpaca-itn'"
    )
    assert await reason(OrderRequest("h", VENUE, "TSLAx", Side.BUY, D(1), price=D(1))) == (
        "request: alpaca-itn takes MintRequest or RedeemRequest, got OrderRequest"
    )
    emulator.state.cash = D(3)
    assert await reason(mint("f", "2")) == "fee: 5 USD per request exceeds the cash 3 USD at Alpaca"
    emulator.state.cash = D(10000)
    clock.now = SATURDAY_NS
    assert await reason(mint("g", "2")) == (
        "session: weekend, the issuer takes requests only in post_market, pre_market, regular"
    )
    assert emulator.requests_to("/v2/tokenization/mint", "POST") == []
    assert emulator.position("TSLA") == D(10)


async def test_emulator_refuses_in_alpacas_error_format(
    emulator: AlpacaEmulator,
    calendar: MarketCalendar,
    clock: SetClock,
    http: aiohttp.ClientSession,
) -> None:
    headers = {"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET}
    body = {
        "underlying_symbol": "TSLA",
        "qty": "2",
        "issuer": "xstocks",
        "network": "solana",
        "wallet_address": WALLET,
    }
    url = emulator.base_url + "/v2/tokenization/mint"

    async def post(payload: dict[str, str], key: str | None = None) -> tuple[int, object]:
        extra = {} if key is None else {"Idempotency-Key": key}
        async with http.post(url, json=payload, headers={**headers, **extra}) as resp:
            return resp.status, await resp.json()

    assert await post({**body, "qty": "0.5"}) == (
        422, {"code": 42210000, "message": "qty 0.5 is below the minimum 1"},
    )  # fmt: skip
    assert await post({**body, "qty": "11"}) == (
        403, {"code": 40310000, "message": "insufficient position for TSLA"},
    )  # fmt: skip
    status, first = await post(body, key="k-1")
    assert status == 200 and isinstance(first, dict)
    assert await post(body, key="k-1") == (200, first)  # same key, same body: the same request
    assert await post({**body, "qty": "3"}, key="k-1") == (
        422, {"code": 42210000, "message": "idempotency key reused with a different request body"},
    )  # fmt: skip
    assert emulator.position("TSLA") == D(8)
    clock.now = SATURDAY_NS
    window = "mint requests are accepted only during post_market, pre_market, regular (now weekend)"
    assert await post(body) == (422, {"code": 42210000, "message": window})
    # a connector whose terms allow the weekend relays the exchange's refusal
    lax = make_itn(emulator, calendar, clock, http, IssuerTerms(sessions=frozenset(Session)))
    update = await lax.submit(mint("w-1", "2"))
    assert update.status is OrderStatus.REJECTED
    assert update.reason == f"alpaca 422: {window}"


async def test_timeout_after_acceptance_creates_one_request(
    emulator: AlpacaEmulator,
    desk: TokenizationDesk,
    calendar: MarketCalendar,
    clock: SetClock,
    http: aiohttp.ClientSession,
) -> None:
    itn = make_itn(emulator, calendar, clock, http, timeout_s=0.3)
    emulator.inject(Fault("timeout", path="/v2/tokenization/mint", method="POST", after=True, hang_s=1.5))
    emulator.inject(Fault("server_error", path="/v2/tokenization/redeem", method="POST", after=True))
    ack = await itn.submit(mint("t-1", "2"))
    assert ack.status is OrderStatus.ACCEPTED
    [record] = desk.requests.values()
    assert ack.venue_order_id == record.id
    assert len(emulator.requests_to("/v2/tokenization/mint", "POST")) == 1
    [lookup] = emulator.requests_to("/v2/tokenization/requests:by_client_request_id")
    assert lookup.query == {"client_request_id": "t-1"}
    assert emulator.position("TSLA") == D(8)
    # a 500 after the redeem was taken: found by the lookup, not sent again
    desk.credit_wallet("solana", WALLET, "TSLAx", D(2))
    redeem = await itn.submit(RedeemRequest("t-2", VENUE, "TSLAx", D(2), receive_asset="TSLA"))
    assert redeem.status is OrderStatus.ACCEPTED
    assert [r.status for r in emulator.requests_to("/v2/tokenization/redeem", "POST")] == [500]
    assert len(desk.requests) == 2
    assert desk.wallet("solana", WALLET, "TSLAx") == 0


async def test_rejected_request_is_cancelled_and_returns_the_shares(
    itn: AlpacaTokenization, emulator: AlpacaEmulator, desk: TokenizationDesk
) -> None:
    ack = await itn.submit(mint("x-1", "4"))
    assert emulator.position("TSLA") == D(6)
    state = await itn.snapshot()
    assert state.balances == {"USD": D(10000), "TSLA": D(6)}
    assert [(u.client_order_id, u.status, u.venue_order_id) for u in state.open_orders] == [
        ("x-1", OrderStatus.ACCEPTED, ack.venue_order_id)
    ]
    cancel = await itn.cancel("x-1")
    assert (cancel.status, cancel.reason) == (
        OrderStatus.ACCEPTED,
        "cancel: Alpaca tokenization requests cannot be cancelled",
    )
    desk.fail(ack.venue_order_id, "issuer halted TSLAx")
    collector = Collector(itn)
    try:
        events = await collector.wait(has_status("x-1", OrderStatus.CANCELLED))
    finally:
        await collector.close()
    [cancelled] = [e for e in events if type(e) is OrderUpdate and e.status is OrderStatus.CANCELLED]
    assert cancelled.reason == "rejected by the issuer: issuer halted TSLAx"
    assert not [e for e in events if type(e) is Fill]
    assert emulator.position("TSLA") == D(10)
    assert (await itn.snapshot()).open_orders == ()


async def test_secrets_stay_out_of_logs_reprs_and_errors(
    emulator: AlpacaEmulator,
    calendar: MarketCalendar,
    clock: SetClock,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("ITN_KEY", KEY_ID)
    monkeypatch.setenv("ITN_SECRET", SECRET)
    broker = AlpacaBroker.from_env(
        "alpaca", "ITN_KEY", "ITN_SECRET", emulator.base_url, calendar, clock, http, backoff_s=0.001
    )
    itn = AlpacaTokenization(VENUE, broker, [TokenListing("TSLAx", "TSLA", "solana", WALLET)], poll_s=0.001)
    emulator.inject(Fault("server_error", path="/v2/tokenization/mint", times=2))
    assert (await itn.submit(mint("s-1", "1"))).status is OrderStatus.ACCEPTED
    emulator.inject(Fault("server_error", times=4))
    with pytest.raises(Exception) as unavailable:
        await itn.snapshot()
    texts = [repr(itn), str(itn), repr(broker), str(unavailable.value), repr(unavailable.value)]
    texts += [r.getMessage() for r in caplog.records] + [caplog.text]
    assert any("attempt" in r.getMessage() for r in caplog.records)  # the retries were logged
    assert all(SECRET not in t for t in texts)
