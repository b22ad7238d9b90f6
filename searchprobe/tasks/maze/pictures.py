"""Maze pictures: walls, origin, target, path and an optional per-cell heat map, as PNG bytes.

Drawn with matplotlib's object API on an Agg canvas (no pyplot, no global state). The layout is
exact in pixels, so overlays and tests can find a cell: `picture_layout` gives the image size and
the pixel centre of every cell. Row 0 is at the top, as in the token strings.

For notebooks, `Maze._repr_png_` can simply return ``render_maze(self)``.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from searchprobe.errors import InputError
from searchprobe.io import atomic_write_bytes
from searchprobe.tasks.maze.types import Maze

BACKGROUND_COLOR = "#ffffff"
WALL_COLOR = "#1a1a1a"
ORIGIN_COLOR = "#2ca02c"  #: green square
TARGET_COLOR = "#d62728"  #: red square
PATH_COLOR = "#1f77b4"  #: blue line through the cell centres
HEAT_CMAP = "viridis"

DPI = 100
MARGIN_PX = 12
TITLE_PX = 22
COLORBAR_PX = 70  #: extra width for the colorbar and its tick labels


@dataclass(frozen=True)
class PictureLayout:
    """Pixel geometry of a maze picture (x to the right, y down from the top-left corner)."""

    n_rows: int
    n_cols: int
    cell_px: int
    width: int  #: image width in pixels
    height: int  #: image height in pixels
    left: int  #: x of the grid's left edge
    top: int  #: y of the grid's top edge

    def centre(self, row: int, col: int) -> tuple[int, int]:
        """(x, y) pixel at the centre of cell (row, col)."""
        return self.left + int((col + 0.5) * self.cell_px), self.top + int((row + 0.5) * self.cell_px)

    def point(self, row: float, col: float) -> tuple[int, int]:
        """(x, y) pixel of a point in cell coordinates (row, col may be fractional; cell (r, c) spans [r, r+1) × [c, c+1))."""
        return self.left + int(col * self.cell_px), self.top + int(row * self.cell_px)


def picture_layout(n_rows: int, n_cols: int, cell_px: int = 32, heat: bool = False, title: bool = False) -> PictureLayout:
    """The exact pixel layout `render_maze` uses for these options."""
    if isinstance(cell_px, bool) or not isinstance(cell_px, (int, np.integer)) or not 4 <= cell_px <= 256:
        raise InputError(f"cell_px={cell_px!r} for a maze picture; allowed: an int in 4..256")
    top = MARGIN_PX + (TITLE_PX if title else 0)
    width = 2 * MARGIN_PX + n_cols * cell_px + (COLORBAR_PX if heat else 0)
    height = top + n_rows * cell_px + MARGIN_PX
    return PictureLayout(n_rows, n_cols, int(cell_px), width, height, MARGIN_PX, top)


def _wall_segments(maze: Maze) -> np.ndarray:
    """(S, 2, 2) wall segments in (x, y) cell coordinates: every closed side, the border included."""
    R, C = maze.n_rows, maze.n_cols
    conn = np.asarray(maze.connections, dtype=bool)
    # horizontal walls on the lines y = 0 … R: closed between rows r-1 and r unless passage down from r-1
    h_closed = np.ones((R + 1, C), dtype=bool)
    h_closed[1:R] = ~conn[0, : R - 1]
    # vertical walls on the lines x = 0 … C
    v_closed = np.ones((R, C + 1), dtype=bool)
    v_closed[:, 1:C] = ~conn[1, :, : C - 1]
    hy, hx = np.nonzero(h_closed)
    vy, vx = np.nonzero(v_closed)
    horiz = np.stack([np.stack([hx, hy], -1), np.stack([hx + 1, hy], -1)], axis=1)
    vert = np.stack([np.stack([vx, vy], -1), np.stack([vx, vy + 1], -1)], axis=1)
    return np.concatenate([horiz, vert]).astype(float)


def render_maze(
    maze: Maze,
    heat: np.ndarray | None = None,
    title: str | None = None,
    cell_px: int = 32,
    heat_label: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = HEAT_CMAP,
) -> bytes:
    """PNG bytes of `maze`: walls, the path, origin (green) and target (red) squares.

    `heat` (n_rows, n_cols) colours every cell (NaN cells stay blank) and adds a colorbar
    (`heat_label`, `vmin`, `vmax`, `cmap` tune it). The image is `picture_layout(...)` sized.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    R, C = maze.n_rows, maze.n_cols
    if heat is not None:
        heat = np.asarray(heat, dtype=float)
        if heat.shape != (R, C):
            raise InputError(f"heat map has shape {heat.shape}; allowed: the maze's ({R}, {C}) cells")
    lay = picture_layout(R, C, cell_px, heat is not None, title is not None)
    W, H = lay.width, lay.height
    fig = Figure(figsize=(W / DPI, H / DPI), dpi=DPI, facecolor=BACKGROUND_COLOR)
    FigureCanvasAgg(fig)
    grid_w, grid_h = C * cell_px, R * cell_px
    ax = fig.add_axes((lay.left / W, (H - lay.top - grid_h) / H, grid_w / W, grid_h / H))
    ax.set_xlim(0, C)
    ax.set_ylim(R, 0)
    ax.set_axis_off()
    ax.set_facecolor(BACKGROUND_COLOR)
    px_to_pt = 72.0 / DPI
    if heat is not None:
        image = ax.imshow(np.ma.masked_invalid(heat), cmap=cmap, vmin=vmin, vmax=vmax, extent=(0, C, R, 0),
                          interpolation="nearest", aspect="auto", zorder=0)
        cax = fig.add_axes(((lay.left + grid_w + 10) / W, (H - lay.top - grid_h) / H, 12 / W, grid_h / H))
        bar = fig.colorbar(image, cax=cax)
        bar.ax.tick_params(labelsize=7)
        if heat_label:
            bar.set_label(heat_label, fontsize=8)
    wall_px = max(2.0, cell_px / 12)
    ax.add_collection(LineCollection(_wall_segments(maze), colors=WALL_COLOR, linewidths=wall_px * px_to_pt,
                                     capstyle="projecting", zorder=3))
    path = np.asarray(maze.path, dtype=float).reshape(-1, 2)
    if len(path) > 1:
        ax.plot(path[:, 1] + 0.5, path[:, 0] + 0.5, color=PATH_COLOR, linewidth=max(2.0, cell_px * 0.15) * px_to_pt,
                solid_capstyle="round", solid_joinstyle="round", zorder=2)
    for (r, c), color in ((maze.origin, ORIGIN_COLOR), (maze.target, TARGET_COLOR)):
        ax.add_patch(Rectangle((c + 0.22, r + 0.22), 0.56, 0.56, facecolor=color, edgecolor="none", zorder=4))
    if title is not None:
        fig.text(0.5, 1 - (MARGIN_PX / 2 + TITLE_PX / 2) / H, title, ha="center", va="center", fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor=BACKGROUND_COLOR)
    return buf.getvalue()


def save_maze_png(maze: Maze, path: str | os.PathLike, **options) -> Path:
    """Write `render_maze(maze, **options)` to `path` atomically; returns the path."""
    return atomic_write_bytes(path, render_maze(maze, **options))


def maze_repr_png(maze: Maze) -> bytes:
    """The notebook hook: ``Maze._repr_png_ = maze_repr_png`` (or a method returning ``render_maze(self)``)."""
    return render_maze(maze)
