"""GuardedClient against real MCP servers over Streamable HTTP: killed, hanging, and
answering isError. Only the first two trip it; per-tool scope keeps other tools callable."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from cblab import CircuitOpenError, ConfigError
from cblab.integrations import GuardedClient
from cblab.server import ServerRunner

from ..server.live import eventually
from .target_server import build_target

ROOT = Path(__file__).resolve().parents[2]
FAST = {"failure_threshold": 2, "timeout": 30}


@pytest.fixture
async def target() -> AsyncIterator[ServerRunner]:
    async with ServerRunner(build_target()) as runner:
        yield runner


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_a_killed_server_trips_and_the_open_breaker_sends_nothing(tmp_path) -> None:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FASTMCP_ENABLE_RICH_TRACEBACKS": "false"}
    with open(tmp_path / "server.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.integrations.target_server", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        async def up() -> bool:
            try:
                async with httpx.AsyncClient(trust_env=False) as http:
                    await http.get(f"http://127.0.0.1:{port}/mcp")
                return True
            except httpx.TransportError:
                return process.poll() is not None  # died: stop waiting, fail below
        await eventually(up, timeout=30, what="the target server")
        assert process.poll() is None, (tmp_path / "server.log").read_text()
        guard = GuardedClient(Client(f"http://127.0.0.1:{port}/mcp", timeout=5),
                              name="target", config=FAST)
        await guard.__aenter__()
        try:
            assert (await guard.call_tool("ok")).data == "ok"
            process.send_signal(signal.SIGKILL)
            process.wait()
            for _ in range(2):
                with pytest.raises(Exception) as failed:
                    await guard.call_tool("ok")
                assert not isinstance(failed.value, CircuitOpenError)
            with pytest.raises(CircuitOpenError) as refused:
                await guard.call_tool("ok")
            assert refused.value.name == "target/ok" and refused.value.retry_after > 29
        finally:
            with contextlib.suppress(Exception):  # closing a session to a dead server fails
                await guard.__aexit__(None, None, None)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    status = guard.status()["target/ok"]
    assert status["state"] == "open" and status["failures"] == 2 and status["rejected"] == 1


async def test_a_hang_trips_only_its_tool_and_business_errors_never_do(target) -> None:
    async with GuardedClient(Client(target.mcp_url), name="target", config=FAST) as guard:
        for _ in range(5):  # isError results, raised or returned: the server works
            with pytest.raises(ToolError, match="no results"):
                await guard.call_tool("no_results")
            assert (await guard.call_tool("no_results", raise_on_error=False)).is_error
        for _ in range(2):
            with pytest.raises(Exception, match="timed out"):
                await guard.call_tool("hang", timeout=0.2)
        started = asyncio.get_running_loop().time()
        with pytest.raises(CircuitOpenError):
            await guard.call_tool("hang", timeout=0.2)
        assert asyncio.get_running_loop().time() - started < 0.2  # refused at once
        assert (await guard.call_tool("ok")).data == "ok"  # other tools keep working
        assert [t.name for t in await guard.list_tools()]  # the rest passes through
    status = guard.status()
    assert status["target/no_results"]["state"] == "closed"
    assert status["target/no_results"]["failures"] == 0
    assert status["target/hang"]["state"] == "open"
    events = guard.events()
    assert [e["error_type"] for e in events if e.get("outcome") == "failure"] == [
        "request_timeout", "request_timeout"]
    assert any(e.get("to_state") == "open" for e in events)
    assert guard.metrics()["summary"]["open"] == 1


async def test_per_server_scope_and_refusal_results(target) -> None:
    guard = GuardedClient(Client(target.mcp_url), per="server", name="target",
                          config=FAST, on_open="result", count_error_results=["no_results"])
    async with guard:
        for _ in range(2):  # opted in: these isError results count
            assert (await guard.call_tool("no_results", raise_on_error=False)).is_error
        refused = await guard.call_tool("ok")
    assert refused.is_error
    assert refused.structured_content == {
        "error": "dependency_unavailable", "breaker": "target", "state": "open",
        "retry_after_s": pytest.approx(30, abs=1)}
    assert "temporarily unavailable" in refused.content[0].text


@pytest.mark.parametrize(("options", "message"), [
    ({"per": "tools"}, "per must be 'tool' or 'server'"),
    ({"on_open": "ignore"}, "on_open must be 'raise' or 'result'"),
    ({"config": {"failure_threshold": -1}}, "config: failure_threshold"),
    ({"count_error_results": "no_results"}, "count_error_results must be a list"),
])
def test_bad_options(options, message) -> None:
    with pytest.raises(ConfigError, match=message):
        GuardedClient(Client("http://127.0.0.1:1/mcp"), **options)
    with pytest.raises(ConfigError, match=r"client must be a fastmcp\.Client"):
        GuardedClient("http://127.0.0.1:1/mcp")  # type: ignore[arg-type]
