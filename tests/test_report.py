"""The HTML report: self-contained, renders what exists, lists what is missing, loads in a real browser."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from searchprobe.errors import DataError
from searchprobe.io import atomic_write_bytes, atomic_write_json
from searchprobe.report import build_report
from searchprobe.report.browser import check_in_browser, find_chromium
from searchprobe.report.plots import heatmap

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    sys.path.insert(0, str(Path(__file__).parent))
    from test_lens import make_tiny_run  # the same 3x3 dataset + 2-step nano model

    return make_tiny_run(tmp_path_factory.mktemp("report"))


def _images(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]*)"', page)


def _fake_stage(run_dir: Path, stage: str) -> None:
    """A stage report in the shared contract, as the probe / patching stages write them."""
    png = heatmap([[0.1, 0.9], [0.5, 0.4]], row_labels=["L0", "L1"], col_labels=["a", "b"], title="t",
                  colorbar_label="acc")
    atomic_write_bytes(run_dir / stage / "acc.png", png)
    atomic_write_json(run_dir / stage / "report.json", {
        "stage": stage, "title": f"{stage} results", "summary": f"{stage} summary with key number 0.987",
        "sections": [{"heading": "Accuracy by layer", "text": "probe text",
                      "figures": [{"path": "acc.png", "caption": "accuracy heat map"}],
                      "tables": [{"caption": "per layer", "columns": ["layer", "acc"], "rows": [["L0", 0.25], ["L1", 0.75]]}]}]})


def test_report_is_self_contained_and_renders_every_stage(tiny_run):
    _fake_stage(tiny_run, "probes")
    result = build_report(tiny_run, n_examples=2)
    page = result.html_path.read_text()
    images = _images(page)
    assert len(images) >= 2 + 1 + 1 + 1  # dataset pictures, training curve, eval bars, the probe figure
    for src in images:  # every image is an embedded PNG: the page opens offline
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG
    assert not re.search(r'(src|href)="(https?:|file:|//)', page)
    assert "probes results" in page and "key number 0.987" in page and "<td>0.75</td>" in page
    assert "Training" in result.sections and "Evaluation" in result.sections and "Dataset" in result.sections
    assert any("patching" in m for m in result.missing) and not any(m.startswith("probes") for m in result.missing)
    data = json.loads((result.assets_dir / "report_data.json").read_text())
    files = [f["path"] for s in data["sections"] for f in s["figures"]]
    assert files and all((result.assets_dir / f).read_bytes()[:8] == PNG for f in files)
    # the eval table carries the model's numbers and the random-walk baseline from eval.json
    metrics = json.loads((tiny_run / "eval.json").read_text())["metrics"]
    assert f"{metrics['random_walk/first_step']:.3f}" in page


def test_report_without_evaluation_renders_and_says_what_is_missing(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "eval.json").unlink()
    (run / "metrics.jsonl").unlink()
    shutil.rmtree(run / "probes", ignore_errors=True)
    proc = subprocess.run([sys.executable, "-m", "searchprobe", "report", str(run)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "note: missing evaluation" in proc.stdout and "note: missing training curves" in proc.stdout
    assert f"report: {run / 'report.html'}" in proc.stdout
    page = (run / "report.html").read_text()
    assert "Missing" in page and "searchprobe eval RUN_DIR" in page and "searchprobe lens RUN_DIR" in page


def test_report_without_model_is_a_one_line_error(tiny_run, tmp_path):
    run = tmp_path / "nomodel"
    run.mkdir()
    shutil.copy(tiny_run / "config.json", run / "config.json")
    with pytest.raises(DataError, match="model.safetensors is missing"):
        build_report(run)
    proc = subprocess.run([sys.executable, "-m", "searchprobe", "report", str(run)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert not (run / "report.html").exists()


def test_corrupt_stage_report_is_listed_not_fatal(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "patching").mkdir(exist_ok=True)
    (run / "patching" / "report.json").write_text("{not json")
    result = build_report(run, n_examples=0)
    assert any("patching" in m and "corrupt" in m for m in result.missing)


@pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_report_loads_in_headless_chromium(tiny_run, tmp_path):
    _fake_stage(tiny_run, "probes")
    result = build_report(tiny_run, n_examples=2)
    check = check_in_browser(result.html_path, screenshot=tmp_path / "page.png")
    assert check.ok, check
    assert check.images_total == len(_images(result.html_path.read_text())) and check.broken_images == []
    assert (tmp_path / "page.png").read_bytes()[:8] == PNG
    # the check is not vacuous: a broken image is caught
    bad = tmp_path / "bad.html"
    bad.write_text(result.html_path.read_text().replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1))
    broken = check_in_browser(bad)
    assert not broken.ok and broken.broken_images == [0]
