"""Shared state never moves backwards (issue 20, item 3).

Every replica's breaker logs each state change it sees with the generation it
moved to; across half-open cycles and a Redis restart those generations only
ever go up, the restarted Redis continues from the highest generation any
replica knows, and every change is stamped with a sane time.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from cblab import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError, StateChange
from cblab.stores import RedisStore

from .helpers import eventually, shared_hash


class Boom(Exception):
    pass


async def ok() -> None:
    await asyncio.sleep(0.002)


async def fail() -> None:
    raise Boom


class Watched:
    """A breaker on its own store (one replica) and every state change it logged."""

    def __init__(self, store: RedisStore, config: CircuitBreakerConfig) -> None:
        self.store = store
        self.changes: list[StateChange] = []
        self.breaker = CircuitBreaker("dep", config, store=store,
                                      listeners=[self._seen])

    def _seen(self, event: object) -> None:
        if isinstance(event, StateChange):
            self.changes.append(event)

    def backwards(self) -> list[tuple[int, int]]:
        gens = [c.generation for c in self.changes]
        return [(a, b) for a, b in itertools.pairwise(gens) if b < a]


async def replicas(url: str, namespace: str, n: int, config: CircuitBreakerConfig,
                   **options: object) -> list[Watched]:
    out = []
    for i in range(n):
        store = await RedisStore(url, namespace=namespace, replica=f"r{i}",
                                 **{"op_timeout": 1.0, **options}).connect()
        out.append(Watched(store, config))
    for w in out:
        await w.store.drain()
    return out


async def call(breaker: CircuitBreaker, func) -> str:
    try:
        await breaker.call(func)
    except Boom:
        return "failure"
    except CircuitOpenError:
        return "rejected"
    return "success"


async def test_generations_only_go_up_across_half_open_cycles(redis_url, namespace):
    config = CircuitBreakerConfig(failure_threshold=2, timeout=0.05, half_open_max_calls=2,
                                  success_threshold=2)
    reps = await replicas(redis_url, namespace, 3, config, staleness=0.05)
    try:
        for cycle in range(12):
            # every replica hammers the breaker: trips, half-open trials, closes
            func = fail if cycle % 3 != 2 else ok
            for _ in range(15):
                await asyncio.gather(*(call(w.breaker, func) for w in reps for _ in range(3)))
                await asyncio.sleep(0.01)
            for _ in range(10):
                await asyncio.gather(*(call(w.breaker, ok) for w in reps for _ in range(3)))
                await asyncio.sleep(0.01)
        for w in reps:
            await w.store.drain()
        assert max(len(w.changes) for w in reps) >= 12  # the breaker did cycle
        assert [w.backwards() for w in reps] == [[], [], []]
    finally:
        for w in reps:
            await w.store.close()


async def test_a_restarted_redis_continues_from_the_highest_generation(redis_factory,
                                                                        namespace):
    server = redis_factory()
    config = CircuitBreakerConfig(failure_threshold=1, timeout=60)
    reps = await replicas(server.url, namespace, 2, config, retry_interval=0.1)
    a, b = reps
    try:
        started = time.monotonic()
        for _ in range(3):  # trip and reset: generation 6
            await call(a.breaker, fail)
            await eventually(lambda: b.breaker.state.value == "open")
            a.breaker.reset()
            await eventually(lambda: b.breaker.state.value == "closed")
        known = max(w.breaker.generation for w in reps)
        assert known >= 6
        server.restart()  # kill -9, start again empty on the same port
        await call(a.breaker, ok)  # notices the lost connection
        await eventually(lambda: all(w.store.available for w in reps), timeout=15)
        for w in reps:
            await w.store.drain()
        await eventually(lambda: int(shared_hash(server.url, namespace, "dep").get("gen", 0))
                         >= known, what="the shared record to continue from the known gen")
        await call(a.breaker, fail)  # a trip after the restart: a new, higher generation
        await eventually(lambda: b.breaker.state.value == "open")
        assert a.breaker.generation > known and b.breaker.generation == a.breaker.generation
        assert [w.backwards() for w in reps] == [[], []]
        now = time.monotonic()
        for w in reps:
            for change in w.changes:
                assert started - 1 <= change.at <= now + 1, change
    finally:
        for w in reps:
            await w.store.close()


async def test_times_stay_sane_when_the_first_read_timed_out(redis_factory, namespace):
    # The attach-time read (the one that learns the server's clock) times out; later
    # reads were untimed re-reads, so a trip seen afterwards was stamped with the
    # server's clock as if it were this process's: rows at t = +1.8e9.
    server = redis_factory()
    config = CircuitBreakerConfig(failure_threshold=1, timeout=60)
    (other,) = await replicas(server.url, namespace, 1, config)
    store = await RedisStore(server.url, namespace=namespace, op_timeout=0.05, staleness=0.1,
                             ping_timeout=5.0, retry_interval=0.1).connect()
    try:
        server.pause()
        asyncio.get_running_loop().call_later(0.3, server.resume)
        started = time.monotonic()
        late = Watched(store, config)  # its first read times out
        await store.drain()
        await eventually(lambda: store.available and store.round_trips >= 2,
                         what="a re-read after the stall")
        await store.drain()
        await call(other.breaker, fail)
        await eventually(lambda: late.breaker.state.value == "open")
        change = late.changes[-1]
        assert started - 1 <= change.at <= time.monotonic() + 1, change
    finally:
        await store.close()
        await other.store.close()
