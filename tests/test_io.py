from __future__ import annotations

import json
import os

import pytest

from searchprobe.errors import InputError
from searchprobe.io import atomic_directory, atomic_write_json, atomic_write_text


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a" / "x.json"
    atomic_write_json(p, {"b": 1, "a": [1, 2]})
    atomic_write_json(p, {"c": 2})
    assert json.loads(p.read_text()) == {"c": 2}
    assert os.listdir(p.parent) == ["x.json"]


def test_atomic_write_failure_keeps_old_file(tmp_path):
    p = tmp_path / "x.txt"
    atomic_write_text(p, "good")
    with pytest.raises(TypeError):
        atomic_write_json(p, {"bad": object()})
    assert p.read_text() == "good"
    assert os.listdir(tmp_path) == ["x.txt"]


def test_atomic_directory_all_or_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_directory(out) as tmp:
            (tmp / "half.txt").write_text("x")
            raise RuntimeError("boom")
    assert not out.exists() and os.listdir(tmp_path) == []
    with atomic_directory(out) as tmp:
        (tmp / "done.txt").write_text("ok")
    assert (out / "done.txt").read_text() == "ok"
    with pytest.raises(InputError, match="exists and is not empty"):
        with atomic_directory(out):
            pass
    with atomic_directory(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("n")
    assert sorted(os.listdir(out)) == ["new.txt"]
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_atomic_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        import importlib

        import searchprobe.io as sio

        importlib.reload(sio)
        p = sio.atomic_write_text(tmp_path / "x.txt", "hi")
        assert (p.stat().st_mode & 0o777) == 0o644
    finally:
        os.umask(old)
