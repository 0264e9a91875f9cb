"""Branch-free exp, log and normal-distribution kernels that LLVM can vectorise (SIMD).

Calls into libm (`math.exp`, `math.log`, `math.erfc`) are opaque to LLVM's loop vectoriser, so a
loop that makes them runs one option per instruction. These kernels use only +, *, /, sqrt, fused
multiply-add, integer bit operations and selects (`a if c else b`), which LLVM turns into packed
AVX2/AVX-512 instructions once they are inlined into a loop. No fastmath flag is used anywhere: the
kernels rely on IEEE rounding (the round-to-integer trick in `exp_parts`) and on NaN comparisons
being false (clamps are written so that NaN passes through them).

Accuracy (proved in tests/pricing/test_vector_math.py against 80-bit and 50-digit references):
relative error <= 1e-14 (in practice a few units in the last place, ~5e-16) for

* `exp` on the whole double range (subnormal results: within 1 subnormal step),
* `log` on every positive double, subnormals included,
* `norm_cdf` for x in [-37.5, +inf): erfc quality in the far left tail, computed from x itself
  (exp(-x^2/2) as a double-double), so even 0.5*math.erfc(-x/sqrt2) is ~100x less accurate at
  x = -37 than this; below -37.5 N(x) is subnormal and is returned within 2 subnormal steps.

Coefficients come from tests/pricing/fit_vector_math.py (Chebyshev interpolants in long double).
Special values: exp(nan) = nan, exp(-inf) = 0, exp(inf) = inf; log(x<0) = nan, log(0) = -inf,
log(inf) = inf; norm_cdf(nan) = nan, norm_cdf(-inf) = 0, norm_cdf(inf) = 1; norm_pdf(+-inf) = 0.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from numba import njit, types

# ---------------------------------------------------------------- LLVM intrinsics

if TYPE_CHECKING:  # what mypy sees; numba sees the intrinsics below

    def fma(a: float, b: float, c: float) -> float:
        """a*b + c with a single rounding."""

    def as_bits(x: float) -> int:
        """The IEEE-754 bit pattern of a float64 as an int64."""

    def from_bits(i: int) -> float:
        """The float64 whose IEEE-754 bit pattern is the int64 `i`."""

else:
    from llvmlite import ir
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def fma(typingctx, a, b, c):
        """a*b + c with a single rounding (llvm.fma.f64: one vfmadd instruction, vectorisable)."""
        sig = types.float64(types.float64, types.float64, types.float64)

        def codegen(context, builder, signature, args):
            f64 = ir.DoubleType()
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(f64, [f64] * 3), "llvm.fma.f64"
            )
            return builder.call(fn, args)

        return sig, codegen

    @intrinsic
    def as_bits(typingctx, x):
        """The IEEE-754 bit pattern of a float64 as an int64 (a register reinterpretation, no code)."""
        sig = types.int64(types.float64)

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.IntType(64))

        return sig, codegen

    @intrinsic
    def from_bits(typingctx, i):
        """The float64 whose IEEE-754 bit pattern is the int64 `i`."""
        sig = types.float64(types.int64)

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.DoubleType())

        return sig, codegen


# ---------------------------------------------------------------- coefficients

# exp(r) for |r| <= 0.3466 (Chebyshev interpolant, truncation error < 1e-18).
EXP_POLY = (
    1.0,
    1.0,
    0.5000000000000019,
    0.16666666666666632,
    0.04166666666648669,
    0.008333333333340354,
    0.0013888888952684442,
    0.00019841269853936055,
    2.4801485118009113e-05,
    2.7557268680229874e-06,
    2.763276189960361e-07,
    2.510219312162365e-08,
)
# Q(z) = (2 atanh(s)/s - 2)/z for z = s^2 in [0, 0.0295]: log(1+f) = f - f^2/2 + s (f^2/2 + z Q(z)).
LOG_POLY = (
    0.666666666666667,
    0.3999999999989768,
    0.2857142862677027,
    0.22222211009035922,
    0.18182898060552508,
    0.1533143074083766,
    0.14619981447586528,
)
# G(y) = (u + 5) N(-u) exp(u^2/2) with y = (u - 5)/(u + 5) in [-1, 1] for u in [0, inf).
ERFC_K = 5.0
ERFC_POLY = (
    0.769193049750063,
    -0.665382502890057,
    0.49530561596997624,
    -0.3135331566712815,
    0.16502036617039936,
    -0.06911863870706764,
    0.02079506679941849,
    -0.002993376759033066,
    -0.0007978693909209452,
    0.0005448989687729855,
    -5.9375798008535764e-05,
    -4.976232966675598e-05,
    1.6681609387199093e-05,
    3.979366322797162e-06,
    -2.770676063512667e-06,
    -3.335513364888243e-07,
    4.363241365545889e-07,
    3.8581467975973285e-08,
    -7.039640721018258e-08,
    -6.948127406758431e-09,
    1.1252051876908809e-08,
    1.2743817023874726e-09,
    -1.5389628060802352e-09,
    -1.3365934137254954e-10,
    1.2564669304993004e-10,
)

LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01  # 0x3FE62E42FEE00000: n * LN2_HI is exact for |n| < 2^21
LN2_LO = 1.90821492927058770002e-10  # ln 2 - LN2_HI
ROUND_SHIFT = 6755399441055744.0  # 1.5 * 2^52: x + SHIFT - SHIFT rounds x to an integer
ROUND_SHIFT_BITS = 0x4338000000000000  # as_bits(ROUND_SHIFT): low mantissa bits then hold the integer
EXP_MIN = -746.0  # exp(x) < 2^-1075 rounds to 0 below this
EXP_MAX = 710.0  # exp(x) > max double above ln(DBL_MAX) = 709.78
SQRT_HALF_BITS = 0x3FE6A09E667F3BCD  # as_bits(sqrt(0.5))
TWO_POW_54 = 18014398509481984.0
MIN_NORMAL = 2.2250738585072014e-308
INV_SQRT_2PI = 0.3989422804014326779
U_CLAMP = 50.0  # N(-50) and n(50) are 0 in double: clamp |x| there so that inf never reaches the kernels
INF = math.inf
NAN = math.nan


# ---------------------------------------------------------------- exp


# Horner written out with constant indices: a loop over the tuple is not always unrolled, and a
# run-time index into a tuple spills it to the stack, which stops vectorisation.


@njit(cache=True, forceinline=True)
def _exp_poly(r: float) -> float:
    """exp(r) for |r| <= 0.3466."""
    c = EXP_POLY
    acc = fma(c[11], r, c[10])
    acc = fma(acc, r, c[9])
    acc = fma(acc, r, c[8])
    acc = fma(acc, r, c[7])
    acc = fma(acc, r, c[6])
    acc = fma(acc, r, c[5])
    acc = fma(acc, r, c[4])
    acc = fma(acc, r, c[3])
    acc = fma(acc, r, c[2])
    acc = fma(acc, r, c[1])
    acc = fma(acc, r, c[0])
    return acc


@njit(cache=True, forceinline=True)
def _log_poly(z: float) -> float:
    """Q(z) of the log kernel, z in [0, 0.0295]."""
    c = LOG_POLY
    acc = fma(c[6], z, c[5])
    acc = fma(acc, z, c[4])
    acc = fma(acc, z, c[3])
    acc = fma(acc, z, c[2])
    acc = fma(acc, z, c[1])
    acc = fma(acc, z, c[0])
    return acc


@njit(cache=True, forceinline=True)
def _erfc_poly(y: float) -> float:
    """G(y) of the normal-tail kernel, y in [-1, 1]."""
    c = ERFC_POLY
    acc = fma(c[24], y, c[23])
    acc = fma(acc, y, c[22])
    acc = fma(acc, y, c[21])
    acc = fma(acc, y, c[20])
    acc = fma(acc, y, c[19])
    acc = fma(acc, y, c[18])
    acc = fma(acc, y, c[17])
    acc = fma(acc, y, c[16])
    acc = fma(acc, y, c[15])
    acc = fma(acc, y, c[14])
    acc = fma(acc, y, c[13])
    acc = fma(acc, y, c[12])
    acc = fma(acc, y, c[11])
    acc = fma(acc, y, c[10])
    acc = fma(acc, y, c[9])
    acc = fma(acc, y, c[8])
    acc = fma(acc, y, c[7])
    acc = fma(acc, y, c[6])
    acc = fma(acc, y, c[5])
    acc = fma(acc, y, c[4])
    acc = fma(acc, y, c[3])
    acc = fma(acc, y, c[2])
    acc = fma(acc, y, c[1])
    acc = fma(acc, y, c[0])
    return acc


@njit(cache=True, forceinline=True)
def exp_parts(hi: float, lo: float) -> tuple[float, float, float]:
    """exp(hi + lo) as the exact product p * s1 * s2 (|lo| <= ulp(hi), a double-double argument).

    p = exp(r) in [0.7, 1.5]; s1, s2 powers of two with s1 * s2 = 2^n. Returning the parts lets a
    caller multiply by its own factor before the scaling, so that a result in the subnormal range
    is rounded once. Branch-free: clamps are selects that let NaN through.
    """
    x = EXP_MIN if hi < EXP_MIN else hi
    x = EXP_MAX if x > EXP_MAX else x
    t = fma(x, LOG2E, ROUND_SHIFT)  # n = round(x / ln2), in the low bits of t
    n = t - ROUND_SHIFT
    r = fma(-n, LN2_HI, x)  # exact: n * LN2_HI has at most 53 significant bits
    r = fma(-n, LN2_LO, r) + lo
    p = _exp_poly(r)
    # 2^n split in two normal powers of two so that n in [-1077, 1025] never under/overflows a factor
    ni = as_bits(t) - ROUND_SHIFT_BITS + 2048  # n + 2048 >= 0 (NaN input: garbage, p is NaN anyway)
    half = ni >> 1  # floor(n/2) + 1024
    s1 = from_bits((half - 1024 + 1023) << 52)
    s2 = from_bits((ni - half - 1024 + 1023) << 52)
    return p, s1, s2


@njit(cache=True, forceinline=True)
def exp(x: float) -> float:
    """e^x, relative error ~1 ulp on the whole double range; vectorisable."""
    p, s1, s2 = exp_parts(x, 0.0)
    return (p * s1) * s2


# ---------------------------------------------------------------- log


@njit(cache=True, forceinline=True)
def log(x: float) -> float:
    """Natural logarithm, relative error ~1 ulp for every positive double; vectorisable (fdlibm scheme)."""
    sub = x < MIN_NORMAL
    xs = x * TWO_POW_54 if sub else x  # subnormals (and 0, negatives) scaled into the normal range
    k = (as_bits(xs) - SQRT_HALF_BITS) >> 52  # x = 2^k * m with m in [sqrt(1/2), sqrt2)
    m = from_bits(as_bits(xs) - (k << 52))
    # k as a float via the shift trick: AVX2 has no packed int64 -> double conversion
    kf = (from_bits(k + ROUND_SHIFT_BITS) - ROUND_SHIFT) - (54.0 if sub else 0.0)
    f = m - 1.0  # exact (Sterbenz)
    s = f / (2.0 + f)
    z = s * s
    hfsq = 0.5 * f * f
    big_r = z * _log_poly(z)
    result = fma(kf, LN2_HI, f - (hfsq - fma(s, hfsq + big_r, kf * LN2_LO)))
    # special values: x < 0 or nan -> nan, 0 -> -inf, +inf -> +inf
    result = x if x == INF else result
    result = -INF if x == 0.0 else result
    return NAN if not (x >= 0.0) else result


# ---------------------------------------------------------------- normal distribution


@njit(cache=True, forceinline=True)
def _left_tail_parts(x: float) -> tuple[float, float, float, float]:
    """(p, s1, s2, R): exp(-x^2/2) = p*s1*s2 and N(-|x|) = exp(-x^2/2) * R."""
    u = abs(x)
    uc = U_CLAMP if u > U_CLAMP else u
    sq = uc * uc
    sq_lo = fma(uc, uc, -sq)  # x^2 = sq + sq_lo exactly: exp(-x^2/2) to full precision even at x = -37
    p, s1, s2 = exp_parts(-0.5 * sq, -0.5 * sq_lo)
    inv = 1.0 / (uc + ERFC_K)
    y = (uc - ERFC_K) * inv
    return p, s1, s2, _erfc_poly(y) * inv


@njit(cache=True, forceinline=True)
def gaussian(x: float) -> float:
    """exp(-x^2/2) to ~1 ulp for every x (x^2 carried as a double-double); vectorisable."""
    u = abs(x)
    uc = U_CLAMP if u > U_CLAMP else u
    sq = uc * uc
    p, s1, s2 = exp_parts(-0.5 * sq, -0.5 * fma(uc, uc, -sq))
    return (p * s1) * s2


@njit(cache=True, forceinline=True)
def tail_ratio(u: float) -> float:
    """N(-u) * exp(u^2/2) for 0 <= u <= 50 (= Mills ratio / sqrt(2 pi)), ~2e-16 relative; vectorisable.

    Above u = 50 it returns the value at 50 (finite, also for inf): gaussian(u) is 0 there.

    N(-u) = gaussian(u) * tail_ratio(u). Pricing formulas use it to share one exponential between
    N(d1) and N(d2) (F n(d1) = K n(d2)), so the rounding of d2 never goes through an exponential.
    """
    uc = U_CLAMP if u > U_CLAMP else u
    inv = 1.0 / (uc + ERFC_K)
    return _erfc_poly((uc - ERFC_K) * inv) * inv


@njit(cache=True, forceinline=True)
def norm_cdf(x: float) -> float:
    """Standard normal cumulative distribution N(x) with erfc accuracy in the left tail; vectorisable."""
    p, s1, s2, ratio = _left_tail_parts(x)
    tail = ((p * ratio) * s1) * s2  # N(-|x|), rounded once even when subnormal
    return 1.0 - tail if x > 0.0 else tail


@njit(cache=True, forceinline=True)
def norm_pdf(x: float) -> float:
    """Standard normal density n(x) = exp(-x^2/2)/sqrt(2 pi); vectorisable."""
    u = abs(x)
    uc = U_CLAMP if u > U_CLAMP else u
    sq = uc * uc
    p, s1, s2 = exp_parts(-0.5 * sq, -0.5 * fma(uc, uc, -sq))
    return ((p * INV_SQRT_2PI) * s1) * s2


@njit(cache=True, forceinline=True)
def norm_cdf_pdf(x: float) -> tuple[float, float]:
    """(N(x), n(x)) sharing one exponential; vectorisable."""
    p, s1, s2, ratio = _left_tail_parts(x)
    tail = ((p * ratio) * s1) * s2
    pdf = ((p * INV_SQRT_2PI) * s1) * s2
    return (1.0 - tail if x > 0.0 else tail), pdf
