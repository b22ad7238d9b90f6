"""Cost of the logit lens over N examples and every layer, relative to one plain forward pass.

The lens is one cached forward (resid_pre / resid_mid / resid_post hooks) plus the readouts
through ln_final and the unembedding at the solution positions, with every statistic (rank,
probability, KL to the final layer, entropy, and the legal/illegal/toward/away masses where the
run's task has a candidate-solution view, e.g. mazes). Both are timed side by side in one process,
alternating, best of `--repeats`; prints JSON.

    python experiments/benchmarks/lens_cost.py RUN_DIR [--n 10000] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir")
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tuned", action="store_true", help="also time the tuned lens readout (untrained identity lens)")
    args = parser.parse_args()

    from searchprobe.lens import TunedLens, lens_readout
    from searchprobe.train.run import load_run

    run = load_run(args.run_dir)
    data, task = run.data, run.task
    cols = data.rows("train", args.n, ("roles",) + tuple(task.lens_columns))
    lengths = np.array([len(t) for t in cols["tokens"]])
    tokens = np.full((len(lengths), lengths.max()), data.pad_id, dtype=np.int64)
    roles = np.zeros_like(tokens)
    for i, (t, r) in enumerate(zip(cols["tokens"], cols["roles"])):
        tokens[i, : len(t)], roles[i, : len(r)] = t, r
    context = task.lens_context(cols, data.vocab)  # the task's candidate-solution view, if any
    starts = np.asarray(cols["solution_start"])
    model = run.model

    def forward() -> None:
        with torch.no_grad():
            for s in range(0, len(tokens), args.batch_size):
                width = int(lengths[s : s + args.batch_size].max())
                model(torch.from_numpy(tokens[s : s + args.batch_size, :width]))

    def lens(tuned=None) -> None:
        lens_readout(model, tokens, lengths, starts, roles, tuned=tuned, context=context, batch_size=args.batch_size)

    identity = None
    if args.tuned:
        d, S = model.cfg.d_model, 2 * model.cfg.n_layers + 1
        identity = TunedLens()
        identity.weight_, identity.bias_ = torch.eye(d).repeat(S - 1, 1, 1), torch.zeros(S - 1, 1, d)

    timings: dict[str, list[float]] = {"forward": [], "logit_lens": []} | ({"logit_and_tuned_lens": []} if args.tuned else {})
    forward()  # warm-up
    for _ in range(args.repeats):
        for name, fn in (("forward", forward), ("logit_lens", lens)) + ((("logit_and_tuned_lens", lambda: lens(identity)),)
                                                                        if args.tuned else ()):
            t0 = time.perf_counter()
            fn()
            timings[name].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in timings.items()}
    n_preds = int(sum(lengths - starts))
    print(json.dumps({
        "run_dir": args.run_dir, "task": task.name, "candidate_view": context is not None, "examples": len(tokens), "predictions": n_preds, "batch_size": args.batch_size,
        "n_layers": model.cfg.n_layers, "lens_layers": 2 * model.cfg.n_layers + 1, "d_model": model.cfg.d_model,
        "torch_threads": torch.get_num_threads(), "seconds_best": {k: round(v, 3) for k, v in best.items()},
        "seconds_all": {k: [round(x, 3) for x in v] for k, v in timings.items()},
        "ratio_logit_lens_to_forward": round(best["logit_lens"] / best["forward"], 3),
        **({"ratio_logit_and_tuned_to_forward": round(best["logit_and_tuned_lens"] / best["forward"], 3)} if args.tuned else {}),
    }, indent=2))


if __name__ == "__main__":
    main()
