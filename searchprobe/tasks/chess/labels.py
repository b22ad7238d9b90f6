"""Probe labels for a mate puzzle, all computed by python-chess.

Families (seed 000's vocabulary):

* target: the defender king's square; the mating square (where the last PV move lands);
* candidate solution: first move from/to; from/to at every ply of the PV; the legal moves;
* constraint: squares the opponent attacks, squares we attack, pinned pieces (ours, theirs),
  whether we are in check, our checking moves, the defender king's escape squares;
* search trace: the root moves alpha-beta examined, in order, and the nodes spent under each.

Squares are python-chess indices (a1 = 0 … h8 = 63). `PuzzleLabels.in_frame(flip=True)`
mirrors every square and mask into the relative token frame (see `tokens`), so label index s
always describes the token at ``tokens.SQUARE_OFFSET + s``. Move ids are ``from * 64 + to``
(promotions share their from/to id; see `game.move_id` for the full id).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import chess
import numpy as np

from searchprobe.search.trace import Trace
from searchprobe.tasks.chess.tokens import frame_square


@dataclass(frozen=True)
class PuzzleLabels:
    """Per-puzzle labels (lists of plain ints so they store as dataset columns)."""

    opp_king: int  #: square of the defender's king
    mating_square: int  #: to-square of the PV's last (mating) move
    first_from: int  #: from-square of the first PV move
    first_to: int  #: to-square of the first PV move
    pv_from: list[int]  #: from-square of every PV ply
    pv_to: list[int]  #: to-square of every PV ply
    legal_moves: list[int]  #: sorted from*64+to ids of the side to move's legal moves
    checking_moves: list[int]  #: sorted from*64+to ids of the legal moves that give check
    opp_attacks: list[int]  #: 64 × 0/1: squares the defender attacks
    our_attacks: list[int]  #: 64 × 0/1: squares the side to move attacks
    our_pinned: list[int]  #: 64 × 0/1: our pieces pinned to our king
    their_pinned: list[int]  #: 64 × 0/1: defender pieces pinned to its king
    king_escapes: list[int]  #: 64 × 0/1: squares the defender king could step to if it were its move
    in_check: int  #: 1 if the side to move is in check
    root_moves: list[int]  #: from*64+to of the root moves alpha-beta searched, in order
    root_nodes: list[int]  #: nodes alpha-beta entered under each of those root moves

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    def in_frame(self, flip: bool) -> "PuzzleLabels":
        """The same labels with squares mirrored top-to-bottom when `flip` (relative token frame)."""
        if not flip:
            return self
        sq = lambda s: frame_square(s, True)  # noqa: E731
        mid = lambda m: sq(m // 64) * 64 + sq(m % 64)  # noqa: E731
        mask = lambda m: [m[sq(s)] for s in range(64)]  # noqa: E731
        return replace(
            self, opp_king=sq(self.opp_king), mating_square=sq(self.mating_square),
            first_from=sq(self.first_from), first_to=sq(self.first_to),
            pv_from=[sq(s) for s in self.pv_from], pv_to=[sq(s) for s in self.pv_to],
            legal_moves=sorted(mid(m) for m in self.legal_moves),
            checking_moves=sorted(mid(m) for m in self.checking_moves),
            opp_attacks=mask(self.opp_attacks), our_attacks=mask(self.our_attacks),
            our_pinned=mask(self.our_pinned), their_pinned=mask(self.their_pinned),
            king_escapes=mask(self.king_escapes), root_moves=[mid(m) for m in self.root_moves],
        )

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def attack_mask(board: chess.Board, color: chess.Color) -> list[int]:
    """64 × 0/1: squares attacked by `color` (python-chess `is_attacked_by`)."""
    return [int(board.is_attacked_by(color, sq)) for sq in chess.SQUARES]


def pinned_mask(board: chess.Board, color: chess.Color) -> list[int]:
    """64 × 0/1: pieces of `color` pinned to their own king."""
    out = [0] * 64
    for sq in chess.SquareSet(board.occupied_co[color]):
        if board.is_pinned(color, sq):
            out[sq] = 1
    return out


def escape_squares(board: chess.Board, color: chess.Color) -> list[int]:
    """64 × 0/1: squares next to `color`'s king that it may step to: not its own piece, not attacked
    by the other side once the king has left its square (so sliding checks see through it)."""
    king = board.king(color)
    out = [0] * 64
    if king is None:
        return out
    without_king = board.copy(stack=False)
    without_king.remove_piece_at(king)
    for sq in chess.SquareSet(chess.BB_KING_ATTACKS[king] & ~board.occupied_co[color]):
        if not without_king.is_attacked_by(not color, sq):
            out[sq] = 1
    return out


def legal_move_ids(board: chess.Board) -> list[int]:
    return sorted({m.from_square * 64 + m.to_square for m in board.legal_moves})


def legal_move_mask(board: chess.Board) -> np.ndarray:
    """bool (64, 64): [from, to] is a legal move of the side to move."""
    mask = np.zeros((64, 64), dtype=bool)
    for m in board.legal_moves:
        mask[m.from_square, m.to_square] = True
    return mask


def root_move_labels(trace: Trace | None) -> tuple[list[int], list[int]]:
    """(root moves as from*64+to in the order alpha-beta examined them, nodes under each)."""
    if trace is None or len(trace) == 0:
        return [], []
    from searchprobe.search.games import root_move_stats

    stats = root_move_stats(trace)
    return [int(m) % 4096 for m, _ in stats], [int(n) for _, n in stats]


def puzzle_labels(fen: str, pv: list[str] | tuple[str, ...], trace: Trace | None = None) -> PuzzleLabels:
    """All labels of the position `fen` (side to move = attacker) with principal variation `pv`."""
    board = chess.Board(fen)
    us, them = board.turn, not board.turn
    moves = [chess.Move.from_uci(m) for m in pv]
    root_moves, root_nodes = root_move_labels(trace)
    opp_king = board.king(them)
    return PuzzleLabels(
        opp_king=-1 if opp_king is None else opp_king,
        mating_square=moves[-1].to_square if moves else -1,
        first_from=moves[0].from_square if moves else -1,
        first_to=moves[0].to_square if moves else -1,
        pv_from=[m.from_square for m in moves],
        pv_to=[m.to_square for m in moves],
        legal_moves=legal_move_ids(board),
        checking_moves=sorted({m.from_square * 64 + m.to_square for m in board.legal_moves if board.gives_check(m)}),
        opp_attacks=attack_mask(board, them),
        our_attacks=attack_mask(board, us),
        our_pinned=pinned_mask(board, us),
        their_pinned=pinned_mask(board, them),
        king_escapes=escape_squares(board, them),
        in_check=int(board.is_check()),
        root_moves=root_moves,
        root_nodes=root_nodes,
    )
