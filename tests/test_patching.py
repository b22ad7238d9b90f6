"""Counterfactual pairs (checked with networkx) and batched patching (checked against TransformerLens)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from searchprobe.errors import InputError
from searchprobe.intervene._fixtures import tiny_setup
from searchprobe.intervene.attribution import attribution_sweep, correlation
from searchprobe.intervene.pairs import make_maze_pairs, pairs_from_dataset, require_equal_lengths
from searchprobe.intervene.patching import check_hook, logit_diff, patch_sweep, sweep_pairs


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return tiny_setup(tmp_path_factory.getbasetemp())


def _graph(conn: np.ndarray) -> nx.Graph:
    R, C = conn.shape[1:]
    g = nx.grid_2d_graph(R, C)
    g.remove_edges_from([((r, c), (r + 1, c)) for r in range(R - 1) for c in range(C) if not conn[0, r, c]])
    g.remove_edges_from([((r, c), (r, c + 1)) for r in range(R) for c in range(C - 1) if not conn[1, r, c]])
    return g


@pytest.mark.parametrize("kind", ["target", "wall", "origin"])
def test_pairs_match_networkx_shortest_paths(setup, kind):
    pairs = pairs_from_dataset(setup.stored, setup.tokenizer, split="train", kind=kind, n=40, seed=3)
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
    with pytest.raises(InputError, match="pair kind"):
        pairs_from_dataset(setup.stored, setup.tokenizer, kind="teleport")
    pairs = pairs_from_dataset(setup.stored, setup.tokenizer, split="train", kind="target", n=60)
    if len(pairs.length_groups()) > 1:
        with pytest.raises(InputError, match="lengths .* one length"):
            require_equal_lengths(pairs)
    with pytest.raises(InputError, match="equal token length"):
        patch_sweep(setup.model, np.zeros((2, 5)), np.zeros((2, 6)), [1, 1], [2, 2])


def _one_group(setup, n=4, kind="target"):
    pairs = pairs_from_dataset(setup.stored, setup.tokenizer, split="train", kind=kind, n=60, seed=1)
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
    pairs = pairs_from_dataset(setup.stored, setup.tokenizer, split="train", kind="wall", n=12)
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


def test_cli_bad_pairs_exit_2(tmp_path, capsys):
    from searchprobe.cli import main

    assert main(["patch", str(tmp_path), "--pairs", "teleport"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "teleport" in err and len(err.strip().splitlines()) == 1
    assert main(["patch", str(tmp_path), "--heads", "banana"]) == 2
    err = capsys.readouterr().err
    assert "'banana' is not LAYER.HEAD" in err and len(err.strip().splitlines()) == 1
    assert main(["patch", str(tmp_path), "--sweeps", "resid,neurons"]) == 2
    assert "unknown sweep 'neurons'" in capsys.readouterr().err


@pytest.mark.slow
def test_run_patching_writes_the_report_contract(tmp_path):
    import json

    from searchprobe.intervene import run_patching
    from searchprobe.train.loop import TrainConfig
    from searchprobe.train.run import ExperimentConfig, train_run

    s = tiny_setup(tmp_path)
    cfg = ExperimentConfig(data=str(s.stored.path), model={"preset": "nano"}, eval_examples=8,
                           train=TrainConfig(steps=2, batch_size=8, warmup_steps=1, eval_every=2, checkpoint_every=2))
    train_run(cfg, tmp_path / "run", progress=False)
    out = run_patching(tmp_path / "run", n=6, n_ablate=4, n_retarget=4, n_probe=50, retarget_layers=[0, 1],
                       ablation_components=("head",), erase=True, erase_layers=[1], progress=False)
    report = json.loads((out / "report.json").read_text())
    assert report["stage"] == "patching" and report["summary"]
    for section in report["sections"]:
        for fig in section["figures"]:
            assert (out / fig["path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        for table in section["tables"]:
            assert all(len(row) == len(table["columns"]) for row in table["rows"])
    from searchprobe.cli import main

    assert main(["patch", str(tmp_path / "run"), "--heads", "0.9"]) == 2  # nano: 4 heads
    with np.load(out / "maps.npz") as maps:
        assert maps["resid_role_map"].shape[0] == 2 and maps["heads_map"].shape == (2, 4)
