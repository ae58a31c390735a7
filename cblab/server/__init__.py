"""The instrumented FastMCP demo server: the write-up's tools behind cblab breakers.

    from cblab.server import ServerSettings, build_server, ServerRunner

    mcp = build_server(ServerSettings(users_url=..., orders_url=..., admin_token=...))
    runner = await ServerRunner(mcp).start()   # inside a running loop (Jupyter)

`cblab serve` runs it as a process (see `cblab.server.cli`). The names below load
on first use, so `cblab serve --help` (and a bad flag) answer before fastmcp loads.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# Rich tracebacks make every tool exception slow; fastmcp reads this at import.
os.environ.setdefault("FASTMCP_ENABLE_RICH_TRACEBACKS", "false")

if TYPE_CHECKING:
    from .app import MCP_PATH, LabServer, ServerRunner, ServerSettings, build_server, lab_of
    from .tools import MAX_ORDER_ID, TOOL_BREAKERS

_LAZY = {
    "MCP_PATH": ".app",
    "LabServer": ".app",
    "ServerRunner": ".app",
    "ServerSettings": ".app",
    "build_server": ".app",
    "lab_of": ".app",
    "MAX_ORDER_ID": ".tools",
    "TOOL_BREAKERS": ".tools",
}

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cblab.server' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
