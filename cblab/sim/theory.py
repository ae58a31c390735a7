"""Closed forms the simulator must reproduce, and the experiments that check them."""

from __future__ import annotations

import math
from typing import Any

from cblab import CircuitBreakerConfig, CircuitState, ConsecutiveFailures

from .run import simulate
from .workload import single_phase

__all__ = ["calls_until_trip", "expected_calls_until_trip"]


def expected_calls_until_trip(p: float, k: int, policy: str = "consecutive") -> float:
    """Mean number of calls until a breaker with `failure_threshold` `k` trips, each call
    failing independently with probability `p`.

    consecutive (the default policy): (1 - p^k) / ((1 - p) p^k), the waiting time for
    a run of k successes in Bernoulli trials, read with "failure" as the success.
    cumulative: k / p, the waiting time for the k-th failure. Infinite when p = 0.
    """
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if policy not in ("consecutive", "cumulative"):
        raise ValueError(f"policy must be 'consecutive' or 'cumulative', got {policy!r}")
    if p == 0:
        return math.inf
    if policy == "cumulative":
        return k / p
    if p == 1:
        return float(k)
    return (1 - p**k) / ((1 - p) * p**k)


def calls_until_trip(p: float, k: int, *, trips: int = 1000, seed: int | str = 0,
                     **config: Any) -> list[int]:
    """Simulate a service whose calls fail independently with probability `p` behind a
    `k`-consecutive-failures breaker; return the number of calls in each CLOSED spell
    that ended in a trip (at least `trips` of them).

    Calls never overlap (1 ms answers, one call every 10 ms), the breaker re-closes
    after one successful trial (`timeout=0`), so each CLOSED spell is an independent
    sample of the waiting time `expected_calls_until_trip(p, k)` estimates.
    """
    settings: dict[str, Any] = {"failure_threshold": k, "timeout": 0.0, "half_open_max_calls": 1,
                "success_threshold": 1, "policy": ConsecutiveFailures()}
    settings.update(config)
    breaker_config = CircuitBreakerConfig(**settings)
    rate = 100.0
    # each trip costs its spell plus the trial calls that re-close the breaker
    per_trip = expected_calls_until_trip(p, k) + 1 / max(1 - p, 1e-9) + 1
    samples: list[int] = []
    budget = trips
    attempt = 0
    while len(samples) < trips:
        calls = math.ceil(budget * per_trip * 1.2) + 100
        scenario = single_phase({"error_rate": p, "latency": {"kind": "constant", "ms": 1}},
                                duration_s=calls / rate, rate_per_s=rate, arrivals="constant")
        run = simulate(scenario, breaker_config, seed=f"{seed}:{attempt}", deadline_s=1.0)
        samples += _closed_spells(run.rows)
        budget = trips - len(samples)
        attempt += 1
    return samples[:trips] if len(samples) > trips else samples


def _closed_spells(rows: list[tuple[Any, ...]]) -> list[int]:
    """Calls admitted in each CLOSED generation that ended with a CLOSED -> OPEN trip."""
    closed = CircuitState.CLOSED
    counts: dict[int, int] = {}
    tripped = set()
    for row in rows:
        if row[0] == "call":
            if row[4] is closed:
                counts[row[8]] = counts.get(row[8], 0) + 1
        elif row[4] is closed and row[5] is CircuitState.OPEN:
            tripped.add(row[8] - 1)  # the generation the trip ended
    return [counts[g] for g in sorted(counts) if g in tripped]
