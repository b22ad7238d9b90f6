"""Ablations checked against weight surgery: zeroing a head's W_O slice, folding its mean into b_O."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from searchprobe.errors import InputError
from searchprobe.intervene.ablation import (Ablation, _derangement, ablated_forward, ablation_sweep, all_ablations,
                                            mean_activations, rollout_metrics)


@pytest.fixture(scope="module")
def setup(tiny):
    s = tiny
    rows = s.data.rollout_rows("test", 6)
    prompts = s.data.prompts(rows)
    tokens = torch.as_tensor(np.stack(prompts))  # 3x3 perfect mazes: one prompt length
    return s, rows, prompts, tokens


def _surgery(model, edit):
    """A copy of `model` with its state dict edited by `edit(state)`."""
    from searchprobe.train.model import build_model

    twin = build_model(_config_of(model))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    edit(state)
    twin.load_state_dict(state)
    twin.eval()
    return twin


def _config_of(model):
    from searchprobe.train.model import ModelConfig

    c = model.cfg
    return ModelConfig(n_layers=c.n_layers, d_model=c.d_model, n_heads=c.n_heads, d_vocab=c.d_vocab, n_ctx=c.n_ctx)


@torch.no_grad()
def test_zero_and_mean_head_ablation_equal_weight_surgery(setup):
    s, rows, prompts, tokens = setup
    model, dh = s.model, s.model.cfg.d_head
    layer, head = 1, 2
    cols = slice(head * dh, (head + 1) * dh)

    def zero(state):
        state[f"blocks.{layer}.attn.o.weight"][:, cols] = 0

    zero_fwd = ablated_forward(model, Ablation("head", layer, head, "zero"))
    torch.testing.assert_close(zero_fwd(tokens), _surgery(model, zero)(tokens), atol=1e-5, rtol=1e-5)

    name = f"blocks.{layer}.attn.hook_z"
    means = mean_activations(model, prompts, [name])
    w = model.state_dict()[f"blocks.{layer}.attn.o.weight"][:, cols]

    def fold_mean(state):
        state[f"blocks.{layer}.attn.o.bias"] += w @ means[name][head]
        state[f"blocks.{layer}.attn.o.weight"][:, cols] = 0

    mean_fwd = ablated_forward(model, Ablation("head", layer, head, "mean"), means)
    torch.testing.assert_close(mean_fwd(tokens), _surgery(model, fold_mean)(tokens), atol=1e-5, rtol=1e-5)
    # the mean itself: all prompts and positions, recomputed directly
    _, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(means[name], cache[name].mean(dim=(0, 1)), atol=1e-6, rtol=1e-5)


@torch.no_grad()
def test_zero_mlp_and_layer_ablation_equal_weight_surgery(setup):
    s, rows, prompts, tokens = setup
    model = s.model

    def no_mlp(state):
        state["blocks.0.mlp.out.weight"][:] = 0
        state["blocks.0.mlp.out.bias"][:] = 0

    def no_layer(state):
        no_mlp(state)
        state["blocks.0.attn.o.weight"][:] = 0
        state["blocks.0.attn.o.bias"][:] = 0

    torch.testing.assert_close(ablated_forward(model, Ablation("mlp", 0, None, "zero"))(tokens),
                               _surgery(model, no_mlp)(tokens), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ablated_forward(model, Ablation("layer", 0, None, "zero"))(tokens),
                               _surgery(model, no_layer)(tokens), atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_resample_ablation(setup):
    s, rows, prompts, tokens = setup
    model = s.model
    same = tokens[:1].repeat(5, 1)  # every row the same maze: resampling changes nothing
    fwd = ablated_forward(model, Ablation("head", 0, 1, "resample"))
    torch.testing.assert_close(fwd(same), model(same), atol=1e-5, rtol=1e-5)
    out = fwd(tokens)
    assert not torch.allclose(out, model(tokens), atol=1e-4)
    for n in (2, 3, 7, 12):
        perm = _derangement(n, 0).numpy()
        assert sorted(perm.tolist()) == list(range(n)) and not (perm == np.arange(n)).any()


def test_ablation_sweep_rollout_metrics(setup):
    s, rows, prompts, tokens = setup
    model = s.model
    ablations = [Ablation("head", 0, 0, "zero"), Ablation("layer", 1, None, "mean")]
    result = ablation_sweep(model, s.data, rows, ablations)
    assert result.baseline == rollout_metrics(model, s.data, rows)
    assert set(s.task.primary_metrics) <= set(result.baseline)
    for a, m in result.rows:
        assert m["n"] == len(prompts) and 0 <= m["exact_path"] <= 1 and 0 <= m["valid_steps"] <= 1
    # rollout metrics from scratch: greedy decoding by hand, scored against the stored paths
    from searchprobe.tasks.maze.task import decode_paths
    from searchprobe.train.rollout import maze_path_metrics

    fwd = ablated_forward(model, ablations[0])
    seq = tokens.clone()
    gens = [[] for _ in prompts]
    done = np.zeros(len(prompts), dtype=bool)
    steps = min(s.data.max_new(rows), model.cfg.n_ctx - tokens.shape[1])
    with torch.no_grad():
        for _ in range(steps):
            nxt = fwd(seq)[:, -1].argmax(-1)
            seq = torch.cat([seq, nxt[:, None]], 1)
            for i, t in enumerate(nxt.tolist()):
                if not done[i]:
                    gens[i].append(t)
                    done[i] = t == s.data.stop_id
    cells, ok = decode_paths([np.array(g) for g in gens], s.data.vocab)
    ref = maze_path_metrics(cells, ok, [np.asarray(p).reshape(-1, 2) for p in rows["path"]],
                            np.stack([np.asarray(c, dtype=bool) for c in rows["connections"]])).to_dict()
    assert result.rows[0][1] == ref
    table = result.table("exact_path")
    assert [r[0] for r in table] == ["L0H0:zero", "LAYER1:mean"]
    with pytest.raises(InputError, match="unknown rollout metric 'accuracy'"):
        result.table("accuracy")


def test_bad_ablations(setup):
    s, *_ = setup
    with pytest.raises(InputError, match="head index 9 .* out of range; allowed: 0..3"):
        ablated_forward(s.model, Ablation("head", 0, 9, "zero"))
    with pytest.raises(InputError, match="layer 5 .* out of range"):
        ablated_forward(s.model, Ablation("mlp", 5, None, "zero"))
    with pytest.raises(InputError, match="unknown ablation method 'shuffle'"):
        Ablation("head", 0, 0, "shuffle")
    with pytest.raises(InputError, match="needs mean activations"):
        ablated_forward(s.model, Ablation("mlp", 0, None, "mean"))
    assert len(all_ablations(s.model, methods=("zero", "mean"))) == 2 * (2 * 4 + 2 + 2)
    assert all_ablations(s.model.cfg, ("head",)) == all_ablations(s.model, ("head",))  # a config is enough
    with pytest.raises(InputError, match="unknown ablation component 'neuron'; allowed: head, mlp, layer"):
        all_ablations(s.model, ("head", "neuron"))
    with pytest.raises(InputError, match="unknown ablation method 'shuffle'"):
        all_ablations(s.model, methods=("shuffle",))
