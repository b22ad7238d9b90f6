"""Chess tokens and probe labels, checked against python-chess."""

from __future__ import annotations

import chess
import numpy as np
import pytest

from searchprobe.errors import DataError, InputError
from searchprobe.tasks.chess import tokens as tok
from searchprobe.tasks.chess.config import PuzzleConfig
from searchprobe.tasks.chess.labels import escape_squares, legal_move_mask, puzzle_labels
from searchprobe.tasks.chess.puzzles import canonical_fen, generate_puzzles, solve_position


def random_game_positions(seed: int, games_: int = 25, max_plies: int = 60):
    """(board, next moves) from random games: castling rights, en passant, promotions all occur."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(games_):
        board = chess.Board()
        for _ in range(int(rng.integers(1, max_plies))):
            moves = list(board.legal_moves)
            if not moves:
                break
            board.push(moves[int(rng.integers(len(moves)))])
        line, probe = [], board.copy()
        for _ in range(3):
            moves = list(probe.legal_moves)
            if not moves:
                break
            m = moves[int(rng.integers(len(moves)))]
            line.append(m)
            probe.push(m)
        out.append((board.copy(stack=False), line))
    return out


@pytest.fixture(scope="module")
def puzzles():
    cfg = PuzzleConfig(mate_in=2, material=("KRRvK", "KRvK", "KRPvK"), attacker="random")
    made = generate_puzzles(cfg, 4, seed=4)
    # plus a mate in 1 (Rh8#) where a defender pawn is pinned (Be4 pins b7)
    pinned = solve_position(chess.Board("k7/1p6/1K6/8/4B3/8/8/7R w - - 0 1"), 1)
    assert pinned is not None
    return made + [pinned]


@pytest.mark.parametrize("relative", [False, True])
def test_round_trip_random_positions(relative):
    seen_ep = seen_castle = seen_black = 0
    for board, line in random_game_positions(1) + [(chess.Board("r3k2r/8/8/3pP3/8/8/8/R3K2R w KQkq d6 0 3"), [chess.Move.from_uci("e5d6")]),
                                                     (chess.Board("4k3/1P6/8/8/8/8/8/4K3 w - - 0 1"), [chess.Move.from_uci("b7b8n")])]:
        enc = tok.encode(board, line, relative=relative)
        assert len(enc.ids) == len(enc.roles) == tok.PROMPT_LENGTH + 3 * len(line) + 1
        fen, moves = tok.decode(enc.ids)
        assert canonical_fen(fen) == canonical_fen(board.fen())
        assert moves == [m.uci() for m in line]
        seen_ep += board.has_legal_en_passant()
        seen_castle += board.castling_rights != 0
        seen_black += board.turn == chess.BLACK
    assert seen_ep and seen_castle and seen_black


def test_relative_mode_is_mine_theirs(puzzles):
    for board, line in random_game_positions(2, games_=10):
        enc = tok.encode(board, line, relative=True)
        toks = enc.tokens()
        squares = toks[tok.SQUARE_OFFSET:tok.SQUARE_OFFSET + 64]
        flip = board.turn == chess.BLACK
        for sq in chess.SQUARES:
            piece = board.piece_at(chess.square_mirror(sq) if flip else sq)
            if piece is None:
                assert squares[sq] == "."
            else:
                side = "m" if piece.color == board.turn else "t"
                assert squares[sq] == side + piece.symbol().upper()
        # Black to move, relative == the colour-mirrored position (White to move), except the stm token.
        if flip:
            mirrored = tok.encode(board.mirror(), [chess.Move(chess.square_mirror(m.from_square), chess.square_mirror(m.to_square), m.promotion) for m in line], relative=True)
            diff = [i for i, (a, b) in enumerate(zip(enc.ids, mirrored.ids)) if a != b]
            assert diff == [65]


def test_roles():
    enc = tok.encode(chess.Board(), ["e2e4", "e7e5"])
    names = [tok.role_name(r) for r in enc.roles]
    assert names[:3] == ["bos", "sq:a1", "sq:b1"] and names[65] == "stm" and names[66:70] == tok.CASTLING_ROLES
    assert names[70:72] == ["ep", "sep"] and enc.solution_start == 72
    assert names[72:78] == ["ply:1:from", "ply:1:to", "ply:1:promo", "ply:2:from", "ply:2:to", "ply:2:promo"]
    assert enc.tokens()[72:75] == ["e2", "e4", "="] and names[-1] == "eos"
    for code in range(len(tok.ROLE_NAMES)):
        assert tok.role_code(tok.role_name(code)) == code
    assert tok.role_code("sq:e4") == tok.role_code("sq:a1") + chess.E4
    with pytest.raises(InputError, match="sq:z9"):
        tok.role_code("sq:z9")
    with pytest.raises(InputError, match="out of range"):
        tok.role_name(10_000)


def test_bad_tokens():
    with pytest.raises(InputError, match="illegal"):
        tok.encode(chess.Board(), ["e2e5"])
    enc = tok.encode(chess.Board(), ["e2e4"])
    with pytest.raises(DataError, match="outside the vocabulary"):
        tok.decode(enc.ids[:-1] + [999])
    with pytest.raises(DataError, match="3 per ply"):
        tok.decode(enc.ids[:-2] + [enc.ids[-1]])
    with pytest.raises(DataError, match="shorter"):
        tok.decode(enc.ids[:10])


def test_puzzle_tokens_round_trip(puzzles):
    for p in puzzles:
        for relative in (False, True):
            fen, moves = tok.decode(tok.encode(p.fen, p.pv, relative=relative).ids)
            assert canonical_fen(fen) == p.key and tuple(moves) == p.pv


# --- labels --------------------------------------------------------------------------------------
def _bits(squares) -> list[int]:
    out = [0] * 64
    for s in squares:
        out[s] = 1
    return out


def test_labels_against_python_chess(puzzles):
    for p in puzzles:
        board = p.board()
        us, them = board.turn, not board.turn
        lab = puzzle_labels(p.fen, p.pv, p.trace)
        moves = p.pv_moves()
        assert lab.opp_king == board.king(them)
        assert lab.mating_square == moves[-1].to_square and lab.first_from == moves[0].from_square
        assert lab.pv_to == [m.to_square for m in moves] and lab.pv_from == [m.from_square for m in moves]
        assert p.final_board().king(them) is not None and p.final_board().is_checkmate()
        assert set(lab.legal_moves) == {m.from_square * 64 + m.to_square for m in board.legal_moves}
        mask = legal_move_mask(board)
        assert set(np.flatnonzero(mask.reshape(-1)).tolist()) == set(lab.legal_moves)
        # attacks: the union of per-piece attack sets (a different python-chess API than is_attacked_by)
        for color, got in ((us, lab.our_attacks), (them, lab.opp_attacks)):
            union = chess.SquareSet()
            for sq, piece in board.piece_map().items():
                if piece.color == color:
                    union |= board.attacks(sq)
            assert got == _bits(union)
        for color, got in ((us, lab.our_pinned), (them, lab.their_pinned)):
            assert got == _bits(sq for sq in chess.SQUARES if board.color_at(sq) == color and board.pin(color, sq) != chess.BB_ALL)
        # escapes: the defender king's legal moves if it were its turn (python-chess legality)
        flipped = board.copy(stack=False)
        flipped.turn = them
        flipped.ep_square = None
        king = board.king(them)
        assert lab.king_escapes == _bits(m.to_square for m in flipped.legal_moves if m.from_square == king)
        assert lab.in_check == int(board.is_check())
        assert set(lab.checking_moves) == {m.from_square * 64 + m.to_square for m in board.legal_moves if board.gives_check(m)}
        # search-trace labels: the ENTER rows at depth 1, in order, and subtree sizes summing to nodes - 1
        t = p.trace
        depth1 = (t.kind == 3) & (t.depth == 1)
        assert lab.root_moves == [int(m) % 4096 for m in t["move"][depth1]]
        assert sum(lab.root_nodes) == int((t.kind == 3).sum()) - 1
        assert moves[0].from_square * 64 + moves[0].to_square in lab.root_moves
    assert puzzle_labels(puzzles[-1].fen, puzzles[-1].pv).their_pinned == _bits([chess.B7])


def test_escape_squares_see_through_the_king():
    # Rook on a1 checks along the first rank: b1 is not an escape even though the king "blocks" it now.
    board = chess.Board("8/8/8/8/8/8/8/R1k1K3 w - - 0 1")
    esc = escape_squares(board, chess.BLACK)
    assert esc[chess.D1] == 0 and esc[chess.B1] == 0 and esc[chess.C2] == 1 and esc[chess.D2] == 0


def test_labels_in_relative_frame_line_up_with_tokens(puzzles):
    for p in puzzles:
        board = p.board()
        flip = tok.needs_flip(board, True)
        enc = tok.encode(board, p.pv, relative=True)
        lab = puzzle_labels(p.fen, p.pv, p.trace).in_frame(flip)
        toks = enc.tokens()
        assert toks[tok.SQUARE_OFFSET + lab.opp_king] == "tK"
        assert toks[tok.SQUARE_OFFSET + lab.first_from][0] == "m"
        assert toks[enc.solution_start] == chess.SQUARE_NAMES[lab.first_from]
        assert toks[enc.solution_start + 1] == chess.SQUARE_NAMES[lab.first_to]
        assert toks[enc.solution_start + 3 * (len(p.pv) - 1) + 1] == chess.SQUARE_NAMES[lab.mating_square]
