from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import pytest

from searchprobe.config import content_hash, from_dict, load_config, to_dict
from searchprobe.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    p: float = 0.5
    kinds: tuple[str, ...] = ("bfs",)


@dataclass(frozen=True)
class Outer:
    n: int
    name: str = "x"
    mode: Literal["a", "b"] = "a"
    inner: Inner = field(default_factory=Inner)
    workers: int = field(default=1, metadata={"hash": False})
    limit: int | None = None


def test_from_dict_builds_nested_and_coerces():
    cfg = from_dict(Outer, {"n": 3, "inner": {"p": 1, "kinds": ["a", "b"]}, "limit": None})
    assert cfg == Outer(n=3, inner=Inner(p=1.0, kinds=("a", "b")))
    assert isinstance(cfg.inner.p, float)


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"n": 1, "nn": 2}, "unknown key 'nn'"),
        ({"n": "3"}, "key 'n': expected an integer"),
        ({"n": True}, "expected an integer"),
        ({"n": 1, "mode": "c"}, "'c' is not allowed; allowed: 'a', 'b'"),
        ({"n": 1, "inner": {"q": 1}}, "unknown key 'q' for Inner; allowed keys: kinds, p"),
        ({}, "missing required key 'n'"),
    ],
)
def test_from_dict_rejects_bad_keys_and_types(data, needle):
    with pytest.raises(ConfigError) as exc:
        from_dict(Outer, data, "f.toml")
    assert needle in str(exc.value)
    assert str(exc.value).startswith("f.toml")
    assert "\n" not in str(exc.value)


def test_load_config_names_file_and_section(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('[model]\nn = 2\nbogus = 1\n')
    with pytest.raises(ConfigError, match=r"t.toml \[model\]: unknown key 'bogus'.*allowed keys: inner, limit, mode, n, name, workers"):
        load_config(path, Outer, section="model")
    path.write_text("n = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, Outer)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", Outer)


def test_content_hash_stable_and_ignores_unhashed_fields():
    a = Outer(n=3)
    assert content_hash(a) == content_hash(Outer(n=3))
    assert content_hash(a) == content_hash(dataclasses.replace(a, workers=8))  # not hashed
    assert content_hash(a) != content_hash(dataclasses.replace(a, n=4))
    assert content_hash(a) != content_hash(dataclasses.replace(a, inner=Inner(p=0.25)))
    assert len(content_hash(a)) == 8 and int(content_hash(a), 16) >= 0
    # Known value: guards against accidental changes of the canonical form (which would rename outputs).
    assert content_hash(Outer(n=1)) == content_hash(from_dict(Outer, to_dict(Outer(n=1))))
