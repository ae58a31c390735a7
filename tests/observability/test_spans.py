"""Breaker attributes and state-change events on fastmcp's SERVER span, and the OTel
metrics, from a real FastMCP server on loopback called over Streamable HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from cblab._clock import ManualClock
from cblab.integrations import CircuitBreakerMiddleware
from cblab.integrations.otel import CALLS, DURATION, STATE, STATE_CHANGE, TRANSITIONS
from cblab.server import ServerRunner

from ..helpers import eventually
from .conftest import Otel

NAME, ST, OUT = ("resilience.circuit_breaker." + k for k in ("name", "state", "outcome"))


@dataclass
class Live:
    runner: ServerRunner
    middleware: CircuitBreakerMiddleware
    clock: ManualClock
    gate: asyncio.Event
    entered: asyncio.Event


@pytest.fixture
async def live(otel: Otel) -> AsyncIterator[Live]:
    mcp = FastMCP("spans")
    gate, entered = asyncio.Event(), asyncio.Event()

    @mcp.tool
    async def lookup(mode: str) -> str:
        if mode == "down":
            raise httpx.ConnectError("connection refused")
        if mode == "business":
            raise ToolError("no results")
        if mode == "wait":
            entered.set()
            await gate.wait()
        return "ok"

    clock = ManualClock()
    middleware = CircuitBreakerMiddleware(
        config={"failure_threshold": 2, "success_threshold": 1, "half_open_max_calls": 1,
                "timeout": 30},
        max_concurrent=1, max_wait=0.0, clock=clock, telemetry=otel.telemetry)
    middleware.install(mcp)
    async with ServerRunner(mcp) as runner:
        yield Live(runner, middleware, clock, gate, entered)


async def server_span(otel: Otel, before: int) -> ReadableSpan:
    """The one SERVER span of a `tools/call` finished since `before` spans (fastmcp
    names it `tools/call lookup` once the tool runs; a refused call stays `tools/call`)."""
    def new() -> list[ReadableSpan]:
        return [s for s in otel.finished()[before:] if s.kind is SpanKind.SERVER
                and s.attributes.get("mcp.method.name") == "tools/call"]
    (span,) = await eventually(new, what="the server span")
    return span


async def call(client: Client, otel: Otel, mode: str) -> tuple[Any, ReadableSpan]:
    before = len(otel.finished())
    result = await client.call_tool("lookup", {"mode": mode}, raise_on_error=False)
    return result, await server_span(otel, before)


def changes(span: ReadableSpan) -> list[tuple[str, str, str]]:
    return [(e.attributes["from"], e.attributes["to"], e.attributes[NAME])
            for e in span.events if e.name == STATE_CHANGE]


async def test_every_outcome_and_state_change_lands_on_the_server_span(
    live: Live, otel: Otel,
) -> None:
    async with Client(live.runner.mcp_url) as client:
        result, span = await call(client, otel, "ok")
        assert not result.is_error
        assert span.attributes[NAME] == "lookup"
        assert (span.attributes[ST], span.attributes[OUT]) == ("closed", "success")
        assert span.attributes["gen_ai.tool.name"] == "lookup"  # fastmcp's own, kept
        assert changes(span) == []

        _, span = await call(client, otel, "business")
        assert span.attributes[OUT] == "excluded"

        _, first = await call(client, otel, "down")
        assert (first.attributes[OUT], changes(first)) == ("failure", [])
        _, tripping = await call(client, otel, "down")
        assert tripping.attributes[OUT] == "failure"
        assert changes(tripping) == [("closed", "open", "lookup")]
        (event,) = [e for e in tripping.events if e.name == STATE_CHANGE]
        assert "fail" in event.attributes["reason"]

        result, refused = await call(client, otel, "ok")
        assert result.structured_content["error"] == "dependency_unavailable"
        assert (refused.attributes[ST], refused.attributes[OUT]) == ("open", "rejected")
        assert refused.attributes["error.type"] == "circuit_open"
        assert refused.status.status_code is StatusCode.ERROR

        live.clock.advance(31)
        _, trial = await call(client, otel, "ok")
        assert (trial.attributes[ST], trial.attributes[OUT]) == ("half_open", "success")
        assert changes(trial) == [("open", "half_open", "lookup"),
                                  ("half_open", "closed", "lookup")]
        assert trial.status.status_code is not StatusCode.ERROR

    calls = otel.values(CALLS, NAME, "resilience.circuit_breaker.outcome")
    assert calls == {("lookup", "success"): 2, ("lookup", "excluded"): 1,
                     ("lookup", "failure"): 2, ("lookup", "rejected"): 1}
    assert otel.values(TRANSITIONS, "from", "to") == {
        ("closed", "open"): 1, ("open", "half_open"): 1, ("half_open", "closed"): 1}
    assert otel.values(STATE, ST) == {("closed",): 1, ("open",): 0, ("half_open",): 0}
    durations = otel.values(DURATION, "resilience.circuit_breaker.outcome")
    assert durations == {("success",): 2, ("excluded",): 1, ("failure",): 2}  # no refusals
    (unit,) = {p.name for p in _metrics(otel) if p.name == DURATION and p.unit == "s"}
    assert unit == DURATION


def _metrics(otel: Otel) -> list[Any]:
    data = otel.reader.get_metrics_data()
    return [m for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics]


async def test_local_overload_and_late_outcomes(live: Live, otel: Otel) -> None:
    async with Client(live.runner.mcp_url) as client:
        before = len(otel.finished())
        held = asyncio.create_task(
            client.call_tool("lookup", {"mode": "wait"}, raise_on_error=False))
        await eventually(live.entered.is_set, what="the first call inside the tool")
        result, overloaded = await call(client, otel, "ok")  # the one slot is taken
        assert result.structured_content["error"] == "local_overload"
        assert overloaded.attributes[OUT] == "local_overload"
        assert overloaded.attributes["error.type"] == "local_overload"
        assert overloaded.status.status_code is StatusCode.ERROR

        live.middleware.registry["lookup"].force_open("maintenance")  # the call now is late
        live.gate.set()
        assert not (await held).is_error
        late = await eventually(lambda: [
            s for s in otel.finished()[before:] if s.kind is SpanKind.SERVER
            and s.attributes.get(OUT) not in (None, "local_overload")], what="the late span")
        (late,) = late
        assert (late.attributes[ST], late.attributes[OUT]) == ("closed", "late")
    assert otel.values(CALLS, "resilience.circuit_breaker.outcome") == {
        ("local_overload",): 1, ("late",): 1}
    assert otel.values(STATE, ST) == {("closed",): 0, ("open",): 1, ("half_open",): 0}


async def test_without_telemetry_the_span_carries_no_breaker_attributes(
    otel: Otel,
) -> None:
    mcp = FastMCP("plain")

    @mcp.tool
    def lookup() -> str:
        return "ok"

    CircuitBreakerMiddleware().install(mcp)
    async with ServerRunner(mcp) as runner, Client(runner.mcp_url) as client:
        before = len(otel.finished())
        await client.call_tool("lookup", {})
        span = await server_span(otel, before)
    assert span.attributes["gen_ai.tool.name"] == "lookup"
    assert not [k for k in span.attributes if k.startswith("resilience.")]
    assert not [e for e in span.events if e.name == STATE_CHANGE]
