"""The sandbox: every venue of the default config.yaml, local and real, and a market that moves.

`async with Sandbox() as sandbox:` starts, in this order:

1. anvil on a free 127.0.0.1 port (from node_modules), with the sandbox contracts deployed
   (`bots.sandbox_deploy`: TSLAx, USDC, the real Uniswap v3 factory, SwapRouter, QuoterV2 and
   position manager, the TSLAx/USDC 0.3% pool seeded at the sample's fair price in several ranges,
   the TSLA/USD MockAggregator) at the addresses config.yaml lists;
2. the Binance spot emulator (TSLAX/USDT) and, with `perp=True`, the USD-M futures emulator
   (TSLAUSDT perpetual): the same API key on both, as one Binance account has;
3. the Alpaca emulator (TSLA, fractionable; trade updates and market-data websockets; the
   tokenization desk minting TSLAx for `xstocks` on `ethereum`), judging sessions by the sample;
4. the bot's accounts: a fresh wallet key funded with ETH, USDC and TSLAx on anvil; balances at
   the Binance emulators; cash at Alpaca;
5. the `MarketDriver` (`bots.market_driver`), running in a task when `drive=True`.

`sandbox.info` holds everything a bot needs to connect (no secret in it); `sandbox.secrets.env()`
gives the environment variables to export (the bot's private key, the exchange and broker keys),
generated fresh for each sandbox, never written to disk or a log, hidden from reprs. On exit
everything stops in reverse order; anvil is stopped by its pid.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

from eth_account import Account
from eth_typing import ChecksumAddress
from web3 import AsyncHTTPProvider, AsyncWeb3

from bots.market_driver import (
    MINUTE_NS,
    DriverParams,
    MarketDriver,
    SampleTape,
    SandboxCalendar,
    SandboxTime,
    SessionFeed,
    sample_minute,
)
from bots.sandbox_deploy import (
    DEFAULT_RANGES,
    TOKEN_DECIMALS,
    USDC_DECIMALS,
    ChainDeployment,
    LiquidityRange,
    deploy_sandbox_chain,
    fund_wallet,
    sqrt_to_price,
)
from bots.sandbox_issuer import ChainTokenizationDesk
from connectors.emulators.alpaca import AlpacaAsset, AlpacaEmulator
from connectors.emulators.binance import BinanceEmulator, BinanceSymbol
from connectors.emulators.binance_futures import BinanceFuturesEmulator, FuturesSymbol
from connectors.evm.anvil import PROJECT_ROOT, AnvilNode, start_anvil
from connectors.evm.chainlink import load_contract_artifact
from connectors.evm.erc20 import to_base_units
from core.clock import LiveClock
from core.errors import InvalidInput

log = logging.getLogger("perpetua.sandbox")

NS = 1_000_000_000
CHAIN_ID = 31337
SAMPLE_DIR = PROJECT_ROOT / "data" / "sample"
DEFAULT_START = "2025-07-01T13:30:00Z"  # the sample's first regular open (09:30 New York)

# environment variable names, as config.yaml names them (the wallet key has no config key yet)
PRIVATE_KEY_ENV = "PERPETUA_SANDBOX_PRIVATE_KEY"
BINANCE_KEY_ENV = "BINANCE_API_KEY"
BINANCE_SECRET_ENV = "BINANCE_API_SECRET"
ALPACA_KEY_ENV = "APCA_API_KEY_ID"
ALPACA_SECRET_ENV = "APCA_API_SECRET_KEY"


@dataclass(frozen=True)
class SandboxParams:
    """What the sandbox starts with. Amounts in display units (Decimal); times as the sample's."""

    start: str | int = DEFAULT_START  # sample instant shown first (ISO 8601 with zone, or ns UTC)
    data_dir: Path = SAMPLE_DIR
    driver: DriverParams = field(default_factory=DriverParams)
    drive: bool = True  # run the market driver in a task (False: call `driver.step()` yourself)
    perp: bool = True  # also start the USD-M futures emulator with the TSLAUSDT perpetual
    ranges: tuple[LiquidityRange, ...] = DEFAULT_RANGES
    wallet_eth: Decimal = Decimal(100)
    wallet_usdc: Decimal = Decimal(100_000)
    wallet_token: Decimal = Decimal(100)
    binance_usdt: Decimal = Decimal(50_000)
    binance_token: Decimal = Decimal(20)
    futures_usdt: Decimal = Decimal(20_000)
    alpaca_cash: Decimal = Decimal(100_000)
    mint_delay_minutes: int = 1440  # tokenization request -> done, in sample minutes (config: 1d)
    mint_min_qty: Decimal = Decimal(1)  # shares

    def __post_init__(self) -> None:
        for name in (
            "wallet_eth",
            "wallet_usdc",
            "wallet_token",
            "binance_usdt",
            "binance_token",
            "futures_usdt",
            "alpaca_cash",
        ):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise InvalidInput(name, value, "must be a finite Decimal >= 0")
        if self.mint_delay_minutes < 0:
            raise InvalidInput("mint_delay_minutes", self.mint_delay_minutes, "must be >= 0")


@dataclass(frozen=True)
class SandboxInfo:
    """How a bot reaches the sandbox: endpoints, addresses and the NAMES of the secret env vars."""

    rpc_url: str
    ws_rpc_url: str
    chain_id: int
    anvil_pid: int
    token: ChecksumAddress  # TSLAx, 18 decimals
    usdc: ChecksumAddress  # 6 decimals
    pool: ChecksumAddress  # TSLAx/USDC 0.3%, token0 = TSLAx
    factory: ChecksumAddress
    router: ChecksumAddress  # SwapRouter
    quoter: ChecksumAddress  # QuoterV2
    position_manager: ChecksumAddress
    aggregator: ChecksumAddress  # TSLA/USD, 8 decimals
    wallet: ChecksumAddress  # the bot's address
    binance_url: str  # spot REST and websockets (point_ccxt_at)
    binance_futures_url: str | None  # USD-M REST and websockets (point_ccxt_at on binanceusdm)
    alpaca_url: str  # trading REST, tokenization and market-data REST
    alpaca_stream_url: str  # trade updates: {alpaca_ws}/stream
    alpaca_data_stream_url: str  # market data: {alpaca_ws}/v2/iex
    private_key_env: str = PRIVATE_KEY_ENV
    binance_key_env: str = BINANCE_KEY_ENV
    binance_secret_env: str = BINANCE_SECRET_ENV
    alpaca_key_env: str = ALPACA_KEY_ENV
    alpaca_secret_env: str = ALPACA_SECRET_ENV

    def as_dict(self) -> dict[str, Any]:
        """Every field (plain values, no secrets): for a status view or `--json` output."""
        return asdict(self)


class SandboxSecrets:
    """The sandbox's generated secrets; only `env()` shows them (repr, str and pickling do not)."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def env(self) -> dict[str, str]:
        """Env var NAME -> secret value, to export for the bot (e.g. `os.environ.update(...)`)."""
        return dict(self._values)

    def __repr__(self) -> str:
        return f"SandboxSecrets({sorted(self._values)}: values hidden)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("SandboxSecrets holds secrets and cannot be pickled")


class Sandbox:
    """Everything local and real (module doc). Use `async with Sandbox(params) as sandbox:`."""

    def __init__(self, params: SandboxParams | None = None) -> None:
        self.params = params or SandboxParams()
        self.anvil: AnvilNode | None = None
        self.w3: AsyncWeb3[Any] | None = None
        self.chain: ChainDeployment | None = None
        self.binance: BinanceEmulator | None = None
        self.futures: BinanceFuturesEmulator | None = None
        self.alpaca: AlpacaEmulator | None = None
        self.sessions = SessionFeed()
        self._driver: MarketDriver | None = None
        self._info: SandboxInfo | None = None
        self._secrets: SandboxSecrets | None = None
        self._task: asyncio.Task[None] | None = None
        self.startup_seconds = 0.0  # wall seconds `start()` took
        start_ns = sample_minute(self.params.start)
        self.time = SandboxTime(start_ns, self.params.driver.seconds_per_minute)
        self._calendar: SandboxCalendar | None = None

    def __repr__(self) -> str:
        url = self.anvil.url if self.anvil else "not started"
        return f"Sandbox(rpc={url}, sample={self.time.sample_ns})"

    @property
    def info(self) -> SandboxInfo:
        """Endpoints and addresses (after `start()`)."""
        if self._info is None:
            raise RuntimeError("the sandbox is not started")
        return self._info

    @property
    def secrets(self) -> SandboxSecrets:
        """The secrets to export for the bot (after `start()`)."""
        if self._secrets is None:
            raise RuntimeError("the sandbox is not started")
        return self._secrets

    @property
    def calendar(self) -> SandboxCalendar:
        """The XNYS calendar at the sandbox's pace (after `start()`): give it to broker connectors."""
        if self._calendar is None:
            raise RuntimeError("the sandbox is not started")
        return self._calendar

    @property
    def driver(self) -> MarketDriver:
        """The market driver (after `start()`)."""
        if self._driver is None:
            raise RuntimeError("the sandbox is not started")
        return self._driver

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Start everything (module doc); on any failure what was started is stopped again."""
        began = time.perf_counter()
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise
        self.startup_seconds = time.perf_counter() - began
        log.info(
            "sandbox up in %.2f s: rpc %s, pool %s", self.startup_seconds, self.info.rpc_url, self.info.pool
        )

    async def _start(self) -> None:
        p = self.params
        tape = await asyncio.to_thread(SampleTape, p.data_dir, p.driver.window_minutes)
        start_ns = self.time.sample_ns
        if not tape.first_ns <= start_ns < tape.end_ns:
            raise InvalidInput(
                "start", p.start, f"must fall inside the sample [{tape.first_ns}, {tape.end_ns}) ns"
            )
        await tape.ensure(start_ns)
        fair = tape.stream("stock_oracle").latest(start_ns)
        if fair is None:
            raise InvalidInput("start", p.start, "has no oracle price at or before it in the sample")
        start_price = Decimal(repr(fair.price))
        self._calendar = await asyncio.to_thread(SandboxCalendar, self.time, tape.first_ns, tape.end_ns)

        self.anvil = await start_anvil("--disable-code-size-limit", chain_id=CHAIN_ID)
        self.w3 = AsyncWeb3(AsyncHTTPProvider(self.anvil.url))
        self.chain = await deploy_sandbox_chain(self.w3, start_price, p.ranges)

        bot = Account.create(secrets.token_hex(32))
        wallet = bot.address
        await fund_wallet(
            self.w3,
            self.chain,
            wallet,
            eth_wei=to_base_units(p.wallet_eth, 18, "wallet_eth"),
            usdc_units=to_base_units(p.wallet_usdc, USDC_DECIMALS, "wallet_usdc"),
            token_units=to_base_units(p.wallet_token, TOKEN_DECIMALS, "wallet_token"),
        )
        binance_key, binance_secret = secrets.token_hex(32), secrets.token_hex(32)
        alpaca_key, alpaca_secret = "PK" + secrets.token_hex(9).upper(), secrets.token_urlsafe(30)
        self._secrets = SandboxSecrets(
            {
                PRIVATE_KEY_ENV: bot.key.to_0x_hex(),
                BINANCE_KEY_ENV: binance_key,
                BINANCE_SECRET_ENV: binance_secret,
                ALPACA_KEY_ENV: alpaca_key,
                ALPACA_SECRET_ENV: alpaca_secret,
            }
        )

        self.binance = BinanceEmulator(
            binance_key,
            binance_secret,
            [BinanceSymbol("TSLAX", "USDT")],
            balances={"USDT": p.binance_usdt, "TSLAX": p.binance_token},
        )
        await self.binance.start()
        if p.perp:
            self.futures = BinanceFuturesEmulator(
                binance_key,
                binance_secret,
                [FuturesSymbol("TSLA", "USDT")],
                balances={"USDT": p.futures_usdt},
            )
            await self.futures.start()
        per_minute_ns = p.driver.seconds_per_minute * NS
        desk = ChainTokenizationDesk(
            tokens={"TSLA": "TSLAx"},
            issuer="xstocks",
            networks=frozenset({"ethereum"}),
            min_qty=p.mint_min_qty,
            delay_ns=int(p.mint_delay_minutes * per_minute_ns),  # sample minutes at the sandbox's pace
        )
        self.alpaca = AlpacaEmulator(
            alpaca_key,
            alpaca_secret,
            self.calendar,
            LiveClock(),
            [AlpacaAsset("TSLA", fractionable=True)],
            cash=p.alpaca_cash,
            tokenization=desk,
        )
        await self.alpaca.start()
        token = self.w3.eth.contract(address=self.chain.token, abi=load_contract_artifact("StockToken").abi)
        desk.bind(self.w3, token, self.chain.deployer)  # the deployer is TSLAx's issuer
        await desk.watch(wallet)

        self._driver = MarketDriver(
            self.w3,
            self.chain,
            self.alpaca,
            self.binance,
            tape,
            self.time,
            self.sessions,
            p.driver,
            self.futures,
            desk,
        )
        await self._driver.prepare()
        await self._driver.step()  # every venue shows the start minute before anyone connects
        self._info = SandboxInfo(
            rpc_url=self.anvil.url,
            ws_rpc_url=self.anvil.ws_url,
            chain_id=CHAIN_ID,
            anvil_pid=self.anvil.pid,
            token=self.chain.token,
            usdc=self.chain.usdc,
            pool=self.chain.pool,
            factory=self.chain.factory,
            router=self.chain.router,
            quoter=self.chain.quoter,
            position_manager=self.chain.position_manager,
            aggregator=self.chain.aggregator,
            wallet=wallet,
            binance_url=self.binance.base_url,
            binance_futures_url=self.futures.base_url if self.futures else None,
            alpaca_url=self.alpaca.base_url,
            alpaca_stream_url=self.alpaca.ws_url + "/stream",
            alpaca_data_stream_url=self.alpaca.ws_url + "/v2/iex",
        )
        if p.drive:
            self._task = asyncio.create_task(self._drive(), name="sandbox-market-driver")

    async def _drive(self) -> None:
        """Run the driver; a failure is logged (the venues stay up, the market stands still)."""
        try:
            await self.driver.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the sandbox market driver stopped")

    async def close(self) -> None:
        """Stop the driver, the emulators and anvil (by its pid), in that order; safe to call twice."""
        if self._task is not None:
            self.driver.stop()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for emulator in (self.alpaca, self.futures, self.binance):
            if emulator is not None:
                try:
                    await emulator.close()
                except Exception:
                    log.exception("closing %r failed", emulator)
        self.alpaca = self.futures = self.binance = None
        if self.w3 is not None:
            with contextlib.suppress(Exception):
                await self.w3.provider.disconnect()
        if self.anvil is not None:
            await self.anvil.stop()
            self.anvil = None


async def _demo(seconds: float | None) -> None:
    """Start the sandbox and show the market moving (no bot): one line per sample hour."""
    async with Sandbox() as box:
        print(json.dumps({"startup_seconds": round(box.startup_seconds, 2), **box.info.as_dict()}, indent=2))
        loop = asyncio.get_running_loop()
        deadline = None if seconds is None else loop.time() + seconds
        shown = -1
        while deadline is None or loop.time() < deadline:
            await asyncio.sleep(0.05)
            report = box.driver.last
            if report is None or report.sample_ns // (60 * MINUTE_NS) == shown:
                continue
            shown = report.sample_ns // (60 * MINUTE_NS)
            pool = float(sqrt_to_price(report.pool_sqrt_after))
            fair = report.oracle.price if report.oracle is not None else float("nan")
            stamp = datetime.fromtimestamp(report.sample_ns / NS, UTC).strftime("%a %Y-%m-%d %H:%M UTC")
            print(
                f"{stamp} {report.session.value:<11} oracle {fair:9.2f} pool {pool:9.2f} "
                f"premium {(pool / fair - 1) * 10_000:+7.1f} bps"
            )


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m bots.sandbox [--seconds N]`: the sandbox and its market, without a bot."""
    parser = argparse.ArgumentParser(prog="python -m bots.sandbox", description=main.__doc__)
    parser.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_demo(args.seconds))


if __name__ == "__main__":
    main()
