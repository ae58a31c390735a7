"""The live stack over HTTP: what the breaker costs when all is well, and what it
saves when the backend hangs.

One `Stack` (backend + three demo servers as processes on loopback):

- ``bare``: tools call the backend with neither breaker nor instrumentation
  (the baseline), ``unprotected``: breakers disabled (metrics and event rows only),
  ``protected``: the write-up's github breaker (failure_threshold 3, timeout 60 s).

1. Healthy backend: sequential `github_user` calls through a fastmcp Client over
   Streamable HTTP, in small blocks that rotate the three variants (so machine
   noise hits all of them alike): p50/p99 latency and calls/s; then closed-loop
   throughput with 8 concurrent callers, alternated the same way. The breaker +
   instrumentation cost is also timed in-process (the demo's middleware: recorder,
   breaker, deadline and bulkhead around a no-op tool), where it is not lost in HTTP noise.
2. Backend hangs: open-loop load (`cblab.load`, constant 40 calls/s) against
   protected and unprotected in turn (ABBA), server deadline 1 s: latency overall
   and after the trip, calls/s answered, and requests per second reaching the
   backend during the outage.

Run: ``python -m benchmarks.bench_stack`` (or ``python -m benchmarks stack``).
Prints a markdown table; about a minute.
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import sys
import time
from collections import Counter
from typing import Any

os.environ.setdefault("FASTMCP_ENABLE_RICH_TRACEBACKS", "false")

SERVER_DEADLINE = 1.0
GITHUB = {"failure_threshold": 3, "timeout": 60.0}  # the write-up's settings
VARIANTS = {
    "bare": {"args": ["--bare"]},
    "unprotected": {"protected": False},
    "protected": {"protected": True},
}
SEQ_BLOCKS, SEQ_BLOCK_CALLS = 8, 40
THROUGHPUT_ROUNDS, THROUGHPUT_S, WORKERS = 2, 2.5, 8
HANG_RATE, HANG_S = 40.0, 5.0


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(max(math.ceil(q * len(ordered)) - 1, 0), len(ordered) - 1)]


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


# --- in-process: the breaker + instrumentation around one call --------------------------


async def _middleware_cost(iterations: int = 20_000) -> tuple[float, float]:
    """Seconds per call of the demo's middleware (recorder + breaker middleware with its
    deadline and bulkhead, around a no-op tool) and of the bare call_next."""
    from types import SimpleNamespace

    from cblab.server import ServerSettings, build_server

    mcp = build_server(ServerSettings(github=GITHUB, event_log_capacity=1000))
    recorder, protection = mcp.middleware[0], mcp.middleware[1]
    await protection.check(mcp)
    context = SimpleNamespace(method="tools/call", fastmcp_context=None,
                              message=SimpleNamespace(name="github_user", arguments={}))
    ok = SimpleNamespace(is_error=False)

    async def bare_call(_: Any) -> Any:
        return ok

    async def guarded_call(ctx: Any) -> Any:
        return await protection(ctx, bare_call)

    async def timed(run: Any) -> float:
        best = math.inf
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(iterations // 5):
                await run()
            best = min(best, (time.perf_counter() - start) / (iterations // 5))
        return best

    guarded = await timed(lambda: recorder.on_call_tool(context, guarded_call))
    bare = await timed(lambda: bare_call(context))
    return guarded, bare


# --- over HTTP ----------------------------------------------------------------------------


async def _sequential(clients: dict[str, Any]) -> dict[str, list[list[float]]]:
    """Latencies per variant, per block (blocks rotate the variants' order)."""
    latencies: dict[str, list[list[float]]] = {v: [] for v in clients}
    order = list(clients)
    for block in range(SEQ_BLOCKS):
        rotated = order[block % len(order):] + order[:block % len(order)]
        for variant in rotated:
            client = clients[variant]
            values: list[float] = []
            for i in range(SEQ_BLOCK_CALLS):
                args = {"username": "octocat" if i % 2 else "turing91"}
                start = time.perf_counter()
                result = await client.call_tool_mcp("github_user", args)
                values.append(time.perf_counter() - start)
                assert not result.is_error, result
            latencies[variant].append(values)
    return latencies


async def _throughput(clients: dict[str, Any]) -> dict[str, float]:
    calls: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    order = list(clients)
    for round_ in range(THROUGHPUT_ROUNDS):
        for variant in (order if round_ % 2 == 0 else order[::-1]):
            client = clients[variant]
            stop_at = time.perf_counter() + THROUGHPUT_S

            async def worker(client: Any = client, variant: str = variant,
                             stop_at: float = stop_at) -> None:
                while time.perf_counter() < stop_at:
                    await client.call_tool_mcp("github_user", {"username": "octocat"})
                    calls[variant] += 1

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(WORKERS)))
            seconds[variant] += time.perf_counter() - start
    return {v: calls[v] / seconds[v] for v in clients}


async def _hang_phase(stack: Any, variant: str) -> dict[str, Any]:
    from cblab.load import LoadGenerator

    server = stack.server(variant)
    await server.areset()
    await stack.backend.aset_faults("users", mode="hang")
    await stack.backend.areset_stats()
    gen = LoadGenerator(stack.mcp_url(variant), "github_user", rate=HANG_RATE,
                        arrivals="constant", seed=1, variant=variant, keep_all=True,
                        deadline=SERVER_DEADLINE * 3, max_in_flight=512)
    started = time.perf_counter()
    run = asyncio.create_task(gen.run(duration=HANG_S))
    await asyncio.sleep(HANG_S / 2)
    half = (await stack.backend.astats())["users"]["received"]
    half_at = time.perf_counter()
    await asyncio.sleep(started + HANG_S - time.perf_counter())
    received = (await stack.backend.astats())["users"]["received"]
    window = time.perf_counter() - started
    second_half = (received - half) / (time.perf_counter() - half_at)
    await run  # the calls still in flight end at their deadline
    await stack.backend.aset_faults("users", mode="up")
    rows = gen.records()
    answered = [r for r in rows if r["latency"] is not None]
    rejected = [r["t"] for r in rows if r["outcome"] == "rejected"]
    trip_t = min(rejected) if rejected else None
    # "Once open": calls that arrived after the calls admitted before the trip had
    # all hit their deadline (for unprotected: the same time after the start).
    settled = (trip_t if trip_t is not None else 0.0) + SERVER_DEADLINE
    after = [r["latency"] for r in answered if r["t"] >= settled]
    last_answer = max(r["t"] + r["latency"] for r in answered)
    return {
        "calls": len(rows),
        "p50": pct([r["latency"] for r in answered], 0.5),
        "p99": pct([r["latency"] for r in answered], 0.99),
        "p50_after": pct(after, 0.5),
        "p99_after": pct(after, 0.99),
        "after": after,
        "trip_t": trip_t,
        "answered_per_s": len(answered) / last_answer,
        "backend_per_s": received / window,
        "backend_second_half": second_half,
        "counts": dict(gen.counts),
    }


async def _run() -> int:
    from fastmcp import Client

    from cblab.stack import Stack

    started = time.perf_counter()
    guarded_s, bare_s = await _middleware_cost()
    stack_options = {"seed": 1, "github": GITHUB, "deadline": SERVER_DEADLINE}
    async with Stack(VARIANTS, **stack_options) as stack:
        await stack.backend.aset_faults("users", latency={"kind": "constant", "ms": 1.0})
        clients = {v: Client(stack.mcp_url(v)) for v in stack.variants}
        for client in clients.values():
            await client.__aenter__()
        try:
            for client in clients.values():  # warm up connections and code paths
                for _ in range(20):
                    await client.call_tool_mcp("github_user", {"username": "octocat"})
            gc.collect()
            gc.freeze()  # the client side too: no long full collections mid-measurement
            seq = await _sequential(clients)
            throughput = await _throughput(clients)
        finally:
            for client in clients.values():
                await client.__aexit__(None, None, None)
        hang: dict[str, list[dict[str, Any]]] = {"protected": [], "unprotected": []}
        for variant in ("protected", "unprotected", "unprotected", "protected"):  # ABBA
            hang[variant].append(await _hang_phase(stack, variant))

    lines = [
        "",
        f"bench_stack: 2 cores, load avg {os.getloadavg()[0]:.1f}; server deadline "
        f"{SERVER_DEADLINE:g} s; github breaker {GITHUB}; backend latency 1 ms",
        "",
        "Healthy backend, `github_user` over Streamable HTTP "
        f"({SEQ_BLOCKS}x{SEQ_BLOCK_CALLS} sequential calls per variant, rotated blocks; "
        f"throughput: {WORKERS} concurrent callers)",
        "",
        "| variant | calls | p50 ms | p99 ms | mean ms | sequential calls/s | "
        f"throughput calls/s ({WORKERS} callers) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for variant in ("bare", "unprotected", "protected"):
        values = [x for block in seq[variant] for x in block]
        mean = sum(values) / len(values)
        lines.append(f"| {variant} | {len(values)} | {ms(pct(values, 0.5))} | "
                     f"{ms(pct(values, 0.99))} | {ms(mean)} | {1 / mean:.0f} | "
                     f"{throughput[variant]:.0f} |")
    p50 = {v: pct([x for block in seq[v] for x in block], 0.5) for v in seq}
    # Paired by block (same minute of machine noise): protected vs bare block p50s.
    ratios = sorted(
        (pct(p, 0.5) - pct(b, 0.5)) / pct(b, 0.5) * 100
        for p, b in zip(seq["protected"], seq["bare"], strict=True)
    )
    overhead_http = pct(ratios, 0.5)
    cost_us = (guarded_s - bare_s) * 1e6
    overhead_inproc = (guarded_s - bare_s) / p50["bare"] * 100
    lines += [
        "",
        f"Breaker + instrumentation, timed in-process: {cost_us:.1f} µs per call "
        f"= {overhead_inproc:.2f} % of the bare p50 (target <= 5 %: "
        f"{'met' if overhead_inproc <= 5 else 'MISSED'}).",
        f"Over HTTP, protected vs bare p50, median of {len(ratios)} paired blocks: "
        f"{overhead_http:+.1f} % (blocks ranged {ratios[0]:+.1f} % .. {ratios[-1]:+.1f} %: "
        "machine noise, the breaker's own cost is the in-process figure).",
        "",
        f"Backend hangs (constant {HANG_RATE:g} calls/s for {HANG_S:g} s per phase, "
        "phases ABBA; latency from intended start; 'once open' = calls that arrived "
        "after the trip plus one deadline, when the calls admitted before the trip had "
        "ended; for unprotected, after one deadline)",
        "",
        "| variant | phase | calls | p50 ms | p99 ms | p50 / p99 once open ms | trip at s | "
        "answered calls/s (first call to last answer) | backend req/s (whole phase / "
        "2nd half) | outcomes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for variant in ("protected", "unprotected"):
        for i, phase in enumerate(hang[variant], 1):
            trip = "-" if phase["trip_t"] is None else f"{phase['trip_t']:.2f}"
            outcomes = ", ".join(f"{k} {n}" for k, n in sorted(phase["counts"].items()))
            lines.append(
                f"| {variant} | {i} | {phase['calls']} | {ms(phase['p50'])} | "
                f"{ms(phase['p99'])} | {ms(phase['p50_after'])} / {ms(phase['p99_after'])} | "
                f"{trip} | {phase['answered_per_s']:.0f} | {phase['backend_per_s']:.1f} / "
                f"{phase['backend_second_half']:.1f} | {outcomes} |")
    pooled = [x for p in hang["protected"] for x in p["after"]]
    worst_after = pct(pooled, 0.99)
    lines += [
        "",
        f"Protected p99 once open, both phases pooled: {ms(worst_after)} ms (target <= 20 ms: "
        f"{'met' if worst_after <= 0.020 else 'MISSED'}); unprotected callers wait for the "
        f"{SERVER_DEADLINE:g} s deadline.",
        f"Total wall time {time.perf_counter() - started:.0f} s.",
    ]
    print("\n".join(lines), flush=True)
    return 0


def main() -> int:
    return asyncio.run(_run())


if __name__ == "__main__":
    sys.exit(main())
