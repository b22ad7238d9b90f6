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
from typing import Any

import numpy as np

from searchprobe import __version__
from searchprobe.config import from_dict, load_toml, to_dict
from searchprobe.errors import ConfigError, DataError, FingerprintMismatch
from searchprobe.io import atomic_write_json
from searchprobe.train.loop import TrainConfig
from searchprobe.train.model import ModelConfig, preset

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


# --- tasks -------------------------------------------------------------------------------------
class TaskAdapter:
    """What training and evaluation need to know about a task's dataset."""

    def __init__(self, stored):
        self.stored = stored
        self.vocab: list[str] = list(stored.vocab) if isinstance(stored.vocab, list) else list(stored.vocab["tokens"])
        self.pad_id = self.vocab.index(self.pad_token)

    pad_token = "<PADDING>"
    stop_token = "<PATH_END>"

    @property
    def stop_id(self) -> int:
        return self.vocab.index(self.stop_token)

    def token_data(self, split: str, limit: int | None = None):
        from searchprobe.train.data import TokenData

        ds = self._split(split)
        if limit is not None:
            ds = ds.select(range(min(limit, len(ds))))
        table = ds.select_columns(["tokens", *self._start_columns(ds)]).with_format("arrow")[:]
        tokens = table.column("tokens").combine_chunks()
        starts = self.generation_start({name: table.column(name).to_numpy() for name in self._start_columns(ds)})
        return TokenData.from_flat(tokens.values.to_numpy(), tokens.offsets.to_numpy(), starts, self.pad_id)

    @staticmethod
    def _start_columns(ds) -> list[str]:
        return ["solution_start"] + (["trace_start"] if "trace_start" in ds.column_names else [])

    @staticmethod
    def generation_start(columns) -> np.ndarray:
        """Where the model's own output begins: the search trace when the tokens have one (the
        model must write it), else the solution."""
        start = np.asarray(columns["solution_start"])
        if "trace_start" in columns:
            trace = np.asarray(columns["trace_start"])
            start = np.where(trace >= 0, trace, start)
        return start

    def _split(self, split: str):
        if split not in self.stored.splits:
            raise DataError(f"dataset {self.stored.path} has no split {split!r}; it has {', '.join(self.stored.splits)}")
        if len(self.stored.splits[split]) == 0:
            raise DataError(f"split {split!r} of {self.stored.path} is empty")
        return self.stored.splits[split]

    def evaluate(self, model, split: str, limit: int, seed: int = 0) -> dict[str, float]:
        raise NotImplementedError


class MazeAdapter(TaskAdapter):
    pad_token = "<PADDING>"
    stop_token = "<PATH_END>"

    def tokenizer(self):
        from searchprobe.tasks.maze.tokens import MazeTokenizer

        tok = self.stored.config["tokenizer"]
        return MazeTokenizer(tok["max_grid"], trace_format=tok.get("trace_format"), layout=tok.get("layout", "aotp"))

    def evaluate(self, model, split: str, limit: int, seed: int = 0) -> dict[str, float]:
        from searchprobe.train.rollout import greedy_rollout, maze_path_metrics, random_walk_paths

        ds = self._split(split)
        ds = ds.select(range(min(limit, len(ds))))
        cols = ds.select_columns(["tokens", "connections", "path", *self._start_columns(ds)]).with_format("numpy")[:]
        starts = self.generation_start(cols)
        prompts = [np.asarray(t[:s], dtype=np.int64) for t, s in zip(cols["tokens"], starts)]
        cfg = self.stored.config["config"]
        # room for the longest true output and a path through every cell (rollouts also stop at n_ctx)
        longest = max(len(t) - int(s) for t, s in zip(cols["tokens"], starts))
        max_new = max(longest, 0) + int(cfg["rows"]) * int(cfg["cols"]) + 1
        generated = greedy_rollout(model, prompts, max_new=max_new, stop_id=self.stop_id)
        cells, ok = self.decode_paths(generated)
        paths = [np.stack(p) for p in cols["path"]]
        conns = np.stack([np.stack([np.stack(r) for r in c]) for c in cols["connections"]]).astype(bool)
        model_metrics = maze_path_metrics(cells, ok, paths, conns).to_dict()
        walks = random_walk_paths(paths, conns, seed)
        baseline = maze_path_metrics(walks, [True] * len(walks), paths, conns).to_dict()
        return {**model_metrics, **{f"random_walk/{k}": v for k, v in baseline.items() if k != "n"}}

    def decode_paths(self, generated: list[np.ndarray]) -> tuple[list[list[tuple[int, int]]], list[bool]]:
        """Generated ids → lists of (row, col); well-formed iff only cells then <PATH_END> (after
        the last <PATH_START>, when the model wrote a trace first)."""
        cells_of = {i: _parse_cell(t) for i, t in enumerate(self.vocab) if _parse_cell(t) is not None}
        out, ok = [], []
        path_start = self.vocab.index("<PATH_START>")
        for gen in generated:
            ids = gen.tolist()
            if path_start in ids:  # the model wrote a search trace first: its path follows <PATH_START>
                ids = ids[len(ids) - ids[::-1].index(path_start):]
            ended = bool(ids) and ids[-1] == self.stop_id
            body = ids[:-1] if ended else ids
            cells = [cells_of[i] for i in body if i in cells_of]
            out.append(cells)
            ok.append(ended and len(cells) == len(body))
        return out, ok


def _parse_cell(token: str) -> tuple[int, int] | None:
    if token.startswith("(") and token.endswith(")") and "," in token:
        r, c = token[1:-1].split(",")
        if r.isdigit() and c.isdigit():
            return int(r), int(c)
    return None


class ChessAdapter(TaskAdapter):
    pad_token = "<pad>"
    stop_token = "<eos>"

    def tokenizer(self):
        from searchprobe.tasks.chess import tokens

        return tokens

    def evaluate(self, model, split: str, limit: int, seed: int = 0) -> dict[str, float]:
        import chess

        from searchprobe.tasks.chess import tokens as chess_tokens
        from searchprobe.train.rollout import greedy_rollout

        ds = self._split(split)
        ds = ds.select(range(min(limit, len(ds))))
        cols = ds.select_columns(["tokens", "solution_start", "fen", "pv", "solutions"])[:]
        prompts = [np.asarray(t[:s], dtype=np.int64) for t, s in zip(cols["tokens"], cols["solution_start"])]
        max_new = 3 * max(len(pv) for pv in cols["pv"]) + 1
        generated = greedy_rollout(model, prompts, max_new=max_new, stop_id=self.stop_id)
        first = line = legal = mates = 0.0
        for prompt, gen, fen, pv, solutions in zip(prompts, generated, cols["fen"], cols["pv"], cols["solutions"]):
            try:
                _, moves = chess_tokens.decode(list(prompt) + list(gen))
            except Exception:  # malformed generations count as wrong and illegal
                moves = []
            first += float(bool(moves) and moves[0] in solutions)
            line += float(moves == list(pv))
            board, n_legal = chess.Board(fen), 0
            for mv in moves:
                try:
                    move = chess.Move.from_uci(mv)
                except ValueError:  # e.g. "f5f5": the model named one square twice; not a move at all
                    break
                if move not in board.legal_moves:
                    break
                board.push(move)
                n_legal += 1
            legal += n_legal / len(moves) if moves else 0.0
            mates += float(board.is_checkmate() and n_legal == len(moves))
        n = max(1, len(prompts))
        return {"n": len(prompts), "first_move": first / n, "whole_line": line / n, "legal_moves": legal / n,
                "mates_delivered": mates / n}


def task_adapter(stored) -> TaskAdapter:
    task = stored.config.get("task")
    adapters = {"maze": MazeAdapter, "chess": ChessAdapter}
    if task not in adapters:
        raise DataError(f"dataset {stored.path} has task {task!r}; searchprobe can train on: {', '.join(adapters)}")
    return adapters[task](stored)


# --- train / eval / load -----------------------------------------------------------------------
def prepare_data(cfg: ExperimentConfig, out: Path):
    """Open the experiment's dataset (generating it first when `data` is a task TOML)."""
    from searchprobe.tasks.store import read_dataset

    data = Path(cfg.data)
    if data.suffix == ".toml":
        task = load_toml(data).get("task")
        import importlib

        module = importlib.import_module(f"searchprobe.tasks.{task}.dataset")
        target = out / "data"
        if not (target / "config.json").exists():
            module.generate_from_toml(data, out=target, n=cfg.n, overwrite=True)
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
    adapter = task_adapter(stored)
    train_data = adapter.token_data("train")
    model_cfg = cfg.model_config().with_data(len(adapter.vocab), train_data.max_len)
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
        "vocab": adapter.vocab,
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
            return adapter.evaluate(m, cfg.eval_split, cfg.eval_examples)
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
    tokenizer: Any  #: the task's tokenizer (MazeTokenizer, or the chess tokens module)
    config: dict[str, Any]  #: the run's config.json
    run_dir: Path
    vocab: list[str]
    dataset: Any = None  #: the StoredDataset, when one was given or found

    @property
    def adapter(self) -> TaskAdapter:
        if self.dataset is None:
            raise DataError(f"run {self.run_dir} was loaded without its dataset")
        return task_adapter(self.dataset)


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
    tokenizer = task_adapter(stored).tokenizer() if stored is not None else None
    return LoadedRun(model, tokenizer, config, run_dir, config["vocab"], stored)


def evaluate_run(run_dir: str | Path, data: str | Path | None = None, split: str = "test",
                 limit: int = 1000) -> dict[str, Any]:
    run = load_run(run_dir, data)
    if run.dataset is None:
        raise DataError(f"the dataset of run {run_dir} is gone; pass --data DIR")
    start = time.perf_counter()
    metrics = run.adapter.evaluate(run.model, split, limit)
    result = {"split": split, "dataset": str(run.dataset.path), "metrics": metrics,
              "seconds": round(time.perf_counter() - start, 2)}
    atomic_write_json(Path(run_dir) / f"eval-{split}.json", result)
    return result
