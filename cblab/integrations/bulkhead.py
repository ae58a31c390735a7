"""A bulkhead: at most `limit` calls to one dependency in flight, with a bounded wait.

Why it sits in front of the breaker: a call that waits for a *local* resource
(a slot, a pooled connection) is not the dependency failing. If the deadline
that feeds the breaker also covers that wait, a burst larger than the pool makes
healthy calls miss their deadline and trips the breaker on a healthy dependency.
So the order is: wait for a slot (at most `max_wait`; refused as
``local_overload``, never counted against the breaker), then admit through the
breaker and start the dependency's own deadline.

Standard library only.
"""

from __future__ import annotations

import asyncio
import math

__all__ = ["Bulkhead"]


class Bulkhead:
    """`limit` concurrent slots; `await acquire()` waits at most `max_wait` seconds."""

    __slots__ = ("name", "limit", "max_wait", "_free", "_waiters", "in_flight", "refused",
                 "peak_waiting")

    def __init__(self, name: str, limit: int, max_wait: float) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"bulkhead {name!r}: limit must be an integer >= 1, got {limit!r}")
        if isinstance(max_wait, bool) or not isinstance(max_wait, int | float) or not (
            math.isfinite(max_wait) and max_wait >= 0
        ):
            raise ValueError(
                f"bulkhead {name!r}: max_wait must be a number of seconds >= 0, got {max_wait!r}")
        self.name = name
        self.limit = limit
        self.max_wait = float(max_wait)
        self._free = limit
        self._waiters: list[asyncio.Future[None]] = []  # FIFO of callers waiting for a slot
        self.in_flight = 0
        self.refused = 0
        self.peak_waiting = 0

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> bool:
        """Take a slot: True at once if one is free, else after waiting; False if none came."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            self.in_flight += 1
            return True
        if self.max_wait <= 0:
            self.refused += 1
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.peak_waiting = max(self.peak_waiting, len(self._waiters))
        try:
            async with asyncio.timeout(self.max_wait):
                await waiter
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():  # handed a slot as time ran out
                self.in_flight += 1
                return True
            self.refused += 1
            return False
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release_slot()  # cancelled after being handed a slot: pass it on
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        self.in_flight += 1
        return True

    def release(self) -> None:
        """Give back a slot taken by a successful `acquire`."""
        self.in_flight -= 1
        self._release_slot()

    def _release_slot(self) -> None:
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the oldest waiter
                return
        self._free += 1

    def status(self) -> dict[str, int | float]:
        return {"limit": self.limit, "max_wait_s": self.max_wait, "in_flight": self.in_flight,
                "waiting": self.waiting, "refused": self.refused}


async def queueing_lesson(
    *, calls: int = 20, pool: int = 4, service_s: float = 0.1, deadline: float = 0.25,
    failure_threshold: int = 3,
) -> list[dict[str, object]]:
    """The mistake, live: a burst of `calls` to a healthy dependency that answers in
    `service_s`, through `pool` connections, each call with a `deadline`, behind a
    breaker. Two ways, one row each:

    - the deadline covers the wait for a connection: queued calls miss it, count as
      the dependency failing, and the breaker opens on a healthy dependency;
    - a bulkhead in front: wait (at most `deadline`) for a slot, refused as local
      overload if none comes, and only then the breaker and the dependency's deadline.
    """
    from cblab import CircuitBreaker, CircuitBreakerConfig, Outcome

    async def dependency() -> None:
        await asyncio.sleep(service_s)  # healthy: always answers, just not instantly

    async def burst(call: object) -> dict[str, int]:
        outcomes = await asyncio.gather(*(call() for _ in range(calls)))  # type: ignore[operator]
        return {name: outcomes.count(name) for name in
                ("ok", "deadline_exceeded", "local_overload", "rejected")}

    config = CircuitBreakerConfig(failure_threshold=failure_threshold, timeout=30)
    rows: list[dict[str, object]] = []

    naive = CircuitBreaker("naive", config)
    connections = asyncio.Semaphore(pool)

    async def deadline_covers_the_queue() -> str:
        permit = naive.admit()
        if not permit.admitted:
            return "rejected"
        try:
            async with asyncio.timeout(deadline):
                async with connections:
                    await dependency()
        except TimeoutError:
            naive.record(permit, Outcome.FAILURE, error_type="deadline_exceeded")
            return "deadline_exceeded"
        naive.record(permit, Outcome.SUCCESS)
        return "ok"

    counts = await burst(deadline_covers_the_queue)
    rows.append({"design": "deadline covers the wait for a connection", **counts,
                 "breaker failures": naive.failures, "breaker": naive.state.value})

    guarded = CircuitBreaker("bulkhead", config)
    slots = Bulkhead("dependency", pool, max_wait=deadline)

    async def bulkhead_first() -> str:
        if not await slots.acquire():
            return "local_overload"  # the server is busy; the dependency is not blamed
        try:
            permit = guarded.admit()
            if not permit.admitted:
                return "rejected"
            try:
                async with asyncio.timeout(deadline):
                    await dependency()
            except TimeoutError:
                guarded.record(permit, Outcome.FAILURE, error_type="deadline_exceeded")
                return "deadline_exceeded"
            guarded.record(permit, Outcome.SUCCESS)
            return "ok"
        finally:
            slots.release()

    counts = await burst(bulkhead_first)
    rows.append({"design": "bulkhead first, then the breaker and the deadline", **counts,
                 "breaker failures": guarded.failures, "breaker": guarded.state.value})
    return rows
