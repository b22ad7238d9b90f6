"""Benchmark: exact Boolean cost tables (formula size L, depth D, circuit size C), side by side.

Measured in one run, each on one core:

* L(f) for all 2^16 functions of 4 inputs three ways — the NPN-representative DP
  (`formula_size_table`), the same DP without symmetry (every cost-i function against every
  cost-j function, written here), and the exact formula counting by subset / XOR transforms
  (`count_formulas_by_size`, first non-zero size); all three must agree;
* D(f) for n = 4 (`formula_depth_table`), C(f) for n = 3 (complete) and n = 4 up to 5 gates;
* the histograms of each table (functions per cost), the known ones checked.

Goal from the issue: all n = 4 size and depth tables in <= 30 s on one core.

    .venv/bin/python experiments/benchmarks/circuit_tables.py [--out result.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np

from searchprobe.io import atomic_write_json
from searchprobe.search.circuits.counting import count_formulas_by_size
from searchprobe.search.circuits.formulas import formula_depth_table, formula_size_table
from searchprobe.search.circuits.programs import circuit_size_table
from searchprobe.search.circuits.truth_tables import literal_tables, npn_class_labels

PUBLISHED_C4 = [10, 60, 456, 2474, 10624, 24184]  # Knuth, TAOCP 7.1.2 (cost 0..5 of 4-input functions)
PUBLISHED_C3 = [8, 30, 114, 80, 24]


def naive_formula_sizes(n: int) -> np.ndarray:
    """L(f) by combining every cost-i function with every cost-j function (no symmetry)."""
    size = 1 << (1 << n)
    cost = np.full(size, -1, np.int8)
    cost[literal_tables(n)] = 0
    levels = [np.flatnonzero(cost == 0).astype(np.uint16)]
    while (cost < 0).any():
        k = len(levels)
        reached = np.zeros(size, bool)
        for i in range(k):
            j = k - 1 - i
            if i > j:
                break
            right = levels[j]
            for a in np.array_split(levels[i], max(1, levels[i].size * right.size // (1 << 22))):
                block = a[:, None]
                for results in (block & right, block | right, block ^ right):
                    reached[results.ravel()] = True
        cost[reached & (cost < 0)] = k
        levels.append(np.flatnonzero(cost == k).astype(np.uint16))
    return cost


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()

    labels, s_classes = timed(npn_class_labels, 4)
    sizes, s_size = timed(formula_size_table.__wrapped__, 4)
    depths, s_depth = timed(formula_depth_table.__wrapped__, 4)
    naive, s_naive = timed(naive_formula_sizes, 4)
    counts, s_count = timed(count_formulas_by_size, 4, int(sizes.cost.max()))
    first_nonzero = np.full(sizes.cost.size, -1)
    for s in reversed(range(len(counts))):
        first_nonzero[counts[s] != 0] = s
    c3, s_c3 = timed(circuit_size_table.__wrapped__, 3, None)
    c4, s_c4 = timed(circuit_size_table.__wrapped__, 4, 5)

    result = {
        "benchmark": "circuit_tables",
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "npn_classes_n4": {"count": len(set(labels.tolist())), "seconds": round(s_classes, 4)},
        "formula_size_n4": {
            "seconds": round(s_size, 4),
            "histogram": sizes.histogram(),
            "naive_dp_seconds": round(s_naive, 4),
            "transform_count_seconds": round(s_count, 4),
            "speedup_vs_naive_dp": round(s_naive / s_size, 1),
            "speedup_vs_transform_count": round(s_count / s_size, 1),
            "three_methods_agree": bool(np.array_equal(naive, sizes.cost) and np.array_equal(first_nonzero, sizes.cost)),
        },
        "formula_depth_n4": {"seconds": round(s_depth, 4), "histogram": depths.histogram()},
        "circuit_size_n3": {"seconds": round(s_c3, 4), "histogram": c3.histogram(), "published": c3.histogram() == PUBLISHED_C3},
        "circuit_size_n4_cap5": {
            "seconds": round(s_c4, 4),
            "histogram": c4.histogram(),
            "published": c4.histogram() == PUBLISHED_C4,
        },
        "n4_size_and_depth_total_seconds": round(s_classes + s_size + s_depth, 4),
        "goal_seconds": 30,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
