"""Issue 15, item 3: local saturation is not a dependency failure.

A burst of concurrent calls larger than the demo server's connection pool, against
a healthy but slow backend: calls wait for a local slot (bounded), then get the
whole deadline for the backend; those that get no slot in time are refused as
`local_overload`. The breaker never sees the queueing, so it stays CLOSED.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from cblab.integrations import Bulkhead

from ..server.live import Live


async def test_burst_larger_than_the_pool_leaves_the_breaker_closed(live_factory) -> None:
    # 3 slots (and connections) per dependency; each answer takes 0.25 s; deadline 0.6 s.
    # Without the bulkhead, the 4th wave would wait 0.75 s for a connection inside the
    # deadline and count as the backend failing: the breaker (threshold 3) would trip.
    live: Live = await live_factory(max_connections=3, deadline=0.6)
    await live.backend.set_profile("users", {"latency": {"kind": "constant", "ms": 250}})
    async with live.client() as client:
        results = await asyncio.gather(*(
            client.call_tool("github_user", {"username": "octocat"}, raise_on_error=False)
            for _ in range(15)))
    ok = [r for r in results if not r.is_error]
    shed = [r for r in results if r.is_error]
    assert ok and shed, "the burst should both succeed and overflow the slots"
    for result in shed:
        assert result.structured_content["error"] == "local_overload", result.content
        assert result.structured_content["breaker"] == "github"
        assert "not failing" in result.content[0].text
    status = live.lab.registry["github"].get_status()
    assert status["state"] == "closed"
    assert status["failures"] == 0 and status["successes"] == len(ok)
    assert live.backend.stats()["users"]["received"] == len(ok)
    rows = [r for r in live.rows() if r["kind"] == "call"]
    assert {(r["outcome"], r["error_type"]) for r in rows if r["error_type"]} == {
        ("dropped", "local_overload")}
    metrics_status = (await _status(live))["github"]["bulkhead"]
    assert metrics_status["limit"] == 3 and metrics_status["refused"] == len(shed)
    async with httpx.AsyncClient(base_url=live.url, trust_env=False) as http:
        text = (await http.get("/metrics")).text
    assert f'cblab_bulkhead_refused_total{{name="github"}} {len(shed)}' in text
    assert 'cblab_bulkhead_limit{name="github"} 3' in text
    assert 'cblab_bulkhead_in_flight{name="github"} 0' in text


async def _status(live: Live) -> dict:
    async with live.client() as client:
        return (await client.call_tool("circuit_status", {})).data


async def test_bulkhead_hands_slots_over_in_order_and_refuses_after_max_wait() -> None:
    bulkhead = Bulkhead("db", 1, max_wait=0.2)
    assert await bulkhead.acquire()
    order: list[int] = []

    async def wait(i: int) -> bool:
        got = await bulkhead.acquire()
        order.append(i)
        return got

    first, second = asyncio.create_task(wait(1)), asyncio.create_task(wait(2))
    await asyncio.sleep(0)
    assert bulkhead.waiting == 2
    bulkhead.release()  # goes to the oldest waiter
    assert await first and order == [1]
    assert not await second  # nobody released within max_wait
    assert bulkhead.refused == 1 and bulkhead.in_flight == 1
    bulkhead.release()
    assert bulkhead.in_flight == 0 and await bulkhead.acquire()


async def test_a_cancelled_waiter_passes_its_slot_on() -> None:
    bulkhead = Bulkhead("db", 1, max_wait=5)
    assert await bulkhead.acquire()
    doomed = asyncio.create_task(bulkhead.acquire())
    patient = asyncio.create_task(bulkhead.acquire())
    await asyncio.sleep(0)
    bulkhead.release()  # handed to `doomed`...
    doomed.cancel()     # ...which is cancelled before it runs
    assert await patient
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert bulkhead.in_flight == 1 and bulkhead.waiting == 0


@pytest.mark.parametrize(("limit", "wait", "message"), [
    (0, 1, "limit must be an integer >= 1"),
    (True, 1, "limit"),
    (2, -1, "max_wait must be a number of seconds >= 0"),
    (2, float("nan"), "max_wait"),
])
def test_bad_bulkheads_are_refused(limit, wait, message) -> None:
    with pytest.raises(ValueError, match=message):
        Bulkhead("db", limit, wait)


async def test_the_queueing_lesson_shows_the_mistake_and_the_fix() -> None:
    from cblab.integrations.bulkhead import queueing_lesson

    naive, bulkhead = await queueing_lesson()
    assert naive["deadline_exceeded"] >= 3 and naive["breaker"] == "open"
    assert bulkhead["breaker"] == "closed" and bulkhead["breaker failures"] == 0
    assert bulkhead["deadline_exceeded"] == 0 and bulkhead["ok"] >= 4
    assert bulkhead["ok"] + bulkhead["local_overload"] == 20
