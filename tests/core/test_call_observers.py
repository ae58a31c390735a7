"""`add_listener(listener, on_call=...)`: calls reach `on_call` as four fields (no
CallRecord built, the inline success paths kept) and `listener` hears state changes
only. What the observer sees is checked against the event log, on every call path."""

import asyncio

import pytest

from cblab import CallRecord, CircuitBreaker, CircuitBreakerConfig, CountWindow, StateChange
from cblab._clock import ManualClock

from .conftest import Boom, fail, ok


class Excluded(Exception):
    pass


def log_of(breaker):
    events = [e for _, e in breaker.event_log.since(0).events]
    calls = [(e.state, e.outcome, e.duration, e.error_type) for e in events
             if isinstance(e, CallRecord)]
    return calls, [e for e in events if isinstance(e, StateChange)]


async def drive_every_path(breaker: CircuitBreaker, clock: ManualClock) -> None:
    """success (call's and record's inline paths), slow, failure, excluded, cancelled,
    rejected, a half-open trial, late, and call_sync; each taking a known time."""

    async def takes(seconds, result="ok"):
        clock.advance(seconds)
        return result

    assert await breaker.call(takes, 0.25) == "ok"  # call()'s inline success
    permit = breaker.admit()
    clock.advance(0.5)
    breaker.record(permit, "success")  # record()'s inline success
    assert await breaker.call(takes, 7.0) == "ok"  # slow
    with pytest.raises(Excluded):
        await breaker.call(lambda: _raise(Excluded()))
    breaker.record(breaker.admit(), "cancelled")
    assert breaker.call_sync(lambda: "sync") == "sync"
    late = breaker.admit()
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.call(fail)  # the second trips
    clock.advance(1.0)
    breaker.record(late, "failure", error_type="Timeout")  # admitted before the trip
    assert not breaker.admit().admitted  # rejected
    clock.advance(60)
    assert await breaker.call(takes, 0.125) == "ok"  # a half-open trial


async def _raise(exc):
    raise exc


def make(clock: ManualClock) -> CircuitBreaker:
    window = CountWindow(size=4, minimum_calls=4, failure_rate_threshold=0.5,
                         slow_call_duration=5.0)
    return CircuitBreaker("dep", CircuitBreakerConfig(
        policy=window, timeout=30, half_open_max_calls=1, success_threshold=1,
        excluded_exceptions=(Excluded,)), clock=clock)


async def test_the_observer_sees_what_the_log_records_on_every_path():
    clock = ManualClock(1000.0)
    breaker = make(clock)
    calls, changes = [], []
    breaker.add_listener(changes.append, on_call=lambda *fields: calls.append(fields))
    await drive_every_path(breaker, clock)
    logged_calls, logged_changes = log_of(breaker)
    assert calls == logged_calls
    assert [c[1] for c in calls] == ["success", "success", "slow", "excluded", "cancelled",
                                     "success", "failure", "failure", "late", "rejected",
                                     "success"]
    assert calls[0][2] == 0.25 and calls[1][2] == 0.5 and calls[-1][2] == 0.125
    assert calls[8] == ("closed", "late", 1.0, "Timeout")
    assert changes == logged_changes
    assert [(c.from_state, c.to_state) for c in changes] == [
        ("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert breaker.listener_errors == 0


async def test_observers_and_plain_listeners_together_each_get_their_share():
    clock = ManualClock(1000.0)
    breaker = make(clock)
    everything, first, second, state_only = [], [], [], []
    breaker.add_listener(everything.append)
    breaker.add_listener(state_only.append, on_call=lambda *f: first.append(f))
    breaker.add_listener(lambda event: 1 / 0, on_call=lambda *f: 1 / 0)  # counted, harmless
    breaker.add_listener(lambda event: None, on_call=lambda *f: second.append(f))
    await drive_every_path(breaker, clock)
    logged_calls, logged_changes = log_of(breaker)
    assert first == second == logged_calls
    assert [e for e in everything if isinstance(e, CallRecord)] == [
        e for _, e in breaker.event_log.since(0).events if isinstance(e, CallRecord)]
    assert state_only == logged_changes == [e for e in everything
                                            if isinstance(e, StateChange)]
    # the raising pair: once per call (on_call) and once per state change (listener)
    assert breaker.listener_errors == len(logged_calls) + len(logged_changes)


async def test_a_raising_observer_never_breaks_the_inline_paths():
    breaker = CircuitBreaker("dep")
    breaker.add_listener(lambda event: None, on_call=lambda *f: 1 / 0)
    assert await breaker.call(ok) == "ok"
    breaker.record(breaker.admit(), "success")
    assert breaker.successes == 2 and breaker.listener_errors == 2


async def test_removing_the_listener_removes_its_observer():
    breaker = CircuitBreaker("dep", CircuitBreakerConfig(failure_threshold=1))
    calls, changes = [], []
    breaker.add_listener(changes.append, on_call=lambda *f: calls.append(f))
    await breaker.call(ok)
    breaker.remove_listener(changes.append)
    await breaker.call(ok)
    with pytest.raises(Boom):
        await breaker.call(fail)
    assert len(calls) == 1 and changes == []
    with pytest.raises(ValueError):
        breaker.remove_listener(changes.append)


def test_on_call_must_be_callable():
    with pytest.raises(TypeError, match="on_call must be callable, got 3"):
        CircuitBreaker("dep").add_listener(print, on_call=3)  # type: ignore[arg-type]


def test_observers_run_in_the_callers_context():
    """The point of a listener on the call path: it sees the caller's context (a span)."""
    import contextvars

    current = contextvars.ContextVar("current", default=None)
    breaker = CircuitBreaker("dep")
    seen = []
    breaker.add_listener(print, on_call=lambda *f: seen.append(current.get()))

    async def one(tag):
        current.set(tag)
        await breaker.call(ok)

    async def both():
        await asyncio.gather(one("a"), one("b"))

    asyncio.run(both())
    assert sorted(seen) == ["a", "b"]
