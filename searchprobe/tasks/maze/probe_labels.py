"""Maze probe labels: the label families of a maze dataset and the per-row arrays the activation store keeps.

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
"""

from __future__ import annotations

import numpy as np

from searchprobe.tasks.base import LabelSpec
from searchprobe.tasks.label_arrays import pad_steps, stack_rows


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


def maze_store_labels(rows, n_cells: int, k_ahead: int, max_steps: int) -> dict[str, np.ndarray]:
    """Per-example label arrays of a batch of dataset rows (numpy format), as the store keeps them.

    Per-step arrays have `max_steps` steps padded with -1 (cells) or -1 (walls_current).
    """
    n = len(rows["tokens"])
    out: dict[str, np.ndarray] = {
        "target_cell": np.asarray(rows["label_target_cell"], dtype=np.int16),
        "origin_cell": np.asarray(rows["label_origin_cell"], dtype=np.int16),
    }
    path_cells = pad_steps(rows["label_path_cell"], max_steps + k_ahead)
    out["cell_ahead"] = np.stack([path_cells[:, j:j + max_steps] for j in range(1, k_ahead + 1)], axis=-1)
    out["walls_current"] = pad_steps(rows["label_walls_current"], max_steps, (4,), dtype=np.int8)
    for name in ("on_path", "dead_end", "bottleneck", "expanded_bfs", "expanded_astar"):
        if f"label_{name}" in rows:
            out[name] = stack_rows(rows[f"label_{name}"], np.int8).reshape(n, n_cells)
    out["walls"] = stack_rows(rows["label_walls"], np.int8).reshape(n, 4 * n_cells)
    out["connectivity"] = stack_rows(rows["connections"], np.int8).reshape(n, 2 * n_cells)
    out["dist_to_target"] = stack_rows(rows["label_dist_to_target"], np.float32).reshape(n, n_cells)
    return out
