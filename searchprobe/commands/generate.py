"""`searchprobe generate tasks/<name>.toml …`: write a task dataset (HF Arrow + vocab + config + card).

The TOML's top-level ``task`` key picks the task; its module
``searchprobe.tasks.<task>.dataset`` provides ``generate_from_toml(path, out=None, n=None,
seed=None, shard=None, overwrite=False, workers=1, progress=False) -> Path``. Everything is
validated before any work, and the output directory appears only when the dataset is complete.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import re
from pathlib import Path

from searchprobe.errors import ConfigError, InputError

_TASK_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task_file", type=Path, metavar="TASK.toml", help="task recipe, e.g. tasks/maze-dfs-7x7.toml")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR", help="output directory (default: data/<name>)")
    parser.add_argument("--n", type=int, default=None, metavar="N", help="number of examples (overrides the TOML)")
    parser.add_argument("--seed", type=int, default=None, metavar="S", help="dataset seed (overrides the TOML)")
    parser.add_argument("--shard", default=None, metavar="i/N", help="generate only shard i of N (contiguous index range)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), metavar="K",
                        help="worker processes (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def task_module(task_file: Path):
    """The dataset module of the task named by the TOML's top-level ``task`` key."""
    from searchprobe.config import load_toml

    task = load_toml(task_file).get("task")
    if not isinstance(task, str) or not _TASK_NAME.match(task):
        raise ConfigError(f"{task_file}: top-level key 'task' is {task!r}; expected a task name such as 'maze' or 'chess'")
    try:
        return importlib.import_module(f"searchprobe.tasks.{task}.dataset")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("searchprobe.tasks"):
            raise ConfigError(f"{task_file}: task {task!r} is unknown (no module searchprobe.tasks.{task}.dataset)") from None
        raise


def run(args: argparse.Namespace) -> int:
    from searchprobe.tasks.store import parse_shard

    if args.n is not None and args.n <= 0:
        raise InputError(f"--n {args.n} must be a positive number of examples")
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers {args.workers} must be at least 1")
    shard = parse_shard(args.shard) if args.shard is not None else None
    module = task_module(args.task_file)
    kwargs = dict(out=args.out, n=args.n, seed=args.seed, shard=shard, overwrite=args.overwrite)
    accepted = inspect.signature(module.generate_from_toml).parameters
    for name, value in (("workers", args.workers), ("progress", not args.quiet)):
        if name in accepted:
            kwargs[name] = value
    out = module.generate_from_toml(args.task_file, **kwargs)
    print(out)
    return 0
