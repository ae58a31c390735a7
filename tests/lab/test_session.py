"""The live lab's session without widgets or a browser: a real Stack on loopback.

One module-scoped stack (backend + protected server) is shared by the tests; each
test's session leaves it running (a given stack is never stopped by a session).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cblab.lab import LabParams, LabSession
from cblab.lab.loadproc import ProcessLoad
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
    second) must not show up as the service's latency: the callers run in a process of
    their own, and their calls are recorded whatever the kernel does. (How close the
    callers' p99 stays to the server's is a figure of `bench_lab`, not a test: on a
    loaded machine any margin is noise.)"""
    from cblab.lab import LiveLab

    async def run_the_view() -> LabSession:
        # wait=True: a headless run, no browser to wait for before drawing
        lab = LiveLab(LabParams(rate=40.0, update_hz=20.0, failure_threshold=3, wait=True),
                      stack=stack)
        lab.start()
        await asyncio.to_thread(eventually, lambda: lab.session.phase == "running")
        began = time.monotonic()
        while time.monotonic() - began < 6.0:  # and a busy kernel on top
            go.Figure([go.Scatter(x=np.arange(5_000), y=np.random.rand(5_000))]).to_json()
            await asyncio.sleep(0.02)
        lab.stop()
        await lab.session.wait_async()
        assert lab.feed.update_count > 20
        for variant, generator in lab.session.generators.items():
            assert isinstance(generator, ProcessLoad), (variant, generator)
            assert generator._process is not None and generator._process.pid != os.getpid()
        return lab.session

    import asyncio

    import plotly.graph_objects as go

    session = asyncio.run(run_the_view())
    events = session.events(None)
    calls = events[(events["kind"] == "call") & (events["outcome"] == "success")]
    load, served = calls[calls["source"] == "load"], calls[calls["source"] == "server"]
    assert len(load) > 100  # every call the callers made is in the recording
    # and the server saw as many, up to Stop: a call in flight then (up to a second on a
    # loaded machine, 40 a second) may be recorded by one side only
    cut = min(load["t"].max(), served["t"].max()) - load["latency"].max() - 0.5
    before_load, before_served = (load["t"] <= cut).sum(), (served["t"] <= cut).sum()
    assert before_load > 50 and abs(before_load - before_served) <= 0.05 * before_load


def test_an_export_keeps_a_session_longer_than_the_memory_cap(stack: Stack, tmp_path: Path) -> None:
    """The recording spills to disk past `recording_rows`: the export holds every row
    from t = 0, says when the session started (not when it was exported) and lasts as
    long as the session did."""
    import datetime as dt

    from cblab.lab.record import export_session
    from cblab.runs import load_run

    session = LabSession(LabParams(failure_threshold=3, breaker_timeout=1.0, rate=40.0,
                                   update_hz=10.0, run_seconds=4.0),
                         stack=stack, recording_rows=50, load_process=False).start()
    session.wait(timeout=180)
    assert session.phase == "finished" and session.error is None
    recording = session.feed.recording
    assert recording.spilled > 4 * 50 and recording.in_memory < 50  # mostly on disk
    assert len(recording) == session.feed.rows_in and recording.not_kept == 0
    path = export_session(session, tmp_path)
    (run_dir,) = (tmp_path / "runs").iterdir()
    run = load_run(run_dir)
    events = run.events
    assert len(events) == len(session.events(None).query("t >= 0"))
    assert len(events) > 4 * 50
    load = events[events["source"] == "load"]
    assert load["t"].min() < 0.5  # the start of the session is there
    assert load["t"].max() > 3.0
    assert run.meta.duration_s == pytest.approx(session.ended_at, abs=0.01)
    started = dt.datetime.fromisoformat(run.meta.started_at)
    exported = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    assert started == dt.datetime.fromisoformat(session.started_wall)
    assert (exported - started).total_seconds() >= 4.0  # the session's start, not the export's
    assert "holds the whole session" in run.meta.notes


def test_a_capped_recording_says_what_it_did_not_keep(stack: Stack, tmp_path: Path) -> None:
    from cblab.lab.record import export_session
    from cblab.lab.recording import Recording
    from cblab.runs import load_run

    session = LabSession(LabParams(failure_threshold=3, breaker_timeout=1.0, rate=40.0,
                                   update_hz=10.0, run_seconds=3.0), stack=stack,
                         load_process=False)
    session.feed.recording = Recording(20, max_rows=100, t_index=2)
    session.start().wait(timeout=180)
    recording = session.feed.recording
    assert len(recording) == 100 and recording.not_kept > 0
    export_session(session, tmp_path)
    (run_dir,) = (tmp_path / "runs").iterdir()
    run = load_run(run_dir)
    kept = session.events(None)
    assert len(run.events) == ((kept["t"] >= 0) & (kept["t"] < recording.stopped_at)).sum()
    assert run.meta.duration_s == pytest.approx(recording.stopped_at, abs=0.001)
    assert run.events["t"].max() < recording.stopped_at < session.ended_at
    assert f"{recording.not_kept:,} rows not kept" in run.meta.notes
