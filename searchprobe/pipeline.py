"""`searchprobe run experiments/<exp>.toml`: chain the stages generate → train → lens → probe → patch → report.

An experiment TOML names the run directory and each stage's options::

    name = "demo"
    out = "runs/demo"                                   # the run directory
    [data]   task = "tasks/maze-dfs-5x5.toml"  n = 6000 # generated into <out>/data; or path = "/existing/dataset"
    [model]  preset = "nano"                            # ModelConfig keys override the preset
    [train]  steps = 800  batch_size = 64  eval_examples = 256
    [lens]   limit = 500  tuned_steps = 200             # keyword options of searchprobe.lens.run_lens
    [probe]  …                                          # of searchprobe.probe.run_probes
    [patch]  …                                          # of searchprobe.intervene.run_patching
    [report] examples = 4

A stage runs if its table is present (data, train and report always run). Each stage is
skipped when its output exists (the dataset's config.json, the run's eval.json, ``<stage>/
report.json``, report.html) unless ``force``; a stage whose module is not installed yet (probe,
patch) is skipped with a note, not an error; an analysis stage that fails is reported as failed and the
others and the report still run (`searchprobe run` then exits 1).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from searchprobe.config import from_dict, load_toml
from searchprobe.errors import ConfigError, DataError

#: stage name -> (TOML table, module, entry point, output relative to the run dir)
ANALYSIS_STAGES: dict[str, tuple[str, str, str, str]] = {
    "lens": ("lens", "searchprobe.lens", "run_lens", "lens/report.json"),
    "probe": ("probe", "searchprobe.probe.run", "run_probes", "probes/report.json"),
    "patch": ("patch", "searchprobe.intervene", "run_patching", "patching/report.json"),
}
STAGE_ORDER: tuple[str, ...] = ("generate", "train", "lens", "probe", "patch", "report")
_TOP_KEYS = {"name", "out", "description", "data", "model", "train", "lens", "probe", "patch", "report"}
_TRAIN_EXTRA = {"eval_examples", "eval_split"}  # ExperimentConfig fields accepted in [train]


@dataclass(frozen=True)
class Pipeline:
    """A parsed experiment: where everything goes and each stage's options."""

    name: str
    path: Path  #: the experiment TOML
    run_dir: Path
    data: dict[str, Any]
    model: dict[str, Any]
    train: dict[str, Any]
    stages: dict[str, dict[str, Any]]  #: analysis stage -> options (only the stages named in the TOML)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def dataset_dir(self) -> Path:
        if "path" in self.data:
            return Path(self.data["path"])
        return Path(self.data.get("out", self.run_dir / "data"))


def load_pipeline(path: str | Path, out: str | Path | None = None, overrides: Sequence[str] = ()) -> Pipeline:
    """Read and validate an experiment TOML (unknown tables or keys are a ConfigError); ``--set
    key.sub=value`` `overrides` are applied to it first and checked like the file's own keys."""
    path = Path(path)
    raw = load_toml(path, overrides)
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_TOP_KEYS))}")
    from searchprobe.guard import check_out_path, plain_name

    if "name" in raw:
        plain_name(raw["name"], f"{path}: name")
    name = str(raw.get("name", path.stem))
    for table in ("data", "model", "train", "report", *(t for t, *_ in ANALYSIS_STAGES.values())):
        if table in raw and not isinstance(raw[table], dict):
            raise ConfigError(f"{path}: {table} must be a table ([{table}]), got {raw[table]!r}")
    if "out" in raw and (not isinstance(raw["out"], str) or not raw["out"]):
        raise ConfigError(f"{path}: out = {raw['out']!r}; allowed: a directory path string")
    run_dir = check_out_path(Path(out or raw.get("out") or Path("runs") / name), "--out" if out else f"{path}: out")
    data = dict(raw.get("data", {}))
    if ("task" in data) == ("path" in data):
        raise ConfigError(f"{path} [data]: give exactly one of task = \"tasks/<name>.toml\" or path = \"<dataset dir>\"")
    if set(data) - {"task", "path", "n", "seed", "out", "workers"}:
        raise ConfigError(f"{path} [data]: unknown key(s) {sorted(set(data) - {'task', 'path', 'n', 'seed', 'out', 'workers'})}; "
                          "allowed: task, path, n, seed, out, workers")
    for key in ("task", "path", "out"):
        if key in data and (not isinstance(data[key], str) or not data[key]):
            raise ConfigError(f"{path} [data]: {key} = {data[key]!r}; allowed: a path string")
    for key in ("task", "path"):
        if key in data and not Path(data[key]).exists():
            raise ConfigError(f"{path} [data]: {key} = {data[key]!r} does not exist")
    for key, low in (("n", 1), ("seed", 0), ("workers", 1)):
        value = data.get(key)
        if key in data and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ConfigError(f"{path} [data]: {key} = {value!r}; allowed: an integer >= {low}")
    if "n" in data:
        from searchprobe.guard import check_example_count

        check_example_count(data["n"], f"{path} [data]: n")
    report = dict(raw.get("report", {}))
    if set(report) - {"examples"}:
        raise ConfigError(f"{path} [report]: unknown key(s) {', '.join(sorted(set(report) - {'examples'}))}; allowed: examples")
    examples = report.get("examples", 4)
    if isinstance(examples, bool) or not isinstance(examples, int) or not 0 <= examples <= 64:
        raise ConfigError(f"{path} [report]: examples = {examples!r}; allowed: an integer from 0 to 64")
    stages = {stage: dict(raw[table]) for stage, (table, *_rest) in ANALYSIS_STAGES.items() if table in raw}
    pipeline = Pipeline(name, path, run_dir, data, dict(raw.get("model", {"preset": "tiny"})), dict(raw.get("train", {})),
                        stages, report)
    check_out_path(pipeline.dataset_dir, f"{path} [data]")
    cfg = _experiment_config(pipeline)  # validate model/train now, before any work
    from searchprobe.train.run import check_eval_split

    check_eval_split(cfg, data.get("path") or data["task"])
    for stage, options in stages.items():
        func = _entry_point(stage)
        if func is not None:
            _check_options(pipeline, stage, func, options)
    _check_values(path, stages)
    return pipeline


def _check_values(path: Path, stages: dict[str, dict[str, Any]]) -> None:
    """Option values an analysis stage would only refuse after its expensive work, refused now."""
    from searchprobe.errors import InputError

    def positive(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0

    lens = stages.get("lens", {})
    for key in ("limit", "tuned_examples", "tuned_steps", "batch_size", "tuned_lr"):
        if key in lens and not positive(lens[key]):
            raise ConfigError(f"{path} [lens]: {key} = {lens[key]!r}; allowed: a positive number")
    if "probe" in stages:
        from searchprobe.probe.checks import check_probe_options

        params = inspect.signature(check_probe_options).parameters
        try:
            check_probe_options(**{k: v for k, v in stages["probe"].items() if k in params})
        except InputError as exc:
            raise ConfigError(f"{path} [probe]: {exc}") from None


def _entry_point(stage: str) -> Callable | None:
    """The stage's function, or None while its module does not exist (another stage may not be written yet)."""
    _table, module_name, func_name, _out = ANALYSIS_STAGES[stage]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            return None
        raise
    return getattr(module, func_name, None)


def _check_options(p: "Pipeline", stage: str, func: Callable, options: dict[str, Any]) -> None:
    table, module_name, func_name, _out = ANALYSIS_STAGES[stage]
    params = inspect.signature(func).parameters
    if any(v.kind is inspect.Parameter.VAR_KEYWORD for v in params.values()):
        return
    unknown = [k for k in options if k not in params or k == "run_dir"]
    if unknown:
        allowed = [k for k in params if k != "run_dir"]
        raise ConfigError(f"{p.path} [{table}]: unknown option(s) {', '.join(unknown)} for {module_name}.{func_name}; "
                          f"allowed: {', '.join(allowed)}")


def _experiment_config(p: Pipeline):
    from searchprobe.train.config import TrainConfig
    from searchprobe.train.run import ExperimentConfig

    train = {k: v for k, v in p.train.items() if k not in _TRAIN_EXTRA}
    extra = {k: v for k, v in p.train.items() if k in _TRAIN_EXTRA}
    if "eval_split" in extra and not isinstance(extra["eval_split"], str):
        raise ConfigError(f"{p.path} [train]: eval_split = {extra['eval_split']!r}; allowed: a split name")
    cfg = ExperimentConfig(data=str(p.dataset_dir), model=p.model,
                           train=from_dict(TrainConfig, train, f"{p.path} [train]"), **extra)
    cfg.model_config()
    return cfg


@dataclass
class StageOutcome:
    stage: str
    status: str  #: "ran", "skipped (exists)", "skipped (not installed)", "skipped (not requested)", "failed"
    output: str = ""
    seconds: float = 0.0
    note: str = ""


@dataclass
class PipelineResult:
    run_dir: Path
    outcomes: list[StageOutcome]

    @property
    def failed(self) -> list[str]:
        return [o.stage for o in self.outcomes if o.status == "failed"]

    @property
    def report_path(self) -> Path:
        return self.run_dir / "report.html"

    def describe(self) -> str:
        lines = [f"{o.stage:<9} {o.status:<26} {o.seconds:7.1f} s  {o.output}{'  (' + o.note + ')' if o.note else ''}"
                 for o in self.outcomes]
        return "\n".join(lines + [f"report: {self.report_path.resolve()}"])


def run_pipeline(p: Pipeline, *, force: bool = False, only: list[str] | None = None,
                 progress: bool = True) -> PipelineResult:
    """Run every stage of `p` in order; returns what ran, what was skipped and why."""
    if only is not None:
        bad = [s for s in only if s not in STAGE_ORDER]
        if bad:
            raise ConfigError(f"unknown stage(s) {', '.join(bad)} in --only; choose from: {', '.join(STAGE_ORDER)}")
    _preflight(p, force, only)
    outcomes = []
    steps: list[tuple[str, Callable[[], StageOutcome]]] = [
        ("generate", lambda: _generate(p, force, progress)),
        ("train", lambda: _train(p, force, progress)),
    ]
    steps += [(stage, (lambda s=stage: _analysis(p, s, force, progress))) for stage in ANALYSIS_STAGES]
    steps.append(("report", lambda: _report(p, force)))
    for stage, action in steps:
        if only is not None and stage not in only:
            outcomes.append(StageOutcome(stage, "skipped (not requested)"))
            continue
        start = time.perf_counter()
        outcome = action()
        outcome.seconds = time.perf_counter() - start
        outcomes.append(outcome)
        print(f"[{p.name}] {stage}: {outcome.status} {outcome.output} {outcome.note}".rstrip(), flush=True)
    return PipelineResult(p.run_dir, outcomes)


def run_experiment(path: str | Path, *, out: str | Path | None = None, force: bool = False,
                   only: list[str] | None = None, progress: bool = True, overrides: Sequence[str] = ()) -> PipelineResult:
    """`searchprobe run PATH` as a function: load the experiment TOML and run its stages."""
    return run_pipeline(load_pipeline(path, out=out, overrides=overrides), force=force, only=only, progress=progress)


def _preflight(p: Pipeline, force: bool, only: list[str] | None) -> None:
    """Refuse, before any stage runs, to write into what searchprobe did not write: a run directory
    whose config.json is not a searchprobe run's (a Hugging Face model folder, say), or a dataset
    folder that is not a searchprobe dataset."""
    from searchprobe.files import read_run_config
    from searchprobe.tasks.store import check_replaceable

    wanted = set(STAGE_ORDER if only is None else only)
    config = p.run_dir / "config.json"
    if config.exists() and wanted & {"train", "lens", "probe", "patch", "report"}:
        try:
            read_run_config(p.run_dir)
        except DataError as exc:
            raise DataError(f"{exc}; searchprobe writes only into its own run directories: choose another --out") from None
    if "generate" in wanted and "path" not in p.data:
        check_replaceable(p.dataset_dir, "generate stage")
    if "train" in wanted:
        from searchprobe.guard import foreign_run_entries

        foreign = foreign_run_entries(p.run_dir)
        if foreign:
            raise DataError(f"{p.run_dir / foreign[0]} exists but searchprobe did not write it; choose another --out")


def _generate(p: Pipeline, force: bool, progress: bool) -> StageOutcome:
    from searchprobe.guard import record_entries
    from searchprobe.tasks.store import is_dataset_dir

    target = p.dataset_dir
    if "path" in p.data:
        return StageOutcome("generate", "skipped (exists)", str(target), note="existing dataset")
    if is_dataset_dir(target) and not force:
        return StageOutcome("generate", "skipped (exists)", str(target))
    from searchprobe.tasks.base import get_task

    if target.parent.resolve() == p.run_dir.resolve():
        record_entries(p.run_dir, target.name)

    task = get_task(load_toml(p.data["task"]).get("task"), f"{p.data['task']}: top-level key 'task'")
    task.generate(p.data["task"], out=target, n=p.data.get("n"), seed=p.data.get("seed"), overwrite=True,
                  workers=p.data.get("workers", 1), progress=progress)
    return StageOutcome("generate", "ran", str(target))


def _train(p: Pipeline, force: bool, progress: bool) -> StageOutcome:
    from searchprobe.files import FINISHED
    from searchprobe.guard import lock_directory, remove_owned
    from searchprobe.train.checkpoint import find_train_state
    from searchprobe.train.run import train_run

    run_dir = p.run_dir
    done = (run_dir / "model.safetensors").is_file() and (run_dir / "eval.json").is_file()
    done = done and ((run_dir / FINISHED).is_file() or find_train_state(run_dir) is None)
    if done and not force:
        return StageOutcome("train", "skipped (exists)", str(run_dir))
    cfg = dataclasses.replace(_experiment_config(p), data=str(p.dataset_dir))
    with lock_directory(run_dir):
        if force:  # a fresh run: the analysis outputs of the old model are stale too (only what searchprobe wrote goes)
            remove_owned(run_dir, keep=[p.dataset_dir])
        # a run that died before its first checkpoint starts over inside train_run
        resume = (run_dir / "config.json").is_file() and find_train_state(run_dir) is not None and not force
        final = train_run(cfg, run_dir, resume=resume, progress=progress)
    note = ", ".join(f"{k}={v:.3f}" for k, v in list(final.items())[:4] if isinstance(v, float))
    return StageOutcome("train", "ran" + (" (resumed)" if resume else ""), str(run_dir), note=note)


def _analysis(p: Pipeline, stage: str, force: bool, progress: bool) -> StageOutcome:
    table, module_name, func_name, output = ANALYSIS_STAGES[stage]
    if stage not in p.stages:
        return StageOutcome(stage, "skipped (not requested)", note=f"no [{table}] table in {p.path.name}")
    target = p.run_dir / output
    if target.is_file() and not force:
        return StageOutcome(stage, "skipped (exists)", str(target.parent))
    func = _entry_point(stage)
    if func is None:
        return StageOutcome(stage, "skipped (not installed)", note=f"{module_name}.{func_name} does not exist yet")
    options = dict(p.stages[stage])
    _check_options(p, stage, func, options)
    params = inspect.signature(func).parameters
    for flag, value in (("force", force), ("overwrite", force), ("progress", progress)):
        if flag in params and flag not in options:  # only flags the entry point names (not through **kwargs)
            options[flag] = value
    try:
        result = func(p.run_dir, **options)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 — one analysis stage failing must not lose the others or the report
        return StageOutcome(stage, "failed", note=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    from searchprobe.guard import record_entries

    record_entries(p.run_dir, Path(output).parts[0])
    return StageOutcome(stage, "ran", str(result))


def _report(p: Pipeline, force: bool) -> StageOutcome:
    from searchprobe.report import build_report

    html_path = p.run_dir / "report.html"
    inputs = [p.run_dir / name for name in ("metrics.jsonl", "eval.json", "config.json")]
    inputs += [p.run_dir / out for *_rest, out in ANALYSIS_STAGES.values()]
    newest = max((f.stat().st_mtime for f in inputs if f.is_file()), default=0.0)
    if html_path.is_file() and html_path.stat().st_mtime >= newest and not force:
        return StageOutcome("report", "skipped (exists)", str(html_path), note="newer than every input")
    result = build_report(p.run_dir, n_examples=int(p.report.get("examples", 4)))
    note = f"missing: {len(result.missing)}" if result.missing else ""
    return StageOutcome("report", "ran", str(result.html_path), note=note)
