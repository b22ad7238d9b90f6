"""Levin search in its FAST form over a prefix-free program space.

Phase ``i = 1, 2, …`` gives every program p with ``|p| ≤ i`` bits a *cumulative* budget of
``2^(i − |p|)`` steps: runs are resumable, so in phase i a program continues where phase i − 1
left it and runs ``2^(i−|p|) − 2^(i−1−|p|)`` more steps (1 step in its first phase, i = |p|).
Within a phase programs are scanned in the task's index order (shorter codes first), and the
search stops at the first halt the task accepts. A program whose run stops unaccepted drops out.

Bounds (checked by the tests). A program of runtime t (halting step included) halts in phase
``|p| + ceil(log2 t)``: the first with ``2^(i−|p|) ≥ t``. By the end of phase i the total work
is ``Σ_p min(t_p, 2^(i−|p|)) ≤ 2^i · Σ_p 2^−|p| ≤ 2^i`` (Kraft, prefix-free), and
``2^i < 2·t·2^|p|`` at i = |p| + ceil(log2 t), so the work up to p's halt is below
``2·t·2^|p|`` — within the textbook ``4·t·2^|p|`` (which also covers per-phase budgets that
restart from scratch). Empty phases (no program that short) cost nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np

from searchprobe.errors import InputError
from searchprobe.search.programs import ProgramSearchTask, program_exists
from searchprobe.search.trace import Event, Trace, TraceBuilder

__all__ = ["LevinResult", "levin_search", "fast_budget", "halting_phase", "levin_outcome"]


@dataclass(frozen=True)
class LevinResult:
    """What FAST found and what it cost."""

    winner: int | None  #: index of the accepted program; None if the search gave up
    phase: int  #: the phase in which it was accepted, or the last phase run
    work: int  #: total steps executed by all programs, the winner's halting step included
    runtime: int  #: the winner's runtime; 0 when there is no winner
    bits: int  #: the winner's description length |p|; 0 when there is no winner
    trace: Trace  #: ADMIT (first phase with a budget), RUN (g=steps so far, steps=this phase), HALT, ACCEPT

    def __repr__(self) -> str:
        return (f"LevinResult(winner={self.winner}, phase={self.phase}, work={self.work}, "
                f"runtime={self.runtime}, bits={self.bits}, trace={self.trace!r})")


def fast_budget(phase: int, bits: int) -> int:
    """Cumulative steps a program of `bits` bits may have run by the end of `phase`: 2^(phase−bits)."""
    return 1 << (phase - bits) if bits <= phase else 0


def halting_phase(bits: int, runtime: int) -> int:
    """The phase in which a program of `bits` bits and runtime t ≥ 1 halts: bits + ceil(log2 t)."""
    if runtime < 1:
        raise InputError(f"runtime={runtime!r} is not allowed: runtimes count the halting step, so they are >= 1")
    return int(bits) + (int(runtime) - 1).bit_length()


def _program_bits(task: ProgramSearchTask, index: int, previous: int) -> int:
    value = task.description_bits(index)
    if not float(value).is_integer() or value < 1:
        raise InputError(f"program {index} has description length {value!r} bits: "
                         "Levin search needs whole positive bit lengths (a prefix-free code)")
    bits = int(value)
    if bits < previous:
        raise InputError(f"program {index} has {bits} bits after a program of {previous}: "
                         "Levin search needs programs enumerated by nondecreasing length")
    return bits


def levin_search(
    task: ProgramSearchTask,
    *,
    max_phase: int | None = None,
    max_work: int | None = None,
    record_trace: bool = True,
) -> LevinResult:
    """Run FAST over `task` until the first accepted halt, `max_phase` or `max_work` (exact).

    The task's programs must have whole-bit description lengths, in nondecreasing order, with
    Kraft sum ≤ 1 (a prefix-free code); otherwise InputError.
    """
    for name, value in (("max_phase", max_phase), ("max_work", max_work)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0):
            raise InputError(f"{name}={value!r} is not allowed: {name} must be a positive integer or None")
    exists = program_exists(task)
    if not exists(0):
        raise InputError(f"the task {type(task).__name__} has no programs: Levin search needs at least one")
    trace = TraceBuilder() if record_trace else None
    running: list[tuple[object, int]] = []  # (run, bits), in index order
    next_index = 0
    next_bits = _program_bits(task, 0, 1)
    kraft = Fraction(0)
    work = 0
    phase = 0
    while True:
        if (max_phase is not None and phase >= max_phase) or (max_work is not None and work >= max_work):
            break
        if not running and not exists(next_index):
            break
        phase += 1
        while next_bits is not None and next_bits <= phase:
            kraft += Fraction(1, 1 << next_bits)
            if kraft > 1:
                raise InputError(f"program {next_index}: the Kraft sum of the description lengths exceeds 1, "
                                 "so the program space is not prefix-free")
            running.append((task.start(next_index), next_bits))
            if trace is not None:
                trace.add(Event.ADMIT, next_index, h=float(next_bits), phase=phase)
            next_index += 1
            has_next = exists(next_index)
            next_bits = _program_bits(task, next_index, next_bits) if has_next else None
        still_running = []
        for k, (run, bits) in enumerate(running):
            budget = fast_budget(phase, bits) - run.steps
            if max_work is not None:
                budget = min(budget, max_work - work)
                if budget <= 0:
                    still_running.extend(running[k:])
                    break
            ran = run.advance(budget)
            work += ran
            if trace is not None:
                trace.add(Event.RUN, run.index, g=float(run.steps), h=float(bits), phase=phase, steps=int(ran))
            if not run.halted:
                still_running.append((run, bits))
                continue
            ok = bool(task.accepts(run))
            if trace is not None:
                trace.add(Event.HALT, run.index, g=float(run.steps), h=float(bits), value=0.0 if ok else 1.0,
                          phase=phase, work=int(work))
            if ok:
                if trace is not None:
                    trace.add(Event.ACCEPT, run.index, g=float(run.steps), h=float(bits), value=0.0, phase=phase)
                return LevinResult(run.index, phase, work, int(run.steps), bits,
                                   trace.build() if trace is not None else Trace.empty())
        running = still_running
    return LevinResult(None, phase, work, 0, 0, trace.build() if trace is not None else Trace.empty())


def levin_outcome(bits: Sequence[int], runtimes: Sequence[float], accepted: Sequence[bool]) -> LevinResult:
    """FAST's winner, phase and exact work in closed form (no trace), for a table of programs.

    The winner minimizes (halting_phase(|p|, t), index) over accepted programs. Work = what every
    program ran by the end of phase i, minus the phase-i budget of the programs after the winner.
    """
    bits_arr = np.asarray(bits, dtype=np.int64)
    rt = np.asarray(runtimes, dtype=np.float64)
    acc = np.asarray(accepted, dtype=bool)
    if not (bits_arr.shape == rt.shape == acc.shape) or bits_arr.ndim != 1 or len(rt) == 0:
        raise InputError("levin_outcome needs non-empty bits, runtimes and accepted of the same length")
    finite = np.isfinite(rt)
    phases = [halting_phase(int(l), int(t)) if ok and f else math.inf
              for l, t, ok, f in zip(bits_arr, rt, acc, finite)]
    best = min(range(len(phases)), key=lambda i: (phases[i], i))
    if math.isinf(phases[best]):
        raise InputError("no accepted program halts: Levin search would never stop")
    phase = int(phases[best])

    def used(i: int, by_phase: int) -> int:
        budget = fast_budget(by_phase, int(bits_arr[i])) if by_phase > 0 else 0
        return budget if not finite[i] else min(int(rt[i]), budget)

    work = sum(used(i, phase) for i in range(best)) + int(rt[best])
    work += sum(used(i, phase - 1) for i in range(best + 1, len(rt)))
    return LevinResult(best, phase, work, int(rt[best]), int(bits_arr[best]), Trace.empty())
