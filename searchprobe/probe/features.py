"""Probe features read in row blocks: from memory, or from an activation store one shard at a time.

`Features` are the raw (G, n, d) activations of G (hook, role) keys. `standardized(...)` z-scores
them over the training rows: an in-memory array becomes one standardised float32 copy (in the row
order asked for, so the solver can slice rows instead of gathering them); a store stays on disk and
each block is standardised as it is read, so fitting from a store holds one shard of features at
a time, whatever the number of examples.
"""

from __future__ import annotations

import numpy as np


class Features:
    """Raw features of G keys over n rows, standardised on request (see module docstring)."""

    def __init__(self, G: int, n: int, d: int):
        self.G, self.n, self.d = G, n, d

    @staticmethod
    def from_array(X) -> "ArrayFeatures":
        return ArrayFeatures(np.asarray(X, dtype=np.float32))

    @staticmethod
    def from_store(store, keys: list[tuple[str, str]]) -> "StoreFeatures":
        return StoreFeatures(store, keys)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.G, self.n, self.d

    def standardized(self, fit_rows: np.ndarray, order: np.ndarray | None = None) -> "Standardized":
        raise NotImplementedError


class ArrayFeatures(Features):
    """Features held in memory as one (G, n, d) array."""

    def __init__(self, X: np.ndarray):
        super().__init__(*X.shape)
        self.X = X

    def standardized(self, fit_rows: np.ndarray, order: np.ndarray | None = None) -> "Standardized":
        from searchprobe.probe.linear import standardize

        Z, mean, std = standardize(self.X, fit_rows, order)
        return Standardized(Z, None, mean, std, np.arange(self.n) if order is None else np.asarray(order))


class StoreFeatures(Features):
    """Features of (hook, role) keys of an `ActivationStore`, read from its shards on demand."""

    def __init__(self, store, keys: list[tuple[str, str]]):
        from safetensors import safe_open

        self.store, self.names = store, [f"act/{h}/{r}" for h, r in keys]
        self.shard_paths = store._shards()
        starts = [0]
        for path in self.shard_paths:
            with safe_open(str(path), framework="pt") as fh:
                shape = fh.get_slice(self.names[0]).get_shape()
            starts.append(starts[-1] + shape[0])
        self.starts = starts
        super().__init__(len(keys), starts[-1], int(shape[1]))

    def blocks(self) -> list[slice]:
        return [slice(a, b) for a, b in zip(self.starts[:-1], self.starts[1:])]

    def read(self, rows: slice, keys=None) -> np.ndarray:
        import torch
        from safetensors import safe_open

        names = self.names if keys is None else [self.names[int(k)] for k in keys]
        out = np.empty((len(names), rows.stop - rows.start, self.d), dtype=np.float32)
        for s, path in enumerate(self.shard_paths):
            a, b = max(rows.start, self.starts[s]), min(rows.stop, self.starts[s + 1])
            if a >= b:
                continue
            with safe_open(str(path), framework="pt") as fh:
                for i, name in enumerate(names):
                    part = fh.get_slice(name)[a - self.starts[s]:b - self.starts[s]]
                    out[i, a - rows.start:b - rows.start] = part.to(torch.float32).numpy()
        return out

    def moments(self, fit_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation (G, d) over `fit_rows` (bool (G, n)), two passes over the
        shards; the std of a constant feature is 1."""
        count = np.maximum(fit_rows.sum(1), 1.0)[:, None]
        total = np.zeros((self.G, self.d))
        for rows in self.blocks():
            total += np.einsum("gn,gnd->gd", fit_rows[:, rows].astype(np.float64), self.read(rows))
        mean = total / count
        square = np.zeros((self.G, self.d))
        for rows in self.blocks():
            centred = self.read(rows) - mean[:, None, :].astype(np.float32)
            square += np.einsum("gn,gnd,gnd->gd", fit_rows[:, rows].astype(np.float32), centred, centred)
        std = np.sqrt(square / count)
        return mean.astype(np.float32), np.where(std > 1e-6, std, 1.0).astype(np.float32)

    def standardized(self, fit_rows: np.ndarray, order: np.ndarray | None = None) -> "Standardized":
        mean, std = self.moments(fit_rows)
        return Standardized(None, self, mean, std, np.arange(self.n))


class Standardized:
    """z-scored features the solver reads in blocks: rows in `order` (original row ids)."""

    def __init__(self, Z, raw: Features | None, mean: np.ndarray, std: np.ndarray, order: np.ndarray):
        import torch

        self.Z = None if Z is None else torch.as_tensor(Z)
        self.raw, self.mean, self.std, self.order = raw, mean, std, order
        self.G, self.n, self.d = (self.Z.shape if Z is not None else raw.shape)

    @staticmethod
    def from_tensor(Z) -> "Standardized":
        """Features already standardised (or to be used as they are), in memory, rows as given."""
        import torch

        Z = torch.as_tensor(Z)
        G, n, d = Z.shape
        return Standardized(Z, None, np.zeros((G, d), np.float32), np.ones((G, d), np.float32), np.arange(n))

    def blocks(self) -> list[slice]:
        return [slice(0, self.n)] if self.Z is not None else self.raw.blocks()

    def read(self, rows: slice, keys=None):
        """(G', r, d) torch tensor: a view for in-memory features, a standardised copy for a store."""
        import torch

        if self.Z is not None:
            block = self.Z[:, rows]
            return block if keys is None or len(keys) == self.G else block[keys]
        picked = slice(None) if keys is None else np.asarray(keys)
        block = self.raw.read(rows, None if keys is None else np.asarray(keys))
        block -= self.mean[picked, None, :]
        block /= self.std[picked, None, :]
        return torch.from_numpy(block)
