"""Forwarding of priors over dovetailers, and the discounted loss evaluator (seed 002).

**Forwarding.** A dovetailer D(a, b) admits a programs and runs b steps of each admitted program
per round, so it returns the accepted program minimising ⌈n/a⌉ + ⌈t_n/b⌉ − 1: it *implements* the
inner prior a·runtime + b·2^DL of slope a/b. An *outer* prior of the same form, slope α/β, prices
each dovetailer by what it costs to run and to write down on a family of program-search tasks:

    cost(D(a, b) | α, β) = α · cells(a, b) + β · 2^(base_bits + bits(a, b))

where cells(a, b) is the exact number of (program, step) cells D(a, b) executes, averaged over
the family, base_bits is the description length that every dovetailer shares, and bits(a, b) =
log2 a + log2 b is what it costs to store the two integers (for a fraction in lowest terms this
is `priors.slope_bits`, log2(a/g) + log2(b/g)). The best dovetailer's slope a/b is the inner
prior that the outer prior α/β produces. That is a map from the grid of slopes p/q (p, q ∈ 1..A,
lowest terms) to itself; `forwarding_map` builds it and `ForwardingMap.analyse` iterates it from
every start and reports fixed points (priors that forward), cycles, their basins and the jumps.

Ties in cost (equal within 1e-12 relative) go to the dovetailer with fewer description bits, then
the smaller a, then the smaller b: the simplest dovetailer wins a tie.

A task is characterised by the halting times of the first N programs of its enumeration
(`inf` = never halts) and which of them are accepted (zero loss); the N programs are the whole
program space (as in `programs.TableTask`). `synthetic_family` makes a seeded family whose
solution sets trade description length against runtime, so the map is not trivial; `tm_family`
profiles real Turing-machine tasks (`tm_tasks`: write k ones, unary successor, unary addition).

What comes out (grid 16, base 8 bits): on the default synthetic family the map is a decreasing
step function — a speed-heavy outer prior picks a simplicity-leaning dovetailer (slope 1/8..1/10)
and a simplicity-heavy one picks the cheapest, 1/1 — so it has no fixed point but two 2-cycles
(1/8 ↔ 1/1 and 1/5 ↔ 1/4) and its image jumps 1.6 bits between neighbouring outer slopes 0.17
bits apart. On the TM family (≤ 2 states, whose solutions run ≤ 21 steps but sit at indices in
the thousands) every outer prior picks the fastest-admitting dovetailer, a fixed point at the
edge of the grid (16/1).

**Discounted loss evaluator.** A nested search of depth D: the search at level k = 1..D generates
n candidates (m steps each), evaluates each in the box (f + l: run it on the training set and
compute the loss), then runs the chosen program f*, which is the level-(k+1) search, and at the
bottom (k = D) the object-level program of runtime F. The box at nesting level k charges its work
at d^k (a multiplicative discount per level of the tree of box calls), so

    C(k) = n·(m + d^k·(f + l)) + C(k + 1),   C(D + 1) = F,

    share(d, D) = F / C(1) = F / (F + D·n·m + n·(f + l)·Σ_{k=1..D} d^k).

d = 1 is the undiscounted cost D·n(m + f + l) + F; d → 0 leaves F / (F + D·n·m): the generation
cost n·m that the box cannot discount (the seed's "nm + f*" objection).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from searchprobe.errors import DataError, InputError

__all__ = [
    "TaskFamily",
    "synthetic_family",
    "family_from_tables",
    "family_from_accepted",
    "tm_task_profile",
    "default_tm_tasks",
    "tm_family",
    "dovetail_cells",
    "family_cells",
    "slope_grid",
    "ForwardingMap",
    "ForwardingAnalysis",
    "Cycle",
    "forwarding_map",
    "plot_forwarding_map",
    "plot_trajectories",
    "DiscountModel",
    "DiscountTable",
    "nested_search_cost",
    "object_share",
    "discount_table",
    "plot_discount_table",
]


# --------------------------------------------------------------------------------------------
# Task families
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TaskFamily:
    """T program-search tasks over the same N-program enumeration, as dense arrays.

    runtimes: float64 (T, N) — halting time of program n+1 on task t (`inf` = never halts).
    accepted: bool (T, N) — whether that halt has zero loss on task t's training set.
    names: one name per task.
    name: the family's name (for reports).
    """

    runtimes: np.ndarray
    accepted: np.ndarray
    names: tuple[str, ...]
    name: str = "family"

    def __post_init__(self) -> None:
        if self.runtimes.ndim != 2 or self.runtimes.shape != self.accepted.shape:
            raise DataError(
                f"task family {self.name!r}: runtimes {self.runtimes.shape} and accepted "
                f"{self.accepted.shape} must be equal 2-D shapes (tasks, programs)"
            )
        if self.runtimes.shape[0] == 0 or self.runtimes.shape[1] == 0:
            raise DataError(f"task family {self.name!r} is empty (shape {self.runtimes.shape}); need ≥ 1 task and program")
        finite = self.runtimes[np.isfinite(self.runtimes)]
        if finite.size and (finite.min() < 1 or not np.all(finite == np.floor(finite))):
            raise DataError(f"task family {self.name!r}: runtimes must be positive integers or inf")
        solvable = (self.accepted & np.isfinite(self.runtimes)).any(axis=1)
        if not solvable.all():
            bad = self.names[int(np.flatnonzero(~solvable)[0])]
            raise DataError(
                f"task family {self.name!r}: task {bad!r} has no accepted halting program among the first "
                f"{self.num_programs} programs; raise the program count or drop the task"
            )

    @property
    def num_tasks(self) -> int:
        return self.runtimes.shape[0]

    @property
    def num_programs(self) -> int:
        return self.runtimes.shape[1]

    def solutions(self, task: int) -> list[tuple[int, int]]:
        """The accepted (0-based index, runtime) pairs of one task (as `dovetail.implied_winner` takes them)."""
        idx = np.flatnonzero(self.accepted[task] & np.isfinite(self.runtimes[task]))
        return [(int(i), int(self.runtimes[task, i])) for i in idx]

    def __repr__(self) -> str:
        n_sol = int(self.accepted.sum())
        return f"TaskFamily(name={self.name!r}, tasks={self.num_tasks}, programs={self.num_programs}, solutions={n_sol})"


def synthetic_family(
    num_tasks: int = 24,
    num_programs: int = 256,
    max_runtime: int = 4096,
    seed: int = 0,
    halt_fraction: float = 0.5,
    max_solutions: int = 3,
    edge: float = 0.25,
) -> TaskFamily:
    """A seeded family of program-search tasks whose solutions trade simplicity against speed.

    The program space is shared: a `halt_fraction` of the `num_programs` programs halt, after a
    log-uniform time in [1, max_runtime]; the others never halt. Each task has 1..max_solutions
    accepted programs. A solution at log-position u sits at index ⌊N^u⌋ and halts after about
    max_runtime^(1 − u) steps (log-normal noise, σ = 0.25 in the exponent): simple solutions are
    slow and fast ones are complex. u is uniform on [0, edge) ∪ (1 − edge, 1], so each task is a
    mix of "simple, slow" and "complex, fast" solutions (edge = 0.5: u uniform on [0, 1]). Which
    one a dovetailer finds first depends on its slope, so the family's cell count has several
    valleys over slopes: the clustery structure that makes the outer→inner map jump.
    """
    if num_tasks < 1 or num_programs < 2 or max_runtime < 1:
        raise InputError(
            f"synthetic_family: num_tasks={num_tasks}, num_programs={num_programs}, max_runtime={max_runtime}; "
            "need num_tasks ≥ 1, num_programs ≥ 2, max_runtime ≥ 1"
        )
    if not 0.0 <= halt_fraction <= 1.0 or max_solutions < 1 or not 0.0 < edge <= 0.5:
        raise InputError(
            f"synthetic_family: halt_fraction={halt_fraction}, max_solutions={max_solutions}, edge={edge}; "
            "need 0 ≤ halt_fraction ≤ 1, max_solutions ≥ 1 and 0 < edge ≤ 0.5"
        )
    rng = np.random.default_rng(seed)
    log_t = math.log(max_runtime)
    halts = rng.random(num_programs) < halt_fraction
    background = np.where(halts, np.ceil(np.exp(rng.random(num_programs) * log_t)), np.inf)
    runtimes = np.tile(background, (num_tasks, 1))
    accepted = np.zeros((num_tasks, num_programs), dtype=bool)
    for t in range(num_tasks):
        k = int(rng.integers(1, max_solutions + 1))
        u = edge * rng.random(k)
        u = np.where(rng.random(k) < 0.5, u, 1.0 - u)
        index = np.clip(np.floor(num_programs ** u).astype(np.int64), 1, num_programs) - 1
        exponent = np.clip(1.0 - u + 0.25 * rng.standard_normal(k), 0.0, 1.0)
        runtimes[t, index] = np.maximum(1.0, np.ceil(np.exp(exponent * log_t)))
        accepted[t, index] = True
    names = tuple(f"synthetic-{seed}-{t}" for t in range(num_tasks))
    return TaskFamily(runtimes, accepted, names, name=f"synthetic(seed={seed}, tasks={num_tasks}, N={num_programs}, T={max_runtime}, edge={edge:g})")


def family_from_tables(tasks: Sequence, names: Sequence[str] | None = None, name: str = "tables") -> TaskFamily:
    """A family from `programs.TableTask`s of equal length (all their programs are the space)."""
    if not tasks:
        raise DataError(f"task family {name!r}: no tasks given")
    lengths = {len(t.runtimes) for t in tasks}
    if len(lengths) != 1:
        raise DataError(f"task family {name!r}: TableTasks have different program counts {sorted(lengths)}")
    runtimes = np.array([np.asarray(t.runtimes, dtype=np.float64) for t in tasks])
    accepted = np.array([np.asarray(t.accepted, dtype=bool) for t in tasks])
    names = tuple(names) if names is not None else tuple(f"{name}-{i}" for i in range(len(tasks)))
    return TaskFamily(runtimes, accepted, names, name=name)


def family_from_accepted(
    solutions: Sequence[Sequence[tuple[int, int]]],
    num_programs: int,
    names: Sequence[str] | None = None,
    name: str = "accepted",
    other_runtimes: np.ndarray | None = None,
) -> TaskFamily:
    """A family from each task's accepted (0-based index, runtime) pairs.

    Programs that are not accepted run for ever unless `other_runtimes` (float (N,) or (T, N),
    `inf` = never halts) gives their halting times; with unknown halting times the cell counts
    are upper bounds.
    """
    T = len(solutions)
    if T == 0:
        raise DataError(f"task family {name!r}: no tasks given")
    runtimes = np.full((T, num_programs), np.inf)
    if other_runtimes is not None:
        runtimes[:] = np.broadcast_to(np.asarray(other_runtimes, dtype=np.float64), (T, num_programs))
    accepted = np.zeros((T, num_programs), dtype=bool)
    for t, pairs in enumerate(solutions):
        for index, runtime in pairs:
            if not 0 <= index < num_programs:
                raise DataError(f"task family {name!r}: task {t} solution index {index} is outside 0..{num_programs - 1}")
            runtimes[t, index] = runtime
            accepted[t, index] = True
    names = tuple(names) if names is not None else tuple(f"{name}-{i}" for i in range(T))
    return TaskFamily(runtimes, accepted, names, name=name)


def tm_task_profile(task, num_programs: int | None = None, max_steps: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Halting time (`inf` = not within `max_steps`) and acceptance of the first programs of a `tm_tasks.TMTask`.

    Runs longer than `max_steps` count as never halting (the task's step cap); see
    `tm_tasks.program_profile`.
    """
    from searchprobe.search.tm_tasks import program_profile

    if int(max_steps) != max_steps or max_steps < 1:
        raise InputError(f"max_steps={max_steps!r} is not allowed; the step cap must be a positive integer")
    total = task.num_programs()
    N = total if num_programs is None else int(num_programs)
    if not 1 <= N <= total:
        raise InputError(f"num_programs={num_programs!r} is not allowed for task {task.name!r}; use 1..{total}")
    return program_profile(task, N, int(max_steps))


def default_tm_tasks(max_states: int = 2) -> list:
    """The TM task family used by `tm_family`: write k ones (k = 1..4), unary successor, unary addition."""
    from searchprobe.search import tm_tasks

    return [tm_tasks.write_ones(k, max_states=max_states) for k in (1, 2, 3, 4)] + [
        tm_tasks.unary_successor(max_states=max_states),
        tm_tasks.unary_add(max_states=max_states),
    ]


def tm_family(tasks: Sequence | None = None, num_programs: int | None = None, max_steps: int = 64) -> TaskFamily:
    """A family of Turing-machine program-search tasks (`default_tm_tasks()` unless given).

    All tasks must share one program space (same `max_states`); the first `num_programs`
    machines (default: the whole space) are the program space. Tasks with no accepted machine
    among them are dropped (their names are listed in the family name).
    """
    tasks = list(tasks) if tasks is not None else default_tm_tasks()
    if not tasks:
        raise DataError("tm_family: no tasks given")
    if len({t.max_states for t in tasks}) != 1:
        raise DataError(f"tm_family: tasks have different max_states {sorted({t.max_states for t in tasks})}; use one space")
    rows, names, dropped = [], [], []
    for task in tasks:
        runtimes, accepted = tm_task_profile(task, num_programs, max_steps)
        if accepted.any():
            rows.append((runtimes, accepted))
            names.append(task.name)
        else:
            dropped.append(task.name)
    if not rows:
        raise DataError(f"tm_family: no task has an accepted machine among the first {num_programs} programs")
    label = f"tm(max_states={tasks[0].max_states}, N={len(rows[0][0])}, cap={max_steps}"
    label += f", dropped={','.join(dropped)})" if dropped else ")"
    return TaskFamily(np.array([r for r, _ in rows]), np.array([a for _, a in rows]), tuple(names), name=label)


# --------------------------------------------------------------------------------------------
# Exact cell counts, batched over dovetailers
# --------------------------------------------------------------------------------------------


def _check_slopes(a: np.ndarray, b: np.ndarray) -> None:
    for label, arr in (("a", a), ("b", b)):
        if arr.size and (arr.min() < 1):
            raise InputError(f"dovetailer {label}={int(arr.min())} is not allowed; {label} must be a positive integer")


def dovetail_cells(
    runtimes: np.ndarray, accepted: np.ndarray, a: np.ndarray | int, b: np.ndarray | int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact (winner, round, cells) of D(a, b) on one task, for many (a, b) at once.

    Program n (1-based) is admitted in round ⌈n/a⌉ and halts in round h_n = ⌈n/a⌉ + ⌈t_n/b⌉ − 1.
    The winner w is the lowest-index accepted program with the smallest h_n, R = h_w, and each
    program n ran min(t_n, b·max(0, R − ⌈n/a⌉ + [n ≤ w])) cells: whole rounds before R, plus round
    R for the programs run before the winner in index order (the same count as
    `dovetail.dovetail_outcome`, batched over dovetailers). Returns int64 arrays shaped like
    a and b broadcast: the winner's 0-based index, the round R and the cells.
    """
    a_arr = np.atleast_1d(np.asarray(a, dtype=np.int64))
    b_arr = np.atleast_1d(np.asarray(b, dtype=np.int64))
    a_arr, b_arr = np.broadcast_arrays(a_arr, b_arr)
    _check_slopes(a_arr, b_arr)
    t = np.asarray(runtimes, dtype=np.float64)
    ok = np.asarray(accepted, dtype=bool) & np.isfinite(t)
    if not ok.any():
        raise DataError("dovetail_cells: the task has no accepted halting program")
    n = np.arange(1, t.size + 1, dtype=np.int64)
    A, B = a_arr.reshape(-1, 1), b_arr.reshape(-1, 1)
    admit = -(-n // A)  # (C, N) ceil(n / a)
    sol = np.flatnonzero(ok)
    t_sol = t[sol].astype(np.int64)
    halt_round = admit[:, sol] + (-(-t_sol // B)) - 1  # (C, S)
    first = np.argmin(halt_round, axis=1)  # argmin returns the first: lowest index among ties
    rows = np.arange(len(A))
    R = halt_round[rows, first]
    w = sol[first] + 1
    extra = (n[None, :] <= w[:, None]).astype(np.int64)  # programs scanned in round R
    budget = B * np.maximum(0, R[:, None] - admit + extra)  # (C, N)
    cells = np.minimum(t[None, :], budget.astype(np.float64)).sum(axis=1)
    shape = np.broadcast(np.asarray(a), np.asarray(b)).shape
    return (w - 1).reshape(shape), R.reshape(shape), cells.astype(np.int64).reshape(shape)


def family_cells(family: TaskFamily, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact cells of every D(a[c], b[c]) on every task: int64 (C, T)."""
    a = np.asarray(a, dtype=np.int64).ravel()
    b = np.asarray(b, dtype=np.int64).ravel()
    out = np.empty((a.size, family.num_tasks), dtype=np.int64)
    for t in range(family.num_tasks):
        out[:, t] = dovetail_cells(family.runtimes[t], family.accepted[t], a, b)[2]
    return out


def slope_grid(max_value: int, reduced: bool = True) -> list[tuple[int, int]]:
    """Pairs (a, b) with a, b ∈ 1..max_value (only lowest terms if `reduced`), sorted by a/b then a."""
    if int(max_value) != max_value or max_value < 1:
        raise InputError(f"slope grid size {max_value!r} is not allowed; it must be a positive integer")
    pairs = [(a, b) for a in range(1, max_value + 1) for b in range(1, max_value + 1) if not reduced or math.gcd(a, b) == 1]
    return sorted(pairs, key=lambda p: (Fraction(*p), p[0]))


def _pair_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits to store the integers a and b: log2 a + log2 b (= slope_bits when in lowest terms)."""
    return np.log2(a) + np.log2(b)


# --------------------------------------------------------------------------------------------
# The outer → inner map and its dynamics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cycle:
    """An attracting cycle of the outer→inner map (a fixed point when it has one element).

    slopes: the cycle's slopes (a, b) in lowest terms, in map order, starting at the smallest.
    basin: every grid slope whose trajectory ends in this cycle (the cycle included).
    """

    slopes: tuple[tuple[int, int], ...]
    basin: tuple[tuple[int, int], ...]

    @property
    def is_fixed_point(self) -> bool:
        return len(self.slopes) == 1

    def to_dict(self) -> dict:
        return {
            "slopes": [f"{a}/{b}" for a, b in self.slopes],
            "log2_slopes": [math.log2(a / b) for a, b in self.slopes],
            "length": len(self.slopes),
            "basin_size": len(self.basin),
            "basin": [f"{a}/{b}" for a, b in self.basin],
        }

    def __repr__(self) -> str:
        path = " → ".join(f"{a}/{b}" for a, b in self.slopes)
        return f"Cycle({path}, basin_size={len(self.basin)})"


@dataclass(frozen=True)
class ForwardingAnalysis:
    """The dynamics of the outer→inner map on its grid.

    cycles: attracting cycles with their basins, largest basin first (fixed points are cycles of length 1).
    trajectories: for each start slope, the slopes visited until the first repeat (start included).
    transient_lengths: steps from each start until it enters its cycle.
    map_jumps: |log2 φ(s) − log2 s| for each grid slope s (how far one application moves).
    discontinuities: (s_i, s_{i+1}, |log2 φ(s_{i+1}) − log2 φ(s_i)|) for neighbouring grid slopes,
        largest first (the seed predicts the map jumps: its image moves far between neighbours).
    grid_spacing: the largest |log2 s_{i+1} − log2 s_i| between neighbouring grid slopes.
    """

    cycles: tuple[Cycle, ...]
    trajectories: dict[tuple[int, int], tuple[tuple[int, int], ...]]
    transient_lengths: dict[tuple[int, int], int]
    map_jumps: dict[tuple[int, int], float]
    discontinuities: tuple[tuple[tuple[int, int], tuple[int, int], float], ...]
    grid_spacing: float

    @property
    def fixed_points(self) -> tuple[tuple[int, int], ...]:
        return tuple(c.slopes[0] for c in self.cycles if c.is_fixed_point)

    @property
    def trajectory_jumps(self) -> list[float]:
        """|log2 of successive slopes| over every step of every trajectory."""
        out = []
        for traj in self.trajectories.values():
            out.extend(abs(math.log2((a2 * b1) / (b2 * a1))) for (a1, b1), (a2, b2) in zip(traj, traj[1:]))
        return out

    def to_dict(self, top: int = 10) -> dict:
        tj = self.trajectory_jumps
        return {
            "fixed_points": [f"{a}/{b}" for a, b in self.fixed_points],
            "cycles": [c.to_dict() for c in self.cycles],
            "max_transient": max(self.transient_lengths.values()),
            "trajectory_jump_max": max(tj) if tj else 0.0,
            "trajectory_jump_mean": float(np.mean(tj)) if tj else 0.0,
            "map_jump_max": max(self.map_jumps.values()),
            "grid_spacing_max": self.grid_spacing,
            "discontinuities": [
                {"from": f"{a}/{b}", "to": f"{c}/{d}", "image_jump_log2": j}
                for (a, b), (c, d), j in self.discontinuities[:top]
            ],
            "trajectories": {f"{a}/{b}": [f"{p}/{q}" for p, q in t] for (a, b), t in self.trajectories.items()},
        }

    def __repr__(self) -> str:
        fps = ", ".join(f"{a}/{b}" for a, b in self.fixed_points) or "none"
        jump = self.discontinuities[0][2] if self.discontinuities else 0.0
        return (f"ForwardingAnalysis(fixed_points=[{fps}], cycles={len(self.cycles)}, "
                f"largest_discontinuity={jump:.3g} bits, grid_spacing={self.grid_spacing:.3g})")


@dataclass(frozen=True, eq=False)
class ForwardingMap:
    """The outer→inner prior map over dovetailer slopes on one task family.

    outer: grid slopes α/β in lowest terms, increasing.
    choice: for each outer slope, the (a, b) of the cheapest dovetailer.
    inner: that dovetailer's slope a/b in lowest terms (the inner prior it implements).
    candidates: the dovetailers (a, b) considered; cells: their mean exact cells over the family;
    bits: their description bits (base_bits + log2 a + log2 b).
    grid, base_bits, family: how the map was made.
    """

    grid: int
    base_bits: float
    family: str
    candidates: tuple[tuple[int, int], ...]
    cells: np.ndarray
    bits: np.ndarray
    outer: tuple[tuple[int, int], ...]
    choice: tuple[tuple[int, int], ...]
    inner: tuple[tuple[int, int], ...]
    _image: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_image", dict(zip(self.outer, self.inner)))

    def __call__(self, slope: tuple[int, int]) -> tuple[int, int]:
        """φ(α/β): the inner slope (lowest terms) of the best dovetailer under outer slope α/β."""
        key = _reduce(slope)
        if key not in self._image:
            raise InputError(f"slope {slope[0]}/{slope[1]} is not on the grid 1..{self.grid}")
        return self._image[key]

    def cost(self, slope: tuple[int, int]) -> np.ndarray:
        """α·cells + β·2^bits of every candidate under outer slope α/β (β normalised to 1)."""
        alpha, beta = slope
        return (alpha / beta) * self.cells + np.exp2(self.bits)

    def iterate(self, start: tuple[int, int], steps: int) -> list[tuple[int, int]]:
        """start, φ(start), φ(φ(start)), … (steps + 1 slopes)."""
        out = [_reduce(start)]
        for _ in range(steps):
            out.append(self(out[-1]))
        return out

    def analyse(self) -> ForwardingAnalysis:
        """Iterate from every grid slope: cycles, basins, transients, jumps, discontinuities."""
        trajectories, transient, cycle_of = {}, {}, {}
        for start in self.outer:
            seen: dict[tuple[int, int], int] = {}
            path = []
            s = start
            while s not in seen:
                seen[s] = len(path)
                path.append(s)
                s = self._image[s]
            loop = path[seen[s]:]
            k = loop.index(min(loop, key=lambda p: (Fraction(*p), p)))
            cycle_of[start] = tuple(loop[k:] + loop[:k])
            trajectories[start] = tuple(path)
            transient[start] = seen[s]
        basins: dict[tuple, list] = {}
        for start, cyc in cycle_of.items():
            basins.setdefault(cyc, []).append(start)
        cycles = tuple(sorted((Cycle(c, tuple(b)) for c, b in basins.items()),
                              key=lambda c: (-len(c.basin), Fraction(*c.slopes[0]))))
        logs = {s: math.log2(s[0] / s[1]) for s in self.outer}
        map_jumps = {s: abs(logs[self._image[s]] - logs[s]) for s in self.outer}
        disc = [(s, s2, abs(logs[self._image[s2]] - logs[self._image[s]])) for s, s2 in zip(self.outer, self.outer[1:])]
        disc.sort(key=lambda x: (-x[2], Fraction(*x[0])))
        spacing = max((logs[s2] - logs[s] for s, s2 in zip(self.outer, self.outer[1:])), default=0.0)
        return ForwardingAnalysis(cycles, trajectories, transient, map_jumps, tuple(disc), spacing)

    def to_dict(self) -> dict:
        where = {c: k for k, c in enumerate(self.candidates)}
        return {
            "grid": self.grid,
            "base_bits": self.base_bits,
            "family": self.family,
            "map": [
                {"outer": f"{o[0]}/{o[1]}", "dovetailer": f"{c[0]}/{c[1]}", "inner": f"{i[0]}/{i[1]}",
                 "outer_log2": math.log2(o[0] / o[1]), "inner_log2": math.log2(i[0] / i[1]),
                 "cells": float(self.cells[where[c]]), "bits": float(self.bits[where[c]])}
                for o, c, i in zip(self.outer, self.choice, self.inner)
            ],
        }

    def __repr__(self) -> str:
        distinct = len(set(self.inner))
        return (f"ForwardingMap(grid={self.grid}, base_bits={self.base_bits}, family={self.family!r}, "
                f"outer_slopes={len(self.outer)}, distinct_inner={distinct})")


def _reduce(slope: tuple[int, int]) -> tuple[int, int]:
    a, b = int(slope[0]), int(slope[1])
    if a < 1 or b < 1:
        raise InputError(f"slope {a}/{b} is not allowed; numerator and denominator must be positive integers")
    g = math.gcd(a, b)
    return a // g, b // g


def forwarding_map(
    family: TaskFamily,
    grid: int = 16,
    base_bits: float = 8.0,
    candidates: Literal["reduced", "all"] = "reduced",
) -> ForwardingMap:
    """Build φ: outer slope α/β ↦ slope of argmin_{D(a,b)} α·cells(a,b) + β·2^(base_bits + bits(a,b)).

    Outer slopes and inner slopes both range over fractions p/q, p, q ∈ 1..grid, in lowest terms.
    `candidates="all"` also offers unreduced dovetailers such as D(2, 2) (same slope as D(1, 1),
    coarser rounds, log2 4 = 2 more bits). Ties: fewer bits, then smaller a, then smaller b.
    """
    if candidates not in ("reduced", "all"):
        raise InputError(f"candidates={candidates!r} is not allowed; use 'reduced' or 'all'")
    if not math.isfinite(base_bits) or base_bits < 0:
        raise InputError(f"base_bits={base_bits!r} is not allowed; it must be a finite number ≥ 0")
    outer = slope_grid(grid, reduced=True)
    cand = slope_grid(grid, reduced=candidates == "reduced")
    ca = np.array([p[0] for p in cand], dtype=np.int64)
    cb = np.array([p[1] for p in cand], dtype=np.int64)
    cells = family_cells(family, ca, cb).mean(axis=1)
    bits = base_bits + _pair_bits(ca, cb)
    # Tie-break order: bits, then a, then b (stable among candidates that tie in cost).
    order = np.lexsort((cb, ca, bits))
    ratio = np.array([o[0] / o[1] for o in outer])
    cost = ratio[:, None] * cells[None, order] + np.exp2(bits)[None, order]  # (outer, candidates)
    best = cost.min(axis=1, keepdims=True)
    tied = cost <= best * (1 + 1e-12)
    pick = order[np.argmax(tied, axis=1)]
    choice = tuple(cand[i] for i in pick)
    inner = tuple(_reduce(c) for c in choice)
    return ForwardingMap(grid, float(base_bits), family.name, tuple(cand), cells, bits, tuple(outer), choice, inner)


def plot_forwarding_map(fmap: ForwardingMap, out_png: str | Path, analysis: ForwardingAnalysis | None = None) -> Path:
    """Outer log2 slope (x) against inner log2 slope (y), with the diagonal and the fixed points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from searchprobe.io import atomic_write_bytes

    analysis = analysis or fmap.analyse()
    x = np.array([math.log2(a / b) for a, b in fmap.outer])
    y = np.array([math.log2(a / b) for a, b in fmap.inner])
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    lim = math.log2(fmap.grid) + 0.3
    ax.plot([-lim, lim], [-lim, lim], color="0.7", lw=1, label="diagonal (forwarding)")
    ax.step(x, y, where="mid", color="C0", lw=0.8, alpha=0.6)
    ax.scatter(x, y, s=12, color="C0", label="φ(outer) = inner slope of best dovetailer")
    fps = analysis.fixed_points
    if fps:
        fx = [math.log2(a / b) for a, b in fps]
        ax.scatter(fx, fx, s=80, facecolors="none", edgecolors="C3", lw=1.5, label="fixed points")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_xlabel("outer prior: log2(α/β)  (α·runtime + β·2^DL)")
    ax.set_ylabel("inner prior: log2(a/b) of the chosen dovetailer")
    ax.set_title(f"outer→inner prior map, grid 1..{fmap.grid}, base {fmap.base_bits:g} bits", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return _save(fig, out_png, atomic_write_bytes)


def plot_trajectories(fmap: ForwardingMap, out_png: str | Path, analysis: ForwardingAnalysis | None = None) -> Path:
    """log2 slope against iteration for every start, coloured by the cycle it ends in."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from searchprobe.io import atomic_write_bytes

    analysis = analysis or fmap.analyse()
    colour = {}
    for i, cyc in enumerate(analysis.cycles):
        for s in cyc.basin:
            colour[s] = f"C{i % 10}"
    fig, ax = plt.subplots(figsize=(7, 4.8))
    for start, traj in analysis.trajectories.items():
        closed = list(traj) + [fmap(traj[-1])]
        ax.plot(range(len(closed)), [math.log2(a / b) for a, b in closed], color=colour[start], lw=0.7, alpha=0.5, marker=".", ms=3)
    for i, cyc in enumerate(analysis.cycles[:10]):
        ax.plot([], [], color=f"C{i}", label=f"{' → '.join(f'{a}/{b}' for a, b in cyc.slopes)} (basin {len(cyc.basin)})")
    ax.set_xlabel("iteration")
    ax.set_ylabel("log2 slope")
    ax.set_title("iterating the outer→inner map from every grid slope", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return _save(fig, out_png, atomic_write_bytes)


def _save(fig, out_png: str | Path, write) -> Path:
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return write(out_png, buf.getvalue())


# --------------------------------------------------------------------------------------------
# Discounted loss evaluator
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiscountModel:
    """Per-level costs of a nested search (the seed's r = n(m + f + l) + f*).

    n: candidates generated per level; m: cost to generate one; f: cost to run one on the
    training set; l: cost to compute its loss; f_star: runtime of the object-level program.
    """

    n: float = 100.0
    m: float = 1.0
    f: float = 10.0
    l: float = 1.0
    f_star: float = 10.0

    def __post_init__(self) -> None:
        for name in ("n", "m", "f", "l", "f_star"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise InputError(f"discount model {name}={v!r} is not allowed; it must be a finite number ≥ 0")
        if self.f_star <= 0:
            raise InputError(f"discount model f_star={self.f_star!r} is not allowed; the object-level runtime must be > 0")


def _check_discount(discount: float, depth: int) -> None:
    if not (isinstance(discount, (int, float)) and 0.0 <= discount <= 1.0):
        raise InputError(f"discount {discount!r} is not allowed; it must be a number in [0, 1]")
    if int(depth) != depth or depth < 0:
        raise InputError(f"nesting depth {depth!r} is not allowed; it must be an integer ≥ 0")


def nested_search_cost(model: DiscountModel, discount: float, depth: int) -> float:
    """C(1) = F + depth·n·m + n·(f + l)·Σ_{k=1..depth} d^k (closed form; depth 0 is just F)."""
    _check_discount(discount, depth)
    d = float(discount)
    geometric = float(depth) if d == 1.0 else d * (1.0 - d**depth) / (1.0 - d)
    return model.f_star + depth * model.n * model.m + model.n * (model.f + model.l) * geometric


def object_share(model: DiscountModel, discount: float, depth: int) -> float:
    """Share of the object-level runtime f* in the total cost of a depth-`depth` nested search."""
    return model.f_star / nested_search_cost(model, discount, depth)


@dataclass(frozen=True)
class DiscountTable:
    """Object-level share f*/C(1) for each nesting depth (rows, 1..D) and discount (columns).

    level_share[i][j] is C(D+1)/C(D) at the deepest level: the share of the chosen program in the
    cost of the search that chose it, which the box is meant to push towards 1.
    """

    model: DiscountModel
    depths: tuple[int, ...]
    discounts: tuple[float, ...]
    share: np.ndarray
    total_cost: np.ndarray
    level_share: np.ndarray

    def to_dict(self) -> dict:
        return {
            "model": {k: getattr(self.model, k) for k in ("n", "m", "f", "l", "f_star")},
            "depths": list(self.depths),
            "discounts": list(self.discounts),
            "share": self.share.tolist(),
            "total_cost": self.total_cost.tolist(),
            "level_share": self.level_share.tolist(),
            "limit_d0_share": [self.model.f_star / (self.model.f_star + k * self.model.n * self.model.m) for k in self.depths],
        }

    def __repr__(self) -> str:
        return f"DiscountTable(depths=1..{max(self.depths)}, discounts={list(self.discounts)}, model={self.model})"


def discount_table(model: DiscountModel, discounts: Sequence[float], max_depth: int) -> DiscountTable:
    """The object-level share for depths 1..max_depth and each discount."""
    if int(max_depth) != max_depth or max_depth < 1:
        raise InputError(f"depth {max_depth!r} is not allowed; it must be an integer ≥ 1")
    if len(discounts) == 0:
        raise InputError("no discounts given; give at least one number in [0, 1]")
    depths = tuple(range(1, int(max_depth) + 1))
    total = np.array([[nested_search_cost(model, d, k) for d in discounts] for k in depths])
    share = model.f_star / total
    # C(k+1)/C(k) at the deepest level k = D: f* is F, the level-D search costs n(m + d^D(f+l)) + F.
    level = np.array([[model.f_star / (model.f_star + model.n * (model.m + d**k * (model.f + model.l))) for d in discounts]
                      for k in depths])
    return DiscountTable(model, depths, tuple(float(d) for d in discounts), share, total, level)


def plot_discount_table(table: DiscountTable, out_png: str | Path) -> Path:
    """Object-level share against nesting depth, one line per discount, with the d → 0 limit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from searchprobe.io import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for j, d in enumerate(table.discounts):
        ax.plot(table.depths, table.share[:, j], marker="o", ms=3, label=f"d = {d:g}")
    m = table.model
    ax.plot(table.depths, [m.f_star / (m.f_star + k * m.n * m.m) for k in table.depths], "k--", lw=1, label="d → 0 limit")
    ax.set_yscale("log")
    ax.set_xlabel("nesting depth D")
    ax.set_ylabel("share of object-level runtime f* in total cost")
    ax.set_title(f"discounted loss evaluator (n={m.n:g}, m={m.m:g}, f={m.f:g}, l={m.l:g}, f*={m.f_star:g})", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out_png, atomic_write_bytes)
