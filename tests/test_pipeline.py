"""`searchprobe run`: experiment TOMLs chain the stages, skip what exists, note what is not installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from searchprobe import pipeline as pipeline_mod
from searchprobe.errors import ConfigError
from searchprobe.pipeline import load_pipeline, run_pipeline

TASK = """task = "maze"
rows = 3
cols = 3
generator = "dfs"
n = 120
seed = 5
traces = ["bfs"]
token_format = "aotp"
[endpoints]
min_path_len = 2
[splits]
train = 0.7
validation = 0.15
test = 0.15
"""


def _experiment(root: Path, extra: str = "") -> Path:
    (root / "task.toml").write_text(TASK)
    exp = root / "exp.toml"
    exp.write_text(f"""name = "t"
out = "{root / 'run'}"
[data]
task = "{root / 'task.toml'}"
[model]
preset = "nano"
[train]
steps = 2
batch_size = 16
warmup_steps = 1
eval_every = 2
eval_examples = 4
[lens]
limit = 12
tuned_examples = 20
tuned_steps = 3
{extra}""")
    return exp


def test_pipeline_runs_every_stage_then_skips_what_exists(tmp_path, monkeypatch):
    # probe: a module that does not exist yet → skipped with a note; patch: not in the TOML
    monkeypatch.setitem(pipeline_mod.ANALYSIS_STAGES, "probe",
                        ("probe", "searchprobe.no_such_probe_module", "run_probes", "probes/report.json"))
    exp = _experiment(tmp_path, "[probe]\nlayers = [0]\n")
    p = load_pipeline(exp)
    first = run_pipeline(p, progress=False)
    status = {o.stage: o.status for o in first.outcomes}
    assert status == {"generate": "ran", "train": "ran", "lens": "ran", "probe": "skipped (not installed)",
                      "patch": "skipped (not requested)", "report": "ran"}
    run = tmp_path / "run"
    assert (run / "data" / "config.json").is_file() and (run / "eval.json").is_file()
    assert json.loads((run / "lens" / "report.json").read_text())["stage"] == "lens"
    page = (run / "report.html").read_text()
    assert "Logit lens and tuned lens" in page
    assert "report:" in first.describe() and str((run / "report.html").resolve()) in first.describe()
    second = run_pipeline(p, progress=False)
    assert [o.status for o in second.outcomes][:4] == ["skipped (exists)"] * 3 + ["skipped (not installed)"]
    assert second.outcomes[-1].status == "skipped (exists)"
    forced = run_pipeline(p, progress=False, only=["lens", "report"], force=True)
    assert {o.stage: o.status for o in forced.outcomes if o.status == "ran"} == {"lens": "ran", "report": "ran"}


def test_stage_options_reach_the_entry_point(tmp_path, monkeypatch):
    seen = {}

    def fake_stage(run_dir, *, alpha=1, force=False):
        seen.update(run_dir=run_dir, alpha=alpha, force=force)
        return run_dir / "fake"

    import types

    module = types.ModuleType("searchprobe_fake_stage")
    module.run_fake = fake_stage
    monkeypatch.setitem(sys.modules, "searchprobe_fake_stage", module)
    monkeypatch.setitem(pipeline_mod.ANALYSIS_STAGES, "patch",
                        ("patch", "searchprobe_fake_stage", "run_fake", "patching/report.json"))
    exp = _experiment(tmp_path, "[patch]\nalpha = 7\n")
    p = load_pipeline(exp)
    outcome = pipeline_mod._analysis(p, "patch", force=True, progress=False)
    assert outcome.status == "ran" and seen == {"run_dir": p.run_dir, "alpha": 7, "force": True}
    exp.write_text(exp.read_text().replace("alpha = 7", "beta = 7"))
    with pytest.raises(ConfigError, match=r"unknown option\(s\) beta .*allowed: alpha, force"):
        pipeline_mod._analysis(load_pipeline(exp), "patch", force=False, progress=False)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t + "\n[bogus]\nx = 1\n", "unknown key"),
    (lambda t: t.replace("[data]\n", "[data]\npath = \"/nonexistent\"\n"), "exactly one of task"),
    (lambda t: t.replace("task.toml\"", "missing.toml\""), "does not exist"),
    (lambda t: t.replace("steps = 2", "steps = -2"), "train.steps"),
    (lambda t: t.replace("preset = \"nano\"", "preset = \"huge\""), "unknown model preset"),
])
def test_bad_experiments_are_one_line_errors(tmp_path, edit, message):
    exp = _experiment(tmp_path)
    exp.write_text(edit(exp.read_text()))
    with pytest.raises(ConfigError, match=message):
        load_pipeline(exp)
    proc = subprocess.run([sys.executable, "-m", "searchprobe", "run", str(exp)], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1


def test_unknown_stage_in_only(tmp_path):
    p = load_pipeline(_experiment(tmp_path))
    with pytest.raises(ConfigError, match="unknown stage"):
        run_pipeline(p, only=["lense"])


def test_demo_experiment_parses():
    root = Path(__file__).resolve().parent.parent
    p = load_pipeline(root / "experiments" / "demo.toml")
    from searchprobe.config import load_toml

    assert load_toml(root / p.data["task"])["task"] == "maze" and set(p.stages) == {"lens", "probe", "patch"}
    assert p.run_dir == Path("runs/demo")
