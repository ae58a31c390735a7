"""A small MCP server for the client guard's tests: a tool that answers, one that hangs
and one that answers with a business error. Run over HTTP as a process:

    python -m tests.integrations.target_server PORT
"""

from __future__ import annotations

import asyncio
import sys

from fastmcp import FastMCP
from fastmcp.tools import ToolResult


def build_target() -> FastMCP:
    mcp = FastMCP("target")

    @mcp.tool
    def ok() -> str:
        return "ok"

    @mcp.tool
    async def hang() -> str:
        await asyncio.sleep(3600)
        return "never"

    @mcp.tool
    def no_results() -> ToolResult:
        return ToolResult(content="no results", is_error=True)

    return mcp


if __name__ == "__main__":
    build_target().run(transport="http", host="127.0.0.1", port=int(sys.argv[1]),
                       path="/mcp", show_banner=False)
