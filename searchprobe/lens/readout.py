"""Reading lenses over data: which predictions are read, the residual stack, per-prediction statistics.

Readouts are taken at the positions that predict a solution token (the token before the solution
predicting its first token, each solution token predicting the next), one cached forward pass per
batch. Every lens layer × prediction gets the probability and rank of the correct token, the top-1,
the KL to the final layer and the entropy; a task's `LensContext` adds the candidate-solution view
(mass on legal vs illegal candidates, toward the correct token vs away) and keeps one example's
per-layer distributions for belief pictures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from searchprobe.lens.lenses import TunedLens
    from searchprobe.tasks.base import LensContext


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


# --- the residual stack --------------------------------------------------------------------------
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


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield np.arange(start, min(n, start + size))


def collect_residuals(model, data, rows: np.ndarray, batch_size: int = 64):
    """(S, P, d) raw residuals and (P, V) final log-probs at the solution predictions of `rows` of
    `data` (a `TokenData`): the tuned lens's training set."""
    import torch

    from searchprobe.lens.lenses import read_through_unembed

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


# --- statistics ----------------------------------------------------------------------------------
@dataclass
class ReadoutStats:
    """Per lens layer × prediction statistics (arrays of shape (S, P)); candidate fields NaN where n/a."""

    prob_correct: np.ndarray
    rank_correct: np.ndarray  #: 0 = the correct token is top-1
    top1: np.ndarray
    kl_to_final: np.ndarray  #: KL(final layer ‖ this layer), nats
    entropy: np.ndarray  #: nats
    legal_mass: np.ndarray  #: mass on the legal next tokens (maze: open neighbours of the current cell)
    illegal_mass: np.ndarray  #: mass on every other candidate token (maze: every other cell)
    toward_mass: np.ndarray  #: mass on the correct next token (maze: the next cell of the true path)
    away_mass: np.ndarray  #: mass on the other legal next tokens

    @classmethod
    def concat(cls, parts: Sequence["ReadoutStats"]) -> "ReadoutStats":
        return cls(**{f: np.concatenate([getattr(p, f) for p in parts], axis=1) for f in cls.__dataclass_fields__})


def readout_stats(log_probs: "torch.Tensor", final_log_probs: "torch.Tensor", targets: "torch.Tensor",
                  legal: "torch.Tensor | None" = None, toward: "torch.Tensor | None" = None,
                  candidates: "torch.Tensor | None" = None) -> ReadoutStats:
    """Statistics of (S, P, V) lens log-probabilities against the final (P, V) ones and the targets.

    `legal` (P, V) bool, `toward` (P,) id or -1, `candidates` (V,) bool enable the candidate-solution view.
    """
    import torch

    S, P, V = log_probs.shape
    device = log_probs.device
    targets = targets.to(device)
    probs = log_probs.exp()
    idx = targets.view(1, P, 1).expand(S, P, 1)
    correct_lp = log_probs.gather(-1, idx).squeeze(-1)
    rank = (log_probs > correct_lp.unsqueeze(-1)).sum(-1)
    final_p = final_log_probs.exp()
    kl = (final_p.unsqueeze(0) * (final_log_probs.unsqueeze(0) - log_probs)).sum(-1).clamp_min(0)
    entropy = -(probs * log_probs).sum(-1)
    nan = torch.full((S, P), float("nan"), device=device)
    legal_m = illegal_m = toward_m = away_m = nan
    if legal is not None and toward is not None and candidates is not None:
        legal, toward, candidates = legal.to(device), toward.to(device), candidates.to(device)
        applies = (toward >= 0) & legal.any(-1)
        legal_m = (probs * legal.unsqueeze(0)).sum(-1)
        cand_m = (probs * candidates.view(1, 1, V)).sum(-1)
        illegal_m = cand_m - legal_m
        toward_m = probs.gather(-1, toward.clamp_min(0).view(1, P, 1).expand(S, P, 1)).squeeze(-1)
        away_m = legal_m - toward_m
        legal_m, illegal_m, toward_m, away_m = (torch.where(applies.unsqueeze(0), m, nan)
                                                for m in (legal_m, illegal_m, toward_m, away_m))
    as_np = lambda t: t.detach().float().cpu().numpy()  # noqa: E731
    return ReadoutStats(as_np(correct_lp.exp()), rank.cpu().numpy().astype(np.int32),
                        log_probs.argmax(-1).cpu().numpy().astype(np.int32), as_np(kl), as_np(entropy),
                        as_np(legal_m), as_np(illegal_m), as_np(toward_m), as_np(away_m))


# --- the lens over a dataset ---------------------------------------------------------------------
@dataclass
class LensReadout:
    """Logit-lens (and tuned-lens) statistics for every prediction of a set of examples."""

    labels: list[str]  #: lens layers, e.g. ["0_pre", "0_mid", …, "final_post"]
    hook_names: list[str]
    predictions: Predictions
    logit: ReadoutStats
    tuned: ReadoutStats | None = None
    #: one example's per-layer next-token probabilities: example, labels, positions, targets, and per
    #: lens name an (S, steps, V) float32 array (empty without a belief example)
    beliefs: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"LensReadout(layers={len(self.labels)}, predictions={len(self.predictions)}, "
                f"tuned={self.tuned is not None})")


def lens_readout(model, tokens: np.ndarray, lengths: np.ndarray, solution_start: np.ndarray, roles: np.ndarray,
                 *, tuned: "TunedLens | None" = None, context: "LensContext | None" = None, batch_size: int = 64,
                 belief_example: int | None = None, progress: bool = False) -> LensReadout:
    """Run the logit lens (and `tuned`) over right-padded (B, T) `tokens`, in batches.

    A task's `context` (rows = the rows of `tokens`) adds the candidate-solution view when it has
    ``candidates``; `belief_example` (a row) keeps that row's per-layer distributions.
    """
    import torch

    from searchprobe.lens.lenses import LogitLens

    lenses = {"logit": LogitLens()} | ({"tuned": tuned} if tuned is not None else {})
    view = context is not None and context.candidates is not None
    candidates = np.asarray(context.candidates, dtype=bool) if view else None
    all_preds = solution_predictions(tokens, lengths, solution_start, roles)
    parts: dict[str, list[ReadoutStats]] = {name: [] for name in lenses}
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
            targets = torch.from_numpy(preds.target)
            legal = toward = cand = None
            if view:
                rows = batch[preds.example]
                legal = torch.from_numpy(context.legal_next(rows, tokens[rows, preds.position]))
                toward = torch.from_numpy(np.where(candidates[preds.target], preds.target, -1))
                cand = torch.from_numpy(candidates)
            final = None
            keep = belief_example is not None and belief_example in set(batch.tolist())
            for name, lens in lenses.items():
                log_probs = torch.log_softmax(lens(model, sel).float(), -1)
                if final is None:  # the logit lens's last layer: the model's own distribution
                    final = log_probs[-1]
                parts[name].append(readout_stats(log_probs, final, targets, legal, toward, cand))
                if keep:
                    mine = np.flatnonzero(preds.example == int(np.flatnonzero(batch == belief_example)[0]))
                    beliefs[name] = log_probs[:, torch.from_numpy(mine)].exp().cpu().numpy()
                    beliefs.update(example=int(belief_example), labels=list(labels),
                                   positions=preds.position[mine].tolist(), targets=preds.target[mine].tolist())
    stats = {name: ReadoutStats.concat(p) for name, p in parts.items()}
    return LensReadout(list(labels), list(hooks), all_preds, stats["logit"], stats.get("tuned"), beliefs)
