"""A fitted scenario says which of its phases are faults.

Two healthy stretches of one run never fit to the same profile (2.1 % errors here,
1.8 % there): compared field by field, one of them looked like a fault, and every
call in it counted as *wasted* (a tuned pick's "285 wasted calls" with 2 failures).
The fit marks each phase with the change-point rule (against the quietest phase),
and analysis takes a phase's own word over its comparison.
"""

from __future__ import annotations

import random

import pytest

from cblab.analysis import run_kpis
from cblab.analysis.scenarios import fault_phase_names
from cblab.faults.fit import fit_run
from cblab.faults.scenario import Scenario, ScenarioError
from cblab.sim import simulate

PHASES = (("healthy", 120.0, 0.02), ("outage", 60.0, 0.9), ("recovered", 120.0, 0.02))


def crafted_rows(seed: int = 5) -> list[dict]:
    rng = random.Random(seed)
    rows, start = [], 0.0
    for phase, seconds, error_rate in PHASES:
        t = start
        while (t := t + rng.expovariate(10.0)) < start + seconds:
            rows.append({"kind": "call", "source": "load", "t": t, "phase": phase,
                         "tool": "lookup",
                         "outcome": "failure" if rng.random() < error_rate else "success",
                         "latency": 0.05 * rng.lognormvariate(0.0, 0.3)})
        start += seconds
    return rows


def test_fitted_healthy_phases_differ_yet_only_the_outage_is_a_fault() -> None:
    fit = fit_run(crafted_rows())
    healthy, _, recovered = fit.phases
    assert healthy.profile != recovered.profile  # the trap: measured, not the same
    assert fit.fault_kinds() == ["healthy", "outage", "healthy"]
    scenario = fit.scenario("fitted")
    assert [p["fault"] for p in scenario["phases"]] == [False, True, False]
    assert fault_phase_names(scenario) == ["outage"]
    unmarked = {**scenario, "phases": [{k: v for k, v in p.items() if k != "fault"}
                                       for p in scenario["phases"]]}
    assert len(fault_phase_names(unmarked)) == 2  # what the comparison alone concluded


def test_wasted_calls_of_a_fitted_run_are_the_outages_and_the_failures() -> None:
    scenario = fit_run(crafted_rows()).scenario("fitted")
    run = simulate(scenario, {"failure_threshold": 2, "timeout": 30}, seed=3)
    calls = [e for e in run.events if e["kind"] == "call"]
    outage_start, outage_end = PHASES[0][1], PHASES[0][1] + PHASES[1][1]
    expected = sum(1 for e in calls if e["outcome"] != "rejected" and (
        outage_start <= e["t"] < outage_end or e["outcome"] != "success"))
    kpis = run_kpis(run.to_frame(), Scenario.from_dict(scenario))
    assert kpis["wasted"] == expected
    assert kpis["wasted"] < 0.5 * sum(1 for e in calls if e["outcome"] != "rejected")


def test_a_phase_is_taken_at_its_word() -> None:
    base = {"name": "s", "description": "", "phases": [
        {"name": "a", "duration_s": 10, "faults": {"users": {"error_rate": 0.3}}, "fault": False},
        {"name": "b", "duration_s": 10, "fault": True},
        {"name": "c", "duration_s": 10, "faults": {"users": {"mode": "down"}}},
    ]}
    scenario = Scenario.from_dict(base)
    assert fault_phase_names(scenario) == ["b", "c"]  # c: no word, the comparison decides
    assert Scenario.from_dict(scenario.to_dict()) == scenario
    assert scenario.scaled(0.5).phases[1].fault is True
    bad = {**base, "phases": [{**base["phases"][0], "fault": "yes"}]}
    with pytest.raises(ScenarioError, match="fault must be true, false or absent"):
        Scenario.from_dict(bad)
