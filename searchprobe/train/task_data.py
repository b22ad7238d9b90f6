"""A stored dataset seen through its task: vocabulary, pad and stop ids, splits, token arrays, rollouts.

`TaskData` is what training, evaluation and the analysis stages hold instead of branching on a
task name: the `Task` (found from the dataset's ``config.json``) says which tokens pad and stop a
sequence and how a rollout is scored; this class does the generic work around it (building prompts,
sizing and running greedy rollouts, averaging).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from searchprobe.errors import DataError
from searchprobe.files import vocab_list
from searchprobe.tasks.base import Task, task_of


def generation_start(columns: Mapping[str, Any]) -> np.ndarray:
    """Where the model's own output begins: the search trace when the tokens have one (the model
    must write it, ``trace_start`` ≥ 0), else the solution (``solution_start``)."""
    start = np.asarray(columns["solution_start"])
    if "trace_start" in columns:
        trace = np.asarray(columns["trace_start"])
        start = np.where(trace >= 0, trace, start)
    return start


class TaskData:
    """A `StoredDataset` with its `Task`: everything a stage needs to feed and score a model."""

    def __init__(self, stored, task: Task | None = None):
        self.stored = stored
        self.task = task if task is not None else task_of(stored.config, f"dataset {stored.path}")
        self.vocab = vocab_list(stored.vocab, Path(stored.path) / "vocab.json")
        self.pad_id = self.token_id(self.task.pad_token)
        self.stop_id = self.token_id(self.task.stop_token)

    def __repr__(self) -> str:
        return f"TaskData(task={self.task.name!r}, path={str(self.stored.path)!r}, splits={dict((k, len(v)) for k, v in self.stored.splits.items())})"

    def token_id(self, token: str) -> int:
        try:
            return self.vocab.index(token)
        except ValueError:
            raise DataError(f"{self.stored.path}/vocab.json: token {token!r}, which task {self.task.name!r} needs, "
                            f"is missing") from None

    @property
    def config(self) -> dict[str, Any]:
        return self.stored.config

    def tokenizer(self):
        return self.task.tokenizer(self.stored.config)

    def split(self, name: str):
        """The named split (a `datasets.Dataset`); a clear error when it is missing or empty."""
        if name not in self.stored.splits:
            raise DataError(f"dataset {self.stored.path} has no split {name!r}; it has {', '.join(self.stored.splits)}")
        if len(self.stored.splits[name]) == 0:
            raise DataError(f"split {name!r} of {self.stored.path} is empty")
        return self.stored.splits[name]

    def rows(self, split: str, n: int, columns: Sequence[str] = (), numpy: bool = True) -> dict[str, Any]:
        """The first `n` rows of `split` as columns: tokens, solution_start (and trace_start) plus `columns`."""
        ds = self.split(split)
        ds = ds.select(range(min(n, len(ds))))
        wanted = ["tokens", "solution_start"] + (["trace_start"] if "trace_start" in ds.column_names else [])
        wanted += [c for c in columns if c not in wanted]
        ds = ds.select_columns(wanted)
        return (ds.with_format("numpy") if numpy else ds)[:]

    def token_data(self, split: str, limit: int | None = None):
        """Right-padded token arrays of a split with the loss mask's start (see `TokenData`)."""
        from searchprobe.train.data import TokenData

        ds = self.split(split)
        if limit is not None:
            ds = ds.select(range(min(limit, len(ds))))
        starts = ["solution_start"] + (["trace_start"] if "trace_start" in ds.column_names else [])
        table = ds.select_columns(["tokens", *starts]).with_format("arrow")[:]
        tokens = table.column("tokens").combine_chunks()
        start = generation_start({name: table.column(name).to_numpy() for name in starts})
        return TokenData.from_flat(tokens.values.to_numpy(), tokens.offsets.to_numpy(), start, self.pad_id)

    # --- rollouts ------------------------------------------------------------------------------
    def prompts(self, rows: Mapping[str, Any]) -> list[np.ndarray]:
        """The rollout prompts of rows: every token before the model's own output."""
        return [np.asarray(t[:s], dtype=np.int64) for t, s in zip(rows["tokens"], generation_start(rows))]

    def max_new(self, rows: Mapping[str, Any]) -> int:
        """Room for the longest true output of the rows plus the task's slack."""
        longest = max((len(t) - int(s) for t, s in zip(rows["tokens"], generation_start(rows))), default=0)
        return max(longest, 0) + self.task.rollout_slack(self.stored.config)

    def rollout_rows(self, split: str, n: int) -> dict[str, Any]:
        """The rows a rollout needs: prompts' columns and the task's ground truth."""
        return self.rows(split, n, self.task.rollout_columns)

    def rollout_metrics(self, model, rows: Mapping[str, Any], *, forward: Callable | None = None,
                        batch_size: int = 256) -> dict[str, float]:
        """Greedy rollouts after each row's prompt, scored by the task (``forward`` may carry hooks)."""
        from searchprobe.train.rollout import greedy_rollout

        prompts = self.prompts(rows)
        generated = greedy_rollout(model, prompts, max_new=self.max_new(rows), stop_id=self.stop_id,
                                   forward=forward, batch_size=batch_size)
        return self.task.score_rollouts(rows, prompts, generated, self.vocab)

    def evaluate(self, model, split: str, limit: int, seed: int = 0) -> dict[str, float]:
        """Rollout metrics of `limit` examples of `split`, and the task's non-learned baseline."""
        rows = self.rollout_rows(split, limit)
        return {**self.rollout_metrics(model, rows), **self.task.baseline_rollouts(rows, seed)}
