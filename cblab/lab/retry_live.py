"""Retrying agents against the live stack: the simulator's `Agent`s, calling for real.

    from cblab.lab.retry_live import run_agents_live
    async with Stack(("protected", "unprotected")) as stack:
        run = await run_agents_live(stack, "unprotected", "outage-and-recovery",
                                    Agent.framework(3), seed=1)
        run.kpis()    # cblab.analysis.retries figures, as for a simulated run

A population of agents calls the demo tool over one MCP session (Streamable HTTP):
requests arrive open-loop at the simulator's arrival times for the same seed; each
request's failed or refused calls are re-issued by `Agent.next_delay`, the one rule
the simulator uses too. The figures come from the server's own event rows (every
attempt is one breaker call), so a live run and a simulated one are read the same
way. Retries stop at the scenario's end, as in the simulator.
"""

from __future__ import annotations

import asyncio
import random
import statistics
from dataclasses import dataclass, field
from typing import Any

from cblab.analysis.retries import retry_kpis
from cblab.codes import REFUSAL_CODES
from cblab.demo import SERVICE_ROUTES, demo_arguments
from cblab.faults.scenario import Scenario
from cblab.sim.agents import Agent
from cblab.sim.workload import arrival_rng, arrival_times, load_phases, resolve_scenario

__all__ = ["CHECK_CONFIG", "CHECK_SCENARIO", "LiveAgentRun", "run_agents_live"]

_HEALTHY = {"latency": {"kind": "normal", "mean_ms": 20, "sd_ms": 4}}
_LOAD = {"rate_per_s": 20, "arrivals": "poisson"}
#: The short outage on which live agents are checked against the simulator (tests,
#: the benchmark's live half, notebook 05): 4 s healthy, 6 s down, 4 s healthy.
CHECK_SCENARIO: dict[str, Any] = {
    "name": "retry-check",
    "description": "a 6 s outage between two healthy stretches, for retrying agents",
    "phases": [
        {"name": "healthy", "duration_s": 4, "faults": {"users": _HEALTHY}, "load": _LOAD},
        {"name": "outage", "duration_s": 6, "faults": {"users": {"mode": "down"}},
         "load": _LOAD},
        {"name": "recovery", "duration_s": 4, "faults": {"users": _HEALTHY}, "load": _LOAD},
    ],
}
#: The breaker for it: trips after 5 failures, probes every 1.5 s with one trial.
CHECK_CONFIG: dict[str, Any] = {"failure_threshold": 5, "timeout": 1.5,
                                "half_open_max_calls": 1, "success_threshold": 1}

_PAGE = 10_000


@dataclass(eq=False)
class LiveAgentRun:
    """One live run of agents: the server's rows (t = 0 at the scenario's start)."""

    variant: str
    agent: Agent
    scenario: Scenario
    requests: int
    attempts: int  # as the agents counted them
    succeeded: int
    events: list[dict[str, Any]] = field(repr=False)
    #: median seconds from sending an attempt to reading its failure or refusal, as the
    #: agents saw it (pass it to `simulate_agents(round_trip_s=...)` to compare)
    round_trip_s: float = 0.0
    #: median seconds the server took to fail a call while the dependency was down
    #: (`simulate_agents(fail_fast_s=...)`)
    fail_fast_s: float = 0.0
    #: every attempt as the agents made it: (seconds from the scenario's start when it
    #: was sent, request number, retry number (0: the first attempt), how it ended:
    #: "success", "failure", "refused" or "error" (the session failed))
    log: list[tuple[float, int, int, str]] = field(default_factory=list, repr=False)
    #: how far the rows' t = 0 may be from the backend's scenario start (seconds)
    clock_error_s: float = 0.0

    def kpis(self) -> dict[str, Any]:
        return retry_kpis(self.events, self.scenario, requests=self.requests)


async def _rows_after(server: Any, after: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        reply = await server.aevents(after=after, limit=_PAGE)
        if reply.get("missed"):
            raise RuntimeError(f"the server's event log dropped {reply['missed']} rows")
        part = reply["events"]
        rows += part
        if len(part) < _PAGE:
            return rows
        after = part[-1]["seq"]


async def _scenario_start(backend: Any, server: Any) -> tuple[float, float]:
    """When the backend started playing, on the server's clock (the clock of its rows).

    The backend's outage begins at its own start plus the phase offsets; rows are
    stamped by the server. Reading the server's clock once after starting the
    scenario put t = 0 one or two round trips late (45 ms at load 3: a call that
    failed on the dead dependency fell before the window). Here the backend's
    elapsed time is read between two readings of the server's clock: the error is
    at most half that bracket. Returns (the start, that error bound)."""
    before = (await server.aevents(after=10**12))["now"]
    elapsed = (await backend.ascenario())["elapsed_s"]
    after = (await server.aevents(after=10**12))["now"]
    return float((before + after) / 2 - elapsed), float((after - before) / 2)


async def run_agents_live(
    stack: Any,
    variant: str,
    scenario: Scenario | str | dict[str, Any],
    agent: Agent,
    *,
    seed: int,
    service: str = "users",
    label: str | None = None,
    call_timeout: float = 10.0,
) -> LiveAgentRun:
    """Play `scenario` on the stack's backend while agents call server `variant`."""
    from fastmcp import Client

    if not isinstance(agent, Agent):
        raise TypeError(f"agent must be a cblab.sim.agents.Agent, got {agent!r}")
    scenario = resolve_scenario(scenario)
    total = scenario.total_duration_s
    tool = SERVICE_ROUTES[service][1]
    arguments = demo_arguments(tool)
    args_rng = random.Random(f"cblab-live-agents:{seed}:args")
    agent_rng = random.Random(f"cblab-sim:{seed}:agents")
    budget = agent.budget()
    server = stack.server(variant)
    counts = {"requests": 0, "attempts": 0, "succeeded": 0}
    trips: list[float] = []
    log: list[tuple[float, int, int, str]] = []
    loop = asyncio.get_running_loop()
    async with Client(server.mcp_url, timeout=call_timeout) as client:
        for _ in range(5):  # warm up: imports, the session, the server's first calls
            await client.call_tool(tool, arguments(args_rng), raise_on_error=False)
        seen = await _rows_after(server, 0)
        before = seen[-1]["seq"] if seen else 0
        await stack.backend.aplay_scenario(scenario.to_dict())
        start_t, clock_error = await _scenario_start(stack.backend, server)
        # the agents' clock, aligned: arrivals and the end of retries count from the
        # backend's scenario start, as the simulator's do
        started = loop.time() - ((await server.aevents(after=10**12))["now"] - start_t)

        async def request(number: int) -> None:
            retries = 0
            args = arguments(args_rng)
            while True:
                counts["attempts"] += 1
                refused, retry_after = False, None
                sent = loop.time()
                try:
                    result = await client.call_tool(tool, args, raise_on_error=False)
                except Exception:  # the session failed: a failure like any other
                    trips.append(loop.time() - sent)
                    log.append((sent - started, number, retries, "error"))
                else:
                    if not result.is_error:
                        counts["succeeded"] += 1
                        log.append((sent - started, number, retries, "success"))
                        if budget is not None:
                            budget.record(True, retry=retries > 0)
                        return
                    trips.append(loop.time() - sent)
                    content = result.structured_content or {}
                    refused = content.get("error") in REFUSAL_CODES
                    retry_after = content.get("retry_after_s")
                    log.append((sent - started, number, retries,
                                "refused" if refused else "failure"))
                if budget is not None and not refused:
                    budget.record(False, retry=retries > 0)
                delay = agent.next_delay(retries, refused=refused, retry_after=retry_after,
                                         rng=agent_rng, budget=budget)
                if delay is None or loop.time() + delay - started >= total:
                    return
                retries += 1
                await asyncio.sleep(delay)
                if not agent.still_retries(budget):
                    return

        tasks = []
        for t in arrival_times(load_phases(scenario), arrival_rng(seed)):
            wait = started + t - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            counts["requests"] += 1
            if budget is not None:
                budget.deposit()
            tasks.append(asyncio.create_task(request(counts["requests"])))
        await asyncio.gather(*tasks)
        rows = await _rows_after(server, before)
    events = [dict(row, t=row["t"] - start_t) for row in rows
              if row.get("breaker") == SERVICE_ROUTES[service][0]]
    events = [row for row in events if 0 <= row["t"] < total]
    name = label or agent.label + (", no breaker" if variant.startswith("unprotected")
                                   else " + breaker")
    for row in events:
        row["variant"] = name
    failed = [row["latency"] for row in events
              if row.get("kind") == "call" and row.get("outcome") == "failure"]
    return LiveAgentRun(name, agent, scenario, counts["requests"], counts["attempts"],
                        counts["succeeded"], events,
                        statistics.median(trips) if trips else 0.0,
                        statistics.median(failed) if failed else 0.0, sorted(log), clock_error)
