"""The trading journal: every order, fill, transaction, balance, funding payment and decision, on disk.

SQLAlchemy 2 async. SQLite by default (`sqlite+aiosqlite:///perpetua.sqlite`), opened in WAL mode
with `synchronous=NORMAL` (a committed write survives the process being killed; only an operating
system crash may lose the last commits); PostgreSQL by URL (`postgresql+asyncpg://host/db`, the
driver installed by the user: nothing here is specific to it). The password of a database URL is
passed apart from the URL and never stored or printed.

Write-ahead rule: an order is journaled as an *intent* (`status == "intent"`) before it is sent,
and updated when the venue answers; every fill and order update is recorded as it arrives. Each
`record_*` call is one committed transaction. Fills are unique per venue by their trade id (or,
without one, by client order id, time, price and quantity), funding payments per venue,
instrument, time and asset, so a replayed event is ignored, not counted twice.

Money is stored exactly: Decimals as their text (`ExactDecimal`), integers of any size as text, so
18-decimal token amounts and 256-bit integers come back equal to what went in, on every backend.
Nothing secret is ever written: requests, events and venue states carry no keys.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Dialect, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlalchemy.types import TypeDecorator

from core.enums import Liquidity, OrderStatus, OrderType, Side, TimeInForce
from core.errors import DuplicateOrderId, InvalidInput
from core.events import Event, Fill, FundingPayment, OrderUpdate
from core.orders import MintRequest, OrderRequest, RedeemRequest, Request, SwapRequest
from core.venue import VenueState

DEFAULT_URL: Final = "sqlite+aiosqlite:///perpetua.sqlite"
"""The journal unless a URL says otherwise (the same default as `core.config.StorageConfig`)."""

INTENT: Final = "intent"
"""Order status in the journal between the intent write and the venue's answer (outcome unknown)."""

TX_PENDING: Final = "pending"
TX_CONFIRMED: Final = "confirmed"
TX_FAILED: Final = "failed"
TX_DROPPED: Final = "dropped"
TX_STATUSES: Final = frozenset({TX_PENDING, TX_CONFIRMED, TX_FAILED, TX_DROPPED})


class ExactDecimal(TypeDecorator[Decimal]):
    """A Decimal stored as its exact text (SQLite's NUMERIC would round through a float)."""

    impl = String(80)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, Decimal) or not value.is_finite():
            raise InvalidInput("decimal", value, "must be a finite Decimal")
        return str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


class BigInt(TypeDecorator[int]):
    """An integer of any size (base units, 256-bit) stored as decimal text."""

    impl = String(80)
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Dialect) -> str | None:
        return None if value is None else str(int(value))

    def process_result_value(self, value: str | None, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


class Base(DeclarativeBase):
    """Declarative base of the journal's tables."""


class OrderRow(Base):
    """One request (order, swap, mint, redeem) by client order id: what was asked and where it stands."""

    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_order_id: Mapped[str] = mapped_column(String(64), unique=True)
    venue: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # order | swap | mint | redeem | external
    instrument: Mapped[str] = mapped_column(String(128))  # instrument, pool or token
    side: Mapped[str | None] = mapped_column(String(8))
    quantity: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    price: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    request_json: Mapped[str | None] = mapped_column(Text)  # every request field, exact
    strategy: Mapped[str | None] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(24), index=True)  # "intent" or an OrderStatus
    venue_order_id: Mapped[str] = mapped_column(String(128), default="")
    filled_quantity: Mapped[Decimal] = mapped_column(ExactDecimal, default=Decimal(0))
    average_price: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_ns: Mapped[int] = mapped_column(BigInteger)
    updated_ns: Mapped[int] = mapped_column(BigInteger)


class OrderEventRow(Base):
    """The status history of an order: the intent, each answer and update, in arrival order."""

    __tablename__ = "order_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_order_id: Mapped[str] = mapped_column(ForeignKey("orders.client_order_id"), index=True)
    ts: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(24))  # intent | submit | send_error | cancel | stream | ...
    status: Mapped[str] = mapped_column(String(24))
    filled_quantity: Mapped[Decimal] = mapped_column(ExactDecimal)
    average_price: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    reason: Mapped[str] = mapped_column(Text, default="")


class FillRow(Base):
    """One execution of one of our orders; `fill_key` is the trade id, or a natural key without one."""

    __tablename__ = "fills"
    __table_args__ = (UniqueConstraint("venue", "fill_key", name="uq_fills_venue_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    venue: Mapped[str] = mapped_column(String(64))
    fill_key: Mapped[str] = mapped_column(String(300))
    trade_id: Mapped[str] = mapped_column(String(128))
    client_order_id: Mapped[str] = mapped_column(String(64), index=True)
    instrument: Mapped[str] = mapped_column(String(128))
    side: Mapped[str] = mapped_column(String(8))
    price: Mapped[Decimal] = mapped_column(ExactDecimal)
    quantity: Mapped[Decimal] = mapped_column(ExactDecimal)
    fee: Mapped[Decimal] = mapped_column(ExactDecimal)
    fee_asset: Mapped[str] = mapped_column(String(32))
    liquidity: Mapped[str] = mapped_column(String(8))
    notional: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    strategy: Mapped[str | None] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(24))  # stream | reconcile | reconcile-cumulative
    ts: Mapped[int] = mapped_column(BigInteger)


class TransactionRow(Base):
    """An on-chain transaction we sent: hash, nonce and where it stands."""

    __tablename__ = "transactions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tx_hash: Mapped[str] = mapped_column(String(80), unique=True)
    venue: Mapped[str] = mapped_column(String(64))
    client_order_id: Mapped[str] = mapped_column(String(64), index=True)
    nonce: Mapped[int] = mapped_column(BigInt)
    status: Mapped[str] = mapped_column(String(16), index=True)
    block_number: Mapped[int | None] = mapped_column(BigInt)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    updated_ns: Mapped[int] = mapped_column(BigInteger)


class BalanceRow(Base):
    """One asset's balance at a venue at one snapshot."""

    __tablename__ = "balance_snapshots"
    __table_args__ = (UniqueConstraint("venue", "ts", "asset", name="uq_balance_venue_ts_asset"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    venue: Mapped[str] = mapped_column(String(64))
    ts: Mapped[int] = mapped_column(BigInteger)
    asset: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(ExactDecimal)


class FundingRow(Base):
    """A funding payment on a derivative position: positive paid by us, negative received."""

    __tablename__ = "funding_payments"
    __table_args__ = (
        UniqueConstraint("venue", "instrument", "ts", "asset", name="uq_funding_venue_inst_ts_asset"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    venue: Mapped[str] = mapped_column(String(64))
    instrument: Mapped[str] = mapped_column(String(128))
    ts: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    asset: Mapped[str] = mapped_column(String(32))


class DecisionRow(Base):
    """A strategy's decision, free-form JSON, for the audit trail."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_strategy_ts", "strategy", "ts"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    strategy: Mapped[str] = mapped_column(String(128))
    ts: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[str] = mapped_column(Text)


TABLES: Final = (OrderRow, OrderEventRow, FillRow, TransactionRow, BalanceRow, FundingRow, DecisionRow)
"""Every journal table, in an order that respects foreign keys."""


# -- requests as exact JSON ---------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(payload: Any) -> str:
    """JSON with Decimals as exact strings (keys sorted, so equal payloads give equal text)."""
    return json.dumps(payload, default=_json_default, sort_keys=True, separators=(",", ":"))


_KINDS: Final[dict[type, str]] = {
    OrderRequest: "order",
    SwapRequest: "swap",
    MintRequest: "mint",
    RedeemRequest: "redeem",
}


def request_to_json(request: Request) -> str:
    """Every field of a request as exact JSON, tagged with its kind."""
    fields: dict[str, Any] = {"kind": _KINDS[type(request)]}
    for name in type(request).__dataclass_fields__:
        value = getattr(request, name)
        fields[name] = str(value) if isinstance(value, Decimal) else value
    return dumps(fields)


def request_from_json(text: str) -> Request:
    """The request `request_to_json` wrote, equal to the original."""
    data: dict[str, Any] = json.loads(text)
    kind = data.pop("kind")
    if kind == "order":
        return OrderRequest(
            client_order_id=data["client_order_id"],
            venue=data["venue"],
            instrument=data["instrument"],
            side=Side(data["side"]),
            quantity=Decimal(data["quantity"]),
            order_type=OrderType(data["order_type"]),
            price=None if data["price"] is None else Decimal(data["price"]),
            time_in_force=TimeInForce(data["time_in_force"]),
            post_only=data["post_only"],
            reduce_only=data["reduce_only"],
            extended_hours=data["extended_hours"],
        )
    if kind == "swap":
        return SwapRequest(**data)
    if kind == "mint":
        return MintRequest(**{**data, "quantity": Decimal(data["quantity"])})
    if kind == "redeem":
        return RedeemRequest(**{**data, "quantity": Decimal(data["quantity"])})
    raise InvalidInput("request_json.kind", kind, "unknown request kind")


def _request_columns(request: Request) -> dict[str, Any]:
    """The searchable columns of a request: instrument (or pool/token), side, quantity, price."""
    if isinstance(request, OrderRequest):
        return {
            "instrument": request.instrument,
            "side": request.side.value,
            "quantity": request.quantity,
            "price": request.price,
        }
    if isinstance(request, SwapRequest):
        amount = request.amount_in if request.amount_in is not None else request.amount_out
        return {"instrument": request.pool, "side": None, "quantity": Decimal(amount or 0), "price": None}
    return {"instrument": request.token, "side": None, "quantity": request.quantity, "price": None}


def fill_key(fill: Fill) -> str:
    """What makes a fill unique at its venue: its trade id, else (order, time, price, quantity)."""
    if fill.trade_id:
        return f"t:{fill.trade_id}"
    return f"o:{fill.client_order_id}:{fill.ts}:{fill.price}:{fill.quantity}"


# -- what the journal hands back ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JournaledOrder:
    """An order as the journal knows it. `status` is `INTENT` or an `OrderStatus` value."""

    client_order_id: str
    venue: str
    kind: str
    request: Request | None
    strategy: str | None
    status: str
    venue_order_id: str
    filled_quantity: Decimal
    average_price: Decimal | None
    reason: str
    created_ns: int
    updated_ns: int

    @property
    def is_intent(self) -> bool:
        """True while the venue's answer to the send is unknown."""
        return self.status == INTENT

    @property
    def is_terminal(self) -> bool:
        """True once the order can change no more."""
        return self.status != INTENT and OrderStatus(self.status).is_terminal

    def as_update(self) -> OrderUpdate:
        """The last known state as an `OrderUpdate` (an intent reads as NEW)."""
        return OrderUpdate(
            self.updated_ns,
            self.venue,
            self.client_order_id,
            OrderStatus.NEW if self.is_intent else OrderStatus(self.status),
            self.venue_order_id,
            self.filled_quantity,
            self.average_price,
            self.reason,
        )


@dataclass(frozen=True, slots=True)
class StatusEntry:
    """One line of an order's status history."""

    ts: int
    source: str
    status: str
    filled_quantity: Decimal
    average_price: Decimal | None
    reason: str


@dataclass(frozen=True, slots=True)
class JournaledTransaction:
    """An on-chain transaction as the journal knows it."""

    tx_hash: str
    venue: str
    client_order_id: str
    nonce: int
    status: str
    block_number: int | None


@dataclass(frozen=True, slots=True)
class Decision:
    """A journaled strategy decision."""

    strategy: str
    ts: int
    payload: dict[str, Any]


def _order(row: OrderRow) -> JournaledOrder:
    return JournaledOrder(
        client_order_id=row.client_order_id,
        venue=row.venue,
        kind=row.kind,
        request=request_from_json(row.request_json) if row.request_json else None,
        strategy=row.strategy,
        status=row.status,
        venue_order_id=row.venue_order_id,
        filled_quantity=row.filled_quantity,
        average_price=row.average_price,
        reason=row.reason,
        created_ns=row.created_ns,
        updated_ns=row.updated_ns,
    )


def _fill(row: FillRow) -> Fill:
    return Fill(
        ts=row.ts,
        venue=row.venue,
        instrument=row.instrument,
        client_order_id=row.client_order_id,
        side=Side(row.side),
        price=row.price,
        quantity=row.quantity,
        fee=row.fee,
        fee_asset=row.fee_asset,
        liquidity=Liquidity(row.liquidity),
        trade_id=row.trade_id,
        notional=row.notional,
    )


def _rank(status: str) -> int:
    """How far along an order is; the journal's latest state never moves back."""
    if status == INTENT:
        return 0
    return _RANKS[OrderStatus(status)]


_RANKS: Final = {
    OrderStatus.NEW: 1,
    OrderStatus.ACCEPTED: 2,
    OrderStatus.PARTIALLY_FILLED: 3,
    OrderStatus.FILLED: 4,
    OrderStatus.CANCELLED: 4,
    OrderStatus.REJECTED: 4,
    OrderStatus.EXPIRED: 4,
}


def _set_sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """NORMAL sync (in WAL mode commits survive a killed process) and foreign keys, per connection."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


WAL_WAIT_S: Final = 10.0
"""How long `Journal.open` retries switching a SQLite file to WAL while another process holds it."""


async def _enable_wal(engine: AsyncEngine) -> None:
    """Put the SQLite file in WAL mode (readers never block the writer; a property of the file).

    The switch needs the file to itself, and SQLite answers "database is locked" at once rather
    than waiting while another process opens it: retry with a short sleep, up to `WAL_WAIT_S`.
    """
    deadline = time.monotonic() + WAL_WAIT_S
    pause = 0.005
    while True:
        try:
            async with engine.connect() as conn:
                mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
                if mode not in ("wal", "memory"):
                    await conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            return
        except OperationalError as error:
            if "locked" not in str(error.orig) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.2)


def _create_schema(conn: Connection) -> None:
    """Every table and index, each `IF NOT EXISTS`.

    `metadata.create_all` checks, then creates: two processes opening a new file at once (a bot
    starting while `perpetua report` reads it) both see no table and the second CREATE fails.
    """
    for table in Base.metadata.sorted_tables:
        conn.execute(CreateTable(table, if_not_exists=True))
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            conn.execute(CreateIndex(index, if_not_exists=True))


class Journal:
    """The journal at one database; open with `await Journal.open(url)`, close with `await close()`.

    Every `record_*` method commits before it returns. Times are ns since the epoch, UTC.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._dialect = engine.dialect.name

    @classmethod
    async def open(cls, url: str = DEFAULT_URL, *, password: str | None = None) -> Journal:
        """Open (and create the tables of) the journal at an async SQLAlchemy `url`.

        `password` is set on the URL in memory only (it comes from the environment variable a
        config names); a URL that carries a password itself is refused, naming only the field.
        """
        parsed = _parse_url(url)
        if password is not None:
            parsed = parsed.set(password=password)
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            # One connection: writes are serialised anyway, and every read sees the last commit.
            kwargs["pool_size"] = 1
            kwargs["max_overflow"] = 0
        engine = create_async_engine(parsed, **kwargs)
        if parsed.get_backend_name() == "sqlite":
            event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
            await _enable_wal(engine)
        async with engine.begin() as conn:
            await conn.run_sync(_create_schema)
        return cls(engine)

    async def close(self) -> None:
        """Close every connection (a SQLite WAL is checkpointed when the last one closes)."""
        await self.engine.dispose()

    def __repr__(self) -> str:
        return f"Journal({self.engine.url.render_as_string(hide_password=True)!r})"

    # -- orders ------------------------------------------------------------------------------

    async def record_intent(
        self, request: Request, *, strategy: str | None = None, ts: int | None = None
    ) -> JournaledOrder:
        """Journal a request before it is sent; returns the journal's row for its client order id.

        A second intent for the same id and the same request changes nothing and returns the
        existing row (its status tells the caller whether the order already went out); the same
        id with a different request raises `DuplicateOrderId`.
        """
        now = time.time_ns() if ts is None else ts
        text = request_to_json(request)
        coid = request.client_order_id
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(OrderRow).where(OrderRow.client_order_id == coid))).first()
            if row is not None:
                if row.request_json != text:
                    raise DuplicateOrderId(coid)
                existing = await self._get_order(conn, coid)
                assert existing is not None
                return existing
            values = {
                "client_order_id": coid,
                "venue": request.venue,
                "kind": _KINDS[type(request)],
                "request_json": text,
                "strategy": strategy,
                "status": INTENT,
                "venue_order_id": "",
                "filled_quantity": Decimal(0),
                "average_price": None,
                "reason": "",
                "created_ns": now,
                "updated_ns": now,
                **_request_columns(request),
            }
            await conn.execute(insert(OrderRow).values(**values))
            await self._history(conn, coid, now, "intent", INTENT, Decimal(0), None, "")
        return JournaledOrder(
            coid,
            request.venue,
            _KINDS[type(request)],
            request,
            strategy,
            INTENT,
            "",
            Decimal(0),
            None,
            "",
            now,
            now,
        )

    async def record_send_error(
        self, client_order_id: str, error: BaseException, ts: int | None = None
    ) -> None:
        """The send raised: the order stays an intent (outcome unknown) and the error type is kept.

        Only the exception's type is stored: messages of HTTP clients may echo request headers.
        """
        now = time.time_ns() if ts is None else ts
        reason = f"send error: {type(error).__name__}"
        async with self.engine.begin() as conn:
            current = await self._get_order(conn, client_order_id)
            if current is None:
                raise InvalidInput("client_order_id", client_order_id, "no intent journaled")
            await self._history(
                conn,
                client_order_id,
                now,
                "send_error",
                current.status,
                current.filled_quantity,
                None,
                reason,
            )
            await conn.execute(
                update(OrderRow)
                .where(OrderRow.client_order_id == client_order_id)
                .values(reason=reason, updated_ns=now)
            )

    async def record_cancel(
        self, client_order_id: str, *, source: str = "cancel_intent", reason: str = "", ts: int | None = None
    ) -> None:
        """Note a cancel in the order's history only (sent, or refused by the venue): the order's
        state is the venue's to say, through `record_update`."""
        now = time.time_ns() if ts is None else ts
        async with self.engine.begin() as conn:
            current = await self._get_order(conn, client_order_id)
            if current is None:
                return
            await self._history(
                conn,
                client_order_id,
                now,
                source,
                current.status,
                current.filled_quantity,
                current.average_price,
                reason,
            )

    async def record_update(self, update_: OrderUpdate, *, source: str = "stream") -> bool:
        """Journal a venue's order update; returns True if it changed the order's state.

        The history keeps each distinct state once. The current state only moves forward: a
        terminal order stays terminal and the filled quantity never decreases (a late, older
        update is kept in the history but does not rewind the order). An update for an order the
        journal never saw (placed elsewhere) creates an `external` row.
        """
        coid = update_.client_order_id
        if not coid:
            raise InvalidInput("client_order_id", coid, "an order update needs the client order id")
        async with self.engine.begin() as conn:
            current = await self._get_order(conn, coid)
            if current is None:
                await conn.execute(
                    insert(OrderRow).values(
                        client_order_id=coid,
                        venue=update_.venue,
                        kind="external",
                        instrument="",
                        side=None,
                        quantity=None,
                        price=None,
                        request_json=None,
                        strategy=None,
                        status=INTENT,
                        venue_order_id="",
                        filled_quantity=Decimal(0),
                        average_price=None,
                        reason="",
                        created_ns=update_.ts,
                        updated_ns=update_.ts,
                    )
                )
                current = await self._get_order(conn, coid)
                assert current is not None
            last = await self._last_history(conn, coid)
            state = (update_.status.value, update_.filled_quantity, update_.average_price, update_.reason)
            if last is None or (last.status, last.filled_quantity, last.average_price, last.reason) != state:
                await self._history(
                    conn,
                    coid,
                    update_.ts,
                    source,
                    update_.status.value,
                    update_.filled_quantity,
                    update_.average_price,
                    update_.reason,
                )
            rank, current_rank = _rank(update_.status.value), _rank(current.status)
            stale = (
                current.is_terminal
                or rank < current_rank
                or update_.filled_quantity < current.filled_quantity
                or (update_.status.value, update_.filled_quantity)
                == (current.status, current.filled_quantity)
            )
            if stale:
                if update_.venue_order_id and not current.venue_order_id:
                    await conn.execute(
                        update(OrderRow)
                        .where(OrderRow.client_order_id == coid)
                        .values(venue_order_id=update_.venue_order_id)
                    )
                return False
            await conn.execute(
                update(OrderRow)
                .where(OrderRow.client_order_id == coid)
                .values(
                    status=update_.status.value,
                    venue_order_id=update_.venue_order_id or current.venue_order_id,
                    filled_quantity=update_.filled_quantity,
                    average_price=update_.average_price
                    if update_.average_price is not None
                    else current.average_price,
                    reason=update_.reason or current.reason,
                    updated_ns=max(update_.ts, current.updated_ns),
                )
            )
            return True

    async def record_fill(self, fill: Fill, *, source: str = "stream") -> bool:
        """Journal one fill; False if this fill (same venue and `fill_key`) was journaled before."""
        async with self.engine.begin() as conn:
            strategy = (
                await conn.execute(
                    select(OrderRow.strategy).where(OrderRow.client_order_id == fill.client_order_id)
                )
            ).scalar()
            values = {
                "venue": fill.venue,
                "fill_key": fill_key(fill),
                "trade_id": fill.trade_id,
                "client_order_id": fill.client_order_id,
                "instrument": fill.instrument,
                "side": fill.side.value,
                "price": fill.price,
                "quantity": fill.quantity,
                "fee": fill.fee,
                "fee_asset": fill.fee_asset,
                "liquidity": fill.liquidity.value,
                "notional": fill.notional,
                "strategy": strategy,
                "source": source,
                "ts": fill.ts,
            }
            return await self._insert_ignore(conn, FillRow, values)

    # -- transactions, balances, funding, decisions --------------------------------------------

    async def record_transaction(
        self,
        tx_hash: str,
        *,
        venue: str,
        client_order_id: str,
        nonce: int,
        status: str = TX_PENDING,
        block_number: int | None = None,
        ts: int | None = None,
    ) -> None:
        """Journal a transaction hash as soon as it is known (before waiting for its receipt).

        Recording the same hash again updates its status and block (a receipt arrived).
        """
        if status not in TX_STATUSES:
            raise InvalidInput("status", status, f"must be one of {sorted(TX_STATUSES)}")
        now = time.time_ns() if ts is None else ts
        async with self.engine.begin() as conn:
            found = (
                await conn.execute(select(TransactionRow.id).where(TransactionRow.tx_hash == tx_hash))
            ).scalar()
            if found is None:
                await conn.execute(
                    insert(TransactionRow).values(
                        tx_hash=tx_hash,
                        venue=venue,
                        client_order_id=client_order_id,
                        nonce=nonce,
                        status=status,
                        block_number=block_number,
                        created_ns=now,
                        updated_ns=now,
                    )
                )
            else:
                await conn.execute(
                    update(TransactionRow)
                    .where(TransactionRow.tx_hash == tx_hash)
                    .values(status=status, block_number=block_number, updated_ns=now)
                )

    async def record_balances(self, state: VenueState) -> int:
        """Journal a venue snapshot's balances (one row per asset); returns the rows written."""
        async with self.engine.begin() as conn:
            written = 0
            for asset, amount in sorted(state.balances.items()):
                values = {"venue": state.venue, "ts": state.ts, "asset": asset, "amount": amount}
                written += await self._insert_ignore(conn, BalanceRow, values)
            return written

    async def record_funding(self, payment: FundingPayment) -> bool:
        """Journal a funding payment; False if this one was journaled before."""
        values = {
            "venue": payment.venue,
            "instrument": payment.instrument,
            "ts": payment.ts,
            "amount": payment.amount,
            "asset": payment.asset,
        }
        async with self.engine.begin() as conn:
            return await self._insert_ignore(conn, FundingRow, values)

    async def record_decision(self, strategy: str, payload: Mapping[str, Any], ts: int | None = None) -> None:
        """Journal a strategy decision (free-form JSON; Decimals kept exact as strings)."""
        if not strategy:
            raise InvalidInput("strategy", strategy, "a decision needs the strategy's name")
        now = time.time_ns() if ts is None else ts
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(DecisionRow).values(strategy=strategy, ts=now, payload=dumps(dict(payload)))
            )

    async def record_event(self, event_: Event, *, source: str = "stream") -> bool:
        """Journal whatever part of the ledger an event is (fills, order updates, funding payments);
        market data is not journaled. Returns True if the event was new to the journal."""
        if type(event_) is Fill:
            return await self.record_fill(event_, source=source)
        if type(event_) is OrderUpdate:
            return await self.record_update(event_, source=source)
        if type(event_) is FundingPayment:
            return await self.record_funding(event_)
        return False

    # -- reading -------------------------------------------------------------------------------

    async def order(self, client_order_id: str) -> JournaledOrder | None:
        """The journal's row for one client order id, or None."""
        async with self.engine.connect() as conn:
            return await self._get_order(conn, client_order_id)

    async def orders(self, *, venue: str | None = None, open_only: bool = False) -> list[JournaledOrder]:
        """Orders in journal order; `open_only` keeps intents and non-terminal ones."""
        query = select(OrderRow).order_by(OrderRow.id)
        if venue is not None:
            query = query.where(OrderRow.venue == venue)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        orders = [_order(OrderRow(**row._mapping)) for row in rows]
        return [o for o in orders if not o.is_terminal] if open_only else orders

    async def history(self, client_order_id: str) -> list[StatusEntry]:
        """The status history of one order, in arrival order."""
        query = (
            select(OrderEventRow)
            .where(OrderEventRow.client_order_id == client_order_id)
            .order_by(OrderEventRow.id)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            StatusEntry(r.ts, r.source, r.status, r.filled_quantity, r.average_price, r.reason) for r in rows
        ]

    async def fills(self, *, client_order_id: str | None = None, venue: str | None = None) -> list[Fill]:
        """Fills in journal order, optionally of one order or one venue."""
        query = select(FillRow).order_by(FillRow.id)
        if client_order_id is not None:
            query = query.where(FillRow.client_order_id == client_order_id)
        if venue is not None:
            query = query.where(FillRow.venue == venue)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_fill(FillRow(**row._mapping)) for row in rows]

    async def fill_sources(self) -> dict[str, str]:
        """`{fill_key: source}` of every fill (which path journaled it)."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(FillRow.fill_key, FillRow.source))).all()
        return {r.fill_key: r.source for r in rows}

    async def transactions(self, *, pending_only: bool = False) -> list[JournaledTransaction]:
        """Transactions in journal order; `pending_only` keeps those not final yet."""
        query = select(TransactionRow).order_by(TransactionRow.id)
        if pending_only:
            query = query.where(TransactionRow.status == TX_PENDING)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            JournaledTransaction(r.tx_hash, r.venue, r.client_order_id, r.nonce, r.status, r.block_number)
            for r in rows
        ]

    async def latest_balances(self, venue: str) -> dict[str, Decimal]:
        """The balances of the venue's latest journaled snapshot."""
        async with self.engine.connect() as conn:
            ts = (
                await conn.execute(
                    select(BalanceRow.ts).where(BalanceRow.venue == venue).order_by(BalanceRow.ts.desc())
                )
            ).scalar()
            if ts is None:
                return {}
            rows = (
                await conn.execute(
                    select(BalanceRow.asset, BalanceRow.amount).where(
                        BalanceRow.venue == venue, BalanceRow.ts == ts
                    )
                )
            ).all()
        return {r.asset: r.amount for r in rows}

    async def funding_payments(self) -> list[FundingPayment]:
        """Funding payments in journal order."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(FundingRow).order_by(FundingRow.id))).all()
        return [FundingPayment(r.ts, r.venue, r.instrument, r.amount, r.asset) for r in rows]

    async def decisions(self, strategy: str | None = None) -> list[Decision]:
        """Decisions in time order, optionally of one strategy."""
        query = select(DecisionRow).order_by(DecisionRow.ts, DecisionRow.id)
        if strategy is not None:
            query = query.where(DecisionRow.strategy == strategy)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [Decision(r.strategy, r.ts, json.loads(r.payload)) for r in rows]

    async def table_rows(self, table: type[Base]) -> tuple[list[str], list[Sequence[Any]]]:
        """Column names and every row of one table, in id order (for export)."""
        columns = [c.name for c in table.__table__.columns]
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(table.__table__).order_by(table.__table__.c.id))).all()
        return columns, [tuple(r) for r in rows]

    # -- internals -----------------------------------------------------------------------------

    async def _get_order(self, conn: AsyncConnection, coid: str) -> JournaledOrder | None:
        row = (await conn.execute(select(OrderRow).where(OrderRow.client_order_id == coid))).first()
        return None if row is None else _order(OrderRow(**row._mapping))

    async def _last_history(self, conn: AsyncConnection, coid: str) -> StatusEntry | None:
        row = (
            await conn.execute(
                select(OrderEventRow)
                .where(OrderEventRow.client_order_id == coid)
                .order_by(OrderEventRow.id.desc())
                .limit(1)
            )
        ).first()
        if row is None:
            return None
        return StatusEntry(row.ts, row.source, row.status, row.filled_quantity, row.average_price, row.reason)

    async def _history(
        self,
        conn: AsyncConnection,
        coid: str,
        ts: int,
        source: str,
        status: str,
        filled: Decimal,
        average: Decimal | None,
        reason: str,
    ) -> None:
        await conn.execute(
            insert(OrderEventRow).values(
                client_order_id=coid,
                ts=ts,
                source=source,
                status=status,
                filled_quantity=filled,
                average_price=average,
                reason=reason,
            )
        )

    async def _insert_ignore(self, conn: AsyncConnection, table: type[Base], values: dict[str, Any]) -> bool:
        """Insert unless a unique key already holds the row; True if inserted."""
        insert_ = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        if self._dialect not in ("postgresql", "sqlite"):
            raise InvalidInput("url", self._dialect, "the journal supports sqlite and postgresql")
        result = await conn.execute(insert_(table).values(**values).on_conflict_do_nothing())
        return bool(result.rowcount == 1)


def _parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except Exception:
        raise InvalidInput("storage.url", "<hidden>", "not a SQLAlchemy URL") from None
    if parsed.password:
        raise InvalidInput("storage.url", "<hidden>", "must not carry a password; use storage.password_env")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise InvalidInput("storage.url", parsed.drivername, "the journal supports sqlite and postgresql")
    if parsed.get_backend_name() == "sqlite" and parsed.drivername != "sqlite+aiosqlite":
        raise InvalidInput(
            "storage.url", parsed.drivername, "SQLite needs the async driver: sqlite+aiosqlite"
        )
    return parsed


def sqlite_files(url: str) -> tuple[str, ...]:
    """The files a SQLite journal URL writes (database, WAL, shared memory); none for other backends."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return ()
    return (parsed.database, parsed.database + "-wal", parsed.database + "-shm")
