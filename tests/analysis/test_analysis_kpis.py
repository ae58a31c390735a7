"""KPIs on small hand-built runs whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cblab.analysis import (
    KPI_COLUMNS,
    AnalysisError,
    episodes,
    events_frame,
    fault_phase_names,
    kpis,
    phase_kpis,
    run_kpis,
    state_intervals,
    succeeded,
)
from cblab.faults.scenario import Scenario
from cblab.schema import event_row
from cblab.sim import simulate

SCENARIO = Scenario.from_dict({
    "name": "hand",
    "phases": [
        {"name": "healthy", "duration_s": 10},
        {"name": "outage", "duration_s": 10, "faults": {"users": {"mode": "down"}}},
        {"name": "recovery", "duration_s": 10},
    ],
})


def call(t, outcome, latency, state="closed", after=None, error=None):
    return event_row(kind="call", t=t, source="sim", variant="v", breaker="github",
                     tool="github_user", outcome=outcome, latency=latency, state=state,
                     state_after=after or state, error_type=error)


def change(t, left, entered):
    return event_row(kind="state", t=t, source="sim", variant="v", breaker="github",
                     state=left, state_after=entered, reason="test")


ROWS = [
    call(1, "success", 0.02),
    call(5, "success", 0.03),
    call(11, "failure", 0.001, error="ConnectError"),
    change(12.001, "closed", "open"),  # logged before the call that tripped it
    call(12, "failure", 0.001, after="open", error="ConnectError"),
    call(13, "rejected", 0.0, state="open"),
    call(15, "rejected", 0.0, state="open"),
    change(17.001, "open", "half_open"),
    change(17.501, "half_open", "open"),
    call(17.5, "failure", 0.001, state="half_open", after="open", error="ConnectError"),
    call(19, "rejected", 0.0, state="open"),
    call(21, "rejected", 0.0, state="open"),
    change(22.501, "open", "half_open"),
    change(23.1, "half_open", "closed"),
    call(23, "success", 0.1, state="half_open", after="closed"),
    call(24, "late", 0.5),  # answered, after the breaker moved on: still a success
    call(26, "late", 0.2, error="http_500"),  # failed, late
    change(27, "closed", "open"),  # 3.9 s after closing: a flap
    call(28, "rejected", 0.0, state="open"),
]
LATENCIES = [0.02, 0.03, 0.001, 0.001, 0, 0, 0.001, 0, 0, 0.1, 0.5, 0.2, 0]


def test_run_kpis_by_hand():
    k = run_kpis(ROWS, SCENARIO)
    assert set(k) == set(KPI_COLUMNS)
    assert k["requested"] == 13
    assert k["successful"] == 4
    assert k["rejected"] == 5
    assert k["failed"] == 4
    assert k["availability"] == pytest.approx(4 / 13)
    assert k["share_failed_fast"] == pytest.approx(5 / 13)
    assert k["admitted"] == 8
    assert k["wasted"] == 4  # three admitted during the outage, one failed after it
    assert k["wasted_share"] == pytest.approx(4 / 13)
    assert k["trips"] == 2 and k["probe_failures"] == 1 and k["flaps"] == 1
    assert k["time_closed_s"] == pytest.approx(12.001 + 3.9)
    assert k["time_open_s"] == pytest.approx(5 + 5 + 3)
    assert k["time_half_open_s"] == pytest.approx(0.5 + 0.599)
    assert k["time_closed_s"] + k["time_open_s"] + k["time_half_open_s"] == pytest.approx(30)
    assert k["fault_episodes"] == 1 and k["detected"] == 1 and k["recovered"] == 1
    assert k["detection_s"] == pytest.approx(2.001)
    assert k["recovery_s"] == pytest.approx(3.1)
    assert k["duration_s"] == 30
    assert k["throughput_per_s"] == pytest.approx(13 / 30)
    assert k["goodput_per_s"] == pytest.approx(4 / 30)
    for q in (50, 95, 99):
        assert k[f"latency_p{q}_s"] == pytest.approx(np.percentile(LATENCIES, q))
    assert isinstance(k["requested"], int) and isinstance(k["availability"], float)


def test_phase_kpis_by_hand():
    table = phase_kpis(ROWS, SCENARIO).set_index("phase")
    assert list(table.index) == ["healthy", "outage", "recovery"]
    assert list(table["fault"]) == [False, True, False]
    healthy, outage, recovery = (table.loc[p] for p in table.index)
    assert healthy.requested == 2 and healthy.availability == 1.0
    assert healthy.time_closed_s == pytest.approx(10)
    assert (outage.requested, outage.successful, outage.rejected, outage.failed) == (6, 0, 3, 3)
    assert outage.wasted == 3 and outage.trips == 1 and outage.probe_failures == 1
    assert outage.detection_s == pytest.approx(2.001)
    assert math.isnan(outage.recovery_s)
    assert outage.time_open_s == pytest.approx(5 + 2.499)
    assert outage.time_half_open_s == pytest.approx(0.5)
    assert (recovery.requested, recovery.successful, recovery.rejected) == (5, 2, 2)
    assert recovery.wasted == 1 and recovery.trips == 1 and recovery.flaps == 1
    assert recovery.recovery_s == pytest.approx(3.1)
    assert recovery.time_open_s == pytest.approx(2.501 + 3)
    assert table["requested"].sum() == 13


def test_episodes_and_state_intervals():
    table = episodes(ROWS, SCENARIO)
    assert len(table) == 1
    row = table.iloc[0]
    assert (row.phases, row.start, row.end) == ("outage", 10.0, 20.0)
    assert row.detection_s == pytest.approx(2.001) and row.recovery_s == pytest.approx(3.1)
    intervals = state_intervals(ROWS, SCENARIO)
    assert list(intervals["state"]) == ["closed", "open", "half_open", "open", "half_open",
                                        "closed", "open"]
    assert intervals["start"].iloc[0] == 0 and intervals["end"].iloc[-1] == 30
    assert (intervals["end"] - intervals["start"]).sum() == pytest.approx(30)


def test_detection_and_recovery_edge_cases():
    never_opens = [call(1, "success", 0.01), call(12, "failure", 0.01, error="ConnectError")]
    k = run_kpis(never_opens, SCENARIO)
    assert k["detected"] == 0 and math.isnan(k["detection_s"])
    # it never left CLOSED: nothing to recover from (an unprotected run reads the same)
    assert k["recovered"] == 0 and math.isnan(k["recovery_s"])
    stays_open = [call(1, "success", 0.01), change(11, "closed", "open"),
                  call(12, "rejected", 0.0, state="open")]
    k = run_kpis(stays_open, SCENARIO)
    assert k["detection_s"] == pytest.approx(1.0)
    assert k["recovered"] == 0 and math.isnan(k["recovery_s"])
    assert k["time_open_s"] == pytest.approx(19.0)
    opened_before = [change(5, "closed", "open"), call(6, "rejected", 0.0, state="open")]
    assert run_kpis(opened_before, SCENARIO)["detection_s"] == 0.0
    closed_in_time = [change(11, "closed", "open"), change(15, "open", "closed"),
                      call(16, "success", 0.01)]
    k = run_kpis(closed_in_time, SCENARIO)
    assert k["recovered"] == 1 and k["recovery_s"] == 0.0  # already closed when the fault ended


def test_without_a_scenario_phases_come_from_the_rows():
    rows = [dict(r, phase="a" if r["t"] < 10 else "b") for r in ROWS]
    k = run_kpis(rows, fault_phases=["b"])
    assert k["requested"] == 13
    assert k["duration_s"] == pytest.approx(28)  # the last row's t
    assert k["fault_episodes"] == 1
    table = phase_kpis(rows)
    assert list(table["phase"]) == ["a", "b"]


def test_kpis_one_row_per_run():
    other = [dict(r, variant="w") for r in ROWS[:3]]
    table = kpis(ROWS + other, SCENARIO)
    assert list(table["variant"]) == ["v", "w"]
    assert list(table["requested"]) == [13, 3]
    per_phase = kpis(ROWS + other, SCENARIO, per_phase=True)
    assert len(per_phase) == 6
    with pytest.raises(AnalysisError, match="several runs"):
        run_kpis(ROWS + other, SCENARIO)
    with pytest.raises(AnalysisError, match="unknown column"):
        kpis(ROWS, SCENARIO, by=["colour"])
    with pytest.raises(AnalysisError, match="flap_window_s"):
        kpis(ROWS, SCENARIO, flap_window_s=-1)
    with pytest.raises(AnalysisError, match=r"flap_window_s .*, got -1\.0$"):  # not np.float64(
        kpis(ROWS, SCENARIO, flap_window_s=np.float64(-1.0))
    with pytest.raises(AnalysisError, match="scenario"):
        kpis(ROWS, "no-such-scenario")
    assert run_kpis(ROWS, SCENARIO, flap_window_s=1.0)["flaps"] == 0


def test_fault_phases_of_the_shipped_scenarios():
    assert fault_phase_names("outage-and-recovery", "users") == ["outage"]
    assert fault_phase_names("outage-and-recovery", "orders") == []
    assert fault_phase_names("overload", "orders") == ["surge"]
    assert fault_phase_names("flapping", "users") == [f"errored-{i}" for i in range(1, 5)]
    assert fault_phase_names("slow-burn", "orders") == [
        "errors-2pct", "errors-5pct", "errors-10pct", "errors-20pct", "errors-35pct"]
    assert fault_phase_names("hang") == ["hang"]


@pytest.mark.parametrize("name", ["outage-and-recovery", "hang", "flapping", "brownout"])
def test_a_simruns_fast_path_equals_the_frame_path(name):
    run = simulate(name, {"failure_threshold": 3, "timeout": 4.0}, seed=2)
    fast = run_kpis(run)
    slow = run_kpis(run.to_frame(), run.scenario)
    assert fast.keys() == slow.keys()
    for key in fast:
        assert fast[key] == pytest.approx(slow[key], nan_ok=True), key
    pd.testing.assert_frame_equal(phase_kpis(run), phase_kpis(events_frame(run), run.scenario))


def test_succeeded_is_the_availability_definition():
    outcome = ["success", "slow", "late", "late", "late", "failure", "rejected", "timeout"]
    error = [None, None, None, np.nan, "not_found", None, "x", "ReadTimeout"]
    assert succeeded(outcome, error).tolist() == [True, True, True, True, True, False,
                                                  False, False]
    assert succeeded(pd.Series(["late"], dtype="str"), pd.Series(["Boom"], dtype="str")).tolist() \
        == [False]
    rows = [call(float(i), o, 0.01, error=e) for i, (o, e) in enumerate(zip(outcome, error,
                                                                           strict=True))]
    assert run_kpis(rows)["availability"] == pytest.approx(5 / 8)
