"""Ground-truth search traces on mazes: BFS, DFS and A* (Manhattan heuristic) from origin to target.

The searches are `searchprobe.search.graph`'s; this module adapts a maze to its `SearchProblem`
protocol (`MazeProblem`: node = cell id ``r * n_cols + c``, unit step costs, neighbours in cell-id
order up, left, right, down) and runs them over a batch. Traces carry Searchformer-style CREATE /
CLOSE events with g and h (h is NaN for BFS and DFS), ending with GOAL on the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Mapping, Sequence

import numpy as np

from searchprobe.errors import InputError
from searchprobe.search import graph
from searchprobe.search.graph import SearchResult
from searchprobe.search.trace import Trace
from searchprobe.tasks.maze.generators import lattice
from searchprobe.tasks.maze.types import MazeBatch

__all__ = ["MazeProblem", "SEARCHES", "search_batch", "traces_for_batch"]

#: name -> search function(problem) -> SearchResult
SEARCHES: dict[str, Callable[[object], SearchResult]] = {
    "bfs": graph.bfs,
    "dfs": graph.dfs,
    "astar": lambda problem: graph.astar(problem, seed=None),
}


@dataclass(frozen=True, eq=False)
class MazeProblem:
    """One maze as a `SearchProblem` from `origin` to `target` (cell ids)."""

    n_rows: int
    n_cols: int
    adjacency: tuple[tuple[int, ...], ...]  #: open neighbours of each cell, in cell-id order
    origin: int
    target: int

    @classmethod
    def from_connections(cls, connections: np.ndarray, origin: tuple[int, int] | int, target: tuple[int, int] | int) -> "MazeProblem":
        """Build from a (2, R, C) connection array and (row, col) or cell-id endpoints."""
        _, R, C = connections.shape
        o = origin if isinstance(origin, (int, np.integer)) else origin[0] * C + origin[1]
        t = target if isinstance(target, (int, np.integer)) else target[0] * C + target[1]
        return cls(R, C, _adjacency(connections[None])[0], int(o), int(t))

    def start(self) -> int:
        return self.origin

    def is_goal(self, node: int) -> bool:
        return node == self.target

    def neighbours(self, node: int) -> list[tuple[int, float]]:
        return [(nb, 1.0) for nb in self.adjacency[node]]

    def heuristic(self, node: int) -> float:
        r, c = divmod(node, self.n_cols)
        tr, tc = divmod(self.target, self.n_cols)
        return float(abs(r - tr) + abs(c - tc))

    def node_id(self, node: int) -> int:
        return node


@lru_cache(maxsize=32)
def _neighbour_table(rows: int, cols: int) -> tuple[tuple[tuple[int, ...], ...], ...]:
    """table[v][mask]: the neighbours of cell v whose bit is set in the 4-bit open mask."""
    nbr = lattice(rows, cols).nbr.tolist()
    return tuple(tuple(tuple(n for k, n in enumerate(nbr[v]) if mask >> k & 1 and n >= 0) for mask in range(16))
                 for v in range(rows * cols))


def _adjacency(connections: np.ndarray) -> list[tuple[tuple[int, ...], ...]]:
    """Open neighbours of every cell of B mazes, in cell-id order (up, left, right, down)."""
    B, _, R, C = connections.shape
    lat = lattice(R, C)
    V = R * C
    flat = np.concatenate([connections.reshape(B, 2 * V), np.zeros((B, 1), dtype=bool)], axis=1)
    masks = (flat[:, lat.edge] * np.array([1, 2, 4, 8])).sum(-1).tolist()  # (B, V) open-side masks
    table = _neighbour_table(R, C)
    return [tuple(map(tuple.__getitem__, table, row)) for row in masks]


def search_batch(batch: MazeBatch, algorithm: str, adjacency: Sequence | None = None) -> list[SearchResult]:
    """Run one search (`SEARCHES` key) origin→target on every maze of the batch."""
    if algorithm not in SEARCHES:
        raise InputError(f"search {algorithm!r} is unknown; allowed: {', '.join(SEARCHES)}")
    search = SEARCHES[algorithm]
    C = batch.n_cols
    origin = np.asarray(batch.origin, dtype=np.int64) @ np.array([C, 1])
    target = np.asarray(batch.target, dtype=np.int64) @ np.array([C, 1])
    if adjacency is None:
        adjacency = _adjacency(np.asarray(batch.connections, dtype=bool))
    return [search(MazeProblem(batch.n_rows, C, adj, int(o), int(t)))
            for adj, o, t in zip(adjacency, origin.tolist(), target.tolist())]


def traces_for_batch(batch: MazeBatch, algorithms: Sequence[str]) -> dict[str, list[Trace]]:
    """{algorithm: one Trace per maze} for the given searches."""
    adjacency = _adjacency(np.asarray(batch.connections, dtype=bool))
    return {name: [r.trace for r in search_batch(batch, name, adjacency)] for name in algorithms}


def trace_columns(traces: Sequence[Trace]) -> Mapping[str, tuple[np.ndarray, np.ndarray]]:
    """Concatenate per-maze traces column by column: {column: (values, offsets (B + 1,))}."""
    lengths = np.fromiter((len(t) for t in traces), dtype=np.int64, count=len(traces))
    offsets = np.zeros(len(traces) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    names = list(traces[0].columns) if traces else []
    return {name: (np.concatenate([t.columns[name] for t in traces]), offsets) for name in names}
