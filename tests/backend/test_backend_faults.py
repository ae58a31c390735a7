"""Fault injection over real loopback connections."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest

from cblab.backend import Backend, FaultProfile, plan_request, rng_for

FAST = {"kind": "constant", "ms": 0}


async def test_error_rate_one_follows_status_mix(
    backend: Backend, client: httpx.AsyncClient
) -> None:
    await backend.set_profile(
        "users", {"error_rate": 1, "status_mix": {"502": 1, "504": 1}, "latency": FAST}
    )
    responses = [await client.get(f"{backend.urls['users']}/users/octocat") for _ in range(40)]
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) == {502, 504}
    assert responses[0].json()["injected_fault"] is True
    stats = backend.stats()["users"]
    assert stats["received"] == 40
    assert stats["answered"]["error_5xx"] == {"502": statuses[502], "504": statuses[504]}
    assert stats["answered_total"] == 40


async def test_429_carries_retry_after(backend: Backend, client: httpx.AsyncClient) -> None:
    await backend.set_profile(
        "orders", {"error_rate": 1, "status_mix": {"429": 1}, "retry_after_s": 2.5, "latency": FAST}
    )
    response = await client.get(f"{backend.urls['orders']}/orders/1001")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"  # whole seconds, rounded up
    assert response.json()["retry_after_s"] == 2.5
    assert backend.stats()["orders"]["answered"]["status_429"] == 1


async def test_latency_is_at_least_configured(backend: Backend, client: httpx.AsyncClient) -> None:
    await backend.set_profile("users", {"latency": {"kind": "constant", "ms": 60}})
    start = time.perf_counter()
    response = await client.get(f"{backend.urls['users']}/users/octocat")
    assert response.status_code == 200
    assert time.perf_counter() - start >= 0.06


async def test_slow_fraction_one_uses_slow_ms(backend: Backend, client: httpx.AsyncClient) -> None:
    await backend.set_profile("users", {"slow_fraction": 1, "slow_ms": 80})
    start = time.perf_counter()
    await client.get(f"{backend.urls['users']}/users/octocat")
    assert time.perf_counter() - start >= 0.08


async def test_hang_until_client_gives_up(backend: Backend, poll, make_client) -> None:
    await backend.set_profile("users", {"mode": "hang"})
    async with make_client(timeout=0.3) as impatient:
        request = asyncio.create_task(impatient.get(f"{backend.urls['users']}/users/octocat"))
        await poll(lambda: backend.stats()["users"]["hung"] == 1)
        with pytest.raises(httpx.ReadTimeout):
            await request
    # the client closed its connection: the hung request is over
    await poll(lambda: backend.stats()["users"]["hung"] == 0)
    stats = backend.stats()["users"]
    assert stats["aborted"] == 1 and stats["in_flight"] == 0 and stats["received"] == 1
    # health is not subject to faults
    async with make_client(timeout=1) as http:
        assert (await http.get(f"{backend.urls['users']}/health")).status_code == 200


async def test_hung_requests_are_answered_when_mode_returns_up(
    backend: Backend, client: httpx.AsyncClient, poll
) -> None:
    await backend.set_profile("users", {"mode": "hang"})
    url = f"{backend.urls['users']}/users/octocat"
    requests = [asyncio.create_task(client.get(url)) for _ in range(3)]
    await poll(lambda: backend.stats()["users"]["hung"] == 3)
    await backend.set_profile("users", {"mode": "up"})
    responses = await asyncio.gather(*requests)
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert backend.stats()["users"]["hung"] == 0


async def test_stop_cleans_up_hung_requests(client: httpx.AsyncClient, poll) -> None:
    backend = Backend()
    await backend.start()
    await backend.set_profile("users", {"mode": "hang"})
    request = asyncio.create_task(client.get(f"{backend.urls['users']}/users/octocat"))
    await poll(lambda: backend.stats()["users"]["hung"] == 1)

    def server_tasks() -> list[asyncio.Task]:
        return [
            t
            for t in asyncio.all_tasks()
            if t.get_coro().__qualname__.startswith(("HttpServer.", "FaultyService."))
        ]

    assert server_tasks()
    await asyncio.wait_for(backend.stop(), timeout=2)
    with pytest.raises(httpx.TransportError):
        await request
    assert server_tasks() == []


async def test_down_refuses_connections_and_comes_back_on_the_same_port(
    backend: Backend, client: httpx.AsyncClient
) -> None:
    url = f"{backend.urls['users']}/users/octocat"
    port = backend.ports["users"]
    assert (await client.get(url)).status_code == 200
    await backend.set_profile("users", {"mode": "down"})
    with pytest.raises(httpx.ConnectError):
        await client.get(url)
    # the other service and the control API are unaffected
    assert (await client.get(f"{backend.urls['orders']}/orders/1001")).status_code == 200
    faults = await client.get(f"{backend.urls['control']}/faults")
    assert faults.json()["users"]["mode"] == "down"
    await backend.set_profile("users", {"mode": "up"})
    assert backend.ports["users"] == port
    assert (await client.get(url)).status_code == 200


async def test_down_aborts_requests_in_flight(
    backend: Backend, client: httpx.AsyncClient, poll
) -> None:
    await backend.set_profile("users", {"latency": {"kind": "constant", "ms": 5000}})
    request = asyncio.create_task(client.get(f"{backend.urls['users']}/users/octocat"))
    await poll(lambda: backend.stats()["users"]["in_flight"] == 1)
    await backend.set_profile("users", {"mode": "down"})
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        await request
    stats = backend.stats()["users"]
    assert stats["aborted"] == 1 and stats["in_flight"] == 0


async def test_reset_sends_partial_response_then_rst(
    backend: Backend, client: httpx.AsyncClient
) -> None:
    await backend.set_profile("users", {"reset_rate": 1, "latency": FAST})
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        await client.get(f"{backend.urls['users']}/users/octocat")
    assert backend.stats()["users"]["answered"]["reset"] == 1


async def test_reset_writes_the_status_line_and_part_of_the_body(backend: Backend) -> None:
    await backend.set_profile("users", {"reset_rate": 1, "latency": FAST})
    reader, writer = await asyncio.open_connection("127.0.0.1", backend.ports["users"])
    writer.write(b"GET /users/octocat HTTP/1.1\r\nHost: x\r\n\r\n")
    received = b""
    try:
        while chunk := await reader.read(65536):
            received += chunk
    except ConnectionResetError:
        pass
    writer.close()
    if received:  # the kernel may drop unread data on RST; if any arrived, it is partial
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        assert 0 < len(body) < length


async def test_capacity_reject(backend: Backend, client: httpx.AsyncClient, poll) -> None:
    await backend.set_profile(
        "orders",
        {"max_concurrency": 2, "overflow": "reject", "latency": {"kind": "constant", "ms": 5000}},
    )
    url = f"{backend.urls['orders']}/orders/1001"
    slow = [asyncio.create_task(client.get(url)) for _ in range(2)]
    await poll(lambda: backend.stats()["orders"]["in_flight"] == 2)
    rejected = [await client.get(url) for _ in range(3)]
    assert [r.status_code for r in rejected] == [503, 503, 503]
    assert rejected[0].json()["message"] == "Service at capacity"
    stats = backend.stats()["orders"]
    assert stats["answered"]["rejected_capacity"] == 3
    assert stats["answered"]["error_5xx"] == {}
    # lifting the limit lets new requests in while the slow ones still hold their slots
    await backend.patch_profile("orders", {"max_concurrency": None, "latency": FAST})
    assert (await client.get(url)).status_code == 200
    for task in slow:
        task.cancel()


async def test_capacity_queue_serves_in_turn(
    backend: Backend, client: httpx.AsyncClient, poll
) -> None:
    await backend.set_profile("orders", {"max_concurrency": 1, "overflow": "queue", "mode": "hang"})
    url = f"{backend.urls['orders']}/orders/1001"
    requests = [asyncio.create_task(client.get(url)) for _ in range(4)]
    await poll(lambda: backend.stats()["orders"]["queued"] == 3)
    assert backend.stats()["orders"]["hung"] == 1  # the hung request holds the only slot
    await backend.patch_profile("orders", {"mode": "up", "latency": FAST})
    responses = await asyncio.gather(*requests)
    assert [r.status_code for r in responses] == [200] * 4
    stats = backend.stats()["orders"]
    assert stats["queued"] == 0 and stats["answered"]["ok"] == 4
    assert stats["answered"]["rejected_capacity"] == 0


async def test_stats_counts_are_exact(backend: Backend, client: httpx.AsyncClient) -> None:
    await backend.set_profile(
        "users", {"error_rate": 0.5, "status_mix": {"500": 1, "429": 1}, "latency": FAST}
    )
    url = backend.urls["users"]
    statuses = Counter()
    for i in range(60):
        path = "/users/octocat" if i % 3 else "/users/ghost-user"
        statuses[(await client.get(url + path)).status_code] += 1
    stats = backend.stats()["users"]
    assert stats["received"] == 60
    answered = stats["answered"]
    assert answered["ok"] == statuses[200]
    assert answered["not_found"] == statuses[404]
    assert answered["status_429"] == statuses[429]
    assert answered["error_5xx"] == ({"500": statuses[500]} if statuses[500] else {})
    assert stats["answered_total"] + stats["aborted"] + stats["in_flight"] == 60
    backend.reset_stats()
    reset = backend.stats()["users"]
    assert reset["received"] == 0 and reset["answered_total"] == 0
    assert reset["since_unix"] >= stats["since_unix"]


async def test_same_seed_gives_the_planned_sequence_live(client: httpx.AsyncClient) -> None:
    profile = FaultProfile(error_rate=0.4, status_mix={"500": 1, "503": 1}, latency=FAST)
    expected_rng = rng_for(42, "users")
    expected = [plan_request(profile, expected_rng).status for _ in range(30)]
    runs = []
    for _ in range(2):
        async with Backend(seed=42) as backend:
            await backend.set_profile("users", profile)
            url = f"{backend.urls['users']}/users/octocat"
            runs.append([(await client.get(url)).status_code for _ in range(30)])
    assert runs[0] == runs[1] == expected
    assert {500, 503, 200} <= set(expected)
