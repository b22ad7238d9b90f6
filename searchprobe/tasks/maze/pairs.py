"""Counterfactual maze pairs built from the ground truth, token-aligned for patching.

A pair is a clean maze and a corrupted one that differ in one thing (`kind`):

* ``"target"``: the same maze with another target cell. Same maze seed ⇒ same adjacency tokens,
  so the two prompts differ only at the target token.
* ``"wall"``: a constraint change that keeps a perfect maze perfect — one passage on the path is
  walled up and one wall between the two halves this splits the maze into is opened (an edge
  swap in the spanning tree). The number of passages, hence the token length, is unchanged.
* ``"origin"``: another origin cell.

Both sides are re-solved (`searchprobe.tasks.maze.solve.shortest_paths`) and re-tokenized with
the run's `MazeTokenizer`. Each pair is cut at its *decision step*: the first path index k ≥ 1
where the two solutions (cells, then ``<PATH_END>``) differ. The result is a generic
`searchprobe.intervene.pairs.Pairs` whose payloads (`clean`, `corrupt`) are the two solved
`MazeBatch`es.
"""

from __future__ import annotations

import numpy as np

from searchprobe.errors import DataError, InputError
from searchprobe.intervene.pairs import Pairs
from searchprobe.tasks.maze.types import MazeBatch

PAIR_KINDS = ("target", "wall", "origin")
#: dataset columns a pair is built from
PAIR_COLUMNS = ("connections", "origin", "target", "path", "path_len", "n_shortest", "seed")


# --- maze edits ---------------------------------------------------------------------------------
def _neighbours(conn: np.ndarray, r: int, c: int) -> list[tuple[int, int]]:
    R, C = conn.shape[1:]
    out = []
    if r > 0 and conn[0, r - 1, c]:
        out.append((r - 1, c))
    if r + 1 < R and conn[0, r, c]:
        out.append((r + 1, c))
    if c > 0 and conn[1, r, c - 1]:
        out.append((r, c - 1))
    if c + 1 < C and conn[1, r, c]:
        out.append((r, c + 1))
    return out


def _reachable(conn: np.ndarray, start: tuple[int, int]) -> np.ndarray:
    R, C = conn.shape[1:]
    seen = np.zeros((R, C), dtype=bool)
    seen[start] = True
    stack = [start]
    while stack:
        r, c = stack.pop()
        for n in _neighbours(conn, r, c):
            if not seen[n]:
                seen[n] = True
                stack.append(n)
    return seen


def _edge_slot(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int, int]:
    """Index into `connections` of the passage between lattice neighbours a and b."""
    (r1, c1), (r2, c2) = sorted([a, b])
    return (0, r1, c1) if r1 != r2 else (1, r1, c1)


def swap_wall_on_path(conn: np.ndarray, path: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """Wall up one passage on the path and open one wall that reconnects the maze.

    The opened wall joins the origin's side to the target's side, so the target stays reachable
    and the passage count is unchanged (a spanning tree stays a spanning tree). None if no
    such swap exists.
    """
    R, C = conn.shape[1:]
    steps = rng.permutation(len(path) - 1)
    for i in steps:
        a, b = tuple(int(x) for x in path[i]), tuple(int(x) for x in path[i + 1])
        new = conn.copy()
        new[_edge_slot(a, b)] = False
        side = _reachable(new, tuple(int(x) for x in path[0]))
        candidates = []
        for r in range(R):
            for c in range(C):
                for d, (r2, c2) in enumerate(((r + 1, c), (r, c + 1))):
                    if r2 < R and c2 < C and not new[d, r, c] and side[r, c] != side[r2, c2] \
                            and {(r, c), (r2, c2)} != {a, b}:
                        candidates.append((d, r, c))
        if candidates:
            new[candidates[int(rng.integers(len(candidates)))]] = True
            return new
    return None


# --- pair construction ---------------------------------------------------------------------
def _solution_ids(tokenizer, path: np.ndarray, stop_id: int) -> list[int]:
    return [int(tokenizer.cell_ids[int(r), int(c)]) for r, c in path] + [stop_id]


def make_maze_pairs(rows, tokenizer, n_rows: int, n_cols: int, kind: str = "target", n: int | None = None,
                    seed: int = 0, row_ids: np.ndarray | None = None) -> Pairs:
    """Counterfactual pairs from stored maze rows (a dict of columns, e.g. ``split[:]``).

    Up to `n` pairs, at most one per maze; mazes where no edit changes the solution are skipped.
    `seed` drives every random choice (new target / origin / swapped wall).
    """
    from searchprobe.tasks.maze.dataset import batch_from_records
    from searchprobe.tasks.maze.solve import shortest_paths

    if kind not in PAIR_KINDS:
        raise InputError(f"unknown pair kind {kind!r}; allowed: {', '.join(PAIR_KINDS)}")
    if getattr(tokenizer, "trace_format", None) is not None:
        raise InputError(f"maze pairs need a tokenizer without a search trace in the prompt (got trace_format="
                         f"{tokenizer.trace_format!r}); use a dataset generated with token_trace unset")
    batch = batch_from_records(rows, n_rows, n_cols)
    B = len(batch)
    rng = np.random.default_rng(seed)
    cells = n_rows * n_cols
    conn = batch.connections.copy()
    origin = batch.origin.astype(np.int64).copy()
    target = batch.target.astype(np.int64).copy()
    keep = np.ones(B, dtype=bool)
    for b in range(B):
        o, t = int(origin[b, 0] * n_cols + origin[b, 1]), int(target[b, 0] * n_cols + target[b, 1])
        if kind in ("target", "origin"):
            reach = _reachable(batch.connections[b], divmod(o, n_cols)).reshape(-1)
            options = [x for x in range(cells) if reach[x] and x not in (o, t)]
            if not options:
                keep[b] = False
                continue
            choice = divmod(int(rng.choice(options)), n_cols)
            if kind == "target":
                target[b] = choice
            else:
                origin[b] = choice
        else:
            path = batch.path[b, : int(batch.path_len[b])]
            new = swap_wall_on_path(batch.connections[b], path, rng)
            if new is None:
                keep[b] = False
            else:
                conn[b] = new
    if not keep.any():
        raise DataError(f"no maze among {B} rows admits a {kind} counterfactual")
    if (~keep).any():
        batch = batch.take(np.flatnonzero(keep))
        conn, origin, target = conn[keep], origin[keep], target[keep]
    idx_rows = np.flatnonzero(keep) if row_ids is None else np.asarray(row_ids)[keep]
    o_id = origin[:, 0] * n_cols + origin[:, 1]
    t_id = target[:, 0] * n_cols + target[:, 1]
    path, path_len, n_short = shortest_paths(conn, o_id, t_id)
    corrupt = MazeBatch(n_rows, n_cols, conn, origin.astype(np.int16), target.astype(np.int16), path, path_len,
                        n_short, batch.seed)
    clean_enc, corrupt_enc = tokenizer.encode(batch), tokenizer.encode(corrupt)
    stop_id = tokenizer.token_to_id["<PATH_END>"]
    out: dict[str, list] = {k: [] for k in ("clean", "corrupt", "roles", "ca", "xa", "k", "ps", "i")}
    for b in range(len(batch)):
        ct, cr = clean_enc.row(b)
        xt, _ = corrupt_enc.row(b)
        s_c, s_x = int(clean_enc.solution_start[b]), int(corrupt_enc.solution_start[b])
        if s_c != s_x:
            continue  # prompts of unequal length cannot be aligned
        sol_c = _solution_ids(tokenizer, batch.path[b, : int(batch.path_len[b])], stop_id)
        sol_x = _solution_ids(tokenizer, corrupt.path[b, : int(corrupt.path_len[b])], stop_id)
        if kind == "origin":
            k = 1 if len(sol_c) > 2 and len(sol_x) > 2 and sol_c[1] != sol_x[1] else -1
        else:
            k = next((j for j in range(1, min(len(sol_c), len(sol_x))) if sol_c[j] != sol_x[j]), -1)
        if k < 1:
            continue
        out["clean"].append(np.concatenate([ct[:s_c], sol_c[:k]]))
        out["corrupt"].append(np.concatenate([xt[:s_x], sol_x[:k]]))
        out["roles"].append(cr[: s_c + k])
        out["ca"].append(sol_c[k])
        out["xa"].append(sol_x[k])
        out["k"].append(k)
        out["ps"].append(s_c)
        out["i"].append(b)
        if n is not None and len(out["i"]) >= n:
            break
    if not out["i"]:
        raise DataError(f"none of {len(batch)} mazes gave a {kind} pair whose solutions differ at an aligned step")
    lengths = np.array([len(x) for x in out["clean"]], dtype=np.int64)
    T = int(lengths.max())
    pad = int(tokenizer.pad_id)

    def stack(seqs, dtype, fill):
        arr = np.full((len(seqs), T), fill, dtype=dtype)
        for i, s in enumerate(seqs):
            arr[i, : len(s)] = s
        return arr

    index = np.array(out["i"], dtype=np.int64)
    return Pairs(kind=kind, clean_tokens=stack(out["clean"], np.int64, pad), corrupt_tokens=stack(out["corrupt"], np.int64, pad),
                 roles=stack(out["roles"], np.int16, 0), lengths=lengths, clean_answer=np.array(out["ca"], dtype=np.int64),
                 corrupt_answer=np.array(out["xa"], dtype=np.int64), decision_step=np.array(out["k"], dtype=np.int64),
                 prompt_len=np.array(out["ps"], dtype=np.int64), source_rows=idx_rows[index], pad_id=pad,
                 max_new=cells + 1,  # a path through every cell, then <PATH_END>
                 clean=batch.take(index), corrupt=corrupt.take(index))


def maze_pairs_from_dataset(stored, tokenizer, split: str = "test", kind: str = "target", n: int = 200,
                            seed: int = 0) -> Pairs:
    """`make_maze_pairs` on the first rows of a stored maze dataset split (reads ~2n rows)."""
    if stored.config.get("task") != "maze":
        raise InputError(f"maze pairs need a maze dataset; {stored.path} holds task {stored.config.get('task')!r}")
    fmt = stored.config.get("config", {}).get("token_format", "aotp")
    if fmt not in ("aotp", "grid"):
        raise InputError(f"counterfactual pairs need a token format without a search trace ('aotp' or 'grid'); "
                         f"{stored.path} uses {fmt!r} (generate the dataset with token_format = \"aotp\" or \"grid\")")
    if split not in stored.splits:
        raise InputError(f"dataset {stored.path} has no split {split!r}; it has {', '.join(stored.splits)}")
    ds = stored.splits[split]
    take = min(len(ds), 2 * n + 16)
    cols = ds.select(range(take)).select_columns(list(PAIR_COLUMNS))[:]
    cfg = stored.config["config"]
    return make_maze_pairs(cols, tokenizer, int(cfg["rows"]), int(cfg["cols"]), kind=kind, n=n, seed=seed,
                           row_ids=np.arange(take))
