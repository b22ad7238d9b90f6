"""A toy third-party task for the task-protocol tests: walk along a line of cells to the goal cell.

``<bos> noise c_r from c_s to c_g <sep> c_s c_{s±1} … c_g <eos>``: the answer is every cell from
the start to the goal. It lives outside the package, as a task of another package would, and is
registered through an entry point; no generic searchprobe module knows it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from searchprobe.tasks.base import LabelSet, LabelSpec, Task

SPECIALS = ["<pad>", "<bos>", "<sep>", "<eos>", "noise", "from", "to"]
ROLES = ["pad", "bos", "noise", "noise_cell", "from", "start", "to", "goal", "sep", "eos"]
STEP_BASE = 16  #: role code of answer step k is STEP_BASE + k
PROMPT = 8  #: tokens before the answer


def vocabulary(length: int) -> list[str]:
    return SPECIALS + [f"c{i}" for i in range(length)]


def encode(noise: int, start: int, goal: int) -> tuple[list[int], list[int]]:
    step = 1 if goal > start else -1
    path = list(range(start, goal + step, step))
    c = len(SPECIALS)
    tokens = [1, 4, c + noise, 5, c + start, 6, c + goal, 2] + [c + x for x in path] + [3]
    roles = list(range(1, 9)) + [STEP_BASE + k for k in range(len(path))] + [9]
    return tokens, roles


@dataclass(frozen=True)
class Walks:
    """Per-example ground truth of a batch of walks (the task's payload in counterfactual pairs)."""

    start: np.ndarray
    goal: np.ndarray

    def take(self, index) -> "Walks":
        return Walks(self.start[index], self.goal[index])


class LineWalk(Task):
    """Walk along a line to the goal cell (one cell per token)."""

    pad_token = "<pad>"
    stop_token = "<eos>"
    solution_name = "step"
    primary_metrics = ("exact", "reaches_goal")
    pair_kinds = ("target",)
    rollout_columns = ("start", "goal")

    def __init__(self, name: str):
        self.name = name

    def generate(self, task_file, *, out=None, n=None, seed=None, shard=None, overwrite=False, workers=1,
                 progress=False) -> Path:
        from searchprobe.tasks.store import DatasetWriter

        cfg = tomllib.loads(Path(task_file).read_text())
        length, n = int(cfg.get("length", 10)), int(n or cfg.get("n", 400))
        rng = np.random.default_rng(cfg.get("seed", 0) if seed is None else seed)
        noise, start, goal = (rng.integers(0, length, n) for _ in range(3))
        keep = start != goal
        rows = [encode(*triple) for triple in zip(noise[keep], start[keep], goal[keep])]
        columns = {"tokens": [t for t, _ in rows], "roles": [r for _, r in rows], "solution_start": [PROMPT] * len(rows),
                   "start": start[keep].tolist(), "goal": goal[keep].tolist()}
        keys = (noise[keep] * length + start[keep]) * length + goal[keep]
        with DatasetWriter(out, splits={"train": 0.7, "validation": 0.1, "test": 0.2}, overwrite=overwrite) as writer:
            writer.add(columns, keys.astype(np.uint64))
            writer.finish(config={"task": self.name, "name": Path(task_file).stem, "config": {"length": length, "n": n}},
                          vocab=vocabulary(length))
        return Path(out)

    def role_code(self, name: str) -> int:
        if name.startswith("step:"):
            return STEP_BASE + int(name[5:])
        return ROLES.index(name)

    def role_name(self, code: int) -> str:
        return f"step:{code - STEP_BASE}" if code >= STEP_BASE else ROLES[code]

    def default_roles(self, dataset_config):
        return ("start", "goal", "sep", "step:0", "step:1")

    def step_of_role(self, role: str):
        return int(role[5:]) if role.startswith("step:") else None

    def is_solution_role(self, codes):
        return np.asarray(codes) >= STEP_BASE

    def rollout_slack(self, dataset_config) -> int:
        return int(dataset_config["config"]["length"])

    def _cells(self, generated, vocab):
        out = []
        for gen in generated:
            words = [vocab[int(i)] for i in gen]
            out.append([int(w[1:]) for w in words if w.startswith("c")])
        return out

    def score_rollouts(self, rows, prompts, generated, vocab) -> dict[str, float]:
        walks = self._cells(generated, vocab)
        truth = [encode(0, int(s), int(g))[0][PROMPT:-1] for s, g in zip(rows["start"], rows["goal"])]
        c = len(SPECIALS)
        exact = [w == [t - c for t in true] for w, true in zip(walks, truth)]
        reach = [_reaches(w, int(s), int(g)) for w, s, g in zip(walks, rows["start"], rows["goal"])]
        return {"n": len(walks), "exact": float(np.mean(exact)), "reaches_goal": float(np.mean(reach))}

    def label_set(self, stored, split, n, roles, *, k_ahead: int = 4) -> LabelSet:
        length = int(stored.config["config"]["length"])
        specs = [LabelSpec("goal_cell", "target", "multiclass", "goal_cell", n_classes=length),
                 LabelSpec("start_cell", "target", "multiclass", "start_cell", n_classes=length),
                 LabelSpec("next_cell", "candidate", "multiclass", "next_cell", per_step=True, n_classes=length)]

        def arrays(rows):
            start, goal = np.asarray(rows["start"]), np.asarray(rows["goal"])
            steps = np.arange(length)[None, :]
            direction = np.sign(goal - start)[:, None]
            nxt = start[:, None] + direction * (steps + 1)
            nxt = np.where(steps < np.abs(goal - start)[:, None], nxt, -1)
            return {"goal_cell": goal.astype(np.int16), "start_cell": start.astype(np.int16), "next_cell": nxt.astype(np.int16)}

        return LabelSet(specs, ("goal_cell", "start_cell", "next_cell"), arrays)

    # --- patching: "target" pairs move the goal; retargeting reads the goal token -------------------
    goal_columns = ("goal",)

    def make_pairs(self, stored, tokenizer, *, split, kind, n, seed):
        from searchprobe.intervene.pairs import Pairs

        self.check_pair_kind(kind)
        length = int(stored.config["config"]["length"])
        rows = stored.splits[split].select(range(min(2 * n, len(stored.splits[split]))))[:]
        rng = np.random.default_rng(seed)
        clean, corrupt, roles, answers, steps, index, goals = [], [], [], [], [], [], []
        for i, (tokens, start, goal) in enumerate(zip(rows["tokens"], rows["start"], rows["goal"])):
            other = int(rng.choice([g for g in range(length) if g not in (start, goal)]))
            x_tokens, x_roles = encode(tokens[2] - len(SPECIALS), start, other)
            c_roles = encode(tokens[2] - len(SPECIALS), start, goal)[1]
            k = next(j for j in range(PROMPT, min(len(tokens), len(x_tokens))) if tokens[j] != x_tokens[j])
            clean.append(tokens[:k])
            corrupt.append(x_tokens[:k])
            roles.append(c_roles[:k])
            answers.append((tokens[k], x_tokens[k]))
            steps.append(k - PROMPT)
            index.append(i)
            goals.append((goal, other))
            if len(index) == n:
                break
        T = max(len(t) for t in clean)
        pad = lambda seqs: np.array([list(s) + [0] * (T - len(s)) for s in seqs], dtype=np.int64)  # noqa: E731
        starts = np.array([rows["start"][i] for i in index])
        goals = np.array(goals)
        return Pairs(kind=kind, clean_tokens=pad(clean), corrupt_tokens=pad(corrupt), roles=pad(roles).astype(np.int16),
                     lengths=np.array([len(t) for t in clean]), clean_answer=np.array([a for a, _ in answers]),
                     corrupt_answer=np.array([b for _, b in answers]), decision_step=np.array(steps),
                     prompt_len=np.full(len(index), PROMPT), source_rows=np.array(index), pad_id=0, max_new=length + 1,
                     clean=Walks(starts, goals[:, 0]), corrupt=Walks(starts, goals[:, 1]))

    def goal_role(self) -> str:
        return "goal"

    def goal_classes(self, rows, dataset_config):
        return np.asarray(rows["goal"], dtype=np.int64), int(dataset_config["config"]["length"])

    def pair_goal_classes(self, pairs):
        return pairs.clean.goal.astype(np.int64), pairs.corrupt.goal.astype(np.int64)

    def same_goal_prompts(self, pairs, tokenizer, rng):
        out = []
        for prompt, start, goal in zip(pairs.prompts("clean"), pairs.clean.start, pairs.clean.goal):
            length = int(pairs.max_new) - 1
            other = int(rng.choice([s for s in range(length) if s not in (start, goal)]))
            out.append(np.array(encode(prompt[2] - len(SPECIALS), other, int(goal))[0][:PROMPT]))
        return out

    def retarget_outcomes(self, pairs, generated, vocab):
        vocab = list(vocab)
        walks = self._cells(generated, vocab)
        s, old, new = pairs.clean.start, pairs.clean.goal, pairs.corrupt.goal
        return {"new": np.array([_reaches(w, a, g) for w, a, g in zip(walks, s, new)]),
                "old": np.array([_reaches(w, a, g) for w, a, g in zip(walks, s, old)]),
                "first_new": np.array([len(w) > 1 and w[1] == a + np.sign(g - a) for w, a, g in zip(walks, s, new)]),
                "first_old": np.array([len(w) > 1 and w[1] == a + np.sign(g - a) for w, a, g in zip(walks, s, old)]),
                "first_split": np.sign(new - s) != np.sign(old - s)}


def _reaches(walk: list[int], start: int, goal: int) -> bool:
    return bool(walk) and walk[0] == start and walk[-1] == goal and all(abs(a - b) == 1 for a, b in zip(walk, walk[1:]))
