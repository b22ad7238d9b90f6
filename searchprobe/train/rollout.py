"""Greedy autoregressive rollouts, batched, and the maze task metrics computed from them.

Prompts are grouped by length, so every batch is a dense (B, T) tensor with no padding and
the model sees exactly what it saw in training. Each group is extended one token at a time
(argmax) until every row has emitted `stop_id` or `max_new` tokens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from searchprobe.train.fused import FusedForward


@torch.no_grad()
def greedy_rollout(
    model: torch.nn.Module,
    prompts: Sequence[np.ndarray],
    *,
    max_new: int,
    stop_id: int,
    batch_size: int = 256,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> list[np.ndarray]:
    """Generate greedily after each prompt; return the generated ids (stop token included if hit).

    `forward(tokens) -> logits` defaults to the model's own function, decoded with a key/value
    cache when `FusedForward` supports the model; interventions pass a hooked forward (no cache).
    Generation also stops at the model's context length (`model.cfg.n_ctx`), whatever `max_new` says.
    """
    cached = FusedForward(model) if forward is None and FusedForward.supports(model) else None
    forward = forward or model
    device = next(model.parameters()).device
    n_ctx = getattr(getattr(model, "cfg", None), "n_ctx", None)
    out: list[np.ndarray | None] = [None] * len(prompts)
    by_length: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_length.setdefault(len(p), []).append(i)
    for length, members in sorted(by_length.items()):
        for start in range(0, len(members), batch_size):
            idx = members[start : start + batch_size]
            seq = torch.as_tensor(np.stack([prompts[i] for i in idx]), dtype=torch.long, device=device)
            steps = max_new if n_ctx is None else min(max_new, n_ctx - length)
            if cached is not None:
                seq = cached.greedy(seq, steps, stop_id) if steps > 0 else seq
            else:
                done = torch.zeros(len(idx), dtype=torch.bool, device=device)
                for _ in range(steps):
                    nxt = forward(seq)[:, -1].argmax(-1)
                    seq = torch.cat([seq, nxt[:, None]], dim=1)
                    done |= nxt == stop_id
                    if bool(done.all()):
                        break
            gen = seq[:, length:].cpu().numpy()
            for row, i in enumerate(idx):
                stops = np.flatnonzero(gen[row] == stop_id)
                out[i] = gen[row, : stops[0] + 1] if len(stops) else gen[row]
    return out  # type: ignore[return-value]


@dataclass(frozen=True)
class MazeRolloutMetrics:
    """Averages over mazes. A step is valid if it moves to an open neighbour of the previous cell."""

    n: int
    exact_path: float  #: the generated path equals the true shortest path (cells and <PATH_END>)
    valid_steps: float  #: fraction of generated moves that go through an open passage
    reaches_target: float  #: the path is valid up to the target and ends there
    node_overlap: float  #: |generated ∩ true cells| / |generated ∪ true cells| (Jaccard)
    first_step: float  #: the first cell after the origin is right
    well_formed: float  #: every generated token is a cell token, ended by <PATH_END>

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def maze_path_metrics(
    generated_cells: Sequence[list[tuple[int, int]] | None],
    well_formed: Sequence[bool],
    true_paths: Sequence[np.ndarray],
    connections: np.ndarray,
) -> MazeRolloutMetrics:
    """Score generated paths (origin first, as cells) against the true paths and the walls."""
    exact = valid = reach = overlap = first = 0.0
    for cells, ok, true, conn in zip(generated_cells, well_formed, true_paths, connections):
        true_cells = [tuple(int(x) for x in c) for c in true]
        cells = list(cells or [])
        exact += float(ok and cells == true_cells)
        moves = list(zip(cells, cells[1:]))
        good = [_open(conn, a, b) for a, b in moves]
        valid += float(np.mean(good)) if good else 0.0
        reach += float(bool(cells) and cells[-1] == true_cells[-1] and all(good) and cells[0] == true_cells[0])
        union = set(cells) | set(true_cells)
        overlap += len(set(cells) & set(true_cells)) / len(union) if union else 0.0
        first += float(len(cells) > 1 and len(true_cells) > 1 and cells[1] == true_cells[1])
    n = max(1, len(true_paths))
    return MazeRolloutMetrics(len(true_paths), exact / n, valid / n, reach / n, overlap / n, first / n,
                              float(np.mean(well_formed)) if len(well_formed) else 0.0)


def _open(conn: np.ndarray, a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether cells a and b are lattice neighbours joined by an open passage."""
    (r1, c1), (r2, c2) = a, b
    rows, cols = conn.shape[1:]
    if not (0 <= r1 < rows and 0 <= c1 < cols and 0 <= r2 < rows and 0 <= c2 < cols):
        return False
    if abs(r1 - r2) + abs(c1 - c2) != 1:
        return False
    if r1 != r2:
        return bool(conn[0, min(r1, r2), c1])
    return bool(conn[1, r1, min(c1, c2)])


def random_walk_paths(true_paths: Sequence[np.ndarray], connections: np.ndarray, seed: int) -> list[list[tuple[int, int]]]:
    """Baseline: from the origin, step to a uniformly random open neighbour (not the previous cell
    when there is another choice) until the target or as many steps as the true path has."""
    rng = np.random.default_rng(seed)
    walks = []
    for true, conn in zip(true_paths, connections):
        cur, target = tuple(int(x) for x in true[0]), tuple(int(x) for x in true[-1])
        walk, prev = [cur], None
        for _ in range(len(true) - 1):
            r, c = cur
            options = [n for n in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)) if _open(conn, cur, n)]
            forward = [n for n in options if n != prev] or options
            if not forward:
                break
            prev, cur = cur, forward[int(rng.integers(len(forward)))]
            walk.append(cur)
            if cur == target:
                break
        walks.append(walk)
    return walks
