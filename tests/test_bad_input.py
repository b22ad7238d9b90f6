"""Bad inputs to every verb: exit code 2, one ``error: …`` line on stderr, no traceback, nothing changed.

Each case runs in-process through `searchprobe.cli.main(argv)` in a private copy of a small world
(a task TOML, a 3x3 maze dataset, a two-step run, an experiment TOML) with the working directory
and the temporary directory inside it; a snapshot (path, size, mtime, mode and hash of every
entry, directories included) before and after proves that nothing was created, changed or
deleted. A sample also runs as real subprocesses.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from searchprobe import cli

TASK = """task = "maze"
rows = 3
cols = 3
generator = "dfs"
n = 120
seed = 3
traces = ["bfs"]
token_format = "aotp"
[endpoints]
min_path_len = 2
[splits]
train = 0.7
validation = 0.15
test = 0.15
"""

EXPERIMENT = """name = "exp"
[data]
path = "{data}"
[model]
preset = "nano"
n_layers = 2
[train]
steps = 2
batch_size = 8
warmup_steps = 1
eval_every = 2
eval_examples = 4
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """The pristine world every case copies: task.toml, data/, run/ (trained 2 steps), exp.toml."""
    from searchprobe.tasks.maze.dataset import generate_from_toml
    from searchprobe.train.loop import TrainConfig
    from searchprobe.train.run import ExperimentConfig, train_run

    root = tmp_path_factory.mktemp("bad-input-world")
    (root / "task.toml").write_text(TASK)
    generate_from_toml(root / "task.toml", out=root / "data", overwrite=True)
    cfg = ExperimentConfig(data=str(root / "data"), model={"preset": "nano", "n_layers": 2},
                           train=TrainConfig(steps=2, batch_size=8, warmup_steps=1, eval_every=2), eval_examples=4)
    train_run(cfg, root / "run", progress=False)
    (root / "exp.toml").write_text(EXPERIMENT.format(data="data"))
    return root


def _copy_world(world: Path, dest: Path) -> Path:
    shutil.copytree(world, dest, symlinks=True)
    config = dest / "run" / "config.json"  # the copy's run points at the copy's dataset
    data = json.loads(config.read_text())
    data["dataset"]["path"] = str(dest / "data")
    config.write_text(json.dumps(data, indent=2))
    (dest / "tmp").mkdir()
    return dest


def snapshot(*roots: Path) -> dict[str, tuple]:
    """path -> (kind, size, mtime_ns, mode, sha256) of every entry under `roots` (and the roots)."""
    out = {}
    for root in roots:
        for path in [root, *sorted(root.rglob("*"))]:
            st = os.lstat(path)
            if path.is_symlink():
                out[str(path)] = ("link", os.readlink(path), st.st_mtime_ns, st.st_mode)
            elif path.is_dir():
                out[str(path)] = ("dir", 0, st.st_mtime_ns, st.st_mode)
            else:
                out[str(path)] = ("file", st.st_size, st.st_mtime_ns, st.st_mode,
                                  hashlib.sha256(path.read_bytes()).hexdigest())
    return out


# --- setups: each mutates the case's world before the snapshot ------------------------------
def write(rel: str, content: bytes | str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return setup


def remove(rel: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        path = root / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return setup


def edit_json(rel: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        path = root / rel
        data = json.loads(path.read_text())
        change(data)  # mutates in place
        path.write_text(json.dumps(data))
    return setup


def truncate(rel: str, keep: float) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        path = root / rel
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])
    return setup


def both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        for s in setups:
            s(root)
    return setup


def hf_folder(rel: str) -> Callable[[Path], None]:
    """A folder laid out like a Hugging Face model: config.json, model.safetensors, tokenizer files."""
    def setup(root: Path) -> None:
        folder = root / rel
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
                                                         "n_layer": 2}))
        (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
        (folder / "tokenizer.json").write_text("{}")
        (folder / "README.md").write_text("# my model\n")
    return setup


def other_shape_weights(root: Path) -> None:
    from safetensors.torch import load_file, save_file

    path = root / "run" / "model.safetensors"
    tensors = load_file(str(path))
    save_file({k: v.reshape(-1)[:1].clone() for k, v in tensors.items()}, str(path))


def other_names_weights(root: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"foo": torch.zeros(3)}, str(root / "run" / "model.safetensors"))


def vocab_without(token: str) -> Callable[[Path], None]:
    def change(vocab):
        tokens = vocab if isinstance(vocab, list) else vocab["tokens"]
        tokens.remove(token)
    return edit_json("data/vocab.json", change)


@dataclass
class Case:
    id: str
    argv: str  #: the command line after `searchprobe`; {root}, {run}, {data}, {task}, {exp} are filled in
    setup: Callable[[Path], None] | None = None
    match: str = ""  #: a piece of the expected error line


NON_UTF8 = b'task = "maze"\nrows = 3 # \xff\xfe\n'
BAD_ARROW = "data/test/data-00000-of-00001.arrow"

# --- run-file corruptions: every analysis verb must give one line for each ---------------------
RUN_DAMAGE: list[tuple[str, Callable[[Path], None] | None, str, str]] = [
    # (id, setup, match, run path)
    ("config-not-json", write("run/config.json", "{not json"), "not valid JSON", "run"),
    ("config-list", write("run/config.json", "[1, 2]"), "expected a JSON object, got list", "run"),
    ("config-empty-object", write("run/config.json", "{}"), "not a searchprobe run config", "run"),
    ("config-zero-bytes", write("run/config.json", b""), "empty file", "run"),
    ("config-not-utf8", write("run/config.json", b'{"format": "\xff"}'), "not UTF-8", "run"),
    ("config-foreign", hf_folder("hf"), "not a searchprobe run config", "hf"),
    ("config-model-not-table", edit_json("run/config.json", lambda d: d.update(model=5)), "'model' must be", "run"),
    ("config-vocab-ints", edit_json("run/config.json", lambda d: d.update(vocab=[1, 2])), "list of strings", "run"),
    ("config-no-dataset", edit_json("run/config.json", lambda d: d.pop("dataset")), "'dataset' is missing", "run"),
    ("config-missing", remove("run/config.json"), "config.json is missing", "run"),
    ("config-is-dir", both(remove("run/config.json"), lambda r: (r / "run" / "config.json").mkdir()),
     "is a directory", "run"),
    ("weights-missing", remove("run/model.safetensors"), "model.safetensors is missing", "run"),
    ("weights-zero-bytes", write("run/model.safetensors", b""), "truncated", "run"),
    ("run-is-file", write("afile", "x"), "not a run directory", "afile"),
    ("run-missing", None, "does not exist", "nowhere"),
]
#: damage only found once the weights are read (after torch is imported): not for `report`
WEIGHT_DAMAGE = [
    ("weights-truncated", truncate("run/model.safetensors", 0.5), "corrupt or truncated", "run"),
    ("weights-other-shape", other_shape_weights, "another shape", "run"),
    ("weights-other-names", other_names_weights, "do not fit this model", "run"),
    ("config-model-bad-key", edit_json("run/config.json", lambda d: d["model"].update(bogus=1)), "unknown key 'bogus'",
     "run"),
    ("config-unknown-task", edit_json("run/config.json", lambda d: d.update(task="nope")), "unknown task 'nope'", "run"),
]
#: dataset damage: every verb that reads the dataset
DATA_DAMAGE = [
    ("vocab-not-json", write("data/vocab.json", "[oops"), "vocab.json: not valid JSON"),
    ("vocab-ints", write("data/vocab.json", "[1, 2, 3]"), "list of token strings"),
    ("vocab-no-pad", vocab_without("<PADDING>"), "vocabulary"),
    ("vocab-missing", remove("data/vocab.json"), "vocab.json is missing"),
    ("data-config-list", write("data/config.json", "[]"), "expected a JSON object"),
    ("data-config-not-utf8", write("data/config.json", b"\xff\xfe{}"), "not UTF-8"),
    ("data-config-foreign", edit_json("data/config.json", lambda d: d.update(store_format="x")), "store format"),
    ("dataset-dict-not-json", write("data/dataset_dict.json", "{"), "dataset_dict.json: not valid JSON"),
    ("split-deleted", remove("data/test"), "split 'test' is missing"),
    ("arrow-zero-bytes", write(BAD_ARROW, b""), "empty file"),
    ("arrow-truncated", truncate(BAD_ARROW, 0.4), "cannot read the dataset's Arrow files"),
    ("arrow-missing", remove(BAD_ARROW), "missing"),
    ("split-state-not-json", write("data/test/state.json", "nope"), "state.json: not valid JSON"),
]

#: `patch` checks its options against the run's config.json first (its task and model shape), so
#: a config without a task, or a run folder without config.json, is reported by that check
PATCH_MATCH = {"config-empty-object": "is not a task name", "config-foreign": "is not a task name",
               "run-missing": "not a run directory"}

CASES: list[Case] = []
ANALYSIS = {"eval": "", "lens": " --no-tuned", "probe": "", "patch": "", "report": ""}
for verb, extra in ANALYSIS.items():
    for cid, setup, match, where in RUN_DAMAGE:
        match = PATCH_MATCH.get(cid, match) if verb == "patch" else match
        CASES.append(Case(f"{verb}-{cid}", f"{verb} {{root}}/{where}{extra}", setup, match))
    if verb != "report":
        for cid, setup, match, where in WEIGHT_DAMAGE:
            CASES.append(Case(f"{verb}-{cid}", f"{verb} {{root}}/{where}{extra}", setup, match))
        for cid, setup, match in DATA_DAMAGE:
            CASES.append(Case(f"{verb}-{cid}", f"{verb} {{run}}{extra}", setup, match))
        CASES.append(Case(f"{verb}-split-nope", f"{verb} {{run}} --split nope{extra}", None, "no such split"))
        CASES.append(Case(f"{verb}-data-missing", f"{verb} {{run}} --data {{root}}/nodata{extra}", None, "does not exist"))
        CASES.append(Case(f"{verb}-data-is-file", f"{verb} {{run}} --data {{task}}{extra}", None, "is a file"))
        CASES.append(Case(f"{verb}-unknown-option", f"{verb} {{run}} --bogus{extra}", None, "unrecognized arguments"))

CASES += [
    # eval
    Case("eval-limit-0", "eval {run} --limit 0", None, "--limit must be a positive"),
    Case("eval-limit-negative", "eval {run} --limit -3", None, "--limit must be a positive"),
    Case("eval-limit-not-int", "eval {run} --limit x", None, "invalid int value"),
    Case("eval-no-run", "eval", None, "required: run_dir"),
    # lens
    Case("lens-batch-size-0", "lens {run} --batch-size 0", None, "--batch-size must be a positive"),
    Case("lens-limit-0", "lens {run} --limit 0", None, "--limit must be a positive"),
    Case("lens-tuned-examples-0", "lens {run} --tuned-examples 0", None, "--tuned-examples"),
    Case("lens-tuned-steps-0", "lens {run} --tuned-steps 0", None, "--tuned-steps"),
    Case("lens-tuned-lr-negative", "lens {run} --tuned-lr -1", None, "--tuned-lr"),
    Case("lens-tuned-lr-nan", "lens {run} --tuned-lr nan", None, "--tuned-lr"),
    # probe
    Case("probe-boot-negative", "probe {run} --boot -1", None, "--boot"),
    Case("probe-max-examples-5", "probe {run} --max-examples 5", None, "--max-examples"),
    Case("probe-seed-negative", "probe {run} --seed -1", None, "--seed"),
    Case("probe-random-init-seed-negative", "probe {run} --random-init-seed -2", None, "--random-init-seed"),
    Case("probe-dtype-bogus", "probe {run} --dtype float8", None, "invalid choice"),
    Case("probe-hook-bogus", "probe {run} --hooks blocks.9.hook_resid_pre", None, "does not exist in this"),
    Case("probe-label-bogus", "probe {run} --labels nope --max-examples 20", None, "unknown label 'nope'"),
    Case("probe-position-bogus", "probe {run} --positions nowhere", None, "nowhere"),
    # patch
    Case("patch-n-0", "patch {run} --n 0", None, "--n must be a positive"),
    Case("patch-n-ablate-0", "patch {run} --n-ablate 0", None, "--n-ablate"),
    Case("patch-n-retarget-0", "patch {run} --n-retarget 0", None, "--n-retarget"),
    Case("patch-heads-malformed", "patch {run} --heads 1-2", None, "LAYER.HEAD"),
    Case("patch-ablation-method-bogus", "patch {run} --ablate --ablation-methods bogus", None, "bogus"),
    Case("patch-sweep-bogus", "patch {run} --sweeps bogus", None, "bogus"),
    Case("patch-pairs-bogus", "patch {run} --pairs bogus", None, "bogus"),
    # report
    Case("report-examples-negative", "report {run} --examples -1", None, "--examples must be >= 0"),
    Case("report-examples-huge", "report {run} --examples 100000", None, "--examples must be at most"),
    Case("report-examples-not-int", "report {run} --examples x", None, "invalid int value"),
    # generate
    Case("generate-missing-toml", "generate {root}/nope.toml", None, "does not exist"),
    Case("generate-toml-is-dir", "generate {root}/data", None, "is a directory"),
    Case("generate-toml-not-utf8", "generate {root}/bad.toml", write("bad.toml", NON_UTF8), "not UTF-8"),
    Case("generate-toml-invalid", "generate {root}/bad.toml", write("bad.toml", "task = "), "not valid TOML"),
    Case("generate-unknown-task", "generate {root}/bad.toml", write("bad.toml", 'task = "nope"\n'), "unknown task 'nope'"),
    Case("generate-no-task-key", "generate {root}/bad.toml", write("bad.toml", "rows = 3\n"), "top-level key 'task'"),
    Case("generate-task-not-string", "generate {root}/bad.toml", write("bad.toml", "task = 5\n"), "not a task name"),
    Case("generate-unknown-key", "generate {root}/bad.toml", write("bad.toml", "bogus = 1\n" + TASK), "unknown key 'bogus'"),
    Case("generate-rows-1", "generate {root}/bad.toml", write("bad.toml", TASK.replace("rows = 3", "rows = 1")), "rows=1"),
    Case("generate-rows-string", "generate {root}/bad.toml", write("bad.toml", TASK.replace("rows = 3", 'rows = "x"')),
         "expected an integer"),
    Case("generate-generator-bogus", "generate {root}/bad.toml",
         write("bad.toml", TASK.replace('generator = "dfs"', 'generator = "bogus"')), "generator='bogus'"),
    Case("generate-traces-bogus", "generate {root}/bad.toml", write("bad.toml", TASK.replace('["bfs"]', '["nope"]')),
         "traces"),
    Case("generate-split-fraction", "generate {root}/bad.toml", write("bad.toml", TASK.replace("train = 0.7", "train = 2.0")),
         "must be a number in [0, 1]"),
    Case("generate-splits-sum", "generate {root}/bad.toml", write("bad.toml", TASK.replace("train = 0.7", "train = 0.5")),
         "sum to"),
    Case("generate-toml-n-0", "generate {root}/bad.toml", write("bad.toml", TASK.replace("n = 120", "n = 0")), "n=0"),
    Case("generate-toml-n-huge", "generate {root}/bad.toml",
         write("bad.toml", TASK.replace("n = 120", "n = 1000000000000")), "memory"),
    Case("generate-n-0", "generate {task} --n 0", None, "--n 0 must be a positive"),
    Case("generate-n-negative", "generate {task} --n -5", None, "--n -5"),
    Case("generate-n-huge", "generate {task} --n 1000000000000 --out {root}/big", None, "memory"),
    Case("generate-n-not-int", "generate {task} --n 1e3", None, "invalid int value"),
    Case("generate-workers-0", "generate {task} --workers 0", None, "--workers 0"),
    Case("generate-shard-out-of-range", "generate {task} --shard 3/2", None, "out of range"),
    Case("generate-shard-malformed", "generate {task} --shard x", None, "malformed"),
    Case("generate-seed-negative", "generate {task} --seed -1", None, "--seed -1"),
    Case("generate-out-is-file", "generate {task} --out {task}", None, "is a file"),
    Case("generate-out-under-file", "generate {task} --out {task}/sub", None, "is a file"),
    Case("generate-out-not-empty", "generate {task} --out {run}", None, "exists and is not empty"),
    Case("generate-overwrite-hf-folder", "generate {task} --out {root}/hf --overwrite", hf_folder("hf"),
         "not a searchprobe dataset"),
    Case("generate-overwrite-user-folder", "generate {task} --out {root}/mine --overwrite", write("mine/notes.txt", "x"),
         "not a searchprobe dataset"),
    Case("generate-overwrite-dataset-with-extra", "generate {task} --out {data} --overwrite", write("data/notes.txt", "x"),
         "'notes.txt', which searchprobe did not write"),
    Case("generate-name-traversal", "generate {root}/bad.toml",
         write("bad.toml", 'task = "chess"\nname = "../../evil"\nn = 10\n'), "not a plain name"),
    Case("generate-name-absolute", "generate {root}/bad.toml",
         write("bad.toml", 'task = "chess"\nname = "/tmp/evil"\nn = 10\n'), "not a plain name"),
    Case("generate-unknown-option", "generate {task} --bogus", None, "unrecognized arguments"),
    # train
    Case("train-nothing", "train --out {root}/o", None, "give an experiment TOML or --data"),
    Case("train-no-out", "train {exp}", None, "required: --out"),
    Case("train-experiment-missing", "train {root}/nope.toml --out {root}/o", None, "does not exist"),
    Case("train-experiment-not-utf8", "train {root}/bad.toml --out {root}/o", write("bad.toml", NON_UTF8), "not UTF-8"),
    Case("train-experiment-invalid", "train {root}/bad.toml --out {root}/o", write("bad.toml", "[train\n"), "not valid TOML"),
    Case("train-experiment-unknown-key", "train {root}/bad.toml --out {root}/o",
         write("bad.toml", 'data = "data"\nbogus = 1\n'), "unknown key 'bogus'"),
    Case("train-data-missing", "train --data {root}/nodata --out {root}/o", None, "does not exist"),
    Case("train-model-bogus", "train --data {data} --model huge --out {root}/o", None, "huge"),
    Case("train-steps-0", "train --data {data} --steps 0 --out {root}/o", None, "train.steps must be a positive"),
    Case("train-steps-negative", "train --data {data} --steps -1 --out {root}/o", None, "train.steps"),
    Case("train-time-limit-negative", "train --data {data} --time-limit -1 --out {root}/o", None, "--time-limit"),
    Case("train-time-limit-0", "train --data {data} --time-limit 0 --out {root}/o", None, "--time-limit"),
    Case("train-time-limit-nan", "train --data {data} --time-limit nan --out {root}/o", None, "--time-limit"),
    Case("train-time-limit-inf", "train --data {data} --time-limit inf --out {root}/o", None, "--time-limit"),
    Case("train-out-is-file", "train --data {data} --out {task}", None, "is a file"),
    Case("train-out-under-file", "train --data {data} --out {task}/run", None, "is a file"),
    Case("train-resume-empty-dir", "train --data {data} --out {root}/empty --resume",
         lambda r: (r / "empty").mkdir(), "holds no run to resume"),
    Case("train-resume-missing-dir", "train --data {data} --out {root}/o --resume", None, "holds no run to resume"),
    Case("train-existing-run", "train --data {data} --out {run}", None, "already holds a run"),
    Case("train-into-hf-folder", "train --data {data} --out {root}/hf", hf_folder("hf"), "not a searchprobe run config"),
    Case("train-resume-hf-folder", "train --data {data} --out {root}/hf --resume", hf_folder("hf"),
         "not a searchprobe run config"),
    Case("train-foreign-metrics", "train --data {data} --out {root}/mine", write("mine/metrics.jsonl", "mine\n"),
         "searchprobe did not write it"),
    Case("train-batch-size-0", "train {root}/bad.toml --out {root}/o",
         write("bad.toml", 'data = "data"\n[train]\nbatch_size = 0\n'), "batch_size"),
    Case("train-lr-negative", "train {root}/bad.toml --out {root}/o",
         write("bad.toml", 'data = "data"\n[train]\nlr = -1.0\n'), "train.lr"),
    Case("train-lr-inf", "train {root}/bad.toml --out {root}/o",
         write("bad.toml", 'data = "data"\n[train]\nlr = inf\n'), "train.lr"),
    Case("train-precision-bogus", "train {root}/bad.toml --out {root}/o",
         write("bad.toml", 'data = "data"\n[train]\nprecision = "fp8"\n'), "'fp8' is not allowed"),
    Case("train-eval-examples-0", "train {root}/bad.toml --out {root}/o",
         write("bad.toml", 'data = "data"\neval_examples = 0\n'), "eval_examples = 0"),
    Case("train-eval-split-nope", "train {root}/bad.toml --out {root}/o",
         write("bad.toml", 'data = "data"\neval_split = "nope"\n'), "eval_split = 'nope'"),
    Case("train-model-layers-string", "train {root}/bad.toml --out {root}/o",
         write("bad.toml", 'data = "data"\n[model]\nn_layers = "x"\n'), "n_layers"),
    Case("train-data-vocab-no-pad", "train --data {data} --out {root}/o", vocab_without("<PADDING>"), "<PADDING>"),
    Case("train-data-split-deleted", "train --data {data} --out {root}/o", remove("data/validation"),
         "split 'validation' is missing"),
    Case("train-data-arrow-truncated", "train --data {data} --out {root}/o",
         truncate("data/train/data-00000-of-00001.arrow", 0.3), "Arrow"),
    # run (the pipeline)
    Case("run-missing", "run {root}/nope.toml", None, "does not exist"),
    Case("run-not-utf8", "run {root}/bad.toml", write("bad.toml", NON_UTF8), "not UTF-8"),
    Case("run-unknown-key", "run {root}/bad.toml", write("bad.toml", "bogus = 1\n" + EXPERIMENT.format(data="data")),
         "unknown key(s) bogus"),
    Case("run-name-traversal", "run {root}/bad.toml",
         write("bad.toml", EXPERIMENT.format(data="data").replace('name = "exp"', 'name = "../../x"')), "not a plain name"),
    Case("run-name-absolute", "run {root}/bad.toml",
         write("bad.toml", EXPERIMENT.format(data="data").replace('name = "exp"', 'name = "/tmp/x"')), "not a plain name"),
    Case("run-report-examples-string", "run {root}/bad.toml",
         write("bad.toml", EXPERIMENT.format(data="data") + '[report]\nexamples = "x"\n'), "examples = 'x'"),
    Case("run-report-examples-negative", "run {root}/bad.toml",
         write("bad.toml", EXPERIMENT.format(data="data") + "[report]\nexamples = -1\n"), "examples = -1"),
    Case("run-report-unknown-key", "run {root}/bad.toml",
         write("bad.toml", EXPERIMENT.format(data="data") + "[report]\npages = 1\n"), "pages"),
    Case("run-only-bogus", "run {exp} --only bogus", None, "unknown stage(s) bogus"),
    Case("run-data-both", "run {root}/bad.toml",
         write("bad.toml", EXPERIMENT.format(data="data").replace("[data]\n", '[data]\ntask = "task.toml"\n')),
         "exactly one of"),
    Case("run-data-neither", "run {root}/bad.toml",
         write("bad.toml", EXPERIMENT.format(data="data").replace('path = "data"\n', "")), "exactly one of"),
    Case("run-data-path-missing", "run {root}/bad.toml", write("bad.toml", EXPERIMENT.format(data="nodata")),
         "does not exist"),
    Case("run-data-n-0", "run {root}/bad.toml",
         write("bad.toml", EXPERIMENT.format(data="data").replace('path = "data"', 'task = "task.toml"\nn = 0')), "n = 0"),
    Case("run-data-n-huge", "run {root}/bad.toml",
         write("bad.toml", EXPERIMENT.format(data="data").replace('path = "data"', 'task = "task.toml"\nn = 1000000000000')),
         "memory"),
    Case("run-data-workers-0", "run {root}/bad.toml",
         write("bad.toml", EXPERIMENT.format(data="data").replace('path = "data"', 'task = "task.toml"\nworkers = 0')),
         "workers = 0"),
    Case("run-data-not-table", "run {root}/bad.toml", write("bad.toml", 'data = "data"\n'), "must be a table"),
    Case("run-eval-split-nope", "run {root}/bad.toml",
         write("bad.toml", EXPERIMENT.format(data="data") + 'eval_split = "nope"\n'), "eval_split = 'nope'"),
    Case("run-eval-split-nope-task", "run {root}/bad.toml",
         write("bad.toml", EXPERIMENT.format(data="data").replace('path = "data"', 'task = "task.toml"')
               + 'eval_split = "nope"\n'), "eval_split = 'nope'"),
    Case("run-eval-examples-0", "run {root}/bad.toml",
         write("bad.toml", EXPERIMENT.format(data="data").replace("eval_examples = 4", "eval_examples = 0")),
         "eval_examples = 0"),
    Case("run-lens-unknown-option", "run {root}/bad.toml",
         write("bad.toml", EXPERIMENT.format(data="data") + "[lens]\nbogus = 1\n"), "unknown option(s) bogus"),
    Case("run-lens-batch-size-0", "run {root}/bad.toml",
         write("bad.toml", EXPERIMENT.format(data="data") + "[lens]\nbatch_size = 0\n"), "batch_size = 0"),
    Case("run-probe-boot-negative", "run {root}/bad.toml",
         write("bad.toml", EXPERIMENT.format(data="data") + "[probe]\nn_boot = -1\n"), "n_boot"),
    Case("run-model-preset-bogus", "run {root}/bad.toml",
         write("bad.toml", EXPERIMENT.format(data="data").replace('preset = "nano"', 'preset = "huge"')), "huge"),
    Case("run-train-steps-0", "run {root}/bad.toml",
         write("bad.toml", EXPERIMENT.format(data="data").replace("steps = 2\n", "steps = 0\n")), "train.steps"),
    Case("run-out-is-file", "run {exp} --out {task}", None, "is a file"),
    Case("run-out-under-file", "run {exp} --out {task}/run", None, "is a file"),
    Case("run-out-hf-folder", "run {exp} --out {root}/hf", hf_folder("hf"), "not a searchprobe run config"),
    Case("run-only-train-hf-folder", "run {exp} --out {root}/hf --only train", hf_folder("hf"),
         "not a searchprobe run config"),
    Case("run-force-hf-folder", "run {exp} --out {root}/hf --force", hf_folder("hf"), "not a searchprobe run config"),
    Case("run-user-data-folder", "run {root}/bad.toml --out {root}/mine",
         both(write("bad.toml", EXPERIMENT.format(data="data").replace('path = "data"', 'task = "task.toml"')),
              write("mine/data/photo.jpg", b"\xff\xd8\xff")), "not a searchprobe dataset"),
    Case("run-foreign-model-file", "run {exp} --out {root}/mine", write("mine/model.safetensors", b"12345678"),
         "searchprobe did not write it"),
    # search
    Case("search-no-subverb", "search", None, "required: SUBVERB"),
    Case("search-unknown-subverb", "search frobnicate", None, "invalid choice"),
    Case("search-levin-max-work-0", "search levin --target 2 --max-work 0", None, "--max-work 0"),
    Case("search-levin-max-bits-small", "search levin --target 2 --max-bits 2", None, "max_bits=2"),
    Case("search-levin-out-is-file", "search levin --target 2 --out {task}", None, "is a file"),
    Case("search-levin-out-under-file", "search levin --target 2 --out {task}/x", None, "is a file"),
    Case("search-dovetail-a-0", "search dovetail --a 0 --b 1 --task tm:unary_successor", None, "a=0"),
    Case("search-bb-n-0", "search bb --n 0", None, "--n 0"),
    # demo
    Case("demo-out-is-file", "demo --out {task}", None, "is a file"),
    Case("demo-experiment-missing", "demo --out {root}/d --experiment {root}/nope.toml", None, "does not exist"),
    # top level
    Case("unknown-verb", "frobnicate", None, "unknown verb"),
]


def _argv(case: Case, root: Path) -> list[str]:
    text = case.argv.format(root=root, run=root / "run", data=root / "data", task=root / "task.toml", exp=root / "exp.toml")
    return text.split()


def check_error(code: int, err: str, match: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2, f"exit code {code}, stderr: {err[-2000:]}"
    assert "Traceback" not in err, err[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-3000:]
    assert match in lines[0], f"{match!r} not in {lines[0]!r}"
    return lines[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(case, world, tmp_path, monkeypatch, capsys):
    root = _copy_world(world, tmp_path / "w")
    if case.setup is not None:
        case.setup(root)
    monkeypatch.chdir(root)
    monkeypatch.setattr(tempfile, "tempdir", str(root / "tmp"))
    monkeypatch.setenv("TMPDIR", str(root / "tmp"))
    before = snapshot(root)
    code = cli.main(_argv(case, root))
    captured = capsys.readouterr()
    check_error(code, captured.err, case.match)
    assert snapshot(root) == before


def test_there_are_at_least_150_cases_over_every_verb():
    assert len(CASES) >= 150
    verbs = {c.argv.split()[0] for c in CASES}
    assert set(cli.COMMANDS) <= verbs


SUBPROCESS_SAMPLE = ["eval-config-not-json", "lens-split-nope", "probe-boot-negative", "patch-arrow-truncated",
                     "report-config-list", "generate-toml-not-utf8", "train-resume-empty-dir", "run-name-traversal",
                     "search-levin-max-work-0"]


@pytest.mark.parametrize("cid", SUBPROCESS_SAMPLE)
def test_bad_input_in_a_real_process(cid, world, tmp_path):
    case = next(c for c in CASES if c.id == cid)
    root = _copy_world(world, tmp_path / "w")
    if case.setup is not None:
        case.setup(root)
    before = snapshot(root)
    env = {**os.environ, "TMPDIR": str(root / "tmp")}
    proc = subprocess.run([sys.executable, "-m", "searchprobe", *_argv(case, root)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    check_error(proc.returncode, proc.stderr, case.match)
    # Python's tempfile probes a new process's temp directory with a file it removes at once
    # (tempfile.gettempdir), which moves that folder's mtime: compare its contents, not its mtime
    after = snapshot(root)
    for snap in (before, after):
        snap[str(root / "tmp")] = snap[str(root / "tmp")][:2]
    assert after == before


def test_debug_shows_the_traceback(world, tmp_path):
    root = _copy_world(world, tmp_path / "w")
    write("run/config.json", "[1]")(root)
    proc = subprocess.run([sys.executable, "-m", "searchprobe", "--debug", "eval", str(root / "run")], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "DataError" in proc.stderr
