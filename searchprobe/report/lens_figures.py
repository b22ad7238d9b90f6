"""The lens stage's outputs: summary.json, PNG curves / heat maps / belief pictures, and report.json.

Task-neutral: the candidate-solution section appears when the summary has candidate masses (a task's
`LensContext` view), the belief section when the task drew `LensPictures`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from searchprobe.io import atomic_write_bytes, atomic_write_json
from searchprobe.report import plots

if TYPE_CHECKING:  # pragma: no cover
    from searchprobe.tasks.base import LensPictures


def _fmt(values, digits: int = 3) -> list:
    return [None if v is None or not np.isfinite(v) else round(float(v), digits) for v in values]


def write_lens_outputs(out: Path, summary: dict[str, Any], beliefs: "LensPictures | None" = None) -> Path:
    """Write every lens artefact into `out` (atomic files) and the report-contract report.json.

    `summary` is `searchprobe.lens.summary.summarize`'s (plus the stage's keys); `beliefs` are the
    task's pictures of one example's per-layer beliefs (`LensContext.belief_pictures`).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "summary.json", summary)
    labels = summary["labels"]
    x = list(range(len(labels)))
    lenses = [name for name in ("logit", "tuned") if name in summary]
    sections: list[dict[str, Any]] = []

    def save(name: str, png: bytes) -> str:
        atomic_write_bytes(out / name, png)
        return name

    # 1. curves over all solution predictions, logit vs tuned
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
                     "tokens of that role (each token predicts the next solution token).",
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

    # 4. candidate-solution view (tasks with a LensContext that names legal next tokens)
    if np.isfinite(np.asarray(logit_o["legal_mass"], dtype=float)).any():
        meaning = summary.get("candidate_view") or "legal = the task's legal next tokens; toward = the correct one"
        figs = []
        for lens in lenses:
            o = summary[lens]["overall"]
            layers = {"toward (the correct next token)": o["toward_mass"], "legal, away": o["away_mass"],
                      "illegal candidates": o["illegal_mass"]}
            layers["other tokens"] = list(1 - np.nansum([np.asarray(v, dtype=float) for v in layers.values()], 0))
            figs.append({"path": save(f"candidates_{lens}.png", plots.stacked_area(
                x, layers, title=f"{lens} lens: where the next-token mass goes", xlabel="lens layer",
                ylabel="probability mass", xticklabels=labels)),
                "caption": meaning[:1].upper() + meaning[1:] + "."})
        rows = [[label] + _fmt([logit_o["legal_mass"][s], logit_o["illegal_mass"][s], logit_o["toward_mass"][s],
                                logit_o["away_mass"][s]]) for s, label in enumerate(labels)]
        sections.append({"heading": "Candidate solutions", "text": "At each solution step, how much of each "
                         "layer's readout goes to legal next tokens vs illegal candidates, and toward the correct "
                         f"token vs away ({meaning}).",
                         "figures": figs, "tables": [{"caption": "Logit lens mass by layer", "columns":
                                                      ["layer", "legal", "illegal", "toward", "away"], "rows": rows}]})

    # 5. beliefs drawn by the task
    if beliefs is not None and beliefs.figures:
        figs = [{"path": save(f"belief_{lens}_{s:02d}.png", png), "caption": caption}
                for lens, pictures in beliefs.figures.items() for s, (png, caption) in enumerate(pictures)]
        sections.append({"heading": beliefs.heading, "text": beliefs.text, "figures": figs, "tables": [],
                         "layout": "grid"})

    key = _key_numbers(summary)
    report = {"stage": "lens", "title": "Logit lens and tuned lens", "summary": key, "sections": sections}
    atomic_write_json(out / "report.json", report)
    return out


def _share(counts) -> list[float]:
    counts = np.asarray(counts, dtype=float)
    return list(counts / max(1.0, counts.sum()))


def _key_numbers(summary: dict[str, Any]) -> str:
    labels = summary["labels"]
    logit = summary["logit"]["solution_positions"]
    parts = [f"Logit lens over {summary['n_predictions']} solution predictions ({summary['n_examples']} examples). "
             "Top-1 at solution positions by layer: " + ", ".join(f"{l} {v:.2f}" for l, v in zip(labels, logit["top1_acc"])) + "."]
    parts.append("Mean emergence layer index: {:.2f}.".format(summary["logit"]["emergence"]["per_prediction_mean"]))
    if "tuned" in summary:
        tk = summary["tuned"]["overall"]["kl_to_final"]
        lk = summary["logit"]["overall"]["kl_to_final"]
        parts.append("KL to final (logit → tuned): " + ", ".join(
            f"{l} {a:.2f}→{b:.2f}" for l, a, b in zip(labels[:-1], lk[:-1], tk[:-1])) + ".")
    return " ".join(parts)
