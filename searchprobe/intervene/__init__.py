"""Causal interventions: counterfactual pairs, activation/attribution patching, ablations,
steering and erasure, goal retargeting. `run_patching(run_dir, **options)` is the stage entry point."""

from searchprobe.intervene.stage import run_patching

__all__ = ["run_patching"]
