"""The lens stage's outputs: summary.json, PNG curves / heat maps / belief maps, and report.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from searchprobe.io import atomic_write_bytes, atomic_write_json
from searchprobe.report import plots


def _fmt(values, digits: int = 3) -> list:
    return [None if v is None or not np.isfinite(v) else round(float(v), digits) for v in values]


def write_lens_outputs(out: Path, summary: dict[str, Any], readout, maze=None) -> Path:
    """Write every lens artefact into `out` (atomic files) and the report-contract report.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "summary.json", _json_safe(summary))
    labels = summary["labels"]
    x = list(range(len(labels)))
    lenses = [name for name in ("logit", "tuned") if name in summary]
    sections: list[dict[str, Any]] = []

    def save(name: str, png: bytes) -> str:
        atomic_write_bytes(out / name, png)
        return name

    # 1. curves at path positions, logit vs tuned
    figs = []
    for stat, ylabel, title in (("top1_acc", "top-1 accuracy", "Top-1 accuracy of the correct next token"),
                                ("kl_to_final", "KL(final ‖ layer), nats", "KL to the final layer"),
                                ("prob_correct", "p(correct)", "Probability of the correct next token"),
                                ("entropy", "entropy, nats", "Entropy of the readout")):
        series = {f"{lens} lens": summary[lens]["overall"][stat] for lens in lenses}
        figs.append({"path": save(f"curve_{stat}.png", plots.line_plot(
            x, series, title=f"{title} (all solution predictions)", xlabel="lens layer", ylabel=ylabel,
            xticklabels=labels)), "caption": f"{title}, by layer; logit lens and tuned lens side by side."})
    rows = []
    for s, label in enumerate(labels):
        row = [label]
        for lens in lenses:
            o = summary[lens]["overall"]
            row += _fmt([o["top1_acc"][s], o["kl_to_final"][s], o["entropy"][s]])
        rows.append(row)
    columns = ["layer"] + [f"{lens} {k}" for lens in lenses for k in ("top-1", "KL", "entropy")]
    logit_o = summary["logit"]["overall"]
    text = (f"{summary['n_predictions']} solution predictions from {summary['n_examples']} held-out examples "
            f"({summary['split']} split), read at {len(labels)} residual-stream states through the model's own "
            f"ln_final and unembedding.")
    sections.append({"heading": "Lens curves", "text": text, "figures": figs,
                     "tables": [{"caption": "Per lens layer, over all solution predictions", "columns": columns,
                                 "rows": rows}]})

    # 2. layer × role heat maps
    figs = []
    roles = summary["roles"]
    for lens in lenses:
        for stat, label, vmin, vmax in (("top1_acc", "top-1 accuracy", 0, 1), ("kl_to_final", "KL to final (nats)", 0, None)):
            values = np.array(summary[lens]["by_role"][stat], dtype=float)
            figs.append({"path": save(f"heat_{lens}_{stat}.png", plots.heatmap(
                values, row_labels=labels, col_labels=roles, title=f"{lens} lens: {label} by layer × position role",
                colorbar_label=label, vmin=vmin, vmax=vmax)),
                "caption": f"{lens} lens {label}; rows = lens layer, columns = role of the predicting token "
                           f"(counts: {', '.join(f'{r}={c}' for r, c in zip(roles, summary['role_counts']))})."})
    sections.append({"heading": "Layer × position role", "text": "Each cell averages the predictions made at "
                     "tokens of that role (path:k predicts step k+1; path_start predicts the origin).",
                     "figures": figs, "tables": []})

    # 3. emergence
    figs, rows = [], []
    hist = {f"{lens} (per prediction)": _share(summary[lens]["emergence"]["per_prediction_hist"]) for lens in lenses}
    hist.update({f"{lens} (per example, latest)": _share(summary[lens]["emergence"]["per_example_hist"]) for lens in lenses})
    figs.append({"path": save("emergence.png", plots.bar_chart(labels, hist, title="Emergence layer: first layer "
                                                                "from which the final answer stays top-1",
                                                                xlabel="lens layer", ylabel="share")),
                 "caption": "Share of predictions (and of examples, taking each example's latest-settling step) "
                            "whose final answer is top-1 from this layer on."})
    for s, label in enumerate(labels):
        rows.append([label] + [summary[lens]["emergence"]["per_prediction_hist"][s] for lens in lenses]
                    + [summary[lens]["emergence"]["per_example_hist"][s] for lens in lenses])
    em_cols = ["layer"] + [f"{lens} predictions" for lens in lenses] + [f"{lens} examples" for lens in lenses]
    sections.append({"heading": "Emergence layer", "text": "Mean emergence layer index (logit lens): "
                     f"{summary['logit']['emergence']['per_prediction_mean']:.2f} of {len(labels) - 1}.",
                     "figures": figs, "tables": [{"caption": "Emergence layer counts", "columns": em_cols, "rows": rows}]})

    # 4. candidate-solution view (mazes)
    if np.isfinite(np.asarray(logit_o["legal_mass"], dtype=float)).any():
        figs = []
        for lens in lenses:
            o = summary[lens]["overall"]
            layers = {"toward target (true next cell)": o["toward_mass"], "legal, away from target": o["away_mass"],
                      "illegal cells": o["illegal_mass"]}
            layers["other tokens"] = list(1 - np.nansum([np.asarray(v, dtype=float) for v in layers.values()], 0))
            figs.append({"path": save(f"candidates_{lens}.png", plots.stacked_area(
                x, layers, title=f"{lens} lens: where the next-cell mass goes", xlabel="lens layer",
                ylabel="probability mass", xticklabels=labels)),
                "caption": "Legal = open neighbours of the current cell; toward = the neighbour on the true path."})
        rows = [[label] + _fmt([logit_o["legal_mass"][s], logit_o["illegal_mass"][s], logit_o["toward_mass"][s],
                                logit_o["away_mass"][s]]) for s, label in enumerate(labels)]
        sections.append({"heading": "Candidate solutions", "text": "At each path step, how much of each layer's "
                         "readout goes to legal next cells vs illegal ones, and toward the target vs away.",
                         "figures": figs, "tables": [{"caption": "Logit lens mass by layer", "columns":
                                                      ["layer", "legal", "illegal", "toward", "away"], "rows": rows}]})

    # 5. beliefs drawn on the maze
    if maze is not None and readout.beliefs:
        sections.append(_belief_section(out, readout.beliefs, maze, save))

    key = _key_numbers(summary)
    report = {"stage": "lens", "title": "Logit lens and tuned lens", "summary": key, "sections": sections}
    atomic_write_json(out / "report.json", _json_safe(report))
    return out


def _belief_section(out: Path, beliefs: dict, maze, save) -> dict[str, Any]:
    from searchprobe.tasks.maze.pictures import render_maze

    labels = beliefs["labels"]
    step = decision_step(maze)
    figs = []
    for lens in ("logit", "tuned"):
        if lens not in beliefs:
            continue
        for s, label in enumerate(labels):
            heat = beliefs[lens][s, step]
            png = render_maze(maze, heat=heat, title=f"{lens}: {label}", vmin=0.0, vmax=1.0, cell_px=40,
                              heat_label="p(next = cell)")
            figs.append({"path": save(f"belief_{lens}_{s:02d}.png", png), "caption": f"{lens} {label}"})
    return {"heading": "Per-layer beliefs on the maze",
            "text": f"Example {beliefs['example']}: the distribution over the next cell when the model stands on "
                    f"path cell {step - 1} {tuple(int(x) for x in maze.path[step - 1])} (a junction where possible) and "
                    f"must name path cell {step} {tuple(int(x) for x in maze.path[step])}, drawn on the maze at every "
                    "lens layer. Green = origin, red = target, blue = true path.",
            "figures": figs, "tables": [], "layout": "grid"}


def decision_step(maze) -> int:
    """The path step j ≥ 1 whose current cell path[j-1] has the most open passages (earliest on ties)."""
    conn = np.asarray(maze.connections, dtype=bool)
    R, C = conn.shape[1:]

    def degree(r: int, c: int) -> int:
        return int((r + 1 < R and conn[0, r, c]) + (r > 0 and conn[0, r - 1, c])
                   + (c + 1 < C and conn[1, r, c]) + (c > 0 and conn[1, r, c - 1]))

    path = np.asarray(maze.path, dtype=int)
    if len(path) < 2:
        return 0
    degrees = [degree(*path[j - 1]) for j in range(1, len(path))]
    return 1 + int(np.argmax(degrees))


def _share(counts) -> list[float]:
    counts = np.asarray(counts, dtype=float)
    return list(counts / max(1.0, counts.sum()))


def _key_numbers(summary: dict[str, Any]) -> str:
    labels = summary["labels"]
    logit = summary["logit"]["path_positions"]
    parts = [f"Logit lens over {summary['n_predictions']} solution predictions ({summary['n_examples']} examples). "
             "Top-1 at path positions by layer: " + ", ".join(f"{l} {v:.2f}" for l, v in zip(labels, logit["top1_acc"])) + "."]
    parts.append("Mean emergence layer index: {:.2f}.".format(summary["logit"]["emergence"]["per_prediction_mean"]))
    if "tuned" in summary:
        tk = summary["tuned"]["overall"]["kl_to_final"]
        lk = summary["logit"]["overall"]["kl_to_final"]
        parts.append("KL to final (logit → tuned): " + ", ".join(
            f"{l} {a:.2f}→{b:.2f}" for l, a, b in zip(labels[:-1], lk[:-1], tk[:-1])) + ".")
    return " ".join(parts)


def _json_safe(obj):
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    return obj
