"""Dead-end filling: the order in which a maze's dead ends are filled in, vectorized over a batch.

Dead-end filling solves a perfect maze by repeatedly removing a cell with one remaining open
neighbour (other than the origin and target): what is never removed is the origin–target path.
The canonical order used for tokens scans the cells in row-major order; from each scanned cell
that is a removable dead end it follows the corridor, removing cells while the next one has
become a dead end, then goes on scanning. Every step looks only at one cell and its neighbours,
which makes it an easy "trace" for a small transformer to write before the path (see the grid
layout's ``trace_format="fill"`` in `tokens`).

On mazes with loops the cells left over are the path plus every cycle it can reach; the
function still returns the canonical removal order.
"""

from __future__ import annotations

import numpy as np


def dead_end_fill_order(connections: np.ndarray, origin: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order (B, R*C) int64, count (B,)): the row-major cell ids removed, in order; -1 past `count`.

    `connections` is (B, 2, R, C) bool (down, right passages); `origin`, `target` are (B, 2) cells.
    """
    conn = np.asarray(connections, dtype=bool)
    B, _, R, C = conn.shape
    N = R * C
    down, right = conn[:, 0].reshape(B, N), conn[:, 1].reshape(B, N)
    cell = np.arange(N)
    # neighbour ids per direction (U, D, L, R) and whether the passage is open
    nbr = np.stack([cell - C, cell + C, cell - 1, cell + 1], axis=1)
    opens = np.zeros((B, N, 4), dtype=bool)
    opens[:, C:, 0] = down[:, :-C]
    opens[:, :, 1] = down
    opens[:, 1:, 2] = right[:, :-1] & (cell[1:] % C != 0)
    opens[:, :, 3] = right & (cell % C != C - 1)
    opens[:, N - C:, 1] = False
    nbr_safe = np.clip(nbr, 0, N - 1)

    rows = np.arange(B)
    keep = np.zeros((B, N), dtype=bool)
    keep[rows, np.asarray(origin)[:, 0] * C + np.asarray(origin)[:, 1]] = True
    keep[rows, np.asarray(target)[:, 0] * C + np.asarray(target)[:, 1]] = True
    removed = np.zeros((B, N), dtype=bool)
    order = np.full((B, N), -1, dtype=np.int64)
    count = np.zeros(B, dtype=np.int64)
    scan = np.zeros(B, dtype=np.int64)
    chain = np.full(B, -1, dtype=np.int64)
    while True:
        active = scan < N
        if not active.any():
            break
        x = np.where(chain >= 0, chain, np.minimum(scan, N - 1))
        live = opens[rows, x] & ~removed[rows[:, None], nbr_safe[x]]  # (B, 4)
        removable = active & ~keep[rows, x] & ~removed[rows, x] & (live.sum(axis=1) == 1)
        hit = np.flatnonzero(removable)
        removed[hit, x[hit]] = True
        order[hit, count[hit]] = x[hit]
        count[hit] += 1
        chain[hit] = nbr_safe[x[hit], live[hit].argmax(axis=1)]
        miss = np.flatnonzero(active & ~removable)
        chain[miss] = -1
        scan[miss] += 1
    return order, count
