"""Normalised Black function and its inverse, after Jaeckel's "Let's be rational" (Wilmott, 2015).

Everything here works on the *normalised* problem: with forward F, strike K, total volatility
s = sigma*sqrt(T) (dimensionless) and log-moneyness x = ln(F/K), the undiscounted Black price divided by
sqrt(F*K) is b(x, s) = exp(x/2)*N(x/s + s/2) - exp(-x/2)*N(x/s - s/2) for a call. Put-call symmetry lets
the solver look only at out-of-the-money calls, x <= 0, where b runs from 0 (s = 0) to b_max = exp(x/2)
(s -> infinity) without the intrinsic value that would otherwise swamp the time value.

The inverse `normalised_vol` follows the structure of the paper: four branches in b delimited by the
inflexion point s_c = sqrt(2|x|) and the points s_l, s_h where its tangent reaches 0 and b_max; a
rational-cubic initial guess on each branch (on the outer two through the transformations that make
b nearly linear); then two Householder(3) steps on an objective function transformed per branch (the
second is skipped when the first moved s by less than SETTLED_STEP: the error left is then ~step^4).
Deviations from the 2015 code, all for accuracy or speed far in the wings:

* the lowest branch is iterated in log space (ln b and b'/b without ever forming b), so prices down
  to the subnormal range converge;
* the highest branch works on the gap b_max - b, written as a sum of two positive erfcx terms, and
  takes b_max - beta from the caller (distance of the price to its bound), never as a difference;
* for h + t > 0 b is evaluated as b_max minus that gap (same accuracy as the erfcx difference, no
  erfcx of a negative argument) instead of the paper's N()-based formula above h + t > 0.85.

The erfcx kernel uses W. J. Cody's rational Chebyshev approximations (Math. Comp. 1969, SPECFUN
CALERF); the inverse normal uses Wichura's AS 241 (Appl. Statist. 1988). The series of the
small-t and large-|h| regions of b are derived in this module from Y(z) = N(z)/n(z), Y' = 1 + zY.

All functions are scalar `njit` kernels; arguments and results are dimensionless unless stated.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

DBL_EPSILON = 2.220446049250313e-16
DBL_MIN = 2.2250738585072014e-308
DBL_MAX = 1.7976931348623157e308
SQRT_DBL_MAX = 1.3407807929942596e154
INV_SQRT_2 = 0.70710678118654752440
INV_SQRT_2PI = 0.39894228040143267794
SQRT_2PI = 2.5066282746310005024
SQRT_PI_OVER_2 = 1.2533141373155002512
INV_SQRT_PI = 0.56418958354775628695
SQRT_3 = 1.7320508075688772935
INV_SQRT_3 = 0.57735026918962576451
TWO_PI = 6.2831853071795864769
TWO_PI_OVER_SQRT_27 = 1.2091995761561452337
PI_OVER_6 = 0.52359877559829887308

# Region thresholds of b(x, s), h = x/s, t = s/2: the asymptotic series needs h < ETA, the small-t
# series t < TAU = 2*eps^(1/16) (its 13th-order truncation error is then below eps).
ETA = -10.0
TAU = 2.0 * DBL_EPSILON**0.0625
# For h + t > 0, b = b_max - gap has the accuracy of the erfcx difference (both carry the same factor
# exp((h+t)^2/2) = b_max/damp) and needs no erfcx of a negative argument; the paper's threshold is 0.85.
DIRECT_THRESHOLD = 0.0
# After a first Householder(3) step of relative size below this, the error left is ~ step^4 << eps.
SETTLED_STEP = 1e-5

# Delbourgo-Gregory rational cubic: r -> infinity means linear interpolation, r > -1 keeps it finite.
RC_MAX_PARAM = 2.0 / (DBL_EPSILON * DBL_EPSILON)
RC_MIN_PARAM = -(1.0 - math.sqrt(DBL_EPSILON))

# ---------------------------------------------------------------------------------------------------
# Series coefficients, derived here rather than transcribed.
# ---------------------------------------------------------------------------------------------------


def _poly_add(a: list[int], b: list[int]) -> list[int]:
    """Sum of two integer polynomials given as coefficient lists (index = power)."""
    n = max(len(a), len(b))
    return [(a[i] if i < len(a) else 0) + (b[i] if i < len(b) else 0) for i in range(n)]


def _poly_derivative(a: list[int]) -> list[int]:
    """Derivative of an integer polynomial."""
    return [i * a[i] for i in range(1, len(a))] or [0]


def _poly_times_h(a: list[int]) -> list[int]:
    """Multiply an integer polynomial by its variable."""
    return [0, *a]


def _small_t_coefficients(orders: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Tables P, C with Y^(2j+1)(h) * 2/(2j+1)! = P_j(h^2) + C_j(h^2)*a, a = 1 + h*Y(h), j < orders.

    Y(h) = N(h)/n(h) obeys Y' = 1 + hY, so Y^(n) = A_n(h) + B_n(h)*Y with A' + B -> A and B' + hB -> B.
    For odd n, A_n is even and B_n = h*C_n(h) with C_n even, so Y^(n) = (A_n - C_n) + C_n*a.
    """
    a_poly: list[int] = [0]
    b_poly: list[int] = [1]
    rows_p: list[list[float]] = []
    rows_c: list[list[float]] = []
    for n in range(1, 2 * orders):
        a_poly, b_poly = (
            _poly_add(_poly_derivative(a_poly), b_poly),
            _poly_add(_poly_derivative(b_poly), _poly_times_h(b_poly)),
        )
        if n % 2 == 1:
            c_poly = b_poly[1:]  # B_n / h
            p_poly = _poly_add(a_poly, [-c for c in c_poly])
            scale = 2.0 / math.factorial(n)
            rows_p.append([scale * p_poly[k] for k in range(0, len(p_poly), 2)])
            rows_c.append([scale * c_poly[k] for k in range(0, len(c_poly), 2)])
    width = max(len(r) for r in rows_p + rows_c)
    p_table = np.zeros((orders, width))
    c_table = np.zeros((orders, width))
    for j in range(orders):
        p_table[j, : len(rows_p[j])] = rows_p[j]
        c_table[j, : len(rows_c[j])] = rows_c[j]
    return p_table, c_table


def _asymptotic_coefficients(orders: int) -> npt.NDArray[np.float64]:
    """Table c[k, i] with Y(h+t) - Y(h-t) = (t/r) * sum_k q^k sum_i c[k, i] e^i for h+t, h-t << 0.

    With Y(z) ~ sum_k (-1)^k (2k-1)!! / |z|^(2k+1) (Abramowitz-Stegun 26.2.12), u = |h|-t, v = |h|+t,
    r = uv = h^2 - t^2, q = (h/r)^2, e = (t/h)^2: u^-n - v^-n = (v^n - u^n)/r^n and
    v^n - u^n = 2 sum_{j odd} C(n, j) |h|^(n-j) t^j has only positive terms (no cancellation).
    """
    table = np.zeros((orders, orders))
    double_factorial = 1
    for k in range(orders):
        n = 2 * k + 1
        if k > 0:
            double_factorial *= 2 * k - 1
        for i in range(k + 1):
            table[k, i] = 2.0 * (-1) ** k * double_factorial * math.comb(n, 2 * i + 1)
    return table


SMALL_T_P, SMALL_T_C = _small_t_coefficients(7)
ASYMPTOTIC = _asymptotic_coefficients(18)

# Cody's rational approximations (SPECFUN CALERF): erf on |x| <= 0.46875, erfcx on 0.46875..4 and > 4.
CODY_A = np.array([3.1611237438705656, 113.864154151050156, 377.485237685302021, 3209.37758913846947])
CODY_A4 = 0.185777706184603153
CODY_B = np.array([23.6012909523441209, 244.024637934444173, 1282.61652607737228, 2844.23683343917062])
CODY_C = np.array(
    [
        0.564188496988670089,
        8.88314979438837594,
        66.1191906371416295,
        298.635138197400131,
        881.95222124176909,
        1712.04761263407058,
        2051.07837782607147,
        1230.33935479799725,
    ]
)
CODY_C8 = 2.15311535474403846e-8
CODY_D = np.array(
    [
        15.7449261107098347,
        117.693950891312499,
        537.181101862009858,
        1621.38957456669019,
        3290.79923573345963,
        4362.61909014324716,
        3439.36767414372164,
        1230.33935480374942,
    ]
)
CODY_P = np.array(
    [
        0.305326634961232344,
        0.360344899949804439,
        0.125781726111229246,
        0.0160837851487422766,
        6.58749161529837803e-4,
    ]
)
CODY_P5 = 0.0163153871373020978
CODY_Q = np.array(
    [
        2.56852019228982242,
        1.87295284992346047,
        0.527905102951428412,
        0.0605183413124413191,
        0.00233520497626869185,
    ]
)

# Wichura AS 241 (PPND16): N^-1 to about 1e-16 relative.
AS241_A = np.array(
    [
        3.3871328727963666080e0,
        1.3314166789178437745e2,
        1.9715909503065514427e3,
        1.3731693765509461125e4,
        4.5921953931549871457e4,
        6.7265770927008700853e4,
        3.3430575583588128105e4,
        2.5090809287301226727e3,
    ]
)
AS241_B = np.array(
    [
        1.0,
        4.2313330701600911252e1,
        6.8718700749205790830e2,
        5.3941960214247511077e3,
        2.1213794301586595867e4,
        3.9307895800092710610e4,
        2.8729085735721942674e4,
        5.2264952788528545610e3,
    ]
)
AS241_C = np.array(
    [
        1.42343711074968357734e0,
        4.63033784615654529590e0,
        5.76949722146069140550e0,
        3.64784832476320460504e0,
        1.27045825245236838258e0,
        2.41780725177450611770e-1,
        2.27238449892691845833e-2,
        7.74545014278341407640e-4,
    ]
)
AS241_D = np.array(
    [
        1.0,
        2.05319162663775882187e0,
        1.67638483018380384940e0,
        6.89767334985100004550e-1,
        1.48103976427480074590e-1,
        1.51986665636164571966e-2,
        5.47593808499534494600e-4,
        1.05075007164441684324e-9,
    ]
)
AS241_E = np.array(
    [
        6.65790464350110377720e0,
        5.46378491116411436990e0,
        1.78482653991729133580e0,
        2.96560571828504891230e-1,
        2.65321895265761230930e-2,
        1.24266094738807843860e-3,
        2.71155556874348757815e-5,
        2.01033439929228813265e-7,
    ]
)
AS241_F = np.array(
    [
        1.0,
        5.99832206555887937690e-1,
        1.36929880922735805310e-1,
        1.48753612908506148525e-2,
        7.86869131145613259100e-4,
        1.84631831751005468180e-5,
        1.42151175831644588870e-7,
        2.04426310338993978564e-15,
    ]
)

LOG_AS241_SPLIT = math.log(0.075)  # AS 241 uses its tail fits below u = 0.5 - 0.425

# Every kernel: cached, no ZeroDivisionError checks (IEEE results instead), FMA contraction allowed.
kernel = njit(cache=True, error_model="numpy", fastmath={"contract"})

# ---------------------------------------------------------------------------------------------------
# Special functions
# ---------------------------------------------------------------------------------------------------


@kernel
def _exp_of_square(x: float) -> float:
    """exp(x^2) without the rounding error of forming x^2 (Cody's split): relative error ~1 ulp."""
    head = math.trunc(x * 16.0) / 16.0
    return math.exp(head * head) * math.exp((x - head) * (x + head))


@kernel
def erfcx(x: float) -> float:
    """Scaled complementary error function exp(x^2)*erfc(x), relative error a few ulp for all x."""
    y = abs(x)
    if y <= 0.46875:
        ysq = y * y
        num: float = CODY_A4 * ysq
        den: float = ysq
        for i in range(3):
            num = (num + CODY_A[i]) * ysq
            den = (den + CODY_B[i]) * ysq
        erf_x: float = x * (num + CODY_A[3]) / (den + CODY_B[3])
        # exp(ysq) here is near 1 (ysq < 0.22), so forming ysq costs no accuracy.
        return (1.0 - erf_x) * math.exp(ysq)
    if y <= 4.0:
        num = CODY_C8 * y
        den = y
        for i in range(7):
            num = (num + CODY_C[i]) * y
            den = (den + CODY_D[i]) * y
        result: float = (num + CODY_C[7]) / (den + CODY_D[7])
    elif y < 6.71e7:
        inv_sq = 1.0 / (y * y)
        num = CODY_P5 * inv_sq
        den = inv_sq
        for i in range(4):
            num = (num + CODY_P[i]) * inv_sq
            den = (den + CODY_Q[i]) * inv_sq
        result = (INV_SQRT_PI - inv_sq * (num + CODY_P[4]) / (den + CODY_Q[4])) / y
    else:
        result = INV_SQRT_PI / y  # the series beyond its first term is below eps here
    if x < 0.0:
        # erfcx(-y) = 2 exp(y^2) - erfcx(y); overflows to +inf for x < -26.6 as it should.
        return 2.0 * _exp_of_square(x) - result
    return result


@kernel
def inverse_norm_cdf(u: float) -> float:
    """N^-1(u) by Wichura's AS 241, relative error about 1e-16; -inf at 0, +inf at 1, NaN outside."""
    if not (u > 0.0 and u < 1.0):
        if u == 0.0:
            return -math.inf
        if u == 1.0:
            return math.inf
        return math.nan
    q = u - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        num: float = AS241_A[7]
        den: float = AS241_B[7]
        for i in range(6, -1, -1):
            num = num * r + AS241_A[i]
            den = den * r + AS241_B[i]
        return q * num / den
    tail = _inverse_norm_cdf_tail(math.sqrt(-math.log(u if q < 0.0 else 1.0 - u)))
    return -tail if q < 0.0 else tail


@kernel
def _inverse_norm_cdf_tail(r: float) -> float:
    """|N^-1(u)| for u < 0.075 (AS 241 outer regions) as a function of r = sqrt(-ln u)."""
    if r <= 5.0:
        r -= 1.6
        num: float = AS241_C[7]
        den: float = AS241_D[7]
        for i in range(6, -1, -1):
            num = num * r + AS241_C[i]
            den = den * r + AS241_D[i]
    else:
        r -= 5.0
        num = AS241_E[7]
        den = AS241_F[7]
        for i in range(6, -1, -1):
            num = num * r + AS241_E[i]
            den = den * r + AS241_F[i]
    return num / den


# ---------------------------------------------------------------------------------------------------
# Normalised Black function, x <= 0 (out-of-the-money call)
# ---------------------------------------------------------------------------------------------------


@kernel
def _asymptotic_scaled(h: float, t: float) -> float:
    """b / exp(-(h^2+t^2)/2) for h << 0 and h + t << 0 (A&S 26.2.12 to order 17)."""
    e = (t / h) * (t / h)
    r = (h + t) * (h - t)
    q = (h / r) * (h / r)
    total = 0.0
    for k in range(ASYMPTOTIC.shape[0] - 1, -1, -1):
        inner = 0.0
        for i in range(k, -1, -1):
            inner = inner * e + ASYMPTOTIC[k, i]
        total = total * q + inner
    return INV_SQRT_2PI * (t / r) * total


@kernel
def _small_t_scaled(h: float, t: float) -> float:
    """b / exp(-(h^2+t^2)/2) for t < TAU by the odd Taylor series of Y(h+t) - Y(h-t) to order 13."""
    a = 1.0 + h * SQRT_PI_OVER_2 * erfcx(-INV_SQRT_2 * h)
    h2 = h * h
    w = t * t
    total = 0.0
    for j in range(SMALL_T_P.shape[0] - 1, -1, -1):
        p = 0.0
        c = 0.0
        for k in range(j, -1, -1):  # row j is a polynomial of degree j in h^2
            p = p * h2 + SMALL_T_P[j, k]
            c = c * h2 + SMALL_T_C[j, k]
        total = total * w + (p + c * a)
    return INV_SQRT_2PI * t * total


@kernel
def _region(h: float, t: float) -> int:
    """Evaluation region of b: 1 asymptotic, 2 small t, 3 b_max minus the gap, 4 erfcx difference."""
    if h < ETA and h + t < TAU + ETA:
        return 1
    if t < TAU:
        return 2
    if h + t > DIRECT_THRESHOLD:
        return 3
    return 4


@kernel
def _scaled(h: float, t: float, region: int) -> float:
    """M = b * exp((h^2+t^2)/2) in regions 1, 2 and 4."""
    if region == 1:
        return _asymptotic_scaled(h, t)
    if region == 2:
        return _small_t_scaled(h, t)
    # b = exp(-(h^2+t^2)/2) (erfcx(-(h+t)/sqrt2) - erfcx(-(h-t)/sqrt2)) / 2: one exponential, no N().
    return 0.5 * (erfcx(-INV_SQRT_2 * (h + t)) - erfcx(-INV_SQRT_2 * (h - t)))


@kernel
def _gap_scaled(h: float, t: float) -> float:
    """G = (b_max - b) exp((h^2+t^2)/2) = (erfcx((h+t)/sqrt2) + erfcx((t-h)/sqrt2)) / 2.

    From b_max - b = exp(x/2) N(-(h+t)) + exp(-x/2) N(h-t) and x/2 = h t: both terms are positive, so
    the gap keeps full relative accuracy as b approaches b_max.
    """
    return 0.5 * (erfcx(INV_SQRT_2 * (h + t)) + erfcx(INV_SQRT_2 * (t - h)))


@kernel
def black_and_vega(x: float, s: float, b_max: float) -> tuple[float, float]:
    """(b(x, s), db/ds) of an out-of-the-money normalised call: x <= 0, s >= 0, b_max = exp(x/2)."""
    if not s > 0.0:
        return 0.0, (INV_SQRT_2PI if x == 0.0 else 0.0)
    h = x / s
    t = 0.5 * s
    damp = math.exp(-0.5 * (h * h + t * t))
    vega = INV_SQRT_2PI * damp
    region = _region(h, t)
    if region == 3:
        # here b >= 0.6 b_max, so subtracting the (positive-term) gap loses at most a bit
        return max(b_max - damp * _gap_scaled(h, t), 0.0), vega
    return max(damp * _scaled(h, t, region), 0.0), vega


@kernel
def normalised_intrinsic(x: float) -> float:
    """exp(x/2) - exp(-x/2) = 2 sinh(x/2) for x > 0, else 0."""
    if x <= 0.0:
        return 0.0
    return 2.0 * math.sinh(0.5 * x)


@kernel
def normalised_black(x: float, s: float) -> float:
    """Normalised Black call b(x, s) for any x: the intrinsic 2 sinh(x/2) is added for x > 0."""
    if x > 0.0:
        return normalised_intrinsic(x) + black_and_vega(-x, s, math.exp(-0.5 * x))[0]
    return black_and_vega(x, s, math.exp(0.5 * x))[0]


@kernel
def _log_black_and_ratio(x: float, s: float, b_max: float) -> tuple[float, float]:
    """(ln b, b'/b) without forming b: neither underflows however deep out of the money."""
    h = x / s
    t = 0.5 * s
    region = _region(h, t)
    if region == 3:
        b, vega = black_and_vega(x, s, b_max)
        return math.log(b), vega / b
    scaled = _scaled(h, t, region)
    return math.log(scaled) - 0.5 * (h * h + t * t), INV_SQRT_2PI / scaled


@kernel
def _log_gap_and_ratio(x: float, s: float) -> tuple[float, float]:
    """(ln(b_max - b), b'/(b_max - b)) from the positive-term gap, without forming b."""
    h = x / s
    t = 0.5 * s
    scaled = _gap_scaled(h, t)
    return math.log(scaled) - 0.5 * (h * h + t * t), INV_SQRT_2PI / scaled


# ---------------------------------------------------------------------------------------------------
# Rational cubic interpolation (Delbourgo & Gregory 1985) for the initial guess
# ---------------------------------------------------------------------------------------------------


@kernel
def _rational_cubic(
    x: float, x_l: float, x_r: float, y_l: float, y_r: float, d_l: float, d_r: float, r: float
) -> float:
    """Shape-preserving rational cubic through (x_l, y_l, slope d_l), (x_r, y_r, slope d_r), control r."""
    h = x_r - x_l
    if abs(h) <= 0.0:
        return 0.5 * (y_l + y_r)
    t = (x - x_l) / h
    return _rational_cubic_at(t, 1.0 - t, h, y_l, y_r, d_l, d_r, r)


@kernel
def _rational_cubic_at(
    t: float, omt: float, h: float, y_l: float, y_r: float, d_l: float, d_r: float, r: float
) -> float:
    """The rational cubic at relative position t = 1 - omt of an interval of width h (omt given
    separately so a caller that knows the distance to the right node keeps it exact)."""
    if r < RC_MAX_PARAM:
        t2 = t * t
        omt2 = omt * omt
        num = (
            y_r * t2 * t + (r * y_r - h * d_r) * t2 * omt + (r * y_l + h * d_l) * t * omt2 + y_l * omt2 * omt
        )
        return num / (1.0 + (r - 3.0) * t * omt)
    return y_r * t + y_l * omt  # r = infinity: the linear limit


@kernel
def _minimum_control(d_l: float, d_r: float, slope: float, prefer_shape: bool) -> float:
    """Smallest control parameter keeping the cubic monotone and convex/concave like its data."""
    monotonic = d_l * slope >= 0.0 and d_r * slope >= 0.0
    convex = d_l <= slope <= d_r
    concave = d_l >= slope >= d_r
    if not monotonic and not convex and not concave:
        return RC_MIN_PARAM
    r1 = -DBL_MAX
    r2 = -DBL_MAX
    if monotonic:
        if abs(slope) >= DBL_MIN:
            r1 = (d_r + d_l) / slope
        elif prefer_shape:
            r1 = RC_MAX_PARAM
    if convex or concave:
        if abs(slope - d_l) >= DBL_MIN and abs(d_r - slope) >= DBL_MIN:
            r2 = max(abs((d_r - d_l) / (d_r - slope)), abs((d_r - d_l) / (slope - d_l)))
        elif prefer_shape:
            r2 = RC_MAX_PARAM
    elif monotonic and prefer_shape:
        r2 = RC_MAX_PARAM
    return max(RC_MIN_PARAM, max(r1, r2))


@kernel
def _control(
    x_l: float,
    x_r: float,
    y_l: float,
    y_r: float,
    d_l: float,
    d_r: float,
    second: float,
    at_left: bool,
    prefer_shape: bool,
) -> float:
    """Control parameter matching the second derivative at the left or right node, floored for shape."""
    h = x_r - x_l
    slope = (y_r - y_l) / h
    num = 0.5 * h * second + (d_r - d_l)
    den = slope - d_l if at_left else d_r - slope
    if abs(num) < DBL_MIN:
        r = 0.0
    elif abs(den) < DBL_MIN:
        r = RC_MAX_PARAM if num > 0.0 else RC_MIN_PARAM
    else:
        r = num / den
    return max(r, _minimum_control(d_l, d_r, slope, prefer_shape))


# ---------------------------------------------------------------------------------------------------
# Transformations that make the outer branches nearly linear (paper, section 4)
# ---------------------------------------------------------------------------------------------------


@kernel
def _lower_map(x: float, s: float, damp: float) -> tuple[float, float, float]:
    """f = (2pi/sqrt27)|x| N(-z)^3 with z = |x|/(sqrt3 s), and df/db, d2f/db2, all at s.

    damp = exp(-(x^2/s^2 + s^2/4)/2), already known from b(x, s), saves two exponentials.
    """
    ax = abs(x)
    z = INV_SQRT_3 * ax / s
    y = z * z
    s2 = s * s
    shrink = math.exp(-0.5 * y)
    cdf_over_pdf = SQRT_PI_OVER_2 * erfcx(INV_SQRT_2 * z)  # N(-z)/n(z) without underflow
    cdf = cdf_over_pdf * INV_SQRT_2PI * shrink
    grow = shrink / damp  # exp(y + s^2/8) since y = x^2/(3 s^2); exp(2y + s^2/4) is its square
    d2f = (
        PI_OVER_6
        * y
        / (s2 * s)
        * cdf
        * (8.0 * SQRT_3 * s * ax + (3.0 * s2 * (s2 - 8.0) - 8.0 * x * x) * cdf_over_pdf)
        * grow
        * grow
    )
    cdf2 = cdf * cdf
    df = TWO_PI * y * cdf2 * grow
    return TWO_PI_OVER_SQRT_27 * ax * (cdf2 * cdf), df, d2f


@kernel
def _inverse_lower_map(x: float, log_v: float) -> float:
    """s with f_lower(s) = f: s = |x| / (sqrt3 |N^-1(u)|), u = v^(1/3), v = f / ((2pi/sqrt27)|x|) < 1/8."""
    log_u = log_v / 3.0
    if log_u >= LOG_AS241_SPLIT:
        z = inverse_norm_cdf(math.exp(log_u))
    else:
        # far tail (u < 0.075): AS 241 needs only sqrt(-ln u), so skip forming u (it may underflow)
        z = -_inverse_norm_cdf_tail(math.sqrt(-log_u))
    return abs(x / (SQRT_3 * z))


@kernel
def _upper_map(x: float, s: float, damp: float) -> tuple[float, float, float]:
    """f = N(-s/2), and df/db, d2f/db2, all at s; damp = exp(-(w + s^2/4)/2), w = (x/s)^2, from b(x, s)."""
    e8 = math.exp(-0.125 * s * s)
    f = 0.5 * e8 * erfcx(0.5 * INV_SQRT_2 * s)
    w = (x / s) * (x / s)
    grow = e8 / damp  # exp(w/2)
    df = -0.5 * grow
    d2f = SQRT_PI_OVER_2 * (grow / damp) * w / s  # exp(w + s^2/8) = exp(w/2)^2 / e8
    return f, df, d2f


# ---------------------------------------------------------------------------------------------------
# The inverse
# ---------------------------------------------------------------------------------------------------


@kernel
def _householder_factor(newton: float, halley: float, hh3: float) -> float:
    """Third-order Householder correction: step = newton * factor."""
    return (1.0 + 0.5 * halley * newton) / (1.0 + newton * (halley + hh3 * newton / 6.0))


# Objective codes of the iteration (which transformed g(s) the Householder steps solve).
LOWEST = 0  # g = 1/ln b - 1/ln beta, target ln(beta)
MIDDLE = 1  # g = b - beta, target beta
HIGHEST = 2  # g = ln(b_max - beta) - ln(b_max - b), target ln(b_max - beta)
SETTLED = -1  # no iteration: s is final


@kernel
def guess_nodes(beta: float, x: float, b_max: float) -> tuple[bool, float, float, float, float, float, float]:
    """First half of the guess: (lower, s_c, b_c, v_c, s_o, b_o, v_o) for beta in (0, b_max), x <= 0.

    (s_c, b_c, v_c): s, b and b' at the inflexion point s_c = sqrt(2|x|); lower says beta < b_c; then
    (s_o, b_o, v_o) is the outer node: s_l = s_c - b_c/v_c for the lower half, else
    s_h = s_c + (b_max - b_c)/v_c, where the tangents at s_c reach 0 and b_max.
    """
    s_c = math.sqrt(-2.0 * x)
    t_c = 0.5 * s_c
    if t_c >= TAU and -t_c >= ETA:
        # at s_c, h + t = 0: b_c = b_max (1 - erfcx(sqrt|x|)) / 2 and the vega is b_max/sqrt(2 pi)
        b_c = 0.5 * b_max * (1.0 - erfcx(INV_SQRT_2 * s_c))
        v_c = INV_SQRT_2PI * b_max
    else:
        b_c, v_c = black_and_vega(x, s_c, b_max)
    if beta < b_c:
        s_l = s_c - b_c / v_c
        b_l, v_l = black_and_vega(x, s_l, b_max)
        if not (s_l > 0.0 and v_l > 0.0):
            # |x| so small that s_l = sqrt(pi/2)|x| rounds to 0: the x = 0 limit as left node
            return True, s_c, b_c, v_c, 0.0, 0.0, INV_SQRT_2PI
        return True, s_c, b_c, v_c, s_l, b_l, v_l
    s_h = s_c + (b_max - b_c) / v_c if v_c > DBL_MIN else s_c
    b_h, v_h = black_and_vega(x, s_h, b_max)
    return False, s_c, b_c, v_c, s_h, b_h, v_h


@kernel
def guess_from_nodes(
    otm: float,
    gap: float,
    norm: float,
    x: float,
    b_max: float,
    lower: bool,
    s_c: float,
    b_c: float,
    v_c: float,
    s_o: float,
    b_o: float,
    v_o: float,
) -> tuple[float, float, float, int, float]:
    """Second half of the guess: (s, s_left, s_right, objective, target) from `guess_nodes`' output.

    Between the nodes a rational cubic in b matching s and ds/db = 1/b' at both ends; in the outer
    branches the same interpolation of the transformed f (lower: (2pi/sqrt27)|x| N(-|x|/(sqrt3 s))^3,
    upper: N(-s/2)), whose inverse in s is explicit.
    """
    beta = otm / norm
    if lower:
        s_l, b_l, v_l = s_o, b_o, v_o
        if beta < b_l:
            log_beta = math.log(beta) if beta > 1e-280 else math.log(otm) - math.log(norm)
            if log_beta < -690.0:
                # f(beta) ~ beta (f'(0) = 1) would underflow: invert in log space
                s = _inverse_lower_map(x, log_beta - math.log(TWO_PI_OVER_SQRT_27 * abs(x)))
            else:
                f_l, df_l, d2f_l = _lower_map(x, s_l, SQRT_2PI * v_l)
                r_ll = _control(0.0, b_l, 0.0, f_l, 1.0, df_l, d2f_l, False, True)
                f = _rational_cubic(beta, 0.0, b_l, 0.0, f_l, 1.0, df_l, r_ll)
                if not f > 0.0:
                    # round-off for extreme |x|: quadratic through f(0) = 0, f'(0) = 1 and f(b_l)
                    t = beta / b_l
                    f = (f_l * t + b_l * (1.0 - t)) * t
                s = _inverse_lower_map(x, math.log(f / (TWO_PI_OVER_SQRT_27 * abs(x))))
            return s, DBL_MIN, s_l, LOWEST, log_beta
        r_lm = _control(b_l, b_c, s_l, s_c, 1.0 / v_l, 1.0 / v_c, 0.0, False, False)
        s = _rational_cubic(beta, b_l, b_c, s_l, s_c, 1.0 / v_l, 1.0 / v_c, r_lm)
        return s, s_l, s_c, MIDDLE, beta
    s_h, b_h, v_h = s_o, b_o, v_o
    if beta <= b_h:
        r_hm = _control(b_c, b_h, s_c, s_h, 1.0 / v_c, 1.0 / v_h, 0.0, True, False)
        s = _rational_cubic(beta, b_c, b_h, s_c, s_h, 1.0 / v_c, 1.0 / v_h, r_hm)
        return s, s_c, s_h, MIDDLE, beta
    f_h, df_h, d2f_h = _upper_map(x, s_h, SQRT_2PI * v_h)
    width = b_max - b_h
    # position in [b_h, b_max] measured from the right through the gap: exact as beta -> b_max
    omt = min(gap / norm / width, 1.0)
    t = 1.0 - omt
    f = -1.0
    if d2f_h > -SQRT_DBL_MAX and d2f_h < SQRT_DBL_MAX:
        r_hh = _control(b_h, b_max, f_h, 0.0, df_h, -0.5, d2f_h, True, True)
        f = _rational_cubic_at(t, omt, width, f_h, 0.0, df_h, -0.5, r_hh)
    if not f > 0.0:
        # quadratic through f(b_h), f(b_max) = 0 and f'(b_max) = -1/2
        f = (f_h * omt + 0.5 * width * t) * omt
    s = -2.0 * inverse_norm_cdf(f)
    if beta > 0.5 * b_max:
        return s, s_h, DBL_MAX, HIGHEST, math.log(gap / norm)
    # below b_max/2 the plain objective b - beta is the better conditioned one
    return s, s_h, DBL_MAX, MIDDLE, beta


@kernel
def initial_guess(
    otm: float, gap: float, norm: float, x: float, b_max: float
) -> tuple[float, float, float, int, float]:
    """Rational initial guess: (s, s_left, s_right, objective, target) for an out-of-the-money call.

    otm, gap: time value and distance to the upper bound, both in the caller's units; norm divides
    them into beta and b_max - beta; x <= 0; b_max = exp(x/2). (s_left, s_right) brackets the root,
    `objective` is LOWEST/MIDDLE/HIGHEST or SETTLED (s is then final: 0 for otm <= 0, NaN for gap <= 0).
    """
    if not gap > 0.0:
        return math.nan, 0.0, 0.0, SETTLED, 0.0
    if not otm > 0.0:
        return 0.0, 0.0, 0.0, SETTLED, 0.0
    lower, s_c, b_c, v_c, s_o, b_o, v_o = guess_nodes(otm / norm, x, b_max)
    return guess_from_nodes(otm, gap, norm, x, b_max, lower, s_c, b_c, v_c, s_o, b_o, v_o)


@kernel
def householder_step(
    x: float, b_max: float, s: float, objective: int, target: float, s_left: float, s_right: float
) -> tuple[float, float, float]:
    """One Householder(3) step at s: (ds, s_left, s_right) with the bracket tightened by b(s).

    The step is limited to ds >= -s/2; where the objective cannot be evaluated (b or b' underflow
    outside the lowest branch's log form) it bisects the bracket instead.
    """
    h = x / s
    b_halley = h * h / s - 0.25 * s  # b''/b'
    b_hh3 = b_halley * b_halley - 3.0 * (h / s) * (h / s) - 0.25  # b'''/b'
    if objective == LOWEST:
        # g = 1/ln b - 1/ln beta: nearly linear in s in the lower wing
        log_b, ratio = _log_black_and_ratio(x, s, b_max)
        if log_b > target and s < s_right:
            s_right = s
        elif log_b < target and s > s_left:
            s_left = s
        if not (ratio > 0.0 and ratio < math.inf and log_b < 0.0):
            ds = 0.5 * (s_left + s_right) - s
        else:
            inv_log_b = 1.0 / log_b
            k1 = 1.0 + 2.0 * inv_log_b
            newton = (target - log_b) * log_b / target / ratio
            halley = b_halley - ratio * k1
            hh3 = b_hh3 + 2.0 * ratio * ratio * (1.0 + 3.0 * inv_log_b * (1.0 + inv_log_b))
            hh3 -= 3.0 * b_halley * ratio * k1
            ds = newton * _householder_factor(newton, halley, hh3)
    elif objective == HIGHEST:
        # g = ln(b_max - beta) - ln(b_max - b)
        log_g, gp = _log_gap_and_ratio(x, s)
        if log_g < target and s < s_right:
            s_right = s
        elif log_g > target and s > s_left:
            s_left = s
        if not (gp > 0.0 and gp < math.inf):
            ds = 0.5 * (s_left + s_right) - s
        else:
            newton = (log_g - target) / gp
            ds = newton * _householder_factor(newton, b_halley + gp, b_hh3 + gp * (2.0 * gp + 3.0 * b_halley))
    else:
        # g = b - beta
        b, vega = black_and_vega(x, s, b_max)
        if b > target and s < s_right:
            s_right = s
        elif b < target and s > s_left:
            s_left = s
        if not vega > 0.0:
            ds = 0.5 * (s_left + s_right) - s
        else:
            newton = (target - b) / vega
            ds = newton * _householder_factor(newton, b_halley, b_hh3)
    return max(-0.5 * s, ds), s_left, s_right


@kernel
def needs_step(iteration: int, s: float, ds: float) -> bool:
    """Whether step number `iteration` (0-based) is still useful after the previous step ds.

    Householder(3) converges with order 4: once a step moved s by less than SETTLED_STEP*s the
    next would change s by ~(SETTLED_STEP)^4 relative, below rounding, so the second step is skipped.
    """
    if iteration == 0:
        return True
    return abs(ds) > (SETTLED_STEP if iteration == 1 else DBL_EPSILON) * s


@kernel
def rebracket(s: float, s_left: float, s_right: float) -> float:
    """s itself if strictly inside the bracket, else its midpoint (a step left it: bisect once)."""
    if s > s_left and s < s_right:
        return s
    return 0.5 * (s_left + s_right)


@kernel
def normalised_vol(otm: float, gap: float, norm: float, x: float, b_max: float, max_iterations: int) -> float:
    """Total implied volatility s = sigma*sqrt(T) (dimensionless) of an out-of-the-money call, x <= 0.

    The normalised price is beta = otm / norm and b_max - beta = gap / norm: `gap` is the distance to
    the caller's own upper bound, which keeps the highest branch well conditioned, and ln(beta) is
    formed as ln(otm) - ln(norm) when beta underflows (for a normalised price pass norm = 1);
    b_max = exp(x/2). Returns 0 for otm <= 0 and NaN for gap <= 0. At most `max_iterations`
    Householder(3) steps (2 reach the attainable accuracy; see `needs_step`).
    """
    s, s_left, s_right, objective, target = initial_guess(otm, gap, norm, x, b_max)
    if objective == SETTLED:
        return s
    ds = 0.0
    for iteration in range(max_iterations):
        if not needs_step(iteration, s, ds):
            break
        if iteration > 0:
            s = rebracket(s, s_left, s_right)
        ds, s_left, s_right = householder_step(x, b_max, s, objective, target, s_left, s_right)
        s += ds
    return s
