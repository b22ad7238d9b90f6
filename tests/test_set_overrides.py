"""``--set key.sub=value`` on every verb that takes a TOML (issue 21, item 6).

Overrides are applied to the parsed TOML before it is checked, so a bad one is refused exactly as
a bad key in the file would be: one ``error:`` line naming the allowed keys, exit 2, before any
work (nothing is written).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_bad_input import EXPERIMENT, TASK  # noqa: E402

from searchprobe import cli  # noqa: E402
from searchprobe.config import apply_overrides, parse_override  # noqa: E402
from searchprobe.errors import ConfigError  # noqa: E402

TRAIN_EXPERIMENT = """data = "{data}"
eval_examples = 4

[model]
preset = "nano"

[train]
steps = 2
batch_size = 8
warmup_steps = 1
eval_every = 2
"""


def _main(argv: list, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code: int, err: str) -> str:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("text, keys, value", [
    ("train.lr=3e-4", ["train", "lr"], 3e-4),
    ("n=500", ["n"], 500),
    ('train.precision="bf16"', ["train", "precision"], "bf16"),
    ("train.precision=bf16", ["train", "precision"], "bf16"),
    ("data=runs/data/maze5", ["data"], "runs/data/maze5"),
    ("flag=true", ["flag"], True),
    ("traces=[\"bfs\", \"dfs\"]", ["traces"], ["bfs", "dfs"]),
    ("name=2024-01-01", ["name"], "2024-01-01"),  # text, not a TOML date
    ("x = 1", ["x"], 1),
    ("s=1\nother = 2", ["s"], "1\nother = 2"),  # one value only
])
def test_values_are_toml_literals_or_plain_strings(text, keys, value):
    assert parse_override(text) == (keys, value)


@pytest.mark.parametrize("text", ["train.lr", "=3", "train..lr=1", "a b=1", ".x=1"])
def test_malformed_overrides_are_refused(text):
    with pytest.raises(ConfigError, match="--set"):
        parse_override(text)


def test_overrides_create_tables_and_refuse_to_descend_into_a_value():
    data = {"n": 5, "train": {"lr": 1.0}}
    assert apply_overrides(data, ["train.lr=2", "model.preset=nano"]) == {
        "n": 5, "train": {"lr": 2}, "model": {"preset": "nano"}}
    assert data == {"n": 5, "train": {"lr": 1.0}}  # the parsed file is not changed
    with pytest.raises(ConfigError, match="n is not a table"):
        apply_overrides(data, ["n.x=1"])


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    from searchprobe.tasks.maze.dataset import generate_from_toml

    root = tmp_path_factory.mktemp("overrides")
    (root / "task.toml").write_text(TASK)
    generate_from_toml(root / "task.toml", out=root / "data", overwrite=True)
    (root / "train.toml").write_text(TRAIN_EXPERIMENT.format(data=root / "data"))
    (root / "run.toml").write_text(EXPERIMENT.format(data=root / "data"))
    return root


# --- generate -------------------------------------------------------------------------------------
def test_generate_applies_good_overrides(world, tmp_path, capsys):
    out = tmp_path / "d"
    code, _out, err = _main(["generate", world / "task.toml", "--out", out, "--quiet", "--set", "n=60",
                             "--set", "seed=5", "--set", "token_format=grid", "--set", "endpoints.min_path_len=3"], capsys)
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())["config"]
    assert (config["n"], config["seed"], config["token_format"]) == (60, 5, "grid")
    assert config["endpoints"]["min_path_len"] == 3


@pytest.mark.parametrize("override, words", [
    ("rowz=3", ["unknown key 'rowz'", "allowed keys", "rows"]),
    ("endpoints.min_path_lenx=1", ["unknown key 'min_path_lenx'", "allowed keys"]),
    ("rows=many", ["'rows'", "integer"]),
    ("rows", ["KEY=VALUE"]),
])
def test_generate_refuses_bad_overrides_before_any_work(world, tmp_path, capsys, override, words):
    out = tmp_path / "d"
    code, _out, err = _main(["generate", world / "task.toml", "--out", out, "--quiet", "--set", override], capsys)
    line = _one_line_error(code, err)
    assert all(w in line for w in words), line
    assert not out.exists() and list(tmp_path.iterdir()) == []


# --- train ----------------------------------------------------------------------------------------
def test_train_applies_good_overrides(world, tmp_path, capsys):
    out = tmp_path / "r"
    code, _out, err = _main(["train", world / "train.toml", "--out", out, "--no-progress", "--set", "train.lr=3e-4",
                             "--set", "train.seed=7", "--set", 'model.preset="nano"', "--set", "train.precision=bf16"],
                            capsys)
    assert code == 0, err
    train = json.loads((out / "config.json").read_text())["train"]
    assert (train["lr"], train["seed"], train["precision"]) == (3e-4, 7, "bf16")


def test_train_without_a_toml_takes_overrides_too(world, tmp_path, capsys):
    out = tmp_path / "r"
    code, _out, err = _main(["train", "--data", world / "data", "--model", "nano", "--steps", "1", "--out", out,
                             "--no-progress", "--set", "eval_examples=4", "--set", "train.batch_size=8"], capsys)
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["batch_size"] == 8 and config["experiment"]["eval_examples"] == 4


@pytest.mark.parametrize("override, words", [
    ("train.lrr=1", ["unknown key 'lrr'", "allowed keys", "lr"]),
    ("bogus=1", ["unknown key 'bogus'", "allowed keys", "eval_examples"]),
    ("train.lr=-1", ["train.lr must be > 0"]),
    ("train.precision=fp8", ["'fp8' is not allowed", "'bf16'"]),
    ("model.n_layerz=2", ["unknown key 'n_layerz'", "allowed keys"]),
    ("eval_examples.x=1", ["eval_examples is not a table"]),
])
def test_train_refuses_bad_overrides_before_any_work(world, tmp_path, capsys, override, words):
    out = tmp_path / "r"
    code, _out, err = _main(["train", world / "train.toml", "--out", out, "--no-progress", "--set", override], capsys)
    line = _one_line_error(code, err)
    assert all(w in line for w in words), line
    assert not out.exists()


# --- run ------------------------------------------------------------------------------------------
def test_run_applies_good_overrides(world, tmp_path, capsys):
    out = tmp_path / "p"
    code, _out, err = _main(["run", world / "run.toml", "--out", out, "--only", "train", "--no-progress",
                             "--set", "train.lr=3e-4", "--set", "train.eval_examples=3"], capsys)
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["lr"] == 3e-4 and config["experiment"]["eval_examples"] == 3


@pytest.mark.parametrize("override, words", [
    ("train.lrr=1", ["unknown key 'lrr'", "allowed keys"]),
    ("bogus=1", ["unknown key(s) bogus", "allowed"]),
    ("lens.bogus=1", ["unknown option(s) bogus", "allowed"]),
    ("report.examples=500", ["examples = 500"]),
    ("train.steps=0", ["train.steps must be a positive integer"]),
])
def test_run_refuses_bad_overrides_before_any_work(world, tmp_path, capsys, override, words):
    out = tmp_path / "p"
    code, _out, err = _main(["run", world / "run.toml", "--out", out, "--set", override], capsys)
    line = _one_line_error(code, err)
    assert all(w in line for w in words), line
    assert not out.exists()


@pytest.mark.parametrize("verb", ["generate", "train", "run"])
def test_every_toml_verb_documents_set(verb, capsys):
    with pytest.raises(SystemExit):
        cli.main([verb, "--help"])
    assert "--set KEY=VALUE" in capsys.readouterr().out
