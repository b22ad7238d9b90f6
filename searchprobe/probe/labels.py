"""Label families wired to dataset columns: what each probe decodes, and at which positions.

Maze families (seed 000's vocabulary; cells are ids ``r * cols + c``, N = rows * cols):

==============  ===================  ==========  ==============================================================
family          label                kind        meaning
==============  ===================  ==========  ==============================================================
target          target_cell          multiclass  the target cell (N classes), at every role
target          origin_cell          multiclass  the origin cell
candidate       next_cell            multiclass  the cell of path step k + 1, at role ``path:k`` only
candidate       ahead_<j>            multiclass  the cell of path step k + j (j = 2..K), at ``path:k`` only
candidate       on_path              binary × N  the cell is on the solution path
constraint      walls                binary × 4N the (up, down, left, right) side of every cell is closed
constraint      walls_current        binary × 4  walls of the cell at path step k, at ``path:k`` only
constraint      dead_end             binary × N  the cell has exactly one open side
constraint      bottleneck           binary × N  every origin→target route passes the cell
world_model     connectivity         binary × 2N every lattice edge (down plane, then right plane) is open
search_trace    expanded_<alg>       binary × N  search <alg> (bfs, astar) closed the cell before the target
distance        dist_to_target       ridge × N   BFS distance of every cell to the target
==============  ===================  ==========  ==============================================================

Chess families (squares 0..63 in the token frame, a1 = 0; python-chess computed every one):

==============  ===================  ==========  ==============================================================
family          label                kind        meaning
==============  ===================  ==========  ==============================================================
target          opp_king             multiclass  the defender king's square (64 classes)
target          mating_square        multiclass  where the mating (last) move of the solution lands
candidate       first_from/first_to  multiclass  from / to square of the first solution move
candidate       ply_<j>_to           multiclass  to-square of solution ply j (j = 2..): look-ahead
constraint      opp_attacks          binary × 64 squares the defender attacks
constraint      our_attacks          binary × 64 squares the side to move attacks
constraint      our_pinned           binary × 64 our pieces pinned to our king
constraint      king_escapes         binary × 64 squares the defender king could step to
constraint      in_check             binary × 1  the side to move is in check
world_model     occupied             binary × 64 a piece stands on the square
world_model     mine                 binary × 64 a piece of the side to move stands on the square
search_trace    search_focus_to      multiclass  to-square of the root move alpha-beta spent most nodes under
==============  ===================  ==========  ==============================================================

Binary columns that are constant in the training rows (e.g. border edges, which are always
closed) carry no information and are dropped from their family; a label with no varying column
is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np



@dataclass(frozen=True)
class LabelSpec:
    """One probe target."""

    name: str  #: label name in results (e.g. "next_cell", "ahead_3")
    family: str  #: target / candidate / constraint / world_model / search_trace / distance
    kind: str  #: multiclass, binary or ridge
    stored: str  #: array name in the activation store (``label/<stored>``)
    per_step: bool = False  #: indexed by path step k (only at roles ``path:k``)
    ahead: int = 0  #: for per-step labels with a K axis: which step ahead (1-based)
    n_classes: int = 0  #: for multiclass


def maze_label_specs(n_cells: int, k_ahead: int, searches: tuple[str, ...] = ("bfs", "astar")) -> list[LabelSpec]:
    specs = [
        LabelSpec("target_cell", "target", "multiclass", "target_cell", n_classes=n_cells),
        LabelSpec("origin_cell", "target", "multiclass", "origin_cell", n_classes=n_cells),
        LabelSpec("next_cell", "candidate", "multiclass", "cell_ahead", per_step=True, ahead=1, n_classes=n_cells),
    ]
    specs += [LabelSpec(f"ahead_{j}", "candidate", "multiclass", "cell_ahead", per_step=True, ahead=j, n_classes=n_cells)
              for j in range(2, k_ahead + 1)]
    specs += [
        LabelSpec("on_path", "candidate", "binary", "on_path"),
        LabelSpec("walls", "constraint", "binary", "walls"),
        LabelSpec("walls_current", "constraint", "binary", "walls_current", per_step=True),
        LabelSpec("dead_end", "constraint", "binary", "dead_end"),
        LabelSpec("bottleneck", "constraint", "binary", "bottleneck"),
        LabelSpec("connectivity", "world_model", "binary", "connectivity"),
    ]
    specs += [LabelSpec(f"expanded_{s}", "search_trace", "binary", f"expanded_{s}") for s in searches]
    specs.append(LabelSpec("dist_to_target", "distance", "ridge", "dist_to_target"))
    return specs


CHESS_SQUARE_LABELS = ("opp_king", "mating_square", "first_from", "first_to")
CHESS_MASK_LABELS = ("opp_attacks", "our_attacks", "our_pinned", "king_escapes")


def chess_label_specs(max_plies: int) -> list[LabelSpec]:
    """Chess label families; `max_plies` is the longest solution in the dataset (look-ahead labels)."""
    specs = [LabelSpec(name, "target" if name in ("opp_king", "mating_square") else "candidate", "multiclass", name,
                       n_classes=64) for name in CHESS_SQUARE_LABELS]
    specs += [LabelSpec(f"ply_{j}_to", "candidate", "multiclass", f"ply_{j}_to", n_classes=64)
              for j in range(2, max_plies + 1)]
    specs += [LabelSpec(name, "constraint", "binary", name) for name in CHESS_MASK_LABELS]
    specs += [LabelSpec("in_check", "constraint", "binary", "in_check"),
              LabelSpec("occupied", "world_model", "binary", "occupied"),
              LabelSpec("mine", "world_model", "binary", "mine"),
              LabelSpec("search_focus_to", "search_trace", "multiclass", "search_focus_to", n_classes=64)]
    return specs


def chess_store_labels(rows, max_plies: int) -> dict[str, np.ndarray]:
    """Per-example chess label arrays of a batch of dataset rows (numpy format), as the store keeps them."""
    import chess

    from searchprobe.tasks.chess.tokens import frame_square

    n = len(rows["tokens"])
    out = {name: np.asarray(rows[name], dtype=np.int16) for name in CHESS_SQUARE_LABELS}
    pv_to = _pad_steps(rows["pv_to"], max_plies)
    out.update({f"ply_{j}_to": pv_to[:, j - 1] for j in range(2, max_plies + 1)})
    out.update({name: _stack(rows[name], np.int8).reshape(n, 64) for name in CHESS_MASK_LABELS})
    out["in_check"] = np.asarray(rows["in_check"], dtype=np.int8).reshape(n, 1)
    occupied, mine = np.zeros((n, 64), np.int8), np.zeros((n, 64), np.int8)
    for i, (fen, flipped) in enumerate(zip(rows["fen"], rows["flipped"])):
        board = chess.Board(str(fen))
        for square, piece in board.piece_map().items():
            s = frame_square(square, bool(flipped))
            occupied[i, s], mine[i, s] = 1, int(piece.color == board.turn)
    out["occupied"], out["mine"] = occupied, mine
    focus = np.full(n, -1, dtype=np.int16)
    for i, (moves, nodes) in enumerate(zip(rows["root_moves"], rows["root_nodes"])):
        if len(moves):
            focus[i] = int(np.asarray(moves)[int(np.argmax(nodes))]) % 64
    out["search_focus_to"] = focus
    return out


def _pad_steps(ragged, length: int, tail: tuple[int, ...] = (), fill=-1, dtype=np.int16) -> np.ndarray:
    out = np.full((len(ragged), length) + tail, fill, dtype=dtype)
    for i, seq in enumerate(ragged):
        arr = np.asarray([np.asarray(x) for x in seq]) if len(seq) else np.zeros((0,) + tail)
        m = min(len(arr), length)
        out[i, :m] = arr[:m].reshape((m,) + tail)
    return out


def _stack(col, dtype) -> np.ndarray:
    return np.stack([np.asarray([np.asarray(x) for x in row]) if isinstance(row, (list, np.ndarray)) and len(row) and not np.isscalar(row[0]) else np.asarray(row) for row in col]).astype(dtype)


def maze_store_labels(rows, n_cells: int, k_ahead: int, max_steps: int) -> dict[str, np.ndarray]:
    """Per-example label arrays of a batch of dataset rows (numpy format), as the store keeps them.

    Per-step arrays have `max_steps` steps padded with -1 (cells) or -1 (walls_current).
    """
    n = len(rows["tokens"])
    out: dict[str, np.ndarray] = {
        "target_cell": np.asarray(rows["label_target_cell"], dtype=np.int16),
        "origin_cell": np.asarray(rows["label_origin_cell"], dtype=np.int16),
    }
    path_cells = _pad_steps(rows["label_path_cell"], max_steps + k_ahead)
    out["cell_ahead"] = np.stack([path_cells[:, j:j + max_steps] for j in range(1, k_ahead + 1)], axis=-1)
    out["walls_current"] = _pad_steps(rows["label_walls_current"], max_steps, (4,), dtype=np.int8)
    for name in ("on_path", "dead_end", "bottleneck", "expanded_bfs", "expanded_astar"):
        if f"label_{name}" in rows:
            out[name] = _stack(rows[f"label_{name}"], np.int8).reshape(n, n_cells)
    out["walls"] = _stack(rows["label_walls"], np.int8).reshape(n, 4 * n_cells)
    out["connectivity"] = _stack(rows["connections"], np.int8).reshape(n, 2 * n_cells)
    out["dist_to_target"] = _stack(rows["label_dist_to_target"], np.float32).reshape(n, n_cells)
    return out


def step_of_role(role: str) -> int | None:
    """k for a maze role ``path:k``, else None."""
    if role.startswith("path:") and role[5:].isdigit():
        return int(role[5:])
    return None


def label_targets(spec: LabelSpec, arr: np.ndarray, role: str) -> np.ndarray | None:
    """The target array of `spec` at `role` from the stored array; None where the label does not apply.

    multiclass → (n,) int64 with -1 = no label; binary → (n, M) int64 with -1 = no label; ridge → (n, M) float.
    """
    if spec.per_step:
        k = step_of_role(role)
        if k is None or k >= arr.shape[1]:
            return None
        arr = arr[:, k]
        if spec.ahead:
            arr = arr[..., spec.ahead - 1]
    if spec.kind == "multiclass":
        return arr.astype(np.int64).reshape(len(arr))
    if spec.kind == "binary":
        return arr.astype(np.int64).reshape(len(arr), -1)
    out = arr.astype(np.float64).reshape(len(arr), -1)
    return np.where(out < 0, np.nan, out)


def control_targets(spec: LabelSpec, y: np.ndarray, input_types: np.ndarray, train_rows: np.ndarray,
                    seed: int) -> np.ndarray:
    """Hewitt & Liang control task: a fixed random label per input type.

    `input_types` (n,) are non-negative ids of each row's input type (the probing stage uses the
    pair of tokens ending at the probed position; see `bigram_types`). Each type gets a label drawn
    from the label's empirical training distribution (per column for binary/ridge families), fixed
    by `seed`; rows keep their missing marks.
    """
    rng = np.random.default_rng(seed)
    n_types = int(input_types.max()) + 1 if len(input_types) else 1
    types = np.maximum(input_types, 0)
    if spec.kind == "multiclass":
        pool = y[train_rows & (y >= 0)]
        if len(pool) == 0:
            return y.copy()
        table = rng.choice(pool, size=n_types)
        return np.where(y >= 0, table[types], -1)
    out = np.empty_like(y)
    for m in range(y.shape[1]):
        col = y[:, m]
        ok = ~np.isnan(col) if spec.kind == "ridge" else col >= 0
        pool = col[train_rows & ok]
        table = rng.choice(pool, size=n_types) if len(pool) else np.zeros(n_types, dtype=y.dtype)
        out[:, m] = np.where(ok, table[types], col)
    return out


def bigram_types(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Input-type ids of (token before, token at) the probed positions; -1 (none) counts as a token.

    Why pairs and not single tokens: a maze position holds one of ~25 cell tokens, and a linear
    probe on a 64-512-d residual separates 25 types perfectly, so a one-token control task is
    learned as well as any real label (control accuracy ~1 whatever the model represents). A
    linear readout fits a random label per pair only if the representation carries the pair's
    conjunction. Where there are still fewer pairs than residual dimensions (~80 at a maze path
    step), a model with conjunctions memorises them anyway: results.csv reports `control_types`.
    """
    previous, current = np.asarray(previous, dtype=np.int64), np.asarray(current, dtype=np.int64)
    base = int(max(previous.max(initial=0), current.max(initial=0))) + 2
    return (previous + 1) * base + (current + 1)
