"""Every transition of the state machine, on a manual clock (no test sleeps)."""

import math
from datetime import timedelta

import pytest

from cblab import (
    CircuitOpenError,
    CircuitState,
    Outcome,
    StateChange,
)

from .conftest import Boom, fail, ok

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


async def trip(breaker, n):
    for _ in range(n):
        with pytest.raises(Boom):
            await breaker.call(fail)


def state_changes(breaker):
    return [e for _, e in breaker.event_log.since(0).events if isinstance(e, StateChange)]


async def test_defaults_match_the_write_up(make_breaker):
    breaker = make_breaker()
    config = breaker.config
    assert (config.failure_threshold, config.success_threshold) == (5, 2)
    assert (config.timeout, config.half_open_max_calls) == (30.0, 3)
    assert breaker.state is CLOSED
    assert CircuitState("half_open") is HALF_OPEN


async def test_timeout_accepts_timedelta(make_breaker):
    assert make_breaker(timeout=timedelta(minutes=1)).config.timeout == 60.0


async def test_trips_after_threshold_consecutive_failures(make_breaker):
    breaker = make_breaker(failure_threshold=3)
    await trip(breaker, 2)
    assert breaker.state is CLOSED
    await trip(breaker, 1)
    assert breaker.state is OPEN
    assert [(c.from_state, c.to_state) for c in state_changes(breaker)] == [(CLOSED, OPEN)]
    assert state_changes(breaker)[0].reason == "3 consecutive failures"


async def test_success_while_closed_resets_the_count(make_breaker):
    """The write-up never reset failures while closed; cblab does."""
    breaker = make_breaker(failure_threshold=3)
    for _ in range(10):
        await trip(breaker, 2)
        assert await breaker.call(ok) == "ok"
    assert breaker.state is CLOSED
    assert breaker.get_status()["policy"]["consecutive_failures"] == 0


async def test_open_rejects_without_calling_and_reports_retry_after(make_breaker, clock):
    breaker = make_breaker(failure_threshold=1, timeout=30)
    await trip(breaker, 1)
    called = []

    async def spy():
        called.append(1)

    clock.advance(12)
    with pytest.raises(CircuitOpenError) as info:
        await breaker.call(spy)
    assert called == []
    assert info.value.retry_after == pytest.approx(18.0)
    assert info.value.name == "dep" and info.value.state is OPEN
    assert "retry after 18s" in str(info.value)
    assert breaker.rejected == 1


async def test_half_open_after_timeout_then_closes_after_success_threshold(make_breaker, clock):
    breaker = make_breaker(failure_threshold=1, timeout=30, success_threshold=2)
    await trip(breaker, 1)
    clock.advance(29.999)
    assert breaker.state is OPEN
    clock.advance(0.001)
    assert breaker.state is HALF_OPEN
    await breaker.call(ok)
    assert breaker.state is HALF_OPEN
    await breaker.call(ok)
    assert breaker.state is CLOSED
    moves = [(c.from_state, c.to_state, c.at) for c in state_changes(breaker)]
    assert moves == [(CLOSED, OPEN, 1000.0), (OPEN, HALF_OPEN, 1030.0), (HALF_OPEN, CLOSED, 1030.0)]


async def test_half_open_change_is_stamped_when_due_not_when_noticed(make_breaker, clock):
    breaker = make_breaker(failure_threshold=1, timeout=10)
    await trip(breaker, 1)
    clock.advance(500)  # nobody looked for a long time
    assert breaker.state is HALF_OPEN
    assert state_changes(breaker)[-1].at == 1010.0


async def test_failure_in_half_open_reopens_and_restarts_timer(make_breaker, clock):
    breaker = make_breaker(failure_threshold=1, timeout=30)
    await trip(breaker, 1)
    clock.advance(30)
    await trip(breaker, 1)
    assert breaker.state is OPEN
    assert breaker.get_status()["retry_after"] == pytest.approx(30.0)
    clock.advance(29)
    assert breaker.state is OPEN
    clock.advance(1)
    assert breaker.state is HALF_OPEN


async def test_half_open_admits_at_most_max_calls(make_breaker, clock):
    breaker = make_breaker(
        failure_threshold=1, timeout=5, half_open_max_calls=2, success_threshold=2
    )
    await trip(breaker, 1)
    clock.advance(5)
    first, second, third = breaker.admit(), breaker.admit(), breaker.admit()
    assert first.admitted and second.admitted and not third.admitted
    assert third.state is HALF_OPEN
    breaker.record(first, Outcome.SUCCESS)
    assert not breaker.admit().admitted  # a used slot stays used until the episode ends
    breaker.record(second, Outcome.SUCCESS)
    assert breaker.state is CLOSED


@pytest.mark.parametrize("outcome", [Outcome.CANCELLED, Outcome.EXCLUDED])
async def test_cancelled_or_excluded_trial_releases_its_slot(make_breaker, clock, outcome):
    breaker = make_breaker(
        failure_threshold=1, timeout=5, half_open_max_calls=1, success_threshold=1
    )
    await trip(breaker, 1)
    clock.advance(5)
    trial = breaker.admit()
    assert not breaker.admit().admitted
    breaker.record(trial, outcome)
    assert breaker.state is HALF_OPEN
    retry = breaker.admit()
    assert retry.admitted
    breaker.record(retry, Outcome.SUCCESS)
    assert breaker.state is CLOSED


async def test_hung_trial_cannot_wedge_the_breaker(make_breaker, clock):
    breaker = make_breaker(
        failure_threshold=1,
        timeout=5,
        half_open_max_calls=1,
        success_threshold=1,
        max_trial_duration=2,
    )
    await trip(breaker, 1)
    clock.advance(5)
    hung = breaker.admit()
    assert hung.admitted
    clock.advance(1.9)
    refused = breaker.admit()
    assert not refused.admitted and refused.retry_after == pytest.approx(0.1)
    clock.advance(0.1)
    assert not breaker.admit().admitted  # gives up on the trial: re-opens
    assert breaker.state is OPEN and breaker.trial_timeouts == 1
    clock.advance(5)
    probe = breaker.admit()
    assert probe.admitted
    breaker.record(probe, Outcome.SUCCESS)
    assert breaker.state is CLOSED
    assert breaker.record(hung, Outcome.SUCCESS) is Outcome.LATE  # finally returns: changes nothing
    assert breaker.state is CLOSED


async def test_late_outcome_is_counted_but_changes_no_state(make_breaker, clock):
    breaker = make_breaker(failure_threshold=2, timeout=10)
    slow = breaker.admit()  # admitted while closed, generation 0
    await trip(breaker, 2)
    assert breaker.state is OPEN
    assert breaker.record(slow, Outcome.FAILURE) is Outcome.LATE
    clock.advance(10)
    assert breaker.state is HALF_OPEN
    old = breaker.admit()
    clock.advance(0)
    breaker.force_closed()
    assert breaker.record(old, Outcome.FAILURE) is Outcome.LATE
    assert breaker.state is CLOSED
    assert breaker.late == 2
    assert breaker.failures == 2


async def test_record_twice_is_an_error(make_breaker):
    breaker = make_breaker()
    permit = breaker.admit()
    breaker.record(permit, Outcome.SUCCESS)
    with pytest.raises(RuntimeError, match="already recorded"):
        breaker.record(permit, Outcome.FAILURE)


async def test_cannot_record_rejected_as_outcome(make_breaker):
    breaker = make_breaker()
    with pytest.raises(ValueError, match="rejected"):
        breaker.record(breaker.admit(), Outcome.REJECTED)


async def test_backoff_lengthens_open_time_up_to_cap_and_resets_on_close(make_breaker, clock):
    breaker = make_breaker(failure_threshold=1, timeout=10, backoff_multiplier=2, max_timeout=35)
    await trip(breaker, 1)
    waits = []
    for _ in range(4):
        waits.append(breaker.get_status()["retry_after"])
        clock.advance(waits[-1])
        await trip(breaker, 1)  # the trial fails: trip again
    assert waits == [10, 20, 35, 35]
    clock.advance(35)
    await breaker.call(ok)
    await breaker.call(ok)
    assert breaker.state is CLOSED
    await trip(breaker, 1)
    assert breaker.get_status()["retry_after"] == 10


async def test_clock_jumping_far_ahead_only_moves_to_half_open(make_breaker, clock):
    breaker = make_breaker(failure_threshold=1, timeout=10)
    await trip(breaker, 1)
    clock.advance(10**9)
    assert breaker.state is HALF_OPEN
    assert breaker.get_status()["retry_after"] == 0.0


async def test_clock_stepping_back_keeps_breaker_open(make_breaker, clock):
    breaker = make_breaker(failure_threshold=1, timeout=10)
    await trip(breaker, 1)
    clock.set(500.0)  # a broken clock goes back in time: stay open, never admit early
    assert breaker.state is OPEN
    assert not breaker.admit().admitted


async def test_zero_timeout_goes_straight_to_half_open(make_breaker):
    breaker = make_breaker(failure_threshold=1, timeout=0)
    await trip(breaker, 1)
    assert breaker.state is HALF_OPEN


async def test_slow_successes_trip_a_window_with_slow_call_threshold(make_breaker, clock):
    from cblab import CountWindow

    breaker = make_breaker(
        policy=CountWindow(
            size=10,
            minimum_calls=4,
            failure_rate_threshold=1.0,
            slow_call_duration=1.0,
            slow_call_rate_threshold=0.5,
        )
    )
    for duration in (0.1, 2.0, 0.1, 2.0):
        permit = breaker.admit()
        clock.advance(duration)
        breaker.record(permit, Outcome.SUCCESS)
    assert breaker.state is OPEN
    assert breaker.slow_calls == 2
    assert state_changes(breaker)[-1].reason == "slow-call rate 50% reached 50%"


async def test_status_has_write_up_keys_and_more(make_breaker, clock):
    breaker = make_breaker(failure_threshold=2)
    await breaker.call(ok)
    await trip(breaker, 2)
    status = breaker.get_status()
    for key in ("name", "state", "failures", "successes", "last_failure"):
        assert key in status
    assert status["state"] == "open" and status["failures"] == 2 and status["successes"] == 1
    assert status["last_failure"].endswith("+00:00")
    assert status["retry_after"] == pytest.approx(30.0)
    for key in ("rejected", "excluded", "cancelled", "late", "policy", "mode"):
        assert key in status
    assert status["policy"]["name"] == "consecutive"


async def test_forced_open_rejects_until_reset(make_breaker, clock):
    breaker = make_breaker()
    breaker.force_open()
    clock.advance(10**6)
    rejection = breaker.admit()
    assert not rejection.admitted and math.isinf(rejection.retry_after)
    assert breaker.get_status()["retry_after"] is None
    with pytest.raises(CircuitOpenError) as info:
        await breaker.call(ok)
    assert "retry after" not in str(info.value)
    breaker.reset()
    assert breaker.state is CLOSED and breaker.mode == "normal"
    assert await breaker.call(ok) == "ok"


@pytest.mark.parametrize("switch", ["disable", "force_closed"])
async def test_disabled_and_forced_closed_never_trip_but_count(make_breaker, switch):
    breaker = make_breaker(failure_threshold=1)
    getattr(breaker, switch)()
    await trip(breaker, 20)
    assert breaker.state is CLOSED and breaker.failures == 20 and breaker.rejected == 0
    breaker.reset()
    await trip(breaker, 1)
    assert breaker.state is OPEN


async def test_reconfigure_live_keeps_state_and_applies_new_timeout(make_breaker, clock):
    breaker = make_breaker(failure_threshold=1, timeout=60)
    await trip(breaker, 1)
    clock.advance(5)
    breaker.reconfigure(breaker.config.replace(timeout=5))
    assert breaker.state is HALF_OPEN


async def test_listener_sees_events_and_cannot_break_calls(make_breaker):
    breaker = make_breaker(failure_threshold=1)
    seen = []
    breaker.add_listener(seen.append)
    breaker.add_listener(lambda event: 1 / 0)
    await breaker.call(ok)
    await trip(breaker, 1)
    kinds = [e.kind for e in seen]
    assert kinds == ["call", "call", "state"]
    assert breaker.listener_errors == 3
    breaker.remove_listener(seen.append)
    assert not breaker.admit().admitted
    assert len(seen) == 3


async def test_unknown_outcome_names_itself(make_breaker):
    breaker = make_breaker()
    with pytest.raises(ValueError, match="'succes'"):
        breaker.record(breaker.admit(), "succes")
    assert breaker.record(breaker.admit(), "success") is Outcome.SUCCESS


async def test_trips_and_failed_probes_are_counted_apart(make_breaker, clock):
    """A trip is CLOSED -> OPEN (the glossary's and cblab.analysis's); a failed probe is
    HALF_OPEN -> OPEN. A dependency down for three open timeouts is one trip and two
    failed probes, not three trips; a forced open counts as neither."""
    breaker = make_breaker(failure_threshold=2, success_threshold=1, timeout=10)
    await trip(breaker, 2)
    for _ in range(2):  # still down: each probe fails
        clock.advance(10)
        assert breaker.state is HALF_OPEN
        await trip(breaker, 1)
        assert breaker.state is OPEN
    clock.advance(10)
    assert await breaker.call(ok) == "ok" and breaker.state is CLOSED
    await trip(breaker, 2)  # a second outage: a second trip
    moves = [(e.from_state, e.to_state) for e in state_changes(breaker)]
    assert (breaker.trips, breaker.probe_failures) == (
        moves.count((CLOSED, OPEN)), moves.count((HALF_OPEN, OPEN))) == (2, 2)
    status = breaker.get_status()
    assert (status["trips"], status["probe_failures"]) == (2, 2)
    breaker.reset()
    breaker.force_open()
    assert (breaker.trips, breaker.probe_failures) == (2, 2)
