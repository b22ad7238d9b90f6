"""Logit lens / tuned lens: readouts equal the model's logits, statistics match brute-force references."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from searchprobe.errors import FingerprintMismatch, InputError
from searchprobe.fingerprints import model_fingerprint
from searchprobe.lens import (
    LogitLens,
    TunedLens,
    emergence_layers,
    lens_readout,
    read_through_unembed,
    readout_stats,
    residual_stack,
    role_groups,
    run_lens,
    solution_predictions,
)
from searchprobe.tasks.base import get_task
from searchprobe.tasks.maze.lens_view import CellVocab, legal_next_mask

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
    data = loaded.data.token_data("test", limit=n)
    ds = loaded.data.split("test").select(range(len(data)))
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
    assert summary["model_fingerprint"] == model_fingerprint(tiny_run) and len(summary["model_fingerprint"]) == 16
    # solution positions are the path cells (path:k), not <PATH_START>: the count-weighted mean of those groups
    counts = np.array(summary["role_counts"], dtype=float) * [r != "path_start" for r in summary["roles"]]
    by_role = np.array(summary["logit"]["by_role"]["top1_acc"], dtype=float)
    expected = np.nansum(by_role * counts, 1) / counts.sum()
    np.testing.assert_allclose(summary["logit"]["solution_positions"]["top1_acc"], expected, rtol=1e-9)
    assert "path_positions" not in summary["logit"]
    # the maze's candidate-solution view and its beliefs drawn on the maze
    assert all(v is not None for v in summary["logit"]["overall"]["legal_mass"]) and summary["candidate_view"]
    headings = [sec["heading"] for sec in report["sections"]]
    assert "Candidate solutions" in headings and "Per-layer beliefs on the maze" in headings
    beliefs = report["sections"][headings.index("Per-layer beliefs on the maze")]
    assert len(beliefs["figures"]) == 2 * len(labels)
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
    maze, chess = get_task("maze"), get_task("chess")
    names = ["path:3", "path_start", "path:0", "path:15", "path:12", "path:1"]
    order, groups = role_groups(np.array([maze.role_code(n) for n in names]), maze)
    assert order == ["path_start", "path:0", "path:1", "path:3", "path:≥12"]
    assert [order[g] for g in groups] == ["path:3", "path_start", "path:0", "path:≥12", "path:≥12", "path:1"]
    chess_names = ["sq:e4", "stm", "sq:a1"]
    order, groups = role_groups(np.array([chess.role_code(n) for n in chess_names]), chess)
    assert [order[g] for g in groups] == chess_names
    order, groups = role_groups(np.array([chess.role_code("stm"), 10**6]), chess)  # a code the task does not name
    assert order == ["stm", "role1000000"] and groups.tolist() == [0, 1]


def test_logit_and_tuned_lens_share_one_call_signature(loaded):
    """lens(model, h) reads a stack of every lens layer; lens(model, h[l], idx=l) reads layer l alone."""
    model = loaded.model
    data, _, _ = _batch(loaded, 4)
    with torch.no_grad():
        stack, _, _ = residual_stack(model, torch.from_numpy(data.tokens))
    S, d = stack.shape[0], stack.shape[-1]
    tuned = TunedLens()
    gen = torch.Generator().manual_seed(0)
    tuned.weight_ = torch.eye(d) + 0.05 * torch.randn(S - 1, d, d, generator=gen)
    tuned.bias_ = 0.05 * torch.randn(S - 1, 1, d, generator=gen)
    with torch.no_grad():
        logit_all = LogitLens()(model, stack)
        torch.testing.assert_close(logit_all, read_through_unembed(model, stack))
        tuned_all = tuned(model, stack)
        assert tuned_all.shape == logit_all.shape
        for lens, whole in ((LogitLens(), logit_all), (tuned, tuned_all)):
            for layer in (0, S - 2, S - 1, -1):
                torch.testing.assert_close(lens(model, stack[layer], idx=layer), whole[layer], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(tuned_all[-1], logit_all[-1])  # the final layer passes unchanged
        assert not torch.allclose(tuned_all[0], logit_all[0])
    with pytest.raises(InputError, match="trained for"):
        tuned(model, stack[1:])
    with pytest.raises(InputError, match="out of range"):
        tuned(model, stack[0], idx=S)


def test_tuned_lens_is_a_scikit_learn_estimator(loaded):
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    lens = TunedLens(steps=3, lr=1e-2, batch_size=8)
    assert lens.get_params() == {"steps": 3, "lr": 1e-2, "batch_size": 8, "seed": 0, "weight_decay": 0.0}
    assert clone(lens).get_params() == lens.get_params()
    with pytest.raises(NotFittedError):
        check_is_fitted(lens)
    model = loaded.model
    data, _, _ = _batch(loaded, 4)
    with torch.no_grad():
        stack, _, _ = residual_stack(model, torch.from_numpy(data.tokens))
    with pytest.raises(NotFittedError):
        lens(model, stack)
    h = stack[:, :, :3].reshape(stack.shape[0], -1, stack.shape[-1])
    with torch.no_grad():
        final = torch.log_softmax(read_through_unembed(model, h[-1]).float(), -1)
    assert lens.fit(model, h[:-1], final) is lens
    check_is_fitted(lens)
    assert lens.weight_.shape == (stack.shape[0] - 1, stack.shape[-1], stack.shape[-1]) and len(lens.loss_history_) == 3
    assert all(p.requires_grad for p in model.parameters())  # the model is left trainable as it was
    with pytest.raises(InputError, match="steps > 0"):
        TunedLens(steps=0).fit(model, h[:-1], final)


def test_readout_without_a_task_view_has_no_candidate_masses(loaded):
    """A task without a LensContext (chess, say) gets NaN candidate columns; the other statistics stand."""
    data, roles, _ = _batch(loaded, 6)
    readout = lens_readout(loaded.model, data.tokens, data.lengths, data.solution_start, roles)
    assert np.isnan(readout.logit.legal_mass).all() and np.isnan(readout.logit.toward_mass).all()
    assert np.isfinite(readout.logit.kl_to_final).all() and readout.tuned is None and readout.beliefs == {}


def test_maze_lens_context_gives_legal_next_cells_and_belief_pictures(loaded):
    task = loaded.task
    rows = loaded.data.rows("test", 6, ("roles",) + task.lens_columns)
    ctx = task.lens_context(rows, loaded.vocab)
    cells = CellVocab.from_vocab(loaded.vocab)
    assert (ctx.candidates == cells.is_cell).all() and ctx.description
    assert ctx.belief_example == int(np.argmax([len(p) for p in rows["path"]]))
    tokens = np.asarray(rows["tokens"][0])
    start = int(rows["solution_start"][0])
    current = tokens[start:-1]  # path cells (the last one predicts <PATH_END>)
    legal = ctx.legal_next(np.zeros(len(current), dtype=int), current)
    conn = np.stack([np.stack([np.asarray(r) for r in c]) for c in rows["connections"][0]]).astype(bool)
    expected = legal_next_mask(cells.cell_of[current], np.repeat(conn[None], len(current), 0), cells)
    assert (legal == expected).all()
    path = [tuple(map(int, c)) for c in np.asarray(rows["path"][0]).reshape(-1, 2)]
    for step in range(1, len(path)):  # the true next cell is always a legal move
        assert legal[step - 1, cells.id_of[path[step]]]
    S, steps, V = 5, len(path), len(loaded.vocab)
    probs = np.full((S, steps, V), 1.0 / V, dtype=np.float32)
    pictures = ctx.belief_pictures({"example": 0, "labels": [f"L{s}" for s in range(S)], "positions": [],
                                    "targets": [], "logit": probs})
    assert list(pictures.figures) == ["logit"] and len(pictures.figures["logit"]) == S
    assert all(png[:8] == b"\x89PNG\r\n\x1a\n" for png, _ in pictures.figures["logit"])


def test_importing_the_lens_package_does_not_import_torch():
    code = "import sys, searchprobe.lens as L; assert 'torch' not in sys.modules; assert callable(L.role_groups)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_lens_modules_name_no_task():
    import re

    import searchprobe.lens
    import searchprobe.report.lens_figures

    files = list(Path(searchprobe.lens.__file__).parent.glob("*.py")) + [Path(searchprobe.report.lens_figures.__file__)]
    pattern = re.compile(r'"maze"|"chess"|tasks\.maze|tasks\.chess|is_maze')
    assert [f.name for f in files if pattern.search(f.read_text())] == []


def test_run_lens_on_a_chess_run_has_no_candidate_view(tmp_path):
    """The stage is task-neutral: a chess run gets the curves, the role table and emergence, and no
    candidate-solution or belief section (the chess task has no LensContext)."""
    from searchprobe.cli import main

    toml = tmp_path / "c.toml"
    toml.write_text('task = "chess"\nname = "c"\nn = 40\nseed = 1\n[puzzles]\nmate_in = 1\nmaterial = ["KQvK", "KRvK"]\n'
                    'unique_first_move = false\nattacker = "random"\n[tokens]\nrelative = true\n'
                    '[splits]\ntrain = 0.8\nvalidation = 0.1\ntest = 0.1\n')
    assert main(["generate", str(toml), "--out", str(tmp_path / "ds")]) == 0
    assert main(["train", "--data", str(tmp_path / "ds"), "--model", "nano", "--steps", "2", "--out",
                 str(tmp_path / "run"), "--no-progress"]) == 0
    out = run_lens(tmp_path / "run", limit=8, tuned_examples=16, tuned_steps=3, progress=False)
    summary = json.loads((out / "summary.json").read_text())
    report = json.loads((out / "report.json").read_text())
    chess = get_task("chess")
    assert summary["task"] == "chess" and "candidate_view" not in summary
    assert summary["roles"] and all(not r.startswith("role") for r in summary["roles"])
    assert summary["roles"] == sorted(summary["roles"], key=chess.role_code)
    assert all(v is None for v in summary["logit"]["overall"]["legal_mass"])
    assert summary["logit"]["solution_positions"]["top1_acc"]
    headings = [sec["heading"] for sec in report["sections"]]
    assert headings == ["Lens curves", "Layer × position role", "Emergence layer"]
