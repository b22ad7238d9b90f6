"""Real chess data: the Lichess puzzle CSV and PGN games, read with python-chess.

Malformed input is **skipped and counted**, never a traceback: every skipped CSV row or PGN game
is listed in the `ImportSummary` with its line number and reason. A file with no data at all
(empty, or only a header) raises DataError, as does a file where every row is malformed.

Lichess puzzle rows (https://database.lichess.org/#puzzles) are
``PuzzleId,FEN,Moves,Rating,RatingDeviation,Popularity,NbPlays,Themes,GameUrl,OpeningTags``;
the first move of ``Moves`` is the opponent's move that sets the puzzle up: it is applied to
``FEN`` to get the puzzle position, and the remaining moves are the solution.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import chess
import chess.pgn

from searchprobe.errors import DataError
from searchprobe.tasks.chess.config import MAX_MATE_IN
from searchprobe.tasks.chess.puzzles import MateSolver, Puzzle, material_of, record_search_tree

LICHESS_COLUMNS = ["PuzzleId", "FEN", "Moves", "Rating", "RatingDeviation", "Popularity", "NbPlays",
                   "Themes", "GameUrl", "OpeningTags"]
_MATE_THEME = re.compile(r"^mateIn(\d+)$")


@dataclass
class ImportSummary:
    """What an import read: counts, and every skipped item as (line number, reason)."""

    path: str
    kind: str  #: "rows" (CSV) or "games" (PGN)
    seen: int = 0
    imported: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def __str__(self) -> str:
        head = f"{self.path}: imported {self.imported} of {self.seen} {self.kind}"
        if not self.skipped:
            return head
        shown = "; ".join(f"line {line}: {why}" for line, why in self.skipped[:5])
        more = f"; … {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
        return f"{head}, skipped {len(self.skipped)} malformed ({shown}{more})"


@dataclass(frozen=True)
class LichessPuzzle:
    """One Lichess puzzle row, with the set-up move already played."""

    puzzle_id: str
    fen: str  #: the puzzle position (after the set-up move); the solver is to move
    moves: tuple[str, ...]  #: the solution in UCI, from `fen`
    source_fen: str  #: the FEN as written in the file (before the set-up move)
    setup_move: str  #: the opponent's set-up move (UCI)
    rating: int
    rating_deviation: int
    popularity: int
    nb_plays: int
    themes: tuple[str, ...]
    game_url: str
    opening_tags: tuple[str, ...]
    line: int  #: line number in the file

    @property
    def mate_in(self) -> int | None:
        """k from a ``mateInK`` theme, else None."""
        for theme in self.themes:
            m = _MATE_THEME.match(theme)
            if m:
                return int(m.group(1))
        return None


def _read_text(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"import file {path} does not exist")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"import file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_lichess_csv(path: str | Path, *, limit: int | None = None) -> tuple[list[LichessPuzzle], ImportSummary]:
    """Parse a Lichess puzzle CSV (header optional); malformed rows are skipped and listed."""
    text = _read_text(path)
    summary = ImportSummary(str(path), "rows")
    puzzles: list[LichessPuzzle] = []
    reader = csv.reader(io.StringIO(text))
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if row[0] == "PuzzleId":
            continue
        summary.seen += 1
        try:
            puzzles.append(_parse_lichess_row(row, line))
            summary.imported += 1
        except ValueError as exc:
            summary.skipped.append((line, str(exc)))
        if limit is not None and summary.imported >= limit:
            break
    if summary.seen == 0:
        raise DataError(f"Lichess puzzle file {path} has no puzzle rows (expected columns {','.join(LICHESS_COLUMNS)})")
    if summary.imported == 0:
        raise DataError(f"Lichess puzzle file {path}: all {summary.seen} rows are malformed; first: line {summary.skipped[0][0]}: {summary.skipped[0][1]}")
    return puzzles, summary


def _parse_lichess_row(row: list[str], line: int) -> LichessPuzzle:
    if len(row) not in (9, 10):
        raise ValueError(f"{len(row)} columns, expected 10 ({','.join(LICHESS_COLUMNS)})")
    row = row + [""] * (10 - len(row))
    pid, fen, moves_text, rating, rd, popularity, plays, themes, url, openings = (c.strip() for c in row)
    if not pid:
        raise ValueError("empty PuzzleId")
    try:
        board = chess.Board(fen)
    except ValueError as exc:
        raise ValueError(f"bad FEN {fen!r} ({exc})") from None
    if not board.is_valid():
        raise ValueError(f"illegal position {fen!r} ({board.status()!r})")
    ucis = moves_text.split()
    if len(ucis) < 2:
        raise ValueError(f"Moves {moves_text!r} needs the set-up move and at least one solution move")
    for ply, uci in enumerate(ucis):
        try:
            move = chess.Move.from_uci(uci)
        except ValueError:
            raise ValueError(f"move {ply + 1} {uci!r} is not UCI") from None
        if not board.is_legal(move):
            raise ValueError(f"move {ply + 1} {uci!r} is illegal in {board.fen()!r}")
        board.push(move)
        if ply == 0:
            puzzle_fen = board.fen()
    numbers = []
    for name, value in (("Rating", rating), ("RatingDeviation", rd), ("Popularity", popularity), ("NbPlays", plays)):
        try:
            numbers.append(int(value))
        except ValueError:
            raise ValueError(f"{name} {value!r} is not an integer") from None
    return LichessPuzzle(
        puzzle_id=pid, fen=puzzle_fen, moves=tuple(ucis[1:]), source_fen=fen, setup_move=ucis[0],
        rating=numbers[0], rating_deviation=numbers[1], popularity=numbers[2], nb_plays=numbers[3],
        themes=tuple(themes.split()), game_url=url, opening_tags=tuple(openings.split()), line=line,
    )


def lichess_mate_puzzles(puzzles: Iterable[LichessPuzzle], *, max_mate_in: int = MAX_MATE_IN,
                         verify: bool = True, record_trace: bool = True,
                         limit: int | None = None) -> tuple[list[Puzzle], list[tuple[int, str]]]:
    """Mate-in-k Lichess puzzles (k <= max_mate_in) as `Puzzle`s, each checked by our mate search.

    Returns (puzzles, rejected) where rejected lists (line, reason) for mate-tagged puzzles whose
    line does not end in mate or whose position has a shorter mate (with `verify`).
    """
    out, rejected = [], []
    for lp in puzzles:
        if limit is not None and len(out) >= limit:
            break
        k = lp.mate_in
        if k is None or k > max_mate_in:
            continue
        if len(lp.moves) != 2 * k - 1:
            rejected.append((lp.line, f"{lp.puzzle_id}: mateIn{k} but {len(lp.moves)} solution plies"))
            continue
        board = chess.Board(lp.fen)
        end = board.copy()
        for m in lp.moves:
            end.push_uci(m)
        if not end.is_checkmate():
            rejected.append((lp.line, f"{lp.puzzle_id}: the solution does not end in checkmate"))
            continue
        solutions: tuple[str, ...] = (lp.moves[0],)
        if verify:
            solver = MateSolver()
            shortest = solver.shortest_mate(board, k)
            if shortest != k:
                rejected.append((lp.line, f"{lp.puzzle_id}: mate in {shortest} found, tagged mateIn{k}"))
                continue
            solutions = tuple(m.uci() for m in solver.mating_moves(board, k))
        trace, value = record_search_tree(board, k) if record_trace else (None, math.nan)
        out.append(Puzzle(fen=lp.fen, pv=lp.moves, mate_in=k, solutions=solutions, material=material_of(board),
                          source=f"lichess:{lp.puzzle_id}", trace=trace, search_value=value))
    return out, rejected


@dataclass(frozen=True)
class PgnPosition:
    """A position from a PGN game: before the move `next_move` (None after the last move)."""

    fen: str
    next_move: str | None  #: the move played from here, UCI
    game: int  #: 0-based game index in the file
    ply: int  #: plies played from the game's start position
    line: int  #: line where the game starts in the file
    white: str = "?"
    black: str = "?"
    result: str = "*"


def read_pgn_positions(path: str | Path, *, every: int = 1, limit_games: int | None = None,
                       include_final: bool = True) -> tuple[list[PgnPosition], ImportSummary]:
    """Every `every`-th position of the mainline of each game; games python-chess cannot fully
    read (illegal / unparseable moves, bad FEN header) are skipped and listed with their line."""
    if every < 1:
        raise DataError(f"every={every} must be >= 1")
    text = _read_text(path)
    summary = ImportSummary(str(path), "games")
    handle = io.StringIO(text)
    positions: list[PgnPosition] = []
    game_index = 0
    while limit_games is None or summary.seen < limit_games:
        offset = handle.tell()
        game = _read_game_quietly(handle)
        if game is None:
            break
        start = len(text) - len(text[offset:].lstrip())
        line = text.count("\n", 0, start) + 1
        summary.seen += 1
        has_moves = game.next() is not None
        if game.errors or (not has_moves and not game.headers.get("FEN")):
            why = str(game.errors[0]) if game.errors else "no moves"
            summary.skipped.append((line, why.splitlines()[0][:200]))
            game_index += 1
            continue
        board = game.board()
        node = game
        ply = 0
        headers = dict(white=game.headers.get("White", "?"), black=game.headers.get("Black", "?"),
                       result=game.headers.get("Result", "*"))
        while True:
            nxt = node.next()
            if nxt is None:
                if include_final and ply % every == 0:
                    positions.append(PgnPosition(board.fen(), None, game_index, ply, line, **headers))
                break
            if ply % every == 0:
                positions.append(PgnPosition(board.fen(), nxt.move.uci(), game_index, ply, line, **headers))
            board.push(nxt.move)
            node = nxt
            ply += 1
        summary.imported += 1
        game_index += 1
    if summary.seen == 0:
        raise DataError(f"PGN file {path} has no games")
    if summary.imported == 0:
        raise DataError(f"PGN file {path}: all {summary.seen} games are malformed; first: line {summary.skipped[0][0]}: {summary.skipped[0][1]}")
    return positions, summary


def _read_game_quietly(handle: io.StringIO) -> chess.pgn.Game | None:
    """`chess.pgn.read_game` without its error log lines (errors are kept in ``game.errors``)."""
    logger = logging.getLogger("chess.pgn")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        return chess.pgn.read_game(handle)
    finally:
        logger.setLevel(previous)


def pgn_mate_puzzles(positions: Iterable[PgnPosition], mate_in: int, *, record_trace: bool = True,
                     max_pieces: int = 12, limit: int | None = None) -> list[Puzzle]:
    """The PGN positions (with at most `max_pieces` pieces, to keep proofs fast) whose side to move
    mates in exactly `mate_in`."""
    from searchprobe.tasks.chess.puzzles import solve_position

    out = []
    for pos in positions:
        if limit is not None and len(out) >= limit:
            break
        board = chess.Board(pos.fen)
        if len(board.piece_map()) > max_pieces or board.is_game_over():
            continue
        puzzle = solve_position(board, mate_in, record_trace=record_trace, source=f"pgn:{pos.game}:{pos.ply}")
        if puzzle is not None:
            out.append(puzzle)
    return out
