"""Graph search with Searchformer-style traces: BFS, DFS, uniform-cost, greedy best-first and A*.

Every search runs over a small `SearchProblem` protocol and returns the same `SearchResult`,
whose `trace` is a `searchprobe.search.trace.Trace` (core columns only) with three event kinds:

* ``CREATE`` — a node is put on the frontier: node, parent, depth (edges from the start), g (path
  cost so far), h (heuristic; NaN for the uninformed searches BFS / DFS / uniform-cost).
* ``CLOSE`` — a node is taken off the frontier and expanded (same columns as its CREATE).
* ``GOAL`` — the goal test succeeded on the node just closed; it is the last event of the trace.

Conventions shared by all five searches (so the traces of different algorithms line up):

* The goal test happens when a node is **closed**, never when it is created. For uniform-cost and
  A* this is what makes the returned path optimal; BFS and DFS follow the same rule for
  uniformity (BFS still returns a path with the fewest edges, at the price of also creating the
  goal's frontier siblings). A successful search therefore ends ``…, CLOSE goal, GOAL goal``
  and the goal's CLOSE counts in `SearchResult.expanded`; its neighbours are not generated.
* The start node is CREATE'd first with parent -1, depth 0, g 0.
* Every CLOSE'd node was CREATE'd earlier with the same parent, depth and g.
* `SearchResult.cost` is the sum of the step costs along the returned path, for every algorithm
  (BFS and DFS ignore costs when choosing, but report the true cost of what they chose).

Per-algorithm frontier rules:

* `bfs` — FIFO queue; a node is created once (when first seen).
* `dfs` — graph DFS with a stack; the neighbours of a closed node are pushed in reverse order so
  the first-listed one is explored first, which reproduces the order of recursive DFS. A node that
  is not yet closed can be pushed (CREATE'd) again from a later parent; when it is popped, the most
  recent push wins and older stack entries for it are skipped without an event.
* `uniform_cost`, `astar` — a binary heap with lazy deletion: a node is CREATE'd again whenever a
  strictly cheaper path to it is found, and stale heap entries are skipped without an event. A*
  re-opens a closed node when a cheaper path appears (only possible with an inconsistent
  heuristic), so it stays optimal for any admissible heuristic.
* `greedy_best_first` — heap on h; a node is created once (when first seen); not optimal.

Tie-breaking (documented because the traces are training data):

* `uniform_cost`: lowest g, then insertion order (FIFO).
* `greedy_best_first`: lowest h, then lowest g, then insertion order.
* `astar` with ``seed=None``: lowest f = g + h, then lowest h (the deeper node), then insertion
  order. With an integer ``seed``, ties in f are broken uniformly at random (Searchformer's
  "nondeterministic A*"): the i-th push gets the key splitmix64(splitmix64(seed) + i), a
  counter-based hash, so the same seed gives the same trace (and there is no global RNG).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from searchprobe.errors import InputError
from searchprobe.search.trace import Event, Trace

__all__ = [
    "SearchProblem",
    "SearchResult",
    "ExplicitGraphProblem",
    "GridGraphProblem",
    "bfs",
    "dfs",
    "uniform_cost",
    "greedy_best_first",
    "astar",
]

_CREATE, _CLOSE, _GOAL = int(Event.CREATE), int(Event.CLOSE), int(Event.GOAL)
_NAN = math.nan
_INF = math.inf


@runtime_checkable
class SearchProblem(Protocol):
    """What a graph search needs to know about a problem.

    ``heuristic`` is optional: the informed searches use 0.0 when the problem has none.
    ``node_id`` may be left out when the nodes are themselves ints.
    """

    def start(self) -> Hashable:
        """The start node."""
        ...

    def is_goal(self, node: Any) -> bool:
        """Whether `node` is a goal."""
        ...

    def neighbours(self, node: Any) -> Iterable[tuple[Hashable, float]]:
        """(neighbour, step cost >= 0) pairs, in a fixed order."""
        ...

    def node_id(self, node: Any) -> int:
        """The integer written into the trace's node / parent columns."""
        ...


@dataclass(frozen=True)
class SearchResult:
    """What a graph search found, plus the trace of how it found it."""

    path: list | None  #: start … goal inclusive; None if no goal is reachable
    cost: float  #: sum of step costs along `path` (inf if none)
    expanded: int  #: number of CLOSE events (the goal's CLOSE included)
    trace: Trace = field(repr=False)  #: the event trace (empty if record_trace=False)

    def __repr__(self) -> str:
        path = "None" if self.path is None else f"<{len(self.path)} nodes>"
        return f"SearchResult(path={path}, cost={self.cost!r}, expanded={self.expanded}, trace={self.trace!r})"


# --- convenience problems ---------------------------------------------------------------


@dataclass(frozen=True)
class ExplicitGraphProblem:
    """A graph given as an adjacency dict ``{node: [(neighbour, cost), …]}`` (or plain neighbour
    lists, meaning cost 1), with a start, one goal or several, and an optional heuristic dict.

    Node ids in the trace are the nodes themselves when they are ints, otherwise their position
    in the adjacency dict's key order (neighbours that are not keys get ids after those).
    """

    adjacency: Mapping[Hashable, Sequence]
    start_node: Hashable
    goal: Hashable | frozenset | set | None
    heuristic_values: Mapping[Hashable, float] | None = None
    _adj: dict = field(init=False, repr=False, compare=False)
    _goals: frozenset = field(init=False, repr=False, compare=False)
    _ids: dict | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        adj: dict = {}
        for node, nbrs in self.adjacency.items():
            row = []
            for item in nbrs:
                nb, cost = (item if isinstance(item, tuple) else (item, 1.0))
                cost = float(cost)
                if not cost >= 0.0:
                    raise InputError(f"edge {node!r}->{nb!r} has cost {cost!r} in the adjacency dict; costs must be >= 0")
                row.append((nb, cost))
            adj[node] = row
        if self.start_node not in adj:
            raise InputError(f"start node {self.start_node!r} is not a key of the adjacency dict ({len(adj)} nodes)")
        goals = self.goal if isinstance(self.goal, (set, frozenset)) else ({self.goal} if self.goal is not None else set())
        nodes = list(adj) + [nb for row in adj.values() for nb, _ in row if nb not in adj]
        ids = None
        if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in nodes):
            ids = {n: i for i, n in enumerate(dict.fromkeys(nodes))}
        object.__setattr__(self, "_adj", adj)
        object.__setattr__(self, "_goals", frozenset(goals))
        object.__setattr__(self, "_ids", ids)

    def start(self) -> Hashable:
        return self.start_node

    def is_goal(self, node: Hashable) -> bool:
        return node in self._goals

    def neighbours(self, node: Hashable) -> list[tuple[Hashable, float]]:
        return self._adj.get(node, [])

    def heuristic(self, node: Hashable) -> float:
        return 0.0 if self.heuristic_values is None else float(self.heuristic_values.get(node, 0.0))

    def node_id(self, node: Hashable) -> int:
        return int(node) if self._ids is None else self._ids[node]


@dataclass(frozen=True, eq=False)
class GridGraphProblem:
    """A 4-connected grid: ``passable`` is a bool (n_rows, n_cols) array; nodes are (row, col).

    Moves are listed up, left, right, down (row-major order of the neighbour cells). Step cost is
    1, or ``cost[r2, c2]`` of the entered cell when a cost array is given. The heuristic is the
    Manhattan distance to the goal times the cheapest step cost (admissible and consistent). Node
    ids are ``row * n_cols + col``, as in `searchprobe.tasks.maze`.
    """

    passable: np.ndarray
    start_cell: tuple[int, int]
    goal_cell: tuple[int, int]
    cost: np.ndarray | None = None
    _adj: dict = field(init=False, repr=False)
    _min_cost: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        grid = np.asarray(self.passable, dtype=bool)
        if grid.ndim != 2 or grid.size == 0:
            raise InputError(f"passable must be a non-empty 2-D bool array, got shape {grid.shape}")
        n_rows, n_cols = grid.shape
        for name, cell in (("start_cell", self.start_cell), ("goal_cell", self.goal_cell)):
            r, c = cell
            if not (0 <= r < n_rows and 0 <= c < n_cols) or not grid[r, c]:
                raise InputError(f"{name} {cell!r} is outside the {n_rows}x{n_cols} grid or on a wall; it must be a passable cell")
        costs = np.ones(grid.shape) if self.cost is None else np.asarray(self.cost, dtype=float)
        if costs.shape != grid.shape or not np.all(costs[grid] >= 0):
            raise InputError(f"cost must be a {grid.shape} array of values >= 0, got shape {costs.shape}")
        adj = {}
        for r, c in zip(*np.nonzero(grid)):
            r, c = int(r), int(c)
            row = []
            for r2, c2 in ((r - 1, c), (r, c - 1), (r, c + 1), (r + 1, c)):
                if 0 <= r2 < n_rows and 0 <= c2 < n_cols and grid[r2, c2]:
                    row.append(((r2, c2), float(costs[r2, c2])))
            adj[(r, c)] = row
        object.__setattr__(self, "_adj", adj)
        object.__setattr__(self, "_min_cost", float(costs[grid].min()))
        object.__setattr__(self, "start_cell", (int(self.start_cell[0]), int(self.start_cell[1])))
        object.__setattr__(self, "goal_cell", (int(self.goal_cell[0]), int(self.goal_cell[1])))

    def start(self) -> tuple[int, int]:
        return self.start_cell

    def is_goal(self, node: tuple[int, int]) -> bool:
        return node == self.goal_cell

    def neighbours(self, node: tuple[int, int]) -> list[tuple[tuple[int, int], float]]:
        return self._adj[node]

    def heuristic(self, node: tuple[int, int]) -> float:
        return self._min_cost * (abs(node[0] - self.goal_cell[0]) + abs(node[1] - self.goal_cell[1]))

    def node_id(self, node: tuple[int, int]) -> int:
        return node[0] * self.passable.shape[1] + node[1]


# --- helpers ----------------------------------------------------------------------------


def _node_id_fn(problem: Any) -> Callable[[Any], int]:
    fn = getattr(problem, "node_id", None)
    return fn if fn is not None else _identity_id


def _identity_id(node: Any) -> int:
    if isinstance(node, (int, np.integer)) and not isinstance(node, bool):
        return int(node)
    raise InputError(f"node {node!r} is not an int and the problem has no node_id(); give it a node_id method")


def _heuristic_fn(problem: Any) -> Callable[[Any], float]:
    fn = getattr(problem, "heuristic", None)
    return fn if fn is not None else _zero


def _zero(node: Any) -> float:
    return 0.0


def _build_trace(rows: list[tuple]) -> Trace:
    """rows of (kind, node, parent, depth, g, h) → a core-columns Trace."""
    if not rows:
        return Trace.empty()
    kind, node, parent, depth, g, h = zip(*rows)
    n = len(rows)
    return Trace(
        {
            "kind": np.array(kind, dtype=np.int8),
            "node": np.array(node, dtype=np.int64),
            "parent": np.array(parent, dtype=np.int64),
            "depth": np.array(depth, dtype=np.int32),
            "g": np.array(g, dtype=np.float64),
            "h": np.array(h, dtype=np.float64),
            "value": np.full(n, _NAN),
        }
    )


def _result(goal: Any, parent_of: dict, g_goal: float, expanded: int, rows: list | None) -> SearchResult:
    trace = _build_trace(rows) if rows is not None else Trace.empty()
    if goal is _NO_GOAL:
        return SearchResult(None, _INF, expanded, trace)
    path = [goal]
    node = goal
    while True:
        node = parent_of[node]
        if node is _NO_GOAL:
            break
        path.append(node)
    path.reverse()
    return SearchResult(path, float(g_goal), expanded, trace)


class _Sentinel:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<none>"


_NO_GOAL: Any = _Sentinel()  # "no node": parent of the start, and the goal when none was found


def _check_cost(cost: float, node: Any, nb: Any) -> None:
    raise InputError(f"step cost {cost!r} on edge {node!r}->{nb!r} is negative or NaN; costs must be >= 0")


# --- the searches -----------------------------------------------------------------------


def bfs(problem: SearchProblem, *, record_trace: bool = True) -> SearchResult:
    """Breadth-first search: the path with the fewest edges (goal test on CLOSE, see module doc)."""
    neighbours, is_goal = problem.neighbours, problem.is_goal
    nid = _node_id_fn(problem)
    rows: list | None = [] if record_trace else None
    add = rows.append if rows is not None else None

    start = problem.start()
    parent_of = {start: _NO_GOAL}
    # queue entries: node, its id (or -1), parent id, depth, g
    start_id = nid(start) if add else -1
    queue = deque([(start, start_id, -1, 0, 0.0)])
    if add:
        add((_CREATE, start_id, -1, 0, 0.0, _NAN))
    popleft, push = queue.popleft, queue.append
    expanded = 0
    while queue:
        node, node_id, par_id, depth, g = popleft()
        expanded += 1
        if add:
            add((_CLOSE, node_id, par_id, depth, g, _NAN))
        if is_goal(node):
            if add:
                add((_GOAL, node_id, par_id, depth, g, _NAN))
            return _result(node, parent_of, g, expanded, rows)
        depth1 = depth + 1
        for nb, cost in neighbours(node):
            if nb in parent_of:
                continue
            parent_of[nb] = node
            nb_id = nid(nb) if add else -1
            push((nb, nb_id, node_id, depth1, g + cost))
            if add:
                add((_CREATE, nb_id, node_id, depth1, g + cost, _NAN))
    return _result(_NO_GOAL, parent_of, _INF, expanded, rows)


def dfs(problem: SearchProblem, *, record_trace: bool = True) -> SearchResult:
    """Graph depth-first search; the first-listed neighbour is explored first (see module doc)."""
    neighbours, is_goal = problem.neighbours, problem.is_goal
    nid = _node_id_fn(problem)
    rows: list | None = [] if record_trace else None
    add = rows.append if rows is not None else None

    start = problem.start()
    start_id = nid(start) if add else -1
    # stack entries: node, its id, parent node, parent id, depth, g
    stack = [(start, start_id, _NO_GOAL, -1, 0, 0.0)]
    if add:
        add((_CREATE, start_id, -1, 0, 0.0, _NAN))
    pop, extend = stack.pop, stack.extend
    parent_of: dict = {}  # set when a node is closed: closed set and DFS tree at once
    expanded = 0
    while stack:
        node, node_id, parent, par_id, depth, g = pop()
        if node in parent_of:
            continue
        parent_of[node] = parent
        expanded += 1
        if add:
            add((_CLOSE, node_id, par_id, depth, g, _NAN))
        if is_goal(node):
            if add:
                add((_GOAL, node_id, par_id, depth, g, _NAN))
            return _result(node, parent_of, g, expanded, rows)
        depth1 = depth + 1
        pushed = []
        for nb, cost in neighbours(node):
            if nb in parent_of:
                continue
            nb_id = nid(nb) if add else -1
            if add:  # CREATE events in listed order …
                add((_CREATE, nb_id, node_id, depth1, g + cost, _NAN))
            pushed.append((nb, nb_id, node, node_id, depth1, g + cost))
        extend(reversed(pushed))  # … pushed so the first-listed neighbour is on top
    return _result(_NO_GOAL, parent_of, _INF, expanded, rows)


def uniform_cost(problem: SearchProblem, *, record_trace: bool = True) -> SearchResult:
    """Dijkstra / uniform-cost search: a cheapest path (ties: lowest g, then FIFO)."""
    return _best_first(problem, "ucs", None, record_trace)


def greedy_best_first(problem: SearchProblem, *, record_trace: bool = True) -> SearchResult:
    """Greedy best-first search on h alone (ties: lowest g, then FIFO); fast, not optimal."""
    return _best_first(problem, "greedy", None, record_trace)


def astar(problem: SearchProblem, *, seed: int | None = None, record_trace: bool = True) -> SearchResult:
    """A*: a cheapest path for an admissible heuristic.

    Ties in f go to the lower h, then FIFO; with an integer `seed`, ties in f are broken at
    random instead, reproducibly for the same seed (Searchformer's nondeterministic A*).
    """
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise InputError(f"astar seed {seed!r} is not allowed; give a non-negative int or None")
    return _best_first(problem, "astar", seed, record_trace)


_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """SplitMix64 finaliser: a counter-based hash, so a seeded run needs no Generator."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


class _TieDraws:
    """Random f-tie keys: the i-th push of a run with `seed` gets splitmix64(mix(seed) + i)."""

    __slots__ = ("_base", "_i")

    def __init__(self, seed: int) -> None:
        self._base = _splitmix64(int(seed) & _MASK64)
        self._i = 0

    def __call__(self) -> int:
        self._i += 1
        return _splitmix64((self._base + self._i) & _MASK64)


def _best_first(problem: Any, mode: str, seed: int | None, record_trace: bool) -> SearchResult:
    """One heap loop for UCS, greedy and A*; `mode` only changes the heap key.

    Heap entries are (primary, secondary, counter, g, h, node, node id, parent id, depth); the
    unique counter makes the order total, so nodes themselves are never compared.
    """
    neighbours, is_goal = problem.neighbours, problem.is_goal
    informed = mode != "ucs"
    heuristic = _heuristic_fn(problem) if informed else _zero
    greedy, is_astar = mode == "greedy", mode == "astar"
    draw = _TieDraws(seed) if seed is not None else None
    nid = _node_id_fn(problem)
    rows: list | None = [] if record_trace else None
    add = rows.append if rows is not None else None
    heappush, heappop = heapq.heappush, heapq.heappop
    no_h = _NAN

    start = problem.start()
    start_id = nid(start) if add else -1
    h0 = float(heuristic(start)) if informed else _NAN
    if is_astar:
        first = (h0, h0 if draw is None else draw())
    elif greedy:
        first = (h0, 0.0)
    else:
        first = (0.0, 0.0)
    heap = [(*first, 0, 0.0, h0, start, start_id, -1, 0)]
    best_g = {start: 0.0}
    parent_of = {start: _NO_GOAL}
    if add:
        add((_CREATE, start_id, -1, 0, 0.0, h0))
    counter = 1
    expanded = 0
    while heap:
        _, _, _, g, h, node, node_id, par_id, depth = heappop(heap)
        if g > best_g[node]:
            continue  # stale entry: a cheaper path to this node was pushed later
        expanded += 1
        if add:
            add((_CLOSE, node_id, par_id, depth, g, h))
        if is_goal(node):
            if add:
                add((_GOAL, node_id, par_id, depth, g, h))
            return _result(node, parent_of, g, expanded, rows)
        depth1 = depth + 1
        for nb, cost in neighbours(node):
            if not cost >= 0.0:
                _check_cost(cost, node, nb)
            g1 = g + cost
            old = best_g.get(nb)
            if old is not None and (greedy or g1 >= old):
                continue
            best_g[nb] = g1
            parent_of[nb] = node
            nb_id = nid(nb) if add else -1
            if is_astar:
                h1 = float(heuristic(nb))
                heappush(heap, (g1 + h1, h1 if draw is None else draw(), counter, g1, h1, nb, nb_id, node_id, depth1))
            elif greedy:
                h1 = float(heuristic(nb))
                heappush(heap, (h1, g1, counter, g1, h1, nb, nb_id, node_id, depth1))
            else:
                h1 = no_h
                heappush(heap, (g1, 0.0, counter, g1, h1, nb, nb_id, node_id, depth1))
            counter += 1
            if add:
                add((_CREATE, nb_id, node_id, depth1, g1, h1))
    return _result(_NO_GOAL, parent_of, _INF, expanded, rows)
