"""Logit lens and tuned lens: what would the model predict if it stopped at layer l?

Every residual-stream state (``blocks.{l}.hook_resid_pre``, ``…resid_mid``, and the last
``resid_post``) is read through the model's own final norm and unembedding, exactly as
TransformerLens's ``ActivationCache.accumulated_resid(incl_mid=True, apply_ln=True)`` followed
by ``model.unembed`` does (``ln_final`` recomputes its statistics per state), so the last
layer's readout *is* the model's logits. The tuned lens (Belrose et al. 2023) puts one affine
translator ``h ↦ h W_l + b_l`` (initialised to the identity) in front of that readout, trained
by KL to the final layer's distribution.

Readouts are taken at the positions that predict a solution token (``<PATH_START>`` predicting
the origin, each path cell predicting the next cell or ``<PATH_END>``), grouped by the role of
the position's token. For mazes a candidate-solution view splits each layer's mass over the
next cell into legal moves (open neighbours of the current cell) vs the rest, and toward the
target (the next cell on the true path) vs the other legal moves.

`run_lens(run_dir)` writes ``<run_dir>/lens/``: ``summary.json``, ``report.json`` (the report
contract), PNG figures and ``tuned_lens.safetensors`` (with the model's fingerprint).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from searchprobe.errors import DataError, FingerprintMismatch, InputError
from searchprobe.io import atomic_write_bytes, atomic_write_json

if TYPE_CHECKING:  # pragma: no cover
    import torch

LENS_FORMAT = "searchprobe-lens/1"
TUNED_LENS_FILE = "tuned_lens.safetensors"


# --- fingerprints ------------------------------------------------------------------------------
def model_fingerprint(run_dir: str | Path) -> str:
    """sha256 of the run's model.safetensors: a lens is only valid for these exact weights."""
    path = Path(run_dir) / "model.safetensors"
    if not path.is_file():
        raise DataError(f"{run_dir} has no trained model (model.safetensors is missing); train it first")
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- which predictions are read ----------------------------------------------------------------
@dataclass(frozen=True)
class Predictions:
    """The next-token predictions a lens reads: one entry per (example, position).

    Position t predicts token t + 1; it is selected iff that token is part of the solution.
    """

    example: np.ndarray  #: int (P,) row of the batch
    position: np.ndarray  #: int (P,) position of the predicting token
    role: np.ndarray  #: int (P,) role code of the token at `position`
    target: np.ndarray  #: int (P,) the correct next token id

    def __len__(self) -> int:
        return len(self.example)


def solution_predictions(tokens: np.ndarray, lengths: np.ndarray, solution_start: np.ndarray,
                         roles: np.ndarray) -> Predictions:
    """Predictions of the solution tokens of right-padded (B, T) `tokens` (pads never selected)."""
    B, T = tokens.shape
    pos = np.arange(T - 1)[None, :]
    mask = (pos + 1 >= solution_start[:, None]) & (pos + 1 < lengths[:, None])
    example, position = np.nonzero(mask)
    return Predictions(example, position, roles[example, position], tokens[example, position + 1])


# --- maze geometry for the candidate-solution view ---------------------------------------------
@dataclass(frozen=True)
class CellVocab:
    """Which vocabulary ids are maze cells: ``cell_of[id] = (row, col)`` or (-1, -1)."""

    cell_of: np.ndarray  #: int (V, 2)
    id_of: dict[tuple[int, int], int]

    @classmethod
    def from_vocab(cls, vocab: Sequence[str]) -> "CellVocab":
        cell_of = np.full((len(vocab), 2), -1, dtype=np.int64)
        id_of = {}
        for i, tok in enumerate(vocab):
            if tok.startswith("(") and tok.endswith(")") and "," in tok:
                r, c = tok[1:-1].split(",")
                if r.isdigit() and c.isdigit():
                    cell_of[i] = (int(r), int(c))
                    id_of[(int(r), int(c))] = i
        return cls(cell_of, id_of)

    @property
    def is_cell(self) -> np.ndarray:
        return self.cell_of[:, 0] >= 0


def legal_next_mask(current: np.ndarray, connections: np.ndarray, cells: CellVocab) -> np.ndarray:
    """bool (P, V): vocabulary ids that are open neighbours of each prediction's current cell.

    `current` int (P, 2) (row, col), -1 where the token is not a cell; `connections` bool (P, 2, R, C).
    """
    P, V = len(current), len(cells.cell_of)
    legal = np.zeros((P, V), dtype=bool)
    R, C = connections.shape[2:]
    r, c = current[:, 0], current[:, 1]
    valid = r >= 0
    rows = np.arange(P)
    moves = (  # (dr, dc, passage open?)
        (1, 0, lambda: connections[rows, 0, np.clip(r, 0, R - 1), np.clip(c, 0, C - 1)] & (r + 1 < R)),
        (-1, 0, lambda: connections[rows, 0, np.clip(r - 1, 0, R - 1), np.clip(c, 0, C - 1)] & (r - 1 >= 0)),
        (0, 1, lambda: connections[rows, 1, np.clip(r, 0, R - 1), np.clip(c, 0, C - 1)] & (c + 1 < C)),
        (0, -1, lambda: connections[rows, 1, np.clip(r, 0, R - 1), np.clip(c - 1, 0, C - 1)] & (c - 1 >= 0)),
    )
    lookup = np.full((R + 2, C + 2), -1, dtype=np.int64)  # cell -> vocab id, padded for off-grid moves
    for (cr, cc), i in cells.id_of.items():
        if cr < R and cc < C:
            lookup[cr + 1, cc + 1] = i
    for dr, dc, is_open in moves:
        ok = valid & is_open()
        ids = lookup[np.clip(r + dr + 1, 0, R + 1), np.clip(c + dc + 1, 0, C + 1)]
        ok &= ids >= 0
        legal[rows[ok], ids[ok]] = True
    return legal


# --- readouts ----------------------------------------------------------------------------------
@dataclass
class ReadoutStats:
    """Per lens layer × prediction statistics (arrays of shape (S, P)); maze fields NaN where n/a."""

    prob_correct: np.ndarray
    rank_correct: np.ndarray  #: 0 = the correct token is top-1
    top1: np.ndarray
    kl_to_final: np.ndarray  #: KL(final layer ‖ this layer), nats
    entropy: np.ndarray  #: nats
    legal_mass: np.ndarray  #: mass on open neighbours of the current cell
    illegal_mass: np.ndarray  #: mass on every other cell token
    toward_mass: np.ndarray  #: mass on the next cell of the true path
    away_mass: np.ndarray  #: mass on the other legal neighbours

    @classmethod
    def concat(cls, parts: Sequence["ReadoutStats"]) -> "ReadoutStats":
        return cls(**{f: np.concatenate([getattr(p, f) for p in parts], axis=1) for f in cls.__dataclass_fields__})


def readout_stats(log_probs: "torch.Tensor", final_log_probs: "torch.Tensor", targets: "torch.Tensor",
                  legal: "torch.Tensor | None" = None, toward: "torch.Tensor | None" = None,
                  is_cell: "torch.Tensor | None" = None) -> ReadoutStats:
    """Statistics of (S, P, V) lens log-probabilities against the final (P, V) ones and the targets.

    `legal` (P, V) bool, `toward` (P,) id or -1, `is_cell` (V,) bool enable the maze view.
    """
    import torch

    S, P, V = log_probs.shape
    probs = log_probs.exp()
    idx = targets.view(1, P, 1).expand(S, P, 1)
    correct_lp = log_probs.gather(-1, idx).squeeze(-1)
    rank = (log_probs > correct_lp.unsqueeze(-1)).sum(-1)
    final_p = final_log_probs.exp()
    kl = (final_p.unsqueeze(0) * (final_log_probs.unsqueeze(0) - log_probs)).sum(-1).clamp_min(0)
    entropy = -(probs * log_probs).sum(-1)
    nan = torch.full((S, P), float("nan"))
    legal_m = illegal_m = toward_m = away_m = nan
    if legal is not None and toward is not None and is_cell is not None:
        applies = (toward >= 0) & legal.any(-1)
        legal_m = (probs * legal.unsqueeze(0)).sum(-1)
        cell_m = (probs * is_cell.view(1, 1, V)).sum(-1)
        illegal_m = cell_m - legal_m
        toward_m = probs.gather(-1, toward.clamp_min(0).view(1, P, 1).expand(S, P, 1)).squeeze(-1)
        away_m = legal_m - toward_m
        legal_m, illegal_m, toward_m, away_m = (torch.where(applies.unsqueeze(0), m, nan)
                                                for m in (legal_m, illegal_m, toward_m, away_m))
    as_np = lambda t: t.detach().float().cpu().numpy()  # noqa: E731
    return ReadoutStats(as_np(correct_lp.exp()), rank.cpu().numpy().astype(np.int32),
                        log_probs.argmax(-1).cpu().numpy().astype(np.int32), as_np(kl), as_np(entropy),
                        as_np(legal_m), as_np(illegal_m), as_np(toward_m), as_np(away_m))


def residual_stack(model, tokens: "torch.Tensor") -> tuple["torch.Tensor", list[str], list[str]]:
    """Raw residual states (S, B, T, d_model) at every lens layer, their labels and hook names.

    One cached forward pass; the stack is TransformerLens's ``accumulated_resid(incl_mid=True)``:
    resid_pre and resid_mid of every block, then the last block's resid_post ("final_post").
    """
    n_layers = model.cfg.n_layers
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: "hook_resid_" in name)
    stack, labels = cache.accumulated_resid(incl_mid=True, return_labels=True)
    hooks = []
    for label in labels:
        if label == "final_post":
            hooks.append(f"blocks.{n_layers - 1}.hook_resid_post")
        else:
            layer, kind = label.split("_")
            hooks.append(f"blocks.{layer}.hook_resid_{kind}")
    return stack, list(labels), hooks


def read_through_unembed(model, residuals: "torch.Tensor") -> "torch.Tensor":
    """Logits of (…, d_model) residual states via the model's ln_final (fresh statistics) and unembed."""
    shape = residuals.shape
    flat = residuals.reshape(1, -1, shape[-1])
    return model.unembed(model.ln_final(flat)).reshape(*shape[:-1], -1)


# --- tuned lens --------------------------------------------------------------------------------
class TunedLens:
    """One affine translator per lens layer but the last: ``h ↦ h @ weight[l] + bias[l]``.

    scikit-learn style: hyperparameters in ``__init__``; ``fit`` sets ``weight_``/``bias_``
    (identity-initialised) and ``loss_history_``, and returns self.
    """

    def __init__(self, steps: int = 300, lr: float = 1e-3, batch_size: int = 2048, seed: int = 0,
                 weight_decay: float = 0.0):
        if steps <= 0 or batch_size <= 0 or not lr > 0:
            raise InputError(f"tuned lens needs steps > 0, batch_size > 0, lr > 0; got {steps}, {batch_size}, {lr}")
        self.steps, self.lr, self.batch_size, self.seed, self.weight_decay = steps, lr, batch_size, seed, weight_decay

    def __repr__(self) -> str:
        fitted = f", layers={len(self.weight_)}" if hasattr(self, "weight_") else ""
        return f"TunedLens(steps={self.steps}, lr={self.lr}, batch_size={self.batch_size}, seed={self.seed}{fitted})"

    def fit(self, model, residuals: "torch.Tensor", final_log_probs: "torch.Tensor") -> "TunedLens":
        """Train on (S-1, N, d) residuals of the non-final layers against the final (N, V) log-probs."""
        import torch

        S1, N, d = residuals.shape
        gen = torch.Generator().manual_seed(self.seed)
        weight = torch.eye(d).repeat(S1, 1, 1).requires_grad_(True)
        bias = torch.zeros(S1, 1, d, requires_grad=True)
        opt = torch.optim.Adam([weight, bias], lr=self.lr, weight_decay=self.weight_decay)
        frozen = [p for p in model.parameters() if p.requires_grad]
        for p in frozen:  # gradients flow through the model to the translators only
            p.requires_grad_(False)
        history = []
        target_p = final_log_probs.exp()
        for _ in range(self.steps):
            rows = torch.randint(0, N, (min(self.batch_size, N),), generator=gen)
            h = torch.baddbmm(bias, residuals[:, rows], weight)
            lp = torch.log_softmax(read_through_unembed(model, h).float(), -1)
            kl = (target_p[rows].unsqueeze(0) * (final_log_probs[rows].unsqueeze(0) - lp)).sum(-1).mean()
            opt.zero_grad()
            (kl * S1).backward()
            opt.step()
            history.append(float(kl.detach()))
        for p in frozen:
            p.requires_grad_(True)
        self.weight_, self.bias_ = weight.detach(), bias.detach()
        self.loss_history_ = np.asarray(history)
        return self

    def translate(self, residuals: "torch.Tensor") -> "torch.Tensor":
        """Apply the translators to a (S, …, d) stack; the last (final) layer passes unchanged."""
        import torch

        S = residuals.shape[0]
        if S != len(self.weight_) + 1:
            raise InputError(f"residual stack has {S} layers; this tuned lens was trained for {len(self.weight_) + 1}")
        shape = residuals.shape
        flat = residuals[:-1].reshape(S - 1, -1, shape[-1])
        out = torch.baddbmm(self.bias_, flat, self.weight_).reshape(S - 1, *shape[1:])
        return torch.cat([out, residuals[-1:]], 0)

    def save(self, path: str | Path, fingerprint: str, labels: Sequence[str]) -> Path:
        from safetensors.torch import save

        meta = {"format": LENS_FORMAT, "model_fingerprint": fingerprint, "labels": json.dumps(list(labels)),
                "steps": str(self.steps), "lr": str(self.lr)}
        data = save({"weight": self.weight_.contiguous(), "bias": self.bias_.contiguous()}, metadata=meta)
        return atomic_write_bytes(path, data)

    @classmethod
    def load(cls, path: str | Path, fingerprint: str) -> "TunedLens":
        """Load translators, refusing ones trained for another model (FingerprintMismatch)."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise DataError(f"no tuned lens at {path}; run `searchprobe lens RUN_DIR` to train one")
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                weight, bias = fh.get_tensor("weight"), fh.get_tensor("bias")
        except Exception as exc:
            raise DataError(f"tuned lens {path} is corrupt ({type(exc).__name__}: {exc})") from None
        if meta.get("model_fingerprint") != fingerprint:
            raise FingerprintMismatch(
                f"tuned lens {path} was trained for model {str(meta.get('model_fingerprint'))[:12]}, not this run's "
                f"model {fingerprint[:12]}; retrain it with `searchprobe lens RUN_DIR --force`")
        lens = cls(steps=int(meta.get("steps", 1)), lr=float(meta.get("lr", 1e-3)))
        lens.weight_, lens.bias_ = weight, bias
        lens.labels_ = json.loads(meta.get("labels", "[]"))
        return lens


# --- the lens over a dataset -------------------------------------------------------------------
@dataclass
class LensReadout:
    """Logit-lens (and tuned-lens) statistics for every prediction of a set of examples."""

    labels: list[str]  #: lens layers, e.g. ["0_pre", "0_mid", …, "final_post"]
    hook_names: list[str]
    predictions: Predictions
    logit: ReadoutStats
    tuned: ReadoutStats | None = None
    beliefs: dict[str, Any] = field(default_factory=dict)  #: per-layer next-cell maps of one example

    def __repr__(self) -> str:
        return (f"LensReadout(layers={len(self.labels)}, predictions={len(self.predictions)}, "
                f"tuned={self.tuned is not None})")


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield np.arange(start, min(n, start + size))


def collect_residuals(model, data, rows: np.ndarray, batch_size: int = 64):
    """(S, P, d) raw residuals and (P, V) final log-probs at the solution predictions of `rows`."""
    import torch

    stacks, finals = [], []
    with torch.no_grad():
        for batch in _batches(len(rows), batch_size):
            sub = data.subset(rows[batch])
            preds = solution_predictions(sub.tokens, sub.lengths, sub.solution_start, np.zeros_like(sub.tokens))
            stack, _, _ = residual_stack(model, torch.from_numpy(sub.tokens))
            sel = stack[:, torch.from_numpy(preds.example), torch.from_numpy(preds.position)]
            stacks.append(sel)
            finals.append(torch.log_softmax(read_through_unembed(model, sel[-1]).float(), -1))
    return torch.cat(stacks, 1), torch.cat(finals, 0)


def lens_readout(model, tokens: np.ndarray, lengths: np.ndarray, solution_start: np.ndarray, roles: np.ndarray,
                 *, vocab: Sequence[str], connections: np.ndarray | None = None, tuned: TunedLens | None = None,
                 batch_size: int = 64, belief_example: int | None = 0, progress: bool = False) -> LensReadout:
    """Run the logit lens (and `tuned`) over right-padded (B, T) `tokens`, in batches.

    `connections` (B, 2, R, C) turns on the maze candidate-solution view and the belief maps.
    """
    import torch

    cells = CellVocab.from_vocab(vocab)
    is_cell = torch.from_numpy(cells.is_cell)
    all_preds = solution_predictions(tokens, lengths, solution_start, roles)
    logit_parts, tuned_parts = [], []
    labels = hooks = None
    beliefs: dict[str, Any] = {}
    iterator = list(_batches(len(tokens), batch_size))
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="lens", unit="batch")
    with torch.no_grad():
        for batch in iterator:
            width = int(lengths[batch].max())
            preds = solution_predictions(tokens[batch, :width], lengths[batch], solution_start[batch], roles[batch, :width])
            stack, labels, hooks = residual_stack(model, torch.from_numpy(tokens[batch, :width]))
            ex, pos = torch.from_numpy(preds.example), torch.from_numpy(preds.position)
            sel = stack[:, ex, pos]  # (S, P, d)
            log_probs = torch.log_softmax(read_through_unembed(model, sel).float(), -1)
            final = log_probs[-1]
            targets = torch.from_numpy(preds.target)
            legal = toward = None
            if connections is not None:
                current = cells.cell_of[tokens[batch[preds.example], preds.position]]
                legal_np = legal_next_mask(current, connections[batch[preds.example]], cells)
                toward_np = np.where(cells.is_cell[preds.target], preds.target, -1)
                legal, toward = torch.from_numpy(legal_np), torch.from_numpy(toward_np)
            logit_parts.append(readout_stats(log_probs, final, targets, legal, toward, is_cell))
            tuned_lp = None
            if tuned is not None:
                tuned_lp = torch.log_softmax(read_through_unembed(model, tuned.translate(sel)).float(), -1)
                tuned_parts.append(readout_stats(tuned_lp, final, targets, legal, toward, is_cell))
            if connections is not None and belief_example is not None and belief_example in set(batch.tolist()):
                beliefs = _belief_maps(batch, belief_example, preds, log_probs, tuned_lp, cells,
                                       connections.shape[2:], labels)
    return LensReadout(list(labels), list(hooks), all_preds, ReadoutStats.concat(logit_parts),
                       ReadoutStats.concat(tuned_parts) if tuned_parts else None, beliefs)


def _belief_maps(batch, example, preds, log_probs, tuned_lp, cells, shape, labels) -> dict[str, Any]:
    """Next-cell distributions (layers × steps × R × C) of one example, for pictures on the maze."""
    R, C = shape
    local = int(np.flatnonzero(batch == example)[0])
    mine = np.flatnonzero(preds.example == local)
    out = {"example": int(example), "labels": list(labels), "positions": preds.position[mine].tolist(),
           "targets": preds.target[mine].tolist()}
    for name, lp in (("logit", log_probs), ("tuned", tuned_lp)):
        if lp is None:
            continue
        probs = lp[:, torch_index(mine)].exp().numpy()  # (S, steps, V)
        maps = np.zeros(probs.shape[:2] + (R, C), dtype=np.float32)
        for vid, (r, c) in enumerate(cells.cell_of):
            if 0 <= r < R and 0 <= c < C:
                maps[..., r, c] = probs[..., vid]
        out[name] = maps
    return out


def torch_index(idx: np.ndarray):
    import torch

    return torch.from_numpy(np.asarray(idx, dtype=np.int64))


# --- summaries ---------------------------------------------------------------------------------
def emergence_layers(top1: np.ndarray) -> np.ndarray:
    """(P,) first lens layer from which top-1 equals the final top-1 at every later layer."""
    stays = top1 == top1[-1:]
    # settled[s] = stays[s:] all true; emergence = S - (length of the all-true suffix)
    suffix = np.cumprod(stays[::-1], axis=0)[::-1]
    return (top1.shape[0] - suffix.sum(0)).astype(np.int64)


def role_groups(roles: np.ndarray, task: str = "maze", max_path_roles: int = 12) -> tuple[list[str], np.ndarray]:
    """Group names for prediction roles ("path_start", "path:0" … "path:≥k" for mazes; the chess
    tokenizer's role names for chess) and each prediction's group index."""
    if task == "chess":
        from searchprobe.tasks.chess.tokens import role_name

        path_base = None
    else:
        from searchprobe.tasks.maze.tokens import PATH_ROLE_BASE as path_base
        from searchprobe.tasks.maze.tokens import role_name

    names_of = {}
    for code in np.unique(roles):
        if path_base is not None and code >= path_base + max_path_roles:
            names_of[int(code)] = f"path:≥{max_path_roles}"
        else:
            try:
                names_of[int(code)] = role_name(int(code))
            except InputError:
                names_of[int(code)] = f"role{int(code)}"
    first_code = {}
    for code, name in names_of.items():
        first_code[name] = min(code, first_code.get(name, code))
    order = sorted(first_code, key=lambda n: (not n.startswith("path_start"), _path_index(n), first_code[n]))
    index = {n: i for i, n in enumerate(order)}
    return order, np.array([index[names_of[int(c)]] for c in roles], dtype=np.int64)


def _path_index(name: str) -> int:
    if name.startswith("path:"):
        tail = name[5:].lstrip("≥")
        return int(tail) if tail.isdigit() else 10**6
    return -1


def _table(stats: ReadoutStats, groups: np.ndarray, n_groups: int) -> dict[str, list[list[float]]]:
    """Per layer × group means of each statistic (NaN where a group has no applicable entries)."""
    out = {}
    for name in ("prob_correct", "kl_to_final", "entropy", "legal_mass", "illegal_mass", "toward_mass", "away_mass"):
        values = getattr(stats, name)
        out[name] = [[_nanmean(values[s, groups == g]) for g in range(n_groups)] for s in range(values.shape[0])]
    out["top1_acc"] = [[_nanmean((stats.rank_correct[s, groups == g] == 0).astype(float)) for g in range(n_groups)]
                       for s in range(stats.rank_correct.shape[0])]
    out["mean_rank"] = [[_nanmean(stats.rank_correct[s, groups == g].astype(float)) for g in range(n_groups)]
                        for s in range(stats.rank_correct.shape[0])]
    return out


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else float("nan")


def _overall(stats: ReadoutStats, mask: np.ndarray | None = None) -> dict[str, list[float]]:
    m = slice(None) if mask is None else mask
    return {
        "top1_acc": [float(v) for v in (stats.rank_correct[:, m] == 0).mean(1)],
        "prob_correct": [float(v) for v in stats.prob_correct[:, m].mean(1)],
        "kl_to_final": [float(v) for v in stats.kl_to_final[:, m].mean(1)],
        "entropy": [float(v) for v in stats.entropy[:, m].mean(1)],
        "legal_mass": [_nanmean(stats.legal_mass[s, m]) for s in range(stats.legal_mass.shape[0])],
        "toward_mass": [_nanmean(stats.toward_mass[s, m]) for s in range(stats.toward_mass.shape[0])],
        "illegal_mass": [_nanmean(stats.illegal_mass[s, m]) for s in range(stats.illegal_mass.shape[0])],
        "away_mass": [_nanmean(stats.away_mass[s, m]) for s in range(stats.away_mass.shape[0])],
    }


def summarize(readout: LensReadout, task: str = "maze") -> dict[str, Any]:
    """JSON-ready summary: overall curves, per layer × role tables, emergence distributions.

    "path_positions" restricts to maze path cells (path:k); for other tasks it equals "overall".
    """
    from searchprobe.tasks.maze.tokens import PATH_ROLE_BASE

    preds = readout.predictions
    group_names, groups = role_groups(preds.role, task)
    S = len(readout.labels)
    path_mask = preds.role >= PATH_ROLE_BASE if task == "maze" else np.ones(len(preds), dtype=bool)
    summary: dict[str, Any] = {
        "labels": readout.labels, "hook_names": readout.hook_names, "n_predictions": int(len(preds)),
        "n_examples": int(len(np.unique(preds.example))), "roles": group_names,
        "role_counts": [int((groups == g).sum()) for g in range(len(group_names))],
    }
    for lens_name, stats in (("logit", readout.logit), ("tuned", readout.tuned)):
        if stats is None:
            continue
        emergence = emergence_layers(stats.top1)
        per_example = np.zeros(int(preds.example.max()) + 1 if len(preds) else 0, dtype=np.int64)
        np.maximum.at(per_example, preds.example, emergence)
        examples = np.unique(preds.example)
        summary[lens_name] = {
            "overall": _overall(stats),
            "path_positions": _overall(stats, path_mask),
            "by_role": _table(stats, groups, len(group_names)),
            "emergence": {
                "per_prediction_hist": np.bincount(emergence, minlength=S).tolist(),
                "per_example_hist": np.bincount(per_example[examples], minlength=S).tolist(),
                "per_prediction_mean": float(emergence.mean()) if len(emergence) else float("nan"),
                "by_role_mean": [_nanmean(emergence[groups == g]) for g in range(len(group_names))],
            },
        }
    return summary


# --- the stage -----------------------------------------------------------------------------------
def run_lens(run_dir: str | Path, *, split: str = "test", limit: int = 1000, tuned: bool = True,
             tuned_examples: int = 2000, tuned_steps: int = 300, tuned_lr: float = 1e-3, batch_size: int = 64,
             force: bool = False,
             progress: bool = True, data: str | Path | None = None) -> Path:
    """Logit lens (+ tuned lens) of a run on `limit` examples of `split`; writes and returns <run_dir>/lens/."""
    import torch

    from searchprobe.train.run import load_run

    run_dir = Path(run_dir)
    out = run_dir / "lens"
    if limit <= 0 or tuned_examples <= 0:
        raise InputError(f"lens limit={limit} and tuned_examples={tuned_examples} must be positive integers")
    if (out / "report.json").is_file() and not force:
        return out
    fingerprint = model_fingerprint(run_dir)
    run = load_run(run_dir, data)
    if run.dataset is None:
        raise DataError(f"the dataset of run {run_dir} is gone ({run.config['dataset']['path']}); pass --data DIR")
    adapter = run.adapter
    started = time.perf_counter()
    lens = None
    if tuned:
        lens_path = out / TUNED_LENS_FILE
        if lens_path.is_file() and not force:
            lens = TunedLens.load(lens_path, fingerprint)
        else:
            train_data = adapter.token_data("train", limit=tuned_examples)
            residuals, final_lp = collect_residuals(run.model, train_data, np.arange(len(train_data)), batch_size)
            torch.manual_seed(0)
            lens = TunedLens(steps=tuned_steps, lr=tuned_lr).fit(run.model, residuals[:-1], final_lp)
            with torch.no_grad():
                _, labels, _ = residual_stack(run.model, torch.from_numpy(train_data.tokens[:1]))
            lens.save(lens_path, fingerprint, labels)
    ds = adapter._split(split)
    ds = ds.select(range(min(limit, len(ds))))
    is_maze = run.config.get("task") == "maze"
    columns = ["tokens", "roles", "solution_start"] + (["connections", "origin", "target", "path"] if is_maze else [])
    cols = ds.select_columns(columns).with_format("numpy")[:]
    seqs = list(cols["tokens"])
    lengths = np.array([len(s) for s in seqs])
    tokens = np.full((len(seqs), int(lengths.max())), adapter.pad_id, dtype=np.int64)
    roles = np.zeros_like(tokens)
    for i, (s, r) in enumerate(zip(seqs, cols["roles"])):
        tokens[i, : len(s)], roles[i, : len(r)] = s, r
    connections = None
    if is_maze:
        connections = np.stack([np.stack([np.stack(r) for r in c]) for c in cols["connections"]]).astype(bool)
    belief_example = _pick_belief_example(cols, is_maze)
    readout = lens_readout(run.model, tokens, lengths, np.asarray(cols["solution_start"]), roles, vocab=run.vocab,
                           connections=connections, tuned=lens, batch_size=batch_size,
                           belief_example=belief_example, progress=progress)
    summary = summarize(readout, run.config.get("task", "maze"))
    summary.update({"format": LENS_FORMAT, "run_dir": str(run_dir), "split": split, "model_fingerprint": fingerprint,
                    "seconds": round(time.perf_counter() - started, 2)})
    if lens is not None:
        summary["tuned_lens"] = {"file": TUNED_LENS_FILE, "train_examples": tuned_examples, "steps": lens.steps,
                                 "final_train_kl": float(lens.loss_history_[-1]) if hasattr(lens, "loss_history_") else None}
    maze = None
    if is_maze and readout.beliefs:
        from searchprobe.tasks.maze.types import Maze

        b = belief_example
        path = np.stack(cols["path"][b]).astype(int)
        maze = Maze(connections.shape[2], connections.shape[3], connections[b], tuple(int(x) for x in cols["origin"][b]),
                    tuple(int(x) for x in cols["target"][b]), path)
    from searchprobe.report.lens_figures import write_lens_outputs

    write_lens_outputs(out, summary, readout, maze)
    return out


def _pick_belief_example(cols, is_maze: bool) -> int | None:
    """The example whose per-layer beliefs are drawn: the one with the longest path (most steps)."""
    if not is_maze:
        return None
    lengths = [len(p) for p in cols["path"]]
    return int(np.argmax(lengths)) if lengths else None
