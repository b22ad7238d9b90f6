"""Fingerprints of models: what every derived artefact (activation store, lens, probes) is keyed by.

A trained model's fingerprint is the SHA-256 of its run's config.json ``model`` entry and the bytes
of ``model.safetensors`` (16 hex digits), so retraining, or changing the shape, invalidates
everything computed from the old weights. A randomly initialised model's is the hash of its config
with its init seed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from searchprobe.errors import DataError


def model_fingerprint(run_dir: str | Path) -> str:
    """16-hex SHA-256 of the run's model config and weight bytes."""
    run_dir = Path(run_dir)
    if not (run_dir / "model.safetensors").is_file():
        raise DataError(f"{run_dir} has no trained model (model.safetensors is missing); train it first")
    config = json.loads((run_dir / "config.json").read_text())
    h = hashlib.sha256(json.dumps(config.get("model"), sort_keys=True).encode())
    with open(run_dir / "model.safetensors", "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def random_fingerprint(model_config: dict[str, Any], init_seed: int) -> str:
    """16-hex SHA-256 of a model config and the seed a random model of that shape is built with."""
    payload = json.dumps({"model": model_config, "random_init_seed": init_seed}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
