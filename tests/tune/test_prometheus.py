"""`cblab tune --prometheus` (and `cblab fit`): the breaker's own metrics, read back through a REAL Prometheus
(1 s scrapes) that scraped a live `cblab serve` driven through an outage, become rows
whose phases are found and fitted, and a config is written. Bad flags, an unreachable
Prometheus and a query that finds nothing exit 2 with one line. The series -> rows
step is also checked on hand-made series (resets, buckets, refusals)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from cblab.faults.changepoint import find_phases
from cblab.faults.cli import main as fit_main
from cblab.stack import Stack
from cblab.tune.cli import main
from cblab.tune.prometheus import (
    PrometheusError,
    prometheus_rows,
    range_query,
    rows_from_series,
)
from tests.helpers import eventually
from tests.observability.prom import PROMETHEUS, Prometheus, wait_for

START = 1_800_000_000.0
FAST = ["--workers", "1", "--seeds", "1", "--param", "failure_threshold=3,10",
        "--param", "timeout=5", "--variants", "observed"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "\n" not in err and err.startswith("cblab tune: "), err
    return err


# --- series -> rows, by hand ------------------------------------------------------------

def series(labels: dict[str, str], values: list[float], step: float = 1.0) -> dict[str, Any]:
    return {"metric": labels, "values": [[START + i * step, str(v)] for i, v in enumerate(values)]}


def test_series_become_rows_per_step() -> None:
    buckets = [  # successful: 2 calls <= 0.05 s then 1 more in (0.05, 0.1]; failed: 1 past 10 s
        series({"name": "dep", "kind": "successful", "le": "0.05"}, [5, 7, 7]),
        series({"name": "dep", "kind": "successful", "le": "0.1"}, [5, 7, 8]),
        series({"name": "dep", "kind": "successful", "le": "+Inf"}, [5, 7, 8]),
        series({"name": "dep", "kind": "failed", "le": "10.0"}, [0, 0, 0]),
        series({"name": "dep", "kind": "failed", "le": "+Inf"}, [0, 0, 1]),
        series({"name": "dep", "kind": "ignored", "le": "+Inf"}, [0, 4, 9]),
    ]
    refused = [series({"name": "dep"}, [3, 3, 6])]
    rows = rows_from_series(buckets, refused, start=START, step=1.0, name="dep")
    first = [r for r in rows if r["t"] < 1.0]
    second = [r for r in rows if r["t"] >= 1.0]
    assert [r["outcome"] for r in first] == ["success", "success"]
    assert [r["latency"] for r in first] == pytest.approx([0.0125, 0.0375])  # in (0, 0.05]
    assert sorted(r["outcome"] for r in second) == ["failure", "rejected", "rejected",
                                                    "rejected", "success"]
    assert [r["latency"] for r in second if r["outcome"] == "success"] == pytest.approx([0.075])
    assert [r["latency"] for r in second if r["outcome"] == "failure"] == [10.0]  # at least
    assert all(1.0 <= r["t"] < 2.0 for r in second) and rows == sorted(rows, key=lambda r: r["t"])
    assert {r["tool"] for r in rows} == {"dep"}
    assert all(r["error_type"] == "circuit_open" for r in rows if r["outcome"] == "rejected")


def test_a_counter_reset_counts_from_zero_and_replicas_add_up() -> None:
    restarted = series({"name": "dep", "kind": "failed", "le": "+Inf", "instance": "a"},
                       [10, 12, 3, 4])  # the process restarted after the 2nd point
    other = series({"name": "dep", "kind": "failed", "le": "+Inf", "instance": "b"},
                   [0, 1, 1, 1])
    rows = rows_from_series([restarted, other], [], start=START, step=1.0, name="dep")
    per_step = [sum(1 for r in rows if k <= r["t"] < k + 1) for k in range(3)]
    assert per_step == [2 + 1, 3, 1]


# --- flags, before any query ------------------------------------------------------------

@pytest.mark.parametrize(("extra", "expected"), [
    (["--prometheus", "ftp://127.0.0.1:9090"], "--prometheus needs Prometheus's base URL"),
    (["--prometheus", "127.0.0.1:9090"], "--prometheus needs Prometheus's base URL"),
    (["--prometheus", "http://u:p@127.0.0.1:9090"], "must not carry credentials"),
    (["--prometheus", "http://127.0.0.1:9", "--start", "now-10m", "--end", "now-20m"],
     "--start must be before --end"),
    (["--prometheus", "http://127.0.0.1:9", "--start", "yesterday"], "--start must be now, now-DURATION"),
    (["--prometheus", "http://127.0.0.1:9", "--end", "2026-01-01T00:00:00"],
     "give a time zone"),
    (["--prometheus", "http://127.0.0.1:9", "--step", "0s"], "--step must be a duration > 0"),
    (["--prometheus", "http://127.0.0.1:9", "--start", "now-7d", "--step", "1s"],
     "more than Prometheus's 11,000"),
    (["--prometheus", "http://127.0.0.1:9", "--tool", 'a"}or{b'], "a breaker name is"),
    (["--start", "now-10m"], "--start, --end and --step go with --prometheus"),
    ([], "give a run (a directory or file) or --prometheus URL, not neither"),
])
def test_bad_flags_name_the_problem(tmp_path: Path, capsys, extra, expected) -> None:
    run = []
    if extra and "--prometheus" not in extra:  # --start with a run
        run = [str(tmp_path / "x.json")]
        (tmp_path / "x.json").write_text("[]")
    assert expected in _refused([*run, *FAST, *extra], capsys)


def test_a_run_and_prometheus_together_are_refused(tmp_path: Path, capsys) -> None:
    (tmp_path / "x.json").write_text("[]")
    err = _refused([str(tmp_path / "x.json"), "--prometheus", "http://127.0.0.1:9", *FAST],
                   capsys)
    assert err.endswith("not both")


def test_an_unreachable_prometheus_is_named(capsys) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    err = _refused(["--prometheus", url, "--tool", "github", *FAST], capsys)
    assert err.startswith(f"cblab tune: cannot reach Prometheus at {url}: ")


def test_relative_times_and_defaults() -> None:
    q = range_query("http://127.0.0.1:9090/", start="-30m", end="now-0s", step=None, name=None,
                    now=START)
    assert (q.url, q.start, q.end, q.step) == ("http://127.0.0.1:9090", START - 1800, START,
                                               1.8)
    q = range_query("https://prom.example/prefix", start="2027-01-15T07:00:00Z",
                    end=str(START), step="1m", name="github", now=START)
    assert (q.url, q.start, q.end, q.step, q.name) == (
        "https://prom.example/prefix", START - 3600, START, 60.0, "github")  # START is 08:00Z
    q = range_query("http://h:1", start="2027-01-15T08:00:00+01:00", end=None, step="90s",
                    name=None, now=START)
    assert (q.start, q.end, q.step) == (START - 3600, START, 90.0)
    with pytest.raises(PrometheusError, match="--end is in the future"):
        range_query("http://h:1", start=None, end=str(START + 3600), step=None, name=None,
                    now=START)


# --- a real Prometheus scraping a live server through an outage -------------------------

pytestmark_live = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus missing: make system-deps (Debian's prometheus)")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A live server (github breaker that never trips, so the outage's calls reach the
    backend) scraped every second; calls at a steady pace: healthy, the backend down,
    healthy again, each phase until Prometheus has scraped 40 (the outage: 60) of its calls."""
    if PROMETHEUS is None:
        pytest.skip("prometheus missing: make system-deps (Debian's prometheus)")
    workdir = tmp_path_factory.mktemp("prometheus")
    with Stack(("protected",), github={"failure_threshold": 100_000}, deadline=1.0) as stack, \
            Prometheus(workdir, [stack.server_url("protected").removeprefix("http://")],
                       []) as prom:
        wait_for(lambda: prom.query('up{job="cblab"} == 1'), "the cblab target up")
        marks = asyncio.run(_drive(stack, prom))
        yield {"prometheus": prom, **marks}


def _scraped(prom: Prometheus, kind: str) -> float:
    result = prom.query('sum(cblab_circuitbreaker_call_duration_seconds_count'
                        f'{{name="github",kind="{kind}"}})')
    return float(result[0]["value"][1]) if result else 0.0


async def _drive(stack: Stack, prom: Prometheus) -> dict[str, float]:
    stop = asyncio.Event()

    async def load(client: Client) -> None:
        while not stop.is_set():
            await client.call_tool("github_user", {"username": "octocat"}, raise_on_error=False)
            await asyncio.sleep(0.03)  # a steady pace: the load, not a wait for the breaker

    async def scraped(kind: str, at_least: float) -> None:
        await eventually(lambda: _scraped(prom, kind) >= at_least, timeout=90,
                         what=f"Prometheus to scrape {at_least:g} {kind} github calls",
                         every=0.2)

    async with Client(stack.mcp_url("protected")) as client:
        await client.call_tool("github_user", {"username": "octocat"})  # warm
        start = time.time()
        task = asyncio.create_task(load(client))
        try:
            await scraped("successful", _scraped(prom, "successful") + 40)
            down = time.time()
            stack.backend.set_faults("users", mode="down")
            await scraped("failed", 60)
            up = time.time()
            stack.backend.clear_faults()
            await scraped("successful", _scraped(prom, "successful") + 40)
        finally:
            stop.set()
            await task
            with contextlib.suppress(Exception):
                stack.backend.clear_faults()
    wait_for(lambda: _scraped(prom, "successful") + _scraped(prom, "failed")
             == _server_calls(stack), "the last calls scraped")
    return {"start": start - 2.0, "down": down, "up": up, "end": time.time()}


def _server_calls(stack: Stack) -> float:
    """Permitted github calls so far, from the server's own /metrics (successful + failed)."""
    total = 0.0
    for line in stack.server("protected").metrics().splitlines():
        if line.startswith("cblab_circuitbreaker_call_duration_seconds_count") and \
                'name="github"' in line and ('kind="successful"' in line or
                                             'kind="failed"' in line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _flags(recorded: dict[str, Any]) -> list[str]:
    return ["--prometheus", recorded["prometheus"].url, "--start", f"{recorded['start']:.3f}",
            "--end", f"{recorded['end']:.3f}", "--step", "1s"]


@pytestmark_live
def test_the_outage_is_found_in_the_breakers_metrics(recorded: dict[str, Any]) -> None:
    q = range_query(recorded["prometheus"].url, start=f"{recorded['start']:.3f}",
                    end=f"{recorded['end']:.3f}", step="1s", name=None)
    rows, meta = prometheus_rows(q)  # the only breaker with calls: github
    assert meta["prometheus"]["breaker"] == "github"
    failed = sum(r["outcome"] == "failure" for r in rows)
    assert failed >= 60 and sum(r["outcome"] == "success" for r in rows) >= 60
    found = find_phases(rows)
    # one outage, healthy before it; after it healthy (or `slow`, if the loaded machine
    # slowed the calls down by 3 times and 50 ms: latency is not what this test controls)
    kinds = [p.kind for p in found.phases]
    assert kinds[:2] == ["healthy", "outage"] and kinds.count("outage") == 1, found.describe()
    # within a scrape (1 s), a step (1 s) and two bins of when the backend went down / up
    tolerance = 2.0 + 2 * found.bin_s
    down, up = recorded["down"] - q.start, recorded["up"] - q.start
    assert abs(found.phases[1].start_s - down) <= tolerance, (found.describe(), down)
    assert abs(found.phases[1].end_s - up) <= tolerance, (found.describe(), up)
    # every call of the outage failed, but a 6 s outage seen through 1 s scrapes and
    # 1 s steps has a straddling step at each edge that mixes both sides (0.69 in one
    # CI run): most of its calls are bad, far more than the healthy phase's
    assert found.phases[1].bad_share > 0.5 > found.phases[0].bad_share + 0.2


@pytestmark_live
def test_tune_from_prometheus_writes_a_config(recorded: dict[str, Any], tmp_path: Path,
                                              capsys) -> None:
    out = tmp_path / "config.json"
    code = main([*_flags(recorded), "--tool", "github", *FAST, "-o", str(out)])
    said = capsys.readouterr()
    assert code == 0, said.err
    assert "found by change-point detection for tool github" in said.out
    assert "outage" in said.out and f"from {recorded['prometheus'].url}" in said.out
    config = json.loads(out.read_text())
    assert config["failure_threshold"] in (3, 10) and config["timeout"] == 5


@pytestmark_live
def test_fit_from_prometheus_writes_the_scenario(recorded: dict[str, Any], tmp_path: Path,
                                                 capsys) -> None:
    out = tmp_path / "github.json"
    assert fit_main([*_flags(recorded), "--tool", "github", "-o", str(out)]) == 0, \
        capsys.readouterr().err
    scenario = json.loads(out.read_text())
    assert scenario["name"] == "prometheus-github"
    names = [p["name"] for p in scenario["phases"]]
    # the recovery is a phase of its own only when it held 20 calls before the range
    # ended (a loaded CI machine left fewer once): healthy, then the outage, either way
    assert names[:2] == ["healthy", "outage"], names
    rates = [p["faults"]["users"]["error_rate"] for p in scenario["phases"]]
    assert rates[1] > 0.5 > max(rates[:1] + rates[2:]) + 0.2, rates  # edges: see above


def test_fit_takes_a_run_or_prometheus(tmp_path: Path, capsys) -> None:
    assert fit_main([]) == 2
    assert capsys.readouterr().err.strip() == ("cblab fit: give a run (a directory or file) "
                                               "or --prometheus URL, not neither")
    url = f"http://127.0.0.1:{_closed_port()}"
    assert fit_main(["--prometheus", url, "--tool", "github"]) == 2
    assert capsys.readouterr().err.startswith(f"cblab fit: cannot reach Prometheus at {url}")


@pytestmark_live
def test_a_query_that_finds_nothing_is_named(recorded: dict[str, Any], capsys) -> None:
    err = _refused([*_flags(recorded), "--tool", "nosuch", *FAST], capsys)
    assert "has no cblab_circuitbreaker_call_duration_seconds_bucket{name=\"nosuch\"}" in err
    assert err.endswith("; breakers in the range: database, github")  # a tool's name, maybe
    before = ["--prometheus", recorded["prometheus"].url, "--tool", "github",
              "--start", f"{recorded['start'] - 600:.3f}", "--end", f"{recorded['start'] - 300:.3f}",
              *FAST]
    err = _refused(before, capsys)
    assert "no cblab_circuitbreaker_call_duration_seconds_bucket" in err
    assert err.endswith("; is it scraping a cblab server's /metrics?")
