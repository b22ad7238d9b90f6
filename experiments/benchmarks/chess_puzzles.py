"""Benchmark: verified mate-in-2 puzzles per second per core, generator vs a plain python-chess minimax.

Both sides get the same candidate positions (random legal KRRvK / KRvK / KQvK positions, White to
move) and must agree on which are puzzles (mate in exactly 2, no mate in 1, unique first move):

* generator: `searchprobe.tasks.chess.puzzles.solve_position` (exact mate prover with check-first
  ordering, check-only last move and a transposition table) **plus** the recorded alpha-beta
  search tree (`searchprobe.search.games.alphabeta` trace) for every accepted puzzle;
* plain: a full-width negamax over python-chess to depth 3 (no ordering, no pruning, no table),
  scoring every root move, written here.

The three measurements are interleaved candidate by candidate, so machine load hits them alike.
Also measured, on the same positions: python-chess's raw move-generation rate (push/pop perft to
depth 3, nodes/s) as the ceiling, and the generator's nodes/s against it (nodes = moves pushed by
the prover + nodes entered by the traced alpha-beta). One process, so rates are per core.

    .venv/bin/python experiments/benchmarks/chess_puzzles.py [--candidates 240] [--seed 0] [--out result.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import chess
import numpy as np

from searchprobe.tasks.chess.config import Material
from searchprobe.tasks.chess.puzzles import MateSolver, random_position, solve_position

MATE = 1000


def candidates(n: int, seed: int) -> list[chess.Board]:
    rng = np.random.default_rng(seed)
    mats = [Material.parse(s) for s in ("KRRvK", "KRvK", "KQvK")]
    out: list[chess.Board] = []
    while len(out) < n:
        board = random_position(rng, mats[len(out) % len(mats)], chess.WHITE)
        if board is not None:
            out.append(board)
    return out


# --- the plain reference ----------------------------------------------------------------------
class Plain:
    def __init__(self) -> None:
        self.nodes = 0

    def negamax(self, board: chess.Board, depth: int, ply: int) -> int:
        moves = list(board.legal_moves)
        if not moves:
            return -(MATE - ply) if board.is_check() else 0
        if depth == 0:
            return 0
        best = -10 * MATE
        for move in moves:
            self.nodes += 1
            board.push(move)
            best = max(best, -self.negamax(board, depth - 1, ply + 1))
            board.pop()
        return best

    def is_unique_mate_in_2(self, board: chess.Board) -> bool:
        scores = []
        for move in list(board.legal_moves):
            self.nodes += 1
            board.push(move)
            scores.append(-self.negamax(board, 2, 1))
            board.pop()
        return bool(scores) and max(scores) == MATE - 3 and scores.count(MATE - 3) == 1


def perft(board: chess.Board, depth: int) -> int:
    if depth == 0:
        return 1
    total = 0
    for move in board.generate_legal_moves():
        board.push(move)
        total += perft(board, depth - 1)
        board.pop()
    return total


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    boards = candidates(args.candidates, args.seed)

    # Interleaved per candidate, so the three measurements share the machine's load.
    t_gen = t_plain = t_perft = 0.0
    gen_nodes = perft_nodes = 0
    accepted_gen, accepted_plain = [], []
    plain = Plain()
    for i, board in enumerate(boards):
        t0 = time.perf_counter()
        solver = MateSolver()
        puzzle = solve_position(board, 2, unique=True, record_trace=True, solver=solver)
        t1 = time.perf_counter()
        if plain.is_unique_mate_in_2(board.copy()):
            accepted_plain.append(i)
        t2 = time.perf_counter()
        perft_nodes += perft(board.copy(), 3)
        t3 = time.perf_counter()
        t_gen, t_plain, t_perft = t_gen + t1 - t0, t_plain + t2 - t1, t_perft + t3 - t2
        gen_nodes += solver.nodes
        if puzzle is not None:
            gen_nodes += int((puzzle.trace.kind == 3).sum())
            accepted_gen.append(i)

    n_ok = len(accepted_gen)
    result = {
        "benchmark": "chess_puzzles",
        "candidates": len(boards),
        "seed": args.seed,
        "material": ["KRRvK", "KRvK", "KQvK"],
        "puzzles_verified": n_ok,
        "agree": accepted_gen == accepted_plain,
        "generator": {"seconds": round(t_gen, 3), "puzzles_per_s": round(n_ok / t_gen, 3),
                      "nodes": gen_nodes, "nodes_per_s": round(gen_nodes / t_gen), "with_traces": True},
        "plain_minimax": {"seconds": round(t_plain, 3), "puzzles_per_s": round(len(accepted_plain) / t_plain, 3),
                          "nodes": plain.nodes, "nodes_per_s": round(plain.nodes / t_plain)},
        "speedup_vs_plain": round(t_plain / t_gen, 2),
        "perft_ceiling": {"depth": 3, "nodes": perft_nodes, "seconds": round(t_perft, 3),
                          "nodes_per_s": round(perft_nodes / t_perft)},
        "generator_nodes_per_s_vs_perft": round((gen_nodes / t_gen) / (perft_nodes / t_perft), 3),
        "python": platform.python_version(),
        "chess": chess.__version__,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        from searchprobe.io import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
