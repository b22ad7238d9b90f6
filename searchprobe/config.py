"""Typed configs: dataclasses read from TOML, strict about keys and types, with stable content hashes.

A config class is a plain dataclass. `from_dict` checks every key and type and names the file
and the allowed keys when something is off. `content_hash` hashes the canonical JSON of the
fields that change the output (fields declared with ``metadata={"hash": False}`` are left out)
plus a format version, so output names like ``maze-dfs-g7-n1000-h1a2b3c4`` change exactly when
the output would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from searchprobe.errors import ConfigError

T = TypeVar("T")

#: Bump when the meaning of a hashed field changes, so old outputs get new names.
FORMAT_VERSION = 1


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a directory, not a TOML file")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (invalid byte at offset {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror or exc})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise ConfigError(f"{path}: TOML nested too deeply") from None


def load_config(path: str | Path, cls: type[T], section: str | None = None) -> T:
    """Read `cls` from the TOML file at `path` (optionally from one `[section]` of it)."""
    data = load_toml(path)
    where = str(path)
    if section is not None:
        if section not in data:
            raise ConfigError(f"{path}: missing section [{section}]")
        data, where = data[section], f"{path} [{section}]"
    return from_dict(cls, data, where)


def from_dict(cls: type[T], data: Any, where: str = "config") -> T:
    """Build dataclass `cls` from a plain dict, refusing unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table for {cls.__name__}, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} for {cls.__name__}; allowed keys: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}: key {name!r}")
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing required key {missing[0]!r} for {cls.__name__}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{where}: {exc}") from None


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {tp}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not allowed; allowed: {', '.join(repr(a) for a in args)}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        out = [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return {k: _coerce(args[1] if args else Any, v, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
        return value
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-JSON view of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=list))


def hashed_fields(cfg: Any) -> dict[str, Any]:
    """The fields that change the output, recursively (``metadata={"hash": False}`` excluded)."""
    out = {}
    for f in dataclasses.fields(cfg):
        if not f.metadata.get("hash", True):
            continue
        value = getattr(cfg, f.name)
        out[f.name] = hashed_fields(value) if dataclasses.is_dataclass(value) else value
    return json.loads(json.dumps(out, default=list))


def content_hash(cfg: Any, length: int = 8) -> str:
    """Stable short hash of the canonical JSON of the output-changing fields plus FORMAT_VERSION."""
    payload = {"format_version": FORMAT_VERSION, "type": type(cfg).__name__, "fields": hashed_fields(cfg)}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]
