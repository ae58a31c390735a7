"""The recorded runs shipped in data/runs: one time axis (t = 0 at the scenario's
start) for every source, every row labelled with its phase, so
`cblab.analysis.kpis(events, played_scenario(run))` gives per-phase figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from cblab import analysis
from cblab.runs import EVENTS_FILE, load_run

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "runs"
SHIPPED_RUNS = sorted(p.name for p in SHIPPED.iterdir() if (p / "run.json").is_file())


def test_there_are_shipped_runs():
    assert len(SHIPPED_RUNS) == 4


@pytest.mark.parametrize("name", SHIPPED_RUNS)
def test_every_source_is_on_the_scenarios_clock_and_every_row_has_its_phase(name):
    run = load_run(SHIPPED / name)
    assert (SHIPPED / name / EVENTS_FILE).stat().st_size < 1_000_000
    events = run.events
    scenario = analysis.played_scenario(run)
    assert scenario.total_duration_s == pytest.approx(run.meta.duration_s)
    assert set(events["source"]) == {"load", "server"}
    assert events["t"].min() >= 0
    assert events["phase"].notna().all()
    assert list(events["phase"]) == analysis.phase_labels(events["t"], scenario)
    (fault,) = [w for w in analysis.phase_windows(scenario, service="users") if w.fault]
    deadline = run.meta.extra["deadline_s"]
    for source, rows in events[events["kind"] == "call"].groupby("source"):
        failed = rows[~rows["outcome"].isin(["success", "slow"])]
        ends = failed["t"] + failed["latency"]
        # aligned: nothing failed before the fault began, and failures began with it
        assert ends.min() >= fault.start, source
        assert ends.min() <= fault.start + deadline, source


@pytest.mark.parametrize("name", SHIPPED_RUNS)
def test_per_phase_figures(name):
    run = load_run(SHIPPED / name)
    server = run.events[run.events["source"] == "server"]
    table = analysis.phase_kpis(server, analysis.played_scenario(run)).set_index("phase")
    assert list(table["fault"]) == [False, True, False]
    before, during, after = (table.iloc[i] for i in range(3))
    assert before.availability > 0.95
    assert during.availability < 0.6 < after.availability
    if name.endswith("-protected"):
        open_s = run.meta.config["github"]["timeout"]
        assert before.trips == 0 and during.trips == 1  # tripped in the fault, not before
        assert 0 <= during.detection_s < 3
        assert after.recovery_s <= open_s + 1  # closed at the first probe after the fault
        assert during.rejected > 0.4 * during.requested
    else:
        assert table["rejected"].sum() == 0
