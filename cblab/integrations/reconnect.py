"""A long-lived `fastmcp.Client` that reconnects after its server went away.

A `fastmcp.Client` whose server died keeps a dead session: every later call fails
at once ("All connection attempts failed", "Connection closed") without touching
the network, even after the server is back, so a breaker in front of it could
never close again. `ReconnectingClient` notices and opens a fresh session:

- before a call, when the session is gone (its task ended, a stdio server's pipes
  closed) or the last call failed as a connection failure (see
  `is_connection_failure`); for stdio a fresh session respawns the server;
- before a half-open trial (`trial=True`, or inside `half_open_trial(True)`), unless
  the session answered something since its last failure: the trial must reach the
  real server, not a session that died while the breaker was open.

At most one reconnect is in flight: concurrent callers wait for it and share its
outcome; a failed reconnect raises to the callers that waited for it (it counts as
their call failing), and the next call tries again. Pacing retries while the
server stays down is the breaker's job (OPEN refuses without calling).

Use it where a server holds a client to its dependency in its lifespan:

    @lifespan
    async def deps(server):
        async with ReconnectingClient(Client("http://127.0.0.1:9000/mcp")) as dep:
            yield {"dep": dep}
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from fastmcp import Client

from cblab import ConfigError

from .classify import (
    _TIMEOUTS,
    _MCPError,
    exception_chain,
    is_local_connection_closed,
    is_session_terminated,
    is_stream_broken,
)
from .classify import _TRANSPORT as _TRANSPORT_ERRORS

__all__ = [
    "ReconnectingClient",
    "as_trial",
    "half_open_trial",
    "in_half_open_trial",
    "is_connection_failure",
]

#: Set by the breaker integrations around a half-open trial call, so a dependency
#: client inside the tool knows the call must reach the real server.
_TRIAL: contextvars.ContextVar[bool] = contextvars.ContextVar("cblab_half_open_trial",
                                                              default=False)

# Request methods that talk to the server: they reconnect first and note how they end.
_REQUESTS = frozenset({
    "call_tool", "call_tool_mcp", "list_tools", "list_tools_mcp", "list_resources",
    "list_resources_mcp", "list_resource_templates", "list_resource_templates_mcp",
    "read_resource", "read_resource_mcp", "list_prompts", "list_prompts_mcp",
    "get_prompt", "get_prompt_mcp", "complete", "complete_mcp", "ping",
})

# What the client says when its session is gone (fastmcp 4.2 / mcp 2.x).
_DEAD_SESSION = ("Client failed to connect", "Server session was closed unexpectedly",
                 "Session task completed unexpectedly", "Client is not connected")


@contextlib.contextmanager
def half_open_trial(active: bool = True) -> Iterator[None]:
    """Mark the calls made inside as a half-open trial (or not), for this task."""
    token = _TRIAL.set(active)
    try:
        yield
    finally:
        _TRIAL.reset(token)


def in_half_open_trial() -> bool:
    return _TRIAL.get()


def as_trial(call: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
    """`call`, run as a half-open trial (the middleware wraps `call_next` with it)."""
    async def trial(context: Any) -> Any:
        with half_open_trial():
            return await call(context)

    return trial


def _closed_stream_errors() -> tuple[type[BaseException], ...]:
    try:
        import anyio
    except ImportError:  # pragma: no cover - anyio comes with fastmcp
        return ()
    return (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream)


_TRANSPORT = (*_TRANSPORT_ERRORS, *_closed_stream_errors())

def is_connection_failure(exc: BaseException) -> bool:
    """Did this call fail because the session or connection is gone (not merely slow)?"""
    for link in exception_chain(exc):
        if isinstance(link, _TIMEOUTS):
            return False  # a slow server still holds the session
        if isinstance(link, _TRANSPORT):
            return True
        if is_local_connection_closed(link) or is_session_terminated(link) or (
                is_stream_broken(link)):
            return True
        if isinstance(link, RuntimeError) and str(link).startswith(_DEAD_SESSION):
            return True
    return False


class ReconnectingClient:
    """Hold a `fastmcp.Client` across calls and reopen its session when it dies.

    Request methods (`call_tool`, `list_tools`, `read_resource`, ...) reconnect first
    when needed (see the module doc); everything else passes to the client.
    `connect_timeout`: seconds one reconnect may take (default: the client's own
    init timeout, which may be none). `reconnects` counts fresh sessions after the first.
    """

    def __init__(self, client: Client, *, connect_timeout: float | None = None) -> None:
        if not isinstance(client, Client):
            raise ConfigError(f"client must be a fastmcp.Client, got {client!r}")
        if connect_timeout is not None and (
            isinstance(connect_timeout, bool) or not isinstance(connect_timeout, int | float)
            or not connect_timeout > 0
        ):
            raise ConfigError(f"connect_timeout must be seconds > 0, got {connect_timeout!r}")
        self.client = client
        self.connect_timeout = connect_timeout
        self.reconnects = 0
        self._entered = False
        self._suspect = False  # the last call failed as a connection failure
        self._alive_since_failure = True
        self._pending: asyncio.Task[None] | None = None
        # False for a client that does not report its own session (a subclass that
        # connects lazily): then only failed calls make it reconnect.
        self._observable = True

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> ReconnectingClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the session (once; later calls reconnect on their own)."""
        if not self._entered:
            await self._open()
            self._entered = True

    async def close(self) -> None:
        """Close the session (and a stdio server) for good; errors of a dead one are ignored."""
        self._entered = False
        pending = self._pending
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        await self._shut()

    # --- health -------------------------------------------------------------------------

    def session_gone(self) -> bool:
        """The session cannot carry a call: never opened, its task ended, or its pipes closed."""
        client = self.client
        if not client.is_connected():
            return True
        state = getattr(client, "_session_state", None)  # fastmcp 4.2's session runner
        task = getattr(state, "session_task", None)
        if task is not None and task.done():
            return True
        dead = getattr(client.transport, "_is_session_dead", None)  # stdio transports
        return bool(callable(dead) and dead())

    def needs_reconnect(self, trial: bool = False) -> bool:
        if self._suspect or (self._observable and self.session_gone()):
            return True
        return trial and not self._alive_since_failure

    def note_success(self) -> None:
        self._suspect = False
        self._alive_since_failure = True

    def note_failure(self, exc: BaseException) -> None:
        """A call ended with `exc`: any failure makes the next trial reconnect first; a
        connection failure makes the next call of any kind reconnect first."""
        if not isinstance(exc, Exception):
            return  # cancelled: says nothing about the server
        self._alive_since_failure = False
        if is_connection_failure(exc):
            self._suspect = True

    # --- reconnecting -------------------------------------------------------------------

    async def ensure(self, trial: bool | None = None) -> None:
        """Reconnect if the session is gone, suspect, or (`trial`) unproven since a failure."""
        if trial is None:
            trial = in_half_open_trial()
        if not self.needs_reconnect(trial):
            return
        pending = self._pending
        if pending is None or pending.done():
            pending = self._pending = asyncio.get_running_loop().create_task(
                self._reopen(), name="cblab-reconnect")
            pending.add_done_callback(_retrieve)  # every waiter may have been cancelled
        await asyncio.shield(pending)  # a cancelled caller leaves it to the others

    async def _reopen(self) -> None:
        await self._shut()
        await self._open()
        self.reconnects += 1

    async def _open(self) -> None:
        if self.connect_timeout is None:
            await self.client.__aenter__()
        else:
            async with asyncio.timeout(self.connect_timeout):
                await self.client.__aenter__()
        self._suspect = False
        self._alive_since_failure = True
        self._observable = not self.session_gone()

    async def _shut(self) -> None:
        client = self.client
        try:
            await client.close()  # every hold on the session, then the transport
        except Exception:  # a dead session re-raises its transport error on close
            with contextlib.suppress(Exception):
                await client.transport.close()

    async def request(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """`await client.<method>(...)` after reconnecting if needed; notes how it ended."""
        await self.ensure()
        try:
            result = await getattr(self.client, method)(*args, **kwargs)
        except BaseException as exc:
            if _is_answer(exc):
                self.note_success()  # the server answered (an isError result, a bad request)
            else:
                self.note_failure(exc)
            raise
        self.note_success()
        return result

    def __getattr__(self, attribute: str) -> Any:
        if attribute in _REQUESTS:
            async def requesting(*args: Any, **kwargs: Any) -> Any:
                return await self.request(attribute, *args, **kwargs)

            requesting.__name__ = attribute
            return requesting
        return getattr(self.client, attribute)

    def __repr__(self) -> str:
        return f"ReconnectingClient({self.client.transport!r}, reconnects={self.reconnects})"


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a failed reconnect's error as seen (its waiters re-raise it, if any are left)."""
    if not task.cancelled():
        task.exception()


def _is_answer(exc: BaseException) -> bool:
    """The server answered: a ToolError (an isError result) or a JSON-RPC error it sent."""
    from fastmcp.exceptions import ToolError

    if isinstance(exc, ToolError):
        return True
    if _MCPError is not None and isinstance(exc, _MCPError):
        return not (is_local_connection_closed(exc) or is_session_terminated(exc)
                    or is_stream_broken(exc) or exc.error.code == -32001)  # -32001: our timeout
    return False
