"""Activation store: positions by role, values against TransformerLens's own cache, resume, dtypes, fingerprints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from searchprobe.acts import (ActivationStore, StorePlan, extract_activations, find_positions, hook_names_for,
                              model_fingerprint)
from searchprobe.errors import FingerprintMismatch, InputError
from searchprobe.tasks.maze.tokens import role_code

TOML = """task = "maze"
rows = 3
cols = 3
generator = "dfs"
n = {n}
seed = {seed}
traces = ["bfs", "astar"]
token_format = "aotp"

[endpoints]
min_path_len = 2
{extra}
[splits]
train = 0.8
validation = 0.1
test = 0.1
"""


def make_run(root: Path, n: int = 240, seed: int = 0, init_seed: int = 0, extra: str = "") -> Path:
    """A tiny run directory: a 3×3 maze dataset and an untrained 1-layer model saved like `train_run` does."""
    from searchprobe.tasks.maze.dataset import generate_from_toml
    from searchprobe.tasks.store import read_dataset
    from searchprobe.train.checkpoint import save_weights
    from searchprobe.train.model import ModelConfig, build_model

    root.mkdir(parents=True, exist_ok=True)
    toml = root / "task.toml"
    toml.write_text(TOML.format(n=n, seed=seed, extra=extra))
    data = root / "data"
    generate_from_toml(toml, out=data, n=n, overwrite=True)
    stored = read_dataset(data)
    vocab = list(stored.vocab) if isinstance(stored.vocab, list) else list(stored.vocab["tokens"])
    max_len = max(len(t) for t in stored.splits["train"]["tokens"])
    cfg = ModelConfig(n_layers=1, d_model=16, n_heads=2, init_seed=init_seed).with_data(len(vocab), max_len + 8)
    model = build_model(cfg)
    run = root / "run"
    run.mkdir()
    save_weights(model, run / "model.safetensors")
    from dataclasses import asdict

    (run / "config.json").write_text(json.dumps({
        "format": "searchprobe-run/1", "model": asdict(cfg), "task": "maze", "vocab": vocab,
        "dataset": {"path": str(data), "name": stored.config.get("name"), "fingerprint": stored.fingerprint,
                    "tokenizer": stored.config.get("tokenizer"), "task_config": stored.config.get("config")}}))
    return run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("acts"))


def test_find_positions_matches_a_python_scan():
    rng = np.random.default_rng(0)
    roles = [rng.integers(0, 6, size=rng.integers(1, 12)) for _ in range(50)]
    codes = [0, 3, 5, 7]
    got = find_positions(roles, codes)
    for i, seq in enumerate(roles):
        for j, c in enumerate(codes):
            expect = list(seq).index(c) if c in list(seq) else -1
            assert got[i, j] == expect


def test_role_codes_come_from_the_task_tokenizer():
    from searchprobe.tasks.base import get_task

    task = get_task("maze")
    assert [task.role_code(r) for r in ("target", "path:3")] == [role_code("target"), role_code("path:3")]
    with pytest.raises(InputError, match="unknown token role 'nope'"):
        task.role_code("nope")


def _store(run_dir: Path, name: str, **kw):
    from searchprobe.tasks.maze.probe_labels import maze_store_labels
    from searchprobe.train.run import load_run

    run = load_run(run_dir)
    plan_kw = dict(hooks=("blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "blocks.0.attn.hook_z"),
                   roles=("origin", "target", "path_start", "path:0", "path:2"), split="train", max_examples=100,
                   shard_size=32)
    plan_kw.update(kw.pop("plan", {}))
    plan = StorePlan(**plan_kw)
    fp = kw.pop("fingerprint", None) or model_fingerprint(run_dir)
    store = extract_activations(run.model, run.data, plan, run_dir / "acts" / name, fp,
                                label_fn=lambda rows: maze_store_labels(rows, 9, 2, 3), **kw)
    return run, plan, store


def test_store_matches_run_with_cache_at_role_positions(tiny_run):
    run, plan, store = _store(tiny_run, "a")
    assert store.n_examples == 100 and store.meta["complete"] and store.meta["n_shards"] == 4
    rows = run.dataset.splits["train"].select(range(100))
    for i in (0, 37, 99):  # one sequence at a time, no padding: TransformerLens's own cache is the reference
        tokens = torch.tensor([rows[i]["tokens"]], dtype=torch.long)
        _, cache = run.model.run_with_cache(tokens)
        roles = np.asarray(rows[i]["roles"])
        for role in plan.roles:
            hits = np.nonzero(roles == role_code(role))[0]
            for hook in plan.hooks:
                got = store.features(hook, role)[i]
                if not len(hits):
                    assert not got.any()
                    continue
                ref = cache[hook][0, hits[0]].reshape(-1).numpy()
                np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    assert store.features("blocks.0.attn.hook_z", "target").shape == (100, 16)  # heads flattened
    np.testing.assert_array_equal(store.example_index, np.arange(100))
    assert store.example_ids() == list(rows["id"])
    tgt = store.label("target_cell")
    assert tgt.tolist() == list(rows["label_target_cell"])
    assert store.tokens[0, 1] == rows[0]["tokens"][list(rows[0]["roles"]).index(role_code("target"))]


def test_resume_after_interruption_gives_the_same_store(tiny_run):
    _, _, full = _store(tiny_run, "full")
    _, _, part = _store(tiny_run, "resumed", stop_after_shards=2)
    assert not json.loads((part.path / "meta.json").read_text())["complete"]
    assert len(list(part.path.glob("shard-*.safetensors"))) == 2
    first = (part.path / "shard-00000.safetensors").stat().st_mtime_ns
    _, _, resumed = _store(tiny_run, "resumed")
    assert (part.path / "shard-00000.safetensors").stat().st_mtime_ns == first  # kept, not recomputed
    for hook in full.hooks:
        np.testing.assert_array_equal(full.features(hook, "target"), resumed.features(hook, "target"))


def test_half_precision_storage(tiny_run):
    _, _, f32 = _store(tiny_run, "f32")
    _, _, f16 = _store(tiny_run, "f16", plan={"dtype": "float16"})
    _, _, bf16 = _store(tiny_run, "bf16", plan={"dtype": "bfloat16"})
    a = f32.features("blocks.0.hook_resid_post", "path:0")
    np.testing.assert_allclose(f16.features("blocks.0.hook_resid_post", "path:0"), a, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(bf16.features("blocks.0.hook_resid_post", "path:0"), a, rtol=2e-2, atol=2e-2)
    assert (f16.path / "shard-00000.safetensors").stat().st_size < (f32.path / "shard-00000.safetensors").stat().st_size


def test_store_from_another_model_is_refused(tiny_run):
    _store(tiny_run, "fp")
    with pytest.raises(FingerprintMismatch, match="was written by model"):
        _store(tiny_run, "fp", fingerprint="0123456789abcdef")
    with pytest.raises(FingerprintMismatch, match="not by this model"):
        ActivationStore.open(tiny_run / "acts" / "fp", expected_fingerprint="0123456789abcdef")


def test_unknown_hook_lists_the_valid_ones(tiny_run):
    with pytest.raises(InputError, match=r"hook 'blocks.9.hook_resid_pre' does not exist.*blocks.0.hook_resid_post"):
        _store(tiny_run, "bad", plan={"hooks": ("blocks.9.hook_resid_pre",)})
    assert "blocks.0.hook_mlp_out" in hook_names_for(1)


def test_the_collector_reads_mixed_lengths_as_each_sequence_alone(tiny_run):
    """`collect` pads sequences of different lengths into one batch; every real position must read
    what TransformerLens's cache gives for that sequence alone, absent positions zeros, heads flattened."""
    from searchprobe.acts import collect
    from searchprobe.intervene.ablation import mean_activations
    from searchprobe.train.run import load_run

    run = load_run(tiny_run)
    rows = run.dataset.splits["train"].select(range(12))
    seqs = [np.asarray(t[: 8 + i]) for i, t in enumerate(rows["tokens"])]  # 12 lengths
    rng = np.random.default_rng(0)
    positions = np.stack([rng.integers(0, len(s), 3) for s in seqs])
    positions[::4, 1] = -1
    hooks = ["blocks.0.hook_resid_post", "blocks.0.attn.hook_z"]
    got = collect(run.model, seqs, hooks, positions, batch_size=5, pad_id=run.data.pad_id)
    sums = {h: 0 for h in hooks}
    for i, seq in enumerate(seqs):
        _, cache = run.model.run_with_cache(torch.as_tensor(seq[None], dtype=torch.long))
        for h in hooks:
            ref = cache[h][0].reshape(len(seq), -1)
            sums[h] = sums[h] + ref.sum(0)
            for r, p in enumerate(positions[i]):
                want = torch.zeros(ref.shape[-1]) if p < 0 else ref[p]
                torch.testing.assert_close(got[h][i, r], want, atol=1e-5, rtol=1e-5)
    means = mean_activations(run.model, seqs, hooks, batch_size=5)  # pads left out of the mean
    total = sum(len(s) for s in seqs)
    for h in hooks:
        torch.testing.assert_close(means[h].reshape(-1), sums[h] / total, atol=1e-5, rtol=1e-5)
