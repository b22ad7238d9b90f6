"""Crash safety, concurrency, ownership, report security, resources and permissions (issue 20).

Killed `generate` leaves no temporaries (SIGTERM) or has them swept (kill -9; a live process's are
left alone); a torn metrics line does not break --resume; a training killed before its first
checkpoint can be rerun; two trainings into one directory cannot both write it; an unfinished
run is warned about by every later stage; the report embeds only real images inside the run and
escapes every string; `run --force` deletes only what searchprobe wrote; workers are capped at
the CPUs; Levin search honours --max-work; written files and folders follow the umask.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_bad_input import EXPERIMENT, TASK, hf_folder, snapshot  # noqa: E402

from searchprobe import cli  # noqa: E402

BIG_TASK = TASK.replace("rows = 3", "rows = 7").replace("cols = 3", "cols = 7").replace("n = 120", "n = 400000")


def _experiment_config(data: Path, steps: int = 2):
    from searchprobe.train.loop import TrainConfig
    from searchprobe.train.run import ExperimentConfig

    return ExperimentConfig(data=str(data), model={"preset": "nano", "n_layers": 2},
                            train=TrainConfig(steps=steps, batch_size=8, warmup_steps=1, eval_every=steps,
                                              checkpoint_every=1),
                            eval_examples=4)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from searchprobe.tasks.maze.dataset import generate_from_toml

    root = tmp_path_factory.mktemp("reliability")
    (root / "task.toml").write_text(TASK)
    return generate_from_toml(root / "task.toml", out=root / "data", overwrite=True)


@pytest.fixture(scope="module")
def finished_run(data, tmp_path_factory) -> Path:
    from searchprobe.train.run import train_run

    out = tmp_path_factory.mktemp("finished") / "run"
    train_run(_experiment_config(data), out, progress=False)
    return out


def _wait_for(predicate, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    start = time.monotonic()
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended early: {proc.returncode} {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() - start > timeout:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _temporaries(parent: Path, name: str) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.startswith(f".{name}.")]


# --- killed generate -----------------------------------------------------------------------------
def test_sigterm_during_generate_leaves_no_temporaries(tmp_path):
    (tmp_path / "task.toml").write_text(BIG_TASK)
    proc = subprocess.Popen([sys.executable, "-m", "searchprobe", "generate", "task.toml", "--out", "out", "--quiet",
                             "--workers", "2"], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: any((p / "train").is_dir() for p in _temporaries(tmp_path, "out")), proc=proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "error: terminated (SIGTERM)" and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["task.toml"]


def test_kill9_temporaries_are_swept_but_a_live_generates_are_not(tmp_path):
    (tmp_path / "task.toml").write_text(BIG_TASK)
    killed = subprocess.Popen([sys.executable, "-m", "searchprobe", "generate", "task.toml", "--out", "out", "--quiet",
                               "--workers", "1"], cwd=tmp_path, stderr=subprocess.DEVNULL)
    _wait_for(lambda: bool(_temporaries(tmp_path, "out")), proc=killed)
    killed.kill()
    killed.wait()
    stale = _temporaries(tmp_path, "out")
    assert len(stale) == 1 and stale[0].name.endswith(".tmp")  # kill -9 cannot clean up: the sweep must
    # a live concurrent generate of the same output: its temporary is not touched
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        from searchprobe.guard import temp_prefix

        live_tmp = tmp_path / (temp_prefix("out").replace(f".{os.getpid()}@", f".{live.pid}@") + "live.tmp")
        live_tmp.mkdir()
        (live_tmp / "half.arrow").write_bytes(b"x" * 10)
        small = tmp_path / "small.toml"
        small.write_text(TASK)
        assert cli.main(["generate", str(small), "--out", str(tmp_path / "out"), "--quiet"]) == 0
        assert not stale[0].exists() and live_tmp.is_dir() and (live_tmp / "half.arrow").read_bytes() == b"x" * 10
        assert (tmp_path / "out" / "config.json").is_file()
    finally:
        live.kill()
        live.wait()


# --- train: torn metrics, death before the first checkpoint, completion marker, locks -----------
def test_a_torn_last_metrics_line_does_not_break_resume(data, tmp_path):
    from searchprobe.files import read_metrics
    from searchprobe.train.run import train_run

    out = tmp_path / "run"
    cfg = _experiment_config(data, steps=4)
    train_run(cfg, out, progress=False, stop_after_step=2)
    with open(out / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 3, "loss": 1.2')  # killed mid-write
    train_run(cfg, out, resume=True, progress=False)
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert (out / "metrics.jsonl").read_text().endswith("\n")
    assert json.loads((out / "finished.json").read_text())["step"] == 4


def test_a_training_that_died_before_its_first_checkpoint_can_be_rerun(data, tmp_path, monkeypatch, capsys):
    import searchprobe.train.loop as loop
    from searchprobe.train.run import train_run

    out = tmp_path / "run"
    real = loop.train

    def dies(*args, **kwargs):
        raise MemoryError("out of memory")

    monkeypatch.setattr(loop, "train", dies)
    with pytest.raises(MemoryError):
        train_run(_experiment_config(data), out, progress=False)
    assert (out / "config.json").is_file() and not (out / "train_state").exists()
    assert not (out / ".searchprobe.lock").exists()
    monkeypatch.setattr(loop, "train", real)
    # both a plain rerun and --resume start over
    argv = ["train", "--data", str(data), "--model", "nano", "--steps", "2", "--out", str(out), "--no-progress"]
    assert cli.main(argv + ["--resume"]) == 0
    assert "starting from step 0" in capsys.readouterr().err
    assert (out / "finished.json").is_file()
    shutil.rmtree(out / "train_state")
    (out / "finished.json").unlink()
    assert cli.main(argv) == 0


def test_resuming_a_finished_run_keeps_its_evaluation(data, finished_run, tmp_path):
    from searchprobe.train.run import train_run

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = json.loads((run / "eval.json").read_text())["metrics"]
    train_run(_experiment_config(data), run, resume=True, progress=False)
    assert json.loads((run / "eval.json").read_text())["metrics"] == before != {}


def test_a_live_lock_stops_a_second_training_before_any_work(data, tmp_path, capsys):
    from searchprobe.guard import _host

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        out = tmp_path / "run"
        out.mkdir()
        (out / ".searchprobe.lock").write_text(f"{_host()}:{live.pid}\n")
        before = snapshot(tmp_path)
        assert cli.main(["train", "--data", str(data), "--model", "nano", "--steps", "2", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and f"is in use by process {live.pid}" in err and len(err.splitlines()) == 1
        assert snapshot(tmp_path) == before
    finally:
        live.kill()
        live.wait()


@pytest.mark.slow
def test_two_trainings_into_one_directory_cannot_both_write_it(data, tmp_path):
    out = tmp_path / "run"
    base = [sys.executable, "-m", "searchprobe", "train", "--data", str(data), "--model", "nano", "--out", str(out),
            "--no-progress"]
    first = subprocess.Popen(base + ["--steps", "100000", "--time-limit", "12"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (out / ".searchprobe.lock").is_file(), proc=first)
        second = subprocess.run(base + ["--steps", "3"], capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        assert second.stderr.strip().splitlines() == [second.stderr.strip()]
        assert "is in use by process" in second.stderr and str(first.pid) in second.stderr
        _, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    config = json.loads((out / "config.json").read_text())
    finished = json.loads((out / "finished.json").read_text())
    assert config["train"]["steps"] == 100000 and finished["stopped"] == "time_limit"
    assert json.loads((out / "eval.json").read_text())["step"] == finished["step"]
    assert not (out / ".searchprobe.lock").exists()


def test_a_lock_left_by_a_killed_process_is_reclaimed(data, tmp_path):
    from searchprobe.guard import _host
    from searchprobe.train.run import train_run

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "run"
    out.mkdir()
    (out / ".searchprobe.lock").write_text(f"{_host()}:{dead.pid}\n")
    train_run(_experiment_config(data), out, progress=False)
    assert (out / "finished.json").is_file() and not (out / ".searchprobe.lock").exists()


def test_an_unfinished_run_is_warned_about_by_every_later_stage(data, finished_run, tmp_path, capsys):
    from searchprobe.train.run import train_run

    run = tmp_path / "run"
    train_run(_experiment_config(data, steps=3), run, progress=False, stop_after_step=2)
    assert not (run / "finished.json").exists()
    commands = [["eval", str(run), "--limit", "4"],
                ["lens", str(run), "--no-tuned", "--limit", "8", "--no-progress"],
                ["probe", str(run), "--max-examples", "12", "--boot", "0", "--labels", "target_cell",
                 "--positions", "target", "--hooks", "blocks.0.hook_resid_pre"],
                ["patch", str(run), "--n", "2", "--sweeps", "resid", "--no-attribution"],
                ["report", str(run), "--examples", "0"]]
    for argv in commands:
        assert cli.main(argv) == 0, argv
        err = capsys.readouterr().err
        assert f"warning: run {run} is unfinished: its weights are from step 2 of 3" in err, (argv, err)
    assert "Unfinished" in (run / "report.html").read_text()
    assert cli.main(["report", str(finished_run), "--examples", "0"]) == 0  # a finished run: no warning
    assert "warning" not in capsys.readouterr().err


# --- ownership: delete only what searchprobe wrote ----------------------------------------------
def test_run_force_deletes_only_what_searchprobe_wrote(data, finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "notes.txt").write_text("mine")
    (run / "mystuff").mkdir()
    (run / "mystuff" / "x.bin").write_bytes(b"\x00\x01")
    (run / "lens").mkdir(exist_ok=True)
    (run / "lens" / "report.json").write_text("{}")  # a stale stage output of the old model
    exp = tmp_path / "exp.toml"
    exp.write_text(EXPERIMENT.format(data=data))
    assert cli.main(["run", str(exp), "--out", str(run), "--force", "--only", "train", "--no-progress"]) == 0
    assert (run / "notes.txt").read_text() == "mine" and (run / "mystuff" / "x.bin").read_bytes() == b"\x00\x01"
    assert not (run / "lens").exists() and (run / "finished.json").is_file()


def test_out_dot_force_in_a_working_directory_deletes_nothing(data, tmp_path, monkeypatch):
    work = tmp_path / "work"
    (work / "src").mkdir(parents=True)
    (work / "pyproject.toml").write_text("[project]\n")
    (work / "src" / "code.py").write_text("print(1)\n")
    exp = tmp_path / "exp.toml"
    exp.write_text(EXPERIMENT.format(data=data))
    monkeypatch.chdir(work)
    before = snapshot(work / "src")
    assert cli.main(["run", str(exp), "--out", ".", "--force", "--only", "train", "--no-progress"]) == 0
    assert snapshot(work / "src") == before and (work / "pyproject.toml").read_text() == "[project]\n"


def test_a_hugging_face_model_folder_is_never_touched(data, tmp_path, capsys):
    hf_folder("hf")(tmp_path)
    before = snapshot(tmp_path / "hf")
    exp = tmp_path / "exp.toml"
    exp.write_text(EXPERIMENT.format(data=data))
    for argv in (["run", str(exp), "--out", str(tmp_path / "hf"), "--only", "train"],
                 ["run", str(exp), "--out", str(tmp_path / "hf"), "--force"],
                 ["train", "--data", str(data), "--out", str(tmp_path / "hf")],
                 ["generate", str(tmp_path / "hf" / "x.toml"), "--out", str(tmp_path / "hf"), "--overwrite"]):
        if argv[0] == "generate":
            shutil.copy(exp.parent / "exp.toml", tmp_path / "x.toml")
            argv[1] = str(tmp_path / "x.toml")
            (tmp_path / "x.toml").write_text(TASK)
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
        assert snapshot(tmp_path / "hf") == before


def test_generate_overwrite_replaces_its_own_dataset(data, tmp_path):
    out = tmp_path / "data"
    shutil.copytree(data, out)
    (tmp_path / "task.toml").write_text(TASK.replace("seed = 3", "seed = 4"))
    assert cli.main(["generate", str(tmp_path / "task.toml"), "--out", str(out), "--overwrite", "--quiet"]) == 0
    assert json.loads((out / "config.json").read_text())["config"]["seed"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "task.toml"]


# --- the report: only real images inside the run, every string escaped ---------------------------
def test_report_embeds_only_real_images_inside_the_run(finished_run, tmp_path):
    from searchprobe.report import build_report
    from searchprobe.report.plots import heatmap

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    png = heatmap([[0.1, 0.9]], row_labels=["L0"], col_labels=["a", "b"], title="t", colorbar_label="x")
    outside = tmp_path / "secret.png"
    outside.write_bytes(png + b"SECRET-OUTSIDE")
    (tmp_path / "passwd").write_text("root:x:0:0:SECRET-TEXT\n")
    stage = run / "probes"
    stage.mkdir()
    (stage / "good.png").write_bytes(png)
    (stage / "link.png").symlink_to(outside)
    (stage / "evil.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    (stage / "fake.png").write_text("SECRET-NOT-AN-IMAGE")
    figures = [{"path": p, "caption": p} for p in
               ("good.png", str(outside), "../../secret.png", "link.png", "evil.svg", "fake.png", str(tmp_path / "passwd"))]
    (stage / "report.json").write_text(json.dumps({"title": "probes", "summary": "s", "sections": [
        {"heading": "h", "text": "t", "figures": figures, "tables": []}]}))
    result = build_report(run, n_examples=0)
    page = result.html_path.read_text()
    assets = b"".join(p.read_bytes() for p in result.assets_dir.iterdir())
    for secret in ("SECRET-OUTSIDE", "SECRET-TEXT", "SECRET-NOT-AN-IMAGE", "alert(1)"):
        assert secret not in page and secret.encode() not in assets
    import base64

    embedded = [base64.b64decode(src.split(",", 1)[1]) for src in __import__("re").findall(r'src="data:[^"]*"', page)
                for src in [src[5:-1]]]
    assert png in embedded
    assert any("figures left out" in m for m in result.missing)


def test_report_escapes_every_string_from_run_files(finished_run, tmp_path):
    from searchprobe.report import build_report

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    evil = '<script>alert("x")</script><img src=x onerror=alert(2)>'
    (run / "lens").mkdir(exist_ok=True)
    (run / "lens" / "report.json").write_text(json.dumps({
        "title": evil, "summary": evil, "sections": [{"heading": evil, "text": evil, "figures": [
            {"path": "nope.png", "caption": evil}], "tables": [{"caption": evil, "columns": [evil], "rows": [[evil]]}]}]}))
    config = json.loads((run / "config.json").read_text())
    config["dataset"]["name"] = evil
    config["code_version"] = evil
    (run / "config.json").write_text(json.dumps(config))
    page = build_report(run, n_examples=0).html_path.read_text()
    assert "<script>alert" not in page and "<img src=x" not in page and page.count("<script>") == 1
    assert "&lt;script&gt;alert(&quot;x&quot;)" in page


def test_report_notes_bad_optional_files_instead_of_failing(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "eval.json").write_text(json.dumps({"metrics": {"first_step": "high"}}))
    (run / "metrics.jsonl").write_text('{"loss": 1.0}\n')
    (run / "patching").mkdir()
    (run / "patching" / "report.json").write_text(json.dumps({"sections": 5}))
    assert cli.main(["report", str(run), "--examples", "0"]) == 0
    out = capsys.readouterr().out
    assert "metric 'first_step' must be a number" in out and "key 'step' is missing" in out
    assert "'sections' must be a list" in out


# --- resources ------------------------------------------------------------------------------------
def test_workers_are_capped_at_the_cpu_count(tmp_path, capsys):
    from searchprobe.guard import cpu_count

    (tmp_path / "task.toml").write_text(TASK)
    assert cli.main(["generate", str(tmp_path / "task.toml"), "--out", str(tmp_path / "out"), "--workers", "500",
                     "--quiet"]) == 0
    assert f"using {cpu_count()}" in capsys.readouterr().err


def test_levin_honours_max_work_with_a_huge_max_bits(capsys):
    start = time.perf_counter()
    assert cli.main(["search", "levin", "--target", "3", "--max-bits", "1000", "--max-work", "2000", "--json"]) == 0
    assert time.perf_counter() - start < 20
    out = json.loads(capsys.readouterr().out)
    assert out["work"] <= 2000


def test_a_full_disk_leaves_the_previous_file(tmp_path, monkeypatch):
    from searchprobe.errors import DataError
    from searchprobe.io import atomic_write_text

    path = atomic_write_text(tmp_path / "x.json", "old")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DataError, match="no space left"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


# --- permissions follow the umask -------------------------------------------------------------
@pytest.mark.parametrize("umask, dir_mode, file_mode", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)])
def test_datasets_and_checkpoints_follow_the_umask(umask, dir_mode, file_mode, tmp_path):
    from searchprobe.tasks.maze.dataset import generate_from_toml
    from searchprobe.train.run import train_run

    (tmp_path / "task.toml").write_text(TASK)
    old = os.umask(umask)
    try:
        data = generate_from_toml(tmp_path / "task.toml", out=tmp_path / "data")
        train_run(_experiment_config(data), tmp_path / "run", progress=False)
    finally:
        os.umask(old)
    for folder in (data, data / "train", tmp_path / "run", tmp_path / "run" / "train_state"):
        assert folder.stat().st_mode & 0o777 == dir_mode, folder
    for file in (data / "config.json", data / "train" / "data-00000-of-00001.arrow", tmp_path / "run" / "config.json",
                 tmp_path / "run" / "model.safetensors", tmp_path / "run" / "train_state" / "optimizer.safetensors",
                 tmp_path / "run" / "train_state" / "state.json"):
        assert file.stat().st_mode & 0o777 == file_mode, file
