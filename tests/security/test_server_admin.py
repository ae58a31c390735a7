"""Issue 15 items 4 and 5 on the MCP server's admin routes: foreign Host/Origin
refused (the token is no substitute), abusive JSON bodies answered 400, not 500."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.server.live import TOKEN, Live, start_live, stop_live


@pytest.fixture
async def live() -> AsyncIterator[Live]:
    started = await start_live()
    yield started
    await stop_live(started)


@pytest.fixture
async def admin(live: Live) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=live.url, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as http:
        yield http


@pytest.mark.parametrize(
    ("headers", "status"),
    [({"Host": "evil.example"}, 421), ({"Origin": "http://evil.example"}, 403)],
)
async def test_foreign_host_or_origin_is_refused_even_with_the_token(
    live: Live, admin: httpx.AsyncClient, headers: dict[str, str], status: int
) -> None:
    answer = await admin.post("/admin/breakers/github/force_open", headers=headers)
    assert answer.status_code == status
    assert live.state("github") == "closed"
    assert (await admin.get("/metrics", headers=headers)).status_code == status


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 30_000 + b"]" * 30_000,
        b'{"failure_threshold": ' + b"9" * 5000 + b"}",
        b'{"timeout": 1e999}',
        b'{"timeout": NaN}',
    ],
    ids=["deep", "huge-int", "1e999", "nan"],
)
async def test_abusive_json_is_a_400(live: Live, admin: httpx.AsyncClient, body: bytes) -> None:
    before = live.lab.registry["github"].config
    answer = await admin.patch(
        "/admin/breakers/github", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "bad_request"
    assert live.lab.registry["github"].config == before
