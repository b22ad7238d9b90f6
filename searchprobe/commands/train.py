"""`searchprobe train experiments/<name>.toml` (or `--data DIR --model PRESET`): write a run directory."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from searchprobe.config import SET_HELP

    parser.add_argument("experiment", nargs="?", help="experiment TOML (data, [model], [train])")
    parser.add_argument("--data", help="dataset directory or task TOML (instead of an experiment file)")
    parser.add_argument("--model", default=None, help="model preset: nano, micro, tiny, small")
    parser.add_argument("--out", required=True, help="run directory to write")
    parser.add_argument("--steps", type=int, metavar="N", help="override train.steps (the cosine schedule is sized for it); lifts the "
                        "TOML's train.time_limit_s, so the run reaches step N (add --time-limit S to keep a limit)")
    parser.add_argument("--time-limit", type=float, metavar="S", help="stop after this many seconds (override train.time_limit_s); "
                        "a run it stops says so, and finished.json records it")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=SET_HELP + " (the flags above win over it)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import os

    from searchprobe.config import apply_overrides, from_dict
    from searchprobe.errors import ConfigError
    from searchprobe.train.run import ExperimentConfig, load_experiment, train_run

    if args.experiment:
        cfg = load_experiment(args.experiment, args.overrides)
        if args.data:
            cfg = dataclasses.replace(cfg, data=args.data)
    elif args.data:  # the experiment's keys from --set alone (--data wins over a --set data=…)
        cfg = from_dict(ExperimentConfig, {**apply_overrides({}, args.overrides), "data": args.data},
                        "--set" if args.overrides else "--data")
    else:
        raise ConfigError("give an experiment TOML or --data DIR (see `searchprobe train --help`)")
    if args.model:
        cfg = dataclasses.replace(cfg, model={**{k: v for k, v in cfg.model.items() if k != "preset"}, "preset": args.model})
        cfg.model_config()  # validate the preset now, before any work
    overrides = {}
    if args.steps is not None:
        overrides["steps"] = args.steps
        overrides["time_limit_s"] = None  # --steps N means N steps: the TOML's time limit would cut them short
    if args.time_limit is not None:
        overrides["time_limit_s"] = args.time_limit
    if overrides:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **overrides))
    cfg.model_config()  # the model table is checked before any work
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        import torch

        if torch.cuda.is_available():  # one GPU per process: torchrun's LOCAL_RANK picks it
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        final = train_run(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    finally:
        if distributed:
            import torch

            torch.distributed.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"run": args.out, "eval": final}, indent=2))
    return 0
