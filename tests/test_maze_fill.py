"""Dead-end filling order and the grid_fill token format, checked against networkx and a plain loop."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from searchprobe.tasks.maze.config import MazeConfig
from searchprobe.tasks.maze.dataset import generate_batch, tokenizer_for
from searchprobe.tasks.maze.fill import dead_end_fill_order


def _graph(maze) -> nx.Graph:
    g = nx.grid_2d_graph(maze.n_rows, maze.n_cols)
    g.remove_edges_from(list(g.edges))
    g.add_edges_from(maze.edges())
    return g


def _reference_order(maze) -> list[tuple[int, int]]:
    """The canonical rule, one maze at a time: scan cells row-major; from each removable dead end
    follow the corridor while the next cell has become a removable dead end."""
    g = _graph(maze).copy()
    keep = {tuple(maze.origin), tuple(maze.target)}
    out = []
    for start in sorted(g.nodes):
        x = start
        while x is not None and x not in keep and x in g and g.degree(x) == 1:
            (nxt,) = list(g.neighbors(x))
            g.remove_node(x)
            out.append(x)
            x = nxt
    return out


@pytest.mark.parametrize("generator, rows, cols", [("dfs", 5, 5), ("wilson", 4, 6), ("kruskal", 7, 7), ("dfs", 2, 2)])
def test_filling_leaves_exactly_the_path_of_a_perfect_maze(generator, rows, cols):
    batch = generate_batch(MazeConfig(rows=rows, cols=cols, generator=generator, n=60, seed=3), np.arange(60))
    order, count = dead_end_fill_order(batch.connections, batch.origin, batch.target)
    for b in range(len(batch)):
        maze = batch[b]
        g = _graph(maze)
        filled = [divmod(int(x), cols) for x in order[b, : count[b]]]
        assert (order[b, count[b]:] == -1).all()
        assert filled == _reference_order(maze)
        path = nx.shortest_path(g, tuple(maze.origin), tuple(maze.target))
        assert set(g.nodes) - set(filled) == set(path)
        remaining = g.copy()
        for cell in filled:  # every removal is a dead end of what is left at that moment
            assert remaining.degree(cell) == 1
            remaining.remove_node(cell)


def test_filling_on_mazes_with_loops_matches_the_reference():
    batch = generate_batch(MazeConfig(rows=5, cols=5, generator="percolation", p=0.3, n=40, seed=1), np.arange(40))
    order, count = dead_end_fill_order(batch.connections, batch.origin, batch.target)
    for b in range(len(batch)):
        assert [divmod(int(x), 5) for x in order[b, : count[b]]] == _reference_order(batch[b])


def test_grid_fill_tokens_round_trip_with_the_trace_between_grid_and_path():
    cfg = MazeConfig(rows=5, cols=5, n=30, seed=2, token_format="grid_fill")
    batch = generate_batch(cfg, np.arange(30))
    tok = tokenizer_for(cfg)
    assert (tok.layout, tok.trace_format) == ("grid", "fill")
    enc = tok.encode(batch)
    order, count = dead_end_fill_order(batch.connections, batch.origin, batch.target)
    for b in range(len(batch)):
        ids, roles = enc.row(b)
        assert tok.decode(ids, shape=(5, 5)) == batch[b]
        assert np.array_equal(tok.roles_of(ids, shape=(5, 5)), roles)
        assert tok.decode_trace(ids, shape=(5, 5))["node"].tolist() == order[b, : count[b]].tolist()
        words = [tok.vocab[i] for i in ids]
        assert words[enc.trace_start[b] - 1] == "<TRACE_START>"
        assert words[enc.solution_start[b] - 1] == "<PATH_START>"
        # every maze's sequence has the same length: filled cells + path cells = all cells
        assert len(ids) == 7 + 25 + 1 + 2 + 25 + 2


def test_task_data_makes_the_model_write_the_trace(tmp_path):
    from searchprobe.tasks.maze.dataset import generate_dataset
    from searchprobe.tasks.store import read_dataset
    from searchprobe.tasks.maze.task import decode_paths
    from searchprobe.train.task_data import TaskData

    path = generate_dataset(MazeConfig(rows=4, cols=4, n=60, seed=0, token_format="grid_fill"), tmp_path / "d")
    task_data = TaskData(read_dataset(path))
    data = task_data.token_data("train")
    ds = task_data.stored.splits["train"]
    assert np.array_equal(data.solution_start, np.asarray(ds["trace_start"]))
    ids = [task_data.vocab.index(t) for t in ["(0,0)", "<TRACE_END>", "<PATH_START>", "(1,1)", "(1,2)", "<PATH_END>"]]
    cells, ok = decode_paths([np.array(ids)], task_data.vocab)
    assert cells == [[(1, 1), (1, 2)]] and ok == [True]


def test_the_training_recipe_files_agree():
    """experiments/maze-5x5-fill.toml trains on tasks/maze-dfs-5x5-fill.toml: 5x5 DFS, grid_fill, bf16."""
    from pathlib import Path

    from searchprobe.config import load_toml
    from searchprobe.tasks.maze.config import load_maze_config
    from searchprobe.train.run import load_experiment

    root = Path(__file__).resolve().parent.parent
    exp = load_experiment(root / "experiments" / "maze-5x5-fill.toml")
    task = load_maze_config(root / exp.data)
    assert (task.rows, task.cols, task.generator, task.token_format) == (5, 5, "dfs", "grid_fill")
    assert exp.train.precision == "bf16" and exp.train.time_limit_s == 600
    assert load_toml(root / exp.data)["task"] == "maze"
