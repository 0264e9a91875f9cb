"""The sandbox's market: the bundled sample replayed, accelerated, onto the real local venues.

`MarketDriver.step()` advances one sample minute and makes the venues show it:

- **stock (alpaca emulator)**: the sample's broker quote (`stock_quotes`) of the minute, if one was
  printed (every minute in regular hours, every 2 or 5 minutes outside, none while shut), pushed
  with `push_quote` (REST latest quote + the market-data websocket);
- **oracle (MockAggregator on anvil)**: a new round when the sample's oracle (`stock_oracle`) starts
  one, answer = price x 1e8, `updatedAt` = the wall-clock second; frozen while the market is shut,
  as Chainlink's `price` is (its age grows, so staleness checks see it);
- **token book (binance emulator, TSLAX/USDT)**: the sample's exchange quote of the minute (the
  premium model of docs/data.md) as the top level, with deeper levels behind it; the perpetual
  (TSLAUSDT, if given) gets a book and a mark around the stock, and its funding is charged every
  4 sample hours (on the UTC grid, at the emulator's rate);
- **session**: the sample's `market_status` stream; `SessionFeed` streams it as `MarketStatus`
  events (wall-clock stamped) and `SandboxCalendar` makes the broker judge orders by it;
- **pool (Uniswap v3 on anvil)**: noise traders' swaps on the real pool. The pool's target is the
  sample's pool price (fair value x the sample's pool premium); each minute, with probability
  `swap_probability`, a noise trader swaps the pool to target x exp(d), where d is the pool's
  current log deviation from the target decayed by `reversion_half_life_min` (the rest of the
  market's arbitrage) plus N(0, `swap_noise_bps`). With probability `depeg_probability` a large
  trader then knocks it a further U(`depeg_bps`) off, either way. `inject_depeg(bps)` does that on
  demand. A bot that closes a gap first leaves the noise traders nothing to undo.

Deterministic from `seed`: every step draws the same random numbers whatever happens on chain, so
without a bot two runs give the same swaps. Sample time is separate from wall time:
`SandboxTime` maps a wall-clock instant to the sample minute being shown (one sample minute per
`seconds_per_minute` wall seconds); every venue stamps events with the wall clock, as live ones do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from web3 import AsyncWeb3
from web3.types import TxParams, Wei

from backtest.data import load_dataset, stream_arrays
from bots.sandbox_deploy import (
    DEADLINE,
    POOL_FEE,
    ChainDeployment,
    oracle_answer,
    send,
    sqrt_to_price,
)
from bots.sandbox_issuer import ChainTokenizationDesk
from connectors.emulators.alpaca import AlpacaEmulator
from connectors.emulators.binance import BinanceEmulator
from connectors.emulators.binance_futures import BinanceFuturesEmulator
from connectors.evm.chainlink import load_contract_artifact
from connectors.evm.tx_sender import UnlockedAccountSender
from connectors.evm.uniswap_artifacts import contract_at
from core.calendar import MarketCalendar
from core.enums import Session
from core.errors import InvalidInput, PerpetuaError
from core.events import MarketStatus, OraclePrice, OrderUpdate, Quote
from core.orders import Request
from core.venue import VenueState

log = logging.getLogger("perpetua.sandbox.market")

NS = 1_000_000_000
MINUTE_NS = 60 * NS
SHUT = frozenset({Session.CLOSED, Session.WEEKEND, Session.HOLIDAY})
SPOT_SYMBOL = "TSLAXUSDT"  # binance id of TSLAX/USDT
PERP_SYMBOL = "TSLAUSDT"  # binance USD-M id of TSLA/USDT:USDT
STOCK_SYMBOL = "TSLA"  # alpaca
NOISE_BUDGET_TOKEN = (
    10**6 * 10**18
)  # base units a noise trader offers per swap (the router takes what it needs)
NOISE_BUDGET_USDC = 10**9 * 10**6
NOISE_TRADERS = 3  # anvil dev accounts 1..3 take turns; account 4 makes the large depegs
MIN_MOVE = 1e-5  # log price: noise swaps smaller than 0.1 bp are skipped (a zero-size swap reverts)


def _check(name: str, value: float, low: float, high: float | None = None) -> None:
    if not math.isfinite(value) or value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise InvalidInput(name, value, f"must be {bound}")


@dataclass(frozen=True)
class DriverParams:
    """How the market moves. Bps are 1e-4 of the price; minutes are sample minutes."""

    seconds_per_minute: float = 0.2  # wall seconds per sample minute (0.2: 300x accelerated)
    seed: int = 7
    swap_probability: float = 0.6  # per minute: a noise trader swaps
    swap_noise_bps: float = 8.0  # sd of a noise swap's miss (the sample's per-swap noise)
    reversion_half_life_min: float = 4.0  # the rest of the market closes a gap at this pace
    depeg_probability: float = 0.01  # per minute: a large trade knocks the pool off
    depeg_bps: tuple[float, float] = (150.0, 500.0)  # its size, uniform, either direction
    book_levels: int = 5  # levels per side on the exchange books
    level_step_bps: float = 3.0  # price gap between levels
    perp_half_spread_bps: float = 1.0
    window_minutes: int = 2 * 1440  # sample rows loaded per read

    def __post_init__(self) -> None:
        _check("seconds_per_minute", self.seconds_per_minute, 0.0)
        _check("swap_probability", self.swap_probability, 0.0, 1.0)
        _check("swap_noise_bps", self.swap_noise_bps, 0.0, 1000.0)
        _check("reversion_half_life_min", self.reversion_half_life_min, 1e-9)
        _check("depeg_probability", self.depeg_probability, 0.0, 1.0)
        low, high = self.depeg_bps
        _check("depeg_bps[0]", low, 0.0, 5000.0)
        _check("depeg_bps[1]", high, low, 5000.0)
        _check("book_levels", self.book_levels, 1, 50)
        _check("level_step_bps", self.level_step_bps, 0.0, 1000.0)
        _check("perp_half_spread_bps", self.perp_half_spread_bps, 0.0, 1000.0)
        _check("window_minutes", self.window_minutes, 60)


class SandboxTime:
    """Maps wall-clock ns to sample ns and back, anchored at the minute on show: `sample_at(wall)` =
    the minute shown plus the wall time since it was shown, accelerated (one sample minute per
    `seconds_per_minute` s); `wall_at` is the inverse. Re-anchored at every step, so a slow step
    makes sample time run slower, never jump. Times are ns since the epoch, UTC."""

    def __init__(self, sample_ns: int, seconds_per_minute: float) -> None:
        self.sample_ns = sample_ns
        self.wall_ns = time.time_ns()
        self.seconds_per_minute = seconds_per_minute

    def show(self, sample_ns: int) -> None:
        """The venues now show sample minute `sample_ns`."""
        self.sample_ns = sample_ns
        self.wall_ns = time.time_ns()

    def sample_at(self, wall_ns: int) -> int:
        """The sample instant shown at wall-clock `wall_ns` (at the nominal pace from the anchor)."""
        if self.seconds_per_minute <= 0:  # as fast as the venues answer: no pace to map by
            return self.sample_ns
        return self.sample_ns + int((wall_ns - self.wall_ns) * 60 / self.seconds_per_minute)

    def wall_at(self, sample_ns: int) -> int:
        """The wall-clock ns at which sample instant `sample_ns` shows, at the nominal pace."""
        return self.wall_ns + int((sample_ns - self.sample_ns) * self.seconds_per_minute / 60)


class SandboxCalendar(MarketCalendar):
    """The XNYS calendar at the sandbox's pace: every method takes and returns wall-clock ns, the
    sessions being the sample's (`session_at(wall)` is the session of the sample instant shown then,
    `next_regular_open(wall)` the wall time the next sample open will show). Dates (`local_date`,
    `is_trading_day`, `regular_open_close`) are sample dates."""

    def __init__(self, sandbox_time: SandboxTime, first_ns: int, end_ns: int) -> None:
        """Cover the sample's span [first_ns, end_ns) (ns UTC), a day either side."""
        day = 86_400
        first = datetime.fromtimestamp(first_ns // NS - day, UTC).date()
        last = datetime.fromtimestamp(end_ns // NS + day, UTC).date()
        super().__init__("XNYS", first, last)
        self.sandbox_time = sandbox_time

    def _in(self, wall_ns: int) -> int:
        # held inside the covered days: past the sample's end the market stands still
        return min(max(self.sandbox_time.sample_at(wall_ns), self.start_ns), self.end_ns - 1)

    def _out(self, sample_ns: int) -> int:
        return self.sandbox_time.wall_at(sample_ns)

    def session_at(self, ts_ns: int) -> Session:
        """The session of the sample instant shown at wall-clock `ts_ns`."""
        return super().session_at(self._in(ts_ns))

    def session_span(self, ts_ns: int) -> tuple[int, int, Session]:
        """(start, end, session) of the session at wall `ts_ns`, in wall ns."""
        start, end, session = super().session_span(self._in(ts_ns))
        return self._out(start), self._out(end), session

    def next_transition(self, ts_ns: int) -> tuple[int, Session]:
        """(wall ns, session) of the next session change after wall `ts_ns`."""
        at, session = super().next_transition(self._in(ts_ns))
        return self._out(at), session

    def session_codes_at(self, ts_ns: npt.ArrayLike) -> npt.NDArray[np.int8]:
        """Session codes at an array of wall ns."""
        wall = np.asarray(ts_ns, dtype=np.int64)
        speed = 60 / self.sandbox_time.seconds_per_minute if self.sandbox_time.seconds_per_minute > 0 else 0.0
        sample = self.sandbox_time.sample_ns + ((wall - self.sandbox_time.wall_ns) * speed).astype(np.int64)
        return super().session_codes_at(sample)

    def next_regular_open(self, ts_ns: int) -> int:
        """Wall ns of the next regular open after wall `ts_ns`."""
        return self._out(super().next_regular_open(self._in(ts_ns)))

    def next_regular_close(self, ts_ns: int) -> int:
        """Wall ns of the next regular close after wall `ts_ns`."""
        return self._out(super().next_regular_close(self._in(ts_ns)))

    def regular_open_close(self, day: date | str) -> tuple[int, int]:
        """Wall ns of sample `day`'s regular open and close."""
        opens, closes = super().regular_open_close(day)
        return self._out(opens), self._out(closes)

    def local_date(self, ts_ns: int) -> date:
        """The New York (sample) date at wall `ts_ns`."""
        return super().local_date(self._in(ts_ns))

    def sessions_between(self, start_ns: int, end_ns: int) -> Iterator[tuple[int, int, Session]]:
        """(start, end, session) spans between two wall instants, in wall ns."""
        spans = super().sessions_between(self._in(start_ns), self._in(end_ns))
        return ((self._out(a), self._out(b), session) for a, b, session in spans)

    def market_status_events(self, start_ns: int, end_ns: int) -> list[MarketStatus]:
        """The `MarketStatus` changes between two wall instants, stamped in wall ns."""
        events = super().market_status_events(self._in(start_ns), self._in(end_ns))
        return [e._replace(ts=self._out(e.ts), next_change_ts=self._out(e.next_change_ts)) for e in events]


class _Stream:
    """One sample stream's window: timestamps and events, and a cursor of what was shown."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ts: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self.events: list[Any] = []
        self.cursor = 0  # events[:cursor] have been shown

    def take(self, now_ns: int) -> list[Any]:
        """Events with ts <= now_ns not shown yet, oldest first."""
        end = int(np.searchsorted(self.ts, now_ns, side="right"))
        new = self.events[self.cursor : end]
        self.cursor = max(self.cursor, end)
        return new

    def latest(self, now_ns: int) -> Any | None:
        """The last event with ts <= now_ns in the window, or None."""
        index = int(np.searchsorted(self.ts, now_ns, side="right")) - 1
        return self.events[index] if index >= 0 else None


class SampleTape:
    """The sample streams the driver replays, read a window at a time (`DriverParams.window_minutes`).

    Each window starts a day before the requested minute so `latest` finds the last quote, round and
    pool state before it (the market may have been shut for a long weekend).
    """

    STREAMS = ("stock_quotes", "stock_oracle", "token_cex_quotes", "token_pool", "market_status")

    def __init__(self, data_dir: Path, window_minutes: int) -> None:
        self.data_dir = data_dir
        self.window_ns = window_minutes * MINUTE_NS
        self.streams = {name: _Stream(name) for name in self.STREAMS}
        self.window = (0, -1)  # [start, end) in sample ns
        manifest = load_dataset(data_dir, streams=["market_status"])
        ts, events = stream_arrays(manifest.stream("market_status"))
        last = events[-1]
        assert isinstance(last, MarketStatus)
        self.first_ns = int(ts[0])
        self.end_ns = int(last.next_change_ts)  # the sample covers [first_ns, end_ns)

    def _load(self, now_ns: int) -> None:
        start, end = now_ns - 3 * 1440 * MINUTE_NS, now_ns + self.window_ns
        dataset = load_dataset(self.data_dir, streams=list(self.STREAMS), start_ns=start, end_ns=end)
        for name, stream in self.streams.items():
            shown = stream.ts[stream.cursor - 1] if stream.cursor else None
            stream.ts, stream.events = stream_arrays(dataset.stream(name))
            # keep the cursor on the same event: nothing is shown twice or skipped
            stream.cursor = 0 if shown is None else int(np.searchsorted(stream.ts, shown, side="right"))
        self.window = (start, end)

    async def ensure(self, now_ns: int) -> None:
        """Have the window hold `now_ns` (loading off the event loop when it does not)."""
        if not self.window[0] + 3 * 1440 * MINUTE_NS <= now_ns < self.window[1]:
            await asyncio.to_thread(self._load, now_ns)

    def stream(self, name: str) -> _Stream:
        """The window of stream `name`."""
        return self.streams[name]


class StepReport(NamedTuple):
    """What one `step()` showed. Prices in USD (USDC per TSLAx for the pool); sqrt prices Q64.96."""

    sample_ns: int
    session: Session
    stock: Quote | None  # the broker quote pushed this minute (None: none printed)
    oracle: OraclePrice | None  # the sample's latest oracle round shown (this minute or before)
    oracle_answer: int | None  # its integer answer on the aggregator (8 decimals)
    new_round: bool  # the aggregator got a new round this minute
    cex: Quote | None  # the exchange top of book set this minute
    pool_target: float  # the sample's pool price this minute
    pool_sqrt_before: int
    pool_sqrt_after: int
    swapped: bool  # a noise trader swapped
    depeg_bps: float  # a random large depeg's size this minute (0: none)


class SessionFeed:
    """A market-data source of the sandbox's session: `MarketStatus` events stamped with the wall clock.

    `stream()` yields the session in force first, then every change the driver shows. It is a feed,
    not an execution venue: `submit` and `cancel` raise.
    """

    def __init__(self, name: str = "sandbox_sessions", market: str = "XNYS") -> None:
        self.name = name
        self.market = market
        self.current: MarketStatus | None = None
        self._queues: list[asyncio.Queue[MarketStatus]] = []

    def publish(self, status: MarketStatus) -> None:
        """Make `status` the current session and hand it to every open stream."""
        self.current = status
        for queue in self._queues:
            queue.put_nowait(status)

    async def stream(self) -> AsyncGenerator[MarketStatus, None]:
        """The current session, then each change, as they come."""
        queue: asyncio.Queue[MarketStatus] = asyncio.Queue()
        self._queues.append(queue)
        try:
            if self.current is not None:
                yield self.current
            while True:
                yield await queue.get()
        finally:
            self._queues.remove(queue)

    async def submit(self, request: Request) -> OrderUpdate:
        """A session feed takes no orders."""
        raise PerpetuaError(f"{self.name} is a market-status feed; it takes no orders")

    async def cancel(self, client_order_id: str) -> OrderUpdate:
        """A session feed has no orders."""
        raise PerpetuaError(f"{self.name} is a market-status feed; it has no orders")

    async def snapshot(self) -> VenueState:
        """Nothing is held at a session feed."""
        return VenueState(self.name, time.time_ns())


def _dec(value: float, places: int) -> Decimal:
    """`value` as a Decimal rounded to `places` decimals (the venues' own precision)."""
    return Decimal(repr(value)).quantize(Decimal(1).scaleb(-places))


def _levels(
    bid: Decimal, ask: Decimal, bid_size: Decimal, ask_size: Decimal, count: int, step_bps: float
) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
    """`count` levels a side from the top: prices `step_bps` apart on the cent, sizes growing (i + 1)x."""
    step = Decimal(repr(step_bps)) / 10_000
    cent = Decimal("0.01")
    bids: list[tuple[Decimal, Decimal]] = []
    asks: list[tuple[Decimal, Decimal]] = []
    for i in range(count):
        bid_price = (bid * (1 - step * i)).quantize(cent, rounding=ROUND_FLOOR)
        ask_price = (ask * (1 + step * i)).quantize(cent, rounding=ROUND_CEILING)
        if i and (bid_price >= bids[-1][0] or ask_price <= asks[-1][0]):
            continue  # a step smaller than a cent: keep levels distinct
        bids.append((bid_price, bid_size * (i + 1)))
        asks.append((ask_price, ask_size * (i + 1)))
    return bids, asks


@dataclass
class _Draws:
    """The random numbers of one step, drawn whatever is done with them (determinism)."""

    swap: float
    noise: float
    depeg: float
    depeg_size: float
    depeg_up: bool
    trader: int


@dataclass
class MarketDriver:
    """Moves the sandbox's venues along the sample (module doc). Build it, `await prepare()`, then
    `await run()` (paced) or `await step()` (one minute, as fast as the venues answer)."""

    w3: AsyncWeb3[Any]
    chain: ChainDeployment
    alpaca: AlpacaEmulator
    binance: BinanceEmulator
    tape: SampleTape
    sandbox_time: SandboxTime
    sessions: SessionFeed
    params: DriverParams = field(default_factory=DriverParams)
    futures: BinanceFuturesEmulator | None = None
    issuer: ChainTokenizationDesk | None = None  # settles the broker's mints and redeems on chain
    steps: int = 0
    last: StepReport | None = None
    finished: bool = False

    def __post_init__(self) -> None:
        self._rng = random.Random(self.params.seed)
        self._lock = asyncio.Lock()  # a step and an injected depeg never interleave
        self._pool = contract_at(self.w3, "UniswapV3Pool", self.chain.pool)
        self._router = contract_at(self.w3, "SwapRouter", self.chain.router)
        self._aggregator = self.w3.eth.contract(
            address=self.chain.aggregator, abi=load_contract_artifact("MockAggregator").abi
        )
        self._traders: list[UnlockedAccountSender] = []
        self._depeg_trader: UnlockedAccountSender | None = None
        self._stopping = asyncio.Event()
        self._last_target: float | None = None  # the sample pool price of the last noise swap

    @property
    def sample_ns(self) -> int:
        """The sample minute shown now (ns UTC)."""
        return self.sandbox_time.sample_ns

    async def prepare(self) -> None:
        """Fund and approve the noise traders (anvil dev accounts 1..4) and show the first minute's
        session; nothing is swapped yet."""
        accounts = (await self.w3.eth.accounts)[1 : NOISE_TRADERS + 2]
        token = self.w3.eth.contract(address=self.chain.token, abi=load_contract_artifact("StockToken").abi)
        usdc = self.w3.eth.contract(address=self.chain.usdc, abi=load_contract_artifact("MintableToken").abi)
        deployer = self.chain.deployer
        for account in accounts:
            await send(self.w3, token.functions.mint(account, NOISE_BUDGET_TOKEN * 100), deployer)
            await send(self.w3, usdc.functions.mint(account, NOISE_BUDGET_USDC * 100), deployer)
            for erc20 in (token, usdc):
                await send(self.w3, erc20.functions.approve(self.chain.router, 2**256 - 1), account)
        senders = [UnlockedAccountSender(self.w3, account) for account in accounts]
        self._traders, self._depeg_trader = senders[:NOISE_TRADERS], senders[NOISE_TRADERS]
        await self.tape.ensure(self.sample_ns)
        self._show_session(self.sample_ns, initial=True)

    # -- pool ---------------------------------------------------------------------------------

    async def pool_sqrt_price(self) -> int:
        """The pool's Q64.96 sqrt price now (slot0)."""
        return int((await self._pool.functions.slot0().call())[0])

    async def _swap_to(self, sqrt_target: int, sender: UnlockedAccountSender) -> int:
        """Swap the pool's price to `sqrt_target` exactly (the router stops at the price limit);
        returns the sqrt price after."""
        current = await self.pool_sqrt_price()
        if sqrt_target == current:
            return current
        zero_for_one = sqrt_target < current  # selling TSLAx lowers the price
        token_in, token_out = (
            (self.chain.token, self.chain.usdc) if zero_for_one else (self.chain.usdc, self.chain.token)
        )
        budget = NOISE_BUDGET_TOKEN if zero_for_one else NOISE_BUDGET_USDC
        params = (token_in, token_out, POOL_FEE, sender.address, DEADLINE, budget, 0, sqrt_target)
        data = self._router.functions.exactInputSingle(params)._encode_transaction_data()
        tx: TxParams = {"to": self.chain.router, "data": data, "value": Wei(0)}
        await sender.send(tx)
        return await self.pool_sqrt_price()

    async def inject_depeg(self, bps: float) -> tuple[int, int]:
        """Move the pool's price by `bps` (1e-4; negative: down) from where it is, with one real swap.

        Returns the Q64.96 sqrt prices (before, after); after = isqrt(before^2 x (1 + bps/1e4)),
        exactly, unless the pool runs out of liquidity. Raises `InvalidInput` for bps <= -10000.
        """
        if not math.isfinite(bps) or bps <= -10_000:
            raise InvalidInput("bps", bps, "must be a finite number > -10000")
        assert self._depeg_trader is not None, "call prepare() first"
        async with self._lock:
            before = await self.pool_sqrt_price()
            ratio = Decimal(repr(bps)) / 10_000 + 1
            numerator, denominator = ratio.as_integer_ratio()
            target = math.isqrt(before * before * numerator // denominator)
            after = await self._swap_to(target, self._depeg_trader)
            log.info("injected a %s bps depeg on the pool", bps)
            return before, after

    # -- one minute -----------------------------------------------------------------------------

    def _draws(self) -> _Draws:
        rng = self._rng
        return _Draws(
            swap=rng.random(),
            noise=rng.gauss(0.0, 1.0),
            depeg=rng.random(),
            depeg_size=rng.uniform(*self.params.depeg_bps),
            depeg_up=rng.random() < 0.5,
            trader=rng.randrange(NOISE_TRADERS),
        )

    def _show_session(self, now_ns: int, *, initial: bool = False) -> None:
        stream = self.tape.stream("market_status")
        changes = stream.take(now_ns)
        status = changes[-1] if changes else (stream.latest(now_ns) if initial else None)
        if status is None:
            return
        wall_now = time.time_ns()
        next_wall = self.sandbox_time.wall_at(status.next_change_ts)
        self.sessions.publish(MarketStatus(wall_now, status.market, status.session, max(next_wall, wall_now)))

    def session(self) -> Session:
        """The session of the sample minute shown now."""
        status = self.tape.stream("market_status").latest(self.sample_ns)
        return Session.CLOSED if status is None else status.session

    async def _show_stock(self, now_ns: int) -> Quote | None:
        quotes = self.tape.stream("stock_quotes").take(now_ns)
        if not quotes:
            return None
        q: Quote = quotes[-1]
        await self.alpaca.push_quote(
            STOCK_SYMBOL, _dec(q.bid, 4), _dec(q.ask, 4), _dec(q.bid_size, 0), _dec(q.ask_size, 0)
        )
        return q

    async def _show_oracle(self, now_ns: int) -> tuple[OraclePrice | None, int | None]:
        rounds = self.tape.stream("stock_oracle").take(now_ns)
        last_round = getattr(self.last, "oracle", None)
        new = [r for r in rounds if last_round is None or r.round_id != last_round.round_id]
        if not new:
            return None, None
        r: OraclePrice = new[-1]
        answer = oracle_answer(r.price)
        call = self._aggregator.functions.updateAnswer(answer, time.time_ns() // NS)
        await send(self.w3, call, self.chain.deployer)
        return r, answer

    def _show_books(self, now_ns: int) -> Quote | None:
        quotes = self.tape.stream("token_cex_quotes").take(now_ns)
        if not quotes:
            return None
        c: Quote = quotes[-1]
        p = self.params
        bids, asks = _levels(
            _dec(c.bid, 2),
            _dec(c.ask, 2),
            _dec(c.bid_size, 3),
            _dec(c.ask_size, 3),
            p.book_levels,
            p.level_step_bps,
        )
        self.binance.set_book(SPOT_SYMBOL, bids, asks)
        if self.futures is not None:
            # the perp tracks the stock: its quote while one prints, else the token's exchange mid
            latest = self.tape.stream("stock_quotes").latest(now_ns)
            open_now = self.session() not in SHUT and latest is not None
            mid = (latest.bid + latest.ask) / 2 if open_now and latest is not None else (c.bid + c.ask) / 2
            half = mid * p.perp_half_spread_bps / 10_000
            perp_bids, perp_asks = _levels(
                _dec(mid - half, 2),
                _dec(mid + half, 2),
                Decimal(20),
                Decimal(20),
                p.book_levels,
                p.level_step_bps,
            )
            self.futures.set_book(PERP_SYMBOL, perp_bids, perp_asks)
            self.futures.set_mark(PERP_SYMBOL, _dec(mid, 2))
        return c

    def _settle_funding(self, now_ns: int) -> None:
        """Charge the perpetual's funding at every sample interval boundary (4 h on the UTC grid)."""
        if self.futures is None or not self.steps > 1:
            return
        interval = self.futures.futures[PERP_SYMBOL].funding_interval_h * 60 * MINUTE_NS
        if now_ns // interval != (now_ns - MINUTE_NS) // interval:
            paid = self.futures.settle_funding(PERP_SYMBOL)
            log.info("perpetual funding settled: longs paid %s USDT", paid)

    async def _move_pool(self, now_ns: int, draws: _Draws) -> tuple[float, int, int, bool, float]:
        state = self.tape.stream("token_pool").latest(now_ns)
        before = await self.pool_sqrt_price()
        if state is None:
            return float(sqrt_to_price(before)), before, before, False, 0.0
        target = float(sqrt_to_price(state.sqrt_price_x96))
        p = self.params
        after, swapped = before, False
        if draws.swap < p.swap_probability:
            # the pool's gap to the target it was last pushed towards: the sample's own moves since
            # are followed in full, a gap (a depeg, a bot's trade) decays with the half-life
            reference = self._last_target if self._last_target is not None else target
            gap = math.log(float(sqrt_to_price(before)) / reference)
            decay = 0.5 ** (1.0 / p.reversion_half_life_min)
            wanted = gap * decay + draws.noise * p.swap_noise_bps / 10_000
            if abs(wanted + math.log(target) - math.log(float(sqrt_to_price(before)))) > MIN_MOVE:
                # sqrt price scales with exp(log price / 2)
                sqrt_target = int(state.sqrt_price_x96 * math.exp(wanted / 2))
                after = await self._swap_to(sqrt_target, self._traders[draws.trader])
                swapped = True
            self._last_target = target
        depeg = 0.0
        if draws.depeg < p.depeg_probability:
            depeg = draws.depeg_size if draws.depeg_up else -draws.depeg_size
            assert self._depeg_trader is not None
            sqrt_target = int(after * math.exp(math.log1p(depeg / 10_000) / 2))
            after = await self._swap_to(sqrt_target, self._depeg_trader)
            log.info("a large trade knocked the pool %+.0f bps off", depeg)
        return target, before, after, swapped, depeg

    async def step(self) -> StepReport:
        """Show the next sample minute on every venue (module doc); the report of what was shown.

        Raises `PerpetuaError` past the end of the sample (`finished` is then True).
        """
        if not self._traders:
            raise PerpetuaError("MarketDriver.prepare() was not awaited")
        async with self._lock:
            now = self.sample_ns + (MINUTE_NS if self.steps else 0)
            if now >= self.tape.end_ns:
                self.finished = True
                raise PerpetuaError(f"the sample ends at {self.tape.end_ns} ns; nothing left to drive")
            draws = self._draws()
            await self.tape.ensure(now)
            self.sandbox_time.show(now)
            self.steps += 1  # counted when shown: a step that fails half way still moves time on
            self._show_session(now)
            stock = await self._show_stock(now)
            oracle, answer = await self._show_oracle(now)
            cex = self._show_books(now)
            self._settle_funding(now)
            target, before, after, swapped, depeg = await self._move_pool(now, draws)
            if self.issuer is not None:
                await self.issuer.settle()
            report = StepReport(
                now,
                self.session(),
                stock,
                oracle if oracle is not None else getattr(self.last, "oracle", None),
                answer if answer is not None else getattr(self.last, "oracle_answer", None),
                oracle is not None,
                cex,
                target,
                before,
                after,
                swapped,
                depeg,
            )
            self.last = report
            return report

    # -- pacing ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask `run()` to return after the current step."""
        self._stopping.set()

    async def run(self, minutes: int | None = None) -> None:
        """Step every `seconds_per_minute` wall seconds (a slow step is not caught up) until `stop()`,
        the end of the sample, or `minutes` steps. A step that fails (a venue down) is logged and
        the next minute comes anyway."""
        loop = asyncio.get_running_loop()
        done = failures = 0
        while not self._stopping.is_set() and not self.finished and (minutes is None or done < minutes):
            started = loop.time()
            try:
                await self.step()
                failures = 0
            except PerpetuaError:
                if self.finished:
                    log.info("the sample is over; the market stands still")
                    return
                raise
            except Exception as error:  # a venue down (anvil restarting): the market goes on without it
                failures += 1
                if failures == 1 or failures % 100 == 0:
                    log.warning(
                        "market step failed (%d in a row): %s: %s", failures, type(error).__name__, error
                    )
            done += 1
            wait = self.params.seconds_per_minute - (loop.time() - started)
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), wait)


def sample_minute(ts: str | int) -> int:
    """A sample instant (ISO 8601 with a zone, or ns UTC) floored to its minute, in ns UTC."""
    if isinstance(ts, str):
        parsed = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            raise InvalidInput("start", ts, "must carry a time zone (e.g. 2025-07-01T13:30:00Z)")
        ns = int(parsed.timestamp()) * NS
    else:
        ns = ts
    return ns // MINUTE_NS * MINUTE_NS


__all__: Sequence[str] = (
    "DriverParams",
    "MarketDriver",
    "SampleTape",
    "SandboxCalendar",
    "SandboxTime",
    "SessionFeed",
    "StepReport",
    "sample_minute",
)
