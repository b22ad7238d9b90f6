"""Counterfactual pairs (checked with networkx), batched patching (checked against TransformerLens),
and the patch stage's option checks (all before any model work or file)."""

from __future__ import annotations

import re

import networkx as nx
import numpy as np
import pytest
import torch

from searchprobe.errors import DataError, InputError
from searchprobe.intervene.attribution import attribution_sweep, correlation
from searchprobe.intervene.pairs import Pairs, require_equal_lengths
from searchprobe.intervene.patching import check_hook, logit_diff, patch_sweep, sweep_pairs


@pytest.fixture(scope="module")
def setup(tiny):
    return tiny


def _pairs(s, kind="target", n=40, seed=0, split="train") -> Pairs:
    return s.task.make_pairs(s.stored, s.tokenizer, split=split, kind=kind, n=n, seed=seed)


def _graph(conn: np.ndarray) -> nx.Graph:
    R, C = conn.shape[1:]
    g = nx.grid_2d_graph(R, C)
    g.remove_edges_from([((r, c), (r + 1, c)) for r in range(R - 1) for c in range(C) if not conn[0, r, c]])
    g.remove_edges_from([((r, c), (r, c + 1)) for r in range(R) for c in range(C - 1) if not conn[1, r, c]])
    return g


@pytest.mark.parametrize("kind", ["target", "wall", "origin"])
def test_pairs_match_networkx_shortest_paths(setup, kind):
    pairs = _pairs(setup, kind, n=40, seed=3)
    assert len(pairs) >= 10
    tok = setup.tokenizer
    end = tok.token_to_id["<PATH_END>"]
    for i in range(len(pairs)):
        for side, batch, answer in (("clean", pairs.clean, pairs.clean_answer), ("corrupt", pairs.corrupt, pairs.corrupt_answer)):
            g = _graph(batch.connections[i])
            o, t = tuple(int(v) for v in batch.origin[i]), tuple(int(v) for v in batch.target[i])
            ref = nx.shortest_path(g, o, t)
            path = [tuple(int(v) for v in c) for c in batch.path[i, : int(batch.path_len[i])]]
            assert path == ref
            k = int(pairs.decision_step[i])
            want = [tok.cell_ids[c] for c in ref] + [end]
            assert int(answer[i]) == want[k]
        assert pairs.clean_answer[i] != pairs.corrupt_answer[i]
        L = int(pairs.lengths[i])
        diff = np.flatnonzero(pairs.clean_tokens[i, :L] != pairs.corrupt_tokens[i, :L])
        roles = pairs.roles[i, diff]
        if kind == "target":
            assert diff.tolist() == [int(np.flatnonzero(pairs.roles[i] == 10)[0])]  # only the target token
        elif kind == "origin":
            assert set(roles.tolist()) <= {7, 32}  # origin token and path:0
        else:
            g0, g1 = _graph(pairs.clean.connections[i]), _graph(pairs.corrupt.connections[i])
            assert nx.is_tree(g1) and g0.number_of_edges() == g1.number_of_edges()
            removed = set(map(frozenset, g0.edges())) - set(map(frozenset, g1.edges()))
            clean_path = [tuple(int(v) for v in c) for c in pairs.clean.path[i, : int(pairs.clean.path_len[i])]]
            assert len(removed) == 1 and removed.pop() in set(map(frozenset, zip(clean_path, clean_path[1:])))
            assert diff.max() < int(pairs.prompt_len[i])  # the solution prefix is shared


def test_pairs_bad_input(setup):
    with pytest.raises(InputError, match="unknown pair kind 'teleport' for task 'maze'; allowed: target, wall, origin"):
        _pairs(setup, "teleport")
    with pytest.raises(InputError, match="no split 'dev'"):
        _pairs(setup, split="dev")
    pairs = _pairs(setup, "target", n=60)
    if len(pairs.length_groups()) > 1:
        with pytest.raises(InputError, match="lengths .* one length"):
            require_equal_lengths(pairs)
    with pytest.raises(InputError, match="equal token length"):
        patch_sweep(setup.model, np.zeros((2, 5)), np.zeros((2, 6)), [1, 1], [2, 2])


def _one_group(setup, n=4, kind="target"):
    pairs = _pairs(setup, kind, n=60, seed=1)
    T, idx = max(pairs.length_groups().items(), key=lambda kv: len(kv[1]))
    sub = pairs.subset(idx[:n])
    clean, corrupt = sub.dense()
    return sub, torch.as_tensor(clean), torch.as_tensor(corrupt), torch.as_tensor(sub.clean_answer), torch.as_tensor(sub.corrupt_answer)


def _tl_reference(model, clean, corrupt, ca, xa, setter, act_name, rows, columns):
    """TransformerLens's generic_activation_patch on the listed cells only (it runs one forward per cell)."""
    import pandas as pd
    from transformer_lens import patching as tlp

    _, cache = model.run_with_cache(clean)
    df = pd.DataFrame(rows, columns=columns)
    return tlp.generic_activation_patch(model, corrupt, cache, lambda lg: logit_diff(lg, ca, xa),
                                        getattr(tlp, setter), act_name, index_df=df, reduce="none").values.detach().numpy()


@pytest.mark.parametrize("sweep,setter,act_name", [
    ("resid", "layer_pos_patch_setter", "resid_pre"), ("mlp", "layer_pos_patch_setter", "mlp_out"),
    ("attn", "layer_pos_patch_setter", "attn_out"),
])
def test_position_sweeps_equal_transformer_lens(setup, sweep, setter, act_name):
    model = setup.model
    sub, clean, corrupt, ca, xa = _one_group(setup)
    T = clean.shape[1]
    tpos = int(np.flatnonzero((clean != corrupt)[0])[0])
    positions = sorted({0, tpos, tpos + 1, T - 2, T - 1})
    rows = [(layer, p) for layer in range(model.cfg.n_layers) for p in positions]
    ref = _tl_reference(model, clean, corrupt, ca, xa, setter, act_name, rows, ["layer", "pos"])
    mine = patch_sweep(model, clean, corrupt, ca, xa, sweep, token_budget=3000)
    got = np.stack([mine.logit_diff[layer, p] for layer, p in rows])
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
    norm = (mine.logit_diff.mean(-1) - mine.corrupt_ld.mean()) / (mine.clean_ld.mean() - mine.corrupt_ld.mean())
    np.testing.assert_allclose(mine.values, norm, atol=1e-6)
    with torch.no_grad():
        np.testing.assert_allclose(mine.clean_ld, logit_diff(model(clean), ca, xa).numpy(), atol=1e-5)
        np.testing.assert_allclose(mine.corrupt_ld, logit_diff(model(corrupt), ca, xa).numpy(), atol=1e-5)
    if sweep == "resid":  # layer 0 at the only differing position restores the clean run exactly
        assert mine.values[0, tpos] == pytest.approx(1.0, abs=1e-4)
        assert np.abs(mine.values[0, :tpos]).max() < 1e-5  # earlier positions carry no difference


def test_head_sweeps_equal_transformer_lens(setup):
    model = setup.model
    sub, clean, corrupt, ca, xa = _one_group(setup, n=4)
    L, H, T = model.cfg.n_layers, model.cfg.n_heads, clean.shape[1]
    rows = [(layer, h) for layer in range(L) for h in range(H)]
    ref = _tl_reference(model, clean, corrupt, ca, xa, "layer_head_vector_patch_setter", "z", rows, ["layer", "head"])
    mine = patch_sweep(model, clean, corrupt, ca, xa, "heads")
    np.testing.assert_allclose(mine.logit_diff.reshape(L * H, -1), ref, atol=1e-4, rtol=1e-4)
    positions = [T - 2, T - 1]
    rows = [(layer, p, h) for layer in range(L) for p in positions for h in (0, H - 1)]
    ref = _tl_reference(model, clean, corrupt, ca, xa, "layer_pos_head_vector_patch_setter", "z", rows,
                        ["layer", "pos", "head_index"])
    mine = patch_sweep(model, clean, corrupt, ca, xa, "heads_pos", positions=positions)
    got = np.stack([mine.logit_diff[layer, positions.index(p), h] for layer, p, h in rows])
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)


def test_sweep_pairs_groups_every_pair(setup):
    pairs = _pairs(setup, "wall", n=12)
    results = sweep_pairs(setup.model, pairs, "heads")
    assert sorted(np.concatenate([r.extra["pairs"] for r in results]).tolist()) == list(range(len(pairs)))
    for r in results:
        assert r.values.shape == (setup.model.cfg.n_layers, setup.model.cfg.n_heads)


def test_attribution_equals_transformer_lens_attribution_patch(setup):
    from transformer_lens.tools.analysis.attribution_patching import attribution_patch

    model = setup.model
    sub, clean, corrupt, ca, xa = _one_group(setup, n=6)
    ca = torch.full_like(ca, int(ca[0]))  # TL's metric sees one example at a time: share the answers
    xa = torch.full_like(xa, int(xa[0]))
    res = attribution_patch(model, clean, corrupt, lambda lg: lg[0, -1, ca[0]] - lg[0, -1, xa[0]])
    L, T, H = model.cfg.n_layers, clean.shape[1], model.cfg.n_heads
    ref_heads, ref_mlp = np.zeros((L, T, H)), np.zeros((L, T))
    for node, score in res.node_scores.items():
        if node.kind == "attn_head_out":
            ref_heads[node.layer, node.position, node.head] = score
        elif node.kind == "mlp_out":
            ref_mlp[node.layer, node.position] = score
    heads = attribution_sweep(model, clean, corrupt, ca, xa, "heads_pos")
    mlp = attribution_sweep(model, clean, corrupt, ca, xa, "mlp")
    np.testing.assert_allclose(heads.logit_diff[..., 0], ref_heads, atol=1e-5)
    np.testing.assert_allclose(mlp.logit_diff[..., 0], ref_mlp, atol=1e-5)
    exact = patch_sweep(model, clean, corrupt, ca, xa, "resid")
    approx = attribution_sweep(model, clean, corrupt, ca, xa, "resid")
    # first order is exact where nothing non-linear follows: resid_pre of layer 0 at the changed token
    assert correlation(exact.values, approx.values) > 0.5


def test_unknown_hook_and_sweep(setup):
    with pytest.raises(InputError, match="unknown hook name 'blocks.0.hook_resid_mystery'"):
        check_hook(setup.model, "blocks.0.hook_resid_mystery")
    check_hook(setup.model, "blocks.0.hook_resid_pre")
    sub, clean, corrupt, ca, xa = _one_group(setup, n=2)
    with pytest.raises(InputError, match="unknown sweep"):
        patch_sweep(setup.model, clean, corrupt, ca, xa, "neurons")
    with pytest.raises(InputError, match="layer 7 .* out of range"):
        patch_sweep(setup.model, clean, corrupt, ca, xa, "resid", layers=[7])


def test_pairs_subset_and_payloads(setup):
    pairs = _pairs(setup, "wall", n=12, seed=4)
    idx = np.array([3, 0, 5])
    sub = pairs.subset(idx)
    assert len(sub) == 3 and sub.kind == "wall" and sub.max_new == pairs.max_new == 3 * 3 + 1
    T = int(pairs.lengths[idx].max())
    np.testing.assert_array_equal(sub.clean_tokens, pairs.clean_tokens[idx, :T])
    np.testing.assert_array_equal(sub.source_rows, pairs.source_rows[idx])
    for side in ("clean", "corrupt"):  # the task's payloads follow the same rows
        a, b = getattr(sub, side), getattr(pairs, side)
        np.testing.assert_array_equal(a.connections, b.connections[idx])
        np.testing.assert_array_equal(a.path, b.path[idx])
    assert [len(p) for p in sub.prompts("corrupt")] == sub.prompt_len.tolist()
    with pytest.raises(InputError, match="unknown side"):
        sub.prompts("left")
    assert "kind='wall'" in repr(sub)


def test_role_aligned_keys_follow_the_task(setup):
    from searchprobe.intervene.stage import position_key, role_aligned, role_keys

    pairs = _pairs(setup, "target", n=30)
    keys = role_keys(setup.task, pairs)
    assert keys == ["adjlist_start", "adj", "adj_connector", "adj_separator", "adjlist_end", "origin_start", "origin",
                    "origin_end", "target_start", "target", "target_end", "path_start",
                    "path[earlier]", "path[-3]", "path[-2]", "path[-1]"]
    assert position_key(setup.task, 0, 9, 10, 5) == "path[-1]" and position_key(setup.task, 0, 5, 10, 5) == "path[earlier]"
    values, present = role_aligned(sweep_pairs(setup.model, pairs, "resid"), pairs, setup.task)
    assert values.shape == (setup.model.cfg.n_layers, len(present)) and set(present) <= set(keys)
    assert "path[-1]" in present and "target" in present


def _fake_run(path, task="maze", n_layers=2, n_heads=4):
    """A run directory with only its config.json: enough for every option check (no model, no data)."""
    import json

    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"task": task, "model": {"n_layers": n_layers, "d_model": 32,
                                                                          "n_heads": n_heads}}))
    return path


@pytest.mark.parametrize("options,message", [
    ({"pairs": "teleport"}, "unknown pair kind 'teleport' for task 'maze'; allowed: target, wall, origin"),
    ({"sweeps": ["resid", "neurons"]}, "unknown sweep 'neurons'"),
    ({"ablation_methods": ["bogus"]}, "--ablation-methods has unknown ablation method 'bogus'; allowed: zero, mean, resample"),
    ({"ablation_components": ["neuron"]}, "unknown ablation component 'neuron'"),
    ({"n": 0}, "counts must be positive integers, got n=0"),
    ({"n_probe": -1}, "n_probe=-1"),
    ({"retarget_layers": [0, 2]}, "layer 2 in retarget layers is out of range; allowed: 0..1"),
    ({"erase": True, "erase_layers": [5]}, "layer 5 in erase layers is out of range"),
    ({"heads": [(0, 9)]}, "head 9 in --heads is out of range; allowed: 0..3"),
    ({"heads": [(3, 0)]}, "layer 3 in --heads is out of range"),
])
def test_run_patching_checks_options_before_any_work(tmp_path, options, message):
    from searchprobe.intervene import run_patching

    run = _fake_run(tmp_path / "run")
    with pytest.raises(InputError, match=re.escape(message)):
        run_patching(run, **options)
    assert not (run / "patching").exists()


def test_run_patching_refuses_tasks_without_pairs_and_missing_runs(tmp_path):
    from searchprobe.intervene import run_patching
    from searchprobe.tasks import base

    class NoPairs(base.Task):
        name = "no_pairs_task"

    base.register_task(NoPairs())
    try:
        with pytest.raises(InputError, match="task 'no_pairs_task' does not support counterfactual pairs"):
            run_patching(_fake_run(tmp_path / "np", task="no_pairs_task"), retarget=False)
    finally:
        base._registered.pop("no_pairs_task", None)
    with pytest.raises(DataError, match="not a run directory"):
        run_patching(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists() and not (tmp_path / "np" / "patching").exists()


def test_cli_bad_options_exit_2(tmp_path, capsys):
    from searchprobe.cli import main

    run = str(_fake_run(tmp_path / "run"))
    assert main(["patch", run, "--pairs", "teleport"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "teleport" in err and len(err.strip().splitlines()) == 1
    assert main(["patch", run, "--heads", "banana"]) == 2
    err = capsys.readouterr().err
    assert "'banana' is not LAYER.HEAD" in err and len(err.strip().splitlines()) == 1
    assert main(["patch", run, "--sweeps", "resid,neurons"]) == 2
    assert "unknown sweep 'neurons'" in capsys.readouterr().err
    assert main(["patch", run, "--ablate", "--ablation-methods", "bogus"]) == 2
    assert "unknown ablation method 'bogus'" in capsys.readouterr().err
    assert main(["patch", run, "--heads", "0.9"]) == 2  # 4 heads
    assert "head 9 in --heads is out of range" in capsys.readouterr().err
    assert not (tmp_path / "run" / "patching").exists()


@pytest.mark.slow
def test_run_patching_writes_the_report_contract(tmp_path, tiny):
    import json

    from searchprobe.intervene import run_patching
    from searchprobe.train.loop import TrainConfig
    from searchprobe.train.run import ExperimentConfig, train_run

    cfg = ExperimentConfig(data=str(tiny.stored.path), model={"preset": "nano"}, eval_examples=8,
                           train=TrainConfig(steps=2, batch_size=8, warmup_steps=1, eval_every=2, checkpoint_every=2))
    train_run(cfg, tmp_path / "run", progress=False)
    out = run_patching(tmp_path / "run", n=6, n_ablate=4, n_retarget=4, n_probe=50, retarget_layers=[0, 1],
                       ablation_components=("head",), erase=True, erase_layers=[1], progress=False)

    def strict(name):  # strict JSON: a bare NaN / Infinity is an error
        return json.loads((out / name).read_text(), parse_constant=lambda c: pytest.fail(f"{name} holds {c}"))

    report, results = strict("report.json"), strict("results.json")
    assert report["stage"] == "patching" and report["summary"] and results["task"] == "maze"
    for section in report["sections"]:
        for fig in section["figures"]:
            assert (out / fig["path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        for table in section["tables"]:
            assert all(len(row) == len(table["columns"]) for row in table["rows"])
    ablation = next(s for s in report["sections"] if s["heading"].startswith("Ablations"))
    assert ablation["tables"][0]["columns"] == ["component", "method", "exact path", "Δ exact path", "valid steps",
                                                 "Δ valid steps"]
    assert results["resid"]["keys"][-1] == "path[-1]" and set(results["retarget"]["layers"]) == {"0", "1"}
    from searchprobe.cli import main

    assert main(["patch", str(tmp_path / "run"), "--heads", "0.9"]) == 2  # nano: 4 heads
    with np.load(out / "maps.npz") as maps:
        assert maps["resid_role_map"].shape[0] == 2 and maps["heads_map"].shape == (2, 4)


def test_the_default_pair_kind_is_the_tasks_first_with_a_corrupted_input(tmp_path):
    """Maze pairs of every kind have a donor (its first kind, "target"); chess "target" pairs have none,
    so sweeps default to its "king" pairs."""
    from searchprobe.intervene.stage import _plan

    options = dict(pairs=None, n=4, sweeps=["resid"], ablate=False, retarget=False, n_ablate=4, ablation_methods=["mean"],
                   ablation_components=["head"], n_retarget=4, retarget_layers=None, n_probe=10, heads=None, erase=False,
                   erase_layers=None)
    assert _plan(_fake_run(tmp_path / "m"), **options).pairs == "target"
    assert _plan(_fake_run(tmp_path / "c", task="chess"), **options).pairs == "king"
