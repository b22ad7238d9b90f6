from __future__ import annotations

import json
import math

import numpy as np
import pytest

from searchprobe.search.trace import CORE_COLUMNS, Event, Trace, TraceBuilder


def _example() -> Trace:
    tb = TraceBuilder()
    tb.add(Event.CREATE, 0, g=0, h=3)
    tb.add(Event.CLOSE, 0, g=0, h=3)
    tb.add(Event.CREATE, 1, parent=0, depth=1, g=1, h=2, alpha=-1.5)
    tb.add(Event.ENTER, 2, parent=0, depth=1, move=17)
    tb.add(Event.GOAL, 1, parent=0, depth=1, value=1.0)
    return tb.build()


def test_builder_columns_and_defaults():
    t = _example()
    assert len(t) == 5
    assert list(t.columns)[: len(CORE_COLUMNS)] == list(CORE_COLUMNS)
    assert t.kind.tolist() == [Event.CREATE, Event.CLOSE, Event.CREATE, Event.ENTER, Event.GOAL]
    assert t.parent.tolist() == [-1, -1, 0, 0, 0]
    assert t.step.tolist() == [0, 1, 2, 3, 4]
    # Extra columns are back-filled: NaN for floats, -1 for ints.
    assert np.isnan(t["alpha"][[0, 1, 3, 4]]).all() and t["alpha"][2] == -1.5
    assert t["move"].tolist() == [-1, -1, -1, 17, -1]
    assert t["move"].dtype == np.int64
    assert t.nodes(Event.CREATE).tolist() == [0, 1]
    assert len(t.select(Event.CREATE, Event.GOAL)) == 3


def test_record_round_trip_is_exact_and_json_safe():
    t = _example()
    rec = t.to_record()
    again = Trace.from_record(json.loads(json.dumps(rec, allow_nan=True)))
    assert again == t
    for name, dtype in CORE_COLUMNS.items():
        assert again[name].dtype == dtype


def test_round_trip_through_hf_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    traces = [_example(), Trace.empty()]
    ds = datasets.Dataset.from_dict({"trace": [t.to_record() for t in traces]})
    ds.save_to_disk(str(tmp_path / "d"))
    back = datasets.load_from_disk(str(tmp_path / "d"))
    restored = [Trace.from_record(r) for r in back["trace"]]
    assert restored[0] == traces[0]
    assert len(restored[1]) == 0


def test_rows_and_repr():
    t = _example()
    rows = list(t.rows())
    assert rows[0]["kind"] == "CREATE" and rows[4]["value"] == 1.0 and rows[2]["step"] == 2
    assert "CREATE" in repr(t) and "events=5" in repr(t)
    assert math.isnan(rows[0]["value"])


def test_mismatched_columns_rejected():
    cols = _example().to_numpy()
    cols["g"] = cols["g"][:-1]
    with pytest.raises(ValueError, match="different lengths"):
        Trace(cols)
