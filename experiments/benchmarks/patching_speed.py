"""Residual-stream patching: our batched sweep vs transformer_lens.patching.get_act_patch_resid_pre,
and attribution patching vs exact patching, side by side on the same model and inputs. Prints JSON.

    python experiments/benchmarks/patching_speed.py [RUN_DIR] [--pairs 16] [--positions 24]

Without RUN_DIR (or if it has no model yet) a 4-layer d=128 untrained model on 5×5 mazes is used.
TransformerLens runs one forward per cell, so both sides patch the same (all layers × last
`--positions` positions) cells; our sweep also runs the whole map once for the attribution comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _setup(run_dir: str | None, n_pairs: int):
    from searchprobe.train.task_data import TaskData

    if run_dir and (Path(run_dir) / "model.safetensors").exists():
        from searchprobe.train.run import load_run

        run = load_run(run_dir)
        model, data, source = run.model, run.data, f"trained run {run_dir}"
    else:
        from searchprobe.tasks.maze.config import MazeConfig
        from searchprobe.tasks.maze.dataset import generate_dataset
        from searchprobe.tasks.store import read_dataset
        from searchprobe.train.model import ModelConfig, build_model

        path = generate_dataset(MazeConfig(rows=5, cols=5, n=600, seed=0), Path(tempfile.mkdtemp()) / "data")
        data = TaskData(read_dataset(path))
        model = build_model(ModelConfig(n_layers=4, d_model=128, n_heads=4).with_data(len(data.vocab), 140))
        model.eval()
        source = "untrained 4-layer d=128 model, 5x5 DFS mazes"
    stored = data.stored
    pairs = data.task.make_pairs(stored, data.tokenizer(), split="test" if "test" in stored.splits else "train",
                                 kind="target", n=20 * n_pairs, seed=0)
    T, idx = max(pairs.length_groups().items(), key=lambda kv: len(kv[1]))
    sub = pairs.subset(idx[:n_pairs])
    return model, sub, source


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default="/tmp/sp/run-base")
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--positions", type=int, default=24)
    args = parser.parse_args(argv)
    from transformer_lens import patching as tlp

    from searchprobe.intervene.attribution import attribution_sweep, correlation
    from searchprobe.intervene.patching import logit_diff, patch_sweep

    torch.set_grad_enabled(False)
    model, sub, source = _setup(args.run_dir, args.pairs)
    clean, corrupt = (torch.as_tensor(a) for a in sub.dense())
    ca, xa = torch.as_tensor(sub.clean_answer), torch.as_tensor(sub.corrupt_answer)
    N, T = clean.shape
    positions = list(range(T - args.positions, T))
    L = model.cfg.n_layers

    import pandas as pd

    t0 = time.perf_counter()
    _, cache = model.run_with_cache(clean)
    df = pd.DataFrame([(layer, p) for layer in range(L) for p in positions], columns=["layer", "pos"])
    ref = tlp.generic_activation_patch(model, corrupt, cache, lambda lg: logit_diff(lg, ca, xa), tlp.layer_pos_patch_setter,
                                       "resid_pre", index_df=df, reduce="none").values.numpy()
    t_tl = time.perf_counter() - t0

    t0 = time.perf_counter()
    ours = patch_sweep(model, clean, corrupt, ca, xa, "resid", positions=positions)
    t_ours = time.perf_counter() - t0
    ours_cells = ours.logit_diff.reshape(L * len(positions), N)
    max_abs = float(np.abs(ours_cells - ref).max())

    t0 = time.perf_counter()
    full = patch_sweep(model, clean, corrupt, ca, xa, "resid")
    t_full = time.perf_counter() - t0
    torch.set_grad_enabled(True)
    t0 = time.perf_counter()
    attr = attribution_sweep(model, clean, corrupt, ca, xa, "resid")
    t_attr = time.perf_counter() - t0
    cells = L * len(positions)
    print(json.dumps({
        "model": source, "pairs": N, "tokens": T, "layers": L, "cells_compared": cells,
        "transformer_lens_get_act_patch_resid_pre_s": round(t_tl, 3),
        "transformer_lens_cells_per_s": round(cells / t_tl, 2),
        "batched_sweep_s": round(t_ours, 3),
        "batched_cells_per_s": round(cells / t_ours, 2),
        "speedup_vs_transformer_lens": round(t_tl / t_ours, 2),
        "max_abs_diff_logit_diff": max_abs,
        "full_map_cells": L * T, "exact_full_map_s": round(t_full, 3), "attribution_full_map_s": round(t_attr, 3),
        "attribution_speedup_vs_exact": round(t_full / t_attr, 1),
        "attribution_speedup_vs_transformer_lens_per_cell": round((t_tl / cells * L * T) / t_attr, 1),
        "attribution_exact_pearson_r": round(correlation(full.values, attr.values), 4),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
