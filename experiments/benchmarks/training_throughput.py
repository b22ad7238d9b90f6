"""Training throughput: our loop (`searchprobe.train.loop.train`) against TransformerLens 4's
`transformer_lens.tools.training.train`, side by side on the same model and mazes; plus the
achieved FLOP/s of training against this machine's measured matmul FLOP/s. Prints JSON.

    python experiments/benchmarks/training_throughput.py [--steps 40] [--batch 128] [--n 8192]

Both sides start from identical weights (the "tiny" preset, 4 layers, d_model 128), take the
same number of AdamW steps of the same batch size on the same 5×5 grid-layout mazes, with
gradient clipping and warmup. TransformerLens's loop needs equal-length rows, so it trains on
the sequences padded to the longest one and takes the loss on every position; ours cuts each
batch to its longest row and takes the loss on the path only, through the hook-free
`FusedForward` (`ours_bf16_bridge` is the same loop running the bridge itself, hooks and all).
`dataset_tokens_per_s` counts the
real (unpadded) tokens of the examples consumed, which is what a user waits for;
`positions_per_s` counts what each model actually ran on, padding included. Our loop runs in
fp32, in bf16 autocast, and in bf16 with length-sorted batches (`sort_window = 16`).

FLOPs per step are counted analytically: 6 × (non-embedding matmul parameters + unembedding)
× positions, plus the attention score and mixing matmuls (6 × 2 × n_layers × T² × d_model per row
for forward and backward). Matmul peak is the best of a few large square matmuls.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _dataset(n: int, seed: int):
    from searchprobe.tasks.maze.config import MazeConfig
    from searchprobe.tasks.maze.dataset import generate_dataset
    from searchprobe.tasks.store import read_dataset
    from searchprobe.train.task_data import TaskData

    cfg = MazeConfig(rows=5, cols=5, n=n, seed=seed, token_format="grid", labels=False)
    path = generate_dataset(cfg, Path(tempfile.mkdtemp()) / "data")
    task_data = TaskData(read_dataset(path))
    return task_data, task_data.token_data("train")


def _model_config(task_data, data):
    from searchprobe.train.model import preset

    return preset("tiny").with_data(len(task_data.vocab), data.max_len)


def matmul_peak_flops(dtype: torch.dtype, sizes=(1024, 2048), reps: int = 6) -> float:
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - start))
    return best


def train_flops(model_cfg, rows: int, width: int) -> float:
    """Forward + backward FLOPs of one step on `rows` sequences cut to `width` positions."""
    d, L = model_cfg.d_model, model_cfg.n_layers
    d_mlp = 0 if model_cfg.attn_only else (model_cfg.d_mlp or 4 * d)
    matmul_params = L * (4 * d * d + 2 * d * d_mlp) + d * model_cfg.d_vocab
    positions = rows * width
    attention = 2 * 2 * L * width * width * d * rows  # QK^T and pattern @ V, forward
    return 6 * matmul_params * positions + 3 * attention


def run_ours(model, model_cfg, data, steps: int, batch: int, precision: str, sort_window: int = 0,
             bridge: bool = False) -> dict:
    from unittest import mock

    from searchprobe.train.data import BatchSchedule
    from searchprobe.train.fused import FusedForward
    from searchprobe.train.loop import TrainConfig, train

    cfg = TrainConfig(steps=steps, batch_size=batch, lr=1e-3, warmup_steps=5, eval_every=10**9,
                      checkpoint_every=10**9, precision=precision, sort_window=sort_window)
    schedule = BatchSchedule(data.lengths, batch, cfg.seed, sort_window)
    widths = [int(data.lengths[schedule(s)].max()) for s in range(steps)]
    real = sum(int(data.lengths[schedule(s)].sum()) for s in range(steps))
    no_fused = mock.patch.object(FusedForward, "supports", return_value=False) if bridge else contextlib.nullcontext()
    with tempfile.TemporaryDirectory() as run_dir, no_fused:
        start = time.perf_counter()
        train(model, data, cfg, Path(run_dir), progress=False)
        seconds = time.perf_counter() - start
    # the model sees tokens[:, :-1] of each batch
    positions = sum(batch * (w - 1) for w in widths)
    return {"seconds": seconds, "dataset_tokens": real, "positions": positions,
            "flops": sum(train_flops(model_cfg, batch, w - 1) for w in widths)}


def run_transformer_lens(model, model_cfg, data, steps: int, batch: int) -> dict:
    from transformer_lens.tools.training import TrainConfig, train

    full = torch.from_numpy(data.tokens.astype(np.int64))
    rows = [{"tokens": full[i]} for i in range(len(data))]
    cfg = TrainConfig(num_epochs=1, batch_size=batch, lr=1e-3, seed=0, max_grad_norm=1.0, weight_decay=0.01,
                      optimizer_name="AdamW", device="cpu", warmup_steps=5, print_every=None,
                      max_steps=steps - 1)  # its loop breaks after step index max_steps
    start = time.perf_counter()
    train(model, cfg, rows)
    seconds = time.perf_counter() - start
    # its DataLoader shuffles with torch's global RNG; the expected real-token count per row is the mean
    real = int(round(steps * batch * float(data.lengths.mean())))
    width = full.shape[1]
    return {"seconds": seconds, "dataset_tokens": real, "positions": steps * batch * width,
            "flops": steps * train_flops(model_cfg, batch, width)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from searchprobe.train.model import build_model

    task_data, data = _dataset(args.n, seed=0)
    model_cfg = _model_config(task_data, data)

    results = {}
    for name in ("transformer_lens", "ours_bf16_bridge", "ours_fp32", "ours_bf16", "ours_bf16_sorted"):
        model = build_model(model_cfg)
        if name == "transformer_lens":
            raw = run_transformer_lens(model, model_cfg, data, args.steps, args.batch)
        else:
            raw = run_ours(model, model_cfg, data, args.steps, args.batch, name.split("_")[1],
                           sort_window=16 if name.endswith("sorted") else 0, bridge=name.endswith("bridge"))
        results[name] = {
            "seconds": round(raw["seconds"], 2),
            "dataset_tokens_per_s": round(raw["dataset_tokens"] / raw["seconds"]),
            "positions_per_s": round(raw["positions"] / raw["seconds"]),
            "achieved_gflops": round(raw["flops"] / raw["seconds"] / 1e9, 1),
        }
    peak32 = matmul_peak_flops(torch.float32)
    peak16 = matmul_peak_flops(torch.bfloat16)
    tl = results["transformer_lens"]["dataset_tokens_per_s"]
    out = {
        "benchmark": "training_throughput",
        "model": "tiny preset (4 layers, d_model 128, 4 heads)",
        "data": f"{len(data)} 5x5 DFS mazes, grid layout, mean {float(data.lengths.mean()):.1f} / max {data.max_len} tokens",
        "steps": args.steps, "batch": args.batch, "threads": args.threads,
        "results": results,
        "ratio_ours_bf16_bridge_vs_tl": round(results["ours_bf16_bridge"]["dataset_tokens_per_s"] / tl, 2),
        "ratio_ours_fp32_vs_tl": round(results["ours_fp32"]["dataset_tokens_per_s"] / tl, 2),
        "ratio_ours_bf16_vs_tl": round(results["ours_bf16"]["dataset_tokens_per_s"] / tl, 2),
        "ratio_ours_bf16_sorted_vs_tl": round(results["ours_bf16_sorted"]["dataset_tokens_per_s"] / tl, 2),
        "matmul_peak_gflops": {"fp32": round(peak32 / 1e9, 1), "bf16": round(peak16 / 1e9, 1)},
        "utilisation": {
            "ours_fp32_vs_fp32_peak": round(results["ours_fp32"]["achieved_gflops"] * 1e9 / peak32, 3),
            "ours_bf16_vs_bf16_peak": round(results["ours_bf16"]["achieved_gflops"] * 1e9 / peak16, 3),
            "tl_vs_fp32_peak": round(results["transformer_lens"]["achieved_gflops"] * 1e9 / peak32, 3),
        },
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
