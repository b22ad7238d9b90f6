"""maze-dataset interop: our strings equal maze-dataset's own `as_tokens` output, and read back exactly."""

from __future__ import annotations

import numpy as np
import pytest

from searchprobe.errors import DataError, InputError
from searchprobe.tasks.maze.interop import (
    count_shortest_paths,
    from_solved_maze,
    maze_fingerprint,
    read_aotp,
    read_aotp_batch,
    stack_mazes,
    to_solved_maze,
    write_aotp,
)
from searchprobe.tasks.maze.tokens import MazeTokenizer
from test_maze_tokens import make_batch

# maze-dataset warns on every call to its legacy (AOTP) helpers, which is the format compared here
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore:.*legacy.*"), pytest.mark.filterwarnings("ignore:you need the `rust_fst`")]


@pytest.fixture(scope="module")
def md():
    pytest.importorskip("maze_dataset")
    import maze_dataset
    from maze_dataset.tokenization import MazeTokenizer as MDTokenizer, TokenizationMode

    return maze_dataset, MDTokenizer, TokenizationMode


def md_solved_mazes(md, grid: int, n: int, seed: int):
    maze_dataset, _, _ = md
    np.random.seed(seed)  # maze-dataset draws from numpy's global RNG
    out = []
    for _ in range(n):
        lm = maze_dataset.LatticeMazeGenerators.gen_dfs(np.array([grid, grid]))
        out.append(maze_dataset.SolvedMaze.from_lattice_maze(lm, lm.generate_random_path()))
    return out


def test_vocabulary_ids_equal_maze_dataset_uniform_tokenizer(md):
    _, MDTokenizer, mode = md
    for g in (2, 3, 5, 7, 10):
        theirs = MDTokenizer(tokenization_mode=mode.AOTP_UT_uniform, max_grid_size=g).token_arr
        assert MazeTokenizer(g).vocab[:len(theirs)] == list(theirs)


@pytest.mark.parametrize("grid", [3, 5, 7])
def test_strings_equal_maze_dataset_as_tokens(md, grid):
    maze_dataset, MDTokenizer, mode = md
    md_tok = MDTokenizer(tokenization_mode=mode.AOTP_UT_uniform, max_grid_size=grid)
    for k, solved in enumerate(md_solved_mazes(md, grid, 6, seed=grid)):
        np.random.seed(100 + k)
        theirs = solved.as_tokens(md_tok)
        np.random.seed(100 + k)
        adjacency = solved.as_adj_list()  # the same draws as_tokens made
        maze = read_aotp(theirs)
        np.testing.assert_array_equal(maze.connections, solved.connection_list)
        assert maze.origin == tuple(solved.start_pos) and maze.target == tuple(solved.end_pos)
        np.testing.assert_array_equal(maze.path, solved.solution)
        assert maze == from_solved_maze(solved) == read_aotp(" ".join(theirs), shape=(grid, grid))
        assert write_aotp(maze, adjacency=adjacency) == list(theirs)
        # our own shuffle: maze-dataset reads it back as the same maze
        ours = write_aotp(maze)
        back = maze_dataset.SolvedMaze.from_tokens(ours, md_tok)
        np.testing.assert_array_equal(back.connection_list, solved.connection_list)
        np.testing.assert_array_equal(back.solution, solved.solution)
        from maze_dataset.token_utils import equal_except_adj_list_sequence

        assert equal_except_adj_list_sequence(ours, list(theirs))
        # and it is what our tokenizer writes for the same maze
        tok = MazeTokenizer(grid)
        assert tok.to_strings(tok.encode(stack_mazes([maze])))[0].split() == ours
        back_obj = to_solved_maze(maze)
        np.testing.assert_array_equal(back_obj.connection_list, solved.connection_list)
        np.testing.assert_array_equal(back_obj.solution, solved.solution)


def test_batch_from_maze_dataset_tokens_round_trips_through_our_tokenizer(md):
    _, MDTokenizer, mode = md
    md_tok = MDTokenizer(tokenization_mode=mode.AOTP_UT_uniform, max_grid_size=6)
    solved = md_solved_mazes(md, 6, 8, seed=1)
    batch = read_aotp_batch([s.as_tokens(md_tok) for s in solved])
    assert (batch.n_rows, batch.n_cols, len(batch)) == (6, 6, 8)
    assert (batch.n_shortest == 1).all()  # gen_dfs mazes are perfect
    tok = MazeTokenizer(6)
    enc = tok.encode(batch)
    for b, s in enumerate(solved):
        assert tok.decode(enc.row(b)[0]) == batch[b] == from_solved_maze(s)
        # our token ids are maze-dataset's ids for the same strings
        words = tok.to_strings(enc.row(b)[0]).split()
        assert md_tok.encode(words) == enc.row(b)[0].tolist()


def test_count_shortest_paths_on_loops():
    batch = make_batch(30, 5, 5, seed=31, extra_edges=5)  # make_batch counts by plain BFS
    np.testing.assert_array_equal(count_shortest_paths(batch.connections, batch.origin, batch.target), batch.n_shortest)
    assert (batch.n_shortest > 1).any()
    again = stack_mazes([batch[b] for b in range(len(batch))])
    np.testing.assert_array_equal(again.n_shortest, batch.n_shortest)
    np.testing.assert_array_equal(again.seed, batch.seed)


def test_read_without_maze_dataset_and_bad_input():
    batch = make_batch(3, 4, 4, seed=32)
    words = write_aotp(batch[0])
    assert read_aotp(words) == batch[0]
    assert maze_fingerprint(batch[0]) == maze_fingerprint(read_aotp(words)) != maze_fingerprint(batch[1])
    ctt = ["<ADJLIST_START>", "(", "0", ",", "0", ")", "<-->"]  # maze-dataset's CTT format is foreign here
    with pytest.raises(DataError, match=r"unknown maze token '\(' at position 1"):
        read_aotp(ctt)
    with pytest.raises(DataError, match=r"maze 1: corrupt maze tokens: expected '<PATH_END>'"):
        read_aotp_batch([words, words[:-1]])
    with pytest.raises(DataError, match=r"'\(200,0\)' at position 3 is beyond the largest supported grid"):
        read_aotp(words[:3] + ["(200,0)"] + words[4:])
    with pytest.raises(InputError, match="does not list the maze's passages exactly"):
        write_aotp(batch[0], adjacency=np.array([[[0, 0], [0, 1]]]))
    with pytest.raises(InputError, match="maze 1 is 3x3 but maze 0 is 4x4"):
        stack_mazes([batch[0], make_batch(1, 3, 3)[0]])
