"""Retrying agents: the simulator's prediction against the live stack, on one scenario.

The dependency is down for 6 s while agents call the demo tool with no breaker.
Checked: budgeted retries (cblab's rules) put a load on the dead dependency that lies
inside the range 20 simulated seeds give (arrivals are Poisson, so one live run is
one draw; the live run's own seed is among them). The simulated agents pay the MCP
round trip the live agents measured, and the simulated server fails a call as slowly
as the live one did: on a loaded 2-core machine those are tens of milliseconds, not
the 0.5 ms of a refused connection. And the storm is real live: framework retries
without jitter send more to the dead dependency than the budgeted agents do.

Why the budgeted agents carry the range check: their extra load is bounded by the
budget whatever the timing, so the check holds on a busy machine. The naive storm's
own size depends on how fast the machine serves it (a storm slows the server it
hits: at load average 15 its round trip grew to over a second), which
`benchmarks/bench_retry.py` reports rather than asserts.
"""

from __future__ import annotations

import pytest

from cblab.analysis.retries import retry_kpis
from cblab.faults.scenario import Scenario
from cblab.sim.agents import Agent, simulate_agents

pytest.importorskip("fastmcp")

from cblab.lab.retry_live import CHECK_CONFIG, CHECK_SCENARIO, run_agents_live
from cblab.stack import Stack

pytestmark = pytest.mark.live

SEED = 3


async def test_live_retrying_agents_match_the_simulator(tmp_path) -> None:
    scenario = Scenario.from_dict(CHECK_SCENARIO)
    budgeted, naive = Agent.budgeted(3), Agent.framework(3)
    async with Stack(("unprotected",), seed=SEED, github=CHECK_CONFIG, deadline=2.0,
                     log_dir=tmp_path) as stack:
        live = await run_agents_live(stack, "unprotected", scenario, budgeted, seed=SEED)
        storm = await run_agents_live(stack, "unprotected", scenario, naive, seed=SEED)
    live_kpis = live.kpis()
    loads = []
    for seed in range(20):
        run = simulate_agents(scenario, budgeted, CHECK_CONFIG, seed=seed, protected=False,
                              round_trip_s=live.round_trip_s, fail_fast_s=live.fail_fast_s)
        loads.append(retry_kpis(run.to_frame(), scenario, requests=run.requests)
                     ["load_during_fault"])
    loads.sort()
    report = (live_kpis, loads, live.round_trip_s, live.fail_fast_s)
    # every attempt the agents made is one server row (a few at the very end fall
    # past the window: the server's clock is read a moment before the first arrival)
    assert live.requests > 200, report
    assert abs(live_kpis["attempts"] - live.attempts) <= 0.05 * live.attempts, report
    assert loads[0] <= live_kpis["load_during_fault"] <= loads[-1], report
    # the rows' clock is the backend's scenario clock: no connection was refused before
    # the outage began (read once after starting the scenario, t = 0 was a round trip
    # late and a refused call fell 45 ms before the outage)
    outage = scenario.phase_starts[1]
    refused = [row["t"] for row in live.events + storm.events
               if row.get("error_type") == "ConnectError"]
    slack = max(live.clock_error_s, storm.clock_error_s) + 0.002
    assert refused and min(refused) >= outage - slack, (min(refused), outage, slack)
    storm_kpis = storm.kpis()
    assert storm_kpis["load_during_fault"] > live_kpis["load_during_fault"], (
        storm_kpis, live_kpis)
