"""A circuit breaker you drive one step at a time (the model behind notebook 02).

Plain Python, no widgets: a real `CircuitBreaker` on a `ManualClock`. Each step
(a call that succeeds, a call that fails, a call left in flight, the clock moving
on) returns a `Step` saying what happened, so the widget panel, a unit test and a
reader at a REPL all see the same thing.

>>> stepper = BreakerStepper(CircuitBreakerConfig(failure_threshold=2, timeout=10))
>>> stepper.fail().state_after, stepper.fail().state_after
('closed', 'open')
>>> stepper.succeed().outcome
'rejected'
>>> stepper.advance(10).state_after
'half_open'
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from .. import (
    CircuitBreaker,
    CircuitBreakerConfig,
    ConfigError,
    ManualClock,
    Outcome,
    Permit,
    StateChange,
)
from .diagram import STATE_LABELS

__all__ = ["BreakerStepper", "Step"]


@dataclass(frozen=True, slots=True)
class Step:
    """What one step did."""

    action: str  # "succeed", "fail", "begin", "finish", "advance", "configure", "reset"
    at: float  # clock time after the step
    outcome: str | None  # the call's recorded outcome (success, failure, rejected, late...)
    state_before: str
    state_after: str
    message: str  # one sentence for people

    @property
    def moved(self) -> bool:
        return self.state_before != self.state_after


class BreakerStepper:
    """Step a real breaker by hand: calls complete instantly unless begun with `begin()`.

    `in_flight` holds calls that were admitted and have not finished; `finish()`
    ends the oldest one. They show the half-open trial limit and "late" outcomes
    (a call that ends after the breaker moved on changes nothing).
    """

    def __init__(
        self, config: CircuitBreakerConfig | None = None, *, name: str = "dependency",
        history: int = 200,
    ) -> None:
        self.name = name
        self.history = history
        self._fresh(config)

    def _fresh(self, config: CircuitBreakerConfig | None) -> None:
        self.clock = ManualClock()
        self.breaker = CircuitBreaker(self.name, config, clock=self.clock)
        self.in_flight: deque[Permit] = deque()
        self.steps: deque[Step] = deque(maxlen=self.history)
        self.transitions: deque[StateChange] = deque(maxlen=self.history)
        self.breaker.add_listener(self._on_event)

    def _on_event(self, event: Any) -> None:
        if isinstance(event, StateChange):
            self.transitions.append(event)

    # --- reading ---------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self.breaker.state.value

    @property
    def config(self) -> CircuitBreakerConfig:
        return self.breaker.config

    @property
    def last_transition(self) -> StateChange | None:
        return self.transitions[-1] if self.transitions else None

    def counters(self) -> dict[str, Any]:
        """The numbers a learner watches: what the breaker counts right now."""
        status = self.breaker.get_status()
        policy = status["policy"]
        config = self.breaker.config
        counting = {k: v for k, v in policy.items() if k not in {"name", "failure_threshold"}}
        return {
            "clock": self.clock.now,
            "state": status["state"],
            "policy": policy["name"],
            **counting,
            "failure_threshold": config.failure_threshold,
            "trial_successes": status["half_open_successes"],
            "success_threshold": config.success_threshold,
            "trials_in_flight": status["half_open_in_flight"],
            "half_open_max_calls": config.half_open_max_calls,
            "in_flight": len(self.in_flight),
            "retry_after": status["retry_after"],
            "calls": status["calls"],
            "successes": status["successes"],
            "failures": status["failures"],
            "rejected": status["rejected"],
            "late": status["late"],
            "trips": status["trips"],
            "probe_failures": status["probe_failures"],
        }

    # --- steps -------------------------------------------------------------------------

    def _step(self, action: str, before: str, outcome: str | None, message: str) -> Step:
        step = Step(action, self.clock.now, outcome, before, self.state, message)
        self.steps.append(step)
        return step

    def _moved(self, before: str) -> str:
        after = self.state  # reading the state first lets a due OPEN -> HALF_OPEN move happen
        change = self.last_transition
        if before == after or change is None:
            return ""
        return (f" The breaker moved {STATE_LABELS[before]} → {STATE_LABELS[after]} "
                f"({change.reason}).")

    @staticmethod
    def _refusal(permit: Any) -> str:
        if permit.state.value == "half_open":
            why = "all half-open trial slots are taken"
        else:
            why = "the breaker is open"
        wait = "" if math.isinf(permit.retry_after) else f"; retry after {permit.retry_after:g} s"
        return f"Rejected at once: {why}{wait}. The dependency was not called."

    def _call(self, action: str, outcome: Outcome) -> Step:
        before = self.state
        permit = self.breaker.admit()
        if not permit.admitted:
            return self._step(action, before, "rejected",
                              self._refusal(permit) + self._moved(before))
        recorded = self.breaker.record(permit, outcome, duration=0.0)
        kind = "trial call" if permit.trial else "call"
        verb = "succeeded" if outcome is Outcome.SUCCESS else "failed"
        return self._step(action, before, recorded.value,
                          f"The {kind} {verb}." + self._moved(before))

    def succeed(self) -> Step:
        """One call that is admitted (if the breaker allows) and succeeds at once."""
        return self._call("succeed", Outcome.SUCCESS)

    def fail(self) -> Step:
        """One call that is admitted (if the breaker allows) and fails at once."""
        return self._call("fail", Outcome.FAILURE)

    def begin(self) -> Step:
        """Start a call and leave it in flight (a slow dependency); `finish()` ends it."""
        before = self.state
        permit = self.breaker.admit()
        if not permit.admitted:
            return self._step("begin", before, "rejected",
                              self._refusal(permit) + self._moved(before))
        self.in_flight.append(permit)
        kind = "a half-open trial" if permit.trial else "a call"
        return self._step("begin", before, None,
                          f"Started {kind}; {len(self.in_flight)} in flight." + self._moved(before))

    def finish(self, success: bool = True) -> Step:
        """End the oldest in-flight call with a success or a failure."""
        before = self.state
        if not self.in_flight:
            return self._step("finish", before, None, "No call is in flight.")
        permit = self.in_flight.popleft()
        outcome = Outcome.SUCCESS if success else Outcome.FAILURE
        recorded = self.breaker.record(permit, outcome)
        if recorded is Outcome.LATE:
            message = ("The call finished after the breaker had moved on (generation "
                       f"{permit.generation} → {self.breaker.generation}): counted as late, "
                       "no effect on the state.")
        else:
            message = f"The in-flight call {'succeeded' if success else 'failed'}."
        return self._step("finish", before, recorded.value, message + self._moved(before))

    def advance(self, seconds: float) -> Step:
        """Let `seconds` pass on the breaker's clock."""
        before = self.state
        self.clock.advance(seconds)
        return self._step("advance", before, None,
                          f"{seconds:g} s passed (clock {self.clock.now:g} s)." + self._moved(before))

    def configure(self, **changes: Any) -> str | None:
        """Change settings live. Returns None, or the reason the new config is refused."""
        try:
            config = self.breaker.config.replace(**changes)
        except ConfigError as exc:
            return str(exc)
        self.breaker.reconfigure(config)
        return None

    def reset(self) -> Step:
        """Start over: a new breaker with the current settings, CLOSED, the clock at 0,
        every count, the history and the calls in flight cleared."""
        before = self.state
        self._fresh(self.breaker.config)
        return self._step("reset", before, None,
                          "Reset: a fresh breaker, CLOSED; clock, counts and history at 0.")
