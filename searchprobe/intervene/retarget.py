"""Goal retargeting: change the model's internal target and check by rollout where it now goes.

For target pairs (same maze, target t → t'), at the target token of the clean prompt and one
layer's ``hook_resid_pre``:

* ``patch``: put in the activation of the maze with target t' (the retargeting intervention);
* ``steer``: add the probe-space difference of the class means of t' and t (a target probe
  fitted at that layer and position, see `steering.probe_directions`);
* controls: ``random`` — add a random direction of the same norm as the patch's change;
  ``random_steer`` — the same for the steering vector; ``same_target`` — patch from the same
  maze with the same target but another origin.

Success = the rolled-out path is valid, starts at the origin and ends at the *new* target
(`maze_path_metrics(...).reaches_target` against the re-solved path), reported with a Wilson
95% interval; ``old_target`` says how often it still goes to t.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from searchprobe.errors import InputError
from searchprobe.intervene.patching import check_layers
from searchprobe.tasks.maze.tokens import role_code


@dataclass(frozen=True)
class Rate:
    """A success rate with its Wilson score interval."""

    successes: int
    n: int
    rate: float
    low: float
    high: float

    def __repr__(self) -> str:
        return f"Rate({self.successes}/{self.n} = {self.rate:.3f} [{self.low:.3f}, {self.high:.3f}])"


def wilson(successes: int, n: int, z: float = 1.959963984540054) -> Rate:
    """Wilson score interval (95% by default) of successes / n."""
    if n <= 0:
        return Rate(0, 0, float("nan"), float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Rate(int(successes), int(n), p, low, high)


@dataclass(frozen=True)
class RetargetResult:
    """Per layer and condition: rate of reaching the new target (`new`) and the old one (`old`)."""

    layers: list
    hook: str
    new: dict  #: {layer: {condition: Rate}}
    old: dict  #: {layer: {condition: Rate}}
    n: int
    probe_source: str
    first_new: dict = None  #: {layer: {condition: Rate}} first step after the origin = the new path's
    first_old: dict = None  #: … = the old path's

    def __post_init__(self) -> None:  # first-step rates are optional for callers building results by hand
        object.__setattr__(self, "first_new", self.first_new or {})
        object.__setattr__(self, "first_old", self.first_old or {})

    def table(self) -> list[list]:
        rows = []
        for layer in self.layers:
            for cond, r in self.new[layer].items():
                o = self.old[layer][cond]
                fn = self.first_new.get(layer, {}).get(cond)
                fo = self.first_old.get(layer, {}).get(cond)
                rows.append([layer, cond, round(r.rate, 4), round(r.low, 4), round(r.high, 4), round(o.rate, 4),
                             None if fn is None else round(fn.rate, 4), None if fo is None else round(fo.rate, 4)])
        return rows

    def to_dict(self) -> dict:
        return {"hook": self.hook, "n": self.n, "probe_source": self.probe_source,
                "layers": {str(l): {c: {"new_target": asdict(self.new[l][c]), "old_target": asdict(self.old[l][c]),
                                        **({"first_step_new": asdict(self.first_new[l][c]),
                                            "first_step_old": asdict(self.first_old[l][c])} if l in self.first_new else {})}
                                    for c in self.new[l]} for l in self.layers}}


def _rollout_rows(model, prompts: Sequence[np.ndarray], stop_id: int, max_new: int,
                  make_hook: Callable[[np.ndarray], Callable] | None, hook_name: str) -> list[np.ndarray]:
    """Greedy rollouts where the hook for a length group is built from the group's row indices."""
    from searchprobe.train.rollout import greedy_rollout

    out: list[np.ndarray | None] = [None] * len(prompts)
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(len(p), []).append(i)
    for idx in groups.values():
        idx_arr = np.array(idx)
        forward = None
        if make_hook is not None:
            hook = make_hook(idx_arr)

            def forward(tokens, hook=hook):
                with model.hooks(fwd_hooks=[(hook_name, hook)]):
                    return model(tokens)
        gen = greedy_rollout(model, [prompts[i] for i in idx], max_new=max_new, stop_id=stop_id, forward=forward,
                             batch_size=len(idx))
        for i, g in zip(idx, gen):
            out[i] = g
    return out  # type: ignore[return-value]


def _activations(model, prompts, hook_name: str, positions: np.ndarray) -> torch.Tensor:
    from searchprobe.intervene.steering import collect

    return torch.as_tensor(collect(model, prompts, hook_name, positions), dtype=torch.float32)


@torch.no_grad()
def retarget(model, adapter, pairs, tokenizer, layers: Sequence[int] | None = None, probe_prompts=None,
             probe_targets=None, run_dir=None, seed: int = 0, conditions: Sequence[str] | None = None
             ) -> RetargetResult:
    """Retargeting success rates per layer and condition (see the module docstring).

    `pairs` are target pairs (`make_maze_pairs(kind="target")`). `probe_prompts` / `probe_targets`
    (cell ids) train the target probe for ``steer``; without them ``steer`` is skipped.
    """
    from searchprobe.intervene.steering import probe_directions
    from searchprobe.train.rollout import maze_path_metrics

    if pairs.kind != "target":
        raise InputError(f"retargeting needs target pairs (same maze, another target), got {pairs.kind!r} pairs")
    layers = list(range(model.cfg.n_layers)) if layers is None else [int(x) for x in layers]
    check_layers(model, layers, "retarget layers")
    n = len(pairs)
    clean_prompts = pairs.prompts("clean")
    new_prompts = pairs.prompts("corrupt")
    target_role = role_code("target")
    tpos = np.array([int(np.flatnonzero(pairs.roles[i] == target_role)[0]) for i in range(n)])
    opos = np.array([int(np.flatnonzero(pairs.roles[i] == role_code("origin"))[0]) for i in range(n)])
    rng = np.random.default_rng(seed)
    R, C = pairs.clean.n_rows, pairs.clean.n_cols
    same_target_prompts = []
    for i in range(n):
        o = tuple(int(v) for v in pairs.clean.origin[i])
        t = tuple(int(v) for v in pairs.clean.target[i])
        options = [(r, c) for r in range(R) for c in range(C) if (r, c) not in (o, t)]
        cell = options[int(rng.integers(len(options)))]
        p = clean_prompts[i].copy()
        p[opos[i]] = tokenizer.cell_ids[cell]
        same_target_prompts.append(p)
    max_new = R * C + 1
    stop_id = adapter.stop_id
    new_paths = [pairs.corrupt.path[i, : int(pairs.corrupt.path_len[i])] for i in range(n)]
    old_paths = [pairs.clean.path[i, : int(pairs.clean.path_len[i])] for i in range(n)]
    conns = pairs.clean.connections
    wanted = ["none", "patch", "random", "same_target", "steer", "random_steer"] if conditions is None else list(conditions)
    do_steer = probe_prompts is not None and probe_targets is not None and ("steer" in wanted or "random_steer" in wanted)
    if not do_steer:
        wanted = [c for c in wanted if c not in ("steer", "random_steer")]
    new_rates: dict = {}
    old_rates: dict = {}
    first_new: dict = {}
    first_old: dict = {}
    # first steps are informative only where the new and the old path leave the origin differently
    split_first = np.array([len(a) > 1 and len(b) > 1 and tuple(a[1]) != tuple(b[1]) for a, b in zip(new_paths, old_paths)])
    probe_source = "none"
    template = "blocks.{layer}.hook_resid_pre"
    for layer in layers:
        name = template.format(layer=layer)
        clean_act = _activations(model, clean_prompts, name, tpos)
        src_act = _activations(model, new_prompts, name, tpos)
        ctl_act = _activations(model, same_target_prompts, name, tpos)
        delta_norm = (src_act - clean_act).norm(dim=1, keepdim=True)
        rand = torch.as_tensor(rng.standard_normal(clean_act.shape), dtype=torch.float32)
        rand = rand / rand.norm(dim=1, keepdim=True)
        vectors: dict[str, torch.Tensor] = {"random": rand * delta_norm}
        if do_steer:
            ppos = np.array([_target_position(p, tokenizer) for p in probe_prompts])
            probe_x = collect_np(model, probe_prompts, name, ppos)
            probe, probe_source = probe_directions(run_dir, "target_cell", layer, probe_x, probe_targets, R * C)
            basis = probe.subspace()
            t_old = (pairs.clean.target[:, 0] * C + pairs.clean.target[:, 1]).astype(int)
            t_new = (pairs.corrupt.target[:, 0] * C + pairs.corrupt.target[:, 1]).astype(int)
            diff = probe.class_means_[t_new] - probe.class_means_[t_old]
            steer = torch.as_tensor((diff @ basis.T) @ basis, dtype=torch.float32)
            vectors["steer"] = steer
            vectors["random_steer"] = rand * steer.norm(dim=1, keepdim=True)

        def make(cond):
            if cond == "none":
                return None

            def factory(idx):
                rows = torch.as_tensor(idx)
                pos = torch.as_tensor(tpos[idx])
                ar = torch.arange(len(idx))
                if cond in ("patch", "same_target"):
                    value = (src_act if cond == "patch" else ctl_act)[rows]

                    def hook(act, hook):
                        act = act.clone()
                        act[ar, pos] = value.to(device=act.device, dtype=act.dtype)
                        return act
                else:
                    vec = vectors[cond][rows]

                    def hook(act, hook):
                        act = act.clone()
                        act[ar, pos] = act[ar, pos] + vec.to(device=act.device, dtype=act.dtype)
                        return act
                return hook
            return factory

        new_rates[layer], old_rates[layer], first_new[layer], first_old[layer] = {}, {}, {}, {}
        for cond in wanted:
            gen = _rollout_rows(model, clean_prompts, stop_id, max_new, make(cond), name)
            cells, ok = adapter.decode_paths(gen)
            m_new = maze_path_metrics(cells, ok, new_paths, conns)
            m_old = maze_path_metrics(cells, ok, old_paths, conns)
            new_rates[layer][cond] = wilson(round(m_new.reaches_target * n), n)
            old_rates[layer][cond] = wilson(round(m_old.reaches_target * n), n)
            first_new[layer][cond] = wilson(sum(len(c) > 1 and tuple(c[1]) == tuple(int(v) for v in p[1])
                                                for c, p, k in zip(cells, new_paths, split_first) if k), int(split_first.sum()))
            first_old[layer][cond] = wilson(sum(len(c) > 1 and tuple(c[1]) == tuple(int(v) for v in p[1])
                                                for c, p, k in zip(cells, old_paths, split_first) if k), int(split_first.sum()))
    return RetargetResult(layers, template, new_rates, old_rates, n, probe_source, first_new, first_old)


def _target_position(prompt: np.ndarray, tokenizer) -> int:
    """Index of the target cell token: the token after <TARGET_START>."""
    start = tokenizer.token_to_id["<TARGET_START>"]
    hits = np.flatnonzero(np.asarray(prompt) == start)
    if not len(hits):
        raise InputError("a probe prompt has no <TARGET_START> token; pass maze prompts")
    return int(hits[0]) + 1


def collect_np(model, prompts, name, positions) -> np.ndarray:
    from searchprobe.intervene.steering import collect

    return collect(model, prompts, name, positions)
