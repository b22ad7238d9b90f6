"""The maze value types shared by generators, solvers, tokenizers, labels and pictures.

Coordinates are (row, col) on an n_rows × n_cols lattice; a cell's id is row * n_cols + col.
Connectivity uses maze-dataset's `connection_list` convention, so interop is a copy:
``connections[0, r, c]`` is the open passage between (r, c) and (r + 1, c) (down) and
``connections[1, r, c]`` the passage between (r, c) and (r, c + 1) (right); the last row of
``connections[0]`` and the last column of ``connections[1]`` are always False.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MazeBatch:
    """B solved mazes of one grid size, as dense numpy arrays (the fast path).

    connections: bool (B, 2, n_rows, n_cols), see the module docstring.
    origin, target: int16 (B, 2) — (row, col) of the start and goal cells.
    path: int16 (B, max_len, 2) — the chosen shortest path origin…target, padded with -1.
    path_len: int32 (B,) — number of cells on the path (origin and target included).
    n_shortest: int64 (B,) — how many distinct shortest origin→target paths exist (1 in perfect mazes).
    seed: uint64 (B,) — the per-maze seed that regenerates maze b exactly.
    """

    n_rows: int
    n_cols: int
    connections: np.ndarray
    origin: np.ndarray
    target: np.ndarray
    path: np.ndarray
    path_len: np.ndarray
    n_shortest: np.ndarray
    seed: np.ndarray

    def __len__(self) -> int:
        return len(self.connections)

    def take(self, index) -> "MazeBatch":
        """The mazes at `index` (an index array or mask), as a new batch."""
        return MazeBatch(self.n_rows, self.n_cols, self.connections[index], self.origin[index], self.target[index],
                         self.path[index], self.path_len[index], self.n_shortest[index], self.seed[index])

    def __getitem__(self, b: int) -> "Maze":
        n = int(self.path_len[b])
        return Maze(
            n_rows=self.n_rows,
            n_cols=self.n_cols,
            connections=self.connections[b],
            origin=tuple(int(x) for x in self.origin[b]),
            target=tuple(int(x) for x in self.target[b]),
            path=self.path[b, :n].copy(),
            n_shortest=int(self.n_shortest[b]),
            seed=int(self.seed[b]),
        )


@dataclass(frozen=True, eq=False)
class Maze:
    """One solved maze (a view for display, tokenizing one example, tests)."""

    n_rows: int
    n_cols: int
    connections: np.ndarray  #: bool (2, n_rows, n_cols)
    origin: tuple[int, int]
    target: tuple[int, int]
    path: np.ndarray  #: int (L, 2), origin first, target last
    n_shortest: int = 1
    seed: int = -1

    def cell_id(self, row: int, col: int) -> int:
        return row * self.n_cols + col

    def edges(self) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        """Open passages as ((r, c), (r2, c2)) pairs in row-major, down-then-right order."""
        out = []
        for r in range(self.n_rows):
            for c in range(self.n_cols):
                if self.connections[0, r, c]:
                    out.append(((r, c), (r + 1, c)))
                if self.connections[1, r, c]:
                    out.append(((r, c), (r, c + 1)))
        return out

    def _repr_png_(self) -> bytes:
        """Draw the maze with origin, target and path in a notebook."""
        from searchprobe.tasks.maze.pictures import render_maze

        return render_maze(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Maze):
            return NotImplemented
        return (
            (self.n_rows, self.n_cols, self.origin, self.target) == (other.n_rows, other.n_cols, other.origin, other.target)
            and np.array_equal(self.connections, other.connections)
            and np.array_equal(self.path, other.path)
        )

    __hash__ = None  # type: ignore[assignment]
