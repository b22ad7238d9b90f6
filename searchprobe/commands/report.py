"""`searchprobe report RUN_DIR`: write RUN_DIR/report.html, one self-contained page (images embedded)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory written by `searchprobe train`")
    parser.add_argument("--examples", type=int, default=4, help="example pictures of the dataset (default: 4)")


def run(args: argparse.Namespace) -> int:
    from searchprobe.errors import InputError
    from searchprobe.files import check_run_dir

    if args.examples < 0:
        raise InputError(f"--examples must be >= 0, got {args.examples}")
    if args.examples > 64:
        raise InputError(f"--examples must be at most 64 pictures, got {args.examples}")
    check_run_dir(args.run_dir, check_data=False)  # a gone or damaged dataset is a note in the report

    from searchprobe.report import build_report

    result = build_report(args.run_dir, n_examples=args.examples)
    for note in result.missing:
        print(f"note: missing {note}")
    print(f"report: {result.html_path}")
    return 0
