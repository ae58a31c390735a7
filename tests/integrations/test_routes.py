"""mount_routes on a user's FastMCP server: /metrics, /events and the admin routes over a
real listener, with the middleware's breakers (and a transport's or guard's)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastmcp import Client

from cblab import BreakerRegistry, ConfigError
from cblab.backend import Backend
from cblab.integrations import BreakerTransport, CircuitBreakerMiddleware, mount_routes
from cblab.integrations.routes import registry_of
from cblab.server import ServerRunner

from .user_server import build_user_server

TOKEN = "user-admin-token-123"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def served() -> AsyncIterator[tuple[Backend, ServerRunner, CircuitBreakerMiddleware]]:
    async with Backend(seed=1) as backend:
        mcp = build_user_server(backend.urls["users"], backend.urls["orders"],
                                max_concurrent={"get_user": 4})
        (mw,) = [m for m in mcp.middleware if isinstance(m, CircuitBreakerMiddleware)]
        mount_routes(mcp, mw, admin_token=TOKEN)
        async with ServerRunner(mcp) as runner:
            yield backend, runner, mw


async def test_metrics_events_and_admin(served) -> None:
    backend, runner, _ = served
    async with Client(runner.mcp_url) as client, httpx.AsyncClient(
        base_url=runner.url, trust_env=False
    ) as http:
        await client.call_tool("get_user", {"username": "octocat"})
        await backend.set_profile("users", {"mode": "down"})
        for _ in range(3):
            await client.call_tool("get_user", {"username": "octocat"}, raise_on_error=False)

        text = (await http.get("/metrics")).text
        assert 'cblab_circuitbreaker_state{name="get_user",state="open"} 1' in text
        assert 'cblab_circuitbreaker_calls_total{name="get_user",kind="failed"} 2' in text
        assert 'cblab_circuitbreaker_not_permitted_calls_total{name="get_user"} 1' in text
        assert 'cblab_bulkhead_limit{name="get_user"} 4' in text

        body = (await http.get("/events")).json()
        kinds = [(e["kind"], e.get("outcome") or e.get("to_state")) for e in body["events"]]
        assert kinds == [("call", "success"), ("call", "failure"), ("call", "failure"),
                         ("state", "open"), ("call", "rejected")]
        assert [e["seq"] for e in body["events"]] == [1, 2, 3, 4, 5]
        assert (await http.get("/events", params={"after": 4})).json()["events"][0]["seq"] == 5
        assert (await http.get("/events", params={"limit": 0})).status_code == 400

        assert (await http.get("/admin/breakers")).status_code == 401
        listing = (await http.get("/admin/breakers", headers=AUTH)).json()
        assert listing["breakers"]["get_user"]["state"] == "open"
        bad = await http.patch("/admin/breakers/get_user", headers=AUTH,
                               json={"failure_threshold": 0})
        assert bad.status_code == 422 and "failure_threshold" in bad.json()["detail"]
        code = await http.put("/admin/breakers/get_user", headers=AUTH,
                              json={"excluded_exceptions": ["os:system"]})
        assert code.status_code == 422 and "it is code" in code.json()["detail"]
        await backend.set_profile("users", {"mode": "up"})
        reset = await http.post("/admin/breakers/get_user/reset", headers=AUTH)
        assert reset.json()["breaker"]["state"] == "closed"
        assert not (await client.call_tool("get_user", {"username": "octocat"})).is_error
        forced = await http.post("/admin/breakers/get_order/force_open", headers=AUTH)
        assert forced.json()["breaker"]["mode"] == "forced_open"
        refused = await client.call_tool("get_order", {"order_id": 1001}, raise_on_error=False)
        assert refused.structured_content["retry_after_s"] is None


async def test_without_a_token_admin_is_off() -> None:
    async with Backend(seed=1) as backend:
        mcp = build_user_server(backend.urls["users"], backend.urls["orders"])
        transport = BreakerTransport()
        mount_routes(mcp, transport)
        async with ServerRunner(mcp) as runner, httpx.AsyncClient(
            base_url=runner.url, trust_env=False
        ) as http:
            assert (await http.get("/admin/breakers", headers=AUTH)).status_code == 403
            assert (await http.get("/metrics")).status_code == 200


def test_sources_and_tokens_are_checked() -> None:
    registry = BreakerRegistry()
    assert registry_of(registry) is registry
    assert registry_of(CircuitBreakerMiddleware(registry=registry)) is registry
    with pytest.raises(TypeError, match="no breakers in"):
        registry_of(object())
    with pytest.raises(ConfigError, match="admin_token must be a string of at least 8"):
        mount_routes(object(), registry, admin_token="short")
