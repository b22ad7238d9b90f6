"""Batched linear probes in torch: many independent L2-regularised problems in one solve.

Shapes: G problems (e.g. hook × role) share nothing but the solve; within each, B fits
(L2 strength × cross-validation fold) differ only in their row weights and penalty (l2 (B,) or (G, B)).

* ``multiclass``: softmax regression, y (G, n) int class ids, -1 = no label.
* ``binary``: M independent logistic regressions per problem, y (G, n, M) in {0, 1}, -1 = no label.
* ``ridge``: M least-squares outputs, y (G, n, M) float, NaN = no label; closed form.

The per-fit objective is sklearn's up to scale: mean loss over weighted rows + ``l2 / 2 * ||W||²``
(intercept not penalised), so ``l2 = 1 / (C * n)`` reproduces ``LogisticRegression(C=C)``.
Classification is solved by full-batch L-BFGS (strong Wolfe) on the sum of all G × B objectives,
whose gradient separates, so one solve fits them all; the gradient is computed analytically over
cache-sized chunks of rows, and rows no fit learns from (held-out rows) are left out of the solve.
The default 50 L-BFGS iterations reach scikit-learn's held-out accuracy (see
experiments/benchmarks/probe_fitting.py); later iterations mostly spend line-search evaluations on
digits that do not change predictions.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal

import numpy as np

from searchprobe.errors import InputError

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
                max_iter: int = 50, tol: float = 1e-5, dtype=None, threads: int | None = 1):
    """See `_fit_batched`; runs with `threads` torch threads (None: torch's current setting)."""
    with torch_threads(threads):
        return _fit_batched(X, y, row_weights, l2, kind, n_classes, max_iter=max_iter, tol=tol, dtype=dtype)


def _fit_batched(X, y, row_weights, l2, kind: Kind, n_classes: int | None = None, *,
                 max_iter: int = 50, tol: float = 1e-5, dtype=None):
    """Fit G × B linear probes; returns (W (G, B, d, K), b (G, B, K)) as torch tensors.

    X: (G, n, d) features (standardise first); y: see module docstring; row_weights: (B, n) or
    (G, B, n) ≥ 0 (fold membership); l2: (B,) penalties. K = n_classes (multiclass) or M outputs.
    """
    import torch

    if kind not in KINDS:
        raise InputError(f"probe kind {kind!r}; allowed: {', '.join(KINDS)}")
    X = torch.as_tensor(X)
    dtype = dtype or X.dtype
    X = X.to(dtype)
    G, n, d = X.shape
    w = torch.as_tensor(row_weights, dtype=dtype)
    if w.ndim == 2:
        w = w.unsqueeze(0).expand(G, -1, -1)
    B = w.shape[1]
    l2 = torch.as_tensor(l2, dtype=dtype)
    l2 = l2.reshape(1, B) if l2.ndim <= 1 else l2.reshape(G, B)
    if kind == "ridge":
        Y = torch.as_tensor(y, dtype=dtype)
        valid = ~torch.isnan(Y)
        Y = torch.nan_to_num(Y)
        return _ridge(X, Y, valid, w, l2)
    if kind == "multiclass":
        yt = torch.as_tensor(y, dtype=torch.long)
        valid = (yt >= 0).to(dtype)  # (G, n)
        K = int(n_classes)
        target = yt.clamp(min=0)
        mask = w * valid[:, None, :]  # (G, B, n)
    else:
        yt = torch.as_tensor(y)
        validm = (yt >= 0).to(dtype)  # (G, n, M)
        target = yt.clamp(min=0).to(dtype)
        K = target.shape[-1]
        mask = w[..., None] * validm[:, None]  # (G, B, n, M)
    denom = mask.sum(dim=2).clamp(min=1.0)  # (G, B) or (G, B, M)
    used = mask.reshape(G, B, n, -1).sum(dim=(0, 1, 3)) > 0  # rows some fit learns from (not test rows)
    if not bool(used.all()):
        rows_used = torch.nonzero(used)[:, 0]
        target, mask = target[:, rows_used], mask[:, :, rows_used]
    else:
        rows_used = None  # all of them: chunks slice X directly
    n = int(used.sum())
    # each row's weight in its fit's mean loss, rows first: (G, n, B, 1) or (G, n, B, M)
    scale = (mask / denom.unsqueeze(2)).transpose(1, 2)
    scale = scale.unsqueeze(-1) if kind == "multiclass" else scale.contiguous()
    del mask
    W = torch.zeros(G, B, d, K, dtype=dtype, requires_grad=True)
    b = torch.zeros(G, B, K, dtype=dtype, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=max_iter, tolerance_grad=tol, tolerance_change=1e-10,
                            history_size=20, line_search_fn="strong_wolfe")
    chunks = _row_chunks(n, G * B * K)

    @torch.no_grad()
    def closure():
        # The objective and its gradient, analytically, over row chunks: one (rows × d) @ (d × B·K)
        # matmul per problem and chunk, whose logits block stays in cache; the (G, B, n, K) logits
        # of all rows never exist at once.
        W_all = W.permute(0, 2, 1, 3).reshape(G, d, B * K)
        loss = 0.5 * (l2[..., None, None] * W.pow(2)).sum()
        grad_all = torch.zeros_like(W_all)
        grad_b = torch.zeros_like(b)
        for rows in chunks:
            Xc = X[:, rows] if rows_used is None else X[:, rows_used[rows]]  # (G, c, d)
            logits = torch.bmm(Xc, W_all).view(G, -1, B, K).add_(b[:, None])  # (G, c, B, K)
            weight = scale[:, rows]
            if kind == "multiclass":
                picked = target[:, rows, None, None].expand(-1, -1, B, 1)
                log_p = torch.log_softmax(logits, dim=-1)
                loss = loss - (log_p.gather(-1, picked) * weight).sum()
                residual = log_p.exp_()  # softmax probabilities, in place
                residual.scatter_add_(-1, picked, torch.full(picked.shape, -1.0, dtype=dtype))
            else:
                y_c = target[:, rows, None, :]
                loss = loss + ((torch.nn.functional.softplus(logits) - y_c * logits) * weight).sum()
                residual = logits.sigmoid_().sub_(y_c)
            residual.mul_(weight)
            grad_all += torch.bmm(Xc.transpose(1, 2), residual.view(G, -1, B * K))
            grad_b += residual.sum(dim=1)
        W.grad = (grad_all.view(G, d, B, K).permute(0, 2, 1, 3) + l2[..., None, None] * W).contiguous()
        b.grad = grad_b
        return loss

    opt.step(closure)
    return W.detach(), b.detach()


def _row_chunks(n: int, width: int, budget: int = 1 << 18, least: int = 64) -> list[slice]:
    """Row slices whose (rows × width) logits block holds about `budget` floats (1 MB, cache-sized),
    but at least `least` rows (fewer make the matmuls inefficient)."""
    size = max(1, min(n, max(least, budget // max(1, width))))
    return [slice(start, min(n, start + size)) for start in range(0, n, size)]


def _ridge(X, Y, valid, w, l2):
    """Closed-form weighted ridge with unpenalised intercept; rows with any missing output are dropped."""
    import torch

    row_ok = valid.all(dim=-1).to(X.dtype)  # (G, n)
    weights = w * row_ok[:, None, :]  # (G, B, n)
    total = weights.sum(dim=2).clamp(min=1.0)  # (G, B)
    mean_x = torch.einsum("gbn,gnd->gbd", weights, X) / total[..., None]
    mean_y = torch.einsum("gbn,gnm->gbm", weights, Y) / total[..., None]
    scaled = weights / total[..., None]  # (G, B, n): rows' share of each fit
    gram = torch.stack([torch.einsum("gnd,gne->gde", X * scaled[:, j, :, None], X) for j in range(scaled.shape[1])], 1)
    gram = gram - mean_x[..., :, None] * mean_x[..., None, :]
    d = X.shape[-1]
    gram = gram + l2[..., None, None] * torch.eye(d, dtype=X.dtype)
    rhs = torch.stack([torch.einsum("gnd,gnm->gdm", X * scaled[:, j, :, None], Y) for j in range(scaled.shape[1])], 1)
    rhs = rhs - mean_x[..., :, None] * mean_y[..., None, :]
    W = torch.linalg.solve(gram, rhs)
    b = mean_y - torch.einsum("gbd,gbdm->gbm", mean_x, W)
    return W, b


def predict_scores(X, W, b):
    """Logits / outputs (G, B, n, K) of fitted probes on features X (G, n, d)."""
    import torch

    X = torch.as_tensor(X).to(W.dtype)
    return torch.einsum("gnd,gbdk->gbnk", X, W) + b[:, :, None, :]


def standardize(X: np.ndarray, fit_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X - mean) / std per feature over `fit_rows` (bool (G, n) or (n,)); std of constant features is 1.

    One float32 copy of X is the only array of X's size made (large stores: memory ~ one copy).
    """
    X = np.asarray(X, dtype=np.float32)
    rows = np.broadcast_to(np.asarray(fit_rows, dtype=np.float32), X.shape[:-1])
    count = np.maximum(rows.sum(axis=-1), 1.0)[..., None]
    mean = np.einsum("...n,...nd->...d", rows, X) / count
    Z = X - mean[..., None, :]
    std = np.sqrt(np.einsum("...n,...nd,...nd->...d", rows, Z, Z) / count)
    std = np.where(std > 1e-6, std, 1.0).astype(np.float32)
    Z /= std[..., None, :]
    return Z, mean.astype(np.float32), std


@dataclass
class _Fitted:
    W: np.ndarray
    b: np.ndarray


class LinearProbe:
    """A scikit-learn-compatible linear probe backed by the batched torch solver.

    kind: "multiclass" (softmax), "binary" (y (n,) or (n, M) of 0/1: one logistic regression per
    column) or "ridge". C: inverse L2 strength as in sklearn (penalty ``1 / (2 C)`` on ``||w||²``
    against the summed loss; for ridge, ``alpha = 1 / C`` on the summed squared error).
    standardize: fit on z-scored features (coef_ is reported in the raw feature space).
    """

    def __init__(self, kind: Kind = "multiclass", C: float = 1.0, standardize: bool = True,
                 max_iter: int = 500, tol: float = 1e-7):
        self.kind = kind
        self.C = C
        self.standardize = standardize
        self.max_iter = max_iter
        self.tol = tol

    def get_params(self, deep: bool = True) -> dict:
        return {"kind": self.kind, "C": self.C, "standardize": self.standardize, "max_iter": self.max_iter, "tol": self.tol}

    def set_params(self, **params) -> "LinearProbe":
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        return f"LinearProbe(kind={self.kind!r}, C={self.C!r}, standardize={self.standardize!r})"

    def fit(self, X, y) -> "LinearProbe":
        import torch

        if self.kind not in KINDS:
            raise InputError(f"LinearProbe kind {self.kind!r}; allowed: {', '.join(KINDS)}")
        if not self.C > 0:
            raise InputError(f"LinearProbe C={self.C!r}; allowed: a positive number")
        X = np.asarray(X, dtype=np.float64)
        n = len(X)
        if self.standardize:
            self.mean_ = X.mean(axis=0)
            std = X.std(axis=0)
            self.scale_ = np.where(std > 1e-12, std, 1.0)
        else:
            self.mean_, self.scale_ = np.zeros(X.shape[1]), np.ones(X.shape[1])
        Z = torch.as_tensor((X - self.mean_) / self.scale_)[None]
        y = np.asarray(y)
        self._single_output = y.ndim == 1
        if self.kind == "multiclass":
            self.classes_, codes = np.unique(y, return_inverse=True)
            W, b = fit_batched(Z, codes[None], np.ones((1, n)), [1.0 / (self.C * n)], "multiclass",
                               n_classes=len(self.classes_), max_iter=self.max_iter, tol=self.tol, dtype=torch.float64)
        elif self.kind == "binary":
            Y = y.reshape(n, -1).astype(np.int64)
            self.classes_ = np.array([0, 1])
            W, b = fit_batched(Z, Y[None], np.ones((1, n)), [1.0 / (self.C * n)], "binary",
                               max_iter=self.max_iter, tol=self.tol, dtype=torch.float64)
        else:
            Y = y.reshape(n, -1).astype(np.float64)
            W, b = fit_batched(Z, Y[None], np.ones((1, n)), [1.0 / (self.C * n)], "ridge", dtype=torch.float64)
        W, b = W[0, 0].numpy(), b[0, 0].numpy()  # (d, K), (K,)
        self.coef_ = (W / self.scale_[:, None]).T
        self.intercept_ = b - self.coef_ @ self.mean_
        if self.kind == "ridge" and self._single_output:
            self.coef_, self.intercept_ = self.coef_[0], self.intercept_[0]
        return self

    def decision_function(self, X) -> np.ndarray:
        out = np.asarray(X, dtype=np.float64) @ np.atleast_2d(self.coef_).T + self.intercept_
        return out[:, 0] if (self.kind == "binary" and self._single_output) else out

    def predict_proba(self, X) -> np.ndarray:
        scores = self.decision_function(X)
        if self.kind == "multiclass":
            scores = scores - scores.max(axis=1, keepdims=True)
            p = np.exp(scores)
            return p / p.sum(axis=1, keepdims=True)
        if self.kind == "binary":
            p1 = 1.0 / (1.0 + np.exp(-scores))
            return np.stack([1 - p1, p1], axis=-1) if self._single_output else p1
        raise InputError("predict_proba needs a classification probe (kind multiclass or binary)")

    def predict(self, X) -> np.ndarray:
        scores = self.decision_function(X)
        if self.kind == "multiclass":
            return self.classes_[scores.argmax(axis=1)]
        if self.kind == "binary":
            return (scores > 0).astype(np.int64)
        return scores.ravel() if self._single_output else scores

    def score(self, X, y) -> float:
        """Accuracy (classification, mean over columns) or R² (ridge, averaged over outputs)."""
        pred = self.predict(X)
        y = np.asarray(y)
        if self.kind == "ridge":
            y2, p2 = y.reshape(len(y), -1), pred.reshape(len(y), -1)
            ss_res = ((y2 - p2) ** 2).sum(axis=0)
            ss_tot = ((y2 - y2.mean(axis=0)) ** 2).sum(axis=0)
            return float(np.mean(1 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0)))
        return float((pred == y.reshape(pred.shape)).mean())


def sklearn_reference(X: np.ndarray, y: np.ndarray, kind: Kind, C: float = 1.0, max_iter: int = 1000):
    """The same probe through scikit-learn (StandardScaler + LogisticRegression / Ridge): the reference path."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "ridge":
        return make_pipeline(StandardScaler(), Ridge(alpha=1.0 / C)).fit(X, y)
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter)).fit(X, y)
