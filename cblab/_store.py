"""Where a breaker's state lives: the store seam, and the in-memory store.

A `CircuitBreaker` keeps no state of its own beyond a cached view and its
metrics counters. Its state (CLOSED/OPEN/HALF_OPEN), mode, generation,
open-until, trips in a row, half-open trial leases and the failure policy's
counts live in a *state record* obtained from a `BreakerStore`:

    record = store.attach(name, config, now, on_change)

`MemoryStore` (the default) keeps the record in this process. A shared store
(Redis, `cblab.stores`) keeps one record per breaker name for many replicas.

## Operations

Every operation below is **atomic** on the record (a shared store runs each as
one server-side script) and returns the record's `Snapshot` after it. The
breaker learns about a state change by comparing `snapshot.generation` with the
generation it holds; the snapshot's `reason` and `changed_at` describe the
latest change. `now` is the breaker's clock (seconds); every time in a
snapshot is on that clock too (a shared store keeps server time inside and
translates). A "move to OPEN" below means: state OPEN, generation + 1, leases
and trial successes cleared, `opened_at = at`, `open_until = at +
config.open_duration(max(trips_in_a_row, 1))`, and, for an automatic move
(not `set_mode`), `trips_in_a_row + 1` before that. A "move to CLOSED" means:
state CLOSED, generation + 1, leases and trial successes cleared,
`trips_in_a_row = 0`, the policy's counts reset. Every move sets `changed_at`
and `reason`. An outcome whose `generation` is not the record's is **late**:
it changes nothing at all.

| operation | effect |
|---|---|
| `record_success(generation, now, slow)` | late, or state not CLOSED: nothing. Else count a success in the policy; if the policy says trip (windows can trip on a success) and mode is NORMAL: move to OPEN, reason from the policy's figures. |
| `record_failure(generation, now, slow)` | as `record_success`, counting a failure: count and maybe trip in one step. |
| `half_open_if_due(now)` | state OPEN, mode NORMAL and `now >= open_until`: move to HALF_OPEN stamped `at = open_until` (the moment it became due), reason "open timeout elapsed". Else nothing. |
| `lease_trial(now)` -> `(lease, snapshot)` | state not HALF_OPEN: `(0, ...)`. A lease older than `config.trial_limit` (`max_trial_duration`): move to OPEN ("trial call exceeded max_trial_duration"), `(0, ...)`. Leases + trial successes >= `half_open_max_calls`: `(0, ...)`. Else a new lease id > 0 (admitted at `now`). |
| `settle_trial(generation, lease, outcome, now)` | late: nothing. Drop the lease. SUCCESS (or SLOW): trial successes + 1; at `success_threshold` move to CLOSED ("trial calls succeeded"). FAILURE: move to OPEN ("trial call failed"). Anything else (excluded, cancelled): only the lease is released. |
| `set_mode(mode, now, reason)` | manual moves, always applied: FORCED_OPEN -> move to OPEN (no trip counted); FORCED_CLOSED or DISABLED -> move to CLOSED; NORMAL (reset) -> move to CLOSED. |
| `reconfigure(config, now)` | new settings; state and generation kept; the policy's counts restart; an OPEN record in NORMAL mode recomputes `open_until` from `opened_at`. |

Read-only: `snapshot()` (the current view, no I/O) and `figures(now)` (the
policy's numbers for status and metrics). `flush()` is a coroutine that
returns once every operation issued so far has reached the store (a no-op in
memory).

`snapshot.success_matters` says whether the next CLOSED success needs to
reach the store at all: for the consecutive policy only while the count is
not zero, never for the cumulative one, always for windows. On the healthy
CLOSED path the breaker therefore makes no store call.

## Sync breaker, async store

`admit()` and `record()` are synchronous (the simulator and `call_sync` drive
them; an event loop must never wait on a network inside them). So are these
operations: the breaker calls them inline and uses the answer at once. A
shared store answers from its *local view* (the same semantics as
`MemoryStore`, applied to its cached copy of the shared record) and sends the
same operation as one atomic script in the background. When the
authoritative answer differs, or another replica changes the record (pub/sub),
the store updates its view and calls `on_change(snapshot)`: the breaker adopts
that snapshot and logs the change. Hence:

- a healthy CLOSED call makes no round trip; a failure makes at most one
  (`record_failure`, fire and forget); OPEN rejections read the cached
  `open_until`;
- half-open trials stay exact across replicas because leases are granted by
  the shared store: `lease_trial` hands out a lease the view already holds,
  or refuses while one is fetched. A record may also offer the optional
  coroutine `alease_trial(now)` (same answer as `lease_trial`, but it waits
  for the round trip within the store's deadline); `await breaker.call()`
  uses it when present, `admit()` never waits;
- a window policy's counts go through `record_success`/`record_failure` like
  the consecutive count. A shared store chooses how much of a window to
  share: `cblab.stores` keeps each replica's window locally and shares only
  the verdict (the trip, one script); a store could instead batch counts per
  bucket (count and verdict in one script per bucket), making its verdict as
  stale as one bucket. Either way the state moves only through the
  operations above.

A store that has no background work (`MemoryStore`) is authoritative: what an
operation returns is the truth.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

from ._config import CircuitBreakerConfig
from ._events import CircuitState, Outcome
from ._policies import FailureCounter

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class Mode(StrEnum):
    """How a breaker is being run. Anything but NORMAL is manual control."""

    NORMAL = "normal"  # trips and recovers on its own
    FORCED_OPEN = "forced_open"  # refuses every call until reset
    FORCED_CLOSED = "forced_closed"  # admits every call, never trips; outcomes counted
    DISABLED = "disabled"  # metrics only: admits everything, never trips


class Snapshot:
    """A breaker's stored state, as of the last operation. Treat it as read-only.

    `MemoryStore` hands out its live record (no copy per call): read what you
    need at once, or `copy()` it.
    """

    __slots__ = (
        "state",
        "mode",
        "generation",
        "changed_at",
        "reason",
        "opened_at",
        "open_until",
        "trips_in_a_row",
        "leases",
        "trial_successes",
        "success_matters",
    )

    def __init__(self, at: float = 0.0) -> None:
        self.state = CLOSED
        self.mode = Mode.NORMAL
        self.generation = 0
        self.changed_at = at
        self.reason = "created"
        self.opened_at = 0.0
        self.open_until = 0.0
        self.trips_in_a_row = 0
        self.leases: dict[int, float] = {}  # lease id -> admitted_at
        self.trial_successes = 0
        self.success_matters = False

    def copy(self) -> Snapshot:
        other = Snapshot()
        for name in self.__slots__:
            setattr(other, name, getattr(self, name))
        other.leases = dict(self.leases)
        return other

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__} | {
            "leases": dict(self.leases)
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Snapshot) and self.as_dict() == other.as_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (
            f"Snapshot(state={self.state.value}, mode={self.mode.value}, "
            f"generation={self.generation}, leases={len(self.leases)})"
        )


class StateRecord(Protocol):
    """One breaker's state in a store. Each operation is atomic (see the module doc)."""

    def snapshot(self) -> Snapshot: ...

    def record_success(self, generation: int, now: float, slow: bool) -> Snapshot: ...

    def record_failure(self, generation: int, now: float, slow: bool) -> Snapshot: ...

    def half_open_if_due(self, now: float) -> Snapshot: ...

    def lease_trial(self, now: float) -> tuple[int, Snapshot]: ...

    def settle_trial(
        self, generation: int, lease: int, outcome: Outcome, now: float
    ) -> Snapshot: ...

    def set_mode(self, mode: Mode, now: float, reason: str) -> Snapshot: ...

    def reconfigure(self, config: CircuitBreakerConfig, now: float) -> Snapshot: ...

    def figures(self, now: float) -> dict[str, Any]: ...

    async def flush(self) -> None: ...


OnChange = Callable[[Snapshot], None]


class BreakerStore(Protocol):
    """Hands out one `StateRecord` per breaker."""

    #: True when records with the same name are shared (between replicas).
    shared: bool

    def attach(
        self, name: str, config: CircuitBreakerConfig, now: float, on_change: OnChange
    ) -> StateRecord:
        """The record for breaker `name`, created CLOSED (generation 0) if new.

        `on_change(snapshot)` is called when the record changes other than by
        this breaker's own operations (another replica, a late server answer).
        """
        ...


class MemoryRecord:
    """The in-memory record: the reference implementation of the contract."""

    __slots__ = ("_snap", "_config", "_counter", "_serial")

    def __init__(self, config: CircuitBreakerConfig, now: float) -> None:
        self._snap = Snapshot(now)
        self._config = config
        self._counter: FailureCounter = config.policy.build(config.failure_threshold)
        self._snap.success_matters = self._counter.wants_success()
        self._serial = 0  # lease ids

    def snapshot(self) -> Snapshot:
        return self._snap

    def _move(self, to: CircuitState, at: float, reason: str, manual: bool = False) -> None:
        snap = self._snap
        snap.state = to
        snap.generation += 1
        snap.changed_at = at
        snap.reason = reason
        if snap.leases:
            snap.leases = {}
        snap.trial_successes = 0
        if to is OPEN:
            if not manual:
                snap.trips_in_a_row += 1
            snap.opened_at = at
            snap.open_until = at + self._config.open_duration(max(snap.trips_in_a_row, 1))
        elif to is CLOSED:
            snap.trips_in_a_row = 0
            self._counter.reset()
        snap.success_matters = self._counter.wants_success()

    def _why_tripped(self, now: float) -> str:
        """A human reason for a trip, from the policy's figures (trips are rare)."""
        figures = self._counter.figures(now)
        policy = self._config.policy
        if "consecutive_failures" in figures:
            return f"{figures['consecutive_failures']} consecutive failures"
        if "failures_since_closed" in figures:
            return f"{figures['failures_since_closed']} failures since the breaker closed"
        rate, slow_rate = figures["failure_rate"], figures["slow_call_rate"]
        threshold = getattr(policy, "failure_rate_threshold", 1.0)
        if rate >= threshold:
            return f"failure rate {rate:.0%} reached {threshold:.0%}"
        slow_threshold = getattr(policy, "slow_call_rate_threshold", 1.0)
        return f"slow-call rate {slow_rate:.0%} reached {slow_threshold:.0%}"

    def record_success(self, generation: int, now: float, slow: bool) -> Snapshot:
        snap = self._snap
        if generation == snap.generation and snap.state is CLOSED:
            self._verdict(self._counter.on_success(now, slow), now)
        return snap

    def record_failure(self, generation: int, now: float, slow: bool) -> Snapshot:
        snap = self._snap
        if generation == snap.generation and snap.state is CLOSED:
            self._verdict(self._counter.on_failure(now, slow), now)
        return snap

    def _verdict(self, trip: bool, now: float) -> None:
        """Act on the policy's verdict for an outcome just counted (same operation)."""
        if trip and self._snap.mode is Mode.NORMAL:
            self._move(OPEN, now, self._why_tripped(now))
        else:
            self._snap.success_matters = self._counter.wants_success()

    def half_open_if_due(self, now: float) -> Snapshot:
        snap = self._snap
        if snap.state is OPEN and snap.mode is Mode.NORMAL and now >= snap.open_until:
            # Stamped with the moment it became due, not the moment it was noticed,
            # so time spent OPEN equals the configured wait exactly.
            self._move(HALF_OPEN, snap.open_until, "open timeout elapsed")
        return snap

    def lease_trial(self, now: float) -> tuple[int, Snapshot]:
        snap = self._snap
        if snap.state is not HALF_OPEN:
            return 0, snap
        leases = snap.leases
        # Give up on trials held too long, so a hung one cannot wedge HALF_OPEN.
        if leases and min(leases.values()) + self._config.trial_limit <= now:
            self._move(OPEN, now, "trial call exceeded max_trial_duration")
            return 0, snap
        if snap.trial_successes + len(leases) >= self._config.half_open_max_calls:
            return 0, snap
        self._serial += 1
        leases[self._serial] = now
        return self._serial, snap

    def settle_trial(self, generation: int, lease: int, outcome: Outcome, now: float) -> Snapshot:
        snap = self._snap
        if generation != snap.generation:
            return snap
        snap.leases.pop(lease, None)
        if outcome is Outcome.SUCCESS or outcome is Outcome.SLOW:
            snap.trial_successes += 1
            if snap.trial_successes >= self._config.success_threshold:
                self._move(CLOSED, now, "trial calls succeeded")
        elif outcome is Outcome.FAILURE:
            self._move(OPEN, now, "trial call failed")
        return snap

    def set_mode(self, mode: Mode, now: float, reason: str) -> Snapshot:
        snap = self._snap
        snap.mode = mode
        if mode is Mode.FORCED_OPEN:
            self._move(OPEN, now, reason, manual=True)
        else:
            if mode is Mode.NORMAL:
                snap.trips_in_a_row = 0
            self._move(CLOSED, now, reason, manual=True)
        return snap

    def reconfigure(self, config: CircuitBreakerConfig, now: float) -> Snapshot:
        snap = self._snap
        self._config = config
        self._counter = config.policy.build(config.failure_threshold)
        snap.success_matters = self._counter.wants_success()
        if snap.state is OPEN and snap.mode is Mode.NORMAL:
            snap.open_until = snap.opened_at + config.open_duration(max(snap.trips_in_a_row, 1))
        return snap

    def figures(self, now: float) -> dict[str, Any]:
        return self._counter.figures(now)

    async def flush(self) -> None:
        return None


class MemoryStore:
    """Each breaker's state in this process (the default store). Never shared:
    two breakers attached under one name get independent records."""

    shared = False

    def attach(
        self, name: str, config: CircuitBreakerConfig, now: float, on_change: OnChange
    ) -> MemoryRecord:
        return MemoryRecord(config, now)

    def __repr__(self) -> str:
        return "MemoryStore()"
