"""Implied volatility: exact round trips, bounds, and agreement with Jaeckel's "Let's be rational".

References, none of them our own output:

* Exact prices: Black-Scholes-Merton evaluated in 40-digit `decimal` arithmetic (erfc by the
  all-positive series below 3 and Lentz's continued fraction above) from the exact binary values of
  the inputs, then rounded once to double. The implied vol of that double is sigma + O(ulp/vega).
* py_lets_be_rational 1.0.1 (Jaeckel's algorithm, a second implementation) on the same prices.
* Regression values of the C LetsBeRational, from vollib/py_lets_be_rational tests/TestValues.json
  (inputs F, K, T, q=+-1, their `black` price and `implied_volatility_from_a_transformed_rational_guess`),
  and the published examples of its tests/test_public_functions.py.

"Negligible vega" is defined by the conditioning of the problem. The vol is a function of the price
and of S and K, all doubles; one ulp of each moves it by

    kappa = (ulp(price) + |dP/dS| ulp(S) + |dP/dK| ulp(K)) / vega,   |dP/dS| = e^{-qT} N(+-d1),
                                                                   |dP/dK| = e^{-rT} N(+-d2).

No method can promise more than that from these inputs. (The price-only ulp(price)/vega is not
enough: an in-the-money price is mostly the parity term S e^{-qT} - K e^{-rT}, whose rounding is that
of S and K; near the money with a short expiry that is a hundred ulps of the price.) Vega is
*negligible* where kappa > 1e-12: there one ulp of the data moves the vol by more than the target.
Where kappa <= 1e-12 the tests demand |error| <= 1e-12, and error <= 2 (kappa + eps sigma). Where it
is negligible they demand backward stability instead: the returned vol reprices the option exactly
to within 2 ulps of S e^{-qT} + K e^{-rT} + price.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from functools import cache
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import py_lets_be_rational as lbr  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from py_lets_be_rational import lets_be_rational as lbr_module

from pricing.implied_vol import (
    _parallel_kernel,
    _serial_kernel,
    implied_vol,
    implied_vol_scalar,
)
from pricing.lets_be_rational import (
    black_and_vega,
    erfcx,
    initial_guess,
    inverse_norm_cdf,
    normalised_black,
    normalised_vol,
)

EPS = 2.220446049250313e-16
# py_lets_be_rational's normalised inverse with a limited number of iterations (0: its initial guess)
LBR_GUESS = lbr_module._unchecked_normalised_implied_volatility_from_a_transformed_rational_guess_with_limited_iterations  # noqa: E501

# ---------------------------------------------------------------------------------------------------
# 40-digit reference
# ---------------------------------------------------------------------------------------------------

PREC = 40
PI = Decimal("3.14159265358979323846264338327950288419716939937510582097494459")


def _erfc(w: Decimal) -> Decimal:
    """erfc(w) for w >= 0 in the current decimal context."""
    sqrt_pi = PI.sqrt()
    tiny = Decimal(10) ** (-PREC - 8)
    if w < 3:
        # erf w = 2/sqrt(pi) e^{-w^2} sum 2^n w^(2n+1)/(2n+1)!!: positive terms, no cancellation
        w2 = w * w
        term = w
        total = w
        n = 0
        while term > tiny * total:
            n += 1
            term = term * 2 * w2 / (2 * n + 1)
            total += term
        return 1 - 2 * (-w2).exp() * total / sqrt_pi
    # Laplace continued fraction erfc w = e^{-w^2}/sqrt(pi) / (w + (1/2)/(w + 1/(w + (3/2)/(w + ...))))
    f = w
    c = w
    d = Decimal(0)
    n = 0
    while True:
        n += 1
        a = Decimal(n) / 2
        d = 1 / (w + a * d)
        c = w + a / c
        f *= c * d
        if abs(c * d - 1) < tiny:
            return (-(w * w)).exp() / sqrt_pi / f


def _cdf(z: Decimal) -> Decimal:
    """N(z) in the current decimal context."""
    tail = _erfc(abs(z) / Decimal(2).sqrt()) / 2
    return tail if z < 0 else 1 - tail


def exact_price(S: float, K: float, T: float, r: float, q: float, sigma: float, is_call: bool) -> Decimal:
    """Black-Scholes-Merton price of the exact binary inputs, 40 significant digits."""
    with localcontext() as ctx:
        ctx.prec = PREC
        ctx.Emin, ctx.Emax = -(10**6), 10**6
        s_, k_, t_, r_, q_, v_ = (Decimal(v) for v in (S, K, T, r, q, sigma))
        total = v_ * t_.sqrt()
        d1 = ((s_ / k_).ln() + (r_ - q_) * t_) / total + total / 2
        d2 = d1 - total
        fwd = s_ * (-q_ * t_).exp()
        disc = k_ * (-r_ * t_).exp()
        if is_call:
            return +(fwd * _cdf(d1) - disc * _cdf(d2))
        return +(disc * _cdf(-d2) - fwd * _cdf(-d1))


def exact_normalised_black(x: float, s: float) -> Decimal:
    """b(x, s) = e^{x/2} N(x/s + s/2) - e^{-x/2} N(x/s - s/2), exact inputs, 40 digits."""
    with localcontext() as ctx:
        ctx.prec = PREC
        ctx.Emin, ctx.Emax = -(10**6), 10**6
        x_, s_ = Decimal(x), Decimal(s)
        half = (x_ / 2).exp()
        return +(half * _cdf(x_ / s_ + s_ / 2) - _cdf(x_ / s_ - s_ / 2) / half)


def _cdf_float(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """N(z) in floats (only used to rate conditioning)."""
    return np.asarray(0.5 * np.vectorize(math.erfc)(-z / math.sqrt(2.0)), dtype=np.float64)


class ExactSet:
    """Options with exact double prices, the implied vols of them, and the conditioning of each.

    kappa = (ulp(price) + |dP/dS| ulp(S) + |dP/dK| ulp(K)) / vega: how far one ulp of each price-scale
    input moves the vol. The vol is *conditioned* (vega not negligible) where kappa <= 1e-12.
    """

    def __init__(self, columns: list[tuple[float, float, float, float, float, float, bool]]) -> None:
        self.S, self.K, self.T, self.r, self.q, self.sigma = (
            np.array([c[i] for c in columns], dtype=np.float64) for i in range(6)
        )
        self.is_call = np.array([c[6] for c in columns], dtype=np.bool_)
        self.price = np.array([float(exact_price(*c)) for c in columns])
        sign = np.where(self.is_call, 1.0, -1.0)
        total = self.sigma * np.sqrt(self.T)
        d1 = (np.log(self.S / self.K) + (self.r - self.q) * self.T) / total + 0.5 * total
        fwd = self.S * np.exp(-self.q * self.T)
        disc = self.K * np.exp(-self.r * self.T)
        vega = fwd * np.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi) * np.sqrt(self.T)
        delta_s = np.exp(-self.q * self.T) * _cdf_float(sign * d1)
        delta_k = np.exp(-self.r * self.T) * _cdf_float(sign * (d1 - total))
        moved = np.spacing(self.price) + delta_s * np.spacing(self.S) + delta_k * np.spacing(self.K)
        with np.errstate(divide="ignore", over="ignore"):
            self.kappa = moved / vega
        self.conditioned = self.kappa <= 1e-12
        self.fwd = fwd
        self.disc = disc
        self.vol = np.asarray(implied_vol(self.price, self.S, self.K, self.T, self.r, self.q, self.is_call))


# ---------------------------------------------------------------------------------------------------
# The grid: moneyness K/S 0.2..5, T 1 day..10 years, sigma 0.01..5, calls and puts, three rate pairs,
# and random market-like options (which hit in-the-money short expiries between the grid's nodes)
# ---------------------------------------------------------------------------------------------------

MONEYNESS = np.geomspace(0.2, 5.0, 15)
EXPIRIES = np.array([1 / 365, 7 / 365, 1 / 12, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0])
SIGMAS = np.geomspace(0.01, 5.0, 15)
RATES = ((0.0, 0.0), (0.05, 0.02), (-0.01, 0.04))  # (r, q); r = q = 0 is where Black's F = S


@cache
def grid() -> ExactSet:
    """The grid, priced once per session (seconds of decimal arithmetic)."""
    columns = []
    for i, m in enumerate(MONEYNESS):
        for j, expiry in enumerate(EXPIRIES):
            for k, sigma in enumerate(SIGMAS):
                r, q = RATES[(i + j + k) % len(RATES)]
                for is_call in (True, False):
                    columns.append((100.0, float(100.0 * m), float(expiry), r, q, float(sigma), is_call))
    return ExactSet(columns)


@cache
def market() -> ExactSet:
    """1,500 random options: K/S 0.7..1.4, T 1 day..2 years, sigma 0.01..2 (log-uniform), r, q random."""
    rng = np.random.default_rng(2024)
    columns = []
    for _ in range(1500):
        K = float(100.0 * np.exp(rng.uniform(np.log(0.7), np.log(1.4))))
        T = float(np.exp(rng.uniform(np.log(1 / 365), np.log(2.0))))
        sigma = float(np.exp(rng.uniform(np.log(0.01), np.log(2.0))))
        r, q = float(rng.uniform(-0.01, 0.08)), float(rng.uniform(0.0, 0.05))
        columns.append((100.0, K, T, r, q, sigma, bool(rng.random() < 0.5)))
    return ExactSet(columns)


SETS = {"grid": grid, "market": market}


def test_both_regimes_are_represented() -> None:
    assert grid().price.size == 15 * 9 * 15 * 2
    assert 0.4 < grid().conditioned.mean() < 0.8
    assert 0.4 < market().conditioned.mean() < 0.9


@pytest.mark.parametrize("name", sorted(SETS))
def test_round_trip_error_at_most_1e12_where_vega_is_not_negligible(name: str) -> None:
    e = SETS[name]()
    c = e.conditioned
    error = np.abs(e.vol - e.sigma)[c]
    assert not np.isnan(error).any()
    assert error.max() <= 1e-12
    # and it follows the conditioning: within twice kappa plus one rounding of sigma itself
    assert (error <= 2.0 * (e.kappa[c] + EPS * e.sigma[c])).all()


@pytest.mark.parametrize("name", sorted(SETS))
def test_round_trip_is_backward_stable_where_vega_is_negligible(name: str) -> None:
    e = SETS[name]()
    idx = np.flatnonzero(~e.conditioned)
    assert idx.size > 300
    vols = e.vol[idx]
    assert not np.isnan(vols).any()  # every one of these prices is inside the bounds
    assert (vols >= 0.0).all()
    for i, vol in zip(idx, vols, strict=True):
        args = (e.S[i], e.K[i], e.T[i], e.r[i], e.q[i])
        if vol > 0.0:
            repriced = float(exact_price(*args, float(vol), bool(e.is_call[i])))
        else:  # sigma = 0 prices the discounted intrinsic
            repriced = max(e.fwd[i] - e.disc[i] if e.is_call[i] else e.disc[i] - e.fwd[i], 0.0)
        scale = EPS * (e.price[i] + e.fwd[i] + e.disc[i])
        assert abs(repriced - e.price[i]) <= 2.0 * scale, (args, e.is_call[i], e.sigma[i], vol)


def test_agrees_with_py_lets_be_rational_where_it_applies() -> None:
    """Same prices through Jaeckel's Python port (r = q = 0, so F = S and the price is undiscounted)."""
    g = grid()
    idx = np.flatnonzero((g.r == 0.0) & (g.q == 0.0) & g.conditioned)
    assert idx.size > 500
    theirs = np.array(
        [
            lbr.implied_volatility_from_a_transformed_rational_guess(
                g.price[i], g.S[i], g.K[i], g.T[i], 1.0 if g.is_call[i] else -1.0
            )
            for i in idx
        ]
    )
    # each method within 1e-12 of the exact vol; theirs reaches ~1e-12 on this grid, ours less
    assert np.abs(theirs - g.vol[idx]).max() <= 2e-12
    assert np.abs(g.vol[idx] - g.sigma[idx]).max() <= np.abs(theirs - g.sigma[idx]).max() + 1e-15


# (F, K, T, is_call, price, implied vol) of the C LetsBeRational, vollib/py_lets_be_rational
# tests/TestValues.json entries 29-85 (price = their `black`, vol = their implied_volatility_from_...).
LBR_REGRESSION = (
    (523, 587, 0.33, False, 108.62754255584534, 0.5704784883516973),
    (394, 914, 0.05, True, 0.002149286481355785, 0.9876867190198252),
    (364, 185, 1.8, False, 22.63785061496219, 0.6042674860264751),
    (153, 167, 0.42, True, 15.008924232743711, 0.5171615723663934),
    (866, 824, 0.69, True, 227.31598336451884, 0.7462799133486081),
    (584, 156, 1.06, True, 439.0082851225508, 0.947538284706157),
    (357, 352, 1.28, False, 84.35499049798773, 0.5515129943139023),
    (766, 670, 1.08, False, 158.938583815029, 0.699196481737521),
    (830, 481, 0.36, True, 364.4289100078422, 0.751987607579526),
    (80, 176, 1.01, False, 102.64332748181481, 0.7549341698056115),
    (147, 54, 1.29, False, 5.681757408225375, 0.8253566325636825),
    (514, 625, 1.51, True, 93.39301176891516, 0.5190712049167734),
    (45, 447, 0.14, True, 1.167593540306557e-19, 0.6712541292906183),
    (45, 161, 0.71, True, 0.014323463254415325, 0.5067027284430616),
    (968, 740, 1.9, True, 463.20401625282784, 0.7545775512200664),
    (590, 831, 0.68, False, 311.2839759551358, 0.7155492868760586),
    (434, 367, 0.87, True, 149.0219183270114, 0.7720523578752402),
    (103, 497, 0.53, True, 0.15561138660471674, 0.8126388779042767),
    (518, 129, 0.14, False, 1.7265140389982672e-08, 0.6293109809670375),
    (936, 397, 0.53, False, 6.338207705848319, 0.7131240941259537),
    (759, 55, 1.31, True, 704.0013813469113, 0.5864637689194676),
    (963, 976, 0.76, False, 296.41783405291244, 0.8808746159724458),
    (197, 880, 0.62, True, 0.7955927929019043, 0.8078246240969935),
    (822, 463, 0.35, True, 376.29514653907063, 0.8236752076464262),
    (427, 699, 0.08, True, 0.1723492123847078, 0.6799271298913416),
    (485, 74, 1.56, False, 4.695388149385995, 0.9469808650422463),
    (875, 892, 0.1, False, 65.30792395927239, 0.506576570487983),
    (231, 343, 1.84, False, 169.2580682287601, 0.7026043924381069),
    (978, 619, 1.6, True, 497.4682230375374, 0.7390541832898591),
    (412, 556, 0.59, True, 58.00748223816533, 0.8009242748742759),
    (162, 384, 0.95, False, 224.6962573400566, 0.5396049735712602),
    (963, 317, 1.32, True, 683.6407232406291, 0.8987152985164504),
    (62, 645, 1.23, False, 583.386749785686, 0.8568277465088608),
    (530, 428, 1.5, False, 134.5537257578256, 0.8081001351187616),
    (823, 392, 0.45, False, 10.166160157333392, 0.7787614207344388),
    (484, 256, 1.72, False, 82.773820269299, 0.9915423145838184),
    (117, 494, 1.82, True, 5.393522028395389, 0.6887766330580146),
    (688, 891, 0.22, False, 263.6034126338958, 0.9553222139501517),
    (401, 995, 0.66, True, 2.372189948816379, 0.5587268348657928),
    (104, 429, 0.61, False, 325.004766593951, 0.5173554742585225),
    (445, 807, 1.58, True, 71.11360511588965, 0.6853898079228095),
    (901, 939, 0.1, False, 131.74028301601658, 0.9663976515257884),
    (598, 600, 1.68, False, 252.55601263517735, 0.8537970171359642),
    (346, 293, 1.66, True, 170.14525968437945, 0.9179133069177661),
    (470, 39, 1.96, True, 431.48745943380163, 0.7754360208558526),
    (795, 804, 0.39, False, 188.49364251261247, 0.9367448790917974),
    (642, 890, 1.65, True, 122.45716979000419, 0.5923934063388836),
    (240, 142, 1.12, True, 106.16565072945899, 0.5017352605955206),
    (125, 915, 0.16, False, 790.0, 0.0),  # price = intrinsic exactly: sigma = 0
    (767, 270, 0.87, False, 4.541377621526603, 0.6479103534146521),
    (281, 677, 1.42, False, 452.84829346298983, 0.9538636931431258),
    (315, 613, 0.04, True, 0.0005453031747548948, 0.8342760635033144),
    (715, 499, 1.77, True, 409.90894123906094, 0.9705496692200596),
    (616, 327, 1.94, True, 352.90560472438085, 0.7008616590624809),
    (880, 646, 1.86, False, 193.77624123988198, 0.7506432300689359),
    (481, 34, 0.61, False, 3.800642907581555e-07, 0.6296092798607027),
    (234, 907, 1.33, True, 22.33458239017704, 0.9335205929421343),
)


def test_regression_values_of_the_c_lets_be_rational() -> None:
    table = np.array([(F, K, T, price, vol) for F, K, T, _, price, vol in LBR_REGRESSION], dtype=float)
    calls = np.array([c[3] for c in LBR_REGRESSION])
    F, K, T, price, expected = table.T
    ours = np.asarray(implied_vol(price, F, K, T, 0.0, 0.0, calls))
    assert np.abs(ours - expected).max() <= 1e-12
    assert ours[expected == 0.0].tolist() == [0.0]


def test_published_examples_of_py_lets_be_rational() -> None:
    """tests/test_public_functions.py of vollib/py_lets_be_rational (values to 1e-12)."""
    assert implied_vol(5.637197779701664, 100.0, 100.0, 0.5, 0.0, 0.0, True) == pytest.approx(0.2, abs=1e-12)
    # their normalised_black(x = ln(100/95), s = 0.3 sqrt(0.5)) for a put and a call
    x = math.log(100 / 95)
    s = 0.3 * math.sqrt(0.5)
    assert normalised_black(-x, s) == pytest.approx(0.061296663817558904, abs=1e-12)  # put = call at -x
    assert normalised_black(x, s) == pytest.approx(0.11259558142181655, abs=1e-12)
    # their normalised_vega at x = 0
    for s_, expected in ((2.937528694999807, 0.13566415614561067), (0.2, 0.3969525474770118)):
        assert black_and_vega(0.0, s_, 1.0)[1] == pytest.approx(expected, abs=1e-12)


# ---------------------------------------------------------------------------------------------------
# Bounds and invalid input
# ---------------------------------------------------------------------------------------------------


def _bounds(S: float, K: float, T: float, r: float, q: float, is_call: bool) -> tuple[float, float]:
    fwd = S * math.exp(-q * T)
    disc = K * math.exp(-r * T)
    if is_call:
        return max(fwd - disc, 0.0), fwd
    return max(disc - fwd, 0.0), disc


@pytest.mark.parametrize("is_call", [True, False])
@pytest.mark.parametrize("K", [60.0, 100.0, 150.0])
def test_nan_outside_the_no_arbitrage_bounds(is_call: bool, K: float) -> None:
    S, T, r, q = 100.0, 0.75, 0.04, 0.01
    lower, upper = _bounds(S, K, T, r, q, is_call)
    assert math.isnan(implied_vol(upper, S, K, T, r, q, is_call))  # sigma -> infinity, not attained
    assert math.isnan(implied_vol(upper * 1.01, S, K, T, r, q, is_call))
    assert math.isnan(implied_vol(lower - 1e-6 * S - 1e-3, S, K, T, r, q, is_call))
    assert math.isnan(implied_vol(-1.0, S, K, T, r, q, is_call))
    assert implied_vol(lower, S, K, T, r, q, is_call) == 0.0  # sigma = 0 attains the lower bound
    just_inside = math.nextafter(upper, 0.0)
    assert implied_vol(just_inside, S, K, T, r, q, is_call) > 5.0  # huge but finite


def test_price_below_the_bound_by_its_own_rounding_is_the_bound() -> None:
    S, K, T, r, q = 100.0, 40.0, 2.0, 0.03, 0.01
    lower, _ = _bounds(S, K, T, r, q, True)
    assert implied_vol(math.nextafter(lower, 0.0), S, K, T, r, q, True) == 0.0
    assert math.isnan(implied_vol(lower - 1e-9, S, K, T, r, q, True))


@pytest.mark.parametrize(
    "args",
    [
        (5.0, 100.0, 100.0, 0.0, 0.0, 0.0),  # T = 0
        (5.0, 100.0, 100.0, -1.0, 0.0, 0.0),
        (5.0, 0.0, 100.0, 1.0, 0.0, 0.0),  # S = 0
        (5.0, -100.0, 100.0, 1.0, 0.0, 0.0),
        (5.0, 100.0, 0.0, 1.0, 0.0, 0.0),  # K = 0
        (5.0, 100.0, -100.0, 1.0, 0.0, 0.0),
        (math.nan, 100.0, 100.0, 1.0, 0.0, 0.0),
        (5.0, math.nan, 100.0, 1.0, 0.0, 0.0),
        (5.0, 100.0, math.nan, 1.0, 0.0, 0.0),
        (5.0, 100.0, 100.0, math.nan, 0.0, 0.0),
        (5.0, 100.0, 100.0, 1.0, math.nan, 0.0),
        (5.0, 100.0, 100.0, 1.0, 0.0, math.nan),
        (math.inf, 100.0, 100.0, 1.0, 0.0, 0.0),
        (5.0, math.inf, 100.0, 1.0, 0.0, 0.0),
        (5.0, 100.0, 100.0, math.inf, 0.0, 0.0),
        (5.0, 100.0, 100.0, 1.0, -math.inf, 0.0),
        (5.0, 100.0, 100.0, 1.0, 800.0, 0.0),  # e^{-rT} underflows: the bounds are not representable
    ],
)
@pytest.mark.parametrize("is_call", [True, False])
def test_invalid_input_gives_nan_not_an_exception(
    args: tuple[float, float, float, float, float, float], is_call: bool
) -> None:
    price, S, K, T, r, q = args
    assert math.isnan(implied_vol(price, S, K, T, r, q, is_call))
    assert math.isnan(implied_vol_scalar(price, S, K, T, r, q, is_call))


def test_zero_price_of_an_out_of_the_money_option_is_zero_vol() -> None:
    assert implied_vol(0.0, 100.0, 300.0, 0.1, 0.0, 0.0, True) == 0.0
    assert implied_vol(0.0, 100.0, 30.0, 0.1, 0.0, 0.0, False) == 0.0


@pytest.mark.parametrize("price", [5e-324, 1e-310, 1e-200])
def test_subnormal_and_tiny_prices_still_invert(price: float) -> None:
    """Far below any quote, but inside the bounds: a finite vol that reprices (log-space lowest branch)."""
    S, K, T = 100.0, 250.0, 0.5
    vol = float(implied_vol(price, S, K, T, 0.0, 0.0, True))
    assert 0.0 < vol < 1.0
    repriced = float(exact_price(S, K, T, 0.0, 0.0, vol, True))
    tolerance = 1e-6 * price + 2.0 * 5e-324  # a subnormal price has few significant bits
    assert abs(repriced - price) <= tolerance * (1e3 if price < 1e-300 else 1.0)


@pytest.mark.parametrize("scale", [1e-150, 1e-8, 1.0, 1e8, 1e150])
def test_scale_invariance(scale: float) -> None:
    """sigma(lambda P, lambda S, lambda K) = sigma(P, S, K), far into both ends of the double range."""
    base = implied_vol(7.5, 100.0, 110.0, 0.5, 0.02, 0.01, True)
    scaled = implied_vol(7.5 * scale, 100.0 * scale, 110.0 * scale, 0.5, 0.02, 0.01, True)
    assert scaled == pytest.approx(base, rel=1e-14)


def test_at_the_money_forward() -> None:
    """x = 0 exactly (S = K, r = q): b = erf(s / sqrt 8), inverted through the upper branches."""
    for sigma in (0.01, 0.2, 1.0, 4.0):
        price = float(exact_price(100.0, 100.0, 1.0, 0.03, 0.03, sigma, True))
        assert implied_vol(price, 100.0, 100.0, 1.0, 0.03, 0.03, True) == pytest.approx(sigma, abs=1e-13)


# ---------------------------------------------------------------------------------------------------
# Interface
# ---------------------------------------------------------------------------------------------------


def test_scalar_inputs_give_a_float() -> None:
    vol = implied_vol(10.0, 100.0, 100.0, 1.0, 0.0, 0.0, True)
    assert type(vol) is float
    assert float(exact_price(100.0, 100.0, 1.0, 0.0, 0.0, vol, True)) == pytest.approx(10.0, abs=1e-13)


def test_broadcasting_shapes_and_bool_arrays() -> None:
    prices = np.array([[8.0], [12.0]])  # (2, 1)
    strikes = np.array([95.0, 100.0, 105.0])  # (3,)
    calls = np.array([True, False, True])
    out = implied_vol(prices, 100.0, strikes, 1.0, 0.01, 0.0, calls)
    assert isinstance(out, np.ndarray)
    assert out.shape == (2, 3)
    for a in range(2):
        for b in range(3):
            assert out[a, b] == implied_vol(
                float(prices[a, 0]), 100.0, float(strikes[b]), 1.0, 0.01, 0.0, bool(calls[b])
            )
    listed = implied_vol([8.0, 12.0], 100.0, 100.0, [1.0, 2.0], 0.0, 0.0, [True, False])
    assert isinstance(listed, np.ndarray)
    assert listed.shape == (2,)


class Options(NamedTuple):
    """Columns of random options."""

    price: npt.NDArray[np.float64]
    S: npt.NDArray[np.float64]
    K: npt.NDArray[np.float64]
    T: npt.NDArray[np.float64]
    r: npt.NDArray[np.float64]
    q: npt.NDArray[np.float64]
    is_call: npt.NDArray[np.bool_]


def _random_options(n: int, seed: int) -> Options:
    rng = np.random.default_rng(seed)
    S = np.full(n, 100.0)
    K = 100.0 * np.exp(rng.uniform(np.log(0.2), np.log(5.0), n))
    T = np.exp(rng.uniform(np.log(1 / 365), np.log(10.0), n))
    r = rng.uniform(-0.01, 0.08, n)
    q = rng.uniform(0.0, 0.05, n)
    calls = rng.random(n) < 0.5
    lower = np.where(calls, np.maximum(S * np.exp(-q * T) - K * np.exp(-r * T), 0.0), 0.0)
    lower = np.where(calls, lower, np.maximum(K * np.exp(-r * T) - S * np.exp(-q * T), 0.0))
    upper = np.where(calls, S * np.exp(-q * T), K * np.exp(-r * T))
    price = lower + rng.uniform(-0.05, 1.05, n) * (upper - lower)  # a few outside on both sides
    return Options(price, S, K, T, r, q, calls)


def test_array_kernels_are_bitwise_the_scalar_function() -> None:
    o = _random_options(20_000, 11)
    columns = (o.price, o.S, o.K, o.T, o.r, o.q, o.is_call)
    expected = np.array(
        [
            implied_vol_scalar(o.price[i], o.S[i], o.K[i], o.T[i], o.r[i], o.q[i], o.is_call[i])
            for i in range(o.S.size)
        ]
    )
    serial = np.empty_like(expected)
    parallel = np.empty_like(expected)
    _serial_kernel(*columns, serial)
    _parallel_kernel(*columns, parallel)
    assert np.array_equal(serial, expected, equal_nan=True)
    assert np.array_equal(parallel, expected, equal_nan=True)
    assert np.array_equal(np.asarray(implied_vol(*columns)), expected, equal_nan=True)
    assert 0 < np.isnan(expected).sum() < expected.size // 5  # the outside ones, and only those


@settings(max_examples=300, deadline=None)
@given(
    st.floats(0.2, 5.0),
    st.floats(1 / 365, 10.0),
    st.floats(-0.05, 0.1),
    st.floats(0.0, 0.1),
    st.booleans(),
    st.floats(1e-9, 1.0 - 1e-9),
    st.floats(1e-6, 1e-3),
)
def test_any_price_strictly_inside_the_bounds_gives_a_finite_vol_increasing_in_price(
    moneyness: float, T: float, r: float, q: float, is_call: bool, u: float, du: float
) -> None:
    S, K = 100.0, 100.0 * moneyness
    lower, upper = _bounds(S, K, T, r, q, is_call)
    price = lower + u * (upper - lower)
    higher = lower + min(u + du, 1.0 - 1e-9) * (upper - lower)
    vol = implied_vol(price, S, K, T, r, q, is_call)
    assert math.isfinite(vol) and vol >= 0.0
    assert implied_vol(higher, S, K, T, r, q, is_call) >= vol


# ---------------------------------------------------------------------------------------------------
# Kernels of the method
# ---------------------------------------------------------------------------------------------------


def _exact_erfcx(x: float) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = PREC
        ctx.Emin, ctx.Emax = -(10**6), 10**6
        d = Decimal(x)
        value = _erfc(abs(d)) if d >= 0 else 2 - _erfc(-d)
        return +(value * (d * d).exp())


def test_erfcx_relative_error_within_4_ulp() -> None:
    rng = np.random.default_rng(5)
    points = np.concatenate(
        [
            rng.uniform(-0.9, 0.5, 150),
            rng.uniform(0.5, 4.0, 150),
            rng.uniform(4.0, 30.0, 100),
            [0.0, 1e-20, 0.46875, 4.0],
        ]
    )
    for x in points:
        exact = _exact_erfcx(float(x))
        assert abs(Decimal(erfcx(float(x))) - exact) <= Decimal(4 * EPS) * exact, x
    for x in (1e4, 1e8, 1e200):  # erfcx(x) = (1 - 1/(2x^2) + 3/(4x^4)) / (x sqrt(pi)) to 1e-17 here
        assert erfcx(x) == pytest.approx((1.0 - 0.5 / (x * x)) / (x * math.sqrt(math.pi)), rel=2 * EPS)


def test_inverse_norm_cdf_inverts_the_exact_cdf() -> None:
    for u in (1e-300, 1e-20, 1e-5, 0.01, 0.074, 0.076, 0.3, 0.5, 0.7, 0.99, 1 - 1e-12):
        z = inverse_norm_cdf(u)
        with localcontext() as ctx:
            ctx.prec = PREC
            ctx.Emin = -(10**6)
            back = float(_cdf(Decimal(z)))
        density = math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        assert abs(back - u) / density <= 1e-15 * max(1.0, abs(z)) + 1e-16 / density * u, u


@pytest.mark.parametrize(
    ("x", "s"),
    [
        (-5.0, 0.3),  # region 1: asymptotic series, h = -16.7
        (-30.0, 2.0),  # region 1 with t = 1
        (-0.5, 0.1),  # region 2: small t
        (-0.01, 0.05),
        (0.0, 0.1),
        (-1.0, 0.8),  # region 4: erfcx difference
        (-3.0, 1.5),
        (-0.5, 2.0),  # region 3: b_max minus the gap
        (-1.0, 15.0),
        (0.0, 3.0),
    ],
)
def test_normalised_black_in_each_region(x: float, s: float) -> None:
    exact = exact_normalised_black(x, s)
    got = normalised_black(x, s)
    h, t = x / s, s / 2
    # rounding of h and t moves exp(-(h^2+t^2)/2) by ~eps (h^2+t^2) relative: the kernel's own floor
    assert abs(Decimal(got) - exact) <= Decimal(8 * EPS * (1.0 + h * h + t * t)) * exact


def test_normalised_black_random_points() -> None:
    rng = np.random.default_rng(9)
    for _ in range(300):
        x = -float(rng.uniform(0.0, 8.0))
        s = float(np.exp(rng.uniform(np.log(1e-3), np.log(20.0))))
        exact = exact_normalised_black(x, s)
        if exact < Decimal("1e-300"):
            continue
        h, t = x / s, s / 2
        got = normalised_black(x, s)
        assert abs(Decimal(got) - exact) <= Decimal(8 * EPS * (1.0 + h * h + t * t)) * exact, (x, s)


def test_initial_guess_is_jaeckels() -> None:
    """The four-branch rational guess equals py_lets_be_rational's zero-iteration result."""
    rng = np.random.default_rng(13)
    for _ in range(2000):
        x = -float(rng.uniform(0.0, 3.0))
        s = float(np.exp(rng.uniform(np.log(2e-3), np.log(15.0))))
        b_max = math.exp(0.5 * x)
        b = black_and_vega(x, s, b_max)[0]
        if not 1e-250 < b < b_max * (1.0 - 1e-10):
            continue
        ours = initial_guess(b, b_max - b, 1.0, x, b_max)[0]
        theirs = LBR_GUESS(b, x, 1.0, 0)
        assert ours == pytest.approx(theirs, rel=1e-8), (x, s)


def test_normalised_inverse_of_exact_prices() -> None:
    """normalised_vol(b(x, s)) = s within 4 eps s plus two ulps of b and b_max over b' (skipped steps too)."""
    rng = np.random.default_rng(21)
    checked = 0
    for _ in range(1000):
        x = -float(rng.uniform(0.0, 4.0))
        s = float(np.exp(rng.uniform(np.log(1e-3), np.log(12.0))))
        b_max = math.exp(0.5 * x)
        b = float(exact_normalised_black(x, s))
        if not 1e-300 < b < b_max:
            continue
        vega = black_and_vega(x, s, b_max)[1]
        tolerance = 4.0 * EPS * s + 2.0 * (np.spacing(b) + np.spacing(b_max)) / vega
        assert abs(normalised_vol(b, b_max - b, 1.0, x, b_max, 2) - s) <= tolerance, (x, s)
        checked += 1
    assert checked > 500


def test_two_steps_reach_the_attainable_accuracy() -> None:
    """A third Householder step changes the normalised vol by at most a few ulps."""
    rng = np.random.default_rng(17)
    for _ in range(2000):
        x = -float(rng.uniform(0.0, 3.0))
        s = float(np.exp(rng.uniform(np.log(2e-3), np.log(15.0))))
        b_max = math.exp(0.5 * x)
        b = black_and_vega(x, s, b_max)[0]
        if not 0.0 < b < b_max:
            continue
        two = normalised_vol(b, b_max - b, 1.0, x, b_max, 2)
        three = normalised_vol(b, b_max - b, 1.0, x, b_max, 3)
        assert abs(three - two) <= 8 * EPS * two, (x, s)
