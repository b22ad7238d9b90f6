"""One trace schema for every search.

A `Trace` is an ordered, columnar record of search events. Every search in searchprobe
(A* on a maze, alpha-beta on a chess position, a dovetailer over programs) writes the same
type, so the tasks can store it as one dataset column and the probes can read labels from it.

Columns (all numpy arrays of equal length, one row per event, in the order they happened):

=========  =======  =============================================================================
column     dtype    meaning
=========  =======  =============================================================================
kind       int8     the `Event` code (CREATE, CLOSE, ENTER, …)
node       int64    node / state / candidate-program id the event is about
parent     int64    the node it was reached from; -1 for a root or when not applicable
depth      int32    depth in the search tree (plies for games, nesting for dovetailing)
g          float64  cost so far (path cost; steps run for a program); NaN if not applicable
h          float64  heuristic estimate to go; NaN if not applicable
value      float64  score (minimax value, loss, …); NaN if not applicable
=========  =======  =============================================================================

Searches may add extra numeric columns (e.g. ``alpha``, ``beta``, ``move``, ``steps``) via
`TraceBuilder.add(..., **extra)`; an extra column is NaN (float) or -1 (int) on rows that do not
set it. The step of an event is its row index (`Trace.step`).

`Trace.to_record()` gives a dict of plain Python lists (JSON-, Arrow- and HF-datasets-ready);
`Trace.from_record()` inverts it exactly (a column stored as None, as Arrow fills the extra
columns of other rows, is skipped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Iterator, Mapping

import numpy as np


class Event(IntEnum):
    """Event kinds. Codes are stable: they are stored in datasets."""

    CREATE = 0  #: a node is generated and put on the frontier (Searchformer "create")
    CLOSE = 1  #: a node is taken off the frontier and expanded (Searchformer "close")
    GOAL = 2  #: the goal test succeeded on this node
    ENTER = 3  #: game tree: a node is entered (with alpha, beta)
    EXIT = 4  #: game tree: a node is left, with its value
    CUTOFF = 5  #: game tree: an alpha/beta cutoff happened at this node
    TT_HIT = 6  #: game tree: a transposition-table entry answered this node
    ADMIT = 7  #: dovetailing: a program is admitted to the run list
    RUN = 8  #: dovetailing: a program ran `steps` more steps (cells) in one round
    HALT = 9  #: dovetailing: a program halted (value = its loss)
    ACCEPT = 10  #: dovetailing: a halted program is accepted (zero loss); the search ends


CORE_COLUMNS: dict[str, np.dtype] = {
    "kind": np.dtype(np.int8),
    "node": np.dtype(np.int64),
    "parent": np.dtype(np.int64),
    "depth": np.dtype(np.int32),
    "g": np.dtype(np.float64),
    "h": np.dtype(np.float64),
    "value": np.dtype(np.float64),
}
_CORE_DEFAULTS = {"parent": -1, "depth": 0, "g": math.nan, "h": math.nan, "value": math.nan}


@dataclass(frozen=True)
class Trace:
    """An immutable, columnar list of search events (see the module docstring for the schema)."""

    columns: Mapping[str, np.ndarray]

    def __post_init__(self) -> None:
        lengths = {name: len(col) for name, col in self.columns.items()}
        missing = [c for c in CORE_COLUMNS if c not in self.columns]
        if missing:
            raise ValueError(f"trace is missing core column(s) {missing}")
        if len(set(lengths.values())) > 1:
            raise ValueError(f"trace columns have different lengths: {lengths}")

    # --- access -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.columns["kind"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __getattr__(self, name: str) -> np.ndarray:
        cols = object.__getattribute__(self, "columns")
        if name in cols:
            return cols[name]
        raise AttributeError(name)

    @property
    def step(self) -> np.ndarray:
        return np.arange(len(self), dtype=np.int64)

    @property
    def extra_columns(self) -> list[str]:
        return [c for c in self.columns if c not in CORE_COLUMNS]

    def select(self, *kinds: Event) -> "Trace":
        """The sub-trace of events of the given kinds, in order."""
        mask = np.isin(self.columns["kind"], [int(k) for k in kinds])
        return Trace({k: v[mask] for k, v in self.columns.items()})

    def nodes(self, kind: Event) -> np.ndarray:
        """Node ids of the events of one kind, in order (e.g. the closed list of A*)."""
        return self.columns["node"][self.columns["kind"] == int(kind)]

    def rows(self) -> Iterator[dict[str, Any]]:
        """Events as dicts (slow; for display and tests)."""
        names = list(self.columns)
        for i in range(len(self)):
            row = {n: self.columns[n][i].item() for n in names}
            row["kind"] = Event(row["kind"]).name
            row["step"] = i
            yield row

    # --- conversion ---------------------------------------------------------------------
    def to_record(self) -> dict[str, list]:
        """Plain-Python dict of lists, in schema order (storable as one HF-datasets column)."""
        return {name: col.tolist() for name, col in self.columns.items()}

    @classmethod
    def from_record(cls, record: Mapping[str, list]) -> "Trace":
        cols = {}
        for name, values in record.items():
            if values is None:  # an extra column this trace never had (Arrow fills it with null)
                continue
            dtype = CORE_COLUMNS.get(name)
            arr = np.asarray(values, dtype=dtype) if dtype is not None else np.asarray(values)
            if dtype is None and arr.dtype == object:
                arr = np.asarray(values, dtype=np.float64)
            cols[name] = arr
        return cls(cols)

    def to_numpy(self) -> dict[str, np.ndarray]:
        return dict(self.columns)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trace) or list(self.columns) != list(other.columns):
            return NotImplemented if not isinstance(other, Trace) else False
        return all(np.array_equal(self.columns[c], other.columns[c], equal_nan=self.columns[c].dtype.kind == "f")
                   for c in self.columns)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        counts = {Event(k).name: int(n) for k, n in zip(*np.unique(self.columns["kind"], return_counts=True))}
        return f"Trace(events={len(self)}, kinds={counts}, extra={self.extra_columns})"

    @classmethod
    def empty(cls) -> "Trace":
        return TraceBuilder().build()


@dataclass
class TraceBuilder:
    """Appends events row by row (Python lists), then `build()`s an immutable columnar `Trace`."""

    _core: dict[str, list] = field(default_factory=lambda: {c: [] for c in CORE_COLUMNS})
    _extra: dict[str, list] = field(default_factory=dict)
    _extra_int: dict[str, bool] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._core["kind"])

    def add(
        self,
        kind: Event,
        node: int,
        parent: int = -1,
        depth: int = 0,
        g: float = math.nan,
        h: float = math.nan,
        value: float = math.nan,
        **extra: float | int,
    ) -> None:
        n = len(self)
        core = self._core
        core["kind"].append(int(kind))
        core["node"].append(node)
        core["parent"].append(parent)
        core["depth"].append(depth)
        core["g"].append(g)
        core["h"].append(h)
        core["value"].append(value)
        for name, v in extra.items():
            col = self._extra.get(name)
            if col is None:
                is_int = isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                self._extra_int[name] = is_int
                col = self._extra[name] = [-1 if is_int else math.nan] * n
            col.append(v)
        for name, col in self._extra.items():
            if len(col) == n:  # this row did not set it
                col.append(-1 if self._extra_int[name] else math.nan)

    def build(self) -> Trace:
        cols = {name: np.asarray(vals, dtype=CORE_COLUMNS[name]) for name, vals in self._core.items()}
        for name, vals in self._extra.items():
            cols[name] = np.asarray(vals, dtype=np.int64 if self._extra_int[name] else np.float64)
        return Trace(cols)
