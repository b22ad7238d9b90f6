"""Run directories: train a model on a task dataset, evaluate it by rollouts, load it back.

A run directory holds ``model.safetensors``, ``config.json`` (model, training, task,
tokenizer, dataset fingerprint and vocabulary, code version), ``train_state/`` for resume,
``metrics.jsonl`` and ``eval.json``. `load_run` gives analysis code the bridge model, the
tokenizer and the config in one call, and refuses a dataset whose vocabulary differs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from searchprobe import __version__
from searchprobe.config import from_dict, load_toml, to_dict
from searchprobe.errors import ConfigError, DataError, FingerprintMismatch, InputError
from searchprobe.io import atomic_write_json
from searchprobe.tasks.base import Task, get_task, task_of
from searchprobe.train.loop import TrainConfig
from searchprobe.train.model import ModelConfig, preset
from searchprobe.train.task_data import TaskData

RUN_FORMAT = "searchprobe-run/1"


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

    def model_config(self) -> ModelConfig:
        options = dict(self.model)
        base = preset(options.pop("preset", "tiny"))
        return from_dict(ModelConfig, {**to_dict(base), **options}, "experiment [model]")


def load_experiment(path: str | Path) -> ExperimentConfig:
    data = load_toml(path)
    data.pop("name", None)
    return from_dict(ExperimentConfig, data, str(path))


# --- train / eval / load -----------------------------------------------------------------------
def prepare_data(cfg: ExperimentConfig, out: Path):
    """Open the experiment's dataset (generating it first when `data` is a task TOML)."""
    from searchprobe.tasks.store import read_dataset

    data = Path(cfg.data)
    if data.suffix == ".toml":
        task = get_task(load_toml(data).get("task"), f"{data}: top-level key 'task'")
        target = out / "data"
        if not (target / "config.json").exists():
            task.generate(data, out=target, n=cfg.n, overwrite=True)
        data = target
    return read_dataset(data)


def train_run(cfg: ExperimentConfig, out: str | Path, *, resume: bool = False, progress: bool = True,
              stop_after_step: int | None = None) -> dict[str, Any]:
    """Train per `cfg` into run directory `out`; returns the final evaluation."""
    import torch

    from searchprobe.train.loop import pick_device, train
    from searchprobe.train.model import build_model, count_parameters

    out = Path(out)
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    rank = torch.distributed.get_rank() if distributed else 0
    if out.exists() and (out / "config.json").exists() and not resume:
        raise ConfigError(f"run directory {out} already holds a run (pass --resume to continue it, or choose another --out)")
    stored = prepare_data(cfg, out) if rank == 0 else None  # rank 0 generates the data, if it must
    if distributed:
        torch.distributed.barrier()  # the data exists, and every rank has looked before rank 0 writes config.json
    if stored is None:
        stored = prepare_data(cfg, out)
    task_data = TaskData(stored)
    task_data.split(cfg.eval_split)  # a missing or empty evaluation split fails now, not after training
    if cfg.eval_examples <= 0:
        raise ConfigError(f"eval_examples = {cfg.eval_examples}; allowed: a positive number of held-out examples")
    train_data = task_data.token_data("train")
    model_cfg = cfg.model_config().with_data(len(task_data.vocab), train_data.max_len)
    if cfg.train.threads is not None:
        torch.set_num_threads(cfg.train.threads)
    device = pick_device(cfg.train.device)
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
        "dataset": {"path": str(stored.path), "name": stored.config.get("name"), "fingerprint": stored.fingerprint,
                    "tokenizer": stored.config.get("tokenizer"), "task_config": stored.config.get("config")},
        "vocab": task_data.vocab,
    }
    if resume:
        _check_same_run(out, run_config)
    elif rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", run_config)
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
    final = result.last_eval or {}
    if rank != 0:
        return final
    atomic_write_json(out / "eval.json", {"split": cfg.eval_split, "step": result.step, "metrics": final,
                                         "elapsed_s": round(result.elapsed_s, 2), "tokens_seen": result.tokens_seen})
    return final


def _check_same_run(out: Path, run_config: dict[str, Any]) -> None:
    saved = json.loads((out / "config.json").read_text())
    for key in ("model", "vocab"):
        if saved.get(key) != run_config.get(key):
            raise FingerprintMismatch(f"cannot resume {out}: its {key} differs from this experiment's")
    if saved["dataset"]["fingerprint"] != run_config["dataset"]["fingerprint"]:
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
            raise DataError(f"the dataset of run {self.run_dir} is gone ({self.config['dataset']['path']}); pass --data DIR")
        return TaskData(self.dataset, self.task)


def load_run(run_dir: str | Path, data: str | Path | None = None, device: str | None = None) -> LoadedRun:
    """Load the bridge model, tokenizer and config of a run; refuse a dataset with another vocabulary.

    `data` defaults to the dataset the run was trained on (if it still exists).
    """
    from searchprobe.tasks.store import read_dataset
    from searchprobe.train.checkpoint import load_weights
    from searchprobe.train.model import build_model

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise DataError(f"{run_dir} is not a run directory: config.json is missing")
    if not (run_dir / "model.safetensors").is_file():
        raise DataError(f"{run_dir} has no trained model yet (model.safetensors is missing)")
    config = json.loads((run_dir / "config.json").read_text())
    model_cfg = from_dict(ModelConfig, config["model"], f"{run_dir}/config.json [model]")
    model = build_model(model_cfg, device=device)
    load_weights(model, run_dir / "model.safetensors")
    model.eval()
    stored = None
    data_path = Path(data) if data is not None else Path(config["dataset"]["path"])
    if data is not None or data_path.exists():
        stored = read_dataset(data_path)
        vocab = list(stored.vocab) if isinstance(stored.vocab, list) else list(stored.vocab["tokens"])
        if vocab != config["vocab"]:
            raise FingerprintMismatch(
                f"dataset {data_path} has a {len(vocab)}-token vocabulary that differs from the model's "
                f"({len(config['vocab'])} tokens, from {config['dataset']['name']}); use a dataset made with the same tokenizer")
    task = task_of(config, f"{run_dir}/config.json")
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
    return result
