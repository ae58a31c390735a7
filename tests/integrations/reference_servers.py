"""The registry's reference MCP servers as tests use them: killed (SIGKILL) and brought back.

`EverythingHttp` (`cblab.testing.reference`): npm's "everything" server over
Streamable HTTP on an ephemeral port that a restart keeps. `stdio_command`: a stdio server's command wrapped so a
test can kill the process the client spawned (its pid lands in a file) and keep it
away for a while (while a flag file exists, every respawn exits at once).
"""

from __future__ import annotations

import os
import shlex
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastmcp import Context, FastMCP
from fastmcp.server.lifespan import lifespan

from cblab.integrations import CircuitBreakerMiddleware, ReconnectingClient
from cblab.stores.server import free_port  # one loopback-port helper for every test
from cblab.testing.reference import EverythingHttp

__all__ = ["EverythingHttp", "StdioServer", "free_port", "relay_server"]


class StdioServer:
    """A stdio server command whose spawned process a test can kill and keep down."""

    def __init__(self, command: list[str], work_dir: Path) -> None:
        self.pid_file = work_dir / "server.pid"
        self.down_flag = work_dir / "server.down"
        script = (f"test -e {shlex.quote(str(self.down_flag))} && exit 1; "
                  f"echo $$ > {shlex.quote(str(self.pid_file))}; "
                  f"exec {shlex.join(command)}")
        self.command = ["/bin/sh", "-c", script]

    def pid(self) -> int:
        return int(self.pid_file.read_text())

    def kill_and_keep_down(self) -> int:
        """SIGKILL the running server; respawns fail until `allow_up`. Returns the old pid."""
        self.down_flag.touch()
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        return pid

    def allow_up(self) -> None:
        self.down_flag.unlink()


def relay_server(dependency: ReconnectingClient, breaker: dict[str, Any], tool: str = "echo",
                 arguments: dict[str, Any] | None = None,
                 ) -> tuple[FastMCP, CircuitBreakerMiddleware]:
    """A user's server whose tool `relay` calls `tool` on another MCP server (by default
    the everything server's echo of `message`) via a client held in its lifespan,
    protected by the middleware."""
    @lifespan
    async def hold(server: FastMCP) -> AsyncIterator[dict[str, Any]]:
        async with dependency:
            yield {"dependency": dependency}

    mcp = FastMCP("relay", lifespan=hold)

    @mcp.tool
    async def relay(ctx: Context, message: str = "x") -> str:
        """Echo through the dependency."""
        result = await ctx.lifespan_context["dependency"].call_tool(
            tool, {"message": message} if arguments is None else arguments)
        return str(result.content[0].text)

    return mcp, CircuitBreakerMiddleware(config=breaker).install(mcp)
