"""`TrainConfig`: the optimisation hyper-parameters of a training run (no torch import, so a bad
config is refused before torch loads)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from searchprobe.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation hyperparameters. Fields marked hash=False do not change the result."""

    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  #: cosine decays to lr * min_lr_ratio
    warmup_steps: int = 100
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.98
    grad_clip: float = 1.0  #: max global grad norm; 0 disables clipping
    sort_window: int = 0  #: sort each run of this many batches by length (less padding); 0 = plain shuffle
    precision: Literal["fp32", "bf16"] = "fp32"  #: bf16 = autocast matmuls to bfloat16, weights and optimizer stay fp32
    seed: int = 0
    eval_every: int = 500
    checkpoint_every: int = field(default=500, metadata={"hash": False})
    time_limit_s: float | None = field(default=None, metadata={"hash": False})
    device: Literal["auto", "cpu", "cuda"] = field(default="auto", metadata={"hash": False})
    threads: int | None = field(default=None, metadata={"hash": False})  #: torch CPU threads; None = torch's default

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"train.{name} must be a positive integer, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"train.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.sort_window < 0:
            raise ConfigError(f"train.sort_window must be >= 0, got {self.sort_window}")
        if self.threads is not None and self.threads <= 0:
            raise ConfigError(f"train.threads must be a positive integer, got {self.threads}")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"train.precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.warmup_steps < 0 or self.grad_clip < 0:
            raise ConfigError("train.warmup_steps and train.grad_clip must be >= 0")
        if self.time_limit_s is not None and not (self.time_limit_s > 0 and math.isfinite(self.time_limit_s)):
            raise ConfigError(f"train.time_limit_s (--time-limit) must be a positive number of seconds, got {self.time_limit_s}")
        for name in ("lr", "weight_decay", "beta1", "beta2", "grad_clip"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"train.{name} must be a finite number, got {getattr(self, name)}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError(f"train.beta1 and train.beta2 must be in [0, 1), got {self.beta1} and {self.beta2}")
        if self.weight_decay < 0:
            raise ConfigError(f"train.weight_decay must be >= 0, got {self.weight_decay}")
