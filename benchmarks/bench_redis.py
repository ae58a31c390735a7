"""Shared breaker state on Redis: round trips, closed-state cost, and three live replicas.

1. Round trips per 1,000 calls on the same throwaway redis-server, counted on the
   client side (requests sent: a script, a command or a pipeline is one): cblab's
   `RedisStore` (async, as the demo server uses it) and pybreaker's
   `CircuitRedisStorage` (sync, on a counting `redis.Redis`), failure_threshold 5:
   - healthy: 1,000 successful calls;
   - failing: 1,000 calls to a dependency that always fails;
   - recovering: the breaker is open and its timeout has passed; the dependency
     is healthy again: 1,000 calls.
   Background requests are included (cblab's staleness re-reads; pub/sub
   messages are pushed on a connection opened once, not requested).
2. Closed-state overhead per call, `await breaker.call(ok)`: RedisStore vs the
   in-memory store, alternated in blocks (target: at most 2x).
3. Live: three demo-server replicas behind the load generator (round robin,
   40 calls/s), backend failing every request: failing calls that reached the
   backend before every replica stopped, local breakers vs shared (Redis); then
   the backend recovers: trial calls (probes) admitted across the replicas.

Run: ``python -m benchmarks.bench_redis`` (or ``BENCH=redis make bench``).
Prints markdown tables and the load average; about a minute and a half.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import time
from typing import Any

os.environ.setdefault("FASTMCP_ENABLE_RICH_TRACEBACKS", "false")

CALLS = 1000
THRESHOLD = 5
LIVE = {"failure_threshold": 3, "timeout": 3.0, "half_open_max_calls": 2,
        "success_threshold": 2}
LIVE_RATE, OUTAGE_S = 40.0, 3.0


class Boom(Exception):
    pass


def counting_redis(url: str) -> Any:
    """A `redis.Redis` that counts the requests it sends (`.sent`)."""
    import redis

    class Counting(redis.Redis):
        sent = 0

        def execute_command(self, *args: Any, **options: Any) -> Any:
            Counting.sent += 1
            return super().execute_command(*args, **options)

        def pipeline(self, *args: Any, **kwargs: Any) -> Any:
            Counting.sent += 1  # one round trip however many commands it queues
            return super().pipeline(*args, **kwargs)

    return Counting.from_url(url)


# --- 1. round trips ------------------------------------------------------------------


async def cblab_round_trips(url: str) -> dict[str, float]:
    from cblab import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError
    from cblab.stores import RedisStore

    out: dict[str, float] = {}
    async with RedisStore(url, namespace="bench-cblab", op_timeout=1.0) as store:
        def config(phase: str) -> CircuitBreakerConfig:  # recovering: a short wait
            return CircuitBreakerConfig(failure_threshold=THRESHOLD, half_open_max_calls=1,
                                        success_threshold=1,
                                        timeout=0.2 if phase == "recovering" else 60.0)

        async def ok() -> None:
            return None

        async def fail() -> None:
            raise Boom

        async def run(phase: str, func: Any, name: str) -> None:
            breaker = CircuitBreaker(name, config(phase), store=store)
            await store.drain()
            if phase == "recovering":
                for _ in range(THRESHOLD):
                    try:
                        await breaker.call(fail)
                    except (Boom, CircuitOpenError):
                        pass
                await store.drain()
                await asyncio.sleep(0.25)
            before = store.round_trips
            started = time.monotonic()
            for _ in range(CALLS):
                try:
                    await breaker.call(func)
                except (Boom, CircuitOpenError):
                    pass
            await store.drain()
            out[phase] = store.round_trips - before
            out[phase + "_s"] = time.monotonic() - started

        await run("healthy", ok, "healthy")
        await run("failing", fail, "failing")
        await run("recovering", ok, "recovering")
    return out


def pybreaker_round_trips(url: str) -> dict[str, float]:
    import pybreaker

    out: dict[str, float] = {}
    conn = counting_redis(url)

    def ok() -> None:
        return None

    def fail() -> None:
        raise Boom

    for phase, func in (("healthy", ok), ("failing", fail), ("recovering", ok)):
        storage = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, conn,
                                                namespace=f"bench-{phase}")
        breaker = pybreaker.CircuitBreaker(
            fail_max=THRESHOLD, reset_timeout=0.2 if phase == "recovering" else 60.0,
            state_storage=storage)
        if phase == "recovering":
            for _ in range(THRESHOLD):
                try:
                    breaker.call(fail)
                except (Boom, pybreaker.CircuitBreakerError):
                    pass
            time.sleep(0.25)
        before = conn.sent
        for _ in range(CALLS):
            try:
                breaker.call(func)
            except (Boom, pybreaker.CircuitBreakerError):
                pass
        out[phase] = conn.sent - before
    conn.close()
    return out


# --- 2. closed-state overhead ------------------------------------------------------------


async def closed_overhead(url: str) -> tuple[float, float]:
    from cblab import CircuitBreaker, CircuitBreakerConfig
    from cblab.stores import RedisStore

    async def ok() -> None:
        return None

    config = CircuitBreakerConfig()
    async with RedisStore(url, namespace="bench-overhead", staleness=60, op_timeout=1.0) as store:
        shared = CircuitBreaker("overhead", config, store=store)
        local = CircuitBreaker("overhead", config)
        await store.drain()
        per: dict[str, list[float]] = {"redis": [], "memory": []}
        block = 20_000
        gc.disable()
        try:
            for _ in range(7):
                for label, breaker in (("memory", local), ("redis", shared)):
                    call = breaker.call
                    started = time.perf_counter()
                    for _ in range(block):
                        await call(ok)
                    per[label].append((time.perf_counter() - started) / block)
        finally:
            gc.enable()
        return statistics.median(per["redis"]), statistics.median(per["memory"])


# --- pub/sub propagation ---------------------------------------------------------------


async def propagation(url: str, rounds: int = 25) -> list[float]:
    """Seconds from a trip on replica A until replica B's breaker logs OPEN."""
    from cblab import CircuitBreaker, CircuitBreakerConfig, CircuitState
    from cblab.stores import RedisStore

    async def fail() -> None:
        raise Boom

    config = CircuitBreakerConfig(failure_threshold=1, timeout=60)
    async with RedisStore(url, namespace="bench-prop", op_timeout=1.0) as store_a, \
            RedisStore(url, namespace="bench-prop", op_timeout=1.0) as store_b:
        a = CircuitBreaker("p", config, store=store_a)
        b = CircuitBreaker("p", config, store=store_b)
        await store_a.drain()
        await store_b.drain()
        samples = []
        for _ in range(rounds):
            seen = asyncio.Event()

            def on_event(event: Any, seen: asyncio.Event = seen) -> None:
                if event.kind == "state" and event.to_state is CircuitState.OPEN:
                    seen.set()

            b.add_listener(on_event)
            started = time.perf_counter()
            try:
                await a.call(fail)
            except Boom:
                pass
            await asyncio.wait_for(seen.wait(), 5)
            samples.append(time.perf_counter() - started)
            b.remove_listener(on_event)
            a.reset()
            await store_a.drain()
            while b.state is not CircuitState.CLOSED:
                await asyncio.sleep(0.001)
        return samples


# --- 3. live replicas -------------------------------------------------------------------


async def live(shared: bool) -> dict[str, Any]:
    from cblab.stack.replicas import run_replicas

    summary, _ = await run_replicas(shared, config=LIVE, rate=LIVE_RATE, outage_s=OUTAGE_S)
    return summary


def main() -> int:
    from cblab.stores import RedisServer

    with RedisServer() as server:
        ours = asyncio.run(cblab_round_trips(server.url))
        theirs = pybreaker_round_trips(server.url)
        redis_s, memory_s = asyncio.run(closed_overhead(server.url))
        spread = sorted(asyncio.run(propagation(server.url)))
    local = asyncio.run(live(False))
    shared = asyncio.run(live(True))
    load = os.getloadavg()

    print(f"Redis round trips per {CALLS:,} calls (requests sent; "
          f"failure_threshold {THRESHOLD})\n")
    print("| phase | cblab RedisStore | pybreaker CircuitRedisStorage |")
    print("|---|---:|---:|")
    for phase in ("healthy", "failing", "recovering"):
        print(f"| {phase} | {ours[phase]:.0f} | {theirs[phase]:.0f} |")
    print(f"\nClosed-state cost per `await breaker.call(ok)` (median of 7 blocks of 20,000): "
          f"RedisStore {redis_s * 1e6:.2f} us, memory store {memory_s * 1e6:.2f} us, "
          f"ratio {redis_s / memory_s:.2f}x (target <= 2x)\n")
    print(f"Pub/sub propagation, a trip on one replica until another logs OPEN "
          f"({len(spread)} trips): median {statistics.median(spread) * 1000:.2f} ms, "
          f"max {spread[-1] * 1000:.2f} ms\n")
    print(f"Live, 3 replicas, round robin {LIVE_RATE:g} calls/s, failure_threshold "
          f"{LIVE['failure_threshold']}, half_open_max_calls {LIVE['half_open_max_calls']}:\n")
    print("| breakers | failing calls reaching the backend | until every replica stopped | "
          "probes (trial calls) | all closed after |")
    print("|---|---:|---:|---:|---|")
    for label, row in (("local (one per replica)", local), ("shared (Redis)", shared)):
        print(f"| {label} | {row['failing_calls']} | {row['until_all_stopped_s']:.2f} s | "
              f"{row['probes']} | {row['all_closed']} |")
    print(f"\n(target: shared <= threshold + replicas - 1 = {LIVE['failure_threshold'] + 2}, "
          f"local ~ replicas x threshold = {3 * LIVE['failure_threshold']}; shared probes == "
          f"half_open_max_calls = {LIVE['half_open_max_calls']})")
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
