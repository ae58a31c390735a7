"""Issue 18's warm-up and fit path on real third-party servers from the registries:
`cblab load` (warm-up, then recorded calls with a phase label) and `cblab fit` on the
run, against npm's "everything" over Streamable HTTP and PyPI's `mcp-server-time` over
stdio (behind `cblab proxy`, as a stdio server is loaded)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from cblab.proxy import FaultProxy
from cblab.runs import load_run
from cblab.testing.reference import EverythingHttp, time_server_command
from tests.helpers import run_cblab

TARGETS = {  # name -> (tool, arguments)
    "everything-http": ("echo", {"message": "hi"}),
    "time-stdio": ("get_current_time", {"timezone": "UTC"}),
}


@asynccontextmanager
async def _serving(name: str) -> AsyncIterator[str]:
    """The server's MCP URL while it runs."""
    if name == "everything-http":
        server = await EverythingHttp().start()
        try:
            yield server.url
        finally:
            await server.stop()
    else:
        async with FaultProxy(time_server_command(), connect_timeout=60) as proxy:
            yield proxy.mcp_url


@pytest.mark.parametrize("name", list(TARGETS))
async def test_load_warms_up_and_fit_writes_a_profile(name: str, tmp_path: Path) -> None:
    tool, arguments = TARGETS[name]
    run_dir, profile = tmp_path / "run", tmp_path / "profile.json"
    async with _serving(name) as url:
        code, stdout, stderr = await run_cblab(
            "load", url, "--tool", tool, "--args", json.dumps(arguments), "--rate", "20",
            "--duration", "2", "--warmup", "2", "--phase", "steady", "--out", str(run_dir),
            timeout=180)
    assert code == 0, stderr
    assert "warm-up: 2 call(s) in" in stdout and "not recorded" in stdout
    run = load_run(run_dir)
    assert len(run.events) >= 20 and set(run.events["phase"]) == {"steady"}
    assert set(run.events["outcome"]) == {"success"}, run.events["error_type"].unique()

    code, stdout, stderr = await run_cblab("fit", str(run_dir), "-o", str(profile), timeout=180)
    assert code == 0, stderr
    assert "p99_ms_fitted" in stdout and "steady" in stdout
    scenario = json.loads(profile.read_text())
    assert [phase["name"] for phase in scenario["phases"]] == ["steady"]
    (faults,) = scenario["phases"][0]["faults"].values()  # the simulator's one service
    assert faults["error_rate"] == 0.0 and faults["latency"]["kind"]
    assert 5 < scenario["phases"][0]["load"]["rate_per_s"] < 40  # Poisson at 20/s, 2 s
