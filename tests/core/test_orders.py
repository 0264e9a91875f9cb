"""Order requests, the state machine and idempotent client order ids."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.errors import DuplicateOrderId, IllegalTransition, InvalidInput
from core.orders import (
    ClientOrderIds,
    MintRequest,
    Order,
    OrderRegistry,
    OrderRequest,
    RedeemRequest,
    SwapRequest,
)

S = OrderStatus
# Written out by hand from the life cycle new -> accepted -> partially filled -> filled / cancelled /
# rejected / expired; a fill may arrive before the acknowledgement (IOC, swaps), a rejection may not
# follow an acceptance (the venue then cancels or expires it).
LEGAL = {
    (S.NEW, S.ACCEPTED),
    (S.NEW, S.REJECTED),
    (S.NEW, S.CANCELLED),
    (S.NEW, S.EXPIRED),
    (S.NEW, S.PARTIALLY_FILLED),
    (S.NEW, S.FILLED),
    (S.ACCEPTED, S.PARTIALLY_FILLED),
    (S.ACCEPTED, S.FILLED),
    (S.ACCEPTED, S.CANCELLED),
    (S.ACCEPTED, S.EXPIRED),
    (S.PARTIALLY_FILLED, S.PARTIALLY_FILLED),
    (S.PARTIALLY_FILLED, S.FILLED),
    (S.PARTIALLY_FILLED, S.CANCELLED),
    (S.PARTIALLY_FILLED, S.EXPIRED),
}
# How to bring a fresh order into each state along legal moves.
PATH_TO = {
    S.NEW: [],
    S.ACCEPTED: [S.ACCEPTED],
    S.PARTIALLY_FILLED: [S.ACCEPTED, S.PARTIALLY_FILLED],
    S.FILLED: [S.ACCEPTED, S.FILLED],
    S.CANCELLED: [S.ACCEPTED, S.CANCELLED],
    S.REJECTED: [S.REJECTED],
    S.EXPIRED: [S.ACCEPTED, S.EXPIRED],
}


def limit(cid: str = "c-1", qty: str = "2", price: str = "250.5") -> OrderRequest:
    return OrderRequest(cid, "binance", "TSLAx/USDT", Side.BUY, Decimal(qty), price=Decimal(price))


def order_in(state: OrderStatus) -> Order:
    order = Order(limit())
    for step in PATH_TO[state]:
        order.transition(step)
    assert order.status is state
    return order


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_every_transition_is_legal_or_refused(current: OrderStatus, target: OrderStatus) -> None:
    order = order_in(current)
    history = list(order.history)
    if (current, target) in LEGAL:
        order.transition(target)
        assert order.status is target
        assert order.history == [*history, target]
    else:
        with pytest.raises(IllegalTransition, match=f"{current.value} -> {target.value}"):
            order.transition(target)
        assert order.status is current
        assert order.history == history


def test_terminal_states_are_exactly_the_ones_without_exits() -> None:
    for status in S:
        has_exit = any(src is status for src, _ in LEGAL)
        assert status.is_terminal is (not has_exit)


def test_partial_fills_average_price_and_overfill_refused() -> None:
    order = order_in(S.ACCEPTED)
    order.apply_fill(Decimal("0.5"), Decimal("100"), Decimal("2"))
    assert order.status is S.PARTIALLY_FILLED
    order.apply_fill(Decimal("1"), Decimal("103"), Decimal("2"))
    # (0.5*100 + 1*103) / 1.5 = 153 / 1.5 = 102
    assert order.average_price == Decimal("102")
    with pytest.raises(InvalidInput, match="overfills"):
        order.apply_fill(Decimal("0.6"), Decimal("1"), Decimal("2"))
    assert order.filled_quantity == Decimal("1.5")
    assert order.status is S.PARTIALLY_FILLED
    order.apply_fill(Decimal("0.5"), Decimal("106"), Decimal("2"))
    assert order.status is S.FILLED
    assert order.average_price == Decimal("103")  # (153 + 53) / 2
    with pytest.raises(IllegalTransition):
        order.apply_fill(Decimal("0.1"), Decimal("1"), Decimal("2.1"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quantity": Decimal(0)}, "quantity: must be > 0, got Decimal('0')"),
        ({"quantity": Decimal(-1)}, "quantity: must be > 0, got Decimal('-1')"),
        ({"price": None}, "price: a limit order needs a price, got None"),
        ({"price": Decimal("-2")}, "price: must be > 0, got Decimal('-2')"),
        ({"order_type": OrderType.MARKET}, "price: a market order takes no price"),
        ({"client_order_id": ""}, "client_order_id: must be 1..64 printable characters, got ''"),
        ({"client_order_id": "x" * 65}, "client_order_id: must be 1..64 printable characters"),
        ({"post_only": True, "time_in_force": TimeInForce.IOC}, "post_only: needs a GTC limit order"),
    ],
)
def test_bad_order_requests_name_field_and_value(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {
        "client_order_id": "c-1",
        "venue": "binance",
        "instrument": "TSLAx/USDT",
        "side": Side.SELL,
        "quantity": Decimal(1),
        "price": Decimal(10),
    }
    base.update(kwargs)
    with pytest.raises(InvalidInput) as err:
        OrderRequest(**base)  # type: ignore[arg-type]
    assert str(err.value).startswith(message)


def test_swap_mint_redeem_validation() -> None:
    ok = SwapRequest("s-1", "univ3", "TSLAx/USDC-3000", "USDC", "TSLAx", amount_in=10**6)
    assert ok.amount_out is None
    with pytest.raises(InvalidInput, match="set exactly one of amount_in and amount_out"):
        SwapRequest("s-2", "univ3", "p", "USDC", "TSLAx", amount_in=1, amount_out=1)
    with pytest.raises(InvalidInput, match="set exactly one"):
        SwapRequest("s-3", "univ3", "p", "USDC", "TSLAx")
    with pytest.raises(InvalidInput, match="amount_in: must be > 0, got 0"):
        SwapRequest("s-4", "univ3", "p", "USDC", "TSLAx", amount_in=0)
    with pytest.raises(InvalidInput, match="token_out: must differ from token_in, got 'USDC'"):
        SwapRequest("s-5", "univ3", "p", "USDC", "USDC", amount_in=5)
    with pytest.raises(InvalidInput, match="quantity: must be > 0"):
        MintRequest("m-1", "xstocks", "TSLAx", Decimal(0))
    with pytest.raises(InvalidInput, match="quantity: must be > 0"):
        RedeemRequest("r-1", "xstocks", "TSLAx", Decimal("-3"))


def test_registry_is_idempotent_and_refuses_reuse() -> None:
    registry = OrderRegistry()
    first, created = registry.register(limit("a-1"))
    again, created_again = registry.register(limit("a-1"))
    assert created and not created_again
    assert again is first
    assert len(registry) == 1
    with pytest.raises(DuplicateOrderId, match="a-1"):
        registry.register(limit("a-1", qty="3"))
    assert registry.get("a-1").request.quantity == Decimal(2)
    with pytest.raises(InvalidInput, match="client_order_id: unknown order, got 'zzz'"):
        registry.get("zzz")
    second, _ = registry.register(limit("a-2"))
    second.transition(S.REJECTED)
    assert [o.client_order_id for o in registry.open_orders()] == ["a-1"]


def test_client_order_ids_are_deterministic_and_unique() -> None:
    ids = ClientOrderIds("bt")
    got = [ids.next() for _ in range(1000)]
    assert got[:3] == ["bt-1", "bt-2", "bt-3"]
    assert len(set(got)) == 1000
    assert [ClientOrderIds("bt").next() for _ in range(1)] == ["bt-1"]
