"""One reader for the files of run and dataset directories: every problem is one `DataError` line.

Everything searchprobe reads back from disk goes through here, so a file that is missing, empty,
not UTF-8, not JSON or of the wrong shape gives ``error: <file>: <what is wrong>`` instead of a
traceback from deep inside a stage. Nothing here imports torch, so the CLI can check a run
directory before any expensive import or work (`check_run_dir`).

Files read:

==========================  ===================================================================
file                        checked
==========================  ===================================================================
run ``config.json``         a JSON object written by searchprobe (``format``: a run format this
                            version reads, `RUN_FORMATS`), with ``model`` (object), ``vocab``
                            (list of strings) and ``dataset`` (object with a ``path`` string:
                            see `run_dataset_path`)
``metrics.jsonl``           one JSON object per line with an integer ``step``; a torn last
                            line (a run killed mid-write) is skipped
``eval.json``               an object whose ``metrics`` map names to numbers (or null)
``<stage>/report.json``     the report contract: title/summary strings, sections a list of
                            objects with heading/text strings, figures and tables lists
dataset ``config.json``     an object with the store format, ``splits`` and a ``task``
``vocab.json``              a list of strings, or an object with a ``tokens`` list of strings
``dataset_dict.json``       an object with ``splits``, each split's folder and Arrow file present
``finished.json``           the completion marker `train` writes when a run reaches its end
==========================  ===================================================================
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from searchprobe.errors import DataError

#: The run directory format (written to a run's config.json by `train`). Version 2 stores the
#: dataset path relative to the run directory (a moved or copied run keeps finding its dataset);
#: version 1 stored it relative to the directory training ran in.
RUN_FORMAT = "searchprobe-run/2"
RUN_FORMAT_V1 = "searchprobe-run/1"
#: The run formats this version reads.
RUN_FORMATS = (RUN_FORMAT_V1, RUN_FORMAT)
#: The completion marker `train` writes when a run has reached its last step (or its time limit).
FINISHED = "finished.json"

_JSON_TYPES = {dict: "object", list: "list", str: "string", int: "integer", float: "number", bool: "boolean",
               type(None): "null"}


def _kind(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _expected(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_JSON_TYPES.get(k, k.__name__) for k in kinds)


def read_text(path: str | Path) -> str:
    """The UTF-8 text of a file, or a DataError naming the file and the problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: missing") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a file") from None
    except NotADirectoryError:
        raise DataError(f"{path}: a parent of it is a file, not a directory") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (invalid byte at offset {exc.start})") from None


def read_json(path: str | Path, kind: type | tuple[type, ...] | None = dict) -> Any:
    """Parse a JSON file; `kind` is the type its top level must have (None: any)."""
    path = Path(path)
    text = read_text(path)
    if not text.strip():
        raise DataError(f"{path}: empty file (expected JSON)")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply") from None
    if kind is not None and not _is(value, kind):
        raise DataError(f"{path}: expected a JSON {_expected(kind)}, got {_kind(value)}")
    return value


def _is(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return False
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, kinds)


def need(obj: dict, key: str, kind: type | tuple[type, ...], where: str | Path, *, optional: bool = False) -> Any:
    """``obj[key]`` checked to be of `kind` (a DataError naming `where` and the key otherwise)."""
    if key not in obj:
        if optional:
            return None
        raise DataError(f"{where}: key {key!r} is missing")
    value = obj[key]
    if optional and value is None:
        return None
    if not _is(value, kind):
        expected = _expected(kind)
        article = "an" if expected[0] in "aeiou" else "a"
        raise DataError(f"{where}: key {key!r} must be {article} {expected}, got {_kind(value)} {_short(value)}")
    return value


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def read_jsonl(path: str | Path, *, required: dict[str, type] | None = None) -> list[dict[str, Any]]:
    """The records of a JSON-lines file. A last line without its newline that does not parse is a
    torn write (a process killed mid-line) and is skipped; any other bad line is a DataError."""
    path = Path(path)
    text = read_text(path)
    lines = text.split("\n")
    torn_last = not text.endswith("\n")
    records = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if torn_last and i == len(lines):
                break
            raise DataError(f"{path}: line {i} is not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}: line {i} must be a JSON object, got {_kind(record)}")
        for key, kind in (required or {}).items():
            need(record, key, kind, f"{path}: line {i}")
        records.append(record)
    return records


# --- run directories ---------------------------------------------------------------------------
def is_run_config(path: str | Path) -> bool:
    """Whether `path` is a run config.json searchprobe wrote (without raising)."""
    try:
        config = read_json(path)
    except DataError:
        return False
    fmt = config.get("format")
    return isinstance(fmt, str) and fmt.startswith("searchprobe-run/")  # a format of another version too


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """A run's config.json, checked: written by searchprobe and of the shape the stages read."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise DataError(f"{run_dir}: is a file, not a run directory")
    path = run_dir / "config.json"
    if not path.is_file() and not path.exists():
        raise DataError(f"{run_dir} is not a run directory: config.json is missing")
    config = read_json(path)
    fmt = config.get("format")
    if isinstance(fmt, str) and fmt.startswith("searchprobe-run/") and fmt not in RUN_FORMATS:
        from searchprobe import __version__

        raise DataError(f"{path}: run format {fmt!r} is not one searchprobe {__version__} reads "
                        f"({', '.join(RUN_FORMATS)}); use the searchprobe version that wrote the run")
    if fmt not in RUN_FORMATS:
        raise DataError(f"{path}: not a searchprobe run config (format {fmt!r}, expected {RUN_FORMAT!r})")
    need(config, "model", dict, path)
    vocab = need(config, "vocab", list, path)
    if not all(isinstance(t, str) for t in vocab):
        raise DataError(f"{path}: key 'vocab' must be a list of strings")
    dataset = need(config, "dataset", dict, path)
    need(dataset, "path", str, f"{path} [dataset]")
    need(dataset, "absolute", str, f"{path} [dataset]", optional=True)
    need(config, "task", str, path)
    need(config, "train", dict, path, optional=True)
    return config


def dataset_location(dataset: str | Path, run_dir: str | Path) -> dict[str, str]:
    """The ``path`` and ``absolute`` keys a run's config.json stores for its dataset: the path
    relative to the run directory (what `run_dataset_path` resolves) and, as a fallback for a run
    moved without its dataset, the absolute path at training time."""
    absolute = Path(dataset).resolve()
    try:
        relative = Path(os.path.relpath(absolute, Path(run_dir).resolve())).as_posix()
    except ValueError:  # another drive (Windows): only an absolute path can name it
        relative = str(absolute)
    return {"path": relative, "absolute": str(absolute)}


def run_dataset_path(run_dir: str | Path, config: dict[str, Any]) -> Path:
    """Where the dataset of a run is. Format 2 stores the path relative to the run directory, so
    a moved or copied run with its dataset alongside (or inside it, as ``<run>/data``) works from
    any working directory; when that is gone, the absolute path at training time is tried. Format 1
    stored it relative to the directory training ran in (resolved against the working directory)."""
    dataset = config["dataset"]
    stored = Path(dataset["path"])
    if config.get("format") == RUN_FORMAT_V1:
        return stored
    first = stored if stored.is_absolute() else Path(os.path.normpath(Path(run_dir).resolve() / stored))
    absolute = dataset.get("absolute")
    if not first.exists() and isinstance(absolute, str) and absolute and Path(absolute).exists():
        return Path(absolute)
    return first


def read_finished(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's completion marker, or None when it has none (a broken marker counts as none)."""
    path = Path(run_dir) / FINISHED
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except DataError:
        return None


def stopped_message(finished: dict[str, Any] | None) -> str | None:
    """What a completion marker says about a run its time limit stopped before its last step
    ("stopped at the time limit: 116/300 steps; the cosine schedule was sized for 300 …"), else None."""
    if not isinstance(finished, dict) or finished.get("stopped") != "time_limit":
        return None
    step, steps = finished.get("step"), finished.get("steps")
    if not isinstance(step, int) or not isinstance(steps, int) or step >= steps:
        return None
    limit = finished.get("time_limit_s")
    limit_text = f"train.time_limit_s = {limit:g}" if isinstance(limit, (int, float)) else "train.time_limit_s"
    return (f"stopped at the time limit: {step}/{steps} steps; the cosine schedule was sized for {steps} "
            f"({limit_text}; `searchprobe train … --steps N` lifts the limit, --time-limit S sets another)")


def checkpoint_step(run_dir: str | Path) -> int | None:
    """The step of the run's last checkpoint (what model.safetensors holds), None if unknown."""
    for name in ("train_state", ".train_state.old"):
        path = Path(run_dir) / name / "state.json"
        if path.is_file():
            try:
                step = read_json(path).get("step")
            except DataError:
                return None
            return step if isinstance(step, int) else None
    return None


def unfinished_message(run_dir: str | Path, config: dict[str, Any] | None = None) -> str | None:
    """A warning line when the run did not reach its end (no completion marker), else None.

    Runs written before the marker existed count as finished when their eval.json is from the
    configured last step.
    """
    run_dir = Path(run_dir)
    if read_finished(run_dir) is not None:
        return None
    if config is None:
        try:
            config = read_run_config(run_dir)
        except DataError:
            return None
    steps = (config.get("train") or {}).get("steps")
    step = checkpoint_step(run_dir)
    if (run_dir / "eval.json").is_file():
        try:
            done = read_json(run_dir / "eval.json").get("step")
        except DataError:
            done = None
        if isinstance(done, int) and isinstance(steps, int) and done >= steps:
            return None  # written before the completion marker existed
    if step is None and not (run_dir / "train_state").exists():
        return None  # not trained by `searchprobe train` (weights brought in by hand): nothing to say
    at = f"step {step}" if step is not None else "an unknown step"
    of = f" of {steps}" if isinstance(steps, int) else ""
    return (f"run {run_dir} is unfinished: its weights are from {at}{of} (training stopped before the end; "
            f"continue it with `searchprobe train … --out {run_dir} --resume`)")


def warn_if_unfinished(run_dir: str | Path, config: dict[str, Any] | None = None) -> str | None:
    """Print the `unfinished_message` of a run as a ``warning:`` line on stderr; return it."""
    message = unfinished_message(run_dir, config)
    if message:
        from searchprobe.guard import warn

        warn(message)
    return message


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """metrics.jsonl records, each with an integer ``step`` (a torn last line is skipped)."""
    return read_jsonl(path, required={"step": int})


def read_eval(path: str | Path) -> dict[str, Any]:
    """An eval.json (or eval-<split>.json): ``metrics`` maps names to numbers or null."""
    path = Path(path)
    data = read_json(path)
    metrics = need(data, "metrics", dict, path)
    for name, value in metrics.items():
        if value is not None and not _is(value, float):
            raise DataError(f"{path}: metric {name!r} must be a number, got {_kind(value)} {_short(value)}")
    need(data, "split", str, path, optional=True)
    return data


def read_stage_report(path: str | Path) -> dict[str, Any]:
    """A stage's report.json in the report contract (title, summary, sections of figures and tables)."""
    path = Path(path)
    report = read_json(path)
    need(report, "title", str, path, optional=True)
    need(report, "summary", str, path, optional=True)
    sections = need(report, "sections", list, path, optional=True) or []
    for i, sub in enumerate(sections):
        where = f"{path}: sections[{i}]"
        if not isinstance(sub, dict):
            raise DataError(f"{where} must be an object, got {_kind(sub)}")
        need(sub, "heading", str, where, optional=True)
        need(sub, "text", str, where, optional=True)
        need(sub, "layout", str, where, optional=True)
        for j, fig in enumerate(need(sub, "figures", list, where, optional=True) or []):
            if not isinstance(fig, dict):
                raise DataError(f"{where}.figures[{j}] must be an object, got {_kind(fig)}")
            need(fig, "path", str, f"{where}.figures[{j}]")
            need(fig, "caption", str, f"{where}.figures[{j}]", optional=True)
        for j, table in enumerate(need(sub, "tables", list, where, optional=True) or []):
            check_table(table, f"{where}.tables[{j}]")
    return report


def check_table(table: Any, where: str) -> None:
    if not isinstance(table, dict):
        raise DataError(f"{where} must be an object, got {_kind(table)}")
    need(table, "caption", str, where, optional=True)
    need(table, "columns", list, where, optional=True)
    for k, row in enumerate(need(table, "rows", list, where, optional=True) or []):
        if not isinstance(row, list):
            raise DataError(f"{where}.rows[{k}] must be a list, got {_kind(row)}")


# --- dataset directories -----------------------------------------------------------------------
def vocab_list(vocab: Any, where: str | Path) -> list[str]:
    """The token strings of a vocab.json value (a list, or an object with a ``tokens`` list)."""
    tokens = vocab.get("tokens") if isinstance(vocab, dict) else vocab
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise DataError(f"{where}: expected a list of token strings (or an object with a 'tokens' list)")
    if not tokens:
        raise DataError(f"{where}: the vocabulary is empty")
    if len(set(tokens)) != len(tokens):
        raise DataError(f"{where}: the vocabulary repeats a token")
    return tokens


def read_dataset_files(path: str | Path) -> tuple[dict[str, Any], Any, list[str]]:
    """(config, vocab, split names) of a dataset directory, every file and split folder checked."""
    from searchprobe.tasks.store import STORE_FORMAT

    path = Path(path)
    if not path.exists():
        raise DataError(f"dataset {path} does not exist")
    if not path.is_dir():
        raise DataError(f"{path}: is a file, not a dataset directory")
    for needed in ("dataset_dict.json", "config.json", "vocab.json"):
        if not (path / needed).exists():
            raise DataError(f"{path} is not a searchprobe dataset: {needed} is missing")
    config = read_json(path / "config.json")
    fmt = config.get("store_format")
    if fmt != STORE_FORMAT:
        raise DataError(f"{path / 'config.json'}: store format {fmt!r} is not {STORE_FORMAT!r}")
    need(config, "task", str, path / "config.json")
    vocab = read_json(path / "vocab.json", (list, dict))
    vocab_list(vocab, path / "vocab.json")
    listed = read_json(path / "dataset_dict.json")
    splits = need(listed, "splits", list, path / "dataset_dict.json")
    if not splits or not all(isinstance(s, str) and s and "/" not in s and not s.startswith(".") for s in splits):
        raise DataError(f"{path / 'dataset_dict.json'}: 'splits' must be a non-empty list of split names")
    for name in splits:
        folder = path / name
        if not folder.is_dir():
            raise DataError(f"{path}: split {name!r} is missing (the folder {name}/ is gone); regenerate the dataset")
        state = read_json(folder / "state.json")
        files = need(state, "_data_files", list, folder / "state.json")
        for entry in files:
            if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
                raise DataError(f"{folder / 'state.json'}: '_data_files' must list objects with a 'filename'")
            arrow = folder / entry["filename"]
            if not arrow.is_file():
                raise DataError(f"{arrow}: missing (split {name!r} is incomplete); regenerate the dataset")
            if arrow.stat().st_size == 0:
                raise DataError(f"{arrow}: empty file (a truncated write?); regenerate the dataset")
    return config, vocab, splits


def dataset_splits(path: str | Path) -> list[str]:
    """The split names of a dataset directory (checked as `read_dataset_files` does)."""
    return read_dataset_files(path)[2]


def check_split(path: str | Path, split: str, flag: str = "--split") -> None:
    """A one-line error unless dataset `path` has a non-empty split `split`."""
    config, _vocab, splits = read_dataset_files(path)
    if split not in splits:
        raise DataError(f"{flag} {split!r}: dataset {path} has no such split; it has {', '.join(splits)}")
    counts = config.get("counts")
    if isinstance(counts, dict) and counts.get(split) == 0:
        raise DataError(f"{flag} {split!r}: split {split!r} of dataset {path} is empty")


def check_run_dir(run_dir: str | Path, data: str | Path | None = None, split: str | None = None,
                  *, flag: str = "--split", check_data: bool = True, weights: bool = True) -> dict[str, Any]:
    """Everything an analysis stage can check about its inputs before importing torch: the run's
    config.json, its weights file and, when the dataset exists (and `check_data`), the split.
    Returns the config."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise DataError(f"run directory {run_dir} does not exist")
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: is a file, not a run directory")
    if not (run_dir / "config.json").exists():
        raise DataError(f"{run_dir} is not a run directory: config.json is missing")
    path = run_dir / "model.safetensors"
    if weights and not path.is_file():
        raise DataError(f"{run_dir} has no trained model yet (model.safetensors is missing)")
    config = read_run_config(run_dir)
    if path.is_file() and path.stat().st_size < 8:
        raise DataError(f"{path}: truncated ({path.stat().st_size} bytes)")
    dataset = Path(data) if data is not None else run_dataset_path(run_dir, config)
    if check_data and (data is not None or dataset.exists()):
        if split is not None:
            check_split(dataset, split, flag)
        else:
            read_dataset_files(dataset)
    return config
