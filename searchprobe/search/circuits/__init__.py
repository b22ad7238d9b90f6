"""Boolean circuit priors: exact formula / depth / circuit costs of small functions, and witnesses.

Truth tables are integers: bit x of a table is f(x), where bit i of the assignment x is input
x_i (so for n = 2, x0 = 0b1010 and x1 = 0b1100). Leaves (0, 1, x_i, NOT x_i) cost 0, every
two-input gate costs 1, NOT is free.

- `formula_size_table(n)` / `formula_depth_table(n)`: L(f) and D(f) for all functions, n <= 4.
- `circuit_size_table(n, max_cost=None)`: C(f), complete for n <= 3, up to 4 gates for n = 4.
- `formula_str(f, n)`: one minimum formula, e.g. ``(x0 & ~x1) ^ x2``.
- `tree_forwarding_witness`, `circuit_sharing_witness`, `depth_prior_witness`: the forwarding
  evidence for task sets; `circuit_report(n)` bundles the histograms and witnesses as JSON data.
"""

from searchprobe.search.circuits.counting import (
    count_formulas_by_depth,
    count_formulas_by_depth_and_size,
    count_formulas_by_size,
)
from searchprobe.search.circuits.formulas import (
    FormulaTable,
    Leaf,
    Node,
    formula_depth_table,
    formula_size_table,
    formula_str,
    min_formula,
)
from searchprobe.search.circuits.programs import Circuit, CircuitTable, Gate, circuit_size_table
from searchprobe.search.circuits.truth_tables import (
    Transform,
    normalize,
    npn_class_labels,
    npn_generators,
    variable_table,
)
from searchprobe.search.circuits.witnesses import (
    CircuitSharingWitness,
    DepthPriorWitness,
    DepthTaskCount,
    TreeForwardingWitness,
    circuit_report,
    circuit_sharing_witness,
    depth_prior_witness,
    min_circuit_for_tasks,
    tree_forwarding_witness,
)

__all__ = [
    "Circuit",
    "CircuitSharingWitness",
    "CircuitTable",
    "DepthPriorWitness",
    "DepthTaskCount",
    "FormulaTable",
    "Gate",
    "Leaf",
    "Node",
    "Transform",
    "TreeForwardingWitness",
    "circuit_report",
    "circuit_sharing_witness",
    "circuit_size_table",
    "count_formulas_by_depth",
    "count_formulas_by_depth_and_size",
    "count_formulas_by_size",
    "depth_prior_witness",
    "formula_depth_table",
    "formula_size_table",
    "formula_str",
    "min_circuit_for_tasks",
    "min_formula",
    "normalize",
    "npn_class_labels",
    "npn_generators",
    "tree_forwarding_witness",
    "variable_table",
]
