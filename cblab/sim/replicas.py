"""N replicas of a server, each with its own breaker, on virtual time: local vs shared.

Each replica runs the real `CircuitBreaker` (its `admit()`/`record()`), over
either its own in-memory store ("local": what N processes do by default) or one
`cblab.stores.SharedHub` ("shared": the Redis store's semantics in memory:
atomic operations, server-side leases, fencing), where a replica learns what
another did `pubsub_delay` seconds later. Calls arrive as one Poisson stream
spread over the replicas (round robin or at random, like the load generator);
the backend fails every call during `outage` and answers normally otherwise.

What the comparison counts (`ReplicaResult`):

- `failing_calls`: calls that reached the backend while it was down (probes too);
- `failing_until_stopped`: those admitted before the first probe, i.e. until every
  replica's breaker had stopped calling (local: about N x failure_threshold;
  shared: failure_threshold plus what arrives during the pub/sub delay);
- `stop_time`: seconds from the outage's start to the last of those;
- `probes`: half-open trial calls (each one a probe of the recovering service),
  in total over the run; `probes_after_recovery`: those admitted after it;
- `recovered_at`: when the last replica's breaker closed after the outage.

    from cblab.sim.replicas import replica_sweep
    frame = replica_sweep([1, 2, 4, 8, 16, 32])   # local vs shared, one row each
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from cblab import CircuitBreaker, CircuitBreakerConfig, EventLog, Outcome
from cblab.stores.hub import HubStore, SharedHub

from .bounds import DEFAULT_MAX_CALLS, WorkLimitError, check_limit
from .engine import Engine

__all__ = ["ReplicaResult", "replica_sweep", "simulate_replicas"]

STORES = ("local", "shared")


@dataclass(frozen=True)
class ReplicaResult:
    replicas: int
    store: str
    failing_calls: int
    failing_until_stopped: int
    stop_time: float
    probes: int
    probes_after_recovery: int
    calls: int
    rejected: int
    recovered_at: float | None
    pubsub_delay: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(name: str, value: Any, *, minimum: float = 0.0, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value < minimum or (strict and value == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def simulate_replicas(
    replicas: int,
    store: str = "shared",
    config: CircuitBreakerConfig | None = None,
    *,
    rate: float = 60.0,
    duration: float = 60.0,
    outage: tuple[float, float] = (5.0, 25.0),
    latency: float = 0.02,
    fail_latency: float = 0.005,
    pubsub_delay: float = 0.001,
    spread: str = "round_robin",
    seed: int = 1,
    max_calls: int = DEFAULT_MAX_CALLS,
) -> ReplicaResult:
    """One run of `replicas` replicas over a `store` ("local" or "shared"); refused
    (WorkLimitError) when rate x duration is past `max_calls` (`cblab.sim.bounds`)."""
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise ValueError(f"replicas must be an integer >= 1, got {replicas!r}")
    if store not in STORES:
        raise ValueError(f"store must be one of {', '.join(STORES)}, got {store!r}")
    if spread not in ("round_robin", "random"):
        raise ValueError(f"spread must be 'round_robin' or 'random', got {spread!r}")
    rate = _check("rate", rate, strict=True)
    duration = _check("duration", duration, strict=True)
    latency = _check("latency", latency)
    fail_latency = _check("fail_latency", fail_latency)
    pubsub_delay = _check("pubsub_delay", pubsub_delay)
    if rate * duration > check_limit("max_calls", max_calls):
        raise WorkLimitError("the replicas run expects {amount} calls (rate x duration)",
                             rate * duration, "max_calls", max_calls)
    down_from, down_until = (_check("outage start", outage[0]), _check("outage end", outage[1]))
    if down_until < down_from:
        raise ValueError(f"outage must be (start, end) with start <= end, got {outage!r}")
    config = config if config is not None else CircuitBreakerConfig(
        failure_threshold=5, timeout=5.0, half_open_max_calls=3, success_threshold=3)

    env = Engine()
    hub = SharedHub(env) if store == "shared" else None

    def make_store(i: int) -> Any:
        if hub is None:
            return None
        return HubStore(hub, replica=f"r{i}", delay=pubsub_delay, schedule=env.schedule)

    closed_at: list[float | None] = [None] * replicas

    def closes(i: int) -> Any:
        def listener(event: Any) -> None:
            if event.kind == "state" and event.to_state.value == "closed" \
                    and event.at >= down_until:
                closed_at[i] = closed_at[i] or event.at
        return listener

    breakers = [CircuitBreaker("dep", config, clock=env, event_log=EventLog(16),
                               store=make_store(i), listeners=[closes(i)])
                for i in range(replicas)]
    rng = random.Random(seed)
    pick = random.Random(seed + 1)
    counts = {"failing": 0, "until_stopped": 0, "probes": 0, "probes_after": 0, "calls": 0, "rejected": 0}
    last_failing = [down_from]
    first_probe = [math.inf]
    next_replica = [0]

    def finish(breaker: CircuitBreaker, permit: Any, failed: bool) -> None:
        breaker.record(permit, Outcome.FAILURE if failed else Outcome.SUCCESS)

    def arrive() -> None:
        now = env.now
        if spread == "random":
            index = pick.randrange(replicas)
        else:
            index = next_replica[0]
            next_replica[0] = (index + 1) % replicas
        breaker = breakers[index]
        permit = breaker.admit()
        counts["calls"] += 1
        if not permit.admitted:
            counts["rejected"] += 1
        else:
            down = down_from <= now < down_until
            if permit.trial:
                counts["probes"] += 1
                first_probe[0] = min(first_probe[0], now)
                if now >= down_until:
                    counts["probes_after"] += 1
            if down:
                counts["failing"] += 1
                if not permit.trial and now < first_probe[0]:
                    last_failing[0] = now
                    counts["until_stopped"] += 1
            env.schedule(fail_latency if down else latency, finish, breaker, permit, down)
        gap = rng.expovariate(rate)
        if now + gap < duration:
            env.schedule(gap, arrive)

    env.schedule(rng.expovariate(rate), arrive)
    env.run(until=duration + max(latency, fail_latency) + pubsub_delay + 1.0)

    recovered = None if None in closed_at else max(c for c in closed_at if c is not None)
    return ReplicaResult(
        replicas=replicas, store=store, failing_calls=counts["failing"],
        failing_until_stopped=counts["until_stopped"],
        stop_time=last_failing[0] - down_from, probes=counts["probes"],
        probes_after_recovery=counts["probes_after"], calls=counts["calls"],
        rejected=counts["rejected"], recovered_at=recovered, pubsub_delay=pubsub_delay,
    )


def replica_sweep(
    replicas: Iterable[int] = (1, 2, 4, 8, 16, 32),
    stores: Iterable[str] = STORES,
    config: CircuitBreakerConfig | None = None,
    **options: Any,
) -> Any:
    """`simulate_replicas` for every N and store: a DataFrame, one row per run."""
    import pandas as pd

    rows = [simulate_replicas(n, store, config, **options).as_dict()
            for n in replicas for store in stores]
    return pd.DataFrame(rows)
