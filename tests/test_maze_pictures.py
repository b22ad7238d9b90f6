"""Maze pictures: the PNG decodes, has the layout's size, and shows each thing where the layout says."""

from __future__ import annotations

import io

import matplotlib.colors as mcolors
import matplotlib.image as mimage
import numpy as np
import pytest
from matplotlib import colormaps

from searchprobe.errors import InputError
from searchprobe.tasks.maze.pictures import (
    BACKGROUND_COLOR,
    ORIGIN_COLOR,
    PATH_COLOR,
    TARGET_COLOR,
    WALL_COLOR,
    maze_repr_png,
    picture_layout,
    render_maze,
    save_maze_png,
)
from test_maze_tokens import make_batch


def decode(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return mimage.imread(io.BytesIO(png), format="png")[..., :3]


def rgb(color: str) -> np.ndarray:
    return np.array(mcolors.to_rgb(color))


def dark(pixel: np.ndarray) -> bool:
    """A wall pixel: near WALL_COLOR, allowing for antialiasing of a 2-px line on a pixel boundary."""
    return bool(pixel.max() <= rgb(WALL_COLOR).max() + 0.25)


def close_to(pixel: np.ndarray, color: str | np.ndarray, tol: float = 0.03) -> bool:
    want = rgb(color) if isinstance(color, str) else color
    return bool(np.abs(pixel - want).max() <= tol)


@pytest.mark.parametrize("shape,cell_px,title", [((5, 5), 32, None), ((4, 7), 20, "a 4x7 maze")])
def test_picture_shows_origin_target_path_and_walls(shape, cell_px, title):
    maze = make_batch(3, *shape, seed=21, extra_edges=2)[1]
    img = decode(render_maze(maze, title=title, cell_px=cell_px))
    lay = picture_layout(*shape, cell_px=cell_px, title=title is not None)
    assert img.shape[:2] == (lay.height, lay.width)
    x, y = lay.centre(*maze.origin)
    assert close_to(img[y, x], ORIGIN_COLOR)
    x, y = lay.centre(*maze.target)
    assert close_to(img[y, x], TARGET_COLOR)
    for r, c in maze.path[1:-1]:
        x, y = lay.centre(int(r), int(c))
        assert close_to(img[y, x], PATH_COLOR)
    off_path = {(r, c) for r in range(shape[0]) for c in range(shape[1])} - {tuple(map(int, p)) for p in maze.path}
    for r, c in off_path:
        x, y = lay.centre(r, c)
        assert close_to(img[y, x], BACKGROUND_COLOR)
    # walls: the midpoint of every cell's right side is dark iff the passage is closed
    for r in range(shape[0]):
        for c in range(shape[1] - 1):
            x, y = lay.point(r + 0.5, c + 1)
            if (r, c) in off_path and (r, c + 1) in off_path:
                if maze.connections[1, r, c]:
                    assert close_to(img[y, x], BACKGROUND_COLOR)
                else:
                    assert dark(img[y, x])
    x, y = lay.point(0, 0.5)  # the border is a wall
    assert close_to(img[y, x], WALL_COLOR, tol=0.1)


def test_heat_map_colours_each_cell_and_adds_a_colorbar():
    maze = make_batch(1, 4, 6, seed=22)[0]
    heat = np.arange(24, dtype=float).reshape(4, 6)
    heat[0, 0] = np.nan
    img = decode(render_maze(maze, heat=heat, heat_label="probe p"))
    lay = picture_layout(4, 6, heat=True)
    plain = picture_layout(4, 6)
    assert img.shape[:2] == (lay.height, lay.width) and lay.width > plain.width
    cmap = colormaps["viridis"]
    lo, hi = np.nanmin(heat), np.nanmax(heat)
    for r in range(4):
        for c in range(6):
            x, y = lay.point(r + 0.12, c + 0.12)  # a corner of the cell, away from path and markers
            want = rgb(BACKGROUND_COLOR) if np.isnan(heat[r, c]) else np.array(cmap((heat[r, c] - lo) / (hi - lo))[:3])
            assert close_to(img[y, x], want, tol=0.04), (r, c)


def test_save_and_notebook_hook(tmp_path):
    maze = make_batch(1, 3, 3, seed=23)[0]
    out = save_maze_png(maze, tmp_path / "sub" / "m.png", title="t")
    assert out.read_bytes() == render_maze(maze, title="t")
    assert not list((tmp_path / "sub").glob(".*tmp"))
    assert maze_repr_png(maze) == render_maze(maze)


def test_bad_options():
    maze = make_batch(1, 3, 3, seed=24)[0]
    with pytest.raises(InputError, match=r"heat map has shape \(4, 3\)"):
        render_maze(maze, heat=np.zeros((4, 3)))
    with pytest.raises(InputError, match="cell_px=2"):
        render_maze(maze, cell_px=2)
