"""The bot end to end in sandbox mode: the real assembly, connectors, engine and journal on the sandbox.

One sandbox serves the module (anvil with the real Uniswap v3 contracts, the Binance and Alpaca
emulators); its market driver is stepped by the tests (no noise traders, no random depegs), so the
pool moves only by the test's `inject_depeg` and by the bot. References are independent of the bot:
the pool's price read from slot0 through `UniswapV3Pool`, the wallet's token balance through the
ERC-20, the orders the emulators received, the journal's SQLite file read back with `Journal`.
Waits are bounded (a hang guard), never asserted on.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner, Result
from web3 import AsyncHTTPProvider, AsyncWeb3

from bots.assembly import Bot, build_bot
from bots.cli import app
from bots.journal import Journal, fill_key
from bots.market_driver import DriverParams
from bots.sandbox import PRIVATE_KEY_ENV, Sandbox, SandboxParams
from connectors.emulators.binance import Fault
from connectors.evm.anvil import find_anvil
from connectors.evm.erc20 import ERC20
from connectors.evm.keys import write_keystore
from connectors.evm.uniswap_events import V3Swap, decode_log
from connectors.evm.uniswap_v3 import UniswapV3Pool
from core.config import PerpetuaConfig, parse_config
from core.enums import OrderStatus, Side

e2e = pytest.mark.asyncio(loop_scope="module")

REPO = Path(__file__).resolve().parents[2]
PARAMS = SandboxParams(
    start="2025-07-01T14:00:00Z",  # a Tuesday, 30 minutes into the regular session
    drive=False,
    driver=DriverParams(swap_probability=0.0, depeg_probability=0.0, seed=5),
)
DEPEG_ARB = """  - name: depeg_arb
    strategy: strategies.depeg_arb:DepegArb
    venues: [uniswap_local, alpaca]
    instruments: [TSLAx/USDC, TSLA/USD, TSLAx]
    params:
      token: TSLAx
      pools:
        - {venue: uniswap_local, pool: TSLAx/USDC, gas_units: 130000, gas_tick_units: 20000,
           gas_price_gwei: 2, native_price: 3000, slippage_bps: 20, quote_decimals: 6}
      broker_venue: alpaca
      stock_instrument: TSLA/USD
      broker_spread_bps: 2
      broker_fee_bps: 1
      max_unhedged_shares: 20
      max_trade_tokens: 80
      max_hedge_shares: 20
      min_profit: 1
      open_pause_minutes: 0
      open_wide_minutes: 0
      check_interval_s: 60
"""


def config_text(
    strategy: str = DEPEG_ARB, *, staleness_ms: int = 90_000, mode: str = "sandbox", daily_loss: int = 10**6
) -> str:
    """config.yaml with its strategies replaced, the data staleness limit and the daily loss limit set.

    The sandbox runs a sample day in minutes: the inventory's swings would trip a day's limit of
    1000 USD within a test, so the tests that are not about the kill switch raise it. The order
    rate limit is raised too: the strategy closes a gap with a swap and a hedge every few 100 ms.
    """
    text = (REPO / "config.yaml").read_text()
    head, _, rest = text.partition("strategies:\n")
    _, _, tail = rest.partition("# ----")
    text = head + "strategies:\n" + strategy + "\n# ----" + tail
    text = text.replace("max_data_staleness_ms: 90000 ", f"max_data_staleness_ms: {staleness_ms} ")
    text = text.replace("max_daily_loss: 1000 ", f"max_daily_loss: {daily_loss} ")
    # a swap and its hedge every few hundred ms while a gap closes: more than 5 requests a second
    text = text.replace("orders_per_second: 5 ", "orders_per_second: 50 ")
    return text.replace("mode: sandbox", f"mode: {mode}")


def sandbox_cfg(**kw: Any) -> PerpetuaConfig:
    return parse_config(config_text(**kw), "e2e.yaml")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def box() -> AsyncIterator[Sandbox]:
    async with Sandbox(PARAMS) as sandbox:
        yield sandbox


@pytest_asyncio.fixture(loop_scope="module")
async def w3(box: Sandbox) -> AsyncIterator[AsyncWeb3[Any]]:
    web3 = AsyncWeb3(AsyncHTTPProvider(box.info.rpc_url))
    yield web3
    await web3.provider.disconnect()


async def until(
    box: Sandbox,
    condition: Callable[[], bool | Awaitable[bool]],
    what: str,
    limit_s: float = 60.0,
    bot: Bot | None = None,
) -> None:
    """Step the market (fresh quotes, rounds, sessions) until `condition()`; a hang guard, not a check.

    Giving up names what the bot did last (`bot`'s orders, refusals and market state).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        done = condition()
        if done if isinstance(done, bool) else await done:
            return
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {limit_s} s" + explain(bot))
        await box.driver.step()
        await asyncio.sleep(0.15)


def explain(bot: Bot | None) -> str:
    """The bot's last orders and refusals, its strategy's exposure and what it knows of the market."""
    if bot is None:
        return ""
    engine = bot.engine
    orders = [(o.request.venue, o.status.value, o.reason) for o in list(engine.orders)[-5:]]
    refusals = [r.reason for r in engine.rejections[-5:]]
    strategy: Any = engine.strategies[0]
    delta = strategy.net_delta(engine.contexts[0]) if hasattr(strategy, "net_delta") else None
    return (
        f"; last orders {orders}; last refusals {refusals}; net delta {delta}; "
        f"kill switch {bot.kill_switch.tripped}; pools {dict(engine.pools)}; quotes {dict(engine.quotes)}"
    )


async def pool_sqrt_price(box: Sandbox, w3: AsyncWeb3[Any]) -> int:
    """The pool's Q64.96 sqrt price, read from slot0."""
    pool = UniswapV3Pool(w3, box.info.pool)
    await pool.refresh()
    return pool.state.sqrt_price_x96


def premium_bps(box: Sandbox, sqrt_price_x96: int) -> float:
    """A pool sqrt price (USDC per TSLAx) vs the broker emulator's mid now, in bps."""
    price = Decimal(sqrt_price_x96) ** 2 / Decimal(2**192) * Decimal(10**12)
    assert box.alpaca is not None
    quote = box.alpaca.quotes["TSLA"]
    fair = (quote.bid + quote.ask) / 2
    return float((price / fair - 1) * 10_000)


def settled(bot: Bot, w3: AsyncWeb3[Any], fills_before: int) -> Callable[[], Awaitable[bool]]:
    """True once the bot swapped on the pool, hedged it all, and has seen the pool after its last swap."""
    strategy: Any = bot.engine.strategies[0]
    ctx = bot.engine.contexts[0]

    async def check() -> bool:
        swaps = [f for f in bot.engine.fills[fills_before:] if f.venue == "uniswap_local"]
        if not swaps or bot.engine.open_orders() or abs(strategy.net_delta(ctx)) >= Decimal("0.01"):
            return False
        receipt = await w3.eth.get_transaction_receipt(swaps[-1].trade_id)  # type: ignore[arg-type]
        state = bot.engine.pools[("uniswap_local", "TSLAx/USDC")]
        return state.block_number >= receipt["blockNumber"]  # it decided on the pool after its swap

    return check


def alpaca_orders(box: Sandbox) -> list[dict[str, Any]]:
    assert box.alpaca is not None
    return [r.body for r in box.alpaca.requests_to("/v2/orders", "POST") if r.body is not None]


async def started(cfg: PerpetuaConfig, box: Sandbox, db: Path) -> tuple[Bot, asyncio.Task[None]]:
    bot = await build_bot(cfg, sandbox=box, metrics_port=0, storage_url=f"sqlite+aiosqlite:///{db}")
    task = asyncio.create_task(bot.run(install_signals=False))
    return bot, task


async def stopped(bot: Bot, task: asyncio.Task[None]) -> None:
    bot.stop()
    async with asyncio.timeout(30):
        await task


# --------------------------------------------------------------------------------------------
# Trading


@e2e
async def test_the_bot_closes_an_injected_depeg_and_hedges_on_the_broker(
    box: Sandbox, w3: AsyncWeb3[Any], tmp_path: Path
) -> None:
    token = ERC20(w3, box.info.token)
    tokens_before = await token.balance_of(box.info.wallet)
    orders_before = len(alpaca_orders(box))
    bot, task = await started(sandbox_cfg(), box, tmp_path / "journal.sqlite")
    strategy: Any = bot.engine.strategies[0]
    ctx = bot.engine.contexts[0]

    try:
        await until(
            box, lambda: strategy.fair_value(ctx) is not None and bool(bot.engine.pools), "fair value"
        )
        _, depegged = await box.driver.inject_depeg(300)
        premium_before = premium_bps(box, depegged)
        await until(box, settled(bot, w3, 0), "the arbitrage and its hedge", bot=bot)
    finally:
        await stopped(bot, task)
    premium_after = premium_bps(box, await pool_sqrt_price(box, w3))

    sold = Decimal(tokens_before - await token.balance_of(box.info.wallet)) / 10**18
    assert sold > 0
    # The gap closed down to the trade's costs (pool fee 30 bps, hedge 3, mint 10, safety 10, gas),
    # not beyond fair value.
    assert premium_before > 295
    assert 0 < premium_after < 80
    # The hedge: market buys at the broker for exactly what was sold (in 1e-9 share steps).
    orders = alpaca_orders(box)[orders_before:]
    assert orders and all(
        o["side"] == "buy" and o["type"] == "market" and o["symbol"] == "TSLA" for o in orders
    )
    bought = sum(Decimal(o["qty"]) for o in orders)
    assert Decimal(0) <= sold - bought < Decimal("1e-9") * len(orders)
    assert box.alpaca is not None and box.alpaca.position("TSLA") >= bought
    # Every order went through the journal, with the venue's fills.
    journal = await Journal.open(f"sqlite+aiosqlite:///{tmp_path / 'journal.sqlite'}")
    try:
        journaled = await journal.orders()
        assert {o.client_order_id for o in journaled} == {o.client_order_id for o in bot.engine.orders}
        assert all(o.status == OrderStatus.FILLED.value for o in journaled)
        fills = await journal.fills()
        assert sum(f.quantity for f in fills if f.venue == "alpaca") == bought
        assert sum(f.quantity for f in fills if f.venue == "uniswap_local" and f.side is Side.SELL) == sold
    finally:
        await journal.close()


async def arbitraged(box: Sandbox, bot: Bot, w3: AsyncWeb3[Any], bps: float = 300) -> None:
    """Wait for a fresh fair value and a pool state, open a gap of `bps`, wait until it is traded."""
    strategy: Any = bot.engine.strategies[0]
    ctx = bot.engine.contexts[0]
    await until(box, lambda: strategy.fair_value(ctx) is not None and bool(bot.engine.pools), "fair value")
    fills_before = len(bot.engine.fills)
    await box.driver.inject_depeg(bps)
    await until(box, settled(bot, w3, fills_before), "the arbitrage and its hedge", bot=bot)


# --------------------------------------------------------------------------------------------
# Risk


@e2e
async def test_the_kill_switch_trips_on_stale_data_and_holds(
    box: Sandbox, w3: AsyncWeb3[Any], tmp_path: Path
) -> None:
    bot, task = await started(sandbox_cfg(staleness_ms=3000), box, tmp_path / "journal.sqlite")
    loop = asyncio.get_running_loop()
    try:
        await arbitraged(box, bot, w3)  # positions are open now
        assert bot.kill_switch.tripped is None
        # The market stands still: no broker quote for longer than max_data_staleness_ms.
        deadline = loop.time() + 30
        while bot.kill_switch.tripped is None and loop.time() < deadline:  # noqa: ASYNC110 - polled state
            await asyncio.sleep(0.2)
        trip = bot.kill_switch.tripped
        assert trip is not None and trip.cause.value == "stale_data"
        assert trip.detail.startswith("no fresh TSLA reference price (alpaca TSLA/USD) for ")
        assert trip.detail.endswith(" ms with positions open, max_data_staleness_ms 3000")
        nonce = await w3.eth.get_transaction_count(box.info.wallet)
        broker_orders = len(alpaca_orders(box))
        orders = len(list(bot.engine.orders))
        # The market comes back with a new gap: the strategy tries, the switch holds until a reset.
        await box.driver.inject_depeg(300)
        refused = f"kill switch (stale_data): {trip.detail}; refusing new orders until reset"
        await until(
            box, lambda: any(r.reason == refused for r in bot.engine.rejections), "a refused order", bot=bot
        )
        assert bot.kill_switch.tripped == trip
        assert await w3.eth.get_transaction_count(box.info.wallet) == nonce  # nothing sent on chain
        assert len(alpaca_orders(box)) == broker_orders
        new = list(bot.engine.orders)[orders:]
        assert new and all(o.status is OrderStatus.REJECTED and o.reason == refused for o in new)
        health = bot.metrics_server
        assert health is not None
        async with aiohttp.ClientSession() as session, session.get(health.url + "/health") as reply:
            body = await reply.json()
        assert reply.status == 503 and body["checks"]["kill_switch"]["ok"] is False
    finally:
        await stopped(bot, task)


# --------------------------------------------------------------------------------------------
# Outages


@e2e
async def test_an_exchange_outage_and_dropped_streams_are_survived(
    box: Sandbox, w3: AsyncWeb3[Any], tmp_path: Path
) -> None:
    bot, task = await started(sandbox_cfg(), box, tmp_path / "journal.sqlite")
    assert box.binance is not None and box.alpaca is not None
    try:
        key = ("binance", "TSLAx/USDT")
        await until(
            box, lambda: key in bot.engine.quotes and ("alpaca", "TSLA/USD") in bot.engine.quotes, "quotes"
        )
        # Binance stops answering (every REST call a 503) and drops its websockets; Alpaca drops its own.
        box.binance.inject(Fault("server_error", times=40))
        down_ns = time.time_ns()
        await box.binance.streams.drop()
        await box.alpaca.drop_streams()
        binance = next(h for h in bot.driver.health if h.venue == "binance")
        await until(box, lambda: binance.restarts > 0, "the binance stream to fail over")
        assert binance.errors[0].startswith("VenueUnavailable: binance: ")  # REST gave up; the bot did not
        await until(
            box,
            lambda: (
                bot.engine.quotes[key].ts > down_ns and bot.engine.quotes[("alpaca", "TSLA/USD")].ts > down_ns
            ),
            "quotes after the outage",
        )
        assert not task.done()
        # ... and the bot still trades.
        await arbitraged(box, bot, w3)
        assert not task.done()
    finally:
        box.binance.faults.clear()
        await stopped(bot, task)


@e2e
async def test_an_anvil_restart_is_survived(box: Sandbox, w3: AsyncWeb3[Any], tmp_path: Path) -> None:
    bot, task = await started(sandbox_cfg(), box, tmp_path / "journal.sqlite")
    assert box.anvil is not None
    try:
        await until(box, lambda: bool(bot.engine.pools), "a pool state")
        state = (await w3.provider.make_request("anvil_dumpState", []))["result"]
        node = box.anvil
        await node.stop()
        await asyncio.sleep(1.0)  # the bot polls a dead node meanwhile
        node.process = await asyncio.create_subprocess_exec(
            str(find_anvil()),
            *node.args,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while True:
            try:
                await w3.eth.chain_id
                break
            except Exception:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.1)
        assert (await w3.provider.make_request("anvil_loadState", [state]))["result"] is True
        fills = len(bot.engine.fills)
        await arbitraged(box, bot, w3)
        assert not task.done()
        assert any(f.venue == "uniswap_local" for f in bot.engine.fills[fills:])
    finally:
        await stopped(bot, task)


# --------------------------------------------------------------------------------------------
# Refusing to start


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250", **(env or {})})


def refusal(result: Result) -> list[str]:
    """The command's own stderr lines: asyncio's notes on other tests' leftover tasks, which the
    garbage collector may log while the command runs, are not the command's."""
    lines = result.stderr.splitlines()
    return [line for line in lines if " asyncio: " not in line and not line.startswith("task: ")]


def test_a_bad_config_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        config_text().replace("venues: [uniswap_local, alpaca]", "venues: [uniswap_local, alpacka]")
    )
    result = invoke("run", str(path), "--no-metrics")
    assert result.exit_code == 2
    assert refusal(result) == [
        f"Invalid config {path} (1 problem):",
        "  strategies[0].venues[1]: unknown venue (did you mean 'alpaca'?), got 'alpacka'",
    ]


def test_bad_strategy_parameters_refuse_to_start(tmp_path: Path) -> None:
    path = tmp_path / "bad_params.yaml"
    path.write_text(config_text().replace("max_trade_tokens: 80", "max_trade_tokens: -5"))
    result = invoke("run", str(path), "--no-metrics")
    assert result.exit_code == 2
    lines = refusal(result)
    assert lines[0] == "perpetua run: cannot start perpetua-sandbox (1 problem(s)):"
    assert lines[1].startswith("  strategies[0].params.max_trade_tokens: ")
    assert lines[1].endswith("got -5")


LIVE_VARS = [
    "PERPETUA_KEYSTORE_PASSWORD",
    "BINANCE_API_KEY",
    "BINANCE_API_SECRET",
    "APCA_API_KEY_ID",
    "APCA_API_SECRET_KEY",
]


def test_missing_secrets_refuse_to_start_naming_key_and_variable(tmp_path: Path) -> None:
    path = tmp_path / "live.yaml"
    path.write_text(config_text(mode="live"))
    secret = "sk-e2e-not-printed-91Xq"
    env: dict[str, str | None] = {var: None for var in LIVE_VARS}
    env["BINANCE_API_KEY"] = secret  # set: not reported, and its value never shown
    result = invoke("run", str(path), "--no-metrics", env=env)
    assert result.exit_code == 2
    assert secret not in result.output
    unset = "is not set; export it before starting the bot"
    assert refusal(result) == [
        "perpetua run: cannot start perpetua-sandbox (4 problem(s)):",
        f"  venues[0].keystore_password_env: environment variable PERPETUA_KEYSTORE_PASSWORD {unset}",
        f"  venues[1].secret_env: environment variable BINANCE_API_SECRET {unset}",
        f"  venues[2].api_key_env: environment variable APCA_API_KEY_ID {unset}",
        f"  venues[2].secret_key_env: environment variable APCA_API_SECRET_KEY {unset}",
    ]


# --------------------------------------------------------------------------------------------
# kill -9 mid-trade, then a restart


def risk_and_storage(db: Path) -> str:
    """The `risk` and `storage` sections of the restart tests' configs: wide limits, the journal at `db`."""
    return f"""risk:
  currency: USD
  max_position: 100
  max_notional: 25000
  max_order_rate: {{orders_per_second: 50, window_ms: 1000}}
  max_daily_loss: 1000000
  max_data_staleness_ms: 600000
  price_band_bps: 200
  max_gas_price_gwei: 50
storage:
  url: sqlite+aiosqlite:///{db}
"""


def live_config(box: Sandbox, db: Path) -> str:
    """A live-mode config on the sandbox's Binance and Alpaca emulators: the token's book and the broker."""
    info = box.info
    return f"""
name: e2e-live
mode: live
venues:
  - name: binance
    kind: ccxt
    exchange: binance
    api_key_env: BINANCE_API_KEY
    secret_env: BINANCE_API_SECRET
    base_url: {info.binance_url}
    options:
      {{defaultType: spot, fetchCurrencies: false, fetchMargins: false, fetchMarkets: {{types: [spot]}}}}
    markets: {{TSLAx/USDT: TSLAX/USDT}}
  - name: alpaca
    kind: alpaca
    api_key_env: APCA_API_KEY_ID
    secret_key_env: APCA_API_SECRET_KEY
    base_url: {info.alpaca_url}
    symbols: {{TSLA/USD: TSLA}}
instruments:
  - {{id: TSLAx, kind: tokenized_stock, underlying: TSLA, issuer: xstocks, chain_id: 31337,
     address: "{info.token}", decimals: 18}}
  - {{id: TSLA/USD, kind: spot, base: TSLA, quote: USD, price_increment: 0.01,
     size_increment: 0.000000001, min_size: 0.000000001}}
  - {{id: TSLAx/USDT, kind: spot, base: TSLAx, quote: USDT, price_increment: 0.01, size_increment: 0.001}}
strategies:
  - name: arb
    strategy: strategies.depeg_arb:DepegArb
    venues: [binance, alpaca]
    params:
      token: TSLAx
      books: [{{venue: binance, instrument: TSLAx/USDT, taker_fee_bps: 10}}]
      broker_venue: alpaca
      stock_instrument: TSLA/USD
      max_trade_tokens: 1
      min_profit: 1
      open_pause_minutes: 0
      open_wide_minutes: 0
{risk_and_storage(db)}"""


async def quoting(box: Sandbox) -> None:
    """The stock's quote at the broker, pushed every 200 ms (the bot's fair value: 300.05)."""
    assert box.alpaca is not None
    while True:
        await box.alpaca.push_quote("TSLA", Decimal("300.00"), Decimal("300.10"))
        await asyncio.sleep(0.2)


async def bot_process(
    config: Path, box: Sandbox, *args: str, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    environ = {**os.environ, **box.secrets.env(), **(env or {})}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bots",
        "--json-logs",
        "run",
        str(config),
        "--no-metrics",
        *args,
        cwd=REPO,
        env=environ,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def journal_orders(db: Path, venue: str) -> list[Any]:
    journal = await Journal.open(f"sqlite+aiosqlite:///{db}")
    try:
        return await journal.orders(venue=venue)
    finally:
        await journal.close()


@e2e
async def test_kill_9_mid_trade_then_restart_loses_nothing_and_sends_nothing_twice(
    box: Sandbox, tmp_path: Path
) -> None:
    binance = box.binance
    assert binance is not None
    db = tmp_path / "live.sqlite"
    config = tmp_path / "live.yaml"
    config.write_text(live_config(box, db))
    # The book's bid is 1.3% over fair value: worth selling 1 token into (fees 10 bps, band 200 bps).
    binance.set_book("TSLAXUSDT", [(Decimal("304"), Decimal("3"))], [(Decimal("330"), Decimal("5"))])
    # The first order is held 3 s by the exchange: the bot dies while it is in flight.
    binance.inject(Fault("delay", path="/api/v3/order", method="POST", delay=3.0, times=1))
    posts_before = len([r for r in binance.requests if r.method == "POST" and r.path == "/api/v3/order"])
    quotes = asyncio.create_task(quoting(box))
    loop = asyncio.get_running_loop()
    try:
        bot = await bot_process(config, box)
        deadline = loop.time() + 60
        intent = None
        while intent is None or binance.faults[-1].times:  # journaled, and the exchange holds the order
            if bot.returncode is not None or loop.time() > deadline:  # fail with the bot's own log
                if bot.returncode is None:
                    bot.kill()
                _, err = await bot.communicate()
                raise AssertionError(
                    f"no order intent journaled and sent (bot exit {bot.returncode}): " + err.decode()[-4000:]
                )
            await asyncio.sleep(0.05)
            if db.exists():
                try:
                    orders = await journal_orders(db, "binance")
                except OperationalError:  # the bot is creating the tables right now
                    continue
                intent = next((o for o in orders if o.is_intent), None)
        bot.send_signal(signal.SIGKILL)
        assert await bot.wait() == -signal.SIGKILL
        assert bot.stderr is not None
        first_output = await bot.stderr.read()
        coid = intent.client_order_id
        deadline = loop.time() + 20  # the held request is served after the bot died
        while not any(o.client_order_id == coid for o in binance.orders.values()):
            assert loop.time() < deadline, "the exchange never placed the in-flight order"
            await asyncio.sleep(0.1)
        # Restart: reconciliation finds the order and its fill; the bot trades on for 6 s.
        again = await bot_process(config, box, "--duration", "6")
        stderr = await finished(again)
        assert again.returncode == 0, stderr.decode()[-2000:]
    finally:
        quotes.cancel()
    posts = [r for r in binance.requests if r.method == "POST" and r.path == "/api/v3/order"][posts_before:]
    sent = [r.params["newClientOrderId"] for r in posts]
    assert coid in sent
    assert len(sent) == len(set(sent))  # no client order id sent twice
    at_venue = {o.client_order_id: o for o in binance.orders.values() if o.client_order_id in sent}
    assert set(at_venue) == set(sent)
    journaled = {o.client_order_id: o for o in await journal_orders(db, "binance")}
    assert set(journaled) == set(sent)  # journal == venue: the same orders...
    status = {
        "FILLED": "filled",
        "EXPIRED": "expired",
        "CANCELED": "cancelled",
        "PARTIALLY_FILLED": "expired",
    }
    for cid, order in at_venue.items():  # ... in the same state, with the same fills
        assert journaled[cid].filled_quantity == order.executed_qty
        assert journaled[cid].status == status.get(order.status, order.status.lower())
    journal = await Journal.open(f"sqlite+aiosqlite:///{db}")
    try:
        fills = await journal.fills(venue="binance")
        history = [entry.source for entry in await journal.history(coid)]
    finally:
        await journal.close()
    for cid, order in at_venue.items():
        mine = [f for f in fills if f.client_order_id == cid]
        assert len(mine) == len(order.fills)
        assert sum(f.quantity for f in mine) == order.executed_qty
    assert at_venue[coid].executed_qty == 1 and history[0] == "intent" and "reconcile" in history
    # No secret in anything the two runs wrote: logs (JSON, INFO and up) and the journal's files.
    written = first_output + stderr + files_content(tmp_path, "live.sqlite*")
    assert b"connectors.ccxt_exchange" in written or b"perpetua" in written  # the logs are there
    for value in box.secrets.env().values():
        assert value.encode() not in written


async def finished(bot: asyncio.subprocess.Process, limit_s: float = 60.0) -> bytes:
    """The stderr of a bot run with --duration, once it has exited; its log if it outlives `limit_s`."""
    try:
        async with asyncio.timeout(limit_s):
            _, stderr = await bot.communicate()
    except TimeoutError:
        bot.kill()
        _, err = await bot.communicate()
        raise AssertionError(f"the bot did not stop within {limit_s} s: " + err.decode()[-4000:]) from None
    return stderr


def files_content(directory: Path, pattern: str) -> bytes:
    """Every matching file's bytes, concatenated."""
    return b"".join(path.read_bytes() for path in sorted(directory.glob(pattern)))


def alive(pid: int) -> bool:
    """Whether a process with this pid exists."""
    return Path(f"/proc/{pid}").exists()


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command name) of the processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        if ppid == pid:
            found.append((int(stat.parent.name), name))
    return found


@e2e
async def test_perpetua_run_on_the_default_config_trades_then_stops_on_sigint(tmp_path: Path) -> None:
    """What `make run` runs: the sandbox starts, the bot trades, Ctrl-C stops it all cleanly."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bots",
        "run",
        str(REPO / "config.yaml"),
        "--metrics-port",
        "0",
        cwd=tmp_path,  # the journal (storage.url) lands here
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    anvil: list[tuple[int, str]] = []
    try:
        async with asyncio.timeout(90):  # a hang guard; docs/running.md has the measured time
            while True:
                line = (await proc.stdout.readline()).decode()
                assert line, "the bot ended early: " + (await proc.stderr.read()).decode()[-2000:]
                lines.append(line)
                anvil = anvil or [c for c in children(proc.pid) if c[1] == "anvil"]
                if " 0 fills" not in line and " fills, " in line:
                    break
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert lines[0] == "Starting perpetua-sandbox in sandbox mode...\n"
    assert "perpetua-sandbox up in " in lines[1]
    assert out.decode().splitlines()[-1].startswith("stopped after ")
    assert len(anvil) == 1 and not alive(anvil[0][0])  # its anvil is gone
    assert (tmp_path / "perpetua.sqlite").exists()


def pool_config(box: Sandbox, db: Path, keystore: Path) -> str:
    """A live-mode config trading the sandbox's pool (the wallet's keystore) against the broker's quote."""
    info = box.info
    return f"""
name: e2e-pool
mode: live
venues:
  - name: uniswap_local
    kind: uniswap_v3
    chain_id: 31337
    rpc_url: {info.rpc_url}
    keystore: {keystore}
    keystore_password_env: PERPETUA_KEYSTORE_PASSWORD
    factory: "{info.factory}"
    swap_router: "{info.router}"
    quoter: "{info.quoter}"
  - name: alpaca
    kind: alpaca
    api_key_env: APCA_API_KEY_ID
    secret_key_env: APCA_API_SECRET_KEY
    base_url: {info.alpaca_url}
    symbols: {{TSLA/USD: TSLA}}
tokens:
  - {{id: USDC, chain_id: 31337, address: "{info.usdc}", decimals: 6}}
instruments:
  - {{id: TSLAx, kind: tokenized_stock, underlying: TSLA, issuer: xstocks, chain_id: 31337,
     address: "{info.token}", decimals: 18}}
  - {{id: TSLA/USD, kind: spot, base: TSLA, quote: USD, price_increment: 0.01,
     size_increment: 0.000000001, min_size: 0.000000001}}
  - {{id: TSLAx/USDC, kind: pool, venue: uniswap_local, chain_id: 31337, address: "{info.pool}",
     token0: TSLAx, token1: USDC, fee: 3000}}
strategies:
  - name: taker
    strategy: strategies.fair_value:FairValueTaker
    venues: [uniswap_local, alpaca]
    params: {{token: TSLAx, venue: uniswap_local, instrument: TSLAx/USDC, max_premium_bps: 50,
              order_size: 1.5, max_position: 15}}
{risk_and_storage(db)}"""


async def rpc(w3: AsyncWeb3[Any], method: str, *params: Any) -> Any:
    return (await w3.provider.make_request(method, list(params)))["result"]  # type: ignore[arg-type]


@e2e
async def test_kill_9_with_a_swap_pending_then_restart_records_its_fill_from_the_chain(
    box: Sandbox, w3: AsyncWeb3[Any], tmp_path: Path
) -> None:
    db, keystore, config = tmp_path / "pool.sqlite", tmp_path / "wallet.json", tmp_path / "pool.yaml"
    passphrase = "e2e-keystore-pass-7Hq2"
    await write_keystore(
        keystore, box.secrets.env()[PRIVATE_KEY_ENV], passphrase, kdf="pbkdf2", iterations=1000
    )
    config.write_text(pool_config(box, db, keystore))
    assert box.alpaca is not None
    await box.driver.step()  # the sample's quote of the minute, whatever an earlier test pushed
    quote = box.alpaca.quotes["TSLA"]

    async def quoting() -> None:
        while True:
            await box.alpaca.push_quote("TSLA", quote.bid, quote.ask)  # type: ignore[union-attr]
            await asyncio.sleep(0.2)

    quotes = asyncio.create_task(quoting())
    loop = asyncio.get_running_loop()
    extra = {"PERPETUA_KEYSTORE_PASSWORD": passphrase}
    depeg: asyncio.Task[Any] | None = None
    try:
        bot = await bot_process(config, box, env=extra)
        assert bot.stderr is not None
        async with asyncio.timeout(60):  # up, with a fair value: a status line shows the pool's premium
            while b'"status: ' not in (line := await bot.stderr.readline()) or b" bps)" not in line:
                assert line, "the bot ended"
        # The pool goes 300 bps under fair value: the bot buys TSLAx with USDC (earlier tests of this
        # module sold most of the wallet's TSLAx).
        below = -(premium_bps(box, await pool_sqrt_price(box, w3)) + 300)
        await rpc(w3, "evm_setAutomine", False)  # from now on blocks are mined by hand
        depeg = asyncio.create_task(box.driver.inject_depeg(below))
        deadline = loop.time() + 60
        sent = None
        while sent is None:  # mine all but our swap; stop when our swap waits in the node, journaled
            if loop.time() > deadline:
                bot.kill()
                _, err = await bot.communicate()
                raise AssertionError("no swap journaled as sent: " + err.decode()[-3000:])
            await asyncio.sleep(0.1)
            pending = [
                tx for txs in (await rpc(w3, "txpool_content"))["pending"].values() for tx in txs.values()
            ]
            if any(
                AsyncWeb3.to_checksum_address(tx["from"]) != box.info.wallet
                or AsyncWeb3.to_checksum_address(tx["to"]) != box.info.router  # our approval
                for tx in pending
            ):
                await rpc(w3, "evm_mine")
                continue
            if db.exists():
                try:
                    orders = await journal_orders(db, "uniswap_local")
                except OperationalError:
                    continue
                sent = next((o for o in orders if o.venue_order_id and o.status == "new"), None)
        bot.send_signal(signal.SIGKILL)  # the swap is in the node's pool, its fill not yet seen
        assert await bot.wait() == -signal.SIGKILL
        await rpc(w3, "evm_mine")
        await rpc(w3, "evm_setAutomine", True)
        await depeg
        again = await bot_process(config, box, "--duration", "4", env=extra)
        stderr = await finished(again)
        assert again.returncode == 0, stderr.decode()[-2000:]
    finally:
        await rpc(w3, "evm_setAutomine", True)
        quotes.cancel()
        if depeg is not None:
            await asyncio.wait_for(depeg, 30)
    receipt = await w3.eth.get_transaction_receipt(sent.venue_order_id)  # type: ignore[arg-type]
    assert receipt["status"] == 1
    (swap,) = [e for log in receipt["logs"] if isinstance(e := decode_log(log), V3Swap)]
    bought, paid = Decimal(-swap.amount0) / 10**18, Decimal(swap.amount1) / 10**6  # token0 = TSLAx
    journal = await Journal.open(f"sqlite+aiosqlite:///{db}")
    try:
        order = await journal.order(sent.client_order_id)
        fills = await journal.fills(client_order_id=sent.client_order_id)
        history = [entry.source for entry in await journal.history(sent.client_order_id)]
        sources = await journal.fill_sources()
    finally:
        await journal.close()
    assert [sources[fill_key(f)] for f in fills] == ["reconcile"]  # the fill came from the chain, at restart
    assert order is not None and order.status == "filled" and order.filled_quantity == bought > 0
    (fill,) = fills
    assert (fill.side, fill.quantity, fill.notional, fill.trade_id) == (
        Side.BUY,
        bought,
        paid,
        sent.venue_order_id,
    )
    assert history[:2] == ["intent", "submit"] and "reconcile" in history
    assert passphrase.encode() not in stderr and box.secrets.env()[PRIVATE_KEY_ENV].encode() not in stderr
