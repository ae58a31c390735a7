"""Failure-counting policies side by side on the same stream of calls (notebook 02).

The model: one real `CircuitBreaker` per policy, each on its own `ManualClock`,
all fed the *same* seeded sequence of outcomes at a steady call rate. A healthy
service with a small error rate shows the difference at once: the cumulative
count of the original write-up trips it again and again, the consecutive count
and the sliding windows leave it alone.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import (
    CircuitBreaker,
    CircuitBreakerConfig,
    ConsecutiveFailures,
    CountWindow,
    CumulativeFailures,
    FailurePolicy,
    ManualClock,
    Outcome,
    StateChange,
    TimeWindow,
)
from ..analysis import PROBE_FAILURE, TRIP
from ..sim.theory import expected_calls_until_trip
from .diagram import STATE_COLORS, STATE_LABELS

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go
    from pandas.io.formats.style import Styler

__all__ = [
    "PolicyComparison",
    "compare_policies",
    "default_policies",
    "expected_calls_until_trip",
    "trip_time_table",
]


def default_policies(failure_threshold: int = 5) -> dict[str, FailurePolicy]:
    """The four policies the notebook compares, labelled for people."""
    return {
        f"cumulative ({failure_threshold} failures, ever)": CumulativeFailures(),
        f"consecutive ({failure_threshold} in a row)": ConsecutiveFailures(),
        "last 50 calls ≥ 50% failed": CountWindow(size=50, failure_rate_threshold=0.5,
                                                  minimum_calls=20),
        "last 30 s ≥ 50% failed": TimeWindow(window=30, buckets=10, failure_rate_threshold=0.5,
                                             minimum_calls=20),
    }


def _human(seconds: float) -> str:
    if math.isinf(seconds):
        return "never"
    for unit, size in (("years", 365 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def trip_time_table(
    error_rates: Sequence[float] = (0.01, 0.02, 0.05, 0.10),
    *,
    rate: float = 20.0,
    rows: Sequence[tuple[str, int]] = (("cumulative", 5), ("consecutive", 3),
                                       ("consecutive", 5), ("consecutive", 10)),
) -> pd.DataFrame:
    """Expected time until a healthy service with these error rates trips the breaker,
    at `rate` calls per second, as readable durations (rows: policy and threshold)."""
    import pandas as pd

    table = {
        f"{p:.0%} errors": {
            f"{policy}, failure_threshold={k}": _human(
                expected_calls_until_trip(p, k, policy) / rate)
            for policy, k in rows
        }
        for p in error_rates
    }
    frame = pd.DataFrame(table)
    frame.index.name = f"at {rate:g} calls/s"
    return frame


@dataclass(frozen=True)
class PolicyComparison:
    """What `compare_policies` measured."""

    summary: pd.DataFrame  # one row per policy
    spans: pd.DataFrame  # policy, state, start, end: the time each breaker spent away from CLOSED
    duration: float  # seconds of simulated traffic
    error_rate: float

    def figure(self) -> go.Figure:
        """A timeline per policy: the bands where the breaker was OPEN or HALF-OPEN."""
        import plotly.graph_objects as go

        labels = list(self.summary["policy"])
        fig = go.Figure(go.Bar(
            name=STATE_LABELS["closed"], orientation="h", y=labels, base=[0] * len(labels),
            x=[self.duration] * len(labels), marker_color=STATE_COLORS["closed"], opacity=0.35,
            width=0.6, hoverinfo="skip",
        ))
        for state in ("open", "half_open"):
            rows = self.spans[self.spans["state"] == state]
            fig.add_trace(go.Bar(
                name=STATE_LABELS[state], orientation="h", y=rows["policy"],
                base=rows["start"], x=rows["end"] - rows["start"],
                marker_color=STATE_COLORS[state], width=0.6,
                hovertemplate="%{y}<br>" + STATE_LABELS[state]
                + " from %{base:.0f} s for %{x:.1f} s<extra></extra>",
            ))
        fig.update_layout(
            title=f"A healthy service with {self.error_rate:.0%} errors: when does each policy trip?",
            barmode="overlay", height=140 + 55 * len(labels), template="plotly_white",
            xaxis={"title": "time (s)", "range": [0, self.duration]},
            yaxis={"categoryorder": "array", "categoryarray": labels[::-1]},
            legend={"orientation": "h", "y": -0.3},
            margin={"l": 10, "r": 10, "t": 50, "b": 40},
        )
        return fig

    def table(self) -> Styler:
        """The summary for reading: labelled columns with units, "never" for a
        breaker that never tripped."""
        from .tables import readable_table

        return readable_table(self.summary, {
            "policy": "policy", "trips": "trips", "first_trip_s": "first trip (s)",
            "rejected": "calls rejected", "rejected_pct": "rejected (%)",
            "time_not_closed_pct": "time not CLOSED (%)",
        }, missing="never", caption=f"{self.duration / 60:g} minutes of a healthy service "
           f"with {self.error_rate:.0%} errors")


def compare_policies(
    error_rate: float = 0.02,
    *,
    rate: float = 20.0,
    duration: float = 600.0,
    failure_threshold: int = 5,
    timeout: float = 30.0,
    policies: Mapping[str, FailurePolicy] | None = None,
    seed: int = 1,
) -> PolicyComparison:
    """Feed every policy the same calls: `rate` calls/s for `duration` s, each failing
    with probability `error_rate` (one seeded draw per call, used by every policy).

    Rejected calls still consume their draw, so the streams stay aligned.
    """
    import pandas as pd

    if not 0 <= error_rate <= 1:
        raise ValueError(f"error_rate must be between 0 and 1, got {error_rate!r}")
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be > 0")
    policies = dict(policies) if policies is not None else default_policies(failure_threshold)
    rng = random.Random(seed)
    n = int(rate * duration)
    fails = [rng.random() < error_rate for _ in range(n)]

    summary: list[dict[str, Any]] = []
    spans: list[dict[str, Any]] = []
    for label, policy in policies.items():
        clock = ManualClock()
        changes: list[StateChange] = []
        breaker = CircuitBreaker(
            "dependency",
            CircuitBreakerConfig(failure_threshold=failure_threshold, timeout=timeout,
                                 success_threshold=1, half_open_max_calls=1, policy=policy),
            clock=clock,
            listeners=[lambda e, changes=changes: changes.append(e)  # type: ignore[misc]
                       if isinstance(e, StateChange) else None],
        )
        first_trip: float | None = None
        for i, failed in enumerate(fails):
            clock.set(i / rate)
            permit = breaker.admit()
            if permit.admitted:
                breaker.record(permit, Outcome.FAILURE if failed else Outcome.SUCCESS, duration=0.0)
                if first_trip is None and breaker.trips:
                    first_trip = clock.now
        breaker.state  # noqa: B018 (let a due OPEN -> HALF_OPEN move happen before the end)
        start: dict[str, float] = {}
        for change in changes:
            if change.from_state.value in start:
                spans.append({"policy": label, "state": change.from_state.value,
                              "start": start.pop(change.from_state.value), "end": change.at})
            if change.to_state.value != "closed":
                start[change.to_state.value] = change.at
        for state, began in start.items():
            spans.append({"policy": label, "state": state, "start": began, "end": duration})
        away = sum(s["end"] - s["start"] for s in spans if s["policy"] == label)
        moves = [(c.from_state.value, c.to_state.value) for c in changes]
        summary.append({
            "policy": label,
            # the report's definitions: trips CLOSED -> OPEN, failed probes HALF_OPEN -> OPEN
            "trips": moves.count(TRIP),
            "probe_failures": moves.count(PROBE_FAILURE),
            "first_trip_s": first_trip,
            "rejected": breaker.rejected,
            "rejected_pct": 100.0 * breaker.rejected / n,
            "time_not_closed_pct": 100.0 * away / duration,
        })
    return PolicyComparison(
        summary=pd.DataFrame(summary),
        spans=pd.DataFrame(spans, columns=["policy", "state", "start", "end"]),
        duration=duration,
        error_rate=error_rate,
    )
