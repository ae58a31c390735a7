"""One replica in its own process, for the cross-process race tests.

    python -m tests.redis.replica '{"url": ..., "namespace": ..., "task": ..., ...}'

Prints one JSON line with what this replica saw. Tasks:
- `trials`: K asyncio tasks keep calling a slow function through one breaker
  until `until` (wall clock); report how many calls were admitted.
- `failures`: K tasks record `failures` failed calls in total; report them.
- `hang_trial`: take one trial call and hang in it (the test kills us).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from cblab import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError
from cblab.stores import RedisStore


class Boom(Exception):
    pass


async def main(spec: dict) -> dict:
    store = await RedisStore(spec["url"], namespace=spec["namespace"], op_timeout=1.0).connect()
    breaker = CircuitBreaker(spec["name"], CircuitBreakerConfig(**spec["config"]), store=store)
    await store.drain()
    # start together: say we are ready, wait for the test's "go" (a Redis key)
    client = store._aclient
    await client.incr(f"{spec['namespace']}:ready")
    while not await client.exists(f"{spec['namespace']}:go"):
        await asyncio.sleep(0.005)
    until = time.time() + spec.get("duration", 0.0)
    task = spec["task"]
    admitted = 0

    async def slow() -> None:
        await asyncio.sleep(spec.get("hold", 1.0))

    async def fail() -> None:
        raise Boom

    if task == "trials":
        async def worker() -> None:
            nonlocal admitted
            while time.time() < until:
                try:
                    await breaker.call(slow)
                    admitted += 1
                except CircuitOpenError:
                    await asyncio.sleep(0.002)

        await asyncio.gather(*(worker() for _ in range(spec["tasks"])))
    elif task == "failures":
        per_task = spec["failures"] // spec["tasks"]

        async def failer() -> None:
            nonlocal admitted
            for _ in range(per_task):
                try:
                    await breaker.call(fail)
                except Boom:
                    admitted += 1
                except CircuitOpenError:
                    pass
                await asyncio.sleep(0)

        await asyncio.gather(*(failer() for _ in range(spec["tasks"])))
    elif task == "hang_trial":
        while True:
            try:
                async with breaker.protect():
                    print(json.dumps({"trial": True}), flush=True)
                    await asyncio.sleep(3600)  # the test kills us here
            except CircuitOpenError:
                await asyncio.sleep(0.005)
    await store.drain()
    result = {"admitted": admitted, "round_trips": store.round_trips,
              "available": store.available}
    await store.close()
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))), flush=True)
