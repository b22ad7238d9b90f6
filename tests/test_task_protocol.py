"""The task protocol: the registry, a third-party task through every stage, and no task names in generic code."""

from __future__ import annotations

import ast
import json
import secrets
import sys
from pathlib import Path

import numpy as np
import pytest

from searchprobe.errors import ConfigError
from searchprobe.tasks import base

PACKAGE = Path(__file__).resolve().parents[1] / "searchprobe"


@pytest.fixture
def toy_task(tmp_path, monkeypatch):
    """The line-walk task installed as another package would install it: a module and an entry
    point of the ``searchprobe.tasks`` group, under a name picked at random for this test."""
    name = f"walk_{secrets.token_hex(4)}"
    site = tmp_path / "site"
    site.mkdir()
    (site / f"toy_{name}.py").write_text(f"from line_walk import LineWalk\n\nTASK = LineWalk({name!r})\n")
    dist = site / f"toy_{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: toy-{name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{base.ENTRY_POINT_GROUP}]\n{name} = toy_{name}:TASK\n")
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.syspath_prepend(str(site))
    yield name
    base._registered.pop(name, None)
    sys.modules.pop(f"toy_{name}", None)


def test_builtin_tasks_and_unknown_names():
    assert base.get_task("maze").name == "maze" and base.get_task("chess").name == "chess"
    assert {"maze", "chess"} <= set(base.task_names())
    with pytest.raises(ConfigError, match=r"unknown task 'mazes'; known tasks: .*chess.*maze"):
        base.get_task("mazes")
    with pytest.raises(ConfigError, match="is not a task name"):
        base.get_task(None)
    with pytest.raises(ConfigError, match="cannot be imported"):
        base.get_task("no_such_module_xyz:TASK")


def test_entry_point_and_module_reference_find_the_same_kind_of_task(toy_task):
    assert toy_task in base.task_names()
    task = base.get_task(toy_task)
    assert type(task).__name__ == "LineWalk" and task.name == toy_task
    by_reference = base.get_task(f"toy_{toy_task}:TASK")
    assert by_reference is task  # the same module object, found by its reference


def test_a_third_party_task_goes_through_every_stage(toy_task, tmp_path):
    """generate → train → eval → lens → probe → patch (with retargeting) → report, all through the
    CLI, for a task that no generic module knows."""
    from searchprobe.cli import main

    toml = tmp_path / "walk.toml"
    toml.write_text(f'task = "{toy_task}"\nlength = 10\nn = 600\nseed = 1\n')
    data, run = tmp_path / "data", tmp_path / "run"
    assert main(["generate", str(toml), "--out", str(data), "--quiet"]) == 0
    assert json.loads((data / "config.json").read_text())["task"] == toy_task
    assert main(["train", "--data", str(data), "--model", "nano", "--steps", "30", "--out", str(run),
                 "--no-progress"]) == 0
    assert main(["eval", str(run), "--limit", "40"]) == 0
    metrics = json.loads((run / "eval-test.json").read_text())["metrics"]
    assert set(metrics) == {"n", "exact", "reaches_goal"}
    assert main(["lens", str(run), "--limit", "40", "--tuned-examples", "64", "--tuned-steps", "5", "--no-progress"]) == 0
    assert main(["probe", str(run), "--max-examples", "120", "--boot", "20",
                 "--hooks", "blocks.0.hook_resid_pre,blocks.1.hook_resid_post"]) == 0
    probes = (run / "probes" / "results.csv").read_text()
    assert "goal_cell" in probes and "next_cell" in probes and "step:1" in probes
    assert main(["patch", str(run), "--pairs", "target", "--n", "12", "--sweeps", "resid", "--retarget",
                 "--n-retarget", "8", "--no-attribution"]) == 0
    patching = json.loads((run / "patching" / "results.json").read_text())
    assert patching["n_pairs"] >= 1 and "retarget" in patching
    assert main(["report", str(run)]) == 0
    html = (run / "report.html").read_text()
    assert toy_task in html and "Causal interventions" in html


def _generic_modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        if (PACKAGE / "tasks") not in path.parents:
            yield path


def test_no_generic_module_names_a_task():
    """Outside searchprobe/tasks/, no string literal equals a registered task's name: stages ask the
    Task object, they never branch on (or key by) a task name."""
    names = set(base.task_names())
    offenders = []
    for path in _generic_modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.value!r}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(tuple(f"searchprobe.tasks.{n}" for n in names)):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: imports {node.module}")
    assert not offenders, "generic modules that name a task:\n" + "\n".join(offenders)


def test_the_check_catches_a_task_name(tmp_path):
    """The syntax-tree check above would fail on the kind of line it forbids."""
    tree = ast.parse('if config.get("task") == "maze":\n    pass\n')
    assert any(isinstance(n, ast.Constant) and n.value in base.task_names() for n in ast.walk(tree))


def test_import_is_fast_and_torch_free():
    import subprocess
    import time

    code = "import sys, time; t = time.perf_counter(); import searchprobe; " \
           "print(time.perf_counter() - t, 'torch' in sys.modules)"
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert float(out[0]) < 1.0 and out[1] == "False", out
    assert time.perf_counter() - start < 10
    import searchprobe as sp

    assert {"load_run", "LinearProbe", "patch", "get_task"} <= set(dir(sp))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sp.nope  # noqa: B018


def test_label_arrays_densify_every_nesting():
    from searchprobe.tasks.label_arrays import dense, pad_steps, stack_rows

    nested = [[[1, 0], [0, 1]], [[1, 1], [0, 0]]]
    as_objects = np.empty(2, dtype=object)
    as_objects[:] = [np.array(x) for x in nested]
    np.testing.assert_array_equal(dense(nested, np.int8), np.array(nested, dtype=np.int8))
    np.testing.assert_array_equal(dense(as_objects, np.int8), np.array(nested, dtype=np.int8))
    np.testing.assert_array_equal(stack_rows([nested, nested], bool).shape, (2, 2, 2, 2))
    np.testing.assert_array_equal(pad_steps([[1, 2, 3], [4]], 2), [[1, 2], [4, -1]])
