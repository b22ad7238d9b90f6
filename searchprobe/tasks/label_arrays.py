"""Dataset columns → dense numpy arrays, for tasks building labels and ground truth from stored rows.

Hugging Face datasets return nested list columns as Python lists or numpy object arrays of
arrays, depending on the format; these helpers accept both.
"""

from __future__ import annotations

import numpy as np


def dense(value, dtype) -> np.ndarray:
    """A nested list or object array of equal-shaped parts → one array of `dtype`."""
    if isinstance(value, np.ndarray) and value.dtype != object:
        return value.astype(dtype, copy=False)
    if len(value) and not np.isscalar(value[0]):
        return np.stack([dense(v, dtype) for v in value])
    return np.asarray(value, dtype=dtype)


def stack_rows(column, dtype) -> np.ndarray:
    """(n, …) array of a column whose rows all have one shape."""
    return np.stack([dense(row, dtype) for row in column])


def pad_steps(ragged, length: int, tail: tuple[int, ...] = (), fill=-1, dtype=np.int16) -> np.ndarray:
    """(n, length, *tail) array of ragged per-step rows, cut at `length` and padded with `fill`."""
    out = np.full((len(ragged), length) + tail, fill, dtype=dtype)
    for i, seq in enumerate(ragged):
        arr = np.asarray([np.asarray(x) for x in seq]) if len(seq) else np.zeros((0,) + tail)
        m = min(len(arr), length)
        out[i, :m] = arr[:m].reshape((m,) + tail)
    return out
