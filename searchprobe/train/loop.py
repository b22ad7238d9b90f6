"""The training loop: solution-only next-token loss, AdamW, warmup + cosine, clipping, resume, DDP.

Determinism: the batch of step s is a pure function of (seed, s) (`data.BatchSchedule`), the
learning rate a pure function of s, and the model init a function of the model's init seed, so
a run killed at step k and resumed from its checkpoint ends bitwise identical to an
uninterrupted run on the same machine and thread count.

Distributed: under `torchrun`, each of the W processes takes every W-th row of the same global
batch and the loss is normalised by the global number of solution tokens, so DDP's gradient
average equals the single-process gradient of the whole batch.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from searchprobe.errors import ConfigError
from searchprobe.train.checkpoint import load_train_state, save_train_state, save_weights
from searchprobe.train.config import TrainConfig  # noqa: F401 (the loop's config; defined without torch)
from searchprobe.train.data import BatchSchedule, TokenData
from searchprobe.train.fused import FusedForward


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to cfg.lr, then cosine decay to cfg.lr * min_lr_ratio at cfg.steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA device is available (use 'auto' or 'cpu')")
    return torch.device(name)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on biases, norms or embeddings' 1-D params)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
        foreach=False,  # bitwise-reproducible resume does not depend on the foreach kernel choice
    )


def autocast(device: torch.device, precision: str):
    """bfloat16 autocast for `precision == "bf16"` (CPUs with AMX/AVX-512-BF16 run its matmuls
    several times faster), otherwise a no-op context."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def solution_loss(model: torch.nn.Module, data: TokenData, rows: np.ndarray, device: torch.device,
                  normaliser: int | None = None, precision: str = "fp32") -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over solution tokens of `rows`, divided by `normaliser` (default: their count)."""
    width = int(data.lengths[rows].max())
    tokens = torch.from_numpy(data.tokens[rows, :width]).to(device)
    mask = torch.from_numpy(data.loss_mask(rows)[:, : width - 1]).to(device)
    with autocast(device, precision):
        logits = model(tokens[:, :-1])
    picked = logits[mask]
    targets = tokens[:, 1:][mask]
    n_tokens = int(mask.sum())
    loss = F.cross_entropy(picked.float(), targets, reduction="sum") / max(1, normaliser or n_tokens)
    return loss, n_tokens


@dataclass
class TrainResult:
    step: int
    final_loss: float
    tokens_seen: int
    elapsed_s: float
    last_eval: dict[str, Any] | None
    stopped: str = "steps"  #: why the loop ended: "steps" (the last step), "time_limit" or "stop_after_step"


def _dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def train(
    model: torch.nn.Module,
    data: TokenData,
    cfg: TrainConfig,
    run_dir: Path,
    *,
    evaluate: Callable[[torch.nn.Module, int], dict[str, Any]] | None = None,
    resume: bool = False,
    stop_after_step: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train `model` in place on `data`; checkpoints, metrics and weights go to `run_dir`.

    `evaluate(model, step)` is called every `eval_every` steps and at the end (rank 0 only);
    its dict goes to metrics.jsonl. `stop_after_step` simulates a crash (tests of resume).
    """
    from tqdm.auto import tqdm

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rank, world = _dist_info()
    device = next(model.parameters()).device
    optimizer = make_optimizer(model, cfg)
    start_step, tokens_seen, elapsed = 0, 0, 0.0
    if resume:
        state = load_train_state(run_dir, model, optimizer)
        start_step, tokens_seen, elapsed = state["step"], state["tokens_seen"], state["elapsed_s"]
        _truncate_metrics(run_dir / "metrics.jsonl", start_step)
    elif rank == 0:
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    # The same function of the same parameters as the bridge, without its hooks (~1.5x faster).
    forward: torch.nn.Module = FusedForward(model) if FusedForward.supports(model) else model
    if world > 1:
        forward = torch.nn.parallel.DistributedDataParallel(forward)

    last_eval: dict[str, Any] | None = None
    loss_value = float("nan")
    bar = tqdm(total=cfg.steps, initial=start_step, disable=not progress or rank != 0, desc="train", dynamic_ncols=True)
    schedule = BatchSchedule(data.lengths, cfg.batch_size, cfg.seed, cfg.sort_window)
    t0 = time.perf_counter() - elapsed
    step = start_step
    stopped = "steps"
    while step < cfg.steps:
        rows_global = schedule(step)
        n_global = int(data.loss_mask(rows_global).sum())
        rows = rows_global[rank::world]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        # DDP averages gradients over W ranks; scale so the result is the global-batch mean.
        loss, _ = solution_loss(forward, data, rows, device, normaliser=n_global, precision=cfg.precision)
        (loss * world).backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        tokens_seen += int(data.lengths[rows_global].sum())
        loss_value = float(loss.detach()) if world == 1 else _global_loss(loss)
        record: dict[str, Any] = {"step": step, "loss": loss_value, "lr": lr_at(step - 1, cfg)}
        timed_out = cfg.time_limit_s is not None and time.perf_counter() - t0 >= cfg.time_limit_s
        if evaluate is not None and (step % cfg.eval_every == 0 or step == cfg.steps or timed_out):
            if rank == 0:
                with autocast(device, cfg.precision):
                    last_eval = evaluate(model, step)
                record.update({f"eval/{k}": v for k, v in last_eval.items()})
                bar.set_postfix_str(_short(last_eval), refresh=False)
        record.update(elapsed_s=round(time.perf_counter() - t0, 3), tokens_seen=tokens_seen)
        if rank == 0:
            _append_metrics(run_dir / "metrics.jsonl", record)
            bar.set_description(f"train loss {loss_value:.4f}")
            bar.update(1)
        if rank == 0 and (step % cfg.checkpoint_every == 0 or step == cfg.steps or timed_out):
            save_train_state(run_dir, model, optimizer, step,
                             {"tokens_seen": tokens_seen, "elapsed_s": time.perf_counter() - t0})
            save_weights(model, run_dir / "model.safetensors")
        if step >= cfg.steps:
            break
        if timed_out:
            stopped = "time_limit"
            break
        if stop_after_step is not None and step >= stop_after_step:
            stopped = "stop_after_step"
            break
    bar.close()
    return TrainResult(step, loss_value, tokens_seen, time.perf_counter() - t0, last_eval, stopped)


def _global_loss(loss: torch.Tensor) -> float:
    total = loss.detach().clone()
    torch.distributed.all_reduce(total)
    return float(total)


def _short(metrics: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.3f}" for k, v in list(metrics.items())[:3] if isinstance(v, (int, float)))


def _append_metrics(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines written after the checkpoint we resume from (they will be redone); a torn
    last line (the process was killed mid-write) goes too."""
    if not path.exists():
        return
    from searchprobe.files import read_metrics
    from searchprobe.io import atomic_write_text

    keep = [record for record in read_metrics(path) if record["step"] <= step]
    atomic_write_text(path, "".join(json.dumps(record, sort_keys=True) + "\n" for record in keep))
