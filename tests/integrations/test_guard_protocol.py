"""The guard follows MCP as servers speak it now: rate limits sent as JSON-RPC errors,
response streams that break mid-call, task-required tools, calls bounded by a deadline,
and one reconnect shared by every caller. Real servers: npm's "everything" (HTTP),
cblab's fault proxy in front of it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastmcp import Client
from mcp.client._input_required import InputRequiredRoundsExceededError
from mcp.shared.exceptions import MCPError

from cblab import ManualClock, Outcome
from cblab.integrations import GuardedClient
from cblab.integrations.classify import Verdict
from cblab.integrations.client import classify_client_exception
from cblab.proxy import FaultProxy


def _failures(guard: GuardedClient) -> list[str]:
    return [e["error_type"] for e in guard.events() if e.get("outcome") == "failure"]


@pytest.mark.parametrize(("error", "verdict"), [
    (MCPError(-32000, "Connection closed"), Verdict(Outcome.FAILURE, "connection_closed")),
    (MCPError(-32000, "injected fault: upstream answered 429; retry after 2 s",
              {"status": 429, "injected": True}), Verdict(Outcome.FAILURE, "http_429")),
    (MCPError(-32000, "Too Many Requests"), Verdict(Outcome.FAILURE, "http_429")),
    (MCPError(-32603, "upstream answered 503", {"status": 503}),
     Verdict(Outcome.FAILURE, "http_503")),
    (MCPError(-32602, "bad argument", {"status": 400}), Verdict(Outcome.EXCLUDED, "http_400")),
    (MCPError(-32000, "SSE stream ended and reconnection attempts were exhausted"),
     Verdict(Outcome.FAILURE, "stream_broken")),
    (MCPError(-32600, "Session terminated"), Verdict(Outcome.FAILURE, "session_terminated")),
    (MCPError(-32005, "backend overloaded"), Verdict(Outcome.FAILURE, "server_error")),
    (MCPError(-32001, "Request timed out"), Verdict(Outcome.FAILURE, "request_timeout")),
    (MCPError(-32602, "Invalid params"), Verdict(Outcome.EXCLUDED, "jsonrpc_-32602")),
    (InputRequiredRoundsExceededError(3), Verdict(Outcome.EXCLUDED, "input_required")),
])
def test_the_client_classification_table(error: BaseException, verdict: Verdict) -> None:
    assert classify_client_exception(error) == verdict


async def test_an_injected_jsonrpc_429_is_recorded_as_a_rate_limit(everything) -> None:
    async with FaultProxy(everything.url) as proxy:
        await proxy.set_fault("echo", {"error_rate": 1.0, "error_as": "jsonrpc",
                                       "status_mix": {"429": 1}})
        async with GuardedClient(Client(proxy.mcp_url, timeout=10), name="everything",
                                 config={"failure_threshold": 2}) as guard:
            for _ in range(2):
                with pytest.raises(MCPError, match="429"):
                    await guard.call_tool("echo", {"message": "hi"})
    assert _failures(guard) == ["http_429", "http_429"]
    assert guard.status()["everything/echo"]["state"] == "open"
    assert guard.connection.reconnects == 0  # the server answered: the session is fine


async def test_a_stream_broken_mid_call_is_never_a_success(everything) -> None:
    async with GuardedClient(Client(everything.url, timeout=30), name="everything") as guard:
        in_flight = asyncio.Event()

        async def progress(progress: float, total: float | None, message: str | None) -> None:
            in_flight.set()  # the server is running the call

        call = asyncio.create_task(guard.call_tool(
            "trigger-long-running-operation", {"duration": 30, "steps": 30},
            progress_handler=progress))
        await asyncio.wait_for(in_flight.wait(), timeout=30)
        everything.kill()
        with pytest.raises(MCPError, match="stream"):
            await call
        status = guard.status()["everything/trigger-long-running-operation"]
        assert status["successes"] == 0 and status["failures"] == 1
        assert _failures(guard) == ["stream_broken"]
        assert guard.connection.needs_reconnect()  # the next call opens a fresh session
        await everything.start()
        assert (await guard.call_tool("echo", {"message": "back"})).content[0].text == "Echo: back"
        assert guard.connection.reconnects == 1


async def test_a_task_required_tool_is_a_business_error_not_an_outage(everything) -> None:
    # fastmcp 4.2.3 alone makes no task-augmented calls: the server says so in an isError
    # result, which the guard excludes like any business error.
    async with GuardedClient(Client(everything.url, timeout=10), name="everything",
                             config={"failure_threshold": 1}) as guard:
        for _ in range(3):
            result = await guard.call_tool("simulate-research-query", {"topic": "breakers"},
                                           raise_on_error=False)
            assert result.is_error and "task" in result.content[0].text
    status = guard.status()["everything/simulate-research-query"]
    assert status["state"] == "closed" and status["failures"] == 0


async def test_a_deadline_bounds_a_call_and_a_trial_cannot_wedge_the_breaker(everything) -> None:
    clock = ManualClock()
    async with GuardedClient(Client(everything.url, timeout=30), name="everything",
                             per="server", deadline=3.0, clock=clock,
                             config={"failure_threshold": 1, "timeout": 10}) as guard:
        async def slow() -> Any:
            return await guard.call_tool("trigger-long-running-operation",
                                         {"duration": 30, "steps": 30})

        with pytest.raises(TimeoutError):
            await slow()
        assert guard.status()["everything"]["state"] == "open"
        clock.advance(10)
        with pytest.raises(TimeoutError):  # the half-open trial, bounded the same way
            await slow()
        assert guard.status()["everything"]["state"] == "open"  # not stuck in half-open
        clock.advance(10)
        assert (await guard.call_tool("echo", {"message": "hi"})).content[0].text == "Echo: hi"
        assert guard.status()["everything"]["state"] in {"closed", "half_open"}
    assert _failures(guard) == ["deadline_exceeded", "deadline_exceeded"]


async def test_concurrent_callers_share_one_reconnect(everything) -> None:
    guard = GuardedClient(Client(everything.url, timeout=10), name="everything", per="server",
                          config={"failure_threshold": 100})
    async with guard:
        await guard.call_tool("echo", {"message": "hi"})
        everything.kill()
        with pytest.raises(Exception):  # the server is gone: whatever the transport says
            await guard.call_tool("echo", {"message": "hi"})
        await everything.start()
        results = await asyncio.gather(*(guard.call_tool("echo", {"message": str(i)})
                                         for i in range(8)))
        assert [r.content[0].text for r in results] == [f"Echo: {i}" for i in range(8)]
        assert guard.connection.reconnects == 1
