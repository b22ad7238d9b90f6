"""Maze generators: invariants checked with networkx, uniformity, determinism per maze."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from scipy.stats import chisquare

from searchprobe.errors import InputError
from searchprobe.tasks.maze.generators import (
    STREAM_START, STREAM_WEIGHT, draw, generate_connections, lattice, maze_keys,
)

PERFECT = ["dfs", "prim", "kruskal", "wilson"]


def to_graph(conn: np.ndarray) -> nx.Graph:
    _, R, C = conn.shape
    g = nx.Graph()
    g.add_nodes_from(range(R * C))
    for r, c in zip(*np.nonzero(conn[0])):
        g.add_edge(r * C + c, (r + 1) * C + c)
    for r, c in zip(*np.nonzero(conn[1])):
        g.add_edge(r * C + c, r * C + c + 1)
    return g


def lattice_edges(R: int, C: int) -> set[frozenset]:
    return {frozenset(e) for e in nx.convert_node_labels_to_integers(nx.grid_2d_graph(R, C), ordering="sorted").edges}


@pytest.mark.parametrize("generator", PERFECT)
@pytest.mark.parametrize("shape", [(2, 2), (3, 5), (7, 7), (6, 4)])
def test_perfect_generators_make_spanning_trees(generator, shape):
    R, C = shape
    conn = generate_connections(generator, maze_keys(3, np.arange(60)), R, C)
    assert conn.shape == (60, 2, R, C) and conn.dtype == bool
    assert not conn[:, 0, -1, :].any() and not conn[:, 1, :, -1].any()  # border convention
    grid = lattice_edges(R, C)
    for b in range(len(conn)):
        g = to_graph(conn[b])
        assert nx.is_tree(g), (generator, b)
        assert g.number_of_edges() == R * C - 1
        assert {frozenset(e) for e in g.edges} <= grid


def test_dfs_tree_has_only_back_edges():
    """In a DFS tree every other lattice edge joins an ancestor and a descendant."""
    R, C = 5, 6
    keys = maze_keys(11, np.arange(40))
    conn = generate_connections("dfs", keys, R, C)
    starts = (draw(keys, STREAM_START, 0) >> np.uint64(11)).astype(np.float64) * 2.0**-53 * (R * C)
    grid = lattice_edges(R, C)
    for b in range(len(conn)):
        tree = to_graph(conn[b])
        root = int(starts[b])
        parent = dict(nx.bfs_predecessors(tree, root))
        ancestors = {}
        for v in tree.nodes:
            chain, u = set(), v
            while u != root:
                u = parent[u]
                chain.add(u)
            ancestors[v] = chain
        for e in grid - {frozenset(x) for x in tree.edges}:
            u, v = tuple(e)
            assert u in ancestors[v] or v in ancestors[u], (b, u, v)


def test_kruskal_is_the_minimum_spanning_tree_of_its_weights():
    R, C = 4, 5
    keys = maze_keys(5, np.arange(30))
    conn = generate_connections("kruskal", keys, R, C)
    lat = lattice(R, C)
    weights = draw(keys[:, None], STREAM_WEIGHT, np.arange(len(lat.edge_u))[None, :])
    weights = (weights & np.uint64(0xFFFFFFFFFFFF0000)) | np.arange(len(lat.edge_u), dtype=np.uint64)
    for b in range(len(keys)):
        g = nx.Graph()
        for e, (u, v) in enumerate(zip(lat.edge_u, lat.edge_v)):
            g.add_edge(int(u), int(v), weight=int(weights[b, e]))
        mst = nx.minimum_spanning_tree(g, algorithm="kruskal")
        assert {frozenset(e) for e in mst.edges} == {frozenset(e) for e in to_graph(conn[b]).edges}


def _tree_ids(conn: np.ndarray) -> list[bytes]:
    return [c.tobytes() for c in conn]


@pytest.mark.parametrize("shape", [(2, 2), (2, 3)])
def test_wilson_is_uniform_over_spanning_trees(shape):
    R, C = shape
    n_trees = round(nx.number_of_spanning_trees(nx.grid_2d_graph(R, C)))  # 4 and 15
    n = 400 * n_trees
    conn = generate_connections("wilson", maze_keys(2024, np.arange(n)), R, C)
    _, counts = np.unique(np.array(_tree_ids(conn)), return_counts=True)
    assert len(counts) == n_trees
    assert chisquare(counts).pvalue > 1e-3


def _is_dfs_tree(tree: nx.Graph, grid: nx.Graph) -> bool:
    """Brute force: is `tree` a depth-first tree of `grid` for some root (only back edges)?"""
    for root in tree.nodes:
        paths = nx.single_source_shortest_path(tree, root)
        if all(u in paths[v] or v in paths[u] for u, v in grid.edges if not tree.has_edge(u, v)):
            return True
    return False


def test_dfs_makes_exactly_the_depth_first_trees_of_a_small_grid():
    R, C = 2, 3
    conn = generate_connections("dfs", maze_keys(1, np.arange(3000)), R, C)
    made = {frozenset(frozenset(e) for e in to_graph(c).edges) for c in conn}
    grid = nx.convert_node_labels_to_integers(nx.grid_2d_graph(R, C), ordering="sorted")
    dfs_trees = {frozenset(frozenset(e) for e in t.edges) for t in nx.SpanningTreeIterator(grid) if _is_dfs_tree(t, grid)}
    assert made == dfs_trees and 1 < len(dfs_trees) < round(nx.number_of_spanning_trees(grid))


def test_hallway_is_one_corridor_without_forks():
    R, C = 7, 7
    conn = generate_connections("hallway", maze_keys(0, np.arange(200)), R, C)
    lengths = []
    for b in range(len(conn)):
        g = to_graph(conn[b])
        degrees = dict(g.degree)
        assert max(degrees.values()) <= 2
        corridor = g.subgraph([v for v, d in degrees.items() if d > 0])
        assert nx.is_connected(corridor) and nx.is_tree(corridor)  # a simple path
        ends = [v for v, d in corridor.degree if d == 1]
        assert len(ends) == 2
        # the walk stopped because it was stuck: one end has no free lattice neighbour
        free_ends = [v for v in ends if any(degrees[u] == 0 for u in nx.grid_2d_graph(R, C).neighbors(divmod(v, C))
                                            for u in [u[0] * C + u[1]])]
        assert len(free_ends) <= 1
        lengths.append(corridor.number_of_nodes())
    assert max(lengths) > 20  # walks are long, not just a step or two


def test_percolation_edge_frequency_and_loops():
    R, C, p = 9, 9, 0.3
    conn = generate_connections("percolation", maze_keys(0, np.arange(500)), R, C, p=p)
    n_lattice = 2 * R * C - R - C
    frac = conn.sum() / (500 * n_lattice)
    assert abs(frac - p) < 5 * np.sqrt(p * (1 - p) / (500 * n_lattice))
    open_p = generate_connections("percolation", maze_keys(0, np.arange(100)), 7, 7, p=0.6)
    assert np.mean([len(nx.cycle_basis(to_graph(c))) > 0 for c in open_p]) > 0.9


def test_dfs_percolation_is_connected_with_loops():
    R, C = 9, 9
    conn = generate_connections("dfs_percolation", maze_keys(0, np.arange(200)), R, C, p=0.3)
    edges = conn.reshape(200, -1).sum(1)
    assert np.mean(edges > R * C - 1) > 0.95
    for b in range(0, 200, 10):
        assert nx.is_connected(to_graph(conn[b]))
    dfs = generate_connections("dfs", maze_keys(0, np.arange(200)), R, C)
    assert np.all(conn >= dfs)  # the DFS maze of the same key, plus edges


@pytest.mark.parametrize("generator", ["dfs", "hallway", "prim", "kruskal", "wilson", "percolation", "dfs_percolation"])
def test_a_maze_depends_only_on_its_key(generator):
    keys = maze_keys(42, np.arange(257))
    whole = generate_connections(generator, keys, 6, 5)
    pieces = np.concatenate([generate_connections(generator, keys[i:i + 19], 6, 5) for i in range(0, 257, 19)])
    assert np.array_equal(whole, pieces)
    shuffled = np.random.default_rng(0).permutation(257)
    assert np.array_equal(generate_connections(generator, keys[shuffled], 6, 5), whole[shuffled])
    other = generate_connections(generator, maze_keys(43, np.arange(257)), 6, 5)
    assert not np.array_equal(other, whole)


def test_maze_keys_are_distinct_and_seed_dependent():
    a = maze_keys(0, np.arange(100_000))
    assert len(np.unique(a)) == len(a)
    assert not np.array_equal(a, maze_keys(1, np.arange(100_000)))
    assert not np.array_equal(a[:10], maze_keys(0, np.arange(10), attempt=1))


def test_unknown_generator_is_an_input_error():
    with pytest.raises(InputError, match="unknown"):
        generate_connections("labyrinth", maze_keys(0, np.arange(2)), 3, 3)
    assert generate_connections("dfs", maze_keys(0, np.arange(0)), 3, 3).shape == (0, 2, 3, 3)
