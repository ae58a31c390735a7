"""Local saturation is not the dependency failing (issue 20, items 2 and the bulkhead flake).

A deadline covers the dependency's answer and this process reading it. When the
event loop cannot run (blocked, or saturated by hundreds of sessions), a healthy
answer waits in a socket buffer: the call must not count as a failure. The loop
is blocked here with `time.sleep` on purpose: that is exactly "the process could
not run the call", made deterministic.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from cblab.integrations.bulkhead import Bulkhead
from cblab.integrations.looplag import LoopDeadline, LoopLag

from .live import Live, eventually


def block_loop(seconds: float) -> None:
    time.sleep(seconds)  # the point: this process cannot run anything meanwhile


async def saturate(times: int, seconds: float) -> None:
    """Keep the loop behind: block it, let the lag ticker run once, block again."""
    for _ in range(times):
        block_loop(seconds)
        for _ in range(3):  # the ticker's late wake-up runs, and it sleeps again
            await asyncio.sleep(0)


async def test_loop_lag_reads_a_blocked_loop() -> None:
    lag = LoopLag()
    mark = lag.stall()  # starts the ticker
    await asyncio.sleep(0.05)
    assert lag.lag() < 0.05  # an idle loop is not behind
    block_loop(0.3)
    assert lag.stalled_since(mark) >= 0.25  # read before the ticker ran: already behind
    await asyncio.sleep(0.01)
    assert lag.peak >= 0.25 and lag.stalled_since(mark) >= 0.25
    assert 0 < lag.lag() < 0.25  # one stall moves the sustained lag only a little
    await saturate(3, 0.3)
    assert lag.lag() >= 0.15  # a loop that stays behind moves it all the way


async def test_an_answer_that_waited_for_the_loop_is_a_success() -> None:
    # The answer arrives at 0.15 s, inside the 0.2 s deadline, but the loop is blocked
    # until 0.3 s: both timers are due when it runs again.
    async def call(scope_factory) -> str:
        answer = asyncio.get_running_loop().create_future()
        async with scope_factory():
            asyncio.get_running_loop().call_later(0.15, answer.set_result, "answer")
            block_loop(0.3)
            return await answer

    with pytest.raises(TimeoutError):  # a plain timeout blames the dependency
        await call(lambda: asyncio.timeout(0.2))
    assert await call(lambda: LoopDeadline(0.2, LoopLag())) == "answer"


async def test_a_hung_dependency_still_misses_its_deadline() -> None:
    scope = LoopDeadline(0.5, LoopLag())
    with pytest.raises(TimeoutError):
        async with scope:
            await asyncio.get_running_loop().create_future()  # never answers
    assert scope.expired() and not scope.local
    assert scope.extended < 0.5


async def test_a_loop_still_behind_when_the_extension_runs_out_is_local() -> None:
    scope = LoopDeadline(0.1, LoopLag(), max_extension=1.0)
    with pytest.raises(TimeoutError):
        async with scope:
            block_loop(0.5)  # 0.5 s behind; the extension gives back at most 0.1 s
            await asyncio.get_running_loop().create_future()
    assert scope.expired() and scope.local
    assert scope.extended == pytest.approx(0.1)


async def test_the_bulkhead_sheds_new_calls_while_the_loop_lags() -> None:
    bulkhead = Bulkhead("db", 10, max_wait=1.0, max_lag=0.1)
    assert await bulkhead.acquire()
    bulkhead.release()
    await saturate(3, 0.3)
    assert not await bulkhead.acquire()  # refused at once: no slot was even asked for
    assert (bulkhead.shed, bulkhead.refused, bulkhead.in_flight) == (1, 1, 0)
    refusal = bulkhead.refusal("db", "closed")
    assert refusal.error == "local_overload" and "event loop" in refusal.message
    await eventually(lambda: bulkhead.loop_lag_seconds < 0.1, what="the loop to catch up")
    assert await bulkhead.acquire()


async def test_the_bulkhead_verdict_is_counted_not_raced() -> None:
    # 1 slot, 1 waiter allowed: the next caller is refused at once, whatever the
    # machine's speed (the flaky load test raced a waiter's wait against a holder's deadline)
    bulkhead = Bulkhead("db", 1, max_wait=30.0, max_waiting=1)
    assert await bulkhead.acquire()
    waiter = asyncio.create_task(bulkhead.acquire())
    await asyncio.sleep(0)
    started = time.monotonic()
    assert not await bulkhead.acquire()
    assert time.monotonic() - started < 1.0 and bulkhead.queue_full == 1
    bulkhead.release()
    assert await waiter
    bulkhead.release()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_waiting": -1}, "max_waiting"),
    ({"max_lag": 0}, "max_lag"),
    ({"stall_share": 2}, "stall_share"),
])
def test_bad_bulkhead_options_are_refused(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        Bulkhead("db", 2, 1.0, **kwargs)


async def test_a_busy_server_does_not_blame_a_healthy_dependency(live_factory) -> None:
    # A healthy backend answers in 0.3 s, inside the 0.5 s deadline; the server's loop
    # (this test's loop: server, backend and client share it) is blocked for 0.7 s while
    # four calls are in flight. Before: four deadline failures and a trip (threshold 3).
    live: Live = await live_factory(deadline=0.5)
    await live.backend.set_profile("users", {"latency": {"kind": "constant", "ms": 300}})
    async with live.client() as client:
        await client.call_tool("github_user", {"username": "octocat"})  # warm up
        calls = [asyncio.create_task(client.call_tool(
            "github_user", {"username": "octocat"}, raise_on_error=False)) for _ in range(4)]
        await eventually(lambda: live.backend.stats()["users"]["in_flight"] == 4,
                         what="four calls at the backend", every=0.005)
        block_loop(0.7)
        results = await asyncio.gather(*calls)
    assert not any(r.is_error for r in results), [r.content for r in results]
    assert live.state() == "closed"
    rows = [r for r in live.rows() if r["kind"] == "call"]
    assert [r["outcome"] for r in rows] == ["success"] * 5
    assert live.lab.registry["github"].failures == 0
