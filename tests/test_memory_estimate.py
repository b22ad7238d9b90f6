"""The training memory estimate (`searchprobe.train.memory`) and the refusal `train` makes with it."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from searchprobe import guard
from searchprobe.errors import ConfigError
from searchprobe.train.memory import (STATE_BYTES_PER_PARAM, activation_bytes, check_training_memory,
                                      estimate_training_memory, parameter_count, rollout_shapes)
from searchprobe.train.model import ModelConfig, preset

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("options", [
    {},
    {"attn_only": True},
    {"normalization": "RMS", "d_mlp": 96},
    {"normalization": "none", "act_fn": "relu"},
    {"positional": "rotary"},
])
def test_parameter_bytes_are_16_per_parameter_of_the_built_model(options):
    from searchprobe.train.model import build_model, count_parameters

    cfg = dataclasses.replace(preset("nano"), **options).with_data(37, 45)
    n = count_parameters(build_model(cfg))
    assert parameter_count(cfg) == n
    estimate = estimate_training_memory(cfg, 8, 45)
    assert estimate.parameters == n
    assert STATE_BYTES_PER_PARAM * estimate.parameters == 16 * n  # fp32 weights, gradients, AdamW's two moments
    assert estimate.state >= 16 * n


def test_activations_grow_as_their_terms_say():
    cfg = preset("tiny").with_data(40, 64)
    one, two = activation_bytes(cfg, 32, 63, 40), activation_bytes(cfg, 64, 63, 40)
    assert 1.95 < two / one <= 2.0  # all but the stacked QKV weight scale with the batch
    deeper = dataclasses.replace(cfg, n_layers=8)
    assert 1.7 < activation_bytes(deeper, 32, 63, 40) / one < 2.0  # per-layer terms double, the head's do not
    # long sequences: the B·n_heads·T² attention pattern takes over, so doubling T nearly quadruples
    long_cfg = preset("nano").with_data(40, 4096)
    assert 3.0 < activation_bytes(long_cfg, 4, 4000, 40) / activation_bytes(long_cfg, 4, 2000, 40) < 4.0
    # bf16 autocast stores matmul outputs in 2 bytes: less than fp32, but more than half (fp32 residual)
    bf16 = activation_bytes(cfg, 64, 63, 40, precision="bf16")
    assert 0.5 * two < bf16 < two
    # tensors below glibc's mmap threshold count twice (the heap keeps their holes), larger ones once
    assert activation_bytes(cfg, 64, 63, 40) == 2 * activation_bytes(cfg, 64, 63, 40, slack=1)
    live = activation_bytes(long_cfg, 4, 4000, 40, slack=1)
    assert live < activation_bytes(long_cfg, 4, 4000, 40) < 1.5 * live
    # the estimate: state + the largest of activations, evaluation and checkpoint + the runtime
    est = estimate_training_memory(cfg, 64, 64, eval_shapes=rollout_shapes([30] * 300))
    assert est.evaluation > 0
    assert est.total == est.state + max(est.activations, est.evaluation, est.checkpoint) + est.runtime
    assert rollout_shapes([30] * 300 + [31] * 5) == [(256, 30), (5, 31)]


def test_injected_limit_refuses_with_estimate_and_limit(monkeypatch):
    cfg = preset("nano").with_data(40, 64)
    estimate = estimate_training_memory(cfg, 64, 64)
    monkeypatch.setattr(guard, "available_memory", lambda: estimate.total + 1)
    assert check_training_memory(cfg, 64, 64).total == estimate.total
    monkeypatch.setattr(guard, "available_memory", lambda: 10 * 2**20)
    with pytest.raises(ConfigError) as info:
        check_training_memory(cfg, 64, 64)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"training needs about {estimate.total / 2**20:.0f} MiB (model ")
    assert "batch 64, sequence 64 tokens" in message
    assert "but 10 MiB is available (" in message and message.endswith("lower batch_size / the model size")
    # when the evaluation's rollouts take more than the training steps, the advice says so
    with pytest.raises(ConfigError, match=r"its evaluation's rollouts of up to 256 prompts take .*; lower eval_examples"):
        check_training_memory(cfg, 4, 64, eval_shapes=[(256, 60)])
    # an explicit limit (a GPU's free memory) says whose it is
    with pytest.raises(ConfigError, match=r"but 1 MiB is available \(free memory of a GPU\)"):
        check_training_memory(cfg, 64, 64, available=2**20, where="free memory of a GPU")


def test_absurd_model_is_refused_instantly_by_the_cli(tmp_path, capsys):
    from searchprobe.cli import main

    experiment = tmp_path / "huge.toml"
    experiment.write_text(f'data = "{REPO / "tasks" / "maze-dfs-5x5-grid.toml"}"\n'
                          "[model]\npreset = \"nano\"\nn_layers = 1000000\n", encoding="utf-8")
    out = tmp_path / "run"
    start = time.perf_counter()
    assert main(["train", str(experiment), "--out", str(out), "--no-progress"]) == 2
    assert time.perf_counter() - start < 10  # importing torch is the slow part; nothing is allocated
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: training needs at least ") and "1,000,000 layers" in err[0]
    assert "lower the model size" in err[0]
    assert not out.exists()


def test_train_run_checks_the_full_estimate_before_building(tiny, tmp_path, monkeypatch):
    """With the data known the estimate counts activations too: a limit between the weights' and the
    whole estimate is refused inside train_run, before the model is built, and nothing is left."""
    from searchprobe.train import model as model_module
    from searchprobe.train.run import ExperimentConfig, train_run

    from searchprobe.train.config import TrainConfig

    cfg = ExperimentConfig(data=str(tiny.stored.path), model={"preset": "nano"},
                           train=TrainConfig(steps=1, batch_size=512))
    train_data = tiny.data.token_data("train")
    model_cfg = cfg.model_config().with_data(len(tiny.data.vocab), train_data.max_len)
    full = estimate_training_memory(model_cfg, 512, train_data.max_len)
    weights_only = estimate_training_memory(cfg.model_config(), 512, None)
    assert weights_only.total < full.total
    monkeypatch.setattr(guard, "available_memory", lambda: full.total - full.activations // 2)
    monkeypatch.setattr(model_module, "build_model", lambda *a, **k: pytest.fail("model built despite the refusal"))
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"^training needs about .* \(model .*; batch 512, sequence "):
        train_run(cfg, out, progress=False)
    assert not out.exists()


def test_model_config_unchanged_for_estimates():
    cfg = ModelConfig(n_layers=2, d_model=64, n_heads=4)
    assert parameter_count(cfg) == parameter_count(cfg, 0, 0)  # no vocabulary or context yet: a lower bound
    assert estimate_training_memory(cfg, 1, None).activations == 0
