"""`searchprobe search …`: the search & prior-cost library from the command line.

Sub-verbs (each prints a readable table; `--json` prints the same numbers as JSON; `--out DIR`
is where pictures and JSON files go):

  dovetail     one Dovetailer(a, b) on a named task: winner, round, cells, implied rank, estimate
  levin        Levin / FAST search for a Church numeral over binary lambda calculus
  priors       slope complexity (bits of a/b) plots and values, mixed prior costs
  forwarding   the outer→inner prior map over dovetailer slopes: fixed points, cycles, jumps
  discount     the discounted loss evaluator: share of object-level runtime f* vs depth
  circuits     exact formula / circuit / depth cost histograms and witnesses for n ≤ 4 inputs
  tm           run one Turing machine (bbchallenge format) for a step budget
  bb           busy-beaver values S(n), Σ(n) by tree-normal-form enumeration

numpy, matplotlib and the library modules are imported inside the handlers so `--help` is fast.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, Sequence

from searchprobe.errors import InputError

#: Default cap on the cells (dovetail) or steps (levin) a search may run before it gives up.
DEFAULT_MAX_CELLS = 2_000_000

#: Named tasks for `dovetail`, besides the `table:` and `synthetic:` forms (see `_resolve_task`).
TASK_FORMS = (
    "table:R0,R1,… (runtimes; 'inf' never halts; a trailing '*' marks an accepted program, e.g. table:9*,inf,2*)",
    "synthetic:SEED:I (task I of forwarding.synthetic_family(seed=SEED))",
    "lambda:K (binary lambda calculus terms whose normal form is the Church numeral K)",
    "tm:NAME (Turing-machine task: write_ones_K, unary_successor or unary_add; --max-states sets the space)",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    common.add_argument("--out", type=Path, default=None, metavar="DIR", help="directory for plots and JSON files")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    sub = parser.add_subparsers(dest="subverb", metavar="SUBVERB", required=True)

    p = sub.add_parser("dovetail", parents=[common], help="run Dovetailer(a, b) on a task")
    p.add_argument("--a", type=int, required=True, help="programs admitted per round (≥ 1)")
    p.add_argument("--b", type=int, required=True, help="steps per program per round (≥ 1)")
    p.add_argument("--task", required=True, help="; ".join(TASK_FORMS))
    p.add_argument("--max-rounds", type=int, default=None, help="give up after this many rounds")
    p.add_argument("--max-cells", type=int, default=DEFAULT_MAX_CELLS,
                   help=f"give up after this many cells (default {DEFAULT_MAX_CELLS:,}; a task may have no halting solution)")
    p.add_argument("--max-bits", type=int, default=24, help="lambda tasks: largest term size in bits (default 24)")
    p.add_argument("--max-states", type=int, default=2, help="tm tasks: machines with 1..MAX states (default 2)")
    p.set_defaults(_handler=_dovetail)

    p = sub.add_parser("levin", parents=[common], help="Levin / FAST search over binary lambda calculus")
    p.add_argument("--target", type=int, required=True, help="the Church numeral K the normal form must equal")
    p.add_argument("--max-bits", type=int, default=32, help="largest term size in bits (default 32)")
    p.add_argument("--max-phase", type=int, default=None, help="give up after this phase")
    p.add_argument("--max-work", type=int, default=DEFAULT_MAX_CELLS,
                   help=f"give up after this many steps in all (default {DEFAULT_MAX_CELLS:,})")
    p.set_defaults(_handler=_levin)

    p = sub.add_parser("priors", parents=[common], help="slope complexity plots and values")
    p.add_argument("--max-value", type=int, default=100, help="a, b ∈ 1..MAX for the plots (default 100)")
    p.set_defaults(_handler=_priors)

    p = sub.add_parser("forwarding", parents=[common], help="outer→inner prior map over dovetailer slopes")
    p.add_argument("--grid", type=int, default=16, help="slopes p/q with p, q ∈ 1..GRID (default 16)")
    p.add_argument("--base-bits", type=float, default=8.0, help="description bits every dovetailer shares (default 8)")
    p.add_argument("--family", default="synthetic", help="'synthetic' (seeded, default) or 'tm' (tm_tasks families)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic family (default 0)")
    p.add_argument("--tasks", type=int, default=24, help="tasks in the synthetic family (default 24)")
    p.add_argument("--programs", type=int, default=None,
                   help="programs per task (default 256 for synthetic, all machines ≤ 2 states for tm)")
    p.add_argument("--max-steps", type=int, default=64, help="tm family: step cap per program (default 64)")
    p.add_argument("--candidates", choices=["reduced", "all"], default="reduced",
                   help="dovetailers in lowest terms only, or every (a, b) (default reduced)")
    p.set_defaults(_handler=_forwarding)

    p = sub.add_parser("discount", parents=[common], help="discounted loss evaluator: f* share vs nesting depth")
    p.add_argument("--depth", type=int, default=6, help="largest nesting depth (default 6)")
    p.add_argument("--discounts", default="1,0.5,0.1", help="comma-separated discounts in [0, 1] (default 1,0.5,0.1)")
    p.add_argument("--n", type=float, default=100.0, help="candidates per level (default 100)")
    p.add_argument("--m", type=float, default=1.0, help="cost to generate one candidate (default 1)")
    p.add_argument("--f", type=float, default=10.0, help="cost to run one candidate on the training set (default 10)")
    p.add_argument("--l", type=float, default=1.0, help="cost to compute one loss (default 1)")
    p.add_argument("--f-star", type=float, default=10.0, help="object-level runtime f* (default 10)")
    p.set_defaults(_handler=_discount)

    p = sub.add_parser("circuits", parents=[common], help="exact Boolean formula / circuit cost tables")
    p.add_argument("--n", type=int, default=3, help="number of inputs, 1..4 (default 3)")
    p.set_defaults(_handler=_circuits)

    p = sub.add_parser("tm", parents=[common], help="run one Turing machine")
    p.add_argument("machine", help="bbchallenge format, e.g. 1RB1LB_1LA1RZ")
    p.add_argument("--steps", type=int, default=1000, help="step budget (positive, default 1000)")
    p.add_argument("--tape", default=None, help="initial tape as 0/1 characters (default blank)")
    p.set_defaults(_handler=_tm)

    p = sub.add_parser("bb", parents=[common], help="busy-beaver values by enumeration")
    p.add_argument("--n", type=int, default=3, help="number of states, 1..4 (default 3)")
    p.set_defaults(_handler=_bb)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "out", None) is not None:  # a file, or a path under one, fails before the search
        from searchprobe.guard import check_out_path

        check_out_path(args.out)
    return int(args._handler(args) or 0)


# --------------------------------------------------------------------------------------------
# output helpers
# --------------------------------------------------------------------------------------------


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table with right-aligned numbers and left-aligned text."""
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(row[i] is None or (isinstance(row[i], (int, float)) and not isinstance(row[i], bool)) for row in rows)
               for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(list(headers)), sep] + [line(r) for r in cells])


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e7 or abs(value) < 1e-3):
            return f"{value:.4g}"
        return f"{value:.6g}"
    return "-" if value is None else str(value)


def _emit(args: argparse.Namespace, payload: dict, text: str) -> None:
    if args.json:
        print(json.dumps(payload, indent=2, sort_keys=True, default=_json_default, ensure_ascii=False))
    else:
        print(text)


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _out_dir(args: argparse.Namespace) -> Path | None:
    if args.out is None:
        return None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a directory; give a directory path")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _positive(value: int | None, option: str) -> int | None:
    if value is not None and value <= 0:
        raise InputError(f"{option} {value} is not allowed; it must be a positive integer")
    return value


# --------------------------------------------------------------------------------------------
# dovetail
# --------------------------------------------------------------------------------------------


def _resolve_task(spec: str, max_bits: int, max_states: int = 2) -> tuple[Any, str]:
    """A `ProgramSearchTask` from a --task string, and a readable description of it."""
    kind, _, rest = spec.partition(":")
    if kind == "table" and rest:
        from searchprobe.search.programs import TableTask

        runtimes, accepted = [], []
        for pos, item in enumerate(rest.split(",")):
            item = item.strip()
            ok = item.endswith("*")
            item = item.rstrip("*")
            try:
                value = math.inf if item == "inf" else int(item)
            except ValueError:
                value = 0
            if value != math.inf and value < 1:
                raise InputError(f"--task {spec!r}: entry {pos} ({item!r}) is not a runtime; use integers ≥ 1 or 'inf', '*' marks accepted")
            runtimes.append(value)
            accepted.append(ok)
        if not any(ok and rt != math.inf for ok, rt in zip(accepted, runtimes)):
            raise InputError(f"--task {spec!r} has no accepted program that halts; put '*' after at least one finite runtime")
        return TableTask(runtimes, accepted), f"table of {len(runtimes)} programs"
    if kind == "synthetic" and rest:
        from searchprobe.search.forwarding import synthetic_family
        from searchprobe.search.programs import TableTask

        seed_s, _, index_s = rest.partition(":")
        try:
            seed, index = int(seed_s), int(index_s or 0)
        except ValueError:
            raise InputError(f"--task {spec!r}: expected synthetic:SEED:INDEX with integers") from None
        family = synthetic_family(seed=seed)
        if not 0 <= index < family.num_tasks:
            raise InputError(f"--task {spec!r}: index {index} is outside 0..{family.num_tasks - 1}")
        return TableTask(list(family.runtimes[index]), list(family.accepted[index])), family.names[index]
    if kind == "lambda" and rest:
        from searchprobe.search.lambda_calculus import LambdaTask, church

        target = _church_target(rest, "--task")
        return LambdaTask(lambda nf: nf == church(target), max_bits=max_bits), f"lambda terms ≤ {max_bits} bits with normal form {target}"
    if kind == "tm" and rest:
        return _tm_task(rest, max_states)
    raise InputError(f"--task {spec!r} is not a task; use one of: " + "; ".join(TASK_FORMS))


def _church_target(text: str, option: str) -> int:
    try:
        target = int(text)
    except ValueError:
        target = -1
    if target < 0:
        raise InputError(f"{option} {text!r} is not allowed; the Church numeral target must be an integer ≥ 0")
    return target


def _tm_task(name: str, max_states: int) -> tuple[Any, str]:
    from searchprobe.search import tm_tasks

    if name == "unary_successor":
        task = tm_tasks.unary_successor(max_states=max_states)
    elif name == "unary_add":
        task = tm_tasks.unary_add(max_states=max_states)
    elif name.startswith("write_ones_") and name[len("write_ones_"):].isdigit():
        task = tm_tasks.write_ones(int(name[len("write_ones_"):]), max_states=max_states)
    else:
        raise InputError(f"--task tm:{name} is not a Turing-machine task; use tm:write_ones_K, tm:unary_successor or tm:unary_add")
    return task, f"Turing-machine task {task.name} (machines with ≤ {max_states} states)"


def _dovetail(args: argparse.Namespace) -> int:
    from searchprobe.search.dovetail import Dovetailer, continuous_cost, implied_rank

    dovetailer = Dovetailer(args.a, args.b)
    _positive(args.max_rounds, "--max-rounds")
    _positive(args.max_cells, "--max-cells")
    task, description = _resolve_task(args.task, args.max_bits, args.max_states)
    result = dovetailer.run(task, max_rounds=args.max_rounds, max_cells=args.max_cells, record_trace=args.out is not None)
    payload: dict[str, Any] = {
        "a": dovetailer.a, "b": dovetailer.b, "task": args.task, "description": description,
        "winner": result.winner, "round": result.round, "cells": result.cells, "runtime": result.runtime,
    }
    if result.winner is not None:
        n, t = result.winner + 1, result.runtime
        estimate = float(continuous_cost(n, t, dovetailer.a, dovetailer.b))
        payload.update(implied_rank=int(implied_rank(n, t, dovetailer.a, dovetailer.b)), continuous_estimate=estimate,
                       estimate_relative_error=(estimate - result.cells) / result.cells)
    out = _out_dir(args)
    if out is not None:
        from searchprobe.io import atomic_write_json

        payload["trace_file"] = str(atomic_write_json(out / "dovetail_trace.json", result.trace.to_record()))
    rows = [(k, payload[k]) for k in ("winner", "runtime", "round", "implied_rank", "cells", "continuous_estimate",
                                       "estimate_relative_error") if k in payload]
    head = f"Dovetailer(a={dovetailer.a}, b={dovetailer.b}) on {description}"
    if result.winner is None:
        head += "\nno accepted program within the limits (raise --max-rounds / --max-cells)"
    _emit(args, payload, head + "\n" + format_table(["quantity", "value"], rows))
    return 0


# --------------------------------------------------------------------------------------------
# levin
# --------------------------------------------------------------------------------------------


def _levin(args: argparse.Namespace) -> int:
    from searchprobe.search.lambda_calculus import LambdaTask, church, to_str
    from searchprobe.search.levin import halting_phase, levin_search

    target = _church_target(str(args.target), "--target")
    _positive(args.max_phase, "--max-phase")
    _positive(args.max_work, "--max-work")
    task = LambdaTask(lambda nf: nf == church(target), max_bits=args.max_bits)
    result = levin_search(task, max_phase=args.max_phase, max_work=args.max_work, record_trace=args.out is not None)
    payload: dict[str, Any] = {"target": target, "max_bits": args.max_bits, "winner": result.winner,
                               "phase": result.phase, "work": result.work, "runtime": result.runtime, "bits": result.bits}
    if result.winner is not None:
        payload.update(
            term=to_str(task.program(result.winner)),
            phase_bound=halting_phase(result.bits, result.runtime),
            work_bound=4 * result.runtime * 2**result.bits,
        )
    out = _out_dir(args)
    if out is not None:
        from searchprobe.io import atomic_write_json

        payload["trace_file"] = str(atomic_write_json(out / "levin_trace.json", result.trace.to_record()))
    rows = [(k, payload[k]) for k in ("term", "winner", "bits", "runtime", "phase", "phase_bound", "work", "work_bound") if k in payload]
    head = f"Levin/FAST search for Church numeral {target} (terms ≤ {args.max_bits} bits)"
    if result.winner is None:
        head += "\nno accepted term within the limits (raise --max-bits / --max-phase / --max-work)"
    _emit(args, payload, head + "\n" + format_table(["quantity", "value"], rows))
    return 0


# --------------------------------------------------------------------------------------------
# priors
# --------------------------------------------------------------------------------------------


#: Slopes shown by `priors`: the seed's examples of how rough the slope cost is.
PRIOR_EXAMPLES = ((1, 1), (2, 2), (1, 2), (2, 1), (3, 4), (6, 8), (7, 13), (16, 1), (64, 96), (99, 100))


def _priors(args: argparse.Namespace) -> int:
    from searchprobe.search.priors import mixed_cost, plot_slope_complexity, slope_bits

    if args.max_value < 1:
        raise InputError(f"--max-value {args.max_value} is not allowed; it must be a positive integer")
    rows = []
    for a, b in PRIOR_EXAMPLES:
        g = math.gcd(a, b)
        rows.append((f"{a}/{b}", f"{a // g}/{b // g}", math.log2(a / b), slope_bits(a, b),
                     mixed_cost(100, 10, a, b)))
    payload: dict[str, Any] = {
        "slopes": [{"slope": r[0], "reduced": r[1], "log2_slope": r[2], "bits": r[3], "mixed_cost_t100_dl10": r[4]}
                   for r in rows],
    }
    out = _out_dir(args)
    if out is not None:
        payload["plot"] = str(plot_slope_complexity(out / "slope_complexity.png", max_value=args.max_value))
    text = format_table(["slope", "lowest terms", "log2 slope", "bits", "a·100 + b·2^10"], rows)
    if "plot" in payload:
        text += f"\nplot: {payload['plot']}"
    _emit(args, payload, text)
    return 0


# --------------------------------------------------------------------------------------------
# forwarding
# --------------------------------------------------------------------------------------------


def _forwarding_family(args: argparse.Namespace):
    from searchprobe.search import forwarding

    _positive(args.programs, "--programs")
    if args.family == "synthetic":
        return forwarding.synthetic_family(num_tasks=args.tasks, num_programs=args.programs or 256, seed=args.seed)
    if args.family == "tm":
        return forwarding.tm_family(num_programs=args.programs, max_steps=args.max_steps)
    raise InputError(f"--family {args.family!r} is not a task family; use 'synthetic' or 'tm'")


def _forwarding(args: argparse.Namespace) -> int:
    from searchprobe.search import forwarding

    if args.grid < 1 or args.grid > 64:
        raise InputError(f"--grid {args.grid} is not allowed; use an integer in 1..64")
    family = _forwarding_family(args)
    fmap = forwarding.forwarding_map(family, grid=args.grid, base_bits=args.base_bits, candidates=args.candidates)
    analysis = fmap.analyse()
    summary = analysis.to_dict()
    payload: dict[str, Any] = {"family": repr(family), "grid": args.grid, "base_bits": args.base_bits,
                               "candidates": args.candidates, "analysis": summary, "map": fmap.to_dict()["map"]}
    out = _out_dir(args)
    if out is not None:
        from searchprobe.io import atomic_write_json

        payload["plots"] = [str(forwarding.plot_forwarding_map(fmap, out / "forwarding_map.png", analysis)),
                            str(forwarding.plot_trajectories(fmap, out / "forwarding_trajectories.png", analysis))]
        payload["json_file"] = str(atomic_write_json(out / "forwarding.json", {k: v for k, v in payload.items()}))
    cycle_rows = [(" → ".join(c["slopes"]), c["length"], c["basin_size"], ", ".join(f"{x:+.3g}" for x in c["log2_slopes"]))
                  for c in summary["cycles"]]
    image = sorted(set(fmap.inner), key=lambda p: p[0] / p[1])
    lines = [
        f"outer→inner prior map on {family!r}",
        f"grid 1..{args.grid} ({len(fmap.outer)} slopes), base {args.base_bits:g} bits, candidates: {args.candidates}",
        f"image: {len(image)} inner slopes: {', '.join(f'{a}/{b}' for a, b in image)}",
        "",
        format_table(["cycle", "length", "basin", "log2 slopes"], cycle_rows),
        "",
        f"fixed points: {', '.join(summary['fixed_points']) or 'none'}",
        f"longest transient: {summary['max_transient']} steps",
        f"jumps along trajectories (|Δ log2 slope|): max {summary['trajectory_jump_max']:.3g}, "
        f"mean {summary['trajectory_jump_mean']:.3g}",
        f"largest discontinuity: {summary['discontinuities'][0]['image_jump_log2']:.3g} bits of image between "
        f"neighbouring outer slopes {summary['discontinuities'][0]['from']} and {summary['discontinuities'][0]['to']} "
        f"(grid spacing ≤ {summary['grid_spacing_max']:.3g})" if summary["discontinuities"] else "largest discontinuity: -",
    ]
    if "plots" in payload:
        lines.append("plots: " + ", ".join(payload["plots"]))
    _emit(args, payload, "\n".join(lines))
    return 0


# --------------------------------------------------------------------------------------------
# discount
# --------------------------------------------------------------------------------------------


def _parse_discounts(text: str) -> list[float]:
    values = []
    for item in text.split(","):
        try:
            d = float(item)
        except ValueError:
            d = math.nan
        if not 0.0 <= d <= 1.0:
            raise InputError(f"--discounts {text!r}: {item.strip()!r} is not a discount; give comma-separated numbers in [0, 1]")
        values.append(d)
    return values


def _discount(args: argparse.Namespace) -> int:
    from searchprobe.search.forwarding import DiscountModel, discount_table, plot_discount_table

    discounts = _parse_discounts(args.discounts)
    if args.depth < 1:
        raise InputError(f"--depth {args.depth} is not allowed; it must be an integer ≥ 1")
    model = DiscountModel(n=args.n, m=args.m, f=args.f, l=args.l, f_star=args.f_star)
    table = discount_table(model, discounts, args.depth)
    payload = table.to_dict()
    out = _out_dir(args)
    if out is not None:
        payload["plot"] = str(plot_discount_table(table, out / "discount_share.png"))
    headers = ["depth"] + [f"d={d:g}" for d in table.discounts] + ["d→0 limit"]
    rows = [[depth] + [float(x) for x in table.share[i]] + [payload["limit_d0_share"][i]] for i, depth in enumerate(table.depths)]
    text = (f"share of object-level runtime f* in total cost  (n={model.n:g}, m={model.m:g}, f={model.f:g}, "
            f"l={model.l:g}, f*={model.f_star:g}; box at level k charges d^k)\n" + format_table(headers, rows))
    if "plot" in payload:
        text += f"\nplot: {payload['plot']}"
    _emit(args, payload, text)
    return 0


# --------------------------------------------------------------------------------------------
# circuits, tm, bb
# --------------------------------------------------------------------------------------------


def _circuits(args: argparse.Namespace) -> int:
    if not 1 <= args.n <= 4:
        raise InputError(
            f"--n {args.n} is not allowed; the exhaustive circuit tables cover 1..4 inputs "
            f"(n = 5 has 2^32 functions, too many to tabulate exactly)"
        )
    from searchprobe.search.circuits import circuit_report

    report = circuit_report(args.n)
    _emit(args, report, _circuit_text(report))
    return 0


def _circuit_text(report: dict) -> str:
    """The circuit report as tables: cost histograms, examples, and the three forwarding witnesses."""
    n = report["n"]
    hist = {key: (report.get(key) or {}).get("histogram", []) for key in ("formula_size", "formula_depth", "circuit_size")}
    rows = []
    for cost in range(max(len(h) for h in hist.values())):
        rows.append([cost] + [h[cost] if cost < len(h) else None for h in hist.values()])
    circuit = report.get("circuit_size") or {}
    lines = [f"Boolean functions of {n} inputs ({2 ** 2 ** n} functions); leaves free, 2-input gates cost 1, NOT free", "",
             format_table(["cost", "formula size L", "formula depth D", "circuit size C"], rows)]
    if circuit and not circuit.get("complete", True):
        lines.append(f"(circuit sizes tabulated up to {circuit.get('max_cost')} gates; {circuit.get('above_cap')} functions cost more)")
    examples = report.get("examples") or []
    if examples:
        lines += ["", format_table(["table", "minimum formula", "L", "D", "C"],
                                   [(e["table"], e["formula"], e["L"], e["D"], e["C"]) for e in examples])]
    tree = report.get("tree_forwarding")
    if tree:
        lines += ["", f"tree prior forwards: {'yes' if tree.get('holds') else 'NO'} — formula size additive on "
                      f"{tree.get('pairs_additive')}/{tree.get('pairs_checked')} task pairs; "
                      f"{tree.get('subformulas_minimal')}/{tree.get('subformulas_checked')} sub-formulas minimal"]
        ex = tree.get("example")
        if ex:
            lines.append(f"  e.g. tasks {', '.join(ex['tasks'])}: sizes {ex['sizes']} → min forest {ex['min_forest_size']}")
    sharing = report.get("circuit_sharing")
    if sharing:
        lines += ["", f"circuit prior does not forward: tasks {', '.join(sharing['tasks'])} cost {sharing['task_sizes']} "
                      f"alone but {sharing['joint_size']} together ({sharing.get('pairs_shared')}/{sharing.get('pairs_checked')} "
                      "pairs share gates)"]
        lines += [f"  {g}" for g in sharing.get("circuit", {}).get("gates", [])]
        lines += [f"  {o}" for o in sharing.get("circuit", {}).get("outputs", [])]
    depth = report.get("depth_prior")
    if depth:
        hard = depth.get("hard", {})
        lines += ["", f"depth prior (limit {depth.get('depth_limit')} set by {hard.get('table')} = {hard.get('formula')}):"]
        rows = [(t.get("table"), t.get("formula"), t.get("size"), t.get("depth"), t.get("min_size_formulas"),
                 t.get("allowed_formulas")) for t in [hard] + list(depth.get("easy", []))]
        lines.append(format_table(["task", "formula", "size", "depth", "min-size formulas", "allowed under depth"], rows))
    return "\n".join(lines)


def _tm(args: argparse.Namespace) -> int:
    from searchprobe.search.machines import parse_machine, run

    _positive(args.steps, "--steps")
    machine = parse_machine(args.machine)
    result = run(machine, args.steps, tape=args.tape)
    payload = {"machine": str(machine), "states": machine.n_states, "budget": args.steps, "halted": result.halted,
               "steps": result.steps, "ones": result.ones, "tape": result.tape, "head": result.head}
    rows = [(k, payload[k]) for k in ("halted", "steps", "ones", "head")]
    tape = result.tape if len(result.tape) <= 120 else result.tape[:117] + "…"
    text = f"{machine} ({machine.n_states} states), budget {args.steps} steps\n" + format_table(["quantity", "value"], rows)
    text += f"\ntape: {tape}"
    _emit(args, payload, text)
    return 0


def _bb(args: argparse.Namespace) -> int:
    from searchprobe.search.machines import busy_beaver

    if not 1 <= args.n <= 4:
        raise InputError(f"--n {args.n} is not allowed; busy-beaver enumeration covers 1..4 states (n = 5 needs deciders)")
    value = busy_beaver(args.n)
    steps, ones = value
    payload = {"n": args.n, "S": int(steps), "Sigma": int(ones)}
    for key in ("steps_champion", "ones_champion", "n_halting", "n_undecided", "max_steps"):
        if hasattr(value, key):
            item = getattr(value, key)
            payload[key] = item if isinstance(item, int) else str(item)
    rows = [("S(n) max steps", payload["S"]), ("Σ(n) max ones", payload["Sigma"])]
    rows += [(k, payload[k]) for k in ("steps_champion", "ones_champion", "n_halting", "n_undecided", "max_steps") if k in payload]
    text = f"busy beaver, {args.n} states (tree-normal-form enumeration)\n" + format_table(["quantity", "value"], rows)
    _emit(args, payload, text)
    return 0
