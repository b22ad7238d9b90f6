"""`run_probes(run_dir)`: the probing stage — stores, probes, controls, table, heat maps, directions, report.

Outputs under ``<run_dir>/probes/``:

* ``results.csv`` (and ``results.parquet`` when pyarrow is importable): one row per
  (hook, layer, role, label, metric) with value, ci_low, ci_high, control, control_types (distinct
  input types of the control task: few types make it easy to memorise), selectivity,
  random_model, majority, n, l2, family, kind;
* ``heat_<label>.png``: held-out accuracy (R² for ridge) per hook (rows, by depth) × role (columns);
* ``directions.safetensors``: for every (hook, role, label) probe, tensors
  ``<hook>|<role>|<label>/weight`` (d, K) and ``/bias`` (K,) in standardised feature space,
  ``/mean`` and ``/std`` (d,) to standardise raw activations (z = (x - mean) / std; score = z @ weight + bias),
  and ``/columns`` (K,) the label columns (class ids for multiclass, column indices for binary/ridge);
* ``directions/<label>.L<layer>.npz``: for the steering/erasure stage, the best-role probe on
  ``blocks.<layer>.hook_resid_pre`` in raw space (``coef``, ``intercept``, ``mean``, ``hook``, ``role``);
* ``report.json`` per the report contract.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from searchprobe.acts import (StorePlan, default_hooks, extract_activations, find_positions, hook_layer, hook_names_for,
                              model_fingerprint, random_fingerprint)
from searchprobe.errors import InputError
from searchprobe.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from searchprobe.probe.features import Features
from searchprobe.probe.firehose import L2_GRID, ProbeSplit, fit_label
from searchprobe.probe.labels import LabelSpec, bigram_types, control_targets, label_targets

COLUMNS = ("hook", "layer", "role", "label", "family", "kind", "metric", "value", "ci_low", "ci_high", "control",
           "control_types", "selectivity", "random_model", "majority", "n", "l2")


def run_probes(run_dir: str | Path, *, labels: Sequence[str] | None = None, hooks: Sequence[str] | None = None,
               positions: Sequence[str] | None = None, max_examples: int = 1000, dtype: str = "float32",
               split: str = "train", k_ahead: int = 4, random_init_seed: int = 12345, cv_folds: int = 3,
               l2_grid: Sequence[float] = L2_GRID, n_boot: int = 1000, seed: int = 0, allow_missing: bool | None = None,
               data: str | Path | None = None, overwrite: bool = False, progress: bool = True,
               max_chunk_elements: int = 30_000_000) -> Path:
    """Probe every (hook × role × label) of the run at `run_dir`; returns ``<run_dir>/probes``.

    Roles absent from some sequences are an error when `positions` is given explicitly (unless
    `allow_missing`); the default roles include path steps that short paths lack, probed on the
    sequences that have them. `max_chunk_elements` bounds the floats one batch of problems holds;
    when one problem's features (and their standardised copy) would exceed it, features are read
    from the activation store shard by shard during the solve, so memory stops growing with the
    number of examples.
    """
    import dataclasses

    from searchprobe.config import from_dict
    from searchprobe.guard import record_entries
    from searchprobe.probe.checks import check_probe_options
    from searchprobe.train.model import ModelConfig, build_model
    from searchprobe.train.run import load_run

    check_probe_options(max_examples=max_examples, n_boot=n_boot, seed=seed, random_init_seed=random_init_seed,
                        cv_folds=cv_folds, k_ahead=k_ahead, dtype=dtype, l2_grid=l2_grid,
                        max_chunk_elements=max_chunk_elements)
    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    run = load_run(run_dir, data)
    task_data = run.data
    task = task_data.task
    model_cfg = from_dict(ModelConfig, run.config["model"], f"{run_dir}/config.json [model]")
    valid_hooks = hook_names_for(model_cfg.n_layers, model_cfg.attn_only)
    hooks = list(hooks) if hooks else default_hooks(model_cfg.n_layers)
    for h in hooks:
        if h not in valid_hooks:
            raise InputError(f"hook {h!r} does not exist in this {model_cfg.n_layers}-layer model; valid: {', '.join(valid_hooks)}")
    explicit_roles = positions is not None
    roles = list(positions) if positions else list(task.default_roles(run.dataset.config))
    codes = [task.role_code(r) for r in roles]
    n = min(max_examples, len(task_data.split(split)))
    if n < 10:
        raise InputError(f"max_examples={max_examples} gives {n} examples; allowed: at least 10")
    label_set = task.label_set(run.dataset, split, n, roles, k_ahead=k_ahead)
    by_name = label_set.by_name()
    wanted = list(labels) if labels else [l for l in label_set.defaults if l in by_name]
    for name in wanted:
        if name not in by_name:
            raise InputError(f"unknown label {name!r}; allowed: {', '.join(by_name)}")
    specs = [by_name[n] for n in wanted]
    # roles present in every sequence? (cheap: the roles column only)
    role_col = run.dataset.splits[split].select(range(n)).select_columns(["roles"]).with_format("numpy")[:]["roles"]
    present = find_positions([np.asarray(r) for r in role_col], codes) >= 0
    for r, role in enumerate(roles):
        absent = int((~present[:, r]).sum())
        if absent == n:
            raise InputError(f"position role {role!r} is absent from all {n} sequences of split {split!r}")
        if absent and explicit_roles and not allow_missing:
            raise InputError(f"position role {role!r} is absent from {absent} of {n} sequences of split {split!r}; "
                             f"pass --allow-missing to probe only the sequences that have it")
    plan = StorePlan(tuple(hooks), tuple(roles), split, n, dtype, shard_size=1024,
                     dataset_fingerprint=run.dataset.fingerprint)
    acts_dir = run_dir / "acts"
    fp = model_fingerprint(run_dir)
    trained = extract_activations(run.model, task_data, plan, acts_dir / f"trained-{plan.key()}", fp,
                                  label_fn=label_set.arrays, overwrite=overwrite, progress=progress)
    random_cfg = dataclasses.replace(model_cfg, init_seed=random_init_seed)
    random_model = build_model(random_cfg)
    random_model.eval()
    random_store = extract_activations(random_model, task_data, plan,
                                       acts_dir / f"random{random_init_seed}-{plan.key()}",
                                       random_fingerprint(run.config["model"], random_init_seed),
                                       label_fn=label_set.arrays, overwrite=overwrite, progress=progress)
    probe_split = ProbeSplit.by_example(n, folds=cv_folds, seed=seed)
    positions_arr = trained.positions
    control_types = _control_types(run.dataset.splits[split].select(range(n)), positions_arr, trained.tokens)
    rows: list[dict[str, Any]] = []
    directions: dict[str, Any] = {}
    pairs = [(h, r) for h in hooks for r in range(len(roles))]
    widths = {h: trained.feature_width(h, roles[0]) for h in hooks}
    B = len(l2_grid) * (cv_folds + 1)
    iterator = specs
    if progress:
        from tqdm import tqdm

        iterator = tqdm(specs, desc="probes", unit="label")
    for spec in iterator:
        stored = trained.label(spec.stored)
        applicable = []
        for h, r in pairs:
            y = label_targets(spec, stored, task.step_of_role(roles[r]))
            if y is None:
                continue
            y = _mask_rows(y, positions_arr[:, r] >= 0, spec)
            applicable.append((h, r, y))
        if not applicable:
            raise InputError(f"label {spec.name!r} applies to none of the roles {roles} (per-step labels need the "
                             f"task's solution-step roles)")
        _check_not_constant(spec, [a[2] for a in applicable], probe_split, roles)
        d_max = max(widths[h] for h, _, _ in applicable)
        K = spec.n_classes or applicable[0][2].shape[-1]
        outputs = 1 if spec.kind == "multiclass" else K
        # Memory per problem, in floats: its features and their standardised copy (unless read from
        # the store block by block, when one problem's alone would not fit), its labels, and the
        # solver's state (10 L-BFGS pairs and a few copies of every fit's parameters).
        in_memory = 2 * n * d_max <= max_chunk_elements
        per_problem = n * ((2 * d_max if in_memory else 0) + 4 * outputs) + 24 * B * K * (d_max + 1)
        chunk = max(1, int(max_chunk_elements // per_problem))
        for start in range(0, len(applicable), chunk):
            part = applicable[start:start + chunk]
            # problems of one chunk share a feature width (attn.hook_z and resid both have d_model here)
            for width in sorted({widths[h] for h, _, _ in part}):
                group = [a for a in part if widths[a[0]] == width]
                _fit_group(spec, group, roles, trained, random_store, in_memory, control_types, positions_arr, probe_split,
                           rows, directions, l2_grid=l2_grid, n_boot=n_boot, seed=seed)
    out = run_dir / "probes"
    out.mkdir(parents=True, exist_ok=True)
    _write_outputs(out, rows, directions, specs, hooks, roles, meta={
        "run_dir": str(run_dir), "model_fingerprint": fp, "n_examples": n, "split": split,
        "random_init_seed": random_init_seed, "store": str(trained.path), "random_store": str(random_store.path),
        "seconds": round(time.perf_counter() - t0, 1), "l2_grid": list(l2_grid), "cv_folds": cv_folds})
    record_entries(run_dir, "acts", "probes")
    return out


def _mask_rows(y: np.ndarray, present: np.ndarray, spec: LabelSpec) -> np.ndarray:
    if spec.kind == "ridge":
        return np.where(present[:, None], y, np.nan)
    return np.where(present.reshape((-1,) + (1,) * (y.ndim - 1)), y, -1)


def _check_not_constant(spec: LabelSpec, ys: list[np.ndarray], split: ProbeSplit, roles: list[str]) -> None:
    from searchprobe.probe.firehose import check_label_columns

    for y in ys:
        if spec.kind == "multiclass":
            if len(np.unique(y[split.train & (y >= 0)])) >= 2:
                return
        elif check_label_columns(spec, y, split.train).any():
            return
    raise InputError(f"label {spec.name!r} is constant in the training split at every probed position; "
                     f"a probe cannot learn it: leave it out of --labels")


def _control_types(rows, positions: np.ndarray, token_at: np.ndarray) -> np.ndarray:
    """(n, roles) Hewitt & Liang input types: the (previous token, token) pair at each probed position."""
    tokens = rows.select_columns(["tokens"]).with_format("numpy")[:]["tokens"]
    previous = np.full(positions.shape, -1, dtype=np.int64)
    for i, (seq, pos) in enumerate(zip(tokens, positions)):
        has = pos >= 1
        previous[i, has] = np.asarray(seq)[pos[has] - 1]
    return bigram_types(previous, token_at)


def _fit_group(spec, group, roles, trained, random_store, in_memory, control_types, positions, split, rows, directions, *,
               l2_grid, n_boot, seed):
    keys = [(h, roles[r]) for h, r, _ in group]
    if in_memory:
        X = np.stack([trained.features(h, role) for h, role in keys])
        Xr = np.stack([random_store.features(h, role) for h, role in keys])
    else:  # read shard by shard during the solve: memory does not grow with the number of examples
        X, Xr = Features.from_store(trained, keys), Features.from_store(random_store, keys)
    Y = np.stack([y for _, _, y in group])
    Yc = np.stack([control_targets(spec, y, control_types[:, r], split.train, seed=1000 + r) for _, r, y in group])
    real = fit_label(spec, X, Y, split, l2_grid=l2_grid, n_boot=n_boot, seed=seed)
    control = fit_label(spec, X, Yc, split, n_boot=0, seed=seed, fixed_l2=real.l2)
    rand = fit_label(spec, Xr, Y, split, n_boot=0, seed=seed, fixed_l2=real.l2)
    for g, (hook, r, _) in enumerate(group):
        # with few input types a linear probe memorises any control labelling: read selectivity with this count
        n_types = len(np.unique(control_types[split.train & (positions[:, r] >= 0), r]))
        base = {"hook": hook, "layer": hook_layer(hook), "role": roles[r], "label": spec.name, "family": spec.family,
                "kind": spec.kind, "n": int(real.n_test[g]), "l2": float(real.l2[g]), "control_types": n_types}
        metric = "r2" if spec.kind == "ridge" else "accuracy"
        rows.append(base | {"metric": metric, "value": real.accuracy[g], "ci_low": real.ci_low[g], "ci_high": real.ci_high[g],
                            "control": control.accuracy[g], "selectivity": real.accuracy[g] - control.accuracy[g],
                            "random_model": rand.accuracy[g], "majority": real.majority[g]})
        if spec.kind == "binary":
            for name, attr in (("auroc", "auroc"), ("average_precision", "ap")):
                v, c = getattr(real, attr)[g], getattr(control, attr)[g]
                rows.append(base | {"metric": name, "value": v, "ci_low": np.nan, "ci_high": np.nan, "control": c,
                                    "selectivity": v - c, "random_model": getattr(rand, attr)[g],
                                    "majority": 0.5 if name == "auroc" else np.nan})
        key = f"{hook}|{roles[r]}|{spec.name}"
        cols = np.arange(real.weight.shape[-1]) if spec.kind == "multiclass" else np.nonzero(real.columns[g])[0]
        keep = cols if spec.kind != "multiclass" else slice(None)
        directions[f"{key}/weight"] = np.ascontiguousarray(real.weight[g][:, keep], dtype=np.float32)
        directions[f"{key}/bias"] = np.ascontiguousarray(real.bias[g][keep], dtype=np.float32)
        directions[f"{key}/mean"] = np.ascontiguousarray(real.feature_mean[g], dtype=np.float32)
        directions[f"{key}/std"] = np.ascontiguousarray(real.feature_std[g], dtype=np.float32)
        directions[f"{key}/columns"] = np.asarray(cols, dtype=np.int64)


def _write_outputs(out: Path, rows, directions, specs, hooks, roles, meta) -> None:
    import csv
    import io

    from safetensors.numpy import save as save_np

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (round(float(v), 6) if isinstance(v, (float, np.floating)) else v) for k, v in
                         ((k, row[k]) for k in COLUMNS)})
    atomic_write_text(out / "results.csv", buf.getvalue())
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({k: [r[k] if not isinstance(r[k], np.generic) else r[k].item() for r in rows] for k in COLUMNS})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        atomic_write_bytes(out / "results.parquet", sink.getvalue().to_pybytes())
    except ImportError:
        pass
    atomic_write_bytes(out / "directions.safetensors", save_np(directions, metadata={"layout": "see searchprobe.probe.run"}))
    _write_layer_directions(out / "directions", rows, directions)
    figures = _heatmaps(out, rows, specs, hooks, roles)
    atomic_write_json(out / "meta.json", meta)
    atomic_write_json(out / "report.json", _report(rows, specs, figures, meta))


def _write_layer_directions(folder: Path, rows, directions) -> None:
    """``directions/<label>.L<layer>.npz`` (the steering stage's format) for ``blocks.<layer>.hook_resid_pre``.

    Per (label, layer) the role whose probe scored best on held-out data; raw-space ``coef`` (d, K),
    ``intercept`` (K,), ``mean`` (d,) so that scores = (x - mean) @ coef + intercept, plus ``hook``,
    ``role`` and ``columns`` saying which probe it is.
    """
    import io

    best: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        hook = row["hook"]
        if not hook.endswith("hook_resid_pre") or row["metric"] not in ("accuracy", "r2") or np.isnan(row["value"]):
            continue
        key = (row["label"], int(hook.split(".")[1]))
        if key not in best or row["value"] > best[key]["value"]:
            best[key] = row
    for (label, layer), row in best.items():
        name = f"{row['hook']}|{row['role']}|{label}"
        std = directions[f"{name}/std"]
        buf = io.BytesIO()
        np.savez(buf, coef=directions[f"{name}/weight"] / std[:, None], intercept=directions[f"{name}/bias"],
                 mean=directions[f"{name}/mean"], columns=directions[f"{name}/columns"],
                 hook=np.array(row["hook"]), role=np.array(row["role"]))
        atomic_write_bytes(folder / f"{label}.L{layer}.npz", buf.getvalue())


def _heatmaps(out: Path, rows, specs, hooks, roles) -> list[dict[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = []
    ordered_hooks = sorted(hooks, key=lambda h: (hook_layer(h), h))
    for spec in specs:
        metric = "r2" if spec.kind == "ridge" else "accuracy"
        grid = np.full((len(ordered_hooks), len(roles)), np.nan)
        sel = np.full_like(grid, np.nan)
        for row in rows:
            if row["label"] == spec.name and row["metric"] == metric:
                i, j = ordered_hooks.index(row["hook"]), roles.index(row["role"])
                grid[i, j], sel[i, j] = row["value"], row["selectivity"]
        used = ~np.all(np.isnan(grid), axis=0)
        if not used.any():
            continue
        cols = [r for r, u in zip(roles, used) if u]
        fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(cols), 0.9 + 0.45 * len(ordered_hooks)))
        im = ax.imshow(grid[:, used], aspect="auto", cmap="viridis", vmin=0, vmax=1)
        for i in range(len(ordered_hooks)):
            for j, jj in enumerate(np.nonzero(used)[0]):
                if not np.isnan(grid[i, jj]):
                    ax.text(j, i, f"{grid[i, jj]:.2f}\n({sel[i, jj]:+.2f})", ha="center", va="center", fontsize=6,
                            color="white" if grid[i, jj] < 0.6 else "black")
        ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(ordered_hooks)), ordered_hooks, fontsize=7)
        ax.set_title(f"{spec.name} ({spec.family}): held-out {metric} (selectivity)", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.04)
        fig.tight_layout()
        name = f"heat_{spec.name}.png"
        buf = __import__("io").BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        atomic_write_bytes(out / name, buf.getvalue())
        figures.append({"path": name, "caption": f"{spec.name}: held-out {metric} per hook (rows, by depth) × position role; "
                                                 f"selectivity (accuracy − control task) in brackets"})
    return figures


def _report(rows, specs, figures, meta) -> dict[str, Any]:
    best_rows = []
    summary_bits = []
    for spec in specs:
        metric = "r2" if spec.kind == "ridge" else "accuracy"
        cand = [r for r in rows if r["label"] == spec.name and r["metric"] == metric and not np.isnan(r["value"])]
        if not cand:
            continue
        top = max(cand, key=lambda r: r["value"])
        best_rows.append([spec.name, spec.family, top["hook"], top["role"], metric, _r(top["value"]),
                          f"[{_r(top['ci_low'])}, {_r(top['ci_high'])}]", _r(top["control"]), _r(top["selectivity"]),
                          _r(top["random_model"]), _r(top["majority"]), top["n"]])
        summary_bits.append(f"{spec.name} {_r(top['value'])} at {top['role']}/{top['hook']} "
                            f"(selectivity {_r(top['selectivity'])}, random model {_r(top['random_model'])}, majority {_r(top['majority'])})")
    summary = (f"{len(rows)} probe results over {meta['n_examples']} examples of split {meta['split']!r} "
               f"(80/20 split by example, {meta['cv_folds']}-fold CV for L2). Best per label: " + "; ".join(summary_bits) + ".")
    return {"stage": "probes", "title": "Linear probes: what is decodable where",
            "summary": summary,
            "sections": [
                {"heading": "Best probe per label",
                 "text": "Held-out accuracy (R² for distances) of the best (hook, role) per label, with a bootstrap 95% CI over "
                         "test examples; control = Hewitt & Liang control task (a random label per (previous token, token) "
                         "pair at the probed position; a probe memorises it when there are few pairs, see control_types "
                         "in results.csv); selectivity = value − control; random model = the same probe on a "
                         "randomly initialised model.",
                 "figures": [], "tables": [{"caption": "best probe per label", "columns": [
                     "label", "family", "hook", "role", "metric", "value", "95% CI", "control", "selectivity", "random model",
                     "majority", "n"], "rows": best_rows}]},
                {"heading": "Layer × position heat maps", "text": "Every probe of every label; results.csv has them all.",
                 "figures": figures, "tables": []},
            ]}


def _r(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else round(x, 3)
