"""Mate-in-k puzzles, checked against a plain brute-force mate search written here (python-chess rules)."""

from __future__ import annotations


import chess
import numpy as np
import pytest

from searchprobe.errors import ConfigError, InputError
from searchprobe.search import games
from searchprobe.tasks.chess.config import Material, PuzzleConfig
from searchprobe.tasks.chess.game import MATE, MateGame, may_give_check, move_from_id, move_id
from searchprobe.tasks.chess.puzzles import (
    MateSolver, generate_puzzle, generate_puzzles, random_position, record_search_tree, solve_position,
)


# --- an independent reference: full-width, no ordering, no table, no check filter ----------------
def bf_mates(board: chess.Board, n: int) -> bool:
    """Side to move forces mate within n moves (plain recursion over every legal move)."""
    for move in list(board.legal_moves):
        board.push(move)
        try:
            if board.is_checkmate():
                return True
            if n > 1 and not board.is_game_over() and all(_reply_loses(board, r, n - 1) for r in list(board.legal_moves)):
                return True
        finally:
            board.pop()
    return False


def _reply_loses(board: chess.Board, reply: chess.Move, n: int) -> bool:
    board.push(reply)
    try:
        return bf_mates(board, n)
    finally:
        board.pop()


def bf_mating_first_moves(board: chess.Board, n: int) -> set[str]:
    out = set()
    for move in list(board.legal_moves):
        board.push(move)
        if board.is_checkmate() or (n > 1 and not board.is_game_over()
                                    and all(_reply_loses(board, r, n - 1) for r in list(board.legal_moves))):
            out.add(move.uci())
        board.pop()
    return out


def check_puzzle_against_brute_force(p, unique: bool) -> None:
    board = p.board()
    k = p.mate_in
    assert len(p.pv) == 2 * k - 1
    end = board.copy()
    for uci in p.pv:
        move = chess.Move.from_uci(uci)
        assert end.is_legal(move)
        end.push(move)
    assert end.is_checkmate()
    assert bf_mates(board, k)
    if k > 1:
        assert not bf_mates(board, k - 1)
    first = bf_mating_first_moves(board, k)
    assert p.pv[0] in first
    if unique:
        assert first == {p.pv[0]} == set(p.solutions)
    else:
        assert first == set(p.solutions)


# --- material and config -------------------------------------------------------------------------
@pytest.mark.parametrize("spec,expected", [("KQvK", "KQvK"), ("kqvk", "KQvK"), ("KRRvK", "KRRvK"),
                                           ("KBBvK", "KBBvK"), ("KPRvKP", "KRPvKP"), ("KNvKP", "KNvKP")])
def test_material_parse(spec, expected):
    assert str(Material.parse(spec)) == expected


@pytest.mark.parametrize("spec,fragment", [
    ("KBvK", "cannot mate"), ("KNvK", "cannot mate"), ("KvK", "cannot mate"), ("KQKvK", "2 kings"),
    ("QvK", "0 kings"), ("KQvKK", "2 kings"), ("KXvK", "'X'"), ("KQK", "look like"),
    ("K" + "Q" * 16 + "vK", "at most 16"), ("K" + "P" * 9 + "vK", "at most 16 / 8"),
])
def test_material_errors_are_one_line_input_errors(spec, fragment):
    with pytest.raises(InputError) as info:
        Material.parse(spec)
    assert fragment in str(info.value) and spec in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("k", [0, 4, -1])
def test_mate_in_out_of_range(k):
    with pytest.raises(InputError, match=r"mate_in=.* allowed: 1\.\.3"):
        PuzzleConfig(mate_in=k)


def test_bad_material_in_config_is_a_config_error_via_from_dict():
    from searchprobe.config import from_dict

    with pytest.raises(ConfigError, match="KBvK"):
        from_dict(PuzzleConfig, {"mate_in": 2, "material": ["KQvK", "KBvK"]}, "task.toml [puzzles]")


# --- the solver against brute force ----------------------------------------------------------------
def test_solver_matches_brute_force_on_random_positions():
    rng = np.random.default_rng(7)
    mats = [Material.parse(s) for s in ("KQvK", "KRvK", "KQvKR", "KRPvK")]
    checked = found = 0
    while checked < 40:
        board = random_position(rng, mats[checked % len(mats)], bool(rng.integers(2)))
        if board is None:
            continue
        checked += 1
        solver = MateSolver()
        shortest = solver.shortest_mate(board, 2)
        ref = 1 if bf_mates(board, 1) else 2 if bf_mates(board, 2) else None
        assert shortest == ref, board.fen()
        found += shortest is not None
    assert found >= 1  # the sample contains positives and negatives


def test_known_positions():
    back_rank = chess.Board("6k1/5ppp/8/8/8/8/8/R5K1 w - - 0 1")
    p = solve_position(back_rank, 1, unique=True)
    assert p is not None and p.pv == ("a1a8",) and p.search_value == MATE - 1
    assert solve_position(back_rank, 2) is None  # a mate in 1 is not a mate in exactly 2
    # Mate in 2: 1. Kc6 Ka8 2. Qb7# (and no mate in 1).
    kq = chess.Board("8/k7/8/2K5/1Q6/8/8/8 w - - 0 1")
    p2 = solve_position(kq, 2, unique=True)
    assert p2 is not None and p2.pv[0] == "c5c6" and chess.Board(p2.fen).is_valid()
    check_puzzle_against_brute_force(p2, unique=True)


@pytest.mark.parametrize("k,material,unique", [(1, "KQvK", False), (1, "KRvK", True), (2, "KQvK", True),
                                               (2, "KRRvK", True), (2, "KRPvK", False)])
def test_generated_puzzles_mate_exactly_in_k(k, material, unique):
    cfg = PuzzleConfig(mate_in=k, material=(material,), unique_first_move=unique, attacker="random")
    for p in generate_puzzles(cfg, 2, seed=11, record_trace=False):
        assert p.material == material
        check_puzzle_against_brute_force(p, unique)


def test_generated_mate_in_3_against_brute_force():
    cfg = PuzzleConfig(mate_in=3, material=("KRRvK",), unique_first_move=True)
    p = generate_puzzle(cfg, 0, 0, record_trace=True)
    check_puzzle_against_brute_force(p, unique=True)
    assert p.search_value == MATE - 5


@pytest.mark.slow
@pytest.mark.parametrize("material", ["KRvK", "KQvK"])
def test_generated_mate_in_3_against_brute_force_slow(material):
    cfg = PuzzleConfig(mate_in=3, material=(material,), unique_first_move=False, attacker="random")
    for p in generate_puzzles(cfg, 2, seed=1):
        check_puzzle_against_brute_force(p, unique=False)
        assert p.search_value == MATE - 5


def test_determinism_and_index_independence():
    cfg = PuzzleConfig(mate_in=1, material=("KQvK", "KRvK"), attacker="random")
    batch = generate_puzzles(cfg, 6, seed=5, record_trace=False)
    again = [generate_puzzle(cfg, 5, i, record_trace=False) for i in (5, 2)]
    assert [p.fen for p in again] == [batch[5].fen, batch[2].fen]
    shifted = generate_puzzles(cfg, 3, seed=5, start=3, record_trace=False)
    assert [p.fen for p in shifted] == [p.fen for p in batch[3:]]
    other_seed = generate_puzzles(cfg, 6, seed=6, record_trace=False)
    assert [p.fen for p in other_seed] != [p.fen for p in batch]


def test_parallel_equals_serial():
    cfg = PuzzleConfig(mate_in=1, material=("KQvK",))
    serial = generate_puzzles(cfg, 8, seed=2, workers=1)
    parallel = generate_puzzles(cfg, 8, seed=2, workers=2)
    assert [(p.fen, p.pv, p.attempts) for p in serial] == [(p.fen, p.pv, p.attempts) for p in parallel]
    assert all(a.trace == b.trace for a, b in zip(serial, parallel))


def test_exhausted_attempts_is_an_input_error():
    cfg = PuzzleConfig(mate_in=3, material=("KQvK",), max_attempts=1)
    with pytest.raises(InputError, match="max_attempts=1"):
        for i in range(20):  # some index fails on its one attempt
            generate_puzzle(cfg, 0, i, record_trace=False)


# --- the recorded alpha-beta tree ---------------------------------------------------------------
def test_search_tree_value_and_root_stats():
    cfg = PuzzleConfig(mate_in=2, material=("KQvK",))
    p = generate_puzzle(cfg, 3, 0)
    assert p.search_value == MATE - 3
    trace = p.trace
    stats = games.root_move_stats(trace)
    enters = int((trace.kind == 3).sum())
    assert sum(n for _, n in stats) == enters - 1
    legal = {move_id(m) for m in p.board().legal_moves}
    assert {m for m, _ in stats} <= legal
    # The PV's first move is among the root moves searched, and it is the root's best move.
    root_exit = [r for r in trace.rows() if r["kind"] == "EXIT" and r["node"] == 0][0]
    assert move_from_id(root_exit["best"]).uci() in p.solutions


@pytest.mark.parametrize("fen,k", [("8/k7/8/2K5/1Q6/8/8/8 w - - 0 1", 2), ("6k1/5ppp/8/8/8/8/8/R5K1 w - - 0 1", 1),
                                   ("8/8/8/8/8/2k5/8/K1R5 b - - 0 1", 2), ("k7/8/1K6/8/8/8/8/5R2 w - - 0 1", 2)])
def test_pruned_alphabeta_equals_plain_minimax(fen, k):
    """Check-first ordering, the horizon check filter and the TT change nothing in the value."""
    board = chess.Board(fen)
    depth = 2 * k - 1
    plain = games.minimax(MateGame.for_root(board, depth, prune_quiet_at_horizon=False), board.copy(), depth,
                          record_trace=False)
    game = MateGame.for_root(board, depth)
    fast = games.alphabeta(game, board.copy(), depth, order=game.order, tt=games.TranspositionTable())
    assert fast.value == plain.value
    assert fast.nodes < plain.nodes
    trace, value = record_search_tree(board, k)
    assert value == plain.value and len(trace) > 0


def test_may_give_check_never_misses_a_check():
    rnd = np.random.default_rng(0)
    for _ in range(15):
        board = chess.Board()
        for _ in range(int(rnd.integers(10, 80))):
            moves = list(board.legal_moves)
            if not moves:
                break
            for m in moves:
                if board.gives_check(m):
                    assert may_give_check(board, m), (board.fen(), m.uci())
            board.push(moves[int(rnd.integers(len(moves)))])


def test_move_ids_round_trip():
    ids = set()
    for uci in ("e2e4", "a7a8q", "a7a8n", "h2h1r", "g7h8b"):
        m = chess.Move.from_uci(uci)
        assert move_from_id(move_id(m)) == m
        ids.add(move_id(m))
    assert len(ids) == 5


def test_chess_task_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; import searchprobe.tasks.chess.dataset, searchprobe.tasks.chess.imports, "
            "searchprobe.tasks.chess.pictures, searchprobe.tasks.chess.labels; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_position_tuple_is_the_fen_without_counters():
    from searchprobe.tasks.chess.game import board_key, position_tuple
    from searchprobe.tasks.chess.puzzles import canonical_fen

    rnd = np.random.default_rng(3)
    boards = []
    for _ in range(6):
        board = chess.Board()
        for _ in range(int(rnd.integers(0, 30))):
            moves = list(board.legal_moves)
            if not moves:
                break
            board.push(moves[int(rnd.integers(len(moves)))])
            boards.append(board.copy(stack=False))
    # transpositions: same position reached by different move orders / counters
    a, b = chess.Board(), chess.Board()
    for uci in ("g1f3", "g8f6", "b1c3"):
        a.push_uci(uci)
    for uci in ("b1c3", "g8f6", "g1f3"):
        b.push_uci(uci)
    boards += [a, b, chess.Board(a.fen().replace(" 3", " 9"))]
    fens = [canonical_fen(x.fen()) for x in boards]
    tuples = [position_tuple(x) for x in boards]
    keys = [board_key(x) for x in boards]
    assert tuples[-3] == tuples[-2] == tuples[-1]
    for i in range(len(boards)):
        for j in range(len(boards)):
            assert (tuples[i] == tuples[j]) == (fens[i] == fens[j])
            assert (keys[i] == keys[j]) == (fens[i] == fens[j])
