"""Counterfactual pairs, token-aligned for patching: the container every task's pairs come in.

A pair is a clean input and a corrupted one that differ in one thing (the pair's `kind`, one of
the task's ``pair_kinds``). Tasks build them (`searchprobe.tasks.base.Task.make_pairs`); this
module only holds them. Each pair is cut at its *decision step*: the first solution step where the
two sides' solutions differ. The sequence fed to the model is the prompt plus that side's solution
tokens before the decision, so the last position predicts the decision step and each side
carries its own right answer there.

Generic code reads only the token arrays below. The task's own view of each side (for a maze:
the solved mazes) rides along as the opaque payloads `clean` / `corrupt`, which the task's
retargeting methods read; a payload only has to support ``take(index)`` (rows of an index array).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from searchprobe.errors import InputError


@dataclass(frozen=True, eq=False)
class Pairs:
    """N clean/corrupted pairs of one kind, token-aligned at equal lengths per pair.

    clean_tokens, corrupt_tokens: int64 (N, T) — prompt + solution prefix up to the decision
        position, right-padded with ``pad_id`` past ``lengths``.
    roles: int16 (N, T) — role codes (the task's `role_code`) of the clean sequence (0 on padding).
    lengths: int64 (N,) — real tokens per pair (the decision position is ``lengths - 1``).
    clean_answer, corrupt_answer: int64 (N,) — the token each side must predict next.
    decision_step: int64 (N,) — the solution index k being predicted.
    prompt_len: int64 (N,) — tokens before the first solution token (``solution_start``).
    source_rows: int64 (N,) — rows of the dataset split each pair came from.
    pad_id: the padding token.
    max_new: tokens a rollout after either side's prompt may write (room for any solution).
    clean, corrupt: the task's payloads for the two sides (opaque here; ``take(index)`` selects rows).
    """

    kind: str
    clean_tokens: np.ndarray
    corrupt_tokens: np.ndarray
    roles: np.ndarray
    lengths: np.ndarray
    clean_answer: np.ndarray
    corrupt_answer: np.ndarray
    decision_step: np.ndarray
    prompt_len: np.ndarray
    source_rows: np.ndarray
    pad_id: int
    max_new: int
    clean: Any = None
    corrupt: Any = None

    def __len__(self) -> int:
        return len(self.lengths)

    def __repr__(self) -> str:
        span = f"{int(self.lengths.min())}..{int(self.lengths.max())}" if len(self) else "-"
        return f"Pairs(kind={self.kind!r}, n={len(self)}, lengths={span})"

    def length_groups(self) -> dict[int, np.ndarray]:
        """Pair indices grouped by sequence length (a batch needs one length: no padding inside)."""
        return {int(t): np.flatnonzero(self.lengths == t) for t in np.unique(self.lengths)}

    def subset(self, index: np.ndarray) -> "Pairs":
        """The pairs at `index` (payloads through their ``take``), padding trimmed to the longest."""
        index = np.asarray(index, dtype=np.int64)
        T = int(self.lengths[index].max()) if len(index) else 0
        return Pairs(kind=self.kind, clean_tokens=self.clean_tokens[index, :T], corrupt_tokens=self.corrupt_tokens[index, :T],
                     roles=self.roles[index, :T], lengths=self.lengths[index], clean_answer=self.clean_answer[index],
                     corrupt_answer=self.corrupt_answer[index], decision_step=self.decision_step[index],
                     prompt_len=self.prompt_len[index], source_rows=self.source_rows[index], pad_id=self.pad_id,
                     max_new=self.max_new, clean=_take(self.clean, index), corrupt=_take(self.corrupt, index))

    def dense(self) -> tuple[np.ndarray, np.ndarray]:
        """(clean, corrupt) tokens as (N, T) without padding; one length required."""
        require_equal_lengths(self)
        T = int(self.lengths[0])
        return self.clean_tokens[:, :T], self.corrupt_tokens[:, :T]

    def prompts(self, side: str = "clean") -> list[np.ndarray]:
        """The rollout prompts (tokens before the first solution token) of one side."""
        if side not in ("clean", "corrupt"):
            raise InputError(f"unknown side {side!r}; allowed: clean, corrupt")
        toks = self.clean_tokens if side == "clean" else self.corrupt_tokens
        return [toks[i, : int(self.prompt_len[i])] for i in range(len(self))]


def _take(payload: Any, index: np.ndarray) -> Any:
    return None if payload is None else payload.take(index)


def require_equal_lengths(pairs: Pairs) -> None:
    """Raise a one-line InputError unless every pair has the same token length."""
    lengths = np.unique(pairs.lengths)
    if len(lengths) > 1:
        raise InputError(
            f"{pairs.kind} pairs have token lengths {', '.join(map(str, lengths[:6].tolist()))}"
            f"{'…' if len(lengths) > 6 else ''} but this method needs one length; select one group with "
            f"pairs.subset(pairs.length_groups()[T]) (or let the sweep functions group by length for you)")
