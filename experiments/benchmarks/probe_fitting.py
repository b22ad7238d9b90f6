"""Benchmark: batched torch probes vs a scikit-learn LogisticRegression loop; peak memory of extraction and fitting.

Part 1 (side by side, same activations, same C, same train/test rows): G problems (hook × role) of
a multiclass label with K classes and of a binary family with M columns, fitted (a) by one
`fit_batched` call per family and (b) by one sklearn `LogisticRegression` per problem/column.
Activations are synthetic with planted linear structure (a fixed random readout + noise).

Part 1b (`cv_sweep`): the probing stage's actual solve — every problem at every L2 of the grid,
once per CV fold and once on all training rows — against sklearn fitting those fits one by one
(ours with one torch thread, as the probing stage runs, and with two).

Part 2 (each phase in a fresh subprocess, ru_maxrss): extraction of N examples of a maze dataset
into an activation store with an untrained model of the given preset; then fitting one label
(target cell, one L2 value, 3-fold CV, 200 bootstrap draws) over 1 hook × 4 roles on N examples,
(a) with the features stacked in memory (they and one standardised copy grow with N) and (b) read
from the store shard by shard during the solve (what the probing stage does when they do not fit).

Usage: python experiments/benchmarks/probe_fitting.py [--data DATASET_DIR] [--sizes 10000,100000] [--out FILE]
(the memory part needs a maze dataset whose train split has at least the largest size).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def planted(G: int, n: int, d: int, K: int, seed: int, binary: bool):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(G, n, d)).astype(np.float32)
    W = rng.normal(size=(G, d, K)) / np.sqrt(d) * 3
    scores = np.einsum("gnd,gdk->gnk", X, W) + rng.normal(size=(G, n, K))
    y = (scores > 0).astype(np.int64) if binary else scores.argmax(-1)
    return X, y


def timed_sklearn(loop) -> tuple[float, float, object]:
    """(seconds with one BLAS/OpenMP thread, seconds with the default threads, loop's result).

    scikit-learn's lbfgs on probe-sized problems is several times *slower* with two BLAS threads
    than with one on this kind of machine (thread start-up per small matmul), so the anchor is
    the faster of the two."""
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    with threadpool_limits(1):
        result = loop()
    t_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop()
    return t_one, time.perf_counter() - t0, result


def anchor(t_one: float, t_default: float) -> dict:
    return {"sklearn_loop_1_thread_s": round(t_one, 3), "sklearn_loop_default_threads_s": round(t_default, 3),
            "sklearn_loop_s": round(min(t_one, t_default), 3)}


def bench_fitting(G: int, n: int, d: int, K: int, M: int, C: float = 1.0) -> dict:
    import torch
    from sklearn.linear_model import LogisticRegression

    from searchprobe.probe.linear import fit_batched, predict_scores, standardize

    out = {"G": G, "n": n, "d": d, "K": K, "M": M, "C": C}
    warm_X, warm_y = planted(2, 50, 4, 3, seed=9, binary=False)  # first torch call pays one-off start-up costs
    fit_batched(warm_X, warm_y, np.ones((1, 50), np.float32), [0.01], "multiclass", n_classes=3)
    n_train = int(0.8 * n)
    for family, binary, width in (("multiclass", False, K), ("binary", True, M)):
        X, y = planted(G, n, d, width, seed=1 if binary else 0, binary=binary)
        train = np.arange(n) < n_train
        Z, _, _ = standardize(X, train)
        t0 = time.perf_counter()
        W, b = fit_batched(Z, np.where(train[None, :, None] if binary else train[None], y, -1), train[None].astype(np.float32),
                           [1.0 / (C * n_train)], family, n_classes=None if binary else K)
        t_batched = time.perf_counter() - t0
        s = predict_scores(torch.from_numpy(Z), W, b).numpy()[:, 0]
        pred = (s > 0) if binary else s.argmax(-1)
        acc_batched = float((pred[:, ~train] == y[:, ~train]).mean())

        def loop():
            correct = []
            for g in range(G):
                for m in (range(width) if binary else [None]):
                    yy = y[g, :, m] if binary else y[g]
                    clf = LogisticRegression(C=C, max_iter=1000).fit(Z[g, train], yy[train])
                    correct.append(clf.predict(Z[g, ~train]) == yy[~train])
            return float(np.mean(correct))

        t_one, t_default, acc_sklearn = timed_sklearn(loop)
        t_sklearn = min(t_one, t_default)
        out[family] = {"problems": G * (width if binary else 1), "batched_s": round(t_batched, 3),
                       **anchor(t_one, t_default), "speedup": round(t_sklearn / t_batched, 1),
                       "acc_batched": round(acc_batched, 4), "acc_sklearn": round(acc_sklearn, 4),
                       "acc_diff_points": round(100 * (acc_batched - acc_sklearn), 2)}
    return out


def bench_cv_sweep(G: int, n: int, d: int, K: int, M: int, folds: int = 3) -> dict:
    """The probing stage's real workload: every problem fitted at every L2 of the grid, once per
    CV fold and once on all training rows (`fit_label`'s solve), against sklearn fitting the same
    fits one by one. Accuracy is each fit's accuracy on the held-out rows, compared fit by fit."""
    import torch
    from sklearn.linear_model import LogisticRegression

    from searchprobe.probe.firehose import L2_GRID
    from searchprobe.probe.linear import fit_batched, predict_scores, standardize

    n_train = int(0.8 * n)
    train = np.arange(n) < n_train
    fold = np.arange(n) * folds // n_train  # training rows sorted by fold, as fit_label orders them
    masks, l2s = [], []
    for lam in L2_GRID:
        for f in range(folds + 1):
            masks.append(train & (fold != f) if f < folds else train)
            l2s.append(lam)
    w = np.stack(masks).astype(np.float32)
    out = {"G": G, "n": n, "d": d, "K": K, "M": M, "l2_grid": list(L2_GRID), "folds": folds, "fits_per_problem": len(masks)}
    for family, binary, width in (("multiclass", False, K), ("binary", True, M)):
        X, y = planted(G, n, d, width, seed=1 if binary else 0, binary=binary)
        Z, _, _ = standardize(X, train)
        t0 = time.perf_counter()
        fit_batched(Z, y, w, np.asarray(l2s, dtype=np.float32), family, n_classes=None if binary else K, threads=2)
        t_two_threads = time.perf_counter() - t0
        t0 = time.perf_counter()
        W, b = fit_batched(Z, y, w, np.asarray(l2s, dtype=np.float32), family, n_classes=None if binary else K)
        t_batched = time.perf_counter() - t0
        s = predict_scores(torch.from_numpy(Z), W, b).numpy()  # (G, B, n, K)
        pred = (s > 0) if binary else s.argmax(-1)
        truth = y[:, None]  # (G, 1, n[, M]) against pred (G, B, n[, M])
        acc_batched = (pred[:, :, ~train] == truth[:, :, ~train]).reshape(G, len(masks), -1).mean(-1)  # (G, B)

        def loop():
            acc = np.zeros((G, len(masks)))
            for g in range(G):
                for j, (mask, lam) in enumerate(zip(masks, l2s)):
                    hits = []
                    for m in (range(width) if binary else [None]):
                        yy = y[g, :, m] if binary else y[g]
                        clf = LogisticRegression(C=1.0 / (lam * mask.sum()), max_iter=1000).fit(Z[g, mask], yy[mask])
                        hits.append(clf.predict(Z[g, ~train]) == yy[~train])
                    acc[g, j] = np.mean(hits)
            return acc

        t_one, t_default, acc_sklearn = timed_sklearn(loop)
        t_sklearn = min(t_one, t_default)
        out[family] = {"fits": G * len(masks) * (width if binary else 1), "batched_s": round(t_batched, 3),
                       **anchor(t_one, t_default), "speedup": round(t_sklearn / t_batched, 1),
                       "batched_2_threads_s": round(t_two_threads, 3),
                       "speedup_2_threads": round(t_sklearn / t_two_threads, 1),
                       "acc_batched": round(float(acc_batched.mean()), 4), "acc_sklearn": round(float(acc_sklearn.mean()), 4),
                       "max_abs_acc_diff_points": round(100 * float(np.abs(acc_batched - acc_sklearn).max()), 2)}
    return out


def memory_child(mode: str, data: str, n: int, work: str, preset: str) -> dict:
    """One phase in a fresh process (ru_maxrss is a high-water mark): `extract` writes the store of
    n examples; `fit-memory` / `fit-store` fit one label from it with the features stacked in memory
    or read from the store shard by shard."""
    import dataclasses

    from searchprobe.acts import ActivationStore, StorePlan, extract_activations
    from searchprobe.probe.features import Features
    from searchprobe.probe.firehose import ProbeSplit, fit_label
    from searchprobe.probe.labels import label_targets
    from searchprobe.tasks.maze.probe_labels import maze_label_specs, maze_store_labels
    from searchprobe.tasks.store import read_dataset
    from searchprobe.train.model import build_model, preset as get_preset
    from searchprobe.train.task_data import TaskData

    stored = read_dataset(data)
    rows, cols = stored.config["config"]["rows"], stored.config["config"]["cols"]
    N = rows * cols
    roles = ("target", "path_start", "path:0", "path:1")
    hooks = ("blocks.0.hook_resid_post",)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    if mode == "extract":
        vocab = list(stored.vocab) if isinstance(stored.vocab, list) else list(stored.vocab["tokens"])
        model = build_model(dataclasses.replace(get_preset(preset), d_vocab=len(vocab), n_ctx=256))
        model.eval()
        plan = StorePlan(hooks, roles, "train", n, "float32", shard_size=1024)
        store = extract_activations(model, TaskData(stored), plan, Path(work) / "store", "bench",
                                    label_fn=lambda r: maze_store_labels(r, N, 2, 2))
        extra = {}
    else:
        store = ActivationStore.open(Path(work) / "store")
        keys = [(h, r) for h in hooks for r in roles]
        spec = next(s for s in maze_label_specs(N, 2) if s.name == "target_cell")
        lab = store.label("target_cell")
        Y = np.stack([label_targets(spec, lab, TaskData(stored).task.step_of_role(r)) for _, r in keys])
        X = np.stack([store.features(h, r) for h, r in keys]) if mode == "fit-memory" else Features.from_store(store, keys)
        fit_label(spec, X, Y, ProbeSplit.by_example(store.n_examples), l2_grid=(1e-2,), n_boot=200)
        extra = {"fit_problems": len(keys), "feature_mb": round(len(keys) * store.n_examples * store.feature_width(*keys[0]) * 4 / 2**20, 1)}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"mode": mode, "n": store.n_examples, "rss_after_imports_mb": round(rss0 / 1024),
            "peak_rss_mb": round(rss / 1024), "seconds": round(time.perf_counter() - t0, 1), **extra}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/tmp/sp/maze5")
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--preset", default="nano")
    ap.add_argument("--G", type=int, default=12)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--child", nargs=4, metavar=("MODE", "DATA", "N", "WORK"))
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(memory_child(args.child[0], args.child[1], int(args.child[2]), args.child[3], args.preset)))
        return
    result = {"fitting": bench_fitting(args.G, args.n, args.d, K=16, M=8),
              "cv_sweep": bench_cv_sweep(args.G, args.n, args.d, K=16, M=8)}
    if not args.skip_memory and Path(args.data).exists():
        mem = []
        for n in [int(s) for s in args.sizes.split(",")]:
            with tempfile.TemporaryDirectory() as work:
                for mode in ("extract", "fit-memory", "fit-store"):
                    proc = subprocess.run([sys.executable, __file__, "--preset", args.preset, "--child", mode, args.data,
                                           str(n), work], capture_output=True, text=True, check=True)
                    mem.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        result["memory"] = mem
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
