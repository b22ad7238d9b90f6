"""`searchprobe demo`: the end-to-end demo — the search library, both tasks, and the model pipeline.

1. The search & prior-cost library: busy beavers, a dovetailer with its implied prior, Levin
   search, the forwarding map, the discounted evaluator, circuit priors, slope complexity —
   each sub-verb's JSON and plots under ``<out>/search/``.
2. Each task's own showcase (`Task.showcase`), e.g. chess mate-in-k puzzles with their alpha-beta trees.
3. The model pipeline of ``experiments/demo.toml`` (generate mazes → train → lens → probes →
   patching → report) via `searchprobe run`, ending in ``<out>/run/report.html``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from pathlib import Path

#: (name, argv after `searchprobe search`) of the library showcase; each writes <name>.json.
SEARCH_SHOWCASE: list[tuple[str, list[str]]] = [
    ("busy_beaver", ["bb", "--n", "3"]),
    ("dovetail", ["dovetail", "--a", "2", "--b", "3", "--task", "tm:unary_successor"]),
    ("levin", ["levin", "--target", "2"]),
    ("forwarding", ["forwarding", "--grid", "16"]),
    ("discount", ["discount", "--depth", "6", "--discounts", "1,0.5,0.1"]),
    ("circuits", ["circuits", "--n", "3"]),
    ("priors", ["priors"]),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    parser.add_argument("--experiment", default="experiments/demo.toml", help="the model pipeline's experiment file")
    parser.add_argument("--skip-model", action="store_true", help="only the search library and task showcases")
    parser.add_argument("--force", action="store_true", help="redo stages whose outputs exist")


def run(args: argparse.Namespace) -> int:
    from searchprobe.guard import check_out_path

    out = check_out_path(Path(args.out))
    pipeline = None
    if not args.skip_model:  # the experiment is checked before any work
        from searchprobe.pipeline import load_pipeline

        pipeline = load_pipeline(Path(args.experiment), out=out / "run")
    start = time.perf_counter()
    summary: dict[str, object] = {"search": run_search_showcase(out / "search")}
    summary["tasks"] = run_task_showcases(out / "tasks")
    failed: list[str] = []
    if pipeline is not None:
        result = run_model_pipeline(Path(args.experiment), out / "run", force=args.force)
        summary["report"] = str(result.report_path)
        summary["stages"] = {o.stage: o.status for o in result.outcomes}
        failed = result.failed
    summary["seconds"] = round(time.perf_counter() - start, 1)
    from searchprobe.io import atomic_write_json

    atomic_write_json(out / "demo.json", summary)
    print(f"\ndemo finished in {summary['seconds']} s; outputs under {out}/")
    if "report" in summary:
        print(f"report: {summary['report']}")
    if failed:
        print(f"stages that failed: {', '.join(failed)} (see above)")
        return 1
    return 0


def run_search_showcase(out: Path) -> dict[str, object]:
    """Run each showcase sub-verb with --json --out; keep its JSON, print one line per verb."""
    from searchprobe.cli import main

    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {}
    print("== the search & prior-cost library")
    for name, argv in SEARCH_SHOWCASE:
        buffer = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(buffer):
            code = main(["search", *argv, "--json", "--out", str(out)])
        if code != 0:
            raise RuntimeError(f"demo step `searchprobe search {' '.join(argv)}` failed with exit code {code}")
        data = json.loads(buffer.getvalue())
        (out / f"{name}.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        results[name] = f"{name}.json"
        print(f"  {name:<12} {_headline(name, data)}  ({time.perf_counter() - t0:.1f} s)")
    return results


#: One readable line per showcase result: the numbers that matter.
_HEADLINES = {
    "busy_beaver": lambda d: f"S({d['n']}) = {d['S']}, Σ({d['n']}) = {d['Sigma']} from {d['n_halting']} halting TNF machines",
    "dovetail": lambda d: f"Dovetailer(2,3): winner #{d['winner']} in round {d['round']} = implied rank {d['implied_rank']}, "
                          f"{d['cells']} cells (continuous estimate {d['continuous_estimate']:.0f})",
    "levin": lambda d: f"Church {d['target']}: {d['term']} ({d['bits']} bits) in phase {d['phase']} (bound {d['phase_bound']}), "
                       f"work {d['work']} (bound {d['work_bound']})",
    "forwarding": lambda d: f"fixed points {[c for c in d['analysis']['fixed_points']] or 'none'}, cycles "
                            f"{['→'.join(c['slopes']) for c in d['analysis']['cycles']]}",
    "discount": lambda d: f"share of f* at depth {d['depths'][-1]}: "
                          + ", ".join(f"d={x}: {row:.3f}" for x, row in zip(d['discounts'], d['share'][-1])),
    "circuits": lambda d: f"n=3 circuit sizes {d['circuit_size']['histogram']}; full adder {d['circuit_sharing']['full_adder']['joint_size']} "
                          f"gates jointly vs {d['circuit_sharing']['full_adder']['carry_size']} + "
                          f"{d['circuit_sharing']['full_adder']['sum_size']} apart",
    "priors": lambda d: f"{len(d['slopes'])} slopes priced; plot {Path(d['plot']).name}",
}


def _headline(name: str, data: dict) -> str:
    try:
        return _HEADLINES[name](data)
    except (KeyError, TypeError, IndexError):  # a result shape the headline does not know: still show something
        return ", ".join(sorted(data)[:4])


def run_task_showcases(out: Path) -> dict[str, object]:
    """Every registered task's showcase (`Task.showcase`) under ``<out>/<task>/``; tasks without one are skipped."""
    from searchprobe.tasks.base import get_task, task_names

    results: dict[str, object] = {}
    for name in task_names():
        shown = get_task(name).showcase(out / name)
        if shown is not None:
            results[name] = shown
    return results


def run_model_pipeline(experiment: Path, out: Path, force: bool = False):
    """generate → train → lens → probes → patching → report, via the `run` pipeline."""
    from searchprobe.pipeline import run_experiment

    print(f"== the model pipeline: {experiment}")
    result = run_experiment(experiment, out=out, force=force)
    print(result.describe())
    return result
