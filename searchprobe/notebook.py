"""Notebook helpers: the stages as functions that take a loaded run and return results, not paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _run_dir(run: Any) -> Path:
    return Path(run.run_dir) if hasattr(run, "run_dir") else Path(run)


def patch(run: Any, *, pairs: str | None = None, n: int = 32, ablate: bool = False, retarget: bool = False,
          **options: Any) -> dict[str, np.ndarray]:
    """Activation patching on a run (a `LoadedRun` or its directory): the maps, by name.

    Runs the patch stage (`searchprobe.intervene.stage.run_patching`; results also land in
    ``<run>/patching/``) with the slow rollout-scored parts (ablations, retargeting) off unless
    asked for, and returns ``maps.npz`` as a dict: e.g. ``"resid_role_map"`` (layers × position
    roles, 0 = corrupted, 1 = clean restored) with ``"resid_role_keys"`` naming its columns.
    """
    from searchprobe.intervene.stage import run_patching

    data = getattr(run, "dataset", None)
    out = run_patching(_run_dir(run), pairs=pairs, n=n, ablate=ablate, retarget=retarget,
                       data=data.path if data is not None else None, progress=options.pop("progress", False), **options)
    with np.load(out / "maps.npz", allow_pickle=False) as maps:
        return {name: maps[name] for name in maps.files}
