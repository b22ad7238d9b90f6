"""Goal retargeting: Wilson intervals against known values, layer-0 patching equals a token swap."""

from __future__ import annotations

import numpy as np
import pytest

from searchprobe.errors import InputError
from searchprobe.intervene._fixtures import tiny_setup
from searchprobe.intervene.pairs import pairs_from_dataset
from searchprobe.intervene.retarget import retarget, wilson


@pytest.mark.parametrize("k,n,low,high", [(8, 10, 0.4902, 0.9433), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0),
                                          (50, 100, 0.4038, 0.5962)])
def test_wilson_matches_published_values(k, n, low, high):
    r = wilson(k, n)
    assert r.rate == k / n and r.low == pytest.approx(low, abs=1e-4) and r.high == pytest.approx(high, abs=1e-4)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return tiny_setup(tmp_path_factory.getbasetemp())


def test_layer0_patch_is_a_target_token_swap(setup):
    from searchprobe.train.rollout import greedy_rollout, maze_path_metrics

    s = setup
    pairs = pairs_from_dataset(s.stored, s.tokenizer, split="train", kind="target", n=6, seed=2)
    result = retarget(s.model, s.adapter, pairs, s.tokenizer, layers=[0], conditions=["none", "patch", "same_target"])
    conns = pairs.clean.connections
    new_paths = [pairs.corrupt.path[i, : int(pairs.corrupt.path_len[i])] for i in range(len(pairs))]
    old_paths = [pairs.clean.path[i, : int(pairs.clean.path_len[i])] for i in range(len(pairs))]
    R, C = pairs.clean.n_rows, pairs.clean.n_cols

    def reach(prompts, paths):
        gen = greedy_rollout(s.model, prompts, max_new=R * C + 1, stop_id=s.adapter.stop_id)
        cells, ok = s.adapter.decode_paths(gen)
        return round(maze_path_metrics(cells, ok, paths, conns).reaches_target * len(pairs))

    # resid_pre of layer 0 at the target token = that token's embedding: patching it = writing the new target
    assert result.new[0]["patch"].successes == reach(pairs.prompts("corrupt"), new_paths)
    assert result.old[0]["patch"].successes == reach(pairs.prompts("corrupt"), old_paths)
    assert result.new[0]["none"].successes == reach(pairs.prompts("clean"), new_paths)
    assert result.old[0]["none"].successes == reach(pairs.prompts("clean"), old_paths)
    # the same-target control at layer 0 leaves the target token alone: identical to no intervention
    assert result.old[0]["same_target"].successes == result.old[0]["none"].successes
    assert result.n == len(pairs) and [row[:2] for row in result.table()] == [[0, "none"], [0, "patch"], [0, "same_target"]]


def test_steering_conditions_run_with_a_fitted_probe(setup):
    s = setup
    pairs = pairs_from_dataset(s.stored, s.tokenizer, split="test", kind="target", n=6)
    rows = s.stored.splits["train"].select(range(120))[:]
    prompts = [np.asarray(t[:k], dtype=np.int64) for t, k in zip(rows["tokens"], rows["solution_start"])]
    targets = np.array([int(r) * 3 + int(c) for r, c in rows["target"]])
    result = retarget(s.model, s.adapter, pairs, s.tokenizer, layers=[1], probe_prompts=prompts, probe_targets=targets,
                      conditions=["steer", "random_steer"])
    assert set(result.new[1]) == {"steer", "random_steer"}
    assert "ridge" in result.probe_source
    for rate in result.new[1].values():
        assert 0 <= rate.low <= rate.rate <= rate.high <= 1


def test_retarget_needs_target_pairs(setup):
    s = setup
    pairs = pairs_from_dataset(s.stored, s.tokenizer, split="train", kind="origin", n=4)
    with pytest.raises(InputError, match="needs target pairs"):
        retarget(s.model, s.adapter, pairs, s.tokenizer, layers=[0])
    tpairs = pairs_from_dataset(s.stored, s.tokenizer, split="train", kind="target", n=4)
    with pytest.raises(InputError, match="layer 4 in retarget layers is out of range"):
        retarget(s.model, s.adapter, tpairs, s.tokenizer, layers=[4])
