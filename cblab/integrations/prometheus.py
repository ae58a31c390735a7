"""Prometheus text exposition (format 0.0.4) of breakers, resilience4j-style names.

Every family is labelled with the breaker's `name`:

``cblab_circuitbreaker_state{name,state}``
    gauge, 1 for the current state (closed, open, half_open), 0 for the others.
``cblab_circuitbreaker_mode{name,mode}``
    gauge, 1 for the current mode: normal, forced_open, forced_closed, disabled.
``cblab_circuitbreaker_calls_total{name,kind}``
    counter of permitted calls by how they ended: `successful`, `failed`, `ignored`
    (excluded, cancelled or late) and `slow` (successes slower than the policy's
    slow-call duration, not also counted as successful). (The demo server's richer
    `cblab_circuitbreaker_calls_seconds` summary adds their durations.)
``cblab_circuitbreaker_not_permitted_calls_total{name}``
    counter of calls the breaker refused.
``cblab_circuitbreaker_failure_rate{name}`` / ``..._slow_call_rate{name}``
    gauges from a windowed policy (count_window, time_window), else -1.
``cblab_circuitbreaker_trips_total{name}``
    counter of trips: automatic moves from CLOSED to OPEN.
``cblab_circuitbreaker_probe_failures_total{name}``
    counter of failed probes: automatic moves from HALF_OPEN back to OPEN (a
    dependency still down adds one per open timeout; it is not flapping).
``cblab_bulkhead_in_flight{name}`` / ``_waiting`` / ``_refused_total`` / ``_limit``
    the middleware's bulkheads, when it has them; ``_shed_total`` (of the refused:
    while the event loop lagged more than `max_lag`), ``_local_misses_total``
    (deadlines missed while the event loop was still behind: local overload, not
    failures) and ``_loop_lag_seconds`` (the event loop's sustained lag).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cblab import BreakerRegistry, CircuitBreaker, CircuitState

__all__ = [
    "CONTENT_TYPE",
    "KINDS",
    "MODES",
    "breaker_lines",
    "bulkhead_lines",
    "family",
    "label",
    "render",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MODES = ("normal", "forced_open", "forced_closed", "disabled")
KINDS = ("successful", "failed", "ignored", "slow")

Sample = tuple[str, str, float]


def label(value: str) -> str:
    """A label value, escaped."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def family(name: str, kind: str, help_: str, samples: Iterable[Sample]) -> list[str]:
    """One metric family: HELP, TYPE and its `(suffix, labels, value)` samples."""
    lines = [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]
    for suffix, labels, value in samples:
        lines.append(f"{name}{suffix}{{{labels}}} {_number(value)}")
    return lines


def breaker_lines(
    breakers: Iterable[CircuitBreaker],
    *,
    calls: Callable[[CircuitBreaker, str], list[Sample]] | None = None,
    window_rate: Callable[[CircuitBreaker], float] | None = None,
) -> list[str]:
    """The breaker families. `calls(breaker, name_label)` replaces the calls counter
    (the demo server's summary with durations); `window_rate(breaker)` gives the
    failure rate of breakers whose policy has no window (default -1)."""
    state_samples: list[Sample] = []
    mode_samples: list[Sample] = []
    call_samples: list[Sample] = []
    rejected: list[Sample] = []
    failure_rate: list[Sample] = []
    slow_rate: list[Sample] = []
    trips: list[Sample] = []
    probe_failures: list[Sample] = []
    for breaker in breakers:
        name = f'name="{label(breaker.name)}"'
        current = breaker.state
        for state in CircuitState:
            state_samples.append(("", f'{name},state="{state.value}"', int(state is current)))
        for mode in MODES:
            mode_samples.append(("", f'{name},mode="{mode}"', int(breaker.mode == mode)))
        if calls is not None:
            call_samples += calls(breaker, name)
        else:
            counts = (breaker.successes - breaker.slow_calls, breaker.failures,
                      breaker.excluded + breaker.cancelled + breaker.late, breaker.slow_calls)
            call_samples += [("", f'{name},kind="{kind}"', count)
                             for kind, count in zip(KINDS, counts, strict=True)]
        rejected.append(("", name, breaker.rejected))
        trips.append(("", name, breaker.trips))
        probe_failures.append(("", name, breaker.probe_failures))
        figures = breaker.get_status()["policy"]
        if "failure_rate" in figures:
            failure_rate.append(("", name, float(figures["failure_rate"])))
            slow_rate.append(("", name, float(figures["slow_call_rate"])))
        else:
            rate = window_rate(breaker) if window_rate is not None else -1.0
            failure_rate.append(("", name, float(rate)))
            slow_rate.append(("", name, -1.0))
    lines: list[str] = []
    lines += family("cblab_circuitbreaker_state", "gauge",
                    "1 for the breaker's current state, 0 otherwise.", state_samples)
    lines += family("cblab_circuitbreaker_mode", "gauge",
                    "1 for the breaker's current mode, 0 otherwise.", mode_samples)
    if calls is not None:
        lines += family("cblab_circuitbreaker_calls_seconds", "summary",
                        "Permitted calls and their total duration, by how they ended.",
                        call_samples)
    else:
        lines += family("cblab_circuitbreaker_calls_total", "counter",
                        "Permitted calls, by how they ended.", call_samples)
    lines += family("cblab_circuitbreaker_not_permitted_calls_total", "counter",
                    "Calls refused by the breaker.", rejected)
    lines += family("cblab_circuitbreaker_failure_rate", "gauge",
                    "Failure rate of counted calls (0..1), -1 until enough calls.", failure_rate)
    lines += family("cblab_circuitbreaker_slow_call_rate", "gauge",
                    "Slow-call rate from a windowed policy (0..1), -1 otherwise.", slow_rate)
    lines += family("cblab_circuitbreaker_trips_total", "counter",
                    "Trips: automatic moves from CLOSED to OPEN.", trips)
    lines += family("cblab_circuitbreaker_probe_failures_total", "counter",
                    "Failed probes: automatic moves from HALF_OPEN back to OPEN.",
                    probe_failures)
    return lines


def bulkhead_lines(bulkheads: Mapping[str, Any]) -> list[str]:
    """The bulkhead families (`cblab.integrations.Bulkhead` by breaker name)."""
    names = sorted(bulkheads)
    lines: list[str] = []
    for field, kind, help_ in (
        ("in_flight", "gauge", "Calls holding a bulkhead slot."),
        ("waiting", "gauge", "Calls waiting for a bulkhead slot."),
        ("refused", "counter", "Calls refused as local overload (no slot in time)."),
        ("limit", "gauge", "Bulkhead slots."),
        ("shed", "counter", "Calls refused because the event loop lagged more than max_lag."),
        ("local_misses", "counter",
         "Deadlines missed while the event loop was behind (local overload, not failures)."),
        ("loop_lag_seconds", "gauge", "How far the event loop runs behind, seconds."),
    ):
        metric = f"cblab_bulkhead_{field}" + ("_total" if kind == "counter" else "")
        lines += family(metric, kind, help_, [
            ("", f'name="{label(n)}"', getattr(bulkheads[n], field)) for n in names])
    return lines


def render(registry: BreakerRegistry, *, bulkheads: Mapping[str, Any] | None = None) -> str:
    """The whole exposition for `registry`'s breakers (and bulkheads), one scrape."""
    lines = breaker_lines(registry)
    if bulkheads:
        lines += bulkhead_lines(bulkheads)
    return "\n".join(lines) + "\n"
