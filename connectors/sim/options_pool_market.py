"""What the options pool knows of the market: asset prices and vols, and the marks of its options.

Every option is priced on the cross rate of its underlying against its strike currency (`quote`),
then converted into the pool asset that carries its premium, margin and funding (`margin_asset`):

    X     = cross_rate(S_underlying, S_quote)          quote units per unit of underlying (spot)
    sigma = cross_vol(sigma_underlying, sigma_quote, rho)
    V     = everlasting_price(X, K, sigma, T, r = rate[quote], q = rate[underlying], is_call)
    c     = S_quote / S_margin                          margin units per quote unit
    mark  = V * c,   payoff = max(+-(X - K), 0) * c     margin units per unit of underlying

Prices S are in the valuation currency (USD, worth 1, vol 0). So a BTC call struck and margined in
TSLA tokens (quote = margin = TSLAx) is priced on X = S_BTC / S_TSLAx with the cross vol, in TSLAx
(c = 1), as `pricing.cross` prescribes; a BTC call struck in USD and margined in TSLAx is priced in
USD on S_BTC with BTC's vol and converted at the TSLAx price (the coin-margined conversion V / S_m).
T is the option's funding period in years.

Rounding (documented, exact): X, mark and payoff are `Decimal`s rounded half-even to
`price_quantum` (mark never below one quantum, so a contract is never free and a fill price is
always > 0). The pool's quote is mark +- `spread_bps`: ask rounded up, bid rounded down (never
below one quantum). Float market data becomes `Decimal` through its shortest repr.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import (
    ROUND_CEILING,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    Decimal,
    localcontext,
)
from typing import NamedTuple

from core.errors import InvalidInput
from core.events import Event, OraclePrice, Quote
from core.instruments import PerpetualOption
from core.money import MONEY
from pricing.coin_margined import coin_margined
from pricing.cross import cross_rate, cross_vol
from pricing.everlasting import everlasting_greeks, everlasting_price
from pricing.funding import everlasting_funding_rate

"""Decimal context of the pool: 60 digits, so sums and products of amounts never round; errors trap."""

BPS = Decimal(10_000)
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class PriceFeed:
    """A market-data stream that prices one asset (or gives its vol), in the valuation currency.

    `venue` is the `Quote.venue` or `OraclePrice.source` field, `instrument` the event's
    instrument; a `Quote` gives its mid, an `OraclePrice` its price (its `publish_ts` is the time
    staleness is judged on). A vol feed is an `OraclePrice` whose price is the asset's vol per
    sqrt(year) (0.65 = 65%).
    """

    venue: str
    instrument: str
    asset: str


class OptionMark(NamedTuple):
    """The pool's valuation of one option at one time; money in the option's margin asset.

    `spot` X is the underlying in quote units (the cross rate); `quote_to_margin` c = S_quote /
    S_margin; `mark`, `payoff`, `bid`, `ask` are margin units per unit of underlying (a contract is
    `contract_size` units). `sigma` per sqrt(year), `r`/`q` per year. `price_ts` (ns) is the
    oldest input price's time. `prices` is what `core.margin.MarginCalculator` takes: the option's
    mark and the valuation-currency prices of its underlying, quote and margin asset.
    """

    option: PerpetualOption
    spot: Decimal
    sigma: float
    r: float
    q: float
    quote_to_margin: Decimal
    mark: Decimal
    payoff: Decimal
    bid: Decimal
    ask: Decimal
    price_ts: int
    prices: Mapping[str, Decimal]

    @property
    def underlying_in_margin(self) -> Decimal:
        """Underlying price in margin units (X * c), unrounded: the base of the liquidation penalty."""
        with localcontext(MONEY):
            return self.spot * self.quote_to_margin


class MarginGreeks(NamedTuple):
    """Value and sensitivities of one unit of underlying of an option, in margin-asset units.

    `price` margin units; `delta` per quote unit of X; `gamma` per quote unit squared; `vega` per
    1.00 of sigma; `theta` = -(mark - payoff)/T, the funding a long pays per year (margin units).
    """

    price: float
    delta: float
    gamma: float
    vega: float
    theta: float


def to_decimal(value: float) -> Decimal | None:
    """A float price as the `Decimal` of its shortest repr; None unless finite and >= 0."""
    if not math.isfinite(value) or value < 0.0:
        return None
    return Decimal(repr(value))


class PoolMarket:
    """Latest prices and vols of the assets the pool's options need, and the options' marks.

    Args:
        options: the options the pool sells.
        price_feeds: one feed per asset priced (the valuation asset is worth 1 and needs none).
        vols: starting vol per asset, per sqrt(year); `vol_feeds` (OraclePrice) update them.
        correlations: `(asset_a, asset_b) -> rho` of log returns (either order; default 0).
        rates: continuously compounded yield per year per asset (default 0).
        valuation_asset: the currency prices are in (e.g. "USD").
        spread_bps: half-spread of the pool's quote around the mark, in bps of the mark.
        price_quantum: rounding step of spot, mark, payoff, bid and ask (margin units).
    """

    def __init__(
        self,
        options: Iterable[PerpetualOption],
        price_feeds: Iterable[PriceFeed],
        vols: Mapping[str, Decimal],
        vol_feeds: Iterable[PriceFeed] = (),
        correlations: Mapping[tuple[str, str], Decimal] | None = None,
        rates: Mapping[str, Decimal] | None = None,
        valuation_asset: str = "USD",
        spread_bps: Decimal = _ZERO,
        price_quantum: Decimal = Decimal("1e-8"),
    ) -> None:
        self.options = {o.id: o for o in options}
        self.valuation_asset = valuation_asset
        self.spread_bps = spread_bps
        self.price_quantum = price_quantum
        self._price_feeds = {(f.venue, f.instrument): f.asset for f in price_feeds}
        self._vol_feeds = {(f.venue, f.instrument): f.asset for f in vol_feeds}
        self._prices: dict[str, tuple[Decimal, int]] = {}
        self._marks: dict[str, OptionMark] = {}
        self._users: dict[str, list[str]] = {}  # asset -> options whose mark it moves
        self._vols: dict[str, float] = {valuation_asset: 0.0}
        for asset, vol in vols.items():
            self.set_vol(asset, vol)
        self._rho: dict[frozenset[str], float] = {}
        for (a, b), rho in (correlations or {}).items():
            if not (isinstance(rho, Decimal) and -1 <= rho <= 1) or a == b:
                raise InvalidInput(
                    f"correlations[{a!r}, {b!r}]", rho, "must be a Decimal in [-1, 1] of two assets"
                )
            self._rho[frozenset((a, b))] = float(rho)
        self._rates: dict[str, float] = {}
        for asset, rate in (rates or {}).items():
            if not isinstance(rate, Decimal) or not rate.is_finite():
                raise InvalidInput(f"rates[{asset!r}]", rate, "must be a finite Decimal (per year)")
            self._rates[asset] = float(rate)
        for option in self.options.values():
            for asset in {option.underlying, option.quote, option.margin_asset}:
                self._users.setdefault(asset, []).append(option.id)
                if asset != valuation_asset and asset not in self._price_feeds.values():
                    raise InvalidInput(
                        "price_feeds", asset, f"no feed prices {asset!r}, needed by {option.id}"
                    )
            for asset in (option.underlying, option.quote):
                if asset not in self._vols and asset not in self._vol_feeds.values():
                    raise InvalidInput("vols", asset, f"no vol for {asset!r}, needed by {option.id}")

    # -- inputs -------------------------------------------------------------------------------

    def keys(self) -> frozenset[tuple[str, str]]:
        """`(venue or oracle source, instrument)` of every event stream the pool reads."""
        return frozenset(self._price_feeds) | frozenset(self._vol_feeds)

    def observe(self, event: Event) -> bool:
        """Take a `Quote` or `OraclePrice` of a feed; True when a price or vol changed.

        A bad value (NaN, negative, a crossed or empty quote) is ignored: False.
        """
        if type(event) is Quote:
            key = (event.venue, event.instrument)
            asset = self._price_feeds.get(key)
            bid, ask = to_decimal(event.bid), to_decimal(event.ask)
            if asset is None or bid is None or ask is None or not 0 < bid <= ask:
                return False
            with localcontext(MONEY):
                self.set_price(asset, (bid + ask) / 2, event.ts)
            return True
        if type(event) is OraclePrice:
            key = (event.source, event.instrument)
            value = to_decimal(event.price)
            if value is None:
                return False
            if key in self._vol_feeds:
                self.set_vol(self._vol_feeds[key], value)
                return True
            asset = self._price_feeds.get(key)
            if asset is None or value == 0:
                return False
            self.set_price(asset, value, event.publish_ts)
            return True
        return False

    def set_price(self, asset: str, price: Decimal, ts: int) -> None:
        """Set `asset`'s price (valuation currency per unit, > 0) valid at `ts` (ns); re-mark its options."""
        if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
            raise InvalidInput(f"price[{asset!r}]", price, "must be a finite Decimal > 0")
        self._prices[asset] = (price, ts)
        self._remark(self._users.get(asset, ()))

    def set_vol(self, asset: str, vol: Decimal) -> None:
        """Set `asset`'s vol (per sqrt(year), >= 0); re-mark the options priced with it."""
        if not isinstance(vol, Decimal) or not vol.is_finite() or vol < 0:
            raise InvalidInput(f"vols[{asset!r}]", vol, "must be a finite Decimal >= 0 (per sqrt(year))")
        self._vols[asset] = float(vol)
        self._remark(self._users.get(asset, ()))

    # -- outputs ------------------------------------------------------------------------------

    def price(self, asset: str) -> Decimal | None:
        """Latest price of `asset` in the valuation currency, None before the first."""
        if asset == self.valuation_asset:
            return Decimal(1)
        found = self._prices.get(asset)
        return None if found is None else found[0]

    def mark(self, option_id: str) -> OptionMark | None:
        """The option's current mark, or None while a price it needs is missing."""
        return self._marks.get(option_id)

    def missing(self, option_id: str) -> str:
        """Why an option has no mark (names the asset without a price)."""
        option = self.options[option_id]
        for asset in (option.underlying, option.quote, option.margin_asset):
            if self.price(asset) is None:
                return f"no price of {asset} yet"
        return "the pricing model gave no value"

    def funding_rate(self, option_id: str) -> float:
        """Funding a long pays per year per unit of underlying, margin units (`everlasting_funding_rate`)."""
        m = self._require(option_id)
        o = m.option
        quote_units = everlasting_funding_rate(
            float(m.mark / m.quote_to_margin),
            float(m.spot),
            float(o.strike),
            o.funding_period_years,
            o.is_call,
        )
        return float(quote_units) * float(m.quote_to_margin)

    def greeks(self, option_id: str) -> MarginGreeks:
        """Value and greeks of one unit of underlying in margin units (see `MarginGreeks`).

        An inverse option (its underlying is its margin asset) uses `coin_margined`; others scale
        the quote-currency greeks by c = S_quote / S_margin.
        """
        m = self._require(option_id)
        o = m.option
        g = everlasting_greeks(
            float(m.spot), float(o.strike), m.sigma, o.funding_period_years, m.r, m.q, o.is_call
        )
        c = float(m.quote_to_margin)
        theta = float(g.theta) * c
        if o.underlying == o.margin_asset:
            w = coin_margined(g.price, g.delta, g.gamma, g.vega, float(m.spot))
            return MarginGreeks(float(w.price), float(w.delta), float(w.gamma), float(w.vega), theta)
        return MarginGreeks(
            float(g.price) * c, float(g.delta) * c, float(g.gamma) * c, float(g.vega) * c, theta
        )

    # -- internals ----------------------------------------------------------------------------

    def _require(self, option_id: str) -> OptionMark:
        m = self._marks.get(option_id)
        if m is None:
            raise InvalidInput("option", option_id, "has no mark: " + self.missing(option_id))
        return m

    def _remark(self, option_ids: Iterable[str]) -> None:
        for option_id in option_ids:
            m = self._compute(self.options[option_id])
            if m is None:
                self._marks.pop(option_id, None)
            else:
                self._marks[option_id] = m

    def _compute(self, o: PerpetualOption) -> OptionMark | None:
        s_u, s_q, s_m = self.price(o.underlying), self.price(o.quote), self.price(o.margin_asset)
        if s_u is None or s_q is None or s_m is None:
            return None
        pq = self.price_quantum
        spot_f = float(cross_rate(float(s_u), float(s_q)))
        sigma = float(
            cross_vol(
                self._vols[o.underlying],
                self._vols[o.quote],
                self._rho.get(frozenset((o.underlying, o.quote)), 0.0),
            )
        )
        r, q = self._rates.get(o.quote, 0.0), self._rates.get(o.underlying, 0.0)
        spot_d = to_decimal(spot_f)
        if spot_d is None or spot_d == 0:
            return None
        spot = spot_d.quantize(pq, rounding=ROUND_HALF_EVEN, context=MONEY)
        value = to_decimal(
            float(
                everlasting_price(
                    float(spot), float(o.strike), sigma, o.funding_period_years, r, q, o.is_call
                )
            )
        )
        if value is None:
            return None
        with localcontext(MONEY):
            c = Decimal(1) if o.quote == o.margin_asset else s_q / s_m
            mark = max((value * c).quantize(pq, rounding=ROUND_HALF_EVEN), pq)
            intrinsic = max(spot - o.strike if o.is_call else o.strike - spot, _ZERO)
            payoff = (intrinsic * c).quantize(pq, rounding=ROUND_HALF_EVEN)
            half = mark * self.spread_bps / BPS
            ask = (mark + half).quantize(pq, rounding=ROUND_CEILING)
            bid = max((mark - half).quantize(pq, rounding=ROUND_FLOOR), pq)
        ts = min(
            self._prices[a][1] for a in (o.underlying, o.quote, o.margin_asset) if a != self.valuation_asset
        )
        prices = {o.id: mark, o.underlying: s_u, o.quote: s_q, o.margin_asset: s_m}
        prices.pop(self.valuation_asset, None)  # MarginCalculator prices the valuation asset at 1 itself
        return OptionMark(o, spot, sigma, r, q, c, mark, payoff, bid, ask, ts, prices)
