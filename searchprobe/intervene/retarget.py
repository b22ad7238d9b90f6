"""Goal retargeting: change the model's internal goal and check by rollout where it now goes.

For ``"target"`` pairs (the same input with another goal, from the task's `make_pairs`), at the
goal token of the clean prompt (the position of the task's `goal_role`, e.g. a maze's target
cell) and one layer's ``hook_resid_pre``:

* ``patch``: put in the activation of the corrupted side, whose goal is the new one (the
  retargeting intervention);
* ``steer``: add the probe-space difference of the class means of the new and the old goal (a
  goal probe fitted at that layer and position, see `steering.probe_directions`);
* controls: ``random`` — add a random direction of the same norm as the patch's change;
  ``random_steer`` — the same for the steering vector; ``same_target`` — patch from a prompt with
  the same goal but another input (the task's `same_goal_prompts`).

Success = the task's `retarget_outcomes` says the rollout reaches the *new* goal, reported with a
Wilson 95% interval; ``old`` says how often it still reaches the old one, and the first-step
rates say whether the first solution step already follows the new goal.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from searchprobe.errors import DataError, InputError
from searchprobe.intervene.patching import check_layers

#: the pair kind retargeting needs: the same input with another goal
GOAL_PAIR_KIND = "target"
CONDITIONS = ("none", "patch", "random", "same_target", "steer", "random_steer")


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
    """Per layer and condition: rate of reaching the new goal (`new`) and the old one (`old`)."""

    layers: list
    hook: str
    new: dict  #: {layer: {condition: Rate}}
    old: dict  #: {layer: {condition: Rate}}
    n: int
    probe_source: str
    first_new: dict = None  #: {layer: {condition: Rate}} first solution step = the new solution's
    first_old: dict = None  #: … = the old solution's

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


@dataclass(frozen=True, eq=False)
class GoalExamples:
    """Prompts with the goal's position and class: what a goal probe (steering) or eraser is fitted on."""

    prompts: list  #: int64 token arrays
    positions: np.ndarray  #: (n,) index of the goal-role token in each prompt
    classes: np.ndarray  #: (n,) goal class (the task's `goal_classes`)
    n_classes: int

    def __len__(self) -> int:
        return len(self.prompts)


def goal_positions(task, roles: Sequence[np.ndarray], limits: Sequence[int] | None = None) -> np.ndarray:
    """Index of the first token of the task's `goal_role` in each role sequence (before `limits`)."""
    code = task.role_code(task.goal_role())
    out = []
    for i, r in enumerate(roles):
        r = np.asarray(r)
        hits = np.flatnonzero(r[: None if limits is None else int(limits[i])] == code)
        if not len(hits):
            raise DataError(f"prompt {i} has no {task.goal_role()!r} token, where task {task.name!r} states the goal")
        out.append(int(hits[0]))
    return np.array(out, dtype=np.int64)


def goal_examples(data, split: str, n: int) -> GoalExamples:
    """The first `n` rows of `split` of a `TaskData` as `GoalExamples` (rollout prompts, goal positions, classes)."""
    task = data.task
    rows = data.rows(split, n, ("roles", *task.goal_columns))
    prompts = data.prompts(rows)
    classes, n_classes = task.goal_classes(rows, data.config)
    return GoalExamples(prompts, goal_positions(task, rows["roles"], [len(p) for p in prompts]),
                        np.asarray(classes, dtype=np.int64), int(n_classes))


@torch.no_grad()
def retarget(model, data, pairs, layers: Sequence[int] | None = None, probe: GoalExamples | None = None,
             run_dir=None, seed: int = 0, conditions: Sequence[str] | None = None) -> RetargetResult:
    """Retargeting success rates per layer and condition (see the module docstring).

    `data` is the `TaskData` the pairs come from; `pairs` are ``"target"`` pairs of its task
    (`Task.make_pairs(kind="target")`). `probe` (e.g. `goal_examples(data, "train", 1000)`) trains
    the goal probe for ``steer`` / ``random_steer``; without it those conditions are skipped. With
    `run_dir`, the probing stage's saved directions of the task's `goal_label` are used if present.
    """
    from searchprobe.intervene.steering import collect, probe_directions

    task = data.task
    if pairs.kind != GOAL_PAIR_KIND:
        raise InputError(f"retargeting needs {GOAL_PAIR_KIND} pairs (same input, another goal), got {pairs.kind!r} pairs")
    wanted = list(CONDITIONS) if conditions is None else list(conditions)
    bad = [c for c in wanted if c not in CONDITIONS]
    if bad:
        raise InputError(f"unknown retargeting condition {bad[0]!r}; allowed: {', '.join(CONDITIONS)}")
    layers = list(range(model.cfg.n_layers)) if layers is None else [int(x) for x in layers]
    check_layers(model, layers, "retarget layers")
    n = len(pairs)
    clean_prompts = pairs.prompts("clean")
    new_prompts = pairs.prompts("corrupt")
    tpos = goal_positions(task, pairs.roles, pairs.prompt_len)
    rng = np.random.default_rng(seed)
    same_goal = task.same_goal_prompts(pairs, data.tokenizer(), rng)
    do_steer = probe is not None and ("steer" in wanted or "random_steer" in wanted)
    if not do_steer:
        wanted = [c for c in wanted if c not in ("steer", "random_steer")]
    new_rates: dict = {}
    old_rates: dict = {}
    first_new: dict = {}
    first_old: dict = {}
    probe_source = "none"
    template = "blocks.{layer}.hook_resid_pre"
    for layer in layers:
        name = template.format(layer=layer)
        clean_act = _activations(model, clean_prompts, name, tpos)
        src_act = _activations(model, new_prompts, name, tpos)
        ctl_act = _activations(model, same_goal, name, tpos)
        delta_norm = (src_act - clean_act).norm(dim=1, keepdim=True)
        rand = torch.as_tensor(rng.standard_normal(clean_act.shape), dtype=torch.float32)
        rand = rand / rand.norm(dim=1, keepdim=True)
        vectors: dict[str, torch.Tensor] = {"random": rand * delta_norm}
        if do_steer:
            probe_x = collect(model, probe.prompts, name, probe.positions)
            directions, probe_source = probe_directions(run_dir if task.goal_label else None, task.goal_label or "goal",
                                                        layer, probe_x, probe.classes, probe.n_classes)
            basis = directions.subspace()
            old_goal, new_goal = task.pair_goal_classes(pairs)
            diff = directions.class_means_[np.asarray(new_goal)] - directions.class_means_[np.asarray(old_goal)]
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
            gen = _rollout_rows(model, clean_prompts, data.stop_id, pairs.max_new, make(cond), name)
            out = task.retarget_outcomes(pairs, gen, data.vocab)
            split = np.asarray(out["first_split"], dtype=bool)
            new_rates[layer][cond] = wilson(int(np.sum(out["new"])), n)
            old_rates[layer][cond] = wilson(int(np.sum(out["old"])), n)
            # first steps are informative only where the new and the old solution start differently
            first_new[layer][cond] = wilson(int(np.sum(np.asarray(out["first_new"], dtype=bool) & split)), int(split.sum()))
            first_old[layer][cond] = wilson(int(np.sum(np.asarray(out["first_old"], dtype=bool) & split)), int(split.sum()))
    return RetargetResult(layers, template, new_rates, old_rates, n, probe_source, first_new, first_old)
