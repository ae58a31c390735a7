"""Issue 15 items 4 and 5 on the backend's control API: foreign Host/Origin refused
(with and without a token), abusive JSON refused with a 400, never a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from cblab.backend import Backend


@pytest.fixture(params=[None, "s3cret"], ids=["no-token", "token"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    async with Backend(seed=1, token=request.param) as started:
        yield started


@pytest.fixture
async def control(backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {backend._token}"} if backend._token else {}
    async with httpx.AsyncClient(base_url=backend.urls["control"], headers=headers) as http:
        yield http


async def test_dns_rebinding_host_is_refused(backend: Backend, control: httpx.AsyncClient) -> None:
    port = backend.ports["control"]
    answer = await control.patch(
        "/faults/users", json={"mode": "down"}, headers={"Host": f"evil.example:{port}"}
    )
    assert answer.status_code == 421
    assert "evil.example" in answer.json()["error"]
    assert backend.profile("users").mode == "up"
    assert (await control.get("/health", headers={"Host": "evil.example"})).status_code == 421


async def test_cross_site_origin_is_refused(backend: Backend, control: httpx.AsyncClient) -> None:
    answer = await control.post(
        "/scenario",
        content=json.dumps({"name": "outage-and-recovery"}),
        headers={"Origin": "http://evil.example", "Content-Type": "text/plain"},
    )
    assert answer.status_code == 403
    assert "evil.example" in answer.json()["error"]
    assert backend.scenario_status().get("name") is None
    null_origin = await control.get("/faults", headers={"Origin": "null"})
    assert null_origin.status_code == 403


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Host": "localhost"},
        {"Host": "[::1]:9"},
        {"Origin": "http://localhost:8888"},
        {"Origin": "http://127.0.0.1:1234"},
    ],
)
async def test_loopback_hosts_and_origins_are_served(
    control: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    assert (await control.get("/faults", headers=headers)).status_code == 200


async def test_allowed_hosts_and_origins_extend_the_list() -> None:
    async with Backend(
        seed=1, allowed_hosts=("lab.internal",), allowed_origins=("https://lab.internal",)
    ) as backend, httpx.AsyncClient(base_url=backend.urls["control"]) as http:
        headers = {"Host": "lab.internal:1", "Origin": "https://lab.internal"}
        assert (await http.get("/faults", headers=headers)).status_code == 200
        other = {"Host": "lab.internal:1", "Origin": "https://other.example"}
        assert (await http.get("/faults", headers=other)).status_code == 403


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 30_000 + b"]" * 30_000, b"nested deeper than 32 levels"),
        (b'{"a":' * 40 + b"1" + b"}" * 40, b"nested deeper than 32 levels"),
        (b'{"error_rate": ' + b"9" * 5000 + b"}", b"digits"),
        (b'{"error_rate": 1' + b"0" * 30 + b"}", b"digits"),
        (b'{"error_rate": 1e999}', b"out of range"),
        (b'{"error_rate": NaN}', b"NaN is not JSON"),
        (b'{"error_rate": -Infinity}', b"Infinity is not JSON"),
    ],
    ids=["deep-30000", "deep-40", "int-5000-digits", "int-31-digits", "1e999", "nan", "inf"],
)
async def test_abusive_json_is_a_400(
    backend: Backend, control: httpx.AsyncClient, body: bytes, reason: bytes
) -> None:
    answer = await control.patch(
        "/faults/users", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400, answer.text
    assert reason in answer.content
    assert backend.profile("users").error_rate == 0
