"""The live lab's session without widgets or a browser: a real Stack on loopback.

One module-scoped stack (backend + protected server) is shared by the tests; each
test's session leaves it running (a given stack is never stopped by a session).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cblab.lab import LabParams, LabSession
from cblab.lab.target import FaultControl, LabTarget, StackTarget
from cblab.stack import Stack

pytestmark = pytest.mark.live


def eventually(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or check}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(("protected",), github={"failure_threshold": 3, "timeout": 1.0}) as s:
        yield s


def _session(stack: Stack, **params: Any) -> LabSession:
    base = {"failure_threshold": 3, "breaker_timeout": 1.0, "rate": 30.0, "update_hz": 10.0}
    return LabSession(LabParams(**{**base, **params}), stack=stack)


def test_stack_target_fits_the_interfaces(stack: Stack) -> None:
    target = StackTarget(["protected"], stack=stack)
    assert isinstance(target, LabTarget) and isinstance(target.faults, FaultControl)


def test_session_trips_recovers_stops_and_exports(stack: Stack, tmp_path: Path) -> None:
    session = _session(stack).start()
    try:
        eventually(lambda: session.phase == "running", what="the load to start")
        eventually(lambda: session.summary()["protected"].get("calls", 0) > 20, what="calls")
        assert session.summary()["protected"]["state"] == "closed"
        session.set(error_rate=100)
        eventually(lambda: session.summary()["protected"]["state"] == "open", what="OPEN")
        session.set(error_rate=0)
        eventually(lambda: session.summary()["protected"]["state"] == "closed", what="CLOSED")
        # A setting the server refuses comes back as a note, and nothing changes.
        session.set(timeout=2.5)
        eventually(lambda: "applied" in session.note.text, what="the timeout applied")
        assert session.config.timeout == 2.5 and not session.note.bad
        assert stack.server("protected").status()["github"]["config"]["timeout"] == 2.5
    finally:
        session.stop()
    session.wait(timeout=30)
    assert session.phase == "stopped" and session.finished and session.error is None
    assert set(session.summary()["protected"]["states_seen"]) >= {"closed", "open", "half_open"}
    applied = [c for _, c, _ in session.applied]
    assert applied.count("error_rate") == 2 and "breaker" in applied
    report = session.events(None)
    assert {"load", "server"} <= set(report["source"])
    from cblab.lab.record import export_session

    path = export_session(session, tmp_path)
    assert path.is_file() and path.suffix == ".html"
    assert stack.running  # a given stack is left running


def test_load_runs_off_the_callers_thread(stack: Stack) -> None:
    """What the kernel does (building the FigureWidget, redrawing it several times a
    second) must not show up as the service's latency: the callers' p99 stays
    within a small margin of what the server measured."""
    from cblab.lab import LiveLab

    async def run_the_view() -> LabSession:
        lab = LiveLab(LabParams(rate=40.0, update_hz=20.0, failure_threshold=3), stack=stack)
        lab.start()
        await asyncio.to_thread(eventually, lambda: lab.session.phase == "running")
        began = time.monotonic()
        while time.monotonic() - began < 6.0:  # and a busy kernel on top
            go.Figure([go.Scatter(x=np.arange(5_000), y=np.random.rand(5_000))]).to_json()
            await asyncio.sleep(0.02)
        lab.stop()
        await lab.session.wait_async()
        assert lab.feed.update_count > 20
        return lab.session

    import asyncio

    import plotly.graph_objects as go

    session = asyncio.run(run_the_view())
    events = session.events(None)
    calls = events[(events["kind"] == "call") & (events["outcome"] == "success")]
    load = calls[calls["source"] == "load"]["latency"] * 1000
    served = calls[calls["source"] == "server"]["latency"] * 1000
    assert len(load) > 100
    # The caller also pays the MCP round trip (the p50 gap); a stalled caller would
    # add hundreds of ms at the tail (a thread sharing the kernel's interpreter
    # lock did: p99 +345 ms over a p50 gap of 53 ms).
    overhead = max(load.quantile(0.5) - served.quantile(0.5), 0.0)
    gap = load.quantile(0.99) - served.quantile(0.99)
    print(f"caller p99 {load.quantile(0.99):.1f} ms, server p99 {served.quantile(0.99):.1f} ms,"
          f" p50 gap {overhead:.1f} ms")
    assert gap <= max(50.0, 3 * overhead), f"p99 gap {gap:.0f} ms, p50 gap {overhead:.0f} ms"
