"""Adapters of the simulated venues (`connectors/sim/`): time passes on their simulated clock.

Each venue runs under the `Harness` (the replay driver's part for one venue); `pass_time` moves the
clock one step and feeds the recorded market again at the new time, so latencies elapse and held
zero-latency orders meet a market event.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from connectors.sim.amm import AmmConfig, AmmPoolSpec, SimAmm
from connectors.sim.amm_gas import GasModel
from connectors.sim.book_exchange import BookExchange
from connectors.sim.broker import BrokerAsset, BrokerConfig, SimBroker
from connectors.sim.issuer import IssuedToken, IssuerConfig, SimIssuer
from connectors.sim.reference_price import LastPrice
from core.clock import SimulatedClock
from core.enums import OrderType, Side
from core.events import Event, PoolState, Quote
from core.instruments import InstrumentRegistry, MultiplierSchedule, Pool, Spot, TokenizedStock
from core.orders import MintRequest, OrderRequest, Request, SwapRequest
from tests.connectors.contract.adapter import VenueAdapter
from tests.connectors.sim.venue_harness import MINUTE, SECOND, Harness, calendar, et

D = Decimal
MON_10 = et(2025, 6, 2, 10)  # Monday 10:00 New York: regular session


class SimAdapter(VenueAdapter):
    """Common part: the harness, its accumulated outbox, and a market fed again at every step."""

    step_ns = SECOND

    def __init__(self, harness: Harness, market: list[Event]) -> None:
        self.harness = harness
        self.market = market
        self._seen: list[Event] = []
        self._feed()

    def _feed(self) -> None:
        now = self.harness.clock.now_ns()
        for event in self.market:
            self.harness.feed(event._replace(ts=now))  # type: ignore[attr-defined]

    async def pass_time(self) -> None:
        """Move the clock one step (wake-ups fire in order), then feed the market at the new time."""
        self.harness.run_until(self.harness.clock.now_ns() + self.step_ns)
        self._feed()

    def events(self) -> list[Event]:
        self._seen.extend(self.harness.drain())
        return self._seen


class BookExchangeAdapter(SimAdapter):
    family = "sim-book-exchange"
    tracked = frozenset({"USDT", "TSLAx"})
    pairs: ClassVar[dict[str, tuple[str, str]]] = {"TSLAx/USDT": ("TSLAx", "USDT")}

    def __init__(self) -> None:
        clock = SimulatedClock(MON_10)
        spot = Spot("TSLAx/USDT", "TSLAx", "USDT", price_increment=D("0.01"), size_increment=D("0.001"))
        self.venue = BookExchange(
            "bx", clock, InstrumentRegistry([spot]), [spot.id], {"USDT": D(10_000), "TSLAx": D(10)}
        )
        super().__init__(Harness(self.venue, clock), [Quote(0, "bx", spot.id, 249.5, 250.5, 100.0, 100.0)])

    def valid_request(self, client_order_id: str) -> Request:
        return OrderRequest(client_order_id, "bx", "TSLAx/USDT", Side.BUY, D(2), OrderType.MARKET)

    def invalid_request(self, client_order_id: str) -> tuple[Request, str]:
        return OrderRequest(
            client_order_id, "bx", "NOPE/USDT", Side.BUY, D(2), OrderType.MARKET
        ), "instrument"


class SimBrokerAdapter(SimAdapter):
    family = "sim-broker"
    tracked = frozenset({"USD", "TSLA"})
    pairs: ClassVar[dict[str, tuple[str, str]]] = {"TSLA/USD": ("TSLA", "USD")}

    def __init__(self) -> None:
        clock = SimulatedClock(MON_10)
        tsla = Spot("TSLA/USD", "TSLA", "USD", price_increment=D("0.01"), size_increment=D("0.000000001"))
        self.venue = SimBroker(
            "broker", clock, calendar(), [BrokerAsset(tsla, True, True)], BrokerConfig(),
            {"USD": D(10_000), "TSLA": D(10)},
        )  # fmt: skip
        super().__init__(
            Harness(self.venue, clock), [Quote(0, "broker", tsla.id, 250.0, 250.1, 100.0, 100.0)]
        )

    def valid_request(self, client_order_id: str) -> Request:
        return OrderRequest(client_order_id, "broker", "TSLA/USD", Side.BUY, D("1.5"), OrderType.MARKET)

    def invalid_request(self, client_order_id: str) -> tuple[Request, str]:
        return OrderRequest(
            client_order_id, "broker", "AAPL/USD", Side.BUY, D(1), OrderType.MARKET
        ), "instrument"


class SimIssuerAdapter(SimAdapter):
    family = "sim-issuer"
    tracked = frozenset({"USD", "TSLAx"})
    pairs: ClassVar[dict[str, tuple[str, str]]] = {"TSLAx/USD": ("TSLAx", "USD")}
    step_ns = 5 * MINUTE

    def __init__(self) -> None:
        clock = SimulatedClock(MON_10)
        token = TokenizedStock("TSLAx", "TSLA", "xstocks", 1, "0x" + "11" * 20, 8, MultiplierSchedule(D(1)))
        self.venue = SimIssuer(
            "xstocks", clock, calendar(),
            [IssuedToken(token, Spot("TSLAx/USD", "TSLAx", "USD"), LastPrice("ref", "TSLA"))],
            IssuerConfig(mint_fee_bps=D(10), delay_ns=30 * MINUTE), {"USD": D(5000)},
        )  # fmt: skip
        super().__init__(Harness(self.venue, clock), [Quote(0, "ref", "TSLA", 250.0, 250.1, 100.0, 100.0)])

    def valid_request(self, client_order_id: str) -> Request:
        return MintRequest(client_order_id, "xstocks", "TSLAx", D(2), "USD")

    def invalid_request(self, client_order_id: str) -> tuple[Request, str]:
        return MintRequest(client_order_id, "xstocks", "NVDAx", D(2), "USD"), "token"


class SimAmmAdapter(SimAdapter):
    family = "sim-amm"
    tracked = frozenset({"USD", "TOK", "ETH"})
    pairs: ClassVar[dict[str, tuple[str, str]]] = {"TOK/USD": ("TOK", "USD")}
    step_ns = 12 * SECOND  # a block

    def __init__(self) -> None:
        clock = SimulatedClock(1000 * SECOND)
        pool = Pool("TOK/USD-v2", "uni", 1, "0x" + "11" * 20, "TOK", "USD", 3000, version=2)
        record = PoolState(0, "uni", pool.id, 0, 1000, 1000)
        self.venue = SimAmm(
            "uni", clock, [AmmPoolSpec(pool, Spot("TOK/USD", "TOK", "USD"), record)], {"TOK": 0, "USD": 0},
            AmmConfig(gas=GasModel(price_gwei=D(2))), {"USD": D(100), "ETH": D(1)},
        )  # fmt: skip
        super().__init__(Harness(self.venue, clock), [])

    def valid_request(self, client_order_id: str) -> Request:
        return SwapRequest(client_order_id, "uni", "TOK/USD-v2", "USD", "TOK", amount_in=10)

    def invalid_request(self, client_order_id: str) -> tuple[Request, str]:
        return SwapRequest(client_order_id, "uni", "NOPE", "USD", "TOK", amount_in=10), "pool"
