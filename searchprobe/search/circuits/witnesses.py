"""Forwarding witnesses for task sets (tuples of functions on the same inputs).

- The tree (formula-size) prior forwards: the minimum forest for a task set is the sum of the
  tasks' L(f) (checked against a brute-force fan-out-1 program enumeration), and every
  subformula of a minimum formula is a minimum formula (checked on explicit reconstructions
  and, exhaustively, by counting all minimum formulas).
- The circuit-size prior does not: shared gates make the joint minimum smaller than the sum,
  and a minimum circuit for the set can compute one task with a non-minimum sub-circuit.
- The depth prior leaves everything off the critical path unconstrained: counted formulas.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field

import numpy as np

from searchprobe.errors import InputError
from searchprobe.search.circuits.counting import count_formulas_by_depth_and_size, count_formulas_by_size
from searchprobe.search.circuits.forests import MAX_FOREST_GATES, pair_forest_sizes, single_forest_sizes
from searchprobe.search.circuits.formulas import Leaf, formula_depth_table, formula_size_table, formula_str
from searchprobe.search.circuits.programs import (
    MAX_CIRCUIT_COST,
    MAX_JOINT_GATES,
    Circuit,
    Gate,
    GATE_OPS,
    circuit_size_table,
    program_space,
)
from searchprobe.search.circuits.truth_tables import (
    check_inputs,
    full_mask,
    literal_tables,
    normalize,
    num_functions,
    variable_table,
)


def _hex(table: int, n: int) -> str:
    return f"{table:#0{2 + max(1, (1 << n) // 4)}x}"


def _check_tasks(tasks, n: int) -> tuple[int, ...]:
    tasks = tuple(tasks)
    if not tasks:
        raise InputError("tasks=(): a task set needs at least one truth table")
    for t in tasks:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < num_functions(n):
            raise InputError(f"task {t!r} for n={n}: must be a truth table in 0..{num_functions(n) - 1}")
    return tuple(int(t) for t in tasks)


# ------------------------------------------------------------------ circuits for task sets


def min_circuit_for_tasks(tasks, n: int, max_gates: int | None = None) -> Circuit | None:
    """A minimum multi-output circuit delivering every task (outputs may be negated for free),
    or None if it needs more than `max_gates` gates (default: the feasible cap for n)."""
    n = check_inputs(n, 4, "multi-output circuit search")
    tasks = _check_tasks(tasks, n)
    cap = MAX_JOINT_GATES[n] if max_gates is None else max_gates
    if isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or not 0 <= cap <= MAX_JOINT_GATES[n]:
        raise InputError(
            f"max_gates={max_gates!r} for the n={n} multi-output circuit search: enumerating every "
            f"program is feasible up to {MAX_JOINT_GATES[n]} gates; allowed 0..{MAX_JOINT_GATES[n]}"
        )
    free = {0} | {variable_table(i, n) for i in range(n)}
    needed = sorted({normalize(t, n) for t in tasks} - free)
    if not needed:
        return Circuit(n, (), tasks)
    space = program_space(n)
    for k in range(1, cap + 1):
        rows, lefts, rights, ops, results = space.next_gate(k - 1)
        gates = space.level(k - 1).gates[rows]
        ok = np.ones(rows.size, dtype=bool)
        for t in needed:
            ok &= (gates == t).any(axis=1) | (results == t)
        hits = np.flatnonzero(ok)
        if hits.size:
            i = hits[0]
            base = space.program(k - 1, int(rows[i]))
            last = Gate(int(results[i]), int(lefts[i]), int(rights[i]), GATE_OPS[int(ops[i])])
            return Circuit(n, base.gates + (last,), tasks)
    return None


@dataclass(frozen=True, repr=False)
class JointSizes:
    """Minimum joint circuit size of pairs {a, b} (a < b, normalized non-free functions), for
    every pair some program of at most `max_gates` gates computes together (sorted by key)."""

    n: int
    max_gates: int
    left: np.ndarray
    right: np.ndarray
    size: np.ndarray

    def __repr__(self) -> str:
        return f"JointSizes(n={self.n}, max_gates={self.max_gates}, pairs={self.size.size})"

    @property
    def keys(self) -> np.ndarray:
        return self.left * num_functions(self.n) + self.right

    def get(self, a: int, b: int) -> int | None:
        """C(a, b) if within max_gates, else None."""
        size = int(self.lookup(np.array([a]), np.array([b]))[0])
        return None if size < 0 else size

    def lookup(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Vectorized C(a, b); -1 where the pair is not computed within max_gates."""
        a, b = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
        wanted = a * num_functions(self.n) + b
        out = np.full(wanted.shape, -1, np.int64)
        keys = self.keys
        if keys.size:
            i = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
            hit = keys[i] == wanted
            out[hit] = self.size[i[hit]]
        return out


def joint_pair_sizes(n: int, max_gates: int | None = None) -> JointSizes:
    """Minimum circuit size of every pair {a, b} (a < b) of normalized non-free functions that a
    program of at most `max_gates` gates computes together (from the exhaustive enumeration)."""
    n = check_inputs(n, 4, "multi-output circuit search")
    cap = MAX_JOINT_GATES[n] if max_gates is None else max_gates
    if isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or not 0 <= cap <= MAX_JOINT_GATES[n]:
        raise InputError(f"max_gates={max_gates!r} for n={n} joint pair sizes: allowed 0..{MAX_JOINT_GATES[n]}")
    space = program_space(n)
    size = num_functions(n)
    keys, levels = [np.zeros(0, np.int64)], [np.zeros(0, np.int8)]
    for k in range(1, cap + 1):
        rows, _, _, _, results = space.next_gate(k - 1)
        gates = space.level(k - 1).gates[rows].astype(np.int64)
        results = results.astype(np.int64)
        for column in range(gates.shape[1]):
            a, b = np.minimum(gates[:, column], results), np.maximum(gates[:, column], results)
            keys.append(a * size + b)
            levels.append(np.full(a.size, k, np.int8))
    keys_all, levels_all = np.concatenate(keys), np.concatenate(levels)
    unique, first = np.unique(keys_all, return_index=True)  # levels are in increasing order
    return JointSizes(n, cap, unique // size, unique % size, levels_all[first])


# ------------------------------------------------------------------ the tree prior forwards


@dataclass
class TreeForwardingWitness:
    """Evidence that the minimum formula-size (tree) prior forwards to every task and sub-formula.

    Attributes:
        n: number of inputs.
        forest_gate_limit: the brute-force fan-out-1 enumeration went up to this many gates.
        pairs_checked: task pairs (normalized non-leaf functions, a <= b, a == b included) with
            L(a) + L(b) <= the limit.
        pairs_reached: pairs the brute force reaches within the limit.
        pairs_additive: reached pairs whose brute-force minimum is exactly L(a) + L(b) gates.
        formulas_checked: functions whose reconstructed minimum formula was checked subtree by subtree.
        subformulas_checked / subformulas_minimal: gate subtrees seen / those that are minimum formulas.
        min_formulas: all minimum formulas of all functions (counted; formulas over AND/OR/XOR with
            literal leaves, ordered children).
        min_formulas_with_minimal_parts: those whose every subformula is minimum (equal when forwarding holds).
        example: one task set, its per-task minimum formulas and the total.
    """

    n: int
    forest_gate_limit: int
    pairs_checked: int
    pairs_reached: int
    pairs_additive: int
    formulas_checked: int
    subformulas_checked: int
    subformulas_minimal: int
    min_formulas: int
    min_formulas_with_minimal_parts: int
    example: dict = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        return (
            self.pairs_additive == self.pairs_checked == self.pairs_reached
            and self.subformulas_minimal == self.subformulas_checked
            and self.min_formulas == self.min_formulas_with_minimal_parts
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "holds": self.holds}


def tree_forwarding_witness(n: int, forest_gate_limit: int | None = None, formulas_checked: int | None = None) -> TreeForwardingWitness:
    """Check tree-prior forwarding exhaustively for n inputs (all pairs up to the forest limit,
    every subformula of a reconstructed minimum formula of every function — or of the first
    `formulas_checked` functions — and the count of all minimum formulas)."""
    n = check_inputs(n, 4, "the tree-forwarding witness")
    limit = MAX_FOREST_GATES[n] if forest_gate_limit is None else forest_gate_limit
    sizes = formula_size_table(n)
    leaves = {normalize(int(t), n) for t in literal_tables(n)}
    functions = [f for f in range(0, num_functions(n), 2) if f not in leaves]  # normalized: f(0) = 0
    brute_pairs = pair_forest_sizes(n, limit)
    brute_single = single_forest_sizes(n, limit)
    singles_agree = all(brute_single.get(f, limit + 1) == min(sizes[f], limit + 1) for f in functions)
    # every pair the brute force reaches within the limit must cost exactly L(a) + L(b) ...
    additive = sum(level == sizes[a] + sizes[b] for (a, b), level in brute_pairs.items()) if singles_agree else 0
    # ... and every pair with L(a) + L(b) <= limit must be reached (a <= b, a == b allowed)
    per_size = np.bincount([sizes[f] for f in functions], minlength=limit + 1)
    checked = sum(
        int(per_size[i] * per_size[j]) if i < j else int(per_size[i] * (per_size[i] + 1) // 2)
        for i in range(1, limit + 1) for j in range(i, limit + 1) if i + j <= limit
    )
    count = num_functions(n) if formulas_checked is None else min(formulas_checked, num_functions(n))
    seen = minimal = 0
    for f in range(count):
        for size, table in _gate_subtrees(sizes.formula(f), n):
            seen += 1
            minimal += int(sizes.cost[table]) == size
    all_min = count_formulas_by_size(n, int(sizes.cost.max()))
    parts_min = count_formulas_by_size(n, int(sizes.cost.max()), minimal_only=sizes.cost)
    tables = np.arange(num_functions(n))
    total_min = int(sum(all_min[s][tables[sizes.cost == s]].sum() for s in range(len(all_min))))
    total_parts = int(sum(parts_min[s][tables[sizes.cost == s]].sum() for s in range(len(parts_min))))
    example_tasks = _example_tasks(n)
    example = {
        "tasks": [_hex(t, n) for t in example_tasks],
        "formulas": [formula_str(t, n) for t in example_tasks],
        "sizes": [sizes[t] for t in example_tasks],
        "min_forest_size": sum(sizes[t] for t in example_tasks),
    }
    return TreeForwardingWitness(n, limit, checked, len(brute_pairs), additive, count, seen, minimal, total_min, total_parts, example)


def _gate_subtrees(formula, n: int) -> list[tuple[int, int]]:
    """(size, truth table) of every gate subtree, computed bottom-up in one pass."""
    found: list[tuple[int, int]] = []

    def visit(node) -> int:
        if isinstance(node, Leaf):
            return node.table(n)
        left, right = visit(node.left), visit(node.right)
        table = {"and": left & right, "or": left | right, "xor": left ^ right}[node.op]
        found.append((node.size, table))
        return table

    visit(formula)
    return found


def _example_tasks(n: int) -> tuple[int, ...]:
    """A small natural task set: AND and XOR of the first inputs, and majority / parity when n allows."""
    x = [variable_table(i, n) for i in range(n)]
    if n == 1:
        return (x[0],)
    if n == 2:
        return (x[0] & x[1], x[0] ^ x[1])
    maj = (x[0] & x[1]) | (x[0] & x[2]) | (x[1] & x[2])
    return (x[0] ^ x[1] ^ x[2], maj)


# ------------------------------------------------------------------ the circuit prior does not


@dataclass
class CircuitSharingWitness:
    """Evidence that the minimum circuit-size prior does not forward to the tasks of a set.

    Attributes:
        n: number of inputs; max_gates: the exhaustive program enumeration's gate limit.
        pairs_checked: pairs {a, b} of distinct normalized non-free functions whose comparison is decided.
        pairs_shared: those with joint minimum C(a, b) < C(a) + C(b) (gates shared).
        tasks, task_sizes, joint_size, circuit: the pair with the largest saving and its minimum circuit.
        subcircuit_tasks, subcircuit_output, subcircuit_gates, subcircuit_min, subcircuit_circuit:
            a minimum circuit for a pair in which one output's sub-circuit (its cone) has more
            gates than that output's own minimum C(f).
        full_adder: C of sum (XOR3) and carry (MAJ3) and of both together (n >= 3).
    """

    n: int
    max_gates: int
    pairs_checked: int
    pairs_shared: int
    tasks: tuple[str, ...]
    task_sizes: tuple[int, ...]
    joint_size: int
    circuit: dict
    subcircuit_tasks: tuple[str, ...] = ()
    subcircuit_output: str = ""
    subcircuit_gates: int = 0
    subcircuit_min: int = 0
    subcircuit_circuit: dict = field(default_factory=dict)
    full_adder: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def circuit_sharing_witness(n: int = 3) -> CircuitSharingWitness | None:
    """Scan all pairs of functions of n (2..4) inputs for shared-gate savings; None when none exist (n <= 2)."""
    n = check_inputs(n, 4, "the circuit-sharing witness")
    cap = MAX_JOINT_GATES[n]
    costs = circuit_size_table(n) if n <= 3 else circuit_size_table(n, cap)
    joint = joint_pair_sizes(n, cap)
    cost = np.asarray(costs.cost, dtype=np.int64)
    totals = cost[joint.left] + cost[joint.right]
    shared_mask = joint.size < totals
    # decided pairs: those found jointly, plus those whose sum is within reach of the enumeration
    # (not found jointly within the cap, so the joint size is >= cap + 1 >= the sum: no saving)
    free = {0} | {variable_table(i, n) for i in range(n)}
    normal = np.array([f for f in range(0, num_functions(n), 2) if f not in free], dtype=np.int64)
    per_cost = np.bincount(cost[normal][cost[normal] >= 0], minlength=cap + 2)
    within = sum(
        per_cost[i] * per_cost[j] if i < j else per_cost[i] * (per_cost[i] - 1) // 2
        for i in range(cap + 2) for j in range(i, cap + 2) if i + j <= cap + 1
    )
    checked = int(joint.size.size + within - int((totals <= cap + 1).sum()))
    shared = int(shared_mask.sum())
    best = None
    if shared:
        saving = np.where(shared_mask, totals - joint.size, -1)
        order = np.lexsort((joint.right, joint.left, joint.size, -saving))
        i = order[0]
        best = (None, int(joint.left[i]), int(joint.right[i]), int(joint.size[i]))
    if best is None:
        return None
    _, a, b, together = best
    circuit = min_circuit_for_tasks((a, b), n, together)
    sub = _subcircuit_witness(n, costs, joint)
    witness = CircuitSharingWitness(
        n, cap, checked, shared, (_hex(a, n), _hex(b, n)), (costs[a], costs[b]), together, circuit.to_dict()
    )
    if sub is not None:
        tasks, output, cone, program = sub
        witness.subcircuit_tasks = tuple(_hex(t, n) for t in tasks)
        witness.subcircuit_output = _hex(output, n)
        witness.subcircuit_gates = cone
        witness.subcircuit_min = costs[output]
        witness.subcircuit_circuit = program.to_dict()
    if n >= 3:
        witness.full_adder = full_adder_witness()
    return witness


def full_adder_witness() -> dict:
    """C(sum), C(carry) and the joint minimum circuit of a one-bit full adder on x0, x1, x2 (n = 3)."""
    x = [variable_table(i, 3) for i in range(3)]
    total, carry = x[0] ^ x[1] ^ x[2], (x[0] & x[1]) | (x[0] & x[2]) | (x[1] & x[2])
    costs = circuit_size_table(3)
    adder = min_circuit_for_tasks((total, carry), 3)
    return {
        "sum": _hex(total, 3),
        "carry": _hex(carry, 3),
        "sum_size": costs[total],
        "carry_size": costs[carry],
        "joint_size": adder.size,
        "circuit": adder.to_dict(),
    }


def _subcircuit_witness(n: int, costs, joint: JointSizes) -> tuple | None:
    """A stored minimum circuit for a pair in which one output's cone exceeds its own C(f);
    prefers pairs that also share gates, then the largest excess. Scans the materialized
    program levels below the joint gate limit (a Python loop over their programs)."""
    space = program_space(n)
    best = None
    for k in range(2, min(len(space.levels), joint.max_gates)):
        gates = space.levels[k].gates
        for c1, c2 in itertools.combinations(range(k), 2):
            # rows where this program is a minimum circuit for {gate c1, gate c2}
            rows = np.flatnonzero(joint.lookup(gates[:, c1], gates[:, c2]) == k)
            for row in rows.tolist():
                a, b = int(gates[row, c1]), int(gates[row, c2])
                strict = k < costs[a] + costs[b]
                if best is not None and best[0][0] is False and not strict:
                    continue
                circuit = Circuit(n, space.program(k, row).gates, (a, b))
                for out in (a, b):
                    excess = circuit.cone_size(out) - costs[out]
                    if excess > 0:
                        key = (not strict, -excess, k, a, b)
                        if best is None or key < best[0]:
                            best = (key, (a, b), out, circuit.cone_size(out), circuit)
    return None if best is None else best[1:]


def _cone_program(program: Circuit, outputs: tuple[int, ...]) -> tuple[Gate, ...]:
    """The gates of `program` that some output depends on, in order."""
    by_output = {g.output: g for g in program.gates}
    needed, stack = set(), list(outputs)
    while stack:
        s = stack.pop()
        if s in by_output and s not in needed:
            needed.add(s)
            stack += [by_output[s].left, by_output[s].right]
    return tuple(g for g in program.gates if g.output in needed)


# ------------------------------------------------------------------ the depth prior


@dataclass
class DepthTaskCount:
    """How many formulas each prior allows for one task (counted formulas: AND/OR/XOR trees with
    literal leaves and ordered children).

    Attributes:
        table, formula: the task and one minimum-size formula for it.
        size, depth: L(f) and D(f).
        min_size_formulas: formulas of size L(f) (all optimal under the size prior).
        own_depth_formulas: formulas of depth <= D(f) (optimal under the depth prior for f alone).
        allowed_formulas: formulas of depth <= the task set's depth (all optimal under the depth prior).
        allowed_by_size: allowed formulas per size 0, 1, …, 2^depth - 1.
        largest_allowed_size: the largest formula for f the depth prior still counts as optimal.
    """

    table: str
    formula: str
    size: int
    depth: int
    min_size_formulas: int
    own_depth_formulas: int
    allowed_formulas: int
    allowed_by_size: list[int]
    largest_allowed_size: int


@dataclass
class DepthPriorWitness:
    """A task set with one deep task: the depth prior pins the deep task's formula to the
    minimum depth but lets every easy task be any formula within that depth.

    Attributes:
        n: inputs; depth_limit: the set's optimal depth (= D of the hard task).
        hard, easy: per-task counts.
        optimal_forests_depth_prior: formula forests (one tree per task) optimal under depth.
        optimal_forests_size_prior: formula forests optimal under size (the product of minimum-size counts).
    """

    n: int
    depth_limit: int
    hard: DepthTaskCount
    easy: list[DepthTaskCount]
    optimal_forests_depth_prior: int
    optimal_forests_size_prior: int

    def to_dict(self) -> dict:
        return asdict(self)


def default_depth_tasks(n: int) -> tuple[int, tuple[int, ...]]:
    """Hard task: majority of x0, x1, x2 (depth 3) for n >= 3, else XOR; easy: ANDs / XORs of two inputs."""
    x = [variable_table(i, n) for i in range(n)]
    if n == 1:
        return x[0], (x[0] ^ full_mask(n),)
    if n == 2:
        return x[0] ^ x[1], (x[0] & x[1],)
    hard = (x[0] & x[1]) | (x[0] & x[2]) | (x[1] & x[2])
    return hard, (x[0] & x[1], x[n - 2] ^ x[n - 1])


def depth_prior_witness(n: int, hard: int | None = None, easy: tuple[int, ...] | None = None) -> DepthPriorWitness:
    """Count the formulas optimal under the depth prior for the task set (hard, *easy) against
    those optimal under the size prior (seconds for n = 4 and depth 3; depth 4 takes longer)."""
    n = check_inputs(n, 4, "the depth-prior witness")
    default_hard, default_easy = default_depth_tasks(n)
    hard = default_hard if hard is None else _check_tasks((hard,), n)[0]
    easy = default_easy if easy is None else _check_tasks(easy, n)
    sizes, depths = formula_size_table(n), formula_depth_table(n)
    limit = depths[hard]
    if any(depths[t] > limit for t in easy):
        raise InputError(f"easy tasks {[_hex(t, n) for t in easy]} must not be deeper than the hard task (depth {limit})")
    by_depth_size = count_formulas_by_depth_and_size(n, limit)
    max_size = int(sizes.cost[[hard, *easy]].max())
    by_size = count_formulas_by_size(n, max_size)

    def task_count(t: int) -> DepthTaskCount:
        allowed = [int(c[t]) for c in by_depth_size[limit]]
        own = sum(int(c[t]) for c in by_depth_size[depths[t]])
        return DepthTaskCount(
            _hex(t, n), formula_str(t, n), sizes[t], depths[t], int(by_size[sizes[t]][t]), own,
            sum(allowed), allowed, max(s for s, c in enumerate(allowed) if c),
        )

    hard_count = task_count(hard)
    easy_counts = [task_count(t) for t in easy]
    depth_total = hard_count.allowed_formulas
    size_total = hard_count.min_size_formulas
    for c in easy_counts:
        depth_total *= c.allowed_formulas
        size_total *= c.min_size_formulas
    return DepthPriorWitness(n, limit, hard_count, easy_counts, depth_total, size_total)


# ------------------------------------------------------------------ the report


def circuit_report(n: int, circuit_cap: int | None = None) -> dict:
    """Histograms of L, D and C for n inputs and the three forwarding witnesses, as JSON-ready data.

    For n = 4 the circuit table stops at `circuit_cap` gates (default and most: 5).
    """
    n = check_inputs(n, 4, "the circuit report")
    sizes, depths = formula_size_table(n), formula_depth_table(n)
    if n <= 3 and circuit_cap is None:
        circuits = circuit_size_table(n)
    else:
        circuits = circuit_size_table(n, MAX_CIRCUIT_COST[n] if circuit_cap is None else circuit_cap)
    example_tasks = _example_tasks(n)
    sharing = circuit_sharing_witness(n) if n >= 2 else None
    return {
        "n": n,
        "convention": "bit x of a truth table is f(x); bit i of x is input x_i",
        "formula_size": sizes.to_dict(),
        "formula_depth": depths.to_dict(),
        "circuit_size": circuits.to_dict(),
        "examples": [
            {"table": _hex(t, n), "formula": formula_str(t, n), "L": sizes[t], "D": depths[t], "C": circuits[t]}
            for t in example_tasks
        ],
        "tree_forwarding": tree_forwarding_witness(n).to_dict(),
        "circuit_sharing": None if sharing is None else sharing.to_dict(),
        "depth_prior": depth_prior_witness(n).to_dict(),
    }
