"""The maze task: generators, endpoints, shortest paths, search traces, tokens, labels, datasets.

Modules (each usable alone; none imports torch):

- `types`: `MazeBatch` / `Maze`, maze-dataset's connection_list convention.
- `config`: `MazeConfig`, the dataset recipe read from ``tasks/<name>.toml``.
- `generators`: batched, vectorized, per-maze-seeded DFS / hallway / Wilson / Kruskal / Prim /
  percolation / DFS+percolation generators.
- `endpoints`: origin and target (uniform, path-length window, dead ends, fixed cells).
- `solve`: batched BFS layers, shortest paths, shortest-path counts.
- `traces`: BFS / DFS / A* traces from `searchprobe.search.graph` via `MazeProblem`.
- `tokens`, `interop`, `labels`, `pictures`: AOTP tokens, maze-dataset interop, probe labels, PNGs.
- `dataset`: records, `generate_from_toml`, `load_maze_dataset` (through `searchprobe.tasks.store`).

The common entry points are importable from here: ``from searchprobe.tasks.maze import
MazeConfig, generate_batch, generate_from_toml, load_maze_dataset``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MazeBatch": "types", "Maze": "types",
    "MazeConfig": "config", "EndpointConfig": "config", "load_maze_config": "config",
    "generate_connections": "generators", "maze_keys": "generators",
    "place_endpoints": "endpoints",
    "shortest_paths": "solve", "distances": "solve",
    "MazeProblem": "traces", "traces_for_batch": "traces",
    "generate_batch": "dataset", "generate_dataset": "dataset", "generate_from_toml": "dataset",
    "load_maze_dataset": "dataset", "batch_from_records": "dataset",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"searchprobe.tasks.maze.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'searchprobe.tasks.maze' has no attribute {name!r}")
