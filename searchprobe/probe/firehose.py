"""Fit every (hook × position role × label) probe of a run, with controls, and evaluate it.

For each label, all (hook, role) problems are fitted in one batched solve (chunked to bound
memory), over an L2 grid × (cross-validation folds + the full training set). Splits are by example
(all positions of one maze fall on one side). For every probe: held-out accuracy (or R²) with a
bootstrap 95% CI over test examples, the majority baseline, the Hewitt & Liang control task on the
same activations (selectivity = accuracy − control accuracy), the same probe on a randomly
initialised model of the same architecture, and AUROC / average precision for binary families.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from searchprobe.probe.labels import LabelSpec
from searchprobe.probe.features import Features
from searchprobe.probe.linear import fit_batched, predict_scores
from searchprobe.probe.metrics import auroc_columns, average_precision_columns, bootstrap_ci

L2_GRID: tuple[float, ...] = (1e-3, 1e-2, 1e-1)


@dataclass
class ProbeSplit:
    """Example-level split: probe-train rows with CV folds, and held-out test rows."""

    train: np.ndarray  #: bool (n,)
    test: np.ndarray  #: bool (n,)
    fold: np.ndarray  #: int (n,): CV fold of training rows, -1 for test rows

    @classmethod
    def by_example(cls, n: int, test_fraction: float = 0.2, folds: int = 3, seed: int = 0) -> "ProbeSplit":
        rng = np.random.default_rng(seed)
        order = rng.permutation(n)
        n_test = max(1, int(round(n * test_fraction)))
        test = np.zeros(n, dtype=bool)
        test[order[:n_test]] = True
        fold = np.full(n, -1, dtype=np.int64)
        fold[order[n_test:]] = np.arange(n - n_test) % folds
        return cls(~test, test, fold)


@dataclass
class FitResult:
    """Held-out evaluation of a batch of G probes of one label."""

    accuracy: np.ndarray  #: (G,) accuracy (classification) or mean R² (ridge) on test rows
    ci_low: np.ndarray
    ci_high: np.ndarray
    auroc: np.ndarray  #: (G,) macro AUROC over usable columns (binary), NaN otherwise
    ap: np.ndarray  #: (G,) macro average precision (binary), NaN otherwise
    majority: np.ndarray  #: (G,) majority-class (or train-mean) baseline on the same test rows
    n_test: np.ndarray  #: (G,) test examples with a label
    l2: np.ndarray  #: (G,) chosen L2 strength
    weight: np.ndarray = field(repr=False)  #: (G, d, K) directions in standardised space
    bias: np.ndarray = field(repr=False)  #: (G, K)
    feature_mean: np.ndarray = field(repr=False)  #: (G, d) standardisation mean (training rows)
    feature_std: np.ndarray = field(repr=False)  #: (G, d)
    columns: np.ndarray = field(repr=False)  #: (G, M) usable output columns (binary / ridge)


def _per_example_scores(spec: LabelSpec, scores, y: np.ndarray, columns: np.ndarray):
    """(correct-or-r2-terms (G, n), weights (G, n)) for the rows of y; scores (G, n, K)."""
    if spec.kind == "multiclass":
        pred = scores.argmax(-1)
        valid = y >= 0
        return (pred == y).astype(np.float64) * valid, valid.astype(np.float64)
    valid = (y >= 0) & columns[:, None, :] if spec.kind == "binary" else ~np.isnan(y) & columns[:, None, :]
    if spec.kind == "binary":
        correct = ((scores > 0) == (y == 1)) & valid
        count = valid.sum(-1)
        return correct.sum(-1) / np.maximum(count, 1), count.astype(np.float64)
    raise AssertionError


def fit_label(spec: LabelSpec, X: np.ndarray, y: np.ndarray, split: ProbeSplit, *, l2_grid: Sequence[float] = L2_GRID,
              n_boot: int = 1000, seed: int = 0, max_iter: int = 50, fixed_l2: np.ndarray | None = None) -> FitResult:
    """Fit and evaluate G probes of one label: X (G, n, d) raw features (an array, or `Features` read
    from an activation store block by block), y (G, n[, M]) targets (-1/NaN missing).

    `max_iter` caps each fit's L-BFGS iterations at each L2 (sklearn's default is 100; on the grid
    model's connectivity family, 50 changes mean held-out accuracy by 0.0001 and saves a quarter of
    the time: the fits still running then are slowly converging near-separable outputs).
    The L2 strength is chosen per probe by group k-fold CV over `l2_grid`, all in the same solve; with
    `fixed_l2` (G,) each probe is fitted once at that strength (controls use the real probe's strength,
    so control and task probes have the same capacity, as Hewitt & Liang prescribe).
    """
    import torch

    features = X if isinstance(X, Features) else Features.from_array(X)
    G, n, _ = features.shape
    folds = int(split.fold.max()) + 1
    has = (y >= 0) if spec.kind == "multiclass" else ((y >= 0).any(-1) if spec.kind == "binary" else (~np.isnan(y)).any(-1))
    fit_rows = split.train[None, :] & has
    # in memory: training rows first, by CV fold (the solver slices them, and skips each fold's rows
    # in the fits that leave that fold out); test rows keep their order. A store keeps its order.
    train_rows = np.flatnonzero(split.train)
    order = np.concatenate([train_rows[np.argsort(split.fold[train_rows], kind="stable")], np.flatnonzero(~split.train)])
    Z = features.standardized(fit_rows, order)
    mean, std = Z.mean, Z.std
    if not np.array_equal(Z.order, np.arange(n)):
        order = Z.order
        y, has, fit_rows = y[:, order], has[:, order], fit_rows[:, order]
        split = ProbeSplit(split.train[order], split.test[order], split.fold[order])
    columns = np.stack([check_label_columns(spec, y[g], fit_rows[g]) for g in range(G)]) if spec.kind != "multiclass" \
        else np.ones((G, 1), dtype=bool)
    y_fit = y.copy()
    if spec.kind == "binary":
        y_fit = np.where(columns[:, None, :], y_fit, -1)
    elif spec.kind == "ridge":
        y_fit = np.where(columns[:, None, :], y_fit, 0.0)
    # fits: for each l2, one per CV fold (train minus that fold) and one on all training rows
    if fixed_l2 is not None:
        l2_grid, folds = [0.0], 0
    weights, l2s = [], []
    for lam in l2_grid:
        for f in range(folds + 1):
            weights.append(split.train & (split.fold != f) if f < folds else split.train)
            l2s.append(lam)
    w = np.stack(weights).astype(np.float32)  # (B, n)
    w = w[None] * fit_rows[:, None, :]
    y_train = np.where(split.train[None, :, None] if y_fit.ndim == 3 else split.train[None], y_fit,
                       np.nan if spec.kind == "ridge" else -1)
    l2_arr = np.asarray(l2s, dtype=np.float32) if fixed_l2 is None else np.asarray(fixed_l2, dtype=np.float32)[:, None]
    W, b = fit_batched(Z, y_train, w, l2_arr, spec.kind, n_classes=spec.n_classes or None, max_iter=max_iter)

    def scores_of(fit: int, rows: np.ndarray) -> np.ndarray:
        """(G, rows.sum(), K) scores of fit number `fit` of every problem: only the rows asked for,
        block by block, so memory does not hold every fit's scores on every row."""
        parts = [predict_scores(Z.read(block)[:, torch.from_numpy(np.flatnonzero(rows[block]))], W[:, fit:fit + 1],
                                b[:, fit:fit + 1]).numpy()[:, 0] for block in Z.blocks() if rows[block].any()]
        return np.concatenate(parts, axis=1) if parts else np.zeros((G, 0, W.shape[-1]), np.float32)

    # cross-validated score per (g, l2): each fold's fit on the rows it left out
    cv = np.zeros((G, len(l2_grid)))
    for j in range(len(l2_grid)):
        for f in range(folds):
            rows = split.fold == f
            cv[:, j] += _score(spec, scores_of(j * (folds + 1) + f, rows), y_fit[:, rows], columns)
    best = cv.argmax(axis=1)
    chosen_l2 = np.asarray(l2_grid)[best] if fixed_l2 is None else np.asarray(fixed_l2)
    chosen = best * (folds + 1) + folds
    gi = np.arange(G)
    test_scores = np.empty((G, int(split.test.sum()), W.shape[-1]), dtype=np.float32)
    for fit in np.unique(chosen):
        test_scores[chosen == fit] = scores_of(int(fit), split.test)[chosen == fit]
    y_test = y_fit[:, split.test]
    if spec.kind == "ridge":
        terms, wts, acc = _r2_terms(test_scores, y_test, columns)
    else:
        terms, wts = _per_example_scores(spec, test_scores, y_test, columns)
        acc = (terms * wts).sum(1) / np.maximum(wts.sum(1), 1)
        if spec.kind == "binary":  # every column constant in training (e.g. a control task at a fixed token): trivially right
            acc = np.where(columns.any(1), acc, 1.0)
    lo, hi = bootstrap_ci(terms, wts, n_boot=n_boot, seed=seed) if n_boot else (np.full(G, np.nan),) * 2
    auroc = np.full(G, np.nan)
    ap = np.full(G, np.nan)
    if spec.kind == "binary":
        for g in range(G):
            cols = columns[g]
            valid = y_test[g][:, cols] >= 0
            auroc[g] = _nanmean(auroc_columns(y_test[g][:, cols], test_scores[g][:, cols], valid))
            ap[g] = _nanmean(average_precision_columns(y_test[g][:, cols], test_scores[g][:, cols], valid))
    majority = _majority(spec, y_fit, split, columns)
    n_test = (has & split.test[None]).sum(1)
    return FitResult(acc, lo, hi, auroc, ap, majority, n_test, chosen_l2,
                     W[gi, chosen].numpy(), b[gi, chosen].numpy(), mean, std, columns)


def _nanmean(x: np.ndarray) -> float:
    """Mean over the columns where the metric is defined (NaN if none: e.g. one class in the test rows)."""
    x = x[~np.isnan(x)]
    return float(x.mean()) if len(x) else float("nan")


def check_label_columns(spec: LabelSpec, y: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Usable columns of a binary/ridge label (varying on the training rows); all False if none."""
    sub = y[rows]
    if spec.kind == "binary":
        valid = sub >= 0
        return (((sub == 1) & valid).sum(0) > 0) & (((sub == 0) & valid).sum(0) > 0)
    with np.errstate(all="ignore"):
        return np.nan_to_num(np.nanstd(sub, axis=0)) > 0


def _score(spec: LabelSpec, scores: np.ndarray, y: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Mean accuracy / R² per g of scores (G, n, K) against y (G, n[, M])."""
    if spec.kind == "ridge":
        return _r2_terms(scores, y, columns)[2]
    terms, wts = _per_example_scores(spec, scores, y, columns)
    return (terms * wts).sum(1) / np.maximum(wts.sum(1), 1)


def _r2_terms(pred: np.ndarray, y: np.ndarray, columns: np.ndarray):
    """Per-example (1 - residual share) terms so that their weighted mean is the pooled R² over usable columns."""
    valid = ~np.isnan(y) & columns[:, None, :]
    yv = np.where(valid, y, 0.0)
    count = np.maximum(valid.sum(1), 1)  # (G, M)
    mean = yv.sum(1) / count
    ss_tot_col = (np.where(valid, (y - mean[:, None]) ** 2, 0.0)).sum(1)  # (G, M)
    norm = np.where(ss_tot_col > 0, ss_tot_col, 1.0)[:, None, :]
    resid = np.where(valid, (yv - pred) ** 2, 0.0) / norm  # share of each column's variance
    n_cols = np.maximum(columns.sum(1), 1)[:, None]
    per_example = resid.sum(-1) / n_cols  # (G, n)
    n_rows = valid.any(-1).astype(np.float64)
    n_eff = np.maximum(n_rows.sum(1, keepdims=True), 1)
    terms = 1.0 - per_example * n_eff  # mean over rows of terms = 1 - sum(resid)/n_cols = mean R²
    r2 = (terms * n_rows).sum(1) / n_eff[:, 0]
    return terms, n_rows, r2


def _majority(spec: LabelSpec, y: np.ndarray, split: ProbeSplit, columns: np.ndarray) -> np.ndarray:
    G = y.shape[0]
    out = np.zeros(G)
    for g in range(G):
        tr, te = y[g][split.train], y[g][split.test]
        if spec.kind == "multiclass":
            vals, counts = np.unique(tr[tr >= 0], return_counts=True)
            tv = te[te >= 0]
            out[g] = float((tv == vals[counts.argmax()]).mean()) if len(tv) and len(vals) else np.nan
        elif spec.kind == "binary":
            cols = columns[g]
            trc, tec = tr[:, cols], te[:, cols]
            maj = (((trc == 1) & (trc >= 0)).sum(0) > ((trc == 0) & (trc >= 0)).sum(0)).astype(int)
            valid = tec >= 0
            out[g] = float(((tec == maj) & valid).sum() / max(valid.sum(), 1))
        else:
            cols = columns[g]
            mean = np.nanmean(tr[:, cols], axis=0)
            _, _, r2 = _r2_terms(np.broadcast_to(mean, te[:, cols].shape)[None], te[None][:, :, cols], np.ones((1, cols.sum()), bool))
            out[g] = r2[0]
    return out
