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


async def test_guarded_client_over_http_closes_after_the_server_restarts(everything) -> None:
    guard = GuardedClient(Client(everything.url, timeout=5), name="everything", config=BREAKER)
    async with guard:
        async def echo() -> Any:
            return await guard.call_tool("echo", {"message": "hi"})

        assert (await echo()).content[0].text == "Echo: hi"
        everything.kill()
        seen = await _opens(echo)
        assert seen.count("failed") == 2 and "ok" not in seen
        await everything.start()
        took = await _closes_again(echo)
        assert took < BACK_WITHIN
        assert guard.status()["everything/echo"]["state"] == "closed"
        assert guard.connection.reconnects >= 1
        assert (await echo()).content[0].text == "Echo: hi"
    failures = {e["error_type"] for e in guard.events() if e.get("outcome") == "failure"}
    assert failures and failures <= CONNECTION_FAILURES, failures


async def test_guarded_client_over_stdio_respawns_a_crashed_server(tmp_path) -> None:
    server = StdioServer(time_server_command(), tmp_path)
    client = Client(StdioTransport(server.command[0], server.command[1:]), timeout=5)
    guard = GuardedClient(client, name="time", config=BREAKER)
    async with guard:
        async def now() -> Any:
            return await guard.call_tool("get_current_time", {"timezone": "UTC"})

        assert "UTC" in (await now()).content[0].text
        first = server.kill_and_keep_down()
        seen = await _opens(now)
        assert seen.count("failed") == 2 and "ok" not in seen
        server.allow_up()
        took = await _closes_again(now)
        assert took < BACK_WITHIN
        assert server.pid() != first  # a new process answered
        assert guard.status()["time/get_current_time"]["state"] == "closed"
    failures = {e["error_type"] for e in guard.events() if e.get("outcome") == "failure"}
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
    async with ServerRunner(relay_server(connection, BREAKER)[0]) as runner, Client(
        runner.mcp_url, timeout=10
    ) as client:
        async def relay() -> Any:
            result = await client.call_tool("relay", {"message": "hi"}, raise_on_error=False)
            if result.structured_content and result.structured_content.get(
                    "error") == "dependency_unavailable":
                raise CircuitOpenError("relay", 0.0)
            if result.is_error:
                raise RuntimeError(result.content[0].text)
            return result

        assert (await relay()).data == "Echo: hi"
        everything.kill()
        seen = await _opens(relay)
        assert seen.count("failed") == 2 and "ok" not in seen
        await everything.start()
        took = await _closes_again(relay)
        assert took < BACK_WITHIN
        assert connection.reconnects >= 1
        status = (await client.call_tool("relay", {"message": "again"})).data
        assert status == "Echo: again"
