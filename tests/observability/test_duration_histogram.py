"""`/metrics`'s call-duration histogram (for p50/p99 panels), against durations chosen
by hand on a manual clock."""

from __future__ import annotations

from cblab import BreakerRegistry, Outcome
from cblab._clock import ManualClock
from cblab.server.instrumentation import DURATION_BUCKETS, Instrumentation
from cblab.server.metrics import render


def _samples(text: str, prefix: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line.startswith(prefix)}


def test_buckets_are_cumulative_counts_of_the_calls_durations() -> None:
    clock = ManualClock()
    registry = BreakerRegistry(clock=clock)
    instr = Instrumentation(variant="protected", capacity=100, clock=clock)
    breaker = registry.get("dep")
    instr.attach(breaker)
    durations = {Outcome.SUCCESS: [0.004, 0.02, 0.02, 3.0, 30.0], Outcome.FAILURE: [0.5]}
    for outcome, seconds in durations.items():
        for d in seconds:
            permit = breaker.admit()
            clock.advance(d)
            breaker.record(permit, outcome)
    got = _samples(render(registry, instr), "cblab_circuitbreaker_call_duration_seconds")
    for kind, seconds in (("successful", durations[Outcome.SUCCESS]),
                          ("failed", durations[Outcome.FAILURE]), ("ignored", [])):
        labels = f'name="dep",kind="{kind}"'
        for bound in DURATION_BUCKETS:
            expected = sum(1 for d in seconds if d <= bound)
            key = f'cblab_circuitbreaker_call_duration_seconds_bucket{{{labels},le="{bound!r}"}}'
            assert got[key] == expected, key
        inf = f'cblab_circuitbreaker_call_duration_seconds_bucket{{{labels},le="+Inf"}}'
        assert got[inf] == len(seconds)
        assert got[f"cblab_circuitbreaker_call_duration_seconds_count{{{labels}}}"] == len(seconds)
        total = got[f"cblab_circuitbreaker_call_duration_seconds_sum{{{labels}}}"]
        assert abs(total - sum(seconds)) < 1e-9
