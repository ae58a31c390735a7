"""The proxy in front of official reference MCP servers installed from the registries
(PyPI's mcp-server-time and mcp-server-git over stdio, npm's "everything" over stdio
and Streamable HTTP): transparent when idle, task-augmented calls pass through, and
it survives its upstream being killed (HTTP: restarted on the same port; stdio:
respawned)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport
from mcp.shared.exceptions import MCPError

from cblab.proxy import FaultProxy
from cblab.testing.reference import everything_command, git_server_command, time_server_command
from tests.helpers import eventually

from .reference import EverythingHttp, RawClient, listing


@pytest.fixture
async def everything_http() -> AsyncIterator[EverythingHttp]:
    server = await EverythingHttp().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "README").write_text("hello\n")
    return repo


# (server, a call whose answer does not change between two calls)
def _servers(repo: Path) -> dict[str, tuple[Any, tuple[str, dict[str, Any]]]]:
    return {
        "everything-stdio": (everything_command("stdio"), ("get-sum", {"a": 2, "b": 3})),
        "time-stdio": (time_server_command(), (
            "convert_time", {"source_timezone": "UTC", "time": "12:00",
                             "target_timezone": "Asia/Tokyo"})),
        "git-stdio": (git_server_command(repo), ("git_status", {"repo_path": str(repo)})),
    }


async def _call(target: Any, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    async with Client(target) as client:
        result = await client.call_tool_mcp(tool, arguments)
    return result.model_dump(by_alias=True, exclude_none=True)


def _direct(command: list[str]) -> StdioTransport:
    return StdioTransport(command[0], command[1:])


@pytest.mark.parametrize("server", ["everything-stdio", "time-stdio", "git-stdio"])
async def test_stdio_listings_and_results_are_the_servers_field_for_field(
    server: str, git_repo: Path,
) -> None:
    command, (tool, arguments) = _servers(git_repo)[server]
    direct = await listing(_direct(command))
    direct_call = await _call(_direct(command), tool, arguments)
    async with FaultProxy(command) as proxy:
        via = await listing(proxy.mcp_url)
        via_call = await _call(proxy.mcp_url, tool, arguments)
    for part in direct:  # one assert per part: a failure names the part that differs
        assert via[part] == direct[part], part
    assert via_call == direct_call
    assert not via_call.get("isError")


async def test_http_listings_and_results_are_the_servers_field_for_field(
    everything_http: EverythingHttp,
) -> None:
    direct = await listing(everything_http.url)
    tools = {t["name"]: t for t in direct["tools"]["tools"]}
    assert tools["simulate-research-query"]["execution"] == {"taskSupport": "required"}
    direct_call = await _call(everything_http.url, "get-structured-content",
                              {"location": "New York"})
    async with FaultProxy(everything_http.url) as proxy:
        via = await listing(proxy.mcp_url)
        via_call = await _call(proxy.mcp_url, "get-structured-content", {"location": "New York"})
    for part in direct:
        assert via[part] == direct[part], part
    assert via_call == direct_call and via_call["structuredContent"]


async def _research_task(url: str) -> dict[str, Any]:
    """A task-augmented call of everything's task-required tool, polled to its end."""
    client = RawClient(url)
    try:
        await client.initialize()
        created = await client.request("tools/call", {
            "name": "simulate-research-query", "arguments": {"topic": "breakers"},
            "task": {"ttl": 60_000}})
        task_id = created["result"]["task"]["taskId"]

        async def finished() -> bool:
            status = await client.request("tasks/get", {"taskId": task_id})
            return status["result"]["status"] in ("completed", "failed", "cancelled")

        await eventually(finished, 60, "the task to finish", every=0.3)
        return (await client.request("tasks/result", {"taskId": task_id}))["result"]
    finally:
        await client.aclose()


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_task_augmented_call_passes_through(transport: str) -> None:
    server = await EverythingHttp().start() if transport == "http" else None
    try:
        upstream = server.url if server is not None else everything_command("stdio")
        async with FaultProxy(upstream) as proxy:
            result = await _research_task(proxy.mcp_url)
            assert "Research Report: breakers" in result["content"][0]["text"]
            assert not result.get("isError")
            assert proxy.events is not None
            rows = proxy.events.rows()["events"]
    finally:
        if server is not None:
            await server.stop()
    assert [(r["tool"], r["outcome"], r["reason"]) for r in rows] == [
        ("simulate-research-query", "success", "task_created")]


async def _health(proxy: FaultProxy) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        return dict((await http.get(proxy.control_url + "/health")).json())


async def test_http_upstream_killed_and_restarted_on_the_same_port(
    everything_http: EverythingHttp,
) -> None:
    async with FaultProxy(everything_http.url) as proxy:
        async with Client(proxy.mcp_url) as client:
            assert not (await client.call_tool_mcp("echo", {"message": "one"})).is_error
        early = RawClient(proxy.mcp_url)
        await early.initialize()
        everything_http.kill()

        answer = await early.request("tools/call", {"name": "echo", "arguments": {"message": "x"}})
        assert answer["error"]["data"]["upstream"] == "down"
        assert "connection refused" in answer["error"]["message"]
        health = await _health(proxy)
        assert health["status"] == "degraded"
        assert health["upstream_state"]["state"] == "down"
        assert health["upstream_state"]["last_error"] == "connection refused"
        with pytest.raises(Exception):  # a new client cannot get through either
            async with Client(proxy.mcp_url) as client:
                await client.call_tool_mcp("echo", {"message": "two"})

        await everything_http.start()  # same port
        await eventually(lambda: proxy.health.connected, 30, "the proxy to see the upstream")
        health = await _health(proxy)
        assert health["status"] == "ok" and health["upstream_state"]["restarts"] == 1
        async with Client(proxy.mcp_url) as client:
            result = await client.call_tool_mcp("echo", {"message": "three"})
        assert not result.is_error and "three" in result.content[0].text  # type: ignore[union-attr]
        await early.aclose()
        assert proxy.events is not None
        rows = proxy.events.rows()["events"]
    assert [(r["outcome"], r["error_type"]) for r in rows] == [
        ("success", None), ("failure", "upstream_down"), ("success", None)]


async def test_a_long_lived_client_works_again_after_the_upstream_restarts() -> None:
    """A sessionless (2026-07-28) upstream restarted on the same port: the same client
    session through the proxy goes on as if nothing happened (the proxy held nothing)."""
    from cblab.server.app import ServerRunner

    from .servers import build_upstream

    upstream = await ServerRunner(build_upstream()).start()
    port = upstream.port
    try:
        async with FaultProxy(upstream.mcp_url) as proxy, Client(proxy.mcp_url) as client:
            assert (await client.call_tool_mcp("echo", {"x": 1})).structured_content == {"result": 1}
            await upstream.stop()
            with pytest.raises(MCPError, match="unavailable"):
                await client.call_tool_mcp("echo", {"x": 2})
            upstream = await ServerRunner(build_upstream(), port=port or 0).start()
            assert (await client.call_tool_mcp("echo", {"x": 3})).structured_content == {"result": 3}
            assert proxy.health.connected and proxy.health.restarts == 1
    finally:
        await upstream.stop()


async def test_stdio_upstream_crash_is_respawned() -> None:
    async with FaultProxy(time_server_command(), connect_timeout=30) as proxy:
        arguments = {"timezone": "UTC"}
        async with Client(proxy.mcp_url) as client:
            assert not (await client.call_tool_mcp("get_current_time", arguments)).is_error
        first = proxy.upstream_pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await eventually(lambda: not proxy.health.connected, 10, "the proxy to see the crash")
        raw = RawClient(proxy.mcp_url)
        answer = await raw.request("tools/call", {"name": "get_current_time",
                                                  "arguments": arguments})
        await raw.aclose()
        assert answer["error"]["data"]["upstream"] in ("reconnecting", "down")
        with pytest.raises(Exception, match="unavailable"):  # a real client's call likewise
            async with Client(proxy.mcp_url) as client:
                await client.call_tool_mcp("get_current_time", arguments)
        health = await _health(proxy)
        assert health["status"] == "degraded"
        assert health["upstream_state"]["state"] in ("reconnecting", "down")
        assert "exited" in health["upstream_state"]["last_error"]

        await eventually(lambda: proxy.health.connected, 60, "the server to be respawned")
        assert proxy.upstream_pid not in (None, first)
        assert (await _health(proxy))["upstream_state"]["restarts"] == 1
        async with Client(proxy.mcp_url) as client:
            assert not (await client.call_tool_mcp("get_current_time", arguments)).is_error
        assert proxy.events is not None
        rows = proxy.events.rows()["events"]
    outcomes = [(r["outcome"], r["error_type"]) for r in rows]
    assert outcomes[0] == outcomes[-1] == ("success", None)
    assert set(outcomes[1:-1]) == {("failure", "upstream_down")}  # the raw call, the client's


async def test_proxy_keeps_its_own_cost_out_of_the_call(everything_http: EverythingHttp) -> None:
    """Many calls in parallel through one proxy all reach the upstream and come back
    whole (the pooled forwarding does not mix answers up)."""
    async with FaultProxy(everything_http.url) as proxy, Client(proxy.mcp_url) as client:
        results = await asyncio.gather(*(client.call_tool_mcp("get-sum", {"a": i, "b": 1})
                                         for i in range(20)))
    assert [r.content[0].text for r in results] == [  # type: ignore[union-attr]
        f"The sum of {i} and 1 is {i + 1}." for i in range(20)]
