"""Small matplotlib figures as PNG bytes: line curves, layer × role heat maps, bar charts.

Drawn with matplotlib's object API on an Agg canvas (no pyplot, no global state), so they
are safe to make from any thread and never open a window.
"""

from __future__ import annotations

import io
from typing import Mapping, Sequence

import numpy as np

DPI = 100


def _figure(width_in: float, height_in: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def line_plot(
    x: Sequence,
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    xticklabels: Sequence[str] | None = None,
    logy: bool = False,
    ylim: tuple[float, float] | None = None,
) -> bytes:
    """One line per entry of `series` over `x` (NaNs leave gaps)."""
    fig = _figure(6.4, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    for name, ys in series.items():
        ax.plot(list(x), np.asarray(ys, dtype=float), marker="o" if len(x) <= 30 else None, markersize=3, label=name)
    if xticklabels is not None:
        ax.set_xticks(list(x))
        ax.set_xticklabels(list(xticklabels), rotation=45, ha="right", fontsize=8)
    if logy:
        ax.set_yscale("log")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    return _png(fig)


def heatmap(
    values: np.ndarray,
    *,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str,
    colorbar_label: str,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
    annotate: bool = True,
) -> bytes:
    """A (rows × cols) heat map with labelled axes; small grids get their numbers written in."""
    values = np.asarray(values, dtype=float)
    n_rows, n_cols = values.shape
    fig = _figure(max(4.0, 0.45 * n_cols + 2.0), max(2.5, 0.35 * n_rows + 1.5))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                      interpolation="nearest")
    ax.set_xticks(range(n_cols))
    ax.set_xticklabels(list(col_labels), rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n_rows))
    ax.set_yticklabels(list(row_labels), fontsize=7)
    if annotate and n_rows * n_cols <= 400:
        lo, hi = np.nanmin(values) if np.isfinite(values).any() else 0, np.nanmax(values) if np.isfinite(values).any() else 1
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                dark = (v - lo) / (hi - lo + 1e-12) < 0.6
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if dark else "black")
    bar = fig.colorbar(image, ax=ax)
    bar.set_label(colorbar_label, fontsize=8)
    ax.set_title(title, fontsize=10)
    return _png(fig)


def bar_chart(labels: Sequence[str], heights: Mapping[str, Sequence[float]], *, title: str, xlabel: str,
              ylabel: str) -> bytes:
    """Grouped bars: one group per label, one bar per entry of `heights`."""
    fig = _figure(6.0, 3.4)
    ax = fig.add_subplot(1, 1, 1)
    k = max(1, len(heights))
    width = 0.8 / k
    x = np.arange(len(labels))
    for i, (name, ys) in enumerate(heights.items()):
        ax.bar(x + (i - (k - 1) / 2) * width, np.asarray(ys, dtype=float), width=width, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(list(labels), rotation=45, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    if len(heights) > 1:
        ax.legend(fontsize=8)
    return _png(fig)


def stacked_area(x: Sequence, layers: Mapping[str, Sequence[float]], *, title: str, xlabel: str, ylabel: str,
                 xticklabels: Sequence[str] | None = None) -> bytes:
    """Stacked shares (e.g. probability mass split into legal/illegal/other) over `x`."""
    fig = _figure(6.4, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.stackplot(list(x), *[np.asarray(v, dtype=float) for v in layers.values()], labels=list(layers), alpha=0.85)
    if xticklabels is not None:
        ax.set_xticks(list(x))
        ax.set_xticklabels(list(xticklabels), rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _png(fig)
