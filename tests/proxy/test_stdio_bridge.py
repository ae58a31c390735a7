"""The stdio bridge finds the server's protocol era as a client would: a server silent
on `server/discover` gets the handshake, a slow modern one is not pushed into it."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from cblab.proxy import FaultProxy, stdiolink
from cblab.testing.reference import time_server_command

from .conftest import STDIO_SERVER

LEGACY = [sys.executable, str(Path(__file__).with_name("legacy_server.py"))]


async def test_a_server_silent_on_discover_gets_the_handshake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stdiolink, "DISCOVER_TIMEOUT", 0.2)
    async with FaultProxy(LEGACY, connect_timeout=30) as proxy:
        assert proxy.tools == ["echo"]
        async with Client(proxy.mcp_url) as client:
            init = client.initialize_result
            assert init is not None and init.server_info.name == "legacy-echo"
            assert init.instructions == "legacy"
            result = await client.call_tool_mcp("echo", {"a": 1})
        assert result.content[0].text == '{"a": 1}'  # type: ignore[union-attr]


async def test_a_slow_modern_server_keeps_its_era(monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Discover unanswered within the wait (the server still importing), so the bridge
    also sends initialize; the server's late discover answer wins, as it should."""
    monkeypatch.setattr(stdiolink, "DISCOVER_TIMEOUT", 0.01)
    async with FaultProxy(STDIO_SERVER, connect_timeout=60) as proxy:
        assert "echo" in proxy.tools
        async with Client(proxy.mcp_url) as client:
            assert client.initialize_result is None  # 2026-07-28: no handshake
            result = await client.call_tool_mcp("echo", {"x": 4})
        assert result.structured_content == {"result": 4}
    gc.collect()  # the refused initialize was awaited, not left for asyncio to report
    assert "never retrieved" not in caplog.text


async def test_a_handshake_era_client_in_front_of_a_modern_server() -> None:
    """mcp-server-time speaks 2026-07-28; a client that only knows the handshake
    (`mode="legacy"`, like older SDKs and the MCP Inspector) still gets through, with
    the server's identity and the same answers as a direct legacy client."""
    command = time_server_command()
    arguments = {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}
    async with Client(StdioTransport(command[0], command[1:]), mode="legacy") as client:
        direct_info = client.initialize_result
        direct_tools = [t.name for t in await client.list_tools()]
        direct = await client.call_tool_mcp("convert_time", arguments)
    async with FaultProxy(command) as proxy, Client(proxy.mcp_url, mode="legacy") as client:
        info = client.initialize_result
        tools = [t.name for t in await client.list_tools()]
        via = await client.call_tool_mcp("convert_time", arguments)
    assert info is not None and direct_info is not None
    assert info.server_info == direct_info.server_info
    assert info.capabilities.tools == direct_info.capabilities.tools
    assert tools == direct_tools
    assert via.structured_content == direct.structured_content and not via.is_error
