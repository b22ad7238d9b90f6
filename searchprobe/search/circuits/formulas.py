"""Exact minimum formula size L(f) and depth D(f) of every function of n <= 4 inputs.

A formula is a tree: leaves are the constants 0, 1 and the literals x_i, NOT x_i (cost 0); each
internal node is a two-input gate (cost 1, any of the 16 binary functions); NOT is free, so it
is pushed to the leaves and the gates are AND, OR and XOR (negation normal form, the same size).
No gate output is used twice. The size is the number of gates, the depth the longest
leaf-to-root gate count. (Depth is also the minimum circuit depth: a circuit unfolds into a
formula of the same depth.)

The dynamic programme keeps, per cost level, the set of functions of that cost. It is closed
under the NPN group, so a level is combined pairwise using one representative per NPN class on
one side and every function on the other (any decomposition f = a op b maps by the transform
that sends a to its representative), and a newly reached function marks its whole class.
Each class keeps a back-pointer (r = a op b) from which `FormulaTable.formula` rebuilds an
explicit minimum formula.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterator

import numpy as np

from searchprobe.errors import InputError
from searchprobe.search.circuits.truth_tables import (
    MAX_TABLE_INPUTS,
    apply_position_map,
    check_inputs,
    find_transform,
    full_mask,
    literal_tables,
    npn_class_labels,
    num_functions,
    table_dtype,
    variable_table,
)

OPS = ("and", "or", "xor")
_SYMBOL = {"and": "&", "or": "|", "xor": "^"}
_DUAL = {"and": "or", "or": "and"}
_CHUNK = 1 << 20  # results per combination chunk (bounds memory at a few tens of MB)


# --------------------------------------------------------------------------- formula trees


@dataclass(frozen=True)
class Leaf:
    """A cost-0 leaf: a constant (``var is None``, value = ``negated``) or the literal x_var / NOT x_var."""

    var: int | None
    negated: bool = False

    def table(self, n: int) -> int:
        base = 0 if self.var is None else variable_table(self.var, n)
        return base ^ (full_mask(n) if self.negated else 0)

    @property
    def size(self) -> int:
        return 0

    @property
    def depth(self) -> int:
        return 0

    def subformulas(self) -> Iterator["Formula"]:
        yield self

    def __str__(self) -> str:
        if self.var is None:
            return "1" if self.negated else "0"
        return f"~x{self.var}" if self.negated else f"x{self.var}"


@dataclass(frozen=True)
class Node:
    """A gate ``left op right`` with op in {"and", "or", "xor"}."""

    op: str
    left: "Formula"
    right: "Formula"
    size: int = field(init=False, compare=False)
    depth: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", 1 + self.left.size + self.right.size)
        object.__setattr__(self, "depth", 1 + max(self.left.depth, self.right.depth))

    def table(self, n: int) -> int:
        a, b = self.left.table(n), self.right.table(n)
        return {"and": a & b, "or": a | b, "xor": a ^ b}[self.op]

    def subformulas(self) -> Iterator["Formula"]:
        """Every subtree, root first."""
        yield self
        yield from self.left.subformulas()
        yield from self.right.subformulas()

    def __str__(self) -> str:
        def wrap(child: Formula) -> str:
            # & binds tighter than ^ than | (Python precedence); parenthesize any different gate
            return str(child) if isinstance(child, Leaf) or child.op == self.op else f"({child})"

        return f"{wrap(self.left)} {_SYMBOL[self.op]} {wrap(self.right)}"


Formula = Leaf | Node


def _leaf_for(table: int, n: int) -> Leaf:
    mask = full_mask(n)
    if table in (0, mask):
        return Leaf(None, table == mask)
    for i in range(n):
        v = variable_table(i, n)
        if table in (v, v ^ mask):
            return Leaf(i, table != v)
    raise InputError(f"table {table:#x} (n={n}) is not a constant or literal")


def _drop_not(formula: Formula) -> Formula | None:
    """The complement of `formula` with one NOT removed (a negated literal, or one inside an XOR
    chain), or None if it has no such NOT."""
    if isinstance(formula, Leaf):
        return Leaf(formula.var, False) if formula.negated and formula.var is not None else None
    if formula.op != "xor":
        return None
    left = _drop_not(formula.left)
    if left is not None:
        return Node("xor", left, formula.right)
    right = _drop_not(formula.right)
    return None if right is None else Node("xor", formula.left, right)


def _lowest_var(formula: Formula) -> int:
    if isinstance(formula, Leaf):
        return -1 if formula.var is None else formula.var
    return min(_lowest_var(formula.left), _lowest_var(formula.right))


def _gate(op: str, left: Formula, right: Formula) -> Node:
    """A gate, tidied for reading: ``~a ^ ~b`` is written ``a ^ b`` (also inside XOR chains), and
    the operands (all three gates commute) are ordered by their lowest input, leaves first."""
    if op == "xor":
        left_plain, right_plain = _drop_not(left), _drop_not(right)
        if left_plain is not None and right_plain is not None:
            left, right = left_plain, right_plain
    if (_lowest_var(right), isinstance(right, Node)) < (_lowest_var(left), isinstance(left, Node)):
        left, right = right, left
    return Node(op, left, right)


# --------------------------------------------------------------------------- the tables


@dataclass(frozen=True, repr=False)
class FormulaTable:
    """Exact minimum formula cost of every function of `n` inputs under one measure.

    `cost[f]` is L(f) (measure "size", gates in the smallest formula) or D(f) (measure "depth").
    The witness arrays are indexed by NPN class label (the class's smallest table): the class
    was reached as ``witness_result = witness_left <op> witness_right``.
    """

    n: int
    measure: str
    cost: np.ndarray
    witness_result: np.ndarray
    witness_left: np.ndarray
    witness_right: np.ndarray
    witness_op: np.ndarray  # index into OPS; -1 for leaves
    seconds: float = 0.0
    _formulas: dict = field(default_factory=dict, compare=False, repr=False)

    def __repr__(self) -> str:
        return f"FormulaTable(n={self.n}, measure={self.measure!r}, histogram={self.histogram()})"

    def __getitem__(self, table: int) -> int:
        return int(self.cost[self._check_table(table)])

    def histogram(self) -> list[int]:
        """Number of functions of cost 0, 1, …, max."""
        return np.bincount(self.cost).tolist()

    def _check_table(self, table: int) -> int:
        if isinstance(table, bool) or not isinstance(table, (int, np.integer)) or not 0 <= table < num_functions(self.n):
            raise InputError(
                f"truth table {table!r} for n={self.n}: must be an integer in 0..{num_functions(self.n) - 1}"
            )
        return int(table)

    def formula(self, table: int) -> Formula:
        """One explicit optimal formula for `table` (size L(f), or depth D(f)), rebuilt from the
        back-pointers: find the NPN transform mapping the class witness onto `table` and recurse
        on the transformed operands (their cost is NPN-invariant)."""
        table = self._check_table(table)
        if table not in self._formulas:
            self._formulas[table] = self._rebuild(table)
        return self._formulas[table]

    def _rebuild(self, table: int) -> Formula:
        if self.cost[table] == 0:
            return _leaf_for(table, self.n)
        label = int(npn_class_labels(self.n)[table])
        result = int(self.witness_result[label])
        left, right = int(self.witness_left[label]), int(self.witness_right[label])
        op = OPS[int(self.witness_op[label])]
        pos, negate = find_transform(result, table, self.n)
        left = apply_position_map(left, pos, False, self.n)
        right = apply_position_map(right, pos, False, self.n)
        if negate:  # De Morgan keeps NOT at the leaves: ~(a&b) = ~a|~b, ~(a^b) = ~a^b
            mask = full_mask(self.n)
            if op == "xor":
                left ^= mask
            else:
                left, right, op = left ^ mask, right ^ mask, _DUAL[op]
        return _gate(op, self.formula(left), self.formula(right))

    def to_dict(self) -> dict:
        return {"n": self.n, "measure": self.measure, "histogram": self.histogram(), "seconds": self.seconds}


def _combine(
    left: np.ndarray,
    right: np.ndarray,
    open_classes: np.ndarray,
    labels: np.ndarray,
    witnesses: tuple[np.ndarray, ...],
) -> None:
    """Mark every NPN class reached as ``l op r`` (l in `left`, r in `right`) that is still open
    (`open_classes[label]` True): close it and record the first witness found."""
    w_result, w_left, w_right, w_op = witnesses
    step = max(1, _CHUNK // max(1, right.size))
    for start in range(0, left.size, step):
        if not open_classes.any():
            return  # every class already reached: the rest of the products cannot add anything
        block = left[start : start + step, None]
        for op_index, results in enumerate((block & right, block | right, block ^ right)):
            classes = labels[results]
            fresh = open_classes[classes]
            if not fresh.any():
                continue
            rows, cols = np.nonzero(fresh)
            new_classes, first = np.unique(classes[rows, cols], return_index=True)
            rows, cols = rows[first], cols[first]
            w_result[new_classes] = results[rows, cols]
            w_left[new_classes] = block[rows, 0]
            w_right[new_classes] = right[cols]
            w_op[new_classes] = op_index
            open_classes[new_classes] = False


def _empty_witnesses(n: int) -> tuple[np.ndarray, ...]:
    size = num_functions(n)
    dtype = table_dtype(n)
    return (np.zeros(size, dtype), np.zeros(size, dtype), np.zeros(size, dtype), np.full(size, -1, np.int8))


@lru_cache(maxsize=None)
def formula_size_table(n: int) -> FormulaTable:
    """L(f) for every function of n <= 4 inputs (all 2^16 for n = 4)."""
    import time

    n = check_inputs(n, MAX_TABLE_INPUTS, "the exact formula-size table")
    start = time.perf_counter()
    labels = npn_class_labels(n)
    is_rep = labels == np.arange(labels.size)
    cost = np.full(labels.size, -1, dtype=np.int8)
    cost[literal_tables(n)] = 0
    witnesses = _empty_witnesses(n)
    levels = [np.flatnonzero(cost == 0).astype(table_dtype(n))]
    while (cost < 0).any():
        k = len(levels)
        open_classes = np.zeros(labels.size, dtype=bool)
        open_classes[labels[cost < 0]] = True
        for i in range(0, k):
            j = k - 1 - i
            if i > j:
                break
            reps_i, reps_j = levels[i][is_rep[levels[i]]], levels[j][is_rep[levels[j]]]
            if reps_i.size * levels[j].size <= levels[i].size * reps_j.size:
                _combine(reps_i, levels[j], open_classes, labels, witnesses)
            else:
                _combine(reps_j, levels[i], open_classes, labels, witnesses)
        reached = (cost < 0) & ~open_classes[labels]
        cost[reached] = k
        levels.append(np.flatnonzero(cost == k).astype(table_dtype(n)))
    return FormulaTable(n, "size", _frozen(cost), *map(_frozen, witnesses), seconds=time.perf_counter() - start)


@lru_cache(maxsize=None)
def formula_depth_table(n: int) -> FormulaTable:
    """D(f) for every function of n <= 4 inputs: depth d+1 functions are (depth <= d) op (depth <= d)."""
    import time

    n = check_inputs(n, MAX_TABLE_INPUTS, "the exact formula-depth table")
    start = time.perf_counter()
    labels = npn_class_labels(n)
    is_rep = labels == np.arange(labels.size)
    cost = np.full(labels.size, -1, dtype=np.int8)
    cost[literal_tables(n)] = 0
    witnesses = _empty_witnesses(n)
    depth = 0
    while (cost < 0).any():
        within = np.flatnonzero(cost >= 0).astype(table_dtype(n))
        open_classes = np.zeros(labels.size, dtype=bool)
        open_classes[labels[cost < 0]] = True
        _combine(within[is_rep[within]], within, open_classes, labels, witnesses)
        depth += 1
        cost[(cost < 0) & ~open_classes[labels]] = depth
    return FormulaTable(n, "depth", _frozen(cost), *map(_frozen, witnesses), seconds=time.perf_counter() - start)


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def formula_str(f: int, n: int, measure: str = "size") -> str:
    """One minimum formula for truth table `f` of `n` inputs as a readable expression,
    e.g. ``(x0 & ~x1) ^ x2``; `measure` "size" minimizes gates, "depth" the depth."""
    return str(min_formula(f, n, measure))


def min_formula(f: int, n: int, measure: str = "size") -> Formula:
    """One explicit optimal formula tree for `f` (see `FormulaTable.formula`)."""
    if measure == "size":
        return formula_size_table(n).formula(f)
    if measure == "depth":
        return formula_depth_table(n).formula(f)
    raise InputError(f"measure={measure!r}: must be 'size' or 'depth'")
