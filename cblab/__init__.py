"""cblab: a circuit-breaker lab.

The core (everything importable from `cblab` itself) is standard library only:

    from cblab import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError
"""

from ._breaker import CircuitBreaker, CircuitOpenError, Permit, Rejection
from ._clock import Clock, ManualClock, monotonic
from ._config import CircuitBreakerConfig, ConfigError
from ._events import CallRecord, CircuitState, Event, EventLog, LogSlice, Outcome, StateChange
from ._policies import (
    ConsecutiveFailures,
    CountWindow,
    CumulativeFailures,
    FailurePolicy,
    TimeWindow,
    policy_from_dict,
)
from ._registry import BreakerRegistry
from ._store import BreakerStore, MemoryRecord, MemoryStore, Mode, Snapshot, StateRecord

__version__ = "0.2.0"

__all__ = [
    "BreakerRegistry",
    "BreakerStore",
    "CallRecord",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitOpenError",
    "CircuitState",
    "Clock",
    "ConfigError",
    "ConsecutiveFailures",
    "CountWindow",
    "CumulativeFailures",
    "Event",
    "EventLog",
    "FailurePolicy",
    "LogSlice",
    "ManualClock",
    "MemoryRecord",
    "MemoryStore",
    "Mode",
    "Outcome",
    "Permit",
    "Rejection",
    "Snapshot",
    "StateChange",
    "StateRecord",
    "TimeWindow",
    "__version__",
    "monotonic",
    "policy_from_dict",
]
