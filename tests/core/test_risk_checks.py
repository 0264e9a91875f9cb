"""Pre-trade limit checks: each limit refuses exactly past its value, with the reason named."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

import pytest

from connectors.sim.book_exchange import BookExchange
from core.clock import SimulatedClock
from core.engine import ReferenceSource, TradingEngine
from core.enums import OrderStatus, OrderType, Side
from core.events import Quote
from core.instruments import InstrumentRegistry, Spot, StockPerp, TokenizedStock
from core.orders import OrderRequest, Request, SwapRequest
from core.portfolio import Portfolio
from core.risk import RiskLimits
from core.risk_checks import GWEI, LimitChecks
from strategies.base import Strategy
from tests.connectors.sim.venue_harness import SECOND, calendar

D = Decimal
T0 = 1_751_895_000 * SECOND
LIMITS = {
    "max_position": "10",
    "max_notional": "5000",
    "max_order_rate": {"orders_per_second": "3", "window_ms": 1000},
    "max_daily_loss": "1000",
    "max_data_staleness_ms": 60000,
    "price_band_bps": 200,
    "max_gas_price_gwei": 50,
    "overrides": {"PERP": {"max_position": "2"}},
}


def engine() -> TradingEngine:
    registry = InstrumentRegistry(
        [
            TokenizedStock("TSLAx", "TSLA", "xstocks", 1, "0x" + "11" * 20),
            Spot("TSLAx/USDT", "TSLAx", "USDT"),
            Spot("TSLA/USD", "TSLA", "USD"),
            StockPerp("PERP", "TSLA", "USDT"),
        ]
    )
    portfolio = Portfolio(registry)
    portfolio.deposit("ex", "TSLAx", D(8))
    clock = SimulatedClock(T0)
    refs = [ReferenceSource("TSLA", "broker", "TSLA/USD", 60 * SECOND)]
    eng = TradingEngine(
        clock=clock,
        instruments=registry,
        portfolio=portfolio,
        calendar=calendar(),
        venues={},
        references=refs,
    )
    eng.quotes[("broker", "TSLA/USD")] = Quote(T0, "broker", "TSLA/USD", 399.0, 401.0, 1.0, 1.0)
    eng.quotes[("ex", "PERP")] = Quote(T0, "ex", "PERP", 399.0, 401.0, 1.0, 1.0)
    return eng


def order(
    qty: str, price: str | None = "400", side: Side = Side.BUY, instrument: str = "TSLAx/USDT"
) -> OrderRequest:
    kind = OrderType.LIMIT if price is not None else OrderType.MARKET
    return OrderRequest("c-1", "ex", instrument, side, D(qty), kind, D(price) if price else None)


def test_position_limit_counts_what_is_held_and_lets_a_reduction_pass() -> None:
    checks, eng = LimitChecks(RiskLimits.model_validate(LIMITS)), engine()
    assert checks.check(order("2"), eng) is None  # 8 held + 2 = 10: at the limit
    assert checks.check(order("2.5"), eng) == "max_position: TSLAx/USDT would be 10.5, limit 10"
    assert checks.check(order("3", side=Side.SELL), eng) is None


def test_per_instrument_override_and_notional_from_the_mid() -> None:
    checks, eng = LimitChecks(RiskLimits.model_validate(LIMITS)), engine()
    assert checks.check(order("3", None, instrument="PERP"), eng) == "max_position: PERP would be 3, limit 2"
    limits = dict(LIMITS, max_position="1000", overrides={})
    checks = LimitChecks(RiskLimits.model_validate(limits))
    # Market order: notional at the mid (399 + 401) / 2 = 400: 12 x 400 = 4800 passes, 13 x 400 not.
    assert checks.check(order("12", None, instrument="PERP"), eng) is None
    assert checks.check(order("13", None, instrument="PERP"), eng) == "max_notional: 5200.0 USD, limit 5000"


def test_price_band_against_fair_value() -> None:
    checks, eng = LimitChecks(RiskLimits.model_validate(LIMITS)), engine()
    # Fair value 400 (mid x multiplier 1); 200 bps band: 408 passes, 408.04 (201 bps) does not.
    assert checks.check(order("1", "408"), eng) is None
    assert checks.check(order("1", "408.04"), eng) == (
        "price_band_bps: price 408.04 is 201 bps from fair value 400, limit 200"
    )


def test_order_rate_window_slides() -> None:
    checks, eng = LimitChecks(RiskLimits.model_validate(LIMITS)), engine()
    swap = SwapRequest("s", "pool", "P", "USDC", "TSLAx", amount_in=1)
    assert [checks.check(swap, eng) for _ in range(3)] == [None, None, None]
    assert checks.check(swap, eng) == "max_order_rate: 3 requests in the last 1000 ms, limit 3"
    eng.clock.advance_to(T0 + SECOND)  # type: ignore[attr-defined]
    assert checks.check(swap, eng) is None


def test_gas_price_from_the_provider_refuses_above_the_limit_and_when_unknown() -> None:
    prices: dict[str, int] = {"amm": 50 * GWEI}
    checks, eng = LimitChecks(RiskLimits.model_validate(LIMITS), gas_price=prices.get), engine()
    swap = SwapRequest("s", "amm", "P", "USDC", "TSLAx", amount_in=1)
    assert checks.check(swap, eng) is None  # exactly 50 gwei passes
    prices["amm"] = 50 * GWEI + 1
    refused = "max_gas_price_gwei: gas price 50.000000001 gwei on 'amm', limit 50"
    assert [checks.check(swap, eng) for _ in range(3)] == [refused] * 3
    other = SwapRequest("s", "amm2", "P", "USDC", "TSLAx", amount_in=1)
    assert checks.check(other, eng) == "max_gas_price_gwei: gas price on 'amm2' unknown, limit 50"
    # Refusals used none of the 3-per-second window: two more swaps pass (1 sent + 2 = 3).
    prices["amm"] = 12 * GWEI
    assert [checks.check(swap, eng) for _ in range(3)] == [
        None,
        None,
        "max_order_rate: 3 requests in the last 1000 ms, limit 3",
    ]
    # Orders never look at gas; without a provider swaps are not gas-checked.
    assert LimitChecks(RiskLimits.model_validate(LIMITS)).check(swap, eng) is None


@dataclass(frozen=True, slots=True)
class PinnedGasSwap(SwapRequest):
    """A swap that carries the gas price it will pay."""

    gas_price_wei: int | None = None


def test_a_swap_that_pins_its_gas_price_is_judged_by_it() -> None:
    checks = LimitChecks(RiskLimits.model_validate(LIMITS), gas_price=lambda venue: 1)
    eng = engine()
    dear = PinnedGasSwap("s", "amm", "P", "USDC", "TSLAx", amount_in=1, gas_price_wei=51 * GWEI)
    assert checks.check(dear, eng) == "max_gas_price_gwei: gas price 51 gwei on 'amm', limit 50"
    cheap = PinnedGasSwap("t", "amm", "P", "USDC", "TSLAx", amount_in=1, gas_price_wei=49 * GWEI)
    assert checks.check(cheap, eng) is None


async def test_every_refusal_comes_back_rejected_and_is_logged_with_its_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    eng = engine()
    venue = BookExchange(
        "ex", eng.clock, eng.instruments, ["TSLAx/USDT"], {"USDT": D(100_000), "TSLAx": D(8)}
    )
    eng.venues["ex"] = venue
    eng.venues["amm"] = venue  # a refused swap never reaches its venue
    eng.risk_checks.append(LimitChecks(RiskLimits.model_validate(LIMITS), gas_price={"amm": 60 * GWEI}.get))
    ctx = eng.add_strategy(Strategy("s"))
    requests: list[Request] = [
        OrderRequest("pos", "ex", "TSLAx/USDT", Side.BUY, D(3), OrderType.LIMIT, D(400)),
        OrderRequest("band", "ex", "TSLAx/USDT", Side.BUY, D(1), OrderType.LIMIT, D("408.04")),
        SwapRequest("gas", "amm", "P", "USDC", "TSLAx", amount_in=1),
        OrderRequest("ok", "ex", "TSLAx/USDT", Side.BUY, D(1), OrderType.LIMIT, D(400)),
        OrderRequest("notional", "ex", "TSLAx/USDT", Side.SELL, D(8), OrderType.LIMIT, D(700)),
        OrderRequest("rate-1", "ex", "TSLAx/USDT", Side.SELL, D(1), OrderType.LIMIT, D(401)),
        OrderRequest("rate-2", "ex", "TSLAx/USDT", Side.SELL, D(1), OrderType.LIMIT, D(401)),
        OrderRequest("rate-3", "ex", "TSLAx/USDT", Side.SELL, D(1), OrderType.LIMIT, D(401)),
    ]
    with caplog.at_level(logging.WARNING, logger="perpetua.engine"):
        orders = [await ctx.submit(request) for request in requests]
    reasons = {
        "pos": "max_position: TSLAx/USDT would be 11, limit 10",
        "band": "price_band_bps: price 408.04 is 201 bps from fair value 400, limit 200",
        "gas": "max_gas_price_gwei: gas price 60 gwei on 'amm', limit 50",
        "notional": "max_notional: 5600 USD, limit 5000",
        "rate-3": "max_order_rate: 3 requests in the last 1000 ms, limit 3",
    }
    # "ok", "rate-1" and "rate-2" pass (3 sent in the window); each refusal is REJECTED with its reason.
    assert {o.client_order_id: (o.status, o.reason) for o in orders} == {
        r.client_order_id: (
            (OrderStatus.REJECTED, reasons[r.client_order_id])
            if r.client_order_id in reasons
            else (OrderStatus.NEW, "")
        )
        for r in requests
    }
    logged = [(r.levelname, r.getMessage(), getattr(r, "reason", None)) for r in caplog.records]
    assert logged == [("WARNING", f"refused {cid}: {why}", why) for cid, why in reasons.items()]
    assert eng.portfolio.balance("ex", "TSLAx") == D(8)  # nothing moved
