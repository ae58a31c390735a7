"""Change-point phases (`cblab.faults.changepoint`) on crafted runs with known change points:
an outage, a hang (timeouts), a latency-only slowdown, flapping, noise only and noise
around an outage (issue 19's trap), per tool; then the fit on the phases found recovers
the generating profile, and `cblab fit` / `cblab tune` use them when rows carry no labels.

Tolerance (stated in the module): a change point within two bins of the true one."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from cblab.faults.changepoint import find_phases, phases_by_tool
from cblab.faults.cli import main as fit_main
from cblab.faults.fit import fit_run
from cblab.tune.cli import main as tune_main
from tests.tune.traffic import crafted_rows, write_rows

SEEDS = (1, 2, 3)

#: (phase, seconds, calls per second, error rate, median latency in s)
OUTAGE = (("healthy", 30.0, 20.0, 0.02, 0.05), ("outage", 20.0, 20.0, 0.9, 0.05),
          ("healthy", 30.0, 20.0, 0.02, 0.05))
NOISY_OUTAGE = (("healthy", 30.0, 20.0, 0.05, 0.05), ("outage", 20.0, 20.0, 0.9, 0.05),
                ("healthy", 30.0, 20.0, 0.05, 0.05))
SLOW = (("healthy", 30.0, 20.0, 0.02, 0.05), ("slow", 20.0, 20.0, 0.02, 1.5),
        ("healthy", 30.0, 20.0, 0.02, 0.05))
FLAPPING = (*(p for _ in range(3) for p in (("healthy", 10.0, 20.0, 0.02, 0.05),
                                            ("outage", 5.0, 20.0, 0.95, 0.05))),
            ("healthy", 10.0, 20.0, 0.02, 0.05))


def unlabelled(seed: int, profile: tuple[Any, ...]) -> list[dict[str, Any]]:
    rows = crafted_rows(seed, profile)
    for row in rows:
        del row["phase"]
    return rows


def true_change_points(profile: tuple[Any, ...]) -> list[float]:
    ends, t = [], 0.0
    for _, seconds, *_ in profile[:-1]:
        t += seconds
        ends.append(t)
    return ends


def assert_found(rows: list[dict[str, Any]], profile: tuple[Any, ...], kinds: list[str]) -> None:
    found = find_phases(rows)
    assert [p.kind for p in found.phases] == kinds, found.describe()
    for got, want in zip(found.change_points(), true_change_points(profile), strict=True):
        assert abs(got - want) <= 2 * found.bin_s, (got, want, found.bin_s)
    # the phases tile the run: every call falls in exactly one
    spans = found.spans()
    for row in rows:
        assert sum(start <= row["t"] < end for _, start, end in spans) == 1


@pytest.mark.parametrize("seed", SEEDS)
def test_an_outage_is_found(seed: int) -> None:
    assert_found(unlabelled(seed, OUTAGE), OUTAGE, ["healthy", "outage", "healthy"])


@pytest.mark.parametrize("seed", SEEDS)
def test_noise_around_an_outage_is_not_an_outage(seed: int) -> None:
    """5 % background errors all run long: the outage is found, the rest is healthy."""
    rows = unlabelled(seed, NOISY_OUTAGE)
    assert_found(rows, NOISY_OUTAGE, ["healthy", "outage", "healthy"])
    healthy = [p for p in find_phases(rows).phases if p.kind == "healthy"]
    assert all(0.0 < p.bad_share < 0.1 for p in healthy)


@pytest.mark.parametrize("share", [0.05, 0.15])
def test_noise_alone_is_one_phase(share: float) -> None:
    for seed in SEEDS:
        found = find_phases(unlabelled(seed, (("healthy", 90.0, 20.0, share, 0.05),)))
        assert [(p.name, p.kind) for p in found.phases] == [("all", "healthy")], found.describe()
        assert found.change_points() == []


@pytest.mark.parametrize("seed", SEEDS)
def test_a_latency_only_slowdown_is_found(seed: int) -> None:
    assert_found(unlabelled(seed, SLOW), SLOW, ["healthy", "slow", "healthy"])
    slow = find_phases(unlabelled(seed, SLOW)).phases[1]
    assert slow.name == "slow" and 1.2 < (slow.latency_s or 0) < 1.8
    assert slow.bad_share < 0.1  # no errors: latency alone told


@pytest.mark.parametrize("seed", SEEDS)
def test_a_hang_is_found_from_its_timeouts(seed: int) -> None:
    """Calls that hang until the client's deadline: timeouts (bad), no answer."""
    rows = unlabelled(seed, OUTAGE)
    for row in rows:
        if 30.0 <= row["t"] < 50.0:
            row.update(outcome="timeout", latency=2.0, error_type=None)
    assert_found(rows, OUTAGE, ["healthy", "outage", "healthy"])
    # without the outcome, an answer no sooner than the deadline is a timeout too
    for row in rows:
        if row["outcome"] == "timeout":
            row["outcome"] = "failure"
    found = find_phases(rows, deadline_s=2.0)
    assert [p.kind for p in found.phases] == ["healthy", "outage", "healthy"]
    assert found.phases[1].bad_share > 0.9  # all but the calls of a boundary bin


@pytest.mark.parametrize("seed", SEEDS)
def test_flapping_is_found_burst_by_burst(seed: int) -> None:
    assert_found(unlabelled(seed, FLAPPING), FLAPPING, ["healthy", "outage"] * 3 + ["healthy"])
    names = [p.name for p in find_phases(unlabelled(seed, FLAPPING)).phases]
    assert names == ["healthy", "outage", "healthy-2", "outage-2", "healthy-3", "outage-3",
                     "healthy-4"]


def test_refusals_by_the_breaker_count_as_bad() -> None:
    """An open breaker refuses calls: the breaker's own view of an outage."""
    rows = unlabelled(4, OUTAGE)
    for row in rows:
        if 32.0 <= row["t"] < 50.0:
            row.update(outcome="rejected", latency=0.0, error_type="circuit_open")
    found = find_phases(rows)
    assert [p.kind for p in found.phases] == ["healthy", "outage", "healthy"]


def test_each_tool_gets_its_own_phases() -> None:
    other = (("healthy", 50.0, 20.0, 0.02, 0.05), ("outage", 15.0, 20.0, 0.8, 0.05),
             ("healthy", 15.0, 20.0, 0.02, 0.05))
    rows = unlabelled(5, OUTAGE)
    for row in unlabelled(6, other):
        rows.append({**row, "tool": "database_query"})
    rows.sort(key=lambda r: r["t"])
    per_tool = phases_by_tool(rows)
    assert sorted(per_tool) == ["database_query", "github_user"]
    for tool, profile in (("github_user", OUTAGE), ("database_query", other)):
        found = per_tool[tool]
        assert found.tool == tool
        for got, want in zip(found.change_points(), true_change_points(profile), strict=True):
            assert abs(got - want) <= 2 * found.bin_s, (tool, got, want)


def test_cblab_fit_shows_each_tools_phases_when_it_pools_them(tmp_path: Path,
                                                              capsys) -> None:
    rows = unlabelled(5, OUTAGE) + [{**r, "tool": "database_query"}
                                    for r in unlabelled(6, (OUTAGE[0],))]
    run = write_rows(tmp_path / "traffic.json", sorted(rows, key=lambda r: r["t"]))
    assert fit_main([str(run)]) == 0
    said = capsys.readouterr().out
    assert "  tool database_query alone: all " in said
    assert "  tool github_user alone: healthy " in said and "; outage " in said
    assert "(the fit pools these tools; --tool NAME fits one)" in said
    assert fit_main([str(run), "--tool", "database_query"]) == 0
    said = capsys.readouterr().out
    assert "for tool database_query" in said and "alone" not in said


@pytest.mark.parametrize("protected", [False, True])
def test_issue_19s_noisy_outage_in_the_simulator_is_one_outage(protected: bool) -> None:
    """The trap of issue 19 item 3: `with_background_errors("outage-and-recovery", 0.05)`
    (5 % errors in every phase, the outage 30-60 s). The phases found: healthy, the
    outage within 1.5 s of its bounds, healthy again, whether or not a breaker refused
    the outage's calls."""
    from cblab.lab.tuning import with_background_errors
    from cblab.sim import simulate

    scenario = with_background_errors("outage-and-recovery", 0.05)
    for seed in SEEDS:
        run = simulate(scenario, seed=seed, protected=protected)
        calls = [{k: v for k, v in r.items() if k != "phase"} for r in run.events
                 if r.get("kind") == "call"]
        found = find_phases(calls)
        assert [p.kind for p in found.phases] == ["healthy", "outage", "healthy"], \
            found.describe()
        outage = found.phases[1]
        assert abs(outage.start_s - 30.0) <= 1.5 and abs(outage.end_s - 60.0) <= 1.5, \
            found.describe()
        assert all(p.bad_share < 0.1 for p in found.phases if p.kind == "healthy")


@pytest.mark.parametrize("source", ["load", "server"])
def test_the_shipped_recordings_outages_are_found(source: str) -> None:
    """Real recordings (data/runs: the live stack through an outage or a hang), labels
    removed: the fault is found within 1.5 s of its labelled start, it is bad through
    its labelled end, and what comes before is healthy. (What follows may be a `slow`
    phase: callers measured from their intended start wait behind the backlog.)"""
    from cblab.runs import read_event_rows, shipped_runs

    runs = shipped_runs()
    assert len(runs) == 4
    for run in runs:
        rows, meta = read_event_rows(run)
        calls = sorted((r for r in rows if r.get("kind") == "call"
                        and r.get("source") == source), key=lambda r: r["t"])
        labelled = [r["t"] for r in calls if r["phase"] in ("outage", "hang")]
        fault_start, fault_end = min(labelled), max(labelled)
        found = find_phases([{k: v for k, v in r.items() if k != "phase"} for r in calls],
                            deadline_s=meta["extra"]["deadline_s"])
        first = next(p for p in found.phases if p.kind == "outage")
        assert abs(first.start_s - fault_start) <= 1.5, (run.name, found.describe())
        assert first.bad_share > 0.7, (run.name, found.describe())
        bad_until = max(p.end_s for p in found.phases if p.kind == "outage")
        assert bad_until >= fault_end - 1.0, (run.name, found.describe())
        before = [p for p in found.phases if p.end_s <= first.start_s]
        assert before and all(p.kind == "healthy" for p in before), (run.name, found.describe())


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="no call rows"):
        find_phases([{"kind": "state", "t": 1.0}])
    with pytest.raises(ValueError, match="bin_s must be seconds > 0"):
        find_phases(unlabelled(1, OUTAGE), bin_s=0.0)


def test_too_few_calls_make_one_phase() -> None:
    rows = unlabelled(1, OUTAGE)[:15]
    assert [p.name for p in find_phases(rows).phases] == ["all"]


@pytest.mark.parametrize("seed", SEEDS)
def test_the_fit_on_found_phases_recovers_the_profile(seed: int) -> None:
    """Each phase fitted on the phases found is the phase fitted on the true labels to
    within 2 points of error rate (the boundary bins), and within 4 points of the
    generating rate (the crafted run's own sampling noise: about 1 % at 600 calls); its
    median latency within 10 %, its length within two bins."""
    rows = unlabelled(seed, NOISY_OUTAGE)
    labelled = fit_run(rows, warmup=0, phases=[("healthy", 0.0, 30.0), ("outage", 30.0, 50.0),
                                                ("healthy-2", 50.0, 80.0)])
    fit = fit_run(rows, phases="auto", warmup=0)
    assert fit.found is not None
    assert [p.name for p in fit.phases] == ["healthy", "outage", "healthy-2"]
    for phase, truth, (_, seconds, rate, error_rate, median_s) in zip(
            fit.phases, labelled.phases, NOISY_OUTAGE, strict=True):
        assert abs(phase.profile.error_rate - truth.profile.error_rate) <= 0.02, phase.name
        assert abs(phase.profile.error_rate - error_rate) <= 0.04, phase.name
        assert phase.latency is not None
        assert math.isclose(phase.latency.observed_ms[0.5], median_s * 1000, rel_tol=0.1)
        assert abs(phase.duration_s - seconds) <= 2 * fit.found.bin_s + 1.0
        assert math.isclose(phase.rate_per_s, rate, rel_tol=0.2)


def test_cblab_fit_finds_phases_when_rows_have_no_labels(tmp_path: Path, capsys) -> None:
    run = write_rows(tmp_path / "traffic.json", unlabelled(1, OUTAGE))
    out = tmp_path / "fitted.json"
    assert fit_main([str(run), "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert "the rows carry no phase labels, so found by change-point detection" in said
    scenario = json.loads(out.read_text())
    assert [p["name"] for p in scenario["phases"]] == ["healthy", "outage", "healthy-2"]
    assert scenario["phases"][1]["faults"]["users"]["error_rate"] > 0.8

    assert fit_main([str(run), "-o", str(out), "--phases", "one"]) == 0
    assert "change-point" not in capsys.readouterr().out
    assert [p["name"] for p in json.loads(out.read_text())["phases"]] == ["all"]


def test_labels_win_unless_auto_is_asked_for(tmp_path: Path, capsys) -> None:
    run = write_rows(tmp_path / "traffic.json", crafted_rows(1, OUTAGE))  # labelled
    out = tmp_path / "fitted.json"
    assert fit_main([str(run), "-o", str(out)]) == 0
    assert "change-point" not in capsys.readouterr().out
    assert fit_main([str(run), "-o", str(out), "--phases", "auto"]) == 0
    said = capsys.readouterr().out
    assert "phases: found by change-point detection" in said
    assert len(json.loads(out.read_text())["phases"]) == 3


def test_tune_refuses_phases_auto_with_given_phases(tmp_path: Path, capsys) -> None:
    run = write_rows(tmp_path / "traffic.json", unlabelled(1, OUTAGE))
    code = tune_main([str(run), "--phases", "auto", "--phase", "outage=30:50"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == ("cblab tune: --phases auto and --phase NAME=START:END: "
                                 "give one")
