"""Prometheus text exposition (format 0.0.4) of the breakers, resilience4j-style.

Metric names (every one labelled with the breaker's `name`):

``cblab_circuitbreaker_state{name,state}``
    gauge, 1 for the current state and 0 for the others; `state` is one of
    closed, open, half_open.
``cblab_circuitbreaker_mode{name,mode}``
    gauge, 1 for the current mode: normal, forced_open, forced_closed, disabled.
``cblab_circuitbreaker_calls_seconds_count{name,kind}`` / ``..._sum``
    summary of permitted calls by how they ended: `successful`, `failed`,
    `ignored` (excluded, cancelled, or late outcomes) and `slow` (successes slower
    than the policy's slow-call duration; not also counted as successful).
``cblab_circuitbreaker_call_duration_seconds_bucket{name,kind,le}`` / ``_count`` / ``_sum``
    histogram of the same calls' durations (for p50/p99 by kind).
``cblab_circuitbreaker_not_permitted_calls_total{name}``
    counter of calls the breaker refused.
``cblab_circuitbreaker_failure_rate{name}``
    gauge, failures / counted calls, -1 until enough calls. From the policy's own
    window when it has one (count_window, time_window: the number the breaker
    decides on); otherwise over the last 100 counted calls, minimum 10.
``cblab_circuitbreaker_slow_call_rate{name}``
    gauge, from a windowed policy, else -1.
``cblab_circuitbreaker_trips_total{name}``
    counter of trips: automatic CLOSED -> OPEN moves.
``cblab_circuitbreaker_probe_failures_total{name}``
    counter of failed probes: automatic HALF_OPEN -> OPEN moves.

The bulkheads' `cblab_bulkhead_in_flight`, `_waiting`, `_refused_total`, `_limit`,
`_shed_total` (refused while the event loop lagged), `_local_misses_total` (deadlines
missed while the loop was behind: local overload, not failures) and `_loop_lag_seconds`
(by breaker name, see `cblab.integrations.prometheus`), and one server-wide counter: ``cblab_tool_calls_total{tool,outcome}`` (the call
rows' outcomes, see `instrumentation`). Its label sets are bounded whatever
clients send: a tool the server does not have is counted as `tool="unknown"`,
and past 256 distinct tools the rest are `tool="other"`; outcomes are a fixed set.
"""

from __future__ import annotations

from cblab import BreakerRegistry, CircuitBreaker
from cblab.integrations.prometheus import (
    CONTENT_TYPE,
    breaker_lines,
    bulkhead_lines,
    family,
    label,
)

from .instrumentation import DURATION_BUCKETS, KINDS, Instrumentation

__all__ = ["CONTENT_TYPE", "METRIC_NAMES", "render"]

METRIC_NAMES = (
    "cblab_circuitbreaker_state",
    "cblab_circuitbreaker_mode",
    "cblab_circuitbreaker_calls_seconds",
    "cblab_circuitbreaker_call_duration_seconds",
    "cblab_circuitbreaker_not_permitted_calls_total",
    "cblab_circuitbreaker_failure_rate",
    "cblab_circuitbreaker_slow_call_rate",
    "cblab_circuitbreaker_trips_total",
    "cblab_circuitbreaker_probe_failures_total",
    "cblab_tool_calls_total",
    "cblab_bulkhead_in_flight",
    "cblab_bulkhead_waiting",
    "cblab_bulkhead_refused_total",
    "cblab_bulkhead_limit",
    "cblab_bulkhead_shed_total",
    "cblab_bulkhead_local_misses_total",
    "cblab_bulkhead_loop_lag_seconds",
)


def _duration_samples(
    registry: BreakerRegistry, instrumentation: Instrumentation
) -> list[tuple[str, str, float]]:
    samples: list[tuple[str, str, float]] = []
    bounds = [repr(b) for b in DURATION_BUCKETS] + ["+Inf"]
    for breaker in registry:
        meter = instrumentation.meters.get(breaker.name)
        if meter is None:
            continue
        for kind in KINDS:
            labels = f'name="{label(breaker.name)}",kind="{kind}"'
            cumulative = 0
            for bound, count in zip(bounds, meter.buckets[kind], strict=True):
                cumulative += count
                samples.append(("_bucket", f'{labels},le="{bound}"', cumulative))
            samples.append(("_count", labels, meter.count[kind]))
            samples.append(("_sum", labels, meter.seconds[kind]))
    return samples


def render(registry: BreakerRegistry, instrumentation: Instrumentation) -> str:
    """The whole exposition, one scrape: cblab.integrations.prometheus's breaker
    families, with call durations from the instrumentation's meters, and the tool calls."""
    meters = instrumentation.meters

    def calls(breaker: CircuitBreaker, name: str) -> list[tuple[str, str, float]]:
        meter = meters.get(breaker.name)
        if meter is None:
            return []
        samples: list[tuple[str, str, float]] = []
        for kind in KINDS:
            labels = f'{name},kind="{kind}"'
            samples.append(("_count", labels, meter.count[kind]))
            samples.append(("_sum", labels, meter.seconds[kind]))
        return samples

    def window_rate(breaker: CircuitBreaker) -> float:
        meter = meters.get(breaker.name)
        return meter.window.rate if meter is not None else -1.0

    lines = breaker_lines(registry, calls=calls, window_rate=window_rate)
    lines += family("cblab_circuitbreaker_call_duration_seconds", "histogram",
                    "Permitted calls' durations, by how they ended.",
                    _duration_samples(registry, instrumentation))
    tool_samples = [
        ("", f'tool="{label(tool)}",outcome="{label(outcome)}"', count)
        for (tool, outcome), count in sorted(instrumentation.tool_calls.items())
    ]
    lines += family("cblab_tool_calls_total", "counter",
                     "MCP tool calls by outcome, as recorded in /events.", tool_samples)
    lines += bulkhead_lines(instrumentation.bulkheads)  # the middleware's slots (may be none)
    store = getattr(instrumentation, "shared_state", None)
    if store is not None:  # one of several replicas sharing breaker state
        from .replicas import shared_state_metrics

        lines += shared_state_metrics(store, instrumentation.variant)
    return "\n".join(lines) + "\n"
