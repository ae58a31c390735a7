"""Failure-counting policies, each on its own and through a breaker."""

import pytest

from cblab import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    ConsecutiveFailures,
    CountWindow,
    CumulativeFailures,
    ManualClock,
    Outcome,
    TimeWindow,
)


def feed(breaker, clock, pattern, step=0.0):
    """Record outcomes from a string: '.' success, 'x' failure. Returns states after each."""
    states = []
    for ch in pattern:
        permit = breaker.admit()
        if permit.admitted:
            breaker.record(permit, Outcome.SUCCESS if ch == "." else Outcome.FAILURE)
        states.append(breaker.state)
        clock.advance(step)
    return states


def make(policy, failure_threshold=5):
    clock = ManualClock()
    config = CircuitBreakerConfig(failure_threshold=failure_threshold, policy=policy, timeout=60)
    return CircuitBreaker("dep", config, clock=clock), clock


def test_cumulative_trips_a_healthy_service_consecutive_does_not():
    """The write-up's counting: 10% errors, never two in a row, still trips it."""
    pattern = (
        "........." + "x" + "........." + "x" + "........." + "x" + "........." + "x" + ".........x"
    )
    cumulative, c1 = make(CumulativeFailures())
    consecutive, c2 = make(ConsecutiveFailures())
    assert feed(cumulative, c1, pattern)[-1] is CircuitState.OPEN
    assert feed(consecutive, c2, pattern)[-1] is CircuitState.CLOSED


def test_count_window_needs_minimum_calls_then_trips_on_rate():
    breaker, clock = make(CountWindow(size=10, minimum_calls=5, failure_rate_threshold=0.5))
    assert feed(breaker, clock, "xxxx")[-1] is CircuitState.CLOSED  # 4 calls < minimum
    assert breaker.get_status()["policy"]["failure_rate"] == -1.0
    assert feed(breaker, clock, "x")[-1] is CircuitState.OPEN
    reasons = [e.reason for _, e in breaker.event_log.since(0).events if e.kind == "state"]
    assert reasons == ["failure rate 100% reached 50%"]


def test_count_window_can_trip_on_a_success():
    """Rates move with every call: reaching minimum_calls with a success can trip it."""
    breaker, clock = make(CountWindow(size=10, minimum_calls=4, failure_rate_threshold=0.5))
    assert feed(breaker, clock, "xx.")[-1] is CircuitState.CLOSED  # 3 calls < minimum
    assert feed(breaker, clock, ".")[-1] is CircuitState.OPEN  # 2 of 4 failed: 50%


async def test_count_window_trips_on_a_success_through_call_too():
    breaker, clock = make(CountWindow(size=10, minimum_calls=4, failure_rate_threshold=0.5))
    feed(breaker, clock, "xx.")

    async def ok():
        return 1

    await breaker.call(ok)
    assert breaker.state is CircuitState.OPEN


def test_count_window_forgets_old_calls():
    breaker, clock = make(CountWindow(size=4, minimum_calls=4, failure_rate_threshold=0.75))
    feed(breaker, clock, "xx..")  # 50%
    feed(breaker, clock, "..")  # the two failures slide out
    status = breaker.get_status()["policy"]
    assert status["calls"] == 4 and status["failures"] == 0
    assert feed(breaker, clock, "xx")[-1] is CircuitState.CLOSED  # 2/4
    assert feed(breaker, clock, "x")[-1] is CircuitState.OPEN  # 3/4


def test_time_window_forgets_calls_older_than_window():
    breaker, clock = make(
        TimeWindow(window=10, buckets=5, minimum_calls=3, failure_rate_threshold=0.6)
    )
    feed(breaker, clock, "xx", step=1.0)
    clock.advance(20)  # both failures are now out of the window
    assert breaker.get_status()["policy"]["calls"] == 0
    assert feed(breaker, clock, "x.", step=1.0)[-1] is CircuitState.CLOSED
    assert feed(breaker, clock, "x", step=1.0)[-1] is CircuitState.OPEN  # 2/3 within 10 s


def test_time_window_partial_expiry_by_bucket():
    breaker, clock = make(
        TimeWindow(window=10, buckets=10, minimum_calls=1, failure_rate_threshold=1.0)
    )
    feed(breaker, clock, "....", step=3.0)  # at t = 0, 3, 6, 9
    clock.set(12.5)  # one-second buckets: the window now holds [3, 13)
    assert breaker.get_status()["policy"]["calls"] == 3
    clock.set(13.5)  # [4, 14): the call at t=3 has gone too
    assert breaker.get_status()["policy"]["calls"] == 2


def test_window_closes_and_starts_clean():
    breaker, clock = make(CountWindow(size=4, minimum_calls=2, failure_rate_threshold=0.5))
    feed(breaker, clock, "xx")
    assert breaker.state is CircuitState.OPEN
    clock.advance(60)
    feed(breaker, clock, "..")
    assert breaker.state is CircuitState.CLOSED
    assert breaker.get_status()["policy"]["calls"] == 0


@pytest.mark.parametrize(
    "policy", [ConsecutiveFailures(), CumulativeFailures(), CountWindow(), TimeWindow()]
)
def test_every_policy_reports_its_name_and_figures(policy):
    breaker, _ = make(policy)
    figures = breaker.get_status()["policy"]
    assert figures["name"] == policy.name
    assert len(figures) > 1
