"""The task-agnostic dataset store: hashing, splits, shards, dedupe, atomic writes, merge."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from searchprobe.errors import DataError, FingerprintMismatch, InputError
from searchprobe.tasks import store

MASK64 = (1 << 64) - 1


def splitmix64_reference(x: int) -> int:
    """splitmix64's output function with Python ints (Vigna's reference, written independently)."""
    z = (x + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def test_mix64_matches_the_splitmix64_reference():
    xs = [0, 1, 2, 12345, 2**63, MASK64, 0xDEADBEEF]
    got = store.mix64(np.array(xs, dtype=np.uint64)).tolist()
    assert got == [splitmix64_reference(x) for x in xs]
    # the first splitmix64 output for state 0 is the published value
    assert splitmix64_reference(0) == 0xE220A8397B1DCDAF


def test_row_keys_equal_rows_equal_keys_and_distinct_rows_distinct_keys():
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 2, size=(2000, 37)).astype(bool)
    keys = store.row_keys(rows)
    _, first = np.unique(rows, axis=0, return_index=True)
    assert len(np.unique(keys)) == len(first)  # as many keys as distinct rows
    again = store.row_keys(rows[::-1].copy())[::-1]
    assert np.array_equal(keys, again)  # a key depends on its row only
    # several columns are hashed together, in order
    a, b = rng.integers(0, 9, (50, 2)).astype(np.int16), rng.integers(0, 9, (50, 2)).astype(np.int16)
    assert not np.array_equal(store.row_keys(a, b), store.row_keys(b, a))


def test_assign_splits_fractions_and_independence_of_dict_order():
    keys = store.mix64(np.arange(200_000, dtype=np.uint64))
    names, codes = store.assign_splits(keys, {"train": 0.8, "validation": 0.1, "test": 0.1})
    names2, codes2 = store.assign_splits(keys, {"test": 0.1, "validation": 0.1, "train": 0.8})
    assert names == names2 and np.array_equal(codes, codes2)
    frac = {n: float(np.mean(codes == i)) for i, n in enumerate(names)}
    sd = np.sqrt(0.1 * 0.9 / len(keys))
    assert abs(frac["test"] - 0.1) < 5 * sd and abs(frac["validation"] - 0.1) < 5 * sd
    # equal keys, equal splits; a split of fraction 0 gets nothing, fraction 1 everything
    _, c = store.assign_splits(np.repeat(keys[:100], 3), {"a": 0.5, "b": 0.5})
    assert np.all(c.reshape(100, 3) == c.reshape(100, 3)[:, :1])
    _, c = store.assign_splits(keys[:1000], {"a": 0.0, "b": 1.0})
    assert np.all(c == 1)


@pytest.mark.parametrize("bad", [{}, {"train": 0.5}, {"train": 0.8, "test": 0.3}, {"tr ain": 1.0}, {"x": -0.1, "y": 1.1}])
def test_check_splits_rejects_bad_fractions(bad):
    with pytest.raises(InputError):
        store.check_splits(bad)


@pytest.mark.parametrize("text, expected", [("0/1", (0, 1)), ("3/4", (3, 4)), (" 1 / 2 ", (1, 2))])
def test_parse_shard(text, expected):
    assert store.parse_shard(text) == expected


@pytest.mark.parametrize("text", ["4/4", "1", "a/b", "-1/3", "1/0", "1/2/3", ""])
def test_parse_shard_rejects_malformed(text):
    with pytest.raises(InputError, match="shard"):
        store.parse_shard(text)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 10_000), count=st.integers(1, 50))
def test_shard_ranges_partition_the_indices(n, count):
    ranges = [store.shard_range(n, i, count) for i in range(count)]
    assert [i for r in ranges for i in r] == list(range(n))


def _toy_rows(indices: np.ndarray) -> tuple[dict, np.ndarray]:
    """Toy task: example i has key derived from i % 700 (so there are duplicates)."""
    return ({"x": indices, "seq": [list(range(int(i) % 5)) for i in indices]},
            store.mix64((indices % 700).astype(np.uint64)))


def _write(path, chunks, **kw):
    with store.DatasetWriter(path, **kw) as writer:
        for chunk in chunks:
            writer.add(*_toy_rows(chunk))
        writer.finish(config={"task": "toy", "name": "toy", "config": {"a": 1}}, vocab=["a", "b"])
    return store.read_dataset(path)


def test_writer_dedupes_keeps_first_and_splits_never_share_a_key(tmp_path):
    ds = _write(tmp_path / "d", [np.arange(0, 450), np.arange(450, 1000)])
    xs = {name: list(split["x"]) for name, split in ds.splits.items()}
    ids = {name: set(split["id"]) for name, split in ds.splits.items()}
    all_x = sorted(x for v in xs.values() for x in v)
    assert all_x == list(range(700))  # first occurrence of each key, in generation order
    for name, v in xs.items():
        assert v == sorted(v)
    names = list(ids)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            assert not ids[names[i]] & ids[names[j]]
    assert ds.config["rows_generated"] == 1000 and ds.config["duplicates_dropped"] == 300
    assert sum(ds.config["counts"].values()) == 700
    # the id is the key and the split is the one assign_splits gives
    key = int(ds.splits["train"]["id"][0], 16)
    names_, codes = store.assign_splits(np.array([key], dtype=np.uint64), ds.config["splits"])
    assert names_[codes[0]] == "train"


def test_writer_output_is_independent_of_batching(tmp_path):
    a = _write(tmp_path / "a", [np.arange(1000)])
    b = _write(tmp_path / "b", [np.arange(i, min(i + 37, 1000)) for i in range(0, 1000, 37)])
    for name in ("train", "validation", "test"):
        fa = (tmp_path / "a" / name / "data-00000-of-00001.arrow").read_bytes()
        fb = (tmp_path / "b" / name / "data-00000-of-00001.arrow").read_bytes()
        assert fa == fb
    assert a.fingerprint == b.fingerprint


def test_writer_is_atomic_and_refuses_to_clobber(tmp_path):
    out = tmp_path / "d"
    with pytest.raises(RuntimeError):
        with store.DatasetWriter(out) as writer:
            writer.add(*_toy_rows(np.arange(10)))
            raise RuntimeError("boom")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    _write(out, [np.arange(10)])
    with pytest.raises(InputError, match="exists"):
        _write(out, [np.arange(10)])
    ds = _write(out, [np.arange(20)], overwrite=True)
    assert sum(len(s) for s in ds.splits.values()) == 20
    with pytest.raises(DataError, match="no rows"):
        with store.DatasetWriter(tmp_path / "empty") as writer:
            writer.finish(config={}, vocab=[])
    assert not (tmp_path / "empty").exists()


def test_fingerprint_tracks_config_and_vocab():
    base = store.fingerprint({"a": 1}, ["x", "y"])
    assert base == store.fingerprint({"a": 1}, ["x", "y"])
    assert base != store.fingerprint({"a": 2}, ["x", "y"])
    assert base != store.fingerprint({"a": 1}, ["y", "x"])


def test_merge_equals_single_run(tmp_path):
    single = _write(tmp_path / "single", [np.arange(1000)])
    shard_dirs = []
    for i in range(3):
        r = store.shard_range(1000, i, 3)
        d = tmp_path / f"s{i}"
        with store.DatasetWriter(d) as writer:
            writer.add(*_toy_rows(np.arange(r.start, r.stop)))
            writer.finish(config={"task": "toy", "name": "toy", "config": {"a": 1}, "shard": {"index": i, "count": 3}},
                          vocab=["a", "b"])
        shard_dirs.append(d)
    merged = store.read_dataset(store.merge(shard_dirs[::-1], tmp_path / "merged"))
    for name in single.splits:
        assert single.splits[name].to_dict() == merged.splits[name].to_dict()
    cfg_single = json.loads((tmp_path / "single" / "config.json").read_text())
    cfg_merged = json.loads((tmp_path / "merged" / "config.json").read_text())
    assert cfg_single == cfg_merged
    with pytest.raises(InputError, match="cover"):
        store.merge(shard_dirs[:2], tmp_path / "partial")
    assert not (tmp_path / "partial").exists()


def test_merge_refuses_shards_of_different_recipes(tmp_path):
    dirs = []
    for i, a in enumerate((1, 2)):
        d = tmp_path / f"s{i}"
        with store.DatasetWriter(d) as writer:
            writer.add(*_toy_rows(np.arange(i * 10, i * 10 + 10)))
            writer.finish(config={"task": "toy", "config": {"a": a}, "shard": {"index": i, "count": 2}}, vocab=[])
        dirs.append(d)
    with pytest.raises(FingerprintMismatch):
        store.merge(dirs, tmp_path / "m")


def test_read_dataset_rejects_foreign_directories(tmp_path):
    with pytest.raises(DataError, match="missing"):
        store.read_dataset(tmp_path)
    ds = _write(tmp_path / "d", [np.arange(5)])
    with pytest.raises(FingerprintMismatch):
        ds.check_fingerprint("0" * 16, "the model")
    assert "StoredDataset(" in repr(ds)
