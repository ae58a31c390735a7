"""The upstream MCP server: a Streamable HTTP URL or a stdio command line.

`Upstream.url("http://host:port/mcp")` or `Upstream.command("python server.py")`
(a string is split like a shell would, a list is taken as is: the ``command`` and
``args`` of a desktop client's config). `probe()` connects once and lists the
tools, so a server that cannot be reached, a command that fails to start or a
server that is not MCP is a `ProxyError` with a sentence saying which, never a
traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastmcp import Client

__all__ = ["ProxyError", "Upstream", "error_reason"]

#: cblab's own secrets: never handed to an upstream command
_SECRET_ENV = frozenset({"CBLAB_PROXY_TOKEN", "CBLAB_BACKEND_TOKEN", "CBLAB_ADMIN_TOKEN"})


class ProxyError(RuntimeError):
    """The proxy cannot start or cannot do what was asked; the message says why."""


@dataclass(frozen=True)
class Upstream:
    """Where the proxy forwards to. Build with `Upstream.url` or `Upstream.command`."""

    kind: str  # "http" or "stdio"
    target: str | tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None

    @classmethod
    def url(cls, url: str) -> Upstream:
        if not isinstance(url, str):
            raise ProxyError(f"upstream URL must be a string, got {url!r}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ProxyError(
                f"upstream must be an http(s) URL such as http://127.0.0.1:8000/mcp, got {url!r}"
            )
        return cls("http", url)

    @classmethod
    def command(cls, command: str | Sequence[str], *, env: Mapping[str, str] | None = None,
                cwd: str | None = None) -> Upstream:
        if isinstance(command, str):
            try:
                argv = tuple(shlex.split(command))
            except ValueError as exc:
                raise ProxyError(f"cannot parse upstream command {command!r}: {exc}") from None
        elif isinstance(command, Sequence) and all(isinstance(a, str) for a in command):
            argv = tuple(command)
        else:
            raise ProxyError(f"upstream command must be a string or a list of strings, got {command!r}")
        if not argv:
            raise ProxyError("upstream command is empty")
        if shutil.which(argv[0], path=(env or {}).get("PATH", os.environ.get("PATH"))) is None:
            raise ProxyError(f"upstream command {argv[0]!r} not found (not a file, not on PATH)")
        return cls("stdio", argv, dict(env or {}), cwd)

    @classmethod
    def parse(cls, spec: Any) -> Upstream:
        """A URL string, a command (string with spaces or a list), or an Upstream."""
        if isinstance(spec, Upstream):
            return spec
        if isinstance(spec, str) and "://" in spec.split(" ", 1)[0]:
            return cls.url(spec)
        return cls.command(spec)

    def describe(self) -> str:
        if self.kind == "http":
            return str(self.target)
        return shlex.join(self.target)

    def client(self) -> Client:
        """A disconnected client for this upstream (the proxy opens sessions from it)."""
        if self.kind == "http":
            from fastmcp.client.transports import StreamableHttpTransport

            return Client(StreamableHttpTransport(str(self.target)))
        from fastmcp.client.transports import StdioTransport

        argv = list(self.target)
        # the user's own environment (their virtualenv, API keys), minus cblab's tokens
        env = {k: v for k, v in os.environ.items() if k not in _SECRET_ENV}
        env.update(self.env)
        return Client(StdioTransport(argv[0], argv[1:], env=env, cwd=self.cwd, keep_alive=True,
                                     log_file=_stderr_or_log_file()))

    async def connect(self, stack: contextlib.AsyncExitStack, timeout: float = 15.0
                      ) -> tuple[Client, list[str]]:
        """Open one session (closed with `stack`) and list the tools.

        One long-lived session, not one per proxied call: fastmcp's proxy opens a
        fresh connection per request otherwise, which costs ~40 ms a call on
        loopback. ProxyError with a clear reason when the upstream cannot be used.
        """
        client = self.client()
        # A stdio server is kept alive between sessions (keep_alive): closing the
        # transport, after the session, is what ends its process.
        stack.push_async_callback(client.transport.close)
        try:
            async with asyncio.timeout(timeout):
                await stack.enter_async_context(client)
                tools = await client.list_tools()
        except TimeoutError:
            raise ProxyError(
                f"upstream {self.describe()} did not answer within {timeout:g} s"
            ) from None
        except Exception as exc:
            raise ProxyError(f"cannot reach upstream {self.describe()}: {error_reason(exc)}") from None
        return client, [tool.name for tool in tools]


def _stderr_or_log_file() -> Path | None:
    """Where the server's stderr goes: ours (None) when it is a real file; in a Jupyter
    kernel (no file descriptor behind sys.stderr) a log file in the temp directory."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return Path(tempfile.gettempdir()) / f"cblab-upstream-{os.getpid()}.log"
    return None


def error_reason(exc: BaseException) -> str:
    """The innermost cause, in words (connection refused, no such file, ...).

    Walks causes, contexts and exception groups (anyio wraps a failed connect in
    one): an OS error's message wins, else the deepest non-empty message.
    """
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 50:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo.extend(getattr(current, "exceptions", ()) or ())
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    for error in reversed(seen):
        if isinstance(error, OSError) and (error.errno or error.strerror):
            return (os.strerror(error.errno) if error.errno else str(error.strerror)).lower()
    for error in reversed(seen):
        text = str(error).strip()
        if text and not isinstance(error, BaseExceptionGroup):
            return text.splitlines()[0][:300]
    return type(exc).__name__
