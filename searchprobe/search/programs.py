"""Program spaces and program-search tasks: what a dovetailer or Levin search searches over.

A `ProgramSearchTask` enumerates candidate programs (index 0, 1, 2, … simplest first), starts a
resumable run of any of them, and says whether a halted run is accepted (zero loss on the task's
training examples). The search algorithms in `dovetail` only use this protocol, so the same
Dovetailer runs over Turing machines (`machines`), lambda terms, or a synthetic table of
runtimes (`TableTask`, used to check cell counts exactly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable


@runtime_checkable
class ProgramRun(Protocol):
    """A resumable execution of one candidate program."""

    index: int  #: which program of the task this is
    steps: int  #: steps executed so far
    halted: bool  #: True once the program has stopped

    def advance(self, budget: int) -> int:
        """Run up to `budget` more steps; return how many ran (fewer only if it halted)."""
        ...


@runtime_checkable
class ProgramSearchTask(Protocol):
    """An enumerable program space plus an acceptance test (zero loss on a training set)."""

    def num_programs(self) -> int | None:
        """How many programs there are; None for an unbounded enumeration."""
        ...

    def start(self, index: int) -> ProgramRun:
        """A fresh run of program `index`."""
        ...

    def accepts(self, run: ProgramRun) -> bool:
        """Whether a halted run has zero loss on the task's training set."""
        ...

    def description_bits(self, index: int) -> float:
        """Description length of program `index` in bits."""
        ...


def program_exists(task: ProgramSearchTask):
    """``i -> bool``: whether program `i` of `task` exists, without counting the whole space when
    the task can say so cheaply (``has_program``): counting every closed lambda term of up to
    1000 bits takes hours, while a search stopped by its work limit only looks at the first few."""
    has = getattr(task, "has_program", None)
    if callable(has):
        return lambda index: bool(has(index))
    total = task.num_programs()
    return lambda index: total is None or index < total


@dataclass
class _TableRun:
    index: int
    runtime: float
    steps: int = 0
    halted: bool = False

    def advance(self, budget: int) -> int:
        if self.halted:
            return 0
        ran = int(budget if math.isinf(self.runtime) else min(budget, self.runtime - self.steps))
        self.steps += ran
        self.halted = self.steps >= self.runtime
        return ran


@dataclass
class TableTask:
    """Synthetic program space: program i halts after `runtimes[i]` steps (inf = never).

    `accepted[i]` says whether its halt has zero loss. Description length of program i is taken
    as log2(i + 2) bits (a universal code for the index) unless `bits` is given.
    """

    runtimes: Sequence[float]
    accepted: Sequence[bool]
    bits: Sequence[float] | None = None
    _n: int = field(init=False)

    def __post_init__(self) -> None:
        if len(self.runtimes) != len(self.accepted):
            raise ValueError("runtimes and accepted must have the same length")
        if any(not (math.isinf(t) or (t >= 1 and float(t).is_integer())) for t in self.runtimes):
            raise ValueError("runtimes must be positive integers or inf")
        self._n = len(self.runtimes)

    def num_programs(self) -> int:
        return self._n

    def start(self, index: int) -> _TableRun:
        return _TableRun(index, self.runtimes[index])

    def accepts(self, run: ProgramRun) -> bool:
        return run.halted and bool(self.accepted[run.index])

    def description_bits(self, index: int) -> float:
        return float(self.bits[index]) if self.bits is not None else math.log2(index + 2)
