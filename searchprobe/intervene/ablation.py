"""Zero, mean and resample ablation of heads, MLPs and whole layers, scored by rollouts.

An ablation replaces a component's output during every forward of a greedy rollout:

* ``zero``: by 0;
* ``mean``: by its mean over the reference prompts (all positions), so the scale stays typical;
* ``resample``: by its value on another example's sequence at the same position (a fixed
  derangement of the batch, run alongside), which keeps it on the data distribution.

A head is its slice of ``attn.hook_z``; an MLP its ``hook_mlp_out``; a layer both
``hook_attn_out`` and ``hook_mlp_out`` of the block. Effects are measured on the task's rollout
metrics (`Task.score_rollouts`; for a maze: exact path, valid steps, reaches target) — not only
next-token loss.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from searchprobe.errors import InputError
from searchprobe.intervene.patching import check_heads, check_layers

METHODS = ("zero", "mean", "resample")
COMPONENTS = ("head", "mlp", "layer")


@dataclass(frozen=True)
class Ablation:
    """One component to ablate: `component` in head/mlp/layer, `layer`, `head` (heads only), `method`."""

    component: str
    layer: int
    head: int | None = None
    method: str = "mean"

    def __post_init__(self) -> None:
        if self.component not in COMPONENTS:
            raise InputError(f"unknown ablation component {self.component!r}; allowed: {', '.join(COMPONENTS)}")
        if self.method not in METHODS:
            raise InputError(f"unknown ablation method {self.method!r}; allowed: {', '.join(METHODS)}")
        if (self.component == "head") != (self.head is not None):
            raise InputError(f"ablation of a {self.component} {'needs' if self.component == 'head' else 'takes no'} head index")

    @property
    def label(self) -> str:
        where = f"L{self.layer}H{self.head}" if self.component == "head" else f"{self.component.upper()}{self.layer}"
        return f"{where}:{self.method}"

    def hook_names(self) -> list[str]:
        if self.component == "head":
            return [f"blocks.{self.layer}.attn.hook_z"]
        if self.component == "mlp":
            return [f"blocks.{self.layer}.hook_mlp_out"]
        return [f"blocks.{self.layer}.hook_attn_out", f"blocks.{self.layer}.hook_mlp_out"]


def all_ablations(model, components: Sequence[str] = COMPONENTS, methods: Sequence[str] = ("mean",)) -> list[Ablation]:
    """Every component of `components` under every method of `methods`, layer by layer (MLPs only
    where the model has them). `model` is a model or its config (``n_layers``, ``n_heads``,
    ``attn_only``), so a stage can list the ablations before it loads any weights."""
    for what, values, allowed in (("component", components, COMPONENTS), ("method", methods, METHODS)):
        bad = [x for x in values if x not in allowed]
        if bad:
            raise InputError(f"unknown ablation {what} {bad[0]!r}; allowed: {', '.join(allowed)}")
    cfg = getattr(model, "cfg", model)
    out = []
    for method in methods:
        for layer in range(cfg.n_layers):
            if "head" in components:
                out += [Ablation("head", layer, h, method) for h in range(cfg.n_heads)]
            if "mlp" in components and not getattr(cfg, "attn_only", False):
                out.append(Ablation("mlp", layer, None, method))
            if "layer" in components:
                out.append(Ablation("layer", layer, None, method))
    return out


@torch.no_grad()
def mean_activations(model, prompts: Sequence[np.ndarray], names: Sequence[str], batch_size: int = 128
                     ) -> dict[str, torch.Tensor]:
    """Mean of each hook's activation over every real position of every prompt (pads left out)."""
    from searchprobe.acts import padded_batches

    device = next(model.parameters()).device
    sums: dict[str, torch.Tensor] = {}
    count = 0
    for _, batch, lengths in padded_batches(prompts, batch_size):
        real = torch.as_tensor(np.arange(batch.shape[1])[None, :] < lengths[:, None], device=device)
        with torch.no_grad():
            _, cache = model.run_with_cache(torch.as_tensor(batch, device=device), names_filter=lambda n: n in set(names))
        for n in names:
            act = cache[n]
            s = (act * real.reshape(real.shape + (1,) * (act.ndim - 2))).sum(dim=(0, 1))
            sums[n] = sums[n] + s if n in sums else s
        count += int(lengths.sum())
    return {n: s / count for n, s in sums.items()}


def ablated_forward(model, ablation: Ablation, means: dict[str, torch.Tensor] | None = None,
                    seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """A `forward(tokens) -> logits` for `greedy_rollout` with `ablation` applied."""
    check_layers(model, [ablation.layer], f"ablation {ablation.label}")
    if ablation.head is not None:
        check_heads(model, [ablation.head], f"ablation {ablation.label}")
    names = ablation.hook_names()
    if ablation.method == "mean" and (means is None or any(n not in means for n in names)):
        raise InputError(f"mean ablation {ablation.label} needs mean activations for {', '.join(names)} (mean_activations)")
    head = ablation.head

    def replace(name: str, source: dict[str, torch.Tensor] | None):
        def hook(act, hook):
            act = act.clone()
            if ablation.method == "zero":
                value = torch.zeros_like(act)
            elif ablation.method == "mean":
                value = means[name].expand_as(act)
            else:
                value = source[name]
            if head is None:
                return value.clone() if ablation.method != "zero" else value
            act[:, :, head] = value[:, :, head]
            return act
        return hook

    def forward(tokens: torch.Tensor) -> torch.Tensor:
        source = None
        if ablation.method == "resample":
            perm = _derangement(tokens.shape[0], seed)
            source = {}

            def grab(name):
                def hook(act, hook):
                    source[name] = act.detach()
                    return act
                return hook

            with model.hooks(fwd_hooks=[(n, grab(n)) for n in names]):
                model(tokens[perm])
        with model.hooks(fwd_hooks=[(n, replace(n, source)) for n in names]):
            return model(tokens)

    return forward


def _derangement(n: int, seed: int) -> torch.Tensor:
    """A fixed permutation of range(n) with no fixed point (n >= 2): a random cyclic shift of a shuffle."""
    if n < 2:
        return torch.zeros(n, dtype=torch.long)
    rng = np.random.default_rng(seed + n)
    order = rng.permutation(n)
    perm = np.empty(n, dtype=np.int64)
    perm[order] = np.roll(order, 1)
    return torch.as_tensor(perm)


@dataclass(frozen=True)
class AblationResult:
    """Rollout metrics of the intact model and of each ablation (the task's `score_rollouts` dicts)."""

    baseline: dict
    rows: list  #: [(Ablation, metrics dict)]

    def table(self, metric: str) -> list[list]:
        """[[label, component, layer, head, method, metric, change vs intact], …]."""
        if metric not in self.baseline:
            raise InputError(f"unknown rollout metric {metric!r}; allowed: {', '.join(self.baseline)}")
        base = self.baseline[metric]
        return [[a.label, a.component, a.layer, a.head, a.method, round(m[metric], 4), round(m[metric] - base, 4)]
                for a, m in self.rows]

    def to_dict(self) -> dict:
        return {"baseline": self.baseline, "ablations": [{**asdict(a), "label": a.label, "metrics": m} for a, m in self.rows]}


def rollout_metrics(model, data, rows, forward=None) -> dict:
    """Greedy rollouts of dataset rows (`TaskData.rollout_rows`) scored by the task of `data` (a
    `TaskData`). All prompts of one length go in one batch, so ``resample`` draws across them."""
    return data.rollout_metrics(model, rows, forward=forward, batch_size=max(1, len(rows["tokens"])))


def ablation_sweep(model, data, rows, ablations: Sequence[Ablation], seed: int = 0, progress: bool = False
                   ) -> AblationResult:
    """Rollout metrics with each ablation in turn (means taken over the rows' prompts); `data` is the
    `TaskData` the rows (`data.rollout_rows(split, n)`) come from."""
    names = sorted({n for a in ablations if a.method == "mean" for n in a.hook_names()})
    means = mean_activations(model, data.prompts(rows), names) if names else {}
    baseline = rollout_metrics(model, data, rows)
    out = []
    iterator = ablations
    if progress:
        from tqdm import tqdm

        iterator = tqdm(ablations, desc="ablations")
    for a in iterator:
        out.append((a, rollout_metrics(model, data, rows, forward=ablated_forward(model, a, means, seed))))
    return AblationResult(baseline, out)
