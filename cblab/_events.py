"""What a breaker reports: states, call outcomes, events and the bounded event log."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Literal, NamedTuple


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Outcome(StrEnum):
    """How one call ended, as recorded in a `CallRecord`."""

    SUCCESS = "success"
    FAILURE = "failure"
    SLOW = "slow"  # succeeded, but slower than the policy's slow_call_duration
    REJECTED = "rejected"  # refused by the breaker; the function never ran
    EXCLUDED = "excluded"  # raised an excluded exception: neither success nor failure
    CANCELLED = "cancelled"  # cancelled or interrupted: neither success nor failure
    LATE = "late"  # finished after the breaker changed state: counted, changes nothing


class _CallFields(NamedTuple):
    breaker: str
    admitted_at: float  # breaker clock, seconds
    duration: float  # seconds; 0.0 for a rejected call
    outcome: Outcome
    state: CircuitState  # state at admission
    error_type: str | None
    generation: int


class CallRecord(_CallFields):
    """One call through a breaker. A tuple, because one is built for every call."""

    __slots__ = ()
    kind: ClassVar[Literal["call"]] = "call"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "call", **self._asdict()}


@dataclass(frozen=True, slots=True)
class StateChange:
    breaker: str
    at: float  # breaker clock, seconds
    from_state: CircuitState
    to_state: CircuitState
    reason: str
    generation: int  # the generation that starts with this change

    kind: ClassVar[Literal["state"]] = "state"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "state",
            "breaker": self.breaker,
            "at": self.at,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "reason": self.reason,
            "generation": self.generation,
        }


Event = CallRecord | StateChange
#: `CircuitBreaker.add_listener(..., on_call=)`: one call as (state at admission,
#: outcome, duration in seconds, error type), with no CallRecord built.
CallObserver = Callable[[CircuitState, Outcome, float, str | None], Any]
_make_record = CallRecord._make


class _Boxed:
    """A plain tuple appended by a user, kept apart from a breaker's raw call fields."""

    __slots__ = ("value",)

    def __init__(self, value: tuple[Any, ...]) -> None:
        self.value = value


def _unpack(stored: Any) -> Any:
    kind = type(stored)
    if kind is tuple:
        return _make_record(stored)
    return stored.value if kind is _Boxed else stored


class LogSlice(NamedTuple):
    """What `EventLog.since` returns: events after a sequence number, and what was lost."""

    events: list[tuple[int, Event]]  # (seq, event), oldest first
    last_seq: int  # pass this to the next `since` call
    missed: int  # events the reader never saw because the log overwrote them


class EventLog:
    """A bounded, sequence-numbered log that never blocks the call path.

    Appending is one `list.append` (atomic under the GIL, no lock), and an
    event's sequence number is its position: `seq = trimmed + index + 1`.
    Breakers in threads and on an event loop share a log and never wait on
    each other. The list may grow to twice `capacity`; then the appender that
    crossed the line trims the oldest half under a lock that only readers and
    trimming take (so one append in `capacity` waits at most for a reader's
    copy). Readers see the newest `capacity` events and learn how many they
    missed from the gap in sequence numbers.
    """

    __slots__ = ("_items", "_append", "_trimmed", "_lock", "_limit", "capacity")

    def __init__(self, capacity: int = 10_000) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ValueError(f"capacity must be an integer >= 1, got {capacity!r}")
        self.capacity = capacity
        # A breaker's hot path stores a call as the plain tuple of its CallRecord
        # fields and `since` builds the NamedTuple; any other plain tuple is boxed
        # on the way in, so the two never mix up.
        self._items: list[Any] = []
        self._append = self._items.append
        self._trimmed = 0  # events dropped from the front so far
        self._lock = threading.Lock()
        self._limit = 2 * capacity  # trim when the list reaches this length

    def append(self, event: Any) -> None:
        """Add an event (any object; breakers add CallRecords and StateChanges)."""
        if type(event) is tuple:
            event = _Boxed(event)
        self._append(event)
        if len(self._items) >= self._limit:
            self._trim()

    def _trim(self) -> None:
        """Drop all but the newest `capacity` events (called by appenders, rarely)."""
        with self._lock:
            excess = len(self._items) - self.capacity
            if excess > 0:
                # Appends may land meanwhile: they go to the end and keep their seq.
                del self._items[:excess]
                self._trimmed += excess

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest event, 0 when empty."""
        with self._lock:
            return self._trimmed + len(self._items)

    def since(self, after: int = 0, limit: int | None = None) -> LogSlice:
        """Events with a sequence number greater than `after`, oldest first."""
        with self._lock:  # a consistent (trimmed, items) pair
            items, trimmed = self._items, self._trimmed
            total = len(items)
            first = trimmed + max(total - self.capacity, 0) + 1  # oldest seq a reader sees
            start = max(after + 1, first)
            stop = trimmed + total + 1 if limit is None else min(start + limit, trimmed + total + 1)
            chunk = items[start - trimmed - 1 : stop - trimmed - 1]
        events = [(seq, _unpack(event)) for seq, event in enumerate(chunk, start)]
        last = events[-1][0] if events else after
        return LogSlice(events, last, max(first - after - 1, 0) if total else 0)

    def __len__(self) -> int:
        return min(len(self._items), self.capacity)
