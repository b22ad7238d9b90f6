"""Atomic writes (a temporary sibling, then a rename: a failure leaves nothing half-written) and strict JSON."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _current_umask() -> int:
    """The process umask, read without changing it where the system tells (Linux: /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (same-directory temp file + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())  # mkstemp makes files 0600; give the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            from searchprobe.guard import disk_error

            full = disk_error(exc, path)
            if full is not None:  # a full disk: the previous file is intact
                raise full from None
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _plain(obj: Any) -> Any:
    """`obj` with numpy scalars and arrays, tuples, sets and paths made JSON types, and NaN / ±inf as None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return [_plain(v) for v in sorted(obj, key=str)]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy scalars and arrays
        return _plain(obj.tolist())
    return obj


def dumps_json(obj: Any, **kwargs: Any) -> str:
    """Strict JSON text (RFC 8259): NaN and infinities become null, numpy values plain numbers.

    Python's `json` writes a bare ``NaN`` by default, which most JSON readers reject; every JSON
    file searchprobe writes goes through here.
    """
    return json.dumps(_plain(obj), allow_nan=False, **kwargs)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write strict JSON (see `dumps_json`), indented and with sorted keys, atomically."""
    return atomic_write_text(path, dumps_json(obj, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that replaces `path` only if the block succeeds.

    Without `overwrite`, an existing non-empty `path` is an error (raised by the caller's
    check before any work); with it, the old directory is swapped out only at the end.
    The temporary, ``.<name>.<pid>@<host>.<random>.tmp`` beside `path`, gets the permissions
    the umask gives a new directory; temporaries left by killed processes are swept first
    (`searchprobe.guard.sweep_stale_temporaries`; a live process's are left alone).
    """
    from searchprobe.errors import InputError
    from searchprobe.guard import check_out_path, disk_error, sweep_stale_temporaries, temp_prefix

    path = Path(path)
    check_out_path(path, "output directory")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise InputError(f"output directory {path} exists and is not empty (pass --overwrite to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temporaries(path.parent, path.name)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=temp_prefix(path.name), suffix=".tmp"))
    try:
        os.chmod(tmp, 0o777 & ~_current_umask())  # mkdtemp makes directories 0700
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        full = disk_error(exc, path) if isinstance(exc, OSError) else None
        if full is not None:
            raise full from None
        raise
