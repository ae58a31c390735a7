"""Retries and fallbacks over a real MCP session (Streamable HTTP on loopback).

The client side re-issues only tools whose annotations (as the server lists them)
say readOnlyHint or idempotentHint, unless an allow-list says otherwise; a server's
refusal is never re-issued; every attempt is one breaker record. The server side
(`CircuitBreakerMiddleware(retry=...)`) re-runs a read-only tool whose dependency
failed. Fallbacks answer refused and failed calls, marked as such.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.tools import ToolResult

from cblab import ManualClock
from cblab.integrations import CircuitBreakerMiddleware, Fallback, GuardedClient, RetryPolicy
from cblab.server import ServerRunner

NO_WAIT = {"backoff": 0.0, "rng": random.Random(1)}


def build_server(fail_first: int, *, middleware: CircuitBreakerMiddleware | None = None,
                 ) -> tuple[FastMCP, Counter[str]]:
    """Tools that answer isError for their first `fail_first` calls, with different
    annotations; `dependency` raises a connect error (a failing dependency)."""
    mcp = FastMCP("retry-target")
    seen: Counter[str] = Counter()

    def flaky(name: str) -> ToolResult:
        seen[name] += 1
        if seen[name] <= fail_first:
            return ToolResult(content=f"{name} failed", is_error=True)
        return ToolResult(content=f"{name} ok {seen[name]}", structured_content={"n": seen[name]})

    @mcp.tool(annotations={"readOnlyHint": True})
    def read() -> ToolResult:
        return flaky("read")

    @mcp.tool(annotations={"idempotentHint": True, "readOnlyHint": False})
    def put() -> ToolResult:
        return flaky("put")

    @mcp.tool(annotations={"destructiveHint": True})
    def send() -> ToolResult:
        return flaky("send")

    @mcp.tool(annotations={"readOnlyHint": True})
    def dependency() -> str:
        seen["dependency"] += 1
        if seen["dependency"] <= fail_first:
            raise httpx.ConnectError("dependency refused the connection")
        return "dependency ok"

    @mcp.tool
    def mirror() -> str:
        seen["mirror"] += 1
        return "from the mirror"

    if middleware is not None:
        mcp.add_middleware(middleware)
    return mcp, seen


@pytest.fixture
async def served(request: Any) -> AsyncIterator[tuple[str, Counter[str]]]:
    fail_first, middleware = request.param
    mcp, seen = build_server(fail_first, middleware=middleware() if middleware else None)
    async with ServerRunner(mcp) as runner:
        yield runner.mcp_url, seen


def guarded(url: str, **options: Any) -> GuardedClient:
    return GuardedClient(Client(url, timeout=30), name="target",
                         count_error_results=["read", "put", "send", "dependency"],
                         config={"failure_threshold": 10, "timeout": 30}, **options)


def attempts(guard: GuardedClient, tool: str) -> int:
    return sum(1 for e in guard.events()
               if e.get("kind") == "call" and e.get("breaker") == f"target/{tool}")


@pytest.mark.parametrize("served", [(2, None)], indirect=True)
async def test_annotations_decide_which_tools_are_reissued(served) -> None:
    url, seen = served
    async with guarded(url, retry=RetryPolicy(3, **NO_WAIT)) as guard:
        assert not (await guard.call_tool("read")).is_error
        assert seen["read"] == 3 and attempts(guard, "read") == 3  # read-only: re-issued
        assert (await guard.call_tool("put")).is_error is False
        assert seen["put"] == 3 and attempts(guard, "put") == 3  # idempotent: re-issued
        with pytest.raises(ToolError, match="send failed"):
            await guard.call_tool("send")
        assert seen["send"] == 1 and attempts(guard, "send") == 1  # destructive: once
        assert guard.retry.stats()["attempts"] == 6  # "send" never went through it


@pytest.mark.parametrize("served", [(1, None)], indirect=True)
async def test_an_allow_list_overrides_the_annotations(served) -> None:
    url, seen = served
    async with guarded(url, retry=RetryPolicy(3, **NO_WAIT), retry_tools=["send"]) as guard:
        assert not (await guard.call_tool("send")).is_error
        result = await guard.call_tool("read", raise_on_error=False)
        assert result.is_error  # not on the list: not re-issued
        assert (seen["send"], seen["read"]) == (2, 1)


@pytest.mark.parametrize("served", [(5, lambda: CircuitBreakerMiddleware(
    config={"failure_threshold": 1, "timeout": 60}))], indirect=True)
async def test_a_servers_refusal_is_not_reissued(served) -> None:
    url, seen = served
    async with guarded(url, retry=RetryPolicy(5, **NO_WAIT)) as guard:
        first = await guard.call_tool("dependency", raise_on_error=False)
        assert first.is_error and seen["dependency"] == 1
        # the server's breaker opened: the retry got a refusal and stopped there
        assert first.structured_content["error"] == "dependency_unavailable"
        assert first.structured_content["retry_after_s"] > 0
        assert attempts(guard, "dependency") == 2
        assert guard.retry.stats()["stopped"]["refused"] == 1


async def test_the_middleware_reruns_a_read_only_tool_one_breaker_call_per_attempt() -> None:
    middleware = CircuitBreakerMiddleware(config={"failure_threshold": 5, "timeout": 60},
                                          retry=RetryPolicy(3, **NO_WAIT))
    mcp, seen = build_server(2, middleware=middleware)
    async with ServerRunner(mcp) as runner, Client(runner.mcp_url, timeout=30) as client:
        result = await client.call_tool("dependency")
        assert result.data == "dependency ok" and seen["dependency"] == 3
        with pytest.raises(ToolError, match="send failed"):
            await client.call_tool("send")  # destructive: not re-run
        assert seen["send"] == 1
    status = middleware.status()
    assert status["dependency"]["calls"] == 3  # two failures and a success: three records
    assert status["dependency"]["failures"] >= 0 and status["dependency"]["successes"] >= 1
    assert middleware.retry.stats()["retries"] == 2


@pytest.mark.parametrize("served", [(0, None)], indirect=True)
async def test_fallbacks_answer_refusals_marked_and_counted(served) -> None:
    url, seen = served
    clock = ManualClock()
    guard = GuardedClient(Client(url, timeout=30), name="target", clock=clock,
                          count_error_results=["read"], on_open="result",
                          config={"failure_threshold": 1, "timeout": 60},
                          fallback={"read": Fallback.cached(max_age=100),
                                    "put": Fallback.static({"note": "try later"}),
                                    "send": Fallback.tool("mirror")})
    async with guard:
        good = await guard.call_tool("read")
        assert not good.is_error and "cblab/fallback" not in (good.meta or {})
        for tool in ("read", "put", "send"):
            guard.breaker(tool).force_open("test")  # every call is now refused
        clock.advance(5)
        cached = await guard.call_tool("read")
        assert cached.content == good.content
        assert cached.meta["cblab/fallback"] == {"kind": "cached",
                                                 "reason": "dependency_unavailable",
                                                 "age_s": 5.0}
        static = await guard.call_tool("put")
        assert static.structured_content["result"] == {"note": "try later"}
        assert static.meta["cblab/fallback"]["kind"] == "static"
        other = await guard.call_tool("send")
        assert other.data == "from the mirror" and other.meta["cblab/fallback"]["tool"] == "mirror"
        assert seen["read"] == 1 and seen["put"] == 0 and seen["send"] == 0
        clock.advance(200)  # the cached answer is now too old: the refusal stands
        stale = await guard.call_tool("read")
        assert stale.is_error and stale.structured_content["error"] == "dependency_unavailable"
    assert guard.fallbacks.stats()["served"] == {"cached": 1, "static": 1, "tool": 1}
    assert guard.fallbacks.stats()["unavailable"] == 1


async def test_the_middleware_serves_marked_fallbacks_for_failed_and_refused_calls() -> None:
    middleware = CircuitBreakerMiddleware(
        config={"failure_threshold": 2, "timeout": 60},
        fallback={"dependency": Fallback.cached(), "send": Fallback.tool("mirror"),
                  "read": Fallback.static({"note": "try later"})})
    mcp, seen = build_server(0, middleware=middleware)
    async with ServerRunner(mcp) as runner, Client(runner.mcp_url, timeout=30) as client:
        good = await client.call_tool("dependency")
        assert good.data == "dependency ok" and "cblab/fallback" not in (good.meta or {})
        for tool in ("dependency", "send", "read"):
            middleware.registry[tool].force_open("test")
        cached = await client.call_tool("dependency")
        assert cached.data == "dependency ok"
        assert cached.meta["cblab/fallback"]["kind"] == "cached"
        assert cached.meta["cblab/fallback"]["reason"] == "dependency_unavailable"
        other = await client.call_tool("send")
        assert other.data == "from the mirror"
        assert other.meta["cblab/fallback"] == {"kind": "tool", "reason": "dependency_unavailable",
                                                "age_s": None, "tool": "mirror"}
        static = await client.call_tool("read")
        assert static.structured_content["result"] == {"note": "try later"}
        assert seen["dependency"] == 1 and seen["send"] == 0 and seen["mirror"] == 1
    assert middleware.fallbacks.stats()["served"] == {"cached": 1, "static": 1, "tool": 1}


def test_a_fallback_for_a_tool_that_does_not_exist_is_refused() -> None:
    middleware = CircuitBreakerMiddleware(fallback={"nope": Fallback.static("x")})
    with pytest.raises(Exception, match="fallback: no tool named 'nope'"):
        middleware.check_tools(["read"])
