"""The control API: faults, scenarios, stats, auth, validation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from cblab.backend import HEALTHY, Backend


@pytest.fixture
async def control(backend: Backend, make_client) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(base_url=backend.urls["control"]) as http:
        yield http


async def test_get_faults_lists_every_service(control: httpx.AsyncClient) -> None:
    response = await control.get("/faults")
    assert response.status_code == 200
    assert response.json() == {"users": HEALTHY.to_dict(), "orders": HEALTHY.to_dict()}
    assert (await control.get("/faults/orders")).json() == HEALTHY.to_dict()


async def test_put_replaces_and_patch_merges(backend: Backend, control: httpx.AsyncClient) -> None:
    put = await control.put("/faults/users", json={"error_rate": 0.5, "status_mix": {"503": 1}})
    assert put.status_code == 200
    assert put.json()["error_rate"] == 0.5 and put.json()["status_mix"] == {"503": 1.0}
    patch = await control.patch("/faults/users", json={"latency": {"ms": 30}})
    assert patch.status_code == 200
    assert patch.json()["error_rate"] == 0.5
    assert patch.json()["latency"] == {"kind": "constant", "ms": 30.0}
    # PUT replaces: fields not given go back to their healthy defaults
    replaced = await control.put("/faults/users", json={"reset_rate": 0.1})
    assert replaced.json()["error_rate"] == 0.0
    assert backend.profile("users").reset_rate == 0.1
    cleared = await control.delete("/faults")
    assert cleared.json()["users"] == HEALTHY.to_dict()


@pytest.mark.parametrize(
    ("method", "body", "status", "message"),
    [
        ("PUT", {"error_rate": 1.5}, 422, "error_rate must be between 0 and 1, got 1.5"),
        ("PATCH", {"error_rate": 1.5}, 422, "error_rate must be between 0 and 1, got 1.5"),
        ("PUT", {"eror_rate": 0.5}, 422, "unknown field 'eror_rate'"),
        ("PATCH", {"latency": {"kind": "normal"}}, 422, "latency.mean_ms is required"),
        ("PUT", [1, 2], 422, "request body must be a JSON object"),
    ],
)
async def test_invalid_profiles_are_422(
    control: httpx.AsyncClient, method: str, body: object, status: int, message: str
) -> None:
    response = await control.request(method, "/faults/users", json=body)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert (await control.get("/faults/users")).json() == HEALTHY.to_dict()


async def test_request_errors(control: httpx.AsyncClient) -> None:
    bad_json = await control.put(
        "/faults/users", content=b"{error_rate: 1", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 400 and "invalid JSON" in bad_json.json()["error"]
    unknown_service = await control.put("/faults/payments", json={"error_rate": 0.1})
    assert unknown_service.status_code == 404
    assert "unknown service 'payments'" in unknown_service.json()["error"]
    assert (await control.get("/faults/payments")).status_code == 404
    assert (await control.patch("/faults/payments", json={"error_rate": 2})).status_code == 404
    assert (await control.get("/nothing")).status_code == 404
    wrong_method = await control.post("/faults")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "GET, DELETE"
    too_big = await control.put("/faults/users", content=b"x" * (64 * 1024 + 1))
    assert too_big.status_code == 413


async def test_token_required_when_configured(client: httpx.AsyncClient) -> None:
    async with Backend(token="s3cret") as backend:
        url = backend.urls["control"]
        assert (await client.get(f"{url}/health")).status_code == 200
        missing = await client.get(f"{url}/faults")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert "bearer token" in missing.json()["error"]
        wrong = await client.put(
            f"{url}/faults/users", json={"mode": "down"}, headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401
        assert backend.profile("users").mode == "up"
        good = {"Authorization": "Bearer s3cret"}
        assert (await client.get(f"{url}/stats", headers=good)).status_code == 200
        ok = await client.patch(f"{url}/faults/users", json={"error_rate": 0.2}, headers=good)
        assert ok.status_code == 200


async def test_stats_and_reset(
    backend: Backend, control: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    for _ in range(5):
        await client.get(f"{backend.urls['orders']}/orders/1001")
    stats = (await control.get("/stats")).json()
    assert set(stats) == {"users", "orders"}
    assert stats["orders"]["received"] == 5 and stats["orders"]["answered"]["ok"] == 5
    assert set(stats["orders"]) >= {
        "received",
        "answered",
        "aborted",
        "in_flight",
        "hung",
        "queued",
        "since",
    }
    reset = (await control.post("/stats/reset")).json()
    assert reset["orders"]["received"] == 0


# --- scenarios ------------------------------------------------------------------------

INLINE = {
    "name": "inline",
    "phases": [
        {"name": "broken", "duration_s": 10, "faults": {"orders": {"error_rate": 1}}},
        {"name": "fixed", "duration_s": 10, "faults": {}},
    ],
}


async def test_inline_scenario_plays_with_time_scale(
    backend: Backend, control: httpx.AsyncClient, poll
) -> None:
    started = await control.post("/scenario", json={"scenario": INLINE, "time_scale": 0.01})
    assert started.status_code == 200
    status = started.json()
    assert status["running"] and status["phase_index"] == 0 and status["phase_name"] == "broken"
    assert status["total_duration_s"] == pytest.approx(0.2)
    assert backend.profile("orders").error_rate == 1  # phase 0 is applied at once
    await poll(lambda: backend.profile("orders").error_rate == 0)
    await backend.wait_scenario()
    done = (await control.get("/scenario")).json()
    assert done["finished"] and not done["running"] and done["phase_name"] == "fixed"
    assert done["elapsed_s"] >= 0.2


async def test_named_scenario_goes_down_and_back_up(
    backend: Backend, control: httpx.AsyncClient, client: httpx.AsyncClient, poll
) -> None:
    url = f"{backend.urls['users']}/users/octocat"
    response = await control.post(
        "/scenario", json={"name": "outage-and-recovery", "time_scale": 0.004}
    )
    assert response.json()["name"] == "outage-and-recovery"

    async def refused() -> bool:
        try:
            await client.get(url, headers={"Connection": "close"})
        except httpx.ConnectError:
            return True
        except httpx.TransportError:  # in flight when the service went down: aborted
            return False
        return False

    await poll(refused)
    await backend.wait_scenario()
    assert (await client.get(url)).status_code == 200
    assert backend.scenario_status()["phase_name"] == "recovery"


async def test_delete_scenario_stops_and_restores_health(
    backend: Backend, control: httpx.AsyncClient
) -> None:
    await control.post("/scenario", json={"scenario": INLINE})
    assert backend.profile("orders").error_rate == 1
    stopped = await control.delete("/scenario")
    assert stopped.json() == {"running": False, "finished": False, "name": None}
    assert backend.profiles == {"users": HEALTHY, "orders": HEALTHY}


async def test_a_new_scenario_replaces_the_running_one(
    backend: Backend, control: httpx.AsyncClient
) -> None:
    await control.post("/scenario", json={"scenario": INLINE})
    await control.post("/scenario", json={"name": "hang"})
    status = (await control.get("/scenario")).json()
    assert status["name"] == "hang" and status["running"]
    assert backend.profile("orders").error_rate == 0  # the hang scenario's phase 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "exactly one of 'name'"),
        ({"name": "hang", "scenario": INLINE}, "exactly one of 'name'"),
        ({"name": "no-such-scenario"}, "unknown scenario 'no-such-scenario'; available:"),
        ({"name": "../data/users"}, "invalid scenario name"),
        ({"name": "hang", "time_scale": 0}, "time_scale must be a finite number > 0"),
        ({"name": "hang", "speed": 2}, "unknown field 'speed'"),
        (
            {
                "scenario": {
                    **INLINE,
                    "phases": [
                        {"name": "p", "duration_s": 1, "faults": {"users": {"reset_rate": 7}}}
                    ],
                }
            },
            "phase 0 ('p'): faults.users: reset_rate must be between 0 and 1",
        ),
    ],
)
async def test_invalid_scenario_requests_are_422(
    control: httpx.AsyncClient, body: dict, message: str
) -> None:
    response = await control.post("/scenario", json=body)
    assert response.status_code == 422
    assert message in response.json()["error"]
    assert (await control.get("/scenario")).json()["running"] is False


async def test_list_scenarios(control: httpx.AsyncClient) -> None:
    names = (await control.get("/scenarios")).json()["scenarios"]
    assert {"outage-and-recovery", "brownout", "flapping", "slow-burn", "hang"} <= set(names)


async def test_control_survives_down(backend: Backend, control: httpx.AsyncClient) -> None:
    await control.put("/faults/users", json={"mode": "down"})
    await control.put("/faults/orders", json={"mode": "down"})
    assert (await control.get("/health")).status_code == 200
    results = await asyncio.gather(
        control.patch("/faults/users", json={"mode": "up"}),
        control.patch("/faults/orders", json={"mode": "up"}),
    )
    assert all(r.status_code == 200 for r in results)
    assert all(backend.profile(s).mode == "up" for s in ("users", "orders"))
