"""The guard's and the httpx transport's CLIENT spans, and one trace across the fault
proxy (`cblab proxy`, a real process) from a guarded client to a protected server."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from cblab import CircuitOpenError
from cblab._clock import ManualClock
from cblab.backend import Backend
from cblab.integrations import BreakerTransport, CircuitBreakerMiddleware, GuardedClient
from cblab.integrations.otel import STATE_CHANGE, traced_calls
from cblab.server import ServerRunner

from ..helpers import eventually
from .cli_process import cblab, ready
from .conftest import Otel

NAME, ST, OUT = ("resilience.circuit_breaker." + k for k in ("name", "state", "outcome"))
CONFIG = {"failure_threshold": 1, "success_threshold": 1, "half_open_max_calls": 1,
          "timeout": 30}


def server(otel: Otel | None = None) -> FastMCP:
    mcp = FastMCP("traced")

    @mcp.tool
    def echo(text: str) -> str:
        return text

    @mcp.tool
    def broken() -> str:
        raise ToolError("the dependency said no")

    CircuitBreakerMiddleware(telemetry=otel.telemetry if otel else None).install(mcp)
    return mcp


@pytest.fixture
async def upstream(otel: Otel) -> AsyncIterator[ServerRunner]:
    async with ServerRunner(server(otel)) as runner:
        yield runner


async def finished(otel: Otel, before: int, kind: SpanKind, name: str) -> list[ReadableSpan]:
    """The spans of `kind` named `name` finished since `before` (at least one)."""
    return await eventually(lambda: [s for s in otel.finished()[before:]
                                     if s.kind is kind and s.name == name],
                            what=f"a {kind} span {name!r}")


def ancestors(otel: Otel, span: ReadableSpan) -> list[int]:
    """Span ids from `span`'s parent up, as far as this process recorded them."""
    by_id = {s.context.span_id: s for s in otel.finished()}
    found = []
    while span.parent is not None:
        found.append(span.parent.span_id)
        if span.parent.span_id not in by_id:
            break
        span = by_id[span.parent.span_id]
    return found


async def test_guard_puts_the_breaker_on_its_client_span(upstream: ServerRunner, otel: Otel) -> None:
    clock = ManualClock()
    guard = GuardedClient(Client(upstream.mcp_url), name="traced", config=CONFIG,
                          clock=clock, telemetry=otel.telemetry)
    async with guard:
        before = len(otel.finished())
        await guard.call_tool("echo", {"text": "hi"})
        # the guard's span replaces fastmcp's (mcp's own "MCP send" span is its child)
        (span,) = await finished(otel, before, SpanKind.CLIENT, "tools/call echo")
        assert span.name == "tools/call echo"
        assert span.attributes["gen_ai.tool.name"] == "echo"
        assert (span.attributes[NAME], span.attributes[ST], span.attributes[OUT]) == (
            "traced/echo", "closed", "success")
        (server_span,) = await finished(otel, before, SpanKind.SERVER, "tools/call echo")
        assert span.context.span_id in ancestors(otel, server_span)  # _meta carried it

        guard.registry["traced/echo"].force_open("test")
        before = len(otel.finished())
        with pytest.raises(CircuitOpenError):
            await guard.call_tool("echo", {"text": "hi"})
        (span,) = await finished(otel, before, SpanKind.CLIENT, "tools/call echo")
        assert (span.attributes[ST], span.attributes[OUT]) == ("open", "rejected")
        assert span.attributes["error.type"] == "circuit_open"
        assert span.status.status_code is StatusCode.ERROR
        assert [e.name for e in span.events] == ["exception"]
        assert not [s for s in otel.finished()[before:] if s.kind is not SpanKind.CLIENT
                    or s.name != "tools/call echo"]  # nothing went out


async def test_transport_span_lasts_until_the_body_and_carries_the_trip(otel: Otel) -> None:
    async with Backend(seed=1) as backend:
        url = backend.urls["users"] + "/users/octocat"
        transport = BreakerTransport(config=CONFIG, clock=ManualClock(),
                                     telemetry=otel.telemetry)
        async with httpx.AsyncClient(transport=transport) as http:
            before = len(otel.finished())
            assert (await http.get(url)).status_code == 200
            (ok,) = await finished(otel, before, SpanKind.CLIENT, "GET")
            assert ok.name == "GET"
            assert ok.attributes["http.response.status_code"] == 200
            assert ok.attributes[OUT] == "success"
            assert ok.attributes[NAME] == url.split("/")[2]

            await backend.set_profile("users", {"error_rate": 1.0, "status_mix": {"503": 1.0}})
            before = len(otel.finished())
            assert (await http.get(url)).status_code == 503
            (failed,) = await finished(otel, before, SpanKind.CLIENT, "GET")
            assert (failed.attributes[ST], failed.attributes[OUT]) == ("closed", "failure")
            (event,) = [e for e in failed.events if e.name == STATE_CHANGE]
            assert (event.attributes["from"], event.attributes["to"]) == ("closed", "open")

            before = len(otel.finished())
            with pytest.raises(CircuitOpenError):
                await http.get(url)
            (refused,) = await finished(otel, before, SpanKind.CLIENT, "GET")
            assert refused.attributes["error.type"] == "circuit_open"
            assert refused.status.status_code is StatusCode.ERROR


async def test_one_trace_crosses_the_fault_proxy(
    upstream: ServerRunner, otel: Otel, tmp_path: Path,
) -> None:
    ready_file = tmp_path / "proxy.json"
    proxy = cblab("proxy", "--upstream", upstream.mcp_url, "--ready-file", str(ready_file),
                  stdout=subprocess.DEVNULL)
    try:
        proxy_url = (await ready(proxy, ready_file))["mcp_url"]
        guard = GuardedClient(Client(proxy_url), name="via-proxy", config=CONFIG,
                              telemetry=otel.telemetry)
        async with guard:
            before = len(otel.finished())
            await guard.call_tool("echo", {"text": "across"})
            (client_span,) = await finished(otel, before, SpanKind.CLIENT, "tools/call echo")
            (server_span,) = await finished(otel, before, SpanKind.SERVER, "tools/call echo")
    finally:
        proxy.terminate()
        proxy.communicate(timeout=30)
    assert client_span.attributes[NAME] == "via-proxy/echo"
    assert server_span.attributes[NAME] == "echo"  # the upstream's own breaker
    assert server_span.context.trace_id == client_span.context.trace_id
    # The proxy process records no spans (no SDK there); the upstream's span descends
    # from the guard's through it.
    assert client_span.context.span_id in ancestors(otel, server_span)


async def test_traced_calls_rows_for_a_notebook(upstream: ServerRunner, otel: Otel) -> None:
    rows = await traced_calls(upstream.mcp_url, "echo", {"text": "x"}, calls=3,
                              config={"failure_threshold": 1})
    tool_rows = [r for r in rows if r["span"] == "tools/call echo"]
    assert [(r["breaker"], r["state"], r["outcome"]) for r in tool_rows] == [
        ("traced/echo", "closed", "success")] * 3
    assert len({r["trace"] for r in tool_rows}) == 3  # one trace per call


@pytest.mark.parametrize("count", [True, False])
async def test_traced_calls_show_the_guard_tripping(upstream: ServerRunner, otel: Otel,
                                                    count: bool) -> None:
    """Error results count as failures only when asked (notebook 03 asks): then the spans
    show the guard's breaker trip and refuse; otherwise they are business errors."""
    rows = await traced_calls(upstream.mcp_url, "broken", calls=3,
                              config={"failure_threshold": 2, "timeout": 30},
                              count_error_results=count)
    seen = [(r["state"], r["outcome"], r["error.type"], r["state_change"]) for r in rows]
    assert all(r["breaker"] == "traced/broken" for r in rows)
    if count:
        assert seen == [("closed", "failure", "error_result", ""),
                        ("closed", "failure", "error_result", "closed->open"),
                        ("open", "rejected", "circuit_open", "")]
    else:
        assert [s[1] for s in seen] == ["excluded"] * 3
