"""The kill switch: stop all trading when something is badly wrong, until an operator says otherwise.

It trips on the first of:

- daily loss: equity (`Portfolio.equity` in the risk currency, priced by `core.valuation`) fell by
  `max_daily_loss` or more since 00:00 UTC (since start, or since the last reset, if later);
- repeated rejects: `max_rejects` of our requests REJECTED (by a venue or a risk check) within
  `reject_window_ns`;
- stale data: a position is open and the reference price of its underlying has not been fresh
  (quote `ts`, oracle `publish_ts`) for longer than `max_data_staleness_ns`;
- an explicit `halt(engine, by=...)`.

When it trips it logs the cause at ERROR, cancels every open order through the engine (all
strategies'), and from then on refuses every new request with a reason that names the cause. It
holds until `reset(by=...)`, which logs who reset it; after a reset the daily loss is measured from
the equity at the reset (the operator accepted the loss so far) and the reject count starts over.

It plugs into the engine twice (`attach`): as the first risk check (the refusals) and as an engine
observer (it judges every event before the strategies see it, so a strategy reacting to the event
that tripped it is already refused). A live runner also awaits `evaluate(engine)` from its
watchdog, so stale data trips it even when no event arrives. Deposits and withdrawals move equity
too and are not told apart from PnL here.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from core.enums import OrderStatus
from core.errors import InvalidInput
from core.events import Event, OrderUpdate
from core.instruments import PerpetualOption, Spot, StockPerp, TokenizedStock
from core.orders import Request
from core.risk import RiskLimits
from core.valuation import engine_prices

if TYPE_CHECKING:
    from core.engine import TradingEngine

NS_PER_DAY: Final = 86_400 * 1_000_000_000
MS: Final = 1_000_000

Valuation = Callable[["TradingEngine"], Mapping[str, Decimal]]
"""Prices for `Portfolio.equity`: asset or instrument id -> price in the risk currency."""


class TripCause(StrEnum):
    """Why the kill switch tripped."""

    DAILY_LOSS = "daily_loss"
    REJECTS = "rejects"
    STALE_DATA = "stale_data"
    HALT = "halt"


@dataclass(frozen=True, slots=True)
class Trip:
    """One trip: its cause, a sentence with the numbers, and when (ns since the epoch, UTC)."""

    cause: TripCause
    detail: str
    ts: int

    @property
    def reason(self) -> str:
        """The refusal reason given to every request while tripped."""
        return f"kill switch ({self.cause.value}): {self.detail}; refusing new orders until reset"


class KillSwitch:
    """See the module docstring. Units: money in `currency`; times in ns since the epoch, UTC.

    Args:
        max_daily_loss: loss since 00:00 UTC (in `currency`) that trips it, > 0.
        currency: the risk currency equity is valued in.
        max_data_staleness_ns: a reference older than this (ns) with positions open trips it.
        max_rejects: this many rejects within `reject_window_ns` trip it.
        reject_window_ns: the sliding window of the reject count (ns).
        valuation: prices for equity (default: `core.valuation.engine_prices` in `currency`).
    """

    def __init__(
        self,
        *,
        max_daily_loss: Decimal,
        currency: str = "USD",
        max_data_staleness_ns: int,
        max_rejects: int = 5,
        reject_window_ns: int = 60_000 * MS,
        valuation: Valuation | None = None,
    ) -> None:
        if not isinstance(max_daily_loss, Decimal) or not max_daily_loss.is_finite() or max_daily_loss <= 0:
            raise InvalidInput("max_daily_loss", max_daily_loss, "must be a finite Decimal > 0")
        for name, value in (
            ("max_data_staleness_ns", max_data_staleness_ns),
            ("max_rejects", max_rejects),
            ("reject_window_ns", reject_window_ns),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise InvalidInput(name, value, "must be an integer > 0")
        self.max_daily_loss = max_daily_loss
        self.currency = currency
        self.max_data_staleness_ns = max_data_staleness_ns
        self.max_rejects = max_rejects
        self.reject_window_ns = reject_window_ns
        self._valuation: Valuation = valuation or (lambda engine: engine_prices(engine, currency))
        self.log = logging.getLogger("perpetua.risk.kill_switch")
        self.tripped: Trip | None = None
        self.trips: list[Trip] = []
        self.daily_pnl: Decimal | None = None
        """PnL (in `currency`) since 00:00 UTC or the last reset, as of the last evaluation; None before."""
        self._day: int | None = None
        self._baseline: Decimal | None = None
        self._equity: Decimal | None = None
        self._rejects: deque[int] = deque()
        self._started_ns: int | None = None
        self._unpriced: set[str] = set()

    @classmethod
    def from_limits(
        cls,
        limits: RiskLimits,
        *,
        max_rejects: int = 5,
        reject_window_ms: int = 60_000,
        valuation: Valuation | None = None,
    ) -> KillSwitch:
        """A kill switch from the `risk:` config: `max_daily_loss`, `currency`, `max_data_staleness_ms`."""
        return cls(
            max_daily_loss=limits.max_daily_loss,
            currency=limits.currency,
            max_data_staleness_ns=limits.max_data_staleness_ms * MS,
            max_rejects=max_rejects,
            reject_window_ns=reject_window_ms * MS,
            valuation=valuation,
        )

    def attach(self, engine: TradingEngine) -> KillSwitch:
        """Make this the engine's first risk check and an observer of its events; returns self."""
        engine.risk_checks.insert(0, self)
        engine.add_observer(self)
        return self

    # -- risk check and observer -------------------------------------------------------------

    def check(self, request: Request, engine: TradingEngine) -> str | None:
        """Refuse every request while tripped (the reason names the cause), else pass."""
        return None if self.tripped is None else self.tripped.reason

    def on_request(self, request: Request, reason: str | None, engine: TradingEngine) -> None:
        """Requests need no judgement here beyond `check`."""

    async def on_event(self, event: Event, engine: TradingEngine) -> None:
        """Count rejects, then judge the trip conditions against the state the event left."""
        if self.tripped is not None:
            return
        if type(event) is OrderUpdate and event.status is OrderStatus.REJECTED:
            self._rejects.append(engine.clock.now_ns())
        await self.evaluate(engine)

    # -- decisions ---------------------------------------------------------------------------

    async def evaluate(self, engine: TradingEngine) -> Trip | None:
        """Judge every trip condition now; trip (cancelling all open orders) on the first that holds.

        Returns the trip in force (an earlier one, a new one) or None. A live watchdog calls this
        periodically, so staleness trips it even when no event comes.
        """
        if self.tripped is not None:
            return self.tripped
        now = engine.clock.now_ns()
        if self._started_ns is None:
            self._started_ns = now
        for judge in (self._judge_rejects, self._judge_daily_loss, self._judge_stale):
            found = judge(engine, now)
            if found is not None:
                await self._trip(engine, found[0], found[1])
                return self.tripped
        return None

    async def halt(self, engine: TradingEngine, by: str) -> Trip:
        """Trip by hand (an operator's command): cancels everything and refuses orders until reset."""
        if self.tripped is None:
            await self._trip(engine, TripCause.HALT, f"halted by {by}")
        assert self.tripped is not None
        return self.tripped

    def reset(self, by: str) -> None:
        """Allow trading again (an operator's explicit command); `by` names who, for the log."""
        if not by:
            raise InvalidInput("by", by, "name who resets the kill switch")
        if self.tripped is None:
            self.log.info("kill switch reset by %s: it was not tripped", by, extra={"reset_by": by})
            return
        trip = self.tripped
        self.tripped = None
        self._rejects.clear()
        self._baseline = self._equity  # the loss so far is accepted: count from here
        self.daily_pnl = None if self._equity is None else Decimal(0)
        self.log.warning(
            "kill switch reset by %s (was %s: %s); daily loss now measured from equity %s %s",
            by,
            trip.cause.value,
            trip.detail,
            self._equity,
            self.currency,
            extra={"kill_switch": "reset", "reset_by": by, "cause": trip.cause.value},
        )

    async def _trip(self, engine: TradingEngine, cause: TripCause, detail: str) -> None:
        trip = Trip(cause, detail, engine.clock.now_ns())
        self.tripped = trip
        self.trips.append(trip)
        orders = engine.open_orders()
        self.log.error(
            "kill switch tripped (%s): %s; cancelling %d open orders",
            cause.value,
            detail,
            len(orders),
            extra={"kill_switch": "tripped", "cause": cause.value, "open_orders": len(orders)},
        )
        for order in orders:
            try:
                await engine.cancel(order.client_order_id)
            except Exception:  # one venue failing must not keep the others' orders alive
                self.log.exception("kill switch: cancel of %s failed", order.client_order_id)

    def _judge_rejects(self, engine: TradingEngine, now: int) -> tuple[TripCause, str] | None:
        while self._rejects and self._rejects[0] <= now - self.reject_window_ns:
            self._rejects.popleft()
        if len(self._rejects) < self.max_rejects:
            return None
        window_ms = self.reject_window_ns // MS
        return TripCause.REJECTS, (
            f"{len(self._rejects)} rejects within {window_ms} ms, max_rejects {self.max_rejects}"
        )

    def _judge_daily_loss(self, engine: TradingEngine, now: int) -> tuple[TripCause, str] | None:
        try:
            equity = engine.portfolio.equity(self._valuation(engine), self.currency)
        except InvalidInput as exc:
            if str(exc) not in self._unpriced:  # say it once, not on every event
                self._unpriced.add(str(exc))
                self.log.warning("kill switch cannot value the portfolio yet: %s", exc)
            return None
        day = now // NS_PER_DAY
        if self._day != day:
            # Nothing moved between the last valuation and midnight: it is the equity at 00:00 UTC.
            self._baseline = equity if self._equity is None or self._day is None else self._equity
            self._day = day
        if self._baseline is None:
            self._baseline = equity
        self._equity = equity
        self.daily_pnl = equity - self._baseline
        if -self.daily_pnl < self.max_daily_loss:
            return None
        return TripCause.DAILY_LOSS, (
            f"daily loss {-self.daily_pnl} {self.currency} (equity {equity} from {self._baseline}) "
            f"reached max_daily_loss {self.max_daily_loss}"
        )

    def _judge_stale(self, engine: TradingEngine, now: int) -> tuple[TripCause, str] | None:
        positions = engine.portfolio.positions(open_only=True)
        if not positions:
            return None
        underlyings: set[str] = set()
        for _, instrument_id in positions:
            underlyings |= _underlyings(engine, instrument_id)
        for ref in engine.references:
            if underlyings and ref.underlying not in underlyings:
                continue
            if ref.from_oracle:
                oracle = engine.oracles.get((ref.venue, ref.instrument))
                seen = None if oracle is None else oracle.publish_ts
            else:
                quote = engine.quotes.get((ref.venue, ref.instrument))
                seen = None if quote is None else quote.ts
            since = seen if seen is not None else self._started_ns
            assert since is not None
            age = now - since
            if age > self.max_data_staleness_ns:
                what = "no" if seen is None else "no fresh"
                return TripCause.STALE_DATA, (
                    f"{what} {ref.underlying} reference price ({ref.venue} {ref.instrument}) for "
                    f"{age // MS} ms with positions open, max_data_staleness_ms "
                    f"{self.max_data_staleness_ns // MS}"
                )
        return None

    def status(self) -> dict[str, object]:
        """A JSON-ready summary for health endpoints and status views."""
        trip = self.tripped
        return {
            "tripped": trip is not None,
            "cause": None if trip is None else trip.cause.value,
            "detail": None if trip is None else trip.detail,
            "since_ns": None if trip is None else trip.ts,
            "daily_pnl": None if self.daily_pnl is None else str(self.daily_pnl),
            "currency": self.currency,
        }


def _underlyings(engine: TradingEngine, instrument_id: str) -> set[str]:
    """Underlyings whose reference prices a position in `instrument_id` depends on (may be empty)."""
    instrument = engine.instruments.get(instrument_id)
    found: set[str] = set()
    if isinstance(instrument, StockPerp | PerpetualOption):
        found.add(instrument.underlying)
        nested = engine.instruments.get(instrument.underlying)
        if isinstance(nested, TokenizedStock):
            found.add(nested.underlying)
    elif isinstance(instrument, Spot):
        for asset in (instrument.base, instrument.quote):
            token = engine.instruments.get(asset)
            found.add(token.underlying if isinstance(token, TokenizedStock) else asset)
    return found
