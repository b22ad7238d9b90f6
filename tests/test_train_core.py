"""Training core on a toy reversal task: schedule, loss mask, bitwise resume, checkpoint safety, DDP."""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from searchprobe.errors import ConfigError, DataError
from searchprobe.train import checkpoint
from searchprobe.train.data import BatchSchedule, TokenData, batch_rows
from searchprobe.train.loop import TrainConfig, lr_at, solution_loss, train
from searchprobe.train.model import ModelConfig, build_model, preset

PAD, SEP, END = 0, 1, 2


def reversal_data(n: int, seed: int = 0, length: int = 6) -> TokenData:
    rng = np.random.default_rng(seed)
    seqs, starts = [], []
    for _ in range(n):
        k = int(rng.integers(3, length + 1))
        digits = rng.integers(3, 13, size=k).tolist()
        seqs.append(digits + [SEP] + digits[::-1] + [END])
        starts.append(k + 1)
    return TokenData.from_sequences(seqs, starts, PAD)


def tiny_model(seed: int = 0):
    torch.manual_seed(0)
    return build_model(ModelConfig(n_layers=1, d_model=32, n_heads=2, init_seed=seed).with_data(13, 16))


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(steps=110, warmup_steps=10, lr=1e-3, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))  # cosine midpoint
    assert lr_at(110, cfg) == pytest.approx(1e-4)
    assert all(lr_at(s, cfg) >= lr_at(s + 1, cfg) for s in range(10, 109))


def test_loss_mask_covers_exactly_the_solution():
    data = TokenData.from_sequences([[5, 6, SEP, 6, 5, END], [7, SEP, 7, END]], [3, 2], PAD)
    mask = data.loss_mask(np.array([0, 1]))
    # Position t predicts token t+1; solution tokens are at indices >= solution_start and < length.
    assert mask.tolist() == [[False, False, True, True, True], [False, True, True, False, False]]
    model = tiny_model()
    loss, n = solution_loss(model, data, np.array([0, 1]), torch.device("cpu"))
    assert n == 5
    with torch.no_grad():
        logits = model(torch.tensor(data.tokens[:, :-1]))
        logp = torch.log_softmax(logits, -1)
        manual = -sum(logp[b, t, data.tokens[b, t + 1]] for b in range(2) for t in range(5) if mask[b, t]) / 5
    assert float(loss.detach()) == pytest.approx(float(manual), rel=1e-5)


def test_bad_inputs_are_rejected():
    with pytest.raises(ConfigError, match="not divisible"):
        ModelConfig(d_model=100, n_heads=3)
    with pytest.raises(ConfigError, match="unknown model preset 'huge'"):
        preset("huge")
    with pytest.raises(ConfigError, match="shorter than the dataset's longest sequence"):
        ModelConfig(n_ctx=8).with_data(13, 16)
    with pytest.raises(ConfigError, match="does not match the dataset vocabulary"):
        ModelConfig(d_vocab=20).with_data(13, 16)
    with pytest.raises(DataError, match="solution_start=5 is outside"):
        TokenData.from_sequences([[1, 2, 3]], [5], PAD)
    with pytest.raises(ConfigError, match="train.steps must be a positive integer"):
        TrainConfig(steps=0)
    with pytest.raises(ConfigError, match="train.precision must be 'fp32' or 'bf16'"):
        TrainConfig(precision="fp16")
    with pytest.raises(ConfigError, match="train.sort_window must be >= 0"):
        TrainConfig(sort_window=-1)


def test_batches_are_a_pure_function_of_seed_and_step():
    a = [batch_rows(100, 16, s, seed=3) for s in range(12)]
    b = [batch_rows(100, 16, s, seed=3) for s in range(12)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    epoch0 = np.concatenate(a[:6])
    assert len(set(epoch0.tolist())) == 96  # no repeats within an epoch
    assert not np.array_equal(a[0], batch_rows(100, 16, 0, seed=4))


def test_sorted_batches_cover_each_epoch_with_less_padding():
    lengths = np.random.default_rng(0).integers(5, 60, size=1000)
    plain = BatchSchedule(lengths, 32, seed=3)
    assert all(np.array_equal(plain(s), batch_rows(1000, 32, s, seed=3)) for s in range(40))
    sorted_ = BatchSchedule(lengths, 32, seed=3, sort_window=8)
    per_epoch = 1000 // 32
    for epoch in range(2):
        steps = range(epoch * per_epoch, (epoch + 1) * per_epoch)
        a = np.concatenate([sorted_(s) for s in steps])
        b = np.concatenate([batch_rows(1000, 32, s, seed=3) for s in steps])
        assert sorted(a.tolist()) == sorted(b.tolist())  # the same examples, in other batches
    again = BatchSchedule(lengths, 32, seed=3, sort_window=8)
    assert all(np.array_equal(sorted_(s), again(s)) for s in reversed(range(70)))  # any order of calls

    def padding(schedule):
        return np.mean([lengths[schedule(s)].max() - lengths[schedule(s)].mean() for s in range(per_epoch)])

    assert padding(sorted_) < 0.5 * padding(plain)


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("options", [{}, {"sort_window": 4, "precision": "bf16"}])
def test_resume_is_bitwise_identical(tmp_path, options):
    data = reversal_data(200)
    cfg = TrainConfig(steps=12, batch_size=16, warmup_steps=3, eval_every=100, checkpoint_every=5, **options)
    full = tiny_model()
    train(full, data, cfg, tmp_path / "full", progress=False)

    crashed = tiny_model()
    train(crashed, data, cfg, tmp_path / "split", stop_after_step=7, progress=False)  # last checkpoint: step 5
    resumed = tiny_model(seed=123)  # different init: everything must come from the checkpoint
    result = train(resumed, data, cfg, tmp_path / "split", resume=True, progress=False)
    assert result.step == 12
    w_full, w_res = _weights(full), _weights(resumed)
    assert all(torch.equal(w_full[k], w_res[k]) for k in w_full)
    lines = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert [int(__import__("json").loads(x)["step"]) for x in lines] == list(range(1, 13))


def test_training_learns_the_toy_task(tmp_path):
    data = reversal_data(512)
    cfg = TrainConfig(steps=150, batch_size=32, lr=3e-3, warmup_steps=10, eval_every=1000)
    model = tiny_model()
    before, _ = solution_loss(model, data, np.arange(64), torch.device("cpu"))
    result = train(model, data, cfg, tmp_path / "run", progress=False)
    assert result.final_loss < 0.6 * float(before)


def test_corrupt_checkpoint_never_replaces_a_good_one(tmp_path, monkeypatch):
    data = reversal_data(64)
    cfg = TrainConfig(steps=4, batch_size=8, warmup_steps=1, eval_every=100, checkpoint_every=2)
    model = tiny_model()
    train(model, data, cfg, tmp_path, stop_after_step=2, progress=False)
    good = checkpoint.find_train_state(tmp_path)
    good_state = (good / "state.json").read_text()

    real_save = checkpoint.save_file

    def truncating_save(tensors, path, *args, **kwargs):
        real_save(tensors, path, *args, **kwargs)
        if path.endswith("optimizer.safetensors"):
            with open(path, "r+b") as fh:
                fh.truncate(os.path.getsize(path) // 2)

    monkeypatch.setattr(checkpoint, "save_file", truncating_save)
    with pytest.raises(DataError, match="corrupt or truncated"):
        train(model, data, cfg, tmp_path, resume=True, progress=False)
    monkeypatch.undo()
    assert (checkpoint.find_train_state(tmp_path) / "state.json").read_text() == good_state

    # A truncated file in place is detected on resume with a one-line error.
    opt = good / "optimizer.safetensors"
    opt.write_bytes(opt.read_bytes()[:100])
    with pytest.raises(DataError, match="corrupt or truncated"):
        train(tiny_model(), data, cfg, tmp_path, resume=True, progress=False)
    with pytest.raises(DataError, match="no train_state/ checkpoint"):
        train(tiny_model(), data, cfg, tmp_path / "empty", resume=True, progress=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        model = tiny_model()
        cfg = TrainConfig(steps=6, batch_size=16, warmup_steps=2, eval_every=100)
        train(model, reversal_data(128), cfg, Path(out), progress=False)
        if rank == 0:
            checkpoint.save_weights(model, Path(out) / "ddp.safetensors")
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_two_processes_match_single_process(tmp_path):
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    torch.set_num_threads(1)
    single = tiny_model()
    cfg = TrainConfig(steps=6, batch_size=16, warmup_steps=2, eval_every=100)
    train(single, reversal_data(128), cfg, tmp_path / "single", progress=False)
    from safetensors.torch import load_file

    ddp = load_file(str(tmp_path / "ddp" / "ddp.safetensors"))
    for name, value in single.state_dict().items():
        if name.endswith("attn.k.bias"):
            # Its true gradient is exactly 0 (softmax ignores a shift shared by all keys), so Adam
            # turns float round-off, which depends on the reduction order, into full-size steps.
            continue
        torch.testing.assert_close(ddp[name], value, rtol=1e-4, atol=1e-5, msg=name)
    # And it really trained (the weights moved from the init).
    init = tiny_model().state_dict()
    assert any(not torch.allclose(init[k], ddp[k]) for k in init)


def test_from_flat_equals_from_sequences():
    rng = np.random.default_rng(1)
    seqs = [rng.integers(1, 9, size=int(n)).tolist() for n in rng.integers(3, 12, size=50)]
    starts = [int(rng.integers(1, len(s))) for s in seqs]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in seqs])])
    values = np.concatenate([np.asarray(s) for s in seqs])
    a = TokenData.from_sequences(seqs, starts, PAD)
    b = TokenData.from_flat(values, offsets, starts, PAD)
    assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.lengths, b.lengths)
    # A slice of a larger buffer (Arrow offsets need not start at 0).
    c = TokenData.from_flat(np.concatenate([[7, 7], values]), offsets + 2, starts, PAD)
    assert np.array_equal(a.tokens, c.tokens)


def test_torchrun_cli_trains_like_a_single_process(tmp_path):
    """`torchrun --nproc_per_node 2 -m searchprobe train …` on a real maze dataset = one process."""
    import subprocess
    import sys

    from safetensors.torch import load_file

    from searchprobe.tasks.maze.config import MazeConfig
    from searchprobe.tasks.maze.dataset import generate_dataset

    data = generate_dataset(MazeConfig(rows=3, cols=3, n=200, seed=0, token_format="grid", labels=False), tmp_path / "data")
    (tmp_path / "exp.toml").write_text(
        f'data = "{data}"\neval_examples = 8\n[model]\npreset = "nano"\n'
        "[train]\nsteps = 4\nbatch_size = 16\nwarmup_steps = 2\neval_every = 100\nthreads = 1\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port())]
    for runner, out in ((torchrun, "ddp"), ([sys.executable], "single")):
        proc = subprocess.run([*runner, "-m", "searchprobe", "train", str(tmp_path / "exp.toml"), "--out",
                               str(tmp_path / out), "--no-progress"], capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
    ddp, single = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("ddp", "single"))
    for name, value in single.items():
        if name.endswith("attn.k.bias"):  # see test_ddp_two_processes_match_single_process
            continue
        torch.testing.assert_close(ddp[name], value, rtol=1e-4, atol=1e-5, msg=name)
