"""BreakerTelemetry on one breaker and a manual clock: the metrics' values against
calls made by hand, the pending-durations bound, and `spans=False`."""

from __future__ import annotations

import pytest
from opentelemetry import trace

from cblab import CircuitBreaker, CircuitBreakerConfig, CountWindow
from cblab._clock import ManualClock
from cblab.integrations.otel import CALLS, DURATION, NAME, OUTCOME, BreakerTelemetry

from .conftest import Otel


def drive(breaker: CircuitBreaker, clock: ManualClock, plan: list[tuple[str, float]]) -> None:
    for outcome, seconds in plan:
        permit = breaker.admit()
        if not permit.admitted:
            continue
        clock.advance(seconds)
        breaker.record(permit, outcome)


PLAN = [("success", 0.5), ("success", 0.25), ("excluded", 1.0), ("failure", 2.0),
        ("failure", 4.0), ("success", 9.0)]  # the second failure trips: the last is refused


@pytest.mark.parametrize("pending", [16_384, 1, 0])
def test_counts_and_durations_match_the_calls(otel: Otel, pending: int) -> None:
    clock = ManualClock()
    telemetry = BreakerTelemetry(meter_provider=otel.telemetry_meter_provider,
                                 pending_durations=pending)
    breaker = telemetry.watch(CircuitBreaker(
        "dep", CircuitBreakerConfig(failure_threshold=2, timeout=60), clock=clock))
    drive(breaker, clock, PLAN)
    assert breaker.state == "open"
    calls = otel.values(CALLS, NAME, OUTCOME)
    assert calls == {("dep", "success"): 2, ("dep", "excluded"): 1, ("dep", "failure"): 2,
                     ("dep", "rejected"): 1}
    points = {attrs[OUTCOME]: p for attrs, p in otel.points(DURATION)}
    expected = {"success": [0.5, 0.25], "excluded": [1.0], "failure": [2.0, 4.0]}
    assert {k: (p.count, p.sum) for k, p in points.items()} == {
        k: (len(v), sum(v)) for k, v in expected.items()}
    assert len(telemetry._durations) <= pending


def test_spans_false_leaves_the_span_alone(otel: Otel) -> None:
    telemetry = BreakerTelemetry(meter_provider=otel.telemetry_meter_provider, spans=False)
    clock = ManualClock()
    breaker = telemetry.watch(CircuitBreaker(
        "dep", CircuitBreakerConfig(failure_threshold=1), clock=clock))
    with trace.get_tracer("test").start_as_current_span("call") as span:
        drive(breaker, clock, [("failure", 1.0)])
    assert breaker.state == "open"
    assert not [k for k in span.attributes if k.startswith("resilience.")]
    assert not span.events
    assert otel.values(CALLS, OUTCOME) == {("failure",): 1}  # metrics still counted


def test_watching_twice_adds_one_listener(otel: Otel) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("dep", clock=clock)
    otel.telemetry.watch(breaker)
    otel.telemetry.watch(breaker)
    with trace.get_tracer("test").start_as_current_span("call") as span:
        drive(breaker, clock, [("success", 1.0)])
    assert span.attributes["resilience.circuit_breaker.outcome"] == "success"
    otel.telemetry.unwatch(breaker)
    drive(breaker, clock, [("success", 2.0)])
    assert [(p.count, p.sum) for _, p in otel.points(DURATION)] == [(1, 1.0)]  # one, once


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_bad_pending_durations_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="pending_durations must be an integer >= 0"):
        BreakerTelemetry(pending_durations=bad)  # type: ignore[arg-type]


def test_two_telemetries_on_one_meter_provider_both_report(otel: Otel) -> None:
    clock = ManualClock()
    second = BreakerTelemetry(meter_provider=otel.telemetry_meter_provider)
    drive(otel.telemetry.watch(CircuitBreaker("first", clock=clock)), clock, [("success", 1)])
    drive(second.watch(CircuitBreaker("second", clock=clock)), clock, [("failure", 1)])
    assert otel.values(CALLS, NAME, OUTCOME) == {("first", "success"): 1,
                                                 ("second", "failure"): 1}


def test_every_outcome_on_the_span(otel: Otel) -> None:
    """success, slow (a success with `slow`), failure, excluded, cancelled, late and
    rejected, each on the span current when the breaker recorded it."""
    clock = ManualClock()
    window = CountWindow(size=10, minimum_calls=1, slow_call_duration=5.0)
    breaker = otel.telemetry.watch(CircuitBreaker(
        "dep", CircuitBreakerConfig(policy=window), clock=clock))
    tracer = trace.get_tracer("test")
    seen = {}
    for outcome, seconds in [("success", 1), ("success", 6), ("excluded", 1),
                             ("cancelled", 1)]:
        with tracer.start_as_current_span(outcome) as span:
            drive(breaker, clock, [(outcome, seconds)])
        seen[outcome, seconds] = dict(span.attributes)
    with tracer.start_as_current_span("late") as span:
        permit = breaker.admit()
        breaker.force_open("maintenance")  # the call in flight is now late
        breaker.record(permit, "failure")
    seen["late"] = dict(span.attributes)
    with tracer.start_as_current_span("refused") as span:
        assert not breaker.admit().admitted
    seen["refused"] = dict(span.attributes)
    out = {k: v["resilience.circuit_breaker.outcome"] for k, v in seen.items()}
    assert out == {("success", 1): "success", ("success", 6): "success",
                   ("excluded", 1): "excluded", ("cancelled", 1): "cancelled",
                   "late": "late", "refused": "rejected"}
    assert seen["success", 6]["resilience.circuit_breaker.slow"] is True
    assert "resilience.circuit_breaker.slow" not in seen["success", 1]
    assert seen["refused"]["resilience.circuit_breaker.state"] == "open"
    assert seen["refused"]["error.type"] == "circuit_open"
    assert "error.type" not in seen["late"]


def test_a_recorded_local_overload_is_counted_once(otel: Otel) -> None:
    """The middleware records a call its own process was too slow for as excluded, then
    reports local overload: the calls metric counts it once, as local_overload."""
    clock = ManualClock()
    breaker = otel.telemetry.watch(CircuitBreaker("dep", clock=clock))
    drive(breaker, clock, [("excluded", 1), ("excluded", 1)])
    otel.telemetry.local_overload(breaker, recorded=True)  # the second one was that
    otel.telemetry.local_overload(breaker)  # and one never reached the breaker
    assert otel.values(CALLS, OUTCOME) == {("excluded",): 1, ("local_overload",): 2}


def test_the_call_paths_span_lookup_is_the_apis(otel: Otel) -> None:
    """The call path reads the current span through a shortcut (two private names of
    opentelemetry-api): it must find exactly what `trace.get_current_span` finds, with
    no span, inside one, nested, and after leaving it."""
    from cblab.integrations.otel import _get_current_span

    assert _get_current_span is not trace.get_current_span, "the shortcut is not in use"
    tracer = trace.get_tracer("test")
    assert _get_current_span() is trace.get_current_span() is trace.INVALID_SPAN
    with tracer.start_as_current_span("outer") as outer:
        assert _get_current_span() is trace.get_current_span() is outer
        with tracer.start_as_current_span("inner") as inner:
            assert _get_current_span() is inner
        with trace.use_span(trace.INVALID_SPAN):
            assert _get_current_span() is trace.get_current_span()
        assert _get_current_span() is outer
    assert _get_current_span() is trace.INVALID_SPAN
