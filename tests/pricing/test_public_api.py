"""The names other layers and outside checks call, reachable from `pricing` itself."""

from __future__ import annotations

import numpy as np

import pricing


def test_fixed_names_are_exported_and_documented() -> None:
    for name in (
        "bs_price",
        "bs_greeks",
        "implied_vol",
        "everlasting_price",
        "everlasting_greeks",
        "everlasting_price_discrete",
        "coin_margined",
        "cross_rate",
        "cross_vol",
        "everlasting_funding_rate",
        "perp_funding_rate",
    ):
        fn = getattr(pricing, name)
        assert callable(fn) and fn.__doc__, name
    for name in ("v2_amount_out", "v2_amount_in", "v2_optimal_arbitrage", "v3_swap", "quote_exact_input"):
        assert callable(getattr(pricing.amm, name)), name


def test_scalars_give_floats_and_arrays_broadcast() -> None:
    price = pricing.bs_price(100.0, 100.0, 1.0, 0.0, 0.0, 0.2, True)
    assert isinstance(price, float)
    prices = pricing.bs_price(np.array([90.0, 100.0, 110.0]), 100.0, 1.0, 0.0, 0.0, 0.2, True)
    assert isinstance(prices, np.ndarray) and prices.shape == (3,)
    # Round trip through the public implied vol.
    assert abs(pricing.implied_vol(price, 100.0, 100.0, 1.0, 0.0, 0.0, True) - 0.2) < 1e-12
    greeks = pricing.everlasting_greeks(np.full((2, 2), 90.0), 100.0, 0.5, 7 / 365, 0.0, 0.0, True)
    assert greeks.price.shape == (2, 2)  # type: ignore[union-attr]
    # Deri's reference value, through the package namespace.
    assert abs(pricing.everlasting_price(90.0, 100.0, 0.5, 7 / 365, 0.0, 0.0, True) - 0.269764196964) < 1e-11
