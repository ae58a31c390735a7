"""Every fault kind, observed by a real MCP client through the proxy (Streamable HTTP)."""

from __future__ import annotations

import asyncio
import socket
import statistics
import time

import pytest
from fastmcp import Client
from mcp.shared.exceptions import MCPError

from cblab.faults.profile import FaultProfile, plan_request, rng_for
from cblab.proxy import FaultProxy
from cblab.proxy.upstream import error_reason
from tests.helpers import eventually

TOOL = "echo"


async def rows_of(proxy: FaultProxy, count: int, timeout: float = 10.0) -> list[dict]:
    """The proxy's rows once it logged at least `count`."""
    events = proxy.events
    assert events is not None
    await eventually(lambda: len(events.rows()["events"]) >= count, timeout, f"{count} proxy rows")
    return events.rows()["events"]


async def test_forwards_tools_resources_and_prompts(proxy: FaultProxy) -> None:
    async with Client(proxy.mcp_url) as client:
        names = {tool.name for tool in await client.list_tools()}
        assert {"echo", "users", "not_found", "seen_headers"} <= names
        result = await client.call_tool_mcp("echo", {"x": 41})
        assert not result.is_error and result.structured_content == {"result": 41}
        contents = await client.read_resource("test://greeting")
        assert contents[0].text == "hello from upstream"
        prompt = await client.get_prompt("ask", {"topic": "breakers"})
        assert "breakers" in prompt.messages[0].content.text
    rows = await rows_of(proxy, 1)
    assert [(r["source"], r["tool"], r["outcome"]) for r in rows] == [("proxy", "echo", "success")]


async def test_latency_follows_the_profile(proxy: FaultProxy) -> None:
    """Tolerance: each call is held at least its planned latency (drawn from the profile
    with the tool's seeded RNG); the median of the calls' excess over plan (proxy and
    upstream overhead) is under 200 ms, on a loaded 2-core machine; the planned draws'
    median is the profile's within 25 %."""
    profile = FaultProfile(latency={"kind": "lognormal", "median_ms": 60, "sigma": 0.5})
    await proxy.set_fault("*", {"latency": profile.latency.to_dict()})
    rng = rng_for(7, TOOL)
    planned = [plan_request(profile, rng).latency_s for _ in range(40)]
    observed = []
    async with Client(proxy.mcp_url) as client:
        for i in range(40):
            started = time.perf_counter()
            result = await client.call_tool_mcp(TOOL, {"x": i})
            observed.append(time.perf_counter() - started)
            assert not result.is_error
    for want, got in zip(planned, observed, strict=True):
        assert got >= want
    excess = [got - want for want, got in zip(planned, observed, strict=True)]
    assert statistics.median(excess) < 0.2
    assert statistics.median(planned) == pytest.approx(0.060, rel=0.25)
    rows = await rows_of(proxy, 40)
    held = [r["latency"] for r in rows]
    for want, got in zip(planned, held, strict=True):
        assert got >= want


async def test_error_as_is_error_result(proxy: FaultProxy) -> None:
    await proxy.set_fault("*", {"error_rate": 1.0, "status_mix": {"503": 1}})
    async with Client(proxy.mcp_url) as client:
        result = await client.call_tool_mcp(TOOL, {"x": 1})
    assert result.is_error
    assert result.structured_content == {"error": "injected_fault", "status": 503}
    assert "503" in result.content[0].text
    rows = await rows_of(proxy, 1)
    assert (rows[0]["outcome"], rows[0]["error_type"]) == ("failure", "injected_is_error")


async def test_error_as_jsonrpc_error(proxy: FaultProxy) -> None:
    await proxy.set_fault("*", {"error_rate": 1.0, "status_mix": {"429": 1},
                                "retry_after_s": 2.5, "error_as": "jsonrpc"})
    async with Client(proxy.mcp_url) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool_mcp(TOOL, {"x": 1})
    assert caught.value.code == -32000
    assert caught.value.data == {"status": 429, "injected": True, "retry_after_s": 2.5}
    await proxy.set_fault("*", {"error_rate": 1.0, "error_as": "jsonrpc"})
    async with Client(proxy.mcp_url) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool_mcp(TOOL, {"x": 1})
    assert caught.value.code == -32603
    rows = await rows_of(proxy, 2)
    assert [r["error_type"] for r in rows] == ["injected_jsonrpc_error"] * 2


async def test_upstream_is_error_passes_through_unchanged(proxy: FaultProxy) -> None:
    async with Client(proxy.mcp_url) as client:
        result = await client.call_tool_mcp("not_found", {"key": "k"})
    assert result.is_error and "no such key" in result.content[0].text
    rows = await rows_of(proxy, 1)
    assert (rows[0]["outcome"], rows[0]["error_type"]) == ("failure", "tool_error")


async def test_per_tool_fault_leaves_other_tools_alone(proxy: FaultProxy) -> None:
    await proxy.set_fault("users", {"error_rate": 1.0})
    async with Client(proxy.mcp_url) as client:
        assert (await client.call_tool_mcp("users", {})).is_error
        assert not (await client.call_tool_mcp(TOOL, {"x": 1})).is_error


async def test_hang_ends_only_by_the_clients_deadline(proxy: FaultProxy) -> None:
    await proxy.set_fault("*", {"mode": "hang"})
    async with Client(proxy.mcp_url) as client:
        started = time.perf_counter()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await client.call_tool_mcp(TOOL, {"x": 1})
        assert time.perf_counter() - started >= 0.5
    rows = await rows_of(proxy, 1)
    assert (rows[0]["outcome"], rows[0]["error_type"]) == ("cancelled", "hang")


async def test_a_held_call_goes_on_when_the_hang_ends(proxy: FaultProxy) -> None:
    await proxy.set_fault("*", {"mode": "hang"})
    async with Client(proxy.mcp_url) as client:
        call = asyncio.create_task(client.call_tool_mcp(TOOL, {"x": 9}))
        await eventually(lambda: proxy.injector.hung or call.done(),  # type: ignore[union-attr]
                         what="the proxy to hold the call")
        assert not call.done()
        await proxy.set_fault("*", {})
        result = await asyncio.wait_for(call, 10)
    assert result.structured_content == {"result": 9}


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        try:
            sock.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
    return False


async def test_down_refuses_connections_then_comes_back_on_the_same_port(
    proxy: FaultProxy,
) -> None:
    port = proxy.port
    assert port is not None and not _refused(port)
    await proxy.set_fault("*", {"mode": "down"})
    assert _refused(port)
    with pytest.raises(Exception) as caught:  # a real MCP client cannot connect
        async with asyncio.timeout(10), Client(proxy.mcp_url) as client:
            await client.call_tool_mcp(TOOL, {"x": 1})
    assert error_reason(caught.value) == "connection refused"
    await proxy.set_fault("*", {"mode": "up"})
    assert proxy.port == port and not _refused(port)
    async with Client(proxy.mcp_url) as client:
        assert not (await client.call_tool_mcp(TOOL, {"x": 1})).is_error


async def test_max_concurrency_rejects_or_queues_per_tool(proxy: FaultProxy) -> None:
    slow = {"latency": {"kind": "constant", "ms": 300}, "max_concurrency": 1}
    await proxy.set_fault("echo", slow)
    async with Client(proxy.mcp_url) as client:
        results = await asyncio.gather(*(client.call_tool_mcp(TOOL, {"x": i})
                                         for i in range(3)))
        refused = [r for r in results if r.is_error]
        assert len(refused) == 2
        assert refused[0].structured_content == {"error": "injected_fault", "status": 503}
        assert not (await client.call_tool_mcp("users", {})).is_error  # other tools: no limit
        await proxy.set_fault("echo", {**slow, "overflow": "queue"})
        started = time.perf_counter()
        results = await asyncio.gather(*(client.call_tool_mcp(TOOL, {"x": i})
                                         for i in range(3)))
        assert not any(r.is_error for r in results)
        assert time.perf_counter() - started >= 0.9  # one at a time
    rows = await rows_of(proxy, 7)
    assert sum(r["error_type"] == "injected_overload" for r in rows) == 2


async def test_listings_and_results_pass_through_unchanged(proxy: FaultProxy,
                                                           upstream: object) -> None:
    """A fastmcp upstream (2026-07-28, sessionless): a nested output schema, tags,
    instructions and identity exactly as the server gives them."""
    from .reference import listing

    direct = await listing(upstream.mcp_url)  # type: ignore[attr-defined]
    via = await listing(proxy.mcp_url)
    for part in direct:
        assert via[part] == direct[part], part
    route = next(t for t in via["tools"]["tools"] if t["name"] == "route")
    assert "points" in route["outputSchema"]["properties"]
    async with Client(upstream.mcp_url) as client:  # type: ignore[attr-defined]
        direct_call = await client.call_tool_mcp("route", {"n": 3})
    async with Client(proxy.mcp_url) as client:
        via_call = await client.call_tool_mcp("route", {"n": 3})
    assert via_call.model_dump() == direct_call.model_dump()
