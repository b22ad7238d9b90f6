"""Attribution patching: a first-order estimate of every patch cell from one backward pass.

``effect(cell) ≈ (a_clean − a_corrupt) · ∂metric/∂a`` at the corrupted run (Nanda 2023; Syed et
al. 2023). One clean forward, one corrupted forward + backward give the whole (layer × position)
or (layer × head) map, for quick screening before the exact (batched) sweep. Normalised like
`patch_sweep`: the estimated change of the mean logit difference over (LD_clean − LD_corrupt).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from searchprobe.errors import InputError
from searchprobe.intervene.patching import SWEEPS, PatchResult, check_layers, logit_diff


def attribution_sweep(model, clean_tokens, corrupt_tokens, clean_answer, corrupt_answer, sweep: str = "resid",
                      layers: Sequence[int] | None = None, roles: np.ndarray | None = None) -> PatchResult:
    """Attribution-patching estimate of `patch_sweep(..., sweep)` (same axes, same normalisation)."""
    if sweep not in SWEEPS:
        raise InputError(f"unknown sweep {sweep!r}; allowed: {', '.join(SWEEPS)}")
    device = next(model.parameters()).device
    clean = torch.as_tensor(np.asarray(clean_tokens), dtype=torch.long, device=device)
    corrupt = torch.as_tensor(np.asarray(corrupt_tokens), dtype=torch.long, device=device)
    if clean.shape != corrupt.shape:
        raise InputError(f"clean tokens {tuple(clean.shape)} and corrupted tokens {tuple(corrupt.shape)} differ in shape; "
                         "attribution patching needs pairs of equal token length")
    ca = torch.as_tensor(np.asarray(clean_answer), dtype=torch.long, device=device)
    xa = torch.as_tensor(np.asarray(corrupt_answer), dtype=torch.long, device=device)
    template, axes = SWEEPS[sweep]
    layers = list(range(model.cfg.n_layers)) if layers is None else [int(x) for x in layers]
    check_layers(model, layers)
    names = [template.format(layer=layer) for layer in layers]
    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(clean, names_filter=lambda n: n in set(names))
    saved: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(act, hook):
            act.retain_grad()
            saved[name] = act
            return act
        return hook

    with torch.enable_grad(), model.hooks(fwd_hooks=[(n, keep(n)) for n in names]):
        logits = model(corrupt)
        corrupt_ld = logit_diff(logits, ca, xa)
        corrupt_ld.mean().backward()
    model.zero_grad(set_to_none=True)
    clean_ld = logit_diff(clean_logits, ca, xa).float().cpu().numpy()
    x_ld = corrupt_ld.detach().float().cpu().numpy()
    maps = []
    for n in names:
        delta = (clean_cache[n] - saved[n].detach()) * saved[n].grad  # (N, T, d) or (N, T, H, dh)
        if axes == ("layer", "pos"):
            cell = delta.sum(dim=(0, 3) if delta.ndim == 4 else (0, 2))
        elif axes == ("layer", "head"):
            cell = delta.sum(dim=(0, 1, 3))
        else:
            cell = delta.sum(dim=(0, 3))
        maps.append(cell.float().cpu().numpy())
    est = np.stack(maps)  # estimated change of the mean logit difference
    denom = float(clean_ld.mean() - x_ld.mean())
    values = est / denom if abs(denom) > 1e-12 else est * np.nan
    return PatchResult(f"attribution:{sweep}", template, axes, values, est[..., None], clean_ld, x_ld,
                       None if roles is None else np.asarray(roles)[: clean.shape[1]], {"layers": layers})


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two maps over their finite cells."""
    a, b = np.asarray(a, dtype=float).reshape(-1), np.asarray(b, dtype=float).reshape(-1)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 2 or a[ok].std() == 0 or b[ok].std() == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])
