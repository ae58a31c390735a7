"""The middleware on a user's own FastMCP server, with tools calling the fault-injecting
backend over loopback, reached by a real MCP client over Streamable HTTP and stdio."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastmcp import Client, FastMCP
from fastmcp.client.transports import StdioTransport
from fastmcp.exceptions import ToolError, ValidationError

from cblab import ConfigError, Outcome
from cblab.backend import Backend
from cblab.integrations import CircuitBreakerMiddleware, Classifier, DependencyError
from cblab.integrations.classify import classify_exception
from cblab.server import ServerRunner

from ..server.live import error_text, eventually
from .user_server import build_user_server

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class UserServer:
    backend: Backend
    mcp: FastMCP
    runner: ServerRunner

    @property
    def middleware(self) -> CircuitBreakerMiddleware:
        (mw,) = [m for m in self.mcp.middleware if isinstance(m, CircuitBreakerMiddleware)]
        return mw

    def state(self, breaker: str) -> str:
        return self.middleware.registry[breaker].state.value


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    async with Backend(seed=1) as started:
        yield started


@pytest.fixture
async def server(backend: Backend) -> AsyncIterator[UserServer]:
    mcp = build_user_server(backend.urls["users"], backend.urls["orders"])
    async with ServerRunner(mcp) as runner:
        yield UserServer(backend, mcp, runner)


async def call(client: Client, tool: str, **args: Any) -> Any:
    if not args and "order" in tool:
        args = {"order_id": 1001}
    elif not args and "user" in tool:
        args = {"username": "octocat"}
    return await client.call_tool(tool, args, raise_on_error=False)


async def test_transport_failures_trip_the_tools_breaker_and_others_keep_working(
    server: UserServer,
) -> None:
    async with Client(server.runner.mcp_url) as client:
        assert (await call(client, "get_user")).data["login"] == "octocat"
        await server.backend.set_profile("users", {"mode": "down"})
        for _ in range(2):
            assert (await call(client, "get_user")).is_error
        assert server.state("get_user") == "open"
        refused = await call(client, "get_user")
        assert refused.is_error
        content = refused.structured_content
        assert content["error"] == "dependency_unavailable"
        assert (content["breaker"], content["state"]) == ("get_user", "open")
        assert 29 < content["retry_after_s"] <= 30
        assert "get_user dependency is temporarily unavailable" in error_text(refused)
        assert "retry in" in error_text(refused)
        received = server.backend.stats()["users"]["received"]
        # other tools keep working: another dependency, and an unprotected tool
        assert not (await call(client, "get_order")).is_error
        assert (await call(client, "ping")).data == "pong"
        assert server.backend.stats()["users"]["received"] == received  # refused: not sent
        status = (await call(client, "circuit_status")).data
    assert status["get_user"]["state"] == "open" and status["get_order"]["state"] == "closed"
    assert "ping" not in status


async def test_5xx_and_429_count_business_errors_never_do(server: UserServer) -> None:
    async with Client(server.runner.mcp_url) as client:
        for _ in range(6):  # far past failure_threshold=2
            result = await call(client, "find_user", username="nobody-here")
            assert result.is_error and error_text(result) == "no results for 'nobody-here'"
        assert server.state("find_user") == "closed"
        record = server.middleware.registry["find_user"].get_status()
        assert record["failures"] == 0 and record["excluded"] == 6

        await server.backend.set_profile("orders", {"error_rate": 1.0, "status_mix": {"503": 1}})
        assert (await call(client, "get_order")).is_error
        await server.backend.set_profile("orders", {"error_rate": 1.0, "status_mix": {"429": 1}})
        assert (await call(client, "get_order")).is_error
        assert server.state("get_order") == "open"
        assert (await call(client, "get_order")).structured_content["breaker"] == "get_order"
    events = server.middleware.registry.event_log.since(0).events
    errors = [e.error_type for _, e in events
              if getattr(e, "breaker", None) == "get_order" and getattr(e, "outcome", None)
              is Outcome.FAILURE]
    assert errors == ["http_503", "http_429"]


async def test_grouped_tools_share_one_breaker(server: UserServer) -> None:
    async with Client(server.runner.mcp_url) as client:
        await server.backend.set_profile("users", {"mode": "down"})
        for _ in range(2):
            assert (await call(client, "search_users")).is_error
        # search_orders' own backend is healthy, but it shares the search-api breaker
        refused = await call(client, "search_orders")
        assert refused.structured_content["breaker"] == "search-api"
        assert server.backend.stats()["orders"]["received"] == 0
        assert not (await call(client, "get_order")).is_error  # not in the group
    assert set(server.middleware.registry.names()) >= {"search-api", "get_order"}
    assert "search_users" not in server.middleware.registry


async def test_call_timeout_counts_a_hang_and_recovery_closes(backend: Backend) -> None:
    mcp = build_user_server(backend.urls["users"], backend.urls["orders"], call_timeout=0.3,
                            config={"failure_threshold": 2, "timeout": 0.2})
    async with ServerRunner(mcp) as runner, Client(runner.mcp_url) as client:
        await backend.set_profile("users", {"mode": "hang"})
        results = await asyncio.gather(*(call(client, "get_user") for _ in range(2)))
        for result in results:
            assert "get_user dependency did not answer within 0.3 s" in error_text(result)
        (mw,) = [m for m in mcp.middleware if isinstance(m, CircuitBreakerMiddleware)]
        breaker = mw.registry["get_user"]
        assert breaker.trips == 1  # (its 0.2 s open time may already be over)
        await backend.set_profile("users", {"mode": "up"})
        await eventually(lambda: breaker.state.value == "half_open", what="half-open")
        for _ in range(2):
            assert not (await call(client, "get_user")).is_error
        assert breaker.state.value == "closed"


async def test_error_results_count_when_a_tool_opts_in(backend: Backend) -> None:
    mcp = build_user_server(backend.urls["users"], backend.urls["orders"],
                            count_error_results=["find_user"])
    async with Client(mcp) as client:
        for _ in range(2):
            assert (await call(client, "find_user", username="nobody-here")).is_error
        refused = await call(client, "find_user", username="nobody-here")
    assert refused.structured_content["error"] == "dependency_unavailable"


async def test_over_stdio(backend: Backend, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FASTMCP_ENABLE_RICH_TRACEBACKS": "false"}
    transport = StdioTransport(
        command=sys.executable,
        args=["-m", "tests.integrations.user_server", backend.urls["users"],
              backend.urls["orders"]],
        env=env, cwd=str(ROOT), log_file=tmp_path / "stderr.log",
    )
    async with Client(transport, timeout=60) as client:
        names = {tool.name for tool in await client.list_tools()}
        assert {"get_user", "find_user", "ping", "circuit_status", "circuit_metrics"} <= names
        for _ in range(3):
            assert (await call(client, "find_user", username="nobody-here")).is_error
        await backend.set_profile("users", {"mode": "down"})
        for _ in range(2):
            assert (await call(client, "get_user")).is_error
        refused = await call(client, "get_user")
        assert refused.structured_content["error"] == "dependency_unavailable"
        status = (await call(client, "circuit_status")).data
    assert status["get_user"]["state"] == "open"
    assert status["find_user"]["state"] == "closed" and status["find_user"]["failures"] == 0


# --- bad configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(("options", "message"), [
    ({"groups": {"get_usr": "users"}}, "groups: no tool named 'get_usr'"),
    ({"groups": {"lookup_*": "x"}}, "groups: pattern 'lookup_*' matches no tool"),
    ({"unprotected": ["pong"]}, "unprotected: no tool named 'pong'"),
    ({"count_error_results": ["find_users"]}, "count_error_results: no tool named 'find_users'"),
    ({"call_timeout": {"get_usr": 1}}, "call_timeout: no tool named 'get_usr'"),
    ({"configs": {"search": {"failure_threshold": 3}}}, "configs: no breaker named 'search'"),
])
async def test_names_that_match_no_tool_fail_at_startup(backend, options, message) -> None:
    mcp = build_user_server(backend.urls["users"], backend.urls["orders"], **options)
    (mw,) = [m for m in mcp.middleware if isinstance(m, CircuitBreakerMiddleware)]
    with pytest.raises(ConfigError, match=message.replace("*", r"\*")):
        await mw.check(mcp)
    with pytest.raises(RuntimeError, match=message.replace("*", r"\*")):
        async with Client(mcp):  # install(): the server's startup fails
            pass
    with pytest.raises(RuntimeError, match="failed to start"):
        await ServerRunner(mcp).start()
    plain = FastMCP("plain")
    plain.tool(lambda: "pong", name="ping")
    plain.add_middleware(CircuitBreakerMiddleware(**options))
    async with Client(plain) as client:  # add_middleware(): the first listing fails
        with pytest.raises(Exception):
            await client.list_tools()


@pytest.mark.parametrize(("options", "message"), [
    ({"config": {"failure_threshold": 0}}, "config: failure_threshold must be an integer >= 1"),
    ({"config": {"succes_threshold": 1}}, "config: unknown configuration field"),
    ({"configs": {"api": {"timeout": -1}}}, r"configs\['api'\]: timeout"),
    ({"config": "fast"}, "config must be a CircuitBreakerConfig or a dict"),
    ({"groups": {"a": ""}}, r"groups\['a'\] must be a breaker name"),
    ({"unprotected": "ping"}, "unprotected must be a list of tool names"),
    ({"groups": {"ping": "x"}, "unprotected": ["ping"]}, "both in groups and unprotected"),
    ({"call_timeout": 0}, "call_timeout must be a number of seconds > 0"),
    ({"call_timeout": {"get_user": float("inf")}}, r"call_timeout\['get_user'\]"),
    ({"max_concurrent": 0}, "max_concurrent must be an integer >= 1"),
    ({"max_concurrent": {"api": 2.5}}, r"max_concurrent\['api'\]"),
    ({"max_wait": -1}, "max_wait must be a number of seconds >= 0"),
    ({"classifier": "strict"}, "classifier must be callable"),
])
def test_invalid_options_fail_when_built(options, message) -> None:
    with pytest.raises(ConfigError, match=message):
        CircuitBreakerMiddleware(**options)


# --- the classifier table -------------------------------------------------------------------

_REQUEST = httpx.Request("GET", "http://127.0.0.1:1/x")


def _status_error(status: int) -> httpx.HTTPStatusError:
    return httpx.HTTPStatusError("x", request=_REQUEST, response=httpx.Response(status,
                                 request=_REQUEST))


def _wrapped(cause: BaseException) -> ToolError:
    try:
        raise ToolError("Error calling tool 'x'") from cause
    except ToolError as exc:
        return exc


def _raised_while_handling(first: BaseException) -> ToolError:
    try:
        try:
            raise first
        except Exception:
            raise ToolError("implicit")  # noqa: B904 - the implicit context is the point
    except ToolError as exc:
        return exc


@pytest.mark.parametrize(("exc", "outcome", "error_type"), [
    (_wrapped(httpx.ConnectError("refused")), "failure", "ConnectError"),
    (_wrapped(httpx.ReadTimeout("slow")), "failure", "ReadTimeout"),
    (_wrapped(TimeoutError()), "failure", "TimeoutError"),
    (_wrapped(ConnectionResetError()), "failure", "ConnectionResetError"),
    (_wrapped(_status_error(503)), "failure", "http_503"),
    (_wrapped(_status_error(429)), "failure", "http_429"),
    (_wrapped(_status_error(404)), "excluded", "http_404"),
    (_wrapped(DependencyError("not JSON", "bad_response")), "failure", "bad_response"),
    (ToolError("no such order"), "excluded", "tool_error"),
    (ValidationError("bad args"), "excluded", "ValidationError"),
    (_wrapped(KeyError("bug")), "failure", "KeyError"),
    (_raised_while_handling(httpx.ConnectError("x")), "failure", "ConnectError"),
])
def test_default_classifier_table(exc, outcome, error_type) -> None:
    assert classify_exception(exc) == (Outcome(outcome), error_type)


def test_raise_from_none_hides_the_cause() -> None:
    try:
        try:
            raise httpx.ConnectError("x")
        except httpx.ConnectError:
            raise ToolError("deliberate") from None
    except ToolError as exc:
        assert classify_exception(exc) == (Outcome.EXCLUDED, "tool_error")


def test_classifier_with_extra_types() -> None:
    class NotFoundError(Exception):
        pass

    classify = Classifier(failures=(LookupError,), excluded=(NotFoundError,),
                          unknown=Outcome.EXCLUDED)
    assert classify(_wrapped(NotFoundError())) == (Outcome.EXCLUDED, "NotFoundError")
    assert classify(_wrapped(KeyError())) == (Outcome.FAILURE, "KeyError")
    assert classify(_wrapped(RuntimeError())) == (Outcome.EXCLUDED, "RuntimeError")
    with pytest.raises(TypeError, match="failures must be a tuple"):
        Classifier(failures=LookupError)  # type: ignore[arg-type]


async def test_cancelled_call_frees_the_half_open_slot() -> None:
    mcp = FastMCP("t")
    started = asyncio.Event()

    @mcp.tool
    async def slow() -> str:
        started.set()
        await asyncio.sleep(60)
        return "late"

    mw = CircuitBreakerMiddleware(config={"failure_threshold": 1, "half_open_max_calls": 1,
                                          "success_threshold": 1, "timeout": 0})
    mcp.add_middleware(mw)
    await mw.check(mcp)
    context = type("Ctx", (), {"method": "tools/call", "fastmcp_context": None,
                               "message": type("M", (), {"name": "slow"})()})()
    mw._routes["slow"] = mw._route("slow")
    breaker = mw.registry["slow"]
    breaker.record(breaker.admit(), "failure")  # trips; timeout 0 -> next admit is a trial
    assert breaker.trips == 1

    async def run(_: Any) -> Any:
        return await mcp.call_tool("slow", {}, run_middleware=False)

    task = asyncio.create_task(mw(context, run))
    await started.wait()
    assert breaker.state.value == "half_open"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.get_status()["cancelled"] == 1
    permit = breaker.admit()  # the trial slot is free again
    assert permit.admitted
