"""The demo server over stdio, as a desktop MCP client (Claude Desktop, an IDE) runs it."""

import os
import sys

from fastmcp import Client
from fastmcp.client.transports import StdioTransport


async def test_stdio_server_lists_and_calls_tools(tmp_path):
    # With no backend URL, `cblab serve` starts its own in-process backend.
    env = {**os.environ, "FASTMCP_ENABLE_RICH_TRACEBACKS": "false"}
    transport = StdioTransport(
        command=sys.executable,
        args=["-m", "cblab.server", "--transport", "stdio"],
        env=env,
        log_file=tmp_path / "stderr.log",
    )
    async with Client(transport, timeout=60) as client:
        names = {tool.name for tool in await client.list_tools()}
        assert {"github_user", "order_lookup", "circuit_status", "circuit_metrics"} <= names
        user = await client.call_tool("github_user", {"username": "octocat"})
        assert user.structured_content["login"] == "octocat"
        missing = await client.call_tool(
            "github_user", {"username": "no-such-user-xyz"}, raise_on_error=False)
        assert missing.is_error and "no such user" in missing.content[0].text
        status = await client.call_tool("circuit_status", {})
        assert status.structured_content["github"]["state"] == "closed"
