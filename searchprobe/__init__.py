"""searchprobe: is this transformer doing search inside, and how?

Searchy tasks with ground-truth search traces, small TransformerLens models trained on
them, and the instruments to look inside (probes, lenses, causal interventions).
"""

__version__ = "0.1.0"
