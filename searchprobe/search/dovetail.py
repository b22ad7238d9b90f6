"""Dovetailing over a program space, the prior it implies, and exact cell accounting.

The `Dovetailer(a, b)` is the seed's ``dovetail(loss, tm_generator)`` with its slope made explicit.
Programs are the task's indices 0, 1, 2, … (simplest first); below, ``n = index + 1`` is the
1-based position of a program and ``t`` its runtime (steps to halt, the halting step included,
like a Turing machine's).

Semantics, round ``r = 1, 2, …``:

1. admit programs (in index order) until ``a·r`` have been admitted (fewer if the task runs out);
2. scan the admitted programs that have not halted, in index order, and run each for ``b`` more
   steps. A program that halts inside its budget uses only the steps up to and including its
   halting step (a "cell" is one (program, step) pair actually executed);
3. when a program halts: if the task accepts it (zero loss) the search stops right there, at the
   first accepted halt of the scan; otherwise it drops out of the run list.

A finite task whose programs have all been admitted and have all halted unaccepted ends with no
winner. `max_rounds` / `max_cells` cap the search (no winner if the cap is hit first; `max_cells`
is exact: the run is cut at that cell).

The implied prior (proof). Program n is admitted in round ``s_n = ceil(n/a)`` (round r admits up
to a·r programs). From then on it gets b steps per round, so after round r it has run
``min(t, b·(r − s_n + 1))`` steps and halts in the first round with ``b·(r − s_n + 1) ≥ t``::

    implied_rank(n, t) = ceil(n/a) + ceil(t/b) − 1.

Each program's progress depends only on its own (n, t): unaccepted programs never stop the
search and never delay another program. Within a round the scan is in index order and the search
stops at the first accepted halt, so the winner is the accepted program with the smallest pair
(implied_rank, n): it minimizes ``ceil(n/a) + ceil(t_n/b) − 1``, ties to the lower index. ∎

In the continuum ``ceil(n/a) + ceil(t/b) ≈ (b·n + a·t)/(a·b)``: the isolines are ``b·n + a·t``,
the seed's ``a·runtime + b·exp(description length)`` since ``n ~ 2^DL``. The cells executed up to
round R form (nearly) a triangle of ``a·b·R²/2`` cells, hence `continuous_cost`
``≈ (b·n + a·t)²/(2ab)``; `grid_cells` is its exact counterpart and `continuum_departure` shows
where the two part (small n and t, extreme slopes).

Trace (when recorded): per round, ADMIT for each newly admitted program, then for each program
scanned a RUN (g = its steps so far, extra column ``steps`` = cells it ran this round), then
HALT if it halted (g = its runtime, value = its 0/1 loss: 0 accepted, 1 not) and ACCEPT for the
winner. Every event carries the extra column ``round``; ``steps`` is -1 off RUN rows. The "step"
and "table" simulations write identical traces.

Exact cells when the winner w (1-based) halts in round R (`exact_cells`, O(#programs))::

    cells = Σ_{j<w, j≤aR} min(t_j, b·(R − s_j + 1)) + t_w + Σ_{w<j≤aR} min(t_j, b·(R − s_j))

(programs before the winner in the scan got their round-R budget, those after it did not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from searchprobe.errors import InputError
from searchprobe.search.programs import ProgramSearchTask, program_exists
from searchprobe.search.trace import CORE_COLUMNS, Event, Trace, TraceBuilder

__all__ = [
    "DovetailResult",
    "Dovetailer",
    "implied_rank",
    "implied_winner",
    "dovetail_outcome",
    "exact_cells",
    "exact_cells_many",
    "grid_cells",
    "continuous_cost",
    "continuum_departure",
]

#: Trace ``value`` of a HALT event: the task's 0/1 loss (0 = accepted).
ACCEPTED_LOSS = 0.0
REJECTED_LOSS = 1.0


def _positive_int(value: object, name: str, allowed: str = "a positive integer") -> int:
    """`value` as an int if it is a positive integer (bools refused), else a one-line InputError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise InputError(f"{name}={value!r} is not allowed: {name} must be {allowed}")
    return int(value)


def _ceil_div(x, y):
    return -(-x // y)


# --------------------------------------------------------------------------------------------
# results and the simulation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DovetailResult:
    """What a dovetailer found and what it cost."""

    winner: int | None  #: index (0-based) of the accepted program; None if the search gave up
    round: int  #: the round (1-based) in which the winner was accepted, or the last round started
    cells: int  #: exact number of (program, step) cells executed, the winner's halting step included
    runtime: int  #: the winner's runtime (steps to halt); 0 when there is no winner
    trace: Trace  #: ADMIT, RUN (g=steps so far, steps=cells this round), HALT (value=loss), ACCEPT

    def __repr__(self) -> str:
        return (f"DovetailResult(winner={self.winner}, round={self.round}, cells={self.cells}, "
                f"runtime={self.runtime}, trace={self.trace!r})")


class Dovetailer:
    """Run every admitted program b steps per round, admitting a new programs per round.

    See the module docstring for the exact semantics and the prior this implements.
    """

    def __init__(self, a: int, b: int):
        self.a = _positive_int(a, "a", "a positive integer (programs admitted per round)")
        self.b = _positive_int(b, "b", "a positive integer (steps per program per round)")

    def __repr__(self) -> str:
        return f"Dovetailer(a={self.a}, b={self.b})"

    def implied_rank(self, n: int, t: int) -> int:
        return implied_rank(n, t, self.a, self.b)

    def run(
        self,
        task: ProgramSearchTask,
        *,
        max_rounds: int | None = None,
        max_cells: int | None = None,
        record_trace: bool = True,
        method: Literal["auto", "step", "table"] = "auto",
    ) -> DovetailResult:
        """Dovetail over `task` until the first accepted halt (or a cap is hit).

        `method`: "step" drives the task's resumable runs one program-round at a time (any task);
        "table" is a numpy simulation over the admitted set per round for tasks exposing
        ``runtimes`` and ``accepted`` (e.g. `TableTask`); "auto" picks "table" when it can.
        Both give identical results and traces.
        """
        if max_rounds is not None:
            max_rounds = _positive_int(max_rounds, "max_rounds")
        if max_cells is not None:
            max_cells = _positive_int(max_cells, "max_cells")
        exists = program_exists(task)
        if not exists(0):
            raise InputError(f"the task {type(task).__name__} has no programs: a dovetailer needs at least one")
        has_table = hasattr(task, "runtimes") and hasattr(task, "accepted")
        if method not in ("auto", "step", "table"):
            raise InputError(f"method={method!r} is not allowed: use 'auto', 'step' or 'table'")
        if method == "table" and not has_table:
            raise InputError(f"method='table' needs a task with runtimes and accepted; {type(task).__name__} has none")
        if method == "table" or (method == "auto" and has_table):
            return _run_table(self.a, self.b, np.asarray(task.runtimes, dtype=np.float64),
                              np.asarray(task.accepted, dtype=bool), max_rounds, max_cells, record_trace)
        return self._run_steps(task, exists, max_rounds, max_cells, record_trace)

    def _run_steps(self, task, exists, max_rounds, max_cells, record_trace) -> DovetailResult:
        a, b = self.a, self.b
        trace = TraceBuilder() if record_trace else None
        running: list = []
        admitted = cells = r = 0
        while True:
            if (max_rounds is not None and r >= max_rounds) or (max_cells is not None and cells >= max_cells):
                break
            r += 1
            target = a * r
            while admitted < target and exists(admitted):
                running.append(task.start(admitted))
                if trace is not None:
                    trace.add(Event.ADMIT, admitted, round=r)
                admitted += 1
            still_running = []
            for k, run in enumerate(running):
                budget = b if max_cells is None else min(b, max_cells - cells)
                if budget <= 0:
                    still_running.extend(running[k:])
                    break
                ran = run.advance(budget)
                cells += ran
                if trace is not None:
                    trace.add(Event.RUN, run.index, g=float(run.steps), round=r, steps=int(ran))
                if not run.halted:
                    still_running.append(run)
                    continue
                ok = bool(task.accepts(run))
                if trace is not None:
                    trace.add(Event.HALT, run.index, g=float(run.steps),
                              value=ACCEPTED_LOSS if ok else REJECTED_LOSS, round=r)
                if ok:
                    if trace is not None:
                        trace.add(Event.ACCEPT, run.index, g=float(run.steps), value=ACCEPTED_LOSS, round=r)
                    return DovetailResult(run.index, r, cells, int(run.steps),
                                          trace.build() if trace is not None else Trace.empty())
            running = still_running
            if not running and not exists(admitted):
                break
        return DovetailResult(None, r, cells, 0, trace.build() if trace is not None else Trace.empty())


def _run_table(a: int, b: int, runtimes: np.ndarray, accepted: np.ndarray,
               max_rounds: int | None, max_cells: int | None, record_trace: bool) -> DovetailResult:
    """Round-by-round numpy simulation for a task given by its runtimes (inf = never halts)."""
    total = len(runtimes)
    if total == 0:
        raise InputError("the task has no programs: a dovetailer needs at least one")
    steps = np.zeros(total, dtype=np.int64)
    active = np.zeros(0, dtype=np.int64)
    chunks: list[dict[str, np.ndarray]] = []
    admitted = cells = r = 0
    winner = None
    while True:
        if (max_rounds is not None and r >= max_rounds) or (max_cells is not None and cells >= max_cells):
            break
        r += 1
        target = min(a * r, total)
        new = np.arange(admitted, target, dtype=np.int64)
        admitted = target
        active = np.concatenate([active, new])
        remaining = runtimes[active] - steps[active]
        ran = np.minimum(remaining, b).astype(np.int64)
        halts = remaining <= b
        if max_cells is not None:
            cum = np.cumsum(ran)
            over = np.flatnonzero(cells + cum > max_cells)
            if len(over):  # cut the scan at the cap: the first program over it gets the rest
                k = int(over[0])
                ran = ran[: k + 1].copy()
                ran[k] = max_cells - cells - (int(cum[k - 1]) if k else 0)
                halts = halts[: k + 1].copy()
                halts[k] = remaining[k] <= ran[k]
                active_scan = active[: k + 1]
                if ran[k] == 0:  # nothing left for it: it does not run at all
                    ran, halts, active_scan = ran[:k], halts[:k], active_scan[:k]
            else:
                active_scan = active
        else:
            active_scan = active
        wins = np.flatnonzero(halts & accepted[active_scan])
        if len(wins):
            k = int(wins[0]) + 1
            ran, halts, active_scan = ran[:k], halts[:k], active_scan[:k]
            winner = int(active_scan[-1])
        steps[active_scan] += ran
        cells += int(ran.sum())
        if record_trace:
            chunks.append(_table_chunk(r, new, active_scan, ran, halts, steps, winner is not None))
        if winner is not None:
            break
        active = active[~np.isin(active, active_scan[halts])]
        if len(active) == 0 and admitted >= total:
            break
    trace = _concat_chunks(chunks) if record_trace else Trace.empty()
    runtime = int(steps[winner]) if winner is not None else 0
    return DovetailResult(winner, r, cells, runtime, trace)


def _table_chunk(r, new, scan, ran, halts, steps, won) -> dict[str, np.ndarray]:
    """One round's events, laid out exactly as the step simulation's TraceBuilder writes them."""
    per_program = 1 + halts.astype(np.int64)
    if won:
        per_program[-1] += 1
    starts = np.cumsum(per_program) - per_program
    m = len(new) + int(per_program.sum())
    kind = np.full(m, int(Event.RUN), dtype=np.int8)
    kind[: len(new)] = int(Event.ADMIT)
    off = len(new)
    kind[off + starts[halts] + 1] = int(Event.HALT)
    value = np.full(m, math.nan)
    value[off + starts[halts] + 1] = REJECTED_LOSS
    if won:
        kind[-1] = int(Event.ACCEPT)
        value[-2:] = ACCEPTED_LOSS
    run_steps = np.full(m, -1, dtype=np.int64)
    run_steps[off + starts] = ran
    g = np.full(m, math.nan)
    g[off:] = np.repeat(steps[scan].astype(np.float64), per_program)
    return {
        "kind": kind,
        "node": np.concatenate([new, np.repeat(scan, per_program)]),
        "g": g,
        "value": value,
        "round": np.full(m, r, dtype=np.int64),
        "steps": run_steps,
    }


def _concat_chunks(chunks: list[dict[str, np.ndarray]]) -> Trace:
    m = sum(len(c["kind"]) for c in chunks)
    cols = {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}
    return Trace({
        "kind": cols["kind"],
        "node": cols["node"],
        "parent": np.full(m, -1, dtype=CORE_COLUMNS["parent"]),
        "depth": np.zeros(m, dtype=CORE_COLUMNS["depth"]),
        "g": cols["g"],
        "h": np.full(m, math.nan),
        "value": cols["value"],
        "round": cols["round"],
        "steps": cols["steps"],
    })


# --------------------------------------------------------------------------------------------
# the implied prior and closed forms
# --------------------------------------------------------------------------------------------


def implied_rank(n, t, a: int, b: int):
    """The round in which program n (1-based) of runtime t halts: ceil(n/a) + ceil(t/b) − 1.

    Works elementwise on integer numpy arrays too.
    """
    a = _positive_int(a, "a")
    b = _positive_int(b, "b")
    return _ceil_div(n, a) + _ceil_div(t, b) - 1


def implied_winner(accepted: Sequence[tuple[int, int]], a: int, b: int) -> tuple[int, int]:
    """The (index, runtime) pair a Dovetailer(a, b) returns among the accepted programs.

    `accepted` lists (0-based index, runtime) of every program the task accepts; the others
    do not change the winner (module docstring). Minimizes implied_rank(index + 1, runtime),
    ties to the lower index.
    """
    a = _positive_int(a, "a")
    b = _positive_int(b, "b")
    pairs = [(int(i), int(t)) for i, t in accepted]
    if not pairs:
        raise InputError("implied_winner got no accepted programs: pass at least one (index, runtime) pair")
    for i, t in pairs:
        if i < 0 or t < 1:
            raise InputError(f"accepted program ({i}, {t}) is not allowed: index must be >= 0 and runtime >= 1")
    return min(pairs, key=lambda p: (_ceil_div(p[0] + 1, a) + _ceil_div(p[1], b) - 1, p[0]))


def _check_table(runtimes, accepted) -> tuple[np.ndarray, np.ndarray]:
    rt = np.asarray(runtimes, dtype=np.float64)
    acc = np.asarray(accepted, dtype=bool)
    if rt.ndim != 1 or len(rt) == 0:
        raise InputError(f"runtimes has shape {rt.shape}: need a non-empty 1-d sequence (one runtime per program)")
    if acc.shape != rt.shape:
        raise InputError(f"accepted has shape {acc.shape} but runtimes has {rt.shape}: they must match")
    finite = np.isfinite(rt)
    bad = ~((rt >= 1) & ((rt == np.floor(rt)) | ~finite)) | np.isnan(rt)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"runtimes[{i}]={runtimes[i]!r} is not allowed: runtimes are integers >= 1 or inf")
    return rt, acc


def dovetail_outcome(runtimes: Sequence[float] | np.ndarray, accepted: Sequence[bool] | np.ndarray,
                     a: int, b: int) -> DovetailResult:
    """Winner, round and exact cells of Dovetailer(a, b) in closed form, O(#programs), no trace.

    `runtimes[i]` is program i's runtime (inf = never halts), `accepted[i]` whether its halt is
    accepted. Equals `Dovetailer(a, b).run(TableTask(runtimes, accepted))` without the trace.
    """
    a = _positive_int(a, "a")
    b = _positive_int(b, "b")
    rt, acc = _check_table(runtimes, accepted)
    total = len(rt)
    n = np.arange(1, total + 1, dtype=np.int64)
    admit_round = _ceil_div(n, a)
    finite = np.isfinite(rt)
    t_int = np.where(finite, rt, 1).astype(np.int64)
    halt_round = np.where(finite, admit_round + _ceil_div(t_int, b) - 1, np.iinfo(np.int64).max)
    candidates = acc & finite
    if not candidates.any():
        if not finite.all():
            i = int(np.flatnonzero(~finite)[0])
            raise InputError(f"no program is accepted and program {i} never halts: the dovetailer would never stop")
        return DovetailResult(None, int(halt_round.max()), int(t_int.sum()), 0, Trace.empty())
    ranks = np.where(candidates, halt_round, np.iinfo(np.int64).max)
    w = int(np.argmin(ranks))  # argmin returns the first minimum: ties go to the lower index
    R = int(ranks[w])
    last = min(a * R, total)
    budget_now = b * (R - admit_round[:last] + 1)  # cumulative budget at the end of round R
    t_capped = np.where(finite[:last], t_int[:last], budget_now)  # never halting: runs its budget
    before = np.minimum(t_capped[:w], budget_now[:w]).sum()
    after = np.minimum(t_capped[w + 1 :], budget_now[w + 1 :] - b).sum()
    cells = int(before) + int(t_int[w]) + int(after)
    return DovetailResult(w, R, cells, int(t_int[w]), Trace.empty())


def exact_cells(runtimes: Sequence[float] | np.ndarray, accepted: Sequence[bool] | np.ndarray,
                a: int, b: int) -> int:
    """Exact number of cells Dovetailer(a, b) executes until it stops (`dovetail_outcome`)."""
    return dovetail_outcome(runtimes, accepted, a, b).cells


def exact_cells_many(runtimes: Sequence[float] | np.ndarray, accepted: Sequence[bool] | np.ndarray,
                     a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray,
                     chunk: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`dovetail_outcome` for many slopes at once: (winner, round, cells) arrays, one per (a[k], b[k]).

    Vectorized over slopes (in chunks of `chunk`, O(chunk · #programs) memory). Needs at least
    one accepted program that halts (otherwise the answer would not depend on the slope anyway:
    use `dovetail_outcome`).
    """
    rt, acc = _check_table(runtimes, accepted)
    a_arr = np.atleast_1d(np.asarray(a))
    b_arr = np.atleast_1d(np.asarray(b))
    if a_arr.shape != b_arr.shape or a_arr.ndim != 1:
        raise InputError(f"a has shape {a_arr.shape} and b has {b_arr.shape}: pass two 1-d arrays of the same length")
    for name, arr in (("a", a_arr), ("b", b_arr)):
        if arr.dtype.kind not in "iu" or (arr <= 0).any():
            raise InputError(f"{name}={arr.tolist()!r} is not allowed: every {name} must be a positive integer")
    finite = np.isfinite(rt)
    candidates = np.flatnonzero(acc & finite)
    if len(candidates) == 0:
        raise InputError("no accepted program halts: exact_cells_many needs at least one (see dovetail_outcome)")
    total = len(rt)
    t_int = np.where(finite, rt, 1).astype(np.int64)
    n = np.arange(1, total + 1, dtype=np.int64)
    winners = np.empty(len(a_arr), dtype=np.int64)
    rounds = np.empty(len(a_arr), dtype=np.int64)
    cells = np.empty(len(a_arr), dtype=np.int64)
    for lo in range(0, len(a_arr), chunk):
        A = a_arr[lo : lo + chunk, None].astype(np.int64)
        B = b_arr[lo : lo + chunk, None].astype(np.int64)
        ranks = _ceil_div(n[candidates], A) + _ceil_div(t_int[candidates], B) - 1  # (S, C)
        pick = np.argmin(ranks, axis=1)  # first minimum: the lower index
        w = candidates[pick]
        R = ranks[np.arange(len(A)), pick][:, None]
        admit_round = _ceil_div(n[None, :], A)  # (S, N)
        budget_now = B * (R - admit_round + 1)
        shift = np.where(n[None, :] > (w[:, None] + 1), B, 0)  # programs after the winner: one round less
        budget = np.clip(budget_now - shift, 0, None)
        used = np.where(finite[None, :], np.minimum(t_int[None, :], budget), budget)
        used = np.where(n[None, :] <= A * R, used, 0)  # not admitted yet
        used[np.arange(len(A)), w] = t_int[w]
        winners[lo : lo + chunk] = w
        rounds[lo : lo + chunk] = R[:, 0]
        cells[lo : lo + chunk] = used.sum(axis=1)
    return winners, rounds, cells


def grid_cells(n, t, a: int, b: int):
    """Exact cells when program n (1-based, runtime t) wins and no other program halts first.

    This is the setting of the seed's triangle picture (an unbounded program space whose other
    programs all run past the end of the search). O(1), elementwise on integer arrays::

        R = ceil(n/a) + ceil(t/b) − 1
        cells = a·b·R(R+1)/2 − b·(a·R − n) − b·(R − ceil(n/a) + 1) + t
    """
    a = _positive_int(a, "a")
    b = _positive_int(b, "b")
    s = _ceil_div(n, a)
    R = s + _ceil_div(t, b) - 1
    return a * b * R * (R + 1) // 2 - b * (a * R - n) - b * (R - s + 1) + t


def continuous_cost(n, t, a: int, b: int):
    """Continuum estimate of the cells for winner (n, t): (b·n + a·t)² / (2ab)."""
    a = _positive_int(a, "a")
    b = _positive_int(b, "b")
    return (b * np.asarray(n, dtype=np.float64) + a * np.asarray(t, dtype=np.float64)) ** 2 / (2.0 * a * b)


def continuum_departure(n, t, a: int, b: int) -> np.ndarray:
    """Relative error (continuous − exact) / exact of `continuous_cost` against `grid_cells`.

    Broadcasts: pass ``n[:, None]`` and ``t[None, :]`` for a table. It goes to 0 along any ray
    (n, t) = k·(n0, t0) as k grows, and is large at small n, t with extreme slopes a/b.
    """
    n = np.asarray(n, dtype=np.int64)
    t = np.asarray(t, dtype=np.int64)
    if (n < 1).any() or (t < 1).any():
        raise InputError("continuum_departure needs n >= 1 (1-based program) and t >= 1 (runtime)")
    exact = grid_cells(n, t, a, b).astype(np.float64)
    return (continuous_cost(n, t, a, b) - exact) / exact
