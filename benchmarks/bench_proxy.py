"""What the fault-injecting MCP proxy costs on a healthy upstream.

Upstream: the example weather server (`cblab.examples.weather_server --http`), its
trivial `list_cities` tool; proxy: `cblab proxy --upstream URL` with no fault (no
added latency). Both are separate processes on loopback; the client is a fastmcp
`Client` over Streamable HTTP in this process.

1. Sequential calls, in blocks alternating direct and through the proxy (so machine
   noise hits both alike): p50/p99 per call and the difference.
2. Closed-loop throughput with 8 concurrent callers on one client, alternated the
   same way: calls per second.
3. CPU seconds per call of the upstream and of the proxy process (from /proc over the
   sequential blocks): the proxy's own cost, which the machine's load does not move
   the way it moves wall-clock figures.

Run: ``python -m benchmarks.bench_proxy`` (or ``python -m benchmarks proxy``); under a
minute. Prints a markdown table with the load average.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("FASTMCP_ENABLE_RICH_TRACEBACKS", "false")

BLOCKS, BLOCK_CALLS = 8, 40
ROUNDS, ROUND_S, WORKERS = 3, 2.0, 8
TOOL = "list_cities"


def pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(max(math.ceil(q * len(ordered)) - 1, 0), len(ordered) - 1)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port} after {timeout:g} s")


def _wait_file(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"proxy exited with {proc.returncode}")
        if path.exists():
            return json.loads(path.read_text())
        time.sleep(0.05)
    raise TimeoutError("the proxy did not become ready")


async def _sequential(client, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        await client.call_tool_mcp(TOOL, {})
        out.append(time.perf_counter() - started)
    return out


async def _throughput(client, seconds: float) -> float:
    end = time.perf_counter() + seconds
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < end:
            await client.call_tool_mcp(TOOL, {})
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    return done / (time.perf_counter() - started)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(urls: dict[str, str], pids: dict[str, int]) -> dict[str, dict[str, list[float]]]:
    from fastmcp import Client

    results: dict[str, dict[str, list[float]]] = {
        k: {"lat": [], "tput": [], "cpu": []} for k in urls}
    async with Client(urls["direct"]) as direct, Client(urls["proxy"]) as proxied:
        clients = {"direct": direct, "proxy": proxied}
        for client in clients.values():  # warm up
            await _sequential(client, 20)
        for block in range(BLOCKS):
            order = ("direct", "proxy") if block % 2 == 0 else ("proxy", "direct")
            for name in order:
                before = {who: _cpu_s(pid) for who, pid in pids.items()}
                results[name]["lat"] += await _sequential(clients[name], BLOCK_CALLS)
                if name == "proxy":  # the upstream serves both paths; the proxy only this one
                    for who, pid in pids.items():
                        results[who]["cpu"].append((_cpu_s(pid) - before[who]) / BLOCK_CALLS)
        for rnd in range(ROUNDS * 2):
            name = ("direct", "proxy", "proxy", "direct")[rnd % 4]
            results[name]["tput"].append(await _throughput(clients[name], ROUND_S))
    return results


def main() -> int:
    env = {**os.environ, "FASTMCP_ENABLE_RICH_TRACEBACKS": "false"}
    port = _free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-m", "cblab.examples.weather_server", "--http", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    proxy = None
    try:
        _wait_port(port, upstream)
        direct_url = f"http://127.0.0.1:{port}/mcp"
        with tempfile.TemporaryDirectory() as tmp:
            ready = Path(tmp) / "ready.json"
            proxy = subprocess.Popen(
                [sys.executable, "-m", "cblab.cli", "proxy", "--upstream", direct_url,
                 "--ready-file", str(ready)],
                env=env, stdout=subprocess.DEVNULL,
            )
            info = _wait_file(ready, proxy)
        results = asyncio.run(_measure({"direct": direct_url, "proxy": info["mcp_url"]},
                                       {"direct": upstream.pid, "proxy": proxy.pid}))
    finally:
        for proc in (proxy, upstream):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores; "
          f"{BLOCKS * BLOCK_CALLS} sequential calls each, {WORKERS} concurrent callers "
          f"{ROUNDS} x {ROUND_S:g} s each")
    print()
    print("| path | p50 ms | p99 ms | calls/s, 8 concurrent |")
    print("|---|---:|---:|---:|")
    for name in ("direct", "proxy"):
        lat, tput = results[name]["lat"], results[name]["tput"]
        print(f"| {name} | {pct(lat, 0.5) * 1000:.1f} | {pct(lat, 0.99) * 1000:.1f} | "
              f"{sum(tput) / len(tput):.0f} |")
    d, p = results["direct"], results["proxy"]
    print()
    print(f"proxy overhead: p50 +{(pct(p['lat'], .5) - pct(d['lat'], .5)) * 1000:.1f} ms, "
          f"p99 +{(pct(p['lat'], .99) - pct(d['lat'], .99)) * 1000:.1f} ms; throughput "
          f"{sum(p['tput']) / sum(d['tput']):.2f} x direct")
    upstream_cpu = sum(d["cpu"]) / len(d["cpu"]) * 1000
    proxy_cpu = sum(p["cpu"]) / len(p["cpu"]) * 1000
    print(f"CPU per call: upstream server {upstream_cpu:.2f} ms, proxy {proxy_cpu:.2f} ms "
          f"({proxy_cpu / upstream_cpu:.2f} x the server's)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
