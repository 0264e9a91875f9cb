"""NautilusTrader peer for `benchmarks/backtest.py`: the same workload through its BacktestEngine.

Runs inside `.venv-peers` (nautilus_trader pins older numpy and pandas than Perpetua). Prints one
JSON line: events per second for (a) a no-op strategy and (b) a market order every 1,000 quotes.
Usage: `.venv-peers/bin/python benchmarks/peers/nautilus_backtest.py N SEED`.
"""

from __future__ import annotations

import json
import sys
import time
from decimal import Decimal

import numpy as np
import pandas as pd
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Money
from nautilus_trader.persistence.wranglers import QuoteTickDataWrangler
from nautilus_trader.test_kit.providers import TestInstrumentProvider
from nautilus_trader.trading.strategy import Strategy


class Config(StrategyConfig, frozen=True):
    every: int = 0


class Bench(Strategy):
    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.every = config.every
        self.count = 0
        self.side = OrderSide.BUY

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(TestInstrumentProvider.btcusdt_binance().id)
        self.subscribe_quote_ticks(self.instrument.id)

    def on_quote_tick(self, tick: QuoteTick) -> None:
        self.count += 1
        if self.every and self.count % self.every == 0:
            order = self.order_factory.market(
                self.instrument.id, self.side, self.instrument.make_qty(Decimal("0.01"))
            )
            self.submit_order(order)
            self.side = OrderSide.SELL if self.side == OrderSide.BUY else OrderSide.BUY


def run(n: int, seed: int, every: int) -> float:
    instrument = TestInstrumentProvider.btcusdt_binance()
    rng = np.random.default_rng(seed)
    mid = 50_000 + np.cumsum(rng.normal(0, 5, n))
    index = pd.to_datetime(np.arange(n, dtype=np.int64) * 1_000_000 + 1_750_000_000_000_000_000, utc=True)
    frame = pd.DataFrame({"bid_price": mid.round(2), "ask_price": (mid + 0.01).round(2)}, index=index)
    ticks = QuoteTickDataWrangler(instrument).process(frame)
    engine = BacktestEngine(BacktestEngineConfig(logging=LoggingConfig(bypass_logging=True)))
    engine.add_venue(
        Venue("BINANCE"),
        OmsType.NETTING,
        AccountType.CASH,
        [Money(10_000_000, USDT), Money(1_000, instrument.base_currency)],
    )
    engine.add_instrument(instrument)
    engine.add_data(ticks)
    engine.add_strategy(Bench(Config(every=every)))
    start = time.perf_counter()
    engine.run()
    elapsed = time.perf_counter() - start
    engine.dispose()
    return n / elapsed


if __name__ == "__main__":
    count, seed = int(sys.argv[1]), int(sys.argv[2])
    print(json.dumps({"noop": run(count, seed, 0), "orders": run(count, seed, 1000)}))
