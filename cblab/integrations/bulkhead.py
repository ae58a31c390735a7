"""A bulkhead: at most `limit` calls to one dependency in flight, with a bounded wait,
and no new call admitted while this process's event loop is falling behind.

Why it sits in front of the breaker: a call that waits for a *local* resource
(a slot, a pooled connection, the event loop itself) is not the dependency
failing. If the deadline that feeds the breaker also covers that wait, a burst
larger than the pool, or than the loop can serve, makes healthy calls miss their
deadline and trips the breaker on a healthy dependency. So:

==============================================  =====================  ==============
what happens to a call                          the breaker records    the caller sees
==============================================  =====================  ==============
a slot is free (or frees within `max_wait`)     the call's outcome     its answer
`max_waiting` callers already wait for a slot   nothing                local_overload
no slot within `max_wait`                       nothing                local_overload
the event loop lags more than `max_lag`         nothing                local_overload
the deadline passed while the loop was behind:  its outcome            its answer
extended by that time, the answer came
the extended deadline passed, the loop was      excluded (neither      local_overload
still behind by `stall_share` of the deadline   outcome), error type
(`missed_locally`)                              ``local_overload``
the extended deadline passed, the loop kept up  failure                deadline error
==============================================  =====================  ==============

The first three are decided before the breaker admits the call and before the
dependency's deadline starts. The verdicts depend on counts and on the loop's
measured lag (`looplag.LoopLag`), not on how fast the machine runs a race
between a waiter's wait and a holder's deadline: with `max_waiting` callers
queued, the next is refused at once.

Standard library only.
"""

from __future__ import annotations

import asyncio
import math

from cblab.codes import LOCAL_OVERLOAD, Refusal

from .looplag import LoopDeadline, LoopLag

__all__ = ["Bulkhead"]


def _seconds(name: str, where: str, value: object, *, zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
        math.isfinite(value) and (value >= 0 if zero else value > 0)
    ):
        need = ">= 0" if zero else "> 0"
        raise ValueError(f"bulkhead {name!r}: {where} must be a number of seconds {need}, "
                         f"got {value!r}")
    return float(value)


class Bulkhead:
    """`limit` concurrent slots; `await acquire()` waits at most `max_wait` seconds.

    `max_waiting` (None: no limit) callers may wait for a slot; more are refused
    at once. `max_lag` (seconds, None: off) refuses new calls while the event loop
    runs that far behind. `deadline(seconds)` is a call's deadline extended by the
    loop's lag; `stall_share`: one that ran out while the loop was still owed at
    least this share of it was missed locally.
    """

    __slots__ = ("name", "limit", "max_wait", "max_waiting", "max_lag", "stall_share",
                 "_free", "_waiters", "in_flight", "refused", "peak_waiting", "shed",
                 "queue_full", "local_misses", "_lag", "last_refusal")

    def __init__(self, name: str, limit: int, max_wait: float, *,
                 max_waiting: int | None = None, max_lag: float | None = None,
                 stall_share: float = 0.1) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"bulkhead {name!r}: limit must be an integer >= 1, got {limit!r}")
        self.max_wait = _seconds(name, "max_wait", max_wait, zero=True)
        if max_waiting is not None and (
            isinstance(max_waiting, bool) or not isinstance(max_waiting, int) or max_waiting < 0
        ):
            raise ValueError(
                f"bulkhead {name!r}: max_waiting must be an integer >= 0, got {max_waiting!r}")
        self.max_lag = None if max_lag is None else _seconds(name, "max_lag", max_lag, zero=False)
        if isinstance(stall_share, bool) or not isinstance(stall_share, int | float) or not (
            0 < stall_share <= 1
        ):
            raise ValueError(
                f"bulkhead {name!r}: stall_share must be in (0, 1], got {stall_share!r}")
        self.stall_share = float(stall_share)
        self.name = name
        self.limit = limit
        self.max_waiting = max_waiting
        self._free = limit
        self._waiters: list[asyncio.Future[None]] = []  # FIFO of callers waiting for a slot
        self._lag: LoopLag | None = None
        self.in_flight = 0
        self.refused = 0  # every refusal, whatever the cause
        self.queue_full = 0  # of which: max_waiting callers were already waiting
        self.shed = 0  # of which: the event loop lagged more than max_lag
        self.local_misses = 0  # deadlines missed while the loop was behind
        self.peak_waiting = 0
        self.last_refusal = ""  # why the last refused call was refused (for its message)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def loop_lag_seconds(self) -> float:
        """The event loop's lag now, seconds (0 before the first call)."""
        return self._lag.lag() if self._lag is not None else 0.0

    def _loop_lag(self) -> LoopLag:
        if self._lag is None:
            self._lag = LoopLag.of_running_loop()
        return self._lag

    def _refuse(self, why: str) -> bool:
        self.refused += 1
        self.last_refusal = why
        return False

    async def acquire(self) -> bool:
        """Take a slot: True at once if one is free, else after waiting; False if refused
        (`last_refusal` says why)."""
        if self.max_lag is not None:
            lag = self._loop_lag().lag()
            if lag > self.max_lag:
                self.shed += 1
                return self._refuse(f"its event loop runs {lag:.2f} s behind "
                                    f"(limit {self.max_lag:g} s)")
        if self._free > 0 and not self._waiters:
            self._free -= 1
            self.in_flight += 1
            return True
        if self.max_wait <= 0 or (
            self.max_waiting is not None and len(self._waiters) >= self.max_waiting
        ):
            if self.max_wait > 0:
                self.queue_full += 1
            return self._refuse(f"all {self.limit} of its slots for the {self.name} "
                                f"dependency are in use and {len(self._waiters)} calls wait")
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
            return self._refuse(f"all {self.limit} of its slots for the {self.name} "
                                f"dependency stayed in use for {self.max_wait:g} s")
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

    # --- deadlines missed locally ------------------------------------------------------

    def deadline(self, seconds: float) -> LoopDeadline:
        """A whole-call deadline for a call holding a slot, extended by the time the
        event loop was behind during it (`looplag.LoopDeadline`); after it expired,
        pass it to `missed_locally`."""
        return LoopDeadline(seconds, self._loop_lag(), stall_share=self.stall_share)

    def missed_locally(self, deadline: LoopDeadline | asyncio.Timeout) -> bool:
        """True if `deadline` expired while the loop was still behind: this process,
        not the dependency, was too slow. Counted in `local_misses`."""
        if not isinstance(deadline, LoopDeadline) or not deadline.local:
            return False
        self.local_misses += 1
        self.last_refusal = (f"its event loop was still behind when the call's "
                             f"{deadline.seconds:g} s deadline (extended by "
                             f"{deadline.extended:.2f} s) ran out")
        return True

    def refusal(self, breaker: str, state: str) -> Refusal:
        """The `local_overload` refusal for the call just refused (or missed locally)."""
        why = self.last_refusal or f"all {self.limit} of its slots are in use"
        retry = self.max_lag if self.max_lag is not None else self.max_wait
        text = (f"This server is busy: {why}. The {breaker} dependency itself is not "
                "failing; retry shortly.")
        return Refusal(LOCAL_OVERLOAD, breaker, state, round(max(retry, 0.05), 3), text)

    def status(self) -> dict[str, int | float]:
        return {"limit": self.limit, "max_wait_s": self.max_wait, "in_flight": self.in_flight,
                "waiting": self.waiting, "refused": self.refused, "shed": self.shed,
                "queue_full": self.queue_full, "local_misses": self.local_misses,
                "loop_lag_s": round(self.loop_lag_seconds, 4)}


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
