"""BreakerTransport(retry=...): idempotent requests re-sent on 429/5xx and transport
errors, each attempt one breaker record, Retry-After honoured, POST sent once.
(The wrapped transport is httpx's MockTransport: a unit test of this one layer.)"""

from __future__ import annotations

import random

import httpx
import pytest

from cblab import CircuitOpenError, ManualClock
from cblab.integrations import BreakerTransport, RetryPolicy


def scripted(*answers: int | Exception) -> tuple[httpx.MockTransport, list[str]]:
    sent: list[str] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        answer = queue.pop(0) if queue else 200
        if isinstance(answer, Exception):
            raise answer
        headers = {"Retry-After": "3"} if answer in (429, 503) else {}
        return httpx.Response(answer, headers=headers, text=f"status {answer}")

    return httpx.MockTransport(handler), sent


def policy_on(clock: ManualClock, waits: list[float], attempts: int = 4) -> RetryPolicy:
    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    return RetryPolicy(attempts, backoff=0.1, clock=clock, sleep=sleep, rng=random.Random(2))


async def test_a_503_with_retry_after_is_retried_after_that_long() -> None:
    clock, waits = ManualClock(), []
    inner, sent = scripted(503, httpx.ConnectError("refused"), 200)
    transport = BreakerTransport(inner, config={"failure_threshold": 5}, clock=clock,
                                 retry=policy_on(clock, waits))
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get("http://dep.test/x")
    assert response.status_code == 200 and len(sent) == 3
    assert waits[0] == 3.0 and waits[1] <= 0.2  # Retry-After, then full jitter
    status = transport.status()["dep.test"]
    assert status["calls"] == 3 and status["failures"] == 2


async def test_the_last_failed_answer_is_returned_readable() -> None:
    clock, waits = ManualClock(), []
    inner, sent = scripted(500, 500, 500, 500)
    transport = BreakerTransport(inner, config={"failure_threshold": 10}, clock=clock,
                                 retry=policy_on(clock, waits, attempts=3))
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get("http://dep.test/x")
    assert response.status_code == 500 and response.text == "status 500" and len(sent) == 3
    assert transport.status()["dep.test"]["failures"] == 3


async def test_post_is_not_retried() -> None:
    clock, waits = ManualClock(), []
    inner, sent = scripted(503, 200)
    transport = BreakerTransport(inner, clock=clock, retry=policy_on(clock, waits))
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.post("http://dep.test/x", content=b"order")
    assert response.status_code == 503 and sent == ["POST"] and waits == []


async def test_retries_stop_when_the_breaker_opens_and_refusals_are_not_retried() -> None:
    clock, waits = ManualClock(), []
    inner, sent = scripted(*[httpx.ConnectError("refused")] * 10)
    transport = BreakerTransport(inner, config={"failure_threshold": 2, "timeout": 30},
                                 clock=clock, retry=policy_on(clock, waits, attempts=10))
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://dep.test/x")
        assert len(sent) == 2  # the second failure opened the breaker: no third attempt
        with pytest.raises(CircuitOpenError):
            await client.get("http://dep.test/x")
    assert len(sent) == 2 and transport.retry.stats()["stopped"]["refused"] == 1
