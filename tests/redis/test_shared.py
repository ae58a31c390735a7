"""Replicas sharing one breaker through RedisStore, in one process (one store each).

Each `RedisStore` is its own connection, pub/sub subscription and set of views:
to Redis it is one replica. Time comes from the Redis server.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from cblab import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError, CircuitState, Outcome
from cblab.stores import RedisStore

from .helpers import eventually, shared_hash, spawn_replica

OPEN, CLOSED, HALF_OPEN = CircuitState.OPEN, CircuitState.CLOSED, CircuitState.HALF_OPEN


class Boom(Exception):
    pass


async def ok() -> str:
    return "ok"


async def fail() -> None:
    raise Boom


async def fail_through(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            await breaker.call(fail)


@pytest.fixture
async def replicas(redis_url, namespace):
    """`await replicas(n, **config, clocks=[...])`: n breakers named "dep", one store each."""
    stores: list[RedisStore] = []

    async def make(n: int, clocks=None, store_options=None, **config):
        breakers = []
        for i in range(n):
            # a loaded CI machine can take tens of ms to answer: these tests are about
            # sharing, not deadlines, so give operations room (the deadline tests below)
            options = {"op_timeout": 2.0, **(store_options or {})}
            store = await RedisStore(redis_url, namespace=namespace, replica=f"r{i}",
                                     **options).connect()
            stores.append(store)
            options = {"clock": clocks[i]} if clocks else {}
            breakers.append(CircuitBreaker("dep", CircuitBreakerConfig(**config), store=store,
                                           **options))
        for store in stores:
            await store.drain()
        return breakers

    yield make
    for store in stores:
        await store.close()


async def test_healthy_closed_calls_make_no_round_trip(replicas):
    (breaker,) = await replicas(1, store_options={"staleness": 60})
    store = breaker.store
    before = store.round_trips
    for _ in range(1000):
        await breaker.call(ok)
    assert store.round_trips == before


async def test_a_failure_is_one_round_trip_and_a_success_only_resets_a_nonzero_count(replicas):
    (breaker,) = await replicas(1, failure_threshold=5, store_options={"staleness": 60})
    store = breaker.store
    before = store.round_trips
    await fail_through(breaker, 1)
    await store.drain()
    assert store.round_trips == before + 1
    await breaker.call(ok)  # the shared count is 1: reset it
    await store.drain()
    assert store.round_trips == before + 2
    await breaker.call(ok)  # already zero: nothing to write
    assert store.round_trips == before + 2


async def test_a_trip_reaches_the_other_replicas_by_pubsub(replicas):
    a, b, c = await replicas(3, failure_threshold=3, timeout=60)
    await fail_through(a, 2)
    await fail_through(b, 1)  # the third failure, counted across replicas: trips
    await eventually(lambda: a.state is OPEN and b.state is OPEN and c.state is OPEN)
    trips_before = c.store.round_trips
    with pytest.raises(CircuitOpenError):
        await c.call(ok)  # refused from the cached view: no round trip
    assert c.store.round_trips == trips_before
    # the change is logged where it was seen, with the shared reason
    change = [e for _, e in c.event_log.since().events if e.kind == "state"][-1]
    assert (change.to_state, change.reason) == (OPEN, "3 consecutive failures")


async def test_a_replica_that_starts_later_knows_the_shared_state(replicas, redis_url, namespace):
    (a,) = await replicas(1, failure_threshold=1, timeout=60)
    await fail_through(a, 1)
    await a.store.drain()
    async with RedisStore(redis_url, namespace=namespace) as store:
        late = CircuitBreaker("dep", CircuitBreakerConfig(failure_threshold=1, timeout=60),
                              store=store)
        await eventually(lambda: late.state is OPEN)
        assert 55 < late.get_status()["retry_after"] <= 60


async def test_a_stale_outcome_from_another_replica_is_late(replicas, redis_url, namespace):
    a, b = await replicas(2, failure_threshold=2, timeout=60)
    permit = a.admit()  # CLOSED, generation 0
    await fail_through(b, 2)  # b trips the shared breaker: generation 1
    await eventually(lambda: a.state is OPEN)
    before = shared_hash(redis_url, namespace, "dep")
    assert a.record(permit, Outcome.FAILURE) is Outcome.LATE
    await a.store.drain()
    assert shared_hash(redis_url, namespace, "dep") == before  # nothing changed


async def test_clock_skew_does_not_change_the_open_duration(replicas):
    def skewed(offset):
        return lambda: time.monotonic() + offset

    a, b = await replicas(2, clocks=[skewed(+5.0), skewed(-5.0)], failure_threshold=1,
                          timeout=1.0)
    tripped = time.monotonic()
    await fail_through(a, 1)
    await eventually(lambda: b.state is OPEN)
    for breaker in (a, b):
        snap = breaker._record.snapshot()
        assert snap.open_until - snap.opened_at == pytest.approx(1.0, abs=1e-6)
    # b (10 s behind a) moves to HALF_OPEN after the configured second, not 10 s off
    await eventually(lambda: b.state is HALF_OPEN, timeout=5)
    assert 0.9 <= time.monotonic() - tripped < 4.0


async def test_a_replica_killed_mid_trial_loses_its_lease(replicas, redis_url, namespace):
    config = {"failure_threshold": 1, "timeout": 0.2, "half_open_max_calls": 1,
              "success_threshold": 1, "max_trial_duration": 0.5}
    (b,) = await replicas(1, **config)
    await fail_through(b, 1)
    await b.store.drain()
    dying = spawn_replica({"url": redis_url, "namespace": namespace, "name": "dep",
                           "task": "hang_trial", "config": config, "tasks": 1})
    try:
        client = b.store._aclient
        await client.incr(f"{namespace}:ready")
        await client.set(f"{namespace}:go", 1)
        assert '"trial": true' in await asyncio.to_thread(dying.stdout.readline)
    finally:
        dying.kill()
        dying.wait(10)
    # b may not probe while the dead replica's lease is valid; once it expired,
    # the breaker re-opens and, after the open timeout, b probes and closes it
    result = None
    deadline = time.monotonic() + 10
    while result is None and time.monotonic() < deadline:
        try:
            result = await b.call(ok)
        except CircuitOpenError:
            await asyncio.sleep(0.01)
    assert result == "ok" and b.state is CLOSED
    reasons = [e.reason for _, e in b.event_log.since().events if e.kind == "state"]
    assert "trial call exceeded max_trial_duration" in reasons


async def test_bad_input_is_a_clear_error_at_startup(redis_factory, redis_url):
    from cblab.stores import StoreError
    from cblab.stores.server import free_port

    with pytest.raises(StoreError, match="namespace must be"):
        RedisStore(redis_url, namespace="my app{1}")
    with pytest.raises(StoreError, match="redis://"):
        RedisStore("http://127.0.0.1:6379")
    with pytest.raises(StoreError, match="op_timeout"):
        RedisStore(redis_url, op_timeout=0)
    with pytest.raises(StoreError, match="cannot reach Redis"):
        await RedisStore(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.5).connect()
    secured = redis_factory(password="right-password")
    wrong = secured.url.replace("right-password", "wrong-password")
    with pytest.raises(StoreError, match="password") as info:
        await RedisStore(wrong).connect()
    assert "wrong-password" not in str(info.value)  # never echo a secret
    with pytest.raises(StoreError, match="password"):
        await RedisStore(f"redis://127.0.0.1:{secured.port}/0").connect()
    store = RedisStore(redis_url)
    with pytest.raises(StoreError, match="connect"):
        CircuitBreaker("dep", store=store)  # in a loop, connect() comes first
    async with RedisStore(secured.url) as good:
        assert good.available


async def test_redis_killed_then_restarted(redis_factory, namespace, caplog):
    server = redis_factory()
    stores = [await RedisStore(server.url, namespace=namespace, op_timeout=0.5,
                               retry_interval=0.1, replica=f"r{i}").connect() for i in range(2)]
    seen = []
    stores[0].on_status(lambda available, error: seen.append(available))
    config = CircuitBreakerConfig(failure_threshold=2, timeout=60)
    a, b = (CircuitBreaker("dep", config, store=s) for s in stores)
    try:
        for s in stores:
            await s.drain()
        caplog.set_level(logging.WARNING, logger="cblab.stores.redis")
        server.kill()  # kill -9
        slowest = 0.0
        for _ in range(20):  # calls keep flowing on local state, never waiting on Redis
            started = time.monotonic()
            await a.call(ok)
            slowest = max(slowest, time.monotonic() - started)
        await fail_through(a, 1)
        await eventually(lambda: not stores[0].available)
        assert slowest < 0.5  # calls never waited on the dead server
        assert seen == [False] and stores[0].status()["available"] is False
        assert sum("unavailable" in r.getMessage() for r in caplog.records
                   if "r0" in r.getMessage()) == 1
        await fail_through(a, 1)  # the local view still protects: trips locally
        assert a.state is OPEN and b.state is CLOSED
        server.start()  # same port, empty: persistence is off
        await eventually(lambda: all(s.available for s in stores))
        assert seen == [False, True]
        # the restarted (empty) Redis continues from what the replicas know (issue 20):
        # a's local trip, the highest generation, becomes the shared state again
        await eventually(lambda: b.state is OPEN)  # shared again
        assert a.state is OPEN and a.generation == b.generation == 1
    finally:
        for s in stores:
            await s.close()


async def test_a_paused_redis_never_holds_a_call_longer_than_the_deadline(redis_factory,
                                                                          namespace):
    server = redis_factory()
    async with RedisStore(server.url, namespace=namespace, op_timeout=0.3,
                          retry_interval=0.2) as store:
        config = CircuitBreakerConfig(failure_threshold=3, timeout=0.05,
                                      half_open_max_calls=1, success_threshold=1)
        breaker = CircuitBreaker("dep", config, store=store)
        await store.drain()
        server.pause()  # SIGSTOP: connections stay open, nothing answers
        try:
            slowest = 0.0
            started_all = time.monotonic()
            while time.monotonic() - started_all < 2.5:
                for call in (ok, fail):
                    started = time.monotonic()
                    try:
                        await breaker.call(call)
                    except (Boom, CircuitOpenError):
                        pass
                    slowest = max(slowest, time.monotonic() - started)
                await asyncio.sleep(0.01)
            assert not store.available
            assert slowest < 1.0  # the deadline (0.3 s), not the pause (2.5 s)
        finally:
            server.resume()
        await eventually(lambda: store.available)


async def test_a_window_counts_every_replica_and_trips_them_all(replicas):
    from cblab import CountWindow

    policy = CountWindow(size=10, minimum_calls=4, failure_rate_threshold=0.5)
    a, b = await replicas(2, policy=policy, timeout=60)
    for breaker in (a, b):  # neither replica alone reaches minimum_calls
        await breaker.call(ok)
        await fail_through(breaker, 1)
        await breaker.store.drain()
    # the shared window holds 4 calls, 2 failed: 50%
    await eventually(lambda: a.state is OPEN and b.state is OPEN)
    change = [e for _, e in a.event_log.since().events if e.kind == "state"][-1]
    assert change.reason == "failure rate 50% reached 50%"


async def test_a_time_window_sends_successes_once_per_bucket(replicas):
    from cblab import TimeWindow

    policy = TimeWindow(window=600, buckets=10, minimum_calls=5)  # 60 s buckets
    (a,) = await replicas(1, policy=policy, store_options={"staleness": 600})
    before = a.store.round_trips
    for _ in range(200):
        await a.call(ok)  # one bucket: batched, not sent
    assert a.store.round_trips == before
    await fail_through(a, 1)  # a failure goes at once, with the batch before it
    await a.store.drain()
    assert a.store.round_trips == before + 1
    assert a.state is CLOSED  # 1 failure in 201 calls


async def test_keys_share_a_hash_tag_and_expire(redis_url, namespace):
    import redis.asyncio as aioredis

    async with RedisStore(redis_url, namespace=namespace, ttl=30, op_timeout=2.0) as store:
        breaker = CircuitBreaker("git{hub}", CircuitBreakerConfig(failure_threshold=1,
                                                                  timeout=0.05), store=store)
        await fail_through(breaker, 1)

        async def trial_admitted() -> bool:  # a half-open trial: the lease key exists
            try:
                await breaker.call(asyncio.sleep, 0)
            except CircuitOpenError:  # still open, or a trial lease still held: again
                return False
            return True

        await eventually(trial_admitted, timeout=30, what="a half-open trial admitted")
        await store.drain()
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            keys = sorted(await client.keys(f"cblab:{namespace}:*"))
            assert keys == [f"cblab:{namespace}:{{git%7Bhub%7D}}"]  # the lease was settled
            assert 0 < await client.pttl(keys[0]) <= 30_000
        finally:
            await client.aclose()


async def test_an_older_answer_from_the_same_instant_does_not_undo_a_trip(redis_url, namespace):
    # Two answers stamped with the same time can arrive out of order (pooled connections):
    # the one with the older generation must not overwrite the trip.
    from cblab.stores.scripts import Snapshot

    async with RedisStore(redis_url, namespace=namespace, client_time=True) as store:
        record = store.attach("dep", CircuitBreakerConfig(failure_threshold=1), 100.0,
                              lambda snap: None)
        await record.flush()

        def shared(state: str, generation: int) -> Snapshot:
            return Snapshot(state, "normal", generation, 0, 100_000_000, 30_000_000,
                            100_000_000, 0, 0, 1, generation, 0, 100_000_000, "test")

        record.adopt(shared("open", 1))
        record.adopt(shared("closed", 0))  # the attach-time read, answered late
        assert (record.snapshot().state, record.snapshot().generation) == (OPEN, 1)
