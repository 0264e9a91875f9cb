"""Event-to-order latency of a running bot in sandbox mode: p50 / p99, from the market's move to our order.

The whole bot as `perpetua run` assembles it (`bots.assembly.build_bot`: real connectors, the
journal writing intents to SQLite before every send, the risk checks and kill switch, metrics) runs
the depeg arbitrage of `tests/bots/test_sandbox_e2e.py` on a sandbox whose market stands still
(no noise traders, the stock's quote re-published every 200 ms). Two paths, `--rounds` each:

- **pool**: a large trader's swap knocks the Uniswap v3 pool 300 bps off (alternately up and
  down); measured from the moment that swap is mined (its Swap log exists) to (a) our SwapRequest
  leaving the engine for the venue and (b) the venue's acknowledgement: our swap transaction
  accepted by the node (it first waits for the token approval to be mined).
- **book**: the Binance emulator's bid jumps 1.3% over fair value, or its ask 1.3% under it, in
  turns (pushed on its websocket); from
  `set_book` to (a) our IOC order leaving the engine and (b) the POST reaching the emulator
  (`RecordedRequest.received_at`, the same monotonic clock).

The pool path includes the log polling interval of the sandbox wiring (100 ms: a log waits 50 ms
on average before the bot sees it); the book path is pushed. Run: `.venv/bin/python -m
benchmarks.latency [--rounds N]`.

Peers: no open-source bot could be measured on the same path. Hummingbot (the nearest peer) has no
connector for a local Uniswap v3 deployment or the local Binance URL without patching its
connectors, and pins its own Python and Cython build; NautilusTrader has no Uniswap adapter. A
comparison against either would measure our patches, not them: the figures stand alone.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STRATEGY = """  - name: depeg_arb
    strategy: strategies.depeg_arb:DepegArb
    venues: [uniswap_local, binance, alpaca]
    instruments: [TSLAx/USDC, TSLAx/USDT, TSLA/USD, TSLAx]
    params:
      token: TSLAx
      pools:
        - {venue: uniswap_local, pool: TSLAx/USDC, gas_units: 130000, gas_tick_units: 20000,
           gas_price_gwei: 2, native_price: 3000, slippage_bps: 20, quote_decimals: 6}
      books:
        - {venue: binance, instrument: TSLAx/USDT, taker_fee_bps: 10}
      broker_venue: alpaca
      stock_instrument: TSLA/USD
      max_unhedged_shares: 40
      max_trade_tokens: 2
      max_hedge_shares: 20
      min_profit: 1
      open_pause_minutes: 0
      open_wide_minutes: 0
"""


def config_text() -> str:
    """config.yaml with the depeg arbitrage, loose order-rate and daily-loss limits (the sandbox is fast)."""
    text = (REPO / "config.yaml").read_text()
    head, _, rest = text.partition("strategies:\n")
    _, _, tail = rest.partition("# ----")
    text = head + "strategies:\n" + STRATEGY + "\n# ----" + tail
    text = text.replace("max_daily_loss: 1000 ", "max_daily_loss: 1000000 ")
    return text.replace("orders_per_second: 5 ", "orders_per_second: 100 ")


class _Timed:
    """Wraps an engine venue: when each request left the engine and when the venue answered."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.sent: list[float] = []
        self.acked: list[float] = []

    async def submit(self, request: Any) -> Any:
        self.sent.append(time.monotonic())
        update = await self.inner.submit(request)
        self.acked.append(time.monotonic())
        return update

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _wait(condition: Any, limit_s: float = 20.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the bot did not react")
        await asyncio.sleep(0.005)


async def measure(rounds: int) -> dict[str, list[float]]:
    """Run the bot on a still sandbox; latencies in ms per path and stage."""
    from bots.assembly import build_bot
    from bots.market_driver import DriverParams
    from bots.sandbox import Sandbox, SandboxParams
    from core.config import parse_config

    params = SandboxParams(
        start="2025-07-01T14:00:00Z",
        drive=False,
        driver=DriverParams(swap_probability=0.0, depeg_probability=0.0, seed=3),
    )
    out: dict[str, list[float]] = {k: [] for k in ("pool_request", "pool_ack", "book_request", "book_venue")}
    async with Sandbox(params) as box:
        assert box.alpaca is not None and box.binance is not None
        quote = box.alpaca.quotes["TSLA"]

        async def quoting() -> None:
            while True:
                await box.alpaca.push_quote("TSLA", quote.bid, quote.ask)  # type: ignore[union-attr]
                await asyncio.sleep(0.2)

        with tempfile.TemporaryDirectory() as tmp:
            cfg = parse_config(config_text(), "latency.yaml")
            bot = await build_bot(
                cfg, sandbox=box, metrics_port=None, storage_url=f"sqlite+aiosqlite:///{tmp}/j.sqlite"
            )
            pool_venue, book_venue = (
                _Timed(bot.engine.venues["uniswap_local"]),
                _Timed(bot.engine.venues["binance"]),
            )
            bot.engine.venues["uniswap_local"], bot.engine.venues["binance"] = pool_venue, book_venue
            quotes = asyncio.create_task(quoting())
            task = asyncio.create_task(bot.run(install_signals=False))
            strategy: Any = bot.engine.strategies[0]
            ctx = bot.engine.contexts[0]
            try:
                await _wait(lambda: strategy.fair_value(ctx) is not None and bool(bot.engine.pools))
                fair = Decimal(repr(strategy.fair_value(ctx)))
                calm_bid, calm_ask = (
                    (fair * Decimal("0.999")).quantize(Decimal("0.01")),
                    (fair * Decimal("1.001")).quantize(Decimal("0.01")),
                )
                for i in range(rounds):
                    # pool: the depeg's swap is mined when inject_depeg returns
                    sent = len(pool_venue.sent)
                    await box.driver.inject_depeg(300 if i % 2 == 0 else -300)
                    mined = time.monotonic()
                    await _wait(lambda s=sent: len(pool_venue.acked) > s)
                    out["pool_request"].append((pool_venue.sent[sent] - mined) * 1e3)
                    out["pool_ack"].append((pool_venue.acked[sent] - mined) * 1e3)
                    await _wait(lambda: not bot.engine.open_orders())
                    await asyncio.sleep(0.3)  # let the gap's closing trades and hedges finish
                    await _wait(lambda: not bot.engine.open_orders())
                    # book: a rich bid appears on the exchange
                    sent = len(book_venue.sent)
                    posts = len(box.binance.requests)
                    # alternately a rich bid and a cheap ask, so the inventory goes back and forth
                    rich = (fair * Decimal("1.013")).quantize(Decimal("0.01"))
                    cheap = (fair * Decimal("0.987")).quantize(Decimal("0.01"))
                    bids, asks = [(calm_bid, Decimal(5))], [(calm_ask, Decimal(5))]
                    if i % 2 == 0:
                        bids = [(rich, Decimal(1))]
                    else:
                        asks = [(cheap, Decimal(1))]
                    pushed = time.monotonic()
                    box.binance.set_book("TSLAXUSDT", bids, asks)
                    await _wait(lambda s=sent: len(book_venue.acked) > s)
                    post = next(
                        r
                        for r in box.binance.requests[posts:]
                        if r.method == "POST" and r.path == "/api/v3/order"
                    )
                    out["book_request"].append((book_venue.sent[sent] - pushed) * 1e3)
                    out["book_venue"].append((post.received_at - pushed) * 1e3)
                    box.binance.set_book("TSLAXUSDT", [(calm_bid, Decimal(5))], [(calm_ask, Decimal(5))])
                    await _wait(lambda: not bot.engine.open_orders())
                    await asyncio.sleep(0.3)
            finally:
                bot.stop()
                await task
                quotes.cancel()
    return out


def main() -> None:
    """Measure and print the table (ms; lower is better)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.latency")
    parser.add_argument("--rounds", type=int, default=20)
    args, _ = parser.parse_known_args()
    logging.basicConfig(level=logging.ERROR)
    result = asyncio.run(measure(args.rounds))
    labels = {
        "pool_request": "pool: Swap log mined -> our swap request leaves the engine",
        "pool_ack": "pool: Swap log mined -> our swap tx accepted by the node",
        "book_request": "book: bid pushed -> our IOC order leaves the engine",
        "book_venue": "book: bid pushed -> our order POST reaches the exchange",
    }
    print(f"{'path':<60} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'n':>4}")
    for key, label in labels.items():
        values = result[key]
        print(
            f"{label:<60} {_pct(values, 0.5):>8.1f} {_pct(values, 0.99):>8.1f} "
            f"{statistics.fmean(values):>8.1f} {len(values):>4}"
        )


if __name__ == "__main__":
    main()
