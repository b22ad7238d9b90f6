"""The maze dataset recipe: `MazeConfig`, read from ``tasks/<name>.toml``.

A task file has ``task = "maze"`` and the fields below at top level, plus optional
``[endpoints]`` and ``[splits]`` tables::

    task = "maze"
    rows = 7
    cols = 7
    generator = "dfs"          # dfs | hallway | wilson | kruskal | prim | percolation | dfs_percolation
    n = 100000
    seed = 0
    traces = ["bfs", "astar"]  # ground-truth search traces stored as columns
    token_format = "aotp"      # or "aotp_trace" (the `token_trace` search trace before the path), "grid" (compact),
                               # or "grid_fill" (compact, dead-end-filling order before the path)

    [endpoints]
    min_path_len = 2           # cells on the shortest path, origin and target included
    dead_end_target = false

    [splits]
    train = 0.8
    validation = 0.1
    test = 0.1

Everything is validated on construction (before any maze is made): a window no maze of the grid
can meet, a grid beyond the tokenizer vocabulary, an unknown generator all raise at once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from searchprobe.config import content_hash, load_config, load_toml
from searchprobe.errors import ConfigError, InputError
from searchprobe.tasks.store import DEFAULT_SPLITS, check_splits

#: The largest grid side the maze tokenizer's vocabulary covers.
MAX_GRID = 32
GENERATORS = ("dfs", "hallway", "wilson", "kruskal", "prim", "percolation", "dfs_percolation")
#: Generators whose mazes are spanning trees (exactly one route between any two cells).
PERFECT_GENERATORS = frozenset({"dfs", "wilson", "kruskal", "prim"})
#: Generators whose mazes have no loops (so every shortest path is the only path).
ACYCLIC_GENERATORS = PERFECT_GENERATORS | {"hallway"}
#: Generators whose output depends on the percolation probability `p`.
PERCOLATION_GENERATORS = frozenset({"percolation", "dfs_percolation"})
TRACE_ALGORITHMS = ("bfs", "dfs", "astar")


@dataclass(frozen=True)
class EndpointConfig:
    """How origin and target are chosen (uniformly among the cells that satisfy every option)."""

    min_path_len: int = 2  #: fewest cells on the shortest origin→target path (≥ 2: origin ≠ target)
    max_path_len: int | None = None  #: most cells on it; None = no limit
    dead_end_origin: bool = False  #: origin must be a dead end (exactly one open passage)
    dead_end_target: bool = False  #: target must be a dead end
    origin: tuple[int, int] | None = None  #: fixed origin (row, col), or None to draw it
    target: tuple[int, int] | None = None  #: fixed target (row, col), or None to draw it

    def check(self, rows: int, cols: int) -> None:
        """Raise InputError if no maze on a rows×cols grid can meet these options."""
        lo, hi = self.min_path_len, self.max_path_len
        cells = rows * cols
        if lo < 2:
            raise InputError(f"endpoints.min_path_len={lo} is below 2; origin and target differ, so a path has >= 2 cells")
        if hi is not None and hi < lo:
            raise InputError(f"endpoints window [{lo}, {hi}] is empty (max_path_len < min_path_len)")
        if lo > cells:
            raise InputError(f"endpoints.min_path_len={lo} cannot be met on a {rows}x{cols} grid: "
                             f"a path has at most {cells} cells")
        for name, cell in (("origin", self.origin), ("target", self.target)):
            if cell is not None and not (0 <= cell[0] < rows and 0 <= cell[1] < cols):
                raise InputError(f"endpoints.{name}={list(cell)} lies outside the {rows}x{cols} grid; "
                                 f"allowed rows 0..{rows - 1}, cols 0..{cols - 1}")
        if self.origin is not None and self.target is not None:
            if tuple(self.origin) == tuple(self.target):
                raise InputError(f"endpoints.origin and endpoints.target are both {list(self.origin)}; they must differ")
            manhattan = abs(self.origin[0] - self.target[0]) + abs(self.origin[1] - self.target[1])
            # On the grid (a bipartite graph) every path has manhattan + 1 + 2k cells.
            feasible = [n for n in range(max(lo, manhattan + 1), min(hi or cells, cells) + 1) if (n - manhattan - 1) % 2 == 0]
            if not feasible:
                raise InputError(f"endpoints window [{lo}, {hi}] cannot be met between fixed origin {list(self.origin)} "
                                 f"and target {list(self.target)}: their paths have {manhattan + 1}, {manhattan + 3}, … cells")


@dataclass(frozen=True)
class MazeConfig:
    """A maze dataset recipe. Fields marked ``hash: False`` do not change the output."""

    rows: int = 7  #: grid rows, 2..MAX_GRID
    cols: int = 7  #: grid columns, 2..MAX_GRID
    generator: str = "dfs"  #: one of GENERATORS
    p: float = 0.3  #: percolation probability of each lattice edge (percolation generators only)
    n: int = 1000  #: mazes to generate (duplicates are dropped afterwards)
    seed: int = 0  #: dataset seed; maze i's randomness depends only on (seed, i)
    endpoints: EndpointConfig = field(default_factory=EndpointConfig)
    splits: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SPLITS))
    traces: tuple[str, ...] = ()  #: search traces stored as columns: any of TRACE_ALGORITHMS
    #: plain AOTP, AOTP with a search trace before the path, the compact grid layout, or the grid
    #: layout with the dead-end-filling order before the path (the training recipe's scratchpad)
    token_format: Literal["aotp", "aotp_trace", "grid", "grid_fill"] = "aotp"
    token_trace: str = "astar"  #: which search's trace `aotp_trace` writes
    vocab_grid: int | None = None  #: tokenizer vocabulary grid side; None = max(rows, cols)
    labels: bool = True  #: store the probe labels (`label_*` columns); off for lean, huge datasets
    task: Literal["maze"] = "maze"
    batch_size: int = field(default=4096, metadata={"hash": False})  #: mazes per vectorized batch

    def __post_init__(self) -> None:
        for name in ("rows", "cols"):
            v = getattr(self, name)
            if not 2 <= v <= MAX_GRID:
                raise InputError(f"{name}={v} is not allowed; grids are 2..{MAX_GRID} per side (the tokenizer vocabulary)")
        if self.vocab_grid is not None and not max(self.rows, self.cols) <= self.vocab_grid <= MAX_GRID:
            raise InputError(f"vocab_grid={self.vocab_grid} must be in {max(self.rows, self.cols)}..{MAX_GRID} "
                             f"(at least the grid side, at most the tokenizer's {MAX_GRID})")
        if self.generator not in GENERATORS:
            raise InputError(f"generator={self.generator!r} is unknown; allowed: {', '.join(GENERATORS)}")
        if not 0.0 <= self.p <= 1.0:
            raise InputError(f"p={self.p} is not a probability; allowed 0..1")
        if self.n <= 0:
            raise InputError(f"n={self.n} must be a positive number of mazes")
        if not 0 <= self.seed < 2**63:
            raise InputError(f"seed={self.seed} must be in 0..2**63-1")
        if self.batch_size <= 0:
            raise InputError(f"batch_size={self.batch_size} must be positive")
        bad = [t for t in self.traces if t not in TRACE_ALGORITHMS]
        if bad:
            raise InputError(f"traces: {bad[0]!r} is unknown; allowed: {', '.join(TRACE_ALGORITHMS)}")
        if self.token_trace not in TRACE_ALGORITHMS:
            raise InputError(f"token_trace={self.token_trace!r} is unknown; allowed: {', '.join(TRACE_ALGORITHMS)}")
        check_splits(self.splits, "splits")
        self.endpoints.check(self.rows, self.cols)
        object.__setattr__(self, "traces", tuple(self.traces))

    # --- derived ------------------------------------------------------------------------------
    @property
    def perfect(self) -> bool:
        """True when every maze is a spanning tree (one route between any two cells)."""
        return self.generator in PERFECT_GENERATORS

    @property
    def acyclic(self) -> bool:
        """True when mazes have no loops (perfect mazes and hallways): one route per pair."""
        return self.generator in ACYCLIC_GENERATORS

    @property
    def max_grid(self) -> int:
        """The vocabulary's grid side."""
        return self.vocab_grid or max(self.rows, self.cols)

    @property
    def trace_algorithms(self) -> tuple[str, ...]:
        """Searches whose traces must be computed: stored ones plus the token format's."""
        extra = (self.token_trace,) if self.token_format == "aotp_trace" and self.token_trace not in self.traces else ()
        return self.traces + extra

    def canonical(self) -> "MazeConfig":
        """This recipe with fields that cannot change its output reset (`p` outside percolation)."""
        return self if self.generator in PERCOLATION_GENERATORS else dataclasses.replace(self, p=0.0)

    def content_hash(self) -> str:
        """Hash of what changes the output (`p` only counts for the percolation generators)."""
        return content_hash(self.canonical())

    @property
    def name(self) -> str:
        """Readable dataset name: ``maze-<gen>-g<r>x<c>-n<N>-s<seed>-h<hash>``."""
        return f"maze-{self.generator}-g{self.rows}x{self.cols}-n{self.n}-s{self.seed}-h{self.content_hash()}"

    def replace(self, **changes) -> "MazeConfig":
        return dataclasses.replace(self, **changes)


def load_maze_config(path: str | Path) -> MazeConfig:
    """Read a `MazeConfig` from a task TOML (``task = "maze"`` at top level)."""
    data = load_toml(path)
    if data.get("task") != "maze":
        raise ConfigError(f"{path}: task = {data.get('task')!r}, expected 'maze'")
    return load_config(path, MazeConfig)
