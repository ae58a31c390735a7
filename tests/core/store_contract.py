"""The breaker-store contract (see cblab/_store.py), as tests any store must pass.

Reuse it for another store by importing the tests and providing `store_factory`
(a zero-argument callable returning a fresh `BreakerStore`; for a shared store,
calls must return stores over the same shared data, and `unique_name` keeps
tests apart):

    from tests.core.store_contract import *  # noqa: F403

    @pytest.fixture
    def store_factory(redis_url):
        return lambda: RedisStore(redis_url, namespace="contract")

Every test awaits `record.flush()` before it checks what a second attach sees,
so a store with background work is tested on what reached the store.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cblab import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    CountWindow,
    CumulativeFailures,
    ManualClock,
    Outcome,
    TimeWindow,
)
from cblab._store import MemoryStore, Mode, Snapshot

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
_names = itertools.count()


@pytest.fixture
def unique_name() -> str:
    return f"contract-{next(_names)}"


def attach(store_factory, name, now=100.0, **config):
    changes: list[Snapshot] = []
    return store_factory().attach(name, CircuitBreakerConfig(**config), now, changes.append)


def trip(record, now=100.0, failures=None):
    """Fail until the record trips (or `failures` times)."""
    for _ in range(failures or 1_000):
        snap = record.record_failure(record.snapshot().generation, now, False)
        if snap.state is OPEN:
            break
    return snap


def half_open(record, now=100.0, timeout=30.0):
    trip(record, now)
    return record.half_open_if_due(now + timeout)


def test_a_new_record_is_closed_at_generation_zero(store_factory, unique_name):
    snap = attach(store_factory, unique_name).snapshot()
    assert (snap.state, snap.mode, snap.generation) == (CLOSED, Mode.NORMAL, 0)
    assert (snap.leases, snap.trial_successes, snap.trips_in_a_row) == ({}, 0, 0)
    assert snap.success_matters is False  # consecutive policy, count zero


def test_failures_count_and_trip_in_one_operation(store_factory, unique_name):
    record = attach(store_factory, unique_name, failure_threshold=3, timeout=30)
    for _ in range(2):
        snap = record.record_failure(0, 100.0, False)
        assert (snap.state, snap.generation, snap.success_matters) == (CLOSED, 0, True)
    snap = record.record_failure(0, 101.0, False)
    assert (snap.state, snap.generation, snap.trips_in_a_row) == (OPEN, 1, 1)
    assert (snap.opened_at, snap.open_until, snap.changed_at) == (101.0, 131.0, 101.0)
    assert snap.reason == "3 consecutive failures"


def test_a_success_resets_the_consecutive_count(store_factory, unique_name):
    record = attach(store_factory, unique_name, failure_threshold=2)
    record.record_failure(0, 100.0, False)
    snap = record.record_success(0, 100.0, False)
    assert snap.success_matters is False  # nothing left to reset: the next success is free
    snap = record.record_failure(0, 100.0, False)
    assert snap.state is CLOSED  # one failure in a row, not two


def test_late_outcomes_change_nothing(store_factory, unique_name):
    record = attach(store_factory, unique_name, failure_threshold=1)
    trip(record, failures=1)
    before = record.snapshot().copy()
    assert record.record_failure(0, 200.0, False) == before
    assert record.record_success(0, 200.0, False) == before
    assert record.settle_trial(0, 1, Outcome.SUCCESS, 200.0) == before


def test_open_moves_to_half_open_only_when_due_stamped_at_due_time(store_factory, unique_name):
    record = attach(store_factory, unique_name, failure_threshold=3, timeout=30)
    trip(record)
    assert record.half_open_if_due(129.9).state is OPEN
    snap = record.half_open_if_due(175.0)
    assert (snap.state, snap.generation, snap.changed_at) == (HALF_OPEN, 2, 130.0)
    assert snap.reason == "open timeout elapsed"
    assert record.half_open_if_due(180.0).generation == 2  # idempotent


def test_exactly_half_open_max_calls_leases(store_factory, unique_name):
    record = attach(store_factory, unique_name, half_open_max_calls=2, success_threshold=2)
    assert record.lease_trial(100.0)[0] == 0  # CLOSED: no trials
    half_open(record)
    leases = [record.lease_trial(131.0)[0] for _ in range(4)]
    assert leases[:2] != [0, 0] and len(set(leases[:2])) == 2 and leases[2:] == [0, 0]
    assert len(record.snapshot().leases) == 2


def test_a_lease_held_past_max_trial_duration_reopens(store_factory, unique_name):
    record = attach(
        store_factory,
        unique_name,
        half_open_max_calls=1,
        success_threshold=1,
        max_trial_duration=5,
        timeout=30,
        backoff_multiplier=2,
    )
    half_open(record)
    lease, _ = record.lease_trial(130.0)
    assert lease and record.lease_trial(134.9)[0] == 0  # held, not yet expired
    lease, snap = record.lease_trial(135.0)
    assert (lease, snap.state, snap.generation, snap.trips_in_a_row) == (0, OPEN, 3, 2)
    assert snap.reason == "trial call exceeded max_trial_duration"
    assert snap.open_until == 135.0 + 60.0  # the second trip in a row waits twice as long


def test_trial_successes_close_at_success_threshold(store_factory, unique_name):
    record = attach(store_factory, unique_name, half_open_max_calls=3, success_threshold=2)
    half_open(record)
    gen = record.snapshot().generation
    first, second = record.lease_trial(131.0)[0], record.lease_trial(131.0)[0]
    snap = record.settle_trial(gen, first, Outcome.SUCCESS, 132.0)
    assert (snap.state, snap.trial_successes, len(snap.leases)) == (HALF_OPEN, 1, 1)
    snap = record.settle_trial(gen, second, Outcome.SLOW, 133.0)
    assert (snap.state, snap.generation, snap.reason) == (CLOSED, gen + 1, "trial calls succeeded")
    assert (snap.trips_in_a_row, snap.leases, snap.trial_successes) == (0, {}, 0)
    assert record.figures(133.0)["consecutive_failures"] == 0


def test_a_failed_trial_reopens(store_factory, unique_name):
    record = attach(store_factory, unique_name, timeout=30)
    half_open(record)
    gen = record.snapshot().generation
    lease, _ = record.lease_trial(131.0)
    snap = record.settle_trial(gen, lease, Outcome.FAILURE, 132.0)
    assert (snap.state, snap.generation, snap.reason) == (OPEN, gen + 1, "trial call failed")
    assert (snap.trips_in_a_row, snap.opened_at, snap.open_until) == (2, 132.0, 162.0)


def test_a_cancelled_or_excluded_trial_frees_its_slot(store_factory, unique_name):
    record = attach(store_factory, unique_name, half_open_max_calls=1, success_threshold=1)
    half_open(record)
    gen = record.snapshot().generation
    for outcome in (Outcome.CANCELLED, Outcome.EXCLUDED):
        lease, _ = record.lease_trial(131.0)
        assert lease and record.lease_trial(131.0)[0] == 0
        snap = record.settle_trial(gen, lease, outcome, 131.5)
        assert (snap.state, snap.generation, snap.leases) == (HALF_OPEN, gen, {})


@pytest.mark.parametrize(
    ("mode", "state"),
    [(Mode.FORCED_OPEN, OPEN), (Mode.FORCED_CLOSED, CLOSED), (Mode.DISABLED, CLOSED)],
)
def test_manual_modes(store_factory, unique_name, mode, state):
    record = attach(store_factory, unique_name, failure_threshold=1)
    snap = record.set_mode(mode, 100.0, "by hand")
    assert (snap.state, snap.mode, snap.generation, snap.reason) == (state, mode, 1, "by hand")
    assert snap.trips_in_a_row == 0  # a manual move is not a trip
    # outside NORMAL mode nothing trips or half-opens on its own
    assert record.record_failure(1, 101.0, False).state is state
    assert record.half_open_if_due(10_000.0).state is state


def test_reset_clears_backoff_and_counts(store_factory, unique_name):
    record = attach(store_factory, unique_name, failure_threshold=2)
    trip(record, failures=2)
    snap = record.set_mode(Mode.NORMAL, 101.0, "reset")
    assert (snap.state, snap.mode, snap.trips_in_a_row, snap.generation) == (
        CLOSED,
        Mode.NORMAL,
        0,
        2,
    )
    assert record.figures(101.0)["consecutive_failures"] == 0


def test_reconfigure_keeps_state_restarts_counts_recomputes_open_until(store_factory, unique_name):
    record = attach(store_factory, unique_name, failure_threshold=3, timeout=30)
    record.record_failure(0, 100.0, False)
    snap = record.reconfigure(CircuitBreakerConfig(failure_threshold=3, timeout=30), 100.0)
    assert (snap.generation, record.figures(100.0)["consecutive_failures"]) == (0, 0)
    trip(record)
    snap = record.reconfigure(CircuitBreakerConfig(timeout=5), 101.0)
    assert (snap.state, snap.generation, snap.open_until) == (OPEN, 1, 105.0)


@pytest.mark.parametrize(
    ("policy", "matters"),
    [(CumulativeFailures(), False), (CountWindow(size=4, minimum_calls=2), True)],
)
def test_success_matters_follows_the_policy(store_factory, unique_name, policy, matters):
    record = attach(store_factory, unique_name, policy=policy)
    assert record.snapshot().success_matters is matters
    assert record.record_failure(0, 100.0, False).success_matters is matters


def test_a_window_policy_counts_through_the_store_and_can_trip_on_a_success(
    store_factory, unique_name
):
    policy = CountWindow(size=4, minimum_calls=4, failure_rate_threshold=0.5)
    record = attach(store_factory, unique_name, policy=policy)
    record.record_failure(0, 100.0, False)
    record.record_failure(0, 100.0, False)
    assert record.record_success(0, 100.0, False).state is CLOSED  # 3 calls < minimum
    snap = record.record_success(0, 100.0, False)  # 2 of 4 failed: 50%
    assert (snap.state, snap.reason) == (OPEN, "failure rate 50% reached 50%")


def test_a_time_window_expires_counts(store_factory, unique_name):
    policy = TimeWindow(window=10, buckets=10, minimum_calls=1, failure_rate_threshold=1.0)
    record = attach(store_factory, unique_name, policy=policy)
    record.record_success(0, 100.0, False)
    assert record.figures(105.0)["calls"] == 1
    assert record.figures(111.0)["calls"] == 0


async def test_flush_then_a_second_attach_sees_what_reached_the_store(store_factory, unique_name):
    record = attach(store_factory, unique_name, failure_threshold=1)
    trip(record, failures=1)
    await record.flush()
    other = attach(store_factory, unique_name, failure_threshold=1).snapshot()
    if store_factory().shared:  # replicas agree on the record
        assert (other.state, other.generation) == (OPEN, 1)
    else:  # each breaker its own record
        assert (other.state, other.generation) == (CLOSED, 0)


# --- the breaker over this store behaves exactly as over MemoryStore ------------------

_step = st.one_of(
    st.tuples(st.just("call"), st.sampled_from(["success", "failure", "excluded", "cancelled"])),
    st.tuples(st.just("settle"), st.integers(0, 5)),
    st.tuples(st.just("advance"), st.sampled_from([0.5, 3.0, 11.0])),
    st.tuples(st.just("manual"), st.sampled_from(["force_open", "force_closed", "reset"])),
)


def _run(store, script, name):
    clock = ManualClock(100.0)
    config = CircuitBreakerConfig(
        failure_threshold=2,
        success_threshold=2,
        half_open_max_calls=2,
        timeout=10,
        max_trial_duration=20,
        backoff_multiplier=2,
        max_timeout=40,
    )
    breaker = CircuitBreaker(name, config, clock=clock, store=store)
    pending = []
    for kind, arg in script:
        if kind == "call":
            permit = breaker.admit()
            if permit.admitted:
                pending.append((permit, arg))
        elif kind == "settle" and pending:
            permit, outcome = pending.pop(arg % len(pending))
            breaker.record(permit, outcome)
        elif kind == "advance":
            clock.advance(arg)
        elif kind == "manual":
            getattr(breaker, arg)()
    events = [event for _, event in breaker.event_log.since().events]
    status = breaker.get_status()
    status.pop("last_failure")  # wall-clock time
    return [(e.kind, *e.to_dict().values()) for e in events], status


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(script=st.lists(_step, max_size=40))
def test_a_breaker_on_this_store_matches_one_on_memory(store_factory, script):
    name = f"contract-diff-{next(_names)}"
    assert _run(store_factory(), script, name) == _run(MemoryStore(), script, name)
