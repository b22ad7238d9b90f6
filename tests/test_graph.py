"""Graph searches against networkx (Dijkstra, A*, BFS/DFS orders) and the trace invariants."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from searchprobe.errors import InputError
from searchprobe.search.graph import (
    ExplicitGraphProblem,
    GridGraphProblem,
    SearchResult,
    astar,
    bfs,
    dfs,
    greedy_best_first,
    uniform_cost,
)
from searchprobe.search.trace import Event

ALL = [bfs, dfs, uniform_cost, greedy_best_first, astar]
SEEDS = st.integers(0, 2**32 - 1)


def random_digraph(seed: int, weighted: bool = True) -> nx.DiGraph:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 40))
    p = float(rng.uniform(0.03, 0.3))
    graph = nx.gnp_random_graph(n, p, seed=int(rng.integers(2**31)), directed=True)
    for u, v in graph.edges:
        graph[u][v]["weight"] = float(rng.integers(1, 10)) if weighted else 1.0
    return graph


def problem_of(graph: nx.DiGraph, source, target, heuristic=None) -> ExplicitGraphProblem:
    adjacency = {u: [(v, graph[u][v]["weight"]) for v in graph.successors(u)] for u in graph.nodes}
    return ExplicitGraphProblem(adjacency, source, target, heuristic)


def path_cost(graph: nx.DiGraph, path: list) -> float:
    assert all(graph.has_edge(u, v) for u, v in zip(path, path[1:])), f"not a path: {path}"
    return float(sum(graph[u][v]["weight"] for u, v in zip(path, path[1:])))


def check_trace_invariants(result: SearchResult, start_id: int) -> None:
    """CREATE before CLOSE with matching columns; depths follow parents; GOAL last iff found."""
    trace = result.trace
    kinds = trace.kind
    assert kinds[0] == Event.CREATE and trace.node[0] == start_id and trace.parent[0] == -1
    assert trace.depth[0] == 0 and trace.g[0] == 0.0
    created: dict[tuple, int] = {}
    closed_depth: dict[int, int] = {}
    for i in range(len(trace)):
        row = (int(trace.node[i]), int(trace.parent[i]), int(trace.depth[i]), float(trace.g[i]))
        if kinds[i] == Event.CREATE:
            created[row] = i
            if row[1] != -1:  # created while expanding its parent, which is the latest CLOSE
                last_close = np.flatnonzero(kinds[:i] == Event.CLOSE)[-1]
                assert trace.node[last_close] == row[1] and row[2] == closed_depth[row[1]] + 1
        elif kinds[i] == Event.CLOSE:
            assert row in created, f"CLOSE of {row} at step {i} was never CREATE'd"
            closed_depth[row[0]] = row[2]
        else:
            assert kinds[i] == Event.GOAL and i == len(trace) - 1
            assert kinds[i - 1] == Event.CLOSE and trace.node[i - 1] == trace.node[i]
    assert result.expanded == int(np.sum(kinds == Event.CLOSE))
    assert (kinds[-1] == Event.GOAL) == (result.path is not None)


# --- optimal costs against networkx ----------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(SEEDS)
def test_ucs_and_astar_costs_equal_networkx_dijkstra(seed):
    graph = random_digraph(seed)
    rng = np.random.default_rng(seed + 1)
    source, target = (int(x) for x in rng.integers(0, graph.number_of_nodes(), size=2))
    to_target = nx.single_source_dijkstra_path_length(graph.reverse(copy=True), target)
    # consistent everywhere: nodes that cannot reach the target get h = inf (a missing entry would mean 0,
    # and 0 after 0.7 * d on an edge into a dead end breaks consistency)
    consistent = {v: 0.7 * to_target[v] if v in to_target else math.inf for v in graph.nodes}
    inconsistent = {v: float(rng.uniform(0, d)) for v, d in to_target.items()}  # admissible only
    try:
        expected = nx.dijkstra_path_length(graph, source, target)
    except nx.NetworkXNoPath:
        expected = math.inf
    results = {
        "ucs": uniform_cost(problem_of(graph, source, target)),
        "astar0": astar(problem_of(graph, source, target)),
        "astar": astar(problem_of(graph, source, target, consistent)),
        "astar_inconsistent": astar(problem_of(graph, source, target, inconsistent)),
        "astar_seeded": astar(problem_of(graph, source, target, consistent), seed=seed),
    }
    for name, result in results.items():
        assert result.cost == expected, name
        if math.isinf(expected):
            assert result.path is None
        else:
            assert result.path[0] == source and result.path[-1] == target
            assert path_cost(graph, result.path) == expected
        check_trace_invariants(result, source)
    if not math.isinf(expected):  # a consistent heuristic never expands more than Dijkstra
        assert results["astar"].expanded <= results["ucs"].expanded


@settings(max_examples=40, deadline=None)
@given(SEEDS)
def test_grid_astar_matches_networkx_astar_and_expands_no_more_than_ucs(seed):
    rng = np.random.default_rng(seed)
    n_rows, n_cols = (int(x) for x in rng.integers(2, 12, size=2))
    passable = rng.random((n_rows, n_cols)) > 0.3
    cells = np.argwhere(passable)
    if len(cells) < 2:
        return
    start, goal = (tuple(int(v) for v in cells[i]) for i in rng.choice(len(cells), 2, replace=False))
    cost = rng.integers(1, 5, size=(n_rows, n_cols)).astype(float)
    problem = GridGraphProblem(passable, start, goal, cost)
    graph = nx.DiGraph()
    for u, nbrs in problem._adj.items():
        graph.add_node(u)
        for v, w in nbrs:
            graph.add_edge(u, v, weight=w)
    try:
        expected = nx.astar_path_length(graph, start, goal, heuristic=lambda a, b: abs(a[0] - b[0]) + abs(a[1] - b[1]))
    except nx.NetworkXNoPath:
        expected = math.inf
    a, u = astar(problem), uniform_cost(problem)
    assert a.cost == u.cost == expected
    assert a.expanded <= u.expanded
    start_id = start[0] * n_cols + start[1]
    check_trace_invariants(a, start_id)
    check_trace_invariants(u, start_id)
    if a.path is not None:
        assert path_cost(graph, a.path) == expected
        # f = g + h is nondecreasing along A*'s closed list (consistent heuristic)
        closed = a.trace.select(Event.CLOSE)
        assert np.all(np.diff(closed.g + closed.h) >= 0)


# --- BFS / DFS against networkx traversal orders -------------------------------------------


@settings(max_examples=60, deadline=None)
@given(SEEDS)
def test_bfs_length_and_order_match_networkx(seed):
    graph = random_digraph(seed, weighted=False)
    rng = np.random.default_rng(seed + 7)
    source, target = (int(x) for x in rng.integers(0, graph.number_of_nodes(), size=2))
    result = bfs(problem_of(graph, source, target))
    check_trace_invariants(result, source)
    order = [source] + [v for _, v in nx.bfs_edges(graph, source)]
    closed = result.trace.nodes(Event.CLOSE).tolist()
    if nx.has_path(graph, source, target):
        assert len(result.path) - 1 == nx.shortest_path_length(graph, source, target)
        assert result.cost == len(result.path) - 1
        assert closed == order[: order.index(target) + 1]
    else:
        assert result.path is None and result.cost == math.inf
        assert closed == order  # the whole reachable set, in BFS order


@settings(max_examples=60, deadline=None)
@given(SEEDS)
def test_dfs_order_matches_networkx_preorder(seed):
    graph = random_digraph(seed)
    rng = np.random.default_rng(seed + 11)
    source, target = (int(x) for x in rng.integers(0, graph.number_of_nodes(), size=2))
    result = dfs(problem_of(graph, source, target))
    check_trace_invariants(result, source)
    order = list(nx.dfs_preorder_nodes(graph, source))
    closed = result.trace.nodes(Event.CLOSE).tolist()
    if target in order:
        assert closed == order[: order.index(target) + 1]
        assert result.path[0] == source and result.path[-1] == target
        assert result.cost == path_cost(graph, result.path)
        # the DFS path is the tree path of networkx's DFS tree
        assert result.path == nx.shortest_path(nx.dfs_tree(graph, source), source, target)
    else:
        assert result.path is None and closed == order


def test_unreachable_goal_returns_none_for_every_search():
    problem = ExplicitGraphProblem({0: [(1, 1.0)], 1: [(0, 1.0)], 2: []}, 0, 2)
    for search in ALL:
        result = search(problem)
        assert result.path is None and result.cost == math.inf and result.expanded == 2, search.__name__
        assert Event.GOAL not in result.trace.kind


def test_start_is_goal():
    for search in ALL:
        result = search(ExplicitGraphProblem({"s": [("t", 1.0)]}, "s", "s"))
        assert result.path == ["s"] and result.cost == 0.0 and result.expanded == 1
        assert result.trace.kind.tolist() == [Event.CREATE, Event.CLOSE, Event.GOAL]


# --- UCS / A* trace properties ------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(SEEDS)
def test_ucs_closes_in_nondecreasing_g(seed):
    graph = random_digraph(seed)
    result = uniform_cost(problem_of(graph, 0, None))  # no goal: closes every reachable node
    closed = result.trace.select(Event.CLOSE)
    assert np.all(np.diff(closed.g) >= 0)
    expected = nx.single_source_dijkstra_path_length(graph, 0)
    assert dict(zip(closed.node.tolist(), closed.g.tolist())) == expected


def test_astar_tie_breaking_is_documented_and_seeded_variant_is_reproducible():
    problem = GridGraphProblem(np.ones((8, 8), bool), (0, 0), (7, 7))
    deterministic = astar(problem)
    assert deterministic == astar(problem)  # dataclass eq, trace included
    # lowest f, then lowest h: on an open grid every closed node has f = 14 and A* heads straight
    # for the goal, closing exactly the 15 cells of its path
    assert deterministic.expanded == 15 and deterministic.cost == 14
    # FIFO among equal (f, h): the start's first-listed neighbour (right) is closed first
    assert deterministic.trace.nodes(Event.CLOSE)[1] == 1
    seeded = {s: astar(problem, seed=s) for s in range(6)}
    assert all(seeded[s].trace == astar(problem, seed=s).trace for s in range(3))
    assert len({tuple(r.path) for r in seeded.values()}) > 1  # many shortest paths, different picks
    assert all(r.cost == 14 for r in seeded.values())
    assert len({tuple(r.trace.nodes(Event.CLOSE)) for r in seeded.values()}) == len(seeded)


def test_greedy_follows_h_and_can_be_suboptimal():
    # s -> a (cost 1, h 5) -> t (1); s -> b (cost 10, h 0) -> t (10): greedy takes b
    adjacency = {"s": [("a", 1.0), ("b", 10.0)], "a": [("t", 1.0)], "b": [("t", 10.0)], "t": []}
    h = {"s": 2.0, "a": 5.0, "b": 0.0, "t": 0.0}
    problem = ExplicitGraphProblem(adjacency, "s", "t", h)
    assert greedy_best_first(problem).path == ["s", "b", "t"]
    assert greedy_best_first(problem).cost == 20.0
    assert astar(problem).path == ["s", "a", "t"] and astar(problem).cost == 2.0


def test_record_trace_false_gives_same_answer():
    passable = np.random.default_rng(3).random((9, 9)) > 0.25
    passable[0, 0] = passable[8, 8] = True
    problem = GridGraphProblem(passable, (0, 0), (8, 8))
    for search in ALL:
        with_trace, without = search(problem), search(problem, record_trace=False)
        assert (with_trace.path, with_trace.cost, with_trace.expanded) == (without.path, without.cost, without.expanded)
        assert len(without.trace) == 0


def test_trace_round_trips_through_record():
    result = astar(GridGraphProblem(np.ones((4, 4), bool), (0, 0), (3, 2)))
    assert type(result.trace).from_record(result.trace.to_record()) == result.trace


def test_non_int_nodes_without_node_id_get_a_clear_error():
    class Bare:
        def start(self):
            return "x"

        def is_goal(self, node):
            return False

        def neighbours(self, node):
            return []

    with pytest.raises(InputError, match="node_id"):
        bfs(Bare())
    assert bfs(Bare(), record_trace=False).path is None


def test_bad_inputs_raise_input_error():
    with pytest.raises(InputError, match="cost -1"):
        ExplicitGraphProblem({0: [(1, -1)]}, 0, 1)
    with pytest.raises(InputError, match="start node 5"):
        ExplicitGraphProblem({0: []}, 5, 0)
    with pytest.raises(InputError, match="seed"):
        astar(ExplicitGraphProblem({0: []}, 0, 0), seed=-3)
    with pytest.raises(InputError, match="start_cell"):
        GridGraphProblem(np.zeros((3, 3), bool), (0, 0), (1, 1))

    class NegativeEdge:
        def start(self):
            return 0

        def is_goal(self, node):
            return node == 2

        def neighbours(self, node):
            return [(node + 1, -2.0)] if node < 2 else []

        def node_id(self, node):
            return node

    with pytest.raises(InputError, match="negative"):
        uniform_cost(NegativeEdge())
