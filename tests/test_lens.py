"""Logit lens / tuned lens: readouts equal the model's logits, statistics match brute-force references."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from searchprobe.errors import FingerprintMismatch
from searchprobe.lens import (
    CellVocab,
    TunedLens,
    emergence_layers,
    legal_next_mask,
    model_fingerprint,
    read_through_unembed,
    readout_stats,
    residual_stack,
    run_lens,
    solution_predictions,
)

TASK = """task = "maze"
rows = 3
cols = 3
generator = "dfs"
n = 160
seed = 3
traces = ["bfs"]
token_format = "aotp"
[endpoints]
min_path_len = 2
[splits]
train = 0.7
validation = 0.15
test = 0.15
"""

def make_tiny_run(root: Path, steps: int = 2) -> Path:
    """A 3x3 maze dataset and a nano model trained for a couple of steps (seconds on a CPU)."""
    from searchprobe.tasks.maze.dataset import generate_from_toml
    from searchprobe.train.loop import TrainConfig
    from searchprobe.train.run import ExperimentConfig, train_run

    (root / "task.toml").write_text(TASK)
    data = generate_from_toml(root / "task.toml", out=root / "data", overwrite=True)
    cfg = ExperimentConfig(data=str(data), model={"preset": "nano", "n_layers": 2},
                           train=TrainConfig(steps=steps, batch_size=16, warmup_steps=1, eval_every=steps),
                           eval_examples=4)
    train_run(cfg, root / "run", progress=False)
    return root / "run"

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    return make_tiny_run(tmp_path_factory.mktemp("lens"))

@pytest.fixture(scope="module")
def loaded(tiny_run):
    from searchprobe.train.run import load_run

    return load_run(tiny_run)

def _batch(loaded, n=12):
    data = loaded.adapter.token_data("test", limit=n)
    ds = loaded.adapter._split("test").select(range(len(data)))
    roles = np.zeros_like(data.tokens)
    for i, r in enumerate(ds["roles"]):
        roles[i, : len(r)] = r
    return data, roles, ds

def test_last_layer_readout_equals_model_logits(loaded):
    data, _, _ = _batch(loaded)
    tokens = torch.from_numpy(data.tokens)
    with torch.no_grad():
        logits = loaded.model(tokens)
        stack, labels, hooks = residual_stack(loaded.model, tokens)
        readout = read_through_unembed(loaded.model, stack)
    assert labels[-1] == "final_post" and hooks[-1] == "blocks.1.hook_resid_post"
    assert labels[:4] == ["0_pre", "0_mid", "1_pre", "1_mid"]
    torch.testing.assert_close(readout[-1], logits, rtol=1e-5, atol=1e-5)

def test_readout_matches_transformer_lens_and_a_manual_layer_norm(loaded):
    """Every layer: our readout == TL's accumulated_resid(apply_ln=True) + unembed == a hand-written LN + W_U."""
    model = loaded.model
    data, _, _ = _batch(loaded, 6)
    tokens = torch.from_numpy(data.tokens)
    with torch.no_grad():
        stack, _, _ = residual_stack(model, tokens)
        ours = read_through_unembed(model, stack)
        _, cache = model.run_with_cache(tokens)
        tl_normed = cache.accumulated_resid(incl_mid=True, apply_ln=True)
        tl = model.unembed(tl_normed.reshape(1, -1, tl_normed.shape[-1])).reshape(ours.shape)
        sd = {k: v for k, v in model.state_dict().items()}
        w = next(v for k, v in sd.items() if k.startswith("ln_final") and k.endswith(".weight"))
        b = next(v for k, v in sd.items() if k.startswith("ln_final") and k.endswith(".bias"))
        x = stack.double()
        centred = x - x.mean(-1, keepdim=True)
        normed = centred / torch.sqrt(centred.pow(2).mean(-1, keepdim=True) + model.cfg.eps)
        manual = (normed * w.double() + b.double()) @ model.W_U.double() + model.b_U.double()
    torch.testing.assert_close(ours, tl, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.double(), manual, rtol=1e-4, atol=1e-4)

def test_solution_predictions_select_exactly_the_solution_tokens():
    tokens = np.array([[5, 6, 7, 8, 9, 0], [1, 2, 3, 4, 0, 0]])
    lengths = np.array([5, 4])
    starts = np.array([3, 2])
    roles = np.arange(12).reshape(2, 6)
    p = solution_predictions(tokens, lengths, starts, roles)
    brute = [(b, t) for b in range(2) for t in range(5) if starts[b] <= t + 1 < lengths[b]]
    assert list(zip(p.example.tolist(), p.position.tolist())) == brute
    assert p.target.tolist() == [tokens[b, t + 1] for b, t in brute]
    assert p.role.tolist() == [roles[b, t] for b, t in brute]

def test_readout_stats_match_a_numpy_reference():
    rng = np.random.default_rng(0)
    S, P, V = 3, 7, 9
    lp = torch.log_softmax(torch.from_numpy(rng.normal(size=(S, P, V))), -1).float()
    targets = torch.from_numpy(rng.integers(0, V, P))
    is_cell = torch.from_numpy(np.array([0, 1, 1, 1, 1, 1, 1, 0, 0], dtype=bool))
    legal = torch.zeros(P, V, dtype=torch.bool)
    legal[:, 1] = legal[:, 3] = True
    toward = torch.full((P,), 3)
    stats = readout_stats(lp, lp[-1], targets, legal, toward, is_cell)
    p = lp.double().exp().numpy()
    for s in range(S):
        for i in range(P):
            t = int(targets[i])
            order = sorted(range(V), key=lambda v: -p[s, i, v])
            assert stats.rank_correct[s, i] == order.index(t)
            assert stats.prob_correct[s, i] == pytest.approx(p[s, i, t], rel=1e-5)
            kl = sum(p[-1, i, v] * (np.log(p[-1, i, v]) - np.log(p[s, i, v])) for v in range(V))
            assert stats.kl_to_final[s, i] == pytest.approx(kl, abs=1e-5)
            assert stats.entropy[s, i] == pytest.approx(-sum(q * np.log(q) for q in p[s, i]), rel=1e-5)
            assert stats.legal_mass[s, i] == pytest.approx(p[s, i, 1] + p[s, i, 3], rel=1e-5)
            assert stats.illegal_mass[s, i] == pytest.approx(p[s, i, [2, 4, 5, 6]].sum(), rel=1e-5)
            assert stats.toward_mass[s, i] == pytest.approx(p[s, i, 3], rel=1e-5)
            assert stats.away_mass[s, i] == pytest.approx(p[s, i, 1], rel=1e-4, abs=1e-6)
    assert np.all(stats.kl_to_final[-1] == 0)

def test_legal_next_mask_matches_networkx_grid_neighbours():
    import networkx as nx

    rng = np.random.default_rng(1)
    R, C = 4, 5
    vocab = ["<PAD>", "x"] + [f"({r},{c})" for r in range(R) for c in range(C)]
    cells = CellVocab.from_vocab(vocab)
    P = 30
    conn = rng.random((P, 2, R, C)) < 0.6
    conn[:, 0, R - 1, :] = False
    conn[:, 1, :, C - 1] = False
    current = np.stack([rng.integers(0, R, P), rng.integers(0, C, P)], 1)
    current[0] = (-1, -1)  # not a cell: nothing is legal
    mask = legal_next_mask(current, conn, cells)
    for i in range(P):
        g = nx.Graph()
        for r in range(R):
            for c in range(C):
                if conn[i, 0, r, c]:
                    g.add_edge((r, c), (r + 1, c))
                if conn[i, 1, r, c]:
                    g.add_edge((r, c), (r, c + 1))
        cur = tuple(current[i])
        expected = set(g.neighbors(cur)) if i and cur in g else set()
        got = {tuple(cells.cell_of[v]) for v in np.flatnonzero(mask[i])}
        assert got == expected

def test_emergence_layers_match_a_loop():
    rng = np.random.default_rng(2)
    top1 = rng.integers(0, 3, (6, 200))
    top1[:, :20] = top1[-1:, :20]  # some settled from layer 0
    got = emergence_layers(top1)
    for i in range(top1.shape[1]):
        first = next(s for s in range(6) if all(top1[k, i] == top1[-1, i] for k in range(s, 6)))
        assert got[i] == first
    assert (got[:20] == 0).all()

@pytest.fixture(scope="module")
def lens_dir(tiny_run) -> Path:
    return run_lens(tiny_run, limit=40, tuned_examples=60, tuned_steps=40, tuned_lr=1e-2, progress=False)


def test_run_lens_writes_results_and_tuned_lens_beats_logit_lens(tiny_run, lens_dir):
    out = lens_dir
    summary = json.loads((out / "summary.json").read_text())
    report = json.loads((out / "report.json").read_text())
    assert report["stage"] == "lens" and report["sections"]
    for section in report["sections"]:
        for fig in section["figures"]:
            assert (out / fig["path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    labels = summary["labels"]
    assert labels == ["0_pre", "0_mid", "1_pre", "1_mid", "final_post"]
    logit_kl = summary["logit"]["overall"]["kl_to_final"]
    tuned_kl = summary["tuned"]["overall"]["kl_to_final"]
    assert logit_kl[-1] == pytest.approx(0, abs=1e-6) and tuned_kl[-1] == pytest.approx(0, abs=1e-6)
    # trained to do exactly this: on held-out data the translators bring middle layers closer to the final
    assert np.mean(tuned_kl[1:-1]) < np.mean(logit_kl[1:-1])
    n = summary["n_predictions"]
    assert sum(summary["logit"]["emergence"]["per_prediction_hist"]) == n
    assert sum(summary["role_counts"]) == n
    assert summary["roles"][0] == "path_start"
    # a second call reuses the outputs (idempotent) and the saved lens loads for this model
    assert run_lens(tiny_run, limit=40, progress=False) == out
    lens = TunedLens.load(out / "tuned_lens.safetensors", model_fingerprint(tiny_run))
    assert lens.weight_.shape[0] == len(labels) - 1

def test_tuned_lens_for_another_model_is_refused(tiny_run, lens_dir, tmp_path):
    with pytest.raises(FingerprintMismatch, match="trained for model"):
        TunedLens.load(tiny_run / "lens" / "tuned_lens.safetensors", "0" * 64)
    # the CLI: a run whose weights changed under its lens → one line, exit 2
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_run, other)
    from safetensors.torch import load_file, save_file

    weights = load_file(str(other / "model.safetensors"))
    name = next(iter(weights))
    weights[name] = weights[name] + 1.0
    save_file(weights, str(other / "model.safetensors"))
    (other / "lens" / "report.json").unlink()
    proc = subprocess.run([sys.executable, "-m", "searchprobe", "lens", str(other), "--limit", "5", "--no-progress"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: tuned lens") and len(proc.stderr.strip().splitlines()) == 1

def test_lens_cli_on_a_directory_without_model(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    proc = subprocess.run([sys.executable, "-m", "searchprobe", "lens", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "model.safetensors is missing" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_role_groups_name_and_order_roles_like_the_tokenizers():
    from searchprobe.lens import role_groups
    from searchprobe.tasks.chess.tokens import role_code as chess_code
    from searchprobe.tasks.maze.tokens import role_code

    names = ["path:3", "path_start", "path:0", "path:15", "path:12", "path:1"]
    order, groups = role_groups(np.array([role_code(n) for n in names]))
    assert order == ["path_start", "path:0", "path:1", "path:3", "path:≥12"]
    assert [order[g] for g in groups] == ["path:3", "path_start", "path:0", "path:≥12", "path:≥12", "path:1"]
    chess_names = ["sq:e4", "stm", "sq:a1"]
    order, groups = role_groups(np.array([chess_code(n) for n in chess_names]), task="chess")
    assert [order[g] for g in groups] == chess_names
