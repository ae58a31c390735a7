"""The event log and the registry's status/metrics shapes."""

import threading

import pytest

from cblab import BreakerRegistry, CircuitBreakerConfig, EventLog, ManualClock, Outcome, StateChange


def test_since_returns_events_after_a_sequence_number():
    log = EventLog(capacity=10)
    for i in range(5):
        log.append(i)
    page = log.since(2)
    assert [seq for seq, _ in page.events] == [3, 4, 5]
    assert page.last_seq == 5 and page.missed == 0
    assert log.since(5).events == [] and log.since(5).last_seq == 5
    limited = log.since(0, limit=2)
    assert [seq for seq, _ in limited.events] == [1, 2] and limited.last_seq == 2


def test_reader_learns_how_many_events_it_missed():
    log = EventLog(capacity=3)
    for i in range(10):
        log.append(i)
    page = log.since(2)
    assert [seq for seq, _ in page.events] == [8, 9, 10]
    assert page.missed == 5
    assert len(log) == 3 and log.last_seq == 10


def test_empty_log():
    log = EventLog()
    assert log.since(0) == ([], 0, 0) and log.last_seq == 0


def test_bad_capacity():
    with pytest.raises(ValueError, match="capacity"):
        EventLog(0)


def test_appends_from_many_threads_keep_unique_gap_free_sequence():
    log = EventLog(capacity=100_000)

    def writer():
        for i in range(5_000):
            log.append(i)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = [seq for seq, _ in log.since(0).events]
    assert seqs == list(range(1, 40_001))


def test_registry_shares_one_log_and_reports_write_up_shapes():
    clock = ManualClock()
    registry = BreakerRegistry(clock=clock)
    github = registry.get("github", CircuitBreakerConfig(failure_threshold=1))
    registry.get("database")
    github.record(github.admit(), Outcome.FAILURE)
    metrics = registry.metrics()
    assert metrics["summary"] == {"total": 2, "open": 1, "closed": 1, "half_open": 0}
    assert [c["name"] for c in metrics["circuits"]] == ["github", "database"]
    assert set(registry.status()) == {"github", "database"}
    assert registry.status()["github"]["state"] == "open"
    events = [e for _, e in registry.event_log.since(0).events]
    assert any(isinstance(e, StateChange) and e.breaker == "github" for e in events)


def test_events_serialise_to_plain_dicts():
    clock = ManualClock()
    registry = BreakerRegistry(clock=clock)
    breaker = registry.get("github", CircuitBreakerConfig(failure_threshold=1))
    breaker.record(breaker.admit(), Outcome.FAILURE, error_type="ConnectError")
    call, change = [e.to_dict() for _, e in registry.event_log.since(0).events]
    assert call == {
        "kind": "call",
        "breaker": "github",
        "admitted_at": 0.0,
        "duration": 0.0,
        "outcome": "failure",
        "state": "closed",
        "error_type": "ConnectError",
        "generation": 0,
    }
    assert change["kind"] == "state" and change["to_state"] == "open"


def test_any_object_appended_comes_back_untouched():
    log = EventLog()
    log.append(("a", 1))
    log.append({"kind": "custom"})
    assert [event for _, event in log.since(0).events] == [("a", 1), {"kind": "custom"}]
