"""Brute-force minimum *forest* size of task sets: straight-line programs with gate fan-out 1.

Under the tree prior no gate output may be sent to more than one place (another gate's input or
an output wire); inputs and constants may be copied freely. This module enumerates such
programs directly, level by level, with all 16 binary gates written out as truth tables of the
gate — deliberately a different construction from the formula DP in `formulas.py`, so the two
can check each other: the minimum forest for a task set should be the sum of the L(f).

A state is the multiset of *roots* (gate outputs not yet consumed), normalized under free NOT.
"""

from __future__ import annotations

import itertools
from collections import Counter
from functools import lru_cache

from searchprobe.errors import InputError
from searchprobe.search.circuits.truth_tables import check_inputs, full_mask, literal_tables, normalize

MAX_FOREST_GATES = {1: 4, 2: 4, 3: 4, 4: 3}  # a few seconds at most in pure Python


def binary_gate(op: int, a: int, b: int, mask: int) -> int:
    """Gate number `op` (0..15): bit (2*b_bit + a_bit) of `op` is its output on (a_bit, b_bit)."""
    out = 0
    if op & 1:
        out |= ~a & ~b
    if op & 2:
        out |= a & ~b
    if op & 4:
        out |= ~a & b
    if op & 8:
        out |= a & b
    return out & mask


@lru_cache(maxsize=None)
def forest_levels(n: int, max_gates: int) -> tuple[frozenset[tuple[int, ...]], ...]:
    """``levels[k]`` = every multiset (sorted tuple) of root functions of a k-gate forest."""
    n = check_inputs(n, 4, "forest enumeration")
    if isinstance(max_gates, bool) or not isinstance(max_gates, int) or not 0 <= max_gates <= MAX_FOREST_GATES[n]:
        raise InputError(
            f"max_gates={max_gates!r} for the n={n} forest enumeration: the number of root multisets "
            f"explodes; allowed 0..{MAX_FOREST_GATES[n]}"
        )
    mask = full_mask(n)
    leaves = sorted({normalize(int(t), n) for t in literal_tables(n)})
    leaf_set = set(leaves)
    levels: list[frozenset[tuple[int, ...]]] = [frozenset({()})]
    outputs: dict[tuple[int, int], set[int]] = {}
    for _ in range(max_gates):
        nxt: set[tuple[int, ...]] = set()
        for roots in levels[-1]:
            # operands: a free leaf (nothing consumed) or one root (consumed)
            choices = [(leaf, None) for leaf in leaves] + [(r, i) for i, r in enumerate(roots)]
            for (a, ia), (b, ib) in itertools.combinations_with_replacement(choices, 2):
                if ia is not None and ia == ib:
                    continue  # one root cannot feed both inputs of a gate (fan-out 1)
                rest = [r for i, r in enumerate(roots) if i != ia and i != ib]
                if (a, b) not in outputs:
                    # a gate computing a leaf is never part of a minimum forest
                    outputs[a, b] = {normalize(binary_gate(op, a, b, mask), n) for op in range(16)} - leaf_set
                for out in outputs[a, b]:
                    nxt.add(tuple(sorted(rest + [out])))
        levels.append(frozenset(nxt))
    return tuple(levels)


def min_forest_size(tasks: tuple[int, ...], n: int, max_gates: int) -> int | None:
    """Fewest gates in a fan-out-1 program delivering every task (None if more than `max_gates`)."""
    leaves = {normalize(int(t), n) for t in literal_tables(n)}
    needed = Counter(normalize(int(t), n) for t in tasks if normalize(int(t), n) not in leaves)
    if not needed:
        return 0
    for k, level in enumerate(forest_levels(n, max_gates)):
        if any(not (needed - Counter(roots)) for roots in level):
            return k
    return None


def pair_forest_sizes(n: int, max_gates: int) -> dict[tuple[int, int], int]:
    """Minimum forest size of every pair of normalized non-leaf functions (a <= b) with size <= max_gates."""
    best: dict[tuple[int, int], int] = {}
    for k, level in enumerate(forest_levels(n, max_gates)):
        for roots in level:
            for pair in itertools.combinations(roots, 2):
                best.setdefault(pair, k)
    return best


def single_forest_sizes(n: int, max_gates: int) -> dict[int, int]:
    """Minimum tree size of every normalized non-leaf function with size <= max_gates."""
    best: dict[int, int] = {}
    for k, level in enumerate(forest_levels(n, max_gates)):
        for roots in level:
            for r in roots:
                best.setdefault(r, k)
    return best
