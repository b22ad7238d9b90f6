"""`searchprobe eval RUN_DIR [--data DIR]`: greedy rollouts on held-out data; print and save the metrics."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory written by `searchprobe train`")
    parser.add_argument("--data", help="dataset directory (default: the one the run was trained on)")
    parser.add_argument("--split", default="test", help="split to evaluate on (default: test)")
    parser.add_argument("--limit", type=int, default=1000, help="at most this many examples (default: 1000)")


def run(args: argparse.Namespace) -> int:
    from searchprobe.errors import InputError
    from searchprobe.files import check_run_dir

    if args.limit <= 0:
        raise InputError(f"--limit must be a positive integer, got {args.limit}")
    check_run_dir(args.run_dir, args.data, args.split)  # before torch is imported

    from searchprobe.train.run import evaluate_run

    result = evaluate_run(args.run_dir, args.data, split=args.split, limit=args.limit)
    print(json.dumps(result, indent=2))
    return 0
