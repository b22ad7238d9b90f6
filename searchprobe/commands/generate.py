"""`searchprobe generate tasks/<name>.toml …`: write a task dataset (HF Arrow + vocab + config + card).

The TOML's top-level ``task`` key names the task (a built-in name, an entry point of the
``searchprobe.tasks`` group, or ``"package.module:attr"``); its `Task.generate` writes the dataset.
Everything is validated before any work, and the output directory appears only when the dataset
is complete.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from searchprobe.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from searchprobe.config import SET_HELP

    parser.add_argument("task_file", type=Path, metavar="TASK.toml", help="task recipe, e.g. tasks/maze-dfs-7x7.toml")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR", help="output directory (default: data/<name>)")
    parser.add_argument("--n", type=int, default=None, metavar="N", help="number of examples (overrides the TOML)")
    parser.add_argument("--seed", type=int, default=None, metavar="S", help="dataset seed (overrides the TOML)")
    parser.add_argument("--shard", default=None, metavar="i/N", help="generate only shard i of N (contiguous index range)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), metavar="K",
                        help="worker processes (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=SET_HELP + " (--n and --seed win over it)")


def task_of_file(task_file: Path):
    """The `Task` named by the TOML's top-level ``task`` key."""
    from searchprobe.config import load_toml
    from searchprobe.tasks.base import get_task

    return get_task(load_toml(task_file).get("task"), f"{task_file}: top-level key 'task'")


def check_recipe(task_file: Path, n: int | None, shard: tuple[int, int] | None) -> None:
    """Checks every task's recipe gets before any work: a plain ``name`` (it becomes the output
    folder's name) and an example count whose bookkeeping fits in memory."""
    from searchprobe.config import load_toml
    from searchprobe.guard import check_example_count, plain_name

    raw = load_toml(task_file)
    if "name" in raw:
        plain_name(raw["name"], f"{task_file}: name")
    count = n if n is not None else raw.get("n")
    if isinstance(count, int) and not isinstance(count, bool) and count > 0:
        if shard is not None:
            count = -(-count // shard[1])
        check_example_count(count, "--n" if n is not None else f"{task_file}: n")


def run(args: argparse.Namespace) -> int:
    from searchprobe.config import toml_overrides

    # --set key=value: every reader of the task TOML (these checks and the task's own loader) sees
    # the file with the overrides applied, so they are validated exactly like the file's keys.
    with toml_overrides(args.task_file, args.overrides):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from searchprobe.guard import check_out_path, cpu_count, note
    from searchprobe.tasks.store import check_replaceable, parse_shard

    if args.n is not None and args.n <= 0:
        raise InputError(f"--n {args.n} must be a positive number of examples")
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers {args.workers} must be at least 1")
    if args.seed is not None and args.seed < 0:
        raise InputError(f"--seed {args.seed} must be >= 0")
    shard = parse_shard(args.shard) if args.shard is not None else None
    if args.out is not None:
        check_out_path(args.out)
        if args.overwrite:
            check_replaceable(args.out)
        elif args.out.is_dir() and any(args.out.iterdir()):
            raise InputError(f"output directory {args.out} exists and is not empty (pass --overwrite to replace it)")
    check_recipe(args.task_file, args.n, shard)
    workers = args.workers
    if workers > cpu_count():
        note(f"--workers {workers} is more than the {cpu_count()} CPUs this process may use; using {cpu_count()}")
        workers = cpu_count()
    task = task_of_file(args.task_file)
    out = task.generate(args.task_file, out=args.out, n=args.n, seed=args.seed, shard=shard, overwrite=args.overwrite,
                        workers=workers, progress=not args.quiet)
    print(out)
    return 0
