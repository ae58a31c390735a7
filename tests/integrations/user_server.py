"""A FastMCP server written the way a user would write one (not cblab's demo), protected
by the middleware in one line. Run it over stdio:

    python -m tests.integrations.user_server USERS_URL ORDERS_URL
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastmcp import Context, FastMCP
from fastmcp.server.lifespan import lifespan
from fastmcp.tools import ToolResult

from cblab.integrations import CircuitBreakerMiddleware

PROTECTION = {
    "config": {"failure_threshold": 2, "timeout": 30},
    "groups": {"search_*": "search-api"},
    "unprotected": ["ping"],
    "call_timeout": 2.0,
    "status_tools": True,
}


def build_user_server(users_url: str, orders_url: str, **protection: Any) -> FastMCP:
    @lifespan
    async def http(server: FastMCP) -> AsyncIterator[dict[str, Any]]:
        async with httpx.AsyncClient(trust_env=False) as client:
            yield {"http": client}

    mcp = FastMCP("shop", lifespan=http)

    async def get(ctx: Context, url: str) -> dict[str, Any]:
        response = await ctx.lifespan_context["http"].get(url)
        response.raise_for_status()  # 5xx/429 -> HTTPStatusError: counted by the middleware
        return response.json()

    @mcp.tool
    async def get_user(username: str, ctx: Context) -> dict[str, Any]:
        """A user by login."""
        return await get(ctx, f"{users_url}/users/{username}")

    @mcp.tool
    async def get_order(order_id: int, ctx: Context) -> dict[str, Any]:
        """An order by id."""
        return await get(ctx, f"{orders_url}/orders/{order_id}")

    @mcp.tool
    async def find_user(username: str, ctx: Context) -> ToolResult:
        """Search users: "no results" is a business error (isError), not an outage."""
        response = await ctx.lifespan_context["http"].get(f"{users_url}/users/{username}")
        if response.status_code == 404:
            return ToolResult(content=f"no results for {username!r}", is_error=True)
        response.raise_for_status()
        return ToolResult(structured_content=response.json())

    @mcp.tool
    async def search_users(username: str, ctx: Context) -> dict[str, Any]:
        """Through the shared search-api breaker."""
        return await get(ctx, f"{users_url}/users/{username}")

    @mcp.tool
    async def search_orders(order_id: int, ctx: Context) -> dict[str, Any]:
        """Also through the shared search-api breaker."""
        return await get(ctx, f"{orders_url}/orders/{order_id}")

    @mcp.tool
    def ping() -> str:
        """Never protected."""
        return "pong"

    CircuitBreakerMiddleware(**{**PROTECTION, **protection}).install(mcp)
    return mcp


if __name__ == "__main__":
    build_user_server(sys.argv[1], sys.argv[2]).run(transport="stdio", show_banner=False)
