"""Batched linear probes with controls: `run_probes(run_dir)` is the probing stage.

Modules: `linear` (batched torch solver, `LinearProbe`, scikit-learn reference), `metrics`
(AUROC, average precision, bootstrap CIs), `labels` (label targets and control tasks),
`firehose` (fit and evaluate every probe of a label), `run` (the stage: stores → table, heat maps,
directions, report.json). Names are imported on first use (scikit-learn and torch load only then).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"LinearProbe": "searchprobe.probe.linear", "fit_batched": "searchprobe.probe.linear",
            "sklearn_reference": "searchprobe.probe.linear", "run_probes": "searchprobe.probe.run"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'searchprobe.probe' has no attribute {name!r}")
