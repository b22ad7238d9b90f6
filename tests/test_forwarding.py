"""Forwarding over dovetailer slopes and the discounted loss evaluator, against independent references."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from searchprobe.errors import DataError, InputError
from searchprobe.search import forwarding as fw
from searchprobe.search.dovetail import Dovetailer, dovetail_outcome
from searchprobe.search.programs import TableTask


def simulate_dovetailer(runtimes, accepted, a, b):
    """Brute force, cell by cell: (0-based winner, round, cells). Written without any closed form."""
    steps = [0] * len(runtimes)
    halted = [False] * len(runtimes)
    admitted = 0
    cells = 0
    r = 0
    while True:
        r += 1
        admitted = min(a * r, len(runtimes))
        for i in range(admitted):
            for _ in range(b):
                if halted[i]:
                    break
                steps[i] += 1
                cells += 1
                if steps[i] == runtimes[i]:
                    halted[i] = True
                    if accepted[i]:
                        return i, r, cells


def random_table(rng, n_programs):
    runtimes = np.where(rng.random(n_programs) < 0.3, np.inf, rng.integers(1, 30, n_programs)).astype(float)
    accepted = rng.random(n_programs) < 0.25
    j = int(rng.integers(n_programs))
    runtimes[j] = int(rng.integers(1, 40))
    accepted[j] = True
    return runtimes, accepted


# --- exact cells -------------------------------------------------------------------------------


def test_dovetail_cells_matches_brute_force_and_dovetail_module():
    rng = np.random.default_rng(7)
    a = np.array([1, 1, 2, 3, 1, 5, 4])
    b = np.array([1, 3, 1, 2, 7, 2, 4])
    for _ in range(40):
        runtimes, accepted = random_table(rng, int(rng.integers(1, 25)))
        w, R, cells = fw.dovetail_cells(runtimes, accepted, a, b)
        for c in range(len(a)):
            expect = simulate_dovetailer(runtimes, accepted, int(a[c]), int(b[c]))
            assert (int(w[c]), int(R[c]), int(cells[c])) == expect
            out = dovetail_outcome(runtimes, accepted, int(a[c]), int(b[c]))
            assert (out.winner, out.round, out.cells) == expect


def test_dovetail_cells_matches_dovetailer_run_on_table_task():
    rng = np.random.default_rng(3)
    for _ in range(10):
        runtimes, accepted = random_table(rng, 12)
        task = TableTask(list(runtimes), list(accepted))
        for a, b in [(1, 1), (2, 3), (3, 1)]:
            res = Dovetailer(a, b).run(task, record_trace=False)
            w, R, cells = fw.dovetail_cells(runtimes, accepted, a, b)
            assert (res.winner, res.round, res.cells) == (int(w), int(R), int(cells))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_dovetail_cells_property(data):
    n = data.draw(st.integers(1, 12))
    runtimes = data.draw(st.lists(st.one_of(st.integers(1, 20), st.just(math.inf)), min_size=n, max_size=n))
    accepted = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    j = data.draw(st.integers(0, n - 1))
    runtimes[j] = data.draw(st.integers(1, 20))
    accepted[j] = True
    a, b = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    w, R, cells = fw.dovetail_cells(np.array(runtimes, float), np.array(accepted), a, b)
    assert (int(w), int(R), int(cells)) == simulate_dovetailer(runtimes, accepted, a, b)


def test_family_cells_is_per_task_outcome():
    fam = fw.synthetic_family(num_tasks=5, num_programs=40, max_runtime=200, seed=1)
    pairs = fw.slope_grid(4, reduced=False)
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    table = fw.family_cells(fam, a, b)
    assert table.shape == (len(pairs), 5)
    for c, (pa, pb) in enumerate(pairs):
        for t in range(5):
            assert table[c, t] == dovetail_outcome(fam.runtimes[t], fam.accepted[t], pa, pb).cells


def test_bad_slopes_and_unsolvable_tasks_raise():
    with pytest.raises(InputError, match="a=0"):
        fw.dovetail_cells([1.0], [True], 0, 1)
    with pytest.raises(InputError, match="b=-2"):
        fw.dovetail_cells([1.0], [True], 1, -2)
    with pytest.raises(DataError, match="no accepted halting program"):
        fw.family_from_accepted([[(0, 3)], []], num_programs=4)
    with pytest.raises(DataError, match="outside 0..3"):
        fw.family_from_accepted([[(4, 3)]], num_programs=4)
    with pytest.raises(InputError, match="grid size 0"):
        fw.slope_grid(0)


# --- grid and description bits -----------------------------------------------------------------


def test_slope_grid_counts_and_order():
    reduced = fw.slope_grid(16)
    # |{(a, b) ∈ 1..n², gcd = 1}| = 2·Σφ(k) − 1: 159 for n = 16 (OEIS A018805).
    assert len(reduced) == 159
    assert len(fw.slope_grid(16, reduced=False)) == 256
    values = [Fraction(a, b) for a, b in reduced]
    assert values == sorted(values) and len(set(values)) == len(values)


def test_pair_bits_equals_slope_bits_for_reduced_fractions():
    priors = pytest.importorskip("searchprobe.search.priors")
    for a, b in fw.slope_grid(12):
        assert fw._pair_bits(np.array(a), np.array(b)) == pytest.approx(priors.slope_bits(a, b))


# --- the outer → inner map ---------------------------------------------------------------------


def brute_force_map(family, grid, base_bits, reduced_only=True):
    """Exact rational arithmetic: cost = (α/β)·mean cells + 2^base·a·b, ties → fewer bits, a, b."""
    pairs = [(a, b) for a in range(1, grid + 1) for b in range(1, grid + 1) if math.gcd(a, b) == 1]
    candidates = pairs if reduced_only else [(a, b) for a in range(1, grid + 1) for b in range(1, grid + 1)]
    cells = {}
    for a, b in candidates:
        total = sum(simulate_dovetailer(family.runtimes[t], family.accepted[t], a, b)[2] for t in range(family.num_tasks))
        cells[(a, b)] = Fraction(total, family.num_tasks)
    out = {}
    for alpha, beta in pairs:
        s = Fraction(alpha, beta)
        out[(alpha, beta)] = min(candidates, key=lambda p: (s * cells[p] + 2**base_bits * p[0] * p[1], p[0] * p[1], p[0], p[1]))
    return out


def test_forwarding_map_matches_exact_brute_force():
    fam = fw.synthetic_family(num_tasks=4, num_programs=24, max_runtime=60, seed=5)
    for base in (0, 3, 6):
        fmap = fw.forwarding_map(fam, grid=6, base_bits=base)
        ref = brute_force_map(fam, 6, base)
        assert dict(zip(fmap.outer, fmap.choice)) == ref
        assert all(fmap(o) == ref[o] for o in fmap.outer)
    # every (a, b), unreduced ones paying for their literal integers: D(2, 2) costs 2 bits more than D(1, 1)
    fmap = fw.forwarding_map(fam, grid=6, base_bits=0, candidates="all")
    ref = brute_force_map(fam, 6, 0, reduced_only=False)
    assert dict(zip(fmap.outer, fmap.choice)) == ref
    assert fmap.inner == tuple(fw._reduce(c) for c in fmap.choice)


def test_trivial_family_forwards_to_one_over_one():
    # Program 0 halts at once with zero loss: every dovetailer costs 1 cell, so the simplest wins.
    fam = fw.family_from_accepted([[(0, 1)]], num_programs=10)
    fmap = fw.forwarding_map(fam, grid=8, base_bits=2)
    assert set(fmap.inner) == {(1, 1)}
    analysis = fmap.analyse()
    assert analysis.fixed_points == ((1, 1),)
    assert len(analysis.cycles[0].basin) == len(fw.slope_grid(8))


def test_pure_speed_limit_picks_cell_minimum():
    # With base_bits = 0 and a huge cell gap, the speed-heavy end picks the cell-cheapest dovetailer.
    fam = fw.family_from_accepted([[(7, 1)]], num_programs=8)  # fast program at index 7: admit fast
    fmap = fw.forwarding_map(fam, grid=8, base_bits=0)
    best = min(fmap.candidates, key=lambda p: (fmap.cells[fmap.candidates.index(p)], p[0] * p[1]))
    assert fmap((8, 1)) == fw._reduce(best)
    assert best[0] > best[1]  # the winner sits at index 7 with runtime 1: admitting fast pays


def test_analysis_matches_networkx_functional_graph():
    fam = fw.synthetic_family(seed=0)
    fmap = fw.forwarding_map(fam, grid=16, base_bits=8)
    analysis = fmap.analyse()
    graph = nx.DiGraph([(s, fmap(s)) for s in fmap.outer])
    nx_cycles = {frozenset(c) for c in nx.simple_cycles(graph)}
    assert {frozenset(c.slopes) for c in analysis.cycles} == nx_cycles
    for comp in nx.weakly_connected_components(graph):
        (cycle,) = [c for c in analysis.cycles if set(c.slopes) <= comp]
        assert set(cycle.basin) == comp
    for c in analysis.cycles:  # cycle order follows the map
        for s, s2 in zip(c.slopes, c.slopes[1:] + c.slopes[:1]):
            assert fmap(s) == s2
    # transient length = shortest distance to the start's cycle
    for start, steps in analysis.transient_lengths.items():
        cyc = next(c for c in analysis.cycles if start in c.basin)
        dist = nx.single_source_shortest_path_length(graph, start)
        assert steps == min(dist[s] for s in cyc.slopes)


def test_jumps_and_discontinuities():
    fam = fw.synthetic_family(seed=0)
    fmap = fw.forwarding_map(fam, grid=16, base_bits=8)
    analysis = fmap.analyse()
    x = np.log2([a / b for a, b in fmap.outer])
    y = np.log2([a / b for a, b in fmap.inner])
    assert max(analysis.map_jumps.values()) == pytest.approx(np.abs(y - x).max())
    assert analysis.discontinuities[0][2] == pytest.approx(np.abs(np.diff(y)).max())
    assert analysis.grid_spacing == pytest.approx(np.diff(x).max())
    # The seed's prediction on this clustery family: the map is far from continuous and has
    # more than one attractor; its image jumps by many grid spacings between neighbours.
    assert analysis.discontinuities[0][2] > 5 * analysis.grid_spacing
    assert len(analysis.cycles) >= 2
    assert len(set(fmap.inner)) >= 3


def test_to_dict_is_json_and_plots_are_pngs(tmp_path):
    fam = fw.synthetic_family(num_tasks=6, num_programs=64, max_runtime=300, seed=2)
    fmap = fw.forwarding_map(fam, grid=8, base_bits=4)
    analysis = fmap.analyse()
    blob = json.loads(json.dumps({"map": fmap.to_dict(), "analysis": analysis.to_dict()}))
    assert len(blob["map"]["map"]) == len(fw.slope_grid(8))
    assert blob["analysis"]["fixed_points"] == [f"{a}/{b}" for a, b in analysis.fixed_points]
    for path in (fw.plot_forwarding_map(fmap, tmp_path / "map.png", analysis),
                 fw.plot_trajectories(fmap, tmp_path / "traj.png", analysis)):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "ForwardingMap(grid=8" in repr(fmap)


def test_synthetic_family_is_seeded():
    f1, f2, f3 = fw.synthetic_family(seed=11), fw.synthetic_family(seed=11), fw.synthetic_family(seed=12)
    assert np.array_equal(f1.runtimes, f2.runtimes) and np.array_equal(f1.accepted, f2.accepted)
    assert not np.array_equal(f1.accepted, f3.accepted)
    for t in range(f1.num_tasks):
        assert f1.solutions(t)


# --- discounted loss evaluator ------------------------------------------------------------------


def recursive_cost(model, d, level, depth):
    """Walk the chain of searches level by level, charging each box call d^level (no closed form)."""
    if level > depth:
        return model.f_star
    generation = sum(model.m for _ in range(int(model.n)))
    boxed = sum((model.f + model.l) * d**level for _ in range(int(model.n)))
    return generation + boxed + recursive_cost(model, d, level + 1, depth)


@pytest.mark.parametrize("d", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_discount_closed_form_matches_recursion(d):
    model = fw.DiscountModel(n=20, m=2.0, f=7.0, l=1.5, f_star=30.0)
    for depth in range(0, 8):
        assert fw.nested_search_cost(model, d, depth) == pytest.approx(recursive_cost(model, d, 1, depth), rel=1e-12)


def test_discount_limits():
    model = fw.DiscountModel(n=50, m=1.0, f=10.0, l=2.0, f_star=40.0)
    for depth in (1, 3, 6):
        undiscounted = model.f_star / (model.f_star + depth * model.n * (model.m + model.f + model.l))
        assert fw.object_share(model, 1.0, depth) == pytest.approx(undiscounted)
        limit = model.f_star / (model.f_star + depth * model.n * model.m)
        assert fw.object_share(model, 1e-9, depth) == pytest.approx(limit, rel=1e-6)
        assert fw.object_share(model, 0.0, depth) == pytest.approx(limit)
    assert fw.object_share(model, 0.5, 0) == 1.0


@settings(max_examples=50, deadline=None)
@given(st.floats(0, 1), st.floats(0, 1), st.integers(1, 10),
       st.floats(1, 100), st.floats(0, 10), st.floats(0.1, 50), st.floats(0, 5), st.floats(0.1, 100))
def test_share_is_monotone(d1, d2, depth, n, m, f, l, f_star):
    model = fw.DiscountModel(n=n, m=m, f=f, l=l, f_star=f_star)
    lo, hi = sorted((d1, d2))
    assert fw.object_share(model, lo, depth) >= fw.object_share(model, hi, depth) * (1 - 1e-12)
    assert fw.object_share(model, hi, depth + 1) <= fw.object_share(model, hi, depth) * (1 + 1e-12)


def test_discount_table_and_plot(tmp_path):
    model = fw.DiscountModel()
    table = fw.discount_table(model, [1.0, 0.5, 0.1], 6)
    assert table.share.shape == (6, 3)
    for i, depth in enumerate(table.depths):
        for j, d in enumerate(table.discounts):
            assert table.share[i, j] == pytest.approx(fw.object_share(model, d, depth))
            assert table.level_share[i, j] == pytest.approx(
                recursive_cost(model, d, depth + 1, depth) / recursive_cost(model, d, depth, depth))
    blob = json.loads(json.dumps(table.to_dict()))
    assert blob["limit_d0_share"][0] == pytest.approx(model.f_star / (model.f_star + model.n * model.m))
    assert fw.plot_discount_table(table, tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"


def test_discount_bad_input():
    with pytest.raises(InputError, match="discount 1.5"):
        fw.object_share(fw.DiscountModel(), 1.5, 2)
    with pytest.raises(InputError, match="depth -1"):
        fw.nested_search_cost(fw.DiscountModel(), 0.5, -1)
    with pytest.raises(InputError, match="f_star=0"):
        fw.DiscountModel(f_star=0)
    with pytest.raises(InputError, match="depth 0"):
        fw.discount_table(fw.DiscountModel(), [0.5], 0)


# --- Turing-machine task families -----------------------------------------------------------------


def test_tm_task_profile_matches_task_runs_and_accepted_programs():
    from searchprobe.search import tm_tasks

    for task in (tm_tasks.unary_add(max_states=2), tm_tasks.write_ones(2, max_states=2)):
        runtimes, accepted = fw.tm_task_profile(task, 1500, max_steps=40)
        for i in range(1500):  # reference: the task's own resumable runs, one machine at a time
            run = task.start(i)
            run.advance(40)
            assert runtimes[i] == (run.steps if run.halted else math.inf), (task.name, i)
            assert accepted[i] == (run.halted and run.loss == 0)
        assert [(int(i), int(runtimes[i])) for i in np.flatnonzero(accepted)] == tm_tasks.accepted_programs(task, 1500, 40)


def test_dovetailer_on_tm_task_matches_profile_cells():
    from searchprobe.search import tm_tasks

    task = tm_tasks.unary_successor(max_states=2)
    runtimes, accepted = fw.tm_task_profile(task, 2000, max_steps=64)
    for a, b in [(4, 1), (2, 3), (1, 1)]:
        res = Dovetailer(a, b).run(task, record_trace=False)
        w, R, cells = fw.dovetail_cells(runtimes, accepted, a, b)
        assert (res.winner, res.round, res.cells) == (int(w), int(R), int(cells))


def test_tm_family_drops_unsolvable_tasks():
    from searchprobe.search import tm_tasks

    tasks = [tm_tasks.unary_successor(max_states=2), tm_tasks.write_ones(4, max_states=2)]
    fam = fw.tm_family(tasks, num_programs=64)  # one-state machines cannot write 4 ones
    assert fam.names == ("unary_successor",) and "dropped=write_ones_4" in fam.name
    with pytest.raises(DataError, match="different max_states"):
        fw.tm_family([tm_tasks.unary_successor(max_states=1), tm_tasks.unary_add(max_states=2)])
