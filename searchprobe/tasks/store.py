"""Task-agnostic dataset store: HF `datasets` (Arrow on disk) plus vocab, config and a card.

Every task (maze, chess, …) writes its datasets through this module, so every dataset directory
has the same shape and the same guarantees::

    <out>/
      dataset_dict.json, train/, validation/, test/   HF `DatasetDict.save_to_disk` layout
      vocab.json                                       the tokenizer vocabulary (list or dict)
      config.json                                      task config, name, content hash, fingerprint,
                                                       split counts, duplicates dropped, shard info
      README.md                                        a short dataset card

Guarantees:

* **Atomic**: everything is built in a temporary sibling directory that replaces ``<out>`` only
  when `DatasetWriter.finish` succeeds (`searchprobe.io.atomic_directory`); an error leaves
  nothing behind.
* **Leakage-free splits**: each row has a canonical 64-bit *key* (for mazes: connectivity +
  endpoints). Rows are deduplicated on the key (the first row in generation order wins) and the
  split is a pure function of the key (`assign_splits`), so two equal examples always land in the
  same split and no key can appear in two splits, by construction.
* **Shard-invariant**: rows are streamed in generation order; `merge` of shard directories keeps
  the first occurrence of each key in shard order, which is exactly what a single run keeps, so
  merged shards equal a single run row for row.
* **Streaming**: `DatasetWriter.add` appends Arrow record batches to per-split files, so memory
  stays flat however many rows are written (only the 64-bit keys are held, for dedupe).

Usage (a task's dataset module)::

    with DatasetWriter(out, splits={"train": .8, "validation": .1, "test": .1}) as writer:
        for columns, keys in batches:            # in generation order
            writer.add(columns, keys)            # dict of equal-length columns, uint64 keys
        writer.finish(config=meta, vocab=vocab, card=card_text)

`read_dataset(path)` gives back a `StoredDataset` (HF DatasetDict + vocab + config).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from searchprobe.errors import DataError, FingerprintMismatch, InputError
from searchprobe.io import atomic_directory, atomic_write_json, atomic_write_text

__all__ = [
    "DEFAULT_SPLITS",
    "DatasetWriter",
    "StoredDataset",
    "assign_splits",
    "check_splits",
    "fingerprint",
    "iter_arrow_batches",
    "merge",
    "mix64",
    "parse_shard",
    "read_dataset",
    "row_keys",
    "shard_range",
]

#: The store's on-disk format version (written to config.json).
STORE_FORMAT = "searchprobe-dataset/1"
DEFAULT_SPLITS: dict[str, float] = {"train": 0.8, "validation": 0.1, "test": 0.1}

_SPLIT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_SPLIT_SALT = np.uint64(0x5EED5B11770A11CE)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


# --- counter-based hashing ---------------------------------------------------------------------
def mix64(x: Any) -> np.ndarray:
    """splitmix64's finalizer, vectorized: a bijective, well-mixed hash of uint64 values.

    Used for stable keys and for counter-based randomness (``mix64(key ^ mix64(counter))``), so
    a draw depends only on its (key, counter) and never on batch layout.
    """
    z = np.asarray(x, dtype=np.uint64) + _GOLDEN
    with np.errstate(over="ignore"):
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def row_keys(*columns: np.ndarray) -> np.ndarray:
    """A canonical 64-bit key per row of the given arrays (first axis = row), from their bytes.

    Arrays are made contiguous and viewed as bytes row by row (dtype and shape matter, so pass
    the same dtypes every time); the bytes are folded 8 at a time with `mix64`.
    """
    if not columns:
        raise InputError("row_keys needs at least one column")
    n = len(columns[0])
    parts = [np.ascontiguousarray(c).reshape(n, -1).view(np.uint8).reshape(n, -1) for c in columns]
    raw = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    pad = (-raw.shape[1]) % 8
    if pad:
        raw = np.concatenate([raw, np.zeros((n, pad), np.uint8)], axis=1)
    words = np.ascontiguousarray(raw).view("<u8")
    h = mix64(np.full(n, words.shape[1], dtype=np.uint64))
    for j in range(words.shape[1]):
        h = mix64(h ^ words[:, j])
    return h


# --- splits and shards ---------------------------------------------------------------------------
def check_splits(splits: Mapping[str, float], where: str = "splits") -> dict[str, float]:
    """Validate split fractions (names like 'train', fractions ≥ 0 summing to 1); return a copy."""
    if not splits:
        raise InputError(f"{where}: no splits given; e.g. {DEFAULT_SPLITS}")
    for name, frac in splits.items():
        if not _SPLIT_NAME.match(str(name)):
            raise InputError(f"{where}: split name {name!r} is not allowed; use letters, digits and _")
        if not isinstance(frac, (int, float)) or isinstance(frac, bool) or not 0.0 <= float(frac) <= 1.0:
            raise InputError(f"{where}: fraction {frac!r} for split {name!r} must be a number in [0, 1]")
    total = float(sum(splits.values()))
    if abs(total - 1.0) > 1e-9:
        raise InputError(f"{where}: fractions {dict(splits)} sum to {total:g}; they must sum to 1")
    return {str(k): float(v) for k, v in splits.items()}


def assign_splits(keys: np.ndarray, splits: Mapping[str, float]) -> tuple[list[str], np.ndarray]:
    """Split of each key: a pure function of the key, so equal examples share a split.

    Returns (names, codes) with ``names[codes[i]]`` the split of row i. Names are taken in sorted
    order for the cumulative intervals, so the assignment does not depend on dict order.
    """
    splits = check_splits(splits)
    names = sorted(splits)
    u = (mix64(np.asarray(keys, dtype=np.uint64) ^ _SPLIT_SALT) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    edges = np.cumsum([splits[n] for n in names])
    edges[-1] = 1.0 + 1e-12  # round-off must never push a key past the last split
    codes = np.searchsorted(edges, u, side="right").astype(np.int8)
    return names, np.minimum(codes, len(names) - 1)


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"i/N"`` (0 ≤ i < N) into (i, N)."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m:
        raise InputError(f"--shard {text!r} is malformed; expected i/N with 0 <= i < N, e.g. 0/4")
    i, count = int(m.group(1)), int(m.group(2))
    if count < 1 or i >= count:
        raise InputError(f"--shard {text!r} is out of range; expected i/N with 0 <= i < N, e.g. 0/4")
    return i, count


def shard_range(n: int, index: int, count: int) -> range:
    """The contiguous range of example indices that shard ``index`` of ``count`` generates."""
    return range(index * n // count, (index + 1) * n // count)


def fingerprint(config: Mapping[str, Any], vocab: Any) -> str:
    """16-hex fingerprint of a config and a vocabulary; later stages compare it to catch mismatches."""
    payload = json.dumps({"config": config, "vocab": vocab}, sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# --- writing -------------------------------------------------------------------------------------
def _features_dict(schema: Any) -> dict:
    from datasets import Features

    return Features.from_arrow_schema(schema).to_dict()


class DatasetWriter:
    """Streams rows (in generation order) into a leakage-free, deduplicated on-disk DatasetDict.

    Use as a context manager; `finish` must be called inside the block. On any exception the
    partial directory is removed and ``path`` is left as it was.
    """

    #: rows per Arrow record batch on disk (fixed, so files are byte-identical however rows arrive)
    rows_per_batch = 1024

    def __init__(self, path: str | os.PathLike, *, splits: Mapping[str, float] = DEFAULT_SPLITS, overwrite: bool = False):
        self.path = Path(path)
        self.splits = check_splits(splits)
        self.overwrite = overwrite
        self.counts: dict[str, int] = {name: 0 for name in self.splits}
        self.rows_seen = 0
        self.duplicates_dropped = 0
        self._seen: set[int] = set()
        self._stack: ExitStack | None = None
        self._tmp: Path | None = None
        self._buffer: dict[str, list] = {name: [] for name in self.splits}
        self._buffered: dict[str, int] = {name: 0 for name in self.splits}
        self._writers: dict[str, Any] = {}
        self._sinks: dict[str, Any] = {}
        self._schema: Any = None
        self._finished = False

    def __enter__(self) -> "DatasetWriter":
        if self.overwrite:
            check_replaceable(self.path)
        self._stack = ExitStack()
        self._tmp = self._stack.enter_context(atomic_directory(self.path, overwrite=self.overwrite))
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self._stack is not None
        self._close_writers()
        if exc_type is None and not self._finished:
            exc_type, exc = DataError, DataError(f"DatasetWriter for {self.path} exited without finish()")
            self._stack.__exit__(exc_type, exc, None)
            raise exc
        return bool(self._stack.__exit__(exc_type, exc, tb))

    def _close_writers(self) -> None:
        for w in self._writers.values():
            w.close()
        for s in self._sinks.values():
            s.close()
        self._writers.clear()
        self._sinks.clear()

    def _open(self, schema: Any) -> None:
        import pyarrow as pa

        assert self._tmp is not None
        self._schema = schema
        for name in self.splits:
            (self._tmp / name).mkdir()
            sink = pa.OSFile(str(self._tmp / name / "data-00000-of-00001.arrow"), "wb")
            self._sinks[name] = sink
            self._writers[name] = pa.ipc.new_stream(sink, schema)

    def add(self, columns: Mapping[str, Any] | Any, keys: np.ndarray) -> None:
        """Append rows: `columns` is a pyarrow Table/RecordBatch or a dict of equal-length columns.

        An ``id`` column (the key as 16 hex digits) is put first. Rows whose key was already seen
        are dropped; the rest go to the split `assign_splits` gives their key.
        """
        import pyarrow as pa

        if self._tmp is None:
            raise DataError("DatasetWriter.add called outside its `with` block")
        keys = np.asarray(keys, dtype=np.uint64)
        table = columns if isinstance(columns, (pa.Table, pa.RecordBatch)) else pa.table(dict(columns))
        if table.num_rows != len(keys):
            raise DataError(f"DatasetWriter.add: {table.num_rows} rows but {len(keys)} keys")
        self.rows_seen += len(keys)
        keep = _first_unseen(keys, self._seen)
        self.duplicates_dropped += int(len(keys) - keep.sum())
        ids = pa.array(np.char.mod("%016x", keys[keep]).astype(object).tolist() if keep.any() else [], pa.string())
        table = table.filter(pa.array(keep)) if not keep.all() else table
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        table = table.add_column(0, "id", ids) if "id" not in table.column_names else table
        if self._schema is None:
            self._open(table.schema)
        elif table.schema != self._schema:
            try:
                table = table.cast(self._schema)
            except (ValueError, TypeError, pa.ArrowInvalid) as exc:
                raise DataError(f"DatasetWriter.add: batch schema differs from the first batch's ({exc})") from None
        names, codes = assign_splits(keys[keep], self.splits)
        for code, name in enumerate(names):
            mask = codes == code
            if mask.any():
                self._buffer[name].append(table.filter(pa.array(mask)))
                self._buffered[name] += int(mask.sum())
                self.counts[name] += int(mask.sum())
                if self._buffered[name] >= self.rows_per_batch:
                    self._flush(name, final=False)

    def _flush(self, name: str, final: bool) -> None:
        """Write the buffered rows of one split as record batches of exactly `rows_per_batch`
        rows (the last one shorter), so file bytes do not depend on how rows were batched."""
        import pyarrow as pa

        if not self._buffer[name]:
            return
        table = pa.concat_tables(self._buffer[name]).combine_chunks()
        n = table.num_rows
        full = n if final else n - n % self.rows_per_batch
        for start in range(0, full, self.rows_per_batch):
            part = table.slice(start, min(self.rows_per_batch, full - start)).combine_chunks()
            for batch in part.to_batches():
                self._writers[name].write_batch(batch)
        rest = table.slice(full)
        self._buffer[name] = [rest] if rest.num_rows else []
        self._buffered[name] = rest.num_rows

    def finish(self, *, config: Mapping[str, Any], vocab: Any, card: str | Callable[[dict], str] = "",
               rows_generated: int | None = None) -> Path:
        """Close the split files and write dataset_dict.json, per-split HF metadata, vocab.json,
        config.json (given config + fingerprint + counts) and README.md; returns the final path.

        `rows_generated` overrides the count of rows given to `add` (merge re-reads deduplicated
        shards, so it passes the shards' own totals)."""
        if self._tmp is None:
            raise DataError("DatasetWriter.finish called outside its `with` block")
        if self._schema is None:
            raise DataError(f"no rows were given for dataset {self.path}")
        for name in self.splits:
            self._flush(name, final=True)
        self._close_writers()
        tmp = self._tmp
        features = _features_dict(self._schema)
        fp = fingerprint(dict(config.get("config", config)), vocab)
        for name in self.splits:
            atomic_write_json(tmp / name / "dataset_info.json", {
                "citation": "", "description": "", "features": features, "homepage": "", "license": "",
            })
            atomic_write_json(tmp / name / "state.json", {
                "_data_files": [{"filename": "data-00000-of-00001.arrow"}],
                "_fingerprint": hashlib.sha256(f"{fp}/{name}".encode()).hexdigest()[:16],
                "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
                "_output_all_columns": False, "_split": name,
            })
        atomic_write_text(tmp / "dataset_dict.json", json.dumps({"splits": list(self.splits)}))
        atomic_write_json(tmp / "vocab.json", vocab)
        meta = dict(config)
        generated = self.rows_seen if rows_generated is None else int(rows_generated)
        meta.update({
            "store_format": STORE_FORMAT,
            "fingerprint": fp,
            "splits": self.splits,
            "counts": dict(self.counts),
            "rows_generated": generated,
            "duplicates_dropped": generated - sum(self.counts.values()),
        })
        meta.setdefault("shard", None)
        atomic_write_json(tmp / "config.json", meta)
        text = card(meta) if callable(card) else card
        atomic_write_text(tmp / "README.md", text or _default_card(meta))
        self._finished = True
        return self.path


def _first_unseen(keys: np.ndarray, seen: set[int]) -> np.ndarray:
    """Mask of rows whose key is new (not in `seen`, not earlier in `keys`); updates `seen`."""
    _, first = np.unique(keys, return_index=True)
    keep = np.zeros(len(keys), dtype=bool)
    keep[first] = True
    if seen:
        as_int = keys.tolist()
        keep &= np.fromiter((k not in seen for k in as_int), dtype=bool, count=len(as_int))
    seen.update(keys[keep].tolist())
    return keep


def _default_card(meta: Mapping[str, Any]) -> str:
    counts = ", ".join(f"{k}: {v}" for k, v in meta.get("counts", {}).items())
    return (f"# {meta.get('name', 'dataset')}\n\nTask: {meta.get('task', '?')}. Splits: {counts}.\n"
            f"Fingerprint: `{meta.get('fingerprint')}`. See config.json for the full recipe.\n")


# --- reading -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoredDataset:
    """A dataset directory read back: the HF DatasetDict plus what lives beside it."""

    path: Path  #: the dataset directory
    splits: Any  #: datasets.DatasetDict (memory-mapped Arrow)
    vocab: Any  #: contents of vocab.json
    config: dict  #: contents of config.json (task config under "config", plus store metadata)

    @property
    def fingerprint(self) -> str:
        return str(self.config.get("fingerprint"))

    def check_fingerprint(self, expected: str, what: str = "this artefact") -> None:
        """Raise FingerprintMismatch unless the dataset's fingerprint is `expected`."""
        if self.fingerprint != expected:
            raise FingerprintMismatch(
                f"dataset {self.path} has fingerprint {self.fingerprint} but {what} expects {expected}")

    def __repr__(self) -> str:
        counts = {name: len(ds) for name, ds in self.splits.items()}
        return f"StoredDataset(path={str(self.path)!r}, name={self.config.get('name')!r}, splits={counts}, fingerprint={self.fingerprint!r})"


def read_dataset(path: str | os.PathLike) -> StoredDataset:
    """Open a dataset directory written by `DatasetWriter` (memory-mapped; nothing is copied).

    Every file is checked first (`searchprobe.files.read_dataset_files`); a corrupt or truncated
    Arrow shard is a one-line DataError naming the split."""
    from datasets import load_from_disk

    from searchprobe.files import read_dataset_files

    path = Path(path)
    config, vocab, splits = read_dataset_files(path)
    try:
        loaded = load_from_disk(str(path))
    except Exception as exc:  # pyarrow.ArrowInvalid, OSError, ValueError, … from a damaged folder
        raise DataError(f"{path}: cannot read the dataset's Arrow files ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); regenerate it") from None
    return StoredDataset(path=path, splits=loaded, vocab=vocab, config=config)


#: Top-level entries `DatasetWriter` writes into a dataset directory (besides one folder per split).
DATASET_FILES = ("dataset_dict.json", "config.json", "vocab.json", "README.md")


def is_dataset_dir(path: str | os.PathLike) -> bool:
    """Whether `path` holds a dataset directory searchprobe wrote (its config.json says so)."""
    from searchprobe.files import read_json

    try:
        return read_json(Path(path) / "config.json").get("store_format") == STORE_FORMAT
    except DataError:
        return False


def check_replaceable(path: str | os.PathLike, flag: str = "--overwrite") -> None:
    """Refuse to replace a directory searchprobe did not write, or one holding anything else too.

    `generate --overwrite` (and `run`'s generate stage) replace a whole directory; that is only
    safe when every entry in it is one the dataset store wrote."""
    from searchprobe.files import read_json

    path = Path(path)
    if not path.exists() or not path.is_dir() or not any(path.iterdir()):
        return
    if not is_dataset_dir(path):
        raise InputError(f"{flag}: {path} is not a searchprobe dataset (no config.json with store format "
                         f"{STORE_FORMAT!r}); searchprobe replaces only directories it wrote: choose another --out")
    splits = read_json(path / "config.json").get("splits")
    own = set(DATASET_FILES) | (set(splits) if isinstance(splits, dict) else set())
    try:
        own |= set(read_json(path / "dataset_dict.json").get("splits") or [])
    except (DataError, TypeError):
        pass
    foreign = sorted(p.name for p in path.iterdir() if p.name not in own)
    if foreign:
        raise InputError(f"{flag}: {path} also holds {foreign[0]!r}, which searchprobe did not write; move it "
                         f"away or choose another --out (nothing was changed)")


# --- merging shards ------------------------------------------------------------------------------
def merge(shard_dirs: Sequence[str | os.PathLike], out: str | os.PathLike, *, overwrite: bool = False,
          card: Callable[[dict], str] | None = None) -> Path:
    """Combine the shard directories of one recipe into one dataset equal to a single run.

    Shards must share a fingerprint and cover shard indices 0..N-1 exactly once. Rows are
    streamed in shard order and deduplicated across shards (first occurrence wins), so the result
    has the same rows in the same order as generating everything at once. The card is `card`,
    else the dataset's task's `Task.dataset_card`.
    """
    import pyarrow as pa

    if not shard_dirs:
        raise InputError("merge: no shard directories given")
    metas = []
    for d in shard_dirs:
        p = Path(d)
        try:
            metas.append((p, json.loads((p / "config.json").read_text())))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"merge: {p} is not a readable dataset directory ({exc})") from None
    fps = {m["fingerprint"] for _, m in metas}
    if len(fps) != 1:
        raise FingerprintMismatch(f"merge: shards come from different recipes (fingerprints {sorted(fps)})")
    shards = [m.get("shard") for _, m in metas]
    if any(s is None for s in shards):
        raise InputError("merge: every input must be a shard directory (written with --shard i/N)")
    count = shards[0]["count"]
    indices = sorted(s["index"] for s in shards)
    if any(s["count"] != count for s in shards) or indices != list(range(count)):
        raise InputError(f"merge: shards {indices} of {count} do not cover 0..{count - 1} exactly once")
    metas.sort(key=lambda pm: pm[1]["shard"]["index"])
    first = metas[0][1]
    order = json.loads((metas[0][0] / "dataset_dict.json").read_text())["splits"]
    splits = {name: first["splits"][name] for name in order}  # config.json sorts keys; keep split order
    vocab = json.loads((metas[0][0] / "vocab.json").read_text())
    with DatasetWriter(out, splits=splits, overwrite=overwrite) as writer:
        for p, _ in metas:
            for name in splits:
                arrow = p / name / "data-00000-of-00001.arrow"
                with pa.memory_map(str(arrow)) as source:
                    reader = pa.ipc.open_stream(source)
                    for batch in reader:
                        if batch.num_rows == 0:
                            continue
                        ids = batch.column(batch.schema.get_field_index("id")).to_pylist()
                        keys = np.array([int(i, 16) for i in ids], dtype=np.uint64)
                        writer.add(pa.Table.from_batches([batch]), keys)
        # Rows are re-read split by split, so split membership is recomputed from the same keys.
        meta = {k: v for k, v in first.items() if k not in
                ("store_format", "fingerprint", "counts", "rows_generated", "duplicates_dropped", "splits", "shard")}
        generated = sum(m.get("rows_generated", 0) for _, m in metas)
        writer.finish(config=meta, vocab=vocab, card=card or _task_card(first, Path(shard_dirs[0])),
                      rows_generated=generated)
    return Path(out)


def _task_card(meta: Mapping[str, Any], where: Path) -> Callable[[dict], str] | str:
    """The dataset card of the task that wrote a dataset (its `Task.dataset_card`); the store's
    generic card when that task is not installed here (merging needs nothing else from it)."""
    from searchprobe.errors import ConfigError
    from searchprobe.tasks.base import task_of

    try:
        return task_of(meta, f"{where}/config.json").dataset_card
    except ConfigError:
        return ""


def iter_arrow_batches(path: str | os.PathLike, split: str) -> Iterable[Any]:
    """Stream the record batches of one split of a dataset directory (memory-mapped)."""
    import pyarrow as pa

    with pa.memory_map(str(Path(path) / split / "data-00000-of-00001.arrow")) as source:
        yield from pa.ipc.open_stream(source)
