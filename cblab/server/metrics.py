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
``cblab_circuitbreaker_not_permitted_calls_total{name}``
    counter of calls the breaker refused.
``cblab_circuitbreaker_failure_rate{name}``
    gauge, failures / counted calls, -1 until enough calls. From the policy's own
    window when it has one (count_window, time_window: the number the breaker
    decides on); otherwise over the last 100 counted calls, minimum 10.
``cblab_circuitbreaker_slow_call_rate{name}``
    gauge, from a windowed policy, else -1.
``cblab_circuitbreaker_trips_total{name}``
    counter of automatic CLOSED/HALF_OPEN -> OPEN moves.

And one server-wide counter: ``cblab_tool_calls_total{tool,outcome}`` (the call
rows' outcomes, see `instrumentation`). Its label sets are bounded whatever
clients send: a tool the server does not have is counted as `tool="unknown"`,
and past 256 distinct tools the rest are `tool="other"`; outcomes are a fixed set.
"""

from __future__ import annotations

from collections.abc import Iterable

from cblab import BreakerRegistry, CircuitState

from .instrumentation import KINDS, Instrumentation

__all__ = ["CONTENT_TYPE", "METRIC_NAMES", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MODES = ("normal", "forced_open", "forced_closed", "disabled")

METRIC_NAMES = (
    "cblab_circuitbreaker_state",
    "cblab_circuitbreaker_mode",
    "cblab_circuitbreaker_calls_seconds",
    "cblab_circuitbreaker_not_permitted_calls_total",
    "cblab_circuitbreaker_failure_rate",
    "cblab_circuitbreaker_slow_call_rate",
    "cblab_circuitbreaker_trips_total",
    "cblab_tool_calls_total",
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def _family(name: str, kind: str, help_: str, samples: Iterable[tuple[str, str, float]]) -> list[str]:
    lines = [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]
    for suffix, labels, value in samples:
        lines.append(f"{name}{suffix}{{{labels}}} {_number(value)}")
    return lines


def render(registry: BreakerRegistry, instrumentation: Instrumentation) -> str:
    """The whole exposition, one scrape."""
    breakers = list(registry)
    meters = instrumentation.meters
    state_samples, mode_samples, call_samples = [], [], []
    rejected, failure_rate, slow_rate, trips = [], [], [], []
    for breaker in breakers:
        name = f'name="{_label(breaker.name)}"'
        current = breaker.state
        for state in CircuitState:
            state_samples.append(("", f'{name},state="{state.value}"', int(state is current)))
        for mode in MODES:
            mode_samples.append(("", f'{name},mode="{mode}"', int(breaker.mode == mode)))
        meter = meters.get(breaker.name)
        if meter is not None:
            for kind in KINDS:
                labels = f'{name},kind="{kind}"'
                call_samples.append(("_count", labels, meter.count[kind]))
                call_samples.append(("_sum", labels, meter.seconds[kind]))
        rejected.append(("", name, breaker.rejected))
        trips.append(("", name, breaker.trips))
        figures = breaker.get_status()["policy"]
        if "failure_rate" in figures:
            failure_rate.append(("", name, float(figures["failure_rate"])))
            slow_rate.append(("", name, float(figures["slow_call_rate"])))
        else:
            window_rate = meter.window.rate if meter is not None else -1.0
            failure_rate.append(("", name, float(window_rate)))
            slow_rate.append(("", name, -1.0))
    tool_samples = [
        ("", f'tool="{_label(tool)}",outcome="{_label(outcome)}"', count)
        for (tool, outcome), count in sorted(instrumentation.tool_calls.items())
    ]
    lines: list[str] = []
    lines += _family("cblab_circuitbreaker_state", "gauge",
                     "1 for the breaker's current state, 0 otherwise.", state_samples)
    lines += _family("cblab_circuitbreaker_mode", "gauge",
                     "1 for the breaker's current mode, 0 otherwise.", mode_samples)
    lines += _family("cblab_circuitbreaker_calls_seconds", "summary",
                     "Permitted calls and their total duration, by how they ended.",
                     call_samples)
    lines += _family("cblab_circuitbreaker_not_permitted_calls_total", "counter",
                     "Calls refused by the breaker.", rejected)
    lines += _family("cblab_circuitbreaker_failure_rate", "gauge",
                     "Failure rate of counted calls (0..1), -1 until enough calls.",
                     failure_rate)
    lines += _family("cblab_circuitbreaker_slow_call_rate", "gauge",
                     "Slow-call rate from a windowed policy (0..1), -1 otherwise.", slow_rate)
    lines += _family("cblab_circuitbreaker_trips_total", "counter",
                     "Automatic moves to OPEN.", trips)
    lines += _family("cblab_tool_calls_total", "counter",
                     "MCP tool calls by outcome, as recorded in /events.", tool_samples)
    store = getattr(instrumentation, "shared_state", None)
    if store is not None:  # one of several replicas sharing breaker state
        from .replicas import shared_state_metrics

        lines += shared_state_metrics(store, instrumentation.variant)
    return "\n".join(lines) + "\n"
