"""Where a backtest's PnL came from: per venue and per market state (session), marked to fair value.

`backtest.metrics` attributes realized PnL per (venue, instrument) by the average-cost method, which
says nothing for an arbitrage whose legs close on different venues (a token bought on a pool is
hedged on the broker and redeemed at the issuer: no venue ever closes its own position). Here every
fill is marked to the reference at its own instant instead:

- **edge** of a fill [valuation asset]: what it received minus what it gave, both at the reference
  price of that instant: `q x P_base(t) - notional x P_quote(t)` for a buy (the opposite for a
  sell), where a stablecoin counts 1, the stock its reference mid, a tokenized stock mid x
  multiplier (its fair value, what the issuer redeems it for); **costs**: the fill's fee (gas on a
  pool, exchange fee, broker commission, issuer fee) at the same prices, plus the gas burnt by
  reverted swaps (rejections that carry a fee).
- **carry** [valuation asset]: the change in value of the inventory the strategy built (its fills
  only, not the starting balances) between consecutive reference prices,
  `sum_a H_a(t-) x (P_a(t) - P_a(t-))`, booked to the session of the later price. Unhedged
  exposure shows up here; a hedged book carries ~0.
- **passive** [valuation asset]: the same for the starting balances (the drift of holding the
  initial inventory), reported apart: it is not the strategy's doing.

edge + costs + carry + passive = the change in equity valued at the reference, up to float
rounding (`residual` reports the difference against the backtest's own equity).

Sessions come from the dataset's `MarketStatus` stream; reference prices from the dataset's quote
stream of the engine's reference source (the same prices the backtest values equity with).
Derivatives (perps) are not attributed: the bundled sample has none.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from backtest.data import load_dataset
from backtest.result import BacktestResult
from core.enums import Session, Side
from core.events import MarketStatus, Quote
from core.instruments import InstrumentRegistry, Spot, TokenizedStock

DOLLARS = frozenset({"USD", "USDC", "USDT", "DAI"})
"""Assets valued at 1."""


@dataclass(frozen=True, slots=True)
class ReferenceSeries:
    """Reference mids of one underlying: `ts` (ns, sorted) and `mid` (quote per share)."""

    underlying: str
    ts: list[int]
    mid: list[float]

    def at(self, ts: int) -> float | None:
        """The last mid at or before `ts`, or None before the first."""
        i = bisect.bisect_right(self.ts, ts) - 1
        return self.mid[i] if i >= 0 else None


@dataclass(frozen=True, slots=True)
class SessionSeries:
    """Session changes: `ts` (ns, sorted) and the session starting there."""

    ts: list[int]
    session: list[Session]

    def at(self, ts: int) -> str:
        """Name of the session in force at `ts` ('unknown' before the first change)."""
        i = bisect.bisect_right(self.ts, ts) - 1
        return self.session[i].value if i >= 0 else "unknown"


@dataclass(slots=True)
class Attribution:
    """PnL components [valuation asset]; see the module docstring."""

    edge_by_venue: dict[str, float] = field(default_factory=dict)
    costs_by_venue: dict[str, float] = field(default_factory=dict)
    edge_by_session: dict[str, float] = field(default_factory=dict)
    costs_by_session: dict[str, float] = field(default_factory=dict)
    carry_by_session: dict[str, float] = field(default_factory=dict)
    fills_by_venue: dict[str, int] = field(default_factory=dict)
    passive: float = 0.0
    equity_change: float = 0.0

    @property
    def edge(self) -> float:
        """Sum of the fills' edges."""
        return sum(self.edge_by_venue.values())

    @property
    def costs(self) -> float:
        """Sum of fees and gas (negative: paid)."""
        return sum(self.costs_by_venue.values())

    @property
    def carry(self) -> float:
        """Inventory carry of the strategy's own positions."""
        return sum(self.carry_by_session.values())

    @property
    def net_pnl(self) -> float:
        """The strategy's PnL after all costs: edge + costs + carry (the starting inventory excluded)."""
        return self.edge + self.costs + self.carry

    @property
    def residual(self) -> float:
        """equity change - (net PnL + passive drift): float rounding and unattributed parts."""
        return self.equity_change - self.net_pnl - self.passive

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary."""
        return {
            "net_pnl": self.net_pnl,
            "edge": self.edge,
            "costs": self.costs,
            "carry": self.carry,
            "passive": self.passive,
            "equity_change": self.equity_change,
            "residual": self.residual,
            "by_venue": {
                v: {
                    "fills": self.fills_by_venue.get(v, 0),
                    "edge": self.edge_by_venue.get(v, 0.0),
                    "costs": self.costs_by_venue.get(v, 0.0),
                    "net": self.edge_by_venue.get(v, 0.0) + self.costs_by_venue.get(v, 0.0),
                }
                for v in sorted(set(self.edge_by_venue) | set(self.costs_by_venue))
            },
            "by_session": {
                s: {
                    "edge": self.edge_by_session.get(s, 0.0),
                    "costs": self.costs_by_session.get(s, 0.0),
                    "carry": self.carry_by_session.get(s, 0.0),
                    "net": self.edge_by_session.get(s, 0.0)
                    + self.costs_by_session.get(s, 0.0)
                    + self.carry_by_session.get(s, 0.0),
                }
                for s in sorted(
                    set(self.edge_by_session) | set(self.carry_by_session) | set(self.costs_by_session)
                )
            },
        }


class _Pricer:
    """Reference price of any asset at an instant (valuation asset per unit), or None."""

    def __init__(self, registry: InstrumentRegistry, references: Mapping[str, ReferenceSeries]) -> None:
        self.registry = registry
        self.references = references

    def price(self, asset: str, ts: int) -> float | None:
        if asset in DOLLARS:
            return 1.0
        reference = self.references.get(asset)
        if reference is not None:
            return reference.at(ts)
        if asset in self.registry:
            token = self.registry[asset]
            if isinstance(token, TokenizedStock):
                ref = self.references.get(token.underlying)
                mid = None if ref is None else ref.at(ts)
                return None if mid is None else mid * float(token.multiplier.at(ts))
        return None

    def assets(self) -> Iterable[str]:
        """Every non-dollar asset the pricer can value: underlyings and their tokens."""
        yield from self.references
        for instrument in self.registry:
            if isinstance(instrument, TokenizedStock) and instrument.underlying in self.references:
                yield instrument.id


def attribute(
    result: BacktestResult,
    registry: InstrumentRegistry,
    references: Mapping[str, ReferenceSeries],
    sessions: SessionSeries,
    initial_balances: Mapping[tuple[str, str], Decimal],
) -> Attribution:
    """Split a backtest's PnL into edge, costs, carry (per venue and session) and passive drift."""
    pricer = _Pricer(registry, references)
    out = Attribution()
    held: dict[str, float] = {}  # the strategy's own inventory per asset (summed over venues)
    start: dict[str, float] = {}
    for (_, asset), amount in initial_balances.items():
        start[asset] = start.get(asset, 0.0) + float(amount)
    risky = sorted(set(pricer.assets()))
    # Timeline: every reference price change, and every fill (fills after prices of the same ts).
    price_times = sorted(
        {t for ref in references.values() for t in ref.ts if result.start_ns <= t < result.end_ns}
    )
    fills = sorted(result.fills, key=lambda f: f.ts)
    last_prices = {a: pricer.price(a, result.start_ns) for a in risky}
    fi = 0
    for t in [*price_times, result.end_ns]:
        while fi < len(fills) and fills[fi].ts <= t and (fills[fi].ts < t or t == result.end_ns):
            _book_fill(fills[fi], registry, pricer, sessions, held, out)
            fi += 1
        session = sessions.at(t)
        for asset in risky:
            now = pricer.price(asset, t)
            before = last_prices[asset]
            if now is not None and before is not None:
                move = now - before
                if move:
                    out.carry_by_session[session] = (
                        out.carry_by_session.get(session, 0.0) + held.get(asset, 0.0) * move
                    )
                    out.passive += start.get(asset, 0.0) * move
            if now is not None:
                last_prices[asset] = now
    for fill in fills[fi:]:
        _book_fill(fill, registry, pricer, sessions, held, out)
    for update in result.rejections:
        if update.fee:
            cost = -float(update.fee) * (pricer.price(update.fee_asset, update.ts) or 0.0)
            _add(out.costs_by_venue, update.venue, cost)
            _add(out.costs_by_session, sessions.at(update.ts), cost)
    out.equity_change = float(result.final_equity - result.initial_equity)
    return out


def _add(table: dict[str, float], key: str, value: float) -> None:
    table[key] = table.get(key, 0.0) + value


def _book_fill(
    fill: Any,
    registry: InstrumentRegistry,
    pricer: _Pricer,
    sessions: SessionSeries,
    held: dict[str, float],
    out: Attribution,
) -> None:
    """Edge and cost of one spot fill at the reference prices of its instant; moves `held`."""
    pair = registry[fill.instrument]
    if not isinstance(pair, Spot):
        return  # derivatives are not attributed (see the module docstring)
    sign = 1.0 if fill.side is Side.BUY else -1.0
    quantity = float(fill.quantity)
    notional = float(fill.notional if fill.notional is not None else fill.quantity * fill.price)
    base_price = pricer.price(pair.base, fill.ts)
    quote_price = pricer.price(pair.quote, fill.ts)
    session = sessions.at(fill.ts)
    out.fills_by_venue[fill.venue] = out.fills_by_venue.get(fill.venue, 0) + 1
    if base_price is not None and quote_price is not None:
        edge = sign * (quantity * base_price - notional * quote_price)
        _add(out.edge_by_venue, fill.venue, edge)
        _add(out.edge_by_session, session, edge)
    if fill.fee:
        fee_price = pricer.price(fill.fee_asset, fill.ts) or 0.0
        cost = -float(fill.fee) * fee_price
        _add(out.costs_by_venue, fill.venue, cost)
        _add(out.costs_by_session, session, cost)
    held[pair.base] = held.get(pair.base, 0.0) + sign * quantity
    held[pair.quote] = held.get(pair.quote, 0.0) - sign * notional
    if fill.fee:
        held[fill.fee_asset] = held.get(fill.fee_asset, 0.0) - float(fill.fee)


def load_references(
    data_dir: Any, sources: Iterable[tuple[str, str, str]], start_ns: int, end_ns: int
) -> dict[str, ReferenceSeries]:
    """Reference mids per underlying: `sources` are the (underlying, venue, instrument) quote streams."""
    dataset = load_dataset(data_dir)
    wanted = {(venue, instrument): underlying for underlying, venue, instrument in sources}
    found: dict[str, ReferenceSeries] = {}
    for entry, stream in zip(dataset.manifest.streams, dataset.streams, strict=True):
        key = (entry.constants.get("venue", ""), entry.constants.get("instrument", ""))
        if entry.event != "Quote" or key not in wanted:
            continue
        ts: list[int] = []
        mid: list[float] = []
        for chunk in stream.chunks():
            for event in chunk.events:
                assert isinstance(event, Quote)
                if event.ts < end_ns:
                    ts.append(event.ts)
                    mid.append(0.5 * (event.bid + event.ask))
        found[wanted[key]] = ReferenceSeries(wanted[key], ts, mid)
    return found


def load_sessions(data_dir: Any) -> SessionSeries:
    """Session changes from a dataset's MarketStatus stream."""
    dataset = load_dataset(data_dir)
    ts: list[int] = []
    session: list[Session] = []
    for entry, stream in zip(dataset.manifest.streams, dataset.streams, strict=True):
        if entry.event != "MarketStatus":
            continue
        for chunk in stream.chunks():
            for event in chunk.events:
                assert isinstance(event, MarketStatus)
                ts.append(event.ts)
                session.append(event.session)
    return SessionSeries(ts, session)
