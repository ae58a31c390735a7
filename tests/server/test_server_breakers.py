"""The demo server over real Streamable HTTP: breakers trip on each kind of outage,
shed load while open, and recover; 404 never counts; unprotected never rejects."""

from __future__ import annotations

import asyncio

from .live import Live, error_text, eventually


async def call(client, tool: str = "github_user", **args):
    if not args:
        args = {"username": "octocat"} if tool == "github_user" else {"order_id": 1001}
    return await client.call_tool(tool, args, raise_on_error=False)


async def assert_recovers(live: Live, client, tool: str, breaker: str) -> None:
    """Backend healthy again: after the open timeout, trial calls close the breaker."""
    await eventually(lambda: live.state(breaker) == "half_open", what=f"{breaker} half-open")
    for _ in range(2):  # success_threshold = 2
        result = await call(client, tool)
        assert not result.is_error, error_text(result)
    assert live.state(breaker) == "closed"
    result = await call(client, tool)
    assert not result.is_error


async def test_healthy_tools_return_backend_json(live: Live) -> None:
    async with live.client() as client:
        user = await client.call_tool("github_user", {"username": "octocat"})
        order = await client.call_tool("order_lookup", {"order_id": 1001})
    assert user.data["login"] == "octocat"
    assert order.data["id"] == 1001
    assert live.state("github") == live.state("database") == "closed"


async def test_trips_when_backend_down_and_recovers(live: Live) -> None:
    async with live.client() as client:
        await live.backend.set_profile("users", {"mode": "down"})
        for _ in range(3):
            result = await call(client)
            assert result.is_error
            assert "github dependency is unreachable (ConnectError)" in error_text(result)
        assert live.state() == "open"

        rejected = await call(client)
        assert rejected.is_error
        assert rejected.structured_content["error"] == "dependency_unavailable"
        assert rejected.structured_content["breaker"] == "github"
        assert rejected.structured_content["state"] == "open"
        assert 0 < rejected.structured_content["retry_after_s"] <= 0.2
        assert "retry in" in error_text(rejected)

        # the other dependency is unaffected
        assert not (await call(client, "order_lookup")).is_error

        await live.backend.set_profile("users", {"mode": "up"})
        await assert_recovers(live, client, "github_user", "github")


async def test_trips_when_backend_hangs_past_the_deadline(live_factory) -> None:
    # open for 1 s, not 0.2: three hung calls end together and a loaded machine may take
    # a while to hand the results back before the next call checks the refusal
    live = await live_factory(deadline=0.3, database={"failure_threshold": 3, "timeout": 1.0})
    async with live.client() as client:
        await live.backend.set_profile("orders", {"mode": "hang"})
        results = await asyncio.gather(*(call(client, "order_lookup") for _ in range(3)))
        for result in results:
            assert result.is_error
            assert "did not answer within 0.3 s" in error_text(result)
        assert live.state("database") == "open"
        rejected = await call(client, "order_lookup")
        assert rejected.structured_content["error"] == "dependency_unavailable"
        await live.backend.set_profile("orders", {"mode": "up"})
        await assert_recovers(live, client, "order_lookup", "database")
    errors = {r["error_type"] for r in live.rows() if r["outcome"] == "failure"}
    assert errors == {"deadline_exceeded"}


async def test_trips_on_a_5xx_storm(live: Live) -> None:
    async with live.client() as client:
        await live.backend.set_profile("users", {"error_rate": 1.0, "status_mix": {"503": 1}})
        for _ in range(3):
            result = await call(client)
            assert "failed: HTTP 503 Service Unavailable" in error_text(result)
        assert live.state() == "open"
        assert (await call(client)).structured_content["error"] == "dependency_unavailable"
        await live.backend.set_profile("users", {})
        await assert_recovers(live, client, "github_user", "github")
    failures = [r for r in live.rows() if r["outcome"] == "failure"]
    assert [r["error_type"] for r in failures] == ["http_503"] * 3


async def test_429_and_resets_count_as_failures(live: Live) -> None:
    async with live.client() as client:
        await live.backend.set_profile("users", {"error_rate": 1.0, "status_mix": {"429": 1}})
        assert "HTTP 429 Too Many Requests" in error_text(await call(client))
        await live.backend.set_profile("users", {"reset_rate": 1.0})
        result = await call(client)
        assert "unreachable" in error_text(result)
    status = live.lab.registry["github"].get_status()
    assert status["failures"] == 2


async def test_unknown_user_is_not_a_breaker_failure(live: Live) -> None:
    async with live.client() as client:
        for _ in range(5):  # more than failure_threshold
            result = await call(client, username="no-such-person")
            assert result.is_error
            assert error_text(result) == "no such user 'no-such-person'"
        result = await call(client, "order_lookup", order_id=99)
        assert error_text(result) == "no such order 99"
    status = live.lab.registry["github"].get_status()
    assert status["state"] == "closed"
    assert status["failures"] == 0 and status["successes"] == 5
    assert {r["error_type"] for r in live.rows()} == {"not_found"}
    assert {r["outcome"] for r in live.rows()} == {"success"}


async def test_unprotected_server_never_rejects(live_factory) -> None:
    live = await live_factory(protected=False)
    async with live.client() as client:
        await live.backend.set_profile("users", {"mode": "down"})
        results = [await call(client) for _ in range(8)]
        assert all("unreachable" in error_text(r) for r in results)
        assert all(r.structured_content is None for r in results)
        status = (await client.call_tool("circuit_status", {})).data["github"]
    assert status["mode"] == "disabled"
    assert status["state"] == "closed" and status["rejected"] == 0
    assert status["failures"] == 8
    rows = live.rows()
    assert all(r["variant"] == "unprotected" for r in rows)
    assert "rejected" not in {r["outcome"] for r in rows}


BAD_ARGUMENTS = [
    ("github_user", {"username": "-octocat"}, "cannot start or end with a hyphen"),
    ("github_user", {"username": "octo--cat"}, "single hyphens"),
    ("github_user", {"username": "../orders/1001"}, "only letters, digits"),
    ("github_user", {"username": "octocat?x=1"}, "only letters, digits"),
    ("github_user", {"username": "a" * 40}, "must be 1 to 39 characters, got 40"),
    ("github_user", {"username": ""}, "must be 1 to 39 characters, got 0"),
    ("github_user", {}, "username"),
    ("order_lookup", {"order_id": -1}, "order_id must be between 1 and 2147483647, got -1"),
    ("order_lookup", {"order_id": 0}, "got 0"),
    ("order_lookup", {"order_id": 2**31}, "got 2147483648"),
    ("order_lookup", {"order_id": "1; DROP TABLE"}, "order_id"),
    ("order_lookup", {"order_id": 1.5}, "order_id"),
]


async def test_bad_arguments_get_clear_errors_and_reach_no_backend(live: Live) -> None:
    async with live.client() as client:
        for tool, args, expected in BAD_ARGUMENTS:
            result = await client.call_tool(tool, args, raise_on_error=False)
            assert result.is_error, (tool, args)
            assert expected in error_text(result), (tool, args, error_text(result))
    stats = live.backend.stats()
    assert stats["users"]["received"] == stats["orders"]["received"] == 0
    rows = live.rows()
    assert len(rows) == len(BAD_ARGUMENTS)
    assert {r["outcome"] for r in rows} == {"excluded"}
    assert {r["error_type"] for r in rows} == {"invalid_argument", "ValidationError"}
    # The middleware admits a call before the tool sees its arguments, so a refused
    # argument is an admitted call recorded as excluded: it never counts either way.
    github = live.lab.registry["github"].get_status()
    assert github["calls"] == github["excluded"] == 7
    assert github["failures"] == github["successes"] == 0


async def test_circuit_status_and_metrics_have_the_write_up_shapes(live: Live) -> None:
    async with live.client() as client:
        await call(client)
        status = (await client.call_tool("circuit_status", {})).data
        metrics = (await client.call_tool("circuit_metrics", {})).data
    assert set(status) == {"github", "database"}
    for name, breaker in status.items():
        assert {"name", "state", "failures", "successes", "last_failure"} <= set(breaker)
        assert breaker["name"] == name
    assert status["github"]["successes"] == 1
    assert [c["name"] for c in metrics["circuits"]] == ["github", "database"]
    assert metrics["summary"] == {"total": 2, "open": 0, "closed": 2, "half_open": 0}
