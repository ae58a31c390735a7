"""simulate(): the real breaker against the modelled backend, on virtual time."""

from __future__ import annotations

import math

import pytest

from cblab import CircuitBreakerConfig, ConfigError
from cblab.analysis import EVENT_DTYPES, events_frame, run_kpis
from cblab.faults.profile import FaultProfile, plan_request, rng_for
from cblab.faults.scenario import Scenario, ScenarioError
from cblab.schema import CALL_OUTCOMES, EVENT_COLUMNS
from cblab.sim import SERVICE_ROUTES, Engine, simulate, simulate_pair, single_phase
from cblab.sim.model import FAST_FAIL_S

CONFIG = CircuitBreakerConfig(failure_threshold=5, timeout=5.0)


def calls(run):
    return [e for e in run.events if e["kind"] == "call"]


def states(run):
    return [e for e in run.events if e["kind"] == "state"]


def test_same_seed_gives_identical_events_and_another_seed_does_not():
    a = simulate("flapping", CONFIG, seed=3)
    b = simulate("flapping", CONFIG, seed=3)
    assert a.events == b.events
    assert a.to_frame().equals(b.to_frame())
    c = simulate("flapping", CONFIG, seed=4)
    assert [e["t"] for e in calls(a)] != [e["t"] for e in calls(c)]
    assert a.events != c.events


def test_rows_are_schema_rows():
    run = simulate("hang", CONFIG, seed=1, variant="k5")
    events = run.events
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    names = {phase.name for phase in run.scenario.phases}
    for event in events:
        assert tuple(event) == EVENT_COLUMNS
        assert event["source"] == "sim" and event["variant"] == "k5"
        assert event["breaker"] == "github"
        assert event["phase"] in names
        if event["kind"] == "call":
            assert event["tool"] == "github_user"
            assert event["outcome"] in CALL_OUTCOMES
            assert event["latency"] >= 0
            assert event["reason"] is None
        else:
            assert event["tool"] is None and event["outcome"] is None
            assert event["reason"]
    frame = run.to_frame()
    assert {c: str(frame[c].dtype) for c in EVENT_COLUMNS} == {
        c: str(frame.astype(EVENT_DTYPES)[c].dtype) for c in EVENT_COLUMNS}
    assert events_frame(frame).equals(frame)  # already normalised
    assert events_frame(events).equals(frame)


def test_a_tripping_call_is_logged_after_its_state_change_as_the_server_logs_it():
    run = simulate("outage-and-recovery", CONFIG, seed=2)
    events = run.events
    trip = next(e for e in events if e["kind"] == "state" and e["state_after"] == "open")
    following = events[trip["seq"]]  # the next row
    assert following["kind"] == "call" and following["outcome"] == "failure"
    assert following["state"] == "closed" and following["state_after"] == "open"
    assert following["t"] + following["latency"] == pytest.approx(trip["t"])


def test_rejected_calls_cost_nothing_and_say_why():
    run = simulate("outage-and-recovery", CONFIG, seed=2)
    rejected = [e for e in calls(run) if e["outcome"] == "rejected"]
    assert rejected
    assert all(e["latency"] == 0.0 and e["error_type"] == "dependency_unavailable"
               for e in rejected)


def test_unprotected_sends_every_call_with_the_same_arrivals():
    protected, unprotected = simulate_pair("outage-and-recovery", CONFIG, seed=5)
    assert unprotected.variant == "unprotected"
    assert not states(unprotected)
    assert {e["outcome"] for e in calls(unprotected)} <= {"success", "failure"}
    assert len(calls(unprotected)) == unprotected.calls == protected.calls
    assert sorted(e["t"] for e in calls(unprotected)) == sorted(e["t"] for e in calls(protected))
    assert unprotected.counts["rejected"] == 0 and unprotected.counts["trips"] == 0


def test_protected_sheds_load_during_an_outage():
    protected, unprotected = simulate_pair("outage-and-recovery", CONFIG, seed=5)
    p, u = run_kpis(protected), run_kpis(unprotected)
    assert u["wasted"] > 500  # ~20/s for 30 s, every one sent to a dead service
    assert p["wasted"] < 0.05 * u["wasted"]
    assert p["share_failed_fast"] > 0.3
    assert p["trips"] == 1 and p["detection_s"] < 1.0


def test_overlapping_calls_produce_trials_and_late_outcomes():
    # slow, flaky answers arriving faster than they complete, and a short open timeout:
    # calls admitted before a trip finish after it (late), trials run alongside others
    scenario = single_phase(
        {"error_rate": 0.5, "latency": {"kind": "lognormal", "median_ms": 300, "sigma": 0.8}},
        duration_s=120, rate_per_s=40,
    )
    config = CircuitBreakerConfig(failure_threshold=3, timeout=0.5, half_open_max_calls=2,
                                  success_threshold=2)
    run = simulate(scenario, config, seed=1, deadline_s=1.0)
    outcomes = {e["outcome"] for e in calls(run)}
    assert {"late", "success", "failure", "rejected"} <= outcomes
    moves = {(e["state"], e["state_after"]) for e in states(run)}
    assert {("closed", "open"), ("open", "half_open"), ("half_open", "open"),
            ("half_open", "closed")} <= moves
    trials = [e for e in calls(run) if e["state"] == "half_open" and e["outcome"] != "rejected"]
    assert trials
    # half-open refuses callers while its two trials are in flight
    assert any(e["outcome"] == "rejected" and e["state"] == "half_open" for e in calls(run))
    assert any(e["error_type"] == "deadline_exceeded" for e in calls(run))
    assert run.counts["late"] == sum(e["outcome"] == "late" for e in calls(run)) > 0


def test_a_hung_trial_cannot_wedge_the_breaker():
    config = CircuitBreakerConfig(failure_threshold=3, timeout=1.0, max_trial_duration=0.5)
    run = simulate("hang", config, seed=1, deadline_s=5.0)
    reasons = [e["reason"] for e in states(run)]
    assert "trial call exceeded max_trial_duration" in reasons
    assert run.counts["trial_timeouts"] > 0
    # the hung trials end at their deadline, after the breaker gave up on them
    late = [e for e in calls(run) if e["outcome"] == "late"]
    assert any(e["state"] == "half_open" and e["error_type"] == "deadline_exceeded" for e in late)


def test_hung_requests_are_answered_when_the_service_recovers():
    run = simulate("hang", CONFIG, seed=1, protected=False, deadline_s=2.0)
    end_of_hang = 50.0
    held = [e for e in calls(run) if end_of_hang - 2.0 < e["t"] < end_of_hang]
    assert held
    for e in held:
        assert e["outcome"] == "success"
        assert e["t"] + e["latency"] == pytest.approx(end_of_hang)
    timed_out = [e for e in calls(run) if 30.0 <= e["t"] < end_of_hang - 2.0]
    assert timed_out and all(e["error_type"] == "deadline_exceeded" and
                             e["latency"] == pytest.approx(2.0) for e in timed_out)


def test_going_down_resets_requests_in_flight_and_then_refuses_connections():
    scenario = Scenario.from_dict({
        "name": "crash",
        "phases": [
            {"name": "up", "duration_s": 10, "faults": {"users": {
                "latency": {"kind": "constant", "ms": 500}}},
             "load": {"rate_per_s": 20}},
            {"name": "down", "duration_s": 10, "faults": {"users": {"mode": "down"}},
             "load": {"rate_per_s": 20}},
        ],
    })
    run = simulate(scenario, CONFIG, seed=1, protected=False)
    cut = [e for e in calls(run) if 9.5 < e["t"] < 10.0]
    assert cut and all(e["error_type"] == "ReadError" and
                       e["t"] + e["latency"] == pytest.approx(10.0) for e in cut)
    refused = [e for e in calls(run) if e["t"] >= 10.0]
    assert refused and all(e["error_type"] == "ConnectError" and
                           e["latency"] == pytest.approx(FAST_FAIL_S) for e in refused)


def test_backend_decisions_are_plan_request_on_the_live_backends_rng():
    # Decisions come from rng_for(seed, service), one plan per request that reaches
    # the service, none while it is down: replaying that stream predicts every call.
    flaky = {"error_rate": 0.4, "status_mix": {"500": 1, "503": 1},
             "latency": {"kind": "constant", "ms": 1}}
    scenario = Scenario.from_dict({
        "name": "flaky-down-flaky",
        "phases": [
            {"name": "a", "duration_s": 20, "faults": {"users": flaky},
             "load": {"rate_per_s": 10, "arrivals": "constant"}},
            {"name": "down", "duration_s": 5, "faults": {"users": {"mode": "down"}},
             "load": {"rate_per_s": 10, "arrivals": "constant"}},
            {"name": "b", "duration_s": 20, "faults": {"users": flaky},
             "load": {"rate_per_s": 10, "arrivals": "constant"}},
        ],
    })
    run = simulate(scenario, CONFIG, seed=42, protected=False)
    profile, rng = FaultProfile.from_dict(flaky), rng_for(42, "users")
    reached = [e for e in calls(run) if e["phase"] != "down"]
    assert len(reached) == 400
    for event in reached:
        plan = plan_request(profile, rng)
        expected = None if plan.kind == "ok" else f"http_{plan.status}"
        assert event["error_type"] == expected
        assert event["outcome"] == ("success" if plan.kind == "ok" else "failure")


def test_capacity_limit_rejects_overflow_with_a_fast_503():
    run = simulate("overload", CONFIG, seed=1, service="orders", protected=False)
    assert run.breaker == "database" and run.tool == "order_lookup"
    events = calls(run)
    overflow = [e for e in events if e["error_type"] == "http_503"]
    assert len(overflow) > 100
    assert all(e["latency"] == pytest.approx(FAST_FAIL_S) for e in overflow)
    served = sorted((e["t"], e["t"] + e["latency"]) for e in events
                    if e["error_type"] != "http_503")
    assert _max_overlap(served) <= 4


def test_capacity_queue_serves_one_at_a_time_and_deadlines_fire():
    scenario = single_phase(
        {"latency": {"kind": "constant", "ms": 100}, "max_concurrency": 1, "overflow": "queue"},
        duration_s=10, rate_per_s=15, arrivals="constant",
    )
    run = simulate(scenario, CONFIG, seed=1, protected=False, deadline_s=1.0)
    events = calls(run)
    answered = [e for e in events if e["outcome"] == "success"]
    # each answer is the end of a 100 ms service; services never overlap
    services = sorted((e["t"] + e["latency"] - 0.1, e["t"] + e["latency"]) for e in answered)
    assert _max_overlap([(a + 1e-9, b - 1e-9) for a, b in services]) == 1
    waits = [e["latency"] for e in answered]
    assert max(waits) > 0.5  # the queue builds up
    assert any(e["error_type"] == "deadline_exceeded" for e in events)


def _max_overlap(intervals):
    points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals],
                    key=lambda p: (p[0], p[1]))
    level = peak = 0
    for _, step in points:
        level += step
        peak = max(peak, level)
    return peak


@pytest.mark.parametrize(("name", "service"), [
    ("outage-and-recovery", "users"), ("hang", "users"), ("overload", "orders"),
    ("flapping", "users"), ("brownout", "users"),
])
def test_finishing_calls_inline_gives_the_same_events_as_the_heap(monkeypatch, name, service):
    config = CircuitBreakerConfig(failure_threshold=3, timeout=2.0, half_open_max_calls=2)
    fast = simulate(name, config, seed=9, service=service)
    monkeypatch.setattr(Engine, "jump", lambda self, when: False)
    monkeypatch.setattr(Engine, "advance", lambda self, when: False)
    slow = simulate(name, config, seed=9, service=service)
    assert slow.events == fast.events


def test_service_routes_match_the_demo_server():
    pytest.importorskip("fastmcp")
    from cblab.server.tools import TOOL_BREAKERS

    assert {tool: breaker for breaker, tool in SERVICE_ROUTES.values()} == TOOL_BREAKERS


def test_bad_inputs_are_refused_clearly():
    with pytest.raises(ScenarioError, match="unknown scenario"):
        simulate("no-such-scenario", seed=1)
    with pytest.raises(ConfigError, match="failure_threshold"):
        simulate("hang", {"failure_threshold": 0}, seed=1)
    with pytest.raises(ValueError, match="deadline_s"):
        simulate("hang", seed=1, deadline_s=0)
    with pytest.raises(ValueError, match="deadline_s"):
        simulate("hang", seed=1, deadline_s=math.inf)
    with pytest.raises(ValueError, match="unknown service"):
        simulate("hang", seed=1, service="payments")
    with pytest.raises(TypeError, match="seed"):
        simulate("hang", seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config"):
        simulate("hang", "fast", seed=1)  # type: ignore[arg-type]


def test_time_scale_and_rate_override():
    run = simulate("outage-and-recovery", CONFIG, seed=1, time_scale=0.1, rate=100)
    assert run.duration_s == pytest.approx(9.0)
    assert abs(run.calls - 900) < 5 * math.sqrt(900)
