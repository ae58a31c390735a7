"""The middleware follows MCP as servers speak it now: an ``input_required`` leg
(SEP-2322) counts as nothing, a task handed to an extension is not a success, and a
dependency that is another MCP server is judged by its client's error codes."""

from __future__ import annotations

from typing import Any

import mcp_types
import pytest
from fastmcp import Client, Context, FastMCP
from fastmcp.tools import ToolResult

from cblab import Outcome
from cblab.integrations import CircuitBreakerMiddleware, ReconnectingClient
from cblab.integrations.classify import Verdict
from cblab.integrations.outcomes import result_verdict
from cblab.proxy import FaultProxy
from cblab.server import ServerRunner

from .reference_servers import relay_server

QUESTION = {"type": "object", "properties": {"value": {"type": "boolean"}}}


def _calls(middleware: CircuitBreakerMiddleware) -> list[tuple[str, str | None]]:
    part = middleware.registry.event_log.since(0, None)
    return [(e.outcome.value, e.error_type) for _, e in part.events
            if hasattr(e, "outcome") and e.outcome is not Outcome.REJECTED]


async def test_an_input_required_leg_is_neither_success_nor_failure() -> None:
    mcp = FastMCP("asker")

    @mcp.tool
    async def confirm(ctx: Context) -> Any:
        """Asks the user first (the SEP-2322 guard pattern)."""
        if not ctx.input_responses:
            return mcp_types.InputRequiredResult(input_requests={"ok": mcp_types.ElicitRequest(
                params=mcp_types.ElicitRequestFormParams(message="sure?",
                                                         requested_schema=QUESTION))})
        return f"confirmed: {ctx.input_responses['ok'].content}"

    middleware = CircuitBreakerMiddleware(config={"failure_threshold": 1}).install(mcp)
    asked: list[str] = []

    async def answer(message: str, *_: Any) -> dict[str, bool]:
        asked.append(message)
        return {"value": True}

    async with ServerRunner(mcp) as runner, Client(runner.mcp_url,
                                                  elicitation_handler=answer) as client:
        assert client.protocol_version == "2026-07-28"
        result = await client.call_tool("confirm", {})
    assert asked == ["sure?"] and result.content[0].text == "confirmed: {'value': True}"
    assert _calls(middleware) == [("excluded", "input_required"), ("success", None)]
    status = middleware.status()["confirm"]
    assert status["successes"] == 1 and status["excluded"] == 1 and status["failures"] == 0


@pytest.mark.parametrize(("result", "count_errors", "verdict"), [
    (ToolResult(content="ok"), False, Verdict(Outcome.SUCCESS)),
    (ToolResult(content="no results", is_error=True), False,
     Verdict(Outcome.EXCLUDED, "tool_error")),
    (ToolResult(content="no results", is_error=True), True,
     Verdict(Outcome.FAILURE, "error_result")),
    (mcp_types.CreateTaskResult(task=mcp_types.Task(
        task_id="t1", status="working", created_at="2026-01-01T00:00:00Z",
        last_updated_at="2026-01-01T00:00:00Z", ttl=None)), False,
     Verdict(Outcome.EXCLUDED, "task_submitted")),
])
def test_result_verdicts(result: Any, count_errors: bool, verdict: Verdict) -> None:
    assert result_verdict(result, count_errors) == verdict


async def test_a_dependency_mcp_servers_rate_limit_counts_as_http_429(everything) -> None:
    async with FaultProxy(everything.url) as proxy:
        await proxy.set_fault("echo", {"error_rate": 1.0, "error_as": "jsonrpc",
                                       "status_mix": {"429": 1}})
        dependency = ReconnectingClient(Client(proxy.mcp_url, timeout=10))
        mcp, middleware = relay_server(dependency, {"failure_threshold": 2})
        async with Client(mcp) as client:
            for _ in range(3):
                await client.call_tool("relay", {}, raise_on_error=False)
            refused = await client.call_tool("relay", {}, raise_on_error=False)
    assert _calls(middleware) == [("failure", "http_429"), ("failure", "http_429")]
    assert middleware.status()["relay"]["state"] == "open"
    assert refused.structured_content["error"] == "dependency_unavailable"
    assert dependency.reconnects == 0  # the dependency answered: its session is fine
