"""Batched, vectorized maze generators, seeded per maze.

Every generator advances all B mazes of a batch in lock-step with numpy (no per-maze Python
loop). Randomness is counter-based: draw t of maze i is ``mix64(key_i ^ mix64(stream, t))`` where
``key_i = maze_keys(seed, i)``, so maze i depends only on (seed, i) — never on the batch size,
the worker count or the shard split — and `MazeBatch.seed` (the key) regenerates it exactly.

Generators (connectivity in maze-dataset's ``connection_list`` convention, see `types`):

* ``dfs`` — randomized depth-first search from a random cell: a perfect maze (spanning tree) with
  long corridors. Every maze takes exactly 2·V − 3 lock-step steps, so no lane idles.
* ``hallway`` — forkless DFS (maze-dataset ``do_forks=False``): a self-avoiding random walk from a
  random cell until it is stuck; one corridor, the other cells stay isolated.
* ``prim`` — maze-dataset's ``gen_prim`` (growing tree choosing a uniformly random active cell):
  a perfect maze with many short dead ends.
* ``kruskal`` — randomized Kruskal, i.e. the minimum spanning tree of i.i.d. random edge weights,
  computed for the whole batch at once with Borůvka rounds.
* ``wilson`` — Wilson's loop-erased random walks: a *uniform* spanning tree.
* ``percolation`` — each lattice edge open with probability p (may be disconnected, has loops).
* ``dfs_percolation`` — a DFS maze with percolation edges added: connected, with loops.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

from searchprobe.errors import InputError
from searchprobe.tasks.store import mix64

__all__ = ["Lattice", "lattice", "maze_keys", "draw", "uniform01", "generate_connections", "GENERATOR_FUNCTIONS"]

# Random streams: each use of randomness has its own, so adding one never shifts another.
STREAM_START, STREAM_STEP, STREAM_PICK, STREAM_WEIGHT, STREAM_PERCOLATE = 1, 2, 3, 4, 5
STREAM_ORIGIN, STREAM_TARGET = 16, 17
_U64 = np.uint64


def maze_keys(seed: int, indices: np.ndarray, attempt: np.ndarray | int = 0) -> np.ndarray:
    """The per-maze key of maze `indices` of dataset `seed` (attempt > 0: regenerated after a
    failed endpoint placement). The key is all the randomness a maze has."""
    idx = np.asarray(indices, dtype=np.uint64)
    att = np.asarray(attempt, dtype=np.uint64)
    base = mix64(np.uint64(seed) ^ _U64(0x6A09E667F3BCC909))
    return mix64(mix64(base ^ mix64(idx)) ^ (att * _U64(0x9E3779B97F4A7C15)))


def _counter(stream: int, t: np.ndarray | int) -> np.ndarray:
    return mix64((np.uint64(stream) << _U64(40)) + np.asarray(t, dtype=np.uint64))


def draw(keys: np.ndarray, stream: int, t: np.ndarray | int) -> np.ndarray:
    """Random uint64 per key for counter `t` of `stream` (broadcasts keys against t)."""
    return mix64(keys ^ _counter(stream, t))


def uniform01(bits: np.ndarray) -> np.ndarray:
    """Map uint64 random bits to floats uniform in [0, 1)."""
    return (bits >> _U64(11)).astype(np.float64) * 2.0**-53


def _below(bits: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Uniform integers in [0, n) from random bits (n ≥ 1; bias < n / 2**53)."""
    return (uniform01(bits) * n).astype(np.intp)


@dataclass(frozen=True)
class Lattice:
    """Index tables of an R×C grid: cell id = r*C + c; moves in id order up, left, right, down.

    nbr[v, k] is the neighbour of v in direction k (or -1); edge[v, k] the flat index of that
    passage in a (2, R, C) connection array, ``2·V`` (a scratch slot) where there is none.
    """

    rows: int
    cols: int
    nbr: np.ndarray  #: (V, 4) intp
    edge: np.ndarray  #: (V, 4) intp
    degree: np.ndarray  #: (V,) number of lattice neighbours
    packed_nbr: np.ndarray  #: (V, 4) the existing neighbours first
    packed_edge: np.ndarray  #: (V, 4) their passages
    edge_u: np.ndarray  #: (E,) lower cell of each lattice edge
    edge_v: np.ndarray  #: (E,) upper cell
    edge_flat: np.ndarray  #: (E,) flat index into (2, R, C)

    @property
    def n_cells(self) -> int:
        return self.rows * self.cols


@lru_cache(maxsize=64)
def lattice(rows: int, cols: int) -> Lattice:
    """The (cached) index tables of a rows×cols grid."""
    if rows < 1 or cols < 1:
        raise InputError(f"grid {rows}x{cols} must have at least one row and one column")
    V = rows * cols
    r, c = np.divmod(np.arange(V), cols)
    nbr = np.full((V, 4), -1, dtype=np.intp)
    edge = np.full((V, 4), 2 * V, dtype=np.intp)
    up, left, right, down = r > 0, c > 0, c < cols - 1, r < rows - 1
    ids = np.arange(V)
    nbr[up, 0], edge[up, 0] = ids[up] - cols, (ids - cols)[up]  # passage stored at the upper cell, plane 0
    nbr[left, 1], edge[left, 1] = ids[left] - 1, V + (ids - 1)[left]  # plane 1 at the left cell
    nbr[right, 2], edge[right, 2] = ids[right] + 1, V + ids[right]
    nbr[down, 3], edge[down, 3] = ids[down] + cols, ids[down]
    valid = nbr >= 0
    order = np.argsort(~valid, axis=1, kind="stable")
    packed_nbr = np.take_along_axis(nbr, order, 1)
    packed_edge = np.take_along_axis(edge, order, 1)
    eu = np.concatenate([ids[down], ids[right]])
    ev = np.concatenate([ids[down] + cols, ids[right] + 1])
    ef = np.concatenate([ids[down], V + ids[right]])
    o = np.argsort(ef, kind="stable")
    return Lattice(rows, cols, nbr, edge, valid.sum(1), packed_nbr, packed_edge, eu[o], ev[o], ef[o])


def _to_connections(flat: np.ndarray, lat: Lattice) -> np.ndarray:
    """(B, 2V+1) scratch-slotted flat passages -> (B, 2, R, C) bool."""
    V = lat.n_cells
    return np.ascontiguousarray(flat[:, : 2 * V]).reshape(len(flat), 2, lat.rows, lat.cols)


def _free_slot_table() -> np.ndarray:
    """slot = TABLE[mask * 12 + r] for a 4-bit mask of free directions and r uniform in 0..11:
    the (r mod popcount)-th set bit, exactly uniform because 1, 2, 3 and 4 all divide 12."""
    table = np.zeros(16 * 12, dtype=np.intp)
    for mask in range(1, 16):
        bits = [k for k in range(4) if mask >> k & 1]
        for r in range(12):
            table[mask * 12 + r] = bits[r % len(bits)]
    return table


_SLOT_TABLE = _free_slot_table()


class _Carver:
    """Lock-step state for the tree-growing generators: visited cells and carved passages of B
    mazes in flat arrays (1-D gathers are much faster than 2-D fancy indexing), and one
    uniform r in 0..11 per maze and step, drawn 2 steps per 64-bit hash."""

    def __init__(self, keys: np.ndarray, lat: Lattice, n_steps: int):
        B, V = len(keys), lat.n_cells
        self.lat, self.B, self.V = lat, B, V
        self.base = np.arange(B, dtype=np.intp) * (V + 1)  # visited rows carry a sentinel column V
        self.visited = np.zeros(B * (V + 1), dtype=bool)
        self.visited[self.base + V] = True
        self.flat = np.zeros((B, 2 * V + 1), dtype=bool)
        self.flat_base = np.arange(B, dtype=np.intp) * (2 * V + 1)
        self.nbr_sentinel = [np.where(lat.nbr[:, k] >= 0, lat.nbr[:, k], V) for k in range(4)]
        self.nbr_flat = lat.nbr.ravel()
        self.edge_flat = lat.edge.ravel()
        words = draw(keys[None, :], STREAM_STEP, np.arange((n_steps + 1) // 2)[:, None])  # (T/2, B)
        halves = np.stack([words & _U64(0xFFFFFFFF), words >> _U64(32)], axis=1).reshape(-1, B)[:n_steps]
        self.r12 = ((halves * _U64(12)) >> _U64(32)).astype(np.intp)  # (n_steps, B), uniform 0..11

    def visit(self, cells: np.ndarray) -> None:
        self.visited[self.base + cells] = True

    def step(self, t: int, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Carve from each maze's `cur` to a uniformly random unvisited neighbour, if it has one.

        Returns (has, cell): has[b] False when cur is stuck (then cell[b] = cur[b]).
        """
        mask = np.zeros(self.B, dtype=np.intp)
        for k in range(4):
            free = ~self.visited[self.base + self.nbr_sentinel[k][cur]]
            mask |= free.astype(np.intp) << k
        has = mask > 0
        slot = _SLOT_TABLE[mask * 12 + self.r12[t]]
        at = cur * 4 + slot
        nxt = np.where(has, self.nbr_flat[at], cur)
        passage = np.where(has, self.edge_flat[at], 2 * self.V)
        self.flat.ravel()[self.flat_base + passage] = True
        self.visited[self.base + nxt] = True
        return has, nxt

    def connections(self) -> np.ndarray:
        return _to_connections(self.flat, self.lat)


def gen_dfs(keys: np.ndarray, lat: Lattice) -> np.ndarray:
    """Randomized DFS (recursive backtracker) from a random cell; B parallel stacks."""
    B, V = len(keys), lat.n_cells
    # V-1 carves and at most V-2 pops before the last carve: 2V-3 steps finish every maze.
    n_steps = max(2 * V - 3, 1)
    carver = _Carver(keys, lat, n_steps)
    stack = np.zeros(B * V, dtype=np.intp)
    row = np.arange(B, dtype=np.intp) * V
    sp = np.zeros(B, dtype=np.intp)
    start = _below(draw(keys, STREAM_START, 0), V)
    stack[row] = start
    carver.visit(start)
    top = start
    for t in range(n_steps):
        has, nxt = carver.step(t, top)
        sp += has
        stack[row + sp] = nxt  # a stuck maze rewrites its top with itself
        sp -= ~has
        top = stack[row + sp]
    return carver.connections()


def gen_hallway(keys: np.ndarray, lat: Lattice) -> np.ndarray:
    """Forkless DFS: a random self-avoiding walk from a random cell until it is stuck."""
    V = lat.n_cells
    carver = _Carver(keys, lat, max(V - 1, 1))
    cur = _below(draw(keys, STREAM_START, 0), V)
    carver.visit(cur)
    for t in range(V - 1):
        has, cur = carver.step(t, cur)
        if not has.any():
            break
    return carver.connections()


def gen_prim(keys: np.ndarray, lat: Lattice) -> np.ndarray:
    """Growing tree with a uniformly random active cell (maze-dataset's ``gen_prim``)."""
    B, V = len(keys), lat.n_cells
    n_steps = max(2 * V - 3, 1)
    carver = _Carver(keys, lat, n_steps)
    row = np.arange(B, dtype=np.intp) * V
    active = np.zeros(B * V, dtype=np.intp)
    size = np.ones(B, dtype=np.intp)
    start = _below(draw(keys, STREAM_START, 0), V)
    active[row] = start
    carver.visit(start)
    picks = uniform01(draw(keys[None, :], STREAM_PICK, np.arange(n_steps)[:, None]))
    for t in range(n_steps):
        slot = (picks[t] * size).astype(np.intp)
        cur = active[row + slot]
        has, nxt = carver.step(t, cur)
        # carve: append the new cell; stuck: swap-remove the chosen slot
        last = active[row + size - 1]
        active[row + np.where(has, size, slot)] = np.where(has, nxt, last)
        size += np.where(has, 1, -1)
    return carver.connections()


def gen_kruskal(keys: np.ndarray, lat: Lattice) -> np.ndarray:
    """Randomized Kruskal = MST of i.i.d. random edge weights, by batched Borůvka rounds."""
    B, V = len(keys), lat.n_cells
    E = len(lat.edge_u)
    # distinct weights per maze: random high bits, edge index in the low 16 bits (E < 2**16)
    w = (draw(keys[:, None], STREAM_WEIGHT, np.arange(E)[None, :]) & _U64(~0xFFFF & 0xFFFFFFFFFFFFFFFF)) | np.arange(E, dtype=np.uint64)
    comp = np.arange(B * V, dtype=np.intp).reshape(B, V)  # global component labels
    tree = np.zeros((B, E), dtype=bool)
    labels = np.arange(B * V, dtype=np.intp)
    never = np.iinfo(np.uint64).max
    while True:
        cu, cv = comp[:, lat.edge_u], comp[:, lat.edge_v]
        crossing = cu != cv
        if not crossing.any():
            break
        wm = np.where(crossing, w, never)
        best = np.full(B * V, never, dtype=np.uint64)
        np.minimum.at(best, cu.ravel(), wm.ravel())
        np.minimum.at(best, cv.ravel(), wm.ravel())
        from_u = crossing & (wm == best[cu])
        from_v = crossing & (wm == best[cv])
        tree |= from_u | from_v
        parent = labels.copy()
        parent[cu[from_u]] = cv[from_u]
        parent[cv[from_v]] = cu[from_v]
        mutual = (parent[parent] == labels) & (labels < parent)  # two components chose each other
        parent[mutual] = labels[mutual]
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
        comp = parent[comp]
    flat = np.zeros((B, 2 * V + 1), dtype=bool)
    flat[:, lat.edge_flat] = tree
    return _to_connections(flat, lat)


def gen_wilson(keys: np.ndarray, lat: Lattice) -> np.ndarray:
    """Wilson's algorithm (uniform spanning tree): loop-erased random walks, B in lock-step.

    Each maze walks from the lowest-id cell not yet in the tree, remembering only the last exit
    from every cell (that is the loop erasure), until it hits the tree; it then retraces the
    remembered exits, adding them to the tree. Finished mazes drop out of the active set.
    """
    B, V = len(keys), lat.n_cells
    in_tree = np.zeros((B, V), dtype=bool)
    exit_slot = np.zeros((B, V), dtype=np.intp)
    flat = np.zeros((B, 2 * V + 1), dtype=bool)
    root = _below(draw(keys, STREAM_START, 0), V)
    in_tree[np.arange(B), root] = True
    scan = np.zeros(B, dtype=np.intp)  # next candidate start cell (all below it are in the tree)
    act = np.arange(B)

    def next_start(idx: np.ndarray) -> np.ndarray:
        s = scan[idx]
        while True:
            busy = (s < V) & in_tree[idx, np.minimum(s, V - 1)]
            if not busy.any():
                break
            s = s + busy
        scan[idx] = s
        return s

    start = next_start(act)
    cur = start.copy()
    walking = np.ones(B, dtype=bool)
    t = 0
    while len(act):
        bits = draw(keys[act], STREAM_STEP, t)
        t += 1
        w = walking
        # walkers: one random step, remembering the exit
        k = _below(bits, lat.degree[cur])
        nxt_walk = lat.packed_nbr[cur, k]
        exit_slot[act[w], cur[w]] = k[w]
        # retracers: add cur to the tree along its remembered exit
        ks = exit_slot[act, cur]
        nxt_retrace = lat.packed_nbr[cur, ks]
        r = ~w
        in_tree[act[r], cur[r]] = True
        flat[act[r], lat.packed_edge[cur[r], ks[r]]] = True
        cur = np.where(w, nxt_walk, nxt_retrace)
        hit = in_tree[act, cur]
        # a walker that hit the tree retraces from its start; a retracer that hit it starts anew
        begin_retrace = w & hit
        walk_done = r & hit
        cur = np.where(begin_retrace, start, cur)
        walking = np.where(begin_retrace, False, walking)
        if walk_done.any():
            idx = np.flatnonzero(walk_done)
            s = next_start(act[idx])
            start[idx] = s
            cur[idx] = np.minimum(s, V - 1)
            walking[idx] = True
            done = np.zeros(len(act), dtype=bool)
            done[idx] = s >= V
            if done.any():
                keep = ~done
                act, cur, start, walking = act[keep], cur[keep], start[keep], walking[keep]
    return _to_connections(flat, lat)


def _percolation_flat(keys: np.ndarray, lat: Lattice, p: float) -> np.ndarray:
    V = lat.n_cells
    bits = draw(keys[:, None], STREAM_PERCOLATE, lat.edge_flat[None, :])
    flat = np.zeros((len(keys), 2 * V + 1), dtype=bool)
    flat[:, lat.edge_flat] = uniform01(bits) < p
    return flat


def gen_percolation(keys: np.ndarray, lat: Lattice, p: float = 0.4) -> np.ndarray:
    """Each lattice edge open independently with probability p."""
    return _to_connections(_percolation_flat(keys, lat, p), lat)


def gen_dfs_percolation(keys: np.ndarray, lat: Lattice, p: float = 0.4) -> np.ndarray:
    """A DFS maze plus percolation edges (probability p): connected, with loops."""
    return gen_dfs(keys, lat) | gen_percolation(keys, lat, p)


GENERATOR_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "dfs": gen_dfs,
    "hallway": gen_hallway,
    "wilson": gen_wilson,
    "kruskal": gen_kruskal,
    "prim": gen_prim,
    "percolation": gen_percolation,
    "dfs_percolation": gen_dfs_percolation,
}


def generate_connections(generator: str, keys: np.ndarray, rows: int, cols: int, p: float = 0.3) -> np.ndarray:
    """Connections (B, 2, rows, cols) bool of the mazes with the given per-maze keys."""
    fn = GENERATOR_FUNCTIONS.get(generator)
    if fn is None:
        raise InputError(f"generator {generator!r} is unknown; allowed: {', '.join(GENERATOR_FUNCTIONS)}")
    keys = np.asarray(keys, dtype=np.uint64)
    lat = lattice(rows, cols)
    if len(keys) == 0:
        return np.zeros((0, 2, rows, cols), dtype=bool)
    if generator in ("percolation", "dfs_percolation"):
        return fn(keys, lat, p)
    return fn(keys, lat)
