"""Breaker configuration, validated at construction so a bad setting fails loudly."""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ._policies import (
    ConsecutiveFailures,
    CountWindow,
    CumulativeFailures,
    FailurePolicy,
    TimeWindow,
    policy_from_dict,
)


class ConfigError(ValueError):
    """Invalid breaker configuration; the message names the field."""


# Upper bounds: a config arrives from admin routes and files too, and a value such
# as timeout=1e300 or failure_threshold=10**17 is a typo or an attack, never a setting.
MAX_SECONDS = 366 * 24 * 3600.0
MAX_COUNT = 1_000_000
MAX_BACKOFF_MULTIPLIER = 1000.0


def _seconds(name: str, value: Any, *, allow_none: bool = False, allow_zero: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a number of seconds or a timedelta, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be {bound} seconds, got {value!r}")
    if value > MAX_SECONDS:
        raise ConfigError(f"{name} must be at most {MAX_SECONDS:.0f} seconds (366 days), got {value!r}")
    return float(value)


def _code_name(obj: Any) -> str:
    """`module:qualname`: how code (an exception class, a predicate) is written in data."""
    return f"{getattr(obj, '__module__', None)}:{getattr(obj, '__qualname__', repr(obj))}"


def _code_from_name(field_name: str, name: Any) -> Any:
    """The object `_code_name` wrote, looked up in modules already imported.

    Nothing is imported here: a configuration may come from outside (a file, an
    admin request), and importing a module by a name in data runs its code.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{field_name} must name code as 'module:qualname', got {name!r}")
    module_name, _, qualname = name.rpartition(":")
    module_name = module_name or "builtins"  # "KeyError" means builtins:KeyError
    if "<locals>" in qualname or "<lambda>" in qualname:
        raise ConfigError(
            f"{field_name}: {name!r} is a lambda or defined inside a function, so it cannot "
            "be loaded by name; define it at module level to save and replay this config"
        )
    module = sys.modules.get(module_name)
    if module is None:
        raise ConfigError(
            f"{field_name}: module {module_name!r} (for {name!r}) is not imported; "
            "import it before loading this configuration"
        )
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise ConfigError(f"{field_name}: {name!r} not found in module {module_name!r}")
    return found


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_COUNT:
        raise ConfigError(f"{name} must be an integer >= 1 and at most {MAX_COUNT:,}, got {value!r}")


@dataclass(frozen=True, slots=True)
class CircuitBreakerConfig:
    """How a breaker trips, waits and recovers. The write-up's four fields come first.

    Durations are float seconds; `timedelta` is accepted too and stored as seconds.

    `failure_threshold` is the threshold of the consecutive and cumulative
    policies. The window policies (`CountWindow`, `TimeWindow`) do not use it:
    they trip on their own `failure_rate_threshold` once `minimum_calls` calls
    are in the window (validation accepts any valid value and says so here
    rather than refusing, so switching a breaker's policy live never fails on
    a threshold the new policy ignores).

    `to_dict()` writes everything, code included (`excluded_exceptions`,
    `is_excluded`) as `module:qualname` names; `from_dict()` reads it back, so
    `from_dict(json.loads(json.dumps(config.to_dict())))` equals `config` for
    any config whose code is defined at module level. Lambdas and classes
    defined inside functions have no such name: `from_dict` refuses them with
    an error naming them.
    """

    failure_threshold: int = 5
    success_threshold: int = 2
    timeout: float = 30.0  # how long OPEN lasts before a trial call is allowed
    half_open_max_calls: int = 3
    policy: FailurePolicy = field(default_factory=ConsecutiveFailures)
    # A call that runs longer is cancelled and counted as a failure (async calls only).
    call_timeout: float | None = None
    # A half-open trial held longer than this re-opens the breaker, so a trial
    # that hangs cannot wedge it. Default: call_timeout if set, else timeout.
    max_trial_duration: float | None = None
    # Open-duration backoff: each trip in a row (without closing in between)
    # multiplies the open time, up to max_timeout.
    backoff_multiplier: float = 1.0
    max_timeout: float | None = None
    # Exceptions that propagate but count as neither success nor failure.
    excluded_exceptions: tuple[type[BaseException], ...] = ()
    is_excluded: Callable[[BaseException], bool] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise in place, once
        _positive_int("failure_threshold", self.failure_threshold)
        _positive_int("success_threshold", self.success_threshold)
        _positive_int("half_open_max_calls", self.half_open_max_calls)
        if self.success_threshold > self.half_open_max_calls:
            raise ConfigError(
                f"success_threshold ({self.success_threshold}) cannot exceed half_open_max_calls "
                f"({self.half_open_max_calls}): the breaker could never close"
            )
        set_(self, "timeout", _seconds("timeout", self.timeout, allow_zero=True))
        set_(self, "call_timeout", _seconds("call_timeout", self.call_timeout, allow_none=True))
        set_(
            self,
            "max_trial_duration",
            _seconds("max_trial_duration", self.max_trial_duration, allow_none=True),
        )
        set_(self, "max_timeout", _seconds("max_timeout", self.max_timeout, allow_none=True))
        multiplier = self.backoff_multiplier
        if (
            isinstance(multiplier, bool)
            or not isinstance(multiplier, (int, float))
            or not (math.isfinite(multiplier) and 1 <= multiplier <= MAX_BACKOFF_MULTIPLIER)
        ):
            raise ConfigError(
                f"backoff_multiplier must be a number from 1 to {MAX_BACKOFF_MULTIPLIER:g}, "
                f"got {multiplier!r}"
            )
        set_(self, "backoff_multiplier", float(multiplier))
        if self.max_timeout is not None and self.max_timeout < self.timeout:
            raise ConfigError(
                f"max_timeout ({self.max_timeout}) cannot be shorter than timeout ({self.timeout})"
            )
        policies = (ConsecutiveFailures, CumulativeFailures, CountWindow, TimeWindow)
        if isinstance(self.policy, dict):
            try:
                set_(self, "policy", policy_from_dict(self.policy))
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        if not isinstance(self.policy, policies):
            raise ConfigError(
                f"policy must be one of {[p.__name__ for p in policies]}, got {self.policy!r}"
            )
        try:
            self.policy.validate()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        # failure_threshold is validated above for every policy but used only by the
        # consecutive and cumulative ones; windows ignore it (see the class docstring).
        excluded = self.excluded_exceptions
        if isinstance(excluded, type):
            excluded = (excluded,)
        if not isinstance(excluded, tuple) or not all(
            isinstance(e, type) and issubclass(e, BaseException) for e in excluded
        ):
            raise ConfigError(
                f"excluded_exceptions must be a tuple of exception classes, got {excluded!r}"
            )
        set_(self, "excluded_exceptions", excluded)
        if self.is_excluded is not None and not callable(self.is_excluded):
            raise ConfigError(f"is_excluded must be callable, got {self.is_excluded!r}")

    @property
    def trial_limit(self) -> float:
        """Seconds a half-open trial may run before the breaker gives up on it."""
        if self.max_trial_duration is not None:
            return self.max_trial_duration
        return self.call_timeout if self.call_timeout is not None else max(self.timeout, 1.0)

    def open_duration(self, trips_in_a_row: int) -> float:
        """How long OPEN lasts after the n-th trip in a row (n >= 1)."""
        duration = self.timeout * self.backoff_multiplier ** max(trips_in_a_row - 1, 0)
        return duration if self.max_timeout is None else min(duration, self.max_timeout)

    def replace(self, **changes: Any) -> CircuitBreakerConfig:
        """A copy with some fields changed, validated like a new one."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown configuration field(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view; code (exceptions, the predicate) as `module:qualname`."""
        return {
            "failure_threshold": self.failure_threshold,
            "success_threshold": self.success_threshold,
            "timeout": self.timeout,
            "half_open_max_calls": self.half_open_max_calls,
            "policy": self.policy.to_dict(),
            "call_timeout": self.call_timeout,
            "max_trial_duration": self.max_trial_duration,
            "backoff_multiplier": self.backoff_multiplier,
            "max_timeout": self.max_timeout,
            "excluded_exceptions": [_code_name(e) for e in self.excluded_exceptions],
            "is_excluded": None if self.is_excluded is None else _code_name(self.is_excluded),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CircuitBreakerConfig:
        """Build from JSON-like data (`to_dict()` output, admin API, sweep grids).

        Unknown keys are errors. Code is named `module:qualname` and looked up in
        modules already imported (never imported on the strength of data).
        """
        if not isinstance(data, dict):
            raise ConfigError(f"configuration must be an object, got {type(data).__name__}")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown configuration field(s): {', '.join(sorted(unknown))}")
        fields = dict(data)
        excluded = fields.get("excluded_exceptions")
        if isinstance(excluded, (list, tuple)):
            fields["excluded_exceptions"] = tuple(
                e if isinstance(e, type) else _code_from_name("excluded_exceptions", e)
                for e in excluded
            )
        predicate = fields.get("is_excluded")
        if isinstance(predicate, str):
            fields["is_excluded"] = _code_from_name("is_excluded", predicate)
        return cls(**fields)
