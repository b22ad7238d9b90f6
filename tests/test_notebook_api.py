"""The notebook API: the README's "From Python" snippet runs as written, activations and labels line
up by example id, the activation cache follows the model, and the short reprs."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
TOML = """task = "maze"
rows = 4
cols = 4
generator = "dfs"
n = 12000
seed = 0
token_format = "grid"
[endpoints]
min_path_len = 2
[splits]
train = 0.8
validation = 0.1
test = 0.1
"""


def _save_run(run: Path, data: Path, init_seed: int) -> None:
    """An untrained 3-layer model saved as `train_run` saves one."""
    from searchprobe.tasks.store import read_dataset
    from searchprobe.train.checkpoint import save_weights
    from searchprobe.train.model import ModelConfig, build_model
    from searchprobe.files import vocab_list

    stored = read_dataset(data)
    vocab = vocab_list(stored.vocab, data / "vocab.json")
    cfg = ModelConfig(n_layers=3, d_model=16, n_heads=2, init_seed=init_seed).with_data(len(vocab), 64)
    run.mkdir(exist_ok=True)
    save_weights(build_model(cfg), run / "model.safetensors")
    (run / "config.json").write_text(json.dumps({
        "format": "searchprobe-run/1", "model": asdict(cfg), "task": stored.config["task"], "vocab": vocab,
        "dataset": {"path": str(data), "name": stored.config.get("name"), "fingerprint": stored.fingerprint,
                    "tokenizer": stored.config.get("tokenizer"), "task_config": stored.config.get("config")}}))


@pytest.fixture(scope="module")
def maze_run(tmp_path_factory) -> Path:
    from searchprobe.tasks.base import get_task

    root = tmp_path_factory.mktemp("notebook")
    (root / "task.toml").write_text(TOML)
    get_task("maze").generate(root / "task.toml", out=root / "data")
    _save_run(root / "run", root / "data", init_seed=0)
    return root / "run"


def _readme_snippet() -> str:
    text = README.read_text()
    section = text[text.index("## From Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_snippet_runs_as_written(maze_run):
    code = _readme_snippet().replace('"runs/maze5"', repr(str(maze_run)))
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 — the README's own example
    X, y, maps = scope["X"], scope["y"], scope["maps"]
    assert X.shape == (1000, 16) and y.shape == (1000,) and set(np.unique(y)) <= set(range(16))
    assert maps["resid_role_map"].shape[0] == 3 and len(maps["resid_role_keys"]) == maps["resid_role_map"].shape[1]


def test_activations_and_labels_line_up_by_example_id(maze_run, tmp_path):
    """On a shuffled copy of the test split, row i of the activations, of the labels and of the
    dataset is the same maze: its id, and the target cell both in the label and in the target token."""
    from datasets import load_from_disk

    import searchprobe as sp
    from searchprobe.tasks.maze.tokens import parse_cell

    source = Path(json.loads((maze_run / "config.json").read_text())["dataset"]["path"])
    shuffled = tmp_path / "shuffled"
    splits = load_from_disk(str(source))
    splits["test"] = splits["test"].shuffle(seed=7).flatten_indices()
    splits.save_to_disk(str(shuffled))
    for name in ("config.json", "vocab.json"):
        shutil.copy(source / name, shuffled / name)
    run = sp.load_run(maze_run, data=shuffled)
    acts = run.activations(["resid_pre"], roles=["target"], split="test", n=200)
    labels = run.labels("target_cell", split="test", n=200)
    rows = run.dataset.splits["test"].select(range(200))
    assert acts.ids == list(rows["id"]) != list(load_from_disk(str(source))["test"]["id"][:200])
    tokens = acts.store.tokens[:, 0]
    cols = int(run.dataset.config["config"]["cols"])
    for i in range(200):
        r, c = parse_cell(run.vocab[tokens[i]])
        assert labels[i] == r * cols + c == int(rows[i]["target"][0]) * cols + int(rows[i]["target"][1])


def test_the_activation_cache_follows_the_model(maze_run, tmp_path):
    """A second call is served from the cache; new weights (a retrained model) recompute it."""
    import searchprobe as sp

    run_dir = tmp_path / "run"
    shutil.copytree(maze_run, run_dir)
    run = sp.load_run(run_dir)
    first = run.activations(["blocks.1.hook_resid_pre"], roles=["origin"], split="test", n=50)
    stamp = (first.store.path / "shard-00000.safetensors").stat().st_mtime_ns
    again = run.activations(["blocks.1.hook_resid_pre"], roles=["origin"], split="test", n=50)
    assert (again.store.path / "shard-00000.safetensors").stat().st_mtime_ns == stamp
    before = first["resid_pre", 1, "origin"]
    np.testing.assert_array_equal(before, again["blocks.1.hook_resid_pre", "origin"])
    _save_run(run_dir, Path(run.dataset.path), init_seed=1)  # "retrained": other weights
    retrained = sp.load_run(run_dir).activations(["blocks.1.hook_resid_pre"], roles=["origin"], split="test", n=50)
    assert retrained.store.path == first.store.path
    assert not np.allclose(retrained["resid_pre", 1, "origin"], before)


def test_short_reprs(maze_run):
    import searchprobe as sp

    run = sp.load_run(maze_run)
    text = repr(run)
    assert text.startswith("LoadedRun(") and "maze" in text and len(text) < 200
    acts = run.activations(["resid_pre"], roles=["target"], split="test", n=20)
    assert repr(acts).startswith("Activations(n=20") and len(repr(acts)) < 200
    assert len(repr(run.data)) < 300 and len(repr(run.dataset)) < 300


def test_labels_need_a_step_role_for_per_step_labels(maze_run):
    import searchprobe as sp
    from searchprobe.errors import InputError

    run = sp.load_run(maze_run)
    with pytest.raises(InputError, match="per solution step"):
        run.labels("next_cell", split="test", n=20)
    nxt = run.labels("next_cell", split="test", n=20, role="path:0")
    path = run.dataset.splits["test"].select(range(20))["path"]
    assert [int(v) for v in nxt] == [p[1][0] * 4 + p[1][1] for p in path]
    with pytest.raises(InputError, match="unknown label 'nope'"):
        run.labels("nope", split="test", n=20)


def test_the_bridge_has_a_tokenizer_whose_ids_round_trip(maze_run):
    """TransformerLens's own `to_str_tokens` / `to_tokens` / `to_string` on the loaded bridge give the
    maze tokenizer's strings and the stored ids back exactly, with no BOS prepended."""
    import torch

    import searchprobe as sp

    run = sp.load_run(maze_run)
    rows = run.dataset.splits["test"].select(range(5))
    for ids in rows["tokens"]:
        strings = run.model.to_str_tokens(np.asarray(ids))
        assert strings == [run.vocab[i] for i in ids]
        assert run.tokenizer.to_strings(np.asarray(ids)) == " ".join(strings)  # the task's own tokenizer agrees
        text = run.model.to_string(torch.as_tensor(ids))
        assert run.model.to_tokens(text)[0].tolist() == list(ids)
        assert run.model.to_str_tokens(text) == strings
