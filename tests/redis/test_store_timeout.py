"""The store falls back to local state on evidence, not on one slow answer (issue 20, item 4).

With `--store-timeout 0.05` replicas fell back 14-27 times in 67-110 s against 2-4
real outages: every operation that took longer than 50 ms was taken for an outage.
"""

from __future__ import annotations

import asyncio

from cblab import CircuitBreaker, CircuitBreakerConfig
from cblab.stores import RedisStore

from .helpers import eventually


async def test_one_slow_answer_is_not_an_outage(redis_factory, namespace):
    server = redis_factory()
    async with RedisStore(server.url, namespace=namespace, op_timeout=0.05,
                          ping_timeout=5.0) as store:
        breaker = CircuitBreaker("dep", CircuitBreakerConfig(), store=store)
        await store.drain()
        server.pause()  # Redis stalls for 0.3 s: longer than op_timeout, far from an outage
        asyncio.get_running_loop().call_later(0.3, server.resume)
        assert await store.read("dep", breaker.config) is None  # that operation timed out
        await eventually(lambda: store._checking is not None and store._checking.done(),
                         what="the PING after the timeout")
        assert store.available and store.fallbacks == 0
        status = store.status()
        # the stalled read answered slowly (other operations in that 0.3 s may too): no fallback
        assert status["slow_answers"] >= 1 and status["fallback_cause"] is None
        assert await store.read("dep", breaker.config) is not None


async def test_timeouts_in_a_row_are_an_outage_and_say_so(redis_factory, namespace):
    server = redis_factory()
    async with RedisStore(server.url, namespace=namespace, op_timeout=0.05, ping_timeout=30.0,
                          fallback_after=3, retry_interval=0.1) as store:
        config = CircuitBreakerConfig()
        CircuitBreaker("dep", config, store=store)
        await store.drain()
        server.pause()  # stalled for good: the PING (30 s) would take long to say so
        try:
            for expected in (True, True, False):
                assert await store.read("dep", config) is None
                assert store.available is expected
            assert store.fallbacks == 1
            assert store.status()["fallback_cause"] == (
                "3 operations in a row timed out after 0.05 s")
        finally:
            server.resume()
        await eventually(lambda: store.available, what="the store to re-join")


async def test_a_refused_connection_falls_back_at_once(redis_factory, namespace):
    server = redis_factory()
    async with RedisStore(server.url, namespace=namespace, op_timeout=0.5) as store:
        config = CircuitBreakerConfig()
        CircuitBreaker("dep", config, store=store)
        await store.drain()
        server.kill()
        assert await store.read("dep", config) is None
        assert not store.available and store.slow_answers == 0
        assert store.status()["fallback_cause"]
