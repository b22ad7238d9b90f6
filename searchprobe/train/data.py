"""Token arrays for training: padding, the solution-only loss mask, deterministic batch order.

A `TokenData` holds N sequences right-padded to a common length. Right padding is harmless
under causal attention (no real token attends to a pad), so no attention mask is needed; pads
only need to be excluded from the loss, which the solution mask already does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from searchprobe.errors import DataError


@dataclass(frozen=True)
class TokenData:
    """tokens: int64 (N, T) right-padded with `pad_id`; lengths (N,); solution_start (N,).

    Position t of the loss predicts token t + 1; it counts iff solution_start <= t + 1 < length,
    i.e. only the solution part (path or moves) is trained, never the prompt.
    """

    tokens: np.ndarray
    lengths: np.ndarray
    solution_start: np.ndarray
    pad_id: int

    @classmethod
    def from_sequences(cls, sequences: Sequence[Sequence[int]], solution_start: Sequence[int], pad_id: int) -> "TokenData":
        if len(sequences) == 0:
            raise DataError("no sequences to train on (the split is empty)")
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        tokens = np.full((len(sequences), int(lengths.max())), pad_id, dtype=np.int64)
        for i, s in enumerate(sequences):
            tokens[i, : len(s)] = s
        return cls._checked(tokens, lengths, solution_start, pad_id)

    @classmethod
    def from_flat(cls, values: np.ndarray, offsets: np.ndarray, solution_start: Sequence[int], pad_id: int) -> "TokenData":
        """From ragged storage: sequence i is ``values[offsets[i]:offsets[i + 1]]`` (Arrow's list layout)."""
        offsets = np.asarray(offsets, dtype=np.int64)
        lengths = np.diff(offsets)
        if len(lengths) == 0:
            raise DataError("no sequences to train on (the split is empty)")
        tokens = np.full((len(lengths), int(lengths.max())), pad_id, dtype=np.int64)
        rows = np.repeat(np.arange(len(lengths)), lengths)
        cols = np.arange(len(rows)) - np.repeat(offsets[:-1] - offsets[0], lengths)
        tokens[rows, cols] = np.asarray(values)[offsets[0]:offsets[-1]]
        return cls._checked(tokens, lengths, solution_start, pad_id)

    @classmethod
    def _checked(cls, tokens: np.ndarray, lengths: np.ndarray, solution_start: Sequence[int], pad_id: int) -> "TokenData":
        starts = np.asarray(solution_start, dtype=np.int64)
        if (starts < 1).any() or (starts >= lengths).any():
            bad = int(np.flatnonzero((starts < 1) | (starts >= lengths))[0])
            raise DataError(f"sequence {bad}: solution_start={starts[bad]} is outside 1..{lengths[bad] - 1}")
        return cls(tokens, lengths, starts, int(pad_id))

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def max_len(self) -> int:
        return int(self.tokens.shape[1])

    def loss_mask(self, rows: np.ndarray) -> np.ndarray:
        """bool (len(rows), T-1): which next-token predictions count for these rows."""
        target_pos = np.arange(1, self.max_len)[None, :]
        return (target_pos >= self.solution_start[rows, None]) & (target_pos < self.lengths[rows, None])

    def subset(self, rows: np.ndarray) -> "TokenData":
        rows = np.asarray(rows)
        width = int(self.lengths[rows].max())
        return TokenData(self.tokens[rows, :width], self.lengths[rows], self.solution_start[rows], self.pad_id)


def batch_rows(n_examples: int, batch_size: int, step: int, seed: int) -> np.ndarray:
    """The example indices of global batch `step`: epoch-wise permutations seeded by (seed, epoch).

    A pure function of its arguments, so a resumed run sees exactly the batches it would have.
    """
    per_epoch = max(1, n_examples // batch_size)
    epoch, k = divmod(step, per_epoch)
    order = np.random.Generator(np.random.PCG64([seed, epoch])).permutation(n_examples)
    return order[k * batch_size : (k + 1) * batch_size]


class BatchSchedule:
    """The rows of every global batch, a pure function of (seed, step), cached one epoch at a time.

    With `sort_window` w > 1, each run of w consecutive batches of the epoch's permutation is
    sorted by length before being cut into batches, and the batches are shuffled again: every
    epoch still sees the same examples, but a batch's rows have similar lengths, so less of each
    (B, T) batch is padding. With w <= 1 the batches are exactly `batch_rows`'.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, sort_window: int = 0) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size, self.seed, self.sort_window = int(batch_size), int(seed), int(sort_window)
        self._epoch: int | None = None
        self._order = np.empty(0, dtype=np.int64)

    def __call__(self, step: int) -> np.ndarray:
        n, size = len(self.lengths), self.batch_size
        epoch, k = divmod(step, max(1, n // size))
        if epoch != self._epoch:
            self._order, self._epoch = self._epoch_order(epoch), epoch
        return self._order[k * size : (k + 1) * size]

    def _epoch_order(self, epoch: int) -> np.ndarray:
        rng = np.random.Generator(np.random.PCG64([self.seed, epoch]))
        size = self.batch_size
        order = rng.permutation(len(self.lengths))
        if self.sort_window <= 1:
            return order  # exactly batch_rows' epoch permutation
        order = order[: max(1, len(self.lengths) // size) * size]
        batches: list[np.ndarray] = []
        for start in range(0, len(order), self.sort_window * size):
            window = order[start : start + self.sort_window * size]
            window = window[np.argsort(self.lengths[window], kind="stable")]
            batches.extend(window[i : i + size] for i in range(0, len(window), size))
        return np.concatenate([batches[i] for i in rng.permutation(len(batches))])
