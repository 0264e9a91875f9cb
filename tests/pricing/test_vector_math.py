"""Accuracy and vectorisation of pricing.vector_math (exp, log, N(x), n(x)).

References are independent of the kernels: numpy's 80-bit long double (expl, logl) and the erfc
references of tests/pricing/highprec.py, themselves checked here against 50-digit `decimal` values
computed by two different algorithms. Target from the pricing issue: relative error <= 1e-14 over
the whole input range; results that are subnormal are checked against the subnormal spacing instead
(a relative bound cannot hold there: a subnormal carries fewer than 53 bits).
"""

from __future__ import annotations

import math
import platform
import re
from collections.abc import Callable
from decimal import Decimal, localcontext

import numpy as np
import numpy.typing as npt
import pytest
from numba import njit

from pricing import vector_math as vm
from tests.pricing import highprec

FloatArray = npt.NDArray[np.float64]
REL_TOL = 1e-14  # the bound; the kernels reach ~5e-16
SUBNORMAL_STEP = 5e-324
MIN_NORMAL = 2.2250738585072014e-308


@njit(cache=False, error_model="numpy")  # cache keys ignore callees: never stale in tests
def _map_exp(x: FloatArray) -> FloatArray:
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = vm.exp(x[i])
    return out


@njit(cache=False, error_model="numpy")  # cache keys ignore callees: never stale in tests
def _map_log(x: FloatArray) -> FloatArray:
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = vm.log(x[i])
    return out


@njit(cache=False, error_model="numpy")  # cache keys ignore callees: never stale in tests
def _map_cdf(x: FloatArray) -> FloatArray:
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = vm.norm_cdf(x[i])
    return out


@njit(cache=False, error_model="numpy")  # cache keys ignore callees: never stale in tests
def _map_pdf(x: FloatArray) -> FloatArray:
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = vm.norm_pdf(x[i])
    return out


@njit(cache=False, error_model="numpy")  # cache keys ignore callees: never stale in tests
def _map_cdf_pdf(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    cdf = np.empty_like(x)
    pdf = np.empty_like(x)
    for i in range(x.size):
        cdf[i], pdf[i] = vm.norm_cdf_pdf(x[i])
    return cdf, pdf


def _check(
    got: FloatArray, ref: npt.NDArray[np.longdouble], rel_tol: float = REL_TOL, subnormal_steps: float = 1.0
) -> float:
    """Assert the relative error where ref is normal, and the absolute error in subnormal steps below."""
    overflow = np.abs(ref) > np.finfo(np.float64).max
    assert (np.isinf(got[overflow]) & (np.sign(got[overflow]) == np.sign(ref[overflow]))).all()
    got, ref = got[~overflow], ref[~overflow]
    normal = np.abs(ref) >= MIN_NORMAL
    rel = np.abs((got[normal] - ref[normal]) / ref[normal]).astype(np.float64)
    worst = float(rel.max()) if rel.size else 0.0
    assert worst <= rel_tol, f"max relative error {worst:.3e} at {got[normal][int(np.argmax(rel))]!r}"
    tiny = np.abs((got[~normal] - ref[~normal]).astype(np.float64))
    if tiny.size:
        assert float(tiny.max()) <= subnormal_steps * SUBNORMAL_STEP * 1.0001
    return worst


# ---------------------------------------------------------------- the references themselves


def test_decimal_erfcx_two_algorithms_agree() -> None:
    for t in (3.0, 4.0, 5.0, 6.5, 8.0):
        series = highprec.erfcx_decimal(t, 60, method="series")
        fraction = highprec.erfcx_decimal(t, 60, method="continued_fraction")
        assert abs(series / fraction - 1) < Decimal("1e-50")


def test_decimal_erfcx_known_values() -> None:
    # erfc(1) = 0.157299207050285130658779364917390740703933002034 (Abramowitz & Stegun table 7.1)
    with localcontext() as ctx:
        ctx.prec = 60
        erfc1 = highprec.erfcx_decimal(1.0, 50) * Decimal(-1).exp()
    assert abs(erfc1 - Decimal("0.157299207050285130658779364917390740703933002034")) < Decimal("1e-45")
    assert highprec.erfcx_decimal(0.0) == 1


def test_longdouble_reference_matches_decimal() -> None:
    ts = np.concatenate([np.linspace(0.0, 6.0, 61), [0.999, 1.0, 1.001, 10.0, 20.0, 26.9, 27.2, 40.0]])
    got = highprec.erfcx_longdouble(ts)
    for t, value in zip(ts, got, strict=True):
        exact = highprec.erfcx_decimal(float(t), 40)
        assert abs(Decimal(str(value)) / exact - 1) < Decimal("3e-18"), t


# ---------------------------------------------------------------- exp


def test_exp_whole_range() -> None:
    x = np.concatenate(
        [
            np.linspace(-745.2, 709.79, 2_000_001),
            np.random.default_rng(1).uniform(-745.2, 709.78, 500_000),
            np.linspace(-0.35, 0.35, 200_001),  # the reduced range itself
            [-708.4, -708.39641853226408, -745.13321910194110, 709.782712893384, 1e-300, -1e-300, 0.0],
        ]
    )
    ref = np.exp(x.astype(np.longdouble))
    worst = _check(_map_exp(x), ref)
    assert worst < 4e-16  # ~2 ulp: a regression in the kernel shows up far below the 1e-14 bound


def test_exp_against_decimal() -> None:
    for x in (-745.0, -700.5, -37.25, -1.0, -1e-10, 1e-10, 0.5, 1.0, 2.302585092994046, 88.7, 709.7):
        exact = highprec.exp_decimal(x)
        got = Decimal(vm.exp(x))
        assert abs(got - exact) <= max(abs(exact) * Decimal(REL_TOL), Decimal(SUBNORMAL_STEP))


def test_exp_special_values() -> None:
    got = _map_exp(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 709.79, 800.0, -745.2, -1e308, 1e308]))
    assert np.isnan(got[0])
    assert list(got[1:]) == [np.inf, 0.0, 1.0, 1.0, np.inf, np.inf, 0.0, 0.0, np.inf]


# ---------------------------------------------------------------- log


def test_log_every_positive_double() -> None:
    rng = np.random.default_rng(2)
    x = np.concatenate(
        [
            np.exp2(rng.uniform(-1074.0, 1024.0, 1_000_000)),  # log-uniform over all positive doubles
            np.linspace(0.5, 2.0, 1_000_001),  # around 1, where log(x) -> 0 and relative error is hardest
            1.0 + np.linspace(-1e-6, 1e-6, 20_001),
            np.array([5e-324, 1e-320, 2.2250738585072009e-308, MIN_NORMAL, 1.7976931348623157e308]),
        ]
    )
    x = x[np.isfinite(x) & (x > 0) & (x != 1.0)]
    ref = np.log(x.astype(np.longdouble))
    worst = _check(_map_log(x), ref)
    assert worst < 4e-16


def test_log_against_decimal() -> None:
    for x in (5e-324, 1e-310, 1e-300, 0.5, 0.7071067811865476, 0.9999999, 1.0000001, 2.0, 10.0, 1e300):
        exact = highprec.log_decimal(x)
        assert abs(Decimal(vm.log(x)) / exact - 1) <= Decimal(REL_TOL)


def test_log_special_values() -> None:
    got = _map_log(np.array([np.nan, -1.0, -np.inf, 0.0, -0.0, np.inf, 1.0]))
    assert np.isnan(got[:3]).all()
    assert list(got[3:]) == [-np.inf, -np.inf, np.inf, 0.0]


# ---------------------------------------------------------------- N(x), n(x)


def test_norm_cdf_dense_grid_to_the_far_left_tail() -> None:
    x = np.concatenate([np.linspace(-38.5, 9.0, 1_000_001), np.random.default_rng(3).normal(0, 3, 200_000)])
    ref = highprec.norm_cdf_longdouble(x)
    # N(x) < 2.2e-308 below x ~ -37.5: subnormal, checked to 2 subnormal steps
    worst = _check(_map_cdf(x), ref, subnormal_steps=2.0)
    assert worst < 1e-15


def test_norm_cdf_against_decimal() -> None:
    points = [-38.0, -37.5, -37.0, -30.0, -20.0, -12.5, -8.0, -5.0, -2.0, -1.0, -0.1, 0.0, 0.3, 1.0, 3.0, 8.0]
    for x in points:
        exact = highprec.norm_cdf_decimal(x)
        got = Decimal(vm.norm_cdf(x))
        assert abs(got - exact) <= max(abs(exact) * Decimal(REL_TOL), Decimal(2 * SUBNORMAL_STEP)), x


def test_textbook_and_rounded_argument_formulas_fail_where_ours_passes() -> None:
    """The tests can fail: the formulas the issue warns about miss the bound on the same references."""
    x = -8.0
    exact = float(highprec.norm_cdf_decimal(x))
    textbook = 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))
    assert abs(textbook / exact - 1) > 1e-3  # relative error ~0.5 at x = -8
    x = -37.0
    exact = float(highprec.norm_cdf_decimal(x))
    rounded_argument = 0.5 * math.erfc(-x / math.sqrt(2.0))  # x/sqrt2 rounded: error x^2 * 1e-16
    assert abs(rounded_argument / exact - 1) > REL_TOL
    assert abs(vm.norm_cdf(x) / exact - 1) < 1e-15


def test_norm_cdf_special_values_and_symmetry() -> None:
    got = _map_cdf(np.array([np.nan, -np.inf, np.inf, 0.0, -0.0, -40.0, 40.0, -1e308, 1e308]))
    assert np.isnan(got[0])
    assert list(got[1:]) == [0.0, 1.0, 0.5, 0.5, 0.0, 1.0, 0.0, 1.0]
    x = np.linspace(-8.0, 8.0, 10_001)
    np.testing.assert_allclose(_map_cdf(x) + _map_cdf(-x), 1.0, rtol=0, atol=5e-16)


def test_norm_pdf_and_shared_exponential() -> None:
    x = np.concatenate([np.linspace(-38.6, 38.6, 400_001), [np.nan, np.inf, -np.inf]])
    finite = x[np.isfinite(x)]
    xl = finite.astype(np.longdouble)
    ref = np.exp(-(xl * xl) / 2) / np.sqrt(2 * np.arccos(np.longdouble(-1)))
    _check(_map_pdf(finite), ref, subnormal_steps=2.0)
    cdf, pdf = _map_cdf_pdf(x)
    np.testing.assert_array_equal(cdf, _map_cdf(x))
    np.testing.assert_array_equal(pdf, _map_pdf(x))
    assert np.isnan(pdf[-3]) and pdf[-2] == 0.0 and pdf[-1] == 0.0


@njit(cache=False, error_model="numpy")
def _map_gaussian_tail(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    g = np.empty_like(x)
    t = np.empty_like(x)
    for i in range(x.size):
        g[i] = vm.gaussian(x[i])
        t[i] = vm.tail_ratio(abs(x[i]))
    return g, t


def test_gaussian_and_tail_ratio() -> None:
    """The two factors the pricing kernels use: N(-u) = gaussian(u) * tail_ratio(u)."""
    x = np.concatenate([np.linspace(-50.0, 50.0, 500_001), [1e-300, 0.0]])
    g, t = _map_gaussian_tail(x)
    xl = np.abs(x).astype(np.longdouble)
    _check(g, np.exp(-(xl * xl) / 2), subnormal_steps=1.0)
    _check(t, highprec.erfcx_longdouble(xl / np.sqrt(np.longdouble(2))) / 2, rel_tol=5e-16)
    g_special, t_special = _map_gaussian_tail(np.array([np.inf, -np.inf, 1e308, np.nan]))
    assert list(g_special[:3]) == [0.0, 0.0, 0.0] and np.isfinite(t_special[:3]).all()
    assert np.isnan(g_special[3]) and np.isnan(t_special[3])


# ---------------------------------------------------------------- SIMD


def _packed_ops(asm: str) -> int:
    return len(re.findall(r"\bv?(?:fmadd\d*|mul|add|sub|div)pd\b", asm))


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 assembly check")
@pytest.mark.parametrize("kernel", [_map_exp, _map_log, _map_cdf], ids=["exp", "log", "norm_cdf"])
def test_llvm_vectorises_the_kernels(kernel: Callable[..., FloatArray]) -> None:
    """Packed (..pd) arithmetic in the loop, and no call into libm's exp/log/erfc."""
    kernel(np.ones(8))
    asm = kernel.inspect_asm(kernel.signatures[0])  # type: ignore[attr-defined]
    assert _packed_ops(asm) >= 10
    assert not re.search(r"call\w*\s+.*\b(exp|log|erfc)\b", asm)
