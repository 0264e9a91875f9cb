"""The shared venue contract: the same tests for every execution venue, one adapter per venue family.

Families (fixtures in `conftest.py`): the simulated book exchange, broker, issuer and AMM; the ccxt
connector on the Binance spot emulator; the Alpaca broker and Alpaca tokenization on the Alpaca
emulator; the Uniswap venue on anvil with the real contracts. Each test states one rule of the
port (`core.venue.Venue`, `docs/adding-a-venue.md`):

- the venue satisfies the protocol;
- a valid request is acknowledged (or filled at once), its status moves are legal under
  `core.orders.TRANSITIONS`, and its fills arrive exactly once, through the return value or the
  venue's events, adding up to the order;
- an invalid request comes back REJECTED with a reason naming the field, without an exception,
  and leaves the balances as they were;
- submitting a client order id again does not make a second order at the venue;
- cancelling an id the venue never saw is refused clearly;
- `snapshot()` after a fill moved the balances by exactly what the fills say.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.enums import OrderStatus
from core.events import Event, Fill, OrderUpdate
from core.orders import Order, Request, SwapRequest
from core.venue import Venue
from tests.connectors.contract.adapter import VenueAdapter

pytestmark = pytest.mark.asyncio(loop_scope="module")

D = Decimal


def of(events: list[Event], cid: str) -> list[Fill | OrderUpdate]:
    return [e for e in events if type(e) in (Fill, OrderUpdate) and e.client_order_id == cid]  # type: ignore[union-attr]


def fills(events: list[Event], cid: str) -> list[Fill]:
    return [e for e in of(events, cid) if type(e) is Fill]


def total(request: Request) -> Decimal | None:
    """What the fills of `request` add up to (None for a swap: it fills in one Fill of any size)."""
    return None if isinstance(request, SwapRequest) else request.quantity


def filled(ack: OrderUpdate, request: Request) -> object:
    """`events -> bool`: the request's fills (with the acknowledgement) complete it."""

    def done(events: list[Event]) -> bool:
        got = fills(events, request.client_order_id)
        if isinstance(request, SwapRequest):
            return len(got) >= 1
        return sum((f.quantity for f in got), D(0)) >= request.quantity

    return done


async def fill_once(adapter: VenueAdapter, cid: str) -> tuple[Request, OrderUpdate]:
    """Submit the adapter's valid request under `cid` and let time pass until it is filled."""
    request = adapter.valid_request(cid)
    ack = await adapter.venue.submit(request)
    assert ack.client_order_id == cid and ack.status is not OrderStatus.REJECTED, ack
    await adapter.settle(filled(ack, request), f"the fill of {cid}")  # type: ignore[arg-type]
    return request, ack


def replay(request: Request, ack: OrderUpdate, events: list[Event]) -> Order:
    """The engine's view of the order: every status move and fill applied as `core.engine` does.

    Raises `IllegalTransition` on a move `TRANSITIONS` forbids and `InvalidInput` on an overfill (a
    fill reported twice).
    """
    order = Order(request)
    passive = (OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED)  # fills move these, updates do not
    for event in [ack, *of(events, request.client_order_id)]:
        if type(event) is Fill:
            size = total(request) or event.quantity
            order.apply_fill(event.quantity, event.price, size)
        elif event.status is not order.status and event.status not in passive:
            order.transition(event.status)
    return order


async def test_the_venue_satisfies_the_port(adapter: VenueAdapter) -> None:
    assert isinstance(adapter.venue, Venue)
    assert isinstance(adapter.venue.name, str) and adapter.venue.name


async def test_a_valid_request_fills_exactly_once_through_legal_moves(adapter: VenueAdapter) -> None:
    request, ack = await fill_once(adapter, "ok-1")
    # a second order, filled after the first: any copy of the first fill would have come before it
    await fill_once(adapter, "ok-2")
    events = adapter.events()
    order = replay(request, ack, events)
    assert order.status is OrderStatus.FILLED, order.history
    got = fills(events, "ok-1")
    trade_ids = [f.trade_id for f in got]
    assert len(set(trade_ids)) == len(trade_ids), trade_ids
    if isinstance(request, SwapRequest):
        assert len(got) == 1
    else:
        assert sum((f.quantity for f in got), D(0)) == request.quantity
    assert all(f.venue == adapter.venue.name for f in got)


async def test_an_invalid_request_is_rejected_naming_the_field_and_changes_nothing(
    adapter: VenueAdapter,
) -> None:
    before = await adapter.venue.snapshot()
    request, field = adapter.invalid_request("bad-1")
    update = await adapter.venue.submit(request)
    assert (update.status, update.client_order_id) == (OrderStatus.REJECTED, "bad-1")
    assert field in update.reason, update.reason
    # later events (if any) never fill it; the balances are as they were once a valid order went through
    await fill_once(adapter, "after-bad")
    events = adapter.events()
    assert fills(events, "bad-1") == []
    assert all(u.status is OrderStatus.REJECTED for u in of(events, "bad-1"))
    after = await adapter.venue.snapshot()
    expected = dict(before.balances)
    for fill in fills(events, "after-bad"):
        for asset, change in adapter.balance_change(fill).items():
            expected[asset] = expected.get(asset, D(0)) + change
    assert {a: after.balances.get(a, D(0)) for a in adapter.tracked} == {
        a: expected.get(a, D(0)) for a in adapter.tracked
    }


async def test_a_client_order_id_sent_twice_makes_one_order(adapter: VenueAdapter) -> None:
    before = await adapter.venue.snapshot()
    request, _ = await fill_once(adapter, "dup-1")
    again = await adapter.venue.submit(request)  # the same request again: a retry
    assert again.client_order_id == "dup-1"
    await fill_once(adapter, "dup-2")  # anything the repeat caused has come by now
    events = adapter.events()
    got = fills(events, "dup-1")
    if isinstance(request, SwapRequest):
        assert len(got) == 1
    else:
        assert sum((f.quantity for f in got), D(0)) == request.quantity
    after = await adapter.venue.snapshot()
    expected = dict(before.balances)
    for fill in [*got, *fills(events, "dup-2")]:
        for asset, change in adapter.balance_change(fill).items():
            expected[asset] = expected.get(asset, D(0)) + change
    assert {a: after.balances.get(a, D(0)) for a in adapter.tracked} == {
        a: expected.get(a, D(0)) for a in adapter.tracked
    }


async def test_cancel_of_an_unknown_id_is_refused(adapter: VenueAdapter) -> None:
    update = await adapter.venue.cancel("never-sent-42")
    assert (update.status, update.client_order_id) == (OrderStatus.REJECTED, "never-sent-42")
    assert "never-sent-42" in update.reason and "unknown" in update.reason.lower(), update.reason


async def test_snapshot_after_a_fill_moves_the_balances_by_the_fill(adapter: VenueAdapter) -> None:
    before = await adapter.venue.snapshot()
    assert before.venue == adapter.venue.name
    request, _ = await fill_once(adapter, "snap-1")
    after = await adapter.venue.snapshot()
    got = fills(adapter.events(), "snap-1")
    assert got
    for asset in adapter.tracked:
        change = sum((adapter.balance_change(f).get(asset, D(0)) for f in got), D(0))
        assert after.balances.get(asset, D(0)) - before.balances.get(asset, D(0)) == change, asset
    assert request.client_order_id not in {o.client_order_id for o in after.open_orders}
