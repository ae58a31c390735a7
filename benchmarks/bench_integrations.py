"""What the integrations cost per call (issue 12's targets).

1. In-process, the FastMCP middleware around one tool call (`call_next` a no-op),
   next to the hand-wired `admit()` + `record()` the demo used before (~5 µs target):
   plain, with a `call_timeout`, with a bulkhead.
2. Over Streamable HTTP on loopback: the same FastMCP server with and without the
   middleware, sequential `call_tool` in alternating blocks (machine noise hits both
   alike): p50 latency and calls/s.
3. The client guard: `GuardedClient.call_tool` over a no-op call (its own cost), and a
   real in-process `fastmcp.Client` call with and without the guard.
4. OpenTelemetry (issue 21): the middleware in-process as in 1, inside a recording span
   (the one fastmcp opens per call), with `telemetry=` (SDK tracer with a no-op
   exporter, SDK meter) and without, in alternating rounds (target: < 5 µs added), next
   to the SDK's own `span.set_attributes` for the three attributes (what cblab cannot
   make cheaper: the rest is cblab's share).

Run: ``python -m benchmarks integrations``; prints markdown tables, under a minute.
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import time
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("FASTMCP_ENABLE_RICH_TRACEBACKS", "false")

ITERATIONS = 20_000
HTTP_BLOCKS, HTTP_BLOCK_CALLS = 8, 40


async def _best(run: Any, iterations: int = ITERATIONS, repeats: int = 5) -> float:
    """Best-of-`repeats` seconds per call of `await run()`."""
    best = math.inf
    per = iterations // repeats
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(per):
            await run()
        best = min(best, (time.perf_counter() - start) / per)
    return best


def _in_process_parts() -> tuple[Any, Any, Any]:
    """(context, call_next, middleware(**options) -> one call) for a one-tool server."""
    from fastmcp import FastMCP

    from cblab.integrations import CircuitBreakerMiddleware

    mcp = FastMCP("bench")

    @mcp.tool
    def lookup() -> str:
        return "ok"

    context = SimpleNamespace(method="tools/call", fastmcp_context=None,
                              message=SimpleNamespace(name="lookup", arguments={}))

    ok = SimpleNamespace(is_error=False)  # a ToolResult's only field the middleware reads

    async def call_next(_: Any) -> Any:
        return ok

    async def middleware(**options: Any) -> Any:
        mw = CircuitBreakerMiddleware(**options)
        await mw.check(mcp)
        mw._routes["lookup"] = mw._route("lookup")  # what the first call resolves
        return lambda: mw(context, call_next)

    return context, call_next, middleware


async def in_process() -> list[tuple[str, float]]:
    from cblab import CircuitBreaker, Outcome

    context, call_next, middleware = _in_process_parts()
    breaker = CircuitBreaker("hand-wired")

    async def hand_wired() -> Any:  # the demo's code path before the middleware
        permit = breaker.admit()
        result = await call_next(context)
        breaker.record(permit, Outcome.SUCCESS)
        return result

    rows = [("no protection (call_next alone)", await _best(lambda: call_next(context))),
            ("hand-wired admit + record", await _best(hand_wired))]
    rows.append(("middleware", await _best(await middleware())))
    rows.append(("middleware + call_timeout", await _best(await middleware(call_timeout=5.0))))
    rows.append(("middleware + bulkhead", await _best(await middleware(max_concurrent=100))))
    return rows


async def over_http() -> dict[str, list[float]]:
    from fastmcp import Client, FastMCP

    from cblab.integrations import CircuitBreakerMiddleware
    from cblab.server import ServerRunner

    def server(protected: bool) -> FastMCP:
        mcp = FastMCP("bench")

        @mcp.tool
        def lookup(key: str) -> str:
            return key

        if protected:
            mcp.add_middleware(CircuitBreakerMiddleware(call_timeout=5.0))
        return mcp

    latencies: dict[str, list[float]] = {"unprotected": [], "middleware": []}
    async with ServerRunner(server(False)) as plain, ServerRunner(server(True)) as guarded:
        urls = {"unprotected": plain.mcp_url, "middleware": guarded.mcp_url}
        clients = {name: Client(url) for name, url in urls.items()}
        for client in clients.values():
            await client.__aenter__()
            for _ in range(20):  # warm up
                await client.call_tool("lookup", {"key": "x"})
        try:
            for block in range(HTTP_BLOCKS):
                order = list(clients) if block % 2 == 0 else list(reversed(clients))
                for name in order:
                    for _ in range(HTTP_BLOCK_CALLS):
                        start = time.perf_counter()
                        await clients[name].call_tool("lookup", {"key": "x"})
                        latencies[name].append(time.perf_counter() - start)
        finally:
            for client in clients.values():
                await client.__aexit__(None, None, None)
    return latencies


async def client_guard() -> list[tuple[str, float]]:
    from fastmcp import Client, FastMCP

    from cblab.integrations import GuardedClient

    mcp = FastMCP("bench")

    @mcp.tool
    def lookup() -> str:
        return "ok"

    result = SimpleNamespace(is_error=False)
    fake = Client(mcp)

    async def no_op(name: str, arguments: Any = None, **kwargs: Any) -> Any:
        return result

    fake.call_tool = no_op  # type: ignore[method-assign]
    guard_only = GuardedClient(fake, name="bench")
    rows = [("no-op call_tool alone", await _best(lambda: no_op("lookup"))),
            ("GuardedClient over the no-op", await _best(lambda: guard_only.call_tool("lookup")))]
    async with Client(mcp) as plain, GuardedClient(Client(mcp), name="bench") as guarded:
        for _ in range(3):
            rows.append(("in-process Client.call_tool",
                         await _best(lambda: plain.call_tool("lookup"), 600, 3)))
            rows.append(("in-process GuardedClient.call_tool",
                         await _best(lambda: guarded.call_tool("lookup"), 600, 3)))
    merged: dict[str, float] = {}
    for name, seconds in rows:
        merged[name] = min(seconds, merged.get(name, math.inf))
    return list(merged.items())


async def otel_cost(rounds: int = 40) -> dict[str, float]:
    """Best seconds per in-process middleware call, OpenTelemetry off vs on, side by side,
    and the SDK's collection time per call (durations go into the histogram then)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    from cblab.integrations.otel import BreakerTelemetry

    class NoOpExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(NoOpExporter()))
    tracer = tracer_provider.get_tracer("bench")
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    telemetry = BreakerTelemetry(tracer_provider=tracer_provider, meter_provider=meters)
    metrics_only = BreakerTelemetry(meter_provider=meters, spans=False)

    _, _, middleware = _in_process_parts()

    attributes = {"resilience.circuit_breaker.name": "lookup",
                  "resilience.circuit_breaker.state": "closed",
                  "resilience.circuit_breaker.outcome": "success"}

    async def set_attributes() -> None:  # the SDK's part of "span attributes"
        span.set_attributes(attributes)

    runs = {"OpenTelemetry off": await middleware(),
            "OpenTelemetry on, metrics only (spans=False)":
                await middleware(telemetry=metrics_only),
            "OpenTelemetry on (span attributes + metrics)":
                await middleware(telemetry=telemetry),
            "of which the SDK's span.set_attributes (3 attributes) alone": set_attributes}
    # Small blocks, interleaved, best of many: on a shared machine a long block of one
    # variant catches a burst of load that the others miss.
    best = dict.fromkeys(runs, math.inf)
    block = 300
    collect_s, collected = 0.0, 0
    with tracer.start_as_current_span("tools/call lookup") as span:  # fastmcp's, recording
        for _ in range(rounds):
            for name, run in runs.items():
                start = time.perf_counter()
                for _ in range(block):
                    await run()
                best[name] = min(best[name], (time.perf_counter() - start) / block)
            start = time.perf_counter()  # what a periodic reader does, off the call path
            reader.collect()
            collect_s += time.perf_counter() - start
            collected += 2 * block  # both telemetry runs left their durations pending
    best["SDK collection, per call"] = collect_s / collected
    return best


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.2f}"


def main() -> None:
    load = os.getloadavg()
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; cpus: {os.cpu_count()}\n")

    rows = asyncio.run(in_process())
    base = rows[0][1]
    print("In-process, per tool call (best of 5 runs of 4,000 calls):\n")
    print("| path | µs per call | over call_next alone, µs |")
    print("|---|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {_us(seconds)} | {_us(seconds - base)} |")
    hand = rows[1][1] - base
    plain = rows[2][1] - base
    print(f"\nmiddleware overhead / hand-wired overhead: {plain / hand:.2f} "
          f"(target: middleware <= about 5 µs, the hand-wired cost)\n")

    latencies = asyncio.run(over_http())
    print(f"Over Streamable HTTP on loopback ({HTTP_BLOCKS} alternating blocks of "
          f"{HTTP_BLOCK_CALLS} sequential calls each):\n")
    print("| server | p50 ms | p90 ms | calls/s |")
    print("|---|---:|---:|---:|")
    for name, values in latencies.items():
        ordered = sorted(values)
        p90 = ordered[int(0.9 * (len(ordered) - 1))]
        print(f"| {name} | {statistics.median(values) * 1e3:.2f} | {p90 * 1e3:.2f} | "
              f"{len(values) / sum(values):.0f} |")
    delta = statistics.median(latencies["middleware"]) - statistics.median(
        latencies["unprotected"])
    print(f"\np50 difference (middleware - unprotected): {delta * 1e6:+.0f} µs\n")

    rows = asyncio.run(client_guard())
    print("Client guard, per call_tool:\n")
    print("| path | µs per call |")
    print("|---|---:|")
    for name, seconds in rows:
        print(f"| {name} | {_us(seconds)} |")

    otel = asyncio.run(otel_cost())
    print("\nOpenTelemetry, middleware per call in-process inside a recording span "
          "(best of 40 alternating blocks of 300 calls):\n")
    print("| telemetry | µs per call |")
    print("|---|---:|")
    for name, seconds in otel.items():
        print(f"| {name} | {_us(seconds)} |")
    print("\n(the collection row is paid when the SDK's reader collects, off the call path)")
    off = otel["OpenTelemetry off"]
    for name in ("OpenTelemetry on, metrics only (spans=False)",
                 "OpenTelemetry on (span attributes + metrics)"):
        print(f"\nadded by {name}: {_us(otel[name] - off)} µs per call (target: < 5 µs)")
    added = otel["OpenTelemetry on (span attributes + metrics)"] - off
    sdk = otel["of which the SDK's span.set_attributes (3 attributes) alone"]
    # a whole run on a busy core slows every row alike: the ratio travels between runs
    print(f"\ncblab's own share (added - the SDK's set_attributes): {_us(added - sdk)} µs; "
          f"added / set_attributes: {added / sdk:.2f}")
    load = os.getloadavg()
    print(f"\nload average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
