"""The live lab pointed at any MCP server: proxy in front, load through the client guard."""

from __future__ import annotations

import asyncio
import time

from cblab.lab import LabParams
from cblab.lab.proxy_target import ProxyTarget
from cblab.lab.session import LabSession
from cblab.load import LoadGenerator
from cblab.server.app import ServerRunner

CONFIG = {"failure_threshold": 3, "timeout": 0.5, "success_threshold": 1,
          "half_open_max_calls": 1}


async def _until(check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_fault_sliders_move_the_proxy_and_the_guard_opens_and_closes(
    upstream: ServerRunner,
) -> None:
    target = ProxyTarget(upstream.mcp_url, "echo", deadline=2.0)
    await target.start("echo", CONFIG)
    try:
        hop = target.hops["protected"]
        gen = LoadGenerator(target.mcp_target("protected"), "echo", {"x": 1}, rate=15,
                            keep_all=True)
        run = asyncio.create_task(gen.run(duration=60))
        await _until(lambda: gen.counts["success"] >= 5)
        await target.faults.patch_faults("users", error_rate=1.0)
        assert target.proxy.table.get("*").profile.error_rate == 1.0
        await _until(lambda: hop.breaker.state.value == "open")
        await target.faults.patch_faults("users", mode="down")
        assert not target.proxy.listening
        await target.faults.set_faults("users", error_rate=0.0)  # healthy and up again
        await _until(lambda: hop.breaker.state.value == "closed")
        await target.configure_breaker("protected", "echo", failure_threshold=7)
        assert hop.breaker.config.failure_threshold == 7
        gen.stop()
        await run
        rows = target.hops["protected"].instrumentation.rows()["events"]
        moves = [(r["state"], r["state_after"]) for r in rows if r["kind"] == "state"]
        assert ("closed", "open") in moves and moves[-1][1] == "closed"
        reached = target.proxy_events()["events"]
        assert reached and all(r["source"] == "proxy" for r in reached)
        assert gen.counts["rejected"] > 0  # refused by the guard, never reached the proxy
    finally:
        await target.stop()


async def test_lab_session_against_a_url_target(upstream: ServerRunner) -> None:
    params = LabParams(run_seconds=6, rate=10, breaker_timeout=0.5, failure_threshold=3)
    session = LabSession(params, target=upstream.mcp_url, tool="echo", arguments={"x": 2},
                         latency_ms=0)
    session.start()
    try:
        await _until(lambda: session.phase == "running", timeout=60)
        session.set(error_rate=100)
        await _until(lambda: "open" in set(session.events()["state_after"].dropna()), 30)
        session.set(error_rate=0)
        await session.wait_async()
    finally:
        session.stop()
    assert session.error is None, session.error
    load = session.events(source="load")
    assert (load["outcome"] == "success").sum() > 5
    assert (load["outcome"] == "rejected").sum() > 0


async def test_no_fastmcp_proxy_chatter_in_the_users_output(
    upstream: ServerRunner, capfd, caplog,  # type: ignore[no-untyped-def]
) -> None:
    """fastmcp's "Proxy detected connected client - reusing existing session..." INFO line
    went into the notebook's output (issue 18, item 6)."""
    import logging

    with caplog.at_level(logging.INFO):
        target = ProxyTarget(upstream.mcp_url, "echo", deadline=2.0)
        await target.start("echo", CONFIG)
        await target.stop()
    out, err = capfd.readouterr()
    for text in (out, err, caplog.text):
        assert "Proxy detected connected client" not in text
