"""The circuit breaker: admit a call, then record how it ended.

Everything else (`call`, `call_sync`, the decorator, `protect()`) is a thin
shell over `admit()` and `record()`. No lock is held while a protected call
runs; the async path takes no lock at all (one event loop is one thread), and
the sync path holds a lock only for the few microseconds of bookkeeping.

The state itself lives in a store (`_store.py`); the breaker keeps a cached
view of it (state, generation, mode, open-until) so the CLOSED path and OPEN
rejections never call the store.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, NamedTuple, ParamSpec, TypeVar

from ._clock import Clock, monotonic
from ._config import CircuitBreakerConfig, ConfigError
from ._events import (
    CallObserver,
    CallRecord,
    CircuitState,
    Event,
    EventLog,
    Outcome,
    StateChange,
)
from ._store import BreakerStore, MemoryStore, Mode, Snapshot, StateRecord

P = ParamSpec("P")
T = TypeVar("T")

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
SUCCESS, FAILURE, REJECTED = Outcome.SUCCESS, Outcome.FAILURE, Outcome.REJECTED
NORMAL, FORCED_OPEN = Mode.NORMAL, Mode.FORCED_OPEN
# What record() accepts, by enum or by value (one dict lookup on the hot path).
_RECORDABLE: dict[object, Outcome] = {
    key: o
    for o in (Outcome.SUCCESS, Outcome.FAILURE, Outcome.EXCLUDED, Outcome.CANCELLED)
    for key in (o, o.value)
}
_new_tuple = tuple.__new__  # builds a NamedTuple without its Python-level __new__

# The legal moves, each with what causes it. Every state change, automatic or
# manual, is checked against this table before it is logged.
_AUTOMATIC_MOVES = {
    (CLOSED, OPEN): "the failure policy trips",
    (OPEN, HALF_OPEN): "the open timeout elapsed",
    (HALF_OPEN, OPEN): "a trial call failed or exceeded max_trial_duration",
    (HALF_OPEN, CLOSED): "success_threshold trial calls succeeded",
}
_MANUAL_MOVES = {
    **{(s, OPEN): "force_open()" for s in CircuitState},
    **{(s, CLOSED): "force_closed(), disable() or reset()" for s in CircuitState},
}


class CircuitOpenError(Exception):
    """Raised instead of calling the function while the breaker refuses calls.

    `CircuitOpenError(name, retry_after, state)`. The fields live in `args` so
    that raising one costs no Python-level `__init__`: refusals are a hot path.
    """

    @property
    def name(self) -> str:
        return str(self.args[0]) if self.args else ""

    @property
    def retry_after(self) -> float:
        """Seconds until a trial call may be admitted (inf while forced open)."""
        return float(self.args[1]) if len(self.args) > 1 else math.inf

    @property
    def state(self) -> CircuitState:
        return CircuitState(self.args[2]) if len(self.args) > 2 else OPEN

    def __str__(self) -> str:
        if len(self.args) < 2:  # raised by hand with a message, as the write-up did
            return super().__str__()
        if self.state is HALF_OPEN:
            why = "is half-open and its trial calls are all in flight"
        else:
            why = "is open"
        when = "" if math.isinf(self.retry_after) else f"; retry after {self.retry_after:.3g}s"
        return f"Circuit breaker '{self.name}' {why}{when}"


class Permit:
    """Permission to make one call. Record its outcome exactly once.

    `admit()` returns `Permit | Rejection`; `admitted` is the discriminant a
    type checker narrows on (`Literal[True]` here, `Literal[False]` there).
    """

    __slots__ = ("generation", "state", "admitted_at", "trial", "settled")
    admitted: ClassVar[Literal[True]] = True

    def __init__(
        self, generation: int, state: CircuitState, admitted_at: float, trial: int
    ) -> None:
        self.generation = generation
        self.state = state
        self.admitted_at = admitted_at
        self.trial = trial  # lease id of a half-open trial call, 0 otherwise
        self.settled = False

    def __repr__(self) -> str:
        return f"Permit(generation={self.generation}, state={self.state.value}, trial={self.trial})"


class _RejectionFields(NamedTuple):
    retry_after: float
    state: CircuitState


class Rejection(_RejectionFields):
    """The breaker refused a call; nothing ran. A tuple: refusals are a hot path."""

    __slots__ = ()
    admitted: ClassVar[Literal[False]] = False


class CircuitBreaker:
    """A circuit breaker with the original write-up's API and correct semantics.

    >>> breaker = CircuitBreaker("github", CircuitBreakerConfig(failure_threshold=3))
    >>> result = await breaker.call(fetch_github_data, "/users/octocat")  # doctest: +SKIP

    What each event does in each state (mode NORMAL; "late" = the permit's
    generation is not current: counted, nothing changes):

    | event | CLOSED | OPEN | HALF_OPEN |
    |---|---|---|---|
    | admit | permit | reject; once `open_until` passed: -> HALF_OPEN, then as HALF_OPEN | lease a trial if fewer than `half_open_max_calls` (in flight + succeeded); else reject. A trial older than `max_trial_duration`: -> OPEN, reject |
    | success | policy counts it (a window may trip: -> OPEN) | late | trial succeeded; at `success_threshold`: -> CLOSED |
    | failure | policy counts it; at its threshold: -> OPEN | late | -> OPEN |
    | excluded, cancelled | nothing (neither outcome) | late | the trial's slot is freed |
    | force_open() | -> OPEN, mode FORCED_OPEN | same | same |
    | force_closed(), disable() | -> CLOSED, mode FORCED_CLOSED / DISABLED | same | same |
    | reset() | -> CLOSED, mode NORMAL, counts and backoff cleared | same | same |

    In FORCED_OPEN every call is rejected; in FORCED_CLOSED and DISABLED every
    call is admitted and counted but the breaker never trips. Every move is
    checked against `_AUTOMATIC_MOVES` / `_MANUAL_MOVES` and logged once as a
    `StateChange` with a new generation.
    """

    def __init__(
        self,
        name: str,
        config: CircuitBreakerConfig | None = None,
        *,
        clock: Clock = monotonic,
        store: BreakerStore | None = None,
        event_log: EventLog | None = None,
        listeners: Iterable[Callable[[Event], Any]] = (),
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"name must be a non-empty string, got {name!r}")
        if config is None:
            config = CircuitBreakerConfig()
        elif not isinstance(config, CircuitBreakerConfig):
            raise ConfigError(f"config must be a CircuitBreakerConfig, got {config!r}")
        if not callable(clock):
            raise ConfigError(f"clock must be a zero-argument callable, got {clock!r}")
        if store is None:
            store = MemoryStore()
        elif not callable(getattr(store, "attach", None)):
            raise ConfigError(f"store must be a BreakerStore (with attach()), got {store!r}")
        self.name = name
        self._clock = clock
        self.store = store
        self.event_log = event_log if event_log is not None else EventLog(1_000)
        self._listeners: list[Callable[[Event], Any]] = list(listeners)
        # (listener, on_call) pairs of `add_listener(listener, on_call=...)`
        self._observers: list[tuple[Callable[[Event], Any], CallObserver]] = []
        self._on_call: CallObserver | None = None
        self._sync_lock = threading.Lock()
        self.calls = self.successes = self.failures = self.slow_calls = 0
        self.rejected = self.excluded = self.cancelled = self.late = 0
        # trips: CLOSED -> OPEN (the glossary's trip); probe_failures: HALF_OPEN -> OPEN
        self.trips = self.probe_failures = self.trial_timeouts = self.listener_errors = 0
        self._last_failure_wall: float | None = None
        self._apply_config(config)
        self._record: StateRecord = store.attach(name, config, clock(), self._on_store_change)
        # A shared store may fetch a half-open lease over the network: `call()` awaits
        # it (within the store's deadline) instead of refusing while it is fetched.
        self._alease_trial = getattr(self._record, "alease_trial", None)
        self._refresh(self._record.snapshot())
        self._bind_emit()

    # --- configuration and listeners ---------------------------------------------------

    @property
    def config(self) -> CircuitBreakerConfig:
        return self._config

    def _apply_config(self, config: CircuitBreakerConfig) -> None:
        self._config = config
        self._slow_after = config.policy.slow_call_duration
        self._call_timeout = config.call_timeout
        self._is_excluded = self._make_exclusion_test(config)
        self._bind_emit()

    @staticmethod
    def _make_exclusion_test(config: CircuitBreakerConfig) -> Callable[[BaseException], bool]:
        types, predicate = config.excluded_exceptions, config.is_excluded

        def is_excluded(exc: BaseException) -> bool:
            return (bool(types) and isinstance(exc, types)) or (
                predicate is not None and bool(predicate(exc))
            )

        return is_excluded

    def reconfigure(self, config: CircuitBreakerConfig) -> None:
        """Apply new settings live. The state is kept; the failure counts restart.

        Calls in flight stay valid. An OPEN breaker's wait is recomputed from the
        moment it opened, so shortening `timeout` takes effect at once.
        """
        if not isinstance(config, CircuitBreakerConfig):
            raise ConfigError(f"config must be a CircuitBreakerConfig, got {config!r}")
        self._apply_config(config)
        self._refresh(self._record.reconfigure(config, self._clock()))

    def add_listener(
        self, listener: Callable[[Event], Any], *, on_call: CallObserver | None = None
    ) -> None:
        """Call `listener(event)` for every CallRecord and StateChange.

        `on_call`: take each call as ``on_call(state, outcome, duration, error_type)``
        instead of a CallRecord (`listener` then hears state changes only). No record
        is built and a plain success keeps its inline path: cheaper for a listener
        that needs only those fields (telemetry).

        Listeners run on the call path: keep them cheap. One that raises is
        counted in `listener_errors` and never breaks a call.
        """
        if not callable(listener):
            raise TypeError(f"listener must be callable, got {listener!r}")
        if on_call is None:
            self._listeners.append(listener)
        elif not callable(on_call):
            raise TypeError(f"on_call must be callable, got {on_call!r}")
        else:
            self._observers.append((listener, on_call))
        self._bind_emit()

    def remove_listener(self, listener: Callable[[Event], Any]) -> None:
        for index, (added, _) in enumerate(self._observers):
            if added == listener:
                del self._observers[index]
                break
        else:
            self._listeners.remove(listener)
        self._bind_emit()

    def _bind_emit(self) -> None:
        # With no listeners, emitting is one bound-method call into the log, and a
        # call is logged as the plain tuple of its CallRecord fields (see EventLog).
        log = self.event_log
        self._log_append, self._log_items, self._log_limit = log._append, log._items, log._limit
        self._emit = (self.event_log.append if not (self._listeners or self._observers)
                      else self._fan_out)
        observers = self._observers
        self._on_call = (None if not observers else observers[0][1] if len(observers) == 1
                         else self._observe_call)
        # call()'s inline success path applies only without listeners or a slow-call rule
        # (call observers are called from it)
        self._plain = not self._listeners and self._slow_after is None

    def _fan_out(self, event: Event) -> None:
        self.event_log.append(event)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                self.listener_errors += 1
        if type(event) is StateChange:
            for listener, _ in self._observers:
                try:
                    listener(event)
                except Exception:
                    self.listener_errors += 1

    def _observe_call(
        self, state: CircuitState, outcome: Outcome, duration: float, error: str | None
    ) -> None:
        """More than one call observer: each in turn (their errors counted one by one)."""
        for _, on_call in self._observers:
            try:
                on_call(state, outcome, duration, error)
            except Exception:
                self.listener_errors += 1

    def _log_call(self, fields: tuple[Any, ...]) -> None:
        """Append one call, given as the tuple of its CallRecord fields."""
        if self._listeners:
            self._fan_out(_new_tuple(CallRecord, fields))
        else:  # EventLog.append, inlined; the log builds the CallRecord when read
            self._log_append(fields)
            if len(self._log_items) >= self._log_limit:
                self.event_log._trim()
        on_call = self._on_call
        if on_call is not None:
            try:
                on_call(fields[4], fields[3], fields[2], fields[5])
            except Exception:
                self.listener_errors += 1

    # --- state ---------------------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        """The current state. An OPEN breaker whose wait is over reads HALF_OPEN."""
        if self._state is OPEN and self._mode is NORMAL:
            self._half_open_if_due(self._clock())
        return self._state

    @property
    def mode(self) -> Mode:
        """NORMAL, FORCED_OPEN, FORCED_CLOSED or DISABLED (a str enum)."""
        return self._mode

    @property
    def generation(self) -> int:
        return self._generation

    def _refresh(self, snap: Snapshot) -> None:
        """Take the store's view as ours (no event): the cached fields the hot paths read."""
        self._state = snap.state
        self._generation = snap.generation
        self._mode = snap.mode
        self._open_until = snap.open_until
        self._success_matters = snap.success_matters

    def _adopt(self, snap: Snapshot, manual: bool = False) -> None:
        """A store operation changed the state: check the move, cache it, log it."""
        came_from, to = self._state, snap.state
        if (came_from, to) not in (_MANUAL_MOVES if manual else _AUTOMATIC_MOVES):
            raise AssertionError(f"illegal move {came_from.value} -> {to.value}")
        if to is OPEN and not manual:
            if came_from is HALF_OPEN:
                self.probe_failures += 1
            else:
                self.trips += 1
        self._refresh(snap)
        self._emit(
            StateChange(self.name, snap.changed_at, came_from, to, snap.reason, snap.generation)
        )

    def _follow(self, snap: Snapshot) -> None:
        """After a store operation: adopt a change it made, else take its view."""
        if snap.generation != self._generation:
            self._adopt(snap)
        else:
            self._success_matters = snap.success_matters

    def _on_store_change(self, snap: Snapshot) -> None:
        """A shared store's record moved without us (another replica): log what we saw."""
        if snap.generation == self._generation:
            self._refresh(snap)
            return
        came_from = self._state
        self._refresh(snap)
        self._emit(
            StateChange(
                self.name, snap.changed_at, came_from, snap.state, snap.reason, snap.generation
            )
        )

    def _half_open_if_due(self, now: float) -> None:
        self._follow(self._record.half_open_if_due(now))

    def _retry_after(self, now: float) -> float:
        if self._mode is FORCED_OPEN:
            return math.inf
        if self._state is OPEN:
            return max(self._open_until - now, 0.0)
        snap = self._record.snapshot()
        if self._state is HALF_OPEN and self._trials_full(snap) and snap.leases:
            return max(min(snap.leases.values()) + self._config.trial_limit - now, 0.0)
        return 0.0

    def _trials_full(self, snap: Snapshot) -> bool:
        return snap.trial_successes + len(snap.leases) >= self._config.half_open_max_calls

    # --- admit / record: the whole protocol ------------------------------------------------

    def admit(self) -> Permit | Rejection:
        """Ask to make one call. Never raises; a refused call is counted.

        Returns a `Permit` (record its outcome with `record`) or a `Rejection`
        carrying `retry_after`. This is the hot path for loops and simulators.
        """
        now = self._clock()
        state = self._state
        if state is CLOSED:
            self.calls += 1
            return Permit(self._generation, CLOSED, now, 0)
        if state is OPEN:
            if now < self._open_until or self._mode is not NORMAL:  # the common refusal
                return self._reject(now)
            self._half_open_if_due(now)
            if self._state is not HALF_OPEN:  # a shared store may know better
                return self.admit() if self._state is CLOSED else self._reject(now)
        return self._trial_permit(now, *self._record.lease_trial(now))

    def _trial_permit(self, now: float, lease: int, snap: Snapshot) -> Permit | Rejection:
        if snap.generation != self._generation:
            if snap.state is OPEN:
                self.trial_timeouts += 1
            self._adopt(snap)
        if not lease:
            return self._reject(now)
        self.calls += 1
        return Permit(self._generation, HALF_OPEN, now, lease)

    async def admit_async(self) -> Permit | Rejection:
        """`admit()` for async callers: with a shared store, a HALF_OPEN trial lease is
        awaited from the store (within its deadline) instead of refused while it is
        fetched. With the memory store, and in CLOSED, it is `admit()`."""
        if self._alease_trial is None or self._state is CLOSED:
            return self.admit()
        return await self._admit_awaiting_lease()

    async def _admit_awaiting_lease(self) -> Permit | Rejection:
        """`admit()`, except that a HALF_OPEN lease is awaited from the store."""
        now = self._clock()
        if self._state is OPEN and self._mode is NORMAL and now >= self._open_until:
            self._half_open_if_due(now)
        if self._state is not HALF_OPEN or self._alease_trial is None:
            return self.admit()
        return self._trial_permit(now, *await self._alease_trial(now))

    def _reject(self, now: float) -> Rejection:
        self.rejected += 1
        state = self._state
        self._log_call((self.name, now, 0.0, REJECTED, state, None, self._generation))
        if state is OPEN and self._mode is NORMAL:
            retry_after = self._open_until - now
            return _new_tuple(Rejection, (retry_after if retry_after > 0.0 else 0.0, OPEN))
        return _new_tuple(Rejection, (self._retry_after(now), state))

    def record(
        self,
        permit: Permit,
        outcome: Outcome | str,
        *,
        duration: float | None = None,
        error_type: str | None = None,
    ) -> Outcome:
        """Report how a permitted call ended: success, failure, excluded or cancelled.

        `duration` defaults to the time since admission on the breaker's clock.
        Returns the outcome as recorded (`slow` for a slow success, `late` when
        the breaker moved on while the call ran: counted, but no state change).
        """
        if permit.settled:
            raise RuntimeError(f"permit already recorded: {permit!r}")
        recordable = _RECORDABLE.get(outcome)
        if recordable is None:
            raise ValueError(
                f"cannot record outcome {getattr(outcome, 'value', outcome)!r} for a permitted "
                "call; use success, failure, excluded or cancelled"
            )
        permit.settled = True
        now = self._clock()
        generation = permit.generation
        if duration is None:
            duration = now - permit.admitted_at
        if (recordable is SUCCESS and generation == self._generation and not permit.trial
                and self._plain and not self._success_matters):
            # `_settle`'s plain success, inlined as in `call`: a simulator records
            # thousands of these per run
            self.successes += 1
            self._log_append(
                (self.name, permit.admitted_at, duration, SUCCESS, permit.state, error_type,
                 generation))
            if len(self._log_items) >= self._log_limit:
                self.event_log._trim()
            on_call = self._on_call
            if on_call is not None:
                try:
                    on_call(permit.state, SUCCESS, duration, error_type)
                except Exception:
                    self.listener_errors += 1
            return SUCCESS
        return self._settle(
            generation,
            permit.state,
            permit.trial,
            permit.admitted_at,
            recordable,
            now,
            duration,
            error_type,
        )

    def record_exception(
        self, permit: Permit, exc: BaseException, *, duration: float | None = None
    ) -> Outcome:
        """Record a call that raised: excluded, cancelled (any non-Exception) or failure."""
        return self.record(
            permit, self._classify(exc), duration=duration, error_type=type(exc).__name__
        )

    def _classify(self, exc: BaseException) -> Outcome:
        if not isinstance(exc, Exception):
            return Outcome.CANCELLED
        return Outcome.EXCLUDED if self._is_excluded(exc) else Outcome.FAILURE

    def _settle(
        self,
        generation: int,
        state: CircuitState,
        trial: int,
        admitted_at: float,
        outcome: Outcome,
        now: float,
        duration: float,
        error: str | None,
    ) -> Outcome:
        """The one place an outcome changes counts and state (`record` and `call` share it).

        The call is logged first, then any state change the store made with it.
        """
        snap: Snapshot | None = None
        record = self._record
        if generation != self._generation:
            self.late += 1  # the breaker moved on while this call ran: count it, change nothing
            outcome = Outcome.LATE
        elif outcome is SUCCESS:
            self.successes += 1
            slow = self._slow_after is not None and duration >= self._slow_after
            if slow:
                self.slow_calls += 1
                outcome = Outcome.SLOW
            if trial:
                snap = record.settle_trial(generation, trial, outcome, now)
            elif self._success_matters:  # a window's rates move; a consecutive count resets
                snap = record.record_success(generation, now, slow)
        elif outcome is FAILURE:
            self.failures += 1
            self._last_failure_wall = time.time()
            slow = self._slow_after is not None and duration >= self._slow_after
            if slow:
                self.slow_calls += 1
            if trial:
                snap = record.settle_trial(generation, trial, outcome, now)
            else:
                snap = record.record_failure(generation, now, slow)
        else:  # excluded or cancelled: neither success nor failure; a trial frees its slot
            if outcome is Outcome.EXCLUDED:
                self.excluded += 1
            else:
                self.cancelled += 1
            if trial:
                snap = record.settle_trial(generation, trial, outcome, now)
        self._log_call((self.name, admitted_at, duration, outcome, state, error, generation))
        if snap is not None:  # `_follow`, inlined: this runs for every counted outcome
            if snap.generation != self._generation:
                self._adopt(snap)
            else:
                self._success_matters = snap.success_matters
        return outcome

    # --- the shells: call, call_sync, decorator, protect() --------------------------------

    async def call(
        self, func: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await `func(*args, **kwargs)` through the breaker.

        Raises CircuitOpenError (without calling `func`) while the breaker refuses calls.
        """
        if self._state is not CLOSED or self._call_timeout is not None:
            if self._alease_trial is None:
                permit = self.admit()
            else:  # a shared store: a half-open lease may come over the network
                permit = await self._admit_awaiting_lease()
            if not permit.admitted:
                raise CircuitOpenError(self.name, permit.retry_after, permit.state)
            return await self._call_permitted(permit, func, args, kwargs)
        # The hot path: a CLOSED breaker admits inline (no Permit object), and a
        # success is `_settle`'s success branch inlined (it is a fifth of the cost of
        # a call) when it is still current, with no slow-call rule and no listeners.
        generation = self._generation
        self.calls += 1
        clock = self._clock
        admitted_at = clock()
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            self._finish(generation, CLOSED, 0, admitted_at, exc)
            raise
        now = clock()
        if generation != self._generation or not self._plain:
            self._settle(generation, CLOSED, 0, admitted_at, SUCCESS, now, now - admitted_at, None)
            return result
        self.successes += 1
        self._log_append(
            (self.name, admitted_at, now - admitted_at, SUCCESS, CLOSED, None, generation)
        )
        if len(self._log_items) >= self._log_limit:
            self.event_log._trim()
        on_call = self._on_call
        if on_call is not None:
            try:
                on_call(CLOSED, SUCCESS, now - admitted_at, None)
            except Exception:
                self.listener_errors += 1
        if self._success_matters:  # the store hears of a success only when the policy cares
            self._follow(self._record.record_success(generation, now, False))
        return result

    async def _call_permitted(
        self,
        permit: Permit,
        func: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> T:
        """`call` with a permit in hand: trial calls, and any call under `call_timeout`."""
        permit.settled = True
        generation, state, trial = permit.generation, permit.state, permit.trial
        try:
            if self._call_timeout is None:
                result = await func(*args, **kwargs)
            else:
                async with asyncio.timeout(self._call_timeout):
                    result = await func(*args, **kwargs)
        except BaseException as exc:
            self._finish(generation, state, trial, permit.admitted_at, exc)
            raise
        self._finish(generation, state, trial, permit.admitted_at, None)
        return result

    def _finish(
        self,
        generation: int,
        state: CircuitState,
        trial: int,
        admitted_at: float,
        exc: BaseException | None,
    ) -> None:
        """Settle a call that `call` ran, from the exception it raised, if any."""
        now = self._clock()
        if exc is None:
            outcome, error = SUCCESS, None
        else:
            outcome, error = self._classify(exc), type(exc).__name__
        self._settle(generation, state, trial, admitted_at, outcome, now, now - admitted_at, error)

    def call_sync(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call a blocking `func` through the breaker; safe from many threads at once.

        The lock covers only admission and recording, never `func` itself.
        (`call_timeout` cannot interrupt a blocking call, so it applies to `call` only.)
        """
        with self._sync_lock:
            permit = self.admit()
        if not permit.admitted:
            raise CircuitOpenError(self.name, permit.retry_after, permit.state)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            with self._sync_lock:
                self.record_exception(permit, exc)
            raise
        with self._sync_lock:
            self.record(permit, Outcome.SUCCESS)
        return result

    def __call__(self, func: Callable[P, T]) -> Callable[P, T]:
        """Use the breaker as a decorator, on async and sync functions alike."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await self.call(func, *args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            return self.call_sync(func, *args, **kwargs)

        return sync_wrapper

    def protect(self) -> _Guard:
        """A block guarded by the breaker: `with breaker.protect():` or `async with`.

        Entering raises CircuitOpenError when refused; leaving records the outcome
        from the exception, if any.
        """
        return _Guard(self)

    # --- manual control: the same store operation and move table as automatic moves -------

    def _set_mode(self, mode: Mode, reason: str) -> None:
        self._adopt(self._record.set_mode(mode, self._clock(), reason), manual=True)

    def force_open(self, reason: str = "forced open") -> None:
        """Refuse every call until `reset()` (for maintenance or a known outage)."""
        self._set_mode(Mode.FORCED_OPEN, reason)

    def force_closed(self, reason: str = "forced closed") -> None:
        """Admit every call and never trip until `reset()`; outcomes are still counted."""
        self._set_mode(Mode.FORCED_CLOSED, reason)

    def disable(self, reason: str = "disabled") -> None:
        """Metrics only: admit everything, never trip (the lab's unprotected mode)."""
        self._set_mode(Mode.DISABLED, reason)

    def reset(self, reason: str = "reset") -> None:
        """Back to CLOSED in normal mode with fresh counts; calls in flight become late."""
        self._set_mode(Mode.NORMAL, reason)

    # --- status -------------------------------------------------------------------------

    def get_status(self) -> dict[str, Any]:
        """The write-up's keys (name, state, failures, successes, last_failure) and more.

        `failures`/`successes` are totals since the breaker was created;
        the policy's own figures (e.g. consecutive failures) are under `policy`.
        """
        now = self._clock()
        state = self.state
        retry_after = self._retry_after(now)
        wall = self._last_failure_wall
        snap = self._record.snapshot()
        return {
            "name": self.name,
            "state": state.value,
            "failures": self.failures,
            "successes": self.successes,
            "last_failure": datetime.fromtimestamp(wall, UTC).isoformat() if wall else None,
            "retry_after": None if math.isinf(retry_after) else retry_after,
            "mode": self._mode.value,
            "generation": self._generation,
            "policy": {**self._config.policy.to_dict(), **self._record.figures(now)},
            "calls": self.calls,
            "slow_calls": self.slow_calls,
            "rejected": self.rejected,
            "excluded": self.excluded,
            "cancelled": self.cancelled,
            "late": self.late,
            "trips": self.trips,
            "probe_failures": self.probe_failures,
            "trial_timeouts": self.trial_timeouts,
            "half_open_in_flight": len(snap.leases),
            "half_open_successes": snap.trial_successes,
            "config": self._config.to_dict(),
        }

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self._state.value}, mode={self._mode.value})"


class _Guard:
    """`protect()`'s context manager: admit on entry, record on exit."""

    __slots__ = ("_breaker", "_permit")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._permit: Permit | None = None

    def _enter(self) -> None:
        permit = self._breaker.admit()
        if not permit.admitted:
            raise CircuitOpenError(self._breaker.name, permit.retry_after, permit.state)
        self._permit = permit

    def _exit(self, exc: BaseException | None) -> None:
        assert self._permit is not None
        if exc is None:
            self._breaker.record(self._permit, Outcome.SUCCESS)
        else:
            self._breaker.record_exception(self._permit, exc)

    def __enter__(self) -> _Guard:
        with self._breaker._sync_lock:
            self._enter()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        with self._breaker._sync_lock:
            self._exit(exc)

    async def __aenter__(self) -> _Guard:
        self._enter()
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._exit(exc)
