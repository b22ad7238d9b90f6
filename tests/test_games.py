"""Minimax / alpha-beta against independent references: a max/min brute force on random game
DAGs, the known tic-tac-toe numbers, Knuth–Moore's minimal-tree size, and python-chess."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import chess
import chess.polyglot
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from searchprobe.errors import InputError
from searchprobe.search.games import (
    Bound,
    TranspositionTable,
    TTEntry,
    alphabeta,
    minimax,
    root_move_stats,
)
from searchprobe.search.trace import Event

SEEDS = st.integers(0, 2**32 - 1)


# --- games used by the tests ---------------------------------------------------------------


@dataclass
class LayeredGame:
    """A random game on a layered DAG: children[v] lists the nodes reachable in one move (shared
    children make transpositions); a node without children is terminal with value terminal[v];
    static[v] is the horizon evaluation. Values are for the side to move. State: a list path."""

    children: list[list[int]]
    terminal: list[float]
    static: list[float]
    layer: list[int]

    def moves(self, state):
        return self.children[state[-1]]

    def push(self, state, move):
        state.append(move)

    def pop(self, state):
        state.pop()

    def terminal_value(self, state, ply):
        v = state[-1]
        return None if self.children[v] else self.terminal[v]

    def evaluate(self, state):
        return self.static[state[-1]]

    def key(self, state):
        return state[-1]  # node ids are unique per layer, so the layer (side to move) is implied

    def move_id(self, move):
        return move


def random_game(seed: int, uniform: tuple[int, int] | None = None, shared: bool = True) -> LayeredGame:
    """Layered random game; `uniform=(b, d)` gives a full tree of branching b and depth d."""
    rng = np.random.default_rng(seed)
    n_layers = uniform[1] + 1 if uniform else int(rng.integers(2, 6))
    children: list[list[int]] = [[]]
    layer = [0]
    frontier = [0]
    for depth in range(1, n_layers):
        width = int(rng.integers(2, 7)) if shared else 0
        pool = list(range(len(children), len(children) + width))
        if shared:
            children.extend([] for _ in pool)
            layer.extend([depth] * width)
        next_frontier = []
        for v in frontier:
            if not uniform and rng.random() < 0.15:
                continue  # an early terminal node
            b = uniform[0] if uniform else int(rng.integers(1, 5))
            if shared:
                picks = rng.choice(pool, size=min(b, width), replace=False).tolist()
            else:
                picks = list(range(len(children), len(children) + b))
                children.extend([] for _ in picks)
                layer.extend([depth] * b)
            children[v] = [int(p) for p in picks]
            next_frontier.extend(p for p in picks if p not in next_frontier)
        frontier = next_frontier
    n = len(children)
    terminal = rng.normal(size=n).round(3).tolist()
    static = rng.normal(size=n).round(3).tolist()
    return LayeredGame(children, terminal, static, layer)


def reference_value(game: LayeredGame, v: int, depth: int, maximizing: bool) -> float:
    """Textbook max/min (not negamax) for the root player, by plain recursion on the DAG."""
    if not game.children[v] or depth == 0:
        own = game.terminal[v] if not game.children[v] else game.static[v]
        return own if maximizing else -own
    values = [reference_value(game, c, depth - 1, not maximizing) for c in game.children[v]]
    return max(values) if maximizing else min(values)


def tree_size(game: LayeredGame, v: int, depth: int) -> int:
    if not game.children[v] or depth == 0:
        return 1
    return 1 + sum(tree_size(game, c, depth - 1) for c in game.children[v])


class TicTacToe:
    """Board list of 9 cells (1 = X, -1 = O) plus the move stack; a win scores 10 - ply."""

    LINES = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6)]

    def __init__(self) -> None:
        self.terminal_leaves = 0

    def moves(self, s):
        return [i for i in range(9) if s[0][i] == 0]

    def push(self, s, m):
        s[0][m] = 1 if len(s[1]) % 2 == 0 else -1
        s[1].append(m)

    def pop(self, s):
        s[0][s[1].pop()] = 0

    def terminal_value(self, s, ply):
        board, stack = s
        if stack:
            p = board[stack[-1]]
            if any(board[a] == board[b] == board[c] == p for a, b, c in self.LINES):
                self.terminal_leaves += 1
                return -(10 - ply)  # the side to move has lost
        if len(stack) == 9:
            self.terminal_leaves += 1
            return 0
        return None

    def evaluate(self, s):
        return 0

    def key(self, s):
        return tuple(s[0])

    def move_id(self, m):
        return m


PIECE_VALUES = {chess.PAWN: 1, chess.KNIGHT: 3, chess.BISHOP: 3, chess.ROOK: 5, chess.QUEEN: 9, chess.KING: 0}


class ChessGame:
    """Minimal python-chess adapter: material evaluation, mate = 1000 - ply."""

    def moves(self, board):
        return list(board.legal_moves)

    def push(self, board, move):
        board.push(move)

    def pop(self, board):
        board.pop()

    def terminal_value(self, board, ply):
        if board.is_checkmate():
            return -(1000 - ply)
        if board.is_stalemate() or board.is_insufficient_material():
            return 0
        return None

    def evaluate(self, board):
        score = sum(PIECE_VALUES[p.piece_type] * (1 if p.color == board.turn else -1) for p in board.piece_map().values())
        return float(score)

    def key(self, board):
        return chess.polyglot.zobrist_hash(board)

    def move_id(self, move):
        return move.from_square * 64 + move.to_square + 4096 * (move.promotion or 0)


def mvv_lva(board, moves):
    """Captures first (most valuable victim), then checks, then the rest."""
    def score(m):
        victim = board.piece_at(m.to_square)
        return (-(PIECE_VALUES[victim.piece_type] * 10 if victim else 0) - (5 if board.gives_check(m) else 0))
    return sorted(moves, key=score)


# --- helpers --------------------------------------------------------------------------------


def replay_pv(game, state, result, depth):
    """Play the PV and read the value at its end, signed back to the root's side to move."""
    for move in result.pv:
        game.push(state, move)
    ply = len(result.pv)
    value = game.terminal_value(state, ply)
    if value is None:
        assert ply == depth, "a PV that ends early must end in a terminal position"
        value = game.evaluate(state)
    for _ in result.pv:
        game.pop(state)
    return value if ply % 2 == 0 else -value


def check_trace(result, pruned: bool) -> None:
    """Parentheses, parents, depths, negamax EXIT values, cutoffs and TT hits."""
    t = result.trace
    stack: list[int] = []
    entered = 0
    child_values: dict[int, list[float]] = {}
    for i in range(len(t)):
        kind, node, value = int(t.kind[i]), int(t.node[i]), float(t.value[i])
        if kind == Event.ENTER:
            assert int(t.parent[i]) == (stack[-1] if stack else -1)
            assert int(t.depth[i]) == len(stack)
            assert node == entered  # preorder ids
            entered += 1
            stack.append(node)
            child_values[node] = []
        elif kind == Event.EXIT:
            assert stack.pop() == node
            if child_values[node]:  # internal node: negamax over the children it searched
                assert value == max(-v for v in child_values[node])
            if stack:
                child_values[stack[-1]].append(value)
        elif kind == Event.CUTOFF:
            assert pruned and stack[-1] == node and value >= t.beta[i]
            assert t.kind[i + 1] == Event.EXIT and t.node[i + 1] == node and t.value[i + 1] == value
        else:
            assert kind == Event.TT_HIT and stack[-1] == node
            assert t.kind[i + 1] == Event.EXIT and t.value[i + 1] == value and not child_values[node]
    assert not stack
    assert result.nodes == int(np.sum(t.kind == Event.ENTER))
    if not pruned:
        assert np.isnan(t.alpha).all() and not np.any(t.kind == Event.CUTOFF)


# --- random game DAGs ------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(SEEDS, st.integers(0, 5))
def test_alphabeta_equals_minimax_equals_reference_on_random_games(seed, depth):
    game = random_game(seed)
    expected = reference_value(game, 0, depth, True)
    mm = minimax(game, [0], depth)
    assert mm.value == expected
    assert mm.nodes == tree_size(game, 0, depth)
    check_trace(mm, pruned=False)
    rng = np.random.default_rng(seed)
    shuffled = lambda state, moves: [moves[i] for i in rng.permutation(len(moves))]  # noqa: E731
    for kwargs in ({}, {"order": shuffled}, {"tt": TranspositionTable()},
                   {"order": shuffled, "tt": TranspositionTable()}):
        ab = alphabeta(game, [0], depth, **kwargs)
        assert ab.value == expected, kwargs
        assert ab.nodes <= mm.nodes
        assert replay_pv(game, [0], ab, depth) == ab.value
        check_trace(ab, pruned=True)
    assert replay_pv(game, [0], mm, depth) == mm.value


@settings(max_examples=40, deadline=None)
@given(SEEDS, st.floats(-2, 2), st.floats(0.01, 2))
def test_fail_soft_bounds_with_narrow_windows(seed, alpha, width):
    game = random_game(seed)
    true = reference_value(game, 0, 4, True)
    for tt in (None, TranspositionTable()):
        v = alphabeta(game, [0], 4, alpha=alpha, beta=alpha + width, tt=tt).value
        if v <= alpha:
            assert true <= v
        elif v >= alpha + width:
            assert true >= v
        else:
            assert v == true


@pytest.mark.parametrize("branching,depth", [(2, 4), (3, 3), (3, 4), (4, 3), (5, 2)])
def test_perfect_ordering_visits_knuth_moore_minimal_tree(branching, depth):
    game = random_game(branching * 100 + depth, uniform=(branching, depth), shared=False)
    exact = {}

    def best_first(state, moves):  # order by the true negamax value of each child
        remaining = depth - len(state)
        maximizing = len(state) % 2 == 1  # the child's side to move, seen from the root player
        for m in moves:
            exact[m] = reference_value(game, m, remaining, maximizing) * (1 if len(state) % 2 == 0 else -1)
        return sorted(moves, key=lambda m: -exact[m])

    def worst_first(state, moves):
        return list(reversed(best_first(state, moves)))

    mm = minimax(game, [0], depth)
    good = alphabeta(game, [0], depth, order=best_first)
    bad = alphabeta(game, [0], depth, order=worst_first)
    assert good.value == bad.value == mm.value == reference_value(game, 0, depth, True)
    leaves = int(np.sum((good.trace.kind == Event.ENTER) & (good.trace.depth == depth)))
    assert leaves == branching ** math.ceil(depth / 2) + branching ** (depth // 2) - 1
    assert mm.nodes == sum(branching**k for k in range(depth + 1))
    assert good.nodes < bad.nodes <= mm.nodes


def test_root_move_stats_counts_subtrees():
    game = random_game(5, uniform=(3, 4), shared=False)
    mm = minimax(game, [0], 4)
    assert root_move_stats(mm.trace) == [(m, 1 + 3 + 9 + 27) for m in game.children[0]]
    ab = alphabeta(game, [0], 4, tt=TranspositionTable())
    stats = root_move_stats(ab.trace)
    assert [m for m, _ in stats] == game.children[0]
    # independent count: ENTER rows between each root child's ENTER and its matching EXIT
    t = ab.trace
    for move, count in stats:
        start = int(np.flatnonzero((t.kind == Event.ENTER) & (t.parent == 0) & (t["move"] == move))[0])
        node = t.node[start]
        end = int(np.flatnonzero((t.kind == Event.EXIT) & (t.node == node))[0])
        assert count == int(np.sum(t.kind[start:end + 1] == Event.ENTER))
    assert sum(c for _, c in stats) == ab.nodes - 1
    assert root_move_stats(alphabeta(game, [0], 2, record_trace=False).trace) == []


def test_transposition_table_bounds_and_reuse():
    table = TranspositionTable()
    exact, lower, upper = (TTEntry(3, 1, 0.5, b, None) for b in (Bound.EXACT, Bound.LOWER, Bound.UPPER))
    assert table.answers(exact, 3, 1, -1, 1) and not table.answers(exact, 2, 1, -1, 1)
    assert not table.answers(exact, 3, 2, -1, 1)  # other ply: mate scores would differ
    assert table.answers(lower, 3, 1, -1, 0.5) and not table.answers(lower, 3, 1, -1, 0.6)
    assert table.answers(upper, 3, 1, 0.5, 1) and not table.answers(upper, 3, 1, 0.4, 1)
    deeper = TranspositionTable(reuse_deeper=True)
    assert deeper.answers(exact, 2, 5, -1, 1) and not deeper.answers(exact, 4, 1, -1, 1)
    # iterative deepening with a shared table still gets the right final value on a tree
    game = random_game(11, uniform=(3, 5), shared=False)
    for d in range(1, 6):
        value = alphabeta(game, [0], d, tt=deeper).value
        assert value == reference_value(game, 0, d, True)


# --- tic-tac-toe: known numbers --------------------------------------------------------------


def test_tictactoe_full_game_tree_and_value():
    game = TicTacToe()
    mm = minimax(game, ([0] * 9, []), 9, record_trace=False)
    # the full game tree (play stops at a win): 549,946 nodes and 255,168 finished games
    assert mm.nodes == 549_946 and game.terminal_leaves == 255_168
    assert mm.value == 0  # a draw with best play
    ab = alphabeta(game, ([0] * 9, []), 9)
    tt = alphabeta(game, ([0] * 9, []), 9, tt=TranspositionTable())
    assert ab.value == tt.value == 0 and tt.nodes < ab.nodes < mm.nodes
    check_trace(tt, pruned=True)
    assert replay_pv(game, ([0] * 9, []), tt, 9) == 0
    # X in a corner, O on an adjacent edge: X wins (X to move again); X plays the known win
    state = ([1, -1, 0, 0, 0, 0, 0, 0, 0], [0, 1])
    win = alphabeta(game, state, 7, tt=TranspositionTable())
    assert win.value > 0 and win.value == minimax(game, state, 7, record_trace=False).value
    assert replay_pv(game, state, win, 7) == win.value


# --- python-chess positions -------------------------------------------------------------------

POSITIONS = [
    ("k7/8/1K6/8/8/8/8/7R w - - 0 1", 3),  # Rh8# (mate in one)
    ("8/8/8/4k3/8/2n5/3QK3/8 w - - 0 1", 3),  # Qxc3+ wins the knight
    ("r1bqkbnr/pppp1ppp/2n5/4p3/2B1P3/5Q2/PPPP1PPP/RNB1K1NR w KQkq - 2 3", 2),  # Qxf7#
    ("4k3/8/8/3q4/8/8/3R4/3K4 b - - 0 1", 3),
]


@pytest.mark.parametrize("fen,depth", POSITIONS)
def test_chess_alphabeta_equals_minimax(fen, depth):
    game = ChessGame()
    board = chess.Board(fen)
    mm = minimax(game, board, depth)
    variants = [
        alphabeta(game, board, depth),
        alphabeta(game, board, depth, order=mvv_lva),
        alphabeta(game, board, depth, order=mvv_lva, tt=TranspositionTable()),
    ]
    assert board.fen() == fen  # push/pop restored the board
    for ab in variants:
        assert ab.value == mm.value
        assert ab.nodes <= mm.nodes
        assert replay_pv(game, board, ab, depth) == ab.value
        check_trace(ab, pruned=True)
        assert all(move in board.legal_moves for move in ab.pv[:1])
    assert variants[1].nodes <= variants[0].nodes  # captures and checks first prune more …
    if fen == POSITIONS[1][0]:
        assert variants[1].nodes < variants[0].nodes  # … strictly when the win is a capture
    stats = root_move_stats(variants[1].trace)
    assert sorted(m for m, _ in stats) == sorted(game.move_id(m) for m in board.legal_moves)


def test_chess_finds_mates():
    game = ChessGame()
    board = chess.Board(POSITIONS[0][0])
    result = alphabeta(game, board, 3, order=mvv_lva, tt=TranspositionTable())
    assert result.value == 999 and result.best_move == chess.Move.from_uci("h1h8")
    board.push(result.best_move)
    assert board.is_checkmate()
    scholar = chess.Board(POSITIONS[2][0])
    assert alphabeta(game, scholar, 2).best_move == chess.Move.from_uci("f3f7")


# --- bad input ---------------------------------------------------------------------------------


def test_bad_inputs():
    game = random_game(1)
    with pytest.raises(InputError, match="depth -1"):
        minimax(game, [0], -1)
    with pytest.raises(InputError, match="window"):
        alphabeta(game, [0], 2, alpha=1.0, beta=1.0)

    class Stuck(LayeredGame):
        def terminal_value(self, state, ply):
            return None

    stuck = Stuck([[1], []], [0.0, 0.0], [0.0, 0.0], [0, 1])
    with pytest.raises(InputError, match="no moves"):
        alphabeta(stuck, [0], 3)
    with pytest.raises(InputError, match="order hook"):
        alphabeta(game, [0], 2, order=lambda state, moves: [])


def test_order_hook_may_drop_moves():
    """Forward pruning through the hook: the value is the minimax value of the pruned tree."""
    game = random_game(21, uniform=(3, 3), shared=False)
    keep_first_two = lambda state, moves: moves[:2]  # noqa: E731
    pruned = LayeredGame([c[:2] for c in game.children], game.terminal, game.static, game.layer)
    result = alphabeta(game, [0], 3, order=keep_first_two, tt=TranspositionTable())
    assert result.value == reference_value(pruned, 0, 3, True)
    assert result.nodes <= 1 + 2 + 4 + 8
