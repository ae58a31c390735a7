"""The circuit breaker: admit a call, then record how it ended.

Everything else (`call`, `call_sync`, the decorator, `protect()`) is a thin
shell over `admit()` and `record()`. No lock is held while a protected call
runs; the async path takes no lock at all (one event loop is one thread), and
the sync path holds a lock only for the few microseconds of bookkeeping.
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
from typing import Any, NamedTuple, ParamSpec, TypeVar

from ._clock import Clock, monotonic
from ._config import CircuitBreakerConfig, ConfigError
from ._events import CallRecord, CircuitState, Event, EventLog, Outcome, StateChange

P = ParamSpec("P")
T = TypeVar("T")

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
SUCCESS, FAILURE, REJECTED = Outcome.SUCCESS, Outcome.FAILURE, Outcome.REJECTED
# What record() accepts, by enum or by value (one dict lookup on the hot path).
_RECORDABLE: dict[object, Outcome] = {
    key: o
    for o in (Outcome.SUCCESS, Outcome.FAILURE, Outcome.EXCLUDED, Outcome.CANCELLED)
    for key in (o, o.value)
}
_new_record = tuple.__new__  # builds a NamedTuple without its Python-level __new__

# The moves a breaker makes on its own. Manual control (force, reset) may go anywhere.
_LEGAL_MOVES = {(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN), (HALF_OPEN, CLOSED)}

NORMAL, FORCED_OPEN, FORCED_CLOSED, DISABLED = "normal", "forced_open", "forced_closed", "disabled"


class CircuitOpenError(Exception):
    """Raised instead of calling the function while the breaker refuses calls.

    `CircuitOpenError(name, retry_after, state)`. The fields live in `args` so
    that raising one costs no Python-level `__init__`: refusals are a hot path.
    """

    @property
    def name(self) -> str:
        return self.args[0] if self.args else ""

    @property
    def retry_after(self) -> float:
        """Seconds until a trial call may be admitted (inf while forced open)."""
        return self.args[1] if len(self.args) > 1 else math.inf

    @property
    def state(self) -> CircuitState:
        return self.args[2] if len(self.args) > 2 else OPEN

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
    """Permission to make one call. Record its outcome exactly once."""

    __slots__ = ("generation", "state", "admitted_at", "trial", "settled")
    admitted = True

    def __init__(
        self, generation: int, state: CircuitState, admitted_at: float, trial: int
    ) -> None:
        self.generation = generation
        self.state = state
        self.admitted_at = admitted_at
        self.trial = trial  # serial of a half-open trial call, 0 otherwise
        self.settled = False

    def __repr__(self) -> str:
        return f"Permit(generation={self.generation}, state={self.state.value}, trial={self.trial})"


class Rejection(NamedTuple):
    """The breaker refused a call; nothing ran. A tuple: refusals are a hot path."""

    retry_after: float
    state: CircuitState

    admitted = False


class CircuitBreaker:
    """A circuit breaker with the original write-up's API and correct semantics.

    >>> breaker = CircuitBreaker("github", CircuitBreakerConfig(failure_threshold=3))
    >>> result = await breaker.call(fetch_github_data, "/users/octocat")  # doctest: +SKIP
    """

    def __init__(
        self,
        name: str,
        config: CircuitBreakerConfig | None = None,
        *,
        clock: Clock = monotonic,
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
        self.name = name
        self._clock = clock
        self.event_log = event_log if event_log is not None else EventLog(1_000)
        self._listeners: list[Callable[[Event], Any]] = list(listeners)
        self._sync_lock = threading.Lock()
        self._state = CLOSED
        self._mode = NORMAL
        self._generation = 0
        self._opened_at = 0.0
        self._open_for = 0.0
        self._trips_in_a_row = 0
        self._trials: dict[int, float] = {}  # trial serial -> admitted_at
        self._trial_serial = 0
        self._trial_successes = 0
        self.calls = self.successes = self.failures = self.slow_calls = 0
        self.rejected = self.excluded = self.cancelled = self.late = 0
        self.trips = self.trial_timeouts = self.listener_errors = 0
        self._last_failure_at: float | None = None
        self._last_failure_wall: float | None = None
        self._apply_config(config)
        self._bind_emit()

    # --- configuration and listeners ---------------------------------------------------

    @property
    def config(self) -> CircuitBreakerConfig:
        return self._config

    def _apply_config(self, config: CircuitBreakerConfig) -> None:
        self._config = config
        self._counter = config.policy.build(config.failure_threshold)
        self._slow_after = config.policy.slow_call_duration
        self._call_timeout = config.call_timeout
        self._is_excluded = self._make_exclusion_test(config)

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
        if self._state is OPEN and self._mode == NORMAL:
            self._open_for = config.open_duration(max(self._trips_in_a_row, 1))

    def add_listener(self, listener: Callable[[Event], Any]) -> None:
        """Call `listener(event)` for every CallRecord and StateChange.

        Listeners run on the call path: keep them cheap. One that raises is
        counted in `listener_errors` and never breaks a call.
        """
        if not callable(listener):
            raise TypeError(f"listener must be callable, got {listener!r}")
        self._listeners.append(listener)
        self._bind_emit()

    def remove_listener(self, listener: Callable[[Event], Any]) -> None:
        self._listeners.remove(listener)
        self._bind_emit()

    def _bind_emit(self) -> None:
        # With no listeners, emitting is one bound-method call into the log.
        self._append = self.event_log.append
        # The call-record hot path inlines EventLog._append_call_fields.
        self._log_extend, self._log_seq = self.event_log._extend, self.event_log._seq
        self._emit = self._append if not self._listeners else self._fan_out

    def _fan_out(self, event: Event) -> None:
        self.event_log.append(event)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                self.listener_errors += 1

    # --- state ---------------------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        """The current state. An OPEN breaker whose wait is over reads HALF_OPEN."""
        if self._state is OPEN and self._mode == NORMAL:
            self._half_open_if_due(self._clock())
        return self._state

    @property
    def mode(self) -> str:
        """normal, forced_open, forced_closed or disabled (metrics only)."""
        return self._mode

    @property
    def generation(self) -> int:
        return self._generation

    def _half_open_if_due(self, now: float) -> bool:
        due = self._opened_at + self._open_for
        if now < due:
            return False
        # Stamp the change with the moment it became due, not the moment it was
        # noticed, so time spent OPEN equals the configured wait exactly.
        self._transition(HALF_OPEN, due, "open timeout elapsed")
        return True

    def _transition(self, to: CircuitState, at: float, reason: str, manual: bool = False) -> None:
        came_from = self._state
        if not manual and (came_from, to) not in _LEGAL_MOVES:
            raise AssertionError(f"illegal move {came_from.value} -> {to.value}")
        self._state = to
        self._generation += 1
        self._trials.clear()
        self._trial_successes = 0
        if to is OPEN:
            if not manual:
                self._trips_in_a_row += 1
                self.trips += 1
            self._opened_at = at
            self._open_for = self._config.open_duration(max(self._trips_in_a_row, 1))
        elif to is CLOSED:
            self._trips_in_a_row = 0
            self._counter.reset()
        self._emit(StateChange(self.name, at, came_from, to, reason, self._generation))

    def _why_tripped(self, now: float) -> str:
        """A human reason for a trip, from the policy's figures (trips are rare)."""
        figures = self._counter.figures(now)
        policy = self._config.policy
        if "consecutive_failures" in figures:
            return f"{figures['consecutive_failures']} consecutive failures"
        if "failures_since_closed" in figures:
            return f"{figures['failures_since_closed']} failures since the breaker closed"
        rate, slow_rate = figures["failure_rate"], figures["slow_call_rate"]
        if rate >= policy.failure_rate_threshold:
            return f"failure rate {rate:.0%} reached {policy.failure_rate_threshold:.0%}"
        return f"slow-call rate {slow_rate:.0%} reached {policy.slow_call_rate_threshold:.0%}"

    def _retry_after(self, now: float) -> float:
        if self._mode == FORCED_OPEN:
            return math.inf
        if self._state is OPEN:
            return max(self._opened_at + self._open_for - now, 0.0)
        if self._state is HALF_OPEN and self._trials_full():
            limit = self._config.trial_limit
            return max(min(self._trials.values()) + limit - now, 0.0) if self._trials else 0.0
        return 0.0

    def _trials_full(self) -> bool:
        return self._trial_successes + len(self._trials) >= self._config.half_open_max_calls

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
        if state is OPEN and not (
            now >= self._opened_at + self._open_for  # checked inline: the common refusal
            and self._mode == NORMAL
            and self._half_open_if_due(now)
        ):
            return self._reject(now)
        # HALF_OPEN: give up on trials held too long, so a hung one cannot wedge us.
        trials = self._trials
        if trials and min(trials.values()) + self._config.trial_limit <= now:
            self.trial_timeouts += 1
            self._transition(OPEN, now, "trial call exceeded max_trial_duration")
            return self._reject(now)
        if self._trials_full():
            return self._reject(now)
        self._trial_serial += 1
        trials[self._trial_serial] = now
        self.calls += 1
        return Permit(self._generation, HALF_OPEN, now, self._trial_serial)

    def _reject(self, now: float) -> Rejection:
        self.rejected += 1
        state = self._state
        fields = (self.name, now, 0.0, REJECTED, state, None, self._generation)
        if self._listeners:
            self._fan_out(_new_record(CallRecord, fields))
        else:
            self._log_extend(zip((fields,), self._log_seq))  # noqa: B905
        if state is OPEN and self._mode == NORMAL:
            retry_after = self._opened_at + self._open_for - now
            return _new_record(Rejection, (retry_after if retry_after > 0.0 else 0.0, OPEN))
        return _new_record(Rejection, (self._retry_after(now), state))

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
        return self._settle(
            permit.generation,
            permit.state,
            permit.trial,
            permit.admitted_at,
            recordable,
            now,
            now - permit.admitted_at if duration is None else duration,
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
        """The one place an outcome changes counts and state (`record` and `call` share it)."""
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
                del self._trials[trial]
                self._trial_successes += 1
                if self._trial_successes >= self._config.success_threshold:
                    self._emit_call(admitted_at, duration, outcome, state, error, generation)
                    self._transition(CLOSED, now, "trial calls succeeded")
                    return outcome
            elif self._counter.on_success(now, slow) and self._mode == NORMAL:
                # a window can trip on a success: its rates move with every call
                self._emit_call(admitted_at, duration, outcome, state, error, generation)
                self._transition(OPEN, now, self._why_tripped(now))
                return outcome
        elif outcome is FAILURE:
            self.failures += 1
            self._last_failure_at = now
            self._last_failure_wall = time.time()
            slow = self._slow_after is not None and duration >= self._slow_after
            if slow:
                self.slow_calls += 1
            if trial:
                del self._trials[trial]
                self._emit_call(admitted_at, duration, outcome, state, error, generation)
                self._transition(OPEN, now, "trial call failed")
                return outcome
            if self._counter.on_failure(now, slow) and self._mode == NORMAL:
                self._emit_call(admitted_at, duration, outcome, state, error, generation)
                self._transition(OPEN, now, self._why_tripped(now))
                return outcome
        else:  # excluded or cancelled: neither success nor failure; a trial frees its slot
            if outcome is Outcome.EXCLUDED:
                self.excluded += 1
            else:
                self.cancelled += 1
            if trial:
                del self._trials[trial]
        fields = (self.name, admitted_at, duration, outcome, state, error, generation)
        if self._listeners:
            self._fan_out(_new_record(CallRecord, fields))
        else:  # EventLog.append, inlined: this line runs once per call
            self._log_extend(zip((fields,), self._log_seq))  # noqa: B905
        return outcome

    def _emit_call(
        self,
        admitted_at: float,
        duration: float,
        outcome: Outcome,
        state: CircuitState,
        error: str | None,
        generation: int,
    ) -> None:
        fields = (self.name, admitted_at, duration, outcome, state, error, generation)
        if self._listeners:
            self._fan_out(_new_record(CallRecord, fields))
        else:  # the log builds the CallRecord when someone reads it
            self._log_extend(zip((fields,), self._log_seq))  # noqa: B905

    # --- the shells: call, call_sync, decorator, protect() --------------------------------

    async def call(
        self, func: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await `func(*args, **kwargs)` through the breaker.

        Raises CircuitOpenError (without calling `func`) while the breaker refuses calls.
        """
        clock = self._clock
        if self._state is CLOSED:  # the hot path: admit inline, no Permit object
            generation, state, trial = self._generation, CLOSED, 0
            self.calls += 1
            admitted_at = clock()
        else:
            permit = self.admit()
            if not permit.admitted:
                raise CircuitOpenError(self.name, permit.retry_after, permit.state)
            generation, state, trial = permit.generation, permit.state, permit.trial
            admitted_at = permit.admitted_at
        try:
            timeout = self._call_timeout
            if timeout is None:
                result = await func(*args, **kwargs)
            else:
                async with asyncio.timeout(timeout):
                    result = await func(*args, **kwargs)
        except BaseException as exc:
            now = clock()
            self._settle(
                generation,
                state,
                trial,
                admitted_at,
                self._classify(exc),
                now,
                now - admitted_at,
                type(exc).__name__,
            )
            raise
        now = clock()
        if (
            trial
            or generation != self._generation
            or self._slow_after is not None
            or (self._listeners)
        ):
            self._settle(
                generation, state, trial, admitted_at, SUCCESS, now, now - admitted_at, None
            )
            return result
        # The common case, `_settle`'s success branch inlined (it is a fifth of the
        # cost of a call): a closed-state success, still current, no slow-call rule.
        self.successes += 1
        fields = (self.name, admitted_at, now - admitted_at, SUCCESS, CLOSED, None, generation)
        self._log_extend(zip((fields,), self._log_seq))  # noqa: B905
        if self._counter.on_success(now, False) and self._mode == NORMAL:
            self._transition(OPEN, now, self._why_tripped(now))
        return result

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

    # --- manual control ---------------------------------------------------------------------

    def force_open(self, reason: str = "forced open") -> None:
        """Refuse every call until `reset()` (for maintenance or a known outage)."""
        self._mode = FORCED_OPEN
        self._transition(OPEN, self._clock(), reason, manual=True)

    def force_closed(self, reason: str = "forced closed") -> None:
        """Admit every call and never trip until `reset()`; outcomes are still counted."""
        self._mode = FORCED_CLOSED
        self._transition(CLOSED, self._clock(), reason, manual=True)

    def disable(self, reason: str = "disabled") -> None:
        """Metrics only: admit everything, never trip (the lab's unprotected mode)."""
        self._mode = DISABLED
        self._transition(CLOSED, self._clock(), reason, manual=True)

    def reset(self, reason: str = "reset") -> None:
        """Back to CLOSED in normal mode with fresh counts; calls in flight become late."""
        self._mode = NORMAL
        self._trips_in_a_row = 0
        self._transition(CLOSED, self._clock(), reason, manual=True)

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
        return {
            "name": self.name,
            "state": state.value,
            "failures": self.failures,
            "successes": self.successes,
            "last_failure": datetime.fromtimestamp(wall, UTC).isoformat() if wall else None,
            "retry_after": None if math.isinf(retry_after) else retry_after,
            "mode": self._mode,
            "generation": self._generation,
            "policy": {**self._config.policy.to_dict(), **self._counter.figures(now)},
            "calls": self.calls,
            "slow_calls": self.slow_calls,
            "rejected": self.rejected,
            "excluded": self.excluded,
            "cancelled": self.cancelled,
            "late": self.late,
            "trips": self.trips,
            "trial_timeouts": self.trial_timeouts,
            "half_open_in_flight": len(self._trials),
            "config": self._config.to_dict(),
        }

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self._state.value}, mode={self._mode})"


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
