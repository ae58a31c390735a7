"""Failure-counting policies: how a CLOSED breaker decides that it should trip.

Each policy is a small frozen description (it lives in the configuration) that
builds a fresh counter per breaker. A counter sees every counted outcome and
answers one question: trip now? The breaker owns the states; policies only
count (the shape of resilience4j's metrics objects and tenacity's strategies).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


class FailureCounter(Protocol):
    """Runtime counting state for one breaker."""

    def on_success(self, now: float, slow: bool) -> bool:
        """Record a success; return True when the breaker should trip."""

    def on_failure(self, now: float, slow: bool) -> bool:
        """Record a failure; return True when the breaker should trip."""

    def reset(self) -> None:
        """Forget everything (the breaker closed or was reset)."""

    def wants_success(self) -> bool:
        """Would the next success change anything? (False lets a breaker skip it.)"""

    def figures(self, now: float) -> dict[str, Any]:
        """The numbers behind the verdict, for status and metrics."""


# Bounds for values that arrive from admin routes and files (see _config.MAX_*).
_MAX_COUNT = 1_000_000
_MAX_SECONDS = 366 * 24 * 3600.0


def _check_int(name: str, value: Any, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= _MAX_COUNT:
        raise ValueError(
            f"{name} must be an integer >= {minimum} and at most {_MAX_COUNT:,}, got {value!r}"
        )


def _check_rate(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")


def _check_seconds(name: str, value: Any, *, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 < value <= _MAX_SECONDS
    ):
        raise ValueError(
            f"{name} must be a positive number of seconds, at most 366 days, got {value!r}"
        )


# --- consecutive and cumulative counts ----------------------------------------------


class _ConsecutiveCounter:
    __slots__ = ("threshold", "count")

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.count = 0

    def on_success(self, now: float, slow: bool) -> bool:
        self.count = 0
        return False

    def on_failure(self, now: float, slow: bool) -> bool:
        self.count += 1
        return self.count >= self.threshold

    def reset(self) -> None:
        self.count = 0

    def wants_success(self) -> bool:
        return self.count != 0  # a success only resets a count that is not zero

    def figures(self, now: float) -> dict[str, Any]:
        return {"consecutive_failures": self.count, "failure_threshold": self.threshold}


class _CumulativeCounter(_ConsecutiveCounter):
    __slots__ = ()

    def on_success(self, now: float, slow: bool) -> bool:
        return False  # the write-up's bug, kept on purpose: successes never forgive

    def wants_success(self) -> bool:
        return False

    def figures(self, now: float) -> dict[str, Any]:
        return {"failures_since_closed": self.count, "failure_threshold": self.threshold}


@dataclass(frozen=True, slots=True)
class ConsecutiveFailures:
    """Trip after `failure_threshold` failures in a row; any success resets the count.

    The default policy. The threshold is the config's `failure_threshold`.
    """

    name = "consecutive"
    slow_call_duration = None

    def validate(self) -> None:
        pass

    def build(self, failure_threshold: int) -> FailureCounter:
        return _ConsecutiveCounter(failure_threshold)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name}


@dataclass(frozen=True, slots=True)
class CumulativeFailures:
    """The original write-up's count: failures add up until the breaker closes.

    Kept for teaching: at any non-zero error rate it eventually trips a healthy
    service, because successes never reset it.
    """

    name = "cumulative"
    slow_call_duration = None

    def validate(self) -> None:
        pass

    def build(self, failure_threshold: int) -> FailureCounter:
        return _CumulativeCounter(failure_threshold)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name}


# --- sliding windows ------------------------------------------------------------------


class _RateVerdict:
    """Shared by both windows: failure and slow-call rates over a window's totals."""

    __slots__ = ("policy", "calls", "failures", "slow")

    def __init__(self, policy: CountWindow | TimeWindow) -> None:
        self.policy = policy
        self.calls = self.failures = self.slow = 0

    def _verdict(self) -> bool:
        policy = self.policy
        calls = self.calls
        if calls < policy.minimum_calls:
            return False
        if self.failures >= policy.failure_rate_threshold * calls:
            return True
        return (
            policy.slow_call_duration is not None
            and self.slow >= policy.slow_call_rate_threshold * calls
        )

    def wants_success(self) -> bool:
        return True  # every call moves a window's rates

    def figures(self, now: float) -> dict[str, Any]:
        self._expire(now)
        calls = self.calls
        enough = calls >= self.policy.minimum_calls and calls > 0
        # -1 until the minimum number of calls, as resilience4j reports it
        return {
            "calls": calls,
            "failures": self.failures,
            "slow_calls": self.slow,
            "failure_rate": self.failures / calls if enough else -1.0,
            "slow_call_rate": self.slow / calls if enough else -1.0,
            "minimum_calls": self.policy.minimum_calls,
            "failure_rate_threshold": self.policy.failure_rate_threshold,
        }

    def _expire(self, now: float) -> None:
        pass


class _CountWindowCounter(_RateVerdict):
    __slots__ = ("_ring", "_next")

    def __init__(self, policy: CountWindow) -> None:
        super().__init__(policy)
        self._ring = bytearray(policy.size)  # bit 0: counted, 1: failed, 2: slow
        self._next = 0

    def _add(self, code: int) -> bool:
        ring, i = self._ring, self._next
        old = ring[i]
        if old:
            self.calls -= 1
            self.failures -= (old >> 1) & 1
            self.slow -= (old >> 2) & 1
        ring[i] = code
        self._next = (i + 1) % len(ring)
        self.calls += 1
        self.failures += (code >> 1) & 1
        self.slow += (code >> 2) & 1
        return self._verdict()

    def on_success(self, now: float, slow: bool) -> bool:
        return self._add(5 if slow else 1)

    def on_failure(self, now: float, slow: bool) -> bool:
        return self._add(7 if slow else 3)

    def reset(self) -> None:
        self._ring = bytearray(len(self._ring))
        self._next = 0
        self.calls = self.failures = self.slow = 0


class _TimeWindowCounter(_RateVerdict):
    __slots__ = ("_width", "_epochs", "_calls", "_failures", "_slow", "_epoch")

    def __init__(self, policy: TimeWindow) -> None:
        super().__init__(policy)
        n = policy.buckets
        self._width = policy.window / n
        self._epochs: list[int | None] = [None] * n  # which bucket-epoch each slot holds
        self._calls = [0] * n
        self._failures = [0] * n
        self._slow = [0] * n
        self._epoch: int | None = None

    def _slot(self, now: float) -> int:
        epoch = math.floor(now / self._width)
        if self._epoch is not None and epoch < self._epoch:
            epoch = self._epoch  # a clock stepped back: count it in the newest bucket
        self._expire_to(epoch)
        return epoch % len(self._calls)

    def _expire_to(self, epoch: int) -> None:
        if epoch == self._epoch:
            return
        n = len(self._calls)
        oldest_kept = epoch - n + 1
        epochs = self._epochs
        for i in range(n):
            held = epochs[i]
            if held is not None and held < oldest_kept:
                self.calls -= self._calls[i]
                self.failures -= self._failures[i]
                self.slow -= self._slow[i]
                self._calls[i] = self._failures[i] = self._slow[i] = 0
                epochs[i] = None
        self._epoch = epoch

    def _expire(self, now: float) -> None:
        epoch = math.floor(now / self._width)
        if self._epoch is None or epoch > self._epoch:
            self._expire_to(epoch)

    def _add(self, now: float, failed: int, slow: int) -> bool:
        i = self._slot(now)
        self._epochs[i] = self._epoch
        self._calls[i] += 1
        self._failures[i] += failed
        self._slow[i] += slow
        self.calls += 1
        self.failures += failed
        self.slow += slow
        return self._verdict()

    def on_success(self, now: float, slow: bool) -> bool:
        return self._add(now, 0, 1 if slow else 0)

    def on_failure(self, now: float, slow: bool) -> bool:
        return self._add(now, 1, 1 if slow else 0)

    def reset(self) -> None:
        n = len(self._calls)
        self._epochs = [None] * n
        self._calls, self._failures, self._slow = [0] * n, [0] * n, [0] * n
        self.calls = self.failures = self.slow = 0
        self._epoch = None


@dataclass(frozen=True, slots=True)
class CountWindow:
    """Trip when, over the last `size` calls, the failure rate (or the slow-call
    rate) reaches its threshold, once at least `minimum_calls` were seen."""

    size: int = 100
    failure_rate_threshold: float = 0.5
    minimum_calls: int = 10
    slow_call_duration: float | None = None
    slow_call_rate_threshold: float = 1.0

    name = "count_window"

    def validate(self) -> None:
        _check_int("policy.size", self.size)
        _check_rate("policy.failure_rate_threshold", self.failure_rate_threshold)
        _check_int("policy.minimum_calls", self.minimum_calls)
        if self.minimum_calls > self.size:
            raise ValueError(
                f"policy.minimum_calls ({self.minimum_calls}) cannot exceed policy.size "
                f"({self.size}): the window would never hold enough calls to trip"
            )
        _check_seconds("policy.slow_call_duration", self.slow_call_duration, allow_none=True)
        _check_rate("policy.slow_call_rate_threshold", self.slow_call_rate_threshold)

    def build(self, failure_threshold: int) -> FailureCounter:
        return _CountWindowCounter(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "failure_rate_threshold": self.failure_rate_threshold,
            "minimum_calls": self.minimum_calls,
            "slow_call_duration": self.slow_call_duration,
            "slow_call_rate_threshold": self.slow_call_rate_threshold,
        }


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Trip when, over the last `window` seconds (kept in `buckets` buckets), the
    failure rate (or slow-call rate) reaches its threshold, once at least
    `minimum_calls` were seen."""

    window: float = 60.0
    buckets: int = 10
    failure_rate_threshold: float = 0.5
    minimum_calls: int = 10
    slow_call_duration: float | None = None
    slow_call_rate_threshold: float = 1.0

    name = "time_window"

    def validate(self) -> None:
        _check_seconds("policy.window", self.window, allow_none=False)
        _check_int("policy.buckets", self.buckets)
        _check_rate("policy.failure_rate_threshold", self.failure_rate_threshold)
        _check_int("policy.minimum_calls", self.minimum_calls)
        _check_seconds("policy.slow_call_duration", self.slow_call_duration, allow_none=True)
        _check_rate("policy.slow_call_rate_threshold", self.slow_call_rate_threshold)

    def build(self, failure_threshold: int) -> FailureCounter:
        return _TimeWindowCounter(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "window": self.window,
            "buckets": self.buckets,
            "failure_rate_threshold": self.failure_rate_threshold,
            "minimum_calls": self.minimum_calls,
            "slow_call_duration": self.slow_call_duration,
            "slow_call_rate_threshold": self.slow_call_rate_threshold,
        }


FailurePolicy = ConsecutiveFailures | CumulativeFailures | CountWindow | TimeWindow

_POLICIES: dict[str, Callable[..., FailurePolicy]] = {
    p.name: p for p in (ConsecutiveFailures, CumulativeFailures, CountWindow, TimeWindow)
}


def policy_from_dict(data: dict[str, Any]) -> FailurePolicy:
    """Build a policy from `to_dict()` output (admin API, scenario and sweep files)."""
    if not isinstance(data, dict) or "name" not in data:
        raise ValueError(f"policy must be an object with a 'name', got {data!r}")
    fields = dict(data)
    name = fields.pop("name")
    if name not in _POLICIES:
        raise ValueError(f"policy.name must be one of {sorted(_POLICIES)}, got {name!r}")
    try:
        policy = _POLICIES[name](**fields)
    except TypeError as exc:
        raise ValueError(f"policy {name!r}: {exc}") from None
    policy.validate()
    return policy
