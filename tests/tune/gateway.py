"""A user's MCP server with a breaker, for `cblab tune --verify` tests: a gateway that
serves a dependency's tools (an MCP server, reached through the fault proxy) behind
`CircuitBreakerMiddleware`, with cblab's admin routes (`mount_routes`).

    python -m tests.tune.gateway --upstream http://127.0.0.1:P/mcp --admin-token T \
        --ready-file ready.json

The breaker under test is the middleware's breaker of each tool (named after it);
its clock is the system's monotonic clock (the default). Writes
``{"url", "mcp_url", "pid"}`` to the ready file once listening; serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path


async def _serve(args: argparse.Namespace) -> None:
    import logging

    from fastmcp import Client
    from fastmcp.server import create_proxy

    from cblab.backend.cli import serve_until_signal, write_ready_file
    from cblab.integrations import CircuitBreakerMiddleware, mount_routes
    from cblab.server.app import ServerRunner

    # one connected session to the dependency, shared by every call (fastmcp would
    # otherwise open a session per call: hundreds of ms on a busy machine)
    upstream = Client(args.upstream)
    await upstream.__aenter__()
    # fastmcp logs every failed tool call with a formatted traceback: at 20 injected
    # errors a second that alone can starve the server on a loaded machine
    logging.getLogger("fastmcp").setLevel(logging.CRITICAL)
    mcp = create_proxy(upstream, name="gateway")
    protection = CircuitBreakerMiddleware(config=json.loads(args.config),
                                          call_timeout=args.deadline)
    mcp.add_middleware(protection)
    await protection.check(mcp)  # every tool's breaker exists now: --apply can reach it
    # pay the first tool call's one-off costs (imports, output schemas: tens of seconds
    # on a loaded machine, blocking the loop) before saying ready, not during a replay
    async with Client(mcp) as client:
        await client.call_tool_mcp("get_forecast", {"city": "Oslo"})
    mount_routes(mcp, protection, admin_token=args.admin_token)
    runner = ServerRunner(mcp)
    stop = asyncio.Event()

    async def started() -> None:
        await runner.start()
        write_ready_file(args.ready_file, {"url": runner.url, "mcp_url": runner.mcp_url,
                                           "pid": os.getpid()})

    async def shutdown() -> None:
        await runner.stop()
        await upstream.__aexit__(None, None, None)

    await serve_until_signal(started, stop.wait, stop.set, shutdown, args.ready_file)


def main() -> None:
    parser = argparse.ArgumentParser(prog="gateway")
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--admin-token", required=True)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--config", default='{"failure_threshold": 5, "timeout": 30}')
    parser.add_argument("--deadline", type=float, default=2.0)
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
