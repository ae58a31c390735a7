"""Stress variants change the outage phases only, each in its own way."""

from __future__ import annotations

import pytest

from cblab.sim import simulate
from cblab.tune import outage_phases, stress_variants


def _scenario() -> dict:
    def phase(name: str, seconds: float, faults: dict) -> dict:
        return {"name": name, "duration_s": seconds, "faults": {"users": faults},
                "load": {"rate_per_s": 10.0, "arrivals": "poisson"}}

    return {"name": "s", "phases": [phase("ok", 10, {"error_rate": 0.01}),
                                    phase("down", 12, {"error_rate": 0.6}),
                                    phase("ok2", 10, {"error_rate": 0.0})]}


def test_each_variant_changes_the_outage_only():
    scenario = _scenario()
    assert outage_phases(scenario) == [1]
    observed, longer, harsher, flapping = stress_variants(scenario, longer=2.5, deadline_s=1.5)
    assert observed["phases"] == scenario["phases"] and observed["name"] == "s-observed"
    assert [p["duration_s"] for p in longer["phases"]] == [10, 30.0, 10]
    down = harsher["phases"][1]["faults"]["users"]
    assert down["error_rate"] == pytest.approx(0.8)  # halfway from 0.6 to 1
    assert down["slow_fraction"] == pytest.approx(0.5) and down["slow_ms"] == 3000.0
    assert harsher["phases"][0] == scenario["phases"][0]
    names = [p["name"] for p in flapping["phases"]]
    assert names == ["ok", "down-1", "down-gap-1", "down-2", "down-gap-2", "down-3",
                     "down-gap-3", "ok2"]
    bursts = [p for p in flapping["phases"] if p["name"].startswith("down-") and "gap" not in
              p["name"]]
    assert sum(p["duration_s"] for p in bursts) == pytest.approx(12)
    gaps = [p for p in flapping["phases"] if "gap" in p["name"]]
    assert all(g["faults"] == scenario["phases"][0]["faults"] for g in gaps)
    for variant in (observed, longer, harsher, flapping):  # each one plays
        assert simulate(variant, seed=0).calls > 0


def test_no_outage_and_unknown_variants_are_refused():
    calm = _scenario()
    calm["phases"][1]["faults"]["users"]["error_rate"] = 0.1
    with pytest.raises(ValueError, match="has no outage"):
        stress_variants(calm)
    with pytest.raises(ValueError, match="unknown variant"):
        stress_variants(_scenario(), names=["observed", "worse"])
