"""N simulated replicas: local breakers vs one shared store (the Redis semantics in memory)."""

from __future__ import annotations

import pytest

from cblab import CircuitBreakerConfig
from cblab.sim.replicas import replica_sweep, simulate_replicas

CONFIG = CircuitBreakerConfig(failure_threshold=5, timeout=5.0, half_open_max_calls=3,
                              success_threshold=3)


@pytest.mark.parametrize("n", [1, 3, 8])
def test_local_breakers_each_pay_for_the_outage(n):
    many = simulate_replicas(n, "local", CONFIG, pubsub_delay=0)
    assert many.failing_until_stopped == n * CONFIG.failure_threshold
    # every replica probes the recovered service on its own
    assert many.probes_after_recovery == n * CONFIG.half_open_max_calls


@pytest.mark.parametrize("n", [1, 3, 8, 32])
def test_a_shared_breaker_costs_the_same_whatever_the_replicas(n):
    shared = simulate_replicas(n, "shared", CONFIG, pubsub_delay=0)
    assert shared.failing_until_stopped == CONFIG.failure_threshold
    one = simulate_replicas(1, "local", CONFIG, pubsub_delay=0)
    assert shared.probes == one.probes  # half_open_max_calls per recovery attempt, in all
    assert shared.probes_after_recovery == CONFIG.half_open_max_calls
    assert shared.recovered_at is not None and shared.recovered_at >= 25.0


def test_the_pubsub_delay_lets_calls_through_while_replicas_learn():
    quick = simulate_replicas(8, "shared", CONFIG, pubsub_delay=0.0)
    slow = simulate_replicas(8, "shared", CONFIG, pubsub_delay=0.5)
    assert quick.failing_until_stopped < slow.failing_until_stopped
    assert slow.failing_until_stopped < 8 * CONFIG.failure_threshold
    assert slow.probes == quick.probes  # leases are exact whatever the delay


def test_sweep_frame_and_bad_input():
    frame = replica_sweep([1, 4], config=CONFIG, duration=30.0)
    assert list(frame["replicas"]) == [1, 1, 4, 4]
    assert list(frame["store"]) == ["local", "shared"] * 2
    with pytest.raises(ValueError, match="replicas"):
        simulate_replicas(0)
    with pytest.raises(ValueError, match="store"):
        simulate_replicas(2, "redis")
    with pytest.raises(ValueError, match="pubsub_delay"):
        simulate_replicas(2, pubsub_delay=-1)
    with pytest.raises(ValueError, match="outage"):
        simulate_replicas(2, outage=(10.0, 5.0))
