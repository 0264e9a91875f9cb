"""Instruments (multiplier schedules, base units), the registry and the clocks."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.clock import LiveClock, SimulatedClock
from core.errors import InvalidInput
from core.instruments import (
    NS_PER_YEAR,
    InstrumentRegistry,
    MultiplierChange,
    MultiplierSchedule,
    PerpetualOption,
    Pool,
    Spot,
    TokenizedStock,
)

T0 = 1_750_000_000_000_000_000


NO_CHANGES = MultiplierSchedule()


def tslax(schedule: MultiplierSchedule = NO_CHANGES) -> TokenizedStock:
    return TokenizedStock("TSLAx", "TSLA", "xstocks", 1, "0x" + "11" * 20, decimals=18, multiplier=schedule)


def test_multiplier_schedule_applies_at_activation() -> None:
    schedule = MultiplierSchedule(
        Decimal("1"),
        (MultiplierChange(T0, Decimal("1.0042")), MultiplierChange(T0 + 10, Decimal("3.0126"))),
    )
    assert schedule.at(T0 - 1) == Decimal("1")
    assert schedule.at(T0) == Decimal("1.0042")
    assert schedule.at(T0 + 9) == Decimal("1.0042")
    assert schedule.at(T0 + 10) == Decimal("3.0126")
    assert schedule.next_change(T0 - 1) == MultiplierChange(T0, Decimal("1.0042"))
    assert schedule.next_change(T0 + 10) is None
    token = tslax(schedule)
    assert token.fair_value(Decimal("400"), T0 + 5) == Decimal("401.68")


def test_multiplier_schedule_refuses_bad_input() -> None:
    with pytest.raises(InvalidInput, match=r"multiplier.changes\[1\].effective_ts: must be increasing"):
        MultiplierSchedule(Decimal(1), (MultiplierChange(5, Decimal(1)), MultiplierChange(5, Decimal(2))))
    with pytest.raises(InvalidInput, match=r"multiplier.changes\[0\].multiplier: must be > 0"):
        MultiplierSchedule(Decimal(1), (MultiplierChange(5, Decimal(0)),))
    with pytest.raises(InvalidInput, match="multiplier.initial: must be > 0, got Decimal"):
        MultiplierSchedule(Decimal(-1))


def test_base_units_round_trip_exactly() -> None:
    token = tslax()
    assert token.to_base_units(Decimal("1.5")) == 1_500_000_000_000_000_000
    assert token.from_base_units(1) == Decimal("1E-18")
    with pytest.raises(InvalidInput, match="TSLAx.amount: finer than 1e-18"):
        token.to_base_units(Decimal("1e-19"))
    six = TokenizedStock("USDC", "USD", "circle", 1, "0x" + "22" * 20, decimals=6)
    assert six.to_base_units(Decimal("123.456789")) == 123_456_789


def test_instrument_validation_and_registry() -> None:
    with pytest.raises(InvalidInput, match="TSLAx.decimals: must be in 0..36, got 40"):
        TokenizedStock("TSLAx", "TSLA", "xstocks", 1, "0x", decimals=40)
    with pytest.raises(InvalidInput, match="p.version: must be 2 or 3, got 4"):
        Pool("p", "uni", 1, "0x", "A", "B", 3000, version=4)
    option = PerpetualOption(
        "BTC-100000-C",
        "BTC",
        Decimal(100000),
        True,
        7 * 24 * 3600 * 10**9,
        "USD",
        "TSLAx",
        coin_margined=True,
    )
    assert option.funding_period_years == pytest.approx(7 / 365)
    registry = InstrumentRegistry([Spot("TSLAx/USDC", "TSLAx", "USDC"), option, tslax()])
    assert registry.tradable("BTC-100000-C") is option
    with pytest.raises(InvalidInput, match="instrument: is a tokenized_stock, not tradable, got 'TSLAx'"):
        registry.tradable("TSLAx")
    with pytest.raises(InvalidInput, match="instrument: unknown instrument, got 'NOPE'"):
        registry["NOPE"]
    with pytest.raises(InvalidInput, match="instrument.id: already registered, got 'TSLAx'"):
        registry.add(tslax())
    assert len(registry) == 3 and "TSLAx" in registry


def test_ns_per_year() -> None:
    assert NS_PER_YEAR == 31_536_000 * 10**9


def test_clocks() -> None:
    live = LiveClock()
    a = live.now_ns()
    assert a > T0 and live.now_ns() >= a
    sim = SimulatedClock(100)
    sim.advance_to(100)
    sim.advance_to(250)
    assert sim.now_ns() == 250
    with pytest.raises(InvalidInput, match="ts_ns: is before the clock's current time 250, got 249"):
        sim.advance_to(249)
    assert sim.now_ns() == 250
