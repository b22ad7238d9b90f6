"""Boolean circuit priors: exact L / D / C tables checked against independent methods and the
published circuit-size histograms, plus the forwarding witnesses."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from searchprobe.errors import InputError
from searchprobe.search.circuits import (
    circuit_report,
    circuit_sharing_witness,
    circuit_size_table,
    count_formulas_by_depth,
    count_formulas_by_size,
    depth_prior_witness,
    formula_depth_table,
    formula_size_table,
    formula_str,
    min_circuit_for_tasks,
    min_formula,
    npn_generators,
    tree_forwarding_witness,
    variable_table,
)
from searchprobe.search.circuits.forests import min_forest_size
from searchprobe.search.circuits.truth_tables import Transform, npn_class_labels

X = [variable_table(i, 3) for i in range(3)]
XOR3 = X[0] ^ X[1] ^ X[2]
MAJ3 = (X[0] & X[1]) | (X[0] & X[2]) | (X[1] & X[2])

# The 16 binary Boolean functions written as Python expressions on 0/1 bits (reference only).
SIXTEEN_OPS = [lambda a, b, o=o: (o >> (2 * b + a)) & 1 for o in range(16)]


def brute_force_costs(n: int, depth: bool) -> dict[int, int]:
    """Formula size (or depth) by plain set enumeration over all 16 gates (no symmetry, no NNF)."""
    mask = (1 << (1 << n)) - 1
    leaves = {0, mask} | {variable_table(i, n) for i in range(n)} | {variable_table(i, n) ^ mask for i in range(n)}

    def gate(op, a, b):  # OR of the minterms of the gate's own 2-input truth table
        literals = {(0, 0): ~a & ~b, (1, 0): a & ~b, (0, 1): ~a & b, (1, 1): a & b}
        return _or_minterms(op, literals, mask)

    cost = {f: 0 for f in leaves}
    levels = [set(leaves)]
    while len(cost) < (1 << (1 << n)):
        k = len(levels)
        # the 16 gates are closed under swapping their inputs, so unordered pairs suffice
        if depth:
            everything = set(cost)
            pairs = [(everything, everything)]
        else:
            pairs = [(levels[i], levels[k - 1 - i]) for i in range(k) if i <= k - 1 - i]
        new = set()
        for left, right in pairs:
            for a in left:
                for b in right:
                    if left is right and a > b:
                        continue
                    for op in SIXTEEN_OPS:
                        f = gate(op, a, b)
                        if f not in cost:
                            new.add(f)
        for f in new:
            cost[f] = k
        levels.append(new)
    return cost


def _or_minterms(op, literals: dict, mask: int) -> int:
    out = 0
    for (a_bit, b_bit), minterm in literals.items():
        if op(a_bit, b_bit):
            out |= minterm
    return out & mask


# ------------------------------------------------------------------ conventions and small n


def test_truth_table_convention():
    assert variable_table(0, 2) == 0b1010 and variable_table(1, 2) == 0b1100
    assert variable_table(2, 3) == 0xF0 and variable_table(3, 4) == 0xFF00
    assert min_formula(0b1000, 2).table(2) == 0b1000  # x0 & x1


def test_n2_costs_are_the_known_table():
    x, y, mask = 0b1010, 0b1100, 0b1111
    free = {0, mask, x, x ^ mask, y, y ^ mask}
    for table in (formula_size_table(2), formula_depth_table(2), circuit_size_table(2)):
        assert {f for f in range(16) if table[f] == 0} == free
        assert {f for f in range(16) if table[f] == 1} == set(range(16)) - free
        assert table.histogram() == [6, 10]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_formula_tables_match_brute_force_over_16_gates(n):
    sizes, depths = formula_size_table(n), formula_depth_table(n)
    brute_size, brute_depth = brute_force_costs(n, depth=False), brute_force_costs(n, depth=True)
    assert [sizes[f] for f in range(1 << (1 << n))] == [brute_size[f] for f in range(1 << (1 << n))]
    assert [depths[f] for f in range(1 << (1 << n))] == [brute_depth[f] for f in range(1 << (1 << n))]


@pytest.mark.parametrize("n", [3, 4])
def test_formula_tables_match_transform_counting(n):
    """Second method: L(f) / D(f) = first size / depth at which the exact formula count is non-zero."""
    sizes, depths = formula_size_table(n), formula_depth_table(n)
    by_size = count_formulas_by_size(n, int(sizes.cost.max()))
    first_size = np.full(sizes.cost.size, -1)
    for s in reversed(range(len(by_size))):
        first_size[by_size[s] != 0] = s
    np.testing.assert_array_equal(first_size, sizes.cost)
    by_depth = count_formulas_by_depth(n, int(depths.cost.max()))
    first_depth = np.full(depths.cost.size, -1)
    for d in reversed(range(len(by_depth))):
        first_depth[by_depth[d] != 0] = d
    np.testing.assert_array_equal(first_depth, depths.cost)


def test_formula_counts_match_explicit_tree_enumeration():
    """Counting by transforms vs listing every AND/OR/XOR tree of depth <= 2 on 2 inputs."""
    mask = 0b1111
    leaves = [0, mask, 0b1010, 0b0101, 0b1100, 0b0011]
    trees = {0: [(f, 0) for f in leaves]}  # (table, size)
    within1 = trees[0] + [
        (op(a, b), 1) for (a, _), (b, _) in itertools.product(trees[0], repeat=2)
        for op in (lambda p, q: p & q, lambda p, q: p | q, lambda p, q: p ^ q)
    ]
    within2 = trees[0] + [
        (op(a, b), sa + sb + 1) for (a, sa), (b, sb) in itertools.product(within1, repeat=2)
        for op in (lambda p, q: p & q, lambda p, q: p | q, lambda p, q: p ^ q)
    ]
    counted = count_formulas_by_depth(2, 2)
    for f in range(16):
        assert counted[1][f] == sum(1 for t, _ in within1 if t == f)
        assert counted[2][f] == sum(1 for t, _ in within2 if t == f)
    by_size = count_formulas_by_size(2, 2)
    for f in range(16):
        for s in range(3):
            assert by_size[s][f] == sum(1 for t, size in within2 if t == f and size == s)


# ------------------------------------------------------------------ published circuit histograms


def test_circuit_histogram_n3_is_published():
    table = circuit_size_table(3)
    assert table.complete and table.histogram() == [8, 30, 114, 80, 24]


def test_circuit_histogram_n4_up_to_cost_5_is_published():
    # Knuth, TAOCP 7.1.2: 10, 60, 456, 2474, 10624, 24184, 25008, 2720 functions of cost 0..7
    assert circuit_size_table(4, 3).histogram() == [10, 60, 456, 2474]
    table = circuit_size_table(4, 4)
    assert not table.complete and table.histogram() == [10, 60, 456, 2474, 10624]
    assert int((table.cost < 0).sum()) == 24184 + 25008 + 2720
    assert circuit_size_table(4, 5).histogram() == [10, 60, 456, 2474, 10624, 24184]


def test_circuit_sizes_match_brute_force_programs_up_to_3_gates():
    """Second method: breadth-first over sets of signals with all 16 gates, unnormalized."""
    n, mask = 3, 0xFF
    start = frozenset({0, mask} | {v for i in range(n) for v in (X[i], X[i] ^ mask)})
    cost = {f: 0 for f in start}
    states = {start}
    for k in range(1, 4):
        nxt = set()
        for state in states:
            for a, b in itertools.combinations(sorted(state), 2):
                for o in range(16):
                    f = sum(SIXTEEN_OPS[o]((a >> x) & 1, (b >> x) & 1) << x for x in range(8))
                    if f not in state:
                        cost.setdefault(f, k)
                        nxt.add(state | {f, f ^ mask})  # NOT is free
        states = nxt
    table = circuit_size_table(3)
    for f in range(256):
        assert cost.get(f, 4) == table[f]


# ------------------------------------------------------------------ invariants


@pytest.mark.parametrize("n", [2, 3, 4])
def test_costs_are_npn_invariant(n):
    tables = np.arange(1 << (1 << n))
    circuits = circuit_size_table(n) if n <= 3 else circuit_size_table(n, 4)
    for costs in (formula_size_table(n).cost, formula_depth_table(n).cost, circuits.cost):
        for generator in npn_generators(n):  # the generators generate the whole NPN group
            np.testing.assert_array_equal(costs[generator.apply(tables, n)], costs)
    labels = npn_class_labels(n)
    assert len(set(labels.tolist())) == {2: 4, 3: 14, 4: 222}[n]  # known NPN class counts


@pytest.mark.parametrize("n", [2, 3, 4])
def test_circuit_formula_depth_inequalities(n):
    sizes, depths = formula_size_table(n).cost.astype(int), formula_depth_table(n).cost.astype(int)
    circuits = (circuit_size_table(n) if n <= 3 else circuit_size_table(n, 4)).cost.astype(int)
    known = circuits >= 0
    assert (circuits[known] <= sizes[known]).all()
    assert (sizes[~known] > 4).all()
    assert (depths >= np.ceil(np.log2(sizes + 1))).all()
    assert (sizes <= 2**depths - 1).all()


def test_transform_apply_matches_definition():
    t = Transform((2, 0, 1), 0b101, True)
    f = 0b1011_0010
    g = t.apply(f, 3)
    for x in range(8):
        flipped = x ^ 0b101
        y = sum(((flipped >> i) & 1) << t.permutation[i] for i in range(3))
        assert (g >> x) & 1 == ((f >> y) & 1) ^ 1


# ------------------------------------------------------------------ formulas


def _eval_formula_string(text: str, n: int) -> int:
    env = {f"x{i}": variable_table(i, n) for i in range(n)}
    if text == "1":  # the constant-1 leaf (constants never occur inside a minimum formula)
        return (1 << (1 << n)) - 1
    return eval(text, {"__builtins__": {}}, env) & ((1 << (1 << n)) - 1)


@pytest.mark.parametrize("n", [2, 3])
def test_reconstructed_formulas_are_minimum_and_print_correctly(n):
    sizes, depths = formula_size_table(n), formula_depth_table(n)
    for f in range(1 << (1 << n)):
        tree = min_formula(f, n)
        assert tree.table(n) == f and tree.size == sizes[f]
        assert _eval_formula_string(formula_str(f, n), n) == f
        deep = min_formula(f, n, "depth")
        assert deep.table(n) == f and deep.depth == depths[f]


def test_reconstructed_formulas_n4_sample():
    sizes = formula_size_table(4)
    rng = np.random.default_rng(7)
    for f in rng.integers(0, 1 << 16, size=300).tolist():
        tree = min_formula(f, 4)
        assert tree.table(4) == f and tree.size == sizes[f]
        assert _eval_formula_string(str(tree), 4) == f


def test_formula_str_examples():
    assert formula_str(XOR3, 3) == "x0 ^ x1 ^ x2"
    assert formula_str(MAJ3, 3) == "((x0 ^ x2) & (x1 ^ x2)) ^ x2"
    assert formula_str(X[0] & ~X[1] & 0xFF, 3) == "x0 & ~x1"
    assert formula_str(0x6996, 4) == "x0 ^ x1 ^ x2 ^ x3"
    assert _eval_formula_string(formula_str(MAJ3, 3), 3) == MAJ3
    assert formula_size_table(3)[MAJ3] == 4 and formula_depth_table(3)[MAJ3] == 3


# ------------------------------------------------------------------ forwarding witnesses


def test_tree_prior_forwards_n3():
    witness = tree_forwarding_witness(3)
    assert witness.holds
    # pairs with L(a) + L(b) <= 4 among the 124 normalized non-leaf functions (15/57/40/12 of size 1..4)
    per_size = {1: 15, 2: 57, 3: 40, 4: 12}
    expected = sum(
        per_size[i] * per_size[j] if i < j else per_size[i] * (per_size[i] + 1) // 2
        for i in per_size for j in per_size if i <= j and i + j <= 4
    )
    assert witness.pairs_checked == witness.pairs_reached == witness.pairs_additive == expected
    assert witness.subformulas_checked > 0 and witness.min_formulas > witness.formulas_checked
    assert json.loads(json.dumps(witness.to_dict()))["holds"] is True


def test_trees_cannot_share_but_circuits_can():
    and2, and3 = X[0] & X[1], X[0] & X[1] & X[2]
    assert min_forest_size((and2, and2), 3, 3) == 2  # a duplicated task needs two trees
    assert min_circuit_for_tasks((and2, and2), 3).size == 1
    assert min_forest_size((and2, and3), 3, 3) == 3
    assert min_circuit_for_tasks((and2, and3), 3).size == 2  # x0 & x1 is reused


def _simulate(circuit, x: int) -> dict[int, int]:
    """Evaluate a circuit on one input assignment, signal by signal."""
    values = {0: 0} | {variable_table(i, circuit.n): (x >> i) & 1 for i in range(circuit.n)}
    ops = {"and": lambda a, b: a & b, "and_not": lambda a, b: a & (1 - b), "not_and": lambda a, b: (1 - a) & b,
           "or": lambda a, b: a | b, "xor": lambda a, b: a ^ b}
    for gate in circuit.gates:
        values[gate.output] = ops[gate.op](values[gate.left], values[gate.right])
    return values


def test_full_adder_shares_gates():
    circuit = min_circuit_for_tasks((XOR3, MAJ3), 3)
    costs = circuit_size_table(3)
    assert (costs[XOR3], costs[MAJ3], circuit.size) == (2, 4, 5)  # 5 < 2 + 4
    assert circuit.evaluate() == (XOR3, MAJ3)
    for x in range(8):
        values = _simulate(circuit, x)
        assert values[XOR3] == (XOR3 >> x) & 1 and values[MAJ3] == (MAJ3 >> x) & 1
    assert min_circuit_for_tasks((XOR3, MAJ3), 3, 4) is None


@pytest.fixture(scope="module")
def sharing3():
    return circuit_sharing_witness(3)


def test_circuit_prior_does_not_forward(sharing3):
    w = sharing3
    assert w.pairs_shared > 0 and w.joint_size < sum(w.task_sizes)
    tasks = [int(t, 16) for t in w.tasks]
    costs = circuit_size_table(3)
    assert tuple(costs[t] for t in tasks) == w.task_sizes
    circuit = min_circuit_for_tasks(tasks, 3)
    assert circuit.size == w.joint_size and len(w.circuit["gates"]) == w.joint_size
    for x in range(8):
        values = _simulate(circuit, x)
        for t in tasks:
            normal = t ^ 0xFF if t & 1 else t
            assert values[normal] ^ (t & 1) == (t >> x) & 1
    # a minimum circuit for a pair in which one output's sub-circuit is bigger than its own minimum
    assert w.subcircuit_gates > w.subcircuit_min == costs[int(w.subcircuit_output, 16)]
    pair = [int(t, 16) for t in w.subcircuit_tasks]
    assert len(w.subcircuit_circuit["gates"]) == min_circuit_for_tasks(pair, 3).size
    assert w.full_adder["joint_size"] == 5 < w.full_adder["sum_size"] + w.full_adder["carry_size"]
    assert circuit_sharing_witness(2) is None  # with 2 inputs nothing can be shared


def test_depth_prior_leaves_easy_tasks_unconstrained():
    w = depth_prior_witness(3)
    assert w.depth_limit == 3 and w.hard.table == "0xe8"
    assert w.hard.allowed_formulas == w.hard.own_depth_formulas  # the deep task is pinned to its depth
    for easy in w.easy:
        assert easy.depth == 1 and easy.own_depth_formulas == easy.min_size_formulas
        assert easy.largest_allowed_size == 2**w.depth_limit - 1 > easy.size
        assert easy.allowed_formulas > 10**6 * easy.min_size_formulas
        assert sum(easy.allowed_by_size) == easy.allowed_formulas
    assert w.optimal_forests_depth_prior == math.prod([w.hard.allowed_formulas] + [e.allowed_formulas for e in w.easy])
    assert w.optimal_forests_size_prior == math.prod([w.hard.min_size_formulas] + [e.min_size_formulas for e in w.easy])
    # x0 & x1 has exactly 2 minimum formulas (x0 & x1, x1 & x0); depth <= 1 allows no more
    and2 = next(e for e in w.easy if e.table == "0x88")
    assert and2.min_size_formulas == 2 and and2.allowed_by_size[1] == 2


def test_circuit_report_is_json():
    report = circuit_report(2)
    text = json.dumps(report)
    assert json.loads(text)["formula_size"]["histogram"] == [6, 10]
    assert report["circuit_sharing"] is None and report["tree_forwarding"]["holds"]


@pytest.mark.slow
def test_circuit_report_n4_and_tree_forwarding():
    report = circuit_report(4)
    assert report["tree_forwarding"]["holds"]
    assert report["circuit_size"]["histogram"] == [10, 60, 456, 2474, 10624, 24184]
    assert report["circuit_sharing"]["joint_size"] < sum(report["circuit_sharing"]["task_sizes"])


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: formula_size_table(5), r"n=5 .*2\^32 .*n = 1\.\.4"),
        (lambda: formula_depth_table(0), r"n=0"),
        (lambda: formula_size_table("3"), r"n='3'"),
        (lambda: circuit_size_table(4), r"n=4 .*n <= 3.*max_cost <= 5"),
        (lambda: circuit_size_table(4, 6), r"max_cost=6 .*allowed 0\.\.5"),
        (lambda: circuit_size_table(3, -1), r"max_cost=-1"),
        (lambda: min_circuit_for_tasks((6,), 4, 5), r"max_gates=5 .*allowed 0\.\.4"),
        (lambda: circuit_size_table(5), r"n=5"),
        (lambda: formula_size_table(3)[256], r"truth table 256 .*0\.\.255"),
        (lambda: formula_str(3, 2, "width"), r"measure='width'"),
        (lambda: min_forest_size((3,), 3, 9), r"max_gates=9"),
        (lambda: min_circuit_for_tasks((), 3), r"tasks=\(\)"),
        (lambda: min_circuit_for_tasks((300,), 3), r"task 300"),
        (lambda: depth_prior_witness(3, hard=X[0], easy=(MAJ3,)), r"not be deeper"),
    ],
)
def test_bad_input_raises_input_error(call, match):
    with pytest.raises(InputError, match=match):
        call()
