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

Run: ``python -m benchmarks abuse``; about half a minute.
"""

from __future__ import annotations

import asyncio
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
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
