"""Many callers at once: asyncio tasks and threads."""

import asyncio
import threading
import time

import pytest

from cblab import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError, CircuitState, ManualClock

from .conftest import Boom


async def open_then_half_open(max_calls, success_threshold=1):
    clock = ManualClock()
    breaker = CircuitBreaker(
        "dep",
        CircuitBreakerConfig(
            failure_threshold=1,
            timeout=10,
            half_open_max_calls=max_calls,
            success_threshold=success_threshold,
        ),
        clock=clock,
    )

    async def fail():
        raise Boom

    with pytest.raises(Boom):
        await breaker.call(fail)
    clock.advance(10)
    return breaker, clock


@pytest.mark.parametrize("max_calls", [1, 3, 7])
async def test_thousands_of_tasks_in_half_open_admit_exactly_the_permitted_number(max_calls):
    breaker, _ = await open_then_half_open(max_calls, success_threshold=max_calls)
    gate = asyncio.Event()
    ran = 0

    async def trial():
        nonlocal ran
        ran += 1
        await gate.wait()  # hold every admitted trial open until all tasks have tried
        return "ok"

    tasks = [asyncio.create_task(breaker.call(trial)) for _ in range(5_000)]
    await asyncio.sleep(0)  # let every task reach admission (no breaker timing involved)
    while sum(t.done() for t in tasks) < 5_000 - max_calls:
        await asyncio.sleep(0)
    assert ran == max_calls
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    admitted = [r for r in results if r == "ok"]
    refused = [r for r in results if isinstance(r, CircuitOpenError)]
    assert len(admitted) == max_calls and len(refused) == 5_000 - max_calls
    assert breaker.state is CircuitState.CLOSED
    assert breaker.rejected == 5_000 - max_calls


async def test_cancelling_many_trials_never_leaks_slots():
    breaker, _ = await open_then_half_open(max_calls=3, success_threshold=3)
    for _ in range(50):
        started = asyncio.Event()

        async def hang(started=started):
            started.set()
            await asyncio.Event().wait()

        tasks = [asyncio.create_task(breaker.call(hang)) for _ in range(3)]
        await started.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert breaker.cancelled == 150
    assert breaker.get_status()["half_open_in_flight"] == 0
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.admit().admitted


def test_threads_on_the_sync_path_keep_exact_counts():
    breaker = CircuitBreaker("dep", CircuitBreakerConfig(failure_threshold=10**6))
    threads, per_thread = 8, 2_000

    def work(i):
        if i % 3 == 0:
            raise Boom
        return i

    def worker():
        for i in range(per_thread):
            try:
                breaker.call_sync(work, i)
            except Boom:
                pass

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    failures = threads * len(range(0, per_thread, 3))
    assert breaker.failures == failures
    assert breaker.successes == threads * per_thread - failures
    assert breaker.calls == threads * per_thread
    seqs = [seq for seq, _ in breaker.event_log.since(0).events]
    assert seqs == sorted(seqs)


def test_threads_in_half_open_admit_exactly_the_permitted_number():
    clock = ManualClock()
    breaker = CircuitBreaker(
        "dep",
        CircuitBreakerConfig(
            failure_threshold=1, timeout=1, half_open_max_calls=4, success_threshold=4
        ),
        clock=clock,
    )
    breaker.record(breaker.admit(), "failure")
    clock.advance(1)
    n_threads = 32
    barrier = threading.Barrier(n_threads)
    release = threading.Event()
    outcomes = []

    def trial():
        release.wait(timeout=30)  # admitted trials stay in flight until every thread tried
        return "ok"

    def worker():
        barrier.wait(timeout=30)
        try:
            outcomes.append(breaker.call_sync(trial))
        except CircuitOpenError:
            outcomes.append("refused")

    pool = [threading.Thread(target=worker) for _ in range(n_threads)]
    for t in pool:
        t.start()
    deadline = time.monotonic() + 30
    while outcomes.count("refused") < n_threads - 4 and time.monotonic() < deadline:
        time.sleep(0.001)  # polling the threads, not waiting for the breaker
    release.set()
    for t in pool:
        t.join(timeout=30)
    assert outcomes.count("ok") == 4 and outcomes.count("refused") == n_threads - 4
    assert breaker.state is CircuitState.CLOSED
