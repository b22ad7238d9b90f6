"""Training memory: `searchprobe.train.memory.estimate_training_memory` against the measured peak.

    python experiments/benchmarks/memory_estimate.py [--steps 3 30] [--only NAME ...]

For each configuration and step count a child process imports torch, TransformerLens and
searchprobe, reads the dataset and its training tokens (what `train_run` holds when it checks
memory), notes its resident set size, then builds the model and runs the real training loop
(`searchprobe.train.loop.train`: the AdamW steps, one evaluation by greedy rollouts and one
checkpoint at the end, as a run does). The measured peak is ``ru_maxrss`` minus that resident
size; the estimate is what `train_run` computes for the same run. Prints JSON: per configuration
the shape, the estimate by part, the measured peak and measured / estimated (`ratio`), and
whether every ratio lies within [0.5, 2].

Two step counts, because glibc's heap keeps the holes that batches of other widths leave: the
resident peak climbs over the first hundred steps (the estimate's allocator slack; see
`searchprobe.train.memory`). Measured on the 2-core CPU machine (torch CPU, 2 threads; MiB):

    configuration (grid-layout DFS mazes)        estimate   3 steps        30 steps
    nano,  5×5 (seq 59),  batch 64, fp32            147      137 (0.93)     167 (1.13)
    tiny,  5×5 (seq 59),  batch 256, bf16           729      614 (0.84)     862 (1.18)
    micro, 12×12 (seq 255), batch 32, fp32          752      632 (0.84)     919 (1.22)

and with ``--only micro-12x12-b96`` (attention patterns above glibc's 32 MiB mmap threshold,
counted once): estimate 1364, measured 1107 after 3 steps (0.81), 1289 after 20 (0.95).
A longer run of micro 12×12 batch 32 (150 steps, no evaluation) reached 1153 MiB (1.53).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: name -> (preset, maze side, mazes, batch size, precision)
CONFIGS: dict[str, tuple[str, int, int, int, str]] = {
    "nano-5x5": ("nano", 5, 2000, 64, "fp32"),
    "tiny-5x5-b256": ("tiny", 5, 2000, 256, "bf16"),
    "micro-12x12": ("micro", 12, 600, 32, "fp32"),
    "micro-12x12-b96": ("micro", 12, 600, 96, "fp32"),  # not run by default (slower)
}
DEFAULT = ("nano-5x5", "tiny-5x5-b256", "micro-12x12")


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def child(spec: dict) -> dict:
    """Run in a fresh process: estimate, then train and measure."""
    import torch
    import transformer_lens.model_bridge.sources.native  # noqa: F401
    from searchprobe.tasks.store import read_dataset
    from searchprobe.train.checkpoint import save_train_state  # noqa: F401
    from searchprobe.train.config import TrainConfig
    from searchprobe.train.loop import train
    from searchprobe.train.memory import estimate_training_memory, eval_prompt_lengths, rollout_shapes
    from searchprobe.train.model import build_model, count_parameters, preset
    from searchprobe.train.task_data import TaskData

    torch.set_num_threads(int(spec["threads"]))
    task_data = TaskData(read_dataset(spec["data"]))
    train_data = task_data.token_data("train")
    model_cfg = preset(spec["preset"]).with_data(len(task_data.vocab), train_data.max_len)
    cfg = TrainConfig(steps=spec["steps"], batch_size=spec["batch"], warmup_steps=1, eval_every=spec["steps"],
                      checkpoint_every=spec["steps"], precision=spec["precision"], device="cpu")
    shapes = rollout_shapes(eval_prompt_lengths(task_data, "validation", spec["eval_examples"]))
    estimate = estimate_training_memory(model_cfg, cfg.batch_size, train_data.max_len, precision=cfg.precision,
                                        eval_shapes=shapes)
    base_rss, base_peak = _rss(), _peak()

    def evaluate(m, step):
        m.eval()
        try:
            return task_data.evaluate(m, "validation", spec["eval_examples"])
        finally:
            m.train()

    start = time.perf_counter()
    model = build_model(model_cfg, device="cpu")
    with tempfile.TemporaryDirectory() as run_dir:
        train(model, train_data, cfg, Path(run_dir), evaluate=evaluate, progress=False)
    seconds = time.perf_counter() - start
    measured = _peak() - base_rss
    return {"model": {"preset": spec["preset"], "n_layers": model_cfg.n_layers, "d_model": model_cfg.d_model,
                      "n_heads": model_cfg.n_heads, "d_vocab": model_cfg.d_vocab, "n_ctx": model_cfg.n_ctx,
                      "parameters": count_parameters(model)},
            "batch": cfg.batch_size, "seq_len": train_data.max_len, "precision": cfg.precision,
            "eval_shapes": sorted(shapes), "steps": cfg.steps,
            "estimate": estimate.as_dict(), "baseline_rss": base_rss, "peak_before_training": base_peak,
            "measured": measured, "ratio": round(measured / estimate.total, 3), "seconds": round(seconds, 1)}


def _dataset(side: int, n: int, root: Path) -> Path:
    from searchprobe.tasks.maze.config import MazeConfig
    from searchprobe.tasks.maze.dataset import generate_dataset

    path = root / f"maze{side}-n{n}"
    if not (path / "config.json").exists():
        generate_dataset(MazeConfig(rows=side, cols=side, n=n, seed=0, token_format="grid", labels=False), path,
                         overwrite=True)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[3, 30],
                        help="training steps of each measurement (one child process per value)")
    parser.add_argument("--eval-examples", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="*", choices=sorted(CONFIGS), help="run only these configurations")
    parser.add_argument("--data-root", help="where to keep the generated datasets (default: a temporary folder)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    root = Path(args.data_root or tempfile.mkdtemp(prefix="memory-estimate-"))
    results = {}
    for name in args.only or DEFAULT:
        preset_name, side, n, batch, precision = CONFIGS[name]
        for steps in args.steps:
            spec = {"preset": preset_name, "data": str(_dataset(side, n, root)), "batch": batch,
                    "precision": precision, "steps": steps, "eval_examples": args.eval_examples,
                    "threads": args.threads}
            proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True,
                                  text=True)
            key = f"{name}/{steps}-steps"
            if proc.returncode:
                results[key] = {"error": proc.stderr.strip().splitlines()[-1:]}
                continue
            results[key] = json.loads(proc.stdout.strip().splitlines()[-1])
    ok = all("ratio" in r and 0.5 <= r["ratio"] <= 2.0 for r in results.values())
    print(json.dumps({"configs": results, "within_2x": ok}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
