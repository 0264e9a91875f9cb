"""The assembly: secrets by mode, the sandbox wiring, renaming adapters, run ids, and paper mode on a sandbox.

Paper mode runs for real: the config's venues pointed at a sandbox (its public data as feeds), the
backtester's simulated venues for execution. The references are the chain (the pool's slot0 read
back), the emulators' received requests and the journal file.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from rich.console import Console
from web3 import AsyncHTTPProvider, AsyncWeb3

from bots.assembly import RenamedVenue, build_bot, missing_secrets, run_id, sandbox_config, sandbox_environ
from bots.journal import Journal
from bots.market_driver import DriverParams
from bots.sandbox import Sandbox, SandboxInfo, SandboxParams
from bots.status_view import StatusView, summary
from connectors.evm.uniswap_v3 import UniswapV3Pool
from core.config import Mode, PerpetuaConfig, StockPerpConfig, load_config, parse_config
from core.enums import OrderStatus, OrderType, Side
from core.events import Fill, OrderUpdate, Quote
from core.orders import OrderRequest
from core.venue import VenueState

REPO = Path(__file__).resolve().parents[2]
D = Decimal


def default_config(mode: str = "sandbox") -> PerpetuaConfig:
    return parse_config(
        (REPO / "config.yaml").read_text().replace("mode: sandbox", f"mode: {mode}"), "c.yaml"
    )


# --------------------------------------------------------------------------------------------
# Secrets by mode


def test_live_needs_every_secret_the_config_names() -> None:
    issues = missing_secrets(default_config("live"), {"BINANCE_API_KEY": "x"}, Mode.LIVE)
    assert [str(i) for i in issues] == [
        f"{path}: environment variable {var} is not set; export it before starting the bot"
        for path, var in [
            ("venues[0].keystore_password_env", "PERPETUA_KEYSTORE_PASSWORD"),
            ("venues[1].secret_env", "BINANCE_API_SECRET"),
            ("venues[2].api_key_env", "APCA_API_KEY_ID"),
            ("venues[2].secret_key_env", "APCA_API_SECRET_KEY"),
        ]
    ]


def test_paper_needs_only_market_data_secrets_and_the_sandbox_none() -> None:
    issues = missing_secrets(default_config("paper"), {}, Mode.PAPER)
    assert [i.path for i in issues] == ["venues[2].api_key_env", "venues[2].secret_key_env"]
    assert missing_secrets(default_config(), {}, Mode.SANDBOX) == []


def test_a_storage_password_is_always_needed() -> None:
    text = (
        (REPO / "config.yaml")
        .read_text()
        .replace(
            "url: sqlite+aiosqlite:///perpetua.sqlite",
            "url: postgresql+asyncpg://bot@db/perpetua\n  password_env: DB_PASS",
        )
    )
    issues = missing_secrets(parse_config(text, "c.yaml"), {}, Mode.SANDBOX)
    assert [str(i) for i in issues] == [
        "storage.password_env: environment variable DB_PASS is not set; export it before starting the bot"
    ]


# --------------------------------------------------------------------------------------------
# Sandbox wiring


INFO = SandboxInfo(
    rpc_url="http://127.0.0.1:1111",
    ws_rpc_url="ws://127.0.0.1:1111",
    chain_id=31337,
    anvil_pid=1,
    token="0x5FbDB2315678afecb367f032d93F642f64180aa3",  # type: ignore[arg-type]
    usdc="0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",  # type: ignore[arg-type]
    pool="0x0daC8fCA3592681792D9f47Aa621F42B2A847FC7",  # type: ignore[arg-type]
    factory="0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",  # type: ignore[arg-type]
    router="0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9",  # type: ignore[arg-type]
    quoter="0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9",  # type: ignore[arg-type]
    position_manager="0x0165878A594ca255338adfa4d48449f69242Eb8F",  # type: ignore[arg-type]
    aggregator="0x5FC8d32690cc91D4c39d9d3abcBD16989F875707",  # type: ignore[arg-type]
    wallet="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",  # type: ignore[arg-type]
    binance_url="http://127.0.0.1:2222",
    binance_futures_url="http://127.0.0.1:3333",
    alpaca_url="http://127.0.0.1:4444",
    alpaca_stream_url="ws://127.0.0.1:4444/stream",
    alpaca_data_stream_url="ws://127.0.0.1:4444/v2/iex",
)
JUNE_2026 = 1_782_000_000 * 10**9  # 2026-06-21, after config.yaml's multiplier change (2026-06-15)
JULY_2025 = 1_751_378_400 * 10**9  # the sample


def test_sandbox_config_points_every_venue_at_the_sandbox() -> None:
    cfg = sandbox_config(default_config(), INFO, JULY_2025)
    uniswap, binance, alpaca, _, chainlink, _ = cfg.venues
    assert (uniswap.rpc_url, uniswap.keystore, uniswap.keystore_password_env) == (INFO.rpc_url, None, None)  # type: ignore[union-attr]
    assert (binance.base_url, binance.testnet, binance.markets) == (
        INFO.binance_url,
        False,
        {"TSLAx/USDT": "TSLAX/USDT"},
    )  # type: ignore[union-attr]
    assert binance.options["defaultType"] == "spot"  # type: ignore[union-attr]
    assert isinstance(
        default_config().instrument("TSLA-PERP"), StockPerpConfig
    )  # dropped: spot emulator only
    assert alpaca.base_url == INFO.alpaca_url  # type: ignore[union-attr]
    assert (chainlink.rpc_url, chainlink.feeds) == (INFO.rpc_url, {"TSLA/USD": INFO.aggregator})  # type: ignore[union-attr]
    assert cfg.instrument("TSLAx/USDC").address == INFO.pool  # type: ignore[union-attr]
    # The sample is 2025: the multiplier then was 1.0, and no wall-clock change applies.
    token = cfg.instrument_registry()["TSLAx"]
    assert token.multiplier.at(JUNE_2026) == D("1.0")  # type: ignore[attr-defined]
    assert default_config().instrument_registry()["TSLAx"].multiplier.at(JUNE_2026) == D("1.0042")  # type: ignore[attr-defined]


def test_sandbox_secrets_go_under_the_configs_variable_names() -> None:
    text = (
        (REPO / "config.yaml")
        .read_text()
        .replace("api_key_env: BINANCE_API_KEY", "api_key_env: MY_BINANCE_KEY")
    )
    secrets = {
        "BINANCE_API_KEY": "k1",
        "BINANCE_API_SECRET": "s1",
        "APCA_API_KEY_ID": "k2",
        "APCA_API_SECRET_KEY": "s2",
        "PERPETUA_SANDBOX_PRIVATE_KEY": "0x" + "11" * 32,
    }
    env = sandbox_environ(parse_config(text, "c.yaml"), secrets, {"HOME": "/root"})
    assert env == {
        "HOME": "/root",
        "MY_BINANCE_KEY": "k1",
        "BINANCE_API_SECRET": "s1",
        "APCA_API_KEY_ID": "k2",
        "APCA_API_SECRET_KEY": "s2",
    }


def test_run_ids_are_base_36_seconds() -> None:
    assert run_id(0) == "0"
    assert run_id(35 * 10**9 + 999) == "z"
    assert run_id(36 * 10**9) == "10"
    now = 1_796_285_464 * 10**9
    assert int(run_id(now), 36) == 1_796_285_464 and len(run_id(now)) == 6


# --------------------------------------------------------------------------------------------
# Renaming


class Inner:
    """A venue in its own spelling: symbol TSLA, asset TSLAX; records what it was sent."""

    name = "v"

    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def submit(self, request: Any) -> OrderUpdate:
        self.sent.append(request)
        return OrderUpdate(
            1, "v", request.client_order_id, OrderStatus.FILLED, "9", D(1), D(300), "", D("0.1"), "TSLAX"
        )

    async def cancel(self, client_order_id: str) -> OrderUpdate:
        return OrderUpdate(2, "v", client_order_id, OrderStatus.CANCELLED, "9", D(0), None, "")

    async def snapshot(self) -> VenueState:
        return VenueState("v", 3, {"TSLAX": D(5), "USD": D(7)})

    async def stream(self) -> AsyncIterator[Any]:
        yield Quote(4, "v", "TSLA", 1.0, 2.0, 3.0, 4.0)
        yield Fill(5, "v", "TSLA", "c1", Side.BUY, D(300), D(1), D("0.1"), "TSLAX")


async def test_renamed_venue_speaks_our_ids_both_ways() -> None:
    inner = Inner()
    venue = RenamedVenue(inner, instruments={"TSLA/USD": "TSLA"}, assets={"TSLAx": "TSLAX"})
    request = OrderRequest("c1", "v", "TSLA/USD", Side.BUY, D(1), OrderType.MARKET)
    answer = await venue.submit(request)
    assert inner.sent[0].instrument == "TSLA" and inner.sent[0].client_order_id == "c1"
    assert answer.fee_asset == "TSLAx"
    assert (await venue.snapshot()).balances == {"TSLAx": D(5), "USD": D(7)}
    events = [e async for e in venue.stream()]
    assert events[0].instrument == "TSLA/USD"
    assert (events[1].instrument, events[1].fee_asset) == ("TSLA/USD", "TSLAx")
    assert (await venue.cancel("c1")).status is OrderStatus.CANCELLED


# --------------------------------------------------------------------------------------------
# Paper mode on a sandbox


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def box() -> AsyncIterator[Sandbox]:
    params = SandboxParams(
        start="2025-07-01T14:00:00Z",
        drive=False,
        driver=DriverParams(swap_probability=0.0, depeg_probability=0.0),
    )
    async with Sandbox(params) as sandbox:
        yield sandbox


@pytest.mark.asyncio(loop_scope="module")
async def test_paper_mode_trades_live_data_on_simulated_venues(box: Sandbox, tmp_path: Path) -> None:
    text = (
        REPO / "config.yaml"
    ).read_text() + "  sim:\n    uniswap_local: {block_time_ms: 200, latency_ms: 10}\n"
    cfg = sandbox_config(parse_config(text, "c.yaml"), box.info, box.time.sample_ns)
    cfg = cfg.model_copy(update={"mode": Mode.PAPER})
    env = sandbox_environ(cfg, box.secrets.env(), {})
    db = tmp_path / "paper.sqlite"
    bot = await build_bot(cfg, environ=env, metrics_port=None, storage_url=f"sqlite+aiosqlite:///{db}")
    assert box.binance is not None and box.alpaca is not None
    posts = len(box.binance.requests) + len(box.alpaca.requests)
    task = asyncio.create_task(bot.run(install_signals=False))
    loop = asyncio.get_running_loop()
    try:
        deadline = loop.time() + 60
        while not (bot.engine.fair_value("TSLAx") and bot.engine.pools):
            assert loop.time() < deadline, "no fair value or pool state"
            await box.driver.step()
            await asyncio.sleep(0.15)
        _, depegged = await box.driver.inject_depeg(300)
        while not any(f.venue == "uniswap_local" for f in bot.engine.fills):
            assert loop.time() < deadline + 30, "no simulated fill"
            await box.driver.step()
            await asyncio.sleep(0.15)
    finally:
        bot.stop()
        await task
    (fill,) = [f for f in bot.engine.fills if f.venue == "uniswap_local"]
    # fair_value_taker sells 1.5 TSLAx into the rich pool, simulated: the real pool did not move.
    assert (fill.side, fill.quantity) == (Side.SELL, D("1.5"))
    w3 = AsyncWeb3(AsyncHTTPProvider(box.info.rpc_url))
    pool = UniswapV3Pool(w3, box.info.pool)
    await pool.refresh()
    await w3.provider.disconnect()
    assert pool.state.sqrt_price_x96 == depegged
    posted = [r for r in [*box.binance.requests, *box.alpaca.requests][posts:] if r.method == "POST"]
    assert posted == []  # nothing reached the exchanges
    journal = await Journal.open(f"sqlite+aiosqlite:///{db}")
    try:
        (order,) = await journal.orders(venue="uniswap_local")
        assert order.status == OrderStatus.FILLED.value and order.filled_quantity == D("1.5")
        assert [f.quantity for f in await journal.fills(venue="uniswap_local")] == [D("1.5")]
        # The strategy's decision behind it: the request as sent, passed by the risk checks.
        (decision,) = await journal.decisions()
        assert decision.strategy == "fair_value_taker"
        assert decision.payload["client_order_id"] == order.client_order_id
        assert (decision.payload["request"], decision.payload["verdict"]) == ("SwapRequest", "sent")
    finally:
        await journal.close()
    # The status view of that run (rendered, not shown): mode, the pool's premium row, the fill.
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(StatusView(console).render(bot, None))
    text = console.export_text()
    assert f"perpetua-sandbox  paper mode, run {bot.run_id}" in text
    assert "TSLAx/USDC@uniswap_local" in text and "Open orders (0), fills so far: 1" in text
    assert summary(bot).startswith(f"{bot.driver.events_in} events, 1 fills, 0 open orders, ")
    assert load_config(REPO / "config.yaml").mode is Mode.SANDBOX
