"""maze-dataset interop: read its AOTP token strings of solved mazes into our types and write them back.

maze-dataset (PyPI ``maze-dataset``) writes a solved maze as a list of token strings
(``SolvedMaze.as_tokens(MazeTokenizer(TokenizationMode.AOTP_UT_uniform, …))``), the format
`searchprobe.tasks.maze.tokens` speaks, so a model trained here can be tested on mazes another
library made and the other way round:

* `read_aotp` / `read_aotp_batch`: token strings (a list, or one whitespace-separated string)
  → `Maze` / `MazeBatch`; corrupt or foreign strings raise `DataError` naming token and position.
* `write_aotp`: `Maze` → token strings. maze-dataset shuffles edge order and direction with
  numpy's global RNG; pass its adjacency list (``solved.as_adj_list()`` drawn from the same RNG
  state) as `adjacency` to get its exact strings, or leave it out for our per-seed shuffle (the
  order `MazeTokenizer.encode` writes).
* `from_solved_maze` / `to_solved_maze`: convert maze-dataset's `SolvedMaze` objects (needs
  maze-dataset installed; nothing else here imports it).
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from searchprobe.errors import DataError, InputError
from searchprobe.tasks.maze.tokens import ADJ_SEPARATOR, CONNECTOR, MAX_GRID, MazeTokenizer, cell_token
from searchprobe.tasks.maze.types import Maze, MazeBatch

_COORD_RE = re.compile(r"^\((\d+),(\d+)\)$")


@lru_cache(maxsize=8)
def _tokenizer(max_grid: int) -> MazeTokenizer:
    return MazeTokenizer(max_grid)


def _split(tokens: str | Sequence[str]) -> list[str]:
    return tokens.split() if isinstance(tokens, str) else [str(t) for t in tokens]


def _grid_needed(words: list[str]) -> int:
    """Smallest vocabulary size that holds every coordinate token in `words` (at least 2)."""
    biggest = 1
    for i, w in enumerate(words):
        m = _COORD_RE.match(w)
        if m:
            r, c = int(m[1]), int(m[2])
            if max(r, c) >= MAX_GRID:
                raise DataError(f"maze token {w!r} at position {i} is beyond the largest supported grid ({MAX_GRID}x{MAX_GRID})")
            biggest = max(biggest, r + 1, c + 1)
    return max(2, biggest)


def read_aotp(tokens: str | Sequence[str], shape: tuple[int, int] | None = None) -> Maze:
    """The `Maze` written by maze-dataset AOTP token strings of one solved maze.

    `shape` (n_rows, n_cols) gives the grid; without it, the smallest grid holding every named
    cell (all of them, for a spanning maze).
    """
    words = _split(tokens)
    tok = _tokenizer(max(_grid_needed(words), *(shape or (2,))))
    return tok.decode(tok.from_strings(words), shape=shape)


def maze_fingerprint(maze: Maze) -> int:
    """A uint64 content hash of (shape, connections, origin, target): a seed for mazes made elsewhere."""
    h = hashlib.blake2b(digest_size=8)
    h.update(np.array([maze.n_rows, maze.n_cols, *maze.origin, *maze.target], dtype=np.int64).tobytes())
    h.update(np.packbits(np.asarray(maze.connections, dtype=bool)).tobytes())
    return int.from_bytes(h.digest(), "little")


def stack_mazes(mazes: Sequence[Maze]) -> MazeBatch:
    """One `MazeBatch` from single mazes of one grid size; n_shortest is counted, the seed kept (or a content hash if < 0)."""
    if not mazes:
        raise InputError("stack_mazes needs at least one maze")
    R, C = mazes[0].n_rows, mazes[0].n_cols
    for i, m in enumerate(mazes):
        if (m.n_rows, m.n_cols) != (R, C):
            raise InputError(f"maze {i} is {m.n_rows}x{m.n_cols} but maze 0 is {R}x{C}; a batch holds one grid size")
    B, L = len(mazes), max(len(m.path) for m in mazes)
    path = np.full((B, L, 2), -1, dtype=np.int16)
    for b, m in enumerate(mazes):
        path[b, :len(m.path)] = m.path
    connections = np.stack([np.asarray(m.connections, dtype=bool) for m in mazes])
    origin = np.array([m.origin for m in mazes], dtype=np.int16)
    target = np.array([m.target for m in mazes], dtype=np.int16)
    seeds = np.array([m.seed if m.seed >= 0 else maze_fingerprint(m) for m in mazes], dtype=np.uint64)
    return MazeBatch(R, C, connections, origin, target, path, np.array([len(m.path) for m in mazes], dtype=np.int32),
                     count_shortest_paths(connections, origin, target), seeds)


def count_shortest_paths(connections: np.ndarray, origin: np.ndarray, target: np.ndarray) -> np.ndarray:
    """int64 (B,): number of distinct shortest origin→target paths (0 if unreachable); layer-by-layer BFS counting."""
    from searchprobe.tasks.maze.labels import bfs_distance

    conn = np.asarray(connections, dtype=bool)
    B, _, R, C = conn.shape
    origin, target = np.asarray(origin, dtype=np.int64), np.asarray(target, dtype=np.int64)
    dist = bfs_distance(conn, origin[:, 0] * C + origin[:, 1]).reshape(B, R, C)
    down, right = conn[:, 0].copy(), conn[:, 1].copy()
    down[:, -1, :] = False
    right[:, :, -1] = False
    count = np.zeros((B, R, C), dtype=np.int64)
    count[np.arange(B), origin[:, 0], origin[:, 1]] = 1
    for d in range(1, int(dist.max()) + 1 if dist.size else 0):
        prev = np.where(dist == d - 1, count, 0)
        into = np.zeros_like(count)
        into[:, 1:, :] += prev[:, :-1, :] * down[:, :-1, :]
        into[:, :-1, :] += prev[:, 1:, :] * down[:, :-1, :]
        into[:, :, 1:] += prev[:, :, :-1] * right[:, :, :-1]
        into[:, :, :-1] += prev[:, :, 1:] * right[:, :, :-1]
        count = np.where(dist == d, into, count)
    return count[np.arange(B), target[:, 0], target[:, 1]]


def read_aotp_batch(token_lists: Sequence[str | Sequence[str]], shape: tuple[int, int] | None = None) -> MazeBatch:
    """A `MazeBatch` from the AOTP token strings of several solved mazes of one grid size.

    Without `shape` the grid is the smallest that holds every cell of every maze. Seeds are
    content hashes (`maze_fingerprint`); n_shortest is counted.
    """
    words = [_split(t) for t in token_lists]
    if not words:
        raise InputError("read_aotp_batch needs at least one token list")
    mazes = []
    for i, w in enumerate(words):
        try:
            mazes.append(read_aotp(w))
        except DataError as exc:
            raise DataError(f"maze {i}: {exc}") from None
    if shape is None:
        shape = (max(m.n_rows for m in mazes), max(m.n_cols for m in mazes))
    mazes = [read_aotp(w, shape) if (m.n_rows, m.n_cols) != tuple(shape) else m for w, m in zip(words, mazes)]
    return stack_mazes(mazes)


def write_aotp(maze: Maze, adjacency: np.ndarray | None = None) -> list[str]:
    """maze-dataset AOTP token strings of `maze`.

    `adjacency` (E, 2, 2) lists the open passages as (cell, cell) pairs in the order and direction
    to write them (maze-dataset's ``as_adj_list()`` shape); it must name exactly the maze's
    passages. Without it, edges are shuffled by the maze's seed as `MazeTokenizer.encode` does.
    """
    if adjacency is None:
        batch = stack_mazes([maze])
        tok = _tokenizer(max(2, maze.n_rows, maze.n_cols))
        return tok.to_strings(tok.encode(batch)).pop().split()
    adj = np.asarray(adjacency, dtype=np.int64)
    if adj.ndim != 3 or adj.shape[1:] != (2, 2):
        raise InputError(f"adjacency has shape {adj.shape}; allowed: (n_edges, 2, 2) cell pairs")
    want = {frozenset(e) for e in maze.edges()}
    got = [frozenset((tuple(a), tuple(b))) for a, b in adj.tolist()]
    if len(got) != len(want) or set(got) != want:
        extra = sorted(tuple(sorted(e)) for e in set(got) - want)
        missing = sorted(tuple(sorted(e)) for e in want - set(got))
        raise InputError(f"adjacency does not list the maze's passages exactly (extra {extra[:3]}, missing {missing[:3]}, "
                         f"{len(got)} listed, {len(want)} open)")
    words = ["<ADJLIST_START>"]
    for (r0, c0), (r1, c1) in adj.tolist():
        words += [cell_token(r0, c0), CONNECTOR, cell_token(r1, c1), ADJ_SEPARATOR]
    words += ["<ADJLIST_END>", "<ORIGIN_START>", cell_token(*maze.origin), "<ORIGIN_END>",
              "<TARGET_START>", cell_token(*maze.target), "<TARGET_END>", "<PATH_START>"]
    words += [cell_token(int(r), int(c)) for r, c in maze.path]
    words.append("<PATH_END>")
    return words


def from_solved_maze(solved: Any) -> Maze:
    """Our `Maze` from a maze-dataset `SolvedMaze` (same connection_list convention, so a copy)."""
    conn = np.asarray(solved.connection_list, dtype=bool)
    solution = np.asarray(solved.solution, dtype=np.int16).reshape(-1, 2)
    maze = Maze(n_rows=conn.shape[1], n_cols=conn.shape[2], connections=conn.copy(),
                origin=tuple(int(x) for x in solved.start_pos), target=tuple(int(x) for x in solved.end_pos), path=solution)
    return maze


def to_solved_maze(maze: Maze) -> Any:
    """A maze-dataset `SolvedMaze` of `maze` (imports maze-dataset)."""
    try:
        from maze_dataset import SolvedMaze
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputError(f"to_solved_maze needs the optional maze-dataset package ({exc}); install searchprobe[bench]") from None
    return SolvedMaze(connection_list=np.asarray(maze.connections, dtype=bool).copy(),
                      solution=np.asarray(maze.path, dtype=np.int64).reshape(-1, 2))
