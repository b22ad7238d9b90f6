"""FusedForward computes the bridge's function: logits, gradients and greedy rollouts agree."""

import numpy as np
import pytest
import torch

from searchprobe.train.fused import FusedForward
from searchprobe.train.model import ModelConfig, build_model
from searchprobe.train.rollout import greedy_rollout

SHAPES = [{}, {"normalization": "RMS"}, {"normalization": "none"}, {"attn_only": True},
          {"act_fn": "gelu_new"}, {"act_fn": "relu"}, {"act_fn": "silu"}, {"n_heads": 1}]


def _model(**kw):
    return build_model(ModelConfig(n_layers=2, d_model=32, n_heads=kw.pop("n_heads", 4), d_vocab=20, n_ctx=16, **kw))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default")
def test_logits_and_gradients_equal_the_bridge(shape):
    model = _model(**shape)
    fused = FusedForward(model)
    tokens = torch.randint(0, 20, (6, 16), generator=torch.Generator().manual_seed(1))
    bridge_logits, fused_logits = model(tokens), fused(tokens)
    torch.testing.assert_close(fused_logits, bridge_logits, rtol=1e-5, atol=1e-5)
    weights = torch.randn(bridge_logits.shape, generator=torch.Generator().manual_seed(2))
    params = list(model.parameters())
    for g_fused, g_bridge in zip(torch.autograd.grad((fused_logits * weights).sum(), params),
                                 torch.autograd.grad((bridge_logits * weights).sum(), params)):
        torch.testing.assert_close(g_fused, g_bridge, rtol=1e-4, atol=1e-5)


def test_cached_greedy_rollouts_equal_full_forward_rollouts():
    model = _model()
    rng = np.random.default_rng(0)
    prompts = [rng.integers(0, 20, size=n) for n in (3, 3, 5, 7, 7, 7, 12)]
    unstopped = greedy_rollout(model, prompts, max_new=9, stop_id=-1, forward=model)
    stop_id = int(np.bincount(np.concatenate([g[:4] for g in unstopped])).argmax())  # some rows stop early
    cached = greedy_rollout(model, prompts, max_new=9, stop_id=stop_id)
    plain = greedy_rollout(model, prompts, max_new=9, stop_id=stop_id, forward=model)  # the bridge, no cache
    assert any(len(g) <= 4 and g[-1] == stop_id for g in plain)
    assert any(len(g) == 16 - 12 for g, p in zip(plain, prompts) if len(p) == 12)  # capped at n_ctx
    for a, b in zip(cached, plain):
        np.testing.assert_array_equal(a, b)


def test_hooked_or_unsupported_models_run_through_the_bridge():
    model = _model()
    assert FusedForward.supports(model)
    prompts = [np.arange(5) % 20] * 3
    zero_embed = [("hook_embed", lambda act, hook: torch.zeros_like(act))]
    with model.hooks(fwd_hooks=zero_embed):
        assert not FusedForward.supports(model)
        hooked = greedy_rollout(model, prompts, max_new=6, stop_id=-1)
        expected = greedy_rollout(model, prompts, max_new=6, stop_id=-1, forward=model)
    for a, b in zip(hooked, expected):
        np.testing.assert_array_equal(a, b)
    rotary = build_model(ModelConfig(n_layers=1, d_model=32, n_heads=4, d_vocab=20, n_ctx=16, positional="rotary"))
    assert not FusedForward.supports(rotary)
    with pytest.raises(ValueError, match="bridge"):
        FusedForward(rotary)
