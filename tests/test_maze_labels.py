"""Maze probe labels, every family checked against networkx or a naive per-maze loop."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from searchprobe.errors import InputError
from searchprobe.search.trace import Event, TraceBuilder
from searchprobe.tasks.maze.labels import SIDES, maze_labels
from test_maze_tokens import astar_traces, make_batch


def maze_graph(m) -> nx.Graph:
    G = nx.Graph()
    G.add_nodes_from(m.cell_id(r, c) for r in range(m.n_rows) for c in range(m.n_cols))
    G.add_edges_from((m.cell_id(*a), m.cell_id(*b)) for a, b in m.edges())
    return G


def check_against_networkx(batch, labels, K):
    R, C = batch.n_rows, batch.n_cols
    for b in range(len(batch)):
        m = batch[b]
        G = maze_graph(m)
        o, t = m.cell_id(*m.origin), m.cell_id(*m.target)
        path = [m.cell_id(int(r), int(c)) for r, c in m.path]
        assert labels["origin_cell"][b] == o and labels["target_cell"][b] == t
        assert nx.is_simple_path(G, path) and len(path) - 1 == nx.shortest_path_length(G, o, t)
        assert list(labels["path_cell"][b, :len(path)]) == path and (labels["path_cell"][b, len(path):] == -1).all()
        assert set(np.nonzero(labels["on_path"][b])[0]) == set(path)
        L = labels["next_cell"].shape[1]
        for s in range(L):
            want_next = path[s + 1] if s + 1 < len(path) else -1
            assert labels["next_cell"][b, s] == want_next
            for k in range(1, K + 1):
                assert labels["cell_ahead"][b, s, k - 1] == (path[s + k] if s + k < len(path) else -1)
        for r in range(R):
            for c in range(C):
                v = m.cell_id(r, c)
                nbrs = {"up": (r - 1, c), "down": (r + 1, c), "left": (r, c - 1), "right": (r, c + 1)}
                for i, side in enumerate(SIDES):
                    r2, c2 = nbrs[side]
                    open_ = 0 <= r2 < R and 0 <= c2 < C and G.has_edge(v, m.cell_id(r2, c2))
                    assert labels["walls"][b, v, i] == (not open_)
                assert labels["dead_end"][b, v] == (G.degree(v) == 1)
        for s, v in enumerate(path):
            np.testing.assert_array_equal(labels["walls_current"][b, s], labels["walls"][b, v])
        assert not labels["walls_current"][b, len(path):].any()
        # bottleneck: removing v disconnects origin from target (endpoints count)
        for v in G.nodes:
            if v in (o, t):
                want = True
            else:
                H = G.copy()
                H.remove_node(v)
                want = not nx.has_path(H, o, t)
            assert labels["bottleneck"][b, v] == want, (b, v)
        reach = nx.node_connected_component(G, o)
        for v in G.nodes:
            assert labels["off_path"][b, v] == (v in reach and v not in path)
        # branch_from: the first path step touched by the cell's component of G minus the path
        H = G.subgraph(set(G.nodes) - set(path))
        for comp in nx.connected_components(H):
            touched = [path.index(p) for p in path if any(q in comp for q in G.neighbors(p))]
            for v in comp:
                assert labels["branch_from"][b, v] == (min(touched) if touched else -1)
        for v in path:
            assert labels["branch_from"][b, v] == -1
        np.testing.assert_array_equal(labels["connectivity"][b], m.connections.reshape(-1))
        dist = nx.single_source_shortest_path_length(G, t)
        for v in G.nodes:
            assert labels["dist_to_target"][b, v] == dist.get(v, -1)


@pytest.mark.parametrize("extra_edges", [0, 6])
def test_labels_match_networkx(extra_edges):
    batch = make_batch(25, 6, 5, seed=11 + extra_edges, extra_edges=extra_edges)
    labels = maze_labels(batch, k_ahead=3)
    check_against_networkx(batch, labels, 3)
    B, N, L = 25, 30, batch.path.shape[1]
    shapes = {"origin_cell": (B,), "on_path": (B, N), "next_cell": (B, L), "cell_ahead": (B, L, 3), "walls": (B, N, 4),
              "walls_current": (B, L, 4), "bottleneck": (B, N), "connectivity": (B, 2 * N), "dist_to_target": (B, N)}
    for key, shape in shapes.items():
        assert labels[key].shape == shape, key
    if extra_edges == 0:  # perfect mazes: every path cell is a bottleneck
        np.testing.assert_array_equal(labels["bottleneck"], labels["on_path"])
    else:  # loops make some path cells avoidable: the case the articulation logic is for
        assert (labels["bottleneck"] != labels["on_path"]).any()
        assert (labels["bottleneck"] <= labels["on_path"]).all()


def test_bottleneck_with_chords_and_disconnected_cells():
    """A path that is not shortest (it has a chord) and a grid with an unreachable cell."""
    from searchprobe.tasks.maze.types import MazeBatch

    conn = np.zeros((1, 2, 3, 3), dtype=bool)
    # 3x3: open a ring (0,0)-(0,1)-(0,2)-(1,2)-(1,1)-(1,0)-(0,0) and a dangling (2,0); (2,1), (2,2) isolated
    conn[0, 1, 0, 0] = conn[0, 1, 0, 1] = True  # right: (0,0)-(0,1), (0,1)-(0,2)
    conn[0, 0, 0, 2] = True  # down (0,2)-(1,2)
    conn[0, 1, 1, 1] = conn[0, 1, 1, 0] = True  # right: (1,1)-(1,2), (1,0)-(1,1)
    conn[0, 0, 0, 0] = True  # down (0,0)-(1,0)
    conn[0, 0, 1, 0] = True  # down (1,0)-(2,0)
    path = np.array([[[0, 0], [0, 1], [0, 2], [1, 2], [1, 1], [1, 0], [2, 0]]], dtype=np.int16)  # the long way round
    batch = MazeBatch(3, 3, conn, np.array([[0, 0]], dtype=np.int16), np.array([[2, 0]], dtype=np.int16), path,
                      np.array([7], dtype=np.int32), np.array([1]), np.array([0], dtype=np.uint64))
    labels = maze_labels(batch)
    G = maze_graph(batch[0])
    for v in range(9):
        want = v in (0, 6) or (v in G and not nx.has_path(G.subgraph(set(G) - {v}), 0, 6))
        assert labels["bottleneck"][0, v] == want, v
    assert labels["bottleneck"][0].nonzero()[0].tolist() == [0, 3, 6]
    assert labels["dist_to_target"][0].tolist() == [2, 3, 4, 1, 2, 3, 0, -1, -1]
    assert labels["off_path"][0].sum() == 0 and labels["branch_from"][0, 7] == -1


def naive_expansions(trace, target, N):
    order, seen = np.full(N, -1), 0
    for row in trace.rows():
        if row["kind"] != "CLOSE":
            continue
        if row["node"] == target:
            break
        if order[row["node"]] < 0:
            order[row["node"]] = seen
            seen += 1
    return order


def test_expanded_cells_from_traces():
    batch = make_batch(15, 6, 6, seed=13, extra_edges=3)
    traces = {"bfs": astar_traces(batch, "bfs"), "astar": astar_traces(batch, "astar")}
    labels = maze_labels(batch, traces)
    for name in traces:
        for b in range(len(batch)):
            want = naive_expansions(traces[name][b], labels["target_cell"][b], 36)
            np.testing.assert_array_equal(labels[f"expand_order_{name}"][b], want)
            np.testing.assert_array_equal(labels[f"expanded_{name}"][b], want >= 0)
            assert not labels[f"expanded_{name}"][b, labels["target_cell"][b]]
    # BFS closes every cell nearer to the target's distance from the origin ... A* (consistent h) closes no more
    assert labels["expanded_astar"].sum() <= labels["expanded_bfs"].sum()
    # a re-expanded node keeps its first position
    tb = TraceBuilder()
    for node in (0, 1, 0, 2, 3):
        tb.add(Event.CLOSE, node)
    one = make_batch(1, 2, 2, seed=1)
    got = maze_labels(one, {"x": [tb.build()]})
    tgt = got["target_cell"][0]
    want = naive_expansions(tb.build(), tgt, 4)
    np.testing.assert_array_equal(got["expand_order_x"][0], want)


def test_bad_arguments():
    batch = make_batch(2, 3, 3)
    with pytest.raises(InputError, match="k_ahead=0"):
        maze_labels(batch, k_ahead=0)
    with pytest.raises(InputError, match=r"traces\['bfs'\] has 1 traces for 2 mazes"):
        maze_labels(batch, {"bfs": astar_traces(batch, "bfs")[:1]})
    tb = TraceBuilder()
    tb.add(Event.CLOSE, 99)
    with pytest.raises(InputError, match="closes node 99"):
        maze_labels(batch, {"bad": [tb.build(), tb.build()]})


def test_key_subsets_equal_the_full_computation():
    from searchprobe.tasks.maze.labels import LABEL_KEYS

    batch = make_batch(12, 5, 7, seed=17, extra_edges=4)
    full = maze_labels(batch, k_ahead=2)
    assert list(full) == list(LABEL_KEYS)
    for key in LABEL_KEYS:
        part = maze_labels(batch, k_ahead=2, keys=[key])
        assert list(part) == [key]
        np.testing.assert_array_equal(part[key], full[key])
    with pytest.raises(InputError, match="unknown maze label key 'walls_up'"):
        maze_labels(batch, keys=["walls_up"])


def test_labels_on_the_generators_mazes_with_loops():
    """The project's own percolation and hallway recipes (skipped if the generators are absent)."""
    dataset = pytest.importorskip("searchprobe.tasks.maze.dataset")
    from pathlib import Path

    from searchprobe.tasks.maze.config import load_maze_config

    root = Path(__file__).resolve().parents[1] / "tasks"
    for name in ("maze-percolation-9x9", "maze-hallway-7x7"):
        if not (root / f"{name}.toml").exists():
            pytest.skip(f"task file {name}.toml not present")
        batch = dataset.generate_batch(load_maze_config(root / f"{name}.toml"), np.arange(6))
        check_against_networkx(batch, maze_labels(batch), 4)


def test_bit_parallel_bfs_equals_the_plain_one():
    from searchprobe.tasks.maze.labels import _bfs_distance_dense, bfs_distance

    for shape, extra in (((6, 9), 5), ((9, 4), 0), ((2, 2), 0)):
        batch = make_batch(20, *shape, seed=40 + extra, extra_edges=extra)
        src = np.random.default_rng(0).integers(0, shape[0] * shape[1], size=20)
        np.testing.assert_array_equal(bfs_distance(batch.connections, src), _bfs_distance_dense(batch.connections, src))
