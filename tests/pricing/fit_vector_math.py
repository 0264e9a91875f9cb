"""Regenerate the polynomial coefficients of `pricing/vector_math.py` (printed as Python literals).

Run: `.venv/bin/python -m tests.pricing.fit_vector_math`. Each polynomial is the Chebyshev
interpolant of its target at 400 Chebyshev nodes, computed in 80-bit long double from the references
in `tests/pricing/highprec.py`, truncated where the dropped terms are below 1e-18 relative, then
converted to monomials (all three have benign monomial forms: sum |a_k x^k| stays ~ f, so Horner in
double loses nothing). The tests prove the accuracy of the double-precision kernels independently.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from tests.pricing import highprec

L = np.longdouble
LongArray = npt.NDArray[Any]  # long double arrays (numpy types them loosely)

NODES = 400
EXP_HALF_RANGE = L("0.3466")  # ln2/2 = 0.34657..., plus the lo part of a double-double argument
EXP_DEGREE = 11
LOG_Z_MAX = L("0.0295")  # s^2 with s = f/(2+f), f in [sqrt(1/2)-1, sqrt2-1]: s <= 0.17157, s^2 <= 0.029437
LOG_DEGREE = 6
ERFC_K = L(5)  # y = (u - K)/(u + K) maps [0, inf) onto [-1, 1)
ERFC_DEGREE = 24


def _chebyshev_interpolant(f_of_z: LongArray, theta: LongArray, degree: int) -> LongArray:
    """Coefficients c_k of sum c_k T_k(z) on [-1, 1] from values at the Chebyshev-Gauss nodes."""
    coefficients = np.array(
        [2 / L(NODES) * np.sum(f_of_z * np.cos(k * theta)) for k in range(degree + 1)], dtype=L
    )
    coefficients[0] /= 2
    return coefficients


def _chebyshev_to_monomial(c: LongArray) -> LongArray:
    """Monomial coefficients (ascending) of sum c_k T_k(z), in long double."""
    n = len(c)
    t_prev = np.zeros(n, dtype=L)
    t_prev[0] = 1  # T_0
    t_curr = np.zeros(n, dtype=L)
    if n > 1:
        t_curr[1] = 1  # T_1
    out: LongArray = c[0] * t_prev
    if n > 1:
        out = out + c[1] * t_curr
    for k in range(2, n):
        t_next = np.zeros(n, dtype=L)
        t_next[1:] = 2 * t_curr[:-1]
        t_next = t_next - t_prev
        out = out + c[k] * t_next
        t_prev, t_curr = t_curr, t_next
    return out


def _nodes() -> tuple[LongArray, LongArray]:
    theta = np.arccos(L(-1)) * (np.arange(NODES).astype(L) + L("0.5")) / NODES
    return theta, np.cos(theta)


def exp_coefficients() -> LongArray:
    """exp(r) on |r| <= 0.3466 in powers of r."""
    theta, z = _nodes()
    c = _chebyshev_interpolant(np.exp(EXP_HALF_RANGE * z), theta, EXP_DEGREE)
    mono = _chebyshev_to_monomial(c)
    result: LongArray = mono / EXP_HALF_RANGE ** np.arange(len(mono)).astype(L)
    return result


def log_coefficients() -> LongArray:
    """Q(z) = (2 atanh(s)/s - 2)/z = sum 2 z^k/(2k+3), z = s^2 in [0, 0.0295], in powers of z."""
    theta, z = _nodes()
    zz = (z + 1) / 2 * LOG_Z_MAX
    q = sum((2 * zz**k / (2 * k + 3) for k in range(40)), np.zeros_like(zz))
    mono = _chebyshev_to_monomial(_chebyshev_interpolant(q, theta, LOG_DEGREE))
    # from powers of w = 2 z/zmax - 1 to powers of z
    out = np.zeros(len(mono), dtype=L)
    for k, a in enumerate(mono):
        # (2z/zmax - 1)^k expanded
        for j in range(k + 1):
            out[j] += a * L(math.comb(k, j)) * (2 / LOG_Z_MAX) ** j * (-1) ** (k - j)
    return out


def erfc_coefficients() -> LongArray:
    """G(y) = (u + K) N(-u) exp(u^2/2) with y = (u - K)/(u + K), in powers of y."""
    theta, y = _nodes()
    u = ERFC_K * (1 + y) / (1 - y)
    g = (u + ERFC_K) * highprec.erfcx_longdouble(u / np.sqrt(L(2))) / 2
    return _chebyshev_to_monomial(_chebyshev_interpolant(g, theta, ERFC_DEGREE))


def _literal(name: str, coefficients: LongArray) -> str:
    body = "\n".join(f"    {float(c)!r}," for c in coefficients)
    return f"{name} = (\n{body}\n)"


def main() -> None:
    print(_literal("EXP_POLY", exp_coefficients()))
    print(_literal("LOG_POLY", log_coefficients()))
    print(_literal("ERFC_POLY", erfc_coefficients()))


if __name__ == "__main__":
    main()
