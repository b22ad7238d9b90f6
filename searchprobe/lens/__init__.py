"""Logit lens and tuned lens: what would the model predict if it stopped at layer l?

Every residual-stream state (``blocks.{l}.hook_resid_pre``, ``…resid_mid``, and the last
``resid_post``) is read through the model's own final norm and unembedding, exactly as
TransformerLens's ``ActivationCache.accumulated_resid(incl_mid=True, apply_ln=True)`` followed
by ``model.unembed`` does, so the last layer's readout *is* the model's logits. The tuned lens
(Belrose et al. 2023) puts one affine translator per layer in front of that readout, trained by KL
to the final layer's distribution. Both lenses are called alike: ``lens(model, h, idx=None)``.

Modules, one concept each (imported on first use: importing this package does not import torch):

- `searchprobe.lens.lenses`: `Lens`, `LogitLens`, `TunedLens` (a scikit-learn estimator), `read_through_unembed`
- `searchprobe.lens.readout`: the predictions read (`solution_predictions`), the residual stack,
  per-prediction statistics (`readout_stats`), `lens_readout` over a dataset
- `searchprobe.lens.summary`: role-group tables, emergence layers, `summarize`
- `searchprobe.lens.stage`: `run_lens(run_dir)`, the stage, for a run of any task
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "LENS_FORMAT": "lenses", "Lens": "lenses", "LogitLens": "lenses", "TunedLens": "lenses",
    "read_through_unembed": "lenses",
    "Predictions": "readout", "solution_predictions": "readout", "residual_stack": "readout",
    "collect_residuals": "readout", "ReadoutStats": "readout", "readout_stats": "readout",
    "LensReadout": "readout", "lens_readout": "readout",
    "emergence_layers": "summary", "role_groups": "summary", "summarize": "summary",
    "TUNED_LENS_FILE": "stage", "run_lens": "stage",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from searchprobe.lens.lenses import LENS_FORMAT, Lens, LogitLens, TunedLens, read_through_unembed  # noqa: F401
    from searchprobe.lens.readout import (  # noqa: F401
        LensReadout,
        Predictions,
        ReadoutStats,
        collect_residuals,
        lens_readout,
        readout_stats,
        residual_stack,
        solution_predictions,
    )
    from searchprobe.lens.stage import TUNED_LENS_FILE, run_lens  # noqa: F401
    from searchprobe.lens.summary import emergence_layers, role_groups, summarize  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
