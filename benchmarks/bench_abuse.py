"""Abuse probes (issue 15): what a local client without a token can do to the demo
server and the backend, and whether they keep answering meanwhile.

Each probe runs against real processes on loopback and reports the attacked
process's RSS before and after, the size of the server's `/metrics`, and how
many ordinary requests were still answered (200, or a clear refusal, within 5 s)
while the abuse went on:

1. ``unknown tools``: 150 `tools/call` with distinct 256 KiB names (MCP legacy
   protocol, the name only in the body) against a `Stack` server.
2. ``idle flood``: 1,100 idle connections to the users service of a backend
   started with ``RLIMIT_NOFILE`` 512 (so more than it has descriptors), header
   timeout 2 s.
3. ``slowloris``: 50 connections sending one header byte every 100 ms; how long
   until the backend closed them (header timeout 2 s).
4. ``abandoned``: 20 requests to a 60 s-latency, 5-slot service, each given up
   after 0.3 s; is the next request served?
5. ``bad JSON``: a body nested 30,000 deep and a 5,000-digit integer on the
   control API: status codes.

And, in their own table (issue 20): ``probe_burst``, 150 MCP sessions calling at
once while the backend answers each in 1.2 s, deadline 2 s (zero trips; how many
calls were shed as local overload), and ``probe_generations``, three replicas on
one redis-server through 100 half-open cycles, a ``kill -9`` and an empty restart
(no replica's generation ever goes down; the restarted Redis continues from the
highest generation known).


Then issue 20's bounds (`print_bounds`): the largest simulate and sweep the
default work bounds accept, and inputs past them, with each command's exit code,
wall time and peak RSS; and 600 idle plus 50 slowloris connections against the
uvicorn MCP listeners of `cblab serve` and `cblab proxy` at their default limits,
while one real client keeps calling tools/list.

Run: ``python -m benchmarks abuse``; about three and a half minutes.

Run: ``python -m benchmarks abuse``; about three minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

os.environ.setdefault("FASTMCP_ENABLE_RICH_TRACEBACKS", "false")

NOFILE = 512
HEADER_TIMEOUT = 2.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def answered(http: httpx.AsyncClient, urls: list[str]) -> tuple[int, int]:
    """(answered, asked): a 200 or a clear 503 refusal counts, a hang or reset does not."""
    ok = 0
    for url in urls:
        try:
            response = await http.get(url, timeout=5)
            ok += response.status_code in (200, 404, 503)
        except httpx.HTTPError:
            pass
    return ok, len(urls)


# --- probes -------------------------------------------------------------------------------


async def probe_unknown_tools() -> dict[str, Any]:
    from fastmcp import Client

    from cblab.stack import Stack

    async with Stack(servers=["protected"]) as stack:
        pid = stack.pid("protected")
        assert pid is not None
        url = stack.server_url("protected")
        async with httpx.AsyncClient() as http, Client(
            stack.mcp_url("protected"), mode="legacy"
        ) as mcp:
            await mcp.call_tool("circuit_status", {}, raise_on_error=False)
            before = rss_mb(pid)
            health: list[float] = []
            for i in range(150):
                await mcp.call_tool(f"{i:06d}" + "x" * 256 * 1024, {}, raise_on_error=False)
                if i % 15 == 0:
                    start = time.perf_counter()
                    await http.get(url + "/health")
                    health.append(time.perf_counter() - start)
            after = rss_mb(pid)
            metrics = len((await http.get(url + "/metrics")).content)
            ok, asked = await answered(http, [url + "/health"] * 10)
    return {"before": before, "after": after, "metrics": metrics, "ok": ok, "asked": asked,
            "note": f"/health max {max(health) * 1000:.0f} ms during"}


class BackendProcess:
    """`python -m cblab.backend` with a low descriptor limit and short timeouts."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cblab-bench-abuse-"))
        self.proc: subprocess.Popen[str] | None = None
        self.urls: dict[str, Any] = {}

    def __enter__(self) -> BackendProcess:
        ready = self.dir / "ready.json"

        def low_nofile() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cblab.backend", "--ready-file", str(ready),
             "--header-timeout", str(HEADER_TIMEOUT), "--idle-timeout", "5"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            preexec_fn=low_nofile,
        )
        deadline = time.monotonic() + 30
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the backend did not start")
            time.sleep(0.02)
        self.urls = json.loads(ready.read_text())
        return self

    def port(self, service: str) -> int:
        return int(self.urls[service].rsplit(":", 1)[1])

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        _, self.stderr = self.proc.communicate(timeout=10)


async def open_idle(port: int, count: int) -> list[asyncio.StreamWriter]:
    writers = []
    for _ in range(count):
        try:
            writers.append((await asyncio.open_connection("127.0.0.1", port))[1])
        except OSError:
            break
    return writers


async def probe_idle_flood() -> dict[str, Any]:
    with BackendProcess() as backend:
        assert backend.proc is not None
        before = rss_mb(backend.proc.pid)
        writers = await open_idle(backend.port("users"), 1100)
        await asyncio.sleep(0.3)
        async with httpx.AsyncClient() as http:
            urls = [backend.urls["control"] + "/stats", backend.urls["orders"] + "/orders/1",
                    backend.urls["users"] + "/users/octocat"] * 5
            ok, asked = await answered(http, urls)
            after = rss_mb(backend.proc.pid)
            for writer in writers:
                writer.close()
    tracebacks = backend.stderr.count("Traceback")
    return {"before": before, "after": after, "metrics": None, "ok": ok, "asked": asked,
            "note": f"{len(writers)} opened (fd limit {NOFILE}), {tracebacks} tracebacks in the log"}


async def probe_slowloris() -> dict[str, Any]:
    with BackendProcess() as backend:
        assert backend.proc is not None
        before = rss_mb(backend.proc.pid)
        port = backend.port("users")
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(50)]
        started = time.monotonic()
        lasted: list[float] = []

        async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"GET /users/octocat HTTP/1.1\r\nX-Slow: ")
            while not reader.at_eof() and time.monotonic() - started < 30:
                writer.write(b"a")
                try:
                    await asyncio.wait_for(reader.read(65536), 0.1)
                except TimeoutError:
                    continue
                except ConnectionError:
                    break
            lasted.append(time.monotonic() - started)
            writer.close()

        async with httpx.AsyncClient() as http:
            during = asyncio.ensure_future(
                answered(http, [backend.urls["users"] + "/users/octocat"] * 5))
            await asyncio.gather(*(trickle(r, w) for r, w in conns))
            ok, asked = await during
        after = rss_mb(backend.proc.pid)
    return {"before": before, "after": after, "metrics": None, "ok": ok, "asked": asked,
            "note": f"closed after {max(lasted):.1f} s (header timeout {HEADER_TIMEOUT:g} s)"}


async def probe_abandoned() -> dict[str, Any]:
    from cblab.backend import Backend

    async with Backend(seed=1) as backend:
        await backend.set_profile("users", {"latency": {"kind": "constant", "ms": 60_000},
                                            "max_concurrency": 5, "overflow": "queue"})
        url = backend.urls["users"] + "/users/octocat"

        async def give_up() -> None:
            async with httpx.AsyncClient(timeout=0.3) as http:
                try:
                    await http.get(url)
                except httpx.TimeoutException:
                    pass

        pid = os.getpid()
        before = rss_mb(pid)
        await asyncio.gather(*(give_up() for _ in range(20)))
        await asyncio.sleep(0.2)
        in_flight = backend.stats()["users"]["in_flight"]
        await backend.patch_profile("users", {"latency": {"kind": "constant", "ms": 1}})
        async with httpx.AsyncClient() as http:
            ok, asked = sum([(await http.get(url)).status_code == 200 for _ in range(5)]), 5
        after = rss_mb(pid)
    return {"before": before, "after": after, "metrics": None, "ok": ok, "asked": asked,
            "note": f"in_flight {in_flight} after 20 gave up"}


async def probe_bad_json() -> dict[str, Any]:
    from cblab.backend import Backend

    async with Backend(seed=1) as backend, httpx.AsyncClient() as http:
        before = rss_mb(os.getpid())
        statuses = []
        for body in (b"[" * 30_000 + b"]" * 30_000, b'{"error_rate": ' + b"9" * 5000 + b"}"):
            answer = await http.patch(backend.urls["control"] + "/faults/users", content=body,
                                      headers={"Content-Type": "application/json"})
            statuses.append(answer.status_code)
        ok, asked = await answered(http, [backend.urls["control"] + "/health"] * 5)
        after = rss_mb(os.getpid())
    return {"before": before, "after": after, "metrics": None, "ok": ok, "asked": asked,
            "note": "deep: {}, 5000 digits: {}".format(*statuses)}


# --- local saturation and shared state (issue 20: items 2 and 3) ------------------------


async def probe_burst(sessions: int = 150, latency_ms: int = 1200,
                      deadline: float = 2.0) -> dict[str, Any]:
    """`sessions` MCP sessions call `github_user` at once; the backend is healthy and
    answers each in `latency_ms`; the server's deadline is `deadline`. Before issue 20
    the server's own saturated event loop made 45-48 calls miss the deadline and the
    breaker tripped on a healthy backend. Now: zero trips; calls the server could not
    run in time are shed as local overload."""
    from collections import Counter

    from fastmcp import Client

    from cblab.stack import Stack

    async with Stack(servers=["protected"], deadline=deadline) as stack:
        await stack.backend.aset_faults("users", latency={"kind": "constant", "ms": latency_ms})
        url = stack.mcp_url("protected")
        async with contextlib.AsyncExitStack() as sessions_open:
            clients = await asyncio.gather(*(
                sessions_open.enter_async_context(Client(url, timeout=60))
                for _ in range(sessions)))

            async def one(client: Any) -> str:
                try:
                    result = await client.call_tool("github_user", {"username": "octocat"},
                                                    raise_on_error=False)
                except Exception as exc:
                    return f"client {type(exc).__name__}"
                if not result.is_error:
                    return "ok"
                content = result.structured_content or {}
                return str(content.get("error") or "failure")

            started = time.monotonic()
            outcomes = Counter(await asyncio.gather(*(one(c) for c in clients)))
            took = time.monotonic() - started
        server = stack.server("protected")
        status = (await server.astatus())["github"]
        bulkhead = {}
        for line in (await server.ametrics()).splitlines():
            for field in ("shed", "local_misses"):
                if line.startswith(f'cblab_bulkhead_{field}_total{{name="github"}} '):
                    bulkhead[field] = int(float(line.split()[-1]))
        rows = (await server.aevents(after=0))["events"]
    failures = sum(r["kind"] == "call" and r["outcome"] == "failure" for r in rows)
    return {"sessions": sessions, "ok": outcomes["ok"],
            "local_overload": outcomes["local_overload"],
            "rejected": outcomes["dependency_unavailable"], "failures": failures,
            "trips": status["trips"], "state": status["state"],
            "shed_by_lag": bulkhead.get("shed"), "local_misses": bulkhead.get("local_misses"),
            "seconds": round(took, 1)}


async def probe_generations(cycles: int = 100, replicas: int = 3) -> dict[str, Any]:
    """`replicas` breakers on one real redis-server go through `cycles` trip ->
    half-open -> close cycles, then Redis is killed (-9) and restarted empty, then
    10 more cycles. Counts every time a replica's logged generation went down, and
    whether the restarted Redis continued from the highest generation known."""
    from cblab import (
        CircuitBreaker,
        CircuitBreakerConfig,
        CircuitOpenError,
        EventLog,
        Outcome,
        StateChange,
    )
    from cblab.stores import RedisServer, RedisStore
    from cblab.stores.scripts import keys_for

    class Boom(Exception):
        pass

    async def ok() -> None:
        await asyncio.sleep(0.001)

    async def fail() -> None:
        raise Boom

    config = CircuitBreakerConfig(failure_threshold=2, timeout=0.05, half_open_max_calls=2,
                                  success_threshold=2)
    changes: list[list[StateChange]] = [[] for _ in range(replicas)]
    started = time.monotonic()
    with RedisServer() as server:
        stores = [await RedisStore(server.url, namespace="bench-gen", replica=f"r{i}",
                                   op_timeout=1.0, retry_interval=0.1).connect()
                  for i in range(replicas)]
        breakers = [CircuitBreaker("dep", config, store=store, event_log=EventLog(1_000_000),
                                   listeners=[lambda e, seen=seen: seen.append(e)
                                              if isinstance(e, StateChange) else None])
                    for store, seen in zip(stores, changes, strict=True)]

        async def call(breaker: CircuitBreaker, func: Any) -> None:
            with contextlib.suppress(Boom, CircuitOpenError):
                await breaker.call(func)

        async def cycle() -> None:
            for func, state in ((fail, "open"), (ok, "closed")):
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and not all(
                        b.state.value == state for b in breakers):
                    await asyncio.gather(*(call(b, func) for b in breakers for _ in range(3)))
                    await asyncio.sleep(0.01)

        for _ in range(cycles):
            await cycle()
        known = max(b.generation for b in breakers)
        server.restart()
        for b in breakers:  # each notices the lost connection on its next call
            await call(b, ok)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not all(s.available for s in stores):
            await asyncio.sleep(0.05)
        for store in stores:
            await store.drain()
        await asyncio.sleep(0.2)
        shared = await stores[0]._aclient.hget(keys_for("bench-gen", "dep")[0], "gen")
        after_restart = int(shared or 0)
        for _ in range(10):
            await cycle()
        for store in stores:
            await store.drain()
            await store.close()
    ended = time.monotonic()

    def backwards(seen: list[StateChange]) -> int:
        gens = [c.generation for c in seen]
        return sum(b < a for a, b in itertools.pairwise(gens))

    def stale_rejections(breaker: CircuitBreaker) -> int:
        """Calls refused at a generation older than one this replica had already logged."""
        newest, stale = -1, 0
        for _, event in breaker.event_log.since().events:
            if event.kind == "call" and event.outcome is Outcome.REJECTED:
                stale += event.generation < newest
            newest = max(newest, event.generation)
        return stale

    return {"cycles": cycles, "replicas": replicas,
            "changes": [len(c) for c in changes],
            "backwards": [backwards(c) for c in changes],
            "stale_rejections": [stale_rejections(b) for b in breakers],
            "known_before_restart": known, "shared_after_restart": after_restart,
            "final_generation": max(b.generation for b in breakers),
            "insane_times": sum(not (started - 1 <= c.at <= ended + 1)
                                for seen in changes for c in seen)}


def saturation_report() -> int:
    """The issue-20 probes: their own table (they measure other things than RSS)."""
    burst = asyncio.run(probe_burst())
    generations = asyncio.run(probe_generations())
    load = os.getloadavg()
    print(f"\nlocal saturation and shared state (load average {load[0]:.2f})\n")
    print("| probe | result | verdict |")
    print("|---|---|---|")
    burst_ok = burst["trips"] == 0 and burst["failures"] == 0
    print(f"| 150-session burst, backend healthy at 1.2 s, deadline 2 s | "
          f"{burst['ok']} ok, {burst['local_overload']} shed as local overload "
          f"({burst['shed_by_lag']} by loop lag, {burst['local_misses']} missed locally), "
          f"{burst['failures']} failures, {burst['rejected']} rejected, {burst['trips']} trips "
          f"in {burst['seconds']} s | {'ok' if burst_ok else 'FAILED'} |")
    g = generations
    generations_ok = (sum(g["backwards"]) == 0 and g["insane_times"] == 0
                      and sum(g["stale_rejections"]) == 0
                      and g["shared_after_restart"] >= g["known_before_restart"])
    print(f"| generations, {g['replicas']} replicas, {g['cycles']} half-open cycles + Redis "
          f"restart | went back {g['backwards']} times ({g['changes']} changes), "
          f"{sum(g['stale_rejections'])} stale rejections; generation "
          f"{g['known_before_restart']} before the restart, shared {g['shared_after_restart']} "
          f"after, {g['final_generation']} at the end; {g['insane_times']} insane times | "
          f"{'ok' if generations_ok else 'FAILED'} |")
    return 0 if burst_ok and generations_ok else 1


# --- issue 20: work bounds and listener limits (`bounds`) -----------------------------------

CBLAB = str(Path(sys.executable).with_name("cblab"))


def run_measured(*argv: str, cwd: str) -> dict[str, Any]:
    """`cblab ARGV` in a child: exit code, wall seconds, peak RSS (MB, the largest of
    it and the processes it waited for), the last line of stderr."""
    started = time.perf_counter()
    proc = subprocess.Popen([CBLAB, *argv], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"code": proc.returncode, "wall_s": time.perf_counter() - started,
            "peak_mb": usage.ru_maxrss / 1024, "said": (err.strip().splitlines() or [""])[-1]}


def probe_work_bounds() -> list[tuple[str, dict[str, Any]]]:
    """The largest accepted simulate/sweep inputs and the refused ones: peak RSS, wall."""
    from cblab.sim.bounds import DEFAULT_MAX_CALLS

    rate = f"{DEFAULT_MAX_CALLS / 90 * 0.999:.2f}"  # outage-and-recovery lasts 90 s
    with tempfile.TemporaryDirectory() as tmp:
        cases = {
            "simulate at the call limit (1M calls)":
                ["simulate", "outage-and-recovery", "--rate", rate],
            "... and -o events.csv (streamed)":
                ["simulate", "outage-and-recovery", "--rate", rate, "-o", "events.csv"],
            "sweep: 3,000 runs (2 workers)":
                ["sweep", "--param", "failure_threshold=3,5,7", "--scenario", "hang",
                 "--seeds", "1000", "--rate", "0.05", "--workers", "2", "--no-cache",
                 "--no-progress", "-o", "sweep.parquet"],
            "refused: sweep --seeds 1000000000":
                ["sweep", "--param", "failure_threshold=3,5", "--seeds", "1000000000"],
            "refused: sweep --rate 1e9":
                ["sweep", "--param", "failure_threshold=3,5", "--rate", "1e9"],
            "refused: simulate --rate 100000 --time-scale 10":
                ["simulate", "outage-and-recovery", "--rate", "100000", "--time-scale", "10"],
        }
        return [(name, run_measured(*argv, cwd=tmp)) for name, argv in cases.items()]


async def _idle_conn(port: int, seconds: float) -> float | None:
    """Seconds until the server closed an idle connection (None: still open)."""
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return 0.0  # refused at the door counts as closed
    try:
        async with asyncio.timeout(seconds):
            await reader.read()
        return time.monotonic() - started
    except (TimeoutError, ConnectionError):
        return None if not reader.at_eof() else time.monotonic() - started
    finally:
        writer.close()


async def _slow_conn(port: int, seconds: float) -> float | None:
    """A header byte every 100 ms; seconds until the server closed it (None: still open)."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    try:
        while time.monotonic() - started < seconds:
            writer.write(b"a")
            try:
                if await asyncio.wait_for(reader.read(65536), 0.1) == b"":
                    return time.monotonic() - started
            except TimeoutError:
                continue
            if reader.at_eof():
                return time.monotonic() - started
        return None
    except ConnectionError:
        return time.monotonic() - started
    finally:
        writer.close()


async def _listener_probe(name: str, argv: list[str], url_key: str) -> dict[str, Any]:
    from fastmcp import Client

    with tempfile.TemporaryDirectory() as tmp:
        ready = Path(tmp) / "ready.json"
        proc = subprocess.Popen([CBLAB, *argv, "--ready-file", str(ready)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 90
            while not (ready.exists() and ready.stat().st_size):
                assert proc.poll() is None and time.monotonic() < deadline, f"{name} start"
                await asyncio.sleep(0.1)
            url = json.loads(ready.read_text())[url_key]
            port = int(url.split("//")[1].split("/")[0].rsplit(":", 1)[1])
            before = rss_mb(proc.pid)
            attack = asyncio.gather(*[_idle_conn(port, 30) for _ in range(600)],
                                    *[_slow_conn(port, 30) for _ in range(50)])
            ok = asked = 0
            async with Client(url, timeout=10) as mcp:
                while not attack.done():
                    asked += 1
                    try:
                        ok += bool(await mcp.list_tools())
                    except Exception:
                        pass
                    await asyncio.sleep(0.5)
            times = await attack
            after = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    idle, slow = times[:600], times[600:]
    closed = [t for t in idle if t is not None]
    slow_closed = [t for t in slow if t is not None]
    return {"before": before, "after": after, "metrics": None, "ok": ok, "asked": asked,
            "note": f"idle: {len(closed)}/600 closed, last after {max(closed, default=0):.1f} s; "
                    f"slowloris: {len(slow_closed)}/50 closed, last after "
                    f"{max(slow_closed, default=0):.1f} s (default limits: header 10 s)"}


async def probe_listeners() -> list[tuple[str, dict[str, Any]]]:
    """600 idle + 50 slowloris connections against each uvicorn MCP listener, at its
    default limits, while one real client keeps asking tools/list."""
    return [
        ("serve: 600 idle + 50 slowloris",
         await _listener_probe("serve", ["serve", "--port", "0"], "mcp_url")),
        ("proxy: 600 idle + 50 slowloris",
         await _listener_probe("proxy", ["proxy", "--upstream-cmd",
                                         f"{sys.executable} -m cblab.examples.weather_server"],
                               "mcp_url")),
    ]


def print_bounds() -> int:
    """Issue 20's work bounds and listener limits, as two tables; 1 if a limit failed."""
    failed = 0
    print("\n| work (cblab ...) | exit | wall (s) | peak RSS (MB) | said |")
    print("|---|---:|---:|---:|---|")
    for name, r in probe_work_bounds():
        refused = name.startswith("refused")
        failed += (r["code"] != 2) if refused else (r["code"] != 0)
        said = r["said"][:110] if refused else ""
        print(f"| {name} | {r['code']} | {r['wall_s']:.1f} | {r['peak_mb']:.0f} | {said} |")
    print("\n| listener | RSS before (MB) | RSS after (MB) | tools/list answered | closed |")
    print("|---|---:|---:|---:|---|")
    for name, r in asyncio.run(probe_listeners()):
        failed += r["ok"] < r["asked"] or "600/600" not in r["note"] or "50/50" not in r["note"]
        print(f"| {name} | {r['before']:.0f} | {r['after']:.0f} | {r['ok']}/{r['asked']} | "
              f"{r['note']} |")
    return failed


PROBES = {
    "unknown tools": probe_unknown_tools,
    "idle flood": probe_idle_flood,
    "slowloris": probe_slowloris,
    "abandoned": probe_abandoned,
    "bad JSON": probe_bad_json,
}


async def run() -> list[tuple[str, dict[str, Any]]]:
    return [(name, await probe()) for name, probe in PROBES.items()]


def main() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096 and hard >= 4096:  # this process opens ~1,100 client sockets
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
    results = asyncio.run(run())
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs\n")
    print("| probe | RSS before (MB) | RSS after (MB) | /metrics bytes | answered | note |")
    print("|---|---:|---:|---:|---:|---|")
    failed = 0
    for name, r in results:
        metrics = "-" if r["metrics"] is None else f"{r['metrics']:,}"
        print(f"| {name} | {r['before']:.0f} | {r['after']:.0f} | {metrics} | "
              f"{r['ok']}/{r['asked']} | {r['note']} |")
        failed += r["ok"] < r["asked"]
    print("\n(RSS of the attacked process; `abandoned` and `bad JSON` run the backend "
          "in this process)")
    failed += saturation_report()
    failed += print_bounds()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
