"""Latency models of simulated venues: a constant delay plus optional seeded jitter, in nanoseconds.

A `LatencyModel` is an immutable description (safe to share between venues and runs); a venue
turns it into a `LatencySampler` with its own `numpy.random.Generator`, so two runs that draw in
the same order draw the same delays. Jitter without an explicit seed is refused: a backtest must
be reproducible bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from core.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """A delay of `constant_ns` plus a random jitter, all in integer nanoseconds.

    `jitter_ns` is the largest extra delay of a uniform draw (integers in `[0, jitter_ns]`), or the
    mean of an exponential draw (rounded down to whole ns; heavy tail, like a network). `seed` must
    be set whenever `jitter_ns > 0`.
    """

    constant_ns: int = 0
    jitter_ns: int = 0
    distribution: Literal["uniform", "exponential"] = "uniform"
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("constant_ns", "jitter_ns"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidInput(f"latency.{name}", value, "must be an integer >= 0 (ns)")
        if self.distribution not in ("uniform", "exponential"):
            raise InvalidInput(
                "latency.distribution", self.distribution, "must be 'uniform' or 'exponential'"
            )
        if self.jitter_ns > 0 and self.seed is None:
            raise InvalidInput("latency.seed", None, "jitter needs an explicit seed (reproducible runs)")

    @classmethod
    def constant(cls, ns: int) -> LatencyModel:
        """A fixed delay of `ns` nanoseconds."""
        return cls(constant_ns=ns)

    def sampler(self) -> LatencySampler:
        """A fresh sampler with its own generator seeded from `seed`."""
        return LatencySampler(self)


class LatencySampler:
    """Draws delays (ns) from one `LatencyModel`; deterministic given the model and the draw order."""

    def __init__(self, model: LatencyModel) -> None:
        self.model = model
        # No generator at all for a constant delay: nothing random may leak into such a run.
        self._rng = None if model.jitter_ns == 0 else np.random.default_rng(model.seed)

    def sample(self) -> int:
        """The next delay, in ns (>= `constant_ns`)."""
        model = self.model
        if self._rng is None:
            return model.constant_ns
        if model.distribution == "uniform":
            extra = int(self._rng.integers(0, model.jitter_ns, endpoint=True))
        else:
            extra = int(self._rng.exponential(model.jitter_ns))
        return model.constant_ns + extra
