"""Retrying agents: the simulator's prediction against the live stack, on one scenario.

Framework retries (3, no jitter) against a dependency that is down, with no breaker:
the retry storm. The load the live dependency received during the outage must lie
inside the range 20 simulated seeds give (arrivals are Poisson, so one live run is
one draw; the live run's own seed is among them). The simulated agents pay the
round trip the live agents measured for a failed call (on a loaded 2-core machine
an MCP call that fails takes 0.1-0.3 s, not the 0.5 ms of a refused connection):
it decides how many retries fit inside the outage; and so does the time the live
server took to fail a call (`fail_fast_s`).
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


async def test_the_live_retry_storm_is_inside_the_simulated_range(tmp_path) -> None:
    scenario = Scenario.from_dict(CHECK_SCENARIO)
    agent = Agent.framework(3)
    async with Stack(("unprotected",), seed=SEED, github=CHECK_CONFIG, deadline=2.0,
                     log_dir=tmp_path) as stack:
        live = await run_agents_live(stack, "unprotected", scenario, agent, seed=SEED)
    live_kpis = live.kpis()
    simulated = []
    for seed in range(20):
        run = simulate_agents(scenario, agent, CHECK_CONFIG, seed=seed, protected=False,
                              round_trip_s=live.round_trip_s, fail_fast_s=live.fail_fast_s)
        simulated.append(retry_kpis(run.to_frame(), scenario, requests=run.requests))
    loads = sorted(k["load_during_fault"] for k in simulated)
    report = (live_kpis, loads)
    # every attempt the agents made is one server row (a few at the very end fall
    # past the window: the server's clock is read a moment before the first arrival)
    assert live.requests > 200, report
    assert abs(live_kpis["attempts"] - live.attempts) <= 0.05 * live.attempts, report
    assert loads[0] <= live_kpis["load_during_fault"] <= loads[-1], report
    # and it is a storm: each outage request was sent about four times
    plain = simulate_agents(scenario, Agent.none(), CHECK_CONFIG, seed=SEED, protected=False)
    base = retry_kpis(plain.to_frame(), scenario, requests=plain.requests)["load_during_fault"]
    assert live_kpis["load_during_fault"] > 2.5 * base, (report, base)
