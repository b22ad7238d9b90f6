"""Turing-machine steps per second: vectorized `simulate_batch` vs the plain per-machine loop `run`.

Both simulate the same seeded random 4-state machines (no halt transitions, so every machine runs
the whole budget and both sides count the same steps), parsed beforehand; the plain loop runs a
subset of them, one machine after another. The two are timed alternately, best of `--repeats`
each, in one process, so the ratio is measured side by side on the same (possibly noisy, shared)
machine. As a conservative second figure the plain loop's peak speed is measured on one long run
(the 5-state champion, `--long-steps` steps: no per-machine set-up cost), and the ratio against it
is reported too. Results are checked to agree exactly on the subset. Prints JSON.

    python experiments/benchmarks/tm_simulator.py [--machines 16384] [--max-steps 1000] [--bb4]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from searchprobe.search.machines import busy_beaver, parse_machine, run, simulate_batch

BB5 = "1RB1LC_1RC1RB_1RD0LE_1LA1LD_1RZ0LA"


def random_machines(count: int, n_states: int, seed: int) -> list[str]:
    """Fully defined machines with no halting transition (they run every step of the budget)."""
    rng = np.random.default_rng(seed)
    write = rng.integers(0, 2, size=(count, n_states, 2))
    move = rng.integers(0, 2, size=(count, n_states, 2))
    nxt = rng.integers(0, n_states, size=(count, n_states, 2))
    return [
        "_".join("".join(f"{write[i, s, r]}{'LR'[move[i, s, r]]}{chr(65 + nxt[i, s, r])}" for r in range(2)) for s in range(n_states))
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=16384, help="machines in the vectorized batch")
    parser.add_argument("--plain-machines", type=int, default=1000, help="machines run by the plain loop")
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--states", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--long-steps", type=int, default=2_000_000, help="steps of the plain loop's long run")
    parser.add_argument("--bb4", action="store_true", help="also time busy_beaver(4) (TNF enumeration)")
    args = parser.parse_args()

    machines = [parse_machine(m) for m in random_machines(args.machines, args.states, args.seed)]
    subset = machines[: args.plain_machines]
    plain_best = vector_best = long_best = float("inf")
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        long_run = run(BB5, args.long_steps)
        long_best = min(long_best, time.perf_counter() - t0)
        t0 = time.perf_counter()
        plain = [run(m, args.max_steps) for m in subset]
        plain_best = min(plain_best, time.perf_counter() - t0)
        t0 = time.perf_counter()
        batch = simulate_batch(machines, args.max_steps)
        vector_best = min(vector_best, time.perf_counter() - t0)
    plain_steps = sum(r.steps for r in plain)
    vector_steps = int(batch.steps.sum())
    n = len(subset)
    agree = (
        batch.halted[:n].tolist() == [r.halted for r in plain]
        and batch.steps[:n].tolist() == [r.steps for r in plain]
        and batch.ones[:n].tolist() == [r.ones for r in plain]
    )
    result = {
        "benchmark": "tm_simulator",
        "states": args.states,
        "max_steps": args.max_steps,
        "batch_size": args.machines,
        "plain_machines": n,
        "plain_steps_per_s": round(plain_steps / plain_best),
        "vectorized_steps_per_s": round(vector_steps / vector_best),
        "ratio": round((vector_steps / vector_best) / (plain_steps / plain_best), 2),
        "plain_long_run_steps_per_s": round(long_run.steps / long_best),
        "ratio_vs_long_run": round((vector_steps / vector_best) / (long_run.steps / long_best), 2),
        "agree": agree,
        "repeats": args.repeats,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    if args.bb4:
        t0 = time.perf_counter()
        bb = busy_beaver(4)
        result["busy_beaver_4"] = {"S": bb.steps, "Sigma": bb.ones, "max_steps": bb.max_steps,
                                   "undecided": bb.n_undecided, "seconds": round(time.perf_counter() - t0, 2)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
