"""Model configs, presets and construction of TransformerLens 4 native models.

Every model is a `TransformerBridge` built by `TransformerBridge.boot_native`, so every
activation has a TransformerLens hook name (`blocks.{l}.hook_resid_pre`, `blocks.{l}.attn.hook_z`,
…) that the activation store, lenses and patching use verbatim.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from searchprobe.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens.model_bridge import TransformerBridge


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a decoder-only transformer. `d_vocab` and `n_ctx` come from the dataset unless set."""

    n_layers: int = 4
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int | None = None  #: defaults to 4 * d_model; ignored when attn_only
    act_fn: Literal["gelu", "gelu_new", "relu", "silu"] = "gelu"
    normalization: Literal["LN", "RMS", "none"] = "LN"
    positional: Literal["standard", "rotary"] = "standard"
    attn_only: bool = False
    n_ctx: int | None = None
    d_vocab: int | None = None
    init_seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_layers", "d_model", "n_heads"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"model.{name} must be a positive integer, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"model.d_model={self.d_model} is not divisible by model.n_heads={self.n_heads}; "
                f"choose n_heads among {[h for h in range(1, self.d_model + 1) if self.d_model % h == 0][:12]}"
            )
        if self.positional == "rotary" and (self.d_model // self.n_heads) % 2:
            raise ConfigError(f"rotary embeddings need an even head size, got d_model/n_heads={self.d_model // self.n_heads}")

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    def with_data(self, d_vocab: int, n_ctx: int) -> "ModelConfig":
        """Fill in the vocabulary size and context length from a dataset (explicit values must fit)."""
        if self.d_vocab is not None and self.d_vocab != d_vocab:
            raise ConfigError(f"model.d_vocab={self.d_vocab} does not match the dataset vocabulary of {d_vocab} tokens")
        if self.n_ctx is not None and self.n_ctx < n_ctx:
            raise ConfigError(f"model.n_ctx={self.n_ctx} is shorter than the dataset's longest sequence ({n_ctx} tokens)")
        return dataclasses.replace(self, d_vocab=d_vocab, n_ctx=self.n_ctx or n_ctx)


#: Named presets (d_model, layers, heads). "tiny" is the issue's 0.8M-parameter reference shape.
PRESETS: dict[str, ModelConfig] = {
    "nano": ModelConfig(n_layers=2, d_model=64, n_heads=4),
    "micro": ModelConfig(n_layers=3, d_model=96, n_heads=4),
    "tiny": ModelConfig(n_layers=4, d_model=128, n_heads=4),
    "small": ModelConfig(n_layers=6, d_model=256, n_heads=8),
}


def preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; choose from: {', '.join(PRESETS)}")
    return PRESETS[name]


def bridge_config(cfg: ModelConfig):
    """The `TransformerBridgeConfig` for `cfg` (vocabulary and context must be filled in)."""
    from transformer_lens.config import TransformerBridgeConfig

    if cfg.d_vocab is None or cfg.n_ctx is None:
        raise ConfigError("model config needs d_vocab and n_ctx (take them from the dataset with .with_data)")
    return TransformerBridgeConfig(
        d_model=cfg.d_model,
        d_head=cfg.d_head,
        n_layers=cfg.n_layers,
        n_ctx=cfg.n_ctx,
        n_heads=cfg.n_heads,
        d_vocab=cfg.d_vocab,
        d_mlp=None if cfg.attn_only else (cfg.d_mlp or 4 * cfg.d_model),
        act_fn=cfg.act_fn,
        normalization_type=None if cfg.normalization == "none" else cfg.normalization,
        positional_embedding_type=cfg.positional,
        attn_only=cfg.attn_only,
        seed=cfg.init_seed,
        tokenizer_prepends_bos=False,
        default_prepend_bos=False,
    )


def build_model(cfg: ModelConfig, device: str | None = None) -> "TransformerBridge":
    """A freshly initialised bridge model (deterministic in `cfg.init_seed`)."""
    import transformer_lens.model_bridge.sources.native  # noqa: F401  (registers boot_native)
    from transformer_lens.model_bridge import TransformerBridge

    return TransformerBridge.boot_native(bridge_config(cfg), device=device)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
