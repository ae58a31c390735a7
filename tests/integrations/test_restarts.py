"""A breaker in front of a server that went away closes again once it is back.

Real third-party servers from the registries (`cblab.testing.reference`): npm's
"everything" over Streamable HTTP (SIGKILLed, restarted on the same port) and PyPI's
`mcp-server-time` over stdio (the process the client spawned is SIGKILLed; respawns
fail until the test lets it up). A long-lived `GuardedClient`, and the middleware in
a server of the test's own whose tool calls the reference server through a
`ReconnectingClient` held in its lifespan: each must OPEN, then CLOSE within the
breaker's `timeout` plus a few seconds of the server's return.
"""

from __future__ import annotations

import time
from typing import Any

from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from cblab import CircuitOpenError
from cblab.integrations import GuardedClient, ReconnectingClient
from cblab.server import ServerRunner
from cblab.testing.reference import time_server_command

from ..helpers import eventually
from .reference_servers import StdioServer, relay_server

TIMEOUT = 0.5  # the breaker's open period
BREAKER = {"failure_threshold": 2, "success_threshold": 1, "timeout": TIMEOUT}
BACK_WITHIN = TIMEOUT + 8.0  # "a few seconds" on a loaded 2-core machine
# How a dead server shows on the client side (the guard's error_type column).
CONNECTION_FAILURES = {"connection_closed", "session_terminated", "ConnectError",
                       "RemoteProtocolError", "ReadError", "RuntimeError"}


async def _outcome(call: Any) -> str:
    """One call: "ok", "refused" (the breaker) or "failed" (the server)."""
    try:
        await call()
    except CircuitOpenError:
        return "refused"
    except Exception:
        return "failed"
    return "ok"


async def _opens(call: Any) -> list[str]:
    """Call until the breaker refuses; the outcomes on the way."""
    seen: list[str] = []

    async def refused() -> bool:
        seen.append(await _outcome(call))
        return seen[-1] == "refused"

    await eventually(refused, timeout=30, what="the breaker to open", every=0.02)
    return seen


async def _closes_again(call: Any) -> float:
    """Call until one succeeds; seconds it took (from now, the server's return)."""
    started = time.monotonic()
    await eventually(lambda: _is_ok(call), timeout=BACK_WITHIN + 5,
                     what="a call to succeed after the server came back", every=0.05)
    return time.monotonic() - started


async def _is_ok(call: Any) -> bool:
    return await _outcome(call) == "ok"


def _failures(guard: GuardedClient) -> set[str]:
    """The error types of the guard's failed calls."""
    return {e["error_type"] for e in guard.events() if e.get("outcome") == "failure"}


async def _away_and_back(call: Any, go_away: Any, come_back: Any) -> None:
    """The server goes away: two failures open the breaker; it comes back: a call
    succeeds within the breaker's timeout plus a few seconds."""
    go_away()
    seen = await _opens(call)
    assert seen.count("failed") == 2 and "ok" not in seen, seen
    back = come_back()
    if back is not None:
        await back
    assert await _closes_again(call) < BACK_WITHIN


def _relay(client: Client) -> Any:
    """A call to the relay tool: refused by the middleware (CircuitOpenError), failed, or ok."""
    async def relay() -> Any:
        result = await client.call_tool("relay", {}, raise_on_error=False)
        if (result.structured_content or {}).get("error") == "dependency_unavailable":
            raise CircuitOpenError("relay", 0.0)
        if result.is_error:
            raise RuntimeError(result.content[0].text)
        return result

    return relay


async def test_guarded_client_over_http_closes_after_the_server_restarts(everything) -> None:
    guard = GuardedClient(Client(everything.url, timeout=5), name="everything", config=BREAKER)
    async with guard:
        async def echo() -> Any:
            return await guard.call_tool("echo", {"message": "hi"})

        assert (await echo()).content[0].text == "Echo: hi"
        await _away_and_back(echo, everything.kill, everything.start)
        assert guard.status()["everything/echo"]["state"] == "closed"
        assert guard.connection.reconnects >= 1
        assert (await echo()).content[0].text == "Echo: hi"
    failures = _failures(guard)
    assert failures and failures <= CONNECTION_FAILURES, failures


async def test_guarded_client_over_stdio_respawns_a_crashed_server(tmp_path) -> None:
    server = StdioServer(time_server_command(), tmp_path)
    client = Client(StdioTransport(server.command[0], server.command[1:]), timeout=5)
    guard = GuardedClient(client, name="time", config=BREAKER)
    async with guard:
        async def now() -> Any:
            return await guard.call_tool("get_current_time", {"timezone": "UTC"})

        assert "UTC" in (await now()).content[0].text
        first = server.pid()
        await _away_and_back(now, server.kill_and_keep_down, server.allow_up)
        assert server.pid() != first  # a new process answered
        assert guard.status()["time/get_current_time"]["state"] == "closed"
    failures = _failures(guard)
    assert "connection_closed" in failures and failures <= CONNECTION_FAILURES, failures


async def test_a_crashed_stdio_server_that_respawns_at_once_costs_one_failure(tmp_path) -> None:
    server = StdioServer(time_server_command(), tmp_path)
    client = Client(StdioTransport(server.command[0], server.command[1:]), timeout=5)
    async with GuardedClient(client, name="time", config=BREAKER) as guard:
        await guard.call_tool("get_current_time", {"timezone": "UTC"})
        first = server.kill_and_keep_down()
        server.allow_up()
        assert await _outcome(lambda: guard.call_tool("get_current_time", {"timezone": "UTC"})
                              ) == "failed"  # the call in flight on the dead process
        result = await guard.call_tool("get_current_time", {"timezone": "UTC"})
        assert "UTC" in result.content[0].text and server.pid() != first
        assert guard.connection.reconnects == 1
        assert guard.status()["time/get_current_time"]["state"] == "closed"


async def test_middleware_with_a_lifespan_client_closes_after_the_dependency_restarts(
    everything,
) -> None:
    connection = ReconnectingClient(Client(everything.url, timeout=5))
    mcp, middleware = relay_server(connection, BREAKER)
    async with ServerRunner(mcp) as runner, Client(runner.mcp_url, timeout=10) as client:
        relay = _relay(client)
        assert (await relay()).data == "Echo: x"
        await _away_and_back(relay, everything.kill, everything.start)
        assert connection.reconnects >= 1
        assert middleware.status()["relay"]["state"] == "closed"
        assert (await client.call_tool("relay", {"message": "again"})).data == "Echo: again"


async def test_middleware_with_a_lifespan_stdio_client_respawns_the_dependency(tmp_path) -> None:
    server = StdioServer(time_server_command(), tmp_path)
    connection = ReconnectingClient(
        Client(StdioTransport(server.command[0], server.command[1:]), timeout=5))
    mcp, middleware = relay_server(connection, BREAKER, "get_current_time", {"timezone": "UTC"})
    async with Client(mcp) as client:
        relay = _relay(client)
        assert "UTC" in (await relay()).content[0].text
        first = server.pid()
        await _away_and_back(relay, server.kill_and_keep_down, server.allow_up)
        assert server.pid() != first  # a new process answered
        assert middleware.status()["relay"]["state"] == "closed"
