"""Prices for valuing the portfolio from the engine's market state (the kill switch's daily PnL, metrics).

`engine_prices` returns what `Portfolio.equity(prices, currency)` needs, in the risk currency:

- dollar stablecoins (USD, USDC, USDT, DAI) at 1 when the currency is USD;
- a real stock (a reference source's underlying) at its reference price;
- a tokenized stock at fair value (reference x multiplier: what the issuer redeems it for);
- a stock perpetual at the mid of its own quote on any venue, else its underlying's reference;
- any other asset at its latest oracle price `<ASSET>/<dollar>`.

Prices of any age are used: valuation must not jump when a feed pauses (the kill switch judges
staleness separately). Float market prices become `Decimal` through their shortest repr. The
backtest's equity sampler values the same way (plus options-pool marks), see backtest/runner.py.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Final

from core.instruments import StockPerp, TokenizedStock

if TYPE_CHECKING:
    from core.engine import TradingEngine

DOLLARS: Final = frozenset({"USD", "USDC", "USDT", "DAI"})
"""Assets worth 1 in a USD valuation."""

ANY_AGE_NS: Final = 2**62
"""A staleness limit (ns) no price exceeds: valuation takes the latest price, however old."""


def engine_prices(engine: TradingEngine, currency: str) -> dict[str, Decimal]:
    """Latest price of every asset and derivative the engine can price, in `currency` per unit."""
    prices: dict[str, Decimal] = {}
    if currency == "USD":
        prices.update(dict.fromkeys(DOLLARS, Decimal(1)))
    for ref in engine.references:
        price = engine.reference_price(ref.underlying, ANY_AGE_NS)
        if price is not None:
            prices[ref.underlying] = Decimal(repr(price))
    for instrument in engine.instruments:
        if isinstance(instrument, TokenizedStock):
            fair = engine.fair_value(instrument.id, ANY_AGE_NS)
            if fair is not None:
                prices[instrument.id] = Decimal(repr(fair))
        elif isinstance(instrument, StockPerp):
            mids = [0.5 * (q.bid + q.ask) for (_, i), q in engine.quotes.items() if i == instrument.id]
            mark = mids[0] if mids else engine.reference_price(instrument.underlying, ANY_AGE_NS)
            if mark is not None:
                prices[instrument.id] = Decimal(repr(mark))
    for (_, instrument_id), oracle in engine.oracles.items():
        base, _, quote = instrument_id.partition("/")
        if quote in DOLLARS and currency == "USD" and base not in prices:
            prices[base] = Decimal(repr(oracle.price))
    return prices
