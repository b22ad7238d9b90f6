"""The maze's view for the lens (`MazeTask.lens_context`): legal next cells, and beliefs drawn on the maze.

Candidate-solution view: at each path step the candidates are the cell tokens, the legal ones the
open neighbours of the current cell, and "toward" the next cell of the true path. Beliefs: the
example with the longest path; its next-cell distribution at a decision step (the path cell with
the most open passages) is drawn on the maze at every lens layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from searchprobe.tasks.base import LensContext, LensPictures
from searchprobe.tasks.label_arrays import dense
from searchprobe.tasks.maze.tokens import parse_cell


@dataclass(frozen=True)
class CellVocab:
    """Which vocabulary ids are maze cells: ``cell_of[id] = (row, col)`` or (-1, -1)."""

    cell_of: np.ndarray  #: int (V, 2)
    id_of: dict[tuple[int, int], int]

    @classmethod
    def from_vocab(cls, vocab: Sequence[str]) -> "CellVocab":
        cell_of = np.full((len(vocab), 2), -1, dtype=np.int64)
        id_of = {}
        for i, tok in enumerate(vocab):
            if (cell := parse_cell(tok)) is not None:
                cell_of[i] = cell
                id_of[cell] = i
        return cls(cell_of, id_of)

    @property
    def is_cell(self) -> np.ndarray:
        return self.cell_of[:, 0] >= 0


def legal_next_mask(current: np.ndarray, connections: np.ndarray, cells: CellVocab) -> np.ndarray:
    """bool (P, V): vocabulary ids that are open neighbours of each prediction's current cell.

    `current` int (P, 2) (row, col), -1 where the token is not a cell; `connections` bool (P, 2, R, C).
    """
    P, V = len(current), len(cells.cell_of)
    legal = np.zeros((P, V), dtype=bool)
    R, C = connections.shape[2:]
    r, c = current[:, 0], current[:, 1]
    valid = r >= 0
    rows = np.arange(P)
    moves = (  # (dr, dc, passage open?)
        (1, 0, lambda: connections[rows, 0, np.clip(r, 0, R - 1), np.clip(c, 0, C - 1)] & (r + 1 < R)),
        (-1, 0, lambda: connections[rows, 0, np.clip(r - 1, 0, R - 1), np.clip(c, 0, C - 1)] & (r - 1 >= 0)),
        (0, 1, lambda: connections[rows, 1, np.clip(r, 0, R - 1), np.clip(c, 0, C - 1)] & (c + 1 < C)),
        (0, -1, lambda: connections[rows, 1, np.clip(r, 0, R - 1), np.clip(c - 1, 0, C - 1)] & (c - 1 >= 0)),
    )
    lookup = np.full((R + 2, C + 2), -1, dtype=np.int64)  # cell -> vocab id, padded for off-grid moves
    for (cr, cc), i in cells.id_of.items():
        if cr < R and cc < C:
            lookup[cr + 1, cc + 1] = i
    for dr, dc, is_open in moves:
        ok = valid & is_open()
        ids = lookup[np.clip(r + dr + 1, 0, R + 1), np.clip(c + dc + 1, 0, C + 1)]
        ok &= ids >= 0
        legal[rows[ok], ids[ok]] = True
    return legal


def decision_step(maze) -> int:
    """The path step j ≥ 1 whose current cell path[j-1] has the most open passages (earliest on ties)."""
    conn = np.asarray(maze.connections, dtype=bool)
    R, C = conn.shape[1:]

    def degree(r: int, c: int) -> int:
        return int((r + 1 < R and conn[0, r, c]) + (r > 0 and conn[0, r - 1, c])
                   + (c + 1 < C and conn[1, r, c]) + (c > 0 and conn[1, r, c - 1]))

    path = np.asarray(maze.path, dtype=int)
    if len(path) < 2:
        return 0
    degrees = [degree(*path[j - 1]) for j in range(1, len(path))]
    return 1 + int(np.argmax(degrees))


class MazeLensContext(LensContext):
    """Cells of the vocabulary and the walls of every row: legal next cells and belief maps."""

    description = ("legal = the open neighbours of the current cell; toward = the next cell of the true path; "
                   "illegal = every other cell")

    def __init__(self, rows: Mapping[str, Any], vocab: Sequence[str]):
        self.cells = CellVocab.from_vocab(vocab)
        self.candidates = self.cells.is_cell
        self.connections = np.stack([dense(c, bool) for c in rows["connections"]])  # (N, 2, R, C)
        self.rows = rows
        paths = [dense(p, np.int64).reshape(-1, 2) for p in rows["path"]]
        self.paths = paths
        self.belief_example = int(np.argmax([len(p) for p in paths])) if paths else None

    def __repr__(self) -> str:
        return f"MazeLensContext(rows={len(self.connections)}, grid={tuple(self.connections.shape[2:])})"

    def legal_next(self, example, current) -> np.ndarray:
        example = np.asarray(example, dtype=np.int64)
        return legal_next_mask(self.cells.cell_of[np.asarray(current, dtype=np.int64)], self.connections[example],
                               self.cells)

    def maze(self, i: int):
        """Row i as a `Maze` (for drawing)."""
        from searchprobe.tasks.maze.types import Maze

        conn = self.connections[i]
        return Maze(conn.shape[1], conn.shape[2], conn, tuple(int(x) for x in self.rows["origin"][i]),
                    tuple(int(x) for x in self.rows["target"][i]), self.paths[i].astype(int))

    def belief_maps(self, probs: np.ndarray) -> np.ndarray:
        """(…, V) next-token probabilities → (…, R, C) next-cell maps."""
        R, C = self.connections.shape[2:]
        maps = np.zeros(probs.shape[:-1] + (R, C), dtype=np.float32)
        for vid, (r, c) in enumerate(self.cells.cell_of):
            if 0 <= r < R and 0 <= c < C:
                maps[..., r, c] = probs[..., vid]
        return maps

    def belief_pictures(self, beliefs) -> LensPictures | None:
        from searchprobe.tasks.maze.pictures import render_maze

        if beliefs.get("example") is None:
            return None
        maze = self.maze(int(beliefs["example"]))
        labels = beliefs["labels"]
        step = decision_step(maze)
        figures: dict[str, list[tuple[bytes, str]]] = {}
        for lens in ("logit", "tuned"):
            if lens not in beliefs:
                continue
            maps = self.belief_maps(np.asarray(beliefs[lens]))
            figures[lens] = [(render_maze(maze, heat=maps[s, step], title=f"{lens}: {label}", vmin=0.0, vmax=1.0,
                                          cell_px=40, heat_label="p(next = cell)"), f"{lens} {label}")
                             for s, label in enumerate(labels)]
        text = (f"Example {beliefs['example']}: the distribution over the next cell when the model stands on "
                f"path cell {step - 1} {tuple(int(x) for x in maze.path[step - 1])} (a junction where possible) and "
                f"must name path cell {step} {tuple(int(x) for x in maze.path[step])}, drawn on the maze at every "
                "lens layer. Green = origin, red = target, blue = true path.")
        return LensPictures("Per-layer beliefs on the maze", text, figures)
