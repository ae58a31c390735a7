"""BreakerTransport against the fault-injecting backend on loopback: down, hang, 5xx, 429."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from cblab import CircuitOpenError, ConfigError
from cblab.backend import Backend
from cblab.integrations import BreakerTransport

FAST = {"failure_threshold": 2, "timeout": 30}


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    async with Backend(seed=1) as started:
        yield started


def client(transport: BreakerTransport, **kwargs) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport, trust_env=False, **kwargs)


def host_of(url: str) -> str:
    return url.removeprefix("http://").rstrip("/")


@pytest.mark.parametrize(("profile", "error"), [
    ({"mode": "down"}, httpx.ConnectError),
    ({"error_rate": 1.0, "status_mix": {"503": 1}}, None),
    ({"error_rate": 1.0, "status_mix": {"429": 1}}, None),
    ({"reset_rate": 1.0}, httpx.TransportError),
])
async def test_failures_trip_and_the_open_breaker_sends_nothing(backend, profile, error) -> None:
    users = backend.urls["users"]
    transport = BreakerTransport(config=FAST)
    async with client(transport) as http:
        assert (await http.get(f"{users}/users/octocat")).status_code == 200
        await backend.set_profile("users", profile)
        for _ in range(2):
            if error is None:
                assert (await http.get(f"{users}/users/octocat")).status_code in (429, 503)
            else:
                with pytest.raises(error):
                    await http.get(f"{users}/users/octocat")
        received = backend.stats()["users"]["received"]
        with pytest.raises(CircuitOpenError) as refused:
            await http.get(f"{users}/users/octocat")
        assert refused.value.name == host_of(users) and 29 < refused.value.retry_after <= 30
        assert backend.stats()["users"]["received"] == received  # no network call
        # another host (the orders service) has its own breaker
        assert (await http.get(f"{backend.urls['orders']}/orders/1001")).status_code == 200
    status = transport.status()
    assert status[host_of(users)]["state"] == "open"
    assert status[host_of(backend.urls["orders"])]["state"] == "closed"


async def test_a_hang_counts_through_the_read_timeout(backend) -> None:
    transport = BreakerTransport(config=FAST, per="client", name="backend")
    async with client(transport, timeout=0.2) as http:
        await backend.set_profile("orders", {"mode": "hang"})
        for _ in range(2):
            with pytest.raises(httpx.ReadTimeout):
                await http.get(f"{backend.urls['orders']}/orders/1001")
        with pytest.raises(CircuitOpenError):  # one breaker for the whole client
            await http.get(f"{backend.urls['users']}/users/octocat")
    assert transport.registry["backend"].get_status()["failures"] == 2


async def test_not_found_is_the_dependency_working(backend) -> None:
    transport = BreakerTransport(config=FAST)
    async with client(transport) as http:
        for _ in range(5):
            assert (await http.get(f"{backend.urls['users']}/users/nobody-here")).status_code == 404
    (status,) = transport.status().values()
    assert status["state"] == "closed" and status["successes"] == 5


@pytest.mark.parametrize(("options", "message"), [
    ({"per": "route"}, "per must be 'host' or 'client'"),
    ({"config": {"timeout": -1}}, "config: timeout"),
    ({"configs": {"api:80": {"failure_threshold": 0}}}, r"configs\['api:80'\]"),
    ({"transport": object()}, "transport must be an httpx.AsyncBaseTransport"),
    ({"classifier": 3}, "classifier must be callable"),
])
def test_bad_options(options, message) -> None:
    with pytest.raises(ConfigError, match=message):
        BreakerTransport(**options)
