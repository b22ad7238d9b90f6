"""Shortest paths, endpoint placement, search traces and recipe validation, checked with networkx."""

from __future__ import annotations


import networkx as nx
import numpy as np
import pytest
from scipy.stats import chisquare

from searchprobe.errors import ConfigError, DataError, InputError
from searchprobe.search.trace import Event
from searchprobe.tasks.maze.config import EndpointConfig, MazeConfig, load_maze_config
from searchprobe.tasks.maze.dataset import generate_batch
from searchprobe.tasks.maze.endpoints import degrees, place_endpoints
from searchprobe.tasks.maze.generators import generate_connections, maze_keys
from searchprobe.tasks.maze.solve import distances, shortest_paths
from searchprobe.tasks.maze.traces import MazeProblem, search_batch, traces_for_batch

from test_maze_generators import to_graph

GENERATORS = ["dfs", "hallway", "wilson", "kruskal", "prim", "percolation", "dfs_percolation"]


@pytest.mark.parametrize("generator", GENERATORS)
def test_every_solution_is_a_shortest_path_and_counts_match_networkx(generator):
    cfg = MazeConfig(rows=6, cols=5, generator=generator, p=0.55, n=150, seed=7)
    batch = generate_batch(cfg, np.arange(150))
    C = cfg.cols
    for b in range(len(batch)):
        g = to_graph(batch.connections[b])
        o = int(batch.origin[b, 0]) * C + int(batch.origin[b, 1])
        t = int(batch.target[b, 0]) * C + int(batch.target[b, 1])
        assert o != t
        path = [int(r) * C + int(c) for r, c in batch.path[b, : batch.path_len[b]]]
        assert np.all(batch.path[b, batch.path_len[b]:] == -1)
        assert path[0] == o and path[-1] == t
        assert all(g.has_edge(u, v) for u, v in zip(path, path[1:]))
        assert len(path) == nx.shortest_path_length(g, o, t) + 1
        assert batch.n_shortest[b] == sum(1 for _ in nx.all_shortest_paths(g, o, t))
        # deterministic choice: walking back from the target, always the lowest-id predecessor
        dist = nx.single_source_shortest_path_length(g, o)
        for k in range(len(path) - 1, 0, -1):
            preds = [u for u in g.neighbors(path[k]) if dist.get(u) == k - 1]
            assert path[k - 1] == min(preds)
    if cfg.perfect:
        assert np.all(batch.n_shortest == 1)
    if generator == "dfs_percolation":
        assert batch.n_shortest.max() > 1


def test_distance_fields_match_networkx():
    conn = generate_connections("dfs_percolation", maze_keys(3, np.arange(40)), 7, 9, p=0.3)
    src = np.arange(40) % 63
    dist = distances(conn, src)
    for b in range(40):
        ref = nx.single_source_shortest_path_length(to_graph(conn[b]), int(src[b]))
        expect = np.full(63, -1)
        for v, d in ref.items():
            expect[v] = d
        assert np.array_equal(dist[b].ravel(), expect)


def test_wide_grid_uses_all_32_columns():
    conn = generate_connections("dfs", maze_keys(0, np.arange(8)), 3, 32)
    origin, target = np.zeros(8, dtype=np.intp), np.full(8, 95)
    path, plen, _ = shortest_paths(conn, origin, target, perfect=True)
    for b in range(8):
        assert plen[b] == nx.shortest_path_length(to_graph(conn[b]), 0, 95) + 1


def test_uniform_endpoints_on_perfect_mazes():
    R, C, n = 3, 3, 18000
    keys = maze_keys(9, np.arange(n))
    conn = generate_connections("dfs", keys, R, C)
    o, t, ok = place_endpoints(conn, keys, EndpointConfig(), perfect=True)
    assert ok.all() and np.all(o != t)
    pairs = o * 9 + t
    counts = np.bincount(pairs, minlength=81).reshape(9, 9)
    assert np.all(np.diag(counts) == 0)
    assert chisquare(counts[~np.eye(9, dtype=bool)]).pvalue > 1e-3


@pytest.mark.parametrize("generator", ["dfs", "dfs_percolation", "hallway"])
def test_endpoint_options_are_respected(generator):
    ep = EndpointConfig(min_path_len=5, max_path_len=8, dead_end_target=True)
    cfg = MazeConfig(rows=7, cols=7, generator=generator, n=200, endpoints=ep)
    batch = generate_batch(cfg, np.arange(200))
    assert np.all((batch.path_len >= 5) & (batch.path_len <= 8))
    deg = degrees(batch.connections)
    assert np.all(deg[np.arange(200), batch.target[:, 0], batch.target[:, 1]] == 1)
    if generator == "hallway":
        return  # a corridor through two fixed corners is too rare to ask for
    ep = EndpointConfig(origin=(0, 0), target=(6, 6), dead_end_origin=True)
    batch = generate_batch(MazeConfig(rows=7, cols=7, generator=generator, n=50, endpoints=ep), np.arange(50))
    assert np.all(batch.origin == [0, 0]) and np.all(batch.target == [6, 6])
    assert np.all(degrees(batch.connections)[:, 0, 0] == 1)


def test_a_rare_window_fails_with_a_clear_error_not_a_hang():
    cfg = MazeConfig(rows=7, cols=7, generator="hallway", n=50, endpoints=EndpointConfig(min_path_len=49))
    with pytest.raises(DataError, match="widen the window"):
        generate_batch(cfg, np.arange(50))


@pytest.mark.parametrize("kwargs, match", [
    (dict(rows=1), "rows=1"),
    (dict(cols=33), "cols=33"),
    (dict(n=0), "n=0"),
    (dict(generator="labyrinth"), "labyrinth"),
    (dict(p=1.5), "p=1.5"),
    (dict(traces=("bfs", "ida")), "ida"),
    (dict(endpoints=EndpointConfig(min_path_len=50)), "cannot be met"),
    (dict(endpoints=EndpointConfig(min_path_len=1)), "below 2"),
    (dict(endpoints=EndpointConfig(min_path_len=9, max_path_len=4)), "empty"),
    (dict(endpoints=EndpointConfig(origin=(0, 0), target=(0, 0))), "differ"),
    (dict(endpoints=EndpointConfig(origin=(7, 0))), "outside"),
    (dict(endpoints=EndpointConfig(origin=(0, 0), target=(0, 1), min_path_len=3, max_path_len=3)), "cannot be met"),
    (dict(splits={"train": 0.9}), "sum"),
])
def test_bad_recipes_fail_at_construction(kwargs, match):
    with pytest.raises(InputError, match=match):
        MazeConfig(rows=kwargs.pop("rows", 7), cols=kwargs.pop("cols", 7), **kwargs)


def test_toml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('task = "maze"\nrows = 40\ncols = 7\n')
    with pytest.raises(ConfigError, match=r"bad\.toml.*rows=40"):
        load_maze_config(bad)
    bad.write_text('task = "maze"\ngenerator = "dfs"\nsize = 3\n')
    with pytest.raises(ConfigError, match="unknown key 'size'"):
        load_maze_config(bad)
    bad.write_text('task = "chess"\n')
    with pytest.raises(ConfigError, match="expected 'maze'"):
        load_maze_config(bad)


def test_names_hash_only_what_changes_the_output():
    a = MazeConfig(rows=7, cols=7, n=100)
    assert a.name.startswith("maze-dfs-g7x7-n100-s0-h")
    assert a.content_hash() == a.replace(batch_size=7).content_hash() == a.replace(p=0.9).content_hash()
    assert a.content_hash() != a.replace(seed=1).content_hash()
    perc = MazeConfig(generator="percolation", p=0.3)
    assert perc.content_hash() != perc.replace(p=0.4).content_hash()


@pytest.mark.parametrize("path", ["maze-dfs-4x4", "maze-dfs-5x5", "maze-dfs-7x7", "maze-hallway-7x7", "maze-percolation-9x9"])
def test_shipped_task_files_load(path):
    cfg = load_maze_config(f"tasks/{path}.toml")
    assert cfg.name.startswith(f"maze-{cfg.generator}-g{cfg.rows}x{cfg.cols}-")
    batch = generate_batch(cfg, np.arange(20))
    assert len(batch) == 20


def test_traces_are_searches_of_the_maze():
    cfg = MazeConfig(rows=6, cols=6, generator="dfs_percolation", p=0.3, n=60)
    batch = generate_batch(cfg, np.arange(60))
    traces = traces_for_batch(batch, ["bfs", "dfs", "astar"])
    C = cfg.cols
    for b in range(60):
        g = to_graph(batch.connections[b])
        o = int(batch.origin[b, 0]) * C + int(batch.origin[b, 1])
        t = int(batch.target[b, 0]) * C + int(batch.target[b, 1])
        dist = nx.single_source_shortest_path_length(g, o)
        for name, tr in ((n, traces[n][b]) for n in traces):
            assert tr.kind[-1] == Event.GOAL and tr.node[-1] == t and tr.node[0] == o
            closed = tr.select(Event.CLOSE)
            for node, parent in zip(closed.node, closed.parent):  # every expansion follows a passage
                assert parent == -1 or g.has_edge(int(node), int(parent))
            if name == "bfs":
                assert np.array_equal(closed.g, [dist[int(v)] for v in closed.node])
                assert np.isnan(tr.h).all()
            if name == "astar":
                tr_r, tr_c = divmod(t, C)
                assert np.array_equal(tr.h, [abs(v // C - tr_r) + abs(v % C - tr_c) for v in tr.node])
                assert closed.g[-1] == batch.path_len[b] - 1  # optimal
    results = search_batch(batch, "astar")
    assert [len(r.path) for r in results] == batch.path_len.tolist()
    with pytest.raises(InputError):
        search_batch(batch, "ida")


def test_maze_problem_from_connections():
    conn = generate_connections("dfs", maze_keys(0, np.arange(1)), 3, 3)[0]
    problem = MazeProblem.from_connections(conn, (0, 0), (2, 2))
    g = to_graph(conn)
    for v in range(9):
        assert sorted(n for n, _ in problem.neighbours(v)) == sorted(g.neighbors(v))
        assert [n for n, _ in problem.neighbours(v)] == sorted(n for n, _ in problem.neighbours(v))
    assert problem.heuristic(0) == 4.0 and problem.is_goal(8) and problem.start() == 0
