"""Probes against scikit-learn, metrics against sklearn.metrics, the controls, and the probing stage end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score

from searchprobe.errors import FingerprintMismatch, InputError
from searchprobe.probe import LinearProbe, fit_batched, sklearn_reference
from searchprobe.probe.firehose import ProbeSplit, fit_label
from searchprobe.probe.labels import LabelSpec, bigram_types, control_targets
from searchprobe.probe.metrics import auroc_columns, average_precision_columns, bootstrap_ci

from test_acts import make_run


@pytest.fixture(scope="module")
def classification():
    return make_classification(n_samples=500, n_features=12, n_informative=6, n_classes=4, random_state=0)


def test_linear_probe_matches_sklearn_multiclass(classification):
    X, y = classification
    ours = LinearProbe("multiclass", C=0.5).fit(X, y)
    ref = sklearn_reference(X, y, "multiclass", C=0.5)
    scaler, logreg = ref[0], ref[1]
    np.testing.assert_allclose(ours.coef_, logreg.coef_ / scaler.scale_, atol=2e-3)
    assert abs(ours.score(X, y) - ref.score(X, y)) <= 0.01
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-3)
    assert ours.get_params()["C"] == 0.5 and repr(ours) == "LinearProbe(C=0.5)"  # sklearn's repr: non-defaults


def test_linear_probe_matches_sklearn_binary_and_ridge(classification):
    X, y = classification
    yb = (y == 2).astype(int)
    ours = LinearProbe("binary", C=0.2).fit(X, yb)
    ref = sklearn_reference(X, yb, "binary", C=0.2)
    np.testing.assert_allclose(ours.coef_, ref[1].coef_ / ref[0].scale_, atol=2e-3)
    assert abs(ours.score(X, yb) - ref.score(X, yb)) <= 0.01
    yr = X @ np.linspace(-1, 1, X.shape[1]) + np.random.default_rng(0).normal(size=len(X))
    ours = LinearProbe("ridge", C=0.05).fit(X, yr)
    ref = sklearn_reference(X, yr, "ridge", C=0.05)
    np.testing.assert_allclose(ours.coef_, ref[1].coef_ / ref[0].scale_, rtol=1e-6, atol=1e-8)
    assert ours.score(X, yr) == pytest.approx(ref.score(X, yr), abs=1e-9)


def test_batched_binary_family_matches_a_sklearn_loop():
    rng = np.random.default_rng(1)
    G, n, d, M = 3, 400, 10, 5
    X = rng.normal(size=(G, n, d)).astype(np.float32)
    W_true = rng.normal(size=(G, d, M))
    Y = (np.einsum("gnd,gdm->gnm", X, W_true) + rng.normal(size=(G, n, M)) > 0).astype(np.int64)
    C = 1.0
    W, b = fit_batched(X, Y, np.ones((1, n)), [1.0 / (C * n)], "binary", max_iter=300, tol=1e-7)
    for g in range(G):
        for m in range(M):
            ref = LogisticRegression(C=C, max_iter=1000).fit(X[g], Y[g, :, m])
            np.testing.assert_allclose(W[g, 0, :, m].numpy(), ref.coef_[0], atol=5e-3)
            assert b[g, 0, m].item() == pytest.approx(ref.intercept_[0], abs=5e-3)


def test_auroc_and_average_precision_match_sklearn_with_ties():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, size=(200, 6))
    scores = np.round(rng.normal(size=(200, 6)) + y, 1)  # rounding makes ties
    valid = rng.random((200, 6)) > 0.2
    auc = auroc_columns(y, scores)
    ap = average_precision_columns(y, scores)
    auc_v = auroc_columns(y, scores, valid)
    ap_v = average_precision_columns(y, scores, valid)
    for m in range(6):
        assert auc[m] == pytest.approx(roc_auc_score(y[:, m], scores[:, m]), abs=1e-12)
        assert ap[m] == pytest.approx(average_precision_score(y[:, m], scores[:, m]), abs=1e-12)
        v = valid[:, m]
        assert auc_v[m] == pytest.approx(roc_auc_score(y[v, m], scores[v, m]), abs=1e-12)
        assert ap_v[m] == pytest.approx(average_precision_score(y[v, m], scores[v, m]), abs=1e-12)


def test_bootstrap_ci_matches_the_normal_approximation():
    rng = np.random.default_rng(3)
    p, n = 0.7, 2000
    correct = (rng.random((2, n)) < p).astype(float)
    lo, hi = bootstrap_ci(correct, n_boot=2000, seed=0)
    mean = correct.mean(1)
    half = 1.96 * np.sqrt(mean * (1 - mean) / n)
    np.testing.assert_allclose(hi - lo, 2 * half, rtol=0.15)
    assert np.all(lo < mean) and np.all(mean < hi)


def test_control_task_is_a_fixed_label_per_token_type():
    rng = np.random.default_rng(4)
    tokens = rng.integers(0, 30, size=500)
    y = rng.integers(0, 9, size=500)
    y[:20] = -1
    train = rng.random(500) < 0.8
    spec = LabelSpec("t", "target", "multiclass", "t", n_classes=9)
    ctrl = control_targets(spec, y, tokens, train, seed=0)
    assert np.all(ctrl[:20] == -1)
    for t in np.unique(tokens[20:]):
        assert len(np.unique(ctrl[20:][tokens[20:] == t])) == 1  # one label per input type
    assert set(np.unique(ctrl[20:])) <= set(np.unique(y[train & (y >= 0)]))
    np.testing.assert_array_equal(ctrl, control_targets(spec, y, tokens, train, seed=0))


def test_bigram_control_needs_conjunctions_a_one_token_control_does_not():
    """Why the probing stage's control types are token pairs: on a representation that holds the
    previous and current token additively (no conjunctions), a linear probe (scikit-learn's) learns a
    random label per token perfectly, but not a random label per pair."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    previous, current = rng.integers(-1, 12, size=3000), rng.integers(0, 12, size=3000)
    types = bigram_types(previous, current)
    pairs = set(zip(previous.tolist(), current.tolist()))
    assert len(np.unique(types)) == len(pairs) and types.min() >= 0  # one id per distinct pair
    features = np.concatenate([np.eye(13)[previous + 1], np.eye(12)[current]], axis=1)
    y = rng.integers(0, 6, size=3000)
    train = np.arange(3000) < 2400
    spec = LabelSpec("t", "target", "multiclass", "t", n_classes=6)

    def held_out_accuracy(labels):
        probe = LogisticRegression(C=100.0, max_iter=5000).fit(features[train], labels[train])
        return probe.score(features[~train], labels[~train])

    assert held_out_accuracy(control_targets(spec, y, current, train, seed=0)) == 1.0
    assert held_out_accuracy(control_targets(spec, y, types, train, seed=0)) < 0.6


def test_split_is_by_example_and_folds_cover_training():
    split = ProbeSplit.by_example(101, folds=3, seed=0)
    assert not np.any(split.train & split.test) and np.all(split.train | split.test)
    assert set(np.unique(split.fold[split.train])) == {0, 1, 2} and np.all(split.fold[split.test] == -1)


def test_fit_label_finds_a_planted_signal_and_its_baselines():
    rng = np.random.default_rng(5)
    n, d = 600, 8
    y = rng.integers(0, 3, size=n)
    X_signal = rng.normal(size=(n, d)) + 2.0 * np.eye(d)[y]
    X_noise = rng.normal(size=(n, d))
    X = np.stack([X_signal, X_noise]).astype(np.float32)
    Y = np.stack([y, y])
    split = ProbeSplit.by_example(n, seed=1)
    spec = LabelSpec("t", "target", "multiclass", "t", n_classes=3)
    res = fit_label(spec, X, Y, split, n_boot=300)
    ref = LogisticRegression(max_iter=1000).fit(X_signal[split.train], y[split.train]).score(X_signal[split.test], y[split.test])
    assert abs(res.accuracy[0] - ref) <= 0.03
    assert res.accuracy[1] < 0.5 and res.ci_low[0] < res.accuracy[0] < res.ci_high[0]
    counts = np.bincount(y[split.train], minlength=3)
    assert res.majority[0] == pytest.approx(np.mean(y[split.test] == counts.argmax()))


# --- the probing stage end to end --------------------------------------------------------------

@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    from searchprobe.probe import run_probes

    run = make_run(tmp_path_factory.mktemp("probe"), n=240)
    out = run_probes(run, labels=["target_cell", "next_cell", "on_path", "connectivity", "dist_to_target"],
                     hooks=["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post"],
                     positions=["target", "path_start", "path:0", "path:1"], max_examples=150, n_boot=100,
                     progress=False)
    return run, out


def test_run_probes_writes_table_heatmaps_directions_and_report(probed):
    import csv

    from safetensors.numpy import load_file

    run, out = probed
    rows = list(csv.DictReader((out / "results.csv").open()))
    labels = {r["label"] for r in rows}
    assert labels == {"target_cell", "next_cell", "on_path", "connectivity", "dist_to_target"}
    acc = [r for r in rows if r["metric"] == "accuracy"]
    assert {r["role"] for r in acc if r["label"] == "next_cell"} == {"path:0", "path:1"}  # per-step labels only at path:k
    for r in acc:
        assert float(r["selectivity"]) == pytest.approx(float(r["value"]) - float(r["control"]), abs=1e-5)
        assert float(r["ci_low"]) <= float(r["value"]) + 1e-9 <= float(r["ci_high"]) + 2e-9
    # the target token's own position: the target cell is its token, so it is decodable from resid_pre
    tgt = next(r for r in acc if r["label"] == "target_cell" and r["role"] == "target" and r["hook"] == "blocks.0.hook_resid_pre")
    assert float(tgt["value"]) > 0.9
    assert {"auroc", "average_precision"} <= {r["metric"] for r in rows if r["label"] == "connectivity"}
    assert (out / "results.parquet").exists() and (out / "heat_target_cell.png").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["stage"] == "probes" and report["sections"][1]["figures"]
    for fig in report["sections"][1]["figures"]:
        assert (out / fig["path"]).exists()
    # the saved direction reproduces the probe's predictions
    from searchprobe.acts import ActivationStore

    directions = load_file(str(out / "directions.safetensors"))
    key = "blocks.0.hook_resid_pre|target|target_cell"
    store = ActivationStore.open(next((run / "acts").glob("trained-*")))
    x = store.features("blocks.0.hook_resid_pre", "target")
    z = (x - directions[f"{key}/mean"]) / directions[f"{key}/std"]
    pred = (z @ directions[f"{key}/weight"] + directions[f"{key}/bias"]).argmax(1)
    assert np.mean(pred == store.label("target_cell")) > 0.9
    with np.load(out / "directions" / "target_cell.L0.npz", allow_pickle=False) as z:  # the steering stage's format
        assert str(z["role"]) == "target" and str(z["hook"]) == "blocks.0.hook_resid_pre"
        raw = ((x - z["mean"]) @ z["coef"] + z["intercept"]).argmax(1)
        np.testing.assert_array_equal(raw, pred)


def test_bad_input_is_one_line(probed, tmp_path):
    from searchprobe.cli import main
    from searchprobe.probe import run_probes

    run, _ = probed
    with pytest.raises(InputError, match=r"hook 'blocks.3.hook_resid_pre' does not exist.*valid: blocks.0.hook_resid_pre"):
        run_probes(run, hooks=["blocks.3.hook_resid_pre"], progress=False)
    with pytest.raises(InputError, match=r"position role 'path:3' is absent from \d+ of 150 sequences"):
        run_probes(run, positions=["target", "path:3"], max_examples=150, progress=False)
    with pytest.raises(InputError, match="unknown label 'nope'"):
        run_probes(run, labels=["nope"], progress=False)
    assert main(["probe", str(run), "--hooks", "blocks.7.hook_mlp_out"]) == 2


def test_constant_label_and_foreign_store_are_refused(tmp_path, capsys):
    from searchprobe.cli import main
    from searchprobe.probe import run_probes

    run = make_run(tmp_path / "fixed", n=120, extra="origin = [0, 0]\n")
    with pytest.raises(InputError, match="label 'origin_cell' is constant in the training split"):
        run_probes(run, labels=["origin_cell"], hooks=["blocks.0.hook_resid_pre"], positions=["target"],
                   max_examples=80, n_boot=0, progress=False)
    # a store written by another model: swap in other weights, keep the store
    from dataclasses import replace

    from searchprobe.config import from_dict
    from searchprobe.train.checkpoint import save_weights
    from searchprobe.train.model import ModelConfig, build_model

    cfg = from_dict(ModelConfig, json.loads((run / "config.json").read_text())["model"], "test")
    save_weights(build_model(replace(cfg, init_seed=7)), run / "model.safetensors")
    with pytest.raises(FingerprintMismatch):
        run_probes(run, labels=["target_cell"], hooks=["blocks.0.hook_resid_pre"], positions=["target"],
                   max_examples=80, n_boot=0, progress=False)
    capsys.readouterr()
    code = main(["probe", str(run), "--labels", "target_cell", "--hooks", "blocks.0.hook_resid_pre",
                 "--positions", "target", "--max-examples", "80"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: activation store") and "\n" not in err


def test_chess_store_labels_agree_with_the_tokens_and_python_chess(tmp_path):
    """Board labels against the square tokens, look-ahead labels against the move tokens, the
    search-focus label against the stored alpha-beta trace, masks against python-chess directly."""
    import chess

    from searchprobe.tasks.chess.probe_labels import chess_label_specs, chess_store_labels
    from searchprobe.tasks import store
    from searchprobe.tasks.chess import tokens as tok
    from searchprobe.tasks.chess.dataset import generate_from_toml

    toml = tmp_path / "c.toml"
    toml.write_text('task = "chess"\nname = "c"\nn = 12\nseed = 3\n[puzzles]\nmate_in = 2\nmaterial = ["KQvK", "KRRvK"]\n'
                    'unique_first_move = false\nattacker = "random"\n[tokens]\nrelative = true\n'
                    '[splits]\ntrain = 0.5\nvalidation = 0.25\ntest = 0.25\n')
    ds = store.read_dataset(generate_from_toml(toml, out=tmp_path / "ds"))
    rows = ds.splits["train"].with_format("numpy")[:]
    max_plies = max(len(pv) for pv in rows["pv"])
    labels = chess_store_labels(rows, max_plies)
    assert {s.stored for s in chess_label_specs(max_plies)} <= set(labels)
    for i, ids in enumerate(rows["tokens"]):
        squares = [tok.VOCAB[t] for t in ids[tok.SQUARE_OFFSET:tok.SQUARE_OFFSET + 64]]
        np.testing.assert_array_equal(labels["occupied"][i], [s != tok.EMPTY for s in squares])
        np.testing.assert_array_equal(labels["mine"][i], [s.startswith("m") for s in squares])
        roles = [tok.role_name(r) for r in rows["roles"][i]]
        for j in range(2, len(rows["pv"][i]) + 1):
            to_token = tok.VOCAB[ids[roles.index(f"ply:{j}:to")]]
            assert labels[f"ply_{j}_to"][i] == chess.parse_square(to_token)
        board = chess.Board(str(rows["fen"][i]))
        frame = lambda s: tok.frame_square(s, bool(rows["flipped"][i]))  # noqa: E731
        attacked = {frame(s) for s in chess.SQUARES if board.is_attacked_by(not board.turn, s)}
        assert set(np.flatnonzero(labels["opp_attacks"][i])) == attacked
        assert labels["opp_king"][i] == frame(board.king(not board.turn))
        assert labels["in_check"][i, 0] == int(board.is_check())
        nodes = np.asarray(rows["root_nodes"][i])
        assert labels["search_focus_to"][i] == np.asarray(rows["root_moves"][i])[nodes.argmax()] % 64


def test_chess_runs_are_probed_end_to_end(tmp_path):
    """`searchprobe probe` on a chess run: every chess label family, with control and random-model columns."""
    import csv

    from searchprobe.cli import main

    toml = tmp_path / "c.toml"
    toml.write_text('task = "chess"\nname = "c"\nn = 40\nseed = 1\n[puzzles]\nmate_in = 1\nmaterial = ["KQvK", "KRvK"]\n'
                    'unique_first_move = false\nattacker = "random"\n[tokens]\nrelative = true\n'
                    '[splits]\ntrain = 0.8\nvalidation = 0.1\ntest = 0.1\n')
    assert main(["generate", str(toml), "--out", str(tmp_path / "ds")]) == 0
    assert main(["train", "--data", str(tmp_path / "ds"), "--model", "nano", "--steps", "3", "--out",
                 str(tmp_path / "run"), "--no-progress"]) == 0
    assert main(["probe", str(tmp_path / "run"), "--max-examples", "30", "--boot", "20",
                 "--hooks", "blocks.0.hook_resid_pre,blocks.1.hook_resid_post"]) == 0
    with open(tmp_path / "run" / "probes" / "results.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["metric"] == "accuracy"]
    labels = {r["label"] for r in rows}
    assert {"opp_king", "mating_square", "first_to", "opp_attacks", "king_escapes", "occupied", "mine",
            "search_focus_to"} <= labels
    assert {r["family"] for r in rows} == {"target", "candidate", "constraint", "world_model", "search_trace"}
    assert {r["role"] for r in rows} == {"stm", "sep", "ply:1:from", "ply:1:to"}
    for r in rows:
        assert 0.0 <= float(r["value"]) <= 1.0 and 0.0 <= float(r["random_model"]) <= 1.0
        assert int(r["control_types"]) >= 1
        assert float(r["selectivity"]) == pytest.approx(float(r["value"]) - float(r["control"]), abs=1e-5)


def test_fitting_from_a_sharded_store_equals_fitting_in_memory(tmp_path):
    """Features read shard by shard (float16, shards cut mid-split) and standardised as they are read
    give the probe that the same features stacked in memory give."""
    from searchprobe.acts import StorePlan, extract_activations, model_fingerprint
    from searchprobe.probe.features import Features
    from searchprobe.probe.labels import label_targets
    from searchprobe.tasks.maze.probe_labels import maze_label_specs, maze_store_labels
    from searchprobe.train.run import load_run

    run_dir = make_run(tmp_path, n=240)
    run = load_run(run_dir)
    roles = ("target", "path_start", "path:1")
    plan = StorePlan(("blocks.0.hook_resid_pre", "blocks.0.hook_resid_post"), roles, "train", 150, "float16", shard_size=40)
    store = extract_activations(run.model, run.data, plan, tmp_path / "store", model_fingerprint(run_dir),
                                label_fn=lambda rows: maze_store_labels(rows, 9, 2, 2), progress=False)
    keys = [(h, r) for h in plan.hooks for r in roles]
    from_store = Features.from_store(store, keys)
    assert from_store.shape == (6, 150, 16) and len(from_store.blocks()) == 4
    in_memory = np.stack([store.features(h, r) for h, r in keys])
    np.testing.assert_array_equal(from_store.read(slice(30, 95)), in_memory[:, 30:95])
    split = ProbeSplit.by_example(150, seed=2)
    specs = {s.name: s for s in maze_label_specs(9, 2)}
    for name in ("target_cell", "connectivity"):
        spec = specs[name]
        Y = np.stack([label_targets(spec, store.label(spec.stored), run.task.step_of_role(r)) for _, r in keys])
        chosen = fit_label(spec, in_memory, Y, split, n_boot=0).l2
        # then one fit per problem at that strength each way (CV scores of two strengths can tie to a
        # row, and rounding would then pick either; a warm-started fit stops at a different point)
        a = fit_label(spec, in_memory, Y, split, n_boot=50, fixed_l2=chosen)
        b = fit_label(spec, from_store, Y, split, n_boot=50, fixed_l2=chosen)
        np.testing.assert_allclose(b.feature_mean, a.feature_mean, atol=1e-5)
        np.testing.assert_allclose(b.feature_std, a.feature_std, rtol=1e-4)
        np.testing.assert_allclose(b.weight, a.weight, atol=2e-3)
        np.testing.assert_allclose(b.accuracy, a.accuracy, atol=1.01 / 30)  # a row on the boundary may flip


def test_probing_stage_streams_features_when_they_do_not_fit(tmp_path):
    import csv

    from searchprobe.probe import run_probes

    run = make_run(tmp_path, n=200)
    kw = dict(labels=["target_cell", "connectivity"], hooks=["blocks.0.hook_resid_post"], positions=["target", "path_start"],
              max_examples=120, n_boot=50, progress=False)
    tables = []
    for budget in (30_000_000, 1_000):  # the second is below one problem's features: read from the store
        out = run_probes(run, max_chunk_elements=budget, **kw)
        tables.append({(r["hook"], r["role"], r["label"], r["metric"]): r for r in csv.DictReader((out / "results.csv").open())})
    assert tables[0].keys() == tables[1].keys() and len(tables[0]) >= 6
    for key, row in tables[0].items():
        for column in ("value", "control", "random_model", "majority", "l2"):
            assert float(tables[1][key][column]) == pytest.approx(float(row[column]), abs=0.035, nan_ok=True), (key, column)
