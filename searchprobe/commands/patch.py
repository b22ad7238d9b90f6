"""`searchprobe patch RUN_DIR …`: patching sweeps, ablations and goal retargeting on a trained run (any task with pairs)."""

from __future__ import annotations

import argparse


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a trained run directory")
    parser.add_argument("--data", help="dataset directory (default: the one the run was trained on)")
    parser.add_argument("--pairs", default=None, help="counterfactual pair kind, one of the task's pair_kinds (default: its first kind with a corrupted input)")
    parser.add_argument("--n", type=int, default=32, help="pairs for the patching sweeps (default: 32)")
    parser.add_argument("--sweeps", default="resid,heads,mlp", help="comma list of resid, heads, mlp, attn (default: resid,heads,mlp)")
    parser.add_argument("--ablate", action="store_true", help="ablate heads, MLPs and layers, scored by rollouts")
    parser.add_argument("--ablation-methods", default="mean", help="comma list of zero, mean, resample (default: mean)")
    parser.add_argument("--heads", help="ablate only these heads, e.g. 1.2,3.0 (layer.head; default: every component)")
    parser.add_argument("--n-ablate", type=int, default=64, help="examples rolled out per ablation (default: 64)")
    parser.add_argument("--retarget", action="store_true", help="goal retargeting by patching / steering the goal token")
    parser.add_argument("--n-retarget", type=int, default=32, help="target pairs for retargeting (default: 32)")
    parser.add_argument("--split", default="test", help="dataset split the pairs come from (default: test)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (default: 0)")
    parser.add_argument("--erase", action="store_true", help="amnesic probing: LEACE-erase the goal concept vs a random subspace")
    parser.add_argument("--no-attribution", action="store_true", help="skip attribution patching")


def _heads(text: str | None) -> list[tuple[int, int]] | None:
    from searchprobe.errors import InputError

    if not text:
        return None
    out = []
    for item in _csv(text):
        parts = item.split(".")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise InputError(f"--heads item {item!r} is not LAYER.HEAD; allowed: comma-separated pairs like 1.2,3.0")
        out.append((int(parts[0]), int(parts[1])))
    return out


def run(args: argparse.Namespace) -> int:
    from searchprobe.errors import InputError
    from pathlib import Path

    from searchprobe.files import check_run_dir, is_run_config, read_json, read_stage_report
    from searchprobe.guard import record_entries

    for flag, value in (("--n", args.n), ("--n-ablate", args.n_ablate), ("--n-retarget", args.n_retarget)):
        if value <= 0:
            raise InputError(f"{flag} must be a positive integer, got {value}")
    heads = _heads(args.heads)
    # Before torch is imported: a config.json the stage's own option checks could not even parse, and
    # for a searchprobe run the dataset and split. The stage checks its options against the run's
    # config first, then loads the run (which checks the rest of it) before it writes anything.
    config = Path(args.run_dir) / "config.json"
    if config.exists():
        read_json(config)
        if is_run_config(config):
            check_run_dir(args.run_dir, args.data, args.split, weights=False)

    from searchprobe.intervene import run_patching

    out = run_patching(args.run_dir, pairs=args.pairs, n=args.n, sweeps=_csv(args.sweeps), ablate=args.ablate or bool(args.heads),
                       retarget=args.retarget, split=args.split, seed=args.seed, n_ablate=args.n_ablate,
                       ablation_methods=_csv(args.ablation_methods), heads=heads, n_retarget=args.n_retarget,
                       attribution=not args.no_attribution, erase=args.erase, data=args.data)
    record_entries(args.run_dir, "patching")
    print(read_stage_report(out / "report.json").get("summary", ""))
    print(f"wrote {out}")
    return 0
