"""Probe labels for solved mazes: target, candidate solution, constraints, world model, search trace.

`maze_labels(batch, traces, k_ahead)` returns a dict of numpy arrays, vectorized over the batch.
B = mazes, N = n_rows * n_cols cells (cell id ``r * n_cols + c``), L = ``batch.path.shape[1]``
(path steps, padded), K = `k_ahead`. Path step t is the t-th cell of the path (t = 0 is the origin),
which is the token with role ``path:t``. Walls are ordered (up, down, left, right); the lattice
border counts as a wall.

======================  ===========  =====  ============================================================
key                     shape        dtype  meaning
======================  ===========  =====  ============================================================
origin_cell             (B,)         int32  cell id of the origin
target_cell             (B,)         int32  cell id of the target
path_cell               (B, L)       int32  cell id of path step t; -1 past the path
step_mask               (B, L)       bool   t < path_len (the step exists)
on_path                 (B, N)       bool   the cell is on the chosen shortest path
next_cell               (B, L)       int32  cell id of step t + 1; -1 at the target and past the path
cell_ahead              (B, L, K)    int32  cell id of step t + k, k = 1..K (index k - 1); -1 past the target
walls                   (B, N, 4)    bool   the cell's (up, down, left, right) side is closed
walls_current           (B, L, 4)    bool   walls of the cell at step t; False past the path
dead_end                (B, N)       bool   exactly one open side (degree 1)
bottleneck              (B, N)       bool   every origin→target route passes the cell (origin and target
                                            included; equals on_path in a perfect maze, fewer with loops)
off_path                (B, N)       bool   reachable from the origin but not on the path
branch_from             (B, N)       int32  for off_path cells: the first path step their branch (the
                                            component of the maze minus the path) touches; else -1
connectivity            (B, 2*N)     bool   ``batch.connections`` flattened: [0, r, c] down, [1, r, c] right
dist_to_target          (B, N)       int32  BFS distance to the target along open passages; -1 if unreachable
expanded_<name>         (B, N)       bool   closed (expanded) by search <name> before it closed the target
expand_order_<name>     (B, N)       int32  position in that search's closing order (0 = first); -1 if not
======================  ===========  =====  ============================================================

The ``*_<name>`` keys exist for every entry of `traces` (e.g. ``{"bfs": [...], "astar": [...]}``,
one `Trace` per maze, node = cell id).
"""

from __future__ import annotations

from typing import Collection, Mapping, Sequence

import numpy as np

from searchprobe.errors import InputError
from searchprobe.search.trace import Event, Trace
from searchprobe.tasks.maze.types import MazeBatch

#: Order of the 4 sides in ``walls`` / ``walls_current``.
SIDES: tuple[str, ...] = ("up", "down", "left", "right")


def open_sides(connections: np.ndarray) -> np.ndarray:
    """bool (B, R, C, 4): the (up, down, left, right) passage of each cell is open."""
    conn = np.asarray(connections, dtype=bool)
    down, right = conn[:, 0], conn[:, 1]
    out = np.zeros(down.shape + (4,), dtype=bool)
    out[:, 1:, :, 0] = down[:, :-1, :]
    out[..., 1] = down
    out[:, :, 1:, 2] = right[:, :, :-1]
    out[..., 3] = right
    out[:, -1, :, 1] = False  # the border is closed whatever the padding row says
    out[:, :, -1, 3] = False
    return out


def bfs_distance(connections: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """int32 (B, N): BFS distance from the source cell ids (B,) along open passages; -1 if unreachable.

    Frontier expansion over the whole batch at once, one numpy step per distance layer. Grids up to
    64 columns run bit-parallel: each lattice row of each maze is one uint64 bitmask, and the
    distances are kept as bit planes (bit k of d), unpacked once at the end.
    """
    conn = np.asarray(connections, dtype=bool)
    B, _, R, C = conn.shape
    if C > 64:
        return _bfs_distance_dense(conn, sources)
    weights = np.uint64(1) << np.arange(C, dtype=np.uint64)
    down = conn[:, 0].copy()
    right = conn[:, 1].copy()
    down[:, -1, :] = False
    right[:, :, -1] = False
    # layout (R, B): a lattice row of every maze is one contiguous block, so row shifts are slices
    down_w = np.ascontiguousarray((down * weights).sum(axis=-1, dtype=np.uint64).T)  # bit c: (r, c)-(r+1, c) open
    right_w = np.ascontiguousarray((right * weights).sum(axis=-1, dtype=np.uint64).T)  # bit c: (r, c)-(r, c+1) open
    src = np.asarray(sources, dtype=np.int64)
    frontier = np.zeros((R, B), dtype=np.uint64)
    frontier[src // C, np.arange(B)] = np.uint64(1) << (src % C).astype(np.uint64)
    all_cells = np.uint64((1 << C) - 1)
    unseen_out = np.full((R, B), all_cells, dtype=np.uint64)
    planes_out = np.zeros((max(1, int(R * C).bit_length()), R, B), dtype=np.uint64)
    cols = np.arange(B)  # mazes still being searched; compacted when most have finished
    unseen = unseen_out ^ frontier
    planes = planes_out.copy()
    nxt, tmp = np.empty_like(frontier), np.empty_like(frontier)
    one, d = np.uint64(1), 0
    while len(cols):
        d += 1
        np.bitwise_and(frontier, right_w, out=nxt)
        nxt <<= one
        np.right_shift(frontier, one, out=tmp)
        tmp &= right_w
        nxt |= tmp
        np.bitwise_and(frontier[:-1], down_w[:-1], out=tmp[:-1])
        nxt[1:] |= tmp[:-1]
        np.bitwise_and(frontier[1:], down_w[:-1], out=tmp[:-1])
        nxt[:-1] |= tmp[:-1]
        nxt &= unseen
        unseen ^= nxt
        for k in range(len(planes)):
            if d >> k & 1:
                planes[k] |= nxt
        frontier, nxt = nxt, frontier
        if d % 4 == 0 or R * C <= 16:
            live = frontier.any(axis=0)
            if live.sum() < 0.75 * len(cols):
                unseen_out[:, cols], planes_out[:, :, cols] = unseen, planes
                cols, frontier, unseen, planes = cols[live], frontier[:, live], unseen[:, live], planes[:, :, live]
                right_w, down_w = right_w[:, live], down_w[:, live]
                nxt, tmp = np.empty_like(frontier), np.empty_like(frontier)
    dist = np.zeros((B, R, C), dtype=np.int32)
    for k in range(len(planes_out)):
        if planes_out[k].any():
            dist |= _unpack_bits(planes_out[k].T, C).astype(np.int32) << k
    dist[_unpack_bits(unseen_out.T, C)] = -1
    return dist.reshape(B, R * C)


def _unpack_bits(words: np.ndarray, C: int) -> np.ndarray:
    """(..., R) uint64 bitmasks -> (..., R, C) bool."""
    as_bytes = np.ascontiguousarray(words).astype("<u8").view(np.uint8).reshape(words.shape + (8,))
    return np.unpackbits(as_bytes, axis=-1, bitorder="little")[..., :C].astype(bool)


def _bfs_distance_dense(conn: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """The plain bool-array version of `bfs_distance` (any grid width)."""
    B, _, R, C = conn.shape
    down = conn[:, 0].copy()
    right = conn[:, 1].copy()
    down[:, -1, :] = False
    right[:, :, -1] = False
    dist = np.full((B, R, C), -1, dtype=np.int32)
    frontier = np.zeros((B, R, C), dtype=bool)
    frontier.reshape(B, -1)[np.arange(B), np.asarray(sources)] = True
    d = 0
    while frontier.any():
        dist[frontier] = d
        nxt = np.zeros_like(frontier)
        nxt[:, 1:, :] |= frontier[:, :-1, :] & down[:, :-1, :]
        nxt[:, :-1, :] |= frontier[:, 1:, :] & down[:, :-1, :]
        nxt[:, :, 1:] |= frontier[:, :, :-1] & right[:, :, :-1]
        nxt[:, :, :-1] |= frontier[:, :, 1:] & right[:, :, :-1]
        frontier = nxt & (dist < 0)
        d += 1
    return dist.reshape(B, R * C)


def _edge_list(connections: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(b, u, v): every open passage of the batch as cell ids u < v of maze b."""
    conn = np.asarray(connections, dtype=bool).copy()
    B, _, R, C = conn.shape
    conn[:, 0, -1, :] = False
    conn[:, 1, :, -1] = False
    b, d, r, c = np.nonzero(conn)
    u = r * C + c
    return b, u, u + np.where(d == 0, C, 1)


def _path_ids(batch: MazeBatch) -> tuple[np.ndarray, np.ndarray]:
    path = np.asarray(batch.path, dtype=np.int64)
    L = path.shape[1]
    mask = np.arange(L)[None, :] < np.asarray(batch.path_len)[:, None]
    ids = np.where(mask, path[..., 0] * batch.n_cols + path[..., 1], -1).astype(np.int32)
    return ids, mask


def _bottlenecks(batch: MazeBatch, path_ids: np.ndarray, step_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bottleneck (B, N) bool, branch_from (B, N) int32, reachable from the path (B, N) bool).

    A path cell p_i is bypassed iff some route leaves the path before step i and rejoins it after:
    a component of the maze minus the path that touches steps j < i and k > i, or a chord
    (p_j, p_k) with j < i < k. Path cells that are not bypassed are exactly the cells whose removal
    disconnects origin from target.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    B, R, C, L = len(batch), batch.n_rows, batch.n_cols, path_ids.shape[1]
    N = R * C
    BN = B * N
    step_of = np.full(BN, -1, dtype=np.int32)  # path step of each cell of the batch, -1 off the path
    rows, steps = np.nonzero(step_mask)
    step_of[rows * N + path_ids[rows, steps]] = steps
    on = step_of >= 0
    sides = open_sides(batch.connections).reshape(BN, 4)
    node = np.arange(BN, dtype=np.int32)
    # neighbour of every cell down / right (itself where the passage is closed), as flat batch ids
    down_nb = np.where(sides[:, 1], node + C, node)
    right_nb = np.where(sides[:, 3], node + 1, node)
    # the maze minus the path: two CSR slots per cell (down, right); closed or path-touching slots are self-loops
    indices = np.stack([np.where(on | on[down_nb], node, down_nb), np.where(on | on[right_nb], node, right_nb)], axis=1)
    graph = csr_matrix((np.ones(2 * BN, dtype=np.int8), indices.ravel(), np.arange(0, 2 * BN + 1, 2, dtype=np.int32)),
                       shape=(BN, BN))
    n_comp, comp = connected_components(graph, directed=True, connection="weak")
    # lowest and highest path step each component touches
    nbrs = (node - C, down_nb, node - 1, right_nb)  # up, down, left, right
    lo = np.full(n_comp, np.iinfo(np.int32).max, dtype=np.int32)
    hi = np.full(n_comp, -1, dtype=np.int32)
    chord_lo, chord_hi, chord_node = [], [], []
    for k, nb in enumerate(nbrs):
        open_k = sides[:, k] & on
        nb_k = np.where(open_k, nb, node)
        touch = open_k & ~on[nb_k]
        np.minimum.at(lo, comp[nb_k[touch]], step_of[touch])
        np.maximum.at(hi, comp[nb_k[touch]], step_of[touch])
        if k in (1, 3):  # each path-to-path passage once
            pair = open_k & on[nb_k]
            gap = np.abs(step_of[nb_k] - step_of) > 1
            chord = pair & gap
            chord_lo.append(np.minimum(step_of, step_of[nb_k])[chord])
            chord_hi.append(np.maximum(step_of, step_of[nb_k])[chord])
            chord_node.append(node[chord])
    # bypass intervals (lo, hi), exclusive: from components and from chords
    comp_ids = np.nonzero(hi.astype(np.int64) - lo > 1)[0]
    member = np.empty(n_comp, dtype=np.int32)
    member[comp] = node  # any member will do: a component never spans two mazes
    iv_row = np.concatenate([member[comp_ids] // N] + [c // N for c in chord_node])
    iv_lo = np.concatenate([lo[comp_ids]] + chord_lo)
    iv_hi = np.concatenate([hi[comp_ids]] + chord_hi)
    diff = np.zeros((B, L + 1), dtype=np.int32)
    np.add.at(diff, (iv_row, iv_lo + 1), 1)
    np.add.at(diff, (iv_row, iv_hi), -1)
    bypassed = np.cumsum(diff, axis=1)[:, :L] > 0
    bottleneck = np.zeros((B, N), dtype=bool)
    rows, steps = np.nonzero(step_mask & ~bypassed)
    bottleneck[rows, path_ids[rows, steps]] = True
    cell_lo = lo[comp]
    attached = cell_lo < np.iinfo(np.int32).max  # the cell's component touches the path: reachable
    branch_from = np.where(~on & attached, cell_lo, -1).astype(np.int32).reshape(B, N)
    return bottleneck, branch_from, (attached | on).reshape(B, N)


def _expansions(traces: Sequence[Trace], target: np.ndarray, N: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    B = len(target)
    order = np.full((B, N), -1, dtype=np.int32)
    for b, trace in enumerate(traces):
        closed = trace.nodes(Event.CLOSE)
        hit = np.nonzero(closed == target[b])[0]
        closed = closed[: hit[0]] if len(hit) else closed
        if len(closed) and (closed.min() < 0 or closed.max() >= N):
            raise InputError(f"trace {name!r} of maze {b} closes node {int(closed[(closed < 0) | (closed >= N)][0])}; allowed: cell ids 0..{N - 1}")
        cells, first = np.unique(closed, return_index=True)
        order[b, cells] = first  # closing order, re-expansions keep their first position
    # turn event positions into ranks 0, 1, 2, … among the distinct expanded cells
    valid = order >= 0
    sort_key = np.where(valid, order, np.iinfo(np.int32).max)
    rank = np.argsort(np.argsort(sort_key, axis=1, kind="stable"), axis=1, kind="stable").astype(np.int32)
    ranks = np.where(valid, rank, -1).astype(np.int32)
    return valid, ranks


#: Label keys computed without traces, in table order (`maze_labels(keys=…)` picks a subset).
LABEL_KEYS: tuple[str, ...] = (
    "origin_cell", "target_cell", "path_cell", "step_mask", "on_path", "next_cell", "cell_ahead", "walls",
    "walls_current", "dead_end", "bottleneck", "off_path", "branch_from", "connectivity", "dist_to_target",
)


def maze_labels(
    batch: MazeBatch,
    traces: Mapping[str, Sequence[Trace]] | None = None,
    k_ahead: int = 4,
    keys: Collection[str] | None = None,
) -> dict[str, np.ndarray]:
    """The probe labels of the module docstring's table for the mazes of `batch`.

    `keys` restricts the trace-free labels to a subset of `LABEL_KEYS` (the costly ones are
    ``bottleneck`` / ``off_path`` / ``branch_from``, one graph pass, and ``dist_to_target``, one
    BFS); the ``*_<name>`` trace labels are made for every entry of `traces`.
    """
    if isinstance(k_ahead, bool) or not isinstance(k_ahead, (int, np.integer)) or k_ahead < 1:
        raise InputError(f"k_ahead={k_ahead!r} for maze_labels; allowed: an int >= 1")
    wanted = LABEL_KEYS if keys is None else tuple(keys)
    unknown = [k for k in wanted if k not in LABEL_KEYS]
    if unknown:
        raise InputError(f"unknown maze label key {unknown[0]!r}; allowed: {', '.join(LABEL_KEYS)}")
    B, R, C = len(batch), batch.n_rows, batch.n_cols
    N = R * C
    origin = np.asarray(batch.origin, dtype=np.int64)
    target = np.asarray(batch.target, dtype=np.int64)
    target_id = (target[:, 0] * C + target[:, 1]).astype(np.int32)
    path_ids, step_mask = _path_ids(batch)
    L = path_ids.shape[1]
    labels: dict[str, np.ndarray] = {}
    for key in wanted:
        if key in labels:
            continue
        if key == "origin_cell":
            labels[key] = (origin[:, 0] * C + origin[:, 1]).astype(np.int32)
        elif key == "target_cell":
            labels[key] = target_id
        elif key == "path_cell":
            labels[key] = path_ids
        elif key == "step_mask":
            labels[key] = step_mask
        elif key == "on_path":
            labels[key] = _on_path(path_ids, step_mask, N)
        elif key in ("next_cell", "cell_ahead"):
            padded = np.concatenate([path_ids, np.full((B, k_ahead), -1, dtype=np.int32)], axis=1)
            ahead = np.stack([padded[:, k:k + L] for k in range(1, k_ahead + 1)], axis=-1)
            labels["next_cell"], labels["cell_ahead"] = ahead[..., 0].copy(), ahead
        elif key in ("walls", "walls_current", "dead_end"):
            sides = open_sides(batch.connections).reshape(B, N, 4)
            labels["walls"] = walls = ~sides
            labels["walls_current"] = np.where(step_mask[..., None], walls[np.arange(B)[:, None], np.maximum(path_ids, 0)], False)
            labels["dead_end"] = sides.sum(axis=-1) == 1
        elif key in ("bottleneck", "off_path", "branch_from"):
            labels["bottleneck"], labels["branch_from"], reachable = _bottlenecks(batch, path_ids, step_mask)
            labels["off_path"] = reachable & ~_on_path(path_ids, step_mask, N)
        elif key == "connectivity":
            labels[key] = np.asarray(batch.connections, dtype=bool).reshape(B, 2 * N).copy()
        elif key == "dist_to_target":
            labels[key] = bfs_distance(batch.connections, target_id)
    labels = {k: labels[k] for k in wanted}
    for name, per_maze in (traces or {}).items():
        if len(per_maze) != B:
            raise InputError(f"traces[{name!r}] has {len(per_maze)} traces for {B} mazes; allowed: exactly one per maze")
        labels[f"expanded_{name}"], labels[f"expand_order_{name}"] = _expansions(per_maze, target_id, N, name)
    return labels


def _on_path(path_ids: np.ndarray, step_mask: np.ndarray, N: int) -> np.ndarray:
    on_path = np.zeros((len(path_ids), N), dtype=bool)
    rows, steps = np.nonzero(step_mask)
    on_path[rows, path_ids[rows, steps]] = True
    return on_path
