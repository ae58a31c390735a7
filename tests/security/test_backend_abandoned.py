"""Issue 15 item 5: a request whose client left frees its capacity slot at once."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from cblab.backend import Backend

from .probes import eventually


@pytest.mark.parametrize("overflow", ["reject", "queue"])
async def test_abandoned_slow_requests_free_their_slots(overflow: str) -> None:
    async with Backend(seed=1) as backend:
        await backend.set_profile("users", {
            "latency": {"kind": "constant", "ms": 60_000},
            "max_concurrency": 5,
            "overflow": overflow,
        })
        url = backend.urls["users"] + "/users/octocat"

        async def give_up() -> int:
            async with httpx.AsyncClient(timeout=0.3) as http:
                try:
                    return (await http.get(url)).status_code  # 503: over capacity
                except httpx.TimeoutException:
                    return 0  # gave up waiting

        statuses = await asyncio.gather(*(give_up() for _ in range(20)))
        assert statuses.count(0) == (5 if overflow == "reject" else 20)
        stats = await eventually(
            lambda: (s := backend.stats()["users"])["in_flight"] == 0 and s, timeout=5
        )
        assert stats["queued"] == 0
        assert stats["aborted"] >= 5
        await backend.patch_profile("users", {"latency": {"kind": "constant", "ms": 1}})
        async with httpx.AsyncClient(timeout=5) as http:
            answer = await http.get(url)
        assert answer.status_code == 200  # today: 503 "at capacity" for good


async def test_pipelined_requests_survive_a_slow_one() -> None:
    # watching for the client leaving must not eat the next request's bytes
    async with Backend(seed=1) as backend:
        await backend.set_profile("users", {"latency": {"kind": "constant", "ms": 200}})
        reader, writer = await asyncio.open_connection("127.0.0.1", backend.ports["users"])
        get = b"GET /users/octocat HTTP/1.1\r\nHost: t\r\n\r\n"
        writer.write(get + get.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        async with asyncio.timeout(5):
            raw = await reader.read(-1)
        writer.close()
        assert raw.count(b"HTTP/1.1 200 OK") == 2
