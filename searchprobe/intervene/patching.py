"""Batched activation patching: residual stream × position, head outputs, MLP outputs.

The metric is the logit difference at the decision position (last token),
``logit[clean answer] − logit[corrupt answer]``, normalised so 0 = corrupted run, 1 = clean run:
``(LD_patched − LD_corrupt) / (LD_clean − LD_corrupt)`` on pair means (TransformerLens's
convention). Values equal `transformer_lens.patching.get_act_patch_*` (tests compare) but the
sweep is batched in two ways:

* many patch cells per forward — the corrupted batch is stacked once per cell and each copy gets
  its own patch, so one forward evaluates dozens of (layer, position) cells;
* only the layers from the patched one onward run — the forward starts from the cached corrupted
  ``resid_pre`` of that layer and calls the bridge's blocks directly; only the last position is
  unembedded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import torch

from searchprobe.errors import InputError

#: sweep name -> (hook name template, cell axes)
SWEEPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "resid": ("blocks.{layer}.hook_resid_pre", ("layer", "pos")),
    "attn": ("blocks.{layer}.hook_attn_out", ("layer", "pos")),
    "mlp": ("blocks.{layer}.hook_mlp_out", ("layer", "pos")),
    "heads": ("blocks.{layer}.attn.hook_z", ("layer", "head")),
    "heads_pos": ("blocks.{layer}.attn.hook_z", ("layer", "pos", "head")),
}
#: tokens per batched forward (cells × pairs × positions)
DEFAULT_TOKEN_BUDGET = 48_000


@dataclass(eq=False)
class PatchResult:
    """One patching sweep on pairs of one token length.

    values: normalised metric per cell, shaped by `axes` (e.g. (n_layers, T)).
    logit_diff: raw per-pair logit differences per cell, shape ``values.shape + (N,)``.
    clean_ld, corrupt_ld: (N,) unpatched logit differences.
    """

    sweep: str
    hook: str  #: hook name template, verbatim TransformerLens names
    axes: tuple[str, ...]
    values: np.ndarray
    logit_diff: np.ndarray
    clean_ld: np.ndarray
    corrupt_ld: np.ndarray
    roles: np.ndarray | None = None  #: (T,) role codes of the positions (first pair)
    extra: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        flat = np.nan_to_num(self.values).reshape(-1)
        top = np.unravel_index(np.argmax(np.abs(flat)), self.values.shape) if flat.size else ()
        return (f"PatchResult(sweep={self.sweep!r}, axes={self.axes}, shape={self.values.shape}, "
                f"max={tuple(int(i) for i in top)}:{float(self.values[top]) if flat.size else float('nan'):.3f})")


def check_hook(model, name: str) -> None:
    """Raise InputError unless `name` is a hook point of `model`."""
    names = set(model.hook_dict) if hasattr(model, "hook_dict") else set()
    if name not in names:
        close = sorted(n for n in names if n.split(".")[-1] == name.split(".")[-1])[:4]
        raise InputError(f"unknown hook name {name!r}; allowed: TransformerLens hook names of this model, e.g. "
                         f"{', '.join(close) or 'blocks.0.hook_resid_pre'}")


def check_heads(model, heads: Iterable[int], where: str = "heads") -> None:
    n = model.cfg.n_heads
    bad = [int(h) for h in heads if not 0 <= int(h) < n]
    if bad:
        raise InputError(f"head index {bad[0]} in {where} is out of range; allowed: 0..{n - 1} ({n} heads per layer)")


def check_layers(model, layers: Iterable[int], where: str = "layers") -> None:
    n = model.cfg.n_layers
    bad = [int(x) for x in layers if not 0 <= int(x) < n]
    if bad:
        raise InputError(f"layer {bad[0]} in {where} is out of range; allowed: 0..{n - 1} ({n} layers)")


def logit_diff(logits: torch.Tensor, clean_answer: torch.Tensor, corrupt_answer: torch.Tensor) -> torch.Tensor:
    """Per-pair logit[clean answer] − logit[corrupt answer] at the last position: (N,)."""
    last = logits[:, -1] if logits.ndim == 3 else logits
    return last.gather(1, clean_answer[:, None])[:, 0] - last.gather(1, corrupt_answer[:, None])[:, 0]


def normalise(ld: np.ndarray, clean_ld: np.ndarray, corrupt_ld: np.ndarray) -> np.ndarray:
    """Pair-mean normalisation of logit differences (…, N) → (…): 0 corrupted, 1 clean."""
    lo, hi = float(np.mean(corrupt_ld)), float(np.mean(clean_ld))
    denom = hi - lo if abs(hi - lo) > 1e-12 else np.nan
    return (ld.mean(-1) - lo) / denom


def _as_long(x, device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.long, device=device)


def run_suffix(model, resid: torch.Tensor, start_layer: int, last_only: bool = True) -> torch.Tensor:
    """Logits from `resid` = ``resid_pre`` of `start_layer`, running only the blocks from there on."""
    x = resid
    for block in model.blocks[start_layer:]:
        x = block(x)
        if isinstance(x, tuple):
            x = x[0]
    if last_only:
        x = x[:, -1:]
    return model.unembed(model.ln_final(x))[:, -1]


@torch.no_grad()
def patch_sweep(model, clean_tokens, corrupt_tokens, clean_answer, corrupt_answer, sweep: str = "resid",
                layers: Sequence[int] | None = None, positions: Sequence[int] | None = None,
                token_budget: int = DEFAULT_TOKEN_BUDGET, roles: np.ndarray | None = None) -> PatchResult:
    """Patch clean activations into the corrupted run, one cell at a time, many cells per forward.

    Tokens are (N, T) of one length. `sweep` is one of `SWEEPS`. Returns a `PatchResult` whose
    `values` has shape (layers, positions) / (layers, heads) / (layers, positions, heads).
    """
    if sweep not in SWEEPS:
        raise InputError(f"unknown sweep {sweep!r}; allowed: {', '.join(SWEEPS)}")
    device = next(model.parameters()).device
    clean = _as_long(clean_tokens, device)
    corrupt = _as_long(corrupt_tokens, device)
    if clean.shape != corrupt.shape:
        raise InputError(f"clean tokens {tuple(clean.shape)} and corrupted tokens {tuple(corrupt.shape)} differ in shape; "
                         "patching needs pairs of equal token length (build them with the task's make_pairs)")
    ca, xa = _as_long(clean_answer, device), _as_long(corrupt_answer, device)
    N, T = clean.shape
    template, axes = SWEEPS[sweep]
    layers = list(range(model.cfg.n_layers)) if layers is None else [int(x) for x in layers]
    check_layers(model, layers)
    positions = list(range(T)) if positions is None else [int(p) for p in positions]
    bad = [p for p in positions if not 0 <= p < T]
    if bad:
        raise InputError(f"position {bad[0]} is out of range for sequences of {T} tokens; allowed: 0..{T - 1}")
    hooks = [template.format(layer=layer) for layer in layers]
    resid_hooks = [f"blocks.{layer}.hook_resid_pre" for layer in layers]
    wanted = set(hooks) | set(resid_hooks)
    clean_logits, clean_cache = model.run_with_cache(clean, names_filter=lambda n: n in wanted)
    corrupt_logits, corrupt_cache = model.run_with_cache(corrupt, names_filter=lambda n: n in wanted)
    clean_ld = logit_diff(clean_logits, ca, xa)
    corrupt_ld = logit_diff(corrupt_logits, ca, xa)
    n_heads = model.cfg.n_heads
    if axes == ("layer", "pos"):
        cells = [(p,) for p in positions]
    elif axes == ("layer", "head"):
        cells = [(h,) for h in range(n_heads)]
    else:
        cells = [(p, h) for p in positions for h in range(n_heads)]
    per_forward = max(1, token_budget // (N * T))
    out = torch.zeros((len(layers), len(cells), N), dtype=torch.float32)
    for li, (layer, hook, rhook) in enumerate(zip(layers, hooks, resid_hooks)):
        clean_act = clean_cache[hook]
        start = corrupt_cache[rhook]
        for c0 in range(0, len(cells), per_forward):
            chunk = cells[c0 : c0 + per_forward]
            G = len(chunk)
            if sweep == "resid":
                x = start.repeat(G, 1, 1).view(G, N, T, -1).clone()
                pos = torch.tensor([c[0] for c in chunk], device=device)
                x[torch.arange(G, device=device), :, pos] = clean_act[:, pos].transpose(0, 1)
                logits = run_suffix(model, x.view(G * N, T, -1), layer)
            else:
                setter = _cell_setter(axes, chunk, clean_act, G, N, device)
                with model.hooks(fwd_hooks=[(hook, setter)]):
                    logits = run_suffix(model, start.repeat(G, 1, 1), layer)
            ld = logit_diff(logits, ca.repeat(G), xa.repeat(G)).view(G, N)
            out[li, c0 : c0 + G] = ld.float().cpu()
    raw = out.view(len(layers), len(positions), n_heads, N) if len(axes) == 3 else out
    raw_np = raw.numpy()
    cl, co = clean_ld.float().cpu().numpy(), corrupt_ld.float().cpu().numpy()
    return PatchResult(sweep, template, axes, normalise(raw_np, cl, co), raw_np, cl, co,
                       None if roles is None else np.asarray(roles)[:T],
                       {"layers": layers, "positions": positions if "pos" in axes else None})


def _cell_setter(axes, chunk, clean_act, G, N, device):
    """A hook that patches cell i of `chunk` into copy i of the stacked corrupted batch."""
    g = torch.arange(G, device=device)
    if axes == ("layer", "pos"):
        pos = torch.tensor([c[0] for c in chunk], device=device)

        def setter(act, hook):
            act = act.clone().view(G, N, *act.shape[1:])
            act[g, :, pos] = clean_act[:, pos].transpose(0, 1)
            return act.view(G * N, *act.shape[2:])
    elif axes == ("layer", "head"):
        head = torch.tensor([c[0] for c in chunk], device=device)

        def setter(act, hook):
            act = act.clone().view(G, N, *act.shape[1:])
            act[g, :, :, head] = clean_act[:, :, head].permute(2, 0, 1, 3)
            return act.view(G * N, *act.shape[2:])
    else:
        pos = torch.tensor([c[0] for c in chunk], device=device)
        head = torch.tensor([c[1] for c in chunk], device=device)

        def setter(act, hook):
            act = act.clone().view(G, N, *act.shape[1:])
            act[g, :, pos, head] = clean_act[:, pos, head].transpose(0, 1)
            return act.view(G * N, *act.shape[2:])
    return setter


def sweep_pairs(model, pairs, sweep: str = "resid", **options) -> list[PatchResult]:
    """`patch_sweep` over each equal-length group of a `Pairs` (a sweep needs one length)."""
    results = []
    for T, idx in pairs.length_groups().items():
        sub = pairs.subset(idx)
        clean, corrupt = sub.dense()
        result = patch_sweep(model, clean, corrupt, sub.clean_answer, sub.corrupt_answer, sweep,
                             roles=sub.roles[0, :T], **options)
        result.extra["pairs"] = idx
        results.append(result)
    return results
