"""Valuation, greeks and Avellaneda-Stoikov quotes of a perpetual option, in its margin asset.

Pure functions used by `strategies.perp_options_mm`. An option on `underlying` struck in `quote`
and margined in `margin_asset` is valued as the options pool values it
(`connectors.sim.options_pool_market`): on the cross rate X = S_underlying / S_quote with the cross
vol sigma = cross_vol(sigma_underlying, sigma_quote, rho) (`pricing.cross`), with
`everlasting_price` / `everlasting_greeks` in quote units, then converted into margin units with
c = S_quote / S_margin. An inverse option (its underlying is its margin asset) takes the
coin-margined greeks (`pricing.coin_margined`).

Units of `OptionValue` (per unit of underlying, i.e. per contract of size 1):

- `price`: margin-asset units;
- `delta`: units of the underlying to hold against one long unit (the hedge is minus this); for an
  inverse option the price-adjusted delta Delta - V/X;
- `gamma`: change of the quote-currency delta for a 1% rise of X (Gamma x X / 100), units of the
  underlying;
- `vega`: margin units for one vol point (0.01 of sigma);
- `price_vol`: volatility of `price` in margin units per sqrt(year), |d price / dX| x X x sigma,
  the sigma of the Avellaneda-Stoikov model.

Avellaneda-Stoikov (2008), with the option's own price as the mid s, inventory q (contracts x
contract size, > 0 long), risk aversion gamma (per margin unit), order-arrival decay kappa (per
margin unit), horizon tau (years) and sigma_p = `price_vol`:

    reservation r = s - q gamma sigma_p^2 tau
    half spread   = gamma sigma_p^2 tau / 2 + ln(1 + gamma / kappa) / gamma

widened by `inventory_widening` x |q| / `max_inventory` of itself and floored at
`min_half_spread_bps` of s; bid = r - half, ask = r + half.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from core.instruments import PerpetualOption


class OptionValue(NamedTuple):
    """Value and greeks of one unit of underlying of an option (units in the module docstring)."""

    price: float
    delta: float
    gamma: float
    vega: float
    price_vol: float
    spot: float
    sigma: float


def option_value(
    pricing: Any,
    option: PerpetualOption,
    underlying_price: float,
    quote_price: float,
    margin_price: float,
    underlying_vol: float,
    quote_vol: float = 0.0,
    correlation: float = 0.0,
) -> OptionValue | None:
    """Value the option from asset prices in a common currency (e.g. USD) and vols per sqrt(year).

    `pricing` is the `pricing` package (`ctx.pricing`). Rates are 0 (as the pool's default). None
    when an input is missing or outside the model.
    """
    if not (underlying_price > 0 and quote_price > 0 and margin_price > 0):
        return None
    spot = float(pricing.cross_rate(underlying_price, quote_price))
    sigma = float(pricing.cross_vol(underlying_vol, quote_vol, correlation))
    if not (math.isfinite(spot) and math.isfinite(sigma)):
        return None
    g = pricing.everlasting_greeks(
        spot, float(option.strike), sigma, option.funding_period_years, 0.0, 0.0, option.is_call
    )
    value, delta, gamma, vega = float(g.price), float(g.delta), float(g.gamma), float(g.vega)
    if not math.isfinite(value):
        return None
    c = quote_price / margin_price
    if option.underlying == option.margin_asset:
        w = pricing.coin_margined(value, delta, gamma, vega, spot)
        price, hedge, dprice = float(w.price), float(w.price_adjusted_delta), float(w.delta)
        vega_pt = float(w.vega) / 100
    else:
        price, hedge, dprice = value * c, delta, delta * c
        vega_pt = vega * c / 100
    gamma_1pct = gamma * spot / 100  # the quote-currency delta's change for a 1% move, either way
    return OptionValue(price, hedge, gamma_1pct, vega_pt, abs(dprice) * spot * sigma, spot, sigma)


class AsQuote(NamedTuple):
    """Reservation price and half-spread (margin units per unit of underlying)."""

    reservation: float
    half_spread: float

    @property
    def bid(self) -> float:
        """Reservation - half spread."""
        return self.reservation - self.half_spread

    @property
    def ask(self) -> float:
        """Reservation + half spread."""
        return self.reservation + self.half_spread


def avellaneda_stoikov(
    mid: float,
    inventory: float,
    price_vol: float,
    risk_aversion: float,
    kappa: float,
    horizon_years: float,
    inventory_widening: float = 0.0,
    max_inventory: float = 1.0,
    min_half_spread_bps: float = 0.0,
) -> AsQuote:
    """The Avellaneda-Stoikov quote around `mid` (formulas in the module docstring)."""
    variance_term = risk_aversion * price_vol * price_vol * horizon_years
    reservation = mid - inventory * variance_term
    half = variance_term / 2 + math.log1p(risk_aversion / kappa) / risk_aversion
    half *= 1 + inventory_widening * min(abs(inventory) / max_inventory, 1.0)
    half = max(half, mid * min_half_spread_bps / 10_000)
    return AsQuote(reservation, half)


class RealisedVol:
    """Realised vol per sqrt(year) from prices sampled every `sample_ns`: sqrt(mean r^2 x samples a year).

    Zero-mean estimator over the last `window` log returns of consecutive samples (the drift of a
    minute is noise). `value()` is None until `min_samples` returns are in.
    """

    def __init__(self, sample_ns: int, window: int, min_samples: int) -> None:
        self.sample_ns = sample_ns
        self.window = window
        self.min_samples = min_samples
        self._returns: list[float] = []
        self._sum_sq = 0.0
        self._last: float | None = None

    def add(self, price: float) -> None:
        """One price sample (taken every `sample_ns`)."""
        if not price > 0:
            return
        if self._last is not None:
            r = math.log(price / self._last)
            self._returns.append(r)
            self._sum_sq += r * r
            if len(self._returns) > self.window:
                old = self._returns.pop(0)
                self._sum_sq -= old * old
        self._last = price

    def value(self) -> float | None:
        """The estimate, or None with fewer than `min_samples` returns."""
        n = len(self._returns)
        if n < self.min_samples or n == 0:
            return None
        per_year = 365 * 86_400 * 1e9 / self.sample_ns
        return math.sqrt(max(self._sum_sq, 0.0) / n * per_year)
