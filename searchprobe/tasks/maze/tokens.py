"""Maze tokens: maze-dataset's AOTP format, one fixed vocabulary per maximum grid size, token roles.

A solved maze is written as (maze-dataset's "AOTP": adjacency list, origin, target, path)::

    <ADJLIST_START> (0,0) <--> (0,1) ; (1,1) <--> (0,1) ; … <ADJLIST_END>
    <ORIGIN_START> (r,c) <ORIGIN_END> <TARGET_START> (r,c) <TARGET_END>
    [<TRACE_START> create (r,c) c<g> c<h> close (r,c) c<g> c<h> … <TRACE_END>]
    <PATH_START> (r,c) (r,c) … <PATH_END>

The token strings are maze-dataset's own (``SPECIAL_TOKENS`` and the "unique token" cells
``(r,c)``), and the first ``11 + max_grid**2`` ids are exactly maze-dataset's legacy
``MazeTokenizer(TokenizationMode.AOTP_UT_uniform, max_grid_size)`` ids, so its token ids, texts
and models carry over. Edge order and edge direction are shuffled per maze by counter-based
hashing of the maze's own seed (``batch.seed[b]``), so a maze's tokens do not depend on which
batch it was encoded in.

Vocabulary (ids are stable for a given ``max_grid``):

====================  ====================================================================
ids                   tokens
====================  ====================================================================
0 … 10                ``<ADJLIST_START> <ADJLIST_END> <TARGET_START> <TARGET_END>
                      <ORIGIN_START> <ORIGIN_END> <PATH_START> <PATH_END> <--> ; <PADDING>``
11 … 10 + G²          cells ``(r,c)``, 0 ≤ r, c < G, in maze-dataset's corner-first order
next 4                ``<TRACE_START> <TRACE_END> create close``
next G²               cost tokens ``c0 … c{G²-1}`` (g and h of trace events)
====================  ====================================================================

``max_grid`` ≤ 127, so every id fits an int16.

Trace format (optional, Searchformer / stream-of-search style): between the target and the path,
every CREATE and CLOSE event of a `searchprobe.search.Trace` (node = cell id ``r * n_cols + c``)
becomes ``create|close (r,c) c<g> c<h>``; a NaN h (BFS, DFS) is left out, so such an event has one
cost token, and an event with NaN g has none. ``trace_format="searchformer"`` writes CREATE and
CLOSE events, ``"close"`` only the CLOSE events (the expansion order). Other event kinds are
dropped. ``trace_format="fill"`` needs no search trace: it writes ``<TRACE_START> (r,c) … <TRACE_END>``,
the cells in the order dead-end filling removes them (`fill.dead_end_fill_order`), so that what
remains is the path; `decode_trace` reads them back as one CLOSE event per filled cell. It is the
training recipe's scratchpad: every filled cell is a local decision, and the path after it is a
walk along the cells left.

Grid layout (``layout="grid"``, searchprobe's compact format, not maze-dataset's): the adjacency
list is replaced by one token per cell in row-major order, naming the cell's open sides::

    <ORIGIN_START> (r,c) <ORIGIN_END> <TARGET_START> (r,c) <TARGET_END>
    <GRID_START> open:DR open:LR … open:U <GRID_END> <PATH_START> …

``open:`` + a subset of ``UDLR`` in that order (``open:`` alone for a cell with no passage), so
the cell is its position (token ``7 + r * n_cols + c``) and a 5×5 maze takes 34 tokens before the
path instead of about 105. Origin and target come first so that, under causal attention, every
cell position can already compute target-aware features. Its 18 tokens come after the cost tokens and exist only in grid-layout
vocabularies, so AOTP ids are untouched. Decoding a grid needs ``shape`` unless the grid is square.

Roles: every token carries an int role (see `ROLE_NAMES`, `role_code`, `role_name`). Path cells
have role ``path:k`` (k = 0 for the origin repeated after ``<PATH_START>``), code
``PATH_ROLE_BASE + k``; all other codes are fixed and independent of the grid size.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from searchprobe.errors import DataError, InputError
from searchprobe.search.trace import Event, Trace, TraceBuilder
from searchprobe.tasks.maze.types import Maze, MazeBatch

# --- vocabulary ---------------------------------------------------------------------------

#: maze-dataset's SPECIAL_TOKENS, in its order (ids 0 … 10).
ADJLIST_START, ADJLIST_END = "<ADJLIST_START>", "<ADJLIST_END>"
TARGET_START, TARGET_END = "<TARGET_START>", "<TARGET_END>"
ORIGIN_START, ORIGIN_END = "<ORIGIN_START>", "<ORIGIN_END>"
PATH_START, PATH_END = "<PATH_START>", "<PATH_END>"
CONNECTOR, ADJ_SEPARATOR, PADDING = "<-->", ";", "<PADDING>"
SPECIAL_TOKENS: tuple[str, ...] = (
    ADJLIST_START, ADJLIST_END, TARGET_START, TARGET_END, ORIGIN_START, ORIGIN_END,
    PATH_START, PATH_END, CONNECTOR, ADJ_SEPARATOR, PADDING,
)
#: Our trace tokens (after the cells).
TRACE_START, TRACE_END, TRACE_CREATE, TRACE_CLOSE = "<TRACE_START>", "<TRACE_END>", "create", "close"
TRACE_TOKENS: tuple[str, ...] = (TRACE_START, TRACE_END, TRACE_CREATE, TRACE_CLOSE)
TRACE_FORMATS: tuple[str, ...] = ("searchformer", "close", "fill")
#: Grid-layout tokens: the section markers and one token per set of open sides (U, D, L, R).
GRID_START, GRID_END = "<GRID_START>", "<GRID_END>"
_SIDES = "UDLR"
OPEN_TOKENS: tuple[str, ...] = tuple("open:" + "".join(_SIDES[i] for i in range(4) if m >> i & 1) for m in range(16))
LAYOUTS: tuple[str, ...] = ("aotp", "grid")
#: Largest max_grid: its vocabulary (32273 tokens) still fits int16 token ids.
MAX_GRID = 127

_CELL_RE = re.compile(r"^\((\d+),(\d+)\)$")


def corner_first_cells(max_grid: int) -> list[tuple[int, int]]:
    """Cells of a max_grid × max_grid lattice in maze-dataset's ``corner_first_ndindex`` order.

    Shell by shell (max(r, c) = 0, 1, …); within a shell, lexicographic order of (r, c) for even r
    and of (c, r) for odd r — so the vocabulary of a smaller grid is a prefix of a larger one's.
    """
    cells = [(r, c) for r in range(max_grid) for c in range(max_grid)]
    return sorted(cells, key=lambda x: (max(x), x if x[0] % 2 == 0 else x[::-1]))


def cell_token(row: int, col: int) -> str:
    return f"({row},{col})"


def parse_cell(token: str) -> tuple[int, int] | None:
    """``"(r,c)"`` → (r, c), the inverse of `cell_token`; None for any other token."""
    match = _CELL_RE.match(token)
    return (int(match.group(1)), int(match.group(2))) if match else None


# --- roles --------------------------------------------------------------------------------

#: Fixed role codes (index = code). Path steps use ``PATH_ROLE_BASE + k`` ("path:k").
ROLE_NAMES: tuple[str, ...] = (
    "padding",  # 0
    "adjlist_start", "adj", "adj_connector", "adj_separator", "adjlist_end",  # 1-5
    "origin_start", "origin", "origin_end",  # 6-8
    "target_start", "target", "target_end",  # 9-11
    "trace_start", "trace_kind", "trace_cell", "trace_g", "trace_h", "trace_end",  # 12-17
    "path_start", "path_end",  # 18-19
    "grid_start", "grid_cell", "grid_end",  # 20-22 (grid layout)
)
PATH_ROLE_BASE = 32
_ROLE_CODES = {name: code for code, name in enumerate(ROLE_NAMES)}
_R = _ROLE_CODES  # short alias for the encoder


def role_code(name: str) -> int:
    """The int role of a role name: ``role_code("target") == 10``, ``role_code("path:3") == 35``."""
    if name in _ROLE_CODES:
        return _ROLE_CODES[name]
    if name.startswith("path:") and name[5:].isdigit():
        return PATH_ROLE_BASE + int(name[5:])
    raise InputError(f"unknown token role {name!r}; allowed: {', '.join(ROLE_NAMES)} or 'path:k' with k >= 0")


def role_name(code: int) -> str:
    """The name of an int role (inverse of `role_code`)."""
    code = int(code)
    if 0 <= code < len(ROLE_NAMES):
        return ROLE_NAMES[code]
    if code >= PATH_ROLE_BASE:
        return f"path:{code - PATH_ROLE_BASE}"
    raise InputError(f"unknown role code {code}; allowed: 0..{len(ROLE_NAMES) - 1} or >= {PATH_ROLE_BASE} (path:k)")


# --- counter-based hashing ------------------------------------------------------------------

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_STREAM_ORDER = np.uint64(0x5EED0001)
_SLOT_MASK = np.uint64(0xFFFF)  # low key bits hold the slot (2 * 127 * 127 slots at most)
_CLOSED_KEY = np.uint64(1 << 63)  # closed slots sort after every open one


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijective avalanche of uint64s (vectorized)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def _hash(seed: np.ndarray, counter: np.ndarray, stream: np.uint64) -> np.ndarray:
    """Counter-based hash of (seed, counter, stream) -> uint64; broadcasts seed against counter."""
    with np.errstate(over="ignore"):
        s = _mix64(np.asarray(seed, dtype=np.uint64) ^ stream)
        return _mix64(s + (np.asarray(counter, dtype=np.uint64) + np.uint64(1)) * _GOLDEN)


# --- encoded batch --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class EncodedMazes:
    """Token ids and roles of B mazes, padded to a common length.

    tokens: int32 (B, T) — token ids, padded on the right with the ``<PADDING>`` id (10).
    roles: int16 (B, T) — role codes (`role_name`), 0 ("padding") on padding.
    lengths: int32 (B,) — number of real tokens of each maze.
    solution_start: int32 (B,) — index of the first token the model must predict: the token after
        ``<PATH_START>`` (the origin repeated as path step 0).
    trace_start: int32 (B,) — index of the token after ``<TRACE_START>``; -1 without a trace.
    """

    tokens: np.ndarray
    roles: np.ndarray
    lengths: np.ndarray
    solution_start: np.ndarray
    trace_start: np.ndarray

    def __len__(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        lengths = self.lengths
        span = f"{int(lengths.min())}..{int(lengths.max())}" if len(lengths) else "-"
        return f"EncodedMazes(n={len(self)}, tokens={span}, padded_to={self.tokens.shape[1]})"

    def row(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(tokens, roles) of maze b without padding."""
        n = int(self.lengths[b])
        return self.tokens[b, :n], self.roles[b, :n]

    def to_flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ragged view: (tokens (sum L,), roles (sum L,), offsets (B + 1,)); maze b is ``[offsets[b]:offsets[b+1]]``."""
        mask = np.arange(self.tokens.shape[1])[None, :] < self.lengths[:, None]
        offsets = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=offsets[1:])
        return self.tokens[mask], self.roles[mask], offsets

    def position(self, role: str) -> np.ndarray:
        """Index of the first token with this role in each maze, (B,), -1 where absent."""
        hit = self.roles == role_code(role)
        return np.where(hit.any(axis=1), hit.argmax(axis=1), -1).astype(np.int32)


# --- the tokenizer -------------------------------------------------------------------------


class MazeTokenizer:
    """One fixed AOTP vocabulary for mazes up to ``max_grid`` × ``max_grid`` (see the module docstring).

    >>> tok = MazeTokenizer(7)
    >>> enc = tok.encode(batch)                      # doctest: +SKIP
    >>> tok.to_strings(enc)[0][:40]                  # doctest: +SKIP
    '<ADJLIST_START> (3,1) <--> (3,2) ; (0,5) <--> '
    """

    def __init__(self, max_grid: int, trace_format: str | None = None, layout: str = "aotp") -> None:
        if isinstance(max_grid, bool) or not isinstance(max_grid, (int, np.integer)) or not 2 <= max_grid <= MAX_GRID:
            raise InputError(f"max_grid={max_grid!r} for MazeTokenizer; allowed: an int in 2..{MAX_GRID}")
        if trace_format is not None and trace_format not in TRACE_FORMATS:
            raise InputError(f"trace_format={trace_format!r} for MazeTokenizer; allowed: None, {', '.join(map(repr, TRACE_FORMATS))}")
        if layout not in LAYOUTS:
            raise InputError(f"layout={layout!r} for MazeTokenizer; allowed: {', '.join(map(repr, LAYOUTS))}")
        self.max_grid = int(max_grid)
        self.trace_format = trace_format
        self.layout = layout
        g = self.max_grid
        cells = corner_first_cells(g)
        self.max_cost = g * g - 1
        self.vocab: list[str] = [
            *SPECIAL_TOKENS,
            *(cell_token(r, c) for r, c in cells),
            *TRACE_TOKENS,
            *(f"c{v}" for v in range(self.max_cost + 1)),
            *((GRID_START, GRID_END, *OPEN_TOKENS) if layout == "grid" else ()),
        ]
        self.token_to_id: dict[str, int] = {t: i for i, t in enumerate(self.vocab)}
        #: id of the token ``(r,c)``: ``cell_ids[r, c]``
        self.cell_ids = np.zeros((g, g), dtype=np.int32)
        for i, (r, c) in enumerate(cells):
            self.cell_ids[r, c] = len(SPECIAL_TOKENS) + i
        ids = self.token_to_id
        self.pad_id = ids[PADDING]
        self._trace_start_id, self._trace_end_id = ids[TRACE_START], ids[TRACE_END]
        self._create_id, self._close_id = ids[TRACE_CREATE], ids[TRACE_CLOSE]
        self._cost0_id = ids["c0"]
        # per-id lookups for the parser: cell row/col (-1 if not a cell), cost value (-1 if not a cost)
        n = len(self.vocab)
        self._cell_row = np.full(n, -1, dtype=np.int64)
        self._cell_col = np.full(n, -1, dtype=np.int64)
        for i, (r, c) in enumerate(cells):
            self._cell_row[len(SPECIAL_TOKENS) + i], self._cell_col[len(SPECIAL_TOKENS) + i] = r, c
        self._cost_value = np.full(n, -1, dtype=np.int64)
        self._cost_value[self._cost0_id:self._cost0_id + self.max_cost + 1] = np.arange(self.max_cost + 1)
        self._quad_cache: dict[tuple[int, int], np.ndarray] = {}
        if layout == "grid":
            self._open0_id = ids[OPEN_TOKENS[0]]

    def __repr__(self) -> str:
        return f"MazeTokenizer(max_grid={self.max_grid}, trace_format={self.trace_format!r}, layout={self.layout!r})"

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def id_of(self, token: str) -> int:
        try:
            return self.token_to_id[token]
        except KeyError:
            raise InputError(f"token {token!r} is not in the max_grid={self.max_grid} maze vocabulary") from None

    def max_length(self, n_rows: int, n_cols: int) -> int:
        """Longest possible token sequence (without a trace) for an n_rows × n_cols maze."""
        if self.layout == "grid":
            return 2 * n_rows * n_cols + 10
        n_edges = n_rows * (n_cols - 1) + n_cols * (n_rows - 1)
        return 4 * n_edges + n_rows * n_cols + 10

    # --- encoding ---------------------------------------------------------------------------

    def encode(self, batch: MazeBatch, traces: Sequence[Trace] | None = None) -> EncodedMazes:
        """Tokens and roles of every maze in `batch` (vectorized over the batch).

        `traces` (one per maze, node = cell id) is required when the tokenizer has a
        `trace_format` and ignored otherwise.
        """
        B, R, C = len(batch), batch.n_rows, batch.n_cols
        if max(R, C) > self.max_grid:
            raise InputError(f"maze grid {R}x{C} is beyond the tokenizer's max_grid={self.max_grid}; allowed: rows, cols <= {self.max_grid}")
        conn = np.asarray(batch.connections, dtype=bool).reshape(B, 2 * R * C)
        seeds = np.asarray(batch.seed).astype(np.uint64)
        ids = self.token_to_id
        if self.layout == "grid":
            segments = []
            head_ids, head_role_names = [], []
        else:
            segments = [_fixed_segment(B, [ids[ADJLIST_START]], [_R["adjlist_start"]])]
            segments.append(self._edge_segment(conn, seeds, R, C))
            head_ids, head_role_names = [ids[ADJLIST_END]], ["adjlist_end"]
        o, t = np.asarray(batch.origin, dtype=np.int64), np.asarray(batch.target, dtype=np.int64)
        head_ids += [ids[ORIGIN_START], 0, ids[ORIGIN_END], ids[TARGET_START], 0, ids[TARGET_END]]
        head_role_names += ["origin_start", "origin", "origin_end", "target_start", "target", "target_end"]
        width = len(head_ids)
        head = np.empty((B, width), dtype=np.int32)
        head[:] = head_ids
        head[:, width - 5] = self.cell_ids[o[:, 0], o[:, 1]]
        head[:, width - 2] = self.cell_ids[t[:, 0], t[:, 1]]
        head_roles = np.broadcast_to(np.array([_R[r] for r in head_role_names], dtype=np.int16), (B, width))
        segments.append((head, head_roles, np.full(B, width, dtype=np.int64)))
        if self.layout == "grid":  # endpoints first, so every cell position can attend to them
            segments.append(self._grid_segment(np.asarray(batch.connections, dtype=bool)))
        if self.trace_format == "fill":
            segments.append(self._fill_segment(batch))
        elif self.trace_format is not None:
            if traces is None or len(traces) != B:
                got = "None" if traces is None else f"{len(traces)} traces"
                raise InputError(f"trace_format={self.trace_format!r} needs one trace per maze ({B}), got {got}")
            segments.append(self._trace_segment(traces, R, C))
        segments.append(self._path_segment(batch))
        tokens, roles, lengths, starts = _concat_ragged(segments, self.pad_id)
        path_seg = len(segments) - 1
        solution_start = (starts[path_seg] + 1).astype(np.int32)
        trace_start = (starts[path_seg - 1] + 1).astype(np.int32) if self.trace_format is not None else np.full(B, -1, dtype=np.int32)
        return EncodedMazes(tokens, roles, lengths.astype(np.int32), solution_start, trace_start)

    def edge_order(self, connections: np.ndarray, seed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The shuffled adjacency list the encoder writes: (order (B, E_max), flip (B, E_max), n_edges (B,)).

        ``order[b, e]`` is a flat lattice-edge slot ``d * R * C + r * C + c`` of `connections`
        (the e-th edge written), ``flip[b, e]`` says it is written far-cell first; slots past
        ``n_edges[b]`` are filler. Slot s of maze b gets the hash h(seed[b], s): bits 16…62 order the
        open edges (ties, p ≈ 2⁻⁴⁷, broken by slot), bit 0 flips the edge, so each maze's order
        depends on its own seed and connections only.
        """
        B = connections.shape[0]
        conn = np.asarray(connections, dtype=bool).reshape(B, int(np.prod(connections.shape[1:])))
        slots = np.arange(conn.shape[1], dtype=np.uint64)
        h = _hash(np.asarray(seed).astype(np.uint64)[:, None], slots[None, :], _STREAM_ORDER)
        flip_all = (h & np.uint64(1)).astype(bool)
        keys = np.where(conn, ((h >> np.uint64(1)) & ~_SLOT_MASK) | slots, _CLOSED_KEY | slots)
        n_edges = conn.sum(axis=1)
        e_max = int(n_edges.max()) if B else 0
        order = (np.sort(keys, axis=1)[:, :e_max] & _SLOT_MASK).astype(np.intp)
        flip = np.take_along_axis(flip_all, order, axis=1)
        return order, flip, n_edges

    def _edge_quads(self, R: int, C: int) -> np.ndarray:
        """(2RC, 2, 4) int32: the four tokens of lattice edge slot s, written near-first [s, 0] or far-first [s, 1]."""
        quads = self._quad_cache.get((R, C))
        if quads is None:
            s = np.arange(2 * R * C)
            d, rc = np.divmod(s, R * C)
            r, c = np.divmod(rc, C)
            near = self.cell_ids[r, c]
            far = self.cell_ids[np.minimum(r + (d == 0), self.max_grid - 1), np.minimum(c + (d == 1), self.max_grid - 1)]
            quads = np.empty((len(s), 2, 4), dtype=np.int32)
            quads[:, :, 1] = self.token_to_id[CONNECTOR]
            quads[:, :, 3] = self.token_to_id[ADJ_SEPARATOR]
            quads[:, 0, 0], quads[:, 0, 2] = near, far
            quads[:, 1, 0], quads[:, 1, 2] = far, near
            self._quad_cache[(R, C)] = quads
        return quads

    def _edge_segment(self, conn: np.ndarray, seeds: np.ndarray, R: int, C: int):
        B = len(conn)
        order, flip, n_edges = self.edge_order(conn, seeds)
        block = self._edge_quads(R, C)[order, flip.astype(np.intp)]
        width = 4 * order.shape[1]
        roles = np.broadcast_to(np.array([_R["adj"], _R["adj_connector"], _R["adj"], _R["adj_separator"]], dtype=np.int16),
                                block.shape).reshape(B, width)
        return block.reshape(B, width), roles, 4 * n_edges

    def _grid_segment(self, connections: np.ndarray):
        """``<GRID_START>``, one open-sides token per cell (row-major), ``<GRID_END>``."""
        B, _, R, C = connections.shape
        down, right = connections[:, 0], connections[:, 1]
        up = np.zeros_like(down)
        up[:, 1:] = down[:, :-1]
        left = np.zeros_like(right)
        left[:, :, 1:] = right[:, :, :-1]
        mask = up * 1 + down * 2 + left * 4 + right * 8
        seg = np.empty((B, R * C + 2), dtype=np.int32)
        seg[:, 0] = self.token_to_id[GRID_START]
        seg[:, 1:-1] = self._open0_id + mask.reshape(B, R * C)
        seg[:, -1] = self.token_to_id[GRID_END]
        roles = np.full((B, R * C + 2), _R["grid_cell"], dtype=np.int16)
        roles[:, 0], roles[:, -1] = _R["grid_start"], _R["grid_end"]
        return seg, roles, np.full(B, R * C + 2, dtype=np.int64)

    def _path_segment(self, batch: MazeBatch):
        B = len(batch)
        path = np.asarray(batch.path)
        n = np.asarray(batch.path_len, dtype=np.int64)
        L = path.shape[1]
        seg = np.empty((B, L + 2), dtype=np.int32)
        seg[:, 0] = self.token_to_id[PATH_START]
        # padding cells (-1, -1) index the last cell: filler that _concat_ragged overwrites or clears
        seg[:, 1:L + 1] = self.cell_ids[path[..., 0], path[..., 1]]
        seg[np.arange(B), n + 1] = self.token_to_id[PATH_END]
        roles = np.empty((B, L + 2), dtype=np.int16)
        roles[:, 0] = _R["path_start"]
        roles[:, 1:L + 1] = PATH_ROLE_BASE + np.arange(L, dtype=np.int16)
        roles[np.arange(B), n + 1] = _R["path_end"]
        return seg, roles, n + 2

    def trace_tokens(self, trace: Trace, n_rows: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, roles) of one trace in this tokenizer's trace format, ``<TRACE_START> … <TRACE_END>`` included."""
        fmt = self.trace_format or "searchformer"
        kinds = np.asarray(trace["kind"])
        keep = (kinds == Event.CLOSE) if fmt == "close" else np.isin(kinds, [Event.CREATE, Event.CLOSE])
        kinds = kinds[keep]
        node = np.asarray(trace["node"])[keep]
        g, h = np.asarray(trace["g"], dtype=float)[keep], np.asarray(trace["h"], dtype=float)[keep]
        if max(n_rows, n_cols) > self.max_grid:
            raise InputError(f"maze grid {n_rows}x{n_cols} is beyond the tokenizer's max_grid={self.max_grid}")
        bad_node = (node < 0) | (node >= n_rows * n_cols)
        if bad_node.any():
            raise InputError(f"trace node {int(node[bad_node][0])} is not a cell id of the {n_rows}x{n_cols} maze; allowed: 0..{n_rows * n_cols - 1}")
        r, c = np.divmod(node, n_cols)
        has_g, has_h = ~np.isnan(g), ~np.isnan(h)
        for name, vals, has in (("g", g, has_g), ("h", h, has_h)):
            v = vals[has]
            bad = (v != np.round(v)) | (v < 0) | (v > self.max_cost)
            if bad.any():
                raise InputError(f"trace {name}={float(v[bad][0])!r} cannot be a cost token; allowed: integers 0..{self.max_cost} (max_grid={self.max_grid})")
        if (has_h & ~has_g).any():
            raise InputError("trace event has h but no g (NaN); the trace format writes g before h")
        per_event = 2 + has_g.astype(np.int64) + has_h.astype(np.int64)
        n_ev = len(kinds)
        width = 4
        block = np.full((n_ev, width), -1, dtype=np.int64)
        roles = np.zeros((n_ev, width), dtype=np.int16)
        block[:, 0] = np.where(kinds == Event.CREATE, self._create_id, self._close_id)
        block[:, 1] = self.cell_ids[r, c]
        block[:, 2] = self._cost0_id + np.where(has_g, g, 0).astype(np.int64)
        block[:, 3] = self._cost0_id + np.where(has_h, h, 0).astype(np.int64)
        roles[:] = [_R["trace_kind"], _R["trace_cell"], _R["trace_g"], _R["trace_h"]]
        used = np.arange(width)[None, :] < per_event[:, None]
        ids = np.concatenate([[self._trace_start_id], block[used], [self._trace_end_id]]).astype(np.int32)
        rl = np.concatenate([[_R["trace_start"]], roles[used], [_R["trace_end"]]]).astype(np.int16)
        return ids, rl

    def _fill_segment(self, batch: MazeBatch):
        """``<TRACE_START>``, the dead-end-filled cells in filling order, ``<TRACE_END>``."""
        from searchprobe.tasks.maze.fill import dead_end_fill_order

        B, C = len(batch), batch.n_cols
        order, count = dead_end_fill_order(np.asarray(batch.connections, dtype=bool), np.asarray(batch.origin),
                                           np.asarray(batch.target))
        width = order.shape[1] + 2
        seg = np.full((B, width), self.pad_id, dtype=np.int32)
        roles = np.zeros((B, width), dtype=np.int16)
        seg[:, 0], roles[:, 0] = self._trace_start_id, _R["trace_start"]
        filled = order >= 0
        r, c = np.divmod(np.maximum(order, 0), C)
        seg[:, 1:-1] = np.where(filled, self.cell_ids[r, c], self.pad_id)
        roles[:, 1:-1] = np.where(filled, _R["trace_cell"], 0)
        seg[np.arange(B), count + 1], roles[np.arange(B), count + 1] = self._trace_end_id, _R["trace_end"]
        return seg, roles, count + 2

    def _trace_segment(self, traces: Sequence[Trace], n_rows: int, n_cols: int):
        parts = [self.trace_tokens(tr, n_rows, n_cols) for tr in traces]
        n = np.array([len(p[0]) for p in parts], dtype=np.int64)
        width = int(n.max()) if len(n) else 0
        seg = np.full((len(parts), width), self.pad_id, dtype=np.int32)
        roles = np.zeros((len(parts), width), dtype=np.int16)
        for b, (ids, rl) in enumerate(parts):
            seg[b, :len(ids)], roles[b, :len(rl)] = ids, rl
        return seg, roles, n

    # --- strings ----------------------------------------------------------------------------

    def to_strings(self, tokens: EncodedMazes | np.ndarray | Sequence[int]) -> str | list[str]:
        """AOTP text (tokens joined by single spaces) of one id sequence (-> str) or of a batch (-> list[str]).

        Padding is dropped.
        """
        vocab = np.asarray(self.vocab, dtype=object)
        if isinstance(tokens, EncodedMazes):
            return [" ".join(vocab[tokens.row(b)[0]]) for b in range(len(tokens))]
        arr = np.asarray(tokens)
        if arr.ndim == 2:
            return [self.to_strings(row) for row in arr]
        self._check_ids(arr)
        return " ".join(vocab[arr[arr != self.pad_id]])

    def from_strings(self, text: str | Sequence[str]) -> np.ndarray:
        """Token ids (int32) of one maze's AOTP text: a whitespace-separated string or a list of tokens."""
        toks = text.split() if isinstance(text, str) else list(text)
        ids = self.token_to_id
        out = np.empty(len(toks), dtype=np.int32)
        for i, tok in enumerate(toks):
            j = ids.get(tok)
            if j is None:
                raise DataError(f"unknown maze token {tok!r} at position {i}; allowed: {self._allowed()}")
            out[i] = j
        return out

    def _allowed(self) -> str:
        g = self.max_grid
        grid = f", {GRID_START} {GRID_END} open:…" if self.layout == "grid" else ""
        return (f"maze-dataset AOTP tokens ({' '.join(SPECIAL_TOKENS)}), cells (r,c) with 0 <= r, c < {g}, "
                f"{' '.join(TRACE_TOKENS)}, c0..c{self.max_cost}{grid}")

    def _check_ids(self, arr: np.ndarray) -> None:
        bad = (arr < 0) | (arr >= self.vocab_size)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"token id {int(arr[i])} at position {i} is outside the vocabulary; allowed: 0..{self.vocab_size - 1} (max_grid={self.max_grid})")

    # --- decoding ---------------------------------------------------------------------------

    def decode(self, token_ids: Sequence[int] | np.ndarray, shape: tuple[int, int] | None = None) -> Maze:
        """The maze (connectivity, origin, target, path) written by one token sequence.

        `shape` is the (n_rows, n_cols) of the grid; without it the grid is the smallest that holds
        every cell named in the tokens. Trailing padding is ignored. The path is read as written
        (it is not checked against the walls: decode model outputs, then judge them).
        """
        parsed = self._parse(token_ids, shape)
        return parsed.maze

    def decode_trace(self, token_ids: Sequence[int] | np.ndarray, shape: tuple[int, int] | None = None) -> Trace:
        """The CREATE / CLOSE events (node, g, h) of the trace section; an empty Trace if there is none.

        Node ids are ``r * n_cols + c`` of `shape`; pass it for mazes that do not name every cell
        (hallways), whose inferred grid would be smaller.
        """
        return self._parse(token_ids, shape).trace

    def roles_of(self, token_ids: Sequence[int] | np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
        """Role codes (int16) of one token sequence, as `encode` would give them."""
        return self._parse(token_ids, shape).roles

    def _parse(self, token_ids, shape) -> "_Parsed":
        ids = np.asarray(token_ids, dtype=np.int64).ravel()
        self._check_ids(ids)
        n = len(ids)
        while n and ids[n - 1] == self.pad_id:
            n -= 1
        ids = ids[:n].tolist()
        vocab, tid = self.vocab, self.token_to_id
        row, col, cost = self._cell_row, self._cell_col, self._cost_value
        roles = np.zeros(n, dtype=np.int16)
        pos = 0

        def here() -> str:
            return f"{vocab[ids[pos]]!r} at position {pos}" if pos < n else f"end of sequence at position {pos}"

        def expect(token: str, role: str) -> None:
            nonlocal pos
            if pos >= n or ids[pos] != tid[token]:
                raise DataError(f"corrupt maze tokens: expected {token!r}, found {here()}")
            roles[pos] = _R[role]
            pos += 1

        def cell(role: int, what: str) -> tuple[int, int]:
            nonlocal pos
            if pos >= n or row[ids[pos]] < 0:
                raise DataError(f"corrupt maze tokens: expected a cell (r,c) for the {what}, found {here()}")
            roles[pos] = role
            pos += 1
            return int(row[ids[pos - 1]]), int(col[ids[pos - 1]])

        def endpoints() -> tuple[tuple[int, int], tuple[int, int]]:
            expect(ORIGIN_START, "origin_start")
            origin = cell(_R["origin"], "origin")
            expect(ORIGIN_END, "origin_end")
            expect(TARGET_START, "target_start")
            target = cell(_R["target"], "target")
            expect(TARGET_END, "target_end")
            return origin, target

        edges: list[tuple[tuple[int, int], tuple[int, int], int]] = []
        if self.layout == "grid":
            origin, target = endpoints()
            grid_at = pos + 1
            expect(GRID_START, "grid_start")
            masks = []
            while pos < n and self._open0_id <= ids[pos] < self._open0_id + 16:
                masks.append(ids[pos] - self._open0_id)
                roles[pos] = _R["grid_cell"]
                pos += 1
            expect(GRID_END, "grid_end")
            shape = _grid_shape(len(masks), shape)
            edges = _grid_edges(masks, shape, start=grid_at)
        else:
            expect(ADJLIST_START, "adjlist_start")
            end_id = tid[ADJLIST_END]
            while pos < n and ids[pos] != end_id:
                start = pos
                a = cell(_R["adj"], "adjacency list")
                expect(CONNECTOR, "adj_connector")
                b = cell(_R["adj"], "adjacency list")
                if abs(a[0] - b[0]) + abs(a[1] - b[1]) != 1:
                    raise DataError(f"corrupt maze tokens: edge {cell_token(*a)} <--> {cell_token(*b)} at position {start} joins non-adjacent cells")
                expect(ADJ_SEPARATOR, "adj_separator")
                edges.append((a, b, start))
            expect(ADJLIST_END, "adjlist_end")
            origin, target = endpoints()
        events: list[tuple[int, tuple[int, int], float, float]] = []
        if pos < n and ids[pos] == self._trace_start_id:
            expect(TRACE_START, "trace_start")
            while self.trace_format == "fill" and pos < n and row[ids[pos]] >= 0:
                events.append((int(Event.CLOSE), cell(_R["trace_cell"], "filled cell"), math.nan, math.nan))
            while pos < n and ids[pos] in (self._create_id, self._close_id):
                kind = Event.CREATE if ids[pos] == self._create_id else Event.CLOSE
                roles[pos] = _R["trace_kind"]
                pos += 1
                where = cell(_R["trace_cell"], "trace event")
                vals = [math.nan, math.nan]
                for k, rname in enumerate(("trace_g", "trace_h")):
                    if pos < n and cost[ids[pos]] >= 0:
                        vals[k] = float(cost[ids[pos]])
                        roles[pos] = _R[rname]
                        pos += 1
                events.append((int(kind), where, vals[0], vals[1]))
            expect(TRACE_END, "trace_end")
        expect(PATH_START, "path_start")
        path: list[tuple[int, int]] = []
        while pos < n and row[ids[pos]] >= 0:
            path.append(cell(PATH_ROLE_BASE + len(path), "path"))
        expect(PATH_END, "path_end")
        if pos != n:
            raise DataError(f"corrupt maze tokens: unexpected {here()} after <PATH_END>")

        cells = [origin, target, *path, *(e[1] for e in events)] + [x for a, b, _ in edges for x in (a, b)]
        if shape is None:
            shape = (max(c[0] for c in cells) + 1, max(c[1] for c in cells) + 1)
            shape = (max(shape[0], 2), max(shape[1], 2))
        R, C = int(shape[0]), int(shape[1])
        for c_ in cells:
            if not (c_[0] < R and c_[1] < C):
                k = ids.index(int(self.cell_ids[c_]))
                raise DataError(f"corrupt maze tokens: cell {cell_token(*c_)} at position {k} is beyond the {R}x{C} grid")
        conn = np.zeros((2, R, C), dtype=bool)
        for a, b, start in edges:
            (r0, c0), (r1, c1) = min(a, b), max(a, b)
            d = 0 if r1 != r0 else 1
            if conn[d, r0, c0]:
                raise DataError(f"corrupt maze tokens: edge {cell_token(*a)} <--> {cell_token(*b)} at position {start} is listed twice")
            conn[d, r0, c0] = True
        maze = Maze(n_rows=R, n_cols=C, connections=conn, origin=origin, target=target,
                    path=np.array(path, dtype=np.int16).reshape(-1, 2))
        tb = TraceBuilder()
        for kind, (r_, c_), g_, h_ in events:
            tb.add(Event(kind), node=r_ * C + c_, g=g_, h=h_)
        return _Parsed(maze, tb.build(), roles)


def _grid_shape(n_cells: int, shape: tuple[int, int] | None) -> tuple[int, int]:
    """The (rows, cols) of a grid section of `n_cells` tokens: `shape` if given, else the square."""
    if shape is not None:
        if int(shape[0]) * int(shape[1]) != n_cells:
            raise DataError(f"corrupt maze tokens: the grid section has {n_cells} cells, not {shape[0]}x{shape[1]}")
        return int(shape[0]), int(shape[1])
    side = math.isqrt(n_cells)
    if side < 2 or side * side != n_cells:
        raise DataError(f"grid section of {n_cells} cells is not a square of side >= 2; pass shape=(rows, cols) to decode it")
    return side, side


def _grid_edges(masks: list[int], shape: tuple[int, int], start: int) -> list[tuple[tuple[int, int], tuple[int, int], int]]:
    """Edges (a, b, token position) from per-cell open-side masks; both cells must agree on each passage."""
    R, C = shape
    edges = []
    for i, m in enumerate(masks):
        r, c = divmod(i, C)
        for bit, (dr, dc), back in ((1, (-1, 0), 2), (2, (1, 0), 1), (4, (0, -1), 8), (8, (0, 1), 4)):
            if not m & bit:
                continue
            r2, c2 = r + dr, c + dc
            if not (0 <= r2 < R and 0 <= c2 < C):
                raise DataError(f"corrupt maze tokens: {OPEN_TOKENS[m]!r} at position {start + i} opens cell {cell_token(r, c)} off the {R}x{C} grid")
            if not masks[r2 * C + c2] & back:
                raise DataError(f"corrupt maze tokens: {OPEN_TOKENS[m]!r} at position {start + i} opens {cell_token(r, c)} towards {cell_token(r2, c2)}, which is closed on that side")
            if bit in (2, 8):  # list each passage once, from its upper/left cell
                edges.append(((r, c), (r2, c2), start + i))
    return edges


@dataclass(frozen=True)
class _Parsed:
    maze: Maze
    trace: Trace
    roles: np.ndarray


# --- ragged assembly -------------------------------------------------------------------------


def _fixed_segment(B: int, ids: list[int], roles: list[int]):
    tok = np.broadcast_to(np.asarray(ids, dtype=np.int32), (B, len(ids)))
    rl = np.broadcast_to(np.asarray(roles, dtype=np.int16), (B, len(roles)))
    return tok, rl, np.full(B, len(ids), dtype=np.int64)


def _concat_ragged(segments, pad_id: int):
    """Concatenate per-row ragged segments ``(tokens (B, W), roles (B, W), lengths (B,))`` row by row.

    Each segment is written whole (filler included) at its row's offset, in order, so a later
    segment overwrites the filler of the one before; what lies past a row's length is reset to
    padding at the end. Returns (tokens (B, T), roles (B, T), lengths (B,), starts (n_segments, B)).
    """
    B = len(segments[0][2])
    seg_len = np.stack([s[2] for s in segments])  # (S, B)
    starts = np.zeros_like(seg_len)
    np.cumsum(seg_len[:-1], axis=0, out=starts[1:])
    lengths = seg_len.sum(axis=0)
    T = int(lengths.max()) if B else 0
    T_alloc = max([T] + [int((st + s[0].shape[1]).max()) for st, s in zip(starts, segments) if B])
    tokens = np.empty((B, T_alloc), dtype=np.int32)
    roles = np.empty((B, T_alloc), dtype=np.int16)
    flat_tok, flat_roles = tokens.reshape(-1), roles.reshape(-1)
    row_base = (np.arange(B, dtype=np.int64) * T_alloc)[:, None]
    for (tok, rl, n), start in zip(segments, starts):
        W = tok.shape[1]
        if W == 0 or B == 0:
            continue
        s0 = int(start[0])
        if (start == s0).all():
            tokens[:, s0:s0 + W] = tok
            roles[:, s0:s0 + W] = rl
        else:
            idx = row_base + start[:, None] + np.arange(W)[None, :]
            flat_tok[idx] = tok
            flat_roles[idx] = rl
    tokens, roles = tokens[:, :T], roles[:, :T]
    past_end = np.arange(T)[None, :] >= lengths[:, None]
    tokens[past_end] = pad_id
    roles[past_end] = 0
    return np.ascontiguousarray(tokens), np.ascontiguousarray(roles), lengths, starts
