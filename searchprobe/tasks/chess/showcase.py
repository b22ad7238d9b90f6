"""The chess task's part of `searchprobe demo`: a few mate-in-2 puzzles with their alpha-beta trees, drawn."""

from __future__ import annotations

import time
from pathlib import Path


def showcase(out: Path, n: int = 4) -> dict[str, object]:
    """Generate a few mate-in-2 puzzles (KQvK) and draw them with their principal variations."""
    from searchprobe.tasks.chess.config import PuzzleConfig
    from searchprobe.tasks.chess.pictures import save_board
    from searchprobe.tasks.chess.puzzles import generate_puzzles

    print("== chess: mate-in-2 puzzles with their alpha-beta trees")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    puzzles = generate_puzzles(PuzzleConfig(mate_in=2, material=("KQvK",)), n, seed=0)
    rows = []
    for i, p in enumerate(puzzles):
        png = out / f"puzzle-{i}.png"
        save_board(png, p.fen, pv=p.pv)
        nodes = 0 if p.trace is None else int((p.trace.kind == 3).sum())
        rows.append({"fen": p.fen, "pv": list(p.pv), "search_nodes": nodes, "picture": png.name})
        print(f"  {p.fen:<40} PV {' '.join(p.pv):<24} alpha-beta nodes {nodes}")
    print(f"  ({time.perf_counter() - t0:.1f} s)")
    return {"puzzles": rows}
