"""Lichess puzzle CSV and PGN import on fixtures written here (real positions, checked with python-chess)."""

from __future__ import annotations

import chess
import chess.pgn
import pytest

from searchprobe.errors import DataError
from searchprobe.tasks.chess.game import MATE
from searchprobe.tasks.chess.imports import (
    lichess_mate_puzzles, pgn_mate_puzzles, read_lichess_csv, read_pgn_positions,
)

HEADER = "PuzzleId,FEN,Moves,Rating,RatingDeviation,Popularity,NbPlays,Themes,GameUrl,OpeningTags"
# Back-rank mate in 1: Black's set-up move Kg8-h8, then Ra1-a8#.
MATE1 = "m1a,6k1/5ppp/8/8/8/8/5PPP/R5K1 b - - 0 1,g8h8 a1a8,900,80,95,120,backRankMate mate mateIn1 oneMove,https://lichess.org/x#1,"
# Mate in 2 with queen: set-up Ka8-a7, then 1. Kc6 Ka8 2. Qb7#.
MATE2 = "m2a,k7/8/8/2K5/1Q6/8/8/8 b - - 0 1,a8a7 c5c6 a7a8 b4b7,1200,75,90,300,mate mateIn2 queenEndgame,https://lichess.org/y#2,"
# A non-mate puzzle (winning the queen is not a mate theme): skipped by lichess_mate_puzzles, kept by the reader.
FORK = "f1,4k3/8/8/3q4/8/8/8/4K1N1 b - - 0 1,e8e7 g1f3,1000,80,90,50,fork short,https://lichess.org/z#3,Italian_Game"
# A mis-tagged row: tagged mateIn1 but the solution does not mate.
WRONG = "w1,6k1/5ppp/8/8/8/8/5PPP/R5K1 b - - 0 1,g8h8 a1a2,900,80,95,120,mate mateIn1,https://lichess.org/w#1,"


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_lichess_csv_applies_the_setup_move_and_skips_malformed_rows(tmp_path):
    rows = [HEADER, MATE1, "bad1,not a fen,e2e4 e7e5,1,1,1,1,mate,u,",  # line 3: bad FEN
            MATE2, "bad2,6k1/5ppp/8/8/8/8/5PPP/R5K1 b - - 0 1,g8h8 a1a9,1,1,1,1,mate,u,",  # line 5: not UCI
            "bad3,6k1/5ppp/8/8/8/8/5PPP/R5K1 b - - 0 1,g8g6 a1a8,1,1,1,1,mate,u,",  # line 6: illegal set-up
            "bad4,only,three", FORK, "bad5,6k1/5ppp/8/8/8/8/5PPP/R5K1 b - - 0 1,g8h8 a1a8,high,1,1,1,mate,u,", ""]
    path = write(tmp_path, "puzzles.csv", "\n".join(rows))
    puzzles, summary = read_lichess_csv(path)
    assert [p.puzzle_id for p in puzzles] == ["m1a", "m2a", "f1"]
    assert summary.seen == 8 and summary.imported == 3
    assert [line for line, _ in summary.skipped] == [3, 5, 6, 7, 9]
    reasons = dict(summary.skipped)
    assert "bad FEN" in reasons[3] and "not UCI" in reasons[5] and "illegal" in reasons[6]
    assert "columns" in reasons[7] and "Rating" in reasons[9]
    assert "skipped 5 malformed" in str(summary) and "line 3" in str(summary)
    m1 = puzzles[0]
    expected = chess.Board("6k1/5ppp/8/8/8/8/5PPP/R5K1 b - - 0 1")
    expected.push_uci("g8h8")
    assert m1.fen == expected.fen() and m1.moves == ("a1a8",) and m1.setup_move == "g8h8"
    assert m1.mate_in == 1 and m1.rating == 900 and "backRankMate" in m1.themes and m1.line == 2
    assert puzzles[2].opening_tags == ("Italian_Game",) and puzzles[2].mate_in is None


def test_lichess_without_header_and_mate_conversion(tmp_path):
    path = write(tmp_path, "p.csv", "\n".join([MATE1, MATE2, FORK, WRONG]) + "\n")
    puzzles, summary = read_lichess_csv(path)
    assert summary.imported == 4 and not summary.skipped
    mates, rejected = lichess_mate_puzzles(puzzles)
    assert [p.source for p in mates] == ["lichess:m1a", "lichess:m2a"]
    assert mates[0].search_value == MATE - 1 and mates[1].search_value == MATE - 3
    assert mates[1].pv == ("c5c6", "a7a8", "b4b7") and mates[1].final_board().is_checkmate()
    assert mates[1].solutions == ("c5c6",) and mates[1].material == "KQvK"
    assert rejected == [(4, "w1: the solution does not end in checkmate")]


def test_lichess_limit(tmp_path):
    path = write(tmp_path, "p.csv", "\n".join([HEADER, MATE1, MATE2, FORK]))
    puzzles, summary = read_lichess_csv(path, limit=2)
    assert len(puzzles) == 2 and summary.imported == 2


@pytest.mark.parametrize("text", ["", "\n\n", HEADER + "\n"])
def test_empty_csv_is_a_data_error(tmp_path, text):
    with pytest.raises(DataError, match="no puzzle rows"):
        read_lichess_csv(write(tmp_path, "e.csv", text))


def test_all_malformed_csv_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="all 2 rows are malformed; first: line 1"):
        read_lichess_csv(write(tmp_path, "bad.csv", "a,b\nc,d\n"))


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_lichess_csv(tmp_path / "nope.csv")


SCHOLAR = """[Event "Scholar"]
[White "A"]
[Black "B"]
[Result "1-0"]

1. e4 e5 2. Bc4 Nc6 3. Qh5 Nf6 4. Qxf7# 1-0
"""
ILLEGAL = """[Event "Broken"]
[White "C"]
[Black "D"]
[Result "*"]

1. e4 e5 2. Ke3 Nc6 *
"""
FROM_FEN = """[Event "Endgame"]
[FEN "8/k7/8/2K5/1Q6/8/8/8 w - - 0 1"]
[SetUp "1"]
[Result "1-0"]

1. Kc6 Ka8 2. Qb7# 1-0
"""


def test_pgn_positions_and_skipped_games(tmp_path):
    path = write(tmp_path, "games.pgn", SCHOLAR + "\n" + ILLEGAL + "\n" + FROM_FEN)
    positions, summary = read_pgn_positions(path)
    assert summary.seen == 3 and summary.imported == 2
    assert len(summary.skipped) == 1 and summary.skipped[0][0] == 8  # the broken game starts on line 8
    scholar = [p for p in positions if p.game == 0]
    assert len(scholar) == 8 and scholar[0].fen == chess.STARTING_FEN and scholar[-1].next_move is None
    # Replaying the moves with python-chess gives the stored positions.
    board = chess.Board()
    for pos in scholar[:-1]:
        assert pos.fen == board.fen()
        board.push_uci(pos.next_move)
    assert board.is_checkmate() and scholar[-1].fen == board.fen()
    endgame = [p for p in positions if p.game == 2]
    assert endgame[0].fen == "8/k7/8/2K5/1Q6/8/8/8 w - - 0 1" and endgame[0].line == 15
    every2, _ = read_pgn_positions(path, every=2, include_final=False)
    assert [p.ply for p in every2 if p.game == 0] == [0, 2, 4, 6]


def test_pgn_mate_puzzles_finds_the_mates(tmp_path):
    path = write(tmp_path, "games.pgn", SCHOLAR + "\n" + FROM_FEN)
    positions, _ = read_pgn_positions(path)
    mate1 = pgn_mate_puzzles(positions, 1, max_pieces=32)
    assert {(p.source, p.pv) for p in mate1} == {("pgn:0:6", ("h5f7",)), ("pgn:1:2", ("b4b7",))}
    mate2 = pgn_mate_puzzles(positions, 2)
    assert [(p.source, p.pv[0]) for p in mate2] == [("pgn:1:0", "c5c6")]


def test_empty_or_garbage_pgn_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no games"):
        read_pgn_positions(write(tmp_path, "e.pgn", ""))
    with pytest.raises(DataError, match="malformed"):
        read_pgn_positions(write(tmp_path, "g.pgn", ILLEGAL))
