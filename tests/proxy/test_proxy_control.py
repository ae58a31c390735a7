"""The proxy's control API, safety rules, startup errors, stdio upstream, scenarios, seeds."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from mcp.shared.exceptions import MCPError

from cblab.faults.profile import FaultProfile, plan_request, rng_for
from cblab.proxy import FaultProxy, ProxyError, UnknownToolError
from cblab.sim import simulate

from .conftest import STDIO_SERVER
from .test_proxy_faults import rows_of

AUTH = {"Authorization": "Bearer control-secret"}


async def test_control_api_token_validation_and_routes(proxy: FaultProxy) -> None:
    async with httpx.AsyncClient(base_url=proxy.control_url) as http:
        assert (await http.get("/health")).json()["listening"] is True
        assert (await http.get("/faults")).status_code == 401
        wrong = await http.get("/faults", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        tools = (await http.get("/tools", headers=AUTH)).json()["tools"]
        assert "echo" in tools
        put = await http.put("/faults/echo", headers=AUTH, json={"error_rate": 0.5})
        assert put.status_code == 200 and put.json()["error_rate"] == 0.5
        patch = await http.patch("/faults/echo", headers=AUTH, json={"error_as": "jsonrpc"})
        assert patch.json()["error_as"] == "jsonrpc" and patch.json()["error_rate"] == 0.5
        assert set((await http.get("/faults", headers=AUTH)).json()) == {"*", "echo"}
        bad = await http.put("/faults/echo", headers=AUTH, json={"error_rate": 2})
        assert bad.status_code == 422 and "error_rate" in bad.json()["error"]
        bad = await http.put("/faults/echo", headers=AUTH, json={"error_as": "smoke"})
        assert bad.status_code == 422 and "error_as" in bad.json()["error"]
        down = await http.put("/faults/echo", headers=AUTH, json={"mode": "down"})
        assert down.status_code == 422 and "'*'" in down.json()["error"]
        unknown = await http.put("/faults/nope", headers=AUTH, json={})
        assert unknown.status_code == 404 and "echo" in unknown.json()["error"]
        star = await http.patch("/faults/%2A", headers=AUTH, json={"error_rate": 0.1})
        assert star.status_code == 200
        assert (await http.delete("/faults/echo", headers=AUTH)).json()["error_rate"] == 0.1
        assert (await http.post("/faults", headers=AUTH)).status_code == 405
        assert (await http.put("/faults/echo", headers=AUTH, content=b"{")).status_code == 400
        # down keeps the control API answering
        await http.put("/faults/*", headers=AUTH, json={"mode": "down"})
        assert (await http.get("/health")).json()["listening"] is False
        assert (await http.delete("/faults", headers=AUTH)).status_code == 200
        assert (await http.get("/health")).json()["listening"] is True
        async with Client(proxy.mcp_url) as client:
            await client.call_tool_mcp("echo", {"x": 1})
        events = (await http.get("/events?after=0&limit=10", headers=AUTH)).json()
        assert events["events"][-1]["source"] == "proxy"
        assert (await http.get("/events?limit=x", headers=AUTH)).status_code == 400


async def test_foreign_host_and_origin_are_refused(proxy: FaultProxy) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with httpx.AsyncClient() as http:
        host = await http.post(proxy.mcp_url, json=body, headers={"Host": "evil.example"})
        origin = await http.post(proxy.mcp_url, json=body,
                                 headers={"Origin": "http://evil.example"})
    assert host.status_code == 421
    assert origin.status_code == 403
    async with httpx.AsyncClient(base_url=proxy.control_url, headers=AUTH) as http:
        assert (await http.get("/faults", headers={"Host": "evil.example"})).status_code == 421
        refused = await http.put("/faults/*", json={"mode": "down"},
                                 headers={"Origin": "http://evil.example"})
        assert refused.status_code == 403 and proxy.listening


async def test_the_control_token_never_reaches_the_upstream(proxy: FaultProxy) -> None:
    transport = StreamableHttpTransport(
        proxy.mcp_url, headers={**AUTH, "X-Trace": "t-1"}
    )
    async with Client(transport) as client:
        seen = (await client.call_tool_mcp("seen_headers", {})).structured_content
    seen = {k.lower(): v for k, v in seen.items()}
    assert "host" in seen  # the upstream did report what it received
    assert "control-secret" not in repr(seen) and "authorization" not in seen


async def test_tool_arguments_are_not_logged_at_info(
    proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    await proxy.set_fault("*", {"error_rate": 1.0, "error_as": "jsonrpc"})
    with caplog.at_level(logging.INFO):
        async with Client(proxy.mcp_url) as client:
            with pytest.raises(Exception):
                await client.call_tool_mcp("users", {"login": "s3cr3t-value"})
    assert "s3cr3t-value" not in caplog.text


async def test_startup_errors_are_sentences() -> None:
    with pytest.raises(ProxyError, match=r"cannot reach upstream http://127\.0\.0\.1:9/mcp: "
                                         r"connection refused"):
        await FaultProxy("http://127.0.0.1:9/mcp", connect_timeout=10).start()
    with pytest.raises(ProxyError, match="not found"):
        FaultProxy("no-such-command-cblab --flag")
    with pytest.raises(ProxyError, match="cannot reach upstream"):
        await FaultProxy([sys.executable, "-c", "import sys; sys.exit(3)"],
                         connect_timeout=20).start()
    with pytest.raises(ProxyError, match="http"):
        FaultProxy("ftp://example.org/mcp")


async def test_unknown_tool_is_a_clear_error(proxy: FaultProxy) -> None:
    with pytest.raises(UnknownToolError, match=r"unknown tool 'nope'.*echo"):
        await proxy.set_fault("nope", {})


def test_cli_startup_error_is_one_line_not_a_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cblab.cli", "proxy", "--upstream", "http://127.0.0.1:9/mcp"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert "cannot reach upstream http://127.0.0.1:9/mcp: connection refused" in done.stderr
    assert "Traceback" not in done.stderr


async def test_stdio_upstream_forwards_and_injects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CBLAB_PROXY_TOKEN", "control-secret")
    monkeypatch.setenv("MY_SERVER_SETTING", "kept")
    async with FaultProxy(STDIO_SERVER, seed=1) as proxy:
        assert "echo" in proxy.tools
        async with Client(proxy.mcp_url) as client:
            assert (await client.call_tool_mcp("echo", {"x": 3})).structured_content == {
                "result": 3}
            assert (await client.read_resource("test://greeting"))[0].text.startswith("hello")
            # the user's environment reaches their server, cblab's control token does not
            seen = await client.call_tool_mcp("seen_env", {"name": "MY_SERVER_SETTING"})
            assert seen.structured_content == {"result": "kept"}
            seen = await client.call_tool_mcp("seen_env", {"name": "CBLAB_PROXY_TOKEN"})
            assert seen.structured_content == {"result": ""}
            await proxy.set_fault("echo", {"error_rate": 1.0})
            assert (await client.call_tool_mcp("echo", {"x": 3})).is_error


async def test_same_seed_same_decisions_as_the_simulator(proxy: FaultProxy) -> None:
    """Tool "users" through the proxy with seed 7 fails exactly where the simulator's
    "users" service does for seed 7 (both draw `plan_request(profile, rng_for(7, "users"))`)."""
    profile = {"error_rate": 0.4}
    scenario = {"name": "flaky", "phases": [
        {"name": "flaky", "duration_s": 4, "faults": {"users": profile}}]}
    sim = simulate(scenario, seed=7, protected=False, rate=10, arrivals="constant")
    calls = sorted((r for r in sim.events if r["kind"] == "call"), key=lambda r: r["t"])
    sim_failed = [row["outcome"] == "failure" for row in calls]
    await proxy.set_fault("users", profile)
    async with Client(proxy.mcp_url) as client:
        proxy_failed = [(await client.call_tool_mcp("users", {})).is_error
                        for _ in range(len(sim_failed))]
    assert 5 < sum(proxy_failed) < len(proxy_failed) - 5  # both kinds happen
    assert proxy_failed == sim_failed
    rng = rng_for(7, "users")
    expected = [plan_request(FaultProfile(error_rate=0.4), rng).kind == "error"
                for _ in proxy_failed]
    assert proxy_failed == expected


async def test_scenario_phases_label_the_rows(proxy: FaultProxy) -> None:
    scenario = {"name": "blip", "phases": [
        {"name": "calm", "duration_s": 60, "faults": {}},
        {"name": "storm", "duration_s": 60, "faults": {"*": {"error_rate": 1.0}}},
    ]}
    async with Client(proxy.mcp_url) as client:
        await proxy.play(scenario, time_scale=1.0)
        assert not (await client.call_tool_mcp("echo", {"x": 1})).is_error
        await proxy.play(scenario | {"phases": scenario["phases"][1:]})
        assert (await client.call_tool_mcp("echo", {"x": 1})).is_error
    rows = await rows_of(proxy, 2)
    assert [r["phase"] for r in rows] == ["calm", "storm"]
    await proxy.stop_scenario()
    assert proxy.faults() == {"*": proxy.table.get("*").to_dict()}
    assert proxy.table.get("*").profile.error_rate == 0


async def test_shipped_scenario_maps_a_service_onto_tools(proxy: FaultProxy) -> None:
    async with httpx.AsyncClient(base_url=proxy.control_url, headers=AUTH) as http:
        status = (await http.post("/scenario", json={
            "name": "outage-and-recovery", "time_scale": 0.01})).json()
        assert status["name"] == "outage-and-recovery"
        assert status["ignored_services"] == ["orders"]
        bad = await http.post("/scenario", json={"name": "../etc/passwd"})
        assert bad.status_code == 422
        bad = await http.post("/scenario", json={
            "scenario": {"name": "x", "phases": [{"name": "p", "duration_s": 1,
                                                  "faults": {"nope": {}}}]}})
        assert bad.status_code == 422 and "nope" in bad.json()["error"]
        await proxy.wait_scenario()
        assert (await http.get("/scenario")).json()["phase_name"] == "recovery"
        assert proxy.listening


async def test_cli_serves_until_sigterm_and_refuses_unknown_tools(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    base = [sys.executable, "-m", "cblab.cli", "proxy", "--upstream-cmd",
            " ".join(STDIO_SERVER)]
    process = await asyncio.create_subprocess_exec(
        *base, "--fault", '{"error_rate": 1.0, "error_as": "jsonrpc"}', "--ready-file",
        str(ready), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while not ready.exists():
            assert process.returncode is None and asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.1)
        info = json.loads(ready.read_text())
        async with Client(info["mcp_url"]) as client:
            with pytest.raises(MCPError):
                await client.call_tool_mcp("echo", {"x": 1})
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
    assert process.returncode == 0 and not ready.exists()
    done = await asyncio.create_subprocess_exec(
        *base, "--tool-fault", "nope={}", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(done.communicate(), 60)
    assert done.returncode == 1
    assert "unknown tool 'nope'" in err.decode() and "Traceback" not in err.decode()


def test_scenario_files_name_tools_and_bad_ones_say_where(tmp_path: Path) -> None:
    from cblab.faults.scenario import ScenarioError
    from cblab.proxy import ProxyScenario

    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"name": "mine", "phases": [
        {"name": "slow", "duration_s": 5, "faults": {
            "get_forecast": {"latency": {"kind": "constant", "ms": 300}},
            "*": {"error_rate": 0.1, "error_as": "jsonrpc"}}}]}))
    scenario = ProxyScenario.load(str(path))
    assert scenario.tools() == {"get_forecast", "*"}
    assert scenario.phases[0].faults["*"].error_as == "jsonrpc"
    path.write_text(json.dumps({"name": "bad", "phases": [
        {"name": "p", "duration_s": 5, "faults": {"t": {"mode": "down"}}}]}))
    with pytest.raises(ScenarioError, match=r"mine|bad.json: phase 0 \('p'\): faults.t: .*'\*'"):
        ProxyScenario.load(str(path))
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'"):
        ProxyScenario.load("nope")
    shipped = ProxyScenario.load("flapping", services={"orders": "*"})
    assert shipped.ignored == ("users",)
