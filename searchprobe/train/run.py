"""Run directories: train a model on a task dataset, evaluate it by rollouts, load it back.

A run directory holds ``model.safetensors``, ``config.json`` (model, training, task,
tokenizer, dataset fingerprint and vocabulary, code version), ``train_state/`` for resume,
``metrics.jsonl`` and ``eval.json``. `load_run` gives analysis code the bridge model, the
tokenizer and the config in one call, and refuses a dataset whose vocabulary differs.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from searchprobe import __version__
from searchprobe.config import from_dict, load_toml, to_dict
from searchprobe.errors import ConfigError, DataError, FingerprintMismatch, InputError
from searchprobe.files import (FINISHED, RUN_FORMAT, check_run_dir, dataset_location, read_run_config, run_dataset_path,
                               stopped_message, vocab_list, warn_if_unfinished)
from searchprobe.io import atomic_write_json
from searchprobe.tasks.base import Task, get_task, task_of
from searchprobe.train.config import TrainConfig
from searchprobe.train.model import ModelConfig, preset
from searchprobe.train.task_data import TaskData


@dataclass(frozen=True)
class ExperimentConfig:
    """What `searchprobe train experiments/<name>.toml` reads.

    `data` is a dataset directory, or a task TOML to generate one from (into `<out>/data`).
    `model.preset` picks a named shape; the other model keys override it.
    """

    data: str
    model: dict[str, Any] = field(default_factory=lambda: {"preset": "tiny"})
    train: TrainConfig = field(default_factory=TrainConfig)
    eval_examples: int = 512  #: held-out mazes/puzzles per evaluation
    eval_split: str = "validation"
    n: int | None = None  #: with a task TOML as data: how many examples to generate

    def __post_init__(self) -> None:
        if isinstance(self.eval_examples, bool) or not isinstance(self.eval_examples, int) or self.eval_examples <= 0:
            raise ConfigError(f"experiment: eval_examples = {self.eval_examples!r}; allowed: a positive number of "
                              "held-out examples")
        if not isinstance(self.eval_split, str) or not self.eval_split:
            raise ConfigError(f"experiment: eval_split = {self.eval_split!r}; allowed: the name of a dataset split")
        if self.n is not None and (isinstance(self.n, bool) or not isinstance(self.n, int) or self.n <= 0):
            raise ConfigError(f"experiment: n = {self.n!r}; allowed: a positive number of examples")
        if not isinstance(self.model, dict):
            raise ConfigError(f"experiment: [model] must be a table, got {self.model!r}")

    def model_config(self) -> ModelConfig:
        options = dict(self.model)
        base = preset(options.pop("preset", "tiny"))
        return from_dict(ModelConfig, {**to_dict(base), **options}, "experiment [model]")


def load_experiment(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """An experiment TOML, with ``--set key.sub=value`` `overrides` applied before it is checked."""
    data = load_toml(path, overrides)
    data.pop("name", None)
    return from_dict(ExperimentConfig, data, str(path))


# --- train / eval / load -----------------------------------------------------------------------
def declared_splits(data: str | Path) -> list[str] | None:
    """The split names a dataset will have: a dataset directory's own, a task TOML's ``[splits]``
    (or the store's default splits); None when the dataset does not exist yet."""
    from searchprobe.files import dataset_splits
    from searchprobe.tasks.store import DEFAULT_SPLITS

    data = Path(data)
    if data.suffix == ".toml":
        splits = load_toml(data).get("splits", DEFAULT_SPLITS)
        return list(splits) if isinstance(splits, dict) else None
    if data.exists():
        return dataset_splits(data)
    return None


def check_eval_split(cfg: ExperimentConfig, data: str | Path | None = None) -> None:
    """A one-line error, before any work, when the evaluation split is not one the dataset has."""
    splits = declared_splits(cfg.data if data is None else data)
    if splits is not None and cfg.eval_split not in splits:
        raise ConfigError(f"eval_split = {cfg.eval_split!r}: dataset {cfg.data} has no such split; "
                          f"allowed: {', '.join(splits)}")


def prepare_data(cfg: ExperimentConfig, out: Path):
    """Open the experiment's dataset (generating it first when `data` is a task TOML)."""
    from searchprobe.guard import record_entries
    from searchprobe.tasks.store import is_dataset_dir, read_dataset

    data = Path(cfg.data)
    if data.suffix == ".toml":
        task = get_task(load_toml(data).get("task"), f"{data}: top-level key 'task'")
        target = out / "data"
        if not is_dataset_dir(target):
            record_entries(out, "data")
            task.generate(data, out=target, n=cfg.n, overwrite=True)
        data = target
    return read_dataset(data)


def plan_run(out: Path, resume: bool, *, quiet: bool = False) -> bool:
    """Whether `train` into `out` resumes (True) or starts fresh (False); a one-line error when it
    may do neither. A run that died before its first checkpoint starts over (with or without
    --resume); a folder searchprobe did not write (a Hugging Face model folder has config.json and
    model.safetensors too) is never written into."""
    from searchprobe.guard import foreign_run_entries, note
    from searchprobe.train.checkpoint import find_train_state

    config = out / "config.json"
    if config.exists() or config.is_symlink():
        try:
            read_run_config(out)
        except DataError as exc:
            raise DataError(f"{exc}; searchprobe writes only into its own run directories: choose another --out") from None
        if find_train_state(out) is None:
            if resume and not quiet:
                note(f"{out} has no checkpoint yet (its training stopped before the first one); starting from step 0")
            return False
        if not resume:
            raise ConfigError(f"run directory {out} already holds a run (pass --resume to continue it, or choose another --out)")
        return True
    if resume:
        raise ConfigError(f"--resume: {out} holds no run to resume (config.json is missing); run without --resume")
    foreign = foreign_run_entries(out)
    if foreign:
        raise DataError(f"{out / foreign[0]} exists but searchprobe did not write it; choose another --out")
    return False


def train_run(cfg: ExperimentConfig, out: str | Path, *, resume: bool = False, progress: bool = True,
              stop_after_step: int | None = None) -> dict[str, Any]:
    """Train per `cfg` into run directory `out`; returns the final evaluation.

    The run directory is locked for the whole training (`searchprobe.guard.lock_directory`), and
    ``finished.json`` marks a run that reached its last step (or its time limit). A run whose
    estimated peak memory (`searchprobe.train.memory`) exceeds what the machine or its cgroup has
    available is refused before the model is built."""
    import torch

    from searchprobe.guard import check_out_path, lock_directory

    out = check_out_path(out)
    if not Path(cfg.data).exists():
        raise DataError(f"data {cfg.data} does not exist; give a dataset directory or a task TOML")
    check_eval_split(cfg)
    from searchprobe.train.memory import check_run_memory

    check_run_memory(cfg, cfg.model_config())  # a model whose weights and AdamW state cannot fit fails instantly
    plan_run(out, resume, quiet=True)  # fails fast, before the lock or anything is written
    if Path(cfg.data).suffix != ".toml":  # a dataset directory: its files, task, splits and vocabulary
        from searchprobe.tasks.store import read_dataset

        ready = TaskData(read_dataset(cfg.data))
        ready.split("train")
        ready.split(cfg.eval_split)
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    rank = torch.distributed.get_rank() if distributed else 0
    with lock_directory(out) if rank == 0 else contextlib.nullcontext(out):
        return _train_run(cfg, out, resume=resume, progress=progress, stop_after_step=stop_after_step,
                          distributed=distributed, rank=rank)


def _train_run(cfg: ExperimentConfig, out: Path, *, resume: bool, progress: bool, stop_after_step: int | None,
               distributed: bool, rank: int) -> dict[str, Any]:
    import torch

    from searchprobe.guard import TRAIN_ENTRIES, record_entries, remove_owned
    from searchprobe.train.loop import pick_device, train
    from searchprobe.train.memory import check_run_memory
    from searchprobe.train.model import build_model, count_parameters

    resume = plan_run(out, resume)
    stored = prepare_data(cfg, out) if rank == 0 else None  # rank 0 generates the data, if it must
    if distributed:
        torch.distributed.barrier()  # the data exists, and every rank has looked before rank 0 writes config.json
    if stored is None:
        stored = prepare_data(cfg, out)
    task_data = TaskData(stored)
    task_data.split(cfg.eval_split)  # a missing or empty evaluation split fails now, not after training
    train_data = task_data.token_data("train")
    model_cfg = cfg.model_config().with_data(len(task_data.vocab), train_data.max_len)
    if cfg.train.threads is not None:
        torch.set_num_threads(cfg.train.threads)
    device = pick_device(cfg.train.device)
    world = torch.distributed.get_world_size() if distributed else 1
    check_run_memory(cfg, model_cfg, train_data, task_data, device, world)  # before the model is built
    model = build_model(model_cfg, device=str(device))
    n_params = count_parameters(model)
    run_config = {
        "format": RUN_FORMAT,
        "code_version": __version__,
        "model": to_dict(model_cfg),
        "n_params": n_params,
        "train": to_dict(cfg.train),
        "experiment": to_dict(cfg),
        "task": stored.config.get("task"),
        "dataset": {**dataset_location(stored.path, out), "name": stored.config.get("name"), "fingerprint": stored.fingerprint,
                    "tokenizer": stored.config.get("tokenizer"), "task_config": stored.config.get("config")},
        "vocab": task_data.vocab,
    }
    if resume:
        _check_same_run(out, run_config)
    elif rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        record_entries(out, *TRAIN_ENTRIES, ".train_state.tmp", ".train_state.old")
        remove_owned(out, only=[n for n in TRAIN_ENTRIES if n != "config.json"] + [".train_state.tmp"])
        atomic_write_json(out / "config.json", run_config)
    if rank == 0:
        (out / FINISHED).unlink(missing_ok=True)  # set again only when this training reaches its end
    if rank == 0:
        print(f"model: {n_params:,} parameters ({model_cfg.n_layers} layers, d_model {model_cfg.d_model}, "
              f"{model_cfg.n_heads} heads); {len(train_data):,} training sequences of ≤ {train_data.max_len} tokens")

    def evaluate(m, step):
        m.eval()
        try:
            return task_data.evaluate(m, cfg.eval_split, cfg.eval_examples)
        finally:
            m.train()

    torch.manual_seed(cfg.train.seed)
    result = train(model, train_data, cfg.train, out, evaluate=evaluate, resume=resume, progress=progress,
                   stop_after_step=stop_after_step)
    finished = result.stopped in ("steps", "time_limit")
    if rank != 0:
        return result.last_eval or {}
    if result.last_eval is None and finished:  # resumed at its last step: evaluate the weights it has
        model.eval()
        result.last_eval = evaluate(model, result.step)
    final = result.last_eval or {}
    atomic_write_json(out / "eval.json", {"split": cfg.eval_split, "step": result.step, "metrics": final,
                                         "elapsed_s": round(result.elapsed_s, 2), "tokens_seen": result.tokens_seen})
    if finished:
        marker = {"step": result.step, "steps": cfg.train.steps, "stopped": result.stopped,
                  "time_limit_s": cfg.train.time_limit_s, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        atomic_write_json(out / FINISHED, marker)
        stopped = stopped_message(marker)  # a time limit that cut the schedule short is said, not silent
        if stopped:
            from searchprobe.guard import warn

            warn(stopped)
    return final


def _check_same_run(out: Path, run_config: dict[str, Any]) -> None:
    saved = read_run_config(out)
    for key in ("model", "vocab"):
        if saved.get(key) != run_config.get(key):
            raise FingerprintMismatch(f"cannot resume {out}: its {key} differs from this experiment's")
    if saved["dataset"].get("fingerprint") != run_config["dataset"]["fingerprint"]:
        raise FingerprintMismatch(
            f"cannot resume {out}: it was trained on dataset {saved['dataset']['fingerprint']}, not {run_config['dataset']['fingerprint']}")


@dataclass
class LoadedRun:
    """A trained run, ready for analysis."""

    model: Any  #: the TransformerBridge, in eval mode
    tokenizer: Any  #: the task's tokenizer (e.g. MazeTokenizer, or the chess tokens module)
    config: dict[str, Any]  #: the run's config.json
    run_dir: Path
    vocab: list[str]
    dataset: Any = None  #: the StoredDataset, when one was given or found
    task: Task | None = None  #: the run's task (from its config.json)

    def __repr__(self) -> str:
        model = self.config.get("model", {})
        data = f"dataset {self.dataset.path}" if self.dataset is not None else "no dataset"
        return (f"LoadedRun({str(self.run_dir)!r}, task={self.config.get('task')!r}, {model.get('n_layers')} layers × "
                f"d_model {model.get('d_model')}, {data})")

    def activations(self, hooks: Sequence[str], roles: Sequence[str], *, split: str = "test", n: int = 1000,
                    dtype: str = "float32", progress: bool = False):
        """Activations at the positions of `roles`, indexed like ``acts["resid_pre", 2, "target"]``
        (see `searchprobe.acts.Activations`); computed once and cached in the run's ``acts/`` folder."""
        from searchprobe.acts import run_activations

        return run_activations(self, hooks, roles, split=split, n=n, dtype=dtype, progress=progress)

    def labels(self, name: str, *, split: str = "test", n: int = 1000, role: str | None = None) -> np.ndarray:
        """Probe label `name` of the first `n` rows of `split` (the rows `activations` returns, in the
        same order); per-step labels (e.g. a maze's ``next_cell``) need the `role` of the step."""
        from searchprobe.probe.labels import label_targets

        task_data = self.data
        rows = task_data.split(split)
        n = min(n, len(rows))
        label_set = self.task.label_set(self.dataset, split, n, [role] if role else [])
        specs = label_set.by_name()
        if name not in specs:
            raise InputError(f"unknown label {name!r} for task {self.task.name!r}; allowed: {', '.join(specs)}")
        spec = specs[name]
        step = self.task.step_of_role(role) if role else None
        if spec.per_step and step is None:
            raise InputError(f"label {name!r} is per solution step: pass role= one of the task's step roles")
        arrays = label_set.arrays(rows.select(range(n)).with_format("numpy")[:])
        return label_targets(spec, arrays[spec.stored], step)

    @property
    def data(self) -> TaskData:
        """The run's dataset seen through its task (a clear error when the dataset is gone)."""
        if self.dataset is None:
            raise DataError(f"the dataset of run {self.run_dir} is gone ({run_dataset_path(self.run_dir, self.config)}); "
                            "pass --data DIR")
        return TaskData(self.dataset, self.task)


def load_run(run_dir: str | Path, data: str | Path | None = None, device: str | None = None) -> LoadedRun:
    """Load the bridge model, tokenizer and config of a run; refuse a dataset with another vocabulary.

    `data` defaults to the dataset the run was trained on (if it still exists).
    """
    from searchprobe.tasks.store import read_dataset
    from searchprobe.train.checkpoint import load_weights
    from searchprobe.train.model import build_model
    from searchprobe.train.tokenizer import attach_tokenizer

    run_dir = Path(run_dir)
    config = check_run_dir(run_dir, data)
    warn_if_unfinished(run_dir, config)
    model_cfg = from_dict(ModelConfig, config["model"], f"{run_dir}/config.json [model]")
    model = build_model(model_cfg, device=device)
    load_weights(model, run_dir / "model.safetensors")
    model.eval()
    stored = None
    data_path = Path(data) if data is not None else run_dataset_path(run_dir, config)
    if data is not None or data_path.exists():
        stored = read_dataset(data_path)
        vocab = vocab_list(stored.vocab, data_path / "vocab.json")
        if vocab != config["vocab"]:
            raise FingerprintMismatch(
                f"dataset {data_path} has a {len(vocab)}-token vocabulary that differs from the model's "
                f"({len(config['vocab'])} tokens, from {config['dataset'].get('name')}); use a dataset made with the same tokenizer")
    task = task_of(config, f"{run_dir}/config.json")
    attach_tokenizer(model, config["vocab"], task.pad_token, task.stop_token)  # to_str_tokens & co. on the bridge
    tokenizer = task.tokenizer(stored.config if stored is not None else config["dataset"])
    return LoadedRun(model, tokenizer, config, run_dir, config["vocab"], stored, task)


def evaluate_run(run_dir: str | Path, data: str | Path | None = None, split: str = "test",
                 limit: int = 1000) -> dict[str, Any]:
    run = load_run(run_dir, data)
    task_data = run.data
    start = time.perf_counter()
    metrics = task_data.evaluate(run.model, split, limit)
    result = {"split": split, "dataset": str(run.dataset.path), "metrics": metrics,
              "seconds": round(time.perf_counter() - start, 2)}
    atomic_write_json(Path(run_dir) / f"eval-{split}.json", result)
    from searchprobe.guard import record_entries

    record_entries(run_dir, f"eval-{split}.json")
    return result
