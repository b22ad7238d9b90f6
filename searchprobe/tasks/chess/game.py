"""python-chess as a `searchprobe.search.games` Game: push/pop on one `chess.Board`.

`MateGame` is the mate-search view of chess: a checkmated side to move scores
``-(MATE - ply)``, stalemate and dead draws score 0, and a position at the search horizon that
is not mate scores 0 (`evaluate`). So a depth-``2k-1`` negamax value of ``MATE - p`` at the root
means "mate in p plies", and minimax prefers the fastest mate and the longest defence.

Two mate-search prunings live in the move ordering (`order`), both value-preserving:

* checks first, then captures, then the rest (stable within each group, python-chess order);
* at the attacker's last move before the horizon only checking moves can mate, so `order`
  keeps the checks plus one quiet representative (every quiet move there scores exactly 0).

All rules (move generation, legality, check, mate) are python-chess's.
"""

from __future__ import annotations

import chess

#: The score of "mate now" (the side to move is mated at ply 0 scores -MATE).
MATE = 1000.0


def move_id(move: chess.Move) -> int:
    """Integer id of a move: ``from * 64 + to`` plus ``4096 * (promotion piece type - 1)`` for promotions.

    Non-promotions lie in 0..4095 (the from×to grid); promotions to N/B/R/Q add 4096 × 1..4.
    """
    promo = move.promotion or 0
    return move.from_square * 64 + move.to_square + (4096 * (promo - 1) if promo else 0)


def move_from_id(mid: int) -> chess.Move:
    """Inverse of `move_id`."""
    promo, rest = divmod(int(mid), 4096)
    return chess.Move(rest // 64, rest % 64, promotion=promo + 1 if promo else None)


def position_tuple(board: chess.Board) -> tuple[int, ...]:
    """The position as a tuple of ints (bitboards, side to move, castling rights, legal en passant):
    equal exactly when the FENs without move counters are equal. Used as an exact table key."""
    ep = board.ep_square if board.ep_square is not None and board.has_legal_en_passant() else -1
    return (board.pawns, board.knights, board.bishops, board.rooks, board.queens, board.kings,
            board.occupied_co[chess.WHITE], int(board.turn), board.castling_rights, ep)


def board_key(board: chess.Board) -> int:
    """A 64-bit hash of `position_tuple`, the same in every process (ints and tuples hash deterministically)."""
    return hash(position_tuple(board))


def may_give_check(board: chess.Board, move: chess.Move) -> bool:
    """A cheap necessary condition for ``board.gives_check(move)`` (False means surely no check).

    Uses python-chess's attack tables only: direct checks need the moved piece to attack the
    enemy king from the to-square through empty squares; discovered checks need the from-square
    aligned with the king. Promotions, castling and en passant always say True. Callers confirm
    with `chess.Board.gives_check`, so this only skips work, never changes a result.
    """
    king = board.king(not board.turn)
    if king is None or move.promotion:
        return True
    frm, to = move.from_square, move.to_square
    if chess.BB_RAYS[king][frm]:  # from-square aligned with the king: a discovered check is possible
        return True
    piece = board.piece_type_at(frm)
    if piece == chess.KING:
        return abs(chess.square_file(frm) - chess.square_file(to)) == 2  # castling: the rook may check
    if piece == chess.KNIGHT:
        return bool(chess.BB_KNIGHT_ATTACKS[to] & chess.BB_SQUARES[king])
    if piece == chess.PAWN:
        return bool(chess.BB_PAWN_ATTACKS[board.turn][to] & chess.BB_SQUARES[king]) or to == board.ep_square
    same_line = chess.square_file(to) == chess.square_file(king) or chess.square_rank(to) == chess.square_rank(king)
    same_diag = bool(chess.BB_RAYS[to][king]) and not same_line
    if (piece == chess.ROOK and not same_line) or (piece == chess.BISHOP and not same_diag) or not (same_line or same_diag):
        return False
    blockers = board.occupied & ~chess.BB_SQUARES[frm]
    return not chess.between(to, king) & blockers


#: ALIGNED[k]: the squares on a rank, file or diagonal through square k (python-chess's ray table).
ALIGNED = [sum(chess.BB_SQUARES[s] for s in chess.SQUARES if s != k and chess.BB_RAYS[k][s]) for k in chess.SQUARES]


def check_candidates(board: chess.Board) -> list[chess.Move]:
    """The legal moves that may give check: a superset of the checking moves, found cheaply.

    A move can check only if the moved piece attacks the enemy king from its to-square (the
    squares it would attack the king from are the king's own attack sets for that piece, under the
    current occupancy), or its from-square is aligned with the king (discovered check), or it is a
    promotion, castling or en passant. Legality is python-chess's `is_legal`, run on survivors only.
    """
    king = board.king(not board.turn)
    if king is None:
        return list(board.generate_legal_moves())
    occ = board.occupied
    rook = chess.BB_RANK_ATTACKS[king][chess.BB_RANK_MASKS[king] & occ] | chess.BB_FILE_ATTACKS[king][chess.BB_FILE_MASKS[king] & occ]
    bishop = chess.BB_DIAG_ATTACKS[king][chess.BB_DIAG_MASKS[king] & occ]
    targets = (0, chess.BB_PAWN_ATTACKS[not board.turn][king], chess.BB_KNIGHT_ATTACKS[king], bishop, rook, rook | bishop, 0)
    aligned = ALIGNED[king]
    squares, ep = chess.BB_SQUARES, board.ep_square
    out = []
    for move in board.generate_pseudo_legal_moves():
        frm, to = move.from_square, move.to_square
        piece = board.piece_type_at(frm)
        if (squares[to] & targets[piece] or squares[frm] & aligned or move.promotion
                or (piece == chess.KING and board.is_castling(move)) or (piece == chess.PAWN and to == ep)):
            if board.is_legal(move):
                out.append(move)
    return out


def gives_check(board: chess.Board, move: chess.Move) -> bool:
    """python-chess's `gives_check`, skipped when `may_give_check` rules a check out."""
    return may_give_check(board, move) and board.gives_check(move)


class MateGame:
    """The Game protocol of `searchprobe.search.games` for mate search on a python-chess board.

    horizon: the search depth in plies (2k-1 for a mate in k); `order` needs it for the
    last-attacker-move pruning. `root_ply` is the board's ply count at the root.
    """

    def __init__(self, horizon: int, root_ply: int = 0, *, prune_quiet_at_horizon: bool = True) -> None:
        self.horizon = horizon
        self.root_ply = root_ply
        self.prune_quiet_at_horizon = prune_quiet_at_horizon
        self._legal_key: tuple | None = None
        self._legal: list[chess.Move] = []

    @classmethod
    def for_root(cls, board: chess.Board, horizon: int, **kwargs) -> "MateGame":
        return cls(horizon, root_ply=len(board.move_stack), **kwargs)

    # --- the Game protocol ------------------------------------------------------------
    def moves(self, state: chess.Board) -> list[chess.Move]:
        key = position_tuple(state)
        if key != self._legal_key:
            self._legal_key, self._legal = key, list(state.generate_legal_moves())
        return list(self._legal)

    def push(self, state: chess.Board, move: chess.Move) -> None:
        state.push(move)

    def pop(self, state: chess.Board) -> None:
        state.pop()

    def terminal_value(self, state: chess.Board, ply: int) -> float | None:
        """-(MATE - ply) if the side to move is mated, 0 for stalemate / dead draw, else None."""
        if not self.moves(state):
            return -(MATE - ply) if state.is_check() else 0.0
        if state.is_insufficient_material():
            return 0.0
        return None

    def evaluate(self, state: chess.Board) -> float:
        return 0.0

    def key(self, state: chess.Board) -> tuple[int, ...]:
        return position_tuple(state)

    def move_id(self, move: chess.Move) -> int:
        return move_id(move)

    # --- move ordering --------------------------------------------------------------
    def order(self, state: chess.Board, moves: list[chess.Move]) -> list[chess.Move]:
        """Checks, then captures, then quiet moves; at the last attacker ply, checks + one quiet move."""
        checks, captures, quiet = [], [], []
        for move in moves:
            if gives_check(state, move):
                checks.append(move)
            elif state.is_capture(move):
                captures.append(move)
            else:
                quiet.append(move)
        ply = len(state.move_stack) - self.root_ply
        if self.prune_quiet_at_horizon and ply == self.horizon - 1:
            rest = captures + quiet
            return checks + rest[:1]
        return checks + captures + quiet
