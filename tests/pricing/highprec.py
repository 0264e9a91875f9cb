"""Independent high-precision references for the vector-math tests (no mpmath on this machine).

Two tiers, each checked against the other in `test_vector_math.py`:

* `erfcx_decimal`: arbitrary precision with the standard library's `decimal` (50+ digits), by two
  independent algorithms: the all-positive erf series for t < 5 and the Laplace continued fraction
  for t >= 5. Slow (milliseconds a point): used on a few hundred points and to fit coefficients.
* `erfcx_longdouble` / `norm_cdf_longdouble`: the same two algorithms vectorised in numpy's 80-bit
  long double (64-bit mantissa, eps 1.1e-19): fast enough for dense grids of 10^5-10^6 points,
  accurate to ~1e-17 relative (checked against the decimal tier).
"""

from __future__ import annotations

from decimal import Decimal, localcontext

import numpy as np
import numpy.typing as npt

PI_DIGITS = (
    "3.14159265358979323846264338327950288419716939937510582097494459230781640628620899862803482534211706798"
)
LongArray = npt.NDArray[np.longdouble]


def _sqrt_pi(prec: int) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = prec
        return Decimal(PI_DIGITS).sqrt()


def _erfcx_series(t: Decimal, prec: int) -> Decimal:
    """exp(t^2) * (1 - erf t), erf t = 2/sqrt(pi) e^{-t^2} sum 2^n t^(2n+1) / (2n+1)!! (positive terms)."""
    with localcontext() as ctx:
        # Cancellation in 1 - erf costs t^2 / ln 10 digits: carry them.
        ctx.prec = prec + int(float(t * t) / 2.302585) + 10
        t2 = 2 * t * t
        term = t
        total = t
        n = 0
        eps = Decimal(10) ** (-ctx.prec)
        while term > total * eps:
            n += 1
            term = term * t2 / (2 * n + 1)
            total += term
        erf = 2 / _sqrt_pi(ctx.prec) * (-t * t).exp() * total
        return (1 - erf) * (t * t).exp()


def _erfcx_continued_fraction(t: Decimal, prec: int) -> Decimal:
    """Laplace's continued fraction erfcx t = 1/sqrt(pi) / (t + (1/2)/(t + (2/2)/(t + (3/2)/...)))."""
    with localcontext() as ctx:
        ctx.prec = prec + 10
        previous = Decimal(0)
        depth = 64
        while True:
            f = t
            for k in range(depth, 0, -1):
                f = t + Decimal(k) / 2 / f
            value = 1 / (_sqrt_pi(ctx.prec) * f)
            if previous != 0 and abs(value - previous) <= abs(value) * Decimal(10) ** (-prec - 2):
                return value
            previous = value
            depth *= 2


def erfcx_decimal(t: float | Decimal, prec: int = 50, method: str = "auto") -> Decimal:
    """exp(t^2) erfc(t) for t >= 0 to `prec` significant digits."""
    td = Decimal(t)
    if td < 0:
        raise ValueError("t >= 0 only")
    if method == "series" or (method == "auto" and td < 5):
        return _erfcx_series(td, prec)
    return _erfcx_continued_fraction(td, prec)


def norm_cdf_decimal(x: float, prec: int = 50) -> Decimal:
    """N(x) of the exact binary value x, to ~`prec` digits: N(x) = erfc(-x/sqrt2)/2."""
    with localcontext() as ctx:
        ctx.prec = prec + 20
        xd = Decimal(x)
        t = abs(xd) / Decimal(2).sqrt()
        tail = erfcx_decimal(t, prec + 10) * (-t * t).exp() / 2  # N(-|x|)
        return tail if xd <= 0 else 1 - tail


def exp_decimal(x: float, prec: int = 40) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = prec
        return Decimal(x).exp()


def log_decimal(x: float, prec: int = 40) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = prec
        return Decimal(x).ln()


# ---------------------------------------------------------------- long double, vectorised

_SPLIT = np.longdouble(1.0)
_SQRT_PI_L = np.sqrt(np.longdouble(PI_DIGITS[:24]))


def erfcx_longdouble(t: npt.ArrayLike) -> LongArray:
    """exp(t^2) erfc(t), t >= 0, in 80-bit long double: series below 1, continued fraction above."""
    t = np.asarray(t, dtype=np.longdouble)
    out = np.empty_like(t)
    small = t < _SPLIT
    ts = t[small]
    t2 = 2 * ts * ts
    term = ts.copy()
    total = ts.copy()
    for n in range(1, 200):
        term = term * t2 / (2 * n + 1)
        total += term
    erf = 2 / _SQRT_PI_L * np.exp(-ts * ts) * total
    out[small] = (1 - erf) * np.exp(ts * ts)
    tl = t[~small]
    f = tl.copy()
    for k in range(600, 0, -1):
        f = tl + np.longdouble(k) / 2 / f
    out[~small] = 1 / (_SQRT_PI_L * f)
    return out


def norm_cdf_longdouble(x: npt.ArrayLike) -> LongArray:
    """N(x) of the exact binary values x in long double (x up to |x| ~ 150)."""
    xl = np.asarray(x, dtype=np.longdouble)
    t = np.abs(xl) / np.sqrt(np.longdouble(2))
    tail = erfcx_longdouble(t) * np.exp(-(xl * xl) / 2) / 2
    return np.where(xl <= 0, tail, 1 - tail)


def _norm_cdf_dec(x: Decimal, prec: int) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = prec + 20
        t = abs(x) / Decimal(2).sqrt()
        tail = erfcx_decimal(t, prec + 10) * (-t * t).exp() / 2
        return tail if x <= 0 else 1 - tail


def bs_greeks_decimal(
    S: float, K: float, T: float, r: float, q: float, sigma: float, is_call: bool, prec: int = 40
) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal, Decimal]:
    """(price, delta, gamma, vega, theta, rho) of the exact binary inputs to ~`prec` digits (T, sigma > 0).

    Closed forms evaluated in decimal arithmetic: no cancellation or tail problem survives 70 digits.
    """
    with localcontext() as ctx:
        ctx.prec = prec + 30
        s, k, t, rr, qq, sg = (Decimal(v) for v in (S, K, T, r, q, sigma))
        phi = 1 if is_call else -1
        sqrt_t = t.sqrt()
        v = sg * sqrt_t
        d1 = ((s / k).ln() + (rr - qq) * t) / v + v / 2
        d2 = d1 - v
        fwd_s = s * (-qq * t).exp()
        fwd_k = k * (-rr * t).exp()
        n1 = _norm_cdf_dec(phi * d1, prec + 20)
        n2 = _norm_cdf_dec(phi * d2, prec + 20)
        pdf = (-d1 * d1 / 2).exp() / (2 * Decimal(PI_DIGITS)).sqrt()
        price = phi * (fwd_s * n1 - fwd_k * n2)
        delta = phi * (-qq * t).exp() * n1
        gamma = (-qq * t).exp() * pdf / (s * v)
        vega = fwd_s * pdf * sqrt_t
        theta = -fwd_s * pdf * sg / (2 * sqrt_t) + phi * (qq * fwd_s * n1 - rr * fwd_k * n2)
        rho = phi * fwd_k * t * n2
        return price, delta, gamma, vega, theta, rho


def bs_price_decimal(
    S: float, K: float, T: float, r: float, q: float, sigma: float, is_call: bool, prec: int = 40
) -> Decimal:
    """Black-Scholes-Merton price of the exact binary inputs, to ~`prec` digits (T > 0, sigma > 0)."""
    return bs_greeks_decimal(S, K, T, r, q, sigma, is_call, prec)[0]
