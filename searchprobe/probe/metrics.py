"""Probe metrics, vectorised over columns: AUROC, average precision, bootstrap confidence intervals.

The definitions follow scikit-learn (`roc_auc_score` with tied scores counted half;
`average_precision_score` as the step sum over distinct thresholds), which the tests check against.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def auroc_columns(y: np.ndarray, scores: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """AUROC per column of (n, M) 0/1 labels and scores; NaN where a column lacks a class."""
    y = np.asarray(y)
    scores = np.asarray(scores, dtype=np.float64)
    valid = np.ones(y.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    out = np.full(y.shape[1], np.nan)
    if valid.all():
        ranks = rankdata(scores, axis=0)
        pos = (y == 1).sum(0)
        neg = len(y) - pos
        ok = (pos > 0) & (neg > 0)
        u = (ranks * (y == 1)).sum(0) - pos * (pos + 1) / 2.0
        out[ok] = u[ok] / (pos[ok] * neg[ok])
        return out
    for m in range(y.shape[1]):
        v = valid[:, m]
        out[m] = auroc_columns(y[v, m:m + 1], scores[v, m:m + 1])[0] if v.any() else np.nan
    return out


def average_precision_columns(y: np.ndarray, scores: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Average precision per column (sklearn's step-wise definition, ties grouped); NaN without positives."""
    y = np.asarray(y)
    scores = np.asarray(scores, dtype=np.float64)
    valid = np.ones(y.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    out = np.full(y.shape[1], np.nan)
    for m in range(y.shape[1]):
        v = valid[:, m]
        yy, ss = y[v, m] == 1, scores[v, m]
        n_pos = yy.sum()
        if n_pos == 0:
            continue
        order = np.argsort(-ss, kind="mergesort")
        ss, yy = ss[order], yy[order]
        tp = np.cumsum(yy)
        last = np.r_[ss[1:] != ss[:-1], True]  # last index of each tie group = a threshold
        tp, k = tp[last], np.nonzero(last)[0] + 1
        precision = tp / k
        recall = tp / n_pos
        out[m] = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return out


def bootstrap_ci(per_example: np.ndarray, weights: np.ndarray | None = None, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap CI of the (weighted) mean over examples, for G rows at once.

    per_example: (G, n) per-example scores (e.g. correct = 1.0); weights: (G, n) counts of items per
    example (0 = missing). Resampling is over examples (the groups), with one draw shared by all rows.
    """
    per_example = np.asarray(per_example, dtype=np.float64)
    G, n = per_example.shape
    weights = np.ones_like(per_example) if weights is None else np.asarray(weights, dtype=np.float64)
    rng = np.random.default_rng(seed)
    weighted = per_example * weights
    stats = np.empty((G, n_boot))
    block = max(1, 2_000_000 // max(n, 1))  # draws per block: memory stays bounded as n grows
    for start in range(0, n_boot, block):
        size = min(block, n_boot - start)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(np.float64)  # (size, n)
        den = weights @ counts.T
        stats[:, start:start + size] = (weighted @ counts.T) / np.where(den > 0, den, np.nan)
    alpha = (1 - level) / 2
    return np.nanquantile(stats, alpha, axis=1), np.nanquantile(stats, 1 - alpha, axis=1)
