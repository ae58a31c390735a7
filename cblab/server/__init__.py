"""The instrumented FastMCP demo server: the write-up's tools behind cblab breakers.

    from cblab.server import ServerSettings, build_server, ServerRunner

    mcp = build_server(ServerSettings(users_url=..., orders_url=..., admin_token=...))
    runner = await ServerRunner(mcp).start()   # inside a running loop (Jupyter)

`cblab serve` runs it as a process (see `cblab.server.cli`).
"""

from __future__ import annotations

import os

# Rich tracebacks make every tool exception slow; fastmcp reads this at import.
os.environ.setdefault("FASTMCP_ENABLE_RICH_TRACEBACKS", "false")

from .app import MCP_PATH, LabServer, ServerRunner, ServerSettings, build_server, lab_of
from .tools import MAX_ORDER_ID, TOOL_BREAKERS

__all__ = [
    "MAX_ORDER_ID",
    "MCP_PATH",
    "TOOL_BREAKERS",
    "LabServer",
    "ServerRunner",
    "ServerSettings",
    "build_server",
    "lab_of",
]
