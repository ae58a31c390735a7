"""The plain HTTP routes over a real listener: events, metrics, admin, Host/Origin guard."""

from __future__ import annotations

import re

import httpx
import pytest

from cblab.schema import EVENT_COLUMNS
from cblab.server.metrics import METRIC_NAMES

from .live import TOKEN, Live, error_text

AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def live(live_factory) -> Live:
    """A github breaker that stays open for the whole test once tripped."""
    return await live_factory(github={"failure_threshold": 3, "timeout": 60})


@pytest.fixture
async def http(live: Live):
    async with httpx.AsyncClient(base_url=live.url, trust_env=False) as client:
        yield client


async def some_calls(live: Live) -> None:
    async with live.client() as client:
        await client.call_tool("github_user", {"username": "octocat"})
        await live.backend.set_profile("users", {"mode": "down"})
        for _ in range(4):
            await client.call_tool("github_user", {"username": "octocat"}, raise_on_error=False)
        await client.call_tool("order_lookup", {"order_id": -5}, raise_on_error=False)


async def test_health(live: Live, http: httpx.AsyncClient) -> None:
    body = (await http.get("/health")).json()
    assert body["status"] == "ok" and body["variant"] == "protected" and body["protected"]
    assert body["backend"]["users"] == live.backend.urls["users"]


async def test_events_are_one_gap_free_sequence_of_schema_rows(
    live: Live, http: httpx.AsyncClient
) -> None:
    await some_calls(live)
    body = (await http.get("/events")).json()
    rows = body["events"]
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert body["last_seq"] == len(rows) and body["missed"] == 0
    assert body["now"] >= rows[-1]["t"] >= 0
    assert all(tuple(r) == EVENT_COLUMNS for r in rows)
    calls = [r for r in rows if r["kind"] == "call"]
    states = [r for r in rows if r["kind"] == "state"]
    assert len(calls) == 6
    assert [r["outcome"] for r in calls] == [
        "success", "failure", "failure", "failure", "rejected", "excluded"]
    assert calls[3]["state"] == "closed" and calls[3]["state_after"] == "open"
    assert calls[4]["state"] == "open" and calls[4]["error_type"] == "dependency_unavailable"
    (trip,) = states
    assert (trip["breaker"], trip["state"], trip["state_after"]) == ("github", "closed", "open")
    assert trip["reason"] and trip["seq"] < calls[3]["seq"]  # logged as it happened
    assert {r["source"] for r in rows} == {"server"}

    # paging: after + limit
    page = (await http.get("/events", params={"after": 2, "limit": 2})).json()
    assert [r["seq"] for r in page["events"]] == [3, 4] and page["last_seq"] == 4
    tail = (await http.get("/events", params={"after": body["last_seq"]})).json()
    assert tail["events"] == [] and tail["last_seq"] == body["last_seq"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"after": "x"}, "after must be an integer"),
        ({"after": "-1"}, "after must be between 0"),
        ({"limit": "0"}, "limit must be between 1 and 10000"),
        ({"limit": "100000"}, "limit must be between 1 and 10000"),
        ({"since": "3"}, "unknown parameter(s): since"),
    ],
)
async def test_bad_events_params_are_400(http: httpx.AsyncClient, params, expected) -> None:
    response = await http.get("/events", params=params)
    assert response.status_code == 400
    assert expected in response.json()["detail"]


async def test_metrics_parse_and_have_the_names(live: Live, http: httpx.AsyncClient) -> None:
    await some_calls(live)
    response = await http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, float] = {}
    families = set()
    line_re = re.compile(r'^([a-z_]+)(\{(?:[a-z_]+="[^"]*",?)*\})? (-?[0-9.e+-]+|NaN)$')
    for line in response.text.splitlines():
        if line.startswith("# TYPE"):
            families.add(line.split()[2])
            continue
        if line.startswith("#"):
            continue
        match = line_re.match(line)
        assert match, f"not Prometheus text: {line!r}"
        samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    assert families == set(METRIC_NAMES)
    gh = 'name="github"'
    assert samples[f'cblab_circuitbreaker_state{{{gh},state="open"}}'] == 1
    assert samples[f'cblab_circuitbreaker_state{{{gh},state="closed"}}'] == 0
    assert samples[f'cblab_circuitbreaker_calls_seconds_count{{{gh},kind="successful"}}'] == 1
    assert samples[f'cblab_circuitbreaker_calls_seconds_count{{{gh},kind="failed"}}'] == 3
    assert samples[f'cblab_circuitbreaker_calls_seconds_sum{{{gh},kind="failed"}}'] > 0
    assert samples[f"cblab_circuitbreaker_not_permitted_calls_total{{{gh}}}"] == 1
    assert samples['cblab_circuitbreaker_failure_rate{name="database"}'] == -1  # no calls yet
    assert samples[f"cblab_circuitbreaker_trips_total{{{gh}}}"] == 1
    assert samples['cblab_tool_calls_total{tool="github_user",outcome="failure"}'] == 3


async def test_admin_needs_the_token(http: httpx.AsyncClient) -> None:
    assert (await http.get("/admin/breakers")).status_code == 401
    wrong = {"authorization": "Bearer not-the-token"}
    assert (await http.get("/admin/breakers", headers=wrong)).status_code == 401
    basic = {"authorization": f"Basic {TOKEN}"}
    assert (await http.get("/admin/breakers", headers=basic)).status_code == 401
    response = await http.post("/admin/breakers/github/force_open")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    ok = await http.get("/admin/breakers", headers=AUTH)
    assert ok.status_code == 200
    assert set(ok.json()["breakers"]) == {"github", "database"}


async def test_admin_is_off_without_a_configured_token(live_factory) -> None:
    live = await live_factory(admin_token=None)
    async with httpx.AsyncClient(base_url=live.url, trust_env=False) as http:
        response = await http.get("/admin/breakers", headers=AUTH)
    assert response.status_code == 403
    assert response.json()["error"] == "admin_disabled"


async def test_admin_configures_breakers(live: Live, http: httpx.AsyncClient) -> None:
    response = await http.patch("/admin/breakers/github", headers=AUTH,
                                json={"failure_threshold": 1, "timeout": 5})
    assert response.status_code == 200
    config = response.json()["breaker"]["config"]
    assert (config["failure_threshold"], config["timeout"]) == (1, 5.0)
    assert live.lab.registry["github"].config.failure_threshold == 1

    response = await http.put("/admin/breakers/database", headers=AUTH, json={
        "failure_threshold": 4,
        "policy": {"name": "count_window", "size": 20, "minimum_calls": 5},
    })
    assert response.status_code == 200
    assert response.json()["breaker"]["config"]["policy"]["name"] == "count_window"
    assert live.lab.registry["database"].config.timeout == 30.0  # PUT: the rest is default


BAD_BODIES = [
    ("PATCH", {"failure_threshold": 0}, "failure_threshold"),
    ("PATCH", {"timeout": "soon"}, "timeout"),
    ("PATCH", {"success_threshold": 9}, "success_threshold"),
    ("PATCH", {"policy": {"name": "count_window", "size": 0}}, "policy.size"),
    ("PATCH", {"failure_treshold": 3}, "failure_treshold"),
    ("PATCH", {"excluded_exceptions": ["KeyError"]}, "excluded_exceptions"),
    ("PUT", {"half_open_max_calls": -1}, "half_open_max_calls"),
    ("PUT", [1, 2], "must be a JSON object"),
]


async def test_bad_admin_bodies_are_422_naming_the_field(
    live: Live, http: httpx.AsyncClient
) -> None:
    before = live.lab.registry["github"].config
    for method, body, field in BAD_BODIES:
        response = await http.request(method, "/admin/breakers/github", headers=AUTH, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"] == "invalid_config"
        assert field in response.json()["detail"], (body, response.text)
    assert live.lab.registry["github"].config == before


async def test_admin_errors(http: httpx.AsyncClient) -> None:
    response = await http.patch("/admin/breakers/github", headers=AUTH, content=b"{nope")
    assert response.status_code == 400
    response = await http.patch("/admin/breakers/nosuch", headers=AUTH, json={})
    assert response.status_code == 404 and "nosuch" in response.json()["detail"]
    response = await http.post("/admin/breakers/github/explode", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["known"] == ["force_open", "force_closed", "disable", "reset"]


async def test_admin_actions_drive_the_tools(live: Live, http: httpx.AsyncClient) -> None:
    response = await http.post("/admin/breakers/github/force_open", headers=AUTH)
    assert response.json()["breaker"]["mode"] == "forced_open"
    async with live.client() as client:
        result = await client.call_tool("github_user", {"username": "octocat"},
                                        raise_on_error=False)
        assert result.structured_content == {
            "error": "dependency_unavailable", "breaker": "github", "state": "open",
            "retry_after_s": None}
        assert "forced open by an operator" in error_text(result)
        await http.post("/admin/breakers/github/reset", headers=AUTH)
        assert not (await client.call_tool("github_user", {"username": "octocat"})).is_error
    reasons = [r["reason"] for r in live.rows() if r["kind"] == "state"]
    assert reasons == ["force_open by admin", "reset by admin"]


async def test_reset_keeps_an_unprotected_server_unprotected(live_factory) -> None:
    live = await live_factory(protected=False)
    async with httpx.AsyncClient(base_url=live.url, trust_env=False) as http:
        response = await http.post("/admin/breakers/github/reset", headers=AUTH)
    assert response.json()["breaker"]["mode"] == "disabled"


async def test_foreign_origin_and_host_are_refused(live: Live, http: httpx.AsyncClient) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {**AUTH, "accept": "application/json, text/event-stream"}
    for path in ("/mcp", "/health", "/admin/breakers"):
        evil_origin = await http.post(path, json=body,
                                      headers={**headers, "origin": "http://evil.example"})
        assert evil_origin.status_code == 403, path
        evil_host = await http.post(path, json=body, headers={**headers, "host": "evil.example"})
        assert evil_host.status_code == 421, path
    # the server's own origin and a loopback Host are fine
    ok = await http.get("/health", headers={"origin": live.url})
    assert ok.status_code == 200
    ok = await http.get("/health", headers={"host": f"localhost:{live.runner.port}"})
    assert ok.status_code == 200
