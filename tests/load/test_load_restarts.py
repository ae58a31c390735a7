"""A long run of the load generator survives its server going away and coming back.

Real third-party servers from the registries (`cblab.testing.reference`): npm's
"everything" over Streamable HTTP, SIGKILLed and restarted on the same port, and
PyPI's `mcp-server-time` over stdio, whose process is SIGKILLed and kept down for a
while. The run goes on by itself: successes before, one failure row per arrival
while the server is away (a connection failure's code, no traceback, no silence),
successes again after, and `run()` returns normally.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from fastmcp import Client, FastMCP
from fastmcp.client.transports import StdioTransport

from cblab.load import LoadGenerator
from cblab.proxy.server import warm_up
from cblab.runs import load_run
from cblab.server import ServerRunner
from cblab.testing.reference import time_server_command
from tests.helpers import eventually
from tests.integrations.conftest import everything
from tests.integrations.reference_servers import StdioServer

from .test_load_generator import assert_one_record_per_arrival

__all__ = ["everything"]

# How a server that went away shows in the rows' error_type (cblab.integrations.classify).
CONNECTION_CODES = {"ConnectError", "connection_closed", "session_terminated", "ReadError",
                    "RemoteProtocolError", "stream_broken"}


def _rows(gen: LoadGenerator) -> list[dict[str, Any]]:
    return sorted(gen.records(), key=lambda row: row["seq"])


def _count_after(gen: LoadGenerator, seq: int, outcome: str) -> int:
    return sum(1 for r in gen.records() if r["seq"] > seq and r["outcome"] == outcome)


def _successes_after_the_last_failure(gen: LoadGenerator) -> int:
    rows = gen.records()
    last = max((r["seq"] for r in rows if r["outcome"] == "failure"), default=0)
    return sum(r["seq"] > last and r["outcome"] == "success" for r in rows)


async def _away_and_back(gen: LoadGenerator, go_away: Callable[[], Any],
                         come_back: Callable[[], Awaitable[Any] | None]) -> set[int]:
    """Run `gen` while the server goes away and comes back; the arrivals answered
    before it went away."""
    run = asyncio.get_running_loop().create_task(gen.run(duration=600))
    await eventually(lambda: gen.counts["success"] >= 3, timeout=60, what="successes")
    answered = {r["seq"] for r in gen.records()}  # before it went away
    go_away()
    gone = gen.sent
    await eventually(lambda: _count_after(gen, gone, "failure") >= 3, timeout=60,
                     what="failures while the server is away")
    back = come_back()
    if back is not None:
        await back
    await eventually(lambda: _successes_after_the_last_failure(gen) >= 5, timeout=60,
                     what="five successes in a row after the server came back")
    gen.stop()
    assert await asyncio.wait_for(run, 60) is gen  # the run ends normally
    return answered


def _check_the_three_stretches(gen: LoadGenerator, answered: set[int], codes: set[str]) -> None:
    """Successes until the server went away (`answered`); then failures with a
    connection code (besides calls past their deadline or the in-flight cap while it
    was away or starting); and successes again: at least five after the last failure."""
    assert_one_record_per_arrival(gen)
    rows = _rows(gen)
    assert "cancelled" not in gen.counts, gen.counts
    assert answered and all(r["outcome"] == "success" for r in rows if r["seq"] in answered)
    later = [r for r in rows if r["seq"] not in answered]
    failures = {r["error_type"] for r in later if r["outcome"] == "failure"}
    assert failures and failures <= codes, failures
    assert {(r["outcome"], r["error_type"]) for r in later if r["outcome"] not in {
        "success", "failure"}} <= {("dropped", "in_flight_cap"), ("timeout", "deadline_exceeded")}
    assert _successes_after_the_last_failure(gen) >= 5
    assert gen.reconnects >= 1


async def test_a_load_run_over_http_resumes_after_the_server_restarts(everything) -> None:
    gen = LoadGenerator(everything.url, "echo", {"message": "hi"}, rate=20,
                        arrivals="constant", deadline=5, keep_all=True, breaker="everything")
    answered = await _away_and_back(gen, everything.kill, everything.start)
    _check_the_three_stretches(gen, answered, CONNECTION_CODES)


async def test_a_load_run_over_stdio_respawns_a_crashed_server(tmp_path) -> None:
    server = StdioServer(time_server_command(), tmp_path)
    client = Client(StdioTransport(server.command[0], server.command[1:]))
    gen = LoadGenerator(client, "get_current_time", {"timezone": "UTC"}, rate=20,
                        arrivals="constant", deadline=5, keep_all=True, breaker="time")
    first: list[int] = []

    def crash() -> None:
        first.append(server.kill_and_keep_down())

    await warm_up()  # the client's one-off first-call cost (seconds), as `cblab load` does
    answered = await _away_and_back(gen, crash, server.allow_up)
    # The respawned server may answer some of the calls queued behind the reconnect
    # (sent together the moment its session opened) "invalid params" (-32602): seen
    # from mcp-server-time, an answer of a server just back, recorded as such.
    _check_the_three_stretches(gen, answered, CONNECTION_CODES | {"jsonrpc_-32602"})
    assert server.pid() != first[0]  # a new process answered


def _counting_server(calls: list[int]) -> FastMCP:
    mcp = FastMCP("restarting")

    @mcp.tool
    def echo(x: int) -> int:
        """Return x (and count the call)."""
        calls.append(x)
        return x

    return mcp


async def test_cblab_load_goes_on_recording_across_a_server_restart(tmp_path) -> None:
    """`cblab load` against a server stopped and started again on the same port mid-run:
    the command ends normally (exit 0, no traceback) and its run holds successes, the
    failures while the server was away, and successes after it came back."""
    calls: list[int] = []
    runner = await ServerRunner(_counting_server(calls), graceful_shutdown_s=0.5).start()
    port, out = runner.port, tmp_path / "run"
    load = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cblab.cli", "load", runner.mcp_url, "--tool", "echo",
        "--args", '{"x": 1}', "--rate", "20", "--arrivals", "constant", "--duration", "8",
        "--deadline", "2", "--warmup", "1", "--out", str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await eventually(lambda: len(calls) >= 6, timeout=60, what="calls before the stop")
        await runner.stop()
        await asyncio.sleep(1.0)  # the server stays away a second: about 20 arrivals
        seen = len(calls)
        runner = await ServerRunner(_counting_server(calls), port=port).start()
        await eventually(lambda: len(calls) >= seen + 5, timeout=30,
                         what="calls after the restart")
        stdout, stderr = await asyncio.wait_for(load.communicate(), 60)
    finally:
        if load.returncode is None:
            load.kill()
            await load.wait()
        await runner.stop()
    assert load.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr and b"run saved to" in stdout
    rows = load_run(out).events.sort_values("seq")
    outcomes = list(rows["outcome"])
    first_failure = outcomes.index("failure")
    assert first_failure > 0 and set(outcomes[:first_failure]) == {"success"}
    failures = set(rows.loc[rows["outcome"] == "failure", "error_type"])
    assert failures <= CONNECTION_CODES, failures
    last_failure = len(outcomes) - 1 - outcomes[::-1].index("failure")
    assert outcomes[last_failure + 1:].count("success") >= 5
