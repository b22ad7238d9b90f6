"""How much memory a training run will take, estimated before anything is built (no torch import).

`estimate_training_memory(model_cfg, batch_size, seq_len)` counts, in bytes, what the training loop
(`searchprobe.train.loop.train`, through the hook-free `FusedForward`) holds at its peak:

* **state** (all run long): fp32 weights, gradients and AdamW's two moments, 16 bytes a parameter
  (``16 × count_parameters(model)`` exactly), plus the causal-mask buffers (one n_ctx² bool
  matrix per layer in the bridge, one more in `FusedForward`).
* **activations** of one step, B rows cut to the batch's longest row (at most the data's longest
  sequence; the model sees T = max_len − 1 positions), N = B·T: per layer the residual stream
  entering it and after attention (fp32), the normed inputs of the QKV and MLP matmuls, Q/K/V,
  the attention pattern softmax saves (B·n_heads·T²), the head outputs before W_O, the MLP's
  pre- and post-activation (N·d_mlp each); then the final norm's input and output, the logits
  (N·d_vocab) and the log-softmax the loss saves (≤ N·d_vocab). On top of what is saved, the
  largest transient of the backward pass: three B·n_heads·T² gradients in a layer's attention,
  or the logits' gradients. Under bf16 autocast (``train.precision = "bf16"``) matmul outputs
  and the casts of their inputs take 2 bytes instead of 4 (the residual stream stays fp32) and
  the bf16 copies of the weights live until the backward pass (2 bytes a parameter).
* **evaluation** (between steps, activations freed): greedy rollouts of up to 256 prompts at once
  (`TaskData.evaluate`), with a key/value cache of 2·n_layers·B·n_ctx·d_model, two copies of the
  prompt's B·n_heads·T0² attention scores and its B·T0·d_vocab logits.
* **checkpoint** (between steps): `save_train_state` reads weights and moments back to verify them,
  12 bytes a parameter.
* a fixed **runtime** overhead of the first backward pass (thread pools, kernels, allocator), measured.
* **allocator slack**: glibc's malloc keeps the freed transients of earlier steps (batches of other
  widths do not fit the holes they leave), so the resident memory of a run climbs over its first
  hundred steps to about 2-3× the live tensors (micro on 12×12 mazes, batch 32: 450 MiB after one
  step, 900 after 40, 1150 after 150, with ~350 MiB live); so a tensor below glibc's largest mmap
  threshold (32 MiB) counts twice. Larger ones are mmapped and unmapped when freed: they count once.
  (``MALLOC_MMAP_THRESHOLD_=1048576`` keeps the resident size at the live one but makes steps ~2×
  slower on the 2-core CPU.)

peak = state + max(activations, evaluation, checkpoint) + runtime.

`experiments/benchmarks/memory_estimate.py` measures the peak resident memory of short training
runs against this estimate (within 2× on the configurations it runs). `check_training_memory`
refuses a run whose estimate exceeds the memory available (the machine's or its cgroup's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

from searchprobe.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from searchprobe.train.model import ModelConfig

#: prompts a rollout runs at once (`TaskData.rollout_metrics`' batch size)
ROLLOUT_BATCH = 256
#: bytes of fp32 weights, gradients and AdamW's exp_avg and exp_avg_sq, per parameter
STATE_BYTES_PER_PARAM = 16
#: memory the first training step takes whatever the model (OpenMP/oneDNN pools, autograd engine,
#: allocator arenas); measured by experiments/benchmarks/memory_estimate.py on a 2-core CPU
RUNTIME_OVERHEAD = 48 * 2**20
#: resident memory per byte of live activations, once glibc's heap has taken the shapes of many
#: batches (see the module docstring)
ALLOCATOR_SLACK = 2
#: glibc's largest dynamic mmap threshold (64-bit): a bigger block is always mmapped, and unmapped
#: when freed, so it leaves no hole behind
MMAP_THRESHOLD_MAX = 32 * 2**20


def _d_mlp(cfg: "ModelConfig") -> int:
    return 0 if cfg.attn_only else (cfg.d_mlp or 4 * cfg.d_model)


def parameter_count(cfg: "ModelConfig", d_vocab: int | None = None, n_ctx: int | None = None) -> int:
    """Parameters of the bridge `build_model(cfg)` makes (equal to `count_parameters` of it).

    `d_vocab` and `n_ctx` default to the config's own (0 when unset, a lower bound)."""
    d, layers, d_mlp = cfg.d_model, cfg.n_layers, _d_mlp(cfg)
    vocab = d_vocab if d_vocab is not None else (cfg.d_vocab or 0)
    ctx = n_ctx if n_ctx is not None else (cfg.n_ctx or 0)
    norm = {"LN": 2 * d, "RMS": d, "none": 0}[cfg.normalization]
    attn = 4 * d * d + 4 * d  # q, k, v, o weights and biases (n_heads · d_head = d_model)
    mlp = 0 if cfg.attn_only else norm + 2 * d * d_mlp + d_mlp + d
    embed = vocab * d + (ctx * d if cfg.positional == "standard" else 0)
    return embed + layers * (norm + attn + mlp) + norm + d * vocab  # head: no bias


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak resident bytes of a training run, by part (see the module docstring); `activations` and
    `evaluation` include the allocator slack."""

    parameters: int
    state: int
    activations: int
    evaluation: int
    checkpoint: int
    runtime: int

    @property
    def total(self) -> int:
        return self.state + max(self.activations, self.evaluation, self.checkpoint) + self.runtime

    def as_dict(self) -> dict[str, int]:
        return {"parameters": self.parameters, "state": self.state, "activations": self.activations,
                "evaluation": self.evaluation, "checkpoint": self.checkpoint, "runtime": self.runtime,
                "total": self.total}


def _resident(size: int, count: int = 1, slack: float = ALLOCATOR_SLACK) -> int:
    """Resident bytes of `count` tensors of `size` bytes made afresh every step: glibc serves those
    below its mmap threshold from a heap that keeps their holes (× `slack`), larger ones from mmap,
    returned whole when freed."""
    return int(count * size * (slack if size < MMAP_THRESHOLD_MAX else 1))


def activation_bytes(cfg: "ModelConfig", batch_size: int, positions: int, d_vocab: int, *,
                     precision: str = "fp32", loss_fraction: float = 1.0, slack: float = ALLOCATOR_SLACK) -> int:
    """Peak resident bytes of one training step's forward and backward pass on (batch_size, positions)
    tokens: what autograd saves for backward, plus the largest transient, plus bf16 weight copies
    (`slack` 1: the live tensors alone)."""
    B, T, d, H, M, L = batch_size, positions, cfg.d_model, cfg.n_heads, _d_mlp(cfg), cfg.n_layers
    N = B * T
    a = 2 if precision == "bf16" else 4  # bytes of a matmul output / a matmul's (cast) input

    def r(size: int, count: int = 1) -> int:
        return _resident(size, count, slack)

    normed = r(a * N * d) if (cfg.normalization != "none" or a == 2) else 0  # the norm's output fed to a matmul
    if cfg.normalization == "RMS":
        normed += r(4 * N * d)  # the fp32 normalised product RMSNorm's scale multiplies
    stats = r(4 * N, 2) if cfg.normalization == "LN" else r(4 * N) if cfg.normalization == "RMS" else 0
    attention = (r(4 * N * d)  # residual entering the layer (saved by its first norm)
                 + normed + stats
                 + r(3 * a * N * d)  # Q, K, V (one tensor)
                 + r(3 * d * (d + 1) * a)  # the stacked QKV weight (a fresh tensor every step)
                 + r(a * B * H * T * T)  # softmax output
                 + r(a * N * d))  # heads before W_O
    mlp = 0 if cfg.attn_only else (r(4 * N * d) + normed + stats + r(a * N * M, 2))
    loss_positions = int(N * min(1.0, max(0.0, loss_fraction)))
    saved = L * (attention + mlp) + r(4 * N * d) + normed + stats + r(4 * loss_positions * d_vocab)  # final norm, loss
    transient = max(r(a * B * H * T * T, 3),  # a layer's attention gradients
                    r(a * N * M, 2),  # an MLP's gradients
                    r(a * N * d_vocab) + r(loss_positions * d_vocab * (4 + a)))  # logits, picked rows, gradients
    # bf16 copies of the weights: the same shapes every step, so their holes are reused exactly
    weight_copies = 2 * parameter_count(cfg, d_vocab, cfg.n_ctx or positions + 1) if a == 2 else 0
    return saved + transient + weight_copies


def evaluation_bytes(cfg: "ModelConfig", shapes: Iterable[tuple[int, int]], d_vocab: int, n_ctx: int, *,
                     precision: str = "fp32", slack: float = ALLOCATOR_SLACK) -> int:
    """Peak resident bytes of greedy rollouts (no gradients) over prompt groups of (rows, prompt length)."""
    d, H, L = cfg.d_model, cfg.n_heads, cfg.n_layers
    a = 2 if precision == "bf16" else 4

    def r(size: int, count: int = 1) -> int:
        return _resident(size, count, slack)

    peak = 0
    for rows, length in shapes:
        B, T = int(rows), int(length)
        if B <= 0 or T <= 0:
            continue
        cache = r(B * n_ctx * d * a, 2 * L)  # keys and values of every layer
        layer = r(a * B * H * T * T, 2) + r(4 * B * T * d, 2) + r(a * B * T * d, 2) + r(3 * a * B * T * d)
        logits = r(a * B * T * d_vocab) + r(4 * B * T * d, 2)
        peak = max(peak, cache + max(layer, logits))
    weight_copies = 2 * parameter_count(cfg, d_vocab, n_ctx) if a == 2 and peak else 0
    return peak + weight_copies


def rollout_shapes(prompt_lengths: Sequence[int], batch_size: int = ROLLOUT_BATCH) -> list[tuple[int, int]]:
    """The (rows, prompt length) batches `greedy_rollout` runs: prompts grouped by length, `batch_size` at most."""
    counts: dict[int, int] = {}
    for length in prompt_lengths:
        counts[int(length)] = counts.get(int(length), 0) + 1
    return [(min(batch_size, count), length) for length, count in counts.items()]


def estimate_training_memory(cfg: "ModelConfig", batch_size: int, seq_len: int | None, *, precision: str = "fp32",
                             eval_shapes: Iterable[tuple[int, int]] = (), loss_fraction: float = 1.0,
                             runtime: int = RUNTIME_OVERHEAD) -> MemoryEstimate:
    """Peak bytes of training `cfg` with AdamW on batches of `batch_size` sequences of at most `seq_len`
    tokens (`TokenData.max_len`; None: only the weights, gradients and optimizer state, a lower bound
    that needs no data). `cfg.d_vocab`/`cfg.n_ctx` are used when set (else taken as 0 / `seq_len`).
    `eval_shapes`: the (rows, prompt length) rollout batches of an evaluation (`rollout_shapes`);
    `loss_fraction`: the share of positions that carry loss (1 is the upper bound)."""
    n_ctx = cfg.n_ctx or seq_len or 0
    d_vocab = cfg.d_vocab or 0
    n_params = parameter_count(cfg, d_vocab, n_ctx)
    masks = (cfg.n_layers + 1) * n_ctx * n_ctx  # bool causal masks: one per bridge layer, one in FusedForward
    largest = max(d_vocab * cfg.d_model, n_ctx * cfg.d_model, cfg.d_model * _d_mlp(cfg), 3 * cfg.d_model * cfg.d_model)
    state = STATE_BYTES_PER_PARAM * n_params + masks + 8 * largest  # + AdamW's per-tensor temporaries
    if seq_len is None:
        return MemoryEstimate(n_params, state, 0, 0, 12 * n_params, 0)
    positions = max(1, int(seq_len) - 1)
    return MemoryEstimate(
        parameters=n_params,
        state=state,
        activations=activation_bytes(cfg, int(batch_size), positions, d_vocab, precision=precision,
                                     loss_fraction=loss_fraction),
        evaluation=evaluation_bytes(cfg, eval_shapes, d_vocab, n_ctx, precision=precision),
        checkpoint=12 * n_params,
        runtime=runtime,
    )


def gib(n: float) -> str:
    """`n` bytes for a message: MiB below 1 GiB, GiB with one decimal, TiB and up beyond 1024 GiB."""
    if n < 2**30:
        return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 2**20:.2f} MiB"
    for unit in ("GiB", "TiB", "PiB", "EiB"):
        n /= 2**10 if unit != "GiB" else 2**30
        if n < 1024 or unit == "EiB":
            return f"{n:.1f} {unit}"
    return f"{n:.1f} EiB"  # pragma: no cover


def check_training_memory(cfg: "ModelConfig", batch_size: int, seq_len: int | None, *, precision: str = "fp32",
                          eval_shapes: Iterable[tuple[int, int]] = (), loss_fraction: float = 1.0,
                          available: int | None = None, where: str | None = None) -> MemoryEstimate:
    """The estimate, or a one-line ConfigError when it exceeds the memory available: `available`
    bytes (`where` says whose), default the machine's or its cgroup's (`guard.available_memory`)."""
    from searchprobe import guard

    estimate = estimate_training_memory(cfg, batch_size, seq_len, precision=precision, eval_shapes=eval_shapes,
                                        loss_fraction=loss_fraction)
    if available is None:
        available = guard.available_memory()
        where = guard.memory_source()
    if available is None or estimate.total <= available:
        return estimate
    model = (f"model {estimate.parameters:,} parameters: {cfg.n_layers:,} layers × d_model {cfg.d_model:,}, "
             f"{cfg.n_heads} heads")
    if seq_len is None:
        raise ConfigError(f"training needs at least {gib(estimate.total)} ({model}; {STATE_BYTES_PER_PARAM} bytes a "
                          f"parameter for weights, gradients and AdamW) but {gib(available)} is available "
                          f"({where or 'this machine'}); lower the model size")
    shape = f"batch {batch_size:,}, sequence {seq_len:,} tokens" + (", bf16" if precision == "bf16" else "")
    advice = "lower batch_size / the model size"
    if estimate.evaluation > max(estimate.activations, estimate.checkpoint):  # the rollouts, not the steps
        shape += f"; its evaluation's rollouts of up to {ROLLOUT_BATCH} prompts take {gib(estimate.evaluation)}"
        advice = f"lower eval_examples (below {ROLLOUT_BATCH}) / the model size"
    raise ConfigError(f"training needs about {gib(estimate.total)} ({model}; {shape}) but {gib(available)} is "
                      f"available ({where or 'this machine'}); {advice}")


def eval_prompt_lengths(task_data, split: str, n: int) -> list[int]:
    """Prompt lengths of the first `n` rows of `split`: what an evaluation's rollouts start from."""
    from searchprobe.train.task_data import generation_start

    ds = task_data.split(split)
    ds = ds.select(range(min(n, len(ds))))
    columns = ["solution_start"] + (["trace_start"] if "trace_start" in ds.column_names else [])
    return [int(s) for s in generation_start(ds.select_columns(columns).with_format("numpy")[:])]


def device_memory(device) -> tuple[int | None, str | None]:
    """(free bytes, whose) of a CUDA device; (None, None) for the CPU (the machine's or cgroup's, see
    `guard.available_memory`)."""
    if getattr(device, "type", str(device)) != "cuda":
        return None, None
    import torch

    try:
        free, _total = torch.cuda.mem_get_info(device)
        return int(free), f"free memory of {torch.cuda.get_device_name(device)}"
    except (RuntimeError, AssertionError):
        return None, None


def check_run_memory(cfg, model_cfg: "ModelConfig", train_data=None, task_data=None, device=None,
                     world: int = 1) -> MemoryEstimate:
    """`check_training_memory` for an experiment (`ExperimentConfig`): its batch (this rank's share of
    it), precision and evaluation; before the data is read (`train_data` None) only the weights,
    gradients and optimizer state are counted, so an absurd model shape is refused instantly."""
    train = cfg.train
    batch = -(-train.batch_size // max(1, world))
    available, where = device_memory(device) if device is not None else (None, None)
    if train_data is None:
        return check_training_memory(model_cfg, batch, None, available=available, where=where)
    shapes = rollout_shapes(eval_prompt_lengths(task_data, cfg.eval_split, cfg.eval_examples)) \
        if task_data is not None else ()
    return check_training_memory(model_cfg, batch, train_data.max_len, precision=train.precision, eval_shapes=shapes,
                                 available=available, where=where)
