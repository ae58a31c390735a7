"""Fitting fault profiles to recorded traffic, and replaying them in the simulator."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from fastmcp import Client

from cblab.faults.fit import MIN_CALLS, FitError, fit_latency, fit_run
from cblab.load import LoadGenerator
from cblab.proxy import FaultProxy
from cblab.runs import load_run, save_run
from cblab.sim import simulate


def test_fit_latency_recovers_the_distribution_it_was_drawn_from() -> None:
    rng = random.Random(3)
    logn = [40 * math.exp(0.6 * rng.gauss(0, 1)) for _ in range(2000)]
    fit = fit_latency(logn)
    assert fit.latency.kind == "lognormal"
    assert fit.latency.median_ms == pytest.approx(40, rel=0.05)
    assert fit.latency.sigma == pytest.approx(0.6, rel=0.05)
    assert fit.ks < 0.03
    normal = [max(0.0, rng.gauss(100, 10)) for _ in range(2000)]
    fit = fit_latency(normal)
    assert fit.latency.kind == "normal"
    assert fit.latency.mean_ms == pytest.approx(100, rel=0.02)
    assert fit.fitted_ms[0.5] == pytest.approx(fit.observed_ms[0.5], rel=0.05)


def test_too_little_data_is_refused_with_a_reason() -> None:
    with pytest.raises(FitError, match=f"at least {MIN_CALLS}"):
        fit_latency([1.0, 2.0])
    with pytest.raises(FitError, match="no call rows from source 'load'"):
        fit_run([{"kind": "call", "source": "server", "t": 0.0, "latency": 0.1,
                  "outcome": "success"}])
    rows = [{"kind": "call", "source": "load", "t": i * 0.1, "latency": None,
             "outcome": "timeout"} for i in range(30)]
    with pytest.raises(FitError, match="deadline_s"):
        fit_run(rows)
    assert fit_run(rows, deadline_s=1.0).phases[0].profile.mode == "hang"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(max(math.ceil(q * len(ordered)) - 1, 0), len(ordered) - 1)]


async def test_fitted_profile_reproduces_the_recorded_run_in_the_simulator(
    proxy: FaultProxy, tmp_path: Path
) -> None:
    """Record calls through the proxy (a healthy and a faulty phase), save and reload the
    run, fit it, simulate the fit: per phase the simulated p50 is within 25 % and the
    p90 within 40 % of the recorded ones, the error rate within 0.1."""
    phases = {
        "healthy": {"latency": {"kind": "normal", "mean_ms": 40, "sd_ms": 8}},
        "faulty": {"error_rate": 0.3,
                   "latency": {"kind": "lognormal", "median_ms": 80, "sigma": 0.4}},
    }
    async with Client(proxy.mcp_url) as client:  # first calls pay one-off imports
        for _ in range(3):
            await client.call_tool_mcp("echo", {"x": 0})
    rows = []
    offset = 0.0
    for name, fault in phases.items():
        await proxy.set_fault("*", fault)
        gen = LoadGenerator(proxy.mcp_url, "echo", {"x": 1}, rate=6, seed=len(rows),
                            keep_all=True, deadline=5.0)
        await gen.run(duration=6.0)
        for row in gen.records():
            rows.append({**row, "t": row["t"] + offset, "phase": name})
        offset += 6.0
    run_dir = save_run(tmp_path / "recorded", rows, {"name": "recorded", "kind": "live"})
    recorded = load_run(run_dir).events
    fit = fit_run(recorded.to_dict("records"), deadline_s=5.0)
    assert [p.name for p in fit.phases] == ["healthy", "faulty"]
    quality = fit.quality()
    assert {"ks", "p50_ms_observed", "p50_ms_fitted", "error_rate_95ci"} <= set(quality.columns)
    assert list(quality.index) == ["healthy", "faulty"]

    sim = simulate(fit.scenario(), seed=1, protected=False, time_scale=10, deadline_s=5.0)
    sim_rows = [r for r in sim.events if r["kind"] == "call"]
    for phase in fit.phases:
        rec = [r for r in recorded.to_dict("records") if r["phase"] == phase.name]
        got = [r for r in sim_rows if r["phase"] == phase.name]
        rec_lat = [r["latency"] for r in rec if r["outcome"] in ("success", "failure")]
        sim_lat = [r["latency"] for r in got if r["outcome"] in ("success", "failure")]
        assert _pct(sim_lat, 0.5) == pytest.approx(_pct(rec_lat, 0.5), rel=0.25), phase.name
        assert _pct(sim_lat, 0.9) == pytest.approx(_pct(rec_lat, 0.9), rel=0.40), phase.name
        rec_err = sum(r["outcome"] == "failure" for r in rec) / len(rec)
        sim_err = sum(r["outcome"] == "failure" for r in got) / len(got)
        assert abs(sim_err - rec_err) <= 0.1, phase.name
    assert fit.phases[1].profile.error_rate == pytest.approx(0.3, abs=0.2)  # ~37 calls
