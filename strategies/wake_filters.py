"""Ready-made wake filters (`core.wake.WakeFilter`) for strategies that react to a few quotes of many.

Each factory returns a filter for one (venue, instrument) with a fresh state array. The kernels are
numba-compiled and follow the contract in `core/wake.py`: they see each quote once, in time order.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import numpy.typing as npt

from core.errors import InvalidInput
from core.wake import WakeFilter

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


@nb.njit(cache=True, nogil=True)
def _every_nth(
    ts: npt.NDArray[np.int64],
    bid: FloatArray,
    ask: FloatArray,
    bid_size: FloatArray,
    ask_size: FloatArray,
    state: FloatArray,
) -> BoolArray:
    # state[0]: quotes seen since the last wake; state[1]: n.
    out = np.zeros(len(ts), dtype=np.bool_)
    seen = state[0]
    n = state[1]
    for i in range(len(ts)):
        seen += 1.0
        if seen >= n:
            out[i] = True
            seen = 0.0
    state[0] = seen
    return out


@nb.njit(cache=True, nogil=True)
def _mid_move(
    ts: npt.NDArray[np.int64],
    bid: FloatArray,
    ask: FloatArray,
    bid_size: FloatArray,
    ask_size: FloatArray,
    state: FloatArray,
) -> BoolArray:
    # state[0]: mid at the last wake (0: none yet); state[1]: threshold as a fraction of that mid.
    out = np.zeros(len(ts), dtype=np.bool_)
    anchor = state[0]
    threshold = state[1]
    for i in range(len(ts)):
        mid = 0.5 * (bid[i] + ask[i])
        if not (mid > 0.0):  # NaN or a one-sided book: nothing to compare
            continue
        if anchor == 0.0 or abs(mid - anchor) >= threshold * anchor:
            out[i] = True
            anchor = mid
    state[0] = anchor
    return out


def every_nth(venue: str, instrument: str, n: int) -> WakeFilter:
    """Wake on every `n`-th quote of `instrument` on `venue` (the n-th, 2n-th, ...)."""
    if n < 1:
        raise InvalidInput("n", n, "must be >= 1")
    return WakeFilter(venue, instrument, _every_nth, np.array([0.0, float(n)]))


def mid_move(venue: str, instrument: str, bps: float) -> WakeFilter:
    """Wake on the first quote, then whenever the mid has moved `bps` (1e-4) or more from the last wake."""
    if not bps > 0:
        raise InvalidInput("bps", bps, "must be > 0")
    return WakeFilter(venue, instrument, _mid_move, np.array([0.0, bps * 1e-4]))
