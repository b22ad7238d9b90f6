"""Steering and concept erasure along probe directions.

* Directions: `probe_directions` fits a quick least-squares probe (one-hot targets, ridge) on
  cached activations — or takes the probing stage's directions where they exist, through the
  same `(k, d)` array interface — so interventions never wait on another stage.
* Steering: add ``alpha * direction`` at chosen positions of a hook (`steering_hook`).
* Erasure: `MeanProjectionEraser` (orthogonal projection out of a subspace, keeping the mean's
  component) and `LeaceEraser` — LEACE (Belrose et al. 2023) from its closed form: whiten with
  ``W = Σ_xx^{-1/2}``, project out the column space of the whitened cross-covariance
  ``W Σ_xz``, unwhiten: ``r(x) = x − W⁺ P W (x − μ)``. After LEACE no linear classifier of the
  concept beats a constant one, and among all erasers that guarantee this it moves activations
  least in the whitened norm. `random_subspace_eraser` is the amnesic-probing control: erase a
  random subspace of the same rank.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from searchprobe.errors import InputError


def one_hot(labels: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """One-hot rows (n, k) of integer class ids 0..k-1 (k = `n_classes`, else the largest id + 1)."""
    labels = np.asarray(labels)
    ids = labels.astype(np.int64)
    k = (int(ids.max()) + 1 if ids.size else 0) if n_classes is None else int(n_classes)
    if ids.size and (ids.min() < 0 or ids.max() >= k or not np.array_equal(ids, labels)):
        raise InputError(f"one_hot needs integer class ids 0..{k - 1}; got values from {labels.min()} to {labels.max()}")
    out = np.zeros((len(ids), k))
    out[np.arange(len(ids)), ids] = 1.0
    return out


def _class_codes(y: np.ndarray, n_classes: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(classes_, codes): integer labels ≥ 0 are class ids, classes_ = 0..k-1 (k = n_classes or the
    largest id + 1, so absent classes keep their place); other labels are encoded in sorted order."""
    y = np.asarray(y)
    integral = y.dtype.kind in "iub" or (y.dtype.kind == "f" and np.array_equal(y, np.round(y)))
    if integral and (y.size == 0 or y.min() >= 0):
        ids = y.astype(np.int64)
        k = (int(ids.max()) + 1 if ids.size else 0) if n_classes is None else int(n_classes)
        one_hot(ids, k)  # range check
        return np.arange(k), ids
    if n_classes is not None:
        raise InputError(f"n_classes={n_classes} needs labels that are class ids 0..{n_classes - 1}; "
                         f"got {np.unique(y)[:5].tolist()}")
    return np.unique(y, return_inverse=True)


class LinearDirections(ClassifierMixin, BaseEstimator):
    """A least-squares (ridge) probe ``scores = (x − mean_) @ coef_ + intercept_`` on one-hot targets,
    a scikit-learn classifier.

    `coef_` (d, k) columns are the per-class directions; `class_means_` (k, d) the activation
    means per class (for mean-difference steering). `ridge` is the L2 strength per row (sklearn's
    ``Ridge(alpha=ridge * n)``).

    Labels: integer ids ≥ 0 are class ids, ``classes_ = 0..k-1`` with k = `n_classes` or the largest
    id + 1, so a class absent from y keeps its column (its class mean is `mean_`); other labels
    (strings, negative numbers) are encoded in sorted order, as sklearn's classifiers do.
    A probe may also be built by setting `coef_`, `intercept_`, `mean_` and `class_means_` directly
    (`probe_directions`); `predict` then returns column indices.
    """

    def __init__(self, ridge: float = 1e-2, n_classes: int | None = None):
        self.ridge = ridge
        self.n_classes = n_classes

    def fit(self, X, y, n_classes: int | None = None) -> "LinearDirections":
        """Fit on activations X (n, d) and labels y (n,); `n_classes` (if given) overrides the constructor's."""
        k = self.n_classes if n_classes is None else n_classes
        if not (isinstance(self.ridge, (int, float, np.number)) and self.ridge >= 0):
            raise InputError(f"LinearDirections ridge={self.ridge!r}; allowed: a number ≥ 0")
        if k is not None and not (isinstance(k, (int, np.integer)) and k >= 1):
            raise InputError(f"LinearDirections n_classes={k!r}; allowed: a positive integer or None")
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, codes = _class_codes(y, k)
        Y = one_hot(codes, len(self.classes_))
        self.mean_ = X.mean(0)
        xc = X - self.mean_
        d = X.shape[1]
        gram = xc.T @ xc + self.ridge * len(X) * np.eye(d)
        self.coef_ = np.linalg.solve(gram, xc.T @ (Y - Y.mean(0)))
        self.intercept_ = Y.mean(0)
        counts = Y.sum(0)
        self.class_means_ = (Y.T @ X) / np.maximum(counts, 1)[:, None]
        self.class_means_[counts == 0] = self.mean_
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        best = ((X - self.mean_) @ self.coef_ + self.intercept_).argmax(1)
        classes = getattr(self, "classes_", None)
        return best if classes is None else classes[best]

    def subspace(self) -> np.ndarray:
        """Orthonormal basis (rank, d) of the directions' span."""
        check_is_fitted(self)
        u, s, _ = np.linalg.svd(self.coef_, full_matrices=False)
        rank = int((s > s.max() * 1e-8).sum()) if s.size else 0
        return u[:, :rank].T


def probe_directions(run_dir: str | Path | None, name: str, layer: int, x: np.ndarray, labels: np.ndarray,
                     n_classes: int | None = None) -> tuple[LinearDirections, str]:
    """Directions for label `name` at `layer`: the probing stage's if saved, else a quick ridge fit.

    Looks for ``<run_dir>/probes/directions/<name>.L<layer>.npz`` with ``coef`` (d, k) and
    optionally ``intercept``, ``mean``; returns (directions, source description).
    """
    if run_dir is not None:
        path = Path(run_dir) / "probes" / "directions" / f"{name}.L{layer}.npz"
        if path.is_file():
            with np.load(path, allow_pickle=False) as z:
                probe = LinearDirections()
                probe.coef_ = np.asarray(z["coef"], dtype=np.float64)
                probe.mean_ = np.asarray(z["mean"]) if "mean" in z else np.asarray(x).mean(0)
                probe.intercept_ = np.asarray(z["intercept"]) if "intercept" in z else np.zeros(probe.coef_.shape[1])
                y = one_hot(labels, probe.coef_.shape[1])
                probe.class_means_ = (y.T @ np.asarray(x, dtype=np.float64)) / np.maximum(y.sum(0), 1)[:, None]
                return probe, str(path)
    return LinearDirections().fit(x, labels, n_classes), "ridge least-squares fit on cached activations"


# --- erasers --------------------------------------------------------------------------------
@dataclass(eq=False)
class Eraser:
    """An affine map ``x ↦ x − proj_ @ (x − mean_)`` (proj_ is d × d). Subclasses fit `proj_`."""

    mean_: np.ndarray = field(default=None, repr=False)
    proj_: np.ndarray = field(default=None, repr=False)
    rank_: int = 0

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return x - (x - self.mean_) @ self.proj_.T

    def torch_apply(self, act):
        """The same map on a torch tensor (…, d), in the tensor's dtype/device."""
        import torch

        proj = torch.as_tensor(self.proj_, dtype=act.dtype, device=act.device)
        mean = torch.as_tensor(self.mean_, dtype=act.dtype, device=act.device)
        return act - (act - mean) @ proj.T


class LeaceEraser(Eraser):
    """LEACE: least-squares concept erasure (closed form; see the module docstring)."""

    def fit(self, x: np.ndarray, z: np.ndarray, tol: float = 1e-8) -> "LeaceEraser":
        x = np.asarray(x, dtype=np.float64)
        z = np.asarray(z, dtype=np.float64)
        if z.ndim == 1:
            z = one_hot(z.astype(np.int64))
        if len(x) != len(z):
            raise InputError(f"LEACE needs one concept label per activation: {len(x)} activations, {len(z)} labels")
        self.mean_ = x.mean(0)
        xc, zc = x - self.mean_, z - z.mean(0)
        n = len(x)
        sigma = xc.T @ xc / n
        cross = xc.T @ zc / n  # (d, k)
        evals, evecs = np.linalg.eigh(sigma)
        keep = evals > evals.max() * tol
        inv_sqrt = (evecs[:, keep] / np.sqrt(evals[keep])) @ evecs[:, keep].T  # W
        sqrt = (evecs[:, keep] * np.sqrt(evals[keep])) @ evecs[:, keep].T  # W⁺
        u, s, _ = np.linalg.svd(inv_sqrt @ cross, full_matrices=False)
        rank = int((s > (s.max() if s.size else 0) * 1e-6).sum()) if s.size else 0
        basis = u[:, :rank]
        self.proj_ = sqrt @ basis @ basis.T @ inv_sqrt
        self.rank_ = rank
        return self


class MeanProjectionEraser(Eraser):
    """Orthogonal projection out of span(directions), keeping the mean's component there."""

    def fit(self, x: np.ndarray, directions: np.ndarray) -> "MeanProjectionEraser":
        d = np.asarray(directions, dtype=np.float64)
        d = d[None] if d.ndim == 1 else d
        q, r = np.linalg.qr(d.T)
        rank = int((np.abs(np.diag(r)) > 1e-10 * max(1.0, np.abs(r).max())).sum())
        q = q[:, :rank]
        self.mean_ = np.asarray(x, dtype=np.float64).mean(0)
        self.proj_ = q @ q.T
        self.rank_ = rank
        return self


def random_subspace_eraser(x: np.ndarray, rank: int, seed: int = 0) -> MeanProjectionEraser:
    """Amnesic-probing control: erase a uniformly random `rank`-dimensional subspace."""
    x = np.asarray(x)
    if not 0 <= rank <= x.shape[1]:
        raise InputError(f"random subspace rank {rank} is out of range; allowed: 0..{x.shape[1]}")
    rng = np.random.default_rng(seed)
    return MeanProjectionEraser().fit(x, rng.standard_normal((max(rank, 0), x.shape[1])) if rank else np.zeros((1, x.shape[1])))


def whitened_change(x: np.ndarray, erased: np.ndarray) -> float:
    """Mean squared change in the whitened (Mahalanobis, Σ_xx⁻¹) norm: what LEACE minimises."""
    x = np.asarray(x, dtype=np.float64)
    xc = x - x.mean(0)
    sigma = xc.T @ xc / len(x)
    delta = np.asarray(erased, dtype=np.float64) - x
    return float(np.mean(np.einsum("nd,nd->n", delta @ np.linalg.pinv(sigma), delta)))


# --- hooks -----------------------------------------------------------------------------------
def steering_hook(vector, positions: Sequence[int] | None = None):
    """Hook adding `vector` ((d,) or (B, d)) at `positions` (all positions if None)."""
    import torch

    def hook(act, hook):
        v = torch.as_tensor(vector, dtype=act.dtype, device=act.device)
        act = act.clone()
        if v.ndim == 2:
            v = v[:, None, :]
        if positions is None:
            act += v
        else:
            act[:, list(positions)] += v
        return act
    return hook


def erasure_hook(eraser: Eraser, positions: Sequence[int] | None = None):
    """Hook applying `eraser` at `positions` (all positions if None)."""

    def hook(act, hook):
        act = act.clone()
        if positions is None:
            return eraser.torch_apply(act)
        idx = list(positions)
        act[:, idx] = eraser.torch_apply(act[:, idx])
        return act
    return hook


def collect(model, prompts: Sequence[np.ndarray], hook_name: str, position: np.ndarray) -> np.ndarray:
    """float64 (n, d) activations of `hook_name` at one position per prompt (`searchprobe.acts.collect`)."""
    from searchprobe.acts import collect as collect_at

    acts = collect_at(model, prompts, [hook_name], np.asarray(position).reshape(-1, 1))[hook_name]
    return acts[:, 0].numpy().astype(np.float64)


def amnesic_rollouts(model, data, rows, layer: int, fit_x: np.ndarray, fit_labels: np.ndarray,
                     positions: Sequence[int], seed: int = 0) -> dict:
    """Amnesic probing: rollout metrics with a concept LEACE-erased at one position and layer
    (``blocks.{layer}.hook_resid_pre``), against erasing a random subspace of the same rank.

    `data` is a `TaskData` and `rows` its rollout rows (`data.rollout_rows`); metrics are the
    task's. `fit_x` / `fit_labels`: activations at that hook and position and their concept labels
    (to fit the eraser); `positions`: the position to erase in each row's prompt (one value for
    all rows, e.g. `retarget.goal_positions` of the rows' roles).
    """
    from searchprobe.intervene.ablation import rollout_metrics

    name = f"blocks.{layer}.hook_resid_pre"
    leace = LeaceEraser().fit(fit_x, fit_labels)
    control = random_subspace_eraser(fit_x, leace.rank_, seed=seed)
    at = sorted({int(p) for p in positions})
    if len(at) != 1:
        raise InputError(f"amnesic rollouts need the concept at one position in every prompt, got positions {at[:5]}")
    out = {"hook": name, "position": at[0], "rank": leace.rank_,
           "intact": rollout_metrics(model, data, rows)}
    for label, eraser in (("leace", leace), ("random_subspace", control)):
        hook = erasure_hook(eraser, at)

        def forward(tokens, hook=hook):
            with model.hooks(fwd_hooks=[(name, hook)]):
                return model(tokens)

        out[label] = rollout_metrics(model, data, rows, forward=forward)
    return out
