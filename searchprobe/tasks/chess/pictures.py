"""Board pictures: SVG through python-chess's `chess.svg`, PNG drawn with matplotlib.

Both draw the principal-variation arrows (attacker's moves in one colour, defender's in another,
fading with the ply) and an optional per-square heat map (64 values in python-chess square order,
a1 = 0 … h8 = 63; e.g. a probe's per-square accuracy or a lens's logit), coloured by a matplotlib
colormap. PNG needs no rasterizer beyond matplotlib (already a dependency): it is drawn directly
(Agg backend, no pyplot global state), with the pieces as Unicode chess glyphs.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

import chess
import chess.svg
import numpy as np

from searchprobe.errors import InputError
from searchprobe.io import atomic_write_bytes, atomic_write_text

ATTACKER_ARROW = "#15781B"
DEFENDER_ARROW = "#882020"
_LIGHT, _DARK = "#f0d9b5", "#b58863"
_GLYPHS = {sym: chr(0x2654 + i) for i, sym in enumerate("KQRBNP")} | {sym: chr(0x265A + i) for i, sym in enumerate("kqrbnp")}


def _coerce(board_or_puzzle, pv: Sequence[str] | None) -> tuple[chess.Board, list[chess.Move]]:
    if hasattr(board_or_puzzle, "fen") and hasattr(board_or_puzzle, "pv") and not isinstance(board_or_puzzle, chess.Board):
        board = chess.Board(board_or_puzzle.fen)
        pv = board_or_puzzle.pv if pv is None else pv
    elif isinstance(board_or_puzzle, chess.Board):
        board = board_or_puzzle
    else:
        board = chess.Board(str(board_or_puzzle))
    moves = [chess.Move.from_uci(m) if isinstance(m, str) else m for m in (pv or [])]
    return board, moves


def heat_colors(heat: Sequence[float] | np.ndarray, *, cmap: str = "viridis", vmin: float | None = None,
                vmax: float | None = None, alpha: float = 0.6) -> dict[int, str]:
    """Square → ``#rrggbbaa`` fill colour for 64 heat values (NaN squares get no fill)."""
    import matplotlib

    values = np.asarray(heat, dtype=np.float64).reshape(-1)
    if values.shape != (64,):
        raise InputError(f"heat map has {values.size} values; give 64, one per square a1..h8")
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {}
    lo = float(finite.min()) if vmin is None else float(vmin)
    hi = float(finite.max()) if vmax is None else float(vmax)
    scaled = (values - lo) / (hi - lo) if hi > lo else np.full(64, 0.5)
    colormap = matplotlib.colormaps[cmap]
    out = {}
    for sq in range(64):
        if np.isfinite(values[sq]):
            r, g, b, _ = colormap(float(np.clip(scaled[sq], 0.0, 1.0)))
            out[sq] = "#{:02x}{:02x}{:02x}{:02x}".format(round(r * 255), round(g * 255), round(b * 255), round(alpha * 255))
    return out


def pv_arrows(board: chess.Board, moves: Sequence[chess.Move]) -> list[chess.svg.Arrow]:
    """One arrow per PV ply, coloured by the side that plays it."""
    return [chess.svg.Arrow(m.from_square, m.to_square, color=ATTACKER_ARROW if i % 2 == 0 else DEFENDER_ARROW)
            for i, m in enumerate(moves)]


def board_svg(board_or_puzzle, pv: Sequence[str] | None = None, heat: Sequence[float] | None = None, *,
              cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None, size: int = 360,
              flipped: bool = False) -> str:
    """SVG of a position (a `Puzzle`, a `chess.Board` or a FEN) with PV arrows and a heat-map overlay."""
    board, moves = _coerce(board_or_puzzle, pv)
    fill = heat_colors(heat, cmap=cmap, vmin=vmin, vmax=vmax) if heat is not None else {}
    return chess.svg.board(board, arrows=pv_arrows(board, moves), fill=fill, size=size,
                           orientation=not flipped)


def board_png(board_or_puzzle, pv: Sequence[str] | None = None, heat: Sequence[float] | None = None, *,
              cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None, size_inches: float = 4.0,
              dpi: int = 100, title: str | None = None) -> bytes:
    """PNG bytes of the same picture, drawn with matplotlib (Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import to_rgba
    from matplotlib.figure import Figure

    board, moves = _coerce(board_or_puzzle, pv)
    fill = heat_colors(heat, cmap=cmap, vmin=vmin, vmax=vmax) if heat is not None else {}
    image = np.zeros((8, 8, 4))
    for sq in chess.SQUARES:
        f, r = chess.square_file(sq), chess.square_rank(sq)
        base = np.array(to_rgba(_DARK if (f + r) % 2 == 0 else _LIGHT))
        if sq in fill:
            over = np.array(to_rgba(fill[sq]))
            base = np.concatenate([base[:3] * (1 - over[3]) + over[:3] * over[3], [1.0]])
        image[7 - r, f] = base
    fig = Figure(figsize=(size_inches, size_inches), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.06, 0.06, 0.9, 0.88 if title else 0.9))
    ax.imshow(image, extent=(-0.5, 7.5, -0.5, 7.5), interpolation="nearest")
    for sq, piece in board.piece_map().items():
        ax.text(chess.square_file(sq), chess.square_rank(sq), _GLYPHS[piece.symbol()], ha="center", va="center",
                fontsize=size_inches * 8, color="black", family="DejaVu Sans")
    for i, m in enumerate(moves):
        fx, fy = chess.square_file(m.from_square), chess.square_rank(m.from_square)
        tx, ty = chess.square_file(m.to_square), chess.square_rank(m.to_square)
        color = ATTACKER_ARROW if i % 2 == 0 else DEFENDER_ARROW
        ax.annotate("", xy=(tx, ty), xytext=(fx, fy),
                    arrowprops=dict(arrowstyle="-|>", color=color, lw=2.5, alpha=max(0.35, 0.9 - 0.12 * i)))
        ax.text((fx + tx) / 2, (fy + ty) / 2, str(i + 1), color="white", fontsize=7, ha="center", va="center",
                bbox=dict(boxstyle="circle,pad=0.15", fc=color, ec="none"))
    ax.set_xticks(range(8), list("abcdefgh"))
    ax.set_yticks(range(8), [str(i) for i in range(1, 9)])
    ax.tick_params(length=0, labelsize=7)
    ax.set_xlim(-0.5, 7.5)
    ax.set_ylim(-0.5, 7.5)
    if title:
        ax.set_title(title, fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def save_board(path: str | os.PathLike, board_or_puzzle, pv: Sequence[str] | None = None,
               heat: Sequence[float] | None = None, **kwargs) -> Path:
    """Write ``.svg`` or ``.png`` (by the suffix), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".svg":
        atomic_write_text(path, board_svg(board_or_puzzle, pv, heat, **kwargs))
    elif suffix == ".png":
        atomic_write_bytes(path, board_png(board_or_puzzle, pv, heat, **kwargs))
    else:
        raise InputError(f"board picture path {str(path)!r} must end in .svg or .png")
    return path
