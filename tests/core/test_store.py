"""The in-memory store passes the store contract; the breaker follows a shared store's pushes."""

from __future__ import annotations

import pytest

from cblab import CircuitBreaker, CircuitBreakerConfig, CircuitState, ConfigError, ManualClock
from cblab._store import MemoryRecord, MemoryStore, Mode
from tests.core.store_contract import *  # noqa: F403


@pytest.fixture
def store_factory():
    return MemoryStore


class PushingStore:
    """A stand-in for a shared store: keeps each record and its breaker's on_change."""

    shared = True

    def __init__(self) -> None:
        self.pushes = {}
        self.records = {}

    def attach(self, name, config, now, on_change):
        self.pushes[name] = on_change
        self.records[name] = MemoryRecord(config, now)
        return self.records[name]


def test_the_default_store_is_memory_and_bad_stores_are_refused():
    assert isinstance(CircuitBreaker("dep").store, MemoryStore)
    with pytest.raises(ConfigError, match="store must be a BreakerStore"):
        CircuitBreaker("dep", store="redis://localhost")


def test_a_change_pushed_by_the_store_is_adopted_and_logged():
    clock, store = ManualClock(100.0), PushingStore()
    breaker = CircuitBreaker("dep", CircuitBreakerConfig(timeout=30), clock=clock, store=store)
    record = store.records["dep"]
    # another replica trips the shared record: the store updates it and pushes
    snap = record.set_mode(Mode.FORCED_OPEN, 101.0, "tripped by replica 2")
    store.pushes["dep"](snap)
    assert (breaker.state, breaker.generation, breaker.mode) == (
        CircuitState.OPEN,
        1,
        Mode.FORCED_OPEN,
    )
    assert not breaker.admit().admitted  # the cached view refuses with no store call
    change = breaker.event_log.since().events[0][1]
    assert (change.from_state, change.to_state, change.reason) == (
        CircuitState.CLOSED,
        CircuitState.OPEN,
        "tripped by replica 2",
    )
    assert breaker.trips == 0  # not this breaker's trip
    # a push that changes no generation refreshes the view and logs nothing
    store.pushes["dep"](record.snapshot())
    assert len(breaker.event_log) == 2  # the change and the rejection


def test_a_healthy_closed_call_never_reaches_the_store():
    calls = []

    class CountingRecord(MemoryRecord):
        def record_success(self, *args):
            calls.append("success")
            return super().record_success(*args)

    class CountingStore(MemoryStore):
        def attach(self, name, config, now, on_change):
            return CountingRecord(config, now)

    breaker = CircuitBreaker("dep", store=CountingStore(), clock=ManualClock())
    for _ in range(5):
        breaker.record(breaker.admit(), "success")
    assert calls == []
    breaker.record(breaker.admit(), "failure")
    breaker.record(breaker.admit(), "success")  # resets the count: one write
    breaker.record(breaker.admit(), "success")
    assert calls == ["success"]


def test_a_registry_hands_its_store_to_every_breaker():
    from cblab import BreakerRegistry

    store = PushingStore()
    registry = BreakerRegistry(clock=ManualClock(), store=store)
    registry.get("github")
    registry.get("database")
    assert set(store.records) == {"github", "database"}
    assert registry.get("github").store is store


def test_every_move_is_checked_against_the_legal_move_table():
    class JumpingRecord(MemoryRecord):
        def record_failure(self, generation, now, slow):
            snap = super().record_failure(generation, now, slow)
            self._move(CircuitState.HALF_OPEN, now, "skipped OPEN")  # not a legal move
            return snap

    class JumpingStore(MemoryStore):
        def attach(self, name, config, now, on_change):
            return JumpingRecord(config, now)

    breaker = CircuitBreaker("dep", store=JumpingStore(), clock=ManualClock())
    with pytest.raises(AssertionError, match="illegal move closed -> half_open"):
        breaker.record(breaker.admit(), "failure")


def test_manual_moves_are_in_the_table_and_set_the_mode_enum():
    from cblab._breaker import _AUTOMATIC_MOVES, _MANUAL_MOVES

    assert set(_AUTOMATIC_MOVES) == {
        (CircuitState.CLOSED, CircuitState.OPEN),
        (CircuitState.OPEN, CircuitState.HALF_OPEN),
        (CircuitState.HALF_OPEN, CircuitState.OPEN),
        (CircuitState.HALF_OPEN, CircuitState.CLOSED),
    }
    breaker = CircuitBreaker("dep", clock=ManualClock())
    for action, mode, state in [
        ("force_open", Mode.FORCED_OPEN, CircuitState.OPEN),
        ("force_closed", Mode.FORCED_CLOSED, CircuitState.CLOSED),
        ("disable", Mode.DISABLED, CircuitState.CLOSED),
        ("reset", Mode.NORMAL, CircuitState.CLOSED),
    ]:
        before = breaker.state
        getattr(breaker, action)()
        assert (before, state) in _MANUAL_MOVES
        assert breaker.mode is mode and breaker.mode == mode.value
        assert breaker.get_status()["mode"] == mode.value
