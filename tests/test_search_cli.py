"""`searchprobe search …` run in-process: printed numbers against direct library calls, errors → exit 2."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from searchprobe import cli
from searchprobe.commands import search as search_cmd
from searchprobe.search import forwarding as fw


def run_json(capsys, *argv):
    code = cli.main(["search", *argv, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def run_error(capsys, *argv) -> str:
    code = cli.main(["search", *argv])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith("error: ") and "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    return captured.err


# --- dovetail -----------------------------------------------------------------------------------


def test_dovetail_table_task_matches_library(capsys):
    from searchprobe.search.dovetail import Dovetailer, continuous_cost, implied_rank
    from searchprobe.search.programs import TableTask

    out = run_json(capsys, "dovetail", "--a", "2", "--b", "3", "--task", "table:9*,inf,2*,5")
    task = TableTask([9, math.inf, 2, 5], [True, False, True, False])
    res = Dovetailer(2, 3).run(task)
    assert (out["winner"], out["round"], out["cells"], out["runtime"]) == (res.winner, res.round, res.cells, res.runtime)
    assert out["implied_rank"] == implied_rank(res.winner + 1, res.runtime, 2, 3) == res.round
    assert out["continuous_estimate"] == pytest.approx(float(continuous_cost(res.winner + 1, res.runtime, 2, 3)))
    # an independent count: the batched closed form in forwarding
    w, r, cells = fw.dovetail_cells(np.array([9, np.inf, 2, 5]), np.array([1, 0, 1, 0], bool), 2, 3)
    assert (out["winner"], out["round"], out["cells"]) == (int(w), int(r), int(cells))


def test_dovetail_synthetic_task_and_text_table(capsys, tmp_path):
    fam = fw.synthetic_family(seed=0)
    w, r, cells = fw.dovetail_cells(fam.runtimes[3], fam.accepted[3], 1, 4)
    assert cli.main(["search", "dovetail", "--a", "1", "--b", "4", "--task", "synthetic:0:3", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    values = dict(line.split()[:2] for line in text.splitlines()[3:] if line.strip())
    assert int(values["winner"]) == int(w) and int(values["round"]) == int(r) and int(values["cells"]) == int(cells)
    trace = json.loads((tmp_path / "dovetail_trace.json").read_text())
    assert sum(s for s in trace["steps"] if s >= 0) == int(cells)  # RUN events carry the cells of each round


def test_dovetail_gives_up_at_max_rounds(capsys):
    out = run_json(capsys, "dovetail", "--a", "1", "--b", "1", "--task", "table:50*", "--max-rounds", "3")
    assert out["winner"] is None and out["round"] == 3 and out["cells"] == 3


@pytest.mark.parametrize("argv, needle", [
    (["dovetail", "--a", "0", "--b", "1", "--task", "table:1*"], "a=0"),
    (["dovetail", "--a", "1", "--b", "-3", "--task", "table:1*"], "b=-3"),
    (["dovetail", "--a", "1", "--b", "1", "--task", "table:1,2"], "no accepted program that halts"),
    (["dovetail", "--a", "1", "--b", "1", "--task", "table:inf*,3"], "no accepted program that halts"),
    (["dovetail", "--a", "1", "--b", "1", "--task", "table:1*,x"], "entry 1"),
    (["dovetail", "--a", "1", "--b", "1", "--task", "nonsense"], "is not a task"),
    (["dovetail", "--a", "1", "--b", "1", "--task", "table:1*", "--max-rounds", "0"], "--max-rounds 0"),
])
def test_dovetail_bad_input(capsys, argv, needle):
    assert needle in run_error(capsys, *argv)


# --- levin --------------------------------------------------------------------------------------


def test_levin_matches_library_and_bound(capsys):
    from searchprobe.search.lambda_calculus import LambdaTask, church, to_str
    from searchprobe.search.levin import levin_search

    out = run_json(capsys, "levin", "--target", "2", "--max-bits", "24")
    task = LambdaTask(lambda nf: nf == church(2), max_bits=24)
    res = levin_search(task)
    assert (out["winner"], out["phase"], out["work"], out["bits"]) == (res.winner, res.phase, res.work, res.bits)
    assert out["term"] == to_str(task.program(res.winner))
    assert out["phase"] <= out["bits"] + math.ceil(math.log2(out["runtime"])) == out["phase_bound"]
    assert out["work"] <= out["work_bound"] == 4 * out["runtime"] * 2 ** out["bits"]


def test_levin_gives_up_at_max_work(capsys):
    out = run_json(capsys, "levin", "--target", "50", "--max-bits", "20", "--max-work", "5000")
    assert out["winner"] is None and out["work"] == 5000 and "term" not in out


def test_levin_bad_target(capsys):
    assert "--target '-1'" in run_error(capsys, "levin", "--target", "-1")


# --- priors -------------------------------------------------------------------------------------


def test_priors_values_and_plot(capsys, tmp_path):
    from searchprobe.search.priors import mixed_cost, slope_bits

    out = run_json(capsys, "priors", "--out", str(tmp_path), "--max-value", "20")
    for row in out["slopes"]:
        a, b = map(int, row["slope"].split("/"))
        g = math.gcd(a, b)
        assert row["bits"] == pytest.approx(slope_bits(a, b)) == pytest.approx(math.log2(a // g) + math.log2(b // g))
        assert row["mixed_cost_t100_dl10"] == pytest.approx(mixed_cost(100, 10, a, b)) == pytest.approx(100 * a + 1024 * b)
    assert (tmp_path / "slope_complexity.png").read_bytes()[:4] == b"\x89PNG"


# --- forwarding ---------------------------------------------------------------------------------


def test_forwarding_matches_library(capsys, tmp_path):
    out = run_json(capsys, "forwarding", "--grid", "10", "--base-bits", "6", "--seed", "2", "--tasks", "8",
                   "--programs", "96", "--out", str(tmp_path))
    fam = fw.synthetic_family(num_tasks=8, num_programs=96, seed=2)
    fmap = fw.forwarding_map(fam, grid=10, base_bits=6)
    analysis = fmap.analyse()
    assert out["analysis"]["fixed_points"] == [f"{a}/{b}" for a, b in analysis.fixed_points]
    assert [c["slopes"] for c in out["analysis"]["cycles"]] == [[f"{a}/{b}" for a, b in c.slopes] for c in analysis.cycles]
    assert [row["inner"] for row in out["map"]] == [f"{a}/{b}" for a, b in fmap.inner]
    for name in ("forwarding_map.png", "forwarding_trajectories.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "forwarding.json").read_text())["analysis"] == out["analysis"]


def test_forwarding_text_names_cycles(capsys):
    assert cli.main(["search", "forwarding", "--grid", "6", "--tasks", "4", "--programs", "48"]) == 0
    text = capsys.readouterr().out
    fmap = fw.forwarding_map(fw.synthetic_family(num_tasks=4, num_programs=48), grid=6, base_bits=8)
    for cycle in fmap.analyse().cycles:
        assert " → ".join(f"{a}/{b}" for a, b in cycle.slopes) in text


def test_forwarding_bad_input(capsys):
    assert "--grid 0" in run_error(capsys, "forwarding", "--grid", "0")
    assert "--family 'chess'" in run_error(capsys, "forwarding", "--family", "chess")
    assert "base_bits=-1" in run_error(capsys, "forwarding", "--base-bits", "-1")


# --- discount -----------------------------------------------------------------------------------


def test_discount_matches_library(capsys, tmp_path):
    out = run_json(capsys, "discount", "--depth", "6", "--discounts", "1,0.5,0.1", "--out", str(tmp_path))
    model = fw.DiscountModel()
    assert out["depths"] == [1, 2, 3, 4, 5, 6] and out["discounts"] == [1.0, 0.5, 0.1]
    for i, depth in enumerate(out["depths"]):
        for j, d in enumerate(out["discounts"]):
            assert out["share"][i][j] == pytest.approx(fw.object_share(model, d, depth))
    # no discount: f*/(f* + D·n(m + f + l)) with the defaults n=100, m=1, f=10, l=1, f*=10
    assert out["share"][0][0] == pytest.approx(10 / (10 + 100 * 12))
    assert (tmp_path / "discount_share.png").read_bytes()[:4] == b"\x89PNG"


def test_discount_text_table(capsys):
    assert cli.main(["search", "discount", "--depth", "2", "--discounts", "0.5", "--f-star", "50"]) == 0
    text = capsys.readouterr().out
    row = text.splitlines()[-1].split()
    model = fw.DiscountModel(f_star=50)
    assert row[0] == "2" and float(row[1]) == pytest.approx(fw.object_share(model, 0.5, 2), rel=1e-5)


def test_discount_bad_input(capsys):
    assert "'1.5'" in run_error(capsys, "discount", "--discounts", "1,1.5")
    assert "--depth 0" in run_error(capsys, "discount", "--depth", "0")
    assert "f_star=0" in run_error(capsys, "discount", "--f-star", "0")


# --- circuits, tm, bb ---------------------------------------------------------------------------


def test_circuits_n3_histograms_and_witnesses(capsys):
    out = run_json(capsys, "circuits", "--n", "3")
    # Known table (issue 2, Knuth TAOCP 7.1.2): functions of 3 inputs with circuit cost 0..4.
    assert out["circuit_size"]["histogram"] == [8, 30, 114, 80, 24]
    assert sum(out["formula_size"]["histogram"]) == sum(out["formula_depth"]["histogram"]) == 256
    assert out["tree_forwarding"]["holds"] is True
    sharing = out["circuit_sharing"]
    assert sharing["joint_size"] < sum(sharing["task_sizes"])  # shared gates: circuit size is not additive
    size_hist, depth_hist = brute_force_formula_costs(3)
    assert out["formula_size"]["histogram"] == size_hist
    assert out["formula_depth"]["histogram"] == depth_hist
    text = search_cmd._circuit_text(out)  # what the CLI prints without --json (one report call is enough)
    rows = {int(line.split()[0]): line.split()[1:] for line in text.splitlines()[4:9]}
    assert [int(rows[c][-1]) for c in range(5)] == [8, 30, 114, 80, 24]


def brute_force_formula_costs(n):
    """L(f) and D(f) for every f of n inputs by relaxation over all (a, b, gate) with numpy."""
    size = 1 << n
    mask = (1 << size) - 1
    tables = np.arange(1 << size)
    leaves = [0, mask] + [sum(1 << x for x in range(size) if x >> i & 1) for i in range(n)]
    leaves += [t ^ mask for t in leaves[2:]]
    a, b = tables[:, None], tables[None, :]
    results = [((k & 1) * (~a & ~b) | (k >> 1 & 1) * (a & ~b) | (k >> 2 & 1) * (~a & b) | (k >> 3 & 1) * (a & b)) & mask
               for k in range(16)]
    out = []
    for combine in (np.add, np.maximum):
        cost = np.full(1 << size, 10**6)
        cost[leaves] = 0
        while True:
            new = cost.copy()
            pair = combine(cost[:, None], cost[None, :]) + 1
            for res in results:
                np.minimum.at(new, res.ravel(), pair.ravel())
            if np.array_equal(new, cost):
                break
            cost = new
        out.append(np.bincount(cost).tolist())
    return out


def test_circuits_bad_n(capsys):
    err = run_error(capsys, "circuits", "--n", "5")
    assert "--n 5" in err and "1..4" in err
    assert "--n 0" in run_error(capsys, "circuits", "--n", "0")


def test_tm_matches_library(capsys):
    from searchprobe.search.machines import run

    out = run_json(capsys, "tm", "1RB1LB_1LA1RZ", "--steps", "100")
    res = run("1RB1LB_1LA1RZ", 100)
    assert (out["halted"], out["steps"], out["ones"], out["tape"]) == (res.halted, res.steps, res.ones, res.tape)
    assert (out["steps"], out["ones"]) == (6, 4)  # the 2-state busy-beaver champion
    out = run_json(capsys, "tm", "1RB1LB_1LA1RZ", "--steps", "3")
    assert out["halted"] is False and out["steps"] == 3


def test_tm_bad_input(capsys):
    err = run_error(capsys, "tm", "1RB1LB_1LA1QZ", "--steps", "10")
    assert "1RB1LB_1LA1QZ" in err and "position 11" in err
    assert "--steps 0" in run_error(capsys, "tm", "1RB1LB_1LA1RZ", "--steps", "0")
    assert "--steps -5" in run_error(capsys, "tm", "1RB1LB_1LA1RZ", "--steps", "-5")


@pytest.mark.parametrize("n, s, sigma", [(1, 1, 1), (2, 6, 4), (3, 21, 6)])
def test_bb_known_values(capsys, n, s, sigma):
    out = run_json(capsys, "bb", "--n", str(n))
    assert (out["S"], out["Sigma"]) == (s, sigma)


def test_bb_bad_n(capsys):
    assert "--n 0" in run_error(capsys, "bb", "--n", "0")
    assert "--n 7" in run_error(capsys, "bb", "--n", "7")


def test_help_lists_every_subverb(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["search", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for sub in ("dovetail", "levin", "priors", "forwarding", "discount", "circuits", "tm", "bb"):
        assert sub in text


def test_forwarding_tm_family_matches_library(capsys):
    out = run_json(capsys, "forwarding", "--family", "tm", "--programs", "3000", "--grid", "6")
    fam = fw.tm_family(num_programs=3000)
    fmap = fw.forwarding_map(fam, grid=6, base_bits=8)
    assert out["family"] == repr(fam)
    assert [row["inner"] for row in out["map"]] == [f"{a}/{b}" for a, b in fmap.inner]
    assert out["analysis"]["fixed_points"] == [f"{a}/{b}" for a, b in fmap.analyse().fixed_points]


def test_dovetail_tm_task_matches_library(capsys):
    from searchprobe.search import tm_tasks
    from searchprobe.search.dovetail import Dovetailer

    out = run_json(capsys, "dovetail", "--a", "4", "--b", "1", "--task", "tm:unary_successor")
    res = Dovetailer(4, 1).run(tm_tasks.unary_successor(max_states=2), record_trace=False)
    assert (out["winner"], out["round"], out["cells"], out["runtime"]) == (res.winner, res.round, res.cells, res.runtime)
    assert "tm:write_ones_K" in run_error(capsys, "dovetail", "--a", "1", "--b", "1", "--task", "tm:foo")
