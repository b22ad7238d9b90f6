"""Exact minimum circuit size C(f) by enumerating straight-line programs of k gates.

A circuit may reuse a gate output any number of times (unlike a formula). NOT is free, so every
signal is kept normalized (f(0) = 0, see `normalize`) and a gate on normalized signals u, v
produces one of five normalized functions: u&v, u&~v, ~u&v, u|v, u^v (the 10 non-degenerate
binary gates up to output negation). Inputs x_i are free signals; constants and literals are
never gate outputs in a minimum circuit, nor is a repeated function.

Canonicalization: a program is identified with the *set* of functions its gates compute (order
and wiring do not change what a further gate can reach), stored as a sorted row packed into one
uint64 key, so level k keeps one program per reachable set. The last level is never
materialized: its functions are read off the results of one more gate on level k-1.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from searchprobe.errors import InputError
from searchprobe.search.circuits.truth_tables import (
    check_inputs,
    full_mask,
    normalize,
    num_functions,
    table_dtype,
    variable_table,
)

GATE_OPS = ("and", "and_not", "not_and", "or", "xor")
_GATE_SYMBOL = {"and": "{u} & {v}", "and_not": "{u} & ~{v}", "not_and": "~{u} & {v}", "or": "{u} | {v}", "xor": "{u} ^ {v}"}

MAX_FULL_CIRCUIT_INPUTS = 3
# largest k such that all k-gate programs are enumerated (levels up to k - 1 materialized)
MAX_CIRCUIT_COST = {1: 0, 2: 1, 3: 5, 4: 5}
# gate limit of the multi-output (task-set) searches, which keep every program's wiring
MAX_JOINT_GATES = {1: 1, 2: 3, 3: 5, 4: 4}


def gate_results(u: np.ndarray, v: np.ndarray) -> list[np.ndarray]:
    """The five normalized gate outputs on normalized signals u, v (order of GATE_OPS)."""
    return [u & v, u & ~v, ~u & v, u | v, u ^ v]


def _apply_gate(op: str, u: int, v: int, n: int) -> int:
    mask = full_mask(n)
    return {"and": u & v, "and_not": u & ~v & mask, "not_and": ~u & v & mask, "or": u | v, "xor": u ^ v}[op]


@dataclass(frozen=True)
class Gate:
    """One gate of a straight-line program: ``output = op(left, right)`` (normalized tables)."""

    output: int
    left: int
    right: int
    op: str


@dataclass(frozen=True, repr=False)
class Circuit:
    """A straight-line program over inputs x_0..x_{n-1}; `outputs` are the tables it delivers
    (each one is a gate output, an input, a constant, or the NOT of one of these)."""

    n: int
    gates: tuple[Gate, ...]
    outputs: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.gates)

    def _names(self) -> dict[int, str]:
        names = {variable_table(i, self.n): f"x{i}" for i in range(self.n)}
        names[0] = "0"
        for index, gate in enumerate(self.gates, start=1):
            names.setdefault(gate.output, f"g{index}")
        return names

    def _signal(self, table: int, names: dict[int, str]) -> str:
        normal = normalize(table, self.n)
        if normal not in names:
            raise InputError(f"output table {table:#x} is not computed by this circuit")
        name = names[normal]
        if normal == table:
            return name
        return "1" if name == "0" else f"~{name}"

    def gate_lines(self) -> list[str]:
        names = self._names()
        return [
            f"{names[g.output]} = " + _GATE_SYMBOL[g.op].format(u=names[g.left], v=names[g.right])
            for g in self.gates
        ]

    def output_lines(self) -> list[str]:
        names = self._names()
        return [f"out{i} = {self._signal(t, names)}" for i, t in enumerate(self.outputs)]

    def cone_size(self, table: int) -> int:
        """Number of gates in the sub-circuit that computes output `table` (its transitive fan-in)."""
        by_output = {g.output: g for g in self.gates}
        seen: set[int] = set()
        stack = [normalize(table, self.n)]
        while stack:
            signal = stack.pop()
            gate = by_output.get(signal)
            if gate is None or signal in seen:
                continue
            seen.add(signal)
            stack += [gate.left, gate.right]
        return len(seen)

    def evaluate(self) -> tuple[int, ...]:
        """Re-run the program gate by gate and return the output tables (a self-check)."""
        values = {variable_table(i, self.n): variable_table(i, self.n) for i in range(self.n)}
        values[0] = 0
        for g in self.gates:
            if g.left not in values or g.right not in values:
                raise InputError(f"gate {g} reads a signal not computed before it")
            values[g.output] = _apply_gate(g.op, values[g.left], values[g.right], self.n)
            if values[g.output] != g.output:
                raise InputError(f"gate {g} computes {values[g.output]:#x}, not {g.output:#x}")
        results = []
        for t in self.outputs:
            normal = normalize(t, self.n)
            if normal not in values:
                raise InputError(f"output {t:#x} is not computed")
            results.append(t)
        return tuple(results)

    def __repr__(self) -> str:
        return f"Circuit(n={self.n}, size={self.size}, gates={self.gate_lines()}, outputs={self.output_lines()})"

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "size": self.size,
            "gates": self.gate_lines(),
            "outputs": self.output_lines(),
            "output_tables": [f"{t:#0{2 + (1 << self.n) // 4}x}" for t in self.outputs],
        }


@dataclass
class _Level:
    gates: np.ndarray  # (N, k) sorted normalized gate tables
    parent: np.ndarray  # (N,) row of the previous level
    added: np.ndarray  # (N, 3) the added gate: left table, right table, op index


class ProgramSpace:
    """The levels of distinct gate-function sets reachable by k-gate programs on n inputs."""

    def __init__(self, n: int) -> None:
        self.n = check_inputs(n, 4, "straight-line program enumeration")
        self.dtype = table_dtype(self.n)
        self.inputs = np.array([variable_table(i, self.n) for i in range(self.n)], dtype=self.dtype)
        empty = np.zeros((1, 0), self.dtype)
        self.levels = [_Level(empty, np.zeros(1, np.int64), np.zeros((1, 3), np.int64))]

    def signals(self, k: int, rows: slice = slice(None)) -> np.ndarray:
        """(N, n + k) tables available to the next gate in each level-k program."""
        gates = self.level(k).gates[rows]
        return np.hstack([np.broadcast_to(self.inputs, (gates.shape[0], self.n)), gates])

    def next_gate(self, k: int, rows: slice = slice(None)):
        """Every useful gate after each level-k program (or those in `rows`):
        (row, left, right, op index, result) arrays."""
        signals = self.signals(k, rows)
        rows_out, lefts, rights, ops, results = [], [], [], [], []
        row_ids = np.arange(self.level(k).gates.shape[0])[rows]
        for p, q in itertools.combinations(range(signals.shape[1]), 2):
            u, v = signals[:, p], signals[:, q]
            for op_index, result in enumerate(gate_results(u, v)):
                useful = (result != 0) & ~(signals == result[:, None]).any(axis=1)
                rows_out.append(row_ids[useful])
                lefts.append(u[useful])
                rights.append(v[useful])
                ops.append(np.full(int(useful.sum()), op_index, np.int64))
                results.append(result[useful])
        return tuple(np.concatenate(x) for x in (rows_out, lefts, rights, ops, results))

    def reachable(self, k: int, chunk: int = 1 << 14) -> np.ndarray:
        """Every function some (k + 1)-gate program computes last, without materializing level k + 1."""
        seen = np.zeros(num_functions(self.n), dtype=bool)
        count = self.level(k).gates.shape[0]
        for start in range(0, count, chunk):
            signals = self.signals(k, slice(start, start + chunk))
            for p, q in itertools.combinations(range(signals.shape[1]), 2):
                for result in gate_results(signals[:, p], signals[:, q]):
                    seen[result] = True
        seen[0] = False
        return np.flatnonzero(seen)

    def level(self, k: int) -> _Level:
        while len(self.levels) <= k:
            current = len(self.levels) - 1
            if (current + 1) * (1 << self.n) > 64:
                raise InputError(f"{current + 1}-gate programs on n={self.n} inputs do not fit the 64-bit set key")
            rows, lefts, rights, ops, results = self.next_gate(current)
            gates = np.sort(np.hstack([self.levels[current].gates[rows], results[:, None]]), axis=1)
            keys = np.zeros(gates.shape[0], np.uint64)
            for column in range(gates.shape[1]):
                keys = (keys << np.uint64(1 << self.n)) | gates[:, column].astype(np.uint64)
            _, first = np.unique(keys, return_index=True)
            self.levels.append(
                _Level(gates[first], rows[first], np.stack([lefts[first], rights[first], ops[first]], axis=1))
            )
        return self.levels[k]

    def program(self, k: int, row: int, outputs: tuple[int, ...] = ()) -> Circuit:
        """The stored k-gate program of level row `row`, in execution order."""
        gates: list[Gate] = []
        while k > 0:
            level = self.levels[k]
            left, right, op = (int(x) for x in level.added[row])
            before = set(self.levels[k - 1].gates[int(level.parent[row])].tolist())
            (output,) = set(level.gates[row].tolist()) - before
            gates.append(Gate(output, left, right, GATE_OPS[op]))
            row, k = int(level.parent[row]), k - 1
        return Circuit(self.n, tuple(reversed(gates)), tuple(outputs))


@lru_cache(maxsize=None)
def program_space(n: int) -> ProgramSpace:
    return ProgramSpace(n)


@dataclass(frozen=True, repr=False)
class CircuitTable:
    """Exact minimum circuit size C(f) of every function of n inputs, up to `max_cost` gates.

    `cost[f]` is C(f), or -1 where C(f) > max_cost (only when `complete` is False).
    """

    n: int
    max_cost: int
    cost: np.ndarray
    complete: bool
    seconds: float = 0.0

    def __repr__(self) -> str:
        return f"CircuitTable(n={self.n}, max_cost={self.max_cost}, complete={self.complete}, histogram={self.histogram()})"

    def __getitem__(self, table: int) -> int:
        if isinstance(table, bool) or not isinstance(table, (int, np.integer)) or not 0 <= table < num_functions(self.n):
            raise InputError(f"truth table {table!r} for n={self.n}: must be an integer in 0..{num_functions(self.n) - 1}")
        return int(self.cost[table])

    def histogram(self) -> list[int]:
        """Functions of cost 0..max_cost (those above the cap are not counted)."""
        return np.bincount(self.cost[self.cost >= 0], minlength=self.max_cost + 1).tolist()

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "max_cost": self.max_cost,
            "complete": self.complete,
            "histogram": self.histogram(),
            "above_cap": int((self.cost < 0).sum()),
            "seconds": self.seconds,
        }


def _check_cost_cap(n: int, max_cost: int | None) -> int:
    cap = MAX_CIRCUIT_COST[n]
    if max_cost is None:
        if n > MAX_FULL_CIRCUIT_INPUTS:
            raise InputError(
                f"n={n} for the full circuit-size table: complete tables are possible for n <= "
                f"{MAX_FULL_CIRCUIT_INPUTS} (2^{1 << n} = {num_functions(n):,} functions need up to 7 gates); "
                f"for n = {n} pass max_cost <= {cap}"
            )
        return cap
    if isinstance(max_cost, bool) or not isinstance(max_cost, (int, np.integer)) or not 0 <= max_cost <= cap:
        raise InputError(
            f"max_cost={max_cost!r} for the n={n} circuit-size table: enumerating all programs is "
            f"feasible up to {cap} gates for n = {n}; allowed 0..{cap}"
        )
    return int(max_cost)


@lru_cache(maxsize=None)
def circuit_size_table(n: int, max_cost: int | None = None) -> CircuitTable:
    """C(f) for every function of n <= 3 inputs, or for n = 4 up to `max_cost` <= 5 gates."""
    import time

    n = check_inputs(n, 4, "the exact circuit-size table")
    cap = _check_cost_cap(n, max_cost)
    start = time.perf_counter()
    space = program_space(n)
    mask = full_mask(n)
    normal_cost = np.full(num_functions(n), -1, np.int8)
    normal_cost[0] = 0
    normal_cost[space.inputs] = 0
    for k in range(1, cap + 1):
        results = space.reachable(k - 1)
        fresh = results[normal_cost[results] < 0]
        normal_cost[fresh] = k
        if k >= 1 and (normal_cost[::2] >= 0).all():  # every normalized function (f(0) = 0) is done
            cap = k
            break
    tables = np.arange(num_functions(n))
    cost = normal_cost[np.where(tables & 1, tables ^ mask, tables)]
    complete = bool((cost >= 0).all())
    return CircuitTable(n, cap, _frozen(cost), complete, time.perf_counter() - start)


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array
