"""Maze datasets end to end: records, tokens, leakage-free splits, determinism, shards, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from searchprobe.cli import main
from searchprobe.search.trace import Trace
from searchprobe.tasks import store
from searchprobe.tasks.maze.config import MazeConfig
from searchprobe.tasks.maze.dataset import (
    batch_from_records, generate_batch, generate_dataset, generate_from_toml, load_maze_dataset,
    maze_content_keys, tokenizer_for,
)
from searchprobe.tasks.maze.traces import traces_for_batch

SPLITS = ("train", "validation", "test")


def read_split(path: Path, split: str) -> pa.Table:
    with pa.memory_map(str(path / split / "data-00000-of-00001.arrow")) as source:
        return pa.ipc.open_stream(source).read_all()


def same_content(a: Path, b: Path) -> bool:
    """Row-for-row equal Arrow content (NaN equal to NaN, via JSON)."""
    return all(json.dumps(read_split(a, s).to_pydict()) == json.dumps(read_split(b, s).to_pydict()) for s in SPLITS)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    cfg = MazeConfig(rows=4, cols=5, generator="dfs_percolation", p=0.2, n=700, seed=3, traces=("bfs", "astar"),
                     batch_size=256)
    out = generate_dataset(cfg, tmp_path_factory.mktemp("ds") / "maze")
    return cfg, out


def test_records_round_trip_to_the_generated_mazes(small):
    cfg, out = small
    ds = load_maze_dataset(out)
    assert ds.config["name"] == cfg.name and ds.config["task"] == "maze"
    tok = tokenizer_for(cfg)
    assert ds.vocab == tok.vocab
    for split in SPLITS:
        rows = ds.splits[split][:]
        idx = np.asarray(rows["index"])
        stored = batch_from_records(rows, cfg.rows, cfg.cols)
        fresh = generate_batch(cfg, idx)
        for field in ("connections", "origin", "target", "path_len", "n_shortest", "seed"):
            assert np.array_equal(getattr(stored, field), getattr(fresh, field)), field
        assert all(stored[b] == fresh[b] for b in range(len(idx)))
        # tokens decode back to the maze, and roles are the tokenizer's
        for b in range(0, len(idx), 25):
            maze = tok.decode(np.asarray(rows["tokens"][b]), shape=(cfg.rows, cfg.cols))
            assert maze == fresh[b]
            assert np.array_equal(tok.roles_of(np.asarray(rows["tokens"][b]), shape=(cfg.rows, cfg.cols)), rows["roles"][b])
            assert rows["tokens"][b][rows["solution_start"][b] - 1] == tok.token_to_id["<PATH_START>"]
        # ids are the content keys; traces are the searches' traces
        keys = maze_content_keys(fresh)
        assert [f"{k:016x}" for k in keys.tolist()] == rows["id"]
        traces = traces_for_batch(fresh, ["bfs"])["bfs"]
        for b in range(0, len(idx), 50):
            assert Trace.from_record(rows["trace_bfs"][b]) == traces[b]
        assert all(len(p) == n for p, n in zip(rows["label_path_cell"], rows["path_len"]))


def test_splits_share_no_maze_and_duplicates_are_dropped(tmp_path):
    cfg = MazeConfig(rows=2, cols=3, n=2000, seed=0)  # 15 trees x 30 endpoint pairs: many duplicates
    ds = load_maze_dataset(generate_dataset(cfg, tmp_path / "tiny"))
    ids = {s: ds.splits[s]["id"] for s in SPLITS}
    all_ids = [i for s in SPLITS for i in ids[s]]
    assert len(all_ids) == len(set(all_ids))  # dedupe
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not set(ids[a]) & set(ids[b])
    content = set()
    for s in SPLITS:
        rows = ds.splits[s][:]
        for c, o, t in zip(rows["connections"], rows["origin"], rows["target"]):
            content.add((json.dumps(c), tuple(o), tuple(t)))
    assert len(content) == len(all_ids)  # distinct ids are distinct mazes
    assert ds.config["duplicates_dropped"] == 2000 - len(all_ids) > 1000
    # the first occurrence (lowest index) of each maze is the one kept
    firsts = {}
    batch = generate_batch(cfg, np.arange(2000))
    for i, k in enumerate(maze_content_keys(batch).tolist()):
        firsts.setdefault(f"{k:016x}", i)
    kept = {i: x for s in SPLITS for i, x in zip(ds.splits[s]["id"], ds.splits[s]["index"])}
    assert kept == firsts


def test_same_bytes_whatever_the_batch_size_or_worker_count(tmp_path, small):
    cfg, out = small
    other = generate_dataset(cfg.replace(batch_size=97), tmp_path / "b", workers=2)
    for split in SPLITS:
        assert (out / split / "data-00000-of-00001.arrow").read_bytes() == (other / split / "data-00000-of-00001.arrow").read_bytes()
    assert json.loads((out / "config.json").read_text()) == json.loads((other / "config.json").read_text())


def test_merged_shards_equal_a_single_run(tmp_path, small):
    cfg, out = small
    shards = [generate_dataset(cfg.replace(batch_size=50 + 20 * i), tmp_path / f"s{i}", shard=(i, 3)) for i in range(3)]
    meta = json.loads((shards[1] / "config.json").read_text())
    assert meta["shard"] == {"index": 1, "count": 3, "start": 233, "stop": 466}
    merged = store.merge(shards, tmp_path / "merged")
    assert same_content(out, merged)
    assert json.loads((out / "config.json").read_text()) == json.loads((merged / "config.json").read_text())
    assert (out / "README.md").read_text() == (merged / "README.md").read_text()


def test_trace_token_format(tmp_path):
    cfg = MazeConfig(rows=3, cols=3, n=50, token_format="aotp_trace", token_trace="bfs")
    ds = load_maze_dataset(generate_dataset(cfg, tmp_path / "t"))
    tok = tokenizer_for(cfg)
    rows = ds.splits["train"][:5]
    batch = generate_batch(cfg, np.asarray(rows["index"]))
    traces = traces_for_batch(batch, ["bfs"])["bfs"]
    for b in range(5):
        got = tok.decode_trace(np.asarray(rows["tokens"][b]), shape=(3, 3))
        ref = traces[b].select(*[k for k in set(got.kind.tolist())])
        assert np.array_equal(got.node, ref.node)
        assert rows["trace_start"][b] > 0


def test_generate_from_toml_overrides(tmp_path):
    out = generate_from_toml("tasks/maze-dfs-4x4.toml", out=tmp_path / "o", n=300, seed=5)
    meta = json.loads((out / "config.json").read_text())
    assert meta["config"]["n"] == 300 and meta["config"]["seed"] == 5
    assert meta["name"].startswith("maze-dfs-g4x4-n300-s5-h")


def _toml(tmp_path: Path, **fields) -> Path:
    base = {"task": "maze", "rows": 4, "cols": 4, "generator": "dfs", "n": 50}
    base.update(fields)
    lines = [f"{k} = {json.dumps(v)}" for k, v in base.items() if not isinstance(v, dict)]
    for k, v in base.items():
        if isinstance(v, dict):
            lines.append(f"[{k}]")
            lines += [f"{kk} = {json.dumps(vv)}" for kk, vv in v.items()]
    path = tmp_path / "recipe.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("fields, extra, match", [
    (dict(rows=1), [], "rows=1"),
    (dict(cols=33), [], "cols=33"),
    (dict(n=0), [], "n=0"),
    ({}, ["--n", "-3"], "--n -3"),
    (dict(generator="labyrinth"), [], "labyrinth"),
    (dict(endpoints={"min_path_len": 17}), [], "cannot be met"),
    ({}, ["--shard", "3/3"], "--shard '3/3'"),
    ({}, ["--shard", "x"], "--shard 'x'"),
    (dict(task="cheese"), [], "unknown"),
])
def test_cli_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, fields, extra, match):
    recipe = _toml(tmp_path, **fields)
    out = tmp_path / "out"
    code = main(["generate", str(recipe), "--out", str(out), "--quiet", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and match in err[0], err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.toml"]


def test_cli_generates_shards_and_refuses_to_clobber(tmp_path, capsys):
    recipe = _toml(tmp_path, n=120)
    single = tmp_path / "single"
    assert main(["generate", str(recipe), "--out", str(single), "--quiet", "--workers", "1"]) == 0
    assert capsys.readouterr().out.strip() == str(single)
    shards = []
    for i in range(2):
        d = tmp_path / f"shard{i}"
        assert main(["generate", str(recipe), "--out", str(d), "--shard", f"{i}/2", "--quiet"]) == 0
        shards.append(d)
    assert same_content(single, store.merge(shards, tmp_path / "merged"))
    assert main(["generate", str(recipe), "--out", str(single), "--quiet"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["generate", str(recipe), "--out", str(single), "--quiet", "--overwrite", "--n", "60"]) == 0
    assert sum(len(s) for s in load_maze_dataset(single).splits.values()) == 60


def test_cli_rare_window_in_worker_processes_is_a_clean_error(tmp_path, capsys):
    recipe = _toml(tmp_path, rows=5, cols=5, generator="hallway", n=8, batch_size=4, endpoints={"min_path_len": 25})
    out = tmp_path / "out"
    assert main(["generate", str(recipe), "--out", str(out), "--quiet", "--workers", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "widen the window" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.toml"]


def test_labels_can_be_left_out(tmp_path):
    lean = load_maze_dataset(generate_dataset(MazeConfig(rows=3, cols=4, n=40, labels=False), tmp_path / "lean"))
    full = load_maze_dataset(generate_dataset(MazeConfig(rows=3, cols=4, n=40), tmp_path / "full"))
    lean_cols, full_cols = set(lean.splits["train"].column_names), set(full.splits["train"].column_names)
    assert not any(c.startswith("label_") for c in lean_cols)
    assert {c for c in full_cols if not c.startswith("label_")} == lean_cols
    assert "label_on_path" in full_cols and lean.fingerprint != full.fingerprint
