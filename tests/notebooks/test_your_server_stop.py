"""08's Stop ends the user's stdio server: the lab's target (the fault proxy in front of
a stdio command line) stops the server's process, not only its session."""

from __future__ import annotations

import sys

import psutil
import pytest

from cblab.lab import LabParams
from cblab.lab.session import LabSession
from tests.helpers import eventually_sync

pytestmark = pytest.mark.live

WEATHER = [sys.executable, "-m", "cblab.examples.weather_server"]


def _servers() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True)
            if "cblab.examples.weather_server" in " ".join(p.cmdline())]


def test_stopping_the_lab_ends_the_stdio_server_it_started() -> None:
    assert not _servers()
    session = LabSession(LabParams(rate=5.0), target=WEATHER, tool="get_forecast",
                         arguments={"city": "Oslo", "days": 1}, breaker="get_forecast",
                         latency_ms=0).start()
    try:
        eventually_sync(lambda: session.running and session.started_at is not None
                        and _servers(), timeout=60, what="the lab and its server running")
    finally:
        session.stop()
        session.wait(timeout=60)
    assert session.phase == "stopped", session.error
    eventually_sync(lambda: not _servers(), timeout=15, what="the weather server's exit")
