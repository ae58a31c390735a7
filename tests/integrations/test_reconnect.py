"""ReconnectingClient's rules, one layer at a time: what counts as a connection failure,
when a reconnect is due, and its options. (Real restarts: test_restarts.py.)"""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from mcp.shared.exceptions import MCPError

from cblab import ConfigError
from cblab.integrations import GuardedClient, ReconnectingClient
from cblab.integrations.reconnect import half_open_trial, in_half_open_trial, is_connection_failure


def _chained(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize(("error", "gone"), [
    (httpx2.ConnectError("All connection attempts failed"), True),
    (RuntimeError("Client failed to connect: All connection attempts failed"), True),
    (MCPError(-32000, "Connection closed"), True),
    (MCPError(-32600, "Session terminated"), True),
    (MCPError(-32000, "SSE stream ended and reconnection attempts were exhausted"), True),
    (anyio.ClosedResourceError(), True),
    (_chained(ToolError("relay failed"), ConnectionResetError()), True),
    (MCPError(-32001, "Request timed out"), False),  # slow, but the session holds
    (httpx2.ReadTimeout("timed out"), False),
    (MCPError(-32000, "injected fault: upstream answered 429", {"status": 429}), False),
    (MCPError(-32602, "Invalid params"), False),
    (ToolError("no results"), False),
    (ValueError("bad"), False),
])
def test_what_counts_as_a_connection_failure(error: BaseException, gone: bool) -> None:
    assert is_connection_failure(error) is gone


async def test_when_a_reconnect_is_due() -> None:
    mcp = FastMCP("here")
    async with ReconnectingClient(Client(mcp)) as connection:
        assert not connection.needs_reconnect() and not connection.needs_reconnect(trial=True)
        connection.note_failure(MCPError(-32001, "Request timed out"))
        assert not connection.needs_reconnect()  # a slow call: the session holds
        assert connection.needs_reconnect(trial=True)  # but a trial must reach the server
        connection.note_success()
        assert not connection.needs_reconnect(trial=True)  # it answered since
        connection.note_failure(MCPError(-32000, "Connection closed"))
        assert connection.needs_reconnect()  # any call reconnects first
        with half_open_trial():
            assert in_half_open_trial()
            await connection.ensure()
        assert not in_half_open_trial()
        assert connection.reconnects == 1 and not connection.needs_reconnect(trial=True)
    assert connection.session_gone()


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match=r"client must be a fastmcp\.Client"):
        ReconnectingClient("http://127.0.0.1:1/mcp")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="connect_timeout must be seconds > 0"):
        ReconnectingClient(Client("http://127.0.0.1:1/mcp"), connect_timeout=0)


async def test_a_client_that_connects_lazily_is_not_reopened_on_every_call() -> None:
    # The live lab's guard hop wraps such a client: it opens its own inner session.
    mcp = FastMCP("here")

    @mcp.tool
    def ping() -> str:
        return "pong"

    class Lazy(Client):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(mcp)
            self.inner = Client(mcp)

        async def __aenter__(self) -> Lazy:
            return self  # connects on the first call instead

        async def call_tool(self, name: str, arguments: Any = None, **kwargs: Any) -> Any:
            if not self.inner.is_connected():
                await self.inner.__aenter__()
            return await self.inner.call_tool(name, arguments, **kwargs)

    lazy = Lazy()
    async with GuardedClient(lazy, name="here") as guard:
        for _ in range(5):
            assert (await guard.call_tool("ping")).data == "pong"
        assert guard.connection.reconnects == 0
    await lazy.inner.close()
