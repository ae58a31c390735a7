"""Arrivals: rates, phases, reproducibility."""

from __future__ import annotations

import math

import pytest

from cblab.faults.scenario import Scenario, ScenarioError
from cblab.sim import arrival_times, load_phases, single_phase
from cblab.sim.workload import arrival_rng

TWO_PHASES = Scenario.from_dict({
    "name": "two",
    "phases": [
        {"name": "slow", "duration_s": 100, "load": {"rate_per_s": 10}},
        {"name": "off", "duration_s": 50, "load": {"rate_per_s": 0}},
        {"name": "even", "duration_s": 10, "load": {"rate_per_s": 4, "arrivals": "constant"}},
    ],
})


def test_poisson_count_matches_rate_and_phases_are_respected():
    times = list(arrival_times(load_phases(TWO_PHASES), arrival_rng(1)))
    assert times == sorted(times)
    slow = [t for t in times if t < 100]
    # Poisson(1000): 5 standard deviations is ~158
    assert abs(len(slow) - 1000) < 5 * math.sqrt(1000)
    assert not [t for t in times if 100 <= t < 150]
    even = [t for t in times if t >= 150]
    assert even == pytest.approx([150 + k * 0.25 for k in range(40)])


def test_same_seed_same_arrivals_different_seed_different():
    phases = load_phases(TWO_PHASES)
    a = list(arrival_times(phases, arrival_rng(7)))
    assert a == list(arrival_times(phases, arrival_rng(7)))
    assert a != list(arrival_times(phases, arrival_rng(8)))


def test_rate_and_arrivals_overrides():
    phases = load_phases(TWO_PHASES, rate=2, arrivals="constant")
    assert [(p.rate_per_s, p.arrivals) for p in phases] == [(2.0, "constant")] * 3
    assert len(list(arrival_times(phases, arrival_rng(0)))) == 320
    with pytest.raises(ValueError, match="rate"):
        load_phases(TWO_PHASES, rate=-1)
    with pytest.raises(ValueError, match="arrivals"):
        load_phases(TWO_PHASES, arrivals="bursty")


def test_a_phase_without_load_needs_a_rate():
    scenario = Scenario.from_dict({"name": "noload", "phases": [{"name": "p", "duration_s": 5}]})
    with pytest.raises(ScenarioError, match="no load; pass rate="):
        load_phases(scenario)
    assert load_phases(scenario, rate=3)[0].rate_per_s == 3.0


def test_single_phase_builds_a_valid_scenario():
    scenario = single_phase({"error_rate": 0.5}, duration_s=10, rate_per_s=5, service="orders")
    assert scenario.total_duration_s == 10
    assert scenario.phases[0].profile("orders").error_rate == 0.5
    assert Scenario.from_dict(scenario.to_dict()) == scenario
    with pytest.raises(ScenarioError, match="service"):
        single_phase(None, duration_s=1, rate_per_s=1, service="payments")
