"""The lenses: read residual-stream states as next-token logits, one call signature for every lens.

    logits = lens(model, h)         # h (S, …, d_model): every lens layer, stacked    → (S, …, V)
    logits = lens(model, h, idx=l)  # h (…, d_model): the states of lens layer l only → (…, V)

A lens first maps the states (`Lens.transform`), then reads them through the model's own final
norm and unembedding (`read_through_unembed`: ``ln_final`` recomputes its statistics per state,
exactly as TransformerLens's ``accumulated_resid(apply_ln=True)`` + ``model.unembed``), so the last
lens layer's readout *is* the model's logits. `LogitLens` maps nothing; `TunedLens` (Belrose et
al. 2023) puts one affine translator ``h ↦ h W_l + b_l`` (identity-initialised) in front of every
layer but the last, trained by KL to the final layer's distribution.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from searchprobe.errors import DataError, FingerprintMismatch, InputError
from searchprobe.io import atomic_write_bytes

if TYPE_CHECKING:  # pragma: no cover
    import torch

LENS_FORMAT = "searchprobe-lens/1"


def read_through_unembed(model, residuals: "torch.Tensor") -> "torch.Tensor":
    """Logits of (…, d_model) residual states via the model's ln_final (fresh statistics) and unembed."""
    shape = residuals.shape
    flat = residuals.reshape(1, -1, shape[-1])
    return model.unembed(model.ln_final(flat)).reshape(*shape[:-1], -1)


class Lens:
    """A map from residual states to logits: ``lens(model, h, idx=None)`` (see the module docstring)."""

    def transform(self, h: "torch.Tensor", idx: int | None = None) -> "torch.Tensor":
        """The states the unembedding reads: (S, …, d) for a stack (`idx` None), else (…, d) of layer `idx`."""
        raise NotImplementedError

    def forward(self, model, h: "torch.Tensor", idx: int | None = None) -> "torch.Tensor":
        """Logits (S, …, V) of a stack of every lens layer, or (…, V) of lens layer `idx`."""
        return read_through_unembed(model, self.transform(h, idx))

    def __call__(self, model, h: "torch.Tensor", idx: int | None = None) -> "torch.Tensor":
        return self.forward(model, h, idx)


class LogitLens(Lens):
    """The states as they are, through the model's final norm and unembedding (nostalgebraist 2020)."""

    def __repr__(self) -> str:
        return "LogitLens()"

    def transform(self, h, idx=None):
        return h


class TunedLens(Lens, BaseEstimator):
    """One affine translator per lens layer but the last: ``h ↦ h @ weight_[l] + bias_[l]``.

    A scikit-learn estimator: hyperparameters in ``__init__``; ``fit`` sets ``weight_`` (S-1, d, d)
    and ``bias_`` (S-1, 1, d) (identity-initialised) and ``loss_history_``, and returns self; used
    unfitted it raises ``sklearn.exceptions.NotFittedError``.
    """

    def __init__(self, steps: int = 300, lr: float = 1e-3, batch_size: int = 2048, seed: int = 0,
                 weight_decay: float = 0.0):
        self.steps = steps
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed
        self.weight_decay = weight_decay

    def __repr__(self) -> str:
        fitted = f", layers={len(self.weight_) + 1}" if hasattr(self, "weight_") else ""
        return f"TunedLens(steps={self.steps}, lr={self.lr}, batch_size={self.batch_size}, seed={self.seed}{fitted})"

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "weight_") and hasattr(self, "bias_")

    def check_hyperparameters(self) -> "TunedLens":
        """InputError unless steps > 0, batch_size > 0, lr > 0 and weight_decay ≥ 0."""
        if not (self.steps > 0 and self.batch_size > 0 and self.lr > 0 and self.weight_decay >= 0):
            raise InputError(f"tuned lens needs steps > 0, batch_size > 0, lr > 0, weight_decay >= 0; got "
                             f"{self.steps}, {self.batch_size}, {self.lr}, {self.weight_decay}")
        return self

    @property
    def n_layers(self) -> int:
        """Lens layers this lens reads (translators + the final layer)."""
        check_is_fitted(self)
        return len(self.weight_) + 1

    def fit(self, model, residuals: "torch.Tensor", final_log_probs: "torch.Tensor") -> "TunedLens":
        """Train on (S-1, N, d) residuals of the non-final layers against the final (N, V) log-probs."""
        import torch

        self.check_hyperparameters()
        S1, N, d = residuals.shape
        if N == 0:
            raise InputError("the tuned lens has no predictions to train on")
        gen = torch.Generator().manual_seed(self.seed)
        weight = torch.eye(d, device=residuals.device).repeat(S1, 1, 1).requires_grad_(True)
        bias = torch.zeros(S1, 1, d, device=residuals.device, requires_grad=True)
        opt = torch.optim.Adam([weight, bias], lr=self.lr, weight_decay=self.weight_decay)
        frozen = [p for p in model.parameters() if p.requires_grad]
        for p in frozen:  # gradients flow through the model to the translators only
            p.requires_grad_(False)
        history = []
        target_p = final_log_probs.exp()
        try:
            for _ in range(self.steps):
                rows = torch.randint(0, N, (min(self.batch_size, N),), generator=gen).to(residuals.device)
                h = torch.baddbmm(bias, residuals[:, rows], weight)
                lp = torch.log_softmax(read_through_unembed(model, h).float(), -1)
                kl = (target_p[rows].unsqueeze(0) * (final_log_probs[rows].unsqueeze(0) - lp)).sum(-1).mean()
                opt.zero_grad()
                (kl * S1).backward()
                opt.step()
                history.append(float(kl.detach()))
        finally:
            for p in frozen:
                p.requires_grad_(True)
        self.weight_, self.bias_ = weight.detach(), bias.detach()
        self.loss_history_ = np.asarray(history)
        return self

    def transform(self, h, idx=None):
        """Translate a (S, …, d) stack (the last, final layer passes unchanged), or the (…, d) states of layer `idx`."""
        import torch

        check_is_fitted(self)
        n = len(self.weight_) + 1
        weight, bias = self.weight_.to(h.device), self.bias_.to(h.device)
        if idx is None:
            S = h.shape[0]
            if S != n:
                raise InputError(f"residual stack has {S} layers; this tuned lens was trained for {n}")
            shape = h.shape
            flat = h[:-1].reshape(S - 1, -1, shape[-1])
            out = torch.baddbmm(bias, flat, weight).reshape(S - 1, *shape[1:])
            return torch.cat([out, h[-1:]], 0)
        layer = int(idx) + (n if int(idx) < 0 else 0)
        if not 0 <= layer < n:
            raise InputError(f"lens layer {idx} is out of range for a tuned lens of {n} layers")
        if layer == n - 1:
            return h
        return torch.addmm(bias[layer, 0], h.reshape(-1, h.shape[-1]), weight[layer]).reshape(h.shape)

    # --- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path, fingerprint: str, labels: Sequence[str]) -> Path:
        """Write the translators with the model's fingerprint (safetensors; atomic)."""
        from safetensors.torch import save

        check_is_fitted(self)
        meta = {"format": LENS_FORMAT, "model_fingerprint": fingerprint, "labels": json.dumps(list(labels)),
                "params": json.dumps(self.get_params())}
        data = save({"weight": self.weight_.detach().cpu().contiguous(), "bias": self.bias_.detach().cpu().contiguous()},
                    metadata=meta)
        return atomic_write_bytes(path, data)

    @classmethod
    def load(cls, path: str | Path, fingerprint: str) -> "TunedLens":
        """Load translators, refusing ones trained for another model (FingerprintMismatch)."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise DataError(f"no tuned lens at {path}; run `searchprobe lens RUN_DIR` to train one")
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                weight, bias = fh.get_tensor("weight"), fh.get_tensor("bias")
        except Exception as exc:
            raise DataError(f"tuned lens {path} is corrupt ({type(exc).__name__}: {exc})") from None
        if meta.get("model_fingerprint") != fingerprint:
            raise FingerprintMismatch(
                f"tuned lens {path} was trained for model {str(meta.get('model_fingerprint'))[:12]}, not this run's "
                f"model {fingerprint[:12]}; retrain it with `searchprobe lens RUN_DIR --force`")
        params: dict[str, Any] = json.loads(meta.get("params", "{}"))
        known = cls().get_params()
        lens = cls(**{k: v for k, v in params.items() if k in known})
        lens.weight_, lens.bias_ = weight, bias
        lens.labels_ = json.loads(meta.get("labels", "[]"))
        return lens
