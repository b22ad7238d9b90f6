"""Batched linear probes in torch: many independent L2-regularised problems in one solve.

Shapes: G problems (e.g. hook × role) share nothing but the solve; within each, B fits
(L2 strength × cross-validation fold) differ only in their row weights and penalty (l2 (B,) or (G, B)).

* ``multiclass``: softmax regression, y (G, n) int class ids, -1 = no label.
* ``binary``: M independent logistic regressions per problem, y (G, n, M) in {0, 1}, -1 = no label.
* ``ridge``: M least-squares outputs, y (G, n, M) float, NaN = no label; closed form.

The per-fit objective is sklearn's up to scale: mean loss over weighted rows + ``l2 / 2 * ||W||²``
(intercept not penalised), so ``l2 = 1 / (C * n)`` reproduces ``LogisticRegression(C=C)``.
Classification is solved by a batched L-BFGS in which every fit (every problem × L2 × fold, and
every output of a binary family) has its own history, step and stopping test — sklearn's own
(largest gradient entry ≤ tol) — and stops costing work when it has converged (`lbfgs.minimize`).
Fits along the L2 grid are warm-started from the next stronger L2. The gradient is computed
analytically over cache-sized chunks of rows, skipping rows a fit gives no weight (its CV fold's own
rows, held-out rows); features come from memory or, block by block, from an activation store
(`features.Standardized`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from searchprobe.errors import InputError
from searchprobe.probe.features import Standardized
from searchprobe.probe.lbfgs import minimize

Kind = Literal["multiclass", "binary", "ridge"]
KINDS: tuple[str, ...] = ("multiclass", "binary", "ridge")


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Temporarily set torch's intra-op threads (None: leave as is).

    Probe fitting is many small tensor ops; on a busy machine one thread is often several times
    faster than two, so the probing stage runs with `threads=1` unless told otherwise.
    """
    import torch

    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def fit_batched(X, y, row_weights, l2, kind: Kind, n_classes: int | None = None, *,
                max_iter: int = 100, tol: float = 1e-4, dtype=None, threads: int | None = 1):
    """See `_fit_batched`; runs with `threads` torch threads (None: torch's current setting)."""
    with torch_threads(threads):
        return _fit_batched(X, y, row_weights, l2, kind, n_classes, max_iter=max_iter, tol=tol, dtype=dtype)


def _fit_batched(X, y, row_weights, l2, kind: Kind, n_classes: int | None = None, *,
                 max_iter: int = 100, tol: float = 1e-4, dtype=None):
    """Fit G × B linear probes; returns (W (G, B, d, K), b (G, B, K)) as torch tensors.

    X: (G, n, d) features (standardise first) or a `features.Standardized` (read block by block);
    y: see module docstring; row_weights: (B, n) or (G, B, n) ≥ 0 (fold membership); l2: (B,) or
    (G, B) penalties. K = n_classes (multiclass) or M outputs.
    """
    import torch

    if kind not in KINDS:
        raise InputError(f"probe kind {kind!r}; allowed: {', '.join(KINDS)}")
    source = X if isinstance(X, Standardized) else Standardized.from_tensor(X)
    G, d = source.G, source.d
    dtype = dtype or (source.Z.dtype if source.Z is not None else torch.float32)
    w = torch.as_tensor(row_weights, dtype=dtype)
    w = w.unsqueeze(0) if w.ndim == 2 else w  # (1 or G, B, n)
    B = w.shape[1]
    l2 = torch.as_tensor(l2, dtype=dtype)
    l2 = l2.reshape(1, B) if l2.ndim <= 1 else l2.reshape(G, B)
    if kind == "ridge":
        Y = torch.as_tensor(y, dtype=dtype)
        return _ridge(source, torch.nan_to_num(Y), ~torch.isnan(Y), w, l2, dtype)
    yt = torch.as_tensor(y)
    if kind == "multiclass":
        K, M = int(n_classes), 1
        valid = (yt >= 0)[..., None]  # (G, n, 1)
        target = yt.clamp(min=0).long()  # class ids (G, n)
    else:
        K = M = yt.shape[-1]
        valid = yt >= 0  # (G, n, M)
        target = yt == 1
    # each fit's number of rows: its mean loss weighs a row w / denom
    denom = torch.einsum("gbn,gnm->gbm", w.expand(G, -1, -1), valid.to(dtype)).clamp(min=1.0)  # (G, B, M)
    # Fits: (b) for multiclass, each owning K columns of logits; (b, m) for binary, one column each.
    per_fit = K if kind == "multiclass" else 1  # logit columns per fit
    F = B * M
    l2_fit = l2.expand(G, B).repeat_interleave(M, dim=1)  # (G, F)
    segments = _live_segments(w, M, source.blocks())
    # parts whose rows all have every label (no masking needed), by (block, part) position
    fully_labelled = {(i, j): bool(valid[:, rows.rows].all()) for i, (_, parts) in enumerate(segments)
                      for j, (_, rows, _) in enumerate(parts)}

    def rows_of(t, rows, g_idx):
        """t[g_idx][:, rows] without copying all of t's rows first."""
        part = t[:, rows]
        return part if len(g_idx) == G else part[g_idx]

    minus_one = torch.full((1, 1, 1, 1), -1.0, dtype=dtype)
    zero_one = bool(((w == 0) | (w == 1)).all())  # fold masks: a live fit weighs each of its rows 1
    denom_fit = denom.reshape(G, F)

    def objective(theta, g_idx, f_idx):
        """Loss (g', f') and gradient (g', f', p) of fits f_idx of problems g_idx, over row chunks:
        one (rows × d) @ (d × columns) matmul per problem and chunk, whose logits block stays in cache.
        Rows are visited in segments that feed the same fits, and a segment skips the fits that give
        its rows no weight (a CV fold's own rows; held-out rows are in no segment). Sums over rows
        are divided by each fit's row count at the end."""
        g_ = len(g_idx)
        params = theta.reshape(g_, -1, d + 1)  # one row of weights and a bias per logit column
        lam = l2_fit[g_idx][:, f_idx]
        loss = 0.5 * lam * params[..., :d].reshape(g_, len(f_idx), -1).pow(2).sum(-1)
        grad = torch.zeros_like(params)
        in_memory = source.Z is not None  # then read all problems (a view) and pick g_idx per chunk
        for i, (block, parts) in enumerate(segments):
            X_block = None
            for j, (local, rows, live) in enumerate(parts):
                keep = torch.nonzero(live[f_idx])[:, 0]  # positions in f_idx of the fits these rows feed
                if not len(keep):
                    continue
                if X_block is None:
                    X_block = source.read(block, None if in_memory else g_idx).to(dtype)
                X_seg = X_block[:, local]
                fits, n_fits = f_idx[keep], len(keep)
                cols = (keep[:, None] * per_fit + torch.arange(per_fit)).reshape(-1)  # their logit columns
                weight_t = params[:, cols, :d].transpose(1, 2)  # (g', d, c')
                bias = params[:, cols, d]
                # binary fits that are whole families (every output of each b): targets broadcast over b
                whole = kind == "binary" and n_fits % M == 0 and bool((fits.view(-1, M) % M == torch.arange(M)).all())
                if kind == "binary" and not whole:  # (M, f') picks each fit's output: a matmul beats a gather
                    select = torch.nn.functional.one_hot(fits % M, M).T.to(dtype)
                seg_loss = loss.new_zeros(g_, n_fits)
                seg_grad_w = params.new_zeros(g_, len(cols), d)
                seg_grad_b = params.new_zeros(g_, len(cols))
                for chunk in _row_chunks(X_seg.shape[1], g_ * len(cols)):
                    Xc, rows_c = X_seg[:, chunk], rows[chunk]
                    if in_memory and g_ != G:
                        Xc = Xc[g_idx]
                    mask = None if fully_labelled[i, j] else rows_of(valid, rows_c, g_idx).to(dtype)  # (g', c, M)
                    if not zero_one:
                        row_w = w[:, :, rows_c].transpose(1, 2)  # (1 or G, c, B)
                        row_w = row_w if w.shape[0] == 1 else row_w[g_idx]
                        row_w = row_w.repeat_interleave(M, dim=2)[:, :, fits]
                        mask = row_w * (1.0 if mask is None else (mask if kind == "multiclass" else mask[:, :, fits % M]))
                    elif mask is not None and kind == "binary":
                        mask = mask.view(g_, -1, 1, M).expand(-1, -1, n_fits // M, -1).reshape(g_, -1, n_fits) if whole \
                            else mask @ select
                    logits = torch.baddbmm(bias[:, None, :], Xc, weight_t)  # (g', c, c')
                    if kind == "multiclass":
                        logits = logits.view(g_, -1, n_fits, K)
                        picked = rows_of(target, rows_c, g_idx)[:, :, None, None].expand(-1, -1, n_fits, 1)
                        log_p = torch.log_softmax(logits, dim=-1)
                        picked_log_p = log_p.gather(-1, picked)[..., 0]  # (g', c, f')
                        residual = log_p.exp_()  # softmax probabilities, in place
                        residual.scatter_add_(-1, picked, minus_one.expand(picked.shape))
                        if mask is not None:
                            picked_log_p.mul_(mask)
                            residual.mul_(mask[..., None])
                        seg_loss -= picked_log_p.sum(1)
                        residual = residual.view(g_, -1, len(cols))
                    else:
                        labels = rows_of(target, rows_c, g_idx)
                        if whole:
                            logits = logits.view(g_, -1, n_fits // M, M)
                            labels = labels[:, :, None, :].to(dtype)
                        else:
                            labels = labels.to(dtype) @ select
                        terms = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.expand_as(logits),
                                                                                     reduction="none")
                        residual = logits.sigmoid_().sub_(labels).view(g_, -1, n_fits)
                        terms = terms.view(g_, -1, n_fits)
                        if mask is not None:
                            terms.mul_(mask)
                            residual.mul_(mask)
                        seg_loss += terms.sum(1)
                    seg_grad_w.baddbmm_(residual.transpose(1, 2), Xc)
                    seg_grad_b += residual.sum(1)
                count = denom_fit[g_idx][:, fits]  # (g', f')
                loss[:, keep] += seg_loss / count
                per_col = count.repeat_interleave(per_fit, dim=1)
                grad[:, cols] += torch.cat([seg_grad_w, seg_grad_b[..., None]], dim=-1) / per_col[..., None]
        grad = grad.view(g_, len(f_idx), per_fit, d + 1)
        grad[..., :d] += lam[..., None, None] * params.view(g_, len(f_idx), per_fit, d + 1)[..., :d]
        return loss, grad.view(g_, len(f_idx), -1)

    theta = torch.zeros(G, F, per_fit * (d + 1), dtype=dtype)
    fits_of = (lambda bs: bs) if kind == "multiclass" else (lambda bs: [b * M + m for b in bs for m in range(M)])
    for phase, warm_from in _l2_path(w, l2):
        fits, init = torch.tensor(fits_of(phase)), fits_of(warm_from)
        start = theta[:, init] if warm_from else theta[:, fits]

        def phase_objective(theta_sub, g_idx, f_idx, fits=fits):
            return objective(theta_sub, g_idx, fits[f_idx])

        theta[:, fits] = minimize(phase_objective, start, max_iter=max_iter, tol=tol)
    params = theta.view(G, B, K, d + 1)
    return params[..., :d].transpose(-1, -2).contiguous(), params[..., d].contiguous()


def _l2_path(w, l2) -> list[tuple[list[int], list[int]]]:
    """Fits in phases along the regularisation path: fits with the same row weights (a CV fold, or
    all training rows) are solved from the strongest L2 to the weakest, each warm-started from the
    solution one step stronger, as glmnet and sklearn's LogisticRegressionCV do; every phase
    solves one fit of each such group. Returns [(fits, fits to start them from or [])]."""
    import torch

    B = w.shape[1]
    if l2.shape[0] != 1:  # per-problem strengths: no shared path
        return [(list(range(B)), [])]
    strength = l2[0].tolist()
    groups: list[list[int]] = []
    for b in range(B):
        same = next((grp for grp in groups if torch.equal(w[:, grp[0]], w[:, b])), None)
        if same is None:
            groups.append([b])
        else:
            same.append(b)
    for grp in groups:
        grp.sort(key=lambda b: -strength[b])
    phases = []
    for step in range(max(len(grp) for grp in groups)):
        fits = [grp[step] for grp in groups if step < len(grp)]
        starts = [grp[step - 1] for grp in groups if step < len(grp)] if step else []
        phases.append((fits, starts))
    return phases


def _live_segments(w, outputs: int, blocks: list[slice], most: int = 8) -> list:
    """For each block of rows, the runs of rows that feed the same fits:
    [(block, [(rows within the block, the same rows overall, live (F,) bool)])].

    w (1 or G, B, n) row weights; each weight column b stands for `outputs` fits (binary: one per
    output). Rows no fit uses (held-out rows) are left out. With more than `most` distinct
    patterns, every used row is in one run with every fit live (skipping would cost more than it saves).
    Runs are slices where their rows are contiguous (callers that sort training rows by CV fold get
    one slice per fold), index tensors otherwise."""
    import torch

    live_b = (w != 0).any(dim=0).T  # (n, B)
    patterns, pattern_of = torch.unique(live_b, dim=0, return_inverse=True)
    used = patterns.any(1)
    if int(used.sum()) > most:
        patterns, pattern_of = torch.ones(1, live_b.shape[1], dtype=torch.bool), torch.where(live_b.any(1), 0, -1)
        used = torch.ones(1, dtype=torch.bool)
    segments = []
    for block in blocks:
        parts = []
        for p in torch.nonzero(used)[:, 0].tolist():
            local = torch.nonzero(pattern_of[block] == p)[:, 0]
            if not len(local):
                continue
            if int(local[-1] - local[0]) + 1 == len(local):
                local = slice(int(local[0]), int(local[-1]) + 1)
                rows = slice(block.start + local.start, block.start + local.stop)
            else:
                rows = local + block.start
            parts.append((local, _Rows(rows), patterns[p].repeat_interleave(outputs)))
        if parts:
            segments.append((block, parts))
    return segments


class _Rows:
    """Row positions as a slice or an index tensor; indexing by a chunk slice keeps the kind."""

    def __init__(self, rows):
        self.rows = rows

    def __getitem__(self, chunk: slice):
        if isinstance(self.rows, slice):
            return slice(self.rows.start + chunk.start, self.rows.start + chunk.stop)
        return self.rows[chunk]


def _row_chunks(n: int, width: int, budget: int = 1 << 18, least: int = 64) -> list[slice]:
    """Slices of n rows whose (rows × width) logits block holds about `budget` floats (1 MB,
    cache-sized), but at least `least` rows (fewer make the matmuls inefficient)."""
    size = max(1, min(n, max(least, budget // max(1, width))))
    return [slice(start, min(n, start + size)) for start in range(0, n, size)]


def _ridge(source, Y, valid, w, l2, dtype):
    """Closed-form weighted ridge with unpenalised intercept; rows with any missing output are dropped.
    Weighted moments are accumulated block by block."""
    import torch

    G, d = source.G, source.d
    row_ok = valid.all(dim=-1).to(dtype)  # (G, n)
    weights = w * row_ok[:, None, :]  # (G, B, n)
    share = weights / weights.sum(dim=2).clamp(min=1.0)[..., None]  # rows' share of each fit
    B, M = share.shape[1], Y.shape[-1]
    mean_x, mean_y = torch.zeros(G, B, d, dtype=dtype), torch.zeros(G, B, M, dtype=dtype)
    xx, xy = torch.zeros(G, B, d, d, dtype=dtype), torch.zeros(G, B, d, M, dtype=dtype)
    for rows in source.blocks():
        X, Yb, sh = source.read(rows).to(dtype), Y[:, rows], share[:, :, rows]
        mean_x += torch.einsum("gbn,gnd->gbd", sh, X)
        mean_y += torch.einsum("gbn,gnm->gbm", sh, Yb)
        for j in range(B):
            weighted = X * sh[:, j, :, None]
            xx[:, j] += weighted.transpose(1, 2) @ X
            xy[:, j] += weighted.transpose(1, 2) @ Yb
    gram = xx - mean_x[..., :, None] * mean_x[..., None, :] + l2[..., None, None] * torch.eye(d, dtype=dtype)
    rhs = xy - mean_x[..., :, None] * mean_y[..., None, :]
    W = torch.linalg.solve(gram, rhs)
    b = mean_y - torch.einsum("gbd,gbdm->gbm", mean_x, W)
    return W, b


def predict_scores(X, W, b):
    """Logits / outputs (G, B, n, K) of fitted probes on features X (G, n, d)."""
    import torch

    X = torch.as_tensor(X).to(W.dtype)
    return torch.einsum("gnd,gbdk->gbnk", X, W) + b[:, :, None, :]


def standardize(X: np.ndarray, fit_rows: np.ndarray, order: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X - mean) / std per feature over `fit_rows` (bool (G, n) or (n,)); std of constant features is 1.

    With `order` (row indices), the result holds rows X[..., order, :]. One float32 copy of X is
    the only array of X's size made (large stores: memory ~ one copy).
    """
    X = np.asarray(X, dtype=np.float32)
    rows = np.broadcast_to(np.asarray(fit_rows, dtype=np.float32), X.shape[:-1])
    count = np.maximum(rows.sum(axis=-1), 1.0)[..., None]
    mean = np.einsum("...n,...nd->...d", rows, X) / count
    Z = X.copy() if order is None else np.take(X, order, axis=-2)
    Z -= mean[..., None, :]
    if order is not None:
        rows = np.take(rows, order, axis=-1)
    std = np.sqrt(np.einsum("...n,...nd,...nd->...d", rows, Z, Z) / count)
    std = np.where(std > 1e-6, std, 1.0).astype(np.float32)
    Z /= std[..., None, :]
    return Z, mean.astype(np.float32), std


@dataclass
class _Fitted:
    W: np.ndarray
    b: np.ndarray


def _is_classification(probe) -> bool:
    return probe.kind != "ridge"


class LinearProbe(ClassifierMixin, BaseEstimator):
    """A scikit-learn estimator for linear probes, backed by the batched torch solver.

    kind: "multiclass" (softmax regression over any labels; with exactly two classes, one logistic
    regression, as sklearn's ``LogisticRegression`` fits), "binary" (y (n,) or (n, M) of 0/1: one
    logistic regression per column, a multi-label classifier) or "ridge" (least squares, y (n,) or
    (n, M)). C: inverse L2 strength as in sklearn (penalty ``1 / (2 C)`` on ``||w||²`` against the
    summed loss; for ridge, ``alpha = 1 / C`` on the summed squared error).
    standardize: fit on z-scored features (coef_ is reported in the raw feature space).
    max_iter, tol: L-BFGS limits (classification; sklearn's meaning of tol: largest gradient entry).

    One class serves classification and regression: its scikit-learn tags follow `kind`, so
    ``is_classifier(LinearProbe())`` and ``is_regressor(LinearProbe(kind="ridge"))`` hold and sklearn
    picks stratified folds, scorers and estimator checks accordingly. Regression probes have no
    `decision_function` / `predict_proba` and no `classes_`; `score` is accuracy for classification
    (for multi-label "binary", the mean over outputs) and R² averaged over outputs for ridge.
    (``isinstance(probe, ClassifierMixin)`` is True for every kind: sklearn ≥ 1.6 reads the tags.)

    Fitted attributes: coef_ (K, d) — (1, d) for a two-class "multiclass" or one-column "binary"
    probe, (d,) for one-output ridge — intercept_, classes_ (classification), mean_ and scale_
    (the standardisation), n_features_in_. There is no n_iter_: the batched L-BFGS (`lbfgs.minimize`)
    does not report iteration counts (sklearn's check_non_transformer_estimators_n_iter fails).
    """

    def __init__(self, kind: Kind = "multiclass", C: float = 1.0, standardize: bool = True,
                 max_iter: int = 500, tol: float = 1e-7):
        self.kind = kind
        self.C = C
        self.standardize = standardize
        self.max_iter = max_iter
        self.tol = tol

    def __sklearn_tags__(self):
        from sklearn.utils import RegressorTags

        tags = super().__sklearn_tags__()
        if self.kind == "ridge":
            tags.estimator_type = "regressor"
            tags.classifier_tags = None
            tags.regressor_tags = RegressorTags()
            tags.target_tags.multi_output = True
        elif self.kind == "binary":
            tags.target_tags.multi_output = True
            tags.classifier_tags.multi_class = False
            tags.classifier_tags.multi_label = True
        return tags

    def _check_params(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"LinearProbe kind {self.kind!r}; allowed: {', '.join(KINDS)}")
        if not (isinstance(self.C, (int, float, np.number)) and self.C > 0 and np.isfinite(self.C)):
            raise InputError(f"LinearProbe C={self.C!r}; allowed: a positive number")
        if not (isinstance(self.max_iter, (int, np.integer)) and self.max_iter >= 1):
            raise InputError(f"LinearProbe max_iter={self.max_iter!r}; allowed: a positive integer")
        if not (isinstance(self.tol, (int, float, np.number)) and self.tol >= 0):
            raise InputError(f"LinearProbe tol={self.tol!r}; allowed: a number ≥ 0")

    def fit(self, X, y) -> "LinearProbe":
        import torch

        self._check_params()
        if self.kind == "multiclass":
            X, y = validate_data(self, X, y, dtype=np.float64)
            check_classification_targets(y)
        elif self.kind == "binary":
            X, y = validate_data(self, X, y, dtype=np.float64, multi_output=True)
            check_classification_targets(y)
            if not np.isin(y, (0, 1)).all():
                raise InputError("LinearProbe(kind='binary'): Only binary classification is supported, one 0/1 "
                                 f"column per output; y holds {np.unique(y)[:5].tolist()}. For other labels use "
                                 "kind='multiclass'")
        else:
            X, y = validate_data(self, X, y, dtype=np.float64, multi_output=True, y_numeric=True)
        n = len(X)
        if self.standardize:
            self.mean_ = X.mean(axis=0)
            std = X.std(axis=0)
            self.scale_ = np.where(std > 1e-12, std, 1.0)
        else:
            self.mean_, self.scale_ = np.zeros(X.shape[1]), np.ones(X.shape[1])
        Z = torch.as_tensor((X - self.mean_) / self.scale_)[None]
        self._single_output = y.ndim == 1
        l2 = [1.0 / (self.C * n)]
        solve = {"max_iter": self.max_iter, "tol": self.tol, "dtype": torch.float64}
        if self.kind == "multiclass":
            self.classes_, codes = np.unique(y, return_inverse=True)
            if len(self.classes_) == 2:  # one logistic regression, as LogisticRegression fits
                W, b = fit_batched(Z, codes.reshape(1, n, 1), np.ones((1, n)), l2, "binary", **solve)
            else:
                W, b = fit_batched(Z, codes[None], np.ones((1, n)), l2, "multiclass",
                                   n_classes=len(self.classes_), **solve)
        elif self.kind == "binary":
            self.classes_ = np.array([0, 1])
            W, b = fit_batched(Z, y.reshape(1, n, -1).astype(np.int64), np.ones((1, n)), l2, "binary", **solve)
        else:
            W, b = fit_batched(Z, y.reshape(1, n, -1).astype(np.float64), np.ones((1, n)), l2, "ridge",
                               dtype=torch.float64)
        W, b = W[0, 0].numpy(), b[0, 0].numpy()  # (d, K), (K,)
        self.coef_ = (W / self.scale_[:, None]).T
        self.intercept_ = b - self.coef_ @ self.mean_
        if self.kind == "ridge" and self._single_output:
            self.coef_, self.intercept_ = self.coef_[0], self.intercept_[0]
        return self

    def _scores(self, X) -> np.ndarray:
        """Logits / outputs (n, K) on raw features, after the fitted-state and input checks."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ np.atleast_2d(self.coef_).T + self.intercept_

    def _one_column(self) -> bool:
        """Whether the probe is one logistic regression (decision_function gives (n,))."""
        return len(self.classes_) == 2 if self.kind == "multiclass" else self._single_output

    @available_if(_is_classification)
    def decision_function(self, X) -> np.ndarray:
        """Logits: (n,) for one logistic regression (the positive class's log-odds), else (n, K)."""
        scores = self._scores(X)
        return scores[:, 0] if self._one_column() else scores

    @available_if(_is_classification)
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n, n_classes); for multi-label "binary", P(1) per output (n, M)."""
        scores = self.decision_function(X)
        if self.kind == "multiclass" and not self._one_column():
            scores = scores - scores.max(axis=1, keepdims=True)
            p = np.exp(scores)
            return p / p.sum(axis=1, keepdims=True)
        p1 = 1.0 / (1.0 + np.exp(-scores))
        return np.stack([1 - p1, p1], axis=-1) if self._one_column() else p1

    def predict(self, X) -> np.ndarray:
        if self.kind == "ridge":
            scores = self._scores(X)
            return scores.ravel() if self._single_output else scores
        scores = self.decision_function(X)
        if self.kind == "multiclass":
            return self.classes_[(scores > 0).astype(np.int64) if self._one_column() else scores.argmax(axis=1)]
        return (scores > 0).astype(np.int64)

    def score(self, X, y, sample_weight=None) -> float:
        """Accuracy (classification; for multi-label, the mean over outputs too) or R² (ridge,
        averaged over outputs; an output with no variance counts its residual against a variance of 1)."""
        pred = self.predict(X)
        y = np.asarray(y)
        if self.kind == "ridge":
            y2, p2 = y.reshape(len(y), -1), pred.reshape(len(y), -1)
            w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
            mean = np.average(y2, axis=0, weights=w)
            ss_res = (w[:, None] * (y2 - p2) ** 2).sum(axis=0)
            ss_tot = (w[:, None] * (y2 - mean) ** 2).sum(axis=0)
            return float(np.mean(1 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0)))
        hits = (pred == y.reshape(pred.shape)).reshape(len(pred), -1).mean(axis=1)
        return float(np.average(hits, weights=sample_weight))


def sklearn_reference(X: np.ndarray, y: np.ndarray, kind: Kind, C: float = 1.0, max_iter: int = 1000):
    """The same probe through scikit-learn (StandardScaler + LogisticRegression / Ridge): the reference path."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "ridge":
        return make_pipeline(StandardScaler(), Ridge(alpha=1.0 / C)).fit(X, y)
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter)).fit(X, y)
