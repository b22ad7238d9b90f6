"""The `patch` stage: patching sweeps, attribution patching, ablations and retargeting on a run.

Works for any task whose `Task` builds counterfactual pairs (``pair_kinds``, ``make_pairs``);
goal retargeting and erasure also need its goal methods (``goal_site``, ``goal_positions``, ``goal_classes``, …).
Every option is checked against the run's config and task before a model is loaded or a file
written. Writes ``<run_dir>/patching/``: ``maps.npz`` (every map, with hook names and axis
labels), ``results.json`` (all numbers), PNG heat maps and bar charts, and ``report.json`` (the
report contract: stage, title, summary, sections with figures and tables).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from searchprobe.errors import DataError, InputError
from searchprobe.files import read_json
from searchprobe.io import atomic_write_bytes, atomic_write_json

SWEEP_CHOICES = ("resid", "heads", "mlp", "attn")


def solution_keys(task) -> list[str]:
    """Role-aligned map columns of solution tokens, counted back from the decision (``path[-1]`` …)."""
    name = task.solution_name
    return [f"{name}[earlier]", f"{name}[-3]", f"{name}[-2]", f"{name}[-1]"]


def position_key(task, role: int, pos: int, length: int, prompt_len: int) -> str:
    """Column of the role-aligned map: a prompt role name, or a solution token counted back from the decision."""
    if pos < prompt_len:
        return task.role_name(int(role))
    back = length - pos
    return f"{task.solution_name}[-{back}]" if back <= 3 else f"{task.solution_name}[earlier]"


def role_keys(task, pairs) -> list[str]:
    """The prompt roles present in the pairs, by role code, then the `solution_keys`."""
    codes = sorted({int(c) for i in range(len(pairs)) for c in pairs.roles[i, : int(pairs.prompt_len[i])]})
    names = list(dict.fromkeys(task.role_name(c) for c in codes))
    return names + solution_keys(task)


def role_aligned(results, pairs, task):
    """Combine per-length sweep results into a (layers, keys) map normalised over all pairs."""
    keys = role_keys(task, pairs)
    per_key: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    clean, corrupt = [], []
    for res in results:
        idx = res.extra["pairs"]
        T = res.logit_diff.shape[1]
        prompt_len = int(pairs.prompt_len[idx[0]])
        cols = [position_key(task, res.roles[p], p, T, prompt_len) for p in range(T)]
        for k in keys:
            mask = np.array([c == k for c in cols])
            block = res.logit_diff[:, mask].mean(1) if mask.any() else np.full((res.logit_diff.shape[0], len(idx)), np.nan)
            per_key[k].append(block)
        clean.append(res.clean_ld)
        corrupt.append(res.corrupt_ld)
    cl, co = np.concatenate(clean), np.concatenate(corrupt)
    values = np.stack([_nan_normalise(np.concatenate(per_key[k], axis=1), cl, co) for k in keys], axis=1)
    present = ~np.all(np.isnan(values), axis=0)
    return values[:, present], [k for k, p in zip(keys, present) if p]


def _nan_normalise(ld, cl, co):
    ok = ~np.isnan(ld[0])
    if not ok.any():
        return np.full(ld.shape[0], np.nan)
    from searchprobe.intervene.patching import normalise

    return normalise(ld[:, ok], cl[ok], co[ok])


def combine_over_pairs(results) -> np.ndarray:
    """(layers, heads) map normalised over all pairs of all length groups."""
    from searchprobe.intervene.patching import normalise

    raw = np.concatenate([r.logit_diff for r in results], axis=-1)
    return normalise(raw, np.concatenate([r.clean_ld for r in results]), np.concatenate([r.corrupt_ld for r in results]))


def _heatmap(path: Path, values: np.ndarray, xlabels, ylabels, title: str, xlabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import io as _io

    import matplotlib.pyplot as plt

    width = min(18, max(7.5, 0.22 * len(xlabels) + 2))
    fig, ax = plt.subplots(figsize=(width, 0.5 * len(ylabels) + 2))
    lim = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    im = ax.imshow(values, cmap="RdBu", vmin=-max(lim, 1e-6), vmax=max(lim, 1e-6), aspect="auto")
    ax.set_xticks(range(len(xlabels)))
    ax.set_xticklabels(xlabels, rotation=90, fontsize=6 if len(xlabels) > 30 else 8)
    ax.set_yticks(range(len(ylabels)))
    ax.set_yticklabels(ylabels)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="normalised logit diff (0 corrupt, 1 clean)")
    fig.tight_layout()
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _bars(path: Path, labels, values, title: str, ylabel: str, errors=None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import io as _io

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(min(16, max(5, 0.35 * len(labels) + 2)), 3.5))
    ax.bar(range(len(labels)), values, yerr=errors, color="tab:blue", capsize=2)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=90, fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.axhline(0, color="black", lw=0.5)
    fig.tight_layout()
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


@dataclass(frozen=True)
class _Plan:
    """The checked options of one `run_patching` call."""

    task: Any
    model_cfg: Any
    ablations: list
    pairs: str  #: the pair kind (the task's first kind with a corrupted input when none was named)


def _positive(**counts: Any) -> None:
    bad = {k: v for k, v in counts.items() if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0}
    if bad:
        raise InputError("pair and example counts must be positive integers, got "
                         + ", ".join(f"{k}={v!r}" for k, v in bad.items()))


def _in_range(values, n: int, what: str, where: str) -> None:
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= int(v) < n]
    if bad:
        raise InputError(f"{what} {bad[0]!r} in {where} is out of range; allowed: 0..{n - 1} ({n} {what}s)")


def _plan(run_dir: Path, *, pairs, n, sweeps, ablate, retarget, n_ablate, ablation_methods, ablation_components,
          n_retarget, retarget_layers, n_probe, heads, erase, erase_layers) -> _Plan:
    """Check every option (against the run's config.json and task) before anything is loaded or written."""
    from searchprobe.config import from_dict
    from searchprobe.intervene.ablation import COMPONENTS, METHODS, Ablation, all_ablations
    from searchprobe.intervene.retarget import GOAL_PAIR_KIND
    from searchprobe.tasks.base import task_of
    from searchprobe.train.model import ModelConfig

    if isinstance(sweeps, str):
        raise InputError(f"sweeps must be a list of sweep names, got the string {sweeps!r}")
    bad = [s for s in sweeps if s not in SWEEP_CHOICES]
    if bad:
        raise InputError(f"--sweeps has unknown sweep {bad[0]!r}; allowed: {', '.join(SWEEP_CHOICES)}")
    _positive(n=n, n_ablate=n_ablate, n_retarget=n_retarget, n_probe=n_probe)
    for what, values, allowed, flag in (("method", ablation_methods, METHODS, "--ablation-methods"),
                                        ("component", ablation_components, COMPONENTS, "ablation_components")):
        if isinstance(values, str):
            raise InputError(f"{flag} must be a list, got the string {values!r}")
        bad = [v for v in values if v not in allowed]
        if bad:
            raise InputError(f"{flag} has unknown ablation {what} {bad[0]!r}; allowed: {', '.join(allowed)}")
    if ablate and not ablation_methods:
        raise InputError(f"ablation needs at least one method; allowed: {', '.join(METHODS)}")
    heads = list(heads or [])
    if any(not isinstance(h, (tuple, list)) or len(h) != 2 for h in heads):
        raise InputError(f"--heads takes (layer, head) pairs, got {heads!r}")
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise DataError(f"{run_dir} is not a run directory: config.json is missing")
    config = read_json(config_path)
    task = task_of(config, f"{config_path}")
    model_cfg = from_dict(ModelConfig, config.get("model", {}), f"{config_path} [model]")
    if pairs is None:  # the first kind with a corrupted input (what sweeps patch from), else the first
        pairs = next((k for k in task.pair_kinds if k not in task.donorless_pair_kinds), (task.pair_kinds or (None,))[0])
    task.check_pair_kind(pairs)
    if sweeps and pairs in task.donorless_pair_kinds:
        donors = [k for k in task.pair_kinds if k not in task.donorless_pair_kinds]
        raise InputError(f"task {task.name!r} builds {pairs!r} pairs without a corrupted input (the same input, another "
                         f"goal), so there is nothing to patch: sweep pairs of kind "
                         f"{' or '.join(map(repr, donors)) or '(none)'}, or pass no sweeps")
    L = model_cfg.n_layers
    _in_range([l for l, _ in heads], L, "layer", "--heads")
    _in_range([h for _, h in heads], model_cfg.n_heads, "head", "--heads")
    if retarget_layers is not None:
        _in_range(list(retarget_layers), L, "layer", "retarget layers")
    if erase_layers is not None:
        _in_range(list(erase_layers), L, "layer", "erase layers")
    ablations: list = []
    if ablate:
        if not task.primary_metrics:
            raise InputError(f"task {task.name!r} names no rollout metrics (primary_metrics); ablations cannot be scored")
        if heads:
            ablations = [Ablation("head", int(l), int(h), m) for m in ablation_methods for l, h in heads]
        else:
            ablations = all_ablations(model_cfg, ablation_components, ablation_methods)
        if not ablations:
            raise InputError(f"no component to ablate: ablation_components={list(ablation_components)!r} on a model with "
                             f"{'no MLPs' if model_cfg.attn_only else 'these components'}; allowed: {', '.join(COMPONENTS)}")
    if retarget and GOAL_PAIR_KIND not in task.pair_kinds:
        raise InputError(f"goal retargeting needs {GOAL_PAIR_KIND!r} pairs, which task {task.name!r} does not build "
                         f"(its pair kinds: {', '.join(task.pair_kinds)}); turn retargeting off")
    if retarget or erase:
        task.goal_site()  # the task's own one-line error when it has no goal
    if erase and not task.primary_metrics:
        raise InputError(f"task {task.name!r} names no rollout metrics (primary_metrics); erasure cannot be scored")
    return _Plan(task, model_cfg, ablations, pairs)


def _label(metric: str) -> str:
    return metric.replace("_", " ")


#: report words per retargeting condition
RETARGET_WORDS = {
    "none": "none = no intervention",
    "patch": "patch = the activation of the same input with another goal",
    "random": "random = a random direction of the patch's norm",
    "same_target": "same_target = the activation of an input with the same goal",
    "steer": "steer = the goal probe's class-mean difference (new − old goal)",
    "random_steer": "random_steer = a random direction of the steering vector's norm",
    "other_position": "other_position = the steering vector at another token of the goal's kind",
}
#: the intervention of a retargeting summary and its controls, by preference
_SUMMARY_PLANS = (("patch", ("random", "same_target")), ("steer", ("random_steer", "other_position")))
_SUMMARY_NAMES = {"same_target": "same-goal"}


def _retarget_summary(ret, conds) -> str:
    """One summary line: the main intervention against its controls at its best layer, over all pairs
    and over the pairs the unedited model solves."""
    main, controls = next(((m, c) for m, c in _SUMMARY_PLANS if m in conds), (conds[0], ()))
    controls = [c for c in controls if c in conds]
    best = max(ret.layers, key=lambda l: ret.new[l][main].rate)
    b, fb = ret.new[best], ret.first_new[best]
    name = lambda c: _SUMMARY_NAMES.get(c, c)  # noqa: E731
    text = (f"retargeting at L{best}: reaches new goal, {main} {b[main].rate:.2f} [{b[main].low:.2f}, {b[main].high:.2f}]"
            + (" vs " + ", ".join(f"{name(c)} {b[c].rate:.2f}" for c in controls) if controls else "")
            + f"; first step toward the new goal, {main} {fb[main].rate:.2f}"
            + (" vs " + ", ".join(f"{name(c)} {fb[c].rate:.2f}" for c in controls + (["none"] if "none" in conds else []))
               if controls or "none" in conds else ""))
    sb = ret.solved_new.get(best, {})
    if ret.n_solved == 0:
        text += "; the unedited model solves none of the pairs"
    elif main in sb:
        text += (f"; among the {ret.n_solved} pairs the unedited model solves, {main} {sb[main].rate:.2f}"
                 + "".join(f", {name(c)} {sb[c].rate:.2f}" for c in controls))
    return text


def run_patching(run_dir: str | Path, *, pairs: str | None = None, n: int = 32, sweeps: Sequence[str] = ("resid", "heads", "mlp"),
                 ablate: bool = True, retarget: bool = True, split: str = "test", seed: int = 0, n_ablate: int = 64,
                 ablation_methods: Sequence[str] = ("mean",), ablation_components: Sequence[str] = ("head", "mlp", "layer"),
                 n_retarget: int = 32, retarget_layers: Sequence[int] | None = None, n_probe: int = 1000,
                 heads: Sequence[tuple[int, int]] | None = None, attribution: bool = True, erase: bool = False,
                 erase_layers: Sequence[int] | None = None, data: str | Path | None = None, progress: bool = True) -> Path:
    """Run the patching stage on a trained run of any task with counterfactual pairs; returns ``<run_dir>/patching``.

    `pairs` is one of the task's ``pair_kinds`` (default: its first kind with a corrupted input, e.g.
    a maze's ``"target"``); `sweeps` of ``SWEEP_CHOICES``. Ablations (every
    component of `ablation_components`, or only `heads`) are scored by `n_ablate` rollouts on the
    task's metrics; retargeting uses `n_retarget` ``"target"`` pairs and a goal probe fitted on
    `n_probe` training examples; `erase` LEACE-erases the goal at `erase_layers`.
    """
    import torch

    from searchprobe.intervene.ablation import ablation_sweep
    from searchprobe.intervene.attribution import attribution_sweep, correlation
    from searchprobe.intervene.patching import patch_sweep, sweep_pairs
    from searchprobe.intervene.retarget import GOAL_PAIR_KIND, goal_examples
    from searchprobe.intervene.retarget import retarget as retarget_fn
    from searchprobe.train.run import load_run

    start = time.perf_counter()
    run_dir = Path(run_dir)
    plan = _plan(run_dir, pairs=pairs, n=n, sweeps=sweeps, ablate=ablate, retarget=retarget, n_ablate=n_ablate,
                 ablation_methods=ablation_methods, ablation_components=ablation_components, n_retarget=n_retarget,
                 retarget_layers=retarget_layers, n_probe=n_probe, heads=heads, erase=erase, erase_layers=erase_layers)
    pairs = plan.pairs
    run = load_run(run_dir, data)
    task, task_data, model, tokenizer = run.task, run.data, run.model, run.tokenizer
    task_data.split(split)
    if retarget or erase:
        task_data.split("train")
    # data work that can still fail on the dataset, before anything is written
    pair_set = task.make_pairs(run.dataset, tokenizer, split=split, kind=pairs, n=n, seed=seed)
    tpairs = probe = None
    if retarget:
        tpairs = pair_set if pairs == GOAL_PAIR_KIND and len(pair_set) >= n_retarget else \
            task.make_pairs(run.dataset, tokenizer, split=split, kind=GOAL_PAIR_KIND, n=n_retarget, seed=seed + 1)
        tpairs = tpairs.subset(np.arange(min(n_retarget, len(tpairs))))
    if retarget or erase:
        probe = goal_examples(task_data, "train", n_probe)
    ablation_rows = task_data.rollout_rows(split, n_ablate) if plan.ablations else None
    erase_rows = erase_at = None
    if erase:
        erase_rows = task_data.rows(split, n_ablate, tuple(dict.fromkeys((*task.rollout_columns, "roles", *task.goal_columns))))
        erase_classes, _ = task.goal_classes(erase_rows, task_data.config)
        erase_at = task.goal_positions(erase_rows["roles"], [len(p) for p in task_data.prompts(erase_rows)], erase_classes)
        if len(np.unique(erase_at)) > 1:
            raise InputError(f"erasure needs the goal at one position in every prompt; task {task.name!r} places it at "
                             f"{len(np.unique(erase_at))} positions ({task.goal_site()}): run without erasure")

    torch.manual_seed(seed)
    out = run_dir / "patching"
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"run_dir": str(run_dir), "task": task.name, "pairs": pairs, "split": split, "seed": seed}
    arrays: dict[str, np.ndarray] = {}
    sections: list[dict] = []
    L = model.cfg.n_layers
    layer_labels = [f"L{l}" for l in range(L)]
    summary_bits = []
    sol = task.solution_name

    results["n_pairs"] = len(pair_set)
    results["length_groups"] = {str(k): len(v) for k, v in pair_set.length_groups().items()}
    for sweep in sweeps:
        t0 = time.perf_counter()
        res = sweep_pairs(model, pair_set, sweep)
        seconds = time.perf_counter() - t0
        hook = res[0].hook
        if sweep in ("resid", "mlp", "attn"):
            values, keys = role_aligned(res, pair_set, task)
            biggest = max(res, key=lambda r: r.logit_diff.shape[-1])
            pos_labels = [task.role_name(r) for r in biggest.roles]
            arrays[f"{sweep}_role_map"] = values
            arrays[f"{sweep}_role_keys"] = np.array(keys)
            arrays[f"{sweep}_position_map"] = biggest.values
            arrays[f"{sweep}_position_roles"] = biggest.roles
            _heatmap(out / f"{sweep}_roles.png", values, keys, layer_labels,
                     f"{sweep} patching ({hook}), {pairs} pairs, n={len(pair_set)}", "position (role)")
            _heatmap(out / f"{sweep}_positions.png", biggest.values, pos_labels, layer_labels,
                     f"{sweep} patching by position, {biggest.logit_diff.shape[-1]} pairs of {len(pos_labels)} tokens",
                     "position")
            flat = [(layer_labels[l], keys[k], float(values[l, k])) for l in range(L) for k in range(len(keys))]
            top = sorted(flat, key=lambda x: -abs(x[2]) if np.isfinite(x[2]) else 0)[:8]
            results[sweep] = {"hook": hook, "keys": keys, "values": np.round(values, 4), "seconds": round(seconds, 2),
                              "top_cells": top}
            figures = [{"path": f"{sweep}_roles.png", "caption": f"layer × position role, {hook}"},
                       {"path": f"{sweep}_positions.png", "caption": "layer × position for the largest equal-length group"}]
            table = {"caption": f"strongest {sweep} cells (normalised: 1 = clean restored)",
                     "columns": ["layer", "position", "value"], "rows": [[a, b, round(c, 4)] for a, b, c in top]}
            if sweep == "resid":
                summary_bits.append("residual patching: " + ", ".join(f"{a}/{b} {c:.2f}" for a, b, c in top[:3]))
        else:
            values = combine_over_pairs(res)
            arrays["heads_map"] = values
            _heatmap(out / "heads.png", values, [f"H{h}" for h in range(values.shape[1])], layer_labels,
                     f"head output patching ({hook}, all positions), n={len(pair_set)}", "head")
            flat = [(f"L{l}H{h}", float(values[l, h])) for l in range(values.shape[0]) for h in range(values.shape[1])]
            top = sorted(flat, key=lambda x: -abs(x[1]) if np.isfinite(x[1]) else 0)[:8]
            results["heads"] = {"hook": hook, "values": np.round(values, 4), "seconds": round(seconds, 2), "top_heads": top}
            figures = [{"path": "heads.png", "caption": f"layer × head, {hook} patched at every position"}]
            table = {"caption": "strongest heads", "columns": ["head", "value"], "rows": [[a, round(b, 4)] for a, b in top]}
            summary_bits.append("head patching: " + ", ".join(f"{a} {b:.2f}" for a, b in top[:3]))
        sections.append({"heading": f"Activation patching: {sweep}",
                         "text": f"Clean → corrupted patching on {len(pair_set)} {pairs} pairs (decision = first {sol} step "
                                 f"where the two solutions differ); metric: logit difference clean − corrupted answer at "
                                 f"the decision position, normalised (0 = corrupted, 1 = clean). Hook: {hook}. "
                                 f"{len(res)} equal-length groups, {seconds:.1f} s.",
                         "figures": figures, "tables": [table]})

    if attribution and "resid" in sweeps:
        groups = pair_set.length_groups()
        T, idx = max(groups.items(), key=lambda kv: len(kv[1]))
        sub = pair_set.subset(idx)
        clean, corrupt = sub.dense()
        t0 = time.perf_counter()
        exact = patch_sweep(model, clean, corrupt, sub.clean_answer, sub.corrupt_answer, "resid")
        t_exact = time.perf_counter() - t0
        t0 = time.perf_counter()
        approx = attribution_sweep(model, clean, corrupt, sub.clean_answer, sub.corrupt_answer, "resid")
        t_attr = time.perf_counter() - t0
        corr = correlation(exact.values, approx.values)
        arrays["attribution_resid_map"] = approx.values
        _heatmap(out / "attribution_resid.png", approx.values, [task.role_name(r) for r in sub.roles[0, :T]], layer_labels,
                 f"attribution patching (resid_pre), r = {corr:.3f} with exact", "position")
        results["attribution"] = {"correlation_with_exact": corr, "seconds_exact": round(t_exact, 3),
                                  "seconds_attribution": round(t_attr, 3), "n_pairs": len(idx), "length": T}
        sections.append({"heading": "Attribution patching (screening)",
                         "text": f"Gradient × activation-difference estimate of the residual map on the largest group "
                                 f"({len(idx)} pairs of {T} tokens): Pearson r = {corr:.3f} with exact patching; "
                                 f"{t_attr:.2f} s against {t_exact:.2f} s.",
                         "figures": [{"path": "attribution_resid.png", "caption": "attribution patching estimate"}],
                         "tables": []})
        summary_bits.append(f"attribution vs exact r = {corr:.2f}")

    if plan.ablations:
        t0 = time.perf_counter()
        abl = ablation_sweep(model, task_data, ablation_rows, plan.ablations, seed=seed, progress=progress)
        results["ablation"] = {**abl.to_dict(), "seconds": round(time.perf_counter() - t0, 2)}
        metrics = list(task.primary_metrics[:2])
        m0 = metrics[0]
        by_metric = {m: {r[0]: r for r in abl.table(m)} for m in metrics}
        table = abl.table(m0)
        n_rows = len(ablation_rows["tokens"])
        intact = ", ".join(f"{_label(m)} {abl.baseline[m]:.3f}" for m in metrics)
        _bars(out / "ablation.png", [r[0] for r in table], [r[6] for r in table],
              f"ablation effect on {_label(m0)} (intact: {abl.baseline[m0]:.3f}, n={n_rows})", f"Δ {_label(m0)}")
        columns = ["component", "method"] + [c for m in metrics for c in (_label(m), f"Δ {_label(m)}")]
        rows = [[r[0], r[4]] + [v for m in metrics for v in by_metric[m][r[0]][5:7]] for r in table]
        sections.append({"heading": "Ablations scored by rollouts",
                         "text": f"Greedy rollouts of {n_rows} {split} examples with one component ablated "
                                 f"({', '.join(ablation_methods)}), scored by the {task.name} task's metrics. "
                                 f"Intact model: {intact}.",
                         "figures": [{"path": "ablation.png", "caption": f"change of {_label(m0)} per ablated component"}],
                         "tables": [{"caption": f"ablations ({', '.join(map(_label, metrics))})", "columns": columns,
                                     "rows": rows}]})
        worst = sorted(table, key=lambda r: tuple(by_metric[m][r[0]][6] for m in metrics))[:3]
        summary_bits.append(f"intact {', '.join(f'{_label(m)} {abl.baseline[m]:.2f}' for m in metrics)}; "
                            f"largest ablation drops ({', '.join(map(_label, metrics))}): "
                            + ", ".join(f"{r[0]} " + "/".join(f"{by_metric[m][r[0]][6]:+.2f}" for m in metrics)
                                        for r in worst))

    if retarget:
        t0 = time.perf_counter()
        ret = retarget_fn(model, task_data, tpairs, layers=retarget_layers, probe=probe, run_dir=run_dir, seed=seed)
        results["retarget"] = {**ret.to_dict(), "seconds": round(time.perf_counter() - t0, 2)}
        conds = list(ret.new[ret.layers[0]])
        labels = [f"L{l}:{c}" for l in ret.layers for c in conds]
        vals = [ret.new[l][c].rate for l in ret.layers for c in conds]
        errs = np.array([[ret.new[l][c].rate - ret.new[l][c].low, ret.new[l][c].high - ret.new[l][c].rate]
                         for l in ret.layers for c in conds]).T
        _bars(out / "retarget.png", labels, vals, f"retargeting: rollouts reaching the new goal (n={ret.n})",
              "success rate", errors=errs)
        site = task.goal_site()
        described = [RETARGET_WORDS[c] for c in conds if c in RETARGET_WORDS]
        sections.append({"heading": "Goal retargeting",
                         "text": f"Residual stream (resid_pre of each layer) at {site}: "
                                 + "; ".join(described) + f" (goal probe: {ret.probe_source}). Success = the rollout "
                                 f"reaches the new goal (the {task.name} task's criterion; Wilson 95% CI); 'solved' "
                                 f"columns count only the {ret.n_solved} of {ret.n} pairs whose unedited rollout "
                                 f"reaches the old goal." + (" Layer 0 patching equals swapping the goal token."
                                                             if "patch" in conds else ""),
                         "figures": [{"path": "retarget.png", "caption": "retargeting success per layer and condition"}],
                         "tables": [{"caption": "retargeting (rate of reaching the new goal; old = still reaches the old one; "
                                                "solved = among the pairs the unedited model solves)",
                                     "columns": ["layer", "condition", "new goal", "CI low", "CI high", "old goal",
                                                 "first step → new", "first step → old", "new goal (solved)",
                                                 "first step → new (solved)"],
                                     "rows": ret.table()}]})
        summary_bits.append(_retarget_summary(ret, conds))

    if erase:
        from searchprobe.intervene.steering import amnesic_rollouts, collect

        goal = task.goal_site()
        layers_e = list(range(L)) if erase_layers is None else [int(x) for x in erase_layers]
        t0 = time.perf_counter()
        amnesic = {}
        for layer in layers_e:
            x = collect(model, probe.prompts, f"blocks.{layer}.hook_resid_pre", probe.positions)
            amnesic[layer] = amnesic_rollouts(model, task_data, erase_rows, layer, x, probe.classes, erase_at, seed=seed)
        results["erasure"] = {"concept": f"goal class at {goal}", "seconds": round(time.perf_counter() - t0, 2),
                              "layers": {str(k): v for k, v in amnesic.items()}}
        metrics = list(task.primary_metrics[:3])
        table_rows = [[f"L{layer}", a["rank"], cond] + [round(a[cond][m], 4) for m in metrics]
                      for layer, a in amnesic.items() for cond in ("intact", "leace", "random_subspace")]
        sections.append({"heading": "Erasure (amnesic probing)",
                         "text": f"The goal concept is LEACE-erased from the residual stream at {goal} "
                                 "(fitted on training prompts), and compared with erasing a random subspace of the same "
                                 "rank; scored by rollouts.",
                         "figures": [],
                         "tables": [{"caption": "rollouts with the goal concept erased",
                                     "columns": ["layer", "rank", "condition", *map(_label, metrics)],
                                     "rows": table_rows}]})
        first, m0 = amnesic[layers_e[0]], metrics[0]
        summary_bits.append(f"LEACE-erasing the goal at L{layers_e[0]}: {_label(m0)} {first['leace'][m0]:.2f} "
                            f"vs random subspace {first['random_subspace'][m0]:.2f} (intact {first['intact'][m0]:.2f})")

    results["seconds"] = round(time.perf_counter() - start, 2)
    np.savez_compressed(out / ".maps.tmp.npz", **arrays)
    (out / ".maps.tmp.npz").replace(out / "maps.npz")
    atomic_write_json(out / "results.json", results)
    report = {"stage": "patching", "title": "Causal interventions: patching, ablation, retargeting",
              "summary": f"{len(pair_set)} {pairs} pairs. " + "; ".join(summary_bits) + ".",
              "sections": sections}
    atomic_write_json(out / "report.json", report)
    return out
