"""LEACE and mean-projection erasure (checked with scikit-learn probes and closed forms), steering hooks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression, Ridge

from searchprobe.errors import InputError
from searchprobe.intervene.steering import (LeaceEraser, LinearDirections, MeanProjectionEraser, erasure_hook,
                                            one_hot, random_subspace_eraser, steering_hook, whitened_change)


def _concept_data(n=2000, d=8, k=3, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.integers(0, k, n)
    x = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + one_hot(z, k) @ rng.standard_normal((k, d)) * 2
    return x, z


def test_leace_guards_against_every_linear_probe():
    x, z = _concept_data()
    chance = np.bincount(z).max() / len(z)
    before = LogisticRegression(max_iter=3000).fit(x, z).score(x, z)
    eraser = LeaceEraser().fit(x, z)
    erased = eraser.transform(x)
    after = LogisticRegression(max_iter=3000).fit(erased, z).score(erased, z)
    assert before > chance + 0.3
    assert after <= chance + 0.02
    zc = one_hot(z) - one_hot(z).mean(0)
    assert np.abs((erased - erased.mean(0)).T @ zc / len(x)).max() < 1e-10  # zero cross-covariance
    assert eraser.rank_ == 2  # k - 1 classes' worth of directions


def test_leace_moves_least_in_the_whitened_norm():
    x, z = _concept_data(seed=1)
    leace = LeaceEraser().fit(x, z)
    erased = leace.transform(x)
    # closed form: E ||r(x) - x||^2 in the whitened norm equals the erased rank
    assert whitened_change(x, erased) == pytest.approx(leace.rank_, rel=1e-8)
    xc = x - x.mean(0)
    cross = xc.T @ (one_hot(z) - one_hot(z).mean(0)) / len(x)
    rng = np.random.default_rng(0)
    rivals = [MeanProjectionEraser().fit(x, cross.T)]  # orthogonal projection out of span(Σ_xz): also guarding
    for extra in range(1, 4):
        rivals.append(MeanProjectionEraser().fit(x, np.vstack([cross.T, rng.standard_normal((extra, x.shape[1]))])))
    for rival in rivals:
        moved = rival.transform(x)
        assert np.abs((moved - moved.mean(0)).T @ (one_hot(z) - one_hot(z).mean(0))).max() < 1e-8  # guards too
        assert whitened_change(x, erased) < whitened_change(x, moved)


def test_mean_projection_and_random_subspace():
    x, z = _concept_data(seed=2)
    d = np.random.default_rng(3).standard_normal((2, x.shape[1]))
    eraser = MeanProjectionEraser().fit(x, d)
    out = eraser.transform(x)
    q, _ = np.linalg.qr(d.T)
    np.testing.assert_allclose(out @ q, np.broadcast_to(x.mean(0) @ q, (len(x), 2)), atol=1e-10)
    np.testing.assert_allclose((out - x) @ np.linalg.svd(q, full_matrices=True)[0][:, 2:], 0, atol=1e-10)
    rand = random_subspace_eraser(x, 3, seed=1)
    assert rand.rank_ == 3 and np.linalg.matrix_rank(rand.proj_) == 3
    with pytest.raises(InputError, match="rank 99"):
        random_subspace_eraser(x, 99)


def test_linear_directions_equal_sklearn_ridge():
    x, z = _concept_data(seed=4)
    probe = LinearDirections(ridge=1e-2).fit(x, z)
    ref = Ridge(alpha=1e-2 * len(x)).fit(x, one_hot(z))
    np.testing.assert_allclose(probe.coef_, ref.coef_.T, atol=1e-8)
    assert (probe.predict(x) == ref.predict(x).argmax(1)).mean() == 1.0
    for c in range(3):
        np.testing.assert_allclose(probe.class_means_[c], x[z == c].mean(0))


def test_hooks_change_exactly_what_they_say():
    from searchprobe.train.model import ModelConfig, build_model

    model = build_model(ModelConfig(n_layers=2, d_model=16, n_heads=2, d_vocab=12, n_ctx=10))
    model.eval()
    tokens = torch.randint(0, 12, (5, 8), generator=torch.Generator().manual_seed(0))
    name = "blocks.1.hook_resid_pre"
    with torch.no_grad():
        _, base = model.run_with_cache(tokens, names_filter=lambda n: n == name)
        vec = torch.arange(16, dtype=torch.float32) / 10
        seen = {}

        def spy(act, hook):
            seen["act"] = act.clone()
            return act

        with model.hooks(fwd_hooks=[(name, steering_hook(vec, positions=[3])), (name, spy)]):
            model(tokens)
        delta = seen["act"] - base[name]
        torch.testing.assert_close(delta[:, 3], vec.expand(5, 16))
        assert delta[:, [0, 1, 2, 4, 5, 6, 7]].abs().max() == 0
        x = base[name][:, 3].numpy().astype(np.float64)
        eraser = MeanProjectionEraser().fit(x, np.ones((1, 16)))
        with model.hooks(fwd_hooks=[(name, erasure_hook(eraser, positions=[3])), (name, spy)]):
            model(tokens)
        np.testing.assert_allclose(seen["act"][:, 3].numpy(), eraser.transform(x), atol=1e-5)
        torch.testing.assert_close(seen["act"][:, :3], base[name][:, :3])


def test_amnesic_rollouts_erase_the_goal_at_its_token(tiny):
    from searchprobe.intervene.ablation import rollout_metrics
    from searchprobe.intervene.retarget import goal_examples
    from searchprobe.intervene.steering import amnesic_rollouts, collect

    s = tiny
    fit = goal_examples(s.data, "train", 150)
    x = collect(s.model, fit.prompts, "blocks.1.hook_resid_pre", fit.positions)
    rows = s.data.rows("test", 5, (*s.task.rollout_columns, "roles"))
    at = s.task.goal_positions(rows["roles"], [len(p) for p in s.data.prompts(rows)])
    out = amnesic_rollouts(s.model, s.data, rows, 1, x, fit.classes, at)
    assert out["hook"] == "blocks.1.hook_resid_pre" and out["position"] == int(at[0])
    assert out["rank"] == len(np.unique(fit.classes)) - 1  # LEACE erases k - 1 directions of k classes
    assert out["intact"] == rollout_metrics(s.model, s.data, rows)
    for cond in ("leace", "random_subspace"):
        assert set(out[cond]) == set(out["intact"]) and out[cond]["n"] == 5
    with pytest.raises(InputError, match="one position in every prompt"):
        amnesic_rollouts(s.model, s.data, rows, 1, x, fit.classes, [at[0], at[0] + 1, at[0], at[0], at[0]])
