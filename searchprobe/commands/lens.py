"""`searchprobe lens RUN_DIR`: logit lens and tuned lens over held-out data (writes RUN_DIR/lens/)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory written by `searchprobe train`")
    parser.add_argument("--data", help="dataset directory (default: the one the run was trained on)")
    parser.add_argument("--split", default="test", help="split to read the lens on (default: test)")
    parser.add_argument("--limit", type=int, default=1000, help="at most this many examples (default: 1000)")
    parser.add_argument("--no-tuned", action="store_true", help="logit lens only (no tuned-lens training)")
    parser.add_argument("--tuned-examples", type=int, default=2000, help="training examples for the tuned lens")
    parser.add_argument("--tuned-steps", type=int, default=300, help="optimisation steps for the tuned lens")
    parser.add_argument("--tuned-lr", type=float, default=1e-3, help="Adam learning rate for the tuned lens")
    parser.add_argument("--batch-size", type=int, default=64, help="examples per forward pass")
    parser.add_argument("--force", action="store_true", help="recompute even if RUN_DIR/lens/ exists (retrains the tuned lens)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from searchprobe.errors import InputError
    from searchprobe.files import check_run_dir, read_stage_report

    for flag, value in (("--limit", args.limit), ("--tuned-examples", args.tuned_examples),
                        ("--tuned-steps", args.tuned_steps), ("--batch-size", args.batch_size)):
        if value <= 0:
            raise InputError(f"{flag} must be a positive integer, got {value}")
    if not (args.tuned_lr > 0 and args.tuned_lr < float("inf")):
        raise InputError(f"--tuned-lr must be a positive number, got {args.tuned_lr}")
    check_run_dir(args.run_dir, args.data, args.split)  # before torch is imported

    from searchprobe.lens import run_lens

    out = run_lens(args.run_dir, split=args.split, limit=args.limit, tuned=not args.no_tuned,
                   tuned_examples=args.tuned_examples, tuned_steps=args.tuned_steps, tuned_lr=args.tuned_lr,
                   batch_size=args.batch_size,
                   force=args.force, progress=not args.no_progress, data=args.data)
    print(read_stage_report(out / "report.json").get("summary", ""))
    print(f"lens results: {out}")
    return 0
