"""`cblab load`: open-loop load on any MCP endpoint, saved as a recorded run."""

from __future__ import annotations

from pathlib import Path

from cblab.proxy import FaultProxy
from cblab.runs import load_run
from cblab.server.app import ServerRunner
from tests.helpers import run_cblab


async def test_load_writes_a_recorded_run(upstream: ServerRunner, tmp_path: Path) -> None:
    out = tmp_path / "my-run"
    code, stdout, stderr = await run_cblab(
        "load", upstream.mcp_url, "--tool", "users", "--args", '{"login": "s3cr3t"}',
        "--rate", "10", "--duration", "1.5", "--out", str(out))
    assert code == 0, stderr
    assert "run saved to" in stdout
    run = load_run(out)
    assert len(run.events) >= 5
    assert set(run.events["source"]) == {"load"} and set(run.events["tool"]) == {"users"}
    assert run.meta.kind == "live" and run.meta.extra["tool"] == "users"
    assert "s3cr3t" not in (out / "run.json").read_text()
    assert "s3cr3t" not in (out / "events.csv").read_text()


async def test_load_refuses_bad_input_with_one_line(upstream: ServerRunner,
                                                    tmp_path: Path) -> None:
    code, _, stderr = await run_cblab("load", upstream.mcp_url, "--tool", "nope",
                                   "--duration", "1", "--out", str(tmp_path / "r"))
    assert code == 2 and "unknown tool 'nope'" in stderr and "echo" in stderr
    code, _, stderr = await run_cblab("load", "http://127.0.0.1:9/mcp", "--tool", "echo",
                                   "--out", str(tmp_path / "r"))
    assert code == 2 and "connection refused" in stderr and "Traceback" not in stderr
    code, _, stderr = await run_cblab("load", upstream.mcp_url, "--tool", "echo",
                                   "--args", "[1]", "--out", str(tmp_path / "r"))
    assert code == 2 and "--args must be a JSON object" in stderr


async def test_load_warms_up_before_it_records(proxy: FaultProxy, tmp_path: Path) -> None:
    """The warm-up calls reach the server (the proxy counts them) but not the run, and
    the command says so; rows carry the phase label and the injected status."""
    await proxy.set_fault("echo", {"error_rate": 1.0})  # every call: an injected 500
    out = tmp_path / "warm"
    code, stdout, stderr = await run_cblab(
        "load", proxy.mcp_url, "--tool", "echo", "--args", '{"x": 1}', "--rate", "10",
        "--duration", "1", "--warmup", "3", "--phase", "steady", "--out", str(out))
    assert code == 0, stderr
    assert "warm-up: 3 call(s) in" in stdout and "not recorded" in stdout
    run = load_run(out)
    seen_by_proxy = sum(proxy.stats()["tools"]["echo"].values())
    assert seen_by_proxy == len(run.events) + 3
    assert run.meta.extra["warmup_calls"] == 3 and run.meta.extra["warmup_s"] > 0
    assert set(run.events["phase"]) == {"steady"}
    assert set(run.events["error_type"]) == {"http_500"}


async def test_load_refuses_a_bad_warmup(upstream: ServerRunner, tmp_path: Path) -> None:
    code, _, stderr = await run_cblab("load", upstream.mcp_url, "--tool", "echo",
                                   "--warmup", "1000", "--out", str(tmp_path / "r"))
    assert code == 2 and "--warmup must be 0 to 100 calls" in stderr
