"""The chess task: mate-in-k puzzles with their alpha-beta search trees (python-chess rules).

- `config`: material specs (``"KQvK"``) and the puzzle recipe (`PuzzleConfig`).
- `game`: python-chess as a `searchprobe.search.games` Game (`MateGame`), move ids, position keys.
- `puzzles`: the exact mate prover (`MateSolver`), the seeded generator, the `Puzzle` record.
- `imports`: Lichess puzzle CSV and PGN games → positions / puzzles (malformed input skipped and counted).
- `tokens`: 64 square tokens + state + solution moves, token roles, relative (mine/theirs) mode.
- `labels`: probe labels (target, candidate solution, constraint, search trace).
- `pictures`: board SVG / PNG with PV arrows and a per-square heat map.
- `dataset`: task TOML → HF dataset through `searchprobe.tasks.store` (`generate_from_toml`).

Submodules are imported lazily; nothing here imports torch.
"""

from searchprobe.tasks.chess.config import Material, PuzzleConfig
from searchprobe.tasks.chess.puzzles import MateSolver, Puzzle, generate_puzzle, generate_puzzles, solve_position

__all__ = ["Material", "PuzzleConfig", "MateSolver", "Puzzle", "generate_puzzle", "generate_puzzles", "solve_position"]
