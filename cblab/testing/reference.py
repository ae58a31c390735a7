"""The official reference MCP servers, as installed by `make ref-servers`.

They come from the registries (PyPI's `mcp-server-time`, `mcp-server-git`,
`mcp-server-fetch`; npm's `@modelcontextprotocol/server-everything`), each in an
environment of its own under ``<venv>/ref`` so their pins never move cblab's own
`mcp`/`fastmcp`. ``CBLAB_REF_DIR`` points elsewhere. Nothing here installs: a
missing server raises `FileNotFoundError` saying how to get it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

__all__ = [
    "EverythingHttp",
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


class EverythingHttp:
    """npm's "everything" server over Streamable HTTP at ``http://127.0.0.1:PORT/mcp``, a
    child process that a test kills (SIGKILL) and starts again on the same port.

        server = await EverythingHttp(log=tmp_path / "everything.log").start()
        ...
        server.kill()              # gone, as a crash is
        await server.start()       # back on the same port
    """

    def __init__(self, log: Path | None = None) -> None:
        from cblab.stores.server import free_port  # one loopback-port helper everywhere

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self, timeout: float = 60.0) -> EverythingHttp:
        """Start it and wait until it listens (or raise, with its log's tail)."""
        env = {**os.environ, "PORT": str(self.port)}
        command = everything_command("streamableHttp")
        if self.log is None:
            self.process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)
        else:
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the everything server exited ({self.process.returncode})"
                                   f"{self._log_tail()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if loop.time() > deadline:
                    self.kill()
                    raise TimeoutError(f"the everything server did not listen on port "
                                       f"{self.port} within {timeout:g} s{self._log_tail()}"
                                       ) from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return self

    def kill(self) -> None:
        """SIGKILL, as a crash (the port stays this server's for `start`)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    async def stop(self) -> None:
        self.kill()

    def _log_tail(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return ": " + self.log.read_text(errors="replace")[-2000:]
