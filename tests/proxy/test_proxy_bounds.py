"""What callers and upstreams can make the proxy keep: tool names, answer sizes, and
whom the MCP listener answers (Host/Origin, with the flags its messages name)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastmcp import Client
from mcp.shared.exceptions import MCPError

from cblab.proxy import FaultProxy, ProxyError
from cblab.proxy.cli import build_parser
from cblab.server.app import ServerRunner

from .conftest import STDIO_SERVER
from .reference import RawClient

LIMIT = 256 * 1024


async def test_unknown_tool_names_are_cut_and_counted_under_one_label(proxy: FaultProxy) -> None:
    names = [f"{i:04d}" + "n" * (64 * 1024) for i in range(100)]
    raw = RawClient(proxy.mcp_url)  # the handshake era: names travel in the body only
    try:
        await raw.initialize()
        for name in names:
            answer = await raw.request("tools/call", {"name": name, "arguments": {}})
            assert "error" in answer or answer["result"]["isError"]  # the upstream's own
        answer = await raw.request("tools/call", {"name": "echo", "arguments": {"x": 1}})
        assert answer["result"]["structuredContent"] == {"result": 1}
    finally:
        await raw.aclose()
    assert proxy.events is not None
    rows = proxy.events.rows()["events"]
    assert len(rows) == 101
    assert max(len(r["tool"]) for r in rows) <= 64
    assert len(json.dumps(rows)) < 100 * 1024  # not 100 x 64 KiB
    assert proxy.stats()["tools"] == {"unknown": {"failure": 100}, "echo": {"success": 1}}
    assert {r["tool"][:4] for r in rows[:100]} == {n[:4] for n in names}  # cut, not dropped
    assert len(proxy.table._rngs) == 1  # no RNG per name a caller invents


async def _big_and_small(url: str) -> tuple[BaseException | Any, Any]:
    async with Client(url) as client:
        big = asyncio.ensure_future(client.call_tool_mcp("big", {"size": 4 * 1024 * 1024}))
        small = await client.call_tool_mcp("echo", {"x": 5})  # not stalled behind it
        done = (await asyncio.gather(big, return_exceptions=True))[0]
        after = await client.call_tool_mcp("echo", {"x": 6})
    assert small.structured_content == {"result": 5}
    assert after.structured_content == {"result": 6}
    return done, after


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_an_answer_over_the_bound_is_a_clear_error_and_stalls_nothing(transport: str) -> None:
    runner = await ServerRunner(_upstream()).start() if transport == "http" else None
    try:
        upstream = runner.mcp_url if runner is not None else STDIO_SERVER
        async with FaultProxy(upstream, max_result_bytes=LIMIT) as proxy:
            big, _ = await _big_and_small(proxy.mcp_url)
            async with Client(proxy.mcp_url) as client:  # under the bound: passes
                fits = await client.call_tool_mcp("big", {"size": 1000})
            assert proxy.events is not None
            rows = proxy.events.rows()["events"]
    finally:
        if runner is not None:
            await runner.stop()
    assert isinstance(big, MCPError) and "result too large" in str(big)
    assert big.data == {"max_result_bytes": LIMIT}
    assert fits.structured_content == {"result": "x" * 1000}
    outcomes = {(r["tool"], r["outcome"], r["error_type"]) for r in rows}
    assert ("big", "failure", "result_too_large") in outcomes


def _upstream() -> Any:
    from .servers import build_upstream

    return build_upstream()


def test_max_result_bytes_is_checked_up_front() -> None:
    with pytest.raises(ProxyError, match="max_result_bytes must be an integer >= 1024"):
        FaultProxy("http://127.0.0.1:9/mcp", max_result_bytes=10)


async def test_allowed_hosts_and_origins_on_both_listeners(upstream: ServerRunner) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with FaultProxy(upstream.mcp_url, allowed_hosts=["proxy.example"],
                          allowed_origins=["http://inspector.example:6274"]) as proxy, \
            httpx.AsyncClient() as http:
            evil = await http.post(proxy.mcp_url, json=body,
                                   headers={"Origin": "http://evil.example"})
            friend = await http.post(proxy.mcp_url, json=body,
                                     headers={"Origin": "http://inspector.example:6274"})
            host = await http.post(proxy.mcp_url, json=body, headers={"Host": "proxy.example"})
            bad_host = await http.post(proxy.mcp_url, json=body, headers={"Host": "evil.example"})
            control = await http.get(proxy.control_url + "/faults",
                                     headers={"Origin": "http://inspector.example:6274"})
            control_evil = await http.get(proxy.control_url + "/faults",
                                          headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403 and "--allow-origin" in evil.json()["error"]["message"]
    assert bad_host.status_code == 421 and "--allow-host" in bad_host.json()["error"]["message"]
    assert friend.status_code not in (403, 421) and host.status_code not in (403, 421)
    assert control.status_code == 200
    assert control_evil.status_code == 403 and "cblab proxy --allow-origin" in control_evil.text
    args = build_parser().parse_args(["--upstream", "http://127.0.0.1:1/mcp", "--allow-origin",
                                      "http://a.example", "--allow-host", "b.example",
                                      "--max-result-bytes", "4096"])
    assert (args.allow_origin, args.allow_host, args.max_result_bytes) == (
        ["http://a.example"], ["b.example"], 4096)
