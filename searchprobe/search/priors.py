"""Prior costs: description length, runtime, the mixed speed/simplicity prior, bits of a slope.

A Dovetailer(a, b) selects the program minimizing ``a·runtime + b·2^DL`` (see `dovetail`), and
the dovetailer itself costs the bits to store its slope a/b: ``log2(a/g) + log2(b/g)`` with
``g = gcd(a, b)`` (2/2 is the same search as 1/1, so only the reduced fraction is paid for).
`plot_slope_complexity` draws the seed's two pictures of how rough that cost is.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np

from searchprobe.errors import InputError
from searchprobe.io import atomic_write_bytes
from searchprobe.search.programs import ProgramSearchTask

__all__ = [
    "description_length",
    "runtime",
    "mixed_cost",
    "slope_bits",
    "slope_bits_grid",
    "plot_slope_complexity",
]


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise InputError(f"{name}={value!r} is not allowed: {name} must be a positive integer")
    return int(value)


def description_length(task: ProgramSearchTask, index: int) -> float:
    """Description length in bits of program `index` of `task`."""
    index = int(index)
    total = task.num_programs()
    if index < 0 or (total is not None and index >= total):
        raise InputError(f"program index {index} is out of range for {type(task).__name__} (0..{total})")
    return float(task.description_bits(index))


def runtime(task: ProgramSearchTask, index: int, max_steps: int) -> int | None:
    """Steps program `index` takes to halt (halting step included), or None if not within `max_steps`."""
    max_steps = _positive_int(max_steps, "max_steps")
    description_length(task, index)  # range check
    run = task.start(int(index))
    run.advance(max_steps)
    return int(run.steps) if run.halted else None


def mixed_cost(runtime, dl_bits, a: float, b: float):
    """The dovetailer's mixed prior cost a·runtime + b·2^dl (lower is preferred); elementwise."""
    if not (a > 0 and b > 0):
        raise InputError(f"mixed_cost got a={a!r}, b={b!r}: both weights must be positive")
    rt = np.asarray(runtime, dtype=np.float64)
    dl = np.asarray(dl_bits, dtype=np.float64)
    if (rt < 0).any() or (dl < 0).any():
        raise InputError("mixed_cost needs runtime >= 0 and dl_bits >= 0")
    out = a * rt + b * np.exp2(dl)
    return float(out) if out.ndim == 0 else out


def slope_bits(a: int, b: int) -> float:
    """Bits to store the slope a/b in lowest terms: log2(a/g) + log2(b/g), g = gcd(a, b)."""
    a = _positive_int(a, "a")
    b = _positive_int(b, "b")
    g = math.gcd(a, b)
    return math.log2(a // g) + math.log2(b // g)


def slope_bits_grid(max_value: int = 100) -> np.ndarray:
    """slope_bits(a, b) for a, b in 1..max_value as an array indexed [a − 1, b − 1] (vectorized)."""
    max_value = _positive_int(max_value, "max_value")
    values = np.arange(1, max_value + 1)
    a, b = np.meshgrid(values, values, indexing="ij")
    g = np.gcd(a, b)
    return np.log2(a // g) + np.log2(b // g)


def plot_slope_complexity(out_png: str | os.PathLike, max_value: int = 100) -> Path:
    """Draw the seed's two plots of slope complexity and write them (atomically) to `out_png`.

    Left: slope_bits(a, b) over a, b ∈ 1..max_value as a heat map. Right: the same values
    against log2(a/b) as a scatter.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    grid = slope_bits_grid(max_value)
    values = np.arange(1, max_value + 1)
    a, b = np.meshgrid(values, values, indexing="ij")
    fig = Figure(figsize=(11, 4.5))
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    image = left.imshow(grid.T, origin="lower", extent=(0.5, max_value + 0.5, 0.5, max_value + 0.5),
                        cmap="viridis", interpolation="nearest")
    left.set_xlabel("a (programs admitted per round)")
    left.set_ylabel("b (steps per program per round)")
    left.set_title("bits to store a/b in lowest terms")
    fig.colorbar(image, ax=left, label="bits")
    right.scatter(np.log2(a / b).ravel(), grid.ravel(), s=2, alpha=0.4, linewidths=0)
    right.set_xlabel("log2(a/b)")
    right.set_ylabel("bits")
    right.set_title(f"the same against the slope (a, b ∈ 1..{max_value})")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return atomic_write_bytes(out_png, buffer.getvalue())
