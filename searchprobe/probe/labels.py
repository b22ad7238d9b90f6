"""Generic probe-label machinery: label targets at a role, Hewitt & Liang control tasks, input types.

Tasks declare their label families (`searchprobe.tasks.base.LabelSpec`, through `Task.label_set`;
the maze and chess tables are in `searchprobe.tasks.maze.probe_labels` and
`searchprobe.tasks.chess.probe_labels`). Binary columns that are constant in the training rows
(e.g. border edges, which are always closed) carry no information and are dropped from their
family; a label with no varying column is an error.
"""

from __future__ import annotations

import numpy as np

from searchprobe.tasks.base import LabelSpec

__all__ = ["LabelSpec", "label_targets", "control_targets", "bigram_types"]


def label_targets(spec: LabelSpec, arr: np.ndarray, step: int | None) -> np.ndarray | None:
    """The target array of `spec` at a role from the stored array; None where the label does not apply.

    `step` is the role's solution step (the task's `step_of_role`): per-step labels apply only there.

    multiclass → (n,) int64 with -1 = no label; binary → (n, M) int64 with -1 = no label; ridge → (n, M) float.
    """
    if spec.per_step:
        if step is None or step >= arr.shape[1]:
            return None
        arr = arr[:, step]
        if spec.ahead:
            arr = arr[..., spec.ahead - 1]
    if spec.kind == "multiclass":
        return arr.astype(np.int64).reshape(len(arr))
    if spec.kind == "binary":
        return arr.astype(np.int64).reshape(len(arr), -1)
    out = arr.astype(np.float64).reshape(len(arr), -1)
    return np.where(out < 0, np.nan, out)


def control_targets(spec: LabelSpec, y: np.ndarray, input_types: np.ndarray, train_rows: np.ndarray,
                    seed: int) -> np.ndarray:
    """Hewitt & Liang control task: a fixed random label per input type.

    `input_types` (n,) are non-negative ids of each row's input type (the probing stage uses the
    pair of tokens ending at the probed position; see `bigram_types`). Each type gets a label drawn
    from the label's empirical training distribution (per column for binary/ridge families), fixed
    by `seed`; rows keep their missing marks.
    """
    rng = np.random.default_rng(seed)
    n_types = int(input_types.max()) + 1 if len(input_types) else 1
    types = np.maximum(input_types, 0)
    if spec.kind == "multiclass":
        pool = y[train_rows & (y >= 0)]
        if len(pool) == 0:
            return y.copy()
        table = rng.choice(pool, size=n_types)
        return np.where(y >= 0, table[types], -1)
    out = np.empty_like(y)
    for m in range(y.shape[1]):
        col = y[:, m]
        ok = ~np.isnan(col) if spec.kind == "ridge" else col >= 0
        pool = col[train_rows & ok]
        table = rng.choice(pool, size=n_types) if len(pool) else np.zeros(n_types, dtype=y.dtype)
        out[:, m] = np.where(ok, table[types], col)
    return out


def bigram_types(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Input-type ids of (token before, token at) the probed positions; -1 (none) counts as a token.

    Why pairs and not single tokens: a maze position holds one of ~25 cell tokens, and a linear
    probe on a 64-512-d residual separates 25 types perfectly, so a one-token control task is
    learned as well as any real label (control accuracy ~1 whatever the model represents). A
    linear readout fits a random label per pair only if the representation carries the pair's
    conjunction. Where there are still fewer pairs than residual dimensions (~80 at a maze path
    step), a model with conjunctions memorises them anyway: results.csv reports `control_types`.
    """
    previous, current = np.asarray(previous, dtype=np.int64), np.asarray(current, dtype=np.int64)
    base = int(max(previous.max(initial=0), current.max(initial=0))) + 2
    return (previous + 1) * base + (current + 1)
