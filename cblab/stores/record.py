"""`SharedRecord`: one replica's view of a breaker's shared state record.

The breaker's operations are synchronous (see `cblab._store`), so a shared
record answers each one from a local view (a `MemoryRecord` holding a copy of
the shared record) and sends the same operation to the shared store as one
atomic script. The store's answer is the truth: when it differs from the view
(another replica moved the breaker first), or when another replica announces a
change, the view adopts it and the breaker is told (`on_change`).

What reaches the store, per breaker operation:

==============================  ===============================================
operation                       sent to the shared store
==============================  ===============================================
CLOSED success                  nothing, unless the shared consecutive count is
                                not zero (then one `success` resets it)
CLOSED failure                  one `failure` (counts, and trips at threshold)
window policies                 a failure at once, successes batched: one
                                `window` per time bucket (or tenth of a count window)
OPEN, not due                   nothing (the view knows `open_until`)
HALF-OPEN trial                 one `admit` (server-side lease), one settle
manual control, reconfigure     one `control`
==============================  ===============================================

Never backwards: a replica never adopts a shared generation below one it has
seen or holds. What it does with a snapshot:

=============================================  ====================================
the snapshot                                   the view
=============================================  ====================================
older (server time, generation) than one       dropped (a delayed answer)
already adopted
newer, generation below the highest adopted    not adopted; the shared record lost
(Redis restarted empty, the key expired)       its history: `restore` this view's
                                               state and generation
the OPEN period this view just left for        kept HALF_OPEN: the store makes the
HALF_OPEN on its own (the wait is over)        same move when a trial is asked for
generation below the view's (moves made on     not adopted while an answer is
local state, a move the store did not make)    pending; then `restore`
anything else                                  adopted
=============================================  ====================================

`restore` is one script: the shared record takes the replica's state and
generation only if they are higher than its own, so after a restart it
continues from the highest generation any replica knows. (With an immediate
transport, the store's answer to the record's own operation is adopted as is:
the breaker never saw the move it replaces.)

A transport either answers at once (`SharedHub`: the simulator, tests) or in
the background (`RedisStore`). With a background transport a HALF-OPEN call
that finds no lease in hand is refused while one is fetched (a round trip);
`await record.alease_trial(now)` (used by `await breaker.call()`) waits for it
instead, within the store's deadline. While the transport is unavailable the
view is the state: the breaker runs on local state, and re-joins (adopts the
shared record) when the transport is back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from .._config import CircuitBreakerConfig
from .._events import CircuitState, Outcome
from .._policies import CountWindow, TimeWindow
from .._store import MemoryRecord, Mode, Snapshot
from .scripts import Reply, window_args
from .scripts import Snapshot as SharedSnapshot

__all__ = ["SharedRecord", "Transport"]

_STATES = {s.value: s for s in CircuitState}
_MODES = {m.value: m for m in Mode}
_ACTIONS = {Mode.FORCED_OPEN: "force_open", Mode.FORCED_CLOSED: "force_closed",
            Mode.DISABLED: "disable", Mode.NORMAL: "reset"}
OPEN, HALF_OPEN, CLOSED = CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED


class Transport(Protocol):
    """How a record reaches the shared state (a Redis connection, a `SharedHub`)."""

    client_time: bool  # scripts use the caller's clock instead of the server's

    @property
    def immediate(self) -> bool:
        """True: `send` returns the reply; False: it arrives later, via `done`."""

    def usable(self) -> bool:
        """False while the shared state is unreachable (the record runs on its view)."""

    def send(self, name: str, config: CircuitBreakerConfig, op: str, extra: list[Any],
             now: float, done: Callable[[Reply | None], None] | None) -> Reply | None:
        """Immediate: return the reply (None: unavailable). Background: return None,
        call `done(reply or None)` later."""

    async def call(self, name: str, config: CircuitBreakerConfig, op: str,
                   extra: list[Any], now: float) -> Reply | None: ...

    async def drain(self) -> None: ...


class SharedRecord:
    """A `StateRecord` over a shared store (see the module doc)."""

    def __init__(self, transport: Transport, name: str, config: CircuitBreakerConfig,
                 now: float, on_change: Callable[[Snapshot], None],
                 sibling: SharedRecord | None = None) -> None:
        self._transport = transport
        self.name = name
        self._config = config
        self._view = MemoryRecord(config, now)
        self._on_change = on_change
        self._offset = 0.0  # local clock - server clock, seconds (from the last answer)
        self._last_now = now
        self._last_now_at = time.monotonic()  # when _last_now was read (to extrapolate it)
        self._offset_known = False  # no timed answer yet: the offset is a guess
        # (server time, generation) of the newest shared snapshot adopted. Time alone does
        # not order two answers from one instant (a manual clock, a coarse server clock);
        # every transition bumps the generation, so it breaks the tie.
        self._seen = (-1, -1)
        # Never backwards: the highest shared generation adopted. A snapshot below it that
        # is newer in server time means the shared record lost its history (Redis
        # restarted empty, the key expired): this replica restores what it knows.
        self._seen_gen = -1
        self._pending = 0  # operations sent in the background and not answered yet
        self._held: tuple[int, int] | None = None  # (lease, generation) fetched, not used
        self._held_at = 0.0
        self._fetching = False
        self._waiter: asyncio.Future[None] | None = None  # resolves when a fetch answers
        self._window = config.policy.name not in ("consecutive", "cumulative")
        self._batch = [0, 0, 0]  # a window policy's unsent calls, failures, slow calls
        self._outcomes: list[str] = []
        self._batch_started = 0.0
        self._batch_generation = 0
        self.round_trips = 0
        self._shared: SharedSnapshot | None = None  # the newest shared snapshot adopted
        self._ready = False  # the breaker is told of changes only once attach() returned
        if sibling is not None and sibling._shared is not None:
            # another breaker of this name in this process: start from what it knows
            self._offset, self._offset_known = sibling._offset, sibling._offset_known
            self.adopt(sibling._shared)
        self._sync(now)  # a replica that just started learns the shared state at once
        self._ready = True

    # --- adopting what the store says -----------------------------------------------------

    def _local(self, us: int) -> float:
        return us / 1e6 + self._offset

    def adopt(self, shared: SharedSnapshot, sent_at: float | None = None,
              own: bool = False) -> None:
        """Make the view the shared record; tell the breaker if the state moved.

        `sent_at`: the local time the operation answered here was sent; it
        re-estimates the local - server clock offset (to within a round trip).
        `own`: the immediate answer to this record's own operation.

        Never backwards (see the table in the module doc): a snapshot older than
        one already adopted is dropped; one whose generation is below what this
        replica knows is not adopted (the view keeps its generation, and restores
        it to the shared record when nothing it sent can still bring it forward).
        """
        if not self._transport.client_time:
            if sent_at is not None:
                self._offset = sent_at - shared.now / 1e6
                self._offset_known = True
            elif not self._offset_known:  # no answer timed yet: the snapshot is fresh news
                self._offset = self._estimated_now() - shared.now / 1e6
        seen = (shared.now, shared.generation)
        if seen < self._seen:
            return  # older than what this view already holds (a delayed answer or announcement)
        view_gen = self._view.snapshot().generation
        if shared.generation < self._seen_gen or (
            shared.generation < view_gen and not (own and self._transport.immediate)
        ):
            if not self._speculative(shared) and not self._pending:
                self._restore()
            return
        self._seen = seen
        self._seen_gen = shared.generation
        self._shared = shared
        view = self._view
        snap = view.snapshot()
        state, mode = _STATES[shared.state], _MODES[shared.mode]
        moved = (shared.generation != snap.generation or state is not snap.state
                 or mode is not snap.mode)
        counter = view._counter
        if hasattr(counter, "count") and not self._window:
            counter.count = shared.failure_count
        snap.opened_at = self._local(shared.opened_at)
        snap.open_until = self._local(shared.opened_at + shared.open_for)
        snap.trips_in_a_row = shared.trips_in_a_row
        snap.success_matters = counter.wants_success()
        if not moved:
            snap.trial_successes = shared.trial_successes
            return
        snap.state, snap.mode, snap.generation = state, mode, shared.generation
        snap.changed_at = (self._local(shared.changed_at) if shared.changed_at
                           else self._last_now)  # a record never written has no time
        snap.reason = shared.reason
        snap.trial_successes = shared.trial_successes
        snap.leases = {}
        self._held = None
        self._batch, self._outcomes = [0, 0, 0], []  # counts of a period that ended
        if state is CLOSED and shared.generation:
            counter.reset()
            if hasattr(counter, "count") and not self._window:
                counter.count = shared.failure_count
        snap.success_matters = counter.wants_success()
        if self._ready:
            self._on_change(snap)

    def _estimated_now(self) -> float:
        """The breaker's clock now, extrapolated from its last reading."""
        return self._last_now + time.monotonic() - self._last_now_at

    def _speculative(self, shared: SharedSnapshot) -> bool:
        """The view moved OPEN -> HALF_OPEN on its own (its wait is over) and `shared` is
        that OPEN period: the store makes the same move when asked for a trial."""
        snap = self._view.snapshot()
        return (snap.state is HALF_OPEN and shared.state == "open"
                and shared.generation == snap.generation - 1
                and shared.generation >= self._seen_gen)

    def _restore(self) -> None:
        """The shared record is behind this view: give it this view's state and
        generation (the script takes them only if still higher than its own)."""
        snap = self._view.snapshot()
        opened = round((snap.opened_at - self._offset) * 1e6) if snap.opened_at else 0
        self._send("control", [
            "restore", f"shared state restored at generation {snap.generation}",
            snap.generation, snap.state.value, snap.mode.value, snap.trips_in_a_row,
            opened, max(round((snap.open_until - snap.opened_at) * 1e6), 0),
        ], self._last_now, timed=False)

    def _send(self, op: str, extra: list[Any], now: float,
              done: Callable[[Reply | None], None] | None = None,
              timed: bool = True) -> Reply | None:
        """Send `op`; adopt the answer. `timed=False`: `now` is not the current time
        (a background re-read), so the answer does not re-estimate the clock offset."""
        transport = self._transport
        if not transport.usable():
            return None
        self.round_trips += 1
        if timed:
            self._last_now, self._last_now_at = now, time.monotonic()
            sent_at: float | None = now
        else:  # until one timed answer came, estimate when this was sent: better than none
            sent_at = None if self._offset_known else self._estimated_now()

        def answered(reply: Reply | None) -> None:
            self._pending -= 1
            if reply is not None:
                self.adopt(reply.snapshot, sent_at)
            if done is not None:
                done(reply)

        immediate = transport.immediate
        if not immediate:
            self._pending += 1
        reply = transport.send(self.name, self._config, op, extra, now, answered)
        if reply is not None and immediate:
            self.adopt(reply.snapshot, sent_at, own=True)
        return reply

    def _sync(self, now: float, timed: bool = True) -> None:
        self._send("control", ["read", ""], now, timed=timed)

    def rejoin(self) -> None:
        """The store is back: drop local-only state and adopt the shared record."""
        self._held = None
        if self._fetching:
            self._fetched(None)
        self._sync(self._last_now, timed=False)

    def refresh(self) -> None:
        """Re-read the shared record (the store's staleness backstop)."""
        self._sync(self._last_now, timed=False)

    # --- StateRecord ----------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        return self._view.snapshot()

    def record_success(self, generation: int, now: float, slow: bool) -> Snapshot:
        view = self._view
        if not self._transport.usable():
            return view.record_success(generation, now, slow)
        if self._window:
            return self._window_outcome(generation, now, slow, failed=False)
        before = view.snapshot().generation
        snap = view.record_success(generation, now, slow)
        if self._config.policy.name == "consecutive" and generation == before:
            self._send("record", ["success", generation, 0, ""], now)
        return snap

    def record_failure(self, generation: int, now: float, slow: bool) -> Snapshot:
        view = self._view
        if not self._transport.usable():
            return view.record_failure(generation, now, slow)
        if self._window:
            return self._window_outcome(generation, now, slow, failed=True)
        before = view.snapshot().generation
        snap = view.record_failure(generation, now, slow)
        if generation == before:
            self._send("record", ["failure", generation, 0, ""], now)
        return snap

    # A window policy, shared: this replica's outcomes are batched and added to the
    # shared window (window.lua), which alone decides to trip. A failure is sent at
    # once (with the successes before it); successes wait for the next time bucket
    # (TimeWindow) or a tenth of the window (CountWindow), so the shared window is at
    # most that stale. The local counter only feeds status figures.

    def _window_outcome(self, generation: int, now: float, slow: bool,
                        failed: bool) -> Snapshot:
        snap = self._view.snapshot()
        if generation != snap.generation or snap.state is not CLOSED:
            return snap  # late, or nothing to count outside CLOSED
        counter = self._view._counter
        (counter.on_failure if failed else counter.on_success)(now, slow)
        batch = self._batch
        if batch[0] == 0:
            self._batch_started = now
            self._batch_generation = generation
        batch[0] += 1
        batch[1] += failed
        batch[2] += slow
        self._outcomes.append("xf"[not slow] if failed else "so"[not slow])
        policy = self._config.policy
        if isinstance(policy, CountWindow):
            due = batch[0] >= max(1, policy.size // 10)
        else:
            assert isinstance(policy, TimeWindow)
            width = policy.window / policy.buckets
            due = now // width != self._batch_started // width
        if failed or due:
            self._flush_window(now)
        return self._view.snapshot()

    def _flush_window(self, now: float) -> None:
        batch, outcomes = self._batch, "".join(self._outcomes)
        self._batch, self._outcomes = [0, 0, 0], []
        if batch[0] == 0 or self._batch_generation != self._view.snapshot().generation:
            return
        self._send("window", window_args(self._config.policy, self._batch_generation,
                                         batch[0], batch[1], batch[2], outcomes), now)

    def half_open_if_due(self, now: float) -> Snapshot:
        # Local and speculative: the server moves when a lease is asked for.
        return self._view.half_open_if_due(now)

    def lease_trial(self, now: float) -> tuple[int, Snapshot]:
        view = self._view
        transport = self._transport
        if not transport.usable():
            return view.lease_trial(now)
        snap = view.snapshot()
        if snap.state is not HALF_OPEN:
            return 0, snap
        held = self._held
        if held is not None:
            self._held = None
            lease, generation = held
            if generation == snap.generation:
                snap.leases[lease] = now
                return lease, snap
        if transport.immediate:
            reply = self._send("admit", [], now)
            return self._take_lease(reply, now)
        self._start_fetch(now)
        return 0, snap

    def _start_fetch(self, now: float) -> None:
        """Ask the store for a lease in the background (one request at a time)."""
        if self._fetching:
            return
        self._fetching = True
        try:
            self._waiter = asyncio.get_running_loop().create_future()
        except RuntimeError:
            self._waiter = None
        self._send("admit", [], now, self._fetched)

    def _take_lease(self, reply: Reply | None, now: float) -> tuple[int, Snapshot]:
        snap = self._view.snapshot()
        if reply is None or reply.result != "admitted" or reply.extra <= 0:
            return 0, snap
        if reply.snapshot.generation != snap.generation:
            return 0, snap  # pragma: no cover - adopt() made them equal
        snap.leases[reply.extra] = now
        return reply.extra, snap

    def _fetched(self, reply: Reply | None) -> None:
        self._fetching = False
        if reply is not None and reply.result == "admitted" and reply.extra > 0:
            self._held = (reply.extra, reply.snapshot.generation)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def alease_trial(self, now: float) -> tuple[int, Snapshot]:
        """`lease_trial`, waiting for the store's answer (within its deadline)."""
        transport = self._transport
        if transport.immediate or not transport.usable() or self._held is not None:
            return self.lease_trial(now)
        if self._view.snapshot().state is not HALF_OPEN:
            return 0, self._view.snapshot()
        self._start_fetch(now)
        waiter = self._waiter
        if waiter is not None:
            await asyncio.shield(waiter)
        if not transport.usable():
            return self._view.lease_trial(now)
        return self.lease_trial(now) if self._held is not None else (0, self._view.snapshot())

    def settle_trial(self, generation: int, lease: int, outcome: Outcome,
                     now: float) -> Snapshot:
        view = self._view
        own = lease in view.snapshot().leases
        snap = view.settle_trial(generation, lease, outcome, now)
        if self._transport.usable() and own:
            kind = ("success" if outcome in (Outcome.SUCCESS, Outcome.SLOW)
                    else "failure" if outcome is Outcome.FAILURE else "release")
            self._send("record", [kind, generation, lease, ""], now)
        return snap

    def set_mode(self, mode: Mode, now: float, reason: str) -> Snapshot:
        snap = self._view.set_mode(mode, now, reason)
        self._send("control", [_ACTIONS[mode], reason], now)
        return snap

    def reconfigure(self, config: CircuitBreakerConfig, now: float) -> Snapshot:
        self._config = config
        self._batch, self._outcomes = [0, 0, 0], []
        self._window = config.policy.name not in ("consecutive", "cumulative")
        snap = self._view.reconfigure(config, now)
        self._send("control", ["reconfigure", ""], now)
        return snap

    def figures(self, now: float) -> dict[str, Any]:
        return self._view.figures(now)

    async def flush(self) -> None:
        await self._transport.drain()
