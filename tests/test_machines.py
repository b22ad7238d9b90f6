"""Turing machines and TM program-search tasks, checked against known values and a reference simulator.

The reference simulator below is written independently of searchprobe: it parses the text with
string slicing and keeps the tape in a dict, so agreement is not agreement with itself.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np
import pytest

from searchprobe.errors import InputError
from searchprobe.search import programs
from searchprobe.search.machines import (
    KNOWN_BUSY_BEAVER,
    MachineRun,
    TuringMachine,
    busy_beaver,
    enumerate_tnf,
    parse_machine,
    run,
    simulate_batch,
)
from searchprobe.search.tm_tasks import (
    Example,
    TMSpace,
    TMTask,
    accepted_programs,
    unary_add,
    unary_successor,
    write_ones,
)

CHAMPIONS = {  # machine: (steps, ones), from the busy-beaver literature / bbchallenge
    "1RB1LB_1LA1RZ": (6, 4),
    "1RB1RZ_1LB0RC_1LC1LA": (21, 5),
    "1RB1LB_1LA0LC_1RZ1LD_1RD0RA": (107, 13),
}
BB5 = "1RB1LC_1RC1RB_1RD0LE_1LA1LD_1RZ0LA"


def reference_run(text: str, max_steps: int, tape: str = "", head: int = 0):
    """(halted, steps, ones, cells dict, head) by the plain definition; '---' halts and counts a step."""
    blocks = text.split("_")
    n = len(blocks)
    cells = defaultdict(int, {i: int(c) for i, c in enumerate(tape)})
    state, steps = 0, 0
    while steps < max_steps:
        tr = blocks[state][3 * cells[head] : 3 * cells[head] + 3]
        steps += 1
        if tr == "---":
            return True, steps, sum(cells.values()), cells, head
        cells[head] = int(tr[0])
        head += 1 if tr[1] == "R" else -1
        state = ord(tr[2]) - ord("A")
        if state >= n:
            return True, steps, sum(cells.values()), cells, head
    return False, steps, sum(cells.values()), cells, head


def random_machine(rng: np.random.Generator, n: int, p_undefined: float = 0.1, p_halt: float = 0.05) -> str:
    parts = []
    for _ in range(2 * n):
        if rng.random() < p_undefined:
            parts.append("---")
        else:
            nxt = "Z" if rng.random() < p_halt else chr(65 + int(rng.integers(n)))
            parts.append(f"{rng.integers(2)}{'LR'[rng.integers(2)]}{nxt}")
    return "_".join("".join(parts[2 * s : 2 * s + 2]) for s in range(n))


# --- parsing and formatting ----------------------------------------------------------------


@pytest.mark.parametrize("text", [*CHAMPIONS, BB5, "1RB---_1LB0RC_1LC1LA", "------", "0LA1RE_1LZ0RA", "1RB1LX_1LA1RZ"])
def test_parse_format_round_trip(text):
    m = parse_machine(text)
    assert str(m) == text
    assert eval(repr(m), {"TuringMachine": TuringMachine}) == m
    assert hash(m) == hash(parse_machine(text))
    assert m.n_states == len(text.split("_"))


def test_parse_tables():
    m = parse_machine("1RB1LB_1LA1RZ")
    assert m.write.tolist() == [[1, 1], [1, 1]]
    assert m.move.tolist() == [[1, -1], [-1, 1]]
    assert m.next.tolist() == [[1, 1], [0, 25]]
    assert parse_machine("1RB---_------").n_undefined == 3
    with pytest.raises(ValueError):
        m.write[0, 0] = 0  # read-only


@pytest.mark.parametrize(
    "text, position, found",
    [
        ("", 0, "end of the string"),
        ("1RB1LB_", 7, "end of the string"),
        ("1RB1L", 5, "end of the string"),
        ("1RB1LB-1LA1RZ", 6, "'-'"),
        ("2RB1LB", 0, "'2'"),
        ("1XB1LB", 1, "'X'"),
        ("1Rb1LB", 2, "'b'"),
        ("-RB1LB", 1, "'R'"),
        ("1RB1LB_1LA1RZ_", 14, "end of the string"),
        ("1RB1LB_1LA1RZx", 13, "'x'"),
    ],
)
def test_malformed_strings_point_at_the_character(text, position, found):
    with pytest.raises(InputError) as info:
        parse_machine(text)
    message = str(info.value)
    assert f"position {position} " in message and found in message and "expected" in message


def test_non_string_machine_rejected():
    with pytest.raises(InputError, match="expected a bbchallenge string"):
        parse_machine(42)


# --- the plain simulator ---------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", CHAMPIONS.items())
def test_champions_steps_and_ones(text, expected):
    result = run(text, 10_000)
    assert result.halted and (result.steps, result.ones) == expected
    ref = reference_run(text, 10_000)
    assert (ref[1], ref[2]) == expected
    assert result.tape.count("1") == result.ones


@pytest.mark.slow
def test_bb5_champion():
    result = run(BB5, 50_000_000)
    assert result.halted and (result.steps, result.ones) == KNOWN_BUSY_BEAVER[5] == (47_176_870, 4098)


def test_bb5_champion_does_not_halt_early():
    result = run(BB5, 100_000)
    ref = reference_run(BB5, 100_000)
    assert not result.halted and result.steps == 100_000 and result.ones == ref[2]


def test_undefined_transition_halts_and_counts_a_step():
    # A0 = 1RB, B0 undefined: step 1 writes and moves, step 2 reads '---' and halts in place.
    result = run("1RB---_------", 10)
    assert (result.halted, result.steps, result.ones, result.tape, result.head, result.state) == (True, 2, 1, "10", 1, 1)
    assert run("------", 5) == run("------", 1)
    assert run("------", 5).steps == 1


def test_random_machines_match_reference_with_input_tapes():
    rng = np.random.default_rng(1)
    for _ in range(300):
        n = int(rng.integers(1, 5))
        text = random_machine(rng, n)
        tape = "".join(rng.choice(["0", "1"], size=int(rng.integers(0, 6))))
        head = int(rng.integers(-2, 7))
        budget = int(rng.integers(1, 300))
        ours = run(text, budget, tape=tape, head=head)
        halted, steps, ones, cells, ref_head = reference_run(text, budget, tape, head)
        assert (ours.halted, ours.steps, ours.ones) == (halted, steps, ones), text
        # tape string: smallest segment holding every 1 and the head
        marked = [i for i, v in cells.items() if v] + [ref_head]
        lo, hi = min(marked), max(marked)
        assert ours.tape == "".join(str(cells[i]) for i in range(lo, hi + 1))
        assert ours.head == ref_head - lo


def test_resumable_run_matches_one_shot_run():
    rng = np.random.default_rng(2)
    for text in [*CHAMPIONS, BB5]:
        r = MachineRun(text, index=7)
        assert isinstance(r, programs.ProgramRun)
        total = 0
        while not r.halted and total < 3000:
            total += r.advance(min(int(rng.integers(1, 17)), 3000 - total))
        one_shot = run(text, 3000)
        assert r.result() == one_shot and r.steps == total == one_shot.steps
        if r.halted:
            assert r.advance(5) == 0


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "10", None])
def test_step_budgets_must_be_positive_integers(bad):
    with pytest.raises(InputError, match="positive integer"):
        run("1RB1LB_1LA1RZ", bad)
    with pytest.raises(InputError, match="positive integer"):
        simulate_batch(["1RB1LB_1LA1RZ"], bad)
    with pytest.raises(InputError, match="positive integer"):
        MachineRun("1RB1LB_1LA1RZ").advance(bad)
    with pytest.raises(InputError, match="positive integer"):
        enumerate_tnf(2, bad)


def test_bad_tapes_rejected():
    with pytest.raises(InputError, match="position 2"):
        run("1RB1LB_1LA1RZ", 10, tape="012")
    with pytest.raises(InputError):
        run("1RB1LB_1LA1RZ", 10, tape=[0, 2])


# --- the vectorized simulator ----------------------------------------------------------------


def test_vectorized_matches_plain_on_random_machines():
    rng = np.random.default_rng(3)
    machines = [random_machine(rng, int(rng.integers(1, 6)), p_undefined=0.05, p_halt=0.03) for _ in range(1500)]
    machines += list(CHAMPIONS)
    budget = 400
    halted, steps, ones = simulate_batch(machines, budget)
    for i, text in enumerate(machines):
        ref = run(text, budget)
        assert (bool(halted[i]), int(steps[i]), int(ones[i])) == (ref.halted, ref.steps, ref.ones), text


def test_vectorized_with_input_tape_and_tape_growth():
    # Runaways force tape regrowth (head travels 3000 cells); the input tape is shared by all.
    machines = ["1RA1RA", "0LA1LA", "1RB0LA_1LA1RZ", "1RB1LB_1LA0LC_1RZ1LD_1RD0RA", "1LB1RZ_0RA0LA"]
    for tape, head in [(None, 0), ("1101", 0), ("0111", 3), ("1", -2)]:
        res = simulate_batch(machines, 3000, tape=tape, head=head)
        for i, text in enumerate(machines):
            ref = reference_run(text, 3000, tape or "", head)
            assert (bool(res.halted[i]), int(res.steps[i]), int(res.ones[i])) == ref[:3]


def test_vectorized_matches_plain_on_all_tnf3_machines():
    tnf = enumerate_tnf(3, 200)
    machines = list(tnf.halting_machines()) + list(tnf.undecided_machines())
    halted, steps, ones = simulate_batch(machines, 200)
    plain = [run(m, 200) for m in machines]
    assert halted.tolist() == [r.halted for r in plain]
    assert steps.tolist() == [r.steps for r in plain]
    assert ones.tolist() == [r.ones for r in plain]


def test_batch_result_and_empty_input():
    res = simulate_batch(list(CHAMPIONS), 1000)
    assert len(res) == 3 and "halted=3" in repr(res)
    with pytest.raises(InputError, match="empty"):
        simulate_batch([], 10)


# --- TNF enumeration and the busy beaver -----------------------------------------------------


def test_tnf_leaves_are_consistent_with_the_simulator():
    tnf = enumerate_tnf(3, 300)
    assert tnf.n_halting > 0 and tnf.n_undecided > 0
    for i in range(tnf.n_halting):
        m = tnf.halting_machine(i)
        ref = reference_run(str(m), 300)
        assert ref[0] and (ref[1], ref[2]) == (tnf.halting_steps[i], tnf.halting_ones[i]), str(m)
        assert str(m).startswith("1RB") or m.n_states == 1 or str(m).startswith("1RZ")
    halted, _, _ = simulate_batch(list(tnf.undecided_machines()), 300)
    assert not halted.any()
    # the leaves are distinct machines
    texts = [str(m) for m in tnf.halting_machines()] + [str(m) for m in tnf.undecided_machines()]
    assert len(set(texts)) == len(texts)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_busy_beaver_small(n):
    bb = busy_beaver(n)
    S, sigma = bb
    assert (S, sigma) == KNOWN_BUSY_BEAVER[n]
    assert run(bb.steps_champion, 1000).steps == S
    assert run(bb.ones_champion, 1000).ones == sigma


def test_busy_beaver_2_by_brute_force_over_all_machines():
    # Independent of TNF: every fully defined 2-state machine (12^4 = 20,736), written out directly.
    transitions = [w + m + x for w in "01" for m in "LR" for x in "ABZ"]
    machines = [f"{a}{b}_{c}{d}" for a, b, c, d in itertools.product(transitions, repeat=4)]
    assert len(machines) == 20_736
    halted, steps, ones = simulate_batch(machines, 100)
    assert (int(steps[halted].max()), int(ones[halted].max())) == KNOWN_BUSY_BEAVER[2]
    # nothing that runs 100 steps halts later (spot check with a longer budget)
    assert not simulate_batch([m for m, h in zip(machines, halted) if not h], 1000).halted.any()
    # and the 2-state group of TMSpace is exactly this set, in this (lexicographic) order
    space = TMSpace(2)
    assert [str(space.machine(i)) for i in range(64, 64 + 200)] == machines[:200]
    assert str(space.machine(len(space) - 1)) == machines[-1]


@pytest.mark.slow
def test_busy_beaver_4():
    bb = busy_beaver(4)
    assert (bb.steps, bb.ones) == KNOWN_BUSY_BEAVER[4] == (107, 13)
    assert str(bb.steps_champion) == "1RB1LB_1LA0LC_1RZ1LD_1RD0RA"


@pytest.mark.parametrize("bad", [0, -1, 5, 2.0, True])
def test_busy_beaver_state_counts(bad):
    with pytest.raises(InputError, match="n_states"):
        busy_beaver(bad)


# --- program-search tasks --------------------------------------------------------------------


def test_space_order_sizes_and_bits():
    space = TMSpace(3)
    assert [space.group_size(n) for n in (1, 2, 3)] == [64, 20_736, 16_777_216]
    assert len(space) == 64 + 20_736 + 16_777_216
    assert str(space.machine(0)) == "0LA0LA" and str(space.machine(63)) == "1RZ1RZ"
    assert str(space.machine(64)) == "0LA0LA_0LA0LA" and str(space.machine(len(space) - 1)) == "1RZ1RZ_1RZ1RZ_1RZ1RZ"
    texts = [str(space.machine(i)) for i in range(64)]
    assert texts == sorted(texts) and len(set(texts)) == 64  # lexicographic within a size
    rng = np.random.default_rng(4)
    for i in rng.integers(0, len(space), size=200):
        assert space.index(space.machine(int(i))) == i
    assert space.description_bits(0) == pytest.approx(1 + 2 * math.log2(8))
    assert space.description_bits(64) == pytest.approx(3 + 4 * math.log2(12))
    with pytest.raises(InputError, match="out of range"):
        space.machine(len(space))


def test_task_protocol_and_bad_tasks():
    task = unary_successor()
    assert isinstance(task, programs.ProgramSearchTask)
    assert isinstance(task.start(0), programs.ProgramRun)
    with pytest.raises(InputError, match="empty training set"):
        TMTask("nothing", ())
    with pytest.raises(InputError, match="readout"):
        TMTask("x", (Example("1", 1),), readout="bits")
    with pytest.raises(InputError, match="output"):
        TMTask("x", (Example("1", "2"),), readout="tape")
    with pytest.raises(InputError):
        write_ones(-1)


def reference_output(task: TMTask, text: str, tape: str, budget: int):
    halted, steps, ones, cells, _ = reference_run(text, budget, tape)
    if not halted:
        return None, steps
    if task.readout == "ones":
        return ones, steps
    marked = [i for i, v in cells.items() if v]
    return ("".join(str(cells[i]) for i in range(min(marked), max(marked) + 1)) if marked else ""), steps


def reference_accepts(task: TMTask, text: str, budget: int):
    total = 0
    for ex in task.examples:
        out, steps = reference_output(task, text, ex.input, budget - total)
        total += steps
        if out != ex.output:
            return False, total
    return True, total


@pytest.mark.parametrize("task", [write_ones(1), write_ones(4), unary_successor(), unary_add()], ids=lambda t: t.name)
def test_accepted_programs_checked_by_running_the_machines(task):
    budget = 100
    n_programs = TMSpace(2).group_start(3)  # every machine with ≤ 2 states
    found = accepted_programs(task, n_programs, budget)
    assert found, task.name
    for index, runtime in found:  # every accepted one really solves the task
        assert reference_accepts(task, str(task.machine(index)), budget) == (True, runtime)
    accepted = dict(found)
    rng = np.random.default_rng(5)
    for index in [*range(64), *rng.integers(64, n_programs, size=300).tolist()]:  # and the rest does not
        ok, runtime = reference_accepts(task, str(task.machine(index)), budget)
        assert ok == (index in accepted), (index, str(task.machine(index)))
        # the resumable run agrees, fed in small slices as a dovetailer would
        run_ = task.start(index)
        while not run_.halted and run_.steps < budget:
            run_.advance(min(7, budget - run_.steps))
        assert task.accepts(run_) == ok
        if ok:
            assert run_.steps == runtime


def test_smallest_solutions():
    assert [str(unary_successor().machine(i)) for i, _ in accepted_programs(unary_successor(), 64, 50)] == [
        "1LZ1LA", "1LZ1RA", "1RZ1LA", "1RZ1RA"]
    assert accepted_programs(unary_add(), 64, 100) == []  # no 1-state adder
    task = unary_add()
    index = task.space.index("0LZ0RB_1LZ1RB")
    assert (index, reference_accepts(task, "0LZ0RB_1LZ1RB", 100)[1]) in accepted_programs(task, index + 1, 100)
    assert accepted_programs(write_ones(5, max_states=2), 64 + 20_736, 200) == []  # Σ(2) = 4
    with pytest.raises(InputError, match="max_index"):
        accepted_programs(task, -1, 10)


def test_vectorized_splits_batches_when_tapes_outgrow_the_memory_cap(monkeypatch):
    from searchprobe.search import machines

    monkeypatch.setattr(machines, "_TAPE_BYTES", 4096)  # force the split path
    rng = np.random.default_rng(6)
    texts = [random_machine(rng, 3, p_undefined=0.02, p_halt=0.01) for _ in range(200)] + ["1RA1RA", "1LA1LA"] * 20
    res = simulate_batch(texts, 1500)
    for i, text in enumerate(texts):
        ref = run(text, 1500)
        assert (bool(res.halted[i]), int(res.steps[i]), int(res.ones[i])) == (ref.halted, ref.steps, ref.ones)


@pytest.mark.slow
def test_busy_beaver_4_with_a_higher_cap_finds_no_new_halter():
    bb = busy_beaver(4, max_steps=2000)
    assert (bb.steps, bb.ones) == (107, 13)
    assert bb.n_undecided == busy_beaver(4).n_undecided


@pytest.mark.slow
def test_busy_beaver_3_by_brute_force_over_all_machines():
    # Independent of TNF: all 16^6 = 16,777,216 fully defined 3-state machines, 60 steps each.
    from searchprobe.search.machines import _simulate_internal
    from searchprobe.search.tm_tasks import _group_tables

    best_steps = best_ones = 0
    chunk = 1 << 20
    for start in range(0, TMSpace.group_size(3), chunk):
        nxt, write, move = _group_tables(3, np.arange(start, start + chunk, dtype=np.int64))
        out = _simulate_internal(nxt, write, move, 60)
        halted = out["row"] >= 3
        best_steps = max(best_steps, int(out["steps"][halted].max(initial=0)))
        best_ones = max(best_ones, int(out["ones"][halted].max(initial=0)))
    assert (best_steps, best_ones) == KNOWN_BUSY_BEAVER[3]
