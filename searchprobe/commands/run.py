"""`searchprobe run experiments/<exp>.toml`: chain generate → train → lens → probe → patch → report."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from searchprobe.config import SET_HELP

    parser.add_argument("experiment", help="experiment TOML naming the stages and their options")
    parser.add_argument("--out", help="run directory (default: the experiment's [run] dir, else runs/<name>)")
    parser.add_argument("--force", action="store_true", help="redo stages whose output already exists")
    parser.add_argument("--only", help="comma-separated stages to run (default: all the experiment names)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=SET_HELP + " (e.g. --set train.steps=300 --set data.n=2000)")


def run(args: argparse.Namespace) -> int:
    from searchprobe.pipeline import load_pipeline, run_pipeline

    pipeline = load_pipeline(args.experiment, out=args.out, overrides=args.overrides)
    only = [s.strip() for s in args.only.split(",")] if args.only else None
    result = run_pipeline(pipeline, force=args.force, only=only, progress=not args.no_progress)
    print(result.describe())
    return 1 if result.failed else 0
