"""The standard normal distribution for the kernels: N(x) with erfc accuracy and n(x).

Both are numba kernels callable from other `njit` code (and from Python with floats). They are the
branch-free, vectorisable kernels of `pricing.vector_math`: `norm_cdf` works from x itself, with
exp(-x^2/2) as a double-double, so its relative error stays ~1e-15 down to x = -37.5 (the textbook
0.5*(1+erf(x/sqrt2)) loses up to 0.5% deep out of the money, and even 0.5*erfc(-x/sqrt2) loses
~2e-13 there because x/sqrt2 is rounded).
"""

from __future__ import annotations

from pricing.vector_math import norm_cdf, norm_cdf_pdf, norm_pdf

INV_SQRT_2 = 0.7071067811865475244
INV_SQRT_2PI = 0.3989422804014326779

__all__ = ["INV_SQRT_2", "INV_SQRT_2PI", "norm_cdf", "norm_cdf_pdf", "norm_pdf"]
