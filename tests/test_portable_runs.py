"""Portable run directories and the time-limit message (issue 21, items 3 and 8).

A run trained in one working directory, then copied or moved (with its dataset beside it, or
inside it as ``<run>/data``), works from any other working directory: `load_run`, `eval` and
`report` find the dataset through the path stored relative to the run directory. Runs of format
1 (paths relative to where training ran) still load; an unknown format is a one-line error.
Training stopped by its time limit says so; `--steps` on the command line lifts the TOML's limit.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_bad_input import TASK  # noqa: E402

from searchprobe import cli  # noqa: E402

TRAIN = ["--model", "nano", "--steps", "2", "--no-progress"]


def _main(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """``world/data`` (a 3x3 maze dataset) and ``world/run`` trained on it, with the working
    directory ``world`` and relative paths, as a user in a project folder would."""
    from searchprobe.tasks.maze.dataset import generate_from_toml

    root = tmp_path_factory.mktemp("portable") / "world"
    root.mkdir()
    (root / "task.toml").write_text(TASK)
    generate_from_toml(root / "task.toml", out=root / "data", overwrite=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        assert cli.main(["train", "--data", "data", *TRAIN, "--out", "run"]) == 0
    return root


def _config(run: Path) -> dict:
    return json.loads((run / "config.json").read_text())


def _write_config(run: Path, config: dict) -> None:
    (run / "config.json").write_text(json.dumps(config, indent=2))


def test_the_run_stores_its_dataset_relative_to_itself_and_a_format_version(world):
    from searchprobe.files import RUN_FORMAT

    config = _config(world / "run")
    assert config["format"] == RUN_FORMAT == "searchprobe-run/2"
    assert config["dataset"]["path"] == "../data"
    assert Path(config["dataset"]["absolute"]) == (world / "data").resolve()


def test_a_moved_run_with_its_dataset_works_from_any_directory(world, tmp_path, monkeypatch, capsys):
    from searchprobe.train.run import load_run

    project = tmp_path / "copy" / "project"
    shutil.copytree(world, project)
    moved = tmp_path / "moved"
    shutil.move(str(project), str(moved))  # the copy's training-time absolute path is gone too
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    run = load_run(moved / "run")
    assert run.dataset is not None and Path(run.dataset.path).resolve() == (moved / "data").resolve()
    assert len(run.data.split("test")) > 0

    code, out, err = _main(["eval", moved / "run", "--limit", "4"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert Path(result["dataset"]).resolve() == (moved / "data").resolve()
    assert "gone" not in err

    code, out, err = _main(["report", moved / "run", "--examples", "1"], capsys)
    assert code == 0, err
    assert "gone" not in out + err
    page = (moved / "run" / "report.html").read_text()
    assert str((moved / "data").resolve()) in page  # the overview names the dataset it found


def test_a_run_copied_without_its_dataset_falls_back_to_the_absolute_path(world, tmp_path, monkeypatch):
    from searchprobe.train.run import load_run

    shutil.copytree(world / "run", tmp_path / "lonely" / "run")
    monkeypatch.chdir(tmp_path)
    run = load_run(tmp_path / "lonely" / "run")
    assert run.dataset is not None and Path(run.dataset.path).resolve() == (world / "data").resolve()


def test_a_run_whose_dataset_is_gone_says_where_it_looked(world, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    shutil.copytree(world / "run", run)
    config = _config(run)
    config["dataset"]["absolute"] = str(tmp_path / "nowhere")
    _write_config(run, config)
    monkeypatch.chdir(tmp_path)
    code, _out, err = _main(["eval", run, "--limit", "4"], capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "is gone" in lines[0] and str(tmp_path.resolve() / "data") in lines[0]


def test_a_run_with_its_dataset_inside_works_after_a_move(world, tmp_path, monkeypatch, capsys):
    """A task TOML as --data generates the dataset into <run>/data; the run moves as one folder."""
    from searchprobe.train.run import load_run

    monkeypatch.chdir(tmp_path)
    shutil.copy(world / "task.toml", tmp_path / "task.toml")
    code, _out, err = _main(["train", "--data", "task.toml", *TRAIN, "--out", "inside"], capsys)
    assert code == 0, err
    assert _config(tmp_path / "inside")["dataset"]["path"] == "data"
    shutil.move(str(tmp_path / "inside"), str(tmp_path / "far" / "run"))
    monkeypatch.chdir(tmp_path / "far")
    run = load_run("run")
    assert run.dataset is not None and Path(run.dataset.path).resolve() == (tmp_path / "far" / "run" / "data").resolve()
    code, _out, err = _main(["eval", "run", "--limit", "4"], capsys)
    assert code == 0, err


def test_a_format_1_run_still_loads_relative_to_the_working_directory(world, tmp_path, monkeypatch):
    from searchprobe.train.run import load_run

    project = tmp_path / "project"
    shutil.copytree(world, project)
    config = _config(project / "run")
    config["format"] = "searchprobe-run/1"
    config["dataset"] = {k: v for k, v in config["dataset"].items() if k != "absolute"}
    config["dataset"]["path"] = "data"  # format 1: relative to where training ran
    _write_config(project / "run", config)
    monkeypatch.chdir(project)
    run = load_run("run")
    assert run.dataset is not None and Path(run.dataset.path).resolve() == (project / "data").resolve()
    monkeypatch.chdir(tmp_path)  # elsewhere, as before: no dataset (and --data still works)
    assert load_run(project / "run").dataset is None
    assert load_run(project / "run", data=project / "data").dataset is not None


@pytest.mark.parametrize("verb", [["eval"], ["report"], ["lens"], ["probe"]])
def test_an_unknown_run_format_is_a_one_line_error(world, tmp_path, monkeypatch, capsys, verb):
    from searchprobe.errors import DataError
    from searchprobe.train.run import load_run

    run = tmp_path / "run"
    shutil.copytree(world / "run", run)
    config = _config(run)
    config["format"] = "searchprobe-run/99"
    _write_config(run, config)
    monkeypatch.chdir(tmp_path)
    code, out, err = _main([*verb, run], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert "'searchprobe-run/99'" in err and "searchprobe-run/2" in err and "Traceback" not in err
    with pytest.raises(DataError, match="searchprobe-run/99"):
        load_run(run)


# --- the time limit (item 8) ---------------------------------------------------------------------
EXPERIMENT = """data = "{data}"
eval_examples = 4

[model]
preset = "nano"

[train]
steps = 50
batch_size = 8
warmup_steps = 1
eval_every = 50
checkpoint_every = 50
time_limit_s = 0.001
"""


def test_a_time_limit_that_stops_training_says_so(world, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp.toml").write_text(EXPERIMENT.format(data=world / "data"))
    code, out, err = _main(["train", "exp.toml", "--out", "cut", "--no-progress"], capsys)
    assert code == 0, err
    assert '"run": "cut"' in out
    finished = json.loads((tmp_path / "cut" / "finished.json").read_text())
    assert finished["stopped"] == "time_limit" and finished["steps"] == 50 and finished["time_limit_s"] == 0.001
    step = finished["step"]
    assert 1 <= step < 50
    assert f"warning: stopped at the time limit: {step}/50 steps; the cosine schedule was sized for 50" in err

    code, out, err = _main(["report", "cut", "--examples", "0"], capsys)
    assert code == 0, err
    assert f"stopped at the time limit: {step}/50 steps" in (tmp_path / "cut" / "report.html").read_text()


def test_steps_on_the_command_line_lifts_the_tomls_time_limit(world, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp.toml").write_text(EXPERIMENT.format(data=world / "data"))
    code, _out, err = _main(["train", "exp.toml", "--out", "full", "--steps", "3", "--no-progress"], capsys)
    assert code == 0, err
    finished = json.loads((tmp_path / "full" / "finished.json").read_text())
    assert finished == {**finished, "step": 3, "steps": 3, "stopped": "steps", "time_limit_s": None}
    assert "time limit" not in err
    # an explicit --time-limit keeps a limit
    code, _out, err = _main(["train", "exp.toml", "--out", "kept", "--steps", "40", "--time-limit", "0.001",
                             "--no-progress"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "kept" / "finished.json").read_text())["stopped"] == "time_limit"
    assert "stopped at the time limit" in err


def test_train_help_documents_that_steps_lifts_the_time_limit(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "lifts the TOML's train.time_limit_s" in text and "--set KEY=VALUE" in text


def test_the_readme_tour_train_line_parses_as_written():
    """The tour's `train` line (and any `--steps` in the README) is a valid command line."""
    import re
    import shlex

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    lines = [line.split("#")[0].strip() for line in readme.splitlines()
             if line.startswith("searchprobe train") or ("--steps" in line and line.startswith("searchprobe "))]
    assert any("experiments/maze-5x5-grid.toml" in line for line in lines)
    for line in lines:
        argv = shlex.split(line)[1:]
        parser = cli.build_verb_parser(argv[0])
        args = parser.parse_args(argv[1:])
        if argv[0] == "train" and args.experiment:
            from searchprobe.train.run import load_experiment

            load_experiment(Path(__file__).parent.parent / args.experiment, args.overrides)
        assert re.search(r"--steps \d+", line) is None or args.steps is not None
