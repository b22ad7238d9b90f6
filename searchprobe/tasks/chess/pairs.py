"""Counterfactual chess pairs, token-aligned for patching and goal retargeting.

Every chess prompt has the same 72 tokens (`tokens.PROMPT_LENGTH`: ``<bos>``, 64 squares, side to
move, castling, en passant, ``<sep>``), so any two positions align token by token. Two kinds:

* ``"king"``: the defender's king stands on another square. Candidate squares are the empty ones,
  nearest to the king first (ties in random order); a square is taken when the position is legal
  there (python-chess ``is_valid``: the kings apart, the defender not in check) and is again a
  mate-in-k puzzle of the dataset's kind (mate in exactly k, with a unique first move when the
  dataset's puzzles have one; proved by `puzzles.solve_position`) whose mating first moves share
  none with the clean position's. At most `KING_TRIES` legal squares are proved per row. The two
  prompts differ at exactly two square tokens (the king's old and new square) and nowhere else.
  Why the king: the mate is built around it, and moving it keeps the material and every attacking
  piece where it was, so a patching sweep asks where the model reads the king and how that
  reading reaches the first move. This kind has a donor (the corrupted position), so it serves
  the patching sweeps and attribution.
* ``"target"``: one position with two or more mating lines with different mating squares (the
  to-square of a line's last move; a line = a mating first move, the defender's longest defence,
  the attacker's first mating move in the prover's order, as `MateSolver.principal_variation`
  plays). The clean side follows one line, the corrupted side another; both sides have the *same
  prompt*, so this kind is donorless (`ChessTask.donorless_pair_kinds`): it serves goal
  retargeting, where the model's own choice of line is the goal to move, not patching sweeps.
  Built from the data, the clean side is the line of the dataset's solution; retargeting then
  re-orients each pair by the line the unedited model plays (`orient_target_pairs`).

Each pair is cut at its *decision*: the first solution token (index 0..2: from-square, to-square,
promotion of the first move, in the token frame) where the two sides' first moves differ; the
answers are each side's token there. A pair is kept only when each side's answer is wrong on the
other side (no mating first move of the other side, or of the other line, starts with those
tokens), so the logit difference contrasts a right with a wrong token. Payloads: `ChessSide`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Iterable, Mapping, Sequence

import chess
import numpy as np

from searchprobe.errors import DataError, InputError
from searchprobe.intervene.pairs import Pairs
from searchprobe.tasks.chess import tokens as tok
from searchprobe.tasks.chess.puzzles import MateSolver, solve_position

PAIR_KINDS = ("king", "target")
#: dataset columns a pair is built from
PAIR_COLUMNS = ("fen", "pv", "solutions", "mate_in")
#: legal king squares proved per row for a "king" pair (nearest first)
KING_TRIES = 24
P = tok.PROMPT_LENGTH


@dataclass(frozen=True)
class Line:
    """One mating line of a position: where it mates and the first moves that lead there."""

    square: int  #: mating square (to-square of the line's last move), token frame
    moves: tuple[str, ...]  #: mating first moves (UCI, the prover's order) whose line mates on `square`
    pvs: tuple[tuple[str, ...], ...]  #: the line of each of `moves` (2k-1 plies, UCI)


@dataclass(frozen=True, eq=False)
class ChessSide:
    """One side of N chess pairs (a pair payload; `take` selects pairs)."""

    fen: np.ndarray  #: (N,) the side's position
    pv: np.ndarray  #: (N,) tuple of UCI moves: the side's line; the pair's tokens spell its first move
    solutions: np.ndarray  #: (N,) tuple of every mating first move of the position (UCI)
    mate_in: np.ndarray  #: (N,) int k
    flipped: np.ndarray  #: (N,) bool: relative tokens mirror this board
    mating_square: np.ndarray  #: (N,) int: where `pv` mates, token frame (the side's goal class)
    lines: np.ndarray  #: (N,) tuple of `Line`: the position's mating lines ("target" pairs; () otherwise)
    line: np.ndarray  #: (N,) int: index of this side's line in `lines` (-1: none)
    relative: bool = False  #: the dataset's token mode

    def __len__(self) -> int:
        return len(self.fen)

    def take(self, index) -> "ChessSide":
        index = np.asarray(index, dtype=np.int64)
        return ChessSide(**{f.name: getattr(self, f.name)[index] for f in fields(self) if f.name != "relative"},
                         relative=self.relative)


def _objects(items: Sequence[Any]) -> np.ndarray:
    arr = np.empty(len(items), dtype=object)
    for i, x in enumerate(items):
        arr[i] = x
    return arr


# --- lines ---------------------------------------------------------------------------------------
def line_after(board: chess.Board, move: chess.Move | str, k: int, solver: MateSolver | None = None) -> list[chess.Move]:
    """The line of a mating first move of a mate-in-k position: `move`, the defender's longest
    defence, then the attacker's first mating move in the prover's order, ply by ply (what
    `MateSolver.principal_variation` plays after its own first move); 2k-1 plies."""
    solver = solver or MateSolver()
    move = chess.Move.from_uci(move) if isinstance(move, str) else move
    board = board.copy(stack=False)
    board.push(move)
    line = [move]
    if k == 1 or board.is_game_over():
        return line
    best_reply = solver.longest_defence(board, k)
    board.push(best_reply)
    return line + [best_reply] + solver.principal_variation(board, k - 1)


def mating_lines(board: chess.Board, k: int, solutions: Iterable[str], flip: bool = False,
                 solver: MateSolver | None = None) -> tuple[Line, ...]:
    """The mating first moves `solutions` of a mate-in-k position grouped by where their lines mate
    (`line_after`), in the order each mating square first appears; squares in the token frame."""
    solver = solver or MateSolver()
    groups: dict[int, list[tuple[str, tuple[str, ...]]]] = {}
    for uci in solutions:
        line = line_after(board, uci, k, solver)
        square = tok.frame_square(line[-1].to_square, flip)
        groups.setdefault(square, []).append((str(uci), tuple(m.uci() for m in line)))
    return tuple(Line(sq, tuple(u for u, _ in g), tuple(pv for _, pv in g)) for sq, g in groups.items())


# --- decisions -----------------------------------------------------------------------------------
def move_tokens(board: chess.Board, move: str, relative: bool) -> list[int]:
    """The three tokens (from, to, promotion) of a legal first move, in the token frame."""
    return tok.encode(board, [move], relative=relative).ids[P:P + 3]


def decision(board_c: chess.Board, move_c: str, right_c: Sequence[str], board_x: chess.Board, move_x: str,
             right_x: Sequence[str], relative: bool, strict: bool = True) -> tuple[int, list[int], list[int]] | None:
    """(k, clean move tokens, corrupted move tokens): k = the first token where the two first moves
    differ. `strict`: None unless each side's tokens through k start none of the other side's right
    moves (`right_c` / `right_x`), i.e. each answer is wrong on the other side."""
    tc, tx = move_tokens(board_c, move_c, relative), move_tokens(board_x, move_x, relative)
    k = next((i for i in range(3) if tc[i] != tx[i]), None)
    if k is None:
        return None
    if strict:
        if any(move_tokens(board_x, m, relative)[:k + 1] == tc[:k + 1] for m in right_x):
            return None
        if any(move_tokens(board_c, m, relative)[:k + 1] == tx[:k + 1] for m in right_c):
            return None
    return k, tc, tx


@dataclass
class _Spec:
    """One pair before stacking."""

    row: int
    fen_c: str
    fen_x: str
    k: int
    tc: list[int]
    tx: list[int]
    pv_c: tuple[str, ...]
    pv_x: tuple[str, ...]
    sols_c: tuple[str, ...]
    sols_x: tuple[str, ...]
    mate_in: int
    flip: bool
    square_c: int
    square_x: int
    lines: tuple = ()
    line_c: int = -1
    line_x: int = -1


def _king_spec(row: int, board: chess.Board, pv, solutions, k: int, relative: bool, unique: bool,
               rng: np.random.Generator) -> _Spec | None:
    them = not board.turn
    king = board.king(them)
    tie = rng.permutation(64)  # one draw per row, whatever happens next
    if king is None:
        return None
    flip = tok.needs_flip(board, relative)
    prompt_c = np.array(tok.encode(board, relative=relative).ids[:P])
    order = sorted((s for s in chess.SQUARES if board.piece_at(s) is None),
                   key=lambda s: (chess.square_distance(s, king), int(tie[s])))
    tried = 0
    for square in order:
        if tried >= KING_TRIES:
            break
        other = board.copy(stack=False)
        other.remove_piece_at(king)
        other.set_piece_at(square, chess.Piece(chess.KING, them))
        if not other.is_valid():
            continue
        tried += 1
        puzzle = solve_position(other, k, unique=unique, record_trace=False)
        if puzzle is None or set(puzzle.solutions) & set(solutions):
            continue
        prompt_x = np.array(tok.encode(other, relative=relative).ids[:P])
        want = sorted(tok.SQUARE_OFFSET + tok.frame_square(s, flip) for s in (king, square))
        if np.flatnonzero(prompt_c != prompt_x).tolist() != want:
            continue  # castling or en-passant tokens changed too: not a clean king move
        got = decision(board, pv[0], solutions, other, puzzle.pv[0], puzzle.solutions, relative)
        if got is None:
            continue
        end_c, end_x = chess.Move.from_uci(pv[-1]).to_square, chess.Move.from_uci(puzzle.pv[-1]).to_square
        return _Spec(row, board.fen(), other.fen(), got[0], got[1], got[2], tuple(pv), tuple(puzzle.pv),
                     tuple(solutions), tuple(puzzle.solutions), k, flip, tok.frame_square(end_c, flip),
                     tok.frame_square(end_x, flip))
    return None


def _line_spec(row: int, board: chess.Board, lines: tuple[Line, ...], old: int, move_c: str, solutions, k: int,
               relative: bool, strict: bool) -> _Spec | None:
    """The pair "line `old` (first move `move_c`) against the first other line" of one position."""
    flip = tok.needs_flip(board, relative)
    new = next(j for j in range(len(lines)) if j != old)
    got = None
    for move_x in lines[new].moves:
        got = decision(board, move_c, lines[old].moves, board, move_x, lines[new].moves, relative, strict=True)
        if got is not None:
            break
    if got is None:
        if strict:
            return None
        move_x = lines[new].moves[0]
        got = decision(board, move_c, lines[old].moves, board, move_x, lines[new].moves, relative, strict=False)
    pv_c = lines[old].pvs[lines[old].moves.index(move_c)]
    pv_x = lines[new].pvs[lines[new].moves.index(move_x)]
    return _Spec(row, board.fen(), board.fen(), got[0], got[1], got[2], pv_c, pv_x, tuple(solutions),
                 tuple(solutions), k, flip, lines[old].square, lines[new].square, lines, old, new)


def _target_spec(row: int, board: chess.Board, pv, solutions, k: int, relative: bool) -> _Spec | None:
    if len(solutions) < 2:
        return None
    lines = mating_lines(board, k, solutions, tok.needs_flip(board, relative))
    if len(lines) < 2:
        return None
    old = next((j for j, line in enumerate(lines) if pv[0] in line.moves), None)
    if old is None:
        return None
    return _line_spec(row, board, lines, old, pv[0], solutions, k, relative, strict=True)


def _build(kind: str, specs: list[_Spec], relative: bool, source_rows: np.ndarray, max_new: int) -> Pairs:
    pad = tok.TOKEN_ID["<pad>"]
    seqs_c, seqs_x, roles = [], [], []
    for s in specs:
        enc_c = tok.encode(chess.Board(s.fen_c), relative=relative)
        enc_x = tok.encode(chess.Board(s.fen_x), relative=relative)
        seqs_c.append(enc_c.ids[:P] + s.tc[:s.k])
        seqs_x.append(enc_x.ids[:P] + s.tx[:s.k])
        roles.append(enc_c.roles[:P] + [tok.ROLE_CODE[f"ply:1:{part}"] for part in ("from", "to", "promo")][:s.k])
    lengths = np.array([len(x) for x in seqs_c], dtype=np.int64)
    T = int(lengths.max())

    def stack(rows, dtype, fill):
        arr = np.full((len(rows), T), fill, dtype=dtype)
        for i, r in enumerate(rows):
            arr[i, :len(r)] = r
        return arr

    def side(clean: bool) -> ChessSide:
        pick = (lambda a, b: a) if clean else (lambda a, b: b)
        return ChessSide(fen=_objects([pick(s.fen_c, s.fen_x) for s in specs]),
                         pv=_objects([pick(s.pv_c, s.pv_x) for s in specs]),
                         solutions=_objects([pick(s.sols_c, s.sols_x) for s in specs]),
                         mate_in=np.array([s.mate_in for s in specs], dtype=np.int64),
                         flipped=np.array([s.flip for s in specs], dtype=bool),
                         mating_square=np.array([pick(s.square_c, s.square_x) for s in specs], dtype=np.int64),
                         lines=_objects([s.lines for s in specs]),
                         line=np.array([pick(s.line_c, s.line_x) for s in specs], dtype=np.int64), relative=relative)

    return Pairs(kind=kind, clean_tokens=stack(seqs_c, np.int64, pad), corrupt_tokens=stack(seqs_x, np.int64, pad),
                 roles=stack(roles, np.int16, 0), lengths=lengths,
                 clean_answer=np.array([s.tc[s.k] for s in specs], dtype=np.int64),
                 corrupt_answer=np.array([s.tx[s.k] for s in specs], dtype=np.int64),
                 decision_step=np.array([s.k for s in specs], dtype=np.int64), prompt_len=np.full(len(specs), P, dtype=np.int64),
                 source_rows=np.asarray(source_rows, dtype=np.int64), pad_id=pad, max_new=max_new,
                 clean=side(True), corrupt=side(False))


def rollout_budget(mate_in: Iterable[int]) -> int:
    """Tokens a rollout needs for the longest line: 3 per ply of 2k-1 plies, then ``<eos>``."""
    return 3 * (2 * max(int(k) for k in mate_in) - 1) + 1


def _scan(rows: Mapping[str, Any], row_ids: Sequence[int], kind: str, need: int | None, rng: np.random.Generator,
          relative: bool, unique: bool) -> list[_Spec]:
    specs = []
    for b, row in enumerate(row_ids):
        if need is not None and len(specs) >= need:
            break
        board = chess.Board(str(rows["fen"][b]))
        pv = [str(m) for m in rows["pv"][b]]
        solutions = [str(m) for m in rows["solutions"][b]]
        k = int(rows["mate_in"][b])
        if kind == "king":
            spec = _king_spec(int(row), board, pv, solutions, k, relative, unique, rng)
        else:
            spec = _target_spec(int(row), board, pv, solutions, k, relative)
        if spec is not None:
            specs.append(spec)
    return specs


def _no_pairs(kind: str, scanned: int, where: str) -> DataError:
    why = {"king": "no king square keeps a mate-in-k puzzle whose first moves differ",
           "target": "no position has two mating first moves that mate on different squares (a dataset generated "
                     "with unique_first_move = true has none; generate with unique_first_move = false)"}[kind]
    return DataError(f"none of {scanned} chess rows{where} gave a {kind} pair: {why}")


def make_chess_pairs(rows: Mapping[str, Any], *, kind: str = "king", n: int | None = None, seed: int = 0,
                     relative: bool = False, unique: bool = False, row_ids: Sequence[int] | None = None) -> Pairs:
    """Counterfactual pairs from chess rows (a dict of columns with `PAIR_COLUMNS`), at most one per row.

    `relative`: the dataset's token mode; `unique`: its puzzles have a unique first move (so must the
    corrupted side of a "king" pair). `seed` drives every random choice (the king squares' order).
    """
    if kind not in PAIR_KINDS:
        raise InputError(f"unknown pair kind {kind!r} for task 'chess'; allowed: {', '.join(PAIR_KINDS)}")
    ids = np.arange(len(rows["fen"])) if row_ids is None else np.asarray(row_ids)
    specs = _scan(rows, ids, kind, n, np.random.default_rng(seed), relative, unique)
    if not specs:
        raise _no_pairs(kind, len(ids), "")
    return _build(kind, specs, relative, np.array([s.row for s in specs]), rollout_budget(rows["mate_in"]))


def chess_pairs_from_dataset(stored, *, split: str = "test", kind: str = "king", n: int = 200, seed: int = 0) -> Pairs:
    """`make_chess_pairs` on the first rows of a stored chess dataset split: rows are read in chunks
    of ``2n + 16`` until `n` pairs are found, at most ``16n + 64`` rows (positions with two mating
    lines, or a king square that keeps a puzzle, can be rare)."""
    if stored.config.get("task") != "chess":
        raise InputError(f"chess pairs need a chess dataset; {stored.path} holds task {stored.config.get('task')!r}")
    if kind not in PAIR_KINDS:
        raise InputError(f"unknown pair kind {kind!r} for task 'chess'; allowed: {', '.join(PAIR_KINDS)}")
    if split not in stored.splits:
        raise InputError(f"dataset {stored.path} has no split {split!r}; it has {', '.join(stored.splits)}")
    cfg = stored.config.get("config", {})
    relative = bool(cfg.get("tokens", {}).get("relative", False))
    unique = bool(cfg.get("puzzles", {}).get("unique_first_move", False))
    ds = stored.splits[split]
    limit, chunk = min(len(ds), 16 * n + 64), 2 * n + 16
    rng = np.random.default_rng(seed)
    specs: list[_Spec] = []
    mate_in: list[int] = []
    start = 0
    while start < limit and len(specs) < n:
        stop = min(limit, start + chunk)
        rows = ds.select(range(start, stop)).select_columns(list(PAIR_COLUMNS))[:]
        specs += _scan(rows, np.arange(start, stop), kind, n - len(specs), rng, relative, unique)
        mate_in += [int(k) for k in rows["mate_in"]]
        start = stop
    if not specs:
        raise _no_pairs(kind, start, f" of split {split!r} of {stored.path}")
    return _build(kind, specs, relative, np.array([s.row for s in specs]), rollout_budget(mate_in))


# --- retargeting -----------------------------------------------------------------------------------
def rollout_moves(prompt: Sequence[int], generated: Sequence[int]) -> tuple[str | None, list[str] | None]:
    """(first move, every move) in UCI that a rollout after a chess prompt spells (up to ``<eos>``);
    None where its tokens spell no move (the first three tokens, or the whole rollout)."""
    ids = [int(t) for t in generated]
    eos = tok.TOKEN_ID["<eos>"]
    body = ids[:ids.index(eos)] if eos in ids else ids

    def moves(part):
        try:
            return tok.decode([int(t) for t in prompt] + part)[1]
        except (DataError, ValueError, IndexError):
            return None

    first = moves(body[:3]) if len(body) >= 3 else None
    return (first[0] if first else None), moves(body)


def orient_target_pairs(pairs: Pairs, generated: Sequence[np.ndarray]) -> Pairs:
    """"target" pairs re-cut by the line the unedited model plays (its rollouts `generated`): where
    its first move is in one of the position's lines, that line is the clean (old) side and the
    first other line the corrupted (new) side; elsewhere the pair keeps its lines. The decision and
    answers are recomputed (the strict answer rule where some move of the new line allows it)."""
    clean, relative = pairs.clean, pairs.clean.relative
    prompts = pairs.prompts("clean")
    specs = []
    for i in range(len(pairs)):
        board = chess.Board(str(clean.fen[i]))
        lines = clean.lines[i]
        first, _ = rollout_moves(prompts[i], generated[i])
        old = next((j for j, line in enumerate(lines) if first in line.moves), int(clean.line[i]))
        move_c = first if first in lines[old].moves else (clean.pv[i][0] if clean.pv[i][0] in lines[old].moves
                                                          else lines[old].moves[0])
        specs.append(_line_spec(int(pairs.source_rows[i]), board, lines, old, move_c, clean.solutions[i],
                                int(clean.mate_in[i]), relative, strict=False))
    return _build(pairs.kind, specs, relative, pairs.source_rows, pairs.max_new)


def target_outcomes(pairs: Pairs, generated: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Per pair: ``first_old`` / ``first_new`` = the rollout's first move is one of the old / new
    line's mating first moves (proved by the prover: the dataset's solutions); ``old`` / ``new`` =
    that, and the whole rollout is legal and ends in checkmate (python-chess); ``first_split`` =
    the two lines share no first move (always, lines partition the mating first moves)."""
    from searchprobe.tasks.chess.task import score_line

    n = len(pairs)
    out = {key: np.zeros(n, dtype=bool) for key in ("new", "old", "first_new", "first_old", "first_split")}
    prompts = pairs.prompts("clean")
    for i in range(n):
        lines = pairs.clean.lines[i]
        old, new = lines[int(pairs.clean.line[i])], lines[int(pairs.corrupt.line[i])]
        first, moves = rollout_moves(prompts[i], generated[i])
        mates = moves is not None and score_line(str(pairs.clean.fen[i]), moves, list(pairs.clean.pv[i]),
                                                 list(pairs.clean.solutions[i]))["mates_delivered"] == 1.0
        out["first_old"][i], out["first_new"][i] = first in old.moves, first in new.moves
        out["old"][i], out["new"][i] = out["first_old"][i] and mates, out["first_new"][i] and mates
        out["first_split"][i] = not set(old.moves) & set(new.moves)
    return out


def control_squares(pairs: Pairs, rng: np.random.Generator) -> np.ndarray:
    """Per pair a square (token frame) for the ``other_position`` control: uniformly one whose token
    in the clean prompt equals the old mating square's (mostly an empty square, like most mating
    squares), neither the old nor the new mating square; any other square where none is. One
    ``rng.integers`` draw per pair, in pair order."""
    out = []
    for i in range(len(pairs)):
        old, new = int(pairs.clean.mating_square[i]), int(pairs.corrupt.mating_square[i])
        board = pairs.clean_tokens[i, tok.SQUARE_OFFSET:tok.SQUARE_OFFSET + 64]
        options = [s for s in range(64) if s not in (old, new) and board[s] == board[old]]
        options = options or [s for s in range(64) if s not in (old, new)]
        out.append(options[int(rng.integers(len(options)))])
    return np.array(out, dtype=np.int64)
