"""Typed configs: dataclasses read from TOML, strict about keys and types, with stable content hashes.

A config class is a plain dataclass. `from_dict` checks every key and type and names the file
and the allowed keys when something is off. `content_hash` hashes the canonical JSON of the
fields that change the output (fields declared with ``metadata={"hash": False}`` are left out)
plus a format version, so output names like ``maze-dfs-g7-n1000-h1a2b3c4`` change exactly when
the output would. `load_toml` applies ``--set key.sub=value`` overrides (`apply_overrides`) to the
parsed file before any of that checking, so an override is validated exactly like the file.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import dataclasses
import datetime
import hashlib
import json
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence, TypeVar, get_args, get_origin

from searchprobe.errors import ConfigError

T = TypeVar("T")

#: Bump when the meaning of a hashed field changes, so old outputs get new names.
FORMAT_VERSION = 1


#: What ``--set`` means, for the help of every verb that takes a TOML.
SET_HELP = ("override one key of the TOML before it is checked, dotted for tables: --set train.lr=3e-4, "
            "--set n=500, --set train.precision=bf16 (a TOML value; anything else is a string); repeatable")

_KEY_PART = re.compile(r"[A-Za-z0-9_-]+\Z")
#: (resolved path, overrides) pairs `load_toml` applies while `toml_overrides` is active.
_ACTIVE: contextvars.ContextVar[tuple[tuple[Path, tuple[str, ...]], ...]] = contextvars.ContextVar(
    "searchprobe_toml_overrides", default=())


def parse_override(text: str, flag: str = "--set") -> tuple[list[str], Any]:
    """``"train.lr=3e-4"`` -> (["train", "lr"], 0.0003). The value is read as a TOML value (number,
    boolean, quoted string, array, inline table); anything that is not one is taken as a plain
    string, so ``--set train.precision=bf16`` works unquoted."""
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError(f"{flag} {text!r}: expected KEY=VALUE with a dotted key, e.g. {flag} train.lr=3e-4")
    key, _, raw = text.partition("=")
    parts = key.strip().split(".")
    if not all(_KEY_PART.match(part) for part in parts):
        raise ConfigError(f"{flag} {text!r}: the key {key.strip()!r} must be dotted names of letters, digits, _ and - "
                          f"(e.g. train.lr)")
    return parts, _toml_value(raw.strip())


def _toml_value(raw: str) -> Any:
    try:
        parsed = tomllib.loads(f"value = {raw}")
    except (tomllib.TOMLDecodeError, RecursionError):
        return raw
    if list(parsed) != ["value"]:  # "1\nother = 2": more than one value
        return raw
    value = parsed["value"]
    if isinstance(value, (datetime.date, datetime.time)):  # 2024-01-01 is meant as text, not a TOML date
        return raw
    return value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], flag: str = "--set") -> dict[str, Any]:
    """A copy of the parsed TOML `data` with each ``key.sub=value`` override set (tables created
    where missing); checking the result is left to the same validation as the file's."""
    data = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text, flag)
        table = data
        for depth, part in enumerate(parts[:-1]):
            inner = table.setdefault(part, {})
            if not isinstance(inner, dict):
                where = ".".join(parts[: depth + 1])
                raise ConfigError(f"{flag} {text!r}: {where} is not a table (it is {inner!r}), so it has no key "
                                  f"{parts[depth + 1]!r}")
            table = inner
        table[parts[-1]] = value
    return data


@contextlib.contextmanager
def toml_overrides(path: str | Path, overrides: Sequence[str], flag: str = "--set") -> Iterator[None]:
    """While active, every `load_toml` of `path` returns the file with `overrides` applied (so a
    task's own loader sees them too). The overrides' syntax is checked on entry."""
    overrides = tuple(overrides or ())
    for text in overrides:
        parse_override(text, flag)
    if not overrides:
        yield
        return
    token = _ACTIVE.set(_ACTIVE.get() + ((Path(path).resolve(), overrides),))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def load_toml(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """A parsed TOML file, with ``--set`` `overrides` (and those of an active `toml_overrides` of
    this path) applied; every problem is one ConfigError line."""
    data = _read_toml(path)
    active = [o for p, ovs in _ACTIVE.get() if p == Path(path).resolve() for o in ovs]
    if active or overrides:
        data = apply_overrides(data, [*active, *overrides])
    return data


def _read_toml(path: str | Path) -> dict[str, Any]:
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


def load_config(path: str | Path, cls: type[T], section: str | None = None, overrides: Sequence[str] = ()) -> T:
    """Read `cls` from the TOML file at `path` (optionally from one `[section]` of it), with
    ``--set`` `overrides` applied to the whole file first."""
    data = load_toml(path, overrides)
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
