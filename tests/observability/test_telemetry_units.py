"""BreakerTelemetry on one breaker and a manual clock: the metrics' values against
calls made by hand, the pending-durations bound, and `spans=False`."""

from __future__ import annotations

import pytest
from opentelemetry import trace

from cblab import CircuitBreaker, CircuitBreakerConfig
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
    breaker = CircuitBreaker("dep")
    otel.telemetry.watch(breaker)
    otel.telemetry.watch(breaker)
    assert len(breaker._listeners) == 1
    otel.telemetry.unwatch(breaker)
    assert breaker._listeners == []


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
