"""`searchprobe run experiments/<exp>.toml`: chain generate → train → lens → probe → patch → report."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", help="experiment TOML naming the stages and their options")
    parser.add_argument("--out", help="run directory (default: the experiment's [run] dir, else runs/<name>)")
    parser.add_argument("--force", action="store_true", help="redo stages whose output already exists")
    parser.add_argument("--only", help="comma-separated stages to run (default: all the experiment names)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from searchprobe.pipeline import load_pipeline, run_pipeline

    pipeline = load_pipeline(args.experiment, out=args.out)
    only = [s.strip() for s in args.only.split(",")] if args.only else None
    result = run_pipeline(pipeline, force=args.force, only=only, progress=not args.no_progress)
    print(result.describe())
    return 1 if result.failed else 0
