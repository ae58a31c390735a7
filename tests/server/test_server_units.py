"""Fine-grained pieces of the server, in-process: validation, settings, results, runner."""

from __future__ import annotations

import asyncio
import math
import re

import httpx
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from hypothesis import given
from hypothesis import strategies as st

from cblab import ConfigError
from cblab.server import ServerRunner, ServerSettings, build_server, lab_of
from cblab.server.cli import main as serve_main
from cblab.server.tools import check_order_id, check_username, unavailable_result

GITHUB_RULE = re.compile(r"^[A-Za-z0-9](?:-?[A-Za-z0-9])*$")
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@given(st.lists(st.text(ALNUM, min_size=1, max_size=5), min_size=1, max_size=8))
def test_valid_usernames_pass(parts: list[str]) -> None:
    name = "-".join(parts)[:39].rstrip("-")
    assert check_username(name) == name


@given(st.text(max_size=50))
def test_username_check_matches_githubs_rule(text: str) -> None:
    valid = 1 <= len(text) <= 39 and GITHUB_RULE.fullmatch(text) is not None
    if valid:
        assert check_username(text) == text
    else:
        with pytest.raises(ToolError, match="invalid username"):
            check_username(text)


@pytest.mark.parametrize("value", [True, 1.0, "7", None, 0, -3, 2**31])
def test_bad_order_ids(value) -> None:
    with pytest.raises(ToolError, match="order_id"):
        check_order_id(value)


def test_unavailable_result() -> None:
    result = unavailable_result("github", "half_open", 1.23456)
    assert result.is_error
    assert result.structured_content == {
        "error": "dependency_unavailable", "breaker": "github", "state": "half_open",
        "retry_after_s": 1.235}
    assert "half-open" in result.content[0].text and "retry in 1.2 s" in result.content[0].text
    forced = unavailable_result("github", "open", math.inf)
    assert forced.structured_content["retry_after_s"] is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"users_url": "ftp://x"}, "users_url"),
        ({"orders_url": "http://127.0.0.1:1/?q=1"}, "orders_url"),
        ({"deadline": 0}, "deadline"),
        ({"deadline": float("inf")}, "deadline"),
        ({"github": {"failure_threshold": 0}}, "github: failure_threshold"),
        ({"database": "fast"}, "database"),
        ({"event_log_capacity": 0}, "event_log_capacity"),
        ({"admin_token": "short"}, "admin_token"),
        ({"protected": "yes"}, "protected"),
    ],
)
def test_settings_are_validated(changes: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(field)):
        ServerSettings(**changes)


def test_settings_defaults_follow_the_write_up() -> None:
    settings = ServerSettings()
    assert (settings.github.failure_threshold, settings.github.timeout) == (3, 60.0)
    assert (settings.database.failure_threshold, settings.database.timeout) == (5, 30.0)
    assert settings.variant_label == "protected"
    assert ServerSettings(protected=False).variant_label == "unprotected"
    assert ServerSettings(bare=True).variant_label == "bare"


async def test_cancelled_tool_call_is_recorded_as_cancelled() -> None:
    """The middleware sees CancelledError (a BaseException) and records it."""
    mcp = build_server(ServerSettings())
    lab = lab_of(mcp)
    recorder = mcp.middleware[0]
    context = type("Ctx", (), {"message": type("M", (), {"name": "github_user"})()})()

    async def cancelled(_):
        breaker = lab.registry["github"]
        permit = breaker.admit()
        exc = asyncio.CancelledError()
        breaker.record_exception(permit, exc)
        raise exc

    with pytest.raises(asyncio.CancelledError):
        await recorder.on_call_tool(context, cancelled)
    (row,) = lab.instrumentation.rows()["events"]
    assert (row["outcome"], row["error_type"], row["breaker"]) == (
        "cancelled", "CancelledError", "github")
    assert lab.registry["github"].get_status()["cancelled"] == 1


async def test_bare_server_has_no_breakers_in_the_path(live_factory) -> None:
    live = await live_factory(bare=True)
    await live.backend.set_profile("users", {"mode": "down"})
    async with live.client() as client:
        for _ in range(5):
            result = await client.call_tool("github_user", {"username": "octocat"},
                                            raise_on_error=False)
            assert "unreachable" in result.content[0].text
    assert live.lab.registry["github"].get_status()["calls"] == 0
    assert live.rows() == []


async def test_runner_restarts_with_a_fresh_lifespan(live) -> None:
    """Stop, then start the same app again: the lifespan opens a new httpx client."""
    mcp = live.mcp
    await live.runner.stop()
    for _ in range(2):
        async with ServerRunner(mcp) as runner:
            async with Client(runner.mcp_url) as client:
                user = await client.call_tool("github_user", {"username": "octocat"})
            assert user.data["login"] == "octocat"
        with pytest.raises(httpx.ConnectError):
            httpx.get(runner.url + "/health", trust_env=False)


def test_cli_refuses_bad_flags_before_starting(capsys) -> None:
    assert serve_main(["--github-failure-threshold", "0"]) == 2
    assert "github breaker: failure_threshold must be an integer >= 1" in capsys.readouterr().err
    assert serve_main(["--backend-users", "http://127.0.0.1:1"]) == 2
    assert "both --backend-users and --backend-orders" in capsys.readouterr().err
    assert serve_main(["--database-config", "{not json"]) == 2
    assert "--database-config is not valid JSON" in capsys.readouterr().err
    assert serve_main(["--max-lag", "-1"]) == 2
    assert "max_lag must be a positive number of seconds" in capsys.readouterr().err
