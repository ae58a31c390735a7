"""Scenario files: loading, validation, timeline queries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cblab.faults import (
    HEALTHY,
    SERVICES,
    FaultProfile,
    LoadSpec,
    Scenario,
    ScenarioError,
    available_scenarios,
)

REQUIRED = {"outage-and-recovery", "brownout", "flapping", "slow-burn", "hang"}


def two_phases(**overrides: object) -> dict:
    data = {
        "name": "t",
        "description": "test",
        "phases": [
            {"name": "calm", "duration_s": 10, "faults": {}},
            {
                "name": "storm",
                "duration_s": 5,
                "faults": {"users": {"error_rate": 0.5}},
                "load": {"rate_per_s": 20, "arrivals": "constant"},
            },
        ],
    }
    data.update(overrides)
    return data


def test_shipped_scenarios_are_valid_and_realistic() -> None:
    names = available_scenarios()
    assert set(names) >= REQUIRED
    for name in names:
        scenario = Scenario.load(name)
        assert scenario.name == name
        assert scenario.description
        assert 60 <= scenario.total_duration_s <= 120
        assert all(
            phase.load is not None and phase.load.rate_per_s > 0 for phase in scenario.phases
        )
        assert Scenario.from_dict(scenario.to_dict()) == scenario


def test_shipped_scenarios_do_what_their_names_say() -> None:
    outage = Scenario.load("outage-and-recovery")
    assert [p.profile("users").mode for p in outage.phases] == ["up", "down", "up"]
    hang = Scenario.load("hang")
    assert [p.profile("users").mode for p in hang.phases] == ["up", "hang", "up"]
    burn = Scenario.load("slow-burn")
    rates = [p.profile("orders").error_rate for p in burn.phases[:-1]]
    assert rates == sorted(rates) and rates[-1] > rates[0]
    brownout = Scenario.load("brownout")
    assert (
        brownout.phases[2].profile("users").error_rate
        > brownout.phases[1].profile("users").error_rate
        > 0
    )
    flapping = Scenario.load("flapping")
    errored = [p.profile("users").error_rate > 0 for p in flapping.phases]
    assert errored[:4] == [False, True, False, True]


def test_omitted_service_is_healthy() -> None:
    scenario = Scenario.from_dict(two_phases())
    calm, storm = scenario.phases
    assert all(calm.profile(s) == HEALTHY for s in SERVICES)
    assert storm.profile("users") == FaultProfile(error_rate=0.5)
    assert storm.profile("orders") == HEALTHY
    assert calm.load is None
    assert storm.load == LoadSpec(20, "constant")


def test_timeline_queries() -> None:
    scenario = Scenario.from_dict(two_phases())
    assert scenario.total_duration_s == 15
    assert scenario.phase_starts == (0.0, 10.0)
    assert scenario.phase_at(0)[0] == 0
    assert scenario.phase_at(9.999)[0] == 0
    assert scenario.phase_at(10)[0] == 1
    index, phase = scenario.phase_at(1000)  # past the end: the last phase stays
    assert index == 1 and phase.name == "storm"
    with pytest.raises(ValueError):
        scenario.phase_at(-1)


def test_scaled_shortens_durations_only() -> None:
    scenario = Scenario.from_dict(two_phases())
    fast = scenario.scaled(0.01)
    assert fast.total_duration_s == pytest.approx(0.15)
    assert [p.duration_s for p in fast.phases] == pytest.approx([0.1, 0.05])
    assert fast.phases[1].profile("users") == scenario.phases[1].profile("users")
    assert fast.phases[1].load == scenario.phases[1].load
    for bad in (0, -1, float("inf"), True):
        with pytest.raises(ScenarioError, match="time_scale"):
            scenario.scaled(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d["phases"][1]["faults"]["users"].update(error_rate=1.5),
            "phase 1 ('storm'): faults.users: error_rate must be between 0 and 1, got 1.5",
        ),
        (
            lambda d: d["phases"][1]["faults"].update(payments={}),
            "phase 1 ('storm'): faults: unknown field 'payments'",
        ),
        (lambda d: d["phases"][0].update(duration_s=0), "phase 0 ('calm'): duration_s must be > 0"),
        (lambda d: d["phases"][0].pop("duration_s"), "phase 0 ('calm'): duration_s is required"),
        (lambda d: d["phases"][0].update(name=""), "phase 0: name must be a non-empty string"),
        (lambda d: d["phases"][0].update(colour="red"), "phase 0: unknown field 'colour'"),
        (
            lambda d: d["phases"][1]["load"].update(arrivals="bursty"),
            "phase 1 ('storm'): load.arrivals must be one of poisson, constant",
        ),
        (
            lambda d: d["phases"][1]["load"].update(rate_per_s=-2),
            "phase 1 ('storm'): load.rate_per_s must be >= 0",
        ),
        (lambda d: d.update(phases=[]), "phases must be a non-empty list"),
        (lambda d: d.update(extra=1), "scenario: unknown field 'extra'"),
        (lambda d: d.update(name=3), "scenario name must be a non-empty string"),
    ],
)
def test_invalid_scenarios_name_phase_and_field(mutate, message: str) -> None:
    data = two_phases()
    mutate(data)
    with pytest.raises(ScenarioError) as info:
        Scenario.from_dict(data)
    assert message in str(info.value)


def test_load_by_path_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(two_phases(name="mine")))
    assert Scenario.load(path).name == "mine"
    assert Scenario.load(str(path)).name == "mine"
    with pytest.raises(ScenarioError, match=r"unknown scenario 'nope'; available: .*brownout"):
        Scenario.load("nope")
    with pytest.raises(ScenarioError, match="cannot read scenario file"):
        Scenario.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ScenarioError, match=r"broken\.json: invalid JSON"):
        Scenario.load(broken)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(two_phases(phases=[{"name": "x", "duration_s": -1}])))
    with pytest.raises(ScenarioError, match=r"bad.json: phase 0 \('x'\): duration_s"):
        Scenario.load(bad)


def test_named_refuses_paths() -> None:
    assert Scenario.named("hang").name == "hang"
    for name in ("../users", "/etc/passwd", "x.json", "..", ""):
        with pytest.raises(ScenarioError):
            Scenario.named(name)


def test_data_dir_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "custom.json").write_text(json.dumps(two_phases(name="custom")))
    monkeypatch.setenv("CBLAB_DATA_DIR", str(tmp_path))
    assert available_scenarios() == ["custom"]
    assert Scenario.load("custom").name == "custom"
