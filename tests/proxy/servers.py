"""MCP servers written in the tests: the upstreams the proxy is put in front of.

`build_upstream()` is served over Streamable HTTP in-process; `python servers.py`
serves the same server over stdio (the proxy's stdio upstream).
"""

from __future__ import annotations

import os

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server.dependencies import get_http_headers
from pydantic import BaseModel


class Point(BaseModel):
    x: int
    y: int


class Route(BaseModel):
    """Nested models: a nested output schema."""

    points: list[Point]


def build_upstream() -> FastMCP:
    mcp = FastMCP("test-upstream", instructions="A server for the proxy's tests.")

    @mcp.tool(tags={"geo"})
    def route(n: int = 2) -> Route:
        """`n` points on a line."""
        return Route(points=[Point(x=i, y=i) for i in range(n)])

    @mcp.tool
    def echo(x: int) -> int:
        """Return x."""
        return x

    @mcp.tool
    def users(login: str = "octocat") -> dict[str, str]:
        """Named like the simulator's service, so seeds line up."""
        return {"login": login}

    @mcp.tool
    def not_found(key: str) -> str:
        """A business error: an isError result from the upstream itself."""
        raise ToolError(f"no such key {key!r}")

    @mcp.tool
    def seen_headers() -> dict[str, str]:
        """The HTTP headers this upstream received (all of them)."""
        return get_http_headers(include_all=True)

    @mcp.tool
    def seen_env(name: str) -> str:
        """An environment variable as this server's process sees it ("" if unset)."""
        return os.environ.get(name, "")

    @mcp.tool
    def big(size: int) -> str:
        """`size` bytes of text: an answer larger than the proxy takes."""
        return "x" * size

    @mcp.resource("test://greeting")
    def greeting() -> str:
        return "hello from upstream"

    @mcp.prompt
    def ask(topic: str) -> str:
        return f"Tell me about {topic}."

    return mcp


if __name__ == "__main__":
    build_upstream().run(show_banner=False)
