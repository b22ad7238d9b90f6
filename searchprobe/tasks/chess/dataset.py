"""Chess puzzle datasets: task TOML → puzzles → tokens + labels + traces → `searchprobe.tasks.store`.

A task file (``tasks/chess-*.toml``)::

    task = "chess"
    name = "chess-mate2-mixed"
    n = 2000
    seed = 0
    [puzzles]                       # PuzzleConfig
    mate_in = 2
    material = ["KQvK", "KRvK", "KQvKR", "KRRvK"]
    unique_first_move = true
    [tokens]
    relative = false
    [source]                        # optional; default: random positions
    kind = "generated"              # or "lichess" / "pgn" with path = "…" (see SourceConfig)
    [splits]
    train = 0.8
    validation = 0.1
    test = 0.1

Rows (one per puzzle, in index order; duplicates of a position dropped by the store):
``tokens``, ``roles``, ``solution_start``, ``fen``, ``position`` (FEN without move counters: the
split key), ``pv``, ``solutions``, ``mate_in``, ``material``, ``source``, ``seed``, ``index``,
``attempts``, ``flipped`` (relative mode mirrored this board), ``search_value``,
``search_nodes``, ``trace`` (the alpha-beta trace as a struct of lists, `Trace.from_record`),
and every `labels.PuzzleLabels` field, in the token frame.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

import numpy as np

from searchprobe.config import content_hash, from_dict, load_toml, to_dict
from searchprobe.errors import ConfigError, DataError, InputError
from searchprobe.tasks.chess import tokens as tok
from searchprobe.tasks.chess.config import PuzzleConfig
from searchprobe.tasks.chess.labels import puzzle_labels
from searchprobe.tasks.chess.puzzles import Puzzle, canonical_fen, iter_puzzles

#: Bump when the row layout changes.
DATASET_FORMAT = 1


@dataclass(frozen=True)
class TokenConfig:
    """relative: mirror the board when Black is to move and write pieces as mine/theirs."""

    relative: bool = False


@dataclass(frozen=True)
class SourceConfig:
    """Where the positions come from.

    kind: "generated" (random positions, the default), "lichess" (a Lichess puzzle CSV: its
        ``mateIn<k>`` puzzles for k = ``puzzles.mate_in``, each re-verified) or "pgn" (game
        positions whose side to move mates in exactly k). ``puzzles.material`` applies only to
        "generated"; `n` caps how many imported puzzles are kept (first in file order).
    path: the CSV / PGN file: absolute, or relative to the working directory, else to the TOML's folder.
    every: PGN only: every `every`-th position of each game.
    max_pieces: PGN only: skip positions with more pieces (mate proofs in full positions are slow).
    """

    kind: Literal["generated", "lichess", "pgn"] = "generated"
    path: str = ""
    every: int = 1
    max_pieces: int = 12

    def __post_init__(self) -> None:
        if self.kind != "generated" and not self.path:
            raise InputError(f"source kind={self.kind!r} needs a path to the {'CSV' if self.kind == 'lichess' else 'PGN'} file")
        if self.every < 1 or self.max_pieces < 2:
            raise InputError(f"source every={self.every} must be >= 1 and max_pieces={self.max_pieces} >= 2")


@dataclass(frozen=True)
class ChessTaskConfig:
    """A chess dataset recipe (the task TOML)."""

    task: Literal["chess"] = "chess"
    name: str = field(default="chess", metadata={"hash": False})
    n: int = 1000
    seed: int = 0
    puzzles: PuzzleConfig = field(default_factory=PuzzleConfig)
    tokens: TokenConfig = field(default_factory=TokenConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    splits: dict[str, float] = field(default_factory=lambda: {"train": 0.8, "validation": 0.1, "test": 0.1})
    record_trace: bool = True
    format_version: int = DATASET_FORMAT

    def __post_init__(self) -> None:
        if self.n < 1:
            raise InputError(f"n={self.n} must be >= 1")
        from searchprobe.guard import plain_name
        from searchprobe.tasks.store import check_splits

        plain_name(self.name, "name")  # it names the default output directory

        check_splits(self.splits)

    @property
    def content_hash(self) -> str:
        return content_hash(self)

    def default_out(self, shard: tuple[int, int] | None = None) -> Path:
        name = self.name if shard is None else f"{self.name}-shard{shard[0]}of{shard[1]}"
        return Path("data") / name


def load_task(path: str | os.PathLike) -> ChessTaskConfig:
    """Read and validate a chess task TOML (ConfigError naming the file and key on bad input)."""
    data = load_toml(path)
    if data.get("task") != "chess":
        raise ConfigError(f"{path}: task = {data.get('task')!r}; this loader reads task = 'chess'")
    return from_dict(ChessTaskConfig, data, str(path))


def position_key(fen: str) -> int:
    """The 64-bit split / dedupe key of a position: a hash of its FEN without move counters."""
    digest = hashlib.sha256(canonical_fen(fen).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def puzzle_row(puzzle: Puzzle, *, relative: bool = False) -> dict[str, Any]:
    """One dataset row: tokens, roles, structured fields, trace and labels (token frame)."""
    import chess

    board = chess.Board(puzzle.fen)
    flip = tok.needs_flip(board, relative)
    enc = tok.encode(board, puzzle.pv, relative=relative)
    labels = puzzle_labels(puzzle.fen, puzzle.pv, puzzle.trace).in_frame(flip)
    row: dict[str, Any] = {
        "tokens": enc.ids,
        "roles": enc.roles,
        "solution_start": enc.solution_start,
        "fen": puzzle.fen,
        "position": canonical_fen(puzzle.fen),
        "pv": list(puzzle.pv),
        "solutions": list(puzzle.solutions),
        "mate_in": puzzle.mate_in,
        "material": puzzle.material,
        "source": puzzle.source,
        "seed": puzzle.seed,
        "index": puzzle.index,
        "attempts": puzzle.attempts,
        "flipped": flip,
        "search_value": float(puzzle.search_value),
        "search_nodes": int(0 if puzzle.trace is None else int((puzzle.trace.kind == 3).sum())),
    }
    if puzzle.trace is not None:
        row["trace"] = puzzle.trace.to_record()
    row.update(labels.to_record())
    return row


#: Stored Arrow types of the trace columns (g and h are NaN in game traces and are not stored).
TRACE_TYPES = {"kind": "int8", "node": "int32", "parent": "int32", "depth": "int8", "value": "float32",
               "alpha": "float32", "beta": "float32", "move": "int32", "best": "int32"}
_SMALL_INT_LISTS = {"tokens": "int16", "roles": "int16", "pv_from": "int8", "pv_to": "int8",
                    "legal_moves": "int16", "checking_moves": "int16", "opp_attacks": "int8",
                    "our_attacks": "int8", "our_pinned": "int8", "their_pinned": "int8",
                    "king_escapes": "int8", "root_moves": "int16", "root_nodes": "int32"}
_SMALL_INTS = {"solution_start": "int16", "mate_in": "int8", "opp_king": "int8", "mating_square": "int8",
               "first_from": "int8", "first_to": "int8", "in_check": "int8", "attempts": "int32"}


def _table(rows: list[dict[str, Any]]):
    """An Arrow table of rows with compact integer types (traces are the bulk of a dataset)."""
    import pyarrow as pa

    arrays, names = [], []
    for name in rows[0]:
        values = [r[name] for r in rows]
        if name == "trace":
            typ = pa.struct([(c, pa.list_(pa.from_numpy_dtype(np.dtype(t)))) for c, t in TRACE_TYPES.items()])
            values = [{c: v[c] for c in TRACE_TYPES} for v in values]
        elif name in _SMALL_INT_LISTS:
            typ = pa.list_(pa.from_numpy_dtype(np.dtype(_SMALL_INT_LISTS[name])))
        elif name in _SMALL_INTS:
            typ = pa.from_numpy_dtype(np.dtype(_SMALL_INTS[name]))
        else:
            typ = None
        arrays.append(pa.array(values, type=typ))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def row_trace(row: dict[str, Any]):
    """The `Trace` of a stored row (restores the NaN g / h columns that are not stored)."""
    from searchprobe.search.trace import Trace

    record = dict(row["trace"])
    n = len(record["kind"])
    record.setdefault("g", [float("nan")] * n)
    record.setdefault("h", [float("nan")] * n)
    order = ["kind", "node", "parent", "depth", "g", "h", "value", "alpha", "beta", "move", "best"]
    return Trace.from_record({k: record[k] for k in order if k in record})


def write_puzzles(puzzles: Iterable[Puzzle], out: str | os.PathLike, *, meta: dict[str, Any],
                  splits: dict[str, float], relative: bool = False, overwrite: bool = False,
                  batch: int = 64) -> Path:
    """Stream puzzles into a store dataset at `out` (split and deduplicated by position)."""
    from searchprobe.tasks.store import DatasetWriter

    with DatasetWriter(out, splits=splits, overwrite=overwrite) as writer:
        rows: list[dict[str, Any]] = []
        keys: list[int] = []
        for puzzle in puzzles:
            rows.append(puzzle_row(puzzle, relative=relative))
            keys.append(position_key(puzzle.fen))
            if len(rows) >= batch:
                writer.add(_table(rows), np.array(keys, dtype=np.uint64))
                rows, keys = [], []
        if rows:
            writer.add(_table(rows), np.array(keys, dtype=np.uint64))
        writer.finish(config=meta, vocab=tok.VOCAB, card=dataset_card)
    return Path(out)


def generate(cfg: ChessTaskConfig, out: str | os.PathLike | None = None, *, shard: tuple[int, int] | None = None,
             workers: int = 1, overwrite: bool = False, progress: bool = False, base_dir: Path | None = None) -> Path:
    """Generate the dataset of `cfg` (or one shard ``(i, N)`` of it) into `out` (default data/<name>)."""
    from searchprobe.tasks.store import shard_range

    if workers < 1:
        raise InputError(f"workers={workers} must be at least 1")
    if shard is not None and not 0 <= shard[0] < shard[1]:
        raise InputError(f"shard {shard[0]}/{shard[1]} is out of range; expected i/N with 0 <= i < N")

    out = Path(out) if out is not None else cfg.default_out(shard)
    meta = {
        "task": "chess",
        "name": cfg.name,
        "content_hash": cfg.content_hash,
        "config": to_dict(cfg),
        "roles": tok.ROLE_NAMES,
        "shard": None if shard is None else {"index": shard[0], "count": shard[1]},
    }
    if cfg.source.kind == "generated":
        indices = range(cfg.n) if shard is None else shard_range(cfg.n, *shard)
        puzzles: Iterable[Puzzle] = iter_puzzles(cfg.puzzles, cfg.seed, indices, workers=workers,
                                                 record_trace=cfg.record_trace, progress=progress)
    else:
        imported, info = import_puzzles(cfg, base_dir=base_dir, progress=progress)
        meta["config"]["source"]["sha256"] = info.pop("sha256")  # the fingerprint follows the file's content
        meta["import"] = info
        puzzles = imported if shard is None else [imported[i] for i in shard_range(len(imported), *shard)]
        if not puzzles:
            raise DataError(f"{cfg.source.path}: no mate-in-{cfg.puzzles.mate_in} puzzles to write ({info['summary']})")
    return write_puzzles(puzzles, out, meta=meta, splits=cfg.splits, relative=cfg.tokens.relative,
                         overwrite=overwrite)


def _resolve(path: str, base_dir: Path | None) -> Path:
    p = Path(path)
    if p.is_absolute() or p.exists() or base_dir is None:
        return p
    return base_dir / p


def import_puzzles(cfg: ChessTaskConfig, *, base_dir: Path | None = None,
                   progress: bool = False) -> tuple[list[Puzzle], dict[str, Any]]:
    """The verified mate-in-k puzzles of a Lichess CSV or PGN source, and what the import skipped.

    Malformed rows / games are skipped and counted (with line numbers) and reported on stderr.
    """
    import sys

    from searchprobe.tasks.chess.imports import (
        lichess_mate_puzzles, pgn_mate_puzzles, read_lichess_csv, read_pgn_positions,
    )

    src, k = cfg.source, cfg.puzzles.mate_in
    path = _resolve(src.path, base_dir)
    rejected: list[tuple[int, str]] = []
    if src.kind == "lichess":
        rows, summary = read_lichess_csv(path)
        wanted = [r for r in rows if r.mate_in == k]
        puzzles, rejected = lichess_mate_puzzles(_bar(wanted, progress), max_mate_in=k,
                                                 record_trace=cfg.record_trace, limit=cfg.n)
    else:
        positions, summary = read_pgn_positions(path, every=src.every)
        puzzles = pgn_mate_puzzles(_bar(positions, progress), k, record_trace=cfg.record_trace,
                                   max_pieces=src.max_pieces, limit=cfg.n)
    puzzles = [dataclasses.replace(p, index=i) for i, p in enumerate(puzzles)]
    if summary.skipped or rejected:
        print(f"warning: {summary}" + (f"; {len(rejected)} mate-tagged puzzles failed verification" if rejected else ""),
              file=sys.stderr)
    info = {
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "summary": str(summary),
        "seen": summary.seen,
        "imported": summary.imported,
        "skipped": [list(item) for item in summary.skipped],
        "rejected": [list(item) for item in rejected],
        "puzzles": len(puzzles),
    }
    return puzzles, info


def _bar(items: list, enabled: bool):
    from tqdm import tqdm

    return tqdm(items, disable=not enabled, desc="verifying", unit="position")


def generate_from_toml(path: str | os.PathLike, out: str | os.PathLike | None = None, n: int | None = None,
                       seed: int | None = None, shard: str | tuple[int, int] | None = None,
                       overwrite: bool = False, workers: int = 1, progress: bool = False) -> Path:
    """The `searchprobe generate` entry point for ``task = "chess"`` files."""
    from searchprobe.tasks.store import parse_shard

    cfg = load_task(path)
    changes = {k: v for k, v in (("n", n), ("seed", seed)) if v is not None}
    if changes:
        try:
            cfg = dataclasses.replace(cfg, **changes)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
    shard_t = parse_shard(shard) if isinstance(shard, str) else shard
    return generate(cfg, out, shard=shard_t, workers=workers, overwrite=overwrite, progress=progress,
                    base_dir=Path(path).parent)


def dataset_card(meta: dict[str, Any]) -> str:
    """README.md of a chess dataset."""
    cfg = meta.get("config", {})
    p = cfg.get("puzzles", {})
    counts = ", ".join(f"{k}: {v}" for k, v in meta.get("counts", {}).items())
    source = cfg.get("source", {})
    if source.get("kind", "generated") == "generated":
        origin = (f"material {', '.join(p.get('material', []))}, "
                  f"{'unique first move' if p.get('unique_first_move') else 'first move not necessarily unique'}, "
                  f"attacker {p.get('attacker', '?')}.\nEvery position is random and legal (python-chess)")
    else:
        origin = (f"positions from the {source.get('kind')} file `{source.get('path')}` "
                  f"(sha256 {str(source.get('sha256', ''))[:16]}…; {meta.get('import', {}).get('summary', '')}).\n"
                  f"Every position was re-verified by searchprobe's mate search")
    return f"""# {meta.get('name', 'chess')}

Mate-in-{p.get('mate_in', '?')} chess puzzles (searchprobe chess task), {origin}: its side to move mates
in exactly k moves and in no fewer.

- Splits ({counts}) are a pure function of the position (FEN without move counters): no position is in two splits.
- Rows: tokens / roles / solution_start, fen, pv (UCI), solutions, the alpha-beta search trace at depth 2k-1
  (`searchprobe.tasks.chess.dataset.row_trace(row)` gives the `Trace`), and probe labels (target, candidate solution,
  constraint, search-trace families), squares in the token frame ({'relative: mirrored when Black is to move' if cfg.get('tokens', {}).get('relative') else 'absolute'}).
- Seed {cfg.get('seed')}, {meta.get('rows_generated', cfg.get('n'))} puzzles made, {meta.get('duplicates_dropped', 0)} duplicate positions dropped.
- Fingerprint `{meta.get('fingerprint')}`, config hash `{meta.get('content_hash')}`.
"""
