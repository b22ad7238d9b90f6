"""Mate-in-k puzzles: an exact mate prover, a seeded random-position generator, and the record.

`MateSolver` proves "the side to move mates within n moves" exactly (python-chess rules,
checks first, only checks at the last attacker move, a transposition table keyed by position
and depth). It screens random positions fast; each accepted puzzle then gets its full
alpha-beta search tree recorded with `searchprobe.search.games.alphabeta` over `MateGame`.

Puzzle ``i`` of a run depends only on ``(seed, i)``: its random stream is
``numpy.random.default_rng([seed, i])``, so any worker count or shard split gives the same puzzles.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import chess
import numpy as np

from searchprobe.errors import InputError
from searchprobe.search.trace import Trace
from searchprobe.tasks.chess.config import Material, PuzzleConfig
from searchprobe.tasks.chess.game import MateGame, check_candidates, may_give_check, position_tuple


@dataclass(frozen=True, eq=False)
class Puzzle:
    """One position where the side to move mates in exactly `mate_in` moves.

    fen: the puzzle position (move counters included; `key` drops them).
    pv: the principal variation in UCI, ``2 * mate_in - 1`` plies; the last move mates.
        The attacker plays the first mating move in search order; the defender the longest defence.
    mate_in: k, the attacker's number of moves.
    solutions: every first move (UCI) that mates in `mate_in`; one when the puzzle is unique.
    material: the material spec, e.g. ``"KQvK"`` (attacker v defender).
    source: ``"generated"``, ``"lichess:<PuzzleId>"`` or ``"pgn:<game>:<ply>"``.
    seed, index, attempts: how to regenerate it (generated puzzles; -1 otherwise).
    trace: the alpha-beta search tree at depth ``2 * mate_in - 1`` (None if not recorded).
    search_value: the root value of that search (``MATE - (2 * mate_in - 1)``).
    """

    fen: str
    pv: tuple[str, ...]
    mate_in: int
    solutions: tuple[str, ...]
    material: str
    source: str = "generated"
    seed: int = -1
    index: int = -1
    attempts: int = 0
    trace: Trace | None = field(default=None, repr=False)
    search_value: float = math.nan

    def board(self) -> chess.Board:
        return chess.Board(self.fen)

    @property
    def key(self) -> str:
        """Canonical position key for splits: the FEN without move counters."""
        return canonical_fen(self.fen)

    @property
    def unique(self) -> bool:
        return len(self.solutions) == 1

    def pv_moves(self) -> list[chess.Move]:
        return [chess.Move.from_uci(m) for m in self.pv]

    def final_board(self) -> chess.Board:
        board = self.board()
        for move in self.pv_moves():
            board.push(move)
        return board

    def __repr__(self) -> str:
        return (f"Puzzle(fen={self.fen!r}, pv={self.pv!r}, mate_in={self.mate_in}, "
                f"material={self.material!r}, solutions={len(self.solutions)}, source={self.source!r})")

    def _repr_svg_(self) -> str:
        from searchprobe.tasks.chess.pictures import board_svg

        return board_svg(self)


def canonical_fen(fen: str) -> str:
    """The FEN's first four fields (board, turn, castling, en passant as python-chess writes it)."""
    board = chess.Board(fen)
    return " ".join(board.fen(en_passant="legal").split()[:4])


class MateSolver:
    """Exact mate proofs for a fixed attacker, with a transposition table.

    Keys are `game.position_tuple` (exact, no hash collisions).
    ``win[key] = n``: proven that the attacker mates within n moves from this position;
    ``fail[key] = n``: proven that he does not. Both are monotone in n, so one entry per key
    answers every depth. The table lives as long as the solver (one puzzle).
    """

    def __init__(self) -> None:
        self.win: dict[tuple, int] = {}
        self.fail: dict[tuple, int] = {}
        self.nodes = 0  #: moves pushed so far

    def mates_within(self, board: chess.Board, n: int) -> bool:
        """Does the side to move force mate in at most n moves (n >= 1)?"""
        key = position_tuple(board)
        known = self.win.get(key)
        if known is not None and known <= n:
            return True
        known = self.fail.get(key)
        if known is not None and known >= n:
            return False
        result = False
        for move in self._attacker_moves(board, last=n == 1):
            self.nodes += 1
            board.push(move)
            ok = board.is_checkmate() if n == 1 else self.defender_lost(board, n - 1)
            board.pop()
            if ok:
                result = True
                break
        if result:
            self.win[key] = n
        else:
            self.fail[key] = max(n, self.fail.get(key, 0))
        return result

    def defender_lost(self, board: chess.Board, n: int) -> bool:
        """Is the side to move mated now, or mated within n moves of the opponent whatever it plays?"""
        moves = list(board.generate_legal_moves())
        if not moves:
            return board.is_check()
        if board.has_insufficient_material(not board.turn):
            return False
        key = position_tuple(board)
        known = self.win.get(key)
        if known is not None and known <= n:
            return True
        known = self.fail.get(key)
        if known is not None and known >= n:
            return False
        # Captures first: taking the attacker's pieces is the likeliest refutation.
        moves.sort(key=lambda m: not board.is_capture(m))
        result = True
        for move in moves:
            self.nodes += 1
            board.push(move)
            ok = self.mates_within(board, n)
            board.pop()
            if not ok:
                result = False
                break
        if result:
            self.win[key] = n
        else:
            self.fail[key] = max(n, self.fail.get(key, 0))
        return result

    def shortest_mate(self, board: chess.Board, max_n: int) -> int | None:
        """The least n <= max_n with a forced mate in n, or None."""
        for n in range(1, max_n + 1):
            if self.mates_within(board, n):
                return n
        return None

    def mating_moves(self, board: chess.Board, n: int, limit: int | None = None) -> list[chess.Move]:
        """The first moves (in search order) that mate within n; stops after `limit` of them."""
        found = []
        for move in self._attacker_moves(board, last=n == 1):
            board.push(move)
            ok = board.is_checkmate() if n == 1 else self.defender_lost(board, n - 1)
            board.pop()
            if ok:
                found.append(move)
                if limit is not None and len(found) >= limit:
                    break
        return found

    def principal_variation(self, board: chess.Board, n: int) -> list[chess.Move]:
        """A mating line of 2n-1 plies: first mating move in order; the defender's longest defence."""
        line: list[chess.Move] = []
        pushed = 0
        try:
            for remaining in range(n, 0, -1):
                move = self.mating_moves(board, remaining, limit=1)[0]
                line.append(move)
                board.push(move)
                pushed += 1
                if remaining == 1:
                    break
                best_reply = self.longest_defence(board, remaining)
                line.append(best_reply)
                board.push(best_reply)
                pushed += 1
        finally:
            for _ in range(pushed):
                board.pop()
        return line

    def longest_defence(self, board: chess.Board, n: int) -> chess.Move:
        """The defender's reply (to move in a lost position, mate within n - 1 after it) that puts
        mate off longest; the first such reply in move order."""
        best_reply, best_len = None, 0
        for reply in board.generate_legal_moves():
            board.push(reply)
            length = self.shortest_mate(board, n - 1) or n
            board.pop()
            if length > best_len:
                best_reply, best_len = reply, length
        return best_reply

    @staticmethod
    def _attacker_moves(board: chess.Board, last: bool) -> list[chess.Move]:
        """All moves, likely checks first, then captures; at the last move only possible checks."""
        if last:  # only checks can mate; `mates_within` confirms mate with python-chess
            return check_candidates(board)
        checks, captures, quiet = [], [], []
        for move in board.generate_legal_moves():
            if may_give_check(board, move):  # cheap superset: only the order depends on it
                checks.append(move)
            elif board.is_capture(move):
                captures.append(move)
            else:
                quiet.append(move)
        return checks + captures + quiet


# --- random positions ------------------------------------------------------------------------

def random_position(rng: np.random.Generator, material: Material, attacker: chess.Color) -> chess.Board | None:
    """Scatter `material` on an empty board (pawns off the back ranks), attacker to move.

    Returns None when python-chess calls the position invalid (e.g. the defender in check,
    adjacent kings) or dead (insufficient material for the attacker).
    """
    pieces = material.pieces(attacker)
    pieces.sort(key=lambda p: p.piece_type != chess.PAWN)  # pawns first: fewer allowed squares
    free = rng.permutation(64).tolist()
    board = chess.Board(None)
    board.turn = attacker
    for piece in pieces:
        pawn = piece.piece_type == chess.PAWN
        sq = next((s for s in free if not (pawn and chess.square_rank(s) in (0, 7))), None)
        if sq is None:
            return None
        free.remove(sq)
        board.set_piece_at(sq, piece)
    if not board.is_valid() or board.has_insufficient_material(attacker):
        return None
    return board


def _attacker_color(cfg: PuzzleConfig, rng: np.random.Generator) -> chess.Color:
    if cfg.attacker == "random":
        return bool(rng.integers(2) == 0)
    return cfg.attacker == "white"


def generate_puzzle(cfg: PuzzleConfig, seed: int, index: int, *, record_trace: bool = True) -> Puzzle:
    """Puzzle `index` of the run with `seed`: the first random position that fits `cfg`."""
    rng = np.random.default_rng([seed, index])
    materials = cfg.materials()
    material = materials[int(rng.integers(len(materials)))]  # once per puzzle: uniform over the specs
    k = cfg.mate_in
    for attempt in range(1, cfg.max_attempts + 1):
        board = random_position(rng, material, _attacker_color(cfg, rng))
        if board is None:
            continue
        puzzle = solve_position(board, k, unique=cfg.unique_first_move, record_trace=record_trace,
                                material=str(material))
        if puzzle is not None:
            return _with(puzzle, seed=seed, index=index, attempts=attempt)
    raise InputError(
        f"no mate-in-{k} puzzle with material {material} found in max_attempts={cfg.max_attempts} "
        f"random positions (seed={seed}, index={index}); raise max_attempts or change the material"
    )


def solve_position(board: chess.Board, k: int, *, unique: bool = False, record_trace: bool = True,
                   material: str | None = None, source: str = "generated",
                   solver: MateSolver | None = None) -> Puzzle | None:
    """The puzzle for `board` if its side to move mates in exactly k (and uniquely, if asked), else None."""
    solver = solver or MateSolver()
    board = board.copy(stack=False)
    if not solver.mates_within(board, k):
        return None
    if k > 1 and solver.mates_within(board, k - 1):
        return None
    solutions = solver.mating_moves(board, k, limit=2 if unique else None)
    if unique and len(solutions) != 1:
        return None
    pv = solver.principal_variation(board, k)
    trace, value = (record_search_tree(board, k) if record_trace else (None, math.nan))
    return Puzzle(
        fen=board.fen(), pv=tuple(m.uci() for m in pv), mate_in=k,
        solutions=tuple(m.uci() for m in solutions),
        material=material if material is not None else material_of(board),
        source=source, trace=trace, search_value=value,
    )


def record_search_tree(board: chess.Board, k: int) -> tuple[Trace, float]:
    """Run `searchprobe.search.games.alphabeta` to depth 2k-1 on a copy of `board`; (trace, value)."""
    from searchprobe.search import games

    board = board.copy(stack=False)
    game = MateGame.for_root(board, 2 * k - 1)
    result = games.alphabeta(game, board, 2 * k - 1, alpha=-math.inf, beta=math.inf,
                             order=game.order, tt=games.TranspositionTable(), record_trace=True)
    return result.trace, float(result.value)


def material_of(board: chess.Board) -> str:
    """The material spec of a position, side to move first, e.g. ``"KQvK"``."""
    def side(color: chess.Color) -> str:
        letters = "".join(chess.piece_symbol(p.piece_type).upper() for p in board.piece_map().values() if p.color == color)
        return "".join(sorted(letters, key="KQRBNP".index))

    return f"{side(board.turn)}v{side(not board.turn)}"


def _with(puzzle: Puzzle, **changes) -> Puzzle:
    from dataclasses import replace

    return replace(puzzle, **changes)


# --- many puzzles, many processes ------------------------------------------------------------

def _generate_chunk(args: tuple[PuzzleConfig, int, Sequence[int], bool]) -> list[Puzzle]:
    cfg, seed, indices, record_trace = args
    return [generate_puzzle(cfg, seed, i, record_trace=record_trace) for i in indices]


def iter_puzzles(cfg: PuzzleConfig, seed: int, indices: Iterable[int], *, workers: int = 1,
                 record_trace: bool = True, progress: bool = False, chunk: int = 4) -> Iterator[Puzzle]:
    """Yield puzzle i for each i in `indices`, in that order, computed on `workers` processes."""
    if workers < 1:
        raise InputError(f"workers={workers} must be >= 1")
    indices = list(indices)
    chunks = [indices[i:i + chunk] for i in range(0, len(indices), chunk)]
    jobs = [(cfg, seed, c, record_trace) for c in chunks]
    bar = _progress(len(indices), progress)
    try:
        if workers == 1 or len(chunks) <= 1:
            for job in jobs:
                got = _generate_chunk(job)
                bar.update(len(got))
                yield from got
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(chunks))) as pool:
                for got in pool.map(_generate_chunk, jobs):
                    bar.update(len(got))
                    yield from got
    finally:
        bar.close()


def generate_puzzles(cfg: PuzzleConfig, n: int, seed: int, *, start: int = 0, workers: int = 1,
                     record_trace: bool = True, progress: bool = False) -> list[Puzzle]:
    """Puzzles ``start .. start+n-1`` of the run with `seed`, in index order, on `workers` processes."""
    if n < 0:
        raise InputError(f"number of puzzles n={n} must be >= 0")
    return list(iter_puzzles(cfg, seed, range(start, start + n), workers=workers,
                             record_trace=record_trace, progress=progress))


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc="puzzles", unit="puzzle")
