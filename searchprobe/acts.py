"""Activation store: run a model over a dataset, keep chosen hook points at positions chosen by token role.

Layout of a store directory (``<run_dir>/acts/<model_tag>-<plan_hash>/``)::

    meta.json                  format, model fingerprint, plan (hooks, roles, split, examples, dtype, shard size),
                               feature size per hook, label names/kinds, number of shards, complete flag
    shard-00000.safetensors    one file per `shard_size` examples, written atomically; tensors:
        act/<hook>/<role>      (n, d) activations (float32 / float16 / bfloat16), zeros where the role is absent
        index/example          (n,) int64 row of the example in the dataset split
        index/position         (n, R) int32 token position of each role, -1 where the role is absent
        index/token            (n, R) int32 token id at that position, -1 where absent (control tasks use it)
        label/<name>           per-example label arrays (see `searchprobe.probe.labels`)
      and the example ids (dataset ``id`` column) as JSON in the safetensors metadata ``ids``.

Memory stays bounded by one shard; an interrupted extraction resumes by skipping the shards that are
already on disk; a store written by another model (`searchprobe.fingerprints`) is refused with
`FingerprintMismatch`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from searchprobe.errors import DataError, FingerprintMismatch, InputError
from searchprobe.io import atomic_write_bytes, atomic_write_json
from searchprobe.fingerprints import model_fingerprint, random_fingerprint  # noqa: F401 (re-exported)

STORE_FORMAT = "searchprobe-acts/1"
DTYPES = ("float32", "float16", "bfloat16")

def hook_names_for(n_layers: int, attn_only: bool = False) -> list[str]:
    """The hook points a store can record, in model order: resid pre/mid/post, attn_out, mlp_out, attn.hook_z."""
    names: list[str] = []
    for layer in range(n_layers):
        names += [f"blocks.{layer}.hook_resid_pre", f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.hook_attn_out"]
        if not attn_only:
            names += [f"blocks.{layer}.hook_resid_mid", f"blocks.{layer}.hook_mlp_out"]
        names.append(f"blocks.{layer}.hook_resid_post")
    return names


def default_hooks(n_layers: int) -> list[str]:
    """The residual stream before every layer and after the last one."""
    return [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)] + [f"blocks.{n_layers - 1}.hook_resid_post"]


def hook_layer(hook: str) -> float:
    """Depth of a hook for ordering/plotting: resid_pre of layer l = l, mid/attn = l + 0.5, post/mlp = l + 1."""
    parts = hook.split(".")
    layer = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    if hook.endswith("resid_pre"):
        return float(layer)
    if hook.endswith(("hook_resid_post", "hook_mlp_out")):
        return layer + 1.0
    return layer + 0.5


def find_positions(roles: Sequence[np.ndarray], codes: Sequence[int]) -> np.ndarray:
    """int32 (n, R): first position of each role code in each sequence's role array; -1 where absent."""
    out = np.full((len(roles), len(codes)), -1, dtype=np.int32)
    codes_arr = np.asarray(codes)
    for i, seq in enumerate(roles):
        hit = np.asarray(seq)[:, None] == codes_arr[None, :]
        present = hit.any(axis=0)
        out[i, present] = hit.argmax(axis=0)[present]
    return out


def padded_batches(sequences: Sequence[np.ndarray], batch_size: int, pad_id: int = 0):
    """``(start, tokens, lengths)`` batches of `sequences` in order, right-padded with `pad_id` to the
    batch's longest: under causal attention a pad never reaches a real position, so the activations
    of real positions are those of the unpadded sequence."""
    for start in range(0, len(sequences), batch_size):
        seqs = sequences[start:start + batch_size]
        lengths = np.array([len(t) for t in seqs])
        batch = np.full((len(seqs), int(lengths.max())), pad_id, dtype=np.int64)
        for i, t in enumerate(seqs):
            batch[i, :len(t)] = t
        yield start, batch, lengths


def collect(model, sequences: Sequence[np.ndarray], hooks: Sequence[str], positions: np.ndarray, *,
            batch_size: int = 128, pad_id: int = 0, dtype=None) -> dict[str, Any]:
    """The one activation collector: each hook's activation at chosen positions of each sequence.

    `positions` int (n, R): R positions per sequence, -1 where absent (zeros are returned there).
    Returns ``{hook: tensor (n, R, d)}`` on the CPU in `dtype` (float32 by default); ``attn.hook_z``
    has its heads flattened into d. Sequences of any lengths share a batch (see `padded_batches`).
    """
    import torch

    dtype = dtype or torch.float32
    valid = set(model.hook_dict)
    bad = [h for h in hooks if h not in valid]
    if bad:
        raise InputError(f"hook {bad[0]!r} does not exist in this model; valid: {', '.join(sorted(valid))}")
    positions = np.asarray(positions, dtype=np.int64).reshape(len(sequences), -1)
    device = next(model.parameters()).device
    parts: dict[str, list] = {h: [] for h in hooks}
    for start, batch, _ in padded_batches(sequences, batch_size, pad_id):
        pos = torch.as_tensor(positions[start:start + len(batch)], device=device)

        def grabber(name: str, pos=pos):
            def grab(tensor, hook):
                x = tensor.reshape(tensor.shape[0], tensor.shape[1], -1)
                idx = pos.clamp(min=0)[..., None].expand(-1, -1, x.shape[-1])
                parts[name].append((torch.gather(x, 1, idx) * (pos >= 0)[..., None]).to(dtype).cpu())
            return grab

        with torch.no_grad():
            model.run_with_hooks(torch.as_tensor(batch, device=device), fwd_hooks=[(h, grabber(h)) for h in hooks])
    return {h: torch.cat(parts[h]) for h in hooks}


@dataclass(frozen=True)
class StorePlan:
    """What a store records; its hash names the store directory."""

    hooks: tuple[str, ...]  #: TransformerLens hook names, verbatim
    roles: tuple[str, ...]  #: position roles (token role names)
    split: str  #: dataset split the examples come from
    max_examples: int  #: first N examples of the split
    dtype: str = "float32"  #: storage dtype: float32, float16 or bfloat16
    shard_size: int = 1024  #: examples per shard
    dataset_fingerprint: str = ""

    def key(self) -> str:
        payload = json.dumps(self.__dict__, sort_keys=True, default=list)
        return hashlib.sha256(payload.encode()).hexdigest()[:10]


@dataclass
class ActivationStore:
    """A store on disk: read features per (hook, role) and labels across shards."""

    path: Path
    meta: dict[str, Any] = field(repr=False)

    @classmethod
    def open(cls, path: str | Path, expected_fingerprint: str | None = None) -> "ActivationStore":
        path = Path(path)
        if not (path / "meta.json").is_file():
            raise DataError(f"{path} is not an activation store: meta.json is missing")
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("format") != STORE_FORMAT:
            raise DataError(f"{path}/meta.json has format {meta.get('format')!r}; this searchprobe reads {STORE_FORMAT}")
        if expected_fingerprint is not None and meta["fingerprint"] != expected_fingerprint:
            raise FingerprintMismatch(
                f"activation store {path} was written by model {meta['fingerprint']}, not by this model "
                f"({expected_fingerprint}); delete the store or pass --overwrite")
        return cls(path, meta)

    @property
    def hooks(self) -> list[str]:
        return list(self.meta["plan"]["hooks"])

    @property
    def roles(self) -> list[str]:
        return list(self.meta["plan"]["roles"])

    @property
    def n_examples(self) -> int:
        return int(self.meta["n_examples"])

    def _shards(self) -> list[Path]:
        return [self.path / f"shard-{i:05d}.safetensors" for i in range(int(self.meta["n_shards"]))]

    def _concat(self, key: str) -> np.ndarray:
        import torch
        from safetensors import safe_open

        parts = []
        for shard in self._shards():
            with safe_open(str(shard), framework="pt") as fh:
                parts.append(fh.get_tensor(key).to(torch.float32) if key.startswith("act/") else fh.get_tensor(key))
        return torch.cat(parts).numpy()

    def features(self, hook: str, role: str) -> np.ndarray:
        """float32 (n, d) activations of `hook` at the position of `role` (zeros where absent)."""
        if hook not in self.hooks or role not in self.roles:
            raise InputError(f"store {self.path} has no ({hook!r}, {role!r}); it has hooks {self.hooks} and roles {self.roles}")
        return self._concat(f"act/{hook}/{role}")

    def feature_width(self, hook: str, role: str) -> int:
        """d of `hook`'s features (read from the first shard's header)."""
        from safetensors import safe_open

        with safe_open(str(self._shards()[0]), framework="pt") as fh:
            return int(fh.get_slice(f"act/{hook}/{role}").get_shape()[1])

    def label(self, name: str) -> np.ndarray:
        return self._concat(f"label/{name}")

    @property
    def positions(self) -> np.ndarray:
        return self._concat("index/position")

    @property
    def tokens(self) -> np.ndarray:
        return self._concat("index/token")

    @property
    def example_index(self) -> np.ndarray:
        return self._concat("index/example")

    def example_ids(self) -> list[str]:
        from safetensors import safe_open

        ids: list[str] = []
        for shard in self._shards():
            with safe_open(str(shard), framework="pt") as fh:
                ids += json.loads(fh.metadata()["ids"])
        return ids


def _torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def extract_activations(model, data, plan: StorePlan, out: str | Path, fingerprint: str, *,
                        label_fn=None, batch_size: int = 128, overwrite: bool = False,
                        progress: bool = False, stop_after_shards: int | None = None) -> ActivationStore:
    """Run `model` over the first `plan.max_examples` rows of split `plan.split` of `data` (a `TaskData`)
    into a store at `out`.

    `label_fn(rows: dict of numpy columns, n_rows, n_cols...) -> dict[str, np.ndarray]` adds per-example labels
    to every shard. Completed shards of an interrupted run with the same plan and fingerprint are kept.
    `stop_after_shards` stops early (for tests of resumption).
    """
    import torch
    from safetensors.torch import save as save_safetensors

    out = Path(out)
    if plan.dtype not in DTYPES:
        raise InputError(f"dtype {plan.dtype!r} for the activation store; allowed: {', '.join(DTYPES)}")
    split = data.split(plan.split)
    n = min(plan.max_examples, len(split))
    valid_hooks = set(model.hook_dict)
    bad = [h for h in plan.hooks if h not in valid_hooks]
    if bad:
        raise InputError(f"hook {bad[0]!r} does not exist in this model; valid: {', '.join(sorted(valid_hooks))}")
    codes = [data.task.role_code(r) for r in plan.roles]
    n_shards = -(-n // plan.shard_size)
    meta = {"format": STORE_FORMAT, "fingerprint": fingerprint, "plan": plan.__dict__ | {"hooks": list(plan.hooks), "roles": list(plan.roles)},
            "n_examples": n, "n_shards": n_shards, "complete": False, "task": data.task.name}
    if (out / "meta.json").exists():
        old = json.loads((out / "meta.json").read_text())
        if old.get("fingerprint") != fingerprint and not overwrite:
            raise FingerprintMismatch(
                f"activation store {out} was written by model {old.get('fingerprint')}, not by this model "
                f"({fingerprint}); delete the store or pass --overwrite")
        if old.get("complete") and old.get("fingerprint") == fingerprint and old.get("plan") == meta["plan"]:
            return ActivationStore.open(out, fingerprint)
        if old.get("fingerprint") != fingerprint or old.get("plan") != meta["plan"]:
            for stale in out.glob("shard-*.safetensors"):
                stale.unlink()
    atomic_write_json(out / "meta.json", meta)
    pad_id = data.pad_id
    store_dtype = _torch_dtype(plan.dtype)
    shards = range(n_shards)
    if progress:
        from tqdm import tqdm

        shards = tqdm(shards, desc="activations", unit="shard")
    written = 0
    for s in shards:
        path = out / f"shard-{s:05d}.safetensors"
        if path.exists():
            continue
        lo, hi = s * plan.shard_size, min(n, (s + 1) * plan.shard_size)
        rows = split.select(range(lo, hi)).with_format("numpy")[:]
        tokens_list = [np.asarray(t, dtype=np.int64) for t in rows["tokens"]]
        positions = find_positions([np.asarray(r) for r in rows["roles"]], codes)
        token_at = np.where(positions >= 0,
                            np.array([[t[p] if p >= 0 else -1 for p in prow] for t, prow in zip(tokens_list, positions)]).reshape(positions.shape),
                            -1).astype(np.int32)
        acts = collect(model, tokens_list, plan.hooks, positions, batch_size=batch_size, pad_id=pad_id,
                       dtype=store_dtype)
        tensors: dict[str, Any] = {}
        for h in plan.hooks:
            for r, role in enumerate(plan.roles):
                tensors[f"act/{h}/{role}"] = acts[h][:, r].contiguous()
        tensors["index/example"] = torch.arange(lo, hi, dtype=torch.int64)
        tensors["index/position"] = torch.as_tensor(positions)
        tensors["index/token"] = torch.as_tensor(token_at)
        if label_fn is not None:
            for name, arr in label_fn(rows).items():
                tensors[f"label/{name}"] = torch.as_tensor(np.ascontiguousarray(arr))
        ids = [str(x) for x in rows["id"]] if "id" in rows else [str(i) for i in range(lo, hi)]
        atomic_write_bytes(path, save_safetensors(tensors, metadata={"ids": json.dumps(ids)}))
        written += 1
        if stop_after_shards is not None and written >= stop_after_shards:
            return ActivationStore(out, meta)
    meta["complete"] = True
    first = out / "shard-00000.safetensors"
    from safetensors import safe_open

    with safe_open(str(first), framework="pt") as fh:
        meta["d"] = {h: int(fh.get_slice(f"act/{h}/{plan.roles[0]}").get_shape()[-1]) for h in plan.hooks}
    atomic_write_json(out / "meta.json", meta)
    return ActivationStore(out, meta)


# --- notebook access -----------------------------------------------------------------------------
def expand_hooks(names: Sequence[str], n_layers: int) -> list[str]:
    """Hook names from TransformerLens shorthands: ``"resid_pre"`` → that hook at every layer
    (through TransformerLens's ``get_act_name``), full names such as ``"blocks.2.hook_resid_pre"`` as given."""
    from transformer_lens.utilities import get_act_name

    out: list[str] = []
    for name in names:
        full = [name] if "." in name or name.startswith("hook_") else [get_act_name(name, layer) for layer in range(n_layers)]
        out += [h for h in full if h not in out]
    return out


@dataclass(frozen=True)
class Activations:
    """Activations of one store, indexed like TransformerLens's ``ActivationCache``.

    ``acts["resid_pre", 2, "target"]`` (shorthand, layer, role) or ``acts["blocks.2.hook_resid_pre",
    "target"]`` is the float32 (n, d) array of that hook at the position of that role, one row per
    example in `ids` order (the split's first n rows); rows where the role is absent are zeros.
    """

    store: ActivationStore

    def __repr__(self) -> str:
        return (f"Activations(n={self.store.n_examples}, hooks={len(self.store.hooks)}, roles={self.store.roles}, "
                f"split={self.store.meta['plan']['split']!r})")

    def __len__(self) -> int:
        return self.store.n_examples

    def __getitem__(self, key) -> np.ndarray:
        from transformer_lens.utilities import get_act_name

        if not isinstance(key, tuple) or len(key) not in (2, 3):
            raise InputError(f"index activations as acts[hook, layer, role] or acts[full_hook_name, role], not {key!r}")
        hook = get_act_name(key[0], key[1]) if len(key) == 3 else key[0]
        return self.store.features(hook, key[-1])

    @property
    def ids(self) -> list[str]:
        """The dataset ``id`` of each row."""
        return self.store.example_ids()

    @property
    def present(self) -> np.ndarray:
        """bool (n, R): whether each role occurs in each example (`roles` order)."""
        return self.store.positions >= 0


def run_activations(run, hooks: Sequence[str], roles: Sequence[str], *, split: str = "test", n: int = 1000,
                    dtype: str = "float32", progress: bool = False) -> Activations:
    """Activations of a loaded run's model on the first `n` rows of `split`, cached in ``<run>/acts/``.

    The cache is keyed by the model fingerprint, the dataset fingerprint, hooks, roles, split, n
    and dtype: a retrained model (new weights) or another dataset recomputes it.
    """
    data = run.data
    if isinstance(hooks, str) or isinstance(roles, str):
        raise InputError("hooks and roles are lists of names, e.g. run.activations(['resid_pre'], roles=['target'])")
    if n <= 0:
        raise InputError(f"n={n} examples; allowed: a positive number")
    full_hooks = expand_hooks(hooks, run.model.cfg.n_layers)
    for role in roles:
        data.task.role_code(role)  # an unknown role name is a one-line error before any work
    plan = StorePlan(tuple(full_hooks), tuple(roles), split, min(n, len(data.split(split))), dtype,
                     dataset_fingerprint=data.stored.fingerprint)
    # "cache-" stores hold no labels, so they are kept apart from the probing stage's "trained-" stores
    store = extract_activations(run.model, data, plan, Path(run.run_dir) / "acts" / f"cache-{plan.key()}",
                                model_fingerprint(run.run_dir), overwrite=True, progress=progress)
    return Activations(store)
