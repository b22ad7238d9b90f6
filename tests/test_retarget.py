"""Goal retargeting: Wilson intervals against known values, layer-0 patching equals a token swap, and the
maze task's goal methods (the task side of the retargeting protocol)."""

from __future__ import annotations

import numpy as np
import pytest

from searchprobe.errors import DataError, InputError
from searchprobe.intervene.retarget import goal_examples, retarget, wilson


@pytest.mark.parametrize("k,n,low,high", [(8, 10, 0.4902, 0.9433), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0),
                                          (50, 100, 0.4038, 0.5962)])
def test_wilson_matches_published_values(k, n, low, high):
    r = wilson(k, n)
    assert r.rate == k / n and r.low == pytest.approx(low, abs=1e-4) and r.high == pytest.approx(high, abs=1e-4)


@pytest.fixture(scope="module")
def setup(tiny):
    return tiny


def _pairs(s, kind="target", n=6, seed=0, split="train"):
    return s.task.make_pairs(s.stored, s.tokenizer, split=split, kind=kind, n=n, seed=seed)


def test_layer0_patch_is_a_target_token_swap(setup):
    from searchprobe.tasks.maze.task import decode_paths
    from searchprobe.train.rollout import greedy_rollout, maze_path_metrics

    s = setup
    pairs = _pairs(s, seed=2)
    result = retarget(s.model, s.data, pairs, layers=[0], conditions=["none", "patch", "same_target"])
    conns = pairs.clean.connections
    new_paths = [pairs.corrupt.path[i, : int(pairs.corrupt.path_len[i])] for i in range(len(pairs))]
    old_paths = [pairs.clean.path[i, : int(pairs.clean.path_len[i])] for i in range(len(pairs))]
    R, C = pairs.clean.n_rows, pairs.clean.n_cols
    assert pairs.max_new == R * C + 1

    def reach(prompts, paths):
        gen = greedy_rollout(s.model, prompts, max_new=R * C + 1, stop_id=s.data.stop_id)
        cells, ok = decode_paths(gen, s.data.vocab)
        return round(maze_path_metrics(cells, ok, paths, conns).reaches_target * len(pairs))

    # resid_pre of layer 0 at the target token = that token's embedding: patching it = writing the new target
    assert result.new[0]["patch"].successes == reach(pairs.prompts("corrupt"), new_paths)
    assert result.old[0]["patch"].successes == reach(pairs.prompts("corrupt"), old_paths)
    assert result.new[0]["none"].successes == reach(pairs.prompts("clean"), new_paths)
    assert result.old[0]["none"].successes == reach(pairs.prompts("clean"), old_paths)
    # the same-target control at layer 0 leaves the target token alone: identical to no intervention
    assert result.old[0]["same_target"].successes == result.old[0]["none"].successes
    assert result.n == len(pairs) and [row[:2] for row in result.table()] == [[0, "none"], [0, "patch"], [0, "same_target"]]


def test_goal_examples_are_the_target_cells(setup):
    s = setup
    probe = goal_examples(s.data, "train", 120)
    rows = s.stored.splits["train"].select(range(120))[:]
    assert len(probe) == 120 and probe.n_classes == 9
    np.testing.assert_array_equal(probe.classes, [int(r) * 3 + int(c) for r, c in rows["target"]])
    start = s.tokenizer.token_to_id["<TARGET_START>"]
    for prompt, k, pos, cls in zip(probe.prompts, rows["solution_start"], probe.positions, probe.classes):
        assert len(prompt) == k and prompt[pos - 1] == start  # the token after <TARGET_START>
        assert prompt[pos] == s.tokenizer.cell_ids[divmod(int(cls), 3)]
    with pytest.raises(DataError, match="no 'target' token"):
        s.task.goal_positions([np.zeros(5, dtype=np.int16)])


def test_steering_conditions_run_with_a_fitted_probe(setup):
    s = setup
    pairs = _pairs(s, split="test")
    result = retarget(s.model, s.data, pairs, layers=[1], probe=goal_examples(s.data, "train", 120),
                      conditions=["steer", "random_steer"])
    assert set(result.new[1]) == {"steer", "random_steer"}
    assert "ridge" in result.probe_source
    for rate in result.new[1].values():
        assert 0 <= rate.low <= rate.rate <= rate.high <= 1
    # without a probe the steering conditions are skipped
    assert set(retarget(s.model, s.data, pairs, layers=[1], conditions=["none", "steer"]).new[1]) == {"none"}


def test_maze_goal_methods(setup):
    s = setup
    task, pairs = s.task, _pairs(s, n=12, seed=5)
    old, new = task.pair_goal_classes(pairs)
    np.testing.assert_array_equal(old, pairs.clean.target[:, 0].astype(int) * 3 + pairs.clean.target[:, 1])
    np.testing.assert_array_equal(new, pairs.corrupt.target[:, 0].astype(int) * 3 + pairs.corrupt.target[:, 1])
    assert (old != new).all()
    # control donors: the clean prompt with only the origin token changed (to a cell that is neither endpoint)
    donors = task.same_goal_prompts(pairs, s.tokenizer, np.random.default_rng(0))
    origin = task.role_code("origin")
    for i, (d, p) in enumerate(zip(donors, pairs.prompts("clean"))):
        diff = np.flatnonzero(d != p)
        assert len(d) == len(p) and diff.tolist() == [int(np.flatnonzero(pairs.roles[i] == origin)[0])]
        assert d[diff[0]] not in (s.tokenizer.cell_ids[tuple(pairs.clean.origin[i])],
                                  s.tokenizer.cell_ids[tuple(pairs.clean.target[i])])
    # outcomes of perfect rollouts of the new paths: all reach the new target, none the old one
    end = s.data.stop_id
    perfect = [np.array([s.tokenizer.cell_ids[tuple(c)] for c in pairs.corrupt.path[i, : int(pairs.corrupt.path_len[i])]]
                        + [end]) for i in range(len(pairs))]
    out = task.retarget_outcomes(pairs, perfect, s.data.vocab)
    assert out["new"].all() and not out["old"].any()
    assert out["first_new"].all() and not (out["first_old"] & out["first_split"]).any()
    wander = task.retarget_outcomes(pairs, [np.array([end])] * len(pairs), s.data.vocab)
    assert not wander["new"].any() and not wander["first_new"].any()
    assert set(out) == {"new", "old", "first_new", "first_old", "first_split"}


def test_retarget_needs_target_pairs(setup):
    s = setup
    with pytest.raises(InputError, match="needs target pairs"):
        retarget(s.model, s.data, _pairs(s, "origin", n=4), layers=[0])
    tpairs = _pairs(s, n=4)
    with pytest.raises(InputError, match="layer 4 in retarget layers is out of range"):
        retarget(s.model, s.data, tpairs, layers=[4])
    with pytest.raises(InputError, match="unknown retargeting condition 'teleport'"):
        retarget(s.model, s.data, tpairs, layers=[0], conditions=["teleport"])
