"""Maze generate + solve + tokenize throughput: searchprobe vs maze-dataset, side by side, one core.

    python experiments/benchmarks/maze_generation.py              # grids 5, 7, 10 -> JSON
    python experiments/benchmarks/maze_generation.py --million    # 1M 7x7 mazes to disk, both cores

The reference pipeline is what a maze-dataset user runs per maze: ``LatticeMazeGenerators.gen_dfs``,
``generate_random_path(endpoints_not_equal=True)`` (endpoints + shortest path),
``SolvedMaze.from_lattice_maze`` and ``as_tokens`` with the legacy AOTP tokenizer. Ours is
`generate_batch` (DFS + endpoints + shortest paths) and `MazeTokenizer.encode`, batched. Each grid
size alternates reference and ours in one process, so load on the machine hits both alike; the
ratio is the figure to read. maze-dataset (and ``muutils<0.9``) is the optional ``bench`` extra.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from searchprobe.tasks.maze.config import MazeConfig  # noqa: E402
from searchprobe.tasks.maze.dataset import generate_batch, generate_dataset, tokenizer_for  # noqa: E402


def reference_rate(grid: int, n: int) -> float:
    """maze-dataset mazes/s for gen_dfs + random endpoints + shortest path + as_tokens."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # maze-dataset warns about its optional rust_fst on import
        from maze_dataset import LatticeMazeGenerators, SolvedMaze
        from maze_dataset.tokenization import MazeTokenizer, TokenizationMode

    tokenizer = MazeTokenizer(tokenization_mode=TokenizationMode.AOTP_UT_uniform, max_grid_size=grid)
    shape = np.array([grid, grid])
    start = time.perf_counter()
    for _ in range(n):
        maze = LatticeMazeGenerators.gen_dfs(shape)
        path = maze.generate_random_path(endpoints_not_equal=True)
        SolvedMaze.from_lattice_maze(maze, path).as_tokens(tokenizer)
    return n / (time.perf_counter() - start)


def our_rate(grid: int, n: int, batch_size: int, generator: str = "dfs") -> float:
    """searchprobe mazes/s for generate_batch + encode over n mazes."""
    cfg = MazeConfig(rows=grid, cols=grid, n=n, batch_size=batch_size, generator=generator)
    tok = tokenizer_for(cfg)
    start = time.perf_counter()
    for a in range(0, n, batch_size):
        batch = generate_batch(cfg, np.arange(a, min(a + batch_size, n)))
        tok.encode(batch)
    return n / (time.perf_counter() - start)


def throughput(grids: list[int], ours_n: int, ref_n: dict[int, int], rounds: int, batch_size: int) -> dict:
    out = {}
    for grid in grids:
        our_rate(grid, batch_size, batch_size)  # warm up (imports, caches)
        reference_rate(grid, 5)
        ours, ref = [], []
        for _ in range(rounds):  # interleave so machine load hits both
            ref.append(reference_rate(grid, ref_n[grid] // rounds))
            ours.append(our_rate(grid, ours_n // rounds, batch_size))
        ours_m, ref_m = float(np.median(ours)), float(np.median(ref))
        out[f"grid_{grid}"] = {
            "ours_mazes_per_s": round(ours_m), "maze_dataset_mazes_per_s": round(ref_m, 1),
            "ratio": round(ours_m / ref_m, 1), "ours_n": ours_n, "maze_dataset_n": ref_n[grid],
            "ours_rounds": [round(x) for x in ours], "maze_dataset_rounds": [round(x, 1) for x in ref],
        }
    return out


def per_generator(grid: int, n: int, batch_size: int) -> dict:
    """Our generate + solve + tokenize mazes/s for every generator (no reference to compare)."""
    from searchprobe.tasks.maze.config import GENERATORS

    return {gen: round(our_rate(grid, n, min(batch_size, n), gen)) for gen in GENERATORS}


def million(n: int, workers: int, labels: bool) -> dict:
    """Write n 7x7 DFS mazes end to end (generate, solve, tokenize, records, dedupe, Arrow) to disk."""
    cfg = MazeConfig(rows=7, cols=7, n=n, batch_size=8192, labels=labels)
    tmp = Path(tempfile.mkdtemp(prefix="maze-million-"))
    try:
        start = time.perf_counter()
        out = generate_dataset(cfg, tmp / "ds", workers=workers)
        wall = time.perf_counter() - start
        meta = json.loads((out / "config.json").read_text())
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "mazes": n, "rows_written": sum(meta["counts"].values()), "duplicates_dropped": meta["duplicates_dropped"],
        "workers": workers, "labels": labels, "wall_s": round(wall, 1), "mazes_per_s": round(n / wall),
        "peak_rss_mb_main": round(self_rss), "peak_rss_mb_worker": round(child_rss), "disk_mb": round(size / 2**20),
        "goal": "<= 120 s and <= 2048 MB",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--million", action="store_true", help="write 1M 7x7 mazes to disk on both cores")
    parser.add_argument("--n", type=int, default=None, help="mazes for --million (default 1,000,000)")
    parser.add_argument("--no-labels", action="store_true", help="--million: leave out the probe-label columns")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ours-n", type=int, default=40_000, help="our mazes per grid size")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--grids", type=int, nargs="+", default=[5, 7, 10])
    parser.add_argument("--generators", action="store_true", help="also: our rate per generator at 7x7")
    args = parser.parse_args()
    info = {"machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}}
    if args.million:
        info["million"] = million(args.n or 1_000_000, args.workers, not args.no_labels)
    else:
        ref_n = {5: 400, 7: 300, 10: 200}
        info["throughput_one_core"] = throughput(args.grids, args.ours_n, {g: ref_n.get(g, 200) for g in args.grids},
                                                 args.rounds, args.batch_size)
        if args.generators:
            info["ours_by_generator_7x7"] = per_generator(7, 20_000, args.batch_size)
    info["machine"]["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
