"""`searchprobe report RUN_DIR`: one self-contained HTML page for everything a run directory holds.

The page embeds every image as a base64 data URI (it opens offline, and can be mailed as one
file); the PNGs and the JSON behind it are written beside it in ``<run_dir>/report/``. Stages
that have not run yet are listed as missing; only a run directory without a model is an error.
A small script in the page sets ``data-images-ok`` / ``data-images-broken`` on ``<body>`` once
every image has loaded, so a headless browser can check the page (`experiments/check_report_browser.py`).
"""

from __future__ import annotations

import base64
import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from searchprobe.errors import DataError, InputError, SearchprobeError
from searchprobe.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from searchprobe.report import plots
from searchprobe.tasks.base import task_of

#: analysis stages rendered from <run_dir>/<stage>/report.json, in this order.
STAGES: tuple[str, ...] = ("lens", "probes", "patching")
N_EXAMPLE_PICTURES = 4


@dataclass
class Section:
    """One block of the page: a heading, paragraphs, figures (PNG bytes or files) and tables."""

    heading: str
    text: str = ""
    figures: list[tuple[bytes, str]] = field(default_factory=list)  #: (png, caption)
    tables: list[dict[str, Any]] = field(default_factory=list)  #: {"caption", "columns", "rows"}
    grid: bool = False  #: lay figures out as a compact grid
    anchor: str = ""
    subsections: list["Section"] = field(default_factory=list)


@dataclass
class ReportResult:
    """What `build_report` wrote and what it could not show."""

    html_path: Path
    assets_dir: Path
    sections: list[str]
    missing: list[str]

    def __repr__(self) -> str:
        return f"ReportResult(html_path={str(self.html_path)!r}, sections={len(self.sections)}, missing={self.missing!r})"


def build_report(run_dir: str | Path, *, n_examples: int = N_EXAMPLE_PICTURES) -> ReportResult:
    """Render `run_dir` into run_dir/report.html (+ run_dir/report/ with PNGs and report_data.json)."""
    from searchprobe.files import read_run_config, warn_if_unfinished
    from searchprobe.guard import record_entries

    run_dir = Path(run_dir)
    if isinstance(n_examples, bool) or not isinstance(n_examples, int) or not 0 <= n_examples <= 64:
        raise InputError(f"examples = {n_examples!r}; allowed: an integer from 0 to 64 (example pictures)")
    config = read_run_config(run_dir)
    if not (run_dir / "model.safetensors").is_file():
        raise DataError(f"{run_dir} has no trained model (model.safetensors is missing); nothing to report")
    unfinished = warn_if_unfinished(run_dir, config)
    assets = run_dir / "report"
    missing: list[str] = []
    sections = [_overview(run_dir, config)]
    if unfinished:
        sections[0].text = f"Unfinished: {unfinished}."
    else:
        from searchprobe.files import read_finished, stopped_message

        stopped = stopped_message(read_finished(run_dir))
        if stopped:
            sections[0].text = f"Training {stopped}."
    for make in (_dataset_section, _training_section, _evaluation_section):
        section, note = make(run_dir, config, n_examples) if make is _dataset_section else make(run_dir, config)
        if section is not None:
            sections.append(section)
        if note:
            missing.append(note)
    for stage in STAGES:
        section, note = _stage_section(run_dir, stage)
        if section is not None:
            sections.append(section)
        if note:
            missing.append(note)
    if missing:
        sections.insert(1, Section("Missing", "This report shows what exists; these parts are not there yet:",
                                   tables=[{"caption": "", "columns": ["part", "how to make it"],
                                            "rows": [m.split(" — ", 1) if " — " in m else [m, ""] for m in missing]}],
                                   anchor="missing"))
    data = {"run_dir": str(run_dir), "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "sections": [], "missing": missing}
    for i, section in enumerate(sections):
        data["sections"].append(_section_data(section, assets, f"{i:02d}"))
    atomic_write_json(assets / "report_data.json", data)
    page = render_html(f"searchprobe report: {run_dir.name}", sections, subtitle=str(run_dir.resolve()))
    html_path = atomic_write_text(run_dir / "report.html", page)
    record_entries(run_dir, "report", "report.html")
    return ReportResult(html_path, assets, [s.heading for s in sections], missing)


def _section_data(section: Section, assets: Path, prefix: str) -> dict[str, Any]:
    """JSON for one section; its figures are written to `assets` as PNGs (sub-sections recurse)."""
    files = []
    for j, (png, caption) in enumerate(section.figures):
        name = f"{prefix}_{_slug(section.heading)}_{j:02d}.png"
        atomic_write_bytes(assets / name, png)
        files.append({"path": name, "caption": caption})
    return {"heading": section.heading, "text": section.text, "figures": files, "tables": section.tables,
            "subsections": [_section_data(sub, assets, f"{prefix}-{k:02d}") for k, sub in enumerate(section.subsections)]}


# --- sections ----------------------------------------------------------------------------------
def _overview(run_dir: Path, config: dict[str, Any]) -> Section:
    from searchprobe.files import run_dataset_path

    model = config.get("model", {})
    ds = config.get("dataset", {})
    rows = [["task", config.get("task")], ["dataset", ds.get("name")], ["dataset path", str(run_dataset_path(run_dir, config))],
            ["dataset fingerprint", ds.get("fingerprint")],
            ["model", f"{model.get('n_layers')} layers, d_model {model.get('d_model')}, {model.get('n_heads')} heads, "
                      f"{config.get('n_params', 0) if _number(config.get('n_params', 0)) else 0:,} parameters"],
            ["vocabulary", f"{len(config.get('vocab', []))} tokens"], ["code version", config.get("code_version")]]
    return Section("Run", "", tables=[{"caption": "", "columns": ["", ""], "rows": rows}], anchor="run")


def _dataset_section(run_dir: Path, config: dict[str, Any], n_examples: int) -> tuple[Section | None, str]:
    from searchprobe.files import run_dataset_path

    ds_path = run_dataset_path(run_dir, config)  # relative to the run directory (format 2), so a moved run finds it
    try:
        from searchprobe.tasks.store import read_dataset

        stored = read_dataset(ds_path)
    except Exception:  # the dataset may be deleted or moved; the report still renders the rest
        return None, f"dataset ({ds_path}) — it is gone; regenerate it to show example pictures"
    counts = {name: len(split) for name, split in stored.splits.items()}
    task_cfg = stored.config.get("config", {})
    rows = [[k, json.dumps(v) if isinstance(v, (dict, list)) else v] for k, v in task_cfg.items()]
    text = f"{stored.config.get('name')}: " + ", ".join(f"{n} {k}" for k, n in counts.items()) + " examples."
    split = "test" if "test" in stored.splits else next(iter(stored.splits))
    try:
        figures = task_of(stored.config, f"{ds_path}/config.json").pictures(stored, split, n_examples)
    except SearchprobeError as exc:  # an unknown task still gets the rest of its report
        return None, f"dataset ({ds_path}) — {exc}"
    return Section("Dataset", text, figures, [{"caption": "task config", "columns": ["key", "value"], "rows": rows}],
                   grid=True, anchor="dataset"), ""


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl records (a torn last line from a live run is skipped; see `searchprobe.files`)."""
    from searchprobe.files import read_metrics as read

    return read(path)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _training_section(run_dir: Path, config: dict[str, Any]) -> tuple[Section | None, str]:
    path = run_dir / "metrics.jsonl"
    try:
        records = read_metrics(path) if path.is_file() else []
    except DataError as exc:
        return None, f"training curves ({exc}) — retrain, or repair the file"
    if not records:
        return None, "training curves (metrics.jsonl) — train the model with `searchprobe train`"
    records = [r for r in records if _number(r.get("loss", 0.0)) and all(_number(v) or v is None for k, v in r.items()
                                                                          if k.startswith("eval/"))]
    if not records:
        return None, f"training curves ({path} holds no numeric records) — retrain, or repair the file"
    steps = [r["step"] for r in records if "loss" in r]
    losses = [r["loss"] for r in records if "loss" in r]
    figures = [(plots.line_plot(steps, {"train loss": losses}, title="Training loss (solution tokens)", xlabel="step",
                                ylabel="cross-entropy", logy=True), "training loss per step")]
    evals = [r for r in records if any(k.startswith("eval/") for k in r)]
    if evals:
        keys = sorted({k for r in evals for k in r if k.startswith("eval/") and "random_walk" not in k and k != "eval/n"})
        series = {k[5:]: [r.get(k, float("nan")) for r in evals] for k in keys}
        figures.append((plots.line_plot([r["step"] for r in evals], series, title="Held-out rollout metrics",
                                        xlabel="step", ylabel="fraction", ylim=(0, 1.02)), "evaluation during training"))
    last = records[-1]
    tokens = last.get("tokens_seen", 0) if _number(last.get("tokens_seen", 0)) else 0
    seconds = last.get("elapsed_s", 0) if _number(last.get("elapsed_s", 0)) else 0
    text = (f"{last['step']} steps, {tokens:,} tokens, {seconds:.0f} s; "
            f"final loss {losses[-1]:.4f}." if losses else "")
    return Section("Training", text, figures, anchor="training"), ""


def _evaluation_section(run_dir: Path, config: dict[str, Any]) -> tuple[Section | None, str]:
    files = [p for p in [run_dir / "eval.json", *sorted(run_dir.glob("eval-*.json"))] if p.is_file()]
    if not files:
        return None, "evaluation (eval.json) — run `searchprobe eval RUN_DIR`"
    from searchprobe.files import read_eval

    tables, figures = [], []
    notes = []
    for path in files:
        try:
            data = read_eval(path)
        except DataError as exc:
            notes.append(f"evaluation ({exc}) — rerun `searchprobe eval RUN_DIR`")
            continue
        metrics = data.get("metrics", {})
        names = [k for k in metrics if not k.startswith("random_walk/") and k != "n"]
        rows = [[k, _num(metrics[k]), _num(metrics.get(f"random_walk/{k}"))] for k in names]
        tables.append({"caption": f"{path.name}: split {data.get('split')}, n = {metrics.get('n')}",
                       "columns": ["metric", "model", "random-walk baseline"], "rows": rows})
        if names and any(f"random_walk/{k}" in metrics for k in names):
            figures.append((plots.bar_chart(names, {"model": [metrics[k] for k in names],
                                                    "random walk": [metrics.get(f"random_walk/{k}", np.nan) for k in names]},
                                            title=f"{path.name}: model vs random-walk baseline", xlabel="",
                                            ylabel="fraction"), f"{path.name}"))
    if not tables:
        return None, "; ".join(notes)
    return Section("Evaluation", "Greedy rollouts on held-out examples, next to a random walk that never "
                   "steps back unless it must.", figures, tables, anchor="evaluation"), "; ".join(notes)


def _stage_section(run_dir: Path, stage: str) -> tuple[Section | None, str]:
    path = run_dir / stage / "report.json"
    how = {"lens": "`searchprobe lens RUN_DIR`", "probes": "`searchprobe probe RUN_DIR`",
           "patching": "`searchprobe patch RUN_DIR`"}.get(stage, "its stage")
    if not path.is_file():
        return None, f"{stage} (no {stage}/report.json) — run {how}"
    from searchprobe.files import read_stage_report

    try:
        report = read_stage_report(path)
    except DataError as exc:
        return None, f"{stage} ({path} is corrupt: {exc}) — rerun {how} with --force"
    section = Section(report.get("title") or stage, report.get("summary") or "", anchor=stage)
    refused = []
    for sub in report.get("sections") or []:
        figs = []
        for fig in sub.get("figures") or []:
            image, why = _stage_image(run_dir, path.parent, fig["path"])
            if image is not None:
                figs.append((image, fig.get("caption") or ""))
            elif why:
                refused.append(f"{fig['path']!r} ({why})")
        section.subsections.append(Section(sub.get("heading") or "", sub.get("text") or "", figs, sub.get("tables") or [],
                                           grid=sub.get("layout") == "grid" or len(figs) > 4))
    note = f"{stage} figures left out: {', '.join(refused[:3])} — only images inside the run are embedded" if refused else ""
    return section, note


#: Image formats the report embeds, by their first bytes (no SVG: it can carry scripts).
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
          (b"GIF89a", "image/gif"))


def _image_type(data: bytes) -> str | None:
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    return None


def _stage_image(run_dir: Path, stage_dir: Path, name: str) -> tuple[bytes | None, str]:
    """The bytes of a stage's figure, only if it is a real image file inside the run (after
    resolving symbolic links); otherwise None and why ("" when the file is simply not there)."""
    candidate = stage_dir / name
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None, ""
    root = run_dir.resolve()
    if resolved != root and root not in resolved.parents:
        return None, "outside the run directory"
    if not resolved.is_file():
        return None, "not a file"
    if resolved.stat().st_size > 64 << 20:
        return None, "larger than 64 MiB"
    data = resolved.read_bytes()
    if _image_type(data) is None:
        return None, "not a PNG, JPEG or GIF image"
    return data, ""


def _num(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:40] or "section"


# --- HTML --------------------------------------------------------------------------------------
_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#1a1a1a;background:#fafafa}
header{background:#23395d;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;font-size:13px;opacity:.8}nav{padding:8px 28px;background:#e9eef5;font-size:13px}
nav a{margin-right:14px;color:#23395d}main{padding:8px 28px 40px;max-width:1250px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px 18px;margin:16px 0}
h2{font-size:18px;margin:4px 0 8px}h3{font-size:15px;margin:14px 0 6px;color:#23395d}
p{font-size:14px;line-height:1.45}figure{display:inline-block;margin:6px 10px 6px 0;vertical-align:top}
figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:12px;color:#555;max-width:640px}
.grid figure{max-width:260px}.grid figure img{max-width:250px}
table{border-collapse:collapse;font-size:12px;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f0f3f7}td:first-child{text-align:left}caption{caption-side:top;text-align:left;font-size:12px;color:#555;padding:3px 0}
.missing td{text-align:left}
"""

_CHECK_SCRIPT = """
(function(){function check(){var imgs=document.images,ok=0,bad=[];
for(var i=0;i<imgs.length;i++){if(imgs[i].complete&&imgs[i].naturalWidth>0){ok++}else{bad.push(i)}}
document.body.setAttribute('data-images-total',imgs.length);document.body.setAttribute('data-images-ok',ok);
document.body.setAttribute('data-images-broken',bad.join(','));document.body.setAttribute('data-check-done','1');}
if(document.readyState==='complete'){check()}else{window.addEventListener('load',check)}})();
"""


def _data_uri(png: bytes) -> str:
    return f"data:{_image_type(png) or 'image/png'};base64," + base64.b64encode(png).decode("ascii")


def _table_html(table: dict[str, Any]) -> str:
    e = html.escape
    cols = table.get("columns", [])
    head = "".join(f"<th>{e(str(c))}</th>" for c in cols) if any(str(c) for c in cols) else ""
    body = "".join("<tr>" + "".join(f"<td>{e(_cell(v))}</td>" for v in row) + "</tr>" for row in table.get("rows", []))
    caption = f"<caption>{e(str(table.get('caption', '')))}</caption>" if table.get("caption") else ""
    return f"<table>{caption}{'<tr>' + head + '</tr>' if head else ''}{body}</table>"


def _cell(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return "–" if not np.isfinite(v) else f"{v:.4g}"
    return str(v)


def _figures_html(figures: list[tuple[bytes, str]], grid: bool) -> str:
    e = html.escape
    items = "".join(f'<figure><img src="{_data_uri(png)}" alt="{e(caption)}"><figcaption>{e(caption)}</figcaption></figure>'
                    for png, caption in figures)
    return f'<div class="{"grid" if grid else "figs"}">{items}</div>' if items else ""


def _section_html(section: Section, level: int = 2) -> str:
    e = html.escape
    parts = [f'<h{level}>{e(section.heading)}</h{level}>']
    if section.text:
        parts.append(f"<p>{e(section.text)}</p>")
    parts.append(_figures_html(section.figures, section.grid))
    parts.extend(_table_html(t) for t in section.tables)
    for sub in section.subsections:
        parts.append(_section_html(sub, level=3))
    return "".join(parts)


def render_html(title: str, sections: list[Section], subtitle: str = "") -> str:
    """The whole page as one string: CSS inline, images as data URIs, no external resources."""
    e = html.escape
    nav = "".join(f'<a href="#{s.anchor or _slug(s.heading)}">{e(s.heading)}</a>' for s in sections)
    body = "".join(f'<section id="{s.anchor or _slug(s.heading)}" class="{"missing" if s.anchor == "missing" else ""}">'
                   f"{_section_html(s)}</section>" for s in sections)
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(title)}</title>"
            f"<style>{_CSS}</style></head><body><header><h1>{e(title)}</h1><p>{e(subtitle)}</p></header>"
            f"<nav>{nav}</nav><main>{body}</main><script>{_CHECK_SCRIPT}</script></body></html>\n")
