"""Binary lambda calculus (counts, code, reduction) and Levin / FAST search with its bounds."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from searchprobe.errors import InputError
from searchprobe.search.dovetail import Dovetailer
from searchprobe.search.lambda_calculus import (
    LambdaRun,
    LambdaTask,
    app,
    church,
    church_value,
    closed_terms,
    count_closed_terms,
    decode,
    encode,
    is_closed_code,
    lam,
    reduce_step,
    size,
    to_str,
)
from searchprobe.search.levin import fast_budget, halting_phase, levin_outcome, levin_search
from searchprobe.search.programs import TableTask
from searchprobe.search.trace import Event

#: OEIS A114852, offset 1: number of closed lambda terms of size n (binary lambda calculus bits).
A114852 = [0, 0, 0, 1, 0, 1, 1, 2, 1, 6, 5, 13, 14, 37, 44, 101, 134, 298, 431, 883, 1361, 2736, 4405]


def brute_force_count(n: int) -> int:
    """Closed terms of n bits by testing every bit string of length n."""
    return sum(is_closed_code(format(x, f"0{n}b")) for x in range(2**n))


def test_counts_match_a114852_by_recurrence_and_enumeration():
    assert [count_closed_terms(n) for n in range(1, 24)] == A114852
    assert [sum(1 for _ in closed_terms(n)) for n in range(1, 24)] == A114852


def test_counts_match_a114852_by_brute_force_over_bit_strings():
    assert [brute_force_count(n) for n in range(1, 17)] == A114852[:16]


@pytest.mark.slow
def test_counts_match_a114852_by_brute_force_up_to_20_bits():
    assert [brute_force_count(n) for n in range(17, 21)] == A114852[16:20]


def test_enumeration_is_in_code_order_and_round_trips():
    for n in range(1, 15):
        codes = [encode(t) for t in closed_terms(n)]
        assert codes == sorted(codes) and len(set(codes)) == len(codes)
        assert all(len(c) == n and size(decode(c)) == n for c in codes)
        assert [decode(c) for c in codes] == list(closed_terms(n))
    assert encode(church(2)) == "0000011100111010"
    assert to_str(church(2)) == "λλ1 (1 0)"


@pytest.mark.parametrize("bits, fragment", [("0", "ends early"), ("001", "ends early"), ("0012", "0 and 1"),
                                            ("10", "free variable"), ("001000", "trailing"), ("0011", "closing 0")])
def test_decode_rejects_malformed_codes(bits, fragment):
    with pytest.raises(InputError, match=fragment) as info:
        decode(bits)
    assert repr(bits) in str(info.value) and "\n" not in str(info.value)


def _normal_form(term, max_steps=10_000):
    run = LambdaRun(0, term)
    run.advance(max_steps)
    assert run.halted and not run.overflowed
    return run.term, run.steps


PLUS = lam(lam(lam(lam(app(app(3, 1), app(app(2, 1), 0))))))
TIMES = lam(lam(lam(app(2, app(1, 0)))))


@pytest.mark.parametrize("m, n", [(0, 0), (1, 2), (2, 3), (3, 3), (4, 1)])
def test_church_arithmetic_reduces_to_the_right_numerals(m, n):
    assert church_value(_normal_form(app(app(PLUS, church(m)), church(n)))[0]) == m + n
    assert church_value(_normal_form(app(app(TIMES, church(m)), church(n)))[0]) == m * n
    if m:
        assert church_value(_normal_form(app(church(n), church(m)))[0]) == m**n  # n m = m^n


def test_normal_order_steps_and_the_halting_step():
    identity = lam(0)
    assert _normal_form(identity) == (identity, 1)  # already normal: only the halting step
    assert _normal_form(app(identity, identity)) == (identity, 2)
    omega = app(lam(app(0, 0)), lam(app(0, 0)))
    assert reduce_step(omega) == omega
    k = lam(lam(1))
    assert _normal_form(app(app(k, identity), omega)) == (identity, 3)  # normal order skips Ω
    run = LambdaRun(0, app(lam(app(app(0, 0), 0)), lam(app(app(0, 0), 0))), size_cap=64)
    assert run.advance(1000) < 1000 and run.overflowed and run.normal_form is None


def test_levin_bounds_hold_for_every_halting_blc_program():
    task = LambdaTask(lambda nf: False)
    result = levin_search(task, max_phase=18)
    assert result.winner is None and result.phase == 18
    halts = result.trace.select(Event.HALT)
    assert len(halts) > 400
    for bits, t, phase, work in zip(halts["h"], halts["g"], halts["phase"], halts["work"]):
        assert phase == bits + math.ceil(math.log2(t))
        assert work <= 2 * t * 2**bits <= 4 * t * 2**bits
    assert result.trace.select(Event.RUN)["steps"].sum() == result.work


def _blc_table(task, max_phase):
    """Independent runtimes: run every program of <= max_phase bits as far as FAST ever could."""
    bits, runtimes, accepted = [], [], []
    i = 0
    while True:
        b = int(task.description_bits(i))
        if b > max_phase:
            break
        run = LambdaRun(i, task.program(i), task.size_cap)
        run.advance(fast_budget(max_phase, b))
        bits.append(b)
        runtimes.append(run.steps if run.halted else math.inf)
        accepted.append(task.accepts(run))
        i += 1
    return bits, runtimes, accepted


def test_levin_winner_on_blc_matches_brute_force():
    task = LambdaTask(lambda nf: size(nf) >= 24)  # a normal form longer than short programs
    result = levin_search(task, max_phase=23)
    bits, runtimes, accepted = _blc_table(task, 23)
    closed = levin_outcome(bits, runtimes, accepted)
    assert (result.winner, result.phase, result.work, result.runtime, result.bits) == (
        closed.winner, closed.phase, closed.work, closed.runtime, closed.bits)
    assert result.runtime > 1 and result.bits < 24  # it found a program that computes its answer
    assert result.phase == halting_phase(result.bits, result.runtime)
    assert result.work <= 4 * result.runtime * 2**result.bits


def test_levin_finds_church_two_at_phase_sixteen():
    task = LambdaTask(lambda nf: church_value(nf) == 2)
    result = levin_search(task)
    assert task.program(result.winner) == church(2) and result.phase == 16 and result.runtime == 1


def _prefix_free_lengths(draw_counts):
    """Nondecreasing code lengths with Kraft sum <= 1 from a list of requested counts per length."""
    lengths, kraft = [], Fraction(0)
    for length, count in enumerate(draw_counts, start=1):
        for _ in range(count):
            if kraft + Fraction(1, 2**length) > 1:
                break
            kraft += Fraction(1, 2**length)
            lengths.append(length)
    return lengths


@settings(max_examples=120, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=7), st.data())
def test_levin_on_synthetic_spaces_matches_closed_form_and_bounds(counts, data):
    lengths = _prefix_free_lengths(counts)
    if not lengths:
        return
    n = len(lengths)
    runtimes = data.draw(st.lists(st.one_of(st.integers(1, 300), st.just(math.inf)), min_size=n, max_size=n))
    accepted = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    forced = data.draw(st.integers(0, n - 1))
    runtimes[forced], accepted[forced] = data.draw(st.integers(1, 300)), True
    result = levin_search(TableTask(runtimes, accepted, bits=lengths))
    closed = levin_outcome(lengths, runtimes, accepted)
    assert (result.winner, result.phase, result.work) == (closed.winner, closed.phase, closed.work)
    t, p = result.runtime, result.bits
    assert result.phase == p + math.ceil(math.log2(t)) if t > 1 else result.phase == p
    assert result.work <= 4 * t * 2**p
    assert result.trace.select(Event.RUN)["steps"].sum() == result.work


def test_levin_and_dovetailer_run_the_same_task_protocol():
    task = LambdaTask(lambda nf: nf == lam(0), max_bits=12)
    levin = levin_search(task)
    dove = Dovetailer(1, 1).run(task)
    assert task.program(levin.winner) == lam(0)  # λ0 itself: 4 bits, halts in 1 step
    assert dove.winner == levin.winner == 0


def test_bad_input():
    with pytest.raises(InputError, match="whole positive bit lengths"):
        levin_search(TableTask([1, 2], [True, True]))  # default bits log2(i + 2) are fractional
    with pytest.raises(InputError, match="Kraft"):
        levin_search(TableTask([5, 5, 5], [False, False, True], bits=[1, 1, 1]))
    with pytest.raises(InputError, match="nondecreasing"):
        levin_search(TableTask([5, 5], [False, True], bits=[2, 1]))
    with pytest.raises(InputError, match="max_phase=0"):
        levin_search(LambdaTask(lambda nf: True), max_phase=0)
    with pytest.raises(InputError, match="no programs"):
        levin_search(TableTask([], [], bits=[]))
    with pytest.raises(InputError, match="size_cap"):
        LambdaTask(lambda nf: True, size_cap=5000)
    with pytest.raises(InputError, match="runtime=0"):
        halting_phase(3, 0)
    assert fast_budget(5, 7) == 0 and fast_budget(7, 5) == 4
