"""Batched shortest paths on mazes: BFS layers as row bitmasks, walk-back, shortest-path counts.

A grid row of a maze is one integer bitmask (bit c = column c; grids are at most 32 wide), so
one BFS step for B mazes is a handful of shifts and ANDs on a (B, R) array. The distance
layers from the origin give everything else:

* the path, walked back from the target through the previous layer, choosing the lowest cell id
  (up, left, right, down) among predecessors — deterministic when there are several routes;
* the number of shortest paths, by dynamic programming layer by layer (1 in perfect mazes).
"""

from __future__ import annotations

import numpy as np

__all__ = ["pack_passages", "bfs_layers", "layer_of", "distances", "shortest_paths", "unpack_rows"]


def pack_passages(connections: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(down, right) int64 (B, R) bitmasks: bit c of down[b, r] = passage (r,c)-(r+1,c)."""
    C = connections.shape[-1]
    weights = np.int64(1) << np.arange(C, dtype=np.int64)
    down = connections[:, 0].astype(np.int64) @ weights
    right = connections[:, 1].astype(np.int64) @ weights
    return down, right


def unpack_rows(masks: np.ndarray, cols: int) -> np.ndarray:
    """(…, R) bitmasks -> (…, R, cols) bool."""
    return ((masks[..., None] >> np.arange(cols, dtype=np.int64)) & 1).astype(bool)


_ONE = np.uint32(1)


def _rows_major(connections: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(down, right) uint32 (R, B) bitmasks: rows first, so row shifts touch contiguous memory."""
    down, right = pack_passages(connections)
    return np.ascontiguousarray(down.T).astype(np.uint32), np.ascontiguousarray(right.T).astype(np.uint32)


def _bfs_rows(down: np.ndarray, right: np.ndarray, source: np.ndarray, cols: int, until: np.ndarray | None = None,
              max_depth: int | None = None) -> np.ndarray:
    """BFS layers uint32 (K, R, B) from `source` cell ids over (R, B) passage bitmasks.

    With `until`, mazes that have reached their cell drop out of the work every few steps (their
    later layers stay empty), so the cost follows the mean distance, not the batch maximum.
    """
    R, B = down.shape
    sr, sc = np.divmod(np.asarray(source, dtype=np.intp), cols)
    frontier = np.zeros((R, B), dtype=np.uint32)
    frontier[sr, np.arange(B)] = _ONE << sc.astype(np.uint32)
    visited = frontier.copy()
    layers = [frontier]
    act = None  # None: all mazes active, else the active maze indices
    d_act, r_act = down, right
    if until is not None:
        ur, uc = np.divmod(np.asarray(until, dtype=np.intp), cols)
        ubit = _ONE << uc.astype(np.uint32)
    limit = R * cols if max_depth is None else max_depth
    for step in range(limit):
        if until is not None and step % 4 == 0:
            n_act = visited.shape[1]
            reached = (visited[ur, np.arange(n_act)] & ubit) != 0
            if reached.all():
                break
            if reached.mean() > 0.2:
                keep = ~reached
                idx = np.flatnonzero(keep)
                act = idx if act is None else act[idx]
                frontier, visited = frontier[:, idx], visited[:, idx]
                d_act, r_act, ur, ubit = d_act[:, idx], r_act[:, idx], ur[idx], ubit[idx]
        nxt = ((frontier & r_act) << _ONE) | ((frontier >> _ONE) & r_act)
        nxt[1:] |= frontier[:-1] & d_act[:-1]
        nxt[:-1] |= frontier[1:] & d_act[:-1]
        frontier = nxt & ~visited
        if not frontier.any():
            break
        visited |= frontier
        if act is None:
            layers.append(frontier)
        else:
            full = np.zeros((R, B), dtype=np.uint32)
            full[:, act] = frontier
            layers.append(full)
    return np.stack(layers)


def bfs_layers(connections: np.ndarray, source: np.ndarray, until: np.ndarray | None = None,
               max_depth: int | None = None) -> np.ndarray:
    """BFS distance layers from `source` cell ids: int64 (K, B, R); layers[k] = cells at distance k.

    Stops when every maze's frontier is empty, or (with `until`, cell ids) once every maze has
    reached its `until` cell (later layers may then be incomplete), or after `max_depth` steps.
    """
    down, right = _rows_major(connections)
    layers = _bfs_rows(down, right, source, connections.shape[-1], until, max_depth)
    return layers.transpose(0, 2, 1).astype(np.int64)


def layer_of(layers: np.ndarray, cells: np.ndarray, cols: int) -> np.ndarray:
    """Distance (layer index) of each maze's cell in (K, B, R) layers, -1 where unreachable."""
    return _layer_of_rows(layers.transpose(0, 2, 1), cells, cols)


def _layer_of_rows(layers: np.ndarray, cells: np.ndarray, cols: int) -> np.ndarray:
    B = layers.shape[2]
    r, c = np.divmod(np.asarray(cells, dtype=np.intp), cols)
    hit = (layers[:, r, np.arange(B)] >> c.astype(layers.dtype)) & 1  # (K, B)
    found = hit.any(0)
    return np.where(found, hit.argmax(0), -1)


def distances(connections: np.ndarray, source: np.ndarray) -> np.ndarray:
    """BFS distance int32 (B, R, C) from each maze's `source` cell; -1 where unreachable."""
    layers = bfs_layers(connections, source)
    K, B, R = layers.shape
    C = connections.shape[-1]
    dense = unpack_rows(layers, C)  # (K, B, R, C)
    k = np.arange(K, dtype=np.int32)[:, None, None, None]
    return np.where(dense.any(0), (dense * (k + 1)).max(0) - 1, -1).astype(np.int32)


def shortest_paths(connections: np.ndarray, origin: np.ndarray, target: np.ndarray, *, perfect: bool = False
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shortest origin→target paths of B mazes (cell ids; every target must be reachable).

    Returns (path int16 (B, L, 2) padded with -1, path_len int32 (B,) in cells, n_shortest int64
    (B,)). Among several shortest paths the walk back from the target takes the lowest-id
    predecessor. With ``perfect=True`` (mazes without loops: spanning trees, hallways) the count
    is known to be 1 and its DP is skipped.
    """
    B, _, R, C = connections.shape
    origin = np.asarray(origin, dtype=np.intp)
    target = np.asarray(target, dtype=np.intp)
    down, right = _rows_major(connections)
    layers = _bfs_rows(down, right, origin, C, until=target)
    dist = _layer_of_rows(layers, target, C)
    if (dist < 0).any():
        b = int(np.flatnonzero(dist < 0)[0])
        raise ValueError(f"maze {b}: target {divmod(int(target[b]), C)} is not reachable from origin {divmod(int(origin[b]), C)}")
    path = _walk_back(layers, down, right, target, dist, C)
    if perfect:
        n_shortest = np.ones(B, dtype=np.int64)
    else:
        n_shortest = _count_shortest(layers.transpose(0, 2, 1).astype(np.int64), connections, target, dist)
    return path, (dist + 1).astype(np.int32), n_shortest


def _walk_back(layers: np.ndarray, down: np.ndarray, right: np.ndarray, target: np.ndarray, dist: np.ndarray,
               C: int) -> np.ndarray:
    """Walk from each target to its origin through the previous BFS layer, lowest-id predecessor first.

    Mazes are sorted by distance (longest first) so the ones still walking at step j are a
    prefix: each step works on views of that prefix, never on finished mazes.
    """
    K, R, B = layers.shape
    order = np.argsort(-dist, kind="stable")
    dist_s = dist[order]
    r, c = np.divmod(target[order].astype(np.intp), C)
    L = int(dist.max()) + 1 if B else 1
    path = np.full((B, L, 2), -1, dtype=np.int16)
    path[order, dist_s, 0], path[order, dist_s, 1] = r, c
    flat_layers = layers.reshape(-1)
    flat_down, flat_right = down.reshape(-1), right.reshape(-1)
    n_alive = np.searchsorted(-dist_s, -np.arange(L), side="right")  # mazes with dist >= j
    for j in range(1, L):
        n = int(n_alive[j])
        b = order[:n]
        k = dist_s[:n] - j  # layer (and path position) of the predecessor
        rr, cc = r[:n], c[:n]
        cu = cc.astype(np.uint32)
        here = (k * R + rr) * B + b
        row_here = flat_layers[here]
        up_ok = rr > 0
        row_up = flat_layers[np.where(up_ok, here - B, here)]
        d_up = flat_down[np.where(up_ok, (rr - 1) * B + b, b)]
        rt = flat_right[rr * B + b]
        cl = np.where(cc > 0, cu - _ONE, 0).astype(np.uint32)
        go_up = up_ok & (((d_up & row_up) >> cu) & _ONE).astype(bool)
        go_left = (cc > 0) & (((rt & row_here) >> cl) & _ONE).astype(bool)
        go_right = (((rt >> cu) & (row_here >> (cu + _ONE))) & _ONE).astype(bool)
        # the down move is the remaining case: BFS guarantees a predecessor
        nr = np.where(go_up, rr - 1, np.where(go_left | go_right, rr, rr + 1))
        nc = np.where(go_left, cc - 1, np.where(go_right, cc + 1, cc))
        nc = np.where(go_up, cc, nc)
        r[:n], c[:n] = nr, nc
        path[b, k, 0], path[b, k, 1] = nr, nc
    return path


def _count_shortest(layers, connections, target, dist) -> np.ndarray:
    """Number of shortest paths origin→target by DP over the (K, B, R) BFS layers.

    Mazes are sorted by distance so layer k only touches the mazes that reach it (a prefix).
    """
    K, B, R = layers.shape
    C = connections.shape[-1]
    order = np.argsort(-dist, kind="stable")
    dist_s = dist[order]
    layers = layers[:, order]
    down = connections[order, 0].astype(np.int64)
    right = connections[order, 1].astype(np.int64)
    count = unpack_rows(layers[0], C).astype(np.int64)  # 1 at the origin
    n_alive = np.searchsorted(-dist_s, -np.arange(int(dist.max()) + 1), side="right")
    for k in range(1, int(dist.max()) + 1):
        n = int(n_alive[k])
        cnt, d, r = count[:n], down[:n], right[:n]
        s = np.zeros_like(cnt)
        s[:, 1:, :] += cnt[:, :-1, :] * d[:, :-1, :]
        s[:, :-1, :] += cnt[:, 1:, :] * d[:, :-1, :]
        s[:, :, 1:] += cnt[:, :, :-1] * r[:, :, :-1]
        s[:, :, :-1] += cnt[:, :, 1:] * r[:, :, :-1]
        cnt += s * unpack_rows(layers[k, :n], C)
    tr, tc = np.divmod(target[order].astype(np.intp), C)
    out = np.empty(B, dtype=np.int64)
    out[order] = count[np.arange(B), tr, tc]
    return out
