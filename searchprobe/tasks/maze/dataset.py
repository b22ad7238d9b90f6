"""Maze datasets: generate → endpoints → solve → traces → tokens → labels → records → store.

`generate_batch(cfg, indices)` makes the solved mazes with the given dataset indices (a
`MazeBatch`); `maze_records(cfg, batch, indices)` turns them into Arrow columns; and
`generate_dataset` / `generate_from_toml` stream batches (optionally over worker processes) into
a `searchprobe.tasks.store.DatasetWriter`. Maze i depends only on (seed, i), so the dataset is the
same whatever the batch size, worker count or shard split.

Record columns (one row per maze; ``G = rows * cols`` cells, path/trace lengths vary):

==================  ==========================  ==========================================================
column              type                        meaning
==================  ==========================  ==========================================================
id                  string                      16-hex content key (connectivity + endpoints); unique
index               int64                       the maze's index i in the recipe (regenerate with seed, i)
seed                uint64                      the per-maze key that regenerates the maze exactly
tokens              list<int16>                 AOTP token ids (vocab.json), no padding
roles               list<int16>                 role code per token (`searchprobe.tasks.maze.tokens`)
solution_start      int32                       index of the first token to predict (path step 0)
trace_start         int32                       index after <TRACE_START>; -1 in plain AOTP
connections         bool [2][rows][cols]        maze-dataset connection_list (down plane, right plane)
origin, target      int16 [2]                   (row, col)
path                list<int16 [2]>             the chosen shortest path, origin … target
path_len            int32                       cells on the path
n_shortest          int64                       number of shortest paths (1 in perfect mazes)
trace_<alg>         struct of lists             `Trace.to_record()` of BFS / DFS / A* (config.traces)
label_<name>        see `labels.maze_labels`    probe labels; per-path-step labels are lists of
                                                path_len items, per-cell ones fixed [G] / [G][4]
==================  ==========================  ==========================================================
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from searchprobe.config import hashed_fields
from searchprobe.errors import DataError, InputError
from searchprobe.tasks import store
from searchprobe.tasks.maze.config import MazeConfig, load_maze_config
from searchprobe.tasks.maze.endpoints import ORIGIN_TRIES, place_endpoints
from searchprobe.tasks.maze.generators import generate_connections, maze_keys
from searchprobe.tasks.maze.solve import shortest_paths
from searchprobe.tasks.maze.types import MazeBatch

__all__ = [
    "MAZE_ATTEMPTS",
    "generate_batch",
    "maze_content_keys",
    "maze_records",
    "generate_dataset",
    "generate_from_toml",
    "load_maze_dataset",
    "batch_from_records",
    "dataset_card",
    "tokenizer_for",
]

#: Mazes drawn (per index) before an endpoint window is declared unmeetable.
MAZE_ATTEMPTS = 64
#: Per-path-step labels: stored as lists of path_len items.
PER_STEP_LABELS = ("path_cell", "next_cell", "cell_ahead", "walls_current")
#: Labels not stored (redundant with other columns).
SKIPPED_LABELS = ("step_mask", "connectivity")


# --- making solved mazes -----------------------------------------------------------------------
def generate_batch(cfg: MazeConfig, indices: Sequence[int] | np.ndarray) -> MazeBatch:
    """The solved mazes with dataset indices `indices` (any order, any subset)."""
    indices = np.asarray(indices, dtype=np.int64)
    B, R, C = len(indices), cfg.rows, cfg.cols
    keys = maze_keys(cfg.seed, indices, 0)
    conn = generate_connections(cfg.generator, keys, R, C, cfg.p)
    origin, target, ok = place_endpoints(conn, keys, cfg.endpoints, perfect=cfg.perfect)
    for attempt in range(1, MAZE_ATTEMPTS):
        if ok.all():
            break
        redo = np.flatnonzero(~ok)
        keys[redo] = maze_keys(cfg.seed, indices[redo], attempt)
        conn[redo] = generate_connections(cfg.generator, keys[redo], R, C, cfg.p)
        o, t, good = place_endpoints(conn[redo], keys[redo], cfg.endpoints, perfect=cfg.perfect)
        origin[redo], target[redo], ok[redo] = o, t, good
    if not ok.all():
        i = int(indices[np.flatnonzero(~ok)[0]])
        ep = cfg.endpoints
        raise DataError(
            f"maze {i}: no origin/target met endpoints (path length {ep.min_path_len}..{ep.max_path_len or R * C} cells, "
            f"dead_end_origin={ep.dead_end_origin}, dead_end_target={ep.dead_end_target}, origin={ep.origin}, "
            f"target={ep.target}) in {MAZE_ATTEMPTS} {cfg.generator} mazes x {ORIGIN_TRIES} origins on {R}x{C}; "
            f"widen the window or drop an option")
    path, path_len, n_shortest = shortest_paths(conn, origin, target, perfect=cfg.acyclic)
    return MazeBatch(
        n_rows=R, n_cols=C, connections=conn,
        origin=np.stack(np.divmod(origin, C), axis=1).astype(np.int16),
        target=np.stack(np.divmod(target, C), axis=1).astype(np.int16),
        path=path, path_len=path_len, n_shortest=n_shortest, seed=keys,
    )


def maze_content_keys(batch: MazeBatch) -> np.ndarray:
    """The canonical 64-bit key of each maze: its connectivity and endpoints (what dedupe uses)."""
    B = len(batch)
    bits = np.packbits(np.asarray(batch.connections, dtype=bool).reshape(B, -1), axis=1)
    shape = np.broadcast_to(np.array([batch.n_rows, batch.n_cols], dtype=np.int16), (B, 2))
    return store.row_keys(shape, bits, np.asarray(batch.origin, np.int16), np.asarray(batch.target, np.int16))


def tokenizer_for(cfg: MazeConfig):
    """The tokenizer a recipe uses (one fixed vocabulary per `cfg.max_grid`)."""
    from searchprobe.tasks.maze.tokens import MazeTokenizer

    trace_format = {"aotp_trace": "searchformer", "grid_fill": "fill"}.get(cfg.token_format)
    return MazeTokenizer(cfg.max_grid, trace_format=trace_format,
                         layout="grid" if cfg.token_format.startswith("grid") else "aotp")


# --- records -----------------------------------------------------------------------------------
def _fixed(arr: np.ndarray) -> Any:
    """(B, d1, d2, …) numpy -> nested Arrow fixed-size lists."""
    import pyarrow as pa

    arr = np.ascontiguousarray(arr)
    values = pa.array(arr.reshape(-1))
    for d in reversed(arr.shape[1:]):
        values = pa.FixedSizeListArray.from_arrays(values, d)
    return values


def _ragged(values: np.ndarray, offsets: np.ndarray) -> Any:
    """Flat values (N, …) + offsets (B + 1,) -> Arrow list<…> (inner axes as fixed-size lists)."""
    import pyarrow as pa

    inner = _fixed(values) if values.ndim > 1 else pa.array(values)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), inner)


def _offsets(lengths: np.ndarray) -> np.ndarray:
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def _trace_column(traces: Sequence[Any]) -> Any:
    import pyarrow as pa

    from searchprobe.tasks.maze.traces import trace_columns

    cols = trace_columns(traces)
    return pa.StructArray.from_arrays([_ragged(v, o) for v, o in cols.values()], names=list(cols))


def maze_records(cfg: MazeConfig, batch: MazeBatch, indices: np.ndarray, tokenizer: Any = None,
                 with_labels: bool | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """Arrow columns (see the module docstring) and content keys for the mazes of `batch`.

    Tokens and labels come from `searchprobe.tasks.maze.tokens` / `labels`; traces from
    `searchprobe.tasks.maze.traces`. `with_labels` defaults to ``cfg.labels``.
    """
    with_labels = cfg.labels if with_labels is None else with_labels
    lengths = batch.path_len.astype(np.int64)
    step_mask = np.arange(batch.path.shape[1])[None, :] < lengths[:, None]
    path_offsets = _offsets(lengths)
    cols: dict[str, Any] = {"index": np.asarray(indices, dtype=np.int64), "seed": np.asarray(batch.seed, dtype=np.uint64)}
    traces = {}
    if cfg.trace_algorithms:
        from searchprobe.tasks.maze.traces import traces_for_batch

        traces = traces_for_batch(batch, cfg.trace_algorithms)
    tokenizer = tokenizer or tokenizer_for(cfg)
    enc = tokenizer.encode(batch, traces=traces.get(cfg.token_trace) if tokenizer.trace_format else None)
    tok, roles, tok_offsets = enc.to_flat()
    cols["tokens"] = _ragged(tok.astype(np.int16), tok_offsets)
    cols["roles"] = _ragged(roles.astype(np.int16), tok_offsets)
    cols["solution_start"] = enc.solution_start.astype(np.int32)
    cols["trace_start"] = enc.trace_start.astype(np.int32)
    cols["connections"] = _fixed(np.asarray(batch.connections, dtype=bool))
    cols["origin"] = _fixed(np.asarray(batch.origin, dtype=np.int16))
    cols["target"] = _fixed(np.asarray(batch.target, dtype=np.int16))
    cols["path"] = _ragged(batch.path[step_mask].astype(np.int16), path_offsets)
    cols["path_len"] = batch.path_len.astype(np.int32)
    cols["n_shortest"] = batch.n_shortest.astype(np.int64)
    for name in cfg.traces:
        cols[f"trace_{name}"] = _trace_column(traces[name])
    if with_labels:
        from searchprobe.tasks.maze.labels import maze_labels

        labels = maze_labels(batch, {name: traces[name] for name in cfg.traces})
        for name, arr in labels.items():
            if name in SKIPPED_LABELS:
                continue
            if name in PER_STEP_LABELS:
                cols[f"label_{name}"] = _ragged(arr[step_mask], path_offsets)
            else:
                cols[f"label_{name}"] = _fixed(arr) if arr.ndim > 1 else arr
    return cols, maze_content_keys(batch)


def batch_from_records(rows: Mapping[str, Sequence[Any]] | Any, n_rows: int, n_cols: int) -> MazeBatch:
    """Rebuild a `MazeBatch` from stored rows (a Dataset slice / dict of columns)."""
    conn = np.asarray(rows["connections"], dtype=bool).reshape(-1, 2, n_rows, n_cols)
    paths = [np.asarray(p, dtype=np.int16).reshape(-1, 2) for p in rows["path"]]
    L = max((len(p) for p in paths), default=0)
    path = np.full((len(paths), L, 2), -1, dtype=np.int16)
    for b, p in enumerate(paths):
        path[b, : len(p)] = p
    return MazeBatch(
        n_rows=n_rows, n_cols=n_cols, connections=conn,
        origin=np.asarray(rows["origin"], dtype=np.int16).reshape(-1, 2),
        target=np.asarray(rows["target"], dtype=np.int16).reshape(-1, 2),
        path=path, path_len=np.asarray(rows["path_len"], dtype=np.int32),
        n_shortest=np.asarray(rows["n_shortest"], dtype=np.int64),
        seed=np.asarray(rows["seed"], dtype=np.uint64),
    )


# --- whole datasets ----------------------------------------------------------------------------
def _chunk_records(job: tuple[MazeConfig, int, int, bool]) -> tuple[Any, np.ndarray]:
    """Worker: the Arrow table and keys of maze indices [start, stop)."""
    import pyarrow as pa

    cfg, start, stop, with_labels = job
    indices = np.arange(start, stop, dtype=np.int64)
    cols, keys = maze_records(cfg, generate_batch(cfg, indices), indices, _cached_tokenizer(cfg), with_labels)
    return pa.table(cols), keys


_TOKENIZERS: dict[tuple, Any] = {}


def _cached_tokenizer(cfg: MazeConfig) -> Any:
    key = (cfg.max_grid, cfg.token_format)
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = tokenizer_for(cfg)
    return _TOKENIZERS[key]


def dataset_meta(cfg: MazeConfig, shard: tuple[int, int] | None = None) -> dict[str, Any]:
    """The task part of config.json (the store adds fingerprint, counts, splits)."""
    tok = tokenizer_for(cfg)
    meta: dict[str, Any] = {
        "task": "maze",
        "name": cfg.name,
        "content_hash": cfg.content_hash(),
        "config": hashed_fields(cfg.canonical()),
        "tokenizer": {"class": "MazeTokenizer", "max_grid": tok.max_grid, "trace_format": tok.trace_format,
                      "layout": tok.layout, "vocab_size": tok.vocab_size},
    }
    if shard is not None:
        i, count = shard
        r = store.shard_range(cfg.n, i, count)
        meta["shard"] = {"index": i, "count": count, "start": r.start, "stop": r.stop}
    return meta


def dataset_card(meta: Mapping[str, Any]) -> str:
    """The README.md dataset card of a maze dataset (from its config.json contents)."""
    cfg = meta["config"]
    counts = ", ".join(f"{k} {v}" for k, v in meta.get("counts", {}).items())
    shard = meta.get("shard")
    shard_line = f"\nThis is shard {shard['index']} of {shard['count']} (maze indices {shard['start']}..{shard['stop'] - 1}).\n" if shard else ""
    ep = cfg["endpoints"]
    tok = meta["tokenizer"]
    window = f"{ep['min_path_len']}..{ep['max_path_len'] or 'any'}"
    return f"""# {meta['name']}

Solved {cfg['rows']}x{cfg['cols']} mazes from the `{cfg['generator']}` generator (searchprobe maze task), for
training transformers to solve mazes and probing them for search.
{shard_line}
- Mazes: {cfg['n']} generated with seed {cfg['seed']}; splits: {counts}.
- Leakage: duplicates (same connectivity and endpoints) are dropped and each maze's split is a hash
  of that key, so no maze appears in two splits.
- Endpoints: path length {window} cells; dead-end origin {ep['dead_end_origin']}, dead-end target
  {ep['dead_end_target']}; fixed origin {ep['origin']}, fixed target {ep['target']}.
- Tokens: maze-dataset AOTP strings, vocabulary of {tok['vocab_size']} tokens for grids up to
  {tok['max_grid']}x{tok['max_grid']} (`vocab.json`); trace format {tok['trace_format']}.
- Search traces stored: {', '.join(cfg['traces']) or 'none'}; probe labels: {"the `label_*` columns" if cfg['labels'] else 'not stored'}.
- Fingerprint `{meta.get('fingerprint')}`; the full recipe is in `config.json`.

Load with `searchprobe.tasks.maze.dataset.load_maze_dataset(path)` or `datasets.load_from_disk(path)`.
"""


def _chunks(r: range, size: int) -> Iterator[tuple[int, int]]:
    for start in range(r.start, r.stop, size):
        yield start, min(start + size, r.stop)


def generate_dataset(cfg: MazeConfig, out: str | os.PathLike | None = None, *, shard: tuple[int, int] | None = None,
                     workers: int = 1, overwrite: bool = False, progress: bool = False) -> Path:
    """Write the dataset of recipe `cfg` (or one shard of it) to `out` (default data/<name>)."""
    if workers < 1:
        raise InputError(f"workers={workers} must be at least 1")
    if shard is not None:
        i, count = shard
        if not 0 <= i < count:
            raise InputError(f"shard {i}/{count} is out of range; expected i/N with 0 <= i < N")
    name = cfg.name if shard is None else f"{cfg.name}-shard{shard[0]}of{shard[1]}"
    out = Path(out) if out is not None else Path("data") / name
    meta = dataset_meta(cfg, shard)
    vocab = tokenizer_for(cfg).vocab
    index_range = range(cfg.n) if shard is None else store.shard_range(cfg.n, *shard)
    from searchprobe.guard import check_example_count

    check_example_count(len(index_range), "n")  # before any job exists or memory is spent

    def jobs() -> Iterator[tuple[MazeConfig, int, int, bool]]:  # lazily: the list of a huge n never exists
        return ((cfg, a, b, cfg.labels) for a, b in _chunks(index_range, cfg.batch_size))

    n_jobs = -(-len(index_range) // cfg.batch_size)
    from tqdm import tqdm

    bar = tqdm(total=len(index_range), unit="maze", desc=name, disable=not progress, leave=False)
    with store.DatasetWriter(out, splits=cfg.splits, overwrite=overwrite) as writer:
        if workers == 1 or n_jobs == 1:
            results: Iterator = map(_chunk_records, jobs())
            pool = None
        else:
            import multiprocessing as mp

            # fork: works from any __main__ (scripts, stdin, notebooks); workers only use numpy + pyarrow
            pool = mp.get_context("fork").Pool(min(workers, n_jobs))
            results = pool.imap(_chunk_records, jobs())
        try:
            for (a, b), (table, keys) in zip(((j[1], j[2]) for j in jobs()), results):
                writer.add(table, keys)
                bar.update(b - a)
        finally:
            if pool is not None:
                pool.terminate()
            bar.close()
        writer.finish(config=meta, vocab=vocab, card=dataset_card)
    return out


def generate_from_toml(path: str | os.PathLike, out: str | os.PathLike | None = None, n: int | None = None,
                       seed: int | None = None, shard: tuple[int, int] | str | None = None, overwrite: bool = False,
                       workers: int = 1, progress: bool = False) -> Path:
    """Read ``tasks/<name>.toml``, apply overrides, write the dataset; returns its directory."""
    cfg = load_maze_config(path)
    changes = {k: v for k, v in (("n", n), ("seed", seed)) if v is not None}
    if changes:
        try:
            cfg = dataclasses.replace(cfg, **changes)
        except ValueError as exc:  # InputError from validation names the value
            raise InputError(f"{path}: {exc}") from None
    if isinstance(shard, str):
        shard = store.parse_shard(shard)
    return generate_dataset(cfg, out, shard=shard, workers=workers, overwrite=overwrite, progress=progress)


def load_maze_dataset(path: str | os.PathLike) -> store.StoredDataset:
    """Open a maze dataset directory: `StoredDataset` (HF DatasetDict, vocab, config)."""
    ds = store.read_dataset(path)
    if ds.config.get("task") != "maze":
        raise DataError(f"{path} holds a {ds.config.get('task')!r} dataset, not a maze dataset")
    return ds
