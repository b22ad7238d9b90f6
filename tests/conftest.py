"""Shared test support: a tiny maze dataset and an untrained bridge model (no training, seconds to build).

`tiny_setup(out)` builds one; the `tiny` fixture gives each test module one (the dataset is
generated once per session under pytest's base temporary directory and reused).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class TinySetup:
    stored: object  #: the StoredDataset
    data: object  #: the dataset seen through its task (`TaskData`)
    task: object  #: its `Task`
    tokenizer: object
    model: object  #: an untrained TransformerBridge, in eval mode


def tiny_setup(out: str | Path, rows: int = 3, cols: int = 3, n: int = 300, n_layers: int = 2, seed: int = 0) -> TinySetup:
    """A `rows`×`cols` DFS maze dataset of about `n` mazes in `out` and a nano-shaped untrained model on it."""
    from searchprobe.tasks.maze.config import MazeConfig
    from searchprobe.tasks.maze.dataset import generate_dataset
    from searchprobe.tasks.store import read_dataset
    from searchprobe.train.model import ModelConfig, build_model
    from searchprobe.train.task_data import TaskData

    path = Path(out) / f"data-{rows}x{cols}-n{n}-s{seed}"
    if not (path / "config.json").exists():  # reused across test modules of one session
        generate_dataset(MazeConfig(rows=rows, cols=cols, n=n, seed=seed), path, overwrite=True)
    stored = read_dataset(path)
    data = TaskData(stored)
    tokenizer = data.tokenizer()
    n_ctx = tokenizer.max_length(rows, cols) + 2
    model = build_model(ModelConfig(n_layers=n_layers, d_model=32, n_heads=4, init_seed=seed).with_data(len(data.vocab), n_ctx))
    model.eval()
    return TinySetup(stored, data, data.task, tokenizer, model)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> TinySetup:
    """A `tiny_setup` (3×3 mazes, 2-layer d=32 untrained model) shared by one test module."""
    return tiny_setup(tmp_path_factory.getbasetemp())
