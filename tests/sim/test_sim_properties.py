"""Invariants of every simulated run, over random settings and faults (hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cblab import CircuitBreakerConfig, ConsecutiveFailures, CountWindow
from cblab.faults.scenario import Scenario
from cblab.sim import simulate

profiles = st.one_of(
    st.fixed_dictionaries({"mode": st.sampled_from(["down", "hang"])}),
    st.fixed_dictionaries({
        "error_rate": st.sampled_from([0.0, 0.2, 0.7, 1.0]),
        "reset_rate": st.sampled_from([0.0, 0.1]),
        "latency": st.sampled_from([
            {"kind": "constant", "ms": 5}, {"kind": "lognormal", "median_ms": 200, "sigma": 1.0}]),
        "max_concurrency": st.sampled_from([None, 2]),
        "overflow": st.sampled_from(["reject", "queue"]),
    }),
)


@st.composite
def configs(draw):
    half_open = draw(st.integers(1, 3))
    policy = draw(st.sampled_from([ConsecutiveFailures(),
                                   CountWindow(size=10, minimum_calls=5)]))
    return CircuitBreakerConfig(
        failure_threshold=draw(st.integers(1, 5)),
        success_threshold=draw(st.integers(1, half_open)),
        half_open_max_calls=half_open,
        timeout=draw(st.sampled_from([0.0, 0.3, 2.0])),
        max_trial_duration=draw(st.sampled_from([None, 0.2])),
        backoff_multiplier=draw(st.sampled_from([1.0, 2.0])),
        policy=policy,
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    faults=st.lists(profiles, min_size=1, max_size=3),
    config=configs(),
    seed=st.integers(0, 10**6),
    deadline=st.sampled_from([0.1, 0.5, 2.0]),
    protected=st.booleans(),
)
def test_every_run_keeps_the_breakers_books(faults, config, seed, deadline, protected):
    scenario = Scenario.from_dict({"name": "random", "phases": [
        {"name": f"p{i}", "duration_s": 3, "faults": {"users": profile},
         "load": {"rate_per_s": 30}}
        for i, profile in enumerate(faults)]})
    run = simulate(scenario, config, seed=seed, deadline_s=deadline, protected=protected)
    events = run.events
    calls = [e for e in events if e["kind"] == "call"]
    changes = [e for e in events if e["kind"] == "state"]
    # one row per arrival, each admitted within the run, answered within the deadline
    assert len(calls) == run.calls
    assert all(0 <= e["t"] < scenario.total_duration_s for e in calls)
    assert all(0 <= e["latency"] <= deadline + 1e-9 for e in calls)
    # the state rows form one chain from CLOSED, one generation at a time
    state, generation = "closed", 0
    for change in changes:
        assert change["state"] == state and change["state_after"] != state
        assert change["generation"] == generation + 1
        state, generation = change["state_after"], change["generation"]
    # nothing is admitted while OPEN; refusals only happen when not CLOSED
    for e in calls:
        if e["outcome"] == "rejected":
            assert e["state"] in ("open", "half_open") and e["latency"] == 0
        else:
            assert e["state"] in ("closed", "half_open")
    # the rows agree with the breaker's own counters
    counts = run.counts
    assert counts["rejected"] == sum(e["outcome"] == "rejected" for e in calls)
    assert counts["late"] == sum(e["outcome"] == "late" for e in calls)
    assert counts["calls"] == sum(e["outcome"] != "rejected" for e in calls)
    assert counts["trips"] == sum(e["state"] == "closed" and e["state_after"] == "open"
                                  for e in changes)
    assert counts["probe_failures"] == sum(e["state"] == "half_open" and e["state_after"] == "open"
                                           for e in changes)
    if not protected:
        assert not changes and counts["rejected"] == 0
