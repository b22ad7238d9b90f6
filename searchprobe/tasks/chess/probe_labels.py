"""Chess probe labels: the label families of a mate-puzzle dataset and the per-row arrays the store keeps.

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
"""

from __future__ import annotations

import numpy as np

from searchprobe.tasks.base import LabelSpec
from searchprobe.tasks.label_arrays import pad_steps, stack_rows

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
    pv_to = pad_steps(rows["pv_to"], max_plies)
    out.update({f"ply_{j}_to": pv_to[:, j - 1] for j in range(2, max_plies + 1)})
    out.update({name: stack_rows(rows[name], np.int8).reshape(n, 64) for name in CHESS_MASK_LABELS})
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
