"""Training small TransformerLens 4 native models on the searchy tasks.

- `model`: ModelConfig, named presets, building a `TransformerBridge` with `boot_native`.
- `data`: token arrays from a task dataset, the solution-only loss mask, deterministic batches.
- `loop`: AdamW + warmup + cosine, gradient clipping, periodic evaluation, crash-safe checkpoints, resume, DDP.
"""
