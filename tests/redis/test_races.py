"""Races across processes: M replica processes x K asyncio tasks on one breaker."""

from __future__ import annotations

from cblab import CircuitBreaker, CircuitBreakerConfig
from cblab.stores import RedisStore

from .helpers import results, shared_hash, spawn_replica, start_together

M, K = 4, 8


def _spec(redis_url: str, namespace: str, task: str, config: dict, **extra) -> dict:
    return {"url": redis_url, "namespace": namespace, "name": "dep", "task": task,
            "config": config, "tasks": K, **extra}


async def test_exactly_half_open_max_calls_trials_across_processes(redis_url, namespace):
    config = {"failure_threshold": 1, "timeout": 0.5, "half_open_max_calls": 3,
              "success_threshold": 3, "max_trial_duration": 60}
    async with RedisStore(redis_url, namespace=namespace) as store:
        breaker = CircuitBreaker("dep", CircuitBreakerConfig(**config), store=store)
        try:
            await breaker.call(_fail)
        except _Boom:
            pass
        await store.drain()
        assert shared_hash(redis_url, namespace, "dep")["state"] == "open"
    spec = _spec(redis_url, namespace, "trials", config, hold=2.0, duration=1.0)
    processes = [spawn_replica(spec) for _ in range(M)]
    start_together(redis_url, namespace, processes)
    outcome = results(processes)
    assert sum(r["admitted"] for r in outcome) == 3  # not M x 3
    shared = shared_hash(redis_url, namespace, "dep")
    assert shared["state"] == "closed" and shared["trips_total"] == "1"


async def test_concurrent_failures_are_all_counted_and_trip_once(redis_url, namespace):
    failures = M * K * 2
    config = {"failure_threshold": failures, "timeout": 60}
    spec = _spec(redis_url, namespace, "failures", config, failures=K * 2)
    processes = [spawn_replica(spec) for _ in range(M)]
    start_together(redis_url, namespace, processes)
    outcome = results(processes)
    assert sum(r["admitted"] for r in outcome) == failures
    shared = shared_hash(redis_url, namespace, "dep")
    assert shared["count"] == str(failures)  # no lost update
    assert shared["state"] == "open" and shared["trips_total"] == "1"


class _Boom(Exception):
    pass


async def _fail() -> None:
    raise _Boom
