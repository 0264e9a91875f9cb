"""Wake filters: which quotes wake a strategy, decided by a compiled kernel over column arrays.

A strategy that reacts to a few quotes out of many (a mid move past a threshold, a spread blow-out,
every n-th tick) declares a `WakeFilter` per (venue, instrument). The kernel sees every quote of
that instrument in time order, each exactly once, and marks the ones that wake the strategy.

- In a backtest the replay driver runs the kernel over whole chunks of recorded columns and only
  builds event objects for the rows that matter (the fast path): rows nobody is woken by are
  skipped, except the last before anything could look at the market (a timer, an order arriving
  at a venue, another stream's event), and every row while a venue has work on that instrument.
- Live and on paper the engine runs the same kernel on each quote as it arrives (arrays of one).

The kernel's contract: `kernel(ts, bid, ask, bid_size, ask_size, state) -> mask`, numba-compiled
(`@numba.njit`), with `ts` int64 ns and the others float64 arrays of equal length, `state` a
float64 array it may read and update (its memory between calls), and `mask` a bool array of the
same length. It must depend only on the quotes it is given and on `state`: it runs ahead of the
strategy in a backtest, so it cannot see what the strategy did in between.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from core.errors import InvalidInput
from core.events import Quote

BoolArray = npt.NDArray[np.bool_]
Kernel = Callable[..., BoolArray]


@dataclass(frozen=True, slots=True)
class WakeFilter:
    """Quotes of `instrument` on `venue` wake the strategy only where `kernel` marks them.

    `state` is the kernel's float64 memory across calls, updated in place by the kernel.
    """

    venue: str
    instrument: str
    kernel: Kernel
    state: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        if not callable(self.kernel):
            raise InvalidInput("kernel", repr(self.kernel), "must be a compiled callable")
        if not isinstance(self.state, np.ndarray) or self.state.dtype != np.float64 or self.state.ndim != 1:
            raise InvalidInput("state", repr(self.state), "must be a one-dimensional float64 numpy array")

    @property
    def key(self) -> tuple[str, str]:
        """(venue, instrument) of the quotes this filter judges."""
        return (self.venue, self.instrument)

    def mask(self, ts: Any, bid: Any, ask: Any, bid_size: Any, ask_size: Any) -> BoolArray:
        """Run the kernel over column arrays (one row per quote); the rows that wake the strategy."""
        out = self.kernel(ts, bid, ask, bid_size, ask_size, self.state)
        if len(out) != len(ts):
            raise InvalidInput("kernel", repr(self.kernel), f"returned {len(out)} flags for {len(ts)} quotes")
        return out

    def wakes(self, quote: Quote) -> bool:
        """Whether one quote wakes the strategy (the live path: the kernel over arrays of one)."""
        one = self.mask(
            np.array([quote.ts], dtype=np.int64),
            np.array([quote.bid], dtype=np.float64),
            np.array([quote.ask], dtype=np.float64),
            np.array([quote.bid_size], dtype=np.float64),
            np.array([quote.ask_size], dtype=np.float64),
        )
        return bool(one[0])
