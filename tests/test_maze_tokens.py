"""Maze tokens: AOTP text checked by an independent parser, round trips, roles, traces, bad input."""

from __future__ import annotations

import dataclasses
import re
from collections import deque

import numpy as np
import pytest

from searchprobe.errors import DataError, InputError
from searchprobe.search.trace import Event
from searchprobe.tasks.maze.tokens import (
    PATH_ROLE_BASE,
    ROLE_NAMES,
    SPECIAL_TOKENS,
    MazeTokenizer,
    corner_first_cells,
    role_code,
    role_name,
)
from searchprobe.tasks.maze.types import Maze, MazeBatch

# --- test mazes (a tiny seeded random DFS, written here so the tests do not need the generators) ---


def _neighbours(conn: np.ndarray, r: int, c: int) -> list[tuple[int, int]]:
    R, C = conn.shape[1:]
    out = []
    if r > 0 and conn[0, r - 1, c]:
        out.append((r - 1, c))
    if r + 1 < R and conn[0, r, c]:
        out.append((r + 1, c))
    if c > 0 and conn[1, r, c - 1]:
        out.append((r, c - 1))
    if c + 1 < C and conn[1, r, c]:
        out.append((r, c + 1))
    return out


def random_dfs_connections(R: int, C: int, rng: np.random.Generator, extra_edges: int = 0) -> np.ndarray:
    """A perfect maze by recursive-backtracker DFS, plus `extra_edges` random extra passages (loops)."""
    conn = np.zeros((2, R, C), dtype=bool)
    seen = np.zeros((R, C), dtype=bool)
    stack = [(int(rng.integers(R)), int(rng.integers(C)))]
    seen[stack[0]] = True
    while stack:
        r, c = stack[-1]
        options = [(r + dr, c + dc) for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
                   if 0 <= r + dr < R and 0 <= c + dc < C and not seen[r + dr, c + dc]]
        if not options:
            stack.pop()
            continue
        r2, c2 = options[int(rng.integers(len(options)))]
        lo = min((r, c), (r2, c2))
        conn[0 if r2 != r else 1][lo] = True
        seen[r2, c2] = True
        stack.append((r2, c2))
    for _ in range(extra_edges):
        d = int(rng.integers(2))
        r, c = int(rng.integers(R - (d == 0))), int(rng.integers(C - (d == 1)))
        conn[d, r, c] = True
    return conn


def bfs_path(conn: np.ndarray, origin: tuple[int, int], target: tuple[int, int]) -> tuple[list, int]:
    """(one shortest path, number of shortest paths) by plain BFS with path counting."""
    dist, count, parent = {origin: 0}, {origin: 1}, {origin: None}
    queue = deque([origin])
    while queue:
        u = queue.popleft()
        for v in _neighbours(conn, *u):
            if v not in dist:
                dist[v], count[v], parent[v] = dist[u] + 1, count[u], u
                queue.append(v)
            elif dist[v] == dist[u] + 1:
                count[v] += count[u]
    path, node = [], target
    while node is not None:
        path.append(node)
        node = parent[node]
    return path[::-1], count[target]


def make_batch(n: int, R: int, C: int, seed: int = 0, extra_edges: int = 0, seeds=None) -> MazeBatch:
    rng = np.random.default_rng(seed)
    conns, origins, targets, paths, counts = [], [], [], [], []
    for _ in range(n):
        conn = random_dfs_connections(R, C, rng, extra_edges)
        cells = rng.choice(R * C, size=2, replace=False)
        o, t = divmod(int(cells[0]), C), divmod(int(cells[1]), C)
        path, count = bfs_path(conn, o, t)
        conns.append(conn), origins.append(o), targets.append(t), paths.append(path), counts.append(count)
    L = max(len(p) for p in paths)
    path_arr = np.full((n, L, 2), -1, dtype=np.int16)
    for b, p in enumerate(paths):
        path_arr[b, :len(p)] = p
    return MazeBatch(
        n_rows=R, n_cols=C, connections=np.array(conns), origin=np.array(origins, dtype=np.int16),
        target=np.array(targets, dtype=np.int16), path=path_arr,
        path_len=np.array([len(p) for p in paths], dtype=np.int32), n_shortest=np.array(counts, dtype=np.int64),
        seed=(np.arange(n, dtype=np.uint64) + np.uint64(1000 * seed)) if seeds is None else np.asarray(seeds, dtype=np.uint64),
    )


def subset(batch: MazeBatch, index) -> MazeBatch:
    """Mazes `index` of a batch as a batch of their own (path padding trimmed to the longest kept path)."""
    index = np.asarray(index)
    L = int(batch.path_len[index].max())
    return dataclasses.replace(
        batch, connections=batch.connections[index], origin=batch.origin[index], target=batch.target[index],
        path=batch.path[index, :L], path_len=batch.path_len[index], n_shortest=batch.n_shortest[index], seed=batch.seed[index])


def astar_traces(batch: MazeBatch, algorithm: str = "astar"):
    """Ground-truth traces from searchprobe.search.graph on the maze graph (node = cell id)."""
    from searchprobe.search import graph

    traces = []
    for b in range(len(batch)):
        m = batch[b]
        C = m.n_cols
        adj = {r * C + c: [r2 * C + c2 for r2, c2 in _neighbours(m.connections, r, c)]
               for r in range(m.n_rows) for c in range(C)}
        tr, tc = m.target
        h = {r * C + c: abs(r - tr) + abs(c - tc) for r in range(m.n_rows) for c in range(C)}
        problem = graph.ExplicitGraphProblem(adj, m.origin[0] * C + m.origin[1], tr * C + tc, h)
        result = graph.astar(problem) if algorithm == "astar" else graph.bfs(problem)
        traces.append(result.trace)
    return traces


# --- an independent reader of the AOTP text (regexes over the string, no tokenizer) ----------------

_SECTION = re.compile(
    r"^<ADJLIST_START> (?P<adj>.*?)<ADJLIST_END> <ORIGIN_START> (?P<o>\(\d+,\d+\)) <ORIGIN_END> "
    r"<TARGET_START> (?P<t>\(\d+,\d+\)) <TARGET_END> (?:<TRACE_START> (?P<trace>.*?)<TRACE_END> )?"
    r"<PATH_START> (?P<path>.*) <PATH_END>$")


def _coord(s: str) -> tuple[int, int]:
    r, c = s.strip("()").split(",")
    return int(r), int(c)


def read_text(text: str):
    m = _SECTION.match(text)
    assert m, text
    edges = [tuple(map(_coord, e.strip().split(" <--> "))) for e in m["adj"].split(";") if e.strip()]
    return edges, _coord(m["o"]), _coord(m["t"]), [_coord(x) for x in m["path"].split()], m["trace"]


# --- tests ------------------------------------------------------------------------------------------


def test_vocabulary_layout_matches_maze_dataset_conventions():
    tok = MazeTokenizer(3)
    assert tok.vocab[:11] == list(SPECIAL_TOKENS)
    assert tok.vocab[10] == "<PADDING>" and tok.pad_id == 10
    # maze-dataset's corner_first_ndindex(3) docstring example
    assert corner_first_cells(3) == [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (2, 0), (1, 2), (2, 1), (2, 2)]
    assert tok.vocab[11:20] == ["(0,0)", "(0,1)", "(1,0)", "(1,1)", "(0,2)", "(2,0)", "(1,2)", "(2,1)", "(2,2)"]
    assert tok.vocab[20:24] == ["<TRACE_START>", "<TRACE_END>", "create", "close"]
    assert tok.vocab[24:] == [f"c{v}" for v in range(9)]
    assert len(set(tok.vocab)) == tok.vocab_size
    # the cell part of a smaller vocabulary is a prefix of a larger one's
    assert MazeTokenizer(7).vocab[:11 + 25] == MazeTokenizer(5).vocab[:11 + 25]
    for (r, c) in [(0, 0), (2, 1), (1, 2)]:
        assert tok.vocab[tok.cell_ids[r, c]] == f"({r},{c})"


def test_text_matches_an_independent_reader_and_shuffles_edges():
    batch = make_batch(40, 5, 6, seed=1, extra_edges=3)
    tok = MazeTokenizer(6)
    enc = tok.encode(batch)
    texts = tok.to_strings(enc)
    flipped = total = 0
    canonical_first = 0
    for b, text in enumerate(texts):
        m = batch[b]
        edges, o, t, path, trace = read_text(text)
        assert trace is None
        want = {frozenset(e) for e in m.edges()}
        assert {frozenset(e) for e in edges} == want and len(edges) == len(want)
        assert o == m.origin and t == m.target
        assert path == [tuple(int(x) for x in p) for p in m.path]
        flipped += sum(e[0] > e[1] for e in edges)
        total += len(edges)
        canonical_first += edges == sorted(m.edges())
        assert enc.lengths[b] == 4 * len(edges) + len(path) + 10 == len(text.split())
    assert 0.4 < flipped / total < 0.6  # edge direction is shuffled
    assert canonical_first == 0  # edge order is shuffled


def test_decode_round_trip_and_strings_round_trip():
    tok = MazeTokenizer(8)
    for batch in (make_batch(30, 7, 7, seed=2), make_batch(20, 4, 8, seed=3, extra_edges=4), make_batch(5, 2, 2, seed=4)):
        enc = tok.encode(batch)
        assert enc.tokens.dtype == np.int32 and enc.roles.dtype == np.int16
        for b in range(len(batch)):
            ids, roles = enc.row(b)
            assert tok.decode(enc.tokens[b], shape=(batch.n_rows, batch.n_cols)) == batch[b]  # padding ignored
            assert tok.decode(ids) == batch[b]  # spanning mazes: every cell is named, so the shape is inferred
            text = tok.to_strings(ids)
            np.testing.assert_array_equal(tok.from_strings(text), ids)
            np.testing.assert_array_equal(tok.from_strings(text.split()), ids)
            np.testing.assert_array_equal(tok.roles_of(ids), roles)
        flat, flat_roles, offsets = enc.to_flat()
        assert offsets[-1] == enc.lengths.sum() == len(flat) == len(flat_roles)
        for b in range(len(batch)):
            np.testing.assert_array_equal(flat[offsets[b]:offsets[b + 1]], enc.row(b)[0])
            np.testing.assert_array_equal(flat_roles[offsets[b]:offsets[b + 1]], enc.row(b)[1])


def test_encoding_depends_only_on_each_mazes_seed():
    batch = make_batch(24, 6, 6, seed=5)
    tok = MazeTokenizer(6)
    whole = tok.encode(batch)
    parts = [tok.encode(subset(batch, idx)) for idx in (np.arange(0, 7), np.arange(7, 24)[::-1], [3])]
    rows = {}
    for idx, enc in zip((np.arange(0, 7), np.arange(7, 24)[::-1], [3]), parts):
        for j, b in enumerate(idx):
            rows.setdefault(int(b), []).append(enc.row(j))
    for b, got in rows.items():
        for ids, roles in got:
            np.testing.assert_array_equal(ids, whole.row(b)[0])
            np.testing.assert_array_equal(roles, whole.row(b)[1])
    reseeded = tok.encode(dataclasses.replace(batch, seed=batch.seed + np.uint64(99)))
    differ = sum(not np.array_equal(reseeded.row(b)[0], whole.row(b)[0]) for b in range(len(batch)))
    assert differ == len(batch)
    for b in range(len(batch)):  # same maze, other order: decodes to the same maze
        assert tok.decode(reseeded.row(b)[0]) == batch[b]


def test_roles_name_every_position():
    batch = make_batch(10, 5, 5, seed=6)
    tok = MazeTokenizer(5)
    enc = tok.encode(batch)
    assert role_code("padding") == 0 and role_name(0) == "padding"
    for code, name in enumerate(ROLE_NAMES):
        assert role_code(name) == code and role_name(code) == name
    assert role_code("path:3") == PATH_ROLE_BASE + 3 and role_name(PATH_ROLE_BASE + 7) == "path:7"
    with pytest.raises(InputError, match="'pathx'"):
        role_code("pathx")
    for b in range(len(batch)):
        ids, roles = enc.row(b)
        words = tok.to_strings(ids).split()
        names = [role_name(x) for x in roles]
        m = batch[b]
        s = int(enc.solution_start[b])
        assert words[s - 1] == "<PATH_START>" and names[s] == "path:0" and words[s] == f"({m.origin[0]},{m.origin[1]})"
        for k, (r, c) in enumerate(m.path):
            assert names[s + k] == f"path:{k}" and words[s + k] == f"({r},{c})"
        assert names[words.index("<ORIGIN_START>") + 1] == "origin" and names[words.index("<TARGET_START>") + 1] == "target"
        for w, name in zip(words, names):
            if name == "adj":
                assert w.startswith("(")
            if name in ("adj_connector", "adj_separator"):
                assert w in ("<-->", ";")
            if name in ("adjlist_start", "adjlist_end", "path_start", "path_end"):
                assert w == "<" + name.upper() + ">"
        assert (enc.roles[b, len(ids):] == 0).all() and (enc.tokens[b, len(ids):] == tok.pad_id).all()
    assert (enc.position("path:0") == enc.solution_start).all()
    assert (enc.trace_start == -1).all() and (enc.position("trace_start") == -1).all()


@pytest.mark.parametrize("algorithm,fmt", [("astar", "searchformer"), ("bfs", "searchformer"), ("astar", "close")])
def test_trace_format_round_trips(algorithm, fmt):
    batch = make_batch(12, 5, 5, seed=7, extra_edges=2)
    traces = astar_traces(batch, algorithm)
    tok = MazeTokenizer(5, trace_format=fmt)
    enc = tok.encode(batch, traces)
    kinds = [Event.CREATE, Event.CLOSE] if fmt == "searchformer" else [Event.CLOSE]
    for b in range(len(batch)):
        ids, roles = enc.row(b)
        want = traces[b].select(*kinds)
        got = tok.decode_trace(ids)
        np.testing.assert_array_equal(got.kind, want.kind)
        np.testing.assert_array_equal(got.node, want.node)
        np.testing.assert_array_equal(got.g, want.g)
        np.testing.assert_array_equal(got.h, want.h)  # NaN for BFS: equal_nan via assert_array_equal
        assert tok.decode(ids) == batch[b]
        np.testing.assert_array_equal(tok.roles_of(ids), roles)
        edges, o, t, path, trace_text = read_text(tok.to_strings(ids))
        words = trace_text.split()
        per_event = 4 if algorithm == "astar" else 3
        assert len(words) == per_event * len(want)
        first_kind = "create" if fmt == "searchformer" else "close"
        r, c = divmod(int(want.node[0]), 5)
        assert words[:3] == [first_kind, f"({r},{c})", f"c{int(want.g[0])}"]
        assert tok.vocab[ids[enc.trace_start[b] - 1]] == "<TRACE_START>"
        assert enc.solution_start[b] > enc.trace_start[b] + len(words)
    with pytest.raises(InputError, match="needs one trace per maze"):
        tok.encode(batch)


def _text(batch, b=0, grid=5):
    tok = MazeTokenizer(grid)
    return tok, tok.to_strings(tok.encode(batch).row(b)[0]).split()


def test_corrupt_and_foreign_tokens_raise_one_line_data_errors():
    batch = make_batch(1, 4, 4, seed=8)
    tok, words = _text(batch)
    with pytest.raises(DataError, match=r"unknown maze token '\(5,0\)' at position 3"):
        tok.from_strings(words[:3] + ["(5,0)"] + words[4:])
    with pytest.raises(DataError, match=r"unknown maze token '<EOS>' at position 0"):
        tok.from_strings(["<EOS>"] + words)
    # a cell beyond the grid the caller says it is
    ids = tok.from_strings(words)
    with pytest.raises(DataError, match=r"beyond the 3x4 grid"):
        tok.decode(ids, shape=(3, 4))
    # missing sections
    no_origin = words[:]
    i = no_origin.index("<ORIGIN_START>")
    del no_origin[i:i + 3]
    with pytest.raises(DataError, match=r"expected '<ORIGIN_START>', found '<TARGET_START>' at position"):
        tok.decode(tok.from_strings(no_origin))
    with pytest.raises(DataError, match=r"expected '<PATH_END>', found end of sequence"):
        tok.decode(tok.from_strings(words[:-1]))
    with pytest.raises(DataError, match=r"expected '<ADJLIST_START>', found '\(.*\)' at position 0"):
        tok.decode(tok.from_strings(words[1:]))
    # an edge between non-adjacent cells
    bad = words[:]
    bad[1], bad[3] = "(0,0)", "(1,1)"
    with pytest.raises(DataError, match=r"edge \(0,0\) <--> \(1,1\) at position 1 joins non-adjacent cells"):
        tok.decode(tok.from_strings(bad))
    dup = words[:5] + words[1:5] + words[5:]
    with pytest.raises(DataError, match="listed twice"):
        tok.decode(tok.from_strings(dup))
    with pytest.raises(DataError, match=r"unexpected '<PATH_END>' at position"):
        tok.decode(tok.from_strings(words + ["<PATH_END>"]))
    with pytest.raises(DataError, match=r"token id 999 at position 2 is outside the vocabulary"):
        tok.decode(np.array([1, 2, 999]))
    for err in (DataError,):
        try:
            tok.from_strings(["nope"])
        except err as exc:
            assert "\n" not in str(exc)


def test_bad_arguments():
    with pytest.raises(InputError, match="max_grid=1"):
        MazeTokenizer(1)
    with pytest.raises(InputError, match="trace_format='dfs'"):
        MazeTokenizer(5, trace_format="dfs")
    with pytest.raises(InputError, match="7x7 is beyond the tokenizer's max_grid=5"):
        MazeTokenizer(5).encode(make_batch(1, 7, 7))
    with pytest.raises(InputError, match="'<nope>'"):
        MazeTokenizer(5).id_of("<nope>")


def test_batch_encoding_matches_single_maze_encoding_and_lengths():
    batch = make_batch(50, 7, 7, seed=9, extra_edges=2)
    tok = MazeTokenizer(7)
    enc = tok.encode(batch)
    assert enc.tokens.shape == (50, int(enc.lengths.max()))
    assert (enc.lengths <= tok.max_length(7, 7)).all()
    for b in range(0, 50, 7):
        one = tok.encode(subset(batch, [b]))
        np.testing.assert_array_equal(one.row(0)[0], enc.row(b)[0])
    assert "EncodedMazes(n=50" in repr(enc)
    empty = tok.encode(dataclasses.replace(
        batch, connections=batch.connections[:0], origin=batch.origin[:0], target=batch.target[:0], path=batch.path[:0],
        path_len=batch.path_len[:0], n_shortest=batch.n_shortest[:0], seed=batch.seed[:0]))
    assert len(empty) == 0 and empty.tokens.shape[0] == 0


def test_trace_values_outside_the_vocabulary_are_refused():
    from searchprobe.search.trace import TraceBuilder

    batch = make_batch(1, 3, 3, seed=10)
    tok = MazeTokenizer(3, trace_format="searchformer")
    for kwargs, match in (({"node": 9, "g": 0.0}, "trace node 9 is not a cell id of the 3x3 maze"),
                          ({"node": 1, "g": 1.5}, r"trace g=1\.5 cannot be a cost token; allowed: integers 0\.\.8"),
                          ({"node": 1, "g": 2.0, "h": 9.0}, r"trace h=9\.0 cannot be a cost token"),
                          ({"node": 1, "h": 2.0}, "has h but no g")):
        tb = TraceBuilder()
        tb.add(Event.CREATE, **kwargs)
        with pytest.raises(InputError, match=match):
            tok.encode(batch, [tb.build()])
    tb = TraceBuilder()
    tb.add(Event.CREATE, 4)  # no costs at all: kind and cell only
    tb.add(Event.GOAL, 4)  # other kinds are dropped
    enc = tok.encode(batch, [tb.build()])
    got = tok.decode_trace(enc.row(0)[0])
    assert got.kind.tolist() == [Event.CREATE] and got.node.tolist() == [4] and np.isnan(got.g).all()


# --- grid layout -------------------------------------------------------------------------------


def _grid_batch(generator: str, rows: int, cols: int, n: int = 40):
    from searchprobe.tasks.maze.config import MazeConfig
    from searchprobe.tasks.maze.dataset import generate_batch

    return generate_batch(MazeConfig(rows=rows, cols=cols, generator=generator, n=n, token_format="grid"), np.arange(n))


@pytest.mark.parametrize("generator, rows, cols", [("dfs", 5, 5), ("percolation", 4, 6), ("wilson", 3, 3)])
def test_grid_layout_round_trips_and_names_open_sides(generator, rows, cols):
    from searchprobe.tasks.maze.tokens import OPEN_TOKENS, MazeTokenizer, role_name

    batch = _grid_batch(generator, rows, cols)
    tok = MazeTokenizer(max(rows, cols), layout="grid")
    enc = tok.encode(batch)
    for b in range(len(batch)):
        ids, roles = enc.row(b)
        maze = batch[b]
        assert tok.decode(ids, shape=(rows, cols)) == maze
        assert np.array_equal(tok.roles_of(ids, shape=(rows, cols)), roles)
        # Independent check of each cell token: its open sides from the maze's edge list.
        open_sides = {(r, c): set() for r in range(rows) for c in range(cols)}
        for (r1, c1), (r2, c2) in maze.edges():
            open_sides[(r1, c1)].add("D" if r2 > r1 else "R")
            open_sides[(r2, c2)].add("U" if r2 > r1 else "L")
        words = [tok.vocab[i] for i in ids[7 : 7 + rows * cols]]  # after the 6 endpoint tokens and <GRID_START>
        assert words == ["open:" + "".join(s for s in "UDLR" if s in open_sides[(r, c)])
                         for r in range(rows) for c in range(cols)]
        assert set(words) <= set(OPEN_TOKENS)
        assert role_name(roles[7]) == "grid_cell" and role_name(roles[0]) == "origin_start" and tok.vocab[ids[enc.solution_start[b] - 1]] == "<PATH_START>"
    assert enc.lengths.max() <= tok.max_length(rows, cols)


def test_grid_layout_keeps_aotp_ids_and_rejects_corrupt_grids():
    from searchprobe.tasks.maze.tokens import MazeTokenizer

    aotp, grid = MazeTokenizer(5), MazeTokenizer(5, layout="grid")
    assert grid.vocab[: aotp.vocab_size] == aotp.vocab and aotp.vocab_size == 11 + 25 + 4 + 25
    batch = _grid_batch("dfs", 5, 5, n=2)
    ids = grid.encode(batch).row(0)[0].copy()
    text = grid.to_strings(ids).split()
    with pytest.raises(DataError, match="not a square"):
        grid.decode(grid.from_strings(text[:7] + text[8:]))
    closed_neighbour = text.copy()
    closed_neighbour[7] = "open:DR" if text[7] != "open:DR" else "open:D"  # (0,0) claims a passage its neighbour lacks
    with pytest.raises(DataError, match="closed on that side|off the"):
        grid.decode(grid.from_strings(closed_neighbour))
    off_grid = text.copy()
    off_grid[7] = "open:U"
    with pytest.raises(DataError, match="off the 5x5 grid"):
        grid.decode(grid.from_strings(off_grid))
    with pytest.raises(InputError, match="layout='hex'"):
        MazeTokenizer(5, layout="hex")
