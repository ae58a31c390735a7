"""Scenarios as analysis sees them: the scenario a recorded run played, phase labels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cblab.analysis import AnalysisError, phase_labels, phase_windows, played_scenario
from cblab.faults.scenario import Scenario
from cblab.runs import RunMeta
from tests.analysis.test_analysis_kpis import SCENARIO

SPEC = SCENARIO.to_dict()  # healthy, outage (users down), recovery: 10 s each


def meta(scenario, **extra) -> RunMeta:
    return RunMeta(name="r", scenario=scenario, extra=extra)


def test_played_scenario_is_the_recorded_spec_at_its_time_scale():
    plan = played_scenario(meta({"name": "hand", "spec": SPEC}, time_scale=0.2))
    assert [p.duration_s for p in plan.phases] == pytest.approx([2, 2, 2])
    assert [(w.name, w.start, w.fault) for w in phase_windows(plan, service="users")] == [
        ("healthy", 0.0, False), ("outage", pytest.approx(2.0), True),
        ("recovery", pytest.approx(4.0), False)]
    assert played_scenario(meta({"name": "hand", "spec": SPEC})) == Scenario.from_dict(SPEC)
    nameless = {k: v for k, v in SPEC.items() if k != "name"}
    assert played_scenario(meta({"name": "hand", "spec": nameless})).name == "hand"


def test_played_scenario_of_a_shipped_name_or_none():
    plan = played_scenario(meta({"name": "outage-and-recovery", "spec": None}, time_scale=0.5))
    assert plan.total_duration_s == pytest.approx(Scenario.named("outage-and-recovery")
                                                  .total_duration_s * 0.5)
    assert played_scenario(meta(None)) is None


@pytest.mark.parametrize(
    ("scenario", "extra", "message"),
    [
        ({"name": "no-such-scenario", "spec": None}, {}, "'no-such-scenario' cannot be read"),
        ({"name": "x", "spec": {"phases": "nope"}}, {}, "phases must be a non-empty list"),
        ({"name": "../etc/passwd", "spec": None}, {}, "cannot be read"),  # names only
        ({"name": "hand", "spec": SPEC}, {"time_scale": 0}, "time_scale must be a number > 0"),
        ({"name": "hand", "spec": SPEC}, {"time_scale": True}, "time_scale"),
        ({"name": "hand", "spec": SPEC}, {"time_scale": np.float64(-2.0)}, r"> 0, got -2\.0$"),
    ],
)
def test_played_scenario_says_why_it_cannot(scenario, extra, message):
    with pytest.raises(AnalysisError, match=message):
        played_scenario(meta(scenario, **extra))


def test_phase_labels():
    plan = Scenario.from_dict(SPEC)
    assert phase_labels([0, 9.999, 10, 25, 30, 99], plan) == [
        "healthy", "healthy", "outage", "recovery", "recovery", "recovery"]
    assert phase_labels([-0.1, None, math.nan, math.inf], plan) == [None] * 4
    assert phase_labels([], SPEC) == []
    with pytest.raises(AnalysisError, match="need a scenario"):
        phase_labels([1.0], None)
