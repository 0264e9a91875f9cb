"""Perpetua's pricing core: pure numba kernels, no I/O, no imports from other layers.

Units everywhere: times and funding periods in years (365 days), sigma per sqrt(year), rates
continuously compounded per year, prices in quote currency unless coin-margined. Every function
takes floats or numpy arrays (broadcast together; `is_call` a bool or bool array) and returns a
float for scalar inputs.

- Black-Scholes-Merton: `bs_price`, `bs_greeks` (a `Greeks` named tuple), `implied_vol`.
- Perpetual (everlasting) options: `everlasting_price`, `everlasting_greeks`,
  `everlasting_price_discrete` (funding paid f times per period).
- Coin-margined quotes and cross pairs: `coin_margined`, `cross_rate`, `cross_vol`.
- Funding: `everlasting_funding_rate`, `perp_funding_rate`.
- Exact Uniswap v2/v3 math: `pricing.amm`.
"""

from __future__ import annotations

from pricing import amm
from pricing.black_scholes import bs_greeks, bs_price
from pricing.coin_margined import CoinGreeks, coin_margined
from pricing.cross import cross_rate, cross_vol
from pricing.everlasting import everlasting_greeks, everlasting_price, everlasting_price_discrete
from pricing.funding import everlasting_funding_rate, perp_funding_rate
from pricing.greeks import Greeks
from pricing.implied_vol import implied_vol

__all__ = [
    "CoinGreeks",
    "Greeks",
    "amm",
    "bs_greeks",
    "bs_price",
    "coin_margined",
    "cross_rate",
    "cross_vol",
    "everlasting_funding_rate",
    "everlasting_greeks",
    "everlasting_price",
    "everlasting_price_discrete",
    "implied_vol",
    "perp_funding_rate",
]
