"""Batched linear probes with controls: `run_probes(run_dir)` is the probing stage.

Modules: `linear` (batched torch solver, `LinearProbe`, scikit-learn reference), `metrics`
(AUROC, average precision, bootstrap CIs), `labels` (label families and control tasks),
`firehose` (fit and evaluate every probe of a label), `run` (the stage: stores → table, heat maps,
directions, report.json).
"""

from searchprobe.probe.linear import LinearProbe, fit_batched, sklearn_reference

__all__ = ["LinearProbe", "fit_batched", "sklearn_reference", "run_probes"]


def run_probes(run_dir, **options):
    """See `searchprobe.probe.run.run_probes`."""
    from searchprobe.probe.run import run_probes as _run

    return _run(run_dir, **options)
