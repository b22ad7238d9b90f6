"""Dovetailer(a, b): simulations against a cell-by-cell reference, the implied prior, closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from searchprobe.errors import InputError
from searchprobe.search.dovetail import (
    Dovetailer,
    continuous_cost,
    continuum_departure,
    dovetail_outcome,
    exact_cells,
    exact_cells_many,
    grid_cells,
    implied_rank,
    implied_winner,
)
from searchprobe.search.lambda_calculus import LAM, LambdaRun, LambdaTask
from searchprobe.search.programs import TableTask
from searchprobe.search.trace import Event


def reference_dovetail(runtimes, accepted, a, b):
    """Literal cell-by-cell transcription of the semantics: (winner, round, cells) or None winner."""
    done = [0] * len(runtimes)
    gone = [False] * len(runtimes)
    cells, rnd = 0, 0
    while True:
        rnd += 1
        admitted = min(a * rnd, len(runtimes))
        for i in range(admitted):
            for _ in range(b):
                if gone[i]:
                    break
                done[i] += 1
                cells += 1
                if done[i] == runtimes[i]:
                    if accepted[i]:
                        return i, rnd, cells
                    gone[i] = True
        if admitted == len(runtimes) and all(gone):
            return None, rnd, cells


table_tasks = st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.lists(st.one_of(st.integers(1, 25), st.just(math.inf)), min_size=n, max_size=n),
    st.lists(st.booleans(), min_size=n, max_size=n),
    st.integers(0, n - 1),
    st.integers(1, 25),
))


def _with_a_winner(runtimes, accepted, forced, forced_runtime):
    runtimes, accepted = list(runtimes), list(accepted)
    runtimes[forced], accepted[forced] = forced_runtime, True
    return runtimes, accepted


@settings(max_examples=150, deadline=None)
@given(table_tasks, st.integers(1, 5), st.integers(1, 5))
def test_simulations_closed_form_and_reference_agree(table, a, b):
    runtimes, accepted = _with_a_winner(*table)
    task = TableTask(runtimes, accepted)
    stepped = Dovetailer(a, b).run(task, method="step")
    tabled = Dovetailer(a, b).run(task, method="table")
    closed = dovetail_outcome(runtimes, accepted, a, b)
    assert (stepped.winner, stepped.round, stepped.cells) == reference_dovetail(runtimes, accepted, a, b)
    for other in (tabled, closed):
        assert (other.winner, other.round, other.cells, other.runtime) == (
            stepped.winner, stepped.round, stepped.cells, stepped.runtime)
    assert stepped.trace == tabled.trace
    assert exact_cells(runtimes, accepted, a, b) == stepped.cells
    # the implied prior: the winner minimizes ceil(n/a) + ceil(t/b) - 1, ties to the lower index
    candidates = [(i, int(t)) for i, (t, ok) in enumerate(zip(runtimes, accepted)) if ok and t != math.inf]
    assert implied_winner(candidates, a, b) == (stepped.winner, stepped.runtime)
    assert implied_rank(stepped.winner + 1, stepped.runtime, a, b) == stepped.round


@settings(max_examples=60, deadline=None)
@given(table_tasks, st.lists(st.tuples(st.integers(1, 9), st.integers(1, 9)), min_size=1, max_size=20))
def test_exact_cells_many_matches_one_slope_at_a_time(table, slopes):
    runtimes, accepted = _with_a_winner(*table)
    a, b = np.array(slopes).T
    winners, rounds, cells = exact_cells_many(runtimes, accepted, a, b, chunk=3)
    for k, (ak, bk) in enumerate(slopes):
        one = dovetail_outcome(runtimes, accepted, ak, bk)
        assert (winners[k], rounds[k], cells[k]) == (one.winner, one.round, one.cells)


@settings(max_examples=80, deadline=None)
@given(table_tasks, st.integers(1, 4), st.integers(1, 4), st.integers(1, 60), st.integers(1, 8))
def test_caps_agree_between_simulations(table, a, b, max_cells, max_rounds):
    runtimes, accepted = table[0], table[1]  # possibly no winner at all
    task = TableTask(runtimes, accepted)
    for caps in ({"max_cells": max_cells}, {"max_rounds": max_rounds}, {"max_cells": max_cells, "max_rounds": max_rounds}):
        stepped = Dovetailer(a, b).run(task, method="step", **caps)
        tabled = Dovetailer(a, b).run(task, method="table", **caps)
        assert (stepped.winner, stepped.round, stepped.cells) == (tabled.winner, tabled.round, tabled.cells)
        assert stepped.trace == tabled.trace
        assert stepped.cells <= caps.get("max_cells", stepped.cells)
        assert stepped.round <= caps.get("max_rounds", stepped.round)


def test_trace_accounts_for_every_cell():
    runtimes = [math.inf, 7, 3, math.inf, 2, 9, 4]
    accepted = [False, False, False, False, False, True, True]
    result = Dovetailer(2, 3).run(TableTask(runtimes, accepted))
    trace = result.trace
    runs = trace.select(Event.RUN)
    assert runs["steps"].sum() == result.cells
    assert list(trace.nodes(Event.ADMIT)) == list(range(min(2 * result.round, len(runtimes))))
    halts = trace.select(Event.HALT)
    assert [runtimes[i] for i in halts["node"]] == list(halts["g"])
    assert list(trace.nodes(Event.ACCEPT)) == [result.winner]
    assert trace["kind"][-1] == Event.ACCEPT and trace["value"][-1] == 0.0
    # program 6 (n=7, t=4): rank ceil(7/2)+ceil(4/3)-1 = 5; program 5 (n=6, t=9): 3+3-1 = 5; lower index wins
    assert (result.winner, result.round) == (5, 5)


def test_no_winner_when_every_program_halts_unaccepted():
    result = Dovetailer(1, 2).run(TableTask([3, 1, 5], [False, False, False]))
    assert result.winner is None and result.cells == 9 and result.runtime == 0
    assert (result.round, result.cells) == reference_dovetail([3, 1, 5], [False] * 3, 1, 2)[1:]
    assert dovetail_outcome([3, 1, 5], [False] * 3, 1, 2).cells == 9


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 7), st.integers(1, 7))
def test_grid_cells_is_exact_when_nothing_else_halts(n, t, a, b):
    runtimes = [math.inf] * (a * (n + t) + 5)
    runtimes[n - 1] = t
    accepted = [i == n - 1 for i in range(len(runtimes))]
    assert grid_cells(n, t, a, b) == exact_cells(runtimes, accepted, a, b)
    if n * t * a * b < 2000:
        assert grid_cells(n, t, a, b) == reference_dovetail(runtimes, accepted, a, b)[2]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10_000), st.integers(1, 10_000), st.integers(1, 10_000), st.integers(1, 10_000),
       st.integers(1, 20), st.integers(1, 20))
def test_isolines_are_b_n_plus_a_t(n1, t1, n2, t2, a, b):
    """b·n + a·t decides the winner whenever the two isolines are more than 2ab apart."""
    iso1, iso2 = b * n1 + a * t1, b * n2 + a * t2
    if abs(iso1 - iso2) <= 2 * a * b or n1 == n2:
        return
    (w, _) = implied_winner([(n1 - 1, t1), (n2 - 1, t2)], a, b)
    assert w == (n1 - 1 if iso1 < iso2 else n2 - 1)


def test_continuous_cost_departs_at_the_corners_and_converges_along_rays():
    assert continuous_cost(4, 6, 2, 3) == pytest.approx((3 * 4 + 2 * 6) ** 2 / 12)
    for (n0, t0, a, b) in [(3, 5, 2, 3), (1, 1, 1, 1), (5, 2, 7, 1), (2, 9, 1, 4)]:
        errors = [abs(float(continuum_departure(k * n0, k * t0, a, b))) for k in (1, 10, 100, 1000, 10_000)]
        assert errors[-1] < 1e-3
        assert all(later <= earlier + 1e-12 for earlier, later in zip(errors[2:], errors[3:]))
    # corners: one cell of real work, the continuum charges half the (b·n + a·t)² box
    assert grid_cells(1, 1, 1, 100) == 1
    assert float(continuum_departure(1, 1, 1, 100)) == pytest.approx(50.005)
    assert float(continuum_departure(1, 1, 100, 1)) == pytest.approx(50.005)
    table = continuum_departure(np.arange(1, 65)[:, None], np.arange(1, 65)[None, :], 3, 2)
    assert table.shape == (64, 64)
    assert abs(table[0, 0]) > 10 * abs(table[-1, -1])


def test_dovetailer_over_lambda_terms_matches_the_closed_form():
    task = LambdaTask(lambda nf: nf == (LAM, 0), max_bits=14)  # normal form: the identity
    runtimes, accepted = [], []
    for i in range(task.num_programs()):
        run = LambdaRun(i, task.program(i))
        run.advance(10_000)
        assert run.halted  # nothing of <= 14 bits diverges (Omega needs 18)
        runtimes.append(run.steps)
        accepted.append(run.term == (LAM, 0))
    result = Dovetailer(3, 2).run(task)
    closed = dovetail_outcome(runtimes, accepted, 3, 2)
    assert sum(accepted) > 1 and max(runtimes) == 3
    assert (result.winner, result.round, result.cells, result.runtime) == (
        closed.winner, closed.round, closed.cells, closed.runtime)
    assert result.trace.select(Event.RUN)["steps"].sum() == result.cells


@pytest.mark.parametrize("args, name", [((0, 1), "a"), ((1, 0), "b"), ((-2, 3), "a"), ((1.5, 1), "a"),
                                        ((True, 1), "a"), ((1, "2"), "b")])
def test_bad_slopes_raise_one_line_input_errors(args, name):
    with pytest.raises(InputError, match=f"^{name}=") as info:
        Dovetailer(*args)
    assert "\n" not in str(info.value)


def test_other_bad_input():
    with pytest.raises(InputError, match="no programs"):
        Dovetailer(1, 1).run(TableTask([], []))
    with pytest.raises(InputError, match="max_cells=0"):
        Dovetailer(1, 1).run(TableTask([1], [True]), max_cells=0)
    with pytest.raises(InputError, match="never stop"):
        exact_cells([math.inf, 3], [False, False], 1, 1)
    with pytest.raises(InputError, match=r"runtimes\[1\]"):
        exact_cells([1, 2.5], [True, True], 1, 1)
    with pytest.raises(InputError, match="no accepted programs"):
        implied_winner([], 1, 1)
    with pytest.raises(InputError, match=r"^b=\[1, 0\]"):
        exact_cells_many([1, 2], [True, True], [1, 1], [1, 0])
    with pytest.raises(InputError, match="method="):
        Dovetailer(1, 1).run(TableTask([1], [True]), method="fast")
