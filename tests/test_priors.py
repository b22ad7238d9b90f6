"""Prior costs: slope bits against a brute-force fraction reduction, mixed costs, the plots."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from searchprobe.errors import InputError
from searchprobe.search.dovetail import implied_winner
from searchprobe.search.lambda_calculus import LambdaTask, church
from searchprobe.search.priors import (
    description_length,
    mixed_cost,
    plot_slope_complexity,
    runtime,
    slope_bits,
    slope_bits_grid,
)
from searchprobe.search.programs import TableTask


def reduced_by_loop(a: int, b: int) -> tuple[int, int]:
    """Lowest terms by dividing out every common factor, smallest first."""
    d = 2
    while d <= min(a, b):
        if a % d == 0 and b % d == 0:
            a, b = a // d, b // d
        else:
            d += 1
    return a, b


def test_slope_bits_known_values():
    assert slope_bits(2, 2) == 0
    assert slope_bits(1, 1) == 0
    assert slope_bits(3, 4) == pytest.approx(math.log2(12))
    assert slope_bits(6, 8) == pytest.approx(math.log2(12))
    assert slope_bits(1, 64) == 6
    assert slope_bits(np.int64(10), 4) == pytest.approx(math.log2(10))


def test_slope_bits_against_brute_force_reduction():
    grid = slope_bits_grid(100)
    for a in range(1, 101):
        for b in range(1, 101):
            p, q = reduced_by_loop(a, b)
            fraction = Fraction(a, b)
            assert (p, q) == (fraction.numerator, fraction.denominator)
            expected = math.log2(p) + math.log2(q)
            assert slope_bits(a, b) == pytest.approx(expected, abs=1e-12)
            assert grid[a - 1, b - 1] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("a, b", [(0, 1), (1, 0), (-3, 2), (1.5, 2), (True, 2), (2, "3")])
def test_slope_bits_bad_input(a, b):
    with pytest.raises(InputError, match=r"^[ab]=") as info:
        slope_bits(a, b)
    assert "\n" not in str(info.value)


def test_mixed_cost_and_its_link_to_the_dovetailer():
    assert mixed_cost(10, 3, 2, 5) == 2 * 10 + 5 * 8
    costs = mixed_cost(np.array([1, 2, 3]), np.array([0, 1, 2]), 1, 1)
    assert list(costs) == [2.0, 4.0, 7.0]
    with pytest.raises(InputError, match="positive"):
        mixed_cost(1, 1, 0, 1)
    # n = 2^DL programs: a slow simple program against a fast complex one, decided by a·t + b·n
    simple, complex_ = (2**3, 400), (2**9, 10)  # (n, t)
    for a, b in [(1, 1), (1, 50), (20, 1)]:
        costs = [mixed_cost(t, math.log2(n), a, b) for n, t in (simple, complex_)]
        index, _ = implied_winner([(simple[0] - 1, simple[1]), (complex_[0] - 1, complex_[1])], a, b)
        assert index == (simple[0] - 1 if costs[0] < costs[1] else complex_[0] - 1)


def test_description_length_and_runtime():
    task = TableTask([3, 7, math.inf], [True, False, True], bits=[2, 3, 4])
    assert description_length(task, 1) == 3.0
    assert runtime(task, 1, 100) == 7 and runtime(task, 2, 100) is None and runtime(task, 1, 6) is None
    blc = LambdaTask(lambda nf: nf == church(2))
    assert description_length(blc, 0) == 4.0  # λ0
    with pytest.raises(InputError, match="out of range"):
        description_length(task, 3)
    with pytest.raises(InputError, match="max_steps=0"):
        runtime(task, 0, 0)


def test_plot_slope_complexity_writes_a_png_atomically(tmp_path):
    out = tmp_path / "plots" / "slope.png"
    assert plot_slope_complexity(out, max_value=30) == out
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > height > 300
    assert [p.name for p in out.parent.iterdir()] == ["slope.png"]  # no temp file left behind
    with pytest.raises(InputError, match="max_value"):
        plot_slope_complexity(tmp_path / "x.png", max_value=0)
    assert not (tmp_path / "x.png").exists()
