"""The lens stage: `run_lens(run_dir)` writes ``<run_dir>/lens/`` for a run of any task.

``summary.json``, ``report.json`` (the report contract), PNG figures and ``tuned_lens.safetensors``
(with the model's fingerprint, `searchprobe.fingerprints.model_fingerprint`). The task supplies the
role groups, the solution positions and, optionally, a candidate-solution view and belief pictures
(`Task.lens_context`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from searchprobe.errors import InputError

TUNED_LENS_FILE = "tuned_lens.safetensors"


def run_lens(run_dir: str | Path, *, split: str = "test", limit: int = 1000, tuned: bool = True,
             tuned_examples: int = 2000, tuned_steps: int = 300, tuned_lr: float = 1e-3, batch_size: int = 64,
             force: bool = False, progress: bool = True, data: str | Path | None = None) -> Path:
    """Logit lens (+ tuned lens) of a run on `limit` examples of `split`; writes and returns <run_dir>/lens/."""
    import torch

    from searchprobe.fingerprints import model_fingerprint
    from searchprobe.lens.lenses import LENS_FORMAT, TunedLens
    from searchprobe.lens.readout import collect_residuals, lens_readout, residual_stack
    from searchprobe.lens.summary import summarize
    from searchprobe.report.lens_figures import write_lens_outputs
    from searchprobe.train.run import load_run

    run_dir = Path(run_dir)
    out = run_dir / "lens"
    if limit <= 0 or tuned_examples <= 0 or batch_size <= 0:
        raise InputError(f"lens limit={limit}, tuned_examples={tuned_examples} and batch_size={batch_size} "
                         "must be positive integers")
    if (out / "report.json").is_file() and not force:
        return out
    if tuned:
        TunedLens(steps=tuned_steps, lr=tuned_lr).check_hyperparameters()
    run = load_run(run_dir, data)
    fingerprint = model_fingerprint(run_dir)
    task_data = run.data
    task = task_data.task
    task_data.split(split)  # a missing split fails now, before the tuned lens is trained and saved
    started = time.perf_counter()
    lens = None
    if tuned:
        lens_path = out / TUNED_LENS_FILE
        if lens_path.is_file() and not force:
            lens = TunedLens.load(lens_path, fingerprint)
        else:
            train_data = task_data.token_data("train", limit=tuned_examples)
            residuals, final_lp = collect_residuals(run.model, train_data, np.arange(len(train_data)), batch_size)
            torch.manual_seed(0)
            lens = TunedLens(steps=tuned_steps, lr=tuned_lr).fit(run.model, residuals[:-1], final_lp)
            with torch.no_grad():
                _, labels, _ = residual_stack(run.model, torch.from_numpy(train_data.tokens[:1]))
            lens.save(lens_path, fingerprint, labels)
    rows = task_data.rows(split, limit, ("roles",) + tuple(task.lens_columns))
    seqs = list(rows["tokens"])
    lengths = np.array([len(s) for s in seqs])
    tokens = np.full((len(seqs), int(lengths.max())), task_data.pad_id, dtype=np.int64)
    roles = np.zeros_like(tokens)
    for i, (s, r) in enumerate(zip(seqs, rows["roles"])):
        tokens[i, : len(s)], roles[i, : len(r)] = s, r
    context = task.lens_context(rows, task_data.vocab)
    readout = lens_readout(run.model, tokens, lengths, np.asarray(rows["solution_start"]), roles, tuned=lens,
                           context=context, batch_size=batch_size,
                           belief_example=None if context is None else context.belief_example, progress=progress)
    summary = summarize(readout, task)
    summary.update({"format": LENS_FORMAT, "run_dir": str(run_dir), "task": task.name, "split": split,
                    "model_fingerprint": fingerprint, "seconds": round(time.perf_counter() - started, 2)})
    if context is not None and context.candidates is not None:
        summary["candidate_view"] = context.description
    if lens is not None:
        summary["tuned_lens"] = {"file": TUNED_LENS_FILE, "train_examples": tuned_examples, "steps": lens.steps,
                                 "final_train_kl": float(lens.loss_history_[-1]) if hasattr(lens, "loss_history_") else None}
    pictures = context.belief_pictures(readout.beliefs) if context is not None and readout.beliefs else None
    write_lens_outputs(out, summary, pictures)
    from searchprobe.guard import record_entries

    record_entries(run_dir, "lens")
    return out
