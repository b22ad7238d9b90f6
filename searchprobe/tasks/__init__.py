"""Tasks with ground truth: generators, tokenizers, probe labels and pictures (no torch imports)."""
