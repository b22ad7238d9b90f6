"""Summaries of a lens readout: overall curves, layer × role-group tables, emergence layers (JSON-ready).

Role groups come from the task (`Task.prediction_group`), and the "solution_positions" view keeps
the predictions made at solution tokens (`Task.is_solution_role`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from searchprobe.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from searchprobe.lens.readout import LensReadout, ReadoutStats
    from searchprobe.tasks.base import Task

CANDIDATE_STATS = ("legal_mass", "illegal_mass", "toward_mass", "away_mass")


def emergence_layers(top1: np.ndarray) -> np.ndarray:
    """(P,) first lens layer from which top-1 equals the final top-1 at every later layer."""
    stays = top1 == top1[-1:]
    # settled[s] = stays[s:] all true; emergence = S - (length of the all-true suffix)
    suffix = np.cumprod(stays[::-1], axis=0)[::-1]
    return (top1.shape[0] - suffix.sum(0)).astype(np.int64)


def role_groups(roles: np.ndarray, task: "Task") -> tuple[list[str], np.ndarray]:
    """Group names of prediction roles (``task.prediction_group``; ``role<code>`` for a code the task
    does not name) in order of their smallest role code, and each prediction's group index.

    For mazes: "path_start", "path:0", "path:1", …, "path:≥12".
    """
    names_of = {}
    for code in np.unique(roles):
        try:
            names_of[int(code)] = task.prediction_group(int(code))
        except InputError:
            names_of[int(code)] = f"role{int(code)}"
    first_code: dict[str, int] = {}
    for code, name in names_of.items():
        first_code[name] = min(code, first_code.get(name, code))
    order = sorted(first_code, key=first_code.__getitem__)
    index = {n: i for i, n in enumerate(order)}
    return order, np.array([index[names_of[int(c)]] for c in roles], dtype=np.int64)


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else float("nan")


def _table(stats: "ReadoutStats", groups: np.ndarray, n_groups: int) -> dict[str, list[list[float]]]:
    """Per layer × group means of each statistic (NaN where a group has no applicable entries)."""
    out = {}
    for name in ("prob_correct", "kl_to_final", "entropy") + CANDIDATE_STATS:
        values = getattr(stats, name)
        out[name] = [[_nanmean(values[s, groups == g]) for g in range(n_groups)] for s in range(values.shape[0])]
    out["top1_acc"] = [[_nanmean((stats.rank_correct[s, groups == g] == 0).astype(float)) for g in range(n_groups)]
                       for s in range(stats.rank_correct.shape[0])]
    out["mean_rank"] = [[_nanmean(stats.rank_correct[s, groups == g].astype(float)) for g in range(n_groups)]
                        for s in range(stats.rank_correct.shape[0])]
    return out


def _overall(stats: "ReadoutStats", mask: np.ndarray | None = None) -> dict[str, list[float]]:
    m = slice(None) if mask is None else mask
    if mask is not None and not np.any(mask):  # e.g. no solution positions: NaN curves, no empty-mean warnings
        nan = [float("nan")] * stats.rank_correct.shape[0]
        return {name: list(nan) for name in ("top1_acc", "prob_correct", "kl_to_final", "entropy") + CANDIDATE_STATS}
    out = {
        "top1_acc": [float(v) for v in (stats.rank_correct[:, m] == 0).mean(1)],
        "prob_correct": [float(v) for v in stats.prob_correct[:, m].mean(1)],
        "kl_to_final": [float(v) for v in stats.kl_to_final[:, m].mean(1)],
        "entropy": [float(v) for v in stats.entropy[:, m].mean(1)],
    }
    for name in CANDIDATE_STATS:
        values = getattr(stats, name)
        out[name] = [_nanmean(values[s, m]) for s in range(values.shape[0])]
    return out


def summarize(readout: "LensReadout", task: "Task") -> dict[str, Any]:
    """JSON-ready summary: overall curves, per layer × role tables, emergence distributions.

    "solution_positions" restricts to predictions made at solution tokens (``task.is_solution_role``).
    """
    preds = readout.predictions
    group_names, groups = role_groups(preds.role, task)
    S = len(readout.labels)
    solution_mask = np.asarray(task.is_solution_role(preds.role), dtype=bool)
    summary: dict[str, Any] = {
        "labels": readout.labels, "hook_names": readout.hook_names, "n_predictions": int(len(preds)),
        "n_examples": int(len(np.unique(preds.example))), "roles": group_names,
        "role_counts": [int((groups == g).sum()) for g in range(len(group_names))],
    }
    for lens_name, stats in (("logit", readout.logit), ("tuned", readout.tuned)):
        if stats is None:
            continue
        emergence = emergence_layers(stats.top1)
        per_example = np.zeros(int(preds.example.max()) + 1 if len(preds) else 0, dtype=np.int64)
        np.maximum.at(per_example, preds.example, emergence)
        examples = np.unique(preds.example)
        summary[lens_name] = {
            "overall": _overall(stats),
            "solution_positions": _overall(stats, solution_mask),
            "by_role": _table(stats, groups, len(group_names)),
            "emergence": {
                "per_prediction_hist": np.bincount(emergence, minlength=S).tolist(),
                "per_example_hist": np.bincount(per_example[examples], minlength=S).tolist(),
                "per_prediction_mean": float(emergence.mean()) if len(emergence) else float("nan"),
                "by_role_mean": [_nanmean(emergence[groups == g]) for g in range(len(group_names))],
            },
        }
    return summary
