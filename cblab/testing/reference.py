"""The official reference MCP servers, as installed by `make ref-servers`.

They come from the registries (PyPI's `mcp-server-time`, `mcp-server-git`,
`mcp-server-fetch`; npm's `@modelcontextprotocol/server-everything`), each in an
environment of its own under ``<venv>/ref`` so their pins never move cblab's own
`mcp`/`fastmcp`. ``CBLAB_REF_DIR`` points elsewhere. Nothing here installs: a
missing server raises `FileNotFoundError` saying how to get it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__ = [
    "everything_command",
    "fetch_server_command",
    "git_server_command",
    "reference_dir",
    "time_server_command",
]

_HOW = "run `make ref-servers` (installs them from PyPI and npm into <venv>/ref)"


def reference_dir() -> Path:
    """``$CBLAB_REF_DIR``, else ``ref/`` inside the running virtual environment."""
    return Path(os.environ.get("CBLAB_REF_DIR") or Path(sys.prefix) / "ref")


def _pypi_server(name: str) -> str:
    path = reference_dir() / name / "bin" / name
    if not path.exists():
        raise FileNotFoundError(f"reference MCP server {name} not found at {path}: {_HOW}")
    return str(path)


def time_server_command(timezone: str = "UTC") -> list[str]:
    """`mcp-server-time` over stdio (tools get_current_time, convert_time)."""
    return [_pypi_server("mcp-server-time"), "--local-timezone", timezone]


def git_server_command(repository: str | Path) -> list[str]:
    """`mcp-server-git` over stdio, limited to one repository."""
    return [_pypi_server("mcp-server-git"), "--repository", str(repository)]


def fetch_server_command() -> list[str]:
    """`mcp-server-fetch` over stdio (tool fetch; needs a reachable URL to succeed)."""
    return [_pypi_server("mcp-server-fetch")]


def everything_command(transport: str = "stdio") -> list[str]:
    """npm's "everything" server: ``stdio`` or ``streamableHttp`` (port from $PORT,
    path /mcp). Has resources, templates, prompts and a task-required tool."""
    script = (reference_dir() / "npm" / "node_modules" / "@modelcontextprotocol"
              / "server-everything" / "dist" / "index.js")
    node = shutil.which("node")
    if not script.exists() or node is None:
        raise FileNotFoundError(f"reference MCP server everything not found at {script}: {_HOW}")
    return [node, str(script), transport]
