"""Two-player zero-sum game search with traces: minimax and alpha-beta (negamax form).

Games follow a push/pop `Game` protocol (the state is mutated in place and restored, so
python-chess boards are never copied). All values are **negamax values**: from the point of view
of the side to move at the node they belong to; a parent's value is the max over its children of
minus the child's value.

Trace (a `searchprobe.search.trace.Trace`; ``g`` and ``h`` are NaN). Extra columns: ``alpha``,
``beta`` (float; the node's window in its own side-to-move frame, NaN for `minimax`), ``move``
(int; `Game.move_id` of the move that led to the node, -1 at the root) and ``best`` (int; on EXIT
and CUTOFF rows the move_id of the node's best / refuting move, else -1).

* ``ENTER`` node, parent, depth = ply from the root, alpha, beta (the window on entry), move.
* ``TT_HIT`` the transposition table answered the node: value = the stored value (then EXIT).
* ``CUTOFF`` a beta cutoff at this node: value = the node's (fail-soft) value, which is >= beta;
  alpha = its alpha after the update; best = the refuting move. The remaining moves are skipped.
* ``EXIT`` the node is left with its value (and best move, -1 at leaves).

How the trace relates to the tree: node ids are visit counters in ENTER order (the root is 0), so
they are preorder numbers: ENTER/EXIT pairs nest like parentheses and the subtree of node n is
exactly the id range [n, n + size). The root moves examined, in order, are the ENTER rows with
``parent == 0``; the number of nodes searched under root move k is the next root child's id minus
child k's id (the last one runs to `GameSearchResult.nodes`). `root_move_stats` returns exactly
that. ``GameSearchResult.nodes`` is the number of ENTER events (every node entered, leaves and
TT-answered nodes included).

Node evaluation order: ENTER, then `Game.terminal_value` (game over → leaf), then the
transposition table, then the horizon (depth 0 → `Game.evaluate`), then the children. Alpha-beta
is fail-soft; with the default full window the root value equals the minimax value exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Callable, Hashable, Protocol, Sequence, runtime_checkable

import numpy as np

from searchprobe.errors import InputError
from searchprobe.search.trace import Event, Trace

__all__ = [
    "Game",
    "GameSearchResult",
    "Bound",
    "TTEntry",
    "TranspositionTable",
    "minimax",
    "alphabeta",
    "root_move_stats",
]

Move = Any
State = Any
_ENTER, _EXIT, _CUTOFF, _TT_HIT = int(Event.ENTER), int(Event.EXIT), int(Event.CUTOFF), int(Event.TT_HIT)
_NAN, _INF = math.nan, math.inf


@runtime_checkable
class Game(Protocol):
    """A two-player zero-sum game searched in place (push/pop, no copies)."""

    def moves(self, state: State) -> Sequence[Move]:
        """Legal moves in `state`, in a fixed order (non-empty unless the game is over)."""
        ...

    def push(self, state: State, move: Move) -> None:
        """Play `move` on `state` in place."""
        ...

    def pop(self, state: State) -> None:
        """Undo the last pushed move."""
        ...

    def terminal_value(self, state: State, ply: int) -> float | None:
        """Value for the side to move if the game is over, else None (`ply` lets mates prefer short)."""
        ...

    def evaluate(self, state: State) -> float:
        """Static value for the side to move, used at the depth horizon."""
        ...

    def key(self, state: State) -> Hashable:
        """Transposition-table key: must identify the position and the side to move."""
        ...

    def move_id(self, move: Move) -> int:
        """Integer for the trace's ``move`` / ``best`` columns."""
        ...


class Bound(IntEnum):
    """What a stored value means relative to the true (fixed-depth) negamax value."""

    EXACT = 0  #: the value itself
    LOWER = 1  #: a lower bound (the search failed high: value >= beta)
    UPPER = 2  #: an upper bound (the search failed low: value <= alpha)


@dataclass(frozen=True)
class TTEntry:
    """One transposition-table entry."""

    depth: int  #: remaining search depth the value was computed with
    ply: int  #: ply from the root where it was computed (mate scores depend on it)
    value: float  #: negamax value (or bound) for the side to move
    bound: Bound  #: EXACT / LOWER / UPPER
    best_move: Move | None  #: best or refuting move found (tried first on a later visit)
    pv: tuple = ()  #: principal variation from this node (EXACT entries only)


class TranspositionTable:
    """A dict from `Game.key` to `TTEntry`, correct with alpha-beta windows.

    An entry answers a node when its bound settles the node for the current window (EXACT, LOWER
    with value >= beta, UPPER with value <= alpha) and it was computed for the same problem:
    by default the same remaining depth **and** the same ply, which keeps alpha-beta + table
    equal to plain minimax even when terminal values depend on the ply. With
    ``reuse_deeper=True`` an entry searched at least as deep answers at any ply (the usual engine
    rule, e.g. across iterative deepening): values are then those of the deeper search. Entries
    that cannot answer still supply their best move, which is searched first. The newest entry
    for a key replaces the older one. As in engines, the key must capture all that matters: a
    history-dependent rule (e.g. repetition) not in the key is not seen by the table.
    """

    def __init__(self, reuse_deeper: bool = False) -> None:
        self.reuse_deeper = reuse_deeper
        self._entries: dict[Hashable, TTEntry] = {}
        self.hits = 0  #: probes answered, over the table's life

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"TranspositionTable(entries={len(self)}, hits={self.hits}, reuse_deeper={self.reuse_deeper})"

    def get(self, key: Hashable) -> TTEntry | None:
        return self._entries.get(key)

    def store(self, key: Hashable, entry: TTEntry) -> None:
        self._entries[key] = entry

    def clear(self) -> None:
        self._entries.clear()
        self.hits = 0

    def answers(self, entry: TTEntry, depth: int, ply: int, alpha: float, beta: float) -> bool:
        """Whether `entry` settles a node searched to `depth` at `ply` with window (alpha, beta)."""
        if self.reuse_deeper:
            if entry.depth < depth:
                return False
        elif entry.depth != depth or entry.ply != ply:
            return False
        if entry.bound == Bound.EXACT:
            return True
        if entry.bound == Bound.LOWER:
            return entry.value >= beta
        return entry.value <= alpha


@dataclass(frozen=True)
class GameSearchResult:
    """Value, best move and principal variation of a game-tree search, plus its trace."""

    value: float  #: negamax value for the side to move at the root
    best_move: Move | None  #: first move of `pv`; None at a terminal root or depth 0
    pv: list  #: principal variation (moves from the root)
    nodes: int  #: nodes entered (ENTER events), root and leaves included
    trace: Trace = field(repr=False)  #: the event trace (empty if record_trace=False)

    def __repr__(self) -> str:
        return (f"GameSearchResult(value={self.value!r}, best_move={self.best_move!r}, pv=<{len(self.pv)} moves>, "
                f"nodes={self.nodes}, trace={self.trace!r})")


def minimax(game: Game, state: State, depth: int, *, record_trace: bool = True) -> GameSearchResult:
    """Plain negamax to `depth` plies: every node is entered (the reference for alpha-beta)."""
    _check_depth(depth)
    return _negamax(game, state, depth, -_INF, _INF, False, None, None, record_trace)


def alphabeta(
    game: Game,
    state: State,
    depth: int,
    *,
    alpha: float = -_INF,
    beta: float = _INF,
    order: Callable[[State, list], list] | None = None,
    tt: TranspositionTable | None = None,
    record_trace: bool = True,
) -> GameSearchResult:
    """Fail-soft alpha-beta (negamax) to `depth` plies.

    With the default full window the value equals `minimax`'s; with a narrower (aspiration)
    window a value <= alpha or >= beta is only a bound. `order(state, moves)` returns the moves
    in the order to search them (good orders prune more); a table move is tried first anyway.
    The hook may also drop moves (forward pruning, at least one must stay): the search is then
    exact for the pruned tree, not the full one.
    """
    _check_depth(depth)
    if not alpha < beta:
        raise InputError(f"alphabeta window alpha={alpha!r}, beta={beta!r} is empty; alpha must be < beta")
    return _negamax(game, state, depth, float(alpha), float(beta), True, order, tt, record_trace)


def root_move_stats(trace: Trace) -> list[tuple[int, int]]:
    """(move_id, nodes searched under that move) for each root move examined, in search order.

    Uses the preorder numbering of node ids (see the module docstring); the counts include the
    root child itself, so they sum to the total node count minus one.
    """
    if len(trace) == 0:
        return []
    enter = trace.kind == _ENTER
    child = enter & (trace.parent == 0) & (trace.depth == 1)
    ids = trace.node[child]
    total = int(trace.node[enter].max()) + 1
    sizes = np.diff(np.append(ids, total))
    return [(int(m), int(s)) for m, s in zip(trace["move"][child], sizes)]


def _check_depth(depth: int) -> None:
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 0:
        raise InputError(f"search depth {depth!r} is not allowed; give an int >= 0 (plies)")


def _negamax(game: Game, state: State, depth: int, alpha: float, beta: float, prune: bool,
             order: Callable | None, tt: TranspositionTable | None, record: bool) -> GameSearchResult:
    """One search. Trace rows go to two flat lists (ints: kind, node, parent, ply, move, best;
    floats: value, alpha, beta), which keeps recording cheap and the garbage collector idle."""
    ints: list[int] = []
    floats: list[float] = []
    add_i, add_f = ints.extend, floats.extend
    push, pop, move_id_of = game.push, game.pop, game.move_id
    terminal_value, evaluate = game.terminal_value, game.evaluate
    tt_get = tt.get if tt is not None else None
    counter = [0]

    def search(ply: int, depth: int, alpha: float, beta: float, parent: int, move_id: int) -> tuple[float, tuple]:
        node = counter[0]
        counter[0] = node + 1
        win_a, win_b = (alpha, beta) if prune else (_NAN, _NAN)
        if record:
            add_i((_ENTER, node, parent, ply, move_id, -1))
            add_f((_NAN, win_a, win_b))

        value = terminal_value(state, ply)
        if value is not None:
            if record:
                add_i((_EXIT, node, parent, ply, move_id, -1))
                add_f((value, win_a, win_b))
            return value, ()

        key = tt_move = None
        if tt_get is not None:
            key = game.key(state)
            entry = tt_get(key)
            if entry is not None:
                if tt.answers(entry, depth, ply, alpha, beta):
                    tt.hits += 1
                    if record:
                        best_id = move_id_of(entry.best_move) if entry.best_move is not None else -1
                        add_i((_TT_HIT, node, parent, ply, move_id, -1, _EXIT, node, parent, ply, move_id, best_id))
                        add_f((entry.value, win_a, win_b, entry.value, win_a, win_b))
                    return entry.value, entry.pv
                tt_move = entry.best_move

        if depth == 0:
            value = evaluate(state)
            if record:
                add_i((_EXIT, node, parent, ply, move_id, -1))
                add_f((value, win_a, win_b))
            return value, ()

        moves = list(game.moves(state))
        if not moves:
            raise InputError(f"game.moves() returned no moves at ply {ply} but terminal_value() is None; "
                             "a position without moves must be terminal")
        if order is not None:
            moves = list(order(state, moves))
            if not moves:
                raise InputError(f"the order hook returned no moves at ply {ply}; it may reorder or drop moves, "
                                 "but must keep at least one")
        if tt_move is not None and tt_move in moves:
            moves.remove(tt_move)
            moves.insert(0, tt_move)

        alpha0 = alpha
        best, best_move, best_pv = -_INF, None, ()
        cut = False
        ply1, depth1 = ply + 1, depth - 1
        for move in moves:
            mid = move_id_of(move) if record else -1
            push(state, move)
            if prune:
                child_value, child_pv = search(ply1, depth1, -beta, -alpha, node, mid)
            else:
                child_value, child_pv = search(ply1, depth1, -_INF, _INF, node, mid)
            pop(state)
            value = -child_value
            if value > best or best_move is None:
                best, best_move, best_pv = value, move, (move, *child_pv)
                if prune and value > alpha:
                    alpha = value
                    if alpha >= beta:
                        cut = True
                        break
        if record:
            best_id = move_id_of(best_move)
            if cut:
                add_i((_CUTOFF, node, parent, ply, move_id, best_id))
                add_f((best, alpha, beta))
            add_i((_EXIT, node, parent, ply, move_id, best_id))
            add_f((best, win_a, win_b))
        if tt is not None:
            if best <= alpha0:
                bound = Bound.UPPER
            elif best >= beta:
                bound = Bound.LOWER
            else:
                bound = Bound.EXACT
            tt.store(key, TTEntry(depth, ply, best, bound, best_move, best_pv if bound == Bound.EXACT else ()))
        return best, best_pv

    value, pv = search(0, int(depth), alpha, beta, -1, -1)
    trace = _build_trace(ints, floats) if record else Trace.empty()
    return GameSearchResult(float(value), pv[0] if pv else None, list(pv), counter[0], trace)


def _build_trace(ints: list[int], floats: list[float]) -> Trace:
    i = np.array(ints, dtype=np.int64).reshape(-1, 6)
    f = np.array(floats, dtype=np.float64).reshape(-1, 3)
    nan = np.full(len(i), _NAN)
    return Trace(
        {
            "kind": i[:, 0].astype(np.int8),
            "node": i[:, 1].copy(),
            "parent": i[:, 2].copy(),
            "depth": i[:, 3].astype(np.int32),
            "g": nan,
            "h": nan.copy(),
            "value": f[:, 0].copy(),
            "alpha": f[:, 1].copy(),
            "beta": f[:, 2].copy(),
            "move": i[:, 4].copy(),
            "best": i[:, 5].copy(),
        }
    )
