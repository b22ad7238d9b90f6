"""Goal retargeting: change the model's internal goal and check by rollout where it now goes.

For ``"target"`` pairs (the same input with another goal, from the task's `make_pairs`), at the
goal's token of the clean prompt (`Task.goal_positions`: e.g. a maze's target cell; for a goal
with no fixed token, a class-dependent one such as a board's mating square) and one layer's
``hook_resid_pre``:

* ``patch``: put in the activation of the corrupted side, whose goal is the new one (the
  retargeting intervention);
* ``steer``: add the probe-space difference of the class means of the new and the old goal (a
  goal probe fitted at that layer and at each example's goal token, see `steering.probe_directions`);
* controls: ``random`` — add a random direction of the same norm as the patch's change;
  ``random_steer`` — the same for the steering vector; ``same_target`` — patch from a prompt with
  the same goal but another input (the task's `same_goal_prompts`); ``other_position`` — add the
  steering vector at another token of the goal's kind (the task's `control_positions`).

A task declares the conditions its pairs support (`Task.retarget_conditions`): ``patch`` and
``random`` need a corrupted side whose input states the new goal, which a donorless pair kind
(the same input solved along another line) lacks.

First the unedited model rolls out every clean prompt. Its rollouts settle each pair's old goal
(`Task.orient_goal_pairs`: where an input admits several goals, the old goal is the one the model
pursues and the new goal another) and say which pairs the model *solves* (the rollout reaches the
old goal). Success = the task's `retarget_outcomes` says the rollout reaches the *new* goal,
reported with a Wilson 95% interval; ``old`` says how often it still reaches the old one, and the
first-step rates say whether the first solution step already follows the new goal. Every rate
comes twice: over all pairs (`RetargetResult.new` …, the numbers this module always reported) and
over the solved pairs only (`RetargetResult.solved_new` …, with `RetargetResult.n_solved`):
an intervention counts only where the unedited model solves the input. Both are extra fields, so
neither replaces the other.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from searchprobe.errors import InputError
from searchprobe.intervene.patching import check_layers

#: the pair kind retargeting needs: the same input with another goal
GOAL_PAIR_KIND = "target"
CONDITIONS = ("none", "patch", "random", "same_target", "steer", "random_steer", "other_position")
#: conditions that add the steering vector: they need a goal probe
PROBE_CONDITIONS = ("steer", "random_steer", "other_position")


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
    """Per layer and condition: rate of reaching the new goal (`new`) and the old one (`old`) over
    all `n` pairs, and the same rates over the `n_solved` pairs the unedited model solves
    (``solved_*``; an intervention counts only where the model solved the input)."""

    layers: list
    hook: str
    new: dict  #: {layer: {condition: Rate}}
    old: dict  #: {layer: {condition: Rate}}
    n: int
    probe_source: str
    first_new: dict = None  #: {layer: {condition: Rate}} first solution step = the new solution's
    first_old: dict = None  #: … = the old solution's
    n_solved: int = -1  #: pairs whose unedited rollout reaches the old goal (-1: not computed)
    solved_new: dict = None  #: `new` over the solved pairs only
    solved_old: dict = None  #: `old` over the solved pairs only
    solved_first_new: dict = None  #: `first_new` over the solved pairs (whose first steps differ)
    solved_first_old: dict = None  #: `first_old` over the solved pairs (whose first steps differ)

    def __post_init__(self) -> None:  # optional rates for callers building results by hand
        for name in ("first_new", "first_old", "solved_new", "solved_old", "solved_first_new", "solved_first_old"):
            object.__setattr__(self, name, getattr(self, name) or {})

    def table(self) -> list[list]:
        """Rows: layer, condition, new-goal rate and CI, old-goal rate, first step → new / → old, and
        over the solved pairs: new-goal rate, first step → new (None where a rate is missing)."""
        def rate(rates, layer, cond):
            r = rates.get(layer, {}).get(cond)
            return None if r is None else round(r.rate, 4)

        rows = []
        for layer in self.layers:
            for cond, r in self.new[layer].items():
                rows.append([layer, cond, round(r.rate, 4), round(r.low, 4), round(r.high, 4), round(self.old[layer][cond].rate, 4),
                             rate(self.first_new, layer, cond), rate(self.first_old, layer, cond),
                             rate(self.solved_new, layer, cond), rate(self.solved_first_new, layer, cond)])
        return rows

    def to_dict(self) -> dict:
        def extra(l, c):
            out = {}
            for key, rates in (("first_step_new", self.first_new), ("first_step_old", self.first_old),
                               ("new_target_solved", self.solved_new), ("old_target_solved", self.solved_old),
                               ("first_step_new_solved", self.solved_first_new),
                               ("first_step_old_solved", self.solved_first_old)):
                if c in rates.get(l, {}):
                    out[key] = asdict(rates[l][c])
            return out

        return {"hook": self.hook, "n": self.n, "n_solved": self.n_solved, "probe_source": self.probe_source,
                "layers": {str(l): {c: {"new_target": asdict(self.new[l][c]), "old_target": asdict(self.old[l][c]),
                                        **extra(l, c)}
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


def goal_examples(data, split: str, n: int) -> GoalExamples:
    """The first `n` rows of `split` of a `TaskData` as `GoalExamples` (rollout prompts, goal positions, classes)."""
    task = data.task
    rows = data.rows(split, n, ("roles", *task.goal_columns))
    prompts = data.prompts(rows)
    classes, n_classes = task.goal_classes(rows, data.config)
    classes = np.asarray(classes, dtype=np.int64)
    return GoalExamples(prompts, task.goal_positions(rows["roles"], [len(p) for p in prompts], classes),
                        classes, int(n_classes))


@torch.no_grad()
def retarget(model, data, pairs, layers: Sequence[int] | None = None, probe: GoalExamples | None = None,
             run_dir=None, seed: int = 0, conditions: Sequence[str] | None = None) -> RetargetResult:
    """Retargeting success rates per layer and condition (see the module docstring).

    `data` is the `TaskData` the pairs come from; `pairs` are ``"target"`` pairs of its task
    (`Task.make_pairs(kind="target")`). `conditions` default to the task's `retarget_conditions`.
    `probe` (e.g. `goal_examples(data, "train", 1000)`) trains the goal probe for ``steer``,
    ``random_steer`` and ``other_position``; without it those conditions are skipped. With
    `run_dir`, the probing stage's saved directions of the task's `goal_label` are used if present.
    """
    from searchprobe.intervene.steering import collect, probe_directions

    task = data.task
    if pairs.kind != GOAL_PAIR_KIND:
        raise InputError(f"retargeting needs {GOAL_PAIR_KIND} pairs (same input, another goal), got {pairs.kind!r} pairs")
    supported = tuple(task.retarget_conditions)
    wanted = list(supported) if conditions is None else list(conditions)
    bad = [c for c in wanted if c not in CONDITIONS]
    if bad:
        raise InputError(f"unknown retargeting condition {bad[0]!r}; allowed: {', '.join(CONDITIONS)}")
    bad = [c for c in wanted if c not in supported]
    if bad:
        raise InputError(f"retargeting condition {bad[0]!r} is not available for task {task.name!r}; "
                         f"allowed: {', '.join(supported)}")
    layers = list(range(model.cfg.n_layers)) if layers is None else [int(x) for x in layers]
    check_layers(model, layers, "retarget layers")
    n = len(pairs)
    # the unedited model settles each pair's old goal and says which pairs it solves
    base_gen = _rollout_rows(model, pairs.prompts("clean"), data.stop_id, pairs.max_new, None, "")
    pairs = task.orient_goal_pairs(pairs, base_gen, data.vocab)
    base_out = task.retarget_outcomes(pairs, base_gen, data.vocab)
    solved = np.asarray(base_out["old"], dtype=bool)
    clean_prompts = pairs.prompts("clean")
    old_goal, new_goal = (np.asarray(g, dtype=np.int64) for g in task.pair_goal_classes(pairs))
    tpos = task.goal_positions(pairs.roles, pairs.prompt_len, old_goal)
    rng = np.random.default_rng(seed)
    same_goal = task.same_goal_prompts(pairs, data.tokenizer(), rng) if "same_target" in supported else None
    do_steer = probe is not None and any(c in wanted for c in PROBE_CONDITIONS)
    if not do_steer:
        wanted = [c for c in wanted if c not in PROBE_CONDITIONS]
    other_pos = np.asarray(task.control_positions(pairs, rng), dtype=np.int64) if "other_position" in wanted else None
    new_rates: dict = {}
    old_rates: dict = {}
    first_new: dict = {}
    first_old: dict = {}
    solved_rates: dict = {key: {} for key in ("new", "old", "first_new", "first_old")}
    probe_source = "none"
    template = "blocks.{layer}.hook_resid_pre"
    for layer in layers:
        name = template.format(layer=layer)
        clean_act = _activations(model, clean_prompts, name, tpos)
        src_act = _activations(model, pairs.prompts("corrupt"), name, tpos) if "patch" in supported else None
        ctl_act = _activations(model, same_goal, name, tpos) if same_goal is not None else None
        rand = torch.as_tensor(rng.standard_normal(clean_act.shape), dtype=torch.float32)
        rand = rand / rand.norm(dim=1, keepdim=True)
        vectors: dict[str, torch.Tensor] = {}
        if src_act is not None:
            vectors["random"] = rand * (src_act - clean_act).norm(dim=1, keepdim=True)
        if do_steer:
            probe_x = collect(model, probe.prompts, name, probe.positions)
            directions, probe_source = probe_directions(run_dir if task.goal_label else None, task.goal_label or "goal",
                                                        layer, probe_x, probe.classes, probe.n_classes)
            basis = directions.subspace()
            diff = directions.class_means_[new_goal] - directions.class_means_[old_goal]
            steer = torch.as_tensor((diff @ basis.T) @ basis, dtype=torch.float32)
            vectors["steer"] = vectors["other_position"] = steer
            vectors["random_steer"] = rand * steer.norm(dim=1, keepdim=True)

        def make(cond):
            if cond == "none":
                return None
            at = other_pos if cond == "other_position" else tpos

            def factory(idx):
                rows = torch.as_tensor(idx)
                pos = torch.as_tensor(at[idx])
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
        for rates in solved_rates.values():
            rates[layer] = {}
        for cond in wanted:
            if cond == "none":  # the unedited rollouts above (greedy, so the same as rolling out again)
                out = base_out
            else:
                gen = _rollout_rows(model, clean_prompts, data.stop_id, pairs.max_new, make(cond), name)
                out = task.retarget_outcomes(pairs, gen, data.vocab)
            split = np.asarray(out["first_split"], dtype=bool)
            hit = {key: np.asarray(out[key], dtype=bool) for key in ("new", "old", "first_new", "first_old")}
            new_rates[layer][cond] = wilson(int(hit["new"].sum()), n)
            old_rates[layer][cond] = wilson(int(hit["old"].sum()), n)
            # first steps are informative only where the new and the old solution start differently
            first_new[layer][cond] = wilson(int((hit["first_new"] & split).sum()), int(split.sum()))
            first_old[layer][cond] = wilson(int((hit["first_old"] & split).sum()), int(split.sum()))
            for key in ("new", "old"):
                solved_rates[key][layer][cond] = wilson(int((hit[key] & solved).sum()), int(solved.sum()))
            for key in ("first_new", "first_old"):
                solved_rates[key][layer][cond] = wilson(int((hit[key] & split & solved).sum()), int((split & solved).sum()))
    return RetargetResult(layers, template, new_rates, old_rates, n, probe_source, first_new, first_old,
                          n_solved=int(solved.sum()), solved_new=solved_rates["new"], solved_old=solved_rates["old"],
                          solved_first_new=solved_rates["first_new"], solved_first_old=solved_rates["first_old"])
