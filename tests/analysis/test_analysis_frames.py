"""Events -> a validated frame; bad input gets a clear AnalysisError."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from cblab import schema
from cblab.analysis import (
    EVENT_DTYPES,
    AnalysisError,
    events_frame,
    read_events,
    write_events,
)
from cblab.schema import CALL_OUTCOMES, EVENT_COLUMNS, event_row
from cblab.sim import simulate

ROWS = [
    event_row(seq=1, kind="call", t=0.5, source="server", variant="p", breaker="github",
              tool="github_user", outcome="success", latency=0.02, state="closed",
              state_after="closed", generation=0),
    event_row(seq=2, kind="state", t=1.0, source="server", variant="p", breaker="github",
              state="closed", state_after="open", reason="tripped", generation=1),
    event_row(seq=3, kind="call", t=1.5, source="server", variant="p", breaker="github",
              tool="github_user", outcome="rejected", latency=0.0, state="open",
              state_after="open", error_type="dependency_unavailable", generation=1),
]


def test_rows_become_a_typed_frame():
    frame = events_frame(ROWS)
    assert tuple(frame.columns) == EVENT_COLUMNS
    assert {c: str(frame[c].dtype) for c in frame} == {
        c: str(pd.Series(dtype=d).dtype) for c, d in EVENT_DTYPES.items()}
    assert list(frame["seq"]) == [1, 2, 3]
    assert frame["generation"].tolist() == [0, 1, 1]
    assert frame["tool"].isna().tolist() == [False, True, False]


def test_one_dtype_table_in_the_schema_for_analysis_and_the_simulator():
    assert EVENT_DTYPES is schema.EVENT_DTYPES
    assert tuple(EVENT_DTYPES) == EVENT_COLUMNS
    frame = simulate("flapping", {"failure_threshold": 3}, seed=1, time_scale=0.1).to_frame()
    assert {c: str(frame[c].dtype) for c in frame} == {
        c: str(pd.Series(dtype=d).dtype) for c, d in EVENT_DTYPES.items()}


def test_the_schema_needs_no_pandas():
    code = "import sys, cblab.schema; sys.exit('pandas' in sys.modules or 'numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_missing_optional_columns_are_added_and_extras_kept():
    rows = [{"kind": "call", "t": 1.0, "outcome": "failure", "latency": 0.1,
             "state": "closed", "state_after": "closed", "run": "A"}]
    frame = events_frame(rows)
    assert list(frame.columns) == [*EVENT_COLUMNS, "run"]
    assert frame["seq"].tolist() == [1] and frame["run"].tolist() == ["A"]


def test_csv_round_trip(tmp_path):
    run = simulate("flapping", {"failure_threshold": 3}, seed=1, time_scale=0.2)
    path = tmp_path / "events.csv"
    write_events(run, path)
    back = read_events(path)
    pd.testing.assert_frame_equal(back, run.to_frame(), check_exact=False)
    assert events_frame(str(path)).equals(back)


OUTCOMES = ", ".join(CALL_OUTCOMES)


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: f.drop(columns=["outcome"]), "missing required column(s) outcome"),
    (lambda f: f.drop(columns=["t", "state"]), "missing required column(s) t, state"),
    (lambda f: f.set_axis(["t", *f.columns[1:]], axis="columns"), "duplicate column name(s) t"),
    (lambda f: f.assign(outcome=["success", None, "exploded"]),
     f"row 3 (line 4): outcome must be one of {OUTCOMES}, got 'exploded'"),
    (lambda f: f.assign(outcome=[None, None, "rejected"]),
     f"row 1 (line 2): outcome must be one of {OUTCOMES}, got nothing"),
    (lambda f: f.assign(kind=["call", "state", "metric"]),
     "row 3 (line 4): kind must be one of call, state, got 'metric'"),
    (lambda f: f.assign(t=[0.5, "soon", 2]), "row 2 (line 3): t must be a number, got 'soon'"),
    (lambda f: f.assign(t=[0.5, float("inf"), 2]),
     "row 2 (line 3): t must be a finite number of seconds, got inf"),
    (lambda f: f.assign(latency=[-1.0, None, -2.0]),
     "row 1 (line 2): latency must be >= 0 seconds and finite, got -1.0 (and 1 more row(s))"),
    (lambda f: f.assign(latency=[float("inf"), None, 0.0]), "got inf"),
    (lambda f: f.assign(state=["closed", "ajar", "open"]),
     "row 2 (line 3): state must be one of closed, open, half_open, got 'ajar'"),
    (lambda f: f.assign(state=["closed", None, "open"]),
     "row 2 (line 3): a state row needs the state it left (state)"),
    (lambda f: f.assign(state_after=["closed", None, "open"]),
     "row 2 (line 3): a state row needs the state it entered (state_after)"),
    (lambda f: f.assign(seq=[1, 2.5, 3]), "row 2 (line 3): seq must be an integer, got 2.5"),
    (lambda f: f.assign(seq=[1, None, 3]), "row 2 (line 3): seq must be an integer, got nothing"),
    (lambda f: f.assign(generation=[0, "x", 1]),
     "row 2 (line 3): generation must be an integer, got 'x'"),
])
def test_bad_frames_are_refused_with_a_clear_message(change, message):
    with pytest.raises(AnalysisError) as info:
        events_frame(change(events_frame(ROWS)))
    assert message in str(info.value)


def test_bad_inputs_of_other_kinds():
    with pytest.raises(AnalysisError, match="one dict"):
        events_frame(ROWS[0])
    with pytest.raises(AnalysisError, match="row 1 must be a dict"):
        events_frame([ROWS[0], "oops"])
    with pytest.raises(AnalysisError, match="got int"):
        events_frame(42)
    with pytest.raises(AnalysisError, match="no such events file"):
        read_events("/no/such/events.csv")
    assert isinstance(AnalysisError("x"), ValueError)


def test_bad_csv_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(AnalysisError, match="empty"):
        read_events(empty)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b\n1,2\n")
    with pytest.raises(AnalysisError, match=r"wrong.csv: events are missing required column"):
        read_events(wrong)
    bad = tmp_path / "bad.csv"
    frame = events_frame(ROWS)
    frame.loc[0, "outcome"] = "vanished"
    frame.to_csv(bad, index=False)
    with pytest.raises(AnalysisError, match=r"bad\.csv: row 1 \(line 2\): outcome .*, got 'vanished'"):
        read_events(bad)


def test_an_empty_list_is_an_empty_frame():
    frame = events_frame([])
    assert frame.empty and tuple(frame.columns) == EVENT_COLUMNS


@pytest.mark.parametrize("change", [
    lambda f: f.assign(latency=np.array([-1.0, 0.0, 0.0])),
    lambda f: f.assign(t=np.array([0.5, -np.inf, 2.0])),
    lambda f: f.assign(seq=np.array([1.0, 2.5, 3.0])),
    lambda f: f.astype(object).assign(latency=[np.float64(-1.0), None, np.float64(0.0)]),
    lambda f: f.astype(object).assign(kind=[np.str_("call"), np.str_("mood"), "call"]),
])
def test_values_in_messages_are_plain_python(change):
    with pytest.raises(AnalysisError) as info:
        events_frame(change(events_frame(ROWS)))
    assert "np." not in str(info.value) and "numpy" not in str(info.value)
    assert ", got " in str(info.value)
