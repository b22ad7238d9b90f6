"""Guards around what searchprobe writes: output paths, plain names, locks, ownership, temporaries, resources.

* `check_out_path`: an output path whose own path or any parent is a file is refused up front.
* `plain_name`: task and experiment names become directory names, so they must be plain names
  (no ``/``, ``..`` or absolute paths).
* `lock_directory`: one writer per run directory (a lock file holding ``host:pid``); a lock whose
  process is gone (kill -9) is reclaimed, a live one is a one-line error.
* Ownership: a run directory lists what searchprobe wrote into it in ``.searchprobe-manifest.json``;
  ``--force`` and retraining delete only those entries (`remove_owned`) and never a folder that
  searchprobe did not write (a Hugging Face model folder also has config.json and model.safetensors).
* Temporaries: `atomic_directory` names its temporary ``.<out>.<pid>@<host>.<random>.tmp``, so
  `sweep_stale_temporaries` can remove those whose process is gone and leave a live one alone.
* Resources: `cpu_count` (the CPUs this process may use), `available_memory` (the machine's or its
  cgroup's; `memory_source` says which), `check_example_count` (refuses a dataset size whose bookkeeping cannot fit).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import sys
import threading
from pathlib import Path
from typing import Iterable, Iterator

from searchprobe.errors import ConfigError, DataError, InputError

MANIFEST = ".searchprobe-manifest.json"
LOCK = ".searchprobe.lock"
_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def warn(message: str) -> None:
    """One ``warning: …`` line on stderr."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def note(message: str) -> None:
    """One ``note: …`` line on stderr."""
    print(f"note: {message}", file=sys.stderr, flush=True)


# --- names and paths -------------------------------------------------------------------------------
def plain_name(value: object, where: str) -> str:
    """`value` if it is a plain name usable as one directory name, else a ConfigError."""
    if not isinstance(value, str) or not _PLAIN.match(value) or value in (".", "..") or len(value) > 200:
        raise ConfigError(f"{where}: {value!r} is not a plain name; allowed: letters, digits and . _ + - "
                          "(no '/', '..' or absolute paths), starting with a letter or digit")
    return value


def check_out_path(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Refuse an output directory that is a file, or that sits under a file (before any work)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{flag} {path}: is a file, not a directory; choose a directory")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{flag} {path}: {parent} is a file, not a directory")
            break
    if path.is_symlink() and not path.exists():
        raise InputError(f"{flag} {path}: is a broken symbolic link")
    return path


# --- processes -------------------------------------------------------------------------------------
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname() or "host")[:60] or "host"


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


# --- locks ------------------------------------------------------------------------------------------
_held: dict[Path, int] = {}
_held_guard = threading.Lock()


def _read_lock(path: Path) -> tuple[str, int] | None:
    try:
        host, _, pid = path.read_text(encoding="utf-8").strip().partition(":")
        return host, int(pid)
    except (OSError, ValueError, UnicodeDecodeError):
        return None


@contextlib.contextmanager
def lock_directory(directory: str | os.PathLike, what: str = "run directory") -> Iterator[Path]:
    """Hold ``<directory>/.searchprobe.lock`` (host:pid) for the block; reentrant within a process.

    A lock held by a live process is a DataError; one whose process is gone (killed) is reclaimed.
    The directory is created if needed and removed again afterwards if the block left it empty.
    """
    directory = Path(directory)
    key = directory.resolve()
    with _held_guard:
        if key in _held:
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield directory
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    lock = directory / LOCK
    me = f"{_host()}:{os.getpid()}"
    for _attempt in range(3):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner = _read_lock(lock)
            if owner is not None and (owner[0] != _host() or process_alive(owner[1])):
                if created:
                    _rmdir_if_empty(directory)
                where = f"process {owner[1]}" + (f" on {owner[0]}" if owner[0] != _host() else "")
                raise DataError(f"{what} {directory} is in use by {where} (lock file {lock}); wait for it to finish "
                                f"or choose another --out")
            # the owner is gone (killed): reclaim its lock
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(me + "\n")
        break
    else:
        raise DataError(f"{what} {directory}: cannot take its lock {lock}")
    with _held_guard:
        _held[key] = 1
    try:
        yield directory
    finally:
        with _held_guard:
            _held.pop(key, None)
        if _read_lock(lock) == (_host(), os.getpid()):
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
        if created:
            _rmdir_if_empty(directory)


def _rmdir_if_empty(directory: Path) -> None:
    with contextlib.suppress(OSError):
        directory.rmdir()


# --- ownership: what searchprobe wrote into a directory ----------------------------------------
#: Entries searchprobe writes into a run directory (used for runs made before the manifest existed).
RUN_ENTRIES = ("config.json", "model.safetensors", "metrics.jsonl", "eval.json", "finished.json", "train_state",
               ".train_state.tmp", ".train_state.old", "lens", "probes", "patching", "acts", "report",
               "report.html", MANIFEST)
#: What `train` writes (checked for foreign files before a fresh run writes over them).
TRAIN_ENTRIES = ("config.json", "model.safetensors", "metrics.jsonl", "eval.json", "finished.json", "train_state")


def manifest_entries(directory: str | os.PathLike) -> set[str]:
    """Names of the entries searchprobe recorded writing into `directory` (empty if none)."""
    path = Path(directory) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return set()
    entries = data.get("entries") if isinstance(data, dict) else None
    return {e for e in entries if isinstance(e, str) and e and "/" not in e and e not in (".", "..")} \
        if isinstance(entries, list) else set()


def record_entries(directory: str | os.PathLike, *names: str) -> None:
    """Add top-level entry `names` to the directory's manifest (before writing them)."""
    from searchprobe.io import atomic_write_json

    directory = Path(directory)
    if not directory.is_dir():
        return
    entries = manifest_entries(directory)
    new = {n for n in names if n} - entries
    if not new and (directory / MANIFEST).is_file():
        return
    atomic_write_json(directory / MANIFEST, {"format": "searchprobe-manifest/1",
                                             "note": "entries searchprobe wrote here; --force deletes only these",
                                             "entries": sorted(entries | new | {MANIFEST})})


def owned_entries(run_dir: str | os.PathLike) -> set[str]:
    """Top-level entries of a run directory that searchprobe wrote: its manifest, or for a run made
    before manifests, the known run entries when its config.json is a searchprobe run's."""
    from searchprobe.files import is_run_config

    run_dir = Path(run_dir)
    owned = manifest_entries(run_dir)
    if is_run_config(run_dir / "config.json"):
        owned |= set(RUN_ENTRIES) | {p.name for p in run_dir.glob("eval-*.json")}
    return owned


def remove_owned(run_dir: str | os.PathLike, *, keep: Iterable[str | os.PathLike] = (),
                 only: Iterable[str] | None = None) -> list[str]:
    """Delete the entries of `run_dir` that searchprobe wrote (all, or those in `only`), except the
    paths in `keep`; foreign entries are never touched. Returns the names deleted."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    keep_paths = {Path(k).resolve() for k in keep}
    owned = owned_entries(run_dir)
    if only is not None:
        owned &= set(only)
    removed = []
    for name in sorted(owned - {MANIFEST, LOCK}):
        entry = run_dir / name
        if not entry.exists() and not entry.is_symlink():
            continue
        if entry.resolve() in keep_paths:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append(name)
    return removed


def foreign_run_entries(run_dir: str | os.PathLike, names: Iterable[str] = TRAIN_ENTRIES) -> list[str]:
    """Entries among `names` that exist in `run_dir` but that searchprobe did not write."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    owned = owned_entries(run_dir)
    return [n for n in names if (run_dir / n).exists() and n not in owned]


# --- temporaries -------------------------------------------------------------------------------
def temp_prefix(name: str) -> str:
    """mkdtemp prefix of an atomic directory's temporary: ``.<name>.<pid>@<host>.``."""
    return f".{name}.{os.getpid()}@{_host()}."


def sweep_stale_temporaries(parent: str | os.PathLike, name: str) -> list[Path]:
    """Remove ``.<name>.<pid>@<host>.*.tmp`` directories in `parent` whose process is gone.

    Only temporaries made on this host by a process that no longer exists are removed; a live
    process's (a concurrent `generate`), another host's and unrecognised ones are left alone.
    """
    parent = Path(parent)
    pattern = re.compile(r"^\." + re.escape(name) + r"\.(\d+)@([A-Za-z0-9-]+)\.[^/]*\.tmp$")
    removed = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry.name)
        if not m or not entry.is_dir() or entry.is_symlink():
            continue
        pid, host = int(m.group(1)), m.group(2)
        if host != _host() or pid == os.getpid() or process_alive(pid):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


# --- resources -------------------------------------------------------------------------------------
def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _memory_bounds() -> list[tuple[int, str]]:
    """(bytes, whose) of each bound on this process's memory: the machine's MemAvailable and the
    room left under a cgroup limit (v2 or v1)."""
    bounds = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                bounds.append((int(line.split()[1]) * 1024, "the machine's MemAvailable"))
                break
    except (OSError, ValueError):
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            raw = Path(limit_file).read_text().strip()
            if raw == "max":
                continue
            limit = int(raw)
            if limit >= 1 << 60:
                continue
            usage = int(Path(usage_file).read_text().strip())
            bounds.append((max(0, limit - usage), f"cgroup limit {_size(limit)} ({limit_file}), {_size(usage)} in use"))
        except (OSError, ValueError):
            continue
    return bounds


def available_memory() -> int | None:
    """Bytes of memory available to this process: the machine's MemAvailable, capped by a cgroup limit."""
    bounds = _memory_bounds()
    return min(b for b, _ in bounds) if bounds else None


def memory_source() -> str:
    """Whose limit `available_memory` reports: the machine's or its cgroup's."""
    bounds = _memory_bounds()
    return min(bounds)[1] if bounds else "unknown"


#: Memory one example costs a generator however small it is: its 64-bit key in the dedupe set
#: (a Python int and its hash-table slot) and its place in the job list.
BYTES_PER_EXAMPLE = 100


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"


def check_example_count(n: int, flag: str = "--n") -> None:
    """Refuse a dataset size whose bookkeeping alone cannot fit in the available memory."""
    need = int(n) * BYTES_PER_EXAMPLE
    avail = available_memory()
    if avail is not None and need > avail:
        shown = f"{flag} {n}" if flag.startswith("-") else f"{flag} = {n}"
        raise InputError(f"{shown}: generating it needs at least {_size(need)} of memory (~{BYTES_PER_EXAMPLE} bytes "
                         f"per example for deduplication alone), more than the {_size(avail)} available; "
                         f"generate fewer examples or shards (--shard i/N)")


def disk_error(exc: OSError, where: str | os.PathLike) -> DataError | None:
    """A one-line DataError for a full disk or quota, else None."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DataError(f"{where}: no space left on the device ({exc.strerror}); nothing was replaced")
    return None
