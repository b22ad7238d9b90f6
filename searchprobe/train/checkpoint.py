"""Crash-safe checkpoints in safetensors + JSON (nothing is ever unpickled).

A run directory holds:

- ``model.safetensors``: the latest weights (what analysis loads);
- ``config.json``: model, training and task config, dataset fingerprint, vocabulary, code version;
- ``train_state/``: everything `--resume` needs — ``model.safetensors``, ``optimizer.safetensors``
  (AdamW moments) and ``state.json`` (step, param groups, RNG state, tensor checksums).

``train_state/`` is written to a temporary directory, read back and verified, and only then
swapped in, so a crash or a corrupt write never replaces a good checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from searchprobe.errors import DataError
from searchprobe.io import _current_umask, atomic_write_bytes

STATE_DIR = "train_state"


def _checksum(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def model_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """Write the model's weights to `path` atomically."""
    from safetensors.torch import save

    atomic_write_bytes(path, save(model_tensors(model)))


def load_weights(model: torch.nn.Module, path: Path) -> None:
    if not path.is_file():
        raise DataError(f"no model weights at {path}")
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises several types for truncated/corrupt files
        raise DataError(f"model weights at {path} are corrupt or truncated ({type(exc).__name__}: {exc})") from None
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:  # same names, other shapes ("size mismatch for …")
        first = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc).splitlines()[0])
        raise DataError(f"{path}: weights of another shape than the run's config.json describes ({first})") from None
    if missing or unexpected:
        raise DataError(
            f"weights at {path} do not fit this model: missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}"
        )


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    sd = optimizer.state_dict()
    tensors = {
        f"state.{idx}.{name}": value.detach().cpu().contiguous()
        for idx, entry in sd["state"].items()
        for name, value in entry.items()
    }
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, groups


def save_train_state(run_dir: Path, model, optimizer, step: int, extra: dict[str, Any]) -> None:
    """Write `train_state/` via a verified temporary directory and an atomic swap."""
    run_dir = Path(run_dir)
    final = run_dir / STATE_DIR
    tmp = run_dir / f".{STATE_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = model_tensors(model)
    opt_tensors, groups = _optimizer_tensors(optimizer)
    rng = {"torch_rng": torch.get_rng_state()}
    save_file(weights, str(tmp / "model.safetensors"))
    save_file({**opt_tensors, **rng}, str(tmp / "optimizer.safetensors"))
    state = {
        "step": step,
        "param_groups": groups,
        "checksums": {"model": _checksum(weights), "optimizer": _checksum({**opt_tensors, **rng})},
        **extra,
    }
    (tmp / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
    for name in ("model.safetensors", "optimizer.safetensors"):  # safetensors makes 0600 files: follow the umask
        os.chmod(tmp / name, 0o666 & ~_current_umask())
    _verify(tmp)  # read back before it may replace the last good checkpoint
    old = run_dir / f".{STATE_DIR}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def _verify(state_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    try:
        state = json.loads((state_dir / "state.json").read_text())
        weights = load_file(str(state_dir / "model.safetensors"))
        opt = load_file(str(state_dir / "optimizer.safetensors"))
    except FileNotFoundError as exc:
        raise DataError(f"checkpoint {state_dir} is incomplete: {Path(exc.filename).name} is missing") from None
    except Exception as exc:
        raise DataError(f"checkpoint {state_dir} is corrupt or truncated ({type(exc).__name__}: {exc})") from None
    sums = state.get("checksums") if isinstance(state, dict) else None
    if not isinstance(sums, dict) or not isinstance(state.get("step"), int):
        raise DataError(f"{state_dir / 'state.json'}: not a searchprobe checkpoint state (no step or checksums)")
    if _checksum(weights) != sums.get("model") or _checksum(opt) != sums.get("optimizer"):
        raise DataError(f"checkpoint {state_dir} fails its checksum (corrupt write?)")
    return weights, opt, state


def find_train_state(run_dir: Path) -> Path | None:
    """The checkpoint to resume from; falls back to the previous one if a swap was interrupted."""
    for name in (STATE_DIR, f".{STATE_DIR}.old"):
        if (Path(run_dir) / name / "state.json").exists():
            return Path(run_dir) / name
    return None


def load_train_state(run_dir: Path, model, optimizer) -> dict[str, Any]:
    """Restore model, optimizer and RNG from `train_state/`; return the state dict (step, …)."""
    state_dir = find_train_state(run_dir)
    if state_dir is None:
        raise DataError(f"cannot resume: {run_dir} has no {STATE_DIR}/ checkpoint")
    weights, opt, state = _verify(state_dir)
    model.load_state_dict(weights)
    torch.set_rng_state(opt.pop("torch_rng"))
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in opt.items():
        _, idx, name = key.split(".", 2)
        per_param.setdefault(int(idx), {})[name] = value
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in state["param_groups"]]
    optimizer.load_state_dict({"state": per_param, "param_groups": groups})
    return state
