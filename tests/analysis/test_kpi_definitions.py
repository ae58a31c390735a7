"""Every KPI against a second, deliberately plain implementation of its definition
(loops over event rows, phases added up by hand), on crafted runs, on simulated
runs of noisy scenarios and on the recordings shipped in data/runs.

The reference below follows the glossary (README "Key figures", `cblab.analysis.kpis`)
word for word; it shares no code with `cblab.analysis` except the phase list it is
given by the test.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from cblab import analysis
from cblab.faults.scenario import Scenario
from cblab.lab.tuning import with_background_errors
from cblab.report.kpis import kpi_views
from cblab.runs import load_run
from cblab.schema import event_row
from cblab.sim import simulate

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "runs"


# --- the reference: the glossary, read literally ------------------------------------------


def _windows(scenario: Scenario, faults: set[str]) -> list[tuple[float, float]]:
    """Fault episodes: runs of consecutive fault phases, as (start, end)."""
    out: list[tuple[float, float]] = []
    start = 0.0
    for phase in scenario.phases:
        end = start + phase.duration_s
        if phase.name in faults:
            if out and out[-1][1] == start:
                out[-1] = (out[-1][0], end)
            else:
                out.append((start, end))
        start = end
    return out


def reference(rows: list[dict], scenario: Scenario, faults: set[str]) -> dict[str, float]:
    duration = sum(p.duration_s for p in scenario.phases)
    calls = [r for r in rows if r["kind"] == "call"]
    changes = sorted((r for r in rows if r["kind"] == "state"), key=lambda r: r["t"])
    episodes = _windows(scenario, faults)

    def answered(r):
        if r["outcome"] in ("success", "slow"):
            return True
        return r["outcome"] == "late" and r["error_type"] in (None, "not_found")

    def in_fault(t):
        return any(s <= t < e for s, e in episodes)

    def state_at(t):  # after every change at or before t
        state = changes[0]["state"] if changes else "closed"
        for c in changes:
            if c["t"] <= t:
                state = c["state_after"]
        return state

    admitted = [r for r in calls if r["outcome"] not in ("rejected", "dropped")]
    out = {
        "requested": len(calls),
        "successful": sum(answered(r) for r in calls),
        "rejected": sum(r["outcome"] == "rejected" for r in calls),
        "admitted": len(admitted),
        "wasted": sum(in_fault(r["t"]) or not answered(r) for r in admitted),
        "trips": sum(c["state"] == "closed" and c["state_after"] == "open" for c in changes),
        "probe_failures": sum(c["state"] == "half_open" and c["state_after"] == "open"
                              for c in changes),
    }
    out["availability"] = out["successful"] / len(calls) if calls else math.nan
    waits = sorted(r["latency"] for r in calls if r["latency"] is not None
                   and not math.isnan(r["latency"]))
    for q in (50, 95, 99):  # linear between closest ranks
        pos = (len(waits) - 1) * q / 100
        lo = int(pos)
        hi = min(lo + 1, len(waits) - 1)
        out[f"latency_p{q}_s"] = waits[lo] + (waits[hi] - waits[lo]) * (pos - lo)
    # seconds in each state: walk the timeline
    spent = {"closed": 0.0, "open": 0.0, "half_open": 0.0}
    state, since = (changes[0]["state"] if changes else "closed"), 0.0
    for c in changes:
        spent[state] += max(min(c["t"], duration) - since, 0.0)
        state, since = c["state_after"], min(max(c["t"], 0.0), duration)
    spent[state] += duration - since
    out.update({f"time_{name}_s": seconds for name, seconds in spent.items()})
    # flaps: trips within 10 s of the previous move to CLOSED
    last_close, flaps = -math.inf, 0
    for c in changes:
        if (c["state"], c["state_after"]) == ("closed", "open") and c["t"] - last_close <= 10:
            flaps += 1
        if c["state_after"] == "closed" and c["state"] != "closed":
            last_close = c["t"]
    out["flaps"] = flaps
    detections, recoveries = [], []
    for start, end in episodes:
        if state_at(start) != "closed":
            detections.append(0.0)
        else:
            opened = [c["t"] for c in changes if c["state_after"] == "open" and start <= c["t"] < end]
            if opened:
                detections.append(opened[0] - start)
        left = state_at(start) != "closed" or any(
            start <= c["t"] < end and c["state_after"] != "closed" for c in changes)
        if end >= duration or not left:
            continue
        if state_at(end) == "closed":
            recoveries.append(0.0)
            continue
        closed = [c["t"] for c in changes if c["state_after"] == "closed" and c["t"] > end]
        if closed:
            recoveries.append(closed[0] - end)
    out["detection_s"] = sum(detections) / len(detections) if detections else math.nan
    out["recovery_s"] = sum(recoveries) / len(recoveries) if recoveries else math.nan
    return out


def assert_agrees(figures: dict, expected: dict) -> None:
    for name, value in expected.items():
        got = figures[name]
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(got), name
        else:
            assert got == pytest.approx(value, abs=1e-9), name


def records(frame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


# --- crafted: background noise is not an outage ----------------------------------------------

NOISY = Scenario.from_dict({
    "name": "noisy",
    "phases": [
        {"name": "healthy", "duration_s": 10, "faults": {"users": {"error_rate": 0.05}}},
        {"name": "outage", "duration_s": 10, "faults": {"users": {"mode": "down"}}},
        {"name": "recovery", "duration_s": 10, "faults": {"users": {"error_rate": 0.05}}},
    ],
})


def call(t, outcome, state="closed", after=None, error=None):
    return event_row(kind="call", t=t, source="sim", variant="v", breaker="github",
                     tool="github_user", outcome=outcome, latency=0.01, state=state,
                     state_after=after or state, error_type=error)


def change(t, left, entered):
    return event_row(kind="state", t=t, source="sim", variant="v", breaker="github",
                     state=left, state_after=entered, reason="test")


NOISY_ROWS = [
    call(1, "success"), call(3, "failure", error="http_500"),  # background noise
    call(5, "success"),
    call(10.5, "failure", error="ConnectError"), call(11, "failure", error="ConnectError"),
    change(11.2, "closed", "open"),
    call(12, "rejected", state="open"), call(15, "rejected", state="open"),
    change(16.2, "open", "half_open"), call(16.3, "failure", "half_open", "open", "ConnectError"),
    change(16.3, "half_open", "open"),
    call(19, "rejected", state="open"),
    change(21.3, "open", "half_open"), call(21.4, "success", "half_open"),
    call(21.5, "success", "half_open", "closed"), change(21.5, "half_open", "closed"),
    call(25, "success"), call(27, "failure", error="http_500"),  # noise again
]


def test_background_errors_make_no_fault_phase():
    assert analysis.fault_phase_names(NOISY, "users") == ["outage"]
    noisy = with_background_errors("outage-and-recovery", 0.05)
    assert analysis.fault_phase_names(noisy, "users") == ["outage"]
    assert analysis.baseline_phase(noisy, "users").name == "healthy"
    # a scenario that starts broken: the baseline is its healthy phase, not its first
    broken_first = Scenario.from_dict({"name": "b", "phases": [
        {"name": "errors", "duration_s": 5, "faults": {"users": {"error_rate": 0.8}}},
        {"name": "fine", "duration_s": 5}]})
    assert analysis.fault_phase_names(broken_first, "users") == ["errors"]


def test_noisy_run_by_hand():
    figures = analysis.run_kpis(NOISY_ROWS, NOISY)
    # worked out from the rows above
    assert figures["fault_episodes"] == 1
    assert figures["detection_s"] == pytest.approx(1.2)  # outage at 10, OPEN at 11.2
    assert figures["recovery_s"] == pytest.approx(1.5)  # outage over at 20, CLOSED at 21.5
    assert figures["trips"] == 1 and figures["probe_failures"] == 1
    assert figures["wasted"] == 5  # 3 sent into the outage + 2 background failures
    assert figures["time_open_s"] == pytest.approx(5.0 + 5.0)
    assert_agrees(figures, reference(NOISY_ROWS, NOISY, {"outage"}))


@pytest.mark.parametrize("seed", [1, 2])
def test_noisy_simulation_answers_how_fast_it_noticed_and_recovered(seed):
    scenario = with_background_errors("outage-and-recovery", 0.05)
    run = simulate(scenario, {"failure_threshold": 5, "timeout": 5}, seed=seed)
    figures = analysis.run_kpis(run)
    rows = records(run.to_frame())
    assert_agrees(figures, reference(rows, scenario, {"outage"}))
    assert figures["detection_s"] < 5  # down: five refused connections take a fraction of a second
    assert figures["recovery_s"] <= 5 + 1  # the first probe after the outage closes it
    assert figures["wasted"] < figures["admitted"] / 2


@pytest.mark.parametrize("name, faults", [
    ("outage-and-recovery", {"outage"}),
    ("hang", {"hang"}),
    ("flapping", {f"errored-{i}" for i in range(1, 5)}),
    ("brownout", {"degrading", "brownout"}),
])
def test_simulated_runs_agree_with_the_reference(name, faults):
    scenario = Scenario.named(name)
    run = simulate(scenario, {"failure_threshold": 3, "timeout": 2}, seed=3)
    assert set(analysis.fault_phase_names(scenario, "users")) == faults
    assert_agrees(analysis.run_kpis(run), reference(records(run.to_frame()), scenario, faults))


@pytest.mark.parametrize("name", sorted(p.name for p in SHIPPED.iterdir() if p.is_dir()))
def test_shipped_recordings_agree_with_the_reference(name):
    run = load_run(SHIPPED / name)
    scenario = analysis.played_scenario(run)
    faults = {"hang"} if name.startswith("hang") else {"outage"}
    for view in kpi_views(run):
        figures = analysis.run_kpis(view.events, scenario)
        assert_agrees(figures, reference(records(view.events), scenario, faults))
        if view.protected:
            assert figures["trips"] >= 1 and not math.isnan(figures["recovery_s"])


def test_false_trips_by_hand():
    rows = [
        change(3, "closed", "open"), change(4, "open", "half_open"),  # noise trips it: false
        change(4.1, "half_open", "closed"),
        change(11, "closed", "open"), change(12, "open", "half_open"),
        change(12.1, "half_open", "open"),  # a failed probe: no trip at all
        change(21, "open", "half_open"), change(21.2, "half_open", "closed"),
        change(25, "closed", "open"),  # 5 s after the outage ended
    ]
    assert analysis.false_trips(rows, NOISY) == 1  # 25 s is within the 10 s grace
    assert analysis.false_trips(rows, NOISY, grace_s=2) == 2
    assert analysis.false_trips(rows, NOISY, fault_phases=[]) == 3  # no fault: every trip


def test_false_trips_of_a_simulated_run_equal_the_frames():
    scenario = with_background_errors("outage-and-recovery", 0.05)
    run = simulate(scenario, {"failure_threshold": 1, "timeout": 1}, seed=1)
    fast = analysis.false_trips(run)  # the SimRun path, no frame
    rows = records(run.to_frame())
    trips = [r["t"] for r in rows if r["kind"] == "state"
             and (r["state"], r["state_after"]) == ("closed", "open")]
    expected = sum(1 for t in trips if not 30 <= t < 60 + 10)
    assert fast == analysis.false_trips(rows, scenario) == expected > 0
