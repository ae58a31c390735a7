"""The shells over admit/record: call, call_sync, decorator, protect(); exceptions."""

import asyncio

import pytest

from cblab import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError, CircuitState, Outcome

from .conftest import Boom, fail, ok


class NotFound(Exception):
    pass


async def test_excluded_exception_propagates_and_counts_as_neither(make_breaker):
    breaker = make_breaker(failure_threshold=1, excluded_exceptions=(NotFound,))

    async def missing():
        raise NotFound("no such user")

    for _ in range(5):
        with pytest.raises(NotFound):
            await breaker.call(missing)
    assert breaker.state is CircuitState.CLOSED
    assert (breaker.excluded, breaker.failures, breaker.successes) == (5, 0, 0)


async def test_excluded_by_predicate(make_breaker):
    breaker = make_breaker(failure_threshold=1, is_excluded=lambda e: "404" in str(e))

    async def status(code):
        raise Boom(f"HTTP {code}")

    with pytest.raises(Boom):
        await breaker.call(status, 404)
    assert breaker.state is CircuitState.CLOSED
    with pytest.raises(Boom):
        await breaker.call(status, 503)
    assert breaker.state is CircuitState.OPEN


async def test_cancelled_call_counts_as_neither_and_releases_trial(make_breaker, clock):
    breaker = make_breaker(
        failure_threshold=1, timeout=1, half_open_max_calls=1, success_threshold=1
    )
    with pytest.raises(Boom):
        await breaker.call(fail)
    clock.advance(1)
    started = asyncio.Event()

    async def forever():
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(breaker.call(forever))
    await started.wait()
    assert not breaker.admit().admitted  # the one trial slot is taken
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.cancelled == 1 and breaker.failures == 1
    assert breaker.state is CircuitState.HALF_OPEN
    assert await breaker.call(ok) == "ok"  # the slot came back
    assert breaker.state is CircuitState.CLOSED


async def test_keyboard_interrupt_is_not_a_failure(make_breaker):
    breaker = make_breaker(failure_threshold=1)

    async def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await breaker.call(interrupted)
    assert breaker.state is CircuitState.CLOSED and breaker.cancelled == 1


async def test_call_timeout_counts_as_failure():
    # Real time here: asyncio.timeout runs on the loop's clock. 10 ms, not a wait for a breaker.
    breaker = CircuitBreaker("dep", CircuitBreakerConfig(failure_threshold=1, call_timeout=0.01))

    async def hang():
        await asyncio.Event().wait()

    with pytest.raises(TimeoutError):
        await breaker.call(hang)
    assert breaker.state is CircuitState.OPEN
    record = [e for _, e in breaker.event_log.since(0).events if e.kind == "call"][-1]
    assert record.outcome is Outcome.FAILURE and record.error_type == "TimeoutError"


async def test_call_passes_arguments_and_returns_result(make_breaker):
    breaker = make_breaker()

    async def add(a, b, *, scale=1):
        return (a + b) * scale

    assert await breaker.call(add, 1, 2, scale=10) == 30


async def test_decorator_wraps_async_and_sync(make_breaker):
    breaker = make_breaker(failure_threshold=2)

    @breaker
    async def fetch(x):
        """Docstring kept."""
        return x * 2

    @breaker
    def compute(x):
        if x < 0:
            raise Boom("negative")
        return x + 1

    assert await fetch(4) == 8 and fetch.__doc__ == "Docstring kept."
    assert compute(1) == 2
    for _ in range(2):
        with pytest.raises(Boom):
            compute(-1)
    with pytest.raises(CircuitOpenError):
        compute(1)
    with pytest.raises(CircuitOpenError):
        await fetch(1)


async def test_protect_context_manager_sync_and_async(make_breaker):
    breaker = make_breaker(failure_threshold=2)
    async with breaker.protect():
        pass
    with breaker.protect():
        pass
    assert breaker.successes == 2
    for _ in range(2):
        with pytest.raises(Boom), breaker.protect():
            raise Boom
    with pytest.raises(CircuitOpenError):
        async with breaker.protect():
            raise AssertionError("the block must not run")


async def test_record_exception_classifies(make_breaker):
    breaker = make_breaker(excluded_exceptions=(KeyError,))
    assert breaker.record_exception(breaker.admit(), KeyError("x")) is Outcome.EXCLUDED
    assert breaker.record_exception(breaker.admit(), asyncio.CancelledError()) is Outcome.CANCELLED
    assert breaker.record_exception(breaker.admit(), ValueError()) is Outcome.FAILURE


async def test_no_lock_held_while_call_runs(make_breaker):
    """Two slow calls overlap: the breaker never serialises protected calls."""
    breaker = make_breaker()
    inside = 0
    peak = 0

    async def slow():
        nonlocal inside, peak
        inside += 1
        peak = max(peak, inside)
        await asyncio.sleep(0)  # yield so the other call can enter
        inside -= 1

    await asyncio.gather(*(breaker.call(slow) for _ in range(10)))
    assert peak == 10
