"""`cblab tune --apply URL --verify`: the pick, applied to a running server's breaker,
is checked live against the simulator's range over seeds.

Real processes on 127.0.0.1, ephemeral ports, as a user runs them::

    this test (cblab tune: load)  ->  gateway (breaker + admin API)  ->  cblab proxy  ->  weather server
                                      tests/tune/gateway.py              (the outage)     (stdio)

The crafted traffic (tests/tune/traffic.py: 30 s healthy, 20 s at 90 % errors, 30 s
healthy, 20 calls/s) is fitted, swept, the pick applied and verified on the fitted
outage compressed five times (16 s live), at 10 calls/s (on 2 shared cores, the four
processes a call crosses queue calls at the fitted 21/s when the machine is busy).
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cblab.stores.server import free_port
from cblab.tune.cli import main
from cblab.tune.verify import KPIS, Verification
from tests.helpers import eventually_sync
from tests.tune.traffic import crafted_rows, write_rows

pytestmark = pytest.mark.live

TOKEN = "verify-admin-token-0123"
TOOL = "get_forecast"
SEARCH = ["--workers", "1", "--seeds", "2", "--variants", "observed",
          "--param", "failure_threshold=3,5", "--param", "timeout=0.5,1"]


@dataclass
class Rig:
    server: str  # the gateway's base URL (admin API, /events, /mcp)
    proxy: str  # the fault proxy's control URL

    def breaker(self) -> dict[str, object]:
        response = httpx.get(f"{self.server}/admin/breakers/{TOOL}",
                             headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        response.raise_for_status()
        return response.json()["breaker"]["config"]  # type: ignore[no-any-return]


def _start(command: list[str], ready: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    eventually_sync(lambda: ready.exists() or process.poll() is not None, timeout=90,
                    what=f"{command[2]} ready")
    if process.poll() is not None:
        raise RuntimeError(f"{command} exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
    return process, json.loads(ready.read_text())


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("verify")
    weather = f"{sys.executable} -m cblab.examples.weather_server"
    proxy, proxy_info = _start([sys.executable, "-m", "cblab.cli", "proxy", "--upstream-cmd",
                                weather, "--ready-file", str(tmp / "proxy.json")],
                               tmp / "proxy.json")
    try:
        gateway, info = _start([sys.executable, "-m", "tests.tune.gateway", "--upstream",
                                proxy_info["mcp_url"], "--admin-token", TOKEN,
                                "--ready-file", str(tmp / "gateway.json")], tmp / "gateway.json")
        try:
            yield Rig(info["url"], proxy_info["control_url"])
        finally:
            _stop(gateway)
    finally:
        _stop(proxy)


@pytest.fixture
def traffic(tmp_path: Path) -> Path:
    return write_rows(tmp_path / "traffic.json", crafted_rows())


def _verify_args(rig: Rig, *extra: str) -> list[str]:
    return ["--apply", rig.server, "--token", TOKEN, "--breaker", TOOL, "--verify",
            "--verify-proxy", rig.proxy, "--verify-args", '{"city": "Oslo"}',
            "--verify-scale", "0.2", "--verify-rate", "10", "--verify-seeds", "20", *extra]


def test_verify_lands_inside_the_predicted_range(rig: Rig, traffic: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "config.json"
    code = main([str(traffic), *SEARCH, "-o", str(out), "--report", str(tmp_path / "report"),
                 *_verify_args(rig)])
    printed = capsys.readouterr()
    picked = json.loads(out.read_text())
    live = rig.breaker()
    assert (live["failure_threshold"], live["timeout"]) == (picked["failure_threshold"],
                                                            picked["timeout"])
    assert re.search(r"verified live: traffic-x0.2 \(16\.0 s, time scale 0.2\) at "
                     r"10\.0 calls/s", printed.out), printed.out
    lines = {line.split()[0]: line for line in printed.out.splitlines()
             if line.startswith("  ") and line.split()[0] in KPIS}
    assert set(lines) == set(KPIS), printed.out
    assert code == 0, printed.out + printed.err
    assert "every KPI inside the predicted range" in printed.out
    assert all(line.rstrip().endswith("yes") for line in lines.values()), printed.out
    assert "warning" not in printed.out
    # the report was written again after the replay, with the live table in it
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert '<section id="verification" class="card">' in page
    assert f"{len(KPIS)} of {len(KPIS)} live KPI(s) inside the range" in page


def _crafted_prediction(**ranges: tuple[float, float]) -> object:
    import pandas as pd

    return pd.DataFrame([{k: ranges[k][i] for k in ranges} for i in (0, 1)])


def test_a_bad_prediction_is_reported_per_kpi(rig: Rig) -> None:
    from cblab.tune.verify import verify_live

    scenario = {"name": "crafted", "phases": [
        {"name": "healthy", "duration_s": 20, "faults": {"users": {"error_rate": 0.0}},
         "load": {"rate_per_s": 20}},
        {"name": "outage", "duration_s": 20, "faults": {"users": {"error_rate": 1.0}},
         "load": {"rate_per_s": 20}},
        {"name": "recovered", "duration_s": 20, "faults": {"users": {}},
         "load": {"rate_per_s": 20}}]}
    config = {"failure_threshold": 3, "timeout": 0.5}
    httpx.put(f"{rig.server}/admin/breakers/{TOOL}", json=config, timeout=10,
              headers={"Authorization": f"Bearer {TOKEN}"}).raise_for_status()
    # a prediction no breaker meets on a 1 s total outage: never trips, all answered
    bad = _crafted_prediction(availability=(0.99, 1.0), share_failed_fast=(0.0, 0.0),
                              wasted_share=(0.0, 0.01), trips=(0, 0),
                              detection_s=(math.nan, math.nan), recovery_s=(math.nan, math.nan))
    result = verify_live(scenario, config, server=rig.server, breaker=TOOL, token=TOKEN,
                         proxy=rig.proxy, tool=TOOL, arguments={"city": "Oslo"}, scale=0.05,
                         predicted=bad)
    assert isinstance(result, Verification)
    table = result.table()
    assert list(table.columns[:5]) == ["kpi", "live", "predicted_low", "predicted_high", "inside"]
    assert list(table["kpi"]) == list(KPIS)
    assert table["inside"].dtype == bool
    live = dict(zip(table["kpi"], table["live"], strict=True))
    assert live["trips"] >= 1 and live["availability"] < 0.9, table  # the outage was played
    outside = set(table.loc[~table["inside"], "kpi"])
    assert {"availability", "share_failed_fast", "trips", "detection_s"} <= outside, table
    warned = {line.split(":")[0] for line in result.warnings}
    assert warned == outside
    trips = next(w for w in result.warnings if w.startswith("trips:"))
    assert trips == f"trips: live {live['trips']:g} is above the predicted 0 to 0 (2 seeds)"
    detection = next(w for w in result.warnings if w.startswith("detection_s:"))
    assert "no simulated seed of 2 had a value" in detection
    assert "warning: trips: live" in result.report()


def test_verify_without_apply_exits_2_before_work(traffic: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code = main([str(traffic), *SEARCH, "--verify", "--verify-proxy", "http://127.0.0.1:9"])
    printed = capsys.readouterr()
    assert code == 2
    assert printed.err == ("cblab tune: --verify needs --apply URL and its --token: it "
                           "verifies the pick on the server it was applied to\n")
    assert "fitted" not in printed.out  # refused before the fit and the sweep


@pytest.mark.parametrize(("flag", "route"), [("--verify-proxy", "/tools"),
                                             ("--apply", f"/admin/breakers/{TOOL}")])
def test_verify_with_an_unreachable_proxy_or_server_exits_2_before_work(
        rig: Rig, traffic: Path, capsys: pytest.CaptureFixture[str], flag: str,
        route: str) -> None:
    before = rig.breaker()
    dead = f"http://127.0.0.1:{free_port()}"
    args = _verify_args(rig)
    args[args.index(flag) + 1] = dead
    code = main([str(traffic), *SEARCH, *args])
    printed = capsys.readouterr()
    assert code == 2
    assert printed.err.startswith(f"cblab tune: cannot reach {dead}{route}: ")
    assert printed.err.count("\n") == 1 and "fitted" not in printed.out
    assert rig.breaker() == before  # nothing applied


def test_a_replay_too_long_exits_2_before_the_sweep(
        rig: Rig, traffic: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The replay's length depends on the fit: it is checked as soon as the fit is known,
    so a replay that would be refused costs no sweep and applies nothing."""
    before = rig.breaker()
    args = _verify_args(rig)
    args[args.index("--verify-scale") + 1] = "100"  # 80 s of crafted traffic: 8,000 s live
    code = main([str(traffic), *SEARCH, *args])
    printed = capsys.readouterr()
    assert code == 2
    match = re.fullmatch(r"cblab tune: the live replay would last (\d+) s \(more than 3600\): "
                         r"give a smaller --verify-scale\n", printed.err)
    assert match is not None, printed.err
    assert int(match.group(1)) == pytest.approx(100 * 80, rel=0.05)
    assert "searching" not in printed.out and "applied" not in printed.out
    assert rig.breaker() == before


def test_verify_without_a_proxy_exits_2(rig: Rig, traffic: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    args = _verify_args(rig)
    i = args.index("--verify-proxy")
    del args[i:i + 2]
    code = main([str(traffic), *SEARCH, *args])
    assert code == 2
    assert capsys.readouterr().err == (
        "cblab tune: --verify needs --verify-proxy URL: the control API of the fault proxy "
        "between the server and its dependency\n")


def test_the_replayed_scenario_is_the_fitted_one_scaled_with_counted_errors() -> None:
    from cblab.tune.replay import proxy_scenario
    from cblab.tune.verify import mean_rate, scaled_scenario

    fitted = {"name": "fitted", "phases": [
        {"name": "healthy", "duration_s": 30.0, "load": {"rate_per_s": 20.0},
         "faults": {"users": {"error_rate": 0.02,
                              "latency": {"kind": "lognormal", "median_ms": 50, "sigma": 0.3}}}},
        {"name": "outage", "duration_s": 10.0, "load": {"rate_per_s": 40.0},
         "faults": {"users": {"error_rate": 0.9, "slow_fraction": 0.1, "slow_ms": 4000}}}]}
    scaled = scaled_scenario(fitted, 0.1)
    assert scaled["name"] == "fitted-x0.1"
    assert [p["duration_s"] for p in scaled["phases"]] == pytest.approx([3.0, 1.0])
    assert mean_rate(scaled) == pytest.approx((3 * 20 + 1 * 40) / 4)
    played = proxy_scenario(scaled)
    assert [p["name"] for p in played["phases"]] == ["healthy", "outage"]
    healthy, outage = (p["faults"]["*"] for p in played["phases"])
    assert healthy["error_as"] == outage["error_as"] == "jsonrpc"  # what a breaker counts
    assert "latency" not in healthy  # the server's own latency plays, none added
    assert (outage["error_rate"], outage["slow_fraction"], outage["slow_ms"]) == (0.9, 0.1, 4000)
