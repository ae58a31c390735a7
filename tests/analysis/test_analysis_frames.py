"""Events -> a validated frame; bad input gets a clear AnalysisError."""

from __future__ import annotations

import pandas as pd
import pytest

from cblab.analysis import (
    EVENT_DTYPES,
    AnalysisError,
    events_frame,
    read_events,
    write_events,
)
from cblab.schema import EVENT_COLUMNS, event_row
from cblab.sim import simulate
from cblab.sim.run import _DTYPES as SIM_DTYPES

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


def test_the_simulators_dtypes_are_the_analysis_dtypes():
    assert SIM_DTYPES == EVENT_DTYPES


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


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: f.drop(columns=["outcome"]), "missing required column(s) outcome"),
    (lambda f: f.drop(columns=["t", "state"]), "missing required column(s) t, state"),
    (lambda f: f.assign(outcome=["success", None, "exploded"]), "unknown call outcome 'exploded'"),
    (lambda f: f.assign(kind=["call", "state", "metric"]), "kind must be one of"),
    (lambda f: f.assign(t=[0.5, "soon", 2]), "row 1: t must be a number"),
    (lambda f: f.assign(t=[0.5, float("inf"), 2]), "t must be a finite number"),
    (lambda f: f.assign(latency=[-1.0, None, 0.0]), "latency must be >= 0"),
    (lambda f: f.assign(state=["closed", "ajar", "open"]), "state must be one of"),
    (lambda f: f.assign(state_after=["closed", None, "open"]), "row 1: state_after"),
    (lambda f: f.assign(seq=[1, 2.5, 3]), "seq must be an integer"),
    (lambda f: f.assign(generation=[0, "x", 1]), "generation must be a number"),
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
    with pytest.raises(AnalysisError, match=r"bad\.csv: row 0: unknown call outcome 'vanished'"):
        read_events(bad)


def test_an_empty_list_is_an_empty_frame():
    frame = events_frame([])
    assert frame.empty and tuple(frame.columns) == EVENT_COLUMNS
