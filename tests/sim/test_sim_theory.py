"""The simulator against closed forms: calls until a trip, time spent open."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest

from cblab import CircuitBreakerConfig
from cblab.faults.scenario import Scenario
from cblab.sim import simulate
from cblab.sim.theory import calls_until_trip, expected_calls_until_trip


def test_expected_calls_until_trip_closed_form():
    assert expected_calls_until_trip(1.0, 4) == 4.0
    assert expected_calls_until_trip(0.5, 1) == pytest.approx(2.0)  # geometric
    assert expected_calls_until_trip(0.5, 2) == pytest.approx(6.0)  # the textbook HH wait
    assert expected_calls_until_trip(0.0, 3) == math.inf  # a healthy service never trips it
    assert expected_calls_until_trip(0.02, 5, "cumulative") == pytest.approx(250)
    for p, k, policy in ((1.5, 3, "consecutive"), (0.5, 0, "consecutive"), (0.5, 3, "sliding")):
        with pytest.raises(ValueError):
            expected_calls_until_trip(p, k, policy)


@pytest.mark.parametrize(("p", "k"), [(0.5, 3), (0.3, 2), (0.8, 5), (0.5, 5)])
def test_mean_calls_until_trip_matches_closed_form(p, k):
    # Each CLOSED spell is an independent draw of the waiting time; the sample mean
    # of n of them has standard error s / sqrt(n). Four of those: a false alarm
    # about once in 16,000 (the seeds are fixed, so this test is deterministic).
    samples = calls_until_trip(p, k, trips=1000, seed=11)
    assert len(samples) == 1000
    mean = statistics.fmean(samples)
    stderr = statistics.stdev(samples) / math.sqrt(len(samples))
    expected = expected_calls_until_trip(p, k)
    assert abs(mean - expected) < 4 * stderr, (mean, expected, stderr)
    assert min(samples) >= k  # a trip needs k failures in a row


def _open_spells(run):
    """Seconds spent OPEN in each OPEN spell, in order."""
    changes = sorted((e for e in run.events if e["kind"] == "state"), key=lambda e: e["t"])
    spells = []
    for enter, leave in itertools.pairwise(changes):
        if enter["state_after"] == "open":
            assert leave["state"] == "open"
            spells.append(leave["t"] - enter["t"])
    return spells


OUTAGES = Scenario.from_dict({
    "name": "two-outages",
    "phases": [
        {"name": "down-1", "duration_s": 100, "faults": {"users": {"mode": "down"}},
         "load": {"rate_per_s": 10, "arrivals": "constant"}},
        {"name": "up", "duration_s": 60, "load": {"rate_per_s": 10, "arrivals": "constant"}},
        {"name": "down-2", "duration_s": 30, "faults": {"users": {"mode": "down"}},
         "load": {"rate_per_s": 10, "arrivals": "constant"}},
    ],
})


def test_time_open_per_trip_equals_the_timeout():
    config = CircuitBreakerConfig(failure_threshold=3, timeout=7.0)
    spells = _open_spells(simulate(OUTAGES, config, seed=1))
    assert len(spells) > 10
    assert spells == pytest.approx([7.0] * len(spells), abs=1e-9)


def test_time_open_follows_the_backoff_schedule_and_restarts_after_closing():
    config = CircuitBreakerConfig(failure_threshold=3, timeout=2.0, backoff_multiplier=2.0,
                                  max_timeout=20.0)
    spells = _open_spells(simulate(OUTAGES, config, seed=1))
    # outage 1 (0-100 s): 2, 4, 8, 16, 20, 20, ... until it ends; then the breaker
    # closes during "up" and outage 2 starts the schedule again from 2 s
    first = [2.0, 4.0, 8.0, 16.0, 20.0, 20.0]
    assert spells[: len(first)] == pytest.approx(first, abs=1e-9)
    restart = spells.index(2.0, 1)
    assert sum(spells[:restart]) >= 100 - 10  # the first outage's spells cover it
    assert spells[restart:restart + 3] == pytest.approx([2.0, 4.0, 8.0], abs=1e-9)
