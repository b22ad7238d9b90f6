"""Program-search tasks over Turing machines: the seed's ``dovetail(loss, tm_generator)`` inputs.

A `TMTask` is a `programs.ProgramSearchTask`: a program space of Turing machines enumerated
simplest first, plus a training set of input/output examples.

Program order (`TMSpace`): machines are grouped by number of states n = 1, 2, …, max_states;
within a group every transition is fully defined (no ``---``) and there are 4(n+1) choices per
transition — write 0/1 × move L/R × next state A…(n-th letter) or Z (halt) — so (4(n+1))^(2n)
machines: 64 for n = 1, 20,736 for n = 2, 16,777,216 for n = 3. Within a group the order is the
lexicographic order of the bbchallenge text (A0 most significant; '0' < '1', 'L' < 'R',
'A' < … < 'Z'), so index 0 is ``0LA0LA``. The description length of a machine is a prefix code:
the Elias-gamma code of n (2⌊log2 n⌋ + 1 bits) plus log2 of the size of its group.

Examples: the input is written on the tape from cell 0 with the head on cell 0, state A, e.g.
unary n as n ones; after halting the output is read back either as the number of ones
(``readout="ones"``) or as the tape contents with blank ends stripped (``readout="tape"``,
e.g. ``"111"``). A program is run on the examples in order, each to its halt; the evaluation stops
at the first wrong output (loss 1, rejected) or after the last example (loss 0, accepted). Its
runtime is the total number of steps over the examples it ran.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from searchprobe.errors import InputError
from searchprobe.search.machines import (
    HALT_LETTER,
    MachineRun,
    RunResult,
    TuringMachine,
    _check_steps,
    _HALT,
    _simulate_internal,
    parse_machine,
)

__all__ = [
    "READOUTS",
    "Example",
    "TMSpace",
    "TMTask",
    "TMTaskRun",
    "accepted_programs",
    "write_ones",
    "unary_successor",
    "unary_add",
]

READOUTS = ("ones", "tape")


@dataclass(frozen=True)
class Example:
    """One training example: `input` tape (string of 0/1, head on its first cell) → expected output."""

    input: str  #: initial tape cells, '0'/'1'
    output: int | str  #: expected readout: number of ones, or the tape with blank ends stripped


# --------------------------------------------------------------------------------------------
# The program space
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TMSpace:
    """Fully defined machines with 1..max_states states, in the order of the module docstring."""

    max_states: int = 3

    def __post_init__(self) -> None:
        if isinstance(self.max_states, bool) or not isinstance(self.max_states, int) or not 1 <= self.max_states <= 6:
            raise InputError(f"max_states={self.max_states!r} is not allowed: expected an integer 1..6")

    @staticmethod
    def group_size(n_states: int) -> int:
        """How many fully defined n-state machines there are: (4(n+1))^(2n)."""
        return (4 * (n_states + 1)) ** (2 * n_states)

    def group_start(self, n_states: int) -> int:
        """Index of the first n-state machine."""
        return sum(self.group_size(k) for k in range(1, n_states))

    def __len__(self) -> int:
        return self.group_start(self.max_states + 1)

    def _locate(self, index: int) -> tuple[int, int]:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(self):
            raise InputError(
                f"program index {index!r} is out of range: expected 0..{len(self) - 1} (max_states={self.max_states})"
            )
        index = int(index)
        for n in range(1, self.max_states + 1):
            if index < self.group_size(n):
                return n, index
            index -= self.group_size(n)
        raise AssertionError("unreachable")

    def n_states_of(self, index: int) -> int:
        return self._locate(index)[0]

    def machine(self, index: int) -> TuringMachine:
        """The machine with this index."""
        n, offset = self._locate(index)
        nxt, write, move = _group_tables(n, np.array([offset], np.int64))
        return TuringMachine(write[0], move[0], np.where(nxt[0] == _HALT, HALT_LETTER, nxt[0]))

    def index(self, machine: TuringMachine | str) -> int:
        """Inverse of `machine`: the index of a fully defined machine (halts written as Z)."""
        m = parse_machine(machine)
        n = m.n_states
        if n > self.max_states or m.n_undefined or ((m.next >= n) & (m.next != HALT_LETTER)).any():
            raise InputError(
                f"machine {m} is not in this space: expected ≤ {self.max_states} states, no '---', halts written Z"
            )
        base = 4 * (n + 1)
        nxt = np.where(m.next == HALT_LETTER, n, m.next).astype(np.int64)
        digits = ((m.write.astype(np.int64) * 2 + (m.move > 0)) * (n + 1) + nxt).reshape(-1)
        offset = 0
        for d in digits:
            offset = offset * base + int(d)
        return self.group_start(n) + offset

    def description_bits(self, index: int) -> float:
        """Elias-gamma bits for the number of states plus log2 of its group size."""
        n, _ = self._locate(index)
        return 2 * math.floor(math.log2(n)) + 1 + 2 * n * math.log2(4 * (n + 1))


def _group_tables(n: int, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Internal-form (nxt, write, move) tables of the n-state machines at these in-group offsets."""
    base = 4 * (n + 1)
    digits = np.empty((len(offsets), 2 * n), np.int64)
    rest = offsets.astype(np.int64).copy()
    for j in range(2 * n - 1, -1, -1):
        rest, digits[:, j] = np.divmod(rest, base)
    digits = digits.reshape(len(offsets), n, 2)
    nxt = digits % (n + 1)
    nxt = np.where(nxt == n, _HALT, nxt).astype(np.int16)
    move = np.where((digits // (n + 1)) % 2 == 1, 1, -1).astype(np.int8)
    write = (digits // (2 * (n + 1))).astype(np.int8)
    return nxt, write, move


# --------------------------------------------------------------------------------------------
# The task and its runs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TMTask:
    """A program-search task: the machines of `TMSpace(max_states)` judged on `examples`."""

    name: str
    examples: tuple[Example, ...]
    readout: str = "ones"
    max_states: int = 3
    space: TMSpace = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        examples = tuple(self.examples)
        if not examples:
            raise InputError(f"task {self.name!r} has an empty training set: expected at least one Example")
        if self.readout not in READOUTS:
            raise InputError(f"task {self.name!r}: readout={self.readout!r} is not allowed: expected one of {READOUTS}")
        for i, ex in enumerate(examples):
            if not isinstance(ex, Example) or not isinstance(ex.input, str) or set(ex.input) - {"0", "1"}:
                raise InputError(
                    f"task {self.name!r}: example {i} = {ex!r} is not allowed: expected Example(input='0/1 string', output)"
                )
            ok = (isinstance(ex.output, int) and ex.output >= 0) if self.readout == "ones" else (
                isinstance(ex.output, str) and not set(ex.output) - {"0", "1"})
            if not ok:
                what = "a count ≥ 0" if self.readout == "ones" else "a 0/1 string"
                raise InputError(
                    f"task {self.name!r}: example {i} output {ex.output!r} is not allowed: readout {self.readout!r} needs {what}"
                )
        object.__setattr__(self, "examples", examples)
        object.__setattr__(self, "space", TMSpace(self.max_states))

    # --- ProgramSearchTask protocol ------------------------------------------------------
    def num_programs(self) -> int:
        return len(self.space)

    def start(self, index: int) -> "TMTaskRun":
        return TMTaskRun(self, index)

    def accepts(self, run: "TMTaskRun") -> bool:
        return bool(run.halted and run.loss == 0)

    def description_bits(self, index: int) -> float:
        return self.space.description_bits(index)

    # --- helpers -------------------------------------------------------------------------
    def machine(self, index: int) -> TuringMachine:
        return self.space.machine(index)

    def read(self, result: RunResult) -> int | str:
        """The output of a halted run under this task's readout."""
        return result.ones if self.readout == "ones" else result.tape.strip("0")


class TMTaskRun:
    """A resumable evaluation of one machine on a task's examples (implements `programs.ProgramRun`)."""

    def __init__(self, task: TMTask, index: int):
        self.task = task
        self.index = int(index)
        self.machine = task.machine(index)
        self.steps = 0
        self.halted = False
        self.loss: float | None = None  #: None while running; then 0.0 (accepted) or 1.0 (a wrong output)
        self.outputs: list[int | str] = []  #: outputs of the examples finished so far
        self._example = 0
        self._run = MachineRun(self.machine, task.examples[0].input)

    def __repr__(self) -> str:
        return f"<TMTaskRun {self.task.name} index={self.index} {self.machine} steps={self.steps} loss={self.loss}>"

    def advance(self, budget: int) -> int:
        """Run up to `budget` more steps across the examples; return how many ran."""
        budget = _check_steps(budget, "budget")
        ran = 0
        while not self.halted and ran < budget:
            ran += self._run.advance(budget - ran)
            if not self._run.halted:
                break
            example = self.task.examples[self._example]
            output = self.task.read(self._run.result())
            self.outputs.append(output)
            if output != example.output:
                self.halted, self.loss = True, 1.0
            elif self._example + 1 == len(self.task.examples):
                self.halted, self.loss = True, 0.0
            else:
                self._example += 1
                self._run = MachineRun(self.machine, self.task.examples[self._example].input)
        self.steps += ran
        return ran


def program_profile(task: TMTask, max_index: int, max_steps: int, *, batch_size: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Halting time and acceptance of programs 0 … max_index-1, computed with the vectorized simulator.

    Returns (runtimes, accepted): runtime = total steps over the examples up to the first wrong
    output (rejected) or the last example (accepted), exactly as `task.start(i)` reports; inf for
    a program that has not stopped within `max_steps` total steps (the step cap).
    """
    max_steps = _check_steps(max_steps, "max_steps")
    if isinstance(max_index, bool) or not isinstance(max_index, (int, np.integer)) or max_index < 0:
        raise InputError(f"max_index={max_index!r} is not allowed: expected an integer ≥ 0")
    max_index = min(int(max_index), task.num_programs())
    runtimes = np.full(max_index, np.inf)
    accepted = np.zeros(max_index, dtype=bool)
    space = task.space
    for n in range(1, task.max_states + 1):
        lo, hi = space.group_start(n), min(max_index, space.group_start(n + 1))
        for start in range(lo, hi, batch_size):
            offsets = np.arange(start, min(hi, start + batch_size), dtype=np.int64) - lo
            nxt, write, move = _group_tables(n, offsets)
            alive = np.arange(len(offsets))
            used = np.zeros(len(offsets), np.int64)
            for j, ex in enumerate(task.examples):
                alive = alive[used[alive] < max_steps]  # a later example needs budget left
                if not alive.size:
                    break
                cells = ex.input.encode("ascii").translate(bytes.maketrans(b"01", b"\x00\x01"))
                out = _simulate_internal(nxt[alive], write[alive], move[alive], max_steps - used[alive], cells, 0,
                                         want_tapes=task.readout == "tape")
                halted = out["row"] >= n
                if task.readout == "ones":
                    correct = out["ones"] == ex.output
                else:
                    correct = np.array([seg is not None and seg[0].strip("0") == ex.output for seg in out["segments"]],
                                       dtype=bool)
                used[alive] += out["steps"]
                stop = halted & (~correct | (j + 1 == len(task.examples)))
                runtimes[start + alive[stop]] = used[alive[stop]]
                accepted[start + alive[stop & correct]] = True
                alive = alive[halted & correct]
    return runtimes, accepted


def accepted_programs(task: TMTask, max_index: int, max_steps: int, *, batch_size: int = 65536) -> list[tuple[int, int]]:
    """Every program with index < `max_index` that the task accepts within `max_steps` total steps.

    Returns (index, runtime) pairs in index order, runtime = total steps over all examples, exactly
    as `task.start(index)` would report (see `program_profile`).
    """
    runtimes, accepted = program_profile(task, max_index, max_steps, batch_size=batch_size)
    return [(int(i), int(runtimes[i])) for i in np.flatnonzero(accepted)]


# --------------------------------------------------------------------------------------------
# Ready task families
# --------------------------------------------------------------------------------------------


def write_ones(k: int, max_states: int = 3) -> TMTask:
    """From a blank tape, halt with exactly k ones. Smallest solutions: 1 state for k ≤ 1, 2 states
    for k ≤ 4 = Σ(2), 3 states for k ≤ 6 = Σ(3); no solution in the space beyond that."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise InputError(f"k={k!r} is not allowed: expected an integer ≥ 0")
    return TMTask(f"write_ones_{k}", (Example("", k),), readout="ones", max_states=max_states)


def unary_successor(ns: Iterable[int] = (0, 1, 2, 3), max_states: int = 3) -> TMTask:
    """Unary n (n ones) → unary n+1. Smallest solutions have one state (e.g. ``1RZ1RA``)."""
    ns = _naturals(ns, "ns")
    examples = tuple(Example("1" * n, "1" * (n + 1)) for n in ns)
    return TMTask("unary_successor", examples, readout="tape", max_states=max_states)


def unary_add(
    pairs: Iterable[tuple[int, int]] = ((0, 0), (1, 0), (0, 2), (2, 1), (1, 3)), max_states: int = 3
) -> TMTask:
    """Unary a, a blank, unary b (``1^a 0 1^b``) → unary a+b; smallest solutions have 2 states, e.g.
    ``0LZ0RB_1LZ1RB`` (erase the first 1, run right, fill the gap)."""
    pairs = tuple(pairs)
    for a, b in pairs:
        _naturals((a, b), "pairs")
    examples = tuple(Example("1" * a + "0" + "1" * b, "1" * (a + b)) for a, b in pairs)
    return TMTask("unary_add", examples, readout="tape", max_states=max_states)


def _naturals(values: Iterable[int], name: str) -> tuple[int, ...]:
    values = tuple(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values):
        raise InputError(f"{name}={values!r} is not allowed: expected a non-empty sequence of integers ≥ 0")
    return values
