"""searchprobe: is this transformer doing search inside, and how?

Searchy tasks with ground-truth search traces, small TransformerLens models trained on
them, and the instruments to look inside (probes, lenses, causal interventions).

From Python, one import gives the common entry points (each loaded on first use, so
``import searchprobe`` stays fast and does not import torch)::

    import searchprobe as sp
    run = sp.load_run("runs/maze5")
    acts = run.activations(["resid_pre"], roles=["target"], split="test", n=1000)
    X, y = acts["resid_pre", 2, "target"], run.labels("target_cell", split="test", n=1000)
    sp.LinearProbe().fit(X[:800], y[:800]).score(X[800:], y[800:])
    maps = sp.patch(run, pairs="target")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "load_run": "searchprobe.train.run",
    "LoadedRun": "searchprobe.train.run",
    "train_run": "searchprobe.train.run",
    "evaluate_run": "searchprobe.train.run",
    "Task": "searchprobe.tasks.base",
    "LabelSpec": "searchprobe.tasks.base",
    "LabelSet": "searchprobe.tasks.base",
    "get_task": "searchprobe.tasks.base",
    "register_task": "searchprobe.tasks.base",
    "task_names": "searchprobe.tasks.base",
    "read_dataset": "searchprobe.tasks.store",
    "TaskData": "searchprobe.train.task_data",
    "Activations": "searchprobe.acts",
    "ActivationStore": "searchprobe.acts",
    "LinearProbe": "searchprobe.probe.linear",
    "run_probes": "searchprobe.probe.run",
    "run_lens": "searchprobe.lens",
    "run_patching": "searchprobe.intervene.stage",
    "patch": "searchprobe.notebook",
    "build_report": "searchprobe.report.html",
    "run_experiment": "searchprobe.pipeline",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'searchprobe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
