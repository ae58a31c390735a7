"""Three live replicas, local breakers vs one shared breaker: the experiment of
notebook 07 and of `benchmarks/bench_redis.py`.

`compare_replicas()` runs the same story twice, on a fresh `Stack` each time
(replicas with their own breakers, then replicas sharing state through Redis):
open-loop load spread round robin over the replicas, the backend failing every
request for `outage_s`, then healthy again for the breakers' timeout and a
little more. It returns a `ReplicaComparison`: one summary row per kind of
breaker and every replica's event rows (each says which replica wrote it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_CONFIG", "ReplicaComparison", "compare_replicas", "run_replicas"]

DEFAULT_CONFIG: dict[str, Any] = {"failure_threshold": 3, "timeout": 3.0,
                                  "half_open_max_calls": 2, "success_threshold": 2}


@dataclass
class ReplicaComparison:
    table: Any  # DataFrame, one row per kind of breaker ("local", "shared")
    events: Any  # DataFrame of every replica's rows, `t` on one clock (outage start = 0)


async def run_replicas(
    shared: bool,
    *,
    replicas: int = 3,
    config: Mapping[str, Any] | None = None,
    rate: float = 40.0,
    outage_s: float = 3.0,
    recovery_s: float | None = None,
    store_timeout: float = 0.2,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One run: (summary, rows); rows' `t` is seconds since the outage began."""
    from cblab.load import LoadGenerator

    from ._stack import Stack

    config = dict(config or DEFAULT_CONFIG)
    name = "shared" if shared else "local"
    options = {name: {"args": ["--store-timeout", repr(store_timeout)]} if shared else {}}
    recovery_s = recovery_s if recovery_s is not None else float(config["timeout"]) + 2.0
    async with Stack(options, replicas=replicas, shared_state=shared, github=config,
                     deadline=0.5) as stack:
        urls = stack.mcp_urls(name)
        servers = [stack.server(r) for r in stack.replicas(name)]
        stack.backend.set_faults("users", error_rate=1.0)
        stack.backend.reset_stats()
        # each server's clock: its rows' t + offset = this process's monotonic time
        offsets = []
        for server in servers:
            now = (await server.aevents(after=0, limit=1))["now"]
            offsets.append(time.monotonic() - now)
        gen = LoadGenerator(urls, "github_user", rate=rate, arrivals="constant")
        await gen.run(duration=outage_s)
        began = gen.start_monotonic  # the first call's intended start (the loop's clock)
        assert began is not None
        failing = int((await stack.backend.astats())["users"]["received"])
        await stack.backend.aclear_faults()
        recovered_at = time.monotonic() - began
        gen = LoadGenerator(urls, "github_user", rate=rate, arrivals="constant")
        await gen.run(duration=recovery_s)
        rows: list[dict[str, Any]] = []
        closed = True
        for server, offset in zip(servers, offsets, strict=True):
            for row in (await server.aevents(after=0))["events"]:
                rows.append({**row, "t": row["t"] + offset - began})
            closed &= (await server.astatus())["github"]["state"] == "closed"
    calls = [r for r in rows if r["kind"] == "call" and r["breaker"] == "github"]
    stops = [r["t"] for r in calls if r["outcome"] == "failure" and r["state"] == "closed"]
    probes = [r for r in calls if r["state"] == "half_open" and r["outcome"] != "rejected"]
    summary = {
        "breakers": name,
        "replicas": replicas,
        "failing_calls": failing,
        "until_all_stopped_s": max(stops) if stops else 0.0,
        "probes": len(probes),
        "probes_after_recovery": sum(1 for r in probes if r["t"] >= recovered_at),
        "all_closed": closed,
        "failure_threshold": config["failure_threshold"],
        "half_open_max_calls": config["half_open_max_calls"],
    }
    return summary, rows


async def compare_replicas(**options: Any) -> ReplicaComparison:
    """`run_replicas` with local breakers, then shared: one table, one event frame."""
    import pandas as pd

    summaries, frames = [], []
    for shared in (False, True):
        summary, rows = await run_replicas(shared, **options)
        summaries.append(summary)
        frames.append(pd.DataFrame(rows))
        await asyncio.sleep(0)
    return ReplicaComparison(pd.DataFrame(summaries).set_index("breakers"),
                             pd.concat(frames, ignore_index=True))
