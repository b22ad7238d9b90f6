"""Test support: a tiny maze dataset and an untrained bridge model (no training, seconds to build)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class TinySetup:
    stored: object
    adapter: object
    tokenizer: object
    model: object


def tiny_setup(out: str | Path, rows: int = 3, cols: int = 3, n: int = 300, n_layers: int = 2, seed: int = 0) -> TinySetup:
    """A `rows`×`cols` DFS maze dataset of about `n` mazes in `out` and a nano-shaped untrained model on it."""
    from searchprobe.tasks.maze.config import MazeConfig
    from searchprobe.tasks.maze.dataset import generate_dataset
    from searchprobe.tasks.store import read_dataset
    from searchprobe.train.model import ModelConfig, build_model
    from searchprobe.train.run import MazeAdapter

    path = Path(out) / f"data-{rows}x{cols}-n{n}-s{seed}"
    if not (path / "config.json").exists():  # reused across test modules of one session
        generate_dataset(MazeConfig(rows=rows, cols=cols, n=n, seed=seed), path, overwrite=True)
    stored = read_dataset(path)
    adapter = MazeAdapter(stored)
    tokenizer = adapter.tokenizer()
    n_ctx = tokenizer.max_length(rows, cols) + 2
    model = build_model(ModelConfig(n_layers=n_layers, d_model=32, n_heads=4, init_seed=seed).with_data(len(adapter.vocab), n_ctx))
    model.eval()
    return TinySetup(stored, adapter, tokenizer, model)
