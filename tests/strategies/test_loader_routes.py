"""The plugin example loads by all three routes and backtests the same on constructed events.

Routes: a class path (`examples.custom_strategy:TokenMeanReversion`), a file path
(`examples/custom_strategy.py[:TokenMeanReversion]`) and an entry point of a real distribution
installed into a temporary site directory (a `*.dist-info` with `entry_points.txt`, found by
importlib.metadata on sys.path like any installed package).

The scenario, worked by hand. Fair value = the oracle's TSLA price x multiplier 1 = 250 USDT.
entry 50 bps: buy when the ask < 250 x 0.995 = 248.75; exit 10 bps: sell when the bid >= 249.75.
1. Quote 247/248: 248 < 248.75, buy 1 IOC at 248.00; taker fee 5 bps = 0.124 USDT.
2. Quote 249.5/250.5: bid 249.5 < 249.75, hold.
3. Quote 249.9/250.5: sell 1 IOC at 249.90; fee 0.12495.
USDT: 10000 - 248 - 0.124 + 249.9 - 0.12495 = 10001.65105.
"""

from __future__ import annotations

import shutil
import sys
from decimal import Decimal
from importlib import metadata
from pathlib import Path

import pytest

from backtest.replay import ListStream, ReplayDriver
from connectors.sim.book_exchange import BookExchange, BookExchangeConfig
from connectors.sim.fees import FeeSchedule
from connectors.sim.latency import LatencyModel
from core.clock import SimulatedClock
from core.config import parse_config
from core.engine import ReferenceSource, TradingEngine
from core.enums import Side
from core.events import Event, OraclePrice, Quote
from core.instruments import InstrumentRegistry, Spot, TokenizedStock
from core.portfolio import Portfolio
from strategies.base import Strategy
from strategies.loader import ENTRY_POINT_GROUP, available, load_strategies, resolve
from tests.connectors.sim.venue_harness import MS, SECOND, calendar

D = Decimal
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "custom_strategy.py"
T0 = 1_767_225_600_000_000_000  # 2026-01-01 00:00 UTC
TOKEN = TokenizedStock("TSLAx", "TSLA", "xstocks", 1, "0x" + "33" * 20)
PAIR = Spot("TSLAx/USDT", "TSLAx", "USDT", price_increment=D("0.01"), size_increment=D("0.001"))
PARAMS = {
    "token": "TSLAx",
    "venue": "bx",
    "instrument": "TSLAx/USDT",
    "entry_bps": 50,
    "exit_bps": 10,
    "order_size": 1,
    "max_position": 1,
}
EP_NAME = "token_mean_reversion_test"


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A distribution `perpetua-example-plugin` holding a copy of the example, on sys.path."""
    site = tmp_path / "site"
    package = site / "perpetua_example_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    shutil.copy(EXAMPLE, package / "custom_strategy.py")
    info = site / "perpetua_example_plugin-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: perpetua-example-plugin\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n{EP_NAME} = perpetua_example_plugin.custom_strategy:TokenMeanReversion\n"
    )
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in [m for m in sys.modules if m.startswith("perpetua_example_plugin")]:
        del sys.modules[name]


def config_text(reference: str) -> str:
    return f"""
mode: backtest
venues:
  - {{name: bx, kind: sim_book, markets: [TSLAx/USDT]}}
instruments:
  - {{id: TSLAx, kind: tokenized_stock, underlying: TSLA, issuer: xstocks, chain_id: 1,
     address: "0x{"33" * 20}", decimals: 18}}
  - {{id: TSLAx/USDT, kind: spot, base: TSLAx, quote: USDT, price_increment: 0.01, size_increment: 0.001}}
strategies:
  - name: reverter
    strategy: "{reference}"
    venues: [bx]
    instruments: [TSLAx/USDT]
    params: {PARAMS}
risk:
  currency: USD
  max_position: 100
  max_notional: 100000
  max_order_rate: {{orders_per_second: 5, window_ms: 1000}}
  max_daily_loss: 1000
  max_data_staleness_ms: 5000
  price_band_bps: 200
  max_gas_price_gwei: 50
backtest: {{data_dir: data/sample/, start: 2026-01-01, end: 2026-01-02}}
"""


def backtest(strategy: Strategy) -> TradingEngine:
    """The strategy through the real engine, replay driver and simulated order-book exchange."""
    clock = SimulatedClock(T0 - SECOND)
    registry = InstrumentRegistry([TOKEN, PAIR])
    start = {"USDT": D(10_000)}
    portfolio = Portfolio(registry)
    portfolio.deposit("bx", "USDT", start["USDT"])
    config = BookExchangeConfig(
        fees=FeeSchedule(maker_bps=D(1), taker_bps=D(5)), order_latency=LatencyModel.constant(10 * MS)
    )
    venue = BookExchange("bx", clock, registry, [PAIR.id], start, config)
    engine = TradingEngine(
        clock=clock,
        instruments=registry,
        portfolio=portfolio,
        calendar=calendar(),
        venues={"bx": venue},
        strategies=[strategy],
        references=[ReferenceSource("TSLA", "chainlink", "TSLA/USD", 5 * SECOND, from_oracle=True)],
    )
    events: list[Event] = [
        OraclePrice(T0, "chainlink", "TSLA/USD", 250.0, T0),
        Quote(T0 + SECOND, "bx", "TSLAx/USDT", 247.0, 248.0, 5.0, 5.0),
        Quote(T0 + 2 * SECOND, "bx", "TSLAx/USDT", 249.5, 250.5, 5.0, 5.0),
        OraclePrice(T0 + 3 * SECOND, "chainlink", "TSLA/USD", 250.0, T0 + 3 * SECOND),
        Quote(T0 + 4 * SECOND, "bx", "TSLAx/USDT", 249.9, 250.5, 5.0, 5.0),
        OraclePrice(T0 + 5 * SECOND, "chainlink", "TSLA/USD", 250.0, T0 + 5 * SECOND),  # the run ends here
    ]
    ReplayDriver(engine, clock, [venue]).run([ListStream(events, "recorded")])
    return engine


def load_and_run(reference: str) -> tuple[type[Strategy], TradingEngine]:
    (strategy,) = load_strategies(parse_config(config_text(reference)))
    return type(strategy), backtest(strategy)


def assert_hand_worked(engine: TradingEngine) -> None:
    fills = [(f.side, f.price, f.quantity, f.fee) for f in engine.fills]
    assert fills == [(Side.BUY, D("248.00"), D(1), D("0.124")), (Side.SELL, D("249.90"), D(1), D("0.12495"))]
    assert engine.portfolio.balance("bx", "USDT") == D("10001.65105")
    assert engine.portfolio.balance("bx", "TSLAx") == 0


def test_class_path_route() -> None:
    cls, engine = load_and_run("examples.custom_strategy:TokenMeanReversion")
    assert cls.__module__ == "examples.custom_strategy"
    assert_hand_worked(engine)


@pytest.mark.parametrize("suffix", [":TokenMeanReversion", ""])
def test_file_path_route(suffix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # relative paths are relative to the working directory
    cls, engine = load_and_run(f"examples/custom_strategy.py{suffix}")
    assert cls.__name__ == "TokenMeanReversion" and cls.__module__.startswith("perpetua_plugin_")
    assert Path(sys.modules[cls.__module__].__file__ or "") == EXAMPLE
    assert_hand_worked(engine)
    # the same file twice is the same class (imported once)
    assert resolve(str(EXAMPLE)) is cls


def test_entry_point_route(installed_plugin: Path) -> None:
    (ep,) = metadata.entry_points(group=ENTRY_POINT_GROUP, name=EP_NAME)
    assert ep.dist is not None and ep.dist.name == "perpetua-example-plugin"
    cls, engine = load_and_run(EP_NAME)
    assert cls.__module__ == "perpetua_example_plugin.custom_strategy"
    assert_hand_worked(engine)
    listed = {a.name: a for a in available()}
    assert listed[EP_NAME].source == "entry point"
    assert listed[EP_NAME].distribution == "perpetua-example-plugin"


def test_without_the_distribution_the_name_is_unknown() -> None:
    with pytest.raises(Exception, match=f"no builtin strategy or {ENTRY_POINT_GROUP} entry point"):
        resolve(EP_NAME)
