"""Checks of the probing stage's options that need neither torch nor the run (so they fail first)."""

from __future__ import annotations

from typing import Sequence

from searchprobe.errors import InputError

DTYPES = ("float32", "float16", "bfloat16")


def check_probe_options(*, max_examples: int = 1000, n_boot: int = 1000, seed: int = 0, random_init_seed: int = 12345,
                        cv_folds: int = 3, k_ahead: int = 4, dtype: str = "float32",
                        l2_grid: Sequence[float] | None = None, max_chunk_elements: int = 1) -> None:
    """A one-line InputError for an option `run_probes` cannot use, before any work."""
    def integer(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not integer(max_examples) or max_examples < 10:
        raise InputError(f"max_examples (--max-examples) must be an integer >= 10, got {max_examples!r}")
    if not integer(n_boot) or n_boot < 0:
        raise InputError(f"n_boot (--boot) must be an integer >= 0 (0: no confidence intervals), got {n_boot!r}")
    for name, value in (("seed (--seed)", seed), ("random_init_seed (--random-init-seed)", random_init_seed)):
        if not integer(value) or value < 0:
            raise InputError(f"{name} must be an integer >= 0, got {value!r}")
    if not integer(cv_folds) or cv_folds < 2:
        raise InputError(f"cv_folds must be an integer >= 2, got {cv_folds!r}")
    if not integer(k_ahead) or k_ahead < 1:
        raise InputError(f"k_ahead must be an integer >= 1, got {k_ahead!r}")
    if dtype not in DTYPES:
        raise InputError(f"dtype (--dtype) {dtype!r} is not allowed; allowed: {', '.join(DTYPES)}")
    if l2_grid is not None:
        grid = list(l2_grid)
        if not grid or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in grid):
            raise InputError(f"l2_grid must be a non-empty list of numbers >= 0, got {l2_grid!r}")
    if not integer(max_chunk_elements) or max_chunk_elements < 1:
        raise InputError(f"max_chunk_elements must be a positive integer, got {max_chunk_elements!r}")
