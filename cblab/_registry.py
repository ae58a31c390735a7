"""One breaker per dependency name, with the write-up's status and metrics shapes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._breaker import CircuitBreaker
from ._clock import Clock, monotonic
from ._config import CircuitBreakerConfig, ConfigError
from ._events import CircuitState, EventLog
from ._store import BreakerStore, MemoryStore


class BreakerRegistry:
    """Creates breakers on first use and hands out the same one afterwards.

    All breakers share the registry's clock, event log and state store, so one
    poller sees every breaker's events in one sequence, and one shared store
    (e.g. Redis) serves every breaker.
    """

    def __init__(
        self,
        *,
        clock: Clock = monotonic,
        event_log: EventLog | None = None,
        store: BreakerStore | None = None,
    ) -> None:
        self.clock = clock
        self.event_log = event_log if event_log is not None else EventLog()
        self.store: BreakerStore = store if store is not None else MemoryStore()
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, name: str, config: CircuitBreakerConfig | None = None) -> CircuitBreaker:
        """The breaker called `name`, created with `config` the first time.

        Asking again with a different config is an error: two call sites would
        otherwise silently disagree about how the dependency is protected.
        Use `breaker.reconfigure()` to change settings on purpose.
        """
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = CircuitBreaker(
                name, config, clock=self.clock, event_log=self.event_log, store=self.store
            )
            self._breakers[name] = breaker
        elif config is not None and config != breaker.config:
            raise ConfigError(
                f"breaker {name!r} already exists with a different config; "
                "use breaker.reconfigure(config) to change it"
            )
        return breaker

    def __getitem__(self, name: str) -> CircuitBreaker:
        try:
            return self._breakers[name]
        except KeyError:
            raise KeyError(f"no breaker named {name!r}; known: {sorted(self._breakers)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(list(self._breakers.values()))

    def __len__(self) -> int:
        return len(self._breakers)

    def names(self) -> list[str]:
        return list(self._breakers)

    def status(self) -> dict[str, dict[str, Any]]:
        """Every breaker's `get_status()`, by name (the write-up's `circuit_status`)."""
        return {name: breaker.get_status() for name, breaker in self._breakers.items()}

    def metrics(self) -> dict[str, Any]:
        """The write-up's `circuit_metrics` shape: `circuits` and a `summary`."""
        circuits = [breaker.get_status() for breaker in self._breakers.values()]
        states = [c["state"] for c in circuits]
        return {
            "circuits": circuits,
            "summary": {
                "total": len(circuits),
                "open": states.count(CircuitState.OPEN.value),
                "closed": states.count(CircuitState.CLOSED.value),
                "half_open": states.count(CircuitState.HALF_OPEN.value),
            },
        }
