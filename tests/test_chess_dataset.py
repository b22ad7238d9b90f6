"""Chess datasets through the shared store, the task files, the CLI and the pictures."""

from __future__ import annotations

import io
from pathlib import Path

import chess
import numpy as np
import pytest

from searchprobe.cli import main
from searchprobe.errors import ConfigError, InputError
from searchprobe.tasks import store
from searchprobe.tasks.chess import tokens as tok
from searchprobe.tasks.chess.dataset import generate_from_toml, load_task, position_key, row_trace
from searchprobe.tasks.chess.game import MATE
from searchprobe.tasks.chess.pictures import board_png, board_svg, heat_colors, save_board
from searchprobe.tasks.chess.puzzles import canonical_fen, record_search_tree

REPO = Path(__file__).resolve().parents[1]
TOML = """task = "chess"
name = "chess-unit"
n = 16
seed = 9
[puzzles]
mate_in = 1
material = ["KQvK", "KRvK"]
unique_first_move = false
attacker = "random"
[tokens]
relative = {relative}
[splits]
train = 0.5
validation = 0.25
test = 0.25
"""


def write_toml(tmp_path, relative="true", name="t.toml"):
    path = tmp_path / name
    path.write_text(TOML.format(relative=relative))
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chess")
    path = generate_from_toml(write_toml(tmp), out=tmp / "ds")
    return store.read_dataset(path)


def test_rows_are_consistent_with_python_chess(dataset):
    assert dataset.config["task"] == "chess" and dataset.vocab == tok.VOCAB
    total = sum(len(s) for s in dataset.splits.values())
    assert total + dataset.config["duplicates_dropped"] == 16
    for split in dataset.splits.values():
        for row in split:
            board = chess.Board(row["fen"])
            assert row["position"] == canonical_fen(row["fen"])
            assert f"{position_key(row['fen']):016x}" == row["id"]
            end = board.copy()
            for uci in row["pv"]:
                end.push_uci(uci)
            assert end.is_checkmate() and row["mate_in"] == 1
            fen, moves = tok.decode(row["tokens"])
            assert canonical_fen(fen) == row["position"] and moves == row["pv"]
            assert row["flipped"] == (board.turn == chess.BLACK)
            assert row["tokens"][row["solution_start"] - 1] == tok.TOKEN_ID["<sep>"]
            assert [tok.role_name(r) for r in row["roles"][row["solution_start"]:row["solution_start"] + 2]] == ["ply:1:from", "ply:1:to"]
            # labels are in the token frame: the opponent king's square token is "theirs"
            assert tok.VOCAB[row["tokens"][tok.SQUARE_OFFSET + row["opp_king"]]] == "tK"
            trace = row_trace(row)
            again, value = record_search_tree(board, 1)
            assert value == row["search_value"] == MATE - 1
            assert np.array_equal(trace.kind, again.kind) and np.array_equal(trace["move"], again["move"])
            assert row["search_nodes"] == int((again.kind == 3).sum())


def test_splits_share_no_position(dataset):
    seen = {}
    for name, split in dataset.splits.items():
        for pos in split["position"]:
            assert seen.setdefault(pos, name) == name
    assert len(seen) == sum(len(s) for s in dataset.splits.values())


def test_shards_merge_to_the_single_run(tmp_path, dataset):
    toml = write_toml(tmp_path)
    parts = [generate_from_toml(toml, out=tmp_path / f"s{i}", shard=f"{i}/3") for i in range(3)]
    merged = store.read_dataset(store.merge(parts, tmp_path / "merged"))
    assert merged.fingerprint == dataset.fingerprint
    for name in dataset.splits:
        assert sorted(merged.splits[name]["id"]) == sorted(dataset.splits[name]["id"])
        assert sorted(merged.splits[name]["fen"]) == sorted(dataset.splits[name]["fen"])


def test_absolute_tokens_and_overrides(tmp_path):
    path = generate_from_toml(write_toml(tmp_path, relative="false"), out=tmp_path / "abs", n=6, seed=1)
    ds = store.read_dataset(path)
    rows = [r for s in ds.splits.values() for r in s]
    assert ds.config["config"]["n"] == 6 and ds.config["config"]["seed"] == 1
    for row in rows:
        board = chess.Board(row["fen"])
        assert not row["flipped"]
        assert tok.VOCAB[row["tokens"][tok.SQUARE_OFFSET + row["opp_king"]]] == ("bK" if board.turn else "wK")


def test_bad_task_files(tmp_path):
    bad_key = tmp_path / "bad.toml"
    bad_key.write_text(TOML.format(relative="true").replace("mate_in = 1", "mate_in = 1\ndepth = 3"))
    with pytest.raises(ConfigError, match="unknown key 'depth'"):
        load_task(bad_key)
    bad_k = tmp_path / "k.toml"
    bad_k.write_text(TOML.format(relative="true").replace("mate_in = 1", "mate_in = 5"))
    with pytest.raises(ConfigError, match=r"mate_in=5 is out of range; allowed: 1\.\.3"):
        load_task(bad_k)
    bad_m = tmp_path / "m.toml"
    bad_m.write_text(TOML.format(relative="true").replace('"KRvK"', '"KBvK"'))
    with pytest.raises(ConfigError, match="cannot mate"):
        load_task(bad_m)
    with pytest.raises(InputError, match="n=0"):
        generate_from_toml(write_toml(tmp_path), out=tmp_path / "x", n=0)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", ["chess-mate1-kqk", "chess-mate2-mixed", "chess-mate3-rooks"])
def test_task_catalogue_files_load(name):
    cfg = load_task(REPO / "tasks" / f"{name}.toml")
    assert cfg.name == name and cfg.puzzles.mate_in == int(name[10])


def test_cli_generate(tmp_path, capsys):
    toml = write_toml(tmp_path)
    out = tmp_path / "cli"
    assert main(["generate", str(toml), "--out", str(out), "--n", "4", "--quiet", "--workers", "1"]) == 0
    assert store.read_dataset(out).config["config"]["n"] == 4
    assert main(["generate", str(toml), "--out", str(out), "--n", "4", "--quiet"]) == 2  # exists, no --overwrite
    assert "exists" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text(TOML.format(relative="true").replace('"KRvK"', '"KKvK"'))
    assert main(["generate", str(bad), "--out", str(tmp_path / "never"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "2 kings" in err and err.count("\n") == 1
    assert not (tmp_path / "never").exists()


# --- pictures ------------------------------------------------------------------------------------
def test_svg_has_pv_arrows_and_heat_fill():
    fen, pv = "8/k7/8/2K5/1Q6/8/8/8 w - - 0 1", ["c5c6", "a7a8", "b4b7"]
    heat = np.full(64, np.nan)
    heat[chess.A8], heat[chess.B7] = 0.0, 1.0
    svg = board_svg(fen, pv, heat, cmap="viridis")
    import re

    assert len(re.findall(r'<polygon [^>]*class="arrow"', svg)) == 3  # one head per PV ply
    assert svg.count('fill="#15781B" class="arrow"') == 2  # the attacker's two moves
    colors = heat_colors(heat, cmap="viridis")
    assert set(colors) == {chess.A8, chess.B7}
    import matplotlib
    r, g, b, _ = matplotlib.colormaps["viridis"](1.0)
    assert colors[chess.B7].startswith("#{:02x}{:02x}{:02x}".format(round(r * 255), round(g * 255), round(b * 255)))
    assert colors[chess.B7][:7] in svg
    with pytest.raises(InputError, match="63 values"):
        heat_colors(np.zeros(63))


def test_png_is_drawn_with_matplotlib(tmp_path):
    import matplotlib.image

    data = board_png("8/k7/8/2K5/1Q6/8/8/8 w - - 0 1", ["c5c6"], np.arange(64), dpi=50)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(io.BytesIO(data))
    assert img.shape[:2] == (200, 200)
    path = save_board(tmp_path / "b.png", "8/k7/8/2K5/1Q6/8/8/8 w - - 0 1", ["c5c6"])
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert "<svg" in save_board(tmp_path / "b.svg", chess.Board()).read_text()
    with pytest.raises(InputError, match=".svg or .png"):
        save_board(tmp_path / "b.jpg", chess.Board())


# --- datasets from real data ---------------------------------------------------------------------
LICHESS_ROWS = "\n".join([
    "PuzzleId,FEN,Moves,Rating,RatingDeviation,Popularity,NbPlays,Themes,GameUrl,OpeningTags",
    "m1a,6k1/5ppp/8/8/8/8/5PPP/R5K1 b - - 0 1,g8h8 a1a8,900,80,95,120,backRankMate mate mateIn1 oneMove,u,",
    "m2a,k7/8/8/2K5/1Q6/8/8/8 b - - 0 1,a8a7 c5c6 a7a8 b4b7,1200,75,90,300,mate mateIn2 queenEndgame,u,",
    "bad,not a fen,e2e4 e7e5,1,1,1,1,mate mateIn1,u,",
    "m1b,5k2/8/4K3/8/8/8/8/R7 b - - 0 1,f8e8 a1a8,800,80,95,120,mate mateIn1,u,",
    "m1x,4k3/8/4K3/8/8/8/8/R7 b - - 0 1,e8f8 a1a8,800,80,95,120,mate mateIn1,u,",  # Ra8+ Kg7: not mate
])
SOURCE_TOML = """task = "chess"
name = "chess-{kind}"
n = 10
[puzzles]
mate_in = 1
[source]
kind = "{kind}"
path = "{path}"
[splits]
train = 0.5
test = 0.5
"""


def test_lichess_source_dataset(tmp_path, capsys):
    (tmp_path / "puzzles.csv").write_text(LICHESS_ROWS)
    toml = tmp_path / "lichess.toml"
    toml.write_text(SOURCE_TOML.format(kind="lichess", path="puzzles.csv"))  # relative to the TOML's folder
    ds = store.read_dataset(generate_from_toml(toml, out=tmp_path / "ds"))
    rows = [r for s in ds.splits.values() for r in s]
    assert sorted(r["source"] for r in rows) == ["lichess:m1a", "lichess:m1b"]
    for r in rows:
        board = chess.Board(r["fen"])
        board.push_uci(r["pv"][0])
        assert board.is_checkmate() and r["search_value"] == MATE - 1
    assert [line for line, _ in ds.config["import"]["skipped"]] == [4]
    assert ds.config["import"]["rejected"] == [[6, "m1x: the solution does not end in checkmate"]]
    assert len(ds.config["config"]["source"]["sha256"]) == 64
    assert "skipped 1 malformed" in capsys.readouterr().err


def test_pgn_source_dataset(tmp_path):
    (tmp_path / "g.pgn").write_text('[Event "x"]\n[Result "1-0"]\n\n1. e4 e5 2. Bc4 Nc6 3. Qh5 Nf6 4. Qxf7# 1-0\n')
    toml = tmp_path / "pgn.toml"
    toml.write_text(SOURCE_TOML.format(kind="pgn", path=str(tmp_path / "g.pgn")).replace("path = ", "max_pieces = 32\npath = "))
    ds = store.read_dataset(generate_from_toml(toml, out=tmp_path / "ds"))
    rows = [r for s in ds.splits.values() for r in s]
    assert [(r["source"], r["pv"]) for r in rows] == [("pgn:0:6", ["h5f7"])]


def test_source_without_path_is_a_config_error(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(SOURCE_TOML.format(kind="pgn", path=""))
    with pytest.raises(ConfigError, match="needs a path"):
        load_task(toml)


def test_rollout_metrics_survive_a_move_that_is_not_a_move(dataset):
    """A model that writes from-square = to-square ("f5f5", not valid UCI) scores zero, it does not crash."""
    import torch

    from searchprobe.train.task_data import TaskData

    script = [tok.TOKEN_ID[t] for t in ("f5", "f5", "=", "<eos>")]

    class Scripted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(1))

        def forward(self, tokens):
            logits = torch.zeros(tokens.shape[0], tokens.shape[1], len(tok.VOCAB))
            logits[:, -1, script[min(tokens.shape[1] - tok.PROMPT_LENGTH, len(script) - 1)]] = 1.0
            return logits

    metrics = TaskData(dataset).evaluate(Scripted(), "test", limit=4)
    assert metrics["n"] == len(dataset.splits["test"]) and metrics["legal_moves"] == 0.0
    assert metrics["first_move"] == metrics["whole_line"] == metrics["mates_delivered"] == 0.0
