"""`searchprobe probe RUN_DIR`: linear probes for every hook × position role × label, with controls."""

from __future__ import annotations

import argparse


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory (model.safetensors, config.json)")
    parser.add_argument("--labels", type=_csv, default=None,
                        help="comma-separated labels (default for mazes: target_cell,next_cell,ahead_2,ahead_3,on_path,"
                             "walls_current,dead_end,connectivity,expanded_bfs,dist_to_target; for chess: opp_king,"
                             "mating_square,first_to,ply_3_to,opp_attacks,king_escapes,occupied,mine,search_focus_to)")
    parser.add_argument("--hooks", type=_csv, default=None,
                        help="comma-separated TransformerLens hook names (default: resid_pre of every layer + last resid_post)")
    parser.add_argument("--positions", type=_csv, default=None,
                        help="comma-separated token roles, e.g. target,path_start,path:0,path:3 (default: a standard set)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="probe a role only on the sequences that have it, instead of refusing")
    parser.add_argument("--max-examples", type=int, default=1000, help="examples from the split (default 1000)")
    parser.add_argument("--split", default="train", help="dataset split to take examples from (default train)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"], help="activation storage dtype")
    parser.add_argument("--data", default=None, help="dataset directory (default: the run's own)")
    parser.add_argument("--random-init-seed", type=int, default=12345, help="init seed of the random-model baseline")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples for the CIs (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the probe split, folds and control tasks")
    parser.add_argument("--overwrite", action="store_true", help="replace activation stores written by another model")


def run(args: argparse.Namespace) -> int:
    from searchprobe.files import check_run_dir
    from searchprobe.probe.checks import check_probe_options

    check_probe_options(max_examples=args.max_examples, n_boot=args.boot, seed=args.seed,
                        random_init_seed=args.random_init_seed)
    check_run_dir(args.run_dir, args.data, args.split)  # before torch is imported

    from searchprobe.probe.run import run_probes

    out = run_probes(args.run_dir, labels=args.labels, hooks=args.hooks, positions=args.positions,
                     max_examples=args.max_examples, dtype=args.dtype, split=args.split, data=args.data,
                     random_init_seed=args.random_init_seed, n_boot=args.boot, seed=args.seed,
                     allow_missing=args.allow_missing, overwrite=args.overwrite)
    print(f"probes written to {out}")
    return 0
