"""The search-trace & prior-cost library (pure Python + numpy; never imports torch).

- `trace`: one columnar event schema for every search.
- `graph`: BFS / DFS / uniform-cost / greedy best-first / A* over a small problem protocol.
- `games`: minimax and alpha-beta with move ordering and a transposition table.
- `machines`: Turing machines in bbchallenge format, tree-normal-form enumeration, vectorized simulation.
- `programs`, `tm_tasks`: program spaces and program-search tasks (what a dovetailer searches over).
- `dovetail`: Dovetailer(a, b), implied priors, exact cell accounting.
- `lambda_calculus`, `levin`: binary lambda calculus and Levin / FAST search over it.
- `priors`: description length, runtime, mixed priors, bits of a slope a/b.
- `circuits`: exact formula / depth / circuit costs of small Boolean functions.
- `forwarding`: outer→inner prior maps over dovetailer slopes, the discounted loss evaluator.
"""
