"""Recording a live run: the real stack, a tiny scenario, one run per variant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cblab.analysis import phase_kpis, phase_labels, played_scenario
from cblab.lab.record import main, record_live_run

SCENARIO = {
    "name": "blip",
    "description": "two seconds healthy, two seconds down",
    "phases": [
        {"name": "up", "duration_s": 2, "load": {"rate_per_s": 25, "arrivals": "constant"}},
        {
            "name": "down",
            "duration_s": 2,
            "faults": {"users": {"mode": "down"}},
            "load": {"rate_per_s": 25, "arrivals": "constant"},
        },
    ],
}


@pytest.mark.live
def test_record_live_run_saves_one_loadable_run_per_variant(tmp_path: Path):
    scenario = tmp_path / "blip.json"
    scenario.write_text(json.dumps(SCENARIO))
    runs = record_live_run(
        scenario,
        time_scale=1.0,
        breaker={"failure_threshold": 2, "timeout": 30},
        out_dir=tmp_path / "runs",
    )
    assert [r.path.name for r in runs] == ["blip-protected", "blip-unprotected"]
    protected, unprotected = (r.events for r in runs)
    for run, events in zip(runs, (protected, unprotected), strict=True):
        calls = events[events["kind"] == "call"]
        assert set(calls["source"]) == {"load", "server"}
        assert set(events["phase"].dropna()) == {"up", "down"}
        assert events["t"].min() >= 0 and events["t"].max() < 4.5
        # one clock (t = 0 at the scenario's start) and a phase on every row, the server's too
        assert list(events["phase"]) == phase_labels(events["t"], played_scenario(run))
        failed = calls[~calls["outcome"].isin(["success", "slow"])]
        assert (failed["t"] + failed["latency"]).min() > 2.0 - 0.05  # none failed before "down"
        load = calls[calls["source"] == "load"]
        assert 80 <= len(load) <= 110  # 25/s for 4 s
    server = protected[protected["source"] == "server"]
    by_phase = phase_kpis(server, played_scenario(runs[0])).set_index("phase")
    assert list(by_phase["trips"]) == [0, 1] and list(by_phase["fault"]) == [False, True]
    trips = protected[(protected["kind"] == "state") & (protected["state_after"] == "open")]
    assert len(trips) == 1 and trips["phase"].iloc[0] == "down"
    assert (protected["outcome"] == "rejected").sum() > 10
    assert (unprotected["outcome"] == "rejected").sum() == 0
    meta = runs[0].meta
    assert meta.kind == "live" and meta.config["github"]["failure_threshold"] == 2
    assert meta.scenario["spec"]["name"] == "blip" and meta.extra["time_scale"] == 1.0
    assert runs[1].meta.config == {}  # the unprotected server's breaker only watches


def test_record_cli_refuses_bad_arguments(capsys):
    assert main(["--breaker", "[1]"]) == 2
    assert "--breaker must be a JSON object" in capsys.readouterr().err
    assert main(["--breaker", "{not json"]) == 2


def test_cblab_record_is_a_subcommand(capsys):
    from cblab.cli import main as cblab

    assert cblab(["record", "--breaker", "[1]"]) == 2
    assert "--breaker must be a JSON object" in capsys.readouterr().err
    assert cblab(["--help"]) == 0
    assert "record" in capsys.readouterr().out
