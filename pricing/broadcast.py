"""Broadcasting of public pricing arguments onto the 1-D kernels.

Public functions accept floats or arrays (and `is_call` as a bool or bool array); kernels take
contiguous 1-D float64 / bool arrays of equal length. `as_columns` flattens the broadcast inputs;
`shape_result` gives back a float when every input was a scalar, else an array of the broadcast
shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from pricing.greeks import FloatOrArray

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def as_columns(
    floats: tuple[Any, ...], is_call: Any | None = None
) -> tuple[list[FloatArray], BoolArray | None, tuple[int, ...], bool]:
    """Broadcast `floats` (and `is_call`) together; return 1-D contiguous columns, shape, all-scalar."""
    float_arrays = [np.asarray(x, dtype=np.float64) for x in floats]
    arrays: list[npt.NDArray[Any]] = list(float_arrays)
    if is_call is not None:
        arrays.append(np.asarray(is_call, dtype=np.bool_))
    scalar = all(a.ndim == 0 for a in arrays)
    broadcast = np.broadcast_arrays(*arrays)
    shape = broadcast[0].shape
    columns = [np.ascontiguousarray(b.reshape(-1), dtype=np.float64) for b in broadcast[: len(floats)]]
    call_column = None
    if is_call is not None:
        call_column = np.ascontiguousarray(broadcast[-1].reshape(-1), dtype=np.bool_)
    return columns, call_column, shape, scalar


def shape_result(out: FloatArray, shape: tuple[int, ...], scalar: bool) -> FloatOrArray:
    """A kernel's 1-D output back in the callers' form: float for scalar inputs, else an array."""
    if scalar:
        return float(out[0])
    return out.reshape(shape)
