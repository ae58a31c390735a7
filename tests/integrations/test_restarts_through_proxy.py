"""The guard in front of `cblab proxy` in front of a real server that goes away: the
breaker opens, and closes again within its `timeout` plus a few seconds of the server's
return, while the proxy and the guard's client live on (issue 18's "Done when" for the
proxy). npm's "everything" over Streamable HTTP, SIGKILLed and restarted on the same
port; PyPI's `mcp-server-time` over stdio, the process the proxy spawned SIGKILLed and
kept down until the test lets it up (the proxy respawns it with backoff; the server is
back when the proxy reports it connected: a respawned server takes seconds to start).
"""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client

from cblab.integrations import GuardedClient
from cblab.proxy import FaultProxy
from cblab.testing.reference import time_server_command

from ..helpers import eventually
from .reference_servers import StdioServer
from .test_restarts import BREAKER, _away_and_back, _failures

# What the proxy answers for an upstream that is away (cblab.proxy: a JSON-RPC server
# error, -32603, with data.upstream "down"/"reconnecting"), as the guard classifies it.
UPSTREAM_AWAY = {"internal_error"}



async def test_guard_through_the_proxy_closes_after_an_http_server_restarts(
        everything, capfd: pytest.CaptureFixture[str]) -> None:
    async with FaultProxy(everything.url) as proxy, GuardedClient(
            Client(proxy.mcp_url, timeout=5), name="everything", config=BREAKER) as guard:
        async def echo() -> Any:
            return await guard.call_tool("echo", {"message": "hi"})

        assert (await echo()).content[0].text == "Echo: hi"
        await _away_and_back(echo, everything.kill, everything.start)
        assert guard.status()["everything/echo"]["state"] == "closed"
        assert proxy.health.restarts >= 1
    failures = _failures(guard)
    assert failures and failures <= UPSTREAM_AWAY, failures
    # the streams the upstream broke off end quietly (a warning), not as a traceback
    assert "Traceback" not in capfd.readouterr().err


async def test_guard_through_the_proxy_closes_after_a_stdio_server_crashes(tmp_path) -> None:
    server = StdioServer(time_server_command(), tmp_path)
    async with FaultProxy(server.command, connect_timeout=30) as proxy, GuardedClient(
            Client(proxy.mcp_url, timeout=5), name="time", config=BREAKER) as guard:
        async def now() -> Any:
            return await guard.call_tool("get_current_time", {"timezone": "UTC"})

        assert "UTC" in (await now()).content[0].text
        first = server.pid()
        async def respawned() -> None:  # the server is back once the proxy has it again
            server.allow_up()
            await eventually(lambda: proxy.health.connected, 60, "the proxy to respawn it")

        await _away_and_back(now, server.kill_and_keep_down, respawned)
        assert server.pid() != first  # the proxy respawned it
        assert guard.status()["time/get_current_time"]["state"] == "closed"
    failures = _failures(guard)
    assert failures and failures <= UPSTREAM_AWAY, failures
