"""The named tuple every pricing function with sensitivities returns."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

FloatOrArray = float | npt.NDArray[np.float64]


class Greeks(NamedTuple):
    """Price and sensitivities of an option.

    Units: `price` in quote currency; `delta` dV/dS; `gamma` d2V/dS2; `vega` per 1.00 of sigma;
    `theta` dV/dt per year of calendar time (negative for a long option's decay); `rho` per 1.00
    of the rate r.
    """

    price: FloatOrArray
    delta: FloatOrArray
    gamma: FloatOrArray
    vega: FloatOrArray
    theta: FloatOrArray
    rho: FloatOrArray
