"""The maze task through the task protocol (`searchprobe.tasks.base.Task`).

Everything the generic stages need to know about mazes: the tokenizer of a dataset, token roles
(``path:k`` is solution step k), rollout scoring (paths decoded from cell tokens, checked against
the walls and the true shortest path; a random walk as the baseline), probe labels, counterfactual
pairs and goal retargeting (the target cell), and maze pictures.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from searchprobe.tasks.base import LabelSet, Task
from searchprobe.tasks.label_arrays import dense
from searchprobe.tasks.maze import tokens as maze_tokens

#: Solution steps beyond this share one lens group ("path:≥12").
MAX_PATH_GROUPS = 12
DEFAULT_ROLES = ("adjlist_end", "origin", "target", "target_end", "path_start",
                 "path:0", "path:1", "path:2", "path:3", "path:4", "path:5")
DEFAULT_LABELS = ("target_cell", "next_cell", "ahead_2", "ahead_3", "on_path", "walls_current", "dead_end",
                  "connectivity", "expanded_bfs", "dist_to_target")


@lru_cache(maxsize=8)
def _cells_of(vocab: tuple[str, ...]) -> dict[int, tuple[int, int]]:
    return {i: cell for i, t in enumerate(vocab) if (cell := maze_tokens.parse_cell(t)) is not None}


def decode_paths(generated: Sequence[np.ndarray], vocab: Sequence[str]) -> tuple[list[list[tuple[int, int]]], list[bool]]:
    """Generated ids → lists of (row, col); well-formed iff only cells then ``<PATH_END>`` (after
    the last ``<PATH_START>``, when the model wrote a search trace first)."""
    vocab = tuple(vocab)
    cells_of = _cells_of(vocab)
    path_start, stop = vocab.index(maze_tokens.PATH_START), vocab.index(maze_tokens.PATH_END)
    out, ok = [], []
    for gen in generated:
        ids = np.asarray(gen).tolist()
        if path_start in ids:  # the model wrote a search trace first: its path follows <PATH_START>
            ids = ids[len(ids) - ids[::-1].index(path_start):]
        ended = bool(ids) and ids[-1] == stop
        body = ids[:-1] if ended else ids
        cells = [cells_of[i] for i in body if i in cells_of]
        out.append(cells)
        ok.append(ended and len(cells) == len(body))
    return out, ok


def _paths(rows: Mapping[str, Any]) -> list[np.ndarray]:
    return [dense(p, np.int64).reshape(-1, 2) for p in rows["path"]]


def _connections(rows: Mapping[str, Any]) -> np.ndarray:
    return np.stack([dense(c, bool) for c in rows["connections"]])


class MazeTask(Task):
    """Mazes: find the shortest path from the origin to the target cell."""

    name: ClassVar[str] = "maze"
    pad_token: ClassVar[str] = maze_tokens.PADDING
    stop_token: ClassVar[str] = maze_tokens.PATH_END
    solution_name: ClassVar[str] = "path"
    primary_metrics: ClassVar[tuple[str, ...]] = ("exact_path", "valid_steps", "reaches_target", "first_step")
    pair_kinds: ClassVar[tuple[str, ...]] = ("target", "wall", "origin")
    rollout_columns: ClassVar[tuple[str, ...]] = ("path", "connections")

    # --- generate ----------------------------------------------------------------------------
    def generate(self, task_file, *, out=None, n=None, seed=None, shard=None, overwrite=False, workers=1,
                 progress=False) -> Path:
        from searchprobe.tasks.maze.dataset import generate_from_toml

        return generate_from_toml(task_file, out=out, n=n, seed=seed, shard=shard, overwrite=overwrite,
                                  workers=workers, progress=progress)

    def dataset_card(self, meta) -> str:
        from searchprobe.tasks.maze.dataset import dataset_card

        return dataset_card(meta)

    # --- vocabulary and roles ----------------------------------------------------------------
    def tokenizer(self, dataset_config):
        tok = dataset_config["tokenizer"]
        return maze_tokens.MazeTokenizer(tok["max_grid"], trace_format=tok.get("trace_format"),
                                         layout=tok.get("layout", "aotp"))

    def role_code(self, name: str) -> int:
        return maze_tokens.role_code(name)

    def role_name(self, code: int) -> str:
        return maze_tokens.role_name(code)

    def default_roles(self, dataset_config) -> tuple[str, ...]:
        """The grid layout ends its maze section at ``grid_end`` instead of ``adjlist_end``."""
        layout = (dataset_config.get("tokenizer") or {}).get("layout", "aotp")
        if layout == "grid":
            return tuple("grid_end" if r == "adjlist_end" else r for r in DEFAULT_ROLES)
        return DEFAULT_ROLES

    def step_of_role(self, role: str) -> int | None:
        if role.startswith("path:") and role[5:].isdigit():
            return int(role[5:])
        return None

    def prediction_group(self, code: int) -> str:
        if code >= maze_tokens.PATH_ROLE_BASE + MAX_PATH_GROUPS:
            return f"path:≥{MAX_PATH_GROUPS}"
        return maze_tokens.role_name(code)

    def is_solution_role(self, codes) -> np.ndarray:
        return np.asarray(codes) >= maze_tokens.PATH_ROLE_BASE

    # --- rollouts ----------------------------------------------------------------------------
    def rollout_slack(self, dataset_config) -> int:
        """Room for a path through every cell."""
        cfg = dataset_config["config"]
        return int(cfg["rows"]) * int(cfg["cols"]) + 1

    def score_rollouts(self, rows, prompts, generated, vocab) -> dict[str, float]:
        from searchprobe.train.rollout import maze_path_metrics

        cells, ok = decode_paths(generated, vocab)
        return maze_path_metrics(cells, ok, _paths(rows), _connections(rows)).to_dict()

    def baseline_rollouts(self, rows, seed: int) -> dict[str, float]:
        """A random walk from the origin (see `random_walk_paths`), scored like the model."""
        from searchprobe.train.rollout import maze_path_metrics, random_walk_paths

        paths, conns = _paths(rows), _connections(rows)
        walks = random_walk_paths(paths, conns, seed)
        metrics = maze_path_metrics(walks, [True] * len(walks), paths, conns).to_dict()
        return {f"random_walk/{k}": v for k, v in metrics.items() if k != "n"}

    # --- probe labels ------------------------------------------------------------------------
    def label_set(self, stored, split, n, roles, *, k_ahead: int = 4) -> LabelSet:
        from searchprobe.tasks.maze.probe_labels import maze_label_specs, maze_store_labels

        cfg = stored.config["config"]
        n_cells = int(cfg["rows"]) * int(cfg["cols"])
        specs = maze_label_specs(n_cells, k_ahead, tuple(cfg.get("traces", ("bfs", "astar"))))
        max_steps = max([k + 1 for k in map(self.step_of_role, roles) if k is not None] + [1])
        return LabelSet(specs, DEFAULT_LABELS, lambda rows: maze_store_labels(rows, n_cells, k_ahead, max_steps))

    # --- lens --------------------------------------------------------------------------------
    lens_columns: ClassVar[tuple[str, ...]] = ("connections", "origin", "target", "path")

    def lens_context(self, rows, vocab):
        """Legal next cells (open neighbours of the current cell) and beliefs drawn on the maze."""
        from searchprobe.tasks.maze.lens_view import MazeLensContext

        return MazeLensContext(rows, vocab)

    # --- patching and retargeting ------------------------------------------------------------
    goal_columns: ClassVar[tuple[str, ...]] = ("target",)
    goal_label: ClassVar[str | None] = "target_cell"

    def make_pairs(self, stored, tokenizer, *, split, kind, n, seed):
        """Maze pairs (`searchprobe.tasks.maze.pairs`); the payloads are the two sides' solved mazes."""
        from searchprobe.tasks.maze.pairs import maze_pairs_from_dataset

        self.check_pair_kind(kind)
        return maze_pairs_from_dataset(stored, tokenizer, split=split, kind=kind, n=n, seed=seed)

    def goal_role(self) -> str:
        return "target"

    def goal_classes(self, rows, dataset_config) -> tuple[np.ndarray, int]:
        """The target cell id ``row * cols + col``; ``rows * cols`` classes."""
        cfg = dataset_config["config"]
        C = int(cfg["cols"])
        return np.array([int(r) * C + int(c) for r, c in rows["target"]], dtype=np.int64), int(cfg["rows"]) * C

    def pair_goal_classes(self, pairs) -> tuple[np.ndarray, np.ndarray]:
        C = pairs.clean.n_cols
        ids = [side.target[:, 0].astype(np.int64) * C + side.target[:, 1].astype(np.int64)
               for side in (pairs.clean, pairs.corrupt)]
        return ids[0], ids[1]

    def same_goal_prompts(self, pairs, tokenizer, rng) -> list[np.ndarray]:
        """The clean prompt with its origin token replaced by a uniformly random other cell (not the
        origin or the target; one ``rng.integers`` draw per pair, in pair order)."""
        R, C = pairs.clean.n_rows, pairs.clean.n_cols
        origin_code = maze_tokens.role_code("origin")
        out = []
        for i, prompt in enumerate(pairs.prompts("clean")):
            o = tuple(int(v) for v in pairs.clean.origin[i])
            t = tuple(int(v) for v in pairs.clean.target[i])
            options = [(r, c) for r in range(R) for c in range(C) if (r, c) not in (o, t)]
            cell = options[int(rng.integers(len(options)))]
            p = prompt.copy()
            p[int(np.flatnonzero(pairs.roles[i] == origin_code)[0])] = tokenizer.cell_ids[cell]
            out.append(p)
        return out

    def retarget_outcomes(self, pairs, generated, vocab) -> dict[str, np.ndarray]:
        """Decoded paths (`decode_paths`) against the re-solved paths of both sides: ``new`` / ``old``
        = `maze_path_metrics`'s ``reaches_target`` (valid moves from the origin, ending at that
        target); ``first_new`` / ``first_old`` = the cell after the origin is that path's."""
        from searchprobe.train.rollout import maze_path_metrics

        cells, ok = decode_paths(generated, vocab)
        new_paths = [pairs.corrupt.path[i, : int(pairs.corrupt.path_len[i])] for i in range(len(pairs))]
        old_paths = [pairs.clean.path[i, : int(pairs.clean.path_len[i])] for i in range(len(pairs))]

        def reaches(paths, conns):
            return np.array([maze_path_metrics([c], [k], [p], conns[i : i + 1]).reaches_target == 1.0
                             for i, (c, k, p) in enumerate(zip(cells, ok, paths))], dtype=bool)

        def first(paths):
            return np.array([len(c) > 1 and len(p) > 1 and tuple(c[1]) == tuple(int(v) for v in p[1])
                             for c, p in zip(cells, paths)], dtype=bool)

        return {"new": reaches(new_paths, pairs.corrupt.connections), "old": reaches(old_paths, pairs.clean.connections),
                "first_new": first(new_paths), "first_old": first(old_paths),
                "first_split": np.array([len(a) > 1 and len(b) > 1 and tuple(a[1]) != tuple(b[1])
                                         for a, b in zip(new_paths, old_paths)], dtype=bool)}

    # --- report ------------------------------------------------------------------------------
    def pictures(self, stored, split, n) -> list[tuple[bytes, str]]:
        from searchprobe.tasks.maze.pictures import render_maze
        from searchprobe.tasks.maze.types import Maze

        ds = stored.splits[split]
        out = []
        for i in range(min(n, len(ds))):
            row = ds[i]
            conn = np.asarray(row["connections"], dtype=bool)
            maze = Maze(conn.shape[1], conn.shape[2], conn, tuple(int(x) for x in row["origin"]),
                        tuple(int(x) for x in row["target"]), np.asarray(row["path"], dtype=int).reshape(-1, 2))
            out.append((render_maze(maze, title=f"#{i}", cell_px=40),
                        f"{split} example {i}: shortest path of {len(maze.path)} cells (origin green, target red)"))
        return out


TASK = MazeTask()
