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


def test_trimming_keeps_the_newest_capacity_events_and_their_numbers():
    log = EventLog(capacity=4)
    for i in range(1, 12):  # crosses the trim line (2 x capacity) once
        log.append(i)
        page = log.since(0)
        assert [seq for seq, _ in page.events] == [e for _, e in page.events]  # seq == value
        assert len(page.events) == min(i, 4) and page.missed == max(i - 4, 0)
        assert log.last_seq == i and len(log) == min(i, 4)
    assert len(log._items) <= 8  # bounded by twice the capacity


def test_appends_racing_trims_and_readers_keep_sequence_numbers_true():
    log = EventLog(capacity=50)
    seen_bad = []

    def writer(tag):
        for i in range(5_000):
            log.append((tag, i))

    def reader():
        after = 0
        for _ in range(2_000):
            page = log.since(after)
            seqs = [seq for seq, _ in page.events]
            if seqs and seqs != list(range(seqs[0], seqs[0] + len(seqs))):
                seen_bad.append(seqs)
            after = page.last_seq

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    threads.append(threading.Thread(target=reader))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not seen_bad
    assert log.last_seq == 20_000
    tail = [event for _, event in log.since(0).events]
    assert len(tail) == 50
    for tag in range(4):  # each writer's own events stay in order
        mine = [i for t, i in tail if t == tag]
        assert mine == sorted(mine)
