"""The discrete-event engine: ordering, ties, and which calls move time."""

from __future__ import annotations

import math

import pytest

from cblab import CircuitBreaker, CircuitBreakerConfig, CircuitState
from cblab.sim import EmptySchedule, Engine


def test_events_run_in_time_order_and_ties_in_scheduling_order():
    env = Engine()
    log = []
    env.schedule(2.0, log.append, "c")
    env.schedule(1.0, log.append, "a")
    env.schedule(1.0, log.append, "b")  # same instant: after "a", scheduled first
    env.schedule_at(0.5, log.append, "first")
    env.run()
    assert log == ["first", "a", "b", "c"]
    assert env.now == 2.0
    assert len(env) == 0


def test_callbacks_can_schedule_more_work():
    env = Engine()
    seen = []

    def tick(n):
        seen.append((env.now, n))
        if n < 3:
            env.schedule(1.5, tick, n + 1)

    env.schedule(0, tick, 0)
    env.run()
    assert seen == [(0.0, 0), (1.5, 1), (3.0, 2), (4.5, 3)]


def test_run_until_stops_at_until_and_includes_events_due_then():
    env = Engine()
    log = []
    for t in (1.0, 2.0, 3.0):
        env.schedule_at(t, log.append, t)
    env.run(until=2.0)
    assert log == [1.0, 2.0]
    assert env.now == 2.0
    env.run(until=2.5)
    assert env.now == 2.5 and log == [1.0, 2.0]
    assert env.peek() == 3.0
    with pytest.raises(ValueError, match="already"):
        env.run(until=1.0)


def test_now_is_read_only_and_the_engine_is_a_clock():
    env = Engine(10.0)
    with pytest.raises(AttributeError):
        env.now = 5.0  # type: ignore[misc]
    assert env() == 10.0
    breaker = CircuitBreaker("dep", CircuitBreakerConfig(failure_threshold=1, timeout=5),
                             clock=env)
    permit = breaker.admit()
    env.run(until=11.0)
    breaker.record(permit, "failure")
    assert breaker.state is CircuitState.OPEN
    env.run(until=16.0)
    assert breaker.state is CircuitState.HALF_OPEN


def test_bad_schedules_are_refused():
    env = Engine()
    with pytest.raises(ValueError, match="delay"):
        env.schedule(-1, print)
    with pytest.raises(ValueError, match="delay"):
        env.schedule(math.nan, print)
    env.run(until=5.0)
    with pytest.raises(ValueError, match="already"):
        env.schedule_at(4.0, print)
    with pytest.raises(EmptySchedule):
        env.step()
    with pytest.raises(ValueError, match="start"):
        Engine(math.inf)


def test_step_runs_exactly_one_event():
    env = Engine()
    log = []
    env.schedule(1, log.append, 1)
    env.schedule(2, log.append, 2)
    env.step()
    assert log == [1] and env.now == 1.0 and env.peek() == 2.0


def test_jump_moves_only_when_nothing_is_due_first():
    env = Engine()
    env.schedule_at(2.0, print)
    assert env.jump(1.0) and env.now == 1.0
    assert not env.jump(2.0)  # an event is due at that instant: schedule instead
    assert not env.jump(3.0)
    assert not env.jump(0.5)  # never backwards
    assert env.now == 1.0


def test_advance_runs_what_is_due_strictly_before():
    env = Engine()
    log = []
    env.schedule_at(1.0, log.append, "a")
    env.schedule_at(2.0, log.append, "b")
    assert env.advance(1.5) and env.now == 1.5 and log == ["a"]
    assert not env.advance(2.0)  # "b" is due at the same instant
    assert log == ["a"] and env.now == 1.5
    assert env.advance(2.5) and log == ["a", "b"] and env.now == 2.5
