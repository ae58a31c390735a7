"""The simulator's prediction against the live stack, on one short scenario.

One outage scenario is played live (real backend and demo server processes, MCP
load from the load generator) and simulated with the same breaker settings,
deadline and seed. Arrivals come from different RNGs and live calls carry a few
milliseconds of HTTP/MCP overhead, so the runs agree statistically, not row for
row. Tolerances (live vs simulated):

- both trip, exactly once from CLOSED (the outage is one fault episode);
- detection within 0.5 s (5 failures in a row at 20 calls/s take ~0.25 s);
- time open within 1.5 s of each other (the outage lasts 6 s);
- recovery within 1.0 s (both wait at most the 1.5 s open timeout, then probe);
- availability and share failed fast within 0.08 (about 320 calls: the
  Poisson noise alone is ~0.03);
- wasted load within 0.05.
"""

from __future__ import annotations

import pytest

from cblab.analysis import events_frame, run_kpis
from cblab.faults.scenario import Scenario
from cblab.sim import simulate

pytest.importorskip("fastmcp")

from cblab.load import LoadGenerator
from cblab.stack import Stack

pytestmark = pytest.mark.live

HEALTHY = {"latency": {"kind": "normal", "mean_ms": 20, "sd_ms": 4}}
LOAD = {"rate_per_s": 20, "arrivals": "poisson"}
SCENARIO = {
    "name": "sim-vs-live",
    "description": "a 6 s outage between two healthy stretches",
    "phases": [
        {"name": "healthy", "duration_s": 5, "faults": {"users": HEALTHY}, "load": LOAD},
        {"name": "outage", "duration_s": 6, "faults": {"users": {"mode": "down"}},
         "load": LOAD},
        {"name": "recovery", "duration_s": 5, "faults": {"users": HEALTHY}, "load": LOAD},
    ],
}
CONFIG = {"failure_threshold": 5, "timeout": 1.5, "half_open_max_calls": 1,
          "success_threshold": 1}
DEADLINE = 2.0
SEED = 3


async def test_simulated_kpis_match_a_live_run(tmp_path):
    scenario = Scenario.from_dict(SCENARIO)
    total = scenario.total_duration_s
    async with Stack(("protected",), seed=SEED, github=CONFIG, deadline=DEADLINE,
                     log_dir=tmp_path) as stack:
        server = stack.server("protected")
        # warm up (imports, the MCP session, the server's first calls) before the clock runs
        await LoadGenerator(stack.mcp_url("protected"), "github_user", rate=50,
                            arrivals="constant", seed=0).run(count=5)
        load = LoadGenerator(stack.mcp_url("protected"), "github_user", rate=20,
                             arrivals="poisson", seed=SEED, deadline=5.0, keep_all=True,
                             variant="protected")
        before = (await server.aevents())["last_seq"]
        await stack.backend.aplay_scenario(SCENARIO)
        start = (await server.aevents(after=10**12))["now"]  # the server's t at phase 0
        await load.run(duration=total)
        reply = await server.aevents(after=before)
        assert reply["missed"] == 0
    rows = [dict(row, t=row["t"] - start) for row in reply["events"]]
    rows = [row for row in rows if 0 <= row["t"] < total]
    live = run_kpis(events_frame(rows), scenario)
    sim = run_kpis(simulate(scenario, CONFIG, seed=SEED, deadline_s=DEADLINE))

    report = {key: (round(live[key], 3), round(sim[key], 3)) for key in (
        "requested", "availability", "share_failed_fast", "wasted_share", "trips",
        "detection_s", "time_open_s", "recovery_s")}
    assert live["requested"] > 200, report
    assert live["trips"] == sim["trips"] == 1, report
    assert abs(live["detection_s"] - sim["detection_s"]) < 0.5, report
    assert abs(live["time_open_s"] - sim["time_open_s"]) < 1.5, report
    assert abs(live["recovery_s"] - sim["recovery_s"]) < 1.0, report
    assert abs(live["availability"] - sim["availability"]) < 0.08, report
    assert abs(live["share_failed_fast"] - sim["share_failed_fast"]) < 0.08, report
    assert abs(live["wasted_share"] - sim["wasted_share"]) < 0.05, report
