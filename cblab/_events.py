"""What a breaker reports: states, call outcomes, events and the bounded event log."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple


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


class CallRecord(NamedTuple):
    """One call through a breaker. A tuple, because one is built for every call."""

    breaker: str
    admitted_at: float  # breaker clock, seconds
    duration: float  # seconds; 0.0 for a rejected call
    outcome: Outcome
    state: CircuitState  # state at admission
    error_type: str | None
    generation: int

    kind = "call"

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

    kind = "state"

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
_make_record = CallRecord._make


class _Boxed:
    """A plain tuple appended by a user, kept apart from a breaker's raw call fields."""

    __slots__ = ("value",)

    def __init__(self, value: tuple) -> None:
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

    Numbering and appending happen in one C-level step (no Python bytecode in
    between, so no thread switch), which keeps the sequence in order without a
    lock: breakers in threads and on an event loop share a log and never wait.
    When full, the oldest events are dropped; readers learn how many they
    missed from the gap in sequence numbers.
    """

    __slots__ = ("_buffer", "_extend", "_seq", "capacity")

    def __init__(self, capacity: int = 10_000) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ValueError(f"capacity must be an integer >= 1, got {capacity!r}")
        self.capacity = capacity
        # Entries are (event, seq). A breaker's hot path stores a call as the plain
        # tuple of its CallRecord fields and `since` builds the NamedTuple; any
        # other plain tuple is boxed on the way in, so the two never mix up.
        self._buffer: deque[tuple[Any, int]] = deque(maxlen=capacity)
        self._extend = self._buffer.extend
        self._seq = itertools.count(1)

    def append(self, event: Any) -> None:
        """Add an event (any object; breakers add CallRecords and StateChanges)."""
        if type(event) is tuple:
            event = _Boxed(event)
        # zip() pairs the event with the next number inside C: atomic under the GIL.
        # The event comes first so zip stops before drawing a number it won't use.
        self._extend(zip((event,), self._seq))  # noqa: B905 (strict= costs 1 µs)

    def _append_call_fields(self, fields: tuple) -> None:
        """A breaker's call, as the plain tuple of CallRecord fields (see `CircuitBreaker`)."""
        self._extend(zip((fields,), self._seq))  # noqa: B905

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest event, 0 when empty."""
        buffer = self._buffer
        return buffer[-1][1] if buffer else 0

    def since(self, after: int = 0, limit: int | None = None) -> LogSlice:
        """Events with a sequence number greater than `after`, oldest first."""
        snapshot = list(self._buffer)  # one C-level copy: consistent under the GIL
        if not snapshot:
            return LogSlice([], after, 0)
        first = snapshot[0][1]
        start = max(after + 1 - first, 0)
        missed = max(first - after - 1, 0)
        stop = None if limit is None else start + limit
        events = [(seq, _unpack(event)) for event, seq in snapshot[start:stop]]
        last = events[-1][0] if events else after
        return LogSlice(events, last, missed)

    def __len__(self) -> int:
        return len(self._buffer)
