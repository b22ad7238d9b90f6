"""The chess task through the task protocol (`searchprobe.tasks.base.Task`).

Mate-in-k puzzles: the model writes the solution line after the position. Rollouts are decoded
with the chess tokenizer and checked with python-chess (first move among the mating first moves,
the whole principal variation, legality of every move, and whether the line delivers mate).
Counterfactual pairs and goal retargeting: `searchprobe.tasks.chess.pairs` (the goal is the
mating square of the line the model plays; its square token is where retargeting edits).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from searchprobe.errors import DataError, InputError
from searchprobe.tasks.base import LabelSet, Task
from searchprobe.tasks.chess import tokens as chess_tokens

DEFAULT_ROLES = ("stm", "sep", "ply:1:from", "ply:1:to")
DEFAULT_LABELS = ("opp_king", "mating_square", "first_to", "ply_3_to", "opp_attacks", "king_escapes",
                  "occupied", "mine", "search_focus_to")


def score_line(fen: str, moves: list[str], pv: list[str], solutions: list[str]) -> dict[str, float]:
    """One rollout's metrics: first move mates, the whole line is the PV, legal fraction, mate delivered."""
    import chess

    board, n_legal = chess.Board(fen), 0
    for uci in moves:
        try:
            move = chess.Move.from_uci(uci)
        except ValueError:  # e.g. "f5f5": the model named one square twice; not a move at all
            break
        if move not in board.legal_moves:
            break
        board.push(move)
        n_legal += 1
    return {"first_move": float(bool(moves) and moves[0] in solutions), "whole_line": float(moves == list(pv)),
            "legal_moves": n_legal / len(moves) if moves else 0.0,
            "mates_delivered": float(board.is_checkmate() and n_legal == len(moves))}


class ChessTask(Task):
    """Mate-in-k chess puzzles with their alpha-beta search trees."""

    name: ClassVar[str] = "chess"
    pad_token: ClassVar[str] = "<pad>"
    stop_token: ClassVar[str] = "<eos>"
    solution_name: ClassVar[str] = "move"
    primary_metrics: ClassVar[tuple[str, ...]] = ("first_move", "mates_delivered", "whole_line", "legal_moves")
    rollout_columns: ClassVar[tuple[str, ...]] = ("fen", "pv", "solutions")

    def generate(self, task_file, *, out=None, n=None, seed=None, shard=None, overwrite=False, workers=1,
                 progress=False) -> Path:
        from searchprobe.tasks.chess.dataset import generate_from_toml

        return generate_from_toml(task_file, out=out, n=n, seed=seed, shard=shard, overwrite=overwrite,
                                  workers=workers, progress=progress)

    def dataset_card(self, meta) -> str:
        from searchprobe.tasks.chess.dataset import dataset_card

        return dataset_card(dict(meta))

    def tokenizer(self, dataset_config):
        return chess_tokens

    def role_code(self, name: str) -> int:
        return chess_tokens.role_code(name)

    def role_name(self, code: int) -> str:
        return chess_tokens.role_name(code)

    def default_roles(self, dataset_config) -> tuple[str, ...]:
        return DEFAULT_ROLES

    def is_solution_role(self, codes) -> np.ndarray:
        return np.asarray(codes) >= chess_tokens.ROLE_CODE["sep"]

    def score_rollouts(self, rows, prompts, generated, vocab) -> dict[str, float]:
        totals = {"first_move": 0.0, "whole_line": 0.0, "legal_moves": 0.0, "mates_delivered": 0.0}
        for prompt, gen, fen, pv, solutions in zip(prompts, generated, rows["fen"], rows["pv"], rows["solutions"]):
            try:
                _, moves = chess_tokens.decode(list(prompt) + list(gen))
            except Exception:  # malformed generations count as wrong and illegal
                moves = []
            for key, value in score_line(str(fen), list(moves), [str(m) for m in pv], [str(m) for m in solutions]).items():
                totals[key] += value
        n = len(generated)
        return {"n": n, **{k: v / max(1, n) for k, v in totals.items()}}

    def label_set(self, stored, split, n, roles, *, k_ahead: int = 4) -> LabelSet:
        from searchprobe.tasks.chess.probe_labels import chess_label_specs, chess_store_labels

        pv = stored.splits[split].select(range(n)).select_columns(["pv"])[:]["pv"]
        max_plies = max(len(line) for line in pv)
        return LabelSet(chess_label_specs(max_plies), DEFAULT_LABELS, lambda rows: chess_store_labels(rows, max_plies))

    # --- patching and retargeting ------------------------------------------------------------
    #: "king": the defender king on another square (a donor: sweeps, attribution); "target": one
    #: position, two mating lines (donorless: retargeting). See `searchprobe.tasks.chess.pairs`.
    pair_kinds: ClassVar[tuple[str, ...]] = ("king", "target")
    donorless_pair_kinds: ClassVar[tuple[str, ...]] = ("target",)
    #: no input states the other line, so no "patch" / "random" (donor) nor "same_target"; the
    #: edit at another square ("other_position") is the position control
    retarget_conditions: ClassVar[tuple[str, ...]] = ("none", "steer", "random_steer", "other_position")
    goal_columns: ClassVar[tuple[str, ...]] = ("mating_square",)
    goal_label: ClassVar[str | None] = "mating_square"

    def make_pairs(self, stored, tokenizer, *, split, kind, n, seed):
        """Chess pairs (`searchprobe.tasks.chess.pairs`); the payloads are `ChessSide`s."""
        from searchprobe.tasks.chess.pairs import chess_pairs_from_dataset

        self.check_pair_kind(kind)
        return chess_pairs_from_dataset(stored, split=split, kind=kind, n=n, seed=seed)

    def goal_role(self) -> str:
        raise InputError("chess goals have no fixed token role: the goal is the mating square, edited at that "
                         "square's token (ChessTask.goal_positions)")

    def goal_site(self) -> str:
        return "the token of the mating square of the line the model plays"

    def goal_positions(self, roles, limits=None, classes=None) -> np.ndarray:
        """The token of the goal's square: ``SQUARE_OFFSET + mating square`` (token frame) per prompt."""
        if classes is None:
            raise InputError("chess goal positions depend on the goal: pass the mating squares (classes)")
        classes = np.asarray(classes, dtype=np.int64).reshape(-1)
        if len(classes) != len(roles):
            raise InputError(f"chess goal positions: {len(classes)} mating squares for {len(roles)} prompts")
        if classes.size and (classes.min() < 0 or classes.max() > 63):
            raise DataError(f"chess mating squares must be 0..63; got {classes.min()}..{classes.max()}")
        return chess_tokens.SQUARE_OFFSET + classes

    def goal_classes(self, rows, dataset_config) -> tuple[np.ndarray, int]:
        """The mating square of the dataset's solution (token frame, the ``mating_square`` label); 64 classes."""
        return np.asarray(rows["mating_square"], dtype=np.int64), 64

    def pair_goal_classes(self, pairs) -> tuple[np.ndarray, np.ndarray]:
        return pairs.clean.mating_square.astype(np.int64), pairs.corrupt.mating_square.astype(np.int64)

    def orient_goal_pairs(self, pairs, generated, vocab):
        """The old line = the one the unedited model's first move belongs to (`orient_target_pairs`)."""
        from searchprobe.tasks.chess.pairs import orient_target_pairs

        return orient_target_pairs(pairs, generated)

    def control_positions(self, pairs, rng) -> np.ndarray:
        """The token of another square of the old mating square's kind (`control_squares`)."""
        from searchprobe.tasks.chess.pairs import control_squares

        return chess_tokens.SQUARE_OFFSET + control_squares(pairs, rng)

    def retarget_outcomes(self, pairs, generated, vocab) -> dict[str, np.ndarray]:
        """First move on the old / new line (prover's solutions), and the rollout mates (`target_outcomes`)."""
        from searchprobe.tasks.chess.pairs import target_outcomes

        return target_outcomes(pairs, generated)

    def showcase(self, out: Path) -> dict:
        from searchprobe.tasks.chess.showcase import showcase

        return showcase(out)

    def pictures(self, stored, split, n) -> list[tuple[bytes, str]]:
        from searchprobe.tasks.chess.pictures import board_png

        ds = stored.splits[split]
        out = []
        for i in range(min(n, len(ds))):
            row = ds[i]
            out.append((board_png(row["fen"], pv=row.get("pv"), size_inches=3.0),
                        f"{split} example {i}: {row['fen']} (arrows: the solution, attacker then defender)"))
        return out


TASK = ChessTask()
