"""Chess through the patch stage: counterfactual pairs (checked with python-chess), goal retargeting on
a scripted model whose moves are known, and `searchprobe patch` end to end on a tiny chess run."""

from __future__ import annotations

import json

import chess
import numpy as np
import pytest
import torch

from searchprobe.errors import DataError, InputError
from searchprobe.tasks.chess import tokens as tok

TOML = """task = "chess"
name = "chess-patch-unit"
n = 120
seed = 3
[puzzles]
mate_in = 1
material = ["KQvK", "KRvK"]
unique_first_move = false
attacker = "random"
[tokens]
relative = true
[splits]
train = 0.6
validation = 0.1
test = 0.3
"""
P = tok.PROMPT_LENGTH


@pytest.fixture(scope="module")
def chess_data(tmp_path_factory):
    """A mate-in-1 dataset (relative tokens: Black's boards are mirrored) made by `searchprobe generate`."""
    from searchprobe.cli import main
    from searchprobe.tasks.store import read_dataset
    from searchprobe.train.task_data import TaskData

    tmp = tmp_path_factory.mktemp("chess-patch")
    (tmp / "task.toml").write_text(TOML)
    assert main(["generate", str(tmp / "task.toml"), "--out", str(tmp / "data"), "--quiet"]) == 0
    stored = read_dataset(tmp / "data")
    return TaskData(stored)


# --- an independent reference: python-chess only ------------------------------------------------
def mating_moves(board: chess.Board) -> set[str]:
    out = set()
    for move in list(board.legal_moves):
        board.push(move)
        if board.is_checkmate():
            out.add(move.uci())
        board.pop()
    return out


def frame(square: int, board: chess.Board) -> int:
    return chess.square_mirror(square) if board.turn == chess.BLACK else square  # relative tokens


def move_ids(board: chess.Board, uci: str) -> list[int]:
    move = chess.Move.from_uci(uci)
    promo = "=" if move.promotion is None else "=" + chess.piece_symbol(move.promotion)
    return [tok.TOKEN_ID[chess.square_name(frame(move.from_square, board))],
            tok.TOKEN_ID[chess.square_name(frame(move.to_square, board))], tok.TOKEN_ID[promo]]


def board_of(prompt) -> chess.Board:
    return chess.Board(tok.decode(list(prompt) + [tok.TOKEN_ID["<eos>"]])[0])


def starts(prefix: list[int], boards_moves) -> bool:
    return any(ids[:len(prefix)] == prefix for ids in boards_moves)


def check_answers(pairs, i, board_c, right_c, board_x, right_x):
    """The decision is the first token where the two sides' first moves differ; each side's answer
    continues one of its own right moves and none of the other side's."""
    k, L = int(pairs.decision_step[i]), int(pairs.lengths[i])
    assert L == P + k and int(pairs.prompt_len[i]) == P
    ids_c, ids_x = move_ids(board_c, pairs.clean.pv[i][0]), move_ids(board_x, pairs.corrupt.pv[i][0])
    assert ids_c[:k] == ids_x[:k] and ids_c[k] != ids_x[k]
    assert pairs.clean_answer[i] == ids_c[k] and pairs.corrupt_answer[i] == ids_x[k]
    assert list(pairs.clean_tokens[i, P:L]) == ids_c[:k] == list(pairs.corrupt_tokens[i, P:L])
    own_c = [move_ids(board_c, m) for m in right_c]
    own_x = [move_ids(board_x, m) for m in right_x]
    assert starts(ids_c[:k + 1], own_c) and not starts(ids_c[:k + 1], own_x)
    assert starts(ids_x[:k + 1], own_x) and not starts(ids_x[:k + 1], own_c)
    assert [tok.role_name(r) for r in pairs.roles[i, P:L]] == ["ply:1:from", "ply:1:to", "ply:1:promo"][:k]


def test_king_pairs_move_only_the_defender_king(chess_data):
    task = chess_data.task
    pairs = task.make_pairs(chess_data.stored, tok, split="test", kind="king", n=8, seed=0)
    assert len(pairs) >= 3 and pairs.kind == "king" and pairs.max_new == 4
    for i in range(len(pairs)):
        L = int(pairs.lengths[i])
        board_c, board_x = board_of(pairs.clean_tokens[i, :P]), board_of(pairs.corrupt_tokens[i, :P])
        them = not board_c.turn
        kc, kx = board_c.king(them), board_x.king(them)
        # prompts differ at the defender king's two squares only
        diff = np.flatnonzero(pairs.clean_tokens[i, :L] != pairs.corrupt_tokens[i, :L])
        assert diff.tolist() == sorted(tok.SQUARE_OFFSET + frame(s, board_c) for s in (kc, kx))
        moved = board_c.copy()
        moved.remove_piece_at(kc)
        moved.set_piece_at(kx, chess.Piece(chess.KING, them))
        assert moved.board_fen() == board_x.board_fen() and board_x.is_valid() and kc != kx
        # both are mate-in-1 puzzles with disjoint mating moves (python-chess, not the prover)
        right_c, right_x = mating_moves(board_c), mating_moves(board_x)
        assert right_c == set(pairs.clean.solutions[i]) and right_x == set(pairs.corrupt.solutions[i])
        assert right_c and right_x and not right_c & right_x
        check_answers(pairs, i, board_c, right_c, board_x, right_x)
        assert board_c.fen() == chess.Board(pairs.clean.fen[i]).fen()
    # payloads follow subsets
    sub = pairs.subset(np.array([1, 0]))
    assert sub.clean.fen[0] == pairs.clean.fen[1] and sub.corrupt.pv[1] == pairs.corrupt.pv[0]


def test_target_pairs_are_two_mating_lines_of_one_position(chess_data):
    task = chess_data.task
    pairs = task.make_pairs(chess_data.stored, tok, split="test", kind="target", n=8, seed=0)
    assert len(pairs) >= 3 and "target" in task.donorless_pair_kinds
    np.testing.assert_array_equal(pairs.clean_tokens, pairs.corrupt_tokens)  # donorless: one prompt
    old, new = task.pair_goal_classes(pairs)
    for i in range(len(pairs)):
        board = board_of(pairs.clean_tokens[i, :P])
        lines = pairs.clean.lines[i]
        assert len(lines) >= 2 and len({line.square for line in lines}) == len(lines)
        assert set().union(*(set(line.moves) for line in lines)) == mating_moves(board)
        for line in lines:  # mate in 1: each line mates where its move lands
            assert all(frame(chess.Move.from_uci(m).to_square, board) == line.square for m in line.moves)
        a, b = lines[pairs.clean.line[i]], lines[pairs.corrupt.line[i]]
        assert pairs.clean.pv[i][0] == chess_data.split("test")[int(pairs.source_rows[i])]["pv"][0]  # the data's line
        assert (old[i], new[i]) == (a.square, b.square) and a.square != b.square
        check_answers(pairs, i, board, a.moves, board, b.moves)
    positions = task.goal_positions(pairs.roles, pairs.prompt_len, old)
    np.testing.assert_array_equal(positions, tok.SQUARE_OFFSET + old)
    # the goal is a square token: its role is that square's
    assert all(tok.role_name(pairs.roles[i, p]) == f"sq:{chess.square_name(int(old[i]))}" for i, p in enumerate(positions))
    controls = task.control_positions(pairs, np.random.default_rng(0)) - tok.SQUARE_OFFSET
    assert not ((controls == old) | (controls == new)).any()


def test_lines_follow_the_provers_principal_variation():
    from searchprobe.tasks.chess.pairs import line_after, mating_lines
    from searchprobe.tasks.chess.puzzles import solve_position

    board = chess.Board("8/k7/8/2K5/1Q6/8/8/8 w - - 0 1")
    puzzle = solve_position(board, 2, record_trace=False)
    assert [m.uci() for m in line_after(board, puzzle.pv[0], 2)] == list(puzzle.pv)
    lines = mating_lines(board, 2, puzzle.solutions)
    for line in lines:
        for move, pv in zip(line.moves, line.pvs):
            end = board.copy()
            for uci in pv:
                end.push_uci(uci)
            assert pv[0] == move and len(pv) == 3 and end.is_checkmate() and pv[-1][2:4] == chess.square_name(line.square)


def test_a_decision_at_the_from_square_in_both_frames():
    """Two rooks mate on a8 and b8: the lines part at the first token (the from-square). Relative
    tokens of the colour-mirrored position are the same but for the side to move."""
    from searchprobe.tasks.chess.pairs import make_chess_pairs

    white = chess.Board("7k/8/6K1/8/8/8/1R6/R7 w - - 0 1")
    black = white.mirror()
    rows = {"fen": [white.fen(), black.fen()], "pv": [["a1a8"], ["a8a1"]], "solutions": [["a1a8", "b2b8"], ["a8a1", "b7b1"]],
            "mate_in": [1, 1]}
    assert [mating_moves(white), mating_moves(black)] == [set(s) for s in rows["solutions"]]
    pairs = make_chess_pairs(rows, kind="target", relative=True)
    assert pairs.decision_step.tolist() == [0, 0] and pairs.lengths.tolist() == [P, P]
    assert pairs.clean_answer.tolist() == [tok.TOKEN_ID["a1"]] * 2 and pairs.corrupt_answer.tolist() == [tok.TOKEN_ID["b2"]] * 2
    assert pairs.clean.mating_square.tolist() == [chess.A8] * 2 and pairs.corrupt.mating_square.tolist() == [chess.B8] * 2
    diff = np.flatnonzero(pairs.clean_tokens[0] != pairs.clean_tokens[1])
    assert diff.tolist() == [65] and tok.role_name(pairs.roles[0, 65]) == "stm"
    absolute = make_chess_pairs(rows, kind="target", relative=False)
    assert absolute.clean_answer.tolist() == [tok.TOKEN_ID["a1"], tok.TOKEN_ID["a8"]]
    assert absolute.clean.mating_square.tolist() == [chess.A8, chess.A1]


def test_pair_errors(chess_data):
    from searchprobe.tasks.chess.pairs import make_chess_pairs

    task = chess_data.task
    with pytest.raises(InputError, match="unknown pair kind 'teleport' for task 'chess'; allowed: king, target"):
        task.make_pairs(chess_data.stored, tok, split="test", kind="teleport", n=4, seed=0)
    with pytest.raises(InputError, match="no split 'dev'"):
        task.make_pairs(chess_data.stored, tok, split="dev", kind="king", n=4, seed=0)
    one = {"fen": ["6k1/5ppp/8/8/8/8/5PPP/R5K1 w - - 0 1"], "pv": [["a1a8"]], "solutions": [["a1a8"]], "mate_in": [1]}
    with pytest.raises(DataError, match="unique_first_move = false"):
        make_chess_pairs(one, kind="target")
    with pytest.raises(InputError, match="chess goals have no fixed token role"):
        task.goal_role()


# --- retargeting on a scripted model -----------------------------------------------------------------
def scripted_model(script: dict, n_ctx: int = 96):
    """A one-layer model whose residual stream is one-hot token + one-hot position, hooked at
    ``blocks.0.hook_resid_pre``. For a scripted prompt it plays ``play``; when the residual at the
    ``watch`` position differs from the unedited one it plays ``switch`` instead; anything else ends."""
    from types import SimpleNamespace

    from transformer_lens import HookedRootModule
    from transformer_lens.hook_points import HookPoint

    V, eos = len(tok.VOCAB), tok.TOKEN_ID["<eos>"]

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.hook_resid_pre = HookPoint()

    class Scripted(HookedRootModule):
        def __init__(self):
            super().__init__()
            self.cfg = SimpleNamespace(n_layers=1, d_model=V + n_ctx, n_heads=1, n_ctx=n_ctx)
            self.unused = torch.nn.Parameter(torch.zeros(1))
            self.blocks = torch.nn.ModuleList([Block()])
            self.setup()

        def forward(self, tokens):
            tokens = torch.as_tensor(tokens)
            B, T = tokens.shape
            base = torch.cat([torch.nn.functional.one_hot(tokens, V).float(),
                              torch.eye(n_ctx)[:T].expand(B, T, n_ctx)], dim=-1)
            x = self.blocks[0].hook_resid_pre(base.clone())
            logits = torch.zeros(B, T, V)
            for b in range(B):
                entry = script.get(tuple(tokens[b, :P].tolist()))
                nxt = eos
                if entry is not None:
                    w = entry["watch"]
                    line = entry["switch"] if (x[b, w] - base[b, w]).abs().max() > 1e-4 else entry["play"]
                    t = T - P
                    nxt = line[t] if t < len(line) else eos
                logits[b, -1, nxt] = 1.0
            return logits

    return Scripted()


@pytest.mark.filterwarnings("ignore:The number of unique classes")
def test_retargeting_counts_on_a_scripted_model(chess_data):
    from searchprobe.intervene.retarget import GoalExamples, retarget

    task = chess_data.task
    pairs = task.make_pairs(chess_data.stored, tok, split="test", kind="target", n=6, seed=0)
    N = len(pairs)
    assert N >= 3
    script, plays = {}, []
    for i in range(N):
        board = board_of(pairs.clean_tokens[i, :P])
        lines = pairs.clean.lines[i]
        j = i % 2  # pair 1 plays its second line: the old goal is the model's line, not the data's
        other = next(m for m in range(len(lines)) if m != j)
        if i == N - 1:  # plays a legal move that does not mate: not solved, so not counted
            move = next(m.uci() for m in board.legal_moves if m.uci() not in set().union(*(set(l.moves) for l in lines)))
            play = switch = move_ids(board, move)
        else:
            play, switch = move_ids(board, lines[j].moves[0]), move_ids(board, lines[other].moves[0])
        script[tuple(pairs.clean_tokens[i, :P].tolist())] = {"watch": tok.SQUARE_OFFSET + lines[j].square,
                                                            "play": play, "switch": switch}
        plays.append((j, other))
    model = scripted_model(script)
    # a goal probe that sees every square once (the position one-hot tells them apart)
    prompts = [pairs.clean_tokens[s % N, :P] for s in range(64)]
    probe = GoalExamples(prompts, tok.SQUARE_OFFSET + np.arange(64), np.arange(64), 64)
    result = retarget(model, chess_data, pairs, layers=[0], probe=probe, seed=1)
    assert list(result.new[0]) == ["none", "steer", "random_steer", "other_position"]
    assert result.n == N and result.n_solved == N - 1
    counts = {c: (result.new[0][c].successes, result.old[0][c].successes) for c in result.new[0]}
    # no edit: the scripted lines; an edit at the played line's mating square switches it; elsewhere nothing
    assert counts == {"none": (0, N - 1), "steer": (N - 1, 0), "random_steer": (N - 1, 0), "other_position": (0, N - 1)}
    assert result.solved_new[0]["steer"].rate == 1.0 and result.solved_new[0]["other_position"].rate == 0.0
    assert result.solved_new[0]["steer"].n == N - 1 and result.solved_first_new[0]["random_steer"].rate == 1.0
    assert result.first_new[0]["steer"].successes == N - 1 and result.first_old[0]["none"].successes == N - 1
    d = result.to_dict()
    assert d["n_solved"] == N - 1 and d["layers"]["0"]["steer"]["new_target_solved"]["rate"] == 1.0
    assert len(result.table()[0]) == 10

    # orientation by the model's own first move
    from searchprobe.train.rollout import greedy_rollout

    gen = greedy_rollout(model, pairs.prompts("clean"), max_new=pairs.max_new, stop_id=chess_data.stop_id)
    oriented = task.orient_goal_pairs(pairs, gen, chess_data.vocab)
    for i, (j, other) in enumerate(plays[:-1]):
        assert (oriented.clean.line[i], oriented.corrupt.line[i]) == (j, other)
    out = task.retarget_outcomes(oriented, gen, chess_data.vocab)
    assert out["old"].tolist() == [True] * (N - 1) + [False] and not out["new"].any() and out["first_split"].all()
    with pytest.raises(InputError, match="condition 'patch' is not available for task 'chess'"):
        retarget(model, chess_data, pairs, layers=[0], conditions=["patch"])


def test_rollouts_are_scored_by_the_chess_task(chess_data):
    """`TaskData.rollout_metrics` (what ablations score) through `ChessTask.score_rollouts`: a model
    that writes each row's solution scores 1 on every metric, one that writes the wrong line 0."""
    rows = chess_data.rollout_rows("test", 6)
    right, wrong = {}, {}
    for tokens, start in zip(rows["tokens"], rows["solution_start"]):
        key = tuple(int(t) for t in tokens[:P])
        right[key] = {"watch": 0, "play": [int(t) for t in tokens[start:-1]], "switch": []}
        board = board_of(tokens[:P])
        move = next(m.uci() for m in board.legal_moves if m.uci() not in mating_moves(board))
        wrong[key] = {"watch": 0, "play": move_ids(board, move), "switch": []}
    good = chess_data.rollout_metrics(scripted_model(right), rows)
    assert good == {"n": 6, "first_move": 1.0, "whole_line": 1.0, "legal_moves": 1.0, "mates_delivered": 1.0}
    bad = chess_data.rollout_metrics(scripted_model(wrong), rows)
    assert bad == {"n": 6, "first_move": 0.0, "whole_line": 0.0, "legal_moves": 1.0, "mates_delivered": 0.0}


# --- the patch stage on a tiny chess run --------------------------------------------------------------
def test_patch_stage_end_to_end_on_a_chess_run(chess_data, tmp_path, capsys):
    from searchprobe.cli import main

    run = tmp_path / "run"
    assert main(["train", "--data", str(chess_data.stored.path), "--model", "nano", "--steps", "3", "--out", str(run),
                 "--no-progress"]) == 0
    # donorless pairs cannot be swept: one line, before any work
    assert main(["patch", str(run), "--pairs", "target", "--sweeps", "resid"]) == 2
    err = capsys.readouterr().err
    assert "without a corrupted input" in err and "'king'" in err and len(err.strip().splitlines()) == 1
    assert not (run / "patching").exists()
    assert main(["patch", str(run), "--pairs", "king", "--n", "6", "--sweeps", "resid,heads", "--ablate",
                 "--n-ablate", "4", "--retarget", "--n-retarget", "4"]) == 0
    out = run / "patching"

    def strict(name):
        return json.loads((out / name).read_text(), parse_constant=lambda c: pytest.fail(f"{name} holds {c}"))

    report, results = strict("report.json"), strict("results.json")
    assert results["task"] == "chess" and results["pairs"] == "king" and results["n_pairs"] >= 1
    assert "sq:a1" in results["resid"]["keys"] and results["heads"]["values"]
    assert 0 < results["attribution"]["n_pairs"] <= results["n_pairs"]
    abl = results["ablation"]
    assert set(abl["baseline"]) >= {"first_move", "mates_delivered", "whole_line", "legal_moves"}
    assert len(abl["ablations"]) == 2 * (4 + 2)  # nano: per layer 4 heads, the MLP, the layer
    assert all(set(a["metrics"]) == set(abl["baseline"]) for a in abl["ablations"])
    ret = results["retarget"]
    assert set(ret["layers"]["0"]) == {"none", "steer", "random_steer", "other_position"} and ret["n"] >= 1
    assert 0 <= ret["n_solved"] <= ret["n"]
    for section in report["sections"]:
        for fig in section["figures"]:
            assert (out / fig["path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        for table in section["tables"]:
            assert all(len(row) == len(table["columns"]) for row in table["rows"])
    assert "retargeting at L" in report["summary"] and "steer" in report["summary"]
    headings = [s["heading"] for s in report["sections"]]
    assert "Ablations scored by rollouts" in headings and "Goal retargeting" in headings
